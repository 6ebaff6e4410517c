/*
 * test_ai_usage.c - AI usage and budgets on a real SQLite file: a recorded
 * call lands in ai_calls and in the day and month totals of the global, user
 * and token scopes; budgets refuse at the limit with a message naming the
 * scope, spend, limit and reset time, and stop refusing at the day or month
 * boundary; the soft alert fires once per period (audit row, counter); cost
 * math; usage reports grouped by user, model and day; the Prometheus text of
 * the qg_ai_* metrics.
 */
#include <criterion/criterion.h>

#include "ai/usage.h"
#include "auth/audit.h"
#include "store/batch.h"

#include <quantgate/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];
static qg_store *store;
static qg_conn *conn;

static void setup(void)
{
    qg_error err = {0};
    snprintf(dir, sizeof dir, "/tmp/qg_aiuse_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char url[400];
    snprintf(url, sizeof url, "sqlite://%s/t.db", dir);
    cr_assert_eq(qg_store_open(url, 2, true, &store, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_store_acquire(store, &conn, &err), QG_OK, "%s", err.msg);
    qg_ai_metrics_reset();
}

static void teardown(void)
{
    if (conn) qg_store_release(store, conn);
    if (store) qg_store_close(store);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static int64_t at(const char *iso)
{
    int64_t ms = 0;
    cr_assert_null(qg_time_parse_iso(iso, strlen(iso), &ms), "%s", iso);
    return ms;
}

/* A user and one of their API tokens, inserted directly. */
static void make_user(const char *uid, const char *tid)
{
    qg_error err = {0};
    qg_val u[] = {QG_VTEXT(uid), QG_VTEXT(uid)};
    cr_assert_eq(qg_conn_exec(conn,
                              "INSERT INTO users (id, email, password_hash, role, approved, "
                              "created_at, updated_at) VALUES (?, ? || '@example.com', 'x', "
                              "'developer', 1, 0, 0)",
                              u, 2, NULL, &err),
                 QG_OK, "%s", err.msg);
    if (!tid) return;
    qg_val t[] = {QG_VTEXT(tid), QG_VTEXT(uid), QG_VTEXT(tid)};
    cr_assert_eq(qg_conn_exec(conn,
                              "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, "
                              "scope, created_at) VALUES (?, ?, 'bot', 'qg_x', ?, 'write', 0)",
                              t, 3, NULL, &err),
                 QG_OK, "%s", err.msg);
}

static void record(const char *uid, const char *tid, const char *model, int64_t in, int64_t out,
                   double cost, const char *outcome, int64_t ts)
{
    qg_error err = {0};
    qg_ai_call_record r = {.user_id = uid,
                           .token_id = tid,
                           .model_name = model,
                           .deployment_id = "env-openai",
                           .provider = "openai",
                           .model = "gpt-4o-mini",
                           .usage = {.input = in, .output = out, .cached = in / 2},
                           .cost_usd = cost,
                           .latency_ms = 100,
                           .attempts = 1,
                           .outcome = outcome,
                           .ts_ms = ts};
    char id[QG_ID_MAX];
    cr_assert_eq(qg_ai_usage_record(conn, &r, id, sizeof id, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(strncmp(id, "call_", 5), 0, "%s", id);
}

typedef struct total {
    int64_t calls, tokens;
    double cost;
    bool found, alerted;
} total;

static qg_status row_total(void *ud, const qg_row *row)
{
    total *t = ud;
    t->calls = qg_row_int(row, 0);
    t->tokens = qg_row_int(row, 1);
    t->cost = qg_row_double(row, 2);
    t->alerted = qg_row_int(row, 3) != 0;
    t->found = true;
    return QG_OK;
}

static total get_total(const char *scope, const char *subject, const char *key)
{
    total t = {0};
    qg_error err = {0};
    qg_val p[] = {QG_VTEXT(scope), QG_VTEXT(subject), QG_VTEXT(key)};
    cr_assert_eq(qg_conn_query(conn,
                               "SELECT calls, tokens, cost, alerted FROM ai_usage_totals WHERE "
                               "scope = ? AND subject = ? AND period_key = ?",
                               p, 3, row_total, &t, &err),
                 QG_OK, "%s", err.msg);
    return t;
}

static void budget(const char *scope, const char *subject, const char *period, double max_cost,
                   int64_t max_tokens, double soft)
{
    qg_error err = {0};
    qg_ai_budget b = {0};
    snprintf(b.scope, sizeof b.scope, "%s", scope);
    snprintf(b.subject, sizeof b.subject, "%s", subject);
    snprintf(b.period, sizeof b.period, "%s", period);
    b.has_cost = max_cost >= 0;
    b.max_cost = max_cost;
    b.has_tokens = max_tokens >= 0;
    b.max_tokens = max_tokens;
    b.soft_pct = soft;
    cr_assert_eq(qg_ai_budget_put(conn, &b, NULL, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(strncmp(b.id, "bud_", 4), 0);
}

Test(ai_usage, periods_and_cost)
{
    char day[16], month[16];
    qg_ai_period_keys(at("2026-11-21T23:59:59.999Z"), day, sizeof day, month, sizeof month);
    cr_assert_str_eq(day, "2026-11-21");
    cr_assert_str_eq(month, "2026-11");
    cr_assert_eq(qg_ai_period_end(at("2026-11-21T10:00:00Z"), false), at("2026-11-22T00:00:00Z"));
    cr_assert_eq(qg_ai_period_end(at("2026-11-21T10:00:00Z"), true), at("2026-12-01T00:00:00Z"));
    cr_assert_eq(qg_ai_period_end(at("2026-12-31T23:00:00Z"), true), at("2027-01-01T00:00:00Z"));
    cr_assert_eq(qg_ai_period_end(at("2028-02-28T12:00:00Z"), false), at("2028-02-29T00:00:00Z"));
    qg_ai_deployment d = {.price_in = 2.5, .price_out = 10};
    qg_ai_usage u = {.input = 1000000, .output = 200000, .cached = 400000};
    cr_assert_float_eq(qg_ai_cost(&d, &u), 2.5 + 2.0, 1e-9); /* cached inside input */
    qg_ai_usage small = {.input = 1234, .output = 56};
    cr_assert_float_eq(qg_ai_cost(&d, &small), (1234 * 2.5 + 56 * 10) / 1e6, 1e-12);
    qg_ai_deployment free_dep = {0};
    cr_assert_float_eq(qg_ai_cost(&free_dep, &u), 0, 1e-12);
    qg_ai_usage neg = {.input = -5, .output = -1};
    cr_assert_float_eq(qg_ai_cost(&d, &neg), 0, 1e-12);
}

Test(ai_usage, record_writes_call_and_totals, .init = setup, .fini = teardown)
{
    make_user("usr_a", "tok_a");
    int64_t t = at("2026-11-21T10:00:00Z");
    record("usr_a", "tok_a", "analyst", 1000, 200, 0.5, "ok", t);
    record("usr_a", NULL, "fast", 10, 5, 0.25, "rate_limited", t + 1000);
    record(NULL, NULL, "analyst", 1, 1, 0, "ok", at("2026-11-22T00:00:00Z"));

    total g = get_total("global", "", "2026-11-21");
    cr_assert_eq(g.calls, 2);
    cr_assert_eq(g.tokens, 1215);
    cr_assert_float_eq(g.cost, 0.75, 1e-9);
    total gm = get_total("global", "", "2026-11");
    cr_assert_eq(gm.calls, 3);
    cr_assert_eq(gm.tokens, 1217);
    total ud = get_total("user", "usr_a", "2026-11-21");
    cr_assert_eq(ud.calls, 2);
    total um = get_total("user", "usr_a", "2026-11");
    cr_assert_eq(um.calls, 2);
    total td = get_total("token", "tok_a", "2026-11-21");
    cr_assert_eq(td.calls, 1);
    cr_assert_eq(td.tokens, 1200);
    cr_assert_float_eq(td.cost, 0.5, 1e-9);
    cr_assert(!get_total("user", "usr_a", "2026-11-22").found);
    cr_assert(get_total("global", "", "2026-11-22").found);

    /* the call row itself */
    total c = {0};
    qg_error err = {0};
    cr_assert_eq(qg_conn_query(conn,
                               "SELECT COUNT(*), SUM(input_tokens + output_tokens), SUM(cost), 0 "
                               "FROM ai_calls WHERE user_id = 'usr_a' AND deployment_id = "
                               "'env-openai' AND provider = 'openai' AND attempts = 1",
                               NULL, 0, row_total, &c, &err),
                 QG_OK, "%s", err.msg);
    cr_assert_eq(c.calls, 2);
    cr_assert_eq(c.tokens, 1215);
}

static void check_denied(const char *uid, const char *tid, int64_t now, const char *want)
{
    qg_error err = {0};
    cr_assert_eq(qg_ai_budget_check(conn, uid, tid, now, &err), QG_EDENIED, "allowed; want %s",
                 want);
    cr_assert_str_eq(err.msg, want);
}

static void check_ok(const char *uid, const char *tid, int64_t now)
{
    qg_error err = {0};
    cr_assert_eq(qg_ai_budget_check(conn, uid, tid, now, &err), QG_OK, "%s", err.msg);
}

Test(ai_usage, monthly_user_budget_refuses_and_resets, .init = setup, .fini = teardown)
{
    make_user("usr_a", "tok_a");
    make_user("usr_b", NULL);
    budget("user", "usr_a", "month", 5.0, -1, 0.8);
    int64_t t = at("2026-11-03T08:00:00Z");
    check_ok("usr_a", NULL, t);
    record("usr_a", NULL, "analyst", 100, 100, 4.99, "ok", t);
    check_ok("usr_a", NULL, t + 1);
    record("usr_a", "tok_a", "analyst", 100, 100, 0.03, "ok", t + 2);
    check_denied("usr_a", NULL, at("2026-11-21T10:00:00Z"),
                 "user budget exhausted: spent $5.02 of $5.00 this month; resets "
                 "2026-12-01T00:00:00Z");
    /* through the token too: the user's budget applies to all their calls */
    check_denied("usr_a", "tok_a", at("2026-11-30T23:59:59.999Z"),
                 "user budget exhausted: spent $5.02 of $5.00 this month; resets "
                 "2026-12-01T00:00:00Z");
    check_ok("usr_b", NULL, t + 3);
    check_ok(NULL, NULL, t + 3);
    /* a new month starts from zero */
    check_ok("usr_a", NULL, at("2026-12-01T00:00:00Z"));
}

Test(ai_usage, daily_token_and_global_budgets, .init = setup, .fini = teardown)
{
    make_user("usr_a", "tok_a");
    budget("token", "tok_a", "day", -1, 1000, 0.5);
    budget("global", "", "month", 100.0, -1, 0.9);
    int64_t t = at("2026-11-21T12:00:00Z");
    record("usr_a", "tok_a", "fast", 800, 200, 0.01, "ok", t);
    check_denied("usr_a", "tok_a", t + 5,
                 "token budget exhausted: used 1000 of 1000 tokens today; resets "
                 "2026-11-22T00:00:00Z");
    check_ok("usr_a", NULL, t + 5); /* the same user without that token */
    check_ok("usr_a", "tok_a", at("2026-11-22T00:00:00Z"));
    check_denied("usr_a", "tok_a", at("2026-11-21T23:59:59Z"),
                 "token budget exhausted: used 1000 of 1000 tokens today; resets "
                 "2026-11-22T00:00:00Z");

    /* the global budget blocks everyone and, resetting later, is the one
     * reported when both are exhausted */
    record(NULL, NULL, "analyst", 0, 0, 99.99, "ok", t + 10);
    check_denied(NULL, NULL, t + 20,
                 "global budget exhausted: spent $100.00 of $100.00 this month; resets "
                 "2026-12-01T00:00:00Z");
    check_denied("usr_a", "tok_a", t + 20,
                 "global budget exhausted: spent $100.00 of $100.00 this month; resets "
                 "2026-12-01T00:00:00Z");

    /* small limits print four decimals */
    make_user("usr_c", NULL);
    budget("user", "usr_c", "day", 0.002, -1, 0.8);
    record("usr_c", NULL, "fast", 1, 1, 0.0025, "ok", at("2026-10-01T00:00:00Z"));
    check_denied("usr_c", NULL, at("2026-10-01T05:00:00Z"),
                 "user budget exhausted: spent $0.0025 of $0.0020 today; resets "
                 "2026-10-02T00:00:00Z");

    qg_buf b;
    qg_buf_init(&b, 1 << 20);
    cr_assert_eq(qg_ai_metrics_render(&b), QG_OK);
    cr_assert_not_null(strstr(b.data, "qg_ai_budget_refusals_total 5\n"), "%s", b.data);
    qg_buf_free(&b);
}

static qg_status count_audit(void *ud, const qg_audit_entry *e)
{
    int *n = ud;
    if (!strcmp(e->action, "ai.budget.soft_limit")) (*n)++;
    return QG_OK;
}

static int soft_audits(void)
{
    int n = 0;
    qg_error err = {0};
    qg_audit_filter f = {.action = "ai.budget.soft_limit", .limit = 100};
    cr_assert_eq(qg_audit_query(conn, &f, count_audit, &n, &err), QG_OK, "%s", err.msg);
    return n;
}

Test(ai_usage, soft_alert_fires_once_per_period, .init = setup, .fini = teardown)
{
    make_user("usr_a", "tok_a");
    budget("user", "usr_a", "day", 1.0, -1, 0.5);
    int64_t t = at("2026-11-21T01:00:00Z");
    record("usr_a", NULL, "analyst", 1, 1, 0.3, "ok", t);
    cr_assert_eq(soft_audits(), 0);
    record("usr_a", NULL, "analyst", 1, 1, 0.3, "ok", t + 1); /* 0.6 >= 0.5 */
    cr_assert_eq(soft_audits(), 1);
    cr_assert(get_total("user", "usr_a", "2026-11-21").alerted);
    cr_assert(!get_total("user", "usr_a", "2026-11").alerted); /* no month budget */
    record("usr_a", NULL, "analyst", 1, 1, 0.3, "ok", t + 2);
    record("usr_a", NULL, "analyst", 1, 1, 0.5, "ok", t + 3); /* even past the hard limit */
    cr_assert_eq(soft_audits(), 1);
    /* the next day is a new period */
    record("usr_a", NULL, "analyst", 1, 1, 0.7, "ok", at("2026-11-22T01:00:00Z"));
    cr_assert_eq(soft_audits(), 2);

    qg_buf b;
    qg_buf_init(&b, 1 << 20);
    cr_assert_eq(qg_ai_metrics_render(&b), QG_OK);
    cr_assert_not_null(strstr(b.data, "qg_ai_budget_soft_alerts_total 2\n"), "%s", b.data);
    qg_buf_free(&b);
}

Test(ai_usage, a_batch_adds_each_total_once_and_alerts_once, .init = setup, .fini = teardown)
{
    make_user("usr_a", "tok_a");
    make_user("usr_b", "tok_b");
    budget("user", "usr_a", "day", 1.0, -1, 0.5);
    int64_t t = at("2026-11-21T23:59:59Z");
    /* Five calls in one batch: three of usr_a's (0.3 each, crossing the
     * soft limit together), one of usr_b's through a token, one the next
     * day (another day total, the same month). */
    qg_ai_call_record recs[5];
    const char *users[5] = {"usr_a", "usr_a", "usr_b", "usr_a", "usr_a"};
    const char *tokens[5] = {NULL, NULL, "tok_b", NULL, NULL};
    const int64_t when[5] = {t - 2000, t - 1000, t, t, t + 1000};
    const qg_ai_call_record *ptrs[5];
    char ids[5][QG_ID_MAX];
    for (int i = 0; i < 5; i++) {
        qg_store_new_id("call", ids[i], sizeof ids[i]);
        recs[i] = (qg_ai_call_record){.id = ids[i],
                                      .user_id = users[i],
                                      .token_id = tokens[i],
                                      .model_name = "analyst",
                                      .usage = {.input = 10 * (i + 1), .output = 1},
                                      .cost_usd = 0.3,
                                      .attempts = 1,
                                      .outcome = "ok",
                                      .ts_ms = when[i]};
        ptrs[i] = &recs[i];
    }
    qg_error err = {0};
    cr_assert_eq(qg_ai_usage_record_batch(conn, ptrs, 5, &err), QG_OK, "%s", err.msg);

    total ua = get_total("user", "usr_a", "2026-11-21");
    cr_assert_eq(ua.calls, 3);
    cr_assert_eq(ua.tokens, 11 + 21 + 41);
    cr_assert_float_eq(ua.cost, 0.9, 1e-9);
    cr_assert(ua.alerted);
    cr_assert_eq(soft_audits(), 1, "one alert for the batch that crossed the limit");
    cr_assert_eq(get_total("user", "usr_a", "2026-11-22").calls, 1);
    cr_assert_eq(get_total("user", "usr_a", "2026-11").calls, 4);
    cr_assert_eq(get_total("user", "usr_b", "2026-11-21").calls, 1);
    total tb = get_total("token", "tok_b", "2026-11-21");
    cr_assert_eq(tb.calls, 1);
    cr_assert_eq(tb.tokens, 31);
    cr_assert_eq(get_total("global", "", "2026-11-21").calls, 4);
    cr_assert_eq(get_total("global", "", "2026-11-22").calls, 1);
    total gm = get_total("global", "", "2026-11");
    cr_assert_eq(gm.calls, 5);
    cr_assert_eq(gm.tokens, 11 + 21 + 31 + 41 + 51);
    cr_assert_float_eq(gm.cost, 1.5, 1e-9);
}

static qg_status count_row(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_int(row, 0);
    return QG_OK;
}

static int64_t calls_with_id(const char *id)
{
    int64_t n = -1;
    qg_error err = {0};
    qg_val p[] = {QG_VTEXT(id)};
    cr_assert_eq(qg_conn_query(conn, "SELECT COUNT(*) FROM ai_calls WHERE id = ?", p, 1, count_row,
                               &n, &err),
                 QG_OK, "%s", err.msg);
    return n;
}

/* Through the group-commit batcher (the signal writer's, in the server): a
 * batch lands whole, with its totals and one soft alert; a batch with a
 * failing record leaves nothing behind (its savepoint), and the batcher
 * goes on. */
Test(ai_usage, records_through_the_batcher_land_whole_or_not_at_all, .init = setup,
     .fini = teardown)
{
    make_user("usr_a", NULL);
    budget("user", "usr_a", "day", 1.0, -1, 0.5);
    qg_error err = {0};
    qg_batcher *b = NULL;
    cr_assert_eq(qg_batcher_new(store, "t-usage", 0, 0, QG_BATCH_SYNC_PIPELINED, &b, &err), QG_OK,
                 "%s", err.msg);
    int64_t t = at("2026-11-21T12:00:00Z");
    char ids[3][QG_ID_MAX];
    qg_ai_call_record recs[3];
    const qg_ai_call_record *ptrs[3];
    for (int i = 0; i < 3; i++) {
        qg_store_new_id("call", ids[i], sizeof ids[i]);
        recs[i] = (qg_ai_call_record){.id = ids[i],
                                      .user_id = "usr_a",
                                      .model_name = "analyst",
                                      .usage = {.input = 10, .output = 2},
                                      .cost_usd = 0.2,
                                      .attempts = 1,
                                      .outcome = "ok",
                                      .ts_ms = t + i};
        ptrs[i] = &recs[i];
    }
    cr_assert_eq(qg_ai_usage_record_via(b, ptrs, 2, &err), QG_OK, "%s", err.msg);
    total ua = get_total("user", "usr_a", "2026-11-21");
    cr_assert_eq(ua.calls, 2);
    cr_assert_eq(ua.tokens, 24);
    cr_assert(!ua.alerted, "0.4 of 1.0 is below the soft 50%%");

    /* the third record and a repeat of the first (its id is taken) */
    const qg_ai_call_record *bad[2] = {&recs[2], &recs[0]};
    cr_assert_neq(qg_ai_usage_record_via(b, bad, 2, &err), QG_OK);
    cr_assert_eq(calls_with_id(ids[2]), 0, "the batch's first write was undone");
    ua = get_total("user", "usr_a", "2026-11-21");
    cr_assert_eq(ua.calls, 2);
    cr_assert(!ua.alerted);
    cr_assert_eq(soft_audits(), 0);

    qg_error_clear(&err);
    cr_assert_eq(qg_ai_usage_record_via(b, &ptrs[2], 1, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(calls_with_id(ids[2]), 1);
    ua = get_total("user", "usr_a", "2026-11-21");
    cr_assert_eq(ua.calls, 3);
    cr_assert(ua.alerted);
    cr_assert_eq(soft_audits(), 1);
    qg_batcher_free(b);
}

typedef struct listed {
    int n;
    qg_ai_budget b[8];
} listed;

static qg_status collect_budget(void *ud, const qg_ai_budget *b)
{
    listed *l = ud;
    if (l->n < 8) l->b[l->n] = *b;
    l->n++;
    return QG_OK;
}

Test(ai_usage, budget_put_list_delete, .init = setup, .fini = teardown)
{
    make_user("usr_a", "tok_a");
    make_user("usr_b", "tok_b");
    qg_error err = {0};
    qg_ai_budget b = {.scope = "user",
                      .subject = "nobody",
                      .period = "day",
                      .has_cost = true,
                      .max_cost = 1,
                      .soft_pct = 0.8};
    cr_assert_eq(qg_ai_budget_put(conn, &b, NULL, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "subject: no user with id 'nobody'");
    b = (qg_ai_budget){.scope = "planet", .period = "day", .has_cost = true, .soft_pct = 0.8};
    cr_assert_eq(qg_ai_budget_put(conn, &b, NULL, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "scope"), "%s", err.msg);
    b = (qg_ai_budget){.scope = "global", .period = "week", .has_cost = true, .soft_pct = 0.8};
    cr_assert_eq(qg_ai_budget_put(conn, &b, NULL, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "period"), "%s", err.msg);
    b = (qg_ai_budget){.scope = "global", .period = "day", .soft_pct = 0.8};
    cr_assert_eq(qg_ai_budget_put(conn, &b, NULL, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "max_cost, max_tokens"), "%s", err.msg);
    b = (qg_ai_budget){.scope = "global", .period = "day", .has_cost = true, .soft_pct = 80};
    cr_assert_eq(qg_ai_budget_put(conn, &b, NULL, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "soft_pct"), "%s", err.msg);
    b = (qg_ai_budget){
        .scope = "global", .subject = "x", .period = "day", .has_cost = true, .soft_pct = 0.8};
    cr_assert_eq(qg_ai_budget_put(conn, &b, NULL, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "subject"), "%s", err.msg);

    budget("global", "", "month", 50, -1, 0.8);
    budget("user", "usr_a", "day", 2, 1000, 0.8);
    budget("token", "tok_a", "month", -1, 5000, 0.8);
    budget("token", "tok_b", "month", -1, 5000, 0.8);
    budget("user", "usr_b", "month", 3, -1, 0.8);
    /* the same (scope, subject, period) replaces */
    bool created = true;
    b = (qg_ai_budget){.scope = "user",
                       .subject = "usr_a",
                       .period = "day",
                       .has_cost = true,
                       .max_cost = 4,
                       .soft_pct = 0.9};
    cr_assert_eq(qg_ai_budget_put(conn, &b, &created, &err), QG_OK, "%s", err.msg);
    cr_assert(!created);
    record("usr_a", "tok_a", "analyst", 30, 20, 1.25, "ok", 0);

    listed all = {0};
    cr_assert_eq(qg_ai_budget_list(conn, NULL, 0, collect_budget, &all, &err), QG_OK, "%s",
                 err.msg);
    cr_assert_eq(all.n, 5);
    listed mine = {0};
    cr_assert_eq(qg_ai_budget_list(conn, "usr_a", 0, collect_budget, &mine, &err), QG_OK, "%s",
                 err.msg);
    cr_assert_eq(mine.n, 3); /* global, usr_a's, tok_a's */
    for (int i = 0; i < mine.n; i++) {
        qg_ai_budget *x = &mine.b[i];
        cr_assert(strcmp(x->subject, "usr_b") && strcmp(x->subject, "tok_b"), "%s", x->subject);
        if (!strcmp(x->scope, "user")) {
            cr_assert_float_eq(x->max_cost, 4, 1e-9);
            cr_assert(!x->has_tokens);
            cr_assert_float_eq(x->soft_pct, 0.9, 1e-9);
            cr_assert_float_eq(x->spent_cost, 1.25, 1e-9);
            cr_assert_eq(x->calls, 1);
            cr_assert_eq(x->resets_at, qg_ai_period_end(qg_time_now_ms(), false));
            cr_assert_eq(strlen(x->period_key), 10);
            cr_assert_str_eq(x->id, b.id);
        } else if (!strcmp(x->scope, "token")) {
            cr_assert_eq(x->spent_tokens, 50);
            cr_assert(!x->has_cost);
            cr_assert_eq(strlen(x->period_key), 7);
        }
    }
    cr_assert_eq(qg_ai_budget_delete(conn, b.id, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_ai_budget_delete(conn, b.id, &err), QG_ENOTFOUND);
}

typedef struct rows {
    int n;
    qg_ai_usage_row r[16];
    char users[16][40], models[16][64];
} rows;

static qg_status collect_row(void *ud, const qg_ai_usage_row *row)
{
    rows *l = ud;
    if (l->n >= 16) return QG_ERANGE;
    l->r[l->n] = *row;
    snprintf(l->users[l->n], 40, "%s", row->user_id ? row->user_id : "-");
    snprintf(l->models[l->n], 64, "%s", row->model ? row->model : "-");
    l->n++;
    return QG_OK;
}

Test(ai_usage, usage_report_groups, .init = setup, .fini = teardown)
{
    make_user("usr_a", NULL);
    make_user("usr_b", NULL);
    int64_t d1 = at("2026-11-20T10:00:00Z"), d2 = at("2026-11-21T10:00:00Z");
    record("usr_a", NULL, "analyst", 100, 10, 0.1, "ok", d1);
    record("usr_a", NULL, "analyst", 200, 20, 0.2, "timeout", d2);
    record("usr_a", NULL, "fast", 10, 1, 0.01, "ok", d2);
    record("usr_b", NULL, "analyst", 1000, 100, 1.0, "ok", d2);
    qg_error err = {0};

    rows tot = {0};
    qg_ai_usage_query q = {0};
    cr_assert_eq(qg_ai_usage_query_run(conn, &q, collect_row, &tot, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(tot.n, 1);
    cr_assert_eq(tot.r[0].calls, 4);
    cr_assert_eq(tot.r[0].failures, 1);
    cr_assert_eq(tot.r[0].input_tokens, 1310);
    cr_assert_eq(tot.r[0].output_tokens, 131);
    cr_assert_eq(tot.r[0].cached_tokens, 50 + 100 + 5 + 500);
    cr_assert_float_eq(tot.r[0].cost_usd, 1.31, 1e-9);
    cr_assert_float_eq(tot.r[0].avg_latency_ms, 100, 1e-9);

    rows g = {0};
    q = (qg_ai_usage_query){.by_user = true, .by_model = true};
    cr_assert_eq(qg_ai_usage_query_run(conn, &q, collect_row, &g, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(g.n, 3);
    cr_assert_str_eq(g.users[0], "usr_a");
    cr_assert_str_eq(g.models[0], "analyst");
    cr_assert_eq(g.r[0].calls, 2);
    cr_assert_eq(g.r[0].failures, 1);
    cr_assert_str_eq(g.models[1], "fast");
    cr_assert_str_eq(g.users[2], "usr_b");
    cr_assert_str_eq(g.r[0].day, "");

    rows byday = {0};
    q = (qg_ai_usage_query){.by_day = true, .user_id = "usr_a"};
    cr_assert_eq(qg_ai_usage_query_run(conn, &q, collect_row, &byday, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(byday.n, 2);
    cr_assert_str_eq(byday.r[0].day, "2026-11-20");
    cr_assert_eq(byday.r[0].calls, 1);
    cr_assert_str_eq(byday.r[1].day, "2026-11-21");
    cr_assert_eq(byday.r[1].calls, 2);
    cr_assert_str_eq(byday.users[0], "-"); /* not grouped by user */

    rows filtered = {0};
    q = (qg_ai_usage_query){.from = d2, .to = d2, .model = "analyst", .by_user = true};
    cr_assert_eq(qg_ai_usage_query_run(conn, &q, collect_row, &filtered, &err), QG_OK, "%s",
                 err.msg);
    cr_assert_eq(filtered.n, 2);
    cr_assert_eq(filtered.r[0].calls + filtered.r[1].calls, 2);

    rows none = {0};
    q = (qg_ai_usage_query){.user_id = "usr_zzz"};
    cr_assert_eq(qg_ai_usage_query_run(conn, &q, collect_row, &none, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(none.n, 1);
    cr_assert_eq(none.r[0].calls, 0);
    cr_assert_float_eq(none.r[0].cost_usd, 0, 1e-12);
}

Test(ai_usage, metrics_render_prometheus_text, .init = qg_ai_metrics_reset)
{
    qg_ai_call_record r = {.model_name = "analyst",
                           .provider = "openai",
                           .usage = {.input = 100, .output = 20, .cached = 40},
                           .cost_usd = 0.25,
                           .latency_ms = 300,
                           .outcome = "ok"};
    qg_ai_metrics_observe(&r, 400);
    qg_ai_metrics_observe(&r, 2000);
    r.outcome = "rate_limited";
    r.latency_ms = 70000;
    qg_ai_metrics_observe(&r, 20);
    qg_ai_call_record q = {.model_name = "we\"ird", .outcome = "ok"};
    qg_ai_metrics_observe(&q, 0);

    qg_buf b;
    qg_buf_init(&b, 1 << 20);
    cr_assert_eq(qg_ai_metrics_render(&b), QG_OK);
    const char *want[] = {
        "# TYPE qg_ai_calls_total counter\n",
        "qg_ai_calls_total{model=\"analyst\",provider=\"openai\",outcome=\"ok\"} 2\n",
        "qg_ai_calls_total{model=\"analyst\",provider=\"openai\",outcome=\"rate_limited\"} 1\n",
        "qg_ai_calls_total{model=\"we\\\"ird\",provider=\"none\",outcome=\"ok\"} 1\n",
        "qg_ai_tokens_total{model=\"analyst\",kind=\"input\"} 300\n",
        "qg_ai_tokens_total{model=\"analyst\",kind=\"output\"} 60\n",
        "qg_ai_tokens_total{model=\"analyst\",kind=\"cached\"} 120\n",
        "qg_ai_cost_usd_total{model=\"analyst\"} 0.750000\n",
        "# TYPE qg_ai_call_duration_seconds histogram\n",
        "qg_ai_call_duration_seconds_bucket{model=\"analyst\",le=\"0.25\"} 0\n",
        "qg_ai_call_duration_seconds_bucket{model=\"analyst\",le=\"0.5\"} 2\n",
        "qg_ai_call_duration_seconds_bucket{model=\"analyst\",le=\"60\"} 2\n",
        "qg_ai_call_duration_seconds_bucket{model=\"analyst\",le=\"120\"} 3\n",
        "qg_ai_call_duration_seconds_bucket{model=\"analyst\",le=\"+Inf\"} 3\n",
        "qg_ai_call_duration_seconds_count{model=\"analyst\"} 3\n",
        "qg_ai_call_duration_seconds_sum{model=\"analyst\"} 70.600000\n",
        "# TYPE qg_ai_overhead_seconds histogram\n",
        "qg_ai_overhead_seconds_bucket{le=\"0.00001\"} 1\n",
        "qg_ai_overhead_seconds_bucket{le=\"0.000025\"} 2\n",
        "qg_ai_overhead_seconds_bucket{le=\"0.0005\"} 3\n",
        "qg_ai_overhead_seconds_bucket{le=\"0.001\"} 3\n",
        "qg_ai_overhead_seconds_bucket{le=\"0.0025\"} 4\n",
        "qg_ai_overhead_seconds_bucket{le=\"+Inf\"} 4\n",
        "qg_ai_overhead_seconds_sum 0.002420\n",
        "qg_ai_overhead_seconds_count 4\n",
        "qg_ai_budget_refusals_total 0\n",
        "qg_ai_budget_soft_alerts_total 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_not_null(strstr(b.data, want[i]), "missing %s in\n%s", want[i], b.data);
    /* every line is a comment or "name{labels} value" */
    for (char *line = b.data; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        cr_assert(line[0] == '#' || !strncmp(line, "qg_ai_", 6), "%.*s", (int)(nl - line), line);
        line = nl + 1;
    }
    qg_buf_free(&b);
}
