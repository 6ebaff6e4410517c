/*
 * stream.c - the pieces every provider shares: splitting a streamed body
 * into events (SSE or NDJSON), assembling deltas into the final response,
 * error kinds and names, Retry-After, and the provider table.
 *
 * The framer keeps at most one partial line and one event's data, each in a
 * capped buffer, so a provider that never ends a line cannot grow memory
 * without bound.
 */
#include "ai/provider.h"

#include <quantgate/json.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LINE_MAX_BYTES ((size_t)4 << 20) /* one SSE line or NDJSON object */
#define TEXT_MAX_BYTES ((size_t)16 << 20)
#define ARGS_MAX_BYTES ((size_t)4 << 20)

/* ---- names ---- */

const char *qg_ai_role_name(qg_ai_role r)
{
    switch (r) {
    case QG_AI_ROLE_SYSTEM:
        return "system";
    case QG_AI_ROLE_USER:
        return "user";
    case QG_AI_ROLE_ASSISTANT:
        return "assistant";
    case QG_AI_ROLE_TOOL:
        return "tool";
    }
    return "user";
}

int qg_ai_role_parse(const char *s)
{
    static const char *names[] = {"system", "user", "assistant", "tool"};
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

const char *qg_ai_errkind_name(qg_ai_errkind k)
{
    switch (k) {
    case QG_AI_OK:
        return "ok";
    case QG_AI_EAUTH:
        return "auth";
    case QG_AI_ERATE:
        return "rate_limited";
    case QG_AI_EOVERLOADED:
        return "overloaded";
    case QG_AI_EBADREQ:
        return "bad_request";
    case QG_AI_ECONTEXT:
        return "context_too_long";
    case QG_AI_ETIMEOUT:
        return "timeout";
    case QG_AI_ENETWORK:
        return "network";
    case QG_AI_ESERVER:
        return "server_error";
    case QG_AI_EPROTOCOL:
        return "protocol";
    case QG_AI_EBUDGET:
        return "budget_exceeded";
    case QG_AI_ENOMODEL:
        return "no_model";
    case QG_AI_ECANCELLED:
        return "cancelled";
    case QG_AI_EOUTPUT:
        return "invalid_output";
    }
    return "unknown";
}

bool qg_ai_errkind_retryable(qg_ai_errkind k)
{
    return k == QG_AI_ERATE || k == QG_AI_EOVERLOADED || k == QG_AI_ETIMEOUT ||
           k == QG_AI_ENETWORK || k == QG_AI_ESERVER;
}

qg_status qg_ai_errkind_status(qg_ai_errkind k)
{
    switch (k) {
    case QG_AI_OK:
        return QG_OK;
    case QG_AI_EBUDGET:
        return QG_EDENIED;
    case QG_AI_ENOMODEL:
        return QG_ENOTFOUND;
    case QG_AI_EBADREQ:
    case QG_AI_ECONTEXT:
        return QG_EINVAL;
    default:
        return QG_EAGAIN;
    }
}

qg_ai_errkind qg_ai_errkind_from_status(int s)
{
    if (s >= 200 && s < 300) return QG_AI_OK;
    if (s == 401 || s == 403) return QG_AI_EAUTH;
    if (s == 429) return QG_AI_ERATE;
    if (s == 503 || s == 529) return QG_AI_EOVERLOADED;
    if (s == 408 || s == 504) return QG_AI_ETIMEOUT;
    if (s == 413) return QG_AI_ECONTEXT;
    if (s >= 500) return QG_AI_ESERVER;
    return QG_AI_EBADREQ;
}

int64_t qg_ai_parse_retry_after(const char *v)
{
    if (!v) return -1;
    while (*v == ' ') v++;
    if (!*v) return -1;
    if (isdigit((unsigned char)*v)) {
        char *end;
        double secs = strtod(v, &end);
        while (*end == ' ') end++;
        if (*end || secs < 0 || secs > 86400.0) return -1;
        return (int64_t)(secs * 1000.0);
    }
    /* HTTP date: "Wed, 21 Oct 2015 07:28:00 GMT" */
    struct tm tm = {0};
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end) return -1;
    time_t at = timegm(&tm);
    time_t now = time(NULL);
    return at > now ? (int64_t)(at - now) * 1000 : 0;
}

const char *qg_ai_json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t qg_ai_json_int(const cJSON *o, const char *key, int64_t dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && v->valuedouble > -1e18 && v->valuedouble < 1e18
               ? (int64_t)v->valuedouble
               : dflt;
}

bool qg_ai_has_ctl(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

qg_status qg_ai_body_from_json(const cJSON *root, const char *who, qg_buf *body, qg_error *err)
{
    char *text = root ? qg_json_compact(root) : NULL;
    if (!text) return qg_error_set(err, QG_ENOMEM, "%s: out of memory encoding the request", who);
    qg_status rc = qg_buf_puts(body, text);
    free(text);
    if (rc) qg_error_set(err, rc, "%s: request body over %zu bytes", who, body->max);
    return rc;
}

qg_status qg_ai_embed_input_body(const char *who, const char *model, const char *const *inputs,
                                 size_t n, qg_buf *body, qg_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "input") : NULL;
    bool ok = arr && cJSON_AddStringToObject(root, "model", model);
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *s = cJSON_CreateString(inputs[i] ? inputs[i] : "");
        ok = s != NULL;
        if (s) cJSON_AddItemToArray(arr, s);
    }
    qg_status rc = qg_ai_body_from_json(ok ? root : NULL, who, body, err);
    cJSON_Delete(root);
    return rc;
}

/* ---- the provider table ---- */

static const qg_ai_provider *const providers[] = {
    &qg_ai_provider_builtin, &qg_ai_provider_openai, &qg_ai_provider_anthropic,
    &qg_ai_provider_gemini,  &qg_ai_provider_ollama,
};

const qg_ai_provider *qg_ai_provider_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof providers / sizeof providers[0]; i++)
        if (!strcmp(providers[i]->name, name)) return providers[i];
    return NULL;
}

const char *qg_ai_provider_default_url(const char *name)
{
    if (!name) return "";
    if (!strcmp(name, "openai")) return "https://api.openai.com/v1";
    if (!strcmp(name, "anthropic")) return "https://api.anthropic.com";
    if (!strcmp(name, "gemini")) return "https://generativelanguage.googleapis.com";
    if (!strcmp(name, "ollama")) return "http://127.0.0.1:11434";
    return "";
}

/* ---- stream assembly ---- */

void qg_ai_stream_init(qg_ai_stream *st, qg_arena *a, qg_ai_stream_fn on_delta, void *ud)
{
    memset(st, 0, sizeof *st);
    st->arena = a;
    st->on_delta = on_delta;
    st->ud = ud;
    qg_buf_init(&st->text, TEXT_MAX_BYTES);
    for (int i = 0; i < QG_AI_MAX_TOOL_CALLS; i++) qg_buf_init(&st->calls[i].args, ARGS_MAX_BYTES);
    st->error.retry_after_ms = -1;
}

qg_status qg_ai_stream_text(qg_ai_stream *st, const char *s, size_t n)
{
    if (n == 0) return QG_OK;
    qg_status rc = qg_buf_append(&st->text, s, n);
    if (rc) return rc;
    if (st->on_delta) {
        qg_ai_delta d = {.kind = QG_AI_DELTA_TEXT, .text = s, .len = n};
        st->on_delta(st->ud, &d);
    }
    return QG_OK;
}

qg_status qg_ai_stream_tool(qg_ai_stream *st, int index, const char *id, const char *name,
                            const char *args, size_t n)
{
    if (index < 0 || index >= QG_AI_MAX_TOOL_CALLS) return QG_ERANGE;
    if (index >= st->ncalls) st->ncalls = index + 1;
    if (id && *id && !st->calls[index].id)
        st->calls[index].id = qg_arena_strndup(st->arena, id, strlen(id));
    if (name && *name && !st->calls[index].name)
        st->calls[index].name = qg_arena_strndup(st->arena, name, strlen(name));
    if (n) {
        qg_status rc = qg_buf_append(&st->calls[index].args, args, n);
        if (rc) return rc;
    }
    bool first = !st->calls[index].started;
    st->calls[index].started = true;
    if (st->on_delta && (first || n)) {
        qg_ai_delta d = {.kind = QG_AI_DELTA_TOOL_CALL,
                         .index = index,
                         .id = first ? st->calls[index].id : NULL,
                         .name = first ? st->calls[index].name : NULL,
                         .text = args ? args : "",
                         .len = n};
        st->on_delta(st->ud, &d);
    }
    return QG_OK;
}

void qg_ai_stream_usage(qg_ai_stream *st, int64_t input, int64_t output, int64_t cached)
{
    if (input >= 0) st->usage.input = input;
    if (output >= 0) st->usage.output = output;
    if (cached >= 0) st->usage.cached = cached;
}

void qg_ai_stream_set_finish(qg_ai_stream *st, const char *reason)
{
    if (reason) st->finish_reason = qg_arena_strndup(st->arena, reason, strlen(reason));
}

void qg_ai_stream_set_model(qg_ai_stream *st, const char *model, size_t n)
{
    if (model && !st->model) st->model = qg_arena_strndup(st->arena, model, n);
}

void qg_ai_stream_finish(qg_ai_stream *st, qg_ai_response *out)
{
    out->text = qg_arena_strndup(st->arena, st->text.len ? st->text.data : "", st->text.len);
    out->n_tool_calls = 0;
    out->tool_calls = NULL;
    if (st->ncalls > 0) {
        out->tool_calls = qg_arena_alloc(st->arena, sizeof(qg_ai_tool_call) * (size_t)st->ncalls);
        for (int i = 0; out->tool_calls && i < st->ncalls; i++) {
            qg_ai_tool_call *c = &out->tool_calls[out->n_tool_calls++];
            c->id = st->calls[i].id ? st->calls[i].id : qg_arena_sprintf(st->arena, "call_%d", i);
            c->name = st->calls[i].name ? st->calls[i].name : "";
            c->arguments =
                st->calls[i].args.len
                    ? qg_arena_strndup(st->arena, st->calls[i].args.data, st->calls[i].args.len)
                    : "{}";
        }
    }
    out->usage = st->usage;
    out->finish_reason = st->finish_reason   ? st->finish_reason
                         : out->n_tool_calls ? "tool_calls"
                                             : "stop";
    out->model = st->model;
    out->error = st->error;
    qg_buf_free(&st->text);
    for (int i = 0; i < QG_AI_MAX_TOOL_CALLS; i++) qg_buf_free(&st->calls[i].args);
}

/* ---- framing ---- */

void qg_ai_framer_init(qg_ai_framer *f, const qg_ai_provider *p, qg_ai_stream *st)
{
    memset(f, 0, sizeof *f);
    f->framing = p->framing;
    f->provider = p;
    f->stream = st;
    qg_buf_init(&f->line, LINE_MAX_BYTES);
    qg_buf_init(&f->data, LINE_MAX_BYTES);
}

void qg_ai_framer_free(qg_ai_framer *f)
{
    qg_buf_free(&f->line);
    qg_buf_free(&f->data);
}

static qg_status framer_fail(qg_ai_framer *f, qg_status rc, const char *what)
{
    if (!f->rc) {
        f->rc = rc;
        if (!f->err.msg[0]) qg_error_set(&f->err, rc, "stream: %s", what);
    }
    return f->rc;
}

static qg_status dispatch(qg_ai_framer *f, const char *event, const char *data, size_t n)
{
    qg_status rc = f->provider->stream_event(f->stream, event, data, n, &f->err);
    if (rc) return framer_fail(f, rc, "undecodable event");
    return QG_OK;
}

/* SSE: a blank line ends an event; "data:" lines join with '\n'; comments
 * (":") and unknown fields are ignored (WHATWG EventSource parsing). */
static qg_status sse_line(qg_ai_framer *f, const char *s, size_t n)
{
    if (n == 0) {
        if (!f->has_data) { /* an event without data is not dispatched */
            f->event[0] = 0;
            return QG_OK;
        }
        qg_status rc = dispatch(f, f->event[0] ? f->event : NULL, f->data.len ? f->data.data : "",
                                f->data.len);
        qg_buf_reset(&f->data);
        f->has_data = false;
        f->event[0] = 0;
        return rc;
    }
    if (s[0] == ':') return QG_OK;
    const char *colon = memchr(s, ':', n);
    size_t name_len = colon ? (size_t)(colon - s) : n;
    const char *val = colon ? colon + 1 : s + n;
    size_t val_len = colon ? n - name_len - 1 : 0;
    if (val_len && *val == ' ') val++, val_len--;
    if (name_len == 4 && !memcmp(s, "data", 4)) {
        if (f->has_data && qg_buf_append(&f->data, "\n", 1))
            return framer_fail(f, QG_ERANGE, "event too large");
        if (qg_buf_append(&f->data, val, val_len))
            return framer_fail(f, QG_ERANGE, "event too large");
        f->has_data = true;
    } else if (name_len == 5 && !memcmp(s, "event", 5)) {
        size_t m = val_len < sizeof f->event - 1 ? val_len : sizeof f->event - 1;
        memcpy(f->event, val, m);
        f->event[m] = 0;
    }
    return QG_OK;
}

static qg_status ndjson_line(qg_ai_framer *f, const char *s, size_t n)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n == 0) return QG_OK;
    return dispatch(f, NULL, s, n);
}

static qg_status one_line(qg_ai_framer *f, const char *s, size_t n)
{
    if (n && s[n - 1] == '\r') n--;
    return f->framing == QG_AI_FRAMING_SSE ? sse_line(f, s, n) : ndjson_line(f, s, n);
}

qg_status qg_ai_framer_feed(qg_ai_framer *f, const char *p, size_t n)
{
    if (f->rc) return f->rc;
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            if (qg_buf_append(&f->line, p, n)) return framer_fail(f, QG_ERANGE, "line too long");
            return QG_OK;
        }
        size_t k = (size_t)(nl - p);
        qg_status rc;
        if (f->line.len) {
            if (qg_buf_append(&f->line, p, k)) return framer_fail(f, QG_ERANGE, "line too long");
            rc = one_line(f, f->line.data, f->line.len);
            qg_buf_reset(&f->line);
        } else {
            rc = one_line(f, p, k);
        }
        if (rc) return rc;
        p += k + 1;
        n -= k + 1;
    }
    return QG_OK;
}

qg_status qg_ai_framer_end(qg_ai_framer *f)
{
    if (f->rc) return f->rc;
    qg_status rc = QG_OK;
    if (f->line.len) {
        rc = one_line(f, f->line.data, f->line.len);
        qg_buf_reset(&f->line);
    }
    if (!rc && f->framing == QG_AI_FRAMING_SSE) rc = sse_line(f, "", 0);
    return rc;
}
