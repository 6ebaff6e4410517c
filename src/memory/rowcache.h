/*
 * rowcache.h - memory rows kept in memory by seq, so a search reads its
 * hits' text and metadata without a database round trip.
 *
 * A search (memory.c) finds labels (the rows' seq) in a collection's
 * index, then needs each hit's row. Read from SQLite, a row costs two
 * B-tree descents on pages that the last commit made stale (a reader's
 * page cache is dropped whenever the log has grown): about a tenth of a
 * signal worker's time. The service keeps the rows it wrote or read last
 * here instead: seq s lives in slot s mod cap (direct-mapped, so the
 * newest rows and the ones searches keep finding both stay until a newer
 * seq lands on their slot).
 *
 * Coherence: labels are never reused, and the service deletes rows only
 * through memory.c, which drops them here after the commit (a user's ON
 * DELETE CASCADE is the one other way; its rows can only be served to a
 * search under that same user id, which no token can run any more). A
 * row put by a search that raced its deletion stays unreachable: its label
 * has left the index.
 *
 * Thread-safe: a mutex per stripe of slots. Rows are copied in and out.
 */
#ifndef QG_MEMORY_ROWCACHE_H
#define QG_MEMORY_ROWCACHE_H

#include "memory/memory.h"

#include <quantgate/mem.h>

#include <stdbool.h>
#include <stdint.h>

typedef struct qg_rowcache qg_rowcache;

/* A cache of cap rows (rounded up to a power of two; 0: none, and every
 * call below is a no-op or a miss). NULL only when cap is 0. */
qg_rowcache *qg_rowcache_new(size_t cap);
void qg_rowcache_free(qg_rowcache *rc);

/* Keeps a copy of it (its score aside) as seq's row, owned by user_id,
 * replacing whatever held the slot. */
void qg_rowcache_put(qg_rowcache *rc, uint64_t seq, const char *user_id, const qg_mem_item *it);

/* seq's row when cached and owned by user_id: *out gets it with its
 * strings copied into a (score 0). */
bool qg_rowcache_get(qg_rowcache *rc, uint64_t seq, const char *user_id, qg_arena *a,
                     qg_mem_item *out);

/* Forgets seq's row (deleted). */
void qg_rowcache_drop(qg_rowcache *rc, uint64_t seq);

typedef struct qg_rowcache_stats {
    uint64_t hits, misses;
    size_t cap;
} qg_rowcache_stats;
void qg_rowcache_get_stats(qg_rowcache *rc, qg_rowcache_stats *out);

#endif
