/*
 * exec.c - the attempt loop (see exec.h).
 *
 * One attempt is: encode with the provider, perform through the transport
 * (a stream's bytes go through a framer straight into the provider's
 * stream_event and out to the caller as deltas), then decode the body, the
 * assembled stream, or the error reply. Every attempt's outcome is reported
 * to the router, which turns repeated failures into cool-downs for every
 * caller, not just this one.
 *
 * Waiting (backoff, Retry-After, rate windows) sleeps in short slices so a
 * cancel flag ends it promptly; the time counts as upstream time, so the
 * overhead the facade computes is quantgate's own work.
 */
#include "ai/exec.h"

#include <quantgate/time.h>
#include <quantgate/log.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PLAN_MAX     32
#define KEY_MAX      1024
#define NAP_SLICE_MS 10

static int64_t env_int(const char *name, int64_t def, int64_t min)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end || n < min) {
        qg_warn("%s=%s is not an integer >= %lld; using %lld", name, v, (long long)min,
                (long long)def);
        return def;
    }
    return n;
}

void qg_ai_exec_opts_default(qg_ai_exec_opts *o)
{
    memset(o, 0, sizeof *o);
    o->retries = (int)env_int("QG_AI_RETRIES", 2, 0);
    o->backoff_base_ms = env_int("QG_AI_RETRY_BASE_MS", 250, 0);
    o->backoff_cap_ms = env_int("QG_AI_RETRY_CAP_MS", 8000, 0);
    o->retry_after_max_ms = env_int("QG_AI_RETRY_AFTER_MAX_MS", 30000, 0);
    o->rate_wait_max_ms = env_int("QG_AI_RATE_WAIT_MS", 2000, 0);
    o->total_timeout_ms = env_int("QG_AI_TOTAL_TIMEOUT_MS", 0, 0);
}

static pthread_once_t defaults_once = PTHREAD_ONCE_INIT;
static qg_ai_exec_opts defaults;

static void load_defaults(void)
{
    qg_ai_exec_opts_default(&defaults);
}

static bool cancelled(atomic_bool *c)
{
    return c && atomic_load(c);
}

/* Sleeps ms unless cancel is set first; false when cancelled. */
static bool nap(int64_t ms, atomic_bool *cancel)
{
    int64_t end = qg_time_mono_us() + ms * 1000;
    for (;;) {
        if (cancelled(cancel)) return false;
        int64_t left = end - qg_time_mono_us();
        if (left <= 0) return true;
        if (left > NAP_SLICE_MS * 1000) left = NAP_SLICE_MS * 1000;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Full jitter: uniform in [0, min(cap, base * 2^n)]. */
static int64_t backoff_ms(const qg_ai_exec_opts *o, int n)
{
    static _Thread_local uint64_t s;
    if (!s)
        s = (uint64_t)qg_time_mono_us() ^ ((uint64_t)(uintptr_t)&s << 17) ^ 0x9e3779b97f4a7c15ULL;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    int64_t ceil = o->backoff_base_ms;
    for (int i = 0; i < n && ceil < o->backoff_cap_ms; i++) ceil *= 2;
    if (ceil > o->backoff_cap_ms) ceil = o->backoff_cap_ms;
    return ceil > 0 ? (int64_t)(s % (uint64_t)(ceil + 1)) : 0;
}

int64_t qg_ai_estimate_tokens(const qg_ai_request *req)
{
    size_t chars = req->system ? strlen(req->system) : 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        const qg_ai_msg *m = &req->messages[i];
        if (m->content) chars += strlen(m->content);
        for (size_t k = 0; k < m->n_tool_calls; k++)
            if (m->tool_calls[k].arguments) chars += strlen(m->tool_calls[k].arguments);
    }
    for (size_t i = 0; i < req->n_tools; i++) {
        if (req->tools[i].description) chars += strlen(req->tools[i].description);
        if (req->tools[i].parameters) chars += strlen(req->tools[i].parameters);
    }
    return (int64_t)(chars / 4) + (req->max_tokens > 0 ? req->max_tokens : 256);
}

/* ---- one attempt ---- */

typedef struct run {
    const qg_ai_exec_opts *o;
    qg_ai_transport *t;
    const qg_ai_request *req;
    qg_ai_stream_fn on_delta;
    void *ud;
    atomic_bool *cancel;
    qg_arena *a;
    bool delivered; /* a delta reached the caller (written on the transport thread, read
                       after perform returned: the waiter's mutex orders them) */
    int64_t upstream_us;
} run;

static void relay(void *ud, const qg_ai_delta *d)
{
    run *rn = ud;
    rn->delivered = true;
    rn->on_delta(rn->ud, d);
}

static void set_error(qg_ai_error *e, qg_ai_errkind kind, int http_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(qg_ai_error *e, qg_ai_errkind kind, int http_status, const char *fmt, ...)
{
    e->kind = kind;
    e->http_status = http_status;
    e->retry_after_ms = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static void clear_response(qg_ai_response *out)
{
    memset(out, 0, sizeof *out);
    out->text = "";
    out->error.retry_after_ms = -1;
}

/* The body of a 2xx reply or of a finished stream into out. */
static void decode_ok(run *rn, const qg_ai_provider *p, qg_ai_exchange *x, qg_ai_stream *st,
                      qg_ai_response *out)
{
    if (st) {
        qg_ai_stream_finish(st, out);
        if (out->error.kind) return; /* an error event inside the stream */
        if (!st->done)
            set_error(&out->error, QG_AI_EPROTOCOL, x->http_status,
                      "the stream ended before the provider's end marker");
        return;
    }
    qg_error derr = {0};
    if (p->decode(x->body.len ? x->body.data : "", x->body.len, rn->a, out, &derr)) {
        qg_ai_errkind k = out->error.kind ? out->error.kind : QG_AI_EPROTOCOL;
        set_error(&out->error, k, x->http_status, "undecodable reply: %s",
                  derr.msg[0] ? derr.msg : "not the provider's format");
    }
}

static void decode_failure(const qg_ai_provider *p, qg_ai_exchange *x, qg_ai_response *out)
{
    const char *ra = x->retry_after[0] ? x->retry_after : NULL;
    qg_ai_error e = {.retry_after_ms = -1};
    if (p->decode_error)
        p->decode_error(x->http_status, ra, x->body.len ? x->body.data : "", x->body.len, &e);
    if (e.kind == QG_AI_OK) e.kind = qg_ai_errkind_from_status(x->http_status);
    if (e.kind == QG_AI_OK) e.kind = QG_AI_ESERVER;
    e.http_status = x->http_status;
    if (e.retry_after_ms < 0 && ra) e.retry_after_ms = qg_ai_parse_retry_after(ra);
    if (!e.message[0]) snprintf(e.message, sizeof e.message, "HTTP %d", x->http_status);
    out->error = e;
}

static void http_attempt(run *rn, const qg_ai_deployment *d, const qg_ai_provider *p,
                         const char *key, qg_ai_response *out)
{
    qg_ai_http_req hr = {0};
    qg_error eerr = {0};
    if (p->encode(d, key, rn->req, rn->a, &hr, &eerr)) {
        set_error(&out->error, QG_AI_EBADREQ, 0, "cannot encode the request: %s", eerr.msg);
        qg_buf_free(&hr.body);
        return;
    }
    bool streaming = rn->req->stream && p->stream_event;
    qg_ai_stream st;
    qg_ai_framer fr;
    if (streaming) {
        qg_ai_stream_init(&st, rn->a, rn->on_delta ? relay : NULL, rn);
        qg_ai_framer_init(&fr, p, &st);
    }
    qg_ai_exchange x = {
        .req = &hr,
        .connect_timeout_ms = d->connect_timeout_ms,
        .read_timeout_ms = d->read_timeout_ms,
        .total_timeout_ms = rn->o->total_timeout_ms,
        .cancel = rn->cancel,
        .body_max = rn->o->body_max,
        .framer = streaming ? &fr : NULL,
    };
    qg_ai_transport_perform(rn->t, &x);
    rn->upstream_us += x.total_us;
    bool finished = false;
    if (x.kind != QG_AI_OK) {
        set_error(&out->error, x.kind, x.http_status, "%s", x.errmsg);
    } else if (x.http_status >= 200 && x.http_status < 300) {
        decode_ok(rn, p, &x, streaming ? &st : NULL, out);
        finished = streaming;
    } else {
        decode_failure(p, &x, out);
    }
    if (streaming) {
        if (!finished) { /* frees the assembly buffers; the partial answer is dropped */
            qg_ai_response scratch;
            qg_ai_error keep = out->error;
            qg_ai_stream_finish(&st, &scratch);
            out->error = keep;
        }
        qg_ai_framer_free(&fr);
    }
    qg_ai_exchange_free(&x);
    qg_buf_free(&hr.body);
}

static void local_attempt(run *rn, const qg_ai_deployment *d, const qg_ai_provider *p,
                          qg_ai_response *out)
{
    qg_error cerr = {0};
    int64_t t0 = qg_time_mono_us();
    qg_status rc = p->complete(d, rn->req, rn->a, rn->on_delta ? relay : NULL, rn, out, &cerr);
    rn->upstream_us += qg_time_mono_us() - t0;
    if (rc && !out->error.kind)
        set_error(&out->error, rc == QG_EINVAL ? QG_AI_EBADREQ : QG_AI_ESERVER, 0, "%s",
                  cerr.msg[0] ? cerr.msg : "the in-process provider failed");
}

/* ---- the loop ---- */

/* Waits for an rpm/tpm slot; false (and *e set) when it would take longer
 * than allowed or the call was cancelled. */
static bool rate_slot(run *rn, qg_ai_router *r, const qg_ai_deployment *d, int64_t est,
                      qg_ai_error *e)
{
    int64_t waited = 0, wait_ms = 0;
    while (qg_ai_router_acquire(r, d->id, est, &wait_ms) == QG_EAGAIN) {
        if (waited + wait_ms > rn->o->rate_wait_max_ms) {
            set_error(e, QG_AI_ERATE, 0,
                      "deployment '%s' is at its rpm/tpm limit for another %lld ms", d->id,
                      (long long)wait_ms);
            e->retry_after_ms = wait_ms;
            return false;
        }
        int64_t t0 = qg_time_mono_us();
        bool ok = nap(wait_ms, rn->cancel);
        rn->upstream_us += qg_time_mono_us() - t0;
        if (!ok) {
            set_error(e, QG_AI_ECANCELLED, 0, "cancelled");
            return false;
        }
        waited += wait_ms;
    }
    return true;
}

qg_status qg_ai_exec_with(const qg_ai_exec_opts *opts, qg_ai_transport *t, qg_ai_router *r,
                          const char *model, const qg_ai_request *req, qg_ai_key_fn key_fn,
                          void *key_ud, qg_ai_stream_fn on_delta, void *ud, atomic_bool *cancel,
                          qg_arena *a, qg_ai_response *out, qg_ai_exec_info *info, qg_error *err)
{
    if (!opts) {
        pthread_once(&defaults_once, load_defaults);
        opts = &defaults;
    }
    if (!model || !*model) model = "analyst";
    memset(info, 0, sizeof *info);
    info->last_error.retry_after_ms = -1;
    clear_response(out);
    run rn = {
        .o = opts, .t = t, .req = req, .on_delta = on_delta, .ud = ud, .cancel = cancel, .a = a};
    qg_ai_deployment plan[PLAN_MAX];
    size_t n = 0;
    qg_status rc = qg_ai_router_plan(r, model, plan, PLAN_MAX, &n, err);
    if (rc) {
        set_error(&out->error, QG_AI_ENOMODEL, 0, "%s", err ? err->msg : "no deployment");
        info->last_error = out->error;
        return rc;
    }
    int64_t est = qg_ai_estimate_tokens(req);
    char key[KEY_MAX];
    qg_ai_error last = {.kind = QG_AI_ENOMODEL, .retry_after_ms = -1};
    snprintf(last.message, sizeof last.message, "no deployment of '%s' was tried", model);

    for (size_t i = 0; i < n; i++) {
        const qg_ai_deployment *d = &plan[i];
        info->deployment = *d;
        info->deployments_tried++;
        const qg_ai_provider *p =
            opts->provider_for ? opts->provider_for(d) : qg_ai_provider_find(d->provider);
        if (!p || (!p->complete && !p->encode)) {
            set_error(&last, QG_AI_EBADREQ, 0, "deployment '%s': unknown provider '%s'", d->id,
                      d->provider);
            continue;
        }
        key[0] = 0;
        if (!p->complete && key_fn && d->key_ref[0] && key_fn(key_ud, d, key, sizeof key)) {
            set_error(&last, QG_AI_EAUTH, 0, "deployment '%s': its key could not be read", d->id);
            qg_ai_router_report(r, d->id, QG_AI_EAUTH, -1);
            continue;
        }
        for (int attempt = 0;; attempt++) {
            if (cancelled(cancel)) {
                set_error(&last, QG_AI_ECANCELLED, 0, "cancelled");
                goto failed;
            }
            if (!rate_slot(&rn, r, d, est, &last)) {
                if (last.kind == QG_AI_ECANCELLED) goto failed;
                break; /* the next deployment may have room */
            }
            info->attempts++;
            clear_response(out);
            if (p->complete)
                local_attempt(&rn, d, p, out);
            else
                http_attempt(&rn, d, p, key, out);
            qg_ai_errkind k = out->error.kind;
            qg_ai_router_add_tokens(r, d->id, est, k ? 0 : out->usage.input + out->usage.output);
            qg_ai_router_report(r, d->id, k, out->error.retry_after_ms);
            if (k == QG_AI_OK) {
                explicit_bzero(key, sizeof key);
                info->fell_back = i > 0;
                info->upstream_us = rn.upstream_us;
                info->last_error = out->error;
                return QG_OK;
            }
            last = out->error;
            qg_debug("ai: %s attempt %d on %s: %s (HTTP %d): %s", model, attempt + 1, d->id,
                     qg_ai_errkind_name(k), last.http_status, last.message);
            if (rn.delivered) { /* the caller saw part of this answer */
                info->partial = true;
                goto failed;
            }
            if (k == QG_AI_ECANCELLED) goto failed;
            if (!qg_ai_errkind_retryable(k) || attempt >= opts->retries) break;
            int64_t delay = backoff_ms(opts, attempt);
            if (last.retry_after_ms >= 0) {
                if (last.retry_after_ms > opts->retry_after_max_ms) break;
                delay = last.retry_after_ms;
            }
            int64_t t0 = qg_time_mono_us();
            bool ok = nap(delay, cancel);
            rn.upstream_us += qg_time_mono_us() - t0;
            if (!ok) {
                set_error(&last, QG_AI_ECANCELLED, 0, "cancelled");
                goto failed;
            }
        }
        explicit_bzero(key, sizeof key);
        if (i + 1 < n)
            qg_info("ai: %s: deployment %s failed (%s); trying %s", model, d->id,
                    qg_ai_errkind_name(last.kind), plan[i + 1].id);
    }
failed:
    explicit_bzero(key, sizeof key);
    clear_response(out);
    out->error = last;
    info->last_error = last;
    info->upstream_us = rn.upstream_us;
    rc = qg_ai_errkind_status(last.kind);
    if (!rc) rc = QG_EAGAIN;
    qg_error_set(err, rc, "model '%s': %s: %s (%d attempt%s on %d deployment%s)", model,
                 qg_ai_errkind_name(last.kind), last.message, info->attempts,
                 info->attempts == 1 ? "" : "s", info->deployments_tried,
                 info->deployments_tried == 1 ? "" : "s");
    return rc;
}

qg_status qg_ai_exec(qg_ai_transport *t, qg_ai_router *r, const char *model,
                     const qg_ai_request *req, qg_ai_key_fn key_fn, void *key_ud,
                     qg_ai_stream_fn on_delta, void *ud, atomic_bool *cancel, qg_arena *a,
                     qg_ai_response *out, qg_ai_exec_info *info, qg_error *err)
{
    return qg_ai_exec_with(NULL, t, r, model, req, key_fn, key_ud, on_delta, ud, cancel, a, out,
                           info, err);
}
