/*
 * test_plan.c - the plan executor: validation errors (each names the step,
 * the field and the reason), success and failure edges, retries with a
 * growing backoff, bounded parallel fan-outs, the stop flag and the
 * report.
 *
 * The test ops: "ok" succeeds with {"step":name}, "fail" always fails,
 * "flaky" fails params.fail times per step then succeeds, "slow" sleeps
 * params.ms while counting how many run at once. Every attempt is logged
 * in order with its time.
 */
#include <criterion/criterion.h>

#include "signal/plan.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_MAX 128

typedef struct tstate {
    pthread_mutex_t mu;
    char log[LOG_MAX][QG_PLAN_NAME_MAX + 1];
    double at[LOG_MAX];
    int nlog;
    char flaky_name[8][QG_PLAN_NAME_MAX + 1];
    int flaky_count[8];
    int nflaky;
    atomic_int running, max_running;
} tstate;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_attempt(tstate *t, const char *step)
{
    pthread_mutex_lock(&t->mu);
    if (t->nlog < LOG_MAX) {
        snprintf(t->log[t->nlog], sizeof t->log[0], "%s", step);
        t->at[t->nlog] = mono_s();
        t->nlog++;
    }
    pthread_mutex_unlock(&t->mu);
}

static qg_status op_ok(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                       cJSON **result, qg_error *err)
{
    log_attempt(ud, step);
    *result = cJSON_CreateObject();
    cJSON_AddStringToObject(*result, "step", step);
    return QG_OK;
}

static qg_status op_fail(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                         cJSON **result, qg_error *err)
{
    log_attempt(ud, step);
    return qg_error_set(err, QG_EIO, "%s broke", step);
}

static qg_status op_flaky(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                          cJSON **result, qg_error *err)
{
    tstate *t = ud;
    log_attempt(t, step);
    int fail = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(params, "fail"));
    pthread_mutex_lock(&t->mu);
    int i = 0;
    while (i < t->nflaky && strcmp(t->flaky_name[i], step)) i++;
    if (i == t->nflaky) snprintf(t->flaky_name[t->nflaky++], sizeof t->flaky_name[0], "%s", step);
    int seen = ++t->flaky_count[i];
    pthread_mutex_unlock(&t->mu);
    if (seen <= fail) return qg_error_set(err, QG_EAGAIN, "attempt %d failed", seen);
    *result = cJSON_CreateNumber(seen);
    return QG_OK;
}

static qg_status op_slow(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                         cJSON **result, qg_error *err)
{
    tstate *t = ud;
    log_attempt(t, step);
    int now = atomic_fetch_add(&t->running, 1) + 1;
    int prev = atomic_load(&t->max_running);
    while (now > prev && !atomic_compare_exchange_weak(&t->max_running, &prev, now)) {
    }
    usleep((useconds_t)(cJSON_GetNumberValue(cJSON_GetObjectItem(params, "ms")) * 1000));
    atomic_fetch_sub(&t->running, 1);
    if (cJSON_IsTrue(cJSON_GetObjectItem(params, "fail")))
        return qg_error_set(err, QG_EIO, "%s failed", step);
    return QG_OK;
}

/* Blocks until its cancel flag is set (or params.ms pass), like an AI call
 * or a notification that hands the flag on. */
static qg_status op_block(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                          cJSON **result, qg_error *err)
{
    log_attempt(ud, step);
    double until = mono_s() + cJSON_GetNumberValue(cJSON_GetObjectItem(params, "ms")) / 1000.0;
    while (!atomic_load(cancel) && mono_s() < until) usleep(1000);
    if (atomic_load(cancel)) return qg_error_set(err, QG_EAGAIN, "cancelled");
    *result = cJSON_CreateString("finished");
    return QG_OK;
}

static const qg_plan_op test_ops[] = {
    {"ok", op_ok}, {"fail", op_fail}, {"flaky", op_flaky}, {"slow", op_slow}, {"block", op_block}};

static tstate T;
static atomic_bool STOP;

static qg_plan_ops make_ops(int concurrency)
{
    memset(&T, 0, sizeof T);
    pthread_mutex_init(&T.mu, NULL);
    atomic_store(&STOP, false);
    return (qg_plan_ops){
        .ops = test_ops, .n = 5, .ud = &T, .concurrency = concurrency, .stop = &STOP};
}

/* Parses text; returns the status and leaves the message in err. */
static qg_status parse_text(const char *text, const qg_plan_ops *ops, qg_plan **out, qg_error *err)
{
    cJSON *j = cJSON_Parse(text);
    cr_assert_not_null(j, "bad test JSON: %s", text);
    qg_status rc = qg_plan_parse(j, ops, out, err);
    cJSON_Delete(j);
    return rc;
}

/* Parses text, which must be a valid plan. */
static qg_plan *parse_ok(const char *text, const qg_plan_ops *ops)
{
    qg_plan *p = NULL;
    qg_error err = {0};
    cr_assert_eq(parse_text(text, ops, &p, &err), QG_OK, "%s: %s", err.msg, text);
    return p;
}

/* Runs p, which must succeed; the report (caller deletes). */
static cJSON *run_ok(const qg_plan *p, const qg_plan_ops *ops)
{
    cJSON *rep = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_plan_run(p, ops, &rep, &err), QG_OK, "%s", err.msg);
    return rep;
}

/* A report object's "ok" (the test fails when it is not a boolean). */
static bool ok_at(const cJSON *o)
{
    const cJSON *v = cJSON_GetObjectItem(o, "ok");
    cr_assert(cJSON_IsBool(v), "no boolean 'ok'");
    return cJSON_IsTrue(v);
}

/* The report's i-th step entry. */
static cJSON *step_at(const cJSON *rep, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "steps"), i);
}

/* A string field of a report object (the test fails when it is missing). */
static const char *str_at(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    cr_assert(cJSON_IsString(v), "no string '%s'", name);
    return v->valuestring;
}

static void expect_invalid(const char *text, const char *s1, const char *s2, const char *s3)
{
    qg_plan_ops ops = make_ops(0);
    qg_plan *p = (qg_plan *)1;
    qg_error err = {0};
    cr_assert_eq(parse_text(text, &ops, &p, &err), QG_EINVAL, "accepted: %s", text);
    cr_assert_null(p);
    cr_assert_not_null(strstr(err.msg, s1), "'%s' not in: %s", s1, err.msg);
    if (s2) cr_assert_not_null(strstr(err.msg, s2), "'%s' not in: %s", s2, err.msg);
    if (s3) cr_assert_not_null(strstr(err.msg, s3), "'%s' not in: %s", s3, err.msg);
}

Test(plan, validation_errors_name_step_field_reason)
{
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"teleport\"}}}", "step 'a'",
                   "'type'", "unknown step type 'teleport'");
    expect_invalid("{\"steps\":{\"a\":{\"type\":\"ok\"}}}", "'start'", "required", NULL);
    expect_invalid("{\"start\":\"zz\",\"steps\":{\"a\":{\"type\":\"ok\"}}}", "'start'",
                   "no step named 'zz'", NULL);
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"on_success\":\"b\"}}}",
                   "step 'a'", "'on_success'", "no step named 'b'");
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"on_failure\":\"q\"}}}",
                   "step 'a'", "'on_failure'", "no step named 'q'");
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"colour\":1}}}", "step 'a'",
                   "'colour'", "unknown field");
    expect_invalid("{\"start\":\"a\",\"bogus\":1,\"steps\":{\"a\":{\"type\":\"ok\"}}}", "'bogus'",
                   "unknown field", NULL);
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"retries\":11}}}",
                   "step 'a'", "'retries'", "from 0 to 10");
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"retries\":1.5}}}",
                   "step 'a'", "'retries'", "integer");
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"retries\":\"2\"}}}",
                   "step 'a'", "'retries'", NULL);
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"retry_delay_s\":-1}}}",
                   "step 'a'", "'retry_delay_s'", NULL);
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"params\":{}}}}", "step 'a'", "'type'",
                   "required");
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"params\":[1]}}}",
                   "step 'a'", "'params'", "object");
    expect_invalid("{\"start\":\"w\",\"steps\":{\"w\":{\"type\":\"wait\"}}}", "step 'w'",
                   "params.seconds", NULL);
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"parallel\":[\"a\"]}}}", "step 'a'",
                   "'parallel'", "itself");
    expect_invalid("{\"start\":\"f\",\"steps\":{\"f\":{\"parallel\":[\"b\"]},"
                   "\"b\":{\"type\":\"ok\",\"on_success\":\"f\"}}}",
                   "step 'b'", "'on_success'", "fan-out");
    expect_invalid("[]", "expected a JSON object", NULL, NULL);
    expect_invalid("{\"start\":\"a\",\"steps\":{}}", "'steps'", "no steps", NULL);
}

Test(plan, success_cycle_rejected_failure_loop_allowed)
{
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"on_success\":\"b\"},"
                   "\"b\":{\"type\":\"ok\",\"on_success\":\"c\"},"
                   "\"c\":{\"type\":\"ok\",\"on_success\":\"a\"}}}",
                   "'on_success'", "success-only cycle", "a -> b -> c -> a");
    expect_invalid("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\",\"on_success\":\"a\"}}}",
                   "step 'a'", "success-only cycle", NULL);

    /* a failure loop parses, and max_steps ends it */
    qg_plan_ops ops = make_ops(0);
    qg_error err = {0};
    qg_plan *p = parse_ok("{\"start\":\"a\",\"max_steps\":5,\"steps\":{"
                          "\"a\":{\"type\":\"fail\",\"on_failure\":\"b\"},"
                          "\"b\":{\"type\":\"fail\",\"on_failure\":\"a\"}}}",
                          &ops);
    cJSON *rep = NULL;
    cr_assert_eq(qg_plan_run(p, &ops, &rep, &err), QG_ERANGE);
    cr_assert_not_null(strstr(err.msg, "max_steps 5"), "%s", err.msg);
    cr_assert_eq(T.nlog, 5);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "path")), 5);
    cr_assert(!ok_at(rep));
    cJSON_Delete(rep);
    qg_plan_free(p);
}

Test(plan, too_many_steps)
{
    char buf[8192];
    size_t len = (size_t)snprintf(buf, sizeof buf, "{\"start\":\"s0\",\"steps\":{");
    for (int i = 0; i <= QG_PLAN_STEPS_MAX; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s\"s%d\":{\"type\":\"ok\"}",
                                i ? "," : "", i);
    snprintf(buf + len, sizeof buf - len, "}}");
    expect_invalid(buf, "'steps'", "65 steps", "at most 64");
    expect_invalid("{\"start\":\"a\",\"max_steps\":0,\"steps\":{\"a\":{\"type\":\"ok\"}}}",
                   "'max_steps'", NULL, NULL);
}

Test(plan, linear_success_path_and_report)
{
    qg_plan_ops ops = make_ops(0);
    qg_error err = {0};
    qg_plan *p = parse_ok("{\"start\":\"look\",\"steps\":{"
                          "\"tell\":{\"type\":\"ok\"},"
                          "\"look\":{\"type\":\"ok\",\"on_success\":\"judge\","
                          "\"on_failure\":\"esc\"},"
                          "\"judge\":{\"type\":\"ok\",\"params\":{\"x\":1},"
                          "\"on_success\":\"tell\"},"
                          "\"esc\":{\"type\":\"fail\"}}}",
                          &ops);
    cJSON *rep = run_ok(p, &ops);
    cr_assert_eq(T.nlog, 3);
    cr_assert_str_eq(T.log[0], "look");
    cr_assert_str_eq(T.log[1], "judge");
    cr_assert_str_eq(T.log[2], "tell");

    cr_assert(ok_at(rep));
    cJSON *path = cJSON_GetObjectItem(rep, "path");
    cr_assert_eq(cJSON_GetArraySize(path), 3);
    cr_assert_str_eq(cJSON_GetArrayItem(path, 2)->valuestring, "tell");
    cJSON *steps = cJSON_GetObjectItem(rep, "steps");
    cr_assert_eq(cJSON_GetArraySize(steps), 3);
    cJSON *s1 = cJSON_GetArrayItem(steps, 1);
    cr_assert_str_eq(str_at(s1, "step"), "judge");
    cr_assert_str_eq(str_at(s1, "type"), "ok");
    cr_assert(ok_at(s1));
    cr_assert_eq(cJSON_GetObjectItem(s1, "attempts")->valueint, 1);
    cr_assert(cJSON_GetObjectItem(s1, "ms")->valuedouble >= 0);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s1, "result"), "step")->valuestring,
                     "judge");
    cr_assert_null(cJSON_GetObjectItem(s1, "error"));
    cJSON_Delete(rep);

    /* the plan is immutable: a second run gives the same path */
    T.nlog = 0;
    cr_assert_eq(qg_plan_run(p, &ops, &rep, &err), QG_OK);
    cr_assert_eq(T.nlog, 3);
    cJSON_Delete(rep);
    qg_plan_free(p);
}

Test(plan, failure_edge_to_escalate)
{
    qg_plan_ops ops = make_ops(0);
    qg_error err = {0};
    qg_plan *p = parse_ok("{\"start\":\"judge\",\"steps\":{"
                          "\"judge\":{\"type\":\"fail\",\"on_success\":\"tell\","
                          "\"on_failure\":\"esc\"},"
                          "\"tell\":{\"type\":\"ok\"},"
                          "\"esc\":{\"type\":\"ok\",\"params\":{\"reason\":\"x\"}}}}",
                          &ops);
    cJSON *rep = NULL;
    /* the failure edge led to an end with the last step successful */
    cr_assert_eq(qg_plan_run(p, &ops, &rep, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(T.nlog, 2);
    cr_assert_str_eq(T.log[0], "judge");
    cr_assert_str_eq(T.log[1], "esc");
    cJSON *s0 = step_at(rep, 0);
    cr_assert(!ok_at(s0));
    cr_assert_str_eq(str_at(s0, "error"), "judge broke");
    cr_assert_null(cJSON_GetObjectItem(s0, "result"));
    cJSON_Delete(rep);
    qg_plan_free(p);

    /* without a failure edge the plan fails with the step's status */
    p = parse_ok("{\"start\":\"a\",\"steps\":{\"a\":{\"type\":\"ok\","
                 "\"on_success\":\"b\"},\"b\":{\"type\":\"fail\"}}}",
                 &ops);
    cr_assert_eq(qg_plan_run(p, &ops, &rep, &err), QG_EIO);
    cr_assert_not_null(strstr(err.msg, "step 'b'"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "b broke"), "%s", err.msg);
    cr_assert(!ok_at(rep));
    cr_assert_not_null(strstr(str_at(rep, "error"), "b broke"));
    cJSON_Delete(rep);
    qg_plan_free(p);
}

Test(plan, retries_with_growing_backoff)
{
    qg_plan_ops ops = make_ops(0);
    qg_error err = {0};
    qg_plan *p = parse_ok("{\"start\":\"f\",\"steps\":{"
                          "\"f\":{\"type\":\"flaky\",\"params\":{\"fail\":3},\"retries\":3,"
                          "\"retry_delay_s\":0.01,\"on_success\":\"g\"},"
                          "\"g\":{\"type\":\"fail\",\"retries\":2,\"retry_delay_s\":0.01}}}",
                          &ops);
    cJSON *rep = NULL;
    double t0 = mono_s();
    cr_assert_eq(qg_plan_run(p, &ops, &rep, &err), QG_EIO);
    double elapsed = mono_s() - t0;
    /* f: 4 attempts (3 failures, then success), g: 1 + 2 retries, all failing */
    cr_assert_eq(T.nlog, 7);
    for (int i = 0; i < 4; i++) cr_assert_str_eq(T.log[i], "f");
    for (int i = 4; i < 7; i++) cr_assert_str_eq(T.log[i], "g");
    /* waits 0.01, 0.02, 0.04 (f) and 0.01, 0.02 (g), each at least 90% */
    cr_assert_geq(elapsed, 0.9 * (0.01 + 0.02 + 0.04 + 0.01 + 0.02));
    double g1 = T.at[1] - T.at[0], g2 = T.at[2] - T.at[1], g3 = T.at[3] - T.at[2];
    cr_assert_geq(g1, 0.009);
    cr_assert_geq(g2, 0.018);
    cr_assert_geq(g3, 0.036);

    cJSON *f = step_at(rep, 0), *g = step_at(rep, 1);
    cr_assert_eq(cJSON_GetObjectItem(f, "attempts")->valueint, 4);
    cr_assert(ok_at(f));
    cr_assert_eq(cJSON_GetObjectItem(f, "result")->valueint, 4);
    cJSON *ferrs = cJSON_GetObjectItem(f, "errors");
    cr_assert_eq(cJSON_GetArraySize(ferrs), 3);
    cr_assert_str_eq(cJSON_GetArrayItem(ferrs, 2)->valuestring, "attempt 3 failed");
    cr_assert_eq(cJSON_GetObjectItem(g, "attempts")->valueint, 3);
    cr_assert(!ok_at(g));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(g, "errors")), 3);
    cJSON_Delete(rep);
    qg_plan_free(p);
}

Test(plan, parallel_fanout_bounded)
{
    qg_plan_ops ops = make_ops(2);
    qg_error err = {0};
    qg_plan *p = parse_ok("{\"start\":\"fan\",\"steps\":{"
                          "\"fan\":{\"parallel\":[\"a\",\"b\",\"c\",\"d\",\"e\"],"
                          "\"on_success\":\"after\",\"on_failure\":\"esc\"},"
                          "\"a\":{\"type\":\"slow\",\"params\":{\"ms\":30}},"
                          "\"b\":{\"type\":\"slow\",\"params\":{\"ms\":30}},"
                          "\"c\":{\"type\":\"slow\",\"params\":{\"ms\":30}},"
                          "\"d\":{\"type\":\"slow\",\"params\":{\"ms\":30}},"
                          "\"e\":{\"type\":\"slow\",\"params\":{\"ms\":30}},"
                          "\"after\":{\"type\":\"ok\"},\"esc\":{\"type\":\"ok\"}}}",
                          &ops);
    cJSON *rep = run_ok(p, &ops);
    cr_assert_eq(T.nlog, 6);
    cr_assert_str_eq(T.log[5], "after");
    cr_assert_eq(atomic_load(&T.max_running), 2, "max at once: %d", atomic_load(&T.max_running));
    cJSON *path = cJSON_GetObjectItem(rep, "path");
    cr_assert_eq(cJSON_GetArraySize(path), 7); /* fan, a..e, after */
    cr_assert_str_eq(cJSON_GetArrayItem(path, 0)->valuestring, "fan");
    cr_assert_str_eq(cJSON_GetArrayItem(path, 1)->valuestring, "a");
    cr_assert_str_eq(cJSON_GetArrayItem(path, 6)->valuestring, "after");
    cJSON *fan = step_at(rep, 0);
    cr_assert_str_eq(str_at(fan, "type"), "parallel");
    cr_assert(ok_at(fan));
    cJSON_Delete(rep);
    qg_plan_free(p);

    /* one failed branch sends the fan-out down its failure edge */
    ops = make_ops(3);
    p = parse_ok("{\"start\":\"fan\",\"steps\":{"
                 "\"fan\":{\"type\":\"parallel\",\"parallel\":[\"a\",\"b\",\"c\"],"
                 "\"on_success\":\"after\",\"on_failure\":\"esc\"},"
                 "\"a\":{\"type\":\"slow\",\"params\":{\"ms\":5}},"
                 "\"b\":{\"type\":\"slow\",\"params\":{\"ms\":5,\"fail\":true}},"
                 "\"c\":{\"type\":\"slow\",\"params\":{\"ms\":5}},"
                 "\"after\":{\"type\":\"ok\"},\"esc\":{\"type\":\"ok\"}}}",
                 &ops);
    cr_assert_eq(qg_plan_run(p, &ops, &rep, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(T.nlog, 4);
    cr_assert_str_eq(T.log[3], "esc");
    cr_assert_leq(atomic_load(&T.max_running), 3);
    fan = step_at(rep, 0);
    cr_assert(!ok_at(fan));
    cr_assert_not_null(strstr(str_at(fan, "error"), "step 'b'"));
    cJSON_Delete(rep);
    qg_plan_free(p);
}

static void *set_stop_later(void *arg)
{
    usleep(50 * 1000);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

Test(plan, stop_interrupts_a_long_wait)
{
    qg_plan_ops ops = make_ops(0);
    qg_error err = {0};
    qg_plan *p = parse_ok("{\"start\":\"w\",\"steps\":{"
                          "\"w\":{\"type\":\"wait\",\"params\":{\"seconds\":60},"
                          "\"on_success\":\"a\",\"on_failure\":\"a\"},"
                          "\"a\":{\"type\":\"ok\"}}}",
                          &ops);
    pthread_t th;
    pthread_create(&th, NULL, set_stop_later, &STOP);
    cJSON *rep = NULL;
    double t0 = mono_s();
    qg_status rc = qg_plan_run(p, &ops, &rep, &err);
    double elapsed = mono_s() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(rc, QG_EAGAIN);
    /* a minute's wait ended by the stop: nowhere near 60 s (generous for sanitizers) */
    cr_assert_lt(elapsed, 30.0);
    cr_assert_eq(T.nlog, 0, "the failure edge must not run after a stop");
    cr_assert(!ok_at(rep));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(rep, "stopped")));
    cJSON_Delete(rep);

    /* a stop during a backoff wait ends the retries too */
    qg_plan_free(p);
    ops = make_ops(0);
    p = parse_ok("{\"start\":\"f\",\"steps\":{\"f\":{\"type\":\"fail\","
                 "\"retries\":5,\"retry_delay_s\":60}}}",
                 &ops);
    pthread_create(&th, NULL, set_stop_later, &STOP);
    rc = qg_plan_run(p, &ops, &rep, &err);
    pthread_join(th, NULL);
    cr_assert_eq(rc, QG_EAGAIN);
    cr_assert_eq(T.nlog, 1);
    cJSON_Delete(rep);
    qg_plan_free(p);
}

/* timeout_s cancels a running op (it sees its cancel flag) instead of
 * waiting for it to return: a 30 s call with a 0.05 s timeout ends as a
 * timed-out failure, retried, then the failure edge runs. A step without a
 * timeout gets the plan's stop flag and runs to its end. */
Test(plan, timeout_cancels_a_running_op)
{
    qg_plan_ops ops = make_ops(0);
    qg_plan *p = parse_ok("{\"start\":\"b\",\"steps\":{"
                          "\"b\":{\"type\":\"block\",\"params\":{\"ms\":30000},"
                          "\"timeout_s\":0.05,\"retries\":1,\"retry_delay_s\":0,"
                          "\"on_failure\":\"c\"},"
                          "\"c\":{\"type\":\"block\",\"params\":{\"ms\":20}}}}",
                          &ops);
    double t0 = mono_s();
    cJSON *rep = run_ok(p, &ops);
    cr_assert_lt(mono_s() - t0, 20.0, "the 30 s op was not cancelled");
    cJSON *b = step_at(rep, 0);
    cJSON *c = step_at(rep, 1);
    cr_assert(!ok_at(b));
    cr_assert_eq(cJSON_GetObjectItem(b, "attempts")->valueint, 2);
    const char *e = str_at(b, "error");
    cr_assert_not_null(strstr(e, "timed out after"), "%s", e);
    cr_assert_not_null(strstr(e, "timeout_s 0.05"), "%s", e);
    cr_assert(ok_at(c));
    cr_assert_str_eq(str_at(c, "result"), "finished");
    cJSON_Delete(rep);
    qg_plan_free(p);
}

Test(plan, wait_step_and_timeout)
{
    qg_plan_ops ops = make_ops(0);
    qg_plan *p = parse_ok("{\"start\":\"w\",\"steps\":{"
                          "\"w\":{\"type\":\"wait\",\"params\":{\"seconds\":0.02},"
                          "\"on_success\":\"x\"},"
                          "\"x\":{\"type\":\"wait\",\"params\":{\"seconds\":60},"
                          "\"timeout_s\":0.01,\"on_failure\":\"esc\"},"
                          "\"esc\":{\"type\":\"ok\"}}}",
                          &ops);
    double t0 = mono_s();
    cJSON *rep = run_ok(p, &ops);
    cr_assert_geq(mono_s() - t0, 0.02 + 0.01);
    cJSON *w = step_at(rep, 0), *x = step_at(rep, 1);
    cr_assert_geq(cJSON_GetObjectItem(cJSON_GetObjectItem(w, "result"), "waited_s")->valuedouble,
                  0.02);
    cr_assert(!ok_at(x));
    cr_assert_not_null(strstr(str_at(x, "error"), "timed out"));
    cr_assert_eq(T.nlog, 1);
    cr_assert_str_eq(T.log[0], "esc");
    cJSON_Delete(rep);
    qg_plan_free(p);
}
