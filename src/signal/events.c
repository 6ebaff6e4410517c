/*
 * events.c - every write the pipeline makes, and the live event ring.
 *
 * Writes go through the shared group-commit batcher as ops: a state change
 * is one op (UPDATE the signals row, INSERT its signal_events row, and for
 * a parked signal the signal_dlq row), a delivery another. Workers submit
 * and go on (the next stage never depends on the commit); the batcher's
 * single writer keeps submission order, so a signal's "done" can never
 * commit before its deliveries. Only admin actions (replay, discard,
 * pause) wait for their commit.
 *
 * The ring keeps the last QG_PIPE_EVENTS_RING events as JSON lines with a
 * sequence number, for GET /api/signals/stream.
 */
#include "signal/pipeline_int.h"

#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef enum { OP_STATE, OP_DELIVERY } op_kind;

typedef struct op {
    op_kind kind;
    char signal_id[QG_ID_MAX];
    char row_id[QG_ID_MAX]; /* event or delivery id */
    int64_t at;
    char state[16], stage[16];
    char *reason, *detail, *error, *analysis, *plan_result;
    char session[QG_SESSION_NAME_MAX + 1];
    bool has_score;
    double score;
    int attempts;
    bool update_signal, dlq, dlq_delete;
    qg_delivery d;
    qg_pipeline *p;
    /* a memory row written in the same transaction (remember) */
    qg_mem_pending *mem;
    bool mem_written;
    qg_status apply_rc;
    qg_premember_fn cb;
    void *ud;
    struct op *then; /* a later state written by the same op (record_two) */
} op;

static void op_free(op *o)
{
    if (!o) return;
    op_free(o->then);
    qg_memory_add_finish(o->mem, false); /* never written: dropped */
    free(o->reason);
    free(o->detail);
    free(o->error);
    free(o->analysis);
    free(o->plan_result);
    free(o);
}

static char *dup_or_null(const char *s)
{
    return s ? qg_xstrdup(s) : NULL;
}

static qg_status apply_state(qg_conn *c, op *o, qg_error *err)
{
    qg_status rc;
    if (o->mem) {
        if ((rc = qg_memory_add_write(o->mem, c, err))) return rc;
        o->mem_written = true;
    }
    if (o->update_signal) {
        qg_val u[] = {QG_VTEXT(o->state),
                      QG_VINT(o->at),
                      QG_VTEXT(o->stage),
                      o->reason ? QG_VTEXT(o->reason) : QG_VNULL,
                      o->session[0] ? QG_VTEXT(o->session) : QG_VNULL,
                      o->has_score ? QG_VDBL(o->score) : QG_VNULL,
                      o->analysis ? QG_VTEXT(o->analysis) : QG_VNULL,
                      o->plan_result ? QG_VTEXT(o->plan_result) : QG_VNULL,
                      o->error ? QG_VINT(o->attempts) : QG_VNULL,
                      o->error ? QG_VTEXT(o->error) : QG_VNULL,
                      QG_VTEXT(o->signal_id)};
        rc = qg_conn_exec(c,
                          "UPDATE signals SET state = ?, state_at = ?, stage = ?, reason = ?, "
                          "session = COALESCE(?, session), score = COALESCE(?, score), "
                          "analysis = COALESCE(?, analysis), "
                          "plan_result = COALESCE(?, plan_result), "
                          "attempts = COALESCE(?, attempts), error = ? WHERE id = ?",
                          u, sizeof u / sizeof u[0], NULL, err);
        if (rc) return rc;
    }
    qg_val e[] = {QG_VTEXT(o->row_id), QG_VTEXT(o->signal_id),
                  QG_VINT(o->at),      QG_VTEXT(o->state),
                  QG_VTEXT(o->stage),  o->detail ? QG_VTEXT(o->detail) : QG_VNULL};
    rc = qg_conn_exec(c,
                      "INSERT INTO signal_events (id, signal_id, at, state, stage, detail) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      e, 6, NULL, err);
    if (rc) return rc;
    if (o->dlq || o->dlq_delete) {
        qg_val d[] = {QG_VTEXT(o->signal_id)};
        rc = qg_conn_exec(c, "DELETE FROM signal_dlq WHERE signal_id = ?", d, 1, NULL, err);
        if (rc) return rc;
    }
    if (o->dlq) {
        qg_val d[] = {QG_VTEXT(o->signal_id), QG_VTEXT(o->stage),
                      QG_VTEXT(o->error ? o->error : "unknown error"), QG_VINT(o->attempts),
                      QG_VINT(o->at)};
        rc = qg_conn_exec(c,
                          "INSERT INTO signal_dlq (signal_id, stage, error, attempts, parked_at) "
                          "VALUES (?, ?, ?, ?, ?)",
                          d, 5, NULL, err);
    }
    if (!rc && o->then) rc = apply_state(c, o->then, err);
    return rc;
}

static qg_status apply_delivery(qg_conn *c, op *o, qg_error *err)
{
    const qg_delivery *d = &o->d;
    /* target holds the delivery key (chat id or a hash prefix of the URL,
     * never a secret): resume matches on it to skip delivered targets.
     * label is the masked target people read (scheme://host/…last 4). */
    qg_val v[] = {QG_VTEXT(o->row_id),
                  QG_VTEXT(o->signal_id),
                  QG_VTEXT(d->channel),
                  QG_VTEXT(d->key[0] ? d->key : d->target),
                  QG_VTEXT(d->ok ? "sent" : "failed"),
                  QG_VINT(d->attempts),
                  d->http_status ? QG_VINT(d->http_status) : QG_VNULL,
                  d->error[0] ? QG_VTEXT(d->error) : QG_VNULL,
                  QG_VINT(d->at_ms ? d->at_ms : o->at),
                  QG_VTEXT(d->target)};
    return qg_conn_exec(c,
                        "INSERT INTO signal_deliveries (id, signal_id, channel, target, status, "
                        "attempts, http_status, error, at, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, ?)",
                        v, 10, NULL, err);
}

static qg_status op_apply(qg_conn *c, void *arg, qg_error *err)
{
    op *o = arg;
    o->apply_rc = o->kind == OP_STATE ? apply_state(c, o, err) : apply_delivery(c, o, err);
    return o->apply_rc;
}

static void op_done(void *arg, qg_status rc, const qg_error *err)
{
    op *o = arg;
    if (rc) {
        atomic_fetch_add_explicit(&o->p->n_write_errors, 1, memory_order_relaxed);
        qg_warn("signals: write for %s failed: %s", o->signal_id, err ? err->msg : "?");
    }
    if (o->mem) {
        /* The memory row committed when it was written and the batch
         * committed: a later statement of this op failing leaves the
         * batch (and the row) committed, a failed commit fails every op
         * with apply_rc still QG_OK. */
        bool committed = o->mem_written && (rc == QG_OK || o->apply_rc != QG_OK);
        /* Indexing is left to cb's thread: the writer only writes. */
        if (o->cb)
            o->cb(o->ud, o->mem, committed);
        else
            qg_memory_add_finish(o->mem, committed);
        o->mem = NULL;
    }
    op_free(o);
}

/* Submits o (async) or runs it (wait); o is consumed either way. */
static qg_status op_submit(qg_pipeline *p, op *o, bool wait, qg_error *err)
{
    o->p = p;
    if (wait) {
        qg_status rc = qg_batcher_run(p->cfg.batcher, op_apply, o, err);
        op_free(o);
        return rc;
    }
    /* A full batcher queue is back-pressure: wait a little, a few times. */
    for (int i = 0; i < 200; i++) {
        if (qg_batcher_submit(p->cfg.batcher, op_apply, op_done, o) == QG_OK) return QG_OK;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add_explicit(&p->n_write_errors, 1, memory_order_relaxed);
    qg_warn("signals: write for %s dropped: the batcher stays full", o->signal_id);
    op_free(o);
    return qg_error_set(err, QG_EAGAIN, "signals: the write queue is full");
}

static char *event_detail(const qg_pstate *st)
{
    if (!st->detail) { /* the common case, written without a document */
        if (!st->reason && !st->error) return NULL;
        qg_buf b;
        qg_buf_init(&b, 64 * 1024);
        const char *sep = "{";
        if (st->reason) {
            (void)qg_buf_puts(&b, "{\"reason\":");
            (void)qg_buf_json_str(&b, st->reason);
            sep = ",";
        }
        if (st->error) {
            (void)qg_buf_printf(&b, "%s\"error\":", sep);
            (void)qg_buf_json_str(&b, st->error);
            (void)qg_buf_printf(&b, ",\"attempts\":%d", st->attempts);
        }
        (void)qg_buf_puts(&b, "}");
        return b.data; /* owned by the caller now */
    }
    cJSON *d = st->detail ? cJSON_Parse(st->detail) : NULL;
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        d = cJSON_CreateObject();
    }
    if (st->reason && !cJSON_HasObjectItem(d, "reason"))
        cJSON_AddStringToObject(d, "reason", st->reason);
    if (st->error && !cJSON_HasObjectItem(d, "error")) {
        cJSON_AddStringToObject(d, "error", st->error);
        cJSON_AddNumberToObject(d, "attempts", st->attempts);
    }
    char *s = d->child ? qg_json_compact(d) : NULL; /* malloc'd: the caller's */
    cJSON_Delete(d);
    return s;
}

static op *state_op(qg_pipeline *p, qg_pjob *j, const qg_pstate *st)
{
    op *o = qg_xcalloc(1, sizeof *o);
    o->kind = OP_STATE;
    snprintf(o->signal_id, sizeof o->signal_id, "%s", j->sig.id);
    qg_store_new_id("evt", o->row_id, sizeof o->row_id);
    o->at = qg_time_now_ms();
    snprintf(o->state, sizeof o->state, "%s", st->state);
    snprintf(o->stage, sizeof o->stage, "%s", qg_pstage_name(st->stage));
    o->reason = dup_or_null(st->reason);
    o->detail = event_detail(st);
    o->error = dup_or_null(st->error);
    o->attempts = st->attempts;
    o->update_signal = st->update_signal;
    o->dlq = st->dlq;
    o->dlq_delete = st->dlq_delete;
    snprintf(o->session, sizeof o->session, "%s", j->session);
    o->has_score = j->has_score;
    o->score = j->score;
    if (st->update_signal && j->analysis_new) {
        o->analysis = dup_or_null(j->analysis);
        j->analysis_new = false;
    }
    if (st->update_signal && j->plan_new) {
        o->plan_result = dup_or_null(j->plan_result);
        j->plan_new = false;
    }
    qg_pipeline_push_event(p, j->sig.id, st->state, o->stage, st->reason, o->at);
    return o;
}

qg_status qg_pipeline_record(qg_pipeline *p, qg_pjob *j, const qg_pstate *st, bool wait,
                             qg_error *err)
{
    return op_submit(p, state_op(p, j, st), wait, err);
}

qg_status qg_pipeline_record_memory(qg_pipeline *p, qg_pjob *j, const qg_pstate *st,
                                    qg_mem_pending *pa, qg_premember_fn cb, void *ud, qg_error *err)
{
    op *o = state_op(p, j, st);
    o->mem = pa;
    o->cb = cb;
    o->ud = ud;
    o->p = p;
    /* The batcher may be full for a while: this runs on the rememberer,
     * which can wait (op_submit gives up after two seconds). */
    for (;;) {
        if (qg_batcher_submit(p->cfg.batcher, op_apply, op_done, o) == QG_OK) return QG_OK;
        if (atomic_load(&p->stop)) break;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    o->cb = NULL;
    op_free(o);
    return qg_error_set(err, QG_EAGAIN, "signals: the write queue is full (stopping)");
}

qg_status qg_pipeline_record_two(qg_pipeline *p, qg_pjob *j, const qg_pstate *first,
                                 const qg_pstate *then, qg_error *err)
{
    op *o = state_op(p, j, first);
    o->then = state_op(p, j, then);
    if (o->then->update_signal && o->update_signal) {
        /* The later UPDATE writes every column the earlier one would, so
         * only what the earlier one carried alone moves to it. */
        o->update_signal = false;
        if (!o->then->analysis) o->then->analysis = o->analysis, o->analysis = NULL;
        if (!o->then->plan_result) o->then->plan_result = o->plan_result, o->plan_result = NULL;
    }
    return op_submit(p, o, false, err);
}

void qg_pipeline_record_delivery(qg_pipeline *p, const char *signal_id, const qg_delivery *d)
{
    op *o = qg_xcalloc(1, sizeof *o);
    o->kind = OP_DELIVERY;
    snprintf(o->signal_id, sizeof o->signal_id, "%s", signal_id);
    qg_store_new_id("dlv", o->row_id, sizeof o->row_id);
    o->at = qg_time_now_ms();
    o->d = *d;
    qg_error err = {0};
    (void)op_submit(p, o, false, &err);
}

/* ---- the ring ---- */

void qg_pipeline_push_event(qg_pipeline *p, const char *signal_id, const char *state,
                            const char *stage, const char *reason, int64_t at)
{
    /* Everything but the sequence number is written outside the lock. */
    char iso[40];
    qg_time_format_iso(at, iso, sizeof iso);
    qg_buf b;
    qg_buf_init(&b, 64 * 1024);
    (void)qg_buf_puts(&b, ",\"signal_id\":");
    (void)qg_buf_json_str(&b, signal_id);
    (void)qg_buf_puts(&b, ",\"state\":");
    (void)qg_buf_json_str(&b, state);
    (void)qg_buf_puts(&b, ",\"stage\":");
    (void)qg_buf_json_str(&b, stage);
    (void)qg_buf_puts(&b, ",\"reason\":");
    (void)qg_buf_json_str(&b, reason);
    (void)qg_buf_puts(&b, ",\"at\":");
    (void)qg_buf_json_str(&b, iso);
    (void)qg_buf_puts(&b, "}");
    size_t cap = b.len + 32;
    char *json = qg_xmalloc(cap);
    pthread_mutex_lock(&p->ev_mu);
    uint64_t seq = ++p->ev_seq;
    snprintf(json, cap, "{\"seq\":%" PRIu64 "%s", seq, b.data ? b.data : "}");
    qg_pevent *slot = &p->ring[seq % QG_PIPE_EVENTS_RING];
    char *old = slot->json;
    slot->json = json;
    slot->seq = seq;
    pthread_mutex_unlock(&p->ev_mu);
    free(old);
    qg_buf_free(&b);
}

uint64_t qg_pipeline_events_since(qg_pipeline *p, uint64_t after, qg_buf *out, bool *lost)
{
    if (lost) *lost = false;
    if (!p) return after;
    pthread_mutex_lock(&p->ev_mu);
    uint64_t head = p->ev_seq;
    if (after > head) after = head; /* a cursor from before a restart */
    uint64_t oldest = head >= QG_PIPE_EVENTS_RING ? head - QG_PIPE_EVENTS_RING + 1 : 1;
    uint64_t from = after + 1;
    if (from < oldest) {
        if (lost) *lost = true;
        from = oldest;
    }
    uint64_t last = after;
    for (uint64_t s = from; s <= head; s++) {
        const qg_pevent *e = &p->ring[s % QG_PIPE_EVENTS_RING];
        if (e->seq != s || !e->json) continue;
        if (qg_buf_puts(out, e->json) || qg_buf_puts(out, "\n")) break;
        last = s;
    }
    pthread_mutex_unlock(&p->ev_mu);
    return last;
}

uint64_t qg_pipeline_events_head(qg_pipeline *p)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->ev_mu);
    uint64_t h = p->ev_seq;
    pthread_mutex_unlock(&p->ev_mu);
    return h;
}

void qg_pipeline_events_free(qg_pipeline *p)
{
    for (size_t i = 0; i < QG_PIPE_EVENTS_RING; i++) free(p->ring[i].json);
}
