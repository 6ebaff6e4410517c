/*
 * test_indicators.c - indicator values worked out by hand on small series
 * (the arithmetic is in the comments), first defined indices, NAN before
 * them, block-size independence, agreement with naive O(n*p) versions on
 * random bars, long-run precision, parsing errors and column names.
 */
#include <criterion/criterion.h>

#include <quantgate/indicators.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N 16

/* A small hand-made series; columns are fixed arrays so tests can fill them
 * with literals. */
typedef struct {
    size_t n;
    int64_t ts[N];
    double o[N], h[N], l[N], c[N], v[N];
} series;

static qg_bars as_bars(series *s)
{
    return (qg_bars){.ts = s->ts,
                     .open = s->o,
                     .high = s->h,
                     .low = s->l,
                     .close = s->c,
                     .volume = s->v,
                     .n = s->n};
}

/* Bars whose close is x and whose high/low are x +- 1 (so the typical price
 * (H+L+C)/3 is x too); open = x, volume 1, hourly timestamps. */
static series closes(const double *x, size_t n)
{
    series s = {.n = n};
    for (size_t i = 0; i < n; i++) {
        s.ts[i] = (int64_t)i * 3600000;
        s.o[i] = s.c[i] = x[i];
        s.h[i] = x[i] + 1;
        s.l[i] = x[i] - 1;
        s.v[i] = 1;
    }
    return s;
}

/* The HLC series used by ATR, ADX, Williams %R, Donchian and Stochastic:
 *   t   H     L     C
 *   0   10    8     9
 *   1   11    9     10.5
 *   2   12    10    11
 *   3   11.5  9     9.5
 *   4   13    11    12.5
 *   5   12    11.5  12                                                  */
static series hlc(void)
{
    series s = {.n = 6,
                .h = {10, 11, 12, 11.5, 13, 12},
                .l = {8, 9, 10, 9, 11, 11.5},
                .c = {9, 10.5, 11, 9.5, 12.5, 12}};
    for (size_t i = 0; i < s.n; i++) {
        s.ts[i] = (int64_t)i * 3600000;
        s.o[i] = s.c[i];
        s.v[i] = 100;
    }
    return s;
}

/* Parses text and computes every output over b into out[k][0..b->n). */
static void run(const char *text, const qg_bars *b, double out[QG_IND_MAX_OUTPUTS][N])
{
    qg_ind_spec s;
    qg_error e = {0};
    cr_assert_eq(qg_ind_parse(text, &s, &e), QG_OK, "%s: %s", text, e.msg);
    double *ptr[QG_IND_MAX_OUTPUTS] = {out[0], out[1], out[2]};
    cr_assert_eq(qg_ind_compute(&s, b, ptr), QG_OK);
}

/* got == want within 1e-9 relative; NAN in want means "undefined". */
static void expect(const char *what, const double *got, const double *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (isnan(want[i])) {
            cr_assert(isnan(got[i]), "%s[%zu]: expected NAN, got %.17g", what, i, got[i]);
            continue;
        }
        double tol = 1e-9 * fmax(1.0, fabs(want[i]));
        cr_assert(fabs(got[i] - want[i]) <= tol, "%s[%zu]: expected %.12g, got %.17g", what, i,
                  want[i], got[i]);
    }
}

#define X NAN

/* ---- hand-computed values ---- */

Test(indicators, sma_ema_wma)
{
    const double x[] = {2, 4, 6, 8, 10, 9};
    series s = closes(x, 6);
    qg_bars b = as_bars(&s);
    double out[3][N];

    /* SMA 3: (2+4+6)/3=4, (4+6+8)/3=6, (6+8+10)/3=8, (8+10+9)/3=9 */
    run("sma:3", &b, out);
    expect("sma", out[0], (double[]){X, X, 4, 6, 8, 9}, 6);

    /* EMA 3: k=2/4=0.5, seed = SMA = 4 at t=2; 4+0.5*(8-4)=6;
     * 6+0.5*(10-6)=8; 8+0.5*(9-8)=8.5 */
    run("ema:3", &b, out);
    expect("ema", out[0], (double[]){X, X, 4, 6, 8, 8.5}, 6);

    /* WMA 3: weights 1,2,3 over 6: (2+8+18)/6=28/6, (4+12+24)/6=40/6,
     * (6+16+30)/6=52/6, (8+20+27)/6=55/6 */
    run("wma:3", &b, out);
    expect("wma", out[0], (double[]){X, X, 28.0 / 6, 40.0 / 6, 52.0 / 6, 55.0 / 6}, 6);

    /* period 1 is the input itself */
    run("sma:1", &b, out);
    expect("sma1", out[0], x, 6);
    run("ema:1", &b, out);
    expect("ema1", out[0], x, 6);
    run("wma:1", &b, out);
    expect("wma1", out[0], x, 6);
}

Test(indicators, rsi_wilder)
{
    /* changes from t=1: +1, -0.5, +1.5, -1, +0.5, +1.5 */
    const double x[] = {10, 11, 10.5, 12, 11, 11.5, 13};
    series s = closes(x, 7);
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("rsi:3", &b, out);
    /* t=3: gain=(1+1.5)/3=5/6, loss=0.5/3=1/6 -> 100*(5/6)/1 = 83.333...
     * t=4 (-1): gain=(5/6*2+0)/3=5/9, loss=(1/6*2+1)/3=4/9 -> 55.555...
     * t=5 (+0.5): gain=(10/9+1/2)/3=14.5/27, loss=(8/9)/3=8/27
     *             -> 100*14.5/22.5 = 64.444...
     * t=6 (+1.5): gain=(29/27+3/2)/3=69.5/81, loss=(16/27)/3=16/81
     *             -> 100*69.5/85.5 = 81.2865... */
    expect("rsi", out[0], (double[]){X, X, X, 250.0 / 3, 500.0 / 9, 1450.0 / 22.5, 6950.0 / 85.5},
           7);

    /* flat prices: gain and loss both 0 -> 0 (TA-Lib) */
    const double flat[] = {5, 5, 5, 5, 5};
    s = closes(flat, 5);
    b = as_bars(&s);
    run("rsi:2", &b, out);
    expect("rsi flat", out[0], (double[]){X, X, 0, 0, 0}, 5);
}

Test(indicators, atr_wilder)
{
    series s = hlc();
    qg_bars b = as_bars(&s);
    double out[3][N];
    /* TR[1]=max(11-9, |11-9|, |9-9|)=2      TR[2]=max(2, |12-10.5|, |10-10.5|)=2
     * TR[3]=max(2.5, |11.5-11|, |9-11|)=2.5 TR[4]=max(2, |13-9.5|, |11-9.5|)=3.5
     * TR[5]=max(0.5, |12-12.5|, |11.5-12.5|)=1
     * ATR3: t=3 (2+2+2.5)/3 = 6.5/3; t=4 (6.5/3*2+3.5)/3 = 23.5/9;
     *       t=5 (23.5/9*2+1)/3 = 56/27 */
    run("atr:3", &b, out);
    expect("atr", out[0], (double[]){X, X, X, 6.5 / 3, 23.5 / 9, 56.0 / 27}, 6);
}

Test(indicators, macd_ttr_style)
{
    const double x[] = {1, 2, 3, 4, 6, 5, 7};
    series s = closes(x, 7);
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("macd:2,3,2", &b, out);
    /* fast EMA2 (k=2/3): t1 seed 1.5; t2 2.5; t3 3.5; t4 3.5+2/3*2.5=31/6;
     *   t5 31/6+2/3*(5-31/6)=91/18; t6 91/18+2/3*(7-91/18)=343/54
     * slow EMA3 (k=1/2): t2 seed 2; t3 3; t4 4.5; t5 4.75; t6 5.875
     * macd: t2 0.5, t3 0.5, t4 2/3, t5 91/18-19/4=11/36, t6 343/54-47/8=103/216
     * signal EMA2 of macd: t3 seed (0.5+0.5)/2=1/2; t4 1/2+2/3*(2/3-1/2)=11/18;
     *   t5 11/18+2/3*(11/36-11/18)=11/27; t6 11/27+2/3*(103/216-11/27)=49/108
     * hist: t3 0, t4 1/18, t5 11/36-11/27=-11/108, t6 103/216-49/108=5/216 */
    expect("macd", out[0], (double[]){X, X, 0.5, 0.5, 2.0 / 3, 11.0 / 36, 103.0 / 216}, 7);
    expect("signal", out[1], (double[]){X, X, X, 0.5, 11.0 / 18, 11.0 / 27, 49.0 / 108}, 7);
    expect("hist", out[2], (double[]){X, X, X, 0, 1.0 / 18, -11.0 / 108, 5.0 / 216}, 7);
}

Test(indicators, bbands_population_sd)
{
    const double x[] = {2, 4, 6, 8, 10, 9};
    series s = closes(x, 6);
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("bbands:3,2", &b, out);
    /* t2: mean 4, var ((2-4)^2+0+(6-4)^2)/3 = 8/3; t3, t4 the same spread
     * t5: window 8,10,9: mean 9, var (1+1+0)/3 = 2/3 */
    double sd1 = sqrt(8.0 / 3), sd2 = sqrt(2.0 / 3);
    expect("upper", out[0], (double[]){X, X, 4 + 2 * sd1, 6 + 2 * sd1, 8 + 2 * sd1, 9 + 2 * sd2},
           6);
    expect("middle", out[1], (double[]){X, X, 4, 6, 8, 9}, 6);
    expect("lower", out[2], (double[]){X, X, 4 - 2 * sd1, 6 - 2 * sd1, 8 - 2 * sd1, 9 - 2 * sd2},
           6);
}

Test(indicators, stoch_slow)
{
    series s = hlc();
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("stoch:3,2,2", &b, out);
    /* fast %K over 3 bars: t2 100*(11-8)/(12-8)=75; t3 100*(9.5-9)/(12-9)=50/3;
     *   t4 100*(12.5-9)/(13-9)=87.5; t5 100*(12-9)/(13-9)=75
     * slow %K = SMA2: t3 (75+50/3)/2=275/6; t4 (50/3+87.5)/2=625/12; t5 81.25
     * %D = SMA2 of slow %K: t4 (275/6+625/12)/2=1175/24; t5 (625/12+81.25)/2=200/3 */
    expect("k", out[0], (double[]){X, X, X, 275.0 / 6, 625.0 / 12, 81.25}, 6);
    expect("d", out[1], (double[]){X, X, X, X, 1175.0 / 24, 200.0 / 3}, 6);
}

Test(indicators, adx_wilder)
{
    series s = hlc();
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("adx:2", &b, out);
    /* t  up    down  +DM  -DM  TR
     * 1  1     -1    1    0    2
     * 2  1     -1    1    0    2
     * 3  -0.5  1     0    1    2.5
     * 4  1.5   -2    1.5  0    3.5
     * 5  -1    -0.5  0    0    1
     * t2 seeds (means of 1..2): s+=1, s-=0, str=2 -> +DI 50, -DI 0, DX 100
     * t3: s+ = 1+(0-1)/2=0.5, s- = 0+(1-0)/2=0.5, str = 2+(2.5-2)/2=2.25
     *     +DI = -DI = 50/2.25 = 22.22, DX 0; ADX = (100+0)/2 = 50
     * t4: s+ = 1, s- = 0.25, str = 2.875: +DI 100/2.875, -DI 25/2.875,
     *     DX = 100*0.75/1.25 = 60; ADX = 50+(60-50)/2 = 55
     * t5: s+ = 0.5, s- = 0.125, str = 1.9375: DX = 100*0.375/0.625 = 60;
     *     ADX = 55+(60-55)/2 = 57.5 */
    expect("adx", out[0], (double[]){X, X, X, 50, 55, 57.5}, 6);
    expect("+di", out[1], (double[]){X, X, 50, 50 / 2.25, 100 / 2.875, 50 / 1.9375}, 6);
    expect("-di", out[2], (double[]){X, X, 0, 50 / 2.25, 25 / 2.875, 12.5 / 1.9375}, 6);
}

Test(indicators, cci_mean_deviation)
{
    /* typical price = close here (H = C+1, L = C-1) */
    const double x[] = {1, 2, 3, 5, 4, 4, 4, 4};
    series s = closes(x, 8);
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("cci:3", &b, out);
    /* t2: 1,2,3 mean 2, MD (1+0+1)/3=2/3: (3-2)/(0.015*2/3) = 100
     * t3: 2,3,5 mean 10/3, MD (4/3+1/3+5/3)/3=10/9: (5/3)/(0.015*10/9) = 100
     * t4: 3,5,4 mean 4: (4-4)/... = 0
     * t5: 5,4,4 mean 13/3, MD (2/3+1/3+1/3)/3=4/9: (-1/3)/(0.015*4/9) = -50
     * t6: 4,4,4: MD 0 -> 0 (TA-Lib), t7 likewise */
    expect("cci", out[0], (double[]){X, X, 100, 100, 0, -50, 0, 0}, 8);
}

Test(indicators, roc)
{
    const double x[] = {10, 20, 15, 30, 15, 0, 7};
    series s = closes(x, 7);
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("roc:2", &b, out);
    /* t2 100*(15/10-1)=50, t3 100*(30/20-1)=50, t4 100*(15/15-1)=0,
     * t5 100*(0/30-1)=-100, t6 base x[4]=15: 100*(7/15-1)=-160/3 */
    expect("roc", out[0], (double[]){X, X, 50, 50, 0, -100, -160.0 / 3}, 7);
    /* a zero base gives 0 (TA-Lib) rather than infinity */
    const double z[] = {0, 1, 2};
    s = closes(z, 3);
    b = as_bars(&s);
    run("roc:1", &b, out);
    expect("roc zero base", out[0], (double[]){X, 0, 100}, 3);
}

Test(indicators, willr_and_donchian)
{
    series s = hlc();
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("willr:3", &b, out);
    /* t2 HH 12 LL 8 C 11: -100*1/4=-25;  t3 HH 12 LL 9 C 9.5: -100*2.5/3
     * t4 HH 13 LL 9 C 12.5: -12.5;       t5 HH 13 LL 9 C 12: -25 */
    expect("willr", out[0], (double[]){X, X, -25, -250.0 / 3, -12.5, -25}, 6);
    run("donchian:3", &b, out);
    expect("upper", out[0], (double[]){X, X, 12, 12, 13, 13}, 6);
    expect("middle", out[1], (double[]){X, X, 10, 10.5, 11, 11}, 6);
    expect("lower", out[2], (double[]){X, X, 8, 9, 9, 9}, 6);
    /* flat window: HH == LL -> %R 0 */
    const double flat[] = {3, 3, 3};
    s = closes(flat, 3);
    for (size_t i = 0; i < 3; i++) s.h[i] = s.l[i] = 3;
    b = as_bars(&s);
    run("willr:2", &b, out);
    expect("willr flat", out[0], (double[]){X, 0, 0}, 3);
}

Test(indicators, obv)
{
    series s = {.n = 5, .c = {10, 11, 11, 10, 12}, .v = {100, 200, 150, 300, 250}};
    for (size_t i = 0; i < s.n; i++) s.o[i] = s.h[i] = s.l[i] = s.c[i];
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("obv", &b, out);
    /* 100; up +200 = 300; equal: 300; down -300 = 0; up +250 = 250 */
    expect("obv", out[0], (double[]){100, 300, 300, 0, 250}, 5);
}

Test(indicators, vwap_resets_at_utc_midnight)
{
    /* typical prices 10, 13 | 20, 22, 19 with volumes 100, 200 | 0, 50, 150;
     * bars at 22:00, 23:00 on 2024-01-01 and 00:00, 01:00, 02:00 on 01-02 */
    const double tp[] = {10, 13, 20, 22, 19};
    series s = closes(tp, 5);
    const double vol[] = {100, 200, 0, 50, 150};
    int64_t day = 19723LL * 86400000; /* 2024-01-01T00:00Z */
    for (size_t i = 0; i < 5; i++) {
        s.v[i] = vol[i];
        s.ts[i] = day + (int64_t)(22 + i) * 3600000;
    }
    qg_bars b = as_bars(&s);
    double out[3][N];
    run("vwap", &b, out);
    /* t0 10; t1 (1000+2600)/300 = 12; new day: t2 volume 0 -> typical 20;
     * t3 (0+1100)/50 = 22; t4 (1100+2850)/200 = 19.75 */
    expect("vwap", out[0], (double[]){10, 12, 20, 22, 19.75}, 5);
}

Test(indicators, sources)
{
    series s = hlc();
    qg_bars b = as_bars(&s);
    double out[3][N];
    /* hl2 = 9, 10, 11, 10.25, 12, 11.75: SMA2 = 9.5, 10.5, 10.625, 11.125, 11.875 */
    run("sma:2@hl2", &b, out);
    expect("sma hl2", out[0], (double[]){X, 9.5, 10.5, 10.625, 11.125, 11.875}, 6);
    /* hlc3 of bar 0 = 27/3 = 9, bar 1 = 30.5/3: SMA1 is the source itself */
    run("sma:1@hlc3", &b, out);
    expect("hlc3", out[0], (double[]){9, 30.5 / 3, 11, 10, 36.5 / 3, 35.5 / 3}, 6);
    /* ohlc4 with open = close: (10+8+9+9)/4 = 9, (11+9+10.5+10.5)/4 = 10.25 */
    run("ema:1@ohlc4", &b, out);
    expect("ohlc4", out[0], (double[]){9, 10.25, 11, 9.875, 12.25, 11.875}, 6);
    run("roc:1@volume", &b, out);
    expect("volume", out[0], (double[]){X, 0, 0, 0, 0, 0}, 6);
    run("sma:2@high", &b, out);
    expect("high", out[0], (double[]){X, 10.5, 11.5, 11.75, 12.25, 12.5}, 6);
}

/* ---- lookbacks ---- */

/* Random bars: a walk with OHLC consistent, volume, hourly timestamps that
 * cross many UTC midnights. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static void random_bars(qg_bars *b, size_t n, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    cr_assert_eq(qg_bars_reserve(b, n), QG_OK);
    double price = 100;
    for (size_t i = 0; i < n; i++) {
        double open = price;
        price *= 1 + (rng_unit(&seed) - 0.5) * 0.02;
        double hi = fmax(open, price) * (1 + rng_unit(&seed) * 0.005);
        double lo = fmin(open, price) * (1 - rng_unit(&seed) * 0.005);
        qg_bar bar = {(int64_t)i * 3600000, open, hi, lo, price, 1000 * rng_unit(&seed)};
        cr_assert_eq(qg_bars_push(b, &bar), QG_OK);
    }
}

static const char *const all_specs[] = {
    "sma",         "ema",        "wma",
    "rsi",         "atr",        "macd",
    "bbands",      "stoch",      "adx",
    "cci",         "roc",        "willr",
    "donchian",    "obv",        "vwap",
    "sma:7@hl2",   "ema:5@hlc3", "wma:4@ohlc4",
    "rsi:5@open",  "macd:3,5,4", "bbands:6,1.5@low",
    "stoch:4,2,3", "adx:3",      "roc:3@high",
    "cci:1",       "adx:1",      "stoch:1,1,1",
    "donchian:1",  "macd:1,2,1",
};
#define N_SPECS (sizeof all_specs / sizeof all_specs[0])

Test(indicators, lookback_values)
{
    struct {
        const char *text;
        size_t lb[3];
    } cases[] = {
        {"sma", {19}},
        {"ema", {19}},
        {"wma", {9}},
        {"rsi", {14}},
        {"atr", {14}},
        {"macd", {25, 33, 33}},
        {"bbands", {19, 19, 19}},
        {"stoch", {15, 17}},
        {"adx", {27, 14, 14}},
        {"cci", {19}},
        {"roc", {10}},
        {"willr", {13}},
        {"donchian", {19, 19, 19}},
        {"obv", {0}},
        {"vwap", {0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qg_ind_spec s;
        cr_assert_eq(qg_ind_parse(cases[c].text, &s, NULL), QG_OK);
        for (int k = 0; k < qg_ind_output_count(&s); k++)
            cr_assert_eq(qg_ind_lookback(&s, k), cases[c].lb[k], "%s output %d: %zu", cases[c].text,
                         k, qg_ind_lookback(&s, k));
    }
}

/* For every spec and output: NAN before the lookback, a number from it on. */
Test(indicators, nan_before_lookback_defined_after)
{
    qg_bars b;
    random_bars(&b, 300, 7);
    double *buf = malloc(3 * b.n * sizeof *buf);
    for (size_t c = 0; c < N_SPECS; c++) {
        qg_ind_spec s;
        cr_assert_eq(qg_ind_parse(all_specs[c], &s, NULL), QG_OK, "%s", all_specs[c]);
        double *out[3] = {buf, buf + b.n, buf + 2 * b.n};
        cr_assert_eq(qg_ind_compute(&s, &b, out), QG_OK);
        for (int k = 0; k < qg_ind_output_count(&s); k++) {
            size_t lb = qg_ind_lookback(&s, k);
            for (size_t i = 0; i < b.n; i++)
                cr_assert_eq(isnan(out[k][i]), i < lb, "%s output %d at %zu (lookback %zu): %g",
                             all_specs[c], k, i, lb, out[k][i]);
        }
    }
    free(buf);
    qg_bars_free(&b);
}

/* ---- block-size independence ---- */

static void run_blocks(const qg_ind_spec *s, const qg_bars *b, size_t block, double **out)
{
    qg_ind *ind = qg_ind_new(s);
    cr_assert_not_null(ind);
    for (size_t from = 0; from < b->n; from += block) {
        size_t n = b->n - from < block ? b->n - from : block;
        double *o[3] = {out[0] + from, out[1] + from, out[2] + from};
        qg_ind_update_block(ind, b, from, n, o);
    }
    /* reset gives a state equal to a fresh one: run again and compare */
    qg_ind_reset(ind);
    double *again = malloc(3 * b->n * sizeof *again);
    double *o2[3] = {again, again + b->n, again + 2 * b->n};
    qg_ind_update_block(ind, b, 0, b->n, o2);
    for (int k = 0; k < qg_ind_output_count(s); k++)
        cr_assert_eq(memcmp(out[k], o2[k], b->n * sizeof(double)), 0, "reset differs");
    free(again);
    qg_ind_free(ind);
}

Test(indicators, block_size_independence)
{
    qg_bars b;
    random_bars(&b, 5000, 42);
    size_t n = b.n, blocks[] = {1, 3, 1000, 4096};
    double *ref = malloc(3 * n * sizeof *ref), *got = malloc(3 * n * sizeof *got);
    for (size_t c = 0; c < N_SPECS; c++) {
        qg_ind_spec s;
        cr_assert_eq(qg_ind_parse(all_specs[c], &s, NULL), QG_OK);
        double *r[3] = {ref, ref + n, ref + 2 * n}, *g[3] = {got, got + n, got + 2 * n};
        cr_assert_eq(qg_ind_compute(&s, &b, r), QG_OK);
        for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
            run_blocks(&s, &b, blocks[k], g);
            for (int o = 0; o < qg_ind_output_count(&s); o++)
                cr_assert_eq(memcmp(r[o], g[o], n * sizeof(double)), 0,
                             "%s output %d differs with block size %zu", all_specs[c], o,
                             blocks[k]);
        }
    }
    free(ref);
    free(got);
    qg_bars_free(&b);
}

/* ---- agreement with naive O(n*p) versions on random bars ---- */

static double naive_mean(const double *x, size_t end, size_t p)
{
    double s = 0;
    for (size_t j = end + 1 - p; j <= end; j++) s += x[j];
    return s / (double)p;
}

static double naive_max(const double *x, size_t end, size_t p)
{
    double m = x[end];
    for (size_t j = end + 1 - p; j <= end; j++) m = fmax(m, x[j]);
    return m;
}

static double naive_min(const double *x, size_t end, size_t p)
{
    double m = x[end];
    for (size_t j = end + 1 - p; j <= end; j++) m = fmin(m, x[j]);
    return m;
}

static void close_to(const char *what, size_t i, double got, double want)
{
    cr_assert(fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want)), "%s[%zu]: %.17g vs naive %.17g",
              what, i, got, want);
}

static double *compute1(const char *text, const qg_bars *b, double *buf)
{
    qg_ind_spec s;
    cr_assert_eq(qg_ind_parse(text, &s, NULL), QG_OK);
    double *out[3] = {buf, buf + b->n, buf + 2 * b->n};
    cr_assert_eq(qg_ind_compute(&s, b, out), QG_OK);
    return buf;
}

Test(indicators, windows_match_naive)
{
    qg_bars b;
    random_bars(&b, 3000, 99);
    size_t n = b.n;
    double *o = malloc(3 * n * sizeof *o), *tp = malloc(n * sizeof *tp);
    for (size_t i = 0; i < n; i++) tp[i] = (b.high[i] + b.low[i] + b.close[i]) / 3;

    compute1("sma:7", &b, o);
    for (size_t i = 6; i < n; i++) close_to("sma", i, o[i], naive_mean(b.close, i, 7));

    compute1("wma:5", &b, o);
    for (size_t i = 4; i < n; i++) {
        double w = 0;
        for (size_t j = 0; j < 5; j++) w += (double)(j + 1) * b.close[i - 4 + j];
        close_to("wma", i, o[i], w / 15);
    }

    compute1("bbands:6,1.5", &b, o);
    for (size_t i = 5; i < n; i++) {
        double m = naive_mean(b.close, i, 6), v = 0;
        for (size_t j = i - 5; j <= i; j++) v += (b.close[j] - m) * (b.close[j] - m);
        double sd = sqrt(v / 6);
        close_to("bb upper", i, o[i], m + 1.5 * sd);
        close_to("bb middle", i, o[n + i], m);
        close_to("bb lower", i, o[2 * n + i], m - 1.5 * sd);
    }

    compute1("donchian:9", &b, o);
    for (size_t i = 8; i < n; i++) {
        close_to("dc upper", i, o[i], naive_max(b.high, i, 9));
        close_to("dc lower", i, o[2 * n + i], naive_min(b.low, i, 9));
    }

    compute1("willr:9", &b, o);
    for (size_t i = 8; i < n; i++) {
        double hh = naive_max(b.high, i, 9), ll = naive_min(b.low, i, 9);
        close_to("willr", i, o[i], -100 * (hh - b.close[i]) / (hh - ll));
    }

    compute1("cci:6", &b, o);
    for (size_t i = 5; i < n; i++) {
        double m = naive_mean(tp, i, 6), md = 0;
        for (size_t j = i - 5; j <= i; j++) md += fabs(tp[j] - m);
        md /= 6;
        close_to("cci", i, o[i], (tp[i] - m) / (0.015 * md));
    }

    compute1("stoch:5,3,2", &b, o);
    double fk[3000], sk[3000];
    for (size_t i = 4; i < n; i++) {
        double hh = naive_max(b.high, i, 5), ll = naive_min(b.low, i, 5);
        fk[i] = 100 * (b.close[i] - ll) / (hh - ll);
    }
    for (size_t i = 6; i < n; i++) {
        sk[i] = naive_mean(fk, i, 3);
        close_to("stoch k", i, o[i], sk[i]);
    }
    for (size_t i = 7; i < n; i++) close_to("stoch d", i, o[n + i], naive_mean(sk, i, 2));

    free(o);
    free(tp);
    qg_bars_free(&b);
}

/* Running sums are re-summed from the ring each time it wraps, so after 10M
 * bars the SMA is still within a few ulps of the exact mean of its window. */
Test(indicators, sma_does_not_drift, .timeout = 120)
{
    enum { BLOCK = 4096, P = 20 };
    const size_t total = 10000000;
    static int64_t ts[BLOCK];
    static double col[BLOCK], out[BLOCK];
    qg_bars b = {.ts = ts, .open = col, .high = col, .low = col, .close = col, .volume = col};
    qg_ind_spec s = {.kind = QG_IND_SMA, .nparams = 1, .params = {P}};
    qg_ind *ind = qg_ind_new(&s);
    cr_assert_not_null(ind);
    uint64_t seed = 1;
    double price = 10000, worst = 0;
    for (size_t done = 0; done < total; done += BLOCK) {
        for (size_t i = 0; i < BLOCK; i++) {
            price += (rng_unit(&seed) - 0.5) * 3.7;
            col[i] = price;
        }
        double *o[1] = {out};
        qg_ind_update_block(ind, &b, 0, BLOCK, o);
        long double exact = 0;
        for (size_t i = BLOCK - P; i < BLOCK; i++) exact += col[i];
        exact /= P;
        double err = fabs(out[BLOCK - 1] - (double)exact) / ((double)exact * DBL_EPSILON);
        if (err > worst) worst = err;
    }
    qg_ind_free(ind);
    cr_assert(worst <= 8, "SMA drifted to %.1f ulps of the exact mean", worst);
}

/* ---- parsing and names ---- */

static void parse_fails(const char *text, const char *msg)
{
    qg_ind_spec s;
    qg_error e = {0};
    cr_assert_eq(qg_ind_parse(text, &s, &e), QG_EINVAL, "'%s' should fail", text);
    cr_assert(strstr(e.msg, msg), "'%s': message '%s' lacks '%s'", text, e.msg, msg);
}

Test(indicators, parse_errors)
{
    parse_fails("sma:0", "indicator 'sma:0': period must be a whole number >= 1");
    parse_fails("foo:3", "indicator 'foo:3': unknown name (known: sma, ema, wma, rsi, atr, macd, "
                         "bbands, stoch, adx, cci, roc, willr, donchian, obv, vwap)");
    parse_fails("macd:12,26", "indicator 'macd:12,26': expects 3 parameters (fast, slow, signal)");
    parse_fails("macd:26,12,9", "fast period (26) must be less than slow period (12)");
    parse_fails("macd:12,12,9", "fast period (12) must be less than slow period (12)");
    parse_fails("macd:12,26,0", "signal period must be a whole number >= 1");
    parse_fails("sma:2.5", "period must be a whole number >= 1");
    parse_fails("ema:-3", "period must be a whole number >= 1");
    parse_fails("sma:100001", "period must be at most 100000");
    parse_fails("sma:abc", "indicator 'sma:abc': parameter 1 ('abc') is not a number");
    parse_fails("sma:nan", "is not a number");
    parse_fails("sma:", "parameter 1 is empty");
    parse_fails("sma:20,", "parameter 2 is empty");
    parse_fails("sma:1,2,3,4,5", "too many parameters");
    parse_fails("sma:20,2", "expects 1 parameter (period)");
    parse_fails("bbands:20", "expects 2 parameters (period, multiplier)");
    parse_fails("bbands:20,0", "multiplier must be a number > 0");
    parse_fails("stoch:14,0,3", "slowk period must be a whole number >= 1");
    parse_fails("obv:3", "indicator 'obv:3': takes no parameters");
    parse_fails("atr:14@hl2", "a source (@hl2) applies only to sma, ema, wma, rsi, macd");
    parse_fails("sma:20@foo", "unknown source 'foo' (known: close, open, high, low, volume, hl2");
    parse_fails("", "empty");
    char longtext[300];
    memset(longtext, 'a', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    parse_fails(longtext, "too long");
}

Test(indicators, parse_defaults_and_forms)
{
    qg_ind_spec s;
    cr_assert_eq(qg_ind_parse("rsi", &s, NULL), QG_OK);
    cr_assert_eq(s.kind, QG_IND_RSI);
    cr_assert_eq(s.nparams, 1);
    cr_assert_eq(s.params[0], 14);
    cr_assert_eq(s.source, QG_SRC_CLOSE);
    cr_assert_eq(qg_ind_parse("MACD", &s, NULL), QG_OK);
    cr_assert(s.nparams == 3 && s.params[0] == 12 && s.params[1] == 26 && s.params[2] == 9);
    cr_assert_eq(qg_ind_parse("bbands: 20 , 2.5", &s, NULL), QG_OK);
    cr_assert(s.params[0] == 20 && s.params[1] == 2.5);
    cr_assert_eq(qg_ind_parse("stoch", &s, NULL), QG_OK);
    cr_assert(s.params[0] == 14 && s.params[1] == 3 && s.params[2] == 3);
    cr_assert_eq(qg_ind_parse("sma:50@hl2", &s, NULL), QG_OK);
    cr_assert(s.kind == QG_IND_SMA && s.params[0] == 50 && s.source == QG_SRC_HL2);
    cr_assert_eq(qg_ind_parse("ema@ohlc4", &s, NULL), QG_OK);
    cr_assert(s.params[0] == 20 && s.source == QG_SRC_OHLC4);
    cr_assert_eq(qg_ind_parse("sma:100000", &s, NULL), QG_OK);

    /* hand-built specs: defaults filled, errors name the spec as text */
    qg_ind_spec h = {.kind = QG_IND_DONCHIAN};
    cr_assert_eq(qg_ind_validate(&h, NULL), QG_OK);
    cr_assert(h.nparams == 1 && h.params[0] == 20);
    qg_error e = {0};
    h = (qg_ind_spec){.kind = QG_IND_SMA, .nparams = 1, .params = {0}};
    cr_assert_eq(qg_ind_validate(&h, &e), QG_EINVAL);
    cr_assert_str_eq(e.msg, "indicator 'sma:0': period must be a whole number >= 1");
    h = (qg_ind_spec){.kind = QG_IND_ATR, .source = QG_SRC_HL2};
    cr_assert_eq(qg_ind_validate(&h, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "indicator 'atr@hl2': a source"), "%s", e.msg);
    h = (qg_ind_spec){.kind = QG_IND__COUNT};
    cr_assert_eq(qg_ind_validate(&h, &e), QG_EINVAL);

    cr_assert_eq(qg_source_parse("HLC3"), QG_SRC_HLC3);
    cr_assert_eq(qg_source_parse("typical"), -1);
    cr_assert_str_eq(qg_source_name(QG_SRC_OHLC4), "ohlc4");
    cr_assert_eq(qg_ind_kind_parse("willr"), QG_IND_WILLR);
    cr_assert_eq(qg_ind_kind_parse("wilr"), -1);
    cr_assert_str_eq(qg_ind_kind_name(QG_IND_DONCHIAN), "donchian");
    /* an invalid spec gives no state */
    h = (qg_ind_spec){.kind = QG_IND_SMA, .nparams = 1, .params = {-1}};
    cr_assert_null(qg_ind_new(&h));
}

Test(indicators, column_names_and_keys)
{
    struct {
        const char *text;
        const char *cols[3];
        const char *keys[3];
    } cases[] = {
        {"sma", {"sma_20"}, {"value"}},
        {"ema", {"ema_20"}, {"value"}},
        {"wma", {"wma_10"}, {"value"}},
        {"rsi", {"rsi_14"}, {"value"}},
        {"atr", {"atr_14"}, {"value"}},
        {"macd",
         {"macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9"},
         {"macd", "signal", "hist"}},
        {"bbands",
         {"bbands_upper_20_2", "bbands_middle_20_2", "bbands_lower_20_2"},
         {"upper", "middle", "lower"}},
        {"stoch", {"stoch_k_14_3_3", "stoch_d_14_3_3"}, {"k", "d"}},
        {"adx", {"adx_14", "plus_di_14", "minus_di_14"}, {"adx", "plus_di", "minus_di"}},
        {"cci", {"cci_20"}, {"value"}},
        {"roc", {"roc_10"}, {"value"}},
        {"willr", {"willr_14"}, {"value"}},
        {"donchian",
         {"donchian_upper_20", "donchian_middle_20", "donchian_lower_20"},
         {"upper", "middle", "lower"}},
        {"obv", {"obv"}, {"value"}},
        {"vwap", {"vwap"}, {"value"}},
        {"bbands:20,2.5",
         {"bbands_upper_20_2.5", "bbands_middle_20_2.5", "bbands_lower_20_2.5"},
         {NULL}},
        {"sma:20@hl2", {"sma_20_hl2"}, {NULL}},
        {"sma:20@close", {"sma_20"}, {NULL}},
        {"macd:5,10,3@ohlc4", {"macd_5_10_3_ohlc4", "macd_signal_5_10_3_ohlc4"}, {NULL}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qg_ind_spec s;
        char name[64];
        cr_assert_eq(qg_ind_parse(cases[c].text, &s, NULL), QG_OK);
        for (int k = 0; k < 3 && cases[c].cols[k]; k++) {
            qg_ind_column_name(&s, k, name, sizeof name);
            cr_assert_str_eq(name, cases[c].cols[k], "%s output %d", cases[c].text, k);
            if (cases[c].keys[k]) cr_assert_str_eq(qg_ind_output_key(&s, k), cases[c].keys[k]);
        }
        int count = 0;
        while (count < 3 && cases[c].keys[count]) count++;
        if (count) cr_assert_eq(qg_ind_output_count(&s), count, "%s", cases[c].text);
    }
    /* a hand-built spec with nparams 0 names its defaults */
    qg_ind_spec h = {.kind = QG_IND_RSI};
    char name[64];
    qg_ind_column_name(&h, 0, name, sizeof name);
    cr_assert_str_eq(name, "rsi_14");
    cr_assert_eq(qg_ind_lookback(&h, 0), 14);
    /* a short buffer truncates rather than overflows */
    qg_ind_column_name(&h, 0, name, 4);
    cr_assert_str_eq(name, "rsi");
}

/* Found by fuzz_spec: a huge Bollinger multiplier is valid input and must
 * not be converted to a count. */
Test(indicators, huge_bollinger_multiplier)
{
    qg_ind_spec s;
    qg_error err = {0};
    cr_assert_eq(qg_ind_parse("bbands:20,3e34", &s, &err), QG_OK, "%s", err.msg);
    qg_ind *ind = qg_ind_new(&s);
    cr_assert_not_null(ind);
    qg_ind_free(ind);
}
