/*
 * plan.c - the plan executor: parses and validates a plan (a small graph of
 * named steps joined by on_success / on_failure edges, with optional
 * "parallel" fan-outs), then walks it for one signal through the caller's
 * step operations, retrying failed attempts with exponential backoff and
 * jitter, and reports every step it ran.
 *
 * Invariants: a parsed plan is immutable (several runs may share it, on
 * any threads); every edge points at an existing step; no step reaches
 * itself through success edges only (such a plan could never end), and
 * the max_steps guard ends the failure loops that are allowed. Nothing
 * here sleeps longer than QG_PLAN_SLICE_MS without looking at *stop, so a
 * shutdown never waits out a backoff or a "wait" step.
 *
 * The executor knows one step type itself, "wait" {"seconds":N}; the
 * others (analyse, memory_lookup, notify, record, escalate) are the
 * pipeline's ops. A "parallel" step runs its branches on at most
 * ops->concurrency threads of its own (a plan is short-lived and rare
 * enough that a few pthreads per fan-out cost nothing next to an LLM call).
 */
#include "signal/plan.h"

#include <quantgate/time.h>

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QG_PLAN_SLICE_MS      20 /* longest sleep between looks at *stop */
#define QG_PLAN_RETRIES_MAX   10
#define QG_PLAN_DELAY_MAX_S   3600 /* retry_delay_s and one backoff wait */
#define QG_PLAN_TIMEOUT_MAX_S 86400
#define QG_PLAN_WAIT_MAX_S    86400
#define QG_PLAN_MAX_STEPS_DEF 32
#define QG_PLAN_MAX_STEPS_MAX 1000
#define QG_PLAN_TYPE_MAX      32
#define QG_PLAN_CONC_DEF      4

typedef struct plan_step {
    char name[QG_PLAN_NAME_MAX + 1];
    char type[QG_PLAN_TYPE_MAX + 1]; /* "parallel" for a fan-out */
    cJSON *params;                   /* owned; an object, never NULL */
    int retries;
    double retry_delay_s;
    double timeout_s; /* 0: none */
    int on_success;   /* step index, -1: end */
    int on_failure;
    int *branches; /* owned; a fan-out's steps */
    int nbranches;
    bool in_fanout; /* listed in some step's "parallel" */
} plan_step;

struct qg_plan {
    plan_step *steps;
    int n;
    int start;
    int max_steps;
};

/* ---- parsing ---- */

static int find_step(const qg_plan *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->steps[i].name, name) == 0) return i;
    return -1;
}

static bool type_known(const qg_plan_ops *ops, const char *type)
{
    if (strcmp(type, "wait") == 0) return true;
    for (int i = 0; ops && i < ops->n; i++)
        if (ops->ops[i].type && strcmp(ops->ops[i].type, type) == 0) return true;
    return false;
}

/* Step names appear in reports, logs and error messages: keep them plain. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > QG_PLAN_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static qg_status step_err(qg_error *err, const char *step, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static qg_status step_err(qg_error *err, const char *step, const char *field, const char *fmt, ...)
{
    char why[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return qg_error_set(err, QG_EINVAL, "plan step '%.48s', field '%s': %s", step, field, why);
}

/* An edge field: absent or null = end of the plan. */
static qg_status parse_edge(const qg_plan *p, const char *step, const cJSON *o, const char *field,
                            int *out, qg_error *err)
{
    *out = -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v || cJSON_IsNull(v)) return QG_OK;
    if (!cJSON_IsString(v)) return step_err(err, step, field, "expected a step name or null");
    *out = find_step(p, v->valuestring);
    if (*out < 0) return step_err(err, step, field, "no step named '%.64s'", v->valuestring);
    return QG_OK;
}

static qg_status parse_number(const char *step, const cJSON *o, const char *field, double min,
                              double max, bool integer, double *out, qg_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v || cJSON_IsNull(v)) return QG_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min ||
        v->valuedouble > max || (integer && v->valuedouble != floor(v->valuedouble))) {
        if (cJSON_IsNumber(v))
            return step_err(err, step, field, "expected %s from %g to %g, got %g",
                            integer ? "an integer" : "a number", min, max, v->valuedouble);
        return step_err(err, step, field, "expected %s from %g to %g",
                        integer ? "an integer" : "a number", min, max);
    }
    *out = v->valuedouble;
    return QG_OK;
}

static qg_status parse_branches(qg_plan *p, int self, const cJSON *arr, qg_error *err)
{
    plan_step *s = &p->steps[self];
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n < 1)
        return step_err(err, s->name, "parallel", "expected a non-empty array of step names");
    s->branches = calloc((size_t)n, sizeof *s->branches);
    if (!s->branches) return qg_error_set(err, QG_ENOMEM, "plan: out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it))
            return step_err(err, s->name, "parallel", "item %d: expected a step name",
                            s->nbranches);
        int b = find_step(p, it->valuestring);
        if (b < 0)
            return step_err(err, s->name, "parallel", "no step named '%.64s'", it->valuestring);
        if (b == self) return step_err(err, s->name, "parallel", "a fan-out cannot list itself");
        for (int j = 0; j < s->nbranches; j++)
            if (s->branches[j] == b)
                return step_err(err, s->name, "parallel", "'%s' is listed twice", p->steps[b].name);
        s->branches[s->nbranches++] = b;
    }
    return QG_OK;
}

static const char *const step_fields[] = {"type",      "params",     "retries",    "retry_delay_s",
                                          "timeout_s", "on_success", "on_failure", "parallel"};

static qg_status parse_step(qg_plan *p, int i, const cJSON *o, const qg_plan_ops *ops,
                            qg_error *err)
{
    plan_step *s = &p->steps[i];
    if (!cJSON_IsObject(o)) return step_err(err, s->name, "(step)", "expected an object");
    const cJSON *f;
    cJSON_ArrayForEach(f, o)
    {
        bool known = false;
        for (size_t k = 0; k < sizeof step_fields / sizeof *step_fields; k++)
            if (strcmp(f->string, step_fields[k]) == 0) known = true;
        if (!known)
            return step_err(err, s->name, f->string,
                            "unknown field (known: type, params, retries, retry_delay_s, "
                            "timeout_s, on_success, on_failure, parallel)");
    }
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(o, "parallel");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (par && !cJSON_IsNull(par)) {
        /* a fan-out's work is its branches: its type may be absent or "parallel" */
        if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "parallel") == 0))
            return step_err(err, s->name, "type",
                            "a step with \"parallel\" has type \"parallel\" (or none)");
        snprintf(s->type, sizeof s->type, "parallel");
        qg_status rc = parse_branches(p, i, par, err);
        if (rc) return rc;
    } else {
        if (!type) return step_err(err, s->name, "type", "required");
        if (!cJSON_IsString(type)) return step_err(err, s->name, "type", "expected a string");
        if (strcmp(type->valuestring, "parallel") == 0)
            return step_err(err, s->name, "parallel", "required for a step of type \"parallel\"");
        if (strlen(type->valuestring) > QG_PLAN_TYPE_MAX || !type_known(ops, type->valuestring)) {
            char known[256] = "wait";
            for (int k = 0; ops && k < ops->n; k++) {
                size_t len = strlen(known);
                snprintf(known + len, sizeof known - len, ", %s", ops->ops[k].type);
            }
            return step_err(err, s->name, "type", "unknown step type '%.32s' (known: %s)",
                            type->valuestring, known);
        }
        snprintf(s->type, sizeof s->type, "%s", type->valuestring);
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(o, "params");
    if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
        return step_err(err, s->name, "params", "expected an object");
    s->params =
        (params && cJSON_IsObject(params)) ? cJSON_Duplicate(params, true) : cJSON_CreateObject();
    if (!s->params) return qg_error_set(err, QG_ENOMEM, "plan: out of memory");

    double retries = 0, delay = 1, timeout = 0;
    qg_status rc = parse_number(s->name, o, "retries", 0, QG_PLAN_RETRIES_MAX, true, &retries, err);
    if (!rc)
        rc = parse_number(s->name, o, "retry_delay_s", 0, QG_PLAN_DELAY_MAX_S, false, &delay, err);
    if (!rc)
        rc = parse_number(s->name, o, "timeout_s", 0, QG_PLAN_TIMEOUT_MAX_S, false, &timeout, err);
    if (rc) return rc;
    s->retries = (int)retries;
    s->retry_delay_s = delay;
    s->timeout_s = timeout;

    if (strcmp(s->type, "wait") == 0) {
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(s->params, "seconds");
        if (!cJSON_IsNumber(sec) || !isfinite(sec->valuedouble) || sec->valuedouble < 0 ||
            sec->valuedouble > QG_PLAN_WAIT_MAX_S)
            return step_err(err, s->name, "params.seconds",
                            "a wait step needs a number of seconds from 0 to %d",
                            QG_PLAN_WAIT_MAX_S);
    }
    rc = parse_edge(p, s->name, o, "on_success", &s->on_success, err);
    if (!rc) rc = parse_edge(p, s->name, o, "on_failure", &s->on_failure, err);
    return rc;
}

/* Branches run once each, in place of the fan-out: their own edges would
 * start walks the fan-out cannot join, and a nested fan-out would multiply
 * the concurrency bound. */
static qg_status check_fanouts(qg_plan *p, qg_error *err)
{
    for (int i = 0; i < p->n; i++)
        for (int j = 0; j < p->steps[i].nbranches; j++)
            p->steps[p->steps[i].branches[j]].in_fanout = true;
    for (int i = 0; i < p->n; i++) {
        const plan_step *s = &p->steps[i];
        if (!s->in_fanout) continue;
        if (s->nbranches)
            return step_err(err, s->name, "parallel",
                            "a step run by a fan-out cannot fan out itself");
        if (s->on_success >= 0 || s->on_failure >= 0)
            return step_err(err, s->name, s->on_success >= 0 ? "on_success" : "on_failure",
                            "a step run by a fan-out ends there: put the next step on the "
                            "fan-out step");
    }
    return QG_OK;
}

/* Each step has at most one success edge, so following them from every
 * step for n hops finds any success-only cycle. */
static qg_status check_success_cycles(const qg_plan *p, qg_error *err)
{
    for (int i = 0; i < p->n; i++) {
        int at = p->steps[i].on_success;
        for (int hops = 0; at >= 0 && hops < p->n; hops++) {
            if (at == i) {
                char route[256];
                size_t len = (size_t)snprintf(route, sizeof route, "%s", p->steps[i].name);
                int k = p->steps[i].on_success;
                for (int h = 0; h <= hops && len < sizeof route; h++) {
                    len += (size_t)snprintf(route + len, sizeof route - len, " -> %s",
                                            p->steps[k].name);
                    k = p->steps[k].on_success;
                }
                return step_err(err, p->steps[i].name, "on_success",
                                "success-only cycle %s never ends", route);
            }
            at = p->steps[at].on_success;
        }
    }
    return QG_OK;
}

static qg_status parse_top(const cJSON *json, qg_plan *p, const qg_plan_ops *ops, qg_error *err)
{
    if (!cJSON_IsObject(json)) return qg_error_set(err, QG_EINVAL, "plan: expected a JSON object");
    const cJSON *f;
    cJSON_ArrayForEach(f, json)
    {
        if (strcmp(f->string, "start") && strcmp(f->string, "steps") &&
            strcmp(f->string, "max_steps") && strcmp(f->string, "description"))
            return qg_error_set(err, QG_EINVAL,
                                "plan field '%.64s': unknown field (known: start, steps, "
                                "max_steps, description)",
                                f->string);
    }
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(json, "steps");
    if (!cJSON_IsObject(steps))
        return qg_error_set(err, QG_EINVAL,
                            "plan field 'steps': required, an object of named steps");
    int n = cJSON_GetArraySize(steps);
    if (n < 1) return qg_error_set(err, QG_EINVAL, "plan field 'steps': no steps");
    if (n > QG_PLAN_STEPS_MAX)
        return qg_error_set(err, QG_EINVAL, "plan field 'steps': %d steps, at most %d", n,
                            QG_PLAN_STEPS_MAX);
    p->steps = calloc((size_t)n, sizeof *p->steps);
    if (!p->steps) return qg_error_set(err, QG_ENOMEM, "plan: out of memory");
    const cJSON *s;
    cJSON_ArrayForEach(s, steps)
    {
        if (!name_ok(s->string))
            return qg_error_set(err, QG_EINVAL,
                                "plan step '%.48s': a name is 1 to %d letters, digits, '_', "
                                "'-' or '.'",
                                s->string, QG_PLAN_NAME_MAX);
        if (find_step(p, s->string) >= 0)
            return qg_error_set(err, QG_EINVAL, "plan step '%s': defined twice", s->string);
        snprintf(p->steps[p->n].name, sizeof p->steps[p->n].name, "%s", s->string);
        p->steps[p->n].on_success = p->steps[p->n].on_failure = -1;
        p->n++;
    }
    int i = 0;
    cJSON_ArrayForEach(s, steps)
    {
        qg_status rc = parse_step(p, i++, s, ops, err);
        if (rc) return rc;
    }
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(json, "start");
    if (!start) return qg_error_set(err, QG_EINVAL, "plan field 'start': required");
    if (!cJSON_IsString(start))
        return qg_error_set(err, QG_EINVAL, "plan field 'start': expected a step name");
    p->start = find_step(p, start->valuestring);
    if (p->start < 0)
        return qg_error_set(err, QG_EINVAL, "plan field 'start': no step named '%.64s'",
                            start->valuestring);
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(json, "max_steps");
    p->max_steps = QG_PLAN_MAX_STEPS_DEF;
    if (ms && !cJSON_IsNull(ms)) {
        if (!cJSON_IsNumber(ms) || ms->valuedouble != floor(ms->valuedouble) ||
            ms->valuedouble < 1 || ms->valuedouble > QG_PLAN_MAX_STEPS_MAX)
            return qg_error_set(err, QG_EINVAL,
                                "plan field 'max_steps': expected an integer from 1 to %d",
                                QG_PLAN_MAX_STEPS_MAX);
        p->max_steps = (int)ms->valuedouble;
    }
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(json, "description");
    if (desc && !cJSON_IsString(desc))
        return qg_error_set(err, QG_EINVAL, "plan field 'description': expected a string");
    qg_status rc = check_fanouts(p, err);
    if (!rc) rc = check_success_cycles(p, err);
    return rc;
}

qg_status qg_plan_parse(const cJSON *json, const qg_plan_ops *ops, qg_plan **out, qg_error *err)
{
    *out = NULL;
    qg_plan *p = calloc(1, sizeof *p);
    if (!p) return qg_error_set(err, QG_ENOMEM, "plan: out of memory");
    qg_status rc = parse_top(json, p, ops, err);
    if (rc) {
        qg_plan_free(p);
        return rc;
    }
    *out = p;
    return QG_OK;
}

void qg_plan_free(qg_plan *p)
{
    if (!p) return;
    for (int i = 0; p->steps && i < p->n; i++) {
        cJSON_Delete(p->steps[i].params);
        free(p->steps[i].branches);
    }
    free(p->steps);
    free(p);
}

/* ---- running ---- */

static bool stopped(const qg_plan_ops *ops)
{
    return ops->stop && atomic_load(ops->stop);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps seconds in slices, looking at *stop between them. False when
 * stopped first. */
static bool sleep_unless_stopped(const qg_plan_ops *ops, double seconds)
{
    double until = now_s() + seconds;
    for (;;) {
        if (stopped(ops)) return false;
        double left = until - now_s();
        if (left <= 0) return true;
        double slice = left < QG_PLAN_SLICE_MS / 1000.0 ? left : QG_PLAN_SLICE_MS / 1000.0;
        struct timespec ts = {(time_t)slice, (long)((slice - floor(slice)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* Jitter only has to decorrelate retries of concurrent plans: a shared
 * splitmix64 counter is enough and thread-safe. */
static double jitter_factor(void)
{
    static _Atomic uint64_t seq;
    uint64_t z = atomic_fetch_add(&seq, 0x9e3779b97f4a7c15ULL) + (uint64_t)qg_time_now_ms();
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return 0.9 + 0.2 * ((double)(z >> 11) / (double)(1ULL << 53));
}

/* The wait before retry k (1-based): retry_delay_s * 2^(k-1), +-10%,
 * capped at QG_PLAN_DELAY_MAX_S. */
static double backoff_s(const plan_step *s, int k)
{
    double d = s->retry_delay_s * pow(2.0, k - 1);
    if (d > QG_PLAN_DELAY_MAX_S) d = QG_PLAN_DELAY_MAX_S;
    return d * jitter_factor();
}

static const qg_plan_op *find_op(const qg_plan_ops *ops, const char *type)
{
    for (int i = 0; i < ops->n; i++)
        if (strcmp(ops->ops[i].type, type) == 0) return &ops->ops[i];
    return NULL;
}

/* The built-in "wait": the step's timeout (when shorter) ends it as a
 * failure, a stop ends it at once. */
static qg_status run_wait(const qg_plan_ops *ops, const plan_step *s, cJSON **result, qg_error *err)
{
    double want = cJSON_GetObjectItemCaseSensitive(s->params, "seconds")->valuedouble;
    bool cut = s->timeout_s > 0 && s->timeout_s < want;
    double t0 = now_s();
    if (!sleep_unless_stopped(ops, cut ? s->timeout_s : want))
        return qg_error_set(err, QG_EAGAIN, "stopped during the wait");
    if (cut)
        return qg_error_set(err, QG_EAGAIN, "timed out after %gs (timeout_s) waiting %gs",
                            s->timeout_s, want);
    *result = cJSON_CreateObject();
    if (*result) cJSON_AddNumberToObject(*result, "waited_s", now_s() - t0);
    return QG_OK;
}

/* Sets an attempt's cancel flag at its deadline or when the plan stops,
 * on a thread of its own (only for steps with a timeout_s: plans are rare,
 * and without one the plan's stop flag itself is the cancel). */
typedef struct attempt_watch {
    const qg_plan_ops *ops;
    double deadline;
    atomic_bool cancel;
    bool done, timed_out; /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
} attempt_watch;

static void *watch_main(void *arg)
{
    attempt_watch *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->done) {
        double left = w->deadline - now_s();
        if (left <= 0 || stopped(w->ops)) {
            w->timed_out = left <= 0;
            atomic_store(&w->cancel, true);
            break;
        }
        /* the stop flag has no signal: look again every slice */
        double slice_ms = left * 1000 < QG_PLAN_SLICE_MS ? ceil(left * 1000) : QG_PLAN_SLICE_MS;
        struct timespec until = qg_time_deadline(CLOCK_REALTIME, (int64_t)slice_ms);
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static bool watch_start(attempt_watch *w, const qg_plan_ops *ops, double timeout_s)
{
    memset(w, 0, sizeof *w);
    w->ops = ops;
    w->deadline = now_s() + timeout_s;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, watch_main, w) == 0) return true;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return false;
}

/* Stops the watcher; true when it had fired at the deadline. */
static bool watch_end(attempt_watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return w->timed_out;
}

/* One attempt. With a timeout_s the op's cancel flag is set at the
 * deadline; an attempt that ends after it counts as failed and its result
 * is dropped (also when the op did not look at the flag). */
static qg_status run_attempt(const qg_plan_ops *ops, const plan_step *s, cJSON **result,
                             qg_error *err)
{
    *result = NULL;
    if (strcmp(s->type, "wait") == 0) return run_wait(ops, s, result, err);
    const qg_plan_op *op = find_op(ops, s->type);
    if (!op) return qg_error_set(err, QG_EINTERNAL, "no op for type '%s'", s->type);
    atomic_bool never = false;
    atomic_bool *cancel = ops->stop ? ops->stop : &never;
    attempt_watch w;
    bool watched = s->timeout_s > 0 && watch_start(&w, ops, s->timeout_s);
    if (watched) cancel = &w.cancel;
    double t0 = now_s();
    qg_status rc = op->run(ops->ud, s->name, s->params, cancel, result, err);
    bool fired = watched && watch_end(&w);
    if (rc && err && !err->msg[0]) qg_error_set(err, rc, "%s", qg_status_name(rc));
    if (fired || (s->timeout_s > 0 && now_s() - t0 > s->timeout_s)) {
        cJSON_Delete(*result);
        *result = NULL;
        return qg_error_set(err, QG_EAGAIN, "timed out after %.3fs (timeout_s %g)", now_s() - t0,
                            s->timeout_s);
    }
    return rc;
}

/* Runs one (non fan-out) step with its retries; returns its report entry
 * in *entry (never NULL unless out of memory) and its status. */
static qg_status run_step(const qg_plan_ops *ops, const plan_step *s, cJSON **entry, qg_error *last)
{
    double t0 = now_s();
    cJSON *e = cJSON_CreateObject();
    cJSON *errors = cJSON_CreateArray();
    cJSON *result = NULL;
    qg_status rc = QG_OK;
    int attempts = 0;
    qg_error_clear(last);
    for (int k = 0; k <= s->retries; k++) {
        if (k > 0 && !sleep_unless_stopped(ops, backoff_s(s, k))) {
            rc = qg_error_set(last, QG_EAGAIN, "stopped before retry %d", k);
            break;
        }
        if (stopped(ops)) {
            rc = qg_error_set(last, QG_EAGAIN, "stopped");
            break;
        }
        attempts++;
        qg_error aerr = {0};
        rc = run_attempt(ops, s, &result, &aerr);
        if (!rc) break;
        cJSON_Delete(result);
        result = NULL;
        *last = aerr;
        last->code = rc;
        cJSON_AddItemToArray(errors, cJSON_CreateString(aerr.msg));
        if (stopped(ops)) break;
    }
    cJSON_AddStringToObject(e, "step", s->name);
    cJSON_AddStringToObject(e, "type", s->type);
    cJSON_AddBoolToObject(e, "ok", rc == QG_OK);
    cJSON_AddNumberToObject(e, "attempts", attempts);
    cJSON_AddNumberToObject(e, "ms", (now_s() - t0) * 1000.0);
    if (rc == QG_OK)
        cJSON_AddItemToObject(e, "result", result ? result : cJSON_CreateNull());
    else
        cJSON_AddStringToObject(e, "error", last->msg);
    /* every failed attempt's error in order, when there is more than the one above */
    if (cJSON_GetArraySize(errors) > (rc ? 1 : 0))
        cJSON_AddItemToObject(e, "errors", errors);
    else
        cJSON_Delete(errors);
    *entry = e;
    return rc;
}

/* A fan-out: workers take branches in order from a shared counter, so at
 * most `threads` run at once. */
typedef struct fanout {
    const qg_plan *plan;
    const qg_plan_ops *ops;
    const plan_step *s;
    atomic_int next;
    cJSON **entries; /* per branch */
    qg_status *rcs;
    qg_error *errs;
} fanout;

static void *fanout_worker(void *arg)
{
    fanout *f = arg;
    for (;;) {
        int i = atomic_fetch_add(&f->next, 1);
        if (i >= f->s->nbranches) break;
        const plan_step *b = &f->plan->steps[f->s->branches[i]];
        f->rcs[i] = run_step(f->ops, b, &f->entries[i], &f->errs[i]);
    }
    return NULL;
}

/* Runs the branches; appends their entries and names to steps and path;
 * on failure err names the first failed branch. */
static qg_status run_fanout(const qg_plan *p, const qg_plan_ops *ops, const plan_step *s,
                            cJSON *steps, cJSON *path, qg_error *err)
{
    int n = s->nbranches;
    int threads = ops->concurrency > 0 ? ops->concurrency : QG_PLAN_CONC_DEF;
    if (threads > n) threads = n;
    fanout f = {.plan = p, .ops = ops, .s = s};
    atomic_init(&f.next, 0);
    f.entries = calloc((size_t)n, sizeof *f.entries);
    f.rcs = calloc((size_t)n, sizeof *f.rcs);
    f.errs = calloc((size_t)n, sizeof *f.errs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    bool *started = calloc((size_t)threads, sizeof *started);
    qg_status rc = QG_OK;
    if (!f.entries || !f.rcs || !f.errs || !tid || !started) {
        rc = qg_error_set(err, QG_ENOMEM, "plan: out of memory");
        goto out;
    }
    int nstarted = 0;
    for (int t = 0; t < threads; t++) {
        started[t] = pthread_create(&tid[t], NULL, fanout_worker, &f) == 0;
        if (started[t]) nstarted++;
    }
    if (nstarted == 0) fanout_worker(&f); /* no threads to be had: run them here, one by one */
    for (int t = 0; t < threads; t++)
        if (started[t]) pthread_join(tid[t], NULL);
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(path, cJSON_CreateString(p->steps[s->branches[i]].name));
        if (f.entries[i]) cJSON_AddItemToArray(steps, f.entries[i]);
        if (f.rcs[i] && !rc)
            rc = qg_error_set(err, f.rcs[i], "step '%s': %s", p->steps[s->branches[i]].name,
                              f.errs[i].msg);
    }
out:
    free(f.entries);
    free(f.rcs);
    free(f.errs);
    free(tid);
    free(started);
    return rc;
}

static qg_status walk(const qg_plan *p, const qg_plan_ops *ops, cJSON *steps, cJSON *path,
                      qg_error *err)
{
    int at = p->start, visits = 0;
    qg_status rc = QG_OK;
    while (at >= 0) {
        const plan_step *s = &p->steps[at];
        int cost = s->nbranches ? 1 + s->nbranches : 1;
        if (visits + cost > p->max_steps)
            return qg_error_set(err, QG_ERANGE,
                                "plan stopped at step '%s': max_steps %d reached (a failure "
                                "loop?)",
                                s->name, p->max_steps);
        visits += cost;
        if (stopped(ops))
            return qg_error_set(err, QG_EAGAIN, "plan stopped before step '%s'", s->name);
        cJSON_AddItemToArray(path, cJSON_CreateString(s->name));
        if (s->nbranches) {
            double t0 = now_s();
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "step", s->name);
            cJSON_AddStringToObject(e, "type", "parallel");
            cJSON_AddItemToArray(steps, e);
            qg_error ferr = {0};
            rc = run_fanout(p, ops, s, steps, path, &ferr);
            cJSON_AddBoolToObject(e, "ok", rc == QG_OK);
            cJSON_AddNumberToObject(e, "attempts", 1);
            cJSON_AddNumberToObject(e, "ms", (now_s() - t0) * 1000.0);
            if (rc) cJSON_AddStringToObject(e, "error", ferr.msg);
            if (rc) qg_error_set(err, rc, "step '%s': %s", s->name, ferr.msg);
        } else {
            cJSON *e = NULL;
            qg_error serr = {0};
            rc = run_step(ops, s, &e, &serr);
            if (e) cJSON_AddItemToArray(steps, e);
            if (rc) qg_error_set(err, rc, "step '%s' failed: %s", s->name, serr.msg);
        }
        if (rc == QG_OK) {
            qg_error_clear(err);
            at = s->on_success;
        } else {
            if (stopped(ops) || rc == QG_ENOMEM) return rc == QG_ENOMEM ? rc : QG_EAGAIN;
            at = s->on_failure;
        }
    }
    return rc;
}

qg_status qg_plan_run(const qg_plan *p, const qg_plan_ops *ops, cJSON **report, qg_error *err)
{
    *report = NULL;
    qg_plan_ops none = {0};
    if (!ops) ops = &none;
    cJSON *rep = cJSON_CreateObject();
    cJSON *steps = cJSON_CreateArray();
    cJSON *path = cJSON_CreateArray();
    if (!rep || !steps || !path) {
        cJSON_Delete(rep);
        cJSON_Delete(steps);
        cJSON_Delete(path);
        return qg_error_set(err, QG_ENOMEM, "plan: out of memory");
    }
    qg_error werr = {0};
    double t0 = now_s();
    qg_status rc = walk(p, ops, steps, path, &werr);
    cJSON_AddBoolToObject(rep, "ok", rc == QG_OK);
    if (rc) {
        cJSON_AddStringToObject(rep, "error", werr.msg);
        if (rc == QG_EAGAIN && stopped(ops)) cJSON_AddBoolToObject(rep, "stopped", true);
    }
    cJSON_AddNumberToObject(rep, "ms", (now_s() - t0) * 1000.0);
    cJSON_AddItemToObject(rep, "steps", steps);
    cJSON_AddItemToObject(rep, "path", path);
    *report = rep;
    if (rc && err) *err = werr;
    if (rc && err) err->code = rc;
    return rc;
}
