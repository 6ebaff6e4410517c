/*
 * vindex.c - the vector index's kernels, text codec, label map, flat (exact)
 * index, snapshots and the public entry points; the HNSW graph is hnsw.c.
 *
 * The kernels themselves live in hnsw_int.h (inline, shared with the graph).
 *
 * The flat index keeps live vectors dense in one slab (a removal moves the
 * last slot into the hole), so an exact search is one streaming pass over
 * memory with a bounded max-heap whose top is compared before any push.
 */
#include "memory/hnsw_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- kernels ---- */

float qg_vec_dot(const float *restrict a, const float *restrict b, size_t dim)
{
    return vix_dot(a, b, dim);
}

float qg_vec_l2sq(const float *restrict a, const float *restrict b, size_t dim)
{
    return vix_l2(a, b, dim);
}

void qg_vec_normalize(float *v, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++) s += (double)v[i] * v[i];
    if (s <= 0) return;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < dim; i++) v[i] *= inv;
}

float qg_vec_distance(qg_vmetric m, const float *a, const float *b, size_t dim)
{
    switch (m) {
    case QG_VMETRIC_COSINE: {
        double na = 0, nb = 0;
        for (size_t i = 0; i < dim; i++) {
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        if (na <= 0 || nb <= 0) return 1.0f;
        return 1.0f - (float)(vix_dot(a, b, dim) / (sqrt(na) * sqrt(nb)));
    }
    case QG_VMETRIC_DOT:
        return -vix_dot(a, b, dim);
    case QG_VMETRIC_L2:
        return vix_l2(a, b, dim);
    }
    return NAN;
}

const char *qg_vmetric_name(qg_vmetric m)
{
    switch (m) {
    case QG_VMETRIC_COSINE:
        return "cosine";
    case QG_VMETRIC_DOT:
        return "dot";
    case QG_VMETRIC_L2:
        return "l2";
    }
    return "?";
}

int qg_vmetric_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "cosine") == 0) return QG_VMETRIC_COSINE;
    if (strcmp(s, "dot") == 0) return QG_VMETRIC_DOT;
    if (strcmp(s, "l2") == 0) return QG_VMETRIC_L2;
    return -1;
}

float qg_vix_public_dist(const struct qg_vindex *ix, float d)
{
    return ix->p.metric == QG_VMETRIC_COSINE ? 1.0f + d : d;
}

/* ---- text codec: base64 (RFC 4648, padded) of float32 little-endian ---- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_le32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    p[0] = (unsigned char)u;
    p[1] = (unsigned char)(u >> 8);
    p[2] = (unsigned char)(u >> 16);
    p[3] = (unsigned char)(u >> 24);
}

static float get_le32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

qg_status qg_vec_encode(const float *v, size_t dim, qg_buf *out)
{
    char chunk[4 * 64];
    size_t nbytes = dim * 4, i = 0, ci = 0;
    unsigned char b[4 * 3 * 64 + 8];
    while (i < nbytes) {
        /* 192 bytes (48 floats) in, 256 characters out per round. */
        size_t take = nbytes - i < 192 ? nbytes - i : 192;
        for (size_t k = 0; k < take; k += 4) put_le32(b + k, v[(i + k) / 4]);
        ci = 0;
        for (size_t k = 0; k < take; k += 3) {
            uint32_t t = (uint32_t)b[k] << 16;
            size_t left = take - k;
            if (left > 1) t |= (uint32_t)b[k + 1] << 8;
            if (left > 2) t |= b[k + 2];
            chunk[ci++] = b64chars[(t >> 18) & 63];
            chunk[ci++] = b64chars[(t >> 12) & 63];
            chunk[ci++] = left > 1 ? b64chars[(t >> 6) & 63] : '=';
            chunk[ci++] = left > 2 ? b64chars[t & 63] : '=';
        }
        qg_status rc = qg_buf_append(out, chunk, ci);
        if (rc) return rc;
        i += take;
    }
    return QG_OK;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

qg_status qg_vec_decode(const char *text, float *v, size_t dim, qg_error *err)
{
    if (!text) return qg_error_set(err, QG_EINVAL, "vector: missing");
    size_t len = strlen(text), nbytes = dim * 4;
    size_t want = (nbytes + 2) / 3 * 4, pad = (3 - nbytes % 3) % 3;
    if (len % 4 != 0)
        return qg_error_set(err, QG_EINVAL,
                            "vector: not base64 (length %zu is not a multiple of 4)", len);
    if (len != want) {
        size_t p =
            len >= 1 && text[len - 1] == '=' ? (len >= 2 && text[len - 2] == '=' ? 2 : 1) : 0;
        return qg_error_set(err, QG_EINVAL,
                            "vector: holds %zu bytes, expected %zu (%zu float32 values)",
                            len / 4 * 3 - p, nbytes, dim);
    }
    unsigned char fb[4];
    size_t fi = 0, vi = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        size_t npad = last ? pad : 0;
        uint32_t t = 0;
        for (size_t k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)text[i + k];
            int val = k >= 4 - npad ? (c == '=' ? 0 : -1) : b64val(c);
            if (val < 0)
                return qg_error_set(err, QG_EINVAL,
                                    "vector: not base64 (character 0x%02x at offset %zu)", c,
                                    i + k);
            t = t << 6 | (uint32_t)val;
        }
        /* Bits past the last byte must be zero: one text per vector. */
        if (npad && (t & (npad == 2 ? 0xffffu : 0xffu)))
            return qg_error_set(err, QG_EINVAL, "vector: not base64 (stray bits before '=')");
        unsigned char b[3] = {(unsigned char)(t >> 16), (unsigned char)(t >> 8), (unsigned char)t};
        for (size_t k = 0; k < 3 - npad; k++) {
            fb[fi++] = b[k];
            if (fi == 4) {
                float f = get_le32(fb);
                if (!isfinite(f))
                    return qg_error_set(err, QG_EINVAL, "vector: value %zu is not finite", vi);
                v[vi++] = f;
                fi = 0;
            }
        }
    }
    return QG_OK;
}

/* ---- label map ---- */

static inline size_t map_hash(uint64_t k)
{
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    k ^= k >> 31;
    return (size_t)k;
}

static qg_status map_init(qg_vmap *m, size_t cap)
{
    m->keys = malloc(cap * sizeof *m->keys);
    m->vals = malloc(cap * sizeof *m->vals);
    if (!m->keys || !m->vals) {
        free(m->keys);
        free(m->vals);
        m->keys = NULL;
        m->vals = NULL;
        return QG_ENOMEM;
    }
    memset(m->vals, 0xff, cap * sizeof *m->vals);
    m->cap = cap;
    m->n = 0;
    return QG_OK;
}

static void map_free(qg_vmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint32_t map_get(const qg_vmap *m, uint64_t key)
{
    size_t mask = m->cap - 1;
    for (size_t i = map_hash(key) & mask;; i = (i + 1) & mask) {
        if (m->vals[i] == QG_VIX_NONE) return QG_VIX_NONE;
        if (m->keys[i] == key) return m->vals[i];
    }
}

static void map_put_nogrow(qg_vmap *m, uint64_t key, uint32_t val)
{
    size_t mask = m->cap - 1;
    for (size_t i = map_hash(key) & mask;; i = (i + 1) & mask) {
        if (m->vals[i] == QG_VIX_NONE) {
            m->keys[i] = key;
            m->vals[i] = val;
            m->n++;
            return;
        }
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return;
        }
    }
}

static qg_status map_put(qg_vmap *m, uint64_t key, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        qg_vmap nm;
        if (map_init(&nm, m->cap * 2)) return QG_ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->vals[i] != QG_VIX_NONE) map_put_nogrow(&nm, m->keys[i], m->vals[i]);
        map_free(m);
        *m = nm;
    }
    map_put_nogrow(m, key, val);
    return QG_OK;
}

/* Backward-shift deletion keeps every probe chain unbroken. */
static void map_del(qg_vmap *m, uint64_t key)
{
    size_t mask = m->cap - 1, i = map_hash(key) & mask;
    for (;; i = (i + 1) & mask) {
        if (m->vals[i] == QG_VIX_NONE) return;
        if (m->keys[i] == key) break;
    }
    size_t hole = i;
    for (size_t j = (hole + 1) & mask; m->vals[j] != QG_VIX_NONE; j = (j + 1) & mask) {
        size_t home = map_hash(m->keys[j]) & mask;
        /* j may move to the hole when its home is not in (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        m->keys[hole] = m->keys[j];
        m->vals[hole] = m->vals[j];
        hole = j;
    }
    m->vals[hole] = QG_VIX_NONE;
    m->n--;
}

/* ---- slab ---- */

static void *realloc_array(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    return realloc(p, n > 0 && size > 0 ? n * size : 1);
}

qg_status qg_vix_grow(struct qg_vindex *ix, size_t want)
{
    if (want <= ix->cap) return QG_OK;
    if (want > QG_VIX_MAX_ITEMS) return QG_ERANGE;
    size_t ncap = ix->cap ? ix->cap : 64;
    while (ncap < want) ncap = ncap < 1024 * 1024 ? ncap * 2 : ncap + ncap / 2;
    if (ncap > QG_VIX_MAX_ITEMS) ncap = QG_VIX_MAX_ITEMS;
    size_t bytes = ncap * ix->stride * sizeof(float);
    if (bytes / sizeof(float) / ix->stride != ncap) return QG_ENOMEM;
    float *nv = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!nv) return QG_ENOMEM;
    if (ix->n) memcpy(nv, ix->vecs, ix->n * ix->stride * sizeof(float));
    uint64_t *nl = realloc_array(ix->labels, ncap, sizeof *nl);
    if (!nl) {
        free(nv);
        return QG_ENOMEM;
    }
    ix->labels = nl;
    if (ix->p.kind == QG_VINDEX_HNSW && qg_hnsw_grow(ix, ix->cap, ncap)) {
        free(nv);
        return QG_ENOMEM;
    }
    free(ix->vecs);
    ix->vecs = nv;
    ix->cap = ncap;
    return QG_OK;
}

/* ---- public API ---- */

static qg_status check_params(const qg_vindex_params *p, qg_error *err)
{
    if (p->kind != QG_VINDEX_FLAT && p->kind != QG_VINDEX_HNSW)
        return qg_error_set(err, QG_EINVAL, "kind: %d is not flat or hnsw", (int)p->kind);
    if (p->metric != QG_VMETRIC_COSINE && p->metric != QG_VMETRIC_DOT && p->metric != QG_VMETRIC_L2)
        return qg_error_set(err, QG_EINVAL, "metric: %d is not cosine, dot or l2", (int)p->metric);
    if (p->dim < 1 || p->dim > 4096)
        return qg_error_set(err, QG_EINVAL, "dim: %zu is outside 1..4096", p->dim);
    if (p->M < 0 || p->M == 1 || p->M > QG_VIX_MAX_M)
        return qg_error_set(err, QG_EINVAL, "M: %d is outside 2..%d", p->M, QG_VIX_MAX_M);
    if (p->ef_construction < 0 || p->ef_construction > 100000)
        return qg_error_set(err, QG_EINVAL, "ef_construction: %d is outside 1..100000",
                            p->ef_construction);
    if (p->ef_search < 0 || p->ef_search > 100000)
        return qg_error_set(err, QG_EINVAL, "ef_search: %d is outside 1..100000", p->ef_search);
    return QG_OK;
}

qg_vindex_params qg_vindex_resolve_params(const qg_vindex_params *p)
{
    qg_vindex_params r = *p;
    if (!r.M) r.M = 16;
    if (!r.ef_construction) r.ef_construction = 200;
    if (!r.ef_search) r.ef_search = 64;
    return r;
}

qg_status qg_vindex_new(const qg_vindex_params *p, qg_vindex **out, qg_error *err)
{
    *out = NULL;
    qg_status rc = check_params(p, err);
    if (rc) return rc;
    struct qg_vindex *ix = calloc(1, sizeof *ix);
    if (!ix) return qg_error_set(err, QG_ENOMEM, "vector index: out of memory");
    ix->p = qg_vindex_resolve_params(p);
    ix->dim = p->dim;
    if (ix->p.kind == QG_VINDEX_HNSW) {
        ix->voff = ((size_t)(1 + 2 * ix->p.M) + 15) / 16 * 16;
        ix->vlen = (p->dim + 15) / 16 * 16;
    } else {
        ix->voff = 0;
        ix->vlen = p->dim;
    }
    ix->stride = ix->voff + ix->vlen;
    ix->dist = p->metric == QG_VMETRIC_L2 ? vix_l2 : vix_negdot;
    ix->entry = QG_VIX_NONE;
    ix->maxlevel = -1;
    if (map_init(&ix->map, 64)) {
        free(ix);
        return qg_error_set(err, QG_ENOMEM, "vector index: out of memory");
    }
    if (ix->p.kind == QG_VINDEX_HNSW && (rc = qg_hnsw_init(ix))) {
        map_free(&ix->map);
        free(ix);
        return qg_error_set(err, rc, "vector index: cannot set up the graph");
    }
    *out = ix;
    return QG_OK;
}

void qg_vindex_free(qg_vindex *ix)
{
    if (!ix) return;
    if (ix->p.kind == QG_VINDEX_HNSW) qg_hnsw_free(ix);
    map_free(&ix->map);
    free(ix->vecs);
    free(ix->labels);
    free(ix);
}

const qg_vindex_params *qg_vindex_get_params(const qg_vindex *ix)
{
    return &ix->p;
}

qg_status qg_vindex_add(qg_vindex *ix, uint64_t label, const float *v, qg_error *err)
{
    for (size_t i = 0; i < ix->dim; i++)
        if (!isfinite(v[i]))
            return qg_error_set(err, QG_EINVAL, "vector: value %zu is not finite", i);
    uint32_t slot = map_get(&ix->map, label);
    bool fresh = false, replace = slot != QG_VIX_NONE;
    qg_status rc = QG_OK;
    if (!replace) {
        if (ix->p.kind == QG_VINDEX_HNSW && ix->nfree) {
            slot = ix->freeslots[--ix->nfree];
        } else {
            if ((rc = qg_vix_grow(ix, ix->n + 1)))
                return qg_error_set(err, rc, "vector index: cannot grow past %zu items", ix->n);
            slot = (uint32_t)ix->n++;
            fresh = true;
        }
        if ((rc = map_put(&ix->map, label, slot))) {
            if (fresh)
                ix->n--;
            else
                ix->nfree++;
            return qg_error_set(err, rc, "vector index: out of memory");
        }
        ix->labels[slot] = label;
        ix->live++;
    }
    float *dst = qg_vix_vec_mut(ix, slot);
    memcpy(dst, v, ix->dim * sizeof(float));
    if (ix->vlen > ix->dim) memset(dst + ix->dim, 0, (ix->vlen - ix->dim) * sizeof(float));
    if (ix->p.metric == QG_VMETRIC_COSINE) qg_vec_normalize(dst, ix->dim);
    if (ix->p.kind == QG_VINDEX_HNSW) {
        ix->deleted[slot] = 0;
        if ((rc = qg_hnsw_insert(ix, slot, fresh)))
            return qg_error_set(err, rc, "vector index: out of memory while linking");
    }
    return QG_OK;
}

qg_status qg_vindex_remove(qg_vindex *ix, uint64_t label)
{
    uint32_t slot = map_get(&ix->map, label);
    if (slot == QG_VIX_NONE) return QG_ENOTFOUND;
    map_del(&ix->map, label);
    ix->live--;
    if (ix->p.kind == QG_VINDEX_HNSW) {
        if (ix->nfree == ix->freecap) {
            size_t nc = ix->freecap ? ix->freecap * 2 : 64;
            uint32_t *nf = realloc_array(ix->freeslots, nc, sizeof *nf);
            if (!nf) {
                /* Without room to remember the slot it is simply never reused. */
                ix->deleted[slot] = 1;
                return QG_OK;
            }
            ix->freeslots = nf;
            ix->freecap = nc;
        }
        ix->deleted[slot] = 1;
        ix->freeslots[ix->nfree++] = slot;
        return QG_OK;
    }
    size_t last = ix->n - 1;
    if (slot != last) {
        memcpy(ix->vecs + (size_t)slot * ix->stride, ix->vecs + last * ix->stride,
               ix->stride * sizeof(float));
        ix->labels[slot] = ix->labels[last];
        map_put_nogrow(&ix->map, ix->labels[slot], slot);
    }
    ix->n--;
    return QG_OK;
}

bool qg_vindex_contains(const qg_vindex *ix, uint64_t label)
{
    return map_get(&ix->map, label) != QG_VIX_NONE;
}

size_t qg_vindex_count(const qg_vindex *ix)
{
    return ix->live;
}

size_t qg_vindex_memory(const qg_vindex *ix)
{
    size_t b = sizeof *ix + ix->cap * (ix->stride * sizeof(float) + sizeof(uint64_t)) +
               ix->map.cap * (sizeof(uint64_t) + sizeof(uint32_t));
    if (ix->p.kind == QG_VINDEX_HNSW) b += qg_hnsw_memory(ix);
    return b;
}

/* ---- exact search ---- */

/* Bounded max-heap on d: h[0] is the worst kept hit. */
static void heap_sift_down(qg_vcand *h, size_t n, size_t i)
{
    qg_vcand x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1].d > h[c].d) c++;
        if (h[c].d <= x.d) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void heap_push(qg_vcand *h, size_t *n, qg_vcand x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].d >= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static int cmp_cand(const void *a, const void *b)
{
    const qg_vcand *x = a, *y = b;
    if (x->d < y->d) return -1;
    if (x->d > y->d) return 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The scan loop, one copy per kernel so the distance is inlined. */
#define QG_EXACT_SCAN(KERNEL)                                                                      \
    for (size_t i = 0; i < nslots; i++) {                                                          \
        if (del && del[i]) continue;                                                               \
        if (filter && !filter(ud, ix->labels[i])) continue;                                        \
        float d = KERNEL(q, ix->vecs + i * stride + voff, dim);                                    \
        if (cnt < k) {                                                                             \
            heap_push(h, &cnt, (qg_vcand){d, (uint32_t)i});                                        \
        } else if (d < h[0].d) {                                                                   \
            h[0] = (qg_vcand){d, (uint32_t)i};                                                     \
            heap_sift_down(h, cnt, 0);                                                             \
        }                                                                                          \
    }

static inline __attribute__((always_inline)) float
finish16(int l2, const float *restrict q, const float *restrict v, size_t i, size_t dim, float *acc)
{
    float s = 0;
    for (; i < dim; i++) s = l2 ? QG_MADD(q[i] - v[i], q[i] - v[i], s) : QG_MADD(q[i], v[i], s);
    for (size_t j = 0; j < 8; j++) acc[j] += acc[j + 8];
    for (size_t j = 0; j < 4; j++) acc[j] += acc[j + 4];
    s += (acc[0] + acc[2]) + (acc[1] + acc[3]);
    return l2 ? s : -s;
}

/* Four distances at once: each query load serves four vectors and the four
 * accumulator chains run side by side, so the scan runs at memory speed. */
static inline __attribute__((always_inline)) void dist4(int l2, const float *restrict q,
                                                        const float *restrict v, size_t stride,
                                                        size_t dim, float out[4])
{
    float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
    const float *v0 = v, *v1 = v + stride, *v2 = v + 2 * stride, *v3 = v + 3 * stride;
    size_t i = 0;
    /* One inner loop with four independent statements vectorises; four
     * consecutive inner loops do not (GCC 12). */
    if (l2)
        for (; i + 16 <= dim; i += 16)
            for (size_t j = 0; j < 16; j++) {
                float x = q[i + j], t0 = x - v0[i + j], t1 = x - v1[i + j], t2 = x - v2[i + j],
                      t3 = x - v3[i + j];
                a0[j] = QG_MADD(t0, t0, a0[j]);
                a1[j] = QG_MADD(t1, t1, a1[j]);
                a2[j] = QG_MADD(t2, t2, a2[j]);
                a3[j] = QG_MADD(t3, t3, a3[j]);
            }
    else
        for (; i + 16 <= dim; i += 16)
            for (size_t j = 0; j < 16; j++) {
                float x = q[i + j];
                a0[j] = QG_MADD(x, v0[i + j], a0[j]);
                a1[j] = QG_MADD(x, v1[i + j], a1[j]);
                a2[j] = QG_MADD(x, v2[i + j], a2[j]);
                a3[j] = QG_MADD(x, v3[i + j], a3[j]);
            }
    out[0] = finish16(l2, q, v0, i, dim, a0);
    out[1] = finish16(l2, q, v1, i, dim, a1);
    out[2] = finish16(l2, q, v2, i, dim, a2);
    out[3] = finish16(l2, q, v3, i, dim, a3);
}

/* The unfiltered scan of a dense slab: blocks of four, the heap touched only
 * when a distance beats the current k-th. */
static inline __attribute__((always_inline)) size_t
scan_dense(int l2, const struct qg_vindex *ix, const float *q, size_t k, qg_vcand *h)
{
    size_t cnt = 0, nslots = ix->n, stride = ix->stride, dim = ix->dim, i = 0;
    float d[4];
    for (; i + 4 <= nslots; i += 4) {
        dist4(l2, q, ix->vecs + i * stride, stride, dim, d);
        for (size_t r = 0; r < 4; r++) {
            if (cnt < k) {
                heap_push(h, &cnt, (qg_vcand){d[r], (uint32_t)(i + r)});
            } else if (d[r] < h[0].d) {
                h[0] = (qg_vcand){d[r], (uint32_t)(i + r)};
                heap_sift_down(h, cnt, 0);
            }
        }
    }
    for (; i < nslots; i++) {
        float dd =
            l2 ? vix_l2(q, ix->vecs + i * stride, dim) : vix_negdot(q, ix->vecs + i * stride, dim);
        if (cnt < k) {
            heap_push(h, &cnt, (qg_vcand){dd, (uint32_t)i});
        } else if (dd < h[0].d) {
            h[0] = (qg_vcand){dd, (uint32_t)i};
            heap_sift_down(h, cnt, 0);
        }
    }
    return cnt;
}

qg_status qg_vix_exact(const struct qg_vindex *ix, const float *q, size_t k, qg_vfilter_fn filter,
                       void *ud, qg_vhit *out, size_t *n)
{
    size_t cnt = 0, nslots = ix->n, stride = ix->stride, dim = ix->dim, voff = ix->voff;
    const uint8_t *del = ix->p.kind == QG_VINDEX_HNSW ? ix->deleted : NULL;
    if (k > ix->live) k = ix->live;
    qg_vcand stackh[64];
    qg_vcand *h = k <= 64 ? stackh : malloc(k * sizeof *h);
    *n = 0;
    if (!h) return QG_ENOMEM;
    if (!filter && !del) {
        cnt =
            ix->p.metric == QG_VMETRIC_L2 ? scan_dense(1, ix, q, k, h) : scan_dense(0, ix, q, k, h);
    } else if (ix->p.metric == QG_VMETRIC_L2) {
        QG_EXACT_SCAN(vix_l2)
    } else {
        QG_EXACT_SCAN(vix_negdot)
    }
    qsort(h, cnt, sizeof *h, cmp_cand);
    for (size_t i = 0; i < cnt; i++) {
        out[i].label = ix->labels[h[i].id];
        out[i].dist = qg_vix_public_dist(ix, h[i].d);
    }
    *n = cnt;
    if (h != stackh) free(h);
    return QG_OK;
}

qg_status qg_vindex_search(const qg_vindex *ix, const float *q, size_t k, int ef,
                           qg_vfilter_fn filter, void *ud, qg_vhit *out, size_t *n, qg_error *err)
{
    *n = 0;
    if (k == 0 || ix->live == 0) return QG_OK;
    if (k > 100000) return qg_error_set(err, QG_EINVAL, "k: %zu is above 100000", k);
    /* Cosine compares unit vectors: the query is normalised in a copy. */
    float qbuf[512];
    const float *qn = q;
    float *qcopy = NULL;
    if (ix->p.metric == QG_VMETRIC_COSINE) {
        qcopy = ix->dim <= 512 ? qbuf : malloc(ix->dim * sizeof(float));
        if (!qcopy) return qg_error_set(err, QG_ENOMEM, "vector search: out of memory");
        memcpy(qcopy, q, ix->dim * sizeof(float));
        qg_vec_normalize(qcopy, ix->dim);
        qn = qcopy;
    }
    qg_status rc;
    if (ix->p.kind == QG_VINDEX_FLAT) {
        rc = qg_vix_exact(ix, qn, k, filter, ud, out, n);
    } else {
        size_t e = ef > 0 ? (size_t)ef : (size_t)ix->p.ef_search;
        if (e < k) e = k;
        rc = qg_hnsw_search(ix, qn, k, e, filter, ud, out, n);
    }
    if (rc) qg_error_set(err, rc, "vector search: out of memory");
    if (qcopy != qbuf) free(qcopy);
    return rc;
}

/* ---- snapshots ----
 * Layout (little-endian, this host's float32):
 *   "QGVX", u32 version, u32 kind, u32 metric, u32 dim, i32 M, i32 ef_construction,
 *   i32 ef_search, u64 seed, u64 rng, u64 slots, u64 live, u32 entry, i32 maxlevel,
 *   labels (slots x u64), deleted (slots x u8), vectors (slots x dim x f32),
 *   HNSW only: levels (slots x u8), level-0 links (slots x (1 + 2M) x u32: count, slots),
 *   upper links (for each slot, level x (1 + M) x u32),
 *   u64 checksum of every section before it.
 * The checksum is taken piece by piece (header, labels, flags, each vector,
 * levels, level-0 links, each node's upper links); the reader reads in the
 * same pieces. */

#define QG_VIX_MAGIC   "QGVX"
#define QG_VIX_VERSION 1u

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vindex snapshots assume a little-endian host"
#endif

typedef struct snap_hdr {
    char magic[4];
    uint32_t version, kind, metric, dim;
    int32_t M, efc, efs;
    uint64_t seed, rng, slots, live;
    uint32_t entry;
    int32_t maxlevel;
} snap_hdr;

/* Four independent 64-bit lanes over 8-byte words, then the tail bytes. */
static uint64_t sum_chunk(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t l[4] = {h, h ^ 0x9e3779b97f4a7c15ULL, h + 0x632be59bd9b4e019ULL, ~h};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int j = 0; j < 4; j++) {
            uint64_t w;
            memcpy(&w, b + i + 8 * (size_t)j, 8);
            l[j] = (l[j] ^ w) * 0x100000001b3ULL;
            l[j] ^= l[j] >> 29;
        }
    for (; i < n; i++) l[0] = (l[0] ^ b[i]) * 0x100000001b3ULL;
    uint64_t r = (uint64_t)n;
    for (int j = 0; j < 4; j++) r = (r ^ l[j]) * 0xbf58476d1ce4e5b9ULL, r ^= r >> 31;
    return r;
}

typedef struct snap_io {
    FILE *f;
    uint64_t sum;
    bool ok;
} snap_io;

static void put(snap_io *w, const void *p, size_t n)
{
    if (!w->ok || !n) return;
    w->sum = sum_chunk(w->sum, p, n);
    if (fwrite(p, 1, n, w->f) != n) w->ok = false;
}

static bool get(snap_io *r, void *p, size_t n)
{
    if (!n) return true;
    if (fread(p, 1, n, r->f) != n) return false;
    r->sum = sum_chunk(r->sum, p, n);
    return true;
}

static snap_hdr make_hdr(const struct qg_vindex *ix)
{
    snap_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, QG_VIX_MAGIC, 4);
    h.version = QG_VIX_VERSION;
    h.kind = (uint32_t)ix->p.kind;
    h.metric = (uint32_t)ix->p.metric;
    h.dim = (uint32_t)ix->dim;
    h.M = ix->p.M;
    h.efc = ix->p.ef_construction;
    h.efs = ix->p.ef_search;
    h.seed = ix->p.seed;
    h.rng = ix->rng;
    h.slots = ix->n;
    h.live = ix->live;
    h.entry = ix->entry;
    h.maxlevel = ix->maxlevel;
    return h;
}

/* "<path>.tmp" into tmp, or an error naming path when it does not fit. */
static qg_status temp_path(const char *path, char *tmp, size_t cap, qg_error *err)
{
    if ((size_t)snprintf(tmp, cap, "%s.tmp", path) >= cap)
        return qg_error_set(err, QG_EINVAL, "snapshot path too long: %s", path);
    return QG_OK;
}

qg_status qg_vindex_write_temp(const qg_vindex *ix, const char *path, qg_error *err)
{
    char tmp[4096];
    if (temp_path(path, tmp, sizeof tmp, err)) return QG_EINVAL;
    snap_io w = {.f = fopen(tmp, "wb"), .ok = true};
    if (!w.f) return qg_error_set(err, QG_EIO, "%s: %s", tmp, strerror(errno));
    snap_hdr h = make_hdr(ix);
    put(&w, &h, sizeof h);
    put(&w, ix->labels, ix->n * sizeof *ix->labels);
    uint8_t *flags = ix->p.kind == QG_VINDEX_HNSW ? ix->deleted : calloc(ix->n ? ix->n : 1, 1);
    if (!flags) w.ok = false;
    put(&w, flags, ix->n);
    if (flags != ix->deleted) free(flags);
    /* Vectors one slot at a time (without the slot padding), as load reads them. */
    for (size_t i = 0; i < ix->n; i++)
        put(&w, qg_vix_vec(ix, (uint32_t)i), ix->dim * sizeof(float));
    if (ix->p.kind == QG_VINDEX_HNSW) {
        put(&w, ix->levels, ix->n);
        for (size_t i = 0; i < ix->n; i++)
            put(&w, qg_vix_links(ix, (uint32_t)i, 0), (size_t)(1 + ix->M0) * sizeof(uint32_t));
        for (size_t i = 0; i < ix->n; i++)
            if (ix->levels[i])
                put(&w, ix->upper[i], (size_t)ix->levels[i] * (size_t)(1 + ix->M) * 4);
    }
    uint64_t sum = w.sum;
    put(&w, &sum, sizeof sum);
    bool ok = w.ok && fflush(w.f) == 0;
    int e = errno;
    ok = fclose(w.f) == 0 && ok;
    if (!ok) {
        unlink(tmp);
        return qg_error_set(err, QG_EIO, "%s: write failed: %s", tmp, strerror(e));
    }
    return QG_OK;
}

qg_status qg_vindex_publish_temp(const char *path, qg_error *err)
{
    char tmp[4096];
    if (temp_path(path, tmp, sizeof tmp, err)) return QG_EINVAL;
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        return qg_error_set(err, QG_EIO, "%s: write failed: %s", path, strerror(e));
    }
    return QG_OK;
}

qg_status qg_vindex_save(const qg_vindex *ix, const char *path, qg_error *err)
{
    qg_status rc = qg_vindex_write_temp(ix, path, err);
    return rc ? rc : qg_vindex_publish_temp(path, err);
}

/* Checks the graph read from a snapshot: every level, count and link is in
 * range, so a search can never index outside the arrays. */
static qg_status check_graph(const struct qg_vindex *ix, qg_error *err)
{
    if (ix->n == 0) {
        if (ix->entry != QG_VIX_NONE || ix->maxlevel != -1)
            return qg_error_set(err, QG_EINVAL, "entry point set in an empty graph");
        return QG_OK;
    }
    if (ix->entry >= ix->n)
        return qg_error_set(err, QG_EINVAL, "entry point %u outside %zu slots", ix->entry, ix->n);
    if (ix->maxlevel != ix->levels[ix->entry])
        return qg_error_set(err, QG_EINVAL, "top level %d is not the entry point's level %d",
                            ix->maxlevel, ix->levels[ix->entry]);
    for (size_t i = 0; i < ix->n; i++) {
        for (int l = 0; l <= ix->levels[i]; l++) {
            const uint32_t *lk = qg_vix_links(ix, (uint32_t)i, l);
            uint32_t max = (uint32_t)(l ? ix->M : ix->M0);
            if (lk[0] > max)
                return qg_error_set(err, QG_EINVAL, "slot %zu level %d: %u links, at most %u", i, l,
                                    lk[0], max);
            for (uint32_t j = 1; j <= lk[0]; j++)
                if (lk[j] >= ix->n || ix->levels[lk[j]] < l)
                    return qg_error_set(err, QG_EINVAL,
                                        "slot %zu level %d: link %u to slot %u is invalid", i, l, j,
                                        lk[j]);
        }
    }
    return QG_OK;
}

static qg_status load_body(FILE *f, struct qg_vindex **out, qg_error *err)
{
    snap_io r = {.f = f};
    snap_hdr h;
    struct qg_vindex *ix = NULL;
    qg_status rc = QG_OK;
    if (!get(&r, &h, sizeof h)) return qg_error_set(err, QG_EINVAL, "truncated header");
    if (memcmp(h.magic, QG_VIX_MAGIC, 4) != 0)
        return qg_error_set(err, QG_EINVAL, "not a vector index snapshot (bad magic)");
    if (h.version != QG_VIX_VERSION)
        return qg_error_set(err, QG_EINVAL, "format version %u, this build reads %u", h.version,
                            QG_VIX_VERSION);
    qg_vindex_params p = {.kind = (qg_vindex_kind)h.kind,
                          .metric = (qg_vmetric)h.metric,
                          .dim = h.dim,
                          .M = h.M,
                          .ef_construction = h.efc,
                          .ef_search = h.efs,
                          .seed = h.seed};
    if (h.kind > QG_VINDEX_HNSW || h.metric > QG_VMETRIC_L2 || h.M < 2 || h.efc < 1 || h.efs < 1)
        return qg_error_set(err, QG_EINVAL, "bad parameters (kind %u, metric %u, M %d, ef %d/%d)",
                            h.kind, h.metric, h.M, h.efc, h.efs);
    if ((rc = qg_vindex_new(&p, &ix, err))) return rc;
    if (h.slots > QG_VIX_MAX_ITEMS || h.live > h.slots) {
        rc = qg_error_set(err, QG_EINVAL, "bad counts (%llu slots, %llu live)",
                          (unsigned long long)h.slots, (unsigned long long)h.live);
        goto out;
    }
    size_t n = (size_t)h.slots;
    /* The file must hold at least the fixed-size sections before any
     * allocation is sized by the header's count. */
    struct stat st;
    uint64_t per = 8 + 1 + (uint64_t)ix->dim * 4;
    if (ix->p.kind == QG_VINDEX_HNSW) per += 1 + (uint64_t)(1 + ix->M0) * 4;
    if (fstat(fileno(f), &st) != 0 || (uint64_t)st.st_size < sizeof h + 8 ||
        ((uint64_t)st.st_size - sizeof h - 8) / per < h.slots) {
        rc = qg_error_set(err, QG_EINVAL, "truncated (%llu slots do not fit in the file)",
                          (unsigned long long)h.slots);
        goto out;
    }
    if (n && (rc = qg_vix_grow(ix, n))) {
        rc = qg_error_set(err, rc, "no memory for %zu slots", n);
        goto out;
    }
    uint8_t *del = ix->p.kind == QG_VINDEX_HNSW ? ix->deleted : malloc(n ? n : 1);
    bool ok = del && get(&r, ix->labels, n * sizeof *ix->labels) && get(&r, del, n);
    size_t live = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (del[i] > 1) {
            rc = qg_error_set(err, QG_EINVAL, "slot %zu: deleted flag %u", i, del[i]);
            break;
        }
        if (del[i] && ix->p.kind == QG_VINDEX_FLAT) {
            rc = qg_error_set(err, QG_EINVAL, "slot %zu: deleted in a flat index", i);
            break;
        }
        if (del[i]) continue;
        if (map_get(&ix->map, ix->labels[i]) != QG_VIX_NONE) {
            rc = qg_error_set(err, QG_EINVAL, "label %llu appears twice",
                              (unsigned long long)ix->labels[i]);
            break;
        }
        if (map_put(&ix->map, ix->labels[i], (uint32_t)i)) {
            rc = qg_error_set(err, QG_ENOMEM, "no memory for the label map");
            break;
        }
        live++;
    }
    if (del != ix->deleted) free(del);
    if (!ok) rc = qg_error_set(err, QG_EINVAL, "truncated in labels");
    if (rc) goto out;
    if (live != h.live) {
        rc = qg_error_set(err, QG_EINVAL, "%zu live items, header says %llu", live,
                          (unsigned long long)h.live);
        goto out;
    }
    ix->n = n;
    ix->live = live;
    for (size_t i = 0; i < n; i++) {
        float *v = qg_vix_vec_mut(ix, (uint32_t)i);
        if (!get(&r, v, ix->dim * sizeof(float))) {
            rc = qg_error_set(err, QG_EINVAL, "truncated in vectors (slot %zu)", i);
            goto out;
        }
        for (size_t j = 0; j < ix->dim; j++)
            if (!isfinite(v[j])) {
                rc = qg_error_set(err, QG_EINVAL, "slot %zu: value %zu is not finite", i, j);
                goto out;
            }
        for (size_t j = ix->dim; j < ix->vlen; j++) v[j] = 0;
    }
    if (ix->p.kind == QG_VINDEX_HNSW) {
        if (!get(&r, ix->levels, n)) {
            rc = qg_error_set(err, QG_EINVAL, "truncated in the graph levels");
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            if (!get(&r, qg_vix_links(ix, (uint32_t)i, 0), (size_t)(1 + ix->M0) * 4)) {
                rc = qg_error_set(err, QG_EINVAL, "truncated in the graph (slot %zu)", i);
                goto out;
            }
        for (size_t i = 0; i < n; i++) {
            if (ix->levels[i] > QG_VIX_MAX_LEVEL) {
                rc = qg_error_set(err, QG_EINVAL, "slot %zu: level %u above %d", i, ix->levels[i],
                                  QG_VIX_MAX_LEVEL);
                goto out;
            }
            if (!ix->levels[i]) continue;
            size_t len = (size_t)ix->levels[i] * (size_t)(1 + ix->M);
            if (!(ix->upper[i] = malloc(len * sizeof(uint32_t)))) {
                rc = qg_error_set(err, QG_ENOMEM, "no memory for the graph");
                goto out;
            }
            if (!get(&r, ix->upper[i], len * sizeof(uint32_t))) {
                rc = qg_error_set(err, QG_EINVAL, "truncated in the graph (slot %zu)", i);
                goto out;
            }
        }
        ix->rng = h.rng;
        ix->entry = h.entry;
        ix->maxlevel = h.maxlevel;
        if ((rc = check_graph(ix, err))) goto out;
        for (size_t i = 0; i < n; i++) {
            if (!ix->deleted[i]) continue;
            if (ix->nfree == ix->freecap) {
                size_t nc = ix->freecap ? ix->freecap * 2 : 64;
                uint32_t *nf = realloc_array(ix->freeslots, nc, sizeof *nf);
                if (!nf) {
                    rc = qg_error_set(err, QG_ENOMEM, "no memory for the free slots");
                    goto out;
                }
                ix->freeslots = nf;
                ix->freecap = nc;
            }
            ix->freeslots[ix->nfree++] = (uint32_t)i;
        }
    } else if (h.entry != QG_VIX_NONE || h.maxlevel != -1) {
        rc = qg_error_set(err, QG_EINVAL, "a flat index with a graph entry point");
        goto out;
    }
    uint64_t want = r.sum, sum;
    if (fread(&sum, 1, sizeof sum, f) != sizeof sum) {
        rc = qg_error_set(err, QG_EINVAL, "truncated (no checksum)");
        goto out;
    }
    if (sum != want) {
        rc = qg_error_set(err, QG_EINVAL, "checksum mismatch (the file is damaged)");
        goto out;
    }
    if (fgetc(f) != EOF) {
        rc = qg_error_set(err, QG_EINVAL, "trailing bytes after the checksum");
        goto out;
    }
out:
    if (rc) {
        /* A half-read graph must not reach the free path with bad links. */
        qg_vindex_free(ix);
        return rc;
    }
    *out = ix;
    return QG_OK;
}

qg_status qg_vindex_load(const char *path, qg_vindex **out, qg_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qg_error_set(err, errno == ENOENT ? QG_ENOTFOUND : QG_EIO, "%s: %s", path,
                            strerror(errno));
    qg_status rc = load_body(f, out, err);
    fclose(f);
    if (rc) qg_error_prefix(err, "%s", path);
    return rc;
}
