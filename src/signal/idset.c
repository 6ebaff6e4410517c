/*
 * idset.c - the pipeline's set of signal ids (idset.h): chained hashing
 * with incremental doubling.
 *
 * While growing, an id is either in the new chains or in an old chain at
 * or after old_next (the chains before it have moved). Every operation
 * first moves IDSET_MOVE_STEP old chains, so a doubling from n chains
 * ends within n / IDSET_MOVE_STEP operations, long before the next one is
 * due (that needs n more ids); should it still be under way, it is
 * finished first.
 */
#include "signal/idset.h"

#include <quantgate/hash.h>
#include <quantgate/mem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Old chains moved per operation: about a microsecond of work each. */
#define IDSET_MOVE_STEP 64

void qg_idset_init(qg_idset *s, size_t initial_chains)
{
    memset(s, 0, sizeof *s);
    s->nchains = 1;
    while (s->nchains < initial_chains) s->nchains *= 2;
    s->chains = qg_xcalloc(s->nchains, sizeof *s->chains);
}

static qg_idset_node **chain_of(qg_idset *s, uint64_t h)
{
    return &s->chains[h & (s->nchains - 1)];
}

static void move_some(qg_idset *s, size_t nchains)
{
    for (; nchains > 0 && s->old_next < s->nold; nchains--, s->old_next++)
        for (qg_idset_node *n = s->old[s->old_next], *nx; n; n = nx) {
            nx = n->next;
            qg_idset_node **c = chain_of(s, n->hash);
            n->next = *c;
            *c = n;
        }
    if (s->old && s->old_next == s->nold) {
        free(s->old);
        s->old = NULL;
        s->nold = s->old_next = 0;
    }
}

static void grow(qg_idset *s)
{
    move_some(s, SIZE_MAX);
    s->old = s->chains;
    s->nold = s->nchains;
    s->old_next = 0;
    s->nchains *= 2;
    s->chains = qg_xcalloc(s->nchains, sizeof *s->chains);
}

static qg_idset_node **find_in(qg_idset_node **pp, const char *id, uint64_t h)
{
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->id, id))) pp = &(*pp)->next;
    return *pp ? pp : NULL;
}

/* Where id's node is linked, or NULL; moves a step of old chains first. */
static qg_idset_node **find(qg_idset *s, const char *id, uint64_t h)
{
    move_some(s, IDSET_MOVE_STEP);
    qg_idset_node **pp = find_in(chain_of(s, h), id, h);
    if (pp || !s->old) return pp;
    size_t slot = h & (s->nold - 1);
    return slot < s->old_next ? NULL : find_in(&s->old[slot], id, h);
}

static uint64_t hash_of(const char *id)
{
    return qg_fnv1a_str(QG_FNV1A_BASIS, id);
}

bool qg_idset_add(qg_idset *s, const char *id)
{
    uint64_t h = hash_of(id);
    if (find(s, id, h)) return false;
    if (s->count >= s->nchains) grow(s);
    qg_idset_node *n = qg_xcalloc(1, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", id);
    n->hash = h;
    qg_idset_node **c = chain_of(s, h);
    n->next = *c;
    *c = n;
    s->count++;
    return true;
}

bool qg_idset_remove(qg_idset *s, const char *id)
{
    qg_idset_node **pp = find(s, id, hash_of(id));
    if (!pp) return false;
    qg_idset_node *n = *pp;
    *pp = n->next;
    free(n);
    s->count--;
    return true;
}

bool qg_idset_has(qg_idset *s, const char *id)
{
    return find(s, id, hash_of(id)) != NULL;
}

bool qg_idset_growing(const qg_idset *s)
{
    return s->old != NULL;
}

void qg_idset_free(qg_idset *s)
{
    move_some(s, SIZE_MAX);
    for (size_t i = 0; s->chains && i < s->nchains; i++)
        for (qg_idset_node *n = s->chains[i], *nx; n; n = nx) {
            nx = n->next;
            free(n);
        }
    free(s->chains);
    memset(s, 0, sizeof *s);
}
