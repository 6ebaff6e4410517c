/*
 * memory.h - what quantgate remembers for each user: one service to add,
 * search, list and forget memories of four kinds.
 *
 *   short     recent conversation turns; they expire (QG_MEMORY_SHORT_TTL,
 *             default 24 h) and are never returned once expired; expired rows
 *             are purged lazily (at most once a minute, by a writer).
 *   long      the vector collections: signals, analyses, setups, ...
 *   episodic  facts and preferences about the user ("risk 1% per trade");
 *             searchable like long memories, and listed whole for prompts.
 *   working   the state of an open session: key -> JSON value per user and
 *             session id, upserted, never embedded (the *_working calls).
 *
 * Collections are global names with an embedder and a metric fixed at
 * creation: "hash" (the offline text embedder, 256 dims), "market" (market
 * setups, 64 dims) or "model:<named AI model>" (provider embeddings through
 * qg_ai_embed; the dimension is learned from the first call and then
 * fixed). signals, analyses, conversations and facts (hash) and setups
 * (market) always exist. Items always belong to one user: the user id is
 * part of every lookup and every search filter, so another user's item is
 * reported as QG_ENOTFOUND, exactly like an id that does not exist.
 *
 * Each collection has one vector index (vindex.h; HNSW unless configured
 * flat) whose labels are the rows' `seq`. Filters (user always; kind,
 * symbol, timeframe, signal type, session, time range) are checked during
 * the search against compact per-label metadata held in memory, so a narrow
 * filter still fills n results and costs no database access.
 *
 * Persistence: the rows are the truth. Every change bumps the collection's
 * generation in the same transaction. At open a snapshot
 * (<snapshot_dir>/<collection>.qgvx) built with the collection's shape and
 * the index settings in force is loaded and brought up to the rows: the
 * labels of rows deleted since leave the index, the rows written since are
 * added. Otherwise (missing, corrupt, other settings, or more than half the
 * items newer: a warning) the index is rebuilt from the rows and a fresh
 * snapshot written. qg_memory_free writes a snapshot of every collection
 * that changed. So that a start after a crash has little to add, a
 * background thread also rewrites a collection's snapshot once it has seen
 * snapshot_changes changes (adds and forgets, each bumps the generation),
 * or an eighth of the collection when that is more, since its last
 * snapshot; it holds the collection's read lock while writing the file
 * (searches go on, writes to that collection wait) and records the
 * generation afterwards.
 *
 * Threads: one qg_memory is shared by all threads. Each collection has a
 * rwlock (searches shared, writes exclusive); a write goes to the database
 * first, then to the index. Every call that touches the database takes the
 * caller's connection (a request's own), so a request never holds two.
 */
#ifndef QG_MEMORY_MEMORY_H
#define QG_MEMORY_MEMORY_H

#include "ai/ai.h"
#include "memory/vindex.h"
#include "store/store.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* QG_MEM_ANY (zero, so a zeroed query or add means "any" / "the default")
 * is never stored. */
typedef enum { QG_MEM_ANY, QG_MEM_SHORT, QG_MEM_LONG, QG_MEM_EPISODIC, QG_MEM_WORKING } qg_mem_kind;

/* "any", "short", "long", "episodic", "working"; parse returns -1 for anything
 * else ("any" included: it is the absence of a kind). */
const char *qg_mem_kind_name(qg_mem_kind k);
int qg_mem_kind_parse(const char *s);

/* Caps (bytes unless said otherwise). */
#define QG_MEM_NAME_MAX     48    /* collection name: [a-z][a-z0-9_-]* */
#define QG_MEM_EMBEDDER_MAX 80    /* "model:<name>" */
#define QG_MEM_TEXT_MAX     32768 /* item text */
#define QG_MEM_FIELD_MAX    64    /* symbol, timeframe, signal_type */
#define QG_MEM_SESSION_MAX  128   /* session id (also working memory's) */
#define QG_MEM_KEY_MAX      128   /* working memory key */
#define QG_MEM_VALUE_MAX    65536 /* working memory value (JSON text) */
#define QG_MEM_SEARCH_MAX   100   /* n of one search */
#define QG_MEM_LIST_MAX     500   /* limit of one list page */
#define QG_MEM_COLLECTIONS  64    /* collections at most */

typedef struct qg_memory qg_memory;

typedef struct qg_memory_config {
    qg_store *store;           /* required; open and free take their own connection */
    qg_ai *ai;                 /* provider embeddings ("model:" collections); NULL: none */
    const char *snapshot_dir;  /* created when missing; NULL: no snapshots (always rebuild) */
    int64_t short_ttl_ms;      /* default lifetime of short items; 0: 24 h */
    int64_t working_ttl_ms;    /* default lifetime of working entries; 0: 7 days; <0: never */
    size_t meta_max;           /* bytes of an item's meta JSON; 0: 4096 */
    qg_vindex_kind index_kind; /* QG_VINDEX_HNSW (default) or QG_VINDEX_FLAT */
    int hnsw_m, hnsw_ef_construction, hnsw_ef_search; /* 0: the index defaults */
    int64_t snapshot_changes; /* QG_MEMORY_SNAPSHOT_CHANGES: background snapshot after this
                                 many changes of a collection (or an eighth of it when
                                 more); 0: 1000; <0: only at free */
    int64_t row_cache;        /* QG_MEMORY_ROW_CACHE: rows searches read from memory
                                 instead of the database (rowcache.h); 0: 8192; <0: none */
} qg_memory_config;

#define QG_MEMORY_SNAPSHOT_CHANGES_DEFAULT 1000
#define QG_MEMORY_ROW_CACHE_DEFAULT        8192

/* Snapshots written by the background thread since open (for tests and
 * the log). */
uint64_t qg_memory_bg_snapshots(qg_memory *m);

/* Opens the service: makes sure the default collections exist, loads the
 * per-item metadata, then each collection's index from its snapshot or by
 * a rebuild (see the top of this file). The caller owns *out and frees it
 * with qg_memory_free. */
qg_status qg_memory_open(const qg_memory_config *cfg, qg_memory **out, qg_error *err);
/* Writes the snapshots of changed collections, then frees everything. No
 * call may be running. NULL is a no-op. */
void qg_memory_free(qg_memory *m);
/* Writes the snapshots of changed collections now (also done by free). */
qg_status qg_memory_snapshot(qg_memory *m, qg_error *err);

/* ---- items ---- */

/* One memory as read back. Strings belong to the arena passed to the call;
 * absent metadata is NULL (ts 0, expires_at 0 = never). */
typedef struct qg_mem_item {
    char id[QG_ID_MAX];
    const char *collection;
    qg_mem_kind kind;
    const char *text;
    const char *symbol, *timeframe, *signal_type, *session;
    int64_t ts;            /* event time, ms */
    const char *meta_json; /* a JSON object, "{}" when none */
    int64_t created_at, expires_at;
    float score; /* searches: similarity (cosine: 1 - distance; dot: the dot
                    product; l2: 1 / (1 + squared distance)) */
} qg_mem_item;

typedef struct qg_mem_add {
    const char *user_id;    /* required */
    const char *token_id;   /* the API token of the request, for provider usage; or NULL */
    const char *collection; /* NULL: by kind (short: conversations, episodic: facts);
                               required for long items */
    qg_mem_kind kind;       /* short, long or episodic; ANY: long with a collection,
                               else an error */
    const char *text;       /* required (may be "" when setup or vector is given) */
    const cJSON *setup;     /* a market setup (embed.h); the collection's embedder must
                               be "market"; then vector is computed from it */
    const float *vector;    /* or a ready vector of the collection's dimension */
    const char *symbol, *timeframe, *signal_type, *session; /* NULL: none */
    int64_t ts;                                             /* event time, ms; 0: none */
    const char *meta_json; /* a JSON object (capped at meta_max), or NULL */
    int64_t ttl_ms;        /* 0: the kind's default (short: short_ttl; others never); <0 invalid */
    int64_t now_ms;        /* 0: the clock (tests inject time here) */
} qg_mem_add;

/* Validates, embeds (provider calls block), stores the row and indexes it.
 * id_out (QG_ID_MAX bytes, may be NULL) gets the new "mem_..." id. QG_EINVAL
 * names the field and the reason; QG_ENOTFOUND names an unknown collection. */
qg_status qg_memory_add(qg_memory *m, qg_conn *c, const qg_mem_add *in, char *id_out,
                        qg_error *err);

/* The same add in three steps, for a writer that puts many rows into one
 * transaction of its own (a group-commit batcher):
 *   prepare  validates, embeds, takes the id and label (no database);
 *   write    inserts the row inside the caller's open transaction;
 *   finish   once that transaction has committed (committed true) indexes
 *            the item, else drops it; frees pa either way.
 * Searches find the item from finish on. QG_EAGAIN from prepare: the
 * collection does not know its dimension yet (a model collection before
 * its first item): use qg_memory_add. id_out (QG_ID_MAX bytes, may be
 * NULL) gets the id at prepare. Any thread; finish may run on another
 * thread than prepare. */
typedef struct qg_mem_pending qg_mem_pending;
qg_status qg_memory_add_prepare(qg_memory *m, const qg_mem_add *in, qg_mem_pending **out,
                                char *id_out, qg_error *err);
qg_status qg_memory_add_write(qg_mem_pending *pa, qg_conn *c, qg_error *err);
void qg_memory_add_finish(qg_mem_pending *pa, bool committed);
/* finish for n items at once (committed[i] for pa[i]): consecutive items
 * of one collection are indexed under one hold of its write lock. */
void qg_memory_add_finish_many(qg_mem_pending **pa, const bool *committed, size_t n);

typedef struct qg_mem_query {
    const char *user_id;    /* required */
    const char *token_id;   /* for provider usage, or NULL */
    const char *collection; /* NULL: every "hash" collection (text), or "setups" (setup) */
    const char *text;       /* the query: text, */
    const cJSON *setup;     /* or a market setup, */
    const float *vector;    /* or a vector (collection required) */
    size_t n;               /* 1..QG_MEM_SEARCH_MAX; 0: 10 */
    qg_mem_kind kind;       /* ANY, or short, long, episodic (working is not searched) */
    const char *symbol, *timeframe, *signal_type, *session; /* exact match; NULL: any */
    int64_t since, until; /* item time (ts, else created_at) within [since, until]; 0: open */
    int ef;               /* HNSW candidate list; 0: the index default */
    int64_t now_ms;       /* 0: the clock */
} qg_mem_query;

/* The n best matches that pass every filter, best first, into an array in
 * a (*out, *n_out). */
qg_status qg_memory_search(qg_memory *m, qg_conn *c, const qg_mem_query *q, qg_arena *a,
                           qg_mem_item **out, size_t *n_out, qg_error *err);

typedef struct qg_mem_list {
    const char *user_id;          /* required */
    const char *collection;       /* NULL: any */
    qg_mem_kind kind;             /* ANY, or short, long, episodic (see qg_memory_working_list) */
    const char *symbol, *session; /* NULL: any */
    int limit;                    /* 1..QG_MEM_LIST_MAX; 0: 50 */
    const char *before;           /* the previous page's next cursor, or NULL */
    int64_t now_ms;               /* 0: the clock */
} qg_mem_list;

/* A page of the user's live items, newest first. next (QG_ID_MAX bytes)
 * gets the cursor of the next page, or "" when this is the last. */
qg_status qg_memory_list(qg_memory *m, qg_conn *c, const qg_mem_list *q, qg_arena *a,
                         qg_mem_item **out, size_t *n_out, char *next, qg_error *err);

/* One of the user's items: QG_ENOTFOUND when it is not theirs, expired or
 * absent. */
qg_status qg_memory_get(qg_memory *m, qg_conn *c, const char *user_id, const char *id,
                        int64_t now_ms, qg_arena *a, qg_mem_item *out, qg_error *err);

/* Forgets one item (row and index entry); QG_ENOTFOUND when it is not the
 * user's. */
qg_status qg_memory_forget(qg_memory *m, qg_conn *c, const char *user_id, const char *id,
                           qg_error *err);

typedef struct qg_mem_forget_where {
    const char *user_id;          /* required */
    const char *collection;       /* NULL: any */
    qg_mem_kind kind;             /* ANY; QG_MEM_WORKING: the session's working entries */
    const char *symbol, *session; /* NULL: any (working: session is required) */
} qg_mem_forget_where;

/* Forgets every item of the user that matches; *removed (may be NULL) gets
 * how many. At least one of collection, kind, symbol, session is required
 * (forgetting everything is one explicit call away, not an accident). */
qg_status qg_memory_forget_where(qg_memory *m, qg_conn *c, const qg_mem_forget_where *f,
                                 int64_t *removed, qg_error *err);

/* Deletes expired short items and working entries now (also done lazily);
 * *removed (may be NULL) gets how many items. */
qg_status qg_memory_purge(qg_memory *m, qg_conn *c, int64_t now_ms, int64_t *removed,
                          qg_error *err);

/* ---- working memory ---- */

/* Sets session/key to value_json (any JSON text, capped) for the user.
 * ttl_ms: 0 the default (working_ttl), <0 never. *created (may be NULL) is
 * true when the key was new. */
qg_status qg_memory_working_put(qg_memory *m, qg_conn *c, const char *user_id, const char *session,
                                const char *key, const char *value_json, int64_t ttl_ms,
                                int64_t now_ms, bool *created, qg_error *err);

typedef struct qg_mem_working {
    const char *session, *key, *value_json; /* in the call's arena */
    int64_t created_at, updated_at, expires_at;
} qg_mem_working;

/* One entry (QG_ENOTFOUND when absent or expired). */
qg_status qg_memory_working_get(qg_memory *m, qg_conn *c, const char *user_id, const char *session,
                                const char *key, int64_t now_ms, qg_arena *a, qg_mem_working *out,
                                qg_error *err);
/* Every live entry of the session, by key. */
qg_status qg_memory_working_list(qg_memory *m, qg_conn *c, const char *user_id, const char *session,
                                 int64_t now_ms, qg_arena *a, qg_mem_working **out, size_t *n_out,
                                 qg_error *err);
/* Deletes one key, or the whole session when key is NULL. QG_ENOTFOUND
 * when nothing was there. */
qg_status qg_memory_working_delete(qg_memory *m, qg_conn *c, const char *user_id,
                                   const char *session, const char *key, int64_t *removed,
                                   qg_error *err);

/* ---- collections ---- */

typedef struct qg_mem_collection {
    char name[QG_MEM_NAME_MAX + 1];
    char embedder[QG_MEM_EMBEDDER_MAX + 1];
    char description[256];
    size_t dim; /* 0 until a "model:" collection's first embedding */
    qg_vmetric metric;
    qg_vindex_kind index_kind;
    int64_t count;      /* live items of all users (expired ones until purged) */
    int64_t user_count; /* the asking user's live items */
    int64_t created_at;
} qg_mem_collection;

/* Every collection, by name, with counts for user_id (may be NULL: 0);
 * *out is malloc'ed, the caller frees it. */
qg_status qg_memory_collections(qg_memory *m, qg_conn *c, const char *user_id, int64_t now_ms,
                                qg_mem_collection **out, size_t *n_out, qg_error *err);

/* Creates a collection. embedder: "hash", "market" or "model:<name>" (the
 * named model must exist when ai is set); metric: "cosine" (NULL), "dot"
 * or "l2". QG_EEXIST when the name is taken. */
qg_status qg_memory_collection_create(qg_memory *m, qg_conn *c, const char *name,
                                      const char *embedder, const char *metric,
                                      const char *description, const char *created_by,
                                      qg_error *err);

/* Appends Prometheus text (0.0.4) to out: qg_memory_items{collection},
 * qg_memory_index_bytes{collection}, qg_memory_searches_total and
 * qg_memory_search_seconds_total. For /metrics (h_meta.c): never blocks (a
 * collection busy with a long write is left out of this scrape). */
qg_status qg_memory_render_metrics(qg_memory *m, qg_buf *out);

/* For /metrics and tests: index kind and memory of one collection. */
qg_status qg_memory_index_info(qg_memory *m, const char *collection, qg_vindex_kind *kind,
                               size_t *count, size_t *bytes);

#endif
