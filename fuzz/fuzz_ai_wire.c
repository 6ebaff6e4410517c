/*
 * fuzz_ai_wire.c - libFuzzer target for what the HTTP providers (openai,
 * anthropic, gemini, ollama) parse from the network: whole replies, error
 * replies, and streams through the SSE/NDJSON framer.
 *
 * The first byte picks the provider (% 4) and the mode ((/ 4) % 4):
 *   0  decode: the rest is a 2xx body.
 *   1  decode_error: the next byte is the HTTP status (< 200: 400 + it;
 *      otherwise one of the statuses the providers treat specially), the one
 *      after is the Retry-After length L (% 40; 0 = no header), then L bytes
 *      of Retry-After, then the body.
 *   2  stream: the next two bytes give four chunk sizes (1-16, a nibble each,
 *      used in turn); the rest is fed to a framer in those chunks, then
 *      framer_end and stream_finish. The same bytes fed in one chunk must
 *      give the same result (status, text, tool calls, finish reason, usage).
 *   3  decode_embed: the rest is a 2xx embeddings body (providers without
 *      embeddings - anthropic - fall back to decode). A decoded reply must
 *      hold n >= 1 vectors of one dimension >= 1, every value finite, in
 *      the arena; a refused one must say QG_AI_EPROTOCOL and hold none.
 *
 * Every input is copied into its own heap block that is freed before the
 * result is checked, so a string that points into the input is a
 * use-after-free ASan reports; every string returned must be NUL-terminated
 * and live in the arena or be a string literal (a heap string outside the
 * arena would point into a freed cJSON tree or leak).
 */
#include "ai/provider.h"

#include <math.h>
#include <sanitizer/asan_interface.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Mirrors struct qg_arena_chunk in src/core/mem.c (private there): the
 * target walks the chunks to tell arena memory from other heap memory. */
struct qg_arena_chunk {
    qg_arena_chunk *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

static const char *const provider_names[] = {"openai", "anthropic", "gemini", "ollama"};

static bool in_arena(const qg_arena *a, const char *s)
{
    for (const qg_arena_chunk *c = a->head; c; c = c->next)
        if ((const unsigned char *)s >= c->data && (const unsigned char *)s < c->data + c->used)
            return true;
    return false;
}

/* NUL-terminated (strlen inside an arena chunk or a literal; ASan checks
 * the read) and owned by the arena unless it is a string literal. */
static void check_str(const qg_arena *a, const char *s)
{
    if (!s) return;
    size_t n = strlen(s);
    if (in_arena(a, s)) {
        if (!in_arena(a, s + n)) abort(); /* the NUL is inside the same allocation */
        return;
    }
    char name[64];
    void *region = NULL;
    size_t region_size = 0;
    const char *kind = __asan_locate_address((void *)s, name, sizeof name, &region, &region_size);
    if (!kind || strcmp(kind, "global")) abort();
}

static void check_error(const qg_ai_error *e)
{
    if (!memchr(e->message, 0, sizeof e->message)) abort();
}

static void check_response(const qg_arena *a, const qg_ai_response *r)
{
    check_str(a, r->text);
    check_str(a, r->finish_reason);
    check_str(a, r->model);
    if (r->n_tool_calls > QG_AI_MAX_TOOL_CALLS) abort();
    if (r->n_tool_calls && !r->tool_calls) abort();
    for (size_t i = 0; i < r->n_tool_calls; i++) {
        check_str(a, r->tool_calls[i].id);
        check_str(a, r->tool_calls[i].name);
        check_str(a, r->tool_calls[i].arguments);
    }
    check_error(&r->error);
}

static char *copy(const uint8_t *p, size_t n)
{
    char *s = malloc(n ? n : 1);
    if (s && n) memcpy(s, p, n);
    return s;
}

static void fuzz_decode(const qg_ai_provider *p, const uint8_t *in, size_t n)
{
    char *body = copy(in, n);
    if (!body) return;
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_response r;
    memset(&r, 0, sizeof r);
    qg_error err = {0};
    qg_status rc = p->decode(body, n, &a, &r, &err);
    free(body);
    check_error(&r.error);
    if (!rc) check_response(&a, &r);
    qg_arena_free(&a);
}

static void fuzz_decode_error(const qg_ai_provider *p, const uint8_t *in, size_t n)
{
    static const int special[] = {400, 401, 403, 404, 408, 409, 413, 422,
                                  429, 500, 502, 503, 504, 529, 0,   302};
    if (n < 2) return;
    int status = in[0] < 200 ? 400 + in[0] : special[in[0] % 16];
    size_t ra_len = in[1] % 40;
    in += 2, n -= 2;
    if (ra_len > n) ra_len = n;
    char *ra = NULL;
    if (ra_len) {
        ra = malloc(ra_len + 1);
        if (!ra) return;
        memcpy(ra, in, ra_len);
        ra[ra_len] = 0;
    }
    in += ra_len, n -= ra_len;
    char *body = copy(in, n);
    if (!body) {
        free(ra);
        return;
    }
    qg_ai_error e;
    memset(&e, 0x5a, sizeof e); /* decode_error must fill it all in */
    p->decode_error(status, ra, body, n, &e);
    free(body);
    free(ra);
    check_error(&e);
}

static void fuzz_decode_embed(const qg_ai_provider *p, const uint8_t *in, size_t n)
{
    if (!p->decode_embed) {
        fuzz_decode(p, in, n);
        return;
    }
    char *body = copy(in, n);
    if (!body) return;
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_embed_reply r;
    memset(&r, 0, sizeof r);
    qg_error err = {0};
    qg_status rc = p->decode_embed(body, n, &a, &r, &err);
    free(body);
    check_error(&r.error);
    if (!memchr(err.msg, 0, sizeof err.msg)) abort();
    if (rc == QG_OK) {
        if (r.n == 0 || r.dim == 0 || !r.vectors || r.error.kind != QG_AI_OK) abort();
        if (!in_arena(&a, (const char *)r.vectors) ||
            !in_arena(&a, (const char *)(r.vectors + r.n * r.dim) - 1))
            abort();
        for (size_t i = 0; i < r.n * r.dim; i++)
            if (!isfinite(r.vectors[i])) abort();
    } else if (rc == QG_EINVAL) {
        if (r.error.kind != QG_AI_EPROTOCOL || r.vectors || r.n || r.dim) abort();
    } else if (rc != QG_ENOMEM) {
        abort();
    }
    qg_arena_free(&a);
}

/* Touches every byte a delta hands out, so a delta pointing at freed or
 * out-of-range memory is reported. */
static void on_delta(void *ud, const qg_ai_delta *d)
{
    unsigned *sum = ud;
    for (size_t i = 0; i < d->len; i++) *sum += (unsigned char)d->text[i];
    if (d->id) *sum += (unsigned)strlen(d->id);
    if (d->name) *sum += (unsigned)strlen(d->name);
}

typedef struct {
    qg_status rc;
    qg_ai_response r;
} stream_result;

static void run_stream(const qg_ai_provider *p, qg_arena *a, const char *body, size_t n,
                       const uint8_t sizes[4], stream_result *out)
{
    unsigned sum = 0;
    qg_ai_stream st;
    qg_ai_framer f;
    qg_ai_stream_init(&st, a, on_delta, &sum);
    qg_ai_framer_init(&f, p, &st);
    qg_status rc = QG_OK;
    size_t at = 0;
    for (int k = 0; at < n && !rc; k++) {
        size_t step = sizes ? sizes[k % 4] : n;
        if (step > n - at) step = n - at;
        rc = qg_ai_framer_feed(&f, body + at, step);
        at += step;
    }
    qg_status end = qg_ai_framer_end(&f);
    if (!rc) rc = end;
    memset(&out->r, 0, sizeof out->r);
    qg_ai_stream_finish(&st, &out->r);
    qg_ai_framer_free(&f);
    out->rc = rc;
}

static bool same_str(const char *x, const char *y)
{
    return (!x && !y) || (x && y && !strcmp(x, y));
}

static void fuzz_stream(const qg_ai_provider *p, const uint8_t *in, size_t n)
{
    if (n < 2) return;
    uint8_t sizes[4] = {(uint8_t)((in[0] & 15) + 1), (uint8_t)((in[0] >> 4) + 1),
                        (uint8_t)((in[1] & 15) + 1), (uint8_t)((in[1] >> 4) + 1)};
    in += 2, n -= 2;
    char *body = copy(in, n);
    char *whole = copy(in, n);
    if (!body || !whole) {
        free(body);
        free(whole);
        return;
    }
    qg_arena a;
    qg_arena_init(&a, 0);
    stream_result split, one;
    run_stream(p, &a, body, n, sizes, &split);
    run_stream(p, &a, whole, n, NULL, &one);
    free(body);
    free(whole);
    check_response(&a, &split.r);
    check_response(&a, &one.r);
    const qg_ai_response *x = &split.r, *y = &one.r;
    if (split.rc != one.rc) abort();
    if (strcmp(x->text, y->text)) abort();
    if (x->n_tool_calls != y->n_tool_calls) abort();
    for (size_t i = 0; i < x->n_tool_calls; i++) {
        if (!same_str(x->tool_calls[i].name, y->tool_calls[i].name)) abort();
        if (!same_str(x->tool_calls[i].arguments, y->tool_calls[i].arguments)) abort();
    }
    if (!same_str(x->finish_reason, y->finish_reason)) abort();
    if (memcmp(&x->usage, &y->usage, sizeof x->usage)) abort();
    qg_arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) return 0;
    const qg_ai_provider *p = qg_ai_provider_find(provider_names[data[0] % 4]);
    if (!p) abort();
    switch ((data[0] / 4) % 4) {
    case 0:
        fuzz_decode(p, data + 1, size - 1);
        break;
    case 1:
        fuzz_decode_error(p, data + 1, size - 1);
        break;
    case 2:
        fuzz_stream(p, data + 1, size - 1);
        break;
    default:
        fuzz_decode_embed(p, data + 1, size - 1);
        break;
    }
    return 0;
}
