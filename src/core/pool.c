/*
 * pool.c - a parallel-for over an atomic work counter. Workers are joined
 * before return; nothing outlives the call.
 */
#include <quantgate/pool.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    size_t n;
    atomic_size_t next;
    qg_job_fn fn;
    void *ud;
} work;

typedef struct {
    work *w;
    int id;
} worker_arg;

static void *worker_main(void *p)
{
    worker_arg *a = p;
    for (;;) {
        size_t i = atomic_fetch_add(&a->w->next, 1);
        if (i >= a->w->n) break;
        a->w->fn(a->w->ud, i, a->id);
    }
    return NULL;
}

int qg_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

qg_status qg_parallel_for(size_t n, int threads, qg_job_fn fn, void *ud)
{
    if (threads <= 0) threads = qg_cpu_count();
    if ((size_t)threads > n) threads = n ? (int)n : 1;
    work w = {.n = n, .fn = fn, .ud = ud};
    atomic_init(&w.next, 0);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    worker_arg *args = calloc((size_t)threads, sizeof *args);
    if (!tids || !args) {
        free(tids);
        free(args);
        return QG_ENOMEM;
    }
    int started = 0;
    for (int t = 1; t < threads; t++) {
        args[t] = (worker_arg){&w, t};
        if (pthread_create(&tids[t], NULL, worker_main, &args[t]) != 0) break;
        started = t;
    }
    args[0] = (worker_arg){&w, 0};
    worker_main(&args[0]);
    for (int t = 1; t <= started; t++) pthread_join(tids[t], NULL);
    free(tids);
    free(args);
    return QG_OK;
}
