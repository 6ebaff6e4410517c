/*
 * test_signal.c - the TradingView alert parser: one case per rejection
 * (with the exact message and field), the canonical JSON round trip and
 * the fingerprint's invariants.
 */
#include "signal/signal.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* 2024-03-01T12:00:00Z */
#define NOW 1709294400000LL

#define GOOD_PD "\"price_data\":{\"open\":100,\"high\":110,\"low\":90,\"close\":105}"
#define GOOD_HEAD                                                                                  \
    "\"symbol\":\"eurusd\",\"timeframe\":\"15m\",\"signal_type\":\"BoS\",\"confidence\":85,"       \
    "\"timestamp\":\"2024-03-01T07:30:00Z\"," GOOD_PD

static qg_status parse(const char *json, qg_signal *s, const char **field, qg_error *err)
{
    return qg_signal_parse(json, strlen(json), NOW, s, field, err);
}

/* Expects json to be rejected with exactly msg, naming field. */
static void reject(const char *json, const char *field, const char *msg)
{
    qg_signal s;
    qg_error err = {0};
    const char *f = NULL;
    qg_status rc = parse(json, &s, &f, &err);
    cr_assert_eq(rc, QG_EINVAL, "accepted: %s", json);
    cr_assert_str_eq(err.msg, msg, "for %s", json);
    cr_assert(f != NULL);
    cr_assert_str_eq(f, field, "for %s", json);
}

static void accept(const char *json, qg_signal *s)
{
    qg_error err = {0};
    const char *f = NULL;
    qg_status rc = parse(json, s, &f, &err);
    cr_assert_eq(rc, QG_OK, "rejected %s: %s", json, err.msg);
}

Test(signal, parses_full_alert)
{
    qg_signal s;
    accept("{" GOOD_HEAD ",\"sl\":89.5,\"tp\":120,\"multi_tf\":true,"
           "\"confluences\":[\"fvg\",\"ob\",\"liquidity\"],\"id\":\"tv-1\"}",
           &s);
    cr_assert_str_eq(s.symbol, "EURUSD");
    cr_assert_str_eq(s.timeframe, "15m");
    cr_assert_str_eq(s.signal_type, "BoS");
    cr_assert_eq(s.confidence, 85);
    cr_assert_eq(s.ts_ms, 1709278200000LL);
    cr_assert_eq(s.open, 100);
    cr_assert_eq(s.high, 110);
    cr_assert_eq(s.low, 90);
    cr_assert_eq(s.close, 105);
    cr_assert(s.has_sl && s.sl == 89.5);
    cr_assert(s.has_tp && s.tp == 120);
    cr_assert(s.multi_tf);
    cr_assert_eq(s.nconfluences, 3);
    cr_assert_str_eq(s.confluences[2], "liquidity");
    cr_assert_str_eq(s.client_id, "tv-1");
    cr_assert_str_eq(s.id, "");
    cr_assert_eq(s.source, QG_SIGNAL_WEBHOOK);
}

Test(signal, optional_fields_absent_or_null)
{
    qg_signal s;
    accept("{" GOOD_HEAD ",\"sl\":null,\"tp\":null,\"id\":null,\"confluences\":null}", &s);
    cr_assert(!s.has_sl && !s.has_tp && !s.multi_tf);
    cr_assert_eq(s.nconfluences, 0);
    cr_assert_str_eq(s.client_id, "");
}

Test(signal, timestamp_forms)
{
    qg_signal s;
    accept("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":0,"
           "\"timestamp\":1709278200," GOOD_PD "}",
           &s);
    cr_assert_eq(s.ts_ms, 1709278200000LL);
    accept("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":100,"
           "\"timestamp\":1709278200123," GOOD_PD "}",
           &s);
    cr_assert_eq(s.ts_ms, 1709278200123LL);
    accept("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":\"1709278200\"," GOOD_PD "}",
           &s);
    cr_assert_eq(s.ts_ms, 1709278200000LL);
    accept("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":\"1709278200123\"," GOOD_PD "}",
           &s);
    cr_assert_eq(s.ts_ms, 1709278200123LL);
    accept("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":\"2024-03-01T08:30:00+01:00\"," GOOD_PD "}",
           &s);
    cr_assert_eq(s.ts_ms, 1709278200000LL);
    accept("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":\"2024-03-01T02:30:00.250-05:00\"," GOOD_PD "}",
           &s);
    cr_assert_eq(s.ts_ms, 1709278200250LL);
}

Test(signal, missing_fields)
{
    reject("{}", "symbol", "symbol: required");
    reject("{\"symbol\":\"X\"}", "timeframe", "timeframe: required");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"timestamp\":1," GOOD_PD
           "}",
           "confidence", "confidence: required");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":1}",
           "price_data", "price_data: required");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":1,\"price_data\":{\"open\":1,\"high\":1,\"low\":1}}",
           "price_data.close", "price_data.close: required");
}

Test(signal, null_required_field)
{
    reject("{\"symbol\":null}", "symbol", "symbol: expected a string, got null");
}

Test(signal, wrong_types)
{
    reject("{\"symbol\":5," GOOD_PD "}", "symbol", "symbol: expected a string, got a number");
    reject("{" GOOD_HEAD ",\"confidence\":\"85\"}", "confidence",
           "confidence: given more than once");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":\"85\","
           "\"timestamp\":1," GOOD_PD "}",
           "confidence", "confidence: expected a number, got a string");
    reject("{" GOOD_HEAD ",\"multi_tf\":\"yes\"}", "multi_tf",
           "multi_tf: expected a boolean, got a string");
    reject("{" GOOD_HEAD ",\"confluences\":\"fvg\"}", "confluences",
           "confluences: expected an array of strings, got a string");
    reject("{" GOOD_HEAD ",\"confluences\":[\"fvg\",3]}", "confluences[1]",
           "confluences[1]: expected a string, got a number");
    reject("{" GOOD_HEAD ",\"sl\":\"90\"}", "sl", "sl: expected a number, got a string");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":1,\"price_data\":[1,2,3,4]}",
           "price_data", "price_data: expected an object, got an array");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":true," GOOD_PD "}",
           "timestamp", "timestamp: expected an ISO-8601 string or epoch number, got a boolean");
    reject("[1]", "body", "body: expected a JSON object, got an array");
}

Test(signal, confidence_range)
{
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":140,"
           "\"timestamp\":1," GOOD_PD "}",
           "confidence", "confidence: 140 is out of range 0-100");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":-0.5,"
           "\"timestamp\":1," GOOD_PD "}",
           "confidence", "confidence: -0.5 is out of range 0-100");
}

Test(signal, unknown_fields)
{
    reject("{" GOOD_HEAD ",\"leverage\":10}", "leverage",
           "leverage: unknown field (allowed: symbol, timeframe, signal_type, confidence, "
           "timestamp, price_data, sl, tp, multi_tf, confluences, id)");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":1,\"price_data\":{\"open\":1,\"high\":1,\"low\":1,\"close\":1,"
           "\"volume\":5}}",
           "price_data.volume",
           "price_data.volume: unknown field (allowed: open, high, low, close)");
}

Test(signal, bad_timestamps)
{
    const char *pre =
        "{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
        "\"timestamp\":";
    char buf[512];
    snprintf(buf, sizeof buf, "%s\"yesterday\"," GOOD_PD "}", pre);
    reject(buf, "timestamp",
           "timestamp: \"yesterday\" is not an ISO-8601 time: expected a date YYYY-MM-DD (or use "
           "epoch seconds or milliseconds)");
    snprintf(buf, sizeof buf, "%s\"2024-02-30T07:00:00Z\"," GOOD_PD "}", pre);
    reject(buf, "timestamp",
           "timestamp: \"2024-02-30T07:00:00Z\" is not an ISO-8601 time: day out of range (or "
           "use epoch seconds or milliseconds)");
    snprintf(buf, sizeof buf, "%s\"2024-03-01T07:00:00\"," GOOD_PD "}", pre);
    reject(buf, "timestamp",
           "timestamp: \"2024-03-01T07:00:00\" has no time zone (end it with Z or an offset like "
           "+01:00)");
    snprintf(buf, sizeof buf, "%s-5," GOOD_PD "}", pre);
    reject(buf, "timestamp", "timestamp: -5 is not epoch seconds or milliseconds");
    snprintf(buf, sizeof buf, "%s\"2024-03-03T12:00:01Z\"," GOOD_PD "}", pre);
    reject(buf, "timestamp", "timestamp: 2024-03-03T12:00:01Z is more than 1 day in the future");
    snprintf(buf, sizeof buf, "%s\"\"," GOOD_PD "}", pre);
    reject(buf, "timestamp", "timestamp: must not be empty");
}

Test(signal, prices)
{
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":1,\"price_data\":{\"open\":100,\"high\":95,\"low\":99,\"close\":97}}",
           "price_data.high",
           "price_data.high: 95 is below price_data.low 99 (high must be >= open, close and "
           "low)");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":1,\"price_data\":{\"open\":120,\"high\":110,\"low\":90,\"close\":97}}",
           "price_data.open", "price_data.open: 120 is outside low-high 90-110");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":1,\"price_data\":{\"open\":100,\"high\":110,\"low\":90,\"close\":89.5}}",
           "price_data.close", "price_data.close: 89.5 is outside low-high 90-110");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"t\",\"confidence\":1,"
           "\"timestamp\":1,\"price_data\":{\"open\":0,\"high\":110,\"low\":90,\"close\":100}}",
           "price_data.open", "price_data.open: 0 must be a price above 0");
    reject("{" GOOD_HEAD ",\"tp\":-3}", "tp", "tp: -3 must be a price above 0");
}

Test(signal, strings)
{
    reject("{\"symbol\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\"}", "symbol",
           "symbol: \"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\" is 33 characters, at most 32");
    reject("{\"symbol\":\"EUR USD\"}", "symbol",
           "symbol: \"EUR USD\" has a character other than letters, digits and . _ - / : !");
    reject("{\"symbol\":\"\"}", "symbol", "symbol: must not be empty");
    reject("{\"symbol\":\"X\",\"timeframe\":\"15 min\"}", "timeframe",
           "timeframe: \"15 min\" has a character other than letters and digits");
    reject("{\"symbol\":\"X\",\"timeframe\":\"123456789\"}", "timeframe",
           "timeframe: \"123456789\" is 9 characters, at most 8");
    reject("{\"symbol\":\"X\",\"timeframe\":\"1\",\"signal_type\":\"bos!\"}", "signal_type",
           "signal_type: \"bos!\" has a character other than letters, digits and . _ -");
    reject("{" GOOD_HEAD ",\"id\":\"a\\u0001b\"}", "id",
           "id: \"a?b\" has a character other than printable ASCII");
}

Test(signal, confluences)
{
    reject("{" GOOD_HEAD ",\"confluences\":[\"fvg\",\"ob\",\"FVG\"]}", "confluences[2]",
           "confluences[2]: \"FVG\" duplicates confluences[0]");
    reject("{" GOOD_HEAD ",\"confluences\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\","
           "\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}",
           "confluences", "confluences: 17 given, at most 16");
    reject("{" GOOD_HEAD ",\"confluences\":[\"\"]}", "confluences[0]",
           "confluences[0]: must not be empty");
}

Test(signal, duplicate_key)
{
    reject("{" GOOD_HEAD ",\"symbol\":\"GBPUSD\"}", "symbol", "symbol: given more than once");
}

Test(signal, syntax_errors_name_line_and_column)
{
    reject("{\n  \"symbol\": \"X\",\n  \"timeframe\" 1\n}", "body",
           "body: invalid JSON at line 3, column 15");
    reject("{\"symbol\":\"X\"} x", "body", "body: invalid JSON at line 1, column 16");
    reject("   ", "body", "body: expected a JSON object, got nothing");
    qg_signal s;
    qg_error err = {0};
    const char *f = NULL;
    cr_assert_eq(qg_signal_parse("{\"a\"\0:1}", 8, NOW, &s, &f, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "body: invalid JSON at line 1, column 5");
}

Test(signal, parse_does_not_read_past_len)
{
    /* The body is not NUL-terminated where len says it ends. */
    const char *txt = "{" GOOD_HEAD "}garbage";
    qg_signal s;
    qg_error err = {0};
    cr_assert_eq(qg_signal_parse(txt, strlen(txt) - 7, NOW, &s, NULL, &err), QG_OK, "%s", err.msg);
}

Test(signal, canonical_round_trip)
{
    qg_signal a, b;
    accept("{\"id\":\"c-\\\"1\\\\\",\"confluences\":[\"fvg\",\"o\\\"b\"],\"multi_tf\":true,"
           "\"tp\":1.1,\"sl\":0.1,\"price_data\":{\"close\":105.25,\"low\":0.30000000000000004,"
           "\"high\":110,\"open\":100},\"timestamp\":1709278200123,\"confidence\":72.5,"
           "\"signal_type\":\"CHoCH\",\"timeframe\":\"4h\",\"symbol\":\"btc/usdt\"}",
           &a);
    qg_buf out;
    qg_buf_init(&out, 1 << 16);
    cr_assert_eq(qg_signal_to_json(&a, &out), QG_OK);
    cr_assert_str_eq(out.data,
                     "{\"symbol\":\"BTC/USDT\",\"timeframe\":\"4h\",\"signal_type\":\"CHoCH\","
                     "\"confidence\":72.5,\"timestamp\":\"2024-03-01T07:30:00.123Z\","
                     "\"price_data\":{\"open\":100,\"high\":110,\"low\":0.30000000000000004,"
                     "\"close\":105.25},\"sl\":0.1,\"tp\":1.1,\"multi_tf\":true,"
                     "\"confluences\":[\"fvg\",\"o\\\"b\"],\"id\":\"c-\\\"1\\\\\"}");
    accept(out.data, &b);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "round trip changed the signal");
    qg_buf again;
    qg_buf_init(&again, 1 << 16);
    qg_signal_to_json(&b, &again);
    cr_assert_str_eq(out.data, again.data);
    cJSON *j = qg_signal_json(&a);
    cr_assert(j != NULL);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "symbol")->valuestring, "BTC/USDT");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "price_data"), "low")->valuedouble,
                 0.30000000000000004);
    cJSON_Delete(j);
    qg_buf_free(&out);
    qg_buf_free(&again);
}

Test(signal, fingerprint)
{
    qg_signal a, b, d;
    accept("{" GOOD_HEAD ",\"confluences\":[\"fvg\",\"ob\"],\"id\":\"one\"}", &a);
    accept("{\"confluences\":[\"fvg\",\"ob\"],\"price_data\":{\"low\":90,\"close\":105,\"open\":"
           "100,\"high\":110},\"timestamp\":\"2024-03-01T08:30:00+01:00\",\"confidence\":85.0,"
           "\"signal_type\":\"BoS\",\"timeframe\":\"15m\",\"symbol\":\"EURUSD\",\"id\":\"two\"}",
           &b);
    char fa[QG_SIGNAL_FINGERPRINT_LEN + 1], fb[sizeof fa], fd[sizeof fa];
    qg_signal_fingerprint(&a, fa);
    qg_signal_fingerprint(&b, fb);
    cr_assert_eq(strlen(fa), 64);
    cr_assert_str_eq(fa, fb, "key order, zone and client id must not change it");
    d = a;
    d.confidence = 86;
    qg_signal_fingerprint(&d, fd);
    cr_assert_str_neq(fa, fd);
    d = a;
    d.close = 105.5;
    qg_signal_fingerprint(&d, fd);
    cr_assert_str_neq(fa, fd);
    d = a;
    strcpy(d.client_id, "");
    qg_signal_fingerprint(&d, fd);
    cr_assert_str_eq(fa, fd);
}

Test(signal, one_rendering_gives_the_payload_and_the_fingerprint)
{
    qg_signal with_id, without;
    accept("{" GOOD_HEAD ",\"confluences\":[\"fvg\",\"o\\\"b\"],\"id\":\"a\\\"1\"}", &with_id);
    without = with_id;
    strcpy(without.client_id, "");
    for (int i = 0; i < 2; i++) {
        const qg_signal *s = i ? &without : &with_id;
        char json[QG_SIGNAL_JSON_MAX], fp[QG_SIGNAL_FINGERPRINT_LEN + 1],
            fp_ref[QG_SIGNAL_FINGERPRINT_LEN + 1];
        size_t n = qg_signal_canonical(s, json, fp);
        qg_buf ref;
        qg_buf_init(&ref, 1 << 16);
        cr_assert_eq(qg_signal_to_json(s, &ref), QG_OK);
        cr_assert_eq(n, ref.len);
        cr_assert_str_eq(json, ref.data);
        qg_signal_fingerprint(s, fp_ref);
        cr_assert_str_eq(fp, fp_ref);
        qg_buf_free(&ref);
    }
}

Test(signal, structure_break_and_source_names)
{
    qg_signal s = {0};
    const char *yes[] = {"BoS", "bos", "CHoCH", "choch_bear", "bos_bull", "BOS-up"};
    const char *no[] = {"FVG", "OB", "boss", "chochx", "liquidity_sweep", ""};
    for (size_t i = 0; i < 6; i++) {
        strcpy(s.signal_type, yes[i]);
        cr_assert(qg_signal_is_structure_break(&s), "%s", yes[i]);
        strcpy(s.signal_type, no[i]);
        cr_assert(!qg_signal_is_structure_break(&s), "%s", no[i]);
    }
    cr_assert_str_eq(qg_signal_source_name(QG_SIGNAL_WEBHOOK), "webhook");
    cr_assert_str_eq(qg_signal_source_name(QG_SIGNAL_DETECTOR), "detector");
    cr_assert_str_eq(qg_signal_source_name(QG_SIGNAL_API), "api");
}

Test(signal, canonical_numbers_read_back_exactly)
{
    const double vals[] = {
        1,          0.5,    1.0851, 100000.25,          0.1,    0.30000000000000004,   1e-7, 1e20,
        12345678.9, 2.5e-5, 1e15,   9007199254740993.0, 5e-324, 1.7976931348623157e308};
    uint64_t x = 7;
    for (int i = 0; i < 2000; i++) {
        double v;
        if (i < (int)(sizeof vals / sizeof *vals)) {
            v = vals[i];
        } else {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            v = (double)(x >> 11) / (double)(1ULL << (x % 40)) + 1e-9;
        }
        qg_signal s;
        memset(&s, 0, sizeof s);
        strcpy(s.symbol, "X");
        strcpy(s.timeframe, "1");
        strcpy(s.signal_type, "t");
        s.open = s.high = s.low = s.close = v;
        qg_buf b;
        qg_buf_init(&b, 1 << 16);
        cr_assert_eq(qg_signal_to_json(&s, &b), QG_OK);
        qg_signal back;
        qg_error err = {0};
        cr_assert_eq(qg_signal_parse(b.data, b.len, NOW, &back, NULL, &err), QG_OK, "%s: %s",
                     b.data, err.msg);
        cr_assert_eq(back.open, v, "%.17g printed as %s", v, b.data);
        qg_buf_free(&b);
    }
    qg_buf b;
    qg_buf_init(&b, 1 << 16);
    qg_signal s;
    memset(&s, 0, sizeof s);
    s.open = s.high = s.low = s.close = 1.0851;
    s.confidence = 0.5;
    qg_signal_to_json(&s, &b);
    cr_assert(strstr(b.data, "\"confidence\":0.5,"), "%s", b.data);
    cr_assert(strstr(b.data, "\"open\":1.0851,"), "%s", b.data);
    qg_buf_free(&b);
}
