/*
 * bars_int.h - what the CSV and JSON bar parsers share; not for other
 * modules.
 *
 * A parser turns bytes into candidate bars and hands each to the sink, which
 * owns validation (prices, OHLC order, strictly increasing time), the
 * timestamp-kind decision, lenient-mode bookkeeping and the output columns.
 * Every message a person reads is "NAME:LINE:COL: reason" and is built here,
 * so both formats word problems the same way.
 *
 * Error handling: functions that judge a row return false when the row must
 * be dropped. In strict mode they also set s->fatal and s->err; in lenient
 * mode they count the row and keep the first messages. Parsers therefore
 * drop the row on false and stop when s->fatal is set.
 */
#ifndef QG_MARKET_BARS_INT_H
#define QG_MARKET_BARS_INT_H

#include <quantgate/bars.h>

#include <stdbool.h>
#include <stdint.h>

/* Longest CSV line or JSON token kept across chunk boundaries. */
#define QG_BARS_LINE_MAX (64u * 1024u)

typedef enum { QG_TSK_UNKNOWN = 0, QG_TSK_ISO, QG_TSK_SEC, QG_TSK_MS } qg_ts_kind;

/* Where a value sits in the input, for messages (col is 1-based; 0: none). */
typedef struct qg_pos {
    uint64_t line;
    unsigned col;
} qg_pos;

/* Index of each value of a bar in qg_pos arrays and messages. */
enum { QG_F_TS = 0, QG_F_OPEN, QG_F_HIGH, QG_F_LOW, QG_F_CLOSE, QG_F_VOLUME, QG_F_COUNT };

typedef struct qg_bars_sink {
    const char *name; /* prefixes messages; owned by the parser */
    qg_bars *out;
    size_t n0; /* out->n before loading: rows accepted = out->n - n0 */
    bool lenient;
    qg_ts_kind ts_kind; /* decided by the first timestamp parsed */
    bool have_prev;     /* prev_ts is the last accepted row's time */
    int64_t prev_ts;
    uint64_t size_hint; /* input bytes if known, to reserve columns once */
    size_t est_rows;    /* rows expected from size_hint; 0: unknown */
    qg_status fatal;    /* set once; parsing stops */
    qg_error err;
    qg_load_report rep;
} qg_bars_sink;

/* Field names used in messages ("open"), by QG_F_* index. */
extern const char *const qg_bar_field_names[QG_F_COUNT];

void qg_sink_init(qg_bars_sink *s, const char *name, const qg_load_opts *opts, qg_bars *out);

/* Rejects the current row at pos: see the file comment. Always false. */
bool qg_sink_reject(qg_bars_sink *s, qg_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A problem that no row skipping can fix (syntax, header, line too long):
 * fatal in every mode. pos.line 0 omits the position. Always false. */
bool qg_sink_fail(qg_bars_sink *s, qg_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses a timestamp field (ISO-8601 or epoch s/ms, see docs/data.md) and
 * enforces the kind chosen by the first row. */
bool qg_sink_ts(qg_bars_sink *s, const char *p, size_t n, qg_pos pos, int64_t *out_ms);
/* Parses a whole field as a finite number; messages name field f. */
bool qg_sink_num(qg_bars_sink *s, const char *p, size_t n, qg_pos pos, int f, double *out);

/* Tells the sink the byte size of a typical row so it can reserve the
 * columns for the whole input once (from size_hint). */
void qg_sink_estimate(qg_bars_sink *s, size_t row_bytes);

/* Validates b and appends it; pos names each value for messages. */
bool qg_sink_add(qg_bars_sink *s, const qg_bar *b, const qg_pos pos[QG_F_COUNT]);

/* The common case of qg_sink_add, inlined into the CSV hot loop: a bar
 * whose checks pass and for which there is room. False means "take the
 * careful path", not "bad". */
static inline bool qg_sink_add_fast(qg_bars_sink *s, const qg_bar *b)
{
    qg_bars *o = s->out;
    double lo = b->open < b->close ? b->open : b->close;
    double hi = b->open < b->close ? b->close : b->open;
    if (!(b->low >= 0 && b->volume >= 0 && b->low <= lo && hi <= b->high)) return false;
    if ((s->have_prev && b->ts <= s->prev_ts) || o->n >= o->cap) return false;
    size_t i = o->n++;
    o->ts[i] = b->ts;
    o->open[i] = b->open;
    o->high[i] = b->high;
    o->low[i] = b->low;
    o->close[i] = b->close;
    o->volume[i] = b->volume;
    s->prev_ts = b->ts;
    s->have_prev = true;
    return true;
}

/* Ends the input: trims over-reserved columns, detects the timeframe,
 * fills the report. No rows is an error. */
qg_status qg_sink_finish(qg_bars_sink *s);

/* Writes at most 32 bytes of p as printable text (then "...") into out,
 * which holds at least 40 bytes; for quoting bad input in messages. */
const char *qg_sink_quote(const char *p, size_t n, char *out);

/* ---- the two formats ---- */
typedef struct qg_csv qg_csv;
qg_csv *qg_csv_new(qg_bars_sink *s);
qg_status qg_csv_feed(qg_csv *c, const char *data, size_t n);
qg_status qg_csv_finish(qg_csv *c);
void qg_csv_free(qg_csv *c);

typedef struct qg_json qg_json;
qg_json *qg_json_new(qg_bars_sink *s);
qg_status qg_json_feed(qg_json *j, const char *data, size_t n);
qg_status qg_json_finish(qg_json *j);
void qg_json_free(qg_json *j);

#endif
