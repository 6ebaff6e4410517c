/*
 * test_jobs.c - the backtest job registry and runner without HTTP, and the
 * dataset/backtest handlers called directly with hand-built requests: a
 * qg_app over a temporary SQLite store and data directory, a real worker
 * pool, generated bars.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/jobs.h"

#include <quantgate/time.h>

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static qg_app app;
static char dir[64];
static const char *USER = "usr_test";

static void exec_sql(const char *sql, const qg_val *p, size_t n)
{
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(app.store, &c, &err), QG_OK);
    cr_assert_eq(qg_conn_exec(c, sql, p, n, NULL, &err), QG_OK, "%s: %s", sql, err.msg);
    qg_store_release(app.store, c);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qg_jobs_XXXXXX");
    cr_assert(mkdtemp(dir));
    char url[128];
    snprintf(url, sizeof url, "sqlite://%s/t.db", dir);
    qg_error err = {0};
    memset(&app, 0, sizeof app);
    cr_assert_eq(qg_store_open(url, 4, true, &app.store, &err), QG_OK, "%s", err.msg);
    app.data_dir = dir;
    app.jobs_pool = qg_workpool_new(1, "qgjob");
    app.jobs = qg_jobs_new(&app);
    atomic_init(&app.stopping, false);
    const qg_val p[] = {QG_VTEXT(USER), QG_VINT(1)};
    exec_sql("INSERT INTO users (id, email, password_hash, role, approved, created_at, updated_at) "
             "VALUES (?, 'u@example.com', 'x', 'developer', 1, ?, 0)",
             p, 2);
}

static void teardown(void)
{
    qg_workpool_shutdown(app.jobs_pool);
    qg_jobs_free(app.jobs);
    qg_workpool_free(app.jobs_pool);
    qg_store_close(app.store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Writes n generated 1-minute bars as a dataset file and row "ds_1". */
static void make_dataset(size_t n, qg_bars *keep)
{
    qg_gen_opts o = {.bars = n, .tf_ms = QG_MS_PER_MIN, .seed = 7, .start_ms = 1704067200000LL};
    qg_bars b = {0};
    qg_error err = {0};
    cr_assert_eq(qg_bars_generate(&o, &b, &err), QG_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/ds_1.csv", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(QG_BARS_CSV_HEADER, f);
    char buf[1 << 16];
    size_t pos = 0;
    while (pos < b.n) {
        size_t len = qg_bars_format_csv(&b, &pos, buf, sizeof buf, QG_TS_ISO, 8);
        fwrite(buf, 1, len, f);
    }
    fclose(f);
    const qg_val p[] = {QG_VTEXT(USER), QG_VINT(b.ts[0]), QG_VINT(b.ts[b.n - 1]),
                        QG_VINT(b.n),   QG_VTEXT(path),   QG_VINT(qg_time_now_ms())};
    exec_sql("INSERT INTO datasets (id, user_id, name, symbol, timeframe_ms, first_ts, last_ts, "
             "rows, bytes, path, created_at) VALUES ('ds_1', ?, 'gen', 'GEN', 60000, ?, ?, ?, 0, "
             "?, ?)",
             p, 6);
    if (keep)
        *keep = b;
    else
        qg_bars_free(&b);
}

static void insert_backtest(const char *id, const char *status)
{
    const qg_val p[] = {QG_VTEXT(id), QG_VTEXT(USER), QG_VTEXT(status), QG_VINT(qg_time_now_ms())};
    exec_sql("INSERT INTO backtests (id, user_id, dataset_id, status, request, created_at) "
             "VALUES (?, ?, 'ds_1', ?, '{}', ?)",
             p, 4);
}

static qg_bt_job_spec *sma_spec(const char *path)
{
    qg_bt_job_spec *sp = calloc(1, sizeof *sp);
    qg_error err = {0};
    const char *json = qg_strategy_builtin("sma_cross");
    cr_assert_eq(qg_strategy_parse(json, strlen(json), NULL, 0, &sp->strategy, &err), QG_OK);
    sp->cfg = qg_bt_config_default();
    sp->cfg.fee_bps = 5;
    snprintf(sp->dataset_path, sizeof sp->dataset_path, "%s", path);
    sp->from_ms = INT64_MIN;
    sp->to_ms = INT64_MAX;
    return sp;
}

static void wait_idle(void)
{
    for (int i = 0; i < 2000 && qg_jobs_active(app.jobs) > 0; i++) usleep(5000);
    cr_assert_eq(qg_jobs_active(app.jobs), 0, "jobs still active after 10 s");
}

typedef struct {
    char status[16];
    char *result, *error;
    bool started, finished;
} row_t;

static qg_status row_cb(void *ud, const qg_row *row)
{
    row_t *t = ud;
    snprintf(t->status, sizeof t->status, "%s", qg_row_text(row, 0));
    t->result = qg_row_is_null(row, 1) ? NULL : strdup(qg_row_text(row, 1));
    t->error = qg_row_is_null(row, 2) ? NULL : strdup(qg_row_text(row, 2));
    t->started = !qg_row_is_null(row, 3);
    t->finished = !qg_row_is_null(row, 4);
    return QG_OK;
}

static row_t get_row(const char *id)
{
    row_t t = {0};
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(app.store, &c, &err), QG_OK);
    const qg_val p[] = {QG_VTEXT(id)};
    cr_assert_eq(qg_conn_query(c,
                               "SELECT status, result, error, started_at, finished_at "
                               "FROM backtests WHERE id = ?",
                               p, 1, row_cb, &t, &err),
                 QG_OK, "%s", err.msg);
    qg_store_release(app.store, c);
    return t;
}

static void row_free(row_t *t)
{
    free(t->result);
    free(t->error);
}

/* A pool item that holds the single pool thread until released. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static void gate_work(void *arg)
{
    pthread_mutex_lock(&gate_mu);
    while (!gate_open) pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

static void gate_close(void)
{
    gate_open = false;
    cr_assert_eq(qg_workpool_submit(app.jobs_pool, gate_work, NULL, NULL), QG_OK);
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

TestSuite(jobs, .init = setup, .fini = teardown);

Test(jobs, runs_a_backtest_to_done_with_the_cli_metrics)
{
    qg_bars bars;
    make_dataset(5000, &bars);
    insert_backtest("bt_1", "queued");
    char path[128];
    snprintf(path, sizeof path, "%s/ds_1.csv", dir);
    qg_error err = {0};
    cr_assert_eq(qg_jobs_submit(app.jobs, "bt_1", USER, sma_spec(path), &err), QG_OK, "%s",
                 err.msg);
    wait_idle();
    row_t t = get_row("bt_1");
    cr_assert_str_eq(t.status, "done", "error: %s", t.error ? t.error : "-");
    cr_assert(t.started && t.finished);
    cr_assert_null(t.error);
    cr_assert_not_null(t.result);

    /* Same run as the engine gives directly. */
    qg_bt_job_spec *sp = sma_spec(path);
    qg_bt_result r = {0};
    cr_assert_eq(qg_backtest_run(&sp->strategy, &bars, &sp->cfg, &r, &err), QG_OK);
    cJSON *res = cJSON_Parse(t.result);
    cr_assert_not_null(res);
    cJSON *m = cJSON_GetObjectItem(res, "metrics");
    cJSON *tr = cJSON_GetObjectItem(res, "trades");
    cr_assert(cJSON_IsObject(m) && cJSON_IsArray(tr));
    cr_assert_gt(r.n_trades, 0);
    cr_assert_eq((size_t)cJSON_GetArraySize(tr), r.n_trades);
    cr_assert_eq((size_t)cJSON_GetObjectItem(m, "trades")->valuedouble, r.m.trades);
    cr_assert_float_eq(cJSON_GetObjectItem(m, "final_equity")->valuedouble, r.m.final_equity, 1e-6);
    cJSON_Delete(res);
    qg_bt_result_free(&r);
    free(sp);
    qg_bars_free(&bars);
    row_free(&t);
}

Test(jobs, registry_refcounts_cancel_and_final_status)
{
    make_dataset(500, NULL);
    insert_backtest("bt_2", "queued");
    char path[128];
    snprintf(path, sizeof path, "%s/ds_1.csv", dir);
    qg_error err = {0};
    gate_close();
    cr_assert_eq(qg_jobs_submit(app.jobs, "bt_2", USER, sma_spec(path), &err), QG_OK);
    cr_assert_eq(qg_jobs_active(app.jobs), 1);

    cr_assert_null(qg_jobs_find(app.jobs, "bt_2", "usr_other"), "someone else's job");
    cr_assert_null(qg_jobs_find(app.jobs, "bt_nope", USER));
    qg_job *a = qg_jobs_find(app.jobs, "bt_2", USER);
    cr_assert_not_null(a);
    cr_assert_eq(atomic_load(&a->refs), 2, "runner + finder");
    qg_job *b = qg_jobs_find(app.jobs, "bt_2", USER);
    cr_assert_eq(a, b);
    cr_assert_eq(atomic_load(&a->refs), 3);
    qg_job_unref(app.jobs, b);
    cr_assert_eq(atomic_load(&a->refs), 2);
    cr_assert_eq(atomic_load(&a->status), QG_JS_QUEUED);

    atomic_store(&a->cancel, true);
    gate_release();
    wait_idle();
    /* Finished: gone from the registry, but our reference keeps it alive. */
    cr_assert_null(qg_jobs_find(app.jobs, "bt_2", USER));
    cr_assert_eq(atomic_load(&a->status), QG_JS_CANCELLED);
    cr_assert_eq(atomic_load(&a->refs), 1);
    cr_assert_not_null(a->final_json);
    cJSON *fin = cJSON_Parse(a->final_json);
    cr_assert_str_eq(cJSON_GetObjectItem(fin, "status")->valuestring, "cancelled");
    cr_assert_str_eq(cJSON_GetObjectItem(fin, "id")->valuestring, "bt_2");
    cJSON_Delete(fin);
    qg_job_unref(app.jobs, a); /* frees it: ASan reports a leak otherwise */

    row_t t = get_row("bt_2");
    cr_assert_str_eq(t.status, "cancelled");
    cr_assert_null(t.result);
    row_free(&t);
}

Test(jobs, a_missing_file_fails_the_job_with_the_reason)
{
    make_dataset(100, NULL);
    insert_backtest("bt_3", "queued");
    qg_error err = {0};
    cr_assert_eq(qg_jobs_submit(app.jobs, "bt_3", USER, sma_spec("/nonexistent/x.csv"), &err),
                 QG_OK);
    wait_idle();
    row_t t = get_row("bt_3");
    cr_assert_str_eq(t.status, "failed");
    cr_assert_not_null(t.error);
    cr_assert(strstr(t.error, "/nonexistent/x.csv"), "error: %s", t.error);
    row_free(&t);
}

Test(jobs, refused_while_stopping)
{
    atomic_store(&app.stopping, true);
    qg_error err = {0};
    cr_assert_eq(qg_jobs_submit(app.jobs, "bt_4", USER, sma_spec("x"), &err), QG_EAGAIN);
    cr_assert_eq(qg_jobs_active(app.jobs), 0);
}

Test(jobs, recover_marks_unfinished_rows_failed)
{
    make_dataset(100, NULL);
    insert_backtest("bt_q", "queued");
    insert_backtest("bt_r", "running");
    insert_backtest("bt_d", "done");
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(app.store, &c, &err), QG_OK);
    cr_assert_eq(qg_jobs_recover(app.jobs, c, &err), QG_OK, "%s", err.msg);
    qg_store_release(app.store, c);
    const char *const ids[] = {"bt_q", "bt_r"};
    for (int i = 0; i < 2; i++) {
        row_t t = get_row(ids[i]);
        cr_assert_str_eq(t.status, "failed");
        cr_assert_str_eq(t.error, "interrupted by a restart");
        cr_assert(t.finished);
        row_free(&t);
    }
    row_t d = get_row("bt_d");
    cr_assert_str_eq(d.status, "done");
    cr_assert_null(d.error);
    row_free(&d);
}

Test(jobs, bars_cache_shares_and_survives_eviction)
{
    make_dataset(200, NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/ds_1.csv", dir);
    const qg_bars *a, *b;
    qg_bars_ref *ra, *rb;
    qg_error err = {0};
    cr_assert_eq(qg_bars_cache_get(app.jobs, path, &a, &ra, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_bars_cache_get(app.jobs, path, &b, &rb, &err), QG_OK);
    cr_assert_eq(a, b, "the second get is a cache hit");
    cr_assert_eq(a->n, 200);
    /* Forgetting (as a delete does) leaves the readers' bars intact. */
    qg_bars_cache_forget(app.jobs, path);
    cr_assert_eq(a->ts[199] - a->ts[0], 199 * QG_MS_PER_MIN);
    qg_bars_cache_put(ra);
    qg_bars_cache_put(rb);
    cr_assert_neq(qg_bars_cache_get(app.jobs, "/nonexistent.csv", &a, &ra, &err), QG_OK);
}

/* ---- handlers, called directly ---- */

static void req_init(qg_req *r, int method, const char *query, const char *body, const char *ct)
{
    memset(r, 0, sizeof *r);
    r->app = &app;
    qg_arena_init(&r->arena, 4096);
    r->method = method;
    r->path = "/";
    r->query = query ? query : "";
    r->body = body ? body : "";
    r->body_len = body ? strlen(body) : 0;
    r->content_type = ct ? ct : "";
    r->authorization = "";
    r->address = "127.0.0.1";
    r->request_id = "test";
    r->who.authenticated = true;
    snprintf(r->who.user.id, sizeof r->who.user.id, "%s", USER);
}

static void req_free(qg_req *r)
{
    if (r->db) qg_store_release(app.store, r->db);
    if (r->stream_arg && r->stream_free) r->stream_free(r->stream_arg);
    cJSON_Delete(r->body_json);
    qg_buf_free(&r->out);
    qg_arena_free(&r->arena);
}

static cJSON *reply(qg_req *r)
{
    cr_assert_not_null(r->out.data);
    cJSON *o = cJSON_Parse(r->out.data);
    cr_assert_not_null(o, "not JSON: %s", r->out.data);
    return o;
}

static const char CSV[] = "timestamp,open,high,low,close,volume\n"
                          "2024-01-01T00:00:00Z,10,11,9,10.5,100\n"
                          "2024-01-01T00:01:00Z,10.5,12,10,11,200\n"
                          "2024-01-01T00:02:00Z,11,11.5,10.5,11.2,300\n"
                          "2024-01-01T00:03:00Z,11.2,11.3,10,10.1,400\n";

Test(jobs, dataset_upload_get_candles_delete)
{
    qg_req r;
    req_init(&r, QG_POST, "name=t1", CSV, "text/plain");
    qg_h_datasets_create(&r);
    cr_assert_eq(r.status, 415);
    req_free(&r);

    req_init(&r, QG_POST, "name=t1",
             "timestamp,open,high,low,close,volume\n2024-01-01,10,9,11,10,1\n", "text/csv");
    qg_h_datasets_create(&r);
    cr_assert_eq(r.status, 400);
    cr_assert(strstr(r.out.data, "body:2:"), "%s", r.out.data);
    req_free(&r);

    req_init(&r, QG_POST, "name=t1&symbol=ABC", CSV, "text/csv; charset=utf-8");
    qg_h_datasets_create(&r);
    cr_assert_eq(r.status, 201, "%s", r.out.data);
    cJSON *ds = reply(&r);
    char id[QG_ID_MAX];
    snprintf(id, sizeof id, "%s", cJSON_GetObjectItem(ds, "id")->valuestring);
    cr_assert_str_eq(cJSON_GetObjectItem(ds, "timeframe")->valuestring, "1m");
    cr_assert_str_eq(cJSON_GetObjectItem(ds, "symbol")->valuestring, "ABC");
    cr_assert_eq(cJSON_GetObjectItem(ds, "rows")->valueint, 4);
    cr_assert_str_eq(cJSON_GetObjectItem(ds, "first")->valuestring, "2024-01-01T00:00:00Z");
    cJSON_Delete(ds);
    req_free(&r);

    req_init(&r, QG_GET, "timeframe=2m&from=2024-01-01T00:01:00Z", NULL, NULL);
    r.param[0] = id;
    qg_h_datasets_candles(&r);
    cr_assert_eq(r.status, 200, "%s", r.out.data);
    cJSON *c = reply(&r);
    cJSON *arr = cJSON_GetObjectItem(c, "candles");
    /* from falls inside the first 2m bucket, which is returned whole. */
    cr_assert_eq(cJSON_GetArraySize(arr), 2);
    cJSON *c0 = cJSON_GetArrayItem(arr, 0);
    cr_assert_float_eq(cJSON_GetArrayItem(c0, 2)->valuedouble, 12, 1e-9);  /* high */
    cr_assert_float_eq(cJSON_GetArrayItem(c0, 5)->valuedouble, 300, 1e-9); /* volume */
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(c, "truncated")));
    cJSON_Delete(c);
    req_free(&r);

    req_init(&r, QG_GET, "from=yesterday", NULL, NULL);
    r.param[0] = id;
    qg_h_datasets_candles(&r);
    cr_assert_eq(r.status, 400);
    cr_assert(strstr(r.out.data, "'from'"), "%s", r.out.data);
    req_free(&r);

    req_init(&r, QG_GET, "limit=3", NULL, NULL);
    r.param[0] = id;
    qg_h_datasets_candles(&r);
    c = reply(&r);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c, "candles")), 3);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(c, "truncated")));
    cJSON_Delete(c);
    req_free(&r);

    /* Someone else's dataset does not exist for them. */
    req_init(&r, QG_GET, NULL, NULL, NULL);
    snprintf(r.who.user.id, sizeof r.who.user.id, "usr_other");
    r.param[0] = id;
    qg_h_datasets_get(&r);
    cr_assert_eq(r.status, 404);
    req_free(&r);

    req_init(&r, QG_DELETE, NULL, NULL, NULL);
    r.param[0] = id;
    qg_h_datasets_delete(&r);
    cr_assert_eq(r.status, 204);
    req_free(&r);
    char path[160];
    snprintf(path, sizeof path, "%s/datasets/%s.csv", dir, id);
    cr_assert_neq(access(path, F_OK), 0, "file removed");
}

Test(jobs, backtest_over_http_handlers)
{
    make_dataset(3000, NULL);
    qg_req r;
    req_init(
        &r, QG_POST, NULL,
        "{\"dataset_id\":\"ds_1\",\"strategy\":\"sma_cross\",\"params\":{\"fast\":50,\"slow\":20}}",
        "application/json");
    qg_h_backtests_create(&r);
    cr_assert_eq(r.status, 400);
    cr_assert(strstr(r.out.data, "fast < slow"), "%s", r.out.data);
    req_free(&r);

    req_init(&r, QG_POST, NULL, "{\"dataset_id\":\"ds_nope\",\"strategy\":\"sma_cross\"}", NULL);
    qg_h_backtests_create(&r);
    cr_assert_eq(r.status, 404);
    req_free(&r);

    req_init(
        &r, QG_POST, NULL,
        "{\"dataset_id\":\"ds_1\",\"strategy\":\"sma_cross\",\"params\":{\"fast\":5},"
        "\"timeframe\":\"5m\",\"fee_bps\":10,\"direction\":\"both\",\"from\":\"2024-01-01T10:00\"}",
        "application/json");
    qg_h_backtests_create(&r);
    cr_assert_eq(r.status, 202, "%s", r.out.data);
    cJSON *o = reply(&r);
    char id[QG_ID_MAX];
    snprintf(id, sizeof id, "%s", cJSON_GetObjectItem(o, "id")->valuestring);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "status")->valuestring, "queued");
    cJSON_Delete(o);
    req_free(&r);
    wait_idle();

    req_init(&r, QG_GET, NULL, NULL, NULL);
    r.param[0] = id;
    qg_h_backtests_get(&r);
    cr_assert_eq(r.status, 200);
    o = reply(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "status")->valuestring, "done", "%s", r.out.data);
    cr_assert_float_eq(cJSON_GetObjectItem(o, "progress")->valuedouble, 1.0, 1e-9);
    cr_assert(cJSON_IsObject(cJSON_GetObjectItem(o, "metrics")));
    cr_assert(cJSON_IsArray(cJSON_GetObjectItem(o, "trades")));
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "request"), "timeframe")->valuestring, "5m");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metrics"), "start")->valuestring,
                     "2024-01-01T10:00:00Z", "trading starts at 'from'");
    cJSON_Delete(o);
    req_free(&r);

    /* A finished job's events: the one final event, no stream. */
    req_init(&r, QG_GET, NULL, NULL, NULL);
    r.param[0] = id;
    qg_h_backtests_events(&r);
    cr_assert_eq(r.status, 200);
    cr_assert_null(r.stream_poll);
    cr_assert_eq(strncmp(r.out.data, "event: done\ndata: {", 19), 0, "%s", r.out.data);
    req_free(&r);

    req_init(&r, QG_GET, "limit=1", NULL, NULL);
    qg_h_backtests_list(&r);
    o = reply(&r);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "items")), 1);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "next")));
    cJSON_Delete(o);
    req_free(&r);

    req_init(&r, QG_DELETE, NULL, NULL, NULL);
    r.param[0] = id;
    qg_h_backtests_delete(&r);
    cr_assert_eq(r.status, 204);
    req_free(&r);
    req_init(&r, QG_GET, NULL, NULL, NULL);
    r.param[0] = id;
    qg_h_backtests_get(&r);
    cr_assert_eq(r.status, 404);
    req_free(&r);
}

Test(jobs, events_stream_a_live_job)
{
    make_dataset(500, NULL);
    gate_close();
    qg_req r;
    req_init(&r, QG_POST, NULL, "{\"dataset_id\":\"ds_1\",\"strategy\":\"ema_cross\"}", NULL);
    qg_h_backtests_create(&r);
    cr_assert_eq(r.status, 202, "%s", r.out.data);
    cJSON *o = reply(&r);
    char id[QG_ID_MAX];
    snprintf(id, sizeof id, "%s", cJSON_GetObjectItem(o, "id")->valuestring);
    cJSON_Delete(o);
    req_free(&r);

    req_init(&r, QG_GET, NULL, NULL, NULL);
    r.param[0] = id;
    qg_h_backtests_events(&r);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(r.stream_poll);
    cr_assert_str_eq(r.out.data, "event: progress\ndata: {\"progress\":0.000}\n\n");
    gate_release();
    wait_idle();
    qg_buf out;
    qg_buf_init(&out, 1 << 20);
    cr_assert(r.stream_poll(r.stream_arg, &out), "finished");
    cr_assert_eq(strncmp(out.data, "event: done\ndata: {\"id\":\"", 25), 0, "%s", out.data);
    cr_assert(strstr(out.data, "\"metrics\":{"));
    qg_buf_free(&out);
    req_free(&r); /* stream_free drops the job */
}
