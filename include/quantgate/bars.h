/*
 * bars.h - OHLCV bars in columns, their loaders, resampling and the
 * synthetic data generator.
 *
 * Bars are stored column by column (ts, open, high, low, close, volume) so
 * that indicators and backtests stream through contiguous doubles. Times are
 * UTC milliseconds and strictly increasing. A qg_bars either owns its columns
 * (cap > 0, freed by qg_bars_free) or is a view into another (cap == 0).
 *
 * Loaders are push parsers: they take bytes in chunks of any size and never
 * allocate per row; qg_bars_load_file feeds them from a file. Bad input is an
 * error naming the source, line, column and reason, e.g.
 *   "data.csv:17:3: high (99.5) is below low (100.2)"
 * or, with `lenient`, the row is skipped and counted in qg_load_report.
 */
#ifndef QUANTGATE_BARS_H
#define QUANTGATE_BARS_H

#include <quantgate/file.h>
#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qg_bar {
    int64_t ts;
    double open, high, low, close, volume;
} qg_bar;

typedef struct qg_bars {
    int64_t *ts;
    double *open, *high, *low, *close, *volume;
    size_t n;             /* bars held */
    size_t cap;           /* capacity; 0 for a view */
    int64_t timeframe_ms; /* bar width if known (detected or resampled), else 0 */
} qg_bars;

/* Bytes one bar takes in the columns (8 for ts + 5 doubles). */
#define QG_BAR_BYTES 48

/* Grows every column to hold at least cap bars. */
qg_status qg_bars_reserve(qg_bars *b, size_t cap);
/* Appends one bar (amortised O(1)); does not validate. */
qg_status qg_bars_push(qg_bars *b, const qg_bar *bar);
/* Frees owned columns and zeroes b; safe on a zeroed struct or a view. */
void qg_bars_free(qg_bars *b);
/* A non-owning view of bars [from, from+count) of b. */
qg_bars qg_bars_view(const qg_bars *b, size_t from, size_t count);
/* Bar i as a struct. */
qg_bar qg_bars_get(const qg_bars *b, size_t i);
/* First index whose ts >= t (n when none). */
size_t qg_bars_lower_bound(const qg_bars *b, int64_t t);
/* The most common spacing between consecutive bars (0 if fewer than 2). */
int64_t qg_bars_detect_timeframe(const qg_bars *b);

/* ---- loading ---- */

#define QG_LOAD_MAX_REPORTED 5
#define QG_LOAD_MSG_MAX      256

typedef struct qg_load_opts {
    bool lenient;            /* skip bad rows instead of failing */
    qg_progress_fn progress; /* may be NULL; called per chunk with bytes */
    void *progress_ud;
} qg_load_opts;

typedef struct qg_load_report {
    size_t rows;       /* rows accepted */
    size_t skipped;    /* rows rejected (lenient mode) */
    size_t n_reported; /* messages kept in `reported` (the first few) */
    char reported[QG_LOAD_MAX_REPORTED][QG_LOAD_MSG_MAX];
} qg_load_report;

typedef enum { QG_FORMAT_AUTO = 0, QG_FORMAT_CSV, QG_FORMAT_JSON } qg_bars_format;

typedef struct qg_bars_parser qg_bars_parser;

/* A push parser that appends bars to out. `name` (copied) prefixes error
 * messages, usually the file name. AUTO picks JSON when the first non-blank
 * byte is '[' and CSV otherwise. opts may be NULL. NULL on out-of-memory. */
qg_bars_parser *qg_bars_parser_new(const char *name, qg_bars_format format,
                                   const qg_load_opts *opts, qg_bars *out);
/* Tells the parser the total input size (bytes) so it can reserve the
 * columns once instead of growing them; optional. */
void qg_bars_parser_size_hint(qg_bars_parser *p, uint64_t bytes);
/* Feeds the next bytes; chunk boundaries may fall anywhere. */
qg_status qg_bars_parser_feed(qg_bars_parser *p, const char *data, size_t n, qg_error *err);
/* Ends the input, fills rep (may be NULL) and sets out->timeframe_ms. An
 * input with no bars is an error. */
qg_status qg_bars_parser_finish(qg_bars_parser *p, qg_load_report *rep, qg_error *err);
void qg_bars_parser_free(qg_bars_parser *p);

/* Loads a whole file (".json" or '[' first: JSON array, else CSV). */
qg_status qg_bars_load_file(const char *path, const qg_load_opts *opts, qg_bars *out,
                            qg_load_report *rep, qg_error *err);
/* Loads from memory; name prefixes error messages. */
qg_status qg_bars_load_mem(const char *name, const char *data, size_t n, const qg_load_opts *opts,
                           qg_bars *out, qg_load_report *rep, qg_error *err);

/* ---- transforming ---- */

/* Aggregates in into buckets of tf_ms (qg_time_bucket alignment): open of
 * the first bar, highest high, lowest low, close of the last, summed volume,
 * ts = bucket start. tf_ms must be a multiple of the source timeframe (when
 * known); the error names both. out must be zeroed; caller frees it. */
qg_status qg_bars_resample(const qg_bars *in, int64_t tf_ms, qg_bars *out, qg_error *err);

/* Bars with from_ms <= ts < to_ms (either bound may be INT64_MIN/INT64_MAX)
 * as a view into b. */
qg_bars qg_bars_between(const qg_bars *b, int64_t from_ms, int64_t to_ms);

/* ---- writing ---- */

typedef enum { QG_TS_ISO = 0, QG_TS_EPOCH_S, QG_TS_EPOCH_MS } qg_ts_format;

/* Formats rows starting at *pos as CSV into out (no header), as many whole
 * rows as fit in cap bytes, advancing *pos; returns bytes written. Prices
 * with `decimals` digits. */
size_t qg_bars_format_csv(const qg_bars *b, size_t *pos, char *out, size_t cap, qg_ts_format tsf,
                          int decimals);
#define QG_BARS_CSV_HEADER "timestamp,open,high,low,close,volume\n"

/* ---- synthetic data ---- */

typedef struct qg_gen_opts {
    size_t bars;        /* how many */
    int64_t tf_ms;      /* bar width */
    uint64_t seed;      /* same seed, same data */
    int64_t start_ms;   /* first bar's time */
    double start_price; /* 0: 100 */
    double tick;        /* price rounding; 0: 0.01 */
} qg_gen_opts;

/* Streaming generator: a random walk with volatility regimes (a two-state
 * Markov switch over a GARCH-like variance) and intraday seasonality of
 * volatility and volume (U-shaped over the UTC day). Deterministic per seed. */
typedef struct qg_gen {
    qg_gen_opts o;
    uint64_t rng[4];
    size_t i;
    double price, var, base_vol;
    int regime;
} qg_gen;

qg_status qg_gen_init(qg_gen *g, const qg_gen_opts *opts, qg_error *err);
/* Produces the next bar (high >= max(open, close), low <= min(open, close)). */
void qg_gen_next(qg_gen *g, qg_bar *out);
/* Fills out (zeroed) with opts->bars bars. */
qg_status qg_bars_generate(const qg_gen_opts *opts, qg_bars *out, qg_error *err);

#endif
