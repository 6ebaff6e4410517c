/*
 * h_ai_admin.c - named models and deployments of the AI layer (admin API).
 *
 * GET /api/ai/models is open to every signed-in user and shows only names,
 * descriptions and the providers behind each model; admins also see the
 * fallback, where the model comes from and its deployment ids. Everything
 * else here is admin only. Entries from the environment and the builtin
 * model are read-only through the API (their variables are the source of
 * truth); database entries are created, changed and deleted here (rules in
 * ai/catalog.h). After every change the running layer re-reads the catalog
 * (qg_ai_reload), so the next call uses it.
 *
 * API keys: POST and PATCH accept `api_key`, which goes into the vault as
 * secret "ai.<deployment id>" and is never returned, logged or put in an
 * error; responses show `key_ref` and a masked form (`key_masked`).
 */
#include "ai/catalog.h"
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <quantgate/config.h>
#include <quantgate/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The catalog as the database says now, with sources; freed by cat_free. */
typedef struct cat {
    qg_ai_deployment *d;
    size_t nd;
    qg_ai_model *m;
    size_t nm;
    qg_ai_source *sd, *sm;
} cat;

static void cat_free(cat *k)
{
    free(k->d);
    free(k->m);
    free(k->sd);
    free(k->sm);
}

/* False after replying. */
static bool cat_load(qg_req *r, cat *k)
{
    memset(k, 0, sizeof *k);
    qg_conn *db = qg_req_db(r);
    if (!db) return false;
    qg_error err = {0};
    qg_status rc = qg_ai_catalog_load_ex(db, &k->d, &k->nd, &k->m, &k->nm, &k->sd, &k->sm, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return false;
    }
    return true;
}

/* Makes the running layer pick up a change; the change itself is stored,
 * so a failure here is logged, not answered. */
static void reload(qg_req *r)
{
    if (!r->app || !r->app->ai) return;
    qg_error err = {0};
    if (qg_ai_reload(r->app->ai, &err))
        qg_warn("AI catalog changed but the reload failed: %s (request %s)", err.msg,
                r->request_id ? r->request_id : "-");
}

static bool is_admin(const qg_req *r)
{
    return r->who.authenticated && r->who.user.role == QG_ROLE_ADMIN;
}

/* ---- models ---- */

static cJSON *model_json(const cat *k, size_t i, bool admin)
{
    const qg_ai_model *m = &k->m[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "description", m->description);
    cJSON *prov = cJSON_AddArrayToObject(o, "providers");
    cJSON *deps = admin ? cJSON_CreateArray() : NULL;
    for (size_t j = 0; j < k->nd; j++) {
        const qg_ai_deployment *d = &k->d[j];
        if (strcmp(d->model_name, m->name)) continue;
        if (deps) cJSON_AddItemToArray(deps, cJSON_CreateString(d->id));
        if (!d->enabled) continue;
        bool seen = false;
        const cJSON *p;
        cJSON_ArrayForEach(p, prov) seen = seen || !strcmp(p->valuestring, d->provider);
        if (!seen) cJSON_AddItemToArray(prov, cJSON_CreateString(d->provider));
    }
    if (admin) {
        cJSON_AddStringToObject(o, "fallback", m->fallback);
        cJSON_AddStringToObject(o, "source", qg_ai_source_name(k->sm[i]));
        cJSON_AddItemToObject(o, "deployments", deps);
    }
    return o;
}

void qg_h_ai_models_list(qg_req *r)
{
    cat k;
    if (!cat_load(r, &k)) return;
    cJSON *items = cJSON_CreateArray();
    for (size_t i = 0; i < k.nm; i++) cJSON_AddItemToArray(items, model_json(&k, i, is_admin(r)));
    cat_free(&k);
    qg_reply_list(r, items, NULL);
}

/* Replies with model name's admin form and the given status. */
static void reply_model(qg_req *r, const char *name, int status)
{
    cat k;
    if (!cat_load(r, &k)) return;
    for (size_t i = 0; i < k.nm; i++) {
        if (strcmp(k.m[i].name, name)) continue;
        cJSON *o = model_json(&k, i, true);
        cat_free(&k);
        qg_reply_json(r, status, o);
        return;
    }
    cat_free(&k);
    qg_reply_error(r, 404, "not_found", "named model '%s' not found", name);
}

/* Reads description and fallback into m (absent fields keep m's values).
 * False after replying. */
static bool model_fields(qg_req *r, const cJSON *body, qg_ai_model *m)
{
    const char *desc = NULL, *fallback = NULL;
    if (!qg_field_str(r, body, "description", false, sizeof m->description - 1, &desc) ||
        !qg_field_str(r, body, "fallback", false, sizeof m->fallback - 1, &fallback))
        return false;
    if (desc) snprintf(m->description, sizeof m->description, "%s", desc);
    if (fallback) snprintf(m->fallback, sizeof m->fallback, "%s", fallback);
    return true;
}

/* Stores m; replies 201/200 with it (or 409 when `conflict` and it exists). */
static void model_store(qg_req *r, qg_ai_model *m, bool fail_if_exists)
{
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    if (fail_if_exists && qg_ai_catalog_model_get(db, m->name, NULL, &err) == QG_OK) {
        qg_reply_error(r, 409, "conflict",
                       "named model '%s' already exists in the database; PUT "
                       "/api/ai/models/%s replaces it",
                       m->name, m->name);
        return;
    }
    bool created = false;
    qg_status rc = qg_ai_catalog_model_put(db, m, &created, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    reload(r);
    reply_model(r, m->name, created ? 201 : 200);
}

void qg_h_ai_models_create(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    const char *name = NULL;
    if (!body || !qg_field_str(r, body, "name", true, 63, &name)) return;
    qg_ai_model m = {.fallback = "builtin"};
    snprintf(m.name, sizeof m.name, "%s", name);
    r->audit_target = qg_arena_strndup(&r->arena, m.name, strlen(m.name));
    if (!model_fields(r, body, &m)) return;
    model_store(r, &m, true);
}

void qg_h_ai_models_put(qg_req *r)
{
    const char *name = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = name;
    cJSON *body = qg_req_json(r);
    if (!body) return;
    qg_ai_model m = {.fallback = "builtin"};
    if (strlen(name) >= sizeof m.name) {
        qg_reply_error(r, 400, "validation_failed", "name: longer than %zu characters",
                       sizeof m.name - 1);
        return;
    }
    snprintf(m.name, sizeof m.name, "%s", name);
    if (!model_fields(r, body, &m)) return;
    model_store(r, &m, false);
}

void qg_h_ai_models_delete(qg_req *r)
{
    const char *name = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = name;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_ai_catalog_model_delete(db, name, &err);
    if (rc == QG_ENOTFOUND) {
        qg_reply_error(r, 404, "not_found",
                       "named model '%s' is not defined in the database (models from the "
                       "environment and builtin cannot be deleted here)",
                       name);
        return;
    }
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    reload(r);
    qg_reply_empty(r, 204);
}

/* ---- deployments ---- */

/* The masked key of deployment d: the vault's masked form or the
 * environment variable's, NULL when there is none. */
typedef struct mask_find {
    const char *name;
    char masked[32];
    bool found;
} mask_find;

static qg_status find_mask(void *ud, const qg_secret_info *s)
{
    mask_find *f = ud;
    if (strcmp(s->name, f->name)) return QG_OK;
    snprintf(f->masked, sizeof f->masked, "%s", s->masked);
    f->found = true;
    return QG_OK;
}

static cJSON *dep_json(qg_req *r, const qg_ai_deployment *d, qg_ai_source src)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", d->id);
    cJSON_AddStringToObject(o, "model_name", d->model_name);
    cJSON_AddStringToObject(o, "provider", d->provider);
    cJSON_AddStringToObject(o, "model", d->model);
    cJSON_AddStringToObject(o, "base_url", d->base_url);
    cJSON_AddStringToObject(o, "key_ref", d->key_ref);
    char masked[32] = "";
    if (!strncmp(d->key_ref, "env:", 4)) {
        const char *v = getenv(d->key_ref + 4);
        if (v && *v) qg_config_mask(v, masked, sizeof masked);
    } else if (*d->key_ref && r->app && r->app->vault && r->db) {
        mask_find f = {.name = d->key_ref};
        qg_error err = {0};
        if (!qg_vault_list(r->app->vault, r->db, find_mask, &f, &err) && f.found)
            snprintf(masked, sizeof masked, "%s", f.masked);
    }
    qg_json_str_or_null(o, "key_masked", *masked ? masked : NULL);
    cJSON_AddStringToObject(o, "api_version", d->api_version);
    cJSON_AddNumberToObject(o, "price_in", d->price_in);
    cJSON_AddNumberToObject(o, "price_out", d->price_out);
    cJSON_AddNumberToObject(o, "rpm", (double)d->rpm);
    cJSON_AddNumberToObject(o, "tpm", (double)d->tpm);
    cJSON_AddNumberToObject(o, "connect_timeout_ms", (double)d->connect_timeout_ms);
    cJSON_AddNumberToObject(o, "read_timeout_ms", (double)d->read_timeout_ms);
    cJSON_AddNumberToObject(o, "priority", d->priority);
    cJSON_AddBoolToObject(o, "enabled", d->enabled);
    cJSON_AddStringToObject(o, "source", qg_ai_source_name(src));
    return o;
}

void qg_h_ai_deployments_list(qg_req *r)
{
    cat k;
    if (!cat_load(r, &k)) return;
    cJSON *items = cJSON_CreateArray();
    for (size_t i = 0; i < k.nd; i++) cJSON_AddItemToArray(items, dep_json(r, &k.d[i], k.sd[i]));
    cat_free(&k);
    qg_reply_list(r, items, NULL);
}

/* Copies a string field into a fixed buffer; false after replying. */
static bool str_into(qg_req *r, const cJSON *body, const char *name, bool required, char *dst,
                     size_t cap)
{
    const char *s = NULL;
    if (!qg_field_str(r, body, name, required, cap - 1, &s)) return false;
    if (s) snprintf(dst, cap, "%s", s);
    return true;
}

static bool int_into(qg_req *r, const cJSON *body, const char *name, double min, double max,
                     int64_t *dst)
{
    double x = (double)*dst;
    if (!qg_field_num(r, body, name, false, min, max, &x)) return false;
    *dst = (int64_t)x;
    return true;
}

/* Reads the deployment fields present in body over d, and api_key into
 * *api_key (NULL when absent). False after replying. */
static bool dep_fields(qg_req *r, const cJSON *body, bool create, qg_ai_deployment *d,
                       const char **api_key)
{
    int64_t prio = d->priority;
    bool enabled = d->enabled;
    *api_key = NULL;
    if (!str_into(r, body, "model_name", create, d->model_name, sizeof d->model_name) ||
        !str_into(r, body, "provider", create, d->provider, sizeof d->provider) ||
        !str_into(r, body, "model", create, d->model, sizeof d->model) ||
        !str_into(r, body, "base_url", false, d->base_url, sizeof d->base_url) ||
        !str_into(r, body, "api_version", false, d->api_version, sizeof d->api_version) ||
        !qg_field_num(r, body, "price_in", false, 0, 1e6, &d->price_in) ||
        !qg_field_num(r, body, "price_out", false, 0, 1e6, &d->price_out) ||
        !int_into(r, body, "rpm", 0, 1e9, &d->rpm) || !int_into(r, body, "tpm", 0, 1e12, &d->tpm) ||
        !int_into(r, body, "connect_timeout_ms", 1, 600000, &d->connect_timeout_ms) ||
        !int_into(r, body, "read_timeout_ms", 1, 3600000, &d->read_timeout_ms) ||
        !int_into(r, body, "priority", -1000000, 1000000, &prio) ||
        !qg_field_bool(r, body, "enabled", false, &enabled) ||
        !qg_field_str(r, body, "api_key", false, QG_SECRET_VALUE_MAX, api_key))
        return false;
    d->priority = (int)prio;
    d->enabled = enabled;
    const char *key_ref = NULL;
    if (!qg_field_str(r, body, "key_ref", false, sizeof d->key_ref - 1, &key_ref)) return false;
    if (*api_key && key_ref) {
        qg_reply_error(r, 400, "validation_failed",
                       "fields 'api_key' and 'key_ref': give one or the other, not both");
        return false;
    }
    if (*api_key && !**api_key) {
        qg_reply_error(r, 400, "validation_failed",
                       "field 'api_key': must not be empty (set key_ref to \"\" to remove a key)");
        return false;
    }
    if (key_ref) snprintf(d->key_ref, sizeof d->key_ref, "%s", key_ref);
    return true;
}

/* Stores d (and its key) in one transaction, reloads, replies status. */
static void dep_store(qg_req *r, qg_ai_deployment *d, bool create, const char *api_key,
                      const char *old_key_ref)
{
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    char secret[QG_SECRET_NAME_MAX + 1];
    if (create) qg_store_new_id("dep", d->id, sizeof d->id);
    snprintf(secret, sizeof secret, "ai.%s", d->id);
    r->audit_target = qg_arena_strndup(&r->arena, d->id, strlen(d->id));
    if (api_key) snprintf(d->key_ref, sizeof d->key_ref, "%s", secret);
    qg_status rc = qg_conn_begin(db, &err);
    if (rc) goto out;
    if (api_key && (rc = qg_vault_put(r->app->vault, db, secret, api_key, &err))) goto out;
    if ((rc = qg_ai_catalog_dep_put(db, d, create, &err))) goto out;
    /* a key the deployment no longer points to is deleted with the change */
    if (old_key_ref && !strcmp(old_key_ref, secret) && strcmp(d->key_ref, secret)) {
        rc = qg_vault_delete(r->app->vault, db, secret, &err);
        if (rc == QG_ENOTFOUND) rc = QG_OK;
        if (rc) goto out;
    }
    rc = qg_conn_commit(db, &err);
out:
    if (rc) {
        qg_conn_rollback(db);
        qg_reply_status(r, rc, &err);
        return;
    }
    reload(r);
    qg_reply_json(r, create ? 201 : 200, dep_json(r, d, QG_AI_SRC_DB));
}

void qg_h_ai_deployments_create(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    if (!body) return;
    qg_ai_deployment d = {.connect_timeout_ms = 5000, .read_timeout_ms = 60000, .enabled = true};
    const char *api_key = NULL;
    if (!dep_fields(r, body, true, &d, &api_key)) return;
    dep_store(r, &d, true, api_key, NULL);
}

/* True (after replying 409) when id is an environment or builtin entry. */
static bool read_only_dep(qg_req *r, const char *id)
{
    bool builtin = !strcmp(id, "builtin") || !strncmp(id, "builtin@", 8);
    if (strncmp(id, "env-", 4) && !builtin) return false;
    qg_reply_error(r, 409, "conflict",
                   "deployment '%s' comes from the %s and cannot be changed through the API", id,
                   builtin ? "server itself" : "environment (change its variables instead)");
    return true;
}

void qg_h_ai_deployments_update(qg_req *r)
{
    const char *id = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = id;
    if (read_only_dep(r, id)) return;
    cJSON *body = qg_req_json(r);
    if (!body) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_ai_deployment d;
    qg_error err = {0};
    if (!qg_reply_unless_ok(r, qg_ai_catalog_dep_get(db, id, &d, &err), &err, "deployment", id))
        return;
    char old_ref[sizeof d.key_ref];
    snprintf(old_ref, sizeof old_ref, "%s", d.key_ref);
    const char *api_key = NULL;
    if (!dep_fields(r, body, false, &d, &api_key)) return;
    dep_store(r, &d, false, api_key, old_ref);
}

void qg_h_ai_deployments_delete(qg_req *r)
{
    const char *id = r->nparam > 0 ? r->param[0] : "";
    r->audit_target = id;
    if (read_only_dep(r, id)) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_ai_catalog_dep_delete(r->app ? r->app->vault : NULL, db, id, &err);
    if (!qg_reply_unless_ok(r, rc, &err, "deployment", id)) return;
    reload(r);
    qg_reply_empty(r, 204);
}
