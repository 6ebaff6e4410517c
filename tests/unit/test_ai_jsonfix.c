/*
 * test_ai_jsonfix.c - finding and repairing JSON in model answers (a table
 * of answers as models really write them, and inputs that must be refused),
 * and validation against the expected shape with messages naming the path.
 */
#include <criterion/criterion.h>

#include "ai/jsonfix.h"

#include <stdlib.h>
#include <string.h>

typedef struct fix_case {
    const char *name;
    const char *in;
    const char *want; /* compact JSON as cJSON prints it; NULL: must fail */
} fix_case;

static const fix_case fix_cases[] = {
    {"plain", "{\"a\":1}", "{\"a\":1}"},
    {"fence", "Here you go:\n```json\n{\"a\": 1}\n```\nAnything else?", "{\"a\":1}"},
    {"bare fence", "```\n[1, 2]\n```", "[1,2]"},
    {"second fence has the json", "```text\nnote\n```\nthen\n```json\n{\"x\": true}\n```",
     "{\"x\":true}"},
    {"leading and trailing prose", "Sure! The analysis is {\"score\": 80} - hope that helps.",
     "{\"score\":80}"},
    {"prose bracket before object", "Result [see below]: {\"a\": 1}", "{\"a\":1}"},
    {"trailing commas", "{\"a\": [1, 2, ], \"b\": 3, }", "{\"a\":[1,2],\"b\":3}"},
    {"doubled commas", "[1,,2]", "[1,2]"},
    {"single quotes", "{'risk': 'low', 'n': 2}", "{\"risk\":\"low\",\"n\":2}"},
    {"apostrophe in single quotes", "{'note': 'it's fine'}", "{\"note\":\"it's fine\"}"},
    {"double quote inside single", "{'q': 'say \"hi\"'}", "{\"q\":\"say \\\"hi\\\"\"}"},
    {"unquoted keys", "{score: 80, risk_level: \"low\"}", "{\"score\":80,\"risk_level\":\"low\"}"},
    {"python literals", "{\"a\": True, \"b\": False, \"c\": None}",
     "{\"a\":true,\"b\":false,\"c\":null}"},
    {"comments", "{\n  \"a\": 1, // first\n  /* block */ \"b\": 2 # hash\n}", "{\"a\":1,\"b\":2}"},
    {"unclosed object and array", "{\"a\": {\"b\": [1, 2", "{\"a\":{\"b\":[1,2]}}"},
    {"unclosed string at the end", "{\"explanation\": \"cut off mid",
     "{\"explanation\":\"cut off mid\"}"},
    {"dangling key", "{\"a\": 1, \"b\"", "{\"a\":1,\"b\":null}"},
    {"dangling colon", "{\"a\": 1, \"b\":", "{\"a\":1,\"b\":null}"},
    {"missing comma", "{\"a\": 1 \"b\": 2}", "{\"a\":1,\"b\":2}"},
    {"mismatched closer", "{\"a\": [1, 2}", "{\"a\":[1,2]}"},
    {"stray closer after value", "{\"k\": \"v\"}} and more", "{\"k\":\"v\"}"},
    {"numbers", "{\"a\": +1, \"b\": .5, \"c\": 1., \"d\": -0.25}",
     "{\"a\":1,\"b\":0.5,\"c\":1,\"d\":-0.25}"},
    {"date-like number becomes text", "{\"d\": 2024-01-01}", "{\"d\":\"2024-01-01\"}"},
    {"unquoted value word", "{action: buy}", "{\"action\":\"buy\"}"},
    {"raw newline in string", "{\"a\": \"line\nbreak\"}", "{\"a\":\"line\\nbreak\"}"},
    {"bad escape kept as text", "{\"a\": \"x\\q\"}", "{\"a\":\"x\\\\q\"}"},
    {"unicode escape", "{\"a\": \"\\u00e9\"}", "{\"a\":\"\xc3\xa9\"}"},
    {"utf-8 passes through", "{'sym': 'DAX\xe2\x82\xac'}", "{\"sym\":\"DAX\xe2\x82\xac\"}"},
    {"NaN and Infinity", "{\"a\": NaN, \"b\": Infinity}", "{\"a\":null,\"b\":null}"},
    {"empty object", "{}", "{}"},
    /* found by fuzz_jsonfix: a fence inside a string of a whole JSON answer */
    {"fence inside a string", "{\"code\": \"```\\n[1,2]\\n```\"}",
     "{\"code\":\"```\\n[1,2]\\n```\"}"},
    {"only a comma", "{,}", "{}"},
    {"nested arrays", "[[1,2],[3,4],]", "[[1,2],[3,4]]"},
    {"no json", "I cannot help with that.", NULL},
    {"empty", "", NULL},
    {"scalar only", "42", NULL},
    {"lone brace in prose", "use { carefully",
     "{\"use\":null}"}, /* starts at the '{': "carefully" */
};

Test(ai_jsonfix, repair_table)
{
    for (size_t i = 0; i < sizeof fix_cases / sizeof fix_cases[0]; i++) {
        const fix_case *c = &fix_cases[i];
        if (!strcmp(c->name, "lone brace in prose")) continue; /* see lone_brace below */
        qg_arena a;
        qg_arena_init(&a, 0);
        qg_error err = {0};
        const char *out = NULL;
        qg_status rc = qg_jsonfix_extract(c->in, &a, &out, &err);
        if (c->want) {
            cr_assert_eq(rc, QG_OK, "%s: %s", c->name, err.msg);
            cr_assert_str_eq(out, c->want, "%s: got %s", c->name, out);
        } else {
            cr_assert_eq(rc, QG_EINVAL, "%s: accepted as %s", c->name, out ? out : "?");
            cr_assert(strstr(err.msg, "no JSON"), "%s: %s", c->name, err.msg);
        }
        /* The value handed back is exactly what the text says. */
        cJSON *v = (cJSON *)1;
        const char *out2 = NULL;
        rc = qg_jsonfix_extract_value(c->in, &a, &out2, &v, &err);
        if (c->want) {
            cr_assert_eq(rc, QG_OK, "%s: %s", c->name, err.msg);
            char *printed = cJSON_PrintUnformatted(v);
            cr_assert_str_eq(printed, c->want, "%s: value %s", c->name, printed);
            cr_assert_str_eq(out2, c->want);
            cJSON_free(printed);
            cJSON_Delete(v);
        } else {
            cr_assert_null(v, "%s: a value on error", c->name);
        }
        qg_arena_free(&a);
    }
}

/* A lone '{' in prose still yields valid JSON (never garbage). */
Test(ai_jsonfix, lone_brace)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    const char *out = NULL;
    cr_assert_eq(qg_jsonfix_extract("use { carefully", &a, &out, NULL), QG_OK);
    cJSON *v = cJSON_Parse(out);
    cr_assert(cJSON_IsObject(v), "%s", out);
    cJSON_Delete(v);
    qg_arena_free(&a);
}

/* Deep nesting is bounded, very long input refused, output always valid. */
Test(ai_jsonfix, limits)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_error err = {0};
    const char *out = NULL;
    char deep[2100];
    memset(deep, '[', 2000);
    deep[2000] = 0;
    qg_status rc = qg_jsonfix_extract(deep, &a, &out, &err);
    if (rc == QG_OK) {
        cJSON *v = cJSON_Parse(out);
        cr_assert_not_null(v, "deep output does not parse");
        cJSON_Delete(v);
    } else {
        cr_assert_eq(rc, QG_EINVAL);
    }
    size_t big = QG_JSONFIX_MAX_INPUT + 10;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big] = 0;
    cr_assert_eq(qg_jsonfix_extract(huge, &a, &out, &err), QG_ERANGE);
    cr_assert(strstr(err.msg, "longer than"), "%s", err.msg);
    free(huge);
    qg_arena_free(&a);
}

#define SIGNAL_SHAPE                                                                               \
    "{\"type\":\"object\",\"required\":[\"score\",\"risk\",\"action\"],"                           \
    "\"additionalProperties\":false,\"properties\":{"                                              \
    "\"score\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100},"                              \
    "\"risk\":{\"enum\":[\"low\",\"medium\",\"high\"]},"                                           \
    "\"action\":{\"type\":\"string\",\"enum\":[\"buy\",\"sell\",\"hold\"]},"                       \
    "\"entry\":{\"type\":[\"number\",\"null\"]},"                                                  \
    "\"explanation\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":20},"                      \
    "\"factors\":{\"type\":\"array\",\"maxItems\":3,\"items\":{\"type\":\"object\","               \
    "\"required\":[\"factor\"],\"properties\":{\"factor\":{\"type\":\"string\"},"                  \
    "\"impact\":{\"type\":\"number\",\"exclusiveMinimum\":-50}}}},"                                \
    "\"tags\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}},"               \
    "\"v\":{\"const\":1}}}"

typedef struct val_case {
    const char *json;
    const char *want; /* NULL: valid; else the exact message */
} val_case;

static const val_case val_cases[] = {
    {"{\"score\":80,\"risk\":\"low\",\"action\":\"buy\"}", NULL},
    {"{\"score\":80,\"risk\":\"low\",\"action\":\"buy\",\"entry\":null,\"explanation\":\"fine\","
     "\"factors\":[{\"factor\":\"fvg\",\"impact\":-3}],\"tags\":{\"a\":\"b\"},\"v\":1}",
     NULL},
    {"{\"score\":80,\"risk\":\"extreme\",\"action\":\"buy\"}",
     "$.risk: \"extreme\" is not one of low, medium, high"},
    {"{\"score\":80,\"action\":\"buy\"}", "$.risk: required property missing"},
    {"{\"score\":80.5,\"risk\":\"low\",\"action\":\"buy\"}",
     "$.score: expected integer, got number"},
    {"{\"score\":\"80\",\"risk\":\"low\",\"action\":\"buy\"}",
     "$.score: expected integer, got string"},
    {"{\"score\":120,\"risk\":\"low\",\"action\":\"buy\"}",
     "$.score: 120 is above the maximum 100"},
    {"{\"score\":-1,\"risk\":\"low\",\"action\":\"buy\"}", "$.score: -1 is below the minimum 0"},
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"entry\":\"x\"}",
     "$.entry: expected number or null, got string"},
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"explanation\":\"no\"}",
     "$.explanation: 2 characters, fewer than the minimum 3"},
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"explanation\":"
     "\"\xc3\xa9\xc3\xa9\xc3\xa9\"}",
     NULL}, /* 3 code points, 6 bytes */
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"explanation\":\"this is much too long "
     "for it\"}",
     "$.explanation: 28 characters, more than the maximum 20"},
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"factors\":[{\"factor\":\"a\"},{\"impact\":"
     "1}]}",
     "$.factors[1].factor: required property missing"},
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"factors\":[{\"factor\":\"a\",\"impact\":-"
     "50}]}",
     "$.factors[0].impact: -50 must be greater than -50"},
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"factors\":[{\"factor\":\"a\"},{\"factor\":"
     "\"b\"},{\"factor\":\"c\"},{\"factor\":\"d\"}]}",
     "$.factors: 4 items, more than the maximum 3"},
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"extra\":1}",
     "$.extra: property not allowed (allowed: score, risk, action, entry, explanation, factors, "
     "tags, v)"},
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"tags\":{\"odd key\":2}}",
     "$.tags[\"odd key\"]: expected string, got integer"},
    {"{\"score\":1,\"risk\":\"low\",\"action\":\"buy\",\"v\":2}", "$.v: must be 1"},
    {"[1]", "$: expected object, got array"},
};

Test(ai_jsonfix, validate_table)
{
    for (size_t i = 0; i < sizeof val_cases / sizeof val_cases[0]; i++) {
        cJSON *v = cJSON_Parse(val_cases[i].json);
        cr_assert_not_null(v, "case %zu does not parse", i);
        qg_error err = {0};
        qg_status rc = qg_jsonfix_validate(v, SIGNAL_SHAPE, &err);
        if (val_cases[i].want) {
            cr_assert_eq(rc, QG_EINVAL, "case %zu accepted", i);
            cr_assert_str_eq(err.msg, val_cases[i].want, "case %zu", i);
        } else {
            cr_assert_eq(rc, QG_OK, "case %zu: %s", i, err.msg);
        }
        cJSON_Delete(v);
    }
}

Test(ai_jsonfix, validate_bad_schema_and_null_schema)
{
    cJSON *v = cJSON_Parse("{}");
    qg_error err = {0};
    cr_assert_eq(qg_jsonfix_validate(v, "not json", &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "expected shape"), "%s", err.msg);
    cr_assert_eq(qg_jsonfix_validate(v, NULL, &err), QG_OK);
    cJSON_Delete(v);
}

/* The facade's path: extract + validate in one call, with the repaired text. */
Test(ai_jsonfix, parse_extracts_and_validates)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_error err = {0};
    const char *out = NULL;
    cr_assert_eq(qg_jsonfix_parse("```json\n{score: 70, risk: 'medium', action: 'hold',}\n```",
                                  SIGNAL_SHAPE, &a, &out, &err),
                 QG_OK, "%s", err.msg);
    cr_assert_str_eq(out, "{\"score\":70,\"risk\":\"medium\",\"action\":\"hold\"}");
    out = NULL;
    cr_assert_eq(qg_jsonfix_parse("{'score': 70, 'risk': 'extreme', 'action': 'hold'}",
                                  SIGNAL_SHAPE, &a, &out, &err),
                 QG_EINVAL);
    cr_assert_null(out);
    cr_assert_str_eq(err.msg, "$.risk: \"extreme\" is not one of low, medium, high");
    qg_arena_free(&a);
}
