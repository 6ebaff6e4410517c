/*
 * chunk.h - documents cut into searchable chunks, and their fingerprints.
 *
 * A document's format comes from its file name's extension (Markdown, plain
 * text, HTML, MQL5, Pine Script, C); anything else is refused with a message
 * naming the extension and the supported ones. Each format has its own
 * boundaries:
 *   Markdown  at ATX (#) and setext (=== / ---) headings, never inside fenced
 *             code; the chunk's heading is the path "A > B > C".
 *   text      at blank lines (paragraphs); a paragraph shorter than
 *             QG_CHUNK_SHORT characters joins the next one.
 *   HTML      tags stripped (script and style content dropped, common
 *             entities decoded, every newline kept so line numbers stay
 *             those of the file); h1-h6 are boundaries and headings as in
 *             Markdown.
 *   code      MQL5, C: at top-level definitions (functions, structs, classes,
 *             enums: a brace block at depth 0); Pine: at //@version and the
 *             indicator()/strategy()/library() declaration, function
 *             definitions `name(args) =>` with their indented body, and
 *             `type` blocks. The comment block right above a definition goes
 *             with it; other top-level lines form "(top level)" chunks.
 * Every chunk is at most max_chars bytes: a longer section is split at line
 * boundaries (at a blank line when one is in the second half of the piece; a
 * single longer line is cut at a UTF-8 character boundary). Lines are
 * 1-based and inclusive. Chunks with no visible text are dropped.
 *
 * Fingerprint: SHA-256 (hex) of the normalised text - lower-cased, every
 * whitespace run collapsed to one space, trimmed - so re-indenting or
 * re-wrapping a chunk keeps its fingerprint.
 * SimHash: 64 bits over the word 3-shingles of the normalised text (words:
 * runs of letters and digits; a text of fewer than 3 words uses its words).
 * Two chunks are near-duplicates when their SimHashes differ in at most
 * QG_SIMHASH_NEAR bits.
 *
 * Pure functions: no I/O, no globals; memory comes from the caller's arena.
 */
#ifndef QG_MEMORY_CHUNK_H
#define QG_MEMORY_CHUNK_H

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <stddef.h>
#include <stdint.h>

typedef enum {
    QG_DOC_MARKDOWN,
    QG_DOC_TEXT,
    QG_DOC_HTML,
    QG_DOC_MQL5,
    QG_DOC_PINE,
    QG_DOC_C,
} qg_doc_format;

#define QG_CHUNK_MAX_DEFAULT 1500
#define QG_CHUNK_MAX_MIN     200
#define QG_CHUNK_MAX_MAX     20000
#define QG_CHUNK_SHORT       80
#define QG_CHUNK_HEADING_MAX 300
#define QG_SIMHASH_NEAR      3
#define QG_FINGERPRINT_HEX   65 /* 64 hex digits and the NUL */

/* "markdown", "text", "html", "mql5", "pine", "c". */
const char *qg_doc_format_name(qg_doc_format f);
/* The format of path by its extension (case-insensitive): .md .markdown,
 * .txt .text, .html .htm, .mq5 .mqh .mq4, .pine, .c .h. QG_EINVAL naming
 * the path and listing the supported extensions otherwise. */
qg_status qg_doc_format_of(const char *path, qg_doc_format *out, qg_error *err);

typedef struct qg_chunk {
    const char *heading; /* "A > B > C", a definition's signature, or "" */
    const char *text;    /* NUL-terminated, len bytes */
    size_t len;
    int line_start, line_end; /* 1-based, inclusive, lines of the file */
    char fingerprint[QG_FINGERPRINT_HEX];
    uint64_t simhash;
} qg_chunk;

/* Cuts text (len bytes, need not be NUL-terminated) into chunks of at most
 * max_chars bytes (0: QG_CHUNK_MAX_DEFAULT; else QG_CHUNK_MAX_MIN..
 * QG_CHUNK_MAX_MAX). *out (in the arena, document order) and every string
 * in it belong to a. Text that is not UTF-8 is still chunked (bytes). */
qg_status qg_chunk_document(qg_doc_format f, const char *text, size_t len, size_t max_chars,
                            qg_arena *a, qg_chunk **out, size_t *n, qg_error *err);

/* The normalised form of text (see above) into out (reset first). */
qg_status qg_chunk_normalize(const char *text, size_t len, qg_buf *out);
/* SHA-256 of the normalised text as 64 hex digits. */
void qg_chunk_fingerprint(const char *text, size_t len, char hex[QG_FINGERPRINT_HEX]);
/* SHA-256 of the bytes as they are (whole files), 64 hex digits. */
void qg_sha256_hex(const void *data, size_t len, char hex[QG_FINGERPRINT_HEX]);
uint64_t qg_simhash(const char *text, size_t len);
int qg_simhash_distance(uint64_t a, uint64_t b);

#endif
