/*
 * routes.c - the route table: the one place that says which method and path
 * reach which handler, which role it needs and which rate-limit class it
 * counts against. The router, the role checks, /metrics labels and
 * /api/openapi.json are all derived from this table.
 *
 * Roles nest (client < developer < admin). QG_ROLE_NONE routes need no
 * credentials. Schemas are JSON Schema texts used only for the OpenAPI
 * document.
 */
#include "http/handlers.h"

/* clang-format off */
#define R(method, pattern, fn, role, rl, flags, tag, summary)                                      \
    {method, pattern, fn, role, rl, flags, summary, tag, NULL, NULL, NULL}
/* RS: R with the OpenAPI texts: request schema, response schema, query
 * parameters ("name:type:description|..."), each a string or NULL. Two
 * extensions in a response schema are read by the OpenAPI builder and
 * removed from the document: "x-status" (the success status when it is not
 * 200, e.g. 201, 202, 204; a schema holding only x-status means no body) and
 * "x-content-type" (when the body is not application/json). */
#define RS(method, pattern, fn, role, rl, flags, tag, summary, req, resp, query)                   \
    {method, pattern, fn, role, rl, flags, summary, tag, req, resp, query}

/* Schema texts of the meta, auth, tokens, users, vault and audit routes;
 * "#/components/schemas/..." names are defined by the OpenAPI builder
 * (h_meta.c). */
#define QG_REF(name) "{\"$ref\":\"#/components/schemas/" name "\"}"
#define QG_LIST_OF(name)                                                                           \
    "{\"type\":\"object\",\"required\":[\"items\",\"next\"],\"properties\":{\"items\":{"           \
    "\"type\":\"array\",\"items\":" QG_REF(name) "},\"next\":{\"type\":[\"string\",\"null\"]}}}"
#define QG_NO_BODY "{\"x-status\":204}"
#define QG_STATUS_OBJ(value)                                                                       \
    "{\"type\":\"object\",\"required\":[\"status\"],\"properties\":{\"status\":{\"const\":"        \
    "\"" value "\"}}}"
#define QG_EMAIL_PROP    "\"email\":{\"type\":\"string\",\"format\":\"email\",\"maxLength\":255}"
#define QG_PASSWORD_PROP "{\"type\":\"string\",\"minLength\":10,\"maxLength\":1024}"
#define QG_CREDENTIALS                                                                             \
    "{\"type\":\"object\",\"required\":[\"email\",\"password\"],\"properties\":{" QG_EMAIL_PROP    \
    ",\"password\":{\"type\":\"string\",\"maxLength\":1024}}}"
#define QG_SIGNUP                                                                                  \
    "{\"type\":\"object\",\"required\":[\"email\",\"password\"],\"properties\":{" QG_EMAIL_PROP    \
    ",\"password\":" QG_PASSWORD_PROP "}}"
#define QG_REFRESH_REQ                                                                             \
    "{\"type\":\"object\",\"required\":[\"refresh_token\"],\"properties\":{\"refresh_token\":{"    \
    "\"type\":\"string\"}}}"
#define QG_PASSWORD_CHANGE                                                                         \
    "{\"type\":\"object\",\"required\":[\"current_password\",\"new_password\"],\"properties\":{"   \
    "\"current_password\":{\"type\":\"string\"},\"new_password\":" QG_PASSWORD_PROP "}}"
#define QG_TOKEN_REQ                                                                               \
    "{\"type\":\"object\",\"required\":[\"name\",\"scope\"],\"properties\":{\"name\":{\"type\":"   \
    "\"string\",\"minLength\":1,\"maxLength\":64},\"scope\":{\"enum\":[\"read\",\"write\"]}}}"
#define QG_TOKEN_CREATED                                                                           \
    "{\"x-status\":201,\"allOf\":[" QG_REF(                                                        \
        "ApiToken") ",{\"type\":\"object\",\"required\":["                                         \
                    "\"token\"],\"properties\":{\"token\":{\"type\":\"string\",\"description\":"   \
                    "\"shown once\"}}}]}"
#define QG_ROLE_PROP "\"role\":{\"enum\":[\"client\",\"developer\",\"admin\"]}"
#define QG_USER_CREATE                                                                             \
    "{\"type\":\"object\",\"required\":[\"email\",\"password\",\"role\"],\"properties\":"          \
    "{" QG_EMAIL_PROP ",\"password\":" QG_PASSWORD_PROP "," QG_ROLE_PROP "}}"
#define QG_USER_PATCH                                                                              \
    "{\"type\":\"object\",\"minProperties\":1,\"properties\":{" QG_ROLE_PROP                       \
    ",\"approved\":{\"type\":\"boolean\"},\"disabled\":{\"type\":\"boolean\"}}}"
#define QG_SECRET_PUT                                                                              \
    "{\"type\":\"object\",\"required\":[\"value\"],\"properties\":{\"value\":{\"type\":"           \
    "\"string\",\"minLength\":1,\"maxLength\":8192,\"writeOnly\":true}}}"
#define QG_PAGE_QUERY                                                                              \
    "limit:integer:page size, 1-500 (default 50)|before:string:the previous page's next cursor"
#define QG_USERS_QUERY                                                                             \
    "status:string:'pending' for accounts awaiting approval, or 'all'|" QG_PAGE_QUERY
#define QG_AUDIT_QUERY                                                                             \
    "actor:string:actor user id or email|action:string:route ('POST /api/datasets') or "           \
    "auth.login|outcome:string:ok, denied or error|from:string:ISO-8601 time or epoch, "           \
    "inclusive|to:string:ISO-8601 time or epoch, inclusive (a date means the whole "               \
    "day)|" QG_PAGE_QUERY

/* Schema texts of the strategies, datasets and backtests routes. */
#define QG_TIME_T "{\"type\":[\"string\",\"null\"],\"format\":\"date-time\"}"
#define QG_DATASET_OBJ                                                                             \
    "{\"type\":\"object\",\"required\":[\"id\",\"name\",\"symbol\",\"timeframe\",\"rows\","        \
    "\"first\",\"last\",\"bytes\",\"skipped\",\"created_at\"],\"properties\":{\"id\":{\"type\":"   \
    "\"string\"},\"name\":{\"type\":\"string\"},\"symbol\":{\"type\":\"string\"},\"timeframe\":{"  \
    "\"type\":[\"string\",\"null\"],\"examples\":[\"1m\",\"1h\"]},\"rows\":{\"type\":\"integer\"}" \
    ","                                                                                            \
    "\"first\":" QG_TIME_T ",\"last\":" QG_TIME_T                                                  \
    ",\"bytes\":{\"type\":\"integer\"},\"skipped\":{"                                              \
    "\"type\":\"integer\"},\"skipped_examples\":{\"type\":\"array\",\"items\":{\"type\":"          \
    "\"string\"}},\"created_at\":" QG_TIME_T "}}"
#define QG_ITEMS_OF(schema)                                                                        \
    "{\"type\":\"object\",\"required\":[\"items\",\"next\"],\"properties\":{\"items\":{"           \
    "\"type\":\"array\",\"items\":" schema "},\"next\":{\"type\":[\"string\",\"null\"]}}}"
#define QG_DATASET_CREATED "{\"x-status\":201,\"allOf\":[" QG_DATASET_OBJ "]}"
#define QG_DATASET_UPLOAD                                                                          \
    "{\"type\":\"string\",\"description\":\"the bars as the raw body: text/csv (header row "       \
    "timestamp,open,high,low,close,volume) or application/json ([[ts,o,h,l,c,v],...])\"}"
#define QG_DATASET_QUERY                                                                           \
    "name:string:dataset name, 1-100 characters (required)|symbol:string:instrument symbol "       \
    "(default: the name)|timeframe:string:bar width such as 1m or 1h (default: the data's "        \
    "spacing; coarser resamples)|lenient:boolean:skip bad rows and count them"
#define QG_CANDLES                                                                                 \
    "{\"type\":\"object\",\"required\":[\"timeframe\",\"candles\",\"truncated\"],\"properties\":{" \
    "\"timeframe\":{\"type\":[\"string\",\"null\"]},\"candles\":{\"type\":\"array\",\"items\":{"   \
    "\"type\":\"array\",\"description\":\"[ts_ms, open, high, low, close, volume]\",\"items\":{"   \
    "\"type\":\"number\"},\"minItems\":6,\"maxItems\":6}},\"truncated\":{\"type\":\"boolean\"}}}"
#define QG_CANDLES_QUERY                                                                           \
    "from:string:ISO-8601 time or epoch, inclusive|to:string:ISO-8601 time or epoch, exclusive|"   \
    "timeframe:string:resample to this (a multiple of the dataset's)|limit:integer:at most this "  \
    "many candles, 1-10000 (default 1000)"
#define QG_STRATEGY_OBJ                                                                            \
    "{\"type\":\"object\",\"required\":[\"name\",\"params\"],\"properties\":{\"name\":{\"type\":"  \
    "\"string\"},\"description\":{\"type\":\"string\"},\"direction\":{\"enum\":[\"long\","         \
    "\"short\",\"both\"]},\"params\":{\"type\":\"array\",\"items\":{\"type\":\"object\","          \
    "\"properties\":{\"name\":{\"type\":\"string\"},\"default\":{\"type\":\"number\"}}}},"         \
    "\"constraints\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"spec\":{\"type\":"     \
    "\"object\",\"description\":\"the full strategy spec (docs/strategy-spec.md)\"}}}"
#define QG_BACKTEST_REQ                                                                            \
    "{\"type\":\"object\",\"required\":[\"dataset_id\",\"strategy\"],\"additionalProperties\":"    \
    "false,\"properties\":{\"dataset_id\":{\"type\":\"string\"},\"strategy\":{\"oneOf\":[{"        \
    "\"type\":\"string\",\"description\":\"a built-in name\"},{\"type\":\"object\","               \
    "\"description\":\"a strategy spec\"}]},\"params\":{\"type\":\"object\","                      \
    "\"additionalProperties\":{\"type\":\"number\"}},\"timeframe\":{\"type\":\"string\"},"         \
    "\"cash\":{\"type\":\"number\",\"minimum\":1e-6,\"maximum\":1e15,\"default\":10000},"          \
    "\"fee_bps\":{\"type\":\"number\",\"minimum\":0,\"maximum\":9999,\"default\":0},"              \
    "\"slippage_bps\":{\"type\":\"number\",\"minimum\":0,\"maximum\":9999,\"default\":0},"         \
    "\"direction\":{\"enum\":[\"long\",\"short\",\"both\"]},\"size_pct\":{\"type\":\"number\","    \
    "\"exclusiveMinimum\":0,\"maximum\":100},\"from\":{\"type\":[\"string\",\"number\"]},\"to\":{" \
    "\"type\":[\"string\",\"number\"]}}}"
#define QG_BACKTEST_QUEUED                                                                         \
    "{\"x-status\":202,\"type\":\"object\",\"required\":[\"id\",\"status\"],\"properties\":{"      \
    "\"id\":{\"type\":\"string\"},\"status\":{\"const\":\"queued\"}}}"
#define QG_BT_STATUS_ENUM "{\"enum\":[\"queued\",\"running\",\"done\",\"failed\",\"cancelled\"]}"
#define QG_BACKTEST_OBJ                                                                            \
    "{\"type\":\"object\",\"required\":[\"id\",\"status\",\"progress\",\"request\",\"error\","     \
    "\"created_at\",\"started_at\",\"finished_at\"],\"properties\":{\"id\":{\"type\":\"string\"}," \
    "\"status\":" QG_BT_STATUS_ENUM ",\"progress\":{\"type\":\"number\",\"minimum\":0,"            \
    "\"maximum\":1},\"dataset_id\":{\"type\":\"string\"},\"request\":{\"type\":\"object\"},"       \
    "\"metrics\":{\"type\":[\"object\",\"null\"]},\"trades\":{\"type\":[\"array\",\"null\"]},"     \
    "\"error\":{\"type\":[\"string\",\"null\"]},\"created_at\":" QG_TIME_T                         \
    ",\"started_at\":" QG_TIME_T ",\"finished_at\":" QG_TIME_T "}}"
#define QG_BACKTEST_EVENTS                                                                         \
    "{\"type\":\"string\",\"x-content-type\":\"text/event-stream\",\"description\":\"event: "      \
    "progress (data {\\\"progress\\\":0.42}) while it runs, then one event: done, failed or "      \
    "cancelled with the final status object\"}"


/* Schema texts of the OpenAI-compatible routes (h_openai.c): the shapes are
 * OpenAI's, abbreviated to what quantgate reads and writes. */
#define QG_OA_MODEL                                                                                \
    "{\"type\":\"object\",\"required\":[\"id\",\"object\",\"created\",\"owned_by\"],"          \
    "\"properties\":{\"id\":{\"type\":\"string\"},\"object\":{\"const\":\"model\"},"            \
    "\"created\":{\"type\":\"integer\"},\"owned_by\":{\"type\":\"string\"}}}"
#define QG_OA_MODELS                                                                               \
    "{\"type\":\"object\",\"required\":[\"object\",\"data\"],\"properties\":{\"object\":{"     \
    "\"const\":\"list\"},\"data\":{\"type\":\"array\",\"items\":" QG_OA_MODEL "}}}"
#define QG_OA_CHAT_REQ                                                                             \
    "{\"type\":\"object\",\"required\":[\"model\",\"messages\"],\"properties\":{\"model\":{"   \
    "\"type\":\"string\",\"description\":\"a named model: builtin, analyst, fast, ...\"},"      \
    "\"messages\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"object\"}},"       \
    "\"tools\":{\"type\":\"array\"},\"tool_choice\":{},\"response_format\":{\"type\":"         \
    "\"object\"},\"max_tokens\":{\"type\":\"integer\"},\"max_completion_tokens\":{\"type\":"   \
    "\"integer\"},\"temperature\":{\"type\":\"number\"},\"stream\":{\"type\":\"boolean\"},"    \
    "\"stream_options\":{\"type\":\"object\",\"properties\":{\"include_usage\":{\"type\":"     \
    "\"boolean\"}}}}}"
#define QG_OA_CHAT_RESP                                                                            \
    "{\"type\":\"object\",\"description\":\"a chat.completion object; with stream true, "       \
    "text/event-stream of chat.completion.chunk objects ending with data: [DONE]\","              \
    "\"required\":[\"id\",\"object\",\"created\",\"model\",\"choices\"],\"properties\":{\"id\"" \
    ":{\"type\":\"string\"},\"object\":{\"const\":\"chat.completion\"},\"created\":{\"type\":"  \
    "\"integer\"},\"model\":{\"type\":\"string\"},\"choices\":{\"type\":\"array\"},\"usage\":{" \
    "\"type\":\"object\"}}}"


/* Schema texts of the prompt template routes (h_prompts.c). */
#define QG_PROMPT_PARAMS                                                                           \
    "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"name\"],"                \
    "\"additionalProperties\":false,\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":"   \
    "\"^[A-Za-z_][A-Za-z0-9_]*$\"},\"required\":{\"type\":\"boolean\"},\"default\":{},"          \
    "\"trusted\":{\"type\":\"boolean\",\"description\":\"inserted as is; otherwise fenced in "   \
    "<data>\"},\"description\":{\"type\":\"string\"}}}}"
#define QG_PROMPT_STATS                                                                            \
    "{\"type\":\"object\",\"properties\":{\"calls\":{\"type\":\"integer\"},\"failures\":{"       \
    "\"type\":\"integer\"},\"avg_input_tokens\":{\"type\":\"number\"},\"avg_output_tokens\":{"   \
    "\"type\":\"number\"},\"avg_latency_ms\":{\"type\":\"number\"}}}"
#define QG_PROMPT_VERSION                                                                          \
    "{\"type\":\"object\",\"required\":[\"template_id\",\"version\",\"active\",\"params\","      \
    "\"stats\"],\"properties\":{\"template_id\":{\"type\":\"string\"},\"version\":{\"type\":"    \
    "\"integer\"},\"active\":{\"type\":\"boolean\"},\"system\":{\"type\":\"string\"},\"body\":{" \
    "\"type\":\"string\"},\"params\":" QG_PROMPT_PARAMS ",\"note\":{\"type\":\"string\"},"       \
    "\"author_id\":{\"type\":[\"string\",\"null\"]},\"created_at\":" QG_TIME_T                   \
    ",\"stats\":" QG_PROMPT_STATS "}}"
#define QG_PROMPT_TEMPLATE_PROPS                                                                   \
    "\"id\":{\"type\":\"string\"},\"kind\":{\"enum\":[\"task\",\"partial\"]},\"description\":{"  \
    "\"type\":\"string\"},\"active_version\":{\"type\":\"integer\"},\"latest_version\":{"        \
    "\"type\":\"integer\"},\"created_at\":" QG_TIME_T ",\"updated_at\":" QG_TIME_T
#define QG_PROMPT_TEMPLATE                                                                         \
    "{\"type\":\"object\",\"required\":[\"id\",\"kind\",\"active_version\",\"latest_version\"],"  \
    "\"properties\":{" QG_PROMPT_TEMPLATE_PROPS "}}"
#define QG_PROMPT_FULL                                                                             \
    "{\"type\":\"object\",\"required\":[\"id\",\"kind\",\"active_version\",\"active\","          \
    "\"versions\"],\"properties\":{" QG_PROMPT_TEMPLATE_PROPS ",\"active\":" QG_PROMPT_VERSION  \
    ",\"versions\":{\"type\":\"array\",\"description\":\"newest first, without texts\","        \
    "\"items\":" QG_PROMPT_VERSION "}}}"
#define QG_PROMPT_PUT                                                                              \
    "{\"type\":\"object\",\"required\":[\"body\"],\"properties\":{\"system\":{\"type\":"         \
    "\"string\",\"maxLength\":65536},\"body\":{\"type\":\"string\",\"minLength\":1,"            \
    "\"maxLength\":65536,\"description\":\"the user message; {{name}}, {{> partial}}, {{{{ "    \
    "for a literal {{\"},\"params\":" QG_PROMPT_PARAMS ",\"note\":{\"type\":\"string\"},"       \
    "\"description\":{\"type\":\"string\"},\"kind\":{\"enum\":[\"task\",\"partial\"]}}}"
#define QG_PROMPT_SAVED "{\"description\":\"200; 201 when the template was created\",\"allOf\":[" QG_PROMPT_FULL "]}"
#define QG_PROMPT_PREVIEW_REQ                                                                      \
    "{\"type\":\"object\",\"properties\":{\"params\":{\"type\":\"object\"},\"version\":{"        \
    "\"type\":\"integer\",\"minimum\":0,\"description\":\"0 or absent: the active one\"}}}"
#define QG_PROMPT_PREVIEW                                                                          \
    "{\"type\":\"object\",\"required\":[\"template_id\",\"version\",\"system\",\"user\"],"       \
    "\"properties\":{\"template_id\":{\"type\":\"string\"},\"version\":{\"type\":\"integer\"},"  \
    "\"system\":{\"type\":\"string\"},\"user\":{\"type\":\"string\"}}}"
#define QG_PROMPT_ROLLBACK                                                                         \
    "{\"type\":\"object\",\"required\":[\"version\"],\"properties\":{\"version\":{\"type\":"     \
    "\"integer\",\"minimum\":1}}}"


/* Schema texts of the AI catalog, usage and budget routes (h_ai_admin.c,
 * h_usage.c). */
#define QG_AI_MODEL_OBJ                                                                            \
    "{\"type\":\"object\",\"required\":[\"name\",\"description\",\"providers\"],\"properties\":{" \
    "\"name\":{\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"providers\":{"        \
    "\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"fallback\":{\"type\":\"string\","      \
    "\"description\":\"admins only\"},\"source\":{\"enum\":[\"builtin\",\"environment\","         \
    "\"database\"],\"description\":\"admins only\"},\"deployments\":{\"type\":\"array\","         \
    "\"items\":{\"type\":\"string\"},\"description\":\"admins only: deployment ids\"}}}"
#define QG_AI_MODEL_PROPS                                                                          \
    "\"description\":{\"type\":\"string\",\"maxLength\":159},\"fallback\":{\"type\":\"string\","  \
    "\"description\":\"a named model tried after this one's deployments; default builtin, \\\"\\\" " \
    "for none\"}"
#define QG_AI_MODEL_CREATE                                                                         \
    "{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\","  \
    "\"pattern\":\"^[A-Za-z0-9._-]{1,63}$\"}," QG_AI_MODEL_PROPS "}}"
#define QG_AI_MODEL_PUT "{\"type\":\"object\",\"properties\":{" QG_AI_MODEL_PROPS "}}"
#define QG_AI_DEP_PROPS                                                                            \
    "\"model_name\":{\"type\":\"string\"},\"provider\":{\"enum\":[\"openai\",\"anthropic\","      \
    "\"gemini\",\"ollama\",\"builtin\"]},\"model\":{\"type\":\"string\",\"maxLength\":127},"      \
    "\"base_url\":{\"type\":\"string\",\"maxLength\":255},\"api_version\":{\"type\":\"string\"},"  \
    "\"price_in\":{\"type\":\"number\",\"minimum\":0,\"description\":\"USD per million input "    \
    "tokens\"},\"price_out\":{\"type\":\"number\",\"minimum\":0,\"description\":\"USD per million " \
    "output tokens\"},\"rpm\":{\"type\":\"integer\",\"minimum\":0},\"tpm\":{\"type\":\"integer\","  \
    "\"minimum\":0},\"connect_timeout_ms\":{\"type\":\"integer\",\"minimum\":1},"                  \
    "\"read_timeout_ms\":{\"type\":\"integer\",\"minimum\":1},\"priority\":{\"type\":\"integer\"}," \
    "\"enabled\":{\"type\":\"boolean\"}"
#define QG_AI_DEP_WRITE_PROPS                                                                      \
    QG_AI_DEP_PROPS ",\"api_key\":{\"type\":\"string\",\"writeOnly\":true,\"description\":"        \
    "\"stored in the vault as ai.<id>, never returned\"},\"key_ref\":{\"type\":\"string\","        \
    "\"description\":\"\\\"\\\", env:<NAME>_API_KEY or a vault secret ai.<...>\"}"
#define QG_AI_DEP_CREATE                                                                           \
    "{\"type\":\"object\",\"required\":[\"model_name\",\"provider\",\"model\"],\"properties\":{"   \
    QG_AI_DEP_WRITE_PROPS "}}"
#define QG_AI_DEP_PATCH "{\"type\":\"object\",\"properties\":{" QG_AI_DEP_WRITE_PROPS "}}"
#define QG_AI_DEP_OBJ                                                                              \
    "{\"type\":\"object\",\"required\":[\"id\",\"model_name\",\"provider\",\"model\",\"key_ref\","  \
    "\"key_masked\",\"source\"],\"properties\":{\"id\":{\"type\":\"string\"}," QG_AI_DEP_PROPS     \
    ",\"key_ref\":{\"type\":\"string\"},\"key_masked\":{\"type\":[\"string\",\"null\"]},"          \
    "\"source\":{\"enum\":[\"builtin\",\"environment\",\"database\"]}}}"
#define QG_USAGE_NUMS                                                                              \
    "\"calls\":{\"type\":\"integer\"},\"failures\":{\"type\":\"integer\"},\"input_tokens\":{"      \
    "\"type\":\"integer\"},\"output_tokens\":{\"type\":\"integer\"},\"cached_tokens\":{\"type\":"  \
    "\"integer\"},\"cost_usd\":{\"type\":\"number\"},\"avg_latency_ms\":{\"type\":\"number\"}"
#define QG_USAGE_RESP                                                                              \
    "{\"type\":\"object\",\"required\":[\"group_by\",\"rows\",\"totals\"],\"properties\":{"        \
    "\"from\":" QG_TIME_T ",\"to\":" QG_TIME_T ",\"user_id\":{\"type\":[\"string\",\"null\"]},"    \
    "\"model\":{\"type\":[\"string\",\"null\"]},\"group_by\":{\"type\":\"array\",\"items\":{"      \
    "\"enum\":[\"user\",\"model\",\"day\"]}},\"rows\":{\"type\":\"array\",\"items\":{\"type\":"    \
    "\"object\",\"properties\":{\"user_id\":{\"type\":[\"string\",\"null\"]},\"model\":{\"type\":" \
    "\"string\"},\"day\":{\"type\":\"string\",\"format\":\"date\"}," QG_USAGE_NUMS "}}},"          \
    "\"totals\":{\"type\":\"object\",\"properties\":{" QG_USAGE_NUMS "}}}}"
#define QG_USAGE_QUERY                                                                             \
    "from:string:ISO-8601 time or epoch, inclusive|to:string:ISO-8601 time or epoch, inclusive "   \
    "(a date means the whole day)|user_id:string:one user's calls (admins; others always see "     \
    "their own)|model:string:one named model|group_by:string:comma-separated user, model, day"
#define QG_BUDGET_PROPS                                                                            \
    "\"scope\":{\"enum\":[\"global\",\"user\",\"token\"]},\"subject\":{\"type\":\"string\","       \
    "\"description\":\"the user or API token id; empty for global\"},\"period\":{\"enum\":["       \
    "\"day\",\"month\"]},\"max_cost\":{\"type\":[\"number\",\"null\"],\"minimum\":0,"              \
    "\"description\":\"USD\"},\"max_tokens\":{\"type\":[\"integer\",\"null\"],\"minimum\":0},"     \
    "\"soft_pct\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":1,\"default\":0.8,"      \
    "\"description\":\"alert threshold as a fraction of the limit\"}"
#define QG_BUDGET_REQ                                                                              \
    "{\"type\":\"object\",\"required\":[\"scope\",\"period\"],\"properties\":{" QG_BUDGET_PROPS "}}"
#define QG_BUDGET_OBJ                                                                              \
    "{\"type\":\"object\",\"required\":[\"id\",\"scope\",\"subject\",\"period\",\"max_cost\","     \
    "\"max_tokens\",\"soft_pct\"],\"properties\":{\"id\":{\"type\":\"string\"}," QG_BUDGET_PROPS   \
    ",\"period_key\":{\"type\":\"string\"},\"spent_cost\":{\"type\":\"number\"},\"spent_tokens\":{" \
    "\"type\":\"integer\"},\"calls\":{\"type\":\"integer\"},\"alerted\":{\"type\":\"boolean\"},"    \
    "\"exhausted\":{\"type\":\"boolean\"},\"resets_at\":" QG_TIME_T ",\"created_at\":" QG_TIME_T   \
    ",\"updated_at\":" QG_TIME_T "}}"
#define QG_BUDGET_SAVED                                                                            \
    "{\"x-status\":201,\"description\":\"201 created; 200 when it replaced the budget of the "      \
    "same scope, subject and period\",\"allOf\":[" QG_BUDGET_OBJ "]}"


/* Schema of GET /api/ai/runs/{id} (h_ai_runs.c). */
#define QG_AI_STEP_OBJ                                                                             \
    "{\"type\":\"object\",\"required\":[\"seq\",\"ts\",\"kind\",\"content\"],\"properties\":{"   \
    "\"seq\":{\"type\":\"integer\"},\"ts\":" QG_TIME_T ",\"kind\":{\"enum\":[\"request\","        \
    "\"tool_call\",\"tool_result\",\"answer\",\"stop\"]},\"name\":{\"type\":[\"string\",\"null\"],"   \
    "\"description\":\"request: the deployment; tool_call/tool_result: the tool; stop: the "      \
    "reason\"},\"content\":{\"type\":\"string\",\"description\":\"request: {step, model, "         \
    "finish_reason, text, tool_calls}; tool_call: the arguments JSON; tool_result: what the "   \
    "tool returned; answer: the final text; stop: the message\"},\"input_tokens\":{\"type\":"   \
    "\"integer\"},\"output_tokens\":{\"type\":\"integer\"},\"call_id\":{\"type\":[\"string\","   \
    "\"null\"],\"description\":\"the model call (usage record) of this step\"}}}"
#define QG_AI_RUN_OBJ                                                                              \
    "{\"type\":\"object\",\"required\":[\"id\",\"outcome\",\"started_at\",\"finished_at\","      \
    "\"usage\",\"steps\"],\"properties\":{\"id\":{\"type\":\"string\"},\"outcome\":{\"type\":[" \
    "\"string\",\"null\"],\"description\":\"answer, step_limit, token_budget, cancelled, "     \
    "invalid_output or error; null while running\"},\"started_at\":" QG_TIME_T                  \
    ",\"finished_at\":" QG_TIME_T ",\"usage\":{\"type\":\"object\",\"properties\":{"             \
    "\"input_tokens\":{\"type\":\"integer\"},\"output_tokens\":{\"type\":\"integer\"}}},"        \
    "\"steps\":{\"type\":\"array\",\"items\":" QG_AI_STEP_OBJ "}}}"


/* Schema texts of the documents routes (h_docs.c). */
#define QG_DOC_UPLOAD_OBJ                                                                          \
    "{\"type\":\"object\",\"required\":[\"path\",\"content\"],\"properties\":{\"path\":{"  \
    "\"type\":\"string\",\"maxLength\":255,\"description\":\"a relative name such as "           \
    "team/guide.md; its extension picks the format\"},\"content\":{\"type\":\"string\"}}}"
#define QG_DOC_UPLOAD_REQ                                                                          \
    "{\"oneOf\":[" QG_DOC_UPLOAD_OBJ ",{\"type\":\"object\",\"required\":[\"documents\"],"       \
    "\"properties\":{\"documents\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":100,"        \
    "\"items\":" QG_DOC_UPLOAD_OBJ "}}}]}"
#define QG_DOC_COUNTS                                                                              \
    "{\"type\":\"object\",\"properties\":{\"files_seen\":{\"type\":\"integer\"},"              \
    "\"files_changed\":{\"type\":\"integer\"},\"files_unchanged\":{\"type\":\"integer\"},"     \
    "\"files_removed\":{\"type\":\"integer\"},\"files_skipped\":{\"type\":\"integer\"},"     \
    "\"chunks_added\":{\"type\":\"integer\"},\"chunks_kept\":{\"type\":\"integer\"},"          \
    "\"chunks_removed\":{\"type\":\"integer\"},\"chunks_linked\":{\"type\":\"integer\"},"      \
    "\"embedded\":{\"type\":\"integer\"},\"embedder\":{\"type\":\"string\"}}}"
#define QG_DOC_LOC                                                                                 \
    "\"path\":{\"type\":\"string\"},\"line_start\":{\"type\":\"integer\"},\"line_end\":{"     \
    "\"type\":\"integer\"}"
#define QG_DOC_HITS                                                                                \
    "{\"type\":\"object\",\"required\":[\"query\",\"items\"],\"properties\":{\"query\":{"     \
    "\"type\":\"string\"},\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\","    \
    "\"properties\":{" QG_DOC_LOC ",\"heading\":{\"type\":\"string\"},\"score\":{\"type\":"    \
    "\"number\"},\"chunk_id\":{\"type\":\"string\"},\"text\":{\"type\":\"string\"},"          \
    "\"duplicates\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"     \
    QG_DOC_LOC "}}}}}}}}"
#define QG_DOC_FILE                                                                                \
    "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"format\":{"       \
    "\"enum\":[\"markdown\",\"text\",\"html\",\"mql5\",\"pine\",\"c\"]},\"source\":{"        \
    "\"enum\":[\"file\",\"upload\"]},\"size\":{\"type\":\"integer\"},\"chunks\":{"          \
    "\"type\":\"integer\"},\"sha256\":{\"type\":\"string\"},\"ingested_at\":" QG_TIME_T "}}"

/* Schema texts of the webhook route (h_webhook.c). */
#define QG_WEBHOOK_REQ                                                                             \
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"symbol\",\"timeframe\","     \
    "\"signal_type\",\"confidence\",\"timestamp\",\"price_data\"],\"properties\":{\"symbol\":{"       \
    "\"type\":\"string\"},\"timeframe\":{\"type\":\"string\"},\"signal_type\":{\"type\":\"string\"},"  \
    "\"confidence\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100},\"timestamp\":{\"type\":["   \
    "\"string\",\"number\"]},\"price_data\":{\"type\":\"object\",\"required\":[\"open\",\"high\","    \
    "\"low\",\"close\"]},\"sl\":{\"type\":\"number\"},\"tp\":{\"type\":\"number\"},\"multi_tf\":{"    \
    "\"type\":\"boolean\"},\"confluences\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"     \
    "\"id\":{\"type\":\"string\",\"description\":\"the client's id: a repeat is a duplicate\"}}}"
#define QG_WEBHOOK_RESP                                                                            \
    "{\"x-status\":202,\"type\":\"object\",\"properties\":{\"status\":{\"enum\":[\"received\","    \
    "\"ignored\",\"duplicate\"]},\"id\":{\"type\":\"string\"},\"correlation_id\":{\"type\":"          \
    "\"string\"},\"reason\":{\"type\":\"string\"}}}"

/* Schema texts of the memory routes (h_memory.c). */
#define QG_MEM_META                                                                                \
    "{\"type\":\"object\",\"properties\":{\"symbol\":{\"type\":[\"string\",\"null\"]},"           \
    "\"timeframe\":{\"type\":[\"string\",\"null\"]},\"signal_type\":{\"type\":[\"string\","       \
    "\"null\"]},\"session\":{\"type\":[\"string\",\"null\"]},\"ts\":" QG_TIME_T ",\"meta\":{"     \
    "\"type\":\"object\"}}}"
#define QG_MEM_ITEM                                                                                \
    "{\"type\":\"object\",\"required\":[\"id\",\"collection\",\"kind\",\"text\",\"metadata\","    \
    "\"created_at\"],\"properties\":{\"id\":{\"type\":\"string\"},\"collection\":{\"type\":"      \
    "\"string\"},\"kind\":{\"enum\":[\"short\",\"long\",\"episodic\"]},\"text\":{\"type\":"        \
    "\"string\"},\"metadata\":" QG_MEM_META ",\"score\":{\"type\":\"number\",\"description\":"     \
    "\"searches: similarity (cosine: 1 - distance)\"},\"created_at\":" QG_TIME_T                  \
    ",\"expires_at\":" QG_TIME_T "}}"
#define QG_MEM_FILTERS                                                                             \
    "\"collection\":{\"type\":\"string\"},\"kind\":{\"enum\":[\"short\",\"long\",\"episodic\"]},"  \
    "\"symbol\":{\"type\":\"string\"},\"timeframe\":{\"type\":\"string\"},\"signal_type\":{"      \
    "\"type\":\"string\"},\"session\":{\"type\":\"string\"},\"since\":{\"type\":[\"string\","      \
    "\"integer\"]},\"until\":{\"type\":[\"string\",\"integer\"]}"
#define QG_MEM_SEARCH_REQ                                                                          \
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"q\":{\"type\":"        \
    "\"string\"},\"setup\":{\"type\":\"object\",\"description\":\"a market setup "                \
    "(docs/memory/api.md): searches the setups collection\"},\"n\":{\"type\":\"integer\","        \
    "\"minimum\":1,\"maximum\":100,\"default\":10}," QG_MEM_FILTERS "}}"
#define QG_MEM_RESULTS                                                                             \
    "{\"type\":\"object\",\"required\":[\"items\"],\"properties\":{\"items\":{\"type\":"          \
    "\"array\",\"items\":" QG_MEM_ITEM "}}}"
#define QG_MEM_SEARCH_QUERY                                                                        \
    "q:string:the text to search for (required)|n:integer:results, 1-100 (default "               \
    "10)|collection:string:one collection (default: every text collection)|kind:string:short, "   \
    "long or episodic|symbol:string:exact symbol|timeframe:string:exact "                         \
    "timeframe|signal_type:string:exact signal type|session:string:exact session|since:string:"   \
    "ISO-8601 or epoch; the item's time (ts, else created_at) at or after|until:string:ISO-8601 "  \
    "or epoch; at or before"
#define QG_MEM_ADD_REQ                                                                             \
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"collection\":{"        \
    "\"type\":\"string\",\"description\":\"default: conversations for short, facts for "          \
    "episodic, setups with setup\"},\"text\":{\"type\":\"string\",\"maxLength\":32768},\"kind\":{" \
    "\"enum\":[\"short\",\"long\",\"episodic\",\"working\"],\"default\":\"long\"},\"symbol\":{"   \
    "\"type\":\"string\"},\"timeframe\":{\"type\":\"string\"},\"signal_type\":{\"type\":"         \
    "\"string\"},\"session\":{\"type\":\"string\"},\"ts\":{\"type\":[\"string\",\"integer\"]},"    \
    "\"meta\":{\"type\":\"object\"},\"ttl_s\":{\"type\":\"integer\",\"minimum\":1},\"setup\":{"    \
    "\"type\":\"object\"},\"key\":{\"type\":\"string\",\"description\":\"working memory\"},"       \
    "\"value\":{\"description\":\"working memory: any JSON\"}}}"
#define QG_MEM_LIST_QUERY                                                                          \
    "collection:string:one collection|kind:string:short, long, episodic, or working (with "       \
    "session)|symbol:string:exact symbol|session:string:exact session|limit:integer:page size, "  \
    "1-500 (default 50)|cursor:string:the previous page's next cursor"
#define QG_MEM_FORGET_QUERY                                                                        \
    "collection:string:one collection|kind:string:short, long, episodic or working|symbol:"       \
    "string:exact symbol|session:string:exact session (required with kind=working)"
#define QG_MEM_COLL_OBJ                                                                            \
    "{\"type\":\"object\",\"required\":[\"name\",\"embedder\",\"dim\",\"metric\",\"count\","      \
    "\"total\"],\"properties\":{\"name\":{\"type\":\"string\"},\"embedder\":{\"type\":"           \
    "\"string\",\"examples\":[\"hash\",\"market\",\"model:embed\"]},\"dim\":{\"type\":["          \
    "\"integer\",\"null\"]},\"metric\":{\"enum\":[\"cosine\",\"dot\",\"l2\"]},\"index\":{"         \
    "\"enum\":[\"hnsw\",\"flat\"]},\"description\":{\"type\":\"string\"},\"count\":{\"type\":"     \
    "\"integer\",\"description\":\"the caller's items\"},\"total\":{\"type\":\"integer\","        \
    "\"description\":\"every user's items\"},\"created_at\":" QG_TIME_T "}}"
#define QG_MEM_COLL_REQ                                                                            \
    "{\"type\":\"object\",\"required\":[\"name\"],\"additionalProperties\":false,\"properties\":{" \
    "\"name\":{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9_-]{0,47}$\"},\"embedder\":{"       \
    "\"type\":\"string\",\"default\":\"hash\",\"description\":\"hash, market or "                 \
    "model:<named model>\"},\"metric\":{\"enum\":[\"cosine\",\"dot\",\"l2\"],\"default\":"         \
    "\"cosine\"},\"description\":{\"type\":\"string\",\"maxLength\":255}}}"
#define QG_MEM_WORKING_OBJ                                                                         \
    "{\"type\":\"object\",\"required\":[\"session\",\"key\",\"value\"],\"properties\":{"          \
    "\"session\":{\"type\":\"string\"},\"key\":{\"type\":\"string\"},\"value\":{\"description\":"  \
    "\"any JSON\"},\"created_at\":" QG_TIME_T ",\"updated_at\":" QG_TIME_T                        \
    ",\"expires_at\":" QG_TIME_T "}}"
#define QG_MEM_WORKING_PUT                                                                         \
    "{\"type\":\"object\",\"required\":[\"value\"],\"additionalProperties\":false,\"properties\":{" \
    "\"value\":{\"description\":\"any JSON, at most 64 KiB\"},\"ttl_s\":{\"type\":\"integer\","     \
    "\"minimum\":1,\"description\":\"default QG_MEMORY_WORKING_TTL\"}}}"


const qg_route qg_routes[] = {
    RS(QG_GET, "/health", qg_h_health, QG_ROLE_NONE, QG_RL_NONE, QG_ROUTE_INLINE, "meta", "Liveness probe", NULL, QG_STATUS_OBJ("ok"), NULL),
    RS(QG_GET, "/ready", qg_h_ready, QG_ROLE_NONE, QG_RL_NONE, 0, "meta", "Readiness: the database answers", NULL, QG_STATUS_OBJ("ready"), NULL),
    RS(QG_GET, "/metrics", qg_h_metrics, QG_ROLE_NONE, QG_RL_NONE, QG_ROUTE_INLINE, "meta", "Prometheus metrics", NULL, "{\"type\":\"string\",\"x-content-type\":\"text/plain; version=0.0.4\"}", NULL),
    RS(QG_GET, "/api/openapi.json", qg_h_openapi, QG_ROLE_NONE, QG_RL_READ, QG_ROUTE_INLINE, "meta", "This API as OpenAPI 3.1", NULL, "{\"type\":\"object\",\"description\":\"an OpenAPI 3.1 document\"}", NULL),
    RS(QG_GET, "/docs", qg_h_docs, QG_ROLE_NONE, QG_RL_READ, QG_ROUTE_INLINE, "meta", "API documentation page", NULL, "{\"type\":\"string\",\"x-content-type\":\"text/html\"}", NULL),

    RS(QG_POST, "/api/auth/signup", qg_h_signup, QG_ROLE_NONE, QG_RL_AUTH, 0, "auth", "Create an account (pending approval)", QG_SIGNUP, "{\"x-status\":201,\"$ref\":\"#/components/schemas/User\"}", NULL),
    RS(QG_POST, "/api/auth/login", qg_h_login, QG_ROLE_NONE, QG_RL_AUTH, QG_ROUTE_NO_AUDIT, "auth", "Log in: access and refresh tokens", QG_CREDENTIALS, QG_REF("TokenPair"), NULL),
    RS(QG_POST, "/api/auth/refresh", qg_h_refresh, QG_ROLE_NONE, QG_RL_AUTH, 0, "auth", "Exchange a refresh token for new tokens", QG_REFRESH_REQ, QG_REF("TokenPair"), NULL),
    RS(QG_POST, "/api/auth/logout", qg_h_logout, QG_ROLE_NONE, QG_RL_AUTH, 0, "auth", "Revoke a refresh token", QG_REFRESH_REQ, QG_NO_BODY, NULL),
    RS(QG_GET, "/api/me", qg_h_me, QG_ROLE_CLIENT, QG_RL_READ, QG_ROUTE_ONE_TIME_OK, "auth", "The caller's account", NULL, QG_REF("User"), NULL),
    RS(QG_POST, "/api/me/password", qg_h_me_password, QG_ROLE_CLIENT, QG_RL_AUTH, QG_ROUTE_ONE_TIME_OK, "auth", "Change the caller's password", QG_PASSWORD_CHANGE, QG_NO_BODY, NULL),

    RS(QG_GET, "/api/tokens", qg_h_tokens_list, QG_ROLE_DEVELOPER, QG_RL_READ, 0, "tokens", "The caller's machine API tokens", NULL, QG_LIST_OF("ApiToken"), NULL),
    RS(QG_POST, "/api/tokens", qg_h_tokens_create, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "tokens", "Create a machine API token (shown once)", QG_TOKEN_REQ, QG_TOKEN_CREATED, NULL),
    RS(QG_DELETE, "/api/tokens/{id}", qg_h_tokens_revoke, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "tokens", "Revoke a machine API token", NULL, QG_NO_BODY, NULL),

    RS(QG_GET, "/api/users", qg_h_users_list, QG_ROLE_ADMIN, QG_RL_READ, 0, "users", "List users", NULL, QG_LIST_OF("User"), QG_USERS_QUERY),
    RS(QG_POST, "/api/users", qg_h_users_create, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "users", "Create an approved user", QG_USER_CREATE, "{\"x-status\":201,\"$ref\":\"#/components/schemas/User\"}", NULL),
    RS(QG_GET, "/api/users/{id}", qg_h_users_get, QG_ROLE_ADMIN, QG_RL_READ, 0, "users", "One user", NULL, QG_REF("User"), NULL),
    RS(QG_PATCH, "/api/users/{id}", qg_h_users_update, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "users", "Change role, approval or disabled", QG_USER_PATCH, QG_REF("User"), NULL),
    RS(QG_POST, "/api/users/{id}/approve", qg_h_users_approve, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "users", "Approve a pending user", NULL, QG_REF("User"), NULL),
    RS(QG_DELETE, "/api/users/{id}", qg_h_users_delete, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "users", "Delete a user and their data", NULL, QG_NO_BODY, NULL),

    RS(QG_GET, "/api/secrets", qg_h_secrets_list, QG_ROLE_ADMIN, QG_RL_READ, 0, "vault", "Vault entries, masked", NULL, QG_LIST_OF("Secret"), NULL),
    RS(QG_PUT, "/api/secrets/{name}", qg_h_secrets_put, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "vault", "Store a secret", QG_SECRET_PUT, QG_REF("Secret"), NULL),
    RS(QG_DELETE, "/api/secrets/{name}", qg_h_secrets_delete, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "vault", "Delete a secret", NULL, QG_NO_BODY, NULL),
    RS(QG_GET, "/api/audit", qg_h_audit_list, QG_ROLE_ADMIN, QG_RL_READ, 0, "audit", "Query the audit log", NULL, QG_LIST_OF("AuditEntry"), QG_AUDIT_QUERY),

    RS(QG_GET, "/api/strategies", qg_h_strategies_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "backtests", "Built-in strategies and their parameters", NULL, QG_ITEMS_OF(QG_STRATEGY_OBJ), NULL),
    RS(QG_GET, "/api/datasets", qg_h_datasets_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "datasets", "The caller's datasets", NULL, QG_ITEMS_OF(QG_DATASET_OBJ), QG_PAGE_QUERY),
    RS(QG_POST, "/api/datasets", qg_h_datasets_create, QG_ROLE_DEVELOPER, QG_RL_HEAVY, QG_ROUTE_RAW_BODY, "datasets", "Upload bars (CSV or JSON body)", QG_DATASET_UPLOAD, QG_DATASET_CREATED, QG_DATASET_QUERY),
    RS(QG_GET, "/api/datasets/{id}", qg_h_datasets_get, QG_ROLE_CLIENT, QG_RL_READ, 0, "datasets", "One dataset", NULL, QG_DATASET_OBJ, NULL),
    RS(QG_DELETE, "/api/datasets/{id}", qg_h_datasets_delete, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "datasets", "Delete a dataset", NULL, QG_NO_BODY, NULL),
    RS(QG_GET, "/api/datasets/{id}/candles", qg_h_datasets_candles, QG_ROLE_CLIENT, QG_RL_READ, 0, "datasets", "Bars, optionally resampled", NULL, QG_CANDLES, QG_CANDLES_QUERY),

    RS(QG_GET, "/api/backtests", qg_h_backtests_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "backtests", "The caller's backtests", NULL, QG_ITEMS_OF(QG_BACKTEST_OBJ), QG_PAGE_QUERY),
    RS(QG_POST, "/api/backtests", qg_h_backtests_create, QG_ROLE_DEVELOPER, QG_RL_HEAVY, 0, "backtests", "Start a backtest job", QG_BACKTEST_REQ, QG_BACKTEST_QUEUED, NULL),
    RS(QG_GET, "/api/backtests/{id}", qg_h_backtests_get, QG_ROLE_CLIENT, QG_RL_READ, 0, "backtests", "Status, metrics and trades", NULL, QG_BACKTEST_OBJ, NULL),
    RS(QG_DELETE, "/api/backtests/{id}", qg_h_backtests_delete, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "backtests", "Cancel and delete a backtest", NULL, QG_NO_BODY, NULL),
    RS(QG_GET, "/api/backtests/{id}/events", qg_h_backtests_events, QG_ROLE_CLIENT, QG_RL_READ, QG_ROUTE_STREAM, "backtests", "Progress as Server-Sent Events", NULL, QG_BACKTEST_EVENTS, NULL),

    RS(QG_GET, "/v1/models", qg_h_openai_models, QG_ROLE_CLIENT, QG_RL_READ, 0, "openai", "Named models, as OpenAI's model list (builtin always there)", NULL, QG_OA_MODELS, NULL),
    RS(QG_GET, "/v1/models/{model}", qg_h_openai_model, QG_ROLE_CLIENT, QG_RL_READ, 0, "openai", "One named model, OpenAI style", NULL, QG_OA_MODEL, NULL),
    RS(QG_POST, "/v1/chat/completions", qg_h_openai_chat, QG_ROLE_CLIENT, QG_RL_WRITE, QG_ROUTE_STREAM | QG_ROUTE_NO_AUDIT | QG_ROUTE_LONG, "openai", "OpenAI-compatible chat completion (streaming with stream true); recorded as AI usage", QG_OA_CHAT_REQ, QG_OA_CHAT_RESP, NULL),

    RS(QG_GET, "/api/prompts", qg_h_prompts_list, QG_ROLE_ADMIN, QG_RL_READ, 0, "prompts", "Prompt templates with their active and latest versions", NULL, QG_ITEMS_OF(QG_PROMPT_TEMPLATE), NULL),
    RS(QG_GET, "/api/prompts/{id}", qg_h_prompts_get, QG_ROLE_ADMIN, QG_RL_READ, 0, "prompts", "A template, its active version and every version with its performance", NULL, QG_PROMPT_FULL, NULL),
    RS(QG_GET, "/api/prompts/{id}/versions/{version}", qg_h_prompts_version, QG_ROLE_ADMIN, QG_RL_READ, 0, "prompts", "One version of a template, with its texts and performance", NULL, QG_PROMPT_VERSION, NULL),
    RS(QG_PUT, "/api/prompts/{id}", qg_h_prompts_put, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "prompts", "Save a new version and make it active (creates the template)", QG_PROMPT_PUT, QG_PROMPT_SAVED, NULL),
    RS(QG_POST, "/api/prompts/{id}/preview", qg_h_prompts_preview, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "prompts", "Render a version with parameters (nothing is sent to a model)", QG_PROMPT_PREVIEW_REQ, QG_PROMPT_PREVIEW, NULL),
    RS(QG_POST, "/api/prompts/{id}/rollback", qg_h_prompts_rollback, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "prompts", "Make an earlier version active again", QG_PROMPT_ROLLBACK, QG_PROMPT_FULL, NULL),

    RS(QG_GET, "/api/ai/models", qg_h_ai_models_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "ai", "Named models: names, descriptions, providers (admins: also fallback, source, deployments)", NULL, QG_ITEMS_OF(QG_AI_MODEL_OBJ), NULL),
    RS(QG_POST, "/api/ai/models", qg_h_ai_models_create, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "ai", "Define a named model in the database (replaces an environment model of that name)", QG_AI_MODEL_CREATE, "{\"x-status\":201,\"allOf\":[" QG_AI_MODEL_OBJ "]}", NULL),
    RS(QG_PUT, "/api/ai/models/{name}", qg_h_ai_models_put, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "ai", "Create or replace a database named model (201 when created)", QG_AI_MODEL_PUT, QG_AI_MODEL_OBJ, NULL),
    RS(QG_DELETE, "/api/ai/models/{name}", qg_h_ai_models_delete, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "ai", "Delete a database named model (its deployments first)", NULL, QG_NO_BODY, NULL),
    RS(QG_GET, "/api/ai/deployments", qg_h_ai_deployments_list, QG_ROLE_ADMIN, QG_RL_READ, 0, "ai", "Every deployment, keys masked", NULL, QG_ITEMS_OF(QG_AI_DEP_OBJ), NULL),
    RS(QG_POST, "/api/ai/deployments", qg_h_ai_deployments_create, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "ai", "Add a deployment to a database named model (api_key goes to the vault)", QG_AI_DEP_CREATE, "{\"x-status\":201,\"allOf\":[" QG_AI_DEP_OBJ "]}", NULL),
    RS(QG_PATCH, "/api/ai/deployments/{id}", qg_h_ai_deployments_update, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "ai", "Change a database deployment", QG_AI_DEP_PATCH, QG_AI_DEP_OBJ, NULL),
    RS(QG_DELETE, "/api/ai/deployments/{id}", qg_h_ai_deployments_delete, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "ai", "Delete a database deployment and its vault key", NULL, QG_NO_BODY, NULL),

    RS(QG_GET, "/api/usage", qg_h_usage, QG_ROLE_CLIENT, QG_RL_READ, 0, "ai", "AI usage: calls, tokens, cost, latency, failures, grouped by user, model, day", NULL, QG_USAGE_RESP, QG_USAGE_QUERY),
    RS(QG_GET, "/api/budgets", qg_h_budgets_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "ai", "AI budgets with this period's spend (others: the ones that apply to them)", NULL, QG_ITEMS_OF(QG_BUDGET_OBJ), NULL),
    RS(QG_POST, "/api/budgets", qg_h_budgets_create, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "ai", "Set a budget (replaces the one of the same scope, subject and period)", QG_BUDGET_REQ, QG_BUDGET_SAVED, NULL),
    RS(QG_DELETE, "/api/budgets/{id}", qg_h_budgets_delete, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "ai", "Delete a budget", NULL, QG_NO_BODY, NULL),
    RS(QG_GET, "/api/ai/runs/{id}", qg_h_ai_runs_get, QG_ROLE_CLIENT, QG_RL_READ, 0, "ai", "The stored steps of a tool-calling run (the caller's own; admins: any)", NULL, QG_AI_RUN_OBJ, NULL),

    RS(QG_GET, "/api/memory/search", qg_h_memory_search, QG_ROLE_CLIENT, QG_RL_READ, 0, "memory", "Search the caller's memories by text, with filters applied during the search", NULL, QG_MEM_RESULTS, QG_MEM_SEARCH_QUERY),
    RS(QG_POST, "/api/memory/search", qg_h_memory_search_post, QG_ROLE_CLIENT, QG_RL_READ, QG_ROUTE_NO_AUDIT, "memory", "Search by text or by a market setup (similar markets)", QG_MEM_SEARCH_REQ, QG_MEM_RESULTS, NULL),
    RS(QG_GET, "/api/memory/collections", qg_h_memory_collections, QG_ROLE_CLIENT, QG_RL_READ, 0, "memory", "Collections: embedder, dimension, metric, the caller's and all items", NULL, QG_ITEMS_OF(QG_MEM_COLL_OBJ), NULL),
    RS(QG_POST, "/api/memory/collections", qg_h_memory_collections_create, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "memory", "Create a collection (embedder and metric are fixed at creation)", QG_MEM_COLL_REQ, "{\"x-status\":201,\"allOf\":[" QG_MEM_COLL_OBJ "]}", NULL),
    RS(QG_GET, "/api/memory/working/{session}", qg_h_memory_working_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "memory", "A session's working memory, by key", NULL, QG_ITEMS_OF(QG_MEM_WORKING_OBJ), NULL),
    RS(QG_DELETE, "/api/memory/working/{session}", qg_h_memory_working_clear, QG_ROLE_CLIENT, QG_RL_WRITE, 0, "memory", "Forget a session's working memory", NULL, QG_NO_BODY, NULL),
    RS(QG_GET, "/api/memory/working/{session}/{key}", qg_h_memory_working_get, QG_ROLE_CLIENT, QG_RL_READ, 0, "memory", "One working-memory entry", NULL, QG_MEM_WORKING_OBJ, NULL),
    RS(QG_PUT, "/api/memory/working/{session}/{key}", qg_h_memory_working_put, QG_ROLE_CLIENT, QG_RL_WRITE, 0, "memory", "Set a working-memory entry (201 when new)", QG_MEM_WORKING_PUT, QG_MEM_WORKING_OBJ, NULL),
    RS(QG_DELETE, "/api/memory/working/{session}/{key}", qg_h_memory_working_delete, QG_ROLE_CLIENT, QG_RL_WRITE, 0, "memory", "Forget one working-memory entry", NULL, QG_NO_BODY, NULL),
    RS(QG_GET, "/api/memory", qg_h_memory_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "memory", "The caller's memories, newest first (kind=working&session=: a session's entries)", NULL, QG_ITEMS_OF(QG_MEM_ITEM), QG_MEM_LIST_QUERY),
    RS(QG_POST, "/api/memory", qg_h_memory_add, QG_ROLE_CLIENT, QG_RL_WRITE, 0, "memory", "Remember something (embedded and indexed); kind working sets a session key", QG_MEM_ADD_REQ, "{\"x-status\":201,\"allOf\":[" QG_MEM_ITEM "]}", NULL),
    RS(QG_DELETE, "/api/memory", qg_h_memory_forget_where, QG_ROLE_CLIENT, QG_RL_WRITE, 0, "memory", "Forget the caller's memories that match the filter", NULL, "{\"type\":\"object\",\"properties\":{\"removed\":{\"type\":\"integer\"}}}", QG_MEM_FORGET_QUERY),
    RS(QG_GET, "/api/memory/{id}", qg_h_memory_get, QG_ROLE_CLIENT, QG_RL_READ, 0, "memory", "One of the caller's memories", NULL, QG_MEM_ITEM, NULL),
    RS(QG_DELETE, "/api/memory/{id}", qg_h_memory_delete, QG_ROLE_CLIENT, QG_RL_WRITE, 0, "memory", "Forget one memory", NULL, QG_NO_BODY, NULL),
    RS(QG_POST, "/api/docs", qg_h_documents_create, QG_ROLE_DEVELOPER, QG_RL_HEAVY, 0, "docs", "Upload documents (text under a relative name) into the documents index; unchanged chunks are not embedded again", QG_DOC_UPLOAD_REQ, QG_DOC_COUNTS, NULL),
    RS(QG_GET, "/api/docs/search", qg_h_documents_search, QG_ROLE_CLIENT, QG_RL_READ, 0, "docs", "Search the documents: chunks best first with citations (path, heading, lines, score)", NULL, QG_DOC_HITS, "q:string:the text to search for (required)|n:integer:results, 1-50 (default 10)"),
    RS(QG_GET, "/api/docs", qg_h_documents_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "docs", "The indexed documents", NULL, QG_ITEMS_OF(QG_DOC_FILE), NULL),
    RS(QG_DELETE, "/api/docs", qg_h_documents_delete, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "docs", "Remove a document from the index (the file itself is not touched)", NULL, QG_NO_BODY, "path:string:the document's path as GET /api/docs lists it (required)"),

    /* ---- signals: webhook ingest (h_webhook.c) ---- */
    RS(QG_POST, "/api/webhook/receive", qg_h_webhook_receive, QG_ROLE_NONE, QG_RL_NONE, QG_ROUTE_NO_AUDIT | QG_ROUTE_LOOP_FIRST, "signals", "Receive a TradingView-style alert: 202 once it is durably stored (secret, API token or HMAC; docs/webhook.md)", QG_WEBHOOK_REQ, QG_WEBHOOK_RESP, "secret:string:the webhook secret (or the X-Webhook-Secret header)"),
    /* ---- signals: pipeline, DLQ, outcomes, stats, stream (h_signals.c) ---- */
    RS(QG_GET, "/api/signals", qg_h_signals_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "signals", "Signals, newest first, with state, score, session and outcome", NULL, QG_ITEMS_OF("{\"type\":\"object\"}"), "state:string:received, filtered, analysed, notified, done, deferred, escalated or failed|symbol:string:exact symbol|signal_type:string:exact signal type|since:string:received at or after (ISO-8601 or epoch)|" QG_PAGE_QUERY),
    RS(QG_GET, "/api/signals/stream", qg_h_signals_stream, QG_ROLE_CLIENT, QG_RL_READ, QG_ROUTE_STREAM, "signals", "Pipeline events as Server-Sent Events (id = sequence; ?after= resumes)", NULL, "{\"x-content-type\":\"text/event-stream\",\"type\":\"string\"}", "after:integer:the last event id seen"),
    RS(QG_GET, "/api/signals/status", qg_h_signals_status, QG_ROLE_CLIENT, QG_RL_READ, 0, "signals", "Pipeline counters, queue, DLQ size and whether it is paused", NULL, NULL, NULL),
    RS(QG_POST, "/api/signals/pause", qg_h_signals_pause, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "signals", "Pause processing (signals are still accepted and kept); survives a restart", NULL, NULL, NULL),
    RS(QG_POST, "/api/signals/resume", qg_h_signals_resume, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "signals", "Resume processing", NULL, NULL, NULL),
    RS(QG_POST, "/api/signals/{id}/outcome", qg_h_signals_outcome, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "signals", "Record a trade outcome (win, loss, breakeven, pnl); also remembered for similar-setup lookups", "{\"type\":\"object\",\"required\":[\"outcome\"],\"properties\":{\"outcome\":{\"enum\":[\"win\",\"loss\",\"breakeven\"]},\"pnl\":{\"type\":[\"number\",\"null\"]}}}", NULL, NULL),
    RS(QG_GET, "/api/stats", qg_h_signals_stats, QG_ROLE_CLIENT, QG_RL_READ, 0, "signals", "Win rate, expectancy (average pnl) and counts: overall, by symbol, signal type, session", NULL, NULL, "since:string:signals received at or after (ISO-8601 or epoch)"),
    RS(QG_GET, "/api/dlq", qg_h_dlq_list, QG_ROLE_ADMIN, QG_RL_READ, 0, "signals", "Signals parked in the dead-letter queue with stage, error and attempts", NULL, NULL, QG_PAGE_QUERY),
    RS(QG_POST, "/api/dlq/{id}/replay", qg_h_dlq_replay, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "signals", "Put a parked signal back in the queue from the stage that failed", NULL, "{\"x-status\":202}", NULL),
    RS(QG_DELETE, "/api/dlq/{id}", qg_h_dlq_discard, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "signals", "Discard a parked signal (it stays failed)", NULL, QG_NO_BODY, NULL),
    /* ---- signals: policies (h_policies.c) ---- */
#define QG_POLICY_RULE                                                                             \
    "{\"type\":\"object\",\"description\":\"a policy (docs/policies-api.md)\",\"required\":[\"name\"],\"properties\":{"       \
    "\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":63},\"when\":{\"type\":\"object\"},"                         \
    "\"min_confidence\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100},\"blocked_types\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}," \
    "\"allowed_symbols\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"blocked_symbols\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}," \
    "\"max_per_hour\":{\"type\":\"integer\",\"minimum\":0},\"require_multi_tf\":{\"type\":\"boolean\"},\"min_score\":{\"type\":\"number\"}," \
    "\"action\":{\"enum\":[\"drop\",\"defer\",\"escalate\"]},\"enabled\":{\"type\":\"boolean\",\"description\":\"stored beside the rule, default true\"}}}"
#define QG_POLICY_OBJ                                                                              \
    "{\"type\":\"object\",\"required\":[\"id\",\"name\",\"source\",\"enabled\",\"read_only\",\"rule\"],\"properties\":{" \
    "\"id\":{\"type\":[\"string\",\"null\"],\"description\":\"null for a configuration policy\"},\"name\":{\"type\":\"string\"}," \
    "\"source\":{\"enum\":[\"config\",\"database\"]},\"enabled\":{\"type\":\"boolean\"},\"read_only\":{\"type\":\"boolean\"}," \
    "\"rule\":{\"type\":\"object\"},\"created_by\":{\"type\":[\"string\",\"null\"]},\"created_at\":" QG_TIME_T ",\"updated_at\":" QG_TIME_T "," \
    "\"applied\":{\"type\":\"boolean\",\"description\":\"after a change: the pipeline reloaded its policies\"},\"apply_error\":{\"type\":\"string\"}}}"
    RS(QG_GET, "/api/signals/policies", qg_h_policies_list, QG_ROLE_DEVELOPER, QG_RL_READ, 0, "signals", "Signal policies: the configuration's (read-only, evaluated first), then the database's in creation order", NULL, QG_ITEMS_OF(QG_POLICY_OBJ), NULL),
    RS(QG_POST, "/api/signals/policies", qg_h_policies_create, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "signals", "Add a policy (applied to the next signal); 409 when the name is taken", QG_POLICY_RULE, "{\"x-status\":201,\"allOf\":[" QG_POLICY_OBJ "]}", NULL),
    RS(QG_GET, "/api/signals/policies/{id}", qg_h_policies_get, QG_ROLE_DEVELOPER, QG_RL_READ, 0, "signals", "One database policy", NULL, QG_POLICY_OBJ, NULL),
    RS(QG_PUT, "/api/signals/policies/{id}", qg_h_policies_put, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "signals", "Replace a policy's rule, or send only {\"enabled\":bool} to switch it on or off", QG_POLICY_RULE, QG_POLICY_OBJ, NULL),
    RS(QG_DELETE, "/api/signals/policies/{id}", qg_h_policies_delete, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "signals", "Delete a database policy", NULL, QG_NO_BODY, NULL),
    /* (h_signals.c: after the policies routes, which it would shadow: the router takes the first match) */
    RS(QG_GET, "/api/signals/{id}", qg_h_signals_get, QG_ROLE_CLIENT, QG_RL_READ, 0, "signals", "One signal: payload, state, score, session, analysis, plan result, deliveries, outcome and its event history", NULL, NULL, NULL),
    /* ---- signals: live detector bars (h_bars.c) ---- */
    RS(QG_POST, "/api/bars", qg_h_bars_post, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "signals", "Closed bars through the live ICT detector; its signals go to the pipeline (docs/ict.md)", "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"symbol\",\"timeframe\",\"bars\"],\"properties\":{\"symbol\":{\"type\":\"string\",\"maxLength\":32},\"timeframe\":{\"type\":\"string\",\"maxLength\":8},\"bars\":{\"type\":\"array\",\"maxItems\":10000,\"items\":{\"type\":\"array\",\"description\":\"[ts (epoch ms or ISO-8601), open, high, low, close, volume]\"}}}}", "{\"type\":\"object\",\"properties\":{\"bars\":{\"type\":\"integer\"},\"signals\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":[\"string\",\"null\"]},\"status\":{\"type\":\"string\"},\"direction\":{\"type\":\"string\"},\"signal\":{\"type\":\"object\"}}}}}}", NULL),
    RS(QG_DELETE, "/api/bars", qg_h_bars_forget, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "signals", "Forget one symbol and timeframe of the live detector: its state and stored bars (docs/ict.md)", NULL, "{\"type\":\"object\",\"properties\":{\"forgotten\":{\"type\":\"boolean\"},\"stored_bars_deleted\":{\"type\":\"integer\"}}}", "symbol:string:the symbol (required)|timeframe:string:the timeframe, as posted (required)"),
    /* ---- signals: Telegram commands (h_telegram.c) ---- */
    RS(QG_POST, "/api/telegram/command", qg_h_telegram_command, QG_ROLE_NONE, QG_RL_WRITE, QG_ROUTE_NO_AUDIT, "signals", "The Telegram bot's webhook: /status, /stats, /last [n], /pause, /resume, /help from allowed chats, answered in the reply as a sendMessage call (X-Telegram-Bot-Api-Secret-Token required when QG_TELEGRAM_WEBHOOK_SECRET is set)", "{\"type\":\"object\",\"description\":\"a Telegram Update\",\"properties\":{\"update_id\":{\"type\":\"integer\"},\"message\":{\"type\":\"object\"}}}", "{\"type\":\"object\",\"description\":\"{} (nothing to do) or a sendMessage call\",\"properties\":{\"method\":{\"const\":\"sendMessage\"},\"chat_id\":{\"type\":\"integer\"},\"text\":{\"type\":\"string\"}}}", NULL),

    {0, NULL, NULL, QG_ROLE_NONE, QG_RL_NONE, 0, NULL, NULL, NULL, NULL, NULL},
};
/* clang-format on */
