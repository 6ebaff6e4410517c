/*
 * docs.h - the documents service: ingest files and uploads into chunks
 * (chunk.h), embed them, and search them with citations.
 *
 * Storage (migration 5): doc_files (one row per document path), doc_chunks
 * (text, heading, line range, fingerprint, SimHash, vector as qg_vec_encode
 * text, duplicate_of), doc_meta (a generation counter bumped by every change
 * and the next index label). The vectors of canonical chunks live in an
 * in-memory qg_vindex (cosine; flat up to QG_DOCS_FLAT_MAX chunks, HNSW
 * above) rebuilt from the database at open and whenever the generation in
 * the database differs from the one the index was built at - so a CLI
 * ingest is seen by a running server at its next search (one cheap query
 * per search).
 *
 * Re-ingest: a file whose SHA-256 is unchanged is skipped; otherwise each of
 * its chunks whose fingerprint is already stored for that file is kept (its
 * position and heading updated, not re-embedded), new chunks are embedded,
 * and chunks no longer present are deleted. A new chunk whose SimHash is
 * within QG_SIMHASH_NEAR bits of a canonical chunk's (any file) is stored
 * as a link (duplicate_of, no vector); search cites the canonical chunk and
 * lists the duplicates' locations. When a canonical chunk goes, its
 * duplicates are linked to another near chunk or embedded themselves.
 *
 * Embedder: the offline qg_embed_text ("hash") unless embed_model names a
 * provider model of the AI layer (QG_DOCS_EMBED_MODEL). Chunks embedded by
 * another embedder are re-embedded when their file is ingested again and
 * are left out of the index until then.
 *
 * Threads: every function may be called from any thread; ingests are
 * serialised inside the service, searches run in parallel.
 */
#ifndef QG_MEMORY_DOCS_H
#define QG_MEMORY_DOCS_H

#include "ai/ai.h"
#include "store/store.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define QG_DOCS_SEARCH_MAX    50
#define QG_DOCS_FLAT_MAX      50000
#define QG_DOCS_FILE_MAX      (8u << 20) /* bytes of one document */
#define QG_DOCS_PATH_MAX      1024
#define QG_DOCS_QUERY_MAX     4096
#define QG_DOCS_EMBEDDER_HASH "hash"

typedef struct qg_docs qg_docs;

typedef struct qg_docs_config {
    qg_store *store;         /* borrowed; outlives the service */
    qg_ai *ai;               /* borrowed, may be NULL (then only the offline embedder) */
    const char *embed_model; /* NULL or "": the offline embedder */
    size_t chunk_max;        /* QG_DOCS_CHUNK_MAX; 0: QG_CHUNK_MAX_DEFAULT */
} qg_docs_config;

/* Opens the service and builds the index from the database. A provider
 * model without an AI layer is QG_EINVAL. The caller owns *out. */
qg_status qg_docs_open(const qg_docs_config *cfg, qg_docs **out, qg_error *err);
void qg_docs_free(qg_docs *d);
/* "hash" or the provider model's name. */
const char *qg_docs_embedder(const qg_docs *d);

typedef struct qg_docs_counts {
    int64_t files_seen, files_changed, files_unchanged, files_removed, files_skipped;
    int64_t chunks_added, chunks_kept, chunks_removed, chunks_linked;
    int64_t embedded; /* texts sent to the embedder */
} qg_docs_counts;

/* c as a JSON object with one member per field ("files_seen", ...) and
 * d's "embedder", as the CLI's --json and POST /api/docs print it; the
 * caller owns it. */
cJSON *qg_docs_counts_json(const qg_docs *d, const qg_docs_counts *c);

/* Ingests files and directories (recursively; hidden entries and files of
 * unsupported types inside a directory are skipped and counted, a named file
 * of an unsupported type is an error). Paths are stored absolute (realpath).
 * Indexed files under an ingested directory that are gone are removed; a
 * named path that no longer exists is removed from the index when it was
 * indexed (a file, or a directory's files) and an error otherwise. Counts
 * are added to *c. */
qg_status qg_docs_ingest_paths(qg_docs *d, const char *const *paths, size_t n, qg_docs_counts *c,
                               qg_error *err);

typedef struct qg_doc_upload {
    const char *path; /* virtual: relative, '/'-separated, no "." or ".." segments */
    const char *content;
    size_t len;
} qg_doc_upload;

/* Ingests uploaded documents (nothing is read from the filesystem). Paths
 * are checked first (QG_EINVAL naming the path and the reason); user_id
 * (may be NULL) is recorded as the uploader and for provider usage. */
qg_status qg_docs_ingest_uploads(qg_docs *d, const qg_doc_upload *docs, size_t n,
                                 const char *user_id, qg_docs_counts *c, qg_error *err);
/* Checks a virtual upload path; QG_EINVAL naming it and the reason. */
qg_status qg_docs_check_upload_path(const char *path, qg_error *err);

/* Removes one document (as listed) from the index; QG_ENOTFOUND when it
 * is not indexed. */
qg_status qg_docs_remove(qg_docs *d, const char *path, qg_docs_counts *c, qg_error *err);

typedef struct qg_docs_loc {
    const char *path;
    int line_start, line_end;
} qg_docs_loc;

typedef struct qg_docs_hit {
    const char *chunk_id, *path, *heading, *text;
    int seq, line_start, line_end;
    float score;       /* cosine similarity, 1 best */
    qg_docs_loc *dups; /* near-duplicates linked to this chunk */
    size_t ndups;
} qg_docs_hit;

/* The n (1..QG_DOCS_SEARCH_MAX) chunks closest to query, best first. The
 * hits and their strings belong to a. */
qg_status qg_docs_search(qg_docs *d, const char *query, size_t n, qg_arena *a, qg_docs_hit **out,
                         size_t *nout, qg_error *err);
/* {"query", "items":[{path, heading, line_start, line_end, score, chunk_id,
 * text, duplicates:[{path, line_start, line_end}]}]}, as the CLI's --json and
 * GET /api/docs/search print it; the caller owns the tree (NULL: out of
 * memory). */
cJSON *qg_docs_hits_json(const char *query, const qg_docs_hit *h, size_t n);

typedef struct qg_docs_file {
    const char *path, *format, *source, *sha256;
    int64_t size, mtime, chunks, ingested_at;
} qg_docs_file;

/* Every indexed document, by path; the array and strings belong to a. */
qg_status qg_docs_list(qg_docs *d, qg_arena *a, qg_docs_file **out, size_t *n, qg_error *err);

#endif
