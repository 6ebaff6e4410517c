/*
 * http.h - what a route handler sees: the request, the caller, the reply.
 *
 * Handlers never touch h2o. The event loop copies what a handler needs into
 * a qg_req (method, path, query, body, a few headers), the dispatcher
 * authenticates the caller and checks the route's role on a worker thread,
 * calls the handler there (so it may block on the database), writes the
 * audit row for mutating requests, and hands the finished reply back to the
 * loop, which sends it. A handler therefore only fills r->status, r->out and
 * headers through the qg_reply_* functions, and returns.
 *
 * Memory: everything a handler allocates for the request comes from
 * r->arena (freed with the request); r->out is the capped response body.
 */
#ifndef QG_HTTP_H
#define QG_HTTP_H

#include "auth/auth.h"
#include "store/store.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qg_app qg_app;

enum {
    QG_GET = 1 << 0,
    QG_POST = 1 << 1,
    QG_PUT = 1 << 2,
    QG_PATCH = 1 << 3,
    QG_DELETE = 1 << 4,
    QG_HEAD = 1 << 5,
    QG_OPTIONS = 1 << 6,
};
const char *qg_method_name(int method);

/* Route flags. */
enum {
    QG_ROUTE_INLINE = 1 << 0,      /* runs on the event loop: no database, no blocking (health) */
    QG_ROUTE_RAW_BODY = 1 << 1,    /* body is not JSON (dataset upload) */
    QG_ROUTE_STREAM = 1 << 2,      /* may turn into a Server-Sent Events stream */
    QG_ROUTE_NO_AUDIT = 1 << 3,    /* the handler writes its own audit row (login) */
    QG_ROUTE_ONE_TIME_OK = 1 << 4, /* open to an account that must still replace its
                                      one-time password (/api/me, /api/me/password) */
    QG_ROUTE_LONG = 1 << 5,        /* waits on something slow (a model): runs on the long-call
                                      pool, so it never holds one of the few request workers */
    QG_ROUTE_LOOP_FIRST = 1 << 6,  /* public route whose handler starts on the event loop and
                                      moves to a worker (qg_req_need_worker) only when it must
                                      block: the webhook, whose common case is a secret check,
                                      a parse and a hand-off to the group commit */
};

/* Rate-limit classes: each has its own buckets per address and per user. */
typedef enum {
    QG_RL_NONE = 0, /* never limited: /health, /ready, /metrics */
    QG_RL_AUTH,     /* signup, login, refresh, logout */
    QG_RL_READ,     /* other GETs */
    QG_RL_WRITE,    /* other mutations */
    QG_RL_HEAVY,    /* starting backtests, uploads */
    QG_RL__COUNT
} qg_rl_class;

typedef struct qg_req qg_req;
typedef void (*qg_handler_fn)(qg_req *r);

typedef struct qg_route {
    int method;          /* one QG_GET.. bit */
    const char *pattern; /* "/api/datasets/{id}/candles": {name} matches one segment */
    qg_handler_fn fn;
    qg_role role; /* QG_ROLE_NONE: anyone, no credentials needed */
    qg_rl_class rl;
    unsigned flags;
    /* OpenAPI: a one-line summary, a tag, and JSON Schema texts (or NULL). */
    const char *summary;
    const char *tag;
    const char *request_schema;
    const char *response_schema;
    /* Query parameters for OpenAPI, "name:type:description" separated by '|'. */
    const char *query_params;
} qg_route;

/* The route table (routes.c), ended by an entry with pattern NULL. */
extern const qg_route qg_routes[];

/* Server-Sent Events: a handler of a QG_ROUTE_STREAM route that wants to
 * stream sets r->stream_poll and r->stream_arg (a heap object it owns until
 * stream_free). The loop then sends r->out as the first chunk with
 * Content-Type text/event-stream and calls stream_poll on the loop thread
 * every QG_STREAM_POLL_MS; poll appends events to out and returns true when
 * the stream is finished. stream_free is called exactly once, also when the
 * client goes away first. poll must not block. */
typedef bool (*qg_stream_poll_fn)(void *arg, qg_buf *out);
typedef void (*qg_stream_free_fn)(void *arg);
#define QG_STREAM_POLL_MS 100

/* A stream's waker: lets a producer on another thread run the stream's poll
 * now instead of at the next QG_STREAM_POLL_MS tick (LLM tokens would
 * otherwise wait up to 100 ms each). A handler takes one with
 * qg_req_stream_waker before it returns, hands it to its producer, and the
 * producer calls qg_stream_wake after appending to its own (locked) buffer.
 * Wakes coalesce: many wakes before the loop gets to the stream run poll
 * once. A wake while a chunk is still being written runs poll when the
 * write completes. Wakes before the stream started, after it ended or
 * after the client went away do nothing. The tick stays as a fallback.
 * Refcounted; freed when the last reference goes. */
typedef struct qg_stream_waker qg_stream_waker;
/* A new reference to the request's waker (made on the first call), bound to
 * the request's event loop. Worker thread, QG_ROUTE_STREAM handlers only.
 * Outside the server (no loop) the waker is unbound and wakes do nothing.
 * The caller owns the returned reference; never NULL. */
qg_stream_waker *qg_req_stream_waker(qg_req *r);
/* Any thread; never blocks for long (one mutex, one pipe write). */
void qg_stream_wake(qg_stream_waker *w);
/* Another reference (any thread). */
qg_stream_waker *qg_stream_waker_ref(qg_stream_waker *w);
/* Drops a reference (any thread); NULL is a no-op. */
void qg_stream_waker_unref(qg_stream_waker *w);

/* Deferred replies: a handler that waits for something asynchronous (a
 * webhook waits for the group commit of its signal) takes a qg_req_later
 * and returns without replying; the reply is sent when
 * qg_req_later_finish is called, from any thread. Between the two only
 * the finisher touches the request (qg_reply_* on qg_req_later_req), and
 * never r->db. For QG_ROUTE_NO_AUDIT routes only: the dispatcher writes
 * no audit row and no fallback reply for a deferred request. Outside the
 * server (no event loop) qg_req_defer returns NULL: reply directly. */
typedef struct qg_req_later qg_req_later;
qg_req_later *qg_req_defer(qg_req *r);
qg_req *qg_req_later_req(qg_req_later *l);
/* Sends the reply the finisher set (500 when none). Exactly once. */
void qg_req_later_finish(qg_req_later *l);

/* QG_ROUTE_LOOP_FIRST handlers: true when the handler runs on the event
 * loop, where it must not block (no r->db, no waiting). It should then
 * return at once without replying: the request goes to a worker, which
 * calls the handler again from the start (this returns false there). */
bool qg_req_need_worker(qg_req *r);

#define QG_MAX_PARAMS       4
#define QG_MAX_RESP_HEADERS 8
#define QG_MAX_X_HEADERS    12 /* request headers kept for handlers: x-* and last-event-id */

typedef struct qg_principal {
    bool authenticated;
    qg_user user;
    bool via_api_token; /* false: access token (JWT) */
    qg_scope scope;     /* QG_SCOPE_WRITE for JWTs */
    char token_id[QG_ID_MAX];
} qg_principal;

struct qg_req {
    qg_app *app;
    qg_arena arena;
    const qg_route *route;

    /* request (all NUL-terminated, owned by the arena) */
    int method;
    const char *path;  /* decoded path, no query */
    const char *query; /* raw query string without '?', "" when none */
    const char *body;  /* NUL-terminated copy; body_len excludes the NUL */
    size_t body_len;
    const char *content_type;  /* "" when absent */
    const char *authorization; /* "" when absent */
    const char *address;       /* client IP */
    const char *request_id;
    const char *xhdr_name[QG_MAX_X_HEADERS]; /* lower-case names of the kept headers, in order */
    const char *xhdr_value[QG_MAX_X_HEADERS];
    int nxhdr;
    const char *param[QG_MAX_PARAMS]; /* path parameters, in pattern order */
    int nparam;
    qg_principal who;

    /* database connection, taken on first qg_req_db and released after the
     * handler by the dispatcher */
    qg_conn *db;

    /* reply */
    int status; /* 0 until a qg_reply_* call */
    qg_buf out;
    const char *out_type; /* Content-Type of out */
    const char *hdr_name[QG_MAX_RESP_HEADERS];
    const char *hdr_value[QG_MAX_RESP_HEADERS];
    int nhdr;
    const char *error_code; /* set by qg_reply_error, for the access log */
    int64_t upstream_us;    /* time the handler waited on a provider (-1: none): the
                               loop then records what quantgate added to the request */
    bool upstream_stream;   /* ... a streamed call that ended before its stream started */
    const int64_t *stream_upstream_us; /* a live stream's provider time, final once its poll
                                          reports done: the loop then records what quantgate
                                          added to the whole stream */

    /* audit: what the request acted on, set by handlers that know it */
    const char *audit_target;

    cJSON *body_json; /* the tree qg_req_json returned; freed with the request */
    bool deferred;    /* qg_req_defer was called: the reply comes later */
    bool on_loop;     /* a QG_ROUTE_LOOP_FIRST handler's first run, on the event loop */
    bool want_worker; /* ... which asked to run again on a worker */

    /* streaming (see qg_stream_poll_fn) */
    qg_stream_poll_fn stream_poll;
    qg_stream_free_fn stream_free;
    void *stream_arg;
    qg_stream_waker *stream_waker; /* the request's own reference (server.c) */
    void *loop;                    /* the event loop that owns the request (server.c) */
};

/* ---- replies (each replaces any earlier reply) ---- */
/* Serialises body (unformatted) and deletes it. */
void qg_reply_json(qg_req *r, int status, cJSON *body);
/* Raw reply with the given content type; data is copied. */
void qg_reply_raw(qg_req *r, int status, const char *type, const char *data, size_t n);
/* Empty reply (204, 202 ...). */
void qg_reply_empty(qg_req *r, int status);
/* {"error":{"code":code,"message":<fmt>}}. */
void qg_reply_error(qg_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a failed call's status to a reply: EINVAL 400 validation_failed,
 * ENOTFOUND 404, EDENIED 403, EEXIST 409, ERANGE 413, EAGAIN 503; anything
 * else is 500 internal with the request id (the message goes to the log
 * only). */
void qg_reply_status(qg_req *r, qg_status rc, const qg_error *err);
/* Adds a response header; name and value are copied into the arena. */
void qg_reply_header(qg_req *r, const char *name, const char *value);

/* ---- request helpers ---- */
/* Parses the body as a JSON object. On failure replies 400 invalid_json
 * (with line and column) or validation_failed (not an object) and returns
 * NULL. The tree is owned by the request (freed with it). */
cJSON *qg_req_json(qg_req *r);
/* The value of request header name (case-insensitive; only x-* headers
 * and Last-Event-ID are kept, the first QG_MAX_X_HEADERS of them), or
 * NULL. */
const char *qg_req_header(const qg_req *r, const char *name);
/* The percent-decoded value of query parameter name, or NULL. Arena-owned. */
const char *qg_req_query(qg_req *r, const char *name);
/* Identifies the caller of a public route from its bearer token, as the
 * dispatcher does for protected ones (fills r->who). On failure replies
 * 401/403/503 and returns false. */
bool qg_req_authenticate(qg_req *r);
/* The request's database connection; on failure replies 503 and returns
 * NULL. */
qg_conn *qg_req_db(qg_req *r);

/* Field readers: on a missing required field or a wrong type they reply 400
 * validation_failed naming the field and return false; an absent optional
 * field leaves *out unchanged and returns true. */
bool qg_field_str(qg_req *r, const cJSON *obj, const char *name, bool required, size_t max_len,
                  const char **out);
bool qg_field_num(qg_req *r, const cJSON *obj, const char *name, bool required, double min,
                  double max, double *out);
bool qg_field_bool(qg_req *r, const cJSON *obj, const char *name, bool required, bool *out);

/* Formats ms as ISO-8601 into a cJSON string (NULL ms 0 → JSON null). */
cJSON *qg_json_time(int64_t ms);

#endif
