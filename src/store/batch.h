/*
 * batch.h - group commit: many writers' small changes share one
 * transaction, so a durable write costs one fsync per batch, not per item.
 *
 * A qg_batcher owns one writer thread and one database connection (held
 * for its lifetime). Callers submit ops; the thread takes everything
 * queued (up to batch_max), opens a transaction, runs each op's apply on
 * the connection and commits. Each op's done runs, in submission order,
 * once its batch is durable (it survives power loss, not only a crash).
 * While one batch commits, the next one queues up, so under load batches
 * grow by themselves and at low load a single op commits right away (no
 * timer, no added latency).
 *
 * With QG_BATCH_SYNC_PIPELINED on SQLite, the writer's COMMIT appends to
 * the WAL without syncing (synchronous=NORMAL), and a syncer thread
 * fdatasyncs the WAL while the writer applies and commits the next batch.
 * Otherwise (or when the WAL cannot be opened) each COMMIT syncs
 * (synchronous=FULL).
 *
 * An op whose apply fails gets that status in its done; the others in the
 * batch still commit (SQLite rolls back only the failed statement; a
 * backend that aborts the whole transaction on an error must wrap each
 * apply in a savepoint). A failed BEGIN or COMMIT fails every op of the
 * batch with that error.
 *
 * done runs on the writer thread: keep it short (post a reply, enqueue
 * work), never submit-and-wait from it.
 */
#ifndef QG_STORE_BATCH_H
#define QG_STORE_BATCH_H

#include "store/store.h"

#include <quantgate/status.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qg_batcher qg_batcher;

/* Runs inside the open transaction on the writer's connection. */
typedef qg_status (*qg_batch_apply_fn)(qg_conn *c, void *arg, qg_error *err);
/* After the commit (rc QG_OK) or a failure; err is NULL when rc is QG_OK. */
typedef void (*qg_batch_done_fn)(void *arg, qg_status rc, const qg_error *err);

typedef struct qg_batcher_stats {
    uint64_t ops;         /* ops applied */
    uint64_t failed;      /* ops whose done got an error */
    uint64_t batches;     /* transactions committed */
    uint64_t commit_us;   /* total time in COMMIT (the fsync) */
    uint64_t checkpoints; /* background PASSIVE checkpoints (SQLite) */
    size_t queued;        /* ops waiting now */
    size_t largest;       /* largest batch so far */
    bool log_sync;        /* a syncer thread makes commits durable (SQLite's WAL);
                             false: each COMMIT syncs itself */
} qg_batcher_stats;

/* How a batch becomes durable. PIPELINED: a syncer thread syncs the log
 * while the writer commits the next batch (where the backend has such a
 * log; else as COMMIT). Lower latency under load, but smaller batches, so
 * more commits for the same writes (docs/signals.md has the figures).
 * COMMIT: each COMMIT syncs. */
typedef enum { QG_BATCH_SYNC_COMMIT, QG_BATCH_SYNC_PIPELINED } qg_batch_sync;

/* Starts the writer thread with its own connection from s. name shows in
 * the thread name. batch_max <= 0: 4096. queue_max <= 0: 1 << 20 (then
 * submit answers QG_EAGAIN: back-pressure instead of unbounded memory).
 * The caller owns *out. */
qg_status qg_batcher_new(qg_store *s, const char *name, int batch_max, size_t queue_max,
                         qg_batch_sync sync, qg_batcher **out, qg_error *err);

/* Queues an op (any thread). apply may be NULL: the op is then a barrier
 * whose done runs once everything submitted before it has committed.
 * QG_EAGAIN when the queue is full or the batcher is stopping; done is then
 * not called. */
qg_status qg_batcher_submit(qg_batcher *b, qg_batch_apply_fn apply, qg_batch_done_fn done,
                            void *arg);

/* qg_batcher_submit for ops someone waits on as they happen (a webhook's
 * insert, answered 202 after its commit): they go into the next batch
 * ahead of every ordinary op still queued, in their own submission
 * order, with at most a few hundred ordinary ops beside them. A barrier
 * submitted here waits only for the ops submitted first before it. */
qg_status qg_batcher_submit_first(qg_batcher *b, qg_batch_apply_fn apply, qg_batch_done_fn done,
                                  void *arg);

/* Submits and waits for the op's commit; returns its status (the blocking
 * form for callers that are not latency-critical, e.g. admin requests). */
qg_status qg_batcher_run(qg_batcher *b, qg_batch_apply_fn apply, void *arg, qg_error *err);

/* qg_batcher_run with apply inside a savepoint: when it fails, none of its
 * writes stay (the batch's other ops keep theirs). For ops of several
 * statements that must land whole or not at all. */
qg_status qg_batcher_run_whole(qg_batcher *b, qg_batch_apply_fn apply, void *arg, qg_error *err);

/* Waits while more than max_queued ordinary ops are queued (the writer
 * detaching a batch wakes it), or until the batcher or *stop (may be
 * NULL) stops. For producers that can wait, so the queue, its memory and
 * the wait of the ordinary ops behind it stay bounded. */
void qg_batcher_wait_room(qg_batcher *b, size_t max_queued, const atomic_bool *stop);

void qg_batcher_get_stats(qg_batcher *b, qg_batcher_stats *out);

/* Commits everything queued, stops the thread, releases the connection and
 * frees the batcher. NULL is a no-op. */
void qg_batcher_free(qg_batcher *b);

#endif
