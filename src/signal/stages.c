/*
 * stages.c - what a worker does with one signal: the stages in order,
 *   confluence -> killzone -> cooldown -> policy -> score -> threshold ->
 *   analyse -> plan -> remember -> notify -> done
 * each timed into its latency histogram. A filter that drops the signal
 * records state filtered with the stage and a reason that names the rule
 * and the values. A stage that fails (the AI layer, the database, every
 * notification target) is retried stage_retries times with exponential
 * backoff, then the signal is parked in the dead-letter queue (state
 * failed). When the pipeline stops mid-stage the signal is left as last
 * recorded, so the next start resumes it.
 *
 * The analysis asks the AI layer (template signal.analyze; the builtin
 * reasoner by default) with the signal and its most similar past setups
 * from memory (collection "analyses"), each with the outcome the signals
 * table has for it now, and parses {score, risk, entry, exit, explanation,
 * plan?} leniently (numbers may come as strings, exit falls back to
 * take_profit).
 */
#include "signal/pipeline_int.h"

#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stage_names[ST__COUNT] = {
    "confluence", "killzone", "cooldown", "policy", "score", "threshold",
    "analyse",    "plan",     "remember", "notify", "done",  "outcome"};

const char *qg_pstage_name(qg_pstage s)
{
    return s >= 0 && s < ST__COUNT ? stage_names[s] : "unknown";
}

int qg_pstage_parse(const char *name)
{
    for (int i = 0; name && i < ST__COUNT; i++)
        if (!strcmp(name, stage_names[i])) return i;
    return -1;
}

void qg_pjob_free(qg_pjob *j)
{
    if (!j) return;
    free(j->analysis);
    cJSON_Delete(j->an_doc);
    free(j->plan_result);
    free(j);
}

/* The analysis as a document, parsed at most once per run (NULL when
 * there is none). Called from the worker's own thread only. */
static const cJSON *analysis_doc(qg_pjob *j)
{
    if (!j->an_doc && j->analysis) j->an_doc = cJSON_Parse(j->analysis);
    return j->an_doc;
}

/* Per-run context: the targets already delivered (loaded on resume, grown
 * as this run delivers), shared with plan steps. */
typedef struct run_ctx {
    qg_pipeline *p;
    qg_pjob *j;
    pthread_mutex_t mu;
    char sent[QG_NOTIFY_TARGETS_MAX * 2][16 + 96 + 2];
    int nsent;
    bool sent_loaded;
} run_ctx;

/* A stage's verdict besides its status. */
typedef enum { GO_ON, STOP_HERE } flow;

static void drop(qg_pipeline *p, qg_pjob *j, qg_pstage st, qg_pdrop why, const char *reason,
                 const char *detail)
{
    atomic_fetch_add_explicit(&p->n_filtered, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->n_dropped[why], 1, memory_order_relaxed);
    qg_error err = {0};
    qg_pstate s = {.state = QG_SIG_FILTERED,
                   .stage = st,
                   .reason = reason,
                   .detail = detail,
                   .update_signal = true};
    (void)qg_pipeline_record(p, j, &s, false, &err);
}

static qg_status with_conn(qg_pipeline *p, qg_conn **c, qg_error *err)
{
    return qg_store_acquire(p->cfg.store, c, err);
}

/* ---- filters ---- */

static qg_status st_confluence(qg_pipeline *p, qg_pjob *j, flow *f, qg_error *err)
{
    int min = p->cfg.min_confluences;
    if (min > 0 && j->sig.nconfluences < min) {
        char why[128];
        snprintf(why, sizeof why, "%d confluence%s, minimum %d", j->sig.nconfluences,
                 j->sig.nconfluences == 1 ? "" : "s", min);
        drop(p, j, ST_CONFLUENCE, DROP_CONFLUENCE, why, NULL);
        *f = STOP_HERE;
    }
    return QG_OK;
}

static qg_status st_killzone(qg_pipeline *p, qg_pjob *j, flow *f, qg_error *err)
{
    j->session[0] = '\0';
    if (!p->cfg.sessions) return QG_OK;
    const qg_session_window *w = qg_sessions_match(p->cfg.sessions, j->sig.symbol, j->sig.ts_ms);
    if (w) {
        snprintf(j->session, sizeof j->session, "%s", w->name);
        return QG_OK;
    }
    if (p->cfg.killzone_required) {
        char iso[40], why[192];
        qg_time_format_iso(j->sig.ts_ms, iso, sizeof iso);
        snprintf(why, sizeof why, "timestamp %s is outside every session window for %s", iso,
                 j->sig.symbol);
        drop(p, j, ST_KILLZONE, DROP_KILLZONE, why, NULL);
        *f = STOP_HERE;
    }
    return QG_OK;
}

static qg_status st_cooldown(qg_pipeline *p, qg_pjob *j, flow *f, qg_error *err)
{
    if (!p->cooldown || p->cfg.cooldown_ms <= 0) return QG_OK;
    int64_t rem = 0;
    /* Judged on the signal's own time, so a replayed or resumed batch
     * behaves as it did live. */
    if (!qg_cooldown_take(p->cooldown, j->sig.symbol, j->sig.signal_type, j->sig.ts_ms, &rem)) {
        char why[192];
        snprintf(why, sizeof why, "%s %s cooling down: %.1f s of %.0f s left", j->sig.symbol,
                 j->sig.signal_type, (double)rem / 1000.0, (double)p->cfg.cooldown_ms / 1000.0);
        drop(p, j, ST_COOLDOWN, DROP_COOLDOWN, why, NULL);
        *f = STOP_HERE;
    }
    return QG_OK;
}

static void compute_score(qg_pipeline *p, qg_pjob *j)
{
    j->score = qg_score(&p->cfg.weights, &j->sig, j->session[0] != '\0');
    j->has_score = true;
}

static const char *action_name(qg_policy_action a)
{
    switch (a) {
    case QG_POLICY_ALLOW:
        return "allow";
    case QG_POLICY_DROP:
        return "drop";
    case QG_POLICY_DEFER:
        return "defer";
    case QG_POLICY_ESCALATE:
        return "escalate";
    }
    return "allow";
}

static qg_status count_row(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_int(row, 0);
    return QG_OK;
}

static qg_status count_deferrals(qg_pipeline *p, const char *id, int64_t *n, qg_error *err)
{
    qg_conn *c = NULL;
    qg_status rc = with_conn(p, &c, err);
    if (rc) return rc;
    *n = 0;
    qg_val v[] = {QG_VTEXT(id)};
    rc = qg_conn_query(
        c, "SELECT COUNT(*) FROM signal_events WHERE signal_id = ? AND state = 'deferred'", v, 1,
        count_row, n, err);
    qg_store_release(p->cfg.store, c);
    return rc;
}

static qg_status escalate(run_ctx *x, const char *reason, atomic_bool *stop,
                          const char *stop_reason, qg_error *err);

/* *esc (cap bytes) gets the reason when the verdict is ESCALATE: the
 * caller, which owns the run context, sends the escalation. */
static qg_status st_policy(qg_pipeline *p, qg_pjob *j, flow *f, char *esc, size_t cap,
                           qg_error *err)
{
    esc[0] = '\0';
    compute_score(p, j);
    qg_policy_verdict v = {.action = QG_POLICY_ALLOW};
    pthread_rwlock_rdlock(&p->policy_lock);
    bool any = p->policies && p->npolicies > 0;
    if (any) qg_policy_eval(p->policies, &j->sig, true, j->score, qg_time_now_ms(), &v);
    pthread_rwlock_unlock(&p->policy_lock);
    if (!any) return QG_OK;

    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "action", action_name(v.action));
    cJSON_AddStringToObject(d, "policy", v.policy);
    cJSON_AddStringToObject(d, "reason", v.reason);
    char *detail = qg_json_compact(d);
    cJSON_Delete(d);
    qg_status rc = QG_OK;
    switch (v.action) {
    case QG_POLICY_ALLOW: {
        qg_pstate s = {
            .state = QG_SIG_RECEIVED, .stage = ST_POLICY, .reason = v.reason, .detail = detail};
        rc = qg_pipeline_record(p, j, &s, false, err);
        break;
    }
    case QG_POLICY_DROP:
        drop(p, j, ST_POLICY, DROP_POLICY, v.reason, detail);
        *f = STOP_HERE;
        break;
    case QG_POLICY_DEFER: {
        int64_t n = 0;
        if ((rc = count_deferrals(p, j->sig.id, &n, err))) break;
        *f = STOP_HERE;
        if (n >= p->defer_max) {
            char why[400];
            snprintf(why, sizeof why, "deferred %lld times (QG_SIGNAL_DEFER_MAX %d): %s",
                     (long long)n, p->defer_max, v.reason);
            drop(p, j, ST_POLICY, DROP_DEFER_LIMIT, why, detail);
            break;
        }
        atomic_fetch_add_explicit(&p->n_deferred, 1, memory_order_relaxed);
        qg_pstate s = {.state = QG_SIG_DEFERRED,
                       .stage = ST_POLICY,
                       .reason = v.reason,
                       .detail = detail,
                       .update_signal = true};
        rc = qg_pipeline_record(p, j, &s, false, err);
        break;
    }
    case QG_POLICY_ESCALATE: {
        *f = STOP_HERE;
        snprintf(esc, cap, "%s", v.reason[0] ? v.reason : "escalated by policy");
        qg_pstate s = {
            .state = QG_SIG_RECEIVED, .stage = ST_POLICY, .reason = esc, .detail = detail};
        rc = qg_pipeline_record(p, j, &s, false, err);
        break;
    }
    }
    cJSON_free(detail);
    return rc;
}

static qg_status st_threshold(qg_pipeline *p, qg_pjob *j, flow *f, qg_error *err)
{
    if (!j->has_score) compute_score(p, j);
    if (j->score < p->cfg.score_threshold) {
        char why[128];
        snprintf(why, sizeof why, "score %g below threshold %g", j->score, p->cfg.score_threshold);
        drop(p, j, ST_THRESHOLD, DROP_THRESHOLD, why, NULL);
        *f = STOP_HERE;
    }
    return QG_OK;
}

/* ---- memory: similar setups ---- */

/* The text a signal is remembered and looked up by. */
static void setup_text(const qg_pjob *j, qg_buf *b)
{
    const qg_signal *s = &j->sig;
    (void)qg_buf_printf(b, "%s %s %s session %s", s->symbol, s->timeframe, s->signal_type,
                        j->session[0] ? j->session : "none");
    if (s->nconfluences) {
        (void)qg_buf_puts(b, " confluences:");
        for (int i = 0; i < s->nconfluences; i++)
            (void)qg_buf_printf(b, "%s %s", i ? "," : "", s->confluences[i]);
    }
    if (s->multi_tf) (void)qg_buf_puts(b, " multi-timeframe");
}

typedef struct outcome_row {
    const char *signal_id; /* the candidate's (in the search arena) */
    char outcome[16];
    bool has_pnl;
    double pnl;
    bool found;
} outcome_row;

typedef struct outcome_batch {
    outcome_row *rows;
    int n;
} outcome_batch;

static qg_status outcome_cb(void *ud, const qg_row *row)
{
    outcome_batch *b = ud;
    const char *id = qg_row_text(row, 0);
    for (int i = 0; id && i < b->n; i++) {
        outcome_row *o = &b->rows[i];
        if (o->found || strcmp(o->signal_id, id)) continue;
        o->found = true;
        const char *oc = qg_row_text(row, 1);
        snprintf(o->outcome, sizeof o->outcome, "%s", oc ? oc : "");
        o->has_pnl = !qg_row_is_null(row, 2);
        o->pnl = o->has_pnl ? qg_row_double(row, 2) : 0;
    }
    return QG_OK;
}

/* The outcomes of the n candidates; a candidate without one stays not
 * found. Signals with an outcome are in the partial index signals_outcome
 * (a few pages, however many signals there are): SQLite is told to use it,
 * as it would pick the primary key's index and then read each 2-4 KB row;
 * other backends choose it by themselves. */
#define QG_SIMILAR_MAX QG_MEM_SEARCH_MAX
static qg_status load_outcomes(qg_pipeline *p, qg_conn *c, outcome_row *rows, int n, qg_error *err)
{
    enum { ARMS = 8 }; /* a few a query (qg_sql_union_all) */
    const char *one =
        strcmp(qg_store_backend(p->cfg.store), "sqlite") == 0
            ? "SELECT id, outcome, pnl FROM signals INDEXED BY signals_outcome "
              "WHERE id = ? AND outcome IS NOT NULL"
            : "SELECT id, outcome, pnl FROM signals WHERE id = ? AND outcome IS NOT NULL";
    qg_status rc = QG_OK;
    for (int from = 0; from < n && !rc; from += ARMS) {
        int k = n - from < ARMS ? n - from : ARMS;
        char sql[ARMS * 128];
        qg_val v[ARMS];
        if (qg_sql_union_all(sql, sizeof sql, one, (size_t)k))
            return qg_error_set(err, QG_EINTERNAL, "similar setups: outcome query too long");
        for (int i = 0; i < k; i++) v[i] = QG_VTEXT(rows[from + i].signal_id);
        outcome_batch b = {rows + from, k};
        rc = qg_conn_query(c, sql, v, (size_t)k, outcome_cb, &b, err);
    }
    return rc;
}

/* Up to n similar past setups, each with its outcome as the signals table
 * has it now (the authority: an outcome posted after the memory was
 * written is seen at once). A new array; empty without memory. */
static qg_status similar_setups(qg_pipeline *p, qg_pjob *j, int n, cJSON **out, qg_error *err)
{
    *out = cJSON_CreateArray();
    if (!p->cfg.memory || !p->owner_id || n <= 0) return QG_OK;
    if (n > QG_SIMILAR_MAX - 1) n = QG_SIMILAR_MAX - 1;
    qg_conn *c = NULL;
    qg_status rc = with_conn(p, &c, err);
    if (rc) return rc;
    qg_buf q;
    qg_buf_init(&q, 4096);
    setup_text(j, &q);
    qg_arena a;
    qg_arena_init(&a, 16384);
    qg_mem_item *items = NULL;
    size_t ni = 0;
    qg_mem_query mq = {.user_id = p->owner_id,
                       .collection = "analyses",
                       .text = q.data ? q.data : "",
                       .n = (size_t)n + 1};
    rc = qg_memory_search(p->cfg.memory, c, &mq, &a, &items, &ni, err);
    /* The candidates (not this signal itself), then their outcomes. */
    outcome_row rows[QG_SIMILAR_MAX];
    size_t which[QG_SIMILAR_MAX];
    int nc = 0;
    for (size_t i = 0; !rc && i < ni && nc < n; i++) {
        cJSON *meta = cJSON_Parse(items[i].meta_json ? items[i].meta_json : "{}");
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(meta, "signal_id");
        if (cJSON_IsString(sid) && strcmp(sid->valuestring, j->sig.id)) {
            rows[nc] = (outcome_row){
                .signal_id = qg_arena_strndup(&a, sid->valuestring, strlen(sid->valuestring))};
            which[nc++] = i;
        }
        cJSON_Delete(meta);
    }
    if (!rc) rc = load_outcomes(p, c, rows, nc, err);
    for (int k = 0; !rc && k < nc; k++) {
        const qg_mem_item *it = &items[which[k]];
        const outcome_row *o = &rows[k];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "signal_id", o->signal_id);
        cJSON_AddNumberToObject(e, "similarity", round(it->score * 1000.0) / 1000.0);
        cJSON_AddStringToObject(e, "setup", it->text ? it->text : "");
        cJSON_AddStringToObject(e, "outcome", o->found && o->outcome[0] ? o->outcome : "unknown");
        if (o->has_pnl)
            cJSON_AddNumberToObject(e, "pnl", o->pnl);
        else
            cJSON_AddNullToObject(e, "pnl");
        cJSON_AddItemToArray(*out, e);
    }
    qg_arena_free(&a);
    qg_buf_free(&q);
    qg_store_release(p->cfg.store, c);
    return rc;
}

/* ---- analysis ---- */

static bool num_of(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
        *out = v->valuedouble;
        return true;
    }
    if (cJSON_IsString(v) && v->valuestring) {
        char *end = NULL;
        double d = strtod(v->valuestring, &end);
        while (end && isspace((unsigned char)*end)) end++;
        if (end && end != v->valuestring && *end == '\0' && isfinite(d)) {
            *out = d;
            return true;
        }
    }
    return false;
}

static void set_num_or_null(cJSON *o, const char *name, bool has, double v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, name);
    if (has)
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

/* Normalises an answer in place; QG_EINVAL when it has no usable score. */
static qg_status normalise_analysis(cJSON *o, qg_error *err)
{
    if (!cJSON_IsObject(o)) return qg_error_set(err, QG_EINVAL, "analysis: not a JSON object");
    double score;
    if (!num_of(cJSON_GetObjectItemCaseSensitive(o, "score"), &score))
        return qg_error_set(err, QG_EINVAL, "analysis: score: missing or not a number");
    score = fmax(0, fmin(100, score));
    set_num_or_null(o, "score", true, score);

    const cJSON *risk = cJSON_GetObjectItemCaseSensitive(o, "risk");
    char rk[16] = "unknown";
    if (cJSON_IsString(risk) && risk->valuestring[0]) {
        snprintf(rk, sizeof rk, "%s", risk->valuestring);
        for (char *c = rk; *c; c++) *c = (char)tolower((unsigned char)*c);
    } else if (cJSON_IsNumber(risk)) {
        snprintf(rk, sizeof rk, "%s",
                 risk->valuedouble >= 66   ? "high"
                 : risk->valuedouble >= 33 ? "medium"
                                           : "low");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "risk");
    cJSON_AddStringToObject(o, "risk", rk);

    double entry = 0, ex = 0;
    bool he = num_of(cJSON_GetObjectItemCaseSensitive(o, "entry"), &entry);
    bool hx = num_of(cJSON_GetObjectItemCaseSensitive(o, "exit"), &ex);
    if (!hx) hx = num_of(cJSON_GetObjectItemCaseSensitive(o, "take_profit"), &ex);
    set_num_or_null(o, "entry", he, entry);
    set_num_or_null(o, "exit", hx, ex);

    const cJSON *expl = cJSON_GetObjectItemCaseSensitive(o, "explanation");
    if (!cJSON_IsString(expl)) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "explanation");
        cJSON_AddStringToObject(o, "explanation", "");
    }
    const cJSON *plan = cJSON_GetObjectItemCaseSensitive(o, "plan");
    if (plan && !cJSON_IsObject(plan)) cJSON_DeleteItemFromObjectCaseSensitive(o, "plan");
    return QG_OK;
}

static cJSON *signal_input(const qg_pjob *j)
{
    cJSON *s = qg_signal_json(&j->sig);
    if (!s) return NULL;
    cJSON_AddStringToObject(s, "signal_id", j->sig.id);
    if (j->session[0]) cJSON_AddStringToObject(s, "session", j->session);
    if (j->has_score) cJSON_AddNumberToObject(s, "pipeline_score", j->score);
    return s;
}

static void add_str(cJSON *o, const char *name, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

static const char *ANALYSIS_SHAPE =
    "{\"type\":\"object\",\"required\":[\"score\"],\"properties\":{\"score\":{\"type\":"
    "[\"number\",\"string\"]}}}";

/* Runs the analysis (an AI call) and returns the normalised object.
 * cancel (may be NULL) ends the AI call early: a plan step's timeout. */
static qg_status analyse_now(qg_pipeline *p, qg_pjob *j, atomic_bool *cancel, cJSON **out,
                             qg_error *err)
{
    *out = NULL;
    cJSON *similar = NULL;
    qg_status rc = similar_setups(p, j, p->cfg.similar_setups, &similar, err);
    if (rc) {
        cJSON_Delete(similar);
        return rc;
    }
    cJSON *params = cJSON_CreateObject();
    cJSON_AddItemToObject(params, "signal", signal_input(j));
    cJSON *market = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(market, "similar_past_setups", similar);
    cJSON_AddItemToObject(params, "market", market);
    char *pj = qg_json_compact(params);

    qg_arena a;
    qg_arena_init(&a, 32768);
    qg_ai_call call = {.user_id = p->owner_id,
                       .model = p->model,
                       .template_id = "signal.analyze",
                       .params_json = pj,
                       .params = params,
                       .expect_shape = ANALYSIS_SHAPE,
                       .want_value = true,
                       .cancel = cancel};
    qg_ai_result res;
    memset(&res, 0, sizeof res);
    rc = qg_ai_complete(p->cfg.ai, &call, &a, &res, err);
    cJSON_free(pj);
    cJSON_Delete(params);
    cJSON *doc = NULL;
    if (!rc) {
        doc = res.value; /* the validated answer, parsed once by the AI layer */
        rc = normalise_analysis(doc, err);
    } else {
        qg_error_prefix(err, "analysis (model %s): ", p->model);
    }
    if (!rc) {
        /* The stored analysis names the setups the model saw; their texts
         * stay in memory (a stored copy would triple the analysis). */
        cJSON *e;
        cJSON_ArrayForEach(e, similar) cJSON_DeleteItemFromObjectCaseSensitive(e, "setup");
        cJSON_AddItemToObject(doc, "similar_setups", similar);
        similar = NULL;
        cJSON *m = cJSON_CreateObject();
        add_str(m, "model", res.model_name);
        add_str(m, "deployment", res.deployment_id);
        add_str(m, "provider", res.provider);
        cJSON_AddBoolToObject(m, "builtin_fallback", res.builtin_fallback);
        cJSON_AddNumberToObject(m, "latency_ms", (double)res.latency_ms);
        cJSON_AddItemToObject(doc, "ai", m);
        *out = doc;
        doc = NULL;
    }
    cJSON_Delete(doc);
    cJSON_Delete(similar);
    qg_arena_free(&a);
    return rc;
}

static qg_status st_analyse(qg_pipeline *p, qg_pjob *j, flow *f, qg_error *err)
{
    if (!p->analyse_on || j->analysis) return QG_OK;
    cJSON *doc = NULL;
    qg_status rc = analyse_now(p, j, NULL, &doc, err);
    if (rc) return rc;
    char *s = qg_json_compact(doc);
    if (!s) {
        cJSON_Delete(doc);
        return qg_error_set(err, QG_ENOMEM, "analysis: out of memory");
    }
    cJSON_Delete(j->an_doc);
    j->an_doc = doc; /* the later stages read it instead of parsing the text */
    j->analysis = s; /* malloc'd by qg_json_compact: the job's now */
    j->analysis_new = true;
    atomic_fetch_add_explicit(&p->n_analysed, 1, memory_order_relaxed);
    qg_pstate st = {.state = QG_SIG_ANALYSED, .stage = ST_ANALYSE, .update_signal = true};
    return qg_pipeline_record(p, j, &st, false, err);
}

/* ---- notifications ---- */

static bool want_target(void *ud, const char *channel, const char *key)
{
    run_ctx *x = ud;
    char k[sizeof x->sent[0]];
    snprintf(k, sizeof k, "%s\n%s", channel, key);
    pthread_mutex_lock(&x->mu);
    bool seen = false;
    for (int i = 0; i < x->nsent && !seen; i++) seen = !strcmp(x->sent[i], k);
    pthread_mutex_unlock(&x->mu);
    return !seen;
}

static void add_sent(run_ctx *x, const char *channel, const char *key)
{
    pthread_mutex_lock(&x->mu);
    if (x->nsent < (int)(sizeof x->sent / sizeof x->sent[0]))
        snprintf(x->sent[x->nsent++], sizeof x->sent[0], "%s\n%s", channel, key);
    pthread_mutex_unlock(&x->mu);
}

static qg_status sent_row(void *ud, const qg_row *row)
{
    const char *ch = qg_row_text(row, 0), *t = qg_row_text(row, 1);
    if (ch && t) add_sent(ud, ch, t);
    return QG_OK;
}

/* A resumed signal may have deliveries from before the restart. */
static qg_status load_sent(run_ctx *x, qg_error *err)
{
    if (x->sent_loaded || !x->j->resumed) return QG_OK;
    qg_conn *c = NULL;
    qg_status rc = with_conn(x->p, &c, err);
    if (rc) return rc;
    qg_val v[] = {QG_VTEXT(x->j->sig.id)};
    rc = qg_conn_query(c,
                       "SELECT channel, target FROM signal_deliveries WHERE signal_id = ? AND "
                       "status = 'sent'",
                       v, 1, sent_row, x, err);
    qg_store_release(x->p->cfg.store, c);
    if (!rc) x->sent_loaded = true;
    return rc;
}

/* Records the deliveries d[0..n) of j's signal (x, when given, learns
 * the delivered targets). QG_OK when at least one target got it (or none
 * was left); QG_EIO when every tried target failed; QG_EAGAIN when the
 * pipeline stops: then only what went out is recorded (the rest is
 * retried by the next start). */
static qg_status record_sends(qg_pipeline *p, qg_pjob *j, run_ctx *x, const qg_delivery *d,
                              size_t n, char *summary, size_t cap, qg_error *err)
{
    summary[0] = '\0';
    bool stopping = atomic_load(&p->stop);
    size_t ok = 0;
    const char *first_err = NULL;
    for (size_t i = 0; i < n; i++) {
        if (stopping && !d[i].ok) continue;
        qg_pipeline_record_delivery(p, j->sig.id, &d[i]);
        if (d[i].ok) {
            ok++;
            if (x) add_sent(x, d[i].channel, d[i].key);
        } else if (!first_err) {
            first_err = d[i].error;
        }
    }
    if (stopping) return qg_error_set(err, QG_EAGAIN, "notify: shutting down");
    if (n == 0) {
        snprintf(summary, cap, "every target already delivered");
        return QG_OK;
    }
    if (ok == 0)
        return qg_error_set(err, QG_EIO, "notify: all %zu target%s failed: %s", n,
                            n == 1 ? "" : "s", first_err && *first_err ? first_err : "error");
    snprintf(summary, cap, "%zu of %zu target%s delivered%s%s", ok, n, n == 1 ? "" : "s",
             ok < n ? "; first failure: " : "", ok < n && first_err ? first_err : "");
    return QG_OK;
}

/* Sends m to every target not yet delivered and records each delivery
 * (record_sends says how it went). stop (NULL: the pipeline's) abandons
 * the sends still on their way; only the pipeline's own stop is a
 * shutdown, whose failed deliveries are not recorded. */
static qg_status send_all(run_ctx *x, const qg_notify_msg *m, atomic_bool *stop, char *summary,
                          size_t cap, qg_error *err)
{
    qg_pipeline *p = x->p;
    summary[0] = '\0';
    if (!p->cfg.notify || qg_notify_targets(p->cfg.notify) == 0) {
        snprintf(summary, cap, "no notification targets configured");
        return QG_OK;
    }
    qg_status rc = load_sent(x, err);
    if (rc) return rc;
    qg_delivery d[QG_NOTIFY_TARGETS_MAX];
    size_t n = 0;
    (void)qg_notify_send(p->cfg.notify, m, want_target, x, stop ? stop : &p->stop, d, &n);
    return record_sends(p, x->j, x, d, n, summary, cap, err);
}

static void fill_msg(const qg_pjob *j, const cJSON *an, qg_notify_msg *m)
{
    memset(m, 0, sizeof *m);
    const qg_signal *s = &j->sig;
    m->signal_id = s->id;
    m->correlation_id = s->correlation_id;
    m->symbol = s->symbol;
    m->timeframe = s->timeframe;
    m->signal_type = s->signal_type;
    m->session = j->session[0] ? j->session : NULL;
    m->confidence = s->confidence;
    m->score = j->has_score ? j->score : 0;
    m->has_sl = s->has_sl;
    m->sl = s->sl;
    m->has_tp = s->has_tp;
    m->tp = s->tp;
    if (an) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(an, "risk");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(an, "explanation");
        m->risk = cJSON_IsString(r) ? r->valuestring : NULL;
        m->explanation = cJSON_IsString(e) ? e->valuestring : NULL;
        m->has_entry = num_of(cJSON_GetObjectItemCaseSensitive(an, "entry"), &m->entry);
        m->has_exit = num_of(cJSON_GetObjectItemCaseSensitive(an, "exit"), &m->exit);
    }
}

/* The escalation text to every target; stop and stop_reason as for
 * send_all and qg_notify_msg (NULL: the pipeline's own). */
static qg_status escalate(run_ctx *x, const char *reason, atomic_bool *stop,
                          const char *stop_reason, qg_error *err)
{
    qg_pjob *j = x->j;
    char text[768];
    char iso[40];
    qg_time_format_iso(j->sig.ts_ms, iso, sizeof iso);
    snprintf(text, sizeof text,
             "ESCALATION: %s %s %s at %s needs a human decision.\nReason: %s\nSignal: %s",
             j->sig.symbol, j->sig.timeframe, j->sig.signal_type, iso, reason, j->sig.id);
    qg_notify_msg m;
    fill_msg(j, NULL, &m);
    m.text = text;
    m.stop_reason = stop_reason;
    char summary[256];
    return send_all(x, &m, stop, summary, sizeof summary, err);
}

/* The alert for j with its analysis an (may be NULL); the returned object
 * (may be NULL: built only when a target sends it) is m->extra, the
 * caller's to delete. */
static cJSON *alert_msg(qg_pipeline *p, qg_pjob *j, const cJSON *an, qg_notify_msg *m)
{
    fill_msg(j, an, m);
    cJSON *extra = NULL;
    if (qg_notify_reads_extra(p->cfg.notify)) {
        extra = signal_input(j);
        if (an) cJSON_AddItemReferenceToObject(extra, "analysis", (cJSON *)an);
    }
    m->extra = extra;
    return extra;
}

static qg_pstate notified_state(const char *summary)
{
    return (qg_pstate){
        .state = QG_SIG_NOTIFIED, .stage = ST_NOTIFY, .reason = summary, .update_signal = true};
}

static qg_pstate done_state(void)
{
    return (qg_pstate){.state = QG_SIG_DONE, .stage = ST_DONE, .update_signal = true};
}

static qg_status notified(qg_pipeline *p, qg_pjob *j, const char *summary, qg_error *err)
{
    atomic_fetch_add_explicit(&p->n_notified, 1, memory_order_relaxed);
    qg_pstate st = notified_state(summary);
    return qg_pipeline_record(p, j, &st, false, err);
}

static qg_status st_notify(run_ctx *x, flow *f, qg_error *err)
{
    qg_pipeline *p = x->p;
    qg_pjob *j = x->j;
    if (!p->cfg.notify || qg_notify_targets(p->cfg.notify) == 0) return QG_OK;
    qg_notify_msg m;
    cJSON *extra = alert_msg(p, j, analysis_doc(j), &m);
    char summary[384];
    qg_status rc = send_all(x, &m, NULL, summary, sizeof summary, err);
    cJSON_Delete(extra);
    return rc ? rc : notified(p, j, summary, err);
}

/* ---- remember ---- */

static qg_status remembered_row(void *ud, const qg_row *row)
{
    *(bool *)ud = true;
    return QG_OK;
}

static qg_status st_remember(qg_pipeline *p, qg_pjob *j, flow *f, qg_error *err)
{
    if (!p->cfg.remember || !p->cfg.memory || !p->owner_id) return QG_OK;
    qg_conn *c = NULL;
    qg_status rc = QG_OK;
    if (j->resumed) {
        if ((rc = with_conn(p, &c, err))) return rc;
        bool done = false;
        qg_val v[] = {QG_VTEXT(j->sig.id)};
        rc = qg_conn_query(c,
                           "SELECT 1 FROM signal_events WHERE signal_id = ? AND stage = "
                           "'remember' LIMIT 1",
                           v, 1, remembered_row, &done, err);
        qg_store_release(p->cfg.store, c);
        if (rc || done) return rc;
    }
    if (!qg_pipeline_remember_later(p, j))
        atomic_fetch_add_explicit(&p->n_remember_dropped, 1, memory_order_relaxed);
    return QG_OK;
}

/* The text and meta a signal is remembered with (*mj: cJSON_free). Of
 * the analysis it reads only score, risk and explanation: the rememberer's
 * copy of a job carries just those (pipeline.c, remembered_fields). */
static void remember_input(qg_pjob *j, const char *outcome, bool has_pnl, double pnl, qg_buf *t,
                           char **mj)
{
    setup_text(j, t);
    const cJSON *an = analysis_doc(j);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "signal_id", j->sig.id);
    cJSON_AddStringToObject(meta, "correlation_id", j->sig.correlation_id);
    if (j->has_score) cJSON_AddNumberToObject(meta, "score", j->score);
    if (an) {
        double sc;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(an, "risk");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(an, "explanation");
        if (num_of(cJSON_GetObjectItemCaseSensitive(an, "score"), &sc)) {
            (void)qg_buf_printf(t, ". Analysis score %g", sc);
            cJSON_AddNumberToObject(meta, "analysis_score", sc);
        }
        if (cJSON_IsString(r)) {
            (void)qg_buf_printf(t, ", risk %s", r->valuestring);
            cJSON_AddStringToObject(meta, "risk", r->valuestring);
        }
        if (cJSON_IsString(e) && e->valuestring[0]) { /* at most 1500 bytes of it */
            (void)qg_buf_puts(t, ". ");
            (void)qg_buf_append(t, e->valuestring, strnlen(e->valuestring, 1500));
        }
    }
    if (outcome) {
        (void)qg_buf_printf(t, ". Outcome: %s", outcome);
        cJSON_AddStringToObject(meta, "outcome", outcome);
        if (has_pnl) {
            (void)qg_buf_printf(t, ", pnl %g", pnl);
            cJSON_AddNumberToObject(meta, "pnl", pnl);
        }
    }
    *mj = qg_json_compact(meta);
    cJSON_Delete(meta);
}

static qg_mem_add remember_add(qg_pipeline *p, const qg_pjob *j, const qg_buf *t, const char *mj)
{
    return (qg_mem_add){.user_id = p->owner_id,
                        .collection = "analyses",
                        .kind = QG_MEM_LONG,
                        .text = t->data ? t->data : "",
                        .symbol = j->sig.symbol,
                        .timeframe = j->sig.timeframe,
                        .signal_type = j->sig.signal_type,
                        .session = j->session[0] ? j->session : NULL,
                        .ts = j->sig.ts_ms,
                        .meta_json = mj};
}

static qg_pstate remember_state(const char *state, const char *outcome, const char *detail)
{
    return (qg_pstate){.state = state,
                       .stage = ST_REMEMBER,
                       .reason = outcome ? "outcome remembered" : "analysis remembered",
                       .detail = detail};
}

qg_status qg_pipeline_remember(qg_pipeline *p, qg_conn *c, qg_pjob *j, const char *state,
                               const char *outcome, bool has_pnl, double pnl, qg_error *err)
{
    qg_buf t;
    qg_buf_init(&t, 16384);
    char *mj = NULL;
    remember_input(j, outcome, has_pnl, pnl, &t, &mj);
    char mem_id[QG_ID_MAX] = "";
    qg_mem_add in = remember_add(p, j, &t, mj);
    qg_status rc = qg_memory_add(p->cfg.memory, c, &in, mem_id, err);
    cJSON_free(mj);
    qg_buf_free(&t);
    if (rc) {
        qg_error_prefix(err, "remember: ");
        return rc;
    }
    char detail[128];
    snprintf(detail, sizeof detail, "{\"memory_id\":\"%s\"}", mem_id);
    qg_pstate st = remember_state(state, outcome, detail);
    return qg_pipeline_record(p, j, &st, false, err);
}

qg_status qg_pipeline_remember_async(qg_pipeline *p, qg_pjob *j, qg_premember_fn cb, void *ud,
                                     qg_error *err)
{
    qg_buf t;
    qg_buf_init(&t, 16384);
    char *mj = NULL;
    remember_input(j, NULL, false, 0, &t, &mj);
    char mem_id[QG_ID_MAX] = "";
    qg_mem_add in = remember_add(p, j, &t, mj);
    qg_mem_pending *pa = NULL;
    qg_status rc = qg_memory_add_prepare(p->cfg.memory, &in, &pa, mem_id, err);
    cJSON_free(mj);
    qg_buf_free(&t);
    if (rc == QG_EAGAIN) { /* a collection without its dimension yet */
        qg_conn *c = NULL;
        qg_error_clear(err);
        if (!(rc = qg_store_acquire(p->cfg.store, &c, err))) {
            rc = qg_pipeline_remember(p, c, j, QG_SIG_ANALYSED, NULL, false, 0, err);
            qg_store_release(p->cfg.store, c);
        }
        if (rc) qg_warn("signals: %s: not remembered: %s", j->sig.id, err->msg);
        if (cb) cb(ud, NULL, rc == QG_OK);
        return QG_OK; /* told through cb */
    }
    if (rc) {
        qg_error_prefix(err, "remember: ");
        return rc;
    }
    char detail[128];
    snprintf(detail, sizeof detail, "{\"memory_id\":\"%s\"}", mem_id);
    qg_pstate st = remember_state(QG_SIG_ANALYSED, NULL, detail);
    return qg_pipeline_record_memory(p, j, &st, pa, cb, ud, err);
}

/* ---- plans ---- */

/* Why a plan step's send was abandoned: its cancel flag is set at the
 * step's timeout_s (the pipeline's own stop is a shutdown). */
#define PLAN_STOP_REASON "the plan step's timeout_s passed"

static qg_status op_analyse(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                            cJSON **result, qg_error *err)
{
    run_ctx *x = ud;
    if (x->j->analysis) {
        *result = cJSON_Parse(x->j->analysis);
        return QG_OK;
    }
    return analyse_now(x->p, x->j, cancel, result, err);
}

static qg_status op_memory_lookup(void *ud, const char *step, const cJSON *params,
                                  atomic_bool *cancel, cJSON **result, qg_error *err)
{
    run_ctx *x = ud;
    double n = 5;
    num_of(cJSON_GetObjectItemCaseSensitive(params, "n"), &n);
    if (n < 1) n = 1;
    if (n > 20) n = 20;
    return similar_setups(x->p, x->j, (int)n, result, err);
}

static qg_status op_notify(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                           cJSON **result, qg_error *err)
{
    run_ctx *x = ud;
    const cJSON *an = x->j->an_doc; /* parsed by st_plan before the steps run */
    qg_notify_msg m;
    fill_msg(x->j, an, &m);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(params, "text");
    if (cJSON_IsString(text)) m.text = text->valuestring;
    m.stop_reason = PLAN_STOP_REASON;
    char summary[384];
    qg_status rc = send_all(x, &m, cancel, summary, sizeof summary, err);
    if (!rc) *result = cJSON_CreateString(summary);
    return rc;
}

static qg_status op_record(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                           cJSON **result, qg_error *err)
{
    run_ctx *x = ud;
    char *d = qg_json_compact(params);
    char why[128];
    snprintf(why, sizeof why, "plan step %s", step);
    qg_pstate st = {.state = x->j->analysis ? QG_SIG_ANALYSED : QG_SIG_RECEIVED,
                    .stage = ST_PLAN,
                    .reason = why,
                    .detail = d};
    qg_status rc = qg_pipeline_record(x->p, x->j, &st, false, err);
    cJSON_free(d);
    return rc;
}

static qg_status op_escalate(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                             cJSON **result, qg_error *err)
{
    run_ctx *x = ud;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(params, "reason");
    const char *reason = cJSON_IsString(r) ? r->valuestring : "escalated by the plan";
    qg_status rc = escalate(x, reason, cancel, PLAN_STOP_REASON, err);
    if (rc) return rc;
    atomic_fetch_add_explicit(&x->p->n_escalated, 1, memory_order_relaxed);
    qg_pstate st = {.state = QG_SIG_ESCALATED, .stage = ST_PLAN, .reason = reason};
    rc = qg_pipeline_record(x->p, x->j, &st, false, err);
    if (!rc) *result = cJSON_CreateString(reason);
    return rc;
}

static const qg_plan_op plan_ops[] = {
    {"analyse", op_analyse}, {"memory_lookup", op_memory_lookup}, {"notify", op_notify},
    {"record", op_record},   {"escalate", op_escalate},
};

static qg_status st_plan(run_ctx *x, flow *f, qg_error *err)
{
    qg_pipeline *p = x->p;
    qg_pjob *j = x->j;
    if (j->plan_result) return QG_OK;
    /* Only a plan from the analysis needs it parsed. */
    if (!p->plan_json && !(p->cfg.ai_plans && j->analysis && strstr(j->analysis, "\"plan\"")))
        return QG_OK;
    const cJSON *an = analysis_doc(j);
    const cJSON *plan = NULL;
    const char *from = NULL;
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(an, "plan");
    if (p->cfg.ai_plans && cJSON_IsObject(ap)) {
        plan = ap;
        from = "analysis";
    } else if (p->plan_json) {
        plan = p->plan_json;
        from = "config";
    }
    if (!plan) return QG_OK;
    qg_plan_ops ops = {.ops = plan_ops,
                       .n = (int)(sizeof plan_ops / sizeof plan_ops[0]),
                       .ud = x,
                       .concurrency = 4,
                       .stop = &p->stop};
    qg_plan *pl = NULL;
    qg_error perr = {0};
    cJSON *report = NULL;
    qg_status rc = qg_plan_parse(plan, &ops, &pl, &perr);
    if (rc) {
        report = cJSON_CreateObject();
        cJSON_AddBoolToObject(report, "ok", false);
        cJSON_AddStringToObject(report, "error", perr.msg);
    } else {
        rc = qg_plan_run(pl, &ops, &report, &perr);
        if (!report) report = cJSON_CreateObject();
        if (rc && !cJSON_HasObjectItem(report, "error"))
            cJSON_AddStringToObject(report, "error", perr.msg);
    }
    qg_plan_free(pl);
    if (atomic_load(&p->stop)) {
        cJSON_Delete(report);
        return qg_error_set(err, QG_EAGAIN, "plan: shutting down");
    }
    cJSON_AddStringToObject(report, "source", from);
    char *s = qg_json_compact(report);
    cJSON_Delete(report);
    j->plan_result = s ? s : qg_xstrdup("{}");
    j->plan_new = true;
    char why[300];
    snprintf(why, sizeof why, "plan from %s %s%s%s", from, rc ? "failed" : "ran", rc ? ": " : "",
             rc ? perr.msg : "");
    /* A bad or failed plan is recorded, never fatal for the signal. */
    qg_pstate st = {.state = j->analysis ? QG_SIG_ANALYSED : QG_SIG_RECEIVED,
                    .stage = ST_PLAN,
                    .reason = why,
                    .update_signal = true};
    return qg_pipeline_record(p, j, &st, false, err);
}

/* ---- the run ---- */

static void observe(qg_pipeline *p, qg_pstage s, int64_t us)
{
    static const int64_t le[QG_PIPE_BUCKETS] = {500,     1000,    2500,    5000,    10000,
                                                25000,   50000,   100000,  250000,  500000,
                                                1000000, 2500000, 5000000, 10000000};
    int b = 0;
    while (b < QG_PIPE_BUCKETS && us > le[b]) b++;
    atomic_fetch_add_explicit(&p->hist[s].bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->hist[s].sum_us, (uint_fast64_t)(us < 0 ? 0 : us),
                              memory_order_relaxed);
}

static qg_status run_stage(run_ctx *x, qg_pstage s, flow *f, qg_error *err)
{
    qg_pipeline *p = x->p;
    qg_pjob *j = x->j;
    switch (s) {
    case ST_CONFLUENCE:
        return st_confluence(p, j, f, err);
    case ST_KILLZONE:
        return st_killzone(p, j, f, err);
    case ST_COOLDOWN:
        return st_cooldown(p, j, f, err);
    case ST_POLICY: {
        char reason[300];
        qg_status rc = st_policy(p, j, f, reason, sizeof reason, err);
        if (rc || !reason[0]) return rc;
        /* ESCALATE: notify with the escalation text, then state escalated */
        if ((rc = escalate(x, reason, NULL, NULL, err))) return rc;
        atomic_fetch_add_explicit(&p->n_escalated, 1, memory_order_relaxed);
        qg_pstate st = {
            .state = QG_SIG_ESCALATED, .stage = ST_POLICY, .reason = reason, .update_signal = true};
        return qg_pipeline_record(p, j, &st, false, err);
    }
    case ST_SCORE:
        compute_score(p, j);
        return QG_OK;
    case ST_THRESHOLD:
        return st_threshold(p, j, f, err);
    case ST_ANALYSE:
        return st_analyse(p, j, f, err);
    case ST_PLAN:
        return st_plan(x, f, err);
    case ST_REMEMBER:
        return st_remember(p, j, f, err);
    case ST_NOTIFY:
        return st_notify(x, f, err);
    default:
        return QG_OK;
    }
}

static void park(qg_pipeline *p, qg_pjob *j, qg_pstage s, const qg_error *e, int attempts)
{
    atomic_fetch_add_explicit(&p->n_failed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->dlq, 1, memory_order_relaxed);
    qg_warn("signals: %s parked at stage %s after %d attempts: %s", j->sig.id, qg_pstage_name(s),
            attempts, e->msg);
    qg_error err = {0};
    qg_pstate st = {.state = QG_SIG_FAILED,
                    .stage = s,
                    .reason = "parked in the dead-letter queue",
                    .error = e->msg,
                    .attempts = attempts,
                    .dlq = true,
                    .update_signal = true};
    (void)qg_pipeline_record(p, j, &st, false, &err);
}

/* After attempt number `attempt` of stage s failed with err: parks the
 * signal once the stage's retries are spent, else waits out the backoff.
 * false: stop running the signal (parked, or stopping: then it stays
 * resumable and the next start goes on). */
static bool retry_after(qg_pipeline *p, qg_pjob *j, qg_pstage s, int attempt, const qg_error *err)
{
    if (atomic_load(&p->stop)) return false;
    if (attempt > p->cfg.stage_retries) {
        park(p, j, s, err, attempt);
        return false;
    }
    atomic_fetch_add_explicit(&p->n_retries, 1, memory_order_relaxed);
    int64_t wait = p->cfg.stage_retry_base_ms << (attempt - 1 < 20 ? attempt - 1 : 20);
    qg_debug("signals: %s stage %s attempt %d failed (%s); retrying in %lld ms", j->sig.id,
             qg_pstage_name(s), attempt, err->msg, (long long)wait);
    return !qg_pipeline_sleep(p, wait);
}

static void record_done(qg_pipeline *p, qg_pjob *j)
{
    atomic_fetch_add_explicit(&p->n_done, 1, memory_order_relaxed);
    qg_error err = {0};
    qg_pstate st = done_state();
    (void)qg_pipeline_record(p, j, &st, false, &err);
}

/* ---- the notify stage, posted ---- */

/* A posted signal's last two states, one write (qg_pipeline_record_two). */
static void notified_and_done(qg_pipeline *p, qg_pjob *j, const char *summary)
{
    atomic_fetch_add_explicit(&p->n_notified, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->n_done, 1, memory_order_relaxed);
    qg_pstate nst = notified_state(summary), dst = done_state();
    qg_error err = {0};
    (void)qg_pipeline_record_two(p, j, &nst, &dst, &err);
}

/* A job whose alert is with the notifier. */
typedef struct posted {
    qg_pipeline *p;
    qg_pjob *j;
    int64_t t0; /* qg_time_mono_us at the post: the stage's latency */
} posted;

/* On a notifier lane once the alert is final: the signal's last steps
 * (notified, done) run here, or, when every target failed, it goes back
 * to a worker for the stage's retries. */
static void posted_done(void *ud, const qg_delivery *d, size_t n)
{
    posted *c = ud;
    qg_pipeline *p = c->p;
    qg_pjob *j = c->j;
    observe(p, ST_NOTIFY, qg_time_mono_us() - c->t0);
    free(c);
    char summary[384];
    qg_error err = {0};
    qg_status rc = record_sends(p, j, NULL, d, n, summary, sizeof summary, &err);
    if (rc == QG_EIO) {
        j->start = ST_NOTIFY;
        j->notify_failed = true;
        j->notify_err = err;
        qg_pipeline_repush(p, j);
    } else {
        if (!rc) notified_and_done(p, j, summary);
        qg_pipeline_job_finished(p, j);
    }
    qg_pipeline_posted_back(p); /* last: qg_pipeline_free may be waiting for it */
}

/* The notify stage's first attempt, handed to the notifier so the worker
 * goes on with the next signal while the alert is on its way (a slow or
 * rate-limited chat no longer holds the workers). true: posted, and j is
 * posted_done's now. false: the stage runs on this worker (no target,
 * the resumed deliveries could not be read, or stopping). */
static bool post_notify(run_ctx *x)
{
    qg_pipeline *p = x->p;
    qg_pjob *j = x->j;
    qg_error err = {0};
    if (!p->cfg.notify || qg_notify_targets(p->cfg.notify) == 0 || load_sent(x, &err) != QG_OK ||
        !qg_pipeline_post_room(p))
        return false;
    posted *c = qg_xmalloc(sizeof *c);
    *c = (posted){.p = p, .j = j, .t0 = qg_time_mono_us()};
    /* The parsed analysis leaves the job: a posted job waits with only
     * what its last steps need (a retry parses the text again), and j may
     * be gone when the post returns. want_target reads x during the call
     * only; m and extra are copied by then. */
    cJSON *an = (cJSON *)analysis_doc(j);
    j->an_doc = NULL;
    qg_notify_msg m;
    cJSON *extra = alert_msg(p, j, an, &m);
    (void)qg_notify_post(p->cfg.notify, &m, want_target, x, &p->stop, posted_done, c);
    cJSON_Delete(extra);
    cJSON_Delete(an);
    return true;
}

bool qg_pipeline_run_job(qg_pipeline *p, qg_pjob *j)
{
    run_ctx x = {.p = p, .j = j};
    pthread_mutex_init(&x.mu, NULL);
    bool finished = true;
    for (qg_pstage s = j->start; s < ST_DONE; s++) {
        int attempt = 1;
        if (s == ST_NOTIFY && j->notify_failed) {
            /* Back from the notifier: its attempt was the first. */
            j->notify_failed = false;
            if (!retry_after(p, j, s, attempt++, &j->notify_err)) goto out;
        } else if (s == ST_NOTIFY && post_notify(&x)) {
            finished = false;
            goto out;
        }
        for (;; attempt++) {
            flow f = GO_ON;
            qg_error err = {0};
            int64_t t0 = qg_time_mono_us();
            qg_status rc = run_stage(&x, s, &f, &err);
            observe(p, s, qg_time_mono_us() - t0);
            if (!rc) {
                if (f == STOP_HERE) goto out;
                break;
            }
            if (!retry_after(p, j, s, attempt, &err)) goto out;
        }
    }
    record_done(p, j);
out:
    pthread_mutex_destroy(&x.mu);
    return finished;
}

/* ---- policies ---- */

typedef struct pol_load {
    cJSON *arr;
} pol_load;

static qg_status policy_row(void *ud, const qg_row *row)
{
    pol_load *l = ud;
    const char *name = qg_row_text(row, 0), *rule = qg_row_text(row, 1);
    cJSON *o = rule ? cJSON_Parse(rule) : NULL;
    if (!cJSON_IsObject(o)) {
        qg_warn("signals: policy %s: stored rule is not a JSON object; skipped", name ? name : "?");
        cJSON_Delete(o);
        return QG_OK;
    }
    if (name) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "name");
        cJSON_AddStringToObject(o, "name", name);
    }
    cJSON_AddItemToArray(l->arr, o);
    return QG_OK;
}

qg_status qg_pipeline_load_policies(qg_pipeline *p, qg_conn *c, qg_error *err)
{
    pol_load l = {.arr = cJSON_CreateArray()};
    if (cJSON_IsArray(p->cfg.config_policies)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, p->cfg.config_policies)
            cJSON_AddItemToArray(l.arr, cJSON_Duplicate(e, true));
    }
    qg_status rc = qg_conn_query(c,
                                 "SELECT name, rule FROM signal_policies WHERE enabled = 1 "
                                 "ORDER BY created_at, id",
                                 NULL, 0, policy_row, &l, err);
    qg_policy_set *set = NULL;
    if (!rc) rc = qg_policy_parse(l.arr, &set, err);
    if (!rc) {
        size_t n = (size_t)cJSON_GetArraySize(l.arr);
        pthread_rwlock_wrlock(&p->policy_lock);
        qg_policy_set *old = p->policies;
        p->policies = set;
        p->npolicies = n;
        pthread_rwlock_unlock(&p->policy_lock);
        qg_policy_free(old);
    }
    cJSON_Delete(l.arr);
    return rc;
}
