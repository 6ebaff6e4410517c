/*
 * test_ai_ollama.c - Ollama's native /api/chat provider: request encoding
 * (system as a message, tool-call arguments as objects, tool results by
 * name, format json, options, stream always explicit), URL forms of
 * OLLAMA_HOST, whole replies and NDJSON streams at awkward byte splits,
 * made-up tool-call ids, usage, errors; on tests/data/ai/ollama_*.
 */
#include <criterion/criterion.h>

#include "ai_wire.h"
#include "ai/provider.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qg_ai_deployment odep(const char *base, const char *model)
{
    qg_ai_deployment d;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "env-ollama");
    snprintf(d.provider, sizeof d.provider, "ollama");
    snprintf(d.model, sizeof d.model, "%s", model);
    snprintf(d.base_url, sizeof d.base_url, "%s", base);
    return d;
}

static const qg_ai_tool_call ocall = {"call_0", "get_price", "{\"symbol\":\"BTCUSDT\"}"};
static const qg_ai_msg oconv[] = {
    {.role = QG_AI_ROLE_USER, .content = "What is BTC doing?"},
    {.role = QG_AI_ROLE_ASSISTANT, .content = NULL, .tool_calls = &ocall, .n_tool_calls = 1},
    /* no tool_name: found from the call id */
    {.role = QG_AI_ROLE_TOOL, .content = "{\"price\":64000.5}", .tool_call_id = "call_0"},
    {.role = QG_AI_ROLE_USER, .content = "And ETH?"},
};
static const qg_ai_tool otool = {"get_price", "Last traded price of a symbol",
                                 "{\"type\":\"object\",\"properties\":{\"symbol\":{\"type\":"
                                 "\"string\"}},\"required\":[\"symbol\"]}"};

Test(ai_ollama, encode_matches_recorded_request)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_deployment d = odep("", "llama3.2");
    qg_ai_request req = {.system = "You are a trading assistant.",
                         .messages = oconv,
                         .n_messages = 4,
                         .tools = &otool,
                         .n_tools = 1,
                         .tool_choice = "auto",
                         .json_mode = true,
                         .max_tokens = 256,
                         .temperature = 0.2,
                         .stream = true};
    qg_ai_http_req h;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_ollama.encode(&d, NULL, &req, &a, &h, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(h.method, "POST");
    cr_assert_str_eq(h.url, "http://127.0.0.1:11434/api/chat");
    cr_assert_null(ai_header(&h, "Authorization:"));
    char *want_text = ai_slurp("ollama_request_tools.json", NULL);
    cJSON *want = cJSON_Parse(want_text), *got = cJSON_Parse(h.body.data);
    char *gs = cJSON_Print(got);
    cr_assert(cJSON_Compare(want, got, 1), "encoded request differs:\n%s", gs);
    free(gs);
    cJSON_Delete(want);
    cJSON_Delete(got);
    free(want_text);
    qg_buf_free(&h.body);
    qg_arena_free(&a);
}

Test(ai_ollama, encode_host_forms_stream_false_and_no_tools)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    static const struct {
        const char *base, *url;
    } hosts[] = {
        {"localhost:11434", "http://localhost:11434/api/chat"},
        {"http://gpu-box:11434/", "http://gpu-box:11434/api/chat"},
        {"https://ollama.example.com/api/", "https://ollama.example.com/api/chat"},
    };
    qg_ai_msg m = {.role = QG_AI_ROLE_USER, .content = "hi"};
    qg_ai_request req = {.messages = &m,
                         .n_messages = 1,
                         .tools = &otool,
                         .n_tools = 1,
                         .tool_choice = "none",
                         .temperature = -1};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        qg_ai_deployment d = odep(hosts[i].base, "llama3.2");
        qg_ai_http_req h;
        cr_assert_eq(qg_ai_provider_ollama.encode(&d, "proxy-key", &req, &a, &h, NULL), QG_OK);
        cr_assert_str_eq(h.url, hosts[i].url);
        cr_assert_str_eq(ai_header(&h, "Authorization:"), "Authorization: Bearer proxy-key");
        cJSON *b = cJSON_Parse(h.body.data);
        cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(b, "stream")), "stream false sent explicitly");
        cr_assert_null(cJSON_GetObjectItem(b, "tools"), "tool_choice none: tools not sent");
        cr_assert_null(cJSON_GetObjectItem(b, "options"));
        cr_assert_null(cJSON_GetObjectItem(b, "format"));
        cJSON_Delete(b);
        qg_buf_free(&h.body);
    }
    /* tool-call arguments must be an object for Ollama */
    qg_ai_tool_call bad = {"c", "f", "[1,2]"};
    qg_ai_msg msgs[] = {{.role = QG_AI_ROLE_ASSISTANT, .tool_calls = &bad, .n_tool_calls = 1}};
    qg_ai_request r2 = {.messages = msgs, .n_messages = 1, .temperature = -1};
    qg_ai_deployment d = odep("", "llama3.2");
    qg_ai_http_req h;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_ollama.encode(&d, "k-secret", &r2, &a, &h, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "messages[0].tool_calls[0].arguments"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "k-secret"));
    qg_arena_free(&a);
}

Test(ai_ollama, decode_text_and_tools)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    size_t n;
    char *body = ai_slurp("ollama_response_text.json", &n);
    qg_ai_response r;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_ollama.decode(body, n, &a, &r, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(r.text, "Hello! How are you today?");
    cr_assert_str_eq(r.finish_reason, "stop");
    cr_assert_str_eq(r.model, "llama3.2");
    cr_assert_eq(r.usage.input, 26);
    cr_assert_eq(r.usage.output, 298);
    cr_assert_eq(r.usage.cached, 0);
    cr_assert_eq(r.n_tool_calls, 0);
    cr_assert_eq(r.error.kind, QG_AI_OK);
    free(body);

    body = ai_slurp("ollama_response_tools.json", &n);
    cr_assert_eq(qg_ai_provider_ollama.decode(body, n, &a, &r, &err), QG_OK);
    cr_assert_eq(r.n_tool_calls, 2);
    cr_assert_str_eq(r.tool_calls[0].id, "call_0");
    cr_assert_str_eq(r.tool_calls[0].name, "get_price");
    cr_assert_str_eq(r.tool_calls[0].arguments, "{\"symbol\":\"BTCUSDT\"}");
    cr_assert_str_eq(r.tool_calls[1].id, "call_1");
    cr_assert_str_eq(r.tool_calls[1].arguments, "{\"q\":\"halving\",\"limit\":3}");
    cr_assert_str_eq(r.finish_reason, "tool_calls", "done_reason stop with calls");
    cr_assert_eq(r.usage.input, 122);
    cr_assert_eq(r.usage.output, 33);
    free(body);

    cr_assert_eq(qg_ai_provider_ollama.decode("nope", 4, &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL);
    cr_assert_eq(qg_ai_provider_ollama.decode("{\"a\":1}", 7, &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL);
    qg_arena_free(&a);
}

typedef struct {
    qg_buf text;
    int opened;
    int tool_deltas;
} osink;

static void on_odelta(void *ud, const qg_ai_delta *d)
{
    osink *s = ud;
    if (d->kind == QG_AI_DELTA_TEXT) {
        qg_buf_append(&s->text, d->text, d->len);
    } else {
        s->tool_deltas++;
        if (d->id) s->opened++;
    }
}

static qg_status run_ostream(const char *file, size_t step, qg_arena *a, osink *s, qg_ai_stream *st,
                             qg_ai_response *r)
{
    size_t n;
    char *body = ai_slurp(file, &n);
    qg_ai_framer f;
    qg_ai_stream_init(st, a, on_odelta, s);
    qg_ai_framer_init(&f, &qg_ai_provider_ollama, st);
    qg_status rc = QG_OK;
    for (size_t off = 0; off < n && !rc;) {
        size_t k = step ? (n - off < step ? n - off : step) : n;
        rc = qg_ai_framer_feed(&f, body + off, k);
        off += k;
    }
    if (!rc) rc = qg_ai_framer_end(&f);
    qg_ai_framer_free(&f);
    qg_ai_stream_finish(st, r);
    free(body);
    return rc;
}

static const size_t osteps[] = {0, 1, 2, 3, 7, 13, 100, 1000};

Test(ai_ollama, stream_text_at_any_split)
{
    for (size_t i = 0; i < sizeof osteps / sizeof osteps[0]; i++) {
        qg_arena a;
        qg_arena_init(&a, 0);
        osink s = {0};
        qg_buf_init(&s.text, 1 << 20);
        qg_ai_stream st;
        qg_ai_response r;
        cr_assert_eq(run_ostream("ollama_stream_text.ndjson", osteps[i], &a, &s, &st, &r), QG_OK);
        cr_assert_str_eq(r.text, "The sky is blue \xe2\x80\x94 mostly.", "step %zu", osteps[i]);
        cr_assert_str_eq(s.text.data, r.text);
        cr_assert_str_eq(r.finish_reason, "length");
        cr_assert_eq(r.usage.input, 26);
        cr_assert_eq(r.usage.output, 282);
        cr_assert(st.done);
        qg_buf_free(&s.text);
        qg_arena_free(&a);
    }
}

Test(ai_ollama, stream_tool_calls)
{
    for (size_t i = 0; i < sizeof osteps / sizeof osteps[0]; i++) {
        qg_arena a;
        qg_arena_init(&a, 0);
        osink s = {0};
        qg_buf_init(&s.text, 1 << 20);
        qg_ai_stream st;
        qg_ai_response r;
        cr_assert_eq(run_ostream("ollama_stream_tools.ndjson", osteps[i], &a, &s, &st, &r), QG_OK);
        cr_assert_str_eq(r.text, "Let me check.");
        cr_assert_eq(r.n_tool_calls, 2);
        cr_assert_str_eq(r.tool_calls[0].id, "call_0");
        cr_assert_str_eq(r.tool_calls[0].name, "get_price");
        cr_assert_str_eq(r.tool_calls[0].arguments, "{\"symbol\":\"BTCUSDT\"}");
        cr_assert_str_eq(r.tool_calls[1].id, "call_1");
        cr_assert_str_eq(r.tool_calls[1].name, "get_news");
        cr_assert_str_eq(r.tool_calls[1].arguments, "{\"q\":\"halving\"}");
        cr_assert_str_eq(r.finish_reason, "tool_calls");
        cr_assert_str_eq(r.model, "qwen3");
        cr_assert_eq(r.usage.input, 180);
        cr_assert_eq(r.usage.output, 95);
        cr_assert_eq(s.opened, 2, "each call opened once with its id");
        cr_assert_eq(s.tool_deltas, 2);
        qg_buf_free(&s.text);
        qg_arena_free(&a);
    }
}

Test(ai_ollama, stream_error_line_and_garbage)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    osink s = {0};
    qg_buf_init(&s.text, 1 << 20);
    qg_ai_stream st;
    qg_ai_response r;
    cr_assert_eq(run_ostream("ollama_stream_error.ndjson", 5, &a, &s, &st, &r), QG_OK);
    cr_assert_str_eq(r.text, "Part");
    cr_assert_eq(r.error.kind, QG_AI_ESERVER);
    cr_assert(strstr(r.error.message, "unexpected EOF"), "%s", r.error.message);
    cr_assert_not(st.done);
    qg_buf_free(&s.text);

    qg_ai_framer f;
    qg_ai_stream_init(&st, &a, NULL, NULL);
    qg_ai_framer_init(&f, &qg_ai_provider_ollama, &st);
    cr_assert_eq(qg_ai_framer_feed(&f, "{\"model\":\n", 10), QG_EINVAL);
    qg_ai_framer_free(&f);
    qg_ai_stream_finish(&st, &r);
    qg_arena_free(&a);
}

Test(ai_ollama, error_classes)
{
    size_t n;
    char *body = ai_slurp("ollama_error_404.json", &n);
    qg_ai_error e;
    qg_ai_provider_ollama.decode_error(404, NULL, body, n, &e);
    cr_assert_eq(e.kind, QG_AI_EBADREQ, "model not pulled: retrying will not help");
    cr_assert_eq(e.http_status, 404);
    cr_assert_str_eq(e.message, "model \"llama9\" not found, try pulling it first");
    free(body);

    body = ai_slurp("ollama_error_500.json", &n);
    qg_ai_provider_ollama.decode_error(500, NULL, body, n, &e);
    cr_assert_eq(e.kind, QG_AI_ESERVER);
    cr_assert(strstr(e.message, "more system memory"));
    free(body);

    const char *r429 = "{\"error\":\"too many requests\"}";
    qg_ai_provider_ollama.decode_error(429, "3", r429, strlen(r429), &e);
    cr_assert_eq(e.kind, QG_AI_ERATE);
    cr_assert_eq(e.retry_after_ms, 3000);
    const char *ctx = "{\"error\":\"input length exceeds the context length\"}";
    qg_ai_provider_ollama.decode_error(400, NULL, ctx, strlen(ctx), &e);
    cr_assert_eq(e.kind, QG_AI_ECONTEXT);
    qg_ai_provider_ollama.decode_error(401, NULL, "Unauthorized: Bearer abc.def", 28, &e);
    cr_assert_eq(e.kind, QG_AI_EAUTH);
    cr_assert_null(strstr(e.message, "abc.def"), "%s", e.message);
    qg_ai_provider_ollama.decode_error(503, NULL, NULL, 0, &e);
    cr_assert_eq(e.kind, QG_AI_EOVERLOADED);
    cr_assert_str_eq(e.message, "HTTP 503");
}
