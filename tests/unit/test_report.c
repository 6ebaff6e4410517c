/*
 * test_report.c - the HTML backtest report: structure, escaping, limits,
 * odd metrics and the buffer cap. Results are built by hand so the report
 * is tested without running the engine.
 */
#include <criterion/criterion.h>

#include <quantgate/backtest.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY QG_MS_PER_DAY
#define T0  1704067200000LL /* 2024-01-01 */

static qg_equity_point g_curve[4] = {
    {T0, 10000, 0},
    {T0 + 10 * DAY, 10400, 0},
    {T0 + 20 * DAY, 9800, 5.77},
    {T0 + 30 * DAY, 10900, 0},
};

static qg_trade g_trades[3] = {
    {1, 1, 5, T0 + DAY, T0 + 5 * DAY, 10, 100.0, 104.0, 2.0, 38.0, 3.8, QG_EXIT_REASON_SIGNAL},
    {-1, 8, 12, T0 + 8 * DAY, T0 + 12 * DAY, 10, 104.0, 110.0, 2.1, -62.1, -5.97,
     QG_EXIT_REASON_STOP},
    {1, 15, 30, T0 + 15 * DAY, T0 + 30 * DAY, 12, 98.0, 108.0, 2.5, 117.5, 9.99,
     QG_EXIT_REASON_TARGET},
};

static qg_bt_result sample_result(void)
{
    qg_bt_result r;
    memset(&r, 0, sizeof r);
    r.m.bars = 31;
    r.m.start_ts = T0;
    r.m.end_ts = T0 + 30 * DAY;
    r.m.start_equity = 10000;
    r.m.final_equity = 10900;
    r.m.total_return = 9.0;
    r.m.buy_hold_return = 4.5;
    r.m.cagr = 185.3;
    r.m.volatility = 21.0;
    r.m.sharpe = 1.8;
    r.m.sortino = 2.4;
    r.m.calmar = 3.1;
    r.m.max_drawdown = 5.77;
    r.m.max_drawdown_ms = 12 * DAY;
    r.m.trades = 3;
    r.m.wins = 2;
    r.m.losses = 1;
    r.m.win_rate = 66.67;
    r.m.profit_factor = 2.5;
    r.m.expectancy = 31.13;
    r.m.avg_win = 77.75;
    r.m.avg_loss = -62.1;
    r.m.exposure = 70;
    r.m.sqn = 0.6;
    r.m.fees = 6.6;
    r.trades = g_trades;
    r.n_trades = 3;
    r.curve = g_curve;
    r.n_curve = 4;
    return r;
}

static qg_strategy sample_strategy(void)
{
    qg_strategy s;
    memset(&s, 0, sizeof s);
    strcpy(s.name, "sma<script>alert(1)</script>");
    strcpy(s.description, "Fast & slow \"cross\"");
    s.direction = QG_DIR_BOTH;
    s.n_params = 2;
    strcpy(s.params[0].name, "fast");
    s.params[0].value = 10;
    strcpy(s.params[1].name, "slow");
    s.params[1].value = 50;
    s.stop_loss = (qg_exit_rule){QG_EXIT_PERCENT, 2, 0, 0};
    s.take_profit = (qg_exit_rule){QG_EXIT_PRICE, 1.5, 0, 0};
    s.sizing = (qg_sizing){QG_SIZE_PERCENT_EQUITY, 100};
    return s;
}

static const qg_report_meta g_meta = {"sma on <data>.csv", "data/<btc>.csv",
                                      "fees 10 bps, slippage 5 bps"};

/* Renders into a fresh buffer with a roomy cap; the caller frees it. */
static qg_buf render(const qg_bt_result *r, const qg_strategy *s, const qg_report_meta *meta)
{
    qg_buf b;
    qg_buf_init(&b, 64u << 20);
    cr_assert_eq(qg_report_html(r, s, meta, &b), QG_OK);
    cr_assert_not_null(b.data);
    return b;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

Test(report, page_structure_and_escaping)
{
    qg_bt_result r = sample_result();
    qg_strategy s = sample_strategy();
    qg_buf b = render(&r, &s, &g_meta);
    cr_assert_eq(strncmp(b.data, "<!doctype html>", 15), 0);
    cr_assert(strstr(b.data, "<meta charset=\"utf-8\">"));
    cr_assert(strstr(b.data, "<title>sma on &lt;data&gt;.csv</title>"));
    cr_assert(strstr(b.data, "sma&lt;script&gt;alert(1)&lt;/script&gt;"));
    cr_assert_null(strstr(b.data, "<script"));
    cr_assert(strstr(b.data, "Fast &amp; slow &quot;cross&quot;"));
    cr_assert(strstr(b.data, "data/&lt;btc&gt;.csv"));
    cr_assert_eq(count(b.data, "<svg"), 2); /* equity and drawdown */
    cr_assert(strstr(b.data, "viewBox="));
    cr_assert(strstr(b.data, "2024-01-01"));
    cr_assert(strstr(b.data, "2024-01-31"));
    cr_assert(strstr(b.data, "+9.00%"));
    cr_assert(strstr(b.data, "10,900.00"));
    cr_assert_null(strstr(b.data, "http://"));
    cr_assert_null(strstr(b.data, "https://"));
    cr_assert(strstr(b.data, "</html>"));
    qg_buf_free(&b);
}

Test(report, lists_every_trade_with_its_exit_reason)
{
    qg_bt_result r = sample_result();
    qg_strategy s = sample_strategy();
    qg_buf b = render(&r, &s, &g_meta);
    for (size_t i = 0; i < r.n_trades; i++) {
        char cell[64];
        snprintf(cell, sizeof cell, "<td>%s</td></tr>", qg_exit_reason_name(g_trades[i].reason));
        cr_assert(strstr(b.data, cell), "missing %s", cell);
    }
    cr_assert_eq(count(b.data, "<tr>"), 4); /* header + 3 */
    cr_assert(strstr(b.data, "-62.10"));
    cr_assert_null(strstr(b.data, "showing 5000 of"));
    qg_buf_free(&b);
}

Test(report, settings_are_described_in_words)
{
    qg_bt_result r = sample_result();
    qg_strategy s = sample_strategy();
    qg_buf b = render(&r, &s, &g_meta);
    cr_assert(strstr(b.data, "fast = 10, slow = 50"));
    cr_assert(strstr(b.data, "long and short"));
    cr_assert(strstr(b.data, "stop 2% from entry"));
    cr_assert(strstr(b.data, "target 1.5 price units"));
    cr_assert(strstr(b.data, "size 100% of equity"));
    cr_assert(strstr(b.data, "fees 10 bps, slippage 5 bps"));
    qg_buf_free(&b);

    s.stop_loss = (qg_exit_rule){QG_EXIT_ATR, 2, 14, 0};
    s.take_profit = (qg_exit_rule){QG_EXIT_NONE, 0, 0, 0};
    s.sizing = (qg_sizing){QG_SIZE_RISK_PERCENT, 1};
    s.direction = QG_DIR_LONG;
    b = render(&r, &s, &g_meta);
    cr_assert(strstr(b.data, "stop 2 x ATR(14)"));
    cr_assert(strstr(b.data, "risk 1% of equity per trade"));
    cr_assert(strstr(b.data, "long only"));
    qg_buf_free(&b);

    s.sizing = (qg_sizing){QG_SIZE_FIXED_QTY, 1};
    b = render(&r, &s, &g_meta);
    cr_assert(strstr(b.data, "fixed quantity 1"));
    qg_buf_free(&b);
}

Test(report, table_stops_at_5000_trades)
{
    qg_bt_result r = sample_result();
    qg_strategy s = sample_strategy();
    size_t n = 5001;
    qg_trade *t = calloc(n, sizeof *t);
    cr_assert_not_null(t);
    for (size_t i = 0; i < n; i++) {
        t[i] = g_trades[i % 3];
        t[i].entry_ts = T0 + (int64_t)i * QG_MS_PER_HOUR;
        t[i].exit_ts = t[i].entry_ts + 30 * QG_MS_PER_MIN;
    }
    r.trades = t;
    r.n_trades = n;
    r.m.trades = n;
    qg_buf b = render(&r, &s, &g_meta);
    cr_assert(strstr(b.data, "showing 5000 of 5001 trades"));
    cr_assert_eq(count(b.data, "<tr>"), 5001);     /* header + 5000 */
    cr_assert(strstr(b.data, "2024-01-01 00:30")); /* intraday: times shown */
    qg_buf_free(&b);
    free(t);
}

Test(report, trades_not_kept_and_no_trades)
{
    qg_bt_result r = sample_result();
    r.trades = NULL;
    r.n_trades = 0;
    qg_buf b = render(&r, NULL, &g_meta);
    cr_assert(strstr(b.data, "The 3 trades of this run were not kept"));
    cr_assert_null(strstr(b.data, "<table"));
    qg_buf_free(&b);

    r.m.trades = 0;
    b = render(&r, NULL, NULL);
    cr_assert(strstr(b.data, "No trades."));
    cr_assert(strstr(b.data, "<title>Backtest report</title>"));
    qg_buf_free(&b);
}

Test(report, too_few_curve_points_leave_a_note)
{
    qg_bt_result r = sample_result();
    qg_strategy s = sample_strategy();
    size_t sizes[] = {0, 1};
    for (size_t i = 0; i < 2; i++) {
        r.n_curve = sizes[i];
        r.curve = sizes[i] ? g_curve : NULL;
        qg_buf b = render(&r, &s, &g_meta);
        cr_assert(strstr(b.data, "not enough points to draw"));
        cr_assert_null(strstr(b.data, "<svg"));
        cr_assert(strstr(b.data, "</html>"));
        qg_buf_free(&b);
    }
}

Test(report, flat_curve_and_constant_time_still_draw)
{
    qg_equity_point flat[3] = {{T0, 5000, 0}, {T0, 5000, 0}, {T0, 5000, 0}};
    qg_bt_result r = sample_result();
    r.curve = flat;
    r.n_curve = 3;
    r.m.start_equity = 5000;
    qg_buf b = render(&r, NULL, &g_meta);
    cr_assert_eq(count(b.data, "<svg"), 2);
    cr_assert_null(strstr(b.data, "nan"));
    cr_assert_null(strstr(b.data, "inf"));
    qg_buf_free(&b);
}

Test(report, infinite_and_nan_metrics)
{
    qg_bt_result r = sample_result();
    qg_strategy s = sample_strategy();
    r.m.profit_factor = INFINITY;
    r.m.sharpe = NAN;
    r.m.sortino = NAN;
    r.m.sqn = -INFINITY;
    r.m.cagr = NAN;
    g_curve[2].drawdown = NAN; /* restored below; the table reads it only here */
    qg_buf b = render(&r, &s, &g_meta);
    g_curve[2].drawdown = 5.77;
    cr_assert(strstr(b.data, ">\u221e<"));  /* profit factor */
    cr_assert(strstr(b.data, ">-\u221e<")); /* SQN */
    cr_assert(strstr(b.data, ">\u2013<"));  /* Sharpe */
    cr_assert_null(strstr(b.data, "nan"));
    cr_assert_null(strstr(b.data, "inf"));
    qg_buf_free(&b);
}

Test(report, tiny_cap_is_erange_and_keeps_the_buffer)
{
    qg_bt_result r = sample_result();
    qg_strategy s = sample_strategy();
    qg_buf b;
    qg_buf_init(&b, 1000);
    cr_assert_eq(qg_buf_puts(&b, "prefix"), QG_OK);
    cr_assert_eq(qg_report_html(&r, &s, &g_meta, &b), QG_ERANGE);
    cr_assert_eq(b.len, 6);
    cr_assert_str_eq(b.data, "prefix");
    qg_buf_free(&b);
    cr_assert_eq(qg_report_html(NULL, &s, &g_meta, &b), QG_EINVAL);
}
