/*
 * h_bars.c - POST /api/bars: closed bars for one symbol and timeframe go
 * through the live ICT detector (signal/live.h, docs/ict.md), and every
 * signal it detects is submitted to the same ingest and pipeline as a
 * TradingView webhook (source "detector").
 *
 * The whole body is validated before any bar reaches the detector: a 400
 * names the bar's index and the field ("bars[3].high: must be >= open,
 * close and low"), and bars not after the last one already posted for that
 * symbol and timeframe are refused the same way, with nothing applied.
 * Each signal's submit waits for its outcome (durable, duplicate,
 * ignored, ...), so the reply tells what became of every detection.
 * DELETE /api/bars forgets one pair.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"
#include "signal/ingest.h"
#include "signal/live.h"
#include "signal/service.h"
#include "signal/signal.h"

#include <quantgate/time.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BARS_MAX 10000 /* bars in one request */

static const char *const field_names[] = {"ts", "open", "high", "low", "close", "volume"};

static bool symbol_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           strchr("._-/:!", c) != NULL;
}

static bool read_name(qg_req *r, const cJSON *body, const char *name, size_t max, bool symbol,
                      const char **out)
{
    if (!qg_field_str(r, body, name, true, max, out)) return false;
    if (!**out) {
        qg_reply_error(r, 400, "validation_failed", "%s: must not be empty", name);
        return false;
    }
    for (const char *p = *out; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (symbol ? symbol_char(c)
                   : ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            continue;
        }
        qg_reply_error(r, 400, "validation_failed", "%s: character '%c' is not allowed (%s)", name,
                       c >= 32 && c < 127 ? c : '?',
                       symbol ? "letters, digits and . _ - / : !" : "letters and digits");
        return false;
    }
    return true;
}

/* Reads bars[i] into *b; false after replying 400 naming the index and field. */
static bool read_bar(qg_req *r, const cJSON *item, size_t i, qg_bar *b)
{
    if (!cJSON_IsArray(item) || (cJSON_GetArraySize(item) != 6 && cJSON_GetArraySize(item) != 5)) {
        qg_reply_error(r, 400, "validation_failed",
                       "bars[%zu]: must be an array [ts, open, high, low, close, volume]", i);
        return false;
    }
    const cJSON *ts = cJSON_GetArrayItem(item, 0);
    if (cJSON_IsString(ts)) {
        const char *why = qg_time_parse_iso(ts->valuestring, strlen(ts->valuestring), &b->ts);
        if (why) {
            qg_reply_error(r, 400, "validation_failed", "bars[%zu].ts: %s", i, why);
            return false;
        }
    } else if (cJSON_IsNumber(ts) && isfinite(ts->valuedouble) && ts->valuedouble >= 0 &&
               ts->valuedouble < 1e15 && ts->valuedouble == floor(ts->valuedouble)) {
        /* epoch milliseconds; below 1e11 it can only be seconds */
        b->ts = (int64_t)ts->valuedouble;
        if (ts->valuedouble < 1e11) b->ts *= 1000;
    } else {
        qg_reply_error(r, 400, "validation_failed",
                       "bars[%zu].ts: must be epoch milliseconds or an ISO-8601 string", i);
        return false;
    }
    double v[5] = {0};
    int n = cJSON_GetArraySize(item);
    for (int k = 1; k < n; k++) {
        const cJSON *x = cJSON_GetArrayItem(item, k);
        bool ok = cJSON_IsNumber(x) && isfinite(x->valuedouble) &&
                  (k == 5 ? x->valuedouble >= 0 : x->valuedouble > 0);
        if (!ok) {
            qg_reply_error(r, 400, "validation_failed", "bars[%zu].%s: must be a number %s", i,
                           field_names[k], k == 5 ? ">= 0" : "> 0");
            return false;
        }
        v[k - 1] = x->valuedouble;
    }
    b->open = v[0];
    b->high = v[1];
    b->low = v[2];
    b->close = v[3];
    b->volume = v[4];
    const char *bad = NULL;
    if (b->high < b->open || b->high < b->close || b->high < b->low)
        bad = "high: must be >= open, close and low";
    else if (b->low > b->open || b->low > b->close)
        bad = "low: must be <= open and close";
    if (bad) {
        qg_reply_error(r, 400, "validation_failed", "bars[%zu].%s", i, bad);
        return false;
    }
    return true;
}

static const char *result_name(qg_ingest_result res)
{
    switch (res) {
    case QG_INGEST_ACCEPTED:
        return "received";
    case QG_INGEST_IGNORED:
        return "ignored";
    case QG_INGEST_DUPLICATE:
        return "duplicate";
    case QG_INGEST_RATE_LIMITED:
        return "rate_limited";
    default:
        return "failed";
    }
}

static cJSON *submit(qg_signals *sv, const qg_ict_event *e, const char *symbol,
                     const char *timeframe)
{
    qg_signal sig, copy;
    qg_ict_event_to_signal(e, symbol, timeframe, &sig);
    qg_ingest_outcome o;
    memset(&o, 0, sizeof o);
    memset(&copy, 0, sizeof copy);
    qg_ingest_submit_wait(sv->ingest, &sig, sv->owner_id, 0, &o, &copy);
    cJSON *item = cJSON_CreateObject();
    const char *id = o.result == QG_INGEST_DUPLICATE                                     ? o.dup_of
                     : (o.result == QG_INGEST_ACCEPTED || o.result == QG_INGEST_IGNORED) ? copy.id
                                                                                         : NULL;
    qg_json_str_or_null(item, "id", id && *id ? id : NULL);
    cJSON_AddStringToObject(item, "status", result_name(o.result));
    if (o.result == QG_INGEST_IGNORED || o.result == QG_INGEST_RATE_LIMITED)
        cJSON_AddStringToObject(item, "reason", o.reason);
    if (o.result == QG_INGEST_FAILED)
        cJSON_AddStringToObject(item, "reason", "the signal could not be stored");
    cJSON_AddStringToObject(item, "direction", e->dir > 0 ? "bull" : "bear");
    cJSON *js = qg_signal_json(&sig);
    cJSON_AddItemToObject(item, "signal", js ? js : cJSON_CreateNull());
    return item;
}

void qg_h_bars_post(qg_req *r)
{
    qg_signals *sv = r->app->signals;
    if (!sv || !sv->ingest || !sv->live) {
        qg_reply_error(r, 503, "unavailable", "the signal service is not running");
        return;
    }
    cJSON *body = qg_req_json(r);
    if (!body) return;
    for (const cJSON *f = body->child; f; f = f->next)
        if (strcmp(f->string, "symbol") && strcmp(f->string, "timeframe") &&
            strcmp(f->string, "bars")) {
            qg_reply_error(r, 400, "validation_failed",
                           "%.64s: unknown field (allowed: symbol, timeframe, bars)", f->string);
            return;
        }
    const char *symbol, *timeframe;
    if (!read_name(r, body, "symbol", QG_SIGNAL_SYMBOL_MAX, true, &symbol)) return;
    if (!read_name(r, body, "timeframe", QG_SIGNAL_TIMEFRAME_MAX, false, &timeframe)) return;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(body, "bars");
    if (!cJSON_IsArray(arr)) {
        qg_reply_error(r, 400, "validation_failed", "bars: %s",
                       arr ? "must be an array of [ts, open, high, low, close, volume]"
                           : "is required");
        return;
    }
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > BARS_MAX) {
        qg_reply_error(r, 400, "validation_failed", "bars: %d bars, must be 1 to %d", n, BARS_MAX);
        return;
    }
    qg_bar *bars = qg_arena_alloc(&r->arena, (size_t)n * sizeof *bars);
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++)
        if (!read_bar(r, it, i, &bars[i])) return;

    qg_ict_event *evs = NULL;
    size_t nev = 0;
    qg_error err = {0};
    qg_status rc = qg_ict_live_push(sv->live, symbol, timeframe, bars, (size_t)n, &evs, &nev, &err);
    if (rc) {
        free(evs);
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "bars", n);
    cJSON *sigs = cJSON_AddArrayToObject(out, "signals");
    for (size_t k = 0; k < nev; k++)
        if (qg_ict_is_signal(evs[k].type))
            cJSON_AddItemToArray(sigs, submit(sv, &evs[k], symbol, timeframe));
    free(evs);
    qg_reply_json(r, 200, out);
}

/* DELETE /api/bars?symbol=&timeframe=: the pair's detector and stored bars
 * go (a trader who posted wrong bars starts the pair again). */
void qg_h_bars_forget(qg_req *r)
{
    qg_signals *sv = r->app->signals;
    if (!sv || !sv->live) {
        qg_reply_error(r, 503, "unavailable", "the signal service is not running");
        return;
    }
    const char *names[] = {"symbol", "timeframe"}, *vals[2];
    for (int i = 0; i < 2; i++) {
        vals[i] = qg_req_query(r, names[i]);
        size_t max = i ? QG_SIGNAL_TIMEFRAME_MAX : QG_SIGNAL_SYMBOL_MAX;
        if (!vals[i] || !*vals[i] || strlen(vals[i]) > max) {
            qg_reply_error(r, 400, "validation_failed", "%s: %s", names[i],
                           vals[i] && *vals[i] ? "too long" : "is required (query parameter)");
            return;
        }
    }
    int64_t bars = 0;
    qg_error err = {0};
    qg_status rc = qg_ict_live_forget(sv->live, vals[0], vals[1], &bars, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddBoolToObject(out, "forgotten", true);
    cJSON_AddNumberToObject(out, "stored_bars_deleted", (double)bars);
    qg_reply_json(r, 200, out);
}
