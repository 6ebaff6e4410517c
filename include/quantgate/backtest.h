/*
 * backtest.h - the event-driven backtester, its metrics, the look-ahead
 * check and the parameter grid search.
 *
 * Rules (docs/backtest.md has them with examples):
 *  - Conditions are evaluated on the close of bar t; market orders they
 *    cause fill at the open of bar t+1. Nothing reads bar t+1 before then.
 *  - Stops and targets are checked against each bar's high and low, from
 *    the fill bar on. When both are touched in one bar the stop is assumed
 *    first. A bar that opens beyond a level fills at the open (a gap).
 *  - Market and stop fills pay slippage (bps, against the trader); targets
 *    are limit orders and fill at their price. Fees are bps of the notional
 *    on each side.
 *  - One position at a time, never larger than equity (no leverage).
 *  - Equity = cash + quantity x close, marked every bar. A position still
 *    open after the last bar is closed at its close (exit reason "end").
 *
 * The engine works in blocks: indicators and conditions are computed for a
 * block of bars into small buffers, then a tight loop walks the block. It
 * allocates only at start, so memory is O(trades), not O(bars).
 */
#ifndef QUANTGATE_BACKTEST_H
#define QUANTGATE_BACKTEST_H

#include <quantgate/bars.h>
#include <quantgate/file.h>
#include <quantgate/mem.h>
#include <quantgate/strategy.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    QG_EXIT_REASON_SIGNAL = 0, /* an exit condition */
    QG_EXIT_REASON_STOP,
    QG_EXIT_REASON_TARGET,
    QG_EXIT_REASON_REVERSE, /* the opposite entry while in a position */
    QG_EXIT_REASON_END      /* data ended */
} qg_exit_reason;

const char *qg_exit_reason_name(qg_exit_reason r);

typedef struct qg_trade {
    int side; /* +1 long, -1 short */
    size_t entry_bar, exit_bar;
    int64_t entry_ts, exit_ts;
    double qty;                     /* > 0 */
    double entry_price, exit_price; /* fills, slippage included */
    double fees;                    /* both sides */
    double pnl;                     /* net of fees */
    double return_pct;              /* pnl / entry notional, percent */
    qg_exit_reason reason;
} qg_trade;

/* What the strategy decided at the close of a bar, or a stop/target hit
 * during it: the log the look-ahead check compares. */
typedef enum {
    QG_ACT_ENTER_LONG = 1,
    QG_ACT_ENTER_SHORT,
    QG_ACT_EXIT_LONG,
    QG_ACT_EXIT_SHORT,
    QG_ACT_STOP,
    QG_ACT_TARGET
} qg_action;

typedef struct qg_decision {
    size_t bar;
    qg_action action;
} qg_decision;

const char *qg_action_name(qg_action a);

typedef struct qg_metrics {
    size_t bars;
    int64_t start_ts, end_ts;
    double start_equity, final_equity;
    double total_return;    /* percent */
    double buy_hold_return; /* percent, first open to last close */
    double cagr;            /* percent per year */
    double volatility;      /* annualised, percent */
    double sharpe, sortino, calmar;
    double max_drawdown;     /* percent, positive */
    int64_t max_drawdown_ms; /* longest time under a previous peak */
    size_t trades, wins, losses;
    double win_rate;      /* percent */
    double profit_factor; /* gross profit / gross loss; INFINITY with no loss */
    double expectancy;    /* mean pnl per trade */
    double avg_win, avg_loss, best_trade, worst_trade; /* pnl */
    double exposure;                                   /* percent of bars with a position */
    double sqn;                                        /* sqrt(N) * mean(pnl) / stdev(pnl) */
    double fees;                                       /* total paid */
    double periods_per_year;                           /* used for annualising */
    bool daily_returns;                                /* true: daily returns, false: per-bar */
} qg_metrics;

typedef struct qg_equity_point {
    int64_t ts;
    double equity;   /* at the end of the sample */
    double drawdown; /* deepest drawdown inside the sample, percent */
} qg_equity_point;

/* State passed to an observer after each bar is marked to market. */
typedef struct qg_bar_state {
    size_t bar;
    double cash, qty, close, equity;
} qg_bar_state;

typedef struct qg_bt_config {
    double cash;            /* starting cash; default 10000 */
    double fee_bps;         /* per side */
    double slippage_bps;    /* per side */
    double size_pct;        /* > 0: percent-of-equity sizing overriding the spec */
    qg_direction direction; /* 0: the spec's */
    size_t start_bar;       /* first bar that may trade; earlier bars only warm up the
                               indicators (no orders, no equity statistics) */
    bool keep_trades;       /* fill result.trades */
    bool keep_decisions;    /* fill result.decisions */
    size_t curve_points;    /* samples of the equity curve to keep (0: none) */
    void (*on_bar)(void *ud, const qg_bar_state *st); /* may be NULL */
    void *on_bar_ud;
    qg_progress_fn progress; /* bars done / total; may be NULL */
    void *progress_ud;
} qg_bt_config;

/* Defaults: cash 10000, no fees or slippage, spec sizing and direction,
 * trades kept, 1000 curve points. */
qg_bt_config qg_bt_config_default(void);

typedef struct qg_bt_result {
    qg_metrics m;
    qg_trade *trades;
    size_t n_trades;
    qg_decision *decisions;
    size_t n_decisions;
    qg_equity_point *curve;
    size_t n_curve;
} qg_bt_result;

/* Runs s over bars. out is owned by the caller and freed with
 * qg_bt_result_free. Errors: invalid config (names the field), no bars,
 * out of memory. */
qg_status qg_backtest_run(const qg_strategy *s, const qg_bars *bars, const qg_bt_config *cfg,
                          qg_bt_result *out, qg_error *err);
void qg_bt_result_free(qg_bt_result *r);

/* ---- JSON ---- */

/* The metrics object and the trades array of `quantgate backtest --json`
 * (and of the HTTP API's backtest results); non-finite numbers are null.
 * The caller owns the returned tree (cJSON_Delete); NULL on out-of-memory. */
struct cJSON;
struct cJSON *qg_bt_metrics_json(const qg_metrics *m);
struct cJSON *qg_bt_trades_json(const qg_bt_result *r);

/* ---- look-ahead check ---- */

/* Produces the decision log for a prefix of the data. */
typedef qg_status (*qg_decide_fn)(void *ud, const qg_bars *prefix, qg_decision **out, size_t *n,
                                  qg_error *err);

#define QG_CHECK_MAX_REPORTED 10

typedef struct qg_check_report {
    size_t cuts;       /* prefixes tried */
    size_t decisions;  /* decisions in the full run */
    size_t mismatches; /* decisions that differ between a prefix and the full run */
    size_t n_reported;
    struct {
        size_t cut; /* prefix length */
        size_t bar; /* where they differ */
        int full;   /* action in the full run (0 = none) */
        int prefix; /* action in the prefix run (0 = none) */
    } reported[QG_CHECK_MAX_REPORTED];
} qg_check_report;

/* Runs decide on the full data and on `cuts` prefixes (evenly spread plus
 * a few random, fixed seed) on `threads` threads, and reports every
 * decision at a bar inside a prefix that differs from the full run's. A
 * strategy without look-ahead reports 0 mismatches. */
qg_status qg_lookahead_check(qg_decide_fn decide, void *ud, const qg_bars *bars, size_t cuts,
                             int threads, qg_check_report *rep, qg_error *err);

/* The qg_decide_fn for a strategy and config (ud points to this). */
typedef struct qg_strategy_runner {
    const qg_strategy *strategy;
    qg_bt_config cfg;
} qg_strategy_runner;
qg_status qg_strategy_decide(void *ud, const qg_bars *prefix, qg_decision **out, size_t *n,
                             qg_error *err);

/* ---- grid search ---- */

typedef enum { QG_OBJ_SHARPE = 0, QG_OBJ_RETURN, QG_OBJ_CALMAR, QG_OBJ_SORTINO } qg_objective;

/* Parses "sharpe", "return", "calmar", "sortino"; -1 when unknown. */
int qg_objective_parse(const char *s);
double qg_objective_value(qg_objective obj, const qg_metrics *m);

#define QG_GRID_MAX_AXES 8
#define QG_GRID_MAX_LIST 64

/* One parameter's values: a range from..to by step (inclusive), or an
 * explicit list when n_list > 0. */
typedef struct qg_grid_axis {
    char name[32];
    double from, to, step;
    size_t n_list;
    double list[QG_GRID_MAX_LIST];
} qg_grid_axis;

/* Parses "name=from:to:step" (inclusive, at most 100000 values) or
 * "name=v1,v2,..." (up to QG_GRID_MAX_LIST values; "name=v" is a list of
 * one). Numbers must be finite. Errors name the text and the reason. */
qg_status qg_grid_axis_parse(const char *text, qg_grid_axis *out, qg_error *err);
/* How many values the axis has, and the i-th of them. */
size_t qg_grid_axis_count(const qg_grid_axis *a);
double qg_grid_axis_value(const qg_grid_axis *a, size_t i);

typedef struct qg_grid_row {
    double values[QG_GRID_MAX_AXES];
    qg_metrics m;
    double score;
} qg_grid_row;

typedef struct qg_grid_result {
    size_t points;  /* grid size */
    size_t skipped; /* combinations that broke a constraint */
    size_t n_rows;  /* evaluated, best first */
    qg_grid_row *rows;
} qg_grid_result;

/* Evaluates every point of the grid (a spec re-parsed with the point's
 * parameters, then a backtest) on `threads` threads, and sorts the rows by
 * objective, best first. progress counts points. */
qg_status qg_optimize(const char *spec_json, size_t spec_len, const qg_param_override *fixed,
                      size_t n_fixed, const qg_grid_axis *axes, size_t n_axes, const qg_bars *bars,
                      const qg_bt_config *cfg, qg_objective obj, int threads, qg_grid_result *out,
                      qg_error *err);
void qg_grid_result_free(qg_grid_result *r);

/* ---- report ---- */

typedef struct qg_report_meta {
    const char *title;     /* e.g. "sma_cross on data.csv" */
    const char *data_name; /* the data file */
    const char *settings;  /* one line: fees, slippage, sizing, params */
} qg_report_meta;

/* Writes one self-contained HTML page (no external resources): the metrics,
 * the settings, the equity curve and drawdown as inline SVG, and the trade
 * table (the first 5000 trades, with a note when there are more). */
qg_status qg_report_html(const qg_bt_result *r, const qg_strategy *s, const qg_report_meta *meta,
                         qg_buf *out);

#endif
