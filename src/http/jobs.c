/*
 * jobs.c - the registry of live backtest jobs, the job runner, and the
 * cache of loaded dataset bars.
 *
 * Registry: a small array of live jobs under one mutex, only touched when a
 * job is submitted, looked up or finishes, never on the progress path.
 * Progress, status and the cancel flag are atomics in the job itself, so the
 * SSE poller on the event loop reads them without taking any lock. A job is
 * reference counted: the runner holds one reference from submit to finish,
 * qg_jobs_find hands out more; the last qg_job_unref frees it. Unref never
 * touches the registry, so a stream may outlive qg_jobs_free.
 *
 * Runner: loads the dataset (through the cache), resamples and slices like
 * `quantgate backtest` (indicators warm up on the bars before `from`), runs
 * the engine with its progress callback feeding job->progress, and writes
 * the terminal row. The engine cannot be interrupted, so cancel is honoured
 * before the run and after it (a backtest takes seconds at most); a
 * cancelled run's results are discarded.
 *
 * Ordering of a job's end: row updated, then final_json set, then status
 * stored (seq_cst), then the job leaves the registry. A reader that sees a
 * terminal status therefore also sees final_json.
 */
#include "http/jobs.h"

#include "http/app.h"
#include "http/http.h"

#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qg_bars_ref {
    atomic_int refs;
    char *path;
    qg_bars bars;
    uint64_t used; /* LRU clock value of the last get */
};

struct qg_jobs {
    qg_app *app;
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when active drops to 0 */
    qg_job **live;
    size_t n, cap;
    int active;

    pthread_mutex_t cache_mu; /* never held while loading a file */
    qg_bars_ref *cache[QG_BARS_CACHE_SIZE];
    uint64_t clock;
};

const char *qg_job_status_name(qg_job_status s)
{
    static const char *const names[] = {"queued", "running", "done", "failed", "cancelled"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

bool qg_job_status_terminal(int s)
{
    return s == QG_JS_DONE || s == QG_JS_FAILED || s == QG_JS_CANCELLED;
}

static void job_event(qg_jobs *j, qg_job_event ev)
{
    if (j->app && j->app->metrics) qg_metrics_job(j->app->metrics, ev);
}

qg_jobs *qg_jobs_new(qg_app *app)
{
    qg_jobs *j = qg_xcalloc(1, sizeof *j);
    j->app = app;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->idle, NULL);
    pthread_mutex_init(&j->cache_mu, NULL);
    return j;
}

void qg_jobs_free(qg_jobs *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    while (j->active > 0) pthread_cond_wait(&j->idle, &j->mu);
    pthread_mutex_unlock(&j->mu);
    for (size_t i = 0; i < QG_BARS_CACHE_SIZE; i++) qg_bars_cache_put(j->cache[i]);
    free(j->live);
    pthread_mutex_destroy(&j->cache_mu);
    pthread_cond_destroy(&j->idle);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

int qg_jobs_active(qg_jobs *j)
{
    pthread_mutex_lock(&j->mu);
    int n = j->active;
    pthread_mutex_unlock(&j->mu);
    return n;
}

qg_job *qg_jobs_find(qg_jobs *j, const char *id, const char *user_id)
{
    qg_job *found = NULL;
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->n; i++) {
        qg_job *job = j->live[i];
        if (strcmp(job->id, id) == 0 && (!user_id || strcmp(job->user_id, user_id) == 0)) {
            atomic_fetch_add(&job->refs, 1);
            found = job;
            break;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return found;
}

void qg_job_unref(qg_jobs *j, qg_job *job)
{
    (void)j;
    if (!job || atomic_fetch_sub(&job->refs, 1) != 1) return;
    free(job->final_json);
    free(job->spec);
    free(job);
}

static void registry_remove(qg_jobs *j, qg_job *job)
{
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->n; i++)
        if (j->live[i] == job) {
            j->live[i] = j->live[--j->n];
            break;
        }
    pthread_mutex_unlock(&j->mu);
}

/* ---- dataset bars cache ---- */

void qg_bars_cache_put(qg_bars_ref *ref)
{
    if (!ref || atomic_fetch_sub(&ref->refs, 1) != 1) return;
    qg_bars_free(&ref->bars);
    free(ref->path);
    free(ref);
}

/* With cache_mu held: the entry for path with a reference taken, or NULL. */
static qg_bars_ref *cache_lookup(qg_jobs *j, const char *path)
{
    for (size_t i = 0; i < QG_BARS_CACHE_SIZE; i++) {
        qg_bars_ref *e = j->cache[i];
        if (e && strcmp(e->path, path) == 0) {
            e->used = ++j->clock;
            atomic_fetch_add(&e->refs, 1);
            return e;
        }
    }
    return NULL;
}

qg_status qg_bars_cache_get(qg_jobs *j, const char *path, const qg_bars **bars, qg_bars_ref **ref,
                            qg_error *err)
{
    pthread_mutex_lock(&j->cache_mu);
    qg_bars_ref *e = cache_lookup(j, path);
    pthread_mutex_unlock(&j->cache_mu);
    if (!e) {
        /* Load without the lock: two readers of the same cold file may both
         * load it; the second keeps the first one's entry. */
        qg_bars_ref *fresh = qg_xcalloc(1, sizeof *fresh);
        qg_status rc = qg_bars_load_file(path, NULL, &fresh->bars, NULL, err);
        if (rc) {
            qg_bars_free(&fresh->bars);
            free(fresh);
            return rc;
        }
        fresh->path = qg_xstrdup(path);
        atomic_init(&fresh->refs, 2); /* the cache's and the caller's */
        pthread_mutex_lock(&j->cache_mu);
        e = cache_lookup(j, path);
        if (!e) {
            size_t victim = 0;
            for (size_t i = 0; i < QG_BARS_CACHE_SIZE; i++) {
                if (!j->cache[i]) {
                    victim = i;
                    break;
                }
                if (j->cache[i]->used < j->cache[victim]->used) victim = i;
            }
            qg_bars_ref *old = j->cache[victim];
            fresh->used = ++j->clock;
            j->cache[victim] = fresh;
            e = fresh;
            fresh = NULL;
            pthread_mutex_unlock(&j->cache_mu);
            qg_bars_cache_put(old); /* freed here unless a reader still holds it */
        } else {
            pthread_mutex_unlock(&j->cache_mu);
            atomic_store(&fresh->refs, 1);
            qg_bars_cache_put(fresh);
        }
    }
    *bars = &e->bars;
    *ref = e;
    return QG_OK;
}

void qg_bars_cache_forget(qg_jobs *j, const char *path)
{
    qg_bars_ref *old = NULL;
    pthread_mutex_lock(&j->cache_mu);
    for (size_t i = 0; i < QG_BARS_CACHE_SIZE; i++)
        if (j->cache[i] && strcmp(j->cache[i]->path, path) == 0) {
            old = j->cache[i];
            j->cache[i] = NULL;
        }
    pthread_mutex_unlock(&j->cache_mu);
    qg_bars_cache_put(old);
}

/* ---- status objects ---- */

typedef struct {
    cJSON *obj;
} status_ctx;

static cJSON *parse_or_null(const char *text)
{
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    return v ? v : cJSON_CreateNull();
}

static qg_status status_row(void *ud, const qg_row *row)
{
    status_ctx *c = ud;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", qg_row_text(row, 0));
    cJSON_AddStringToObject(o, "status", qg_row_text(row, 1));
    cJSON_AddNumberToObject(o, "progress", qg_row_double(row, 2));
    cJSON_AddItemToObject(o, "request", parse_or_null(qg_row_text(row, 3)));
    cJSON *result = qg_row_is_null(row, 4) ? NULL : cJSON_Parse(qg_row_text(row, 4));
    cJSON *metrics = result ? cJSON_DetachItemFromObject(result, "metrics") : NULL;
    cJSON *trades = result ? cJSON_DetachItemFromObject(result, "trades") : NULL;
    cJSON_AddItemToObject(o, "metrics", metrics ? metrics : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "trades", trades ? trades : cJSON_CreateNull());
    cJSON_Delete(result);
    if (qg_row_is_null(row, 5))
        cJSON_AddNullToObject(o, "error");
    else
        cJSON_AddStringToObject(o, "error", qg_row_text(row, 5));
    cJSON_AddItemToObject(o, "dataset_id", cJSON_CreateString(qg_row_text(row, 6)));
    const char *const times[] = {"created_at", "started_at", "finished_at"};
    for (int k = 0; k < 3; k++)
        cJSON_AddItemToObject(o, times[k],
                              qg_row_is_null(row, 7 + k) ? cJSON_CreateNull()
                                                         : qg_json_time(qg_row_int(row, 7 + k)));
    c->obj = o;
    return QG_OK;
}

qg_status qg_backtest_status_json(qg_conn *c, const char *id, const char *user_id, cJSON **out,
                                  qg_error *err)
{
    status_ctx ctx = {0};
    const qg_val p[] = {QG_VTEXT(id), QG_VTEXT(user_id)};
    qg_status rc = qg_conn_query(c,
                                 "SELECT id, status, progress, request, result, error, dataset_id, "
                                 "created_at, started_at, finished_at FROM backtests "
                                 "WHERE id = ? AND user_id = ?",
                                 p, 2, status_row, &ctx, err);
    if (rc) {
        cJSON_Delete(ctx.obj);
        return rc;
    }
    if (!ctx.obj) return qg_error_set(err, QG_ENOTFOUND, "backtest '%s' not found", id);
    *out = ctx.obj;
    return QG_OK;
}

/* ---- the runner ---- */

static void progress_cb(void *ud, uint64_t done, uint64_t total)
{
    qg_job *job = ud;
    if (total)
        atomic_store_explicit(&job->progress, (double)done / (double)total, memory_order_relaxed);
}

static qg_status with_conn(qg_jobs *j, const char *sql, const qg_val *p, size_t n, qg_error *err)
{
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(j->app->store, &c, err);
    if (rc) return rc;
    rc = qg_conn_exec(c, sql, p, n, NULL, err);
    qg_store_release(j->app->store, c);
    return rc;
}

/* Runs the backtest; *result gets {"metrics","trades"} text on success. */
static qg_status run_backtest(qg_jobs *j, qg_job *job, char **result, qg_error *err)
{
    qg_bt_job_spec *sp = job->spec;
    const qg_bars *all = NULL;
    qg_bars_ref *ref = NULL;
    qg_bars rs = {0};
    qg_bt_result r = {0};
    qg_status rc = qg_bars_cache_get(j, sp->dataset_path, &all, &ref, err);
    if (rc) goto out;
    int64_t tf = sp->timeframe_ms ? sp->timeframe_ms : sp->strategy.timeframe_ms;
    if (tf && tf != all->timeframe_ms) {
        if ((rc = qg_bars_resample(all, tf, &rs, err))) goto out;
        all = &rs;
    }
    qg_bars view = qg_bars_between(all, sp->from_ms, sp->to_ms);
    if (view.n == 0) {
        rc = qg_error_set(err, QG_EINVAL, "no bars between 'from' and 'to'");
        goto out;
    }
    /* As the CLI: trade from `from`, warm the indicators up on what lies
     * before it. */
    qg_bt_config cfg = sp->cfg;
    size_t offset = (size_t)(view.ts - all->ts);
    cfg.start_bar = offset;
    cfg.keep_trades = true;
    cfg.keep_decisions = false;
    cfg.curve_points = 0;
    cfg.on_bar = NULL;
    cfg.progress = progress_cb;
    cfg.progress_ud = job;
    qg_bars run = qg_bars_view(all, 0, offset + view.n);
    if (atomic_load(&job->cancel)) goto out;
    if ((rc = qg_backtest_run(&sp->strategy, &run, &cfg, &r, err))) goto out;
    if (atomic_load(&job->cancel)) goto out;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "metrics", qg_bt_metrics_json(&r.m));
    cJSON_AddItemToObject(root, "trades", qg_bt_trades_json(&r));
    *result = qg_json_compact(root);
    cJSON_Delete(root);
    if (!*result) rc = qg_error_set(err, QG_ENOMEM, "out of memory writing the result");
out:
    qg_bt_result_free(&r);
    qg_bars_free(&rs);
    qg_bars_cache_put(ref);
    return rc;
}

/* The final status object as text; from the row when it can be read. */
static char *final_json(qg_jobs *j, qg_job *job, qg_job_status st, const char *error)
{
    qg_conn *c = NULL;
    cJSON *o = NULL;
    qg_error err = {0};
    if (qg_store_acquire(j->app->store, &c, &err) == QG_OK) {
        if (qg_backtest_status_json(c, job->id, job->user_id, &o, &err)) o = NULL;
        qg_store_release(j->app->store, c);
    }
    if (!o) { /* the row is gone (deleted while running) or unreadable */
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", job->id);
        cJSON_AddStringToObject(o, "status", qg_job_status_name(st));
        cJSON_AddNumberToObject(o, "progress",
                                st == QG_JS_DONE ? 1.0 : atomic_load(&job->progress));
        if (error)
            cJSON_AddStringToObject(o, "error", error);
        else
            cJSON_AddNullToObject(o, "error");
    }
    char *text = qg_json_compact(o);
    cJSON_Delete(o);
    return text ? text : qg_xstrdup("{}");
}

static void finish(qg_jobs *j, qg_job *job, qg_job_status st, const char *result, const char *error)
{
    qg_error err = {0};
    if (st == QG_JS_DONE) atomic_store(&job->progress, 1.0);
    const qg_val p[] = {QG_VTEXT(qg_job_status_name(st)),
                        QG_VDBL(atomic_load(&job->progress)),
                        QG_VTEXT(result),
                        QG_VTEXT(error),
                        QG_VINT(qg_time_now_ms()),
                        QG_VTEXT(job->id)};
    if (with_conn(j,
                  "UPDATE backtests SET status = ?, progress = ?, result = ?, error = ?, "
                  "finished_at = ? WHERE id = ?",
                  p, 6, &err))
        qg_err("backtest %s: cannot record its end: %s", job->id, err.msg);
    job->final_json = final_json(j, job, st, error);
    atomic_store(&job->status, (int)st);
    job_event(j, st == QG_JS_DONE     ? QG_JOB_DONE
                 : st == QG_JS_FAILED ? QG_JOB_FAILED
                                      : QG_JOB_CANCELLED);
    registry_remove(j, job);
    free(job->spec);
    job->spec = NULL;
    qg_job_unref(j, job);
    /* Last: once active reaches 0, qg_jobs_free may free j. */
    pthread_mutex_lock(&j->mu);
    if (--j->active == 0) pthread_cond_broadcast(&j->idle);
    pthread_mutex_unlock(&j->mu);
}

static void job_run(void *arg)
{
    qg_job *job = arg;
    qg_jobs *j = job->owner;
    qg_error err = {0};
    char *result = NULL;
    if (atomic_load(&job->cancel)) {
        finish(j, job, QG_JS_CANCELLED, NULL, NULL);
        return;
    }
    const qg_val p[] = {QG_VINT(qg_time_now_ms()), QG_VTEXT(job->id)};
    if (with_conn(j,
                  "UPDATE backtests SET status = 'running', started_at = ? "
                  "WHERE id = ? AND status = 'queued'",
                  p, 2, &err))
        qg_warn("backtest %s: cannot mark it running: %s", job->id, err.msg);
    atomic_store(&job->status, QG_JS_RUNNING);
    job_event(j, QG_JOB_STARTED);
    qg_status rc = run_backtest(j, job, &result, &err);
    if (atomic_load(&job->cancel))
        finish(j, job, QG_JS_CANCELLED, NULL, NULL);
    else if (rc)
        finish(j, job, QG_JS_FAILED, NULL, err.msg);
    else
        finish(j, job, QG_JS_DONE, result, NULL);
    free(result);
}

qg_status qg_jobs_submit(qg_jobs *j, const char *id, const char *user_id, qg_bt_job_spec *spec,
                         qg_error *err)
{
    if (atomic_load(&j->app->stopping)) {
        free(spec);
        return qg_error_set(err, QG_EAGAIN, "the server is shutting down");
    }
    qg_job *job = qg_xcalloc(1, sizeof *job);
    snprintf(job->id, sizeof job->id, "%s", id);
    snprintf(job->user_id, sizeof job->user_id, "%s", user_id);
    atomic_init(&job->status, QG_JS_QUEUED);
    atomic_init(&job->progress, 0.0);
    atomic_init(&job->cancel, false);
    atomic_init(&job->refs, 1); /* the runner's */
    job->spec = spec;
    job->owner = j;

    pthread_mutex_lock(&j->mu);
    if (j->n == j->cap) {
        j->cap = j->cap ? 2 * j->cap : 16;
        j->live = qg_xrealloc(j->live, j->cap * sizeof *j->live);
    }
    j->live[j->n++] = job;
    j->active++;
    pthread_mutex_unlock(&j->mu);

    qg_status rc = qg_workpool_submit(j->app->jobs_pool, job_run, NULL, job);
    if (rc) {
        registry_remove(j, job);
        pthread_mutex_lock(&j->mu);
        if (--j->active == 0) pthread_cond_broadcast(&j->idle);
        pthread_mutex_unlock(&j->mu);
        qg_job_unref(j, job);
        return qg_error_set(err, QG_EAGAIN, "the job queue is closed (shutting down)");
    }
    job_event(j, QG_JOB_QUEUED);
    return QG_OK;
}

qg_status qg_jobs_recover(qg_jobs *j, qg_conn *c, qg_error *err)
{
    int64_t changed = 0;
    const qg_val p[] = {QG_VINT(qg_time_now_ms())};
    qg_status rc = qg_conn_exec(c,
                                "UPDATE backtests SET status = 'failed', "
                                "error = 'interrupted by a restart', finished_at = ? "
                                "WHERE status IN ('queued', 'running')",
                                p, 1, &changed, err);
    if (!rc && changed)
        qg_warn("%lld backtest(s) interrupted by a restart marked failed", (long long)changed);
    return rc;
}
