/*
 * h_usage.c - AI usage reports and budgets.
 *
 * GET /api/usage sums the recorded AI calls (ai/usage.h), optionally grouped
 * by user, model and day; admins may look at anyone (user_id) or everyone,
 * other callers only at their own calls. GET /api/budgets lists budgets
 * with what has been spent in the current period: all of them for admins,
 * for others the ones that apply to them (global, their own, their API
 * tokens'). Creating and deleting budgets is for admins.
 */
#include "ai/usage.h"
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <quantgate/time.h>

#include <stdio.h>
#include <string.h>

static bool is_admin(const qg_req *r)
{
    return r->who.authenticated && r->who.user.role == QG_ROLE_ADMIN;
}

/* Reads a time query parameter (ISO-8601 or epoch); a plain date as `to`
 * means the whole day. False after replying 400 naming the parameter. */
static bool query_time(qg_req *r, const char *name, bool end_of_day, int64_t *out)
{
    const char *s = qg_req_query(r, name);
    if (!s || !*s) return true;
    qg_error err = {0};
    if (qg_time_parse_arg(s, out, &err)) {
        qg_reply_error(r, 400, "validation_failed", "query parameter '%s': %s", name, err.msg);
        return false;
    }
    if (end_of_day && strlen(s) == 10 && s[4] == '-' && s[7] == '-') *out += QG_MS_PER_DAY - 1;
    return true;
}

/* group_by=user,model,day (any order, any subset). False after replying. */
static bool parse_group_by(qg_req *r, qg_ai_usage_query *q, cJSON *names)
{
    const char *s = qg_req_query(r, "group_by");
    if (!s || !*s) return true;
    while (*s) {
        size_t n = strcspn(s, ",");
        bool *flag = NULL;
        if (n == 4 && !strncmp(s, "user", 4))
            flag = &q->by_user;
        else if (n == 5 && !strncmp(s, "model", 5))
            flag = &q->by_model;
        else if (n == 3 && !strncmp(s, "day", 3))
            flag = &q->by_day;
        if (!flag) {
            qg_reply_error(r, 400, "validation_failed",
                           "query parameter 'group_by': '%.*s' is not one of user, model, day",
                           (int)(n > 40 ? 40 : n), s);
            return false;
        }
        if (!*flag)
            cJSON_AddItemToArray(names,
                                 cJSON_CreateStringReference(flag == &q->by_user    ? "user"
                                                             : flag == &q->by_model ? "model"
                                                                                    : "day"));
        *flag = true;
        s += n;
        if (*s == ',') s++;
    }
    return true;
}

static cJSON *usage_json(const qg_ai_usage_query *q, const qg_ai_usage_row *u, bool grouped)
{
    cJSON *o = cJSON_CreateObject();
    if (grouped && q->by_user) qg_json_str_or_null(o, "user_id", u->user_id);
    if (grouped && q->by_model) qg_json_str_or_null(o, "model", u->model);
    if (grouped && q->by_day) cJSON_AddStringToObject(o, "day", u->day);
    cJSON_AddNumberToObject(o, "calls", (double)u->calls);
    cJSON_AddNumberToObject(o, "failures", (double)u->failures);
    cJSON_AddNumberToObject(o, "input_tokens", (double)u->input_tokens);
    cJSON_AddNumberToObject(o, "output_tokens", (double)u->output_tokens);
    cJSON_AddNumberToObject(o, "cached_tokens", (double)u->cached_tokens);
    cJSON_AddNumberToObject(o, "cost_usd", u->cost_usd);
    cJSON_AddNumberToObject(o, "avg_latency_ms", u->avg_latency_ms);
    return o;
}

typedef struct usage_out {
    const qg_ai_usage_query *q;
    cJSON *rows;
    cJSON *totals;
} usage_out;

static qg_status add_row(void *ud, const qg_ai_usage_row *u)
{
    usage_out *o = ud;
    cJSON_AddItemToArray(o->rows, usage_json(o->q, u, true));
    return QG_OK;
}

static qg_status set_totals(void *ud, const qg_ai_usage_row *u)
{
    usage_out *o = ud;
    if (!o->totals) o->totals = usage_json(o->q, u, false);
    return QG_OK;
}

void qg_h_usage(qg_req *r)
{
    qg_ai_flush(r->app->ai); /* read what was just recorded */
    qg_ai_usage_query q = {.limit = 5000};
    const char *uid = qg_req_query(r, "user_id");
    if (uid && !*uid) uid = NULL;
    if (!is_admin(r)) {
        if (uid && strcmp(uid, r->who.user.id)) {
            qg_reply_error(r, 403, "forbidden", "only admins may see other users' usage");
            return;
        }
        uid = r->who.user.id;
    }
    q.user_id = uid;
    const char *model = qg_req_query(r, "model");
    q.model = model && *model ? model : NULL;
    if (!query_time(r, "from", false, &q.from) || !query_time(r, "to", true, &q.to)) return;
    if (q.from && q.to && q.from > q.to) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'to': must not be before 'from'");
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON *groups = cJSON_AddArrayToObject(out, "group_by");
    if (!parse_group_by(r, &q, groups)) {
        cJSON_Delete(out);
        return;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) {
        cJSON_Delete(out);
        return;
    }
    usage_out o = {.q = &q, .rows = cJSON_CreateArray()};
    qg_error err = {0};
    qg_status rc = QG_OK;
    if (q.by_user || q.by_model || q.by_day) rc = qg_ai_usage_query_run(db, &q, add_row, &o, &err);
    qg_ai_usage_query tq = q;
    tq.by_user = tq.by_model = tq.by_day = false;
    usage_out t = {.q = &tq};
    if (!rc) rc = qg_ai_usage_query_run(db, &tq, set_totals, &t, &err);
    if (rc) {
        cJSON_Delete(o.rows);
        cJSON_Delete(t.totals);
        cJSON_Delete(out);
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON_AddItemToObject(out, "from", qg_json_time(q.from));
    cJSON_AddItemToObject(out, "to", qg_json_time(q.to));
    qg_json_str_or_null(out, "user_id", q.user_id);
    qg_json_str_or_null(out, "model", q.model);
    cJSON_AddItemToObject(out, "rows", o.rows);
    cJSON_AddItemToObject(out, "totals", t.totals ? t.totals : cJSON_CreateObject());
    qg_reply_json(r, 200, out);
}

/* ---- budgets ---- */

static cJSON *budget_json(const qg_ai_budget *b, bool with_spend)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", b->id);
    cJSON_AddStringToObject(o, "scope", b->scope);
    cJSON_AddStringToObject(o, "subject", b->subject);
    cJSON_AddStringToObject(o, "period", b->period);
    if (b->has_cost)
        cJSON_AddNumberToObject(o, "max_cost", b->max_cost);
    else
        cJSON_AddNullToObject(o, "max_cost");
    if (b->has_tokens)
        cJSON_AddNumberToObject(o, "max_tokens", (double)b->max_tokens);
    else
        cJSON_AddNullToObject(o, "max_tokens");
    cJSON_AddNumberToObject(o, "soft_pct", b->soft_pct);
    if (with_spend) {
        cJSON_AddStringToObject(o, "period_key", b->period_key);
        cJSON_AddNumberToObject(o, "spent_cost", b->spent_cost);
        cJSON_AddNumberToObject(o, "spent_tokens", (double)b->spent_tokens);
        cJSON_AddNumberToObject(o, "calls", (double)b->calls);
        cJSON_AddBoolToObject(o, "alerted", b->alerted);
        bool over = (b->has_cost && b->spent_cost >= b->max_cost) ||
                    (b->has_tokens && b->spent_tokens >= b->max_tokens);
        cJSON_AddBoolToObject(o, "exhausted", over);
        cJSON_AddItemToObject(o, "resets_at", qg_json_time(b->resets_at));
    }
    cJSON_AddItemToObject(o, "created_at", qg_json_time(b->created_at));
    cJSON_AddItemToObject(o, "updated_at", qg_json_time(b->updated_at));
    return o;
}

static qg_status add_budget(void *ud, const qg_ai_budget *b)
{
    cJSON_AddItemToArray(ud, budget_json(b, true));
    return QG_OK;
}

void qg_h_budgets_list(qg_req *r)
{
    qg_ai_flush(r->app->ai); /* read what was just recorded */
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    cJSON *items = cJSON_CreateArray();
    qg_error err = {0};
    qg_status rc =
        qg_ai_budget_list(db, is_admin(r) ? NULL : r->who.user.id, 0, add_budget, items, &err);
    if (rc) {
        cJSON_Delete(items);
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_list(r, items, NULL);
}

void qg_h_budgets_create(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    if (!body) return;
    qg_ai_budget b = {.soft_pct = 0.8};
    const char *scope = NULL, *subject = NULL, *period = NULL;
    double max_tokens = -1;
    b.max_cost = -1;
    if (!qg_field_str(r, body, "scope", true, 7, &scope) ||
        !qg_field_str(r, body, "subject", false, QG_ID_MAX - 1, &subject) ||
        !qg_field_str(r, body, "period", true, 7, &period) ||
        !qg_field_num(r, body, "max_cost", false, 0, 1e12, &b.max_cost) ||
        !qg_field_num(r, body, "max_tokens", false, 0, 1e15, &max_tokens) ||
        !qg_field_num(r, body, "soft_pct", false, 0, 1, &b.soft_pct))
        return;
    snprintf(b.scope, sizeof b.scope, "%s", scope);
    snprintf(b.subject, sizeof b.subject, "%s", subject ? subject : "");
    snprintf(b.period, sizeof b.period, "%s", period);
    b.has_cost = b.max_cost >= 0;
    b.has_tokens = max_tokens >= 0;
    b.max_tokens = b.has_tokens ? (int64_t)max_tokens : 0;
    if (!b.has_cost) b.max_cost = 0;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    bool created = false;
    qg_status rc = qg_ai_budget_put(db, &b, &created, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    r->audit_target = qg_arena_strndup(&r->arena, b.id, strlen(b.id));
    qg_reply_json(r, created ? 201 : 200, budget_json(&b, false));
}

void qg_h_budgets_delete(qg_req *r)
{
    const char *id = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = id;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_ai_budget_delete(db, id, &err);
    if (qg_reply_unless_ok(r, rc, &err, "budget", id)) qg_reply_empty(r, 204);
}
