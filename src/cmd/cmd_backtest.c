/*
 * cmd_backtest.c - `quantgate backtest`: a strategy over a file of bars, as
 * a readable summary, JSON (--json), a trades CSV and an HTML report.
 */
#include "cmd/strategy_args.h"

#include <quantgate/file.h>
#include <quantgate/time.h>

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("usage: quantgate backtest --data FILE --strategy NAME|SPEC.json [options]\n\n"
           "Runs the strategy bar by bar: conditions on the close of bar t, market orders\n"
           "filled at the open of bar t+1, stops before targets inside a bar.\n\n"
           "options:\n%s"
           "  --json                metrics, trades and settings as JSON on stdout\n"
           "  --trades-csv PATH     write the trades as CSV\n"
           "  --report PATH.html    write a self-contained HTML report\n",
           QG_STRATEGY_OPTIONS_HELP);
}

static void date_of(int64_t ms, char *out, size_t cap)
{
    char iso[40];
    qg_time_format_iso(ms, iso, sizeof iso);
    snprintf(out, cap, "%.10s", iso);
}

typedef enum { CELL_MONEY, CELL_PCT, CELL_RATIO, CELL_COUNT, CELL_DAYS } cell_kind;

typedef struct {
    const char *label;
    double value;
    cell_kind kind;
} cell;

static void format_cell(const cell *c, char *out, size_t cap)
{
    static const char *const units[] = {"", " %", "", "", " days"};
    if (!c->label)
        snprintf(out, cap, "%s", "");
    else if (isnan(c->value))
        snprintf(out, cap, "-");
    else if (isinf(c->value))
        snprintf(out, cap, "%sinf", c->value < 0 ? "-" : "");
    else if (c->kind == CELL_COUNT)
        snprintf(out, cap, "%.0f", c->value);
    else
        snprintf(out, cap, "%.2f%s", c->value, units[c->kind]);
}

/* Two columns of label and value. */
static void print_cells(const cell *cells, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        char a[40], b[40];
        format_cell(&cells[i], a, sizeof a);
        format_cell(&cells[i + 1], b, sizeof b);
        printf("  %-18s %14s    %-18s %14s\n", cells[i].label, a,
               cells[i + 1].label ? cells[i + 1].label : "", b);
    }
}

static void print_summary(const qg_strategy *s, const qg_strategy_args *sa, const char *data,
                          const qg_bars *bars, const qg_bt_result *r)
{
    const qg_metrics *m = &r->m;
    char desc[256], from[16], to[16], tf[16] = "?";
    qg_strategy_describe(s, desc, sizeof desc);
    date_of(m->start_ts, from, sizeof from);
    date_of(m->end_ts, to, sizeof to);
    if (bars->timeframe_ms) qg_timeframe_format(bars->timeframe_ms, tf, sizeof tf);
    qg_direction dir = sa->cfg.direction ? sa->cfg.direction : s->direction;
    printf("strategy  %s, %s\n", desc, qg_direction_name(dir));
    printf("data      %s: %zu bars of %s, %s to %s", data, m->bars, tf, from, to);
    if (sa->cfg.start_bar)
        printf(" (indicators warmed up on the %zu bars before)", sa->cfg.start_bar);
    printf("\n");
    printf("settings  cash %.2f, fee %g bps, slippage %g bps per side\n\n", sa->cfg.cash,
           sa->cfg.fee_bps, sa->cfg.slippage_bps);
    const cell cells[] = {
        {"Final equity", m->final_equity, CELL_MONEY},
        {"Trades", (double)m->trades, CELL_COUNT},
        {"Total return", m->total_return, CELL_PCT},
        {"Win rate", m->win_rate, CELL_PCT},
        {"Buy & hold", m->buy_hold_return, CELL_PCT},
        {"Profit factor", m->profit_factor, CELL_RATIO},
        {"CAGR", m->cagr, CELL_PCT},
        {"Expectancy", m->expectancy, CELL_MONEY},
        {"Volatility (ann.)", m->volatility, CELL_PCT},
        {"Avg win", m->avg_win, CELL_MONEY},
        {"Sharpe", m->sharpe, CELL_RATIO},
        {"Avg loss", m->avg_loss, CELL_MONEY},
        {"Sortino", m->sortino, CELL_RATIO},
        {"Best trade", m->best_trade, CELL_MONEY},
        {"Calmar", m->calmar, CELL_RATIO},
        {"Worst trade", m->worst_trade, CELL_MONEY},
        {"Max drawdown", m->max_drawdown, CELL_PCT},
        {"Exposure", m->exposure, CELL_PCT},
        {"Max DD duration", (double)m->max_drawdown_ms / QG_MS_PER_DAY, CELL_DAYS},
        {"SQN", m->sqn, CELL_RATIO},
        {"Fees paid", m->fees, CELL_MONEY},
        {NULL, 0, CELL_MONEY},
    };
    print_cells(cells, sizeof cells / sizeof cells[0]);
    printf("\n(Sharpe, Sortino and volatility from %s returns, %.0f periods a year)\n",
           m->daily_returns ? "daily" : "per-bar", m->periods_per_year);
}

static int print_json(const qg_strategy *s, const qg_strategy_args *sa, const char *data,
                      const qg_bars *bars, const qg_bt_result *r)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *st = cJSON_AddObjectToObject(root, "strategy");
    cJSON_AddStringToObject(st, "name", s->name);
    cJSON *params = cJSON_AddObjectToObject(st, "params");
    for (size_t i = 0; i < s->n_params; i++)
        cJSON_AddNumberToObject(params, s->params[i].name, s->params[i].value);
    qg_direction dir = sa->cfg.direction ? sa->cfg.direction : s->direction;
    cJSON *set = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddStringToObject(set, "data", data);
    char tf[16] = "";
    if (bars->timeframe_ms) qg_timeframe_format(bars->timeframe_ms, tf, sizeof tf);
    cJSON_AddStringToObject(set, "timeframe", tf);
    cJSON_AddNumberToObject(set, "cash", sa->cfg.cash);
    cJSON_AddNumberToObject(set, "fee_bps", sa->cfg.fee_bps);
    cJSON_AddNumberToObject(set, "slippage_bps", sa->cfg.slippage_bps);
    if (sa->cfg.size_pct > 0) cJSON_AddNumberToObject(set, "size_pct", sa->cfg.size_pct);
    cJSON_AddNumberToObject(set, "warmup_bars", (double)sa->cfg.start_bar);
    cJSON_AddStringToObject(set, "direction", qg_direction_name(dir));
    cJSON_AddItemToObject(root, "metrics", qg_bt_metrics_json(&r->m));
    cJSON_AddItemToObject(root, "trades", qg_bt_trades_json(r));
    return qg_json_print("backtest", root);
}

static int write_trades_csv(const char *path, const qg_bt_result *r)
{
    FILE *f = fopen(path, "w");
    if (!f) return qg_cmd_fail("backtest", "--trades-csv %s: cannot write", path);
    fprintf(f, "entry_time,exit_time,side,quantity,entry_price,exit_price,fees,pnl,return_pct,"
               "exit_reason\n");
    for (size_t i = 0; i < r->n_trades; i++) {
        const qg_trade *t = &r->trades[i];
        char a[40], b[40];
        qg_time_format_iso(t->entry_ts, a, sizeof a);
        qg_time_format_iso(t->exit_ts, b, sizeof b);
        fprintf(f, "%s,%s,%s,%.10g,%.10g,%.10g,%.6f,%.6f,%.6f,%s\n", a, b,
                t->side > 0 ? "long" : "short", t->qty, t->entry_price, t->exit_price, t->fees,
                t->pnl, t->return_pct, qg_exit_reason_name(t->reason));
    }
    if (fclose(f) != 0) return qg_cmd_fail("backtest", "--trades-csv %s: write failed", path);
    return 0;
}

static int write_report(const char *path, const qg_strategy *s, const qg_strategy_args *sa,
                        const char *data, const qg_bt_result *r)
{
    char title[512], settings[512], desc[256];
    qg_strategy_describe(s, desc, sizeof desc);
    snprintf(title, sizeof title, "%s on %s", s->name, data);
    snprintf(settings, sizeof settings, "%s; cash %.2f; fee %g bps; slippage %g bps per side", desc,
             sa->cfg.cash, sa->cfg.fee_bps, sa->cfg.slippage_bps);
    qg_report_meta meta = {.title = title, .data_name = data, .settings = settings};
    qg_buf html;
    qg_buf_init(&html, 256u << 20);
    qg_error err = {0};
    int rc = 0;
    if (qg_report_html(r, s, &meta, &html))
        rc = qg_cmd_fail("backtest", "--report: the report is larger than 256 MiB");
    else if (qg_file_write_all(path, html.data, html.len, &err))
        rc = qg_cmd_fail("backtest", "--report: %s", err.msg);
    qg_buf_free(&html);
    return rc;
}

int qg_cmd_backtest(int argc, char **argv)
{
    qg_strategy_args sa;
    qg_data_args d = {0};
    const char *trades_csv = NULL, *report = NULL;
    bool json = false;
    qg_strategy_args_init(&sa);
    qg_args a = qg_args_begin(argc, argv);
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help")) return usage(), 0;
        if (qg_strategy_args_match(&a, &sa) || qg_data_args_match(&a, &d)) continue;
        if (qg_args_flag(&a, "--json")) {
            json = true;
            continue;
        }
        if (qg_args_value(&a, "--trades-csv", &trades_csv)) continue;
        if (qg_args_value(&a, "--report", &report)) continue;
        return qg_args_unknown(&a);
    }
    qg_strategy s;
    qg_bars bars = {0}, view;
    qg_bt_result r = {0};
    qg_error err = {0};
    int rc = qg_strategy_args_load("backtest", &sa, &s);
    if (rc) goto out;
    if ((rc = qg_strategy_data_load("backtest", &s, &d, &bars, &view))) goto out;
    qg_progress prog;
    qg_progress_attach(&prog, "backtest", d.quiet, &sa.cfg);
    qg_bars run = qg_warm_view(&bars, &view, &sa.cfg);
    qg_status st = qg_backtest_run(&s, &run, &sa.cfg, &r, &err);
    qg_progress_done(&prog);
    if (st) {
        rc = qg_cmd_fail("backtest", "%s", err.msg);
        goto out;
    }
    if (json)
        rc = print_json(&s, &sa, d.path, &run, &r);
    else
        print_summary(&s, &sa, d.path, &run, &r);
    if (!rc && trades_csv) rc = write_trades_csv(trades_csv, &r);
    if (!rc && report) rc = write_report(report, &s, &sa, d.path, &r);
out:
    qg_bt_result_free(&r);
    qg_bars_free(&bars);
    qg_strategy_args_free(&sa);
    return rc;
}
