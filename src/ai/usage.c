/*
 * usage.c - the call log, running totals, budgets, usage reports and the
 * qg_ai_* metrics (see usage.h for the contracts).
 *
 * Totals are kept per (scope, subject, period key) so a budget check is one
 * indexed join of ai_budgets with ai_usage_totals instead of a scan of
 * ai_calls; the upserts use INSERT ... ON CONFLICT DO UPDATE, which SQLite
 * and PostgreSQL both accept. The soft alert is claimed with
 * "UPDATE ... SET alerted = 1 WHERE alerted = 0" inside the recording
 * transaction, so two concurrent calls cannot both fire it.
 *
 * Metrics are process-wide (the AI layer is one per process): a fixed table
 * of label sets guarded by one mutex held for a few string compares, and two
 * relaxed atomics for the budget counters. When the tables are full, further
 * label sets are counted under model="other".
 */
#include "ai/usage.h"

#include "auth/audit.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- periods and cost ---- */

static int64_t day_of(int64_t ts)
{
    return ts >= 0 ? ts / QG_MS_PER_DAY : -((-ts + QG_MS_PER_DAY - 1) / QG_MS_PER_DAY);
}

void qg_ai_period_keys(int64_t ts, char *day, size_t day_cap, char *month, size_t month_cap)
{
    int64_t y;
    unsigned m, d;
    qg_civil_from_days(day_of(ts), &y, &m, &d);
    if (day) snprintf(day, day_cap, "%04lld-%02u-%02u", (long long)y, m, d);
    if (month) snprintf(month, month_cap, "%04lld-%02u", (long long)y, m);
}

int64_t qg_ai_period_end(int64_t ts, bool month)
{
    int64_t days = day_of(ts);
    if (!month) return (days + 1) * QG_MS_PER_DAY;
    int64_t y;
    unsigned m, d;
    qg_civil_from_days(days, &y, &m, &d);
    if (++m == 13) {
        m = 1;
        y++;
    }
    return qg_days_from_civil(y, m, 1) * QG_MS_PER_DAY;
}

double qg_ai_cost(const qg_ai_deployment *d, const qg_ai_usage *u)
{
    if (!d || !u) return 0;
    double in = u->input > 0 ? (double)u->input : 0, out = u->output > 0 ? (double)u->output : 0;
    return (in * d->price_in + out * d->price_out) / 1e6;
}

/* ---- metrics ---- */

#define M_CALL_SERIES  128
#define M_MODEL_SERIES 64

static const double lat_le[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
#define NLAT ((int)(sizeof lat_le / sizeof lat_le[0]))
/* quantgate's own time per call: fine-grained below 1 ms (the goal) */
static const int64_t ovh_le_us[] = {10,   25,   50,   100,   250,   500,   750,
                                    1000, 2500, 5000, 10000, 50000, 100000};
static const char *const ovh_le_txt[] = {"0.00001", "0.000025", "0.00005", "0.0001", "0.00025",
                                         "0.0005",  "0.00075",  "0.001",   "0.0025", "0.005",
                                         "0.01",    "0.05",     "0.1"};
#define NOVH ((int)(sizeof ovh_le_us / sizeof ovh_le_us[0]))

typedef struct call_series {
    char model[64], provider[16], outcome[32];
    uint64_t n;
} call_series;

typedef struct model_series {
    char model[64];
    uint64_t input, output, cached;
    double cost;
    uint64_t lat[NLAT + 1]; /* per bucket, last above the largest bound */
    double lat_sum;
} model_series;

static struct {
    pthread_mutex_t mu;
    call_series calls[M_CALL_SERIES];
    int ncalls;
    model_series models[M_MODEL_SERIES];
    int nmodels;
    uint64_t ovh[NOVH + 1];
    uint64_t ovh_sum_us;
    /* whole /v1 requests, same buckets: atomics, so the event loop that
     * records them never waits on the lock */
    atomic_uint_fast64_t req[NOVH + 1];
    atomic_uint_fast64_t req_sum_us;
    atomic_uint_fast64_t sreq[NOVH + 1]; /* the same for streams */
    atomic_uint_fast64_t sreq_sum_us;
    atomic_uint_fast64_t refusals, soft_alerts;
} M = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* A call's cost as recorded and totalled (a negative one counts as 0). */
static double call_cost(const qg_ai_call_record *r)
{
    return r->cost_usd > 0 ? r->cost_usd : 0;
}

static const char *nz(const char *s, const char *def)
{
    return s && *s ? s : def;
}

static call_series *m_call(const char *model, const char *provider, const char *outcome)
{
    for (int i = 0; i < M.ncalls; i++) {
        call_series *c = &M.calls[i];
        if (!strcmp(c->model, model) && !strcmp(c->provider, provider) &&
            !strcmp(c->outcome, outcome))
            return c;
    }
    int i = M.ncalls < M_CALL_SERIES ? M.ncalls++ : M_CALL_SERIES - 1;
    call_series *c = &M.calls[i];
    if (i == M_CALL_SERIES - 1) { /* full: the last slot counts everything else */
        if (strcmp(c->model, "other")) {
            snprintf(c->model, sizeof c->model, "other");
            c->provider[0] = c->outcome[0] = '\0';
        }
        return c;
    }
    snprintf(c->model, sizeof c->model, "%s", model);
    snprintf(c->provider, sizeof c->provider, "%s", provider);
    snprintf(c->outcome, sizeof c->outcome, "%s", outcome);
    return c;
}

static model_series *m_model(const char *model)
{
    for (int i = 0; i < M.nmodels; i++)
        if (!strcmp(M.models[i].model, model)) return &M.models[i];
    int i = M.nmodels < M_MODEL_SERIES ? M.nmodels++ : M_MODEL_SERIES - 1;
    model_series *s = &M.models[i];
    snprintf(s->model, sizeof s->model, "%s", i == M_MODEL_SERIES - 1 ? "other" : model);
    return s;
}

static int ovh_bucket(int64_t us)
{
    int b = 0;
    while (b < NOVH && us > ovh_le_us[b]) b++;
    return b;
}

void qg_ai_metrics_observe(const qg_ai_call_record *r, int64_t overhead_us)
{
    const char *model = nz(r->model_name, "unknown");
    double lat = r->latency_ms > 0 ? (double)r->latency_ms / 1000.0 : 0;
    int lb = 0;
    while (lb < NLAT && lat > lat_le[lb]) lb++;
    if (overhead_us < 0) overhead_us = 0;
    int ob = ovh_bucket(overhead_us);

    pthread_mutex_lock(&M.mu);
    m_call(model, nz(r->provider, "none"), nz(r->outcome, "unknown"))->n++;
    model_series *s = m_model(model);
    s->input += r->usage.input > 0 ? (uint64_t)r->usage.input : 0;
    s->output += r->usage.output > 0 ? (uint64_t)r->usage.output : 0;
    s->cached += r->usage.cached > 0 ? (uint64_t)r->usage.cached : 0;
    s->cost += call_cost(r);
    s->lat[lb]++;
    s->lat_sum += lat;
    M.ovh[ob]++;
    M.ovh_sum_us += (uint64_t)overhead_us;
    pthread_mutex_unlock(&M.mu);
}

void qg_ai_metrics_observe_request(int64_t added_us, bool stream)
{
    if (added_us < 0) added_us = 0;
    atomic_uint_fast64_t *hist = stream ? M.sreq : M.req;
    atomic_fetch_add_explicit(&hist[ovh_bucket(added_us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(stream ? &M.sreq_sum_us : &M.req_sum_us, (uint64_t)added_us,
                              memory_order_relaxed);
}

void qg_ai_metrics_reset(void)
{
    pthread_mutex_lock(&M.mu);
    memset(M.calls, 0, sizeof M.calls);
    memset(M.models, 0, sizeof M.models);
    memset(M.ovh, 0, sizeof M.ovh);
    for (int b = 0; b <= NOVH; b++) atomic_store(&M.req[b], 0);
    atomic_store(&M.req_sum_us, 0);
    for (int b = 0; b <= NOVH; b++) atomic_store(&M.sreq[b], 0);
    atomic_store(&M.sreq_sum_us, 0);
    M.ncalls = M.nmodels = 0;
    M.ovh_sum_us = 0;
    atomic_store(&M.refusals, 0);
    atomic_store(&M.soft_alerts, 0);
    pthread_mutex_unlock(&M.mu);
}

/* Writes into out and remembers the first failure. */
typedef struct mw {
    qg_buf *out;
    qg_status rc;
} mw;

static void mw_printf(mw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mw_printf(mw *w, const char *fmt, ...)
{
    if (w->rc) return;
    va_list ap;
    va_start(ap, fmt);
    w->rc = qg_buf_vprintf(w->out, fmt, ap);
    va_end(ap);
}

/* A label value escaped per the format: backslash, quote and newline. */
static void mw_label(mw *w, const char *s)
{
    for (const char *p = s; *p && !w->rc; p++) {
        if (*p == '\\' || *p == '"')
            mw_printf(w, "\\%c", *p);
        else if (*p == '\n')
            mw_printf(w, "\\n");
        else
            w->rc = qg_buf_append(w->out, p, 1);
    }
}

static void mw_head(mw *w, const char *name, const char *type, const char *help)
{
    mw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void mw_model(mw *w, const char *name, const char *model)
{
    mw_printf(w, "%s{model=\"", name);
    mw_label(w, model);
    mw_printf(w, "\"");
}

static void render_models(mw *w, const model_series *ms, int n)
{
    mw_head(w, "qg_ai_tokens_total", "counter", "Tokens by named model and kind.");
    for (int i = 0; i < n; i++) {
        const char *kinds[] = {"input", "output", "cached"};
        uint64_t v[] = {ms[i].input, ms[i].output, ms[i].cached};
        for (int k = 0; k < 3; k++) {
            mw_model(w, "qg_ai_tokens_total", ms[i].model);
            mw_printf(w, ",kind=\"%s\"} %" PRIu64 "\n", kinds[k], v[k]);
        }
    }
    mw_head(w, "qg_ai_cost_usd_total", "counter", "Cost in USD by named model.");
    for (int i = 0; i < n; i++) {
        mw_model(w, "qg_ai_cost_usd_total", ms[i].model);
        mw_printf(w, "} %.6f\n", ms[i].cost);
    }
    const char *h = "qg_ai_call_duration_seconds";
    mw_head(w, h, "histogram", "Whole-call latency by named model.");
    for (int i = 0; i < n; i++) {
        uint64_t cum = 0;
        for (int b = 0; b <= NLAT; b++) {
            cum += ms[i].lat[b];
            mw_model(w, "qg_ai_call_duration_seconds_bucket", ms[i].model);
            if (b < NLAT)
                mw_printf(w, ",le=\"%g\"} %" PRIu64 "\n", lat_le[b], cum);
            else
                mw_printf(w, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
        mw_model(w, "qg_ai_call_duration_seconds_sum", ms[i].model);
        mw_printf(w, "} %.6f\n", ms[i].lat_sum);
        mw_model(w, "qg_ai_call_duration_seconds_count", ms[i].model);
        mw_printf(w, "} %" PRIu64 "\n", cum);
    }
}

static void render_ovh(mw *w, const char *name, const char *help, const uint64_t *b,
                       uint64_t sum_us)
{
    mw_head(w, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i <= NOVH; i++) {
        cum += b[i];
        mw_printf(w, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, i < NOVH ? ovh_le_txt[i] : "+Inf",
                  cum);
    }
    mw_printf(w, "%s_sum %.6f\n", name, (double)sum_us / 1e6);
    mw_printf(w, "%s_count %" PRIu64 "\n", name, cum);
}

qg_status qg_ai_metrics_render(qg_buf *out)
{
    /* copy under the lock, format outside it */
    call_series *calls = malloc(sizeof M.calls);
    model_series *models = malloc(sizeof M.models);
    if (!calls || !models) {
        free(calls);
        free(models);
        return QG_ENOMEM;
    }
    uint64_t ovh[NOVH + 1], ovh_sum, req[NOVH + 1], req_sum, sreq[NOVH + 1], sreq_sum;
    pthread_mutex_lock(&M.mu);
    int nc = M.ncalls, nm = M.nmodels;
    memcpy(calls, M.calls, sizeof M.calls);
    memcpy(models, M.models, sizeof M.models);
    memcpy(ovh, M.ovh, sizeof ovh);
    ovh_sum = M.ovh_sum_us;
    for (int b = 0; b <= NOVH; b++) req[b] = atomic_load_explicit(&M.req[b], memory_order_relaxed);
    req_sum = atomic_load_explicit(&M.req_sum_us, memory_order_relaxed);
    for (int b = 0; b <= NOVH; b++)
        sreq[b] = atomic_load_explicit(&M.sreq[b], memory_order_relaxed);
    sreq_sum = atomic_load_explicit(&M.sreq_sum_us, memory_order_relaxed);
    pthread_mutex_unlock(&M.mu);

    mw w = {out, QG_OK};
    mw_head(&w, "qg_ai_calls_total", "counter", "AI calls by named model, provider and outcome.");
    for (int i = 0; i < nc; i++) {
        mw_model(&w, "qg_ai_calls_total", calls[i].model);
        mw_printf(&w, ",provider=\"");
        mw_label(&w, calls[i].provider);
        mw_printf(&w, "\",outcome=\"");
        mw_label(&w, calls[i].outcome);
        mw_printf(&w, "\"} %" PRIu64 "\n", calls[i].n);
    }
    render_models(&w, models, nm);
    render_ovh(&w, "qg_ai_overhead_seconds",
               "Time quantgate itself adds to a call (latency minus provider time).", ovh, ovh_sum);
    render_ovh(&w, "qg_ai_request_overhead_seconds",
               "Time quantgate adds to a non-streaming /v1 request: arrival on the event loop to "
               "the reply handed back to it, minus provider time.",
               req, req_sum);
    render_ovh(&w, "qg_ai_stream_overhead_seconds",
               "Time quantgate adds to a streamed /v1 request: arrival on the event loop to the "
               "last chunk handed back to it, minus provider time (request sent to last byte).",
               sreq, sreq_sum);
    mw_head(&w, "qg_ai_budget_refusals_total", "counter",
            "Calls refused before sending because a budget was exhausted.");
    mw_printf(&w, "qg_ai_budget_refusals_total %" PRIu64 "\n",
              (uint64_t)atomic_load_explicit(&M.refusals, memory_order_relaxed));
    mw_head(&w, "qg_ai_budget_soft_alerts_total", "counter",
            "Budgets that crossed their soft alert threshold.");
    mw_printf(&w, "qg_ai_budget_soft_alerts_total %" PRIu64 "\n",
              (uint64_t)atomic_load_explicit(&M.soft_alerts, memory_order_relaxed));
    free(calls);
    free(models);
    return w.rc;
}

/* ---- money and messages ---- */

/* "$5.02"; four decimals for limits under a dollar so they stay readable. */
static void usd(double v, double scale, char *out, size_t cap)
{
    snprintf(out, cap, scale >= 1 ? "$%.2f" : "$%.4f", v);
}

static bool exhausted(bool has_cost, double max_cost, bool has_tok, int64_t max_tok, double cost,
                      int64_t tokens, double frac)
{
    return (has_cost && cost >= max_cost * frac - 1e-12) ||
           (has_tok && (double)tokens >= (double)max_tok * frac);
}

/* ---- recording ---- */

typedef struct soft_hit {
    char id[QG_ID_MAX], scope[8], subject[QG_ID_MAX], period[8];
    bool has_cost, has_tok;
    double max_cost, cost, soft;
    int64_t max_tok, tokens;
} soft_hit;

static qg_status row_soft(void *ud, const qg_row *row)
{
    soft_hit *h = ud;
    snprintf(h->id, sizeof h->id, "%s", qg_row_text(row, 0));
    h->has_cost = !qg_row_is_null(row, 1);
    h->max_cost = qg_row_double(row, 1);
    h->has_tok = !qg_row_is_null(row, 2);
    h->max_tok = qg_row_int(row, 2);
    h->soft = qg_row_double(row, 3);
    h->cost = qg_row_double(row, 4);
    h->tokens = qg_row_int(row, 5);
    bool alerted = qg_row_int(row, 6) != 0;
    if (alerted ||
        !exhausted(h->has_cost, h->max_cost, h->has_tok, h->max_tok, h->cost, h->tokens, h->soft))
        h->id[0] = '\0';
    return QG_OK;
}

static const char *period_word(const char *period)
{
    return !strcmp(period, "day") ? "today" : "this month";
}

/* Claims and records the soft alert of (scope, subject, period) when its
 * threshold is crossed and it has not fired in this period. */
static qg_status soft_check(qg_conn *c, const char *scope, const char *subject, const char *period,
                            const char *key, const char *actor, soft_hit *hit, qg_error *err)
{
    memset(hit, 0, sizeof *hit);
    qg_val p[] = {QG_VTEXT(key), QG_VTEXT(scope), QG_VTEXT(subject), QG_VTEXT(period)};
    qg_status rc = qg_conn_query(
        c,
        "SELECT b.id, b.max_cost, b.max_tokens, b.soft_pct, t.cost, t.tokens, t.alerted "
        "FROM ai_budgets b JOIN ai_usage_totals t ON t.scope = b.scope AND t.subject = b.subject "
        "AND t.period_key = ? WHERE b.scope = ? AND b.subject = ? AND b.period = ?",
        p, 4, row_soft, hit, err);
    if (rc || !hit->id[0]) return rc;
    int64_t changes = 0;
    qg_val u[] = {QG_VTEXT(scope), QG_VTEXT(subject), QG_VTEXT(key)};
    rc = qg_conn_exec(c,
                      "UPDATE ai_usage_totals SET alerted = 1 WHERE scope = ? AND subject = ? AND "
                      "period_key = ? AND alerted = 0",
                      u, 3, &changes, err);
    if (rc || !changes) {
        hit->id[0] = '\0';
        return rc;
    }
    snprintf(hit->scope, sizeof hit->scope, "%s", scope);
    snprintf(hit->subject, sizeof hit->subject, "%s", subject);
    snprintf(hit->period, sizeof hit->period, "%s", period);
    qg_audit_entry e = {0};
    e.actor_id = actor;
    e.action = "ai.budget.soft_limit";
    e.target = hit->id;
    e.outcome = "ok";
    e.status = 0;
    return qg_audit_append(c, &e, err);
}

static void soft_log(const soft_hit *h)
{
    char spent[48], limit[48];
    if (h->has_cost && h->cost >= h->max_cost * h->soft - 1e-12) {
        usd(h->cost, h->max_cost, spent, sizeof spent);
        usd(h->max_cost, h->max_cost, limit, sizeof limit);
    } else {
        snprintf(spent, sizeof spent, "%lld tokens", (long long)h->tokens);
        snprintf(limit, sizeof limit, "%lld tokens", (long long)h->max_tok);
    }
    qg_warn("AI budget soft limit: %s budget %s%s%s at %s of %s %s (alert at %.0f%%)", h->scope,
            h->id, *h->subject ? " for " : "", h->subject, spent, limit, period_word(h->period),
            h->soft * 100);
}

/* The call's row in the call log, inside the caller's transaction. */
static qg_status insert_call(qg_conn *c, const qg_ai_call_record *r, int64_t ts, qg_error *err)
{
    double cost = call_cost(r);
    qg_val call[] = {QG_VTEXT(r->id),
                     QG_VINT(ts),
                     QG_VTEXT(r->user_id),
                     QG_VTEXT(r->token_id),
                     QG_VTEXT(nz(r->model_name, "unknown")),
                     QG_VTEXT(r->deployment_id),
                     QG_VTEXT(r->provider),
                     QG_VTEXT(r->model),
                     QG_VTEXT(r->template_id),
                     r->template_id ? QG_VINT(r->template_version) : QG_VNULL,
                     QG_VINT(r->usage.input),
                     QG_VINT(r->usage.output),
                     QG_VINT(r->usage.cached),
                     QG_VDBL(cost),
                     QG_VINT(r->latency_ms),
                     QG_VINT(r->attempts),
                     QG_VINT(r->stream ? 1 : 0),
                     QG_VTEXT(nz(r->outcome, "unknown")),
                     QG_VTEXT(r->error)};
    return qg_conn_exec(
        c,
        "INSERT INTO ai_calls (id, ts, user_id, token_id, model_name, deployment_id, "
        "provider, model, template_id, template_version, input_tokens, "
        "output_tokens, cached_tokens, cost, latency_ms, attempts, stream, outcome, "
        "error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        call, 19, NULL, err);
}

/* What a batch adds to one running total: (scope, subject, period key).
 * A batch's calls are summed per total first, so each total is upserted
 * and checked against its budget once per batch, not once per call. */
typedef struct total_add {
    const char *scope, *subject, *period; /* period: "day" or "month" */
    char key[16];                         /* "2026-11-21" or "2026-11" */
    const char *actor;                    /* the last call's user, for the audit entry */
    int64_t calls, tokens;
    double cost;
} total_add;

static void add_to_totals(const qg_ai_call_record *r, int64_t ts, total_add *adds, size_t *nadds)
{
    char keys[2][16];
    qg_ai_period_keys(ts, keys[0], sizeof keys[0], keys[1], sizeof keys[1]);
    const char *periods[2] = {"day", "month"};
    const char *scopes[3][2] = {{"global", ""}, {"user", r->user_id}, {"token", r->token_id}};
    int64_t tokens =
        (r->usage.input > 0 ? r->usage.input : 0) + (r->usage.output > 0 ? r->usage.output : 0);
    double cost = call_cost(r);
    for (int s = 0; s < 3; s++) {
        if (!scopes[s][1] || (s > 0 && !*scopes[s][1])) continue;
        for (int p = 0; p < 2; p++) {
            total_add *t = NULL;
            for (size_t i = 0; i < *nadds && !t; i++)
                if (!strcmp(adds[i].scope, scopes[s][0]) &&
                    !strcmp(adds[i].subject, scopes[s][1]) && !strcmp(adds[i].key, keys[p]))
                    t = &adds[i];
            if (!t) {
                t = &adds[(*nadds)++];
                *t = (total_add){
                    .scope = scopes[s][0], .subject = scopes[s][1], .period = periods[p]};
                memcpy(t->key, keys[p], sizeof t->key);
            }
            t->actor = r->user_id;
            t->calls++;
            t->tokens += tokens;
            t->cost += cost;
        }
    }
}

/* Upserts one total and claims its soft alert when this batch crossed the
 * threshold (hit->id set then). */
static qg_status apply_total(qg_conn *c, const total_add *t, soft_hit *hit, qg_error *err)
{
    qg_val up[] = {QG_VTEXT(t->scope), QG_VTEXT(t->subject), QG_VTEXT(t->key),
                   QG_VINT(t->calls),  QG_VINT(t->tokens),   QG_VDBL(t->cost)};
    qg_status rc = qg_conn_exec(
        c,
        "INSERT INTO ai_usage_totals (scope, subject, period_key, calls, tokens, cost) VALUES (?, "
        "?, ?, ?, ?, ?) ON CONFLICT (scope, subject, period_key) DO UPDATE SET calls = "
        "ai_usage_totals.calls + excluded.calls, tokens = ai_usage_totals.tokens + "
        "excluded.tokens, cost = ai_usage_totals.cost + excluded.cost",
        up, 6, NULL, err);
    if (rc) return rc;
    return soft_check(c, t->scope, t->subject, t->period, t->key, t->actor, hit, err);
}

static void soft_alerts(const soft_hit *hits, int n)
{
    for (int i = 0; i < n; i++) {
        soft_log(&hits[i]);
        atomic_fetch_add_explicit(&M.soft_alerts, 1, memory_order_relaxed);
    }
}

qg_status qg_ai_usage_record(qg_conn *c, const qg_ai_call_record *r, char *id_out, size_t cap,
                             qg_error *err)
{
    qg_ai_call_record one = *r;
    char id[QG_ID_MAX];
    if (!one.id) {
        qg_store_new_id("call", id, sizeof id);
        one.id = id;
    }
    const qg_ai_call_record *recs[1] = {&one};
    qg_status rc = qg_ai_usage_record_batch(c, recs, 1, err);
    if (!rc && id_out && cap) snprintf(id_out, cap, "%s", one.id);
    return rc;
}

/* The writes of a batch of call records, in the caller's transaction.
 * *hits (the caller frees it) gets the soft alerts the writes claimed, to
 * be logged once they commit. */
static qg_status usage_writes(qg_conn *c, const qg_ai_call_record *const *recs, size_t n,
                              soft_hit **hits_out, int *nhits_out, qg_error *err)
{
    /* Each call adds to at most six totals (three scopes, two periods). */
    total_add *adds = qg_xcalloc(n * 6 + 1, sizeof *adds);
    soft_hit *hits = qg_xcalloc(n * 6 + 1, sizeof *hits);
    size_t nadds = 0;
    int nhits = 0;
    qg_status rc = QG_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        int64_t ts = recs[i]->ts_ms ? recs[i]->ts_ms : qg_time_now_ms();
        rc = insert_call(c, recs[i], ts, err);
        add_to_totals(recs[i], ts, adds, &nadds);
    }
    for (size_t i = 0; !rc && i < nadds; i++) {
        rc = apply_total(c, &adds[i], &hits[nhits], err);
        if (!rc && hits[nhits].id[0]) nhits++;
    }
    free(adds);
    *hits_out = hits;
    *nhits_out = nhits;
    return rc;
}

qg_status qg_ai_usage_record_batch(qg_conn *c, const qg_ai_call_record *const *recs, size_t n,
                                   qg_error *err)
{
    soft_hit *hits = NULL;
    int nhits = 0;
    qg_status rc = qg_conn_begin(c, err);
    if (!rc) {
        rc = usage_writes(c, recs, n, &hits, &nhits, err);
        if (!rc) rc = qg_conn_commit(c, err);
        if (rc)
            qg_conn_rollback(c);
        else
            soft_alerts(hits, nhits);
    }
    free(hits);
    return rc;
}

typedef struct batched {
    const qg_ai_call_record *const *recs;
    size_t n;
    soft_hit *hits;
    int nhits;
} batched;

/* In the batcher's transaction, inside a savepoint (qg_batcher_run_whole):
 * a failed statement leaves none of this batch's writes. */
static qg_status apply_batched(qg_conn *c, void *arg, qg_error *err)
{
    batched *b = arg;
    return usage_writes(c, b->recs, b->n, &b->hits, &b->nhits, err);
}

qg_status qg_ai_usage_record_via(qg_batcher *batcher, const qg_ai_call_record *const *recs,
                                 size_t n, qg_error *err)
{
    batched b = {.recs = recs, .n = n};
    qg_status rc = qg_batcher_run_whole(batcher, apply_batched, &b, err);
    if (!rc) soft_alerts(b.hits, b.nhits);
    free(b.hits);
    return rc;
}

/* ---- budget check ---- */

static int scope_rank(const char *scope)
{
    return !strcmp(scope, "token") ? 3 : !strcmp(scope, "user") ? 2 : 1;
}

typedef struct check_state {
    int64_t now;
    int rows; /* budgets that apply, exhausted or not */
    bool found;
    int64_t resets;
    int rank;
    char scope[8], period[8];
    bool by_cost;
    double max_cost, cost;
    int64_t max_tok, tokens;
} check_state;

static qg_status row_check(void *ud, const qg_row *row)
{
    check_state *st = ud;
    st->rows++;
    const char *scope = qg_row_text(row, 0), *period = qg_row_text(row, 1);
    bool has_cost = !qg_row_is_null(row, 2), has_tok = !qg_row_is_null(row, 3);
    double max_cost = qg_row_double(row, 2), cost = qg_row_double(row, 4);
    int64_t max_tok = qg_row_int(row, 3), tokens = qg_row_int(row, 5);
    bool by_cost = has_cost && cost >= max_cost - 1e-12;
    if (!by_cost && !(has_tok && tokens >= max_tok)) return QG_OK;
    /* report the budget that blocks longest; the most specific on a tie */
    int64_t resets = qg_ai_period_end(st->now, !strcmp(period, "month"));
    int rank = scope_rank(scope);
    if (st->found && (resets < st->resets || (resets == st->resets && rank <= st->rank)))
        return QG_OK;
    st->found = true;
    st->resets = resets;
    st->rank = rank;
    snprintf(st->scope, sizeof st->scope, "%s", scope);
    snprintf(st->period, sizeof st->period, "%s", period);
    st->by_cost = by_cost;
    st->max_cost = max_cost;
    st->cost = cost;
    st->max_tok = max_tok;
    st->tokens = tokens;
    return QG_OK;
}

#define SPEND_JOIN                                                                                 \
    "LEFT JOIN ai_usage_totals t ON t.scope = b.scope AND t.subject = b.subject AND "              \
    "t.period_key = CASE WHEN b.period = 'day' THEN ? ELSE ? END "

qg_status qg_ai_budget_check(qg_conn *c, const char *user_id, const char *token_id, int64_t now_ms,
                             qg_error *err)
{
    return qg_ai_budget_check_ex(c, user_id, token_id, now_ms, NULL, err);
}

qg_status qg_ai_budget_check_ex(qg_conn *c, const char *user_id, const char *token_id,
                                int64_t now_ms, bool *applies, qg_error *err)
{
    char day[16], month[16];
    if (!now_ms) now_ms = qg_time_now_ms();
    qg_ai_period_keys(now_ms, day, sizeof day, month, sizeof month);
    check_state st = {.now = now_ms};
    qg_val p[] = {QG_VTEXT(day), QG_VTEXT(month), QG_VTEXT(user_id && *user_id ? user_id : NULL),
                  QG_VTEXT(token_id && *token_id ? token_id : NULL)};
    qg_status rc =
        qg_conn_query(c,
                      "SELECT b.scope, b.period, b.max_cost, b.max_tokens, "
                      "COALESCE(t.cost, 0), COALESCE(t.tokens, 0) FROM ai_budgets b " SPEND_JOIN
                      "WHERE (b.scope = 'global' AND b.subject = '') OR (b.scope = "
                      "'user' AND b.subject = ?) OR (b.scope = 'token' AND b.subject "
                      "= ?)",
                      p, 4, row_check, &st, err);
    if (rc) return rc;
    if (applies) *applies = st.rows > 0;
    if (!st.found) return QG_OK;
    atomic_fetch_add_explicit(&M.refusals, 1, memory_order_relaxed);
    char when[40];
    qg_time_format_iso(st.resets, when, sizeof when);
    if (st.by_cost) {
        char spent[48], limit[48];
        usd(st.cost, st.max_cost, spent, sizeof spent);
        usd(st.max_cost, st.max_cost, limit, sizeof limit);
        return qg_error_set(err, QG_EDENIED, "%s budget exhausted: spent %s of %s %s; resets %s",
                            st.scope, spent, limit, period_word(st.period), when);
    }
    return qg_error_set(err, QG_EDENIED,
                        "%s budget exhausted: used %lld of %lld tokens %s; resets %s", st.scope,
                        (long long)st.tokens, (long long)st.max_tok, period_word(st.period), when);
}

/* ---- budgets ---- */

static qg_status row_exists(void *ud, const qg_row *row)
{
    *(bool *)ud = true;
    return QG_OK;
}

static qg_status budget_validate(qg_conn *c, const qg_ai_budget *b, qg_error *err)
{
    bool global = !strcmp(b->scope, "global"), user = !strcmp(b->scope, "user"),
         token = !strcmp(b->scope, "token");
    if (!global && !user && !token)
        return qg_error_set(err, QG_EINVAL, "scope: expected 'global', 'user' or 'token'");
    if (strcmp(b->period, "day") && strcmp(b->period, "month"))
        return qg_error_set(err, QG_EINVAL, "period: expected 'day' or 'month'");
    if (global && *b->subject)
        return qg_error_set(err, QG_EINVAL, "subject: must be empty for the global scope");
    if (!global) {
        bool found = false;
        qg_val p[] = {QG_VTEXT(b->subject)};
        qg_status rc = qg_conn_query(
            c, user ? "SELECT 1 FROM users WHERE id = ?" : "SELECT 1 FROM api_tokens WHERE id = ?",
            p, 1, row_exists, &found, err);
        if (rc) return rc;
        if (!found)
            return qg_error_set(err, QG_EINVAL, "subject: no %s with id '%s'",
                                user ? "user" : "API token", b->subject);
    }
    if (!b->has_cost && !b->has_tokens)
        return qg_error_set(err, QG_EINVAL, "max_cost, max_tokens: give at least one limit");
    if (b->has_cost && !(b->max_cost >= 0 && b->max_cost <= 1e12))
        return qg_error_set(err, QG_EINVAL, "max_cost: must be between 0 and 1e12 (USD)");
    if (b->has_tokens && b->max_tokens < 0)
        return qg_error_set(err, QG_EINVAL, "max_tokens: must not be negative");
    if (!(b->soft_pct > 0 && b->soft_pct <= 1))
        return qg_error_set(
            err, QG_EINVAL,
            "soft_pct: a fraction of the limit, above 0 and at most 1 (0.8 = 80%%)");
    return QG_OK;
}

static qg_status row_budget_id(void *ud, const qg_row *row)
{
    qg_ai_budget *b = ud;
    snprintf(b->id, sizeof b->id, "%s", qg_row_text(row, 0));
    b->created_at = qg_row_int(row, 1);
    return QG_OK;
}

qg_status qg_ai_budget_put(qg_conn *c, qg_ai_budget *b, bool *created, qg_error *err)
{
    qg_status rc = budget_validate(c, b, err);
    if (rc) return rc;
    int64_t now = qg_time_now_ms();
    b->id[0] = '\0';
    qg_val k[] = {QG_VTEXT(b->scope), QG_VTEXT(b->subject), QG_VTEXT(b->period)};
    rc = qg_conn_query(c,
                       "SELECT id, created_at FROM ai_budgets WHERE scope = ? AND subject = ? AND "
                       "period = ?",
                       k, 3, row_budget_id, b, err);
    if (rc) return rc;
    bool create = !b->id[0];
    if (create) {
        qg_store_new_id("bud", b->id, sizeof b->id);
        b->created_at = now;
    }
    b->updated_at = now;
    qg_val p[] = {b->has_cost ? QG_VDBL(b->max_cost) : QG_VNULL,
                  b->has_tokens ? QG_VINT(b->max_tokens) : QG_VNULL,
                  QG_VDBL(b->soft_pct),
                  QG_VINT(now),
                  QG_VTEXT(b->id),
                  QG_VTEXT(b->scope),
                  QG_VTEXT(b->subject),
                  QG_VTEXT(b->period),
                  QG_VINT(now)};
    if (create)
        rc = qg_conn_exec(c,
                          "INSERT INTO ai_budgets (max_cost, max_tokens, soft_pct, updated_at, id, "
                          "scope, subject, period, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                          p, 9, NULL, err);
    else
        rc = qg_conn_exec(c,
                          "UPDATE ai_budgets SET max_cost = ?, max_tokens = ?, soft_pct = ?, "
                          "updated_at = ? WHERE id = ?",
                          p, 5, NULL, err);
    if (!rc && created) *created = create;
    return rc;
}

qg_status qg_ai_budget_delete(qg_conn *c, const char *id, qg_error *err)
{
    int64_t changes = 0;
    qg_val p[] = {QG_VTEXT(id)};
    qg_status rc = qg_conn_exec(c, "DELETE FROM ai_budgets WHERE id = ?", p, 1, &changes, err);
    if (!rc && !changes) return qg_error_set(err, QG_ENOTFOUND, "budget '%s' not found", id);
    return rc;
}

typedef struct list_state {
    int64_t now;
    char day[16], month[16];
    qg_status (*fn)(void *ud, const qg_ai_budget *b);
    void *ud;
} list_state;

static qg_status row_budget(void *ud, const qg_row *row)
{
    list_state *st = ud;
    qg_ai_budget b;
    memset(&b, 0, sizeof b);
    snprintf(b.id, sizeof b.id, "%s", qg_row_text(row, 0));
    snprintf(b.scope, sizeof b.scope, "%s", qg_row_text(row, 1));
    snprintf(b.subject, sizeof b.subject, "%s", qg_row_text(row, 2));
    snprintf(b.period, sizeof b.period, "%s", qg_row_text(row, 3));
    b.has_cost = !qg_row_is_null(row, 4);
    b.max_cost = qg_row_double(row, 4);
    b.has_tokens = !qg_row_is_null(row, 5);
    b.max_tokens = qg_row_int(row, 5);
    b.soft_pct = qg_row_double(row, 6);
    b.created_at = qg_row_int(row, 7);
    b.updated_at = qg_row_int(row, 8);
    b.spent_cost = qg_row_double(row, 9);
    b.spent_tokens = qg_row_int(row, 10);
    b.calls = qg_row_int(row, 11);
    b.alerted = qg_row_int(row, 12) != 0;
    bool month = !strcmp(b.period, "month");
    snprintf(b.period_key, sizeof b.period_key, "%s", month ? st->month : st->day);
    b.resets_at = qg_ai_period_end(st->now, month);
    return st->fn(st->ud, &b);
}

qg_status qg_ai_budget_list(qg_conn *c, const char *user_id, int64_t now_ms,
                            qg_status (*fn)(void *ud, const qg_ai_budget *b), void *ud,
                            qg_error *err)
{
    list_state st = {.now = now_ms ? now_ms : qg_time_now_ms(), .fn = fn, .ud = ud};
    qg_ai_period_keys(st.now, st.day, sizeof st.day, st.month, sizeof st.month);
    qg_val p[] = {QG_VTEXT(st.day), QG_VTEXT(st.month), QG_VTEXT(user_id), QG_VTEXT(user_id)};
    return qg_conn_query(
        c,
        user_id ? "SELECT b.id, b.scope, b.subject, b.period, b.max_cost, b.max_tokens, "
                  "b.soft_pct, b.created_at, b.updated_at, COALESCE(t.cost, 0), "
                  "COALESCE(t.tokens, 0), COALESCE(t.calls, 0), COALESCE(t.alerted, 0) FROM "
                  "ai_budgets b " SPEND_JOIN
                  "WHERE b.scope = 'global' OR (b.scope = 'user' AND b.subject = ?) OR (b.scope "
                  "= 'token' AND b.subject IN (SELECT id FROM api_tokens WHERE user_id = ?)) "
                  "ORDER BY b.scope, b.subject, b.period"
                : "SELECT b.id, b.scope, b.subject, b.period, b.max_cost, b.max_tokens, "
                  "b.soft_pct, b.created_at, b.updated_at, COALESCE(t.cost, 0), "
                  "COALESCE(t.tokens, 0), COALESCE(t.calls, 0), COALESCE(t.alerted, 0) FROM "
                  "ai_budgets b " SPEND_JOIN "ORDER BY b.scope, b.subject, b.period",
        p, user_id ? 4 : 2, row_budget, &st, err);
}

/* ---- usage reports ---- */

typedef struct query_state {
    const qg_ai_usage_query *q;
    qg_status (*fn)(void *ud, const qg_ai_usage_row *row);
    void *ud;
} query_state;

static qg_status row_usage(void *ud, const qg_row *row)
{
    query_state *st = ud;
    qg_ai_usage_row u;
    memset(&u, 0, sizeof u);
    int col = 0;
    if (st->q->by_day) {
        int64_t y;
        unsigned m, d;
        qg_civil_from_days(qg_row_int(row, col++), &y, &m, &d);
        snprintf(u.day, sizeof u.day, "%04lld-%02u-%02u", (long long)y, m, d);
    }
    if (st->q->by_user) u.user_id = qg_row_text(row, col++);
    if (st->q->by_model) u.model = qg_row_text(row, col++);
    u.calls = qg_row_int(row, col++);
    u.failures = qg_row_int(row, col++);
    u.input_tokens = qg_row_int(row, col++);
    u.output_tokens = qg_row_int(row, col++);
    u.cached_tokens = qg_row_int(row, col++);
    u.cost_usd = qg_row_double(row, col++);
    u.avg_latency_ms = qg_row_double(row, col++);
    return st->fn(st->ud, &u);
}

qg_status qg_ai_usage_query_run(qg_conn *c, const qg_ai_usage_query *q,
                                qg_status (*fn)(void *ud, const qg_ai_usage_row *row), void *ud,
                                qg_error *err)
{
    qg_buf sql;
    qg_buf_init(&sql, 4096);
    qg_buf groups;
    qg_buf_init(&groups, 256);
    qg_val p[5];
    size_t np = 0;
    /* day numbers by integer division: the same in SQLite and PostgreSQL */
    if (q->by_day) qg_buf_puts(&groups, ", ts / 86400000");
    if (q->by_user) qg_buf_puts(&groups, ", user_id");
    if (q->by_model) qg_buf_puts(&groups, ", model_name");
    const char *g = groups.len ? groups.data + 2 : NULL;
    qg_buf_printf(&sql,
                  "SELECT %s%sCOUNT(*), COALESCE(SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 "
                  "END), 0), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), "
                  "0), COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cost), 0), "
                  "COALESCE(AVG(latency_ms), 0) FROM ai_calls WHERE 1 = 1",
                  g ? g : "", g ? ", " : "");
    if (q->from) {
        qg_buf_puts(&sql, " AND ts >= ?");
        p[np++] = QG_VINT(q->from);
    }
    if (q->to) {
        qg_buf_puts(&sql, " AND ts <= ?");
        p[np++] = QG_VINT(q->to);
    }
    if (q->user_id) {
        qg_buf_puts(&sql, " AND user_id = ?");
        p[np++] = QG_VTEXT(q->user_id);
    }
    if (q->model) {
        qg_buf_puts(&sql, " AND model_name = ?");
        p[np++] = QG_VTEXT(q->model);
    }
    int limit = q->limit > 0 ? q->limit : 1000;
    qg_status rc = QG_OK;
    if (g) rc = qg_buf_printf(&sql, " GROUP BY %s ORDER BY %s LIMIT %d", g, g, limit);
    if (!rc && !sql.len) rc = QG_ENOMEM;
    if (rc) {
        rc = qg_error_set(err, QG_ENOMEM, "usage query: out of memory");
    } else {
        query_state st = {q, fn, ud};
        rc = qg_conn_query(c, sql.data, p, np, row_usage, &st, err);
    }
    qg_buf_free(&sql);
    qg_buf_free(&groups);
    return rc;
}
