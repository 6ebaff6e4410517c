/*
 * embed_take.c - qg_ai_embed_take (provider.h): the decoding helper the
 * providers' decode_embed share. Kept apart from embed.c (the call, which
 * needs the router, transport and store) so that what parses network bytes
 * links on its own, e.g. into fuzz/fuzz_ai_wire.c.
 */
#include "ai/provider.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#define EMBED_DIM_MAX 65536

static qg_status take_fail(qg_ai_embed_reply *out, qg_error *err, const char *who, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));

static qg_status take_fail(qg_ai_embed_reply *out, qg_error *err, const char *who, const char *fmt,
                           ...)
{
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    out->error.kind = QG_AI_EPROTOCOL;
    out->error.retry_after_ms = -1;
    snprintf(out->error.message, sizeof out->error.message, "%s: %s", who, why);
    out->vectors = NULL;
    out->n = out->dim = 0;
    return qg_error_set(err, QG_EINVAL, "%s: %s", who, why);
}

qg_status qg_ai_embed_take(qg_ai_embed_reply *out, qg_arena *a, const cJSON *const *vecs, size_t n,
                           const char *who, qg_error *err)
{
    if (n == 0) return take_fail(out, err, who, "the embeddings reply holds no vector");
    if (!cJSON_IsArray(vecs[0]) || cJSON_GetArraySize(vecs[0]) <= 0)
        return take_fail(out, err, who, "embedding 0 is missing or empty");
    size_t dim = (size_t)cJSON_GetArraySize(vecs[0]);
    if (dim > EMBED_DIM_MAX)
        return take_fail(out, err, who, "embedding 0 has %zu dimensions (more than %d)", dim,
                         EMBED_DIM_MAX);
    if (n > SIZE_MAX / sizeof(float) / dim) return take_fail(out, err, who, "too many embeddings");
    float *v = qg_arena_alloc(a, n * dim * sizeof(float));
    if (!v) return qg_error_set(err, QG_ENOMEM, "%s: out of memory decoding embeddings", who);
    for (size_t i = 0; i < n; i++) {
        if (!cJSON_IsArray(vecs[i]))
            return take_fail(out, err, who, "embedding %zu is missing or not an array", i);
        if ((size_t)cJSON_GetArraySize(vecs[i]) != dim)
            return take_fail(out, err, who, "embedding %zu has %d dimensions, embedding 0 has %zu",
                             i, cJSON_GetArraySize(vecs[i]), dim);
        size_t k = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, vecs[i])
        {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
                return take_fail(out, err, who, "embedding %zu: value %zu is not a finite number",
                                 i, k);
            v[i * dim + k++] = (float)x->valuedouble;
        }
    }
    out->vectors = v;
    out->n = n;
    out->dim = dim;
    return QG_OK;
}
