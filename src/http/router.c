/*
 * router.c - first-match routing over the route table (see router.h).
 *
 * The table is small (tens of routes), so a linear scan comparing segments
 * costs well under a microsecond and needs no precomputed tree.
 */
#include "http/router.h"

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

/* Matches pattern against path segment by segment. On success the {name}
 * segments' offsets and lengths go into starts/lens. */
static bool pattern_match(const char *pattern, const char *path, size_t starts[QG_MAX_PARAMS],
                          size_t lens[QG_MAX_PARAMS], int *n)
{
    const char *p = pattern, *s = path;
    *n = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/') return false;
        p++, s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        size_t slen = se ? (size_t)(se - s) : strlen(s);
        if (plen > 1 && p[0] == '{' && p[plen - 1] == '}') {
            if (slen == 0 || *n == QG_MAX_PARAMS) return false;
            starts[*n] = (size_t)(s - path);
            lens[*n] = slen;
            (*n)++;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return false;
        }
        p += plen, s += slen;
    }
    return *p == 0 && *s == 0;
}

int qg_router_match(char *path, int method, const char *params[QG_MAX_PARAMS], int *nparams,
                    int *allow)
{
    size_t starts[QG_MAX_PARAMS], lens[QG_MAX_PARAMS];
    int want = method == QG_HEAD ? QG_GET : method;
    *allow = 0;
    *nparams = 0;
    for (int i = 0; qg_routes[i].pattern; i++) {
        int n;
        if (!pattern_match(qg_routes[i].pattern, path, starts, lens, &n)) continue;
        if (qg_routes[i].method != want) {
            *allow |= qg_routes[i].method;
            continue;
        }
        for (int k = 0; k < n; k++) {
            path[starts[k] + lens[k]] = 0;
            params[k] = path + starts[k];
        }
        *nparams = n;
        return i;
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
