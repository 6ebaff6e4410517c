/*
 * signal.h - the trading signal: the TradingView alert payload, strictly
 * validated, in one fixed-size struct that crosses every pipeline stage.
 *
 * A signal is parsed from the webhook body (or built by the ICT detector),
 * validated field by field (an error names the field and the reason; an
 * unknown field is an error), and written back as canonical JSON (fixed
 * field order, shortest round-trip numbers) for the `payload` column. Its
 * fingerprint is the BLAKE2b-256 of that canonical JSON without the client id,
 * so the same alert sent twice has the same fingerprint.
 *
 * The struct has no pointers: copy it freely between threads.
 */
#ifndef QG_SIGNAL_SIGNAL_H
#define QG_SIGNAL_SIGNAL_H

#include "store/store.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QG_SIGNAL_SYMBOL_MAX      32 /* characters: letters, digits, . _ - / : ! */
#define QG_SIGNAL_TIMEFRAME_MAX   8  /* "1m", "15m", "4h", "1D", "1W", "60" */
#define QG_SIGNAL_TYPE_MAX        32 /* "BoS", "CHoCH", "FVG", "OB", "liquidity_sweep", ... */
#define QG_SIGNAL_CLIENT_ID_MAX   64 /* printable ASCII */
#define QG_SIGNAL_CONFLUENCES_MAX 16
#define QG_SIGNAL_CONFLUENCE_MAX  48 /* characters each */
#define QG_SIGNAL_FINGERPRINT_LEN 64 /* hex BLAKE2b-256 */

/* Where a signal came from. */
typedef enum { QG_SIGNAL_WEBHOOK, QG_SIGNAL_DETECTOR, QG_SIGNAL_API } qg_signal_source;

typedef struct qg_signal {
    char id[QG_ID_MAX];             /* "sig_<ulid>", set when accepted */
    char correlation_id[QG_ID_MAX]; /* "cor_<ulid>", or the client's X-Correlation-Id */
    char client_id[QG_SIGNAL_CLIENT_ID_MAX + 1]; /* the payload's "id"; "" when absent */
    char symbol[QG_SIGNAL_SYMBOL_MAX + 1];       /* upper-cased */
    char timeframe[QG_SIGNAL_TIMEFRAME_MAX + 1];
    char signal_type[QG_SIGNAL_TYPE_MAX + 1];
    double confidence; /* 0..100 */
    int64_t ts_ms;     /* the payload's timestamp (ISO-8601 or epoch s/ms), UTC ms */
    double open, high, low, close;
    bool has_sl, has_tp;
    double sl, tp;
    bool multi_tf;
    int nconfluences;
    char confluences[QG_SIGNAL_CONFLUENCES_MAX][QG_SIGNAL_CONFLUENCE_MAX + 1];
    qg_signal_source source;
} qg_signal;

/* Parses and validates a JSON object (the webhook body). Required: symbol,
 * timeframe, signal_type, confidence, timestamp, price_data{open,high,low,
 * close}; optional: sl, tp, multi_tf, confluences, id. Unknown fields
 * (also inside price_data) are rejected. Checks: types, lengths, character
 * sets, confidence in [0,100], prices finite and > 0, low <= open,close <=
 * high, timestamp parseable and not more than 1 day in the future of
 * now_ms (0: the clock), confluences unique strings. QG_EINVAL with a
 * message "field: reason" (e.g. "price_data.high: must be >= open, close
 * and low"); *field_out (may be NULL) gets the dotted field name (a static
 * string or a pointer into err->msg's copy) for the 400 body. id and
 * correlation_id are left empty. */
qg_status qg_signal_from_json(const cJSON *obj, int64_t now_ms, qg_signal *out,
                              const char **field_out, qg_error *err);

/* The same from raw text (the request body); a JSON syntax error names the
 * line and column. */
qg_status qg_signal_parse(const char *json, size_t len, int64_t now_ms, qg_signal *out,
                          const char **field_out, qg_error *err);

/* Room for the canonical JSON of any valid signal, NUL included. */
#define QG_SIGNAL_JSON_MAX 4096

/* Renders the canonical JSON of s (with the client "id", as
 * qg_signal_to_json) into out and its fingerprint (as
 * qg_signal_fingerprint) from that one rendering; returns the length. */
size_t qg_signal_canonical(const qg_signal *s, char out[QG_SIGNAL_JSON_MAX],
                           char fingerprint[QG_SIGNAL_FINGERPRINT_LEN + 1]);

/* Appends the canonical JSON of s to out (the payload fields only: no id,
 * correlation id, source or state; includes the client "id" when set). */
qg_status qg_signal_to_json(const qg_signal *s, qg_buf *out);

/* The same as a new cJSON object (caller owns it). */
cJSON *qg_signal_json(const qg_signal *s);

/* Writes the fingerprint: hex BLAKE2b-256 of the canonical JSON without the
 * client id. out needs QG_SIGNAL_FINGERPRINT_LEN + 1 bytes. */
void qg_signal_fingerprint(const qg_signal *s, char *out);

/* True for the structure-break types that earn the BoS/CHoCH bonus
 * (case-insensitive "bos", "choch", "bos_bull", "choch_bear", ...). */
bool qg_signal_is_structure_break(const qg_signal *s);

/* "webhook", "detector", "api". */
const char *qg_signal_source_name(qg_signal_source src);

#endif
