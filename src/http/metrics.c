/*
 * metrics.c - request, job and process metrics, rendered for GET /metrics in
 * the Prometheus text exposition format 0.0.4.
 *
 * Every counter is a relaxed atomic in one block allocated up front: per
 * route (the qg_routes index, plus a last slot for requests that matched no
 * route) a counter per status code from a fixed list, one per status class
 * for codes outside it ("1xx".."5xx", "other" for nonsense), and a latency
 * histogram stored per bucket (not cumulative) with its sum. Recording is
 * therefore a few atomic adds, no lock and no allocation. Rendering reads
 * the counters without stopping writers, so a scrape is not a snapshot of
 * one instant; the histogram's _count is summed from the same bucket reads
 * as its +Inf line, so the two always agree.
 *
 * Route labels come from qg_routes (pattern and method), read only when
 * rendering.
 */
#include "http/metrics.h"

#include "http/http.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef QG_VERSION
#define QG_VERSION "dev"
#endif

static const int qg_metrics_codes[] = {200, 201, 202, 204, 301, 304, 400, 401, 403,
                                       404, 405, 409, 413, 415, 422, 429, 500, 503};
#define NCODES  ((int)(sizeof(qg_metrics_codes) / sizeof(qg_metrics_codes[0])))
#define NOTHER  6 /* 1xx 2xx 3xx 4xx 5xx other */
#define NSTATUS (NCODES + NOTHER)

static const char *const qg_metrics_other[NOTHER] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

/* Upper bounds in microseconds; the text forms are what /metrics prints. */
static const int64_t qg_metrics_le_us[] = {500,     1000,    2500,    5000,    10000,
                                           25000,   50000,   100000,  250000,  500000,
                                           1000000, 2500000, 5000000, 10000000};
static const char *const qg_metrics_le_txt[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                                "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                                "1",      "2.5",   "5",      "10"};
#define NBUCKETS ((int)(sizeof(qg_metrics_le_us) / sizeof(qg_metrics_le_us[0])))

typedef struct qg_route_metrics {
    atomic_uint_fast64_t status[NSTATUS];
    atomic_uint_fast64_t bucket[NBUCKETS + 1]; /* last: above the largest bound */
    atomic_uint_fast64_t sum_us;
} qg_route_metrics;

static const char *const qg_job_names[] = {"queued", "started", "done", "failed", "cancelled"};
#define NJOBS 5

struct qg_http_metrics {
    int nroutes;
    atomic_int_fast64_t inflight;
    atomic_uint_fast64_t jobs[NJOBS];
    double start_time; /* seconds since the epoch */
    qg_route_metrics route[];
};

/* ---- recording ---- */

static int qg_metrics_status_slot(int status)
{
    for (int i = 0; i < NCODES; i++)
        if (qg_metrics_codes[i] == status) return i;
    if (status >= 100 && status <= 599) return NCODES + status / 100 - 1;
    return NCODES + NOTHER - 1;
}

void qg_metrics_request(qg_http_metrics *m, int route, int status, int64_t duration_us)
{
    if (!m) return;
    if (route < 0 || route >= m->nroutes) route = m->nroutes; /* unmatched */
    qg_route_metrics *r = &m->route[route];
    if (duration_us < 0) duration_us = 0;
    int b = 0;
    while (b < NBUCKETS && duration_us > qg_metrics_le_us[b]) b++;
    atomic_fetch_add_explicit(&r->status[qg_metrics_status_slot(status)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_us, (uint64_t)duration_us, memory_order_relaxed);
}

void qg_metrics_inflight(qg_http_metrics *m, int delta)
{
    if (m) atomic_fetch_add_explicit(&m->inflight, delta, memory_order_relaxed);
}

void qg_metrics_job(qg_http_metrics *m, qg_job_event ev)
{
    if (m && (int)ev >= 0 && (int)ev < NJOBS)
        atomic_fetch_add_explicit(&m->jobs[ev], 1, memory_order_relaxed);
}

/* Process start from /proc (boot time + start ticks); falls back to now,
 * which is close enough when the metrics are created at startup. */
static double qg_metrics_process_start(void)
{
    double now = (double)time(NULL);
    long long btime = -1;
    char line[256];
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "btime %lld", &btime) == 1) break;
        fclose(f);
    }
    f = fopen("/proc/self/stat", "r");
    if (!f || btime < 0) {
        if (f) fclose(f);
        return now;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name may hold spaces and ')': fields follow the last ')' */
    char *p = strrchr(buf, ')');
    unsigned long long ticks = 0;
    /* after ')' come state (field 3) .. starttime (field 22) */
    if (!p || sscanf(p + 1,
                     " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                     "%*d %*d %llu",
                     &ticks) != 1)
        return now;
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? (double)btime + (double)ticks / (double)hz : now;
}

qg_http_metrics *qg_metrics_new(int nroutes)
{
    if (nroutes < 0) return NULL;
    qg_http_metrics *m = calloc(1, sizeof(*m) + ((size_t)nroutes + 1) * sizeof(qg_route_metrics));
    if (!m) return NULL;
    m->nroutes = nroutes;
    m->start_time = qg_metrics_process_start();
    return m;
}

void qg_metrics_free(qg_http_metrics *m)
{
    free(m);
}

/* ---- rendering ---- */

/* Writes into out and remembers the first failure, so the render reads as a
 * list of lines and checks once. */
typedef struct qg_mw {
    qg_buf *out;
    qg_status rc;
} qg_mw;

static void mw_printf(qg_mw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mw_printf(qg_mw *w, const char *fmt, ...)
{
    if (w->rc) return;
    va_list ap;
    va_start(ap, fmt);
    w->rc = qg_buf_vprintf(w->out, fmt, ap);
    va_end(ap);
}

/* A label value escaped per the format: backslash, quote and newline. */
static void mw_label(qg_mw *w, const char *s)
{
    for (const char *p = s; *p && !w->rc; p++) {
        if (*p == '\\')
            w->rc = qg_buf_puts(w->out, "\\\\");
        else if (*p == '"')
            w->rc = qg_buf_puts(w->out, "\\\"");
        else if (*p == '\n')
            w->rc = qg_buf_puts(w->out, "\\n");
        else
            w->rc = qg_buf_append(w->out, p, 1);
    }
}

static void mw_head(qg_mw *w, const char *name, const char *type, const char *help)
{
    mw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* route="...",method="..." for slot i (the last slot is "unmatched"). */
static void mw_route_labels(qg_mw *w, const qg_http_metrics *m, int i)
{
    const char *pattern = "unmatched", *method = "";
    if (i < m->nroutes && qg_routes[i].pattern) {
        pattern = qg_routes[i].pattern;
        method = qg_method_name(qg_routes[i].method);
    }
    mw_printf(w, "route=\"");
    mw_label(w, pattern);
    mw_printf(w, "\",method=\"");
    mw_label(w, method);
    mw_printf(w, "\"");
}

static uint64_t ld(atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void render_requests(qg_mw *w, qg_http_metrics *m)
{
    const char *name = "quantgate_http_requests_total";
    mw_head(w, name, "counter", "HTTP requests by route, method and status.");
    for (int i = 0; i <= m->nroutes; i++) {
        for (int s = 0; s < NSTATUS; s++) {
            uint64_t v = ld(&m->route[i].status[s]);
            if (!v) continue;
            mw_printf(w, "%s{", name);
            mw_route_labels(w, m, i);
            if (s < NCODES)
                mw_printf(w, ",status=\"%d\"} %" PRIu64 "\n", qg_metrics_codes[s], v);
            else
                mw_printf(w, ",status=\"%s\"} %" PRIu64 "\n", qg_metrics_other[s - NCODES], v);
        }
    }
}

static void render_latency(qg_mw *w, qg_http_metrics *m)
{
    const char *name = "quantgate_http_request_duration_seconds";
    mw_head(w, name, "histogram", "HTTP request latency by route and method.");
    for (int i = 0; i <= m->nroutes; i++) {
        uint64_t b[NBUCKETS + 1], total = 0;
        for (int k = 0; k <= NBUCKETS; k++) total += b[k] = ld(&m->route[i].bucket[k]);
        if (!total) continue;
        uint64_t cum = 0;
        for (int k = 0; k <= NBUCKETS; k++) {
            cum += b[k];
            mw_printf(w, "%s_bucket{", name);
            mw_route_labels(w, m, i);
            mw_printf(w, ",le=\"%s\"} %" PRIu64 "\n", k < NBUCKETS ? qg_metrics_le_txt[k] : "+Inf",
                      cum);
        }
        mw_printf(w, "%s_sum{", name);
        mw_route_labels(w, m, i);
        mw_printf(w, "} %.6f\n", (double)ld(&m->route[i].sum_us) / 1e6);
        mw_printf(w, "%s_count{", name);
        mw_route_labels(w, m, i);
        mw_printf(w, "} %" PRIu64 "\n", total);
    }
}

static void render_db(qg_mw *w, const qg_store_stats *db)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } c[] = {
        {"quantgate_db_queries_total", "Database statements executed.",
         offsetof(qg_store_stats, queries)},
        {"quantgate_db_errors_total", "Database statements that failed.",
         offsetof(qg_store_stats, errors)},
        {"quantgate_db_commits_total", "Database transactions committed.",
         offsetof(qg_store_stats, commits)},
        {"quantgate_db_rollbacks_total", "Database transactions rolled back.",
         offsetof(qg_store_stats, rollbacks)},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        uint64_t v;
        memcpy(&v, (const char *)db + c[i].off, sizeof(v));
        mw_head(w, c[i].name, "counter", c[i].help);
        mw_printf(w, "%s %" PRIu64 "\n", c[i].name, v);
    }
    mw_head(w, "quantgate_db_query_seconds_total", "counter",
            "Time spent executing database statements.");
    mw_printf(w, "quantgate_db_query_seconds_total %.6f\n", (double)db->busy_us / 1e6);
}

static void render_jobs(qg_mw *w, qg_http_metrics *m)
{
    uint64_t v[NJOBS];
    for (int i = 0; i < NJOBS; i++) v[i] = ld(&m->jobs[i]);
    mw_head(w, "quantgate_jobs_total", "counter", "Backtest job events.");
    for (int i = 0; i < NJOBS; i++)
        mw_printf(w, "quantgate_jobs_total{event=\"%s\"} %" PRIu64 "\n", qg_job_names[i], v[i]);
    /* read apart from each other, so a finish may be seen before its start */
    int64_t running = (int64_t)v[QG_JOB_STARTED] - (int64_t)v[QG_JOB_DONE] -
                      (int64_t)v[QG_JOB_FAILED] - (int64_t)v[QG_JOB_CANCELLED];
    mw_head(w, "quantgate_jobs_running", "gauge", "Backtest jobs running now.");
    mw_printf(w, "quantgate_jobs_running %" PRId64 "\n", running < 0 ? 0 : running);
}

static void render_process(qg_mw *w, qg_http_metrics *m)
{
    long long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lld %lld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    long long rss = resident * (long long)sysconf(_SC_PAGESIZE);
    mw_head(w, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    mw_printf(w, "process_resident_memory_bytes %lld\n", rss);

    mw_head(w, "process_start_time_seconds", "gauge",
            "Start time of the process since unix epoch in seconds.");
    mw_printf(w, "process_start_time_seconds %.2f\n", m->start_time);

    struct timespec cpu;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0) {
        mw_head(w, "process_cpu_seconds_total", "counter",
                "Total user and system CPU time spent in seconds.");
        mw_printf(w, "process_cpu_seconds_total %.3f\n",
                  (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9);
    }

    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') n++;
        closedir(d);
        mw_head(w, "process_open_fds", "gauge", "Number of open file descriptors.");
        mw_printf(w, "process_open_fds %ld\n", n > 0 ? n - 1 : 0); /* minus opendir's own */
    }
}

qg_status qg_metrics_render(qg_http_metrics *m, const qg_store_stats *db, const char *backend,
                            qg_buf *out)
{
    qg_mw w = {out, QG_OK};
    render_requests(&w, m);
    render_latency(&w, m);
    mw_head(&w, "quantgate_http_requests_in_flight", "gauge", "HTTP requests being served now.");
    mw_printf(&w, "quantgate_http_requests_in_flight %" PRId64 "\n",
              (int64_t)atomic_load_explicit(&m->inflight, memory_order_relaxed));
    if (db) render_db(&w, db);
    render_jobs(&w, m);
    mw_head(&w, "quantgate_build_info", "gauge", "Build version and database backend.");
    mw_printf(&w, "quantgate_build_info{version=\"");
    mw_label(&w, QG_VERSION);
    mw_printf(&w, "\",backend=\"");
    mw_label(&w, backend ? backend : "none");
    mw_printf(&w, "\"} 1\n");
    render_process(&w, m);
    return w.rc;
}
