/*
 * routing.h - which deployments serve a named model, in what order, and
 * which of them are healthy and under their rate limits right now.
 *
 * The router holds the named models and the deployments (replaced as a
 * whole by qg_ai_router_load after an admin change; the health of a
 * deployment whose id survives the reload is kept). A plan for a named
 * model is its enabled deployments by priority, then those of its fallback
 * model, and so on down the chain (a cycle ends the chain), minus the
 * deployments that are cooling down.
 *
 * Health: consecutive retryable failures within a window (or one auth
 * failure) cool a deployment down for QG_AI_COOLDOWN_S seconds, or for the
 * provider's Retry-After when that is longer; a rate-limit reply with a
 * Retry-After also keeps it out of plans until then. A success resets.
 *
 * Rate limits: requests and tokens per deployment in a sliding 60 s window
 * (sixty one-second buckets). acquire reserves one request and the
 * estimated tokens; add_tokens corrects the estimate once the usage is
 * known.
 *
 * Every function is thread-safe (one mutex; each holds it for a few
 * microseconds).
 */
#ifndef QG_AI_ROUTING_H
#define QG_AI_ROUTING_H

#include "ai/provider.h"

#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qg_ai_router qg_ai_router;

typedef struct qg_ai_router_config {
    int64_t cooldown_ms;    /* QG_AI_COOLDOWN_S (default 60 s) */
    int fail_threshold;     /* QG_AI_COOLDOWN_FAILURES (default 3) consecutive failures */
    int64_t fail_window_ms; /* QG_AI_COOLDOWN_WINDOW_S (default 60 s): a failure older than
                               this does not count towards the next one */
    /* The clock, for tests; NULL: qg_time_now_ms. */
    int64_t (*now_ms)(void *ud);
    void *clock_ud;
} qg_ai_router_config;

/* Defaults, overridden by the environment variables named above. */
void qg_ai_router_config_default(qg_ai_router_config *c);

/* An empty router with the default configuration (aborts on out-of-memory,
 * like every long-lived server object). The caller owns it. */
qg_ai_router *qg_ai_router_new(void);
qg_ai_router *qg_ai_router_new_with(const qg_ai_router_config *c);
void qg_ai_router_free(qg_ai_router *r);

/* Replaces the deployments and named models (both copied). Health and rate
 * windows of deployments whose id is still there are kept. When two
 * deployments share an id the first is kept and the other ignored (with a
 * warning). Always QG_OK today; err is for future validation. */
qg_status qg_ai_router_load(qg_ai_router *r, const qg_ai_deployment *deps, size_t ndeps,
                            const qg_ai_model *models, size_t nmodels, qg_error *err);

/* The deployments to try for `name`, in order, copied into out[0..*n)
 * (at most cap). name is a named model (its chain, as above), else a
 * deployment id (that one alone), else "builtin" (a builtin deployment
 * made up when none is configured; a chain that falls back to "builtin"
 * ends with it too). NULL means "analyst".
 * QG_ENOTFOUND: no such model or deployment, or it has no enabled
 * deployment. QG_EAGAIN: every deployment is cooling down (err says for
 * how long). */
qg_status qg_ai_router_plan(qg_ai_router *r, const char *name, qg_ai_deployment *out, size_t cap,
                            size_t *n, qg_error *err);

/* A copy of deployment id; QG_ENOTFOUND. */
qg_status qg_ai_router_get(qg_ai_router *r, const char *id, qg_ai_deployment *out);

/* The outcome of one attempt on a deployment (QG_AI_OK for success);
 * retry_after_ms < 0 when the provider gave none. Unknown ids are ignored. */
void qg_ai_router_report(qg_ai_router *r, const char *dep_id, qg_ai_errkind kind,
                         int64_t retry_after_ms);

/* Reserves one request and est_tokens in the deployment's window. QG_OK, or
 * QG_EAGAIN with *wait_ms = how long until it would fit (nothing reserved).
 * A request whose estimate alone exceeds the tpm limit passes once the
 * window is empty. Deployments without limits always pass (their use is
 * still counted, for the snapshot). */
qg_status qg_ai_router_acquire(qg_ai_router *r, const char *dep_id, int64_t est_tokens,
                               int64_t *wait_ms);
/* After the call: replaces the reserved estimate by the actual tokens. */
void qg_ai_router_add_tokens(qg_ai_router *r, const char *dep_id, int64_t est_tokens,
                             int64_t actual_tokens);

/* One deployment's health, for the admin API and /metrics. */
typedef struct qg_ai_dep_health {
    char id[48];
    char model_name[64];
    char provider[16];
    char model[128];
    bool enabled;
    int64_t cooling_until_ms; /* epoch ms; 0 when not cooling down */
    int consecutive_failures;
    int64_t rpm_used, tpm_used; /* in the last 60 s */
    int64_t rpm_limit, tpm_limit;
    int64_t calls, failures;  /* since start (kept across reloads) */
    qg_ai_errkind last_error; /* of the last failed attempt, QG_AI_OK if none */
} qg_ai_dep_health;

/* Every deployment's health in plan order of its model; *out is malloc'd
 * (the caller frees it, also when *n is 0). */
qg_status qg_ai_router_snapshot(qg_ai_router *r, qg_ai_dep_health **out, size_t *n);

#endif
