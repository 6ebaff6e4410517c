/*
 * mem.h - the one allocation wrapper, arenas for request lifetimes, and
 * capped growable buffers.
 *
 * Library entry points use plain malloc and return QG_ENOMEM; programs (the
 * CLI, the server) use qg_xmalloc and friends, which abort with a message on
 * out-of-memory because there is nothing sensible left to do.
 *
 * An arena hands out memory from large chunks and frees it all at once
 * (nginx pools, h2o req->pool). A qg_buf grows up to a hard cap fixed at
 * init (curl's "too big" check) and reports QG_ERANGE past it.
 */
#ifndef QUANTGATE_MEM_H
#define QUANTGATE_MEM_H

#include <quantgate/status.h>

#include <stdarg.h>
#include <stddef.h>

/* Abort-on-failure allocators for programs. Never return NULL. */
void *qg_xmalloc(size_t n);
void *qg_xcalloc(size_t count, size_t size);
void *qg_xrealloc(void *p, size_t n);
char *qg_xstrdup(const char *s);

/* ---- arena ---- */
typedef struct qg_arena_chunk qg_arena_chunk;
typedef struct qg_arena {
    qg_arena_chunk *head;
    size_t chunk_size; /* default size of new chunks */
    size_t used;       /* bytes handed out, for accounting */
} qg_arena;

/* Prepares an empty arena; nothing is allocated until first use.
 * chunk_size 0 means 64 KiB. */
void qg_arena_init(qg_arena *a, size_t chunk_size);
/* Returns n bytes aligned to 16, owned by the arena (valid until reset or
 * free), or NULL on out-of-memory. */
void *qg_arena_alloc(qg_arena *a, size_t n);
/* Copies s (n bytes, then NUL) into the arena. NULL on out-of-memory. */
char *qg_arena_strndup(qg_arena *a, const char *s, size_t n);
/* A copy of s in the arena; NULL when s is NULL (or out of memory). */
char *qg_arena_strdup(qg_arena *a, const char *s);
char *qg_arena_sprintf(qg_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees every chunk; the arena can be reused afterwards. */
void qg_arena_free(qg_arena *a);

/* ---- capped buffer ---- */
typedef struct qg_buf {
    char *data; /* NUL-terminated when len > 0; owned by the buffer */
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
} qg_buf;

/* Initialises an empty buffer that may grow up to max bytes. */
void qg_buf_init(qg_buf *b, size_t max);
/* Appends n bytes; QG_ERANGE past the cap, QG_ENOMEM on allocation failure.
 * On failure the buffer keeps what it had. */
qg_status qg_buf_append(qg_buf *b, const void *p, size_t n);
/* Makes room for extra more bytes (and the NUL) now, so appending them later
 * allocates nothing: a buffer filled on another thread keeps its memory with
 * the thread that frees it. Same errors as qg_buf_append. */
qg_status qg_buf_reserve(qg_buf *b, size_t extra);
qg_status qg_buf_puts(qg_buf *b, const char *s);
qg_status qg_buf_printf(qg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
qg_status qg_buf_vprintf(qg_buf *b, const char *fmt, va_list ap);
/* Appends s with HTML special characters escaped. */
qg_status qg_buf_html(qg_buf *b, const char *s);
/* Appends s as a JSON string, quotes included ("null" for NULL). */
qg_status qg_buf_json_str(qg_buf *b, const char *s);
/* The two-character escape cJSON writes for c (quote, backslash, \b \f \n
 * \r \t), or NULL: another control byte is written as \u00XX, any other
 * byte as it is. */
const char *qg_json_escape_of(unsigned char c);
void qg_buf_reset(qg_buf *b);
void qg_buf_free(qg_buf *b);

#endif
