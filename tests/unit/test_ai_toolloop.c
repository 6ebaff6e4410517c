/*
 * test_ai_toolloop.c - the tool-calling loop against scripted model
 * answers (the loop's `complete` hook, so no provider or network is
 * involved): several steps, what the model sees between steps, unknown
 * tools and failing executors turned into results, repaired arguments, the
 * step limit, the token budget, a failing model call, the corrective turn
 * for the expected shape, and every step stored in ai_steps of a real
 * SQLite file.
 */
#include <criterion/criterion.h>

#include "ai/toolloop.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the scripted model ---- */

typedef struct scripted_step {
    const char *text;
    const char *calls[4][2]; /* name, arguments */
    int ncalls;
    int64_t in, out;
    qg_status fail; /* non-zero: the call fails with this */
} scripted_step;

typedef struct script {
    const scripted_step *steps;
    int n;
    int at;
    int repeat_last; /* keep answering with the last step */
    /* what the model was sent on each call */
    size_t seen_messages[16];
    const qg_ai_msg *seen[16];
} script;

static script *cur;

static qg_status scripted_complete(qg_ai *ai, const qg_ai_call *call, qg_arena *a,
                                   qg_ai_result *out, qg_error *err)
{
    (void)ai;
    cr_assert_not_null(cur);
    int i = cur->at < cur->n ? cur->at : (cur->repeat_last ? cur->n - 1 : -1);
    cr_assert_geq(i, 0, "the model was called more often than scripted");
    if (cur->at < 16) {
        cur->seen_messages[cur->at] = call->req.n_messages;
        cur->seen[cur->at] = call->req.messages;
    }
    cur->at++;
    const scripted_step *s = &cur->steps[i];
    memset(out, 0, sizeof *out);
    out->model_name = "analyst";
    out->deployment_id = "dep_test";
    snprintf(out->call_id, sizeof out->call_id, "aic_%d", cur->at);
    if (s->fail) {
        out->resp.error.kind = QG_AI_ESERVER;
        return qg_error_set(err, s->fail, "providers failed: server_error");
    }
    out->resp.text = s->text ? s->text : "";
    out->resp.usage.input = s->in;
    out->resp.usage.output = s->out;
    out->cost_usd = 0.001;
    if (s->ncalls) {
        qg_ai_tool_call *tc = qg_arena_alloc(a, sizeof *tc * (size_t)s->ncalls);
        for (int k = 0; k < s->ncalls; k++) {
            tc[k].id = qg_arena_sprintf(a, "call_%d_%d", cur->at, k);
            tc[k].name = s->calls[k][0];
            tc[k].arguments = s->calls[k][1];
        }
        out->resp.tool_calls = tc;
        out->resp.n_tool_calls = (size_t)s->ncalls;
        out->resp.finish_reason = "tool_calls";
    } else {
        out->resp.finish_reason = "stop";
    }
    return QG_OK;
}

/* ---- tools ---- */

typedef struct exec_log {
    int calls;
    char last_args[256];
} exec_log;

static qg_status exec_tool(void *ud, const qg_ai_tool_call *call, qg_arena *a, const char **result)
{
    exec_log *log = ud;
    log->calls++;
    snprintf(log->last_args, sizeof log->last_args, "%s", call->arguments);
    if (!strcmp(call->name, "get_price")) {
        *result = qg_arena_sprintf(a, "{\"price\":1.0865,\"args\":%s}", call->arguments);
        return QG_OK;
    }
    if (!strcmp(call->name, "get_balance")) {
        *result = "{\"balance\":10000}";
        return QG_OK;
    }
    if (!strcmp(call->name, "place_order")) {
        *result = "{\"order_id\":\"o1\",\"status\":\"filled\"}";
        return QG_OK;
    }
    *result = "broker unreachable";
    return QG_EIO;
}

static const qg_ai_tool tools[] = {
    {"get_price", "Last price of a symbol", "{\"type\":\"object\"}"},
    {"get_balance", "Account balance", "{\"type\":\"object\"}"},
    {"place_order", "Place a paper order", "{\"type\":\"object\"}"},
    {"flaky", "Always fails", "{\"type\":\"object\"}"},
};

static const qg_ai_msg first_msg[] = {{.role = QG_AI_ROLE_USER, .content = "Buy EURUSD if sane"}};

static qg_ai_toolloop base_cfg(exec_log *log)
{
    qg_ai_toolloop cfg = {0};
    cfg.base.user_id = "usr_1";
    cfg.base.model = "analyst";
    cfg.base.req.system = "You are a careful trader.";
    cfg.base.req.messages = first_msg;
    cfg.base.req.n_messages = 1;
    cfg.base.req.tools = tools;
    cfg.base.req.n_tools = sizeof tools / sizeof tools[0];
    cfg.base.req.temperature = -1;
    cfg.exec = exec_tool;
    cfg.exec_ud = log;
    cfg.complete = scripted_complete;
    return cfg;
}

static const scripted_step three_steps[] = {
    {.text = "Let me look.",
     .calls = {{"get_price", "{\"symbol\":\"EURUSD\"}"}, {"get_balance", "{}"}},
     .ncalls = 2,
     .in = 100,
     .out = 20},
    {.calls = {{"place_order", "{\"symbol\":\"EURUSD\",\"side\":\"buy\",\"qty\":1000}"}},
     .ncalls = 1,
     .in = 180,
     .out = 15},
    {.text = "Bought 1000 EURUSD at 1.0865.", .in = 220, .out = 12},
};

Test(ai_toolloop, multi_step_to_an_answer)
{
    script sc = {.steps = three_steps, .n = 3};
    cur = &sc;
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(out.text, "Bought 1000 EURUSD at 1.0865.");
    cr_assert_str_eq(out.stop_reason, "answer");
    cr_assert_eq(out.steps, 3);
    cr_assert_eq(out.tool_calls, 3);
    cr_assert_eq(out.tool_errors, 0);
    cr_assert_eq(log.calls, 3);
    cr_assert_eq(out.usage.input, 500);
    cr_assert_eq(out.usage.output, 47);
    cr_assert_float_eq(out.cost_usd, 0.003, 1e-12);
    cr_assert_str_eq(out.run_id, ""); /* no database */

    /* what the model saw: 1, then 1 + assistant + 2 results, then + 1 + 1 */
    cr_assert_eq(sc.seen_messages[0], 1);
    cr_assert_eq(sc.seen_messages[1], 4);
    cr_assert_eq(sc.seen_messages[2], 6);
    const qg_ai_msg *m = sc.seen[1];
    cr_assert_eq(m[1].role, QG_AI_ROLE_ASSISTANT);
    cr_assert_eq(m[1].n_tool_calls, 2);
    cr_assert_str_eq(m[1].content, "Let me look.");
    cr_assert_eq(m[2].role, QG_AI_ROLE_TOOL);
    cr_assert_str_eq(m[2].tool_call_id, m[1].tool_calls[0].id);
    cr_assert_str_eq(m[2].tool_name, "get_price");
    cr_assert(strstr(m[2].content, "\"price\":1.0865"), "%s", m[2].content);
    cr_assert_str_eq(m[3].tool_call_id, m[1].tool_calls[1].id);
    cr_assert_str_eq(m[3].content, "{\"balance\":10000}");

    /* the transcript ends with the answer */
    cr_assert_eq(out.n_messages, 7);
    cr_assert_eq(out.messages[6].role, QG_AI_ROLE_ASSISTANT);
    cr_assert_str_eq(out.messages[6].content, out.text);
    qg_arena_free(&a);
}

/* Unknown tool, failing executor, repairable and broken arguments: all
 * become results the model can read, and the loop goes on. */
Test(ai_toolloop, tool_errors_become_results)
{
    static const scripted_step steps[] = {
        {.calls = {{"nope", "{}"},
                   {"flaky", "{}"},
                   {"get_price", "{symbol: 'GBPUSD',}"},
                   {"get_price", "not json at all"}},
         .ncalls = 4,
         .in = 10,
         .out = 10},
        {.text = "Sorry, the tools failed.", .in = 10, .out = 5},
    };
    script sc = {.steps = steps, .n = 2};
    cur = &sc;
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(out.tool_calls, 4);
    cr_assert_eq(out.tool_errors, 3);
    cr_assert_eq(log.calls, 2); /* flaky and the repaired get_price */
    const qg_ai_msg *m = sc.seen[1];
    cr_assert_eq(sc.seen_messages[1], 6);
    cr_assert(strstr(m[2].content, "unknown tool 'nope'"), "%s", m[2].content);
    cr_assert(strstr(m[2].content, "get_price, get_balance, place_order, flaky"), "%s",
              m[2].content);
    cr_assert_str_eq(m[3].content, "{\"error\":\"tool 'flaky' failed: broker unreachable\"}");
    cr_assert(strstr(m[4].content, "\"args\":{\"symbol\":\"GBPUSD\"}"), "%s", m[4].content);
    cr_assert(strstr(m[5].content, "not valid JSON"), "%s", m[5].content);
    /* every result is JSON the model can parse */
    for (int i = 2; i < 6; i++) {
        cJSON *v = cJSON_Parse(m[i].content);
        cr_assert_not_null(v, "%s", m[i].content);
        cJSON_Delete(v);
    }
    qg_arena_free(&a);
}

Test(ai_toolloop, step_limit)
{
    static const scripted_step steps[] = {
        {.calls = {{"get_balance", "{}"}}, .ncalls = 1, .in = 5, .out = 5}};
    script sc = {.steps = steps, .n = 1, .repeat_last = 1};
    cur = &sc;
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    cfg.max_steps = 3;
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_ERANGE);
    cr_assert_str_eq(out.stop_reason, "step_limit");
    cr_assert_eq(out.steps, 3);
    cr_assert_eq(log.calls, 2); /* the third call's tools are not run: no model to read them */
    cr_assert(strstr(err.msg, "step limit 3"), "%s", err.msg);
    cr_assert_str_eq(out.text, "");
    qg_arena_free(&a);
}

Test(ai_toolloop, token_budget)
{
    static const scripted_step steps[] = {
        {.calls = {{"get_balance", "{}"}}, .ncalls = 1, .in = 600, .out = 100}};
    script sc = {.steps = steps, .n = 1, .repeat_last = 1};
    cur = &sc;
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    cfg.max_total_tokens = 1000;
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_ERANGE);
    cr_assert_str_eq(out.stop_reason, "token_budget");
    cr_assert_eq(out.steps, 2);
    cr_assert_eq(out.usage.input + out.usage.output, 1400);
    cr_assert(strstr(err.msg, "token budget 1000"), "%s", err.msg);
    qg_arena_free(&a);
}

Test(ai_toolloop, model_failure_stops_with_its_status)
{
    static const scripted_step steps[] = {
        {.calls = {{"get_balance", "{}"}}, .ncalls = 1, .in = 5, .out = 5},
        {.fail = QG_EAGAIN},
    };
    script sc = {.steps = steps, .n = 2};
    cur = &sc;
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_EAGAIN);
    cr_assert_str_eq(out.stop_reason, "error");
    cr_assert(strstr(err.msg, "step 2"), "%s", err.msg);
    cr_assert_eq(out.n_messages, 3); /* user, assistant with the call, its result */
    qg_arena_free(&a);
}

Test(ai_toolloop, template_and_bad_limits_refused)
{
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    cfg.base.template_id = "agent.trader";
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "template_id"), "%s", err.msg);
    cfg.base.template_id = NULL;
    cfg.max_steps = -1;
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_EINVAL);
    qg_arena_free(&a);
}

#define SHAPE                                                                                      \
    "{\"type\":\"object\",\"required\":[\"action\"],\"properties\":{\"action\":{\"enum\":["        \
    "\"buy\",\"sell\",\"hold\"]}}}"

Test(ai_toolloop, expected_shape_gets_one_corrective_turn)
{
    static const scripted_step steps[] = {
        {.text = "I would buy.", .in = 5, .out = 5},
        {.text = "```json\n{'action': 'buy',}\n```", .in = 5, .out = 5},
    };
    script sc = {.steps = steps, .n = 2};
    cur = &sc;
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    cfg.base.expect_shape = SHAPE;
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(out.last.json, "{\"action\":\"buy\"}");
    cr_assert_eq(sc.seen_messages[1], 3);
    cr_assert(strstr(sc.seen[1][2].content, "no JSON object"), "%s", sc.seen[1][2].content);

    static const scripted_step bad[] = {
        {.text = "{\"action\":\"moon\"}", .in = 5, .out = 5},
    };
    script sc2 = {.steps = bad, .n = 1, .repeat_last = 1};
    cur = &sc2;
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_EINVAL);
    cr_assert_str_eq(out.stop_reason, "invalid_output");
    cr_assert(strstr(err.msg, "$.action: \"moon\" is not one of buy, sell, hold"), "%s", err.msg);
    cr_assert_eq(out.steps, 2);
    qg_arena_free(&a);
}

/* ---- persistence ---- */

static char tmpdir[64];
static qg_store *store;
static qg_conn *conn;

static void db_setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qg_toolloop_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    char url[128];
    snprintf(url, sizeof url, "sqlite://%s/q.db", tmpdir);
    qg_error err = {0};
    cr_assert_eq(qg_store_open(url, 2, true, &store, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_store_acquire(store, &conn, &err), QG_OK, "%s", err.msg);
}

static void db_teardown(void)
{
    qg_store_release(store, conn);
    qg_store_close(store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

typedef struct rows {
    int n;
    char kinds[32][16];
    char names[32][32];
    char call_ids[32][16];
    int64_t seq[32], in[32], out[32];
    char content[32][160];
} rows;

static qg_status collect(void *ud, const qg_row *r)
{
    rows *rs = ud;
    if (rs->n >= 32) return QG_ERANGE;
    int i = rs->n++;
    rs->seq[i] = qg_row_int(r, 0);
    snprintf(rs->kinds[i], sizeof rs->kinds[i], "%s", qg_row_text(r, 1));
    snprintf(rs->names[i], sizeof rs->names[i], "%s",
             qg_row_is_null(r, 2) ? "-" : qg_row_text(r, 2));
    snprintf(rs->content[i], sizeof rs->content[i], "%s", qg_row_text(r, 3));
    rs->in[i] = qg_row_int(r, 4);
    rs->out[i] = qg_row_int(r, 5);
    snprintf(rs->call_ids[i], sizeof rs->call_ids[i], "%s",
             qg_row_is_null(r, 6) ? "-" : qg_row_text(r, 6));
    return QG_OK;
}

static void load_steps(const char *run_id, rows *rs)
{
    memset(rs, 0, sizeof *rs);
    qg_error err = {0};
    const qg_val p[] = {QG_VTEXT(run_id)};
    cr_assert_eq(qg_conn_query(conn,
                               "SELECT seq, kind, name, content, input_tokens, output_tokens, "
                               "call_id FROM ai_steps WHERE run_id = ? ORDER BY seq",
                               p, 1, collect, rs, &err),
                 QG_OK, "%s", err.msg);
}

Test(ai_toolloop, steps_are_stored, .init = db_setup, .fini = db_teardown)
{
    script sc = {.steps = three_steps, .n = 3};
    cur = &sc;
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    cfg.db = conn;
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_OK, "%s", err.msg);
    cr_assert(!strncmp(out.run_id, "run_", 4), "%s", out.run_id);
    rows rs;
    load_steps(out.run_id, &rs);
    static const char *const want[] = {"request",     "tool_call", "tool_result", "tool_call",
                                       "tool_result", "request",   "tool_call",   "tool_result",
                                       "request",     "answer"};
    cr_assert_eq(rs.n, 10);
    for (int i = 0; i < 10; i++) {
        cr_assert_str_eq(rs.kinds[i], want[i], "row %d", i);
        cr_assert_eq(rs.seq[i], i + 1);
    }
    cr_assert_str_eq(rs.names[0], "dep_test");
    cr_assert_eq(rs.in[0], 100);
    cr_assert_eq(rs.out[0], 20);
    cr_assert_str_eq(rs.call_ids[0], "aic_1");
    cr_assert(strstr(rs.content[0], "\"tool_calls\":[\"get_price\",\"get_balance\"]"), "%s",
              rs.content[0]);
    cr_assert_str_eq(rs.names[1], "get_price");
    cr_assert_str_eq(rs.content[1], "{\"symbol\":\"EURUSD\"}");
    cr_assert_str_eq(rs.call_ids[1], "aic_1");
    cr_assert_str_eq(rs.content[4], "{\"balance\":10000}");
    cr_assert_str_eq(rs.names[6], "place_order");
    cr_assert_str_eq(rs.call_ids[6], "aic_2");
    cr_assert_eq(rs.in[8], 220);
    cr_assert_str_eq(rs.content[9], "Bought 1000 EURUSD at 1.0865.");
    cr_assert_str_eq(rs.call_ids[9], "aic_3");
    qg_arena_free(&a);
}

/* A stopped run keeps a stop row; a given run id continues its sequence. */
Test(ai_toolloop, stop_is_stored_and_run_ids_continue, .init = db_setup, .fini = db_teardown)
{
    static const scripted_step steps[] = {
        {.calls = {{"get_balance", "{}"}}, .ncalls = 1, .in = 5, .out = 5}};
    script sc = {.steps = steps, .n = 1, .repeat_last = 1};
    cur = &sc;
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    cfg.db = conn;
    cfg.run_id = "run_fixed";
    cfg.max_steps = 1;
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_ERANGE);
    rows rs;
    load_steps("run_fixed", &rs);
    cr_assert_eq(rs.n, 2);
    cr_assert_str_eq(rs.kinds[1], "stop");
    cr_assert_str_eq(rs.names[1], "step_limit");
    cr_assert(strstr(rs.content[1], "step limit 1"), "%s", rs.content[1]);
    /* again under the same id: seq continues at 3 */
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_ERANGE);
    load_steps("run_fixed", &rs);
    cr_assert_eq(rs.n, 4);
    cr_assert_eq(rs.seq[3], 4);
    qg_arena_free(&a);
}

/* ---- GET /api/ai/runs/{id} ---- */

#include "http/app.h"
#include "http/handlers.h"

static qg_app runs_app;

static void runs_setup(void)
{
    db_setup();
    memset(&runs_app, 0, sizeof runs_app);
    runs_app.store = store;
}

static int get_run(const char *id, const char *user_id, qg_role role, cJSON **body)
{
    qg_req r;
    memset(&r, 0, sizeof r);
    r.app = &runs_app;
    qg_arena_init(&r.arena, 4096);
    qg_buf_init(&r.out, 1 << 20);
    r.method = QG_GET;
    r.path = "/api/ai/runs/x";
    r.query = "";
    r.body = "";
    r.request_id = "rid-test";
    r.param[0] = id;
    r.nparam = 1;
    r.who.authenticated = true;
    snprintf(r.who.user.id, sizeof r.who.user.id, "%s", user_id);
    r.who.user.role = role;
    qg_h_ai_runs_get(&r);
    int status = r.status;
    *body = cJSON_Parse(r.out.len ? r.out.data : "null");
    if (r.db) qg_store_release(store, r.db);
    qg_buf_free(&r.out);
    qg_arena_free(&r.arena);
    return status;
}

Test(ai_toolloop, runs_endpoint_shows_the_owner_their_steps, .init = runs_setup,
     .fini = db_teardown)
{
    /* the usage records of the scripted calls, owned by usr_1 */
    for (int i = 1; i <= 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "aic_%d", i);
        const qg_val p[] = {QG_VTEXT(id), QG_VTEXT("usr_1")};
        qg_error err = {0};
        cr_assert_eq(qg_conn_exec(conn,
                                  "INSERT INTO ai_calls (id, ts, user_id, model_name, outcome) "
                                  "VALUES (?, 0, ?, 'analyst', 'ok')",
                                  p, 2, NULL, &err),
                     QG_OK, "%s", err.msg);
    }
    script sc = {.steps = three_steps, .n = 3};
    cur = &sc;
    exec_log log = {0};
    qg_ai_toolloop cfg = base_cfg(&log);
    cfg.db = conn;
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_toolloop_result out;
    qg_error err = {0};
    cr_assert_eq(qg_ai_toolloop_run(NULL, &cfg, &a, &out, &err), QG_OK, "%s", err.msg);
    /* the handler takes its own connection from the pool */
    qg_store_release(store, conn);

    cJSON *b = NULL;
    cr_assert_eq(get_run(out.run_id, "usr_1", QG_ROLE_CLIENT, &b), 200);
    cr_assert_str_eq(cJSON_GetObjectItem(b, "outcome")->valuestring, "answer");
    cJSON *steps = cJSON_GetObjectItem(b, "steps");
    cr_assert_eq(cJSON_GetArraySize(steps), 10);
    cJSON *s0 = cJSON_GetArrayItem(steps, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(s0, "kind")->valuestring, "request");
    cr_assert_str_eq(cJSON_GetObjectItem(s0, "call_id")->valuestring, "aic_1");
    cJSON *u = cJSON_GetObjectItem(b, "usage");
    cr_assert_eq(cJSON_GetObjectItem(u, "input_tokens")->valueint, 500);
    cr_assert_eq(cJSON_GetObjectItem(u, "output_tokens")->valueint, 47);
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(b, "finished_at")));
    cJSON_Delete(b);

    /* someone else: not found, like a run that does not exist */
    cr_assert_eq(get_run(out.run_id, "usr_2", QG_ROLE_DEVELOPER, &b), 404);
    cJSON *e = cJSON_GetObjectItem(b, "error");
    cr_assert(strstr(cJSON_GetObjectItem(e, "message")->valuestring, "not found"));
    cJSON_Delete(b);
    /* an admin sees any run */
    cr_assert_eq(get_run(out.run_id, "usr_admin", QG_ROLE_ADMIN, &b), 200);
    cJSON_Delete(b);
    cr_assert_eq(get_run("run_missing", "usr_admin", QG_ROLE_ADMIN, &b), 404);
    cJSON_Delete(b);
    cr_assert_eq(qg_store_acquire(store, &conn, &err), QG_OK);
    qg_arena_free(&a);
}
