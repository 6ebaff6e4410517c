/*
 * policy.c - named signal policies (configuration and the signal_policies
 * table): a scope ("when") and checks; the first policy in order that
 * denies decides, and its reason names the policy and the values.
 *
 * Checks run in a fixed order inside a policy: blocked_symbols,
 * allowed_symbols, blocked_types, min_confidence, require_multi_tf,
 * min_score (only when the caller has a score), then max_per_hour, which is
 * the only one with state: per policy and scope key (the signal's values of
 * the fields the scope names; one global key without a scope) a ring of the
 * times of the last max_per_hour signals it let through. A signal is denied
 * when the oldest of those is less than an hour old (a sliding window). The
 * same signal id is counted once, so evaluating it twice (before and after
 * scoring) does not use up two slots. The counters live in the set: a
 * reloaded set starts counting afresh.
 */
#include "signal/rules.h"

#include <quantgate/time.h>

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POLICY_LIST_MAX 256  /* entries in one string list */
#define POLICY_MAX      1024 /* policies in a set */
#define RATE_MAX        100000
#define RATE_KEYS_MAX   4096 /* scope keys per policy; more share the last */

typedef struct {
    char (*v)[QG_SIGNAL_SYMBOL_MAX + 1];
    int n;
} str_list;

typedef struct rate_key {
    char key[3 * (QG_SIGNAL_SYMBOL_MAX + 2)];
    int64_t *ring; /* max_per_hour slots, 0 = unused */
    int head;      /* next slot to write = the oldest */
    char last_id[QG_ID_MAX];
    struct rate_key *next;
} rate_key;

typedef struct {
    char name[64];
    bool enabled;
    str_list when_symbol, when_type, when_timeframe;
    bool has_min_conf, has_min_score, require_multi_tf;
    double min_conf, min_score;
    str_list blocked_types, allowed_symbols, blocked_symbols;
    int max_per_hour;
    qg_policy_action action;
    rate_key *keys;
    int nkeys;
} policy;

struct qg_policy_set {
    policy *p;
    int n;
    pthread_mutex_t mu;
};

static const char *const KNOWN = "name, when, min_confidence, blocked_types, allowed_symbols, "
                                 "blocked_symbols, max_per_hour, require_multi_tf, min_score, "
                                 "action, enabled";

static void policy_release(policy *p)
{
    free(p->when_symbol.v);
    free(p->when_type.v);
    free(p->when_timeframe.v);
    free(p->blocked_types.v);
    free(p->allowed_symbols.v);
    free(p->blocked_symbols.v);
    for (rate_key *k = p->keys, *nx; k; k = nx) {
        nx = k->next;
        free(k->ring);
        free(k);
    }
    memset(p, 0, sizeof *p);
}

static void fmt_num(double v, char *out)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* A string or an array of strings, each 1..32 characters. */
static qg_status read_list(const cJSON *v, const char *field, str_list *out, qg_error *err)
{
    int n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 0)
        return qg_error_set(err, QG_EINVAL, "%s: expected a string or an array of strings", field);
    if (n > POLICY_LIST_MAX)
        return qg_error_set(err, QG_EINVAL, "%s: %d entries, at most %d", field, n,
                            POLICY_LIST_MAX);
    free(out->v);
    out->v = calloc(n ? (size_t)n : 1, sizeof *out->v);
    if (!out->v) return qg_error_set(err, QG_ENOMEM, "%s: out of memory", field);
    out->n = 0;
    const cJSON *it = cJSON_IsString(v) ? v : v->child;
    for (int i = 0; i < n; i++, it = it->next) {
        if (!cJSON_IsString(it) || !it->valuestring[0] ||
            strlen(it->valuestring) > QG_SIGNAL_SYMBOL_MAX)
            return qg_error_set(err, QG_EINVAL, "%s[%d]: expected a string of 1-%d characters",
                                field, i, QG_SIGNAL_SYMBOL_MAX);
        strcpy(out->v[out->n++], it->valuestring);
    }
    return QG_OK;
}

static bool list_has(const str_list *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (!strcasecmp(l->v[i], s)) return true;
    return false;
}

static qg_status read_number(const cJSON *v, const char *field, double lo, double hi, double *out,
                             qg_error *err)
{
    if (!cJSON_IsNumber(v)) return qg_error_set(err, QG_EINVAL, "%s: expected a number", field);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi) {
        char nb[32], a[32], b[32];
        fmt_num(d, nb);
        fmt_num(lo, a);
        fmt_num(hi, b);
        return qg_error_set(err, QG_EINVAL, "%s: %s is out of range %s-%s", field, nb, a, b);
    }
    *out = d;
    return QG_OK;
}

/* Parses one policy object into p; errors carry no position (the caller
 * prefixes it). */
static qg_status parse_one(const cJSON *o, int index, policy *p, qg_error *err)
{
    memset(p, 0, sizeof *p);
    p->enabled = true;
    p->action = QG_POLICY_DROP;
    snprintf(p->name, sizeof p->name, "policy-%d", index + 1);
    if (!cJSON_IsObject(o)) return qg_error_set(err, QG_EINVAL, "expected an object");
    qg_status rc = QG_OK;
    for (const cJSON *it = o->child; it && !rc; it = it->next) {
        const char *k = it->string ? it->string : "";
        for (const cJSON *b = it->next; b; b = b->next)
            if (b->string && !strcmp(b->string, k))
                return qg_error_set(err, QG_EINVAL, "%.40s: given more than once", k);
        if (!strcmp(k, "name")) {
            if (!cJSON_IsString(it) || !it->valuestring[0] ||
                strlen(it->valuestring) >= sizeof p->name)
                return qg_error_set(err, QG_EINVAL, "name: expected a string of 1-%zu characters",
                                    sizeof p->name - 1);
            strcpy(p->name, it->valuestring);
        } else if (!strcmp(k, "when")) {
            if (!cJSON_IsObject(it))
                return qg_error_set(err, QG_EINVAL, "when: expected an object");
            for (const cJSON *w = it->child; w && !rc; w = w->next) {
                const char *wk = w->string ? w->string : "";
                for (const cJSON *b = w->next; b; b = b->next)
                    if (b->string && !strcmp(b->string, wk))
                        return qg_error_set(err, QG_EINVAL, "when.%.40s: given more than once", wk);
                if (!strcmp(wk, "symbol"))
                    rc = read_list(w, "when.symbol", &p->when_symbol, err);
                else if (!strcmp(wk, "signal_type"))
                    rc = read_list(w, "when.signal_type", &p->when_type, err);
                else if (!strcmp(wk, "timeframe"))
                    rc = read_list(w, "when.timeframe", &p->when_timeframe, err);
                else
                    return qg_error_set(err, QG_EINVAL,
                                        "when.%.40s: unknown field (allowed: symbol, "
                                        "signal_type, timeframe)",
                                        wk);
            }
        } else if (!strcmp(k, "min_confidence")) {
            rc = read_number(it, k, 0, 100, &p->min_conf, err);
            p->has_min_conf = true;
        } else if (!strcmp(k, "min_score")) {
            rc = read_number(it, k, 0, 1000, &p->min_score, err);
            p->has_min_score = true;
        } else if (!strcmp(k, "blocked_types")) {
            rc = read_list(it, k, &p->blocked_types, err);
        } else if (!strcmp(k, "allowed_symbols")) {
            rc = read_list(it, k, &p->allowed_symbols, err);
        } else if (!strcmp(k, "blocked_symbols")) {
            rc = read_list(it, k, &p->blocked_symbols, err);
        } else if (!strcmp(k, "max_per_hour")) {
            double d = 0;
            rc = read_number(it, k, 1, RATE_MAX, &d, err);
            if (!rc && d != floor(d))
                rc = qg_error_set(err, QG_EINVAL, "max_per_hour: expected a whole number");
            if (!rc) p->max_per_hour = (int)d;
        } else if (!strcmp(k, "require_multi_tf") || !strcmp(k, "enabled")) {
            if (!cJSON_IsBool(it))
                return qg_error_set(err, QG_EINVAL, "%s: expected true or false", k);
            if (k[0] == 'r')
                p->require_multi_tf = cJSON_IsTrue(it);
            else
                p->enabled = cJSON_IsTrue(it);
        } else if (!strcmp(k, "action")) {
            const char *a = cJSON_IsString(it) ? it->valuestring : "";
            if (!strcmp(a, "drop"))
                p->action = QG_POLICY_DROP;
            else if (!strcmp(a, "defer"))
                p->action = QG_POLICY_DEFER;
            else if (!strcmp(a, "escalate"))
                p->action = QG_POLICY_ESCALATE;
            else
                return qg_error_set(err, QG_EINVAL,
                                    "action: expected \"drop\", \"defer\" or \"escalate\"");
        } else {
            return qg_error_set(err, QG_EINVAL, "%.40s: unknown field (allowed: %s)", k, KNOWN);
        }
    }
    return rc;
}

qg_status qg_policy_parse(const cJSON *arr, qg_policy_set **out, qg_error *err)
{
    *out = NULL;
    if (arr && !cJSON_IsArray(arr))
        return qg_error_set(err, QG_EINVAL, "policies: expected a JSON array of policy objects");
    int n = arr ? cJSON_GetArraySize(arr) : 0;
    if (n > POLICY_MAX)
        return qg_error_set(err, QG_EINVAL, "policies: %d given, at most %d", n, POLICY_MAX);
    qg_policy_set *s = calloc(1, sizeof *s);
    if (!s) return qg_error_set(err, QG_ENOMEM, "policies: out of memory");
    s->p = calloc(n ? (size_t)n : 1, sizeof *s->p);
    if (!s->p) {
        free(s);
        return qg_error_set(err, QG_ENOMEM, "policies: out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    int i = 0;
    for (const cJSON *it = arr ? arr->child : NULL; it; it = it->next, i++) {
        qg_status rc = parse_one(it, i, &s->p[i], err);
        s->n = i + 1;
        if (!rc)
            for (int j = 0; j < i; j++)
                if (!strcmp(s->p[j].name, s->p[i].name))
                    rc = qg_error_set(err, QG_EINVAL, "name: \"%s\" is also policy %d's",
                                      s->p[i].name, j);
        if (rc) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
            if (cJSON_IsString(nm))
                qg_error_prefix(err, "policy %d (%.63s)", i, nm->valuestring);
            else
                qg_error_prefix(err, "policy %d", i);
            qg_policy_free(s);
            return rc;
        }
    }
    *out = s;
    return QG_OK;
}

qg_status qg_policy_validate(const cJSON *obj, qg_error *err)
{
    policy p;
    qg_status rc = parse_one(obj, 0, &p, err);
    policy_release(&p);
    return rc;
}

void qg_policy_free(qg_policy_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) policy_release(&s->p[i]);
    free(s->p);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- evaluation ---- */

static bool in_scope(const policy *p, const qg_signal *s)
{
    if (p->when_symbol.n && !list_has(&p->when_symbol, s->symbol)) return false;
    if (p->when_type.n && !list_has(&p->when_type, s->signal_type)) return false;
    if (p->when_timeframe.n && !list_has(&p->when_timeframe, s->timeframe)) return false;
    return true;
}

/* The scope key: the signal's values of the fields the scope names. */
static void scope_key(const policy *p, const qg_signal *s, char *out, size_t cap)
{
    snprintf(out, cap, "%s|%s|%s", p->when_symbol.n ? s->symbol : "*",
             p->when_type.n ? s->signal_type : "*", p->when_timeframe.n ? s->timeframe : "*");
}

static rate_key *rate_find(policy *p, const char *key)
{
    rate_key *last = NULL;
    for (rate_key *k = p->keys; k; k = k->next) {
        if (!strcmp(k->key, key)) return k;
        last = k;
    }
    if (p->nkeys >= RATE_KEYS_MAX) return last; /* bounded: the overflow shares one counter */
    rate_key *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->ring = calloc((size_t)p->max_per_hour, sizeof *k->ring);
    if (!k->ring) {
        free(k);
        return NULL;
    }
    snprintf(k->key, sizeof k->key, "%s", key);
    k->next = p->keys;
    p->keys = k;
    p->nkeys++;
    return k;
}

/* True when the signal fits in the policy's hourly budget (and counts it). */
static bool rate_take(qg_policy_set *set, policy *p, const qg_signal *s, int64_t now_ms)
{
    char key[sizeof((rate_key *)0)->key];
    scope_key(p, s, key, sizeof key);
    bool ok = true;
    pthread_mutex_lock(&set->mu);
    rate_key *k = rate_find(p, key);
    if (k) {
        if (s->id[0] && !strcmp(k->last_id, s->id)) {
            ok = true; /* already counted */
        } else {
            int64_t oldest = k->ring[k->head];
            if (oldest && now_ms - oldest < QG_MS_PER_HOUR) {
                ok = false;
            } else {
                k->ring[k->head] = now_ms ? now_ms : 1;
                k->head = (k->head + 1) % p->max_per_hour;
                snprintf(k->last_id, sizeof k->last_id, "%s", s->id);
            }
        }
    }
    pthread_mutex_unlock(&set->mu);
    return ok;
}

static bool deny(policy *p, qg_policy_verdict *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool deny(policy *p, qg_policy_verdict *out, const char *fmt, ...)
{
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    out->action = p->action;
    snprintf(out->policy, sizeof out->policy, "%s", p->name);
    snprintf(out->reason, sizeof out->reason, "%s (policy %s)", why, p->name);
    return true;
}

/* Runs p's checks; true (with *out filled) when it denies. */
static bool policy_denies(qg_policy_set *set, policy *p, const qg_signal *s, bool has_score,
                          double score, int64_t now_ms, qg_policy_verdict *out)
{
    char a[32], b[32];
    if (list_has(&p->blocked_symbols, s->symbol))
        return deny(p, out, "symbol %s is in blocked_symbols", s->symbol);
    if (p->allowed_symbols.n && !list_has(&p->allowed_symbols, s->symbol))
        return deny(p, out, "symbol %s is not in allowed_symbols", s->symbol);
    if (list_has(&p->blocked_types, s->signal_type))
        return deny(p, out, "signal type %s is in blocked_types", s->signal_type);
    if (p->has_min_conf && s->confidence < p->min_conf) {
        fmt_num(s->confidence, a);
        fmt_num(p->min_conf, b);
        return deny(p, out, "confidence %s below min_confidence %s", a, b);
    }
    if (p->require_multi_tf && !s->multi_tf)
        return deny(p, out, "multi_tf is false and require_multi_tf is set");
    if (p->has_min_score && has_score && score < p->min_score) {
        fmt_num(score, a);
        fmt_num(p->min_score, b);
        return deny(p, out, "score %s below min_score %s", a, b);
    }
    if (p->max_per_hour > 0 && !rate_take(set, p, s, now_ms)) {
        char key[3 * (QG_SIGNAL_SYMBOL_MAX + 2)];
        scope_key(p, s, key, sizeof key);
        return deny(p, out, "max_per_hour %d reached for %s", p->max_per_hour,
                    strcmp(key, "*|*|*") ? key : "all signals");
    }
    return false;
}

void qg_policy_eval(qg_policy_set *set, const qg_signal *s, bool has_score, double score,
                    int64_t now_ms, qg_policy_verdict *out)
{
    memset(out, 0, sizeof *out);
    out->action = QG_POLICY_ALLOW;
    int evaluated = 0;
    for (int i = 0; set && i < set->n; i++) {
        policy *p = &set->p[i];
        if (!p->enabled || !in_scope(p, s)) continue;
        evaluated++;
        if (policy_denies(set, p, s, has_score, score, now_ms, out)) return;
    }
    snprintf(out->reason, sizeof out->reason, "allowed by %d polic%s", evaluated,
             evaluated == 1 ? "y" : "ies");
}
