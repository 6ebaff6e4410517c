/*
 * transport.h - the HTTP client of the AI layer, on libcurl's multi
 * interface.
 *
 * A caller either blocks until its exchange is done
 * (qg_ai_transport_perform), or gets a completion callback on the transport
 * thread (qg_ai_transport_submit). A blocking call runs on the calling
 * thread itself, on a multi handle of that thread's own (made on its first
 * call, freed with the transport), so it costs no thread hand-off; submitted
 * exchanges go to the transport thread's multi handle through a
 * mutex-protected queue plus curl_multi_wakeup (no polling sleeps).
 * Connections stay in each multi handle's cache, so calls to one provider
 * reuse them (HTTP/1.1 keep-alive, HTTP/2 over TLS).
 *
 * An exchange sends what a provider's encode built and keeps what came
 * back: the status, the Retry-After header, and either a capped body or,
 * for a 2xx stream, the bytes fed to a framer as they arrive (so deltas
 * reach the caller without waiting for the end). A non-2xx body is always
 * buffered, so the provider's decode_error can read it.
 *
 * Nothing here logs a URL or a header: URLs may carry keys (Gemini) and
 * headers do (Authorization).
 */
#ifndef QG_AI_TRANSPORT_H
#define QG_AI_TRANSPORT_H

#include "ai/provider.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct qg_ai_transport qg_ai_transport;
typedef struct qg_ai_exchange qg_ai_exchange;

/* Completion of a submitted exchange, called on the transport thread; x
 * belongs to the caller again (it may be freed inside the callback). */
typedef void (*qg_ai_exchange_done_fn)(void *ud, qg_ai_exchange *x);

#define QG_AI_BODY_MAX_DEFAULT ((size_t)8 << 20)

struct qg_ai_exchange {
    /* ---- in (set before perform/submit; borrowed until completion) ---- */
    const qg_ai_http_req *req;  /* method, url, headers, body */
    int64_t connect_timeout_ms; /* 0: 10 000 */
    int64_t read_timeout_ms;    /* longest silence between received bytes; 0: 120 000 */
    int64_t total_timeout_ms;   /* 0: none */
    atomic_bool *cancel;        /* may be NULL; see qg_ai_transport_wake */
    size_t body_max;            /* cap on the buffered body; 0: QG_AI_BODY_MAX_DEFAULT */
    qg_ai_framer *framer;       /* NULL: buffer a 2xx body; else a 2xx body goes here and
                                   qg_ai_framer_end runs at its end (transport thread) */

    /* ---- out (valid after completion) ---- */
    qg_ai_errkind kind;   /* QG_AI_OK: an HTTP reply arrived whole (any status); else
                             ETIMEOUT, ENETWORK, ECANCELLED, EBADREQ (malformed URL), or
                             EPROTOCOL (a 2xx body over body_max, or the framer failed) */
    char errmsg[160];     /* why kind is not OK; never a URL query or a header */
    int http_status;      /* 0 when no status line arrived */
    char retry_after[64]; /* the Retry-After header's value, or "" */
    qg_buf body;          /* buffered body (owned; qg_ai_exchange_free) */
    bool body_truncated;  /* a non-2xx body was cut at body_max */
    int64_t ttfb_us;      /* request start to the first response byte (libcurl) */
    int64_t total_us;     /* request start to the end (libcurl) */
    int64_t wall_us;      /* submit to completion, including the hand-offs */

    /* ---- private to the transport ---- */
    struct {
        qg_ai_exchange *next; /* pending queue / active list */
        qg_ai_exchange *prev;
        void *easy;    /* CURL * */
        void *headers; /* struct curl_slist * */
        qg_ai_exchange_done_fn done;
        void *ud;
        int64_t submit_us;
        int64_t last_rx_us;       /* last byte received (or request start) */
        qg_ai_errkind abort_kind; /* why a callback aborted the transfer */
        bool status_checked;      /* the first body byte was seen */
        bool to_framer;           /* the body goes to the framer (2xx stream) */
        char curl_err[256];
    } priv;
};

/* Starts the transport thread (and curl_global_init, once per process).
 * The caller owns *out (qg_ai_transport_free). */
qg_status qg_ai_transport_new(qg_ai_transport **out, qg_error *err);
/* Completes every pending and running exchange with QG_AI_ECANCELLED (their
 * callbacks run, blocked performers return), joins the thread, waits for
 * the performers to leave, frees. NULL is a no-op. */
void qg_ai_transport_free(qg_ai_transport *t);

/* An exchange starts zeroed (`qg_ai_exchange x = {0};`); perform and submit
 * clear its out fields themselves (freeing a previous body), so one exchange
 * can be reused. qg_ai_exchange_reset does that clearing (keeps the in
 * fields). */
void qg_ai_exchange_reset(qg_ai_exchange *x);
/* Frees the body buffer. */
void qg_ai_exchange_free(qg_ai_exchange *x);

/* Runs x and blocks until it is done. QG_OK when a reply arrived whole (look
 * at x->http_status); QG_EIO otherwise, x->kind and x->errmsg say why;
 * QG_EAGAIN when the transport is shutting down. */
qg_status qg_ai_transport_perform(qg_ai_transport *t, qg_ai_exchange *x);
/* Queues x; done(ud, x) runs on the transport thread when it completes. x
 * must stay valid until then. QG_EAGAIN (done not called) when shutting
 * down. */
qg_status qg_ai_transport_submit(qg_ai_transport *t, qg_ai_exchange *x, qg_ai_exchange_done_fn done,
                                 void *ud);
/* Wakes the transport thread and every blocked performer so they look at
 * cancel flags now (call after setting one; otherwise a cancel is seen
 * within 100 ms). */
void qg_ai_transport_wake(qg_ai_transport *t);

/* Exchanges queued or running (for /metrics and tests). */
int qg_ai_transport_inflight(qg_ai_transport *t);

#endif
