/*
 * live.h - the ICT detector fed live (POST /api/bars): one detector per
 * (symbol, timeframe), bars appended in time order, each detected signal
 * turned into a qg_signal for the ingest pipeline.
 *
 * Thread-safe: one mutex guards the table (the detector costs well under a
 * microsecond a bar, so a batch holds it briefly). The number of keys is
 * bounded (QG_ICT_LIVE_MAX_KEYS); a batch is checked whole before any bar
 * of it reaches the detector, so a rejected batch changes nothing.
 */
#ifndef QG_SIGNAL_LIVE_H
#define QG_SIGNAL_LIVE_H

#include "signal/service.h"
#include "signal/signal.h"
#include "store/batch.h"

#include <quantgate/bars.h>
#include <quantgate/ict.h>
#include <quantgate/status.h>

#include <stddef.h>

#define QG_ICT_LIVE_MAX_KEYS 1024

/* htf: the higher timeframe for the bias ("4h"; NULL or "": none; the
 * service passes QG_DETECT_HTF); the swing length comes from
 * QG_DETECT_SWING (default 5). The
 * caller owns *out (qg_ict_live_free). The error names the value. */
qg_status qg_ict_live_new(const char *htf /* may be NULL */, qg_ict_live **out, qg_error *err);
void qg_ict_live_free(qg_ict_live *l);

/* Appends n bars to the detector of (symbol, timeframe) (symbol compared
 * upper-cased; timeframe as given, parsed when it is "15m", "4h", ...).
 * Every bar must be after the previous one and after the last bar already
 * pushed for that key: otherwise QG_EINVAL naming the index and the
 * timestamps ("bars[3]: 2024-01-02T10:00:00Z is not after the last bar of
 * EURUSD 15m (2024-01-02T10:00:00Z)"), and nothing is pushed. *events gets
 * a malloc'd array (caller frees; NULL when none) of the *nevents events
 * the bars produced, in order (also set on QG_EINVAL: free it whatever
 * the status). QG_ERANGE when the key table is full. */
qg_status qg_ict_live_push(qg_ict_live *l, const char *symbol, const char *timeframe,
                           const qg_bar *bars, size_t n, qg_ict_event **events, size_t *nevents,
                           qg_error *err);

/* Makes the table survive restarts: pushes each pair's stored bars
 * (detector_bars, oldest first) into a fresh detector, their detections
 * discarded (they were submitted when the bars first came), then has
 * every later push store its bars through journal, durably, before they
 * reach the detector (a failed store fails the push and changes nothing).
 * Each pair keeps its newest `keep` bars (trimmed once it holds an eighth
 * more); keep <= 0: nothing is stored or restored. *pairs_out and
 * *bars_out: what was restored. journal must outlive l's pushes. */
qg_status qg_ict_live_persist(qg_ict_live *l, qg_store *store, qg_batcher *journal, int64_t keep,
                              size_t *pairs_out, size_t *bars_out, qg_error *err);

/* Forgets one pair (symbol compared upper-cased): its detector and its
 * stored bars (*bars_out: how many). The next bar posted for it starts a
 * fresh detector with no "not after the last bar" check. QG_ENOTFOUND when
 * the pair has neither. */
qg_status qg_ict_live_forget(qg_ict_live *l, const char *symbol, const char *timeframe,
                             int64_t *bars_out, qg_error *err);

/* Keys held (for /metrics and tests). */
size_t qg_ict_live_keys(qg_ict_live *l);

/* Fills out as the TradingView alert for this event: type, confidence,
 * the bar's prices, sl/tp when set, confluences by name, multi_tf when the
 * HTF bias is one of them, source QG_SIGNAL_DETECTOR, and a client id
 * "ict_<16 hex>" derived from (symbol, timeframe, type, direction, ts) so
 * the same detection posted twice is a duplicate. symbol is upper-cased
 * and truncated to the signal's limits. */
void qg_ict_event_to_signal(const qg_ict_event *e, const char *symbol, const char *timeframe,
                            qg_signal *out);

#endif
