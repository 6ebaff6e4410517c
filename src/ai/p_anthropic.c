/*
 * p_anthropic.c - the Anthropic Messages API (POST <base>/v1/messages).
 *
 * Encoding: the system prompt is the top-level "system" field; messages are
 * content blocks. An assistant turn's tool calls become "tool_use" blocks
 * whose "input" is the arguments text parsed back into an object, and tool
 * results become "tool_result" blocks inside a user message. Anthropic wants
 * user and assistant turns to alternate, so consecutive messages that map to
 * the same role (several tool results, a tool result then user text) are
 * merged into one message, tool results first. "max_tokens" is required by
 * the API: 4096 when the request leaves it at 0. Anthropic has no JSON
 * output mode; json_mode adds nothing on the wire and relies on the prompt.
 *
 * Decoding: "text" blocks concatenate into the answer and "tool_use" blocks
 * become tool calls (input serialised back to text). A stream is a sequence
 * of SSE events (message_start, content_block_start/delta/stop,
 * message_delta, message_stop, ping, error); content block indices count
 * text blocks too, so each tool_use block is mapped to the next tool call
 * index in st->pscratch (block index -> tool index + 1) with st->pstate
 * counting the tool calls seen.
 *
 * Usage: input counts every prompt token, so cache reads and cache writes
 * (reported apart from input_tokens by Anthropic) are added to it; cached is
 * the cache reads.
 */
#include "ai/provider.h"

#include <quantgate/json.h>

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ANTHROPIC_VERSION  "2023-06-01"
#define DEFAULT_MAX_TOKENS 4096
#define BODY_MAX_BYTES     ((size_t)32 << 20) /* the Messages API's request cap */

/* ---- small helpers ---- */

static void set_msg(qg_ai_error *e, const char *s)
{
    snprintf(e->message, sizeof e->message, "%s", s ? s : "");
}

static const char *finish_of(const char *stop_reason)
{
    if (!stop_reason) return NULL;
    if (!strcmp(stop_reason, "max_tokens")) return "length";
    if (!strcmp(stop_reason, "tool_use")) return "tool_calls";
    if (!strcmp(stop_reason, "refusal")) return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

/* Anthropic's error "type" refined by the message; status is the fallback. */
static qg_ai_errkind kind_of(const char *type, const char *msg, int http_status)
{
    if (type) {
        if (!strcmp(type, "authentication_error") || !strcmp(type, "permission_error") ||
            !strcmp(type, "billing_error"))
            return QG_AI_EAUTH;
        if (!strcmp(type, "rate_limit_error")) return QG_AI_ERATE;
        if (!strcmp(type, "overloaded_error")) return QG_AI_EOVERLOADED;
        if (!strcmp(type, "request_too_large")) return QG_AI_ECONTEXT;
        if (!strcmp(type, "timeout_error")) return QG_AI_ETIMEOUT;
        if (!strcmp(type, "api_error")) return QG_AI_ESERVER;
        if (!strcmp(type, "invalid_request_error") || !strcmp(type, "not_found_error")) {
            if (msg && (strcasestr(msg, "prompt is too long") ||
                        strcasestr(msg, "context window") || strcasestr(msg, "context length")))
                return QG_AI_ECONTEXT;
            return QG_AI_EBADREQ;
        }
    }
    return http_status ? qg_ai_errkind_from_status(http_status) : QG_AI_ESERVER;
}

/* Fills e from an Anthropic error object {"type":"error","error":{...}}. */
static bool error_from_json(const cJSON *root, int http_status, qg_ai_error *e)
{
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (!cJSON_IsObject(eo)) return false;
    const char *type = qg_ai_json_str(eo, "type");
    const char *msg = qg_ai_json_str(eo, "message");
    e->kind = kind_of(type, msg, http_status);
    if (msg && type)
        snprintf(e->message, sizeof e->message, "%s: %s", type, msg);
    else
        set_msg(e, msg ? msg : type ? type : "error without a message");
    return true;
}

/* ---- encode ---- */

/* The message being built, so messages mapping to the same role merge. */
typedef struct {
    cJSON *arr;     /* "messages" */
    cJSON *content; /* blocks of the last message */
    const char *role;
} msg_builder;

static cJSON *blocks_for(msg_builder *b, const char *role)
{
    if (b->content && !strcmp(b->role, role)) return b->content;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    b->content = cJSON_AddArrayToObject(m, "content");
    b->role = role;
    cJSON_AddItemToArray(b->arr, m);
    return b->content;
}

static void add_text_block(cJSON *blocks, const char *text)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "text");
    cJSON_AddStringToObject(t, "text", text);
    cJSON_AddItemToArray(blocks, t);
}

static qg_status encode_message(msg_builder *b, size_t i, const qg_ai_msg *m, qg_error *err)
{
    bool has_text = m->content && *m->content;
    switch (m->role) {
    case QG_AI_ROLE_SYSTEM: /* folded into "system" by the caller */
        return QG_OK;
    case QG_AI_ROLE_USER:
        /* Anthropic rejects empty text blocks; an empty user turn still
         * needs some content to keep the roles alternating. */
        add_text_block(blocks_for(b, "user"), has_text ? m->content : " ");
        return QG_OK;
    case QG_AI_ROLE_TOOL: {
        if (!m->tool_call_id || !*m->tool_call_id)
            return qg_error_set(err, QG_EINVAL,
                                "messages[%zu].tool_call_id: required for a tool result", i);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "type", "tool_result");
        cJSON_AddStringToObject(r, "tool_use_id", m->tool_call_id);
        cJSON_AddStringToObject(r, "content", m->content ? m->content : "");
        cJSON_AddItemToArray(blocks_for(b, "user"), r);
        return QG_OK;
    }
    case QG_AI_ROLE_ASSISTANT: {
        if (!has_text && m->n_tool_calls == 0) return QG_OK; /* nothing to say */
        cJSON *blocks = blocks_for(b, "assistant");
        if (has_text) add_text_block(blocks, m->content);
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            const qg_ai_tool_call *c = &m->tool_calls[k];
            if (!c->id || !*c->id || !c->name || !*c->name)
                return qg_error_set(err, QG_EINVAL,
                                    "messages[%zu].tool_calls[%zu]: id and name are required", i,
                                    k);
            const char *args = c->arguments && *c->arguments ? c->arguments : "{}";
            cJSON *input = cJSON_Parse(args);
            if (!cJSON_IsObject(input)) {
                cJSON_Delete(input);
                return qg_error_set(err, QG_EINVAL,
                                    "messages[%zu].tool_calls[%zu].arguments: not a JSON object", i,
                                    k);
            }
            cJSON *u = cJSON_CreateObject();
            cJSON_AddStringToObject(u, "type", "tool_use");
            cJSON_AddStringToObject(u, "id", c->id);
            cJSON_AddStringToObject(u, "name", c->name);
            cJSON_AddItemToObject(u, "input", input);
            cJSON_AddItemToArray(blocks, u);
        }
        return QG_OK;
    }
    }
    return qg_error_set(err, QG_EINVAL, "messages[%zu].role: unknown role %d", i, (int)m->role);
}

static qg_status encode_tools(cJSON *root, const qg_ai_request *req, qg_error *err)
{
    const char *choice = req->tool_choice;
    cJSON *tools = cJSON_AddArrayToObject(root, "tools");
    bool choice_found = false;
    for (size_t i = 0; i < req->n_tools; i++) {
        const qg_ai_tool *t = &req->tools[i];
        if (!t->name || !*t->name)
            return qg_error_set(err, QG_EINVAL, "tools[%zu].name: required", i);
        cJSON *schema = t->parameters && *t->parameters ? cJSON_Parse(t->parameters)
                                                        : cJSON_Parse("{\"type\":\"object\"}");
        if (!cJSON_IsObject(schema)) {
            cJSON_Delete(schema);
            return qg_error_set(err, QG_EINVAL, "tools[%zu].parameters: not a JSON object", i);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        if (t->description && *t->description)
            cJSON_AddStringToObject(o, "description", t->description);
        cJSON_AddItemToObject(o, "input_schema", schema);
        cJSON_AddItemToArray(tools, o);
        if (choice && !strcmp(choice, t->name)) choice_found = true;
    }
    if (!choice || !*choice || !strcmp(choice, "auto")) return QG_OK; /* Anthropic's default */
    cJSON *tc = cJSON_AddObjectToObject(root, "tool_choice");
    if (!strcmp(choice, "none")) {
        cJSON_AddStringToObject(tc, "type", "none");
    } else if (!strcmp(choice, "required")) {
        cJSON_AddStringToObject(tc, "type", "any");
    } else {
        if (!choice_found)
            return qg_error_set(err, QG_EINVAL, "tool_choice: '%.64s' is not one of the tools",
                                choice);
        cJSON_AddStringToObject(tc, "type", "tool");
        cJSON_AddStringToObject(tc, "name", choice);
    }
    return QG_OK;
}

static qg_status build_body(const qg_ai_deployment *d, const qg_ai_request *req, cJSON *root,
                            qg_arena *a, qg_error *err)
{
    cJSON_AddStringToObject(root, "model", d->model);
    cJSON_AddNumberToObject(root, "max_tokens",
                            req->max_tokens > 0 ? req->max_tokens : DEFAULT_MAX_TOKENS);

    /* System text: the request's, then any stray system messages. */
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
    if (!rc && sys.len) cJSON_AddStringToObject(root, "system", sys.data);
    qg_buf_free(&sys);
    if (rc) return qg_error_set(err, rc, "system: prompt too large");

    msg_builder b = {.arr = cJSON_AddArrayToObject(root, "messages")};
    for (size_t i = 0; i < req->n_messages; i++) {
        rc = encode_message(&b, i, &req->messages[i], err);
        if (rc) return rc;
    }
    if (cJSON_GetArraySize(b.arr) == 0)
        return qg_error_set(err, QG_EINVAL, "messages: at least one user message is required");

    if (req->n_tools > 0) {
        rc = encode_tools(root, req, err);
        if (rc) return rc;
    }
    if (req->temperature >= 0) cJSON_AddNumberToObject(root, "temperature", req->temperature);
    if (req->stream) cJSON_AddTrueToObject(root, "stream");
    (void)a;
    return QG_OK;
}

static qg_status anthropic_encode(const qg_ai_deployment *d, const char *api_key,
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
        rc = qg_error_set(err, QG_EINVAL, "deployment %s: API key contains a control character",
                          d->id);
        goto out;
    }
    const char *base = d->base_url[0] ? d->base_url : qg_ai_provider_default_url("anthropic");
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    /* A base URL that already names the version ("https://host/v1") works too. */
    bool has_v1 = bl >= 3 && !memcmp(base + bl - 3, "/v1", 3);
    out->method = "POST";
    out->url = qg_arena_sprintf(a, "%.*s%s/messages", (int)bl, base, has_v1 ? "" : "/v1");
    out->headers[out->nheaders++] = "Content-Type: application/json";
    out->headers[out->nheaders++] = "anthropic-version: " ANTHROPIC_VERSION;
    out->headers[out->nheaders++] =
        req->stream ? "Accept: text/event-stream" : "Accept: application/json";
    if (api_key && *api_key)
        out->headers[out->nheaders++] = qg_arena_sprintf(a, "x-api-key: %s", api_key);
    if (!out->url || !out->headers[out->nheaders - 1]) {
        rc = qg_error_set(err, QG_ENOMEM, "anthropic: out of memory building the request");
        goto out;
    }

    root = cJSON_CreateObject();
    if (!root) {
        rc = qg_error_set(err, QG_ENOMEM, "anthropic: out of memory building the request");
        goto out;
    }
    rc = build_body(d, req, root, a, err);
    if (rc) goto out;
    rc = qg_ai_body_from_json(root, "anthropic", &out->body, err);
out:
    cJSON_Delete(root);
    if (rc) qg_buf_free(&out->body);
    return rc;
}

/* ---- decode ---- */

/* Usage from an Anthropic usage object; cache reads and writes are prompt
 * tokens billed apart from input_tokens. */
static void apply_usage(qg_ai_stream *st, const cJSON *u)
{
    if (!cJSON_IsObject(u)) return;
    int64_t in = qg_ai_json_int(u, "input_tokens", -1);
    int64_t rd = qg_ai_json_int(u, "cache_read_input_tokens", -1);
    int64_t wr = qg_ai_json_int(u, "cache_creation_input_tokens", -1);
    int64_t total = -1;
    if (in >= 0 || rd >= 0 || wr >= 0)
        total = (in > 0 ? in : 0) + (rd > 0 ? rd : 0) + (wr > 0 ? wr : 0);
    qg_ai_stream_usage(st, total, qg_ai_json_int(u, "output_tokens", -1), rd);
}

static qg_status protocol_error(qg_ai_response *out, qg_error *err, const char *what)
{
    out->error.kind = QG_AI_EPROTOCOL;
    out->error.retry_after_ms = -1;
    set_msg(&out->error, what);
    return qg_error_set(err, QG_EINVAL, "anthropic: %s", what);
}

/* A tool_use input object as arguments text. */
static qg_status tool_input(qg_ai_stream *st, int idx, const cJSON *block)
{
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(block, "input");
    char *args = NULL;
    if (cJSON_IsObject(input) && input->child) args = qg_json_compact(input);
    qg_status rc = qg_ai_stream_tool(st, idx, qg_ai_json_str(block, "id"),
                                     qg_ai_json_str(block, "name"), args, args ? strlen(args) : 0);
    free(args);
    return rc;
}

static qg_status anthropic_decode(const char *body, size_t n, qg_arena *a, qg_ai_response *out,
                                  qg_error *err)
{
    memset(out, 0, sizeof *out);
    out->error.retry_after_ms = -1;
    cJSON *root = cJSON_ParseWithLength(body, n);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return protocol_error(out, err, "reply is not a JSON object");
    }
    if (error_from_json(root, 0, &out->error)) {
        cJSON_Delete(root);
        out->text = "";
        return qg_error_set(err, QG_EINVAL, "anthropic: error in a 2xx reply: %s",
                            out->error.message);
    }
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    if (!cJSON_IsArray(content)) {
        cJSON_Delete(root);
        return protocol_error(out, err, "reply has no content array");
    }
    qg_ai_stream st;
    qg_ai_stream_init(&st, a, NULL, NULL);
    qg_status rc = QG_OK;
    int ntools = 0;
    const cJSON *blk;
    cJSON_ArrayForEach(blk, content)
    {
        const char *type = qg_ai_json_str(blk, "type");
        if (!type) continue;
        if (!strcmp(type, "text")) {
            const char *t = qg_ai_json_str(blk, "text");
            if (t) rc = qg_ai_stream_text(&st, t, strlen(t));
        } else if (!strcmp(type, "tool_use")) {
            rc = tool_input(&st, ntools++, blk);
            /* an empty input still yields "{}" through stream_finish */
        }
        if (rc) break;
    }
    apply_usage(&st, cJSON_GetObjectItemCaseSensitive(root, "usage"));
    const char *model = qg_ai_json_str(root, "model");
    if (model) qg_ai_stream_set_model(&st, model, strlen(model));
    qg_ai_stream_set_finish(&st, finish_of(qg_ai_json_str(root, "stop_reason")));
    qg_ai_stream_finish(&st, out);
    cJSON_Delete(root);
    if (rc) {
        out->error.kind = QG_AI_EPROTOCOL;
        set_msg(&out->error, "reply too large");
        return qg_error_set(err, rc, "anthropic: reply too large (%s)", qg_status_name(rc));
    }
    return QG_OK;
}

/* ---- stream ---- */

static qg_status block_start(qg_ai_stream *st, const cJSON *ev, qg_error *err)
{
    int64_t idx = qg_ai_json_int(ev, "index", -1);
    const cJSON *blk = cJSON_GetObjectItemCaseSensitive(ev, "content_block");
    const char *type = qg_ai_json_str(blk, "type");
    if (!type)
        return qg_error_set(err, QG_EINVAL,
                            "anthropic stream: content_block_start without a block");
    if (!strcmp(type, "text")) {
        const char *t = qg_ai_json_str(blk, "text");
        return t ? qg_ai_stream_text(st, t, strlen(t)) : QG_OK;
    }
    if (strcmp(type, "tool_use")) return QG_OK; /* thinking and other blocks are not answer text */
    if (idx < 0 || idx >= (int64_t)sizeof st->pscratch)
        return qg_error_set(err, QG_ERANGE, "anthropic stream: content block index %lld over %zu",
                            (long long)idx, sizeof st->pscratch - 1);
    if (st->pstate >= QG_AI_MAX_TOOL_CALLS)
        return qg_error_set(err, QG_ERANGE, "anthropic stream: more than %d tool calls",
                            QG_AI_MAX_TOOL_CALLS);
    int tool = st->pstate++;
    st->pscratch[idx] = (char)(tool + 1);
    return tool_input(st, tool, blk);
}

static qg_status block_delta(qg_ai_stream *st, const cJSON *ev, qg_error *err)
{
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ev, "delta");
    const char *type = qg_ai_json_str(delta, "type");
    if (!type)
        return qg_error_set(err, QG_EINVAL,
                            "anthropic stream: content_block_delta without a delta");
    if (!strcmp(type, "text_delta")) {
        const char *t = qg_ai_json_str(delta, "text");
        return t ? qg_ai_stream_text(st, t, strlen(t)) : QG_OK;
    }
    if (strcmp(type, "input_json_delta")) return QG_OK; /* thinking, signature, citations */
    int64_t idx = qg_ai_json_int(ev, "index", -1);
    if (idx < 0 || idx >= (int64_t)sizeof st->pscratch || !st->pscratch[idx])
        return qg_error_set(
            err, QG_EINVAL,
            "anthropic stream: input_json_delta for block %lld, not a tool_use block",
            (long long)idx);
    const char *pj = qg_ai_json_str(delta, "partial_json");
    return qg_ai_stream_tool(st, st->pscratch[idx] - 1, NULL, NULL, pj, pj ? strlen(pj) : 0);
}

static qg_status anthropic_stream_event(qg_ai_stream *st, const char *event, const char *data,
                                        size_t n, qg_error *err)
{
    cJSON *ev = cJSON_ParseWithLength(data, n);
    if (!cJSON_IsObject(ev)) {
        cJSON_Delete(ev);
        return qg_error_set(err, QG_EINVAL, "anthropic stream: event %s is not a JSON object",
                            event ? event : "(unnamed)");
    }
    qg_status rc = QG_OK;
    const char *type = qg_ai_json_str(ev, "type");
    if (!type) type = event ? event : "";
    if (!strcmp(type, "message_start")) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ev, "message");
        const char *model = qg_ai_json_str(msg, "model");
        if (model) qg_ai_stream_set_model(st, model, strlen(model));
        apply_usage(st, cJSON_GetObjectItemCaseSensitive(msg, "usage"));
    } else if (!strcmp(type, "content_block_start")) {
        rc = block_start(st, ev, err);
    } else if (!strcmp(type, "content_block_delta")) {
        rc = block_delta(st, ev, err);
    } else if (!strcmp(type, "message_delta")) {
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ev, "delta");
        const char *fr = finish_of(qg_ai_json_str(delta, "stop_reason"));
        if (fr) qg_ai_stream_set_finish(st, fr);
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(ev, "usage");
        /* output_tokens here is cumulative; input is repeated only by newer
         * API versions, so keep message_start's when absent. */
        if (cJSON_IsObject(u) && qg_ai_json_int(u, "input_tokens", -1) >= 0)
            apply_usage(st, u);
        else
            qg_ai_stream_usage(st, -1, qg_ai_json_int(u, "output_tokens", -1), -1);
    } else if (!strcmp(type, "message_stop")) {
        st->done = true;
    } else if (!strcmp(type, "error")) {
        /* An error after the 200 (overloaded mid-stream): the stream ends
         * here and the error says why. */
        error_from_json(ev, 0, &st->error);
        if (st->error.kind == QG_AI_OK) st->error.kind = QG_AI_ESERVER;
        st->done = true;
    } /* ping and unknown events: nothing to do */
    if (rc && err && !err->msg[0]) qg_error_set(err, rc, "anthropic stream: %s event", type);
    cJSON_Delete(ev);
    return rc;
}

/* ---- errors ---- */

static void anthropic_decode_error(int http_status, const char *retry_after, const char *body,
                                   size_t n, qg_ai_error *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = http_status;
    out->retry_after_ms = qg_ai_parse_retry_after(retry_after);
    out->kind = qg_ai_errkind_from_status(http_status);
    if (out->kind == QG_AI_OK) out->kind = QG_AI_EPROTOCOL;
    cJSON *root = body && n ? cJSON_ParseWithLength(body, n) : NULL;
    if (!cJSON_IsObject(root) || !error_from_json(root, http_status, out))
        snprintf(out->message, sizeof out->message, "HTTP %d from anthropic", http_status);
    cJSON_Delete(root);
}

const qg_ai_provider qg_ai_provider_anthropic = {
    .name = "anthropic",
    .framing = QG_AI_FRAMING_SSE,
    .encode = anthropic_encode,
    .decode = anthropic_decode,
    .stream_event = anthropic_stream_event,
    .decode_error = anthropic_decode_error,
    .complete = NULL,
};
