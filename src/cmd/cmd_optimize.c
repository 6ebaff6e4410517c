/*
 * cmd_optimize.c - `quantgate optimize`: parallel grid search over strategy
 * parameters, printed as a table best first (or JSON).
 */
#include "cmd/strategy_args.h"

#include <quantgate/pool.h>
#include <quantgate/time.h>

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("usage: quantgate optimize --data FILE --strategy NAME|SPEC.json\n"
           "                          --grid NAME=FROM:TO:STEP [--grid ...] [options]\n\n"
           "Backtests every combination of the grid on all cores and prints the best.\n"
           "Combinations that break the spec's constraints (e.g. fast < slow) are skipped.\n\n"
           "options:\n%s"
           "  --grid NAME=FROM:TO:STEP  a parameter axis, inclusive, or NAME=V1,V2,...\n"
           "                        (repeatable, up to %d axes)\n"
           "  --objective O         sharpe (default), return, calmar or sortino\n"
           "  --threads N           threads (default: all cores, or QG_THREADS)\n"
           "  --top N               rows to print (default 10)\n"
           "  --json                the rows as JSON\n",
           QG_STRATEGY_OPTIONS_HELP, QG_GRID_MAX_AXES);
}

static void cell(double v, char *out, size_t cap)
{
    if (isfinite(v))
        snprintf(out, cap, "%.2f", v);
    else
        snprintf(out, cap, isinf(v) ? "inf" : "-");
}

static void print_table(const qg_grid_axis *axes, size_t n_axes, const qg_grid_result *g,
                        size_t top, const char *objective)
{
    printf("%4s", "#");
    for (size_t k = 0; k < n_axes; k++) printf(" %10s", axes[k].name);
    printf(" %10s %10s %8s %8s %8s %7s %7s\n", objective, "return%", "sharpe", "maxdd%", "calmar",
           "trades", "win%");
    for (size_t i = 0; i < g->n_rows && i < top; i++) {
        const qg_grid_row *r = &g->rows[i];
        char c[7][24];
        cell(r->score, c[0], sizeof c[0]);
        cell(r->m.total_return, c[1], sizeof c[1]);
        cell(r->m.sharpe, c[2], sizeof c[2]);
        cell(r->m.max_drawdown, c[3], sizeof c[3]);
        cell(r->m.calmar, c[4], sizeof c[4]);
        cell(r->m.win_rate, c[6], sizeof c[6]);
        printf("%4zu", i + 1);
        for (size_t k = 0; k < n_axes; k++) printf(" %10g", r->values[k]);
        printf(" %10s %10s %8s %8s %8s %7zu %7s\n", c[0], c[1], c[2], c[3], c[4], r->m.trades,
               c[6]);
    }
}

static int print_json(const qg_grid_axis *axes, size_t n_axes, const qg_grid_result *g, size_t top,
                      const char *objective, double seconds)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "objective", objective);
    cJSON_AddNumberToObject(root, "points", (double)g->points);
    cJSON_AddNumberToObject(root, "skipped", (double)g->skipped);
    cJSON_AddNumberToObject(root, "seconds", seconds);
    cJSON *rows = cJSON_AddArrayToObject(root, "rows");
    for (size_t i = 0; i < g->n_rows && i < top; i++) {
        const qg_grid_row *r = &g->rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON *p = cJSON_AddObjectToObject(o, "params");
        for (size_t k = 0; k < n_axes; k++) cJSON_AddNumberToObject(p, axes[k].name, r->values[k]);
        qg_json_add_number(o, "score", r->score);
        qg_json_add_number(o, "total_return_pct", r->m.total_return);
        qg_json_add_number(o, "sharpe", r->m.sharpe);
        qg_json_add_number(o, "sortino", r->m.sortino);
        qg_json_add_number(o, "calmar", r->m.calmar);
        qg_json_add_number(o, "max_drawdown_pct", r->m.max_drawdown);
        qg_json_add_number(o, "trades", (double)r->m.trades);
        qg_json_add_number(o, "win_rate_pct", r->m.win_rate);
        cJSON_AddItemToArray(rows, o);
    }
    return qg_json_print("optimize", root);
}

int qg_cmd_optimize(int argc, char **argv)
{
    qg_strategy_args sa;
    qg_data_args d = {0};
    qg_grid_axis axes[QG_GRID_MAX_AXES];
    size_t n_axes = 0;
    const char *objective = "sharpe", *v;
    long long threads = 0, top = 10;
    bool json = false;
    qg_error err = {0};
    qg_strategy_args_init(&sa);
    const char *env_threads = getenv("QG_THREADS");
    qg_args a = qg_args_begin(argc, argv);
    if (env_threads && *env_threads) threads = qg_args_int(&a, "QG_THREADS", env_threads, 1, 1024);
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help")) return usage(), 0;
        if (qg_strategy_args_match(&a, &sa) || qg_data_args_match(&a, &d)) continue;
        if (qg_args_value(&a, "--grid", &v)) {
            if (n_axes == QG_GRID_MAX_AXES)
                return qg_cmd_fail("optimize", "at most %d --grid axes", QG_GRID_MAX_AXES), 2;
            if (qg_grid_axis_parse(v, &axes[n_axes++], &err))
                return qg_cmd_fail("optimize", "--grid: %s", err.msg), 2;
            continue;
        }
        if (qg_args_value(&a, "--objective", &objective)) {
            if (qg_objective_parse(objective) < 0)
                return qg_cmd_fail("optimize",
                                   "--objective: '%s' is not sharpe, return, calmar "
                                   "or sortino",
                                   objective),
                       2;
            continue;
        }
        if (qg_args_value(&a, "--threads", &v)) {
            threads = qg_args_int(&a, "--threads", v, 1, 1024);
            continue;
        }
        if (qg_args_value(&a, "--top", &v)) {
            top = qg_args_int(&a, "--top", v, 1, 1000000);
            continue;
        }
        if (qg_args_flag(&a, "--json")) {
            json = true;
            continue;
        }
        return qg_args_unknown(&a);
    }
    if (!n_axes) return qg_cmd_fail("optimize", "give at least one --grid NAME=FROM:TO:STEP"), 2;
    qg_strategy s;
    qg_bars bars = {0}, view;
    qg_grid_result g = {0};
    int rc = qg_strategy_args_load("optimize", &sa, &s);
    if (rc) goto out;
    for (size_t k = 0; k < n_axes; k++)
        if (isnan(qg_strategy_param_value(&s, axes[k].name))) {
            rc = qg_cmd_fail("optimize", "--grid %s: strategy '%s' has no such parameter",
                             axes[k].name, s.name);
            goto out;
        }
    if ((rc = qg_strategy_data_load("optimize", &s, &d, &bars, &view))) goto out;
    qg_progress prog;
    qg_progress_attach(&prog, "optimize", d.quiet, &sa.cfg);
    int64_t t0 = qg_time_now_ms();
    qg_bars run = qg_warm_view(&bars, &view, &sa.cfg);
    qg_status st =
        qg_optimize(sa.json, sa.json_len, sa.params, sa.n_params, axes, n_axes, &run, &sa.cfg,
                    (qg_objective)qg_objective_parse(objective), (int)threads, &g, &err);
    double seconds = (double)(qg_time_now_ms() - t0) / 1000.0;
    qg_progress_done(&prog);
    if (st) {
        rc = qg_cmd_fail("optimize", "%s", err.msg);
        goto out;
    }
    if (json) {
        rc = print_json(axes, n_axes, &g, (size_t)top, objective, seconds);
        goto out;
    }
    printf("%zu combinations (%zu skipped by constraints) on %zu bars in %.2f s with %d "
           "thread%s\n\n",
           g.points, g.skipped, view.n, seconds, threads ? (int)threads : qg_cpu_count(),
           (threads ? threads : qg_cpu_count()) == 1 ? "" : "s");
    print_table(axes, n_axes, &g, (size_t)top, objective);
out:
    qg_grid_result_free(&g);
    qg_bars_free(&bars);
    qg_strategy_args_free(&sa);
    return rc;
}
