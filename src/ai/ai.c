/*
 * ai.c - the facade of the AI layer (see ai.h): budgets, templates, the
 * attempt loop, structured output, and the usage record around one call.
 *
 * The order is fixed so that nothing is sent that should not be: the
 * budget check comes first (a refused call costs nothing and is still
 * recorded), the template is rendered before any provider is chosen (a
 * missing parameter is the caller's error, not a provider failure), and the
 * database connection is given back while providers are waited on, so a
 * slow model never holds one of the few connections of the store.
 *
 * Structured output: the answer is extracted and repaired (jsonfix), then
 * validated against the expected shape; an invalid answer gets one
 * corrective retry carrying the validation error, and if that fails too
 * the builtin provider answers and the result says so.
 */
#include "ai/ai.h"
#include "ai/ai_int.h"

#include "ai/catalog.h"
#include "ai/exec.h"
#include "ai/jsonfix.h"
#include "ai/prompt.h"
#include "ai/provider.h"
#include "ai/routing.h"
#include "ai/transport.h"
#include "ai/usage.h"
#include "store/store.h"

#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/pool.h>
#include <quantgate/time.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bytes of cJSON scratch for a template render (a signal analysis with five
 * similar setups takes about 25 KB); beyond it, malloc. */
#define QG_AI_RENDER_SCRATCH 65536

struct qg_ai {
    qg_store *store;
    qg_vault *vault;
    qg_ai_transport *transport;
    qg_ai_router *router;
    qg_workpool *pool;
    pthread_mutex_t mu; /* guards models */
    qg_ai_model *models;
    size_t nmodels;
    qg_prompt_cache *prompts; /* rendered templates' texts between calls */

    /* The usage writer: records queue here and one thread writes them in
     * batches, one transaction each, so no call waits on a commit (or a
     * WAL checkpoint). done counts written records; flush waits for it.
     * With a batcher (qg_ai_use_batcher) a batch is an op of the
     * database's group-commit writer instead of a transaction of its own. */
    pthread_t writer;
    bool writer_started;
    pthread_mutex_t wmu;
    pthread_cond_t wwork, wdone;
    struct rec_node *head, *tail;
    uint64_t queued, done;
    bool wstop;
    qg_batcher *batcher; /* under wmu */
    bool batcher_in_use; /* a batch is on its way through it; under wmu */
};

typedef struct rec_node {
    struct rec_node *next;
    qg_arena arena; /* the record's strings */
    qg_ai_call_record rec;
} rec_node;

/* ---- the usage writer ---- */

static void enqueue_record(qg_ai *ai, const qg_ai_call_record *r)
{
    rec_node *n = qg_xcalloc(1, sizeof *n);
    qg_arena_init(&n->arena, 1024);
    n->rec = *r;
    qg_arena *a = &n->arena;
    n->rec.id = qg_arena_strdup(a, r->id);
    n->rec.user_id = qg_arena_strdup(a, r->user_id);
    n->rec.token_id = qg_arena_strdup(a, r->token_id);
    n->rec.model_name = qg_arena_strdup(a, r->model_name);
    n->rec.deployment_id = qg_arena_strdup(a, r->deployment_id);
    n->rec.provider = qg_arena_strdup(a, r->provider);
    n->rec.model = qg_arena_strdup(a, r->model);
    n->rec.template_id = qg_arena_strdup(a, r->template_id);
    n->rec.outcome = qg_arena_strdup(a, r->outcome);
    n->rec.error = qg_arena_strdup(a, r->error);
    pthread_mutex_lock(&ai->wmu);
    if (ai->tail)
        ai->tail->next = n;
    else
        ai->head = n;
    ai->tail = n;
    ai->queued++;
    pthread_cond_signal(&ai->wwork);
    pthread_mutex_unlock(&ai->wmu);
}

/* Writes one batch, through the batcher when there is one; a failed batch
 * is retried record by record on a connection of its own, so one bad
 * record does not lose the others. */
static void write_batch(qg_ai *ai, qg_batcher *batcher, rec_node *list, size_t n)
{
    const qg_ai_call_record **recs = qg_xmalloc(sizeof *recs * n);
    size_t k = 0;
    for (rec_node *p = list; p; p = p->next) recs[k++] = &p->rec;
    qg_conn *c = NULL;
    qg_error err = {0};
    if (batcher && !qg_ai_usage_record_via(batcher, recs, n, &err)) {
        free(recs);
        return;
    }
    qg_error_clear(&err);
    if (qg_store_acquire(ai->store, &c, &err)) {
        qg_warn("ai: usage writer: %s; %zu call records lost", err.msg, n);
    } else if (qg_ai_usage_record_batch(c, recs, n, &err)) {
        for (size_t i = 0; i < n; i++) {
            qg_error e1 = {0};
            if (qg_ai_usage_record_batch(c, &recs[i], 1, &e1))
                qg_warn("ai: recording call %s failed: %s", recs[i]->id, e1.msg);
        }
    }
    if (c) qg_store_release(ai->store, c);
    free(recs);
}

static void *writer_main(void *arg)
{
    qg_ai *ai = arg;
    pthread_setname_np(pthread_self(), "qg-aiusage");
    pthread_mutex_lock(&ai->wmu);
    for (;;) {
        while (!ai->head && !ai->wstop) pthread_cond_wait(&ai->wwork, &ai->wmu);
        if (!ai->head) break; /* stopping and drained */
        rec_node *list = ai->head;
        ai->head = ai->tail = NULL;
        qg_batcher *batcher = ai->batcher;
        ai->batcher_in_use = batcher != NULL;
        pthread_mutex_unlock(&ai->wmu);
        size_t n = 0;
        for (rec_node *p = list; p; p = p->next) n++;
        write_batch(ai, batcher, list, n);
        while (list) {
            rec_node *next = list->next;
            qg_arena_free(&list->arena);
            free(list);
            list = next;
        }
        pthread_mutex_lock(&ai->wmu);
        ai->done += n;
        ai->batcher_in_use = false;
        pthread_cond_broadcast(&ai->wdone);
    }
    pthread_mutex_unlock(&ai->wmu);
    return NULL;
}

static bool writer_pending(qg_ai *ai)
{
    pthread_mutex_lock(&ai->wmu);
    bool pending = ai->done < ai->queued;
    pthread_mutex_unlock(&ai->wmu);
    return pending;
}

void qg_ai_use_batcher(qg_ai *ai, qg_batcher *b)
{
    if (!ai) return;
    pthread_mutex_lock(&ai->wmu);
    ai->batcher = b;
    while (!b && ai->batcher_in_use) pthread_cond_wait(&ai->wdone, &ai->wmu);
    pthread_mutex_unlock(&ai->wmu);
}

void qg_ai_flush(qg_ai *ai)
{
    if (!ai || !ai->writer_started) return;
    pthread_mutex_lock(&ai->wmu);
    uint64_t target = ai->queued;
    while (ai->done < target) pthread_cond_wait(&ai->wdone, &ai->wmu);
    pthread_mutex_unlock(&ai->wmu);
}

/* ---- lifecycle ---- */

static qg_status load_catalog(qg_ai *ai, qg_conn *c, qg_error *err)
{
    qg_ai_deployment *deps = NULL;
    qg_ai_model *models = NULL;
    size_t ndeps = 0, nmodels = 0;
    qg_status rc = qg_ai_catalog_load(c, &deps, &ndeps, &models, &nmodels, err);
    if (rc) return rc;
    rc = qg_ai_router_load(ai->router, deps, ndeps, models, nmodels, err);
    free(deps);
    if (rc) {
        free(models);
        return rc;
    }
    pthread_mutex_lock(&ai->mu);
    free(ai->models);
    ai->models = models;
    ai->nmodels = nmodels;
    pthread_mutex_unlock(&ai->mu);
    return QG_OK;
}

qg_status qg_ai_new(const qg_ai_config *cfg, qg_ai **out, qg_error *err)
{
    qg_status rc = QG_OK;
    qg_conn *c = NULL;
    qg_ai *ai = qg_xcalloc(1, sizeof *ai);
    ai->store = cfg->store;
    ai->vault = cfg->vault;
    pthread_mutex_init(&ai->mu, NULL);
    pthread_mutex_init(&ai->wmu, NULL);
    pthread_cond_init(&ai->wwork, NULL);
    pthread_cond_init(&ai->wdone, NULL);
    if ((rc = qg_ai_transport_new(&ai->transport, err))) goto out;
    ai->router = qg_ai_router_new();
    ai->prompts = qg_prompt_cache_new();
    if ((rc = qg_store_acquire(ai->store, &c, err))) goto out;
    if (cfg->prompts_dir && *cfg->prompts_dir) {
        int loaded = 0;
        /* A missing or broken defaults directory is not fatal: the templates
         * already in the database (or added through the API) still work,
         * and a task without one says so when it is called. */
        qg_error serr = {0};
        if (qg_prompt_seed_defaults(c, cfg->prompts_dir, &loaded, &serr))
            qg_warn("prompt templates: %s", serr.msg);
        if (loaded)
            qg_info("prompt templates: %d defaults loaded from %s", loaded, cfg->prompts_dir);
    }
    if ((rc = load_catalog(ai, c, err))) goto out;
    ai->pool = qg_workpool_new(cfg->concurrency > 0 ? cfg->concurrency : 64, "qg-ai");
    if (pthread_create(&ai->writer, NULL, writer_main, ai) != 0) {
        rc = qg_error_set(err, QG_EIO, "ai: cannot start the usage writer thread");
        goto out;
    }
    ai->writer_started = true;
out:
    if (c) qg_store_release(ai->store, c);
    if (rc) {
        qg_ai_free(ai);
        ai = NULL;
    }
    *out = ai;
    return rc;
}

void qg_ai_free(qg_ai *ai)
{
    if (!ai) return;
    if (ai->pool) qg_workpool_free(ai->pool);
    if (ai->writer_started) { /* writes what is queued, then ends */
        pthread_mutex_lock(&ai->wmu);
        ai->wstop = true;
        pthread_cond_signal(&ai->wwork);
        pthread_mutex_unlock(&ai->wmu);
        pthread_join(ai->writer, NULL);
    }
    if (ai->transport) qg_ai_transport_free(ai->transport);
    if (ai->router) qg_ai_router_free(ai->router);
    qg_prompt_cache_free(ai->prompts);
    free(ai->models);
    pthread_mutex_destroy(&ai->mu);
    pthread_mutex_destroy(&ai->wmu);
    pthread_cond_destroy(&ai->wwork);
    pthread_cond_destroy(&ai->wdone);
    free(ai);
}

qg_status qg_ai_reload(qg_ai *ai, qg_error *err)
{
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(ai->store, &c, err);
    if (rc) return rc;
    rc = load_catalog(ai, c, err);
    qg_store_release(ai->store, c);
    return rc;
}

qg_ai_router *qg_ai_get_router(qg_ai *ai)
{
    return ai->router;
}

qg_status qg_ai_list_models(qg_ai *ai, qg_ai_model **models, size_t *n)
{
    pthread_mutex_lock(&ai->mu);
    *n = ai->nmodels;
    *models = qg_xmalloc(sizeof(qg_ai_model) * (ai->nmodels ? ai->nmodels : 1));
    if (ai->nmodels) memcpy(*models, ai->models, sizeof(qg_ai_model) * ai->nmodels);
    pthread_mutex_unlock(&ai->mu);
    return QG_OK;
}

/* Per-deployment health as Prometheus gauges: cooling down, failures in a
 * row, the last minute's rpm/tpm against their limits. */
qg_status qg_ai_health_metrics(qg_ai *ai, qg_buf *out)
{
    qg_ai_dep_health *h = NULL;
    size_t n = 0;
    qg_status rc = qg_ai_router_snapshot(ai->router, &h, &n);
    if (rc) return rc;
    int64_t now = qg_time_now_ms();
    static const char *const heads[][2] = {
        {"qg_ai_deployment_cooling", "1 while the deployment is skipped after failures"},
        {"qg_ai_deployment_consecutive_failures", "failed attempts in a row"},
        {"qg_ai_deployment_rpm_used", "requests in the last 60 s"},
        {"qg_ai_deployment_tpm_used", "tokens in the last 60 s"},
    };
    for (size_t k = 0; !rc && k < 4; k++) {
        rc = qg_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", heads[k][0], heads[k][1],
                           heads[k][0]);
        for (size_t i = 0; !rc && i < n; i++) {
            int64_t v = k == 0   ? h[i].cooling_until_ms > now
                        : k == 1 ? h[i].consecutive_failures
                        : k == 2 ? h[i].rpm_used
                                 : h[i].tpm_used;
            rc = qg_buf_printf(out, "%s{deployment=\"%s\",model=\"%s\",provider=\"%s\"} %lld\n",
                               heads[k][0], h[i].id, h[i].model_name, h[i].provider, (long long)v);
        }
    }
    free(h);
    return rc;
}

/* ---- one call ---- */

typedef struct key_ctx {
    qg_ai *ai;
} key_ctx;

/* Resolves a deployment's key from the vault or the environment; the
 * connection is taken only for the moment of the lookup. */
static qg_status resolve_key(void *ud, const qg_ai_deployment *d, char *out, size_t cap)
{
    key_ctx *k = ud;
    qg_conn *c = NULL;
    qg_error err = {0};
    qg_status rc = QG_OK;
    /* only vault secrets need the database; environment keys do not */
    bool vault = d->key_ref[0] && strncmp(d->key_ref, "env:", 4);
    if (vault && (rc = qg_store_acquire(k->ai->store, &c, &err))) return rc;
    rc = qg_ai_catalog_key(k->ai->vault, c, d, out, cap, &err);
    if (c) qg_store_release(k->ai->store, c);
    if (rc) qg_warn("ai: key of deployment %s: %s", d->id, err.msg);
    return rc;
}

qg_status qg_ai_resolve_key(qg_ai *ai, const qg_ai_deployment *d, char *out, size_t cap)
{
    key_ctx kc = {ai};
    return resolve_key(&kc, d, out, cap);
}

qg_store *qg_ai_store(qg_ai *ai)
{
    return ai->store;
}

qg_ai_transport *qg_ai_get_transport(qg_ai *ai)
{
    return ai->transport;
}

void qg_ai_record_call(qg_ai *ai, const qg_ai_call_record *r, int64_t overhead_us)
{
    enqueue_record(ai, r);
    qg_ai_metrics_observe(r, overhead_us);
}

/* The request actually sent: the caller's, with the rendered template as
 * system prompt and last user message. */
static qg_status build_request(const qg_ai_call *call, const qg_prompt_rendered *tpl, qg_arena *a,
                               qg_ai_request *req)
{
    *req = call->req;
    if (!tpl) return QG_OK;
    if (tpl->system && *tpl->system) req->system = tpl->system;
    qg_ai_msg *msgs = qg_arena_alloc(a, sizeof(qg_ai_msg) * (call->req.n_messages + 1));
    if (!msgs) return QG_ENOMEM;
    if (call->req.n_messages)
        memcpy(msgs, call->req.messages, sizeof(qg_ai_msg) * call->req.n_messages);
    msgs[call->req.n_messages] = (qg_ai_msg){.role = QG_AI_ROLE_USER, .content = tpl->user};
    req->messages = msgs;
    req->n_messages = call->req.n_messages + 1;
    if (!req->task) req->task = call->template_id;
    if (!req->task_input) {
        req->task_input = call->params_json;
        req->task_doc = call->params;
    }
    return QG_OK;
}

static void add_usage(qg_ai_usage *sum, const qg_ai_usage *u)
{
    sum->input += u->input;
    sum->output += u->output;
    sum->cached += u->cached;
}

/* One corrective retry with the validation error, then the builtin
 * provider's answer as a recorded fallback. */
static qg_status structured(qg_ai *ai, const qg_ai_call *call, const qg_ai_request *req,
                            key_ctx *kc, qg_arena *a, qg_ai_result *out, qg_ai_exec_info *info,
                            qg_error *err)
{
    qg_error verr = {0};
    cJSON **value = call->want_value ? &out->value : NULL;
    if (!qg_jsonfix_parse_value(out->resp.text, call->expect_shape, a, &out->json, value, &verr))
        return QG_OK;
    qg_info("ai: %s answer failed validation (%s); corrective retry", out->model_name, verr.msg);

    qg_ai_request again = *req;
    qg_ai_msg *msgs = qg_arena_alloc(a, sizeof(qg_ai_msg) * (req->n_messages + 2));
    if (!msgs) return QG_ENOMEM;
    if (req->n_messages) memcpy(msgs, req->messages, sizeof(qg_ai_msg) * req->n_messages);
    msgs[req->n_messages] = (qg_ai_msg){.role = QG_AI_ROLE_ASSISTANT, .content = out->resp.text};
    msgs[req->n_messages + 1] = (qg_ai_msg){
        .role = QG_AI_ROLE_USER,
        .content = qg_arena_sprintf(a,
                                    "Your answer was not valid: %s. Answer again with only the "
                                    "JSON object, no prose and no code fence.",
                                    verr.msg)};
    again.messages = msgs;
    again.n_messages = req->n_messages + 2;
    again.stream = false;
    again.json_mode = true;
    qg_ai_response second = {0};
    qg_ai_exec_info info2 = {0};
    qg_error e2 = {0};
    if (!qg_ai_exec(ai->transport, ai->router, out->model_name, &again, resolve_key, kc, NULL, NULL,
                    call->cancel, a, &second, &info2, &e2)) {
        add_usage(&out->resp.usage, &second.usage);
        info->attempts += info2.attempts;
        info->upstream_us += info2.upstream_us;
        qg_error_clear(&verr);
        if (!qg_jsonfix_parse_value(second.text, call->expect_shape, a, &out->json, value, &verr)) {
            qg_ai_usage sum = out->resp.usage;
            out->resp = second;
            out->resp.usage = sum;
            return QG_OK;
        }
    }

    qg_warn("ai: %s answer still invalid (%s); using the builtin reasoner", out->model_name,
            verr.msg);
    qg_ai_response fb = {0};
    qg_ai_deployment bd = {.provider = "builtin", .model = "builtin", .enabled = true};
    qg_status rc = qg_ai_provider_builtin.complete(&bd, req, a, NULL, NULL, &fb, err);
    if (rc) return rc;
    qg_error_clear(&verr);
    if (qg_jsonfix_parse_value(fb.text, call->expect_shape, a, &out->json, value, &verr)) {
        out->resp.error.kind = QG_AI_EOUTPUT;
        snprintf(out->resp.error.message, sizeof out->resp.error.message, "%s", verr.msg);
        return qg_error_set(err, QG_EAGAIN, "structured output invalid after retry: %s", verr.msg);
    }
    qg_ai_usage sum = out->resp.usage;
    out->resp = fb;
    out->resp.usage = sum;
    out->builtin_fallback = true;
    return QG_OK;
}

static void record(qg_ai *ai, const qg_ai_call *call, const qg_ai_request *req,
                   const qg_ai_exec_info *info, qg_ai_result *out, int64_t t0)
{
    qg_ai_call_record rec = {
        .user_id = call->user_id,
        .token_id = call->token_id,
        .model_name = out->model_name,
        .deployment_id = out->deployment_id,
        .provider = out->provider,
        .model = info->deployment.model[0] ? info->deployment.model : NULL,
        .template_id = call->template_id,
        .template_version = out->template_version,
        .usage = out->resp.usage,
        .cost_usd = out->cost_usd,
        .latency_ms = out->latency_ms,
        .attempts = out->attempts,
        .stream = req->stream,
        .outcome = qg_ai_errkind_name(out->resp.error.kind),
        .error = out->resp.error.kind ? out->resp.error.message : NULL,
        .ts_ms = qg_time_now_ms(),
    };
    qg_store_new_id("call", out->call_id, sizeof out->call_id);
    rec.id = out->call_id;
    enqueue_record(ai, &rec);
    out->upstream_us = info->upstream_us;
    out->overhead_us = qg_time_mono_us() - t0 - info->upstream_us;
    if (out->overhead_us < 0) out->overhead_us = 0;
    qg_ai_metrics_observe(&rec, out->overhead_us);
}

qg_status qg_ai_complete(qg_ai *ai, const qg_ai_call *call, qg_arena *a, qg_ai_result *out,
                         qg_error *err)
{
    int64_t t0 = qg_time_mono_us();
    qg_status rc = QG_OK;
    qg_conn *c = NULL;
    qg_prompt_rendered tpl = {0};
    qg_ai_request req = call->req;
    qg_ai_exec_info info = {0};
    key_ctx kc = {ai};

    memset(out, 0, sizeof *out);
    out->resp.error.retry_after_ms = -1;
    out->model_name = call->model && *call->model ? call->model : "analyst";

    if ((rc = qg_store_acquire(ai->store, &c, err))) return rc;
    bool applies = false;
    rc = qg_ai_budget_check_ex(c, call->user_id, call->token_id, qg_time_now_ms(), &applies, err);
    if (!rc && applies && writer_pending(ai)) {
        /* A budget applies and calls are still being written: wait for
         * them (without holding a connection the writer may need), then
         * check again, so spending just recorded counts. */
        qg_store_release(ai->store, c);
        qg_ai_flush(ai);
        if ((rc = qg_store_acquire(ai->store, &c, err))) return rc;
        rc = qg_ai_budget_check(c, call->user_id, call->token_id, qg_time_now_ms(), err);
    }
    if (rc == QG_EDENIED) {
        out->resp.error.kind = QG_AI_EBUDGET;
        snprintf(out->resp.error.message, sizeof out->resp.error.message, "%s", err->msg);
    } else if (!rc && call->template_id) {
        /* The render parses the params and the declarations and prints
         * values: hundreds of short-lived cJSON nodes, carved from this
         * stack buffer instead of malloc (json.h). What it returns is in
         * the arena. */
        char scratch[QG_AI_RENDER_SCRATCH];
        qg_json_scratch_begin(scratch, sizeof scratch);
        rc = qg_prompt_render_cached(ai->prompts, c, call->template_id, 0, call->params_json,
                                     call->params, a, &tpl, err);
        qg_json_scratch_end();
        out->template_version = tpl.version;
    }
    qg_store_release(ai->store, c);
    c = NULL;
    if (rc == QG_EDENIED) goto done; /* recorded: a refused call is still a call */
    if (rc) return rc;

    if ((rc = build_request(call, call->template_id ? &tpl : NULL, a, &req))) return rc;
    rc = qg_ai_exec(ai->transport, ai->router, out->model_name, &req, resolve_key, &kc,
                    call->on_delta, call->ud, call->cancel, a, &out->resp, &info, err);
    out->attempts = info.attempts;
    out->fell_back = info.fell_back;
    if (info.deployment.id[0]) {
        out->deployment_id = qg_arena_strndup(a, info.deployment.id, strlen(info.deployment.id));
        out->provider =
            qg_arena_strndup(a, info.deployment.provider, strlen(info.deployment.provider));
    }
    if (!rc && call->expect_shape) rc = structured(ai, call, &req, &kc, a, out, &info, err);
    out->cost_usd = qg_ai_cost(&info.deployment, &out->resp.usage);

done:
    if (!rc && out->resp.error.kind) rc = qg_ai_errkind_status(out->resp.error.kind);
    if (rc && !out->resp.error.kind) {
        out->resp.error.kind = QG_AI_ESERVER;
        snprintf(out->resp.error.message, sizeof out->resp.error.message, "%s", err->msg);
    }
    if (rc && !err->msg[0])
        qg_error_set(err, rc, "%s: %s", qg_ai_errkind_name(out->resp.error.kind),
                     out->resp.error.message);
    if (rc && out->value) {
        cJSON_Delete(out->value);
        out->value = NULL;
    }
    out->latency_ms = (qg_time_mono_us() - t0) / 1000;
    record(ai, call, &req, &info, out, t0);
    return rc;
}

/* ---- asynchronous calls ---- */

typedef struct async_call {
    qg_ai *ai;
    const qg_ai_call *call;
    qg_arena *a;
    qg_ai_result *out;
    qg_ai_done_fn done;
    void *ud;
    qg_status rc;
    qg_error err;
} async_call;

static void async_work(void *arg)
{
    async_call *ac = arg;
    ac->rc = qg_ai_complete(ac->ai, ac->call, ac->a, ac->out, &ac->err);
}

static void async_done(void *arg)
{
    async_call *ac = arg;
    ac->done(ac->ud, ac->rc, ac->out, &ac->err);
    free(ac);
}

qg_status qg_ai_start(qg_ai *ai, const qg_ai_call *call, qg_arena *a, qg_ai_result *out,
                      qg_ai_done_fn done, void *ud)
{
    async_call *ac = qg_xcalloc(1, sizeof *ac);
    *ac = (async_call){.ai = ai, .call = call, .a = a, .out = out, .done = done, .ud = ud};
    qg_status rc = qg_workpool_submit(ai->pool, async_work, async_done, ac);
    if (rc) free(ac);
    return rc;
}
