/*
 * h_openai.c - the OpenAI-compatible endpoint: POST /v1/chat/completions
 * (streaming and not) and GET /v1/models, so any OpenAI client pointed at
 * http://host:port/v1 talks to quantgate's named models. The caller is a
 * quantgate user (an API token or an access token as the Bearer); every
 * call is counted against that user's and that token's budgets by the AI
 * layer, which also records it (so these routes write no audit row).
 *
 * Non-streaming: qg_ai_complete on the request worker, one chat.completion
 * reply (x-quantgate-overhead-ms says what quantgate added).
 *
 * Streaming: the call runs on the AI layer's own pool (qg_ai_start). Its
 * deltas are encoded as chat.completion.chunk events into a locked buffer
 * and the stream's waker is rung, so the event loop forwards each token at
 * once. The handler waits only until the first delta or the call's end:
 * failures before any output (budget, unknown model, bad request, providers
 * down) are then ordinary JSON errors with the right status, which the
 * OpenAI clients turn into their typed exceptions. A client that goes away
 * sets the call's cancel flag.
 *
 * Lifetimes: one refcounted oa_call holds the parsed request, the arena the
 * AI layer allocates in and the result. References: the handler (then the
 * stream, which drops it in stream_free) and the AI job (dropped at the end
 * of its done callback). Fields under `mu` are shared between the transport
 * thread (deltas), the AI pool thread (done), the worker (the wait) and the
 * loop (poll); everything else is written before qg_ai_start and read-only
 * after, or read only once `finished` was seen under mu.
 */
#include "ai/openai_compat.h"
#include "ai/provider.h"
#include "http/app.h"
#include "http/handlers.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OA_EVENTS_MAX  ((size_t)64 << 20) /* one stream's unsent events */
#define OA_MODEL_MAX   128
#define OA_BUILTIN     "builtin"
#define OA_OWNED_BY    "quantgate"
#define OA_ID_PREFIX   "chatcmpl-"
#define OA_ID_RAND_LEN 12 /* random bytes, 24 hex characters */

/* ---- OpenAI-shaped errors ---- */

static void oa_error(qg_req *r, int status, const char *type, const char *code, const char *fmt,
                     ...) __attribute__((format(printf, 5, 6)));

static void oa_error(qg_req *r, int status, const char *type, const char *code, const char *fmt,
                     ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *j = qg_openai_error_json(msg, type, code);
    if (!j) {
        qg_reply_error(r, 500, "internal", "out of memory (request %s)", r->request_id);
        return;
    }
    qg_reply_json(r, status, j);
    r->error_code = code ? code : type; /* for the access log */
}

/* How a failed call is told to an OpenAI client. Upstream failures are the
 * gateway's (502/503/504), never 401: the client's own credentials were
 * fine, quantgate's key for the provider was not. */
typedef struct oa_errmap {
    int status;
    const char *type;
    const char *code;
} oa_errmap;

static oa_errmap oa_map(qg_ai_errkind k, qg_status rc)
{
    switch (k) {
    case QG_AI_EBUDGET:
        return (oa_errmap){429, "insufficient_quota", "budget_exceeded"};
    case QG_AI_ENOMODEL:
        return (oa_errmap){404, "invalid_request_error", "model_not_found"};
    case QG_AI_EBADREQ:
        return (oa_errmap){400, "invalid_request_error", "invalid_request"};
    case QG_AI_ECONTEXT:
        return (oa_errmap){400, "invalid_request_error", "context_length_exceeded"};
    case QG_AI_ERATE:
        return (oa_errmap){429, "rate_limit_error", "rate_limit_exceeded"};
    case QG_AI_EOVERLOADED:
        return (oa_errmap){503, "api_error", "overloaded"};
    case QG_AI_ETIMEOUT:
        return (oa_errmap){504, "api_error", "upstream_timeout"};
    case QG_AI_EAUTH:
        return (oa_errmap){502, "api_error", "upstream_auth_failed"};
    case QG_AI_ECANCELLED:
        return (oa_errmap){503, "api_error", "cancelled"};
    case QG_AI_ENETWORK:
    case QG_AI_ESERVER:
    case QG_AI_EPROTOCOL:
    case QG_AI_EOUTPUT:
        return (oa_errmap){502, "api_error", "upstream_error"};
    case QG_AI_OK:
        break;
    }
    switch (rc) {
    case QG_EDENIED:
        return (oa_errmap){429, "insufficient_quota", "budget_exceeded"};
    case QG_ENOTFOUND:
        return (oa_errmap){404, "invalid_request_error", "model_not_found"};
    case QG_EINVAL:
        return (oa_errmap){400, "invalid_request_error", "invalid_request"};
    case QG_EAGAIN:
        return (oa_errmap){503, "api_error", "unavailable"};
    default:
        return (oa_errmap){500, "api_error", "internal_error"};
    }
}

static void reply_failure(qg_req *r, const char *model, qg_status rc, const qg_ai_result *res,
                          const qg_error *err)
{
    const qg_ai_error *e = &res->resp.error;
    oa_errmap m = oa_map(e->kind, rc);
    if (m.status == 500) {
        qg_err("v1: call to model '%s' failed (request %s): %s", model, r->request_id,
               err->msg[0] ? err->msg : "no message");
        oa_error(r, 500, m.type, m.code, "internal error (request %s)", r->request_id);
        return;
    }
    if (e->kind == QG_AI_EBUDGET || rc == QG_EDENIED) {
        /* Waiting will not help within the budget's period: tell the SDKs
         * not to retry (they retry every 429 by default). */
        qg_reply_header(r, "x-should-retry", "false");
    } else if (e->kind == QG_AI_ERATE && e->retry_after_ms >= 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%lld", (long long)((e->retry_after_ms + 999) / 1000));
        qg_reply_header(r, "retry-after", ra);
    }
    const char *why = err->msg[0] ? err->msg : e->message[0] ? e->message : "the call failed";
    if (m.status == 404)
        oa_error(r, 404, m.type, m.code, "model '%s': no such model (GET /v1/models lists them)",
                 model);
    else
        oa_error(r, m.status, m.type, m.code, "model '%s': %s", model, why);
}

/* ---- request → call ---- */

static void new_id(char *out, size_t cap)
{
    unsigned char b[OA_ID_RAND_LEN];
    randombytes_buf(b, sizeof b);
    size_t n = (size_t)snprintf(out, cap, "%s", OA_ID_PREFIX);
    for (size_t i = 0; i < sizeof b && n + 2 < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%02x", b[i]);
}

/* The body as a JSON object, or NULL after replying 400. The caller owns
 * the tree. */
static cJSON *body_json(qg_req *r)
{
    cJSON *body = cJSON_ParseWithLength(r->body, r->body_len);
    if (body && cJSON_IsObject(body)) return body;
    cJSON_Delete(body);
    oa_error(r, 400, "invalid_request_error", "invalid_json",
             "the request body must be a JSON object (Content-Type: application/json)");
    return NULL;
}

/* Converts the body, every string copied into arena a. False after
 * replying 400 naming the field. */
static bool parse_body(qg_req *r, const cJSON *body, qg_arena *a, qg_ai_request *req,
                       const char **model)
{
    qg_error err = {0};
    qg_status rc = qg_openai_parse_request(body, a, req, model, &err);
    if (!rc && strlen(*model) > OA_MODEL_MAX)
        rc = qg_error_set(&err, QG_EINVAL, "model: longer than %d characters", OA_MODEL_MAX);
    if (rc == QG_EINVAL) {
        oa_error(r, 400, "invalid_request_error", "invalid_request", "%s", err.msg);
        return false;
    }
    if (rc) {
        oa_error(r, 500, "api_error", "internal_error", "cannot read the request (request %s)",
                 r->request_id);
        return false;
    }
    return true;
}

static void fill_call(qg_req *r, qg_arena *a, qg_ai_call *call, const char *model)
{
    const qg_principal *who = &r->who;
    memset(call, 0, sizeof *call);
    call->user_id = qg_arena_strndup(a, who->user.id, strlen(who->user.id));
    call->token_id =
        who->via_api_token ? qg_arena_strndup(a, who->token_id, strlen(who->token_id)) : NULL;
    call->model = model;
}

/* The request's database connection is not needed any more; the AI layer
 * takes its own for the budget check and the record, and a slow model must
 * not hold one of the store's few connections. */
static void drop_db(qg_req *r)
{
    if (!r->db) return;
    qg_store_release(r->app->store, r->db);
    r->db = NULL;
}

/* ---- non-streaming ---- */

static void complete_sync(qg_req *r, const qg_ai_request *req, const char *model)
{
    qg_ai_call call;
    fill_call(r, &r->arena, &call, model);
    call.req = *req;
    call.req.stream = false;
    qg_ai_result res;
    qg_error err = {0};
    qg_status rc = qg_ai_complete(r->app->ai, &call, &r->arena, &res, &err);
    r->upstream_us = res.upstream_us;
    if (rc) {
        reply_failure(r, model, rc, &res, &err);
        return;
    }
    char id[64];
    new_id(id, sizeof id);
    cJSON *j = qg_openai_completion_json(&res.resp, id, model, qg_time_now_ms() / 1000);
    if (!j) {
        oa_error(r, 500, "api_error", "internal_error", "out of memory (request %s)",
                 r->request_id);
        return;
    }
    qg_reply_json(r, 200, j);
    char ms[32];
    snprintf(ms, sizeof ms, "%.3f", (double)res.overhead_us / 1000.0);
    qg_reply_header(r, "x-quantgate-overhead-ms", ms);
    if (res.call_id[0]) qg_reply_header(r, "x-quantgate-call-id", res.call_id);
}

/* ---- streaming ---- */

typedef struct oa_call {
    atomic_int refs;
    atomic_bool cancel;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qg_stream_waker *waker;
    /* set before qg_ai_start, read-only after */
    qg_arena arena; /* the AI layer's once started; ours again after `finished` */
    qg_ai_call call;
    const char *model;
    char id[64];
    int64_t created;
    bool include_usage;
    /* under mu */
    qg_buf events; /* encoded SSE events the stream has not taken yet */
    bool started;  /* a delta arrived */
    bool finished; /* done ran: rc, err and res are final */
    qg_status rc;
    qg_error err;
    qg_ai_result res;
} oa_call;

static oa_call *oa_new(void)
{
    oa_call *c = qg_xcalloc(1, sizeof *c);
    atomic_init(&c->refs, 1);
    atomic_init(&c->cancel, false);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    qg_arena_init(&c->arena, 8192);
    qg_buf_init(&c->events, OA_EVENTS_MAX);
    new_id(c->id, sizeof c->id);
    c->created = qg_time_now_ms() / 1000;
    return c;
}

static void oa_unref(oa_call *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
    qg_stream_waker_unref(c->waker);
    qg_buf_free(&c->events);
    qg_arena_free(&c->arena);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Transport thread: one fragment of the answer. */
static void oa_on_delta(void *ud, const qg_ai_delta *d)
{
    oa_call *c = ud;
    pthread_mutex_lock(&c->mu);
    bool first = !c->started;
    if (qg_openai_chunk_delta(&c->events, c->id, c->model, c->created, d, first))
        atomic_store(&c->cancel, true); /* over the cap: the client stopped reading */
    c->started = true;
    if (first) pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    qg_stream_wake(c->waker);
}

/* The answer as events, for a provider that delivered no deltas (or an
 * answer that was already complete). Under mu. */
static void events_from_result(oa_call *c)
{
    const qg_ai_response *resp = &c->res.resp;
    bool first = !c->started;
    if (resp->text && *resp->text) {
        qg_ai_delta d = {.kind = QG_AI_DELTA_TEXT, .text = resp->text, .len = strlen(resp->text)};
        (void)qg_openai_chunk_delta(&c->events, c->id, c->model, c->created, &d, first);
        first = false;
    }
    for (size_t i = 0; i < resp->n_tool_calls; i++) {
        const qg_ai_tool_call *tc = &resp->tool_calls[i];
        const char *args = tc->arguments ? tc->arguments : "{}";
        qg_ai_delta d = {.kind = QG_AI_DELTA_TOOL_CALL,
                         .index = (int)i,
                         .id = tc->id,
                         .name = tc->name ? tc->name : "",
                         .text = args,
                         .len = strlen(args)};
        (void)qg_openai_chunk_delta(&c->events, c->id, c->model, c->created, &d, first);
        first = false;
    }
}

/* The stream's end: finish reason, usage when asked, [DONE]. Under mu. */
static void events_final(oa_call *c)
{
    if (c->rc) {
        oa_errmap m = oa_map(c->res.resp.error.kind, c->rc);
        const char *why = c->err.msg[0]                  ? c->err.msg
                          : c->res.resp.error.message[0] ? c->res.resp.error.message
                                                         : "the call failed";
        (void)qg_openai_chunk_error(&c->events, why, m.type, m.code);
    } else {
        if (!c->started) events_from_result(c);
        (void)qg_openai_chunk_finish(&c->events, c->id, c->model, c->created,
                                     c->res.resp.finish_reason);
        if (c->include_usage)
            (void)qg_openai_chunk_usage(&c->events, c->id, c->model, c->created,
                                        &c->res.resp.usage);
    }
    (void)qg_openai_chunk_done(&c->events);
}

/* AI pool thread: the call ended. The job's reference goes here. */
static void oa_on_done(void *ud, qg_status rc, const qg_ai_result *out, const qg_error *err)
{
    oa_call *c = ud;
    pthread_mutex_lock(&c->mu);
    c->rc = rc;
    if (err) c->err = *err;
    /* out is &c->res: written by the layer on this thread before done. */
    (void)out;
    /* A stream already running gets its end here; otherwise the handler
     * still waits and decides between an error and a whole reply. */
    if (c->started) events_final(c);
    c->finished = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    qg_stream_wake(c->waker);
    oa_unref(c);
}

/* Loop thread: hands over what is buffered. */
static bool oa_poll(void *arg, qg_buf *out)
{
    oa_call *c = arg;
    pthread_mutex_lock(&c->mu);
    if (c->events.len) {
        if (qg_buf_append(out, c->events.data, c->events.len)) atomic_store(&c->cancel, true);
        qg_buf_reset(&c->events);
    }
    bool done = c->finished;
    pthread_mutex_unlock(&c->mu);
    return done;
}

/* Loop thread: the stream ended or the client went away. */
static void oa_stream_free(void *arg)
{
    oa_call *c = arg;
    atomic_store(&c->cancel, true); /* no-op when finished */
    oa_unref(c);
}

static void complete_stream(qg_req *r, oa_call *c, const qg_ai_request *req)
{
    fill_call(r, &c->arena, &c->call, c->model);
    c->call.req = *req;
    c->call.req.stream = true;
    c->call.on_delta = oa_on_delta;
    c->call.ud = c;
    c->call.cancel = &c->cancel;
    c->waker = qg_req_stream_waker(r);

    atomic_fetch_add(&c->refs, 1); /* the job's */
    if (qg_ai_start(r->app->ai, &c->call, &c->arena, &c->res, oa_on_done, c) != QG_OK) {
        atomic_fetch_sub(&c->refs, 1);
        oa_error(r, 503, "api_error", "unavailable", "the server is shutting down");
        return;
    }

    pthread_mutex_lock(&c->mu);
    while (!c->started && !c->finished) pthread_cond_wait(&c->cv, &c->mu);
    if (c->finished && !c->started && c->rc) {
        pthread_mutex_unlock(&c->mu);
        reply_failure(r, c->model, c->rc, &c->res, &c->err);
        return;
    }
    if (c->finished && !c->started) events_final(c);
    /* Whatever is buffered is the first chunk; when the call already ended
     * it is the whole reply and no stream is needed. */
    qg_reply_raw(r, 200, "text/event-stream", c->events.data ? c->events.data : "", c->events.len);
    qg_buf_reset(&c->events);
    bool finished = c->finished;
    pthread_mutex_unlock(&c->mu);
    qg_reply_header(r, "cache-control", "no-cache");
    if (finished) {
        /* out is written before finished is set, under mu */
        r->upstream_us = c->res.upstream_us;
        r->upstream_stream = true;
        return;
    }
    atomic_fetch_add(&c->refs, 1); /* the stream's */
    /* Read by the loop once oa_poll has seen finished (under mu). */
    r->stream_upstream_us = &c->res.upstream_us;
    r->stream_poll = oa_poll;
    r->stream_free = oa_stream_free;
    r->stream_arg = c;
}

void qg_h_openai_chat(qg_req *r)
{
    if (!r->app->ai) {
        oa_error(r, 503, "api_error", "unavailable", "the AI layer is not running");
        return;
    }
    drop_db(r);
    cJSON *body = body_json(r);
    if (!body) return;
    qg_ai_request req;
    const char *model = NULL;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"))) {
        if (parse_body(r, body, &r->arena, &req, &model)) complete_sync(r, &req, model);
        cJSON_Delete(body);
        return;
    }
    /* A stream's request outlives this handler: it goes into the call's
     * own arena. */
    oa_call *c = oa_new();
    if (parse_body(r, body, &c->arena, &req, &model)) {
        c->model = model;
        c->include_usage = qg_openai_wants_usage(body);
        cJSON_Delete(body);
        body = NULL;
        complete_stream(r, c, &req);
    }
    cJSON_Delete(body);
    oa_unref(c);
}

/* ---- models ---- */

/* One fixed "created" per process: the catalog keeps no creation times. */
static int64_t models_created(void)
{
    static atomic_llong created;
    long long v = atomic_load(&created);
    if (v) return v;
    long long now = (long long)(qg_time_now_ms() / 1000), expect = 0;
    return atomic_compare_exchange_strong(&created, &expect, now) ? now : expect;
}

static cJSON *model_json(const char *id)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)models_created());
    cJSON_AddStringToObject(m, "owned_by", OA_OWNED_BY);
    return m;
}

/* The named models, builtin always among them (first when the catalog
 * does not name it). The caller frees the array. */
static size_t model_names(qg_ai *ai, qg_ai_model **models, bool *has_builtin)
{
    size_t n = 0;
    *models = NULL;
    *has_builtin = false;
    if (ai && qg_ai_list_models(ai, models, &n) != QG_OK) n = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp((*models)[i].name, OA_BUILTIN) == 0) *has_builtin = true;
    return n;
}

void qg_h_openai_models(qg_req *r)
{
    qg_ai_model *models;
    bool has_builtin;
    size_t n = model_names(r->app->ai, &models, &has_builtin);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    if (!has_builtin) cJSON_AddItemToArray(data, model_json(OA_BUILTIN));
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(data, model_json(models[i].name));
    free(models);
    qg_reply_json(r, 200, o);
}

void qg_h_openai_model(qg_req *r)
{
    const char *id = r->param[0];
    qg_ai_model *models;
    bool has_builtin;
    size_t n = model_names(r->app->ai, &models, &has_builtin);
    bool found = strcmp(id, OA_BUILTIN) == 0;
    for (size_t i = 0; i < n && !found; i++) found = strcmp(models[i].name, id) == 0;
    free(models);
    if (!found) {
        oa_error(r, 404, "invalid_request_error", "model_not_found",
                 "model '%.128s': no such model (GET /v1/models lists them)", id);
        return;
    }
    qg_reply_json(r, 200, model_json(id));
}
