/*
 * test_handlers.c - the reply/request helpers and the meta, auth, tokens,
 * users, vault and audit handlers, called directly on hand-built requests
 * against a real app (temporary SQLite store, vault, metrics, rate limits).
 * The dispatcher is not involved: callers are put into r->who by hand.
 */
#include <criterion/criterion.h>

#include "auth/audit.h"
#include "http/app.h"
#include "http/handlers.h"

#include <quantgate/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];
static qg_app app;
static qg_user admin;

#define MAX_RESPS 256

typedef struct resp {
    int status;
    char *text; /* the body, NUL-terminated */
    cJSON *json;
    char type[64];
    char retry_after[16];
    char audit_target[128];
    char error_code[64];
} resp;

static resp *resps[MAX_RESPS];
static int nresps;

static int route_count(void)
{
    int n = 0;
    while (qg_routes[n].pattern) n++;
    return n;
}

static void setup(void)
{
    qg_error err = {0};
    setenv("QG_ARGON2_FAST", "1", 1);
    setenv("QG_MASTER_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    unsetenv("QG_JWT_SECRET");
    cr_assert_eq(qg_auth_init(&err), QG_OK, "%s", err.msg);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qg_handlers_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    char url[400];
    snprintf(url, sizeof url, "sqlite://%s/t.db", tmpdir);
    memset(&app, 0, sizeof app);
    cr_assert_eq(qg_store_open(url, 4, true, &app.store, &err), QG_OK, "%s", err.msg);
    qg_conn *c = NULL;
    cr_assert_eq(qg_store_acquire(app.store, &c, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_vault_open(c, tmpdir, &app.vault, &err), QG_OK, "%s", err.msg);
    qg_vault_jwt_key(app.vault, app.jwt_key);
    cr_assert_eq(
        qg_user_create(c, "root@example.com", "root-password-1", QG_ROLE_ADMIN, true, &admin, &err),
        QG_OK, "%s", err.msg);
    qg_store_release(app.store, c);
    app.data_dir = tmpdir;
    app.access_ttl_s = 900;
    app.refresh_ttl_s = 30 * 86400;
    app.max_body = 1 << 20;
    app.metrics = qg_metrics_new(route_count());
    qg_rl_config rc;
    qg_rl_config_default(&rc);
    app.limits = qg_ratelimit_new(&rc);
    atomic_store(&app.stopping, false);
}

static void teardown(void)
{
    for (int i = 0; i < nresps; i++) {
        cJSON_Delete(resps[i]->json);
        free(resps[i]->text);
        free(resps[i]);
    }
    nresps = 0;
    if (app.limits) qg_ratelimit_free(app.limits);
    if (app.metrics) qg_metrics_free(app.metrics);
    if (app.vault) qg_vault_free(app.vault);
    if (app.store) qg_store_close(app.store);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(handlers, .init = setup, .fini = teardown);

static void req_init(qg_req *r, int method, const char *path, const char *query, const char *body,
                     const qg_user *who, const char *param)
{
    memset(r, 0, sizeof *r);
    r->app = &app;
    qg_arena_init(&r->arena, 4096);
    qg_buf_init(&r->out, 16u << 20);
    r->method = method;
    r->path = path;
    r->query = query ? query : "";
    r->body = body ? body : "";
    r->body_len = body ? strlen(body) : 0;
    r->content_type = body ? "application/json" : "";
    r->authorization = "";
    r->address = "127.0.0.1";
    r->request_id = "rid-test";
    if (param) {
        r->param[0] = param;
        r->nparam = 1;
    }
    if (who) {
        r->who.authenticated = true;
        r->who.user = *who;
        r->who.scope = QG_SCOPE_WRITE;
    }
}

/* Copies the reply out of r and frees the request the way the dispatcher
 * does. */
static resp *req_finish(qg_req *r)
{
    resp *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    cr_assert_lt(nresps, MAX_RESPS);
    resps[nresps++] = p;
    p->status = r->status;
    p->text = strdup(r->out.len ? r->out.data : "");
    snprintf(p->type, sizeof p->type, "%s", r->out_type ? r->out_type : "");
    if (strncmp(p->type, "application/json", 16) == 0) p->json = cJSON_Parse(p->text);
    for (int i = 0; i < r->nhdr; i++)
        if (strcasecmp(r->hdr_name[i], "Retry-After") == 0)
            snprintf(p->retry_after, sizeof p->retry_after, "%s", r->hdr_value[i]);
    snprintf(p->audit_target, sizeof p->audit_target, "%s", r->audit_target ? r->audit_target : "");
    snprintf(p->error_code, sizeof p->error_code, "%s", r->error_code ? r->error_code : "");
    if (r->db) qg_store_release(app.store, r->db);
    cJSON_Delete(r->body_json);
    qg_buf_free(&r->out);
    qg_arena_free(&r->arena);
    return p;
}

static resp *call(qg_handler_fn fn, int method, const char *path, const char *query,
                  const char *body, const qg_user *who, const char *param)
{
    qg_req r;
    req_init(&r, method, path, query, body, who, param);
    fn(&r);
    return req_finish(&r);
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jbool(const cJSON *o, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static const char *err_code(const resp *p)
{
    return jstr(cJSON_GetObjectItemCaseSensitive(p->json, "error"), "code");
}

static const char *err_msg(const resp *p)
{
    return jstr(cJSON_GetObjectItemCaseSensitive(p->json, "error"), "message");
}

static void assert_error(const resp *p, int status, const char *code, const char *msg_part)
{
    cr_assert_eq(p->status, status, "status %d, body %s", p->status, p->text);
    cr_assert_not_null(p->json, "error body is not JSON: %s", p->text);
    cr_assert_str_eq(err_code(p), code, "body %s", p->text);
    if (msg_part)
        cr_assert(strstr(err_msg(p), msg_part), "message '%s' lacks '%s'", err_msg(p), msg_part);
}

static qg_user user_by_id(const char *id)
{
    qg_user u;
    qg_conn *c = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(app.store, &c, &err), QG_OK);
    cr_assert_eq(qg_user_get(c, id, &u, &err), QG_OK, "%s", err.msg);
    qg_store_release(app.store, c);
    return u;
}

static qg_user make_user(const char *email, qg_role role)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"email\":\"%s\",\"password\":\"long-enough-pw\",\"role\":\"%s\"}", email,
             qg_role_name(role));
    resp *p = call(qg_h_users_create, QG_POST, "/api/users", NULL, body, &admin, NULL);
    cr_assert_eq(p->status, 201, "%s", p->text);
    return user_by_id(jstr(p->json, "id"));
}

/* ---- reply and request helpers ---- */

Test(handlers, reply_error_is_escaped_json)
{
    qg_req r;
    req_init(&r, QG_GET, "/x", NULL, NULL, NULL, NULL);
    qg_reply_error(&r, 400, "validation_failed", "field '%s': bad \"quote\"\n\tand \\", "a\"b");
    resp *p = req_finish(&r);
    assert_error(p, 400, "validation_failed", NULL);
    cr_assert_str_eq(err_msg(p), "field 'a\"b': bad \"quote\"\n\tand \\");
    cr_assert_str_eq(p->error_code, "validation_failed");
}

Test(handlers, reply_status_maps_and_hides_internal_messages)
{
    static const struct {
        qg_status rc;
        int status;
        const char *code;
    } cases[] = {{QG_EINVAL, 400, "validation_failed"},
                 {QG_ENOTFOUND, 404, "not_found"},
                 {QG_EDENIED, 403, "forbidden"},
                 {QG_EEXIST, 409, "conflict"},
                 {QG_ERANGE, 413, "payload_too_large"},
                 {QG_EAGAIN, 503, "unavailable"},
                 {QG_EIO, 500, "internal"},
                 {QG_EINTERNAL, 500, "internal"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qg_req r;
        req_init(&r, QG_GET, "/x", NULL, NULL, NULL, NULL);
        qg_error err = {0};
        qg_error_set(&err, cases[i].rc, "detail SECRETDETAIL");
        qg_reply_status(&r, cases[i].rc, &err);
        resp *p = req_finish(&r);
        assert_error(p, cases[i].status, cases[i].code, NULL);
        if (cases[i].status == 500) {
            cr_assert_str_eq(err_msg(p), "internal error (request rid-test)");
            cr_assert_null(strstr(p->text, "SECRETDETAIL"));
        } else {
            cr_assert_str_eq(err_msg(p), "detail SECRETDETAIL");
        }
    }
}

Test(handlers, replies_replace_each_other_and_headers_are_capped)
{
    qg_req r;
    req_init(&r, QG_GET, "/x", NULL, NULL, NULL, NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "a", "b");
    qg_reply_json(&r, 200, o);
    qg_reply_empty(&r, 204);
    for (int i = 0; i < QG_MAX_RESP_HEADERS + 3; i++) qg_reply_header(&r, "X-N", "v");
    cr_assert_eq(r.nhdr, QG_MAX_RESP_HEADERS);
    resp *p = req_finish(&r);
    cr_assert_eq(p->status, 204);
    cr_assert_str_eq(p->text, "");
}

Test(handlers, json_body_errors_give_line_and_column)
{
    static const struct {
        const char *body;
        int status;
        const char *code;
        const char *msg;
    } cases[] = {
        {"", 400, "validation_failed", "request body: expected a JSON object"},
        {"  \n ", 400, "validation_failed", "request body: expected a JSON object"},
        {"[1,2]", 400, "validation_failed", "request body: expected a JSON object"},
        {"\"str\"", 400, "validation_failed", "request body: expected a JSON object"},
        {"{\"email\":\n  \"a@b.co\" x}", 400, "invalid_json", "invalid JSON at line 2, column 12"},
        {"{} x", 400, "invalid_json", "invalid JSON at line 1, column 4"},
        {"{\"a\":tru}", 400, "invalid_json", "invalid JSON at line 1, column 6"},
        {"{\"a\":1", 400, "invalid_json", "invalid JSON at line 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qg_req r;
        req_init(&r, QG_POST, "/x", NULL, cases[i].body, NULL, NULL);
        cr_assert_null(qg_req_json(&r));
        resp *p = req_finish(&r);
        assert_error(p, cases[i].status, cases[i].code, cases[i].msg);
    }
    /* The same errors through a real handler. */
    resp *p = call(qg_h_signup, QG_POST, "/api/auth/signup", NULL, "{\n\"email\" 1}", NULL, NULL);
    assert_error(p, 400, "invalid_json", "invalid JSON at line 2, column 9");
}

Test(handlers, json_body_is_cached_and_owned_by_the_request)
{
    qg_req r;
    req_init(&r, QG_POST, "/x", NULL, "{\"a\":1}", NULL, NULL);
    cJSON *a = qg_req_json(&r);
    cr_assert_not_null(a);
    cr_assert_eq(qg_req_json(&r), a);
    cr_assert_eq(r.body_json, a);
    req_finish(&r);
}

Test(handlers, field_readers_name_the_field)
{
    qg_req r;
    req_init(&r, QG_POST, "/x", NULL,
             "{\"cash\":0,\"email\":5,\"flag\":\"yes\",\"name\":\"abcdef\",\"ok\":true,\"n\":3}",
             NULL, NULL);
    cJSON *b = qg_req_json(&r);
    cr_assert_not_null(b);
    double d = -1;
    cr_assert(qg_field_num(&r, b, "n", true, 1, 10, &d));
    cr_assert_eq(d, 3);
    cr_assert_not(qg_field_num(&r, b, "cash", true, 1, 1e12, &d));
    cr_assert(strstr(r.out.data, "\"field 'cash': must be between 1 and 1e12\""), "%s", r.out.data);
    const char *s = NULL;
    cr_assert_not(qg_field_str(&r, b, "email", true, 100, &s));
    cr_assert(strstr(r.out.data, "field 'email': expected a string"), "%s", r.out.data);
    cr_assert_not(qg_field_str(&r, b, "password", true, 100, &s));
    cr_assert(strstr(r.out.data, "field 'password': is required"), "%s", r.out.data);
    cr_assert(qg_field_str(&r, b, "missing", false, 100, &s));
    cr_assert_null(s);
    cr_assert_not(qg_field_str(&r, b, "name", true, 3, &s));
    cr_assert(strstr(r.out.data, "field 'name': must be at most 3 characters"), "%s", r.out.data);
    bool f = false;
    cr_assert_not(qg_field_bool(&r, b, "flag", true, &f));
    cr_assert(strstr(r.out.data, "field 'flag':"), "%s", r.out.data);
    cr_assert(qg_field_bool(&r, b, "ok", true, &f));
    cr_assert(f);
    cr_assert_eq(r.status, 400);
    resp *p = req_finish(&r);
    cr_assert_not_null(p->json);
}

Test(handlers, query_parameters_are_decoded)
{
    qg_req r;
    req_init(&r, QG_GET, "/x", "a=1&name=hello+world%21&empty=&flag&pct=%zz&sp%61ce=x%20y", NULL,
             NULL, NULL);
    cr_assert_str_eq(qg_req_query(&r, "a"), "1");
    cr_assert_str_eq(qg_req_query(&r, "name"), "hello world!");
    cr_assert_str_eq(qg_req_query(&r, "empty"), "");
    cr_assert_str_eq(qg_req_query(&r, "flag"), "");
    cr_assert_str_eq(qg_req_query(&r, "pct"), "%zz");
    cr_assert_str_eq(qg_req_query(&r, "space"), "x y");
    cr_assert_null(qg_req_query(&r, "nope"));
    req_finish(&r);
}

Test(handlers, json_time_and_method_names)
{
    cJSON *t = qg_json_time(0);
    cr_assert(cJSON_IsNull(t));
    cJSON_Delete(t);
    t = qg_json_time(1704067200000LL);
    cr_assert_str_eq(t->valuestring, "2024-01-01T00:00:00Z");
    cJSON_Delete(t);
    cr_assert_str_eq(qg_method_name(QG_PATCH), "PATCH");
    cr_assert_str_eq(qg_method_name(QG_DELETE), "DELETE");
}

/* ---- auth ---- */

static resp *login(const char *email, const char *password)
{
    char body[256];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    return call(qg_h_login, QG_POST, "/api/auth/login", NULL, body, NULL, NULL);
}

static resp *refresh_call(qg_handler_fn fn, const char *token)
{
    char body[256];
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", token);
    return call(fn, QG_POST, "/api/auth/refresh", NULL, body, NULL, NULL);
}

Test(handlers, signup_approval_login_refresh_logout)
{
    resp *p =
        call(qg_h_signup, QG_POST, "/api/auth/signup", NULL,
             "{\"email\":\"New.User@Example.com\",\"password\":\"a-good-password\"}", NULL, NULL);
    cr_assert_eq(p->status, 201, "%s", p->text);
    const char *id = jstr(p->json, "id");
    cr_assert(id && strncmp(id, "usr_", 4) == 0);
    cr_assert_str_eq(jstr(p->json, "email"), "new.user@example.com");
    cr_assert_str_eq(jstr(p->json, "role"), "client");
    cr_assert_not(jbool(p->json, "approved"));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(p->json, "disabled")));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(p->json, "password_change_required")));
    cr_assert(jstr(p->json, "created_at") && strchr(jstr(p->json, "created_at"), 'T'));
    cr_assert_null(strstr(p->text, "a-good-password"));
    char uid[QG_ID_MAX];
    snprintf(uid, sizeof uid, "%s", id);

    p = call(qg_h_signup, QG_POST, "/api/auth/signup", NULL,
             "{\"email\":\"new.user@example.com\",\"password\":\"another-password\"}", NULL, NULL);
    assert_error(p, 409, "conflict", "email already registered");

    p = login("new.user@example.com", "a-good-password");
    assert_error(p, 403, "forbidden", "account pending approval");

    p = call(qg_h_users_approve, QG_POST, "/api/users/x/approve", NULL, NULL, &admin, uid);
    cr_assert_eq(p->status, 200, "%s", p->text);
    cr_assert(jbool(p->json, "approved"));
    cr_assert_str_eq(p->audit_target, uid);

    p = login("NEW.user@example.com", "a-good-password");
    cr_assert_eq(p->status, 200, "%s", p->text);
    cr_assert_str_eq(jstr(p->json, "token_type"), "bearer");
    cr_assert_eq(cJSON_GetObjectItem(p->json, "expires_in")->valuedouble, 900);
    cr_assert_null(cJSON_GetObjectItem(p->json, "password_change_required"));
    const char *rt1 = jstr(p->json, "refresh_token");
    cr_assert(rt1 && strncmp(rt1, "rt_", 3) == 0);
    qg_jwt_claims cl;
    qg_error err = {0};
    cr_assert_eq(qg_jwt_verify(app.jwt_key, jstr(p->json, "access_token"), qg_time_now_ms() / 1000,
                               &cl, &err),
                 QG_OK, "%s", err.msg);
    cr_assert_str_eq(cl.sub, uid);
    cr_assert_eq(cl.role, QG_ROLE_CLIENT);

    /* Refresh rotates: the old token stops working, the new one works. The
     * new access token carries the role as it is now. */
    qg_user u = user_by_id(uid);
    p = call(qg_h_users_update, QG_PATCH, "/api/users/x", NULL, "{\"role\":\"developer\"}", &admin,
             uid);
    cr_assert_eq(p->status, 200, "%s", p->text);
    resp *q = refresh_call(qg_h_refresh, rt1);
    cr_assert_eq(q->status, 200, "%s", q->text);
    const char *rt2 = jstr(q->json, "refresh_token");
    cr_assert(rt2 && strcmp(rt1, rt2) != 0);
    cr_assert_eq(qg_jwt_verify(app.jwt_key, jstr(q->json, "access_token"), qg_time_now_ms() / 1000,
                               &cl, &err),
                 QG_OK);
    cr_assert_eq(cl.role, QG_ROLE_DEVELOPER);
    assert_error(refresh_call(qg_h_refresh, rt1), 401, "unauthorized", NULL);

    p = call(qg_h_me, QG_GET, "/api/me", NULL, NULL, &u, NULL);
    cr_assert_eq(p->status, 200);
    cr_assert_str_eq(jstr(p->json, "id"), uid);

    resp *l = refresh_call(qg_h_logout, rt2);
    cr_assert_eq(l->status, 204, "%s", l->text);
    cr_assert_str_eq(l->text, "");
    assert_error(refresh_call(qg_h_logout, rt2), 401, "unauthorized", NULL);
    assert_error(refresh_call(qg_h_refresh, rt2), 401, "unauthorized", NULL);

    /* Both the refused and the accepted login are in the audit log. */
    p = call(qg_h_audit_list, QG_GET, "/api/audit", "action=auth.login", NULL, &admin, NULL);
    cr_assert_eq(p->status, 200, "%s", p->text);
    cJSON *items = cJSON_GetObjectItem(p->json, "items");
    int ok = 0, denied = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        cr_assert_str_eq(jstr(it, "action"), "auth.login");
        cr_assert_str_eq(jstr(it, "actor_email"), "new.user@example.com");
        cr_assert_str_eq(jstr(it, "address"), "127.0.0.1");
        if (strcmp(jstr(it, "outcome"), "ok") == 0) ok++;
        if (strcmp(jstr(it, "outcome"), "denied") == 0) {
            denied++;
            cr_assert_eq(cJSON_GetObjectItem(it, "status")->valueint, 403);
        }
    }
    cr_assert_eq(ok, 1);
    cr_assert_eq(denied, 1);
}

Test(handlers, login_failures_share_a_message_and_get_throttled)
{
    make_user("dev@example.com", QG_ROLE_DEVELOPER);
    resp *a = login("nobody@example.com", "whatever-pass");
    resp *b = login("dev@example.com", "wrong-password");
    assert_error(a, 401, "unauthorized", NULL);
    assert_error(b, 401, "unauthorized", NULL);
    cr_assert_str_eq(err_msg(a), err_msg(b));
    for (int i = 0; i < 4; i++)
        assert_error(login("dev@example.com", "wrong-again"), 401, "unauthorized", NULL);
    /* Five failures: now even the right password waits. */
    resp *t = login("dev@example.com", "long-enough-pw");
    assert_error(t, 429, "rate_limited", NULL);
    cr_assert(atoi(t->retry_after) >= 1, "Retry-After '%s'", t->retry_after);
    /* Other accounts are not affected. */
    cr_assert_eq(login("root@example.com", "root-password-1")->status, 200);

    resp *p = call(qg_h_audit_list, QG_GET, "/api/audit", "action=auth.login&outcome=denied", NULL,
                   &admin, NULL);
    cr_assert_eq(p->status, 200, "%s", p->text);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p->json, "items")), 7);
}

Test(handlers, login_of_disabled_account_and_refresh_after_disable)
{
    qg_user u = make_user("cl@example.com", QG_ROLE_CLIENT);
    resp *p = login("cl@example.com", "long-enough-pw");
    cr_assert_eq(p->status, 200);
    const char *rt = jstr(p->json, "refresh_token");
    p = call(qg_h_users_update, QG_PATCH, "/api/users/x", NULL, "{\"disabled\":true}", &admin,
             u.id);
    cr_assert_eq(p->status, 200, "%s", p->text);
    cr_assert(jbool(p->json, "disabled"));
    assert_error(refresh_call(qg_h_refresh, rt), 403, "forbidden", "account disabled");
    assert_error(login("cl@example.com", "long-enough-pw"), 403, "forbidden", "account disabled");
}

Test(handlers, signup_validation_names_fields)
{
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"{\"email\":\"a@b.co\"}", "field 'password': is required"},
        {"{\"password\":\"long-enough-pw\"}", "field 'email': is required"},
        {"{\"email\":5,\"password\":\"long-enough-pw\"}", "field 'email': expected a string"},
        {"{\"email\":\"a@b.co\",\"password\":\"short\"}", "field 'password': must be at least 10"},
        {"{\"email\":\"not-an-email\",\"password\":\"long-enough-pw\"}", "field 'email'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp *p = call(qg_h_signup, QG_POST, "/api/auth/signup", NULL, cases[i].body, NULL, NULL);
        assert_error(p, 400, "validation_failed", cases[i].msg);
    }
}

Test(handlers, first_run_admin_login_flags_password_change)
{
    qg_conn *c = NULL;
    cr_assert_eq(qg_store_acquire(app.store, &c, NULL), QG_OK);
    cr_assert_eq(qg_user_require_password_change(c, admin.id, NULL), QG_OK);
    qg_store_release(app.store, c);
    resp *p = login("root@example.com", "root-password-1");
    cr_assert_eq(p->status, 200, "%s", p->text);
    cr_assert(jbool(p->json, "password_change_required"));

    qg_user me = user_by_id(admin.id);
    p = call(qg_h_me_password, QG_POST, "/api/me/password", NULL,
             "{\"current_password\":\"wrong-password\",\"new_password\":\"brand-new-pass\"}", &me,
             NULL);
    assert_error(p, 400, "validation_failed", "field 'current_password'");
    p = call(qg_h_me_password, QG_POST, "/api/me/password", NULL,
             "{\"current_password\":\"root-password-1\",\"new_password\":\"short\"}", &me, NULL);
    assert_error(p, 400, "validation_failed", "field 'new_password': must be at least 10");
    p = call(qg_h_me_password, QG_POST, "/api/me/password", NULL,
             "{\"current_password\":\"root-password-1\"}", &me, NULL);
    assert_error(p, 400, "validation_failed", "field 'new_password': is required");
    p = call(qg_h_me_password, QG_POST, "/api/me/password", NULL,
             "{\"current_password\":\"root-password-1\",\"new_password\":\"brand-new-pass\"}", &me,
             NULL);
    cr_assert_eq(p->status, 204, "%s", p->text);
    assert_error(login("root@example.com", "root-password-1"), 401, "unauthorized", NULL);
    p = login("root@example.com", "brand-new-pass");
    cr_assert_eq(p->status, 200);
    cr_assert_null(cJSON_GetObjectItem(p->json, "password_change_required"));
}

/* ---- tokens ---- */

Test(handlers, machine_tokens)
{
    qg_user dev = make_user("dev@example.com", QG_ROLE_DEVELOPER);
    qg_user other = make_user("other@example.com", QG_ROLE_DEVELOPER);
    resp *p = call(qg_h_tokens_create, QG_POST, "/api/tokens", NULL,
                   "{\"name\":\"tradingview\",\"scope\":\"write\"}", &dev, NULL);
    cr_assert_eq(p->status, 201, "%s", p->text);
    const char *tok = jstr(p->json, "token");
    cr_assert(tok && strncmp(tok, "qg_", 3) == 0);
    cr_assert_str_eq(jstr(p->json, "scope"), "write");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(p->json, "last_used_at")));
    cr_assert_eq(strncmp(jstr(p->json, "prefix"), tok, strlen(jstr(p->json, "prefix"))), 0);
    char tid[QG_ID_MAX];
    snprintf(tid, sizeof tid, "%s", jstr(p->json, "id"));
    cr_assert_str_eq(p->audit_target, tid);

    p = call(qg_h_tokens_list, QG_GET, "/api/tokens", NULL, NULL, &dev, NULL);
    cr_assert_eq(p->status, 200);
    cJSON *items = cJSON_GetObjectItem(p->json, "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    cr_assert_null(cJSON_GetObjectItem(items->child, "token"));
    cr_assert_null(strstr(p->text, tok));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(p->json, "next")));
    p = call(qg_h_tokens_list, QG_GET, "/api/tokens", NULL, NULL, &other, NULL);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p->json, "items")), 0);

    assert_error(call(qg_h_tokens_create, QG_POST, "/api/tokens", NULL,
                      "{\"name\":\"x\",\"scope\":\"admin\"}", &dev, NULL),
                 400, "validation_failed", "field 'scope'");
    assert_error(call(qg_h_tokens_create, QG_POST, "/api/tokens", NULL,
                      "{\"name\":\"\",\"scope\":\"read\"}", &dev, NULL),
                 400, "validation_failed", "field 'name'");
    assert_error(call(qg_h_tokens_revoke, QG_DELETE, "/api/tokens/x", NULL, NULL, &other, tid), 404,
                 "not_found", NULL);
    p = call(qg_h_tokens_revoke, QG_DELETE, "/api/tokens/x", NULL, NULL, &dev, tid);
    cr_assert_eq(p->status, 204, "%s", p->text);
    assert_error(call(qg_h_tokens_revoke, QG_DELETE, "/api/tokens/x", NULL, NULL, &dev, tid), 404,
                 "not_found", NULL);
}

/* ---- users ---- */

Test(handlers, user_administration)
{
    resp *p = call(qg_h_users_create, QG_POST, "/api/users", NULL,
                   "{\"email\":\"d@example.com\",\"password\":\"long-enough-pw\"}", &admin, NULL);
    assert_error(p, 400, "validation_failed", "field 'role': is required");
    p = call(qg_h_users_create, QG_POST, "/api/users", NULL,
             "{\"email\":\"d@example.com\",\"password\":\"long-enough-pw\",\"role\":\"boss\"}",
             &admin, NULL);
    assert_error(p, 400, "validation_failed", "field 'role'");
    qg_user d = make_user("d@example.com", QG_ROLE_DEVELOPER);
    cr_assert(d.approved);
    cr_assert_eq(d.role, QG_ROLE_DEVELOPER);
    p = call(qg_h_users_create, QG_POST, "/api/users", NULL,
             "{\"email\":\"d@example.com\",\"password\":\"long-enough-pw\",\"role\":\"client\"}",
             &admin, NULL);
    assert_error(p, 409, "conflict", "email already registered");
    call(qg_h_signup, QG_POST, "/api/auth/signup", NULL,
         "{\"email\":\"pending@example.com\",\"password\":\"long-enough-pw\"}", NULL, NULL);

    p = call(qg_h_users_list, QG_GET, "/api/users", NULL, NULL, &admin, NULL);
    cr_assert_eq(p->status, 200, "%s", p->text);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p->json, "items")), 3);
    p = call(qg_h_users_list, QG_GET, "/api/users", "status=pending", NULL, &admin, NULL);
    cJSON *items = cJSON_GetObjectItem(p->json, "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    cr_assert_str_eq(jstr(items->child, "email"), "pending@example.com");
    assert_error(call(qg_h_users_list, QG_GET, "/api/users", "status=weird", NULL, &admin, NULL),
                 400, "validation_failed", "query parameter 'status'");
    assert_error(call(qg_h_users_list, QG_GET, "/api/users", "limit=0", NULL, &admin, NULL), 400,
                 "validation_failed", "query parameter 'limit'");
    assert_error(call(qg_h_users_list, QG_GET, "/api/users", "limit=501", NULL, &admin, NULL), 400,
                 "validation_failed", "query parameter 'limit'");

    /* Paging: newest first, two pages of two then one. */
    p = call(qg_h_users_list, QG_GET, "/api/users", "limit=2", NULL, &admin, NULL);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p->json, "items")), 2);
    cr_assert_str_eq(jstr(cJSON_GetObjectItem(p->json, "items")->child, "email"),
                     "pending@example.com");
    const char *next = jstr(p->json, "next");
    cr_assert_not_null(next);
    char q[128];
    snprintf(q, sizeof q, "limit=2&before=%s", next);
    p = call(qg_h_users_list, QG_GET, "/api/users", q, NULL, &admin, NULL);
    items = cJSON_GetObjectItem(p->json, "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    cr_assert_str_eq(jstr(items->child, "email"), "root@example.com");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(p->json, "next")));

    p = call(qg_h_users_get, QG_GET, "/api/users/x", NULL, NULL, &admin, d.id);
    cr_assert_eq(p->status, 200);
    cr_assert_str_eq(jstr(p->json, "email"), "d@example.com");
    assert_error(call(qg_h_users_get, QG_GET, "/api/users/x", NULL, NULL, &admin, "usr_nope"), 404,
                 "not_found", NULL);

    p = call(qg_h_users_update, QG_PATCH, "/api/users/x", NULL,
             "{\"role\":\"admin\",\"approved\":true}", &admin, d.id);
    cr_assert_eq(p->status, 200, "%s", p->text);
    cr_assert_str_eq(jstr(p->json, "role"), "admin");
    cr_assert_str_eq(p->audit_target, d.id);
    assert_error(call(qg_h_users_update, QG_PATCH, "/api/users/x", NULL, "{}", &admin, d.id), 400,
                 "validation_failed", NULL);
    assert_error(call(qg_h_users_update, QG_PATCH, "/api/users/x", NULL, "{\"disabled\":\"yes\"}",
                      &admin, d.id),
                 400, "validation_failed", "field 'disabled'");
    assert_error(call(qg_h_users_update, QG_PATCH, "/api/users/x", NULL, "{\"role\":\"client\"}",
                      &admin, "usr_nope"),
                 404, "not_found", NULL);

    /* An admin cannot lock themselves out. */
    assert_error(call(qg_h_users_update, QG_PATCH, "/api/users/x", NULL, "{\"role\":\"developer\"}",
                      &admin, admin.id),
                 409, "conflict", "demote yourself");
    assert_error(call(qg_h_users_update, QG_PATCH, "/api/users/x", NULL, "{\"disabled\":true}",
                      &admin, admin.id),
                 409, "conflict", "disable your own account");
    assert_error(call(qg_h_users_delete, QG_DELETE, "/api/users/x", NULL, NULL, &admin, admin.id),
                 409, "conflict", "delete your own account");
    qg_user still = user_by_id(admin.id);
    cr_assert_eq(still.role, QG_ROLE_ADMIN);
    cr_assert_not(still.disabled);
    /* Harmless self-edits are fine. */
    cr_assert_eq(call(qg_h_users_update, QG_PATCH, "/api/users/x", NULL, "{\"disabled\":false}",
                      &admin, admin.id)
                     ->status,
                 200);

    p = call(qg_h_users_delete, QG_DELETE, "/api/users/x", NULL, NULL, &admin, d.id);
    cr_assert_eq(p->status, 204, "%s", p->text);
    cr_assert_str_eq(p->audit_target, d.id);
    assert_error(call(qg_h_users_get, QG_GET, "/api/users/x", NULL, NULL, &admin, d.id), 404,
                 "not_found", NULL);
    assert_error(call(qg_h_users_delete, QG_DELETE, "/api/users/x", NULL, NULL, &admin, d.id), 404,
                 "not_found", NULL);
}

/* ---- vault ---- */

Test(handlers, secrets_round_trip_never_shows_the_value)
{
    const char *value = "sk-test-1234567890abcdefWXYZ";
    char body[256];
    snprintf(body, sizeof body, "{\"value\":\"%s\"}", value);
    resp *p =
        call(qg_h_secrets_put, QG_PUT, "/api/secrets/x", NULL, body, &admin, "OPENAI_API_KEY");
    cr_assert_eq(p->status, 200, "%s", p->text);
    cr_assert_str_eq(jstr(p->json, "name"), "OPENAI_API_KEY");
    cr_assert_str_eq(jstr(p->json, "masked"), "sk-...WXYZ");
    cr_assert_str_eq(p->audit_target, "OPENAI_API_KEY");
    cr_assert_null(strstr(p->text, value));
    cr_assert_null(strstr(p->text, "1234567890"));

    p = call(qg_h_secrets_list, QG_GET, "/api/secrets", NULL, NULL, &admin, NULL);
    cr_assert_eq(p->status, 200);
    cJSON *items = cJSON_GetObjectItem(p->json, "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    cr_assert_str_eq(jstr(items->child, "masked"), "sk-...WXYZ");
    cr_assert_null(cJSON_GetObjectItem(items->child, "value"));
    cr_assert_null(strstr(p->text, "1234567890"));

    /* The value really is stored. */
    qg_conn *c = NULL;
    char out[256];
    cr_assert_eq(qg_store_acquire(app.store, &c, NULL), QG_OK);
    cr_assert_eq(qg_vault_get(app.vault, c, "OPENAI_API_KEY", out, sizeof out, NULL), QG_OK);
    qg_store_release(app.store, c);
    cr_assert_str_eq(out, value);

    assert_error(call(qg_h_secrets_put, QG_PUT, "/api/secrets/x", NULL, body, &admin, "bad name!"),
                 400, "validation_failed", "name");
    p = call(qg_h_secrets_put, QG_PUT, "/api/secrets/x", NULL, "{\"value\":5}", &admin, "K");
    assert_error(p, 400, "validation_failed", "field 'value': expected a string");
    p = call(qg_h_secrets_put, QG_PUT, "/api/secrets/x", NULL, "{\"value\":\"\"}", &admin, "K");
    assert_error(p, 400, "validation_failed", "value");

    p = call(qg_h_secrets_delete, QG_DELETE, "/api/secrets/x", NULL, NULL, &admin,
             "OPENAI_API_KEY");
    cr_assert_eq(p->status, 204, "%s", p->text);
    assert_error(call(qg_h_secrets_delete, QG_DELETE, "/api/secrets/x", NULL, NULL, &admin,
                      "OPENAI_API_KEY"),
                 404, "not_found", NULL);
    for (int i = 0; i < nresps; i++)
        cr_assert_null(strstr(resps[i]->text, value), "response %d shows the value", i);
}

/* ---- audit ---- */

static void audit_row(const char *actor, const char *action, const char *outcome, int status,
                      int64_t ts)
{
    qg_conn *c = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(app.store, &c, &err), QG_OK);
    qg_audit_entry e = {0};
    e.ts = ts;
    e.actor_id = actor;
    e.actor_email = actor ? "someone@example.com" : NULL;
    e.action = action;
    e.target = "ds_1";
    e.outcome = outcome;
    e.status = status;
    e.address = "10.0.0.1";
    e.request_id = "r1";
    cr_assert_eq(qg_audit_append(c, &e, &err), QG_OK, "%s", err.msg);
    qg_store_release(app.store, c);
}

static int audit_count(const char *query)
{
    resp *p = call(qg_h_audit_list, QG_GET, "/api/audit", query, NULL, &admin, NULL);
    cr_assert_eq(p->status, 200, "%s: %s", query, p->text);
    return cJSON_GetArraySize(cJSON_GetObjectItem(p->json, "items"));
}

Test(handlers, audit_filters)
{
    int64_t day = QG_MS_PER_DAY;
    int64_t nov1 = qg_days_from_civil(2026, 11, 1) * day;
    audit_row("usr_a", "POST /api/datasets", "ok", 201, nov1 + 3600000);
    audit_row("usr_a", "DELETE /api/datasets/{id}", "denied", 403, nov1 + day + 5);
    audit_row("usr_b", "POST /api/datasets", "error", 500, nov1 + 2 * day + 5);
    audit_row(NULL, "auth.login", "denied", 401, nov1 + 29 * day + 23 * 3600000LL);

    cr_assert_eq(audit_count(""), 4);
    cr_assert_eq(audit_count("actor=usr_a"), 2);
    cr_assert_eq(audit_count("action=POST+%2Fapi%2Fdatasets"), 2);
    cr_assert_eq(audit_count("outcome=denied"), 2);
    cr_assert_eq(audit_count("from=2026-11-02&to=2026-11-02"), 1);
    cr_assert_eq(audit_count("from=2026-11-02"), 3);
    cr_assert_eq(audit_count("to=2026-11-30"), 4);
    cr_assert_eq(audit_count("to=2026-11-29"), 3);
    cr_assert_eq(audit_count("actor=usr_a&outcome=ok"), 1);

    resp *p = call(qg_h_audit_list, QG_GET, "/api/audit", "limit=3", NULL, &admin, NULL);
    cJSON *items = cJSON_GetObjectItem(p->json, "items");
    cr_assert_eq(cJSON_GetArraySize(items), 3);
    cr_assert_str_eq(jstr(items->child, "action"), "auth.login"); /* newest first */
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(items->child, "actor_id")));
    cr_assert_str_eq(jstr(items->child, "ts"), "2026-11-30T23:00:00Z");
    const char *next = jstr(p->json, "next");
    cr_assert_not_null(next);
    char q[128];
    snprintf(q, sizeof q, "limit=3&before=%s", next);
    p = call(qg_h_audit_list, QG_GET, "/api/audit", q, NULL, &admin, NULL);
    items = cJSON_GetObjectItem(p->json, "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    cr_assert_str_eq(jstr(items->child, "actor_id"), "usr_a");
    cr_assert_eq(cJSON_GetObjectItem(items->child, "status")->valueint, 201);

    assert_error(call(qg_h_audit_list, QG_GET, "/api/audit", "from=yesterday", NULL, &admin, NULL),
                 400, "validation_failed", "query parameter 'from'");
    assert_error(call(qg_h_audit_list, QG_GET, "/api/audit", "to=2026-13-01", NULL, &admin, NULL),
                 400, "validation_failed", "query parameter 'to'");
    assert_error(call(qg_h_audit_list, QG_GET, "/api/audit", "outcome=maybe", NULL, &admin, NULL),
                 400, "validation_failed", "query parameter 'outcome'");
    assert_error(call(qg_h_audit_list, QG_GET, "/api/audit", "limit=abc", NULL, &admin, NULL), 400,
                 "validation_failed", "query parameter 'limit'");
}

/* ---- meta ---- */

Test(handlers, probes_and_metrics)
{
    resp *p = call(qg_h_health, QG_GET, "/health", NULL, NULL, NULL, NULL);
    cr_assert_eq(p->status, 200);
    cr_assert_str_eq(p->text, "{\"status\":\"ok\"}");
    p = call(qg_h_ready, QG_GET, "/ready", NULL, NULL, NULL, NULL);
    cr_assert_eq(p->status, 200);
    cr_assert_str_eq(jstr(p->json, "status"), "ready");
    atomic_store(&app.stopping, true);
    assert_error(call(qg_h_ready, QG_GET, "/ready", NULL, NULL, NULL, NULL), 503, "unavailable",
                 NULL);
    atomic_store(&app.stopping, false);

    qg_metrics_request(app.metrics, 0, 200, 1500);
    p = call(qg_h_metrics, QG_GET, "/metrics", NULL, NULL, NULL, NULL);
    cr_assert_eq(p->status, 200);
    cr_assert_str_eq(p->type, "text/plain; version=0.0.4; charset=utf-8");
    cr_assert(strstr(p->text, "quantgate_http_requests_total"), "%.300s", p->text);
    cr_assert(strstr(p->text, "sqlite"), "%.300s", p->text);
}

Test(handlers, route_schemas_are_json_objects)
{
    for (const qg_route *rt = qg_routes; rt->pattern; rt++) {
        const char *texts[2] = {rt->request_schema, rt->response_schema};
        for (int i = 0; i < 2; i++) {
            if (!texts[i]) continue;
            cJSON *s = cJSON_Parse(texts[i]);
            cr_assert(cJSON_IsObject(s), "%s %s: schema %d is not a JSON object",
                      qg_method_name(rt->method), rt->pattern, i);
            cJSON_Delete(s);
        }
    }
}

static cJSON *find_param(cJSON *op, const char *in, const char *name)
{
    cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(op, "parameters"))
    {
        if (strcmp(jstr(p, "in"), in) == 0 && strcmp(jstr(p, "name"), name) == 0) return p;
    }
    return NULL;
}

Test(handlers, openapi_describes_every_route)
{
    resp *p = call(qg_h_openapi, QG_GET, "/api/openapi.json", NULL, NULL, NULL, NULL);
    cr_assert_eq(p->status, 200);
    cr_assert_not_null(p->json);
    cr_assert_str_eq(jstr(p->json, "openapi"), "3.1.0");
    cr_assert_not_null(jstr(cJSON_GetObjectItem(p->json, "info"), "version"));
    cJSON *paths = cJSON_GetObjectItem(p->json, "paths");
    int nops = 0;
    for (const qg_route *rt = qg_routes; rt->pattern; rt++) {
        cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, rt->pattern);
        cr_assert_not_null(item, "path %s missing", rt->pattern);
        char m[16];
        snprintf(m, sizeof m, "%s", qg_method_name(rt->method));
        for (char *c = m; *c; c++) *c = (char)(*c - 'A' + 'a');
        cJSON *op = cJSON_GetObjectItemCaseSensitive(item, m);
        cr_assert_not_null(op, "%s %s missing", m, rt->pattern);
        nops++;
        cr_assert_not_null(cJSON_GetObjectItem(op, "responses"));
        cr_assert_not_null(cJSON_GetObjectItem(cJSON_GetObjectItem(op, "responses"), "500"));
        cr_assert_str_eq(jstr(op, "x-required-role"),
                         rt->role == QG_ROLE_NONE ? "anyone" : qg_role_name(rt->role));
        cr_assert_eq(cJSON_GetObjectItem(op, "security") != NULL, rt->role != QG_ROLE_NONE);
        if (strstr(rt->pattern, "{id}"))
            cr_assert_not_null(find_param(op, "path", "id"), "%s", rt->pattern);
        if (rt->request_schema)
            cr_assert_not_null(cJSON_GetObjectItem(op, "requestBody"), "%s", rt->pattern);
    }
    cr_assert_eq(nops, route_count());
    /* Spot checks on the derived parts. */
    cJSON *users = cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/api/users"), "get");
    cr_assert_not_null(find_param(users, "query", "status"));
    cr_assert_not_null(find_param(users, "query", "limit"));
    cJSON *signup = cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/api/auth/signup"), "post");
    cJSON *r201 = cJSON_GetObjectItem(cJSON_GetObjectItem(signup, "responses"), "201");
    cr_assert_not_null(r201);
    cr_assert_null(strstr(p->text, "x-status"));
    cr_assert_null(strstr(p->text, "x-content-type"));
    cJSON *logout = cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/api/auth/logout"), "post");
    cJSON *r204 = cJSON_GetObjectItem(cJSON_GetObjectItem(logout, "responses"), "204");
    cr_assert_not_null(r204);
    cr_assert_null(cJSON_GetObjectItem(r204, "content"));
    cJSON *comp = cJSON_GetObjectItem(cJSON_GetObjectItem(p->json, "components"), "schemas");
    cr_assert_not_null(cJSON_GetObjectItem(comp, "Error"));
    cr_assert_not_null(cJSON_GetObjectItem(comp, "User"));
    cr_assert_not_null(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(p->json, "components"), "securitySchemes"),
        "bearerAuth"));
    /* Every $ref points at a defined component. */
    const char *s = p->text;
    while ((s = strstr(s, "\"$ref\":\"#/components/schemas/"))) {
        s += strlen("\"$ref\":\"#/components/schemas/");
        char name[64];
        size_t n = strcspn(s, "\"");
        snprintf(name, sizeof name, "%.*s", (int)n, s);
        cr_assert_not_null(cJSON_GetObjectItem(comp, name), "dangling $ref %s", name);
    }
    /* Cached: the same bytes twice. */
    resp *again = call(qg_h_openapi, QG_GET, "/api/openapi.json", NULL, NULL, NULL, NULL);
    cr_assert_str_eq(again->text, p->text);
}

Test(handlers, docs_page_lists_every_path_and_is_self_contained)
{
    resp *p = call(qg_h_docs, QG_GET, "/docs", NULL, NULL, NULL, NULL);
    cr_assert_eq(p->status, 200);
    cr_assert(strncmp(p->type, "text/html", 9) == 0);
    for (const qg_route *rt = qg_routes; rt->pattern; rt++)
        cr_assert(strstr(p->text, rt->pattern), "docs lack %s", rt->pattern);
    cr_assert(strstr(p->text, "/api/openapi.json"));
    cr_assert_null(strstr(p->text, "<script"));
    cr_assert_null(strstr(p->text, "http://"));
    cr_assert_null(strstr(p->text, "https://"));
    cr_assert_null(strstr(p->text, "x-status"));
}
