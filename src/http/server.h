/*
 * server.h - the HTTP server: h2o event loops, one per thread, sharing the
 * listening port through SO_REUSEPORT.
 *
 * Each loop accepts its own connections (HTTP/1.1 with keep-alive, HTTP/2
 * with prior knowledge or, under TLS, by ALPN), matches routes, answers
 * inline routes (health, metrics) on the spot and hands every other request
 * to the app's request worker pool. The worker's completion step posts the
 * finished reply back to the loop through h2o's multithread queue, so no
 * loop ever blocks on the database or a job.
 *
 * qg_server_run blocks until SIGTERM or SIGINT, then shuts down gracefully:
 * listeners close, idle connections close, in-flight requests finish and
 * streams end (bounded by shutdown_timeout_ms), and it returns.
 */
#ifndef QG_SERVER_H
#define QG_SERVER_H

#include "http/app.h"

#include <quantgate/status.h>

#include <stdint.h>

typedef struct qg_server_config {
    const char *host;               /* "127.0.0.1" */
    int port;                       /* 0 picks a free port */
    int threads;                    /* event loops; <= 0: one per core */
    const char *tls_cert, *tls_key; /* both or neither (PEM files) */
    uint64_t req_timeout_ms;        /* header / HTTP/1 idle timeout */
    uint64_t idle_timeout_ms;       /* HTTP/2 idle timeout */
    uint64_t shutdown_timeout_ms;   /* cap on the graceful shutdown */
    const char *access_log;         /* "-" stderr, "off", or a file path */
} qg_server_config;

/* Called once on the main thread when every loop is listening; port is the
 * bound port. */
typedef void (*qg_server_ready_fn)(void *ud, const char *scheme, const char *host, int port);

qg_status qg_server_run(qg_app *app, const qg_server_config *cfg, qg_server_ready_fn ready,
                        void *ud, qg_error *err);

/* The dispatcher (dispatch.c): runs on a worker thread for every non-inline
 * request. Authenticates, authorises, rate-limits per user, calls the
 * handler, audits mutations and releases the database connection. */
void qg_dispatch(qg_req *r);

/* Starts a request's reply state: arena, capped body buffer. */
void qg_req_init(qg_req *r, qg_app *app);
/* Frees what a request owns (arena, body buffer, JSON tree). Streams are
 * not freed here. */
void qg_req_release(qg_req *r);

#endif
