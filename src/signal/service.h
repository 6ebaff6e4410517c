/*
 * service.h - the signal-alert service as the server holds it: the shared
 * group-commit batcher, ingest, the pipeline, the notifier, the rules and
 * the webhook's authentication settings, all built from the environment
 * (docs/signals.md lists every variable) by one call.
 *
 * Immutable after qg_signals_open except through the objects' own
 * thread-safe calls; freed after the HTTP loops have stopped.
 */
#ifndef QG_SIGNAL_SERVICE_H
#define QG_SIGNAL_SERVICE_H

#include "ai/ai.h"
#include "memory/memory.h"
#include "notify/notify.h"
#include "signal/ingest.h"
#include "signal/pipeline.h"
#include "signal/rules.h"
#include "store/batch.h"
#include "store/store.h"

#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct qg_ict_live qg_ict_live;

#define QG_TELEGRAM_ALLOWED_MAX 32

typedef struct qg_signals {
    qg_batcher *batcher; /* the database's writer; the AI layer's usage records go through it */
    qg_ai *ai;           /* borrowed */
    qg_ingest *ingest;
    qg_pipeline *pipeline;
    qg_notify *notify; /* may have no targets */
    qg_sessions *sessions;
    qg_ict_live *live;        /* POST /api/bars: detector state per symbol and timeframe */
    cJSON *policies;          /* QG_SIGNAL_POLICY, or NULL */
    cJSON *plan;              /* QG_SIGNAL_PLAN, or NULL */
    char owner_id[QG_ID_MAX]; /* QG_SIGNAL_OWNER's account (default: the first admin) */

    /* POST /api/webhook/receive */
    char *webhook_secret;            /* WEBHOOK_SECRET; NULL: only API tokens are accepted */
    unsigned char secret_digest[32]; /* BLAKE2b-256 of it, for qg_signals_secret_ok */
    bool hmac_required;              /* QG_WEBHOOK_HMAC=required: X-Signature over the raw body */
    int64_t replay_window_ms;        /* QG_WEBHOOK_REPLAY_WINDOW_S, default 300 */

    /* POST /api/telegram/command */
    char *telegram_secret; /* QG_TELEGRAM_WEBHOOK_SECRET: X-Telegram-Bot-Api-Secret-Token */
    int64_t
        allowed_chats[QG_TELEGRAM_ALLOWED_MAX]; /* TELEGRAM_CHAT_ID + QG_TELEGRAM_ALLOWED_CHATS */
    int nallowed;
} qg_signals;

/* Builds everything from the environment and resumes unfinished signals.
 * owner_fallback is the first admin's id. Errors name the variable. The
 * caller owns *out. */
qg_status qg_signals_open(qg_store *store, qg_ai *ai, qg_memory *memory, const char *owner_fallback,
                          qg_signals **out, qg_error *err);
/* Stops ingest and the pipeline (finishing the signals in hand), flushes
 * the batcher and frees. NULL is a no-op. */
void qg_signals_free(qg_signals *s);

/* Constant-time comparison of a presented secret with the configured one. */
bool qg_signals_secret_ok(const qg_signals *s, const char *presented);

#endif
