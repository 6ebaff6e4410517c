/*
 * live.c - the live ICT detector table (live.h) and the event-to-signal
 * conversion shared by `quantgate detect --json` and POST /api/bars.
 *
 * The table is a fixed array searched linearly: it holds at most
 * QG_ICT_LIVE_MAX_KEYS (symbol, timeframe) pairs and a batch looks its key
 * up once. Order checks run over the whole batch before the first push so
 * a bad batch leaves the detector as it was.
 *
 * Durability: the detector's state is a function of the bars it saw, so
 * instead of serialising detectors the table stores each pair's newest
 * bars (detector_bars, through the signal writer's group commit, before
 * they reach the detector) and a start pushes them again with their
 * detections discarded: those were submitted when the bars first came.
 * The store keeps `keep` bars a pair, trimmed when it holds an eighth
 * more, so a post costs its inserts and, now and then, one DELETE.
 */
#include "signal/live.h"

#include <quantgate/hash.h>
#include <quantgate/config.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char symbol[QG_SIGNAL_SYMBOL_MAX + 1];
    char timeframe[QG_SIGNAL_TIMEFRAME_MAX + 1];
    qg_ict *det;
    int64_t last_ts; /* INT64_MIN before the first bar */
    int64_t stored;  /* its bars in detector_bars (when persisted) */
} live_key;

struct qg_ict_live {
    pthread_mutex_t mu;
    int64_t htf_ms;
    int swing; /* QG_DETECT_SWING */
    live_key *keys;
    size_t nkeys;
    qg_batcher *journal; /* stores the bars before they are pushed; NULL: memory only */
    int64_t keep;        /* bars kept a pair */
};

qg_status qg_ict_live_new(const char *htf, qg_ict_live **out, qg_error *err)
{
    *out = NULL;
    int64_t htf_ms = 0;
    if (htf && *htf) {
        qg_status rc = qg_timeframe_parse(htf, &htf_ms, err);
        if (rc) {
            qg_error_prefix(err, "QG_DETECT_HTF");
            return rc;
        }
    }
    int64_t swing = 5;
    qg_status rs = qg_config_int("QG_DETECT_SWING", 5, &swing, err);
    if (rs) return rs;
    if (swing < 1 || swing > 100)
        return qg_error_set(err, QG_EINVAL, "QG_DETECT_SWING: %lld is outside 1..100",
                            (long long)swing);
    qg_ict_live *l = calloc(1, sizeof *l);
    live_key *keys = calloc(QG_ICT_LIVE_MAX_KEYS, sizeof *keys);
    if (!l || !keys) {
        free(l);
        free(keys);
        return qg_error_set(err, QG_ENOMEM, "out of memory for the live detector");
    }
    pthread_mutex_init(&l->mu, NULL);
    l->htf_ms = htf_ms;
    l->swing = (int)swing;
    l->keys = keys;
    *out = l;
    return QG_OK;
}

void qg_ict_live_free(qg_ict_live *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->nkeys; i++) qg_ict_free(l->keys[i].det);
    free(l->keys);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

size_t qg_ict_live_keys(qg_ict_live *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->nkeys;
    pthread_mutex_unlock(&l->mu);
    return n;
}

static void upper_copy(char *out, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++) out[i] = (char)toupper((unsigned char)s[i]);
    out[i] = 0;
}

/* The key's entry, or NULL (the mutex is held; sym upper-cased). */
static live_key *find_key(qg_ict_live *l, const char *sym, const char *tf)
{
    for (size_t i = 0; i < l->nkeys; i++)
        if (strcmp(l->keys[i].symbol, sym) == 0 && strcmp(l->keys[i].timeframe, tf) == 0)
            return &l->keys[i];
    return NULL;
}

/* The key's entry, created on first use (the mutex is held). */
static qg_status key_of(qg_ict_live *l, const char *sym, const char *tf, live_key **out,
                        qg_error *err)
{
    if ((*out = find_key(l, sym, tf))) return QG_OK;
    if (l->nkeys == QG_ICT_LIVE_MAX_KEYS)
        return qg_error_set(err, QG_ERANGE,
                            "the live detector already tracks %d symbol/timeframe pairs",
                            QG_ICT_LIVE_MAX_KEYS);
    qg_ict_config cfg = {.swing_length = l->swing};
    int64_t tf_ms = 0;
    if (qg_timeframe_parse(tf, &tf_ms, NULL) == QG_OK) cfg.timeframe_ms = tf_ms;
    /* a higher timeframe not above the bars' own gives no bias */
    if (l->htf_ms && (!tf_ms || l->htf_ms > tf_ms)) cfg.htf_ms = l->htf_ms;
    live_key *k = &l->keys[l->nkeys];
    qg_status rc = qg_ict_new(&cfg, &k->det, err);
    if (rc) return rc;
    snprintf(k->symbol, sizeof k->symbol, "%s", sym);
    snprintf(k->timeframe, sizeof k->timeframe, "%s", tf);
    k->last_ts = INT64_MIN;
    l->nkeys++;
    *out = k;
    return QG_OK;
}

static qg_status check_order(const live_key *k, const char *sym, const char *tf, const qg_bar *bars,
                             size_t n, qg_error *err)
{
    int64_t prev = k ? k->last_ts : INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        if (bars[i].ts > prev) {
            prev = bars[i].ts;
            continue;
        }
        char a[40], b[40];
        qg_time_format_iso(bars[i].ts, a, sizeof a);
        qg_time_format_iso(prev, b, sizeof b);
        if (i == 0)
            return qg_error_set(err, QG_EINVAL,
                                "bars[0]: %s is not after the last bar of %s %s (%s)", a, sym, tf,
                                b);
        return qg_error_set(err, QG_EINVAL, "bars[%zu]: %s is not after bars[%zu] (%s)", i, a,
                            i - 1, b);
    }
    return QG_OK;
}

/* ---- durability ---- */

typedef struct bars_write {
    const char *symbol, *timeframe;
    const qg_bar *bars;
    size_t n;
    int64_t keep; /* > 0: then trim the pair to its newest keep bars */
} bars_write;

static qg_status apply_bars(qg_conn *c, void *arg, qg_error *err)
{
    const bars_write *w = arg;
    qg_status rc = QG_OK;
    for (size_t i = 0; i < w->n && !rc; i++) {
        const qg_bar *b = &w->bars[i];
        qg_val p[] = {QG_VTEXT(w->symbol), QG_VTEXT(w->timeframe), QG_VINT(b->ts),
                      QG_VDBL(b->open),    QG_VDBL(b->high),       QG_VDBL(b->low),
                      QG_VDBL(b->close),   QG_VDBL(b->volume)};
        rc = qg_conn_exec(c,
                          "INSERT INTO detector_bars (symbol, timeframe, ts, open, high, low, "
                          "close, volume) VALUES (?,?,?,?,?,?,?,?)",
                          p, 8, NULL, err);
    }
    if (rc || w->keep <= 0) return rc;
    qg_val t[] = {QG_VTEXT(w->symbol), QG_VTEXT(w->timeframe), QG_VTEXT(w->symbol),
                  QG_VTEXT(w->timeframe), QG_VINT(w->keep - 1)};
    return qg_conn_exec(c,
                        "DELETE FROM detector_bars WHERE symbol = ? AND timeframe = ? AND ts < "
                        "(SELECT ts FROM detector_bars WHERE symbol = ? AND timeframe = ? "
                        "ORDER BY ts DESC LIMIT 1 OFFSET ?)",
                        t, 5, NULL, err);
}

/* Stores a batch durably before the detector sees it (the mutex is held:
 * posts of bars are rare next to the writer's commit time). */
static qg_status store_bars(qg_ict_live *l, live_key *k, const qg_bar *bars, size_t n,
                            qg_error *err)
{
    bool trim = k->stored + (int64_t)n > l->keep + l->keep / 8;
    bars_write w = {.symbol = k->symbol,
                    .timeframe = k->timeframe,
                    .bars = bars,
                    .n = n,
                    .keep = trim ? l->keep : 0};
    qg_status rc = qg_batcher_run_whole(l->journal, apply_bars, &w, err);
    if (rc) {
        qg_error_prefix(err, "storing the bars of %s %s", k->symbol, k->timeframe);
        return rc;
    }
    k->stored = trim ? l->keep : k->stored + (int64_t)n;
    return QG_OK;
}

typedef struct restore_state {
    qg_ict_live *l;
    live_key *k; /* the pair being restored */
    bool skip;   /* its key could not be made: skip its rows */
    char sym[QG_SIGNAL_SYMBOL_MAX + 1], tf[QG_SIGNAL_TIMEFRAME_MAX + 1];
    size_t bars;
} restore_state;

/* One stored bar (rows come ordered by pair, then time). */
static qg_status restore_row(void *ud, const qg_row *row)
{
    restore_state *st = ud;
    const char *sym = qg_row_text(row, 0), *tf = qg_row_text(row, 1);
    if (!sym || !tf) return QG_OK;
    if (strcmp(sym, st->sym) || strcmp(tf, st->tf)) {
        snprintf(st->sym, sizeof st->sym, "%s", sym);
        snprintf(st->tf, sizeof st->tf, "%s", tf);
        qg_error err = {0};
        st->k = NULL;
        st->skip = key_of(st->l, st->sym, st->tf, &st->k, &err) != QG_OK;
        if (st->skip) qg_warn("live detector: %s %s not restored: %s", sym, tf, err.msg);
    }
    if (st->skip) return QG_OK;
    live_key *k = st->k;
    int64_t ts = qg_row_int(row, 2);
    qg_ict_event buf[QG_ICT_MAX_EVENTS_PER_BAR];
    size_t m = 0;
    qg_error err = {0};
    if (ts <= k->last_ts ||
        qg_ict_push(k->det, ts, qg_row_double(row, 3), qg_row_double(row, 4), qg_row_double(row, 5),
                    qg_row_double(row, 6), qg_row_double(row, 7), buf, QG_ICT_MAX_EVENTS_PER_BAR,
                    &m, &err) != QG_OK) {
        qg_warn("live detector: stored bar %lld of %s %s skipped: %s", (long long)ts, sym, tf,
                err.msg[0] ? err.msg : "not after the previous one");
        return QG_OK;
    }
    k->last_ts = ts;
    k->stored++;
    st->bars++;
    return QG_OK;
}

qg_status qg_ict_live_persist(qg_ict_live *l, qg_store *store, qg_batcher *journal, int64_t keep,
                              size_t *pairs_out, size_t *bars_out, qg_error *err)
{
    *pairs_out = *bars_out = 0;
    if (keep <= 0) return QG_OK;
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(store, &c, err);
    if (rc) return rc;
    restore_state st = {.l = l};
    pthread_mutex_lock(&l->mu);
    rc = qg_conn_query(c,
                       "SELECT symbol, timeframe, ts, open, high, low, close, volume FROM "
                       "detector_bars ORDER BY symbol, timeframe, ts",
                       NULL, 0, restore_row, &st, err);
    if (!rc) {
        l->journal = journal;
        l->keep = keep;
        *pairs_out = l->nkeys;
        *bars_out = st.bars;
    }
    pthread_mutex_unlock(&l->mu);
    qg_store_release(store, c);
    return rc;
}

typedef struct forget_write {
    const char *symbol, *timeframe;
    int64_t deleted;
} forget_write;

static qg_status apply_forget(qg_conn *c, void *arg, qg_error *err)
{
    forget_write *w = arg;
    qg_val p[] = {QG_VTEXT(w->symbol), QG_VTEXT(w->timeframe)};
    return qg_conn_exec(c, "DELETE FROM detector_bars WHERE symbol = ? AND timeframe = ?", p, 2,
                        &w->deleted, err);
}

qg_status qg_ict_live_forget(qg_ict_live *l, const char *symbol, const char *timeframe,
                             int64_t *bars_out, qg_error *err)
{
    *bars_out = 0;
    char sym[QG_SIGNAL_SYMBOL_MAX + 1];
    upper_copy(sym, sizeof sym, symbol);
    pthread_mutex_lock(&l->mu);
    live_key *k = find_key(l, sym, timeframe);
    qg_status rc = QG_OK;
    forget_write w = {.symbol = sym, .timeframe = timeframe};
    if (l->journal) rc = qg_batcher_run(l->journal, apply_forget, &w, err);
    if (!rc && !k && w.deleted == 0)
        rc = qg_error_set(err, QG_ENOTFOUND, "the live detector has no bars of %s %s", sym,
                          timeframe);
    if (!rc && k) {
        qg_ict_free(k->det);
        *k = l->keys[--l->nkeys];
        memset(&l->keys[l->nkeys], 0, sizeof l->keys[l->nkeys]);
    }
    if (!rc) *bars_out = w.deleted;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

qg_status qg_ict_live_push(qg_ict_live *l, const char *symbol, const char *timeframe,
                           const qg_bar *bars, size_t n, qg_ict_event **events, size_t *nevents,
                           qg_error *err)
{
    *events = NULL;
    *nevents = 0;
    if (!symbol || !*symbol || strlen(symbol) > QG_SIGNAL_SYMBOL_MAX)
        return qg_error_set(err, QG_EINVAL, "symbol: must be 1 to %d characters",
                            QG_SIGNAL_SYMBOL_MAX);
    if (!timeframe || !*timeframe || strlen(timeframe) > QG_SIGNAL_TIMEFRAME_MAX)
        return qg_error_set(err, QG_EINVAL, "timeframe: must be 1 to %d characters",
                            QG_SIGNAL_TIMEFRAME_MAX);
    char sym[QG_SIGNAL_SYMBOL_MAX + 1];
    upper_copy(sym, sizeof sym, symbol);
    qg_ict_event *evs = NULL;
    size_t len = 0, cap = 0;
    pthread_mutex_lock(&l->mu);
    live_key *k = find_key(l, sym, timeframe);
    qg_status rc = check_order(k, sym, timeframe, bars, n, err);
    if (rc) goto out;
    if (!k && n) rc = key_of(l, sym, timeframe, &k, err);
    if (rc) goto out;
    if (l->journal && n && (rc = store_bars(l, k, bars, n, err))) goto out;
    for (size_t i = 0; i < n; i++) {
        qg_ict_event buf[QG_ICT_MAX_EVENTS_PER_BAR];
        size_t m = 0;
        const qg_bar *b = &bars[i];
        rc = qg_ict_push(k->det, b->ts, b->open, b->high, b->low, b->close, b->volume, buf,
                         QG_ICT_MAX_EVENTS_PER_BAR, &m, err);
        if (rc) {
            /* only an inconsistent bar gets here (the handler validates
             * them first); the bars before it stay pushed */
            qg_error_prefix(err, "bars[%zu]", i);
            goto out;
        }
        k->last_ts = b->ts;
        if (!m) continue;
        if (len + m > cap) {
            size_t ncap = cap ? cap * 2 : 64;
            while (ncap < len + m) ncap *= 2;
            qg_ict_event *p = realloc(evs, ncap * sizeof *p);
            if (!p) {
                rc = qg_error_set(err, QG_ENOMEM, "out of memory for %zu events", ncap);
                goto out;
            }
            evs = p;
            cap = ncap;
        }
        memcpy(evs + len, buf, m * sizeof *buf);
        len += m;
    }
out:
    pthread_mutex_unlock(&l->mu);
    if (rc && rc != QG_EINVAL) {
        free(evs);
        return rc;
    }
    *events = evs;
    *nevents = len;
    return rc;
}

static uint64_t fnv(uint64_t h, const char *s)
{
    return qg_fnv1a_str(h, s) ^ 0x7c; /* a separator, so "AB"+"C" differs from "A"+"BC" */
}

/* Ten significant digits: the stop and target are computed (close + 2 *
 * risk) and would otherwise print as 98.22000000000003. */
static double round10(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.10g", v);
    return strtod(buf, NULL);
}

void qg_ict_event_to_signal(const qg_ict_event *e, const char *symbol, const char *timeframe,
                            qg_signal *out)
{
    memset(out, 0, sizeof *out);
    upper_copy(out->symbol, sizeof out->symbol, symbol);
    snprintf(out->timeframe, sizeof out->timeframe, "%s", timeframe);
    snprintf(out->signal_type, sizeof out->signal_type, "%s", qg_ict_type_name(e->type));
    out->confidence = e->confidence;
    out->ts_ms = e->ts;
    out->open = e->open;
    out->high = e->high;
    out->low = e->low;
    out->close = e->close;
    out->has_sl = e->has_sl;
    out->sl = round10(e->sl);
    out->has_tp = e->has_tp;
    out->tp = round10(e->tp);
    const char *names[QG_ICT_C_COUNT];
    int n = qg_ict_confluence_names(e->confluences, names, QG_ICT_C_COUNT);
    if (n > QG_SIGNAL_CONFLUENCES_MAX) n = QG_SIGNAL_CONFLUENCES_MAX;
    for (int i = 0; i < n; i++)
        snprintf(out->confluences[i], sizeof out->confluences[i], "%s", names[i]);
    out->nconfluences = n;
    out->multi_tf = (e->confluences & (QG_ICT_C_HTF_BIAS_BULL | QG_ICT_C_HTF_BIAS_BEAR)) != 0;
    out->source = QG_SIGNAL_DETECTOR;
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)e->ts);
    uint64_t h = QG_FNV1A_BASIS;
    h = fnv(h, out->symbol);
    h = fnv(h, out->timeframe);
    h = fnv(h, out->signal_type);
    h = fnv(h, e->dir > 0 ? "bull" : "bear");
    h = fnv(h, ts);
    snprintf(out->client_id, sizeof out->client_id, "ict_%016llx", (unsigned long long)h);
}
