/*
 * builtin.h - the offline reasoner behind the `builtin` provider
 * (p_builtin.c), usable directly by callers that hold structured input.
 *
 * Everything here is deterministic and needs no network: the same input
 * always gives the same answer. Signal analysis weighs the signal's own
 * evidence (confluences, confidence, timeframe agreement, the geometry of
 * entry, stop and target against the candle); intent classification maps a
 * chat message to the strategy builder's phase commands.
 */
#ifndef QG_AI_BUILTIN_H
#define QG_AI_BUILTIN_H

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdint.h>

/* Analyses a TradingView alert (symbol, timeframe, signal_type,
 * confidence, timestamp, price_data{open,high,low,close}, sl, tp,
 * multi_tf, confluences[]) and writes the decision as compact JSON to
 * *json_out (arena a):
 *   {"symbol","timeframe","direction":"long"|"short"|"none",
 *    "score":0-100,"risk":"low"|"medium"|"high","action":"buy"|"sell"|"hold",
 *    "entry","stop_loss","take_profit","exit" (= take_profit),
 *    "risk_reward","explanation","factors":[{"factor","impact","detail"}],
 *    "reasoner":"builtin"}
 * stop_loss/take_profit are derived from the candle range when absent (and
 * null when no direction can be told). QG_EINVAL naming the field when
 * symbol or price_data.close is missing or unusable. */
qg_status qg_builtin_analyze_signal(const cJSON *signal, qg_arena *a, const char **json_out,
                                    qg_error *err);

/* The strategy builder's phases, in order. */
#define QG_BUILTIN_NPHASES 5
extern const char
    *const qg_builtin_phases[QG_BUILTIN_NPHASES]; /* "requirements", "blueprint",
                                                     "code", "testing", "deployment" */

typedef struct qg_builtin_intent {
    /* "proceed", "back", "start_coding", "run_tests", "deploy", "restart",
     * "help" or "chat" (static strings) */
    const char *intent;
    /* the phase the command leads to (static), or NULL: proceed/back name
     * one or take the next/previous of current_phase; start_coding ->
     * code, run_tests -> testing, deploy -> deployment, restart ->
     * requirements */
    const char *target_phase;
    double confidence; /* 0..1 */
} qg_builtin_intent;

/* Classifies one user message. current_phase (may be NULL) resolves
 * "proceed" and "go back" without a named phase. Never fails; unknown or
 * empty text is "chat". */
void qg_builtin_classify_intent(const char *text, const char *current_phase,
                                qg_builtin_intent *out);

/* The same as {"intent","target_phase","confidence"} JSON in arena a. */
qg_status qg_builtin_intent_json(const char *text, const char *current_phase, qg_arena *a,
                                 const char **json_out, qg_error *err);

/* Approximate token count of text (about 4 bytes a token), as the builtin
 * provider reports usage. */
int64_t qg_builtin_count_tokens(const char *text);

#endif
