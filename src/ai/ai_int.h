/*
 * ai_int.h - the AI layer's internals shared between its own files (ai.c
 * and embed.c): the pieces a second kind of call (embeddings) needs to route,
 * authenticate and record like a chat call. Not for use outside src/ai/.
 */
#ifndef QG_AI_INT_H
#define QG_AI_INT_H

#include "ai/ai.h"
#include "ai/provider.h"
#include "ai/routing.h"
#include "ai/transport.h"
#include "ai/usage.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

/* Borrowed from ai; valid until qg_ai_free. */
qg_store *qg_ai_store(qg_ai *ai);
qg_ai_transport *qg_ai_get_transport(qg_ai *ai);

/* The API key of deployment d (vault secret or environment variable) into
 * out; "" when it has none. Logs (without the key) and fails when the
 * secret cannot be read. */
qg_status qg_ai_resolve_key(qg_ai *ai, const qg_ai_deployment *d, char *out, size_t cap);

/* Queues r for the background usage writer (strings are copied), the same
 * path chat calls take: ai_calls row, usage totals, metrics (overhead_us:
 * the time quantgate itself spent, for qg_ai_overhead_seconds). */
void qg_ai_record_call(qg_ai *ai, const qg_ai_call_record *r, int64_t overhead_us);

#endif
