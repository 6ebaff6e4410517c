/*
 * backtest.c - the event-driven backtester (rules in backtest.h and
 * docs/backtest.md).
 *
 * Design: the data is walked in blocks of BLOCK bars. For each block the
 * indicators are advanced incrementally into small per-output buffers, each
 * condition node becomes a mask over the block (simple loops the compiler
 * vectorises), and then one loop walks the bars: fill pending orders at the
 * open, check stops and targets on the high and low, mark to market on the
 * close, then read the masks to decide the next order. Every buffer holds
 * `pad` values of history before the block so lagged operands and crosses
 * read the previous bars without special cases.
 *
 * Most bars are uneventful, so the loop hands stretches where nothing can
 * happen to two fast paths: flat with no entry signal (equity constant,
 * statistics updated in closed form) and holding a position without stop or
 * target until the next signal (a mark-to-market loop in registers). Both
 * give exactly the numbers the bar-by-bar walk gives; a test holds them to it.
 *
 * Invariants: the loop at bar t reads only bars <= t (the masks of bar t
 * use indicator values that saw bars <= t); an order decided at t is
 * filled at t+1; equity == cash + qty * close after every bar.
 */
#include <quantgate/backtest.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK    1024
#define N_FIELDS 8

/* Masks hold one 64-bit lane per bar: a double comparison vectorises
 * straight into such lanes, while narrowing to bytes costs packs that made
 * GCC give up vectorising the loops. */
typedef int64_t qg_mask_t;

/* The mask of a condition that is absent or not used by the direction run. */
static const qg_mask_t zeros[BLOCK];

/* Pending order kinds, decided at a close and filled at the next open. */
enum { P_NONE = 0, P_ENTER_LONG, P_ENTER_SHORT, P_EXIT, P_REVERSE };

const char *qg_exit_reason_name(qg_exit_reason r)
{
    switch (r) {
    case QG_EXIT_REASON_SIGNAL:
        return "signal";
    case QG_EXIT_REASON_STOP:
        return "stop";
    case QG_EXIT_REASON_TARGET:
        return "target";
    case QG_EXIT_REASON_REVERSE:
        return "reverse";
    case QG_EXIT_REASON_END:
        return "end";
    }
    return "unknown";
}

const char *qg_action_name(qg_action a)
{
    switch (a) {
    case QG_ACT_ENTER_LONG:
        return "enter_long";
    case QG_ACT_ENTER_SHORT:
        return "enter_short";
    case QG_ACT_EXIT_LONG:
        return "exit_long";
    case QG_ACT_EXIT_SHORT:
        return "exit_short";
    case QG_ACT_STOP:
        return "stop";
    case QG_ACT_TARGET:
        return "target";
    }
    return "none";
}

qg_bt_config qg_bt_config_default(void)
{
    return (qg_bt_config){.cash = 10000, .keep_trades = true, .curve_points = 1000};
}

/* ---- growable arrays for trades and decisions ---- */

typedef struct {
    void *data;
    size_t n, cap, elem;
} vec;

static qg_status vec_push(vec *v, const void *item)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        void *p = realloc(v->data, cap * v->elem);
        if (!p) return QG_ENOMEM;
        v->data = p;
        v->cap = cap;
    }
    memcpy((char *)v->data + v->n * v->elem, item, v->elem);
    v->n++;
    return QG_OK;
}

/* ---- engine state ---- */

/* Equity statistics updated on every bar. */
typedef struct {
    double peak, dd_floor, max_dd; /* dd_floor: equity at which drawdown == max_dd */
    double last_eq;
    double gap, gap_peak; /* deepest (peak - equity) in the current curve sample */
    int64_t peak_ts, max_dd_ms, next_period_ts;
    size_t countdown; /* bars until the next curve sample */
    size_t bars_in_pos;
    bool under; /* below the peak since peak_ts */
} eq_track;

typedef struct {
    const qg_strategy *s;
    const qg_bars *b;
    qg_bt_config cfg;
    qg_direction dir;
    size_t sb;    /* first bar that may trade (cfg.start_bar) */
    size_t pad;   /* history kept before each block: max lag + 1 */
    size_t width; /* pad + BLOCK, the length of every series buffer */

    qg_ind *ind[QG_STRAT_MAX_INDICATORS];
    double *ind_buf[QG_STRAT_MAX_INDICATORS][QG_IND_MAX_OUTPUTS];
    double *field_buf[N_FIELDS];              /* only for fields conditions use */
    double *const_buf[QG_STRAT_MAX_NODES][2]; /* constant operands, filled once */
    qg_mask_t *mask[QG_STRAT_MAX_NODES];      /* only for nodes a used root reaches */
    /* Never NULL: a condition that is absent or unused reads `zeros`. */
    const qg_mask_t *entry_long, *entry_short, *exit_long, *exit_short;

    /* account and position */
    double cash, qty; /* qty > 0 long, < 0 short */
    int side;
    double entry_price, entry_fee, stop, target;
    size_t entry_bar;
    int pending;
    int pending_side;                            /* side to open when the pending order fills */
    double pending_stop_atr, pending_target_atr; /* at the decision bar, for ATR rules */
    double fee_rate, slip;                       /* fractions */

    /* metrics accumulated on the fly; `k` is copied into a local for each
     * block so the per-bar loop keeps it in registers */
    eq_track k;
    double period_start_eq;
    bool daily;
    double r_sum, r_sum2, r_down2;
    size_t r_n, periods;
    double gross_profit, gross_loss, pnl_sum, pnl_sum2, best, worst, fees;
    size_t n_trades, wins, losses;
    size_t curve_step;

    vec trades, decisions, curve;
    qg_status oom; /* set when a push failed; reported after the run */
} engine;

/* Value of a price field for bar i. */
static double field_value(const qg_bars *b, qg_source f, size_t i)
{
    switch (f) {
    case QG_SRC_OPEN:
        return b->open[i];
    case QG_SRC_HIGH:
        return b->high[i];
    case QG_SRC_LOW:
        return b->low[i];
    case QG_SRC_VOLUME:
        return b->volume[i];
    case QG_SRC_HL2:
        return (b->high[i] + b->low[i]) * 0.5;
    case QG_SRC_HLC3:
        return (b->high[i] + b->low[i] + b->close[i]) / 3.0;
    case QG_SRC_OHLC4:
        return (b->open[i] + b->high[i] + b->low[i] + b->close[i]) * 0.25;
    case QG_SRC_CLOSE:
        break;
    }
    return b->close[i];
}

static double *new_series(engine *e, double fill)
{
    double *p = malloc(e->width * sizeof *p);
    if (p)
        for (size_t i = 0; i < e->width; i++) p[i] = fill;
    return p;
}

/* Pointer p with p[i] = the operand's value at bar (block start + i). */
static const double *operand_ptr(const engine *e, const qg_operand *o, int node, int side)
{
    const double *base;
    switch (o->kind) {
    case QG_OPD_CONST:
        return e->const_buf[node][side] + e->pad;
    case QG_OPD_FIELD:
        base = e->field_buf[o->field];
        break;
    default:
        base = e->ind_buf[o->ind][o->output];
        break;
    }
    return base + e->pad - o->lag;
}

static void mark_reachable(const qg_strategy *s, int node, bool *used)
{
    if (node < 0 || used[node]) return;
    used[node] = true;
    const qg_cond_node *n = &s->nodes[node];
    if (n->op == QG_COND_AND || n->op == QG_COND_OR || n->op == QG_COND_NOT) {
        mark_reachable(s, n->left, used);
        mark_reachable(s, n->right, used);
    }
}

static qg_status setup_operand(engine *e, const qg_operand *o, int node, int side)
{
    if (o->kind == QG_OPD_CONST) {
        e->const_buf[node][side] = new_series(e, o->value);
        return e->const_buf[node][side] ? QG_OK : QG_ENOMEM;
    }
    if (o->kind == QG_OPD_FIELD && !e->field_buf[o->field]) {
        e->field_buf[o->field] = new_series(e, NAN);
        return e->field_buf[o->field] ? QG_OK : QG_ENOMEM;
    }
    return QG_OK;
}

static qg_status engine_setup(engine *e, qg_error *err)
{
    const qg_strategy *s = e->s;
    e->pad = (size_t)s->max_lag + 1;
    e->width = e->pad + BLOCK;
    for (size_t i = 0; i < s->n_ind; i++) {
        e->ind[i] = qg_ind_new(&s->ind[i].spec);
        if (!e->ind[i]) return qg_error_set(err, QG_ENOMEM, "out of memory for indicators");
        for (int k = 0; k < qg_ind_output_count(&s->ind[i].spec); k++) {
            e->ind_buf[i][k] = new_series(e, NAN);
            if (!e->ind_buf[i][k]) return qg_error_set(err, QG_ENOMEM, "out of memory");
        }
    }
    bool used[QG_STRAT_MAX_NODES] = {false};
    bool want_long = e->dir & QG_DIR_LONG, want_short = e->dir & QG_DIR_SHORT;
    if (want_long) mark_reachable(s, s->entry_long, used), mark_reachable(s, s->exit_long, used);
    if (want_short) mark_reachable(s, s->entry_short, used), mark_reachable(s, s->exit_short, used);
    for (size_t n = 0; n < s->n_nodes; n++) {
        if (!used[n]) continue;
        e->mask[n] = calloc(BLOCK, sizeof(qg_mask_t));
        if (!e->mask[n]) return qg_error_set(err, QG_ENOMEM, "out of memory");
        const qg_cond_node *nd = &s->nodes[n];
        if (nd->op == QG_COND_AND || nd->op == QG_COND_OR || nd->op == QG_COND_NOT) continue;
        if (setup_operand(e, &nd->a, (int)n, 0) || setup_operand(e, &nd->b, (int)n, 1))
            return qg_error_set(err, QG_ENOMEM, "out of memory");
    }
    e->entry_long = want_long && s->entry_long >= 0 ? e->mask[s->entry_long] : zeros;
    e->exit_long = want_long && s->exit_long >= 0 ? e->mask[s->exit_long] : zeros;
    e->entry_short = want_short && s->entry_short >= 0 ? e->mask[s->entry_short] : zeros;
    e->exit_short = want_short && s->exit_short >= 0 ? e->mask[s->exit_short] : zeros;
    return QG_OK;
}

static void engine_free(engine *e)
{
    for (size_t i = 0; i < QG_STRAT_MAX_INDICATORS; i++) {
        qg_ind_free(e->ind[i]);
        for (int k = 0; k < QG_IND_MAX_OUTPUTS; k++) free(e->ind_buf[i][k]);
    }
    for (size_t f = 0; f < N_FIELDS; f++) free(e->field_buf[f]);
    for (size_t n = 0; n < QG_STRAT_MAX_NODES; n++) {
        free(e->mask[n]);
        free(e->const_buf[n][0]);
        free(e->const_buf[n][1]);
    }
    free(e->trades.data);
    free(e->decisions.data);
    free(e->curve.data);
}

/* ---- per-block series ---- */

static void compute_series(engine *e, size_t start, size_t n)
{
    const qg_strategy *s = e->s;
    for (size_t i = 0; i < s->n_ind; i++) {
        double *outs[QG_IND_MAX_OUTPUTS];
        for (int k = 0; k < QG_IND_MAX_OUTPUTS; k++)
            outs[k] = e->ind_buf[i][k] ? e->ind_buf[i][k] + e->pad : NULL;
        qg_ind_update_block(e->ind[i], e->b, start, n, outs);
    }
    for (int f = 0; f < N_FIELDS; f++) {
        double *dst = e->field_buf[f];
        if (!dst) continue;
        dst += e->pad;
        if (f == QG_SRC_CLOSE)
            memcpy(dst, e->b->close + start, n * sizeof *dst);
        else
            for (size_t i = 0; i < n; i++) dst[i] = field_value(e->b, (qg_source)f, start + i);
    }
}

/* The comparison loops take restrict pointers: without the promise that
 * the mask does not overlap the inputs the compiler will not vectorise.
 * Crosses also read the previous bar through pa = a - 1 and pb = b - 1,
 * which point into the history pad. */
#define QG_CMP_LOOP(fn, expr)                                                                      \
    static void fn(qg_mask_t *restrict m, const double *restrict a, const double *restrict b,      \
                   const double *restrict pa, const double *restrict pb, size_t n)                 \
    {                                                                                              \
        (void)pa;                                                                                  \
        (void)pb;                                                                                  \
        for (size_t i = 0; i < n; i++) m[i] = (expr);                                              \
    }
QG_CMP_LOOP(mask_cross_above, (a[i] > b[i]) & (pa[i] <= pb[i]))
QG_CMP_LOOP(mask_cross_below, (a[i] < b[i]) & (pa[i] >= pb[i]))
QG_CMP_LOOP(mask_gt, a[i] > b[i])
QG_CMP_LOOP(mask_lt, a[i] < b[i])
QG_CMP_LOOP(mask_gte, a[i] >= b[i])
QG_CMP_LOOP(mask_lte, a[i] <= b[i])

static void mask_logic(qg_cond_op op, qg_mask_t *restrict m, const qg_mask_t *restrict l,
                       const qg_mask_t *restrict r, size_t n)
{
    if (op == QG_COND_AND)
        for (size_t i = 0; i < n; i++) m[i] = l[i] & r[i];
    else if (op == QG_COND_OR)
        for (size_t i = 0; i < n; i++) m[i] = l[i] | r[i];
    else
        for (size_t i = 0; i < n; i++) m[i] = !l[i];
}

static void compute_mask(const engine *e, int node, size_t n)
{
    const qg_cond_node *nd = &e->s->nodes[node];
    qg_mask_t *m = e->mask[node];
    if (nd->op == QG_COND_AND || nd->op == QG_COND_OR || nd->op == QG_COND_NOT) {
        mask_logic(nd->op, m, e->mask[nd->left], nd->right >= 0 ? e->mask[nd->right] : zeros, n);
        return;
    }
    const double *a = operand_ptr(e, &nd->a, node, 0);
    const double *b = operand_ptr(e, &nd->b, node, 1);
    /* NAN compares false, so nothing fires while an input is undefined. */
    switch (nd->op) {
    case QG_COND_CROSS_ABOVE:
        mask_cross_above(m, a, b, a - 1, b - 1, n);
        break;
    case QG_COND_CROSS_BELOW:
        mask_cross_below(m, a, b, a - 1, b - 1, n);
        break;
    case QG_COND_GT:
        mask_gt(m, a, b, a, b, n);
        break;
    case QG_COND_LT:
        mask_lt(m, a, b, a, b, n);
        break;
    case QG_COND_GTE:
        mask_gte(m, a, b, a, b, n);
        break;
    case QG_COND_LTE:
        mask_lte(m, a, b, a, b, n);
        break;
    default:
        break;
    }
}

/* Keeps the last `pad` values of every series as history for the next block. */
static void shift_history(engine *e, size_t n)
{
    size_t bytes = e->pad * sizeof(double);
    for (size_t i = 0; i < e->s->n_ind; i++)
        for (int k = 0; k < QG_IND_MAX_OUTPUTS; k++)
            if (e->ind_buf[i][k]) memmove(e->ind_buf[i][k], e->ind_buf[i][k] + n, bytes);
    for (int f = 0; f < N_FIELDS; f++)
        if (e->field_buf[f]) memmove(e->field_buf[f], e->field_buf[f] + n, bytes);
}

/* ---- orders and fills ---- */

static void record_decision(engine *e, size_t bar, qg_action a)
{
    if (!e->cfg.keep_decisions) return;
    qg_decision d = {bar, a};
    if (vec_push(&e->decisions, &d)) e->oom = QG_ENOMEM;
}

static void close_position(engine *e, size_t bar, double price, qg_exit_reason reason)
{
    double qty = e->qty, aq = fabs(qty);
    double fee = aq * price * e->fee_rate;
    e->cash += qty * price - fee;
    double pnl = e->side * (price - e->entry_price) * aq - e->entry_fee - fee;
    e->fees += fee;
    e->n_trades++;
    e->pnl_sum += pnl;
    e->pnl_sum2 += pnl * pnl;
    if (pnl > 0) e->wins++, e->gross_profit += pnl;
    if (pnl < 0) e->losses++, e->gross_loss -= pnl;
    if (e->n_trades == 1 || pnl > e->best) e->best = pnl;
    if (e->n_trades == 1 || pnl < e->worst) e->worst = pnl;
    if (e->cfg.keep_trades) {
        const qg_bars *b = e->b;
        qg_trade t = {.side = e->side,
                      .entry_bar = e->entry_bar,
                      .exit_bar = bar,
                      .entry_ts = b->ts[e->entry_bar],
                      .exit_ts = b->ts[bar],
                      .qty = aq,
                      .entry_price = e->entry_price,
                      .exit_price = price,
                      .fees = e->entry_fee + fee,
                      .pnl = pnl,
                      .return_pct = pnl / (aq * e->entry_price) * 100.0,
                      .reason = reason};
        if (vec_push(&e->trades, &t)) e->oom = QG_ENOMEM;
    }
    e->qty = 0;
    e->side = 0;
    e->stop = e->target = NAN;
}

/* Distance of a stop or target from the fill price, NAN when it cannot be
 * computed (an ATR not yet defined at the decision bar). */
static double exit_distance(const qg_exit_rule *r, double price, double atr)
{
    switch (r->kind) {
    case QG_EXIT_PERCENT:
        return price * r->value / 100.0;
    case QG_EXIT_ATR:
        return r->value * atr;
    case QG_EXIT_PRICE:
        return r->value;
    case QG_EXIT_NONE:
        break;
    }
    return NAN;
}

static void open_position(engine *e, size_t bar, int side, double open)
{
    const qg_strategy *s = e->s;
    double price = open * (1.0 + side * e->slip);
    double stop_d = exit_distance(&s->stop_loss, price, e->pending_stop_atr);
    double target_d = exit_distance(&s->take_profit, price, e->pending_target_atr);
    if (s->stop_loss.kind != QG_EXIT_NONE && !(stop_d > 0)) return;
    if (s->take_profit.kind != QG_EXIT_NONE && !(target_d > 0)) return;
    double equity = e->cash;
    if (!(equity > 0)) return;
    double unit = price * (1.0 + e->fee_rate); /* cash one unit costs, fee included */
    double qty;
    switch (s->sizing.kind) {
    case QG_SIZE_FIXED_QTY:
        qty = s->sizing.value;
        break;
    case QG_SIZE_RISK_PERCENT:
        qty = equity * s->sizing.value / 100.0 / stop_d;
        break;
    default:
        qty = equity * s->sizing.value / 100.0 / unit;
        break;
    }
    if (e->cfg.size_pct > 0) qty = equity * e->cfg.size_pct / 100.0 / unit;
    if (qty * unit > equity) qty = equity / unit; /* no leverage */
    if (!(qty > 0)) return;
    double fee = qty * price * e->fee_rate;
    e->cash -= side * qty * price + fee;
    e->fees += fee;
    e->qty = side * qty;
    e->side = side;
    e->entry_price = price;
    e->entry_fee = fee;
    e->entry_bar = bar;
    e->stop = s->stop_loss.kind ? price - side * stop_d : NAN;
    e->target = s->take_profit.kind ? price + side * target_d : NAN;
}

static void fill_pending(engine *e, size_t bar)
{
    double open = e->b->open[bar];
    int p = e->pending;
    e->pending = P_NONE;
    if (p == P_EXIT || p == P_REVERSE) {
        if (e->side) {
            double px = open * (1.0 - e->side * e->slip);
            close_position(e, bar, px,
                           p == P_REVERSE ? QG_EXIT_REASON_REVERSE : QG_EXIT_REASON_SIGNAL);
        }
        if (p == P_EXIT) return;
    }
    if (!e->side) open_position(e, bar, e->pending_side, open);
}

/* Stop first, then target; a bar that opens beyond the level fills at the
 * open. Targets are limits and pay no slippage. */
static void check_exits(engine *e, size_t bar)
{
    const qg_bars *b = e->b;
    double o = b->open[bar];
    if (e->side > 0) {
        if (b->low[bar] <= e->stop) {
            double px = (o < e->stop ? o : e->stop) * (1.0 - e->slip);
            record_decision(e, bar, QG_ACT_STOP);
            close_position(e, bar, px, QG_EXIT_REASON_STOP);
        } else if (b->high[bar] >= e->target) {
            record_decision(e, bar, QG_ACT_TARGET);
            close_position(e, bar, o > e->target ? o : e->target, QG_EXIT_REASON_TARGET);
        }
    } else {
        if (b->high[bar] >= e->stop) {
            double px = (o > e->stop ? o : e->stop) * (1.0 + e->slip);
            record_decision(e, bar, QG_ACT_STOP);
            close_position(e, bar, px, QG_EXIT_REASON_STOP);
        } else if (b->low[bar] <= e->target) {
            record_decision(e, bar, QG_ACT_TARGET);
            close_position(e, bar, o < e->target ? o : e->target, QG_EXIT_REASON_TARGET);
        }
    }
}

/* The ATR an ATR-based rule measures from, at block index i; NAN for the
 * other kinds. The stop and the target may use ATRs of different periods. */
static double atr_at(const engine *e, const qg_exit_rule *r, size_t i)
{
    return r->kind == QG_EXIT_ATR ? e->ind_buf[r->atr_ind][0][e->pad + i] : NAN;
}

/* Reads the masks at block index i (bar `bar`) and sets the next order. */
static void decide(engine *e, size_t i, size_t bar)
{
    bool el = e->entry_long[i], es = e->entry_short[i];
    int p = P_NONE, open_side = 0;
    if (e->side == 0) {
        if (el != es) p = el ? P_ENTER_LONG : P_ENTER_SHORT, open_side = el ? 1 : -1;
    } else if (e->side > 0) {
        if (es)
            p = P_REVERSE, open_side = -1;
        else if (e->exit_long[i])
            p = P_EXIT;
    } else {
        if (el)
            p = P_REVERSE, open_side = 1;
        else if (e->exit_short[i])
            p = P_EXIT;
    }
    if (p == P_NONE) return;
    e->pending = p;
    e->pending_side = open_side;
    if (p == P_EXIT || p == P_REVERSE)
        record_decision(e, bar, e->side > 0 ? QG_ACT_EXIT_LONG : QG_ACT_EXIT_SHORT);
    if (open_side) {
        record_decision(e, bar, open_side > 0 ? QG_ACT_ENTER_LONG : QG_ACT_ENTER_SHORT);
        e->pending_stop_atr = atr_at(e, &e->s->stop_loss, i);
        e->pending_target_atr = atr_at(e, &e->s->take_profit, i);
    }
}

/* ---- metrics on the fly ---- */

static void close_period(engine *e, double eq)
{
    double r = eq / e->period_start_eq - 1.0;
    e->r_sum += r;
    e->r_sum2 += r * r;
    if (r < 0) e->r_down2 += r * r;
    e->r_n++;
    e->period_start_eq = eq;
}

static void push_curve_point(engine *e, eq_track *k, int64_t ts, double eq)
{
    double gap_pct = k->gap_peak > 0 ? k->gap / k->gap_peak * 100.0 : 0;
    qg_equity_point pt = {ts, eq, gap_pct};
    if (vec_push(&e->curve, &pt)) e->oom = QG_ENOMEM;
    k->gap = 0;
    k->gap_peak = 0;
    k->countdown = e->curve_step;
}

static void observe(engine *e, size_t bar, double eq)
{
    qg_bar_state st = {bar, e->cash, e->qty, e->b->close[bar], eq};
    e->cfg.on_bar(e->cfg.on_bar_ud, &st);
}

/* Remembers the deepest fall below the peak inside the current sample. */
static inline void note_gap(eq_track *k, double eq)
{
    if (k->peak - eq > k->gap) {
        k->gap = k->peak - eq;
        k->gap_peak = k->peak;
    }
}

/* First index in [lo, hi) whose time is >= t (hi when none). */
static size_t first_at_or_after(const int64_t *ts, size_t lo, size_t hi, int64_t t)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ts[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Accounts for bars [from, to) during which the account is flat with no
 * order pending, so equity stays exactly eq (the previous bar's). The
 * result is what walking them one by one would give: the peak time moves
 * if eq is the peak, each day boundary closes a period (the first with the
 * day's real return, the rest with 0), and curve samples are taken. */
static void skip_flat(engine *e, eq_track *k, size_t from, size_t to, double eq)
{
    const int64_t *ts = e->b->ts;
    if (eq >= k->peak) k->peak_ts = ts[to - 1];
    if (e->daily) {
        while (k->next_period_ts <= ts[to - 1]) {
            size_t idx = first_at_or_after(ts, from, to, k->next_period_ts);
            close_period(e, eq);
            e->periods++;
            k->next_period_ts = qg_time_bucket(ts[idx], QG_MS_PER_DAY) + QG_MS_PER_DAY;
        }
    } else {
        e->r_n += to - from; /* each a return of exactly 0 */
    }
    size_t left = to - from;
    bool below = eq < k->peak;
    if (below) note_gap(k, eq);
    while (k->countdown <= left) {
        size_t idx = to - left + k->countdown - 1;
        left = to - idx - 1;
        push_curve_point(e, k, ts[idx], eq);
        if (below && left) note_gap(k, eq); /* the bars after it open a new sample */
    }
    k->countdown -= left;
    k->last_eq = eq;
}

/* Statistics of one marked-to-market bar: peak and drawdown, period
 * returns, the curve sample. Shared by every path through the bars. */
static inline void track_equity(engine *e, eq_track *k, size_t t, int64_t now, double eq,
                                bool daily)
{
    if (eq >= k->peak) {
        if (k->under && now - k->peak_ts > k->max_dd_ms) k->max_dd_ms = now - k->peak_ts;
        k->under = false;
        k->peak = eq;
        k->peak_ts = now;
        k->dd_floor = eq * (1.0 - k->max_dd);
    } else {
        k->under = true;
        if (eq < k->dd_floor) {
            k->max_dd = 1.0 - eq / k->peak;
            k->dd_floor = eq;
        }
        note_gap(k, eq);
    }
    if (daily) {
        if (now >= k->next_period_ts) {
            if (t > e->sb) close_period(e, k->last_eq);
            e->periods++;
            k->next_period_ts = qg_time_bucket(now, QG_MS_PER_DAY) + QG_MS_PER_DAY;
        }
    } else if (t > e->sb) {
        close_period(e, eq);
    }
    k->last_eq = eq;
    if (--k->countdown == 0) push_curve_point(e, k, now, eq);
}

/* Bars [from, to) held in a position with no stop or target and no signal:
 * only marking to market happens, so cash and quantity stay in registers. */
static void walk_position(engine *e, eq_track *k, size_t from, size_t to, bool daily)
{
    const int64_t *ts = e->b->ts;
    const double *close = e->b->close;
    const double cash = e->cash, qty = e->qty;
    for (size_t t = from; t < to; t++) track_equity(e, k, t, ts[t], cash + qty * close[t], daily);
    k->bars_in_pos += to - from;
}

/* Index of the first j in [i, n) where a or b is set (n when none). */
static size_t next_signal(const qg_mask_t *a, const qg_mask_t *b, size_t i, size_t n)
{
    while (i < n && !(a[i] | b[i])) i++;
    return i;
}

/* The per-bar loop over one block: fill, stops, mark to market, statistics,
 * then a look at the masks. Stretches where nothing can happen (flat, or in
 * a position without stops, until the next signal) are handed to skip_flat
 * and walk_position, unless an observer wants to see every bar. */
static void run_block(engine *e, size_t start, size_t first, size_t n)
{
    const int64_t *ts = e->b->ts;
    const double *close = e->b->close;
    const qg_mask_t *el = e->entry_long, *es = e->entry_short;
    const qg_mask_t *xl = e->exit_long, *xs = e->exit_short;
    const bool daily = e->daily, observed = e->cfg.on_bar != NULL;
    const bool has_exits =
        e->s->stop_loss.kind != QG_EXIT_NONE || e->s->take_profit.kind != QG_EXIT_NONE;
    eq_track k = e->k;
    for (size_t i = first; i < n; i++) {
        size_t t = start + i;
        if (e->pending) fill_pending(e, t);
        if (e->side) {
            if (has_exits) check_exits(e, t);
            k.bars_in_pos += e->side != 0;
        }
        double eq = e->cash + e->qty * close[t];
        track_equity(e, &k, t, ts[t], eq, daily);
        if (observed) observe(e, t, eq);
        int side = e->side;
        bool act = side == 0 ? (el[i] | es[i]) : side > 0 ? (es[i] | xl[i]) : (el[i] | xs[i]);
        if (act) decide(e, i, t);
        if (observed || e->pending || (e->side && has_exits)) continue;
        size_t j = e->side == 0  ? next_signal(el, es, i + 1, n)
                   : e->side > 0 ? next_signal(es, xl, i + 1, n)
                                 : next_signal(el, xs, i + 1, n);
        if (j == i + 1) continue;
        /* The fast paths never read open[], so the fill at bar j+1 would be
         * a cache miss; start loading it now, while they run. */
        size_t fill = start + j + 1 < e->b->n ? start + j + 1 : start + j;
        __builtin_prefetch(&e->b->open[fill]);
        __builtin_prefetch(&ts[start + j - 1]);
        if (e->side)
            walk_position(e, &k, t + 1, start + j, daily);
        else
            skip_flat(e, &k, t + 1, start + j, eq);
        i = j - 1;
    }
    e->k = k;
}

/* ---- finishing ---- */

static void finish_metrics(engine *e, qg_metrics *m)
{
    const qg_bars *b = e->b;
    size_t last = b->n - 1, n = b->n - e->sb; /* bars traded */
    memset(m, 0, sizeof *m);
    m->bars = n;
    m->start_ts = b->ts[e->sb];
    m->end_ts = b->ts[last];
    m->start_equity = e->cfg.cash;
    m->final_equity = e->cash; /* the position is closed by now */
    m->total_return = (m->final_equity / m->start_equity - 1.0) * 100.0;
    m->buy_hold_return = (b->close[last] / b->open[e->sb] - 1.0) * 100.0;
    int64_t width = b->timeframe_ms ? b->timeframe_ms : qg_bars_detect_timeframe(b);
    double years = (double)(m->end_ts - m->start_ts + width) / (365.25 * QG_MS_PER_DAY);
    double growth = m->final_equity / m->start_equity;
    m->cagr = years > 0 && growth > 0 ? (pow(growth, 1.0 / years) - 1.0) * 100.0 : NAN;
    if (growth <= 0) m->cagr = -100.0;
    m->daily_returns = e->daily;
    m->periods_per_year = years > 0 ? (double)(e->daily ? e->periods : n) / years : NAN;
    double ann = sqrt(m->periods_per_year);
    double mean = e->r_n ? e->r_sum / (double)e->r_n : NAN;
    double var = e->r_n > 1 ? (e->r_sum2 - e->r_sum * mean) / (double)(e->r_n - 1) : NAN;
    double sd = var > 0 ? sqrt(var) : 0;
    double down = e->r_n ? sqrt(e->r_down2 / (double)e->r_n) : NAN;
    m->volatility = sd * ann * 100.0;
    m->sharpe = sd > 0 ? mean / sd * ann : NAN;
    m->sortino = down > 0 ? mean / down * ann : NAN;
    m->max_drawdown = e->k.max_dd * 100.0;
    int64_t under = e->k.under ? m->end_ts - e->k.peak_ts : 0;
    m->max_drawdown_ms = under > e->k.max_dd_ms ? under : e->k.max_dd_ms;
    m->calmar = m->max_drawdown > 0 ? m->cagr / m->max_drawdown : NAN;
    m->trades = e->n_trades;
    m->wins = e->wins;
    m->losses = e->losses;
    double nt = (double)e->n_trades;
    m->win_rate = nt ? (double)e->wins / nt * 100.0 : NAN;
    m->profit_factor = e->gross_loss > 0     ? e->gross_profit / e->gross_loss
                       : e->gross_profit > 0 ? INFINITY
                                             : NAN;
    m->expectancy = nt ? e->pnl_sum / nt : NAN;
    m->avg_win = e->wins ? e->gross_profit / (double)e->wins : NAN;
    m->avg_loss = e->losses ? -e->gross_loss / (double)e->losses : NAN;
    m->best_trade = nt ? e->best : NAN;
    m->worst_trade = nt ? e->worst : NAN;
    m->exposure = (double)e->k.bars_in_pos / (double)n * 100.0;
    double pvar = nt > 1 ? (e->pnl_sum2 - e->pnl_sum * e->pnl_sum / nt) / (nt - 1) : NAN;
    m->sqn = pvar > 0 ? sqrt(nt) * (e->pnl_sum / nt) / sqrt(pvar) : NAN;
    m->fees = e->fees;
}

static qg_status check_config(const qg_strategy *s, const qg_bt_config *c, qg_direction dir,
                              qg_error *err)
{
    if (!(c->cash > 0) || !isfinite(c->cash))
        return qg_error_set(err, QG_EINVAL, "cash: must be a positive number, got %g", c->cash);
    if (!(c->fee_bps >= 0 && c->fee_bps < 10000))
        return qg_error_set(err, QG_EINVAL, "fee_bps: must be in [0, 10000), got %g", c->fee_bps);
    if (!(c->slippage_bps >= 0 && c->slippage_bps < 10000))
        return qg_error_set(err, QG_EINVAL, "slippage_bps: must be in [0, 10000), got %g",
                            c->slippage_bps);
    if (c->size_pct < 0 || c->size_pct > 100)
        return qg_error_set(err, QG_EINVAL, "size_pct: must be in (0, 100], got %g", c->size_pct);
    if ((dir & QG_DIR_LONG) && s->entry_long < 0)
        return qg_error_set(err, QG_EINVAL,
                            "direction %s needs an entry.long condition in strategy '%s'",
                            dir == QG_DIR_BOTH ? "both" : "long", s->name);
    if ((dir & QG_DIR_SHORT) && s->entry_short < 0)
        return qg_error_set(err, QG_EINVAL,
                            "direction %s needs an entry.short condition in strategy '%s'",
                            dir == QG_DIR_BOTH ? "both" : "short", s->name);
    return QG_OK;
}

static void engine_start(engine *e)
{
    const qg_bars *b = e->b;
    e->fee_rate = e->cfg.fee_bps / 1e4;
    e->slip = e->cfg.slippage_bps / 1e4;
    e->cash = e->cfg.cash;
    e->stop = e->target = NAN;
    e->period_start_eq = e->cfg.cash;
    e->sb = e->cfg.start_bar;
    e->daily = b->ts[b->n - 1] - b->ts[e->sb] >= 20 * QG_MS_PER_DAY;
    e->k = (eq_track){.peak = e->cfg.cash,
                      .dd_floor = e->cfg.cash,
                      .last_eq = e->cfg.cash,
                      .peak_ts = b->ts[e->sb],
                      .next_period_ts = INT64_MIN,
                      /* Without a curve the countdown never reaches 0. */
                      .countdown = SIZE_MAX};
    if (e->cfg.curve_points) {
        e->curve_step = (b->n - e->sb + e->cfg.curve_points - 1) / e->cfg.curve_points;
        e->k.countdown = e->curve_step;
    }
}

qg_status qg_backtest_run(const qg_strategy *s, const qg_bars *bars, const qg_bt_config *cfg,
                          qg_bt_result *out, qg_error *err)
{
    memset(out, 0, sizeof *out);
    engine *e = calloc(1, sizeof *e);
    if (!e) return qg_error_set(err, QG_ENOMEM, "out of memory");
    e->s = s;
    e->b = bars;
    e->cfg = cfg ? *cfg : qg_bt_config_default();
    e->dir = e->cfg.direction ? e->cfg.direction : s->direction;
    e->trades.elem = sizeof(qg_trade);
    e->decisions.elem = sizeof(qg_decision);
    e->curve.elem = sizeof(qg_equity_point);
    qg_status rc = check_config(s, &e->cfg, e->dir, err);
    if (rc) goto out;
    if (!bars->n) {
        rc = qg_error_set(err, QG_EINVAL, "no bars to backtest");
        goto out;
    }
    if (e->cfg.start_bar >= bars->n) {
        rc = qg_error_set(err, QG_EINVAL, "start_bar: %zu is not before the last of %zu bars",
                          e->cfg.start_bar, bars->n);
        goto out;
    }
    if ((rc = engine_setup(e, err))) goto out;
    engine_start(e);
    for (size_t start = 0; start < bars->n; start += BLOCK) {
        size_t n = bars->n - start < BLOCK ? bars->n - start : BLOCK;
        compute_series(e, start, n);
        for (size_t k = 0; k < s->n_nodes; k++)
            if (e->mask[k]) compute_mask(e, (int)k, n);
        /* Bars before start_bar only advance the indicators. */
        if (start + n > e->sb) run_block(e, start, e->sb > start ? e->sb - start : 0, n);
        shift_history(e, n);
        if (e->cfg.progress) e->cfg.progress(e->cfg.progress_ud, start + n, bars->n);
    }
    size_t last = bars->n - 1;
    if (e->side) {
        double px = bars->close[last] * (1.0 - e->side * e->slip);
        close_position(e, last, px, QG_EXIT_REASON_END);
    }
    if (e->daily) close_period(e, e->cash);
    if (e->curve_step) {
        /* The last sample shows the equity after the final close. */
        if (e->curve.n && ((qg_equity_point *)e->curve.data)[e->curve.n - 1].ts == bars->ts[last])
            ((qg_equity_point *)e->curve.data)[e->curve.n - 1].equity = e->cash;
        else
            push_curve_point(e, &e->k, bars->ts[last], e->cash);
    }
    if (e->oom) {
        rc = qg_error_set(err, QG_ENOMEM, "out of memory recording trades");
        goto out;
    }
    finish_metrics(e, &out->m);
    out->trades = e->trades.data;
    out->n_trades = e->trades.n;
    out->decisions = e->decisions.data;
    out->n_decisions = e->decisions.n;
    out->curve = e->curve.data;
    out->n_curve = e->curve.n;
    e->trades.data = e->decisions.data = e->curve.data = NULL;
out:
    engine_free(e);
    free(e);
    return rc;
}

void qg_bt_result_free(qg_bt_result *r)
{
    free(r->trades);
    free(r->decisions);
    free(r->curve);
    memset(r, 0, sizeof *r);
}
