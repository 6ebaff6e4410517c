/*
 * h_memory.c - the memory API (docs/memory/api.md): add, search, list,
 * read and forget the caller's memories, the collections, and working
 * memory (session state) by session and key.
 *
 * Every route is the caller's own: the user id always comes from the
 * credentials, never from the request, and another user's item answers
 * 404 exactly like a missing one (the service filters by user). Creating a
 * collection needs the developer role. Bad input is a 400 naming the field
 * or query parameter and the reason; an unknown collection named in a
 * request is bad input too (400), not a missing resource.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"
#include "memory/memory.h"

#include <quantgate/json.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_N 10

static qg_memory *memory_or_503(qg_req *r)
{
    if (!r->app->memory) qg_reply_error(r, 503, "unavailable", "the memory service is not running");
    return r->app->memory;
}

static const char *token_of(const qg_req *r)
{
    return r->who.via_api_token ? r->who.token_id : NULL;
}

/* An unknown collection in a request body or query is bad input. */
static void reply_input(qg_req *r, qg_status rc, const qg_error *err)
{
    if (rc == QG_ENOTFOUND) rc = QG_EINVAL;
    qg_reply_status(r, rc, err);
}

/* ---- JSON ---- */

static cJSON *item_json(const qg_mem_item *it, bool with_score)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", it->id);
    cJSON_AddStringToObject(o, "collection", it->collection ? it->collection : "");
    cJSON_AddStringToObject(o, "kind", qg_mem_kind_name(it->kind));
    cJSON_AddStringToObject(o, "text", it->text ? it->text : "");
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    qg_json_str_or_null(md, "symbol", it->symbol);
    qg_json_str_or_null(md, "timeframe", it->timeframe);
    qg_json_str_or_null(md, "signal_type", it->signal_type);
    qg_json_str_or_null(md, "session", it->session);
    cJSON_AddItemToObject(md, "ts", qg_json_time(it->ts));
    cJSON *meta = cJSON_Parse(it->meta_json ? it->meta_json : "{}");
    cJSON_AddItemToObject(md, "meta", meta ? meta : cJSON_CreateObject());
    if (with_score) cJSON_AddNumberToObject(o, "score", round((double)it->score * 1e6) / 1e6);
    cJSON_AddItemToObject(o, "created_at", qg_json_time(it->created_at));
    cJSON_AddItemToObject(o, "expires_at", qg_json_time(it->expires_at));
    return o;
}

static cJSON *working_json(const qg_mem_working *w)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session", w->session);
    cJSON_AddStringToObject(o, "key", w->key);
    cJSON *v = cJSON_Parse(w->value_json);
    cJSON_AddItemToObject(o, "value", v ? v : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "created_at", qg_json_time(w->created_at));
    cJSON_AddItemToObject(o, "updated_at", qg_json_time(w->updated_at));
    cJSON_AddItemToObject(o, "expires_at", qg_json_time(w->expires_at));
    return o;
}

/* ---- input helpers ---- */

/* Rejects members of obj not in allowed (NULL-terminated). */
static bool only_members(qg_req *r, const cJSON *obj, const char *const *allowed)
{
    for (const cJSON *m = obj->child; m; m = m->next) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++) ok = !strcmp(m->string, allowed[i]);
        if (!ok) {
            qg_reply_error(r, 400, "validation_failed", "field '%.64s': unknown member", m->string);
            return false;
        }
    }
    return true;
}

static bool parse_kind(qg_req *r, const char *what, const char *s, bool working_ok,
                       qg_mem_kind *out)
{
    if (!s || !*s) return true;
    int k = qg_mem_kind_parse(s);
    if (k < 0 || (k == QG_MEM_WORKING && !working_ok)) {
        qg_reply_error(r, 400, "validation_failed", "%s 'kind': must be short, long, episodic%s",
                       what, working_ok ? " or working" : "");
        return false;
    }
    *out = (qg_mem_kind)k;
    return true;
}

/* A time given as ISO-8601 text or epoch seconds/milliseconds (a number or
 * digits). */
static bool parse_time_value(qg_req *r, const char *what, const char *name, const cJSON *v,
                             const char *s, int64_t *out)
{
    char buf[32];
    if (v && cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 1e16) {
            qg_reply_error(r, 400, "validation_failed", "%s '%s': not a time", what, name);
            return false;
        }
        snprintf(buf, sizeof buf, "%lld", (long long)v->valuedouble);
        s = buf;
    } else if (v && cJSON_IsString(v)) {
        s = v->valuestring;
    } else if (v && !cJSON_IsNull(v)) {
        qg_reply_error(r, 400, "validation_failed",
                       "%s '%s': expected an ISO-8601 time or epoch milliseconds", what, name);
        return false;
    }
    if (!s || !*s) return true;
    qg_error err = {0};
    if (qg_time_parse_arg(s, out, &err)) {
        qg_reply_error(r, 400, "validation_failed", "%s '%s': %s", what, name, err.msg);
        return false;
    }
    return true;
}

static bool parse_n(qg_req *r, const char *what, const char *s, const cJSON *v, size_t *out)
{
    long n;
    char *end = NULL;
    if (v) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) goto bad;
        n = (long)v->valuedouble;
    } else if (s) {
        n = strtol(s, &end, 10);
        if (!*s || *end) goto bad;
    } else {
        return true;
    }
    if (n < 1 || n > QG_MEM_SEARCH_MAX) goto bad;
    *out = (size_t)n;
    return true;
bad:
    qg_reply_error(r, 400, "validation_failed", "%s 'n': must be an integer between 1 and %d", what,
                   QG_MEM_SEARCH_MAX);
    return false;
}

/* ttl_s: whole seconds, 1 s to 10 years. */
static bool parse_ttl(qg_req *r, const cJSON *body, int64_t *out_ms)
{
    double ttl = 0;
    if (!qg_field_num(r, body, "ttl_s", false, 1, 10.0 * 365 * 86400, &ttl)) return false;
    *out_ms = (int64_t)(ttl * 1000);
    return true;
}

/* ---- search ---- */

static void reply_results(qg_req *r, qg_status rc, const qg_error *err, qg_mem_item *items,
                          size_t n)
{
    if (rc) {
        reply_input(r, rc, err);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "items");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, item_json(&items[i], true));
    qg_reply_json(r, 200, out);
}

static bool query_str(qg_req *r, const char *name, const char **out)
{
    const char *s = qg_req_query(r, name);
    *out = s && *s ? s : NULL;
    return true;
}

void qg_h_memory_search(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    qg_mem_query q = {.user_id = r->who.user.id, .token_id = token_of(r), .n = DEFAULT_N};
    const char *kind = NULL;
    query_str(r, "q", &q.text);
    query_str(r, "collection", &q.collection);
    query_str(r, "symbol", &q.symbol);
    query_str(r, "timeframe", &q.timeframe);
    query_str(r, "signal_type", &q.signal_type);
    query_str(r, "session", &q.session);
    query_str(r, "kind", &kind);
    if (!q.text) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'q': required (the text to search for; market setups: "
                       "POST /api/memory/search)");
        return;
    }
    if (!parse_n(r, "query parameter", qg_req_query(r, "n"), NULL, &q.n) ||
        !parse_kind(r, "query parameter", kind, false, &q.kind) ||
        !parse_time_value(r, "query parameter", "since", NULL, qg_req_query(r, "since"),
                          &q.since) ||
        !parse_time_value(r, "query parameter", "until", NULL, qg_req_query(r, "until"), &q.until))
        return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_mem_item *items = NULL;
    size_t n = 0;
    qg_status rc = qg_memory_search(m, db, &q, &r->arena, &items, &n, &err);
    reply_results(r, rc, &err, items, n);
}

static const char *const search_members[] = {
    "q",         "text",        "setup",   "n",     "collection", "kind", "symbol",
    "timeframe", "signal_type", "session", "since", "until",      NULL};

void qg_h_memory_search_post(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    cJSON *body = qg_req_json(r);
    if (!body || !only_members(r, body, search_members)) return;
    qg_mem_query q = {.user_id = r->who.user.id, .token_id = token_of(r), .n = DEFAULT_N};
    const char *kind = NULL;
    if (!qg_field_str(r, body, "q", false, QG_MEM_TEXT_MAX, &q.text) ||
        (!q.text && !qg_field_str(r, body, "text", false, QG_MEM_TEXT_MAX, &q.text)) ||
        !qg_field_str(r, body, "collection", false, QG_MEM_NAME_MAX, &q.collection) ||
        !qg_field_str(r, body, "kind", false, 16, &kind) ||
        !qg_field_str(r, body, "symbol", false, QG_MEM_FIELD_MAX, &q.symbol) ||
        !qg_field_str(r, body, "timeframe", false, QG_MEM_FIELD_MAX, &q.timeframe) ||
        !qg_field_str(r, body, "signal_type", false, QG_MEM_FIELD_MAX, &q.signal_type) ||
        !qg_field_str(r, body, "session", false, QG_MEM_SESSION_MAX, &q.session) ||
        !parse_n(r, "field", NULL, cJSON_GetObjectItemCaseSensitive(body, "n"), &q.n) ||
        !parse_kind(r, "field", kind, false, &q.kind) ||
        !parse_time_value(r, "field", "since", cJSON_GetObjectItemCaseSensitive(body, "since"),
                          NULL, &q.since) ||
        !parse_time_value(r, "field", "until", cJSON_GetObjectItemCaseSensitive(body, "until"),
                          NULL, &q.until))
        return;
    const cJSON *setup = cJSON_GetObjectItemCaseSensitive(body, "setup");
    if (setup && !cJSON_IsNull(setup)) {
        if (!cJSON_IsObject(setup)) {
            qg_reply_error(r, 400, "validation_failed", "field 'setup': expected an object");
            return;
        }
        q.setup = setup;
    }
    if (!q.text && !q.setup) {
        qg_reply_error(r, 400, "validation_failed",
                       "field 'q': required (the text to search for), or 'setup'");
        return;
    }
    if (q.text && q.setup) {
        qg_reply_error(r, 400, "validation_failed", "field 'setup': give either 'q' or 'setup'");
        return;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_mem_item *items = NULL;
    size_t n = 0;
    qg_status rc = qg_memory_search(m, db, &q, &r->arena, &items, &n, &err);
    reply_results(r, rc, &err, items, n);
}

/* ---- add ---- */

static void working_put(qg_req *r, qg_memory *m, const char *session, const char *key,
                        const cJSON *value, int64_t ttl_ms)
{
    if (!value) {
        qg_reply_error(r, 400, "validation_failed", "field 'value': is required (any JSON)");
        return;
    }
    char *json = qg_json_compact(value);
    if (!json) {
        qg_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    qg_conn *db = qg_req_db(r);
    qg_error err = {0};
    bool created = false;
    qg_status rc = QG_OK;
    if (db)
        rc = qg_memory_working_put(m, db, r->who.user.id, session, key, json, ttl_ms, 0, &created,
                                   &err);
    free(json);
    if (!db) return;
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_mem_working w;
    rc = qg_memory_working_get(m, db, r->who.user.id, session, key, 0, &r->arena, &w, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    r->audit_target = qg_arena_sprintf(&r->arena, "%s/%s", session, key);
    qg_reply_json(r, created ? 201 : 200, working_json(&w));
}

static const char *const add_members[] = {"collection",  "text",    "kind",  "symbol", "timeframe",
                                          "signal_type", "session", "ts",    "meta",   "ttl_s",
                                          "setup",       "key",     "value", NULL};

void qg_h_memory_add(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    cJSON *body = qg_req_json(r);
    if (!body || !only_members(r, body, add_members)) return;
    qg_mem_add in = {.user_id = r->who.user.id, .token_id = token_of(r)};
    const char *kind = NULL, *key = NULL;
    if (!qg_field_str(r, body, "collection", false, QG_MEM_NAME_MAX, &in.collection) ||
        !qg_field_str(r, body, "text", false, QG_MEM_TEXT_MAX, &in.text) ||
        !qg_field_str(r, body, "kind", false, 16, &kind) ||
        !qg_field_str(r, body, "symbol", false, QG_MEM_FIELD_MAX, &in.symbol) ||
        !qg_field_str(r, body, "timeframe", false, QG_MEM_FIELD_MAX, &in.timeframe) ||
        !qg_field_str(r, body, "signal_type", false, QG_MEM_FIELD_MAX, &in.signal_type) ||
        !qg_field_str(r, body, "session", false, QG_MEM_SESSION_MAX, &in.session) ||
        !qg_field_str(r, body, "key", false, QG_MEM_KEY_MAX, &key) ||
        !parse_kind(r, "field", kind, true, &in.kind) || !parse_ttl(r, body, &in.ttl_ms) ||
        !parse_time_value(r, "field", "ts", cJSON_GetObjectItemCaseSensitive(body, "ts"), NULL,
                          &in.ts))
        return;
    if (in.kind == QG_MEM_WORKING) {
        if (!in.session || !key) {
            qg_reply_error(r, 400, "validation_failed", "field '%s': required for working memory",
                           in.session ? "key" : "session");
            return;
        }
        working_put(r, m, in.session, key, cJSON_GetObjectItemCaseSensitive(body, "value"),
                    in.ttl_ms);
        return;
    }
    if (key || cJSON_GetObjectItemCaseSensitive(body, "value")) {
        qg_reply_error(r, 400, "validation_failed",
                       "field '%s': only for working memory (kind \"working\")",
                       key ? "key" : "value");
        return;
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "meta");
    char *meta_json = NULL;
    if (meta && !cJSON_IsNull(meta)) {
        if (!cJSON_IsObject(meta)) {
            qg_reply_error(r, 400, "validation_failed", "field 'meta': expected an object");
            return;
        }
        meta_json = qg_json_compact(meta);
        in.meta_json = meta_json;
    }
    const cJSON *setup = cJSON_GetObjectItemCaseSensitive(body, "setup");
    if (setup && !cJSON_IsNull(setup)) {
        if (!cJSON_IsObject(setup)) {
            free(meta_json);
            qg_reply_error(r, 400, "validation_failed", "field 'setup': expected an object");
            return;
        }
        in.setup = setup;
        if (!in.collection) in.collection = "setups";
        if (!in.text) in.text = "";
    }
    qg_conn *db = qg_req_db(r);
    if (!db) {
        free(meta_json);
        return;
    }
    qg_error err = {0};
    char id[QG_ID_MAX];
    qg_status rc = qg_memory_add(m, db, &in, id, &err);
    free(meta_json);
    if (rc) {
        reply_input(r, rc, &err);
        return;
    }
    r->audit_target = qg_arena_strndup(&r->arena, id, strlen(id));
    qg_mem_item it;
    rc = qg_memory_get(m, db, r->who.user.id, id, 0, &r->arena, &it, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_json(r, 201, item_json(&it, false));
}

/* ---- list, get, forget ---- */

static void list_working(qg_req *r, qg_memory *m, const char *session)
{
    if (!session) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'session': required with kind=working");
        return;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_mem_working *w = NULL;
    size_t n = 0;
    qg_status rc =
        qg_memory_working_list(m, db, r->who.user.id, session, 0, &r->arena, &w, &n, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(items, working_json(&w[i]));
    qg_reply_list(r, items, NULL);
}

void qg_h_memory_list(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    qg_mem_list q = {.user_id = r->who.user.id};
    const char *kind = NULL;
    query_str(r, "collection", &q.collection);
    query_str(r, "symbol", &q.symbol);
    query_str(r, "session", &q.session);
    query_str(r, "kind", &kind);
    const char *cursor = qg_req_query(r, "cursor");
    if (!cursor || !*cursor) cursor = qg_req_query(r, "before");
    q.before = cursor && *cursor ? cursor : NULL;
    if (!parse_kind(r, "query parameter", kind, true, &q.kind)) return;
    if (q.kind == QG_MEM_WORKING) {
        list_working(r, m, q.session);
        return;
    }
    if (!qg_req_limit(r, QG_LIST_DEFAULT, QG_MEM_LIST_MAX, &q.limit)) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_mem_item *items = NULL;
    size_t n = 0;
    char next[QG_ID_MAX];
    qg_status rc = qg_memory_list(m, db, &q, &r->arena, &items, &n, next, &err);
    if (rc) {
        reply_input(r, rc, &err);
        return;
    }
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, item_json(&items[i], false));
    qg_reply_list(r, arr, next[0] ? next : NULL);
}

void qg_h_memory_get(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_mem_item it;
    qg_status rc = qg_memory_get(m, db, r->who.user.id, r->param[0], 0, &r->arena, &it, &err);
    if (!qg_reply_unless_ok(r, rc, &err, "memory", r->param[0])) return;
    qg_reply_json(r, 200, item_json(&it, false));
}

void qg_h_memory_delete(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_memory_forget(m, db, r->who.user.id, r->param[0], &err);
    if (!qg_reply_unless_ok(r, rc, &err, "memory", r->param[0])) return;
    qg_reply_empty(r, 204);
}

void qg_h_memory_forget_where(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    qg_mem_forget_where f = {.user_id = r->who.user.id};
    const char *kind = NULL;
    query_str(r, "collection", &f.collection);
    query_str(r, "symbol", &f.symbol);
    query_str(r, "session", &f.session);
    query_str(r, "kind", &kind);
    if (!parse_kind(r, "query parameter", kind, true, &f.kind)) return;
    if (!f.collection && !f.kind && !f.symbol && !f.session) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameters: name at least one of collection, kind, symbol, session "
                       "(DELETE /api/memory/{id} forgets one item)");
        return;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    int64_t removed = 0;
    qg_status rc = qg_memory_forget_where(m, db, &f, &removed, &err);
    if (rc) {
        reply_input(r, rc, &err);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "removed", (double)removed);
    qg_reply_json(r, 200, out);
}

/* ---- collections ---- */

static cJSON *collection_json(const qg_mem_collection *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "embedder", c->embedder);
    if (c->dim)
        cJSON_AddNumberToObject(o, "dim", (double)c->dim);
    else
        cJSON_AddNullToObject(o, "dim");
    cJSON_AddStringToObject(o, "metric", qg_vmetric_name(c->metric));
    cJSON_AddStringToObject(o, "index", c->index_kind == QG_VINDEX_HNSW ? "hnsw" : "flat");
    cJSON_AddStringToObject(o, "description", c->description);
    cJSON_AddNumberToObject(o, "count", (double)c->user_count);
    cJSON_AddNumberToObject(o, "total", (double)c->count);
    cJSON_AddItemToObject(o, "created_at", qg_json_time(c->created_at));
    return o;
}

void qg_h_memory_collections(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_mem_collection *cs = NULL;
    size_t n = 0;
    qg_status rc = qg_memory_collections(m, db, r->who.user.id, 0, &cs, &n, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(items, collection_json(&cs[i]));
    free(cs);
    qg_reply_list(r, items, NULL);
}

static const char *const coll_members[] = {"name", "embedder", "metric", "description", NULL};

void qg_h_memory_collections_create(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    cJSON *body = qg_req_json(r);
    if (!body || !only_members(r, body, coll_members)) return;
    const char *name = NULL, *embedder = NULL, *metric = NULL, *description = NULL;
    if (!qg_field_str(r, body, "name", true, QG_MEM_NAME_MAX, &name) ||
        !qg_field_str(r, body, "embedder", false, QG_MEM_EMBEDDER_MAX, &embedder) ||
        !qg_field_str(r, body, "metric", false, 16, &metric) ||
        !qg_field_str(r, body, "description", false, 255, &description))
        return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_memory_collection_create(m, db, name, embedder, metric, description,
                                               r->who.user.id, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    r->audit_target = name;
    qg_mem_collection *cs = NULL;
    size_t n = 0;
    if ((rc = qg_memory_collections(m, db, r->who.user.id, 0, &cs, &n, &err))) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *out = NULL;
    for (size_t i = 0; i < n && !out; i++)
        if (!strcmp(cs[i].name, name)) out = collection_json(&cs[i]);
    free(cs);
    qg_reply_json(r, 201, out ? out : cJSON_CreateObject());
}

/* ---- working memory ---- */

void qg_h_memory_working_put(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    cJSON *body = qg_req_json(r);
    static const char *const members[] = {"value", "ttl_s", NULL};
    if (!body || !only_members(r, body, members)) return;
    int64_t ttl = 0;
    if (!parse_ttl(r, body, &ttl)) return;
    working_put(r, m, r->param[0], r->param[1], cJSON_GetObjectItemCaseSensitive(body, "value"),
                ttl);
}

void qg_h_memory_working_get(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_mem_working w;
    qg_status rc = qg_memory_working_get(m, db, r->who.user.id, r->param[0], r->param[1], 0,
                                         &r->arena, &w, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_json(r, 200, working_json(&w));
}

void qg_h_memory_working_list(qg_req *r)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    list_working(r, m, r->param[0]);
}

static void working_delete(qg_req *r, const char *key)
{
    qg_memory *m = memory_or_503(r);
    if (!m) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_error err = {0};
    qg_status rc = qg_memory_working_delete(m, db, r->who.user.id, r->param[0], key, NULL, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_empty(r, 204);
}

void qg_h_memory_working_delete(qg_req *r)
{
    working_delete(r, r->param[1]);
}

void qg_h_memory_working_clear(qg_req *r)
{
    working_delete(r, NULL);
}
