/*
 * test_ai_gemini.c - the Gemini generateContent provider on recorded wire
 * samples (tests/data/ai/gemini_*): request encoding (schema filtering,
 * function calls and responses, tool config, JSON mode), reply decoding,
 * SSE streams split at every byte boundary, usage, each error class
 * (RetryInfo's retryDelay included), and the key kept out of URL and errors.
 */
#include <criterion/criterion.h>

#include "ai_wire.h"
#include "ai/provider.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "AIzaSyD-SECRETKEY0123456789abcdefghij"

static qg_ai_deployment dep(const char *model, const char *base)
{
    qg_ai_deployment d = {0};
    snprintf(d.id, sizeof d.id, "dep_gem");
    snprintf(d.provider, sizeof d.provider, "gemini");
    snprintf(d.model, sizeof d.model, "%s", model);
    snprintf(d.base_url, sizeof d.base_url, "%s", base ? base : "");
    return d;
}

static const qg_ai_tool_call calls[] = {
    {.id = "call_0", .name = "get_price", .arguments = "{\"symbol\": \"BTC-USD\"}"},
    {.id = "call_1", .name = "get_position", .arguments = "{}"},
};
/* The second tool result has no tool_name: it is found through its id. */
static const qg_ai_msg convo[] = {
    {.role = QG_AI_ROLE_USER, .content = "What is BTC trading at, and what do I hold?"},
    {.role = QG_AI_ROLE_ASSISTANT,
     .content = "Let me check.",
     .tool_calls = calls,
     .n_tool_calls = 2},
    {.role = QG_AI_ROLE_TOOL,
     .content = "{\"price\": 64250.5}",
     .tool_call_id = "call_0",
     .tool_name = "get_price"},
    {.role = QG_AI_ROLE_TOOL, .content = "flat", .tool_call_id = "call_1"},
    {.role = QG_AI_ROLE_USER, .content = "Answer in one line."},
};
static const qg_ai_tool tools[] = {
    {.name = "get_price",
     .description = "Last trade price of a symbol",
     .parameters =
         "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\","
         "\"additionalProperties\":false,\"properties\":{"
         "\"symbol\":{\"type\":\"string\",\"description\":\"ticker\"},"
         "\"venue\":{\"type\":[\"string\",\"null\"]},"
         "\"legs\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"additionalProperties\":"
         "false,\"properties\":{\"qty\":{\"type\":\"number\",\"exclusiveMinimum\":0}}}}},"
         "\"required\":[\"symbol\"]}"},
    {.name = "get_position", .parameters = "{\"type\":\"object\",\"properties\":{}}"},
};

Test(ai_gemini, encode_matches_recorded_request)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_deployment d = dep("gemini-2.0-flash", NULL);
    qg_ai_request req = {.system = "You are a careful trading analyst.",
                         .messages = convo,
                         .n_messages = 5,
                         .tools = tools,
                         .n_tools = 2,
                         .tool_choice = "get_price",
                         .json_mode = true, /* not sent: Gemini refuses it with tools */
                         .max_tokens = 512,
                         .temperature = 0.25,
                         .stream = true};
    qg_ai_http_req hr;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_gemini.encode(&d, KEY, &req, &a, &hr, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(hr.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "gemini-2.0-flash:streamGenerateContent?alt=sse");
    cr_assert_str_eq(ai_header(&hr, "x-goog-api-key:"), "x-goog-api-key: " KEY);
    cr_assert_null(strstr(hr.url, KEY), "key never in the URL");
    cr_assert_null(strstr(hr.body.data, KEY));
    char *want = ai_slurp("gemini_request_tools.json", NULL);
    cJSON *got = cJSON_Parse(hr.body.data), *exp = cJSON_Parse(want);
    cr_assert_not_null(got);
    cr_assert_not_null(exp);
    if (!cJSON_Compare(got, exp, true)) cr_assert_fail("body differs:\n%s", cJSON_Print(got));
    cJSON_Delete(got);
    cJSON_Delete(exp);
    free(want);
    qg_buf_free(&hr.body);
    qg_arena_free(&a);
}

static cJSON *encode_json(const qg_ai_request *req, const char *model, const char *base,
                          const char **url, qg_arena *a)
{
    qg_ai_deployment d = dep(model, base);
    qg_ai_http_req hr;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_gemini.encode(&d, "", req, a, &hr, &err), QG_OK, "%s", err.msg);
    cr_assert_null(ai_header(&hr, "x-goog-api-key:"), "no key, no header");
    *url = hr.url;
    cJSON *j = cJSON_Parse(hr.body.data);
    qg_buf_free(&hr.body);
    return j;
}

Test(ai_gemini, encode_json_mode_urls_and_tool_modes)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    const char *url;
    qg_ai_msg one = {.role = QG_AI_ROLE_USER, .content = "score this signal"};
    qg_ai_request req = {.messages = &one, .n_messages = 1, .json_mode = true, .temperature = -1};
    cJSON *j = encode_json(&req, "models/gemini-2.5-pro", "http://127.0.0.1:8080/", &url, &a);
    cr_assert_str_eq(url, "http://127.0.0.1:8080/v1beta/models/gemini-2.5-pro:generateContent");
    cJSON *gc = cJSON_GetObjectItem(j, "generationConfig");
    cr_assert_str_eq(cJSON_GetObjectItem(gc, "responseMimeType")->valuestring, "application/json");
    cr_assert_null(cJSON_GetObjectItem(gc, "temperature"));
    cr_assert_null(cJSON_GetObjectItem(j, "systemInstruction"));
    cr_assert_null(cJSON_GetObjectItem(j, "tools"));
    cJSON_Delete(j);

    req.json_mode = false;
    j = encode_json(&req, "gemini-2.0-flash", "http://h/v1beta", &url, &a);
    cr_assert_str_eq(url, "http://h/v1beta/models/gemini-2.0-flash:generateContent");
    cr_assert_null(cJSON_GetObjectItem(j, "generationConfig"));
    cJSON_Delete(j);

    req.tools = tools;
    req.n_tools = 2;
    req.tool_choice = "none";
    req.json_mode = true; /* tools switched off: JSON mode allowed again */
    j = encode_json(&req, "gemini-2.0-flash", NULL, &url, &a);
    cJSON *fcc = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "toolConfig"), "functionCallingConfig");
    cr_assert_str_eq(cJSON_GetObjectItem(fcc, "mode")->valuestring, "NONE");
    cr_assert_not_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "generationConfig"), "responseMimeType"));
    cJSON_Delete(j);
    req.tool_choice = "required";
    j = encode_json(&req, "gemini-2.0-flash", NULL, &url, &a);
    fcc = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "toolConfig"), "functionCallingConfig");
    cr_assert_str_eq(cJSON_GetObjectItem(fcc, "mode")->valuestring, "ANY");
    cr_assert_null(cJSON_GetObjectItem(fcc, "allowedFunctionNames"));
    cJSON_Delete(j);
    req.tool_choice = NULL;
    j = encode_json(&req, "gemini-2.0-flash", NULL, &url, &a);
    cr_assert_null(cJSON_GetObjectItem(j, "toolConfig"));
    cJSON_Delete(j);
    qg_arena_free(&a);
}

static void encode_fails(const char *model, const qg_ai_request *req, const char *key,
                         const char *want)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_deployment d = dep(model, NULL);
    qg_ai_http_req hr;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_gemini.encode(&d, key, req, &a, &hr, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
    cr_assert_null(strstr(err.msg, "SECRETKEY"), "key in error: %s", err.msg);
    qg_arena_free(&a);
}

Test(ai_gemini, encode_errors_name_the_field_and_never_the_key)
{
    qg_ai_msg m[] = {{.role = QG_AI_ROLE_USER, .content = "x"},
                     {.role = QG_AI_ROLE_TOOL, .content = "r", .tool_call_id = "call_9"}};
    qg_ai_request r = {.messages = m, .n_messages = 2, .temperature = -1};
    encode_fails("gemini-2.0-flash", &r, KEY, "messages[1].tool_name");
    r.n_messages = 1;
    encode_fails("gemini/../../x?key=", &r, KEY, "model");
    encode_fails("gemini-2.0-flash", &r, KEY "\nX: y", "API key");
    qg_ai_tool_call bad = {.id = "c", .name = "f", .arguments = "not json"};
    qg_ai_msg m2[] = {{.role = QG_AI_ROLE_ASSISTANT, .tool_calls = &bad, .n_tool_calls = 1}};
    qg_ai_request r2 = {.messages = m2, .n_messages = 1, .temperature = -1};
    encode_fails("gemini-2.0-flash", &r2, KEY, "messages[0].tool_calls[0].arguments");
    qg_ai_request r3 = {.messages = m,
                        .n_messages = 1,
                        .tools = tools,
                        .n_tools = 2,
                        .tool_choice = "nope",
                        .temperature = -1};
    encode_fails("gemini-2.0-flash", &r3, KEY, "tool_choice");
}

static qg_ai_response decode_file(const char *file, qg_arena *a, qg_status want)
{
    size_t n;
    char *body = ai_slurp(file, &n);
    qg_ai_response r;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_gemini.decode(body, n, a, &r, &err), want, "%s: %s", file, err.msg);
    free(body);
    return r;
}

Test(ai_gemini, decode_function_calls_usage_and_filters)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_response r = decode_file("gemini_response_tools.json", &a, QG_OK);
    cr_assert_str_eq(r.text, "Checking the price.");
    cr_assert_eq(r.n_tool_calls, 2);
    cr_assert_str_eq(r.tool_calls[0].id, "call_0");
    cr_assert_str_eq(r.tool_calls[0].name, "get_price");
    cr_assert_str_eq(r.tool_calls[0].arguments, "{\"symbol\":\"BTC-USD\",\"venue\":\"coinbase\"}");
    cr_assert_str_eq(r.tool_calls[1].id, "call_1");
    cr_assert_str_eq(r.tool_calls[1].arguments, "{}");
    cr_assert_str_eq(r.finish_reason, "tool_calls");
    cr_assert_str_eq(r.model, "gemini-2.0-flash");
    cr_assert_eq(r.usage.input, 230);
    cr_assert_eq(r.usage.output, 31);
    cr_assert_eq(r.usage.cached, 128);

    r = decode_file("gemini_response_safety.json", &a, QG_OK);
    cr_assert_str_eq(r.text, "");
    cr_assert_str_eq(r.finish_reason, "content_filter");
    cr_assert_eq(r.usage.input, 8);
    r = decode_file("gemini_response_blocked.json", &a, QG_OK);
    cr_assert_str_eq(r.finish_reason, "content_filter");

    qg_error err = {0};
    const char *junk = "[1,2]";
    cr_assert_eq(qg_ai_provider_gemini.decode(junk, strlen(junk), &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL);
    const char *empty = "{\"foo\":1}";
    cr_assert_eq(qg_ai_provider_gemini.decode(empty, strlen(empty), &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL);
    qg_arena_free(&a);
}

/* ---- streams ---- */

typedef struct {
    qg_buf text;
    qg_buf args[4];
    int announced[4];
    const char *names[4];
} collected;

static void on_delta(void *ud, const qg_ai_delta *d)
{
    collected *c = ud;
    if (d->kind == QG_AI_DELTA_TEXT) {
        qg_buf_append(&c->text, d->text, d->len);
        return;
    }
    cr_assert(d->index >= 0 && d->index < 4);
    if (d->name) {
        c->announced[d->index]++;
        c->names[d->index] = d->name;
    }
    qg_buf_append(&c->args[d->index], d->text, d->len);
}

static qg_status run_stream(const char *body, size_t n, size_t split, qg_arena *a, collected *c,
                            qg_ai_stream *st, qg_ai_response *r)
{
    memset(c, 0, sizeof *c);
    qg_buf_init(&c->text, 1 << 20);
    for (int i = 0; i < 4; i++) qg_buf_init(&c->args[i], 1 << 20);
    qg_ai_stream_init(st, a, on_delta, c);
    qg_ai_framer f;
    qg_ai_framer_init(&f, &qg_ai_provider_gemini, st);
    qg_status rc = QG_OK;
    size_t step = split ? split : n;
    for (size_t off = 0; !rc && off < n; off += step)
        rc = qg_ai_framer_feed(&f, body + off, n - off < step ? n - off : step);
    if (!rc) rc = qg_ai_framer_end(&f);
    qg_ai_framer_free(&f);
    qg_ai_stream_finish(st, r);
    return rc;
}

static void collected_free(collected *c)
{
    qg_buf_free(&c->text);
    for (int i = 0; i < 4; i++) qg_buf_free(&c->args[i]);
}

Test(ai_gemini, stream_text_at_every_split)
{
    size_t n;
    char *body = ai_slurp("gemini_stream_text.sse", &n);
    for (size_t split = 0; split <= 80; split++) {
        qg_arena a;
        qg_arena_init(&a, 0);
        collected c;
        qg_ai_stream st;
        qg_ai_response r;
        cr_assert_eq(run_stream(body, n, split, &a, &c, &st, &r), QG_OK, "split %zu", split);
        cr_assert_str_eq(r.text, "The trend is up — “strong”.", "split %zu", split);
        cr_assert_str_eq(c.text.data, r.text);
        cr_assert(st.done);
        cr_assert_str_eq(r.finish_reason, "stop");
        cr_assert_str_eq(r.model, "gemini-2.5-flash");
        cr_assert_eq(r.usage.input, 12);
        cr_assert_eq(r.usage.output, 9 + 19, "thinking tokens are output");
        cr_assert_eq(r.usage.cached, 4);
        cr_assert_eq(r.n_tool_calls, 0);
        collected_free(&c);
        qg_arena_free(&a);
    }
    free(body);
}

Test(ai_gemini, stream_function_calls_at_every_split)
{
    size_t n;
    char *body = ai_slurp("gemini_stream_tools.sse", &n);
    for (size_t split = 0; split <= 64; split += (split < 16 ? 1 : 7)) {
        qg_arena a;
        qg_arena_init(&a, 0);
        collected c;
        qg_ai_stream st;
        qg_ai_response r;
        cr_assert_eq(run_stream(body, n, split, &a, &c, &st, &r), QG_OK, "split %zu", split);
        cr_assert_str_eq(r.text, "");
        cr_assert_eq(r.n_tool_calls, 2);
        cr_assert_str_eq(r.tool_calls[0].id, "call_0");
        cr_assert_str_eq(r.tool_calls[0].name, "get_price");
        cr_assert_str_eq(r.tool_calls[0].arguments, "{\"symbol\":\"BTC-USD\"}");
        cr_assert_str_eq(r.tool_calls[1].id, "call_1");
        cr_assert_str_eq(r.tool_calls[1].arguments, "{}");
        cr_assert_str_eq(r.finish_reason, "tool_calls");
        cr_assert_eq(c.announced[0], 1);
        cr_assert_eq(c.announced[1], 1);
        cr_assert_str_eq(c.names[1], "get_position");
        cr_assert_str_eq(c.args[0].data, r.tool_calls[0].arguments);
        cr_assert_eq(r.usage.input, 88);
        cr_assert_eq(r.usage.output, 14);
        collected_free(&c);
        qg_arena_free(&a);
    }
    free(body);
}

Test(ai_gemini, stream_error_event_and_bad_event)
{
    size_t n;
    char *body = ai_slurp("gemini_stream_error.sse", &n);
    qg_arena a;
    qg_arena_init(&a, 0);
    collected c;
    qg_ai_stream st;
    qg_ai_response r;
    cr_assert_eq(run_stream(body, n, 3, &a, &c, &st, &r), QG_OK);
    cr_assert_eq(r.error.kind, QG_AI_EOVERLOADED);
    cr_assert_not_null(strstr(r.error.message, "overloaded"));
    cr_assert_str_eq(r.text, "Partial");
    collected_free(&c);
    const char *bad = "data: {\"candidates\": [\r\n\r\n";
    cr_assert_eq(run_stream(bad, strlen(bad), 2, &a, &c, &st, &r), QG_EINVAL);
    collected_free(&c);
    qg_arena_free(&a);
    free(body);
}

/* ---- errors ---- */

static qg_ai_error classify(int status, const char *retry_after, const char *file)
{
    size_t n = 0;
    char *body = file ? ai_slurp(file, &n) : NULL;
    qg_ai_error e;
    qg_ai_provider_gemini.decode_error(status, retry_after, body, n, &e);
    free(body);
    cr_assert_eq(e.http_status, status);
    cr_assert_null(strstr(e.message, "SECRETKEY"));
    return e;
}

Test(ai_gemini, error_classes)
{
    qg_ai_error e = classify(400, NULL, "gemini_error_key.json");
    cr_assert_eq(e.kind, QG_AI_EAUTH, "a bad key is a 400 INVALID_ARGUMENT with API_KEY_INVALID");
    cr_assert_not_null(strstr(e.message, "API key not valid"));
    cr_assert_eq(classify(403, NULL, "gemini_error_permission.json").kind, QG_AI_EAUTH);

    e = classify(429, NULL, "gemini_error_rate.json");
    cr_assert_eq(e.kind, QG_AI_ERATE);
    cr_assert_eq(e.retry_after_ms, 7000, "RetryInfo retryDelay");
    e = classify(429, "3", "gemini_error_rate.json");
    cr_assert_eq(e.retry_after_ms, 3000, "the header wins");
    e = classify(429, NULL, "gemini_error_rate_array.json");
    cr_assert_eq(e.kind, QG_AI_ERATE);
    cr_assert_eq(e.retry_after_ms, 1500);

    cr_assert_eq(classify(503, NULL, "gemini_error_unavailable.json").kind, QG_AI_EOVERLOADED);
    e = classify(400, NULL, "gemini_error_context.json");
    cr_assert_eq(e.kind, QG_AI_ECONTEXT);
    cr_assert_not_null(strstr(e.message, "INVALID_ARGUMENT: The input token count"));
    cr_assert_eq(classify(400, NULL, "gemini_error_badreq.json").kind, QG_AI_EBADREQ);
    cr_assert_eq(classify(500, NULL, "gemini_error_internal.json").kind, QG_AI_ESERVER);
    cr_assert_eq(classify(504, NULL, "gemini_error_deadline.json").kind, QG_AI_ETIMEOUT);

    const char *html = "<html>Service Unavailable</html>";
    qg_ai_provider_gemini.decode_error(503, NULL, html, strlen(html), &e);
    cr_assert_eq(e.kind, QG_AI_EOVERLOADED);
    cr_assert_str_eq(e.message, "HTTP 503 from gemini");
    cr_assert_eq(e.retry_after_ms, -1);
}
