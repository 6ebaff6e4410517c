/*
 * h_users.c - user administration (admin only; the dispatcher checks the
 * role).
 *
 * An admin cannot disable, un-approve, demote or delete their own account:
 * that is how a server loses its last admin, and a mistake there can only be
 * repaired from the database. Such requests answer 409 conflict with the
 * reason. Every handler sets r->audit_target to the user id it acted on.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <string.h>

static qg_status add_user(void *ud, const qg_user *u)
{
    qg_page *p = ud;
    if (qg_page_take(p, u->id)) cJSON_AddItemToArray(p->items, qg_user_json(u));
    return QG_OK;
}

void qg_h_users_list(qg_req *r)
{
    const char *status = qg_req_query(r, "status");
    bool pending = false;
    if (status && strcmp(status, "pending") == 0) {
        pending = true;
    } else if (status && *status && strcmp(status, "all") != 0) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'status': expected 'pending' or 'all'");
        return;
    }
    int limit;
    if (!qg_req_limit(r, QG_LIST_DEFAULT, QG_LIST_MAX, &limit)) return;
    const char *before = qg_req_query(r, "before");
    if (before && !*before) before = NULL;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    /* One extra row tells whether there is a next page. */
    qg_page p = {.items = cJSON_CreateArray(), .limit = limit};
    qg_error err = {0};
    qg_status rc = qg_user_list(db, before, limit + 1, pending, add_user, &p, &err);
    if (rc) {
        cJSON_Delete(p.items);
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_list(r, p.items, qg_page_next(&p));
}

/* Parses the role field (required or not); false after replying 400. */
static bool field_role(qg_req *r, const cJSON *body, bool required, bool *present, qg_role *out)
{
    const char *s = NULL;
    if (!qg_field_str(r, body, "role", required, 16, &s)) return false;
    *present = s != NULL;
    if (!s) return true;
    *out = qg_role_parse(s);
    if (*out == QG_ROLE_NONE) {
        qg_reply_error(r, 400, "validation_failed",
                       "field 'role': expected 'client', 'developer' or 'admin'");
        return false;
    }
    return true;
}

void qg_h_users_create(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    const char *email = NULL, *password = NULL;
    bool has_role = false;
    qg_role role = QG_ROLE_NONE;
    if (!body || !qg_field_credentials(r, body, &email, &password) ||
        !field_role(r, body, true, &has_role, &role))
        return;
    qg_reply_user_create(r, email, password, role, true);
}

/* The path's user id, recorded as the audit target. */
static const char *target_id(qg_req *r)
{
    const char *id = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = id;
    return id;
}

/* Replies with the user as stored now (200), or 404. */
static void reply_user(qg_req *r, qg_conn *db, const char *id, int status)
{
    qg_user u;
    qg_error err = {0};
    qg_status rc = qg_user_get(db, id, &u, &err);
    if (qg_reply_unless_ok(r, rc, &err, "user", id)) qg_reply_json(r, status, qg_user_json(&u));
}

void qg_h_users_get(qg_req *r)
{
    const char *id = target_id(r);
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    reply_user(r, db, id, 200);
}

void qg_h_users_update(qg_req *r)
{
    const char *id = target_id(r);
    cJSON *body = qg_req_json(r);
    bool has_role = false, approved = false, disabled = false;
    bool has_approved = false, has_disabled = false;
    qg_role role = QG_ROLE_NONE;
    if (!body || !field_role(r, body, false, &has_role, &role)) return;
    /* Absent fields leave the sentinel untouched; presence is what counts. */
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(body, "approved");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(body, "disabled");
    if (!qg_field_bool(r, body, "approved", false, &approved) ||
        !qg_field_bool(r, body, "disabled", false, &disabled))
        return;
    has_approved = a && !cJSON_IsNull(a);
    has_disabled = d && !cJSON_IsNull(d);
    if (!has_role && !has_approved && !has_disabled) {
        qg_reply_error(r, 400, "validation_failed",
                       "request body: expected at least one of 'role', 'approved', 'disabled'");
        return;
    }
    if (strcmp(id, r->who.user.id) == 0) {
        if (has_disabled && disabled) {
            qg_reply_error(r, 409, "conflict", "you cannot disable your own account");
            return;
        }
        if (has_approved && !approved) {
            qg_reply_error(r, 409, "conflict", "you cannot revoke your own approval");
            return;
        }
        if (has_role && role < r->who.user.role) {
            qg_reply_error(r, 409, "conflict",
                           "you cannot demote yourself; ask another admin to change your role");
            return;
        }
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_user_update(db, id, has_role ? &role : NULL, has_approved ? &approved : NULL,
                                  has_disabled ? &disabled : NULL, &err);
    if (qg_reply_unless_ok(r, rc, &err, "user", id)) reply_user(r, db, id, 200);
}

void qg_h_users_approve(qg_req *r)
{
    const char *id = target_id(r);
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    bool yes = true;
    qg_error err = {0};
    qg_status rc = qg_user_update(db, id, NULL, &yes, NULL, &err);
    if (qg_reply_unless_ok(r, rc, &err, "user", id)) reply_user(r, db, id, 200);
}

void qg_h_users_delete(qg_req *r)
{
    const char *id = target_id(r);
    if (strcmp(id, r->who.user.id) == 0) {
        qg_reply_error(r, 409, "conflict", "you cannot delete your own account");
        return;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_user_delete(db, id, &err);
    if (qg_reply_unless_ok(r, rc, &err, "user", id)) qg_reply_empty(r, 204);
}
