/*
 * ict.c - the ICT / Smart Money Concepts detector (docs/ict.md).
 *
 * One bar at a time, causal by construction: every decision at bar i reads
 * bars 0..i only. Swings come from a ring of the last 2N+1 highs and lows
 * (a pivot is tested once, exactly N bars after it); structure breaks are
 * closes beyond the last confirmed swing; the higher-timeframe bias is the
 * same structure logic run over completed higher-timeframe buckets.
 *
 * Memory: everything is sized in qg_ict_new (rings, pool and order-block
 * tables with fixed capacities, oldest replaced); qg_ict_push never
 * allocates. Per bar the work is O(N + ob_lookback) in the worst case and
 * O(N) usually.
 */
#include <quantgate/ict.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define POOLS_MAX 16 /* per side */
#define OBS_MAX   8  /* active order blocks per side */

/* ---- swings and structure (shared by both timeframes) ---- */

typedef struct {
    int n, win;
    double *hi, *lo;
    int64_t *ts;
    size_t count;
    bool has_sh, has_sl, sh_crossed, sl_crossed;
    double sh, sl;
    int64_t sh_ts, sl_ts;
    int trend;
} tracker;

typedef struct {
    int brk_dir;  /* +1 close above the swing high, -1 below the swing low (0 none) */
    int brk_dir2; /* both can happen in one bar when the swings are inverted */
    bool brk_choch, brk_choch2;
    double brk_level, brk_level2;
    int64_t brk_ref, brk_ref2;
    bool new_sh, new_sl;
    bool had_sh, had_sl; /* a swing existed before the new one */
    double prev_sh, prev_sl;
    int64_t prev_sh_ts, prev_sl_ts;
} tracker_out;

static void note_break(tracker_out *o, int dir, bool choch, double level, int64_t ref)
{
    if (!o->brk_dir) {
        o->brk_dir = dir;
        o->brk_choch = choch;
        o->brk_level = level;
        o->brk_ref = ref;
    } else {
        o->brk_dir2 = dir;
        o->brk_choch2 = choch;
        o->brk_level2 = level;
        o->brk_ref2 = ref;
    }
}

/* Breaks against the swings known before this bar, then the pivot N bars
 * back is tested: so a swing confirmed now can only be broken later. */
static void tracker_push(tracker *t, int64_t ts, double h, double l, double c, tracker_out *o)
{
    memset(o, 0, sizeof *o);
    if (t->has_sh && !t->sh_crossed && c > t->sh) {
        t->sh_crossed = true;
        note_break(o, +1, t->trend < 0, t->sh, t->sh_ts);
        t->trend = +1;
    }
    if (t->has_sl && !t->sl_crossed && c < t->sl) {
        t->sl_crossed = true;
        note_break(o, -1, t->trend > 0, t->sl, t->sl_ts);
        t->trend = -1;
    }
    size_t w = (size_t)t->win;
    t->hi[t->count % w] = h;
    t->lo[t->count % w] = l;
    t->ts[t->count % w] = ts;
    t->count++;
    if (t->count < w) return;
    /* the pivot p = count-1-n against its n neighbours on each side; ring
     * positions advance with a wrap instead of a division per step */
    size_t j = (t->count - w) % w, pj = (j + (size_t)t->n) % w;
    double ph = t->hi[pj], pl = t->lo[pj];
    bool is_h = true, is_l = true;
    for (size_t k = 0; k < w; k++, j = j + 1 == w ? 0 : j + 1) {
        if (j == pj) continue;
        if (k < (size_t)t->n) {
            is_h = is_h && ph > t->hi[j];
            is_l = is_l && pl < t->lo[j];
        } else {
            is_h = is_h && ph >= t->hi[j];
            is_l = is_l && pl <= t->lo[j];
        }
    }
    if (is_h) {
        o->new_sh = true;
        o->had_sh = t->has_sh;
        o->prev_sh = t->sh;
        o->prev_sh_ts = t->sh_ts;
        t->has_sh = true;
        t->sh = ph;
        t->sh_ts = t->ts[pj];
        t->sh_crossed = false;
    }
    if (is_l) {
        o->new_sl = true;
        o->had_sl = t->has_sl;
        o->prev_sl = t->sl;
        o->prev_sl_ts = t->sl_ts;
        t->has_sl = true;
        t->sl = pl;
        t->sl_ts = t->ts[pj];
        t->sl_crossed = false;
    }
}

/* ---- the detector ---- */

typedef struct {
    double level;
    int64_t ts;
} pool;

typedef struct {
    double lo, hi;
    int64_t ts;
} block;

struct qg_ict {
    qg_ict_config cfg;
    tracker ltf, htf;
    void *mem; /* one allocation for every ring */

    /* the last R bars, for FVGs and the order-block search */
    size_t r;
    int64_t *rts;
    double *ro, *rh, *rl, *rc;
    size_t count;
    int64_t last_ts;

    double atr, prev_close;

    int64_t day;
    double day_hi, day_lo;
    bool has_day, has_pd;
    double pd_hi, pd_lo;

    bool hb_active;
    int64_t hb_start;
    double hb_h, hb_l, hb_c;
    size_t htf_bars;

    pool pools[2][POOLS_MAX]; /* [0] equal highs (buy side), [1] equal lows */
    int npools[2];
    block obs[2][OBS_MAX]; /* [0] bullish, [1] bearish */
    int nobs[2];
    int64_t last_fvg[2], last_sweep[2]; /* bar index + 1 of the last one (0: never) */

    qg_ict_killzone kz;
    /* the daylight-saving transitions of the year of the last bar */
    int64_t kz_from, kz_to, ny_dst[2], uk_dst[2];
};

static int side(int dir)
{
    return dir > 0 ? 0 : 1;
}

void qg_ict_config_defaults(qg_ict_config *c)
{
    if (!c->swing_length) c->swing_length = 5;
    if (!c->htf_swing_length) c->htf_swing_length = 3;
    if (!c->atr_period) c->atr_period = 14;
    if (c->eq_tolerance_atr == 0) c->eq_tolerance_atr = 0.1;
    if (!c->ob_lookback) c->ob_lookback = 50;
    if (!c->confluence_bars) c->confluence_bars = 10;
    if (c->rr == 0) c->rr = 2;
}

static qg_status check_config(const qg_ict_config *c, qg_error *err)
{
    if (c->swing_length < 1 || c->swing_length > 100)
        return qg_error_set(err, QG_EINVAL, "swing_length: %d is outside 1..100", c->swing_length);
    if (c->htf_swing_length < 1 || c->htf_swing_length > 100)
        return qg_error_set(err, QG_EINVAL, "htf_swing_length: %d is outside 1..100",
                            c->htf_swing_length);
    if (c->atr_period < 1 || c->atr_period > 1000)
        return qg_error_set(err, QG_EINVAL, "atr_period: %d is outside 1..1000", c->atr_period);
    if (c->ob_lookback < 1 || c->ob_lookback > 10000)
        return qg_error_set(err, QG_EINVAL, "ob_lookback: %d is outside 1..10000", c->ob_lookback);
    if (c->confluence_bars < 1 || c->confluence_bars > 10000)
        return qg_error_set(err, QG_EINVAL, "confluence_bars: %d is outside 1..10000",
                            c->confluence_bars);
    if (!(c->eq_tolerance_atr >= 0) || !isfinite(c->eq_tolerance_atr))
        return qg_error_set(err, QG_EINVAL, "eq_tolerance_atr: must be a finite number >= 0");
    if (!(c->fvg_min_atr >= 0) || !isfinite(c->fvg_min_atr))
        return qg_error_set(err, QG_EINVAL, "fvg_min_atr: must be a finite number >= 0");
    if (!(c->rr > 0) || !isfinite(c->rr))
        return qg_error_set(err, QG_EINVAL, "rr: must be a finite number > 0");
    if (c->htf_ms < 0 || c->timeframe_ms < 0)
        return qg_error_set(err, QG_EINVAL, "%s: must be >= 0",
                            c->htf_ms < 0 ? "htf_ms" : "timeframe_ms");
    if (c->htf_ms && c->timeframe_ms && c->htf_ms <= c->timeframe_ms)
        return qg_error_set(err, QG_EINVAL,
                            "htf_ms: %lld ms is not above the bar timeframe (%lld ms)",
                            (long long)c->htf_ms, (long long)c->timeframe_ms);
    return QG_OK;
}

static void tracker_init(tracker *t, int n, double *hi, double *lo, int64_t *ts)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    t->win = 2 * n + 1;
    t->hi = hi;
    t->lo = lo;
    t->ts = ts;
}

qg_status qg_ict_new(const qg_ict_config *cfg, qg_ict **out, qg_error *err)
{
    qg_ict_config c = {0};
    if (cfg) c = *cfg;
    qg_ict_config_defaults(&c);
    *out = NULL;
    qg_status rc = check_config(&c, err);
    if (rc) return rc;
    qg_ict *d = calloc(1, sizeof *d);
    size_t lw = 2 * (size_t)c.swing_length + 1, hw = 2 * (size_t)c.htf_swing_length + 1;
    size_t r = (size_t)c.ob_lookback + 1;
    if (r < 3) r = 3;
    /* doubles: ltf hi/lo, htf hi/lo, ring o/h/l/c; int64: ltf ts, htf ts, ring ts */
    size_t bytes = (2 * lw + 2 * hw + 4 * r) * sizeof(double) + (lw + hw + r) * sizeof(int64_t);
    void *mem = d ? malloc(bytes) : NULL;
    if (!mem) {
        free(d);
        return qg_error_set(err, QG_ENOMEM, "out of memory for an ICT detector");
    }
    d->cfg = c;
    d->mem = mem;
    double *p = mem;
    double *lhi = p, *llo = p + lw, *hhi = p + 2 * lw, *hlo = p + 2 * lw + hw;
    p += 2 * lw + 2 * hw;
    d->ro = p;
    d->rh = p + r;
    d->rl = p + 2 * r;
    d->rc = p + 3 * r;
    int64_t *q = (int64_t *)(p + 4 * r);
    tracker_init(&d->ltf, c.swing_length, lhi, llo, q);
    tracker_init(&d->htf, c.htf_swing_length, hhi, hlo, q + lw);
    d->rts = q + lw + hw;
    d->r = r;
    d->last_ts = INT64_MIN;
    d->kz_from = d->kz_to = 0;
    *out = d;
    return QG_OK;
}

void qg_ict_free(qg_ict *d)
{
    if (!d) return;
    free(d->mem);
    free(d);
}

/* ---- killzones: US and UK daylight saving rules, pure ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Monday = 0 .. Sunday = 6; 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
    return (int)(((days + 3) % 7 + 7) % 7);
}

static int64_t first_sunday(int64_t y, unsigned m)
{
    int64_t d = qg_days_from_civil(y, m, 1);
    return d + (6 - weekday(d)) % 7;
}

static int64_t last_sunday(int64_t y, unsigned m, unsigned last_day)
{
    int64_t d = qg_days_from_civil(y, m, last_day);
    return d - (weekday(d) + 1) % 7;
}

static int64_t year_of(int64_t ts_ms)
{
    int64_t y;
    unsigned m, dd;
    qg_civil_from_days(floor_div(ts_ms, QG_MS_PER_DAY), &y, &m, &dd);
    return y;
}

/* US rule since 2007: EDT from the second Sunday of March 02:00 EST (07:00
 * UTC) to the first Sunday of November 02:00 EDT (06:00 UTC). */
static void ny_dst(int64_t y, int64_t out[2])
{
    out[0] = (first_sunday(y, 3) + 7) * QG_MS_PER_DAY + 7 * QG_MS_PER_HOUR;
    out[1] = first_sunday(y, 11) * QG_MS_PER_DAY + 6 * QG_MS_PER_HOUR;
}

/* EU rule: BST from the last Sunday of March to the last Sunday of
 * October, both at 01:00 UTC. */
static void uk_dst(int64_t y, int64_t out[2])
{
    out[0] = last_sunday(y, 3, 31) * QG_MS_PER_DAY + QG_MS_PER_HOUR;
    out[1] = last_sunday(y, 10, 31) * QG_MS_PER_DAY + QG_MS_PER_HOUR;
}

int qg_ict_ny_offset(int64_t ts_ms)
{
    int64_t t[2];
    ny_dst(year_of(ts_ms), t);
    return ts_ms >= t[0] && ts_ms < t[1] ? -4 * 3600 : -5 * 3600;
}

int qg_ict_london_offset(int64_t ts_ms)
{
    int64_t t[2];
    uk_dst(year_of(ts_ms), t);
    return ts_ms >= t[0] && ts_ms < t[1] ? 3600 : 0;
}

/* Local minute of day and weekday of a UTC instant at a fixed offset. */
static bool local_in(int64_t ts_ms, int off_s, int from_min, int to_min)
{
    int64_t local = ts_ms + (int64_t)off_s * 1000;
    int64_t days = floor_div(local, QG_MS_PER_DAY);
    int minute = (int)((local - days * QG_MS_PER_DAY) / QG_MS_PER_MIN);
    return weekday(days) <= 4 && minute >= from_min && minute < to_min;
}

static qg_ict_killzone killzone_of(int64_t ts_ms, int uk_off, int ny_off)
{
    if (local_in(ts_ms, uk_off, 7 * 60, 10 * 60)) return QG_ICT_KZ_LONDON;
    if (local_in(ts_ms, ny_off, 7 * 60, 10 * 60)) return QG_ICT_KZ_NEW_YORK;
    if (local_in(ts_ms, ny_off, 20 * 60, 24 * 60)) return QG_ICT_KZ_ASIA;
    return QG_ICT_KZ_NONE;
}

qg_ict_killzone qg_ict_killzone_at(int64_t ts_ms)
{
    return killzone_of(ts_ms, qg_ict_london_offset(ts_ms), qg_ict_ny_offset(ts_ms));
}

/* The same with the year's transitions cached in the detector. */
static qg_ict_killzone killzone_cached(qg_ict *d, int64_t ts)
{
    if (ts < d->kz_from || ts >= d->kz_to) {
        int64_t y = year_of(ts);
        d->kz_from = qg_days_from_civil(y, 1, 1) * QG_MS_PER_DAY;
        d->kz_to = qg_days_from_civil(y + 1, 1, 1) * QG_MS_PER_DAY;
        ny_dst(y, d->ny_dst);
        uk_dst(y, d->uk_dst);
    }
    int uk = ts >= d->uk_dst[0] && ts < d->uk_dst[1] ? 3600 : 0;
    int ny = ts >= d->ny_dst[0] && ts < d->ny_dst[1] ? -4 * 3600 : -5 * 3600;
    return killzone_of(ts, uk, ny);
}

/* ---- names ---- */

const char *qg_ict_type_name(qg_ict_type t)
{
    static const char *const names[QG_ICT_NTYPES] = {
        "swing_high", "swing_low", "BoS", "CHoCH", "FVG", "OB", "EQH", "EQL", "liquidity_sweep"};
    return (unsigned)t < QG_ICT_NTYPES ? names[t] : "?";
}

bool qg_ict_is_signal(qg_ict_type t)
{
    return t == QG_ICT_BOS || t == QG_ICT_CHOCH || t == QG_ICT_FVG || t == QG_ICT_OB ||
           t == QG_ICT_SWEEP;
}

const char *qg_ict_confluence_name(int bit)
{
    static const char *const names[QG_ICT_C_COUNT] = {
        "HTF_BIAS_BULL",   "HTF_BIAS_BEAR",   "DISCOUNT",          "PREMIUM",      "FVG", "OB",
        "LIQUIDITY_SWEEP", "KILLZONE_LONDON", "KILLZONE_NEW_YORK", "KILLZONE_ASIA"};
    return bit >= 0 && bit < QG_ICT_C_COUNT ? names[bit] : "?";
}

int qg_ict_confluence_names(unsigned confluences, const char **names, int cap)
{
    int n = 0;
    for (int b = 0; b < QG_ICT_C_COUNT && n < cap; b++)
        if (confluences & (1u << b)) names[n++] = qg_ict_confluence_name(b);
    return n;
}

const char *qg_ict_killzone_name(qg_ict_killzone k)
{
    switch (k) {
    case QG_ICT_KZ_LONDON:
        return "london";
    case QG_ICT_KZ_NEW_YORK:
        return "new_york";
    case QG_ICT_KZ_ASIA:
        return "asia";
    default:
        return "";
    }
}

/* ---- per-bar steps ---- */

/* Closes the higher-timeframe bucket: one bar for the HTF structure. */
static void htf_close(qg_ict *d)
{
    tracker_out o;
    tracker_push(&d->htf, d->hb_start, d->hb_h, d->hb_l, d->hb_c, &o);
    d->hb_active = false;
    d->htf_bars++;
}

static void htf_step(qg_ict *d, int64_t ts, double h, double l, double c)
{
    int64_t tf = d->cfg.htf_ms;
    if (!tf) return;
    int64_t start = qg_time_bucket(ts, tf);
    if (d->hb_active && start != d->hb_start) htf_close(d);
    if (!d->hb_active) {
        d->hb_active = true;
        d->hb_start = start;
        d->hb_h = h;
        d->hb_l = l;
    }
    if (h > d->hb_h) d->hb_h = h;
    if (l < d->hb_l) d->hb_l = l;
    d->hb_c = c;
    /* The bucket's last bar closes it (when the bar width is known), so the
     * bias is current at that bar's close rather than one bar later. */
    if (d->cfg.timeframe_ms && ts + d->cfg.timeframe_ms >= start + tf) htf_close(d);
}

static void day_step(qg_ict *d, int64_t ts, double h, double l)
{
    int64_t day = floor_div(ts, QG_MS_PER_DAY);
    if (d->has_day && day != d->day) {
        d->has_pd = true;
        d->pd_hi = d->day_hi;
        d->pd_lo = d->day_lo;
        d->has_day = false;
    }
    if (!d->has_day) {
        d->has_day = true;
        d->day = day;
        d->day_hi = h;
        d->day_lo = l;
    }
    if (h > d->day_hi) d->day_hi = h;
    if (l < d->day_lo) d->day_lo = l;
}

static void atr_step(qg_ict *d, double h, double l, double c)
{
    double tr = h - l;
    if (d->count > 1) {
        double a = fabs(h - d->prev_close), b = fabs(l - d->prev_close);
        if (a > tr) tr = a;
        if (b > tr) tr = b;
    }
    size_t p = (size_t)d->cfg.atr_period;
    if (d->count <= p)
        d->atr += (tr - d->atr) / (double)d->count; /* the mean while warming up */
    else
        d->atr = (d->atr * (double)(p - 1) + tr) / (double)p;
    d->prev_close = c;
}

typedef struct {
    qg_ict_event *out;
    size_t cap, n;
    bool overflow;
} sink;

static qg_ict_event *emit(sink *s, const qg_ict *d, qg_ict_type type, int dir)
{
    if (s->n >= s->cap) {
        s->overflow = true;
        return NULL;
    }
    qg_ict_event *e = &s->out[s->n++];
    size_t i = (d->count - 1) % d->r;
    memset(e, 0, sizeof *e);
    e->ts = d->rts[i];
    e->type = type;
    e->dir = dir;
    e->open = d->ro[i];
    e->high = d->rh[i];
    e->low = d->rl[i];
    e->close = d->rc[i];
    return e;
}

/* Was there a same-direction FVG or sweep within confluence_bars bars
 * before this one (last_* hold bar index + 1)? */
static bool recent(const qg_ict *d, int64_t last)
{
    int64_t i = (int64_t)d->count - 1;
    return last > 0 && i - (last - 1) <= d->cfg.confluence_bars;
}

typedef struct {
    bool fvg[2], sweep[2], ob_touch[2];
} bar_ctx;

static unsigned confluences(const qg_ict *d, const bar_ctx *x, qg_ict_type type, int dir)
{
    unsigned m = 0;
    int s = side(dir);
    int bias = d->htf.trend;
    if (d->cfg.htf_ms && bias == dir)
        m |= dir > 0 ? QG_ICT_C_HTF_BIAS_BULL : QG_ICT_C_HTF_BIAS_BEAR;
    size_t i = (d->count - 1) % d->r;
    if (d->has_pd) {
        double mid = (d->pd_hi + d->pd_lo) / 2;
        if (dir > 0 && d->rc[i] < mid) m |= QG_ICT_C_DISCOUNT;
        if (dir < 0 && d->rc[i] > mid) m |= QG_ICT_C_PREMIUM;
    }
    if ((type != QG_ICT_FVG && x->fvg[s]) || recent(d, d->last_fvg[s])) m |= QG_ICT_C_FVG;
    if (type != QG_ICT_OB && x->ob_touch[s]) m |= QG_ICT_C_OB;
    if ((type != QG_ICT_SWEEP && x->sweep[s]) || recent(d, d->last_sweep[s]))
        m |= QG_ICT_C_LIQUIDITY_SWEEP;
    if (d->kz == QG_ICT_KZ_LONDON) m |= QG_ICT_C_KILLZONE_LONDON;
    if (d->kz == QG_ICT_KZ_NEW_YORK) m |= QG_ICT_C_KILLZONE_NEW_YORK;
    if (d->kz == QG_ICT_KZ_ASIA) m |= QG_ICT_C_KILLZONE_ASIA;
    return m;
}

static int base_confidence(qg_ict_type t)
{
    switch (t) {
    case QG_ICT_CHOCH:
        return 55;
    case QG_ICT_BOS:
        return 50;
    case QG_ICT_SWEEP:
        return 50;
    case QG_ICT_OB:
        return 45;
    case QG_ICT_FVG:
        return 40;
    default:
        return 0;
    }
}

/* Confluences, confidence, and a stop at `stop` (when on the right side of
 * the close, else one ATR away) with the target at rr times the risk. */
static void finish_signal(const qg_ict *d, const bar_ctx *x, qg_ict_event *e, double stop)
{
    e->confluences = confluences(d, x, e->type, e->dir);
    int c = base_confidence(e->type) + 10 * __builtin_popcount(e->confluences);
    e->confidence = c > 100 ? 100 : c;
    double risk = (e->close - stop) * e->dir;
    if (!(risk > 0) && d->atr > 0) {
        stop = e->close - e->dir * d->atr;
        risk = d->atr;
    }
    if (!(risk > 0) || !(stop > 0)) return;
    e->has_sl = true;
    e->sl = stop;
    double tp = e->close + e->dir * d->cfg.rr * risk;
    if (tp > 0) {
        e->has_tp = true;
        e->tp = tp;
    }
}

static void add_pool(qg_ict *d, int s, double level, int64_t ts)
{
    if (d->npools[s] == POOLS_MAX) {
        memmove(&d->pools[s][0], &d->pools[s][1], (POOLS_MAX - 1) * sizeof(pool));
        d->npools[s]--;
    }
    d->pools[s][d->npools[s]++] = (pool){level, ts};
}

static void add_block(qg_ict *d, int s, double lo, double hi, int64_t ts)
{
    if (d->nobs[s] == OBS_MAX) {
        memmove(&d->obs[s][0], &d->obs[s][1], (OBS_MAX - 1) * sizeof(block));
        d->nobs[s]--;
    }
    d->obs[s][d->nobs[s]++] = (block){lo, hi, ts};
}

/* Pools traded through by this bar are removed; a close back inside is a
 * sweep (one event per side: the pool furthest through). */
static void sweep_step(qg_ict *d, double h, double l, double c, bool swept[2], pool hit[2])
{
    for (int s = 0; s < 2; s++) {
        int keep = 0;
        for (int k = 0; k < d->npools[s]; k++) {
            pool p = d->pools[s][k];
            bool through = s == 0 ? h > p.level : l < p.level;
            if (!through) {
                d->pools[s][keep++] = p;
                continue;
            }
            bool back = s == 0 ? c < p.level : c > p.level;
            bool further = s == 0 ? p.level > hit[s].level : p.level < hit[s].level;
            if (back && (!swept[s] || further)) {
                swept[s] = true;
                hit[s] = p;
            }
        }
        d->npools[s] = keep;
    }
}

/* The last candle of the opposite colour before bar i, searched back to
 * the broken swing's pivot (at most ob_lookback bars): the order block. */
static bool find_block(const qg_ict *d, int dir, int64_t pivot_ts, size_t *at)
{
    size_t i = d->count - 1;
    size_t lim = (size_t)d->cfg.ob_lookback;
    size_t k = i % d->r;
    for (size_t back = 1; back <= lim && back <= i; back++) {
        k = k ? k - 1 : d->r - 1;
        if (d->rts[k] < pivot_ts) break;
        bool opposite = dir > 0 ? d->rc[k] < d->ro[k] : d->rc[k] > d->ro[k];
        if (opposite) {
            *at = k;
            return true;
        }
    }
    return false;
}

static void structure_events(qg_ict *d, sink *s, const bar_ctx *x, int dir, bool choch,
                             double level, int64_t ref)
{
    qg_ict_event *e = emit(s, d, choch ? QG_ICT_CHOCH : QG_ICT_BOS, dir);
    size_t k;
    bool has_ob = find_block(d, dir, ref, &k);
    if (e) {
        e->level = e->zone_lo = e->zone_hi = level;
        e->ref_ts = ref;
        double stop =
            dir > 0 ? (d->ltf.has_sl ? d->ltf.sl : e->low) : (d->ltf.has_sh ? d->ltf.sh : e->high);
        finish_signal(d, x, e, stop);
    }
    if (!has_ob) return;
    qg_ict_event *o = emit(s, d, QG_ICT_OB, dir);
    if (!o) return;
    o->zone_lo = d->rl[k];
    o->zone_hi = d->rh[k];
    o->level = dir > 0 ? o->zone_hi : o->zone_lo;
    o->ref_ts = d->rts[k];
    finish_signal(d, x, o, dir > 0 ? o->zone_lo : o->zone_hi);
}

qg_status qg_ict_push(qg_ict *d, int64_t ts, double o, double h, double l, double c, double v,
                      qg_ict_event *out, size_t cap, size_t *n, qg_error *err)
{
    (void)v;
    *n = 0;
    if (ts <= d->last_ts)
        return qg_error_set(err, QG_EINVAL,
                            "bar at %lld ms is not after the previous bar (%lld ms)", (long long)ts,
                            (long long)d->last_ts);
    if (!isfinite(o) || !isfinite(h) || !isfinite(l) || !isfinite(c))
        return qg_error_set(err, QG_EINVAL, "bar at %lld ms: prices must be finite numbers",
                            (long long)ts);
    if (l > o || l > c || h < o || h < c || l > h)
        return qg_error_set(err, QG_EINVAL,
                            "bar at %lld ms: low and high must bound open and close",
                            (long long)ts);
    d->last_ts = ts;
    htf_step(d, ts, h, l, c);
    day_step(d, ts, h, l);
    size_t i = d->count % d->r;
    d->rts[i] = ts;
    d->ro[i] = o;
    d->rh[i] = h;
    d->rl[i] = l;
    d->rc[i] = c;
    d->count++;
    atr_step(d, h, l, c);
    d->kz = d->cfg.no_killzones ? QG_ICT_KZ_NONE
            : d->cfg.killzone   ? d->cfg.killzone(d->cfg.killzone_ud, ts)
                                : killzone_cached(d, ts);

    sink s = {out, cap, 0, false};
    bar_ctx x = {0};

    /* fair value gap with bars i-2, i-1, i */
    double fvg_lo[2] = {0}, fvg_hi[2] = {0};
    int64_t fvg_ref = 0;
    if (d->count >= 3) {
        size_t a = (d->count - 3) % d->r;
        double min = d->cfg.fvg_min_atr * d->atr;
        fvg_ref = d->rts[a];
        if (l > d->rh[a] && l - d->rh[a] >= min) {
            x.fvg[0] = true;
            fvg_lo[0] = d->rh[a];
            fvg_hi[0] = l;
        }
        if (h < d->rl[a] && d->rl[a] - h >= min) {
            x.fvg[1] = true;
            fvg_lo[1] = h;
            fvg_hi[1] = d->rl[a];
        }
    }

    /* sweeps of pools known before this bar: equal highs swept = bearish */
    bool swept[2] = {false, false};
    pool hit[2] = {{0, 0}, {0, 0}};
    sweep_step(d, h, l, c, swept, hit);
    x.sweep[1] = swept[0];
    x.sweep[0] = swept[1];

    for (int sd = 0; sd < 2; sd++)
        for (int k = 0; k < d->nobs[sd]; k++)
            if (l <= d->obs[sd][k].hi && h >= d->obs[sd][k].lo) x.ob_touch[sd] = true;

    tracker_out t;
    tracker_push(&d->ltf, ts, h, l, c, &t);

    for (int sd = 0; sd < 2; sd++) {
        if (!swept[sd]) continue;
        int dir = sd == 0 ? -1 : +1;
        qg_ict_event *e = emit(&s, d, QG_ICT_SWEEP, dir);
        if (!e) continue;
        e->level = e->zone_lo = e->zone_hi = hit[sd].level;
        e->ref_ts = hit[sd].ts;
        finish_signal(d, &x, e, dir > 0 ? l : h);
    }
    if (t.brk_dir) structure_events(d, &s, &x, t.brk_dir, t.brk_choch, t.brk_level, t.brk_ref);
    if (t.brk_dir2) structure_events(d, &s, &x, t.brk_dir2, t.brk_choch2, t.brk_level2, t.brk_ref2);
    for (int sd = 0; sd < 2; sd++) {
        if (!x.fvg[sd]) continue;
        int dir = sd == 0 ? +1 : -1;
        qg_ict_event *e = emit(&s, d, QG_ICT_FVG, dir);
        if (!e) continue;
        e->zone_lo = fvg_lo[sd];
        e->zone_hi = fvg_hi[sd];
        e->level = dir > 0 ? fvg_lo[sd] : fvg_hi[sd];
        e->ref_ts = fvg_ref;
        size_t a = (d->count - 3) % d->r;
        finish_signal(d, &x, e, dir > 0 ? d->rl[a] : d->rh[a]);
    }

    /* state for later bars: recency, order blocks (mitigated by a close
     * beyond their far side), then the newly confirmed swings and pools */
    for (int sd = 0; sd < 2; sd++) {
        if (x.fvg[sd]) d->last_fvg[sd] = (int64_t)d->count;
        if (x.sweep[sd]) d->last_sweep[sd] = (int64_t)d->count;
        int keep = 0;
        for (int k = 0; k < d->nobs[sd]; k++) {
            block b = d->obs[sd][k];
            if (sd == 0 ? c < b.lo : c > b.hi) continue;
            d->obs[sd][keep++] = b;
        }
        d->nobs[sd] = keep;
    }
    for (size_t k = 0; k < s.n; k++)
        if (out[k].type == QG_ICT_OB)
            add_block(d, side(out[k].dir), out[k].zone_lo, out[k].zone_hi, out[k].ref_ts);

    double tol = d->cfg.eq_tolerance_atr * d->atr;
    if (t.new_sh) {
        qg_ict_event *e = emit(&s, d, QG_ICT_SWING_HIGH, -1);
        if (e) {
            e->level = e->zone_lo = e->zone_hi = d->ltf.sh;
            e->ref_ts = d->ltf.sh_ts;
        }
        if (t.had_sh && fabs(d->ltf.sh - t.prev_sh) <= tol) {
            double level = d->ltf.sh > t.prev_sh ? d->ltf.sh : t.prev_sh;
            add_pool(d, 0, level, t.prev_sh_ts);
            qg_ict_event *q = emit(&s, d, QG_ICT_EQH, -1);
            if (q) {
                q->level = level;
                q->zone_lo = d->ltf.sh < t.prev_sh ? d->ltf.sh : t.prev_sh;
                q->zone_hi = level;
                q->ref_ts = t.prev_sh_ts;
            }
        }
    }
    if (t.new_sl) {
        qg_ict_event *e = emit(&s, d, QG_ICT_SWING_LOW, +1);
        if (e) {
            e->level = e->zone_lo = e->zone_hi = d->ltf.sl;
            e->ref_ts = d->ltf.sl_ts;
        }
        if (t.had_sl && fabs(d->ltf.sl - t.prev_sl) <= tol) {
            double level = d->ltf.sl < t.prev_sl ? d->ltf.sl : t.prev_sl;
            add_pool(d, 1, level, t.prev_sl_ts);
            qg_ict_event *q = emit(&s, d, QG_ICT_EQL, +1);
            if (q) {
                q->level = level;
                q->zone_lo = level;
                q->zone_hi = d->ltf.sl > t.prev_sl ? d->ltf.sl : t.prev_sl;
                q->ref_ts = t.prev_sl_ts;
            }
        }
    }
    *n = s.n;
    if (s.overflow)
        return qg_error_set(err, QG_ERANGE, "bar at %lld ms made more than %zu events",
                            (long long)ts, cap);
    return QG_OK;
}

void qg_ict_state_get(const qg_ict *d, qg_ict_state *out)
{
    memset(out, 0, sizeof *out);
    out->bars = d->count;
    out->trend = d->ltf.trend;
    out->htf_bias = d->cfg.htf_ms ? d->htf.trend : 0;
    out->htf_bars = d->htf_bars;
    out->has_prior_day = d->has_pd;
    if (d->has_pd) {
        out->pd_high = d->pd_hi;
        out->pd_low = d->pd_lo;
        out->pd_mid = (d->pd_hi + d->pd_lo) / 2;
    }
    out->atr = d->atr;
    out->has_swing_high = d->ltf.has_sh;
    out->has_swing_low = d->ltf.has_sl;
    out->swing_high = d->ltf.sh;
    out->swing_low = d->ltf.sl;
    out->killzone = d->kz;
}

qg_status qg_ict_run(const qg_ict_config *cfg, const qg_bars *bars, qg_ict_event **out, size_t *n,
                     qg_error *err)
{
    qg_ict_config c = {0};
    if (cfg) c = *cfg;
    if (!c.timeframe_ms) c.timeframe_ms = bars->timeframe_ms;
    *out = NULL;
    *n = 0;
    qg_ict *d = NULL;
    qg_status rc = qg_ict_new(&c, &d, err);
    if (rc) return rc;
    qg_ict_event *evs = NULL, buf[QG_ICT_MAX_EVENTS_PER_BAR];
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < bars->n; i++) {
        size_t k = 0;
        rc = qg_ict_push(d, bars->ts[i], bars->open[i], bars->high[i], bars->low[i], bars->close[i],
                         bars->volume[i], buf, QG_ICT_MAX_EVENTS_PER_BAR, &k, err);
        if (rc) {
            qg_error_prefix(err, "bars");
            goto out;
        }
        if (!k) continue;
        if (len + k > cap) {
            size_t ncap = cap ? cap * 2 : 256;
            while (ncap < len + k) ncap *= 2;
            qg_ict_event *p = realloc(evs, ncap * sizeof *p);
            if (!p) {
                rc = qg_error_set(err, QG_ENOMEM, "out of memory for %zu ICT events", ncap);
                goto out;
            }
            evs = p;
            cap = ncap;
        }
        memcpy(evs + len, buf, k * sizeof *buf);
        len += k;
    }
out:
    qg_ict_free(d);
    if (rc) {
        free(evs);
        return rc;
    }
    *out = evs;
    *n = len;
    return QG_OK;
}
