/*
 * h_admin.c - the vault's secrets and the audit log (admin only).
 *
 * No response here ever carries a secret's value: the listing shows the
 * vault's masked form, PUT answers with the name and the masked form, and
 * the value read from the request body is not logged or echoed in errors
 * (vault errors name the field, never the value). The audit listing is
 * read-only; nothing in the API changes or deletes audit rows.
 */
#include "auth/audit.h"
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <quantgate/config.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <stdio.h>
#include <string.h>

static cJSON *secret_json(const qg_secret_info *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "masked", s->masked);
    cJSON_AddItemToObject(o, "created_at", qg_json_time(s->created_at));
    cJSON_AddItemToObject(o, "updated_at", qg_json_time(s->updated_at));
    return o;
}

static qg_status add_secret(void *ud, const qg_secret_info *s)
{
    cJSON_AddItemToArray(ud, secret_json(s));
    return QG_OK;
}

void qg_h_secrets_list(qg_req *r)
{
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    cJSON *items = cJSON_CreateArray();
    qg_error err = {0};
    qg_status rc = qg_vault_list(r->app->vault, db, add_secret, items, &err);
    if (rc) {
        cJSON_Delete(items);
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_list(r, items, NULL);
}

/* Finds name's entry in the listing (for the PUT answer's times). */
typedef struct secret_find {
    const char *name;
    qg_secret_info info;
    bool found;
} secret_find;

static qg_status find_secret(void *ud, const qg_secret_info *s)
{
    secret_find *f = ud;
    if (strcmp(s->name, f->name) != 0) return QG_OK;
    f->info = *s;
    f->found = true;
    return QG_OK;
}

void qg_h_secrets_put(qg_req *r)
{
    const char *name = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = name;
    cJSON *body = qg_req_json(r);
    const char *value = NULL;
    if (!body || !qg_field_str(r, body, "value", true, QG_SECRET_VALUE_MAX, &value)) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_vault_put(r->app->vault, db, name, value, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    secret_find f = {.name = name};
    rc = qg_vault_list(r->app->vault, db, find_secret, &f, &err);
    if (rc || !f.found) {
        /* Stored; only the echo of its metadata failed. */
        memset(&f.info, 0, sizeof f.info);
        snprintf(f.info.name, sizeof f.info.name, "%s", name);
        qg_config_mask(value, f.info.masked, sizeof f.info.masked);
        f.info.updated_at = qg_time_now_ms();
    }
    qg_reply_json(r, 200, secret_json(&f.info));
}

void qg_h_secrets_delete(qg_req *r)
{
    const char *name = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = name;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_vault_delete(r->app->vault, db, name, &err);
    if (qg_reply_unless_ok(r, rc, &err, "secret", name)) qg_reply_empty(r, 204);
}

/* ---- audit ---- */

static qg_status add_audit(void *ud, const qg_audit_entry *e)
{
    qg_page *p = ud;
    if (!qg_page_take(p, e->id)) return QG_OK;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", e->id);
    cJSON_AddItemToObject(o, "ts", qg_json_time(e->ts));
    qg_json_str_or_null(o, "actor_id", e->actor_id);
    qg_json_str_or_null(o, "actor_email", e->actor_email);
    qg_json_str_or_null(o, "action", e->action);
    qg_json_str_or_null(o, "target", e->target);
    qg_json_str_or_null(o, "outcome", e->outcome);
    cJSON_AddNumberToObject(o, "status", e->status);
    qg_json_str_or_null(o, "address", e->address);
    qg_json_str_or_null(o, "request_id", e->request_id);
    cJSON_AddItemToArray(p->items, o);
    return QG_OK;
}

/* Reads a time query parameter; a plain date as `to` means the whole day.
 * False after replying 400 naming the parameter. */
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

/* An empty filter value means no filter. */
static const char *query_opt(qg_req *r, const char *name)
{
    const char *s = qg_req_query(r, name);
    return s && *s ? s : NULL;
}

void qg_h_audit_list(qg_req *r)
{
    qg_audit_filter f = {0};
    f.actor = query_opt(r, "actor");
    f.action = query_opt(r, "action");
    f.outcome = query_opt(r, "outcome");
    f.before = query_opt(r, "before");
    if (f.outcome && strcmp(f.outcome, "ok") != 0 && strcmp(f.outcome, "denied") != 0 &&
        strcmp(f.outcome, "error") != 0) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'outcome': expected 'ok', 'denied' or 'error'");
        return;
    }
    if (!query_time(r, "from", false, &f.from) || !query_time(r, "to", true, &f.to)) return;
    if (f.from && f.to && f.from > f.to) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'to': must not be before 'from'");
        return;
    }
    int limit;
    if (!qg_req_limit(r, QG_LIST_DEFAULT, QG_LIST_MAX, &limit)) return;
    f.limit = limit + 1; /* one extra row tells whether there is a next page */
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_page p = {.items = cJSON_CreateArray(), .limit = limit};
    qg_error err = {0};
    qg_status rc = qg_audit_query(db, &f, add_audit, &p, &err);
    if (rc) {
        cJSON_Delete(p.items);
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_list(r, p.items, qg_page_next(&p));
}
