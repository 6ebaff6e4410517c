/*
 * app.h - the long-lived state the server's handlers share.
 *
 * One qg_app per process, built by `quantgate serve` before the loops start
 * and freed after they stop. Everything in it is either immutable after
 * start or internally synchronised, so handlers on any thread may use it.
 */
#ifndef QG_APP_H
#define QG_APP_H

#include "ai/ai.h"
#include "auth/vault.h"
#include "http/http.h"
#include "http/jobs.h"
#include "http/metrics.h"
#include "http/ratelimit.h"
#include "memory/docs.h"
#include "memory/memory.h"
#include "signal/service.h"
#include "store/store.h"

#include <quantgate/pool.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QG_CORS_MAX 16

struct qg_app {
    qg_store *store;
    qg_vault *vault;
    uint8_t jwt_key[32];
    const char *data_dir;  /* owned by the app (strdup) */
    int64_t access_ttl_s;  /* QG_ACCESS_TTL, default 900 */
    int64_t refresh_ttl_s; /* QG_REFRESH_TTL, default 30 days */
    size_t max_body;       /* QG_MAX_BODY, bytes */

    qg_workpool *requests;      /* handlers of non-inline routes */
    qg_workpool *long_requests; /* QG_ROUTE_LONG handlers (QG_AI_CONCURRENCY threads) */
    qg_workpool *jobs_pool;     /* background jobs (backtests) */
    qg_jobs *jobs;
    qg_http_metrics *metrics;
    qg_ratelimit *limits; /* QG_RATE_LIMITS=off zeroes the request classes; logins stay throttled */
    qg_ai *ai;            /* the AI layer: models, prompts, usage, budgets */
    qg_memory *memory;    /* the memory service: collections, items, working memory */
    qg_docs *docs;        /* the documents index (QG_DOCS_*) */
    qg_signals *signals;  /* signal alerts: ingest, pipeline, notifications (signal/service.h) */

    char *cors[QG_CORS_MAX]; /* allowed origins, exact match */
    int ncors;

    atomic_bool stopping; /* set on SIGTERM: /ready answers 503, new jobs refused */
};

#endif
