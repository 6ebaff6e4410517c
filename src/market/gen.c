/*
 * gen.c - synthetic OHLCV bars that look like a 24/7 market (crypto-like).
 *
 * Model, per bar of width tf:
 *   sigma = base * regime * season(t) * sqrt(h)
 *   base   = 70% annualised, scaled by sqrt(tf / year), so 1m and 1d data
 *            have the same yearly volatility;
 *   regime = calm (0.8) or volatile (1.6), a two-state Markov switch whose
 *            mean stays are 4 and 2 days whatever the bar width;
 *   season = U-shaped intraday volatility over the UTC day (busy around the
 *            Asian open 00-02, the European open 07-09 and the US session
 *            13:30-16:00), RMS 1 over the day;
 *   h      = a GARCH(1,1) variance (unconditional mean 1) fed by the last
 *            shock, which gives volatility clusters and fat tails.
 * log(close/open) = sigma * z minus a weak pull of the log price towards the
 * start price (half-life of a year), so ten million bars neither drift off
 * to zero nor to infinity; the drift is otherwise zero. Open is the previous
 * close (a small gap in 1 bar of 100), high and low extend the body by half-normal
 * excursions of sigma / 2, volume is log-normal, seasonal and rises with
 * |z|. Prices are rounded to the tick, never below one tick.
 *
 * Randomness: xoshiro256** seeded by splitmix64, so a seed gives the same
 * bars on every run and platform with the same libm.
 */
#include <quantgate/bars.h>
#include <quantgate/time.h>

#include <math.h>
#include <string.h>

#define ANNUAL_VOL     0.70
#define YEAR_MS        (365.25 * 86400000.0)
#define GARCH_A        0.06
#define GARCH_B        0.92
#define VOLUME_PER_MIN 25.0 /* mean units traded per minute at the start */

static const double regime_vol[2] = {0.8, 1.6};
static const double regime_volume[2] = {0.85, 1.45};
static const double regime_days[2] = {4.0, 2.0}; /* mean stay in each state */

/* Volatility multiplier per half hour of the UTC day; mean square 1. */
static const double season_tab[48] = {
    1.252, 1.252, 1.252, 1.252, 1.001, 0.721, 0.721, 0.721, 0.721, 0.721, 0.721, 0.721,
    0.721, 1.001, 1.302, 1.302, 1.302, 1.302, 1.001, 0.721, 0.721, 0.721, 0.721, 0.721,
    0.721, 0.721, 1.152, 1.602, 1.602, 1.602, 1.602, 1.602, 1.152, 0.951, 0.721, 0.721,
    0.721, 0.721, 0.721, 0.721, 0.721, 0.721, 0.721, 0.721, 0.721, 0.721, 0.721, 1.001};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(uint64_t *s)
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in (0, 1]: never 0, so log() is safe. */
static double uniform(uint64_t *s)
{
    return (double)((next_u64(s) >> 11) + 1) * 0x1.0p-53;
}

static double normal(uint64_t *s)
{
    double u = uniform(s), v = uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Squared seasonal multiplier at ms of the day, interpolated between the
 * half-hour centres. */
static double season_sq_at(int64_t ms_of_day)
{
    double x = (double)ms_of_day / (30.0 * QG_MS_PER_MIN) - 0.5;
    if (x < 0) x += 48;
    int k = (int)x;
    double f = x - k, a = season_tab[k % 48], b = season_tab[(k + 1) % 48];
    double s = a + (b - a) * f;
    return s * s;
}

/* The RMS seasonal multiplier over a bar: a few samples for wide bars, the
 * midpoint for narrow ones, 1 for a day or more (the day averages out). */
static double season(int64_t ts, int64_t tf)
{
    if (tf >= QG_MS_PER_DAY) return 1.0;
    int64_t n = tf / (30 * QG_MS_PER_MIN) + 1;
    if (n > 8) n = 8;
    double sum = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t t = ts + tf * (2 * k + 1) / (2 * n);
        int64_t tod = ((t % QG_MS_PER_DAY) + QG_MS_PER_DAY) % QG_MS_PER_DAY;
        sum += season_sq_at(tod);
    }
    return sqrt(sum / (double)n);
}

/* Rounds to the tick; a decimal tick (0.01) divides by its inverse so the
 * result equals what parsing the printed text gives back. */
static double round_tick(double x, double tick)
{
    double inv = 1.0 / tick, r = nearbyint(inv);
    if (x * inv > 9e15) return x;
    double v =
        fabs(inv - r) < 1e-9 * r ? (double)llround(x * r) / r : (double)llround(x / tick) * tick;
    return v < tick ? tick : v;
}

qg_status qg_gen_init(qg_gen *g, const qg_gen_opts *opts, qg_error *err)
{
    memset(g, 0, sizeof *g);
    g->o = *opts;
    if (g->o.tf_ms <= 0) return qg_error_set(err, QG_EINVAL, "tf_ms must be > 0");
    if (g->o.start_price == 0) g->o.start_price = 100;
    if (g->o.tick == 0) g->o.tick = 0.01;
    if (!(g->o.start_price > 0) || !isfinite(g->o.start_price))
        return qg_error_set(err, QG_EINVAL, "start_price (%g) must be > 0", opts->start_price);
    if (!(g->o.tick > 0) || !(g->o.tick <= g->o.start_price))
        return qg_error_set(err, QG_EINVAL, "tick (%g) must be > 0 and at most the start price",
                            opts->tick);
    uint64_t x = g->o.seed;
    for (int k = 0; k < 4; k++) g->rng[k] = splitmix64(&x);
    double mix = 0; /* mean square of the regime multiplier over time */
    for (int k = 0; k < 2; k++)
        mix += regime_days[k] / (regime_days[0] + regime_days[1]) * regime_vol[k] * regime_vol[k];
    g->base_vol = ANNUAL_VOL * sqrt((double)g->o.tf_ms / YEAR_MS) / sqrt(mix);
    g->price = g->o.start_price;
    g->var = 1.0;
    g->regime = uniform(g->rng) < regime_days[1] / (regime_days[0] + regime_days[1]);
    return QG_OK;
}

static void switch_regime(qg_gen *g)
{
    double p = (double)g->o.tf_ms / (regime_days[g->regime] * QG_MS_PER_DAY);
    if (uniform(g->rng) < (p > 0.5 ? 0.5 : p)) g->regime ^= 1;
}

static double volume(qg_gen *g, double z, double season_mult)
{
    double mins = (double)g->o.tf_ms / QG_MS_PER_MIN;
    double noise = 0.35 * normal(g->rng) - 0.35 * 0.35 / 2;
    double v = VOLUME_PER_MIN * mins * season_mult * season_mult * regime_volume[g->regime] *
               exp(0.5 * (fabs(z) - 0.8) + noise);
    return (double)llround(v * 100) / 100;
}

void qg_gen_next(qg_gen *g, qg_bar *out)
{
    const double tick = g->o.tick;
    int64_t ts = g->o.start_ms + (int64_t)g->i * g->o.tf_ms;
    switch_regime(g);
    double s = season(ts, g->o.tf_ms);
    double sigma = g->base_vol * regime_vol[g->regime] * s * sqrt(g->var);
    double z = normal(g->rng);
    /* Mean reversion of the log price with a one-year half-life. */
    double pull = -0.6931 * (double)g->o.tf_ms / YEAR_MS * log(g->price / g->o.start_price);
    /* Trading is continuous, so open is the previous close; now and then
     * (1 bar in 100) a small gap, as after a thin moment in the book. */
    double open = g->price;
    if (uniform(g->rng) < 0.01) open *= exp(0.3 * sigma * normal(g->rng));
    double close = open * exp(sigma * z + pull);
    double hi = (open > close ? open : close) * exp(0.5 * sigma * fabs(normal(g->rng)));
    double lo = (open < close ? open : close) * exp(-0.5 * sigma * fabs(normal(g->rng)));
    g->var = (1 - GARCH_A - GARCH_B) + (GARCH_A * z * z + GARCH_B) * g->var;
    if (g->var > 25) g->var = 25;
    g->price = close;

    out->ts = ts;
    out->open = round_tick(open, tick);
    out->close = round_tick(close, tick);
    out->high = fmax(round_tick(hi, tick), fmax(out->open, out->close));
    out->low = fmin(round_tick(lo, tick), fmin(out->open, out->close));
    out->volume = volume(g, z, s);
    g->i++;
}

qg_status qg_bars_generate(const qg_gen_opts *opts, qg_bars *out, qg_error *err)
{
    qg_gen g;
    qg_status rc = qg_gen_init(&g, opts, err);
    if (rc) return rc;
    if (opts->bars && qg_bars_reserve(out, opts->bars))
        return qg_error_set(err, QG_ENOMEM, "out of memory for %zu bars", opts->bars);
    for (size_t i = 0; i < opts->bars; i++) {
        qg_bar b;
        qg_gen_next(&g, &b);
        qg_bars_push(out, &b);
    }
    out->timeframe_ms = opts->tf_ms;
    return QG_OK;
}
