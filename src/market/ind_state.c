/*
 * ind_state.c - the incremental state of an indicator and its per-kind
 * kernels.
 *
 * Invariants:
 * - Every buffer (rings, block maxima) is carved out of one allocation made in
 *   qg_ind_new and sized by the periods; updates never allocate.
 * - All history lives in the state: a kernel reads only the bars it is fed,
 *   and the arithmetic done for bar t depends only on t and on the values
 *   fed so far, never on how the bars were split into blocks. So any block
 *   size gives bit-identical results.
 * - Rolling sums are updated by adding the new value and subtracting the one
 *   that leaves; rounding errors of that would accumulate over millions of
 *   bars, so each time a ring's write index wraps the sum is recomputed from
 *   the ring (O(p) every p bars: amortised O(1)) and the error stays at the
 *   scale of one window's rounding.
 * - Rolling highest/lowest use van Herk / Gil-Werman blocks (see ext):
 *   exact, amortised O(1) and branch-free per bar.
 *
 * update_block switches once per block (per chunk for derived sources) and
 * runs a tight loop per kind; SMA and EMA, which the backtester runs on
 * blocks of ~1024 bars at 100M+ bars/s, keep their state in locals.
 */
#include <quantgate/indicators.h>

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bars per chunk when a derived source (hl2, ...) is computed on the stack. */
#define SRC_CHUNK 512

/* ---- building blocks ---- */

/* Sum over the last p values, in a ring. */
typedef struct {
    double *ring;
    size_t p, pos, cnt; /* cnt saturates at p */
    double sum, inv;    /* inv = 1/p, so means are one multiply */
} win;

/* EMA seeded with the SMA of its first p values. */
typedef struct {
    size_t p, cnt;
    double k, sum, val;
} ema;

/* Rolling maximum over the last w values (the current one included), by
 * van Herk / Gil-Werman: the input is cut into blocks of w values. For bar
 * position pos in the current block, the window is positions pos+1..w-1 of
 * the previous block plus 0..pos of this one, so its max is
 * max(suffix max of the previous block from pos+1, prefix max of this block).
 * a[] holds this block's raw values at 0..pos and the previous block's
 * suffix maxima above pos (a value is overwritten only once it is no longer
 * read); when the block completes, its suffix maxima are computed in place
 * (O(w) every w bars). a[w] is a -inf sentinel. Exact, amortised O(1), and
 * branch-free per bar, unlike a monotonic deque whose pop loop mispredicts
 * on every new high (measured 3-4x slower on random walks). Minima use the
 * same code on negated values. */
typedef struct {
    double *a;  /* w + 1 values */
    double run; /* max of this block so far */
    size_t w, pos;
} ext;

/* Summed in ring order so the result depends only on the ring's contents. */
static double ring_sum(const double *r, size_t p)
{
    double s = 0;
    for (size_t i = 0; i < p; i++) s += r[i];
    return s;
}

/* Adds x to the window; returns true once it holds p values. */
static inline bool win_push(win *w, double x)
{
    if (w->cnt < w->p) {
        w->sum += x;
        w->cnt++;
    } else {
        w->sum += x - w->ring[w->pos];
    }
    w->ring[w->pos] = x;
    if (++w->pos == w->p) {
        w->pos = 0;
        w->sum = ring_sum(w->ring, w->p);
    }
    return w->cnt == w->p;
}

static inline double ema_push(ema *e, double x)
{
    if (e->cnt >= e->p) return e->val += e->k * (x - e->val);
    e->sum += x;
    if (++e->cnt < e->p) return NAN;
    return e->val = e->sum / (double)e->p;
}

/* Pushes v; returns the max of the last w values. */
static inline double ext_push(ext *e, double v)
{
    size_t pos = e->pos;
    double *a = e->a, run = v > e->run ? v : e->run, suf = a[pos + 1];
    double m = run > suf ? run : suf;
    a[pos] = v;
    e->run = run;
    if (++pos == e->w) { /* block complete: its suffix maxima, in place */
        for (size_t j = e->w - 1; j-- > 0;) a[j] = a[j] > a[j + 1] ? a[j] : a[j + 1];
        pos = 0;
        e->run = -INFINITY;
    }
    e->pos = pos;
    return m;
}

/* Highest high and lowest low of the window (lowest as -max(-low)). */
static inline void ext_hilo(ext *hi, ext *lo, double h, double l, double *hh, double *ll)
{
    *hh = ext_push(hi, h);
    *ll = -ext_push(lo, -l);
}

/* ---- the state ---- */

struct qg_ind {
    qg_ind_spec spec;
    size_t p[3];   /* integer periods (params that are periods) */
    uint64_t t;    /* bars fed so far */
    void *mem;     /* the one allocation holding every ring */
    size_t mem_sz; /* its size in bytes */
    union {
        win sma, cci;
        ema ema;
        struct {
            win w;
            double wsum, inv_denom; /* sum of i*x_i (oldest weight 1), 2/(p(p+1)) */
        } wma;
        struct {
            double prev, gain, loss; /* sums over the first p changes, then averages */
        } rsi;
        struct {
            double prev_c, atr;
        } atr;
        struct {
            ema fast, slow, sig;
        } macd;
        struct {
            win w;
            double m2, mult; /* sum of squared deviations from the mean */
        } bb;
        struct {
            ext hi, lo;
            win k, d;
        } stoch;
        struct {
            double ph, pl, pc;   /* previous bar */
            double pdm, mdm, tr; /* sums over 1..p, then smoothed */
            double dx_sum, adx;  /* sum of the first p DX, then ADX */
        } adx;
        struct {
            double *ring; /* the last p inputs */
            size_t pos;
        } roc;
        struct {
            ext hi, lo;
        } hl; /* willr, donchian */
        struct {
            double prev_c, obv;
        } obv;
        struct {
            int64_t day;
            double pv, v;
        } vwap;
    } u;
};

static bool single_input(qg_ind_kind kind)
{
    switch (kind) {
    case QG_IND_SMA:
    case QG_IND_EMA:
    case QG_IND_WMA:
    case QG_IND_RSI:
    case QG_IND_MACD:
    case QG_IND_BBANDS:
    case QG_IND_ROC:
        return true;
    default:
        return false;
    }
}

/* Hands out n 8-byte items from base (NULL: only counts, for sizing). */
static void *take(char *base, size_t *off, size_t n)
{
    void *p = base ? base + *off : NULL;
    *off += n * 8;
    return p;
}

static void win_setup(win *w, char *base, size_t *off, size_t p)
{
    w->ring = take(base, off, p);
    w->p = p;
    w->inv = 1.0 / (double)p;
}

static void ext_setup(ext *e, char *base, size_t *off, size_t w)
{
    e->a = take(base, off, w + 1);
    e->w = w;
    e->run = -INFINITY;
    for (size_t i = 0; base && i <= w; i++) e->a[i] = -INFINITY; /* no previous block yet */
}

static void ema_setup(ema *e, size_t p)
{
    e->p = p;
    e->k = 2.0 / ((double)p + 1.0);
}

/* Sets the per-kind constants and carves the rings out of base; returns the
 * bytes used. With base NULL it only measures (and leaves dangling ring
 * pointers, which qg_ind_new replaces by calling it again). */
static size_t layout(qg_ind *ind, char *base)
{
    size_t off = 0, *p = ind->p;
    switch (ind->spec.kind) {
    case QG_IND_SMA:
    case QG_IND_CCI:
        win_setup(&ind->u.sma, base, &off, p[0]);
        break;
    case QG_IND_EMA:
        ema_setup(&ind->u.ema, p[0]);
        break;
    case QG_IND_WMA:
        win_setup(&ind->u.wma.w, base, &off, p[0]);
        ind->u.wma.inv_denom = 2.0 / ((double)p[0] * ((double)p[0] + 1.0));
        break;
    case QG_IND_MACD:
        ema_setup(&ind->u.macd.fast, p[0]);
        ema_setup(&ind->u.macd.slow, p[1]);
        ema_setup(&ind->u.macd.sig, p[2]);
        break;
    case QG_IND_BBANDS:
        win_setup(&ind->u.bb.w, base, &off, p[0]);
        ind->u.bb.mult = ind->spec.params[1];
        break;
    case QG_IND_STOCH:
        ext_setup(&ind->u.stoch.hi, base, &off, p[0]);
        ext_setup(&ind->u.stoch.lo, base, &off, p[0]);
        win_setup(&ind->u.stoch.k, base, &off, p[1]);
        win_setup(&ind->u.stoch.d, base, &off, p[2]);
        break;
    case QG_IND_ROC:
        ind->u.roc.ring = take(base, &off, p[0]);
        break;
    case QG_IND_WILLR:
    case QG_IND_DONCHIAN:
        ext_setup(&ind->u.hl.hi, base, &off, p[0]);
        ext_setup(&ind->u.hl.lo, base, &off, p[0]);
        break;
    default:
        break; /* rsi atr adx obv vwap: scalars only */
    }
    return off;
}

qg_ind *qg_ind_new(const qg_ind_spec *s)
{
    qg_ind *ind = calloc(1, sizeof *ind);
    if (!ind) return NULL;
    ind->spec = *s;
    if (qg_ind_validate(&ind->spec, NULL)) {
        free(ind);
        return NULL;
    }
    /* Periods as counts. Validation bounds every period; the one parameter
     * that is not a period (the bbands multiplier) may be any positive
     * number, so it must not be converted blindly: it is never used as a
     * count. */
    for (int k = 0; k < 3; k++) {
        double v = k < ind->spec.nparams ? ind->spec.params[k] : 0;
        ind->p[k] = v >= 1 && v <= 1e9 ? (size_t)v : 0;
    }
    ind->mem_sz = layout(ind, NULL);
    if (ind->mem_sz && !(ind->mem = malloc(ind->mem_sz))) {
        free(ind);
        return NULL;
    }
    qg_ind_reset(ind);
    return ind;
}

void qg_ind_free(qg_ind *ind)
{
    if (!ind) return;
    free(ind->mem);
    free(ind);
}

void qg_ind_reset(qg_ind *ind)
{
    memset(&ind->u, 0, sizeof ind->u);
    if (ind->mem) memset(ind->mem, 0, ind->mem_sz);
    ind->t = 0;
    layout(ind, ind->mem);
}

const qg_ind_spec *qg_ind_get_spec(const qg_ind *ind)
{
    return &ind->spec;
}

/* ---- single-input kernels: x[0..n) are the inputs of bars t.. t+n-1 ---- */

static void sma_run(win *w, const double *x, size_t n, double *out)
{
    size_t i = 0;
    for (; i < n && w->cnt < w->p; i++) out[i] = win_push(w, x[i]) ? w->sum * w->inv : NAN;
    /* steady state in locals: this is the backtester's hottest loop */
    double *ring = w->ring, sum = w->sum, inv = w->inv;
    size_t pos = w->pos, p = w->p;
    for (; i < n; i++) {
        double v = x[i];
        sum += v - ring[pos];
        ring[pos] = v;
        if (++pos == p) {
            pos = 0;
            sum = ring_sum(ring, p);
        }
        out[i] = sum * inv;
    }
    w->sum = sum;
    w->pos = pos;
}

static void ema_run(ema *e, const double *x, size_t n, double *out)
{
    size_t i = 0;
    for (; i < n && e->cnt < e->p; i++) out[i] = ema_push(e, x[i]);
    double val = e->val, k = e->k;
    for (; i < n; i++) out[i] = val += k * (x[i] - val);
    e->val = val;
}

/* Weighted sum update: dropping the oldest value lowers every remaining
 * weight by one (subtract the old window sum), and the new value gets p. */
static void wma_run(qg_ind *ind, const double *x, size_t n, double *out)
{
    win *w = &ind->u.wma.w;
    double *ring = w->ring, pf = (double)w->p;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (w->cnt < w->p) {
            w->cnt++;
        } else {
            ind->u.wma.wsum += pf * v - w->sum;
            w->sum += v - ring[w->pos];
        }
        ring[w->pos] = v;
        if (++w->pos == w->p) { /* wrapped: ring[0] is the oldest, weight 1 */
            double s = 0, ws = 0;
            w->pos = 0;
            for (size_t j = 0; j < w->p; j++) {
                s += ring[j];
                ws += (double)(j + 1) * ring[j];
            }
            w->sum = s;
            ind->u.wma.wsum = ws;
        }
        out[i] = w->cnt == w->p ? ind->u.wma.wsum * ind->u.wma.inv_denom : NAN;
    }
}

static double rsi_value(double gain, double loss)
{
    double tot = gain + loss;
    return tot == 0 ? 0 : 100.0 * (gain / tot);
}

/* Wilder: changes start at bar 1; the first averages are plain means of
 * changes 1..p (first RSI at bar p), then avg = (avg*(p-1) + x)/p. */
static void rsi_run(qg_ind *ind, const double *x, size_t n, double *out)
{
    size_t p = ind->p[0];
    double pf = (double)p, *g = &ind->u.rsi.gain, *l = &ind->u.rsi.loss;
    for (size_t i = 0; i < n; i++) {
        uint64_t t = ind->t + i;
        double ch = x[i] - ind->u.rsi.prev, up = ch > 0 ? ch : 0, dn = ch < 0 ? -ch : 0;
        ind->u.rsi.prev = x[i];
        out[i] = NAN;
        if (t == 0) continue;
        if (t <= p) {
            *g += up;
            *l += dn;
            if (t < p) continue;
            *g /= pf;
            *l /= pf;
        } else {
            *g = (*g * (pf - 1) + up) / pf;
            *l = (*l * (pf - 1) + dn) / pf;
        }
        out[i] = rsi_value(*g, *l);
    }
}

static void macd_run(qg_ind *ind, const double *x, size_t n, double *const *out, size_t off)
{
    for (size_t i = 0; i < n; i++) {
        double f = ema_push(&ind->u.macd.fast, x[i]), s = ema_push(&ind->u.macd.slow, x[i]);
        double m = f - s, sig = NAN;
        if (!isnan(s)) sig = ema_push(&ind->u.macd.sig, m); /* the signal sees defined values */
        out[0][off + i] = m;
        out[1][off + i] = sig;
        out[2][off + i] = m - sig;
    }
}

/* Bollinger: the middle band is the SMA (same arithmetic as sma_run); the
 * sum of squared deviations m2 follows the window with the exact identity
 * m2' - m2 = (x - old) * (x + old - mean' - mean) and is recomputed by two
 * passes over the ring whenever it wraps. */
static void bbands_run(qg_ind *ind, const double *x, size_t n, double *const *out, size_t off)
{
    win *w = &ind->u.bb.w;
    double mult = ind->u.bb.mult;
    for (size_t i = 0; i < n; i++) {
        double v = x[i], mean_old = w->sum * w->inv, old = w->ring[w->pos];
        bool full = w->cnt == w->p;
        win_push(w, v);
        double mean = w->sum * w->inv;
        if (w->pos == 0) { /* just wrapped: exact two-pass */
            double m2 = 0;
            for (size_t j = 0; j < w->p; j++) m2 += (w->ring[j] - mean) * (w->ring[j] - mean);
            ind->u.bb.m2 = m2;
        } else if (full) {
            ind->u.bb.m2 += (v - old) * (v + old - mean - mean_old);
        }
        if (w->cnt < w->p) {
            out[0][off + i] = out[1][off + i] = out[2][off + i] = NAN;
            continue;
        }
        double var = ind->u.bb.m2 * w->inv, sd = var > 0 ? sqrt(var) : 0;
        out[0][off + i] = mean + mult * sd;
        out[1][off + i] = mean;
        out[2][off + i] = mean - mult * sd;
    }
}

/* ROC keeps the last p inputs; the slot about to be written holds x[t-p]. */
static void roc_run(qg_ind *ind, const double *x, size_t n, double *out)
{
    size_t p = ind->p[0];
    double *ring = ind->u.roc.ring;
    for (size_t i = 0; i < n; i++) {
        size_t pos = ind->u.roc.pos;
        double old = ring[pos];
        if (ind->t + i < p)
            out[i] = NAN;
        else
            out[i] = old != 0 ? 100.0 * (x[i] / old - 1.0) : 0; /* TA-Lib: 0 on a zero base */
        ring[pos] = x[i];
        ind->u.roc.pos = pos + 1 == p ? 0 : pos + 1;
    }
}

/* Dispatch for single-input kinds; writes outputs at out[k][off..off+n). */
static void run_single(qg_ind *ind, const double *x, size_t n, double *const *out, size_t off)
{
    switch (ind->spec.kind) {
    case QG_IND_SMA:
        sma_run(&ind->u.sma, x, n, out[0] + off);
        break;
    case QG_IND_EMA:
        ema_run(&ind->u.ema, x, n, out[0] + off);
        break;
    case QG_IND_WMA:
        wma_run(ind, x, n, out[0] + off);
        break;
    case QG_IND_RSI:
        rsi_run(ind, x, n, out[0] + off);
        break;
    case QG_IND_MACD:
        macd_run(ind, x, n, out, off);
        break;
    case QG_IND_BBANDS:
        bbands_run(ind, x, n, out, off);
        break;
    case QG_IND_ROC:
        roc_run(ind, x, n, out[0] + off);
        break;
    default:
        break;
    }
    ind->t += n;
}

/* The column a plain source reads, or NULL for derived ones. */
static const double *source_column(const qg_bars *b, qg_source src)
{
    switch (src) {
    case QG_SRC_CLOSE:
        return b->close;
    case QG_SRC_OPEN:
        return b->open;
    case QG_SRC_HIGH:
        return b->high;
    case QG_SRC_LOW:
        return b->low;
    case QG_SRC_VOLUME:
        return b->volume;
    default:
        return NULL;
    }
}

static void derive_source(const qg_bars *b, qg_source src, size_t from, size_t n, double *x)
{
    const double *h = b->high + from, *l = b->low + from, *c = b->close + from;
    const double *o = b->open + from;
    switch (src) {
    case QG_SRC_HL2:
        for (size_t i = 0; i < n; i++) x[i] = (h[i] + l[i]) / 2;
        break;
    case QG_SRC_HLC3:
        for (size_t i = 0; i < n; i++) x[i] = (h[i] + l[i] + c[i]) / 3;
        break;
    default: /* OHLC4 */
        for (size_t i = 0; i < n; i++) x[i] = (o[i] + h[i] + l[i] + c[i]) / 4;
        break;
    }
}

static void single_input_block(qg_ind *ind, const qg_bars *b, size_t from, size_t n,
                               double *const *out)
{
    const double *col = source_column(b, ind->spec.source);
    if (col) {
        run_single(ind, col + from, n, out, 0);
        return;
    }
    double x[SRC_CHUNK];
    for (size_t off = 0; off < n; off += SRC_CHUNK) {
        size_t len = n - off < SRC_CHUNK ? n - off : SRC_CHUNK;
        derive_source(b, ind->spec.source, from + off, len, x);
        run_single(ind, x, len, out, off);
    }
}

/* ---- bar kernels: read bars [from, from+n) of b ---- */

static inline double true_range(double h, double l, double pc)
{
    double tr = h - l, a = fabs(h - pc), c = fabs(l - pc);
    if (a > tr) tr = a;
    if (c > tr) tr = c;
    return tr;
}

/* TR needs the previous close, so it starts at bar 1; the first ATR (bar p)
 * is the mean of TR[1..p], then Wilder's (atr*(p-1) + tr)/p. */
static void atr_run(qg_ind *ind, const qg_bars *b, size_t from, size_t n, double *out)
{
    size_t p = ind->p[0];
    double pf = (double)p, *atr = &ind->u.atr.atr;
    for (size_t i = 0; i < n; i++) {
        uint64_t t = ind->t + i;
        size_t j = from + i;
        double tr = true_range(b->high[j], b->low[j], ind->u.atr.prev_c);
        ind->u.atr.prev_c = b->close[j];
        out[i] = NAN;
        if (t == 0) continue;
        if (t < p) {
            *atr += tr;
        } else if (t == p) {
            *atr = (*atr + tr) / pf;
            out[i] = *atr;
        } else {
            *atr = (*atr * (pf - 1) + tr) / pf;
            out[i] = *atr;
        }
    }
}

static void stoch_run(qg_ind *ind, const qg_bars *b, size_t from, size_t n, double *const *out)
{
    size_t fk = ind->p[0];
    for (size_t i = 0; i < n; i++) {
        uint64_t t = ind->t + i;
        size_t j = from + i;
        double hh, ll, k = NAN, d = NAN;
        ext_hilo(&ind->u.stoch.hi, &ind->u.stoch.lo, b->high[j], b->low[j], &hh, &ll);
        if (t + 1 >= fk) {
            double fast = hh != ll ? 100.0 * (b->close[j] - ll) / (hh - ll) : 0;
            if (win_push(&ind->u.stoch.k, fast)) {
                k = ind->u.stoch.k.sum * ind->u.stoch.k.inv;
                if (win_push(&ind->u.stoch.d, k)) d = ind->u.stoch.d.sum * ind->u.stoch.d.inv;
            }
        }
        out[0][i] = k;
        out[1][i] = d;
    }
}

/* Wilder's smoothing in the form s += (x - s)/p (TTR); seeds are means. */
static inline void wilder(double *s, double x, double pf)
{
    *s += (x - *s) / pf;
}

/* Directional movement and true range of bar j against the previous bar. */
static void adx_moves(qg_ind *ind, const qg_bars *b, size_t j, double *pdm, double *mdm, double *tr)
{
    double up = b->high[j] - ind->u.adx.ph, down = ind->u.adx.pl - b->low[j];
    *pdm = up > down && up > 0 ? up : 0;
    *mdm = down > up && down > 0 ? down : 0;
    *tr = true_range(b->high[j], b->low[j], ind->u.adx.pc);
}

static void adx_run(qg_ind *ind, const qg_bars *b, size_t from, size_t n, double *const *out)
{
    size_t p = ind->p[0];
    double pf = (double)p;
    for (size_t i = 0; i < n; i++) {
        uint64_t t = ind->t + i;
        size_t j = from + i;
        double pdm, mdm, tr, adx = NAN, pdi = NAN, mdi = NAN;
        adx_moves(ind, b, j, &pdm, &mdm, &tr);
        ind->u.adx.ph = b->high[j];
        ind->u.adx.pl = b->low[j];
        ind->u.adx.pc = b->close[j];
        if (t >= 1 && t <= p) { /* seed: means of the values of bars 1..p */
            ind->u.adx.pdm += pdm;
            ind->u.adx.mdm += mdm;
            ind->u.adx.tr += tr;
            if (t == p) {
                ind->u.adx.pdm /= pf;
                ind->u.adx.mdm /= pf;
                ind->u.adx.tr /= pf;
            }
        } else if (t > p) {
            wilder(&ind->u.adx.pdm, pdm, pf);
            wilder(&ind->u.adx.mdm, mdm, pf);
            wilder(&ind->u.adx.tr, tr, pf);
        }
        if (t >= p) {
            double str = ind->u.adx.tr, sum, dx;
            pdi = str > 0 ? 100.0 * ind->u.adx.pdm / str : 0;
            mdi = str > 0 ? 100.0 * ind->u.adx.mdm / str : 0;
            sum = pdi + mdi;
            dx = sum > 0 ? 100.0 * fabs(pdi - mdi) / sum : 0;
            if (t < 2 * p - 1) {
                ind->u.adx.dx_sum += dx;
            } else if (t == 2 * p - 1) {
                adx = ind->u.adx.adx = (ind->u.adx.dx_sum + dx) / pf;
            } else {
                wilder(&ind->u.adx.adx, dx, pf);
                adx = ind->u.adx.adx;
            }
        }
        out[0][i] = adx;
        out[1][i] = pdi;
        out[2][i] = mdi;
    }
}

/* CCI: the mean deviation needs the whole window for every bar (O(p)); no
 * exact O(1) update exists because |x - mean| changes for every value when
 * the mean moves. */
static void cci_run(qg_ind *ind, const qg_bars *b, size_t from, size_t n, double *out)
{
    win *w = &ind->u.cci;
    for (size_t i = 0; i < n; i++) {
        size_t j = from + i;
        double tp = (b->high[j] + b->low[j] + b->close[j]) / 3;
        if (!win_push(w, tp)) {
            out[i] = NAN;
            continue;
        }
        double mean = w->sum * w->inv, md = 0;
        for (size_t r = 0; r < w->p; r++) md += fabs(w->ring[r] - mean);
        md *= w->inv;
        out[i] = md != 0 ? (tp - mean) / (0.015 * md) : 0;
    }
}

/* Williams %R (out[0]) or Donchian (out[0..2]) from the same rolling high/low. */
static void hl_run(qg_ind *ind, const qg_bars *b, size_t from, size_t n, double *const *out)
{
    bool willr = ind->spec.kind == QG_IND_WILLR;
    size_t p = ind->p[0];
    for (size_t i = 0; i < n; i++) {
        uint64_t t = ind->t + i;
        size_t j = from + i;
        double hh, ll;
        ext_hilo(&ind->u.hl.hi, &ind->u.hl.lo, b->high[j], b->low[j], &hh, &ll);
        bool ok = t + 1 >= p;
        if (willr) {
            out[0][i] = !ok ? NAN : hh != ll ? -100.0 * (hh - b->close[j]) / (hh - ll) : 0;
        } else {
            out[0][i] = ok ? hh : NAN;
            out[1][i] = ok ? (hh + ll) / 2 : NAN;
            out[2][i] = ok ? ll : NAN;
        }
    }
}

/* The direction of the close is random bar to bar, so it is applied as a
 * sign (-1, 0, +1) rather than a branch; v * sign is exact. */
static void obv_run(qg_ind *ind, const qg_bars *b, size_t from, size_t n, double *out)
{
    size_t i = 0;
    double obv = ind->u.obv.obv, prev = ind->u.obv.prev_c;
    if (ind->t == 0 && n) { /* OBV[0] = volume[0] (TA-Lib) */
        obv = b->volume[from];
        prev = b->close[from];
        out[i++] = obv;
    }
    for (; i < n; i++) {
        double c = b->close[from + i];
        obv += b->volume[from + i] * (double)((c > prev) - (c < prev));
        prev = c;
        out[i] = obv;
    }
    ind->u.obv.obv = obv;
    ind->u.obv.prev_c = prev;
}

/* UTC day number of a timestamp (floor division, also before 1970). */
static int64_t utc_day(int64_t ts)
{
    const int64_t day = 86400000;
    return ts >= 0 ? ts / day : -((-ts + day - 1) / day);
}

static void vwap_run(qg_ind *ind, const qg_bars *b, size_t from, size_t n, double *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t j = from + i;
        int64_t day = utc_day(b->ts[j]);
        double tp = (b->high[j] + b->low[j] + b->close[j]) / 3;
        if (ind->t + i == 0 || day != ind->u.vwap.day) { /* new session */
            ind->u.vwap.day = day;
            ind->u.vwap.pv = ind->u.vwap.v = 0;
        }
        ind->u.vwap.pv += tp * b->volume[j];
        ind->u.vwap.v += b->volume[j];
        out[i] = ind->u.vwap.v != 0 ? ind->u.vwap.pv / ind->u.vwap.v : tp;
    }
}

void qg_ind_update_block(qg_ind *ind, const qg_bars *b, size_t from, size_t n, double *const *out)
{
    if (!n) return;
    if (single_input(ind->spec.kind)) {
        single_input_block(ind, b, from, n, out);
        return;
    }
    switch (ind->spec.kind) {
    case QG_IND_ATR:
        atr_run(ind, b, from, n, out[0]);
        break;
    case QG_IND_STOCH:
        stoch_run(ind, b, from, n, out);
        break;
    case QG_IND_ADX:
        adx_run(ind, b, from, n, out);
        break;
    case QG_IND_CCI:
        cci_run(ind, b, from, n, out[0]);
        break;
    case QG_IND_WILLR:
    case QG_IND_DONCHIAN:
        hl_run(ind, b, from, n, out);
        break;
    case QG_IND_OBV:
        obv_run(ind, b, from, n, out[0]);
        break;
    case QG_IND_VWAP:
        vwap_run(ind, b, from, n, out[0]);
        break;
    default:
        break;
    }
    ind->t += n;
}

qg_status qg_ind_compute(const qg_ind_spec *s, const qg_bars *b, double *const *out)
{
    qg_ind_spec v = *s;
    if (qg_ind_validate(&v, NULL)) return QG_EINVAL;
    qg_ind *ind = qg_ind_new(&v);
    if (!ind) return QG_ENOMEM;
    qg_ind_update_block(ind, b, 0, b->n, out);
    qg_ind_free(ind);
    return QG_OK;
}
