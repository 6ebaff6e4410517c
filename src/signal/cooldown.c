/*
 * cooldown.c - per (symbol, signal type) cooldowns.
 *
 * A hash table of keys with the time of the last signal that passed, and an
 * LRU list through the same entries so that past QG_COOLDOWN_MAX_KEYS the
 * least recently passed key is evicted (it is also the one whose cooldown
 * ended first). One mutex guards it; the critical section is a hash lookup.
 *
 * Times are the caller's (tests drive the clock). A signal is cooling down
 * when |now - last| < cooldown: signals replayed out of order (a restart
 * resuming older ones) are judged by distance, not by sign.
 */
#include "signal/rules.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define QG_COOLDOWN_MAX_KEYS 100000
#define NBUCKETS             (1u << 17)
#define KEY_MAX              (QG_SIGNAL_SYMBOL_MAX + QG_SIGNAL_TYPE_MAX + 2)

typedef struct entry {
    char key[KEY_MAX];
    int64_t last_ms;
    uint32_t hash;
    struct entry *hnext;
    struct entry *prev, *next; /* LRU: head is the oldest */
} entry;

struct qg_cooldown {
    int64_t cooldown_ms;
    pthread_mutex_t mu;
    entry **buckets;
    entry *head, *tail;
    size_t n;
};

/* FNV-1a. */
static uint32_t hash_key(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

qg_cooldown *qg_cooldown_new(int64_t cooldown_ms)
{
    qg_cooldown *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->buckets = calloc(NBUCKETS, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->cooldown_ms = cooldown_ms < 0 ? 0 : cooldown_ms;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void lru_unlink(qg_cooldown *c, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(qg_cooldown *c, entry *e)
{
    e->prev = c->tail;
    e->next = NULL;
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
}

static void remove_entry(qg_cooldown *c, entry *e)
{
    entry **pp = &c->buckets[e->hash & (NBUCKETS - 1)];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    lru_unlink(c, e);
    free(e);
    c->n--;
}

void qg_cooldown_clear(qg_cooldown *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    while (c->head) remove_entry(c, c->head);
    pthread_mutex_unlock(&c->mu);
}

void qg_cooldown_free(qg_cooldown *c)
{
    if (!c) return;
    qg_cooldown_clear(c);
    pthread_mutex_destroy(&c->mu);
    free(c->buckets);
    free(c);
}

bool qg_cooldown_take(qg_cooldown *c, const char *symbol, const char *signal_type, int64_t now_ms,
                      int64_t *remaining_ms)
{
    if (remaining_ms) *remaining_ms = 0;
    if (!c || c->cooldown_ms <= 0) return true;
    char key[KEY_MAX];
    size_t a = strnlen(symbol, QG_SIGNAL_SYMBOL_MAX), b = strnlen(signal_type, QG_SIGNAL_TYPE_MAX);
    memcpy(key, symbol, a);
    key[a] = '\x1f'; /* a separator no symbol or type contains */
    memcpy(key + a + 1, signal_type, b);
    key[a + 1 + b] = 0;
    uint32_t h = hash_key(key);
    bool pass = true;
    pthread_mutex_lock(&c->mu);
    entry *e = c->buckets[h & (NBUCKETS - 1)];
    while (e && (e->hash != h || strcmp(e->key, key))) e = e->hnext;
    if (e) {
        int64_t d = now_ms - e->last_ms;
        if (d < 0) d = -d;
        if (d < c->cooldown_ms) {
            pass = false;
            if (remaining_ms) *remaining_ms = c->cooldown_ms - d;
        } else {
            e->last_ms = now_ms;
            lru_unlink(c, e);
            lru_push(c, e);
        }
    } else {
        if (c->n >= QG_COOLDOWN_MAX_KEYS) remove_entry(c, c->head);
        e = calloc(1, sizeof *e);
        if (e) { /* out of memory: let the signal pass rather than drop it */
            memcpy(e->key, key, a + b + 2);
            e->hash = h;
            e->last_ms = now_ms;
            e->hnext = c->buckets[h & (NBUCKETS - 1)];
            c->buckets[h & (NBUCKETS - 1)] = e;
            lru_push(c, e);
            c->n++;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return pass;
}
