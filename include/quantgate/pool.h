/*
 * pool.h - parallel work on a fixed number of threads, and the worker pool
 * that runs background work for the server.
 *
 * qg_parallel_for runs fn(i) for every i in [0, n) on `threads` threads
 * that claim indices from a shared atomic counter, so uneven jobs balance
 * themselves. It returns when all are done. The caller's thread is one of
 * the workers, so threads == 1 runs inline with no thread created.
 */
#ifndef QUANTGATE_POOL_H
#define QUANTGATE_POOL_H

#include <quantgate/status.h>

#include <stddef.h>

typedef void (*qg_job_fn)(void *ud, size_t index, int worker);

/* threads <= 0 means the number of online CPUs. */
qg_status qg_parallel_for(size_t n, int threads, qg_job_fn fn, void *ud);

/* Number of online CPUs (at least 1). */
int qg_cpu_count(void);

/* ---- worker pool ----
 * A fixed set of threads taking work items from one FIFO queue, as libuv's
 * uv_queue_work: work(arg) runs on a pool thread, then done(arg), if given,
 * runs on the same thread right after. The completion step is where a caller
 * hands the result back to its own thread (the HTTP server posts it to the
 * event loop through h2o's multithread queue), so the pool itself knows
 * nothing about loops. Items are heap nodes owned by the pool. */
typedef struct qg_workpool qg_workpool;
typedef void (*qg_work_fn)(void *arg);

/* threads <= 0 means the number of online CPUs. name shows in thread names
 * (ps -L) as name-N. The caller owns the pool. */
qg_workpool *qg_workpool_new(int threads, const char *name);
/* Queues an item; QG_EAGAIN once qg_workpool_shutdown has been called. */
qg_status qg_workpool_submit(qg_workpool *p, qg_work_fn work, qg_work_fn done, void *arg);
/* Items queued or running. */
size_t qg_workpool_pending(qg_workpool *p);
/* Refuses new items, then waits until every queued item has run. */
void qg_workpool_shutdown(qg_workpool *p);
/* Shuts down (if not done yet), joins the threads and frees the pool. */
void qg_workpool_free(qg_workpool *p);

#endif
