/*
 * indicators.h - technical indicators, incremental (O(1) per bar) with a
 * batch API over a whole series.
 *
 * Conventions follow TA-Lib and R's TTR (docs/indicators.md has the formula,
 * the first defined index and any difference between the two for each):
 * EMA seeded with the SMA of its first n values, RSI and ATR with Wilder
 * smoothing, Bollinger with the population standard deviation. Undefined
 * values (before the first defined index) are NAN.
 *
 * An indicator is described by a qg_ind_spec parsed from text "name:params"
 * ("sma:20", "macd:12,26,9", "obv"). A qg_ind holds the incremental state; it
 * sees each bar exactly once and in order, so it cannot look ahead.
 */
#ifndef QUANTGATE_INDICATORS_H
#define QUANTGATE_INDICATORS_H

#include <quantgate/bars.h>
#include <quantgate/status.h>

#include <stddef.h>

typedef enum {
    QG_IND_SMA,
    QG_IND_EMA,
    QG_IND_WMA,
    QG_IND_RSI,
    QG_IND_ATR,
    QG_IND_MACD,
    QG_IND_BBANDS,
    QG_IND_STOCH,
    QG_IND_ADX,
    QG_IND_CCI,
    QG_IND_ROC,
    QG_IND_WILLR,
    QG_IND_DONCHIAN,
    QG_IND_OBV,
    QG_IND_VWAP,
    QG_IND__COUNT
} qg_ind_kind;

/* The input series of single-input indicators (sma, ema, wma, rsi, macd,
 * bbands, roc); the others use the bar fields they are defined on. */
typedef enum {
    QG_SRC_CLOSE = 0,
    QG_SRC_OPEN,
    QG_SRC_HIGH,
    QG_SRC_LOW,
    QG_SRC_VOLUME,
    QG_SRC_HL2,
    QG_SRC_HLC3,
    QG_SRC_OHLC4
} qg_source;

#define QG_IND_MAX_PARAMS  4
#define QG_IND_MAX_OUTPUTS 3

typedef struct qg_ind_spec {
    qg_ind_kind kind;
    int nparams;                      /* after defaults are filled in */
    double params[QG_IND_MAX_PARAMS]; /* periods are whole numbers */
    qg_source source;
} qg_ind_spec;

/* Parses "name[:p1,p2,...]" (parameters omitted take the documented
 * defaults, e.g. "rsi" is rsi:14) and validates it. Errors name the text and
 * the reason: unknown name (listing the known ones), wrong parameter count,
 * a period that is not a whole number >= 1, ... */
qg_status qg_ind_parse(const char *text, qg_ind_spec *out, qg_error *err);
/* Fills defaults for missing parameters and checks ranges; used by parse
 * and by callers that build a spec by hand (nparams may be 0). */
qg_status qg_ind_validate(qg_ind_spec *s, qg_error *err);
/* Parses a source name ("close", "hl2", ...); -1 when unknown. */
int qg_source_parse(const char *name);
const char *qg_source_name(qg_source src);
/* Lower-case name of a kind ("sma"); kind_parse returns -1 when unknown. */
const char *qg_ind_kind_name(qg_ind_kind kind);
int qg_ind_kind_parse(const char *name);

/* Number of outputs (1 to QG_IND_MAX_OUTPUTS). */
int qg_ind_output_count(const qg_ind_spec *s);
/* Short key of output k inside its indicator: "value" for single-output
 * indicators; "macd", "signal", "hist"; "upper", "middle", "lower";
 * "k", "d"; "adx", "plus_di", "minus_di". */
const char *qg_ind_output_key(const qg_ind_spec *s, int k);
/* Column name used by `quantgate indicators`, e.g. "rsi_14",
 * "macd_signal_12_26_9", "bbands_upper_20_2", "obv". */
void qg_ind_column_name(const qg_ind_spec *s, int k, char *out, size_t cap);
/* Index of the first defined value of output k. */
size_t qg_ind_lookback(const qg_ind_spec *s, int k);

typedef struct qg_ind qg_ind;

/* Allocates the incremental state for a validated spec (its buffers are
 * sized once here; updates never allocate). NULL on out-of-memory. Owned by
 * the caller, freed with qg_ind_free. */
qg_ind *qg_ind_new(const qg_ind_spec *s);
void qg_ind_free(qg_ind *ind);
/* Back to the state before the first bar. */
void qg_ind_reset(qg_ind *ind);
const qg_ind_spec *qg_ind_get_spec(const qg_ind *ind);

/* Feeds bars [from, from+n) of b, in order, and writes output k for bar
 * from+i to out[k][i] (NAN while undefined). Reads nothing outside that
 * range: all history lives in the state, so blocks of any size (1 included)
 * give identical results. */
void qg_ind_update_block(qg_ind *ind, const qg_bars *b, size_t from, size_t n, double *const *out);

/* Batch: computes every output over all of b into out[k][0..b->n). */
qg_status qg_ind_compute(const qg_ind_spec *s, const qg_bars *b, double *const *out);

#endif
