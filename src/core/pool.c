/*
 * pool.c - a parallel-for over an atomic work counter (workers are joined
 * before it returns), and the long-lived worker pool with a FIFO queue and a
 * completion step that the server runs requests and jobs on.
 */
#include <quantgate/pool.h>

#include <quantgate/mem.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
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

/* ---- worker pool ---- */

typedef struct work_item {
    struct work_item *next;
    qg_work_fn work, done;
    void *arg;
} work_item;

struct qg_workpool {
    pthread_mutex_t mu;
    pthread_cond_t has_work; /* signalled on submit and on shutdown */
    pthread_cond_t idle;     /* signalled when pending drops to zero */
    work_item *head, *tail;
    size_t pending; /* queued + running */
    bool closing;
    int nthreads;
    pthread_t *threads;
    char name[16];
};

static void *pool_thread(void *p)
{
    qg_workpool *pool = p;
    pthread_setname_np(pthread_self(), "qg-pool");
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->head && !pool->closing) pthread_cond_wait(&pool->has_work, &pool->mu);
        if (!pool->head) break; /* closing and drained */
        work_item *it = pool->head;
        pool->head = it->next;
        if (!pool->head) pool->tail = NULL;
        pthread_mutex_unlock(&pool->mu);
        it->work(it->arg);
        if (it->done) it->done(it->arg);
        free(it);
        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0) pthread_cond_broadcast(&pool->idle);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

qg_workpool *qg_workpool_new(int threads, const char *name)
{
    if (threads <= 0) threads = qg_cpu_count();
    qg_workpool *p = qg_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->has_work, NULL);
    pthread_cond_init(&p->idle, NULL);
    snprintf(p->name, sizeof p->name, "%s", name ? name : "qg-pool");
    p->threads = qg_xcalloc((size_t)threads, sizeof *p->threads);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_thread, p) != 0) break;
        char tname[16];
        snprintf(tname, sizeof tname, "%.10s-%d", p->name, i);
        pthread_setname_np(p->threads[i], tname);
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        fprintf(stderr, "quantgate: cannot start worker threads for %s\n", p->name);
        abort();
    }
    return p;
}

qg_status qg_workpool_submit(qg_workpool *p, qg_work_fn run, qg_work_fn done, void *arg)
{
    work_item *it = qg_xmalloc(sizeof *it);
    *it = (work_item){.work = run, .done = done, .arg = arg};
    pthread_mutex_lock(&p->mu);
    if (p->closing) {
        pthread_mutex_unlock(&p->mu);
        free(it);
        return QG_EAGAIN;
    }
    if (p->tail)
        p->tail->next = it;
    else
        p->head = it;
    p->tail = it;
    p->pending++;
    pthread_cond_signal(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    return QG_OK;
}

size_t qg_workpool_pending(qg_workpool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->pending;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void qg_workpool_shutdown(qg_workpool *p)
{
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->has_work);
    while (p->pending > 0) pthread_cond_wait(&p->idle, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void qg_workpool_free(qg_workpool *p)
{
    if (!p) return;
    qg_workpool_shutdown(p);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->has_work);
    pthread_cond_destroy(&p->idle);
    free(p->threads);
    free(p);
}
