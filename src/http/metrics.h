/*
 * metrics.h - counters and histograms for GET /metrics (Prometheus text
 * exposition format 0.0.4).
 *
 * Request metrics are indexed by route (position in qg_routes, plus one slot
 * for "unmatched") and by status code, so recording is a few relaxed atomic
 * adds with no lock and no allocation. Latency uses fixed buckets in
 * seconds: 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10.
 */
#ifndef QG_METRICS_H
#define QG_METRICS_H

#include "store/store.h"

#include <quantgate/mem.h>

#include <stdint.h>

typedef struct qg_http_metrics qg_http_metrics;

/* nroutes: number of entries in the route table. */
qg_http_metrics *qg_metrics_new(int nroutes);
void qg_metrics_free(qg_http_metrics *m);

/* route: index in qg_routes, or -1 for requests that matched none. */
void qg_metrics_request(qg_http_metrics *m, int route, int status, int64_t duration_us);
void qg_metrics_inflight(qg_http_metrics *m, int delta);

typedef enum {
    QG_JOB_QUEUED,
    QG_JOB_STARTED,
    QG_JOB_DONE,
    QG_JOB_FAILED,
    QG_JOB_CANCELLED
} qg_job_event;
void qg_metrics_job(qg_http_metrics *m, qg_job_event ev);

/* Writes the whole exposition: quantgate_http_requests_total{route,method,
 * status}, quantgate_http_request_duration_seconds (histogram per route),
 * quantgate_http_requests_in_flight, quantgate_db_* from stats (may be
 * NULL), quantgate_jobs_*, quantgate_build_info{version,backend}, and
 * process_resident_memory_bytes / process_start_time_seconds. */
qg_status qg_metrics_render(qg_http_metrics *m, const qg_store_stats *db, const char *backend,
                            qg_buf *out);

#endif
