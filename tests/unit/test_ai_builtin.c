/*
 * test_ai_builtin.c - the offline reasoner: signal analysis from good and
 * poor evidence, wrong-side levels, derived levels, missing fields; the
 * strategy builder's commands as users phrase them (table-driven); the
 * provider's dispatch, JSON answers, usage estimate and streamed deltas.
 */
#include <criterion/criterion.h>

#include "ai/builtin.h"
#include "ai/provider.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- signal analysis ---- */

static cJSON *analyze(const char *signal_json, qg_arena *a)
{
    cJSON *s = cJSON_Parse(signal_json);
    cr_assert_not_null(s, "test signal does not parse");
    qg_error err = {0};
    const char *out = NULL;
    qg_status rc = qg_builtin_analyze_signal(s, a, &out, &err);
    cJSON_Delete(s);
    cr_assert_eq(rc, QG_OK, "%s", err.msg);
    cJSON *d = cJSON_Parse(out);
    cr_assert_not_null(d, "answer is not JSON: %s", out);
    return d;
}

static double num(const cJSON *d, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, k);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", k);
    return v->valuedouble;
}

static const char *str(const cJSON *d, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, k);
    cr_assert(cJSON_IsString(v), "%s is not a string", k);
    return v->valuestring;
}

#define GOOD_LONG                                                                                  \
    "{\"symbol\":\"EURUSD\",\"timeframe\":\"15m\",\"signal_type\":\"buy\",\"confidence\":88,"      \
    "\"timestamp\":\"2025-12-18T08:30:00Z\",\"price_data\":{\"open\":1.0850,\"high\":1.0875,"      \
    "\"low\":1.0830,\"close\":1.0865},\"sl\":1.0825,\"tp\":1.0985,"                                \
    "\"multi_tf\":{\"1h\":\"bullish\",\"4h\":\"bull\",\"1d\":\"up\"},"                             \
    "\"confluences\":[\"order_block\",\"fvg\",\"liquidity_sweep\",\"bos\"]}"

Test(ai_builtin, strong_long_signal_is_a_low_risk_buy)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    cJSON *d = analyze(GOOD_LONG, &a);
    cr_assert_str_eq(str(d, "action"), "buy");
    cr_assert_str_eq(str(d, "direction"), "long");
    cr_assert_str_eq(str(d, "risk"), "low");
    cr_assert_geq(num(d, "score"), 85, "score %g", num(d, "score"));
    cr_assert_float_eq(num(d, "entry"), 1.0865, 1e-9);
    cr_assert_float_eq(num(d, "stop_loss"), 1.0825, 1e-9);
    cr_assert_float_eq(num(d, "take_profit"), 1.0985, 1e-9);
    cr_assert_float_eq(num(d, "risk_reward"), 3.0, 1e-9);
    const char *ex = str(d, "explanation");
    cr_assert(strstr(ex, "liquidity sweep"), "%s", ex);
    cr_assert(strstr(ex, "3 of 3 timeframes agree"), "%s", ex);
    cr_assert(strstr(ex, "London killzone"), "%s", ex);
    cr_assert(strstr(ex, "reward:risk 3.00"), "%s", ex);
    cr_assert(cJSON_GetArraySize(cJSON_GetObjectItem(d, "factors")) >= 6);
    cr_assert_str_eq(str(d, "reasoner"), "builtin");
    cJSON_Delete(d);
    qg_arena_free(&a);
}

/* Same instrument, weak evidence: one confluence, low confidence, the
 * timeframes against it, poor reward:risk, outside the killzones. */
Test(ai_builtin, poor_confluence_signal_holds_with_high_risk)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    cJSON *d = analyze("{\"symbol\":\"EURUSD\",\"timeframe\":\"15m\",\"signal_type\":\"buy\","
                       "\"confidence\":40,\"timestamp\":\"2025-12-18T20:00:00Z\","
                       "\"price_data\":{\"open\":1.0850,\"high\":1.0875,\"low\":1.0830,"
                       "\"close\":1.0865},\"sl\":1.0825,\"tp\":1.0885,"
                       "\"multi_tf\":[\"1h:bear\",\"4h:bearish\"],\"confluences\":[\"fvg\"]}",
                       &a);
    cr_assert_str_eq(str(d, "action"), "hold");
    cr_assert_str_eq(str(d, "risk"), "high");
    cr_assert_lt(num(d, "score"), 40, "score %g", num(d, "score"));
    const char *ex = str(d, "explanation");
    cr_assert(strstr(ex, "Lowered by:"), "%s", ex);
    cr_assert(strstr(ex, "only 1 confluence"), "%s", ex);
    cr_assert(strstr(ex, "0 of 2 timeframes agree"), "%s", ex);
    cr_assert(strstr(ex, "below 1"), "%s", ex); /* reward:risk 0.5 */
    cJSON_Delete(d);
    qg_arena_free(&a);
}

/* A long whose stop sits above the entry: whatever else it claims, hold. */
Test(ai_builtin, stop_on_the_wrong_side_is_penalised)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    cJSON *d = analyze("{\"symbol\":\"BTCUSD\",\"signal_type\":\"long\",\"confidence\":95,"
                       "\"price_data\":{\"open\":100,\"high\":102,\"low\":99,\"close\":101},"
                       "\"sl\":103,\"tp\":110,\"multi_tf\":true,"
                       "\"confluences\":[\"order_block\",\"fvg\",\"liquidity_sweep\"]}",
                       &a);
    cr_assert_str_eq(str(d, "action"), "hold");
    cr_assert_str_eq(str(d, "risk"), "high");
    cr_assert_lt(num(d, "score"), 50, "score %g", num(d, "score"));
    cr_assert(strstr(str(d, "explanation"), "wrong side"), "%s", str(d, "explanation"));
    cJSON_Delete(d);
    /* a short whose target is above the entry */
    d = analyze("{\"symbol\":\"XAUUSD\",\"signal_type\":\"SELL\",\"confidence\":90,"
                "\"price_data\":{\"open\":2000,\"high\":2005,\"low\":1990,\"close\":1995},"
                "\"sl\":2010,\"tp\":2020,\"confluences\":[\"bos\",\"premium\"]}",
                &a);
    cr_assert_str_eq(str(d, "action"), "hold");
    cr_assert(strstr(str(d, "explanation"), "target"), "%s", str(d, "explanation"));
    cJSON_Delete(d);
    qg_arena_free(&a);
}

/* No sl/tp: levels come from the candle; CHoCH direction from the bias. */
Test(ai_builtin, derives_levels_and_direction)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    cJSON *d = analyze("{\"symbol\":\"GBPUSD\",\"timeframe\":\"5m\",\"signal_type\":\"CHoCH\","
                       "\"confidence\":\"0.8\",\"price_data\":{\"open\":\"1.2700\","
                       "\"high\":1.2740,\"low\":1.2720,\"close\":1.2725},"
                       "\"confluences\":[\"HTF_BIAS_BEAR\",\"Order Block\",\"killzone\"]}",
                       &a);
    cr_assert_str_eq(str(d, "direction"), "short");
    double entry = num(d, "entry"), sl = num(d, "stop_loss"), tp = num(d, "take_profit");
    cr_assert_gt(sl, 1.2740, "stop %g must be above the candle high", sl);
    cr_assert_lt(tp, entry);
    cr_assert_float_eq(num(d, "risk_reward"), 2.0, 1e-6);
    cr_assert_float_eq(entry - tp, 2 * (sl - entry), 1e-6);
    const char *ex = str(d, "explanation");
    cr_assert(strstr(ex, "change of character") || strstr(ex, "CHoCH"), "%s", ex);
    cJSON *fs = cJSON_GetObjectItem(d, "factors");
    bool derived = false, inferred = false;
    const cJSON *f;
    cJSON_ArrayForEach(f, fs)
    {
        const char *n = cJSON_GetObjectItem(f, "factor")->valuestring;
        if (!strcmp(n, "derived_stop")) derived = true;
        if (!strcmp(n, "direction")) inferred = true;
    }
    cr_assert(derived && inferred);
    cJSON_Delete(d);
    qg_arena_free(&a);
}

/* The "session" factor's detail for a signal at ts (no killzone
 * confluence given), or NULL. */
static const char *session_at(const char *ts, qg_arena *a, cJSON **keep)
{
    char sig[512];
    snprintf(sig, sizeof sig,
             "{\"symbol\":\"EURUSD\",\"timeframe\":\"15m\",\"signal_type\":\"CHoCH\","
             "\"timestamp\":\"%s\",\"price_data\":{\"close\":1.0865},\"sl\":1.08,"
             "\"tp\":1.092}",
             ts);
    *keep = analyze(sig, a);
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(*keep, "factors"))
    {
        if (!strcmp(cJSON_GetObjectItem(f, "factor")->valuestring, "session"))
            return cJSON_GetObjectItem(f, "detail")->valuestring;
    }
    return NULL;
}

/* Killzones are 07:00-10:00 in London's and New York's own time, so the
 * same UTC hour is inside in summer and outside in winter; weekends are
 * outside. */
Test(ai_builtin, session_killzones_follow_daylight_saving)
{
    static const struct {
        const char *ts, *want;
    } cases[] = {
        {"2026-07-15T06:30:00Z", "inside the London killzone"}, /* 07:30 BST */
        {"2026-01-14T06:30:00Z", "outside the London and New York killzones"},
        {"2026-01-14T07:00:00Z", "inside the London killzone"},   /* 07:00 GMT */
        {"2026-07-15T11:30:00Z", "inside the New York killzone"}, /* 07:30 EDT */
        {"2026-01-14T11:30:00Z", "outside the London and New York killzones"},
        {"2026-01-14T14:59:00Z", "inside the New York killzone"},              /* 09:59 EST */
        {"2026-07-18T07:30:00Z", "outside the London and New York killzones"}, /* Saturday */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qg_arena a;
        qg_arena_init(&a, 0);
        cJSON *d = NULL;
        const char *got = session_at(cases[i].ts, &a, &d);
        cr_assert(got, "%s: no session factor", cases[i].ts);
        cr_assert_str_eq(got, cases[i].want, "%s", cases[i].ts);
        cJSON_Delete(d);
        qg_arena_free(&a);
    }
}

/* Unknown direction and no levels: hold, null levels, still an answer. */
Test(ai_builtin, no_direction_holds)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    cJSON *d = analyze("{\"symbol\":\"US30\",\"signal_type\":\"alert\",\"price_data\":{"
                       "\"open\":100,\"high\":101,\"low\":99,\"close\":100}}",
                       &a);
    cr_assert_str_eq(str(d, "action"), "hold");
    cr_assert_str_eq(str(d, "direction"), "none");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(d, "stop_loss")));
    cr_assert(strstr(str(d, "explanation"), "No direction"), "%s", str(d, "explanation"));
    cJSON_Delete(d);
    qg_arena_free(&a);
}

Test(ai_builtin, missing_fields_are_named)
{
    static const struct {
        const char *json, *field;
    } cases[] = {
        {"{\"price_data\":{\"close\":1}}", "'symbol'"},
        {"{\"symbol\":\"\",\"price_data\":{\"close\":1}}", "'symbol'"},
        {"{\"symbol\":\"X\"}", "'price_data'"},
        {"{\"symbol\":\"X\",\"price_data\":{\"open\":1}}", "'price_data.close'"},
        {"{\"symbol\":\"X\",\"price_data\":{\"close\":\"abc\"}}", "'price_data.close'"},
        {"{\"symbol\":\"X\",\"price_data\":{\"close\":-3}}", "'price_data.close' must be positive"},
        {"[1,2]", "not a JSON object"},
    };
    qg_arena a;
    qg_arena_init(&a, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *s = cJSON_Parse(cases[i].json);
        qg_error err = {0};
        const char *out = NULL;
        cr_assert_eq(qg_builtin_analyze_signal(s, &a, &out, &err), QG_EINVAL, "%s", cases[i].json);
        cr_assert(strstr(err.msg, cases[i].field), "%s: %s", cases[i].json, err.msg);
        cJSON_Delete(s);
    }
    qg_arena_free(&a);
}

/* Deterministic: the same signal always gives the same text. */
Test(ai_builtin, deterministic)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    cJSON *s = cJSON_Parse(GOOD_LONG);
    const char *o1 = NULL, *o2 = NULL;
    cr_assert_eq(qg_builtin_analyze_signal(s, &a, &o1, NULL), QG_OK);
    cr_assert_eq(qg_builtin_analyze_signal(s, &a, &o2, NULL), QG_OK);
    cr_assert_str_eq(o1, o2);
    cJSON_Delete(s);
    qg_arena_free(&a);
}

/* ---- intents ---- */

typedef struct intent_case {
    const char *text, *phase, *intent, *target;
} intent_case;

static const intent_case intent_cases[] = {
    {"proceed", "requirements", "proceed", "blueprint"},
    {"Proceed.", "blueprint", "proceed", "code"},
    {"let's move on", "blueprint", "proceed", "code"},
    {"Looks good, proceed!", "requirements", "proceed", "blueprint"},
    {"next", "code", "proceed", "testing"},
    {"OK", NULL, "proceed", NULL},
    {"continue", "deployment", "proceed", NULL}, /* no phase after the last */
    {"move on to testing", "blueprint", "proceed", "testing"},
    {"go back to requirements", "code", "back", "requirements"},
    {"Take me back to the blueprint.", "testing", "back", "blueprint"},
    {"can we go back?", "code", "back", "blueprint"},
    {"I'd like to revisit the design", "code", "back", "blueprint"},
    {"start coding", "blueprint", "start_coding", "code"},
    {"Looks good. Let's start coding!", "blueprint", "start_coding", "code"},
    {"please write the code", NULL, "start_coding", "code"},
    {"run the tests", "code", "run_tests", "testing"},
    {"Run a backtest on EURUSD", "code", "run_tests", "testing"},
    {"backtest", NULL, "run_tests", "testing"},
    {"deploy it", "testing", "deploy", "deployment"},
    {"let's go live", "testing", "deploy", "deployment"},
    {"restart", "code", "restart", "requirements"},
    {"let's start over from scratch", "testing", "restart", "requirements"},
    {"help", NULL, "help", NULL},
    {"what can you do?", NULL, "help", NULL},
    {"don't deploy yet", "testing", "chat", NULL},
    {"wait, do not proceed", "blueprint", "chat", NULL},
    {"what is a backtest?", NULL, "chat", NULL},
    {"I want an RSI strategy on EURUSD that enters on the next candle after a cross and exits "
     "at 2R with a trailing stop and a daily loss limit",
     "requirements", "chat", NULL},
    {"", NULL, "chat", NULL},
    {"   !!! ", NULL, "chat", NULL},
    {"The entries should use the 4h trend and the 15m order blocks for timing. Risk 1% per "
     "trade with a hard stop. That's all, looks good, let's move on.",
     "requirements", "proceed", "blueprint"},
};

Test(ai_builtin, intent_table)
{
    for (size_t i = 0; i < sizeof intent_cases / sizeof intent_cases[0]; i++) {
        const intent_case *c = &intent_cases[i];
        qg_builtin_intent in;
        qg_builtin_classify_intent(c->text, c->phase, &in);
        cr_assert_str_eq(in.intent, c->intent, "\"%s\": got %s", c->text, in.intent);
        if (c->target)
            cr_assert_str_eq(in.target_phase ? in.target_phase : "(null)", c->target, "\"%s\"",
                             c->text);
        else
            cr_assert_null(in.target_phase, "\"%s\": target %s", c->text, in.target_phase);
        cr_assert(in.confidence > 0.5 && in.confidence <= 1, "\"%s\": %g", c->text, in.confidence);
    }
}

Test(ai_builtin, intent_confidence_drops_with_length)
{
    qg_builtin_intent shortm, longm;
    qg_builtin_classify_intent("proceed", NULL, &shortm);
    qg_builtin_classify_intent("ok so I read it all and I think we should proceed now", NULL,
                               &longm);
    cr_assert_str_eq(longm.intent, "proceed");
    cr_assert_gt(shortm.confidence, longm.confidence);
}

/* ---- the provider ---- */

typedef struct deltas {
    int n;
    char text[4096];
    size_t len;
} deltas;

static void on_delta(void *ud, const qg_ai_delta *d)
{
    deltas *ds = ud;
    cr_assert_eq(d->kind, QG_AI_DELTA_TEXT);
    ds->n++;
    memcpy(ds->text + ds->len, d->text, d->len);
    ds->len += d->len;
    ds->text[ds->len] = 0;
}

Test(ai_builtin, provider_signal_task_streams_and_counts)
{
    cr_assert_not_null(qg_ai_provider_builtin.complete);
    cr_assert_null(qg_ai_provider_builtin.encode);
    cr_assert_str_eq(qg_ai_provider_builtin.name, "builtin");
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_request req = {
        .task = "signal.analyze", .task_input = GOOD_LONG, .stream = true, .temperature = -1};
    deltas ds = {0};
    qg_ai_response resp;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_builtin.complete(NULL, &req, &a, on_delta, &ds, &resp, &err), QG_OK,
                 "%s", err.msg);
    cr_assert_gt(ds.n, 1, "answer should arrive in several deltas");
    cr_assert_str_eq(ds.text, resp.text);
    cJSON *d = cJSON_Parse(resp.text);
    cr_assert_str_eq(str(d, "action"), "buy");
    cJSON_Delete(d);
    cr_assert_eq(resp.usage.input, (int64_t)((strlen(GOOD_LONG) + 3) / 4));
    cr_assert_eq(resp.usage.output, (int64_t)((strlen(resp.text) + 3) / 4));
    cr_assert_str_eq(resp.finish_reason, "stop");
    cr_assert_str_eq(resp.model, "builtin");
    cr_assert_eq(resp.error.kind, QG_AI_OK);
    qg_arena_free(&a);
}

/* The template's parameters handed over parsed (task_doc) give the same
 * answer as their text; the text is then not read. */
Test(ai_builtin, provider_reads_the_parsed_task_input)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    char params[4096];
    snprintf(params, sizeof params, "{\"signal\":%s,\"market\":{}}", GOOD_LONG);
    qg_ai_request req = {.task = "signal.analyze", .task_input = params, .temperature = -1};
    qg_ai_response want, got;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_builtin.complete(NULL, &req, &a, NULL, NULL, &want, &err), QG_OK,
                 "%s", err.msg);
    cJSON *doc = cJSON_Parse(params);
    req.task_input = "not json";
    req.task_doc = doc;
    cr_assert_eq(qg_ai_provider_builtin.complete(NULL, &req, &a, NULL, NULL, &got, &err), QG_OK,
                 "%s", err.msg);
    cr_assert_str_eq(got.text, want.text);
    cJSON_Delete(doc);
    qg_arena_free(&a);
}

Test(ai_builtin, provider_bad_signal_is_a_bad_request)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_request req = {.task = "signal.analyze", .task_input = "{\"price_data\":{\"close\":1}}"};
    qg_ai_response resp;
    qg_error err = {0};
    cr_assert_eq(qg_ai_provider_builtin.complete(NULL, &req, &a, NULL, NULL, &resp, &err),
                 QG_EINVAL);
    cr_assert_eq(resp.error.kind, QG_AI_EBADREQ);
    cr_assert(strstr(resp.error.message, "symbol"), "%s", resp.error.message);
    qg_arena_free(&a);
}

Test(ai_builtin, provider_intent_from_messages_and_input)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_msg msgs[] = {{.role = QG_AI_ROLE_USER, .content = "write me a strategy"},
                        {.role = QG_AI_ROLE_ASSISTANT, .content = "Here is the blueprint"},
                        {.role = QG_AI_ROLE_USER, .content = "Take me back to requirements"}};
    qg_ai_request req = {.task = "chat.intent", .messages = msgs, .n_messages = 3};
    qg_ai_response resp;
    cr_assert_eq(qg_ai_provider_builtin.complete(NULL, &req, &a, NULL, NULL, &resp, NULL), QG_OK);
    cr_assert_str_eq(resp.text,
                     "{\"intent\":\"back\",\"target_phase\":\"requirements\",\"confidence\":0.95}");
    req.task_input = "{\"text\":\"proceed\",\"current_phase\":\"testing\"}";
    cr_assert_eq(qg_ai_provider_builtin.complete(NULL, &req, &a, NULL, NULL, &resp, NULL), QG_OK);
    cr_assert(strstr(resp.text, "\"target_phase\":\"deployment\""), "%s", resp.text);
    qg_arena_free(&a);
}

Test(ai_builtin, provider_other_chat_says_what_it_can_do)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_msg msgs[] = {{.role = QG_AI_ROLE_USER, .content = "Explain the Kelly criterion"}};
    qg_ai_request req = {.task = "chat.blueprint", .messages = msgs, .n_messages = 1};
    qg_ai_response resp;
    cr_assert_eq(qg_ai_provider_builtin.complete(NULL, &req, &a, NULL, NULL, &resp, NULL), QG_OK);
    cr_assert(strstr(resp.text, "Explain the Kelly criterion"), "%s", resp.text);
    cr_assert(strstr(resp.text, "OPENAI_API_KEY"), "%s", resp.text);
    cr_assert(strstr(resp.text, "signal"), "%s", resp.text);
    cr_assert(strstr(resp.text, "blueprint phase"), "%s", resp.text);
    /* JSON mode: the same statement as a JSON object */
    req.json_mode = true;
    req.task = NULL;
    cr_assert_eq(qg_ai_provider_builtin.complete(NULL, &req, &a, NULL, NULL, &resp, NULL), QG_OK);
    cJSON *d = cJSON_Parse(resp.text);
    cr_assert_not_null(d, "%s", resp.text);
    cr_assert(strstr(str(d, "answer"), "OPENAI_API_KEY"));
    cr_assert_str_eq(str(d, "provider"), "builtin");
    cJSON_Delete(d);
    qg_arena_free(&a);
}

/* Deltas are cut between UTF-8 sequences, never inside one. */
Test(ai_builtin, provider_deltas_keep_utf8_whole)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_msg msgs[] = {{.role = QG_AI_ROLE_USER,
                         .content = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 \xe2\x82\xac\xe2\x82"
                                    "\xac\xe2\x82\xac"}};
    qg_ai_request req = {.task = "chat.code", .messages = msgs, .n_messages = 1};
    deltas ds = {0};
    qg_ai_response resp;
    cr_assert_eq(qg_ai_provider_builtin.complete(NULL, &req, &a, on_delta, &ds, &resp, NULL),
                 QG_OK);
    cr_assert_str_eq(ds.text, resp.text);
    cr_assert(strstr(resp.text, "\xe2\x82\xac"), "%s", resp.text);
    qg_arena_free(&a);
}

Test(ai_builtin, count_tokens)
{
    cr_assert_eq(qg_builtin_count_tokens(NULL), 0);
    cr_assert_eq(qg_builtin_count_tokens(""), 0);
    cr_assert_eq(qg_builtin_count_tokens("abcd"), 1);
    cr_assert_eq(qg_builtin_count_tokens("abcde"), 2);
}
