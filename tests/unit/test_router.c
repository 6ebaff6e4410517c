/*
 * test_router.c - routing over the real route table, and the worker pool
 * the server runs requests on.
 */
#include "http/router.h"

#include <quantgate/pool.h>

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static int match(const char *path, int method, const char **params, int *n, int *allow)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    return qg_router_match(buf, method, params, n, allow);
}

Test(router, literal_and_parameter_routes)
{
    const char *p[QG_MAX_PARAMS];
    int n, allow;
    int i = match("/health", QG_GET, p, &n, &allow);
    cr_assert_geq(i, 0);
    cr_assert_str_eq(qg_routes[i].pattern, "/health");
    cr_assert_eq(n, 0);

    i = match("/api/datasets/ds_123/candles", QG_GET, p, &n, &allow);
    cr_assert_geq(i, 0);
    cr_assert_str_eq(qg_routes[i].pattern, "/api/datasets/{id}/candles");
    cr_assert_eq(n, 1);
    cr_assert_str_eq(p[0], "ds_123");

    i = match("/api/users/usr_9/approve", QG_POST, p, &n, &allow);
    cr_assert_geq(i, 0);
    cr_assert_str_eq(p[0], "usr_9");
}

Test(router, head_matches_get)
{
    const char *p[QG_MAX_PARAMS];
    int n, allow;
    int i = match("/health", QG_HEAD, p, &n, &allow);
    cr_assert_geq(i, 0);
    cr_assert_eq(qg_routes[i].method, QG_GET);
}

Test(router, unknown_path_is_not_found)
{
    const char *p[QG_MAX_PARAMS];
    int n, allow;
    cr_assert_eq(match("/api/nope", QG_GET, p, &n, &allow), QG_ROUTE_NOT_FOUND);
    cr_assert_eq(match("/api/datasets/", QG_GET, p, &n, &allow), QG_ROUTE_NOT_FOUND);
    cr_assert_eq(match("/api/datasets/x/candles/y", QG_GET, p, &n, &allow), QG_ROUTE_NOT_FOUND);
    cr_assert_eq(match("", QG_GET, p, &n, &allow), QG_ROUTE_NOT_FOUND);
    cr_assert_eq(match("health", QG_GET, p, &n, &allow), QG_ROUTE_NOT_FOUND);
    cr_assert_eq(match("/health/", QG_GET, p, &n, &allow), QG_ROUTE_NOT_FOUND);
    cr_assert_eq(match("/api//candles", QG_GET, p, &n, &allow), QG_ROUTE_NOT_FOUND);
    cr_assert_eq(match("/api/datasets//candles", QG_GET, p, &n, &allow), QG_ROUTE_NOT_FOUND,
                 "a parameter is never empty");
    cr_assert_eq(match("/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o", QG_GET, p, &n, &allow),
                 QG_ROUTE_NOT_FOUND);
}

Test(router, literal_route_before_parameter_route_wins)
{
    const char *p[QG_MAX_PARAMS];
    int n, allow;
    int i = match("/api/signals/stream", QG_GET, p, &n, &allow);
    cr_assert_geq(i, 0);
    cr_assert_str_eq(qg_routes[i].pattern, "/api/signals/stream");
    cr_assert_eq(n, 0);
    i = match("/api/signals/sig_1", QG_GET, p, &n, &allow);
    cr_assert_geq(i, 0);
    cr_assert_str_eq(qg_routes[i].pattern, "/api/signals/{id}");
    cr_assert_str_eq(p[0], "sig_1");
}

Test(router, wrong_method_lists_allowed_ones)
{
    const char *p[QG_MAX_PARAMS];
    int n, allow;
    cr_assert_eq(match("/api/datasets/ds_1", QG_PUT, p, &n, &allow), QG_ROUTE_BAD_METHOD);
    cr_assert_eq(allow, QG_GET | QG_DELETE);
    char hdr[96];
    qg_router_allow_header(allow, hdr, sizeof hdr);
    cr_assert_str_eq(hdr, "GET, HEAD, DELETE, OPTIONS");
}

Test(router, every_route_matches_itself)
{
    for (int i = 0; qg_routes[i].pattern; i++) {
        char path[256];
        size_t o = 0;
        for (const char *s = qg_routes[i].pattern; *s && o < sizeof path - 8;) {
            if (*s == '{') {
                o += (size_t)snprintf(path + o, sizeof path - o, "x1");
                s = strchr(s, '}') + 1;
            } else {
                path[o++] = *s++;
            }
        }
        path[o] = 0;
        const char *p[QG_MAX_PARAMS];
        int n, allow;
        int got = qg_router_match(path, qg_routes[i].method, p, &n, &allow);
        cr_assert_eq(got, i, "%s %s matched route %d", qg_method_name(qg_routes[i].method),
                     qg_routes[i].pattern, got);
    }
}

Test(router, method_names_round_trip)
{
    cr_assert_eq(qg_method_parse("PATCH", 5), QG_PATCH);
    cr_assert_eq(qg_method_parse("GE", 2), 0);
    cr_assert_eq(qg_method_parse("TRACE", 5), 0);
}

static atomic_int ran, completed;
static void work_item(void *arg)
{
    atomic_fetch_add(&ran, *(int *)arg);
}
static void work_done(void *arg)
{
    atomic_fetch_add(&completed, 1);
}

Test(workpool, runs_every_item_then_its_completion)
{
    atomic_store(&ran, 0);
    atomic_store(&completed, 0);
    qg_workpool *p = qg_workpool_new(3, "test");
    static int one = 1;
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(qg_workpool_submit(p, work_item, work_done, &one), QG_OK);
    qg_workpool_shutdown(p);
    cr_assert_eq(atomic_load(&ran), 1000);
    cr_assert_eq(atomic_load(&completed), 1000);
    cr_assert_eq(qg_workpool_pending(p), 0);
    cr_assert_eq(qg_workpool_submit(p, work_item, NULL, &one), QG_EAGAIN);
    qg_workpool_free(p);
}
