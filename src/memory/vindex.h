/*
 * vindex.h - vector search inside the process: an exact (flat) index and an
 * HNSW graph index behind one type, with filters applied during the search.
 *
 * Vectors are float32, stored contiguously (one slab, dim floats per slot),
 * so the distance kernels are plain loops the compiler vectorises. Items are
 * named by the caller's 64-bit label (the memory and docs services map their
 * row ids to labels). Distances are "smaller is closer":
 *   cosine: 1 - cos(a, b)   (vectors are normalised on add and on search)
 *   dot:    -dot(a, b)
 *   l2:     squared Euclidean distance
 *
 * Filters (ChromaDB's `where`) are a predicate on the label, called while the
 * graph is walked: items that fail it still route the search but are never
 * returned, so a narrow filter still fills `k` results; when the graph walk
 * cannot fill k, the HNSW index finishes with an exact scan of the matching
 * items. The flat index checks the filter before computing a distance.
 *
 * Threads: any number of searches may run at once; add, remove, save need
 * exclusive access (the owning service holds a rwlock).
 */
#ifndef QG_MEMORY_VINDEX_H
#define QG_MEMORY_VINDEX_H

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { QG_VMETRIC_COSINE, QG_VMETRIC_DOT, QG_VMETRIC_L2 } qg_vmetric;

/* "cosine", "dot", "l2"; qg_vmetric_parse returns -1 for anything else. */
const char *qg_vmetric_name(qg_vmetric m);
int qg_vmetric_parse(const char *s);

/* Kernels over dim floats. */
float qg_vec_dot(const float *restrict a, const float *restrict b, size_t dim);
float qg_vec_l2sq(const float *restrict a, const float *restrict b, size_t dim);
/* Scales v to unit length; a zero vector stays zero. */
void qg_vec_normalize(float *v, size_t dim);
/* The distance of the metric (see the top of this file). */
float qg_vec_distance(qg_vmetric m, const float *a, const float *b, size_t dim);

/* Vectors as portable text for the store (TEXT columns in SQLite and
 * PostgreSQL): base64 of the float32 values, little-endian. encode appends to
 * out; decode writes exactly dim floats and fails naming the reason when the
 * text is not base64 or does not hold dim floats. */
qg_status qg_vec_encode(const float *v, size_t dim, qg_buf *out);
qg_status qg_vec_decode(const char *text, float *v, size_t dim, qg_error *err);

typedef enum { QG_VINDEX_FLAT, QG_VINDEX_HNSW } qg_vindex_kind;

typedef struct qg_vindex_params {
    qg_vindex_kind kind;
    qg_vmetric metric;
    size_t dim;          /* 1..4096 */
    int M;               /* HNSW: links per node on upper layers (2*M on layer 0); 0: 16 */
    int ef_construction; /* HNSW: candidate list while inserting; 0: 200 */
    int ef_search;       /* HNSW: default candidate list while searching; 0: 64 */
    uint64_t seed;       /* HNSW: level generator seed, so builds are reproducible */
} qg_vindex_params;

/* p with every 0 HNSW setting replaced by its default: what an index made
 * from p has (qg_vindex_get_params). */
qg_vindex_params qg_vindex_resolve_params(const qg_vindex_params *p);

typedef struct qg_vhit {
    uint64_t label;
    float dist;
} qg_vhit;

/* true keeps the item. Called from the searching thread. */
typedef bool (*qg_vfilter_fn)(void *ud, uint64_t label);

typedef struct qg_vindex qg_vindex;

/* The caller owns the index and frees it with qg_vindex_free. Errors name the
 * parameter and the reason. */
qg_status qg_vindex_new(const qg_vindex_params *p, qg_vindex **out, qg_error *err);
void qg_vindex_free(qg_vindex *ix);
const qg_vindex_params *qg_vindex_get_params(const qg_vindex *ix);

/* Adds label's vector (copied), or replaces it when label is present. */
qg_status qg_vindex_add(qg_vindex *ix, uint64_t label, const float *v, qg_error *err);
/* Removes label: QG_ENOTFOUND when absent. HNSW keeps the node as a routing
 * point marked deleted and reuses its slot on a later add. */
qg_status qg_vindex_remove(qg_vindex *ix, uint64_t label);
bool qg_vindex_contains(const qg_vindex *ix, uint64_t label);
size_t qg_vindex_count(const qg_vindex *ix);  /* live items */
size_t qg_vindex_memory(const qg_vindex *ix); /* bytes held by the index */

/* The k nearest live items to q, best first, into out (room for k); *n gets
 * how many (min(k, live items that pass the filter)). ef: the HNSW candidate
 * list for this search (0: the index default; raised to k when smaller);
 * ignored by the flat index. filter NULL keeps everything. */
qg_status qg_vindex_search(const qg_vindex *ix, const float *q, size_t k, int ef,
                           qg_vfilter_fn filter, void *ud, qg_vhit *out, size_t *n, qg_error *err);

/* Snapshots: save writes params, labels, vectors and the graph to path
 * atomically (a temporary file renamed over it); load reads one back,
 * checking magic, format version and sizes, and names what is wrong. The
 * caller owns the loaded index. */
qg_status qg_vindex_save(const qg_vindex *ix, const char *path, qg_error *err);

/* save in two steps, so that the slow one needs no lock on the index:
 * write_temp writes the whole snapshot to "<path>.tmp" (the caller keeps
 * ix from changing meanwhile), publish_temp syncs that file to disk and
 * renames it over path. Either one removes the temporary file when it
 * fails. */
qg_status qg_vindex_write_temp(const qg_vindex *ix, const char *path, qg_error *err);
qg_status qg_vindex_publish_temp(const char *path, qg_error *err);
qg_status qg_vindex_load(const char *path, qg_vindex **out, qg_error *err);

#endif
