/*
 * p_openai.c - the OpenAI Chat Completions wire format, spoken by OpenAI
 * itself and by every "OpenAI-compatible" server (Ollama's /v1, vLLM,
 * LM Studio, OpenRouter) and, with another URL and key header, Azure OpenAI.
 *
 * Requests: POST <base>/chat/completions with "Authorization: Bearer <key>"
 * (no header when the key is empty, for local servers); Azure when the
 * deployment has an api_version: POST <base>/openai/deployments/<model>/
 * chat/completions?api-version=<v> with "api-key: <key>".
 *
 * Streams are SSE "data:" events, each one chat.completion.chunk, ended by
 * "data: [DONE]"; tool-call arguments arrive as fragments keyed by index.
 * With stream_options.include_usage the last chunk carries the usage and an
 * empty choices array.
 *
 * Errors are {"error": {"message", "type", "param", "code"}}. Classification
 * starts from the HTTP status and is refined by code: context_length_exceeded
 * is QG_AI_ECONTEXT; insufficient_quota (a 429 that no wait will cure: the
 * account is out of credit) is QG_AI_EAUTH, a non-retryable problem of this
 * deployment's account, so routing falls back to another deployment instead
 * of retrying, as it does for a bad key. The message goes through
 * qg_openai_scrub_copy because OpenAI echoes a (masked) key on 401.
 *
 * Compatible servers differ in small ways handled here: finish_reason
 * "stop" with tool calls (Ollama, older vLLM) is reported as "tool_calls";
 * tool-call arguments sent as an object instead of a string are serialised;
 * a tool-call delta without "index" takes its position in the array; an
 * error object in a 200 body (OpenRouter) is an error, with a numeric code
 * read as the HTTP status.
 */
#include "ai/openai_compat.h"

#include <quantgate/json.h>
#include "ai/provider.h"

#include <cjson/cJSON.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX_BYTES ((size_t)32 << 20)

/* ---- encoding ---- */

/* Percent-encodes everything but RFC 3986 unreserved characters. */
static char *url_escape(qg_arena *a, const char *s)
{
    size_t n = strlen(s);
    char *o = qg_arena_alloc(a, n * 3 + 1), *p = o;
    if (!o) return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            *p++ = (char)c;
        } else {
            static const char hex[] = "0123456789ABCDEF";
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = 0;
    return o;
}

static const char *trim_base(qg_arena *a, const char *base)
{
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') n--;
    return qg_arena_strndup(a, base, n);
}

static cJSON *tool_call_json(const qg_ai_tool_call *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", c->id ? c->id : "");
    cJSON_AddStringToObject(o, "type", "function");
    cJSON_AddStringToObject(f, "name", c->name ? c->name : "");
    cJSON_AddStringToObject(f, "arguments", c->arguments && *c->arguments ? c->arguments : "{}");
    cJSON_AddItemToObject(o, "function", f);
    return o;
}

static cJSON *message_json(const qg_ai_msg *m)
{
    cJSON *o = cJSON_CreateObject();
    const char *content = m->content ? m->content : "";
    switch (m->role) {
    case QG_AI_ROLE_SYSTEM:
        cJSON_AddStringToObject(o, "role", "system");
        cJSON_AddStringToObject(o, "content", content);
        break;
    case QG_AI_ROLE_USER:
        cJSON_AddStringToObject(o, "role", "user");
        cJSON_AddStringToObject(o, "content", content);
        break;
    case QG_AI_ROLE_ASSISTANT:
        cJSON_AddStringToObject(o, "role", "assistant");
        /* an assistant turn that only called tools has content null */
        if (!*content && m->n_tool_calls)
            cJSON_AddNullToObject(o, "content");
        else
            cJSON_AddStringToObject(o, "content", content);
        if (m->n_tool_calls) {
            cJSON *arr = cJSON_AddArrayToObject(o, "tool_calls");
            for (size_t i = 0; i < m->n_tool_calls; i++)
                cJSON_AddItemToArray(arr, tool_call_json(&m->tool_calls[i]));
        }
        break;
    case QG_AI_ROLE_TOOL:
        cJSON_AddStringToObject(o, "role", "tool");
        cJSON_AddStringToObject(o, "tool_call_id", m->tool_call_id ? m->tool_call_id : "");
        cJSON_AddStringToObject(o, "content", content);
        break;
    }
    return o;
}

static qg_status tools_json(cJSON *root, const qg_ai_request *req, qg_error *err)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "tools");
    for (size_t i = 0; i < req->n_tools; i++) {
        const qg_ai_tool *t = &req->tools[i];
        if (!t->name || !*t->name)
            return qg_error_set(err, QG_EINVAL, "tools[%zu].name: required", i);
        cJSON *params = t->parameters && *t->parameters
                            ? cJSON_Parse(t->parameters)
                            : cJSON_Parse("{\"type\":\"object\",\"properties\":{}}");
        if (!cJSON_IsObject(params)) {
            cJSON_Delete(params);
            return qg_error_set(err, QG_EINVAL, "tools[%zu].parameters: not a JSON object", i);
        }
        cJSON *o = cJSON_CreateObject(), *f = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "function");
        cJSON_AddStringToObject(f, "name", t->name);
        if (t->description && *t->description)
            cJSON_AddStringToObject(f, "description", t->description);
        cJSON_AddItemToObject(f, "parameters", params);
        cJSON_AddItemToObject(o, "function", f);
        cJSON_AddItemToArray(arr, o);
    }
    const char *tc = req->tool_choice;
    if (tc && *tc) {
        if (!strcmp(tc, "auto") || !strcmp(tc, "none") || !strcmp(tc, "required")) {
            cJSON_AddStringToObject(root, "tool_choice", tc);
        } else {
            cJSON *o = cJSON_AddObjectToObject(root, "tool_choice");
            cJSON_AddStringToObject(o, "type", "function");
            cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "function"), "name", tc);
        }
    }
    return QG_OK;
}

static qg_status request_json(const qg_ai_deployment *d, const qg_ai_request *req,
                              cJSON **out /* OUT */, qg_error *err)
{
    qg_status rc;
    cJSON *root = *out = cJSON_CreateObject();
    if (!root) return qg_error_set(err, QG_ENOMEM, "openai: out of memory encoding the request");
    cJSON_AddStringToObject(root, "model", d->model);
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    if (req->system && *req->system) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "role", "system");
        cJSON_AddStringToObject(s, "content", req->system);
        cJSON_AddItemToArray(msgs, s);
    }
    for (size_t i = 0; i < req->n_messages; i++)
        cJSON_AddItemToArray(msgs, message_json(&req->messages[i]));
    /* tool_choice without tools is a 400 at OpenAI: both go only together */
    if (req->n_tools && (rc = tools_json(root, req, err))) return rc;
    if (req->json_mode)
        cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "response_format"), "type",
                                "json_object");
    if (req->max_tokens > 0) cJSON_AddNumberToObject(root, "max_tokens", req->max_tokens);
    if (req->temperature >= 0) cJSON_AddNumberToObject(root, "temperature", req->temperature);
    if (req->stream) {
        cJSON_AddTrueToObject(root, "stream");
        cJSON_AddTrueToObject(cJSON_AddObjectToObject(root, "stream_options"), "include_usage");
    }
    return QG_OK;
}

static qg_status openai_encode(const qg_ai_deployment *d, const char *api_key,
                               const qg_ai_request *req, qg_arena *a, qg_ai_http_req *out,
                               qg_error *err)
{
    qg_status rc = QG_OK;
    cJSON *root = NULL;
    bool azure = d->api_version[0] != 0;
    memset(out, 0, sizeof *out);
    qg_buf_init(&out->body, BODY_MAX_BYTES);

    if (!d->model[0]) {
        rc = qg_error_set(err, QG_EINVAL, "deployment %s: model is empty", d->id);
        goto out;
    }
    if (api_key && qg_ai_has_ctl(api_key)) { /* never echo the key itself */
        rc = qg_error_set(err, QG_EINVAL, "deployment %s: api key contains control characters",
                          d->id);
        goto out;
    }
    const char *base = d->base_url[0] ? d->base_url : qg_ai_provider_default_url("openai");
    base = trim_base(a, base);
    if (azure && !d->base_url[0]) {
        rc = qg_error_set(err, QG_EINVAL,
                          "deployment %s: base_url: Azure OpenAI (api_version set) needs the "
                          "resource URL (https://<resource>.openai.azure.com)",
                          d->id);
        goto out;
    }
    if (azure) {
        size_t bl = strlen(base);
        /* accept the resource URL with or without its "/openai" path */
        const char *sep = bl >= 7 && !strcmp(base + bl - 7, "/openai") ? "" : "/openai";
        out->url = qg_arena_sprintf(a, "%s%s/deployments/%s/chat/completions?api-version=%s", base,
                                    sep, url_escape(a, d->model), url_escape(a, d->api_version));
    } else {
        out->url = qg_arena_sprintf(a, "%s/chat/completions", base);
    }
    out->method = "POST";
    out->headers[out->nheaders++] = "Content-Type: application/json";
    out->headers[out->nheaders++] =
        req->stream ? "Accept: text/event-stream" : "Accept: application/json";
    if (api_key && *api_key)
        out->headers[out->nheaders++] =
            azure ? qg_arena_sprintf(a, "api-key: %s", api_key)
                  : qg_arena_sprintf(a, "Authorization: Bearer %s", api_key);
    rc = request_json(d, req, &root, err);
    if (rc) goto out;
    rc = qg_ai_body_from_json(out->url ? root : NULL, "openai", &out->body, err);
out:
    cJSON_Delete(root);
    if (rc) qg_buf_free(&out->body);
    return rc;
}

/* ---- decoding ---- */

static const char *norm_finish(const char *r, bool has_calls)
{
    if (!r) return NULL;
    if (!strcmp(r, "length")) return "length";
    if (!strcmp(r, "content_filter")) return "content_filter";
    if (!strcmp(r, "tool_calls") || !strcmp(r, "function_call")) return "tool_calls";
    return has_calls ? "tool_calls" : "stop";
}

/* Arguments are a JSON string; some compatibles send an object. Returns
 * malloc'd text or NULL when absent. */
static char *args_text(const cJSON *f)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, "arguments");
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    if (cJSON_IsObject(v)) return qg_json_compact(v);
    return NULL;
}

static void usage_from(const cJSON *u, int64_t *in, int64_t *out, int64_t *cached)
{
    *in = qg_ai_json_int(u, "prompt_tokens", -1);
    *out = qg_ai_json_int(u, "completion_tokens", -1);
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details");
    *cached = qg_ai_json_int(det, "cached_tokens", -1);
}

/* Fills e from an error object ({"message","type","code"}) given the HTTP
 * status (0 inside a stream or a 200 body). */
static void error_from_object(int status, const cJSON *eo, qg_ai_error *e)
{
    const char *msg = qg_ai_json_str(eo, "message");
    const char *type = qg_ai_json_str(eo, "type");
    const cJSON *code_item = cJSON_GetObjectItemCaseSensitive(eo, "code");
    const char *code = cJSON_IsString(code_item) ? code_item->valuestring : NULL;
    int code_num =
        cJSON_IsNumber(code_item) && code_item->valuedouble >= 0 && code_item->valuedouble < 1000
            ? (int)code_item->valuedouble
        : code && isdigit((unsigned char)code[0]) ? atoi(code)
                                                  : 0;
    if ((status < 400) && code_num >= 400 && code_num < 600) status = code_num;
    if (msg) qg_openai_scrub_copy(e->message, sizeof e->message, msg, strlen(msg));
    if (status >= 400) {
        e->kind = qg_ai_errkind_from_status(status);
    } else if (type &&
               (!strcmp(type, "invalid_request_error") || !strcmp(type, "not_found_error"))) {
        e->kind = QG_AI_EBADREQ;
    } else if (type &&
               (!strcmp(type, "authentication_error") || !strcmp(type, "permission_error"))) {
        e->kind = QG_AI_EAUTH;
    } else if (type && (!strcmp(type, "rate_limit_error") || !strcmp(type, "tokens") ||
                        !strcmp(type, "requests"))) {
        e->kind = QG_AI_ERATE;
    } else if (type && strstr(type, "overloaded")) {
        e->kind = QG_AI_EOVERLOADED;
    } else {
        e->kind = QG_AI_ESERVER; /* an error after a 200: the server broke mid-way */
    }
    if (code && !strcmp(code, "context_length_exceeded"))
        e->kind = QG_AI_ECONTEXT;
    else if (code && !strcmp(code, "insufficient_quota"))
        e->kind = QG_AI_EAUTH;
    else if (code && !strcmp(code, "rate_limit_exceeded"))
        e->kind = QG_AI_ERATE;
    else if (msg && e->kind == QG_AI_EBADREQ && strstr(msg, "maximum context length"))
        e->kind = QG_AI_ECONTEXT; /* vLLM and others: a plain 400 with this text */
    if (!e->message[0])
        snprintf(e->message, sizeof e->message, "%s", code ? code : type ? type : "provider error");
}

static void openai_decode_error(int status, const char *retry_after, const char *body, size_t n,
                                qg_ai_error *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = status;
    out->retry_after_ms = qg_ai_parse_retry_after(retry_after);
    out->kind = qg_ai_errkind_from_status(status);
    cJSON *root = body && n ? cJSON_ParseWithLength(body, n) : NULL;
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(eo)) {
        error_from_object(status, eo, out);
    } else if (cJSON_IsString(eo)) { /* some compatibles: {"error": "text"} */
        qg_openai_scrub_copy(out->message, sizeof out->message, eo->valuestring,
                             strlen(eo->valuestring));
    } else if (body && n) {
        qg_openai_scrub_copy(out->message, sizeof out->message, body, n);
    }
    if (!out->message[0]) snprintf(out->message, sizeof out->message, "HTTP %d", status);
    if (out->kind == QG_AI_EBADREQ && strstr(out->message, "maximum context length"))
        out->kind = QG_AI_ECONTEXT;
    cJSON_Delete(root);
}

static qg_status protocol_error(qg_ai_response *out, qg_error *err, const char *why)
{
    out->error.kind = QG_AI_EPROTOCOL;
    out->error.retry_after_ms = -1;
    snprintf(out->error.message, sizeof out->error.message, "openai: %s", why);
    return qg_error_set(err, QG_EINVAL, "openai: %s", why);
}

static qg_status openai_decode(const char *body, size_t n, qg_arena *a, qg_ai_response *out,
                               qg_error *err)
{
    qg_status rc = QG_OK;
    memset(out, 0, sizeof *out);
    out->error.retry_after_ms = -1;
    cJSON *root = cJSON_ParseWithLength(body, n);
    if (!cJSON_IsObject(root)) {
        rc = protocol_error(out, err, "response is not a JSON object");
        goto out;
    }
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(eo)) {
        error_from_object(200, eo, &out->error);
        out->error.http_status = 200;
        rc = qg_error_set(err, QG_EINVAL, "openai: error in a 200 reply: %s", out->error.message);
        goto out;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    if (!cJSON_IsObject(msg)) {
        rc = protocol_error(out, err, "response has no choices[0].message");
        goto out;
    }
    const char *content = qg_ai_json_str(msg, "content");
    out->text = qg_arena_strndup(a, content ? content : "", content ? strlen(content) : 0);
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    int ncalls = cJSON_IsArray(calls) ? cJSON_GetArraySize(calls) : 0;
    if (ncalls > 0) {
        out->tool_calls = qg_arena_alloc(a, sizeof(qg_ai_tool_call) * (size_t)ncalls);
        if (!out->tool_calls) {
            rc = qg_error_set(err, QG_ENOMEM, "openai: out of memory");
            goto out;
        }
        const cJSON *tc;
        cJSON_ArrayForEach(tc, calls)
        {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
            qg_ai_tool_call *c = &out->tool_calls[out->n_tool_calls];
            const char *id = qg_ai_json_str(tc, "id"), *name = qg_ai_json_str(f, "name");
            char *args = args_text(f);
            c->id = id && *id ? qg_arena_strndup(a, id, strlen(id))
                              : qg_arena_sprintf(a, "call_%zu", out->n_tool_calls);
            c->name = qg_arena_strndup(a, name ? name : "", name ? strlen(name) : 0);
            c->arguments = args && *args ? qg_arena_strndup(a, args, strlen(args)) : "{}";
            free(args);
            out->n_tool_calls++;
        }
    }
    const char *fr = norm_finish(qg_ai_json_str(c0, "finish_reason"), out->n_tool_calls > 0);
    out->finish_reason = fr ? fr : out->n_tool_calls ? "tool_calls" : "stop";
    const char *model = qg_ai_json_str(root, "model");
    if (model) out->model = qg_arena_strndup(a, model, strlen(model));
    int64_t in, outt, cached;
    usage_from(cJSON_GetObjectItemCaseSensitive(root, "usage"), &in, &outt, &cached);
    out->usage.input = in > 0 ? in : 0;
    out->usage.output = outt > 0 ? outt : 0;
    out->usage.cached = cached > 0 ? cached : 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- streaming ---- */

static qg_status stream_delta(qg_ai_stream *st, const cJSON *delta)
{
    qg_status rc = QG_OK;
    const char *content = qg_ai_json_str(delta, "content");
    if (content && *content && (rc = qg_ai_stream_text(st, content, strlen(content)))) return rc;
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
    const cJSON *tc;
    int pos = 0;
    cJSON_ArrayForEach(tc, calls)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
        int index = (int)qg_ai_json_int(tc, "index", pos);
        char *args = args_text(f);
        rc = qg_ai_stream_tool(st, index, qg_ai_json_str(tc, "id"), qg_ai_json_str(f, "name"),
                               args ? args : "", args ? strlen(args) : 0);
        free(args);
        if (rc) return rc;
        pos++;
    }
    return QG_OK;
}

static qg_status openai_stream_event(qg_ai_stream *st, const char *event, const char *data,
                                     size_t n, qg_error *err)
{
    qg_status rc = QG_OK;
    if (n == 6 && !memcmp(data, "[DONE]", 6)) {
        st->done = true;
        return QG_OK;
    }
    cJSON *root = cJSON_ParseWithLength(data, n);
    if (!cJSON_IsObject(root)) {
        rc = qg_error_set(err, QG_EINVAL, "openai stream: event is not a JSON object");
        goto out;
    }
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(eo)) {
        error_from_object(0, eo, &st->error);
        goto out;
    }
    const char *model = qg_ai_json_str(root, "model");
    if (model) qg_ai_stream_set_model(st, model, strlen(model));
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    if (c0) {
        rc = stream_delta(st, cJSON_GetObjectItemCaseSensitive(c0, "delta"));
        if (rc) {
            qg_error_set(err, rc, "openai stream: delta over the size or tool-call caps");
            goto out;
        }
        const char *fr = norm_finish(qg_ai_json_str(c0, "finish_reason"), st->ncalls > 0);
        if (fr) qg_ai_stream_set_finish(st, fr);
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(u)) {
        int64_t in, outt, cached;
        usage_from(u, &in, &outt, &cached);
        qg_ai_stream_usage(st, in, outt, cached);
    }
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- embeddings: POST <base>/embeddings ---- */

static qg_status openai_encode_embed(const qg_ai_deployment *d, const char *api_key,
                                     const char *const *inputs, size_t n, qg_arena *a,
                                     qg_ai_http_req *out, qg_error *err)
{
    qg_status rc = QG_OK;
    bool azure = d->api_version[0] != 0;
    memset(out, 0, sizeof *out);
    qg_buf_init(&out->body, BODY_MAX_BYTES);
    if (!d->model[0]) {
        rc = qg_error_set(err, QG_EINVAL, "deployment %s: model is empty", d->id);
        goto out;
    }
    if (api_key && qg_ai_has_ctl(api_key)) {
        rc = qg_error_set(err, QG_EINVAL, "deployment %s: api key contains control characters",
                          d->id);
        goto out;
    }
    if (azure && !d->base_url[0]) {
        rc = qg_error_set(err, QG_EINVAL,
                          "deployment %s: base_url: Azure OpenAI (api_version set) needs the "
                          "resource URL (https://<resource>.openai.azure.com)",
                          d->id);
        goto out;
    }
    const char *base =
        trim_base(a, d->base_url[0] ? d->base_url : qg_ai_provider_default_url("openai"));
    if (azure) {
        size_t bl = strlen(base);
        const char *sep = bl >= 7 && !strcmp(base + bl - 7, "/openai") ? "" : "/openai";
        out->url = qg_arena_sprintf(a, "%s%s/deployments/%s/embeddings?api-version=%s", base, sep,
                                    url_escape(a, d->model), url_escape(a, d->api_version));
    } else {
        out->url = qg_arena_sprintf(a, "%s/embeddings", base);
    }
    out->method = "POST";
    out->headers[out->nheaders++] = "Content-Type: application/json";
    out->headers[out->nheaders++] = "Accept: application/json";
    if (api_key && *api_key)
        out->headers[out->nheaders++] =
            azure ? qg_arena_sprintf(a, "api-key: %s", api_key)
                  : qg_arena_sprintf(a, "Authorization: Bearer %s", api_key);
    rc = qg_ai_embed_input_body("openai", d->model, inputs, n, &out->body, err);
out:
    if (rc) qg_buf_free(&out->body);
    return rc;
}

static qg_status embed_protocol_error(qg_ai_embed_reply *out, qg_error *err, const char *why)
{
    out->error.kind = QG_AI_EPROTOCOL;
    out->error.retry_after_ms = -1;
    snprintf(out->error.message, sizeof out->error.message, "openai: %s", why);
    return qg_error_set(err, QG_EINVAL, "openai: %s", why);
}

/* {"data":[{"index":i,"embedding":[...]}...],"usage":{"prompt_tokens":n}};
 * placed by "index" (the order of data when it is absent). An error object
 * in a 200 body (OpenRouter) is an error, as for chat. */
static qg_status openai_decode_embed(const char *body, size_t n, qg_arena *a,
                                     qg_ai_embed_reply *out, qg_error *err)
{
    qg_status rc = QG_OK;
    memset(out, 0, sizeof *out);
    out->error.retry_after_ms = -1;
    out->usage.input = -1;
    cJSON *root = cJSON_ParseWithLength(body, n);
    if (!cJSON_IsObject(root)) {
        rc = embed_protocol_error(out, err, "embeddings reply is not a JSON object");
        goto out;
    }
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(eo)) {
        error_from_object(0, eo, &out->error);
        rc = qg_error_set(err, QG_EINVAL, "openai: %s", out->error.message);
        goto out;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsArray(data)) {
        rc = embed_protocol_error(out, err, "embeddings reply has no data array");
        goto out;
    }
    int count = cJSON_GetArraySize(data);
    const cJSON **vecs = count > 0 ? qg_arena_alloc(a, sizeof *vecs * (size_t)count) : NULL;
    if (count > 0 && !vecs) {
        rc = qg_error_set(err, QG_ENOMEM, "openai: out of memory decoding embeddings");
        goto out;
    }
    if (count > 0) memset(vecs, 0, sizeof *vecs * (size_t)count);
    int pos = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, data)
    {
        int64_t idx = qg_ai_json_int(item, "index", pos);
        if (idx < 0 || idx >= count || vecs[idx]) {
            rc = embed_protocol_error(out, err,
                                      "embeddings reply: data index out of range or "
                                      "repeated");
            goto out;
        }
        vecs[idx] = cJSON_GetObjectItemCaseSensitive(item, "embedding");
        pos++;
    }
    rc = qg_ai_embed_take(out, a, vecs, (size_t)count, "openai", err);
    if (rc) goto out;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    out->usage.input = qg_ai_json_int(u, "prompt_tokens", -1);
    if (out->usage.input < 0) out->usage.input = qg_ai_json_int(u, "total_tokens", -1);
out:
    cJSON_Delete(root);
    return rc;
}

const qg_ai_provider qg_ai_provider_openai = {
    .name = "openai",
    .framing = QG_AI_FRAMING_SSE,
    .encode = openai_encode,
    .decode = openai_decode,
    .stream_event = openai_stream_event,
    .decode_error = openai_decode_error,
    .complete = NULL,
    .encode_embed = openai_encode_embed,
    .decode_embed = openai_decode_embed,
};
