/*
 * router.c - first-match routing over the route table (see router.h).
 *
 * The patterns are cut into segments once, on first use, and grouped by
 * segment count; a match scans one group in table order, comparing
 * segment lengths before bytes.
 */
#include "http/router.h"

#include <quantgate/mem.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

int qg_router_count(void)
{
    int n = 0;
    while (qg_routes[n].pattern) n++;
    return n;
}

int qg_method_parse(const char *name, size_t len)
{
    static const struct {
        const char *name;
        int bit;
    } names[] = {{"GET", QG_GET},        {"POST", QG_POST},     {"PUT", QG_PUT},
                 {"PATCH", QG_PATCH},    {"DELETE", QG_DELETE}, {"HEAD", QG_HEAD},
                 {"OPTIONS", QG_OPTIONS}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0)
            return names[i].bit;
    return 0;
}

/* The table compiled once: each pattern cut into segments, and the routes
 * listed by segment count, since a path can only match patterns with as
 * many segments as it has. A scan then compares lengths before bytes and
 * skips most of the table; walking every pattern with strchr was 5% of a
 * webhook accept. Order within a count is the table's, so the first match
 * is still the table's first. */
#define SEGS_MAX 12 /* segments in a pattern or a matchable path */

typedef struct {
    const char *at; /* into the pattern */
    size_t len;
    bool param; /* {name}: any non-empty segment */
} pattern_seg;

typedef struct {
    int route;
    int nseg;
    pattern_seg seg[SEGS_MAX];
} compiled_route;

static compiled_route *compiled;         /* one per route, grouped by nseg */
static int by_count_start[SEGS_MAX + 2]; /* compiled[start[k]..start[k+1]) have k segments */
static pthread_once_t compiled_once = PTHREAD_ONCE_INIT;

/* Cuts "/a/{b}/c" into its segments; -1 when it has more than SEGS_MAX
 * or does not start with '/'. */
static int split_segments(const char *s, const char *at[SEGS_MAX], size_t len[SEGS_MAX])
{
    int n = 0;
    while (*s == '/') {
        if (n == SEGS_MAX) return -1;
        s++;
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        at[n] = s;
        len[n++] = l;
        s += l;
    }
    return *s || n == 0 ? -1 : n;
}

static void compile_routes(void)
{
    int count = qg_router_count(), k = 0;
    compiled = qg_xcalloc((size_t)count + 1, sizeof *compiled);
    for (int want = 1; want <= SEGS_MAX; want++) {
        by_count_start[want] = k;
        for (int i = 0; i < count; i++) {
            const char *at[SEGS_MAX];
            size_t len[SEGS_MAX];
            if (split_segments(qg_routes[i].pattern, at, len) != want) continue;
            compiled_route *c = &compiled[k];
            int nparam = 0;
            for (int j = 0; j < want; j++) {
                bool param = len[j] > 1 && at[j][0] == '{' && at[j][len[j] - 1] == '}';
                c->seg[j] = (pattern_seg){at[j], len[j], param};
                nparam += param;
            }
            if (nparam > QG_MAX_PARAMS) continue; /* could never match */
            c->route = i;
            c->nseg = want;
            k++;
        }
    }
    by_count_start[SEGS_MAX + 1] = k;
}

static bool segments_match(const compiled_route *c, const char *const at[], const size_t len[])
{
    for (int j = 0; j < c->nseg; j++) {
        const pattern_seg *p = &c->seg[j];
        if (p->param ? len[j] == 0 : p->len != len[j] || memcmp(p->at, at[j], len[j]) != 0)
            return false;
    }
    return true;
}

int qg_router_match(char *path, int method, const char *params[QG_MAX_PARAMS], int *nparams,
                    int *allow)
{
    pthread_once(&compiled_once, compile_routes);
    int want = method == QG_HEAD ? QG_GET : method;
    *allow = 0;
    *nparams = 0;
    const char *at[SEGS_MAX];
    size_t len[SEGS_MAX];
    int nseg = split_segments(path, at, len);
    if (nseg < 0) return QG_ROUTE_NOT_FOUND;
    for (int k = by_count_start[nseg]; k < by_count_start[nseg + 1]; k++) {
        const compiled_route *c = &compiled[k];
        if (!segments_match(c, at, len)) continue;
        const qg_route *rt = &qg_routes[c->route];
        if (rt->method != want) {
            *allow |= rt->method;
            continue;
        }
        int n = 0;
        for (int j = 0; j < nseg; j++) {
            if (!c->seg[j].param) continue;
            path[at[j] - path + len[j]] = 0;
            params[n++] = at[j];
        }
        *nparams = n;
        return c->route;
    }
    return *allow ? QG_ROUTE_BAD_METHOD : QG_ROUTE_NOT_FOUND;
}

void qg_router_allow_header(int allow, char *out, size_t cap)
{
    static const int order[] = {QG_GET, QG_HEAD, QG_POST, QG_PUT, QG_PATCH, QG_DELETE, QG_OPTIONS};
    size_t len = 0;
    out[0] = 0;
    if (allow & QG_GET) allow |= QG_HEAD;
    allow |= QG_OPTIONS;
    for (size_t i = 0; i < sizeof order / sizeof order[0] && len < cap; i++) {
        if (!(allow & order[i])) continue;
        int w = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", qg_method_name(order[i]));
        if (w < 0) break;
        len += (size_t)w;
    }
}
