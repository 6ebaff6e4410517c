/*
 * test_ai_embed.c - provider embeddings: the three wire formats encoded and
 * decoded on recorded bytes (the embed samples in tests/data/ai), then
 * qg_ai_embed end to end against the fake provider server (tests/fakellm/fakellm.py, started
 * as a child process): routing falls back after a failing deployment, a
 * rate limit is retried after Retry-After, a budget refuses before anything
 * is sent, usage and cost land in ai_calls, a reply with the wrong number
 * of vectors is an error naming the deployment, Gemini's usage is estimated.
 */
#include <criterion/criterion.h>

#include "ai/ai.h"
#include "ai/ai_int.h"
#include "ai/catalog.h"
#include "ai/embed.h"
#include "ai/usage.h"
#include "ai_wire.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef QG_TEST_DATA
#define QG_TEST_DATA "tests/data"
#endif

/* ---- wire formats on recorded bytes ---- */

static qg_ai_deployment dep(const char *provider, const char *model, const char *base)
{
    qg_ai_deployment d = {0};
    snprintf(d.id, sizeof d.id, "dep_%s", provider);
    snprintf(d.model_name, sizeof d.model_name, "embed");
    snprintf(d.provider, sizeof d.provider, "%s", provider);
    snprintf(d.model, sizeof d.model, "%s", model);
    snprintf(d.base_url, sizeof d.base_url, "%s", base);
    d.enabled = true;
    return d;
}

static cJSON *body_json(const qg_ai_http_req *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body.data, r->body.len);
    cr_assert_not_null(j, "request body is JSON: %.*s", (int)r->body.len, r->body.data);
    return j;
}

static const char *const two[] = {"bullish break of structure", "fair value gap"};

Test(ai_embed, openai_encode)
{
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    qg_ai_http_req r;
    qg_ai_deployment d = dep("openai", "text-embedding-3-small", "https://api.openai.com/v1/");
    const qg_ai_provider *p = qg_ai_provider_find("openai");
    cr_assert_eq(p->encode_embed(&d, "sk-test", two, 2, &a, &r, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(r.method, "POST");
    cr_assert_str_eq(r.url, "https://api.openai.com/v1/embeddings");
    cr_assert_str_eq(ai_header(&r, "Authorization:"), "Authorization: Bearer sk-test");
    cJSON *j = body_json(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "model")->valuestring, "text-embedding-3-small");
    cJSON *in = cJSON_GetObjectItem(j, "input");
    cr_assert_eq(cJSON_GetArraySize(in), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(in, 1)->valuestring, "fair value gap");
    cJSON_Delete(j);
    qg_buf_free(&r.body);

    /* Azure: the deployment in the path, api-version, api-key header */
    d = dep("openai", "emb-small", "https://res.openai.azure.com");
    snprintf(d.api_version, sizeof d.api_version, "2024-02-01");
    cr_assert_eq(p->encode_embed(&d, "azkey", two, 1, &a, &r, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(r.url, "https://res.openai.azure.com/openai/deployments/emb-small/"
                            "embeddings?api-version=2024-02-01");
    cr_assert_str_eq(ai_header(&r, "api-key:"), "api-key: azkey");
    cr_assert_null(ai_header(&r, "Authorization:"));
    qg_buf_free(&r.body);

    /* no key: no header (local servers); a key with CR is refused without echoing it */
    d = dep("openai", "m", "http://127.0.0.1:1234/v1");
    cr_assert_eq(p->encode_embed(&d, "", two, 1, &a, &r, &err), QG_OK);
    cr_assert_null(ai_header(&r, "Authorization:"));
    qg_buf_free(&r.body);
    cr_assert_eq(p->encode_embed(&d, "sk-secret\r\nX: y", two, 1, &a, &r, &err), QG_EINVAL);
    cr_assert_null(strstr(err.msg, "sk-secret"), "%s", err.msg);
    qg_arena_free(&a);
}

Test(ai_embed, openai_decode)
{
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    size_t n;
    char *body = ai_slurp("openai_embed_response.json", &n);
    qg_ai_embed_reply r;
    const qg_ai_provider *p = qg_ai_provider_find("openai");
    cr_assert_eq(p->decode_embed(body, n, &a, &r, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.dim, 4);
    /* placed by index: data[1] has index 0 */
    cr_assert_float_eq(r.vectors[0], -0.006929283f, 1e-9);
    cr_assert_float_eq(r.vectors[4], 0.0023064255f, 1e-9);
    cr_assert_eq(r.usage.input, 8);
    free(body);

    body = ai_slurp("openai_embed_ragged.json", &n);
    cr_assert_eq(p->decode_embed(body, n, &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL);
    cr_assert(strstr(err.msg, "embedding 1 has 2 dimensions"), "%s", err.msg);
    free(body);

    static const char *const bad[] = {
        "not json",
        "{\"object\":\"list\"}",
        "{\"data\":[]}",
        "{\"data\":[{\"index\":0,\"embedding\":[1,\"x\"]}]}",
        "{\"data\":[{\"index\":0,\"embedding\":[1]},{\"index\":0,\"embedding\":[2]}]}",
        "{\"data\":[{\"index\":5,\"embedding\":[1]}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(p->decode_embed(bad[i], strlen(bad[i]), &a, &r, &err), QG_EINVAL, "%s",
                     bad[i]);
        cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL, "%s", bad[i]);
    }
    /* an error object in a 200 body is an error, not a protocol failure */
    const char *e200 = "{\"error\":{\"message\":\"upstream failed\",\"code\":502}}";
    cr_assert_eq(p->decode_embed(e200, strlen(e200), &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_ESERVER);
    qg_arena_free(&a);
}

Test(ai_embed, gemini_encode_decode)
{
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    qg_ai_http_req r;
    qg_ai_deployment d = dep("gemini", "models/text-embedding-004", "");
    const qg_ai_provider *p = qg_ai_provider_find("gemini");
    cr_assert_eq(p->encode_embed(&d, "gk", two, 1, &a, &r, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(r.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                            "text-embedding-004:embedContent");
    cr_assert_str_eq(ai_header(&r, "x-goog-api-key:"), "x-goog-api-key: gk");
    cr_assert_null(strstr(r.url, "gk"), "the key never goes into the URL");
    cJSON *j = body_json(&r);
    cJSON *part =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "content"), "parts"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(part, "text")->valuestring, two[0]);
    cJSON_Delete(j);
    qg_buf_free(&r.body);

    cr_assert_eq(p->encode_embed(&d, "gk", two, 2, &a, &r, &err), QG_OK, "%s", err.msg);
    cr_assert(strstr(r.url, "text-embedding-004:batchEmbedContents"), "%s", r.url);
    j = body_json(&r);
    cJSON *reqs = cJSON_GetObjectItem(j, "requests");
    cr_assert_eq(cJSON_GetArraySize(reqs), 2);
    cJSON *r1 = cJSON_GetArrayItem(reqs, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(r1, "model")->valuestring, "models/text-embedding-004");
    part = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r1, "content"), "parts"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(part, "text")->valuestring, two[1]);
    cJSON_Delete(j);
    qg_buf_free(&r.body);

    size_t n;
    char *body = ai_slurp("gemini_embed_batch_response.json", &n);
    qg_ai_embed_reply out;
    cr_assert_eq(p->decode_embed(body, n, &a, &out, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(out.n, 2);
    cr_assert_eq(out.dim, 5);
    cr_assert_float_eq(out.vectors[5], 0.0064471564f, 1e-9);
    cr_assert_lt(out.usage.input, 0, "Gemini reports no token count");
    free(body);
    body = ai_slurp("gemini_embed_response.json", &n);
    cr_assert_eq(p->decode_embed(body, n, &a, &out, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(out.n, 1);
    cr_assert_eq(out.dim, 5);
    cr_assert_float_eq(out.vectors[4], -0.009518873f, 1e-9);
    free(body);
    const char *bad = "{\"candidates\":[]}";
    cr_assert_eq(p->decode_embed(bad, strlen(bad), &a, &out, &err), QG_EINVAL);
    cr_assert_eq(out.error.kind, QG_AI_EPROTOCOL);

    /* errors go through the chat decode_error: a bad key is auth */
    body = ai_slurp("gemini_error_key.json", &n);
    qg_ai_error e;
    p->decode_error(400, NULL, body, n, &e);
    cr_assert_eq(e.kind, QG_AI_EAUTH);
    free(body);
    qg_arena_free(&a);
}

Test(ai_embed, ollama_encode_decode)
{
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    qg_ai_http_req r;
    qg_ai_deployment d = dep("ollama", "all-minilm", "localhost:11434/api/");
    const qg_ai_provider *p = qg_ai_provider_find("ollama");
    cr_assert_eq(p->encode_embed(&d, NULL, two, 2, &a, &r, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(r.url, "http://localhost:11434/api/embed");
    cr_assert_null(ai_header(&r, "Authorization:"));
    cJSON *j = body_json(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "model")->valuestring, "all-minilm");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "input")), 2);
    cJSON_Delete(j);
    qg_buf_free(&r.body);

    size_t n;
    char *body = ai_slurp("ollama_embed_response.json", &n);
    qg_ai_embed_reply out;
    cr_assert_eq(p->decode_embed(body, n, &a, &out, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(out.n, 2);
    cr_assert_eq(out.dim, 3);
    cr_assert_float_eq(out.vectors[4], 0.06042469f, 1e-9);
    cr_assert_eq(out.usage.input, 8);
    free(body);
    const char *e200 = "{\"error\":\"model \\\"x\\\" not found, try pulling it first\"}";
    cr_assert_eq(p->decode_embed(e200, strlen(e200), &a, &out, &err), QG_EINVAL);
    cr_assert(strstr(out.error.message, "not found"), "%s", out.error.message);
    qg_arena_free(&a);
}

Test(ai_embed, providers_without_embeddings)
{
    cr_assert_null(qg_ai_provider_find("builtin")->encode_embed);
    cr_assert_null(qg_ai_provider_find("anthropic")->encode_embed);
    cr_assert_not_null(qg_ai_provider_find("openai")->decode_embed);
    cr_assert_not_null(qg_ai_provider_find("gemini")->decode_embed);
    cr_assert_not_null(qg_ai_provider_find("ollama")->decode_embed);
}

/* ---- end to end against fakellm ---- */

static char dir[256];
static qg_store *store;
static qg_ai *ai;
static pid_t fake_pid;
static int fake_port;
static FILE *fake_out;

static void start_fakellm(void)
{
    char root[1024];
    snprintf(root, sizeof root, "%s", QG_TEST_DATA);
    char *slash = strrchr(root, '/'); /* tests/data -> tests */
    cr_assert_not_null(slash);
    *slash = 0;
    char script[1100];
    snprintf(script, sizeof script, "%s/fakellm/fakellm.py", root);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    fake_pid = fork();
    if (fake_pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execlp("python3", "python3", script, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    fake_out = fdopen(pfd[0], "r");
    char line[128] = "";
    cr_assert_not_null(fgets(line, sizeof line, fake_out), "fakellm printed nothing");
    cr_assert_eq(sscanf(line, "fakellm listening on %d", &fake_port), 1, "%s", line);
}

static void setup(void)
{
    /* fast retries; options are read once per process (each test is one) */
    setenv("QG_AI_RETRIES", "1", 1);
    setenv("QG_AI_RETRY_BASE_MS", "1", 1);
    setenv("QG_AI_RETRY_CAP_MS", "5", 1);
    qg_error err = {0};
    snprintf(dir, sizeof dir, "/tmp/qg_aiembed_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char url[400];
    snprintf(url, sizeof url, "sqlite://%s/t.db", dir);
    cr_assert_eq(qg_store_open(url, 4, true, &store, &err), QG_OK, "%s", err.msg);
    qg_ai_config cfg = {.store = store, .concurrency = 2};
    cr_assert_eq(qg_ai_new(&cfg, &ai, &err), QG_OK, "%s", err.msg);
    qg_ai_metrics_reset();
    start_fakellm();
}

static void teardown(void)
{
    if (ai) qg_ai_free(ai);
    if (store) qg_store_close(store);
    if (fake_pid > 0) {
        kill(fake_pid, SIGTERM);
        waitpid(fake_pid, NULL, 0);
    }
    if (fake_out) fclose(fake_out);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* One request to fakellm's control API; the reply body in out (caller frees). */
static int fake_http(const char *method, const char *path, const char *body, qg_buf *out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", fake_port, path);
    qg_ai_http_req r = {.method = method, .url = url, .nheaders = 1};
    r.headers[0] = "Content-Type: application/json";
    qg_buf_init(&r.body, 1 << 16);
    if (body) qg_buf_puts(&r.body, body);
    qg_ai_exchange x = {.req = &r};
    cr_assert_eq(qg_ai_transport_perform(qg_ai_get_transport(ai), &x), QG_OK, "%s", x.errmsg);
    int status = x.http_status;
    if (out) {
        qg_buf_init(out, 1 << 22);
        if (x.body.len) qg_buf_append(out, x.body.data, x.body.len);
    }
    qg_ai_exchange_free(&x);
    qg_buf_free(&r.body);
    return status;
}

static void fake_script(const char *model, const char *steps_json)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"steps\":%s}", model, steps_json);
    cr_assert_eq(fake_http("POST", "/_fake/script", body, NULL), 200);
}

/* How many requests fakellm has recorded on paths containing `part`. */
static int fake_count(const char *part)
{
    qg_buf b;
    cr_assert_eq(fake_http("GET", "/_fake/requests", NULL, &b), 200);
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    cr_assert(cJSON_IsArray(j));
    int n = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        const char *p = cJSON_GetObjectItem(it, "path")->valuestring;
        if (strstr(p, part)) n++;
    }
    cJSON_Delete(j);
    qg_buf_free(&b);
    return n;
}

/* A database named model with deployments "provider:model[:price_in]", in
 * priority order, all pointing at fakellm. */
static void make_model(const char *name, const char *const *deps, size_t n)
{
    qg_error err = {0};
    qg_conn *c = NULL;
    cr_assert_eq(qg_store_acquire(store, &c, &err), QG_OK, "%s", err.msg);
    qg_ai_model m = {0};
    snprintf(m.name, sizeof m.name, "%s", name);
    cr_assert_eq(qg_ai_catalog_model_put(c, &m, NULL, &err), QG_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        char prov[16], model[64];
        double price = 0;
        cr_assert(sscanf(deps[i], "%15[^:]:%63[^:]:%lf", prov, model, &price) >= 2);
        qg_ai_deployment d = {0};
        snprintf(d.model_name, sizeof d.model_name, "%s", name);
        snprintf(d.provider, sizeof d.provider, "%s", prov);
        snprintf(d.model, sizeof d.model, "%s", model);
        snprintf(d.base_url, sizeof d.base_url, "http://127.0.0.1:%d%s", fake_port,
                 !strcmp(prov, "openai") ? "/v1" : "");
        d.price_in = price;
        d.priority = (int)i;
        d.connect_timeout_ms = 2000;
        d.read_timeout_ms = 5000;
        d.enabled = true;
        cr_assert_eq(qg_ai_catalog_dep_put(c, &d, true, &err), QG_OK, "%s", err.msg);
    }
    qg_store_release(store, c);
    cr_assert_eq(qg_ai_reload(ai, &err), QG_OK, "%s", err.msg);
}

typedef struct call_row {
    int64_t input, attempts;
    double cost;
    char deployment[64], provider[16], outcome[32], error[256];
    int rows;
} call_row;

static qg_status take_row(void *ud, const qg_row *r)
{
    call_row *c = ud;
    c->rows++;
    c->input = qg_row_int(r, 0);
    c->attempts = qg_row_int(r, 1);
    c->cost = qg_row_double(r, 2);
    snprintf(c->deployment, sizeof c->deployment, "%s", qg_row_text(r, 3) ? qg_row_text(r, 3) : "");
    snprintf(c->provider, sizeof c->provider, "%s", qg_row_text(r, 4) ? qg_row_text(r, 4) : "");
    snprintf(c->outcome, sizeof c->outcome, "%s", qg_row_text(r, 5));
    snprintf(c->error, sizeof c->error, "%s", qg_row_text(r, 6) ? qg_row_text(r, 6) : "");
    return QG_OK;
}

/* The last ai_calls row of named model `model`. */
static call_row last_call(const char *model)
{
    qg_ai_flush(ai);
    call_row row = {0};
    qg_error err = {0};
    qg_conn *c = NULL;
    cr_assert_eq(qg_store_acquire(store, &c, &err), QG_OK, "%s", err.msg);
    qg_val p[] = {QG_VTEXT(model)};
    cr_assert_eq(qg_conn_query(c,
                               "SELECT input_tokens, attempts, cost, deployment_id, provider, "
                               "outcome, error FROM ai_calls WHERE model_name = ? ORDER BY ts",
                               p, 1, take_row, &row, &err),
                 QG_OK, "%s", err.msg);
    qg_store_release(store, c);
    return row;
}

static double norm(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

static const char *const three[] = {"bullish break of structure on EURUSD", "london session",
                                    "fair value gap filled"};

Test(ai_embed, fallback_after_server_errors, .init = setup, .fini = teardown, .timeout = 30)
{
    make_model("emb", (const char *const[]){"ollama:broken", "openai:te:0.02"}, 2);
    /* the first deployment fails twice (one retry allowed), then routing moves on */
    fake_script("broken", "[{\"status\":500},{\"status\":500}]");
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    qg_ai_embed_call call = {.model = "emb", .inputs = three, .n_inputs = 3};
    qg_ai_embed_result res;
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(res.n, 3);
    cr_assert_eq(res.dim, 16);
    cr_assert_str_eq(res.provider, "openai");
    cr_assert_eq(res.attempts, 3);
    cr_assert_float_eq(norm(res.vectors, 16), 1.0, 1e-4);
    cr_assert_float_eq(norm(res.vectors + 32, 16), 1.0, 1e-4);
    /* fakellm's token count: words of the inputs (6 + 2 + 4) */
    cr_assert_eq(res.usage.input, 12);
    cr_assert_eq(res.usage.output, 0);
    cr_assert(!res.usage_estimated);
    cr_assert_float_eq(res.cost_usd, 12 * 0.02 / 1e6, 1e-15);
    cr_assert_eq(fake_count("/api/embed"), 2);
    cr_assert_eq(fake_count("/v1/embeddings"), 1);

    call_row row = last_call("emb");
    cr_assert_eq(row.rows, 1);
    cr_assert_str_eq(row.outcome, "ok");
    cr_assert_str_eq(row.provider, "openai");
    cr_assert_str_eq(row.deployment, res.deployment_id);
    cr_assert_eq(row.input, 12);
    cr_assert_eq(row.attempts, 3);
    cr_assert_float_eq(row.cost, 12 * 0.02 / 1e6, 1e-15);

    /* equal texts give equal vectors across calls */
    qg_ai_embed_call one = {.model = "emb", .inputs = three + 2, .n_inputs = 1};
    qg_ai_embed_result res2;
    cr_assert_eq(qg_ai_embed(ai, &one, &a, &res2, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(memcmp(res2.vectors, res.vectors + 32, 16 * sizeof(float)), 0);
    qg_arena_free(&a);
}

Test(ai_embed, rate_limit_retried_after_retry_after, .init = setup, .fini = teardown, .timeout = 30)
{
    make_model("emb", (const char *const[]){"openai:te"}, 1);
    fake_script("te", "[{\"status\":429,\"retry_after\":\"0\"}]");
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    qg_ai_embed_call call = {.model = "emb", .inputs = three, .n_inputs = 2};
    qg_ai_embed_result res;
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(res.attempts, 2);
    cr_assert_eq(res.n, 2);
    cr_assert_eq(fake_count("/v1/embeddings"), 2);

    /* a bad key is not retried; with no other deployment the call fails */
    fake_script("te", "[{\"status\":401}]");
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_EAGAIN);
    cr_assert_eq(res.error.kind, QG_AI_EAUTH);
    cr_assert_eq(res.attempts, 1);
    cr_assert(strstr(err.msg, "emb"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "sk-fake"), "no key material: %s", err.msg);
    call_row row = last_call("emb");
    cr_assert_eq(row.rows, 2);
    cr_assert_str_eq(row.outcome, qg_ai_errkind_name(QG_AI_EAUTH));
    qg_arena_free(&a);
}

Test(ai_embed, budget_refuses_before_sending, .init = setup, .fini = teardown, .timeout = 30)
{
    make_model("emb", (const char *const[]){"openai:te:1"}, 1);
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    qg_ai_embed_call call = {.model = "emb", .inputs = three, .n_inputs = 3};
    qg_ai_embed_result res;
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(fake_count("/v1/embeddings"), 1);

    /* a global budget of 5 tokens a day, already spent (12 tokens) */
    qg_conn *c = NULL;
    cr_assert_eq(qg_store_acquire(store, &c, &err), QG_OK, "%s", err.msg);
    qg_ai_budget b = {0};
    snprintf(b.scope, sizeof b.scope, "global");
    snprintf(b.period, sizeof b.period, "day");
    b.has_tokens = true;
    b.max_tokens = 5;
    b.soft_pct = 0.8;
    cr_assert_eq(qg_ai_budget_put(c, &b, NULL, &err), QG_OK, "%s", err.msg);
    qg_store_release(store, c);

    memset(&err, 0, sizeof err);
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_EDENIED);
    cr_assert_eq(res.error.kind, QG_AI_EBUDGET);
    cr_assert(strstr(err.msg, "budget"), "%s", err.msg);
    cr_assert_null(res.vectors);
    cr_assert_eq(fake_count("/v1/embeddings"), 1, "nothing was sent");
    call_row row = last_call("emb");
    cr_assert_eq(row.rows, 2, "the refused call is recorded too");
    cr_assert_str_eq(row.outcome, qg_ai_errkind_name(QG_AI_EBUDGET));
    cr_assert_eq(row.input, 0);
    qg_arena_free(&a);
}

Test(ai_embed, wrong_vector_count_names_deployment, .init = setup, .fini = teardown, .timeout = 30)
{
    make_model("emb", (const char *const[]){"openai:te"}, 1);
    fake_script("te", "[{\"count\":1}]");
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    qg_ai_embed_call call = {.model = "emb", .inputs = three, .n_inputs = 3};
    qg_ai_embed_result res;
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_EAGAIN);
    cr_assert_eq(res.error.kind, QG_AI_EPROTOCOL);
    cr_assert(strstr(err.msg, "returned 1 vectors for 3 inputs") && strstr(err.msg, "dep_"), "%s",
              err.msg);
    cr_assert_eq(res.attempts, 1, "an undecodable reply is not retried");

    fake_script("te", "[{\"ragged\":true}]");
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_EAGAIN);
    cr_assert(strstr(err.msg, "dimensions"), "%s", err.msg);
    qg_arena_free(&a);
}

Test(ai_embed, gemini_and_ollama_end_to_end, .init = setup, .fini = teardown, .timeout = 30)
{
    make_model("gem", (const char *const[]){"gemini:text-embedding-004:0.1"}, 1);
    make_model("oll", (const char *const[]){"ollama:all-minilm"}, 1);
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    qg_ai_embed_result res;
    qg_ai_embed_call call = {.model = "gem", .inputs = three, .n_inputs = 3};
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(res.n, 3);
    cr_assert(res.usage_estimated);
    /* characters / 4 per input: 36/4 + 14/4 + 21/4 = 9 + 3 + 5 */
    cr_assert_eq(res.usage.input, 17);
    cr_assert_eq(fake_count(":batchEmbedContents"), 1);
    call.n_inputs = 1;
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(fake_count(":embedContent"), 1);
    call_row row = last_call("gem");
    cr_assert(strstr(row.error, "estimated"), "marked in ai_calls: '%s'", row.error);

    call = (qg_ai_embed_call){.model = "oll", .inputs = three, .n_inputs = 2};
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(res.n, 2);
    cr_assert_eq(res.usage.input, 8);
    cr_assert(!res.usage_estimated);
    cr_assert_str_eq(res.provider, "ollama");
    qg_arena_free(&a);
}

Test(ai_embed, bad_calls, .init = setup, .fini = teardown, .timeout = 30)
{
    make_model("chat", (const char *const[]){"anthropic:claude"}, 1);
    qg_arena a;
    qg_arena_init(&a, 4096);
    qg_error err = {0};
    qg_ai_embed_result res;
    qg_ai_embed_call call = {.model = "chat", .inputs = three, .n_inputs = 1};
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "has no embeddings"), "%s", err.msg);
    call.model = "no-such-model";
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_ENOTFOUND);
    call.model = NULL; /* "embed", not configured here */
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_ENOTFOUND);
    const char *const empty[] = {"x", ""};
    call = (qg_ai_embed_call){.model = "chat", .inputs = empty, .n_inputs = 2};
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "inputs[1]"), "%s", err.msg);
    call.n_inputs = 0;
    cr_assert_eq(qg_ai_embed(ai, &call, &a, &res, &err), QG_EINVAL);
    cr_assert_eq(fake_count(""), 0, "nothing reached a provider");
    qg_arena_free(&a);
}

Test(ai_embed, env_embed_model)
{
    setenv("OPENAI_API_KEY", "sk-env", 1);
    setenv("QG_OPENAI_EMBED_MODEL", "text-embedding-3-small", 1);
    setenv("QG_OPENAI_EMBED_PRICE_IN", "0.02", 1);
    setenv("QG_OLLAMA_EMBED_MODEL", "nomic-embed-text", 1);
    setenv("QG_GEMINI_EMBED_MODEL", "text-embedding-004", 1); /* no GEMINI_API_KEY: skipped */
    unsetenv("GEMINI_API_KEY");
    qg_ai_deployment *deps = NULL;
    qg_ai_model *models = NULL;
    size_t nd = 0, nm = 0;
    qg_error err = {0};
    cr_assert_eq(qg_ai_catalog_env(&deps, &nd, &models, &nm, &err), QG_OK, "%s", err.msg);
    bool has_model = false;
    for (size_t i = 0; i < nm; i++)
        if (!strcmp(models[i].name, "embed")) {
            has_model = true;
            cr_assert_str_eq(models[i].fallback, "");
        }
    cr_assert(has_model);
    int n = 0;
    for (size_t i = 0; i < nd; i++) {
        if (strcmp(deps[i].model_name, "embed")) continue;
        n++;
        if (!strcmp(deps[i].provider, "openai")) {
            cr_assert_str_eq(deps[i].model, "text-embedding-3-small");
            cr_assert_float_eq(deps[i].price_in, 0.02, 1e-12);
            cr_assert_str_eq(deps[i].key_ref, "env:OPENAI_API_KEY");
        } else {
            cr_assert_str_eq(deps[i].provider, "ollama");
            cr_assert_str_eq(deps[i].model, "nomic-embed-text");
        }
    }
    cr_assert_eq(n, 2);
    free(deps);
    free(models);
}
