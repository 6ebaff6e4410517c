/*
 * optimize.c - parallel grid search over strategy parameters.
 *
 * Each grid point re-parses the spec with the point's values (microseconds,
 * and it keeps constraints and validation in one place), then runs a
 * backtest that keeps only metrics. Points are claimed from an atomic
 * counter by qg_parallel_for, so threads stay busy whatever each point
 * costs. Results are sorted best first; a NAN score sorts last.
 */
#include <quantgate/backtest.h>
#include <quantgate/pool.h>

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int qg_objective_parse(const char *s)
{
    static const char *const names[] = {"sharpe", "return", "calmar", "sortino"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0) return i;
    return -1;
}

double qg_objective_value(qg_objective obj, const qg_metrics *m)
{
    switch (obj) {
    case QG_OBJ_SHARPE:
        return m->sharpe;
    case QG_OBJ_RETURN:
        return m->total_return;
    case QG_OBJ_CALMAR:
        return m->calmar;
    case QG_OBJ_SORTINO:
        return m->sortino;
    }
    return NAN;
}

size_t qg_grid_axis_count(const qg_grid_axis *a)
{
    return a->n_list ? a->n_list : (size_t)floor((a->to - a->from) / a->step + 1e-9) + 1;
}

double qg_grid_axis_value(const qg_grid_axis *a, size_t i)
{
    return a->n_list ? a->list[i] : a->from + (double)i * a->step;
}

/* One finite number at *p ending at one of `stops` (or the end); advances *p
 * past the stop. */
static bool grid_number(const char **p, const char *stops, double *out)
{
    char *end;
    *out = strtod(*p, &end);
    if (end == *p || !isfinite(*out) || (*end && !strchr(stops, *end))) return false;
    *p = *end ? end + 1 : end;
    return true;
}

static qg_status parse_grid_list(const char *text, const char *p, qg_grid_axis *out, qg_error *err)
{
    if (!*p) return qg_error_set(err, QG_EINVAL, "grid '%s': no values", text);
    while (*p) {
        if (out->n_list == QG_GRID_MAX_LIST)
            return qg_error_set(err, QG_EINVAL, "grid '%s': more than %d listed values", text,
                                QG_GRID_MAX_LIST);
        if (!grid_number(&p, ",", &out->list[out->n_list++]))
            return qg_error_set(err, QG_EINVAL, "grid '%s': expected numbers separated by commas",
                                text);
    }
    return QG_OK;
}

qg_status qg_grid_axis_parse(const char *text, qg_grid_axis *out, qg_error *err)
{
    memset(out, 0, sizeof *out);
    const char *eq = strchr(text, '=');
    if (!eq || eq == text || (size_t)(eq - text) >= sizeof out->name)
        return qg_error_set(err, QG_EINVAL,
                            "grid '%s': expected name=from:to:step or name=v1,v2,...", text);
    snprintf(out->name, sizeof out->name, "%.*s", (int)(eq - text), text);
    const char *p = eq + 1;
    if (!strchr(p, ':')) return parse_grid_list(text, p, out, err);
    if (!grid_number(&p, ":", &out->from) || !grid_number(&p, ":", &out->to) ||
        !grid_number(&p, "", &out->step))
        return qg_error_set(err, QG_EINVAL,
                            "grid '%s': expected name=from:to:step with three finite numbers",
                            text);
    if (!(out->step > 0))
        return qg_error_set(err, QG_EINVAL, "grid '%s': step must be greater than 0", text);
    if (out->to < out->from)
        return qg_error_set(err, QG_EINVAL, "grid '%s': 'to' is below 'from'", text);
    /* Count in floating point first: a huge range must not overflow size_t. */
    if (!((out->to - out->from) / out->step < 100000))
        return qg_error_set(err, QG_EINVAL, "grid '%s': more than 100000 values", text);
    return QG_OK;
}

typedef struct {
    const char *json;
    size_t len;
    const qg_param_override *fixed;
    size_t n_fixed;
    const qg_grid_axis *axes;
    size_t n_axes;
    size_t counts[QG_GRID_MAX_AXES];
    const qg_bars *bars;
    qg_bt_config cfg;
    qg_objective obj;
    size_t total;
    atomic_size_t done;
    qg_progress_fn progress; /* called from worker 0 only: the caller's thread */
    void *progress_ud;
    qg_grid_row *rows;
    bool *valid;
    atomic_int failed; /* first hard error (not a constraint): its status */
    qg_error err;      /* written once, by the thread that set failed */
} opt_ctx;

static void point_values(const opt_ctx *c, size_t index, double *values)
{
    for (size_t k = c->n_axes; k-- > 0;) {
        size_t i = index % c->counts[k];
        index /= c->counts[k];
        values[k] = qg_grid_axis_value(&c->axes[k], i);
    }
}

static void count_done(opt_ctx *c, int worker)
{
    size_t done = atomic_fetch_add(&c->done, 1) + 1;
    if (worker == 0 && c->progress) c->progress(c->progress_ud, done, c->total);
}

static void opt_job(void *ud, size_t index, int worker)
{
    opt_ctx *c = ud;
    qg_grid_row *row = &c->rows[index];
    qg_param_override ov[QG_STRAT_MAX_PARAMS + QG_GRID_MAX_AXES];
    size_t n = 0;
    for (size_t i = 0; i < c->n_fixed && n < QG_STRAT_MAX_PARAMS; i++) ov[n++] = c->fixed[i];
    point_values(c, index, row->values);
    for (size_t k = 0; k < c->n_axes; k++)
        ov[n++] = (qg_param_override){c->axes[k].name, row->values[k]};
    qg_strategy s;
    qg_error err = {0};
    qg_bt_result res;
    qg_status rc = qg_strategy_parse(c->json, c->len, ov, n, &s, &err);
    if (!rc) rc = qg_backtest_run(&s, c->bars, &c->cfg, &res, &err);
    if (rc) {
        /* A point that breaks a constraint is skipped; anything else (an
         * unknown parameter, out of memory) stops the search. */
        bool constraint = rc == QG_EINVAL && strstr(err.msg, "constraint '");
        int expected = 0;
        if (!constraint && atomic_compare_exchange_strong(&c->failed, &expected, (int)rc))
            c->err = err;
        count_done(c, worker);
        return;
    }
    row->m = res.m;
    row->score = qg_objective_value(c->obj, &res.m);
    c->valid[index] = true;
    qg_bt_result_free(&res);
    count_done(c, worker);
}

static int cmp_rows(const void *a, const void *b)
{
    double x = ((const qg_grid_row *)a)->score, y = ((const qg_grid_row *)b)->score;
    if (isnan(x)) return isnan(y) ? 0 : 1;
    if (isnan(y)) return -1;
    return x > y ? -1 : x < y;
}

qg_status qg_optimize(const char *spec_json, size_t spec_len, const qg_param_override *fixed,
                      size_t n_fixed, const qg_grid_axis *axes, size_t n_axes, const qg_bars *bars,
                      const qg_bt_config *cfg, qg_objective obj, int threads, qg_grid_result *out,
                      qg_error *err)
{
    memset(out, 0, sizeof *out);
    if (n_axes == 0 || n_axes > QG_GRID_MAX_AXES)
        return qg_error_set(err, QG_EINVAL, "give between 1 and %d --grid axes", QG_GRID_MAX_AXES);
    opt_ctx c = {.json = spec_json,
                 .len = spec_len,
                 .fixed = fixed,
                 .n_fixed = n_fixed,
                 .axes = axes,
                 .n_axes = n_axes,
                 .bars = bars,
                 .cfg = *cfg,
                 .obj = obj};
    size_t total = 1;
    for (size_t k = 0; k < n_axes; k++) {
        c.counts[k] = qg_grid_axis_count(&axes[k]);
        if (total > 10000000 / c.counts[k])
            return qg_error_set(err, QG_EINVAL, "the grid has more than 10 million points");
        total *= c.counts[k];
    }
    c.total = total;
    c.progress = cfg->progress;
    c.progress_ud = cfg->progress_ud;
    atomic_init(&c.done, 0);
    c.cfg.keep_trades = false;
    c.cfg.keep_decisions = false;
    c.cfg.curve_points = 0;
    c.cfg.on_bar = NULL;
    c.cfg.progress = NULL;
    c.rows = calloc(total, sizeof *c.rows);
    c.valid = calloc(total, sizeof *c.valid);
    qg_status rc = QG_OK;
    if (!c.rows || !c.valid) {
        rc = qg_error_set(err, QG_ENOMEM, "out of memory for %zu grid points", total);
        goto out;
    }
    atomic_init(&c.failed, 0);
    rc = qg_parallel_for(total, threads, opt_job, &c);
    if (!rc && atomic_load(&c.failed)) {
        rc = (qg_status)atomic_load(&c.failed);
        if (err) *err = c.err;
    }
    if (rc) goto out;
    out->points = total;
    size_t k = 0;
    for (size_t i = 0; i < total; i++)
        if (c.valid[i]) c.rows[k++] = c.rows[i];
    out->skipped = total - k;
    qsort(c.rows, k, sizeof *c.rows, cmp_rows);
    out->rows = c.rows;
    out->n_rows = k;
    c.rows = NULL;
out:
    free(c.rows);
    free(c.valid);
    return rc;
}

void qg_grid_result_free(qg_grid_result *r)
{
    free(r->rows);
    memset(r, 0, sizeof *r);
}
