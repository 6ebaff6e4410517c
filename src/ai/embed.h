/*
 * embed.h - embeddings through the AI layer's providers: OpenAI-compatible
 * `/v1/embeddings`, Gemini `embedContent` (batchEmbedContents for several
 * inputs), Ollama `/api/embed`.
 *
 * A named model ("embed", or any name given to the admin API or
 * QG_AI_MODELS) routes to deployments exactly as chat calls do: priority,
 * cool-down, retries with backoff, fallback. Budgets are checked before
 * anything is sent, and every call is recorded in ai_calls (tokens, cost,
 * latency, outcome) like any other.
 */
#ifndef QG_AI_EMBED_H
#define QG_AI_EMBED_H

#include "ai/ai.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>

typedef struct qg_ai_embed_call {
    const char *user_id;  /* for budgets and usage, or NULL (system) */
    const char *token_id; /* the API token the request came with, or NULL */
    const char *model;    /* the named model */
    const char *const *inputs;
    size_t n_inputs; /* 1..QG_AI_EMBED_MAX_INPUTS */
} qg_ai_embed_call;

#define QG_AI_EMBED_MAX_INPUTS 256

typedef struct qg_ai_embed_result {
    float *vectors; /* n * dim floats, input order, in the caller's arena */
    size_t n, dim;
    qg_ai_usage usage;
    const char *deployment_id, *provider;
    double cost_usd;
    int attempts;
    qg_ai_error error;    /* kind QG_AI_OK on success */
    bool usage_estimated; /* the provider reported no token count (Gemini): usage.input is
                             characters / 4; the ai_calls row notes it in its error column */
} qg_ai_embed_result;

/* Runs one embedding call on the calling thread (it blocks). Statuses as
 * qg_ai_complete: QG_EDENIED (budget), QG_ENOTFOUND (no such model),
 * QG_EINVAL (bad input, or a deployment whose provider has no embeddings),
 * QG_EAGAIN (the providers failed), with err naming the reason. */
qg_status qg_ai_embed(qg_ai *ai, const qg_ai_embed_call *call, qg_arena *a, qg_ai_embed_result *out,
                      qg_error *err);

#endif
