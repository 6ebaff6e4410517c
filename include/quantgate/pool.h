/*
 * pool.h - parallel work on a fixed number of threads.
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

#endif
