/*
 * h_tokens.c - the caller's machine API tokens: list, create, revoke.
 *
 * Every operation is scoped to r->who.user.id, so another user's token id
 * answers 404 exactly like one that never existed. The plain token appears
 * in one response only, the creation; listings carry the prefix to tell
 * tokens apart.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <string.h>

static cJSON *token_json(const qg_api_token *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "scope", qg_scope_name(t->scope));
    cJSON_AddStringToObject(o, "prefix", t->prefix);
    cJSON_AddItemToObject(o, "created_at", qg_json_time(t->created_at));
    cJSON_AddItemToObject(o, "last_used_at", qg_json_time(t->last_used_at));
    return o;
}

static qg_status add_token(void *ud, const qg_api_token *t)
{
    cJSON_AddItemToArray(ud, token_json(t));
    return QG_OK;
}

void qg_h_tokens_list(qg_req *r)
{
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    cJSON *items = cJSON_CreateArray();
    qg_error err = {0};
    qg_status rc = qg_api_token_list(db, r->who.user.id, add_token, items, &err);
    if (rc) {
        cJSON_Delete(items);
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_list(r, items, NULL);
}

void qg_h_tokens_create(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    const char *name = NULL, *scope_s = NULL;
    if (!body || !qg_field_str(r, body, "name", true, 64, &name) ||
        !qg_field_str(r, body, "scope", true, 16, &scope_s))
        return;
    if (!*name) {
        qg_reply_error(r, 400, "validation_failed", "field 'name': must not be empty");
        return;
    }
    int scope = qg_scope_parse(scope_s);
    if (!scope) {
        qg_reply_error(r, 400, "validation_failed", "field 'scope': expected 'read' or 'write'");
        return;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_api_token t;
    char plain[QG_TOKEN_MAX];
    qg_error err = {0};
    qg_status rc = qg_api_token_create(db, r->who.user.id, name, (qg_scope)scope, &t, plain, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    r->audit_target = qg_arena_strndup(&r->arena, t.id, strlen(t.id));
    cJSON *o = token_json(&t);
    cJSON_AddStringToObject(o, "token", plain);
    qg_reply_json(r, 201, o);
}

void qg_h_tokens_revoke(qg_req *r)
{
    const char *id = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = id;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_api_token_revoke(db, r->who.user.id, id, &err);
    if (qg_reply_unless_ok(r, rc, &err, "token", id)) qg_reply_empty(r, 204);
}
