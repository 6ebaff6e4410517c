/*
 * fuzz_jsonfix.c - libFuzzer target for what reads model output: JSON
 * extraction and repair, shape validation, and the builtin reasoner's
 * parsers (signal analysis, intent classification).
 *
 * The first byte picks the mode; the rest is the text:
 *   0  qg_jsonfix_extract: success must yield text that cJSON parses as an
 *      object or array and that extracts to itself again (a fixed point);
 *      failure must leave a message. Then the value is validated against a
 *      fixed shape: OK, or a message starting with "$".
 *   1  the text is a shape and a fixed value is validated against it.
 *   2  the repaired text is analysed as a signal: OK with a JSON decision
 *      whose score is 0-100, or a message.
 *   3  intent classification of the text: a known intent, a confidence in
 *      (0, 1].
 */
#include "ai/builtin.h"
#include "ai/jsonfix.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE                                                                                      \
    "{\"type\":\"object\",\"required\":[\"score\"],\"additionalProperties\":false,"                \
    "\"properties\":{\"score\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100},"              \
    "\"risk\":{\"enum\":[\"low\",\"medium\",\"high\"]},\"tags\":{\"type\":\"array\","              \
    "\"maxItems\":3,\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":8}},"             \
    "\"sub\":{\"type\":[\"object\",\"null\"],\"additionalProperties\":{\"type\":\"number\"}}}}"

static void require_message(qg_status rc, const qg_error *err)
{
    if (rc && !err->msg[0]) abort();
}

static void fuzz_extract(const char *text, qg_arena *a)
{
    qg_error err = {0};
    const char *out = NULL;
    qg_status rc = qg_jsonfix_extract(text, a, &out, &err);
    require_message(rc, &err);
    if (rc) return;
    cJSON *v = cJSON_Parse(out);
    if (!v || !(cJSON_IsObject(v) || cJSON_IsArray(v))) abort();
    const char *again = NULL;
    if (qg_jsonfix_extract(out, a, &again, &err) || strcmp(out, again)) abort();
    qg_error verr = {0};
    rc = qg_jsonfix_validate(v, SHAPE, &verr);
    if (rc && verr.msg[0] != '$') abort();
    cJSON_Delete(v);
}

static void fuzz_shape(const char *text)
{
    cJSON *v =
        cJSON_Parse("{\"score\":50,\"risk\":\"low\",\"tags\":[\"a\",\"bb\"],\"sub\":{\"x\":1},"
                    "\"n\":null,\"f\":1.5,\"s\":\"\xc3\xa9t\xc3\xa9\"}");
    qg_error err = {0};
    qg_status rc = qg_jsonfix_validate(v, text, &err);
    require_message(rc, &err);
    cJSON_Delete(v);
}

static void fuzz_signal(const char *text, qg_arena *a)
{
    const char *json = NULL;
    if (qg_jsonfix_extract(text, a, &json, NULL)) return;
    cJSON *s = cJSON_Parse(json);
    qg_error err = {0};
    const char *out = NULL;
    qg_status rc = qg_builtin_analyze_signal(s, a, &out, &err);
    require_message(rc, &err);
    if (!rc) {
        cJSON *d = cJSON_Parse(out);
        const cJSON *score = cJSON_GetObjectItem(d, "score");
        if (!cJSON_IsNumber(score) || score->valuedouble < 0 || score->valuedouble > 100) abort();
        cJSON_Delete(d);
    }
    cJSON_Delete(s);
}

static void fuzz_intent(const char *text)
{
    qg_builtin_intent in;
    qg_builtin_classify_intent(text, "blueprint", &in);
    if (!in.intent || in.confidence <= 0 || in.confidence > 1) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) return 0;
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0; /* text stops at an embedded NUL, as a C string does */
    qg_arena a;
    qg_arena_init(&a, 0);
    switch (data[0] % 4) {
    case 0:
        fuzz_extract(text, &a);
        break;
    case 1:
        fuzz_shape(text);
        break;
    case 2:
        fuzz_signal(text, &a);
        break;
    default:
        fuzz_intent(text);
        break;
    }
    qg_arena_free(&a);
    free(text);
    return 0;
}
