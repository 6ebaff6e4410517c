/*
 * h_meta.c - probes, metrics, and the API's own description.
 *
 * /health answers on the event loop without touching anything shared;
 * /ready asks the database and says no while the server drains. /metrics
 * renders the counters (relaxed atomics, no database call: the store's
 * stats are counters too).
 *
 * /api/openapi.json and /docs are derived from the route table (qg_routes)
 * and its JSON Schema texts, so they cannot drift from what the router
 * does. Both are built once, on first use (pthread_once, so the first two
 * requests racing on two loops build it once), and kept for the life of
 * the process; a request then costs one copy. The docs page is plain HTML
 * with inline CSS and no script, so it works offline and under a strict
 * Content-Security-Policy.
 *
 * Two extensions in a route's response schema steer the builder and are
 * removed from the published schema: "x-status" (the success status, when
 * not 200; a schema holding only x-status means no body) and
 * "x-content-type" (when the body is not JSON).
 */
#include "ai/usage.h"
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <quantgate/json.h>
#include <quantgate/log.h>

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef QG_VERSION
#define QG_VERSION "dev"
#endif

/* ---- probes and metrics ---- */

void qg_h_health(qg_req *r)
{
    static const char body[] = "{\"status\":\"ok\"}";
    qg_reply_raw(r, 200, "application/json", body, sizeof body - 1);
}

void qg_h_ready(qg_req *r)
{
    if (atomic_load(&r->app->stopping)) {
        qg_reply_error(r, 503, "unavailable", "server is shutting down");
        return;
    }
    qg_error err = {0};
    if (qg_store_ping(r->app->store, &err)) {
        qg_warn("readiness: database does not answer: %s", err.msg);
        qg_reply_error(r, 503, "unavailable", "database unavailable");
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    qg_reply_raw(r, 200, "application/json", body, sizeof body - 1);
}

void qg_h_metrics(qg_req *r)
{
    qg_store_stats stats = {0};
    const char *backend = "none";
    if (r->app->store) {
        qg_store_get_stats(r->app->store, &stats);
        backend = qg_store_backend(r->app->store);
    }
    qg_reply_empty(r, 200);
    qg_status rc =
        qg_metrics_render(r->app->metrics, r->app->store ? &stats : NULL, backend, &r->out);
    if (!rc) rc = qg_ai_metrics_render(&r->out);
    if (!rc && r->app->ai) rc = qg_ai_health_metrics(r->app->ai, &r->out);
    if (!rc && r->app->memory) rc = qg_memory_render_metrics(r->app->memory, &r->out);
    if (!rc && r->app->signals) rc = qg_notify_render_metrics(r->app->signals->notify, &r->out);
    if (!rc && r->app->signals) rc = qg_pipeline_render_metrics(r->app->signals->pipeline, &r->out);
    if (rc) {
        qg_error err = {0};
        qg_error_set(&err, rc, "rendering metrics failed");
        qg_reply_status(r, QG_EINTERNAL, &err);
        return;
    }
    r->out_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- route schema texts ---- */

/* A route's response: success status, content type and the schema with the
 * builder's extensions removed (NULL when there is no body). */
typedef struct resp_info {
    int status;
    const char *type;
    cJSON *schema; /* owned by the caller */
} resp_info;

static cJSON *parse_schema(const qg_route *rt, const char *which, const char *text)
{
    if (!text) return NULL;
    cJSON *s = cJSON_Parse(text);
    if (!s || !cJSON_IsObject(s)) {
        qg_err("openapi: the %s schema of %s %s is not a JSON object; left out", which,
               qg_method_name(rt->method), rt->pattern);
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}

/* ri->type may point into ri->schema: valid until resp_free. */
static void route_response(const qg_route *rt, resp_info *ri)
{
    ri->status = rt->method == QG_DELETE ? 204 : 200;
    ri->type = "application/json";
    ri->schema = parse_schema(rt, "response", rt->response_schema);
    if (ri->schema) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(ri->schema, "x-status");
        if (cJSON_IsNumber(st)) ri->status = st->valueint;
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(ri->schema, "x-content-type");
        if (cJSON_IsString(ct)) ri->type = ct->valuestring;
    }
    if (ri->status == 204) ri->type = NULL;
}

static void resp_free(resp_info *ri)
{
    cJSON_Delete(ri->schema);
    ri->schema = NULL;
}

/* The schema to publish: a copy without the x-status/x-content-type keys,
 * or NULL when nothing else is left. */
static cJSON *resp_public_schema(const resp_info *ri)
{
    if (!ri->schema) return NULL;
    cJSON *copy = cJSON_Duplicate(ri->schema, true);
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "x-status");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "x-content-type");
    if (!copy->child) {
        cJSON_Delete(copy);
        return NULL;
    }
    return copy;
}

/* ---- OpenAPI ---- */

static const char *const component_schemas[][2] = {
    {"Error",
     "{\"type\":\"object\",\"required\":[\"error\"],\"properties\":{\"error\":{\"type\":\"object\","
     "\"required\":[\"code\",\"message\"],\"properties\":{\"code\":{\"enum\":[\"invalid_json\","
     "\"validation_failed\",\"unauthorized\",\"password_change_required\",\"forbidden\","
     "\"not_found\",\"method_not_allowed\",\"conflict\",\"payload_too_large\","
     "\"unsupported_media_type\",\"rate_limited\",\"internal\",\"unavailable\"]},\"message\":{"
     "\"type\":\"string\",\"description\":\"names the field and the reason\"}}}}}"},
    {"User",
     "{\"type\":\"object\",\"required\":[\"id\",\"email\",\"role\",\"approved\",\"disabled\","
     "\"password_change_required\",\"created_at\"],\"properties\":{\"id\":{\"type\":\"string\","
     "\"examples\":[\"usr_01JD0000000000000000000000\"]},\"email\":{\"type\":\"string\","
     "\"format\":\"email\"},\"role\":{\"enum\":[\"client\",\"developer\",\"admin\"]},"
     "\"approved\":{\"type\":\"boolean\"},\"disabled\":{\"type\":\"boolean\"},"
     "\"password_change_required\":{\"type\":\"boolean\"},\"created_at\":{\"type\":\"string\","
     "\"format\":\"date-time\"}}}"},
    {"TokenPair",
     "{\"type\":\"object\",\"required\":[\"access_token\",\"refresh_token\",\"token_type\","
     "\"expires_in\"],\"properties\":{\"access_token\":{\"type\":\"string\",\"description\":"
     "\"HS256 JWT\"},\"refresh_token\":{\"type\":\"string\",\"description\":\"rt_...; single "
     "use\"},\"token_type\":{\"const\":\"bearer\"},\"expires_in\":{\"type\":\"integer\","
     "\"description\":\"seconds\"},\"password_change_required\":{\"type\":\"boolean\","
     "\"description\":\"present and true while the one-time password must be changed\"}}}"},
    {"ApiToken",
     "{\"type\":\"object\",\"required\":[\"id\",\"name\",\"scope\",\"prefix\",\"created_at\","
     "\"last_used_at\"],\"properties\":{\"id\":{\"type\":\"string\"},\"name\":{\"type\":"
     "\"string\"},\"scope\":{\"enum\":[\"read\",\"write\"]},\"prefix\":{\"type\":\"string\"},"
     "\"created_at\":{\"type\":\"string\",\"format\":\"date-time\"},\"last_used_at\":{\"type\":"
     "[\"string\",\"null\"],\"format\":\"date-time\"}}}"},
    {"Secret",
     "{\"type\":\"object\",\"required\":[\"name\",\"masked\",\"updated_at\"],\"properties\":{"
     "\"name\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9_.-]{1,64}$\"},\"masked\":{\"type\":"
     "\"string\",\"examples\":[\"sk-...a1b2\"]},\"created_at\":{\"type\":\"string\",\"format\":"
     "\"date-time\"},\"updated_at\":{\"type\":\"string\",\"format\":\"date-time\"}}}"},
    {"AuditEntry",
     "{\"type\":\"object\",\"required\":[\"id\",\"ts\",\"action\",\"outcome\",\"status\"],"
     "\"properties\":{\"id\":{\"type\":\"string\"},\"ts\":{\"type\":\"string\",\"format\":"
     "\"date-time\"},\"actor_id\":{\"type\":[\"string\",\"null\"]},\"actor_email\":{\"type\":["
     "\"string\",\"null\"]},\"action\":{\"type\":\"string\",\"examples\":[\"POST /api/datasets\","
     "\"auth.login\"]},\"target\":{\"type\":[\"string\",\"null\"]},\"outcome\":{\"enum\":[\"ok\","
     "\"denied\",\"error\"]},\"status\":{\"type\":\"integer\"},\"address\":{\"type\":[\"string\","
     "\"null\"]},\"request_id\":{\"type\":[\"string\",\"null\"]}}}"},
};

static const char *const tag_descriptions[][2] = {
    {"meta", "Probes, metrics and this description"},
    {"auth", "Sign-up, login, tokens of a session, the caller's account"},
    {"tokens", "Machine API tokens (developer)"},
    {"users", "User administration (admin)"},
    {"vault", "Encrypted provider keys and tokens (admin)"},
    {"audit", "The audit log (admin)"},
    {"datasets", "Uploaded market data"},
    {"backtests", "Strategies and backtest jobs"},
    {"openai", "OpenAI-compatible endpoint (/v1): chat completions and models"},
    {"ai", "Named models, deployments, usage, budgets and tool-calling runs"},
    {"prompts", "Versioned prompt templates (admin)"},
};

static const char *tag_description(const char *tag)
{
    for (size_t i = 0; i < sizeof tag_descriptions / sizeof tag_descriptions[0]; i++)
        if (strcmp(tag_descriptions[i][0], tag) == 0) return tag_descriptions[i][1];
    return NULL;
}

static const char *route_tag(const qg_route *rt)
{
    return rt->tag ? rt->tag : "other";
}

static bool is_mutating(int method)
{
    return method == QG_POST || method == QG_PUT || method == QG_PATCH || method == QG_DELETE;
}

static bool route_has_path_params(const qg_route *rt)
{
    return strchr(rt->pattern, '{') != NULL;
}

/* "get_api_users_id_approve": unique because method+pattern are. */
static void operation_id(const qg_route *rt, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "%s", qg_method_name(rt->method));
    for (size_t i = 0; i < o && i < cap; i++) out[i] = (char)tolower((unsigned char)out[i]);
    bool sep = false;
    for (const char *p = rt->pattern; *p && o + 2 < cap; p++) {
        if (isalnum((unsigned char)*p)) {
            if (sep || o == strlen(qg_method_name(rt->method))) out[o++] = '_';
            out[o++] = (char)tolower((unsigned char)*p);
            sep = false;
        } else {
            sep = true;
        }
    }
    out[o < cap ? o : cap - 1] = '\0';
}

static cJSON *error_response(const char *description)
{
    cJSON *resp = cJSON_CreateObject();
    cJSON_AddStringToObject(resp, "description", description);
    cJSON *content = cJSON_AddObjectToObject(resp, "content");
    cJSON *json = cJSON_AddObjectToObject(content, "application/json");
    cJSON *schema = cJSON_AddObjectToObject(json, "schema");
    cJSON_AddStringToObject(schema, "$ref", "#/components/schemas/Error");
    return resp;
}

static void add_path_params(cJSON *params, const char *pattern)
{
    for (const char *p = strchr(pattern, '{'); p; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        if (!end) break;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "in", "path");
        cJSON_AddBoolToObject(o, "required", true);
        cJSON_AddItemToObject(o, "schema", cJSON_Parse("{\"type\":\"string\"}"));
        cJSON_AddItemToArray(params, o);
    }
}

/* One "name:type:description" item of query_params. */
typedef struct query_param {
    char name[64];
    char type[16];
    char description[256];
} query_param;

/* Calls fn for each query parameter of the route. */
static void each_query_param(const qg_route *rt, void (*fn)(void *ud, const query_param *q),
                             void *ud)
{
    const char *s = rt->query_params;
    while (s && *s) {
        const char *bar = strchr(s, '|');
        size_t len = bar ? (size_t)(bar - s) : strlen(s);
        const char *c1 = memchr(s, ':', len);
        const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s)) : NULL;
        query_param q;
        memset(&q, 0, sizeof q);
        if (c1) {
            snprintf(q.name, sizeof q.name, "%.*s", (int)(c1 - s), s);
            if (c2) {
                snprintf(q.type, sizeof q.type, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
                snprintf(q.description, sizeof q.description, "%.*s",
                         (int)(len - (size_t)(c2 + 1 - s)), c2 + 1);
            } else {
                snprintf(q.type, sizeof q.type, "%.*s", (int)(len - (size_t)(c1 + 1 - s)), c1 + 1);
            }
        } else {
            snprintf(q.name, sizeof q.name, "%.*s", (int)len, s);
        }
        if (!q.type[0]) snprintf(q.type, sizeof q.type, "string");
        if (q.name[0]) fn(ud, &q);
        s = bar ? bar + 1 : NULL;
    }
}

static void add_query_param(void *ud, const query_param *q)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", q->name);
    cJSON_AddStringToObject(o, "in", "query");
    cJSON_AddBoolToObject(o, "required", false);
    if (q->description[0]) cJSON_AddStringToObject(o, "description", q->description);
    cJSON *schema = cJSON_AddObjectToObject(o, "schema");
    cJSON_AddStringToObject(schema, "type", q->type);
    cJSON_AddItemToArray(ud, o);
}

static cJSON *request_body(const qg_route *rt)
{
    cJSON *schema = parse_schema(rt, "request", rt->request_schema);
    if (!schema && !(rt->flags & QG_ROUTE_RAW_BODY)) return NULL;
    cJSON *rb = cJSON_CreateObject();
    cJSON_AddBoolToObject(rb, "required", true);
    cJSON *content = cJSON_AddObjectToObject(rb, "content");
    if (rt->flags & QG_ROUTE_RAW_BODY) {
        cJSON *csv = cJSON_AddObjectToObject(content, "text/csv");
        cJSON_AddItemToObject(csv, "schema", cJSON_Parse("{\"type\":\"string\"}"));
    }
    cJSON *json = cJSON_AddObjectToObject(content, "application/json");
    cJSON_AddItemToObject(json, "schema", schema ? schema : cJSON_CreateObject());
    return rb;
}

static cJSON *responses(const qg_route *rt)
{
    cJSON *rs = cJSON_CreateObject();
    resp_info ri;
    route_response(rt, &ri);
    char code[8];
    snprintf(code, sizeof code, "%d", ri.status);
    cJSON *ok = cJSON_AddObjectToObject(rs, code);
    cJSON_AddStringToObject(ok, "description", rt->summary ? rt->summary : "success");
    cJSON *pub = resp_public_schema(&ri);
    if (ri.type && (pub || ri.status != 204)) {
        cJSON *content = cJSON_AddObjectToObject(ok, "content");
        cJSON *ct = cJSON_AddObjectToObject(content, ri.type);
        if (pub) cJSON_AddItemToObject(ct, "schema", pub);
        pub = NULL;
        if (rt->flags & QG_ROUTE_STREAM) {
            cJSON *sse = cJSON_AddObjectToObject(content, "text/event-stream");
            cJSON_AddItemToObject(sse, "schema", cJSON_Parse("{\"type\":\"string\"}"));
        }
    }
    cJSON_Delete(pub);
    resp_free(&ri);

    bool body = rt->request_schema || (rt->flags & QG_ROUTE_RAW_BODY);
    bool auth_route = strncmp(rt->pattern, "/api/auth/", 10) == 0;
    if (body || rt->query_params)
        cJSON_AddItemToObject(rs, "400", error_response("invalid_json or validation_failed"));
    if (rt->role != QG_ROLE_NONE || auth_route)
        cJSON_AddItemToObject(rs, "401",
                              error_response("unauthorized: missing, bad or expired credentials"));
    if (rt->role != QG_ROLE_NONE || auth_route)
        cJSON_AddItemToObject(rs, "403",
                              error_response("forbidden (role, scope, approval) or "
                                             "password_change_required"));
    if (route_has_path_params(rt)) cJSON_AddItemToObject(rs, "404", error_response("not_found"));
    if (is_mutating(rt->method))
        cJSON_AddItemToObject(rs, "409", error_response("conflict: a unique value is taken"));
    if (body) cJSON_AddItemToObject(rs, "413", error_response("payload_too_large"));
    if (rt->flags & QG_ROUTE_RAW_BODY)
        cJSON_AddItemToObject(rs, "415", error_response("unsupported_media_type"));
    if (rt->rl != QG_RL_NONE)
        cJSON_AddItemToObject(rs, "429",
                              error_response("rate_limited; Retry-After gives the seconds"));
    cJSON_AddItemToObject(rs, "500", error_response("internal; the message has the request id"));
    if (!(rt->flags & QG_ROUTE_INLINE))
        cJSON_AddItemToObject(rs, "503", error_response("unavailable: database or shutdown"));
    return rs;
}

static cJSON *operation(const qg_route *rt)
{
    cJSON *op = cJSON_CreateObject();
    char opid[256];
    operation_id(rt, opid, sizeof opid);
    cJSON_AddStringToObject(op, "operationId", opid);
    if (rt->summary) cJSON_AddStringToObject(op, "summary", rt->summary);
    cJSON *tags = cJSON_AddArrayToObject(op, "tags");
    cJSON_AddItemToArray(tags, cJSON_CreateString(route_tag(rt)));
    cJSON *params = cJSON_CreateArray();
    add_path_params(params, rt->pattern);
    each_query_param(rt, add_query_param, params);
    if (cJSON_GetArraySize(params) > 0)
        cJSON_AddItemToObject(op, "parameters", params);
    else
        cJSON_Delete(params);
    cJSON *rb = request_body(rt);
    if (rb) cJSON_AddItemToObject(op, "requestBody", rb);
    cJSON_AddItemToObject(op, "responses", responses(rt));
    if (rt->role != QG_ROLE_NONE) {
        cJSON *sec = cJSON_AddArrayToObject(op, "security");
        cJSON *req = cJSON_CreateObject();
        cJSON_AddArrayToObject(req, "bearerAuth");
        cJSON_AddItemToArray(sec, req);
    }
    cJSON_AddStringToObject(op, "x-required-role",
                            rt->role == QG_ROLE_NONE ? "anyone" : qg_role_name(rt->role));
    return op;
}

static const char *method_key(int method)
{
    switch (method) {
    case QG_GET:
        return "get";
    case QG_POST:
        return "post";
    case QG_PUT:
        return "put";
    case QG_PATCH:
        return "patch";
    case QG_DELETE:
        return "delete";
    case QG_HEAD:
        return "head";
    case QG_OPTIONS:
        return "options";
    }
    return "get";
}

static cJSON *openapi_document(void)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "openapi", "3.1.0");
    cJSON *info = cJSON_AddObjectToObject(doc, "info");
    cJSON_AddStringToObject(info, "title", "quantgate");
    cJSON_AddStringToObject(info, "version", QG_VERSION);
    cJSON_AddStringToObject(info, "description",
                            "A self-hosted trading server: datasets, backtests, accounts. "
                            "Every error is {\"error\":{\"code\",\"message\"}}; every response "
                            "carries X-Request-Id.");

    cJSON *tags = cJSON_AddArrayToObject(doc, "tags");
    cJSON *paths = cJSON_AddObjectToObject(doc, "paths");
    for (const qg_route *rt = qg_routes; rt->pattern; rt++) {
        const char *tag = route_tag(rt);
        bool seen = false;
        cJSON *t;
        cJSON_ArrayForEach(t, tags)
        {
            if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, tag) == 0) seen = true;
        }
        if (!seen) {
            cJSON *to = cJSON_CreateObject();
            cJSON_AddStringToObject(to, "name", tag);
            const char *d = tag_description(tag);
            if (d) cJSON_AddStringToObject(to, "description", d);
            cJSON_AddItemToArray(tags, to);
        }
        cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, rt->pattern);
        if (!item) item = cJSON_AddObjectToObject(paths, rt->pattern);
        cJSON_AddItemToObject(item, method_key(rt->method), operation(rt));
    }

    cJSON *comp = cJSON_AddObjectToObject(doc, "components");
    cJSON *schemas = cJSON_AddObjectToObject(comp, "schemas");
    for (size_t i = 0; i < sizeof component_schemas / sizeof component_schemas[0]; i++)
        cJSON_AddItemToObject(schemas, component_schemas[i][0],
                              cJSON_Parse(component_schemas[i][1]));
    cJSON *sec = cJSON_AddObjectToObject(comp, "securitySchemes");
    cJSON *bearer = cJSON_AddObjectToObject(sec, "bearerAuth");
    cJSON_AddStringToObject(bearer, "type", "http");
    cJSON_AddStringToObject(bearer, "scheme", "bearer");
    cJSON_AddStringToObject(bearer, "description",
                            "An access token from POST /api/auth/login (JWT) or a machine "
                            "token from POST /api/tokens (qg_...)");
    return doc;
}

static char *g_openapi;
static size_t g_openapi_len;
static pthread_once_t g_openapi_once = PTHREAD_ONCE_INIT;

static void openapi_build(void)
{
    cJSON *doc = openapi_document();
    g_openapi = qg_json_compact(doc);
    cJSON_Delete(doc);
    g_openapi_len = g_openapi ? strlen(g_openapi) : 0;
}

void qg_h_openapi(qg_req *r)
{
    pthread_once(&g_openapi_once, openapi_build);
    if (!g_openapi) {
        qg_error err = {0};
        qg_error_set(&err, QG_ENOMEM, "building the OpenAPI document failed");
        qg_reply_status(r, QG_ENOMEM, &err);
        return;
    }
    qg_reply_raw(r, 200, "application/json", g_openapi, g_openapi_len);
}

/* ---- the documentation page ---- */

static const char docs_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>quantgate API</title><style>"
    "body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem 2rem;"
    "color:#1d2330}"
    "h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ccd;padding-bottom:.2rem;margin-top:2rem}"
    "nav a{margin-right:1rem}"
    ".route{border:1px solid #dde;border-radius:6px;padding:.5rem 1rem;margin:.8rem 0}"
    ".route h3{margin:.2rem 0;font-size:1rem}"
    ".m{display:inline-block;min-width:4.2rem;text-align:center;border-radius:4px;color:#fff;"
    "font-size:.8rem;padding:.1rem .3rem;margin-right:.5rem}"
    ".GET{background:#2f7d32}.POST{background:#1f5fae}.PUT{background:#8a5a00}"
    ".PATCH{background:#6b3fa0}.DELETE{background:#b3261e}"
    ".role{color:#555;font-size:.85rem}"
    "pre{background:#f5f6f8;padding:.5rem;overflow-x:auto;font-size:.8rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #dde;padding:.2rem .5rem;"
    "text-align:left;font-size:.85rem}"
    "</style></head><body>\n";

/* Appends an escaped, pretty-printed schema (extensions removed). */
static void html_schema(qg_buf *b, const char *title, cJSON *schema)
{
    char *text = cJSON_Print(schema);
    if (!text) return;
    qg_buf_printf(b, "<p><b>%s</b></p><pre>", title);
    qg_buf_html(b, text);
    qg_buf_puts(b, "</pre>\n");
    free(text);
}

static void html_query_param(void *ud, const query_param *q)
{
    qg_buf *b = ud;
    qg_buf_puts(b, "<tr><td><code>");
    qg_buf_html(b, q->name);
    qg_buf_puts(b, "</code></td><td>");
    qg_buf_html(b, q->type);
    qg_buf_puts(b, "</td><td>");
    qg_buf_html(b, q->description);
    qg_buf_puts(b, "</td></tr>\n");
}

static void html_route(qg_buf *b, const qg_route *rt)
{
    char opid[256];
    operation_id(rt, opid, sizeof opid);
    const char *m = qg_method_name(rt->method);
    qg_buf_printf(b, "<div class=\"route\" id=\"%s\"><h3><span class=\"m %s\">%s</span><code>",
                  opid, m, m);
    qg_buf_html(b, rt->pattern);
    qg_buf_puts(b, "</code></h3><p>");
    qg_buf_html(b, rt->summary ? rt->summary : "");
    qg_buf_printf(b, " <span class=\"role\">(%s)</span></p>\n",
                  rt->role == QG_ROLE_NONE        ? "no credentials needed"
                  : rt->role == QG_ROLE_CLIENT    ? "role: client or above"
                  : rt->role == QG_ROLE_DEVELOPER ? "role: developer or above"
                                                  : "role: admin");
    if (rt->query_params) {
        qg_buf_puts(b, "<table><tr><th>query</th><th>type</th><th>meaning</th></tr>\n");
        each_query_param(rt, html_query_param, b);
        qg_buf_puts(b, "</table>\n");
    }
    if (rt->flags & QG_ROUTE_RAW_BODY)
        qg_buf_puts(b, "<p><b>Request body</b>: the raw data (text/csv or application/json)</p>\n");
    cJSON *req = parse_schema(rt, "request", rt->request_schema);
    if (req) html_schema(b, "Request body", req);
    cJSON_Delete(req);

    resp_info ri;
    route_response(rt, &ri);
    cJSON *pub = resp_public_schema(&ri);
    char title[128];
    snprintf(title, sizeof title, "Response %d%s%s", ri.status, ri.type ? ", " : "",
             ri.type ? ri.type : "");
    if (pub)
        html_schema(b, title, pub);
    else
        qg_buf_printf(b, "<p><b>%s</b>%s</p>\n", title, ri.status == 204 ? " (no body)" : "");
    if (rt->flags & QG_ROUTE_STREAM)
        qg_buf_puts(b, "<p>May answer as <code>text/event-stream</code> (Server-Sent "
                       "Events).</p>\n");
    cJSON_Delete(pub);
    resp_free(&ri);
    qg_buf_puts(b, "</div>\n");
}

static char *g_docs;
static size_t g_docs_len;
static pthread_once_t g_docs_once = PTHREAD_ONCE_INIT;

static void docs_build(void)
{
    qg_buf b;
    qg_buf_init(&b, 4u << 20);
    qg_buf_puts(&b, docs_head);
    qg_buf_printf(&b,
                  "<h1>quantgate API</h1><p>Version %s. The machine-readable description is "
                  "<a href=\"/api/openapi.json\">/api/openapi.json</a> (OpenAPI 3.1).</p>\n",
                  QG_VERSION);
    qg_buf_puts(&b, "<p>Authenticate with <code>Authorization: Bearer &lt;token&gt;</code>: an "
                    "access token from <code>POST /api/auth/login</code> or a machine token from "
                    "<code>POST /api/tokens</code>. Roles nest: client &lt; developer &lt; "
                    "admin. Errors are <code>{\"error\":{\"code\":...,\"message\":...}}</code>; "
                    "lists are <code>{\"items\":[...],\"next\":cursor|null}</code> and take "
                    "<code>limit</code> and <code>before</code>.</p>\n");

    /* Tags in order of first appearance. */
    const char *tags[32];
    int ntags = 0;
    for (const qg_route *rt = qg_routes; rt->pattern; rt++) {
        const char *t = route_tag(rt);
        bool seen = false;
        for (int i = 0; i < ntags; i++) seen = seen || strcmp(tags[i], t) == 0;
        if (!seen && ntags < (int)(sizeof tags / sizeof tags[0])) tags[ntags++] = t;
    }
    qg_buf_puts(&b, "<nav>");
    for (int i = 0; i < ntags; i++) {
        qg_buf_printf(&b, "<a href=\"#tag-%s\">", tags[i]);
        qg_buf_html(&b, tags[i]);
        qg_buf_puts(&b, "</a>");
    }
    qg_buf_puts(&b, "<a href=\"#schemas\">schemas</a></nav>\n");
    for (int i = 0; i < ntags; i++) {
        qg_buf_printf(&b, "<h2 id=\"tag-%s\">", tags[i]);
        qg_buf_html(&b, tags[i]);
        const char *d = tag_description(tags[i]);
        if (d) {
            qg_buf_puts(&b, " <small>");
            qg_buf_html(&b, d);
            qg_buf_puts(&b, "</small>");
        }
        qg_buf_puts(&b, "</h2>\n");
        for (const qg_route *rt = qg_routes; rt->pattern; rt++)
            if (strcmp(route_tag(rt), tags[i]) == 0) html_route(&b, rt);
    }
    qg_buf_puts(&b, "<h2 id=\"schemas\">Schemas</h2>\n");
    for (size_t i = 0; i < sizeof component_schemas / sizeof component_schemas[0]; i++) {
        cJSON *s = cJSON_Parse(component_schemas[i][1]);
        if (s) html_schema(&b, component_schemas[i][0], s);
        cJSON_Delete(s);
    }
    if (qg_buf_puts(&b, "</body></html>\n")) {
        qg_err("docs: the page does not fit its buffer");
        qg_buf_free(&b);
        return;
    }
    g_docs = b.data; /* kept for the life of the process */
    g_docs_len = b.len;
}

void qg_h_docs(qg_req *r)
{
    pthread_once(&g_docs_once, docs_build);
    if (!g_docs) {
        qg_error err = {0};
        qg_error_set(&err, QG_ERANGE, "building the documentation page failed");
        qg_reply_status(r, QG_EINTERNAL, &err);
        return;
    }
    qg_reply_raw(r, 200, "text/html; charset=utf-8", g_docs, g_docs_len);
}
