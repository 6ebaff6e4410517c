/*
 * routing.c - named models to ordered deployments, health and rate windows
 * (see routing.h).
 *
 * Deployments are kept sorted by (named model, priority, load order), so a
 * plan is a scan per model of the chain, and a snapshot lists them in the
 * order the plans use. Health lives in an array parallel to the
 * deployments, matched by id when a reload replaces them.
 */
#include "ai/routing.h"

#include <quantgate/log.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_S     60
#define CHAIN_MAX    16 /* named models followed in one plan */
#define BUILTIN_NAME "builtin"

typedef struct health {
    char id[48];
    int64_t cooling_until_ms;
    int consecutive;
    int64_t last_failure_ms;
    int64_t calls, failures;
    qg_ai_errkind last_error;
    /* the rate window: bucket i holds second sec[i] (sec % 60 == i) */
    int64_t sec[WINDOW_S];
    int64_t req[WINDOW_S];
    int64_t tok[WINDOW_S];
} health;

struct qg_ai_router {
    pthread_mutex_t mu;
    qg_ai_router_config cfg;
    qg_ai_deployment *deps; /* sorted; see above */
    health *health;         /* parallel to deps */
    size_t ndeps;
    qg_ai_model *models;
    size_t nmodels;
};

static int64_t env_int(const char *name, int64_t def, int64_t min)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end || n < min) {
        qg_warn("%s=%s is not an integer >= %lld; using %lld", name, v, (long long)min,
                (long long)def);
        return def;
    }
    return n;
}

void qg_ai_router_config_default(qg_ai_router_config *c)
{
    memset(c, 0, sizeof *c);
    c->cooldown_ms = env_int("QG_AI_COOLDOWN_S", 60, 0) * 1000;
    c->fail_threshold = (int)env_int("QG_AI_COOLDOWN_FAILURES", 3, 1);
    c->fail_window_ms = env_int("QG_AI_COOLDOWN_WINDOW_S", 60, 1) * 1000;
}

qg_ai_router *qg_ai_router_new_with(const qg_ai_router_config *c)
{
    qg_ai_router *r = qg_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->cfg = *c;
    return r;
}

qg_ai_router *qg_ai_router_new(void)
{
    qg_ai_router_config c;
    qg_ai_router_config_default(&c);
    return qg_ai_router_new_with(&c);
}

void qg_ai_router_free(qg_ai_router *r)
{
    if (!r) return;
    free(r->deps);
    free(r->health);
    free(r->models);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int64_t now_ms(const qg_ai_router *r)
{
    return r->cfg.now_ms ? r->cfg.now_ms(r->cfg.clock_ud) : qg_time_now_ms();
}

/* ---- load ---- */

typedef struct sort_item {
    const qg_ai_deployment *d;
    size_t order;
} sort_item;

static int by_model_priority(const void *pa, const void *pb)
{
    const sort_item *a = pa, *b = pb;
    int c = strcmp(a->d->model_name, b->d->model_name);
    if (c) return c;
    if (a->d->priority != b->d->priority) return a->d->priority < b->d->priority ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static health *find_health(health *hs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(hs[i].id, id)) return &hs[i];
    return NULL;
}

qg_status qg_ai_router_load(qg_ai_router *r, const qg_ai_deployment *deps, size_t ndeps,
                            const qg_ai_model *models, size_t nmodels, qg_error *err)
{
    /* a repeated id would share one health record between two rows: the
     * first one wins (the catalog lists the admin's rows before the
     * environment's) */
    bool *dup = qg_xcalloc(ndeps ? ndeps : 1, sizeof *dup);
    for (size_t i = 0; i < ndeps; i++)
        for (size_t j = 0; j < i && !dup[i]; j++)
            if (!dup[j] && !strcmp(deps[i].id, deps[j].id)) {
                dup[i] = true;
                qg_warn("ai: deployment id '%s' is used twice (models '%s' and '%s'); the "
                        "second is ignored",
                        deps[i].id, deps[j].model_name, deps[i].model_name);
            }
    sort_item *items = qg_xcalloc(ndeps ? ndeps : 1, sizeof *items);
    size_t nkeep = 0;
    for (size_t i = 0; i < ndeps; i++)
        if (!dup[i]) items[nkeep++] = (sort_item){&deps[i], i};
    free(dup);
    ndeps = nkeep;
    qsort(items, ndeps, sizeof *items, by_model_priority);
    qg_ai_deployment *nd = qg_xcalloc(ndeps ? ndeps : 1, sizeof *nd);
    health *nh = qg_xcalloc(ndeps ? ndeps : 1, sizeof *nh);
    qg_ai_model *nm = qg_xcalloc(nmodels ? nmodels : 1, sizeof *nm);
    if (nmodels) memcpy(nm, models, nmodels * sizeof *nm);

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < ndeps; i++) {
        nd[i] = *items[i].d;
        health *old = find_health(r->health, r->ndeps, nd[i].id);
        if (old)
            nh[i] = *old;
        else
            snprintf(nh[i].id, sizeof nh[i].id, "%s", nd[i].id);
    }
    free(r->deps);
    free(r->health);
    free(r->models);
    r->deps = nd;
    r->health = nh;
    r->ndeps = ndeps;
    r->models = nm;
    r->nmodels = nmodels;
    pthread_mutex_unlock(&r->mu);
    free(items);
    return QG_OK;
}

/* ---- plan ---- */

static const qg_ai_model *find_model(const qg_ai_router *r, const char *name)
{
    for (size_t i = 0; i < r->nmodels; i++)
        if (!strcmp(r->models[i].name, name)) return &r->models[i];
    return NULL;
}

static bool serves(const qg_ai_router *r, const char *name)
{
    for (size_t i = 0; i < r->ndeps; i++)
        if (!strcmp(r->deps[i].model_name, name)) return true;
    return false;
}

static void builtin_dep(qg_ai_deployment *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", BUILTIN_NAME);
    snprintf(d->model_name, sizeof d->model_name, "%s", BUILTIN_NAME);
    snprintf(d->provider, sizeof d->provider, "%s", BUILTIN_NAME);
    snprintf(d->model, sizeof d->model, "%s", BUILTIN_NAME);
    d->enabled = true;
}

/* What a plan is collecting: candidates seen, kept, and the soonest end of
 * a cool-down among the skipped. */
typedef struct planner {
    qg_ai_deployment *out;
    size_t cap, n;
    size_t candidates;
    int64_t soonest_ms; /* -1: none cooling */
    int64_t now;
} planner;

static void consider(const qg_ai_router *r, planner *p, size_t i)
{
    const qg_ai_deployment *d = &r->deps[i];
    if (!d->enabled) return;
    p->candidates++;
    int64_t until = r->health[i].cooling_until_ms;
    if (until > p->now) {
        if (p->soonest_ms < 0 || until < p->soonest_ms) p->soonest_ms = until;
        return;
    }
    if (p->n < p->cap) p->out[p->n++] = *d;
}

static void add_builtin(planner *p)
{
    p->candidates++;
    if (p->n < p->cap) builtin_dep(&p->out[p->n++]);
}

qg_status qg_ai_router_plan(qg_ai_router *r, const char *name, qg_ai_deployment *out, size_t cap,
                            size_t *n, qg_error *err)
{
    if (!name || !*name) name = "analyst";
    *n = 0;
    qg_status rc = QG_OK;
    planner p = {.out = out, .cap = cap, .soonest_ms = -1, .now = now_ms(r)};
    pthread_mutex_lock(&r->mu);
    if (find_model(r, name) || serves(r, name)) {
        const char *chain[CHAIN_MAX];
        size_t nchain = 0;
        const char *cur = name;
        while (cur && *cur && nchain < CHAIN_MAX) {
            bool seen = false;
            for (size_t k = 0; k < nchain; k++) seen |= !strcmp(chain[k], cur);
            if (seen) break; /* a fallback cycle: each model is tried once */
            chain[nchain++] = cur;
            bool any = false;
            for (size_t i = 0; i < r->ndeps; i++)
                if (!strcmp(r->deps[i].model_name, cur)) {
                    consider(r, &p, i);
                    any = true;
                }
            if (!any && !strcmp(cur, BUILTIN_NAME)) add_builtin(&p);
            const qg_ai_model *m = find_model(r, cur);
            cur = m ? m->fallback : NULL;
        }
    } else {
        size_t i = 0;
        while (i < r->ndeps && strcmp(r->deps[i].id, name)) i++;
        if (i < r->ndeps) {
            consider(r, &p, i);
            if (!p.candidates) {
                rc = qg_error_set(err, QG_ENOTFOUND, "deployment '%s' is disabled", name);
                goto out;
            }
        } else if (!strcmp(name, BUILTIN_NAME)) {
            add_builtin(&p);
        } else {
            rc = qg_error_set(err, QG_ENOTFOUND, "no model or deployment named '%s'", name);
            goto out;
        }
    }
    if (!p.candidates) {
        rc = qg_error_set(err, QG_ENOTFOUND, "model '%s' has no enabled deployment", name);
    } else if (!p.n) {
        int64_t secs = (p.soonest_ms - p.now + 999) / 1000;
        rc = qg_error_set(err, QG_EAGAIN, "every deployment of '%s' is cooling down for %lld s",
                          name, (long long)secs);
    }
out:
    pthread_mutex_unlock(&r->mu);
    *n = p.n;
    return rc;
}

qg_status qg_ai_router_get(qg_ai_router *r, const char *id, qg_ai_deployment *out)
{
    qg_status rc = QG_ENOTFOUND;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->ndeps; i++)
        if (!strcmp(r->deps[i].id, id)) {
            *out = r->deps[i];
            rc = QG_OK;
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- health ---- */

static health *health_of(qg_ai_router *r, const char *id, size_t *idx)
{
    for (size_t i = 0; id && i < r->ndeps; i++)
        if (!strcmp(r->health[i].id, id)) {
            if (idx) *idx = i;
            return &r->health[i];
        }
    return NULL;
}

static void cool(health *h, int64_t until)
{
    if (until > h->cooling_until_ms) h->cooling_until_ms = until;
}

void qg_ai_router_report(qg_ai_router *r, const char *dep_id, qg_ai_errkind kind,
                         int64_t retry_after_ms)
{
    pthread_mutex_lock(&r->mu);
    health *h = health_of(r, dep_id, NULL);
    if (!h || kind == QG_AI_ECANCELLED) goto out;
    int64_t now = now_ms(r);
    h->calls++;
    if (kind == QG_AI_OK) {
        h->consecutive = 0;
        h->cooling_until_ms = 0;
        goto out;
    }
    h->failures++;
    h->last_error = kind;
    int64_t pause = r->cfg.cooldown_ms;
    if (retry_after_ms > pause) pause = retry_after_ms;
    if (kind == QG_AI_EAUTH) { /* a wrong key does not fix itself in a few seconds */
        h->consecutive++;
        h->last_failure_ms = now;
        cool(h, now + pause);
        goto out;
    }
    /* the caller's mistakes (bad request, context) say nothing about the
     * deployment's health */
    if (!qg_ai_errkind_retryable(kind) && kind != QG_AI_EPROTOCOL) goto out;
    if (h->consecutive && now - h->last_failure_ms > r->cfg.fail_window_ms) h->consecutive = 0;
    h->consecutive++;
    h->last_failure_ms = now;
    if (h->consecutive >= r->cfg.fail_threshold) {
        cool(h, now + pause);
        qg_info("ai: deployment %s cooling down for %lld s after %d failures (%s)", h->id,
                (long long)(pause / 1000), h->consecutive, qg_ai_errkind_name(kind));
    } else if (retry_after_ms > 0 && (kind == QG_AI_ERATE || kind == QG_AI_EOVERLOADED)) {
        cool(h, now + retry_after_ms); /* others skip it while the provider asked to wait */
    }
out:
    pthread_mutex_unlock(&r->mu);
}

/* ---- rate windows ---- */

static void window_sums(const health *h, int64_t now_s, int64_t *req, int64_t *tok)
{
    *req = *tok = 0;
    for (int i = 0; i < WINDOW_S; i++)
        if (h->sec[i] > now_s - WINDOW_S && h->sec[i] <= now_s) {
            *req += h->req[i];
            *tok += h->tok[i];
        }
    if (*tok < 0) *tok = 0;
}

static int64_t *bucket(health *h, int64_t now_s, bool tokens)
{
    int i = (int)(now_s % WINDOW_S);
    if (h->sec[i] != now_s) {
        h->sec[i] = now_s;
        h->req[i] = h->tok[i] = 0;
    }
    return tokens ? &h->tok[i] : &h->req[i];
}

/* How long until the window's total of field (req or tok) drops to at
 * most limit - need, oldest buckets expiring first. */
static int64_t wait_for(const health *h, int64_t now, bool tokens, int64_t used, int64_t need,
                        int64_t limit)
{
    int64_t now_s = now / 1000;
    for (int64_t s = now_s - WINDOW_S + 1; s <= now_s; s++) {
        int i = (int)(s % WINDOW_S);
        if (h->sec[i] != s) continue;
        used -= tokens ? h->tok[i] : h->req[i];
        if (used + need <= limit || (tokens && used <= 0))
            return (s + WINDOW_S) * 1000 - now; /* when second s leaves the window */
    }
    return WINDOW_S * 1000;
}

qg_status qg_ai_router_acquire(qg_ai_router *r, const char *dep_id, int64_t est_tokens,
                               int64_t *wait_ms)
{
    *wait_ms = 0;
    qg_status rc = QG_OK;
    if (est_tokens < 0) est_tokens = 0;
    pthread_mutex_lock(&r->mu);
    size_t i;
    health *h = health_of(r, dep_id, &i);
    if (!h) goto out; /* the made-up builtin */
    int64_t now = now_ms(r), now_s = now / 1000;
    int64_t req, tok;
    window_sums(h, now_s, &req, &tok);
    int64_t rpm = r->deps[i].rpm, tpm = r->deps[i].tpm;
    int64_t wait = 0;
    if (rpm && req + 1 > rpm) wait = wait_for(h, now, false, req, 1, rpm);
    if (tpm && tok > 0 && tok + est_tokens > tpm) {
        int64_t w = wait_for(h, now, true, tok, est_tokens, tpm);
        if (w > wait) wait = w;
    }
    if (wait > 0) {
        *wait_ms = wait;
        rc = QG_EAGAIN;
        goto out;
    }
    *bucket(h, now_s, false) += 1;
    *bucket(h, now_s, true) += est_tokens;
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void qg_ai_router_add_tokens(qg_ai_router *r, const char *dep_id, int64_t est_tokens,
                             int64_t actual_tokens)
{
    pthread_mutex_lock(&r->mu);
    size_t i;
    health *h = health_of(r, dep_id, &i);
    if (h) {
        if (est_tokens < 0) est_tokens = 0;
        if (actual_tokens < 0) actual_tokens = 0;
        *bucket(h, now_ms(r) / 1000, true) += actual_tokens - est_tokens;
    }
    pthread_mutex_unlock(&r->mu);
}

qg_status qg_ai_router_snapshot(qg_ai_router *r, qg_ai_dep_health **out, size_t *n)
{
    pthread_mutex_lock(&r->mu);
    qg_ai_dep_health *v = qg_xcalloc(r->ndeps ? r->ndeps : 1, sizeof *v);
    int64_t now = now_ms(r);
    for (size_t i = 0; i < r->ndeps; i++) {
        const qg_ai_deployment *d = &r->deps[i];
        const health *h = &r->health[i];
        qg_ai_dep_health *o = &v[i];
        snprintf(o->id, sizeof o->id, "%s", d->id);
        snprintf(o->model_name, sizeof o->model_name, "%s", d->model_name);
        snprintf(o->provider, sizeof o->provider, "%s", d->provider);
        snprintf(o->model, sizeof o->model, "%s", d->model);
        o->enabled = d->enabled;
        o->cooling_until_ms = h->cooling_until_ms > now ? h->cooling_until_ms : 0;
        o->consecutive_failures = h->consecutive;
        window_sums(h, now / 1000, &o->rpm_used, &o->tpm_used);
        o->rpm_limit = d->rpm;
        o->tpm_limit = d->tpm;
        o->calls = h->calls;
        o->failures = h->failures;
        o->last_error = h->last_error;
    }
    *n = r->ndeps;
    *out = v;
    pthread_mutex_unlock(&r->mu);
    return QG_OK;
}
