/*
 * strategy.h - the strategy spec: one JSON document that describes
 * indicators, entry and exit conditions, stops, targets, sizing and
 * direction. The backtester and (later) the paper broker run it; the chat
 * builder produces it; exporters turn it into MQL5 and Pine Script.
 *
 * Parsing resolves everything: "$param" references are replaced by numbers
 * (spec defaults, then overrides), operand names are bound to indicator
 * outputs or price fields, and conditions become a small tree of nodes. A
 * parsed qg_strategy is plain data with no pointers, so it can be copied
 * and shared read-only between threads. The format is documented with
 * examples in docs/strategy-spec.md.
 */
#ifndef QUANTGATE_STRATEGY_H
#define QUANTGATE_STRATEGY_H

#include <quantgate/indicators.h>
#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QG_STRAT_NAME_MAX        64
#define QG_STRAT_DESC_MAX        512
#define QG_STRAT_MAX_PARAMS      16
#define QG_STRAT_MAX_INDICATORS  32
#define QG_STRAT_MAX_NODES       128
#define QG_STRAT_MAX_CONSTRAINTS 8
#define QG_STRAT_MAX_LAG         64

typedef enum { QG_DIR_LONG = 1, QG_DIR_SHORT = 2, QG_DIR_BOTH = 3 } qg_direction;

/* What an operand reads at bar t: a constant, a price field or an
 * indicator output, `lag` bars back (0 = this bar). */
typedef enum { QG_OPD_CONST, QG_OPD_FIELD, QG_OPD_IND } qg_operand_kind;

typedef struct qg_operand {
    qg_operand_kind kind;
    double value;    /* CONST */
    qg_source field; /* FIELD */
    int ind, output; /* IND: index into indicators[], output number */
    int lag;         /* 0..QG_STRAT_MAX_LAG */
} qg_operand;

typedef enum {
    QG_COND_CROSS_ABOVE, /* a[t] > b[t] and a[t-1] <= b[t-1] */
    QG_COND_CROSS_BELOW, /* a[t] < b[t] and a[t-1] >= b[t-1] */
    QG_COND_GT,
    QG_COND_LT,
    QG_COND_GTE,
    QG_COND_LTE,
    QG_COND_AND, /* left && right */
    QG_COND_OR,
    QG_COND_NOT /* !left */
} qg_cond_op;

typedef struct qg_cond_node {
    qg_cond_op op;
    qg_operand a, b; /* comparisons and crosses */
    int left, right; /* AND, OR, NOT: node indices */
} qg_cond_node;

/* How far a stop or target sits from the fill price. */
typedef enum { QG_EXIT_NONE = 0, QG_EXIT_PERCENT, QG_EXIT_ATR, QG_EXIT_PRICE } qg_exit_kind;

typedef struct qg_exit_rule {
    qg_exit_kind kind;
    double value;   /* percent, ATR multiple or price distance */
    int atr_period; /* ATR only */
    int atr_ind;    /* ATR only: index of the (hidden) ATR indicator */
} qg_exit_rule;

typedef enum { QG_SIZE_PERCENT_EQUITY = 0, QG_SIZE_FIXED_QTY, QG_SIZE_RISK_PERCENT } qg_sizing_kind;

typedef struct qg_sizing {
    qg_sizing_kind kind;
    double value;
} qg_sizing;

typedef struct qg_strategy_param {
    char name[32];
    double value;
} qg_strategy_param;

typedef struct qg_strategy_ind {
    char name[32]; /* "__atr14" for hidden ones added by ATR stops */
    qg_ind_spec spec;
} qg_strategy_ind;

typedef enum { QG_CMP_LT, QG_CMP_LE, QG_CMP_GT, QG_CMP_GE, QG_CMP_EQ, QG_CMP_NE } qg_cmp;

typedef struct qg_constraint {
    char text[64]; /* as written, for messages: "fast < slow" */
    double a, b;   /* resolved values */
    qg_cmp cmp;
} qg_constraint;

typedef struct qg_strategy {
    char name[QG_STRAT_NAME_MAX];
    char description[QG_STRAT_DESC_MAX];
    qg_direction direction;
    int64_t timeframe_ms; /* 0: run on the data as given */
    size_t n_params;
    qg_strategy_param params[QG_STRAT_MAX_PARAMS];
    size_t n_ind;
    qg_strategy_ind ind[QG_STRAT_MAX_INDICATORS];
    size_t n_nodes;
    qg_cond_node nodes[QG_STRAT_MAX_NODES];
    /* Root node of each condition, -1 when absent. */
    int entry_long, entry_short, exit_long, exit_short;
    qg_exit_rule stop_loss, take_profit;
    qg_sizing sizing;
    size_t n_constraints;
    qg_constraint constraints[QG_STRAT_MAX_CONSTRAINTS];
    int max_lag; /* largest lag any condition reads (crosses count 1) */
} qg_strategy;

/* A parameter override "name=value" from the command line or a grid. */
typedef struct qg_param_override {
    const char *name;
    double value;
} qg_param_override;

/* Parses and resolves a spec. Overrides replace the spec's "params"
 * defaults; an override naming no declared parameter is an error. Errors
 * name the JSON path and the reason, e.g.
 *   "entry.long.cross_above[1]: unknown operand 'slwo' (indicators: fast, slow;
 *    fields: open, high, low, close, volume, hl2, hlc3, ohlc4)"
 * and JSON syntax errors give line and column. A violated constraint is
 * QG_EINVAL with "constraint 'fast < slow' fails: 50 < 20". */
qg_status qg_strategy_parse(const char *json, size_t len, const qg_param_override *ov, size_t n_ov,
                            qg_strategy *out, qg_error *err);

/* The JSON text of a built-in strategy ("sma_cross", "ema_cross",
 * "rsi_reversion", "bollinger_breakout", "donchian_breakout"), or NULL.
 * Static storage. */
const char *qg_strategy_builtin(const char *name);
/* Names of the built-ins, NULL-terminated. */
const char *const *qg_strategy_builtin_names(void);

/* Value of parameter name in s, or NAN. */
double qg_strategy_param_value(const qg_strategy *s, const char *name);

#endif
