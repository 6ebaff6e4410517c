/*
 * test_metrics.c - request counters and latency histograms, the text
 * exposition (every sample line parsed back), label escaping, job and
 * in-flight gauges, and exact totals under concurrent recording. Routes are
 * the real table (qg_routes).
 */
#include <criterion/criterion.h>

#include "http/http.h"
#include "http/metrics.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int route_count(void)
{
    int n = 0;
    while (qg_routes[n].pattern) n++;
    return n;
}

static int route_index(int method, const char *pattern)
{
    for (int i = 0; qg_routes[i].pattern; i++)
        if (qg_routes[i].method == method && strcmp(qg_routes[i].pattern, pattern) == 0) return i;
    cr_assert_fail("no route %s", pattern);
    return -1;
}

static char *render(qg_http_metrics *m, const qg_store_stats *db, const char *backend)
{
    qg_buf b;
    qg_buf_init(&b, 1 << 20);
    cr_assert_eq(qg_metrics_render(m, db, backend, &b), QG_OK);
    char *s = strdup(b.data ? b.data : "");
    qg_buf_free(&b);
    return s;
}

/* The value of the sample line that starts with `series ` exactly
 * (name{labels}), or -1 when there is none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1;
}

/* Checks one line against the format: `name value` or `name{l="v",...}
 * value`, label values with only \\ \" \n escapes. Returns the name length
 * (0 when the line is malformed). */
static size_t check_sample_line(const char *line, size_t len)
{
    size_t i = 0;
    if (!(isalpha((unsigned char)line[0]) || line[0] == '_' || line[0] == ':')) return 0;
    while (i < len && (isalnum((unsigned char)line[i]) || line[i] == '_' || line[i] == ':')) i++;
    size_t name_len = i;
    if (i < len && line[i] == '{') {
        i++;
        for (;;) {
            size_t ls = i;
            while (i < len && (isalnum((unsigned char)line[i]) || line[i] == '_')) i++;
            if (i == ls || i + 1 >= len || line[i] != '=' || line[i + 1] != '"') return 0;
            i += 2;
            while (i < len && line[i] != '"') {
                if (line[i] == '\\') {
                    if (i + 1 >= len || !strchr("\\\"n", line[i + 1])) return 0;
                    i++;
                }
                i++;
            }
            if (i >= len) return 0;
            i++; /* closing quote */
            if (i < len && line[i] == ',') {
                i++;
                continue;
            }
            if (i < len && line[i] == '}') {
                i++;
                break;
            }
            return 0;
        }
    }
    if (i >= len || line[i] != ' ') return 0;
    i++;
    char num[64];
    if (len - i == 0 || len - i >= sizeof(num)) return 0;
    memcpy(num, line + i, len - i);
    num[len - i] = '\0';
    char *end;
    strtod(num, &end);
    if (*end != '\0' && strcmp(num, "+Inf") != 0) return 0;
    return name_len;
}

/* Every line is a comment (# HELP name text / # TYPE name type) or a
 * sample; every sample's family has a TYPE line before it. */
static void check_format(const char *text)
{
    char typed[64][96];
    int ntyped = 0;
    const char *p = text;
    cr_assert(strlen(text) > 0 && text[strlen(text) - 1] == '\n', "must end with a newline");
    while (*p) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl);
        size_t len = (size_t)(nl - p);
        cr_assert_gt(len, 0, "empty line");
        if (p[0] == '#') {
            char kind[8], name[96], rest[128];
            cr_assert_eq(sscanf(p, "# %7s %95s %127[^\n]", kind, name, rest), 3,
                         "bad comment: %.*s", (int)len, p);
            cr_assert(strcmp(kind, "HELP") == 0 || strcmp(kind, "TYPE") == 0);
            if (strcmp(kind, "TYPE") == 0) {
                cr_assert(strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0 ||
                          strcmp(rest, "histogram") == 0);
                cr_assert_lt(ntyped, 64);
                snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
            }
        } else {
            size_t nlen = check_sample_line(p, len);
            cr_assert_gt(nlen, 0, "malformed sample line: %.*s", (int)len, p);
            bool found = false;
            for (int i = 0; i < ntyped && !found; i++) {
                size_t tl = strlen(typed[i]);
                /* histograms: name_bucket, name_sum, name_count */
                found = strncmp(p, typed[i], tl) == 0 &&
                        (tl == nlen || strncmp(p + tl, "_bucket", 7) == 0 ||
                         strncmp(p + tl, "_sum", 4) == 0 || strncmp(p + tl, "_count", 6) == 0);
            }
            cr_assert(found, "no TYPE before %.*s", (int)len, p);
        }
        p = nl + 1;
    }
}

Test(metrics, counters_by_route_and_status)
{
    int n = route_count();
    qg_http_metrics *m = qg_metrics_new(n);
    cr_assert_not_null(m);
    int me = route_index(QG_GET, "/api/me");
    int login = route_index(QG_POST, "/api/auth/login");
    qg_metrics_request(m, me, 200, 1000);
    qg_metrics_request(m, me, 200, 2000);
    qg_metrics_request(m, me, 401, 300);
    qg_metrics_request(m, login, 429, 100);
    qg_metrics_request(m, login, 418, 100); /* not in the list: its class */
    qg_metrics_request(m, login, 999, 100); /* nonsense */
    qg_metrics_request(m, -1, 404, 50);
    qg_metrics_request(m, n + 5, 404, 50); /* out of range counts as unmatched */
    char *s = render(m, NULL, "sqlite");
    check_format(s);
    cr_assert_eq(
        sample(s, "quantgate_http_requests_total{route=\"/api/me\",method=\"GET\",status=\"200\"}"),
        2);
    cr_assert_eq(
        sample(s, "quantgate_http_requests_total{route=\"/api/me\",method=\"GET\",status=\"401\"}"),
        1);
    cr_assert_eq(sample(s,
                        "quantgate_http_requests_total{route=\"/api/auth/login\",method=\"POST\","
                        "status=\"429\"}"),
                 1);
    cr_assert_eq(sample(s,
                        "quantgate_http_requests_total{route=\"/api/auth/login\",method=\"POST\","
                        "status=\"4xx\"}"),
                 1);
    cr_assert_eq(sample(s,
                        "quantgate_http_requests_total{route=\"/api/auth/login\",method=\"POST\","
                        "status=\"other\"}"),
                 1);
    cr_assert_eq(sample(s, "quantgate_http_requests_total{route=\"unmatched\",method=\"\","
                           "status=\"404\"}"),
                 2);
    /* zero series are skipped */
    cr_assert_null(strstr(s, "status=\"500\""));
    cr_assert_null(strstr(s, "route=\"/health\""));
    free(s);
    qg_metrics_free(m);
}

Test(metrics, histogram_cumulative_sum_count)
{
    int n = route_count();
    qg_http_metrics *m = qg_metrics_new(n);
    int r = route_index(QG_GET, "/api/datasets/{id}/candles");
    /* 0.0004 s, exactly 0.001 s (le is inclusive), 0.003 s, 0.7 s, 12 s */
    int64_t d[] = {400, 1000, 3000, 700000, 12000000, -5};
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) qg_metrics_request(m, r, 200, d[i]);
    char *s = render(m, NULL, "sqlite");
    check_format(s);
    const char *pre = "quantgate_http_request_duration_seconds_bucket{route=\"/api/datasets/{id}/"
                      "candles\",method=\"GET\",le=\"";
    struct {
        const char *le;
        double want;
    } want[] = {{"0.0005", 2}, {"0.001", 3}, {"0.0025", 3}, {"0.005", 4},
                {"0.5", 4},    {"1", 5},     {"10", 5},     {"+Inf", 6}};
    char series[256];
    double prev = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        snprintf(series, sizeof(series), "%s%s\"}", pre, want[i].le);
        double v = sample(s, series);
        cr_assert_eq(v, want[i].want, "le=%s: %g", want[i].le, v);
        cr_assert_geq(v, prev);
        prev = v;
    }
    const char *lab = "{route=\"/api/datasets/{id}/candles\",method=\"GET\"}";
    snprintf(series, sizeof(series), "quantgate_http_request_duration_seconds_count%s", lab);
    cr_assert_eq(sample(s, series), 6);
    snprintf(series, sizeof(series), "quantgate_http_request_duration_seconds_sum%s", lab);
    cr_assert_float_eq(sample(s, series), 12.7044, 1e-9);
    /* routes without traffic have no histogram */
    cr_assert_null(strstr(s, "duration_seconds_bucket{route=\"/api/me\""));
    /* bucket lines are in increasing le order, 15 of them */
    int lines = 0;
    for (const char *p = strstr(s, pre); p; p = strstr(p + 1, pre)) lines++;
    cr_assert_eq(lines, 15);
    free(s);
    qg_metrics_free(m);
}

Test(metrics, gauges_db_jobs_build_process)
{
    qg_http_metrics *m = qg_metrics_new(route_count());
    qg_metrics_inflight(m, 1);
    qg_metrics_inflight(m, 1);
    qg_metrics_inflight(m, 1);
    qg_metrics_inflight(m, -1);
    for (int i = 0; i < 5; i++) qg_metrics_job(m, QG_JOB_QUEUED);
    for (int i = 0; i < 4; i++) qg_metrics_job(m, QG_JOB_STARTED);
    qg_metrics_job(m, QG_JOB_DONE);
    qg_metrics_job(m, QG_JOB_FAILED);
    qg_metrics_job(m, QG_JOB_CANCELLED);
    qg_store_stats db = {
        .queries = 120, .errors = 2, .commits = 30, .rollbacks = 1, .busy_us = 2500000};
    char *s = render(m, &db, "postgres");
    check_format(s);
    cr_assert_eq(sample(s, "quantgate_http_requests_in_flight"), 2);
    cr_assert_eq(sample(s, "quantgate_db_queries_total"), 120);
    cr_assert_eq(sample(s, "quantgate_db_errors_total"), 2);
    cr_assert_eq(sample(s, "quantgate_db_commits_total"), 30);
    cr_assert_eq(sample(s, "quantgate_db_rollbacks_total"), 1);
    cr_assert_float_eq(sample(s, "quantgate_db_query_seconds_total"), 2.5, 1e-9);
    cr_assert_eq(sample(s, "quantgate_jobs_total{event=\"queued\"}"), 5);
    cr_assert_eq(sample(s, "quantgate_jobs_total{event=\"started\"}"), 4);
    cr_assert_eq(sample(s, "quantgate_jobs_total{event=\"cancelled\"}"), 1);
    cr_assert_eq(sample(s, "quantgate_jobs_running"), 1);
    cr_assert(strstr(s, "# TYPE quantgate_http_requests_total counter\n"));
    cr_assert(strstr(s, "# TYPE quantgate_http_request_duration_seconds histogram\n"));
    cr_assert(strstr(s, "# TYPE quantgate_jobs_running gauge\n"));
    cr_assert(strstr(s, "# HELP quantgate_build_info "));
    cr_assert(strstr(s, ",backend=\"postgres\"} 1\n"));
    cr_assert(strstr(s, "quantgate_build_info{version=\""));
    double rss = sample(s, "process_resident_memory_bytes");
    cr_assert_gt(rss, 1024 * 1024, "rss %g", rss);
    double start = sample(s, "process_start_time_seconds");
    double now = (double)time(NULL);
    cr_assert(start > now - 3600 && start <= now + 1, "start %f now %f", start, now);
    cr_assert_geq(sample(s, "process_open_fds"), 3);
    free(s);

    /* no database stats: no db lines */
    s = render(m, NULL, "sqlite");
    check_format(s);
    cr_assert_null(strstr(s, "quantgate_db_"));
    free(s);
    qg_metrics_free(m);
}

Test(metrics, label_escaping)
{
    qg_http_metrics *m = qg_metrics_new(route_count());
    char *s = render(m, NULL, "we\"ird\\back\nend");
    check_format(s);
    cr_assert(strstr(s, ",backend=\"we\\\"ird\\\\back\\nend\"} 1\n"), "%s", s);
    free(s);
    qg_metrics_free(m);
}

Test(metrics, render_reports_the_cap)
{
    qg_http_metrics *m = qg_metrics_new(route_count());
    qg_buf b;
    qg_buf_init(&b, 100);
    cr_assert_eq(qg_metrics_render(m, NULL, "sqlite", &b), QG_ERANGE);
    qg_buf_free(&b);
    qg_metrics_free(m);
}

typedef struct rec_arg {
    qg_http_metrics *m;
    int route;
} rec_arg;

static void *recorder(void *p)
{
    rec_arg *a = p;
    for (int i = 0; i < 100000; i++) {
        qg_metrics_inflight(a->m, 1);
        qg_metrics_request(a->m, a->route, i % 2 ? 200 : 404, i % 4 ? 800 : 30000);
        qg_metrics_job(a->m, QG_JOB_QUEUED);
        qg_metrics_inflight(a->m, -1);
    }
    return NULL;
}

Test(metrics, concurrent_recording_sums_exactly)
{
    qg_http_metrics *m = qg_metrics_new(route_count());
    rec_arg a = {m, route_index(QG_GET, "/api/backtests")};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, recorder, &a);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    char *s = render(m, NULL, "sqlite");
    check_format(s);
    const char *base = "quantgate_http_requests_total{route=\"/api/backtests\",method=\"GET\",";
    char series[256];
    snprintf(series, sizeof(series), "%sstatus=\"200\"}", base);
    cr_assert_eq(sample(s, series), 200000);
    snprintf(series, sizeof(series), "%sstatus=\"404\"}", base);
    cr_assert_eq(sample(s, series), 200000);
    const char *h = "quantgate_http_request_duration_seconds";
    const char *lab = "route=\"/api/backtests\",method=\"GET\"";
    snprintf(series, sizeof(series), "%s_bucket{%s,le=\"0.001\"}", h, lab);
    cr_assert_eq(sample(s, series), 300000);
    snprintf(series, sizeof(series), "%s_bucket{%s,le=\"+Inf\"}", h, lab);
    cr_assert_eq(sample(s, series), 400000);
    snprintf(series, sizeof(series), "%s_count{%s}", h, lab);
    cr_assert_eq(sample(s, series), 400000);
    snprintf(series, sizeof(series), "%s_sum{%s}", h, lab);
    cr_assert_float_eq(sample(s, series), 300000 * 0.0008 + 100000 * 0.03, 1e-6);
    cr_assert_eq(sample(s, "quantgate_jobs_total{event=\"queued\"}"), 400000);
    cr_assert_eq(sample(s, "quantgate_http_requests_in_flight"), 0);
    free(s);
    qg_metrics_free(m);
}
