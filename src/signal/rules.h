/*
 * rules.h - the pipeline's deterministic filters: killzones (session
 * windows in a time zone, daylight saving included), cooldowns, policies
 * and the score.
 *
 * Everything here is pure except the cooldown table (a mutex) and the time
 * zone loader (reads TZif files from the system zoneinfo directory once).
 * Times are UTC ms; the caller passes them in, so tests drive the clock.
 */
#ifndef QG_SIGNAL_RULES_H
#define QG_SIGNAL_RULES_H

#include "signal/signal.h"

#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- time zones ---- */

/* A loaded IANA time zone (TZif v2+ from /usr/share/zoneinfo or
 * QG_ZONEINFO_DIR): its transitions and the POSIX TZ footer rule for times
 * after the last one. Immutable once loaded; shared by threads. */
typedef struct qg_tz qg_tz;

/* Loads "UTC", "Europe/London", "America/New_York", "Asia/Tokyo", ... Names
 * are checked (no "..", letters digits _ - + /). The caller owns *out
 * (qg_tz_free). QG_ENOTFOUND names the zone and the directory. */
qg_status qg_tz_load(const char *name, qg_tz **out, qg_error *err);
void qg_tz_free(qg_tz *tz);
/* Offset from UTC in seconds at the UTC instant utc_ms. */
int32_t qg_tz_offset(const qg_tz *tz, int64_t utc_ms);
const char *qg_tz_name(const qg_tz *tz);

/* ---- session windows (killzones) ---- */

#define QG_SESSION_NAME_MAX 24
#define QG_SESSIONS_MAX     16

/* One window: local wall-clock start and end (minutes after midnight; end <
 * start wraps past midnight) in a zone, on the days in days_mask (bit 0 =
 * Monday .. bit 6 = Sunday, local day of the start). start inclusive, end
 * exclusive. */
typedef struct qg_session_window {
    char name[QG_SESSION_NAME_MAX + 1]; /* "london", "new_york", "asia" */
    const qg_tz *tz;                    /* owned by the qg_sessions set */
    int start_min, end_min;
    unsigned days_mask;
} qg_session_window;

/* The windows for all symbols plus per-symbol overrides. Immutable after
 * qg_sessions_parse; shared by threads. */
typedef struct qg_sessions qg_sessions;

/* The defaults: london 07:00-10:00 Europe/London, new_york 07:00-10:00
 * America/New_York (in winter exactly the 07-10 and 12-15 UTC windows
 * alerting scripts hard-code, and they follow daylight saving), asia
 * 20:00-00:00 America/New_York (ICT's Asian range); all Monday-Friday by
 * the zone's local day; documented in docs/signals.md. spec (may be NULL or "": defaults
 * only) is QG_SIGNAL_SESSIONS:
 *   "london=Europe/London 07:00-10:00 mon-fri;new_york=America/New_York 08:30-11:00"
 * and per-symbol overrides QG_SIGNAL_SESSIONS_<SYMBOL> go through
 * qg_sessions_set_symbol. Errors name the item and the reason. */
qg_status qg_sessions_parse(const char *spec, qg_sessions **out, qg_error *err);
/* Replaces the windows used for one symbol (same spec syntax). */
qg_status qg_sessions_set_symbol(qg_sessions *s, const char *symbol, const char *spec,
                                 qg_error *err);
void qg_sessions_free(qg_sessions *s);
/* The window containing utc_ms for symbol, or NULL. */
const qg_session_window *qg_sessions_match(const qg_sessions *s, const char *symbol,
                                           int64_t utc_ms);
/* The windows as JSON (for GET /api/signals/config); caller owns it. */
cJSON *qg_sessions_json(const qg_sessions *s);

/* ---- cooldowns ---- */

/* Per (symbol, signal_type): a signal within cooldown_ms of the last one
 * that passed is dropped. Thread-safe (mutex), bounded (oldest entries
 * evicted past 100k keys). */
typedef struct qg_cooldown qg_cooldown;
qg_cooldown *qg_cooldown_new(int64_t cooldown_ms);
void qg_cooldown_free(qg_cooldown *c);
/* True (and the key's time set to now_ms) when the key is not cooling
 * down; false with *remaining_ms (may be NULL) set otherwise. A 0 cooldown
 * always passes. */
bool qg_cooldown_take(qg_cooldown *c, const char *symbol, const char *signal_type, int64_t now_ms,
                      int64_t *remaining_ms);
/* Forgets every key (tests, config reload). */
void qg_cooldown_clear(qg_cooldown *c);

/* ---- policies ----
 * A policy is a named rule, from configuration (QG_SIGNAL_POLICY, a JSON
 * array) or the signal_policies table:
 *   {"name":"no-errors","when":{"symbol":"BTCUSDT"},            (optional scope)
 *    "min_confidence":70, "blocked_types":["error"], "allowed_symbols":[...],
 *    "blocked_symbols":[...], "max_per_hour":20, "require_multi_tf":true,
 *    "min_score":0, "action":"drop"|"defer"|"escalate"}
 * Every policy whose scope matches is evaluated in order; the first that
 * denies decides. Each evaluation yields a verdict the pipeline records. */
typedef struct qg_policy_set qg_policy_set;

typedef enum {
    QG_POLICY_ALLOW,
    QG_POLICY_DROP,
    QG_POLICY_DEFER,
    QG_POLICY_ESCALATE
} qg_policy_action;

typedef struct qg_policy_verdict {
    qg_policy_action action;
    char policy[64];  /* the deciding policy's name, "" when allowed by all */
    char reason[256]; /* "confidence 55 below min_confidence 70 (policy no-low)" */
} qg_policy_verdict;

/* Parses a JSON array of policies; errors name the index, field and reason.
 * The caller owns *out. */
qg_status qg_policy_parse(const cJSON *arr, qg_policy_set **out, qg_error *err);
/* Validates one policy object (the API's create/update). */
qg_status qg_policy_validate(const cJSON *policy, qg_error *err);
void qg_policy_free(qg_policy_set *p);
/* Evaluates s (with its score when has_score) at now_ms. max_per_hour is
 * counted inside the set (thread-safe). */
void qg_policy_eval(qg_policy_set *p, const qg_signal *s, bool has_score, double score,
                    int64_t now_ms, qg_policy_verdict *out);

/* ---- score ---- */

typedef struct qg_score_weights {
    double base;            /* 60 */
    double per_confluence;  /* 10 */
    double killzone;        /* 10 */
    double structure_break; /* 10: BoS / CHoCH */
    double multi_tf;        /* 0 */
    double cap;             /* 100 */
} qg_score_weights;

void qg_score_weights_default(qg_score_weights *w);
/* QG_SIGNAL_SCORE_WEIGHTS "base=60,confluence=10,killzone=10,structure=10,multi_tf=0,cap=100";
 * errors name the key. */
qg_status qg_score_weights_parse(const char *spec, qg_score_weights *w, qg_error *err);
/* The score of s, given whether it fell in a killzone; capped at w->cap,
 * never below 0. */
double qg_score(const qg_score_weights *w, const qg_signal *s, bool in_killzone);

#endif
