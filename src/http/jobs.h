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

#include <quantgate/pool.h>
#include <quantgate/status.h>

#include <stdatomic.h>
#include <stdbool.h>

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

typedef struct qg_job {
    char id[QG_ID_MAX];
    char user_id[QG_ID_MAX];
    _Atomic int status;      /* qg_job_status */
    _Atomic double progress; /* 0..1 */
    atomic_bool cancel;
    atomic_int refs;
} qg_job;

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

#endif
