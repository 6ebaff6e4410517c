/*
 * rowcache.c - memory rows kept in memory by seq (see rowcache.h).
 *
 * Each slot holds one row as a single allocation: the item with its
 * strings packed behind it. A put builds the copy outside the lock and
 * swaps it in; a get copies the strings into the caller's arena under the
 * stripe's lock (a few hundred bytes).
 */
#include "memory/rowcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 16

typedef struct cached {
    qg_mem_item it; /* its strings point into data */
    const char *user_id;
    char data[];
} cached;

typedef struct slot {
    uint64_t seq; /* 0: empty (seqs start at 1) */
    cached *row;
} slot;

struct qg_rowcache {
    size_t cap; /* a power of two */
    slot *slots;
    pthread_mutex_t mu[STRIPES];
    atomic_uint_fast64_t hits, misses;
};

qg_rowcache *qg_rowcache_new(size_t cap)
{
    if (!cap) return NULL;
    size_t c = 1;
    while (c < cap) c <<= 1;
    qg_rowcache *rc = qg_xcalloc(1, sizeof *rc);
    rc->cap = c;
    rc->slots = qg_xcalloc(c, sizeof *rc->slots);
    for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&rc->mu[i], NULL);
    return rc;
}

void qg_rowcache_free(qg_rowcache *rc)
{
    if (!rc) return;
    for (size_t i = 0; i < rc->cap; i++) free(rc->slots[i].row);
    for (int i = 0; i < STRIPES; i++) pthread_mutex_destroy(&rc->mu[i]);
    free(rc->slots);
    free(rc);
}

static size_t len_of(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Copies s to *at (advancing it); NULL stays NULL. */
static const char *pack(char **at, const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*at, s, n);
    const char *out = *at;
    *at += n;
    return out;
}

static cached *copy_row(const char *user_id, const qg_mem_item *it)
{
    size_t n = len_of(user_id) + len_of(it->collection) + len_of(it->text) + len_of(it->symbol) +
               len_of(it->timeframe) + len_of(it->signal_type) + len_of(it->session) +
               len_of(it->meta_json);
    cached *c = qg_xmalloc(sizeof *c + n);
    c->it = *it;
    c->it.score = 0;
    char *at = c->data;
    c->user_id = pack(&at, user_id);
    c->it.collection = pack(&at, it->collection);
    c->it.text = pack(&at, it->text);
    c->it.symbol = pack(&at, it->symbol);
    c->it.timeframe = pack(&at, it->timeframe);
    c->it.signal_type = pack(&at, it->signal_type);
    c->it.session = pack(&at, it->session);
    c->it.meta_json = pack(&at, it->meta_json);
    return c;
}

static pthread_mutex_t *stripe(qg_rowcache *rc, uint64_t seq)
{
    return &rc->mu[seq % STRIPES];
}

/* Swaps row (may be NULL) into seq's slot: replace any seq there, or only
 * seq itself (only_same: a drop). Returns what must be freed. */
static cached *swap_in(qg_rowcache *rc, uint64_t seq, cached *row, bool only_same)
{
    slot *s = &rc->slots[seq & (rc->cap - 1)];
    cached *old = NULL;
    pthread_mutex_lock(stripe(rc, seq));
    if (!only_same || s->seq == seq) {
        old = s->row;
        s->row = row;
        s->seq = row ? seq : 0;
    } else {
        old = row;
    }
    pthread_mutex_unlock(stripe(rc, seq));
    return old;
}

void qg_rowcache_put(qg_rowcache *rc, uint64_t seq, const char *user_id, const qg_mem_item *it)
{
    if (!rc || !seq || !user_id) return;
    free(swap_in(rc, seq, copy_row(user_id, it), false));
}

void qg_rowcache_drop(qg_rowcache *rc, uint64_t seq)
{
    if (!rc || !seq) return;
    free(swap_in(rc, seq, NULL, true));
}

bool qg_rowcache_get(qg_rowcache *rc, uint64_t seq, const char *user_id, qg_arena *a,
                     qg_mem_item *out)
{
    if (!rc || !seq || !user_id) return false;
    const slot *s = &rc->slots[seq & (rc->cap - 1)];
    bool hit = false;
    pthread_mutex_lock(stripe(rc, seq));
    if (s->seq == seq && s->row && strcmp(s->row->user_id, user_id) == 0) {
        const qg_mem_item *it = &s->row->it;
        *out = *it;
        out->collection = qg_arena_strdup(a, it->collection);
        out->text = qg_arena_strdup(a, it->text);
        out->symbol = qg_arena_strdup(a, it->symbol);
        out->timeframe = qg_arena_strdup(a, it->timeframe);
        out->signal_type = qg_arena_strdup(a, it->signal_type);
        out->session = qg_arena_strdup(a, it->session);
        out->meta_json = qg_arena_strdup(a, it->meta_json);
        hit = true;
    }
    pthread_mutex_unlock(stripe(rc, seq));
    atomic_fetch_add_explicit(hit ? &rc->hits : &rc->misses, 1, memory_order_relaxed);
    return hit;
}

void qg_rowcache_get_stats(qg_rowcache *rc, qg_rowcache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!rc) return;
    out->hits = atomic_load_explicit(&rc->hits, memory_order_relaxed);
    out->misses = atomic_load_explicit(&rc->misses, memory_order_relaxed);
    out->cap = rc->cap;
}
