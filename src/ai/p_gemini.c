/*
 * p_gemini.c - the Gemini API's generateContent (Google AI Studio keys).
 *
 * POST <base>/v1beta/models/<model>:generateContent, or
 * :streamGenerateContent?alt=sse for a stream; the key goes in the
 * x-goog-api-key header, never in the URL, so it cannot leak through a
 * logged URL.
 *
 * Encoding: the system prompt is "systemInstruction"; messages are
 * "contents" with role "user" or "model". An assistant's tool calls are
 * "functionCall" parts (args an object) and a tool result is a
 * "functionResponse" part in a user turn, matched by function name; a
 * result that is not a JSON object is wrapped as {"result": ...} because
 * Gemini wants an object there. Consecutive turns of one role are merged
 * (parallel function responses must travel together). Tool schemas are
 * filtered down to the OpenAPI subset Gemini accepts: it rejects whole
 * requests over keywords such as additionalProperties or $schema, so
 * unknown keywords are dropped recursively, a ["string","null"] type becomes
 * "string" + nullable, and an object schema without properties is left out.
 * json_mode sets responseMimeType "application/json", except when tools are
 * offered: Gemini refuses that combination, and the prompt asks for JSON.
 *
 * Decoding: candidates[0].content.parts give text (thought parts skipped)
 * and functionCall parts; Gemini gives calls no id, so they are "call_<i>".
 * A stream's SSE events are each a whole GenerateContentResponse carrying
 * the next parts; there is no [DONE]: the event with a finishReason marks
 * the end (st->done), usageMetadata arrives with the last events.
 * st->pstate counts the function calls seen so far.
 */
#include "ai/provider.h"

#include <quantgate/json.h>

#include <cjson/cJSON.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_MAX_BYTES   ((size_t)32 << 20)
#define SCHEMA_MAX_DEPTH 32

/* ---- small helpers ---- */

/* Model ids go into the URL path unescaped, so only plain ones pass. */
static bool model_id_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_') return false;
    return true;
}

static const char *finish_of(const char *r)
{
    if (!r) return NULL;
    if (!strcmp(r, "STOP")) return "stop";
    if (!strcmp(r, "MAX_TOKENS")) return "length";
    if (!strcmp(r, "SAFETY") || !strcmp(r, "RECITATION") || !strcmp(r, "BLOCKLIST") ||
        !strcmp(r, "PROHIBITED_CONTENT") || !strcmp(r, "SPII") || !strcmp(r, "IMAGE_SAFETY") ||
        !strcmp(r, "LANGUAGE"))
        return "content_filter";
    return "stop"; /* OTHER, MALFORMED_FUNCTION_CALL, FINISH_REASON_UNSPECIFIED */
}

/* ---- schema filtering ---- */

static bool schema_keyword_ok(const char *k)
{
    static const char *const keep[] = {
        "type",      "format",   "title",      "description",   "nullable",         "enum",
        "maxItems",  "minItems", "required",   "minProperties", "maxProperties",    "minLength",
        "maxLength", "pattern",  "example",    "anyOf",         "propertyOrdering", "default",
        "minimum",   "maximum",  "properties", "items",
    };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (!strcmp(k, keep[i])) return true;
    return false;
}

/* Rewrites schema s in place into what Gemini accepts. */
static void schema_filter(cJSON *s, int depth)
{
    if (!cJSON_IsObject(s) || depth > SCHEMA_MAX_DEPTH) return;
    cJSON *it = s->child;
    while (it) {
        cJSON *next = it->next;
        if (!it->string || !schema_keyword_ok(it->string))
            cJSON_DeleteItemFromObjectCaseSensitive(s, it->string);
        it = next;
    }
    /* "type": ["string", "null"] -> "string" + nullable */
    cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsArray(type)) {
        const char *first = NULL;
        bool nullable = false;
        const cJSON *t;
        cJSON_ArrayForEach(t, type)
        {
            if (!cJSON_IsString(t)) continue;
            if (!strcmp(t->valuestring, "null"))
                nullable = true;
            else if (!first)
                first = t->valuestring;
        }
        cJSON *one = cJSON_CreateString(first ? first : "string");
        cJSON_ReplaceItemInObjectCaseSensitive(s, "type", one);
        if (nullable && !cJSON_GetObjectItemCaseSensitive(s, "nullable"))
            cJSON_AddTrueToObject(s, "nullable");
    }
    cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    if (cJSON_IsObject(props)) {
        cJSON *p;
        cJSON_ArrayForEach(p, props) schema_filter(p, depth + 1);
    }
    schema_filter(cJSON_GetObjectItemCaseSensitive(s, "items"), depth + 1);
    cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    if (cJSON_IsArray(any)) {
        cJSON *p;
        cJSON_ArrayForEach(p, any) schema_filter(p, depth + 1);
    }
}

/* ---- encode ---- */

typedef struct {
    cJSON *arr;   /* "contents" */
    cJSON *parts; /* parts of the last content */
    const char *role;
} content_builder;

static cJSON *parts_for(content_builder *b, const char *role)
{
    if (b->parts && !strcmp(b->role, role)) return b->parts;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "role", role);
    b->parts = cJSON_AddArrayToObject(c, "parts");
    b->role = role;
    cJSON_AddItemToArray(b->arr, c);
    return b->parts;
}

static void add_text_part(cJSON *parts, const char *text)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "text", text);
    cJSON_AddItemToArray(parts, p);
}

/* The name of the tool that call `id` asked for, from earlier turns. */
static const char *tool_name_for(const qg_ai_request *req, size_t before, const char *id)
{
    for (size_t i = before; id && i-- > 0;) {
        const qg_ai_msg *m = &req->messages[i];
        for (size_t k = 0; m->role == QG_AI_ROLE_ASSISTANT && k < m->n_tool_calls; k++)
            if (m->tool_calls[k].id && !strcmp(m->tool_calls[k].id, id))
                return m->tool_calls[k].name;
    }
    return NULL;
}

/* A tool result as the object Gemini wants: the JSON object itself, or
 * {"result": value} for anything else (plain text included). */
static cJSON *tool_response(const char *content)
{
    const char *c = content ? content : "";
    cJSON *v = cJSON_Parse(c);
    if (cJSON_IsObject(v)) return v;
    if (!v) v = cJSON_CreateString(c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "result", v);
    return o;
}

static qg_status encode_message(content_builder *b, const qg_ai_request *req, size_t i,
                                qg_error *err)
{
    const qg_ai_msg *m = &req->messages[i];
    bool has_text = m->content && *m->content;
    switch (m->role) {
    case QG_AI_ROLE_SYSTEM:
        return QG_OK; /* folded into systemInstruction */
    case QG_AI_ROLE_USER:
        add_text_part(parts_for(b, "user"), has_text ? m->content : " ");
        return QG_OK;
    case QG_AI_ROLE_TOOL: {
        const char *name =
            m->tool_name && *m->tool_name ? m->tool_name : tool_name_for(req, i, m->tool_call_id);
        if (!name || !*name)
            return qg_error_set(err, QG_EINVAL,
                                "messages[%zu].tool_name: required for a tool result (Gemini "
                                "matches results by function name)",
                                i);
        cJSON *p = cJSON_CreateObject();
        cJSON *fr = cJSON_AddObjectToObject(p, "functionResponse");
        cJSON_AddStringToObject(fr, "name", name);
        cJSON_AddItemToObject(fr, "response", tool_response(m->content));
        cJSON_AddItemToArray(parts_for(b, "user"), p);
        return QG_OK;
    }
    case QG_AI_ROLE_ASSISTANT: {
        if (!has_text && m->n_tool_calls == 0) return QG_OK;
        cJSON *parts = parts_for(b, "model");
        if (has_text) add_text_part(parts, m->content);
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            const qg_ai_tool_call *c = &m->tool_calls[k];
            if (!c->name || !*c->name)
                return qg_error_set(err, QG_EINVAL, "messages[%zu].tool_calls[%zu].name: required",
                                    i, k);
            cJSON *args = cJSON_Parse(c->arguments && *c->arguments ? c->arguments : "{}");
            if (!cJSON_IsObject(args)) {
                cJSON_Delete(args);
                return qg_error_set(err, QG_EINVAL,
                                    "messages[%zu].tool_calls[%zu].arguments: not a JSON object", i,
                                    k);
            }
            cJSON *p = cJSON_CreateObject();
            cJSON *fc = cJSON_AddObjectToObject(p, "functionCall");
            cJSON_AddStringToObject(fc, "name", c->name);
            cJSON_AddItemToObject(fc, "args", args);
            cJSON_AddItemToArray(parts, p);
        }
        return QG_OK;
    }
    }
    return qg_error_set(err, QG_EINVAL, "messages[%zu].role: unknown role %d", i, (int)m->role);
}

static qg_status encode_tools(cJSON *root, const qg_ai_request *req, qg_error *err)
{
    cJSON *tools = cJSON_AddArrayToObject(root, "tools");
    cJSON *holder = cJSON_CreateObject();
    cJSON_AddItemToArray(tools, holder);
    cJSON *decls = cJSON_AddArrayToObject(holder, "functionDeclarations");
    const char *choice = req->tool_choice;
    bool choice_found = false;
    for (size_t i = 0; i < req->n_tools; i++) {
        const qg_ai_tool *t = &req->tools[i];
        if (!t->name || !*t->name)
            return qg_error_set(err, QG_EINVAL, "tools[%zu].name: required", i);
        cJSON *schema = NULL;
        if (t->parameters && *t->parameters) {
            schema = cJSON_Parse(t->parameters);
            if (!cJSON_IsObject(schema)) {
                cJSON_Delete(schema);
                return qg_error_set(err, QG_EINVAL, "tools[%zu].parameters: not a JSON object", i);
            }
            schema_filter(schema, 0);
            /* Gemini: "properties: should be non-empty for OBJECT type" */
            const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
            if (!cJSON_IsObject(props) || !props->child) {
                cJSON_Delete(schema);
                schema = NULL;
            }
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        if (t->description && *t->description)
            cJSON_AddStringToObject(o, "description", t->description);
        if (schema) cJSON_AddItemToObject(o, "parameters", schema);
        cJSON_AddItemToArray(decls, o);
        if (choice && !strcmp(choice, t->name)) choice_found = true;
    }
    if (!choice || !*choice || !strcmp(choice, "auto")) return QG_OK; /* AUTO is the default */
    cJSON *fcc = cJSON_AddObjectToObject(cJSON_AddObjectToObject(root, "toolConfig"),
                                         "functionCallingConfig");
    if (!strcmp(choice, "none")) {
        cJSON_AddStringToObject(fcc, "mode", "NONE");
    } else if (!strcmp(choice, "required")) {
        cJSON_AddStringToObject(fcc, "mode", "ANY");
    } else {
        if (!choice_found)
            return qg_error_set(err, QG_EINVAL, "tool_choice: '%.64s' is not one of the tools",
                                choice);
        cJSON_AddStringToObject(fcc, "mode", "ANY");
        cJSON *names = cJSON_AddArrayToObject(fcc, "allowedFunctionNames");
        cJSON_AddItemToArray(names, cJSON_CreateString(choice));
    }
    return QG_OK;
}

static qg_status build_body(const qg_ai_request *req, cJSON *root, qg_error *err)
{
    qg_buf sys;
    qg_buf_init(&sys, BODY_MAX_BYTES);
    qg_status rc = QG_OK;
    if (req->system && *req->system) rc = qg_buf_puts(&sys, req->system);
    for (size_t i = 0; !rc && i < req->n_messages; i++) {
        const qg_ai_msg *m = &req->messages[i];
        if (m->role != QG_AI_ROLE_SYSTEM || !m->content || !*m->content) continue;
        if (sys.len) rc = qg_buf_puts(&sys, "\n\n");
        if (!rc) rc = qg_buf_puts(&sys, m->content);
    }
    if (!rc && sys.len) {
        cJSON *si = cJSON_AddObjectToObject(root, "systemInstruction");
        add_text_part(cJSON_AddArrayToObject(si, "parts"), sys.data);
    }
    qg_buf_free(&sys);
    if (rc) return qg_error_set(err, rc, "system: prompt too large");

    content_builder b = {.arr = cJSON_AddArrayToObject(root, "contents")};
    for (size_t i = 0; i < req->n_messages; i++) {
        rc = encode_message(&b, req, i, err);
        if (rc) return rc;
    }
    if (cJSON_GetArraySize(b.arr) == 0)
        return qg_error_set(err, QG_EINVAL, "messages: at least one user message is required");

    bool tools_on = req->n_tools > 0 && !(req->tool_choice && !strcmp(req->tool_choice, "none"));
    if (req->n_tools > 0) {
        rc = encode_tools(root, req, err);
        if (rc) return rc;
    }
    cJSON *gc = cJSON_CreateObject();
    if (req->max_tokens > 0) cJSON_AddNumberToObject(gc, "maxOutputTokens", req->max_tokens);
    if (req->temperature >= 0) cJSON_AddNumberToObject(gc, "temperature", req->temperature);
    if (req->json_mode && !tools_on)
        cJSON_AddStringToObject(gc, "responseMimeType", "application/json");
    if (gc->child)
        cJSON_AddItemToObject(root, "generationConfig", gc);
    else
        cJSON_Delete(gc);
    return QG_OK;
}

static qg_status gemini_encode(const qg_ai_deployment *d, const char *api_key,
                               const qg_ai_request *req, qg_arena *a, qg_ai_http_req *out,
                               qg_error *err)
{
    qg_status rc = QG_OK;
    cJSON *root = NULL;
    memset(out, 0, sizeof *out);
    qg_buf_init(&out->body, BODY_MAX_BYTES);

    /* "models/gemini-2.0-flash" as listed by the API works as well. */
    const char *model = d->model;
    if (!strncmp(model, "models/", 7)) model += 7;
    if (!model_id_ok(model)) {
        rc = qg_error_set(err, QG_EINVAL,
                          "deployment %s: model '%.64s' must be letters, digits, '-', '.' or '_'",
                          d->id, d->model);
        goto out;
    }
    if (api_key && qg_ai_has_ctl(api_key)) {
        rc = qg_error_set(err, QG_EINVAL, "deployment %s: API key contains a control character",
                          d->id);
        goto out;
    }
    const char *base = d->base_url[0] ? d->base_url : qg_ai_provider_default_url("gemini");
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    /* A base URL that already names the API version is used as it is. */
    bool versioned = (bl >= 7 && !memcmp(base + bl - 7, "/v1beta", 7)) ||
                     (bl >= 3 && !memcmp(base + bl - 3, "/v1", 3));
    out->method = "POST";
    out->url =
        qg_arena_sprintf(a, "%.*s%s/models/%s:%s", (int)bl, base, versioned ? "" : "/v1beta", model,
                         req->stream ? "streamGenerateContent?alt=sse" : "generateContent");
    out->headers[out->nheaders++] = "Content-Type: application/json";
    out->headers[out->nheaders++] =
        req->stream ? "Accept: text/event-stream" : "Accept: application/json";
    if (api_key && *api_key)
        out->headers[out->nheaders++] = qg_arena_sprintf(a, "x-goog-api-key: %s", api_key);
    if (!out->url || !out->headers[out->nheaders - 1]) {
        rc = qg_error_set(err, QG_ENOMEM, "gemini: out of memory building the request");
        goto out;
    }
    root = cJSON_CreateObject();
    if (!root) {
        rc = qg_error_set(err, QG_ENOMEM, "gemini: out of memory building the request");
        goto out;
    }
    rc = build_body(req, root, err);
    if (rc) goto out;
    rc = qg_ai_body_from_json(root, "gemini", &out->body, err);
out:
    cJSON_Delete(root);
    if (rc) qg_buf_free(&out->body);
    return rc;
}

/* ---- errors ---- */

/* "7s", "1.5s" (a protobuf Duration in JSON) -> ms; -1 when not that. */
static int64_t duration_ms(const char *s)
{
    if (!s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0 || v > 86400.0 || strcmp(end, "s")) return -1;
    return (int64_t)(v * 1000.0);
}

static qg_ai_errkind kind_of(const char *status, const char *msg, int http_status)
{
    if (status) {
        if (!strcmp(status, "UNAUTHENTICATED") || !strcmp(status, "PERMISSION_DENIED"))
            return QG_AI_EAUTH;
        if (!strcmp(status, "RESOURCE_EXHAUSTED")) return QG_AI_ERATE;
        if (!strcmp(status, "UNAVAILABLE")) return QG_AI_EOVERLOADED;
        if (!strcmp(status, "DEADLINE_EXCEEDED")) return QG_AI_ETIMEOUT;
        if (!strcmp(status, "INTERNAL") || !strcmp(status, "UNKNOWN")) return QG_AI_ESERVER;
        if (!strcmp(status, "INVALID_ARGUMENT") || !strcmp(status, "FAILED_PRECONDITION") ||
            !strcmp(status, "NOT_FOUND") || !strcmp(status, "OUT_OF_RANGE")) {
            /* "The input token count (1200000) exceeds the maximum number
             * of tokens allowed (1048576)." */
            if (msg && ((strcasestr(msg, "token count") && strcasestr(msg, "exceed")) ||
                        strcasestr(msg, "exceeds the maximum number of tokens") ||
                        strcasestr(msg, "context window")))
                return QG_AI_ECONTEXT;
            return QG_AI_EBADREQ;
        }
    }
    if (!http_status) return QG_AI_ESERVER;
    qg_ai_errkind k = qg_ai_errkind_from_status(http_status);
    return k == QG_AI_OK ? QG_AI_EPROTOCOL : k;
}

/* A google.rpc.RetryInfo detail's retryDelay, in ms, or -1. */
static int64_t retry_delay(const cJSON *eo)
{
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(eo, "details");
    const cJSON *d;
    cJSON_ArrayForEach(d, details)
    {
        int64_t ms = duration_ms(qg_ai_json_str(d, "retryDelay"));
        if (ms >= 0) return ms;
    }
    return -1;
}

/* A bad key is a 400 INVALID_ARGUMENT with an ErrorInfo reason
 * API_KEY_INVALID ("API key not valid. Please pass a valid API key."). */
static bool key_invalid(const cJSON *eo, const char *msg)
{
    if (msg && strcasestr(msg, "API key not valid")) return true;
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(eo, "details"))
    {
        const char *reason = qg_ai_json_str(d, "reason");
        if (reason && !strcmp(reason, "API_KEY_INVALID")) return true;
    }
    return false;
}

/* Fills e from {"error":{"code","message","status","details"}}; a
 * streaming endpoint may wrap it in an array. */
static bool error_from_json(const cJSON *root, int http_status, qg_ai_error *e)
{
    if (cJSON_IsArray(root)) root = cJSON_GetArrayItem(root, 0);
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (!cJSON_IsObject(eo)) return false;
    const char *status = qg_ai_json_str(eo, "status");
    const char *msg = qg_ai_json_str(eo, "message");
    int64_t code = qg_ai_json_int(eo, "code", -1);
    e->kind = kind_of(status, msg, http_status ? http_status : code > 0 ? (int)code : 0);
    if (key_invalid(eo, msg)) e->kind = QG_AI_EAUTH;
    if (e->retry_after_ms < 0) e->retry_after_ms = retry_delay(eo);
    if (status && msg)
        snprintf(e->message, sizeof e->message, "%s: %s", status, msg);
    else
        snprintf(e->message, sizeof e->message, "%s",
                 msg      ? msg
                 : status ? status
                          : "error without a message");
    return true;
}

static void gemini_decode_error(int http_status, const char *retry_after, const char *body,
                                size_t n, qg_ai_error *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = http_status;
    out->retry_after_ms = qg_ai_parse_retry_after(retry_after);
    out->kind = qg_ai_errkind_from_status(http_status);
    if (out->kind == QG_AI_OK) out->kind = QG_AI_EPROTOCOL;
    cJSON *root = body && n ? cJSON_ParseWithLength(body, n) : NULL;
    if (!root || !error_from_json(root, http_status, out))
        snprintf(out->message, sizeof out->message, "HTTP %d from gemini", http_status);
    cJSON_Delete(root);
}

/* ---- decode ---- */

/* One GenerateContentResponse (a whole reply or one stream event) into st.
 * *seen is set when it carried candidates, feedback or usage. */
static qg_status apply_response(qg_ai_stream *st, const cJSON *root, bool *seen, qg_error *err)
{
    qg_status rc = QG_OK;
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(root, "candidates");
    const cJSON *cand = cJSON_GetArrayItem(cands, 0);
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts");
    const cJSON *p;
    cJSON_ArrayForEach(p, parts)
    {
        const cJSON *fc = cJSON_GetObjectItemCaseSensitive(p, "functionCall");
        const char *text = qg_ai_json_str(p, "text");
        if (cJSON_IsObject(fc)) {
            if (st->pstate >= QG_AI_MAX_TOOL_CALLS)
                return qg_error_set(err, QG_ERANGE, "gemini: more than %d function calls",
                                    QG_AI_MAX_TOOL_CALLS);
            int idx = st->pstate++;
            const cJSON *args = cJSON_GetObjectItemCaseSensitive(fc, "args");
            char *a = cJSON_IsObject(args) && args->child ? qg_json_compact(args) : NULL;
            const char *id = qg_ai_json_str(fc, "id");
            char made[24];
            if (!id || !*id) {
                snprintf(made, sizeof made, "call_%d", idx);
                id = made;
            }
            rc = qg_ai_stream_tool(st, idx, id, qg_ai_json_str(fc, "name"), a, a ? strlen(a) : 0);
            free(a);
        } else if (text && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "thought"))) {
            rc = qg_ai_stream_text(st, text, strlen(text));
        }
        if (rc) return qg_error_set(err, rc, "gemini: reply too large");
    }
    const char *fr = qg_ai_json_str(cand, "finishReason");
    if (fr) {
        const char *norm = finish_of(fr);
        /* Gemini says STOP after a function call; callers want tool_calls. */
        if (!strcmp(norm, "stop") && st->pstate > 0) norm = "tool_calls";
        qg_ai_stream_set_finish(st, norm);
        st->done = true;
    }
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(root, "promptFeedback");
    if (!cand && qg_ai_json_str(fb, "blockReason")) {
        qg_ai_stream_set_finish(st, "content_filter");
        st->done = true;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usageMetadata");
    if (cJSON_IsObject(u)) {
        int64_t out = qg_ai_json_int(u, "candidatesTokenCount", -1);
        int64_t thoughts = qg_ai_json_int(u, "thoughtsTokenCount", -1); /* billed as output */
        if (thoughts > 0) out = (out > 0 ? out : 0) + thoughts;
        int64_t cached = qg_ai_json_int(u, "cachedContentTokenCount", -1);
        qg_ai_stream_usage(st, qg_ai_json_int(u, "promptTokenCount", -1), out,
                           cached >= 0 ? cached : 0);
    }
    const char *model = qg_ai_json_str(root, "modelVersion");
    if (model) qg_ai_stream_set_model(st, model, strlen(model));
    if (seen) *seen = cand || cJSON_IsObject(fb) || cJSON_IsObject(u);
    return QG_OK;
}

static qg_status gemini_decode(const char *body, size_t n, qg_arena *a, qg_ai_response *out,
                               qg_error *err)
{
    memset(out, 0, sizeof *out);
    out->error.retry_after_ms = -1;
    cJSON *root = cJSON_ParseWithLength(body, n);
    const char *bad = NULL;
    if (!cJSON_IsObject(root)) bad = "reply is not a JSON object";
    if (!bad && error_from_json(root, 0, &out->error)) {
        cJSON_Delete(root);
        out->text = "";
        return qg_error_set(err, QG_EINVAL, "gemini: error in a 2xx reply: %s", out->error.message);
    }
    qg_ai_stream st;
    qg_ai_stream_init(&st, a, NULL, NULL);
    bool seen = false;
    qg_status rc = bad ? QG_EINVAL : apply_response(&st, root, &seen, err);
    if (!rc && !seen) {
        bad = "reply has no candidates";
        rc = QG_EINVAL;
    }
    qg_ai_stream_finish(&st, out);
    cJSON_Delete(root);
    if (rc) {
        out->error.kind = QG_AI_EPROTOCOL;
        snprintf(out->error.message, sizeof out->error.message, "%s",
                 bad ? bad : "reply too large");
        if (bad) qg_error_set(err, QG_EINVAL, "gemini: %s", bad);
        return rc;
    }
    return QG_OK;
}

static qg_status gemini_stream_event(qg_ai_stream *st, const char *event, const char *data,
                                     size_t n, qg_error *err)
{
    (void)event;
    cJSON *root = cJSON_ParseWithLength(data, n);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qg_error_set(err, QG_EINVAL, "gemini stream: event is not a JSON object");
    }
    qg_status rc = QG_OK;
    if (error_from_json(root, 0, &st->error)) {
        /* an error after the 200: the stream ends with it */
        if (st->error.kind == QG_AI_OK) st->error.kind = QG_AI_ESERVER;
        st->done = true;
    } else {
        rc = apply_response(st, root, NULL, err);
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- embeddings ----
 *
 * One input: POST <base>/v1beta/models/<model>:embedContent with
 * {"content":{"parts":[{"text":..}]}} -> {"embedding":{"values":[..]}}.
 * Several: :batchEmbedContents with {"requests":[{"model":"models/<model>",
 * "content":{...}},...]} -> {"embeddings":[{"values":[..]},...]} in request
 * order. Gemini reports no token count for embeddings (a usageMetadata
 * promptTokenCount is read when a version sends one), so usage.input is
 * usually -1 and the caller estimates it.
 */

static cJSON *embed_content(const char *text)
{
    cJSON *content = cJSON_CreateObject();
    cJSON *parts = content ? cJSON_AddArrayToObject(content, "parts") : NULL;
    cJSON *part = parts ? cJSON_CreateObject() : NULL;
    if (!part || !cJSON_AddStringToObject(part, "text", text ? text : "")) {
        cJSON_Delete(part);
        cJSON_Delete(content);
        return NULL;
    }
    cJSON_AddItemToArray(parts, part);
    return content;
}

static qg_status embed_json(const char *model, const char *const *inputs, size_t n, cJSON *root)
{
    if (n == 1) {
        cJSON *c = embed_content(inputs[0]);
        if (!c) return QG_ENOMEM;
        cJSON_AddItemToObject(root, "content", c);
        return QG_OK;
    }
    cJSON *reqs = cJSON_AddArrayToObject(root, "requests");
    if (!reqs) return QG_ENOMEM;
    char name[160];
    snprintf(name, sizeof name, "models/%s", model);
    for (size_t i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON *c = r ? embed_content(inputs[i]) : NULL;
        if (!c || !cJSON_AddStringToObject(r, "model", name)) {
            cJSON_Delete(c);
            cJSON_Delete(r);
            return QG_ENOMEM;
        }
        cJSON_AddItemToObject(r, "content", c);
        cJSON_AddItemToArray(reqs, r);
    }
    return QG_OK;
}

static qg_status gemini_encode_embed(const qg_ai_deployment *d, const char *api_key,
                                     const char *const *inputs, size_t n, qg_arena *a,
                                     qg_ai_http_req *out, qg_error *err)
{
    qg_status rc = QG_OK;
    cJSON *root = NULL;
    memset(out, 0, sizeof *out);
    qg_buf_init(&out->body, BODY_MAX_BYTES);
    const char *model = d->model;
    if (!strncmp(model, "models/", 7)) model += 7;
    if (!model_id_ok(model)) {
        rc = qg_error_set(err, QG_EINVAL,
                          "deployment %s: model '%.64s' must be letters, digits, '-', '.' or '_'",
                          d->id, d->model);
        goto out;
    }
    if (api_key && qg_ai_has_ctl(api_key)) {
        rc = qg_error_set(err, QG_EINVAL, "deployment %s: API key contains a control character",
                          d->id);
        goto out;
    }
    const char *base = d->base_url[0] ? d->base_url : qg_ai_provider_default_url("gemini");
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    bool versioned = (bl >= 7 && !memcmp(base + bl - 7, "/v1beta", 7)) ||
                     (bl >= 3 && !memcmp(base + bl - 3, "/v1", 3));
    out->method = "POST";
    out->url = qg_arena_sprintf(a, "%.*s%s/models/%s:%s", (int)bl, base, versioned ? "" : "/v1beta",
                                model, n == 1 ? "embedContent" : "batchEmbedContents");
    out->headers[out->nheaders++] = "Content-Type: application/json";
    out->headers[out->nheaders++] = "Accept: application/json";
    if (api_key && *api_key)
        out->headers[out->nheaders++] = qg_arena_sprintf(a, "x-goog-api-key: %s", api_key);
    root = cJSON_CreateObject();
    bool ok = out->url && root && !embed_json(model, inputs, n, root);
    rc = qg_ai_body_from_json(ok ? root : NULL, "gemini", &out->body, err);
out:
    cJSON_Delete(root);
    if (rc) qg_buf_free(&out->body);
    return rc;
}

static qg_status gemini_decode_embed(const char *body, size_t n, qg_arena *a,
                                     qg_ai_embed_reply *out, qg_error *err)
{
    qg_status rc = QG_OK;
    memset(out, 0, sizeof *out);
    out->error.retry_after_ms = -1;
    out->usage.input = -1;
    cJSON *root = cJSON_ParseWithLength(body, n);
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(root, "embedding");
    const cJSON *many = cJSON_GetObjectItemCaseSensitive(root, "embeddings");
    if (!cJSON_IsObject(root) || (!cJSON_IsObject(one) && !cJSON_IsArray(many))) {
        out->error.kind = QG_AI_EPROTOCOL;
        snprintf(out->error.message, sizeof out->error.message,
                 "gemini: embeddings reply has neither embedding nor embeddings");
        rc = qg_error_set(err, QG_EINVAL, "%s", out->error.message);
        goto out;
    }
    if (cJSON_IsObject(one)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(one, "values");
        rc = qg_ai_embed_take(out, a, &v, 1, "gemini", err);
    } else {
        int count = cJSON_GetArraySize(many);
        const cJSON **vecs = count > 0 ? qg_arena_alloc(a, sizeof *vecs * (size_t)count) : NULL;
        if (count > 0 && !vecs) {
            rc = qg_error_set(err, QG_ENOMEM, "gemini: out of memory decoding embeddings");
            goto out;
        }
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, many) vecs[i++] = cJSON_GetObjectItemCaseSensitive(e, "values");
        rc = qg_ai_embed_take(out, a, vecs, (size_t)count, "gemini", err);
    }
    if (rc) goto out;
    const cJSON *um = cJSON_GetObjectItemCaseSensitive(root, "usageMetadata");
    out->usage.input = qg_ai_json_int(um, "promptTokenCount", -1);
out:
    cJSON_Delete(root);
    return rc;
}

const qg_ai_provider qg_ai_provider_gemini = {
    .name = "gemini",
    .framing = QG_AI_FRAMING_SSE,
    .encode = gemini_encode,
    .decode = gemini_decode,
    .stream_event = gemini_stream_event,
    .decode_error = gemini_decode_error,
    .complete = NULL,
    .encode_embed = gemini_encode_embed,
    .decode_embed = gemini_decode_embed,
};
