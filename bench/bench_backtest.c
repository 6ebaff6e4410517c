/*
 * bench_backtest.c - backtest and optimize throughput on 10 million bars.
 *
 * usage: bench_backtest [CSV] [BARS]
 * With a CSV it loads it (timed, load excluded from the backtest figure);
 * without, it generates BARS 1-minute bars in memory (default 10M). Then:
 *   - sma_cross backtest on one thread, best of 3, in bars/s;
 *   - the other built-ins for comparison;
 *   - optimize over the sma_cross grid fast=5:50:5 x slow=20:200:10 on 1
 *     thread and on all cores;
 *   - peak resident memory after load + backtest against the bar arrays.
 * Prints a table; never asserts a time.
 */
#include <quantgate/backtest.h>
#include <quantgate/pool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void die(const char *what, const qg_error *err)
{
    fprintf(stderr, "bench_backtest: %s: %s\n", what, err->msg);
    exit(1);
}

static qg_strategy builtin(const char *name)
{
    qg_strategy s;
    qg_error err = {0};
    const char *json = qg_strategy_builtin(name);
    if (qg_strategy_parse(json, strlen(json), NULL, 0, &s, &err)) die(name, &err);
    return s;
}

static double time_backtest(const qg_strategy *s, const qg_bars *b, int reps, size_t *trades)
{
    qg_bt_config cfg = qg_bt_config_default();
    cfg.fee_bps = 5;
    cfg.slippage_bps = 2;
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        qg_bt_result r;
        qg_error err = {0};
        double t0 = now_s();
        if (qg_backtest_run(s, b, &cfg, &r, &err)) die("backtest", &err);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        *trades = r.m.trades;
        qg_bt_result_free(&r);
    }
    return best;
}

/* One run of the grid the issue names: 190 points, 174 within "fast < slow";
 * at about 15 s on one thread it is long enough to average out noise and
 * has enough points that threads finish together. */
static double time_optimize(const qg_bars *b, int threads, size_t *points)
{
    const char *json = qg_strategy_builtin("sma_cross");
    qg_grid_axis axes[2];
    qg_error err = {0};
    qg_grid_axis_parse("fast=5:50:5", &axes[0], &err);
    qg_grid_axis_parse("slow=20:200:10", &axes[1], &err);
    qg_bt_config cfg = qg_bt_config_default();
    qg_grid_result g;
    double t0 = now_s();
    if (qg_optimize(json, strlen(json), NULL, 0, axes, 2, b, &cfg, QG_OBJ_SHARPE, threads, &g,
                    &err))
        die("optimize", &err);
    double dt = now_s() - t0;
    *points = g.n_rows;
    qg_grid_result_free(&g);
    return dt;
}

int main(int argc, char **argv)
{
    const char *csv = argc > 1 && strcmp(argv[1], "-") != 0 ? argv[1] : NULL;
    size_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000000;
    qg_bars bars = {0};
    qg_error err = {0};
    double load_s = 0;
    if (csv) {
        double t0 = now_s();
        qg_load_report rep;
        if (qg_bars_load_file(csv, NULL, &bars, &rep, &err)) die(csv, &err);
        load_s = now_s() - t0;
    } else {
        qg_gen_opts o = {.bars = n, .tf_ms = 60000, .seed = 42, .start_ms = 1704067200000LL};
        if (qg_bars_generate(&o, &bars, &err)) die("generate", &err);
    }
    n = bars.n;
    double arrays_mb = (double)n * QG_BAR_BYTES / 1048576.0;

    qg_strategy sma = builtin("sma_cross");
    size_t trades = 0;
    double bt = time_backtest(&sma, &bars, 3, &trades);
    double rss = peak_rss_mb();

    printf("\n== backtest: %zu bars (%s) ==\n", n, csv ? csv : "generated in memory");
    printf("%-28s %12s %14s %10s\n", "what", "seconds", "bars/s", "trades");
    if (csv) printf("%-28s %12.3f %14.0f %10s\n", "load CSV", load_s, (double)n / load_s, "");
    printf("%-28s %12.3f %14.0f %10zu\n", "sma_cross backtest, 1 thread", bt, (double)n / bt,
           trades);
    const char *others[] = {"ema_cross", "rsi_reversion", "bollinger_breakout",
                            "donchian_breakout"};
    for (size_t i = 0; i < 4; i++) {
        qg_strategy s = builtin(others[i]);
        double t = time_backtest(&s, &bars, 1, &trades);
        char label[64];
        snprintf(label, sizeof label, "%s, 1 thread", others[i]);
        printf("%-28s %12.3f %14.0f %10zu\n", label, t, (double)n / t, trades);
    }
    printf("\n%-28s %12.1f MB\n", "bar arrays (48 B/bar)", arrays_mb);
    printf("%-28s %12.1f MB  (%.2fx the bar arrays)\n", "peak RSS after load+backtest", rss,
           rss / arrays_mb);

    size_t points = 0;
    double o1 = time_optimize(&bars, 1, &points);
    int cores = qg_cpu_count();
    double o2 = time_optimize(&bars, cores, &points);
    printf("\n== optimize sma_cross, %zu grid points ==\n", points);
    printf("%-28s %12s %14s\n", "threads", "seconds", "bars/s total");
    printf("%-28d %12.3f %14.0f\n", 1, o1, (double)n * (double)points / o1);
    printf("%-28d %12.3f %14.0f\n", cores, o2, (double)n * (double)points / o2);
    printf("%-28s %12.2fx\n", "speed-up", o1 / o2);
    qg_bars_free(&bars);
    return 0;
}
