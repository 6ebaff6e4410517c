/*
 * bench_ict.c - ICT detector throughput: bars per second through
 * qg_ict_push over generated 1-minute bars (qg_bars_generate), with and
 * without the 4h bias, events written into one reused buffer.
 *
 * usage: bench_ict [BARS]   (default 2000000)
 *
 * Prints one row per configuration (million bars per second, ns per bar,
 * events per 1000 bars), like bench_indicators.
 */
#include <quantgate/bars.h>
#include <quantgate/ict.h>
#include <quantgate/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds to push every bar; *events counts what came out. */
static double run(const qg_ict_config *cfg, const qg_bars *b, size_t *events)
{
    qg_ict *d = NULL;
    qg_error err = {0};
    if (qg_ict_new(cfg, &d, &err)) {
        fprintf(stderr, "bench_ict: %s\n", err.msg);
        exit(1);
    }
    qg_ict_event out[QG_ICT_MAX_EVENTS_PER_BAR];
    size_t total = 0;
    double t0 = now_s();
    for (size_t i = 0; i < b->n; i++) {
        size_t n = 0;
        if (qg_ict_push(d, b->ts[i], b->open[i], b->high[i], b->low[i], b->close[i], b->volume[i],
                        out, QG_ICT_MAX_EVENTS_PER_BAR, &n, &err)) {
            fprintf(stderr, "bench_ict: bar %zu: %s\n", i, err.msg);
            exit(1);
        }
        total += n;
    }
    double dt = now_s() - t0;
    qg_ict_free(d);
    *events = total;
    return dt;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    qg_gen_opts go = {.bars = n, .tf_ms = QG_MS_PER_MIN, .seed = 42, .start_ms = 1704067200000LL};
    qg_bars b = {0};
    qg_error err = {0};
    if (!n || qg_bars_generate(&go, &b, &err)) {
        fprintf(stderr, "bench_ict: cannot make %zu bars: %s\n", n, err.msg);
        return 1;
    }
    static const struct {
        const char *name;
        qg_ict_config cfg;
    } rows[] = {
        {"ict swing 5", {.swing_length = 5, .timeframe_ms = QG_MS_PER_MIN}},
        {"ict swing 5 +4h",
         {.swing_length = 5, .timeframe_ms = QG_MS_PER_MIN, .htf_ms = 4 * QG_MS_PER_HOUR}},
        {"ict swing 20 +4h",
         {.swing_length = 20, .timeframe_ms = QG_MS_PER_MIN, .htf_ms = 4 * QG_MS_PER_HOUR}},
    };
    printf("%zu bars of 1m\n\n%-18s %12s %10s %12s\n", n, "detector", "Mbars/s", "ns/bar",
           "events/1k");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t events = 0;
        double dt = run(&rows[i].cfg, &b, &events);
        printf("%-18s %12.2f %10.1f %12.1f\n", rows[i].name, (double)n / dt / 1e6,
               dt * 1e9 / (double)n, (double)events * 1000 / (double)n);
    }
    qg_bars_free(&b);
    return 0;
}
