/*
 * catalog.c - the deployments and named models quantgate can call, from the
 * environment, QG_AI_MODELS and the database (see catalog.h for the rules).
 *
 * The catalog is built into two growable arrays (plus parallel arrays of
 * sources) in a fixed order: builtin, the default models analyst and fast,
 * models QG_AI_MODELS adds, then database models. Redefining a model drops
 * the earlier definition and its deployments, so "later wins" is the only
 * precedence rule. Deployments are finally regrouped by model, by priority.
 *
 * Keys: an environment deployment only names its variable ("env:NAME"); a
 * database deployment names a vault secret. Keys are read in
 * qg_ai_catalog_key at call time and never copied into the catalog.
 */
#include "ai/catalog.h"

#include <quantgate/config.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_DEFAULT 5000
#define READ_TIMEOUT_DEFAULT    60000
#define MODELS_VAR              "QG_AI_MODELS"
#define FALLBACK_MAX_HOPS       QG_AI_MAX_MODELS

/* The conventional variables of one provider. */
typedef struct env_provider {
    const char *name;
    const char *key_var;       /* NULL: the provider needs no key (Ollama) */
    const char *url_var;       /* base URL (OLLAMA_HOST for Ollama) */
    const char *model_var;     /* the model the default named models use */
    const char *default_model; /* when model_var is unset */
    const char *prefix;        /* QG_<PROVIDER>: _PRICE_IN, _PRICE_OUT, _RPM, _TPM */
} env_provider;

static const env_provider env_providers[] = {
    {"openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "QG_OPENAI_MODEL", "gpt-4o-mini", "QG_OPENAI"},
    {"anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "QG_ANTHROPIC_MODEL",
     "claude-3-5-haiku-latest", "QG_ANTHROPIC"},
    {"gemini", "GEMINI_API_KEY", "GEMINI_BASE_URL", "QG_GEMINI_MODEL", "gemini-2.0-flash",
     "QG_GEMINI"},
    {"ollama", NULL, "OLLAMA_HOST", "QG_OLLAMA_MODEL", "llama3.1", "QG_OLLAMA"},
};
#define NENV ((int)(sizeof env_providers / sizeof env_providers[0]))

static const char *const default_models[][2] = {
    {"analyst", "Analysis and reasoning: the configured providers, then builtin"},
    {"fast", "Quick, cheap answers: the configured providers, then builtin"},
};

const char *qg_ai_source_name(qg_ai_source s)
{
    switch (s) {
    case QG_AI_SRC_BUILTIN:
        return "builtin";
    case QG_AI_SRC_ENV:
        return "environment";
    case QG_AI_SRC_DB:
        return "database";
    }
    return "unknown";
}

/* ---- the catalog being built ---- */

typedef struct cat {
    qg_ai_deployment *deps;
    qg_ai_source *srcd;
    size_t nd, capd;
    qg_ai_model *models;
    qg_ai_source *srcm;
    size_t nm, capm;
} cat;

static void cat_free(cat *k)
{
    free(k->deps);
    free(k->srcd);
    free(k->models);
    free(k->srcm);
    memset(k, 0, sizeof *k);
}

static qg_status cat_add_dep(cat *k, const qg_ai_deployment *d, qg_ai_source s, qg_error *err)
{
    if (k->nd == QG_AI_MAX_DEPLOYMENTS)
        return qg_error_set(err, QG_ERANGE, "AI catalog: more than %d deployments",
                            QG_AI_MAX_DEPLOYMENTS);
    if (k->nd == k->capd) {
        size_t cap = k->capd ? k->capd * 2 : 16;
        qg_ai_deployment *nd = realloc(k->deps, cap * sizeof *nd);
        if (!nd) return qg_error_set(err, QG_ENOMEM, "AI catalog: out of memory");
        k->deps = nd;
        qg_ai_source *ns = realloc(k->srcd, cap * sizeof *ns);
        if (!ns) return qg_error_set(err, QG_ENOMEM, "AI catalog: out of memory");
        k->srcd = ns;
        k->capd = cap;
    }
    k->deps[k->nd] = *d;
    k->srcd[k->nd++] = s;
    return QG_OK;
}

static qg_status cat_add_model(cat *k, const qg_ai_model *m, qg_ai_source s, qg_error *err)
{
    if (k->nm == QG_AI_MAX_MODELS)
        return qg_error_set(err, QG_ERANGE, "AI catalog: more than %d named models",
                            QG_AI_MAX_MODELS);
    if (k->nm == k->capm) {
        size_t cap = k->capm ? k->capm * 2 : 8;
        qg_ai_model *nm = realloc(k->models, cap * sizeof *nm);
        if (!nm) return qg_error_set(err, QG_ENOMEM, "AI catalog: out of memory");
        k->models = nm;
        qg_ai_source *ns = realloc(k->srcm, cap * sizeof *ns);
        if (!ns) return qg_error_set(err, QG_ENOMEM, "AI catalog: out of memory");
        k->srcm = ns;
        k->capm = cap;
    }
    k->models[k->nm] = *m;
    k->srcm[k->nm++] = s;
    return QG_OK;
}

static int cat_find_model(const cat *k, const char *name)
{
    for (size_t i = 0; i < k->nm; i++)
        if (!strcmp(k->models[i].name, name)) return (int)i;
    return -1;
}

/* Removes model name and the deployments serving it (a redefinition). */
static void cat_drop_model(cat *k, const char *name)
{
    int i = cat_find_model(k, name);
    if (i >= 0) {
        memmove(&k->models[i], &k->models[i + 1], (k->nm - (size_t)i - 1) * sizeof *k->models);
        memmove(&k->srcm[i], &k->srcm[i + 1], (k->nm - (size_t)i - 1) * sizeof *k->srcm);
        k->nm--;
    }
    size_t w = 0;
    for (size_t r = 0; r < k->nd; r++) {
        if (!strcmp(k->deps[r].model_name, name)) continue;
        k->deps[w] = k->deps[r];
        k->srcd[w++] = k->srcd[r];
    }
    k->nd = w;
}

/* Regroups deployments by model (model order), by priority inside each
 * (stable); deployments of unknown models are dropped. */
static qg_status cat_order(cat *k, qg_error *err)
{
    if (!k->nd) return QG_OK;
    qg_ai_deployment *nd = malloc(k->nd * sizeof *nd);
    qg_ai_source *ns = malloc(k->nd * sizeof *ns);
    if (!nd || !ns) {
        free(nd);
        free(ns);
        return qg_error_set(err, QG_ENOMEM, "AI catalog: out of memory");
    }
    size_t w = 0;
    for (size_t m = 0; m < k->nm; m++) {
        size_t start = w;
        for (size_t i = 0; i < k->nd; i++) {
            if (strcmp(k->deps[i].model_name, k->models[m].name)) continue;
            /* insertion keeps equal priorities in their original order */
            size_t j = w++;
            while (j > start && nd[j - 1].priority > k->deps[i].priority) {
                nd[j] = nd[j - 1];
                ns[j] = ns[j - 1];
                j--;
            }
            nd[j] = k->deps[i];
            ns[j] = k->srcd[i];
        }
    }
    free(k->deps);
    free(k->srcd);
    k->deps = nd;
    k->srcd = ns;
    k->nd = w;
    /* The router keys health, cool-down and rpm/tpm by id and keeps only the
     * first row of an id, so a deployment serving a second model (env-openai
     * for analyst and fast) gets its own id there: "env-openai@fast". */
    for (size_t i = 0; i < k->nd; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(k->deps[i].id, k->deps[j].id)) continue;
            char id[sizeof k->deps[i].id];
            int keep = (int)sizeof id - 2 - (int)strlen(k->deps[i].model_name);
            snprintf(id, sizeof id, "%.*s@%s", keep < 8 ? 8 : keep, k->deps[i].id,
                     k->deps[i].model_name);
            memcpy(k->deps[i].id, id, sizeof id);
            break;
        }
    }
    return QG_OK;
}

/* ---- small helpers ---- */

bool qg_ai_catalog_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-') return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

bool qg_ai_key_ref_allowed(const char *ref)
{
    if (!ref || !*ref) return true;
    if (!strncmp(ref, "env:", 4)) {
        const char *name = ref + 4;
        if (strlen(name) <= strlen("_API_KEY") || !ends_with(name, "_API_KEY")) return false;
        for (const char *p = name; *p; p++)
            if (!isupper((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
                return false;
        return true;
    }
    if (strncmp(ref, "ai.", 3) || strlen(ref) > QG_SECRET_NAME_MAX) return false;
    for (const char *p = ref; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') return false;
    return true;
}

/* Copies s into a fixed field; false when it does not fit. */
static bool put(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap) return false;
    memcpy(dst, s, n + 1);
    return true;
}

static bool env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v;
}

/* A non-negative number from variable name (def when unset). */
static qg_status env_number(const char *name, double def, double max, double *out, qg_error *err)
{
    const char *v = getenv(name);
    *out = def;
    if (!v || !*v) return QG_OK;
    char *end;
    double x = strtod(v, &end);
    while (*end == ' ') end++;
    if (end == v || *end || !isfinite(x) || x < 0 || x > max)
        return qg_error_set(err, QG_EINVAL, "%s: '%s' is not a number between 0 and %g", name, v,
                            max);
    *out = x;
    return QG_OK;
}

static const env_provider *env_provider_find(const char *name)
{
    for (int i = 0; i < NENV; i++)
        if (!strcmp(env_providers[i].name, name)) return &env_providers[i];
    return NULL;
}

/* Configured: its key is set, or (OpenAI-compatible local servers, Ollama)
 * its base URL is. */
static bool env_present(const env_provider *p)
{
    if (p->key_var && env_set(p->key_var)) return true;
    return (!p->key_var || !strcmp(p->name, "openai")) && env_set(p->url_var);
}

static const char *env_model(const env_provider *p)
{
    const char *m = getenv(p->model_var);
    return m && *m ? m : p->default_model;
}

/* The deployment provider p gives (without model_name), model `model`. */
static qg_status env_deployment(const env_provider *p, const char *model, int priority,
                                qg_ai_deployment *d, qg_error *err)
{
    memset(d, 0, sizeof *d);
    char name[64];
    snprintf(d->provider, sizeof d->provider, "%s", p->name);
    if (!strcmp(model, env_model(p))) {
        snprintf(d->id, sizeof d->id, "env-%s", p->name);
    } else {
        /* another model of the same provider: its own id, URL-safe */
        int n = snprintf(d->id, sizeof d->id, "env-%s-%s", p->name, model);
        for (int i = 0; i < n && i < (int)sizeof d->id - 1; i++)
            if (!isalnum((unsigned char)d->id[i]) && d->id[i] != '.' && d->id[i] != '_' &&
                d->id[i] != '-')
                d->id[i] = '-';
    }
    if (!put(d->model, sizeof d->model, model))
        return qg_error_set(err, QG_EINVAL, "%s model '%.40s...': longer than %zu characters",
                            p->name, model, sizeof d->model - 1);
    const char *url = getenv(p->url_var);
    if (url && *url) {
        /* OLLAMA_HOST is often "host:port" without a scheme */
        int n = strstr(url, "://") ? snprintf(d->base_url, sizeof d->base_url, "%s", url)
                                   : snprintf(d->base_url, sizeof d->base_url, "http://%s", url);
        if (n < 0 || (size_t)n >= sizeof d->base_url)
            return qg_error_set(err, QG_EINVAL, "%s: longer than %zu characters", p->url_var,
                                sizeof d->base_url - 1);
    }
    if (p->key_var && env_set(p->key_var))
        snprintf(d->key_ref, sizeof d->key_ref, "env:%s", p->key_var);
    if (!strcmp(p->name, "openai")) {
        const char *v = getenv("OPENAI_API_VERSION"); /* Azure OpenAI */
        if (v && *v && !put(d->api_version, sizeof d->api_version, v))
            return qg_error_set(err, QG_EINVAL, "OPENAI_API_VERSION: longer than %zu characters",
                                sizeof d->api_version - 1);
    }
    double x;
    qg_status rc;
    snprintf(name, sizeof name, "%s_PRICE_IN", p->prefix);
    if ((rc = env_number(name, 0, 1e6, &d->price_in, err))) return rc;
    snprintf(name, sizeof name, "%s_PRICE_OUT", p->prefix);
    if ((rc = env_number(name, 0, 1e6, &d->price_out, err))) return rc;
    snprintf(name, sizeof name, "%s_RPM", p->prefix);
    if ((rc = env_number(name, 0, 1e9, &x, err))) return rc;
    d->rpm = (int64_t)x;
    snprintf(name, sizeof name, "%s_TPM", p->prefix);
    if ((rc = env_number(name, 0, 1e12, &x, err))) return rc;
    d->tpm = (int64_t)x;
    d->connect_timeout_ms = CONNECT_TIMEOUT_DEFAULT;
    d->read_timeout_ms = READ_TIMEOUT_DEFAULT;
    d->priority = priority;
    d->enabled = true;
    return QG_OK;
}

static void builtin_deployment(const char *model_name, int priority, qg_ai_deployment *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "builtin");
    snprintf(d->model_name, sizeof d->model_name, "%s", model_name);
    snprintf(d->provider, sizeof d->provider, "builtin");
    snprintf(d->model, sizeof d->model, "builtin");
    d->connect_timeout_ms = CONNECT_TIMEOUT_DEFAULT;
    d->read_timeout_ms = READ_TIMEOUT_DEFAULT;
    d->priority = priority;
    d->enabled = true;
}

static void make_model(qg_ai_model *m, const char *name, const char *fallback, const char *desc)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->fallback, sizeof m->fallback, "%s", fallback);
    snprintf(m->description, sizeof m->description, "%s", desc);
}

/* ---- QG_AI_MODELS ---- */

/* Trims spaces in place; returns the start. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* One "provider[:model]" of model `name`, at priority prio. */
static qg_status parse_dep(cat *k, const char *name, char *spec, int prio, qg_error *err)
{
    char *colon = strchr(spec, ':');
    const char *model = NULL;
    if (colon) {
        *colon = '\0';
        model = trim(colon + 1);
    }
    const char *prov = trim(spec);
    qg_ai_deployment d;
    if (!strcmp(prov, "builtin")) {
        builtin_deployment(name, prio, &d);
        return cat_add_dep(k, &d, QG_AI_SRC_BUILTIN, err);
    }
    const env_provider *p = env_provider_find(prov);
    if (!p)
        return qg_error_set(err, QG_EINVAL,
                            "%s: model '%s': unknown provider '%s' (expected openai, anthropic, "
                            "gemini, ollama or builtin)",
                            MODELS_VAR, name, prov);
    if (!env_present(p))
        return qg_error_set(err, QG_EINVAL,
                            "%s: model '%s': provider %s is not configured (set %s)", MODELS_VAR,
                            name, prov, p->key_var ? p->key_var : p->url_var);
    if (colon && !*model)
        return qg_error_set(err, QG_EINVAL, "%s: model '%s': '%s:' has no model after the colon",
                            MODELS_VAR, name, prov);
    qg_status rc = env_deployment(p, model ? model : env_model(p), prio, &d, err);
    if (rc) {
        qg_error_prefix(err, "%s: model '%s'", MODELS_VAR, name);
        return rc;
    }
    snprintf(d.model_name, sizeof d.model_name, "%s", name);
    return cat_add_dep(k, &d, QG_AI_SRC_ENV, err);
}

/* One "name=dep,dep>fallback" entry. */
static qg_status parse_model(cat *k, char *entry, char (*seen)[64], int *nseen, qg_error *err)
{
    char *eq = strchr(entry, '=');
    if (!eq)
        return qg_error_set(err, QG_EINVAL,
                            "%s: '%.60s' has no '=' (expected name=provider:model,...)", MODELS_VAR,
                            trim(entry));
    *eq = '\0';
    const char *name = trim(entry);
    char *list = eq + 1;
    if (!qg_ai_catalog_name_ok(name))
        return qg_error_set(err, QG_EINVAL,
                            "%s: model name '%.64s' must be 1-63 of letters, digits, '.', '_', '-'",
                            MODELS_VAR, name);
    if (!strcmp(name, "builtin"))
        return qg_error_set(err, QG_EINVAL, "%s: 'builtin' is reserved and cannot be redefined",
                            MODELS_VAR);
    for (int i = 0; i < *nseen; i++)
        if (!strcmp(seen[i], name))
            return qg_error_set(err, QG_EINVAL, "%s: model '%s' is defined twice", MODELS_VAR,
                                name);
    if (*nseen == QG_AI_MAX_MODELS)
        return qg_error_set(err, QG_ERANGE, "%s: more than %d models", MODELS_VAR,
                            QG_AI_MAX_MODELS);
    snprintf(seen[(*nseen)++], 64, "%s", name);

    const char *fallback = "builtin";
    char *gt = strchr(list, '>');
    if (gt) {
        *gt = '\0';
        fallback = trim(gt + 1);
        if (!strcmp(fallback, "none"))
            fallback = "";
        else if (!qg_ai_catalog_name_ok(fallback))
            return qg_error_set(err, QG_EINVAL, "%s: model '%s': bad fallback '%.64s'", MODELS_VAR,
                                name, fallback);
        if (!strcmp(fallback, name))
            return qg_error_set(err, QG_EINVAL, "%s: model '%s' falls back to itself", MODELS_VAR,
                                name);
    }
    list = trim(list);
    if (!*list && !gt)
        return qg_error_set(err, QG_EINVAL, "%s: model '%s' lists no deployments", MODELS_VAR,
                            name);

    cat_drop_model(k, name);
    qg_ai_model m;
    make_model(&m, name, fallback, "");
    snprintf(m.description, sizeof m.description, "from %s", MODELS_VAR);
    qg_status rc = cat_add_model(k, &m, QG_AI_SRC_ENV, err);
    int prio = 0;
    /* strsep, not strtok: "a,,b" must be an error, not "a,b" */
    for (char *rest = *list ? list : NULL, *tok; !rc && (tok = strsep(&rest, ","));) {
        if (!*trim(tok))
            return qg_error_set(err, QG_EINVAL, "%s: model '%s' has an empty entry in its list",
                                MODELS_VAR, name);
        rc = parse_dep(k, name, tok, prio++, err);
    }
    return rc;
}

static qg_status parse_models_var(cat *k, qg_error *err)
{
    const char *v = getenv(MODELS_VAR);
    if (!v || !*v) return QG_OK;
    char *copy = strdup(v);
    char(*seen)[64] = calloc(QG_AI_MAX_MODELS, 64);
    qg_status rc = QG_OK;
    if (!copy || !seen) {
        rc = qg_error_set(err, QG_ENOMEM, "%s: out of memory", MODELS_VAR);
        goto out;
    }
    int nseen = 0;
    char *save = NULL;
    for (char *e = strtok_r(copy, ";", &save); e && !rc; e = strtok_r(NULL, ";", &save)) {
        if (!*trim(e)) continue;
        rc = parse_model(k, e, seen, &nseen, err);
    }
    if (rc) goto out;
    /* fallbacks may name models defined later in the variable */
    for (int i = 0; i < nseen; i++) {
        int m = cat_find_model(k, seen[i]);
        const char *fb = k->models[m].fallback;
        if (*fb && cat_find_model(k, fb) < 0) {
            rc = qg_error_set(err, QG_EINVAL, "%s: model '%s' falls back to unknown model '%s'",
                              MODELS_VAR, seen[i], fb);
            goto out;
        }
    }
out:
    free(copy);
    free(seen);
    return rc;
}

/* The named model "embed" (src/ai/embed.h) from QG_<PROVIDER>_EMBED_MODEL:
 * one deployment per provider whose variable is set and which is configured
 * (Ollama needs no key, so its variable alone is enough), in the order
 * openai, gemini, ollama; price_in from QG_<PROVIDER>_EMBED_PRICE_IN, no
 * output price; no fallback (builtin has no embeddings). QG_AI_MODELS, read
 * after, may redefine it. */
static const char *const embed_env[][3] = {
    {"openai", "QG_OPENAI_EMBED_MODEL", "QG_OPENAI_EMBED_PRICE_IN"},
    {"gemini", "QG_GEMINI_EMBED_MODEL", "QG_GEMINI_EMBED_PRICE_IN"},
    {"ollama", "QG_OLLAMA_EMBED_MODEL", "QG_OLLAMA_EMBED_PRICE_IN"},
};

static qg_status build_env_embed(cat *k, qg_error *err)
{
    qg_status rc = QG_OK;
    bool any = false;
    for (size_t i = 0; !rc && i < sizeof embed_env / sizeof embed_env[0]; i++) {
        const env_provider *p = env_provider_find(embed_env[i][0]);
        const char *model = getenv(embed_env[i][1]);
        if (!p || !model || !*model) continue;
        if (p->key_var && !env_present(p)) {
            qg_warn("%s is set but %s is not: no %s embeddings deployment", embed_env[i][1],
                    p->key_var, p->name);
            continue;
        }
        if (!any) {
            qg_ai_model m;
            make_model(&m, "embed", "", "Embeddings: the models QG_<PROVIDER>_EMBED_MODEL names");
            if ((rc = cat_add_model(k, &m, QG_AI_SRC_ENV, err))) break;
            any = true;
        }
        qg_ai_deployment d;
        if ((rc = env_deployment(p, model, (int)i, &d, err))) break;
        d.price_out = 0;
        if ((rc = env_number(embed_env[i][2], 0, 1e6, &d.price_in, err))) break;
        snprintf(d.model_name, sizeof d.model_name, "embed");
        rc = cat_add_dep(k, &d, QG_AI_SRC_ENV, err);
    }
    return rc;
}

static qg_status build_env(cat *k, qg_error *err)
{
    qg_ai_model m;
    qg_ai_deployment d;
    make_model(&m, "builtin", "", "Offline and deterministic: quantgate's own reasoner");
    qg_status rc = cat_add_model(k, &m, QG_AI_SRC_BUILTIN, err);
    builtin_deployment("builtin", 0, &d);
    if (!rc) rc = cat_add_dep(k, &d, QG_AI_SRC_BUILTIN, err);
    for (size_t i = 0; !rc && i < sizeof default_models / sizeof default_models[0]; i++) {
        make_model(&m, default_models[i][0], "builtin", default_models[i][1]);
        rc = cat_add_model(k, &m, QG_AI_SRC_ENV, err);
        for (int p = 0; !rc && p < NENV; p++) {
            if (!env_present(&env_providers[p])) continue;
            rc = env_deployment(&env_providers[p], env_model(&env_providers[p]), p, &d, err);
            snprintf(d.model_name, sizeof d.model_name, "%s", default_models[i][0]);
            if (!rc) rc = cat_add_dep(k, &d, QG_AI_SRC_ENV, err);
        }
    }
    if (!rc) rc = build_env_embed(k, err);
    if (!rc) rc = parse_models_var(k, err);
    return rc;
}

/* ---- the database ---- */

static qg_status row_model(void *ud, const qg_row *row)
{
    void **a = ud;
    cat *k = a[0];
    qg_error *err = a[1];
    qg_ai_model m;
    make_model(&m, qg_row_text(row, 0), qg_row_text(row, 1) ? qg_row_text(row, 1) : "",
               qg_row_text(row, 2) ? qg_row_text(row, 2) : "");
    cat_drop_model(k, m.name);
    return cat_add_model(k, &m, QG_AI_SRC_DB, err);
}

#define DEP_COLUMNS                                                                                \
    "id, model_name, provider, model, base_url, key_ref, api_version, price_in, price_out, rpm, "  \
    "tpm, connect_timeout_ms, read_timeout_ms, priority, enabled"

static void dep_from_row(const qg_row *row, qg_ai_deployment *d)
{
    memset(d, 0, sizeof *d);
    char *fields[] = {d->id,       d->model_name, d->provider,   d->model,
                      d->base_url, d->key_ref,    d->api_version};
    size_t caps[] = {sizeof d->id,         sizeof d->model_name, sizeof d->provider,
                     sizeof d->model,      sizeof d->base_url,   sizeof d->key_ref,
                     sizeof d->api_version};
    for (int i = 0; i < 7; i++) {
        const char *s = qg_row_text(row, i);
        snprintf(fields[i], caps[i], "%s", s ? s : "");
    }
    d->price_in = qg_row_double(row, 7);
    d->price_out = qg_row_double(row, 8);
    d->rpm = qg_row_int(row, 9);
    d->tpm = qg_row_int(row, 10);
    d->connect_timeout_ms = qg_row_int(row, 11);
    d->read_timeout_ms = qg_row_int(row, 12);
    d->priority = (int)qg_row_int(row, 13);
    d->enabled = qg_row_int(row, 14) != 0;
}

static qg_status row_dep(void *ud, const qg_row *row)
{
    void **a = ud;
    cat *k = a[0];
    qg_ai_deployment d;
    dep_from_row(row, &d);
    int m = cat_find_model(k, d.model_name);
    if (m < 0 || k->srcm[m] != QG_AI_SRC_DB) {
        /* only database models are served by database rows (catalog.h) */
        qg_debug("AI catalog: deployment %s serves no database model '%s'; ignored", d.id,
                 d.model_name);
        return QG_OK;
    }
    return cat_add_dep(k, &d, QG_AI_SRC_DB, a[1]);
}

static qg_status build_db(cat *k, qg_conn *c, qg_error *err)
{
    void *a[2] = {k, err};
    qg_status rc =
        qg_conn_query(c, "SELECT name, fallback, description FROM ai_models ORDER BY name", NULL, 0,
                      row_model, a, err);
    if (rc) return rc;
    return qg_conn_query(c, "SELECT " DEP_COLUMNS " FROM ai_deployments ORDER BY created_at, id",
                         NULL, 0, row_dep, a, err);
}

qg_status qg_ai_catalog_load_ex(qg_conn *c, qg_ai_deployment **deps, size_t *ndeps,
                                qg_ai_model **models, size_t *nmodels, qg_ai_source **src_deps,
                                qg_ai_source **src_models, qg_error *err)
{
    cat k = {0};
    qg_status rc = build_env(&k, err);
    if (!rc && c) rc = build_db(&k, c, err);
    if (!rc) rc = cat_order(&k, err);
    if (rc) {
        cat_free(&k);
        *deps = NULL;
        *models = NULL;
        *ndeps = *nmodels = 0;
        if (src_deps) *src_deps = NULL;
        if (src_models) *src_models = NULL;
        return rc;
    }
    *deps = k.deps;
    *ndeps = k.nd;
    *models = k.models;
    *nmodels = k.nm;
    if (src_deps)
        *src_deps = k.srcd;
    else
        free(k.srcd);
    if (src_models)
        *src_models = k.srcm;
    else
        free(k.srcm);
    return QG_OK;
}

qg_status qg_ai_catalog_load(qg_conn *c, qg_ai_deployment **deps, size_t *ndeps,
                             qg_ai_model **models, size_t *nmodels, qg_error *err)
{
    return qg_ai_catalog_load_ex(c, deps, ndeps, models, nmodels, NULL, NULL, err);
}

qg_status qg_ai_catalog_env(qg_ai_deployment **deps, size_t *ndeps, qg_ai_model **models,
                            size_t *nmodels, qg_error *err)
{
    return qg_ai_catalog_load_ex(NULL, deps, ndeps, models, nmodels, NULL, NULL, err);
}

/* ---- keys ---- */

qg_status qg_ai_catalog_key(qg_vault *v, qg_conn *c, const qg_ai_deployment *d, char *out,
                            size_t cap, qg_error *err)
{
    if (!cap) return qg_error_set(err, QG_ERANGE, "deployment '%s': no room for the key", d->id);
    out[0] = '\0';
    const char *ref = d->key_ref;
    if (!*ref) return QG_OK;
    if (!strncmp(ref, "env:", 4)) {
        if (!qg_ai_key_ref_allowed(ref))
            return qg_error_set(err, QG_EDENIED,
                                "deployment '%s': key_ref '%s' refused: only variables whose name "
                                "ends in _API_KEY are read",
                                d->id, ref);
        const char *k = getenv(ref + 4);
        if (!k || !*k)
            return qg_error_set(err, QG_ENOTFOUND, "deployment '%s': key_ref '%s': %s is not set",
                                d->id, ref, ref + 4);
        if (strlen(k) >= cap)
            return qg_error_set(err, QG_ERANGE,
                                "deployment '%s': key_ref '%s': the key is longer "
                                "than %zu bytes",
                                d->id, ref, cap - 1);
        memcpy(out, k, strlen(k) + 1);
        return QG_OK;
    }
    if (!v || !c)
        return qg_error_set(err, QG_EINVAL, "deployment '%s': key_ref '%s' needs the vault", d->id,
                            ref);
    qg_error e = {0};
    qg_status rc = qg_vault_get(v, c, ref, out, cap, &e);
    if (rc) {
        out[0] = '\0';
        if (rc == QG_ENOTFOUND)
            return qg_error_set(err, rc, "deployment '%s': key_ref '%s': no such vault secret",
                                d->id, ref);
        return qg_error_set(err, rc, "deployment '%s': key_ref '%s': %s", d->id, ref, e.msg);
    }
    return QG_OK;
}

/* ---- database entries ---- */

static qg_status row_one_model(void *ud, const qg_row *row)
{
    qg_ai_model *m = ud;
    make_model(m, qg_row_text(row, 0), qg_row_text(row, 1) ? qg_row_text(row, 1) : "",
               qg_row_text(row, 2) ? qg_row_text(row, 2) : "");
    m->name[sizeof m->name - 1] = '\0';
    return QG_ERANGE; /* stop: one row */
}

qg_status qg_ai_catalog_model_get(qg_conn *c, const char *name, qg_ai_model *out, qg_error *err)
{
    qg_ai_model m = {0};
    qg_val p[] = {QG_VTEXT(name)};
    qg_status rc =
        qg_conn_query(c, "SELECT name, fallback, description FROM ai_models WHERE name = ?", p, 1,
                      row_one_model, &m, err);
    if (rc == QG_ERANGE)
        rc = QG_OK;
    else if (!rc)
        return qg_error_set(err, QG_ENOTFOUND, "named model '%s' is not in the database", name);
    if (!rc && out) *out = m;
    return rc;
}

qg_status qg_ai_catalog_model_put(qg_conn *c, const qg_ai_model *m, bool *created, qg_error *err)
{
    if (!qg_ai_catalog_name_ok(m->name))
        return qg_error_set(err, QG_EINVAL,
                            "name: must be 1-63 of letters, digits, '.', '_' and '-'");
    if (!strcmp(m->name, "builtin"))
        return qg_error_set(err, QG_EINVAL, "name: 'builtin' is reserved");
    if (strlen(m->description) >= sizeof m->description)
        return qg_error_set(err, QG_EINVAL, "description: longer than %zu characters",
                            sizeof m->description - 1);
    qg_status rc = QG_OK;
    qg_ai_deployment *deps = NULL;
    qg_ai_model *models = NULL;
    size_t nd = 0, nm = 0;
    if (*m->fallback) {
        if (!strcmp(m->fallback, m->name))
            return qg_error_set(err, QG_EINVAL, "fallback: '%s' cannot fall back to itself",
                                m->name);
        if ((rc = qg_ai_catalog_load(c, &deps, &nd, &models, &nm, err))) return rc;
        /* walk the chain from the fallback: it must exist and not lead back */
        const char *cur = m->fallback;
        for (int hop = 0; *cur && hop < FALLBACK_MAX_HOPS; hop++) {
            if (!strcmp(cur, m->name)) {
                rc = qg_error_set(err, QG_EINVAL, "fallback: '%s' leads back to '%s' (a cycle)",
                                  m->fallback, m->name);
                goto out;
            }
            size_t i = 0;
            while (i < nm && strcmp(models[i].name, cur)) i++;
            if (i == nm) {
                if (hop == 0)
                    rc = qg_error_set(err, QG_EINVAL, "fallback: no named model '%s'", cur);
                break;
            }
            cur = models[i].fallback;
        }
        if (rc) goto out;
    }
    int64_t now = qg_time_now_ms(), changes = 0;
    qg_val up[] = {QG_VTEXT(m->fallback), QG_VTEXT(m->description), QG_VINT(now),
                   QG_VTEXT(m->name)};
    rc = qg_conn_exec(c,
                      "UPDATE ai_models SET fallback = ?, description = ?, updated_at = ? "
                      "WHERE name = ?",
                      up, 4, &changes, err);
    if (rc) goto out;
    if (created) *created = changes == 0;
    if (changes == 0) {
        qg_val in[] = {QG_VTEXT(m->name), QG_VTEXT(m->fallback), QG_VTEXT(m->description),
                       QG_VINT(now), QG_VINT(now)};
        rc = qg_conn_exec(c,
                          "INSERT INTO ai_models (name, fallback, description, created_at, "
                          "updated_at) VALUES (?, ?, ?, ?, ?)",
                          in, 5, NULL, err);
    }
out:
    free(deps);
    free(models);
    return rc;
}

static qg_status row_count(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_int(row, 0);
    return QG_OK;
}

qg_status qg_ai_catalog_model_delete(qg_conn *c, const char *name, qg_error *err)
{
    int64_t n = 0;
    qg_val p[] = {QG_VTEXT(name)};
    qg_status rc = qg_conn_query(c, "SELECT COUNT(*) FROM ai_deployments WHERE model_name = ?", p,
                                 1, row_count, &n, err);
    if (rc) return rc;
    if (n > 0)
        return qg_error_set(err, QG_EEXIST,
                            "named model '%s' still has %lld deployment%s; delete %s first", name,
                            (long long)n, n == 1 ? "" : "s", n == 1 ? "it" : "them");
    int64_t changes = 0;
    rc = qg_conn_exec(c, "DELETE FROM ai_models WHERE name = ?", p, 1, &changes, err);
    if (!rc && !changes)
        return qg_error_set(err, QG_ENOTFOUND, "named model '%s' is not in the database", name);
    return rc;
}

static qg_status row_one_dep(void *ud, const qg_row *row)
{
    dep_from_row(row, ud);
    return QG_ERANGE;
}

qg_status qg_ai_catalog_dep_get(qg_conn *c, const char *id, qg_ai_deployment *out, qg_error *err)
{
    qg_ai_deployment d;
    qg_val p[] = {QG_VTEXT(id)};
    qg_status rc = qg_conn_query(c, "SELECT " DEP_COLUMNS " FROM ai_deployments WHERE id = ?", p, 1,
                                 row_one_dep, &d, err);
    if (rc == QG_ERANGE) {
        if (out) *out = d;
        return QG_OK;
    }
    if (!rc) return qg_error_set(err, QG_ENOTFOUND, "deployment '%s' is not in the database", id);
    return rc;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f) return false;
    return true;
}

static qg_status dep_validate(qg_conn *c, const qg_ai_deployment *d, qg_error *err)
{
    qg_status rc = qg_ai_catalog_model_get(c, d->model_name, NULL, err);
    if (rc && rc != QG_ENOTFOUND) return rc;
    if (rc)
        return qg_error_set(err, QG_EINVAL,
                            "model_name: no named model '%s' in the database; create it with POST "
                            "/api/ai/models first (it then replaces any environment model of "
                            "that name)",
                            d->model_name);
    if (!qg_ai_provider_default_url(d->provider)[0] && strcmp(d->provider, "builtin"))
        return qg_error_set(err, QG_EINVAL,
                            "provider: '%s' is not one of openai, anthropic, gemini, ollama, "
                            "builtin",
                            d->provider);
    if (!*d->model || !printable(d->model))
        return qg_error_set(err, QG_EINVAL, "model: must be a non-empty provider model id");
    if (*d->base_url && (!printable(d->base_url) || (strncmp(d->base_url, "http://", 7) &&
                                                     strncmp(d->base_url, "https://", 8))))
        return qg_error_set(err, QG_EINVAL, "base_url: must start with http:// or https://");
    if (!qg_ai_key_ref_allowed(d->key_ref))
        return qg_error_set(err, QG_EINVAL,
                            "key_ref: must be empty, env:<NAME>_API_KEY or a vault secret named "
                            "ai.<...>");
    if (*d->api_version && !qg_ai_catalog_name_ok(d->api_version))
        return qg_error_set(err, QG_EINVAL, "api_version: letters, digits, '.', '_', '-' only");
    if (!(d->price_in >= 0 && d->price_in <= 1e6))
        return qg_error_set(err, QG_EINVAL, "price_in: must be between 0 and 1000000");
    if (!(d->price_out >= 0 && d->price_out <= 1e6))
        return qg_error_set(err, QG_EINVAL, "price_out: must be between 0 and 1000000");
    if (d->rpm < 0) return qg_error_set(err, QG_EINVAL, "rpm: must not be negative");
    if (d->tpm < 0) return qg_error_set(err, QG_EINVAL, "tpm: must not be negative");
    if (d->connect_timeout_ms < 1 || d->connect_timeout_ms > 600000)
        return qg_error_set(err, QG_EINVAL, "connect_timeout_ms: must be between 1 and 600000");
    if (d->read_timeout_ms < 1 || d->read_timeout_ms > 3600000)
        return qg_error_set(err, QG_EINVAL, "read_timeout_ms: must be between 1 and 3600000");
    if (d->priority < -1000000 || d->priority > 1000000)
        return qg_error_set(err, QG_EINVAL, "priority: must be between -1000000 and 1000000");
    return QG_OK;
}

qg_status qg_ai_catalog_dep_put(qg_conn *c, qg_ai_deployment *d, bool create, qg_error *err)
{
    qg_status rc = dep_validate(c, d, err);
    if (rc) return rc;
    int64_t now = qg_time_now_ms();
    if (create && !*d->id) qg_store_new_id("dep", d->id, sizeof d->id);
    qg_val p[] = {QG_VTEXT(d->model_name),
                  QG_VTEXT(d->provider),
                  QG_VTEXT(d->model),
                  QG_VTEXT(d->base_url),
                  QG_VTEXT(d->key_ref),
                  QG_VTEXT(d->api_version),
                  QG_VDBL(d->price_in),
                  QG_VDBL(d->price_out),
                  QG_VINT(d->rpm),
                  QG_VINT(d->tpm),
                  QG_VINT(d->connect_timeout_ms),
                  QG_VINT(d->read_timeout_ms),
                  QG_VINT(d->priority),
                  QG_VINT(d->enabled ? 1 : 0),
                  QG_VINT(now),
                  QG_VTEXT(d->id),
                  QG_VINT(now)};
    if (create)
        return qg_conn_exec(c,
                            "INSERT INTO ai_deployments (model_name, provider, model, base_url, "
                            "key_ref, api_version, price_in, price_out, rpm, tpm, "
                            "connect_timeout_ms, read_timeout_ms, priority, enabled, updated_at, "
                            "id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            p, 17, NULL, err);
    int64_t changes = 0;
    rc = qg_conn_exec(c,
                      "UPDATE ai_deployments SET model_name = ?, provider = ?, model = ?, "
                      "base_url = ?, key_ref = ?, api_version = ?, price_in = ?, price_out = ?, "
                      "rpm = ?, tpm = ?, connect_timeout_ms = ?, read_timeout_ms = ?, "
                      "priority = ?, enabled = ?, updated_at = ? WHERE id = ?",
                      p, 16, &changes, err);
    if (!rc && !changes)
        return qg_error_set(err, QG_ENOTFOUND, "deployment '%s' is not in the database", d->id);
    return rc;
}

qg_status qg_ai_catalog_dep_delete(qg_vault *v, qg_conn *c, const char *id, qg_error *err)
{
    int64_t changes = 0;
    qg_val p[] = {QG_VTEXT(id)};
    qg_status rc = qg_conn_exec(c, "DELETE FROM ai_deployments WHERE id = ?", p, 1, &changes, err);
    if (rc) return rc;
    if (!changes)
        return qg_error_set(err, QG_ENOTFOUND, "deployment '%s' is not in the database", id);
    if (v) {
        char name[QG_SECRET_NAME_MAX + 8];
        snprintf(name, sizeof name, "ai.%s", id);
        qg_error e = {0};
        rc = qg_vault_delete(v, c, name, &e);
        if (rc && rc != QG_ENOTFOUND)
            qg_warn("AI catalog: deployment %s deleted but its vault secret was not: %s", id,
                    e.msg);
    }
    return QG_OK;
}
