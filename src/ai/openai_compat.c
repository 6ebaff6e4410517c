/*
 * openai_compat.c - quantgate as an OpenAI Chat Completions server: request
 * validation and conversion, the chat.completion object, the
 * chat.completion.chunk events of a stream, and OpenAI's error shape.
 *
 * What the official clients rely on (openai npm's ChatCompletionStream
 * accumulator): every chunk has id, object, created, model and choices; the
 * first chunk's delta carries role "assistant"; a tool call's first fragment
 * carries index, id, type "function", function.name and function.arguments
 * (possibly ""); the last choice chunk has a finish_reason; with
 * include_usage a chunk with "choices": [] and usage comes before
 * "data: [DONE]". An error inside a stream is data: {"error": {...}}, which
 * the clients raise as an APIError.
 *
 * Parsing copies every string into the caller's arena, so the request body
 * may be freed while the call runs on another thread.
 */
#include "ai/openai_compat.h"

#include <quantgate/json.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 4096
#define MAX_TOOLS    128
#define SYSTEM_MAX   ((size_t)4 << 20)

/* ---- request parsing ---- */

static char *dup_str(qg_arena *a, const char *s)
{
    return qg_arena_strndup(a, s ? s : "", s ? strlen(s) : 0);
}

/* A message's content: a string, null, or an array of parts of which only
 * text parts ({"type":"text","text":...}) are supported; the texts are
 * joined. *out is NULL when content is absent or null. */
static qg_status content_text(const cJSON *c, size_t i, qg_arena *a, const char **out,
                              qg_error *err)
{
    *out = NULL;
    if (!c || cJSON_IsNull(c)) return QG_OK;
    if (cJSON_IsString(c)) {
        *out = dup_str(a, c->valuestring);
        return *out ? QG_OK : QG_ENOMEM;
    }
    if (!cJSON_IsArray(c))
        return qg_error_set(err, QG_EINVAL,
                            "messages[%zu].content: must be a string or an array of parts", i);
    qg_buf b;
    qg_buf_init(&b, SYSTEM_MAX);
    qg_status rc = QG_OK;
    const cJSON *part;
    size_t j = 0;
    cJSON_ArrayForEach(part, c)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type)) {
            rc = qg_error_set(err, QG_EINVAL, "messages[%zu].content[%zu].type: required", i, j);
            goto out;
        }
        if (strcmp(type->valuestring, "text") != 0) {
            rc = qg_error_set(err, QG_EINVAL,
                              "messages[%zu].content[%zu].type: unsupported part type \"%.40s\" "
                              "(only \"text\")",
                              i, j, type->valuestring);
            goto out;
        }
        if (!cJSON_IsString(text)) {
            rc = qg_error_set(err, QG_EINVAL, "messages[%zu].content[%zu].text: must be a string",
                              i, j);
            goto out;
        }
        if ((rc = qg_buf_puts(&b, text->valuestring))) {
            qg_error_set(err, rc, "messages[%zu].content: too long", i);
            goto out;
        }
        j++;
    }
    *out = qg_arena_strndup(a, b.len ? b.data : "", b.len);
    if (!*out) rc = QG_ENOMEM;
out:
    qg_buf_free(&b);
    return rc;
}

static qg_status parse_tool_calls(const cJSON *arr, size_t i, qg_arena *a, qg_ai_msg *m,
                                  qg_error *err)
{
    if (!arr || cJSON_IsNull(arr)) return QG_OK;
    if (!cJSON_IsArray(arr))
        return qg_error_set(err, QG_EINVAL, "messages[%zu].tool_calls: must be an array", i);
    int n = cJSON_GetArraySize(arr);
    if (n == 0) return QG_OK;
    qg_ai_tool_call *calls = qg_arena_alloc(a, sizeof *calls * (size_t)n);
    if (!calls) return QG_ENOMEM;
    const cJSON *tc;
    size_t j = 0;
    cJSON_ArrayForEach(tc, arr)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(tc, "id");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
        if (!cJSON_IsString(id) || !*id->valuestring)
            return qg_error_set(err, QG_EINVAL, "messages[%zu].tool_calls[%zu].id: required", i, j);
        if (!cJSON_IsString(name) || !*name->valuestring)
            return qg_error_set(err, QG_EINVAL,
                                "messages[%zu].tool_calls[%zu].function.name: required", i, j);
        if (args && !cJSON_IsString(args))
            return qg_error_set(err, QG_EINVAL,
                                "messages[%zu].tool_calls[%zu].function.arguments: must be a "
                                "string (JSON text)",
                                i, j);
        calls[j].id = dup_str(a, id->valuestring);
        calls[j].name = dup_str(a, name->valuestring);
        calls[j].arguments = args && *args->valuestring ? dup_str(a, args->valuestring) : "{}";
        j++;
    }
    m->tool_calls = calls;
    m->n_tool_calls = j;
    return QG_OK;
}

/* The tool a tool_call_id belongs to, from the assistant turns before it
 * (Gemini and Ollama match results by name). */
static const char *tool_name_for(const qg_ai_msg *msgs, size_t n, const char *id)
{
    for (size_t k = n; k-- > 0;)
        for (size_t j = 0; j < msgs[k].n_tool_calls; j++)
            if (!strcmp(msgs[k].tool_calls[j].id, id)) return msgs[k].tool_calls[j].name;
    return NULL;
}

static qg_status parse_messages(const cJSON *arr, qg_arena *a, qg_ai_request *out, qg_error *err)
{
    qg_status rc = QG_OK;
    if (!cJSON_IsArray(arr)) return qg_error_set(err, QG_EINVAL, "messages: required (an array)");
    int n = cJSON_GetArraySize(arr);
    if (n == 0) return qg_error_set(err, QG_EINVAL, "messages: must not be empty");
    if (n > MAX_MESSAGES)
        return qg_error_set(err, QG_EINVAL, "messages: %d messages, at most %d", n, MAX_MESSAGES);
    qg_ai_msg *msgs = qg_arena_alloc(a, sizeof *msgs * (size_t)n);
    if (!msgs) return QG_ENOMEM;
    size_t nm = 0, i = 0;
    qg_buf sys;
    qg_buf_init(&sys, SYSTEM_MAX);
    const cJSON *m;
    cJSON_ArrayForEach(m, arr)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const char *text = NULL;
        if (!cJSON_IsObject(m)) {
            rc = qg_error_set(err, QG_EINVAL, "messages[%zu]: must be an object", i);
            goto out;
        }
        if (!cJSON_IsString(role)) {
            rc = qg_error_set(err, QG_EINVAL, "messages[%zu].role: required", i);
            goto out;
        }
        const char *r = role->valuestring;
        if ((rc = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), i, a, &text, err)))
            goto out;
        if (!strcmp(r, "system") || !strcmp(r, "developer")) {
            if ((sys.len && qg_buf_puts(&sys, "\n\n")) || qg_buf_puts(&sys, text ? text : "")) {
                rc = qg_error_set(err, QG_EINVAL, "messages[%zu].content: system prompt too long",
                                  i);
                goto out;
            }
            i++;
            continue;
        }
        qg_ai_msg *x = &msgs[nm];
        memset(x, 0, sizeof *x);
        x->content = text;
        if (!strcmp(r, "user")) {
            x->role = QG_AI_ROLE_USER;
            if (!text) {
                rc = qg_error_set(err, QG_EINVAL,
                                  "messages[%zu].content: required for a user "
                                  "message",
                                  i);
                goto out;
            }
        } else if (!strcmp(r, "assistant")) {
            x->role = QG_AI_ROLE_ASSISTANT;
            rc = parse_tool_calls(cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), i, a, x, err);
            if (rc) goto out;
            if (!text && !x->n_tool_calls) x->content = "";
        } else if (!strcmp(r, "tool")) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
            x->role = QG_AI_ROLE_TOOL;
            if (!cJSON_IsString(id) || !*id->valuestring) {
                rc = qg_error_set(err, QG_EINVAL,
                                  "messages[%zu].tool_call_id: required for a "
                                  "tool message",
                                  i);
                goto out;
            }
            x->tool_call_id = dup_str(a, id->valuestring);
            x->tool_name = tool_name_for(msgs, nm, x->tool_call_id);
            if (!text) x->content = "";
        } else {
            rc = qg_error_set(err, QG_EINVAL,
                              "messages[%zu].role: unknown role \"%.40s\" (system, developer, "
                              "user, assistant, tool)",
                              i, r);
            goto out;
        }
        nm++;
        i++;
    }
    out->messages = msgs;
    out->n_messages = nm;
    out->system = sys.len ? qg_arena_strndup(a, sys.data, sys.len) : NULL;
out:
    qg_buf_free(&sys);
    return rc;
}

static qg_status parse_tools(const cJSON *arr, qg_arena *a, qg_ai_request *out, qg_error *err)
{
    if (!arr || cJSON_IsNull(arr)) return QG_OK;
    if (!cJSON_IsArray(arr)) return qg_error_set(err, QG_EINVAL, "tools: must be an array");
    int n = cJSON_GetArraySize(arr);
    if (n > MAX_TOOLS)
        return qg_error_set(err, QG_EINVAL, "tools: %d tools, at most %d", n, MAX_TOOLS);
    if (n == 0) return QG_OK;
    qg_ai_tool *tools = qg_arena_alloc(a, sizeof *tools * (size_t)n);
    if (!tools) return QG_ENOMEM;
    const cJSON *t;
    size_t i = 0;
    cJSON_ArrayForEach(t, arr)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *desc = cJSON_GetObjectItemCaseSensitive(f, "description");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0)
            return qg_error_set(err, QG_EINVAL, "tools[%zu].type: must be \"function\"", i);
        if (!cJSON_IsString(name) || !*name->valuestring)
            return qg_error_set(err, QG_EINVAL, "tools[%zu].function.name: required", i);
        if (params && !cJSON_IsObject(params))
            return qg_error_set(err, QG_EINVAL, "tools[%zu].function.parameters: must be an object",
                                i);
        tools[i].name = dup_str(a, name->valuestring);
        tools[i].description = cJSON_IsString(desc) ? dup_str(a, desc->valuestring) : NULL;
        tools[i].parameters = NULL;
        if (params) {
            char *p = qg_json_compact(params);
            if (!p) return QG_ENOMEM;
            tools[i].parameters = dup_str(a, p);
            free(p);
        }
        i++;
    }
    out->tools = tools;
    out->n_tools = i;
    return QG_OK;
}

static qg_status parse_tool_choice(const cJSON *tc, qg_arena *a, qg_ai_request *out, qg_error *err)
{
    if (!tc || cJSON_IsNull(tc)) return QG_OK;
    if (cJSON_IsString(tc)) {
        const char *s = tc->valuestring;
        if (strcmp(s, "auto") && strcmp(s, "none") && strcmp(s, "required"))
            return qg_error_set(err, QG_EINVAL,
                                "tool_choice: unknown value \"%.40s\" (auto, none, required, or "
                                "{\"type\":\"function\",\"function\":{\"name\":...}})",
                                s);
        out->tool_choice = dup_str(a, s);
        return QG_OK;
    }
    const cJSON *name =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name");
    if (!cJSON_IsString(name) || !*name->valuestring)
        return qg_error_set(err, QG_EINVAL, "tool_choice.function.name: required");
    for (size_t i = 0; i < out->n_tools; i++)
        if (!strcmp(out->tools[i].name, name->valuestring)) {
            out->tool_choice = out->tools[i].name;
            return QG_OK;
        }
    return qg_error_set(err, QG_EINVAL, "tool_choice.function.name: no tool named \"%.60s\"",
                        name->valuestring);
}

static qg_status parse_options(const cJSON *body, qg_ai_request *out, qg_error *err)
{
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    if (rf && !cJSON_IsNull(rf)) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsString(type))
            return qg_error_set(err, QG_EINVAL, "response_format.type: required");
        if (!strcmp(type->valuestring, "json_object") || !strcmp(type->valuestring, "json_schema"))
            out->json_mode = true;
        else if (strcmp(type->valuestring, "text") != 0)
            return qg_error_set(err, QG_EINVAL,
                                "response_format.type: unknown \"%.40s\" (text, json_object, "
                                "json_schema)",
                                type->valuestring);
    }
    static const char *const max_keys[] = {"max_completion_tokens", "max_tokens"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, max_keys[k]);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e7 ||
            v->valuedouble != floor(v->valuedouble))
            return qg_error_set(err, QG_EINVAL, "%s: must be an integer from 1 to 10000000",
                                max_keys[k]);
        if (!out->max_tokens) out->max_tokens = (int)v->valuedouble;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "temperature");
    out->temperature = -1;
    if (t && !cJSON_IsNull(t)) {
        if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 2)
            return qg_error_set(err, QG_EINVAL, "temperature: must be a number from 0 to 2");
        out->temperature = t->valuedouble;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "stream");
    if (s && !cJSON_IsNull(s) && !cJSON_IsBool(s))
        return qg_error_set(err, QG_EINVAL, "stream: must be a boolean");
    out->stream = cJSON_IsTrue(s);
    const cJSON *nn = cJSON_GetObjectItemCaseSensitive(body, "n");
    if (nn && !cJSON_IsNull(nn) && (!cJSON_IsNumber(nn) || nn->valuedouble != 1))
        return qg_error_set(err, QG_EINVAL, "n: only 1 is supported");
    return QG_OK;
}

qg_status qg_openai_parse_request(const cJSON *body, qg_arena *a, qg_ai_request *out,
                                  const char **model, qg_error *err)
{
    qg_status rc;
    memset(out, 0, sizeof *out);
    out->temperature = -1;
    *model = NULL;
    if (!cJSON_IsObject(body)) return qg_error_set(err, QG_EINVAL, "body: must be a JSON object");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (!cJSON_IsString(m) || !*m->valuestring)
        return qg_error_set(err, QG_EINVAL, "model: required (a named model such as \"builtin\")");
    if ((rc = parse_messages(cJSON_GetObjectItemCaseSensitive(body, "messages"), a, out, err)))
        goto fail;
    if ((rc = parse_tools(cJSON_GetObjectItemCaseSensitive(body, "tools"), a, out, err))) goto fail;
    if ((rc =
             parse_tool_choice(cJSON_GetObjectItemCaseSensitive(body, "tool_choice"), a, out, err)))
        goto fail;
    if ((rc = parse_options(body, out, err))) goto fail;
    *model = dup_str(a, m->valuestring);
    if (!*model) rc = QG_ENOMEM;
fail:
    if (rc == QG_ENOMEM) qg_error_set(err, rc, "out of memory parsing the request");
    return rc;
}

bool qg_openai_wants_usage(const cJSON *body)
{
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
}

/* ---- responses ---- */

static cJSON *usage_json(const qg_ai_usage *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)u->input);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)u->output);
    cJSON_AddNumberToObject(o, "total_tokens", (double)(u->input + u->output));
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "prompt_tokens_details"), "cached_tokens",
                            (double)u->cached);
    return o;
}

static cJSON *envelope(const char *object, const char *id, const char *model, int64_t created)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id ? id : "");
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", model ? model : "");
    cJSON_AddNullToObject(o, "system_fingerprint");
    return o;
}

cJSON *qg_openai_completion_json(const qg_ai_response *r, const char *id, const char *model,
                                 int64_t created_s)
{
    cJSON *o = envelope("chat.completion", id, model, created_s);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(c, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    const char *text = r->text ? r->text : "";
    if (!*text && r->n_tool_calls)
        cJSON_AddNullToObject(msg, "content");
    else
        cJSON_AddStringToObject(msg, "content", text);
    cJSON_AddNullToObject(msg, "refusal");
    if (r->n_tool_calls) {
        cJSON *arr = cJSON_AddArrayToObject(msg, "tool_calls");
        for (size_t i = 0; i < r->n_tool_calls; i++) {
            const qg_ai_tool_call *tc = &r->tool_calls[i];
            cJSON *t = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, t);
            cJSON_AddStringToObject(t, "id", tc->id ? tc->id : "");
            cJSON_AddStringToObject(t, "type", "function");
            cJSON *f = cJSON_AddObjectToObject(t, "function");
            cJSON_AddStringToObject(f, "name", tc->name ? tc->name : "");
            cJSON_AddStringToObject(f, "arguments", tc->arguments ? tc->arguments : "{}");
        }
    }
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", r->finish_reason ? r->finish_reason : "stop");
    cJSON_AddItemToObject(o, "usage", usage_json(&r->usage));
    /* any failed allocation above leaves a hole; report it as out-of-memory */
    if (!o || !c || !msg || !cJSON_GetObjectItemCaseSensitive(o, "usage")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Appends "data: <json>\n\n" and frees j. */
static qg_status emit(qg_buf *out, cJSON *j)
{
    if (!j) return QG_ENOMEM;
    char *s = qg_json_compact(j);
    cJSON_Delete(j);
    if (!s) return QG_ENOMEM;
    qg_status rc = qg_buf_printf(out, "data: %s\n\n", s);
    free(s);
    return rc;
}

static cJSON *chunk_with_choice(const char *id, const char *model, int64_t created,
                                cJSON **delta /* OUT */, cJSON **choice /* OUT */)
{
    cJSON *o = envelope("chat.completion.chunk", id, model, created);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), c);
    cJSON_AddNumberToObject(c, "index", 0);
    *delta = cJSON_AddObjectToObject(c, "delta");
    cJSON_AddNullToObject(c, "logprobs");
    *choice = c;
    return o;
}

qg_status qg_openai_chunk_delta(qg_buf *out, const char *id, const char *model, int64_t created,
                                const qg_ai_delta *d, bool first)
{
    cJSON *delta, *choice;
    cJSON *o = chunk_with_choice(id, model, created, &delta, &choice);
    /* d->text is not NUL-terminated: copy the fragment */
    char *frag = malloc(d->len + 1);
    if (!frag) {
        cJSON_Delete(o);
        return QG_ENOMEM;
    }
    if (d->len) memcpy(frag, d->text, d->len);
    frag[d->len] = 0;
    if (first) cJSON_AddStringToObject(delta, "role", "assistant");
    if (d->kind == QG_AI_DELTA_TEXT) {
        cJSON_AddStringToObject(delta, "content", frag);
    } else {
        if (first) cJSON_AddNullToObject(delta, "content");
        cJSON *t = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(delta, "tool_calls"), t);
        cJSON_AddNumberToObject(t, "index", d->index);
        bool opening = d->id || d->name;
        if (opening) {
            char idbuf[32];
            snprintf(idbuf, sizeof idbuf, "call_%d", d->index);
            cJSON_AddStringToObject(t, "id", d->id ? d->id : idbuf);
            cJSON_AddStringToObject(t, "type", "function");
        }
        cJSON *f = cJSON_AddObjectToObject(t, "function");
        if (opening) cJSON_AddStringToObject(f, "name", d->name ? d->name : "");
        cJSON_AddStringToObject(f, "arguments", frag);
    }
    free(frag);
    cJSON_AddNullToObject(choice, "finish_reason");
    return emit(out, o);
}

qg_status qg_openai_chunk_finish(qg_buf *out, const char *id, const char *model, int64_t created,
                                 const char *finish_reason)
{
    cJSON *delta, *choice;
    cJSON *o = chunk_with_choice(id, model, created, &delta, &choice);
    cJSON_AddStringToObject(choice, "finish_reason", finish_reason ? finish_reason : "stop");
    return emit(out, o);
}

qg_status qg_openai_chunk_usage(qg_buf *out, const char *id, const char *model, int64_t created,
                                const qg_ai_usage *u)
{
    cJSON *o = envelope("chat.completion.chunk", id, model, created);
    cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToObject(o, "usage", usage_json(u));
    return emit(out, o);
}

qg_status qg_openai_chunk_error(qg_buf *out, const char *message, const char *type,
                                const char *code)
{
    return emit(out, qg_openai_error_json(message, type, code));
}

qg_status qg_openai_chunk_done(qg_buf *out)
{
    return qg_buf_puts(out, "data: [DONE]\n\n");
}

cJSON *qg_openai_error_json(const char *message, const char *type, const char *code)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message ? message : "");
    cJSON_AddStringToObject(e, "type", type ? type : "server_error");
    cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    if (!e) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int qg_openai_error_status(qg_ai_errkind k, const char **type, const char **code)
{
    *code = NULL;
    switch (k) {
    case QG_AI_OK:
        *type = "server_error";
        return 200;
    case QG_AI_EAUTH:
        *type = "authentication_error";
        *code = "invalid_api_key";
        return 401;
    case QG_AI_ERATE:
        *type = "rate_limit_error";
        *code = "rate_limit_exceeded";
        return 429;
    case QG_AI_EBUDGET:
        *type = "insufficient_quota";
        *code = "insufficient_quota";
        return 429;
    case QG_AI_EOVERLOADED:
        *type = "server_error";
        *code = "overloaded";
        return 503;
    case QG_AI_EBADREQ:
    case QG_AI_EOUTPUT:
        *type = "invalid_request_error";
        return 400;
    case QG_AI_ECONTEXT:
        *type = "invalid_request_error";
        *code = "context_length_exceeded";
        return 400;
    case QG_AI_ENOMODEL:
        *type = "invalid_request_error";
        *code = "model_not_found";
        return 404;
    case QG_AI_ETIMEOUT:
        *type = "timeout";
        return 504;
    case QG_AI_ECANCELLED:
        *type = "invalid_request_error";
        *code = "cancelled";
        return 499;
    case QG_AI_ENETWORK:
    case QG_AI_ESERVER:
    case QG_AI_EPROTOCOL:
        *type = "server_error";
        return 502;
    }
    *type = "server_error";
    return 500;
}

/* ---- message scrubbing ---- */

static bool keych(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '*';
}

void qg_openai_scrub_copy(char *dst, size_t cap, const char *src, size_t n)
{
    static const char red[] = "[redacted]";
    size_t o = 0;
    if (!cap) return;
    for (size_t i = 0; i < n && src[i] && o + 1 < cap;) {
        /* a credential-looking token: skip it whole, write the marker */
        size_t run = 0;
        while (i + run < n && keych(src[i + run])) run++;
        bool at_word = i == 0 || !keych(src[i - 1]);
        bool secret = false;
        if (at_word && run) {
            secret = run >= 40 || (run > 3 && !strncmp(src + i, "sk-", 3)) ||
                     (run > 4 && !strncmp(src + i, "AIza", 4));
        }
        if (at_word && n - i > 7 && !strncmp(src + i, "Bearer ", 7)) {
            size_t k = i + 7;
            while (k < n && src[k] && src[k] != ' ' && src[k] != '"' && src[k] != ',') k++;
            for (size_t r = 0; r < sizeof "Bearer " - 1 && o + 1 < cap; r++)
                dst[o++] = "Bearer "[r];
            for (size_t r = 0; r < sizeof red - 1 && o + 1 < cap; r++) dst[o++] = red[r];
            i = k;
            continue;
        }
        if (secret) {
            for (size_t r = 0; r < sizeof red - 1 && o + 1 < cap; r++) dst[o++] = red[r];
            i += run;
            continue;
        }
        if (run) {
            for (size_t r = 0; r < run && o + 1 < cap; r++) dst[o++] = src[i + r];
            i += run;
            continue;
        }
        unsigned char c = (unsigned char)src[i++];
        dst[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    /* a cut at cap must not leave half a UTF-8 sequence behind */
    size_t lead = o;
    while (lead > 0 && o - lead < 4 && ((unsigned char)dst[lead - 1] & 0xC0) == 0x80) lead--;
    if (lead > 0) {
        unsigned char c = (unsigned char)dst[lead - 1];
        size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (lead - 1 + want > o) o = lead - 1;
    }
    dst[o] = 0;
}
