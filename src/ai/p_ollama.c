/*
 * p_ollama.c - Ollama's native chat API: POST <base>/api/chat.
 *
 * Differences from the OpenAI format that shape this file: the system prompt
 * is an ordinary message; tool-call arguments are JSON objects, not strings
 * (they are parsed on the way out and printed on the way in); tool calls
 * have no ids (made up as "call_<index>") and tool results name their tool
 * ("tool_name") instead of a call id; JSON mode is "format": "json";
 * max_tokens and temperature live in "options" (num_predict, temperature);
 * Ollama streams by default, so "stream" is always sent. There is no
 * tool_choice: "none" is honoured by not sending the tools, the others
 * cannot be enforced.
 *
 * Streams are newline-delimited JSON: each line has message.content (and
 * whole tool calls, never fragments); the last line has "done": true,
 * done_reason and the token counts (prompt_eval_count, eval_count). Errors
 * are {"error": "text"}, with the HTTP status (404: model not pulled) or as
 * a line inside a stream.
 */
#include "ai/openai_compat.h"

#include <quantgate/json.h>
#include "ai/provider.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX_BYTES ((size_t)32 << 20)

/* ---- encoding ---- */

/* OLLAMA_HOST is often "host:port" without a scheme; "/api" at the end is
 * tolerated because people paste the API root. */
static const char *base_url(const qg_ai_deployment *d, qg_arena *a)
{
    const char *b = d->base_url[0] ? d->base_url : qg_ai_provider_default_url("ollama");
    size_t n = strlen(b);
    while (n && b[n - 1] == '/') n--;
    if (n >= 4 && !memcmp(b + n - 4, "/api", 4)) n -= 4;
    while (n && b[n - 1] == '/') n--;
    bool scheme = strstr(b, "://") != NULL;
    return qg_arena_sprintf(a, "%s%.*s", scheme ? "" : "http://", (int)n, b);
}

/* The tool a result answers, when the message does not say: the assistant
 * call with its id. */
static const char *tool_name_for(const qg_ai_request *req, size_t upto, const char *id)
{
    for (size_t k = upto; id && k-- > 0;) {
        const qg_ai_msg *m = &req->messages[k];
        for (size_t j = 0; j < m->n_tool_calls; j++)
            if (m->tool_calls[j].id && !strcmp(m->tool_calls[j].id, id))
                return m->tool_calls[j].name;
    }
    return NULL;
}

static qg_status message_json(const qg_ai_request *req, size_t i, cJSON *msgs, qg_error *err)
{
    const qg_ai_msg *m = &req->messages[i];
    cJSON *o = cJSON_CreateObject();
    if (!o) return QG_ENOMEM;
    cJSON_AddItemToArray(msgs, o);
    cJSON_AddStringToObject(o, "role", qg_ai_role_name(m->role));
    cJSON_AddStringToObject(o, "content", m->content ? m->content : "");
    if (m->role == QG_AI_ROLE_ASSISTANT && m->n_tool_calls) {
        cJSON *arr = cJSON_AddArrayToObject(o, "tool_calls");
        for (size_t j = 0; j < m->n_tool_calls; j++) {
            const qg_ai_tool_call *c = &m->tool_calls[j];
            const char *at = c->arguments && *c->arguments ? c->arguments : "{}";
            cJSON *args = cJSON_Parse(at);
            if (!cJSON_IsObject(args)) {
                cJSON_Delete(args);
                return qg_error_set(err, QG_EINVAL,
                                    "messages[%zu].tool_calls[%zu].arguments: not a JSON object "
                                    "(Ollama needs one)",
                                    i, j);
            }
            cJSON *t = cJSON_CreateObject(), *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "name", c->name ? c->name : "");
            cJSON_AddItemToObject(f, "arguments", args);
            cJSON_AddItemToObject(t, "function", f);
            cJSON_AddItemToArray(arr, t);
        }
    }
    if (m->role == QG_AI_ROLE_TOOL) {
        const char *name = m->tool_name ? m->tool_name : tool_name_for(req, i, m->tool_call_id);
        if (name) cJSON_AddStringToObject(o, "tool_name", name);
    }
    return QG_OK;
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
        cJSON_AddStringToObject(f, "description", t->description ? t->description : "");
        cJSON_AddItemToObject(f, "parameters", params);
        cJSON_AddItemToObject(o, "function", f);
        cJSON_AddItemToArray(arr, o);
    }
    return QG_OK;
}

static qg_status request_json(const qg_ai_deployment *d, const qg_ai_request *req,
                              cJSON **out /* OUT */, qg_error *err)
{
    qg_status rc;
    cJSON *root = *out = cJSON_CreateObject();
    if (!root) return qg_error_set(err, QG_ENOMEM, "ollama: out of memory encoding the request");
    cJSON_AddStringToObject(root, "model", d->model);
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    if (req->system && *req->system) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "role", "system");
        cJSON_AddStringToObject(s, "content", req->system);
        cJSON_AddItemToArray(msgs, s);
    }
    for (size_t i = 0; i < req->n_messages; i++)
        if ((rc = message_json(req, i, msgs, err))) return rc;
    bool no_tools = req->tool_choice && !strcmp(req->tool_choice, "none");
    if (req->n_tools && !no_tools && (rc = tools_json(root, req, err))) return rc;
    if (req->json_mode) cJSON_AddStringToObject(root, "format", "json");
    if (req->max_tokens > 0 || req->temperature >= 0) {
        cJSON *opt = cJSON_AddObjectToObject(root, "options");
        if (req->max_tokens > 0) cJSON_AddNumberToObject(opt, "num_predict", req->max_tokens);
        if (req->temperature >= 0) cJSON_AddNumberToObject(opt, "temperature", req->temperature);
    }
    cJSON_AddBoolToObject(root, "stream", req->stream);
    return QG_OK;
}

static qg_status ollama_encode(const qg_ai_deployment *d, const char *api_key,
                               const qg_ai_request *req, qg_arena *a, qg_ai_http_req *out,
                               qg_error *err)
{
    qg_status rc = QG_OK;
    cJSON *root = NULL;
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
    out->method = "POST";
    out->url = qg_arena_sprintf(a, "%s/api/chat", base_url(d, a));
    out->headers[out->nheaders++] = "Content-Type: application/json";
    out->headers[out->nheaders++] =
        req->stream ? "Accept: application/x-ndjson" : "Accept: application/json";
    /* Ollama itself has no keys; a proxy in front of it (or ollama.com) may */
    if (api_key && *api_key)
        out->headers[out->nheaders++] = qg_arena_sprintf(a, "Authorization: Bearer %s", api_key);
    if ((rc = request_json(d, req, &root, err))) goto out;
    rc = qg_ai_body_from_json(out->url ? root : NULL, "ollama", &out->body, err);
out:
    cJSON_Delete(root);
    if (rc) qg_buf_free(&out->body);
    return rc;
}

/* ---- decoding ---- */

/* done_reason: "stop", "length", or "load"/"unload" for model management. */
static const char *norm_finish(const char *r, bool has_calls)
{
    if (r && !strcmp(r, "length")) return "length";
    return has_calls ? "tool_calls" : "stop";
}

static void classify(int status, const char *msg, qg_ai_error *e)
{
    e->kind = status >= 400 ? qg_ai_errkind_from_status(status) : QG_AI_ESERVER;
    if (msg) {
        qg_openai_scrub_copy(e->message, sizeof e->message, msg, strlen(msg));
        if (strstr(msg, "context length") || strstr(msg, "context window"))
            if (e->kind == QG_AI_EBADREQ || e->kind == QG_AI_ESERVER) e->kind = QG_AI_ECONTEXT;
    }
}

static void ollama_decode_error(int status, const char *retry_after, const char *body, size_t n,
                                qg_ai_error *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = status;
    out->retry_after_ms = qg_ai_parse_retry_after(retry_after);
    cJSON *root = body && n ? cJSON_ParseWithLength(body, n) : NULL;
    const char *msg = qg_ai_json_str(root, "error");
    classify(status, msg, out);
    if (!msg && body && n) qg_openai_scrub_copy(out->message, sizeof out->message, body, n);
    if (!out->message[0]) snprintf(out->message, sizeof out->message, "HTTP %d", status);
    cJSON_Delete(root);
}

/* Each call in a message: its arguments object printed; id "call_<index>"
 * unless the server gave one. Reports through the stream helpers so the
 * streamed and whole paths share it. */
static qg_status add_calls(qg_ai_stream *st, const cJSON *calls)
{
    const cJSON *tc;
    cJSON_ArrayForEach(tc, calls)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
        int index = st->ncalls;
        char idbuf[32];
        const char *id = qg_ai_json_str(tc, "id");
        if (!id || !*id) {
            snprintf(idbuf, sizeof idbuf, "call_%d", index);
            id = idbuf;
        }
        char *text = cJSON_IsObject(args)   ? qg_json_compact(args)
                     : cJSON_IsString(args) ? strdup(args->valuestring)
                                            : NULL;
        const char *name = qg_ai_json_str(f, "name");
        qg_status rc = qg_ai_stream_tool(st, index, id, name ? name : "", text ? text : "",
                                         text ? strlen(text) : 0);
        free(text);
        if (rc) return rc;
    }
    return QG_OK;
}

/* One chat object (a whole reply, or one NDJSON line). */
static qg_status take_chunk(qg_ai_stream *st, const cJSON *root)
{
    qg_status rc;
    const char *model = qg_ai_json_str(root, "model");
    if (model) qg_ai_stream_set_model(st, model, strlen(model));
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
    const char *content = qg_ai_json_str(msg, "content");
    if (content && *content && (rc = qg_ai_stream_text(st, content, strlen(content)))) return rc;
    if ((rc = add_calls(st, cJSON_GetObjectItemCaseSensitive(msg, "tool_calls")))) return rc;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "done"))) {
        qg_ai_stream_set_finish(st,
                                norm_finish(qg_ai_json_str(root, "done_reason"), st->ncalls > 0));
        qg_ai_stream_usage(st, qg_ai_json_int(root, "prompt_eval_count", -1),
                           qg_ai_json_int(root, "eval_count", -1), -1);
        st->done = true;
    }
    return QG_OK;
}

static qg_status ollama_decode(const char *body, size_t n, qg_arena *a, qg_ai_response *out,
                               qg_error *err)
{
    qg_status rc = QG_OK;
    qg_ai_stream st;
    memset(out, 0, sizeof *out);
    out->error.retry_after_ms = -1;
    cJSON *root = cJSON_ParseWithLength(body, n);
    const char *emsg = qg_ai_json_str(root, "error");
    if (!cJSON_IsObject(root) ||
        (!emsg && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "message")))) {
        out->error.kind = QG_AI_EPROTOCOL;
        snprintf(out->error.message, sizeof out->error.message,
                 "ollama: response is not a chat object");
        rc = qg_error_set(err, QG_EINVAL, "ollama: response is not a chat object");
        goto out;
    }
    if (emsg) {
        classify(200, emsg, &out->error);
        out->error.http_status = 200;
        rc = qg_error_set(err, QG_EINVAL, "ollama: error in a 200 reply: %s", out->error.message);
        goto out;
    }
    qg_ai_stream_init(&st, a, NULL, NULL);
    rc = take_chunk(&st, root);
    if (!st.finish_reason) /* "done" missing: still a whole reply */
        qg_ai_stream_set_finish(&st,
                                norm_finish(qg_ai_json_str(root, "done_reason"), st.ncalls > 0));
    qg_ai_stream_finish(&st, out);
    if (rc) qg_error_set(err, rc, "ollama: reply over the size or tool-call caps");
out:
    cJSON_Delete(root);
    return rc;
}

static qg_status ollama_stream_event(qg_ai_stream *st, const char *event, const char *data,
                                     size_t n, qg_error *err)
{
    qg_status rc = QG_OK;
    cJSON *root = cJSON_ParseWithLength(data, n);
    if (!cJSON_IsObject(root)) {
        rc = qg_error_set(err, QG_EINVAL, "ollama stream: line is not a JSON object");
        goto out;
    }
    const char *emsg = qg_ai_json_str(root, "error");
    if (emsg) {
        classify(0, emsg, &st->error);
        goto out;
    }
    if ((rc = take_chunk(st, root)))
        qg_error_set(err, rc, "ollama stream: chunk over the size or tool-call caps");
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- embeddings: POST <base>/api/embed ----
 *
 * {"model","input":[...]} -> {"embeddings":[[...],...],"prompt_eval_count":n}
 * in input order (the newer endpoint; the older /api/embeddings takes one
 * "prompt" and returns no count). An {"error": "..."} in a 200 body is an
 * error, as for chat. */

static qg_status ollama_encode_embed(const qg_ai_deployment *d, const char *api_key,
                                     const char *const *inputs, size_t n, qg_arena *a,
                                     qg_ai_http_req *out, qg_error *err)
{
    qg_status rc = QG_OK;
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
    out->method = "POST";
    out->url = qg_arena_sprintf(a, "%s/api/embed", base_url(d, a));
    out->headers[out->nheaders++] = "Content-Type: application/json";
    out->headers[out->nheaders++] = "Accept: application/json";
    if (api_key && *api_key)
        out->headers[out->nheaders++] = qg_arena_sprintf(a, "Authorization: Bearer %s", api_key);
    if (!out->url) {
        rc = qg_error_set(err, QG_ENOMEM, "ollama: out of memory encoding the request");
        goto out;
    }
    rc = qg_ai_embed_input_body("ollama", d->model, inputs, n, &out->body, err);
out:
    if (rc) qg_buf_free(&out->body);
    return rc;
}

static qg_status ollama_decode_embed(const char *body, size_t n, qg_arena *a,
                                     qg_ai_embed_reply *out, qg_error *err)
{
    qg_status rc = QG_OK;
    memset(out, 0, sizeof *out);
    out->error.retry_after_ms = -1;
    out->usage.input = -1;
    cJSON *root = cJSON_ParseWithLength(body, n);
    const char *emsg = qg_ai_json_str(root, "error");
    const cJSON *many = cJSON_GetObjectItemCaseSensitive(root, "embeddings");
    if (emsg) {
        classify(0, emsg, &out->error);
        rc = qg_error_set(err, QG_EINVAL, "ollama: %s", out->error.message);
        goto out;
    }
    if (!cJSON_IsArray(many)) {
        out->error.kind = QG_AI_EPROTOCOL;
        snprintf(out->error.message, sizeof out->error.message,
                 "ollama: embeddings reply has no embeddings array");
        rc = qg_error_set(err, QG_EINVAL, "%s", out->error.message);
        goto out;
    }
    int count = cJSON_GetArraySize(many);
    const cJSON **vecs = count > 0 ? qg_arena_alloc(a, sizeof *vecs * (size_t)count) : NULL;
    if (count > 0 && !vecs) {
        rc = qg_error_set(err, QG_ENOMEM, "ollama: out of memory decoding embeddings");
        goto out;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, many) vecs[i++] = e;
    if ((rc = qg_ai_embed_take(out, a, vecs, (size_t)count, "ollama", err))) goto out;
    out->usage.input = qg_ai_json_int(root, "prompt_eval_count", -1);
out:
    cJSON_Delete(root);
    return rc;
}

const qg_ai_provider qg_ai_provider_ollama = {
    .name = "ollama",
    .framing = QG_AI_FRAMING_NDJSON,
    .encode = ollama_encode,
    .decode = ollama_decode,
    .stream_event = ollama_stream_event,
    .decode_error = ollama_decode_error,
    .complete = NULL,
    .encode_embed = ollama_encode_embed,
    .decode_embed = ollama_decode_embed,
};
