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
 * Checkpoints: SQLite's automatic checkpoint runs inside the COMMIT that
 * takes the log past 1000 pages, copying every page back into the
 * database and syncing it while every submitter waits (a 10-20 ms stall
 * at thousands of writes a second). So on SQLite a checkpointer thread
 * runs PASSIVE checkpoints on a pool connection every few hundred writes:
 * they copy what is committed while the writer goes on, and the writer's
 * own automatic checkpoint, still there to restart the log from its
 * beginning, finds little left to copy.
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
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

struct qg_batcher {
    qg_store *store;
    qg_conn *conn;
    pthread_t thread;
    char name[16];
    int batch_max;
    size_t queue_max;

    pthread_mutex_t mu;
    pthread_cond_t wake;
    batch_op *head, *tail; /* under mu */
    size_t queued;         /* under mu */
    bool stopping;         /* under mu */

    /* the background checkpointer (SQLite) */
    pthread_t checkpointer;
    bool checkpointer_started;
    pthread_cond_t ckwake; /* under mu */
    uint64_t since_ckpt;   /* writes since the last checkpoint; under mu */

    _Atomic uint64_t ops, failed, batches, commit_us, checkpoints;
    _Atomic size_t largest;
};

/* Takes up to batch_max ops off the queue, waiting while it is empty.
 * NULL once stopping and drained. */
static batch_op *take_batch(qg_batcher *b, size_t *n_out)
{
    pthread_mutex_lock(&b->mu);
    while (!b->head && !b->stopping) pthread_cond_wait(&b->wake, &b->mu);
    batch_op *first = b->head, *last = NULL;
    size_t n = 0;
    for (batch_op *o = first; o && n < (size_t)b->batch_max; o = o->next) {
        last = o;
        n++;
    }
    if (last) {
        b->head = last->next;
        if (!b->head) b->tail = NULL;
        last->next = NULL;
        b->queued -= n;
    }
    pthread_mutex_unlock(&b->mu);
    *n_out = n;
    return first;
}

static bool has_writes(const batch_op *o)
{
    for (; o; o = o->next)
        if (o->apply) return true;
    return false;
}

/* Runs one batch in one transaction; every op gets its status. */
static void run_batch(qg_batcher *b, batch_op *ops)
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
}

/* Counts first, then calls the dones: a done may wake a waiter that reads
 * the statistics at once. */
static void finish_batch(qg_batcher *b, batch_op *ops, size_t n)
{
    uint64_t failed = 0;
    for (batch_op *o = ops; o; o = o->next)
        if (o->rc) failed++;
    if (b->checkpointer_started) {
        pthread_mutex_lock(&b->mu);
        b->since_ckpt += n;
        if (b->since_ckpt >= CHECKPOINT_EVERY_OPS) pthread_cond_signal(&b->ckwake);
        pthread_mutex_unlock(&b->mu);
    }
    atomic_fetch_add_explicit(&b->ops, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->failed, failed, memory_order_relaxed);
    size_t big = atomic_load_explicit(&b->largest, memory_order_relaxed);
    if (n > big) atomic_store_explicit(&b->largest, n, memory_order_relaxed);
    while (ops) {
        batch_op *next = ops->next;
        if (ops->done) ops->done(ops->arg, ops->rc, ops->rc ? &ops->err : NULL);
        free(ops);
        ops = next;
    }
}

static void *writer_main(void *arg)
{
    qg_batcher *b = arg;
    pthread_setname_np(pthread_self(), b->name);
    for (;;) {
        size_t n = 0;
        batch_op *ops = take_batch(b, &n);
        if (!ops) break;
        run_batch(b, ops);
        finish_batch(b, ops, n);
    }
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
    char name[16];
    snprintf(name, sizeof name, "%.10s-ckpt", b->name);
    pthread_setname_np(pthread_self(), name);
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

static qg_status set_sync(qg_batcher *b, const char *mode, qg_error *err)
{
    if (strcmp(qg_store_backend(b->store), "sqlite") != 0) return QG_OK;
    char sql[48];
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", mode);
    return qg_conn_exec(b->conn, sql, NULL, 0, NULL, err);
}

qg_status qg_batcher_new(qg_store *s, const char *name, int batch_max, size_t queue_max,
                         qg_batcher **out, qg_error *err)
{
    qg_batcher *b = qg_xcalloc(1, sizeof *b);
    b->store = s;
    snprintf(b->name, sizeof b->name, "%s", name && *name ? name : "qg-batch");
    b->batch_max = batch_max > 0 ? batch_max : 4096;
    b->queue_max = queue_max > 0 ? queue_max : (size_t)1 << 20;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->wake, NULL);
    pthread_cond_init(&b->ckwake, NULL);
    qg_status rc = qg_store_acquire(s, &b->conn, err);
    if (!rc) rc = set_sync(b, "FULL", err);
    if (!rc && pthread_create(&b->thread, NULL, writer_main, b) != 0)
        rc = qg_error_set(err, QG_ENOMEM, "%s: cannot start the writer thread", b->name);
    if (rc) {
        if (b->conn) qg_store_release(s, b->conn);
        pthread_cond_destroy(&b->ckwake);
        pthread_cond_destroy(&b->wake);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return rc;
    }
    /* Without it SQLite still checkpoints, only inside a commit. */
    if (strcmp(qg_store_backend(s), "sqlite") == 0)
        b->checkpointer_started = pthread_create(&b->checkpointer, NULL, checkpointer_main, b) == 0;
    *out = b;
    return QG_OK;
}

qg_status qg_batcher_submit(qg_batcher *b, qg_batch_apply_fn apply, qg_batch_done_fn done,
                            void *arg)
{
    batch_op *o = qg_xcalloc(1, sizeof *o);
    o->apply = apply;
    o->done = done;
    o->arg = arg;
    pthread_mutex_lock(&b->mu);
    if (b->stopping || b->queued >= b->queue_max) {
        pthread_mutex_unlock(&b->mu);
        free(o);
        return QG_EAGAIN;
    }
    if (b->tail)
        b->tail->next = o;
    else
        b->head = o;
    b->tail = o;
    bool was_empty = b->queued++ == 0;
    pthread_mutex_unlock(&b->mu);
    /* The writer only sleeps on an empty queue. */
    if (was_empty) pthread_cond_signal(&b->wake);
    return QG_OK;
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

void qg_batcher_get_stats(qg_batcher *b, qg_batcher_stats *out)
{
    out->ops = atomic_load_explicit(&b->ops, memory_order_relaxed);
    out->failed = atomic_load_explicit(&b->failed, memory_order_relaxed);
    out->batches = atomic_load_explicit(&b->batches, memory_order_relaxed);
    out->commit_us = atomic_load_explicit(&b->commit_us, memory_order_relaxed);
    out->checkpoints = atomic_load_explicit(&b->checkpoints, memory_order_relaxed);
    out->largest = atomic_load_explicit(&b->largest, memory_order_relaxed);
    pthread_mutex_lock(&b->mu);
    out->queued = b->queued;
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
    if (b->checkpointer_started) pthread_join(b->checkpointer, NULL);
    qg_error err = {0};
    if (set_sync(b, "NORMAL", &err)) qg_warn("%s: %s", b->name, err.msg);
    qg_store_release(b->store, b->conn);
    pthread_cond_destroy(&b->ckwake);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
