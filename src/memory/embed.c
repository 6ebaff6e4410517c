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

#include <quantgate/mem.h>

#include <math.h>
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

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#define FNV_BASIS 0xcbf29ce484222325ULL

/* Hash of prefix (e.g. "w:") followed by the bytes. */
static uint64_t feat_hash(const char *prefix, const unsigned char *p, size_t n)
{
    uint64_t h = fnv1a(FNV_BASIS, (const unsigned char *)prefix, strlen(prefix));
    return mix64(fnv1a(h, p, n));
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
} ftab;

static void ftab_grow(ftab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 256;
    feat *ns = qg_xcalloc(ncap, sizeof *ns);
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].tf) continue;
        size_t j = (size_t)t->slots[i].h & (ncap - 1);
        while (ns[j].tf) j = (j + 1) & (ncap - 1);
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
}

static void ftab_add(ftab *t, uint64_t h, double w)
{
    if ((t->n + 1) * 2 > t->cap) ftab_grow(t);
    size_t j = (size_t)h & (t->cap - 1);
    while (t->slots[j].tf && t->slots[j].h != h) j = (j + 1) & (t->cap - 1);
    if (!t->slots[j].tf) {
        t->slots[j].h = h;
        t->n++;
    }
    t->slots[j].wsum += w;
    t->slots[j].tf++;
}

/* ---- words -------------------------------------------------------------- */

static const char *const stopwords[] = {
    "a",    "an",    "the",  "and",   "or",    "but",   "of",     "in",    "on",   "at",    "to",
    "for",  "from",  "by",   "with",  "as",    "is",    "are",    "was",   "were", "be",    "been",
    "it",   "its",   "this", "that",  "these", "those", "there",  "then",  "than", "so",    "if",
    "into", "onto",  "over", "about", "we",    "you",   "he",     "she",   "they", "i",     "me",
    "my",   "our",   "your", "their", "his",   "her",   "do",     "does",  "did",  "has",   "have",
    "had",  "not",   "no",   "can",   "will",  "would", "should", "could", "what", "which", "who",
    "when", "where", "how",  "all",   "any",   "some",  "very",   "just",
};

static int is_stopword(const char *w, size_t n)
{
    for (size_t i = 0; i < sizeof stopwords / sizeof stopwords[0]; i++)
        if (strlen(stopwords[i]) == n && memcmp(stopwords[i], w, n) == 0) return 1;
    return 0;
}

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static void add_ngrams(ftab *t, const char *w, size_t n, size_t g, const char *prefix, double wt)
{
    unsigned char pad[WORD_MAX + 2];
    pad[0] = '<';
    memcpy(pad + 1, w, n);
    pad[n + 1] = '>';
    size_t plen = n + 2;
    if (plen < g) {
        /* too short for a g-gram: the padded word itself stands in */
        ftab_add(t, feat_hash(prefix, pad, plen), wt);
        return;
    }
    size_t count = plen - g + 1;
    double each = wt / sqrt((double)count);
    for (size_t i = 0; i < count; i++) ftab_add(t, feat_hash(prefix, pad + i, g), each);
}

void qg_embed_text(const char *text, size_t len, float *out)
{
    double acc[QG_EMBED_TEXT_DIM] = {0};
    ftab t = {0};
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
        ftab_add(&t, feat_hash("w:", (const unsigned char *)w, n), stop ? W_STOP : W_WORD);
        if (stop) continue;
        add_ngrams(&t, w, n, 3, "3:", W_TRI);
        add_ngrams(&t, w, n, 4, "4:", W_QUAD);
        if (prev_n) {
            unsigned char bg[2 * WORD_MAX + 1];
            memcpy(bg, prev, prev_n);
            bg[prev_n] = ' ';
            memcpy(bg + prev_n + 1, w, n);
            ftab_add(&t, feat_hash("b:", bg, prev_n + 1 + n), W_BIGRAM);
        }
        memcpy(prev, w, n);
        prev_n = n;
    }
    for (size_t j = 0; j < t.cap; j++) {
        const feat *f = &t.slots[j];
        if (!f->tf) continue;
        double v = f->wsum / f->tf * (1.0 + log((double)f->tf));
        acc[f->h & (QG_EMBED_TEXT_DIM - 1)] += (f->h >> 63) ? -v : v;
    }
    free(t.slots);
    double norm = 0;
    for (size_t j = 0; j < QG_EMBED_TEXT_DIM; j++) norm += acc[j] * acc[j];
    norm = norm > 0 ? 1.0 / sqrt(norm) : 0.0;
    for (size_t j = 0; j < QG_EMBED_TEXT_DIM; j++) out[j] = (float)(acc[j] * norm);
}
