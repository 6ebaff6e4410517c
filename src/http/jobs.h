/*
 * jobs.h - background backtest jobs and their live progress.
 *
 * A job's row in `backtests` is the truth; this registry holds the live part
 * of jobs that are queued or running in this process: progress and status
 * as atomics, and a cancel flag, so GET and the SSE stream read progress
 * without the database and without locks on the hot path. Entries are
 * reference counted: the job runner holds one, each SSE stream one, and the
 * entry is freed when the last is dropped.
 *
 * On start, rows left `queued` or `running` by a previous process (a crash)
 * are marked failed with "interrupted by a restart".
 */
#ifndef QG_JOBS_H
#define QG_JOBS_H

#include "store/store.h"

#include <quantgate/backtest.h>
#include <quantgate/bars.h>
#include <quantgate/pool.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct qg_jobs qg_jobs;
typedef struct qg_app qg_app;

typedef enum {
    QG_JS_QUEUED,
    QG_JS_RUNNING,
    QG_JS_DONE,
    QG_JS_FAILED,
    QG_JS_CANCELLED
} qg_job_status;
const char *qg_job_status_name(qg_job_status s);

/* Everything a backtest job needs, resolved and validated by the POST
 * handler, so the job itself cannot fail on user input. Plain data. */
typedef struct qg_bt_job_spec {
    char dataset_path[1024];
    qg_strategy strategy;
    qg_bt_config cfg;       /* progress fields are set by the runner */
    int64_t timeframe_ms;   /* resample to this first; 0: the dataset's */
    int64_t from_ms, to_ms; /* trade bars with from <= ts < to; warm-up before */
} qg_bt_job_spec;

typedef struct qg_job {
    char id[QG_ID_MAX];
    char user_id[QG_ID_MAX];
    _Atomic int status;      /* qg_job_status */
    _Atomic double progress; /* 0..1 */
    atomic_bool cancel;
    atomic_int refs;
    /* The final status object (what GET /api/backtests/{id} answers), as
     * JSON text. Written once by the runner before status turns terminal,
     * so a reader that saw a terminal status may read it without a lock.
     * Owned by the job. */
    char *final_json;
    qg_bt_job_spec *spec; /* owned; NULL once the job has run */
    qg_jobs *owner;
} qg_job;

/* True for done, failed and cancelled. */
bool qg_job_status_terminal(int s);

qg_jobs *qg_jobs_new(qg_app *app);
/* Waits for queued and running jobs to finish (graceful shutdown). */
void qg_jobs_free(qg_jobs *j);
/* Marks rows of a previous process that never finished as failed. */
qg_status qg_jobs_recover(qg_jobs *j, qg_conn *c, qg_error *err);

/* The live job with that id owned by user_id, with a reference taken (drop
 * it with qg_job_unref), or NULL when it is not queued or running here. */
qg_job *qg_jobs_find(qg_jobs *j, const char *id, const char *user_id);
void qg_job_unref(qg_jobs *j, qg_job *job);

/* Number of jobs queued or running (for /metrics and shutdown). */
int qg_jobs_active(qg_jobs *j);

/* Registers a live job for the `backtests` row `id` (already inserted as
 * queued) and queues it on app->jobs_pool. Takes ownership of spec (heap,
 * freed also on failure). QG_EAGAIN when the server is stopping or the pool
 * refuses work; the row is then left to the caller. */
qg_status qg_jobs_submit(qg_jobs *j, const char *id, const char *user_id, qg_bt_job_spec *spec,
                         qg_error *err);

/* The status object of backtest `id` owned by user_id, built from its row
 * (progress as stored; callers overlay the live value):
 * {"id","status","progress","request","metrics","trades","error",
 *  "created_at","started_at","finished_at"}. The caller owns *out.
 * QG_ENOTFOUND when there is no such row for that user. */
qg_status qg_backtest_status_json(qg_conn *c, const char *id, const char *user_id, cJSON **out,
                                  qg_error *err);

/* ---- dataset bars cache ----
 * Loaded dataset files, the few most recently used (QG_BARS_CACHE_SIZE),
 * shared read-only between requests and jobs. A dataset file never changes
 * after upload, so entries are keyed by path and never go stale; deleting a
 * dataset forgets its entry. Entries are reference counted: a reader keeps
 * its bars while another request evicts them. */
#define QG_BARS_CACHE_SIZE 4
typedef struct qg_bars_ref qg_bars_ref;
/* Loads path (or finds it cached); *bars stays valid until
 * qg_bars_cache_put(*ref). Errors are the loader's. */
qg_status qg_bars_cache_get(qg_jobs *j, const char *path, const qg_bars **bars, qg_bars_ref **ref,
                            qg_error *err);
void qg_bars_cache_put(qg_bars_ref *ref);
void qg_bars_cache_forget(qg_jobs *j, const char *path);

#endif
