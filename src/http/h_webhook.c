/*
 * h_webhook.c - POST /api/webhook/receive: TradingView-style alerts in.
 *
 * The handler authenticates (the shared secret in X-Webhook-Secret or
 * ?secret=, compared in constant time, or a quantgate API token; an
 * X-Signature HMAC when present or required), validates the payload
 * (signal.h names the field), and hands the signal to ingest. It does not
 * wait for the commit: it defers the reply, and ingest's completion (on the
 * batcher's thread, once the signal is durable) writes the answer and sends
 * it. The handler starts on the event loop (QG_ROUTE_LOOP_FIRST): a secret
 * or HMAC check, the parse and the hand-off need no database, so the common
 * case never wakes a worker thread; a request with an API token moves to a
 * worker for the token lookup. Thousands of webhooks share one fsync.
 *
 * Answers: 202 received (durable), 202 ignored (stored as filtered, with
 * the reason), 200 duplicate (the original's id), 400 naming the field,
 * 401/403 authentication, 413 too large, 429 rate limited with
 * Retry-After, 503 when the database cannot take it.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include "signal/service.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEBHOOK_BODY_MAX ((size_t)64 << 10)

static void reply_field_error(qg_req *r, const char *field, const qg_error *err)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(body, "error");
    cJSON_AddStringToObject(e, "code", "validation_failed");
    cJSON_AddStringToObject(e, "message", err->msg);
    if (field) cJSON_AddStringToObject(e, "field", field);
    r->error_code = "validation_failed";
    qg_reply_json(r, 400, body);
}

static bool hex_digest_eq(const unsigned char *mac, const char *hex)
{
    unsigned char want[crypto_auth_hmacsha256_BYTES];
    size_t n = 0;
    if (strlen(hex) != 2 * sizeof want ||
        sodium_hex2bin(want, sizeof want, hex, strlen(hex), NULL, &n, NULL) != 0 ||
        n != sizeof want)
        return false;
    return sodium_memcmp(mac, want, sizeof want) == 0;
}

static void hmac_of(const char *key, const char *prefix, const char *body, size_t len,
                    unsigned char *mac)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, strlen(key));
    if (prefix) {
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)prefix, strlen(prefix));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    }
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
}

/* X-Signature: sha256=<hex> of HMAC-SHA256(WEBHOOK_SECRET, body), or of
 * "<X-Timestamp>.<body>" (which also binds the timestamp), with
 * X-Timestamp (epoch seconds or ms, or ISO-8601) within the replay window.
 * False after replying 401. */
static bool signature_ok(qg_req *r, const qg_signals *sv, const char *sig)
{
    const char *ts = qg_req_header(r, "x-timestamp");
    if (!sv->webhook_secret) {
        qg_reply_error(r, 401, "unauthorized",
                       "X-Signature needs WEBHOOK_SECRET on the server (the HMAC key)");
        return false;
    }
    if (!ts || !*ts) {
        qg_reply_error(r, 401, "unauthorized", "X-Signature needs an X-Timestamp header");
        return false;
    }
    int64_t at = 0;
    qg_error err = {0};
    if (qg_time_parse_arg(ts, &at, &err) != QG_OK) {
        qg_reply_error(r, 401, "unauthorized", "X-Timestamp '%.40s': not a time", ts);
        return false;
    }
    int64_t skew = qg_time_now_ms() - at;
    if (skew > sv->replay_window_ms || -skew > sv->replay_window_ms) {
        qg_reply_error(r, 401, "unauthorized",
                       "X-Timestamp is %lld s away from the server's clock; the replay window "
                       "is %lld s",
                       (long long)((skew < 0 ? -skew : skew) / 1000),
                       (long long)(sv->replay_window_ms / 1000));
        return false;
    }
    if (strncmp(sig, "sha256=", 7) != 0) {
        qg_reply_error(r, 401, "unauthorized", "X-Signature must be 'sha256=<hex>'");
        return false;
    }
    unsigned char body_mac[crypto_auth_hmacsha256_BYTES], ts_mac[crypto_auth_hmacsha256_BYTES];
    hmac_of(sv->webhook_secret, NULL, r->body, r->body_len, body_mac);
    hmac_of(sv->webhook_secret, ts, r->body, r->body_len, ts_mac);
    /* Both forms are computed, so the time taken does not tell which one
     * was tried. */
    bool ok_body = hex_digest_eq(body_mac, sig + 7);
    bool ok_ts = hex_digest_eq(ts_mac, sig + 7);
    if (!ok_body && !ok_ts) {
        qg_reply_error(r, 401, "unauthorized", "X-Signature does not match the body");
        return false;
    }
    return true;
}

/* Secret, token or signature: false after replying. */
static bool webhook_auth(qg_req *r, const qg_signals *sv)
{
    const char *sig = qg_req_header(r, "x-signature");
    if (sig && *sig) {
        if (!signature_ok(r, sv, sig)) return false;
    } else if (sv->hmac_required) {
        qg_reply_error(r, 401, "unauthorized",
                       "QG_WEBHOOK_HMAC=required: send X-Signature: sha256=<hex> and X-Timestamp");
        return false;
    }
    if (r->authorization[0]) {
        if (!qg_req_authenticate(r)) return false;
        if (r->who.via_api_token && r->who.scope == QG_SCOPE_READ) {
            qg_reply_error(r, 403, "forbidden",
                           "this API token has the read scope; sending "
                           "signals needs write");
            return false;
        }
        return true;
    }
    if (sig && *sig) return true; /* the HMAC proves the secret */
    const char *secret = qg_req_header(r, "x-webhook-secret");
    if (!secret) secret = qg_req_query(r, "secret");
    if (!sv->webhook_secret) {
        qg_reply_error(r, 403, "forbidden",
                       "this server has no WEBHOOK_SECRET: authenticate with an API token");
        return false;
    }
    if (!secret || !qg_signals_secret_ok(sv, secret)) {
        qg_warn("webhook: %s secret from %s (request %s)", secret ? "wrong" : "no", r->address,
                r->request_id);
        qg_reply_error(r, 403, "forbidden",
                       secret ? "wrong webhook secret"
                              : "missing webhook secret: send X-Webhook-Secret or ?secret=");
        return false;
    }
    return true;
}

static bool correlation_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= QG_ID_MAX) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-_.:", *s)) return false;
    return true;
}

/* The common answer, formatted without building a tree: it is written on
 * the signal writer's thread, which every accept waits for. Both ids are
 * JSON-safe (generated, or checked by correlation_ok). */
#define RECEIVED_REPLY_MAX (64 + 2 * QG_ID_MAX)
static void reply_received(qg_req *r, const qg_signal *s)
{
    char body[RECEIVED_REPLY_MAX];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"received\",\"id\":\"%s\",\"correlation_id\":\"%s\"}", s->id,
                     s->correlation_id);
    qg_reply_raw(r, 202, "application/json", body, (size_t)n);
}

/* Writes the answer for an outcome into r. */
static void reply_outcome(qg_req *r, const qg_ingest_outcome *o)
{
    if (o->result == QG_INGEST_ACCEPTED) {
        reply_received(r, o->signal);
        return;
    }
    cJSON *body = cJSON_CreateObject();
    int status = 202;
    switch (o->result) {
    case QG_INGEST_ACCEPTED:
    case QG_INGEST_IGNORED:
        cJSON_AddStringToObject(body, "status",
                                o->result == QG_INGEST_ACCEPTED ? "received" : "ignored");
        cJSON_AddStringToObject(body, "id", o->signal->id);
        cJSON_AddStringToObject(body, "correlation_id", o->signal->correlation_id);
        if (o->result == QG_INGEST_IGNORED) cJSON_AddStringToObject(body, "reason", o->reason);
        break;
    case QG_INGEST_DUPLICATE:
        status = 200;
        cJSON_AddStringToObject(body, "status", "duplicate");
        cJSON_AddStringToObject(body, "id", o->dup_of);
        break;
    case QG_INGEST_RATE_LIMITED: {
        cJSON_Delete(body);
        char ra[16];
        snprintf(ra, sizeof ra, "%d", o->retry_after_s);
        qg_reply_header(r, "retry-after", ra);
        qg_reply_error(r, 429, "rate_limited", "%s; retry in %d s", o->reason, o->retry_after_s);
        return;
    }
    case QG_INGEST_FAILED:
        cJSON_Delete(body);
        qg_err("webhook: signal not stored (request %s): %s", r->request_id,
               o->err ? o->err->msg : "unknown");
        qg_reply_header(r, "retry-after", "1");
        qg_reply_error(r, 503, "unavailable",
                       "the signal could not be stored; nothing was accepted, retry (request %s)",
                       r->request_id);
        return;
    }
    qg_reply_json(r, status, body);
}

static void on_outcome(void *ud, const qg_ingest_outcome *o)
{
    qg_req_later *later = ud;
    reply_outcome(qg_req_later_req(later), o);
    qg_req_later_finish(later);
}

void qg_h_webhook_receive(qg_req *r)
{
    qg_signals *sv = r->app->signals;
    if (!sv) {
        qg_reply_error(r, 503, "unavailable", "signal alerts are not running on this server");
        return;
    }
    if (r->body_len > WEBHOOK_BODY_MAX) {
        qg_reply_error(r, 413, "payload_too_large", "a signal is at most %zu bytes; got %zu",
                       WEBHOOK_BODY_MAX, r->body_len);
        return;
    }
    /* A token is checked against the database: not on the event loop. */
    if (r->authorization[0] && qg_req_need_worker(r)) return;
    if (!webhook_auth(r, sv)) return;
    qg_signal s;
    const char *field = NULL;
    qg_error err = {0};
    if (qg_signal_parse(r->body, r->body_len, 0, &s, &field, &err) != QG_OK) {
        reply_field_error(r, field, &err);
        return;
    }
    s.source = r->who.authenticated ? QG_SIGNAL_API : QG_SIGNAL_WEBHOOK;
    const char *cor = qg_req_header(r, "x-correlation-id");
    if (cor && correlation_ok(cor)) snprintf(s.correlation_id, sizeof s.correlation_id, "%s", cor);
    const char *owner = r->who.authenticated ? r->who.user.id : sv->owner_id;
    /* The request belongs to the outcome's callback from here on: it may
     * run (and send the reply) before submit returns. */
    qg_req_later *later = qg_req_defer(r);
    if (later) {
        /* The reply is written on the signal writer's thread and freed on
         * this one: sized here, its memory stays with this thread, and the
         * writer neither allocates it nor has the loop take the writer's
         * malloc arena lock to free it. */
        (void)qg_buf_reserve(&r->out, RECEIVED_REPLY_MAX);
        qg_ingest_submit(sv->ingest, &s, owner, 0, on_outcome, later);
        return;
    }
    qg_ingest_outcome o;
    qg_signal stored;
    qg_ingest_submit_wait(sv->ingest, &s, owner, 0, &o, &stored);
    reply_outcome(r, &o);
}
