/*
 * hnsw.c - the HNSW graph (placeholder until the graph lands).
 */
#include "memory/hnsw_int.h"

qg_status qg_hnsw_init(struct qg_vindex *ix)
{
    return QG_EINTERNAL;
}
void qg_hnsw_free(struct qg_vindex *ix) {}
qg_status qg_hnsw_insert(struct qg_vindex *ix, uint32_t slot, bool fresh)
{
    return QG_EINTERNAL;
}
qg_status qg_hnsw_search(const struct qg_vindex *ix, const float *q, size_t k, size_t ef,
                         qg_vfilter_fn filter, void *ud, qg_vhit *out, size_t *n)
{
    return QG_EINTERNAL;
}
size_t qg_hnsw_memory(const struct qg_vindex *ix)
{
    return 0;
}
qg_status qg_hnsw_grow(struct qg_vindex *ix, size_t oldcap, size_t newcap)
{
    return QG_EINTERNAL;
}
