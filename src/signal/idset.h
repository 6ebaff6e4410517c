/*
 * idset.h - a set of signal ids: the pipeline's record of the ids queued
 * or in flight, so a resume sweep never queues one twice.
 *
 * A chained hash that doubles its chains when it holds as many ids as
 * chains (a paused pipeline can hold millions). It grows incrementally,
 * like Redis's dict: after a doubling the old chains move into the new
 * table a few per operation, so no single add (on the webhook's accept
 * path) pays for moving every id at once, which took tens of
 * milliseconds at a few hundred thousand ids.
 *
 * Not thread-safe: the pipeline calls it under its queue mutex. Ids are
 * copied (at most QG_ID_MAX - 1 bytes).
 */
#ifndef QG_SIGNAL_IDSET_H
#define QG_SIGNAL_IDSET_H

#include "signal/signal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qg_idset_node {
    char id[QG_ID_MAX];
    uint64_t hash;
    struct qg_idset_node *next;
} qg_idset_node;

typedef struct qg_idset {
    qg_idset_node **chains; /* nchains (a power of two) */
    size_t nchains, count;
    /* while growing: the previous chains, moved over from old_next on
     * (NULL when not growing) */
    qg_idset_node **old;
    size_t nold, old_next;
} qg_idset;

/* initial_chains is rounded up to a power of two (at least 1). */
void qg_idset_init(qg_idset *s, size_t initial_chains);
/* Adds id; false when it is there already. */
bool qg_idset_add(qg_idset *s, const char *id);
/* Removes id; false when it was not there. */
bool qg_idset_remove(qg_idset *s, const char *id);
bool qg_idset_has(qg_idset *s, const char *id);
/* Whether a doubling is still moving chains over (for tests). */
bool qg_idset_growing(const qg_idset *s);
void qg_idset_free(qg_idset *s);

#endif
