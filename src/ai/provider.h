/*
 * provider.h - what a provider is: an encoder of requests and a decoder of
 * responses, streams and errors for one wire format, behind one table
 * (SQLite's VFS, Redis's ConnectionType). Providers do no I/O: the
 * transport sends what encode built and feeds back what came in, so each
 * provider is tested on recorded bytes.
 *
 * Streams: the transport splits the body into events (Server-Sent Events or
 * newline-delimited JSON, as the provider's `framing` says) and calls
 * stream_event once per event. The provider reports what each event carries
 * through the qg_ai_stream_* helpers (stream.c), which forward deltas to the
 * caller and assemble the final qg_ai_response, so streamed and
 * non-streamed calls end with the same result.
 *
 * The builtin provider answers in-process through `complete` instead.
 */
#ifndef QG_AI_PROVIDER_H
#define QG_AI_PROVIDER_H

#include "ai/ai.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One place a named model can be served from. Plain data, copied freely. */
typedef struct qg_ai_deployment {
    char id[48];          /* "dep_<ulid>" from the admin API, "env-openai" from the environment */
    char model_name[64];  /* the named model it serves ("analyst") */
    char provider[16];    /* "openai", "anthropic", "gemini", "ollama", "builtin" */
    char model[128];      /* the provider's model id ("gpt-4o-mini") */
    char base_url[256];   /* "" = the provider's default */
    char key_ref[96];     /* vault secret name, "env:NAME", or "" (no key) */
    char api_version[32]; /* Azure OpenAI's api-version; "" otherwise */
    double price_in;      /* USD per million input tokens */
    double price_out;     /* USD per million output tokens */
    int64_t rpm;          /* requests per minute, 0 = unlimited */
    int64_t tpm;          /* tokens per minute, 0 = unlimited */
    int64_t connect_timeout_ms;
    int64_t read_timeout_ms; /* longest silence between two received bytes */
    int priority;            /* order inside the named model: lower first */
    bool enabled;
} qg_ai_deployment;

/* A named model: its deployments (by priority), then its fallback model. */
typedef struct qg_ai_model {
    char name[64];
    char fallback[64]; /* another named model tried after all deployments, or "" */
    char description[160];
} qg_ai_model;

#define QG_AI_MAX_HEADERS 12

typedef enum {
    QG_AI_FRAMING_SSE,    /* text/event-stream: "event:" and "data:" lines, blank line ends */
    QG_AI_FRAMING_NDJSON, /* one JSON object per line (Ollama) */
} qg_ai_framing;

/* An HTTP request built by a provider. Strings live in the arena passed to
 * encode; body is a qg_buf the caller frees. */
typedef struct qg_ai_http_req {
    const char *method; /* "POST" or "GET" */
    const char *url;
    const char *headers[QG_AI_MAX_HEADERS]; /* "Name: value" */
    int nheaders;
    qg_buf body;
} qg_ai_http_req;

/* Stream assembly state; created by qg_ai_stream_init, fed by the provider
 * through the helpers below, finished by qg_ai_stream_finish. */
#define QG_AI_MAX_TOOL_CALLS 16
typedef struct qg_ai_stream {
    qg_arena *arena;
    qg_ai_stream_fn on_delta; /* may be NULL */
    void *ud;
    qg_buf text;
    struct {
        char *id, *name; /* arena */
        qg_buf args;
        bool started;
    } calls[QG_AI_MAX_TOOL_CALLS];
    int ncalls; /* highest index seen + 1 */
    qg_ai_usage usage;
    const char *finish_reason; /* arena, normalised */
    const char *model;         /* arena */
    bool done;                 /* the provider saw the stream's end marker */
    qg_ai_error error;         /* an error event inside the stream */
    int pstate;                /* the provider's own scratch (e.g. Anthropic block index) */
    char pscratch[64];
} qg_ai_stream;

struct qg_ai_embed_reply;

typedef struct qg_ai_provider {
    const char *name;
    qg_ai_framing framing;
    /* Builds the HTTP request. api_key may be NULL or "" (local servers);
     * it goes into a header only, never into err. */
    qg_status (*encode)(const qg_ai_deployment *d, const char *api_key, const qg_ai_request *req,
                        qg_arena *a, qg_ai_http_req *out, qg_error *err);
    /* Decodes a complete 2xx body. On a body that is not the provider's
     * format: QG_EINVAL with out->error.kind QG_AI_EPROTOCOL. */
    qg_status (*decode)(const char *body, size_t n, qg_arena *a, qg_ai_response *out,
                        qg_error *err);
    /* One stream event: event is the SSE "event:" name or NULL; data is
     * the joined "data:" lines (SSE) or one line (NDJSON), not
     * NUL-terminated. QG_EINVAL on an undecodable event. */
    qg_status (*stream_event)(qg_ai_stream *st, const char *event, const char *data, size_t n,
                              qg_error *err);
    /* Classifies a non-2xx reply (body may be a JSON error object or
     * anything else); retry_after is the Retry-After header or NULL. */
    void (*decode_error)(int http_status, const char *retry_after, const char *body, size_t n,
                         qg_ai_error *out);
    /* In-process providers (builtin) answer here; NULL for HTTP ones. */
    qg_status (*complete)(const qg_ai_deployment *d, const qg_ai_request *req, qg_arena *a,
                          qg_ai_stream_fn on_delta, void *ud, qg_ai_response *out, qg_error *err);
    /* Embeddings (src/ai/embed.c); both NULL for providers without them
     * (builtin, anthropic). encode_embed builds the request for inputs[0..n)
     * (n >= 1), like encode. decode_embed decodes a 2xx body into out (the
     * vectors in input order, all of one dimension; out->usage.input < 0
     * when the provider reports no token count); QG_EINVAL with
     * out->error.kind QG_AI_EPROTOCOL on a body that is not the format.
     * Non-2xx replies go to decode_error, as for chat. */
    qg_status (*encode_embed)(const qg_ai_deployment *d, const char *api_key,
                              const char *const *inputs, size_t n, qg_arena *a, qg_ai_http_req *out,
                              qg_error *err);
    qg_status (*decode_embed)(const char *body, size_t n, qg_arena *a,
                              struct qg_ai_embed_reply *out, qg_error *err);
} qg_ai_provider;

/* A decoded embeddings reply (decode_embed). */
typedef struct qg_ai_embed_reply {
    float *vectors; /* n * dim floats in the arena, input order */
    size_t n, dim;
    qg_ai_usage usage; /* input tokens; input < 0: not reported */
    qg_ai_error error; /* kind QG_AI_OK when decoded */
} qg_ai_embed_reply;

/* For decode_embed (embed.c): copies the n JSON arrays of numbers vecs[i]
 * (in input order) into out->vectors (arena a), setting out->n and
 * out->dim. QG_EINVAL with out->error QG_AI_EPROTOCOL, naming who
 * ("openai") and the index, when one is missing, empty, not all numbers,
 * or of another dimension than the first. */
qg_status qg_ai_embed_take(qg_ai_embed_reply *out, qg_arena *a, const cJSON *const *vecs, size_t n,
                           const char *who, qg_error *err);

extern const qg_ai_provider qg_ai_provider_builtin;
extern const qg_ai_provider qg_ai_provider_openai;
extern const qg_ai_provider qg_ai_provider_anthropic;
extern const qg_ai_provider qg_ai_provider_gemini;
extern const qg_ai_provider qg_ai_provider_ollama;

/* The provider called name, or NULL. */
const qg_ai_provider *qg_ai_provider_find(const char *name);
/* The provider's default base URL ("https://api.openai.com/v1"). */
const char *qg_ai_provider_default_url(const char *name);

/* ---- stream assembly (stream.c), for providers ---- */
void qg_ai_stream_init(qg_ai_stream *st, qg_arena *a, qg_ai_stream_fn on_delta, void *ud);
/* A fragment of answer text: appended and forwarded. */
qg_status qg_ai_stream_text(qg_ai_stream *st, const char *s, size_t n);
/* A fragment of tool call `index`: id and name when the provider gives them
 * (first fragment), args a piece of the arguments JSON (may be empty). */
qg_status qg_ai_stream_tool(qg_ai_stream *st, int index, const char *id, const char *name,
                            const char *args, size_t n);
/* Usage as the provider reports it; fields < 0 are left unchanged (some
 * providers report input and output in different events). */
void qg_ai_stream_usage(qg_ai_stream *st, int64_t input, int64_t output, int64_t cached);
void qg_ai_stream_set_finish(qg_ai_stream *st, const char *normalised_reason);
void qg_ai_stream_set_model(qg_ai_stream *st, const char *model, size_t n);
/* Moves what was assembled into out (text, tool calls with "{}" for empty
 * arguments, usage, finish reason, model) and frees the buffers. */
void qg_ai_stream_finish(qg_ai_stream *st, qg_ai_response *out);

/* ---- framing (stream.c), for the transport and tests ---- */
typedef struct qg_ai_framer {
    qg_ai_framing framing;
    const qg_ai_provider *provider;
    qg_ai_stream *stream;
    qg_buf line; /* partial line */
    qg_buf data; /* SSE: data lines of the current event */
    char event[64];
    bool has_data; /* a "data:" line arrived for the current event */
    qg_status rc;  /* first failure; later input is ignored */
    qg_error err;
} qg_ai_framer;

void qg_ai_framer_init(qg_ai_framer *f, const qg_ai_provider *p, qg_ai_stream *st);
/* Feeds received bytes (any split). Returns the first failure. */
qg_status qg_ai_framer_feed(qg_ai_framer *f, const char *p, size_t n);
/* End of body: flushes a last event without its blank line. */
qg_status qg_ai_framer_end(qg_ai_framer *f);
void qg_ai_framer_free(qg_ai_framer *f);

/* ---- helpers shared by the providers (stream.c) ---- */
/* Parses a Retry-After value (delta-seconds or an HTTP date) into ms; -1. */
int64_t qg_ai_parse_retry_after(const char *v);
/* Classifies an HTTP status alone (the provider refines with the body). */
qg_ai_errkind qg_ai_errkind_from_status(int http_status);
/* Member key of o as a string (owned by o), or NULL when absent or not one. */
const char *qg_ai_json_str(const cJSON *o, const char *key);
/* Member key of o as an integer, or dflt when absent, not a number, or past
 * +-1e18 (no real count is; converting it would be undefined). */
int64_t qg_ai_json_int(const cJSON *o, const char *key, int64_t dflt);
/* True when s holds a control character (CR, LF, ...): such a key or value
 * must not go into a header, where it could smuggle in another one. */
bool qg_ai_has_ctl(const char *s);
/* Prints root (NULL: out of memory) into body, the request body every
 * encoder ends with; errors name `who` (the provider) and the reason. */
qg_status qg_ai_body_from_json(const cJSON *root, const char *who, qg_buf *body, qg_error *err);
/* {"model": model, "input": [inputs...]} into body: the embeddings request
 * both OpenAI's /embeddings and Ollama's /api/embed take. */
qg_status qg_ai_embed_input_body(const char *who, const char *model, const char *const *inputs,
                                 size_t n, qg_buf *body, qg_error *err);

#endif
