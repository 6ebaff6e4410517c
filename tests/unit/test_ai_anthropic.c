/*
 * test_ai_anthropic.c - the Anthropic Messages provider on recorded wire
 * samples (tests/data/ai/anthropic_*): request encoding, reply decoding,
 * streams fed through the SSE framer split at every byte boundary, tool-call
 * argument reassembly, usage with cache tokens, each error class, and the
 * API key kept out of URLs, bodies and error messages.
 */
#include <criterion/criterion.h>

#include "ai_wire.h"
#include "ai/provider.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "sk-ant-api03-SECRETKEY0123456789"

static void assert_json_eq(const char *got, const char *want_file)
{
    char *want = ai_slurp(want_file, NULL);
    cJSON *a = cJSON_Parse(got), *b = cJSON_Parse(want);
    cr_assert_not_null(a, "body is not JSON: %s", got);
    cr_assert_not_null(b, "%s is not JSON", want_file);
    if (!cJSON_Compare(a, b, true)) {
        char *pa = cJSON_Print(a);
        cr_assert_fail("encoded body differs from %s:\n%s", want_file, pa);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(want);
}

static qg_ai_deployment dep(const char *base)
{
    qg_ai_deployment d = {0};
    snprintf(d.id, sizeof d.id, "dep_test");
    snprintf(d.provider, sizeof d.provider, "anthropic");
    snprintf(d.model, sizeof d.model, "claude-sonnet-4-5-20250929");
    snprintf(d.base_url, sizeof d.base_url, "%s", base ? base : "");
    return d;
}

/* The conversation of anthropic_request_tools.json. */
static const qg_ai_tool_call calls[] = {
    {.id = "toolu_01A", .name = "get_price", .arguments = "{\"symbol\": \"BTC-USD\"}"},
    {.id = "toolu_01B", .name = "get_position", .arguments = ""},
};
static const qg_ai_msg convo[] = {
    {.role = QG_AI_ROLE_USER, .content = "What is BTC trading at, and what do I hold?"},
    {.role = QG_AI_ROLE_ASSISTANT,
     .content = "Let me check.",
     .tool_calls = calls,
     .n_tool_calls = 2},
    {.role = QG_AI_ROLE_TOOL,
     .content = "{\"price\": 64250.5}",
     .tool_call_id = "toolu_01A",
     .tool_name = "get_price"},
    {.role = QG_AI_ROLE_TOOL,
     .content = "flat",
     .tool_call_id = "toolu_01B",
     .tool_name = "get_position"},
    {.role = QG_AI_ROLE_USER, .content = "Answer in one line."},
};
static const qg_ai_tool tools[] = {
    {.name = "get_price",
     .description = "Last trade price of a symbol",
     .parameters = "{\"type\":\"object\",\"properties\":{\"symbol\":{\"type\":\"string\"}},"
                   "\"required\":[\"symbol\"],\"additionalProperties\":false}"},
    {.name = "get_position", .parameters = NULL},
};

static qg_ai_request tools_request(void)
{
    return (qg_ai_request){.system = "You are a careful trading analyst.",
                           .messages = convo,
                           .n_messages = 5,
                           .tools = tools,
                           .n_tools = 2,
                           .tool_choice = "required",
                           .temperature = 0.25,
                           .stream = true};
}

Test(ai_anthropic, encode_matches_recorded_request)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_deployment d = dep(NULL);
    qg_ai_request req = tools_request();
    qg_ai_http_req hr;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_anthropic.encode(&d, KEY, &req, &a, &hr, &err), QG_OK, "%s",
                 err.msg);
    cr_assert_str_eq(hr.method, "POST");
    cr_assert_str_eq(hr.url, "https://api.anthropic.com/v1/messages");
    cr_assert_str_eq(ai_header(&hr, "x-api-key:"), "x-api-key: " KEY);
    cr_assert_str_eq(ai_header(&hr, "anthropic-version:"), "anthropic-version: 2023-06-01");
    cr_assert_str_eq(ai_header(&hr, "content-type:"), "Content-Type: application/json");
    cr_assert_null(strstr(hr.body.data, KEY));
    cr_assert_null(strstr(hr.url, KEY));
    assert_json_eq(hr.body.data, "anthropic_request_tools.json");
    qg_buf_free(&hr.body);
    qg_arena_free(&a);
}

static cJSON *encode_json(const qg_ai_request *req, const char *base, const char *key)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_deployment d = dep(base);
    qg_ai_http_req hr;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_anthropic.encode(&d, key, req, &a, &hr, &err), QG_OK, "%s",
                 err.msg);
    cJSON *j = cJSON_Parse(hr.body.data);
    cJSON_AddStringToObject(j, "_url", hr.url);
    cJSON_AddBoolToObject(j, "_has_key", ai_header(&hr, "x-api-key:") != NULL);
    qg_buf_free(&hr.body);
    qg_arena_free(&a);
    return j;
}

Test(ai_anthropic, encode_defaults_choices_and_json_mode)
{
    qg_ai_msg one = {.role = QG_AI_ROLE_USER, .content = "hi"};
    qg_ai_request req = {.messages = &one, .n_messages = 1, .temperature = -1, .max_tokens = 77};
    cJSON *j = encode_json(&req, "http://127.0.0.1:9/v1/", "");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "_url")->valuestring, "http://127.0.0.1:9/v1/messages");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "_has_key")), "empty key sends no header");
    cr_assert_eq(cJSON_GetObjectItem(j, "max_tokens")->valueint, 77);
    cr_assert_null(cJSON_GetObjectItem(j, "temperature"));
    cr_assert_null(cJSON_GetObjectItem(j, "stream"));
    cr_assert_null(cJSON_GetObjectItem(j, "system"));
    cr_assert_null(cJSON_GetObjectItem(j, "tools"));

    /* Anthropic has no JSON mode: nothing changes on the wire. */
    req.json_mode = true;
    cJSON *k = encode_json(&req, "http://127.0.0.1:9/v1/", "");
    cr_assert(cJSON_Compare(j, k, true));
    cJSON_Delete(j);
    cJSON_Delete(k);

    req.tools = tools;
    req.n_tools = 2;
    req.tool_choice = "none";
    j = encode_json(&req, "http://h:1", KEY);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "_url")->valuestring, "http://h:1/v1/messages");
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "tool_choice"), "type")->valuestring, "none");
    cJSON_Delete(j);
    req.tool_choice = "get_position";
    j = encode_json(&req, NULL, KEY);
    cJSON *tc = cJSON_GetObjectItem(j, "tool_choice");
    cr_assert_str_eq(cJSON_GetObjectItem(tc, "type")->valuestring, "tool");
    cr_assert_str_eq(cJSON_GetObjectItem(tc, "name")->valuestring, "get_position");
    cJSON_Delete(j);
    req.tool_choice = "auto";
    j = encode_json(&req, NULL, KEY);
    cr_assert_null(cJSON_GetObjectItem(j, "tool_choice"));
    cJSON_Delete(j);
}

static void encode_fails(const qg_ai_request *req, const char *key, const char *want_in_msg)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_deployment d = dep(NULL);
    qg_ai_http_req hr;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_anthropic.encode(&d, key, req, &a, &hr, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, want_in_msg), "'%s' lacks '%s'", err.msg, want_in_msg);
    cr_assert_null(strstr(err.msg, "SECRETKEY"), "key in error: %s", err.msg);
    qg_arena_free(&a);
}

Test(ai_anthropic, encode_errors_name_the_field_and_never_the_key)
{
    qg_ai_tool_call bad = {.id = "toolu_1", .name = "f", .arguments = "[1,2"};
    qg_ai_msg m1[] = {{.role = QG_AI_ROLE_USER, .content = "x"},
                      {.role = QG_AI_ROLE_ASSISTANT, .tool_calls = &bad, .n_tool_calls = 1}};
    qg_ai_request r1 = {.messages = m1, .n_messages = 2, .temperature = -1};
    encode_fails(&r1, KEY, "messages[1].tool_calls[0].arguments");

    qg_ai_msg m2[] = {{.role = QG_AI_ROLE_USER, .content = "x"},
                      {.role = QG_AI_ROLE_TOOL, .content = "r"}};
    qg_ai_request r2 = {.messages = m2, .n_messages = 2, .temperature = -1};
    encode_fails(&r2, KEY, "messages[1].tool_call_id");

    qg_ai_request r3 = {.messages = m1, .n_messages = 1, .temperature = -1};
    encode_fails(&r3, KEY "\r\nX-Evil: 1", "API key");

    qg_ai_request r4 = {.messages = m1,
                        .n_messages = 1,
                        .tools = tools,
                        .n_tools = 2,
                        .tool_choice = "sell_everything",
                        .temperature = -1};
    encode_fails(&r4, KEY, "tool_choice");

    qg_ai_tool badschema = {.name = "f", .parameters = "{nope"};
    qg_ai_request r5 = {
        .messages = m1, .n_messages = 1, .tools = &badschema, .n_tools = 1, .temperature = -1};
    encode_fails(&r5, KEY, "tools[0].parameters");

    qg_ai_request r6 = {.temperature = -1};
    encode_fails(&r6, KEY, "messages");
}

Test(ai_anthropic, decode_tool_use_reply)
{
    size_t n;
    char *body = ai_slurp("anthropic_response_tools.json", &n);
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_response r;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_anthropic.decode(body, n, &a, &r, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(r.error.kind, QG_AI_OK);
    cr_assert_str_eq(r.text, "I'll look up the price first.");
    cr_assert_eq(r.n_tool_calls, 2);
    cr_assert_str_eq(r.tool_calls[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    cr_assert_str_eq(r.tool_calls[0].name, "get_price");
    cJSON *args = cJSON_Parse(r.tool_calls[0].arguments);
    cr_assert_str_eq(cJSON_GetObjectItem(args, "symbol")->valuestring, "BTC-USD");
    cr_assert_str_eq(cJSON_GetObjectItem(args, "venue")->valuestring, "coinbase");
    cJSON_Delete(args);
    cr_assert_str_eq(r.tool_calls[1].id, "toolu_01Xz");
    cr_assert_str_eq(r.tool_calls[1].arguments, "{}");
    cr_assert_str_eq(r.finish_reason, "tool_calls");
    cr_assert_str_eq(r.model, "claude-sonnet-4-5-20250929");
    cr_assert_eq(r.usage.input, 412 + 20 + 1024);
    cr_assert_eq(r.usage.cached, 1024);
    cr_assert_eq(r.usage.output, 77);
    qg_arena_free(&a);
    free(body);
}

Test(ai_anthropic, decode_text_reply_and_garbage)
{
    size_t n;
    char *body = ai_slurp("anthropic_response_text.json", &n);
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_response r;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_anthropic.decode(body, n, &a, &r, &err), QG_OK);
    cr_assert_str_eq(r.text, "Hi! My name is Claude. How can I help?");
    cr_assert_eq(r.n_tool_calls, 0);
    cr_assert_str_eq(r.finish_reason, "length");
    cr_assert_eq(r.usage.input, 2095);
    cr_assert_eq(r.usage.output, 503);
    cr_assert_eq(r.usage.cached, 0);

    const char *junk = "<html>bad gateway</html>";
    cr_assert_eq(qg_ai_provider_anthropic.decode(junk, strlen(junk), &a, &r, &err), QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL);
    const char *nocontent = "{\"type\":\"message\"}";
    cr_assert_eq(qg_ai_provider_anthropic.decode(nocontent, strlen(nocontent), &a, &r, &err),
                 QG_EINVAL);
    cr_assert_eq(r.error.kind, QG_AI_EPROTOCOL);
    qg_arena_free(&a);
    free(body);
}

/* ---- streams ---- */

typedef struct {
    qg_buf text;
    qg_buf args[4];
    int tool_deltas;
    int firsts_with_id[4];
    const char *ids[4], *names[4];
} collected;

static void on_delta(void *ud, const qg_ai_delta *d)
{
    collected *c = ud;
    if (d->kind == QG_AI_DELTA_TEXT) {
        qg_buf_append(&c->text, d->text, d->len);
        return;
    }
    cr_assert(d->index >= 0 && d->index < 4);
    c->tool_deltas++;
    if (d->id) {
        c->firsts_with_id[d->index]++;
        c->ids[d->index] = d->id;
        c->names[d->index] = d->name;
    }
    qg_buf_append(&c->args[d->index], d->text, d->len);
}

static void collected_init(collected *c)
{
    memset(c, 0, sizeof *c);
    qg_buf_init(&c->text, 1 << 20);
    for (int i = 0; i < 4; i++) qg_buf_init(&c->args[i], 1 << 20);
}

static void collected_free(collected *c)
{
    qg_buf_free(&c->text);
    for (int i = 0; i < 4; i++) qg_buf_free(&c->args[i]);
}

/* Feeds body in pieces of `split` bytes (0: all at once). */
static qg_status run_stream(const char *body, size_t n, size_t split, qg_arena *a, collected *c,
                            qg_ai_stream *st, qg_ai_response *r)
{
    qg_ai_stream_init(st, a, on_delta, c);
    qg_ai_framer f;
    qg_ai_framer_init(&f, &qg_ai_provider_anthropic, st);
    qg_status rc = QG_OK;
    size_t step = split ? split : n;
    for (size_t off = 0; !rc && off < n; off += step)
        rc = qg_ai_framer_feed(&f, body + off, n - off < step ? n - off : step);
    if (!rc) rc = qg_ai_framer_end(&f);
    qg_ai_framer_free(&f);
    qg_ai_stream_finish(st, r);
    return rc;
}

static void check_tools_stream(const char *body, size_t n, size_t split)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    collected c;
    collected_init(&c);
    qg_ai_stream st;
    qg_ai_response r;
    cr_assert_eq(run_stream(body, n, split, &a, &c, &st, &r), QG_OK, "split %zu", split);
    cr_assert(st.done, "message_stop seen (split %zu)", split);
    cr_assert_str_eq(r.text, "Let me check the price — “BTC”.", "split %zu", split);
    cr_assert_str_eq(c.text.data, r.text, "deltas add up to the text");
    cr_assert_eq(r.n_tool_calls, 2);
    cr_assert_str_eq(r.tool_calls[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    cr_assert_str_eq(r.tool_calls[0].name, "get_price");
    cr_assert_str_eq(r.tool_calls[0].arguments, "{\"symbol\": \"BTC-USD\"}");
    cr_assert_str_eq(r.tool_calls[1].id, "toolu_02Pos");
    cr_assert_str_eq(r.tool_calls[1].name, "get_position");
    cr_assert_str_eq(r.tool_calls[1].arguments, "{\"account\": \"main\"}");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(c.firsts_with_id[i], 1, "call %d announced once", i);
        cr_assert_str_eq(c.ids[i], r.tool_calls[i].id);
        cr_assert_str_eq(c.names[i], r.tool_calls[i].name);
        cr_assert_str_eq(c.args[i].data, r.tool_calls[i].arguments);
    }
    cr_assert_str_eq(r.finish_reason, "tool_calls");
    cr_assert_str_eq(r.model, "claude-sonnet-4-5-20250929");
    cr_assert_eq(r.usage.input, 572);
    cr_assert_eq(r.usage.cached, 100);
    cr_assert_eq(r.usage.output, 89);
    cr_assert_eq(r.error.kind, QG_AI_OK);
    collected_free(&c);
    qg_arena_free(&a);
}

Test(ai_anthropic, stream_tools_reassembled_at_every_split)
{
    size_t n;
    char *body = ai_slurp("anthropic_stream_tools.sse", &n);
    for (size_t split = 0; split <= 97; split++) check_tools_stream(body, n, split);
    check_tools_stream(body, n, 4096);
    free(body);
}

Test(ai_anthropic, stream_with_crlf_lines)
{
    size_t n;
    char *body = ai_slurp("anthropic_stream_tools.sse", &n);
    char *crlf = malloc(2 * n + 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (body[i] == '\n') crlf[m++] = '\r';
        crlf[m++] = body[i];
    }
    check_tools_stream(crlf, m, 1);
    check_tools_stream(crlf, m, 7);
    free(crlf);
    free(body);
}

Test(ai_anthropic, stream_error_event_is_normalised)
{
    size_t n;
    char *body = ai_slurp("anthropic_stream_error.sse", &n);
    for (size_t split = 1; split < 40; split += 13) {
        qg_arena a;
        qg_arena_init(&a, 0);
        collected c;
        collected_init(&c);
        qg_ai_stream st;
        qg_ai_response r;
        cr_assert_eq(run_stream(body, n, split, &a, &c, &st, &r), QG_OK);
        cr_assert_eq(r.error.kind, QG_AI_EOVERLOADED);
        cr_assert(qg_ai_errkind_retryable(r.error.kind));
        cr_assert_not_null(strstr(r.error.message, "Overloaded"));
        cr_assert_str_eq(r.text, "Partial");
        cr_assert_eq(r.usage.input, 25);
        collected_free(&c);
        qg_arena_free(&a);
    }
    free(body);
}

Test(ai_anthropic, stream_undecodable_event_fails)
{
    const char *body = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\n\n";
    qg_arena a;
    qg_arena_init(&a, 0);
    collected c;
    collected_init(&c);
    qg_ai_stream st;
    qg_ai_response r;
    cr_assert_eq(run_stream(body, strlen(body), 0, &a, &c, &st, &r), QG_EINVAL);
    /* input_json_delta for a block that never started as tool_use */
    const char *orphan = "data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":"
                         "{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n\n";
    cr_assert_eq(run_stream(orphan, strlen(orphan), 5, &a, &c, &st, &r), QG_EINVAL);
    collected_free(&c);
    qg_arena_free(&a);
}

/* ---- errors ---- */

static qg_ai_error classify(int status, const char *retry_after, const char *file)
{
    size_t n = 0;
    char *body = file ? ai_slurp(file, &n) : NULL;
    qg_ai_error e;
    qg_ai_provider_anthropic.decode_error(status, retry_after, body, n, &e);
    free(body);
    cr_assert_eq(e.http_status, status);
    cr_assert_null(strstr(e.message, "SECRETKEY"));
    return e;
}

Test(ai_anthropic, error_classes)
{
    qg_ai_error e = classify(401, NULL, "anthropic_error_auth.json");
    cr_assert_eq(e.kind, QG_AI_EAUTH);
    cr_assert_str_eq(e.message, "authentication_error: invalid x-api-key");
    cr_assert_eq(e.retry_after_ms, -1);
    cr_assert_eq(classify(403, NULL, "anthropic_error_permission.json").kind, QG_AI_EAUTH);

    e = classify(429, "17", "anthropic_error_rate.json");
    cr_assert_eq(e.kind, QG_AI_ERATE);
    cr_assert_eq(e.retry_after_ms, 17000);
    cr_assert_not_null(strstr(e.message, "rate limit"));

    e = classify(529, NULL, "anthropic_error_overloaded.json");
    cr_assert_eq(e.kind, QG_AI_EOVERLOADED);
    cr_assert(qg_ai_errkind_retryable(e.kind));

    e = classify(400, NULL, "anthropic_error_context.json");
    cr_assert_eq(e.kind, QG_AI_ECONTEXT);
    cr_assert_not_null(strstr(e.message, "prompt is too long"));
    cr_assert_eq(classify(400, NULL, "anthropic_error_badreq.json").kind, QG_AI_EBADREQ);
    cr_assert(!qg_ai_errkind_retryable(QG_AI_EBADREQ));
    cr_assert_eq(classify(500, NULL, "anthropic_error_api.json").kind, QG_AI_ESERVER);
    cr_assert_eq(classify(413, NULL, "anthropic_error_too_large.json").kind, QG_AI_ECONTEXT);

    /* a body that is not Anthropic's: the status decides */
    const char *html = "<html><body>502 Bad Gateway</body></html>";
    qg_ai_provider_anthropic.decode_error(502, NULL, html, strlen(html), &e);
    cr_assert_eq(e.kind, QG_AI_ESERVER);
    cr_assert_str_eq(e.message, "HTTP 502 from anthropic");
    qg_ai_provider_anthropic.decode_error(529, "2", NULL, 0, &e);
    cr_assert_eq(e.kind, QG_AI_EOVERLOADED);
    cr_assert_eq(e.retry_after_ms, 2000);
    qg_ai_provider_anthropic.decode_error(504, NULL, "", 0, &e);
    cr_assert_eq(e.kind, QG_AI_ETIMEOUT);
}

/* Found by fuzz/fuzz_ai_wire: a number past int64 was converted (undefined
 * behaviour); a count past 1e18 now reads as absent. */
Test(ai_anthropic, huge_numbers_read_as_absent)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_response r;
    qg_error err = {0};
    const char *body = "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],"
                       "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":3e18,"
                       "\"cache_read_input_tokens\":3e18,\"cache_creation_input_tokens\":3e18,"
                       "\"output_tokens\":1e300}}";
    cr_assert_eq(qg_ai_provider_anthropic.decode(body, strlen(body), &a, &r, &err), QG_OK);
    cr_assert_eq(r.usage.input, 0);
    cr_assert_eq(r.usage.output, 0);
    cr_assert_eq(r.usage.cached, 0);

    const char *stream = "event: content_block_start\n"
                         "data: {\"type\":\"content_block_start\",\"index\":1e30,"
                         "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\","
                         "\"name\":\"get_price\",\"input\":{}}}\n\n";
    collected c;
    collected_init(&c);
    qg_ai_stream st;
    cr_assert_eq(run_stream(stream, strlen(stream), 0, &a, &c, &st, &r), QG_ERANGE);
    cr_assert_eq(r.n_tool_calls, 0);
    collected_free(&c);
    qg_arena_free(&a);
}
