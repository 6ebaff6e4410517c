/*
 * check.c - proving the absence of look-ahead by cutting the data.
 *
 * A decision at bar t may use bars 0..t only. So if the data is cut after
 * bar L-1, every decision at a bar < L must come out exactly as in the run
 * over all the data; a decision that changes when later bars are removed
 * was using them. The check runs the full data once and many prefixes (cut
 * points spread over the data plus a few random ones from a fixed seed) in
 * parallel, and compares the decision logs bar by bar.
 */
#include <quantgate/backtest.h>
#include <quantgate/pool.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    qg_decide_fn decide;
    void *ud;
    const qg_bars *bars;
    const qg_decision *full;
    size_t n_full;
    size_t *cuts;
    qg_check_report *rep;
    pthread_mutex_t lock;
    qg_status rc;
    qg_error err;
} check_ctx;

static void report_mismatch(check_ctx *c, size_t cut, size_t bar, int full, int prefix)
{
    qg_check_report *r = c->rep;
    r->mismatches++;
    if (r->n_reported < QG_CHECK_MAX_REPORTED) {
        r->reported[r->n_reported].cut = cut;
        r->reported[r->n_reported].bar = bar;
        r->reported[r->n_reported].full = full;
        r->reported[r->n_reported].prefix = prefix;
        r->n_reported++;
    }
}

/* Walks both logs (each sorted by bar) up to the cut, reporting every
 * position where they differ. */
static void compare_logs(check_ctx *c, size_t cut, const qg_decision *pre, size_t n_pre)
{
    size_t i = 0, j = 0;
    while (true) {
        bool fi = i < c->n_full && c->full[i].bar < cut;
        bool pj = j < n_pre && pre[j].bar < cut;
        if (!fi && !pj) break;
        if (fi && pj && c->full[i].bar == pre[j].bar && c->full[i].action == pre[j].action) {
            i++, j++;
            continue;
        }
        if (fi && (!pj || c->full[i].bar <= pre[j].bar)) {
            bool same_bar = pj && c->full[i].bar == pre[j].bar;
            report_mismatch(c, cut, c->full[i].bar, (int)c->full[i].action,
                            same_bar ? (int)pre[j].action : 0);
            i++;
            j += same_bar;
        } else {
            report_mismatch(c, cut, pre[j].bar, 0, (int)pre[j].action);
            j++;
        }
    }
}

static void check_job(void *ud, size_t index, int worker)
{
    check_ctx *c = ud;
    size_t cut = c->cuts[index];
    qg_bars prefix = qg_bars_view(c->bars, 0, cut);
    qg_decision *pre = NULL;
    size_t n_pre = 0;
    qg_error err = {0};
    qg_status rc = c->decide(c->ud, &prefix, &pre, &n_pre, &err);
    pthread_mutex_lock(&c->lock);
    if (rc && !c->rc) {
        c->rc = rc;
        c->err = err;
    } else if (!rc) {
        compare_logs(c, cut, pre, n_pre);
    }
    pthread_mutex_unlock(&c->lock);
    free(pre);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Evenly spread cuts plus a quarter at random (splitmix64, fixed seed),
 * sorted and without duplicates; every cut leaves at least 2 bars. */
static size_t choose_cuts(size_t n, size_t want, size_t *out)
{
    size_t k = 0, even = want - want / 4;
    for (size_t i = 1; i <= even; i++) out[k++] = 2 + (n - 3) * i / (even + 1);
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    while (k < want) {
        uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        out[k++] = 2 + (size_t)(z % (n - 2));
    }
    qsort(out, k, sizeof *out, cmp_size);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || out[u - 1] != out[i]) out[u++] = out[i];
    return u;
}

qg_status qg_lookahead_check(qg_decide_fn decide, void *ud, const qg_bars *bars, size_t cuts,
                             int threads, qg_check_report *rep, qg_error *err)
{
    memset(rep, 0, sizeof *rep);
    if (bars->n < 4) return qg_error_set(err, QG_EINVAL, "need at least 4 bars to cut");
    if (cuts < 1) cuts = 1;
    if (cuts > bars->n - 3) cuts = bars->n - 3;
    check_ctx c = {.decide = decide, .ud = ud, .bars = bars, .rep = rep};
    qg_decision *full = NULL;
    qg_status rc = decide(ud, bars, &full, &c.n_full, err);
    if (rc) return rc;
    c.full = full;
    rep->decisions = c.n_full;
    c.cuts = malloc(cuts * sizeof *c.cuts);
    if (!c.cuts) {
        free(full);
        return qg_error_set(err, QG_ENOMEM, "out of memory");
    }
    rep->cuts = choose_cuts(bars->n, cuts, c.cuts);
    pthread_mutex_init(&c.lock, NULL);
    rc = qg_parallel_for(rep->cuts, threads, check_job, &c);
    pthread_mutex_destroy(&c.lock);
    if (!rc && c.rc) {
        rc = c.rc;
        if (err) *err = c.err;
    }
    free(c.cuts);
    free(full);
    return rc;
}

qg_status qg_strategy_decide(void *ud, const qg_bars *prefix, qg_decision **out, size_t *n,
                             qg_error *err)
{
    qg_strategy_runner *r = ud;
    qg_bt_config cfg = r->cfg;
    cfg.keep_decisions = true;
    cfg.keep_trades = false;
    cfg.curve_points = 0;
    cfg.progress = NULL;
    cfg.on_bar = NULL;
    qg_bt_result res;
    qg_status rc = qg_backtest_run(r->strategy, prefix, &cfg, &res, err);
    if (rc) return rc;
    *out = res.decisions;
    *n = res.n_decisions;
    res.decisions = NULL;
    qg_bt_result_free(&res);
    return QG_OK;
}
