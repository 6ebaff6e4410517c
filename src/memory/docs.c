/*
 * docs.c - the documents service: ingest (chunk, fingerprint, link
 * near-duplicates, embed what is new, delete what is gone), the in-memory
 * vector index kept in step with the database's generation counter, and
 * search with citations.
 *
 * One file is one transaction: its doc_files row, its chunks, the orphaned
 * duplicates of chunks it lost, the label counter and the generation move
 * together, so a reader never sees half a file. Ingests in this process are
 * serialised by a mutex (SQLite's BEGIN IMMEDIATE serialises them against
 * other processes). After a commit the index is updated in place when it was
 * current before the change; otherwise it is rebuilt at the next search.
 *
 * A provider embedder is never called inside the transaction (that would
 * hold SQLite's write lock for a network call): prefetch() first diffs the
 * new version against the stored chunks with plain reads, embeds what the
 * transaction will need and keeps the vectors in a per-file cache keyed by
 * text; the transaction then redoes the same diff under the lock and takes
 * its vectors from the cache. If the database moved in between (another
 * process ingested something, so a chunk is no longer a near-duplicate or a
 * duplicate lost its canonical chunk), the transaction finds a text missing
 * from the cache, rolls back and the ingest starts over; only the missing
 * texts are embedded again. After PREFETCH_TRIES such rounds the last one
 * may embed inside the transaction (correct, just slower) so a busy writer
 * cannot starve an ingest. The offline embedder is local and fast and runs
 * inside the transaction as before.
 */
#include "memory/docs.h"

#include "ai/embed.h"
#include "memory/chunk.h"
#include "memory/embed.h"
#include "memory/vindex.h"

#include <quantgate/file.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_DEPTH_MAX  32
#define FILES_MAX      100000 /* files one directory ingest may hold */
#define PREFETCH_TRIES 3      /* rounds before a transaction may embed itself */

struct qg_docs {
    qg_store *store;
    qg_ai *ai;
    char *embedder; /* "hash" or the model name */
    bool provider;
    size_t chunk_max;

    pthread_mutex_t ingest; /* one ingest at a time */
    pthread_rwlock_t lock;  /* ix, dim, gen */
    qg_vindex *ix;          /* NULL until the dimension is known */
    size_t dim;
    int64_t gen; /* generation the index reflects; -1: rebuild */
};

/* A canonical chunk, for near-duplicate lookups during an ingest. */
typedef struct canon {
    char id[QG_ID_MAX];
    int64_t label;
    uint64_t simhash;
    bool gone;
} canon;

typedef struct canon_list {
    canon *v;
    size_t n, cap;
} canon_list;

/* Index changes of one committed file. */
typedef struct ix_op {
    int64_t label;
    float *vec; /* NULL: remove */
} ix_op;

/* Provider vectors embedded before the transaction, keyed by text. */
typedef struct vcache_ent {
    uint64_t hash;
    char *text;
    float *vec;
} vcache_ent;

typedef struct vcache {
    vcache_ent *v;
    size_t n, cap, dim;
} vcache;

typedef struct ingest_ctx {
    qg_docs *d;
    qg_conn *c;
    qg_docs_counts *counts;
    canon_list canon;
    ix_op *ops;
    size_t nops, capops;
    const char *user_id;
    vcache cache;
    bool net_ok; /* the transaction may call the provider (last round) */
    bool missed; /* the transaction needed a vector the cache lacked */
} ingest_ctx;

const char *qg_docs_embedder(const qg_docs *d)
{
    return d->embedder;
}

/* ------------------------------------------------------------- small helpers */

static qg_status row_int(void *ud, const qg_row *r)
{
    *(int64_t *)ud = qg_row_int(r, 0);
    return QG_OK;
}

static qg_status query_int(qg_conn *c, const char *sql, const qg_val *p, size_t n, int64_t *out,
                           qg_error *err)
{
    return qg_conn_query(c, sql, p, n, row_int, out, err);
}

static void simhash_hex(uint64_t h, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, h);
}

static uint64_t simhash_parse(const char *s)
{
    return s ? strtoull(s, NULL, 16) : 0;
}

static void canon_add(canon_list *l, const char *id, int64_t label, uint64_t simhash)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = qg_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    canon *k = &l->v[l->n++];
    snprintf(k->id, sizeof k->id, "%s", id);
    k->label = label;
    k->simhash = simhash;
    k->gone = false;
}

/* The nearest canonical chunk within QG_SIMHASH_NEAR bits, or NULL. */
static const canon *canon_near(const canon_list *l, uint64_t h)
{
    const canon *best = NULL;
    int bestd = QG_SIMHASH_NEAR + 1;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].gone) continue;
        int dd = qg_simhash_distance(l->v[i].simhash, h);
        if (dd < bestd) {
            bestd = dd;
            best = &l->v[i];
            if (dd == 0) break;
        }
    }
    return best;
}

static void canon_drop(canon_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (!l->v[i].gone && strcmp(l->v[i].id, id) == 0) l->v[i].gone = true;
}

static qg_status canon_row(void *ud, const qg_row *r)
{
    canon_add(ud, qg_row_text(r, 0), qg_row_int(r, 1), simhash_parse(qg_row_text(r, 2)));
    return QG_OK;
}

static void op_push(ingest_ctx *x, int64_t label, const float *vec, size_t dim)
{
    if (x->nops == x->capops) {
        x->capops = x->capops ? x->capops * 2 : 64;
        x->ops = qg_xrealloc(x->ops, x->capops * sizeof *x->ops);
    }
    ix_op *o = &x->ops[x->nops++];
    o->label = label;
    o->vec = NULL;
    if (vec) {
        o->vec = qg_xmalloc(dim * sizeof *vec);
        memcpy(o->vec, vec, dim * sizeof *vec);
    }
}

static void ops_clear(ingest_ctx *x)
{
    for (size_t i = 0; i < x->nops; i++) free(x->ops[i].vec);
    x->nops = 0;
}

/* ---------------------------------------------------------------- embedding */

/* Embeds n texts into vecs (n * *dim floats, malloc'd, the caller frees).
 * *dim is the service's dimension or, for a provider's first vectors, set
 * from the reply. */
static qg_status embed_texts(qg_docs *d, const char *const *texts, size_t n, const char *user_id,
                             float **vecs, size_t *dim, qg_error *err)
{
    *vecs = NULL;
    if (!d->provider) {
        *dim = QG_EMBED_TEXT_DIM;
        float *v = qg_xmalloc((n ? n : 1) * QG_EMBED_TEXT_DIM * sizeof *v);
        for (size_t i = 0; i < n; i++)
            qg_embed_text(texts[i], strlen(texts[i]), v + i * QG_EMBED_TEXT_DIM);
        *vecs = v;
        return QG_OK;
    }
    float *all = NULL;
    size_t have_dim = *dim;
    qg_status rc = QG_OK;
    for (size_t off = 0; off < n && !rc; off += QG_AI_EMBED_MAX_INPUTS) {
        size_t k = n - off < QG_AI_EMBED_MAX_INPUTS ? n - off : QG_AI_EMBED_MAX_INPUTS;
        qg_arena a;
        qg_arena_init(&a, 1 << 16);
        qg_ai_embed_call call = {
            .user_id = user_id, .model = d->embedder, .inputs = texts + off, .n_inputs = k};
        qg_ai_embed_result res = {0};
        rc = qg_ai_embed(d->ai, &call, &a, &res, err);
        if (!rc &&
            (res.n != k || res.dim == 0 || res.dim > 4096 || (have_dim && res.dim != have_dim)))
            rc = qg_error_set(err, QG_EINVAL,
                              "QG_DOCS_EMBED_MODEL '%s': the model returned %zu vectors of %zu "
                              "dimensions (expected %zu of %zu)",
                              d->embedder, res.n, res.dim, k, have_dim ? have_dim : res.dim);
        if (!rc) {
            /* Allocated at the first reply also when the dimension was
             * known before (a search, a later ingest). */
            if (!have_dim) have_dim = res.dim;
            if (!all) all = qg_xmalloc(n * have_dim * sizeof *all);
            memcpy(all + off * have_dim, res.vectors, k * have_dim * sizeof *all);
        }
        qg_arena_free(&a);
    }
    if (rc) {
        free(all);
        return rc;
    }
    if (!all) all = qg_xmalloc(sizeof *all);
    *dim = have_dim;
    *vecs = all;
    return QG_OK;
}

static uint64_t text_hash(const char *t)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *t; t++) h = (h ^ (unsigned char)*t) * 1099511628211ull;
    return h;
}

static const float *vcache_get(const vcache *vc, const char *text)
{
    uint64_t h = text_hash(text);
    for (size_t i = 0; i < vc->n; i++)
        if (vc->v[i].hash == h && strcmp(vc->v[i].text, text) == 0) return vc->v[i].vec;
    return NULL;
}

static void vcache_put(vcache *vc, const char *text, const float *vec)
{
    if (vc->n == vc->cap) {
        vc->cap = vc->cap ? vc->cap * 2 : 64;
        vc->v = qg_xrealloc(vc->v, vc->cap * sizeof *vc->v);
    }
    vcache_ent *e = &vc->v[vc->n++];
    e->hash = text_hash(text);
    e->text = qg_xstrdup(text);
    e->vec = qg_xmalloc(vc->dim * sizeof *vec);
    memcpy(e->vec, vec, vc->dim * sizeof *vec);
}

static void vcache_clear(vcache *vc)
{
    for (size_t i = 0; i < vc->n; i++) {
        free(vc->v[i].text);
        free(vc->v[i].vec);
    }
    free(vc->v);
    memset(vc, 0, sizeof *vc);
}

/* embed_texts for use inside the write transaction: a provider's vectors
 * come from the prefetch cache; a miss is QG_EAGAIN with x->missed set
 * (the caller rolls back and starts over) unless x->net_ok. */
static qg_status embed_tx(ingest_ctx *x, const char *const *texts, size_t n, float **vecs,
                          size_t *dim, qg_error *err)
{
    qg_docs *d = x->d;
    if (!d->provider || x->net_ok) return embed_texts(d, texts, n, x->user_id, vecs, dim, err);
    *vecs = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!vcache_get(&x->cache, texts[i])) {
            x->missed = true;
            return qg_error_set(err, QG_EAGAIN, "documents: the index changed during an ingest");
        }
    }
    size_t cd = x->cache.dim;
    if (n && (cd == 0 || (*dim && *dim != cd)))
        return qg_error_set(err, QG_EINVAL,
                            "QG_DOCS_EMBED_MODEL '%s': the model returned vectors of %zu "
                            "dimensions (expected %zu)",
                            d->embedder, cd, *dim);
    if (n) *dim = cd;
    float *all = qg_xmalloc((n ? n : 1) * (cd ? cd : 1) * sizeof *all);
    for (size_t i = 0; i < n; i++)
        memcpy(all + i * cd, vcache_get(&x->cache, texts[i]), cd * sizeof *all);
    *vecs = all;
    return QG_OK;
}

/* ------------------------------------------------------------------ the index */

typedef struct load_ctx {
    qg_docs *d;
    qg_vindex *ix;
    size_t dim;
    float *tmp;
    size_t skipped;
    qg_error *err;
} load_ctx;

/* Decoded float count of a base64 vector text. */
static size_t vec_text_dim(const char *s)
{
    size_t n = strlen(s);
    if (n % 4) return 0;
    size_t bytes = n / 4 * 3;
    if (n && s[n - 1] == '=') bytes--;
    if (n > 1 && s[n - 2] == '=') bytes--;
    return bytes % 4 ? 0 : bytes / 4;
}

static qg_status load_row(void *ud, const qg_row *r)
{
    load_ctx *l = ud;
    const char *text = qg_row_text(r, 1);
    if (!text) return QG_OK;
    if (!l->ix) {
        size_t dim = vec_text_dim(text);
        if (dim == 0 || dim > 4096) {
            l->skipped++;
            return QG_OK;
        }
        qg_vindex_params p = {.kind = QG_VINDEX_FLAT, .metric = QG_VMETRIC_COSINE, .dim = dim};
        qg_status rc = qg_vindex_new(&p, &l->ix, l->err);
        if (rc) return rc;
        l->dim = dim;
        l->tmp = qg_xmalloc(dim * sizeof *l->tmp);
    }
    qg_error e = {0};
    if (qg_vec_decode(text, l->tmp, l->dim, &e)) {
        l->skipped++;
        return QG_OK;
    }
    return qg_vindex_add(l->ix, qg_row_int(r, 0), l->tmp, l->err);
}

/* Rebuilds the index from the database; the caller holds the write lock. */
static qg_status rebuild(qg_docs *d, qg_conn *c, qg_error *err)
{
    int64_t gen = 0, count = 0;
    qg_val emb[] = {QG_VTEXT(d->embedder)};
    qg_status rc =
        query_int(c, "SELECT value FROM doc_meta WHERE key = 'generation'", NULL, 0, &gen, err);
    if (!rc)
        rc = query_int(c,
                       "SELECT COUNT(*) FROM doc_chunks WHERE vector IS NOT NULL AND embedder = ?",
                       emb, 1, &count, err);
    if (rc) return rc;
    load_ctx l = {.d = d, .err = err};
    if (d->dim) {
        /* Known dimension: make the index first so the kind can follow the size. */
        qg_vindex_params p = {.kind = count > QG_DOCS_FLAT_MAX ? QG_VINDEX_HNSW : QG_VINDEX_FLAT,
                              .metric = QG_VMETRIC_COSINE,
                              .dim = d->dim,
                              .seed = 42};
        if ((rc = qg_vindex_new(&p, &l.ix, err))) return rc;
        l.dim = d->dim;
        l.tmp = qg_xmalloc(d->dim * sizeof *l.tmp);
    }
    rc = qg_conn_query(c,
                       "SELECT label, vector FROM doc_chunks WHERE vector IS NOT NULL AND "
                       "embedder = ? ORDER BY label",
                       emb, 1, load_row, &l, err);
    free(l.tmp);
    if (rc) {
        qg_vindex_free(l.ix);
        return rc;
    }
    if (l.skipped)
        qg_warn("documents: %zu stored vectors could not be read and are left out", l.skipped);
    qg_vindex_free(d->ix);
    d->ix = l.ix;
    if (l.ix) d->dim = l.dim;
    d->gen = gen;
    return QG_OK;
}

/* Rebuilds when the database moved on since the index was built. */
static qg_status ensure_fresh(qg_docs *d, qg_conn *c, qg_error *err)
{
    int64_t gen = 0;
    qg_status rc =
        query_int(c, "SELECT value FROM doc_meta WHERE key = 'generation'", NULL, 0, &gen, err);
    if (rc) return rc;
    pthread_rwlock_rdlock(&d->lock);
    bool fresh = d->gen == gen;
    pthread_rwlock_unlock(&d->lock);
    if (fresh) return QG_OK;
    pthread_rwlock_wrlock(&d->lock);
    if (d->gen != gen) rc = rebuild(d, c, err);
    pthread_rwlock_unlock(&d->lock);
    return rc;
}

/* Applies a committed file's changes: in place when the index was at
 * gen_before, else a rebuild is left to the next search. */
static void apply_ops(ingest_ctx *x, int64_t gen_before, int64_t gen_after, size_t dim)
{
    qg_docs *d = x->d;
    pthread_rwlock_wrlock(&d->lock);
    if (d->gen == gen_before) {
        qg_error e = {0};
        if (!d->ix && dim) {
            qg_vindex_params p = {.kind = QG_VINDEX_FLAT, .metric = QG_VMETRIC_COSINE, .dim = dim};
            if (qg_vindex_new(&p, &d->ix, &e) == QG_OK) d->dim = dim;
        }
        bool ok = d->ix != NULL || x->nops == 0;
        for (size_t i = 0; i < x->nops && ok; i++) {
            if (x->ops[i].vec)
                ok = qg_vindex_add(d->ix, (uint64_t)x->ops[i].label, x->ops[i].vec, &e) == QG_OK;
            else
                qg_vindex_remove(d->ix, (uint64_t)x->ops[i].label);
        }
        d->gen = ok ? gen_after : -1;
    } else {
        d->gen = -1;
    }
    pthread_rwlock_unlock(&d->lock);
    ops_clear(x);
}

/* ------------------------------------------------------------------- ingest */

typedef struct old_chunk {
    char id[QG_ID_MAX];
    int64_t label;
    char fingerprint[QG_FINGERPRINT_HEX];
    bool canonical, same_embedder, used;
} old_chunk;

typedef struct old_list {
    old_chunk *v;
    size_t n, cap;
    const char *embedder;
} old_list;

static qg_status old_row(void *ud, const qg_row *r)
{
    old_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = qg_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    old_chunk *o = &l->v[l->n++];
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "%s", qg_row_text(r, 0));
    o->label = qg_row_int(r, 1);
    snprintf(o->fingerprint, sizeof o->fingerprint, "%s", qg_row_text(r, 2));
    o->canonical = qg_row_int(r, 3) != 0;
    const char *emb = qg_row_text(r, 4);
    o->same_embedder = emb && strcmp(emb, l->embedder) == 0;
    return QG_OK;
}

/* What happens to one chunk of the new version of a file. */
typedef enum { PLAN_KEEP, PLAN_REEMBED, PLAN_NEW, PLAN_LINK } plan_kind;

typedef struct plan {
    plan_kind kind;
    old_chunk *old;   /* KEEP, REEMBED */
    const char *link; /* LINK: the canonical chunk's id */
    char id[QG_ID_MAX];
    int64_t label;
    size_t vec; /* index into the embedded texts */
} plan;

/* A duplicate whose canonical chunk was deleted. */
typedef struct orphan {
    char id[QG_ID_MAX];
    int64_t label;
    uint64_t simhash;
    char *text;
} orphan;

typedef struct orphan_list {
    orphan *v;
    size_t n, cap;
} orphan_list;

static qg_status orphan_row(void *ud, const qg_row *r)
{
    orphan_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = qg_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    orphan *o = &l->v[l->n++];
    snprintf(o->id, sizeof o->id, "%s", qg_row_text(r, 0));
    o->label = qg_row_int(r, 1);
    o->simhash = simhash_parse(qg_row_text(r, 2));
    o->text = qg_xstrdup(qg_row_text(r, 3) ? qg_row_text(r, 3) : "");
    return QG_OK;
}

static qg_status meta_get(qg_conn *c, const char *key, int64_t *v, qg_error *err)
{
    qg_val p[] = {QG_VTEXT(key)};
    return query_int(c, "SELECT value FROM doc_meta WHERE key = ?", p, 1, v, err);
}

static qg_status meta_set(qg_conn *c, const char *key, int64_t v, qg_error *err)
{
    qg_val p[] = {QG_VINT(v), QG_VTEXT(key)};
    return qg_conn_exec(c, "UPDATE doc_meta SET value = ? WHERE key = ?", p, 2, NULL, err);
}

static qg_status store_vector(ingest_ctx *x, const char *id, const float *v, size_t dim,
                              qg_error *err)
{
    qg_buf b;
    qg_buf_init(&b, 1 << 26);
    qg_status rc = qg_vec_encode(v, dim, &b);
    if (!rc) {
        qg_val p[] = {QG_VTEXT(b.data), QG_VTEXT(x->d->embedder), QG_VTEXT(id)};
        rc = qg_conn_exec(x->c,
                          "UPDATE doc_chunks SET vector = ?, embedder = ?, duplicate_of = NULL "
                          "WHERE id = ?",
                          p, 3, NULL, err);
    } else {
        qg_error_set(err, rc, "encoding a vector: %s", qg_status_name(rc));
    }
    qg_buf_free(&b);
    return rc;
}

/* Re-homes the duplicates of deleted canonical chunks: linked to another
 * near chunk, or embedded and made canonical. */
static qg_status rehome_orphans(ingest_ctx *x, const char *const *gone, size_t ngone, size_t *dim,
                                qg_error *err)
{
    orphan_list ol = {0};
    qg_status rc = QG_OK;
    for (size_t i = 0; i < ngone && !rc; i++) {
        qg_val p[] = {QG_VTEXT(gone[i])};
        rc = qg_conn_query(x->c,
                           "SELECT id, label, simhash, text FROM doc_chunks WHERE duplicate_of = ? "
                           "ORDER BY label",
                           p, 1, orphan_row, &ol, err);
    }
    for (size_t i = 0; i < ol.n && !rc; i++) {
        orphan *o = &ol.v[i];
        const canon *near = canon_near(&x->canon, o->simhash);
        if (near) {
            qg_val p[] = {QG_VTEXT(near->id), QG_VTEXT(o->id)};
            rc = qg_conn_exec(x->c, "UPDATE doc_chunks SET duplicate_of = ? WHERE id = ?", p, 2,
                              NULL, err);
            continue;
        }
        float *v = NULL;
        const char *t = o->text;
        if ((rc = embed_tx(x, &t, 1, &v, dim, err))) break;
        x->counts->embedded++;
        rc = store_vector(x, o->id, v, *dim, err);
        if (!rc) {
            op_push(x, o->label, v, *dim);
            canon_add(&x->canon, o->id, o->label, o->simhash);
        }
        free(v);
    }
    for (size_t i = 0; i < ol.n; i++) free(ol.v[i].text);
    free(ol.v);
    return rc;
}

typedef struct doc_src {
    const char *path;
    const char *source; /* "file" or "upload" */
    const char *content;
    size_t len;
    int64_t mtime;
} doc_src;

/* The whole file in one transaction (the caller began it). */
static qg_status ingest_tx(ingest_ctx *x, const doc_src *s, qg_doc_format fmt, const char *sha,
                           qg_chunk *ch, size_t nch, int64_t *gen_before, int64_t *gen_after,
                           size_t *dim, qg_error *err)
{
    qg_docs *d = x->d;
    qg_conn *c = x->c;
    qg_status rc;
    int64_t now = qg_time_now_ms(), next_label = 1;
    old_list old = {.embedder = d->embedder};
    plan *pl = qg_xcalloc(nch ? nch : 1, sizeof *pl);
    const char **texts = qg_xcalloc(nch ? nch : 1, sizeof *texts);
    size_t ntexts = 0;
    float *vecs = NULL;
    const char **gone = NULL;
    size_t ngone = 0;

    if ((rc = meta_get(c, "generation", gen_before, err)) ||
        (rc = meta_get(c, "next_label", &next_label, err)))
        goto out;
    qg_val fp[] = {QG_VTEXT(s->path)};
    if ((rc = qg_conn_query(c,
                            "SELECT id, label, fingerprint, duplicate_of IS NULL, embedder FROM "
                            "doc_chunks WHERE path = ? ORDER BY seq",
                            fp, 1, old_row, &old, err)))
        goto out;
    /* Pass 1: chunks whose fingerprint this file already has are kept. */
    for (size_t i = 0; i < nch; i++) {
        for (size_t k = 0; k < old.n; k++) {
            if (old.v[k].used || strcmp(old.v[k].fingerprint, ch[i].fingerprint) != 0) continue;
            old.v[k].used = true;
            pl[i].old = &old.v[k];
            pl[i].kind = old.v[k].canonical && !old.v[k].same_embedder ? PLAN_REEMBED : PLAN_KEEP;
            break;
        }
    }
    /* Pass 2: the rest of the old chunks go. */
    gone = qg_xcalloc(old.n ? old.n : 1, sizeof *gone);
    for (size_t k = 0; k < old.n; k++) {
        if (old.v[k].used) continue;
        canon_drop(&x->canon, old.v[k].id);
        gone[ngone++] = old.v[k].id;
        qg_val p[] = {QG_VTEXT(old.v[k].id)};
        if ((rc = qg_conn_exec(c, "DELETE FROM doc_chunks WHERE id = ?", p, 1, NULL, err)))
            goto out;
        op_push(x, old.v[k].label, NULL, 0);
        x->counts->chunks_removed++;
    }
    /* Pass 3: new chunks are linked to a near-duplicate or embedded. */
    for (size_t i = 0; i < nch; i++) {
        plan *p = &pl[i];
        if (p->old) {
            if (p->kind == PLAN_REEMBED) {
                p->vec = ntexts;
                texts[ntexts++] = ch[i].text;
            }
            continue;
        }
        qg_store_new_id("dch", p->id, sizeof p->id);
        p->label = next_label++;
        const canon *near = canon_near(&x->canon, ch[i].simhash);
        if (near) {
            p->kind = PLAN_LINK;
            p->link = near->id;
            continue;
        }
        p->kind = PLAN_NEW;
        p->vec = ntexts;
        texts[ntexts++] = ch[i].text;
        canon_add(&x->canon, p->id, p->label, ch[i].simhash);
    }
    if (ntexts) {
        if ((rc = embed_tx(x, texts, ntexts, &vecs, dim, err))) goto out;
        x->counts->embedded += (int64_t)ntexts;
    }
    /* The file row first: the chunks refer to it. */
    qg_val fr[] = {QG_VTEXT(s->path),   QG_VTEXT(qg_doc_format_name(fmt)),
                   QG_VTEXT(s->source), QG_VINT(s->len),
                   QG_VINT(s->mtime),   QG_VTEXT(sha),
                   QG_VINT(nch),        x->user_id ? QG_VTEXT(x->user_id) : QG_VNULL,
                   QG_VINT(now)};
    if ((rc = qg_conn_exec(c,
                           "INSERT INTO doc_files (path, format, source, size, mtime, sha256, "
                           "chunks, uploaded_by, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                           "ON CONFLICT (path) DO UPDATE SET format = excluded.format, source = "
                           "excluded.source, size = excluded.size, mtime = excluded.mtime, "
                           "sha256 = excluded.sha256, chunks = excluded.chunks, uploaded_by = "
                           "excluded.uploaded_by, ingested_at = excluded.ingested_at",
                           fr, 9, NULL, err)))
        goto out;
    for (size_t i = 0; i < nch && !rc; i++) {
        plan *p = &pl[i];
        char sh[17];
        simhash_hex(ch[i].simhash, sh);
        if (p->old) {
            qg_val u[] = {QG_VINT(i),
                          QG_VTEXT(ch[i].heading),
                          QG_VINT(ch[i].line_start),
                          QG_VINT(ch[i].line_end),
                          QG_VTEXT(ch[i].text),
                          QG_VTEXT(sh),
                          QG_VTEXT(p->old->id)};
            rc = qg_conn_exec(c,
                              "UPDATE doc_chunks SET seq = ?, heading = ?, line_start = ?, "
                              "line_end = ?, text = ?, simhash = ? WHERE id = ?",
                              u, 7, NULL, err);
            if (!rc && p->kind == PLAN_REEMBED) {
                rc = store_vector(x, p->old->id, vecs + p->vec * *dim, *dim, err);
                if (!rc) op_push(x, p->old->label, vecs + p->vec * *dim, *dim);
            }
            x->counts->chunks_kept++;
            continue;
        }
        qg_buf vb;
        qg_buf_init(&vb, 1 << 26);
        if (p->kind == PLAN_NEW && (rc = qg_vec_encode(vecs + p->vec * *dim, *dim, &vb))) {
            qg_buf_free(&vb);
            rc = qg_error_set(err, rc, "encoding a vector: %s", qg_status_name(rc));
            break;
        }
        qg_val ins[] = {QG_VTEXT(p->id),
                        QG_VINT(p->label),
                        QG_VTEXT(s->path),
                        QG_VINT(i),
                        QG_VTEXT(ch[i].heading),
                        QG_VINT(ch[i].line_start),
                        QG_VINT(ch[i].line_end),
                        QG_VTEXT(ch[i].text),
                        QG_VTEXT(ch[i].fingerprint),
                        QG_VTEXT(sh),
                        p->kind == PLAN_NEW ? QG_VTEXT(vb.data) : QG_VNULL,
                        p->kind == PLAN_LINK ? QG_VTEXT(p->link) : QG_VNULL,
                        QG_VTEXT(d->embedder),
                        QG_VINT(now)};
        rc = qg_conn_exec(c,
                          "INSERT INTO doc_chunks (id, label, path, seq, heading, line_start, "
                          "line_end, text, fingerprint, simhash, vector, duplicate_of, embedder, "
                          "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          ins, 14, NULL, err);
        qg_buf_free(&vb);
        if (rc) break;
        if (p->kind == PLAN_NEW) {
            op_push(x, p->label, vecs + p->vec * *dim, *dim);
            x->counts->chunks_added++;
        } else {
            x->counts->chunks_linked++;
        }
    }
    if (rc) goto out;
    if ((rc = rehome_orphans(x, gone, ngone, dim, err))) goto out;
    *gen_after = *gen_before + 1;
    if ((rc = meta_set(c, "next_label", next_label, err)) ||
        (rc = meta_set(c, "generation", *gen_after, err)))
        goto out;
out:
    free(vecs);
    free(gone);
    free(texts);
    free(pl);
    free(old.v);
    return rc;
}

static void push_text(const char ***v, size_t *n, size_t *cap, const char *t)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = qg_xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = t;
}

/* Embeds, before the write transaction, the texts a provider will be asked
 * for by ingest_tx (ch: the new version) or by a removal (ch NULL): the
 * same diff as ingest_tx and rehome_orphans, read-only, on a copy of the
 * canonical list. Texts already cached are not sent again. The plan may be
 * stale by the time the transaction runs; see the comment at the top. */
static qg_status prefetch(ingest_ctx *x, const char *path, const qg_chunk *ch, size_t nch,
                          qg_error *err)
{
    qg_docs *d = x->d;
    if (!d->provider) return QG_OK;
    old_list old = {.embedder = d->embedder};
    canon_list cl = {0};
    orphan_list ol = {0};
    const char **want = NULL, **miss = NULL;
    size_t nwant = 0, capwant = 0, nmiss = 0;
    bool *kept = qg_xcalloc(nch ? nch : 1, sizeof *kept);
    float *vecs = NULL;
    qg_val fp[] = {QG_VTEXT(path)};
    qg_status rc = qg_conn_query(x->c,
                                 "SELECT id, label, fingerprint, duplicate_of IS NULL, embedder "
                                 "FROM doc_chunks WHERE path = ? ORDER BY seq",
                                 fp, 1, old_row, &old, err);
    if (rc) goto out;
    if (x->canon.n) {
        cl.v = qg_xmalloc(x->canon.n * sizeof *cl.v);
        memcpy(cl.v, x->canon.v, x->canon.n * sizeof *cl.v);
        cl.n = cl.cap = x->canon.n;
    }
    for (size_t i = 0; i < nch; i++) {
        for (size_t k = 0; k < old.n; k++) {
            if (old.v[k].used || strcmp(old.v[k].fingerprint, ch[i].fingerprint) != 0) continue;
            old.v[k].used = kept[i] = true;
            if (old.v[k].canonical && !old.v[k].same_embedder)
                push_text(&want, &nwant, &capwant, ch[i].text);
            break;
        }
    }
    for (size_t k = 0; k < old.n && !rc; k++) {
        if (old.v[k].used) continue;
        canon_drop(&cl, old.v[k].id);
        qg_val p[] = {QG_VTEXT(old.v[k].id)};
        rc = qg_conn_query(x->c,
                           "SELECT id, label, simhash, text FROM doc_chunks WHERE duplicate_of = ? "
                           "ORDER BY label",
                           p, 1, orphan_row, &ol, err);
    }
    if (rc) goto out;
    /* Orphans that go with this version are not re-homed. */
    for (size_t i = 0; i < ol.n; i++)
        for (size_t k = 0; k < old.n; k++)
            if (!old.v[k].used && strcmp(old.v[k].id, ol.v[i].id) == 0)
                ol.v[i].simhash = 0, ol.v[i].label = -1;
    for (size_t i = 0; i < nch; i++) {
        if (kept[i] || canon_near(&cl, ch[i].simhash)) continue;
        push_text(&want, &nwant, &capwant, ch[i].text);
        canon_add(&cl, "", 0, ch[i].simhash);
    }
    for (size_t i = 0; i < ol.n; i++) {
        if (ol.v[i].label < 0 || canon_near(&cl, ol.v[i].simhash)) continue;
        push_text(&want, &nwant, &capwant, ol.v[i].text);
        canon_add(&cl, "", 0, ol.v[i].simhash);
    }
    miss = qg_xcalloc(nwant ? nwant : 1, sizeof *miss);
    for (size_t i = 0; i < nwant; i++) {
        bool dup = vcache_get(&x->cache, want[i]) != NULL;
        for (size_t k = 0; k < nmiss && !dup; k++) dup = strcmp(miss[k], want[i]) == 0;
        if (!dup) miss[nmiss++] = want[i];
    }
    if (nmiss) {
        pthread_rwlock_rdlock(&d->lock);
        size_t dim = x->cache.dim ? x->cache.dim : d->dim;
        pthread_rwlock_unlock(&d->lock);
        if ((rc = embed_texts(d, miss, nmiss, x->user_id, &vecs, &dim, err))) goto out;
        x->cache.dim = dim;
        for (size_t i = 0; i < nmiss; i++) vcache_put(&x->cache, miss[i], vecs + i * dim);
    }
out:
    free(vecs);
    free(miss);
    free(want);
    free(kept);
    for (size_t i = 0; i < ol.n; i++) free(ol.v[i].text);
    free(ol.v);
    free(cl.v);
    free(old.v);
    return rc;
}

/* After a rolled-back transaction: the canonical list may hold chunks that
 * were rolled back, or miss chunks it dropped. */
static void reload_canon(ingest_ctx *x)
{
    x->canon.n = 0;
    qg_conn_query(x->c, "SELECT id, label, simhash FROM doc_chunks WHERE vector IS NOT NULL", NULL,
                  0, canon_row, &x->canon, NULL);
}

/* Ingests one document's content: unchanged files are skipped. */
static qg_status ingest_one(ingest_ctx *x, const doc_src *s, qg_error *err)
{
    qg_docs *d = x->d;
    qg_doc_format fmt;
    qg_status rc = qg_doc_format_of(s->path, &fmt, err);
    if (rc) return rc;
    x->counts->files_seen++;
    char sha[QG_FINGERPRINT_HEX];
    qg_sha256_hex(s->content, s->len, sha);
    /* Unchanged: same bytes, and every vector made by this embedder. */
    int64_t same = 0, stale = 0;
    qg_val p[] = {QG_VTEXT(s->path), QG_VTEXT(sha)};
    qg_val q[] = {QG_VTEXT(s->path), QG_VTEXT(d->embedder)};
    if ((rc = query_int(x->c, "SELECT COUNT(*) FROM doc_files WHERE path = ? AND sha256 = ?", p, 2,
                        &same, err)) ||
        (rc = query_int(x->c,
                        "SELECT COUNT(*) FROM doc_chunks WHERE path = ? AND vector IS NOT NULL "
                        "AND embedder <> ?",
                        q, 2, &stale, err)))
        return rc;
    if (same && !stale) {
        x->counts->files_unchanged++;
        return QG_OK;
    }
    qg_arena a;
    qg_arena_init(&a, 1 << 16);
    qg_chunk *ch = NULL;
    size_t nch = 0;
    rc = qg_chunk_document(fmt, s->content, s->len, d->chunk_max, &a, &ch, &nch, err);
    if (rc) {
        qg_error_prefix(err, "%s: ", s->path);
        qg_arena_free(&a);
        return rc;
    }
    int64_t gen_before = 0, gen_after = 0;
    size_t dim = 0;
    qg_docs_counts saved = *x->counts;
    for (int round = 0;; round++) {
        x->net_ok = round >= PREFETCH_TRIES;
        x->missed = false;
        pthread_rwlock_rdlock(&d->lock);
        dim = d->dim;
        pthread_rwlock_unlock(&d->lock);
        if (!x->net_ok) rc = prefetch(x, s->path, ch, nch, err);
        if (!rc && !(rc = qg_conn_begin(x->c, err))) {
            rc = ingest_tx(x, s, fmt, sha, ch, nch, &gen_before, &gen_after, &dim, err);
            if (!rc)
                rc = qg_conn_commit(x->c, err);
            else
                qg_conn_rollback(x->c);
        }
        if (rc) {
            *x->counts = saved;
            ops_clear(x);
            reload_canon(x);
        }
        if (!(rc && x->missed)) break;
        rc = QG_OK; /* the database moved since prefetch: start over */
    }
    x->net_ok = x->missed = false;
    vcache_clear(&x->cache);
    qg_arena_free(&a);
    if (rc) return rc;
    x->counts->files_changed++;
    apply_ops(x, gen_before, gen_after, dim);
    return QG_OK;
}

/* Deletes one document with its chunks (orphaned duplicates re-homed). */
static qg_status remove_once(ingest_ctx *x, const char *path, bool *found, qg_error *err)
{
    qg_conn *c = x->c;
    int64_t gen = 0, n = 0;
    qg_val p[] = {QG_VTEXT(path)};
    qg_status rc;
    pthread_rwlock_rdlock(&x->d->lock);
    size_t dim = x->d->dim;
    pthread_rwlock_unlock(&x->d->lock);
    if ((rc = qg_conn_begin(c, err))) return rc;
    old_list old = {.embedder = x->d->embedder};
    const char **gone = NULL;
    if ((rc = query_int(c, "SELECT COUNT(*) FROM doc_files WHERE path = ?", p, 1, &n, err)))
        goto out;
    *found = n > 0;
    if (!n) goto out;
    if ((rc = meta_get(c, "generation", &gen, err)) ||
        (rc = qg_conn_query(c,
                            "SELECT id, label, fingerprint, vector IS NOT NULL, embedder FROM "
                            "doc_chunks WHERE path = ?",
                            p, 1, old_row, &old, err)))
        goto out;
    gone = qg_xcalloc(old.n ? old.n : 1, sizeof *gone);
    for (size_t k = 0; k < old.n; k++) {
        canon_drop(&x->canon, old.v[k].id);
        gone[k] = old.v[k].id;
        op_push(x, old.v[k].label, NULL, 0);
    }
    if ((rc = qg_conn_exec(c, "DELETE FROM doc_chunks WHERE path = ?", p, 1, NULL, err)) ||
        (rc = qg_conn_exec(c, "DELETE FROM doc_files WHERE path = ?", p, 1, NULL, err)) ||
        (rc = rehome_orphans(x, gone, old.n, &dim, err)) ||
        (rc = meta_set(c, "generation", gen + 1, err)))
        goto out;
    rc = qg_conn_commit(c, err);
    if (!rc) {
        x->counts->files_removed++;
        x->counts->chunks_removed += (int64_t)old.n;
        apply_ops(x, gen, gen + 1, dim);
    }
out:
    if (rc || !*found) qg_conn_rollback(c);
    if (rc) ops_clear(x);
    free(gone);
    free(old.v);
    return rc;
}

/* remove_once with the provider's vectors for orphaned duplicates embedded
 * before the transaction (see the comment at the top). */
static qg_status remove_tx(ingest_ctx *x, const char *path, bool *found, qg_error *err)
{
    qg_status rc = QG_OK;
    for (int round = 0;; round++) {
        x->net_ok = round >= PREFETCH_TRIES;
        x->missed = false;
        if (!x->net_ok) rc = prefetch(x, path, NULL, 0, err);
        if (!rc) rc = remove_once(x, path, found, err);
        if (rc) reload_canon(x);
        if (!(rc && x->missed)) break;
        rc = QG_OK;
    }
    x->net_ok = x->missed = false;
    vcache_clear(&x->cache);
    return rc;
}

static qg_status ctx_begin(qg_docs *d, ingest_ctx *x, qg_docs_counts *counts, const char *user_id,
                           qg_error *err)
{
    memset(x, 0, sizeof *x);
    x->d = d;
    x->counts = counts;
    x->user_id = user_id;
    pthread_mutex_lock(&d->ingest);
    qg_status rc = qg_store_acquire(d->store, &x->c, err);
    if (!rc)
        rc = qg_conn_query(x->c,
                           "SELECT id, label, simhash FROM doc_chunks WHERE vector IS NOT NULL",
                           NULL, 0, canon_row, &x->canon, err);
    return rc;
}

static void ctx_end(ingest_ctx *x)
{
    if (x->c) qg_store_release(x->d->store, x->c);
    ops_clear(x);
    free(x->ops);
    free(x->canon.v);
    pthread_mutex_unlock(&x->d->ingest);
}

/* -------------------------------------------------------- files on disk */

typedef struct path_set {
    char **v;
    size_t n, cap;
} path_set;

static void set_add(path_set *s, const char *p)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = qg_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = qg_xstrdup(p);
}

static void set_free(path_set *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool set_has(const path_set *s, const char *p)
{
    return bsearch(&p, s->v, s->n, sizeof *s->v, cmp_str) != NULL;
}

/* Files under dir (recursive, sorted, hidden entries and symlinked
 * directories skipped). Unsupported types are counted as skipped. */
static qg_status walk(const char *dir, int depth, path_set *out, qg_docs_counts *c, qg_error *err)
{
    if (depth > DIR_DEPTH_MAX)
        return qg_error_set(err, QG_EINVAL, "%s: directories nested deeper than %d", dir,
                            DIR_DEPTH_MAX);
    DIR *dh = opendir(dir);
    if (!dh) return qg_error_set(err, QG_EIO, "%s: %s", dir, strerror(errno));
    path_set names = {0};
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.') continue;
        set_add(&names, e->d_name);
    }
    closedir(dh);
    qsort(names.v, names.n, sizeof *names.v, cmp_str);
    qg_status rc = QG_OK;
    for (size_t i = 0; i < names.n && !rc; i++) {
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names.v[i]) >= sizeof path) continue;
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            rc = walk(path, depth + 1, out, c, err);
            continue;
        }
        if (S_ISLNK(st.st_mode) && (stat(path, &st) != 0 || !S_ISREG(st.st_mode))) continue;
        if (!S_ISREG(st.st_mode)) continue;
        qg_doc_format f;
        if (qg_doc_format_of(path, &f, NULL) != QG_OK) {
            c->files_skipped++;
            continue;
        }
        if (out->n >= FILES_MAX) {
            rc = qg_error_set(err, QG_ERANGE, "%s: more than %d documents", dir, FILES_MAX);
            break;
        }
        set_add(out, path);
    }
    set_free(&names);
    return rc;
}

static qg_status ingest_file(ingest_ctx *x, const char *path, qg_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) return qg_error_set(err, QG_EIO, "%s: %s", path, strerror(errno));
    if (st.st_size > (off_t)QG_DOCS_FILE_MAX)
        return qg_error_set(err, QG_ERANGE, "%s: %lld bytes, more than the %u a document may have",
                            path, (long long)st.st_size, QG_DOCS_FILE_MAX);
    char *data = NULL;
    size_t len = 0;
    qg_status rc = qg_file_read_all(path, QG_DOCS_FILE_MAX, &data, &len, err);
    if (rc) return rc;
    doc_src s = {.path = path,
                 .source = "file",
                 .content = data,
                 .len = len,
                 .mtime = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000};
    rc = ingest_one(x, &s, err);
    free(data);
    return rc;
}

static qg_status path_row(void *ud, const qg_row *r)
{
    set_add(ud, qg_row_text(r, 0));
    return QG_OK;
}

/* Indexed files whose path starts with prefix ("/dir/"); an exact path when
 * prefix has no trailing slash. */
static qg_status indexed_under(qg_conn *c, const char *prefix, path_set *out, qg_error *err)
{
    qg_val p[] = {QG_VINT(strlen(prefix)), QG_VTEXT(prefix)};
    return qg_conn_query(c,
                         "SELECT path FROM doc_files WHERE source = 'file' AND "
                         "substr(path, 1, ?) = ? ORDER BY path",
                         p, 2, path_row, out, err);
}

static qg_status ingest_path(ingest_ctx *x, const char *arg, qg_error *err)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(arg, real) || stat(real, &st) != 0) {
        /* Gone: remove what the index still has of it. */
        int e = errno;
        char abs[PATH_MAX];
        if (arg[0] == '/') {
            snprintf(abs, sizeof abs, "%s", arg);
        } else {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
            snprintf(abs, sizeof abs, "%s/%s", cwd, arg);
        }
        size_t n = strlen(abs);
        while (n > 1 && abs[n - 1] == '/') abs[--n] = '\0';
        path_set known = {0};
        char prefix[PATH_MAX + 1];
        snprintf(prefix, sizeof prefix, "%s/", abs);
        qg_status rc = indexed_under(x->c, abs, &known, err);
        size_t removed = 0;
        for (size_t i = 0; i < known.n && !rc; i++) {
            if (strcmp(known.v[i], abs) != 0 && strncmp(known.v[i], prefix, strlen(prefix)) != 0)
                continue;
            bool found = false;
            rc = remove_tx(x, known.v[i], &found, err);
            removed += found;
        }
        set_free(&known);
        if (rc) return rc;
        if (!removed) return qg_error_set(err, QG_ENOTFOUND, "%s: %s", arg, strerror(e));
        return QG_OK;
    }
    if (!S_ISDIR(st.st_mode)) return ingest_file(x, real, err);
    path_set files = {0};
    qg_status rc = walk(real, 0, &files, x->counts, err);
    for (size_t i = 0; i < files.n && !rc; i++) rc = ingest_file(x, files.v[i], err);
    if (!rc) {
        /* Files of this directory that are gone. */
        qsort(files.v, files.n, sizeof *files.v, cmp_str);
        path_set known = {0};
        char prefix[PATH_MAX + 1];
        snprintf(prefix, sizeof prefix, "%s/", strcmp(real, "/") == 0 ? "" : real);
        rc = indexed_under(x->c, prefix, &known, err);
        for (size_t i = 0; i < known.n && !rc; i++) {
            if (set_has(&files, known.v[i])) continue;
            struct stat s2;
            if (stat(known.v[i], &s2) == 0) continue; /* e.g. a hidden file ingested by name */
            bool found = false;
            rc = remove_tx(x, known.v[i], &found, err);
        }
        set_free(&known);
    }
    set_free(&files);
    return rc;
}

qg_status qg_docs_ingest_paths(qg_docs *d, const char *const *paths, size_t n, qg_docs_counts *c,
                               qg_error *err)
{
    ingest_ctx x;
    qg_status rc = ctx_begin(d, &x, c, NULL, err);
    for (size_t i = 0; i < n && !rc; i++) rc = ingest_path(&x, paths[i], err);
    ctx_end(&x);
    return rc;
}

/* ------------------------------------------------------------------ uploads */

qg_status qg_docs_check_upload_path(const char *path, qg_error *err)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0) return qg_error_set(err, QG_EINVAL, "path: must not be empty");
    if (n > 255) return qg_error_set(err, QG_EINVAL, "path: longer than 255 characters");
    if (path[0] == '/' || path[0] == '~')
        return qg_error_set(err, QG_EINVAL,
                            "path '%s': must be relative (a name such as team/guide.md); "
                            "server files cannot be ingested over HTTP",
                            path);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch < 0x20 || ch == 0x7f || ch == '\\' || ch == ':')
            return qg_error_set(err, QG_EINVAL,
                                "path '%s': control characters, '\\' and ':' are not allowed",
                                path);
    }
    const char *seg = path;
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t k = slash ? (size_t)(slash - seg) : strlen(seg);
        if (k == 0 || (k == 1 && seg[0] == '.') || (k == 2 && seg[0] == '.' && seg[1] == '.'))
            return qg_error_set(err, QG_EINVAL,
                                "path '%s': empty, '.' and '..' segments are not allowed", path);
        if (!slash) break;
        seg = slash + 1;
    }
    qg_doc_format f;
    return qg_doc_format_of(path, &f, err);
}

qg_status qg_docs_ingest_uploads(qg_docs *d, const qg_doc_upload *docs, size_t n,
                                 const char *user_id, qg_docs_counts *c, qg_error *err)
{
    qg_status rc = QG_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if ((rc = qg_docs_check_upload_path(docs[i].path, err))) return rc;
        if (docs[i].len > QG_DOCS_FILE_MAX)
            return qg_error_set(err, QG_ERANGE,
                                "%s: %zu bytes, more than the %u a document may have", docs[i].path,
                                docs[i].len, QG_DOCS_FILE_MAX);
    }
    ingest_ctx x;
    rc = ctx_begin(d, &x, c, user_id, err);
    for (size_t i = 0; i < n && !rc; i++) {
        doc_src s = {.path = docs[i].path,
                     .source = "upload",
                     .content = docs[i].content,
                     .len = docs[i].len,
                     .mtime = qg_time_now_ms()};
        rc = ingest_one(&x, &s, err);
    }
    ctx_end(&x);
    return rc;
}

qg_status qg_docs_remove(qg_docs *d, const char *path, qg_docs_counts *c, qg_error *err)
{
    ingest_ctx x;
    qg_docs_counts local = {0};
    qg_status rc = ctx_begin(d, &x, c ? c : &local, NULL, err);
    bool found = false;
    if (!rc) rc = remove_tx(&x, path, &found, err);
    ctx_end(&x);
    if (!rc && !found) rc = qg_error_set(err, QG_ENOTFOUND, "document '%s' not found", path);
    return rc;
}

/* ------------------------------------------------------------------- search */

typedef struct hit_ctx {
    qg_arena *a;
    qg_docs_hit *h;
    bool found;
    qg_docs_loc *locs;
    size_t nlocs, cap;
} hit_ctx;

static const char *adup(qg_arena *a, const char *s)
{
    return qg_arena_strndup(a, s ? s : "", s ? strlen(s) : 0);
}

static qg_status hit_row(void *ud, const qg_row *r)
{
    hit_ctx *x = ud;
    x->found = true;
    x->h->chunk_id = adup(x->a, qg_row_text(r, 0));
    x->h->path = adup(x->a, qg_row_text(r, 1));
    x->h->heading = adup(x->a, qg_row_text(r, 2));
    x->h->line_start = (int)qg_row_int(r, 3);
    x->h->line_end = (int)qg_row_int(r, 4);
    x->h->text = adup(x->a, qg_row_text(r, 5));
    x->h->seq = (int)qg_row_int(r, 6);
    return QG_OK;
}

static qg_status dup_row(void *ud, const qg_row *r)
{
    hit_ctx *x = ud;
    if (x->nlocs == x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 4;
        qg_docs_loc *p = qg_arena_alloc(x->a, ncap * sizeof *p);
        if (x->nlocs) memcpy(p, x->locs, x->nlocs * sizeof *p);
        x->locs = p;
        x->cap = ncap;
    }
    qg_docs_loc *l = &x->locs[x->nlocs++];
    l->path = adup(x->a, qg_row_text(r, 0));
    l->line_start = (int)qg_row_int(r, 1);
    l->line_end = (int)qg_row_int(r, 2);
    return QG_OK;
}

qg_status qg_docs_search(qg_docs *d, const char *query, size_t n, qg_arena *a, qg_docs_hit **out,
                         size_t *nout, qg_error *err)
{
    *out = NULL;
    *nout = 0;
    if (!query || !*query) return qg_error_set(err, QG_EINVAL, "q: must not be empty");
    if (strlen(query) > QG_DOCS_QUERY_MAX)
        return qg_error_set(err, QG_EINVAL, "q: longer than %d characters", QG_DOCS_QUERY_MAX);
    if (n < 1 || n > QG_DOCS_SEARCH_MAX)
        return qg_error_set(err, QG_EINVAL, "n: %zu is not between 1 and %d", n,
                            QG_DOCS_SEARCH_MAX);
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(d->store, &c, err);
    if (rc) return rc;
    float *qv = NULL;
    qg_vhit *hits = qg_xcalloc(n, sizeof *hits);
    size_t nh = 0;
    if ((rc = ensure_fresh(d, c, err))) goto out;
    pthread_rwlock_rdlock(&d->lock);
    size_t dim = d->dim;
    pthread_rwlock_unlock(&d->lock);
    if (!dim) goto out; /* nothing indexed yet */
    if ((rc = embed_texts(d, &query, 1, NULL, &qv, &dim, err))) goto out;
    pthread_rwlock_rdlock(&d->lock);
    if (d->ix && d->dim == dim) rc = qg_vindex_search(d->ix, qv, n, 0, NULL, NULL, hits, &nh, err);
    pthread_rwlock_unlock(&d->lock);
    if (rc) goto out;
    *out = qg_arena_alloc(a, (nh ? nh : 1) * sizeof **out);
    for (size_t i = 0; i < nh && !rc; i++) {
        qg_docs_hit *h = &(*out)[*nout];
        memset(h, 0, sizeof *h);
        hit_ctx x = {.a = a, .h = h};
        qg_val p[] = {QG_VINT((int64_t)hits[i].label)};
        rc = qg_conn_query(c,
                           "SELECT id, path, heading, line_start, line_end, text, seq FROM "
                           "doc_chunks WHERE label = ?",
                           p, 1, hit_row, &x, err);
        if (rc || !x.found) continue; /* deleted since the index was built */
        qg_val dp[] = {QG_VTEXT(h->chunk_id)};
        rc = qg_conn_query(c,
                           "SELECT path, line_start, line_end FROM doc_chunks WHERE "
                           "duplicate_of = ? ORDER BY path, line_start LIMIT 20",
                           dp, 1, dup_row, &x, err);
        h->dups = x.locs;
        h->ndups = x.nlocs;
        h->score = 1.0f - hits[i].dist;
        (*nout)++;
    }
out:
    free(qv);
    free(hits);
    qg_store_release(d->store, c);
    return rc;
}

/* --------------------------------------------------------------------- list */

typedef struct list_ctx {
    qg_arena *a;
    qg_docs_file *v;
    size_t n, cap;
} list_ctx;

static qg_status list_row(void *ud, const qg_row *r)
{
    list_ctx *l = ud;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 32;
        qg_docs_file *p = qg_arena_alloc(l->a, ncap * sizeof *p);
        if (l->n) memcpy(p, l->v, l->n * sizeof *p);
        l->v = p;
        l->cap = ncap;
    }
    qg_docs_file *f = &l->v[l->n++];
    f->path = adup(l->a, qg_row_text(r, 0));
    f->format = adup(l->a, qg_row_text(r, 1));
    f->source = adup(l->a, qg_row_text(r, 2));
    f->size = qg_row_int(r, 3);
    f->mtime = qg_row_int(r, 4);
    f->sha256 = adup(l->a, qg_row_text(r, 5));
    f->chunks = qg_row_int(r, 6);
    f->ingested_at = qg_row_int(r, 7);
    return QG_OK;
}

qg_status qg_docs_list(qg_docs *d, qg_arena *a, qg_docs_file **out, size_t *n, qg_error *err)
{
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(d->store, &c, err);
    if (rc) return rc;
    list_ctx l = {.a = a};
    rc = qg_conn_query(c,
                       "SELECT path, format, source, size, mtime, sha256, chunks, ingested_at "
                       "FROM doc_files ORDER BY path",
                       NULL, 0, list_row, &l, err);
    qg_store_release(d->store, c);
    *out = l.v;
    *n = l.n;
    return rc;
}

/* ---------------------------------------------------------------- lifecycle */

qg_status qg_docs_open(const qg_docs_config *cfg, qg_docs **out, qg_error *err)
{
    *out = NULL;
    bool provider = cfg->embed_model && cfg->embed_model[0] &&
                    strcmp(cfg->embed_model, QG_DOCS_EMBEDDER_HASH) != 0;
    if (provider && !cfg->ai)
        return qg_error_set(err, QG_EINVAL,
                            "QG_DOCS_EMBED_MODEL '%s': provider embeddings need the AI layer",
                            cfg->embed_model);
    size_t max = cfg->chunk_max ? cfg->chunk_max : QG_CHUNK_MAX_DEFAULT;
    if (max < QG_CHUNK_MAX_MIN || max > QG_CHUNK_MAX_MAX)
        return qg_error_set(err, QG_EINVAL, "QG_DOCS_CHUNK_MAX=%zu: must be between %d and %d", max,
                            QG_CHUNK_MAX_MIN, QG_CHUNK_MAX_MAX);
    qg_docs *d = qg_xcalloc(1, sizeof *d);
    d->store = cfg->store;
    d->ai = cfg->ai;
    d->provider = provider;
    d->embedder = qg_xstrdup(provider ? cfg->embed_model : QG_DOCS_EMBEDDER_HASH);
    d->chunk_max = max;
    d->dim = provider ? 0 : QG_EMBED_TEXT_DIM;
    d->gen = -1;
    pthread_mutex_init(&d->ingest, NULL);
    pthread_rwlock_init(&d->lock, NULL);
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(d->store, &c, err);
    if (!rc) {
        pthread_rwlock_wrlock(&d->lock);
        rc = rebuild(d, c, err);
        pthread_rwlock_unlock(&d->lock);
        qg_store_release(d->store, c);
    }
    if (rc) {
        qg_docs_free(d);
        return rc;
    }
    *out = d;
    return QG_OK;
}

void qg_docs_free(qg_docs *d)
{
    if (!d) return;
    qg_vindex_free(d->ix);
    pthread_rwlock_destroy(&d->lock);
    pthread_mutex_destroy(&d->ingest);
    free(d->embedder);
    free(d);
}

cJSON *qg_docs_hits_json(const char *query, const qg_docs_hit *h, size_t n)
{
    cJSON *o = cJSON_CreateObject(), *items = cJSON_CreateArray();
    if (!o || !items) goto fail;
    cJSON_AddStringToObject(o, "query", query);
    cJSON_AddItemToObject(o, "items", items);
    for (size_t i = 0; i < n; i++) {
        cJSON *it = cJSON_CreateObject(), *dups = cJSON_CreateArray();
        if (!it || !dups) {
            cJSON_Delete(it);
            cJSON_Delete(dups);
            goto fail;
        }
        cJSON_AddItemToArray(items, it);
        cJSON_AddStringToObject(it, "path", h[i].path);
        cJSON_AddStringToObject(it, "heading", h[i].heading);
        cJSON_AddNumberToObject(it, "line_start", h[i].line_start);
        cJSON_AddNumberToObject(it, "line_end", h[i].line_end);
        cJSON_AddNumberToObject(it, "score", (double)h[i].score);
        cJSON_AddStringToObject(it, "chunk_id", h[i].chunk_id);
        cJSON_AddStringToObject(it, "text", h[i].text);
        cJSON_AddItemToObject(it, "duplicates", dups);
        for (size_t k = 0; k < h[i].ndups; k++) {
            cJSON *d = cJSON_CreateObject();
            if (!d) goto fail;
            cJSON_AddItemToArray(dups, d);
            cJSON_AddStringToObject(d, "path", h[i].dups[k].path);
            cJSON_AddNumberToObject(d, "line_start", h[i].dups[k].line_start);
            cJSON_AddNumberToObject(d, "line_end", h[i].dups[k].line_end);
        }
    }
    return o;
fail:
    if (!cJSON_GetObjectItemCaseSensitive(o, "items")) cJSON_Delete(items);
    cJSON_Delete(o);
    return NULL;
}

cJSON *qg_docs_counts_json(const qg_docs *d, const qg_docs_counts *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "files_seen", (double)c->files_seen);
    cJSON_AddNumberToObject(o, "files_changed", (double)c->files_changed);
    cJSON_AddNumberToObject(o, "files_unchanged", (double)c->files_unchanged);
    cJSON_AddNumberToObject(o, "files_removed", (double)c->files_removed);
    cJSON_AddNumberToObject(o, "files_skipped", (double)c->files_skipped);
    cJSON_AddNumberToObject(o, "chunks_added", (double)c->chunks_added);
    cJSON_AddNumberToObject(o, "chunks_kept", (double)c->chunks_kept);
    cJSON_AddNumberToObject(o, "chunks_removed", (double)c->chunks_removed);
    cJSON_AddNumberToObject(o, "chunks_linked", (double)c->chunks_linked);
    cJSON_AddNumberToObject(o, "embedded", (double)c->embedded);
    cJSON_AddStringToObject(o, "embedder", qg_docs_embedder(d));
    return o;
}
