/*
 * embed.c - the offline embedders: text by feature hashing (256 dims) and
 * market setups as numeric vectors (64 dims).
 *
 * Text scheme (version 1; changing any constant below changes every stored
 * vector, so a change needs a new embedder name):
 *   1. Words: maximal runs of ASCII letters and digits and of bytes >= 0x80
 *      (so UTF-8 words stay whole), ASCII lower-cased, at most 64 bytes
 *      (longer runs are cut). Everything else separates words.
 *   2. Features of each word w:
 *        "w:" + w                     weight 1.0 (0.2 for a stopword)
 *        "b:" + prev + " " + w        weight 0.6, where prev is the previous
 *                                     word that is not a stopword (stopwords
 *                                     are skipped so "break of structure"
 *                                     yields "break structure")
 *        "3:" + 3-grams of "<w>"      weight 0.55 / sqrt(number of 3-grams)
 *        "4:" + 4-grams of "<w>"      weight 0.45 / sqrt(number of 4-grams)
 *      Character n-grams are skipped for stopwords. The per-word division
 *      keeps a long word's n-grams from outweighing the word itself: all the
 *      3-grams of one word together carry energy 0.55^2.
 *   3. Each distinct feature f (identified by its 64-bit hash) gets
 *      mean_weight(f) * (1 + ln tf(f)), sublinear term frequency.
 *   4. Hash: FNV-1a 64 of the feature bytes, then the splitmix64 finaliser.
 *      Bucket = h & 255, sign = bit 63 (set: negative). The signed hash makes
 *      collisions cancel in expectation instead of adding up.
 *   5. The 256 sums are L2-normalised (all zero when the text has no word).
 *
 * Market scheme: see the layout comment above qg_embed_market.
 */
#include "memory/embed.h"

#include <quantgate/hash.h>
#include <quantgate/mem.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define WORD_MAX 64
#define W_WORD   1.0
#define W_STOP   0.2
#define W_BIGRAM 0.6
#define W_TRI    0.55
#define W_QUAD   0.45

/* ---- hashing ---------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* FNV-1a state after a two-byte prefix such as "w:": each feature starts
 * from it instead of hashing its prefix again. */
static uint64_t prefix_state(const char *prefix)
{
    return qg_fnv1a(QG_FNV1A_BASIS, prefix, strlen(prefix));
}

/* Hash of the prefix whose state is h0 followed by the bytes. */
static uint64_t feat_hash_from(uint64_t h0, const unsigned char *p, size_t n)
{
    return mix64(qg_fnv1a(h0, p, n));
}

/* Hash of prefix (e.g. "w:") followed by the bytes. */
static uint64_t feat_hash(const char *prefix, const unsigned char *p, size_t n)
{
    return feat_hash_from(prefix_state(prefix), p, n);
}

/* ---- feature table: open addressing on the 64-bit hash ---------------- */

typedef struct feat {
    uint64_t h;
    double wsum;
    uint32_t tf;
} feat;

typedef struct ftab {
    feat *slots;
    size_t cap, n; /* cap is a power of two; n < cap / 2 */
    /* Slots is the thread's table: a bit per slot in use. NULL: slots is
     * this call's calloc. */
    uint64_t *used;
} ftab;

/* Each thread keeps one all-zero table of up to TL_MAX slots (384 KiB):
 * the final pass zeroes every slot it reads, so the next text starts from
 * a clean table without a memset or a fresh calloc (whose page faults were
 * a third of embedding a 500-byte text), and a bitmap of the slots in use
 * lets that pass skip the empty three quarters in slot order. Longer
 * texts get a table of their own. The table goes with its thread (a key
 * destructor). */
#define TL_MAX ((size_t)1 << 14)

static _Thread_local feat *tl_slots;
static _Thread_local size_t tl_cap;
static _Thread_local uint64_t tl_used[TL_MAX / 64]; /* all zero between texts */
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

static void tl_make_key(void)
{
    (void)pthread_key_create(&tl_key, free);
}

/* The thread's clean table with at least want slots, or NULL. */
static feat *thread_table(size_t want)
{
    if (want > TL_MAX) return NULL;
    if (tl_cap < want) {
        pthread_once(&tl_once, tl_make_key);
        free(tl_slots);
        tl_slots = qg_xcalloc(want, sizeof *tl_slots);
        tl_cap = want;
        (void)pthread_setspecific(tl_key, tl_slots);
    }
    return tl_slots;
}

/* A text yields about two features per byte (a word of n letters gives n
 * trigrams, n - 1 quadgrams, itself and a bigram), fewer once they repeat:
 * sized for that, the table rarely grows. */
static void ftab_init(ftab *t, size_t len)
{
    size_t want = 256;
    while (want < 4 * len && want < ((size_t)1 << 20)) want *= 2;
    t->n = 0;
    t->cap = want;
    t->slots = thread_table(want);
    t->used = t->slots ? tl_used : NULL;
    if (!t->slots) t->slots = qg_xcalloc(want, sizeof *t->slots);
}

static void ftab_grow(ftab *t)
{
    size_t ncap = t->cap * 2;
    feat *ns = qg_xcalloc(ncap, sizeof *ns);
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].tf) continue;
        size_t j = (size_t)t->slots[i].h & (ncap - 1);
        while (ns[j].tf) j = (j + 1) & (ncap - 1);
        ns[j] = t->slots[i];
    }
    if (t->used) { /* the thread's table stays clean */
        memset(t->slots, 0, t->cap * sizeof *t->slots);
        memset(t->used, 0, (t->cap + 63) / 64 * sizeof *t->used);
    } else {
        free(t->slots);
    }
    t->slots = ns;
    t->cap = ncap;
    t->used = NULL;
}

static void ftab_add(ftab *t, uint64_t h, double w)
{
    if ((t->n + 1) * 2 > t->cap) ftab_grow(t);
    size_t j = (size_t)h & (t->cap - 1);
    while (t->slots[j].tf && t->slots[j].h != h) j = (j + 1) & (t->cap - 1);
    if (!t->slots[j].tf) {
        t->slots[j].h = h;
        t->n++;
        if (t->used) t->used[j / 64] |= (uint64_t)1 << (j % 64);
    }
    t->slots[j].wsum += w;
    t->slots[j].tf++;
}

/* 1 + ln tf for the term frequencies short texts have, from log() itself
 * so the values are the same bits. */
#define LOG_TABLE 64
static double one_plus_log[LOG_TABLE];
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void fill_log_table(void)
{
    for (uint32_t i = 1; i < LOG_TABLE; i++) one_plus_log[i] = 1.0 + log((double)i);
}

static void drain_slot(feat *f, double *acc)
{
    /* Most features occur once: wsum / 1 * (1 + ln 1) is wsum, exactly. */
    double lf = f->tf < LOG_TABLE ? one_plus_log[f->tf] : 1.0 + log((double)f->tf);
    double v = f->tf == 1 ? f->wsum : f->wsum / f->tf * lf;
    acc[f->h & (QG_EMBED_TEXT_DIM - 1)] += (f->h >> 63) ? -v : v;
    *f = (feat){0};
}

/* Adds each feature's weight to its bucket of acc, in slot order (the
 * order of the sums is part of the scheme: it fixes the last bits), and
 * empties the table. */
static void ftab_drain(ftab *t, double *acc)
{
    pthread_once(&log_once, fill_log_table);
    if (t->used) {
        for (size_t w = 0; w < (t->cap + 63) / 64; w++) {
            for (uint64_t bits = t->used[w]; bits; bits &= bits - 1)
                drain_slot(&t->slots[w * 64 + (size_t)__builtin_ctzll(bits)], acc);
            t->used[w] = 0;
        }
    } else {
        for (size_t j = 0; j < t->cap; j++)
            if (t->slots[j].tf) drain_slot(&t->slots[j], acc);
        free(t->slots);
    }
    t->slots = NULL;
}

/* ---- words -------------------------------------------------------------- */

/* The stop words, by length: stopwords_by_len[n] is every n-letter one
 * run together (a table lookup instead of a pass over the whole list, as
 * this runs for every word of every text embedded). */
static const char *const stopwords_by_len[] = {
    "",
    "ai",
    "anorofinonattobyasisbeitsoifwehememydono",
    "theandbutforarewasitsyousheourhisherdidhashadnotcanwhohowallany",
    "fromwithwerebeenthisthatthenthanintoontoovertheyyourdoeshavewillwhatwhensomeveryjust",
    "thesethosethereabouttheirwouldcouldwhichwhere",
    "should",
};

/* Byte by byte in line: the words are a few bytes long, shorter than a
 * call to memcmp. */
static int is_stopword(const char *w, size_t n)
{
    if (n == 0 || n >= sizeof stopwords_by_len / sizeof stopwords_by_len[0]) return 0;
    for (const char *s = stopwords_by_len[n]; *s; s += n) {
        size_t k = 0;
        while (k < n && s[k] == w[k]) k++;
        if (k == n) return 1;
    }
    return 0;
}

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* The FNV-1a states of the feature prefixes. */
typedef struct prefixes {
    uint64_t word, bigram, tri, quad;
} prefixes;

static void add_ngrams(ftab *t, const char *w, size_t n, size_t g, uint64_t h0, double wt)
{
    unsigned char pad[WORD_MAX + 2];
    pad[0] = '<';
    memcpy(pad + 1, w, n);
    pad[n + 1] = '>';
    size_t plen = n + 2;
    if (plen < g) {
        /* too short for a g-gram: the padded word itself stands in */
        ftab_add(t, feat_hash_from(h0, pad, plen), wt);
        return;
    }
    size_t count = plen - g + 1;
    double each = wt / sqrt((double)count);
    for (size_t i = 0; i < count; i++) ftab_add(t, feat_hash_from(h0, pad + i, g), each);
}

void qg_embed_text(const char *text, size_t len, float *out)
{
    const prefixes px = {prefix_state("w:"), prefix_state("b:"), prefix_state("3:"),
                         prefix_state("4:")};
    double acc[QG_EMBED_TEXT_DIM] = {0};
    ftab t;
    ftab_init(&t, text ? len : 0);
    char prev[WORD_MAX];
    size_t prev_n = 0;
    size_t i = 0;
    while (text && i < len) {
        while (i < len && !is_word_byte((unsigned char)text[i])) i++;
        if (i >= len) break;
        char w[WORD_MAX];
        size_t n = 0;
        while (i < len && is_word_byte((unsigned char)text[i])) {
            unsigned char c = (unsigned char)text[i++];
            if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
            if (n < WORD_MAX) w[n++] = (char)c;
        }
        int stop = is_stopword(w, n);
        ftab_add(&t, feat_hash_from(px.word, (const unsigned char *)w, n), stop ? W_STOP : W_WORD);
        if (stop) continue;
        add_ngrams(&t, w, n, 3, px.tri, W_TRI);
        add_ngrams(&t, w, n, 4, px.quad, W_QUAD);
        if (prev_n) {
            unsigned char bg[2 * WORD_MAX + 1];
            memcpy(bg, prev, prev_n);
            bg[prev_n] = ' ';
            memcpy(bg + prev_n + 1, w, n);
            ftab_add(&t, feat_hash_from(px.bigram, bg, prev_n + 1 + n), W_BIGRAM);
        }
        memcpy(prev, w, n);
        prev_n = n;
    }
    ftab_drain(&t, acc);
    double norm = 0;
    for (size_t j = 0; j < QG_EMBED_TEXT_DIM; j++) norm += acc[j] * acc[j];
    norm = norm > 0 ? 1.0 / sqrt(norm) : 0.0;
    for (size_t j = 0; j < QG_EMBED_TEXT_DIM; j++) out[j] = (float)(acc[j] * norm);
}

/* ---- market setups ------------------------------------------------------
 *
 * Layout of the QG_EMBED_MARKET_DIM = 64 floats (block: dims, weight). Every
 * numeric block is scaled to a norm of at most 1 (values in [-1, 1] divided
 * by sqrt(dims)); one-hot blocks have norm 1; hashed blocks are normalised
 * to norm 1. Each block is then multiplied by its weight, and the whole
 * vector is L2-normalised, so the weights say how much of the cosine each
 * block can claim.
 *   [0,16)  returns, 0.45: the last 16 log returns (most recent last, missing
 *           ones 0) divided by their RMS (own volatility), clipped to +-3, /3
 *   [16,24) ranges, 0.25: ln((high-low) / mean(high-low)) of the last 8 bars
 *           against the mean range of up to the last 50 bars, clipped +-2, /2
 *           (all 0 when the bars have no range, e.g. close-only input)
 *   [24,26) volatility regime, 0.25: ln(RMS of the last 5 returns / RMS of
 *           all returns) and the same for ranges, clipped +-2, /2
 *   [26,29) position, 0.3: close in the last-20-bar range and in the whole
 *           window (2p - 1: +1 premium, -1 discount), and the distance of the
 *           close from the last-20 mean close in RMS-return units, tanh(x/3)
 *   [29,32) trend one-hot, 0.35: down, range, up
 *   [32,37) structure one-hot, 0.35: none, bos_bull, bos_bear, choch_bull,
 *           choch_bear
 *   [37,42) session one-hot, 0.2: asia, london, new_york, off, unknown
 *   [42,50) signal, 0.35: type name (without a _bull/_bear suffix, lower
 *           case) hashed into 6 signed buckets, then bull and bear flags
 *           (direction from "bull"/"bear"/"long"/"short" in the name)
 *   [50,62) confluences, 0.3: each name (lower case) hashed into 12 signed
 *           buckets, normalised
 *   [62,64) confidence, 0.15: confidence / 100, and 1 when known (0, 0 when
 *           unknown)
 */

enum {
    M_RET = 0,
    M_RANGE = 16,
    M_VOL = 24,
    M_POS = 26,
    M_TREND = 29,
    M_STRUCT = 32,
    M_SESSION = 37,
    M_SIGNAL = 42,
    M_CONF = 50,
    M_CONFIDENCE = 62,
    M_END = 64
};

static const char *const structures[] = {"", "bos_bull", "bos_bear", "choch_bull", "choch_bear"};
static const char *const sessions[] = {"asia", "london", "new_york", "off"};

static double clipd(double x, double lim)
{
    return x > lim ? lim : x < -lim ? -lim : x;
}

/* Index in structures[] (NULL and "none" are ""), or -1. */
static int structure_index(const char *s)
{
    if (!s || strcmp(s, "none") == 0) return 0;
    for (int i = 0; i < 5; i++)
        if (strcmp(s, structures[i]) == 0) return i;
    return -1;
}

/* Index in sessions[], 4 for NULL/"" / "unknown", or -1. */
static int session_index(const char *s)
{
    if (!s || !*s || strcmp(s, "unknown") == 0) return 4;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, sessions[i]) == 0) return i;
    return -1;
}

static void lower_copy(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s[n] && n + 1 < cap; n++)
        dst[n] = (char)((s[n] >= 'A' && s[n] <= 'Z') ? s[n] - 'A' + 'a' : s[n]);
    dst[n] = 0;
}

/* Signed hash of name into v[0..n). */
static void hash_into(double *v, size_t n, const char *prefix, const char *name, double w)
{
    uint64_t h = feat_hash(prefix, (const unsigned char *)name, strlen(name));
    v[(h & 0xffffffffu) % n] += (h >> 63) ? -w : w;
}

static void scale_block(double *v, size_t n, double target_norm, int normalise)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i] * v[i];
    if (s <= 0) return;
    double f = normalise ? target_norm / sqrt(s) : target_norm / sqrt((double)n);
    for (size_t i = 0; i < n; i++) v[i] *= f;
}

static double rms(const double *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += r[i] * r[i];
    return n ? sqrt(s / (double)n) : 0;
}

static qg_status check_setup(const qg_market_setup *s, qg_error *err)
{
    if (!s || !s->close) return qg_error_set(err, QG_EINVAL, "close: missing");
    if (s->n_bars < 2 || s->n_bars > QG_SETUP_MAX_BARS)
        return qg_error_set(err, QG_EINVAL, "bars: %zu bars, expected 2..%d", s->n_bars,
                            QG_SETUP_MAX_BARS);
    for (size_t i = 0; i < s->n_bars; i++) {
        double o = s->open ? s->open[i] : s->close[i];
        double h = s->high ? s->high[i] : s->close[i];
        double l = s->low ? s->low[i] : s->close[i];
        double c = s->close[i];
        if (!isfinite(o) || !isfinite(h) || !isfinite(l) || !isfinite(c))
            return qg_error_set(err, QG_EINVAL, "bars[%zu]: a price is not a finite number", i);
        if (c <= 0 || o <= 0 || l <= 0)
            return qg_error_set(err, QG_EINVAL, "bars[%zu]: prices must be positive", i);
        if (h < l)
            return qg_error_set(err, QG_EINVAL, "bars[%zu]: high %g is below low %g", i, h, l);
    }
    if (s->trend < -1 || s->trend > 1)
        return qg_error_set(err, QG_EINVAL, "trend: %d, expected -1, 0 or 1", s->trend);
    if (structure_index(s->structure) < 0)
        return qg_error_set(
            err, QG_EINVAL,
            "structure: '%.40s' is not one of none, bos_bull, bos_bear, choch_bull, choch_bear",
            s->structure);
    if (session_index(s->session) < 0)
        return qg_error_set(err, QG_EINVAL,
                            "session: '%.40s' is not one of asia, london, new_york, off",
                            s->session);
    if (s->n_confluences && !s->confluences)
        return qg_error_set(err, QG_EINVAL, "confluences: missing");
    if (isnan(s->confidence) || s->confidence > 100)
        return qg_error_set(err, QG_EINVAL, "confidence: expected 0..100");
    return QG_OK;
}

static void embed_prices(const qg_market_setup *s, double *v)
{
    size_t n = s->n_bars;
    const double *c = s->close;
    const double *hi = s->high ? s->high : c;
    const double *lo = s->low ? s->low : c;
    double r[QG_SETUP_MAX_BARS];
    size_t nr = n - 1;
    for (size_t i = 1; i < n; i++) r[i - 1] = log(c[i] / c[i - 1]);
    double vol_all = rms(r, nr);

    /* returns: most recent in the last slot */
    double *ret = v + M_RET;
    size_t k = nr < 16 ? nr : 16;
    for (size_t i = 0; i < k && vol_all > 0; i++)
        ret[16 - k + i] = clipd(r[nr - k + i] / vol_all, 3.0) / 3.0;

    /* ranges */
    size_t nw = n < 50 ? n : 50;
    double mean_rng = 0, mean_rng5 = 0;
    for (size_t i = n - nw; i < n; i++) mean_rng += hi[i] - lo[i];
    mean_rng /= (double)nw;
    size_t n5 = n < 5 ? n : 5;
    for (size_t i = n - n5; i < n; i++) mean_rng5 += hi[i] - lo[i];
    mean_rng5 /= (double)n5;
    if (mean_rng > 0) {
        size_t kr = n < 8 ? n : 8;
        for (size_t i = 0; i < kr; i++) {
            double rg = hi[n - kr + i] - lo[n - kr + i];
            /* a bar with no range reads as 1/8 of the mean so the log stays finite */
            double ratio = rg > 0 ? rg / mean_rng : 0.125;
            v[M_RANGE + 8 - kr + i] = clipd(log(ratio), 2.0) / 2.0;
        }
    }

    /* volatility regime */
    size_t nr5 = nr < 5 ? nr : 5;
    double vol5 = rms(r + nr - nr5, nr5);
    if (vol_all > 0 && vol5 > 0)
        v[M_VOL] = clipd(log(vol5 / vol_all), 2.0) / 2.0;
    else if (vol_all > 0)
        v[M_VOL] = -1.0;
    if (mean_rng > 0 && mean_rng5 > 0) v[M_VOL + 1] = clipd(log(mean_rng5 / mean_rng), 2.0) / 2.0;

    /* position: premium / discount */
    size_t n20 = n < 20 ? n : 20;
    double h20 = hi[n - n20], l20 = lo[n - n20], hall = hi[0], lall = lo[0], m20 = 0;
    for (size_t i = n - n20; i < n; i++) {
        h20 = hi[i] > h20 ? hi[i] : h20;
        l20 = lo[i] < l20 ? lo[i] : l20;
        m20 += c[i];
    }
    for (size_t i = 0; i < n; i++) {
        hall = hi[i] > hall ? hi[i] : hall;
        lall = lo[i] < lall ? lo[i] : lall;
    }
    m20 /= (double)n20;
    double last = c[n - 1];
    if (h20 > l20) v[M_POS] = 2.0 * (last - l20) / (h20 - l20) - 1.0;
    if (hall > lall) v[M_POS + 1] = 2.0 * (last - lall) / (hall - lall) - 1.0;
    if (vol_all > 0) v[M_POS + 2] = tanh(log(last / m20) / vol_all / 3.0);
}

static void embed_labels(const qg_market_setup *s, double *v)
{
    v[M_TREND + s->trend + 1] = 1.0;
    v[M_STRUCT + structure_index(s->structure)] = 1.0;
    v[M_SESSION + session_index(s->session)] = 1.0;
    if (s->signal_type && *s->signal_type) {
        char name[64];
        lower_copy(name, sizeof name, s->signal_type);
        int bull = strstr(name, "bull") || strstr(name, "long");
        int bear = strstr(name, "bear") || strstr(name, "short");
        /* the type without its direction, so BoS_bull and BoS_bear share buckets */
        char *cut = strstr(name, "_bull");
        if (!cut) cut = strstr(name, "_bear");
        if (cut) *cut = 0;
        hash_into(v + M_SIGNAL, 6, "s:", name, 1.0);
        v[M_SIGNAL + 6] = bull && !bear ? 1.0 : 0.0;
        v[M_SIGNAL + 7] = bear && !bull ? 1.0 : 0.0;
    }
    for (size_t i = 0; i < s->n_confluences; i++) {
        if (!s->confluences[i] || !*s->confluences[i]) continue;
        char name[64];
        lower_copy(name, sizeof name, s->confluences[i]);
        hash_into(v + M_CONF, 12, "c:", name, 1.0);
    }
    if (s->confidence >= 0) {
        v[M_CONFIDENCE] = s->confidence / 100.0;
        v[M_CONFIDENCE + 1] = 1.0;
    }
}

qg_status qg_embed_market(const qg_market_setup *s, float *out, qg_error *err)
{
    qg_status rc = check_setup(s, err);
    if (rc) return rc;
    double v[M_END] = {0};
    embed_prices(s, v);
    embed_labels(s, v);
    scale_block(v + M_RET, 16, 0.45, 0);
    scale_block(v + M_RANGE, 8, 0.25, 0);
    scale_block(v + M_VOL, 2, 0.25, 0);
    scale_block(v + M_POS, 3, 0.3, 0);
    scale_block(v + M_TREND, 3, 0.35, 1);
    scale_block(v + M_STRUCT, 5, 0.35, 1);
    scale_block(v + M_SESSION, 5, 0.2, 1);
    scale_block(v + M_SIGNAL, 6, 0.35 * 0.7, 1);
    scale_block(v + M_SIGNAL + 6, 2, 0.35 * 0.7, 1);
    scale_block(v + M_CONF, 12, 0.3, 1);
    scale_block(v + M_CONFIDENCE, 2, 0.15, 0);
    double norm = 0;
    for (int i = 0; i < M_END; i++) norm += v[i] * v[i];
    norm = norm > 0 ? 1.0 / sqrt(norm) : 0;
    for (int i = 0; i < M_END; i++) out[i] = (float)(v[i] * norm);
    return QG_OK;
}

/* ---- the JSON form ------------------------------------------------------- */

#define MAX_CONFLUENCES 32

static qg_status json_price(const cJSON *bar, const char *name, size_t i, int required, double *out,
                            qg_error *err)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(bar, name);
    if (!x) {
        if (required) return qg_error_set(err, QG_EINVAL, "bars[%zu].%s: missing", i, name);
        return QG_OK;
    }
    if (!cJSON_IsNumber(x))
        return qg_error_set(err, QG_EINVAL, "bars[%zu].%s: expected a number", i, name);
    *out = x->valuedouble;
    return QG_OK;
}

static qg_status json_bars(const cJSON *bars, double *o, double *h, double *l, double *c, size_t *n,
                           qg_error *err)
{
    if (!cJSON_IsArray(bars))
        return qg_error_set(err, QG_EINVAL, "bars: expected an array of {open, high, low, close}");
    int count = cJSON_GetArraySize(bars);
    if (count < 2 || count > QG_SETUP_MAX_BARS)
        return qg_error_set(err, QG_EINVAL, "bars: %d bars, expected 2..%d", count,
                            QG_SETUP_MAX_BARS);
    size_t i = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, bars)
    {
        if (!cJSON_IsObject(b))
            return qg_error_set(err, QG_EINVAL, "bars[%zu]: expected an object", i);
        const cJSON *m;
        cJSON_ArrayForEach(m, b)
        {
            if (strcmp(m->string, "open") && strcmp(m->string, "high") &&
                strcmp(m->string, "low") && strcmp(m->string, "close") &&
                strcmp(m->string, "time") && strcmp(m->string, "volume"))
                return qg_error_set(
                    err, QG_EINVAL,
                    "bars[%zu].%.40s: unknown member (expected open, high, low, close, "
                    "time, volume)",
                    i, m->string);
        }
        qg_status rc = json_price(b, "close", i, 1, &c[i], err);
        o[i] = h[i] = l[i] = c[i];
        if (!rc) rc = json_price(b, "open", i, 0, &o[i], err);
        if (!rc) rc = json_price(b, "high", i, 1, &h[i], err);
        if (!rc) rc = json_price(b, "low", i, 1, &l[i], err);
        if (rc) return rc;
        i++;
    }
    *n = i;
    return QG_OK;
}

static qg_status json_closes(const cJSON *arr, double *o, double *h, double *l, double *c,
                             size_t *n, qg_error *err)
{
    if (!cJSON_IsArray(arr))
        return qg_error_set(err, QG_EINVAL, "close: expected an array of numbers");
    int count = cJSON_GetArraySize(arr);
    if (count < 2 || count > QG_SETUP_MAX_BARS)
        return qg_error_set(err, QG_EINVAL, "close: %d prices, expected 2..%d", count,
                            QG_SETUP_MAX_BARS);
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        if (!cJSON_IsNumber(x))
            return qg_error_set(err, QG_EINVAL, "close[%zu]: expected a number", i);
        o[i] = h[i] = l[i] = c[i] = x->valuedouble;
        i++;
    }
    *n = i;
    return QG_OK;
}

static qg_status json_string(const cJSON *x, const char *name, const char **out, qg_error *err)
{
    if (!x || cJSON_IsNull(x)) return QG_OK;
    if (!cJSON_IsString(x)) return qg_error_set(err, QG_EINVAL, "%s: expected a string", name);
    *out = x->valuestring;
    return QG_OK;
}

static qg_status json_labels(const cJSON *setup, qg_market_setup *s, const char **conf,
                             qg_error *err)
{
    qg_status rc = QG_OK;
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(setup, "trend");
    if (x && !cJSON_IsNull(x)) {
        const char *t = cJSON_IsString(x) ? x->valuestring : "";
        if (strcmp(t, "up") == 0)
            s->trend = 1;
        else if (strcmp(t, "down") == 0)
            s->trend = -1;
        else if (strcmp(t, "range") == 0)
            s->trend = 0;
        else
            return qg_error_set(err, QG_EINVAL, "trend: expected \"up\", \"down\" or \"range\"");
    }
    if ((rc = json_string(cJSON_GetObjectItemCaseSensitive(setup, "structure"), "structure",
                          &s->structure, err)) ||
        (rc = json_string(cJSON_GetObjectItemCaseSensitive(setup, "session"), "session",
                          &s->session, err)) ||
        (rc = json_string(cJSON_GetObjectItemCaseSensitive(setup, "signal_type"), "signal_type",
                          &s->signal_type, err)))
        return rc;
    x = cJSON_GetObjectItemCaseSensitive(setup, "confluences");
    if (x && !cJSON_IsNull(x)) {
        if (!cJSON_IsArray(x))
            return qg_error_set(err, QG_EINVAL, "confluences: expected an array of strings");
        if (cJSON_GetArraySize(x) > MAX_CONFLUENCES)
            return qg_error_set(err, QG_EINVAL, "confluences: more than %d", MAX_CONFLUENCES);
        const cJSON *e;
        size_t i = 0;
        cJSON_ArrayForEach(e, x)
        {
            if (!cJSON_IsString(e))
                return qg_error_set(err, QG_EINVAL, "confluences[%zu]: expected a string", i);
            conf[i++] = e->valuestring;
        }
        s->confluences = conf;
        s->n_confluences = i;
    }
    x = cJSON_GetObjectItemCaseSensitive(setup, "confidence");
    if (x && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 100)
            return qg_error_set(err, QG_EINVAL, "confidence: expected a number 0..100");
        s->confidence = x->valuedouble;
    }
    return QG_OK;
}

qg_status qg_embed_market_json(const cJSON *setup, float *out, qg_error *err)
{
    static const char *const known[] = {"bars",    "close",       "trend",       "structure",
                                        "session", "signal_type", "confluences", "confidence"};
    if (!cJSON_IsObject(setup)) return qg_error_set(err, QG_EINVAL, "setup: expected an object");
    const cJSON *m;
    cJSON_ArrayForEach(m, setup)
    {
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(m->string, known[k])) k++;
        if (k == sizeof known / sizeof known[0])
            return qg_error_set(
                err, QG_EINVAL,
                "%.40s: unknown member (expected bars or close, trend, structure, session, "
                "signal_type, confluences, confidence)",
                m->string);
    }
    const cJSON *bars = cJSON_GetObjectItemCaseSensitive(setup, "bars");
    const cJSON *closes = cJSON_GetObjectItemCaseSensitive(setup, "close");
    if (bars && closes)
        return qg_error_set(err, QG_EINVAL, "close: give either bars or close, not both");
    if (!bars && !closes) return qg_error_set(err, QG_EINVAL, "bars: missing (give bars or close)");

    qg_status rc = QG_OK;
    double *o = qg_xmalloc(4 * QG_SETUP_MAX_BARS * sizeof(double));
    double *h = o + QG_SETUP_MAX_BARS, *l = h + QG_SETUP_MAX_BARS, *c = l + QG_SETUP_MAX_BARS;
    const char *conf[MAX_CONFLUENCES];
    qg_market_setup s = {.confidence = -1};
    size_t n = 0;
    rc = bars ? json_bars(bars, o, h, l, c, &n, err) : json_closes(closes, o, h, l, c, &n, err);
    if (rc) goto out;
    s.open = o;
    s.high = h;
    s.low = l;
    s.close = c;
    s.n_bars = n;
    if ((rc = json_labels(setup, &s, conf, err))) goto out;
    rc = qg_embed_market(&s, out, err);
out:
    free(o);
    return rc;
}
