/*
 * test_ai_openai.c - the OpenAI Chat Completions provider (request encoding,
 * OpenAI and Azure URLs and key headers, response and stream decoding at
 * awkward byte splits, tool-call argument reassembly, usage, each error
 * class, keys never in errors) and the server side of the format
 * (openai_compat: request parsing, chat.completion, chunks), on recorded
 * wire samples under tests/data/ai/openai_*.
 */
#include <criterion/criterion.h>

#include "ai_wire.h"
#include "ai/openai_compat.h"
#include "ai/provider.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qg_ai_deployment dep(const char *base, const char *model)
{
    qg_ai_deployment d;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "dep_test");
    snprintf(d.provider, sizeof d.provider, "openai");
    snprintf(d.model, sizeof d.model, "%s", model);
    snprintf(d.base_url, sizeof d.base_url, "%s", base);
    return d;
}

/* The conversation of openai_request_tools.json. */
static const qg_ai_tool_call past_call = {"call_abc123", "get_price", "{\"symbol\":\"BTCUSDT\"}"};
static const qg_ai_msg conv[] = {
    {.role = QG_AI_ROLE_USER, .content = "What is BTC doing?"},
    {.role = QG_AI_ROLE_ASSISTANT, .content = NULL, .tool_calls = &past_call, .n_tool_calls = 1},
    {.role = QG_AI_ROLE_TOOL,
     .content = "{\"price\":64000.5}",
     .tool_call_id = "call_abc123",
     .tool_name = "get_price"},
    {.role = QG_AI_ROLE_USER, .content = "And ETH?"},
};
static const qg_ai_tool price_tool = {"get_price", "Last traded price of a symbol",
                                      "{\"type\":\"object\",\"properties\":{\"symbol\":{\"type\":"
                                      "\"string\"}},\"required\":[\"symbol\"]}"};

static qg_ai_request full_request(void)
{
    qg_ai_request r = {.system = "You are a trading assistant.",
                       .messages = conv,
                       .n_messages = 4,
                       .tools = &price_tool,
                       .n_tools = 1,
                       .tool_choice = "auto",
                       .json_mode = true,
                       .max_tokens = 256,
                       .temperature = 0.2,
                       .stream = true};
    return r;
}

Test(ai_openai, encode_matches_recorded_request)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_deployment d = dep("", "gpt-4o-mini");
    qg_ai_request req = full_request();
    qg_ai_http_req h;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_openai.encode(&d, "sk-test-123", &req, &a, &h, &err), QG_OK, "%s",
                 err.msg);
    cr_assert_str_eq(h.method, "POST");
    cr_assert_str_eq(h.url, "https://api.openai.com/v1/chat/completions");
    cr_assert_str_eq(ai_header(&h, "Authorization:"), "Authorization: Bearer sk-test-123");
    cr_assert_str_eq(ai_header(&h, "Content-Type:"), "Content-Type: application/json");
    cr_assert_null(ai_header(&h, "api-key:"));
    char *want_text = ai_slurp("openai_request_tools.json", NULL);
    cJSON *want = cJSON_Parse(want_text), *got = cJSON_Parse(h.body.data);
    cr_assert_not_null(got);
    char *gs = cJSON_Print(got);
    cr_assert(cJSON_Compare(want, got, 1), "encoded request differs:\n%s", gs);
    free(gs);
    cJSON_Delete(want);
    cJSON_Delete(got);
    free(want_text);
    qg_buf_free(&h.body);
    qg_arena_free(&a);
}

Test(ai_openai, encode_compatible_server_without_key)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_deployment d = dep("http://127.0.0.1:11434/v1/", "llama3.2");
    qg_ai_msg m = {.role = QG_AI_ROLE_USER, .content = "hi"};
    qg_ai_request req = {.messages = &m,
                         .n_messages = 1,
                         .tools = &price_tool,
                         .n_tools = 1,
                         .tool_choice = "get_price",
                         .temperature = -1};
    qg_ai_http_req h;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_openai.encode(&d, "", &req, &a, &h, &err), QG_OK);
    cr_assert_str_eq(h.url, "http://127.0.0.1:11434/v1/chat/completions");
    cr_assert_null(ai_header(&h, "Authorization:"));
    cJSON *b = cJSON_Parse(h.body.data);
    cr_assert_null(cJSON_GetObjectItem(b, "stream"), "no stream key when not streaming");
    cr_assert_null(cJSON_GetObjectItem(b, "stream_options"));
    cr_assert_null(cJSON_GetObjectItem(b, "temperature"));
    cr_assert_null(cJSON_GetObjectItem(b, "max_tokens"));
    cr_assert_null(cJSON_GetObjectItem(b, "response_format"));
    cJSON *tc = cJSON_GetObjectItem(b, "tool_choice");
    cr_assert_str_eq(cJSON_GetObjectItem(tc, "type")->valuestring, "function");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(tc, "function"), "name")->valuestring,
                     "get_price");
    cJSON *msgs = cJSON_GetObjectItem(b, "messages");
    cr_assert_eq(cJSON_GetArraySize(msgs), 1, "no system message when there is no system prompt");
    cJSON_Delete(b);
    qg_buf_free(&h.body);
    qg_arena_free(&a);
}

Test(ai_openai, encode_azure_url_and_key_header)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_msg m = {.role = QG_AI_ROLE_USER, .content = "hi"};
    qg_ai_request req = {.messages = &m, .n_messages = 1, .temperature = -1};
    qg_error err = {0};
    const char *bases[] = {"https://res.openai.azure.com/", "https://res.openai.azure.com/openai"};
    for (int i = 0; i < 2; i++) {
        qg_ai_deployment d = dep(bases[i], "gpt4o prod");
        snprintf(d.api_version, sizeof d.api_version, "2024-10-21");
        qg_ai_http_req h;
        cr_assert_eq(qg_ai_provider_openai.encode(&d, "azkey42", &req, &a, &h, &err), QG_OK);
        cr_assert_str_eq(h.url, "https://res.openai.azure.com/openai/deployments/gpt4o%20prod/"
                                "chat/completions?api-version=2024-10-21");
        cr_assert_str_eq(ai_header(&h, "api-key:"), "api-key: azkey42");
        cr_assert_null(ai_header(&h, "Authorization:"));
        qg_buf_free(&h.body);
    }
    /* Azure needs its resource URL: no default */
    qg_ai_deployment d = dep("", "gpt4o");
    snprintf(d.api_version, sizeof d.api_version, "2024-10-21");
    qg_ai_http_req h;
    cr_assert_eq(qg_ai_provider_openai.encode(&d, "azkey42", &req, &a, &h, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "base_url"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "azkey42"));
    qg_arena_free(&a);
}

Test(ai_openai, encode_errors_name_the_field_never_the_key)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_deployment d = dep("", "gpt-4o-mini");
    qg_ai_tool bad = {"f", "d", "{not json"};
    qg_ai_msg m = {.role = QG_AI_ROLE_USER, .content = "hi"};
    qg_ai_request req = {.messages = &m, .n_messages = 1, .tools = &bad, .n_tools = 1};
    qg_ai_http_req h;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_openai.encode(&d, "sk-secret-777", &req, &a, &h, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "tools[0].parameters"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "sk-secret-777"));
    cr_assert_eq(h.body.len, 0);
    req.n_tools = 0;
    cr_assert_eq(qg_ai_provider_openai.encode(&d, "sk-bad\r\nX-Evil: 1", &req, &a, &h, &err),
                 QG_EINVAL, "a key that would inject headers is refused");
    cr_assert_null(strstr(err.msg, "sk-bad"));
    qg_arena_free(&a);
}

Test(ai_openai, decode_text_and_usage)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    size_t n;
    char *body = ai_slurp("openai_response_text.json", &n);
    qg_ai_response r;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_openai.decode(body, n, &a, &r, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(r.text, "BTC is ranging between 63k and 65k.");
    cr_assert_eq(r.n_tool_calls, 0);
    cr_assert_str_eq(r.finish_reason, "stop");
    cr_assert_str_eq(r.model, "gpt-4o-mini-2024-07-18");
    cr_assert_eq(r.usage.input, 1117);
    cr_assert_eq(r.usage.output, 12);
    cr_assert_eq(r.usage.cached, 1024);
    cr_assert_eq(r.error.kind, QG_AI_OK);
    free(body);
    qg_arena_free(&a);
}

Test(ai_openai, decode_tool_calls)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    size_t n;
    char *body = ai_slurp("openai_response_tools.json", &n);
    qg_ai_response r;
    cr_assert_eq(qg_ai_provider_openai.decode(body, n, &a, &r, NULL), QG_OK);
    cr_assert_str_eq(r.text, "");
    cr_assert_eq(r.n_tool_calls, 2);
    cr_assert_str_eq(r.tool_calls[0].id, "call_abc123");
    cr_assert_str_eq(r.tool_calls[0].name, "get_price");
    cr_assert_str_eq(r.tool_calls[0].arguments, "{\n\"symbol\": \"BTCUSDT\"\n}");
    cr_assert_str_eq(r.tool_calls[1].id, "call_def456");
    cr_assert_str_eq(r.tool_calls[1].arguments, "{\"symbol\": \"ETHUSDT\"}");
    cr_assert_str_eq(r.finish_reason, "tool_calls");
    cr_assert_eq(r.usage.input, 82);
    cr_assert_eq(r.usage.output, 17);
    cr_assert_eq(r.usage.cached, 0);
    free(body);
    qg_arena_free(&a);
}

Test(ai_openai, decode_compatible_quirks)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    /* Ollama /v1 style: finish "stop" with tool calls, arguments an object, no id */
    const char *body = "{\"model\":\"llama3.2\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                       "\"assistant\",\"content\":\"\",\"tool_calls\":[{\"type\":\"function\","
                       "\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1}}}]},"
                       "\"finish_reason\":\"stop\"}]}";
    qg_ai_response r;
    cr_assert_eq(qg_ai_provider_openai.decode(body, strlen(body), &a, &r, NULL), QG_OK);
    cr_assert_eq(r.n_tool_calls, 1);
    cr_assert_str_eq(r.tool_calls[0].id, "call_0");
    cr_assert_str_eq(r.tool_calls[0].arguments, "{\"x\":1}");
    cr_assert_str_eq(r.finish_reason, "tool_calls");
    cr_assert_eq(r.usage.input, 0, "no usage: zero");
    /* not the format at all */
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_openai.decode("<html>", 6, &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL);
    cr_assert_eq(qg_ai_provider_openai.decode("{\"choices\":[]}", 14, &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL);
    /* OpenRouter: an error object with a 200, its code the real status */
    const char *oe = "{\"error\":{\"message\":\"Provider returned error\",\"code\":502}}";
    cr_assert_eq(qg_ai_provider_openai.decode(oe, strlen(oe), &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_ESERVER);
    cr_assert_str_eq(r.error.message, "Provider returned error");
    qg_arena_free(&a);
}

/* ---- streams ---- */

typedef struct {
    qg_buf text;
    int tool_deltas;
    int opened[4];
    char ids[4][64];
} sink;

static void on_delta(void *ud, const qg_ai_delta *d)
{
    sink *s = ud;
    if (d->kind == QG_AI_DELTA_TEXT) {
        qg_buf_append(&s->text, d->text, d->len);
        return;
    }
    s->tool_deltas++;
    if (d->id) {
        s->opened[d->index]++;
        snprintf(s->ids[d->index], sizeof s->ids[0], "%s", d->id);
    }
}

/* Feeds the whole file in pieces of `step` bytes (0: all at once). */
static qg_status run_stream(const char *file, size_t step, qg_arena *a, sink *s, qg_ai_stream *st,
                            qg_ai_response *r)
{
    size_t n;
    char *body = ai_slurp(file, &n);
    qg_ai_framer f;
    qg_ai_stream_init(st, a, on_delta, s);
    qg_ai_framer_init(&f, &qg_ai_provider_openai, st);
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

static const size_t steps[] = {0, 1, 2, 3, 5, 7, 11, 64, 333};

Test(ai_openai, stream_text_at_any_split)
{
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        qg_arena a;
        qg_arena_init(&a, 0);
        sink s = {0};
        qg_buf_init(&s.text, 1 << 20);
        qg_ai_stream st;
        qg_ai_response r;
        cr_assert_eq(run_stream("openai_stream_text.sse", steps[i], &a, &s, &st, &r), QG_OK);
        cr_assert_str_eq(r.text,
                         "Hello, tr\xc3\xa4"
                         "der!",
                         "step %zu", steps[i]);
        cr_assert_str_eq(s.text.data, r.text, "deltas forwarded in order");
        cr_assert(st.done, "[DONE] seen");
        cr_assert_str_eq(r.finish_reason, "stop");
        cr_assert_str_eq(r.model, "gpt-4o-mini");
        cr_assert_eq(r.usage.input, 19);
        cr_assert_eq(r.usage.output, 4);
        cr_assert_eq(r.usage.cached, 3);
        cr_assert_eq(r.n_tool_calls, 0);
        cr_assert_eq(r.error.kind, QG_AI_OK);
        qg_buf_free(&s.text);
        qg_arena_free(&a);
    }
}

Test(ai_openai, stream_tool_arguments_reassembled)
{
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        qg_arena a;
        qg_arena_init(&a, 0);
        sink s = {0};
        qg_buf_init(&s.text, 1 << 20);
        qg_ai_stream st;
        qg_ai_response r;
        cr_assert_eq(run_stream("openai_stream_tools.sse", steps[i], &a, &s, &st, &r), QG_OK);
        cr_assert_eq(r.n_tool_calls, 2, "step %zu", steps[i]);
        cr_assert_str_eq(r.tool_calls[0].id, "call_DdmO9pD3xa9XTPNJ32zg2hcA");
        cr_assert_str_eq(r.tool_calls[0].name, "get_price");
        cr_assert_str_eq(r.tool_calls[0].arguments, "{\"symbol\": \"BTCUSDT\"}");
        cr_assert_str_eq(r.tool_calls[1].id, "call_2");
        cr_assert_str_eq(r.tool_calls[1].name, "get_news");
        cr_assert_str_eq(r.tool_calls[1].arguments, "{\"q\":\"halving\"}");
        cr_assert_str_eq(r.finish_reason, "tool_calls");
        cr_assert_str_eq(r.text, "");
        cr_assert_eq(r.usage.input, 90);
        cr_assert_eq(r.usage.output, 31);
        cr_assert_eq(s.opened[0], 1, "id delivered once, on the first fragment");
        cr_assert_eq(s.opened[1], 1);
        cr_assert_str_eq(s.ids[1], "call_2");
        cr_assert_eq(s.tool_deltas, 6);
        cr_assert(st.done);
        qg_buf_free(&s.text);
        qg_arena_free(&a);
    }
}

Test(ai_openai, stream_error_event_sets_error)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    sink s = {0};
    qg_buf_init(&s.text, 1 << 20);
    qg_ai_stream st;
    qg_ai_response r;
    cr_assert_eq(run_stream("openai_stream_error.sse", 4, &a, &s, &st, &r), QG_OK);
    cr_assert_str_eq(r.text, "Par");
    cr_assert_eq(r.error.kind, QG_AI_ESERVER);
    cr_assert(strstr(r.error.message, "server had an error"), "%s", r.error.message);
    cr_assert_not(st.done);
    qg_buf_free(&s.text);
    qg_arena_free(&a);
}

Test(ai_openai, stream_garbage_event_fails)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_stream st;
    qg_ai_framer f;
    qg_ai_stream_init(&st, &a, NULL, NULL);
    qg_ai_framer_init(&f, &qg_ai_provider_openai, &st);
    const char *bad = "data: {\"choices\": [\n\n";
    cr_assert_eq(qg_ai_framer_feed(&f, bad, strlen(bad)), QG_EINVAL);
    qg_ai_framer_free(&f);
    qg_ai_response r;
    qg_ai_stream_finish(&st, &r);
    qg_arena_free(&a);
}

/* ---- errors ---- */

static qg_ai_error classify(int status, const char *retry_after, const char *file)
{
    size_t n = 0;
    char *body = file ? ai_slurp(file, &n) : NULL;
    qg_ai_error e;
    qg_ai_provider_openai.decode_error(status, retry_after, body, n, &e);
    free(body);
    return e;
}

Test(ai_openai, error_classes)
{
    qg_ai_error e = classify(401, NULL, "openai_error_401.json");
    cr_assert_eq(e.kind, QG_AI_EAUTH);
    cr_assert_eq(e.http_status, 401);
    cr_assert_eq(e.retry_after_ms, -1);
    cr_assert(strstr(e.message, "Incorrect API key provided"), "%s", e.message);
    cr_assert_null(strstr(e.message, "sk-proj"), "the echoed key is scrubbed: %s", e.message);
    cr_assert_null(strstr(e.message, "Zz9Q"));

    e = classify(429, "20", "openai_error_429.json");
    cr_assert_eq(e.kind, QG_AI_ERATE);
    cr_assert_eq(e.retry_after_ms, 20000);
    cr_assert(qg_ai_errkind_retryable(e.kind));

    e = classify(429, NULL, "openai_error_quota.json");
    cr_assert_eq(e.kind, QG_AI_EAUTH, "out of credit: no retry, fall back");
    cr_assert_eq(e.http_status, 429);
    cr_assert_not(qg_ai_errkind_retryable(e.kind));

    e = classify(400, NULL, "openai_error_context.json");
    cr_assert_eq(e.kind, QG_AI_ECONTEXT);

    e = classify(500, NULL, "openai_error_500.json");
    cr_assert_eq(e.kind, QG_AI_ESERVER);
    e = classify(503, "1", "openai_error_503.json");
    cr_assert_eq(e.kind, QG_AI_EOVERLOADED);
    cr_assert_eq(e.retry_after_ms, 1000);
    e = classify(403, NULL, NULL);
    cr_assert_eq(e.kind, QG_AI_EAUTH);
    cr_assert_str_eq(e.message, "HTTP 403");

    /* a proxy's HTML page; vLLM's plain 400 about the context */
    const char *html = "<html><body>\r\nBad Gateway</body></html>";
    qg_ai_provider_openai.decode_error(502, NULL, html, strlen(html), &e);
    cr_assert_eq(e.kind, QG_AI_ESERVER);
    cr_assert_null(strchr(e.message, '\r'));
    const char *vllm = "{\"object\":\"error\",\"message\":\"This model's maximum context length "
                       "is 4096 tokens.\",\"type\":\"BadRequestError\",\"code\":400}";
    qg_ai_provider_openai.decode_error(400, NULL, vllm, strlen(vllm), &e);
    cr_assert_eq(e.kind, QG_AI_ECONTEXT);
    /* Azure: code as a string */
    const char *az = "{\"error\":{\"code\":\"429\",\"message\":\"Requests to the ChatCompletions "
                     "Operation have exceeded the call rate limit.\"}}";
    qg_ai_provider_openai.decode_error(429, "7", az, strlen(az), &e);
    cr_assert_eq(e.kind, QG_AI_ERATE);
    cr_assert_eq(e.retry_after_ms, 7000);
}

Test(ai_openai, scrub_removes_credentials)
{
    char out[256];
    const char *s =
        "bad key sk-abcdef0123456789 and Bearer tok.en-xyz, header\nnext AIzaSyA1234567 "
        "ok gpt-4o-mini";
    qg_openai_scrub_copy(out, sizeof out, s, strlen(s));
    cr_assert_null(strstr(out, "abcdef0123"), "%s", out);
    cr_assert_null(strstr(out, "tok.en"), "%s", out);
    cr_assert_null(strstr(out, "AIzaSy"), "%s", out);
    cr_assert_null(strchr(out, '\n'));
    cr_assert(strstr(out, "gpt-4o-mini"), "model names survive: %s", out);
    char small[8];
    qg_openai_scrub_copy(small, sizeof small, "h\xc3\xa4llo w\xc3\xb6rld", 14);
    cr_assert_str_eq(small, "h\xc3\xa4llo ");
    qg_openai_scrub_copy(small, 4, "ab\xc3\xa4", 4);
    cr_assert_str_eq(small, "ab", "no half UTF-8 sequence at the cut");
}

/* ---- openai_compat: quantgate as the server ---- */

static qg_status parse(const char *json, qg_arena *a, qg_ai_request *r, const char **model,
                       qg_error *err)
{
    cJSON *b = cJSON_Parse(json);
    cr_assert_not_null(b, "test JSON: %s", json);
    qg_status rc = qg_openai_parse_request(b, a, r, model, err);
    cJSON_Delete(b); /* everything must have been copied */
    return rc;
}

Test(ai_openai_compat, parse_full_request)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_request r;
    const char *model;
    qg_error err = {0};
    const char *j =
        "{\"model\":\"analyst\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"JSON only.\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Price \"},"
        "{\"type\":\"text\",\"text\":\"of BTC?\"}],\"name\":\"bob\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
        "\"function\",\"function\":{\"name\":\"get_price\",\"arguments\":\"{\\\"s\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"64000\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_price\",\"description\":"
        "\"d\",\"parameters\":{\"type\":\"object\"}}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_price\"}},"
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}},"
        "\"max_completion_tokens\":300,\"max_tokens\":100,\"temperature\":0.5,\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"n\":1}";
    cr_assert_eq(parse(j, &a, &r, &model, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(model, "analyst");
    cr_assert_str_eq(r.system, "Be brief.\n\nJSON only.");
    cr_assert_eq(r.n_messages, 3);
    cr_assert_eq(r.messages[0].role, QG_AI_ROLE_USER);
    cr_assert_str_eq(r.messages[0].content, "Price of BTC?");
    cr_assert_eq(r.messages[1].role, QG_AI_ROLE_ASSISTANT);
    cr_assert_eq(r.messages[1].n_tool_calls, 1);
    cr_assert_str_eq(r.messages[1].tool_calls[0].arguments, "{\"s\":1}");
    cr_assert_eq(r.messages[2].role, QG_AI_ROLE_TOOL);
    cr_assert_str_eq(r.messages[2].tool_call_id, "c1");
    cr_assert_str_eq(r.messages[2].tool_name, "get_price", "found from the call id");
    cr_assert_eq(r.n_tools, 1);
    cr_assert_str_eq(r.tools[0].parameters, "{\"type\":\"object\"}");
    cr_assert_str_eq(r.tool_choice, "get_price");
    cr_assert(r.json_mode);
    cr_assert_eq(r.max_tokens, 300, "max_completion_tokens wins");
    cr_assert_float_eq(r.temperature, 0.5, 1e-9);
    cr_assert(r.stream);
    cJSON *b = cJSON_Parse(j);
    cr_assert(qg_openai_wants_usage(b));
    cJSON_Delete(b);
    /* minimal */
    cr_assert_eq(
        parse("{\"model\":\"builtin\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &a,
              &r, &model, &err),
        QG_OK);
    cr_assert_null(r.system);
    cr_assert_lt(r.temperature, 0);
    cr_assert_eq(r.max_tokens, 0);
    cr_assert_not(r.stream);
    cr_assert_not(r.json_mode);
    qg_arena_free(&a);
}

Test(ai_openai_compat, parse_errors_name_the_field)
{
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"[]", "body: must be a JSON object"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model: required"},
        {"{\"model\":\"m\"}", "messages: required"},
        {"{\"model\":\"m\",\"messages\":[]}", "messages: must not be empty"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
         "\"content\":\"b\"},{\"role\":\"foo\",\"content\":\"c\"}]}",
         "messages[2].role: unknown role \"foo\""},
        {"{\"model\":\"m\",\"messages\":[{\"content\":\"a\"}]}", "messages[0].role: required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content: required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"x\"}}]}]}",
         "messages[0].content[0].type: unsupported part type \"image_url\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"a\"}]}",
         "messages[0].tool_call_id: required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"type\":"
         "\"function\",\"function\":{\"name\":\"f\"}}]}]}",
         "messages[0].tool_calls[0].id: required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":[{"
         "\"type\":\"retrieval\"}]}",
         "tools[0].type: must be \"function\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tool_choice\":"
         "{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}",
         "tool_choice.function.name: no tool named \"nope\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tool_choice\":"
         "\"sometimes\"}",
         "tool_choice: unknown value \"sometimes\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"temperature\":3}",
         "temperature: must be a number from 0 to 2"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":0}",
         "max_tokens: must be an integer"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"response_"
         "format\":"
         "{\"type\":\"yaml\"}}",
         "response_format.type: unknown \"yaml\""},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"n\":2}",
         "n: only 1 is supported"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream\":"
         "\"yes\"}",
         "stream: must be a boolean"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qg_arena a;
        qg_arena_init(&a, 0);
        qg_ai_request r;
        const char *model;
        qg_error err = {0};
        cr_assert_eq(parse(cases[i].json, &a, &r, &model, &err), QG_EINVAL, "%s", cases[i].json);
        cr_assert(!strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)), "want \"%s\", got \"%s\"",
                  cases[i].msg, err.msg);
        qg_arena_free(&a);
    }
}

Test(ai_openai_compat, completion_object)
{
    qg_ai_tool_call calls[] = {{"call_1", "get_price", "{\"s\":\"BTC\"}"}};
    qg_ai_response r = {.text = "",
                        .tool_calls = calls,
                        .n_tool_calls = 1,
                        .finish_reason = "tool_calls",
                        .usage = {.input = 100, .output = 20, .cached = 64}};
    cJSON *o = qg_openai_completion_json(&r, "chatcmpl-q1", "analyst", 1700000000);
    cr_assert_not_null(o);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, "chatcmpl-q1");
    cr_assert_str_eq(cJSON_GetObjectItem(o, "object")->valuestring, "chat.completion");
    cr_assert_eq(cJSON_GetObjectItem(o, "created")->valuedouble, 1700000000);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "model")->valuestring, "analyst");
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    cr_assert_eq(cJSON_GetObjectItem(c0, "index")->valuedouble, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "tool_calls");
    cJSON *msg = cJSON_GetObjectItem(c0, "message");
    cr_assert_str_eq(cJSON_GetObjectItem(msg, "role")->valuestring, "assistant");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(msg, "content")));
    cJSON *tc = cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "tool_calls"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(tc, "id")->valuestring, "call_1");
    cr_assert_str_eq(cJSON_GetObjectItem(tc, "type")->valuestring, "function");
    cJSON *f = cJSON_GetObjectItem(tc, "function");
    cr_assert_str_eq(cJSON_GetObjectItem(f, "arguments")->valuestring, "{\"s\":\"BTC\"}");
    cJSON *u = cJSON_GetObjectItem(o, "usage");
    cr_assert_eq(cJSON_GetObjectItem(u, "prompt_tokens")->valuedouble, 100);
    cr_assert_eq(cJSON_GetObjectItem(u, "completion_tokens")->valuedouble, 20);
    cr_assert_eq(cJSON_GetObjectItem(u, "total_tokens")->valuedouble, 120);
    cr_assert_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(u, "prompt_tokens_details"), "cached_tokens")
            ->valuedouble,
        64);
    cJSON_Delete(o);

    qg_ai_response t = {.text = "hi", .finish_reason = NULL};
    o = qg_openai_completion_json(&t, "x", "builtin", 1);
    msg = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "message");
    cr_assert_str_eq(cJSON_GetObjectItem(msg, "content")->valuestring, "hi");
    cr_assert_null(cJSON_GetObjectItem(msg, "tool_calls"));
    cJSON_Delete(o);

    o = qg_openai_error_json("no such model", "invalid_request_error", NULL);
    char *s = cJSON_PrintUnformatted(o);
    cr_assert_str_eq(s,
                     "{\"error\":{\"message\":\"no such model\",\"type\":\"invalid_request_error\","
                     "\"param\":null,\"code\":null}}");
    free(s);
    cJSON_Delete(o);
    const char *type, *code;
    cr_assert_eq(qg_openai_error_status(QG_AI_ERATE, &type, &code), 429);
    cr_assert_str_eq(code, "rate_limit_exceeded");
    cr_assert_eq(qg_openai_error_status(QG_AI_ENOMODEL, &type, &code), 404);
    cr_assert_str_eq(code, "model_not_found");
}

/* Splits a buffer of SSE events and returns event i's JSON (caller deletes). */
static cJSON *event_json(const char *buf, int i)
{
    const char *p = buf;
    for (int k = 0; k < i; k++) {
        p = strstr(p, "\n\n");
        cr_assert_not_null(p);
        p += 2;
    }
    cr_assert(!strncmp(p, "data: ", 6), "event %d: %.20s", i, p);
    const char *end = strstr(p, "\n\n");
    return cJSON_ParseWithLength(p + 6, (size_t)(end - p - 6));
}

Test(ai_openai_compat, chunks_round_trip_through_the_provider)
{
    qg_buf out;
    qg_buf_init(&out, 1 << 20);
    qg_ai_delta d1 = {.kind = QG_AI_DELTA_TEXT, .text = "Checking\"xyz", .len = 8};
    qg_ai_delta d2 = {.kind = QG_AI_DELTA_TOOL_CALL,
                      .index = 0,
                      .id = "call_9",
                      .name = "get_price",
                      .text = "{\"sym",
                      .len = 5};
    qg_ai_delta d3 = {
        .kind = QG_AI_DELTA_TOOL_CALL, .index = 0, .text = "bol\":\"BTC\"}", .len = 12};
    qg_ai_delta d4 = {
        .kind = QG_AI_DELTA_TOOL_CALL, .index = 1, .name = "get_news", .text = "", .len = 0};
    qg_ai_usage u = {.input = 40, .output = 9, .cached = 8};
    cr_assert_eq(qg_openai_chunk_delta(&out, "chatcmpl-1", "fast", 1700, &d1, true), QG_OK);
    cr_assert_eq(qg_openai_chunk_delta(&out, "chatcmpl-1", "fast", 1700, &d2, false), QG_OK);
    cr_assert_eq(qg_openai_chunk_delta(&out, "chatcmpl-1", "fast", 1700, &d3, false), QG_OK);
    cr_assert_eq(qg_openai_chunk_delta(&out, "chatcmpl-1", "fast", 1700, &d4, false), QG_OK);
    cr_assert_eq(qg_openai_chunk_finish(&out, "chatcmpl-1", "fast", 1700, "tool_calls"), QG_OK);
    cr_assert_eq(qg_openai_chunk_usage(&out, "chatcmpl-1", "fast", 1700, &u), QG_OK);
    cr_assert_eq(qg_openai_chunk_done(&out), QG_OK);

    /* what the openai npm accumulator needs */
    cJSON *e0 = event_json(out.data, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(e0, "object")->valuestring, "chat.completion.chunk");
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(e0, "choices"), 0);
    cJSON *delta = cJSON_GetObjectItem(c0, "delta");
    cr_assert_str_eq(cJSON_GetObjectItem(delta, "role")->valuestring, "assistant");
    cr_assert_str_eq(cJSON_GetObjectItem(delta, "content")->valuestring, "Checking");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(c0, "finish_reason")));
    cJSON_Delete(e0);
    cJSON *e1 = event_json(out.data, 1);
    cJSON *t = cJSON_GetArrayItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(e1, "choices"), 0), "delta"),
            "tool_calls"),
        0);
    cr_assert_eq(cJSON_GetObjectItem(t, "index")->valuedouble, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(t, "id")->valuestring, "call_9");
    cr_assert_str_eq(cJSON_GetObjectItem(t, "type")->valuestring, "function");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "function"), "name")->valuestring,
                     "get_price");
    cJSON_Delete(e1);
    cJSON *e2 = event_json(out.data, 2);
    t = cJSON_GetArrayItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(e2, "choices"), 0), "delta"),
            "tool_calls"),
        0);
    cr_assert_null(cJSON_GetObjectItem(t, "id"), "later fragments: index and arguments only");
    cr_assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "function"), "name"));
    cJSON_Delete(e2);
    cJSON *e5 = event_json(out.data, 5);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(e5, "choices")), 0);
    cJSON_Delete(e5);
    cr_assert(strstr(out.data, "\n\ndata: [DONE]\n\n"));

    /* and our own OpenAI decoder reads it back */
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_stream st;
    qg_ai_framer f;
    qg_ai_stream_init(&st, &a, NULL, NULL);
    qg_ai_framer_init(&f, &qg_ai_provider_openai, &st);
    for (size_t i = 0; i < out.len; i += 3)
        cr_assert_eq(qg_ai_framer_feed(&f, out.data + i, out.len - i < 3 ? out.len - i : 3), QG_OK);
    cr_assert_eq(qg_ai_framer_end(&f), QG_OK);
    qg_ai_framer_free(&f);
    qg_ai_response r;
    qg_ai_stream_finish(&st, &r);
    cr_assert(st.done);
    cr_assert_str_eq(r.text, "Checking");
    cr_assert_eq(r.n_tool_calls, 2);
    cr_assert_str_eq(r.tool_calls[0].id, "call_9");
    cr_assert_str_eq(r.tool_calls[0].arguments, "{\"symbol\":\"BTC\"}");
    cr_assert_str_eq(r.tool_calls[1].id, "call_1", "made up when the delta had none");
    cr_assert_str_eq(r.tool_calls[1].name, "get_news");
    cr_assert_str_eq(r.finish_reason, "tool_calls");
    cr_assert_eq(r.usage.input, 40);
    cr_assert_eq(r.usage.cached, 8);
    qg_arena_free(&a);

    qg_buf_reset(&out);
    cr_assert_eq(
        qg_openai_chunk_error(&out, "budget exceeded", "insufficient_quota", "insufficient_quota"),
        QG_OK);
    cr_assert(!strncmp(out.data, "data: {\"error\":{\"message\":\"budget exceeded\"", 43), "%s",
              out.data);
    qg_buf_free(&out);
}
