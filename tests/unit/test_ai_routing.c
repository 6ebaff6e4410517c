/*
 * test_ai_routing.c - the router of ai/routing.c on a fake clock: plan
 * order, the fallback chain and its cycles, deployment ids and "builtin",
 * cool-down after failures, auth and Retry-After, success resets, rpm/tpm
 * windows, reloads that keep health, the snapshot.
 */
#include <criterion/criterion.h>

#include "ai/routing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t clock_ms;

static int64_t fake_now(void *ud)
{
    return clock_ms;
}

static qg_ai_router *new_router(void)
{
    clock_ms = 1700000000000LL;
    qg_ai_router_config c = {
        .cooldown_ms = 60000, .fail_threshold = 3, .fail_window_ms = 60000, .now_ms = fake_now};
    return qg_ai_router_new_with(&c);
}

static qg_ai_deployment dep(const char *id, const char *model, int priority, bool enabled)
{
    qg_ai_deployment d = {.priority = priority, .enabled = enabled};
    snprintf(d.id, sizeof d.id, "%s", id);
    snprintf(d.model_name, sizeof d.model_name, "%s", model);
    snprintf(d.provider, sizeof d.provider, "openai");
    snprintf(d.model, sizeof d.model, "m-%s", id);
    return d;
}

static qg_ai_model model(const char *name, const char *fallback)
{
    qg_ai_model m = {0};
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.fallback, sizeof m.fallback, "%s", fallback);
    return m;
}

/* The plan as "a,b,c" (or the status name and message). */
static char planbuf[512];
static const char *plan_str(qg_ai_router *r, const char *name)
{
    qg_ai_deployment out[16];
    size_t n = 99;
    qg_error err = {0};
    qg_status rc = qg_ai_router_plan(r, name, out, 16, &n, &err);
    if (rc) {
        snprintf(planbuf, sizeof planbuf, "%s: %s", qg_status_name(rc), err.msg);
        cr_assert_eq(n, 0);
        return planbuf;
    }
    planbuf[0] = 0;
    for (size_t i = 0; i < n; i++)
        snprintf(planbuf + strlen(planbuf), sizeof planbuf - strlen(planbuf), "%s%s", i ? "," : "",
                 out[i].id);
    return planbuf;
}

static void load_standard(qg_ai_router *r)
{
    qg_ai_deployment deps[] = {
        dep("a2", "analyst", 2, true),  dep("a1", "analyst", 1, true),
        dep("a3", "analyst", 3, false), dep("f1", "fast", 0, true),
        dep("c1", "cheap", 0, true),    dep("x1", "loop1", 0, true),
        dep("y1", "loop2", 0, true),
    };
    qg_ai_model models[] = {model("analyst", "fast"), model("fast", "cheap"),  model("cheap", ""),
                            model("loop1", "loop2"),  model("loop2", "loop1"), model("empty", "")};
    qg_error err = {0};
    cr_assert_eq(qg_ai_router_load(r, deps, 7, models, 6, &err), QG_OK, "%s", err.msg);
}

Test(ai_routing, plan_order_and_fallback_chain)
{
    qg_ai_router *r = new_router();
    load_standard(r);
    cr_assert_str_eq(plan_str(r, "analyst"), "a1,a2,f1,c1",
                     "priority order, disabled skipped, "
                     "then the chain");
    cr_assert_str_eq(plan_str(r, NULL), "a1,a2,f1,c1", "NULL is analyst");
    cr_assert_str_eq(plan_str(r, "fast"), "f1,c1");
    cr_assert_str_eq(plan_str(r, "loop1"), "x1,y1", "a cycle ends the chain");
    cr_assert_str_eq(plan_str(r, "loop2"), "y1,x1");
    cr_assert_str_eq(plan_str(r, "a2"), "a2", "a deployment id alone");
    cr_assert_str_eq(plan_str(r, "builtin"), "builtin", "made up when none is configured");
    cr_assert_str_eq(plan_str(r, "nope"), "ENOTFOUND: no model or deployment named 'nope'");
    cr_assert_str_eq(plan_str(r, "empty"), "ENOTFOUND: model 'empty' has no enabled deployment");
    cr_assert_str_eq(plan_str(r, "a3"), "ENOTFOUND: deployment 'a3' is disabled");

    qg_ai_deployment one[1];
    size_t n = 0;
    cr_assert_eq(qg_ai_router_plan(r, "analyst", one, 1, &n, NULL), QG_OK);
    cr_assert_eq(n, 1, "capped at cap");
    cr_assert_str_eq(one[0].id, "a1");
    cr_assert_str_eq(one[0].model, "m-a1", "a full copy");
    qg_ai_deployment got;
    cr_assert_eq(qg_ai_router_get(r, "f1", &got), QG_OK);
    cr_assert_str_eq(got.model_name, "fast");
    cr_assert_eq(qg_ai_router_get(r, "zz", &got), QG_ENOTFOUND);
    qg_ai_router_free(r);
}

Test(ai_routing, fallback_to_builtin_and_models_without_rows)
{
    qg_ai_router *r = new_router();
    qg_ai_deployment deps[] = {dep("o1", "analyst", 0, true), dep("s1", "solo", 0, true)};
    qg_ai_model models[] = {model("analyst", "builtin")};
    cr_assert_eq(qg_ai_router_load(r, deps, 2, models, 1, NULL), QG_OK);
    cr_assert_str_eq(plan_str(r, "analyst"), "o1,builtin");
    cr_assert_str_eq(plan_str(r, "solo"), "s1", "deployments name a model with no model row");
    qg_ai_deployment dup[] = {dep("o1", "analyst", 0, true), dep("o1", "fast", 0, true),
                              dep("s1", "solo", 0, true)};
    cr_assert_eq(qg_ai_router_load(r, dup, 3, NULL, 0, NULL), QG_OK);
    cr_assert_str_eq(plan_str(r, "analyst"), "o1", "the first of a repeated id wins");
    cr_assert_str_eq(plan_str(r, "fast"), "ENOTFOUND: no model or deployment named 'fast'");
    cr_assert_str_eq(plan_str(r, "solo"), "s1");
    qg_ai_router_free(r);
}

Test(ai_routing, cooldown_after_consecutive_failures)
{
    qg_ai_router *r = new_router();
    load_standard(r);
    qg_ai_router_report(r, "a1", QG_AI_ESERVER, -1);
    qg_ai_router_report(r, "a1", QG_AI_ETIMEOUT, -1);
    cr_assert_str_eq(plan_str(r, "analyst"), "a1,a2,f1,c1", "two failures: still in");
    qg_ai_router_report(r, "a1", QG_AI_ENETWORK, -1);
    cr_assert_str_eq(plan_str(r, "analyst"), "a2,f1,c1", "the third cools it down");
    clock_ms += 59000;
    cr_assert_str_eq(plan_str(r, "analyst"), "a2,f1,c1");
    clock_ms += 1001;
    cr_assert_str_eq(plan_str(r, "analyst"), "a1,a2,f1,c1", "back after QG_AI_COOLDOWN_S");
    qg_ai_router_free(r);
}

Test(ai_routing, success_resets_and_old_failures_expire)
{
    qg_ai_router *r = new_router();
    load_standard(r);
    qg_ai_router_report(r, "a1", QG_AI_ESERVER, -1);
    qg_ai_router_report(r, "a1", QG_AI_ESERVER, -1);
    qg_ai_router_report(r, "a1", QG_AI_OK, -1);
    qg_ai_router_report(r, "a1", QG_AI_ESERVER, -1);
    qg_ai_router_report(r, "a1", QG_AI_ESERVER, -1);
    cr_assert_str_eq(plan_str(r, "analyst"), "a1,a2,f1,c1", "the success reset the count");
    clock_ms += 61000; /* the two failures fall out of the window */
    qg_ai_router_report(r, "a1", QG_AI_ESERVER, -1);
    cr_assert_str_eq(plan_str(r, "analyst"), "a1,a2,f1,c1");
    /* the caller's own mistakes do not count */
    qg_ai_router_report(r, "a1", QG_AI_EBADREQ, -1);
    qg_ai_router_report(r, "a1", QG_AI_ECONTEXT, -1);
    qg_ai_router_report(r, "a1", QG_AI_ECANCELLED, -1);
    cr_assert_str_eq(plan_str(r, "analyst"), "a1,a2,f1,c1");
    qg_ai_router_report(r, "a1", QG_AI_ESERVER, -1);
    qg_ai_router_report(r, "a1", QG_AI_ESERVER, -1);
    cr_assert_str_eq(plan_str(r, "analyst"), "a2,f1,c1");
    qg_ai_router_free(r);
}

Test(ai_routing, auth_cools_at_once_and_retry_after_can_be_longer)
{
    qg_ai_router *r = new_router();
    load_standard(r);
    qg_ai_router_report(r, "a1", QG_AI_EAUTH, -1);
    cr_assert_str_eq(plan_str(r, "analyst"), "a2,f1,c1", "one auth failure is enough");
    /* three 429s with a Retry-After longer than the cool-down */
    for (int i = 0; i < 3; i++) qg_ai_router_report(r, "f1", QG_AI_ERATE, 300000);
    clock_ms += 61000;
    cr_assert_str_eq(plan_str(r, "analyst"), "a1,a2,c1", "f1 still out: its Retry-After");
    clock_ms += 240000;
    cr_assert_str_eq(plan_str(r, "analyst"), "a1,a2,f1,c1");
    qg_ai_router_free(r);
}

Test(ai_routing, one_rate_limit_with_retry_after_keeps_it_out_that_long)
{
    qg_ai_router *r = new_router();
    load_standard(r);
    qg_ai_router_report(r, "a1", QG_AI_ERATE, 5000);
    cr_assert_str_eq(plan_str(r, "analyst"), "a2,f1,c1");
    clock_ms += 5001;
    cr_assert_str_eq(plan_str(r, "analyst"), "a1,a2,f1,c1", "no full cool-down for one 429");
    qg_ai_router_free(r);
}

Test(ai_routing, all_cooling_says_for_how_long)
{
    qg_ai_router *r = new_router();
    load_standard(r);
    qg_ai_router_report(r, "f1", QG_AI_EAUTH, -1);
    clock_ms += 20000;
    qg_ai_router_report(r, "c1", QG_AI_EAUTH, -1);
    cr_assert_str_eq(plan_str(r, "fast"),
                     "EAGAIN: every deployment of 'fast' is cooling down for 40 s");
    qg_ai_router_free(r);
}

Test(ai_routing, reload_keeps_health_of_surviving_ids)
{
    qg_ai_router *r = new_router();
    load_standard(r);
    qg_ai_router_report(r, "a1", QG_AI_EAUTH, -1);
    qg_ai_router_report(r, "f1", QG_AI_ESERVER, -1);
    qg_ai_router_report(r, "f1", QG_AI_ESERVER, -1);
    /* a1 survives with another priority, f1 survives, a2 goes away */
    qg_ai_deployment deps[] = {dep("a1", "analyst", 9, true), dep("a4", "analyst", 5, true),
                               dep("f1", "fast", 0, true)};
    qg_ai_model models[] = {model("analyst", "fast")};
    cr_assert_eq(qg_ai_router_load(r, deps, 3, models, 1, NULL), QG_OK);
    cr_assert_str_eq(plan_str(r, "analyst"), "a4,f1", "a1 is still cooling down");
    qg_ai_router_report(r, "f1", QG_AI_ESERVER, -1);
    cr_assert_str_eq(plan_str(r, "analyst"), "a4", "f1's two earlier failures were kept");
    qg_ai_router_report(r, "a2", QG_AI_EAUTH, -1); /* gone: ignored */
    qg_ai_dep_health *h = NULL;
    size_t n = 0;
    cr_assert_eq(qg_ai_router_snapshot(r, &h, &n), QG_OK);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(h[0].id, "a4", "snapshot in plan order");
    cr_assert_str_eq(h[1].id, "a1");
    cr_assert_gt(h[1].cooling_until_ms, clock_ms);
    cr_assert_eq(h[1].last_error, QG_AI_EAUTH);
    cr_assert_eq(h[2].consecutive_failures, 3);
    cr_assert_eq(h[2].calls, 3);
    cr_assert_eq(h[2].failures, 3);
    cr_assert_eq(h[0].calls, 0);
    cr_assert_eq(h[0].cooling_until_ms, 0);
    free(h);
    qg_ai_router_free(r);
}

Test(ai_routing, rpm_window_slides)
{
    qg_ai_router *r = new_router();
    qg_ai_deployment d = dep("d", "m", 0, true);
    d.rpm = 3;
    cr_assert_eq(qg_ai_router_load(r, &d, 1, NULL, 0, NULL), QG_OK);
    int64_t wait = -1;
    clock_ms = 1700000000000LL; /* a whole second */
    cr_assert_eq(qg_ai_router_acquire(r, "d", 0, &wait), QG_OK);
    cr_assert_eq(wait, 0);
    clock_ms += 10000;
    cr_assert_eq(qg_ai_router_acquire(r, "d", 0, &wait), QG_OK);
    cr_assert_eq(qg_ai_router_acquire(r, "d", 0, &wait), QG_OK);
    clock_ms += 500;
    cr_assert_eq(qg_ai_router_acquire(r, "d", 0, &wait), QG_EAGAIN);
    /* the first request (second 0) leaves the window at second 60 */
    cr_assert_eq(wait, 60000 - 10500, "wait %lld", (long long)wait);
    qg_ai_dep_health *h;
    size_t n;
    qg_ai_router_snapshot(r, &h, &n);
    cr_assert_eq(h[0].rpm_used, 3);
    cr_assert_eq(h[0].rpm_limit, 3);
    free(h);
    clock_ms += wait;
    cr_assert_eq(qg_ai_router_acquire(r, "d", 0, &wait), QG_OK, "room once it slid");
    cr_assert_eq(qg_ai_router_acquire(r, "d", 0, &wait), QG_EAGAIN);
    cr_assert_eq(wait, 10000, "the next ones leave at second 70");
    cr_assert_eq(qg_ai_router_acquire(r, "builtin", 0, &wait), QG_OK, "unknown ids pass");
    qg_ai_router_free(r);
}

Test(ai_routing, tpm_reserves_estimates_and_corrects_them)
{
    qg_ai_router *r = new_router();
    qg_ai_deployment d = dep("d", "m", 0, true);
    d.tpm = 1000;
    cr_assert_eq(qg_ai_router_load(r, &d, 1, NULL, 0, NULL), QG_OK);
    int64_t wait;
    cr_assert_eq(qg_ai_router_acquire(r, "d", 600, &wait), QG_OK);
    cr_assert_eq(qg_ai_router_acquire(r, "d", 600, &wait), QG_EAGAIN, "600 + 600 > 1000");
    cr_assert_eq(wait, 60000);
    qg_ai_router_add_tokens(r, "d", 600, 150); /* it used far less */
    cr_assert_eq(qg_ai_router_acquire(r, "d", 600, &wait), QG_OK, "150 + 600 fits");
    qg_ai_dep_health *h;
    size_t n;
    qg_ai_router_snapshot(r, &h, &n);
    cr_assert_eq(h[0].tpm_used, 750);
    cr_assert_eq(h[0].rpm_used, 2, "counted even without an rpm limit");
    free(h);
    clock_ms += 60000;
    cr_assert_eq(qg_ai_router_acquire(r, "d", 5000, &wait), QG_OK,
                 "an estimate over the limit passes on an empty window");
    cr_assert_eq(qg_ai_router_acquire(r, "d", 1, &wait), QG_EAGAIN);
    qg_ai_router_free(r);
}
