/*
 * ingest.h - the durable front door for signals: rate limits, duplicate
 * detection and the group-committed insert that must finish before a
 * webhook answers 202.
 *
 * qg_ingest_submit decides in memory (rate limits per symbol and overall,
 * minimum confidence, a duplicate by client id or by fingerprint within
 * the dedup window), then queues the signal row and its first event on the
 * shared batcher; done is called once that batch has committed (or
 * failed). Accepted signals then go to the pipeline; ignored ones are
 * stored as filtered with the reason and go nowhere.
 *
 * Duplicates: the dedup table maps client ids and fingerprints to the
 * first signal's id. It is filled as signals are submitted (so two copies
 * racing in are caught) and loaded at start from the signals received
 * within the window, so a restart does not forget. A duplicate's answer
 * waits for a barrier on the batcher: it is sent only once the original
 * is durable. The unique index on signals.client_id is the backstop.
 *
 * Threads: everything is thread-safe; done runs on the batcher's thread.
 */
#ifndef QG_SIGNAL_INGEST_H
#define QG_SIGNAL_INGEST_H

#include "signal/pipeline.h"
#include "signal/signal.h"
#include "store/batch.h"

#include <quantgate/status.h>

#include <stdbool.h>
#include <stdint.h>

typedef struct qg_ingest qg_ingest;

typedef struct qg_ingest_config {
    qg_store *store;         /* to load the dedup window at start */
    qg_batcher *batcher;     /* not owned */
    qg_pipeline *pipeline;   /* not owned; may be NULL (accept only) */
    double rate_per_symbol;  /* QG_WEBHOOK_RATE_PER_SYMBOL, per second; 0 = unlimited */
    double rate_global;      /* QG_WEBHOOK_RATE_GLOBAL, per second; 0 = unlimited */
    double min_confidence;   /* MIN_CONFIDENCE_SCORE, default 0 */
    int64_t dedup_window_ms; /* QG_WEBHOOK_DEDUP_WINDOW_S, default 300 s */
} qg_ingest_config;

qg_status qg_ingest_new(const qg_ingest_config *cfg, qg_ingest **out, qg_error *err);
void qg_ingest_free(qg_ingest *g);

typedef enum {
    QG_INGEST_ACCEPTED,     /* stored as received, queued for the pipeline */
    QG_INGEST_IGNORED,      /* stored as filtered: below the minimum confidence */
    QG_INGEST_DUPLICATE,    /* not stored: dup_of names the original */
    QG_INGEST_RATE_LIMITED, /* not stored: retry_after_s says when */
    QG_INGEST_FAILED        /* not stored: err says why (the database) */
} qg_ingest_result;

typedef struct qg_ingest_outcome {
    qg_ingest_result result;
    const qg_signal *signal; /* ids filled (accepted and ignored) */
    char dup_of[QG_ID_MAX];  /* duplicate: the original's id */
    char reason[160];        /* ignored and rate limited: why */
    int retry_after_s;       /* rate limited */
    const qg_error *err;     /* failed */
} qg_ingest_outcome;

/* Called exactly once per submitted signal (possibly before submit
 * returns, on the caller's thread, for decisions that need no commit). */
typedef void (*qg_ingest_done_fn)(void *ud, const qg_ingest_outcome *o);

/* Submits s (copied; id and correlation_id are set here when empty;
 * owner_id may be NULL). now_ms 0: the clock. */
void qg_ingest_submit(qg_ingest *g, const qg_signal *s, const char *owner_id, int64_t now_ms,
                      qg_ingest_done_fn done, void *ud);

/* The blocking form (detector and API callers): waits for the outcome and
 * copies it to *out (out->signal then points at sig_out, which must live
 * as long as out). */
void qg_ingest_submit_wait(qg_ingest *g, const qg_signal *s, const char *owner_id, int64_t now_ms,
                           qg_ingest_outcome *out, qg_signal *sig_out);

#endif
