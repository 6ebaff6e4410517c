/*
 * h_prompts.c - the prompt templates admin API (admin only): list, read a
 * template with every version and its performance, read one version, save
 * a new version, preview a rendering with parameters, roll back.
 *
 * Saving never rewrites a version: PUT appends version max+1 and makes it
 * active; rollback moves the active pointer back to any existing version.
 * Validation lives in ai/prompt.c, whose messages name the field and line
 * ("body: line 3: undeclared parameter \"x\""); they reach the client as
 * 400 validation_failed. Audit rows come from the dispatcher; the template
 * id is their target.
 */
#include "ai/prompt.h"

#include <quantgate/json.h>
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static cJSON *template_json(const qg_prompt_template *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "kind", qg_prompt_kind_name(t->kind));
    cJSON_AddStringToObject(o, "description", t->description);
    cJSON_AddNumberToObject(o, "active_version", t->active_version);
    cJSON_AddNumberToObject(o, "latest_version", t->latest_version);
    cJSON_AddItemToObject(o, "created_at", qg_json_time(t->created_at));
    cJSON_AddItemToObject(o, "updated_at", qg_json_time(t->updated_at));
    return o;
}

static cJSON *stats_json(const qg_prompt_stats *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "calls", (double)s->calls);
    cJSON_AddNumberToObject(o, "failures", (double)s->failures);
    cJSON_AddNumberToObject(o, "avg_input_tokens", s->avg_input_tokens);
    cJSON_AddNumberToObject(o, "avg_output_tokens", s->avg_output_tokens);
    cJSON_AddNumberToObject(o, "avg_latency_ms", s->avg_latency_ms);
    return o;
}

/* A version; full adds its texts (the listing inside a template leaves
 * them out to stay small). */
static cJSON *version_json(const qg_prompt_version *v, int active, bool full)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "template_id", v->template_id);
    cJSON_AddNumberToObject(o, "version", v->version);
    cJSON_AddBoolToObject(o, "active", v->version == active);
    if (full) {
        cJSON_AddStringToObject(o, "system", v->system);
        cJSON_AddStringToObject(o, "body", v->body);
    }
    cJSON *params = cJSON_Parse(v->params_json);
    cJSON_AddItemToObject(o, "params", params ? params : cJSON_CreateArray());
    cJSON_AddStringToObject(o, "note", v->note);
    qg_json_str_or_null(o, "author_id", v->author_id);
    cJSON_AddItemToObject(o, "created_at", qg_json_time(v->created_at));
    cJSON_AddItemToObject(o, "stats", stats_json(&v->stats));
    return o;
}

/* The full template object: the template, its active version with texts,
 * every version (newest first) with its stats. NULL after replying. */
static cJSON *template_full(qg_req *r, qg_conn *db, const char *id)
{
    qg_error err = {0};
    qg_prompt_template t;
    qg_status rc = qg_prompt_get(db, id, &r->arena, &t, &err);
    if (!qg_reply_unless_ok(r, rc, &err, "prompt template", id)) return NULL;
    qg_prompt_version *v = NULL;
    size_t n = 0;
    rc = qg_prompt_versions(db, id, &r->arena, &v, &n, &err);
    if (!qg_reply_unless_ok(r, rc, &err, "prompt template", id)) return NULL;
    cJSON *o = template_json(&t);
    cJSON *versions = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (v[i].version == t.active_version)
            cJSON_AddItemToObject(o, "active", version_json(&v[i], t.active_version, true));
        cJSON_AddItemToArray(versions, version_json(&v[i], t.active_version, false));
    }
    cJSON_AddItemToObject(o, "versions", versions);
    return o;
}

static const char *path_id(qg_req *r)
{
    const char *id = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = id;
    return id;
}

/* Reads an optional integer version field; false after replying 400. */
static bool field_version(qg_req *r, const cJSON *body, bool required, int *out)
{
    double d = 0;
    if (!qg_field_num(r, body, "version", required, required ? 1 : 0, 1e9, &d)) return false;
    if (d != floor(d)) {
        qg_reply_error(r, 400, "validation_failed", "field 'version': expected an integer");
        return false;
    }
    if (d != 0 || required) *out = (int)d;
    return true;
}

void qg_h_prompts_list(qg_req *r)
{
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_prompt_template *t = NULL;
    size_t n = 0;
    qg_error err = {0};
    qg_status rc = qg_prompt_list(db, &r->arena, &t, &n, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(items, template_json(&t[i]));
    qg_reply_list(r, items, NULL);
}

void qg_h_prompts_get(qg_req *r)
{
    const char *id = path_id(r);
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    cJSON *o = template_full(r, db, id);
    if (o) qg_reply_json(r, 200, o);
}

void qg_h_prompts_version(qg_req *r)
{
    const char *id = path_id(r);
    const char *vs = r->nparam > 1 ? r->param[1] : "";
    char *end = NULL;
    long v = strtol(vs, &end, 10);
    if (!*vs || *end || v < 1 || v > 1000000000L) {
        qg_reply_error(r, 400, "validation_failed",
                       "path parameter 'version': expected a positive integer");
        return;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_prompt_template t;
    qg_status rc = qg_prompt_get(db, id, &r->arena, &t, &err);
    if (!qg_reply_unless_ok(r, rc, &err, "prompt template", id)) return;
    qg_prompt_version pv;
    rc = qg_prompt_version_get(db, id, (int)v, &r->arena, &pv, &err);
    if (rc) {
        qg_reply_status(r, rc, &err); /* 404 "template X has no version N" */
        return;
    }
    qg_reply_json(r, 200, version_json(&pv, t.active_version, true));
}

void qg_h_prompts_put(qg_req *r)
{
    const char *id = path_id(r);
    cJSON *body = qg_req_json(r);
    if (!body) return;
    qg_prompt_edit e = {.id = id, .author_id = r->who.user.id};
    if (!qg_field_str(r, body, "body", true, QG_PROMPT_TEXT_MAX, &e.body) ||
        !qg_field_str(r, body, "system", false, QG_PROMPT_TEXT_MAX, &e.system) ||
        !qg_field_str(r, body, "note", false, QG_PROMPT_NOTE_MAX, &e.note) ||
        !qg_field_str(r, body, "description", false, QG_PROMPT_NOTE_MAX, &e.description) ||
        !qg_field_str(r, body, "kind", false, 16, &e.kind))
        return;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "params");
    if (params && !cJSON_IsNull(params)) {
        if (!cJSON_IsArray(params)) {
            qg_reply_error(r, 400, "validation_failed",
                           "field 'params': expected an array of {name, required, default, "
                           "trusted, description}");
            return;
        }
        char *s = qg_json_compact(params);
        e.params_json = s ? qg_arena_strndup(&r->arena, s, strlen(s)) : NULL;
        cJSON_free(s);
        if (!e.params_json) {
            qg_reply_status(r, QG_ENOMEM, NULL);
            return;
        }
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    bool created = false;
    qg_status rc = qg_prompt_save(db, &e, NULL, &created, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *o = template_full(r, db, id);
    if (o) qg_reply_json(r, created ? 201 : 200, o);
}

void qg_h_prompts_preview(qg_req *r)
{
    const char *id = path_id(r);
    cJSON *body = qg_req_json(r);
    if (!body) return;
    int version = 0;
    if (!field_version(r, body, false, &version)) return;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "params");
    char *pj = NULL;
    if (params && !cJSON_IsNull(params)) {
        if (!cJSON_IsObject(params)) {
            qg_reply_error(r, 400, "validation_failed",
                           "field 'params': expected an object of parameter values");
            return;
        }
        pj = qg_json_compact(params);
    }
    qg_conn *db = qg_req_db(r);
    if (!db) {
        cJSON_free(pj);
        return;
    }
    qg_error err = {0};
    qg_prompt_rendered out = {0};
    qg_status rc = qg_prompt_render(db, id, version, pj, &r->arena, &out, &err);
    cJSON_free(pj);
    if (rc) {
        qg_reply_status(r, rc, &err); /* 400 names a missing parameter; 404 names the version */
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "template_id", out.template_id);
    cJSON_AddNumberToObject(o, "version", out.version);
    cJSON_AddStringToObject(o, "system", out.system);
    cJSON_AddStringToObject(o, "user", out.user);
    qg_reply_json(r, 200, o);
}

void qg_h_prompts_rollback(qg_req *r)
{
    const char *id = path_id(r);
    cJSON *body = qg_req_json(r);
    if (!body) return;
    int version = 0;
    if (!field_version(r, body, true, &version)) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_prompt_rollback(db, id, version, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *o = template_full(r, db, id);
    if (o) qg_reply_json(r, 200, o);
}
