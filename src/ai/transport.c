/*
 * transport.c - libcurl multi handles: one per calling thread for blocking
 * calls, one on the transport thread for submitted ones (see transport.h).
 *
 * An engine is a multi handle, its active exchanges and spare easy handles;
 * only one thread ever drives it. The transport thread drives the shared
 * engine: submitters only append to `pending` under the mutex and call
 * curl_multi_wakeup. A thread calling qg_ai_transport_perform drives an
 * engine of its own (made on its first call, kept in a thread-local slot and
 * in the transport's list, freed with the transport), so a blocking call
 * costs no thread hand-off at all and its connections stay warm per thread.
 * Each loop turn: start what is pending, let curl work, complete what
 * finished, enforce read timeouts and cancel flags, then sleep in
 * curl_multi_poll until a socket is ready, a wakeup arrives, or the nearest
 * read deadline.
 *
 * Read timeouts are checked twice: in the xferinfo callback (when curl runs
 * the transfer) and by the loop against each exchange's last received byte
 * (so a silent server times out to the millisecond even when curl has no
 * reason to call back). Finished easy handles are kept for reuse; the
 * connections themselves live in the multi handle's cache.
 */
#include "ai/transport.h"

#include <quantgate/time.h>
#include <quantgate/log.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_READ_MS    120000
#define IDLE_POLL_MS       1000
#define CANCEL_POLL_MS     100 /* how late a cancel flag set without a wake is seen */
#define EASY_KEEP          64

#define LOCAL_KEEP        4 /* spare easy handles of a caller's engine (one call at a time) */
#define LOCAL_MAXCONNECTS 8

/* A multi handle and what it drives; used by one thread only. */
typedef struct engine {
    qg_ai_transport *t;
    CURLM *multi;
    qg_ai_exchange *active; /* doubly linked through priv.next/prev */
    CURL *spare[EASY_KEEP];
    int nspare, keep;
    struct engine *next; /* the transport's list of callers' engines */
} engine;

struct qg_ai_transport {
    engine shared; /* the transport thread's */
    uint64_t id;   /* never reused: tells a thread's cached engine is this transport's */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* guards pending, stopping and locals */
    qg_ai_exchange *pending_head, *pending_tail;
    atomic_bool stopping; /* written under mu; performers read it every turn */
    engine *locals;
    atomic_int inflight;
};

static atomic_uint_fast64_t next_transport_id = 1;

/* The calling thread's engine for the transport it last used. */
static _Thread_local struct {
    uint64_t transport_id;
    engine *e;
} tl_engine;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_ALL);
}

static int64_t read_timeout_us(const qg_ai_exchange *x)
{
    return (x->read_timeout_ms > 0 ? x->read_timeout_ms : DEFAULT_READ_MS) * 1000;
}

/* ---- exchanges ---- */

void qg_ai_exchange_reset(qg_ai_exchange *x)
{
    qg_buf_free(&x->body);
    x->kind = QG_AI_OK;
    x->errmsg[0] = 0;
    x->http_status = 0;
    x->retry_after[0] = 0;
    x->body_truncated = false;
    x->ttfb_us = x->total_us = x->wall_us = 0;
    memset(&x->priv, 0, sizeof x->priv);
    qg_buf_init(&x->body, x->body_max ? x->body_max : QG_AI_BODY_MAX_DEFAULT);
}

void qg_ai_exchange_free(qg_ai_exchange *x)
{
    if (x) qg_buf_free(&x->body);
}

/* curl's message with anything after a '?' cut: a message that quotes a URL
 * must not quote its query (keys). */
static void set_errmsg(qg_ai_exchange *x, const char *what, const char *detail)
{
    char clean[200];
    snprintf(clean, sizeof clean, "%s", detail ? detail : "");
    char *q = strchr(clean, '?');
    if (q) *q = 0;
    size_t n = strlen(clean);
    while (n && (clean[n - 1] == '\n' || clean[n - 1] == ' ')) clean[--n] = 0;
    snprintf(x->errmsg, sizeof x->errmsg, "%s: %s", what, clean);
}

/* ---- curl callbacks (transport thread) ---- */

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    qg_ai_exchange *x = ud;
    size_t len = size * n;
    x->priv.last_rx_us = qg_time_mono_us();
    if (len >= 5 && !memcmp(buf, "HTTP/", 5)) { /* a new status line: forget 1xx headers */
        x->retry_after[0] = 0;
        return len;
    }
    if (len > 12 && !strncasecmp(buf, "retry-after:", 12)) {
        const char *v = buf + 12;
        size_t m = len - 12;
        while (m && (*v == ' ' || *v == '\t')) v++, m--;
        while (m && (v[m - 1] == '\r' || v[m - 1] == '\n' || v[m - 1] == ' ')) m--;
        if (m >= sizeof x->retry_after) m = sizeof x->retry_after - 1;
        memcpy(x->retry_after, v, m);
        x->retry_after[m] = 0;
    }
    return len;
}

static bool is_2xx(int s)
{
    return s >= 200 && s < 300;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    qg_ai_exchange *x = ud;
    size_t len = size * n;
    x->priv.last_rx_us = qg_time_mono_us();
    if (!x->priv.status_checked) {
        long code = 0;
        curl_easy_getinfo((CURL *)x->priv.easy, CURLINFO_RESPONSE_CODE, &code);
        x->http_status = (int)code;
        x->priv.to_framer = x->framer && is_2xx(x->http_status);
        x->priv.status_checked = true;
    }
    if (x->priv.to_framer) {
        if (qg_ai_framer_feed(x->framer, p, len)) {
            x->priv.abort_kind = QG_AI_EPROTOCOL;
            set_errmsg(x, "stream", x->framer->err.msg[0] ? x->framer->err.msg : "framing failed");
            return 0;
        }
        return len;
    }
    size_t room = x->body.max - x->body.len;
    if (len > room) {
        if (is_2xx(x->http_status)) {
            x->priv.abort_kind = QG_AI_EPROTOCOL;
            snprintf(x->errmsg, sizeof x->errmsg, "reply body is over the %zu byte cap",
                     x->body.max);
            return 0;
        }
        /* an error body only needs its start; keep reading so the
         * connection stays reusable */
        if (room) qg_buf_append(&x->body, p, room);
        x->body_truncated = true;
        return len;
    }
    if (qg_buf_append(&x->body, p, len)) {
        x->priv.abort_kind = QG_AI_EPROTOCOL;
        snprintf(x->errmsg, sizeof x->errmsg, "out of memory buffering the reply");
        return 0;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    qg_ai_exchange *x = ud;
    if (x->cancel && atomic_load(x->cancel)) {
        x->priv.abort_kind = QG_AI_ECANCELLED;
        return 1;
    }
    if (qg_time_mono_us() - x->priv.last_rx_us > read_timeout_us(x)) {
        x->priv.abort_kind = QG_AI_ETIMEOUT;
        return 1;
    }
    return 0;
}

/* ---- the transport thread ---- */

static void active_link(engine *t, qg_ai_exchange *x)
{
    x->priv.prev = NULL;
    x->priv.next = t->active;
    if (t->active) t->active->priv.prev = x;
    t->active = x;
}

static void active_unlink(engine *t, qg_ai_exchange *x)
{
    if (x->priv.prev)
        x->priv.prev->priv.next = x->priv.next;
    else
        t->active = x->priv.next;
    if (x->priv.next) x->priv.next->priv.prev = x->priv.prev;
    x->priv.next = x->priv.prev = NULL;
}

/* Hands x back to its owner; nothing may touch x afterwards. */
static void complete(qg_ai_transport *t, qg_ai_exchange *x)
{
    x->wall_us = qg_time_mono_us() - x->priv.submit_us;
    qg_ai_exchange_done_fn done = x->priv.done;
    void *ud = x->priv.ud;
    atomic_fetch_sub(&t->inflight, 1);
    done(ud, x);
}

static qg_ai_errkind map_curl(CURLcode c)
{
    switch (c) {
    case CURLE_OK:
        return QG_AI_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return QG_AI_ETIMEOUT;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return QG_AI_EBADREQ;
    default: /* connect, resolve, send, recv, got nothing, partial file, TLS, HTTP/2 */
        return QG_AI_ENETWORK;
    }
}

static const char *kind_what(qg_ai_errkind k)
{
    switch (k) {
    case QG_AI_ETIMEOUT:
        return "timeout";
    case QG_AI_EBADREQ:
        return "bad url";
    default:
        return "network";
    }
}

/* Ends a transfer that curl finished (res) or that we stop (forced kind). */
static void finish(engine *t, qg_ai_exchange *x, CURLcode res, qg_ai_errkind forced,
                   const char *forced_msg)
{
    CURL *e = x->priv.easy;
    curl_multi_remove_handle(t->multi, e);
    active_unlink(t, x);
    long code = 0;
    if (!x->priv.status_checked && !curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code))
        x->http_status = (int)code;
    curl_off_t v = 0;
    if (!curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &v)) x->ttfb_us = (int64_t)v;
    if (!curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &v)) x->total_us = (int64_t)v;
    if (forced) {
        x->kind = forced;
        if (!x->errmsg[0]) snprintf(x->errmsg, sizeof x->errmsg, "%s", forced_msg);
        x->total_us = qg_time_mono_us() - x->priv.submit_us; /* curl's clock stopped with no end */
    } else if (res == CURLE_OK) {
        x->kind = QG_AI_OK;
        if (x->framer && is_2xx(x->http_status) && qg_ai_framer_end(x->framer)) {
            x->kind = QG_AI_EPROTOCOL;
            set_errmsg(x, "stream", x->framer->err.msg[0] ? x->framer->err.msg : "framing failed");
        }
    } else if (x->priv.abort_kind) {
        x->kind = x->priv.abort_kind;
        if (!x->errmsg[0])
            snprintf(x->errmsg, sizeof x->errmsg, "%s",
                     x->kind == QG_AI_ECANCELLED ? "cancelled"
                                                 : "read timeout: the server went silent");
    } else {
        x->kind = map_curl(res);
        set_errmsg(x, kind_what(x->kind),
                   x->priv.curl_err[0] ? x->priv.curl_err : curl_easy_strerror(res));
    }
    if (x->priv.headers) curl_slist_free_all(x->priv.headers);
    x->priv.headers = NULL;
    x->priv.easy = NULL;
    if (t->nspare < t->keep)
        t->spare[t->nspare++] = e;
    else
        curl_easy_cleanup(e);
    complete(t->t, x);
}

static qg_status start_one(engine *t, qg_ai_exchange *x)
{
    const qg_ai_http_req *r = x->req;
    CURL *e;
    if (t->nspare) {
        e = t->spare[--t->nspare];
        curl_easy_reset(e);
    } else if (!(e = curl_easy_init())) {
        return QG_ENOMEM;
    }
    struct curl_slist *h = NULL;
    for (int i = 0; i < r->nheaders && i < QG_AI_MAX_HEADERS; i++) {
        struct curl_slist *nh = curl_slist_append(h, r->headers[i]);
        if (!nh) goto nomem;
        h = nh;
    }
    /* no "Expect: 100-continue" round trip before larger bodies */
    struct curl_slist *nh = curl_slist_append(h, "Expect:");
    if (!nh) goto nomem;
    h = nh;
    x->priv.easy = e;
    x->priv.headers = h;
    x->priv.last_rx_us = qg_time_mono_us();

    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(
        e, CURLOPT_CONNECTTIMEOUT_MS,
        (long)(x->connect_timeout_ms > 0 ? x->connect_timeout_ms : DEFAULT_CONNECT_MS));
    if (x->total_timeout_ms > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)x->total_timeout_ms);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->priv.curl_err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    const char *m = r->method ? r->method : "POST";
    if (!strcmp(m, "GET")) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body.len ? r->body.data : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
        if (strcmp(m, "POST")) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
    if (curl_multi_add_handle(t->multi, e) != CURLM_OK) {
        curl_slist_free_all(h);
        x->priv.headers = NULL;
        x->priv.easy = NULL;
        curl_easy_cleanup(e);
        return QG_EINTERNAL;
    }
    active_link(t, x);
    return QG_OK;
nomem:
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return QG_ENOMEM;
}

/* Completes an exchange that never reached curl. */
static void fail_unstarted(qg_ai_transport *t, qg_ai_exchange *x, qg_ai_errkind kind,
                           const char *msg)
{
    x->kind = kind;
    snprintf(x->errmsg, sizeof x->errmsg, "%s", msg);
    complete(t, x);
}

/* Cancel flags and read deadlines; returns the poll timeout in ms. */
static int sweep(engine *t)
{
    int64_t now = qg_time_mono_us();
    int64_t wait_us = (int64_t)IDLE_POLL_MS * 1000;
    qg_ai_exchange *x = t->active;
    while (x) {
        qg_ai_exchange *next = x->priv.next;
        if (x->cancel && atomic_load(x->cancel)) {
            finish(t, x, CURLE_ABORTED_BY_CALLBACK, QG_AI_ECANCELLED, "cancelled");
        } else {
            int64_t left = x->priv.last_rx_us + read_timeout_us(x) - now;
            if (left <= 0) {
                finish(t, x, CURLE_ABORTED_BY_CALLBACK, QG_AI_ETIMEOUT,
                       "read timeout: the server went silent");
            } else {
                if (left < wait_us) wait_us = left;
                if (x->cancel && wait_us > CANCEL_POLL_MS * 1000) wait_us = CANCEL_POLL_MS * 1000;
            }
        }
        x = next;
    }
    return (int)((wait_us + 999) / 1000);
}

/* One turn of an engine's loop after its new exchanges were started: let
 * curl work, complete what finished, sleep until there is more to do. */
static void engine_turn(engine *e)
{
    int running = 0;
    curl_multi_perform(e->multi, &running);
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(e->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        qg_ai_exchange *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x) finish(e, x, msg->data.result, QG_AI_OK, NULL);
    }
}

static qg_status engine_init(engine *e, qg_ai_transport *t, int keep, long maxconnects)
{
    e->t = t;
    e->keep = keep;
    e->multi = curl_multi_init();
    if (!e->multi) return QG_ENOMEM;
    /* enough cached connections for the concurrent calls to stay warm */
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, maxconnects);
    curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return QG_OK;
}

static void engine_cleanup(engine *e)
{
    for (int i = 0; i < e->nspare; i++) curl_easy_cleanup(e->spare[i]);
    e->nspare = 0;
    if (e->multi) curl_multi_cleanup(e->multi);
    e->multi = NULL;
}

static void *transport_main(void *arg)
{
    qg_ai_transport *t = arg;
    pthread_setname_np(pthread_self(), "qg-aihttp");
    engine *e = &t->shared;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        qg_ai_exchange *batch = t->pending_head;
        t->pending_head = t->pending_tail = NULL;
        bool stopping = atomic_load(&t->stopping);
        pthread_mutex_unlock(&t->mu);

        while (batch) {
            qg_ai_exchange *x = batch;
            batch = x->priv.next;
            x->priv.next = NULL;
            if (stopping) {
                fail_unstarted(t, x, QG_AI_ECANCELLED, "cancelled: the transport is shutting down");
            } else if (start_one(e, x)) {
                fail_unstarted(t, x, QG_AI_ENETWORK, "network: could not start the request");
            }
        }
        if (stopping) {
            while (e->active)
                finish(e, e->active, CURLE_ABORTED_BY_CALLBACK, QG_AI_ECANCELLED,
                       "cancelled: the transport is shutting down");
            break;
        }
        engine_turn(e);
        curl_multi_poll(e->multi, NULL, 0, sweep(e), NULL);
    }
    return NULL;
}

/* ---- public ---- */

qg_status qg_ai_transport_new(qg_ai_transport **out, qg_error *err)
{
    *out = NULL;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return qg_error_set(err, QG_EINTERNAL, "transport: curl_global_init failed: %s",
                            curl_easy_strerror(global_rc));
    qg_ai_transport *t = calloc(1, sizeof *t);
    if (!t) return qg_error_set(err, QG_ENOMEM, "transport: out of memory");
    pthread_mutex_init(&t->mu, NULL);
    atomic_init(&t->inflight, 0);
    t->id = atomic_fetch_add(&next_transport_id, 1);
    if (engine_init(&t->shared, t, EASY_KEEP, 256L)) {
        qg_ai_transport_free(t);
        return qg_error_set(err, QG_EINTERNAL, "transport: curl_multi_init failed");
    }
    if (pthread_create(&t->thread, NULL, transport_main, t)) {
        qg_ai_transport_free(t);
        return qg_error_set(err, QG_EINTERNAL, "transport: cannot start its thread");
    }
    t->started = true;
    *out = t;
    return QG_OK;
}

void qg_ai_transport_free(qg_ai_transport *t)
{
    if (!t) return;
    if (t->started) {
        pthread_mutex_lock(&t->mu);
        atomic_store(&t->stopping, true);
        pthread_mutex_unlock(&t->mu);
        qg_ai_transport_wake(t);
        pthread_join(t->thread, NULL);
        /* blocked performers see `stopping` on their next turn and return */
        while (atomic_load(&t->inflight) > 0) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    engine_cleanup(&t->shared);
    while (t->locals) { /* callers' engines: every perform has returned */
        engine *e = t->locals;
        t->locals = e->next;
        engine_cleanup(e);
        free(e);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

qg_status qg_ai_transport_submit(qg_ai_transport *t, qg_ai_exchange *x, qg_ai_exchange_done_fn done,
                                 void *ud)
{
    qg_ai_exchange_reset(x);
    x->priv.done = done;
    x->priv.ud = ud;
    x->priv.submit_us = qg_time_mono_us();
    pthread_mutex_lock(&t->mu);
    if (atomic_load(&t->stopping)) {
        pthread_mutex_unlock(&t->mu);
        x->kind = QG_AI_ECANCELLED;
        snprintf(x->errmsg, sizeof x->errmsg, "cancelled: the transport is shutting down");
        return QG_EAGAIN;
    }
    atomic_fetch_add(&t->inflight, 1);
    if (t->pending_tail)
        t->pending_tail->priv.next = x;
    else
        t->pending_head = x;
    t->pending_tail = x;
    pthread_mutex_unlock(&t->mu);
    curl_multi_wakeup(t->shared.multi);
    return QG_OK;
}

/* The calling thread's engine, made on its first call. NULL when shutting
 * down or out of memory. */
static engine *local_engine(qg_ai_transport *t)
{
    if (tl_engine.transport_id == t->id) return tl_engine.e;
    engine *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    if (engine_init(e, t, LOCAL_KEEP, LOCAL_MAXCONNECTS)) {
        free(e);
        return NULL;
    }
    pthread_mutex_lock(&t->mu);
    e->next = t->locals;
    t->locals = e;
    pthread_mutex_unlock(&t->mu);
    tl_engine.transport_id = t->id;
    tl_engine.e = e;
    return e;
}

static void mark_done(void *ud, qg_ai_exchange *x)
{
    *(bool *)ud = true;
}

qg_status qg_ai_transport_perform(qg_ai_transport *t, qg_ai_exchange *x)
{
    engine *e = local_engine(t);
    bool done = false;
    qg_ai_exchange_reset(x);
    x->priv.done = mark_done;
    x->priv.ud = &done;
    x->priv.submit_us = qg_time_mono_us();
    if (!e) {
        x->kind = QG_AI_ENETWORK;
        snprintf(x->errmsg, sizeof x->errmsg, "network: out of memory for a connection engine");
        return QG_EIO;
    }
    pthread_mutex_lock(&t->mu);
    bool stopping = atomic_load(&t->stopping);
    if (!stopping) atomic_fetch_add(&t->inflight, 1);
    pthread_mutex_unlock(&t->mu);
    if (stopping) {
        x->kind = QG_AI_ECANCELLED;
        snprintf(x->errmsg, sizeof x->errmsg, "cancelled: the transport is shutting down");
        return QG_EAGAIN;
    }
    if (start_one(e, x))
        fail_unstarted(t, x, QG_AI_ENETWORK, "network: could not start the request");
    while (!done) {
        engine_turn(e);
        if (done) break;
        if (atomic_load(&t->stopping)) {
            finish(e, x, CURLE_ABORTED_BY_CALLBACK, QG_AI_ECANCELLED,
                   "cancelled: the transport is shutting down");
            break;
        }
        curl_multi_poll(e->multi, NULL, 0, sweep(e), NULL);
    }
    return x->kind == QG_AI_OK ? QG_OK : QG_EIO;
}

void qg_ai_transport_wake(qg_ai_transport *t)
{
    if (!t) return;
    curl_multi_wakeup(t->shared.multi);
    pthread_mutex_lock(&t->mu);
    for (engine *e = t->locals; e; e = e->next) curl_multi_wakeup(e->multi);
    pthread_mutex_unlock(&t->mu);
}

int qg_ai_transport_inflight(qg_ai_transport *t)
{
    return atomic_load(&t->inflight);
}
