/*
 * hnsw_int.h - the inside of a qg_vindex, shared by vindex.c (kernels, codec,
 * the flat index, snapshots, the public entry points) and hnsw.c (the graph).
 * Nothing outside src/memory/vindex.c and hnsw.c may include it (but the
 * vindex unit test, to set full_prune).
 *
 * Storage is by slot: slot i holds labels[i], the dim floats at
 * qg_vix_vec(ix, i) and, for HNSW, the node's level, deleted flag and links.
 * The flat index keeps its slots dense (a removal moves the last slot into
 * the hole); the HNSW index never moves a node (links name slots), it marks a
 * removed node deleted and reuses the slot on a later add.
 *
 * Internally every metric is "smaller is closer" through one kernel: l2 is
 * the squared distance, cosine and dot are -dot (cosine vectors are stored
 * normalised); qg_vix_public_dist turns that into the documented distance.
 */
#ifndef QG_MEMORY_HNSW_INT_H
#define QG_MEMORY_HNSW_INT_H

#include "memory/vindex.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>

#define QG_VIX_NONE      UINT32_MAX /* "no slot" */
#define QG_VIX_MAX_LEVEL 16         /* levels above this are clamped (P ~ M^-16) */
#define QG_VIX_MAX_M     256
#define QG_VIX_MAX_ITEMS ((size_t)UINT32_MAX - 1)

/* ---- kernels (inline here so the graph walk inlines them) ----
 * With AVX-512 or AVX2+FMA (a -march=native build): four independent
 * accumulator registers hide the multiply-add latency and one tree
 * reduction ends the sum. A vector's distances are then a few dozen cycles
 * at the 256 dimensions of the text embedder, and most of an HNSW insert is
 * distances (the neighbour-pruning heuristic compares candidates pairwise).
 * Without them: plain loops over an array of independent lanes, which GCC
 * -O3 turns into multiply-adds of whatever width the target has (a float sum
 * may not be reordered without -ffast-math, so one accumulator would stay
 * scalar). The two paths sum in different orders: results differ in the
 * last bits between builds, never within one. */
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#ifdef __FMA__
#define QG_MADD(a, b, c) fmaf((a), (b), (c))
#else
#define QG_MADD(a, b, c) ((a) * (b) + (c))
#endif

#if defined(__AVX512F__)

static inline __m512 vix_load(const float *p, size_t left)
{
    return left >= 16 ? _mm512_loadu_ps(p)
                      : _mm512_maskz_loadu_ps((__mmask16)((1u << left) - 1u), p);
}

static inline float vix_dot(const float *restrict a, const float *restrict b, size_t dim)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i < dim; i += 16)
        s0 = _mm512_fmadd_ps(vix_load(a + i, dim - i), vix_load(b + i, dim - i), s0);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static inline float vix_l2(const float *restrict a, const float *restrict b, size_t dim)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, t;
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        t = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(t, t, s0);
        t = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        s1 = _mm512_fmadd_ps(t, t, s1);
        t = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
        s2 = _mm512_fmadd_ps(t, t, s2);
        t = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
        s3 = _mm512_fmadd_ps(t, t, s3);
    }
    for (; i < dim; i += 16) {
        t = _mm512_sub_ps(vix_load(a + i, dim - i), vix_load(b + i, dim - i));
        s0 = _mm512_fmadd_ps(t, t, s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

#elif defined(__AVX2__) && defined(__FMA__)

static inline float vix_hsum256(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

static inline float vix_dot(const float *restrict a, const float *restrict b, size_t dim)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = vix_hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < dim; i++) s = fmaf(a[i], b[i], s);
    return s;
}

static inline float vix_l2(const float *restrict a, const float *restrict b, size_t dim)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, t;
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        t = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
        t = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s1 = _mm256_fmadd_ps(t, t, s1);
        t = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        s2 = _mm256_fmadd_ps(t, t, s2);
        t = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s3 = _mm256_fmadd_ps(t, t, s3);
    }
    for (; i + 8 <= dim; i += 8) {
        t = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
    }
    float s = vix_hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s = fmaf(d, d, s);
    }
    return s;
}

#else

/* 32 lanes: enough independent accumulator chains to hide the multiply-add
 * latency at whatever vector width the compiler picks. */
#define QG_VLANES 32

/* Pairwise halving, which the compiler also vectorises. */
static inline float vix_reduce(float *acc)
{
    for (size_t j = 0; j < QG_VLANES / 2; j++) acc[j] += acc[j + QG_VLANES / 2];
    for (size_t j = 0; j < QG_VLANES / 4; j++) acc[j] += acc[j + QG_VLANES / 4];
    for (size_t j = 0; j < QG_VLANES / 8; j++) acc[j] += acc[j + QG_VLANES / 8];
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

static inline float vix_dot(const float *restrict a, const float *restrict b, size_t dim)
{
    float acc[QG_VLANES] = {0};
    size_t i = 0;
    for (; i + QG_VLANES <= dim; i += QG_VLANES)
        for (size_t j = 0; j < QG_VLANES; j++) acc[j] = QG_MADD(a[i + j], b[i + j], acc[j]);
    if (i + QG_VLANES / 2 <= dim) {
        for (size_t j = 0; j < QG_VLANES / 2; j++) acc[j] = QG_MADD(a[i + j], b[i + j], acc[j]);
        i += QG_VLANES / 2;
    }
    float s = 0;
    for (; i < dim; i++) s = QG_MADD(a[i], b[i], s);
    return s + vix_reduce(acc);
}

static inline float vix_l2(const float *restrict a, const float *restrict b, size_t dim)
{
    float acc[QG_VLANES] = {0};
    size_t i = 0;
    for (; i + QG_VLANES <= dim; i += QG_VLANES)
        for (size_t j = 0; j < QG_VLANES; j++) {
            float t = a[i + j] - b[i + j];
            acc[j] = QG_MADD(t, t, acc[j]);
        }
    if (i + QG_VLANES / 2 <= dim) {
        for (size_t j = 0; j < QG_VLANES / 2; j++) {
            float t = a[i + j] - b[i + j];
            acc[j] = QG_MADD(t, t, acc[j]);
        }
        i += QG_VLANES / 2;
    }
    float s = 0;
    for (; i < dim; i++) {
        float t = a[i] - b[i];
        s = QG_MADD(t, t, s);
    }
    return s + vix_reduce(acc);
}

#endif

static inline float vix_negdot(const float *restrict a, const float *restrict b, size_t dim)
{
    return -vix_dot(a, b, dim);
}

typedef float (*qg_vdist_fn)(const float *restrict a, const float *restrict b, size_t dim);

/* label -> slot: open addressing with linear probing and backward-shift
 * deletion (no tombstones), capacity a power of two, at most 50% full. */
typedef struct qg_vmap {
    uint64_t *keys;
    uint32_t *vals; /* QG_VIX_NONE marks an empty cell */
    size_t cap, n;
} qg_vmap;

/* A (distance, slot) pair for the search heaps. */
typedef struct qg_vcand {
    float d;
    uint32_t id;
} qg_vcand;

/* Scratch for one search: epoch-tagged visited marks and the two heaps.
 * Taken from the index's pool for the duration of one search. */
typedef struct qg_vctx {
    uint16_t *tags;
    size_t ntags;
    uint16_t epoch;
    qg_vcand *cand, *res; /* min-heap of candidates, max-heap of results */
    size_t ccap, rcap;
    struct qg_vctx *next;
} qg_vctx;

struct qg_vindex {
    qg_vindex_params p;
    size_t dim;
    qg_vdist_fn dist;
    /* The slab: cap slots of stride floats, 64-byte aligned. A flat slot is
     * the vector alone (dense, for streaming scans). An HNSW slot is the
     * node's level-0 link row (count then 2*M slots, padded to 64 bytes)
     * followed by its vector (padded to 64 bytes): a node's links and
     * vector share one region of memory, so expanding a node costs fewer
     * cache misses. */
    size_t stride;
    size_t voff; /* floats before the vector in a slot */
    size_t vlen; /* floats of vector room in a slot (>= dim) */
    float *vecs;
    uint64_t *labels;
    size_t n;    /* slots in use (live + deleted) */
    size_t cap;  /* slots allocated */
    size_t live; /* items a search can return */
    qg_vmap map;

    /* HNSW only. */
    int M, M0;            /* links per node on upper levels / on level 0 */
    double mult;          /* level multiplier 1/ln(M) */
    uint64_t rng;         /* level generator state */
    uint8_t *deleted;     /* per slot */
    uint8_t *levels;      /* per slot: top level of the node */
    uint64_t *clean;      /* per slot: clean_epoch << 32 | bit l set when the level-l
                             links are a set the pruning heuristic keeps whole
                             (hnsw.c link_back); bits of an older epoch are void.
                             Never saved: a loaded graph starts with none set */
    uint32_t clean_epoch; /* bumped when a slot's vector changes */
    bool full_prune;      /* never trust the marks (tests compare both ways) */
    uint32_t **upper;     /* per slot: NULL or levels * (1 + M) (count then slots) */
    uint32_t entry;       /* QG_VIX_NONE when the graph is empty */
    int maxlevel;
    uint32_t *freeslots; /* deleted slots, reused by add */
    size_t nfree, freecap;
    pthread_mutex_t pool_mu;
    qg_vctx *pool;
};

/* Link list of slot at level (count first). */
static inline uint32_t *qg_vix_links(const struct qg_vindex *ix, uint32_t slot, int level)
{
    if (level == 0) return (uint32_t *)(ix->vecs + (size_t)slot * ix->stride);
    return ix->upper[slot] + (size_t)(level - 1) * (size_t)(1 + ix->M);
}

static inline const float *qg_vix_vec(const struct qg_vindex *ix, uint32_t slot)
{
    return ix->vecs + (size_t)slot * ix->stride + ix->voff;
}

static inline float *qg_vix_vec_mut(struct qg_vindex *ix, uint32_t slot)
{
    return ix->vecs + (size_t)slot * ix->stride + ix->voff;
}

float qg_vix_public_dist(const struct qg_vindex *ix, float internal);
qg_status qg_vix_grow(struct qg_vindex *ix, size_t want);

/* hnsw.c */
qg_status qg_hnsw_init(struct qg_vindex *ix);
void qg_hnsw_free(struct qg_vindex *ix);
/* Puts the (already stored) vector of slot into the graph; fresh: a new
 * slot (its level is drawn), else a reused or replaced one (links rebuilt). */
qg_status qg_hnsw_insert(struct qg_vindex *ix, uint32_t slot, bool fresh);
/* Searches with the query already normalised for cosine. */
qg_status qg_hnsw_search(const struct qg_vindex *ix, const float *q, size_t k, size_t ef,
                         qg_vfilter_fn filter, void *ud, qg_vhit *out, size_t *n);
size_t qg_hnsw_memory(const struct qg_vindex *ix);
/* Allocates the per-slot graph arrays for cap slots (after a grow). */
qg_status qg_hnsw_grow(struct qg_vindex *ix, size_t oldcap, size_t newcap);

/* vindex.c: exact top-k over the slots, skipping deleted ones (HNSW) and
 * those the filter refuses; results best first with public distances. */
qg_status qg_vix_exact(const struct qg_vindex *ix, const float *q, size_t k, qg_vfilter_fn filter,
                       void *ud, qg_vhit *out, size_t *n);

#endif
