/*
 * mem.c - allocation wrapper, arenas and capped buffers.
 *
 * Arena invariant: every chunk is a header followed by its data; allocations
 * come from the head chunk, and a request larger than a chunk gets a chunk of
 * its own so a big allocation never wastes the rest of a small one.
 */
#include <quantgate/mem.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n)
{
    fprintf(stderr, "quantgate: out of memory allocating %zu bytes\n", n);
    abort();
}

void *qg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *qg_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *qg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *qg_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = qg_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* ---- arena ---- */

struct qg_arena_chunk {
    qg_arena_chunk *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

void qg_arena_init(qg_arena *a, size_t chunk_size)
{
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    a->used = 0;
}

void *qg_arena_alloc(qg_arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n) return NULL; /* overflow */
    qg_arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        size_t size = need > a->chunk_size ? need : a->chunk_size;
        qg_arena_chunk *nc = malloc(sizeof *nc + size);
        if (!nc) return NULL;
        nc->size = size;
        nc->used = 0;
        if (c && size > a->chunk_size) {
            /* Oversized request: keep the current chunk at the head so its
             * free space stays usable. */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    return p;
}

char *qg_arena_strndup(qg_arena *a, const char *s, size_t n)
{
    char *p = qg_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *qg_arena_strdup(qg_arena *a, const char *s)
{
    return s ? qg_arena_strndup(a, s, strlen(s)) : NULL;
}

char *qg_arena_sprintf(qg_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *p = qg_arena_alloc(a, (size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void qg_arena_free(qg_arena *a)
{
    qg_arena_chunk *c = a->head;
    while (c) {
        qg_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

/* ---- capped buffer ---- */

void qg_buf_init(qg_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

qg_status qg_buf_reserve(qg_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra) return QG_ERANGE;
    size_t need = b->len + extra + 1; /* room for the NUL */
    if (need <= b->cap) return QG_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p) return QG_ENOMEM;
    b->data = p;
    b->cap = cap;
    return QG_OK;
}

qg_status qg_buf_append(qg_buf *b, const void *p, size_t n)
{
    qg_status rc = qg_buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return QG_OK;
}

qg_status qg_buf_puts(qg_buf *b, const char *s)
{
    return qg_buf_append(b, s, strlen(s));
}

qg_status qg_buf_vprintf(qg_buf *b, const char *fmt, va_list ap)
{
    /* Printed straight into the room left when it fits (nearly always):
     * measuring first cost a second formatting pass every time. cap never
     * exceeds max + 1, so what fits is within max. */
    size_t room = b->cap - b->len;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(b->cap ? b->data + b->len : NULL, b->cap ? room : 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        if (b->cap) b->data[b->len] = '\0';
        return QG_EINVAL;
    }
    if ((size_t)n < room && b->cap) {
        b->len += (size_t)n;
        return QG_OK;
    }
    if (b->cap) b->data[b->len] = '\0'; /* undo the cut-off attempt */
    qg_status rc = qg_buf_reserve(b, (size_t)n);
    if (rc) return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return QG_OK;
}

qg_status qg_buf_printf(qg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qg_status rc = qg_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Escapes as cJSON does (quote, backslash, control characters; UTF-8 as
 * is), so text written here reads back like a cJSON_Print. */
const char *qg_json_escape_of(unsigned char c)
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    default:
        return NULL;
    }
}

qg_status qg_buf_json_str(qg_buf *b, const char *s)
{
    if (!s) return qg_buf_puts(b, "null");
    qg_status rc = qg_buf_puts(b, "\"");
    for (const char *p = s; *p && !rc;) {
        size_t n = 0;
        while (p[n] && p[n] != '"' && p[n] != '\\' && (unsigned char)p[n] >= 0x20) n++;
        if (n) rc = qg_buf_append(b, p, n);
        p += n;
        if (!*p || rc) break;
        unsigned char c = (unsigned char)*p++;
        const char *e = qg_json_escape_of(c);
        rc = e ? qg_buf_puts(b, e) : qg_buf_printf(b, "\\u%04x", c);
    }
    return rc ? rc : qg_buf_puts(b, "\"");
}

qg_status qg_buf_html(qg_buf *b, const char *s)
{
    qg_status rc = QG_OK;
    for (; *s && !rc; s++) {
        switch (*s) {
        case '<':
            rc = qg_buf_puts(b, "&lt;");
            break;
        case '>':
            rc = qg_buf_puts(b, "&gt;");
            break;
        case '&':
            rc = qg_buf_puts(b, "&amp;");
            break;
        case '"':
            rc = qg_buf_puts(b, "&quot;");
            break;
        case '\'':
            rc = qg_buf_puts(b, "&#39;");
            break;
        default:
            rc = qg_buf_append(b, s, 1);
        }
    }
    return rc;
}

void qg_buf_reset(qg_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void qg_buf_free(qg_buf *b)
{
    free(b->data);
    qg_buf_init(b, b->max);
}
