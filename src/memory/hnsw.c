/*
 * hnsw.c - the HNSW graph of a qg_vindex (Malkov & Yashunin, "Efficient and
 * robust approximate nearest neighbor search using Hierarchical Navigable
 * Small World graphs"; hnswlib is the reference design, this is our code).
 *
 * Every node lives on level 0 and, with probability M^-l, on levels 1..l;
 * levels come from a splitmix64 stream seeded by the caller, so a build is
 * reproducible. Level 0 links (up to 2*M per node) sit in one contiguous
 * array indexed by slot; upper-level links are a small array per node.
 * Neighbours are chosen with the paper's heuristic (Algorithm 4, without
 * extending candidates or keeping pruned connections): a candidate is kept
 * only when it is closer to the new node than to every neighbour already
 * kept, which spreads the links around the node. A full list the heuristic
 * made is pruned incrementally when a link is added (prune_clean): the same
 * links at a fraction of the distances.
 *
 * Deletion marks a node: it keeps routing searches but is never returned,
 * and its slot is reused by a later add (the new vector is stored and the
 * node relinked). Filters work the same way: a refused item routes but never
 * enters the result set, and the walk goes on until it holds ef accepted
 * items. A walk that would cost more than an exact scan of the accepted
 * items (a very narrow filter), or that ends short of k results while more
 * items are live, is finished by the exact scan instead.
 *
 * Searches share nothing but a pool of scratch contexts (visited marks tagged
 * by an epoch, so nothing is cleared between searches, and the two heaps),
 * taken and returned under a mutex; any number may run at once.
 */
#include "memory/hnsw_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- levels ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int draw_level(struct qg_vindex *ix)
{
    double u = ((double)(splitmix(&ix->rng) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double l = -log(u) * ix->mult;
    return l >= QG_VIX_MAX_LEVEL ? QG_VIX_MAX_LEVEL : (int)l;
}

/* ---- setup ---- */

qg_status qg_hnsw_init(struct qg_vindex *ix)
{
    ix->M = ix->p.M;
    ix->M0 = 2 * ix->p.M;
    ix->mult = 1.0 / log((double)ix->M);
    ix->rng = ix->p.seed;
    ix->entry = QG_VIX_NONE;
    ix->maxlevel = -1;
    if (pthread_mutex_init(&ix->pool_mu, NULL)) return QG_ENOMEM;
    return QG_OK;
}

static void ctx_free(qg_vctx *c)
{
    free(c->tags);
    free(c->cand);
    free(c->res);
    free(c);
}

void qg_hnsw_free(struct qg_vindex *ix)
{
    for (qg_vctx *c = ix->pool, *next; c; c = next) {
        next = c->next;
        ctx_free(c);
    }
    if (ix->upper)
        for (size_t i = 0; i < ix->n; i++) free(ix->upper[i]);
    free(ix->upper);
    free(ix->levels);
    free(ix->clean);
    free(ix->deleted);
    free(ix->freeslots);
    pthread_mutex_destroy(&ix->pool_mu);
}

qg_status qg_hnsw_grow(struct qg_vindex *ix, size_t oldcap, size_t newcap)
{
    uint8_t *del = realloc(ix->deleted, newcap);
    if (!del) return QG_ENOMEM;
    ix->deleted = del;
    uint8_t *lv = realloc(ix->levels, newcap);
    if (!lv) return QG_ENOMEM;
    ix->levels = lv;
    uint64_t *cl = realloc(ix->clean, newcap * sizeof *cl);
    if (!cl) return QG_ENOMEM;
    ix->clean = cl;
    memset(cl + oldcap, 0, (newcap - oldcap) * sizeof *cl);
    uint32_t **up = realloc(ix->upper, newcap * sizeof *up);
    if (!up) return QG_ENOMEM;
    ix->upper = up;
    for (size_t i = oldcap; i < newcap; i++) up[i] = NULL;
    memset(del + oldcap, 0, newcap - oldcap);
    memset(lv + oldcap, 0, newcap - oldcap);
    return QG_OK;
}

size_t qg_hnsw_memory(const struct qg_vindex *ix)
{
    /* level-0 links are in the slab */
    size_t b = ix->cap * (2 + sizeof(uint64_t) + sizeof(uint32_t *));
    for (size_t i = 0; i < ix->n; i++)
        if (ix->upper[i]) b += (size_t)ix->levels[i] * (size_t)(1 + ix->M) * sizeof(uint32_t);
    b += ix->freecap * sizeof(uint32_t);
    for (const qg_vctx *c = ix->pool; c; c = c->next)
        b += sizeof *c + c->ntags * sizeof *c->tags + (c->ccap + c->rcap) * sizeof(qg_vcand);
    return b;
}

/* ---- scratch contexts ---- */

static qg_vctx *ctx_take(const struct qg_vindex *cix)
{
    struct qg_vindex *ix = (struct qg_vindex *)cix; /* only the pool changes */
    pthread_mutex_lock(&ix->pool_mu);
    qg_vctx *c = ix->pool;
    if (c) ix->pool = c->next;
    pthread_mutex_unlock(&ix->pool_mu);
    if (!c && !(c = calloc(1, sizeof *c))) return NULL;
    if (c->ntags < ix->n) {
        size_t want = ix->cap > ix->n ? ix->cap : ix->n;
        uint16_t *t = realloc(c->tags, want * sizeof *t);
        if (!t) {
            ctx_free(c);
            return NULL;
        }
        memset(t + c->ntags, 0, (want - c->ntags) * sizeof *t);
        c->tags = t;
        c->ntags = want;
    }
    /* A new epoch marks everything unvisited; on wrap the marks are cleared. */
    if (++c->epoch == 0) {
        memset(c->tags, 0, c->ntags * sizeof *c->tags);
        c->epoch = 1;
    }
    return c;
}

static void ctx_give(const struct qg_vindex *cix, qg_vctx *c)
{
    struct qg_vindex *ix = (struct qg_vindex *)cix;
    pthread_mutex_lock(&ix->pool_mu);
    c->next = ix->pool;
    ix->pool = c;
    pthread_mutex_unlock(&ix->pool_mu);
}

static bool reserve(qg_vcand **a, size_t *cap, size_t want)
{
    if (want <= *cap) return true;
    size_t nc = *cap ? *cap : 256;
    while (nc < want) nc *= 2;
    qg_vcand *p = realloc(*a, nc * sizeof *p);
    if (!p) return false;
    *a = p;
    *cap = nc;
    return true;
}

/* ---- heaps: cand is a min-heap, res a max-heap, both on d ---- */

static inline void minheap_push(qg_vcand *h, size_t *n, qg_vcand x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].d <= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline qg_vcand minheap_pop(qg_vcand *h, size_t *n)
{
    qg_vcand top = h[0], x = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1].d < h[c].d) c++;
        if (h[c].d >= x.d) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = x;
    return top;
}

/* Floyd's bottom-up construction of a min-heap over h[0..n). */
static void minheap_build(qg_vcand *h, size_t n)
{
    for (size_t i = n / 2; i-- > 0;) {
        qg_vcand x = h[i];
        size_t j = i;
        for (;;) {
            size_t c = 2 * j + 1;
            if (c >= n) break;
            if (c + 1 < n && h[c + 1].d < h[c].d) c++;
            if (h[c].d >= x.d) break;
            h[j] = h[c];
            j = c;
        }
        h[j] = x;
    }
}

static inline void maxheap_push(qg_vcand *h, size_t *n, qg_vcand x)
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

static inline void maxheap_pop(qg_vcand *h, size_t *n)
{
    qg_vcand x = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1].d > h[c].d) c++;
        if (h[c].d <= x.d) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = x;
}

/* Sorts the max-heap h (n items) in place, nearest first. */
static void maxheap_sort(qg_vcand *h, size_t n)
{
    while (n > 1) {
        qg_vcand top = h[0];
        maxheap_pop(h, &n);
        h[n] = top;
    }
}

/* Insertion sort for the short neighbour lists (at most 2*M + 1). */
static void sort_short(qg_vcand *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        qg_vcand x = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1].d > x.d) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* ---- distances ---- */

static inline __attribute__((always_inline)) float dist(int l2, const float *a, const float *b,
                                                        size_t dim)
{
    return l2 ? vix_l2(a, b, dim) : vix_negdot(a, b, dim);
}

static inline void prefetch_vec(const struct qg_vindex *ix, uint32_t id)
{
    const char *p = (const char *)qg_vix_vec(ix, id);
    size_t bytes = ix->dim * sizeof(float);
    if (bytes > 512) bytes = 512; /* the hardware streams the rest */
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 3);
}

/* ---- the walk ---- */

/* Greedy descent on one upper level: moves to any closer neighbour until
 * none is closer. */
static inline __attribute__((always_inline)) void
greedy(int l2, const struct qg_vindex *ix, const float *q, uint32_t *cur, float *curd, int level)
{
    bool moved = true;
    while (moved) {
        moved = false;
        const uint32_t *lk = qg_vix_links(ix, *cur, level);
        uint32_t cnt = lk[0];
        for (uint32_t j = 1; j <= cnt; j++) prefetch_vec(ix, lk[j]);
        for (uint32_t j = 1; j <= cnt; j++) {
            float d = dist(l2, q, qg_vix_vec(ix, lk[j]), ix->dim);
            if (d < *curd) {
                *curd = d;
                *cur = lk[j];
                moved = true;
            }
        }
    }
}

typedef struct walk {
    size_t ef;
    qg_vfilter_fn filter; /* NULL: every live node is accepted */
    void *ud;
    uint32_t self;  /* never accepted (a node being relinked); QG_VIX_NONE */
    size_t budget;  /* refused nodes allowed; 0: unlimited */
    bool exhausted; /* the budget ran out */
} walk;

static inline bool accepted(const struct qg_vindex *ix, const walk *w, uint32_t id)
{
    if (ix->deleted[id] || id == w->self) return false;
    return !w->filter || w->filter(w->ud, ix->labels[id]);
}

/* Best-first search on one level from ep. Leaves up to ef accepted nodes in
 * c->res (a max-heap, *nres of them). Refused nodes are candidates (they
 * route) but never results. QG_ENOMEM when a heap cannot grow. */
static inline __attribute__((always_inline)) qg_status
search_level(int l2, const struct qg_vindex *ix, qg_vctx *c, const float *q, uint32_t ep, float epd,
             int level, walk *w, size_t *nres)
{
    size_t nc = 0, nr = 0, nrefused = 0, dim = ix->dim;
    uint16_t ep_tag = c->epoch;
    uint16_t *tags = c->tags;
    if (!reserve(&c->res, &c->rcap, w->ef + 1) || !reserve(&c->cand, &c->ccap, 64))
        return QG_ENOMEM;
    tags[ep] = ep_tag;
    minheap_push(c->cand, &nc, (qg_vcand){epd, ep});
    if (accepted(ix, w, ep)) maxheap_push(c->res, &nr, (qg_vcand){epd, ep});
    uint32_t fresh[QG_VIX_MAX_M * 2];
    while (nc) {
        if (nr >= w->ef && c->cand[0].d > c->res[0].d) break;
        qg_vcand cur = minheap_pop(c->cand, &nc);
        if (nc) __builtin_prefetch(qg_vix_links(ix, c->cand[0].id, level), 0, 3);
        const uint32_t *lk = qg_vix_links(ix, cur.id, level);
        uint32_t cnt = lk[0], nf = 0;
        /* First pass: the unvisited neighbours, their vectors requested
         * from memory all at once; second pass: their distances. */
        for (uint32_t j = 1; j <= cnt; j++) {
            uint32_t id = lk[j];
            if (tags[id] == ep_tag) continue;
            tags[id] = ep_tag;
            __builtin_prefetch(qg_vix_vec(ix, id), 0, 3);
            fresh[nf++] = id;
        }
        if (!reserve(&c->cand, &c->ccap, nc + nf)) return QG_ENOMEM;
        for (uint32_t j = 0; j < nf; j++) {
            uint32_t id = fresh[j];
            if (j + 1 < nf) prefetch_vec(ix, fresh[j + 1]);
            float d = dist(l2, q, qg_vix_vec(ix, id), dim);
            bool ok = accepted(ix, w, id);
            nrefused += !ok;
            if (nr < w->ef || d < c->res[0].d) {
                minheap_push(c->cand, &nc, (qg_vcand){d, id});
                if (ok) {
                    maxheap_push(c->res, &nr, (qg_vcand){d, id});
                    if (nr > w->ef) maxheap_pop(c->res, &nr);
                }
            }
        }
        /* Only refused nodes count: a walk whose nodes pass the filter
         * costs what an unfiltered one does, however many it visits. */
        if (w->budget && nrefused > w->budget) {
            w->exhausted = true;
            break;
        }
    }
    *nres = nr;
    return QG_OK;
}

/* ---- insertion ---- */

/* x (at distance x.d from the base) is closer to the base than to every
 * kept neighbour. */
static inline __attribute__((always_inline)) bool
diverse(int l2, const struct qg_vindex *ix, qg_vcand x, const qg_vcand *kept, size_t nk)
{
    const float *v = qg_vix_vec(ix, x.id);
    for (size_t r = 0; r < nk; r++)
        if (dist(l2, v, qg_vix_vec(ix, kept[r].id), ix->dim) < x.d) return false;
    return true;
}

/* The paper's Algorithm 4: from candidates sorted nearest first, keep one
 * only when it is closer to the base than to every one kept so far. */
static inline __attribute__((always_inline)) size_t
select_heuristic(int l2, const struct qg_vindex *ix, qg_vcand *cand, size_t n, size_t max)
{
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < max; i++)
        if (diverse(l2, ix, cand[i], cand, kept)) cand[kept++] = cand[i];
    return kept;
}

static inline bool is_clean(const struct qg_vindex *ix, uint32_t slot, int level)
{
    uint64_t c = ix->clean[slot];
    return (uint32_t)(c >> 32) == ix->clean_epoch && (c & (1u << level));
}

static inline void set_clean(struct qg_vindex *ix, uint32_t slot, int level, bool clean)
{
    uint64_t c = ix->clean[slot];
    uint32_t bits = (uint32_t)(c >> 32) == ix->clean_epoch ? (uint32_t)c : 0;
    bits = clean ? bits | (1u << level) : bits & ~(1u << level);
    ix->clean[slot] = (uint64_t)ix->clean_epoch << 32 | bits;
}

/* A slot's vector changed (a replaced item, a reused slot): any list naming
 * it may now hold a member the heuristic would drop, and in-links are not
 * kept, so every mark goes void at once. */
static void void_clean_marks(struct qg_vindex *ix)
{
    if (++ix->clean_epoch == 0) { /* wrapped: old marks could match again */
        memset(ix->clean, 0, ix->cap * sizeof *ix->clean);
        ix->clean_epoch = 1;
    }
}

/* The heuristic over a clean full list (one it keeps whole) plus node,
 * without comparing the list's members pairwise again. cand holds the
 * list sorted nearest first (cnt == max), x is node. Returns what
 * select_heuristic over all of them returns, written to lk:
 * - the members nearer than x stay, as before, since nothing before them
 *   changed;
 * - x is kept when diverse from those;
 * - a member after a kept x was diverse from every member before it, so
 *   it stays unless x is nearer to it than the base is.
 * About 2*max distances instead of up to max*max/2. */
static inline __attribute__((always_inline)) void prune_clean(int l2, struct qg_vindex *ix,
                                                              uint32_t *lk, const qg_vcand *cand,
                                                              size_t cnt, qg_vcand x)
{
    /* After the members at x's distance: the order a stable sort of
     * the list then x gives. */
    size_t p = cnt;
    while (p > 0 && cand[p - 1].d > x.d) p--;
    size_t k = 0;
    for (; k < p; k++) lk[1 + k] = cand[k].id;
    if (p == cnt || !diverse(l2, ix, x, cand, p)) {
        for (; k < cnt; k++) lk[1 + k] = cand[k].id;
    } else {
        const float *xv = qg_vix_vec(ix, x.id);
        lk[1 + k++] = x.id;
        for (size_t j = p; j < cnt && k < cnt; j++)
            if (!(dist(l2, qg_vix_vec(ix, cand[j].id), xv, ix->dim) < cand[j].d))
                lk[1 + k++] = cand[j].id;
    }
    lk[0] = (uint32_t)k;
}

/* Adds a link from e to node on level, pruning e's list with the heuristic
 * when it is full. scratch has room for max + 1 entries.
 *
 * A list the heuristic produced is "clean": run again over it, the
 * heuristic keeps all of it (each member passed against every member
 * before it). Most full lists are, and prune_clean then gives the same
 * links as the full heuristic at a fraction of the distances. A plain
 * append makes a list unclean; a changed vector makes every list unclean
 * (qg_hnsw_insert). */
static inline __attribute__((always_inline)) void
link_back(int l2, struct qg_vindex *ix, uint32_t e, uint32_t node, int level, qg_vcand *scratch)
{
    uint32_t *lk = qg_vix_links(ix, e, level);
    uint32_t max = (uint32_t)(level ? ix->M : ix->M0);
    uint32_t cnt = lk[0];
    for (uint32_t j = 1; j <= cnt; j++)
        if (lk[j] == node) return;
    if (cnt < max) {
        lk[1 + cnt] = node;
        lk[0] = cnt + 1;
        set_clean(ix, e, level, false);
        return;
    }
    const float *ev = qg_vix_vec(ix, e);
    for (uint32_t j = 0; j < cnt; j++)
        scratch[j] = (qg_vcand){dist(l2, ev, qg_vix_vec(ix, lk[1 + j]), ix->dim), lk[1 + j]};
    qg_vcand x = {dist(l2, ev, qg_vix_vec(ix, node), ix->dim), node};
    if (!ix->full_prune && is_clean(ix, e, level)) {
        sort_short(scratch, cnt);
        prune_clean(l2, ix, lk, scratch, cnt, x);
    } else {
        scratch[cnt] = x;
        sort_short(scratch, cnt + 1);
        size_t kept = select_heuristic(l2, ix, scratch, cnt + 1, max);
        for (size_t j = 0; j < kept; j++) lk[1 + j] = scratch[j].id;
        lk[0] = (uint32_t)kept;
        set_clean(ix, e, level, true);
    }
}

static inline __attribute__((always_inline)) qg_status connect(int l2, struct qg_vindex *ix,
                                                               uint32_t slot, int level)
{
    qg_status rc = QG_OK;
    const float *q = qg_vix_vec(ix, slot);
    uint32_t cur = ix->entry;
    /* Relinking the entry point itself: its zero distance to itself must not
     * pin the descent there. */
    float curd = cur == slot ? INFINITY : dist(l2, q, qg_vix_vec(ix, cur), ix->dim);
    for (int lc = ix->maxlevel; lc > level; lc--) greedy(l2, ix, q, &cur, &curd, lc);
    if (cur == slot) curd = 0;
    qg_vctx *c = ctx_take(ix);
    if (!c) return QG_ENOMEM;
    qg_vcand scratch[2 * QG_VIX_MAX_M + 1];
    walk w = {.ef = (size_t)ix->p.ef_construction, .self = slot};
    for (int lc = level < ix->maxlevel ? level : ix->maxlevel; lc >= 0; lc--) {
        size_t nr = 0;
        if ((rc = search_level(l2, ix, c, q, cur, curd, lc, &w, &nr))) break;
        /* The heuristic takes candidates nearest first and usually stops
         * long before the last: a min-heap pops only those it looks at. */
        qg_vcand *res = c->res, kept[QG_VIX_MAX_M];
        minheap_build(res, nr);
        size_t nk = 0;
        while (nr && nk < (size_t)ix->M) {
            qg_vcand x = minheap_pop(res, &nr);
            if (nk == 0) {
                cur = x.id;
                curd = x.d;
            }
            if (diverse(l2, ix, x, kept, nk)) kept[nk++] = x;
        }
        uint32_t *lk = qg_vix_links(ix, slot, lc);
        for (size_t j = 0; j < nk; j++) lk[1 + j] = kept[j].id;
        lk[0] = (uint32_t)nk;
        set_clean(ix, slot, lc, true);
        for (size_t j = 0; j < nk; j++) link_back(l2, ix, kept[j].id, slot, lc, scratch);
        /* The next level needs fresh visited marks. */
        if (++c->epoch == 0) {
            memset(c->tags, 0, c->ntags * sizeof *c->tags);
            c->epoch = 1;
        }
    }
    ctx_give(ix, c);
    return rc;
}

qg_status qg_hnsw_insert(struct qg_vindex *ix, uint32_t slot, bool fresh)
{
    int level;
    if (fresh) {
        level = draw_level(ix);
        ix->levels[slot] = (uint8_t)level;
        qg_vix_links(ix, slot, 0)[0] = 0;
        free(ix->upper[slot]);
        ix->upper[slot] = NULL;
        if (level > 0) {
            ix->upper[slot] = calloc((size_t)level * (size_t)(1 + ix->M), sizeof(uint32_t));
            if (!ix->upper[slot]) {
                ix->levels[slot] = 0;
                level = 0;
            }
        }
    } else {
        level = ix->levels[slot];
    }
    if (!fresh) void_clean_marks(ix);
    if (ix->entry == QG_VIX_NONE) {
        ix->entry = slot;
        ix->maxlevel = level;
        return QG_OK;
    }
    if (ix->entry == slot && ix->n == 1) return QG_OK;
    qg_status rc =
        ix->p.metric == QG_VMETRIC_L2 ? connect(1, ix, slot, level) : connect(0, ix, slot, level);
    if (rc) return rc;
    if (level > ix->maxlevel) {
        ix->entry = slot;
        ix->maxlevel = level;
    }
    return QG_OK;
}

/* ---- search ---- */

static inline __attribute__((always_inline)) qg_status
search(int l2, const struct qg_vindex *ix, qg_vctx *c, const float *q, walk *w, size_t *nres)
{
    uint32_t cur = ix->entry;
    float curd = dist(l2, q, qg_vix_vec(ix, cur), ix->dim);
    for (int lc = ix->maxlevel; lc > 0; lc--) greedy(l2, ix, q, &cur, &curd, lc);
    return search_level(l2, ix, c, q, cur, curd, 0, w, nres);
}

qg_status qg_hnsw_search(const struct qg_vindex *ix, const float *q, size_t k, size_t ef,
                         qg_vfilter_fn filter, void *ud, qg_vhit *out, size_t *n)
{
    *n = 0;
    if (ix->entry == QG_VIX_NONE || ix->live == 0) return QG_OK;
    walk w = {.ef = ef, .filter = filter, .ud = ud, .self = QG_VIX_NONE};
    /* A walk that must pass many refused items to collect ef accepted ones
     * costs more than scanning: past a quarter of the slots refused, the
     * exact scan of the accepted items takes over. */
    if (filter || ix->live < ix->n) w.budget = ix->n / 4 > ef ? ix->n / 4 : ef;
    qg_vctx *c = ctx_take(ix);
    if (!c) return QG_ENOMEM;
    size_t nr = 0;
    qg_status rc =
        ix->p.metric == QG_VMETRIC_L2 ? search(1, ix, c, q, &w, &nr) : search(0, ix, c, q, &w, &nr);
    if (!rc && !w.exhausted && (nr >= k || nr >= ix->live)) {
        maxheap_sort(c->res, nr);
        if (nr > k) nr = k;
        for (size_t i = 0; i < nr; i++) {
            out[i].label = ix->labels[c->res[i].id];
            out[i].dist = qg_vix_public_dist(ix, c->res[i].d);
        }
        *n = nr;
        ctx_give(ix, c);
        return QG_OK;
    }
    ctx_give(ix, c);
    if (rc) return rc;
    return qg_vix_exact(ix, q, k, filter, ud, out, n);
}
