/*
 * embed.c - embeddings through the AI layer's providers (see embed.h).
 *
 * The call goes the way a chat call does, with its own compact attempt
 * loop because the chat loop (exec.c) is built around a chat request and
 * response: the budget check first (a refused call sends nothing and is
 * still recorded), then the named model's plan from the router (priority,
 * fallback chain, cool-downs), and for each deployment its rpm/tpm slot,
 * one HTTP exchange through the shared transport, the provider's
 * decode_embed or decode_error, a health report to the router, and retries
 * with the same options and backoff as chat calls (QG_AI_RETRIES,
 * QG_AI_RETRY_BASE_MS, QG_AI_RETRY_CAP_MS, QG_AI_RETRY_AFTER_MAX_MS,
 * QG_AI_RATE_WAIT_MS, QG_AI_TOTAL_TIMEOUT_MS, read through
 * qg_ai_exec_opts_default). Errors that retrying will not cure (auth, bad
 * request, an undecodable reply, a reply with the wrong number of vectors)
 * move to the next deployment at once.
 *
 * Usage: the input tokens the provider reports; Gemini reports none, so
 * they are estimated (characters / 4, at least 1 per input), the result
 * says so and the ai_calls row's error column carries a note. Embeddings
 * have no output tokens; the cost is input tokens at the deployment's
 * price_in.
 *
 * Keys are resolved per deployment, used for one encode, and wiped; they
 * never reach a log or an error.
 */
#include "ai/embed.h"
#include "ai/ai_int.h"
#include "ai/exec.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PLAN_MAX             32
#define KEY_MAX              1024
#define INPUT_MAX_BYTES      ((size_t)1 << 20)
#define ESTIMATED_USAGE_NOTE "input tokens estimated (characters / 4): the provider reports none"

/* qg_ai_embed_take, the providers' decoding helper, is in embed_take.c
 * (no dependencies beyond cJSON and the arena, so the wire fuzzer links it). */

/* ---- the call ---- */

static pthread_once_t opts_once = PTHREAD_ONCE_INIT;
static qg_ai_exec_opts opts;

static void load_opts(void)
{
    qg_ai_exec_opts_default(&opts);
}

static void nap_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Full jitter, as exec.c: uniform in [0, min(cap, base * 2^n)]. */
static int64_t backoff_ms(int n)
{
    static _Thread_local uint64_t s;
    if (!s)
        s = (uint64_t)qg_time_mono_us() ^ ((uint64_t)(uintptr_t)&s << 17) ^ 0x9e3779b97f4a7c15ULL;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    int64_t ceil = opts.backoff_base_ms;
    for (int i = 0; i < n && ceil < opts.backoff_cap_ms; i++) ceil *= 2;
    if (ceil > opts.backoff_cap_ms) ceil = opts.backoff_cap_ms;
    return ceil > 0 ? (int64_t)(s % (uint64_t)(ceil + 1)) : 0;
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

/* The token estimate: characters / 4, at least 1 per input. */
static int64_t estimate_tokens(const qg_ai_embed_call *call)
{
    int64_t t = 0;
    for (size_t i = 0; i < call->n_inputs; i++) {
        int64_t k = (int64_t)strlen(call->inputs[i]) / 4;
        t += k > 0 ? k : 1;
    }
    return t;
}

typedef struct run {
    qg_ai *ai;
    const qg_ai_embed_call *call;
    qg_arena *a;
    int64_t upstream_us;
    int attempts;
    qg_ai_deployment dep; /* the one that answered, else the last tried */
    qg_ai_embed_reply reply;
} run;

/* One exchange with deployment d; rn->reply.error says how it went. */
static void attempt(run *rn, const qg_ai_deployment *d, const qg_ai_provider *p, const char *key)
{
    qg_ai_embed_reply *r = &rn->reply;
    memset(r, 0, sizeof *r);
    r->error.retry_after_ms = -1;
    qg_ai_http_req hr = {0};
    qg_error eerr = {0};
    if (p->encode_embed(d, key, rn->call->inputs, rn->call->n_inputs, rn->a, &hr, &eerr)) {
        set_error(&r->error, QG_AI_EBADREQ, 0, "cannot encode the request: %s", eerr.msg);
        qg_buf_free(&hr.body);
        return;
    }
    qg_ai_exchange x = {
        .req = &hr,
        .connect_timeout_ms = d->connect_timeout_ms,
        .read_timeout_ms = d->read_timeout_ms,
        .total_timeout_ms = opts.total_timeout_ms,
        .body_max = opts.body_max,
    };
    qg_ai_transport_perform(qg_ai_get_transport(rn->ai), &x);
    rn->upstream_us += x.total_us;
    if (x.kind != QG_AI_OK) {
        set_error(&r->error, x.kind, x.http_status, "%s", x.errmsg);
    } else if (x.http_status >= 200 && x.http_status < 300) {
        qg_error derr = {0};
        if (p->decode_embed(x.body.len ? x.body.data : "", x.body.len, rn->a, r, &derr)) {
            qg_ai_errkind k = r->error.kind ? r->error.kind : QG_AI_EPROTOCOL;
            set_error(&r->error, k, x.http_status, "undecodable embeddings reply: %s",
                      derr.msg[0] ? derr.msg : "not the provider's format");
        } else if (r->n != rn->call->n_inputs) {
            set_error(&r->error, QG_AI_EPROTOCOL, x.http_status,
                      "deployment '%s' returned %zu vectors for %zu inputs", d->id, r->n,
                      rn->call->n_inputs);
        }
    } else {
        const char *ra = x.retry_after[0] ? x.retry_after : NULL;
        qg_ai_error e = {.retry_after_ms = -1};
        if (p->decode_error)
            p->decode_error(x.http_status, ra, x.body.len ? x.body.data : "", x.body.len, &e);
        if (e.kind == QG_AI_OK) e.kind = qg_ai_errkind_from_status(x.http_status);
        if (e.kind == QG_AI_OK) e.kind = QG_AI_ESERVER;
        e.http_status = x.http_status;
        if (e.retry_after_ms < 0 && ra) e.retry_after_ms = qg_ai_parse_retry_after(ra);
        if (!e.message[0]) snprintf(e.message, sizeof e.message, "HTTP %d", x.http_status);
        r->error = e;
    }
    qg_ai_exchange_free(&x);
    qg_buf_free(&hr.body);
}

/* Waits for an rpm/tpm slot up to QG_AI_RATE_WAIT_MS; false with *e set. */
static bool rate_slot(run *rn, qg_ai_router *r, const qg_ai_deployment *d, int64_t est,
                      qg_ai_error *e)
{
    int64_t waited = 0, wait_ms = 0;
    while (qg_ai_router_acquire(r, d->id, est, &wait_ms) == QG_EAGAIN) {
        if (waited + wait_ms > opts.rate_wait_max_ms) {
            set_error(e, QG_AI_ERATE, 0,
                      "deployment '%s' is at its rpm/tpm limit for another %lld ms", d->id,
                      (long long)wait_ms);
            e->retry_after_ms = wait_ms;
            return false;
        }
        int64_t t0 = qg_time_mono_us();
        nap_ms(wait_ms);
        rn->upstream_us += qg_time_mono_us() - t0;
        waited += wait_ms;
    }
    return true;
}

/* Tries one deployment with retries; true when it answered. */
static bool try_deployment(run *rn, qg_ai_router *r, const qg_ai_deployment *d, int64_t est,
                           qg_ai_error *last)
{
    const qg_ai_provider *p = qg_ai_provider_find(d->provider);
    if (!p || !p->encode_embed || !p->decode_embed) {
        set_error(last, QG_AI_EBADREQ, 0, "deployment '%s': provider '%s' has no embeddings", d->id,
                  d->provider);
        return false;
    }
    char key[KEY_MAX];
    key[0] = 0;
    if (d->key_ref[0] && qg_ai_resolve_key(rn->ai, d, key, sizeof key)) {
        set_error(last, QG_AI_EAUTH, 0, "deployment '%s': its key could not be read", d->id);
        qg_ai_router_report(r, d->id, QG_AI_EAUTH, -1);
        return false;
    }
    bool ok = false;
    for (int n = 0;; n++) {
        if (!rate_slot(rn, r, d, est, last)) break;
        rn->attempts++;
        attempt(rn, d, p, key);
        qg_ai_errkind k = rn->reply.error.kind;
        int64_t actual = k ? 0 : rn->reply.usage.input > 0 ? rn->reply.usage.input : est;
        qg_ai_router_add_tokens(r, d->id, est, actual);
        qg_ai_router_report(r, d->id, k, rn->reply.error.retry_after_ms);
        if (k == QG_AI_OK) {
            ok = true;
            break;
        }
        *last = rn->reply.error;
        qg_debug("ai: embeddings %s attempt %d on %s: %s (HTTP %d): %s", d->model_name, n + 1,
                 d->id, qg_ai_errkind_name(k), last->http_status, last->message);
        if (!qg_ai_errkind_retryable(k) || n >= opts.retries) break;
        int64_t delay = backoff_ms(n);
        if (last->retry_after_ms >= 0) {
            if (last->retry_after_ms > opts.retry_after_max_ms) break;
            delay = last->retry_after_ms;
        }
        int64_t t0 = qg_time_mono_us();
        nap_ms(delay);
        rn->upstream_us += qg_time_mono_us() - t0;
    }
    explicit_bzero(key, sizeof key);
    return ok;
}

static qg_status check_call(const qg_ai_embed_call *call, qg_error *err)
{
    if (call->n_inputs < 1 || call->n_inputs > QG_AI_EMBED_MAX_INPUTS || !call->inputs)
        return qg_error_set(err, QG_EINVAL, "inputs: %zu inputs, expected 1..%d", call->n_inputs,
                            QG_AI_EMBED_MAX_INPUTS);
    for (size_t i = 0; i < call->n_inputs; i++) {
        if (!call->inputs[i] || !call->inputs[i][0])
            return qg_error_set(err, QG_EINVAL, "inputs[%zu]: empty (providers reject empty text)",
                                i);
        if (strlen(call->inputs[i]) > INPUT_MAX_BYTES)
            return qg_error_set(err, QG_EINVAL, "inputs[%zu]: longer than %zu bytes", i,
                                INPUT_MAX_BYTES);
    }
    return QG_OK;
}

/* QG_OK or QG_EDENIED (err says which budget). As qg_ai_complete: when a
 * budget applies, usage still being written is flushed first so it counts. */
static qg_status budget_check(qg_ai *ai, const qg_ai_embed_call *call, qg_error *err)
{
    qg_store *st = qg_ai_store(ai);
    qg_conn *c = NULL;
    bool applies = false;
    qg_status rc = qg_store_acquire(st, &c, err);
    if (rc) return rc;
    rc = qg_ai_budget_check_ex(c, call->user_id, call->token_id, qg_time_now_ms(), &applies, err);
    qg_store_release(st, c);
    if (rc || !applies) return rc;
    qg_ai_flush(ai);
    if ((rc = qg_store_acquire(st, &c, err))) return rc;
    rc = qg_ai_budget_check(c, call->user_id, call->token_id, qg_time_now_ms(), err);
    qg_store_release(st, c);
    return rc;
}

static void record(qg_ai *ai, const qg_ai_embed_call *call, const char *model_name, run *rn,
                   qg_ai_embed_result *out, int64_t t0)
{
    bool ok = out->error.kind == QG_AI_OK;
    qg_ai_call_record rec = {
        .user_id = call->user_id,
        .token_id = call->token_id,
        .model_name = model_name,
        .deployment_id = out->deployment_id,
        .provider = out->provider,
        .model = rn->dep.model[0] ? rn->dep.model : NULL,
        .usage = out->usage,
        .cost_usd = out->cost_usd,
        .latency_ms = (qg_time_mono_us() - t0) / 1000,
        .attempts = out->attempts,
        .outcome = qg_ai_errkind_name(out->error.kind),
        .error = !ok                    ? out->error.message
                 : out->usage_estimated ? ESTIMATED_USAGE_NOTE
                                        : NULL,
        .ts_ms = qg_time_now_ms(),
    };
    int64_t overhead = qg_time_mono_us() - t0 - rn->upstream_us;
    qg_ai_record_call(ai, &rec, overhead > 0 ? overhead : 0);
}

qg_status qg_ai_embed(qg_ai *ai, const qg_ai_embed_call *call, qg_arena *a, qg_ai_embed_result *out,
                      qg_error *err)
{
    int64_t t0 = qg_time_mono_us();
    pthread_once(&opts_once, load_opts);
    memset(out, 0, sizeof *out);
    out->error.retry_after_ms = -1;
    const char *model = call->model && *call->model ? call->model : "embed";
    run rn = {.ai = ai, .call = call, .a = a};
    qg_status rc = check_call(call, err);
    if (rc) {
        set_error(&out->error, QG_AI_EBADREQ, 0, "%s", err ? err->msg : "bad input");
        return rc;
    }

    rc = budget_check(ai, call, err);
    if (rc == QG_EDENIED) {
        set_error(&out->error, QG_AI_EBUDGET, 0, "%s", err ? err->msg : "budget exhausted");
        record(ai, call, model, &rn, out, t0); /* a refused call is still a call */
        return rc;
    }
    if (rc) return rc;

    qg_ai_router *r = qg_ai_get_router(ai);
    qg_ai_deployment plan[PLAN_MAX];
    size_t n = 0;
    qg_error perr = {0};
    rc = qg_ai_router_plan(r, model, plan, PLAN_MAX, &n, &perr);
    if (rc) {
        set_error(&out->error, QG_AI_ENOMODEL, 0, "%s", perr.msg);
        qg_error_set(err, rc, "embeddings model '%s': %s", model, perr.msg);
        record(ai, call, model, &rn, out, t0);
        return rc;
    }

    int64_t est = estimate_tokens(call);
    qg_ai_error last = {.kind = QG_AI_ENOMODEL, .retry_after_ms = -1};
    snprintf(last.message, sizeof last.message, "no deployment of '%s' was tried", model);
    bool ok = false;
    size_t tried = 0;
    for (size_t i = 0; i < n && !ok; i++) {
        rn.dep = plan[i];
        tried++;
        ok = try_deployment(&rn, r, &plan[i], est, &last);
        if (!ok && i + 1 < n)
            qg_info("ai: embeddings %s: deployment %s failed (%s); trying %s", model, plan[i].id,
                    qg_ai_errkind_name(last.kind), plan[i + 1].id);
    }
    out->attempts = rn.attempts;
    if (tried) {
        out->deployment_id = qg_arena_strndup(a, rn.dep.id, strlen(rn.dep.id));
        out->provider = qg_arena_strndup(a, rn.dep.provider, strlen(rn.dep.provider));
    }
    if (ok) {
        out->vectors = rn.reply.vectors;
        out->n = rn.reply.n;
        out->dim = rn.reply.dim;
        out->usage = rn.reply.usage;
        out->usage.output = 0;
        if (out->usage.cached < 0) out->usage.cached = 0;
        if (out->usage.input < 0) {
            out->usage.input = est;
            out->usage_estimated = true;
        }
        out->cost_usd = qg_ai_cost(&rn.dep, &out->usage);
        rc = QG_OK;
    } else {
        out->error = last;
        rc = qg_ai_errkind_status(last.kind);
        if (!rc) rc = QG_EAGAIN;
        qg_error_set(err, rc, "embeddings model '%s': %s: %s (%d attempt%s on %zu deployment%s)",
                     model, qg_ai_errkind_name(last.kind), last.message, rn.attempts,
                     rn.attempts == 1 ? "" : "s", tried, tried == 1 ? "" : "s");
    }
    record(ai, call, model, &rn, out, t0);
    return rc;
}
