/*
 * ai.h - the AI layer: one way for every feature of quantgate (signal
 * analysis, trading agents, the strategy builder chat, the OpenAI-compatible
 * endpoint) to ask a language model something.
 *
 * A caller fills a qg_ai_call: who is asking (for budgets and usage), which
 * named model ("analyst", "fast", "builtin"), and either a prompt template
 * id with parameters or a ready request (system prompt, messages, tools).
 * qg_ai_complete checks the budgets before anything is sent, renders the
 * template, walks the model's deployments (retries with backoff and jitter,
 * fallback, cool-down, rpm/tpm limits), optionally extracts and validates a
 * JSON answer, records the call, and returns the normalised response.
 *
 * Providers (ai/provider.h) only encode requests and decode responses; the
 * transport (ai/transport.h, libcurl multi) does the I/O. The `builtin`
 * provider answers in-process, offline and deterministically.
 *
 * Memory: every pointer in a qg_ai_response or qg_ai_result points into the
 * arena passed to the call; it lives until that arena is freed. Request
 * structs only borrow what they point to.
 */
#ifndef QG_AI_H
#define QG_AI_H

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- messages, tools, requests ---- */

typedef enum {
    QG_AI_ROLE_SYSTEM, /* only in qg_ai_request.system, never in messages */
    QG_AI_ROLE_USER,
    QG_AI_ROLE_ASSISTANT,
    QG_AI_ROLE_TOOL, /* the result of one tool call */
} qg_ai_role;

/* "system", "user", "assistant", "tool"; parse returns -1 when unknown. */
const char *qg_ai_role_name(qg_ai_role r);
int qg_ai_role_parse(const char *s);

typedef struct qg_ai_tool_call {
    const char *id;        /* provider's id ("call_...", "toolu_..."); made up when the
                              provider has none (Gemini, Ollama): "call_<index>" */
    const char *name;      /* tool name */
    const char *arguments; /* a JSON object as text ("{}" when none) */
} qg_ai_tool_call;

typedef struct qg_ai_msg {
    qg_ai_role role;
    const char *content; /* text; NULL or "" for an assistant turn that only calls tools */
    const qg_ai_tool_call *tool_calls; /* ROLE_ASSISTANT: the calls it made */
    size_t n_tool_calls;
    const char *tool_call_id; /* ROLE_TOOL: the call this result answers */
    const char *tool_name;    /* ROLE_TOOL: its tool (Gemini and Ollama match by name) */
} qg_ai_msg;

typedef struct qg_ai_tool {
    const char *name;
    const char *description;
    const char *parameters; /* JSON Schema of the arguments object, as text */
} qg_ai_tool;

typedef struct qg_ai_request {
    const char *system; /* system prompt or NULL */
    const qg_ai_msg *messages;
    size_t n_messages;
    const qg_ai_tool *tools;
    size_t n_tools;
    const char *tool_choice; /* NULL/"auto", "none", "required", or one tool's name */
    bool json_mode;          /* ask for one JSON object where the provider can */
    int max_tokens;          /* 0: provider default */
    double temperature;      /* < 0: provider default */
    bool stream;             /* deliver deltas through the call's on_delta */
    /* For the builtin provider, which reasons from structured input instead
     * of prose: the task ("signal.analyze", "chat.intent", ...; the template
     * id when a template is used) and its input as JSON text. HTTP providers
     * ignore both. */
    const char *task;
    const char *task_input;
    /* task_input already parsed (borrowed; optional): the builtin provider
     * reads it instead of parsing the text again. */
    const struct cJSON *task_doc;
} qg_ai_request;

/* ---- streaming ---- */

typedef enum {
    QG_AI_DELTA_TEXT,      /* text: a fragment of the answer */
    QG_AI_DELTA_TOOL_CALL, /* text: a fragment of call `index`'s arguments; id and
                              name are set on the call's first delta */
} qg_ai_delta_kind;

typedef struct qg_ai_delta {
    qg_ai_delta_kind kind;
    int index; /* tool call index, 0-based */
    const char *id;
    const char *name;
    const char *text;
    size_t len;
} qg_ai_delta;

/* Called on the transport thread as fragments arrive, in order, never
 * concurrently for one call. Must not block. */
typedef void (*qg_ai_stream_fn)(void *ud, const qg_ai_delta *d);

/* ---- responses and errors ---- */

typedef struct qg_ai_usage {
    int64_t input;  /* prompt tokens, cached ones included */
    int64_t output; /* completion tokens */
    int64_t cached; /* prompt tokens served from the provider's cache */
} qg_ai_usage;

typedef enum {
    QG_AI_OK = 0,
    QG_AI_EAUTH,       /* 401/403: bad or missing key */
    QG_AI_ERATE,       /* 429: rate-limited (retry_after_ms when the provider said) */
    QG_AI_EOVERLOADED, /* 503/529, "overloaded" */
    QG_AI_EBADREQ,     /* 400/404/422: the request is wrong; retrying will not help */
    QG_AI_ECONTEXT,    /* the prompt is longer than the model's context */
    QG_AI_ETIMEOUT,    /* connect or read timeout */
    QG_AI_ENETWORK,    /* connection refused, reset, DNS */
    QG_AI_ESERVER,     /* other 5xx */
    QG_AI_EPROTOCOL,   /* the reply could not be decoded */
    QG_AI_EBUDGET,     /* refused before sending: a budget is exhausted */
    QG_AI_ENOMODEL,    /* no such named model, or every deployment cooling down */
    QG_AI_ECANCELLED,  /* the caller cancelled */
    QG_AI_EOUTPUT,     /* structured output still invalid after the corrective retry */
} qg_ai_errkind;

/* Stable snake_case name ("rate_limited"); never NULL. */
const char *qg_ai_errkind_name(qg_ai_errkind k);
/* True for the kinds worth retrying on the same deployment (rate-limited,
 * overloaded, timeout, network, server). */
bool qg_ai_errkind_retryable(qg_ai_errkind k);
/* The status a call that ended in k returns: QG_OK, QG_EDENIED (budget),
 * QG_ENOTFOUND (no such model), QG_EINVAL (bad request, context too long),
 * QG_EAGAIN (anything the providers may get over). */
qg_status qg_ai_errkind_status(qg_ai_errkind k);

typedef struct qg_ai_error {
    qg_ai_errkind kind;
    int http_status;        /* 0 when no HTTP reply */
    int64_t retry_after_ms; /* -1 when not given */
    char message[256];      /* the provider's message, never a key */
} qg_ai_error;

typedef struct qg_ai_response {
    const char *text; /* "" when the model only called tools */
    qg_ai_tool_call *tool_calls;
    size_t n_tool_calls;
    const char *finish_reason; /* normalised: "stop", "length", "tool_calls", "content_filter" */
    const char *model;         /* what the provider says answered, or NULL */
    qg_ai_usage usage;
    qg_ai_error error; /* kind QG_AI_OK on success */
} qg_ai_response;

/* ---- the layer ---- */

typedef struct qg_ai qg_ai;
typedef struct qg_ai_model qg_ai_model;   /* provider.h */
typedef struct qg_ai_router qg_ai_router; /* routing.h */

typedef struct qg_ai_call {
    /* who: usage and budgets (NULL for the server itself) */
    const char *user_id;
    const char *token_id; /* the API token the request came with, or NULL */
    /* which named model, deployment id, or "builtin"; NULL: "analyst" */
    const char *model;
    /* what: a template id and its parameters (a JSON object as text) ... */
    const char *template_id;
    const char *params_json;
    /* The same parameters already parsed (borrowed; optional, and when set
     * params_json must be its text): the render and the builtin provider
     * read it instead of each parsing params_json. */
    const struct cJSON *params;
    /* ... and/or a request. With a template, the rendered system prompt
     * replaces req.system and the rendered text is appended as the last user
     * message after req.messages. */
    qg_ai_request req;
    /* Structured output: the expected shape (ai/jsonfix.h syntax) or NULL. */
    const char *expect_shape;
    /* With expect_shape: also hand back the parsed answer (qg_ai_result.value)
     * so a caller that reads it does not parse json again. */
    bool want_value;
    qg_ai_stream_fn on_delta;
    void *ud;
    atomic_bool *cancel; /* may be NULL; checked between and during attempts */
} qg_ai_call;

typedef struct qg_ai_result {
    qg_ai_response resp;
    const char *model_name;    /* the named model asked for */
    const char *deployment_id; /* the deployment that answered */
    const char *provider;
    int template_version;  /* 0 without a template */
    int attempts;          /* HTTP attempts over all deployments */
    bool fell_back;        /* a later deployment than the first answered */
    bool builtin_fallback; /* structured output came from the builtin provider */
    const char *json;      /* the validated JSON answer (expect_shape), else NULL */
    struct cJSON *value;   /* json parsed (want_value; on QG_OK): the caller's, cJSON_Delete */
    double cost_usd;
    int64_t latency_ms;  /* whole call */
    int64_t overhead_us; /* latency minus time spent waiting on providers */
    int64_t upstream_us; /* time spent waiting on providers */
    char call_id[40];    /* the usage record's id */
} qg_ai_result;

typedef struct qg_store qg_store;
typedef struct qg_vault qg_vault;

typedef struct qg_ai_config {
    qg_store *store;         /* borrowed; outlives the layer */
    qg_vault *vault;         /* borrowed; deployment keys are vault secrets */
    const char *prompts_dir; /* default templates loaded on first start ("prompts") */
    int concurrency;         /* threads for qg_ai_start (QG_AI_CONCURRENCY) */
} qg_ai_config;

/* Builds the layer: the deployments and named models from the environment
 * (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, OLLAMA_HOST, ...) and
 * the database, the default prompt templates (loaded into the database when
 * missing), the transport thread. The caller owns *out (qg_ai_free). */
qg_status qg_ai_new(const qg_ai_config *cfg, qg_ai **out, qg_error *err);
/* Waits for calls in flight, then frees everything. NULL is a no-op. */
void qg_ai_free(qg_ai *ai);
/* Re-reads deployments and named models after an admin change. */
qg_status qg_ai_reload(qg_ai *ai, qg_error *err);
/* A copy of the named models (the caller frees *models with free()). */
qg_status qg_ai_list_models(qg_ai *ai, qg_ai_model **models, size_t *n);
/* The router, for health snapshots (admin API). Owned by ai. */
qg_ai_router *qg_ai_get_router(qg_ai *ai);
/* Waits until every call recorded so far is in the database (usage is
 * written by a background thread); readers of usage call it first. */
void qg_ai_flush(qg_ai *ai);

typedef struct qg_batcher qg_batcher;
/* Writes the usage records as ops of b (store/batch.h), the database's
 * group-commit writer, instead of in transactions of the layer's own:
 * SQLite has one writer at a time, and a second one beside the batcher
 * waits in SQLite's busy handler (1 ms and up) and makes the batcher
 * wait. NULL goes back to the layer's own transactions, after the batch
 * on its way through the batcher has committed; do that before freeing b. */
void qg_ai_use_batcher(qg_ai *ai, qg_batcher *b);
/* Appends per-deployment health gauges (Prometheus text) to out. */
qg_status qg_ai_health_metrics(qg_ai *ai, qg_buf *out);

/* Runs one call on the calling thread (it blocks; deltas arrive on the
 * transport thread). QG_OK when the model answered (out->resp is filled);
 * otherwise out->resp.error says why and the status is QG_EDENIED (budget),
 * QG_ENOTFOUND (no such model), QG_EINVAL (bad request, template parameter),
 * or QG_EAGAIN (the providers failed), with err naming the reason. The call
 * is recorded either way. Everything in *out lives in arena a. */
qg_status qg_ai_complete(qg_ai *ai, const qg_ai_call *call, qg_arena *a, qg_ai_result *out,
                         qg_error *err);

/* Runs qg_ai_complete on the layer's own pool and then calls done on that
 * thread; call (and everything it points to), a and out must stay valid
 * until done returns. QG_EAGAIN when shutting down. */
typedef void (*qg_ai_done_fn)(void *ud, qg_status rc, const qg_ai_result *out, const qg_error *err);
qg_status qg_ai_start(qg_ai *ai, const qg_ai_call *call, qg_arena *a, qg_ai_result *out,
                      qg_ai_done_fn done, void *ud);

#endif
