/*
 * pipeline.c - the pipeline's lifecycle: a bounded FIFO queue, the worker
 * threads that take signals off it (stages.c runs them), the sweeper that
 * re-queues deferred signals whose time has come (and received ones a full
 * queue turned away), resume at start, pause, the dead-letter queue,
 * outcomes, counters and /metrics.
 *
 * A signal id is in the "queued" set from the moment it is queued until
 * its last write has committed (a barrier op on the batcher removes it),
 * so a sweep that reads the database never queues a signal that is being
 * or has just been processed.
 */
#include "signal/pipeline_int.h"

#include <quantgate/config.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- the id set ---- */

static void idset_remove(qg_pipeline *p, const char *id)
{
    pthread_mutex_lock(&p->mu);
    (void)qg_idset_remove(&p->ids, id);
    pthread_mutex_unlock(&p->mu);
}

typedef struct release_op {
    qg_pipeline *p;
    char id[QG_ID_MAX];
} release_op;

static void release_done(void *arg, qg_status rc, const qg_error *err)
{
    release_op *r = arg;
    idset_remove(r->p, r->id);
    free(r);
}

/* The id leaves the set once everything written for it has committed. */
static void release_after_commit(qg_pipeline *p, const char *id)
{
    release_op *r = qg_xcalloc(1, sizeof *r);
    r->p = p;
    snprintf(r->id, sizeof r->id, "%s", id);
    if (qg_batcher_submit(p->cfg.batcher, NULL, release_done, r) != QG_OK) release_done(r, 0, NULL);
}

/* ---- the queue ---- */

bool qg_pipeline_push(qg_pipeline *p, qg_pjob *j)
{
    pthread_mutex_lock(&p->mu);
    bool ok = false;
    if (atomic_load(&p->stop)) {
        /* stays in the database for the next start */
    } else if (p->queued >= p->cfg.queue_max) {
        p->overflowed = true;
    } else if (qg_idset_add(&p->ids, j->sig.id)) {
        j->next = NULL;
        if (p->tail)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
        p->queued++;
        ok = true;
        /* Busy workers take the next job themselves; a paused pipeline
         * wakes nobody (a wake per accepted signal costs the webhook). */
        if (p->idle > 0 && !atomic_load(&p->paused)) pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    if (!ok) qg_pjob_free(j);
    return ok;
}

bool qg_pipeline_sleep(qg_pipeline *p, int64_t ms)
{
    struct timespec ts = qg_time_deadline(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->stop))
        if (pthread_cond_timedwait(&p->stop_cv, &p->mu, &ts) == ETIMEDOUT) break;
    bool stop = atomic_load(&p->stop);
    pthread_mutex_unlock(&p->mu);
    return stop;
}

static void *worker_main(void *arg)
{
    qg_pipeline *p = arg;
    pthread_setname_np(pthread_self(), "qg-signal");
    for (;;) {
        /* Back-pressure from the single writer: with more work queued for
         * it than this, a new signal would only lengthen the queue (its
         * memory, and the time from a signal's analysis to its stored
         * state) while taking the CPU the writer needs to shorten it.
         * Webhooks' inserts do not wait behind it (submit_first). */
        qg_batcher_wait_room(p->cfg.batcher, p->cfg.write_ahead, &p->stop);
        pthread_mutex_lock(&p->mu);
        while (!atomic_load(&p->stop) && (atomic_load(&p->paused) || !p->head)) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
        }
        if (atomic_load(&p->stop)) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        qg_pjob *j = p->head;
        p->head = j->next;
        if (!p->head) p->tail = NULL;
        p->queued--;
        atomic_fetch_add(&p->in_flight, 1);
        pthread_mutex_unlock(&p->mu);

        if (qg_pipeline_run_job(p, j)) qg_pipeline_job_finished(p, j);
    }
    return NULL;
}

void qg_pipeline_job_finished(qg_pipeline *p, qg_pjob *j)
{
    release_after_commit(p, j->sig.id);
    atomic_fetch_sub(&p->in_flight, 1);
    qg_pjob_free(j);
}

void qg_pipeline_repush(qg_pipeline *p, qg_pjob *j)
{
    pthread_mutex_lock(&p->mu);
    bool stopping = atomic_load(&p->stop);
    if (!stopping) {
        /* Its id is still in the set: it never left the pipeline. */
        j->next = p->head;
        p->head = j;
        if (!p->tail) p->tail = j;
        p->queued++;
        atomic_fetch_sub(&p->in_flight, 1); /* a worker counts it again */
        if (p->idle > 0) pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    if (stopping) qg_pipeline_job_finished(p, j); /* resumable: the next start goes on */
}

bool qg_pipeline_post_room(qg_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->posted >= p->cfg.notify_queue && !atomic_load(&p->stop))
        pthread_cond_wait(&p->posted_cv, &p->mu);
    bool ok = !atomic_load(&p->stop);
    if (ok) p->posted++;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

void qg_pipeline_posted_back(qg_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->posted--;
    pthread_cond_broadcast(&p->posted_cv);
    pthread_mutex_unlock(&p->mu);
}

void qg_pipeline_enqueue(qg_pipeline *p, const qg_signal *s)
{
    if (!p || !s) return;
    qg_pjob *j = qg_xcalloc(1, sizeof *j);
    j->sig = *s;
    j->start = ST_CONFLUENCE;
    (void)qg_pipeline_push(p, j);
}

/* ---- loading signals back from the database ---- */

static qg_signal_source source_parse(const char *s)
{
    if (s && !strcmp(s, "detector")) return QG_SIGNAL_DETECTOR;
    if (s && !strcmp(s, "api")) return QG_SIGNAL_API;
    return QG_SIGNAL_WEBHOOK;
}

#define JOB_COLS                                                                                   \
    "id, correlation_id, payload, state, stage, session, score, analysis, plan_result, source"

/* A job from a row of JOB_COLS; NULL (with a warning) when the stored
 * payload no longer parses. */
static qg_pjob *job_from_row(const qg_row *row)
{
    const char *id = qg_row_text(row, 0), *payload = qg_row_text(row, 2);
    qg_pjob *j = qg_xcalloc(1, sizeof *j);
    qg_error err = {0};
    if (!id || !payload ||
        qg_signal_parse(payload, strlen(payload), INT64_MAX / 4, &j->sig, NULL, &err)) {
        qg_warn("signals: %s: stored payload does not parse (%s); left as is", id ? id : "?",
                err.msg);
        free(j);
        return NULL;
    }
    snprintf(j->sig.id, sizeof j->sig.id, "%s", id);
    const char *cor = qg_row_text(row, 1);
    snprintf(j->sig.correlation_id, sizeof j->sig.correlation_id, "%s", cor ? cor : "");
    j->sig.source = source_parse(qg_row_text(row, 9));
    const char *sess = qg_row_text(row, 5);
    snprintf(j->session, sizeof j->session, "%s", sess ? sess : "");
    if (!qg_row_is_null(row, 6)) {
        j->has_score = true;
        j->score = qg_row_double(row, 6);
    }
    const char *an = qg_row_text(row, 7), *pr = qg_row_text(row, 8);
    j->analysis = an ? qg_xstrdup(an) : NULL;
    j->plan_result = pr ? qg_xstrdup(pr) : NULL;
    j->resumed = true;
    const char *state = qg_row_text(row, 3);
    if (!state || !strcmp(state, QG_SIG_RECEIVED))
        j->start = ST_CONFLUENCE;
    else if (!strcmp(state, QG_SIG_DEFERRED))
        j->start = ST_POLICY; /* the filters before it passed already */
    else if (!strcmp(state, QG_SIG_ANALYSED))
        j->start = ST_PLAN;
    else if (!strcmp(state, QG_SIG_NOTIFIED))
        j->start = ST_DONE;
    else
        j->start = ST_DONE;
    return j;
}

typedef struct sweep {
    qg_pipeline *p;
    size_t n;
} sweep;

static qg_status sweep_row(void *ud, const qg_row *row)
{
    sweep *s = ud;
    qg_pjob *j = job_from_row(row);
    if (j && qg_pipeline_push(s->p, j)) s->n++;
    return QG_OK;
}

/* Queues unfinished signals: deferred ones whose time has come, and when
 * active also received, analysed and notified ones. */
static qg_status sweep_db(qg_pipeline *p, bool active, size_t *n, qg_error *err)
{
    /* Everything written so far has committed: the rows read below are
     * not older than what the workers know. */
    qg_status rc = qg_batcher_run(p->cfg.batcher, NULL, NULL, err);
    if (rc) return rc;
    qg_conn *c = NULL;
    if ((rc = qg_store_acquire(p->cfg.store, &c, err))) return rc;
    sweep s = {.p = p};
    qg_val v[] = {QG_VINT(qg_time_now_ms() - p->defer_ms)};
    if (active)
        rc = qg_conn_query(c,
                           "SELECT " JOB_COLS " FROM signals WHERE state IN ('received', "
                           "'analysed', 'notified') OR (state = 'deferred' AND state_at <= ?) "
                           "ORDER BY received_at, id",
                           v, 1, sweep_row, &s, err);
    else
        rc = qg_conn_query(c,
                           "SELECT " JOB_COLS " FROM signals WHERE state = 'deferred' AND "
                           "state_at <= ? ORDER BY received_at, id",
                           v, 1, sweep_row, &s, err);
    qg_store_release(p->cfg.store, c);
    if (n) *n = s.n;
    return rc;
}

qg_status qg_pipeline_resume(qg_pipeline *p, size_t *n, qg_error *err)
{
    if (n) *n = 0;
    pthread_mutex_lock(&p->mu);
    p->overflowed = false;
    pthread_mutex_unlock(&p->mu);
    size_t k = 0;
    qg_status rc = sweep_db(p, true, &k, err);
    atomic_fetch_add(&p->n_resumed, k);
    if (n) *n = k;
    return rc;
}

static void *sweeper_main(void *arg)
{
    qg_pipeline *p = arg;
    pthread_setname_np(pthread_self(), "qg-sigsweep");
    int64_t every = p->defer_ms < 1000 ? (p->defer_ms > 50 ? p->defer_ms : 50) : 1000;
    while (!qg_pipeline_sleep(p, every)) {
        if (atomic_load(&p->paused)) continue;
        pthread_mutex_lock(&p->mu);
        bool overflow = p->overflowed;
        bool room = p->queued < p->cfg.queue_max / 2;
        pthread_mutex_unlock(&p->mu);
        qg_error err = {0};
        size_t k = 0;
        if (overflow && room) {
            if (qg_pipeline_resume(p, &k, &err))
                qg_warn("signals: sweep after a full queue failed: %s", err.msg);
        } else if (sweep_db(p, false, &k, &err)) {
            qg_warn("signals: deferred sweep failed: %s", err.msg);
        }
    }
    return NULL;
}

/* ---- the rememberer ---- */

/* The members of an analysis that remembering reads (stages.c,
 * remember_input), so the rememberer need not parse the whole analysis
 * again. NULL without an analysis document. */
static cJSON *remembered_fields(const cJSON *an)
{
    if (!an) return NULL;
    static const char *const keep[] = {"score", "risk", "explanation"};
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(an, keep[i]);
        if (v) cJSON_AddItemToObject(o, keep[i], cJSON_Duplicate(v, true));
    }
    return o;
}

bool qg_pipeline_remember_later(qg_pipeline *p, const qg_pjob *j)
{
    /* The copy is made before taking the lock every worker shares. */
    qg_pjob *c = qg_xcalloc(1, sizeof *c);
    c->sig = j->sig;
    memcpy(c->session, j->session, sizeof c->session);
    c->has_score = j->has_score;
    c->score = j->score;
    c->analysis = j->analysis ? qg_xstrdup(j->analysis) : NULL;
    c->an_doc = remembered_fields(j->an_doc);
    pthread_mutex_lock(&p->rm_mu);
    while (p->rm_n >= p->cfg.remember_queue && !atomic_load(&p->stop))
        pthread_cond_wait(&p->rm_room_cv, &p->rm_mu);
    bool ok = !atomic_load(&p->stop);
    if (ok) {
        if (p->rm_tail)
            p->rm_tail->next = c;
        else
            p->rm_head = c;
        p->rm_tail = c;
        p->rm_n++;
        pthread_cond_signal(&p->rm_cv);
    }
    pthread_mutex_unlock(&p->rm_mu);
    if (!ok) qg_pjob_free(c);
    return ok;
}

/* A memory row whose transaction has ended, for the rememberer to index
 * (the writer thread only writes). */
typedef struct qg_pfin {
    qg_mem_pending *pa;
    bool ok;
    struct qg_pfin *next;
} qg_pfin;

/* After the remember op's commit (the writer thread). */
static void remembered(void *ud, qg_mem_pending *pa, bool ok)
{
    qg_pipeline *p = ud;
    atomic_fetch_add_explicit(ok ? &p->n_remembered : &p->n_remember_dropped, 1,
                              memory_order_relaxed);
    if (!pa) return;
    qg_pfin *f = qg_xcalloc(1, sizeof *f);
    f->pa = pa;
    f->ok = ok;
    pthread_mutex_lock(&p->rm_mu);
    if (p->fin_tail)
        p->fin_tail->next = f;
    else
        p->fin_head = f;
    p->fin_tail = f;
    pthread_cond_signal(&p->rm_cv);
    pthread_mutex_unlock(&p->rm_mu);
}

static size_t notify_posted(qg_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->posted;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static size_t remember_queued(qg_pipeline *p)
{
    pthread_mutex_lock(&p->rm_mu);
    size_t n = p->rm_n;
    pthread_mutex_unlock(&p->rm_mu);
    return n;
}

/* Indexes (or drops) the rows whose transactions ended. */
static void finish_all(qg_pipeline *p)
{
    pthread_mutex_lock(&p->rm_mu);
    qg_pfin *f = p->fin_head;
    p->fin_head = p->fin_tail = NULL;
    pthread_mutex_unlock(&p->rm_mu);
    /* In commit order, in groups. */
    qg_mem_pending *pa[64];
    bool ok[64];
    size_t n = 0;
    while (f) {
        qg_pfin *nx = f->next;
        pa[n] = f->pa;
        ok[n++] = f->ok;
        free(f);
        f = nx;
        if (n == 64 || !f) {
            qg_memory_add_finish_many(pa, ok, n);
            n = 0;
        }
    }
}

/* The next job to remember, or NULL to end: at shutdown the queue is still
 * worked through for QG_PIPE_REMEMBER_DRAIN_MS, since a signal whose
 * analysis is queued is already done and a restart would not remember it.
 * Committed rows are indexed first. Called with rm_mu held. */
static qg_pjob *next_to_remember(qg_pipeline *p, int64_t *drain_until)
{
    for (;;) {
        while (!atomic_load(&p->stop) && !p->rm_head && !p->fin_head)
            pthread_cond_wait(&p->rm_cv, &p->rm_mu);
        if (atomic_load(&p->stop)) {
            int64_t now = qg_time_now_ms();
            if (!*drain_until) *drain_until = now + QG_PIPE_REMEMBER_DRAIN_MS;
            if (!p->rm_head || now > *drain_until) return NULL;
        }
        if (!p->fin_head) break;
        pthread_mutex_unlock(&p->rm_mu);
        finish_all(p);
        pthread_mutex_lock(&p->rm_mu);
    }
    qg_pjob *j = p->rm_head;
    p->rm_head = j->next;
    if (!p->rm_head) p->rm_tail = NULL;
    p->rm_n--;
    pthread_cond_signal(&p->rm_room_cv);
    return j;
}

static void *rememberer_main(void *arg)
{
    qg_pipeline *p = arg;
    pthread_setname_np(pthread_self(), "qg-sigmemory");
    int64_t drain_until = 0;
    for (;;) {
        pthread_mutex_lock(&p->rm_mu);
        qg_pjob *j = next_to_remember(p, &drain_until);
        pthread_mutex_unlock(&p->rm_mu);
        if (!j) break;
        /* The row goes to the batcher with the "remember" event: one
         * group commit for many, instead of a transaction each. */
        qg_error err = {0};
        if (qg_pipeline_remember_async(p, j, remembered, p, &err)) {
            atomic_fetch_add_explicit(&p->n_remember_dropped, 1, memory_order_relaxed);
            qg_warn("signals: %s: not remembered: %s", j->sig.id, err.msg);
        }
        qg_pjob_free(j);
    }
    return NULL;
}

/* ---- lifecycle ---- */

static qg_status count_cb(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_int(row, 0);
    return QG_OK;
}

static qg_status text_cb(void *ud, const qg_row *row)
{
    const char *t = qg_row_text(row, 0);
    snprintf(ud, 16, "%s", t ? t : "");
    return QG_OK;
}

static qg_status load_state(qg_pipeline *p, qg_error *err)
{
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(p->cfg.store, &c, err);
    if (rc) return rc;
    int64_t n = 0;
    char paused[16] = "";
    rc = qg_conn_query(c, "SELECT COUNT(*) FROM signal_dlq", NULL, 0, count_cb, &n, err);
    if (!rc)
        rc = qg_conn_query(c, "SELECT value FROM signal_settings WHERE key = 'paused'", NULL, 0,
                           text_cb, paused, err);
    if (!rc) rc = qg_pipeline_load_policies(p, c, err);
    qg_store_release(p->cfg.store, c);
    atomic_store(&p->dlq, (long)n);
    atomic_store(&p->paused, !strcmp(paused, "true"));
    return rc;
}

static qg_status check_config(const qg_pipeline_config *c, qg_error *err)
{
    if (!c->store) return qg_error_set(err, QG_EINVAL, "signal pipeline: no store");
    if (!c->batcher) return qg_error_set(err, QG_EINVAL, "signal pipeline: no batcher");
    if (c->workers < 1 || c->workers > 256)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_WORKERS: %d: must be 1-256", c->workers);
    if (c->queue_max < 1)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_QUEUE_MAX: must be at least 1");
    if (c->min_confluences < 0)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_MIN_CONFLUENCES: must be >= 0");
    if (c->cooldown_ms < 0)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_COOLDOWN_S: must be >= 0");
    if (c->stage_retries < 0 || c->stage_retries > 20)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_RETRIES: %d: must be 0-20",
                            c->stage_retries);
    if (c->stage_retry_base_ms < 0)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_RETRY_BASE_MS: must be >= 0");
    if (c->similar_setups < 0 || c->similar_setups > QG_MEM_SEARCH_MAX - 1)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_SIMILAR: must be 0-%d",
                            QG_MEM_SEARCH_MAX - 1);
    if (c->plan && !cJSON_IsObject(c->plan))
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_PLAN: must be a JSON object");
    bool off = !c->model || !strcmp(c->model, "off") || !strcmp(c->model, "none");
    if (!off && !c->ai)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_MODEL: %s: no AI layer", c->model);
    return QG_OK;
}

qg_status qg_pipeline_new(const qg_pipeline_config *cfg, qg_pipeline **out, qg_error *err)
{
    *out = NULL;
    qg_status rc = check_config(cfg, err);
    if (rc) return rc;
    int64_t defer_s = 60, defer_max = 10;
    if ((rc = qg_config_int("QG_SIGNAL_DEFER_S", 60, &defer_s, err))) return rc;
    if ((rc = qg_config_int("QG_SIGNAL_DEFER_MAX", 10, &defer_max, err))) return rc;
    if (defer_s < 0 || defer_s > 7 * 86400)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_DEFER_S: must be 0-604800");
    if (defer_max < 1 || defer_max > 1000)
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_DEFER_MAX: must be 1-1000");

    qg_pipeline *p = qg_xcalloc(1, sizeof *p);
    p->cfg = *cfg;
    if (!p->cfg.remember_queue) p->cfg.remember_queue = QG_PIPE_REMEMBER_QUEUE;
    if (!p->cfg.notify_queue) p->cfg.notify_queue = QG_PIPE_NOTIFY_QUEUE;
    if (!p->cfg.write_ahead) p->cfg.write_ahead = QG_PIPE_WRITE_AHEAD;
    p->owner_id = cfg->owner_id && *cfg->owner_id ? qg_xstrdup(cfg->owner_id) : NULL;
    p->model = qg_xstrdup(cfg->model ? cfg->model : "off");
    p->analyse_on = strcmp(p->model, "off") != 0 && strcmp(p->model, "none") != 0;
    p->plan_json = cfg->plan ? cJSON_Duplicate(cfg->plan, true) : NULL;
    p->cfg.plan = p->plan_json;
    p->cfg.model = p->model;
    p->cfg.owner_id = p->owner_id;
    p->defer_ms = defer_s * 1000;
    p->defer_max = (int)defer_max;
    p->cooldown = qg_cooldown_new(cfg->cooldown_ms);
    pthread_rwlock_init(&p->policy_lock, NULL);
    pthread_mutex_init(&p->mu, NULL);
    qg_idset_init(&p->ids, QG_PIPE_IDSET_INITIAL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->stop_cv, NULL);
    pthread_mutex_init(&p->ev_mu, NULL);
    pthread_mutex_init(&p->rm_mu, NULL);
    pthread_cond_init(&p->rm_cv, NULL);
    pthread_cond_init(&p->rm_room_cv, NULL);
    pthread_cond_init(&p->posted_cv, NULL);
    if ((rc = load_state(p, err))) {
        qg_pipeline_free(p);
        return rc;
    }
    p->threads = qg_xcalloc((size_t)cfg->workers, sizeof *p->threads);
    for (int i = 0; i < cfg->workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p)) {
            qg_pipeline_free(p);
            return qg_error_set(err, QG_EIO, "signal pipeline: cannot start worker %d", i);
        }
        p->nthreads++;
    }
    if (pthread_create(&p->sweeper, NULL, sweeper_main, p)) {
        qg_pipeline_free(p);
        return qg_error_set(err, QG_EIO, "signal pipeline: cannot start the sweeper");
    }
    p->sweeper_started = true;
    if (pthread_create(&p->rememberer, NULL, rememberer_main, p)) {
        qg_pipeline_free(p);
        return qg_error_set(err, QG_EIO, "signal pipeline: cannot start the rememberer");
    }
    p->rememberer_started = true;
    qg_info("signals: pipeline started (%d workers, model %s%s)", cfg->workers, p->model,
            atomic_load(&p->paused) ? ", paused" : "");
    *out = p;
    return QG_OK;
}

void qg_pipeline_free(qg_pipeline *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->stop_cv);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&p->rm_mu); /* workers waiting for room in the remember queue */
    pthread_cond_broadcast(&p->rm_room_cv);
    pthread_mutex_unlock(&p->rm_mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    /* The alerts still with the notifier: stopped now, so their lanes
     * give them back within a tick (the jobs stay resumable). */
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->posted_cv);
    while (p->posted > 0) pthread_cond_wait(&p->posted_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (p->sweeper_started) pthread_join(p->sweeper, NULL);
    pthread_mutex_lock(&p->rm_mu);
    pthread_cond_broadcast(&p->rm_cv);
    pthread_mutex_unlock(&p->rm_mu);
    if (p->rememberer_started) pthread_join(p->rememberer, NULL);
    size_t unremembered = p->rm_n;
    for (qg_pjob *j = p->rm_head, *n; j; j = n) {
        n = j->next;
        qg_pjob_free(j);
    }
    if (unremembered) {
        atomic_fetch_add_explicit(&p->n_remember_dropped, unremembered, memory_order_relaxed);
        qg_warn("signals: %zu analyses not remembered at shutdown", unremembered);
    }
    /* The workers' last writes and id releases run on the batcher: wait for
     * them before the memory they point to goes. */
    if (p->cfg.batcher) {
        qg_error err = {0};
        (void)qg_batcher_run(p->cfg.batcher, NULL, NULL, &err);
    }
    finish_all(p); /* the memory rows committed since the rememberer stopped */
    for (qg_pjob *j = p->head, *n; j; j = n) {
        n = j->next;
        qg_pjob_free(j);
    }
    qg_idset_free(&p->ids);
    qg_pipeline_events_free(p);
    qg_policy_free(p->policies);
    qg_cooldown_free(p->cooldown);
    pthread_rwlock_destroy(&p->policy_lock);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->stop_cv);
    pthread_mutex_destroy(&p->ev_mu);
    pthread_mutex_destroy(&p->rm_mu);
    pthread_cond_destroy(&p->rm_cv);
    pthread_cond_destroy(&p->rm_room_cv);
    pthread_cond_destroy(&p->posted_cv);
    cJSON_Delete(p->plan_json);
    free(p->threads);
    free(p->owner_id);
    free(p->model);
    free(p);
}

qg_status qg_pipeline_reload_policies(qg_pipeline *p, qg_error *err)
{
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(p->cfg.store, &c, err);
    if (rc) return rc;
    rc = qg_pipeline_load_policies(p, c, err);
    qg_store_release(p->cfg.store, c);
    return rc;
}

/* ---- pause ---- */

typedef struct setting_op {
    const char *value;
} setting_op;

static qg_status apply_setting(qg_conn *c, void *arg, qg_error *err)
{
    setting_op *s = arg;
    qg_status rc =
        qg_conn_exec(c, "DELETE FROM signal_settings WHERE key = 'paused'", NULL, 0, NULL, err);
    qg_val v[] = {QG_VTEXT(s->value), QG_VINT(qg_time_now_ms())};
    if (!rc)
        rc = qg_conn_exec(c,
                          "INSERT INTO signal_settings (key, value, updated_at) VALUES "
                          "('paused', ?, ?)",
                          v, 2, NULL, err);
    return rc;
}

qg_status qg_pipeline_set_paused(qg_pipeline *p, bool paused, qg_error *err)
{
    setting_op s = {.value = paused ? "true" : "false"};
    qg_status rc = qg_batcher_run(p->cfg.batcher, apply_setting, &s, err);
    if (rc) return rc;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->paused, paused);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    qg_pipeline_push_event(p, "", paused ? "paused" : "running", NULL,
                           paused ? "pipeline paused" : "pipeline resumed", qg_time_now_ms());
    qg_info("signals: pipeline %s", paused ? "paused" : "resumed");
    return QG_OK;
}

bool qg_pipeline_paused(const qg_pipeline *p)
{
    return p && atomic_load(&((qg_pipeline *)p)->paused);
}

/* ---- the dead-letter queue ---- */

typedef struct dlq_load {
    qg_pjob *j;
    char stage[16];
    bool found;
} dlq_load;

static qg_status dlq_row(void *ud, const qg_row *row)
{
    dlq_load *l = ud;
    l->found = true;
    l->j = job_from_row(row);
    const char *st = qg_row_text(row, 10);
    snprintf(l->stage, sizeof l->stage, "%s", st ? st : "");
    return QG_OK;
}

static qg_status load_parked(qg_conn *c, const char *id, dlq_load *l, qg_error *err)
{
    qg_val v[] = {QG_VTEXT(id)};
    qg_status rc = qg_conn_query(c,
                                 "SELECT s.id, s.correlation_id, s.payload, s.state, s.stage, "
                                 "s.session, s.score, s.analysis, s.plan_result, s.source, "
                                 "d.stage FROM signal_dlq d JOIN signals s ON s.id = d.signal_id "
                                 "WHERE d.signal_id = ?",
                                 v, 1, dlq_row, l, err);
    if (rc) return rc;
    if (!l->found) return qg_error_set(err, QG_ENOTFOUND, "signal '%s' is not parked", id);
    if (!l->j)
        return qg_error_set(err, QG_EINVAL, "signal '%s': its stored payload does not parse", id);
    return QG_OK;
}

qg_status qg_pipeline_replay(qg_pipeline *p, qg_conn *c, const char *signal_id, qg_error *err)
{
    dlq_load l = {0};
    qg_status rc = load_parked(c, signal_id, &l, err);
    if (rc) {
        qg_pjob_free(l.j);
        return rc;
    }
    qg_pjob *j = l.j;
    int st = qg_pstage_parse(l.stage);
    /* A filter stage can only have failed on the database: run them all
     * again; from the analysis on, start at the stage that failed. */
    j->start = st < ST_ANALYSE ? ST_CONFLUENCE : (qg_pstage)st;
    if (j->start >= ST_PLAN && !j->analysis && p->analyse_on) j->start = ST_ANALYSE;
    qg_pstate s = {.state = j->analysis ? QG_SIG_ANALYSED : QG_SIG_RECEIVED,
                   .stage = st >= 0 ? (qg_pstage)st : ST_CONFLUENCE,
                   .reason = "replayed from the dead-letter queue",
                   .dlq_delete = true,
                   .update_signal = true};
    if ((rc = qg_pipeline_record(p, j, &s, true, err))) {
        qg_pjob_free(j);
        return rc;
    }
    atomic_fetch_sub(&p->dlq, 1);
    atomic_fetch_add(&p->n_replayed, 1);
    (void)qg_pipeline_push(p, j);
    return QG_OK;
}

qg_status qg_pipeline_discard(qg_pipeline *p, qg_conn *c, const char *signal_id, qg_error *err)
{
    dlq_load l = {0};
    qg_status rc = load_parked(c, signal_id, &l, err);
    if (!rc) {
        int st = qg_pstage_parse(l.stage);
        qg_pstate s = {.state = QG_SIG_FAILED,
                       .stage = st >= 0 ? (qg_pstage)st : ST_DONE,
                       .reason = "discarded from the dead-letter queue",
                       .dlq_delete = true};
        rc = qg_pipeline_record(p, l.j, &s, true, err);
        if (!rc) atomic_fetch_sub(&p->dlq, 1);
    }
    qg_pjob_free(l.j);
    return rc;
}

/* ---- outcomes ---- */

typedef struct outcome_op {
    const char *id, *outcome;
    bool has_pnl;
    double pnl;
    int64_t at;
} outcome_op;

static qg_status apply_outcome(qg_conn *c, void *arg, qg_error *err)
{
    outcome_op *o = arg;
    qg_val v[] = {QG_VTEXT(o->outcome), o->has_pnl ? QG_VDBL(o->pnl) : QG_VNULL, QG_VINT(o->at),
                  QG_VTEXT(o->id)};
    return qg_conn_exec(c, "UPDATE signals SET outcome = ?, pnl = ?, outcome_at = ? WHERE id = ?",
                        v, 4, NULL, err);
}

typedef struct job_load {
    qg_pjob *j;
    char state[16];
    bool found;
} job_load;

static qg_status job_row(void *ud, const qg_row *row)
{
    job_load *l = ud;
    l->found = true;
    l->j = job_from_row(row);
    const char *st = qg_row_text(row, 3);
    snprintf(l->state, sizeof l->state, "%s", st ? st : "");
    return QG_OK;
}

typedef struct mem_ids {
    char ids[8][QG_ID_MAX];
    int n;
} mem_ids;

static qg_status mem_id_row(void *ud, const qg_row *row)
{
    mem_ids *m = ud;
    const char *d = qg_row_text(row, 0);
    cJSON *o = d ? cJSON_Parse(d) : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "memory_id");
    if (cJSON_IsString(id) && m->n < 8) snprintf(m->ids[m->n++], QG_ID_MAX, "%s", id->valuestring);
    cJSON_Delete(o);
    return QG_OK;
}

qg_status qg_pipeline_outcome(qg_pipeline *p, qg_conn *c, const char *signal_id,
                              const char *outcome, bool has_pnl, double pnl, qg_error *err)
{
    job_load l = {0};
    qg_val v[] = {QG_VTEXT(signal_id)};
    qg_status rc =
        qg_conn_query(c, "SELECT " JOB_COLS " FROM signals WHERE id = ?", v, 1, job_row, &l, err);
    if (!rc && !l.found) rc = qg_error_set(err, QG_ENOTFOUND, "signal '%s' not found", signal_id);
    if (!rc && !l.j)
        rc = qg_error_set(err, QG_EINVAL, "signal '%s': its stored payload does not parse",
                          signal_id);
    outcome_op o = {signal_id, outcome, has_pnl, pnl, qg_time_now_ms()};
    if (!rc) rc = qg_batcher_run(p->cfg.batcher, apply_outcome, &o, err);
    if (!rc) {
        char detail[160];
        if (has_pnl)
            snprintf(detail, sizeof detail, "{\"outcome\":\"%s\",\"pnl\":%.17g}", outcome, pnl);
        else
            snprintf(detail, sizeof detail, "{\"outcome\":\"%s\",\"pnl\":null}", outcome);
        qg_pstate s = {
            .state = l.state, .stage = ST_OUTCOME, .reason = "outcome recorded", .detail = detail};
        rc = qg_pipeline_record(p, l.j, &s, true, err);
    }
    /* Memory: the analysis memory is written again with its outcome, so a
     * later signal's similar setups carry it in their text as well. A
     * failure here is logged: the outcome itself is stored. */
    if (!rc && p->cfg.memory && p->owner_id) {
        mem_ids m = {0};
        qg_error merr = {0};
        qg_status mrc = qg_conn_query(c,
                                      "SELECT detail FROM signal_events WHERE signal_id = ? AND "
                                      "stage = 'remember' ORDER BY id",
                                      v, 1, mem_id_row, &m, &merr);
        for (int i = 0; !mrc && i < m.n; i++) {
            qg_status f = qg_memory_forget(p->cfg.memory, c, p->owner_id, m.ids[i], &merr);
            if (f && f != QG_ENOTFOUND) mrc = f;
        }
        if (!mrc) mrc = qg_pipeline_remember(p, c, l.j, l.state, outcome, has_pnl, pnl, &merr);
        if (mrc) qg_warn("signals: %s: outcome not remembered: %s", signal_id, merr.msg);
    }
    qg_pjob_free(l.j);
    return rc;
}

/* ---- counters ---- */

void qg_pipeline_count(qg_pipeline *p, qg_pipe_count what)
{
    if (!p) return;
    atomic_uint_fast64_t *c = NULL;
    switch (what) {
    case QG_PIPE_COUNT_RECEIVED:
        c = &p->n_received;
        break;
    case QG_PIPE_COUNT_ACCEPTED:
        c = &p->n_accepted;
        break;
    case QG_PIPE_COUNT_IGNORED:
        c = &p->n_ignored;
        break;
    case QG_PIPE_COUNT_DUPLICATE:
        c = &p->n_duplicates;
        break;
    case QG_PIPE_COUNT_RATE_LIMITED:
        c = &p->n_rate_limited;
        break;
    }
    if (c) atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

#define LD(x) ((uint64_t)atomic_load_explicit(&(x), memory_order_relaxed))

void qg_pipeline_get_stats(qg_pipeline *p, qg_pipeline_stats *o)
{
    memset(o, 0, sizeof *o);
    if (!p) return;
    o->received = LD(p->n_received);
    o->accepted = LD(p->n_accepted);
    o->ignored = LD(p->n_ignored);
    o->duplicates = LD(p->n_duplicates);
    o->rate_limited = LD(p->n_rate_limited);
    o->filtered = LD(p->n_filtered);
    o->analysed = LD(p->n_analysed);
    o->notified = LD(p->n_notified);
    o->done = LD(p->n_done);
    o->failed = LD(p->n_failed);
    o->deferred = LD(p->n_deferred);
    o->escalated = LD(p->n_escalated);
    pthread_mutex_lock(&p->mu);
    o->queued = p->queued;
    pthread_mutex_unlock(&p->mu);
    o->in_flight = atomic_load(&p->in_flight);
    long d = atomic_load(&p->dlq);
    o->dlq = d > 0 ? (size_t)d : 0;
    o->paused = atomic_load(&p->paused);
}

static const char *const drop_names[DROP__COUNT] = {"confluence", "killzone",  "cooldown",
                                                    "policy",     "threshold", "defer_limit"};
static const char *const le_txt[QG_PIPE_BUCKETS] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                                    "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                                    "1",      "2.5",   "5",      "10"};

/* The group commit behind ingest and every state change: writes per
 * commit and the time in COMMIT tell whether the disk or the CPU sets the
 * pace. */
static qg_status metrics_writer(qg_batcher *b, qg_buf *out)
{
    qg_batcher_stats w;
    qg_batcher_get_stats(b, &w);
    return qg_buf_printf(
        out,
        "# HELP quantgate_signal_writer_ops_total Writes group-committed by the signal writer.\n"
        "# TYPE quantgate_signal_writer_ops_total counter\n"
        "quantgate_signal_writer_ops_total %" PRIu64 "\n"
        "# HELP quantgate_signal_writer_failed_total Writes whose transaction failed.\n"
        "# TYPE quantgate_signal_writer_failed_total counter\n"
        "quantgate_signal_writer_failed_total %" PRIu64 "\n"
        "# HELP quantgate_signal_writer_commits_total Transactions committed (one fsync each).\n"
        "# TYPE quantgate_signal_writer_commits_total counter\n"
        "quantgate_signal_writer_commits_total %" PRIu64 "\n"
        "# HELP quantgate_signal_writer_commit_seconds_total Time spent in COMMIT and syncing the "
        "log.\n"
        "# TYPE quantgate_signal_writer_commit_seconds_total counter\n"
        "quantgate_signal_writer_commit_seconds_total %.6f\n"
        "# HELP quantgate_signal_writer_queued Writes waiting for the next transaction.\n"
        "# TYPE quantgate_signal_writer_queued gauge\n"
        "quantgate_signal_writer_queued %zu\n"
        "# HELP quantgate_signal_writer_largest_batch Most writes one transaction has carried.\n"
        "# TYPE quantgate_signal_writer_largest_batch gauge\n"
        "quantgate_signal_writer_largest_batch %zu\n"
        "# HELP quantgate_signal_writer_checkpoints_total Background WAL checkpoints (SQLite).\n"
        "# TYPE quantgate_signal_writer_checkpoints_total counter\n"
        "quantgate_signal_writer_checkpoints_total %" PRIu64 "\n",
        w.ops, w.failed, w.batches, (double)w.commit_us / 1e6, w.queued, w.largest, w.checkpoints);
}

qg_status qg_pipeline_render_metrics(qg_pipeline *p, qg_buf *out)
{
    if (!p) return QG_OK;
    qg_pipeline_stats s;
    qg_pipeline_get_stats(p, &s);
    struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"received", "webhook requests that reached ingest", s.received},
        {"accepted", "signals stored and queued", s.accepted},
        {"ignored", "signals below the minimum confidence", s.ignored},
        {"duplicates", "repeated signals answered as duplicates", s.duplicates},
        {"rate_limited", "signals refused by a rate limit", s.rate_limited},
        {"filtered", "signals dropped by a pipeline stage", s.filtered},
        {"analysed", "signals analysed by the AI layer", s.analysed},
        {"notified", "signals whose notifications went out", s.notified},
        {"done", "signals finished", s.done},
        {"failed", "signals parked in the dead-letter queue", s.failed},
        {"deferred", "policy deferrals", s.deferred},
        {"escalated", "signals escalated", s.escalated},
        {"stage_retries", "stage attempts retried", LD(p->n_retries)},
        {"resumed", "unfinished signals queued again at start or after a full queue",
         LD(p->n_resumed)},
        {"replayed", "signals replayed from the dead-letter queue", LD(p->n_replayed)},
        {"write_errors", "pipeline writes that failed", LD(p->n_write_errors)},
        {"remembered", "analyses written to memory", LD(p->n_remembered)},
        {"remember_dropped",
         "analyses not written to memory (an error, or still queued 10 s "
         "into a shutdown)",
         LD(p->n_remember_dropped)},
    };
    qg_status rc = QG_OK;
    for (size_t i = 0; !rc && i < sizeof counters / sizeof counters[0]; i++)
        rc = qg_buf_printf(
            out,
            "# HELP quantgate_signals_%s_total %s.\n# TYPE quantgate_signals_%s_total "
            "counter\nquantgate_signals_%s_total %" PRIu64 "\n",
            counters[i].name, counters[i].help, counters[i].name, counters[i].name, counters[i].v);
    if (!rc)
        rc = qg_buf_puts(out, "# HELP quantgate_signals_dropped_total Signals dropped, by the "
                              "stage that dropped them.\n# TYPE quantgate_signals_dropped_total "
                              "counter\n");
    for (int i = 0; !rc && i < DROP__COUNT; i++)
        rc = qg_buf_printf(out, "quantgate_signals_dropped_total{reason=\"%s\"} %" PRIu64 "\n",
                           drop_names[i], LD(p->n_dropped[i]));
    if (!rc)
        rc = qg_buf_printf(
            out,
            "# HELP quantgate_signals_queued Signals waiting for a worker.\n"
            "# TYPE quantgate_signals_queued gauge\nquantgate_signals_queued %zu\n"
            "# HELP quantgate_signals_in_flight Signals a worker is processing or whose alert "
            "is with the notifier.\n"
            "# TYPE quantgate_signals_in_flight gauge\nquantgate_signals_in_flight %zu\n"
            "# HELP quantgate_signals_dlq Signals parked in the dead-letter queue.\n"
            "# TYPE quantgate_signals_dlq gauge\nquantgate_signals_dlq %zu\n"
            "# HELP quantgate_signals_paused 1 while the pipeline is paused.\n"
            "# TYPE quantgate_signals_paused gauge\nquantgate_signals_paused %d\n"
            "# HELP quantgate_signals_remember_queued Analyses waiting for the rememberer (at "
            "QG_SIGNAL_REMEMBER_QUEUE the workers wait).\n"
            "# TYPE quantgate_signals_remember_queued gauge\nquantgate_signals_remember_queued "
            "%zu\n"
            "# HELP quantgate_signals_notify_posted Signals whose alert is with the notifier (at "
            "QG_SIGNAL_NOTIFY_QUEUE the workers wait).\n"
            "# TYPE quantgate_signals_notify_posted gauge\nquantgate_signals_notify_posted %zu\n",
            s.queued, s.in_flight, s.dlq, s.paused ? 1 : 0, remember_queued(p), notify_posted(p));
    if (!rc) rc = metrics_writer(p->cfg.batcher, out);
    if (!rc)
        rc = qg_buf_puts(out, "# HELP quantgate_signal_stage_seconds Time a signal spends in "
                              "each pipeline stage.\n# TYPE quantgate_signal_stage_seconds "
                              "histogram\n");
    for (int st = 0; !rc && st < ST_DONE; st++) {
        uint64_t b[QG_PIPE_BUCKETS + 1], total = 0, cum = 0;
        for (int k = 0; k <= QG_PIPE_BUCKETS; k++) total += b[k] = LD(p->hist[st].bucket[k]);
        for (int k = 0; !rc && k <= QG_PIPE_BUCKETS; k++) {
            cum += b[k];
            rc = qg_buf_printf(out,
                               "quantgate_signal_stage_seconds_bucket{stage=\"%s\",le=\"%s\"} "
                               "%" PRIu64 "\n",
                               qg_pstage_name((qg_pstage)st),
                               k < QG_PIPE_BUCKETS ? le_txt[k] : "+Inf", cum);
        }
        if (!rc)
            rc = qg_buf_printf(out,
                               "quantgate_signal_stage_seconds_sum{stage=\"%s\"} %.6f\n"
                               "quantgate_signal_stage_seconds_count{stage=\"%s\"} %" PRIu64 "\n",
                               qg_pstage_name((qg_pstage)st), (double)LD(p->hist[st].sum_us) / 1e6,
                               qg_pstage_name((qg_pstage)st), total);
    }
    return rc;
}
