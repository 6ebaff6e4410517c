/*
 * openai_compat.h - the server side of the OpenAI Chat Completions wire
 * format, for quantgate's own POST /v1/chat/completions: turning an incoming
 * request into a qg_ai_request, and a qg_ai_response (or its stream of
 * deltas) back into the objects and Server-Sent Events the official OpenAI
 * clients expect (chat.completion, chat.completion.chunk, data: [DONE], the
 * {"error": {...}} shape).
 *
 * The chunk encoders append to a caller's qg_buf, one complete SSE event per
 * call, so the HTTP handler can flush whatever is buffered at any time.
 *
 * Also here: qg_openai_scrub_copy, the message sanitiser the OpenAI and
 * Ollama providers use on upstream error text.
 */
#ifndef QG_AI_OPENAI_COMPAT_H
#define QG_AI_OPENAI_COMPAT_H

#include "ai/ai.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Validates a Chat Completions request body and converts it. model (required),
 * messages (required, non-empty; system and developer messages are joined
 * into out->system; content is a string or an array of text parts), tools,
 * tool_choice, response_format (json_object and json_schema set json_mode),
 * max_tokens / max_completion_tokens, temperature, stream. Every string is
 * copied into arena a, so body may be freed afterwards; *model points into a.
 * QG_EINVAL with err naming the field ("messages[2].role: unknown role
 * \"foo\""). */
qg_status qg_openai_parse_request(const cJSON *body, qg_arena *a, qg_ai_request *out,
                                  const char **model /* OUT */, qg_error *err);

/* True when a streaming request asked for the final usage chunk
 * (stream_options.include_usage), which is then sent before data: [DONE]. */
bool qg_openai_wants_usage(const cJSON *body);

/* The non-streaming chat.completion object for r. The caller owns the result
 * (cJSON_Delete); NULL on out-of-memory. */
cJSON *qg_openai_completion_json(const qg_ai_response *r, const char *id, const char *model,
                                 int64_t created_s);

/* Streaming: each appends one complete "data: {...}\n\n" event to out.
 * chunk_delta: a text or tool-call fragment; first puts role "assistant" on
 * the stream's first chunk. A tool call's first fragment (d->id or d->name
 * set) carries index, id ("call_<index>" when d->id is NULL), type and
 * function.name; later ones only index and function.arguments. */
qg_status qg_openai_chunk_delta(qg_buf *out, const char *id, const char *model, int64_t created,
                                const qg_ai_delta *d, bool first);
/* The last choice chunk: an empty delta and the finish reason ("stop" when NULL). */
qg_status qg_openai_chunk_finish(qg_buf *out, const char *id, const char *model, int64_t created,
                                 const char *finish_reason);
/* The usage chunk of stream_options.include_usage: "choices": [] and usage. */
qg_status qg_openai_chunk_usage(qg_buf *out, const char *id, const char *model, int64_t created,
                                const qg_ai_usage *u);
/* An error inside a stream: data: {"error": {...}} (the openai clients throw it). */
qg_status qg_openai_chunk_error(qg_buf *out, const char *message, const char *type,
                                const char *code);
/* The terminator: "data: [DONE]\n\n". */
qg_status qg_openai_chunk_done(qg_buf *out);

/* {"error": {"message", "type", "param": null, "code"}}; code may be NULL
 * (JSON null). Caller owns the result (cJSON_Delete); NULL on out-of-memory. */
cJSON *qg_openai_error_json(const char *message, const char *type, const char *code);

/* How OpenAI itself would report an error kind: returns the HTTP status and
 * sets *type ("invalid_request_error", ...) and *code ("rate_limit_exceeded",
 * NULL when OpenAI has none); static strings. */
int qg_openai_error_status(qg_ai_errkind k, const char **type, const char **code);

/* Copies at most n bytes of an upstream error message into dst (cap bytes,
 * always NUL-terminated): control characters become spaces and anything
 * that looks like a credential ("sk-...", "Bearer ...", "AIza...", runs of
 * 40+ key characters) becomes "[redacted]", so a provider echoing a key
 * back never puts it in our errors or logs. */
void qg_openai_scrub_copy(char *dst, size_t cap, const char *src, size_t n);

#endif
