/*
 * ingest.c - durable accept of signals (see ingest.h).
 *
 * The in-memory part decides everything that needs no database: the
 * duplicate table (a chained hash of "c:<client id>" and "f:<fingerprint>"
 * keys with a FIFO list for expiry, so eviction is O(1) per insert) and the
 * token buckets. The database part is one op on the shared batcher that
 * inserts the signal row (and, for a signal ignored at ingest, its only
 * event); its done callback reports the outcome and hands accepted signals
 * to the pipeline. Nothing here blocks on I/O, so a webhook handler can
 * submit from any thread and return.
 */
#include "signal/ingest.h"

#include <quantgate/hash.h>
#include <quantgate/log.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEDUP_KEY_MAX (2 + QG_SIGNAL_FINGERPRINT_LEN + 1)
#define DEDUP_MAX     (1u << 20) /* entries kept at most, whatever the window */
#define SYMBOL_SLOTS  4096
#define SYMBOLS_MAX   65536 /* per-symbol buckets kept; past it they all start full again */
#define SPARE_OPS_MAX 256   /* finished ops kept for reuse (about 1.4 MB at most) */

/* ---- the duplicate table ---- */

typedef struct dedup_entry {
    struct dedup_entry *chain;         /* next in the hash bucket */
    struct dedup_entry *older, *newer; /* the FIFO by insertion time */
    char key[DEDUP_KEY_MAX];
    char id[QG_ID_MAX];
    int64_t at_ms;
} dedup_entry;

typedef struct dedup_table {
    dedup_entry **slots;
    size_t nslots, n;
    dedup_entry *oldest, *newest;
} dedup_table;

/* "<kind>:<value>", value cut to fit (a client id or a fingerprint always
 * fits). A copy, not snprintf: this runs twice for every accept. */
static void dedup_key(char key[DEDUP_KEY_MAX], char kind, const char *value)
{
    size_t n = value ? strnlen(value, DEDUP_KEY_MAX - 3) : 0;
    key[0] = kind;
    key[1] = ':';
    memcpy(key + 2, value, n);
    key[2 + n] = 0;
}

static dedup_entry *dedup_find(dedup_table *t, const char *key)
{
    for (dedup_entry *e = t->slots[qg_fnv1a_str(QG_FNV1A_BASIS, key) & (t->nslots - 1)]; e;
         e = e->chain)
        if (strcmp(e->key, key) == 0) return e;
    return NULL;
}

static void dedup_unlink(dedup_table *t, dedup_entry *e)
{
    dedup_entry **pp = &t->slots[qg_fnv1a_str(QG_FNV1A_BASIS, e->key) & (t->nslots - 1)];
    while (*pp != e) pp = &(*pp)->chain;
    *pp = e->chain;
    if (e->older)
        e->older->newer = e->newer;
    else
        t->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        t->newest = e->older;
    t->n--;
    free(e);
}

/* Drops entries older than the window (and the oldest beyond the cap). */
static void dedup_expire(dedup_table *t, int64_t now_ms, int64_t window_ms)
{
    while (t->oldest && (t->oldest->at_ms < now_ms - window_ms || t->n >= DEDUP_MAX))
        dedup_unlink(t, t->oldest);
}

static void dedup_put(dedup_table *t, const char *key, const char *id, int64_t at_ms)
{
    dedup_entry *e = qg_xcalloc(1, sizeof *e);
    memcpy(e->key, key, strnlen(key, sizeof e->key - 1));
    memcpy(e->id, id, strnlen(id, sizeof e->id - 1)); /* calloc'd: NUL-terminated */
    e->at_ms = at_ms;
    size_t slot = qg_fnv1a_str(QG_FNV1A_BASIS, key) & (t->nslots - 1);
    e->chain = t->slots[slot];
    t->slots[slot] = e;
    e->older = t->newest;
    if (t->newest)
        t->newest->newer = e;
    else
        t->oldest = e;
    t->newest = e;
    t->n++;
}

static void dedup_remove(dedup_table *t, const char *key, const char *id)
{
    dedup_entry *e = dedup_find(t, key);
    if (e && strcmp(e->id, id) == 0) dedup_unlink(t, e);
}

/* ---- token buckets ---- */

typedef struct bucket {
    double tokens;
    int64_t at_ms;
} bucket;

typedef struct symbol_bucket {
    struct symbol_bucket *chain;
    char symbol[QG_SIGNAL_SYMBOL_MAX + 1];
    bucket b;
} symbol_bucket;

/* Refills b at rate per second (burst: one second's worth, at least 1) and
 * takes a token; false with the whole seconds until the next one. */
static bool bucket_take(bucket *b, double rate, int64_t now_ms, int *retry_after_s)
{
    double burst = rate < 1 ? 1 : rate;
    if (b->at_ms == 0)
        b->tokens = burst;
    else if (now_ms > b->at_ms)
        b->tokens = fmin(burst, b->tokens + rate * (double)(now_ms - b->at_ms) / 1000.0);
    b->at_ms = now_ms > b->at_ms ? now_ms : b->at_ms;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return true;
    }
    *retry_after_s = (int)ceil((1 - b->tokens) / rate);
    if (*retry_after_s < 1) *retry_after_s = 1;
    return false;
}

/* ---- the ingest ---- */

struct qg_ingest {
    qg_ingest_config cfg;

    pthread_mutex_t dedup_mu;
    dedup_table dedup;

    pthread_mutex_t rate_mu;
    bucket global;
    symbol_bucket **symbols;
    size_t nsymbols;

    /* Finished ops for reuse: an op is made on an event loop and finished
     * on the writer thread, and that cross-thread malloc/free of 5 KB was
     * a tenth of the loop's time per webhook. */
    pthread_mutex_t spare_mu;
    struct ingest_op *spare; /* linked through next */
    size_t nspare;
};

/* One submitted signal on its way through the batcher. Everything before
 * sig is zeroed for each use; sig and payload are written whole. */
typedef struct ingest_op {
    struct ingest_op *next; /* in the spare list */
    qg_ingest *g;
    char owner[QG_ID_MAX];
    char fingerprint[QG_SIGNAL_FINGERPRINT_LEN + 1];
    int64_t now_ms;
    qg_ingest_outcome out;
    bool client_dup; /* the insert hit the client id's unique index */
    qg_ingest_done_fn done;
    void *ud;
    qg_signal sig;
    char payload[QG_SIGNAL_JSON_MAX]; /* the canonical JSON stored in signals.payload */
} ingest_op;

static ingest_op *op_new(qg_ingest *g)
{
    pthread_mutex_lock(&g->spare_mu);
    ingest_op *op = g->spare;
    if (op) {
        g->spare = op->next;
        g->nspare--;
    }
    pthread_mutex_unlock(&g->spare_mu);
    if (!op) op = qg_xmalloc(sizeof *op);
    memset(op, 0, offsetof(ingest_op, sig));
    op->g = g;
    return op;
}

static void op_release(ingest_op *op)
{
    qg_ingest *g = op->g;
    pthread_mutex_lock(&g->spare_mu);
    bool keep = g->nspare < SPARE_OPS_MAX;
    if (keep) {
        op->next = g->spare;
        g->spare = op;
        g->nspare++;
    }
    pthread_mutex_unlock(&g->spare_mu);
    if (!keep) free(op);
}

static const char *owner_or_null(const ingest_op *op)
{
    return op->owner[0] ? op->owner : NULL;
}

/* The event of a signal ignored at ingest (state and stage as in its row),
 * with the reason in its detail as every pipeline event has it. */
static qg_status insert_ignored_event(qg_conn *c, const ingest_op *op, const char *state,
                                      const char *stage, qg_error *err)
{
    char evt[QG_ID_MAX];
    qg_store_new_id("evt", evt, sizeof evt);
    qg_buf detail;
    qg_buf_init(&detail, 4096); /* the reason is a short sentence */
    (void)qg_buf_puts(&detail, "{\"reason\":");
    (void)qg_buf_json_str(&detail, op->out.reason);
    (void)qg_buf_puts(&detail, "}");
    qg_val e[] = {QG_VTEXT(evt),   QG_VTEXT(op->sig.id), QG_VINT(op->now_ms),
                  QG_VTEXT(state), QG_VTEXT(stage),      QG_VTEXT(detail.data)};
    qg_status rc = qg_conn_exec(c,
                                "INSERT INTO signal_events (id, signal_id, at, state, stage, "
                                "detail) VALUES (?,?,?,?,?,?)",
                                e, 6, NULL, err);
    qg_buf_free(&detail);
    return rc;
}

/* Inserts the signal row; a client id already stored (beyond the dedup
 * window) turns the op into a duplicate of that row. An accepted signal's
 * first event ("received" at ingest) is not stored: the row says all of it
 * (received_at), and a signal_events row costs every accept three more
 * B-tree inserts, a quarter of the writer's work per signal. GET
 * /api/signals/{id} shows it from the row. A signal ignored at ingest gets
 * its "filtered" event, which carries the reason. */
static qg_status apply_insert(qg_conn *c, void *arg, qg_error *err)
{
    ingest_op *op = arg;
    const qg_signal *s = &op->sig;
    bool ignored = op->out.result == QG_INGEST_IGNORED;
    const char *state = ignored ? "filtered" : "received";
    const char *stage = ignored ? "confidence" : "ingest";
    const char *reason = ignored ? op->out.reason : NULL;
    qg_val p[] = {QG_VTEXT(s->id),
                  QG_VTEXT(s->correlation_id),
                  s->client_id[0] ? QG_VTEXT(s->client_id) : QG_VNULL,
                  QG_VTEXT(op->fingerprint),
                  QG_VTEXT(qg_signal_source_name(s->source)),
                  owner_or_null(op) ? QG_VTEXT(op->owner) : QG_VNULL,
                  QG_VTEXT(s->symbol),
                  QG_VTEXT(s->timeframe),
                  QG_VTEXT(s->signal_type),
                  QG_VDBL(s->confidence),
                  QG_VINT(s->ts_ms),
                  QG_VTEXT(op->payload),
                  QG_VINT(op->now_ms),
                  QG_VTEXT(state),
                  QG_VINT(op->now_ms),
                  QG_VTEXT(stage),
                  reason ? QG_VTEXT(reason) : QG_VNULL};
    qg_status rc = qg_conn_exec(
        c,
        "INSERT INTO signals (id, correlation_id, client_id, fingerprint, source, owner_id, "
        "symbol, timeframe, signal_type, confidence, ts, payload, received_at, state, state_at, "
        "stage, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        p, sizeof p / sizeof p[0], NULL, err);
    if (rc == QG_EEXIST && s->client_id[0]) {
        op->client_dup = true;
        return QG_OK;
    }
    if (rc || !ignored) return rc;
    return insert_ignored_event(c, op, state, stage, err);
}

/* Looks up the stored signal behind a client id (on the writer's thread,
 * in its transaction's aftermath: a plain read). */
static void find_client_original(qg_ingest *g, ingest_op *op)
{
    qg_conn *c = NULL;
    qg_error err = {0};
    if (qg_store_acquire(g->cfg.store, &c, &err) == QG_OK) {
        qg_val p[] = {QG_VTEXT(op->sig.client_id)};
        qg_conn_query(c, "SELECT id FROM signals WHERE client_id = ?", p, 1, qg_row_take_id,
                      op->out.dup_of, &err);
        qg_store_release(g->cfg.store, c);
    }
}

static void forget_reservations(qg_ingest *g, const ingest_op *op)
{
    char key[DEDUP_KEY_MAX];
    pthread_mutex_lock(&g->dedup_mu);
    dedup_key(key, 'f', op->fingerprint);
    dedup_remove(&g->dedup, key, op->sig.id);
    if (op->sig.client_id[0]) {
        dedup_key(key, 'c', op->sig.client_id);
        dedup_remove(&g->dedup, key, op->sig.id);
    }
    pthread_mutex_unlock(&g->dedup_mu);
}

static void count(qg_ingest *g, qg_pipe_count what)
{
    if (g->cfg.pipeline) qg_pipeline_count(g->cfg.pipeline, what);
}

static void op_finish(ingest_op *op)
{
    op->done(op->ud, &op->out);
    op_release(op);
}

static void done_insert(void *arg, qg_status rc, const qg_error *err)
{
    ingest_op *op = arg;
    qg_ingest *g = op->g;
    if (rc) {
        forget_reservations(g, op);
        op->out.result = QG_INGEST_FAILED;
        op->out.err = err;
    } else if (op->client_dup) {
        forget_reservations(g, op);
        op->out.result = QG_INGEST_DUPLICATE;
        find_client_original(g, op);
        count(g, QG_PIPE_COUNT_DUPLICATE);
    } else if (op->out.result == QG_INGEST_ACCEPTED) {
        count(g, QG_PIPE_COUNT_ACCEPTED);
        if (g->cfg.pipeline) qg_pipeline_enqueue(g->cfg.pipeline, &op->sig);
    } else {
        count(g, QG_PIPE_COUNT_IGNORED);
    }
    op_finish(op);
}

/* A duplicate answers once everything before it is durable (the original
 * included), so "duplicate" never names a signal that could still be lost. */
static void done_barrier(void *arg, qg_status rc, const qg_error *err)
{
    ingest_op *op = arg;
    if (rc) {
        op->out.result = QG_INGEST_FAILED;
        op->out.err = err;
    }
    op_finish(op);
}

static void free_symbols(qg_ingest *g)
{
    for (size_t i = 0; i < SYMBOL_SLOTS; i++) {
        symbol_bucket *sb = g->symbols[i];
        while (sb) {
            symbol_bucket *next = sb->chain;
            free(sb);
            sb = next;
        }
        g->symbols[i] = NULL;
    }
    g->nsymbols = 0;
}

static bool rate_ok(qg_ingest *g, const char *symbol, int64_t now_ms, int *retry_after_s,
                    char *reason, size_t cap)
{
    bool ok = true;
    pthread_mutex_lock(&g->rate_mu);
    if (g->cfg.rate_global > 0 &&
        !bucket_take(&g->global, g->cfg.rate_global, now_ms, retry_after_s)) {
        snprintf(reason, cap, "over QG_WEBHOOK_RATE_GLOBAL (%g signals/s)", g->cfg.rate_global);
        ok = false;
    }
    if (ok && g->cfg.rate_per_symbol > 0) {
        size_t slot = qg_fnv1a_str(QG_FNV1A_BASIS, symbol) & (SYMBOL_SLOTS - 1);
        symbol_bucket *sb = g->symbols[slot];
        while (sb && strcmp(sb->symbol, symbol) != 0) sb = sb->chain;
        if (!sb && g->nsymbols >= SYMBOLS_MAX) {
            /* A client spraying symbols must not grow memory without end:
             * forget them all (each bucket restarts full, a generous reset). */
            free_symbols(g);
            slot = qg_fnv1a_str(QG_FNV1A_BASIS, symbol) & (SYMBOL_SLOTS - 1);
        }
        if (!sb) {
            sb = qg_xcalloc(1, sizeof *sb);
            snprintf(sb->symbol, sizeof sb->symbol, "%s", symbol);
            sb->chain = g->symbols[slot];
            g->symbols[slot] = sb;
            g->nsymbols++;
        }
        if (!bucket_take(&sb->b, g->cfg.rate_per_symbol, now_ms, retry_after_s)) {
            snprintf(reason, cap, "over QG_WEBHOOK_RATE_PER_SYMBOL (%g signals/s for %s)",
                     g->cfg.rate_per_symbol, symbol);
            ok = false;
        }
    }
    pthread_mutex_unlock(&g->rate_mu);
    return ok;
}

/* Under dedup_mu: the original's id when s repeats a client id or, within
 * the window, a payload; else NULL. */
static const char *find_duplicate(qg_ingest *g, const ingest_op *op)
{
    char key[DEDUP_KEY_MAX];
    dedup_expire(&g->dedup, op->now_ms, g->cfg.dedup_window_ms);
    if (op->sig.client_id[0]) {
        dedup_key(key, 'c', op->sig.client_id);
        dedup_entry *e = dedup_find(&g->dedup, key);
        if (e) return e->id;
        /* A new client id is a new alert, whatever its payload. */
        return NULL;
    }
    dedup_key(key, 'f', op->fingerprint);
    dedup_entry *e = dedup_find(&g->dedup, key);
    return e ? e->id : NULL;
}

static void reserve(qg_ingest *g, const ingest_op *op)
{
    char key[DEDUP_KEY_MAX];
    dedup_key(key, 'f', op->fingerprint);
    if (!dedup_find(&g->dedup, key)) dedup_put(&g->dedup, key, op->sig.id, op->now_ms);
    if (op->sig.client_id[0]) {
        dedup_key(key, 'c', op->sig.client_id);
        dedup_put(&g->dedup, key, op->sig.id, op->now_ms);
    }
}

/* True when op repeats an earlier signal (dup_of set). With reserve, a
 * new signal's keys are taken in the same step, so two copies racing in
 * cannot both pass. */
static bool check_duplicate(qg_ingest *g, ingest_op *op, bool reserve_keys)
{
    pthread_mutex_lock(&g->dedup_mu);
    const char *orig = find_duplicate(g, op);
    if (orig)
        snprintf(op->out.dup_of, sizeof op->out.dup_of, "%s", orig);
    else if (reserve_keys)
        reserve(g, op);
    pthread_mutex_unlock(&g->dedup_mu);
    return orig != NULL;
}

static void submit_duplicate(qg_ingest *g, ingest_op *op)
{
    op->out.result = QG_INGEST_DUPLICATE;
    count(g, QG_PIPE_COUNT_DUPLICATE);
    if (qg_batcher_submit_first(g->cfg.batcher, NULL, done_barrier, op) != QG_OK) op_finish(op);
}

void qg_ingest_submit(qg_ingest *g, const qg_signal *s, const char *owner_id, int64_t now_ms,
                      qg_ingest_done_fn done, void *ud)
{
    ingest_op *op = op_new(g);
    op->sig = *s;
    op->done = done;
    op->ud = ud;
    op->now_ms = now_ms ? now_ms : qg_time_now_ms();
    op->out.signal = &op->sig;
    snprintf(op->owner, sizeof op->owner, "%s", owner_id ? owner_id : "");
    if (!op->sig.id[0]) qg_store_new_id("sig", op->sig.id, sizeof op->sig.id);
    if (!op->sig.correlation_id[0])
        qg_store_new_id("cor", op->sig.correlation_id, sizeof op->sig.correlation_id);
    (void)qg_signal_canonical(&op->sig, op->payload, op->fingerprint);
    count(g, QG_PIPE_COUNT_RECEIVED);

    /* A retried alert must not eat the rate budget, so duplicates first. */
    if (check_duplicate(g, op, false)) {
        submit_duplicate(g, op);
        return;
    }
    if (!rate_ok(g, op->sig.symbol, op->now_ms, &op->out.retry_after_s, op->out.reason,
                 sizeof op->out.reason)) {
        op->out.result = QG_INGEST_RATE_LIMITED;
        count(g, QG_PIPE_COUNT_RATE_LIMITED);
        op_finish(op);
        return;
    }
    if (check_duplicate(g, op, true)) {
        submit_duplicate(g, op);
        return;
    }
    op->out.result = QG_INGEST_ACCEPTED;
    if (op->sig.confidence < g->cfg.min_confidence) {
        op->out.result = QG_INGEST_IGNORED;
        snprintf(op->out.reason, sizeof op->out.reason,
                 "confidence %g is below MIN_CONFIDENCE_SCORE %g", op->sig.confidence,
                 g->cfg.min_confidence);
    }
    qg_status rc = qg_batcher_submit_first(g->cfg.batcher, apply_insert, done_insert, op);
    if (rc) {
        static const qg_error busy = {.code = QG_EAGAIN,
                                      .msg = "the signal writer is full or stopping"};
        forget_reservations(g, op);
        op->out.result = QG_INGEST_FAILED;
        op->out.err = &busy;
        op_finish(op);
    }
}

/* ---- the blocking form ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished;
    qg_ingest_outcome *out;
    qg_signal *sig;
    qg_error err;
} waiter;

static void wait_done(void *ud, const qg_ingest_outcome *o)
{
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    *w->out = *o;
    *w->sig = *o->signal;
    w->out->signal = w->sig;
    if (o->err) {
        w->err = *o->err;
        w->out->err = &w->err;
    }
    w->finished = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static __thread qg_error wait_err; /* out->err of the blocking form lives here */

void qg_ingest_submit_wait(qg_ingest *g, const qg_signal *s, const char *owner_id, int64_t now_ms,
                           qg_ingest_outcome *out, qg_signal *sig_out)
{
    waiter w = {.out = out, .sig = sig_out};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    qg_ingest_submit(g, s, owner_id, now_ms, wait_done, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.finished) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (out->err) {
        wait_err = w.err;
        out->err = &wait_err;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
}

/* ---- lifetime ---- */

typedef struct {
    qg_ingest *g;
    size_t n;
} load_ctx;

static qg_status load_row(void *ud, const qg_row *row)
{
    load_ctx *l = ud;
    char key[DEDUP_KEY_MAX];
    const char *id = qg_row_text(row, 0);
    int64_t at = qg_row_int(row, 3);
    if (!qg_row_is_null(row, 1)) {
        dedup_key(key, 'c', qg_row_text(row, 1));
        dedup_put(&l->g->dedup, key, id, at);
    }
    dedup_key(key, 'f', qg_row_text(row, 2));
    if (!dedup_find(&l->g->dedup, key)) dedup_put(&l->g->dedup, key, id, at);
    l->n++;
    return QG_OK;
}

/* Refills the duplicate table from the signals received within the window,
 * oldest first (so the FIFO stays in time order). */
static qg_status load_window(qg_ingest *g, qg_error *err)
{
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(g->cfg.store, &c, err);
    if (rc) return rc;
    load_ctx l = {.g = g};
    qg_val p[] = {QG_VINT(qg_time_now_ms() - g->cfg.dedup_window_ms)};
    rc = qg_conn_query(c,
                       "SELECT id, client_id, fingerprint, received_at FROM signals "
                       "WHERE received_at >= ? ORDER BY received_at, id",
                       p, 1, load_row, &l, err);
    qg_store_release(g->cfg.store, c);
    if (!rc && l.n)
        qg_info("ingest: %zu signals of the last %lld s loaded for duplicate checks", l.n,
                (long long)(g->cfg.dedup_window_ms / 1000));
    return rc;
}

qg_status qg_ingest_new(const qg_ingest_config *cfg, qg_ingest **out, qg_error *err)
{
    if (!cfg->store || !cfg->batcher)
        return qg_error_set(err, QG_EINVAL, "ingest: a store and a batcher are required");
    if (cfg->rate_per_symbol < 0 || cfg->rate_global < 0)
        return qg_error_set(err, QG_EINVAL, "ingest: rate limits must be >= 0");
    qg_ingest *g = qg_xcalloc(1, sizeof *g);
    g->cfg = *cfg;
    pthread_mutex_init(&g->dedup_mu, NULL);
    pthread_mutex_init(&g->rate_mu, NULL);
    pthread_mutex_init(&g->spare_mu, NULL);
    /* Slots for every entry the table may hold, allocated once: doubling
     * rehashed every entry under dedup_mu, and the loops submitting
     * webhooks waited for it (28 ms at 262,144 entries, about twice that
     * at each doubling after). The pages of a calloc this size are mapped
     * on first touch, so an idle server does not pay for them. */
    g->dedup.nslots = DEDUP_MAX;
    g->dedup.slots = qg_xcalloc(g->dedup.nslots, sizeof *g->dedup.slots);
    g->symbols = qg_xcalloc(SYMBOL_SLOTS, sizeof *g->symbols);
    qg_status rc = load_window(g, err);
    if (rc) {
        qg_ingest_free(g);
        return rc;
    }
    *out = g;
    return QG_OK;
}

void qg_ingest_free(qg_ingest *g)
{
    if (!g) return;
    while (g->dedup.oldest) dedup_unlink(&g->dedup, g->dedup.oldest);
    free(g->dedup.slots);
    free_symbols(g);
    free(g->symbols);
    pthread_mutex_destroy(&g->dedup_mu);
    pthread_mutex_destroy(&g->rate_mu);
    while (g->spare) {
        ingest_op *next = g->spare->next;
        free(g->spare);
        g->spare = next;
    }
    pthread_mutex_destroy(&g->spare_mu);
    free(g);
}
