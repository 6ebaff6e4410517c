/*
 * server.c - h2o event loops, the hand-off to the worker pool, streaming,
 * access log and graceful shutdown (see server.h).
 *
 * Threads: N loop threads, each owning one h2o context, one listening
 * socket (SO_REUSEPORT: the kernel spreads connections) and every
 * connection it accepted. A request that needs the database becomes a
 * `pending` item on the app's request pool; the worker runs the dispatcher,
 * then posts the item to the loop's multithread receiver, and the loop sends
 * the reply. If the client disconnects meanwhile, h2o disposes the request's
 * memory pool; a small object allocated in that pool (req_link) clears the
 * item's pointer to the request on disposal, so the loop then just drops
 * the reply. Both happen on the loop thread, so no lock is needed.
 *
 * Streams are pushed, not only polled: a producer thread calls
 * qg_stream_wake, which posts the stream's waker to its loop's wake
 * receiver (once until the loop takes it: wakes coalesce), and the loop
 * runs the stream's poll right away. Wakes before the stream started send
 * nothing (the loop polls right after the first chunk anyway), so a call
 * that finishes before its stream starts costs the loop no wake-ups. The
 * waker's `live` and `closed` flags and `queued` bit are under its mutex; its stream pointer is
 * only touched on the loop thread. A queued wake holds a reference to the waker and is counted in
 * the loop's wakes_queued, so the loop neither exits nor unregisters its receiver while one is in
 * flight.
 *
 * The main thread blocks SIGTERM and SIGINT before starting the loops (so
 * every thread inherits the mask) and waits for them with sigwait; the
 * shutdown then reaches each loop as a message on its receiver.
 */
#include "http/server.h"

#include "ai/usage.h"
#include "http/router.h"

#include <quantgate/log.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <h2o/http2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct qg_server qg_server;

/* Cap of one stream chunk: the final event of a backtest carries the whole
 * result (every trade), like GET /api/backtests/{id}. */
#define QG_STREAM_BUF_MAX ((size_t)256 << 20)

typedef struct qg_loop {
    qg_server *srv;
    int index;
    pthread_t thread;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t done_rx; /* finished requests from workers */
    h2o_multithread_receiver_t ctl_rx;  /* shutdown */
    h2o_multithread_receiver_t wake_rx; /* stream wakers from producer threads */
    atomic_int wakes_queued;            /* wake messages sent, not yet taken */
    h2o_multithread_message_t ctl_msg;
    h2o_timeout_t tick; /* QG_STREAM_POLL_MS, for SSE polls */
    int inflight;       /* requests on the worker pool */
    int streams;        /* open SSE streams */
    bool stopping;
    int64_t stop_deadline_ms;
    int64_t conns_grace_ms; /* after this, idle keep-alive connections don't hold us */
    uint64_t req_counter;
    uint32_t req_seed;
    char logline[4096];
} qg_loop;

struct qg_server {
    qg_app *app;
    qg_server_config cfg;
    h2o_globalconf_t conf;
    SSL_CTX *ssl;
    qg_loop *loops;
    int nloops;
    int access_fd; /* -1: off */
    pthread_barrier_t started;
};

typedef struct {
    h2o_handler_t super;
    qg_server *srv;
} root_handler;

/* A request on its way through the worker pool. */
typedef struct req_link req_link;
typedef struct pending {
    h2o_multithread_message_t msg;
    qg_loop *loop;
    h2o_req_t *hreq; /* NULL once the client has gone */
    req_link *link;
    int route;
    int64_t t0_us;
    atomic_int holds; /* the worker, plus a deferred reply's finisher: the last one posts */
    qg_req r;
} pending;

struct req_link {
    pending *p;
};

/* An open Server-Sent Events response. The generator must come first: h2o
 * hands it back to proceed and stop. */
typedef struct stream {
    h2o_generator_t gen;
    qg_loop *loop;
    h2o_req_t *hreq;
    h2o_timeout_entry_t tick;
    qg_stream_poll_fn poll;
    qg_stream_free_fn free_fn;
    void *arg;
    qg_buf buf;                 /* the chunk in flight; reused once h2o calls proceed */
    bool sending;               /* a chunk is in flight */
    bool wake_pending;          /* woken while sending: poll when the chunk is out */
    qg_stream_waker *waker;     /* the stream's reference, or NULL */
    const int64_t *upstream_us; /* the producer's provider time (see qg_req), or NULL */
    int64_t t0_us;              /* the request's arrival on the loop */
} stream;

struct qg_stream_waker {
    atomic_int refs;
    pthread_mutex_t mu;
    qg_loop *loop; /* NULL: unbound (no server), wakes do nothing */
    bool live;     /* under mu: the stream has started (earlier wakes are moot: stream_start
                      polls once the first chunk is out) */
    bool closed;   /* under mu: the stream ended or never started */
    bool queued;   /* under mu: msg is on the loop's wake receiver */
    h2o_multithread_message_t msg;
    stream *s; /* loop thread only: the open stream, or NULL */
};

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

/* ---- request facts copied out of h2o ---- */

static h2o_iovec_t header_value(h2o_req_t *req, const h2o_token_t *token, const char *name)
{
    ssize_t i = token ? h2o_find_header(&req->headers, token, -1)
                      : h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i < 0 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

static const char *arena_copy(qg_req *r, h2o_iovec_t v)
{
    return qg_arena_strndup(&r->arena, v.base ? v.base : "", v.base ? v.len : 0);
}

static bool request_id_ok(h2o_iovec_t v)
{
    if (v.len == 0 || v.len > 64) return false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* The loop's seed then its counter, in hex ("%08x%08llx", which cost a
 * vsnprintf on every request). */
static const char *new_request_id(qg_loop *L, qg_arena *a)
{
    static const char hex[] = "0123456789abcdef";
    char id[8 + 16 + 1];
    uint64_t v = ++L->req_counter;
    for (int i = 0; i < 8; i++) id[i] = hex[(L->req_seed >> (28 - 4 * i)) & 15];
    for (int i = 0; i < 16; i++) id[8 + i] = hex[(v >> (60 - 4 * i)) & 15];
    int skip = 0; /* leading zeros of the counter past its 8 digits */
    while (skip < 8 && id[8 + skip] == '0') skip++;
    memmove(id + 8, id + 8 + skip, (size_t)(16 - skip));
    return qg_arena_strndup(a, id, (size_t)(24 - skip));
}

static void fill_request(qg_loop *L, h2o_req_t *req, qg_req *r, int method)
{
    r->method = method;
    h2o_iovec_t path = req->path_normalized;
    r->path = arena_copy(r, path);
    r->query = req->query_at != SIZE_MAX
                   ? qg_arena_strndup(&r->arena, req->path.base + req->query_at + 1,
                                      req->path.len - req->query_at - 1)
                   : "";
    r->content_type = arena_copy(r, header_value(req, H2O_TOKEN_CONTENT_TYPE, NULL));
    r->authorization = arena_copy(r, header_value(req, H2O_TOKEN_AUTHORIZATION, NULL));
    if (req->entity.base) {
        r->body = qg_arena_strndup(&r->arena, req->entity.base, req->entity.len);
        r->body_len = req->entity.len;
    } else {
        r->body = "";
        r->body_len = 0;
    }
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    char host[NI_MAXHOST] = "";
    if (sl > 0 && h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, host) == SIZE_MAX)
        host[0] = 0;
    r->address = qg_arena_strndup(&r->arena, host, strlen(host));
    for (size_t i = 0; i < req->headers.size && r->nxhdr < QG_MAX_X_HEADERS; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        bool x = h->name->len > 2 && strncasecmp(h->name->base, "x-", 2) == 0;
        if (!x && !h2o_memis(h->name->base, h->name->len, H2O_STRLIT("last-event-id"))) continue;
        r->xhdr_name[r->nxhdr] = arena_copy(r, *h->name);
        r->xhdr_value[r->nxhdr++] = arena_copy(r, h->value);
    }
    h2o_iovec_t rid = header_value(req, NULL, "x-request-id");
    if (request_id_ok(rid)) {
        r->request_id = arena_copy(r, rid);
    } else {
        r->request_id = new_request_id(L, &r->arena);
    }
}

/* ---- CORS ---- */

static bool origin_allowed(const qg_app *app, h2o_iovec_t origin)
{
    for (int i = 0; i < app->ncors; i++)
        if (strlen(app->cors[i]) == origin.len &&
            memcmp(app->cors[i], origin.base, origin.len) == 0)
            return true;
    return false;
}

/* Header names go out lower-case: HTTP/2 requires it, and h2o recognises
 * its known headers (tokens) only in that form, so set_header can replace
 * them. */
static void add_header_str(h2o_req_t *req, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    char *n = h2o_mem_alloc_pool(&req->pool, nlen + 1);
    for (size_t i = 0; i <= nlen; i++) n[i] = (char)tolower((unsigned char)name[i]);
    char *v = h2o_mem_alloc_pool(&req->pool, vlen + 1);
    memcpy(v, value, vlen + 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n, nlen, 1, NULL, v, vlen);
}

static void add_cors_headers(qg_server *srv, h2o_req_t *req)
{
    h2o_iovec_t origin = header_value(req, NULL, "origin");
    if (!origin.base) return;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
    if (!origin_allowed(srv->app, origin)) return;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   origin.base, origin.len);
    add_header_str(req, "access-control-expose-headers", "X-Request-Id, Retry-After, Location");
}

/* ---- access log ---- */

static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = 0;
    return n;
}

static void access_log(qg_loop *L, const qg_req *r, int route, int status, size_t bytes,
                       int64_t dur_us)
{
    qg_server *srv = L->srv;
    if (srv->access_fd < 0) return;
    char ts[32], path[1024];
    qg_time_format_iso(qg_time_now_ms(), ts, sizeof ts);
    json_escape(path, sizeof path, r->path ? r->path : "");
    int n = snprintf(L->logline, sizeof L->logline,
                     "{\"ts\":\"%s\",\"request_id\":\"%s\",\"remote\":\"%s\",\"method\":\"%s\","
                     "\"path\":\"%s\",\"route\":\"%s\",\"status\":%d,\"bytes\":%zu,"
                     "\"duration_ms\":%.3f,\"user\":%s%s%s%s%s%s}\n",
                     ts, r->request_id ? r->request_id : "", r->address ? r->address : "",
                     qg_method_name(r->method), path, route >= 0 ? qg_routes[route].pattern : "",
                     status, bytes, (double)dur_us / 1000.0, r->who.authenticated ? "\"" : "",
                     r->who.authenticated ? r->who.user.id : "null",
                     r->who.authenticated ? "\"" : "", r->error_code ? ",\"error\":\"" : "",
                     r->error_code ? r->error_code : "", r->error_code ? "\"" : "");
    if (n <= 0) return;
    if ((size_t)n >= sizeof L->logline) {
        n = sizeof L->logline;
        L->logline[n - 1] = '\n';
    }
    /* One write per line: O_APPEND files and pipes keep lines whole. */
    ssize_t w = write(srv->access_fd, L->logline, (size_t)n);
    (void)w;
}

/* ---- replies ---- */

static void finish_metrics(qg_loop *L, const qg_req *r, int route, int status, size_t bytes,
                           int64_t t0_us)
{
    int64_t dur = qg_time_mono_us() - t0_us;
    qg_metrics_request(L->srv->app->metrics, route, status, dur);
    access_log(L, r, route, status, bytes, dur);
}

static void set_status_and_headers(qg_server *srv, h2o_req_t *req, const qg_req *r)
{
    req->res.status = r->status;
    req->res.reason = reason_phrase(r->status);
    for (int i = 0; i < r->nhdr; i++) add_header_str(req, r->hdr_name[i], r->hdr_value[i]);
    add_header_str(req, "x-request-id", r->request_id);
    add_cors_headers(srv, req);
}

static void send_reply(qg_server *srv, h2o_req_t *req, qg_req *r)
{
    if (r->status == 0)
        qg_reply_error(r, 500, "internal", "internal error (request %s)", r->request_id);
    set_status_and_headers(srv, req, r);
    if (r->out.len && r->out_type) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, r->out_type,
                       strlen(r->out_type));
    }
    req->res.content_length = r->out.len;
    h2o_send_inline(req, r->out.len ? r->out.data : "", r->out.len);
}

/* Replies from the loop itself (404, 405, 429 ...), through the same
 * error helpers the handlers use, so the bodies look the same. */
static void loop_error(qg_loop *L, h2o_req_t *req, qg_req *r, int route, int64_t t0, int status,
                       const char *code, const char *msg)
{
    qg_reply_error(r, status, code, "%s", msg);
    send_reply(L->srv, req, r);
    finish_metrics(L, r, route, status, r->out.len, t0);
}

/* ---- stream wakers ---- */

static qg_stream_waker *waker_new(qg_loop *L)
{
    qg_stream_waker *w = qg_xcalloc(1, sizeof *w);
    atomic_init(&w->refs, 1);
    pthread_mutex_init(&w->mu, NULL);
    w->loop = L;
    return w;
}

qg_stream_waker *qg_stream_waker_ref(qg_stream_waker *w)
{
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    return w;
}

void qg_stream_waker_unref(qg_stream_waker *w)
{
    if (!w || atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1) return;
    pthread_mutex_destroy(&w->mu);
    free(w);
}

qg_stream_waker *qg_req_stream_waker(qg_req *r)
{
    if (!r->loop) return waker_new(NULL);
    if (!r->stream_waker) r->stream_waker = waker_new(r->loop);
    return qg_stream_waker_ref(r->stream_waker);
}

void qg_stream_wake(qg_stream_waker *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->live && !w->closed && !w->queued) {
        w->queued = true;
        qg_stream_waker_ref(w); /* the message's reference */
        atomic_fetch_add(&w->loop->wakes_queued, 1);
        h2o_multithread_send_message(&w->loop->wake_rx, &w->msg);
    }
    pthread_mutex_unlock(&w->mu);
}

/* Loop thread: no more wakes reach the loop after this. */
static void waker_close(qg_stream_waker *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->closed = true;
    pthread_mutex_unlock(&w->mu);
    w->s = NULL;
    qg_stream_waker_unref(w);
}

/* ---- streams (SSE) ---- */

static void stream_close(stream *s)
{
    if (h2o_timeout_is_linked(&s->tick)) h2o_timeout_unlink(&s->tick);
    s->loop->streams--;
    waker_close(s->waker);
    if (s->free_fn) s->free_fn(s->arg);
    qg_buf_free(&s->buf);
    free(s);
}

/* Runs poll and sends what it produced. Only when no chunk is in flight.
 * Returns false when the stream ended (s is freed). */
static bool stream_pump(stream *s)
{
    qg_buf_reset(&s->buf);
    bool done = s->poll(s->arg, &s->buf);
    if (done) {
        if (s->upstream_us)
            qg_ai_metrics_observe_request(qg_time_mono_us() - s->t0_us - *s->upstream_us, true);
        /* The last chunk must outlive the stream object: copy it into the
         * request's pool, which h2o frees after sending. */
        h2o_req_t *req = s->hreq;
        h2o_iovec_t last = h2o_strdup(&req->pool, s->buf.len ? s->buf.data : "", s->buf.len);
        stream_close(s);
        h2o_send(req, &last, 1, H2O_SEND_STATE_FINAL);
        return false;
    }
    if (s->buf.len) {
        h2o_iovec_t chunk = h2o_iovec_init(s->buf.data, s->buf.len);
        s->sending = true;
        h2o_send(s->hreq, &chunk, 1, H2O_SEND_STATE_IN_PROGRESS);
    }
    return true;
}

static void stream_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    stream *s = (stream *)gen;
    s->sending = false;
    if (s->wake_pending) {
        s->wake_pending = false;
        stream_pump(s);
    }
}

static void stream_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    stream_close((stream *)gen); /* the client went away */
}

static void stream_tick(h2o_timeout_entry_t *entry)
{
    stream *s = H2O_STRUCT_FROM_MEMBER(stream, tick, entry);
    if (!s->sending && !stream_pump(s)) return;
    h2o_timeout_link(s->loop->ctx.loop, &s->loop->tick, &s->tick);
}

static void on_wake(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    qg_loop *L = H2O_STRUCT_FROM_MEMBER(qg_loop, wake_rx, rx);
    while (!h2o_linklist_is_empty(messages)) {
        qg_stream_waker *w = H2O_STRUCT_FROM_MEMBER(qg_stream_waker, msg.link, messages->next);
        h2o_linklist_unlink(&w->msg.link);
        pthread_mutex_lock(&w->mu);
        w->queued = false; /* the next wake queues it again */
        pthread_mutex_unlock(&w->mu);
        atomic_fetch_sub(&L->wakes_queued, 1);
        stream *s = w->s;
        if (s) {
            if (s->sending)
                s->wake_pending = true;
            else
                stream_pump(s);
        }
        qg_stream_waker_unref(w); /* the message's reference */
    }
}

static void stream_start(qg_loop *L, h2o_req_t *req, qg_req *r, int64_t t0_us)
{
    stream *s = qg_xcalloc(1, sizeof *s);
    s->upstream_us = r->stream_upstream_us;
    s->t0_us = t0_us;
    s->gen.proceed = stream_proceed;
    s->gen.stop = stream_stop;
    s->loop = L;
    s->hreq = req;
    s->tick.cb = stream_tick;
    s->poll = r->stream_poll;
    s->free_fn = r->stream_free;
    s->arg = r->stream_arg;
    r->stream_arg = NULL;
    s->waker = r->stream_waker; /* the request's reference moves to the stream */
    r->stream_waker = NULL;
    if (s->waker) {
        s->waker->s = s;
        pthread_mutex_lock(&s->waker->mu);
        s->waker->live = true;
        pthread_mutex_unlock(&s->waker->mu);
        /* A producer may have appended (and woken) between the handler's
         * return and now: poll as soon as the first chunk is out. */
        s->wake_pending = true;
    }
    qg_buf_init(&s->buf, QG_STREAM_BUF_MAX);
    L->streams++;

    set_status_and_headers(L->srv, req, r);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, H2O_STRLIT("no-cache"),
                   1);
    add_header_str(req, "x-accel-buffering", "no");
    h2o_start_response(req, &s->gen);
    /* The first chunk comes from the handler's buffer: copy it into ours,
     * which stays put until h2o calls proceed. */
    qg_buf_append(&s->buf, r->out.len ? r->out.data : "", r->out.len);
    h2o_iovec_t first = h2o_iovec_init(s->buf.data ? s->buf.data : "", s->buf.len);
    s->sending = true;
    h2o_timeout_link(L->ctx.loop, &L->tick, &s->tick);
    h2o_send(req, &first, 1, H2O_SEND_STATE_IN_PROGRESS);
}

/* ---- the hand-off to workers and back ---- */

static void link_dispose(void *p)
{
    req_link *l = p;
    if (l->p) l->p->hreq = NULL;
}

static void work_run(void *arg)
{
    pending *p = arg;
    qg_dispatch(&p->r);
}

/* Posts the finished request to its loop once neither the worker nor a
 * deferred reply's finisher holds it. */
static void pending_release(pending *p)
{
    if (atomic_fetch_sub_explicit(&p->holds, 1, memory_order_acq_rel) == 1)
        h2o_multithread_send_message(&p->loop->done_rx, &p->msg);
}

static void work_done(void *arg)
{
    pending_release(arg);
}

qg_req_later *qg_req_defer(qg_req *r)
{
    if (!r->loop) return NULL; /* not from a loop: no pending item around it */
    pending *p = H2O_STRUCT_FROM_MEMBER(pending, r, r);
    atomic_fetch_add_explicit(&p->holds, 1, memory_order_relaxed);
    r->deferred = true;
    return (qg_req_later *)p;
}

qg_req *qg_req_later_req(qg_req_later *l)
{
    return &((pending *)l)->r;
}

void qg_req_later_finish(qg_req_later *l)
{
    pending *p = (pending *)l;
    if (p->r.status == 0)
        qg_reply_error(&p->r, 500, "internal", "internal error (request %s): no reply",
                       p->r.request_id);
    pending_release(p);
}

static void finish_pending(qg_loop *L, pending *p)
{
    qg_req *r = &p->r;
    int status = r->status ? r->status : 500;
    size_t bytes = r->out.len;
    if (p->hreq) {
        p->link->p = NULL;
        /* arrival on this loop to the reply handed to h2o, minus the
         * provider (recorded first, so a client that reads /metrics right
         * after the reply sees it) */
        if (r->upstream_us >= 0 && !r->stream_poll)
            qg_ai_metrics_observe_request(qg_time_mono_us() - p->t0_us - r->upstream_us,
                                          r->upstream_stream);
        if (r->stream_poll && r->status == 200)
            stream_start(L, p->hreq, r, p->t0_us);
        else
            send_reply(L->srv, p->hreq, r);
        status = r->status;
    }
    if (r->stream_arg && r->stream_free) r->stream_free(r->stream_arg); /* never started */
    waker_close(r->stream_waker);                                       /* never started */
    r->stream_waker = NULL;
    finish_metrics(L, r, p->route, status, bytes, p->t0_us);
    qg_req_release(r);
    free(p);
}

static void on_done(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    qg_loop *L = H2O_STRUCT_FROM_MEMBER(qg_loop, done_rx, rx);
    while (!h2o_linklist_is_empty(messages)) {
        pending *p = H2O_STRUCT_FROM_MEMBER(pending, msg.link, messages->next);
        h2o_linklist_unlink(&p->msg.link);
        L->inflight--;
        qg_metrics_inflight(L->srv->app->metrics, -1);
        finish_pending(L, p);
    }
}

bool qg_req_need_worker(qg_req *r)
{
    if (!r->on_loop) return false;
    r->want_worker = true;
    return true;
}

/* A QG_ROUTE_LOOP_FIRST handler's first run, here on the loop (public
 * routes only: no authentication, audit or fallback to do around it).
 * False when it asked for a worker: the caller then submits p as usual.
 * A reply made here is sent at once; a deferred one arrives through
 * done_rx like a worker's, the loop's hold standing in for the worker's. */
static bool run_on_loop(qg_loop *L, pending *p)
{
    qg_req *r = &p->r;
    r->on_loop = true;
    r->route->fn(r);
    r->on_loop = false;
    if (r->want_worker) {
        r->want_worker = false;
        return false;
    }
    if (!r->deferred) {
        if (r->status == 0)
            qg_reply_error(r, 500, "internal", "internal error (request %s): no reply",
                           r->request_id);
        finish_pending(L, p);
        return true;
    }
    L->inflight++;
    qg_metrics_inflight(L->srv->app->metrics, 1);
    pending_release(p);
    return true;
}

static void preflight(qg_loop *L, h2o_req_t *req, qg_req *r, int allow, int64_t t0)
{
    char methods[96];
    qg_router_allow_header(allow, methods, sizeof methods);
    qg_reply_empty(r, 204);
    qg_reply_header(r, "allow", methods);
    h2o_iovec_t origin = header_value(req, NULL, "origin");
    if (origin.base && origin_allowed(L->srv->app, origin)) {
        qg_reply_header(r, "access-control-allow-methods", methods);
        qg_reply_header(r, "access-control-allow-headers",
                        "Authorization, Content-Type, X-Request-Id");
        qg_reply_header(r, "access-control-max-age", "600");
    }
    send_reply(L->srv, req, r);
    finish_metrics(L, r, -1, 204, 0, t0);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    qg_server *srv = ((root_handler *)self)->srv;
    qg_loop *L = H2O_STRUCT_FROM_MEMBER(qg_loop, ctx, req->conn->ctx);
    qg_app *app = srv->app;
    int64_t t0 = qg_time_mono_us();
    int method = qg_method_parse(req->method.base, req->method.len);

    qg_req stack_req;
    qg_req *r = &stack_req;
    qg_req_init(r, app);
    fill_request(L, req, r, method);

    char *path = qg_arena_strndup(&r->arena, r->path, strlen(r->path));
    int allow = 0;
    int route =
        method ? qg_router_match(path, method, r->param, &r->nparam, &allow) : QG_ROUTE_NOT_FOUND;
    if (method == QG_OPTIONS && route == QG_ROUTE_BAD_METHOD) {
        preflight(L, req, r, allow, t0);
        goto done_inline;
    }
    if (route == QG_ROUTE_NOT_FOUND) {
        char msg[256];
        snprintf(msg, sizeof msg, "no route for %.*s %.180s", (int)req->method.len,
                 req->method.base, r->path);
        loop_error(L, req, r, -1, t0, 404, "not_found", msg);
        goto done_inline;
    }
    if (route == QG_ROUTE_BAD_METHOD) {
        char methods[96], msg[256];
        qg_router_allow_header(allow, methods, sizeof methods);
        qg_reply_header(r, "allow", methods);
        snprintf(msg, sizeof msg, "%.*s is not allowed on %.160s; allowed: %s",
                 (int)req->method.len, req->method.base, r->path, methods);
        loop_error(L, req, r, -1, t0, 405, "method_not_allowed", msg);
        goto done_inline;
    }
    const qg_route *rt = &qg_routes[route];
    r->route = rt;
    if (r->body_len > app->max_body) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body of %zu bytes is over QG_MAX_BODY (%zu bytes)",
                 r->body_len, app->max_body);
        loop_error(L, req, r, route, t0, 413, "payload_too_large", msg);
        goto done_inline;
    }
    if (app->limits && rt->rl != QG_RL_NONE) {
        char key[80];
        int retry = 1;
        snprintf(key, sizeof key, "a:%s", r->address);
        if (!qg_ratelimit_take(app->limits, rt->rl, key, qg_time_now_ms(), &retry)) {
            char ra[16], msg[128];
            snprintf(ra, sizeof ra, "%d", retry);
            qg_reply_header(r, "retry-after", ra);
            snprintf(msg, sizeof msg, "too many requests from %s; retry in %d s", r->address,
                     retry);
            loop_error(L, req, r, route, t0, 429, "rate_limited", msg);
            goto done_inline;
        }
    }
    if (rt->flags & QG_ROUTE_INLINE) {
        rt->fn(r);
        send_reply(srv, req, r);
        finish_metrics(L, r, route, r->status, r->out.len, t0);
        goto done_inline;
    }

    /* Off the stack: the item takes over the request state. */
    pending *p = qg_xcalloc(1, sizeof *p);
    p->loop = L;
    p->hreq = req;
    p->route = route;
    p->t0_us = t0;
    atomic_init(&p->holds, 1);
    p->r = stack_req;
    p->r.loop = L;
    p->link = h2o_mem_alloc_shared(&req->pool, sizeof *p->link, link_dispose);
    p->link->p = p;
    if ((rt->flags & QG_ROUTE_LOOP_FIRST) && run_on_loop(L, p)) return 0;
    qg_workpool *pool =
        (rt->flags & QG_ROUTE_LONG) && app->long_requests ? app->long_requests : app->requests;
    if (qg_workpool_submit(pool, work_run, work_done, p) != QG_OK) {
        p->link->p = NULL;
        free(p);
        loop_error(L, req, r, route, t0, 503, "unavailable", "the server is shutting down");
        goto done_inline;
    }
    L->inflight++;
    qg_metrics_inflight(app->metrics, 1);
    return 0;

done_inline:
    qg_req_release(r);
    return 0;
}

/* ---- loops ---- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err) return;
    qg_loop *L = listener->data;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock) h2o_accept(&L->accept_ctx, sock);
}

static void on_ctl(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    qg_loop *L = H2O_STRUCT_FROM_MEMBER(qg_loop, ctl_rx, rx);
    while (!h2o_linklist_is_empty(messages)) h2o_linklist_unlink(messages->next);
    if (L->stopping) return;
    L->stopping = true;
    int64_t now = qg_time_now_ms();
    L->stop_deadline_ms = now + (int64_t)L->srv->cfg.shutdown_timeout_ms;
    L->conns_grace_ms = now + 1000;
    if (L->listener) {
        h2o_socket_read_stop(L->listener);
        h2o_socket_close(L->listener);
        L->listener = NULL;
    }
    h2o_context_request_shutdown(&L->ctx);
}

static bool loop_has_conns(qg_loop *L)
{
    return !h2o_linklist_is_empty(&L->ctx.http1._conns) ||
           !h2o_linklist_is_empty(&L->ctx.http2._conns);
}

static bool loop_drained(qg_loop *L)
{
    if (L->inflight > 0 || L->streams > 0 || atomic_load(&L->wakes_queued) > 0) return false;
    return !loop_has_conns(L) || qg_time_now_ms() >= L->conns_grace_ms;
}

static int open_listener(const char *host, int port, qg_error *err)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        qg_error_set(err, QG_EINVAL, "QG_HOST '%s': %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        qg_error_set(err, QG_EIO, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void *loop_main(void *arg)
{
    qg_loop *L = arg;
    qg_server *srv = L->srv;
    char name[16];
    snprintf(name, sizeof name, "qg-loop-%d", L->index);
    pthread_setname_np(pthread_self(), name);
    if (getrandom(&L->req_seed, sizeof L->req_seed, 0) != sizeof L->req_seed)
        L->req_seed = (uint32_t)qg_time_mono_us();

    h2o_context_init(&L->ctx, h2o_evloop_create(), &srv->conf);
    L->accept_ctx.ctx = &L->ctx;
    L->accept_ctx.hosts = srv->conf.hosts;
    L->accept_ctx.ssl_ctx = srv->ssl;
    h2o_multithread_register_receiver(L->ctx.queue, &L->done_rx, on_done);
    h2o_multithread_register_receiver(L->ctx.queue, &L->ctl_rx, on_ctl);
    h2o_multithread_register_receiver(L->ctx.queue, &L->wake_rx, on_wake);
    h2o_timeout_init(L->ctx.loop, &L->tick, QG_STREAM_POLL_MS);
    L->listener = h2o_evloop_socket_create(L->ctx.loop, L->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    L->listener->data = L;
    h2o_socket_read_start(L->listener, on_accept);
    pthread_barrier_wait(&srv->started);

    while (!(L->stopping && loop_drained(L))) {
        h2o_evloop_run(L->ctx.loop, L->stopping ? 50 : INT32_MAX);
        if (L->stopping && qg_time_now_ms() >= L->stop_deadline_ms) {
            qg_warn("loop %d: shutdown timeout with %d requests and %d streams open", L->index,
                    L->inflight, L->streams);
            break;
        }
    }
    return NULL;
}

/* Frees a loop's h2o state when nothing is left on it, and says so. A loop
 * that still holds connections (a client that kept an idle keep-alive
 * connection open past the grace period) is left as it is: the process is
 * about to exit and the kernel closes the sockets. */
static bool loop_dispose(qg_loop *L)
{
    if (loop_has_conns(L) || L->inflight || L->streams || atomic_load(&L->wakes_queued))
        return false;
    h2o_multithread_unregister_receiver(L->ctx.queue, &L->done_rx);
    h2o_multithread_unregister_receiver(L->ctx.queue, &L->ctl_rx);
    h2o_multithread_unregister_receiver(L->ctx.queue, &L->wake_rx);
    h2o_timeout_dispose(L->ctx.loop, &L->tick);
    /* request_shutdown armed the HTTP/2 graceful-shutdown timer */
    if (h2o_timeout_is_linked(&L->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&L->ctx.http2._graceful_shutdown_timeout);
    h2o_evloop_t *loop = L->ctx.loop;
    h2o_context_dispose(&L->ctx);
    h2o_evloop_run(loop, 0); /* let the sockets closed above be freed */
    h2o_evloop_destroy(loop);
    return true;
}

static qg_status setup_tls(qg_server *srv, qg_error *err)
{
    const qg_server_config *cfg = &srv->cfg;
    if (!cfg->tls_cert && !cfg->tls_key) return QG_OK;
    if (!cfg->tls_cert || !cfg->tls_key)
        return qg_error_set(err, QG_EINVAL, "TLS needs both QG_TLS_CERT and QG_TLS_KEY");
    SSL_load_error_strings();
    SSL_library_init();
    srv->ssl = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(srv->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(srv->ssl, SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(srv->ssl, cfg->tls_cert) != 1)
        return qg_error_set(err, QG_EINVAL, "QG_TLS_CERT '%s': cannot load the certificate: %s",
                            cfg->tls_cert, ERR_reason_error_string(ERR_get_error()));
    if (SSL_CTX_use_PrivateKey_file(srv->ssl, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(srv->ssl) != 1)
        return qg_error_set(err, QG_EINVAL,
                            "QG_TLS_KEY '%s': cannot load the key or it does not "
                            "match the certificate",
                            cfg->tls_key);
    h2o_ssl_register_alpn_protocols(srv->ssl, h2o_http2_alpn_protocols);
    return QG_OK;
}

static qg_status open_access_log(qg_server *srv, qg_error *err)
{
    const char *where = srv->cfg.access_log ? srv->cfg.access_log : "-";
    srv->access_fd = -1;
    if (strcmp(where, "off") == 0) return QG_OK;
    if (strcmp(where, "-") == 0) {
        srv->access_fd = STDERR_FILENO;
        return QG_OK;
    }
    srv->access_fd = open(where, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (srv->access_fd < 0)
        return qg_error_set(err, QG_EIO, "QG_ACCESS_LOG '%s': %s", where, strerror(errno));
    return QG_OK;
}

static void configure_h2o(qg_server *srv)
{
    h2o_config_init(&srv->conf);
    srv->conf.server_name = h2o_iovec_init(H2O_STRLIT("quantgate"));
    /* h2o refuses bodies over its limit before reading them, with a plain
     * text 413 written straight to the socket. Its limit is therefore set
     * above ours, so that bodies just over QG_MAX_BODY (the usual mistake)
     * get the API's JSON 413 from on_req, while a huge body is still refused
     * unread. */
    size_t hard = srv->app->max_body * 2;
    if (hard < srv->app->max_body + (1u << 20)) hard = srv->app->max_body + (1u << 20);
    srv->conf.max_request_entity_size = hard;
    srv->conf.http1.req_timeout = srv->cfg.req_timeout_ms;
    srv->conf.http2.idle_timeout = srv->cfg.idle_timeout_ms;
    srv->conf.http2.graceful_shutdown_timeout = srv->cfg.shutdown_timeout_ms;
    h2o_hostconf_t *host =
        h2o_config_register_host(&srv->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    root_handler *h = (root_handler *)h2o_create_handler(path, sizeof *h);
    h->super.on_req = on_req;
    h->srv = srv;
}

/* Keeps loops that could not be disposed reachable, so leak checkers do not
 * report the connections the kernel is about to close. */
static qg_loop *qg_leftover_loops;

qg_status qg_server_run(qg_app *app, const qg_server_config *cfg, qg_server_ready_fn ready,
                        void *ud, qg_error *err)
{
    qg_status rc = QG_OK;
    qg_server srv = {.app = app, .cfg = *cfg, .access_fd = -1};
    int threads = cfg->threads > 0 ? cfg->threads : qg_cpu_count();
    bool leftovers = false;
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = setup_tls(&srv, err))) goto out;
    if ((rc = open_access_log(&srv, err))) goto out;
    configure_h2o(&srv);
    srv.loops = qg_xcalloc((size_t)threads, sizeof *srv.loops);
    srv.nloops = threads;
    int port = cfg->port;
    for (int i = 0; i < threads; i++) {
        srv.loops[i].srv = &srv;
        srv.loops[i].index = i;
        srv.loops[i].listen_fd = open_listener(cfg->host, port, err);
        if (srv.loops[i].listen_fd < 0) {
            rc = err ? err->code : QG_EIO;
            for (int k = 0; k < i; k++) close(srv.loops[k].listen_fd);
            goto out;
        }
        if (port == 0) port = bound_port(srv.loops[i].listen_fd);
    }

    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    pthread_barrier_init(&srv.started, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&srv.loops[i].thread, NULL, loop_main, &srv.loops[i]) != 0)
            abort(); /* cannot start a loop thread: nothing sensible to fall back to */
    pthread_barrier_wait(&srv.started);
    if (ready) ready(ud, srv.ssl ? "https" : "http", cfg->host, port);

    int sig = 0;
    sigwait(&sigs, &sig);
    qg_info("received %s: stopping (finishing in-flight requests and jobs)",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    atomic_store(&app->stopping, true);
    for (int i = 0; i < threads; i++)
        h2o_multithread_send_message(&srv.loops[i].ctl_rx, &srv.loops[i].ctl_msg);
    for (int i = 0; i < threads; i++) pthread_join(srv.loops[i].thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_barrier_destroy(&srv.started);

    for (int i = 0; i < threads; i++)
        if (!loop_dispose(&srv.loops[i])) leftovers = true;

out:
    if (leftovers)
        qg_leftover_loops = srv.loops;
    else
        free(srv.loops);
    if (srv.conf.hosts) h2o_config_dispose(&srv.conf);
    if (srv.ssl) SSL_CTX_free(srv.ssl);
    if (srv.access_fd > STDERR_FILENO) close(srv.access_fd);
    return rc;
}
