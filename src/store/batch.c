/*
 * batch.c - group commit (see batch.h).
 *
 * The queue is a singly linked FIFO under one mutex. The writer thread
 * detaches up to batch_max ops at a time, so submitters never wait for a
 * commit: they only take the mutex to append. Nothing batches on a timer:
 * the batch is whatever arrived while the previous COMMIT was in its fsync,
 * which is exactly the group-commit rule of database write-ahead logs (a
 * lone op commits at once; under load, batches grow until one fsync serves
 * thousands).
 *
 * Pipelined sync (QG_BATCH_SYNC_PIPELINED, SQLite): COMMIT only appends the batch to the
 * WAL (synchronous=NORMAL) and the syncer thread fdatasyncs the WAL, which
 * makes that commit and every one before it durable (recovery replays the
 * log's valid frames). While it syncs, the writer runs the dones of the
 * batch synced before and applies and commits the next one, then waits for
 * the syncer to take it: one committed batch waits at most, so batches
 * still grow under load instead of committing the same index pages again
 * and again. The dones run on the writer, in submission order, only after
 * their batch's sync.
 *
 * Checkpoints: SQLite's automatic checkpoint runs inside the COMMIT that
 * takes the log past 1000 pages, copying every page back into the
 * database and syncing it while every submitter waits (a 10-20 ms stall
 * at thousands of writes a second). So on SQLite a checkpointer thread
 * runs PASSIVE checkpoints on a pool connection every few hundred writes:
 * they copy what is committed while the writer goes on (the writer's
 * next transaction restarts the log from its beginning once all of it is
 * copied). The writer's own automatic checkpoint moves out of the way to
 * 20000 pages, a net for a log the checkpointer cannot keep short.
 *
 * Back-pressure: submit never waits (a full queue answers QG_EAGAIN), but
 * producers that can wait call qg_batcher_wait_room, which the writer
 * wakes each time it takes a batch off the queue; the signal workers do.
 * Ops someone is waiting on as they happen (a webhook's insert) are
 * submitted first: a second queue the writer empties into each batch
 * before the ordinary one, so they wait for the batch in flight and their
 * own, not for everything queued.
 *
 * No SAVEPOINT around each apply: SQLite undoes just the failed statement
 * and keeps the transaction, so one bad op cannot sink its batch. A
 * backend that aborts the whole transaction on an error (PostgreSQL) will
 * need one per op here.
 */
#include "store/batch.h"

#include <quantgate/time.h>
#include <quantgate/log.h>
#include <quantgate/mem.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Writes between two background checkpoints: a few hundred WAL pages at
 * the one to three pages a signal write dirties. */
#define CHECKPOINT_EVERY_OPS 256

typedef struct batch_op {
    struct batch_op *next;
    qg_batch_apply_fn apply;
    qg_batch_done_fn done;
    void *arg;
    qg_status rc;
    qg_error err;
} batch_op;

/* A FIFO of ops; under the batcher's mu. */
typedef struct op_queue {
    batch_op *head, *tail;
    size_t n;
} op_queue;

struct qg_batcher {
    qg_store *store;
    qg_conn *conn;
    pthread_t thread;
    char name[16];
    int batch_max;
    size_t queue_max;

    pthread_mutex_t mu;
    pthread_cond_t wake;
    op_queue ordinary;   /* under mu */
    op_queue first;      /* qg_batcher_submit_first; under mu */
    bool stopping;       /* under mu */
    pthread_cond_t room; /* ordinary.n went down (qg_batcher_wait_room); under mu */
    int room_waiters;    /* under mu */

    /* pipelined durability (SQLite): the writer commits without syncing,
     * the syncer syncs the log, the writer then runs the dones */
    int log_fd;              /* the log, opened read-only; -1: each COMMIT syncs */
    int64_t pool_cache_size; /* SQLite: the connection's cache_size before widen_cache */
    int64_t pool_autockpt;   /* SQLite: its wal_autocheckpoint before checkpoint_aside; -1: unset */
    pthread_t syncer;
    bool syncer_started;
    pthread_cond_t synwake;                /* under mu */
    pthread_cond_t picked;                 /* the syncer took the committed batch; under mu */
    batch_op *committed, *committed_last;  /* committed, not yet syncing; under mu */
    bool committed_wrote;                  /* it holds writes; under mu */
    bool syncing;                          /* the syncer holds a batch; under mu */
    batch_op *durable_head, *durable_tail; /* synced, dones to run; under mu */
    bool writer_exited;                    /* under mu */

    /* the background checkpointer (SQLite) */
    pthread_t checkpointer;
    bool checkpointer_started;
    pthread_cond_t ckwake; /* under mu */
    uint64_t since_ckpt;   /* writes since the last checkpoint; under mu */

    _Atomic uint64_t ops, failed, batches, commit_us, checkpoints;
    _Atomic size_t largest;
};

/* Under mu: an op waits in either queue. */
static bool has_queued(const qg_batcher *b)
{
    return b->ordinary.head || b->first.head;
}

/* Under mu: nothing queued, committed, syncing or waiting for its dones. */
static bool drained(const qg_batcher *b)
{
    return !has_queued(b) && !b->committed && !b->syncing && !b->durable_head;
}

/* Ordinary ops that share a batch with ops submitted first: a few hundred
 * keep the writer's pace without making the first ones wait for a whole
 * batch_max of them (about 15 µs each on SQLite). */
#define FIRST_COMPANY 256

static void queue_push(op_queue *q, batch_op *o)
{
    if (q->tail)
        q->tail->next = o;
    else
        q->head = o;
    q->tail = o;
    q->n++;
}

/* Takes up to max ops off q (*n_out: how many, *last_out: the last, NULL
 * when none). */
static batch_op *queue_take(op_queue *q, size_t max, size_t *n_out, batch_op **last_out)
{
    batch_op *first = q->head, *last = NULL;
    size_t n = 0;
    for (batch_op *o = first; o && n < max; o = o->next) {
        last = o;
        n++;
    }
    if (last) {
        q->head = last->next;
        if (!q->head) q->tail = NULL;
        last->next = NULL;
        q->n -= n;
    }
    *n_out = n;
    *last_out = last;
    return last ? first : NULL;
}

/* Under mu: detaches the next batch: the ops submitted first, then
 * ordinary ones up to batch_max in all (FIRST_COMPANY at most when there
 * were first ones). *last_out: the batch's last op. */
static batch_op *detach_batch(qg_batcher *b, size_t *n_out, batch_op **last_out)
{
    size_t max = (size_t)b->batch_max, nf = 0, n = 0;
    batch_op *flast = NULL, *last = NULL;
    batch_op *first = queue_take(&b->first, max, &nf, &flast);
    size_t room = nf ? (max - nf < FIRST_COMPANY ? max - nf : FIRST_COMPANY) : max;
    batch_op *rest = queue_take(&b->ordinary, room, &n, &last);
    if (n && b->room_waiters) pthread_cond_broadcast(&b->room);
    if (flast) flast->next = rest;
    *n_out = nf + n;
    *last_out = last ? last : flast;
    return first ? first : rest;
}

static bool has_writes(const batch_op *o)
{
    for (; o; o = o->next)
        if (o->apply) return true;
    return false;
}

/* Runs one batch in one transaction; every op gets its status. True when
 * it committed writes. */
static bool run_batch(qg_batcher *b, batch_op *ops)
{
    qg_error err = {0};
    qg_status rc = QG_OK;
    bool open = false;
    if (has_writes(ops)) {
        rc = qg_conn_begin(b->conn, &err);
        open = rc == QG_OK;
    }
    for (batch_op *o = ops; o && !rc; o = o->next)
        if (o->apply) o->rc = o->apply(b->conn, o->arg, &o->err);
    if (open) {
        int64_t t0 = qg_time_mono_us();
        rc = qg_conn_commit(b->conn, &err);
        atomic_fetch_add_explicit(&b->commit_us, (uint64_t)(qg_time_mono_us() - t0),
                                  memory_order_relaxed);
        if (rc)
            qg_conn_rollback(b->conn);
        else
            atomic_fetch_add_explicit(&b->batches, 1, memory_order_relaxed);
    }
    if (rc) qg_err("%s: a batch failed, its writes are lost: %s", b->name, err.msg);
    for (batch_op *o = ops; o; o = o->next) {
        if (rc) {
            o->rc = rc;
            o->err = err;
        }
    }
    return open && !rc;
}

/* Counts first, then calls the dones: a done may wake a waiter that reads
 * the statistics at once. ops may span several batches (synced ones wait
 * together). */
static void finish_batch(qg_batcher *b, batch_op *ops)
{
    uint64_t n = 0, failed = 0;
    for (batch_op *o = ops; o; o = o->next) {
        n++;
        if (o->rc) failed++;
    }
    if (b->checkpointer_started) {
        pthread_mutex_lock(&b->mu);
        b->since_ckpt += n;
        if (b->since_ckpt >= CHECKPOINT_EVERY_OPS) pthread_cond_signal(&b->ckwake);
        pthread_mutex_unlock(&b->mu);
    }
    atomic_fetch_add_explicit(&b->ops, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->failed, failed, memory_order_relaxed);
    while (ops) {
        batch_op *next = ops->next;
        if (ops->done) ops->done(ops->arg, ops->rc, ops->rc ? &ops->err : NULL);
        free(ops);
        ops = next;
    }
}

/* A failed sync fails every op that had not failed: its commit is in the
 * database but may not survive a power loss, so nobody is told it will. */
static void fail_unsynced(batch_op *ops, int errnum)
{
    qg_error err = {0};
    qg_error_set(&err, QG_EIO,
                 "the database log could not be synced (fdatasync: %s); the write may not "
                 "survive a power loss",
                 strerror(errnum));
    qg_err("%s", err.msg);
    for (batch_op *o = ops; o; o = o->next)
        if (!o->rc) {
            o->rc = QG_EIO;
            o->err = err;
        }
}

/* Makes a committed batch durable. One without writes (barriers,
 * failures) waits only on earlier commits, synced before it. */
static void sync_log(qg_batcher *b, batch_op *ops, bool wrote)
{
    if (!wrote) return;
    int64_t t0 = qg_time_mono_us();
    if (fdatasync(b->log_fd) != 0) fail_unsynced(ops, errno);
    atomic_fetch_add_explicit(&b->commit_us, (uint64_t)(qg_time_mono_us() - t0),
                              memory_order_relaxed);
}

/* "<writer name, cut>-<role>": Linux thread names hold 15 bytes. */
static void name_helper_thread(const qg_batcher *b, const char *role)
{
    char name[16];
    snprintf(name, sizeof name, "%.10s-%s", b->name, role);
    pthread_setname_np(pthread_self(), name);
}

/* Tells the syncer no more batches come: it drains, then stops. */
static void stop_syncer(qg_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    b->writer_exited = true;
    pthread_cond_signal(&b->synwake);
    pthread_mutex_unlock(&b->mu);
}

/* Hands a committed batch to the syncer and waits until it starts that
 * sync, so one batch at most waits for it: the next batch takes everything
 * that arrives meanwhile (small batches back to back would each rewrite
 * the same index pages into the WAL). Under mu. */
static void hand_to_syncer(qg_batcher *b, batch_op *ops, batch_op *last, bool wrote)
{
    b->committed = ops;
    b->committed_last = last;
    b->committed_wrote = wrote;
    pthread_cond_signal(&b->synwake);
    while (b->committed) pthread_cond_wait(&b->picked, &b->mu);
}

/* The writer: runs the dones of synced batches first (their submitters
 * wait), then commits the next batch. */
static void *writer_main(void *arg)
{
    qg_batcher *b = arg;
    pthread_setname_np(pthread_self(), b->name);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!has_queued(b) && !b->durable_head && !(b->stopping && drained(b)))
            pthread_cond_wait(&b->wake, &b->mu);
        if (b->durable_head) {
            batch_op *ops = b->durable_head;
            b->durable_head = b->durable_tail = NULL;
            pthread_mutex_unlock(&b->mu);
            finish_batch(b, ops);
            pthread_mutex_lock(&b->mu);
            continue;
        }
        if (!has_queued(b)) break; /* stopping, and everything is done */
        size_t n = 0;
        batch_op *last = NULL;
        batch_op *ops = detach_batch(b, &n, &last);
        pthread_mutex_unlock(&b->mu);
        size_t big = atomic_load_explicit(&b->largest, memory_order_relaxed);
        if (n > big) atomic_store_explicit(&b->largest, n, memory_order_relaxed);
        bool wrote = run_batch(b, ops);
        pthread_mutex_lock(&b->mu);
        if (b->log_fd >= 0 && (has_queued(b) || b->syncing || b->durable_head)) {
            hand_to_syncer(b, ops, last, wrote);
            continue;
        }
        /* Nothing to overlap the sync with (or no log): two thread
         * hand-offs would only add latency. */
        pthread_mutex_unlock(&b->mu);
        if (b->log_fd >= 0) sync_log(b, ops, wrote);
        finish_batch(b, ops);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    stop_syncer(b);
    return NULL;
}

/* Syncs the log for each committed batch while the writer runs the
 * previous dones and commits the next batch, then hands the batch back for
 * its dones. */
static void *syncer_main(void *arg)
{
    qg_batcher *b = arg;
    name_helper_thread(b, "sync");
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->committed && !b->writer_exited) pthread_cond_wait(&b->synwake, &b->mu);
        if (!b->committed) break;
        batch_op *ops = b->committed, *last = b->committed_last;
        bool wrote = b->committed_wrote;
        b->committed = NULL;
        b->syncing = true;
        pthread_cond_signal(&b->picked);
        pthread_mutex_unlock(&b->mu);
        sync_log(b, ops, wrote);
        pthread_mutex_lock(&b->mu);
        if (b->durable_tail)
            b->durable_tail->next = ops;
        else
            b->durable_head = ops;
        b->durable_tail = last;
        b->syncing = false;
        pthread_cond_signal(&b->wake);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void checkpoint(qg_batcher *b)
{
    qg_conn *c = NULL;
    qg_error err = {0};
    qg_status rc = qg_store_acquire(b->store, &c, &err);
    if (!rc) {
        rc = qg_conn_exec(c, "PRAGMA wal_checkpoint(PASSIVE)", NULL, 0, NULL, &err);
        qg_store_release(b->store, c);
    }
    if (rc)
        qg_warn("%s: background checkpoint: %s", b->name, err.msg);
    else
        atomic_fetch_add_explicit(&b->checkpoints, 1, memory_order_relaxed);
}

static void *checkpointer_main(void *arg)
{
    qg_batcher *b = arg;
    name_helper_thread(b, "ckpt");
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->since_ckpt < CHECKPOINT_EVERY_OPS && !b->stopping)
            pthread_cond_wait(&b->ckwake, &b->mu);
        if (b->stopping) break;
        b->since_ckpt = 0;
        pthread_mutex_unlock(&b->mu);
        checkpoint(b);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* PRAGMA name=value on the writer's connection; nothing on a backend
 * without PRAGMAs. */
static qg_status writer_pragma(qg_batcher *b, const char *name, const char *value, qg_error *err)
{
    if (strcmp(qg_store_backend(b->store), "sqlite") != 0) return QG_OK;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA %s=%s", name, value);
    return qg_conn_exec(b->conn, sql, NULL, 0, NULL, err);
}

static qg_status set_sync(qg_batcher *b, const char *mode, qg_error *err)
{
    return writer_pragma(b, "synchronous", mode, err);
}

static qg_status int_cb(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_int(row, 0);
    return QG_OK;
}

/* Sets PRAGMA name to value on the writer's connection, keeping the value
 * it had in *was for restore_pragma (SQLite only). */
static qg_status swap_pragma(qg_batcher *b, const char *name, int64_t value, int64_t *was,
                             qg_error *err)
{
    if (strcmp(qg_store_backend(b->store), "sqlite") != 0) return QG_OK;
    char sql[64], v[24];
    snprintf(sql, sizeof sql, "PRAGMA %s", name);
    qg_status rc = qg_conn_query(b->conn, sql, NULL, 0, int_cb, was, err);
    snprintf(v, sizeof v, "%" PRId64, value);
    return rc ? rc : writer_pragma(b, name, v, err);
}

static qg_status restore_pragma(qg_batcher *b, const char *name, int64_t was, qg_error *err)
{
    char v[24];
    snprintf(v, sizeof v, "%" PRId64, was);
    return writer_pragma(b, name, v, err);
}

/* A batch under load dirties thousands of pages (a signal's row is about a
 * page of its own once its analysis is in). Past SQLite's default cache
 * (2 MiB) the pager spills dirty pages into the log in the middle of the
 * transaction, and a page dirtied again is written twice: 8-10% of the
 * writer's time per signal (docs/signals.md, "Eleventh round"). The
 * pool's setting comes back when the batcher ends. */
#define WRITER_CACHE_KIB 32768
static qg_status widen_cache(qg_batcher *b, qg_error *err)
{
    return swap_pragma(b, "cache_size", -WRITER_CACHE_KIB, &b->pool_cache_size, err);
}

/* With the checkpointer running, the writer's own automatic checkpoint
 * only stays as a net for a log the checkpointer cannot keep short: at
 * SQLite's default (1000 pages) it ran inside the writer's commits once
 * the log had grown past it, and waited there for the disk to sync the
 * database file while every submitter, and through the write-ahead bound
 * every signal worker, waited for the writer (docs/signals.md, "Twelfth
 * round"). The pool's setting comes back when the batcher ends. */
#define WRITER_AUTOCHECKPOINT_PAGES 20000
static void checkpoint_aside(qg_batcher *b)
{
    qg_error err = {0};
    if (swap_pragma(b, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES, &b->pool_autockpt,
                    &err)) {
        qg_warn("%s: %s; the writer checkpoints as before", b->name, err.msg);
        b->pool_autockpt = -1;
    }
}

/* Opens the connection's log for the syncer and lets COMMIT skip its own
 * sync. False (each COMMIT syncing, synchronous=FULL) when the backend has
 * no such log or it cannot be opened. The directory is synced once so the
 * log file's own entry is durable too. */
static bool open_log(qg_batcher *b)
{
    char path[4096], dir[4096];
    qg_error err = {0};
    if (qg_conn_log_path(b->conn, path, sizeof path, &err)) return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        qg_warn("%s: %s: %s; each commit syncs instead", b->name, path, strerror(errno));
        return false;
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int dfd = open(slash ? (*dir ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    if (set_sync(b, "NORMAL", &err)) {
        qg_warn("%s: %s; each commit syncs instead", b->name, err.msg);
        close(fd);
        return false;
    }
    b->log_fd = fd;
    return true;
}

qg_status qg_batcher_new(qg_store *s, const char *name, int batch_max, size_t queue_max,
                         qg_batch_sync sync, qg_batcher **out, qg_error *err)
{
    qg_batcher *b = qg_xcalloc(1, sizeof *b);
    b->store = s;
    snprintf(b->name, sizeof b->name, "%s", name && *name ? name : "qg-batch");
    b->batch_max = batch_max > 0 ? batch_max : 4096;
    b->queue_max = queue_max > 0 ? queue_max : (size_t)1 << 20;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->wake, NULL);
    pthread_cond_init(&b->ckwake, NULL);
    pthread_cond_init(&b->synwake, NULL);
    pthread_cond_init(&b->picked, NULL);
    pthread_cond_init(&b->room, NULL);
    b->log_fd = -1;
    b->pool_autockpt = -1;
    qg_status rc = qg_store_acquire(s, &b->conn, err);
    if (!rc && (sync != QG_BATCH_SYNC_PIPELINED || !open_log(b))) rc = set_sync(b, "FULL", err);
    if (!rc) rc = widen_cache(b, err);
    if (!rc && b->log_fd >= 0) {
        b->syncer_started = pthread_create(&b->syncer, NULL, syncer_main, b) == 0;
        if (!b->syncer_started)
            rc = qg_error_set(err, QG_ENOMEM, "%s: cannot start the syncer thread", b->name);
    }
    if (!rc && pthread_create(&b->thread, NULL, writer_main, b) != 0)
        rc = qg_error_set(err, QG_ENOMEM, "%s: cannot start the writer thread", b->name);
    if (rc) {
        if (b->syncer_started) {
            stop_syncer(b);
            pthread_join(b->syncer, NULL);
        }
        if (b->log_fd >= 0) close(b->log_fd);
        if (b->conn) qg_store_release(s, b->conn);
        pthread_cond_destroy(&b->synwake);
        pthread_cond_destroy(&b->picked);
        pthread_cond_destroy(&b->room);
        pthread_cond_destroy(&b->ckwake);
        pthread_cond_destroy(&b->wake);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return rc;
    }
    /* Without it SQLite still checkpoints, only inside a commit. */
    if (strcmp(qg_store_backend(s), "sqlite") == 0)
        b->checkpointer_started = pthread_create(&b->checkpointer, NULL, checkpointer_main, b) == 0;
    if (b->checkpointer_started) checkpoint_aside(b);
    *out = b;
    return QG_OK;
}

static qg_status enqueue(qg_batcher *b, bool first, qg_batch_apply_fn apply, qg_batch_done_fn done,
                         void *arg)
{
    batch_op *o = qg_xcalloc(1, sizeof *o);
    o->apply = apply;
    o->done = done;
    o->arg = arg;
    pthread_mutex_lock(&b->mu);
    size_t queued = b->ordinary.n + b->first.n;
    if (b->stopping || queued >= b->queue_max) {
        pthread_mutex_unlock(&b->mu);
        free(o);
        return QG_EAGAIN;
    }
    bool was_empty = queued == 0;
    queue_push(first ? &b->first : &b->ordinary, o);
    pthread_mutex_unlock(&b->mu);
    /* The writer only sleeps on an empty queue. */
    if (was_empty) pthread_cond_signal(&b->wake);
    return QG_OK;
}

qg_status qg_batcher_submit(qg_batcher *b, qg_batch_apply_fn apply, qg_batch_done_fn done,
                            void *arg)
{
    return enqueue(b, false, apply, done, arg);
}

qg_status qg_batcher_submit_first(qg_batcher *b, qg_batch_apply_fn apply, qg_batch_done_fn done,
                                  void *arg)
{
    return enqueue(b, true, apply, done, arg);
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished;
    qg_batch_apply_fn apply;
    void *arg;
    qg_status rc;
    qg_error err;
} waiter;

static qg_status waiter_apply(qg_conn *c, void *arg, qg_error *err)
{
    waiter *w = arg;
    return w->apply(c, w->arg, err);
}

static void waiter_done(void *arg, qg_status rc, const qg_error *err)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    if (err) w->err = *err;
    w->finished = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

qg_status qg_batcher_run(qg_batcher *b, qg_batch_apply_fn apply, void *arg, qg_error *err)
{
    waiter w = {.apply = apply, .arg = arg};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    qg_status rc = qg_batcher_submit(b, apply ? waiter_apply : NULL, waiter_done, &w);
    if (rc) {
        qg_error_set(err, rc, "the database writer is full or stopping; try again");
    } else {
        pthread_mutex_lock(&w.mu);
        while (!w.finished) pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
        if (rc && err) *err = w.err;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

typedef struct {
    qg_batch_apply_fn apply;
    void *arg;
} whole_op;

static qg_status apply_whole(qg_conn *c, void *arg, qg_error *err)
{
    whole_op *w = arg;
    qg_status rc = qg_conn_exec(c, "SAVEPOINT qg_whole", NULL, 0, NULL, err);
    if (rc) return rc;
    rc = w->apply(c, w->arg, err);
    qg_error ignored = {0};
    if (rc) (void)qg_conn_exec(c, "ROLLBACK TO SAVEPOINT qg_whole", NULL, 0, NULL, &ignored);
    (void)qg_conn_exec(c, "RELEASE SAVEPOINT qg_whole", NULL, 0, NULL, &ignored);
    return rc;
}

qg_status qg_batcher_run_whole(qg_batcher *b, qg_batch_apply_fn apply, void *arg, qg_error *err)
{
    whole_op w = {.apply = apply, .arg = arg};
    return qg_batcher_run(b, apply_whole, &w, err);
}

void qg_batcher_wait_room(qg_batcher *b, size_t max_queued, const atomic_bool *stop)
{
    pthread_mutex_lock(&b->mu);
    b->room_waiters++;
    while (b->ordinary.n > max_queued && !b->stopping && !(stop && atomic_load(stop))) {
        /* A bounded wait: a stop flag is not signalled through room. */
        struct timespec ts = qg_time_deadline(CLOCK_REALTIME, 50);
        pthread_cond_timedwait(&b->room, &b->mu, &ts);
    }
    b->room_waiters--;
    pthread_mutex_unlock(&b->mu);
}

void qg_batcher_get_stats(qg_batcher *b, qg_batcher_stats *out)
{
    out->ops = atomic_load_explicit(&b->ops, memory_order_relaxed);
    out->failed = atomic_load_explicit(&b->failed, memory_order_relaxed);
    out->batches = atomic_load_explicit(&b->batches, memory_order_relaxed);
    out->commit_us = atomic_load_explicit(&b->commit_us, memory_order_relaxed);
    out->checkpoints = atomic_load_explicit(&b->checkpoints, memory_order_relaxed);
    out->largest = atomic_load_explicit(&b->largest, memory_order_relaxed);
    out->log_sync = b->log_fd >= 0;
    pthread_mutex_lock(&b->mu);
    out->queued = b->ordinary.n + b->first.n;
    pthread_mutex_unlock(&b->mu);
}

void qg_batcher_free(qg_batcher *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    pthread_cond_signal(&b->wake);
    pthread_cond_signal(&b->ckwake);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    if (b->syncer_started) pthread_join(b->syncer, NULL); /* it drains, then sees writer_exited */
    if (b->log_fd >= 0) close(b->log_fd);
    if (b->checkpointer_started) pthread_join(b->checkpointer, NULL);
    qg_error err = {0};
    if (set_sync(b, "NORMAL", &err) ||
        (b->pool_cache_size && restore_pragma(b, "cache_size", b->pool_cache_size, &err)) ||
        (b->pool_autockpt >= 0 && restore_pragma(b, "wal_autocheckpoint", b->pool_autockpt, &err)))
        qg_warn("%s: %s", b->name, err.msg);
    qg_store_release(b->store, b->conn);
    pthread_cond_destroy(&b->synwake);
    pthread_cond_destroy(&b->picked);
    pthread_cond_destroy(&b->room);
    pthread_cond_destroy(&b->ckwake);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
