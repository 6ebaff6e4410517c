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
#include <quantgate/time.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

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

/* ---- fast paths shared by the parsers ----
 * Each either gives exactly the result of the general parser or declines
 * (false/NULL), leaving the general path to decide and word any error. */

/* Plain decimals ("-123.4500") of at most 15 digits: the mantissa is below
 * 2^53 and the scale at most 1e15, so one division is correctly rounded and
 * the value is bit for bit what qg_parse_double (and strtod) give. Returns
 * the first byte after the number, NULL when it is not such a number. */
static inline const char *qg_plain_decimal(const char *p, const char *end, double *out)
{
    static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    bool neg = p < end && *p == '-';
    p += neg;
    const char *d0 = p;
    uint64_t m = 0;
    while (p < end && (unsigned)(*p - '0') <= 9) m = m * 10 + (uint64_t)(*p++ - '0');
    size_t digits = (size_t)(p - d0), nfrac = 0;
    if (p < end && *p == '.') {
        const char *f0 = ++p;
        while (p < end && (unsigned)(*p - '0') <= 9) m = m * 10 + (uint64_t)(*p++ - '0');
        nfrac = (size_t)(p - f0);
        digits += nfrac;
    }
    if (digits == 0 || digits > 15 || (p < end && (*p == 'e' || *p == 'E'))) return NULL;
    double v = nfrac ? (double)m / p10[nfrac] : (double)m;
    *out = neg ? -v : v;
    return p;
}

/* The day number of the last date text seen, so that rows of the same day
 * parse only the time of day. */
typedef struct qg_day_cache {
    char text[10];
    bool valid;
    int64_t day_ms;
} qg_day_cache;

static inline int qg_two_digits(const char *p)
{
    unsigned a = (unsigned)(p[0] - '0'), b = (unsigned)(p[1] - '0');
    return a > 9 || b > 9 ? -1 : (int)(a * 10 + b);
}

/* "YYYY-MM-DDTHH:MM:SS" (or a space for T) in f[0..19), UTC. */
static inline bool qg_iso19(qg_day_cache *dc, const char *f, int64_t *out)
{
    if (f[4] != '-' || f[7] != '-' || (f[10] != 'T' && f[10] != ' ') || f[13] != ':' ||
        f[16] != ':')
        return false;
    if (!dc->valid || memcmp(f, dc->text, 10) != 0) {
        int64_t d;
        if (qg_time_parse_iso(f, 10, &d)) return false;
        memcpy(dc->text, f, 10);
        dc->day_ms = d;
        dc->valid = true;
    }
    int hh = qg_two_digits(f + 11), mm = qg_two_digits(f + 14), ss = qg_two_digits(f + 17);
    if (hh < 0 || mm < 0 || ss < 0 || hh > 23 || mm > 59 || ss > 59) return false;
    *out = dc->day_ms + hh * QG_MS_PER_HOUR + mm * QG_MS_PER_MIN + ss * QG_MS_PER_SEC;
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
