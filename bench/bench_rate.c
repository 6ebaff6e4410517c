/*
 * bench_rate.c - an open-loop HTTP/1.1 load generator: POSTs at a fixed
 * rate and reports latency percentiles measured from when each request was
 * due, not from when it could be sent.
 *
 * usage: bench_rate -p PORT -r RATE -c CONNS -d SECONDS [-P PATH]
 *                   [-H 'Name: value']... -b BODY_FILE
 *
 * wrk keeps every connection busy back to back (a closed loop), so a slow
 * reply also delays the requests behind it and the slowness never shows in
 * its percentiles ("coordinated omission"), and a per-connection delay
 * cannot hold a target rate. Here request i is due at start + i/RATE
 * whatever happens; it goes to the next connection in turn, waits there
 * if that connection still has a request out (one at a time, no
 * pipelining), and its latency runs from its due time to the last byte of
 * its reply - what a sender at that rate would see, like wrk2.
 *
 * Every "%ID%" in the body becomes a number unique to the request, so each
 * one can carry its own client id. Replies must carry Content-Length (h2o
 * sends it for every reply of a fixed size). Prints one line of key=value
 * pairs: achieved rate, 2xx and other replies, errors, p50/p90/p99/p99.9
 * and max in milliseconds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, epoll_pwait2 */
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEADERS_MAX 16
#define RBUF        65536
#define DRAIN_NS    (5 * 1000000000LL) /* how long replies may trail the last send */

typedef struct {
    int fd;
    int64_t *due; /* ring of due times (ns) of the requests waiting here */
    size_t qhead, qlen, qcap;
    bool busy;        /* a request is out */
    int64_t busy_due; /* its due time */
    char *w;          /* the request being written */
    size_t wlen, woff;
    char r[RBUF];
    size_t rlen;
} conn;

typedef struct {
    const char *path;
    const char *headers[HEADERS_MAX];
    int nheaders;
    char *body; /* the template */
    uint64_t next_id;
    int port;
} spec;

typedef struct {
    uint32_t *lat_us;
    size_t nlat, caplat;
    uint64_t ok, other, errors;
} results;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "bench_rate: out of memory\n");
        exit(1);
    }
    return q;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_rate: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char tmp[4096];
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (len + n + 1 > cap) buf = xrealloc(buf, cap = (len + n + 1) * 2);
        memcpy(buf + len, tmp, n);
        len += n;
    }
    fclose(f);
    if (!buf) buf = xrealloc(NULL, 1);
    buf[len] = 0;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
    return buf;
}

/* The body with every %ID% replaced by id. */
static size_t body_for(const spec *s, uint64_t id, char *out, size_t cap)
{
    char idtxt[24];
    int idlen = snprintf(idtxt, sizeof idtxt, "%llu", (unsigned long long)id);
    size_t n = 0;
    for (const char *p = s->body; *p && n + 32 < cap;) {
        if (strncmp(p, "%ID%", 4) == 0) {
            memcpy(out + n, idtxt, (size_t)idlen);
            n += (size_t)idlen;
            p += 4;
        } else {
            out[n++] = *p++;
        }
    }
    return n;
}

static void build_request(spec *s, conn *c)
{
    char body[16384];
    size_t blen = body_for(s, s->next_id++, body, sizeof body);
    size_t cap = blen + 4096;
    c->w = xrealloc(c->w, cap);
    int n = snprintf(c->w, cap, "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %zu\r\n",
                     s->path, s->port, blen);
    for (int i = 0; i < s->nheaders; i++)
        n += snprintf(c->w + n, cap - (size_t)n, "%s\r\n", s->headers[i]);
    n += snprintf(c->w + n, cap - (size_t)n, "\r\n");
    memcpy(c->w + n, body, blen);
    c->wlen = (size_t)n + blen;
    c->woff = 0;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void push_due(conn *c, int64_t due)
{
    if (c->qlen == c->qcap) {
        size_t ncap = c->qcap ? c->qcap * 2 : 64;
        int64_t *q = xrealloc(NULL, ncap * sizeof *q);
        for (size_t i = 0; i < c->qlen; i++) q[i] = c->due[(c->qhead + i) % c->qcap];
        free(c->due);
        c->due = q;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->due[(c->qhead + c->qlen) % c->qcap] = due;
    c->qlen++;
}

/* Writes what the socket takes; false on a broken connection. */
static bool flush(conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->w + c->woff, c->wlen - c->woff);
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        c->woff += (size_t)n;
    }
    return true;
}

/* Starts the next waiting request if the connection is free. */
static bool start_next(spec *s, conn *c)
{
    if (c->busy || c->qlen == 0) return true;
    c->busy_due = c->due[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    c->busy = true;
    build_request(s, c);
    return flush(c);
}

static void record(results *res, int64_t lat_ns)
{
    if (res->nlat == res->caplat)
        res->lat_us = xrealloc(res->lat_us, (res->caplat = res->caplat ? res->caplat * 2 : 65536) *
                                                sizeof *res->lat_us);
    int64_t us = lat_ns / 1000;
    res->lat_us[res->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Length of one complete reply at the start of buf, 0 when incomplete,
 * -1 when it cannot be read; *status gets its status code. */
static long reply_length(const char *buf, size_t len, int *status)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return len >= RBUF ? -1 : 0;
    if (len < 12 || strncmp(buf, "HTTP/1.1 ", 9) != 0) return -1;
    *status = atoi(buf + 9);
    long body = -1;
    for (const char *p = memchr(buf, '\n', (size_t)(end - buf)); p && p < end;
         p = memchr(p, '\n', (size_t)(end - p))) {
        p++;
        if (strncasecmp(p, "content-length:", 15) == 0) body = strtol(p + 15, NULL, 10);
    }
    if (body < 0) return -1;
    long total = (long)(end - buf) + 4 + body;
    return (size_t)total <= len ? total : 0;
}

/* Reads and accounts for replies; false on a broken connection. */
static bool on_readable(spec *s, conn *c, results *res)
{
    for (;;) {
        ssize_t n = read(c->fd, c->r + c->rlen, sizeof c->r - c->rlen);
        if (n == 0) return false;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            return false;
        }
        c->rlen += (size_t)n;
        int status = 0;
        long len;
        while (c->rlen && (len = reply_length(c->r, c->rlen, &status)) != 0) {
            if (len < 0 || !c->busy) return false;
            record(res, now_ns() - c->busy_due);
            if (status >= 200 && status < 300)
                res->ok++;
            else
                res->other++;
            memmove(c->r, c->r + len, c->rlen - (size_t)len);
            c->rlen -= (size_t)len;
            c->busy = false;
            if (!start_next(s, c)) return false;
        }
    }
    return true;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const results *r, double q)
{
    if (!r->nlat) return 0;
    size_t i = (size_t)(q * (double)(r->nlat - 1) + 0.5);
    return r->lat_us[i] / 1000.0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_rate -p PORT -r RATE -c CONNS -d SECONDS [-P PATH] "
                    "[-H 'Name: value']... -b BODY_FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    spec s = {.path = "/"};
    double rate = 0, seconds = 0;
    int nconns = 0, opt;
    const char *body_file = NULL;
    while ((opt = getopt(argc, argv, "p:r:c:d:P:H:b:")) != -1) {
        switch (opt) {
        case 'p':
            s.port = atoi(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 'c':
            nconns = atoi(optarg);
            break;
        case 'd':
            seconds = atof(optarg);
            break;
        case 'P':
            s.path = optarg;
            break;
        case 'H':
            if (s.nheaders == HEADERS_MAX) usage();
            s.headers[s.nheaders++] = optarg;
            break;
        case 'b':
            body_file = optarg;
            break;
        default:
            usage();
        }
    }
    if (s.port <= 0 || rate <= 0 || nconns <= 0 || seconds <= 0 || !body_file) usage();
    s.body = read_file(body_file);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    conn *cs = calloc((size_t)nconns, sizeof *cs);
    if (ep < 0 || !cs) return 1;
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = connect_to(s.port);
        if (cs[i].fd < 0) {
            fprintf(stderr, "bench_rate: connect to port %d: %s\n", s.port, strerror(errno));
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }

    results res = {0};
    int64_t start = now_ns(), interval = (int64_t)(1e9 / rate);
    int64_t stop_at = start + (int64_t)(seconds * 1e9), total = (int64_t)(seconds * rate);
    int64_t scheduled = 0;
    int next_conn = 0;
    struct epoll_event evs[256];
    for (;;) {
        int64_t now = now_ns();
        while (scheduled < total && start + scheduled * interval <= now) {
            conn *c = &cs[next_conn];
            next_conn = (next_conn + 1) % nconns;
            if (c->fd < 0) {
                res.errors++;
            } else {
                push_due(c, start + scheduled * interval);
                if (!start_next(&s, c)) {
                    close(c->fd);
                    c->fd = -1;
                    res.errors++;
                }
            }
            scheduled++;
        }
        bool pending = false;
        for (int i = 0; i < nconns && !pending; i++)
            pending = cs[i].fd >= 0 && (cs[i].busy || cs[i].qlen);
        if (scheduled >= total && (!pending || now > stop_at + DRAIN_NS)) break;
        int64_t wait_ns = scheduled < total ? start + scheduled * interval - now : 1000000;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = wait_ns > 0 ? wait_ns : 0};
        int n = epoll_pwait2(ep, evs, 256, &ts, NULL);
        for (int k = 0; k < n; k++) {
            conn *c = &cs[evs[k].data.u32];
            if (c->fd < 0) continue;
            bool ok = true;
            if (evs[k].events & EPOLLOUT) ok = flush(c);
            if (ok && (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                ok = on_readable(&s, c, &res);
            if (!ok) {
                res.errors += (uint64_t)c->qlen + (c->busy ? 1 : 0);
                close(c->fd);
                c->fd = -1;
            }
        }
    }
    int64_t elapsed = now_ns() - start;
    uint64_t unanswered = 0;
    for (int i = 0; i < nconns; i++)
        if (cs[i].fd >= 0) unanswered += (uint64_t)cs[i].qlen + (cs[i].busy ? 1 : 0);
    qsort(res.lat_us, res.nlat, sizeof *res.lat_us, cmp_u32);
    printf("target=%.0f sent=%lld rate=%.0f ok=%llu other=%llu errors=%llu unanswered=%llu "
           "p50=%.2f p90=%.2f p99=%.2f p999=%.2f max=%.2f\n",
           rate, (long long)scheduled, (double)res.nlat / ((double)elapsed / 1e9),
           (unsigned long long)res.ok, (unsigned long long)res.other,
           (unsigned long long)res.errors, (unsigned long long)unanswered, pct(&res, 0.50),
           pct(&res, 0.90), pct(&res, 0.99), pct(&res, 0.999),
           res.nlat ? res.lat_us[res.nlat - 1] / 1000.0 : 0.0);
    for (int i = 0; i < nconns; i++) {
        if (cs[i].fd >= 0) close(cs[i].fd);
        free(cs[i].due);
        free(cs[i].w);
    }
    free(cs);
    free(res.lat_us);
    free(s.body);
    close(ep);
    return res.errors || unanswered ? 1 : 0;
}
