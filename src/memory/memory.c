/*
 * memory.c - the memory service (memory.h): collections of embedded items
 * with per-user isolation, kinds, expiry, working memory, and the indexes
 * kept in step with the rows.
 *
 * Layout in memory:
 *  - one mem_coll per collection: its settings, generation, rwlock and
 *    vector index (labels are the rows' global `seq`);
 *  - one slot table shared by all collections, indexed by seq, in pages
 *    that never move: each slot holds what the search filter needs (owner,
 *    kind, symbol, timeframe, signal type, session as interned indices, the
 *    item's time and expiry), so a filter is a few integer comparisons. A
 *    slot is written under its collection's write lock and read under its
 *    read lock;
 *  - an intern table for user ids and metadata strings (mutex): a query
 *    value that was never interned cannot match anything.
 *
 * Invariant: a label is in a collection's index exactly when its row is in
 * memory_items (writes go to the database first, then to the index, both
 * under the collection's writer mutex; only the index change takes the
 * write lock, so a search may miss an item whose row has just committed,
 * as if it had run a moment earlier, but never finds a label without its
 * row except for rows deleted behind the service's back). Rows deleted behind the service's back
 * (a user deleted with ON DELETE CASCADE) leave labels whose rows are gone:
 * searches skip them, and the next start drops them from the snapshot it
 * loads (catch_up).
 */
#include "memory/memory.h"

#include "ai/embed.h"
#include "memory/embed.h"
#include "memory/rowcache.h"

#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE_BITS           12
#define PAGE_SLOTS          (1u << PAGE_BITS)
#define MAX_PAGES           (1u << 15) /* 134M labels */
#define PURGE_EVERY_MS      60000
#define SNAP_GROWTH_DIV     8 /* snapshot after changes of an eighth of a collection at least */
#define DEFAULT_SHORT_TTL   (24 * QG_MS_PER_HOUR)
#define DEFAULT_WORKING_TTL (7 * QG_MS_PER_DAY)

typedef struct mem_slot {
    uint32_t user, symbol, timeframe, signal_type, session; /* interned; 0 none */
    uint16_t coll;
    uint8_t kind;
    uint8_t live;
    int64_t time;    /* ts, else created_at */
    int64_t expires; /* 0: never */
} mem_slot;

typedef struct mem_coll {
    char name[QG_MEM_NAME_MAX + 1];
    char embedder[QG_MEM_EMBEDDER_MAX + 1];
    char description[256];
    size_t dim;
    qg_vmetric metric;
    int64_t generation, created_at;
    /* Written by the background snapshot thread outside c->lock. */
    _Atomic int64_t snapshot_gen;
    _Atomic int64_t snap_failed_gen; /* a background save failed at it; -1 none */
    int64_t count;                   /* rows */
    uint16_t idx;
    qg_vindex *ix; /* NULL until dim is known */
    pthread_rwlock_t lock;
    /* Serialises the collection's writers (add, delete) over their whole
     * change, database transaction included; the write lock is taken only
     * for the in-memory part, so searches never wait for a commit. Lock
     * order: wmu, then lock. */
    pthread_mutex_t wmu;
} mem_coll;

struct qg_memory {
    qg_store *store;
    qg_ai *ai;
    char *snap_dir;
    int64_t short_ttl, working_ttl;
    size_t meta_max;
    qg_vindex_kind index_kind;
    int hnsw_m, hnsw_efc, hnsw_efs; /* resolved (never 0) */

    pthread_rwlock_t colls_lock; /* the list; each collection has its own lock */
    mem_coll *colls[QG_MEM_COLLECTIONS];
    int ncolls;

    pthread_mutex_t page_mu;
    _Atomic(mem_slot *) pages[MAX_PAGES];
    atomic_uint_fast64_t next_seq;

    pthread_mutex_t intern_mu;
    char **istr; /* index -> string; 0 unused */
    uint32_t nstr, capstr;
    uint32_t *ihash; /* open addressing: string index, 0 empty */
    uint32_t hcap;

    /* Background snapshots: writers set bg_pending under bg_mu and signal;
     * snap_mu serialises writing snapshot files (lock order: colls_lock,
     * snap_mu, a collection's lock). */
    int64_t snap_every; /* changes; 0: no background snapshots */
    pthread_mutex_t snap_mu, bg_mu;
    pthread_cond_t bg_cv;
    bool bg_pending, bg_stop, bg_running;
    pthread_t bg_thread;
    atomic_uint_fast64_t bg_snaps;

    atomic_int_fast64_t last_purge;
    atomic_uint_fast64_t searches, search_ns; /* for /metrics */
    qg_rowcache *rows;                        /* rows for searches (NULL: always read them) */
};

static const struct {
    const char *name, *embedder, *description;
} default_colls[] = {
    {"signals", "hash", "signals and their outcomes"},
    {"analyses", "hash", "analyses written by people and agents"},
    {"conversations", "hash", "conversation turns (short-term memory by default)"},
    {"facts", "hash", "facts and preferences about the user (episodic memory)"},
    {"setups", "market", "market setups, embedded as numbers (similar markets)"},
};

/* ---------------------------------------------------------------- names */

static const char *const kind_names[] = {"any", "short", "long", "episodic", "working"};

const char *qg_mem_kind_name(qg_mem_kind k)
{
    return (unsigned)k < 5 ? kind_names[k] : "?";
}

int qg_mem_kind_parse(const char *s)
{
    for (int i = 1; s && i < 5; i++)
        if (!strcmp(s, kind_names[i])) return i;
    return -1;
}

static int64_t now_or(int64_t now)
{
    return now ? now : qg_time_now_ms();
}

/* ---------------------------------------------------------------- intern */

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The index of s, or 0. Caller holds intern_mu. */
static uint32_t intern_find_locked(const qg_memory *m, const char *s)
{
    if (!m->hcap) return 0;
    for (uint32_t i = str_hash(s) & (m->hcap - 1);; i = (i + 1) & (m->hcap - 1)) {
        uint32_t x = m->ihash[i];
        if (!x) return 0;
        if (!strcmp(m->istr[x], s)) return x;
    }
}

static void intern_grow(qg_memory *m)
{
    uint32_t cap = m->hcap ? m->hcap * 2 : 1024;
    uint32_t *h = qg_xcalloc(cap, sizeof *h);
    for (uint32_t x = 1; x < m->nstr; x++) {
        uint32_t i = str_hash(m->istr[x]) & (cap - 1);
        while (h[i]) i = (i + 1) & (cap - 1);
        h[i] = x;
    }
    free(m->ihash);
    m->ihash = h;
    m->hcap = cap;
}

/* The index of s, added when new; 0 for NULL or "". */
static uint32_t intern(qg_memory *m, const char *s)
{
    if (!s || !*s) return 0;
    pthread_mutex_lock(&m->intern_mu);
    uint32_t x = intern_find_locked(m, s);
    if (!x) {
        if ((m->nstr + 1) * 2 > m->hcap) intern_grow(m);
        if (m->nstr == m->capstr) {
            m->capstr = m->capstr ? m->capstr * 2 : 1024;
            m->istr = qg_xrealloc(m->istr, m->capstr * sizeof *m->istr);
        }
        x = m->nstr++;
        m->istr[x] = qg_xstrdup(s);
        uint32_t i = str_hash(s) & (m->hcap - 1);
        while (m->ihash[i]) i = (i + 1) & (m->hcap - 1);
        m->ihash[i] = x;
    }
    pthread_mutex_unlock(&m->intern_mu);
    return x;
}

/* For filters: 0 when s is unset, UINT32_MAX when s was never seen (so
 * nothing matches). */
static uint32_t intern_query(qg_memory *m, const char *s)
{
    if (!s || !*s) return 0;
    pthread_mutex_lock(&m->intern_mu);
    uint32_t x = intern_find_locked(m, s);
    pthread_mutex_unlock(&m->intern_mu);
    return x ? x : UINT32_MAX;
}

/* ---------------------------------------------------------------- slots */

static mem_slot *slot_get(const qg_memory *m, uint64_t label)
{
    uint64_t p = label >> PAGE_BITS;
    if (p >= MAX_PAGES) return NULL;
    mem_slot *page = atomic_load_explicit(&((qg_memory *)m)->pages[p], memory_order_acquire);
    return page ? &page[label & (PAGE_SLOTS - 1)] : NULL;
}

static qg_status slot_make(qg_memory *m, uint64_t label, mem_slot **out, qg_error *err)
{
    uint64_t p = label >> PAGE_BITS;
    if (p >= MAX_PAGES)
        return qg_error_set(err, QG_ERANGE, "memory: item label %llu past the slot table",
                            (unsigned long long)label);
    mem_slot *page = atomic_load_explicit(&m->pages[p], memory_order_acquire);
    if (!page) {
        pthread_mutex_lock(&m->page_mu);
        page = atomic_load_explicit(&m->pages[p], memory_order_acquire);
        if (!page) {
            page = qg_xcalloc(PAGE_SLOTS, sizeof *page);
            atomic_store_explicit(&m->pages[p], page, memory_order_release);
        }
        pthread_mutex_unlock(&m->page_mu);
    }
    *out = &page[label & (PAGE_SLOTS - 1)];
    return QG_OK;
}

/* ---------------------------------------------------------------- validation */

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

/* An optional short text field: NULL is fine; else 1..max bytes, no
 * control characters. */
static qg_status check_field(const char *name, const char *v, size_t max, qg_error *err)
{
    if (!v) return QG_OK;
    size_t n = strlen(v);
    if (n == 0) return qg_error_set(err, QG_EINVAL, "%s: must not be empty", name);
    if (n > max) return qg_error_set(err, QG_EINVAL, "%s: longer than %zu bytes", name, max);
    if (!printable(v))
        return qg_error_set(err, QG_EINVAL, "%s: control characters are not allowed", name);
    return QG_OK;
}

static qg_status check_user(const char *user_id, qg_error *err)
{
    if (!user_id || !*user_id || strlen(user_id) >= QG_ID_MAX)
        return qg_error_set(err, QG_EINVAL, "user_id: required");
    return QG_OK;
}

static bool valid_coll_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > QG_MEM_NAME_MAX || s[0] < 'a' || s[0] > 'z') return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- collections */

/* Caller holds colls_lock (either mode). */
static mem_coll *coll_find_locked(qg_memory *m, const char *name)
{
    for (int i = 0; i < m->ncolls; i++)
        if (!strcmp(m->colls[i]->name, name)) return m->colls[i];
    return NULL;
}

/* Collections are never removed, so the pointer stays valid. */
static mem_coll *coll_find(qg_memory *m, const char *name)
{
    pthread_rwlock_rdlock(&m->colls_lock);
    mem_coll *c = coll_find_locked(m, name);
    pthread_rwlock_unlock(&m->colls_lock);
    return c;
}

/* Writers first: with glibc's default (readers first) a steady stream of
 * searches would keep an add waiting for its index change forever. */
static void coll_lock_init(mem_coll *c)
{
    pthread_rwlockattr_t at;
    pthread_rwlockattr_init(&at);
    pthread_rwlockattr_setkind_np(&at, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->lock, &at);
    pthread_rwlockattr_destroy(&at);
}

static qg_status coll_lookup(qg_memory *m, const char *name, mem_coll **out, qg_error *err)
{
    *out = coll_find(m, name);
    if (!*out)
        return qg_error_set(err, QG_ENOTFOUND, "collection: '%.*s' does not exist", QG_MEM_NAME_MAX,
                            name);
    return QG_OK;
}

static qg_status index_new(qg_memory *m, size_t dim, qg_vmetric metric, qg_vindex **out,
                           qg_error *err)
{
    qg_vindex_params p = {
        .kind = m->index_kind,
        .metric = metric,
        .dim = dim,
        .M = m->hnsw_m,
        .ef_construction = m->hnsw_efc,
        .ef_search = m->hnsw_efs,
        .seed = 0x6d656d6f7279ull,
    };
    qg_status rc = qg_vindex_new(&p, out, err);
    if (rc && p.kind == QG_VINDEX_HNSW) {
        /* A build without the graph index still serves exact searches. */
        qg_warn("memory: HNSW index unavailable (%s); using the flat index", err ? err->msg : "");
        p.kind = QG_VINDEX_FLAT;
        rc = qg_vindex_new(&p, out, err);
    }
    return rc;
}

static void snap_path(const qg_memory *m, const mem_coll *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.qgvx", m->snap_dir, c->name);
}

/* Writes c's snapshot and records its generation. Caller holds c->lock
 * for writing. */
static qg_status coll_snapshot(qg_memory *m, qg_conn *conn, mem_coll *c, qg_error *err)
{
    if (!m->snap_dir || !c->ix) return QG_OK;
    char path[4096];
    snap_path(m, c, path, sizeof path);
    qg_status rc = QG_OK;
    if (qg_vindex_count(c->ix) == 0)
        unlink(path); /* nothing to load: an empty collection starts empty */
    else if ((rc = qg_vindex_save(c->ix, path, err)))
        return rc;
    qg_val p[] = {QG_VINT(c->generation), QG_VTEXT(c->name)};
    rc = qg_conn_exec(conn, "UPDATE memory_collections SET snapshot_gen = ? WHERE name = ?", p, 2,
                      NULL, err);
    if (!rc) c->snapshot_gen = c->generation;
    return rc;
}

/* A background snapshot is due: enough changes since the last snapshot
 * (or since a failed attempt): QG_MEMORY_SNAPSHOT_CHANGES, or an eighth of
 * the collection when that is more. A snapshot rewrites the whole index,
 * so a fixed interval would make the bytes written grow with the square
 * of the collection; with the eighth, each change costs at most about
 * eight items' worth of snapshot, and a start after a crash adds at most
 * an eighth of the items to the snapshot it loads (catch_up). Caller
 * holds c->lock. */
static bool snap_due(const qg_memory *m, const mem_coll *c)
{
    if (!m->snap_every || !c->ix) return false;
    int64_t since = c->snapshot_gen, failed = c->snap_failed_gen;
    if (failed > since) since = failed;
    int64_t every =
        c->count / SNAP_GROWTH_DIV > m->snap_every ? c->count / SNAP_GROWTH_DIV : m->snap_every;
    return c->generation - since >= every;
}

/* Wakes the background thread (no lock of a collection needed). */
static void snap_kick(qg_memory *m)
{
    pthread_mutex_lock(&m->bg_mu);
    m->bg_pending = true;
    pthread_cond_signal(&m->bg_cv);
    pthread_mutex_unlock(&m->bg_mu);
}

/* Writes c's snapshot when due. Only writing the file (into the page
 * cache) holds c's read lock, so searches go on; syncing it to disk and
 * recording the generation come after the lock is released. Holding the
 * lock through the sync stalled the whole pipeline: the rememberer's
 * write lock waited behind it, and every search (the lock prefers
 * writers) behind the rememberer, for the disk's time to take the whole
 * index. A crash before the generation is recorded leaves the old
 * snapshot_gen, which the next start treats as stale (catch_up), never
 * the other way round. */
static void bg_snapshot_coll(qg_memory *m, qg_conn *conn, mem_coll *c)
{
    char path[4096];
    snap_path(m, c, path, sizeof path);
    qg_error e = {0};
    qg_status rc = QG_OK;
    pthread_mutex_lock(&m->snap_mu);
    pthread_rwlock_rdlock(&c->lock);
    int64_t gen = c->generation;
    bool due = snap_due(m, c);
    bool written = false;
    if (due) {
        if (qg_vindex_count(c->ix) == 0)
            unlink(path);
        else
            written = (rc = qg_vindex_write_temp(c->ix, path, &e)) == QG_OK;
    }
    pthread_rwlock_unlock(&c->lock);
    if (written) rc = qg_vindex_publish_temp(path, &e);
    if (due && !rc) {
        qg_val p[] = {QG_VINT(gen), QG_VTEXT(c->name)};
        rc = qg_conn_exec(conn, "UPDATE memory_collections SET snapshot_gen = ? WHERE name = ?", p,
                          2, NULL, &e);
    }
    if (due && !rc) {
        c->snapshot_gen = gen;
        atomic_fetch_add(&m->bg_snaps, 1);
        qg_info("memory: collection '%s': snapshot written at generation %" PRId64, c->name, gen);
    } else if (due) {
        c->snap_failed_gen = gen;
        qg_warn("memory: collection '%s': background snapshot not written (%s); retried after "
                "%" PRId64 " more changes",
                c->name, e.msg, m->snap_every);
    }
    pthread_mutex_unlock(&m->snap_mu);
}

static void *bg_main(void *arg)
{
    qg_memory *m = arg;
    pthread_setname_np(pthread_self(), "qg-memsnap");
    pthread_mutex_lock(&m->bg_mu);
    for (;;) {
        while (!m->bg_stop && !m->bg_pending) pthread_cond_wait(&m->bg_cv, &m->bg_mu);
        if (m->bg_stop) break;
        m->bg_pending = false;
        pthread_mutex_unlock(&m->bg_mu);
        qg_conn *conn = NULL;
        qg_error e = {0};
        if (qg_store_acquire(m->store, &conn, &e) == QG_OK) {
            pthread_rwlock_rdlock(&m->colls_lock);
            for (int i = 0; i < m->ncolls; i++) bg_snapshot_coll(m, conn, m->colls[i]);
            pthread_rwlock_unlock(&m->colls_lock);
            qg_store_release(m->store, conn);
        } else {
            qg_warn("memory: background snapshots: %s", e.msg);
        }
        pthread_mutex_lock(&m->bg_mu);
    }
    pthread_mutex_unlock(&m->bg_mu);
    return NULL;
}

uint64_t qg_memory_bg_snapshots(qg_memory *m)
{
    return atomic_load(&m->bg_snaps);
}

typedef struct rebuild_ctx {
    qg_memory *m;
    mem_coll *c;
    float *v;
    qg_error *err;
    size_t n;
} rebuild_ctx;

static qg_status rebuild_row(void *ud, const qg_row *row)
{
    rebuild_ctx *x = ud;
    uint64_t label = (uint64_t)qg_row_int(row, 0);
    qg_status rc = qg_vec_decode(qg_row_text(row, 1), x->v, x->c->dim, x->err);
    if (rc) {
        qg_error_prefix(x->err, "memory item seq %llu", (unsigned long long)label);
        return rc;
    }
    x->n++;
    return qg_vindex_add(x->c->ix, label, x->v, x->err);
}

static qg_status coll_rebuild(qg_memory *m, qg_conn *conn, mem_coll *c, qg_error *err)
{
    if (c->ix) qg_vindex_free(c->ix);
    c->ix = NULL;
    qg_status rc = index_new(m, c->dim, c->metric, &c->ix, err);
    if (rc) return rc;
    rebuild_ctx x = {.m = m, .c = c, .v = qg_xmalloc(c->dim * sizeof(float)), .err = err};
    qg_val p[] = {QG_VTEXT(c->name)};
    rc = qg_conn_query(conn,
                       "SELECT seq, vector FROM memory_items WHERE collection = ? ORDER BY seq", p,
                       1, rebuild_row, &x, err);
    free(x.v);
    if (rc) return rc;
    qg_info("memory: collection '%s': index rebuilt from %zu rows", c->name, x.n);
    return QG_OK;
}

/* True when the snapshot was built with this collection's shape and the
 * index settings in force (its items are reconciled by catch_up). */
static bool snapshot_fits(qg_memory *m, const mem_coll *c, const qg_vindex *ix, const char **why)
{
    const qg_vindex_params *p = qg_vindex_get_params(ix);
    if (p->dim != c->dim || p->metric != c->metric) return *why = "dimension or metric", false;
    if (p->kind != m->index_kind) return *why = "index kind", false;
    if (p->kind == QG_VINDEX_HNSW &&
        (p->M != m->hnsw_m || p->ef_construction != m->hnsw_efc || p->ef_search != m->hnsw_efs))
        return *why = "HNSW settings", false;
    return true;
}

/* Adds a row the snapshot lacks (rows it has are skipped). */
static qg_status catch_up_row(void *ud, const qg_row *row)
{
    rebuild_ctx *x = ud;
    if (qg_vindex_contains(x->c->ix, (uint64_t)qg_row_int(row, 0))) return QG_OK;
    return rebuild_row(ud, row);
}

/* Brings a loaded snapshot up to the rows: the labels of rows deleted
 * since it was written leave the index, the rows written since are added
 * (labels are never reused, so a label's vector never changes). Returns
 * QG_EAGAIN when more than half the items are missing: a rebuild is then
 * as cheap and gives a better graph. */
static qg_status catch_up(qg_memory *m, qg_conn *conn, mem_coll *c, size_t *added, size_t *removed,
                          qg_error *err)
{
    uint64_t top = atomic_load(&m->next_seq), first_missing = 0;
    size_t missing = 0;
    *added = *removed = 0;
    for (uint64_t l = 1; l < top; l++) {
        const mem_slot *s = slot_get(m, l);
        bool live = s && s->live && s->coll == c->idx, indexed = qg_vindex_contains(c->ix, l);
        if (indexed && !live) {
            qg_vindex_remove(c->ix, l);
            (*removed)++;
        } else if (live && !indexed) {
            if (!missing++) first_missing = l;
        }
    }
    if (missing == 0) return QG_OK;
    if (missing > (size_t)c->count / 2) return QG_EAGAIN;
    rebuild_ctx x = {.m = m, .c = c, .v = qg_xmalloc(c->dim * sizeof(float)), .err = err};
    qg_val p[] = {QG_VTEXT(c->name), QG_VINT((int64_t)first_missing)};
    qg_status rc = qg_conn_query(conn,
                                 "SELECT seq, vector FROM memory_items WHERE collection = ? AND "
                                 "seq >= ? ORDER BY seq",
                                 p, 2, catch_up_row, &x, err);
    free(x.v);
    *added = x.n;
    return rc;
}

static qg_status coll_load(qg_memory *m, qg_conn *conn, mem_coll *c, qg_error *err)
{
    if (!c->dim) return QG_OK; /* a model collection before its first item */
    if (c->count == 0) return index_new(m, c->dim, c->metric, &c->ix, err);
    if (m->snap_dir) {
        char path[4096];
        snap_path(m, c, path, sizeof path);
        qg_vindex *ix = NULL;
        qg_error e = {0};
        const char *why = NULL;
        if (qg_vindex_load(path, &ix, &e) == QG_OK) {
            size_t loaded = qg_vindex_count(ix), added = 0, removed = 0;
            qg_status crc = QG_OK;
            if (snapshot_fits(m, c, ix, &why)) {
                c->ix = ix;
                crc = catch_up(m, conn, c, &added, &removed, &e);
                if (!crc && (int64_t)qg_vindex_count(c->ix) == c->count) {
                    qg_info("memory: collection '%s': %zu items loaded from its snapshot, %zu "
                            "added and %zu removed since",
                            c->name, loaded, added, removed);
                    return QG_OK;
                }
                why = crc == QG_EAGAIN ? "more than half of the items are newer"
                      : crc            ? e.msg
                                       : "item count";
                c->ix = NULL;
            }
            qg_warn("memory: snapshot %s does not match the database (%s); rebuilding", path, why);
            qg_vindex_free(ix);
        } else {
            qg_warn("memory: snapshot %s unusable (%s); rebuilding", path, e.msg);
        }
    }
    qg_status rc = coll_rebuild(m, conn, c, err);
    if (rc) return rc;
    if (m->snap_dir && (rc = coll_snapshot(m, conn, c, err))) {
        qg_warn("memory: collection '%s': cannot write the snapshot: %s", c->name, err->msg);
        rc = QG_OK;
    }
    return rc;
}

static mem_coll *coll_new(qg_memory *m, const qg_row *row)
{
    mem_coll *c = qg_xcalloc(1, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", qg_row_text(row, 0));
    snprintf(c->embedder, sizeof c->embedder, "%s", qg_row_text(row, 1));
    c->dim = (size_t)qg_row_int(row, 2);
    int metric = qg_vmetric_parse(qg_row_text(row, 3));
    c->metric = metric < 0 ? QG_VMETRIC_COSINE : (qg_vmetric)metric;
    snprintf(c->description, sizeof c->description, "%s",
             qg_row_text(row, 4) ? qg_row_text(row, 4) : "");
    c->generation = qg_row_int(row, 5);
    c->snapshot_gen = qg_row_is_null(row, 6) ? -1 : qg_row_int(row, 6);
    c->snap_failed_gen = -1;
    c->created_at = qg_row_int(row, 7);
    c->idx = (uint16_t)(m->ncolls + 1);
    coll_lock_init(c);
    pthread_mutex_init(&c->wmu, NULL);
    return c;
}

static qg_status load_coll_row(void *ud, const qg_row *row)
{
    qg_memory *m = ud;
    if (m->ncolls == QG_MEM_COLLECTIONS) return QG_ERANGE;
    m->colls[m->ncolls] = coll_new(m, row);
    m->ncolls++;
    return QG_OK;
}

#define ITEM_META_COLS                                                                             \
    "seq, collection, user_id, kind, symbol, timeframe, signal_type, session, ts, created_at, "    \
    "expires_at"

static qg_status load_slot_row(void *ud, const qg_row *row)
{
    qg_memory *m = ud;
    uint64_t label = (uint64_t)qg_row_int(row, 0);
    mem_coll *c = coll_find_locked(m, qg_row_text(row, 1));
    if (!c) return QG_OK; /* ON DELETE CASCADE keeps this from happening */
    mem_slot *s;
    qg_status rc = slot_make(m, label, &s, NULL);
    if (rc) return rc;
    int kind = qg_mem_kind_parse(qg_row_text(row, 3));
    *s = (mem_slot){
        .user = intern(m, qg_row_text(row, 2)),
        .symbol = intern(m, qg_row_text(row, 4)),
        .timeframe = intern(m, qg_row_text(row, 5)),
        .signal_type = intern(m, qg_row_text(row, 6)),
        .session = intern(m, qg_row_text(row, 7)),
        .coll = c->idx,
        .kind = (uint8_t)(kind <= 0 ? QG_MEM_LONG : kind),
        .live = 1,
        .time = qg_row_is_null(row, 8) ? qg_row_int(row, 9) : qg_row_int(row, 8),
        .expires = qg_row_is_null(row, 10) ? 0 : qg_row_int(row, 10),
    };
    c->count++;
    if (label + 1 > atomic_load(&m->next_seq)) atomic_store(&m->next_seq, label + 1);
    return QG_OK;
}

static qg_status seed_defaults(qg_conn *conn, qg_error *err)
{
    int64_t now = qg_time_now_ms();
    for (size_t i = 0; i < sizeof default_colls / sizeof default_colls[0]; i++) {
        bool market = !strcmp(default_colls[i].embedder, "market");
        qg_val p[] = {QG_VTEXT(default_colls[i].name),
                      QG_VTEXT(default_colls[i].embedder),
                      QG_VINT(market ? QG_EMBED_MARKET_DIM : QG_EMBED_TEXT_DIM),
                      QG_VTEXT(default_colls[i].description),
                      QG_VINT(now),
                      QG_VINT(now)};
        qg_status rc = qg_conn_exec(conn,
                                    "INSERT INTO memory_collections (name, embedder, dim, metric, "
                                    "description, created_at, updated_at) VALUES (?, ?, ?, "
                                    "'cosine', ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                                    p, 6, NULL, err);
        if (rc) return rc;
    }
    return QG_OK;
}

static qg_status open_with(qg_memory *m, qg_conn *conn, qg_error *err)
{
    qg_status rc = seed_defaults(conn, err);
    if (rc) return rc;
    rc = qg_conn_query(conn,
                       "SELECT name, embedder, dim, metric, description, generation, "
                       "snapshot_gen, created_at FROM memory_collections ORDER BY name",
                       NULL, 0, load_coll_row, m, err);
    if (rc == QG_ERANGE)
        return qg_error_set(err, QG_ERANGE, "memory: more than %d collections", QG_MEM_COLLECTIONS);
    if (rc) return rc;
    rc = qg_conn_query(conn, "SELECT " ITEM_META_COLS " FROM memory_items", NULL, 0, load_slot_row,
                       m, err);
    if (rc) return rc;
    for (int i = 0; i < m->ncolls && !rc; i++) rc = coll_load(m, conn, m->colls[i], err);
    return rc;
}

qg_status qg_memory_open(const qg_memory_config *cfg, qg_memory **out, qg_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->store) return qg_error_set(err, QG_EINVAL, "memory: a store is required");
    qg_memory *m = qg_xcalloc(1, sizeof *m);
    m->store = cfg->store;
    m->ai = cfg->ai;
    m->short_ttl = cfg->short_ttl_ms > 0 ? cfg->short_ttl_ms : DEFAULT_SHORT_TTL;
    m->working_ttl = cfg->working_ttl_ms ? cfg->working_ttl_ms : DEFAULT_WORKING_TTL;
    m->meta_max = cfg->meta_max ? cfg->meta_max : 4096;
    m->index_kind = cfg->index_kind;
    /* Resolved once: new indexes get them, and a snapshot must match them. */
    qg_vindex_params hp =
        qg_vindex_resolve_params(&(qg_vindex_params){.M = cfg->hnsw_m,
                                                     .ef_construction = cfg->hnsw_ef_construction,
                                                     .ef_search = cfg->hnsw_ef_search});
    m->hnsw_m = hp.M;
    m->hnsw_efc = hp.ef_construction;
    m->hnsw_efs = hp.ef_search;
    pthread_rwlock_init(&m->colls_lock, NULL);
    pthread_mutex_init(&m->page_mu, NULL);
    pthread_mutex_init(&m->intern_mu, NULL);
    pthread_mutex_init(&m->snap_mu, NULL);
    pthread_mutex_init(&m->bg_mu, NULL);
    pthread_cond_init(&m->bg_cv, NULL);
    m->snap_every = cfg->snapshot_changes < 0   ? 0
                    : cfg->snapshot_changes > 0 ? cfg->snapshot_changes
                                                : QG_MEMORY_SNAPSHOT_CHANGES_DEFAULT;
    if (!cfg->snapshot_dir) m->snap_every = 0;
    m->rows = qg_rowcache_new(cfg->row_cache < 0   ? 0
                              : cfg->row_cache > 0 ? (size_t)cfg->row_cache
                                                   : QG_MEMORY_ROW_CACHE_DEFAULT);
    m->nstr = 1; /* index 0 means "none" */
    m->capstr = 1024;
    m->istr = qg_xcalloc(m->capstr, sizeof *m->istr);
    atomic_store(&m->next_seq, 1);
    qg_status rc = QG_OK;
    if (cfg->snapshot_dir) {
        m->snap_dir = qg_xstrdup(cfg->snapshot_dir);
        if (mkdir(m->snap_dir, 0700) != 0 && errno != EEXIST) {
            rc = qg_error_set(err, QG_EIO, "memory snapshot directory '%s': %s", m->snap_dir,
                              strerror(errno));
            goto out;
        }
    }
    qg_conn *conn = NULL;
    if ((rc = qg_store_acquire(m->store, &conn, err))) goto out;
    rc = open_with(m, conn, err);
    qg_store_release(m->store, conn);
    if (!rc && m->snap_every) {
        int e = pthread_create(&m->bg_thread, NULL, bg_main, m);
        if (e)
            rc = qg_error_set(err, QG_EIO, "memory: background snapshot thread: %s", strerror(e));
        else
            m->bg_running = true;
    }
out:
    if (rc) {
        qg_memory_free(m);
        return rc;
    }
    *out = m;
    return QG_OK;
}

qg_status qg_memory_snapshot(qg_memory *m, qg_error *err)
{
    if (!m->snap_dir) return QG_OK;
    qg_conn *conn = NULL;
    qg_status rc = qg_store_acquire(m->store, &conn, err);
    if (rc) return rc;
    pthread_rwlock_rdlock(&m->colls_lock);
    for (int i = 0; i < m->ncolls; i++) {
        mem_coll *c = m->colls[i];
        qg_error e = {0};
        qg_status one = QG_OK;
        pthread_mutex_lock(&m->snap_mu);
        pthread_rwlock_wrlock(&c->lock);
        if (c->ix && c->generation != c->snapshot_gen) one = coll_snapshot(m, conn, c, &e);
        pthread_rwlock_unlock(&c->lock);
        pthread_mutex_unlock(&m->snap_mu);
        if (one && !rc) { /* the others are still written */
            rc = one;
            if (err) *err = e;
        }
    }
    pthread_rwlock_unlock(&m->colls_lock);
    qg_store_release(m->store, conn);
    return rc;
}

void qg_memory_free(qg_memory *m)
{
    if (!m) return;
    if (m->bg_running) {
        pthread_mutex_lock(&m->bg_mu);
        m->bg_stop = true;
        pthread_cond_signal(&m->bg_cv);
        pthread_mutex_unlock(&m->bg_mu);
        pthread_join(m->bg_thread, NULL);
    }
    qg_error err = {0};
    if (m->ncolls && qg_memory_snapshot(m, &err))
        qg_warn("memory: snapshots not written (%s); the next start rebuilds", err.msg);
    for (int i = 0; i < m->ncolls; i++) {
        qg_vindex_free(m->colls[i]->ix);
        pthread_rwlock_destroy(&m->colls[i]->lock);
        pthread_mutex_destroy(&m->colls[i]->wmu);
        free(m->colls[i]);
    }
    for (uint32_t p = 0; p < MAX_PAGES; p++) free(atomic_load(&m->pages[p]));
    for (uint32_t i = 1; i < m->nstr; i++) free(m->istr[i]);
    free(m->istr);
    free(m->ihash);
    free(m->snap_dir);
    qg_rowcache_free(m->rows);
    pthread_rwlock_destroy(&m->colls_lock);
    pthread_mutex_destroy(&m->page_mu);
    pthread_mutex_destroy(&m->intern_mu);
    pthread_mutex_destroy(&m->snap_mu);
    pthread_mutex_destroy(&m->bg_mu);
    pthread_cond_destroy(&m->bg_cv);
    free(m);
}

/* ---------------------------------------------------------------- embedding */

typedef struct embed_in {
    const char *user_id, *token_id, *text;
    const cJSON *setup;
    const float *vector;
    bool for_search;
} embed_in;

static bool all_zero(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != 0.0f) return false;
    return true;
}

/* The vector of in for collection c, in a. Reads only c's immutable
 * embedder and (for given vectors) its dim, so no lock is needed except
 * for the dim, read under the caller's care. */
static qg_status embed_for(qg_memory *m, const mem_coll *c, size_t cur_dim, const embed_in *in,
                           qg_arena *a, float **out, size_t *dim, qg_error *err)
{
    const char *text_field = in->for_search ? "q" : "text";
    if (in->vector) {
        if (!cur_dim)
            return qg_error_set(err, QG_EINVAL,
                                "vector: collection '%s' has no dimension yet (add by text first)",
                                c->name);
        *out = (float *)in->vector;
        *dim = cur_dim;
        return QG_OK;
    }
    bool market = !strcmp(c->embedder, "market");
    if (in->setup) {
        if (!market)
            return qg_error_set(err, QG_EINVAL,
                                "setup: collection '%s' embeds text (%s), not market setups",
                                c->name, c->embedder);
        float *v = qg_arena_alloc(a, QG_EMBED_MARKET_DIM * sizeof(float));
        if (!v) return qg_error_set(err, QG_ENOMEM, "memory: out of memory");
        qg_status rc = qg_embed_market_json(in->setup, v, err);
        if (rc) {
            if (err && strncmp(err->msg, "setup", 5)) qg_error_prefix(err, "setup");
            return rc;
        }
        *out = v;
        *dim = QG_EMBED_MARKET_DIM;
        return QG_OK;
    }
    if (market)
        return qg_error_set(err, QG_EINVAL,
                            "setup: required for collection '%s' (its embedder is market)",
                            c->name);
    if (!in->text || !*in->text)
        return qg_error_set(err, QG_EINVAL, "%s: required (the text to embed)", text_field);
    if (!strcmp(c->embedder, "hash")) {
        float *v = qg_arena_alloc(a, QG_EMBED_TEXT_DIM * sizeof(float));
        if (!v) return qg_error_set(err, QG_ENOMEM, "memory: out of memory");
        qg_embed_text(in->text, strlen(in->text), v);
        if (all_zero(v, QG_EMBED_TEXT_DIM))
            return qg_error_set(err, QG_EINVAL, "%s: has no words to embed", text_field);
        *out = v;
        *dim = QG_EMBED_TEXT_DIM;
        return QG_OK;
    }
    if (!strncmp(c->embedder, "model:", 6)) {
        if (!m->ai)
            return qg_error_set(err, QG_EINVAL,
                                "collection '%s': provider embeddings are not available here",
                                c->name);
        const char *inputs[1] = {in->text};
        qg_ai_embed_call call = {.user_id = in->user_id,
                                 .token_id = in->token_id,
                                 .model = c->embedder + 6,
                                 .inputs = inputs,
                                 .n_inputs = 1};
        qg_ai_embed_result res = {0};
        qg_status rc = qg_ai_embed(m->ai, &call, a, &res, err);
        if (rc) return rc;
        if (res.n != 1 || !res.dim || !res.vectors)
            return qg_error_set(err, QG_EAGAIN, "model '%s' returned no embedding", call.model);
        if (cur_dim && res.dim != cur_dim)
            return qg_error_set(err, QG_EAGAIN,
                                "model '%s' returned %zu dimensions; collection '%s' has %zu",
                                call.model, res.dim, c->name, cur_dim);
        *out = res.vectors;
        *dim = res.dim;
        return QG_OK;
    }
    return qg_error_set(err, QG_EINTERNAL, "collection '%s': unknown embedder '%s'", c->name,
                        c->embedder);
}

static size_t coll_dim(mem_coll *c)
{
    pthread_rwlock_rdlock(&c->lock);
    size_t d = c->dim;
    pthread_rwlock_unlock(&c->lock);
    return d;
}

/* ---------------------------------------------------------------- add */

static qg_status bump_generation(qg_conn *conn, mem_coll *c, int64_t now, qg_error *err)
{
    qg_val p[] = {QG_VINT(now), QG_VTEXT(c->name)};
    return qg_conn_exec(conn,
                        "UPDATE memory_collections SET generation = generation + 1, "
                        "updated_at = ? WHERE name = ?",
                        p, 2, NULL, err);
}

static qg_status normalise_meta(const char *meta, size_t max, qg_arena *a, const char **out,
                                qg_error *err)
{
    *out = "{}";
    if (!meta) return QG_OK;
    cJSON *j = cJSON_Parse(meta);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return qg_error_set(err, QG_EINVAL, "meta: must be a JSON object");
    }
    char *s = qg_json_compact(j);
    cJSON_Delete(j);
    if (!s) return qg_error_set(err, QG_ENOMEM, "meta: out of memory");
    size_t n = strlen(s);
    qg_status rc = QG_OK;
    if (n > max)
        rc = qg_error_set(err, QG_EINVAL, "meta: %zu bytes as JSON; at most %zu", n, max);
    else if (!(*out = qg_arena_strndup(a, s, n)))
        rc = qg_error_set(err, QG_ENOMEM, "meta: out of memory");
    free(s);
    return rc;
}

static qg_status check_add(const qg_mem_add *in, qg_error *err)
{
    qg_status rc;
    if ((rc = check_user(in->user_id, err))) return rc;
    if ((unsigned)in->kind > QG_MEM_EPISODIC)
        return qg_error_set(err, QG_EINVAL,
                            "kind: must be short, long or episodic (working memory is keyed: "
                            "use the working calls)");
    if (!in->collection && (in->kind == QG_MEM_LONG || in->kind == QG_MEM_ANY))
        return qg_error_set(err, QG_EINVAL, "collection: required for long-term items");
    if (in->text && strlen(in->text) > QG_MEM_TEXT_MAX)
        return qg_error_set(err, QG_EINVAL, "text: longer than %d bytes", QG_MEM_TEXT_MAX);
    if (!in->text && !in->setup && !in->vector)
        return qg_error_set(err, QG_EINVAL, "text: required");
    if ((rc = check_field("symbol", in->symbol, QG_MEM_FIELD_MAX, err)) ||
        (rc = check_field("timeframe", in->timeframe, QG_MEM_FIELD_MAX, err)) ||
        (rc = check_field("signal_type", in->signal_type, QG_MEM_FIELD_MAX, err)) ||
        (rc = check_field("session", in->session, QG_MEM_SESSION_MAX, err)))
        return rc;
    if (in->ts < 0) return qg_error_set(err, QG_EINVAL, "ts: must not be negative");
    if (in->ttl_ms < 0) return qg_error_set(err, QG_EINVAL, "ttl_s: must be positive");
    return QG_OK;
}

static const char *setup_str(const cJSON *setup, const char *name)
{
    const cJSON *j = setup ? cJSON_GetObjectItemCaseSensitive(setup, name) : NULL;
    return cJSON_IsString(j) && j->valuestring[0] ? j->valuestring : NULL;
}

/* One memory_items row as written, for the direct and the batched add. */
typedef struct item_row {
    const char *id;
    uint64_t seq;
    const char *user_id, *text, *symbol, *timeframe, *signal_type, *session, *meta;
    const char *vector; /* encoded */
    qg_mem_kind kind;
    int64_t ts, now, expires;
} item_row;

/* A new row as searches read it, for the row cache. */
static void cache_new_row(qg_memory *m, const mem_coll *c, const item_row *r)
{
    qg_mem_item it = {.collection = c->name,
                      .kind = r->kind,
                      .text = r->text,
                      .symbol = r->symbol,
                      .timeframe = r->timeframe,
                      .signal_type = r->signal_type,
                      .session = r->session,
                      .ts = r->ts,
                      .meta_json = r->meta ? r->meta : "{}",
                      .created_at = r->now,
                      .expires_at = r->expires};
    snprintf(it.id, sizeof it.id, "%s", r->id);
    qg_rowcache_put(m->rows, r->seq, r->user_id, &it);
}

/* The row and its collection's new generation (inside the caller's
 * transaction). */
static qg_status insert_row(qg_conn *conn, mem_coll *c, const item_row *r, qg_error *err)
{
    qg_val p[] = {QG_VTEXT(r->id),
                  QG_VINT(r->seq),
                  QG_VTEXT(r->user_id),
                  QG_VTEXT(c->name),
                  QG_VTEXT(qg_mem_kind_name(r->kind)),
                  QG_VTEXT(r->text),
                  QG_VTEXT(r->symbol),
                  QG_VTEXT(r->timeframe),
                  QG_VTEXT(r->signal_type),
                  QG_VTEXT(r->session),
                  r->ts ? QG_VINT(r->ts) : QG_VNULL,
                  QG_VTEXT(r->meta),
                  QG_VTEXT(r->vector),
                  QG_VINT(r->now),
                  QG_VINT(r->now),
                  r->expires ? QG_VINT(r->expires) : QG_VNULL};
    qg_status rc =
        qg_conn_exec(conn,
                     "INSERT INTO memory_items (id, seq, user_id, collection, kind, text, symbol, "
                     "timeframe, signal_type, session, ts, meta, vector, created_at, updated_at, "
                     "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     p, 16, NULL, err);
    if (!rc) rc = bump_generation(conn, c, r->now, err);
    return rc;
}

/* The slot of a committed row. Interned outside the write lock (the
 * intern table has its own). */
static mem_slot slot_of(qg_memory *m, const mem_coll *c, const item_row *r)
{
    return (mem_slot){
        .user = intern(m, r->user_id),
        .symbol = intern(m, r->symbol),
        .timeframe = intern(m, r->timeframe),
        .signal_type = intern(m, r->signal_type),
        .session = intern(m, r->session),
        .coll = c->idx,
        .kind = (uint8_t)r->kind,
        .live = 1,
        .time = r->ts ? r->ts : r->now,
        .expires = r->expires,
    };
}

/* The row and the index entry. Caller holds c->wmu (so c->dim and c->ix
 * change only here); the database transaction runs without c->lock, which
 * is taken for the in-memory change only. */
static qg_status add_locked(qg_memory *m, qg_conn *conn, mem_coll *c, const qg_mem_add *in,
                            const float *v, size_t dim, const char *meta, const char *id,
                            int64_t now, int64_t expires, const char *signal_type,
                            const char *session, bool *snap, qg_error *err)
{
    qg_status rc = QG_OK;
    bool learned = false;
    if (!c->dim) {
        learned = true; /* a model collection's first item fixes the dimension */
    } else if (dim != c->dim) {
        return qg_error_set(err, QG_EINVAL, "vector: %zu dimensions; collection '%s' has %zu", dim,
                            c->name, c->dim);
    }
    qg_vindex *fresh = NULL;
    if (learned && (rc = index_new(m, dim, c->metric, &fresh, err))) return rc;
    qg_buf vb;
    qg_buf_init(&vb, dim * 8 + 64);
    if ((rc = qg_vec_encode(v, dim, &vb))) goto out;
    uint64_t seq = atomic_fetch_add(&m->next_seq, 1);
    mem_slot *slot;
    if ((rc = slot_make(m, seq, &slot, err))) goto out;
    if ((rc = qg_conn_begin(conn, err))) goto out;
    item_row row = {.id = id,
                    .seq = seq,
                    .user_id = in->user_id,
                    .text = in->text ? in->text : "",
                    .symbol = in->symbol,
                    .timeframe = in->timeframe,
                    .signal_type = signal_type,
                    .session = session,
                    .meta = meta,
                    .vector = vb.data,
                    .kind = in->kind,
                    .ts = in->ts,
                    .now = now,
                    .expires = expires};
    rc = insert_row(conn, c, &row, err);
    if (!rc && learned) {
        qg_val d[] = {QG_VINT(dim), QG_VTEXT(c->name)};
        rc = qg_conn_exec(conn, "UPDATE memory_collections SET dim = ? WHERE name = ?", d, 2, NULL,
                          err);
    }
    if (rc) {
        qg_conn_rollback(conn);
        goto out;
    }
    if ((rc = qg_conn_commit(conn, err))) goto out;
    mem_slot fill = slot_of(m, c, &row);
    pthread_rwlock_wrlock(&c->lock);
    if (learned) {
        c->dim = dim;
        c->ix = fresh;
        fresh = NULL;
    }
    *slot = fill;
    c->generation++;
    c->count++;
    rc = qg_vindex_add(c->ix, seq, v, err);
    if (rc) slot->live = 0;
    *snap = snap_due(m, c);
    pthread_rwlock_unlock(&c->lock);
    if (!rc) cache_new_row(m, c, &row);
    if (rc) {
        /* Keep the invariant: no row without its index entry. */
        qg_err("memory: cannot index item %s (%s); removing its row", id, err ? err->msg : "");
        qg_val d[] = {QG_VTEXT(id)};
        if (!qg_conn_exec(conn, "DELETE FROM memory_items WHERE id = ?", d, 1, NULL, NULL)) {
            pthread_rwlock_wrlock(&c->lock);
            c->count--;
            pthread_rwlock_unlock(&c->lock);
        }
    }
out:
    if (fresh) qg_vindex_free(fresh);
    qg_buf_free(&vb);
    return rc;
}

static void maybe_purge(qg_memory *m, qg_conn *conn, int64_t now)
{
    int64_t last = atomic_load(&m->last_purge);
    if (now - last < PURGE_EVERY_MS && now >= last) return;
    if (!atomic_compare_exchange_strong(&m->last_purge, &last, now)) return;
    qg_error e = {0};
    if (qg_memory_purge(m, conn, now, NULL, &e)) qg_warn("memory: purge failed: %s", e.msg);
}

qg_status qg_memory_add(qg_memory *m, qg_conn *conn, const qg_mem_add *in, char *id_out,
                        qg_error *err)
{
    qg_status rc = check_add(in, err);
    if (rc) return rc;
    qg_mem_add eff = *in;
    if (eff.kind == QG_MEM_ANY) eff.kind = QG_MEM_LONG; /* a collection was named */
    in = &eff;
    const char *cname = in->collection             ? in->collection
                        : in->kind == QG_MEM_SHORT ? "conversations"
                                                   : "facts";
    mem_coll *c;
    if ((rc = coll_lookup(m, cname, &c, err))) return rc;
    int64_t now = now_or(in->now_ms);
    int64_t ttl = in->ttl_ms ? in->ttl_ms : in->kind == QG_MEM_SHORT ? m->short_ttl : 0;
    int64_t expires = ttl ? now + ttl : 0;
    /* A setup names its own session and signal type unless the item does. */
    const char *signal_type =
        in->signal_type ? in->signal_type : setup_str(in->setup, "signal_type");
    const char *session = in->session ? in->session : setup_str(in->setup, "session");
    if ((rc = check_field("setup.signal_type", signal_type, QG_MEM_FIELD_MAX, err)) ||
        (rc = check_field("setup.session", session, QG_MEM_SESSION_MAX, err)))
        return rc;
    qg_arena a;
    qg_arena_init(&a, 0);
    const char *meta;
    float *v = NULL;
    size_t dim = 0;
    embed_in ein = {.user_id = in->user_id,
                    .token_id = in->token_id,
                    .text = in->text,
                    .setup = in->setup,
                    .vector = in->vector};
    if ((rc = normalise_meta(in->meta_json, m->meta_max, &a, &meta, err))) goto out;
    /* Embedding may be a provider call: done before taking the lock. */
    if ((rc = embed_for(m, c, coll_dim(c), &ein, &a, &v, &dim, err))) goto out;
    char id[QG_ID_MAX];
    qg_store_new_id("mem", id, sizeof id);
    bool snap = false;
    pthread_mutex_lock(&c->wmu);
    rc = add_locked(m, conn, c, in, v, dim, meta, id, now, expires, signal_type, session, &snap,
                    err);
    pthread_mutex_unlock(&c->wmu);
    if (snap) snap_kick(m);
    if (!rc && id_out) snprintf(id_out, QG_ID_MAX, "%s", id);
    if (!rc) maybe_purge(m, conn, now);
out:
    qg_arena_free(&a);
    return rc;
}

/* ---------------------------------------------------------------- batched add */

struct qg_mem_pending {
    qg_memory *m;
    mem_coll *c;
    qg_arena a;   /* the row's strings */
    item_row row; /* its id is id[], its vector vb */
    float *v;
    qg_buf vb; /* the encoded vector */
    char id[QG_ID_MAX];
    mem_slot *slot;
};

static void pending_free(qg_mem_pending *pa)
{
    qg_buf_free(&pa->vb);
    qg_arena_free(&pa->a);
    free(pa);
}

qg_status qg_memory_add_prepare(qg_memory *m, const qg_mem_add *in, qg_mem_pending **out,
                                char *id_out, qg_error *err)
{
    *out = NULL;
    qg_status rc = check_add(in, err);
    if (rc) return rc;
    qg_mem_kind kind = in->kind == QG_MEM_ANY ? QG_MEM_LONG : in->kind;
    const char *cname = in->collection         ? in->collection
                        : kind == QG_MEM_SHORT ? "conversations"
                                               : "facts";
    mem_coll *c;
    if ((rc = coll_lookup(m, cname, &c, err))) return rc;
    size_t cdim = coll_dim(c);
    if (!cdim) return qg_error_set(err, QG_EAGAIN, "collection '%s' has no dimension yet", c->name);
    const char *signal_type =
        in->signal_type ? in->signal_type : setup_str(in->setup, "signal_type");
    const char *session = in->session ? in->session : setup_str(in->setup, "session");
    if ((rc = check_field("setup.signal_type", signal_type, QG_MEM_FIELD_MAX, err)) ||
        (rc = check_field("setup.session", session, QG_MEM_SESSION_MAX, err)))
        return rc;
    qg_mem_pending *pa = qg_xcalloc(1, sizeof *pa);
    pa->m = m;
    pa->c = c;
    /* Sized for this item (its strings and the vector): thousands may wait
     * for their commit at once, and the arena's 64 KiB default each would
     * hold hundreds of MiB idle. */
    qg_arena_init(&pa->a, 1024 + (in->text ? strlen(in->text) : 0) +
                              (in->meta_json ? strlen(in->meta_json) : 0) +
                              (in->vector ? cdim * sizeof(float) : 0));
    qg_buf_init(&pa->vb, cdim * 8 + 64);
    item_row *r = &pa->row;
    r->now = now_or(in->now_ms);
    int64_t ttl = in->ttl_ms ? in->ttl_ms : kind == QG_MEM_SHORT ? m->short_ttl : 0;
    r->expires = ttl ? r->now + ttl : 0;
    r->kind = kind;
    r->ts = in->ts;
    size_t dim = 0;
    embed_in ein = {.user_id = in->user_id,
                    .token_id = in->token_id,
                    .text = in->text,
                    .setup = in->setup,
                    .vector = in->vector};
    if ((rc = normalise_meta(in->meta_json, m->meta_max, &pa->a, &r->meta, err)) ||
        (rc = embed_for(m, c, cdim, &ein, &pa->a, &pa->v, &dim, err)))
        goto fail;
    if (dim != cdim) {
        rc = qg_error_set(err, QG_EINVAL, "vector: %zu dimensions; collection '%s' has %zu", dim,
                          c->name, cdim);
        goto fail;
    }
    if ((rc = qg_vec_encode(pa->v, dim, &pa->vb))) goto fail;
    r->vector = pa->vb.data;
    r->user_id = qg_arena_strdup(&pa->a, in->user_id);
    r->text = qg_arena_strdup(&pa->a, in->text ? in->text : "");
    r->symbol = qg_arena_strdup(&pa->a, in->symbol);
    r->timeframe = qg_arena_strdup(&pa->a, in->timeframe);
    r->signal_type = qg_arena_strdup(&pa->a, signal_type);
    r->session = qg_arena_strdup(&pa->a, session);
    if (in->vector) { /* the caller's vector: keep a copy */
        float *v = qg_arena_alloc(&pa->a, dim * sizeof *v);
        if (!v) {
            rc = qg_error_set(err, QG_ENOMEM, "memory: out of memory");
            goto fail;
        }
        memcpy(v, pa->v, dim * sizeof *v);
        pa->v = v;
    }
    r->seq = atomic_fetch_add(&m->next_seq, 1);
    if ((rc = slot_make(m, r->seq, &pa->slot, err))) goto fail;
    qg_store_new_id("mem", pa->id, sizeof pa->id);
    r->id = pa->id;
    if (id_out) snprintf(id_out, QG_ID_MAX, "%s", pa->id);
    *out = pa;
    return QG_OK;
fail:
    pending_free(pa);
    return rc;
}

qg_status qg_memory_add_write(qg_mem_pending *pa, qg_conn *conn, qg_error *err)
{
    return insert_row(conn, pa->c, &pa->row, err);
}

/* Indexes pa; caller holds its collection's write lock. False: not
 * indexed (logged). */
static bool pending_index_locked(qg_mem_pending *pa, const mem_slot *fill)
{
    mem_coll *c = pa->c;
    qg_error e = {0};
    *pa->slot = *fill;
    c->generation++;
    c->count++;
    if (qg_vindex_add(c->ix, pa->row.seq, pa->v, &e)) {
        /* The row stays without its index entry: the counts then differ
         * and the next start rebuilds the index. */
        pa->slot->live = 0;
        qg_err("memory: cannot index item %s (%s)", pa->id, e.msg);
        return false;
    }
    return true;
}

void qg_memory_add_finish(qg_mem_pending *pa, bool committed)
{
    if (!pa) return;
    qg_memory_add_finish_many(&pa, &committed, 1);
}

void qg_memory_add_finish_many(qg_mem_pending **pa, const bool *committed, size_t n)
{
    /* Consecutive items of one collection share one write-lock hold: one
     * wait for the searches in flight instead of one per item. */
    for (size_t i = 0; i < n;) {
        mem_coll *c = pa[i]->c;
        qg_memory *m = pa[i]->m;
        size_t k = i;
        while (k < n && pa[k]->c == c && pa[k]->m == m && k - i < 64) k++;
        mem_slot fills[64];
        bool any = false, indexed[64] = {false};
        for (size_t x = i; x < k; x++)
            if (committed[x]) {
                fills[x - i] = slot_of(m, c, &pa[x]->row);
                any = true;
            }
        bool snap = false;
        if (any) {
            pthread_rwlock_wrlock(&c->lock);
            for (size_t x = i; x < k; x++)
                if (committed[x]) indexed[x - i] = pending_index_locked(pa[x], &fills[x - i]);
            snap = snap_due(m, c);
            pthread_rwlock_unlock(&c->lock);
        }
        if (snap) snap_kick(m);
        for (size_t x = i; x < k; x++)
            if (indexed[x - i]) cache_new_row(m, c, &pa[x]->row);
        for (size_t x = i; x < k; x++) pending_free(pa[x]);
        i = k;
    }
}

/* ---------------------------------------------------------------- reading rows */

#define ITEM_COLS                                                                                  \
    "id, collection, kind, text, symbol, timeframe, signal_type, session, ts, meta, created_at, "  \
    "expires_at"

static const char *dup_text(qg_arena *a, const qg_row *row, int col)
{
    return qg_arena_strdup(a, qg_row_text(row, col));
}

static void row_item(qg_arena *a, const qg_row *row, qg_mem_item *it)
{
    memset(it, 0, sizeof *it);
    snprintf(it->id, sizeof it->id, "%s", qg_row_text(row, 0));
    it->collection = dup_text(a, row, 1);
    int k = qg_mem_kind_parse(qg_row_text(row, 2));
    it->kind = k <= 0 ? QG_MEM_LONG : (qg_mem_kind)k;
    it->text = dup_text(a, row, 3);
    it->symbol = dup_text(a, row, 4);
    it->timeframe = dup_text(a, row, 5);
    it->signal_type = dup_text(a, row, 6);
    it->session = dup_text(a, row, 7);
    it->ts = qg_row_is_null(row, 8) ? 0 : qg_row_int(row, 8);
    it->meta_json = dup_text(a, row, 9);
    if (!it->meta_json) it->meta_json = "{}";
    it->created_at = qg_row_int(row, 10);
    it->expires_at = qg_row_is_null(row, 11) ? 0 : qg_row_int(row, 11);
}

typedef struct one_row {
    qg_arena *a;
    qg_mem_item *it;
    bool found;
} one_row;

static qg_status take_one(void *ud, const qg_row *row)
{
    one_row *o = ud;
    row_item(o->a, row, o->it);
    o->found = true;
    return QG_OK;
}

qg_status qg_memory_get(qg_memory *m, qg_conn *conn, const char *user_id, const char *id,
                        int64_t now_ms, qg_arena *a, qg_mem_item *out, qg_error *err)
{
    (void)m;
    qg_status rc = check_user(user_id, err);
    if (rc) return rc;
    one_row o = {.a = a, .it = out};
    qg_val p[] = {QG_VTEXT(id), QG_VTEXT(user_id), QG_VINT(now_or(now_ms))};
    rc = qg_conn_query(conn,
                       "SELECT " ITEM_COLS " FROM memory_items WHERE id = ? AND user_id = ? AND "
                       "(expires_at IS NULL OR expires_at > ?)",
                       p, 3, take_one, &o, err);
    if (rc) return rc;
    if (!o.found) return qg_error_set(err, QG_ENOTFOUND, "memory '%.*s' not found", 40, id);
    return QG_OK;
}

/* ---------------------------------------------------------------- search */

typedef struct mem_filter {
    const qg_memory *m;
    uint16_t coll;
    uint32_t user, symbol, timeframe, signal_type, session; /* 0: any */
    qg_mem_kind kind;
    int64_t since, until, now;
} mem_filter;

static bool filter_fn(void *ud, uint64_t label)
{
    const mem_filter *f = ud;
    const mem_slot *s = slot_get(f->m, label);
    if (!s || !s->live || s->user != f->user || s->coll != f->coll) return false;
    if (s->expires && s->expires <= f->now) return false;
    if (f->kind && s->kind != f->kind) return false;
    if (f->symbol && s->symbol != f->symbol) return false;
    if (f->timeframe && s->timeframe != f->timeframe) return false;
    if (f->signal_type && s->signal_type != f->signal_type) return false;
    if (f->session && s->session != f->session) return false;
    if (f->since && s->time < f->since) return false;
    if (f->until && s->time > f->until) return false;
    return true;
}

typedef struct mem_hit {
    uint64_t label;
    float score;
    const mem_coll *c;
} mem_hit;

static float score_of(qg_vmetric metric, float dist)
{
    switch (metric) {
    case QG_VMETRIC_COSINE:
        return 1.0f - dist;
    case QG_VMETRIC_DOT:
        return -dist;
    default:
        return 1.0f / (1.0f + dist);
    }
}

static int hit_cmp(const void *a, const void *b)
{
    const mem_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->label < y->label ? -1 : x->label > y->label;
}

static qg_status check_query(const qg_mem_query *q, qg_error *err)
{
    qg_status rc = check_user(q->user_id, err);
    if (rc) return rc;
    if (q->n > QG_MEM_SEARCH_MAX)
        return qg_error_set(err, QG_EINVAL, "n: must be between 1 and %d", QG_MEM_SEARCH_MAX);
    if ((unsigned)q->kind >= QG_MEM_WORKING)
        return qg_error_set(err, QG_EINVAL,
                            "kind: must be short, long or episodic (working memory is not "
                            "searched)");
    if (q->since && q->until && q->since > q->until)
        return qg_error_set(err, QG_EINVAL, "until: must not be before since");
    if (q->vector && !q->collection)
        return qg_error_set(err, QG_EINVAL, "collection: required when searching by vector");
    if (!q->vector && !q->setup && (!q->text || !*q->text))
        return qg_error_set(err, QG_EINVAL, "q: required (the text to search for)");
    if (q->text && strlen(q->text) > QG_MEM_TEXT_MAX)
        return qg_error_set(err, QG_EINVAL, "q: longer than %d bytes", QG_MEM_TEXT_MAX);
    return QG_OK;
}

/* Searches one collection, appending up to n hits to hits. */
static qg_status search_coll(qg_memory *m, mem_coll *c, const qg_mem_query *q, mem_filter *f,
                             const float *v, size_t dim, size_t n, mem_hit *hits, size_t *nh,
                             qg_arena *a, qg_error *err)
{
    qg_vhit *vh = qg_arena_alloc(a, n * sizeof *vh);
    if (!vh) return qg_error_set(err, QG_ENOMEM, "memory: out of memory");
    size_t got = 0;
    qg_status rc = QG_OK;
    pthread_rwlock_rdlock(&c->lock);
    if (c->ix && c->dim == dim) {
        f->coll = c->idx;
        rc = qg_vindex_search(c->ix, v, n, q->ef, filter_fn, f, vh, &got, err);
    } else if (c->ix && q->collection) {
        rc = qg_error_set(err, QG_EINVAL, "vector: %zu dimensions; collection '%s' has %zu", dim,
                          c->name, c->dim);
    }
    qg_vmetric metric = c->metric;
    pthread_rwlock_unlock(&c->lock);
    (void)m;
    for (size_t i = 0; i < got && !rc; i++)
        hits[(*nh)++] = (mem_hit){vh[i].label, score_of(metric, vh[i].dist), c};
    return rc;
}

typedef struct fetch_ctx {
    qg_arena *a;
    qg_mem_item *it;
    bool found;
} fetch_ctx;

typedef struct batch_rows {
    qg_arena *a;
    const mem_hit *hits;
    size_t nb;
    qg_mem_item *tmp;
    bool *found;
} batch_rows;

static qg_status take_batch_row(void *ud, const qg_row *row)
{
    batch_rows *b = ud;
    uint64_t seq = (uint64_t)qg_row_int(row, 12);
    for (size_t i = 0; i < b->nb; i++)
        if (b->hits[i].label == seq && !b->found[i]) {
            row_item(b->a, row, &b->tmp[i]);
            b->found[i] = true;
            break;
        }
    return QG_OK;
}

/* Rows read by one query: a statement per count is cached, so the count
 * stays small. */
#define FETCH_ARMS 8

/* One query for the rows of nb hits (at most FETCH_ARMS): tmp[i] and
 * found[i] for hits[i]. */
static qg_status query_rows(qg_conn *conn, const char *user_id, const mem_hit *hits, size_t nb,
                            qg_mem_item *tmp, bool *found, qg_arena *a, qg_error *err)
{
    /* One lookup a seq (qg_sql_union_all). "+user_id": the owner check
     * must not pick the (user_id, ...) index over the seq lookup. */
    char sql[FETCH_ARMS * (sizeof ITEM_COLS + 96)];
    qg_val p[FETCH_ARMS * 2];
    if (qg_sql_union_all(
            sql, sizeof sql,
            "SELECT " ITEM_COLS ", seq FROM memory_items WHERE seq = ? AND +user_id = ?", nb))
        return qg_error_set(err, QG_EINTERNAL, "memory: row query too long");
    for (size_t i = 0; i < nb; i++) {
        p[2 * i] = QG_VINT(hits[i].label);
        p[2 * i + 1] = QG_VTEXT(user_id);
    }
    batch_rows b = {.a = a, .hits = hits, .nb = nb, .tmp = tmp, .found = found};
    memset(found, 0, nb * sizeof(bool));
    return qg_conn_query(conn, sql, p, 2 * nb, take_batch_row, &b, err);
}

/* The rows of nb hits, appended to items (at *k) in the hits' order with
 * their scores; hits without a row (deleted meanwhile, or their owner
 * was) are left out. Rows come from the row cache when it has them
 * (rowcache.h), and the ones read go into it. */
static qg_status fetch_rows(qg_memory *m, qg_conn *conn, const char *user_id, const mem_hit *hits,
                            size_t nb, qg_mem_item *items, size_t *k, qg_arena *a, qg_error *err)
{
    if (nb == 0) return QG_OK;
    if (nb > FETCH_ARMS) nb = FETCH_ARMS;
    qg_mem_item tmp[FETCH_ARMS], mtmp[FETCH_ARMS];
    bool found[FETCH_ARMS], mfound[FETCH_ARMS];
    /* The row cache first, then one query for the rest. */
    mem_hit miss[FETCH_ARMS];
    size_t at[FETCH_ARMS], nm = 0;
    for (size_t i = 0; i < nb; i++) {
        found[i] = qg_rowcache_get(m->rows, hits[i].label, user_id, a, &tmp[i]);
        if (!found[i]) {
            miss[nm] = hits[i];
            at[nm++] = i;
        }
    }
    if (nm) {
        qg_status rc = query_rows(conn, user_id, miss, nm, mtmp, mfound, a, err);
        if (rc) return rc;
        for (size_t j = 0; j < nm; j++) {
            if (!mfound[j]) continue;
            tmp[at[j]] = mtmp[j];
            found[at[j]] = true;
            qg_rowcache_put(m->rows, miss[j].label, user_id, &mtmp[j]);
        }
    }
    for (size_t i = 0; i < nb; i++)
        if (found[i]) {
            items[*k] = tmp[i];
            items[(*k)++].score = hits[i].score;
        }
    return QG_OK;
}

static qg_status search_run(qg_memory *m, qg_conn *conn, const qg_mem_query *q, qg_arena *a,
                            qg_mem_item **out, size_t *n_out, qg_error *err)
{
    *out = NULL;
    *n_out = 0;
    qg_status rc = check_query(q, err);
    if (rc) return rc;
    size_t n = q->n ? q->n : 10;
    if ((rc = check_field("symbol", q->symbol, QG_MEM_FIELD_MAX, err)) ||
        (rc = check_field("timeframe", q->timeframe, QG_MEM_FIELD_MAX, err)) ||
        (rc = check_field("signal_type", q->signal_type, QG_MEM_FIELD_MAX, err)) ||
        (rc = check_field("session", q->session, QG_MEM_SESSION_MAX, err)))
        return rc;
    /* The collections to search. */
    mem_coll *targets[QG_MEM_COLLECTIONS];
    int nt = 0;
    if (q->collection) {
        if ((rc = coll_lookup(m, q->collection, &targets[0], err))) return rc;
        nt = 1;
    } else if (q->setup) {
        if ((rc = coll_lookup(m, "setups", &targets[0], err))) return rc;
        nt = 1;
    } else {
        pthread_rwlock_rdlock(&m->colls_lock);
        for (int i = 0; i < m->ncolls; i++)
            if (!strcmp(m->colls[i]->embedder, "hash")) targets[nt++] = m->colls[i];
        pthread_rwlock_unlock(&m->colls_lock);
    }
    mem_filter f = {
        .m = m,
        .user = intern_query(m, q->user_id),
        .symbol = intern_query(m, q->symbol),
        .timeframe = intern_query(m, q->timeframe),
        .signal_type = intern_query(m, q->signal_type),
        .session = intern_query(m, q->session),
        .kind = q->kind,
        .since = q->since,
        .until = q->until,
        .now = now_or(q->now_ms),
    };
    embed_in ein = {.user_id = q->user_id,
                    .token_id = q->token_id,
                    .text = q->text,
                    .setup = q->setup,
                    .vector = q->vector,
                    .for_search = true};
    float *v = NULL;
    size_t dim = 0;
    /* Text collections of the same embedder share one query vector. */
    if ((rc = embed_for(m, targets[0], coll_dim(targets[0]), &ein, a, &v, &dim, err))) return rc;
    bool nothing = f.user == UINT32_MAX || f.symbol == UINT32_MAX || f.timeframe == UINT32_MAX ||
                   f.signal_type == UINT32_MAX || f.session == UINT32_MAX;
    if (nothing) return QG_OK; /* a value no item has */
    mem_hit *hits = qg_arena_alloc(a, (size_t)nt * n * sizeof *hits);
    if (!hits) return qg_error_set(err, QG_ENOMEM, "memory: out of memory");
    size_t nh = 0;
    for (int i = 0; i < nt && !rc; i++)
        rc = search_coll(m, targets[i], q, &f, v, dim, n, hits, &nh, a, err);
    if (rc) return rc;
    qsort(hits, nh, sizeof *hits, hit_cmp);
    qg_mem_item *items = qg_arena_alloc(a, (n ? n : 1) * sizeof *items);
    if (!items) return qg_error_set(err, QG_ENOMEM, "memory: out of memory");
    size_t k = 0;
    /* The rows of the best hits, up to FETCH_ARMS a query (a hit whose row
     * was deleted meanwhile is skipped and the next one taken). */
    for (size_t i = 0; i < nh && k < n;) {
        size_t nb = n - k < nh - i ? n - k : nh - i;
        if (nb > FETCH_ARMS) nb = FETCH_ARMS;
        if ((rc = fetch_rows(m, conn, q->user_id, hits + i, nb, items, &k, a, err))) return rc;
        i += nb;
    }
    *out = items;
    *n_out = k;
    return QG_OK;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

qg_status qg_memory_search(qg_memory *m, qg_conn *conn, const qg_mem_query *q, qg_arena *a,
                           qg_mem_item **out, size_t *n_out, qg_error *err)
{
    uint64_t t0 = mono_ns();
    qg_status rc = search_run(m, conn, q, a, out, n_out, err);
    atomic_fetch_add_explicit(&m->searches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->search_ns, mono_ns() - t0, memory_order_relaxed);
    return rc;
}

/* ---------------------------------------------------------------- list */

typedef struct list_ctx {
    qg_arena *a;
    qg_mem_item *items;
    size_t n, limit;
    bool more;
} list_ctx;

static qg_status list_row(void *ud, const qg_row *row)
{
    list_ctx *l = ud;
    if (l->n == l->limit) {
        l->more = true;
        return QG_OK;
    }
    row_item(l->a, row, &l->items[l->n++]);
    return QG_OK;
}

qg_status qg_memory_list(qg_memory *m, qg_conn *conn, const qg_mem_list *q, qg_arena *a,
                         qg_mem_item **out, size_t *n_out, char *next, qg_error *err)
{
    (void)m;
    *out = NULL;
    *n_out = 0;
    char before[QG_ID_MAX] = ""; /* next may be the very buffer q->before points to */
    if (q->before) snprintf(before, sizeof before, "%s", q->before);
    if (next) next[0] = 0;
    qg_status rc = check_user(q->user_id, err);
    if (rc) return rc;
    if (q->limit < 0 || q->limit > QG_MEM_LIST_MAX)
        return qg_error_set(err, QG_EINVAL, "limit: must be between 1 and %d", QG_MEM_LIST_MAX);
    if ((unsigned)q->kind >= QG_MEM_WORKING)
        return qg_error_set(err, QG_EINVAL, "kind: must be short, long or episodic here");
    list_ctx l = {.a = a, .limit = q->limit ? (size_t)q->limit : 50};
    l.items = qg_arena_alloc(a, l.limit * sizeof *l.items);
    if (!l.items) return qg_error_set(err, QG_ENOMEM, "memory: out of memory");
    const char *kind = q->kind ? qg_mem_kind_name(q->kind) : NULL;
    qg_val p[] = {QG_VTEXT(q->user_id),
                  QG_VTEXT(q->collection),
                  QG_VTEXT(q->collection),
                  QG_VTEXT(kind),
                  QG_VTEXT(kind),
                  QG_VTEXT(q->symbol),
                  QG_VTEXT(q->symbol),
                  QG_VTEXT(q->session),
                  QG_VTEXT(q->session),
                  QG_VINT(now_or(q->now_ms)),
                  QG_VTEXT(q->before ? before : NULL),
                  QG_VTEXT(q->before ? before : NULL),
                  QG_VINT(l.limit + 1)};
    rc = qg_conn_query(
        conn,
        "SELECT " ITEM_COLS " FROM memory_items WHERE user_id = ? AND "
        "(CAST(? AS TEXT) IS NULL OR collection = ?) AND (CAST(? AS TEXT) IS NULL OR kind = ?) AND "
        "(CAST(? AS TEXT) IS NULL OR symbol = ?) AND (CAST(? AS TEXT) IS NULL OR session = ?) AND "
        "(expires_at IS NULL OR expires_at > ?) AND (CAST(? AS TEXT) IS NULL OR id < ?) "
        "ORDER BY id DESC LIMIT ?",
        p, 13, list_row, &l, err);
    if (rc) return rc;
    if (l.more && next && l.n) snprintf(next, QG_ID_MAX, "%s", l.items[l.n - 1].id);
    *out = l.items;
    *n_out = l.n;
    return QG_OK;
}

/* ---------------------------------------------------------------- forget */

typedef struct seq_list {
    uint64_t *v;
    size_t n, cap;
} seq_list;

static qg_status take_seq(void *ud, const qg_row *row)
{
    seq_list *s = ud;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = qg_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = (uint64_t)qg_row_int(row, 0);
    return QG_OK;
}

/* Deletes the rows `where` selects in c (params p, n), then their index
 * entries, under c's write lock. The SELECT and the DELETE share `where`. */
static qg_status delete_where(qg_memory *m, qg_conn *conn, mem_coll *c, const char *where,
                              const qg_val *p, size_t np, int64_t *removed, qg_error *err)
{
    char sel[1024], del[1024];
    snprintf(sel, sizeof sel, "SELECT seq FROM memory_items WHERE collection = ? AND %s", where);
    snprintf(del, sizeof del, "DELETE FROM memory_items WHERE collection = ? AND %s", where);
    qg_val params[16];
    params[0] = QG_VTEXT(c->name);
    memcpy(params + 1, p, np * sizeof *p);
    seq_list s = {0};
    qg_status rc = QG_OK;
    pthread_mutex_lock(&c->wmu);
    pthread_rwlock_wrlock(&c->lock);
    if ((rc = qg_conn_query(conn, sel, params, np + 1, take_seq, &s, err)) || !s.n) goto out;
    if ((rc = qg_conn_begin(conn, err))) goto out;
    int64_t changes = 0;
    rc = qg_conn_exec(conn, del, params, np + 1, &changes, err);
    if (!rc) rc = bump_generation(conn, c, qg_time_now_ms(), err);
    if (rc) {
        qg_conn_rollback(conn);
        goto out;
    }
    if ((rc = qg_conn_commit(conn, err))) goto out;
    c->generation++;
    for (size_t i = 0; i < s.n; i++) {
        mem_slot *sl = slot_get(m, s.v[i]);
        if (sl && sl->live) {
            sl->live = 0;
            c->count--;
        }
        if (c->ix) qg_vindex_remove(c->ix, s.v[i]);
        qg_rowcache_drop(m->rows, s.v[i]);
    }
    if (removed) *removed += (int64_t)s.n;
out:;
    bool snap = snap_due(m, c);
    pthread_rwlock_unlock(&c->lock);
    pthread_mutex_unlock(&c->wmu);
    if (snap) snap_kick(m);
    free(s.v);
    return rc;
}

typedef struct coll_of {
    char name[QG_MEM_NAME_MAX + 1];
    bool found;
} coll_of;

static qg_status take_coll_name(void *ud, const qg_row *row)
{
    coll_of *o = ud;
    snprintf(o->name, sizeof o->name, "%s", qg_row_text(row, 0));
    o->found = true;
    return QG_OK;
}

qg_status qg_memory_forget(qg_memory *m, qg_conn *conn, const char *user_id, const char *id,
                           qg_error *err)
{
    qg_status rc = check_user(user_id, err);
    if (rc) return rc;
    if (!id || !*id) return qg_error_set(err, QG_EINVAL, "id: required");
    coll_of o = {0};
    qg_val p[] = {QG_VTEXT(id), QG_VTEXT(user_id)};
    rc = qg_conn_query(conn, "SELECT collection FROM memory_items WHERE id = ? AND user_id = ?", p,
                       2, take_coll_name, &o, err);
    if (rc) return rc;
    mem_coll *c = o.found ? coll_find(m, o.name) : NULL;
    int64_t removed = 0;
    if (c) rc = delete_where(m, conn, c, "id = ? AND user_id = ?", p, 2, &removed, err);
    if (rc) return rc;
    if (!removed) return qg_error_set(err, QG_ENOTFOUND, "memory '%.*s' not found", 40, id);
    return QG_OK;
}

qg_status qg_memory_forget_where(qg_memory *m, qg_conn *conn, const qg_mem_forget_where *f,
                                 int64_t *removed, qg_error *err)
{
    if (removed) *removed = 0;
    qg_status rc = check_user(f->user_id, err);
    if (rc) return rc;
    if (f->kind == QG_MEM_WORKING) {
        if (!f->session)
            return qg_error_set(err, QG_EINVAL, "session: required for working memory");
        rc = qg_memory_working_delete(m, conn, f->user_id, f->session, NULL, removed, err);
        return rc == QG_ENOTFOUND ? QG_OK : rc;
    }
    if ((unsigned)f->kind > QG_MEM_WORKING)
        return qg_error_set(err, QG_EINVAL, "kind: must be short, long, episodic or working");
    if (!f->collection && !f->kind && !f->symbol && !f->session)
        return qg_error_set(err, QG_EINVAL,
                            "filter: name at least one of collection, kind, symbol, session");
    mem_coll *only = NULL;
    if (f->collection && (rc = coll_lookup(m, f->collection, &only, err))) return rc;
    const char *kind = f->kind ? qg_mem_kind_name(f->kind) : NULL;
    qg_val p[] = {QG_VTEXT(f->user_id), QG_VTEXT(kind),      QG_VTEXT(kind),
                  QG_VTEXT(f->symbol),  QG_VTEXT(f->symbol), QG_VTEXT(f->session),
                  QG_VTEXT(f->session)};
    const char *where = "user_id = ? AND (CAST(? AS TEXT) IS NULL OR kind = ?) AND (CAST(? AS "
                        "TEXT) IS NULL OR symbol = ?) "
                        "AND (CAST(? AS TEXT) IS NULL OR session = ?)";
    int64_t total = 0;
    pthread_rwlock_rdlock(&m->colls_lock);
    int nc = m->ncolls;
    mem_coll *all[QG_MEM_COLLECTIONS];
    memcpy(all, m->colls, (size_t)nc * sizeof *all);
    pthread_rwlock_unlock(&m->colls_lock);
    for (int i = 0; i < nc && !rc; i++)
        if (!only || all[i] == only) rc = delete_where(m, conn, all[i], where, p, 7, &total, err);
    if (removed) *removed = total;
    return rc;
}

qg_status qg_memory_purge(qg_memory *m, qg_conn *conn, int64_t now_ms, int64_t *removed,
                          qg_error *err)
{
    int64_t now = now_or(now_ms), total = 0;
    qg_val p[] = {QG_VINT(now)};
    pthread_rwlock_rdlock(&m->colls_lock);
    int nc = m->ncolls;
    mem_coll *all[QG_MEM_COLLECTIONS];
    memcpy(all, m->colls, (size_t)nc * sizeof *all);
    pthread_rwlock_unlock(&m->colls_lock);
    qg_status rc = QG_OK;
    for (int i = 0; i < nc && !rc; i++)
        rc = delete_where(m, conn, all[i], "expires_at IS NOT NULL AND expires_at <= ?", p, 1,
                          &total, err);
    if (!rc)
        rc = qg_conn_exec(conn,
                          "DELETE FROM memory_working WHERE expires_at IS NOT NULL AND "
                          "expires_at <= ?",
                          p, 1, NULL, err);
    if (removed) *removed = total;
    if (total) qg_info("memory: purged %lld expired items", (long long)total);
    return rc;
}

/* ---------------------------------------------------------------- working memory */

static qg_status check_working(const char *user_id, const char *session, const char *key,
                               bool key_required, qg_error *err)
{
    qg_status rc = check_user(user_id, err);
    if (rc) return rc;
    if (!session) return qg_error_set(err, QG_EINVAL, "session: required");
    if ((rc = check_field("session", session, QG_MEM_SESSION_MAX, err))) return rc;
    if (key_required && !key) return qg_error_set(err, QG_EINVAL, "key: required");
    return check_field("key", key, QG_MEM_KEY_MAX, err);
}

qg_status qg_memory_working_put(qg_memory *m, qg_conn *conn, const char *user_id,
                                const char *session, const char *key, const char *value_json,
                                int64_t ttl_ms, int64_t now_ms, bool *created, qg_error *err)
{
    qg_status rc = check_working(user_id, session, key, true, err);
    if (rc) return rc;
    if (!value_json) return qg_error_set(err, QG_EINVAL, "value: required");
    if (strlen(value_json) > QG_MEM_VALUE_MAX)
        return qg_error_set(err, QG_EINVAL, "value: longer than %d bytes as JSON",
                            QG_MEM_VALUE_MAX);
    cJSON *j = cJSON_Parse(value_json);
    if (!j) return qg_error_set(err, QG_EINVAL, "value: not valid JSON");
    cJSON_Delete(j);
    int64_t now = now_or(now_ms);
    int64_t ttl = ttl_ms ? ttl_ms : m->working_ttl;
    qg_val exp = ttl > 0 ? QG_VINT(now + ttl) : QG_VNULL;
    qg_val up[] = {QG_VTEXT(value_json), QG_VINT(now),      exp,
                   QG_VTEXT(user_id),    QG_VTEXT(session), QG_VTEXT(key)};
    for (int attempt = 0; attempt < 2; attempt++) {
        int64_t changes = 0;
        rc = qg_conn_exec(conn,
                          "UPDATE memory_working SET value = ?, updated_at = ?, expires_at = ? "
                          "WHERE user_id = ? AND session = ? AND key = ?",
                          up, 6, &changes, err);
        if (rc) return rc;
        if (changes) {
            if (created) *created = false;
            return QG_OK;
        }
        qg_val ins[] = {QG_VTEXT(user_id),
                        QG_VTEXT(session),
                        QG_VTEXT(key),
                        QG_VTEXT(value_json),
                        QG_VINT(now),
                        QG_VINT(now),
                        exp};
        rc = qg_conn_exec(conn,
                          "INSERT INTO memory_working (user_id, session, key, value, created_at, "
                          "updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          ins, 7, NULL, err);
        if (rc != QG_EEXIST) break; /* EEXIST: a concurrent put won; update it */
    }
    if (!rc && created) *created = true;
    return rc;
}

typedef struct working_ctx {
    qg_arena *a;
    qg_mem_working *items;
    size_t n, cap;
} working_ctx;

static qg_status working_row(void *ud, const qg_row *row)
{
    working_ctx *w = ud;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        qg_mem_working *v = qg_arena_alloc(w->a, cap * sizeof *v);
        if (!v) return QG_ENOMEM;
        if (w->n) memcpy(v, w->items, w->n * sizeof *v);
        w->items = v;
        w->cap = cap;
    }
    qg_mem_working *e = &w->items[w->n++];
    e->session = dup_text(w->a, row, 0);
    e->key = dup_text(w->a, row, 1);
    e->value_json = dup_text(w->a, row, 2);
    e->created_at = qg_row_int(row, 3);
    e->updated_at = qg_row_int(row, 4);
    e->expires_at = qg_row_is_null(row, 5) ? 0 : qg_row_int(row, 5);
    return QG_OK;
}

#define WORKING_COLS "session, key, value, created_at, updated_at, expires_at"

qg_status qg_memory_working_get(qg_memory *m, qg_conn *conn, const char *user_id,
                                const char *session, const char *key, int64_t now_ms, qg_arena *a,
                                qg_mem_working *out, qg_error *err)
{
    (void)m;
    qg_status rc = check_working(user_id, session, key, true, err);
    if (rc) return rc;
    working_ctx w = {.a = a};
    qg_val p[] = {QG_VTEXT(user_id), QG_VTEXT(session), QG_VTEXT(key), QG_VINT(now_or(now_ms))};
    rc = qg_conn_query(conn,
                       "SELECT " WORKING_COLS " FROM memory_working WHERE user_id = ? AND "
                       "session = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)",
                       p, 4, working_row, &w, err);
    if (rc) return rc;
    if (!w.n)
        return qg_error_set(err, QG_ENOTFOUND, "working memory '%.*s/%.*s' not found", 64, session,
                            64, key);
    *out = w.items[0];
    return QG_OK;
}

qg_status qg_memory_working_list(qg_memory *m, qg_conn *conn, const char *user_id,
                                 const char *session, int64_t now_ms, qg_arena *a,
                                 qg_mem_working **out, size_t *n_out, qg_error *err)
{
    (void)m;
    *out = NULL;
    *n_out = 0;
    qg_status rc = check_working(user_id, session, NULL, false, err);
    if (rc) return rc;
    working_ctx w = {.a = a};
    qg_val p[] = {QG_VTEXT(user_id), QG_VTEXT(session), QG_VINT(now_or(now_ms))};
    rc = qg_conn_query(conn,
                       "SELECT " WORKING_COLS " FROM memory_working WHERE user_id = ? AND "
                       "session = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
                       p, 3, working_row, &w, err);
    if (rc) return rc;
    *out = w.items;
    *n_out = w.n;
    return QG_OK;
}

qg_status qg_memory_working_delete(qg_memory *m, qg_conn *conn, const char *user_id,
                                   const char *session, const char *key, int64_t *removed,
                                   qg_error *err)
{
    (void)m;
    if (removed) *removed = 0;
    qg_status rc = check_working(user_id, session, key, false, err);
    if (rc) return rc;
    int64_t changes = 0;
    qg_val p[] = {QG_VTEXT(user_id), QG_VTEXT(session), QG_VTEXT(key), QG_VTEXT(key)};
    rc = qg_conn_exec(conn,
                      "DELETE FROM memory_working WHERE user_id = ? AND session = ? AND "
                      "(CAST(? AS TEXT) IS NULL OR key = ?)",
                      p, 4, &changes, err);
    if (rc) return rc;
    if (removed) *removed = changes;
    if (!changes)
        return key ? qg_error_set(err, QG_ENOTFOUND, "working memory '%.*s/%.*s' not found", 64,
                                  session, 64, key)
                   : qg_error_set(err, QG_ENOTFOUND, "working memory session '%.*s' not found", 64,
                                  session);
    return QG_OK;
}

/* ---------------------------------------------------------------- collections */

typedef struct count_ctx {
    qg_mem_collection *v;
    size_t n;
} count_ctx;

static qg_status count_row(void *ud, const qg_row *row)
{
    count_ctx *x = ud;
    const char *name = qg_row_text(row, 0);
    for (size_t i = 0; i < x->n; i++)
        if (!strcmp(x->v[i].name, name)) x->v[i].user_count = qg_row_int(row, 1);
    return QG_OK;
}

qg_status qg_memory_collections(qg_memory *m, qg_conn *conn, const char *user_id, int64_t now_ms,
                                qg_mem_collection **out, size_t *n_out, qg_error *err)
{
    *out = NULL;
    *n_out = 0;
    pthread_rwlock_rdlock(&m->colls_lock);
    size_t n = (size_t)m->ncolls;
    qg_mem_collection *v = qg_xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        mem_coll *c = m->colls[i];
        pthread_rwlock_rdlock(&c->lock);
        snprintf(v[i].name, sizeof v[i].name, "%s", c->name);
        snprintf(v[i].embedder, sizeof v[i].embedder, "%s", c->embedder);
        snprintf(v[i].description, sizeof v[i].description, "%s", c->description);
        v[i].dim = c->dim;
        v[i].metric = c->metric;
        v[i].index_kind = c->ix ? qg_vindex_get_params(c->ix)->kind : m->index_kind;
        v[i].count = c->count;
        v[i].created_at = c->created_at;
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_rwlock_unlock(&m->colls_lock);
    if (user_id) {
        count_ctx x = {v, n};
        qg_val p[] = {QG_VTEXT(user_id), QG_VINT(now_or(now_ms))};
        qg_status rc = qg_conn_query(conn,
                                     "SELECT collection, COUNT(*) FROM memory_items WHERE "
                                     "user_id = ? AND (expires_at IS NULL OR expires_at > ?) "
                                     "GROUP BY collection",
                                     p, 2, count_row, &x, err);
        if (rc) {
            free(v);
            return rc;
        }
    }
    *out = v;
    *n_out = n;
    return QG_OK;
}

qg_status qg_memory_collection_create(qg_memory *m, qg_conn *conn, const char *name,
                                      const char *embedder, const char *metric,
                                      const char *description, const char *created_by,
                                      qg_error *err)
{
    if (!name || !valid_coll_name(name))
        return qg_error_set(err, QG_EINVAL,
                            "name: 1-%d characters: a lower-case letter, then letters, digits, "
                            "'_' or '-'",
                            QG_MEM_NAME_MAX);
    if (!embedder) embedder = "hash";
    size_t dim = 0;
    if (!strcmp(embedder, "hash")) {
        dim = QG_EMBED_TEXT_DIM;
    } else if (!strcmp(embedder, "market")) {
        dim = QG_EMBED_MARKET_DIM;
    } else if (!strncmp(embedder, "model:", 6) && embedder[6] && strlen(embedder) <= 70 &&
               printable(embedder)) {
        if (!m->ai)
            return qg_error_set(err, QG_EINVAL,
                                "embedder: provider embeddings are not available here");
    } else {
        return qg_error_set(err, QG_EINVAL,
                            "embedder: must be \"hash\", \"market\" or \"model:<named model>\"");
    }
    int mt = metric ? qg_vmetric_parse(metric) : QG_VMETRIC_COSINE;
    if (mt < 0) return qg_error_set(err, QG_EINVAL, "metric: must be cosine, dot or l2");
    if (description && strlen(description) > 255)
        return qg_error_set(err, QG_EINVAL, "description: longer than 255 bytes");
    if (description && !printable(description))
        return qg_error_set(err, QG_EINVAL, "description: control characters are not allowed");
    qg_status rc = QG_OK;
    pthread_rwlock_wrlock(&m->colls_lock);
    if (coll_find_locked(m, name)) {
        rc = qg_error_set(err, QG_EEXIST, "collection '%s' already exists", name);
        goto out;
    }
    if (m->ncolls == QG_MEM_COLLECTIONS) {
        rc = qg_error_set(err, QG_ERANGE, "collections: at most %d", QG_MEM_COLLECTIONS);
        goto out;
    }
    int64_t now = qg_time_now_ms();
    qg_val p[] = {QG_VTEXT(name),
                  QG_VTEXT(embedder),
                  QG_VINT(dim),
                  QG_VTEXT(qg_vmetric_name((qg_vmetric)mt)),
                  QG_VTEXT(description ? description : ""),
                  QG_VTEXT(created_by),
                  QG_VINT(now),
                  QG_VINT(now)};
    rc = qg_conn_exec(conn,
                      "INSERT INTO memory_collections (name, embedder, dim, metric, description, "
                      "created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      p, 8, NULL, err);
    if (rc == QG_EEXIST) rc = qg_error_set(err, QG_EEXIST, "collection '%s' already exists", name);
    if (rc) goto out;
    mem_coll *c = qg_xcalloc(1, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->embedder, sizeof c->embedder, "%s", embedder);
    snprintf(c->description, sizeof c->description, "%s", description ? description : "");
    c->dim = dim;
    c->metric = (qg_vmetric)mt;
    c->snapshot_gen = -1;
    c->snap_failed_gen = -1;
    c->created_at = now;
    c->idx = (uint16_t)(m->ncolls + 1);
    coll_lock_init(c);
    pthread_mutex_init(&c->wmu, NULL);
    if (dim && (rc = index_new(m, dim, c->metric, &c->ix, err))) {
        pthread_rwlock_destroy(&c->lock);
        pthread_mutex_destroy(&c->wmu);
        free(c);
        goto out;
    }
    m->colls[m->ncolls++] = c;
out:
    pthread_rwlock_unlock(&m->colls_lock);
    return rc;
}

qg_status qg_memory_index_info(qg_memory *m, const char *collection, qg_vindex_kind *kind,
                               size_t *count, size_t *bytes)
{
    mem_coll *c = coll_find(m, collection);
    if (!c) return QG_ENOTFOUND;
    pthread_rwlock_rdlock(&c->lock);
    if (kind) *kind = c->ix ? qg_vindex_get_params(c->ix)->kind : m->index_kind;
    if (count) *count = c->ix ? qg_vindex_count(c->ix) : 0;
    if (bytes) *bytes = c->ix ? qg_vindex_memory(c->ix) : 0;
    pthread_rwlock_unlock(&c->lock);
    return QG_OK;
}

qg_status qg_memory_render_metrics(qg_memory *m, qg_buf *out)
{
    qg_status rc =
        qg_buf_puts(out, "# HELP qg_memory_items Memories stored, by collection (all users).\n"
                         "# TYPE qg_memory_items gauge\n");
    if (pthread_rwlock_tryrdlock(&m->colls_lock)) return rc; /* being created: next scrape */
    for (int i = 0; i < m->ncolls && !rc; i++) {
        mem_coll *c = m->colls[i];
        if (pthread_rwlock_tryrdlock(&c->lock)) continue; /* a long write: skip this scrape */
        rc = qg_buf_printf(out, "qg_memory_items{collection=\"%s\"} %lld\n", c->name,
                           (long long)c->count);
        pthread_rwlock_unlock(&c->lock);
    }
    if (!rc)
        rc = qg_buf_puts(out, "# HELP qg_memory_index_bytes Memory held by each collection's "
                              "vector index.\n# TYPE qg_memory_index_bytes gauge\n");
    for (int i = 0; i < m->ncolls && !rc; i++) {
        mem_coll *c = m->colls[i];
        if (pthread_rwlock_tryrdlock(&c->lock)) continue;
        rc = qg_buf_printf(out, "qg_memory_index_bytes{collection=\"%s\"} %zu\n", c->name,
                           c->ix ? qg_vindex_memory(c->ix) : 0);
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_rwlock_unlock(&m->colls_lock);
    if (!rc)
        rc = qg_buf_printf(out,
                           "# HELP qg_memory_searches_total Memory searches served.\n"
                           "# TYPE qg_memory_searches_total counter\n"
                           "qg_memory_searches_total %llu\n"
                           "# HELP qg_memory_search_seconds_total Time spent in memory searches.\n"
                           "# TYPE qg_memory_search_seconds_total counter\n"
                           "qg_memory_search_seconds_total %.6f\n",
                           (unsigned long long)atomic_load(&m->searches),
                           (double)atomic_load(&m->search_ns) / 1e9);
    qg_rowcache_stats rs;
    qg_rowcache_get_stats(m->rows, &rs);
    if (!rc)
        rc = qg_buf_printf(out,
                           "# HELP qg_memory_row_cache_hits_total Search hits whose row came from "
                           "the row cache.\n"
                           "# TYPE qg_memory_row_cache_hits_total counter\n"
                           "qg_memory_row_cache_hits_total %llu\n"
                           "# HELP qg_memory_row_cache_misses_total Search hits whose row was "
                           "read from the database.\n"
                           "# TYPE qg_memory_row_cache_misses_total counter\n"
                           "qg_memory_row_cache_misses_total %llu\n",
                           (unsigned long long)rs.hits, (unsigned long long)rs.misses);
    return rc;
}
