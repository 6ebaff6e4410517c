/*
 * strategy_args.h - options shared by the commands that run strategies.
 */
#ifndef QG_CMD_STRATEGY_ARGS_H
#define QG_CMD_STRATEGY_ARGS_H

#include "cmd/cmd.h"

#include <quantgate/backtest.h>
#include <quantgate/mem.h>
#include <quantgate/strategy.h>

#include <cjson/cJSON.h>

typedef struct qg_strategy_args {
    const char *strategy;
    qg_param_override params[QG_STRAT_MAX_PARAMS];
    char names[QG_STRAT_MAX_PARAMS][32];
    size_t n_params;
    qg_bt_config cfg;
    char *json; /* the spec text, owned */
    size_t json_len;
} qg_strategy_args;

void qg_strategy_args_init(qg_strategy_args *sa);
/* Consumes one of the shared options; false when the argument is not one. */
bool qg_strategy_args_match(qg_args *a, qg_strategy_args *sa);
/* Reads the built-in or file and parses it with the --param overrides;
 * prints the error and returns 1 on failure. */
int qg_strategy_args_load(const char *cmd, qg_strategy_args *sa, qg_strategy *out);
void qg_strategy_args_free(qg_strategy_args *sa);

/* "sma_cross (fast=10, slow=30)" */
void qg_strategy_describe(const qg_strategy *s, char *out, size_t cap);
const char *qg_direction_name(qg_direction d);

/* qg_data_load for a strategy: the spec's "timeframe" applies when the
 * user gave no --timeframe. Same results and ownership as qg_data_load. */
int qg_strategy_data_load(const char *cmd, const qg_strategy *s, const qg_data_args *d,
                          qg_bars *bars, qg_bars *view);

/* Points cfg's progress callback at p, a bar labelled `label` (hidden by
 * --quiet or when stderr is not a terminal). p must outlive the run. */
void qg_progress_attach(qg_progress *p, const char *label, bool quiet, qg_bt_config *cfg);

/* The bars to run: everything up to the end of view, with cfg->start_bar at
 * view's first bar, so indicators warm up on the bars before --from and the
 * strategy can act from its first bar, as traders expect. view lies in all. */
qg_bars qg_warm_view(const qg_bars *all, const qg_bars *view, qg_bt_config *cfg);

/* Adds a number to a JSON object; NAN and infinities, which JSON cannot
 * hold, become null. */
void qg_json_add_number(cJSON *obj, const char *key, double v);
/* Prints root on stdout and frees it; 0, or 1 with a message on failure. */
int qg_json_print(const char *cmd, cJSON *root);

extern const char *const QG_STRATEGY_OPTIONS_HELP;

#endif
