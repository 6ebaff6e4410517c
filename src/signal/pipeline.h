/*
 * pipeline.h - what happens to an accepted signal: a pool of workers runs
 * each one through the stages
 *   confluence -> killzone -> cooldown -> policy -> score -> threshold ->
 *   analyse (AI layer, template signal.analyze, similar setups from memory)
 *   -> plan (optional) -> remember (memory) -> notify -> done
 * recording every state change (received, filtered, analysed, notified,
 * done, deferred, escalated, failed) with its stage and reason in
 * signal_events, through the shared group-commit batcher.
 *
 * Durability: the signal row exists (state received) before a signal gets
 * here (ingest.h commits it before the 202). A stage's results are written
 * as the stage finishes (analysis, deliveries), so after a crash
 * qg_pipeline_resume re-runs every signal that is not finished from its
 * last recorded stage, skips the notification targets already delivered,
 * and a signal is processed exactly once. A stage that still fails after
 * its retries parks the signal in the dead-letter queue (signal_dlq, state
 * failed); replay puts it back in the queue.
 *
 * Threads: enqueue, pause, resume and the queries are thread-safe; the
 * workers are the pipeline's own (QG_SIGNAL_WORKERS).
 */
#ifndef QG_SIGNAL_PIPELINE_H
#define QG_SIGNAL_PIPELINE_H

#include "ai/ai.h"
#include "memory/memory.h"
#include "notify/notify.h"
#include "signal/plan.h"
#include "signal/rules.h"
#include "signal/signal.h"
#include "store/batch.h"
#include "store/store.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct qg_pipeline qg_pipeline;

/* Signal states as stored in signals.state and signal_events.state. */
#define QG_SIG_RECEIVED  "received"
#define QG_SIG_FILTERED  "filtered"
#define QG_SIG_ANALYSED  "analysed"
#define QG_SIG_NOTIFIED  "notified"
#define QG_SIG_DONE      "done"
#define QG_SIG_DEFERRED  "deferred"
#define QG_SIG_ESCALATED "escalated"
#define QG_SIG_FAILED    "failed"

/* Analyses queued for the rememberer by default (QG_SIGNAL_REMEMBER_QUEUE). */
#define QG_PIPE_REMEMBER_QUEUE 10000
/* Signals whose alert is with the notifier by default (QG_SIGNAL_NOTIFY_QUEUE). */
#define QG_PIPE_NOTIFY_QUEUE 10000
/* Writes queued for the group commit before a worker waits to start its
 * next signal (QG_SIGNAL_WRITE_AHEAD). */
#define QG_PIPE_WRITE_AHEAD 4096

typedef struct qg_pipeline_config {
    qg_store *store;
    qg_batcher *batcher;  /* shared with ingest; not owned */
    qg_ai *ai;            /* not owned; the analysis stage */
    qg_memory *memory;    /* not owned; similar setups and remembering; may be NULL */
    qg_notify *notify;    /* not owned; may be NULL (no notifications) */
    const char *owner_id; /* the account memories and AI usage are recorded under */
    int workers;          /* QG_SIGNAL_WORKERS, default 8 */
    size_t queue_max;     /* QG_SIGNAL_QUEUE_MAX, default 100000 */

    /* filters (each can be turned off) */
    int min_confluences;          /* QG_SIGNAL_MIN_CONFLUENCES, default 2; 0 = off */
    bool killzone_required;       /* QG_SIGNAL_KILLZONE_REQUIRED (default true): outside any
                                     window the signal is filtered */
    const qg_sessions *sessions;  /* not owned */
    int64_t cooldown_ms;          /* QG_SIGNAL_COOLDOWN_S, default 0 = off */
    const cJSON *config_policies; /* QG_SIGNAL_POLICY (JSON array) or NULL; the
                                     signal_policies table is merged after it */
    qg_score_weights weights;     /* QG_SIGNAL_SCORE_WEIGHTS */
    double score_threshold;       /* QG_SIGNAL_SCORE_THRESHOLD, default 70 */

    /* analysis */
    const char *model;     /* QG_SIGNAL_MODEL: a named model, default "builtin" */
    int similar_setups;    /* QG_SIGNAL_SIMILAR, default 5 (0 = no memory lookup) */
    bool remember;         /* QG_SIGNAL_REMEMBER, default true */
    size_t remember_queue; /* QG_SIGNAL_REMEMBER_QUEUE: analyses waiting for the rememberer
                              before the workers wait too; 0: 10000 */
    size_t notify_queue;   /* QG_SIGNAL_NOTIFY_QUEUE: signals whose alert is with the
                              notifier before the workers wait; 0: 10000 */
    size_t write_ahead;    /* QG_SIGNAL_WRITE_AHEAD: writes queued for the batcher before a
                              worker waits to start its next signal; 0: 4096 */
    const cJSON *plan;     /* QG_SIGNAL_PLAN (JSON) or NULL */
    bool ai_plans;         /* QG_SIGNAL_AI_PLANS: run a "plan" from the analysis, default true */

    /* retries and the dead-letter queue */
    int stage_retries;           /* QG_SIGNAL_RETRIES, default 3 */
    int64_t stage_retry_base_ms; /* QG_SIGNAL_RETRY_BASE_MS, default 200 */
} qg_pipeline_config;

/* Validates cfg (errors name the setting), loads the policies, starts the
 * workers. The caller owns *out. */
qg_status qg_pipeline_new(const qg_pipeline_config *cfg, qg_pipeline **out, qg_error *err);

/* Stops taking work, lets the workers finish their current signal (a
 * notification waiting out a retry is abandoned and the signal stays
 * resumable), waits for the alerts posted to the notifier to come back
 * (stopped: within a tick), and frees. Free it before the notifier. NULL
 * is a no-op. */
void qg_pipeline_free(qg_pipeline *p);

/* Queues an accepted signal (already durable, state received). Never
 * blocks; when the queue is full the signal stays in the database as
 * received and is picked up by the next resume sweep. */
void qg_pipeline_enqueue(qg_pipeline *p, const qg_signal *s);

/* Queues every signal that is not finished (received, analysed, notified,
 * deferred whose time has come), oldest first: at start and after a full
 * queue. *n (may be NULL) gets how many. */
qg_status qg_pipeline_resume(qg_pipeline *p, size_t *n, qg_error *err);

/* Reloads the database policies (after an API change): the enabled rows of
 * signal_policies, merged after the configuration's, replace the set the
 * workers use (thread-safe; signals in flight keep the set they started
 * with). Errors name the policy and the field; the old set stays then. */
qg_status qg_pipeline_reload_policies(qg_pipeline *p, qg_error *err);

/* Pausing: while paused, signals are accepted and kept (state received)
 * but not processed; resume picks them up. Persisted in signal_settings so
 * a restart stays paused. */
qg_status qg_pipeline_set_paused(qg_pipeline *p, bool paused, qg_error *err);
bool qg_pipeline_paused(const qg_pipeline *p);

/* Dead-letter queue: replay (back to the queue from its failed stage) or
 * discard (state failed stays, the DLQ row goes). QG_ENOTFOUND when the
 * signal is not parked. */
qg_status qg_pipeline_replay(qg_pipeline *p, qg_conn *c, const char *signal_id, qg_error *err);
qg_status qg_pipeline_discard(qg_pipeline *p, qg_conn *c, const char *signal_id, qg_error *err);

/* Records a trade outcome ("win", "loss", "breakeven"; pnl optional) for
 * any signal, durably (waits for the commit), adds an "outcome" event,
 * and writes the signal's memory again with the outcome so similar-setup
 * lookups see it (a memory failure is logged, not returned). QG_ENOTFOUND
 * for an unknown id. */
qg_status qg_pipeline_outcome(qg_pipeline *p, qg_conn *c, const char *signal_id,
                              const char *outcome, bool has_pnl, double pnl, qg_error *err);

/* Counters since start (for /status, /metrics and GET /api/signals/status). */
typedef struct qg_pipeline_stats {
    uint64_t received, accepted, ignored, duplicates, rate_limited; /* from ingest */
    uint64_t filtered, analysed, notified, done, failed, deferred, escalated;
    size_t queued, in_flight, dlq;
    bool paused;
} qg_pipeline_stats;
void qg_pipeline_get_stats(qg_pipeline *p, qg_pipeline_stats *out);

/* Ingest reports its counts here so one place has them all. */
typedef enum {
    QG_PIPE_COUNT_RECEIVED,
    QG_PIPE_COUNT_ACCEPTED,
    QG_PIPE_COUNT_IGNORED,
    QG_PIPE_COUNT_DUPLICATE,
    QG_PIPE_COUNT_RATE_LIMITED
} qg_pipe_count;
void qg_pipeline_count(qg_pipeline *p, qg_pipe_count what);

/* Live events for GET /api/signals/stream: a bounded ring of the last
 * QG_PIPE_EVENTS_RING events, each {"seq":n,"signal_id":..,"state":..,
 * "stage":..,"reason":..,"at":..} as JSON text. Copies the events after
 * seq `after` into out (newline-free JSON, one per line) and returns the
 * last seq copied (after when none); *lost (may be NULL) is true when
 * events after `after` were already overwritten. */
#define QG_PIPE_EVENTS_RING 4096
uint64_t qg_pipeline_events_since(qg_pipeline *p, uint64_t after, qg_buf *out, bool *lost);
/* The newest seq (a new stream starts from here). */
uint64_t qg_pipeline_events_head(qg_pipeline *p);

/* /metrics: quantgate_signals_* counters, DLQ size, stage latency
 * histograms (quantgate_signal_stage_seconds{stage}). */
qg_status qg_pipeline_render_metrics(qg_pipeline *p, qg_buf *out);

#endif
