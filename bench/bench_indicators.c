/*
 * bench_indicators.c - throughput of every indicator kind, fed as the
 * backtester feeds them: blocks of 1024 bars into reused output buffers.
 *
 * usage: bench_indicators [BARS]   (default 10000000)
 *
 * Prints one row per indicator (million bars per second, ns per bar) and a
 * last row for an SMA cross (two SMAs and a crossing test per bar), the
 * backtester's reference loop. Bars are a deterministic random walk made
 * here, so the benchmark needs nothing but libquantgate.
 */
#include <quantgate/indicators.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BLOCK 1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double unit(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (double)(*s >> 11) * 0x1.0p-53;
}

static int make_bars(qg_bars *b, size_t n)
{
    uint64_t seed = 88172645463325252ULL;
    double price = 100;
    if (qg_bars_reserve(b, n)) return -1;
    for (size_t i = 0; i < n; i++) {
        double open = price;
        price *= 1 + (unit(&seed) - 0.5) * 0.01;
        double hi = (open > price ? open : price) * (1 + unit(&seed) * 0.002);
        double lo = (open < price ? open : price) * (1 - unit(&seed) * 0.002);
        qg_bar bar = {
            1704067200000LL + (int64_t)i * 60000, open, hi, lo, price, 1000 * unit(&seed)};
        qg_bars_push(b, &bar);
    }
    return 0;
}

/* Seconds to run spec over b in blocks; *sink keeps the work observable. */
static double time_spec(const qg_ind_spec *s, const qg_bars *b, double *sink)
{
    static double buf[QG_IND_MAX_OUTPUTS][BLOCK];
    double *out[QG_IND_MAX_OUTPUTS] = {buf[0], buf[1], buf[2]};
    qg_ind *ind = qg_ind_new(s);
    if (!ind) return -1;
    double t0 = now_s();
    for (size_t from = 0; from < b->n; from += BLOCK) {
        size_t n = b->n - from < BLOCK ? b->n - from : BLOCK;
        qg_ind_update_block(ind, b, from, n, out);
        *sink += buf[0][n - 1];
    }
    double dt = now_s() - t0;
    qg_ind_free(ind);
    return dt;
}

/* Two SMAs and a cross test per bar: counts crosses of fast over slow. */
static double time_sma_cross(const qg_bars *b, size_t *crosses)
{
    static double f[BLOCK], sl[BLOCK];
    double *of[1] = {f}, *os[1] = {sl}, pf = 0, ps = 0;
    qg_ind_spec fs = {.kind = QG_IND_SMA, .nparams = 1, .params = {20}};
    qg_ind_spec ss = {.kind = QG_IND_SMA, .nparams = 1, .params = {50}};
    qg_ind *fast = qg_ind_new(&fs), *slow = qg_ind_new(&ss);
    if (!fast || !slow) return -1;
    double t0 = now_s();
    for (size_t from = 0; from < b->n; from += BLOCK) {
        size_t n = b->n - from < BLOCK ? b->n - from : BLOCK;
        qg_ind_update_block(fast, b, from, n, of);
        qg_ind_update_block(slow, b, from, n, os);
        for (size_t i = 0; i < n; i++) {
            *crosses += (f[i] > sl[i]) & (pf <= ps);
            pf = f[i];
            ps = sl[i];
        }
    }
    double dt = now_s() - t0;
    qg_ind_free(fast);
    qg_ind_free(slow);
    return dt;
}

int main(int argc, char **argv)
{
    static const char *const specs[] = {
        "sma:20",      "ema:20",       "wma:10", "rsi:14",     "atr:14",  "macd:12,26,9",
        "bbands:20,2", "stoch:14,3,3", "adx:14", "cci:20",     "roc:10",  "willr:14",
        "donchian:20", "obv",          "vwap",   "sma:20@hl2", "sma:200", "donchian:200",
    };
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    qg_bars b = {0};
    if (!n || make_bars(&b, n)) {
        fprintf(stderr, "bench_indicators: cannot make %zu bars\n", n);
        return 1;
    }
    double sink = 0;
    printf("%zu bars, blocks of %d\n\n%-16s %12s %10s\n", n, BLOCK, "indicator", "Mbars/s",
           "ns/bar");
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        qg_ind_spec s;
        qg_error err = {0};
        if (qg_ind_parse(specs[i], &s, &err)) {
            fprintf(stderr, "bench_indicators: %s\n", err.msg);
            return 1;
        }
        double dt = time_spec(&s, &b, &sink);
        printf("%-16s %12.1f %10.2f\n", specs[i], (double)n / dt / 1e6, dt * 1e9 / (double)n);
    }
    size_t crosses = 0;
    double dt = time_sma_cross(&b, &crosses);
    printf("%-16s %12.1f %10.2f   (%zu crosses)\n", "sma cross 20/50", (double)n / dt / 1e6,
           dt * 1e9 / (double)n, crosses);
    qg_bars_free(&b);
    return sink == 12345.678; /* never true; keeps the results used */
}
