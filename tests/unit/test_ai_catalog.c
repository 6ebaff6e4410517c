/*
 * test_ai_catalog.c - the AI catalog: deployments and named models from the
 * conventional environment variables, the QG_AI_MODELS grammar and its
 * errors, database models replacing environment ones, the admin entries'
 * validation, and API keys resolved from the environment and the vault
 * without ever being copied into the catalog or an error.
 *
 * Each Criterion test runs in its own process, so setenv/unsetenv here do
 * not leak between tests.
 */
#include <criterion/criterion.h>

#include "ai/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];
static qg_store *store;
static qg_conn *conn;

static const char *const vars[] = {
    "OPENAI_API_KEY",        "OPENAI_BASE_URL",     "QG_OPENAI_MODEL",    "OPENAI_API_VERSION",
    "ANTHROPIC_API_KEY",     "ANTHROPIC_BASE_URL",  "QG_ANTHROPIC_MODEL", "GEMINI_API_KEY",
    "GEMINI_BASE_URL",       "QG_GEMINI_MODEL",     "OLLAMA_HOST",        "QG_OLLAMA_MODEL",
    "QG_OPENAI_PRICE_IN",    "QG_OPENAI_PRICE_OUT", "QG_AI_MODELS",       "QG_MASTER_KEY",
    "QG_ANTHROPIC_PRICE_IN", "QG_OPENAI_RPM",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

static void setup(void)
{
    qg_error err = {0};
    clear_env();
    snprintf(dir, sizeof dir, "/tmp/qg_aicat_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char url[400];
    snprintf(url, sizeof url, "sqlite://%s/t.db", dir);
    cr_assert_eq(qg_store_open(url, 2, true, &store, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_store_acquire(store, &conn, &err), QG_OK, "%s", err.msg);
}

static void teardown(void)
{
    if (conn) qg_store_release(store, conn);
    if (store) qg_store_close(store);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

typedef struct catalog {
    qg_ai_deployment *d;
    size_t nd;
    qg_ai_model *m;
    size_t nm;
    qg_ai_source *sd, *sm;
} catalog;

static void load(catalog *k, qg_conn *c)
{
    qg_error err = {0};
    memset(k, 0, sizeof *k);
    cr_assert_eq(qg_ai_catalog_load_ex(c, &k->d, &k->nd, &k->m, &k->nm, &k->sd, &k->sm, &err),
                 QG_OK, "%s", err.msg);
}

static void unload(catalog *k)
{
    free(k->d);
    free(k->m);
    free(k->sd);
    free(k->sm);
}

static const qg_ai_model *model(const catalog *k, const char *name)
{
    for (size_t i = 0; i < k->nm; i++)
        if (!strcmp(k->m[i].name, name)) return &k->m[i];
    return NULL;
}

/* The deployments of one model, in order, as "id/provider/model" joined by
 * spaces. */
static void deps_of(const catalog *k, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < k->nd; i++) {
        if (strcmp(k->d[i].model_name, name)) continue;
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s/%s/%s", n ? " " : "", k->d[i].id, k->d[i].provider,
                 k->d[i].model);
    }
}

static const qg_ai_deployment *dep(const catalog *k, const char *model_name, const char *id)
{
    for (size_t i = 0; i < k->nd; i++)
        if (!strcmp(k->d[i].model_name, model_name) && !strcmp(k->d[i].id, id)) return &k->d[i];
    return NULL;
}

Test(ai_catalog, nothing_configured_answers_offline, .init = setup, .fini = teardown)
{
    catalog k;
    load(&k, NULL);
    cr_assert_eq(k.nm, 3);
    cr_assert_str_eq(k.m[0].name, "builtin");
    cr_assert_str_eq(k.m[0].fallback, "");
    cr_assert_eq(k.sm[0], QG_AI_SRC_BUILTIN);
    cr_assert_str_eq(model(&k, "analyst")->fallback, "builtin");
    cr_assert_str_eq(model(&k, "fast")->fallback, "builtin");
    cr_assert_eq(k.nd, 1);
    cr_assert_str_eq(k.d[0].id, "builtin");
    cr_assert_str_eq(k.d[0].provider, "builtin");
    cr_assert_str_eq(k.d[0].model_name, "builtin");
    cr_assert(k.d[0].enabled);
    unload(&k);
}

Test(ai_catalog, env_providers_in_order_keys_by_reference, .init = setup, .fini = teardown)
{
    const char *okey = "sk-test-openai-0123456789abcdef";
    const char *gkey = "AIza-test-gemini-0123456789";
    setenv("GEMINI_API_KEY", gkey, 1);
    setenv("OPENAI_API_KEY", okey, 1);
    setenv("QG_OPENAI_PRICE_IN", "0.15", 1);
    setenv("QG_OPENAI_PRICE_OUT", "0.6", 1);
    setenv("QG_OPENAI_RPM", "500", 1);
    setenv("OLLAMA_HOST", "localhost:11434", 1);
    setenv("QG_OLLAMA_MODEL", "qwen2.5:7b", 1);
    catalog k;
    load(&k, NULL);
    char s[1024];
    deps_of(&k, "analyst", s, sizeof s);
    cr_assert_str_eq(s, "env-openai/openai/gpt-4o-mini env-gemini/gemini/gemini-2.0-flash "
                        "env-ollama/ollama/qwen2.5:7b");
    deps_of(&k, "fast", s, sizeof s); /* ids stay unique: the router keys state by id */
    cr_assert_str_eq(s,
                     "env-openai@fast/openai/gpt-4o-mini env-gemini@fast/gemini/gemini-2.0-flash "
                     "env-ollama@fast/ollama/qwen2.5:7b");
    for (size_t i = 0; i < k.nd; i++)
        for (size_t j = 0; j < i; j++) cr_assert_str_neq(k.d[i].id, k.d[j].id);
    const qg_ai_deployment *o = dep(&k, "analyst", "env-openai");
    cr_assert_str_eq(o->key_ref, "env:OPENAI_API_KEY");
    cr_assert_str_eq(o->base_url, "");
    cr_assert_float_eq(o->price_in, 0.15, 1e-12);
    cr_assert_float_eq(o->price_out, 0.6, 1e-12);
    cr_assert_eq(o->rpm, 500);
    cr_assert_eq(o->connect_timeout_ms, 5000);
    cr_assert_eq(o->read_timeout_ms, 60000);
    const qg_ai_deployment *ol = dep(&k, "fast", "env-ollama@fast");
    cr_assert_str_eq(ol->base_url, "http://localhost:11434");
    cr_assert_str_eq(ol->key_ref, "");
    cr_assert_eq(dep(&k, "fast", "env-gemini@fast")->price_in, 0);
    /* the keys themselves are nowhere in the catalog */
    cr_assert_null(memmem(k.d, k.nd * sizeof *k.d, okey, strlen(okey)));
    cr_assert_null(memmem(k.d, k.nd * sizeof *k.d, gkey, strlen(gkey)));
    cr_assert_eq(k.sd[1], QG_AI_SRC_ENV);
    unload(&k);
}

Test(ai_catalog, openai_compatible_local_server_without_key, .init = setup, .fini = teardown)
{
    setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1", 1);
    setenv("QG_OPENAI_MODEL", "qwen", 1);
    catalog k;
    load(&k, NULL);
    const qg_ai_deployment *o = dep(&k, "analyst", "env-openai");
    cr_assert_not_null(o);
    cr_assert_str_eq(o->base_url, "http://127.0.0.1:8000/v1");
    cr_assert_str_eq(o->key_ref, "");
    cr_assert_str_eq(o->model, "qwen");
    unload(&k);
}

Test(ai_catalog, bad_price_names_the_variable, .init = setup, .fini = teardown)
{
    setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789", 1);
    setenv("QG_ANTHROPIC_PRICE_IN", "cheap", 1);
    qg_ai_deployment *d = (void *)1;
    qg_ai_model *m = (void *)1;
    size_t nd = 9, nm = 9;
    qg_error err = {0};
    cr_assert_eq(qg_ai_catalog_env(&d, &nd, &m, &nm, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "QG_ANTHROPIC_PRICE_IN"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "cheap"), "%s", err.msg);
    cr_assert_null(d);
    cr_assert_null(m);
    cr_assert_eq(nd + nm, 0);
}

Test(ai_catalog, models_variable_grammar, .init = setup, .fini = teardown)
{
    setenv("OPENAI_API_KEY", "sk-test-openai-0123456789abcdef", 1);
    setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789", 1);
    setenv("OLLAMA_HOST", "http://10.0.0.5:11434", 1);
    setenv("QG_AI_MODELS",
           " analyst = openai:gpt-4o , anthropic:claude-3-5-sonnet-latest ; fast=openai;"
           "cheap=ollama:llama3.2>fast;offline=builtin>none;alias=>analyst;",
           1);
    catalog k;
    load(&k, NULL);
    char s[1024];
    deps_of(&k, "analyst", s, sizeof s);
    cr_assert_str_eq(s, "env-openai-gpt-4o/openai/gpt-4o "
                        "env-anthropic-claude-3-5-sonnet-latest/anthropic/"
                        "claude-3-5-sonnet-latest");
    cr_assert_eq(dep(&k, "analyst", "env-openai-gpt-4o")->priority, 0);
    cr_assert_eq(dep(&k, "analyst", "env-anthropic-claude-3-5-sonnet-latest")->priority, 1);
    cr_assert_str_eq(dep(&k, "analyst", "env-openai-gpt-4o")->key_ref, "env:OPENAI_API_KEY");
    deps_of(&k, "fast", s, sizeof s);
    cr_assert_str_eq(s, "env-openai/openai/gpt-4o-mini");
    deps_of(&k, "cheap", s, sizeof s);
    cr_assert_str_eq(s, "env-ollama-llama3.2/ollama/llama3.2");
    cr_assert_str_eq(model(&k, "cheap")->fallback, "fast");
    cr_assert_str_eq(model(&k, "analyst")->fallback, "builtin");
    deps_of(&k, "offline", s, sizeof s);
    cr_assert_str_eq(s, "builtin@offline/builtin/builtin");
    cr_assert_str_eq(model(&k, "offline")->fallback, "");
    deps_of(&k, "alias", s, sizeof s);
    cr_assert_str_eq(s, "");
    cr_assert_str_eq(model(&k, "alias")->fallback, "analyst");
    cr_assert_eq(k.nm, 6);
    unload(&k);
}

static void models_error(const char *value, const char *want1, const char *want2)
{
    setenv("QG_AI_MODELS", value, 1);
    qg_ai_deployment *d = NULL;
    qg_ai_model *m = NULL;
    size_t nd = 0, nm = 0;
    qg_error err = {0};
    qg_status rc = qg_ai_catalog_env(&d, &nd, &m, &nm, &err);
    cr_assert_neq(rc, QG_OK, "'%s' was accepted", value);
    cr_assert_not_null(strstr(err.msg, "QG_AI_MODELS"), "'%s': %s", value, err.msg);
    cr_assert_not_null(strstr(err.msg, want1), "'%s': %s", value, err.msg);
    if (want2) cr_assert_not_null(strstr(err.msg, want2), "'%s': %s", value, err.msg);
    cr_assert_null(d);
    cr_assert_null(m);
}

Test(ai_catalog, models_variable_errors, .init = setup, .fini = teardown)
{
    setenv("OPENAI_API_KEY", "sk-test-openai-0123456789abcdef", 1);
    models_error("analyst=mistral:large", "unknown provider 'mistral'", "analyst");
    models_error("analyst=gemini:gemini-pro", "provider gemini is not configured",
                 "GEMINI_API_KEY");
    models_error("analyst openai", "'analyst openai' has no '='", NULL);
    models_error("builtin=openai", "'builtin' is reserved", NULL);
    models_error("a=openai;a=openai:gpt-4o", "model 'a' is defined twice", NULL);
    models_error("a=openai>nowhere", "unknown model 'nowhere'", "'a'");
    models_error("a=", "model 'a' lists no deployments", NULL);
    models_error("a=openai,,builtin", "empty entry", "'a'");
    models_error("a=openai:", "no model after the colon", "'a'");
    models_error("bad name=openai", "model name 'bad name'", NULL);
    models_error("a=openai>a", "falls back to itself", NULL);
}

Test(ai_catalog, database_model_replaces_environment_model, .init = setup, .fini = teardown)
{
    setenv("OPENAI_API_KEY", "sk-test-openai-0123456789abcdef", 1);
    qg_error err = {0};
    qg_ai_model m = {.name = "analyst", .fallback = "fast", .description = "ours"};
    bool created = false;
    cr_assert_eq(qg_ai_catalog_model_put(conn, &m, &created, &err), QG_OK, "%s", err.msg);
    cr_assert(created);
    qg_ai_deployment d = {.model_name = "analyst",
                          .provider = "anthropic",
                          .model = "claude-3-5-sonnet-latest",
                          .key_ref = "ai.pending",
                          .price_in = 3,
                          .price_out = 15,
                          .connect_timeout_ms = 1000,
                          .read_timeout_ms = 2000,
                          .priority = 5,
                          .enabled = true};
    cr_assert_eq(qg_ai_catalog_dep_put(conn, &d, true, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(strncmp(d.id, "dep_", 4), 0, "%s", d.id);
    qg_ai_deployment d2 = d;
    d2.id[0] = '\0';
    d2.priority = 1;
    snprintf(d2.provider, sizeof d2.provider, "openai");
    snprintf(d2.model, sizeof d2.model, "gpt-4o");
    snprintf(d2.key_ref, sizeof d2.key_ref, "env:OPENAI_API_KEY");
    cr_assert_eq(qg_ai_catalog_dep_put(conn, &d2, true, &err), QG_OK, "%s", err.msg);
    qg_ai_deployment dup = d2;
    cr_assert_eq(qg_ai_catalog_dep_put(conn, &dup, true, &err), QG_EEXIST);

    catalog k;
    load(&k, conn);
    char s[1024], want[1024];
    deps_of(&k, "analyst", s, sizeof s);
    snprintf(want, sizeof want, "%s/openai/gpt-4o %s/anthropic/claude-3-5-sonnet-latest", d2.id,
             d.id);
    cr_assert_str_eq(s, want); /* by priority: 1 before 5 */
    const qg_ai_model *am = model(&k, "analyst");
    cr_assert_str_eq(am->fallback, "fast");
    cr_assert_str_eq(am->description, "ours");
    cr_assert_eq(k.sm[am - k.m], QG_AI_SRC_DB);
    deps_of(&k, "fast", s, sizeof s); /* untouched */
    cr_assert_str_eq(s, "env-openai/openai/gpt-4o-mini");
    const qg_ai_deployment *got = dep(&k, "analyst", d.id);
    cr_assert_float_eq(got->price_out, 15, 1e-12);
    cr_assert_eq(got->connect_timeout_ms, 1000);
    cr_assert_eq(k.sd[got - k.d], QG_AI_SRC_DB);
    unload(&k);

    /* update in place */
    d.enabled = false;
    snprintf(d.base_url, sizeof d.base_url, "https://proxy.example/v1");
    cr_assert_eq(qg_ai_catalog_dep_put(conn, &d, false, &err), QG_OK, "%s", err.msg);
    qg_ai_deployment back;
    cr_assert_eq(qg_ai_catalog_dep_get(conn, d.id, &back, &err), QG_OK, "%s", err.msg);
    cr_assert(!back.enabled);
    cr_assert_str_eq(back.base_url, "https://proxy.example/v1");

    /* a model with deployments cannot go; once they are gone, the
     * environment's analyst comes back */
    cr_assert_eq(qg_ai_catalog_model_delete(conn, "analyst", &err), QG_EEXIST);
    cr_assert_not_null(strstr(err.msg, "2 deployments"), "%s", err.msg);
    cr_assert_eq(qg_ai_catalog_dep_delete(NULL, conn, d.id, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_ai_catalog_dep_delete(NULL, conn, d2.id, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_ai_catalog_dep_delete(NULL, conn, d2.id, &err), QG_ENOTFOUND);
    cr_assert_eq(qg_ai_catalog_model_delete(conn, "analyst", &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_ai_catalog_model_delete(conn, "analyst", &err), QG_ENOTFOUND);
    load(&k, conn);
    deps_of(&k, "analyst", s, sizeof s);
    cr_assert_str_eq(s, "env-openai/openai/gpt-4o-mini");
    cr_assert_eq(k.sm[model(&k, "analyst") - k.m], QG_AI_SRC_ENV);
    unload(&k);
}

Test(ai_catalog, model_put_validation, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    qg_ai_model m = {.name = "builtin"};
    cr_assert_eq(qg_ai_catalog_model_put(conn, &m, NULL, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "reserved"), "%s", err.msg);
    qg_ai_model bad = {.name = "a/b"};
    cr_assert_eq(qg_ai_catalog_model_put(conn, &bad, NULL, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "name"), "%s", err.msg);
    qg_ai_model a = {.name = "a", .fallback = "nowhere"};
    cr_assert_eq(qg_ai_catalog_model_put(conn, &a, NULL, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "fallback: no named model 'nowhere'"), "%s", err.msg);
    snprintf(a.fallback, sizeof a.fallback, "analyst");
    cr_assert_eq(qg_ai_catalog_model_put(conn, &a, NULL, &err), QG_OK, "%s", err.msg);
    qg_ai_model b = {.name = "b", .fallback = "a"};
    cr_assert_eq(qg_ai_catalog_model_put(conn, &b, NULL, &err), QG_OK, "%s", err.msg);
    /* a -> b -> a would loop */
    snprintf(a.fallback, sizeof a.fallback, "b");
    bool created = true;
    cr_assert_eq(qg_ai_catalog_model_put(conn, &a, &created, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "cycle"), "%s", err.msg);
    snprintf(a.fallback, sizeof a.fallback, "fast");
    snprintf(a.description, sizeof a.description, "second");
    cr_assert_eq(qg_ai_catalog_model_put(conn, &a, &created, &err), QG_OK, "%s", err.msg);
    cr_assert(!created);
    qg_ai_model got;
    cr_assert_eq(qg_ai_catalog_model_get(conn, "a", &got, &err), QG_OK);
    cr_assert_str_eq(got.fallback, "fast");
    cr_assert_str_eq(got.description, "second");
    cr_assert_eq(qg_ai_catalog_model_get(conn, "zzz", NULL, &err), QG_ENOTFOUND);
}

static void dep_error(qg_ai_deployment d, const char *want)
{
    qg_error err = {0};
    cr_assert_eq(qg_ai_catalog_dep_put(conn, &d, true, &err), QG_EINVAL, "accepted, want %s", want);
    cr_assert_not_null(strstr(err.msg, want), "%s", err.msg);
}

Test(ai_catalog, deployment_validation, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    qg_ai_model m = {.name = "mine", .fallback = "builtin"};
    cr_assert_eq(qg_ai_catalog_model_put(conn, &m, NULL, &err), QG_OK, "%s", err.msg);
    qg_ai_deployment ok = {.model_name = "mine",
                           .provider = "openai",
                           .model = "gpt-4o",
                           .connect_timeout_ms = 5000,
                           .read_timeout_ms = 60000,
                           .enabled = true};
    qg_ai_deployment d = ok;
    snprintf(d.model_name, sizeof d.model_name, "analyst"); /* an environment model */
    dep_error(d, "model_name: no named model 'analyst' in the database");
    d = ok;
    snprintf(d.provider, sizeof d.provider, "mistral");
    dep_error(d, "provider: 'mistral'");
    d = ok;
    snprintf(d.base_url, sizeof d.base_url, "ftp://x");
    dep_error(d, "base_url");
    d = ok;
    snprintf(d.key_ref, sizeof d.key_ref, "env:HOME");
    dep_error(d, "key_ref");
    d = ok;
    snprintf(d.key_ref, sizeof d.key_ref, "jwt.signing");
    dep_error(d, "key_ref");
    d = ok;
    d.price_in = -1;
    dep_error(d, "price_in");
    d = ok;
    d.read_timeout_ms = 0;
    dep_error(d, "read_timeout_ms");
    d = ok;
    d.model[0] = '\0';
    dep_error(d, "model:");
    d = ok;
    snprintf(d.id, sizeof d.id, "dep_missing");
    cr_assert_eq(qg_ai_catalog_dep_put(conn, &d, false, &err), QG_ENOTFOUND);
    d = ok;
    cr_assert_eq(qg_ai_catalog_dep_put(conn, &d, true, &err), QG_OK, "%s", err.msg);
    cr_assert(qg_ai_key_ref_allowed("env:ANTHROPIC_API_KEY"));
    cr_assert(qg_ai_key_ref_allowed("ai.dep_01ABC"));
    cr_assert(qg_ai_key_ref_allowed(""));
    cr_assert(!qg_ai_key_ref_allowed("env:_API_KEY"));
    cr_assert(!qg_ai_key_ref_allowed("env:path_API_KEY"));
}

Test(ai_catalog, keys_from_environment_and_vault, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    char key[256];
    const char *okey = "sk-test-openai-0123456789abcdef";
    setenv("OPENAI_API_KEY", okey, 1);
    qg_ai_deployment d = {.id = "env-openai", .key_ref = "env:OPENAI_API_KEY"};
    cr_assert_eq(qg_ai_catalog_key(NULL, NULL, &d, key, sizeof key, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(key, okey);
    cr_assert_eq(qg_ai_catalog_key(NULL, NULL, &d, key, 8, &err), QG_ERANGE);
    cr_assert_null(strstr(err.msg, "sk-test"), "%s", err.msg);

    qg_ai_deployment none = {.id = "env-ollama"};
    strcpy(key, "junk");
    cr_assert_eq(qg_ai_catalog_key(NULL, NULL, &none, key, sizeof key, &err), QG_OK);
    cr_assert_str_eq(key, "");

    qg_ai_deployment unset = {.id = "x", .key_ref = "env:GEMINI_API_KEY"};
    cr_assert_eq(qg_ai_catalog_key(NULL, NULL, &unset, key, sizeof key, &err), QG_ENOTFOUND);
    cr_assert_not_null(strstr(err.msg, "GEMINI_API_KEY is not set"), "%s", err.msg);
    qg_ai_deployment home = {.id = "x", .key_ref = "env:HOME"};
    cr_assert_eq(qg_ai_catalog_key(NULL, NULL, &home, key, sizeof key, &err), QG_EDENIED);
    cr_assert_str_eq(key, "");

    /* the vault (master key in <dir>/master.key) */
    qg_vault *v = NULL;
    cr_assert_eq(qg_vault_open(conn, dir, &v, &err), QG_OK, "%s", err.msg);
    const char *vkey = "sk-vault-secret-abcdef0123456789";
    cr_assert_eq(qg_vault_put(v, conn, "ai.dep_1", vkey, &err), QG_OK, "%s", err.msg);
    qg_ai_deployment vd = {.id = "dep_1", .key_ref = "ai.dep_1"};
    cr_assert_eq(qg_ai_catalog_key(v, conn, &vd, key, sizeof key, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(key, vkey);
    cr_assert_eq(qg_ai_catalog_key(NULL, NULL, &vd, key, sizeof key, &err), QG_EINVAL);
    cr_assert_eq(qg_ai_catalog_key(v, conn, &vd, key, 10, &err), QG_ERANGE);
    cr_assert_null(strstr(err.msg, "sk-vault"), "%s", err.msg);
    qg_ai_deployment gone = {.id = "dep_2", .key_ref = "ai.dep_2"};
    cr_assert_eq(qg_ai_catalog_key(v, conn, &gone, key, sizeof key, &err), QG_ENOTFOUND);
    cr_assert_not_null(strstr(err.msg, "dep_2"), "%s", err.msg);

    /* deleting a deployment deletes its vault secret */
    qg_ai_model m = {.name = "mine"};
    cr_assert_eq(qg_ai_catalog_model_put(conn, &m, NULL, &err), QG_OK, "%s", err.msg);
    qg_ai_deployment nd = {.model_name = "mine",
                           .provider = "openai",
                           .model = "gpt-4o",
                           .connect_timeout_ms = 5000,
                           .read_timeout_ms = 60000};
    cr_assert_eq(qg_ai_catalog_dep_put(conn, &nd, true, &err), QG_OK, "%s", err.msg);
    char name[80];
    snprintf(name, sizeof name, "ai.%s", nd.id);
    cr_assert_eq(qg_vault_put(v, conn, name, vkey, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_ai_catalog_dep_delete(v, conn, nd.id, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_vault_get(v, conn, name, key, sizeof key, &err), QG_ENOTFOUND);
    qg_vault_free(v);
}
