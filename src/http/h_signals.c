/*
 * h_signals.c - the signal pipeline's API: the signals with their state
 * history (GET /api/signals, /api/signals/{id}), trade outcomes and the
 * statistics built on them (POST /api/signals/{id}/outcome, GET
 * /api/stats), the live event stream (GET /api/signals/stream, SSE),
 * status, pause and resume, and the dead-letter queue (/api/dlq).
 *
 * Reads go straight to the signals tables on the request's connection;
 * every change goes through the pipeline (signal/pipeline.h), which owns
 * the writes. Without the signal service (app->signals NULL) every route
 * answers 503.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"
#include "signal/pipeline.h"
#include "signal/service.h"

#include <quantgate/time.h>

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIGNAL_COLS                                                                                \
    "id, correlation_id, client_id, source, symbol, timeframe, signal_type, confidence, ts, "      \
    "received_at, state, state_at, stage, reason, session, score, outcome, pnl, outcome_at, "      \
    "attempts, error, payload, analysis, plan_result"

static qg_pipeline *pipeline_or_503(qg_req *r)
{
    qg_signals *s = r->app ? r->app->signals : NULL;
    if (!s || !s->pipeline) {
        qg_reply_error(r, 503, "unavailable", "the signal pipeline is not running");
        return NULL;
    }
    return s->pipeline;
}

static void add_json_text(cJSON *o, const char *name, const char *text)
{
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    cJSON_AddItemToObject(o, name, v ? v : cJSON_CreateNull());
}

static void add_num_or_null(cJSON *o, const char *name, const qg_row *row, int col)
{
    if (qg_row_is_null(row, col))
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddNumberToObject(o, name, qg_row_double(row, col));
}

/* The summary of a row of SIGNAL_COLS; full adds payload, analysis, plan
 * result, attempts and error. */
static cJSON *signal_json(const qg_row *row, bool full)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", qg_row_text(row, 0));
    qg_json_str_or_null(o, "correlation_id", qg_row_text(row, 1));
    qg_json_str_or_null(o, "client_id", qg_row_text(row, 2));
    qg_json_str_or_null(o, "source", qg_row_text(row, 3));
    qg_json_str_or_null(o, "symbol", qg_row_text(row, 4));
    qg_json_str_or_null(o, "timeframe", qg_row_text(row, 5));
    qg_json_str_or_null(o, "signal_type", qg_row_text(row, 6));
    cJSON_AddNumberToObject(o, "confidence", qg_row_double(row, 7));
    cJSON_AddItemToObject(o, "timestamp", qg_json_time(qg_row_int(row, 8)));
    cJSON_AddItemToObject(o, "received_at", qg_json_time(qg_row_int(row, 9)));
    qg_json_str_or_null(o, "state", qg_row_text(row, 10));
    cJSON_AddItemToObject(o, "state_at", qg_json_time(qg_row_int(row, 11)));
    qg_json_str_or_null(o, "stage", qg_row_text(row, 12));
    qg_json_str_or_null(o, "reason", qg_row_text(row, 13));
    qg_json_str_or_null(o, "session", qg_row_text(row, 14));
    add_num_or_null(o, "score", row, 15);
    qg_json_str_or_null(o, "outcome", qg_row_text(row, 16));
    add_num_or_null(o, "pnl", row, 17);
    cJSON_AddItemToObject(o, "outcome_at",
                          qg_row_is_null(row, 18) ? cJSON_CreateNull()
                                                  : qg_json_time(qg_row_int(row, 18)));
    if (full) {
        cJSON_AddNumberToObject(o, "attempts", (double)qg_row_int(row, 19));
        qg_json_str_or_null(o, "error", qg_row_text(row, 20));
        add_json_text(o, "payload", qg_row_text(row, 21));
        add_json_text(o, "analysis", qg_row_text(row, 22));
        add_json_text(o, "plan_result", qg_row_text(row, 23));
    } else {
        /* the list shows the analysis' headline only */
        cJSON *an = qg_row_text(row, 22) ? cJSON_Parse(qg_row_text(row, 22)) : NULL;
        const cJSON *risk = cJSON_GetObjectItemCaseSensitive(an, "risk");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(an, "score");
        if (cJSON_IsNumber(sc))
            cJSON_AddNumberToObject(o, "analysis_score", sc->valuedouble);
        else
            cJSON_AddNullToObject(o, "analysis_score");
        qg_json_str_or_null(o, "risk", cJSON_IsString(risk) ? risk->valuestring : NULL);
        cJSON_Delete(an);
    }
    return o;
}

static cJSON *summary_json(const qg_row *row)
{
    return signal_json(row, false);
}

/* ---- GET /api/signals ---- */

typedef struct list_ctx {
    qg_page *page;
} list_ctx;

static qg_status list_row(void *ud, const qg_row *row)
{
    list_ctx *c = ud;
    if (qg_page_take(c->page, qg_row_text(row, 0)))
        cJSON_AddItemToArray(c->page->items, summary_json(row));
    return QG_OK;
}

static bool time_param(qg_req *r, const char *name, int64_t *out)
{
    const char *v = qg_req_query(r, name);
    if (!v || !*v) return true;
    qg_error err = {0};
    if (qg_time_parse_arg(v, out, &err)) {
        qg_reply_error(r, 400, "validation_failed", "%s: %s", name, err.msg);
        return false;
    }
    return true;
}

static bool text_param(qg_req *r, const char *name, size_t max, const char **out)
{
    const char *v = qg_req_query(r, name);
    *out = NULL;
    if (!v || !*v) return true;
    if (strlen(v) > max) {
        qg_reply_error(r, 400, "validation_failed", "%s: longer than %zu characters", name, max);
        return false;
    }
    *out = v;
    return true;
}

static bool known_state(const char *s)
{
    static const char *const states[] = {QG_SIG_RECEIVED,  QG_SIG_FILTERED, QG_SIG_ANALYSED,
                                         QG_SIG_NOTIFIED,  QG_SIG_DONE,     QG_SIG_DEFERRED,
                                         QG_SIG_ESCALATED, QG_SIG_FAILED};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        if (!strcmp(s, states[i])) return true;
    return false;
}

void qg_h_signals_list(qg_req *r)
{
    if (!pipeline_or_503(r)) return;
    int limit;
    const char *state, *symbol, *type, *before;
    int64_t since = 0;
    if (!qg_req_limit(r, QG_LIST_DEFAULT, QG_LIST_MAX, &limit) ||
        !text_param(r, "state", 16, &state) || !text_param(r, "symbol", 64, &symbol) ||
        !text_param(r, "signal_type", 64, &type) || !text_param(r, "before", QG_ID_MAX, &before) ||
        !time_param(r, "since", &since))
        return;
    if (state && !known_state(state)) {
        qg_reply_error(r, 400, "validation_failed",
                       "state: '%s' is not one of received, filtered, analysed, notified, done, "
                       "deferred, escalated, failed",
                       state);
        return;
    }
    char sym[72] = "";
    if (symbol) {
        snprintf(sym, sizeof sym, "%s", symbol);
        for (char *c = sym; *c; c++)
            if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    char sql[1024];
    int n = snprintf(sql, sizeof sql, "SELECT " SIGNAL_COLS " FROM signals WHERE 1 = 1");
    qg_val v[8];
    size_t nv = 0;
    if (state)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND state = ?"), v[nv++] = QG_VTEXT(state);
    if (symbol)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND symbol = ?"), v[nv++] = QG_VTEXT(sym);
    if (type)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND signal_type = ?"),
            v[nv++] = QG_VTEXT(type);
    if (since)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND received_at >= ?"),
            v[nv++] = QG_VINT(since);
    if (before)
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND id < ?"), v[nv++] = QG_VTEXT(before);
    snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY id DESC LIMIT ?");
    v[nv++] = QG_VINT(limit + 1);
    qg_page page = {.items = cJSON_CreateArray(), .limit = limit};
    list_ctx c = {&page};
    qg_error err = {0};
    qg_status rc = qg_conn_query(db, sql, v, nv, list_row, &c, &err);
    if (rc) {
        cJSON_Delete(page.items);
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_list(r, page.items, qg_page_next(&page));
}

/* ---- GET /api/signals/{id} ---- */

static qg_status one_signal(void *ud, const qg_row *row)
{
    *(cJSON **)ud = signal_json(row, true);
    return QG_OK;
}

static qg_status event_row(void *ud, const qg_row *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", qg_row_text(row, 0));
    cJSON_AddItemToObject(o, "at", qg_json_time(qg_row_int(row, 1)));
    qg_json_str_or_null(o, "state", qg_row_text(row, 2));
    qg_json_str_or_null(o, "stage", qg_row_text(row, 3));
    cJSON *d = qg_row_text(row, 4) ? cJSON_Parse(qg_row_text(row, 4)) : NULL;
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(d, "reason");
    qg_json_str_or_null(o, "reason", cJSON_IsString(reason) ? reason->valuestring : NULL);
    cJSON_AddItemToObject(o, "detail", d ? d : cJSON_CreateNull());
    cJSON_AddItemToArray(ud, o);
    return QG_OK;
}

static qg_status delivery_row(void *ud, const qg_row *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", qg_row_text(row, 0));
    qg_json_str_or_null(o, "channel", qg_row_text(row, 1));
    /* rows from before migration 9 have no label: their key stands in */
    const char *label = qg_row_text(row, 8);
    qg_json_str_or_null(o, "target", label ? label : qg_row_text(row, 2));
    qg_json_str_or_null(o, "key", qg_row_text(row, 2));
    qg_json_str_or_null(o, "status", qg_row_text(row, 3));
    cJSON_AddNumberToObject(o, "attempts", (double)qg_row_int(row, 4));
    add_num_or_null(o, "http_status", row, 5);
    qg_json_str_or_null(o, "error", qg_row_text(row, 6));
    cJSON_AddItemToObject(o, "at", qg_json_time(qg_row_int(row, 7)));
    cJSON_AddItemToArray(ud, o);
    return QG_OK;
}

static qg_status dlq_one(void *ud, const qg_row *row)
{
    cJSON *o = cJSON_CreateObject();
    qg_json_str_or_null(o, "stage", qg_row_text(row, 0));
    qg_json_str_or_null(o, "error", qg_row_text(row, 1));
    cJSON_AddNumberToObject(o, "attempts", (double)qg_row_int(row, 2));
    cJSON_AddItemToObject(o, "parked_at", qg_json_time(qg_row_int(row, 3)));
    *(cJSON **)ud = o;
    return QG_OK;
}

void qg_h_signals_get(qg_req *r)
{
    if (!pipeline_or_503(r)) return;
    const char *id = r->param[0];
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    cJSON *o = NULL, *events = cJSON_CreateArray(), *dels = cJSON_CreateArray(), *dlq = NULL;
    qg_error err = {0};
    qg_val v[] = {QG_VTEXT(id)};
    qg_status rc = qg_conn_query(db, "SELECT " SIGNAL_COLS " FROM signals WHERE id = ?", v, 1,
                                 one_signal, &o, &err);
    if (!rc && !o) rc = qg_error_set(&err, QG_ENOTFOUND, "signal '%s' not found", id);
    /* An accepted signal's "received" event is not stored (ingest.c): it
     * comes from the row, with the signal's ULID under the event prefix so
     * it sorts first. Rows written before that keep their stored one. */
    qg_val v3[] = {QG_VTEXT(id), QG_VTEXT(id), QG_VTEXT(id)};
    if (!rc)
        rc = qg_conn_query(db,
                           "SELECT id, at, state, stage, detail FROM signal_events WHERE "
                           "signal_id = ? UNION ALL SELECT 'evt_' || substr(id, 5), received_at, "
                           "'received', 'ingest', NULL FROM signals WHERE id = ? AND NOT EXISTS "
                           "(SELECT 1 FROM signal_events WHERE signal_id = ? AND stage IN "
                           "('ingest', 'confidence')) ORDER BY id",
                           v3, 3, event_row, events, &err);
    if (!rc)
        rc = qg_conn_query(db,
                           "SELECT id, channel, target, status, attempts, http_status, error, at, "
                           "label FROM signal_deliveries WHERE signal_id = ? ORDER BY id",
                           v, 1, delivery_row, dels, &err);
    if (!rc)
        rc = qg_conn_query(db,
                           "SELECT stage, error, attempts, parked_at FROM signal_dlq WHERE "
                           "signal_id = ?",
                           v, 1, dlq_one, &dlq, &err);
    if (rc) {
        cJSON_Delete(o);
        cJSON_Delete(events);
        cJSON_Delete(dels);
        cJSON_Delete(dlq);
        if (rc == QG_ENOTFOUND)
            qg_reply_error(r, 404, "not_found", "signal '%s' not found", id);
        else
            qg_reply_status(r, rc, &err);
        return;
    }
    cJSON_AddItemToObject(o, "deliveries", dels);
    cJSON_AddItemToObject(o, "events", events);
    cJSON_AddItemToObject(o, "dlq", dlq ? dlq : cJSON_CreateNull());
    qg_reply_json(r, 200, o);
}

/* ---- POST /api/signals/{id}/outcome ---- */

void qg_h_signals_outcome(qg_req *r)
{
    qg_pipeline *p = pipeline_or_503(r);
    if (!p) return;
    const char *id = r->param[0];
    r->audit_target = id;
    cJSON *body = qg_req_json(r);
    if (!body) return;
    const cJSON *e;
    cJSON_ArrayForEach(e, body)
    {
        if (strcmp(e->string, "outcome") && strcmp(e->string, "pnl")) {
            qg_reply_error(r, 400, "validation_failed",
                           "%.64s: unknown field (expected outcome, pnl)", e->string);
            return;
        }
    }
    const char *outcome = NULL;
    if (!qg_field_str(r, body, "outcome", true, 16, &outcome)) return;
    if (strcmp(outcome, "win") && strcmp(outcome, "loss") && strcmp(outcome, "breakeven")) {
        qg_reply_error(r, 400, "validation_failed",
                       "outcome: '%s' is not one of win, loss, breakeven", outcome);
        return;
    }
    double pnl = 0;
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(body, "pnl");
    bool has_pnl = pj && !cJSON_IsNull(pj);
    if (has_pnl && !qg_field_num(r, body, "pnl", false, -1e15, 1e15, &pnl)) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_pipeline_outcome(p, db, id, outcome, has_pnl, pnl, &err);
    if (rc == QG_ENOTFOUND) {
        qg_reply_error(r, 404, "not_found", "signal '%s' not found", id);
        return;
    }
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *o = NULL;
    qg_val v[] = {QG_VTEXT(id)};
    rc = qg_conn_query(db, "SELECT " SIGNAL_COLS " FROM signals WHERE id = ?", v, 1, one_signal, &o,
                       &err);
    if (rc || !o) {
        cJSON_Delete(o);
        qg_reply_status(r, rc ? rc : QG_EINTERNAL, &err);
        return;
    }
    qg_reply_json(r, 200, o);
}

/* ---- GET /api/stats ---- */

/* Columns: key, signals, with outcome, wins, losses, breakevens, pnl sum,
 * pnl count. */
#define STATS_AGG                                                                                  \
    "COUNT(*), SUM(CASE WHEN outcome IS NOT NULL THEN 1 ELSE 0 END), "                             \
    "SUM(CASE WHEN outcome = 'win' THEN 1 ELSE 0 END), "                                           \
    "SUM(CASE WHEN outcome = 'loss' THEN 1 ELSE 0 END), "                                          \
    "SUM(CASE WHEN outcome = 'breakeven' THEN 1 ELSE 0 END), "                                     \
    "SUM(CASE WHEN outcome IS NOT NULL THEN pnl ELSE NULL END), "                                  \
    "SUM(CASE WHEN outcome IS NOT NULL AND pnl IS NOT NULL THEN 1 ELSE 0 END)"

static cJSON *stats_obj(const qg_row *row, int c0)
{
    cJSON *o = cJSON_CreateObject();
    int64_t n = qg_row_int(row, c0), with = qg_row_int(row, c0 + 1);
    int64_t w = qg_row_int(row, c0 + 2), l = qg_row_int(row, c0 + 3), b = qg_row_int(row, c0 + 4);
    int64_t npnl = qg_row_int(row, c0 + 6);
    double pnl = qg_row_is_null(row, c0 + 5) ? 0 : qg_row_double(row, c0 + 5);
    cJSON_AddNumberToObject(o, "signals", (double)n);
    cJSON_AddNumberToObject(o, "outcomes", (double)with);
    cJSON_AddNumberToObject(o, "wins", (double)w);
    cJSON_AddNumberToObject(o, "losses", (double)l);
    cJSON_AddNumberToObject(o, "breakevens", (double)b);
    if (with > 0)
        cJSON_AddNumberToObject(o, "win_rate", round((double)w / (double)with * 1e6) / 1e6);
    else
        cJSON_AddNullToObject(o, "win_rate");
    if (npnl > 0)
        cJSON_AddNumberToObject(o, "expectancy", pnl / (double)npnl);
    else
        cJSON_AddNullToObject(o, "expectancy");
    cJSON_AddNumberToObject(o, "total_pnl", pnl);
    return o;
}

typedef struct group_ctx {
    cJSON *obj;
} group_ctx;

static qg_status group_row(void *ud, const qg_row *row)
{
    group_ctx *g = ud;
    const char *k = qg_row_text(row, 0);
    cJSON *o = stats_obj(row, 1);
    cJSON_AddItemToObject(g->obj, k && *k ? k : "none", o);
    return QG_OK;
}

static qg_status overall_row(void *ud, const qg_row *row)
{
    *(cJSON **)ud = stats_obj(row, 0);
    return QG_OK;
}

static qg_status state_row(void *ud, const qg_row *row)
{
    const char *k = qg_row_text(row, 0);
    cJSON_AddNumberToObject(ud, k ? k : "unknown", (double)qg_row_int(row, 1));
    return QG_OK;
}

void qg_h_signals_stats(qg_req *r)
{
    if (!pipeline_or_503(r)) return;
    int64_t since = 0;
    if (!time_param(r, "since", &since)) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_val v[] = {QG_VINT(since)};
    qg_error err = {0};
    cJSON *overall = NULL, *states = cJSON_CreateObject();
    cJSON *by[3] = {cJSON_CreateObject(), cJSON_CreateObject(), cJSON_CreateObject()};
    static const char *const cols[3] = {"symbol", "signal_type", "session"};
    qg_status rc = qg_conn_query(db, "SELECT " STATS_AGG " FROM signals WHERE received_at >= ?", v,
                                 1, overall_row, &overall, &err);
    for (int i = 0; !rc && i < 3; i++) {
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "SELECT %s, " STATS_AGG " FROM signals WHERE received_at >= ? GROUP BY %s "
                 "ORDER BY %s",
                 cols[i], cols[i], cols[i]);
        group_ctx g = {by[i]};
        rc = qg_conn_query(db, sql, v, 1, group_row, &g, &err);
    }
    if (!rc)
        rc = qg_conn_query(db,
                           "SELECT state, COUNT(*) FROM signals WHERE received_at >= ? GROUP BY "
                           "state ORDER BY state",
                           v, 1, state_row, states, &err);
    if (rc) {
        cJSON_Delete(overall);
        cJSON_Delete(states);
        for (int i = 0; i < 3; i++) cJSON_Delete(by[i]);
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "since", since ? qg_json_time(since) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "overall", overall ? overall : cJSON_CreateObject());
    cJSON_AddItemToObject(o, "by_symbol", by[0]);
    cJSON_AddItemToObject(o, "by_signal_type", by[1]);
    cJSON_AddItemToObject(o, "by_session", by[2]);
    cJSON_AddItemToObject(o, "by_state", states);
    qg_reply_json(r, 200, o);
}

/* ---- GET /api/signals/status, pause, resume ---- */

static cJSON *status_json(qg_pipeline *p)
{
    qg_pipeline_stats s;
    qg_pipeline_get_stats(p, &s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "paused", s.paused);
    cJSON_AddNumberToObject(o, "queued", (double)s.queued);
    cJSON_AddNumberToObject(o, "in_flight", (double)s.in_flight);
    cJSON_AddNumberToObject(o, "dlq", (double)s.dlq);
    cJSON *c = cJSON_AddObjectToObject(o, "counts");
    struct {
        const char *n;
        uint64_t v;
    } k[] = {
        {"received", s.received},     {"accepted", s.accepted},         {"ignored", s.ignored},
        {"duplicates", s.duplicates}, {"rate_limited", s.rate_limited}, {"filtered", s.filtered},
        {"analysed", s.analysed},     {"notified", s.notified},         {"done", s.done},
        {"failed", s.failed},         {"deferred", s.deferred},         {"escalated", s.escalated}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        cJSON_AddNumberToObject(c, k[i].n, (double)k[i].v);
    cJSON_AddNumberToObject(o, "events_head", (double)qg_pipeline_events_head(p));
    return o;
}

void qg_h_signals_status(qg_req *r)
{
    qg_pipeline *p = pipeline_or_503(r);
    if (p) qg_reply_json(r, 200, status_json(p));
}

static void set_paused(qg_req *r, bool paused)
{
    qg_pipeline *p = pipeline_or_503(r);
    if (!p) return;
    qg_error err = {0};
    qg_status rc = qg_pipeline_set_paused(p, paused, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_json(r, 200, status_json(p));
}

void qg_h_signals_pause(qg_req *r)
{
    set_paused(r, true);
}
void qg_h_signals_resume(qg_req *r)
{
    set_paused(r, false);
}

/* ---- GET /api/signals/stream (Server-Sent Events) ---- */

#define KEEPALIVE_MS 15000

typedef struct sse {
    qg_pipeline *p;
    atomic_bool *stopping; /* the server's: a stream ends when it shuts down */
    uint64_t after;
    int64_t last_sent_ms;
} sse;

/* Appends the events after s->after as SSE frames ("id: seq", "event:
 * state", "data: json"). */
static void sse_emit(sse *s, qg_buf *out)
{
    qg_buf lines;
    qg_buf_init(&lines, 8u << 20);
    bool lost = false;
    uint64_t last = qg_pipeline_events_since(s->p, s->after, &lines, &lost);
    if (lost) (void)qg_buf_printf(out, "event: lost\ndata: {\"after\":%" PRIu64 "}\n\n", s->after);
    const char *c = lines.data, *end = lines.data ? lines.data + lines.len : NULL;
    while (c && c < end) {
        const char *nl = memchr(c, '\n', (size_t)(end - c));
        size_t len = nl ? (size_t)(nl - c) : (size_t)(end - c);
        cJSON *e = cJSON_ParseWithLength(c, len);
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "seq");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "state");
        (void)qg_buf_printf(out, "id: %.0f\nevent: %s\ndata: %.*s\n\n",
                            cJSON_IsNumber(seq) ? seq->valuedouble : 0,
                            cJSON_IsString(st) ? st->valuestring : "event", (int)len, c);
        cJSON_Delete(e);
        c += len + 1;
    }
    qg_buf_free(&lines);
    if (last != s->after || lost) s->last_sent_ms = qg_time_now_ms();
    s->after = last;
}

static bool sse_poll(void *arg, qg_buf *out)
{
    sse *s = arg;
    sse_emit(s, out);
    if (s->stopping && atomic_load(s->stopping)) {
        (void)qg_buf_puts(out, "event: shutdown\ndata: {}\n\n");
        return true;
    }
    if (qg_time_now_ms() - s->last_sent_ms >= KEEPALIVE_MS) {
        (void)qg_buf_puts(out, ": keepalive\n\n");
        s->last_sent_ms = qg_time_now_ms();
    }
    return false;
}

static void sse_free(void *arg)
{
    free(arg);
}

void qg_h_signals_stream(qg_req *r)
{
    qg_pipeline *p = pipeline_or_503(r);
    if (!p) return;
    const char *after = qg_req_query(r, "after");
    if (!after) after = qg_req_header(r, "last-event-id"); /* an EventSource reconnecting */
    sse *s = qg_xcalloc(1, sizeof *s);
    s->p = p;
    s->stopping = &r->app->stopping;
    s->after = qg_pipeline_events_head(p);
    if (after && *after) {
        char *end = NULL;
        unsigned long long a = strtoull(after, &end, 10);
        if (!end || *end || *after == '-') {
            free(s);
            qg_reply_error(
                r, 400, "validation_failed",
                "after (or Last-Event-ID): must be an event sequence number (the SSE id)");
            return;
        }
        s->after = a;
    }
    qg_buf first;
    qg_buf_init(&first, 8u << 20);
    (void)qg_buf_printf(&first, ": quantgate signal events from %" PRIu64 "\nretry: 2000\n\n",
                        s->after);
    sse_emit(s, &first);
    s->last_sent_ms = qg_time_now_ms();
    qg_reply_raw(r, 200, "text/event-stream", first.data, first.len);
    qg_buf_free(&first);
    qg_reply_header(r, "Cache-Control", "no-cache");
    r->stream_poll = sse_poll;
    r->stream_free = sse_free;
    r->stream_arg = s;
}

/* ---- the dead-letter queue ---- */

static cJSON *dlq_json(const qg_row *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", qg_row_text(row, 0));
    qg_json_str_or_null(o, "stage", qg_row_text(row, 1));
    qg_json_str_or_null(o, "error", qg_row_text(row, 2));
    cJSON_AddNumberToObject(o, "attempts", (double)qg_row_int(row, 3));
    cJSON_AddItemToObject(o, "parked_at", qg_json_time(qg_row_int(row, 4)));
    qg_json_str_or_null(o, "symbol", qg_row_text(row, 5));
    qg_json_str_or_null(o, "timeframe", qg_row_text(row, 6));
    qg_json_str_or_null(o, "signal_type", qg_row_text(row, 7));
    qg_json_str_or_null(o, "correlation_id", qg_row_text(row, 8));
    qg_json_str_or_null(o, "state", qg_row_text(row, 9));
    return o;
}

static qg_status dlq_row(void *ud, const qg_row *row)
{
    qg_page *p = ud;
    if (qg_page_take(p, qg_row_text(row, 0))) cJSON_AddItemToArray(p->items, dlq_json(row));
    return QG_OK;
}

void qg_h_dlq_list(qg_req *r)
{
    if (!pipeline_or_503(r)) return;
    int limit;
    const char *before;
    if (!qg_req_limit(r, QG_LIST_DEFAULT, QG_LIST_MAX, &limit) ||
        !text_param(r, "before", QG_ID_MAX, &before))
        return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_val v[] = {before ? QG_VTEXT(before) : QG_VNULL, before ? QG_VTEXT(before) : QG_VNULL,
                  QG_VINT(limit + 1)};
    qg_page page = {.items = cJSON_CreateArray(), .limit = limit};
    qg_error err = {0};
    qg_status rc = qg_conn_query(db,
                                 "SELECT d.signal_id, d.stage, d.error, d.attempts, d.parked_at, "
                                 "s.symbol, s.timeframe, s.signal_type, s.correlation_id, s.state "
                                 "FROM signal_dlq d JOIN signals s ON s.id = d.signal_id WHERE "
                                 "(? IS NULL OR d.signal_id < ?) ORDER BY d.signal_id DESC LIMIT ?",
                                 v, 3, dlq_row, &page, &err);
    if (rc) {
        cJSON_Delete(page.items);
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_list(r, page.items, qg_page_next(&page));
}

/* Runs a DLQ action on the parked signal named in the path: true when it
 * succeeded, else false after replying (404 when it is not parked). */
static bool dlq_act(qg_req *r, qg_status (*act)(qg_pipeline *, qg_conn *, const char *, qg_error *))
{
    qg_pipeline *p = pipeline_or_503(r);
    if (!p) return false;
    const char *id = r->param[0];
    r->audit_target = id;
    qg_conn *db = qg_req_db(r);
    if (!db) return false;
    qg_error err = {0};
    qg_status rc = act(p, db, id, &err);
    if (rc == QG_ENOTFOUND) {
        qg_reply_error(r, 404, "not_found", "signal '%s' is not in the dead-letter queue", id);
        return false;
    }
    if (rc) {
        qg_reply_status(r, rc, &err);
        return false;
    }
    return true;
}

void qg_h_dlq_replay(qg_req *r)
{
    if (!dlq_act(r, qg_pipeline_replay)) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "queued");
    cJSON_AddStringToObject(o, "id", r->param[0]);
    qg_reply_json(r, 202, o);
}

void qg_h_dlq_discard(qg_req *r)
{
    if (dlq_act(r, qg_pipeline_discard)) qg_reply_empty(r, 204);
}
