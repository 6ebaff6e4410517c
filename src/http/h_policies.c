/*
 * h_policies.c - the signal policies API: list (developer) the policies
 * the pipeline applies, and create, change, enable/disable and delete
 * (admin) the ones stored in the signal_policies table.
 *
 * A policy is the object of signal/rules.h ({"name":..,"min_confidence":..,
 * ...}), validated by qg_policy_validate, whose messages name the field;
 * the table keeps it as JSON text in `rule` (without "enabled", which is
 * its own column) and its name in the UNIQUE `name` column. The policies
 * from QG_SIGNAL_POLICY are listed first - the pipeline evaluates them
 * before the database's, which follow in creation order - marked
 * "source":"config" and read-only: their names cannot be reused here.
 *
 * Every change ends with qg_pipeline_reload_policies so the next signal
 * sees it; the reply's "applied" says whether that worked (the row is
 * committed either way and the next reload picks it up).
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"
#include "signal/pipeline.h"
#include "signal/rules.h"

#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <stdio.h>
#include <string.h>

#define QG_POLICY_NAME_MAX 63 /* qg_policy_verdict.policy holds 64 bytes */
#define QG_POLICIES_MAX    1000
#define POLICY_COLS        "id, name, rule, enabled, created_by, created_at, updated_at"

static cJSON *row_json(const qg_row *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", qg_row_text(row, 0));
    cJSON_AddStringToObject(o, "name", qg_row_text(row, 1));
    cJSON_AddStringToObject(o, "source", "database");
    cJSON_AddBoolToObject(o, "enabled", qg_row_int(row, 3) != 0);
    cJSON_AddBoolToObject(o, "read_only", false);
    cJSON *rule = cJSON_Parse(qg_row_text(row, 2) ? qg_row_text(row, 2) : "");
    cJSON_AddItemToObject(o, "rule", rule ? rule : cJSON_CreateNull());
    qg_json_str_or_null(o, "created_by", qg_row_text(row, 4));
    cJSON_AddItemToObject(o, "created_at", qg_json_time(qg_row_int(row, 5)));
    cJSON_AddItemToObject(o, "updated_at", qg_json_time(qg_row_int(row, 6)));
    return o;
}

static qg_status collect_row(void *ud, const qg_row *row)
{
    cJSON *items = ud;
    if (cJSON_GetArraySize(items) >= QG_POLICIES_MAX) return QG_ERANGE;
    cJSON_AddItemToArray(items, row_json(row));
    return QG_OK;
}

static qg_status one_row(void *ud, const qg_row *row)
{
    *(cJSON **)ud = row_json(row);
    return QG_OK;
}

static const cJSON *config_policies(qg_req *r)
{
    qg_signals *s = r->app ? r->app->signals : NULL;
    return s && cJSON_IsArray(s->policies) ? s->policies : NULL;
}

/* The configuration policy named name, or NULL. */
static const cJSON *config_policy(qg_req *r, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, config_policies(r))
    {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
        if (n && strcmp(n, name) == 0) return it;
    }
    return NULL;
}

static cJSON *config_json(const cJSON *policy)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNullToObject(o, "id");
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(policy, "name"));
    qg_json_str_or_null(o, "name", n);
    cJSON_AddStringToObject(o, "source", "config");
    cJSON_AddBoolToObject(o, "enabled", true);
    cJSON_AddBoolToObject(o, "read_only", true);
    cJSON_AddItemToObject(o, "rule", cJSON_Duplicate(policy, true));
    return o;
}

/* Tells the pipeline; records the outcome in o as "applied". */
static void reload(qg_req *r, cJSON *o)
{
    qg_signals *s = r->app ? r->app->signals : NULL;
    bool ok = true;
    if (s && s->pipeline) {
        qg_error err = {0};
        if (qg_pipeline_reload_policies(s->pipeline, &err)) {
            ok = false;
            qg_warn("policies: reload after %s %s failed: %s", qg_method_name(r->method), r->path,
                    err.msg);
            cJSON_AddStringToObject(o, "apply_error", err.msg);
        }
    }
    cJSON_AddBoolToObject(o, "applied", ok);
}

static const char *path_id(qg_req *r)
{
    const char *id = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = id;
    return id;
}

/* Reads the policy object from the body: everything but "enabled",
 * validated, with a usable name (from the body, else fallback_name). On
 * success *rule is the caller's and *name points into it. False after
 * replying 400. */
static bool read_rule(qg_req *r, const cJSON *body, const char *fallback_name, cJSON **rule,
                      const char **name)
{
    *rule = cJSON_Duplicate(body, true);
    if (!*rule) {
        qg_reply_status(r, QG_ENOMEM, NULL);
        return false;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(*rule, "enabled");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(*rule, "name");
    if (!n && fallback_name) {
        cJSON_AddStringToObject(*rule, "name", fallback_name);
        n = cJSON_GetObjectItemCaseSensitive(*rule, "name");
    }
    const char *why = NULL;
    if (!n)
        why = "required";
    else if (!cJSON_IsString(n))
        why = "expected a string";
    else if (!n->valuestring[0] || strlen(n->valuestring) > QG_POLICY_NAME_MAX)
        why = "expected 1 to 63 characters";
    if (why) {
        qg_reply_error(r, 400, "validation_failed", "field 'name': %s", why);
        goto fail;
    }
    qg_error err = {0};
    if (qg_policy_validate(*rule, &err)) {
        qg_reply_error(r, 400, "validation_failed", "%s", err.msg);
        goto fail;
    }
    *name = n->valuestring;
    return true;
fail:
    cJSON_Delete(*rule);
    *rule = NULL;
    return false;
}

/* True (after replying 409) when name belongs to a configuration policy. */
static bool config_conflict(qg_req *r, const char *name)
{
    if (!config_policy(r, name)) return false;
    qg_reply_error(r, 409, "conflict",
                   "policy name '%s' is taken by a configuration policy (QG_SIGNAL_POLICY)", name);
    return true;
}

/* Replies with the stored row (status), plus "applied" after a reload. */
static void reply_row(qg_req *r, qg_conn *db, const char *id, int status, bool changed)
{
    cJSON *o = NULL;
    qg_error err = {0};
    qg_val p[] = {QG_VTEXT(id)};
    qg_status rc = qg_conn_query(db, "SELECT " POLICY_COLS " FROM signal_policies WHERE id = ?", p,
                                 1, one_row, &o, &err);
    if (!rc && !o) rc = qg_error_set(&err, QG_ENOTFOUND, "policy '%s' not found", id);
    if (!qg_reply_unless_ok(r, rc, &err, "policy", id)) {
        cJSON_Delete(o);
        return;
    }
    if (changed) reload(r, o);
    qg_reply_json(r, status, o);
}

void qg_h_policies_list(qg_req *r)
{
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    cJSON *items = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, config_policies(r)) cJSON_AddItemToArray(items, config_json(it));
    qg_error err = {0};
    qg_status rc =
        qg_conn_query(db, "SELECT " POLICY_COLS " FROM signal_policies ORDER BY created_at, id",
                      NULL, 0, collect_row, items, &err);
    if (rc && rc != QG_ERANGE) {
        cJSON_Delete(items);
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_list(r, items, NULL);
}

void qg_h_policies_get(qg_req *r)
{
    const char *id = path_id(r);
    qg_conn *db = qg_req_db(r);
    if (db) reply_row(r, db, id, 200, false);
}

void qg_h_policies_create(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    if (!body) return;
    bool enabled = true;
    if (!qg_field_bool(r, body, "enabled", false, &enabled)) return;
    cJSON *rule = NULL;
    const char *name = NULL;
    if (!read_rule(r, body, NULL, &rule, &name)) return;
    char *text = NULL;
    qg_conn *db = NULL;
    if (config_conflict(r, name) || !(db = qg_req_db(r))) goto out;
    text = qg_json_compact(rule);
    char id[QG_ID_MAX];
    qg_store_new_id("pol", id, sizeof id);
    int64_t now = qg_time_now_ms();
    qg_val p[] = {QG_VTEXT(id),
                  QG_VTEXT(name),
                  QG_VTEXT(text),
                  QG_VINT(enabled ? 1 : 0),
                  QG_VTEXT(r->who.user.id),
                  QG_VINT(now),
                  QG_VINT(now)};
    qg_error err = {0};
    qg_status rc = qg_conn_exec(
        db, "INSERT INTO signal_policies (" POLICY_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?)", p, 7,
        NULL, &err);
    if (rc == QG_EEXIST) {
        qg_reply_error(r, 409, "conflict", "policy name '%s' is taken", name);
        goto out;
    }
    if (rc) {
        qg_reply_status(r, rc, &err);
        goto out;
    }
    r->audit_target = qg_arena_strndup(&r->arena, id, strlen(id));
    reply_row(r, db, id, 201, true);
out:
    cJSON_free(text);
    cJSON_Delete(rule);
}

/* The stored name of policy id into out; false after replying 404/503. */
static bool stored_name(qg_req *r, qg_conn *db, const char *id, char *out, size_t cap)
{
    cJSON *o = NULL;
    qg_error err = {0};
    qg_val p[] = {QG_VTEXT(id)};
    qg_status rc = qg_conn_query(db, "SELECT " POLICY_COLS " FROM signal_policies WHERE id = ?", p,
                                 1, one_row, &o, &err);
    if (!rc && !o) rc = qg_error_set(&err, QG_ENOTFOUND, "policy '%s' not found", id);
    if (!qg_reply_unless_ok(r, rc, &err, "policy", id)) return false;
    snprintf(out, cap, "%s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "name")));
    cJSON_Delete(o);
    return true;
}

/* PUT: {"enabled":b} alone switches the policy on or off; any other field
 * makes the body the new policy (its name defaults to the stored one). */
void qg_h_policies_put(qg_req *r)
{
    const char *id = path_id(r);
    cJSON *body = qg_req_json(r);
    if (!body) return;
    bool enabled = true;
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(body, "enabled");
    if (!qg_field_bool(r, body, "enabled", false, &enabled)) return;
    bool only_enabled = en && cJSON_GetArraySize(body) == 1;
    if (cJSON_GetArraySize(body) == 0) {
        qg_reply_error(r, 400, "validation_failed",
                       "body: expected the policy's fields and/or \"enabled\"");
        return;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    char old_name[QG_POLICY_NAME_MAX + 2];
    if (!stored_name(r, db, id, old_name, sizeof old_name)) return;
    int64_t now = qg_time_now_ms();
    qg_error err = {0};
    qg_status rc = QG_OK;
    int64_t changes = 0;
    if (only_enabled) {
        qg_val p[] = {QG_VINT(enabled ? 1 : 0), QG_VINT(now), QG_VTEXT(id)};
        rc = qg_conn_exec(db, "UPDATE signal_policies SET enabled = ?, updated_at = ? WHERE id = ?",
                          p, 3, &changes, &err);
    } else {
        cJSON *rule = NULL;
        const char *name = NULL;
        if (!read_rule(r, body, old_name, &rule, &name)) return;
        if (config_conflict(r, name)) {
            cJSON_Delete(rule);
            return;
        }
        char *text = qg_json_compact(rule);
        if (en) {
            qg_val p[] = {QG_VTEXT(name), QG_VTEXT(text), QG_VINT(enabled ? 1 : 0), QG_VINT(now),
                          QG_VTEXT(id)};
            rc = qg_conn_exec(db,
                              "UPDATE signal_policies SET name = ?, rule = ?, enabled = ?, "
                              "updated_at = ? WHERE id = ?",
                              p, 5, &changes, &err);
        } else {
            qg_val p[] = {QG_VTEXT(name), QG_VTEXT(text), QG_VINT(now), QG_VTEXT(id)};
            rc = qg_conn_exec(
                db, "UPDATE signal_policies SET name = ?, rule = ?, updated_at = ? WHERE id = ?", p,
                4, &changes, &err);
        }
        if (rc == QG_EEXIST) qg_reply_error(r, 409, "conflict", "policy name '%s' is taken", name);
        cJSON_free(text);
        cJSON_Delete(rule);
        if (rc == QG_EEXIST) return;
    }
    if (!rc && changes == 0) rc = qg_error_set(&err, QG_ENOTFOUND, "policy '%s' not found", id);
    if (!qg_reply_unless_ok(r, rc, &err, "policy", id)) return;
    reply_row(r, db, id, 200, true);
}

void qg_h_policies_delete(qg_req *r)
{
    const char *id = path_id(r);
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    int64_t changes = 0;
    qg_val p[] = {QG_VTEXT(id)};
    qg_status rc =
        qg_conn_exec(db, "DELETE FROM signal_policies WHERE id = ?", p, 1, &changes, &err);
    if (!rc && changes == 0) rc = qg_error_set(&err, QG_ENOTFOUND, "policy '%s' not found", id);
    if (!qg_reply_unless_ok(r, rc, &err, "policy", id)) return;
    cJSON *o = cJSON_CreateObject();
    reload(r, o);
    cJSON_Delete(o);
    qg_reply_empty(r, 204);
}
