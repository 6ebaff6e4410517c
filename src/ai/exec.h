/*
 * exec.h - the attempt loop of one AI call: plan the deployments of a named
 * model, and for each one in turn wait for its rate limits, encode, send
 * (or answer in-process for the builtin provider), decode, classify errors,
 * report health, and retry or fall back.
 *
 * Retries: a retryable error (rate-limited, overloaded, timeout, network,
 * server) is retried on the same deployment up to `retries` times, after
 * the provider's Retry-After when it gave one (a longer one than
 * retry_after_max_ms moves on to the next deployment at once), else after
 * an exponential backoff with full jitter (uniform in [0, min(cap, base *
 * 2^n)]). Other errors (auth, bad request, context too long, undecodable
 * reply) go straight to the next deployment: a larger model may take a long
 * prompt. A stream that already forwarded a delta to the caller is neither
 * retried nor failed over (the client has seen partial output): its error
 * is returned.
 *
 * Exec does no budgets, templates or usage records: the facade (ai.c) does
 * those around it. Keys are resolved per deployment through the caller's
 * callback, used for one encode, and wiped; they are never logged.
 */
#ifndef QG_AI_EXEC_H
#define QG_AI_EXEC_H

#include "ai/provider.h"
#include "ai/routing.h"
#include "ai/transport.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <stdatomic.h>
#include <stdint.h>

/* Writes the API key of deployment d into out (cap bytes, NUL-terminated).
 * A non-OK status skips the deployment (recorded as an auth error). */
typedef qg_status (*qg_ai_key_fn)(void *ud, const qg_ai_deployment *d, char *out, size_t cap);

typedef struct qg_ai_exec_opts {
    int retries;                /* QG_AI_RETRIES (2): retries per deployment */
    int64_t backoff_base_ms;    /* QG_AI_RETRY_BASE_MS (250) */
    int64_t backoff_cap_ms;     /* QG_AI_RETRY_CAP_MS (8000) */
    int64_t retry_after_max_ms; /* QG_AI_RETRY_AFTER_MAX_MS (30000) */
    int64_t rate_wait_max_ms;   /* QG_AI_RATE_WAIT_MS (2000): longest wait for an rpm/tpm
                                   slot before moving to the next deployment */
    int64_t total_timeout_ms;   /* per HTTP exchange, 0: none (QG_AI_TOTAL_TIMEOUT_MS) */
    size_t body_max;            /* cap of a buffered reply, 0: QG_AI_BODY_MAX_DEFAULT */
    /* The provider of a deployment; NULL: qg_ai_provider_find(d->provider).
     * Tests plug in their own providers here. */
    const qg_ai_provider *(*provider_for)(const qg_ai_deployment *d);
} qg_ai_exec_opts;

/* The defaults above, overridden by the environment. */
void qg_ai_exec_opts_default(qg_ai_exec_opts *o);

typedef struct qg_ai_exec_info {
    qg_ai_deployment deployment; /* the one that answered, else the last one tried
                                    (id "" when none was) */
    int attempts;                /* attempts over all deployments (HTTP or in-process) */
    int deployments_tried;
    bool fell_back;         /* a later deployment than the plan's first answered */
    bool partial;           /* deltas reached the caller before the error */
    int64_t upstream_us;    /* time spent waiting on providers: exchanges (libcurl's
                               total), in-process answers, backoff sleeps, rate waits */
    qg_ai_error last_error; /* kind QG_AI_OK when the last attempt succeeded */
} qg_ai_exec_info;

/* Runs the call: model is a named model, a deployment id or "builtin"
 * (NULL: "analyst"); on_delta (may be NULL) receives stream deltas on the
 * transport thread; cancel (may be NULL) stops waits and transfers. On
 * QG_OK *out is the answer (its pointers live in arena a). Otherwise
 * out->error is the last error and the status says what kind:
 * QG_ENOTFOUND (no such model / no enabled deployment), QG_EAGAIN (every
 * deployment cooling down, providers failing, cancelled), QG_EINVAL (the
 * request was refused as wrong: bad request, context too long); err
 * explains. *info is filled in every case. Blocks the calling thread. */
qg_status qg_ai_exec(qg_ai_transport *t, qg_ai_router *r, const char *model,
                     const qg_ai_request *req, qg_ai_key_fn key_fn, void *key_ud,
                     qg_ai_stream_fn on_delta, void *ud, atomic_bool *cancel, qg_arena *a,
                     qg_ai_response *out, qg_ai_exec_info *info, qg_error *err);

/* The same with explicit options (opts NULL: the defaults). */
qg_status qg_ai_exec_with(const qg_ai_exec_opts *opts, qg_ai_transport *t, qg_ai_router *r,
                          const char *model, const qg_ai_request *req, qg_ai_key_fn key_fn,
                          void *key_ud, qg_ai_stream_fn on_delta, void *ud, atomic_bool *cancel,
                          qg_arena *a, qg_ai_response *out, qg_ai_exec_info *info, qg_error *err);

/* The token estimate used for tpm: prompt characters / 4 plus max_tokens
 * (256 when unset). */
int64_t qg_ai_estimate_tokens(const qg_ai_request *req);

#endif
