/*
 * test_ai_transport.c - the libcurl transport and the exec attempt loop
 * over real loopback sockets.
 *
 * A small HTTP/1.1 responder runs on a thread inside the test: each request
 * takes the next scripted step for its path (status, Retry-After, body,
 * delay, hang, chunked stream, cut connection) or echoes its body. It
 * counts connections and requests, so keep-alive reuse and "this deployment
 * was never called" are observable. One test also drives the real fake
 * provider server (tests/fakellm/fakellm.py) as a child process through its
 * /_fake/ control endpoints.
 *
 * Exec runs with providers defined here (a plain-text wire: the body is the
 * last user message, a 2xx body is the answer, SSE data lines are text,
 * "[DONE]" ends the stream) and short backoffs, so retries, fallback,
 * cool-down and no-failover-after-delta are deterministic and fast.
 */
#include <criterion/criterion.h>

#include "ai/exec.h"
#include "ai/routing.h"
#include "ai/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef QG_TEST_DATA
#define QG_TEST_DATA "tests/data"
#endif

/* ---- the responder ---- */

typedef struct step {
    const char *path; /* which requests take it (exact path) */
    int status;       /* 0: 200 */
    const char *retry_after;
    const char *body;      /* NULL: echo the request body */
    size_t big;            /* > 0: a body of this many 'x' */
    int delay_ms;          /* before the status line */
    int hang_ms;           /* read the request, say nothing, then close */
    bool close;            /* close without a reply */
    const char *chunks[8]; /* a chunked reply (text/event-stream) */
    int chunk_delay_ms;
    bool cut; /* after the chunks, close without the last chunk */
} step;

#define MAX_STEPS 64
#define MAX_PATHS 16

static struct {
    int lfd;
    int port;
    pthread_t thr;
    pthread_mutex_t mu;
    step steps[MAX_STEPS];
    bool used[MAX_STEPS];
    int nsteps;
    struct {
        char path[64];
        int count;
        char last_headers[2048];
    } paths[MAX_PATHS];
    int npaths;
    int connections;
    int requests;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void script(step s)
{
    pthread_mutex_lock(&S.mu);
    cr_assert_lt(S.nsteps, MAX_STEPS);
    S.steps[S.nsteps++] = s;
    pthread_mutex_unlock(&S.mu);
}

static int path_count(const char *path)
{
    int n = 0;
    pthread_mutex_lock(&S.mu);
    for (int i = 0; i < S.npaths; i++)
        if (!strcmp(S.paths[i].path, path)) n = S.paths[i].count;
    pthread_mutex_unlock(&S.mu);
    return n;
}

static void path_headers(const char *path, char *out, size_t cap)
{
    out[0] = 0;
    pthread_mutex_lock(&S.mu);
    for (int i = 0; i < S.npaths; i++)
        if (!strcmp(S.paths[i].path, path)) snprintf(out, cap, "%s", S.paths[i].last_headers);
    pthread_mutex_unlock(&S.mu);
}

static step take_step(const char *path, const char *head)
{
    step s = {0};
    pthread_mutex_lock(&S.mu);
    S.requests++;
    int p = 0;
    while (p < S.npaths && strcmp(S.paths[p].path, path)) p++;
    if (p == S.npaths && p < MAX_PATHS) snprintf(S.paths[S.npaths++].path, 64, "%s", path);
    if (p < MAX_PATHS) {
        S.paths[p].count++;
        snprintf(S.paths[p].last_headers, sizeof S.paths[p].last_headers, "%s", head);
    }
    for (int i = 0; i < S.nsteps; i++)
        if (!S.used[i] && !strcmp(S.steps[i].path, path)) {
            S.used[i] = true;
            s = S.steps[i];
            break;
        }
    pthread_mutex_unlock(&S.mu);
    return s;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static bool reply(int fd, const step *s, const char *req_body, size_t req_len)
{
    if (s->delay_ms) msleep(s->delay_ms);
    char head[512];
    int status = s->status ? s->status : 200;
    if (s->chunks[0]) {
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d X\r\nContent-Type: text/event-stream\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 status);
        if (!send_all(fd, head, strlen(head))) return false;
        for (int i = 0; i < 8 && s->chunks[i]; i++) {
            char ch[1024];
            int n = snprintf(ch, sizeof ch, "%zx\r\n%s\r\n", strlen(s->chunks[i]), s->chunks[i]);
            if (!send_all(fd, ch, (size_t)n)) return false;
            if (s->chunk_delay_ms) msleep(s->chunk_delay_ms);
        }
        if (s->cut) return false;
        return send_all(fd, "0\r\n\r\n", 5);
    }
    char *big = NULL;
    const char *body = s->body;
    size_t blen = body ? strlen(body) : req_len;
    if (s->big) {
        big = malloc(s->big);
        memset(big, 'x', s->big);
        body = big;
        blen = s->big;
    } else if (!body) {
        body = req_body;
    }
    char ra[96] = "";
    if (s->retry_after) snprintf(ra, sizeof ra, "Retry-After: %s\r\n", s->retry_after);
    snprintf(head, sizeof head,
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
             status, blen, ra);
    bool ok = send_all(fd, head, strlen(head)) && send_all(fd, body, blen);
    free(big);
    return ok;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t cap = 1 << 20;
    char *buf = malloc(cap + 1);
    size_t len = 0;
    for (;;) {
        char *end;
        while (!(buf[len] = 0, end = strstr(buf, "\r\n\r\n"))) {
            ssize_t k = recv(fd, buf + len, cap - len, 0);
            if (k <= 0) goto out;
            len += (size_t)k;
        }
        size_t head_len = (size_t)(end - buf) + 4;
        size_t clen = 0;
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (cl && cl < end) clen = strtoul(cl + 17, NULL, 10);
        while (len < head_len + clen) {
            ssize_t k = recv(fd, buf + len, cap - len, 0);
            if (k <= 0) goto out;
            len += (size_t)k;
        }
        char path[64] = "";
        sscanf(buf, "%*s %63s", path);
        char *q = strchr(path, '?');
        if (q) *q = 0;
        buf[head_len - 2] = 0;
        step s = take_step(path, buf);
        char *body = buf + head_len;
        if (s.close) goto out;
        if (s.hang_ms) {
            msleep(s.hang_ms);
            goto out;
        }
        if (!reply(fd, &s, body, clen)) goto out;
        memmove(buf, buf + head_len + clen, len - head_len - clen);
        len -= head_len + clen;
    }
out:
    free(buf);
    close(fd);
    return NULL;
}

static void *accept_main(void *arg)
{
    for (;;) {
        int fd = accept(S.lfd, NULL, NULL);
        if (fd < 0) return NULL;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_mutex_lock(&S.mu);
        S.connections++;
        pthread_mutex_unlock(&S.mu);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &at, conn_main, (void *)(intptr_t)fd);
        pthread_attr_destroy(&at);
    }
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 256), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    *port = ntohs(a.sin_port);
    return fd;
}

static qg_ai_transport *T;

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    S.lfd = listen_any(&S.port);
    pthread_create(&S.thr, NULL, accept_main, NULL);
    qg_error err = {0};
    cr_assert_eq(qg_ai_transport_new(&T, &err), QG_OK, "%s", err.msg);
}

static void teardown(void)
{
    qg_ai_transport_free(T);
    T = NULL;
    shutdown(S.lfd, SHUT_RDWR);
    close(S.lfd);
    pthread_join(S.thr, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A request to path on the responder. */
typedef struct http {
    qg_ai_http_req req;
    char url[128];
} http;

static void mkreq(http *h, const char *method, const char *path, const char *body)
{
    memset(h, 0, sizeof *h);
    snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d%s", S.port, path);
    h->req.method = method;
    h->req.url = h->url;
    h->req.headers[h->req.nheaders++] = "Content-Type: text/plain";
    h->req.headers[h->req.nheaders++] = "Authorization: Bearer sk-secret";
    qg_buf_init(&h->req.body, 1 << 20);
    if (body) qg_buf_puts(&h->req.body, body);
}

/* ---- transport ---- */

Test(ai_transport, status_retry_after_and_error_body, .init = setup, .fini = teardown)
{
    script((step){.path = "/a", .status = 429, .retry_after = "7", .body = "{\"error\":\"slow\"}"});
    http h;
    mkreq(&h, "POST", "/a", "{}");
    qg_ai_exchange x = {.req = &h.req};
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_OK, "%s", x.errmsg);
    cr_assert_eq(x.kind, QG_AI_OK);
    cr_assert_eq(x.http_status, 429);
    cr_assert_str_eq(x.retry_after, "7");
    cr_assert_str_eq(x.body.data, "{\"error\":\"slow\"}");
    cr_assert_not(x.body_truncated);
    cr_assert_gt(x.total_us, 0);
    cr_assert_geq(x.total_us, x.ttfb_us);
    cr_assert_geq(x.wall_us, x.total_us / 2);
    qg_ai_exchange_free(&x);
    qg_buf_free(&h.req.body);
}

Test(ai_transport, body_and_headers_arrive_and_get_works, .init = setup, .fini = teardown)
{
    http h;
    mkreq(&h, "POST", "/echo", "{\"q\":\"hello\"}");
    qg_ai_exchange x = {.req = &h.req};
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_OK, "%s", x.errmsg);
    cr_assert_eq(x.http_status, 200);
    cr_assert_str_eq(x.body.data, "{\"q\":\"hello\"}", "echoed");
    cr_assert_str_eq(x.retry_after, "");
    char head[2048];
    path_headers("/echo", head, sizeof head);
    cr_assert(strstr(head, "POST /echo HTTP/1.1"), "%s", head);
    cr_assert(strstr(head, "Authorization: Bearer sk-secret"), "%s", head);
    cr_assert_null(strstr(head, "Expect:"), "no 100-continue round trip");
    qg_ai_exchange_free(&x);
    qg_buf_free(&h.req.body);

    script((step){.path = "/get", .body = "fine"});
    mkreq(&h, "GET", "/get", NULL);
    qg_ai_exchange y = {.req = &h.req};
    cr_assert_eq(qg_ai_transport_perform(T, &y), QG_OK);
    cr_assert_str_eq(y.body.data, "fine");
    path_headers("/get", head, sizeof head);
    cr_assert(strstr(head, "GET /get HTTP/1.1"), "%s", head);
    qg_ai_exchange_free(&y);
    qg_buf_free(&h.req.body);
}

Test(ai_transport, body_cap, .init = setup, .fini = teardown)
{
    script((step){.path = "/big", .big = 100000});
    script((step){.path = "/big", .status = 500, .big = 100000});
    http h;
    mkreq(&h, "POST", "/big", "{}");
    qg_ai_exchange x = {.req = &h.req, .body_max = 10000};
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_EIO);
    cr_assert_eq(x.kind, QG_AI_EPROTOCOL, "a 2xx answer over the cap is an error");
    cr_assert(strstr(x.errmsg, "10000 byte cap"), "%s", x.errmsg);
    /* an error body is cut, not refused */
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_OK, "%s", x.errmsg);
    cr_assert_eq(x.http_status, 500);
    cr_assert(x.body_truncated);
    cr_assert_eq(x.body.len, 10000);
    qg_ai_exchange_free(&x);
    qg_buf_free(&h.req.body);
}

Test(ai_transport, read_timeout_on_a_silent_server, .init = setup, .fini = teardown)
{
    script((step){.path = "/hang", .hang_ms = 3000});
    http h;
    mkreq(&h, "POST", "/hang", "{}");
    qg_ai_exchange x = {.req = &h.req, .read_timeout_ms = 200};
    int64_t t0 = now_ms();
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_EIO);
    int64_t took = now_ms() - t0;
    cr_assert_eq(x.kind, QG_AI_ETIMEOUT, "%s", x.errmsg);
    cr_assert(took >= 190 && took < 2000, "timed out after %lld ms", (long long)took);
    cr_assert_eq(x.http_status, 0);
    qg_ai_exchange_free(&x);
    qg_buf_free(&h.req.body);
}

Test(ai_transport, read_timeout_is_silence_not_total, .init = setup, .fini = teardown)
{
    /* 6 chunks 150 ms apart: 750 ms in all, never 300 ms of silence */
    script((step){.path = "/slow",
                  .chunks = {"data: 1\n\n", "data: 2\n\n", "data: 3\n\n", "data: 4\n\n",
                             "data: 5\n\n", "data: [DONE]\n\n"},
                  .chunk_delay_ms = 150});
    script(
        (step){.path = "/slow", .chunks = {"data: 1\n\n", "data: 2\n\n"}, .chunk_delay_ms = 800});
    http h;
    mkreq(&h, "POST", "/slow", "{}");
    qg_ai_exchange x = {.req = &h.req, .read_timeout_ms = 300};
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_OK, "%s", x.errmsg);
    cr_assert(strstr(x.body.data, "[DONE]"));
    cr_assert_gt(x.total_us, 600000);
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_EIO);
    cr_assert_eq(x.kind, QG_AI_ETIMEOUT);
    cr_assert(strstr(x.body.data, "data: 1"), "what came before the silence was kept");
    qg_ai_exchange_free(&x);
    qg_buf_free(&h.req.body);
}

Test(ai_transport, connect_failure_on_a_closed_port, .init = setup, .fini = teardown)
{
    int port;
    int fd = listen_any(&port);
    close(fd); /* nothing listens there now */
    http h;
    mkreq(&h, "POST", "/", "{}");
    snprintf(h.url, sizeof h.url, "http://127.0.0.1:%d/v1/x?key=SECRETKEY", port);
    qg_ai_exchange x = {.req = &h.req, .connect_timeout_ms = 2000};
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_EIO);
    cr_assert_eq(x.kind, QG_AI_ENETWORK, "%s", x.errmsg);
    cr_assert(x.errmsg[0]);
    cr_assert_null(strstr(x.errmsg, "SECRETKEY"), "%s", x.errmsg);
    qg_ai_exchange_free(&x);

    snprintf(h.url, sizeof h.url, "notaurl://x");
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_EIO);
    cr_assert_eq(x.kind, QG_AI_EBADREQ, "%s", x.errmsg);
    qg_ai_exchange_free(&x);
    qg_buf_free(&h.req.body);
}

typedef struct canceller {
    atomic_bool *flag;
    int after_ms;
    bool wake;
} canceller;

static void *cancel_main(void *arg)
{
    canceller *c = arg;
    msleep(c->after_ms);
    atomic_store(c->flag, true);
    if (c->wake) qg_ai_transport_wake(T);
    return NULL;
}

Test(ai_transport, cancel, .init = setup, .fini = teardown)
{
    for (int wake = 1; wake >= 0; wake--) {
        script((step){.path = "/hang", .hang_ms = 5000});
        atomic_bool flag = false;
        canceller c = {&flag, 100, wake};
        pthread_t th;
        http h;
        mkreq(&h, "POST", "/hang", "{}");
        qg_ai_exchange x = {.req = &h.req, .cancel = &flag};
        int64_t t0 = now_ms();
        pthread_create(&th, NULL, cancel_main, &c);
        cr_assert_eq(qg_ai_transport_perform(T, &x), QG_EIO);
        int64_t took = now_ms() - t0;
        pthread_join(th, NULL);
        cr_assert_eq(x.kind, QG_AI_ECANCELLED, "%s", x.errmsg);
        cr_assert(took >= 95 && took < 2000, "wake %d: %lld ms", wake, (long long)took);
        qg_ai_exchange_free(&x);
        qg_buf_free(&h.req.body);
    }
}

Test(ai_transport, connections_are_reused, .init = setup, .fini = teardown)
{
    http h;
    mkreq(&h, "POST", "/ka", "{}");
    for (int i = 0; i < 5; i++) {
        qg_ai_exchange x = {.req = &h.req};
        cr_assert_eq(qg_ai_transport_perform(T, &x), QG_OK, "%s", x.errmsg);
        qg_ai_exchange_free(&x);
    }
    cr_assert_eq(path_count("/ka"), 5);
    pthread_mutex_lock(&S.mu);
    int conns = S.connections;
    pthread_mutex_unlock(&S.mu);
    cr_assert_eq(conns, 1, "one keep-alive connection, not %d", conns);
    qg_buf_free(&h.req.body);
}

#define N_CONC 64

typedef struct conc {
    http h;
    char body[64];
    qg_ai_exchange x;
    qg_status rc;
} conc;

static void *conc_main(void *arg)
{
    conc *c = arg;
    c->rc = qg_ai_transport_perform(T, &c->x);
    return NULL;
}

Test(ai_transport, many_concurrent_exchanges, .init = setup, .fini = teardown)
{
    static conc cs[N_CONC];
    pthread_t th[N_CONC];
    for (int i = 0; i < N_CONC; i++) {
        snprintf(cs[i].body, sizeof cs[i].body, "{\"n\":%d}", i);
        mkreq(&cs[i].h, "POST", "/conc", cs[i].body);
        script((step){.path = "/conc", .body = NULL, .delay_ms = 300});
        cs[i].x = (qg_ai_exchange){.req = &cs[i].h.req};
    }
    int64_t t0 = now_ms();
    for (int i = 0; i < N_CONC; i++) pthread_create(&th[i], NULL, conc_main, &cs[i]);
    for (int i = 0; i < N_CONC; i++) pthread_join(th[i], NULL);
    int64_t took = now_ms() - t0;
    for (int i = 0; i < N_CONC; i++) {
        cr_assert_eq(cs[i].rc, QG_OK, "%d: %s", i, cs[i].x.errmsg);
        cr_assert_str_eq(cs[i].x.body.data, cs[i].body, "each caller gets its own answer");
        qg_ai_exchange_free(&cs[i].x);
        qg_buf_free(&cs[i].h.req.body);
    }
    cr_assert_eq(path_count("/conc"), N_CONC);
    cr_assert_lt(took, 10000, "64 x 300 ms ran concurrently (%lld ms)", (long long)took);
    cr_assert_eq(qg_ai_transport_inflight(T), 0);
}

static atomic_int done_count;
static void count_done(void *ud, qg_ai_exchange *x)
{
    int *kind = ud;
    *kind = (int)x->kind;
    atomic_fetch_add(&done_count, 1);
}

Test(ai_transport, submit_callbacks_and_shutdown_cancels, .init = setup)
{
    static conc cs[N_CONC];
    static int kinds[N_CONC];
    atomic_store(&done_count, 0);
    for (int i = 0; i < N_CONC; i++) {
        snprintf(cs[i].body, sizeof cs[i].body, "%d", i);
        mkreq(&cs[i].h, "POST", "/sub", cs[i].body);
        cs[i].x = (qg_ai_exchange){.req = &cs[i].h.req};
        kinds[i] = -1;
        cr_assert_eq(qg_ai_transport_submit(T, &cs[i].x, count_done, &kinds[i]), QG_OK);
    }
    int64_t t0 = now_ms();
    while (atomic_load(&done_count) < N_CONC && now_ms() - t0 < 5000) msleep(5);
    cr_assert_eq(atomic_load(&done_count), N_CONC);
    for (int i = 0; i < N_CONC; i++) {
        cr_assert_eq(kinds[i], QG_AI_OK);
        cr_assert_str_eq(cs[i].x.body.data, cs[i].body);
        qg_ai_exchange_free(&cs[i].x);
    }
    /* one that hangs, then shutdown: its callback still runs */
    script((step){.path = "/sub", .hang_ms = 5000});
    kinds[0] = -1;
    cr_assert_eq(qg_ai_transport_submit(T, &cs[0].x, count_done, &kinds[0]), QG_OK);
    msleep(100);
    t0 = now_ms();
    qg_ai_transport_free(T);
    cr_assert_lt(now_ms() - t0, 3000, "shutdown does not wait for the server");
    cr_assert_eq(kinds[0], QG_AI_ECANCELLED);
    qg_ai_exchange_free(&cs[0].x);
    for (int i = 0; i < N_CONC; i++) qg_buf_free(&cs[i].h.req.body);
    T = NULL;
    shutdown(S.lfd, SHUT_RDWR);
    close(S.lfd);
    pthread_join(S.thr, NULL);
}

/* ---- streams through the framer ---- */

static qg_status text_event(qg_ai_stream *st, const char *event, const char *data, size_t n,
                            qg_error *err)
{
    if (n == 6 && !memcmp(data, "[DONE]", 6)) {
        st->done = true;
        return QG_OK;
    }
    if (n == 5 && !memcmp(data, "!oops", 5)) return qg_error_set(err, QG_EINVAL, "bad event");
    return qg_ai_stream_text(st, data, n);
}

Test(ai_transport, stream_bytes_reach_the_framer_only_on_2xx, .init = setup, .fini = teardown)
{
    static const qg_ai_provider p = {
        .name = "t", .framing = QG_AI_FRAMING_SSE, .stream_event = text_event};
    script((step){.path = "/s",
                  .chunks = {"data: Hel", "lo\n\ndata: , wor", "ld\n\n", "data: [DONE]\n\n"}});
    script((step){.path = "/s", .status = 503, .body = "{\"error\":\"overloaded\"}"});
    script((step){.path = "/s", .chunks = {"data: a\n\n", "data: !oops\n\n", "data: b\n\n"}});
    http h;
    mkreq(&h, "POST", "/s", "{}");
    for (int round = 0; round < 3; round++) {
        qg_arena a;
        qg_arena_init(&a, 0);
        qg_ai_stream st;
        qg_ai_stream_init(&st, &a, NULL, NULL);
        qg_ai_framer f;
        qg_ai_framer_init(&f, &p, &st);
        qg_ai_exchange x = {.req = &h.req, .framer = &f};
        qg_status rc = qg_ai_transport_perform(T, &x);
        qg_ai_response r;
        qg_ai_stream_finish(&st, &r);
        if (round == 0) {
            cr_assert_eq(rc, QG_OK, "%s", x.errmsg);
            cr_assert_str_eq(r.text, "Hello, world");
            cr_assert(st.done);
            cr_assert_eq(x.body.len, 0, "a 2xx stream is not buffered");
        } else if (round == 1) {
            cr_assert_eq(rc, QG_OK);
            cr_assert_eq(x.http_status, 503);
            cr_assert_str_eq(r.text, "", "the framer never saw the error body");
            cr_assert_str_eq(x.body.data, "{\"error\":\"overloaded\"}");
        } else {
            cr_assert_eq(rc, QG_EIO);
            cr_assert_eq(x.kind, QG_AI_EPROTOCOL);
            cr_assert(strstr(x.errmsg, "bad event"), "%s", x.errmsg);
            cr_assert_str_eq(r.text, "a");
        }
        qg_ai_framer_free(&f);
        qg_ai_exchange_free(&x);
        qg_arena_free(&a);
    }
    qg_buf_free(&h.req.body);
}

/* ---- the real fake provider server ---- */

Test(ai_transport, against_fakellm_process, .init = setup, .fini = teardown)
{
    char root[1024];
    snprintf(root, sizeof root, "%s", QG_TEST_DATA);
    char *slash = strrchr(root, '/'); /* tests/data -> tests */
    cr_assert_not_null(slash);
    *slash = 0;
    char script_path[1100];
    snprintf(script_path, sizeof script_path, "%s/fakellm/fakellm.py", root);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execlp("python3", "python3", script_path, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    FILE *in = fdopen(pfd[0], "r");
    char line[128] = "";
    int port = 0;
    cr_assert_not_null(fgets(line, sizeof line, in), "fakellm printed nothing");
    cr_assert_eq(sscanf(line, "fakellm listening on %d", &port), 1, "%s", line);

    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/_fake/script", port);
    qg_ai_http_req r = {.method = "POST", .url = url, .nheaders = 1};
    r.headers[0] = "Content-Type: application/json";
    qg_buf_init(&r.body, 4096);
    qg_buf_puts(&r.body, "{\"model\":\"m\",\"steps\":[{\"status\":429}]}");
    qg_ai_exchange x = {.req = &r};
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_OK, "%s", x.errmsg);
    cr_assert_eq(x.http_status, 200);
    cr_assert(strstr(x.body.data, "\"ok\": true"), "%s", x.body.data);

    snprintf(url, sizeof url, "http://127.0.0.1:%d/no/such/route", port);
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_OK, "%s", x.errmsg);
    cr_assert_eq(x.http_status, 404);
    cr_assert(strstr(x.body.data, "no route"), "the error body is kept: %s", x.body.data);

    snprintf(url, sizeof url, "http://127.0.0.1:%d/_fake/requests", port);
    r.method = "GET";
    cr_assert_eq(qg_ai_transport_perform(T, &x), QG_OK, "%s", x.errmsg);
    cr_assert_eq(x.http_status, 200);
    cr_assert_eq(x.body.data[0], '[');
    qg_ai_exchange_free(&x);
    qg_buf_free(&r.body);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    fclose(in);
}

/* ---- exec with providers defined here ---- */

static qg_status fake_encode(const qg_ai_deployment *d, const char *key, const qg_ai_request *req,
                             qg_arena *a, qg_ai_http_req *out, qg_error *err)
{
    memset(out, 0, sizeof *out);
    out->method = "POST";
    out->url = qg_arena_sprintf(a, "%s", d->base_url);
    out->headers[out->nheaders++] = "Content-Type: text/plain";
    if (key && *key) out->headers[out->nheaders++] = qg_arena_sprintf(a, "X-Key: %s", key);
    qg_buf_init(&out->body, 1 << 16);
    const char *last = req->n_messages ? req->messages[req->n_messages - 1].content : "";
    return qg_buf_puts(&out->body, last ? last : "");
}

static qg_status fake_decode(const char *body, size_t n, qg_arena *a, qg_ai_response *out,
                             qg_error *err)
{
    if (n >= 4 && !memcmp(body, "!bad", 4)) {
        out->error.kind = QG_AI_EPROTOCOL;
        return qg_error_set(err, QG_EINVAL, "not the fake format");
    }
    out->text = qg_arena_strndup(a, body, n);
    out->finish_reason = "stop";
    out->usage = (qg_ai_usage){.input = 3, .output = 2};
    return QG_OK;
}

static void fake_decode_error(int status, const char *retry_after, const char *body, size_t n,
                              qg_ai_error *out)
{
    out->kind = qg_ai_errkind_from_status(status);
    if (status == 400 && n >= 7 && !memcmp(body, "context", 7)) out->kind = QG_AI_ECONTEXT;
    out->http_status = status;
    out->retry_after_ms = qg_ai_parse_retry_after(retry_after);
    snprintf(out->message, sizeof out->message, "%.*s", (int)n, body);
}

static qg_status local_complete(const qg_ai_deployment *d, const qg_ai_request *req, qg_arena *a,
                                qg_ai_stream_fn on_delta, void *ud, qg_ai_response *out,
                                qg_error *err)
{
    out->text = "local answer";
    out->finish_reason = "stop";
    if (on_delta) {
        qg_ai_delta dl = {.kind = QG_AI_DELTA_TEXT, .text = "local answer", .len = 12};
        on_delta(ud, &dl);
    }
    return QG_OK;
}

static const qg_ai_provider fake_p = {.name = "fake",
                                      .framing = QG_AI_FRAMING_SSE,
                                      .encode = fake_encode,
                                      .decode = fake_decode,
                                      .stream_event = text_event,
                                      .decode_error = fake_decode_error};
static const qg_ai_provider local_p = {.name = "local", .complete = local_complete};

static const qg_ai_provider *provider_for(const qg_ai_deployment *d)
{
    if (!strcmp(d->provider, "fake")) return &fake_p;
    if (!strcmp(d->provider, "local")) return &local_p;
    return NULL;
}

static qg_ai_exec_opts opts(void)
{
    return (qg_ai_exec_opts){.retries = 2,
                             .backoff_base_ms = 20,
                             .backoff_cap_ms = 100,
                             .retry_after_max_ms = 1000,
                             .rate_wait_max_ms = 50,
                             .provider_for = provider_for};
}

static qg_ai_deployment fdep(const char *id, const char *model, int prio, const char *provider)
{
    qg_ai_deployment d = {.priority = prio, .enabled = true, .read_timeout_ms = 2000};
    snprintf(d.id, sizeof d.id, "%s", id);
    snprintf(d.model_name, sizeof d.model_name, "%s", model);
    snprintf(d.provider, sizeof d.provider, "%s", provider);
    snprintf(d.model, sizeof d.model, "fake-%s", id);
    snprintf(d.base_url, sizeof d.base_url, "http://127.0.0.1:%d/%s", S.port, id);
    snprintf(d.key_ref, sizeof d.key_ref, "env:KEY_%s", id);
    return d;
}

static qg_ai_router *R;

static void exec_setup(void)
{
    setup();
    qg_ai_router_config c = {.cooldown_ms = 60000, .fail_threshold = 3, .fail_window_ms = 60000};
    R = qg_ai_router_new_with(&c);
    qg_ai_deployment deps[] = {fdep("d1", "analyst", 1, "fake"), fdep("d2", "analyst", 2, "fake"),
                               fdep("l1", "offline", 0, "local")};
    cr_assert_eq(qg_ai_router_load(R, deps, 3, NULL, 0, NULL), QG_OK);
}

static void exec_teardown(void)
{
    qg_ai_router_free(R);
    R = NULL;
    teardown();
}

static bool key_fails_for_d1;
static qg_status keys(void *ud, const qg_ai_deployment *d, char *out, size_t cap)
{
    if (key_fails_for_d1 && !strcmp(d->id, "d1")) return QG_ENOTFOUND;
    snprintf(out, cap, "secret-of-%s", d->id);
    return QG_OK;
}

typedef struct collected {
    qg_buf text;
    int n;
} collected;

static void collect(void *ud, const qg_ai_delta *d)
{
    collected *c = ud;
    c->n++;
    qg_buf_append(&c->text, d->text, d->len);
}

typedef struct outcome {
    qg_status rc;
    qg_ai_response resp;
    qg_ai_exec_info info;
    qg_error err;
    int64_t took_ms;
    collected deltas;
} outcome;

static qg_arena A;

static outcome *run_exec(const char *model, bool stream, const qg_ai_exec_opts *o,
                         atomic_bool *cancel)
{
    static outcome oc;
    qg_buf_free(&oc.deltas.text);
    memset(&oc, 0, sizeof oc);
    qg_buf_init(&oc.deltas.text, 1 << 16);
    qg_arena_free(&A);
    qg_arena_init(&A, 0);
    static const qg_ai_msg msg = {.role = QG_AI_ROLE_USER, .content = "ping"};
    qg_ai_request req = {.messages = &msg, .n_messages = 1, .stream = stream, .temperature = -1};
    int64_t t0 = now_ms();
    oc.rc = qg_ai_exec_with(o, T, R, model, &req, keys, NULL, collect, &oc.deltas, cancel, &A,
                            &oc.resp, &oc.info, &oc.err);
    oc.took_ms = now_ms() - t0;
    return &oc;
}

Test(ai_exec, retries_then_succeeds, .init = exec_setup, .fini = exec_teardown)
{
    script((step){.path = "/d1", .status = 500, .body = "boom"});
    script((step){.path = "/d1", .status = 503, .body = "busy"});
    script((step){.path = "/d1", .body = "hello"});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "hello");
    cr_assert_eq(oc->info.attempts, 3);
    cr_assert_not(oc->info.fell_back);
    cr_assert_str_eq(oc->info.deployment.id, "d1");
    cr_assert_eq(oc->resp.usage.input, 3);
    cr_assert_lt(oc->took_ms, 2000, "backoff capped at 100 ms: %lld", (long long)oc->took_ms);
    cr_assert_gt(oc->info.upstream_us, 0);
    cr_assert_leq(oc->info.upstream_us, oc->took_ms * 1000 + 1000);
    cr_assert_eq(path_count("/d2"), 0);
    char head[2048];
    path_headers("/d1", head, sizeof head);
    cr_assert(strstr(head, "X-Key: secret-of-d1"), "the resolved key was sent: %s", head);
    qg_ai_dep_health *h;
    size_t n;
    qg_ai_router_snapshot(R, &h, &n);
    cr_assert_str_eq(h[0].id, "d1");
    cr_assert_eq(h[0].calls, 3);
    cr_assert_eq(h[0].failures, 2);
    cr_assert_eq(h[0].consecutive_failures, 0, "the success reset it");
    free(h);
}

Test(ai_exec, falls_back_and_cools_down, .init = exec_setup, .fini = exec_teardown)
{
    for (int i = 0; i < 3; i++) script((step){.path = "/d1", .status = 500, .body = "boom"});
    script((step){.path = "/d2", .body = "from d2"});
    script((step){.path = "/d2", .body = "d2 again"});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "from d2");
    cr_assert_eq(oc->info.attempts, 4, "three on d1, one on d2");
    cr_assert(oc->info.fell_back);
    cr_assert_str_eq(oc->info.deployment.id, "d2");
    /* d1 failed three times in a row: cooling down, the next call skips it */
    oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK);
    cr_assert_str_eq(oc->resp.text, "d2 again");
    cr_assert_eq(oc->info.attempts, 1);
    cr_assert_not(oc->info.fell_back, "d2 is the first of the plan now");
    cr_assert_eq(path_count("/d1"), 3);
}

Test(ai_exec, non_retryable_errors_go_to_the_next_deployment, .init = exec_setup,
     .fini = exec_teardown)
{
    script((step){.path = "/d1", .status = 401, .body = "bad key"});
    script((step){.path = "/d2", .body = "ok"});
    script((step){.path = "/d2", .status = 400, .body = "context too long"});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_eq(oc->info.attempts, 2, "auth is not retried");
    cr_assert_eq(path_count("/d1"), 1);
    /* d1 is cooling down (auth); d2's context error has nowhere to go */
    oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_EINVAL);
    cr_assert_eq(oc->resp.error.kind, QG_AI_ECONTEXT);
    cr_assert_eq(oc->resp.error.http_status, 400);
    cr_assert_eq(oc->info.attempts, 1);
    cr_assert(strstr(oc->err.msg, "context_too_long"), "%s", oc->err.msg);
    cr_assert_null(strstr(oc->err.msg, "secret-of"), "no key in errors");
}

Test(ai_exec, context_error_tries_the_next_deployment, .init = exec_setup, .fini = exec_teardown)
{
    script((step){.path = "/d1", .status = 400, .body = "context length exceeded"});
    script((step){.path = "/d2", .body = "bigger model"});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "bigger model");
    cr_assert_eq(oc->info.attempts, 2);
}

Test(ai_exec, retry_after_is_honoured_or_skipped, .init = exec_setup, .fini = exec_teardown)
{
    script((step){.path = "/d1", .status = 429, .retry_after = "0.3", .body = "slow"});
    script((step){.path = "/d1", .body = "after wait"});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "after wait");
    cr_assert_geq(oc->took_ms, 290, "waited the Retry-After: %lld", (long long)oc->took_ms);
    cr_assert_geq(oc->info.upstream_us, 290000, "the wait counts as upstream time");

    /* longer than retry_after_max_ms: the next deployment at once */
    script((step){.path = "/d1", .status = 429, .retry_after = "5", .body = "slow"});
    script((step){.path = "/d2", .body = "d2 now"});
    oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "d2 now");
    cr_assert_lt(oc->took_ms, 3000, "did not wait 5 s");
    /* and d1 stays out of plans while its Retry-After runs */
    script((step){.path = "/d2", .body = "d2 again"});
    oc = run_exec("analyst", false, &o, NULL);
    cr_assert_str_eq(oc->info.deployment.id, "d2");
    cr_assert_eq(path_count("/d1"), 3);
}

Test(ai_exec, stream_is_not_failed_over_after_a_delta, .init = exec_setup, .fini = exec_teardown)
{
    script((step){.path = "/d1", .chunks = {"data: partial\n\n"}, .cut = true});
    script((step){.path = "/d2", .chunks = {"data: never\n\n", "data: [DONE]\n\n"}});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", true, &o, NULL);
    cr_assert_eq(oc->rc, QG_EAGAIN);
    cr_assert_eq(oc->resp.error.kind, QG_AI_ENETWORK, "%s", oc->resp.error.message);
    cr_assert(oc->info.partial);
    cr_assert_eq(oc->info.attempts, 1, "not retried");
    cr_assert_str_eq(oc->deltas.text.data, "partial");
    cr_assert_eq(path_count("/d2"), 0, "not failed over");
}

Test(ai_exec, stream_fails_over_before_any_delta, .init = exec_setup, .fini = exec_teardown)
{
    script((step){.path = "/d1", .status = 401, .body = "no"});
    script((step){.path = "/d2",
                  .chunks = {"data: Hello\n\n", "data: , world\n\n", "data: [DONE]\n\n"}});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", true, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "Hello, world");
    cr_assert_str_eq(oc->deltas.text.data, "Hello, world");
    cr_assert_eq(oc->deltas.n, 2);
    cr_assert(oc->info.fell_back);
}

Test(ai_exec, stream_without_end_marker_fails_over, .init = exec_setup, .fini = exec_teardown)
{
    /* a whole reply that never says it is done, and no delta yet */
    script((step){.path = "/d1", .chunks = {": comment only\n\n"}});
    script((step){.path = "/d2", .chunks = {"data: ok\n\n", "data: [DONE]\n\n"}});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", true, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "ok");
    cr_assert_eq(oc->info.attempts, 2);
    cr_assert(oc->info.fell_back);
    cr_assert_eq(path_count("/d1"), 1, "a protocol error is not retried on the same deployment");
}

typedef struct later_cancel {
    atomic_bool *flag;
    int ms;
} later_cancel;

static void *later(void *arg)
{
    later_cancel *lc = arg;
    msleep(lc->ms);
    atomic_store(lc->flag, true);
    return NULL;
}

Test(ai_exec, cancel_interrupts_the_backoff, .init = exec_setup, .fini = exec_teardown)
{
    script((step){.path = "/d1", .status = 429, .retry_after = "4", .body = "slow"});
    atomic_bool flag = false;
    later_cancel lc = {&flag, 100};
    pthread_t th;
    pthread_create(&th, NULL, later, &lc);
    qg_ai_exec_opts o = opts();
    o.retry_after_max_ms = 10000; /* it would wait the whole 4 s */
    outcome *oc = run_exec("analyst", false, &o, &flag);
    pthread_join(th, NULL);
    cr_assert_eq(oc->rc, QG_EAGAIN);
    cr_assert_eq(oc->resp.error.kind, QG_AI_ECANCELLED);
    cr_assert_lt(oc->took_ms, 2000, "%lld ms", (long long)oc->took_ms);
    cr_assert_eq(path_count("/d2"), 0);
}

Test(ai_exec, unknown_model_and_key_failures, .init = exec_setup, .fini = exec_teardown)
{
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("nope", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_ENOTFOUND);
    cr_assert_eq(oc->resp.error.kind, QG_AI_ENOMODEL);
    cr_assert(strstr(oc->resp.error.message, "'nope'"), "%s", oc->resp.error.message);

    key_fails_for_d1 = true;
    script((step){.path = "/d2", .body = "keyed"});
    oc = run_exec("analyst", false, &o, NULL);
    key_fails_for_d1 = false;
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "keyed");
    cr_assert_eq(oc->info.attempts, 1, "d1 was skipped without a request");
    cr_assert_eq(path_count("/d1"), 0);
}

Test(ai_exec, undecodable_reply_and_in_process_provider, .init = exec_setup, .fini = exec_teardown)
{
    script((step){.path = "/d1", .body = "!bad"});
    script((step){.path = "/d2", .body = "good"});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "good");
    cr_assert_eq(oc->info.attempts, 2, "a protocol error is not retried on d1");

    oc = run_exec("offline", true, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "local answer");
    cr_assert_str_eq(oc->deltas.text.data, "local answer");
    cr_assert_str_eq(oc->info.deployment.provider, "local");
}

Test(ai_exec, rate_limit_moves_on_when_the_wait_is_long, .init = exec_setup, .fini = exec_teardown)
{
    qg_ai_deployment deps[] = {fdep("d1", "analyst", 1, "fake"), fdep("d2", "analyst", 2, "fake")};
    deps[0].rpm = 1;
    cr_assert_eq(qg_ai_router_load(R, deps, 2, NULL, 0, NULL), QG_OK);
    script((step){.path = "/d1", .body = "first"});
    script((step){.path = "/d2", .body = "second"});
    qg_ai_exec_opts o = opts();
    outcome *oc = run_exec("analyst", false, &o, NULL);
    cr_assert_str_eq(oc->resp.text, "first");
    oc = run_exec("analyst", false, &o, NULL);
    cr_assert_eq(oc->rc, QG_OK, "%s", oc->err.msg);
    cr_assert_str_eq(oc->resp.text, "second");
    cr_assert(oc->info.fell_back);
    cr_assert_eq(oc->info.attempts, 1, "d1 was not called: over its rpm");
    cr_assert_eq(path_count("/d1"), 1);
}
