/*
 * test_backtest.c - fill rules computed by hand (next-bar open, stop before
 * target, gaps, fees, slippage, short side, sizing), invariants (equity =
 * cash + position value at every bar; cutting future bars never changes the
 * past), metrics consistency, the look-ahead check and the grid search.
 */
#include <criterion/criterion.h>

#include <quantgate/backtest.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define H 3600000LL

/* Builds bars from rows of {open, high, low, close}, hourly from 0. */
static qg_bars make_bars(const double (*rows)[4], size_t n)
{
    qg_bars b = {0};
    for (size_t i = 0; i < n; i++) {
        qg_bar bar = {(int64_t)i * H, rows[i][0], rows[i][1], rows[i][2], rows[i][3], 100};
        cr_assert_eq(qg_bars_push(&b, &bar), QG_OK);
    }
    b.timeframe_ms = H;
    return b;
}

static qg_strategy parse_ok(const char *json)
{
    qg_strategy s;
    qg_error err = {0};
    qg_status rc = qg_strategy_parse(json, strlen(json), NULL, 0, &s, &err);
    cr_assert_eq(rc, QG_OK, "parse failed: %s", err.msg);
    return s;
}

static qg_bt_result run(const qg_strategy *s, const qg_bars *b, qg_bt_config cfg)
{
    qg_bt_result r;
    qg_error err = {0};
    cr_assert_eq(qg_backtest_run(s, b, &cfg, &r, &err), QG_OK, "%s", err.msg);
    return r;
}

static qg_bt_config cfg_cash(double cash)
{
    qg_bt_config c = qg_bt_config_default();
    c.cash = cash;
    return c;
}

/* Close crosses above 100 at bar 1 and below at bar 3. */
static const double cross_rows[][4] = {
    {99, 99.5, 98.5, 99}, {99, 101, 98.9, 100.5}, {101, 102, 100.8, 101.5},
    {101.5, 102, 98, 99}, {98, 99, 97, 98.5},     {98.5, 99, 98, 98.7},
};

static const char *cross_spec = "{\"name\":\"t\",\"entry\":{\"long\":{\"cross_above\":[\"close\","
                                "100]},\"short\":{\"cross_below\":[\"close\",100]}},"
                                "\"exit\":{\"long\":{\"cross_below\":[\"close\",100]},"
                                "\"short\":{\"cross_above\":[\"close\",100]}}}";

#define EPS 1e-9

Test(backtest, market_orders_fill_at_next_open)
{
    qg_bars b = make_bars(cross_rows, 6);
    qg_strategy s = parse_ok(cross_spec);
    qg_bt_result r = run(&s, &b, cfg_cash(1000));
    cr_assert_eq(r.n_trades, 1);
    const qg_trade *t = &r.trades[0];
    /* Signal on the close of bar 1, filled at the open of bar 2 (101). */
    cr_assert_eq(t->entry_bar, 2);
    cr_assert_float_eq(t->entry_price, 101.0, EPS);
    cr_assert_eq(t->exit_bar, 4);
    cr_assert_float_eq(t->exit_price, 98.0, EPS);
    cr_assert_eq(t->reason, QG_EXIT_REASON_SIGNAL);
    double qty = 1000.0 / 101.0;
    cr_assert_float_eq(t->qty, qty, EPS);
    cr_assert_float_eq(t->pnl, (98.0 - 101.0) * qty, EPS);
    cr_assert_float_eq(r.m.final_equity, 1000.0 + (98.0 - 101.0) * qty, EPS);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

Test(backtest, fees_and_slippage_per_side)
{
    qg_bars b = make_bars(cross_rows, 6);
    qg_strategy s = parse_ok(cross_spec);
    qg_bt_config c = cfg_cash(1000);
    c.fee_bps = 10;      /* 0.1% */
    c.slippage_bps = 20; /* 0.2% */
    qg_bt_result r = run(&s, &b, c);
    cr_assert_eq(r.n_trades, 1);
    double entry = 101.0 * 1.002;          /* buying pays slippage up */
    double qty = 1000.0 / (entry * 1.001); /* 100% of equity, fee included */
    double fee_in = qty * entry * 0.001;
    double exit = 98.0 * 0.998; /* selling pays slippage down */
    double fee_out = qty * exit * 0.001;
    const qg_trade *t = &r.trades[0];
    cr_assert_float_eq(t->entry_price, entry, EPS);
    cr_assert_float_eq(t->exit_price, exit, EPS);
    cr_assert_float_eq(t->fees, fee_in + fee_out, EPS);
    cr_assert_float_eq(t->pnl, (exit - entry) * qty - fee_in - fee_out, EPS);
    cr_assert_float_eq(r.m.final_equity, 1000.0 + t->pnl, 1e-8);
    cr_assert_float_eq(r.m.fees, fee_in + fee_out, EPS);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

Test(backtest, short_side_mirrors_long)
{
    /* Close crosses below 100 at bar 1 and back above at bar 3. */
    const double rows[][4] = {{101, 101.5, 100.5, 101}, {101, 101.2, 99, 99.5},
                              {99, 99.5, 98, 98.5},     {98.5, 101, 98.2, 100.5},
                              {101, 101.5, 100, 101},   {101, 102, 100.5, 101.2}};
    qg_bars b = make_bars(rows, 6);
    qg_strategy s = parse_ok(cross_spec);
    qg_bt_config c = cfg_cash(1000);
    c.direction = QG_DIR_SHORT;
    c.slippage_bps = 10;
    qg_bt_result r = run(&s, &b, c);
    cr_assert_eq(r.n_trades, 1);
    const qg_trade *t = &r.trades[0];
    double entry = 99.0 * 0.999; /* selling short: slippage down */
    double exit = 101.0 * 1.001; /* buying back: slippage up */
    double qty = 1000.0 / entry;
    cr_assert_eq(t->side, -1);
    cr_assert_eq(t->entry_bar, 2);
    cr_assert_eq(t->exit_bar, 4);
    cr_assert_float_eq(t->entry_price, entry, EPS);
    cr_assert_float_eq(t->exit_price, exit, EPS);
    cr_assert_float_eq(t->pnl, (entry - exit) * qty, EPS);
    cr_assert_float_eq(r.m.final_equity, 1000.0 + t->pnl, 1e-8);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

static const char *stop_target_spec =
    "{\"entry\":{\"long\":{\"cross_above\":[\"close\",100]}},"
    "\"stop_loss\":{\"percent\":2},\"take_profit\":{\"percent\":2}}";

Test(backtest, stop_is_assumed_before_target_in_one_bar)
{
    const double rows[][4] = {
        {99, 99.5, 98.5, 99}, {99, 101, 98.9, 100.5}, {100, 103, 97, 100}, {100, 100.5, 99.5, 100}};
    qg_bars b = make_bars(rows, 4);
    qg_strategy s = parse_ok(stop_target_spec);
    qg_bt_result r = run(&s, &b, cfg_cash(1000));
    cr_assert_eq(r.n_trades, 1);
    /* Entry at 100 (bar 2 open); stop 98 and target 102 both inside bar 2. */
    cr_assert_eq(r.trades[0].reason, QG_EXIT_REASON_STOP);
    cr_assert_eq(r.trades[0].exit_bar, 2);
    cr_assert_float_eq(r.trades[0].exit_price, 98.0, EPS);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

Test(backtest, gap_through_stop_fills_at_open)
{
    const double rows[][4] = {{99, 99.5, 98.5, 99},
                              {99, 101, 98.9, 100.5},
                              {100, 100.5, 99, 100},
                              {95, 96, 94, 95.5},
                              {95.5, 96, 95, 95.8}};
    qg_bars b = make_bars(rows, 5);
    qg_strategy s = parse_ok(stop_target_spec);
    qg_bt_config c = cfg_cash(1000);
    c.slippage_bps = 10;
    qg_bt_result r = run(&s, &b, c);
    cr_assert_eq(r.n_trades, 1);
    /* Stop at 98% of the 100.1 fill; bar 3 opens at 95, below it. */
    cr_assert_eq(r.trades[0].reason, QG_EXIT_REASON_STOP);
    cr_assert_eq(r.trades[0].exit_bar, 3);
    cr_assert_float_eq(r.trades[0].exit_price, 95.0 * 0.999, EPS);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

Test(backtest, target_is_a_limit_without_slippage)
{
    const double rows[][4] = {{99, 99.5, 98.5, 99},
                              {99, 101, 98.9, 100.5},
                              {100, 101, 99.5, 100.5},
                              {100.5, 103, 100, 102.5},
                              {102.5, 103, 102, 102.8}};
    qg_bars b = make_bars(rows, 5);
    qg_strategy s = parse_ok(stop_target_spec);
    qg_bt_config c = cfg_cash(1000);
    c.slippage_bps = 50;
    qg_bt_result r = run(&s, &b, c);
    cr_assert_eq(r.n_trades, 1);
    double entry = 100.0 * 1.005;
    cr_assert_eq(r.trades[0].reason, QG_EXIT_REASON_TARGET);
    cr_assert_eq(r.trades[0].exit_bar, 3);
    cr_assert_float_eq(r.trades[0].exit_price, entry * 1.02, EPS);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

Test(backtest, open_position_closes_at_last_close)
{
    const double rows[][4] = {{99, 99.5, 98.5, 99},
                              {99, 101, 98.9, 100.5},
                              {101, 102, 100.8, 101.5},
                              {101.5, 103, 101, 102.5}};
    qg_bars b = make_bars(rows, 4);
    qg_strategy s = parse_ok(cross_spec);
    qg_bt_result r = run(&s, &b, cfg_cash(1000));
    cr_assert_eq(r.n_trades, 1);
    cr_assert_eq(r.trades[0].reason, QG_EXIT_REASON_END);
    cr_assert_eq(r.trades[0].exit_bar, 3);
    cr_assert_float_eq(r.trades[0].exit_price, 102.5, EPS);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

Test(backtest, sizing_fixed_risk_and_cap)
{
    const double rows[][4] = {{99, 99.5, 98.5, 99},
                              {99, 101, 98.9, 100.5},
                              {100, 100.5, 99.5, 100},
                              {100, 100.5, 99.5, 100}};
    qg_bars b = make_bars(rows, 4);
    qg_strategy s = parse_ok("{\"entry\":{\"long\":{\"cross_above\":[\"close\",100]}},"
                             "\"sizing\":{\"fixed_qty\":2}}");
    qg_bt_result r = run(&s, &b, cfg_cash(10000));
    cr_assert_float_eq(r.trades[0].qty, 2.0, EPS);
    qg_bt_result_free(&r);
    /* Risk 1% of 10000 = 100 with a stop 2% (2.0) away: 50 units. */
    s = parse_ok("{\"entry\":{\"long\":{\"cross_above\":[\"close\",100]}},"
                 "\"stop_loss\":{\"percent\":2},\"sizing\":{\"risk_percent\":1}}");
    r = run(&s, &b, cfg_cash(10000));
    cr_assert_float_eq(r.trades[0].qty, 50.0, EPS);
    qg_bt_result_free(&r);
    /* Risk 10% with a 1% stop asks for 1000 units (100000): capped at equity. */
    s = parse_ok("{\"entry\":{\"long\":{\"cross_above\":[\"close\",100]}},"
                 "\"stop_loss\":{\"percent\":1},\"sizing\":{\"risk_percent\":10}}");
    r = run(&s, &b, cfg_cash(10000));
    cr_assert_float_eq(r.trades[0].qty, 100.0, EPS);
    qg_bt_result_free(&r);
    /* --size-pct overrides the spec. */
    qg_bt_config c = cfg_cash(10000);
    c.size_pct = 25;
    r = run(&s, &b, c);
    cr_assert_float_eq(r.trades[0].qty, 25.0, EPS);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

Test(backtest, reverse_when_both_directions)
{
    qg_bars b = make_bars(cross_rows, 6);
    qg_strategy s = parse_ok(cross_spec);
    qg_bt_config c = cfg_cash(1000);
    c.direction = QG_DIR_BOTH;
    qg_bt_result r = run(&s, &b, c);
    /* Long from bar 2, reversed to short at bar 4's open, short closed at the end. */
    cr_assert_eq(r.n_trades, 2);
    cr_assert_eq(r.trades[0].side, 1);
    cr_assert_eq(r.trades[0].reason, QG_EXIT_REASON_REVERSE);
    cr_assert_eq(r.trades[1].side, -1);
    cr_assert_eq(r.trades[1].entry_bar, 4);
    cr_assert_float_eq(r.trades[1].entry_price, 98.0, EPS);
    cr_assert_eq(r.trades[1].reason, QG_EXIT_REASON_END);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

/* A random walk with consistent OHLC, deterministic. */
static qg_bars random_bars(size_t n, uint64_t seed)
{
    qg_bars b = {0};
    double p = 100;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(seed >> 11) / 9007199254740992.0 - 0.5;
        double o = p, c = p * (1 + u * 0.02);
        double hi = fmax(o, c) * (1 + fabs(u) * 0.005), lo = fmin(o, c) * (1 - fabs(u) * 0.005);
        qg_bar bar = {(int64_t)i * 60000, o, hi, lo, c, 10};
        qg_bars_push(&b, &bar);
        p = c;
    }
    b.timeframe_ms = 60000;
    return b;
}

typedef struct {
    double max_err;
    size_t bars;
} invariant_state;

static void check_equity(void *ud, const qg_bar_state *st)
{
    invariant_state *is = ud;
    double err = fabs(st->equity - (st->cash + st->qty * st->close));
    if (err > is->max_err) is->max_err = err;
    is->bars++;
}

Test(backtest, equity_is_cash_plus_position_every_bar)
{
    qg_bars b = random_bars(20000, 7);
    const char *names[] = {"sma_cross", "rsi_reversion", "donchian_breakout"};
    for (size_t k = 0; k < 3; k++) {
        const char *json = qg_strategy_builtin(names[k]);
        qg_strategy s = parse_ok(json);
        invariant_state is = {0};
        qg_bt_config c = cfg_cash(10000);
        c.fee_bps = 5;
        c.slippage_bps = 3;
        c.direction = QG_DIR_BOTH;
        c.on_bar = check_equity;
        c.on_bar_ud = &is;
        qg_bt_result r = run(&s, &b, c);
        cr_assert_eq(is.bars, b.n);
        cr_assert_lt(is.max_err, 1e-6, "%s: %g", names[k], is.max_err);
        cr_assert_gt(r.n_trades, 10, "%s traded %zu times", names[k], r.n_trades);
        /* The trades account for all of the change in equity. */
        double sum = 0;
        for (size_t i = 0; i < r.n_trades; i++) sum += r.trades[i].pnl;
        cr_assert_float_eq(r.m.final_equity - r.m.start_equity, sum, 1e-6);
        cr_assert_eq(r.m.wins + r.m.losses <= r.m.trades, true);
        qg_bt_result_free(&r);
    }
    qg_bars_free(&b);
}

/* Field by field: struct padding is not part of a trade. */
static bool same_trade(const qg_trade *a, const qg_trade *b)
{
    return a->side == b->side && a->entry_bar == b->entry_bar && a->exit_bar == b->exit_bar &&
           a->entry_ts == b->entry_ts && a->exit_ts == b->exit_ts && a->qty == b->qty &&
           a->entry_price == b->entry_price && a->exit_price == b->exit_price &&
           a->fees == b->fees && a->pnl == b->pnl && a->reason == b->reason;
}

Test(backtest, removing_future_bars_never_changes_past_trades)
{
    qg_bars b = random_bars(5000, 11);
    qg_strategy s = parse_ok(qg_strategy_builtin("bollinger_breakout"));
    qg_bt_config c = cfg_cash(10000);
    c.direction = QG_DIR_BOTH;
    qg_bt_result full = run(&s, &b, c);
    const size_t cuts[] = {100, 777, 2500, 4000, 4999};
    for (size_t k = 0; k < 5; k++) {
        qg_bars prefix = qg_bars_view(&b, 0, cuts[k]);
        qg_bt_result part = run(&s, &prefix, c);
        size_t n = 0;
        for (size_t i = 0; i < full.n_trades && full.trades[i].exit_bar < cuts[k] - 1; i++, n++) {
            cr_assert(n < part.n_trades);
            cr_assert(same_trade(&full.trades[i], &part.trades[i]), "trade %zu differs at cut %zu",
                      i, cuts[k]);
        }
        qg_bt_result_free(&part);
    }
    qg_bt_result_free(&full);
    qg_bars_free(&b);
}

Test(backtest, drawdown_and_trade_metrics_by_hand)
{
    /* Long from bar 2 (open 100) to the end; closes 100, 110, 99, 121. */
    const double rows[][4] = {{99, 99.5, 98.5, 99}, {99, 101, 98.9, 100.5}, {100, 100.5, 99.5, 100},
                              {100, 110, 100, 110}, {110, 110, 99, 99},     {99, 121, 99, 121}};
    qg_bars b = make_bars(rows, 6);
    qg_strategy s = parse_ok("{\"entry\":{\"long\":{\"cross_above\":[\"close\",100]}}}");
    qg_bt_result r = run(&s, &b, cfg_cash(1000));
    /* 10 units; equity 1000, 1000, 1000, 1100, 990, 1210: max drawdown 10%. */
    cr_assert_float_eq(r.m.max_drawdown, 10.0, 1e-9);
    cr_assert_float_eq(r.m.total_return, 21.0, 1e-9);
    cr_assert_eq(r.m.trades, 1);
    cr_assert_float_eq(r.m.win_rate, 100.0, 1e-9);
    cr_assert(isinf(r.m.profit_factor));
    /* In the market for bars 2..5: 4 of 6. */
    cr_assert_float_eq(r.m.exposure, 400.0 / 6.0, 1e-9);
    /* Under water from bar 3 (peak) until bar 5: 2 hours. */
    cr_assert_eq(r.m.max_drawdown_ms, 2 * H);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

/* ---- look-ahead check ---- */

Test(backtest, lookahead_check_passes_builtins)
{
    qg_bars b = random_bars(3000, 3);
    for (const char *const *n = qg_strategy_builtin_names(); *n; n++) {
        qg_strategy s = parse_ok(qg_strategy_builtin(*n));
        qg_strategy_runner runner = {.strategy = &s, .cfg = cfg_cash(10000)};
        runner.cfg.direction = QG_DIR_BOTH;
        qg_check_report rep;
        qg_error err = {0};
        cr_assert_eq(qg_lookahead_check(qg_strategy_decide, &runner, &b, 30, 2, &rep, &err), QG_OK,
                     "%s", err.msg);
        cr_assert_gt(rep.decisions, 0, "%s made no decision", *n);
        cr_assert_eq(rep.mismatches, 0, "%s: %zu mismatches", *n, rep.mismatches);
    }
    qg_bars_free(&b);
}

/* Decides "enter long" at bar t when the NEXT close is higher: look-ahead. */
static qg_status peeking_decider(void *ud, const qg_bars *p, qg_decision **out, size_t *n,
                                 qg_error *err)
{
    *out = malloc(p->n * sizeof **out);
    *n = 0;
    for (size_t t = 0; t + 1 < p->n; t++)
        if (p->close[t + 1] > p->close[t]) (*out)[(*n)++] = (qg_decision){t, QG_ACT_ENTER_LONG};
    return QG_OK;
}

Test(backtest, lookahead_check_catches_a_peeking_strategy)
{
    qg_bars b = random_bars(2000, 5);
    qg_check_report rep;
    qg_error err = {0};
    cr_assert_eq(qg_lookahead_check(peeking_decider, NULL, &b, 20, 2, &rep, &err), QG_OK);
    cr_assert_gt(rep.mismatches, 0);
    cr_assert_gt(rep.n_reported, 0);
    /* The changed decision is the last bar of a prefix. */
    cr_assert_eq(rep.reported[0].bar, rep.reported[0].cut - 1);
    cr_assert_eq(rep.reported[0].full, QG_ACT_ENTER_LONG);
    qg_bars_free(&b);
}

/* ---- grid search ---- */

Test(backtest, optimize_sorts_skips_and_is_thread_independent)
{
    qg_bars b = random_bars(8000, 9);
    const char *json = qg_strategy_builtin("sma_cross");
    qg_grid_axis axes[2];
    qg_error err = {0};
    cr_assert_eq(qg_grid_axis_parse("fast=5:30:5", &axes[0], &err), QG_OK);
    cr_assert_eq(qg_grid_axis_parse("slow=20:40:10", &axes[1], &err), QG_OK);
    qg_bt_config c = cfg_cash(10000);
    qg_grid_result g1, g2;
    cr_assert_eq(
        qg_optimize(json, strlen(json), NULL, 0, axes, 2, &b, &c, QG_OBJ_RETURN, 1, &g1, &err),
        QG_OK, "%s", err.msg);
    cr_assert_eq(
        qg_optimize(json, strlen(json), NULL, 0, axes, 2, &b, &c, QG_OBJ_RETURN, 2, &g2, &err),
        QG_OK);
    cr_assert_eq(g1.points, 18);
    /* fast >= slow: (20,20), (25,20), (30,20), (30,30) break "fast < slow". */
    cr_assert_eq(g1.skipped, 4);
    cr_assert_eq(g1.n_rows, 14);
    for (size_t i = 1; i < g1.n_rows; i++) cr_assert_geq(g1.rows[i - 1].score, g1.rows[i].score);
    for (size_t i = 0; i < g1.n_rows; i++) {
        cr_assert_eq(g1.rows[i].score, g2.rows[i].score);
        cr_assert_eq(g1.rows[i].values[0], g2.rows[i].values[0]);
    }
    /* The best row matches a plain backtest with its parameters. */
    qg_param_override ov[] = {{"fast", g1.rows[0].values[0]}, {"slow", g1.rows[0].values[1]}};
    qg_strategy s;
    cr_assert_eq(qg_strategy_parse(json, strlen(json), ov, 2, &s, &err), QG_OK);
    qg_bt_result r = run(&s, &b, c);
    cr_assert_float_eq(r.m.total_return, g1.rows[0].score, 1e-12);
    qg_bt_result_free(&r);
    qg_grid_result_free(&g1);
    qg_grid_result_free(&g2);
    qg_bars_free(&b);
    cr_assert_eq(qg_grid_axis_parse("fast=5:1:1", &axes[0], &err), QG_EINVAL);
    cr_assert_eq(qg_grid_axis_parse("fast", &axes[0], &err), QG_EINVAL);
}

Test(backtest, config_errors_name_the_field)
{
    qg_bars b = make_bars(cross_rows, 6);
    qg_strategy s = parse_ok(cross_spec);
    qg_bt_config c = cfg_cash(-5);
    qg_bt_result r;
    qg_error err = {0};
    cr_assert_eq(qg_backtest_run(&s, &b, &c, &r, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "cash"), "%s", err.msg);
    s = parse_ok("{\"entry\":{\"long\":{\"gt\":[\"close\",1]}}}");
    c = cfg_cash(100);
    c.direction = QG_DIR_SHORT;
    cr_assert_eq(qg_backtest_run(&s, &b, &c, &r, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "entry.short"), "%s", err.msg);
    qg_bars_free(&b);
}

static void ignore_bar(void *ud, const qg_bar_state *st)
{
    (void)ud;
    (void)st;
}

/* Stretches where nothing can happen (flat, or holding without stops) are
 * skipped or walked in a tight loop unless an observer watches every bar;
 * both ways must give exactly the same numbers. */
Test(backtest, fast_paths_change_nothing)
{
    const size_t sizes[] = {20000 /* < 20 days: per-bar returns */, 60000 /* daily */};
    for (size_t z = 0; z < 2; z++) {
        qg_bars b = random_bars(sizes[z], 21 + z);
        for (const char *const *n = qg_strategy_builtin_names(); *n; n++) {
            qg_strategy s = parse_ok(qg_strategy_builtin(*n));
            qg_bt_config c = cfg_cash(10000);
            c.fee_bps = 4;
            c.curve_points = 333;
            qg_bt_result fast = run(&s, &b, c);
            c.on_bar = ignore_bar;
            qg_bt_result walked = run(&s, &b, c);
            const qg_metrics *x = &fast.m, *y = &walked.m;
            cr_assert_eq(x->daily_returns, z == 1);
            cr_assert_eq(x->final_equity, y->final_equity, "%s", *n);
            cr_assert_eq(x->sharpe, y->sharpe, "%s: %.17g vs %.17g", *n, x->sharpe, y->sharpe);
            cr_assert_eq(x->sortino, y->sortino, "%s", *n);
            cr_assert_eq(x->volatility, y->volatility, "%s", *n);
            cr_assert_eq(x->max_drawdown, y->max_drawdown, "%s", *n);
            cr_assert_eq(x->max_drawdown_ms, y->max_drawdown_ms, "%s", *n);
            cr_assert_eq(x->exposure, y->exposure, "%s", *n);
            cr_assert_eq(x->periods_per_year, y->periods_per_year, "%s", *n);
            cr_assert_eq(fast.n_curve, walked.n_curve, "%s", *n);
            for (size_t i = 0; i < fast.n_curve; i++) {
                cr_assert_eq(fast.curve[i].ts, walked.curve[i].ts, "%s point %zu", *n, i);
                cr_assert_eq(fast.curve[i].equity, walked.curve[i].equity);
                cr_assert_eq(fast.curve[i].drawdown, walked.curve[i].drawdown);
            }
            qg_bt_result_free(&fast);
            qg_bt_result_free(&walked);
        }
        qg_bars_free(&b);
    }
}

Test(backtest, atr_stop_and_price_target_by_hand)
{
    /* TR1 = max(100-98, |100-99|, |98-99|) = 2; TR2 = max(101-99, 1.5, 0.5) = 2;
     * ATR(2) at bar 2 = (2 + 2) / 2 = 2. The close crosses above 100 at bar 2,
     * so the entry fills at bar 3's open (101): stop 101 - 1.5 x 2 = 98,
     * target 101 + 1.5 = 102.5. Bar 3 dips to 97.5: stopped at 98. */
    const double rows[][4] = {{99, 100, 98, 99},
                              {99, 100, 98, 99.5},
                              {99.5, 101, 99, 100.5},
                              {101, 101.5, 97.5, 98},
                              {98, 99, 97, 98.5}};
    qg_bars b = make_bars(rows, 5);
    qg_strategy s = parse_ok("{\"entry\":{\"long\":{\"cross_above\":[\"close\",100]}},"
                             "\"stop_loss\":{\"atr\":1.5,\"period\":2},"
                             "\"take_profit\":{\"price\":1.5}}");
    qg_bt_result r = run(&s, &b, cfg_cash(1000));
    cr_assert_eq(r.n_trades, 1);
    cr_assert_eq(r.trades[0].entry_bar, 3);
    cr_assert_eq(r.trades[0].reason, QG_EXIT_REASON_STOP);
    cr_assert_float_eq(r.trades[0].exit_price, 98.0, EPS);
    qg_bt_result_free(&r);
    /* Same data, bar 3 rallies to 103 instead: the 102.5 target fills. */
    const double up[][4] = {{99, 100, 98, 99},
                            {99, 100, 98, 99.5},
                            {99.5, 101, 99, 100.5},
                            {101, 103, 100.5, 102},
                            {102, 102.5, 101, 101.5}};
    qg_bars b2 = make_bars(up, 5);
    r = run(&s, &b2, cfg_cash(1000));
    cr_assert_eq(r.n_trades, 1);
    cr_assert_eq(r.trades[0].reason, QG_EXIT_REASON_TARGET);
    cr_assert_float_eq(r.trades[0].exit_price, 102.5, EPS);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
    qg_bars_free(&b2);
}

/* ---- risk metrics against an independent computation ---- */

typedef struct {
    double eq[100000];
    size_t n;
} equity_log;

static void log_equity(void *ud, const qg_bar_state *st)
{
    equity_log *l = ud;
    l->eq[l->n++] = st->equity;
}

/* Sharpe, Sortino and volatility from a list of period returns. */
static void risk_from_returns(const double *r, size_t n, double ppy, double *sharpe,
                              double *sortino, double *vol)
{
    double mean = 0, var = 0, down = 0;
    for (size_t i = 0; i < n; i++) mean += r[i] / (double)n;
    for (size_t i = 0; i < n; i++) {
        var += (r[i] - mean) * (r[i] - mean) / (double)(n - 1);
        if (r[i] < 0) down += r[i] * r[i] / (double)n;
    }
    *sharpe = mean / sqrt(var) * sqrt(ppy);
    *sortino = mean / sqrt(down) * sqrt(ppy);
    *vol = sqrt(var) * sqrt(ppy) * 100;
}

Test(backtest, sharpe_sortino_cagr_match_an_independent_computation)
{
    static equity_log lg;
    static double r[100000];
    /* 10 days of minute bars: per-bar returns. 60 days of hourly bars: daily. */
    const int64_t spacing[] = {60000, 3600000};
    const size_t count[] = {14400, 1440};
    for (int z = 0; z < 2; z++) {
        qg_bars b = random_bars(count[z], 99 + (uint64_t)z);
        for (size_t i = 0; i < b.n; i++) b.ts[i] = (int64_t)i * spacing[z];
        b.timeframe_ms = spacing[z];
        qg_strategy s = parse_ok(qg_strategy_builtin("sma_cross"));
        qg_bt_config c = cfg_cash(10000);
        c.direction = QG_DIR_BOTH;
        c.on_bar = log_equity;
        c.on_bar_ud = &lg;
        lg.n = 0;
        qg_bt_result res = run(&s, &b, c);
        double years = (double)(b.ts[b.n - 1] - b.ts[0] + spacing[z]) / (365.25 * 86400000.0);
        size_t nr = 0;
        double ppy;
        if (z == 0) {
            for (size_t i = 1; i < lg.n; i++) r[nr++] = lg.eq[i] / lg.eq[i - 1] - 1;
            ppy = (double)b.n / years;
        } else {
            /* The equity at the last bar of each UTC day (start: the cash). */
            double prev = 10000;
            size_t days = 0;
            for (size_t i = 0; i < b.n; i++) {
                bool last_of_day = i + 1 == b.n || b.ts[i + 1] / 86400000 != b.ts[i] / 86400000;
                if (!last_of_day) continue;
                double end = i + 1 == b.n ? res.m.final_equity : lg.eq[i];
                r[nr++] = end / prev - 1;
                prev = end;
                days++;
            }
            ppy = (double)days / years;
        }
        double sharpe, sortino, vol;
        risk_from_returns(r, nr, ppy, &sharpe, &sortino, &vol);
        cr_assert_eq(res.m.daily_returns, z == 1);
        cr_assert_float_eq(res.m.periods_per_year, ppy, 1e-6 * ppy);
        cr_assert_float_eq(res.m.sharpe, sharpe, 1e-9 * fabs(sharpe) + 1e-12, "%d: %.12g vs %.12g",
                           z, res.m.sharpe, sharpe);
        cr_assert_float_eq(res.m.sortino, sortino, 1e-9 * fabs(sortino) + 1e-12);
        cr_assert_float_eq(res.m.volatility, vol, 1e-9 * vol);
        double cagr = (pow(res.m.final_equity / 10000, 1 / years) - 1) * 100;
        cr_assert_float_eq(res.m.cagr, cagr, 1e-9 * fabs(cagr) + 1e-12);
        cr_assert_float_eq(res.m.calmar, cagr / res.m.max_drawdown, 1e-9);
        /* SQN from the trades. */
        double mean = 0, var = 0, nt = (double)res.n_trades;
        for (size_t i = 0; i < res.n_trades; i++) mean += res.trades[i].pnl / nt;
        for (size_t i = 0; i < res.n_trades; i++)
            var += (res.trades[i].pnl - mean) * (res.trades[i].pnl - mean) / (nt - 1);
        cr_assert_float_eq(res.m.sqn, sqrt(nt) * mean / sqrt(var), 1e-9);
        qg_bt_result_free(&res);
        qg_bars_free(&b);
    }
}

Test(backtest, stop_and_target_use_their_own_atr_periods)
{
    /* ATR(1) at bar 2 is TR2 = 2; ATR(2) at bar 2 is (TR1 + TR2) / 2 = (4 + 2) / 2 = 3.
     * Entry at bar 3's open (101): stop 101 - 1 x ATR(1) = 99, target
     * 101 + 1 x ATR(2) = 104. Bar 3 reaches 104.2 without touching 99. */
    const double rows[][4] = {{99, 100, 98, 99},
                              {99, 101, 97, 99.5},
                              {99.5, 101, 99, 100.5},
                              {101, 104.2, 99.5, 103},
                              {103, 103.5, 102, 103}};
    qg_bars b = make_bars(rows, 5);
    qg_strategy s = parse_ok("{\"entry\":{\"long\":{\"cross_above\":[\"close\",100]}},"
                             "\"stop_loss\":{\"atr\":1,\"period\":1},"
                             "\"take_profit\":{\"atr\":1,\"period\":2}}");
    qg_bt_result r = run(&s, &b, cfg_cash(1000));
    cr_assert_eq(r.n_trades, 1);
    cr_assert_eq(r.trades[0].reason, QG_EXIT_REASON_TARGET);
    cr_assert_float_eq(r.trades[0].exit_price, 104.0, EPS);
    qg_bt_result_free(&r);
    qg_bars_free(&b);
}

Test(backtest, grid_axes_ranges_lists_and_errors)
{
    qg_grid_axis a;
    qg_error err = {0};
    cr_assert_eq(qg_grid_axis_parse("fast=5:50:5", &a, &err), QG_OK);
    cr_assert_eq(qg_grid_axis_count(&a), 10);
    cr_assert_float_eq(qg_grid_axis_value(&a, 9), 50, 1e-12);
    cr_assert_eq(qg_grid_axis_parse("k=0.5:2:0.5", &a, &err), QG_OK);
    cr_assert_eq(qg_grid_axis_count(&a), 4);
    cr_assert_eq(qg_grid_axis_parse("fast=5,8,13,21", &a, &err), QG_OK);
    cr_assert_eq(qg_grid_axis_count(&a), 4);
    cr_assert_float_eq(qg_grid_axis_value(&a, 2), 13, 1e-12);
    cr_assert_eq(qg_grid_axis_parse("fast=7", &a, &err), QG_OK);
    cr_assert_eq(qg_grid_axis_count(&a), 1);
    const char *bad[] = {
        "fast=nan:1:1", "fast=1:inf:1", "fast=-1e308:1e308:1", "fast=1:2:1e-300", "fast=1:2:0",
        "fast=5:1:1",   "fast=1:2",     "fast=5,x,7",          "fast=",           "=1:2:1",
        "fast=1:2:1:3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = '\0';
        cr_assert_eq(qg_grid_axis_parse(bad[i], &a, &err), QG_EINVAL, "%s accepted", bad[i]);
        cr_assert(strstr(err.msg, bad[i]), "%s: %s", bad[i], err.msg);
    }
    /* A list axis drives the search like a range. */
    qg_bars b = random_bars(3000, 4);
    const char *json = qg_strategy_builtin("sma_cross");
    qg_grid_axis axes[2];
    qg_grid_axis_parse("fast=3,7,40", &axes[0], &err);
    qg_grid_axis_parse("slow=30", &axes[1], &err);
    qg_bt_config c = cfg_cash(1000);
    qg_grid_result g;
    cr_assert_eq(
        qg_optimize(json, strlen(json), NULL, 0, axes, 2, &b, &c, QG_OBJ_RETURN, 2, &g, &err),
        QG_OK, "%s", err.msg);
    cr_assert_eq(g.points, 3);
    cr_assert_eq(g.skipped, 1); /* 40 < 30 breaks the constraint */
    qg_grid_result_free(&g);
    qg_bars_free(&b);
}

Test(backtest, start_bar_trades_from_a_warm_start)
{
    /* Close: 99, 99, 99.5, 100.5 (crosses 100 at bar 3), ... */
    const double rows[][4] = {{99, 99.5, 98.5, 99},     {99, 99.5, 98.5, 99},
                              {99, 99.6, 98.9, 99.5},   {99.5, 101, 99.4, 100.5},
                              {101, 102, 100.8, 101.5}, {101.5, 102, 101, 101.8}};
    qg_bars b = make_bars(rows, 6);
    qg_strategy s = parse_ok("{\"entry\":{\"long\":{\"cross_above\":[\"close\",100]}}}");
    qg_bt_config c = cfg_cash(1000);
    c.start_bar = 3;
    qg_bt_result r = run(&s, &b, c);
    /* Bar 2 is history, so the cross on bar 3 counts: filled at bar 4. */
    cr_assert_eq(r.n_trades, 1);
    cr_assert_eq(r.trades[0].entry_bar, 4);
    cr_assert_eq(r.m.bars, 3);
    cr_assert_eq(r.m.start_ts, 3 * H);
    cr_assert_float_eq(r.m.buy_hold_return, (101.8 / 99.5 - 1) * 100, 1e-9);
    qg_bt_result_free(&r);
    /* Cut at bar 3 instead, the cross has no previous bar and never fires. */
    qg_bars cut = qg_bars_view(&b, 3, 3);
    r = run(&s, &cut, cfg_cash(1000));
    cr_assert_eq(r.n_trades, 0);
    qg_bt_result_free(&r);
    c.start_bar = 6;
    qg_error err = {0};
    cr_assert_eq(qg_backtest_run(&s, &b, &c, &r, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "start_bar"), "%s", err.msg);
    qg_bars_free(&b);
}

Test(backtest, start_bar_equals_cutting_when_nothing_needs_history)
{
    /* Conditions on this bar only: warming up changes nothing, so starting
     * at bar k must give exactly what the data cut at k gives. */
    qg_bars b = random_bars(40000, 8);
    qg_strategy s = parse_ok("{\"entry\":{\"long\":{\"gt\":[\"close\",\"open\"]}},"
                             "\"exit\":{\"long\":{\"lt\":[\"close\",\"open\"]}}}");
    qg_bt_config c = cfg_cash(5000);
    c.fee_bps = 3;
    c.start_bar = 12345;
    qg_bt_result warm = run(&s, &b, c);
    qg_bars cut = qg_bars_view(&b, 12345, b.n - 12345);
    c.start_bar = 0;
    qg_bt_result cold = run(&s, &cut, c);
    cr_assert_eq(warm.n_trades, cold.n_trades);
    cr_assert_eq(warm.trades[0].entry_bar, cold.trades[0].entry_bar + 12345);
    cr_assert_eq(warm.m.final_equity, cold.m.final_equity);
    cr_assert_eq(warm.m.sharpe, cold.m.sharpe);
    cr_assert_eq(warm.m.max_drawdown, cold.m.max_drawdown);
    cr_assert_eq(warm.m.exposure, cold.m.exposure);
    cr_assert_eq(warm.m.bars, cold.m.bars);
    cr_assert_eq(warm.n_curve, cold.n_curve);
    qg_bt_result_free(&warm);
    qg_bt_result_free(&cold);
    qg_bars_free(&b);
}
