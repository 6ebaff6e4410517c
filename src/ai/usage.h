/*
 * usage.h - every AI call recorded, budgets enforced, usage reported.
 *
 * Recording: qg_ai_usage_record writes one ai_calls row and, in the same
 * transaction, adds the call to the running totals (ai_usage_totals) of the
 * global scope, the caller's user and the caller's API token, for the
 * current UTC day ("2026-11-21") and month ("2026-11"). A budget whose soft
 * threshold (soft_pct of its limit) is crossed alerts once per period: a
 * warning log line, an audit row "ai.budget.soft_limit" and a metrics
 * counter; ai_usage_totals.alerted remembers that it fired.
 *
 * Budgets (ai_budgets): per scope (global, user, token) and period (day,
 * month), a cost limit in USD and/or a token limit (input + output).
 * qg_ai_budget_check refuses a call before anything is sent when an
 * applicable budget is at or over its limit; it is one indexed query.
 *
 * Metrics: process-wide counters and histograms, updated under one short
 * mutex, rendered as Prometheus text (names qg_ai_*).
 *
 * Periods are UTC calendar days and months: a day budget resets at 00:00Z,
 * a month budget on the 1st at 00:00Z.
 */
#ifndef QG_AI_USAGE_H
#define QG_AI_USAGE_H

#include "ai/ai.h"
#include "ai/provider.h"
#include "store/batch.h"
#include "store/store.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One finished (or refused) call. Every pointer is borrowed; NULL strings
 * are stored as NULL. */
typedef struct qg_ai_call_record {
    const char *id; /* "call_<ulid>" made by the caller, or NULL: a new one */
    const char *user_id, *token_id, *model_name, *deployment_id, *provider, *model, *template_id;
    int template_version; /* 0: no template */
    qg_ai_usage usage;
    double cost_usd;
    int64_t latency_ms;
    int attempts;
    bool stream;
    const char *outcome; /* "ok" or qg_ai_errkind_name() */
    const char *error;   /* a message without secrets, or NULL */
    int64_t ts_ms;       /* 0: now */
} qg_ai_call_record;

/* Records r (see above). The new call id ("call_<ulid>") is written to
 * id_out (cap >= QG_ID_MAX; id_out may be NULL). */
qg_status qg_ai_usage_record(qg_conn *c, const qg_ai_call_record *r, char *id_out, size_t cap,
                             qg_error *err);
/* Records n calls in one transaction (each with its id set): the AI layer's
 * background writer batches this way. */
qg_status qg_ai_usage_record_batch(qg_conn *c, const qg_ai_call_record *const *recs, size_t n,
                                   qg_error *err);
/* The same writes as one op of a group-commit batcher's transaction (inside
 * a savepoint, so they land whole or not at all), waiting for its commit. */
qg_status qg_ai_usage_record_via(qg_batcher *batcher, const qg_ai_call_record *const *recs,
                                 size_t n, qg_error *err);

/* QG_OK when no applicable budget (global; user_id's; token_id's; NULL ids
 * skip their scope) is exhausted at now_ms; QG_EDENIED otherwise, err naming
 * the budget, period, limit, spend and reset time ("user budget exhausted:
 * spent $5.02 of $5.00 this month; resets 2026-12-01T00:00:00Z"). Counts a
 * refusal in the metrics. */
qg_status qg_ai_budget_check(qg_conn *c, const char *user_id, const char *token_id, int64_t now_ms,
                             qg_error *err);
/* The same; *applies (may be NULL) says whether any budget applies to the
 * caller at all, exhausted or not. */
qg_status qg_ai_budget_check_ex(qg_conn *c, const char *user_id, const char *token_id,
                                int64_t now_ms, bool *applies, qg_error *err);

/* USD for u on d: (input * price_in + output * price_out) / 1e6. Cached
 * tokens are part of input and charged at the input price (deployments
 * carry no discounted cache price). */
double qg_ai_cost(const qg_ai_deployment *d, const qg_ai_usage *u);

/* Period keys of ts: "YYYY-MM-DD" and "YYYY-MM" (cap >= 11 and 8), and the
 * ms at which the period holding ts ends. */
void qg_ai_period_keys(int64_t ts_ms, char *day, size_t day_cap, char *month, size_t month_cap);
int64_t qg_ai_period_end(int64_t ts_ms, bool month);

/* ---- budgets ---- */

typedef struct qg_ai_budget {
    char id[QG_ID_MAX];
    char scope[8];           /* "global", "user", "token" */
    char subject[QG_ID_MAX]; /* "" for global, else the user or token id */
    char period[8];          /* "day", "month" */
    bool has_cost, has_tokens;
    double max_cost;    /* USD, when has_cost */
    int64_t max_tokens; /* when has_tokens */
    double soft_pct;    /* 0 < soft_pct <= 1: the alert threshold as a fraction */
    int64_t created_at, updated_at;
    /* current spend (filled by qg_ai_budget_list) */
    char period_key[12];
    double spent_cost;
    int64_t spent_tokens, calls;
    int64_t resets_at; /* ms */
    bool alerted;      /* the soft alert fired this period */
} qg_ai_budget;

/* Creates or replaces (by scope, subject, period) the budget b describes;
 * fills b->id, created_at and updated_at; *created (may be NULL) tells which.
 * QG_EINVAL names the field (scope, period, subject, max_cost, max_tokens,
 * soft_pct). The subject must exist (a user or an API token id). */
qg_status qg_ai_budget_put(qg_conn *c, qg_ai_budget *b, bool *created, qg_error *err);
/* QG_ENOTFOUND when absent. */
qg_status qg_ai_budget_delete(qg_conn *c, const char *id, qg_error *err);
/* Calls fn for each budget with its spend at now_ms: all of them when
 * user_id is NULL, else the ones that apply to that user (global, the
 * user's, the user's API tokens'). The budget lives only during the call. */
qg_status qg_ai_budget_list(qg_conn *c, const char *user_id, int64_t now_ms,
                            qg_status (*fn)(void *ud, const qg_ai_budget *b), void *ud,
                            qg_error *err);

/* ---- usage reports (GET /api/usage) ---- */

typedef struct qg_ai_usage_query {
    int64_t from, to;    /* ms, inclusive; 0 = open */
    const char *user_id; /* NULL: everyone */
    const char *model;   /* named model, NULL: all */
    bool by_user, by_model, by_day;
    int limit; /* rows; 0: 1000 */
} qg_ai_usage_query;

typedef struct qg_ai_usage_row {
    const char *user_id; /* when by_user (NULL for calls without a user) */
    const char *model;   /* when by_model */
    char day[12];        /* when by_day, "2026-11-21" */
    int64_t calls, failures;
    int64_t input_tokens, output_tokens, cached_tokens;
    double cost_usd;
    double avg_latency_ms;
} qg_ai_usage_row;

/* Calls fn for each group (ordered by day, user, model), or once for the
 * totals when no grouping is asked. The row lives only during the call. */
qg_status qg_ai_usage_query_run(qg_conn *c, const qg_ai_usage_query *q,
                                qg_status (*fn)(void *ud, const qg_ai_usage_row *row), void *ud,
                                qg_error *err);

/* ---- metrics ---- */

/* Counts one finished call: calls by model/provider/outcome, tokens and
 * cost by model, latency and quantgate's own overhead. Thread-safe. */
void qg_ai_metrics_observe(const qg_ai_call_record *r, int64_t overhead_us);
/* Counts what quantgate added to one /v1 request: from its arrival on the
 * event loop to the reply (or a stream's last chunk) handed back to it,
 * minus the time spent waiting on providers
 * (qg_ai_request_overhead_seconds, qg_ai_stream_overhead_seconds). */
void qg_ai_metrics_observe_request(int64_t added_us, bool stream);
/* Appends the qg_ai_* families (Prometheus text 0.0.4) to out. */
qg_status qg_ai_metrics_render(qg_buf *out);
/* Zeroes everything (tests). */
void qg_ai_metrics_reset(void);

#endif
