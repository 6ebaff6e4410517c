/*
 * jsonfix.h - structured output from language models: find the JSON in an
 * answer, repair what models typically get wrong, and check it against the
 * expected shape.
 *
 * Models wrap JSON in ```json fences and prose, leave trailing commas, use
 * single quotes, unquoted keys, Python's True/False/None, // comments, or
 * stop mid-object when they run out of tokens. qg_jsonfix_extract undoes
 * all of that where the intent is unambiguous and always returns text that
 * parses as JSON (or an error). qg_jsonfix_validate checks a value against
 * a JSON Schema subset and names the first offending path, so the facade
 * can send the message back to the model as a corrective turn.
 *
 * The expected shape (qg_ai_call.expect_shape) is a JSON Schema text using:
 * type (a name or an array of names: object, array, string, number,
 * integer, boolean, null), properties, required, additionalProperties
 * (false or a schema), enum, const, minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum, minLength, maxLength (code points), items, minItems,
 * maxItems. Other keywords are ignored.
 */
#ifndef QG_AI_JSONFIX_H
#define QG_AI_JSONFIX_H

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>

/* Longest answer text looked at; longer input is QG_ERANGE. */
#define QG_JSONFIX_MAX_INPUT ((size_t)4 << 20)

/* Finds the first JSON object or array in text (inside a ```json or ```
 * fence when there is one, else after any leading prose), repairs it and
 * writes compact JSON text to *json_out (arena a; valid until the arena is
 * freed). Trailing prose after the value is ignored. QG_EINVAL with a
 * message when there is no object or array or it cannot be repaired;
 * QG_ERANGE when text is longer than QG_JSONFIX_MAX_INPUT. */
qg_status qg_jsonfix_extract(const char *text, qg_arena *a, const char **json_out, qg_error *err);
/* The same, also handing back the parsed value (*value_out: the caller's,
 * cJSON_Delete; NULL on error) so a caller that goes on to read it does
 * not parse *json_out again. */
qg_status qg_jsonfix_extract_value(const char *text, qg_arena *a, const char **json_out,
                                   cJSON **value_out, qg_error *err);

/* Checks value against schema_json (see above). QG_OK when it conforms;
 * QG_EINVAL with the first violation as "$.path: reason" (e.g.
 * `$.risk: "extreme" is not one of low, medium, high`); QG_EINVAL
 * "expected shape: ..." when schema_json itself is not a JSON object. */
qg_status qg_jsonfix_validate(const cJSON *value, const char *schema_json, qg_error *err);

/* extract, then parse and (when schema_json is not NULL) validate: the
 * facade's one-call path. *json_out (arena) is set only on QG_OK. */
qg_status qg_jsonfix_parse(const char *text, const char *schema_json, qg_arena *a,
                           const char **json_out, qg_error *err);
/* The same, also handing back the validated value when value_out is not
 * NULL (the caller's, cJSON_Delete; set only on QG_OK). */
qg_status qg_jsonfix_parse_value(const char *text, const char *schema_json, qg_arena *a,
                                 const char **json_out, cJSON **value_out, qg_error *err);

#endif
