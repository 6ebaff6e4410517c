/*
 * catalog.h - where deployments and named models come from: the
 * environment, the database, and the always-present `builtin` model.
 *
 * The environment gives one deployment per configured provider, each under
 * the conventional variables (OPENAI_API_KEY, ANTHROPIC_API_KEY,
 * GEMINI_API_KEY, OLLAMA_HOST, ...; docs/ai/catalog-usage.md lists them).
 * Keys never leave the environment: such a deployment's key_ref is
 * "env:OPENAI_API_KEY" and the key is read when a call is made.
 *
 * Named models: `builtin` (deployment "builtin", offline) always exists;
 * `analyst` and `fast` always exist too, served by the environment's
 * providers in the order openai, anthropic, gemini, ollama, and falling back
 * to `builtin`, so with nothing configured they answer offline. QG_AI_MODELS
 * redefines or adds named models:
 *
 *     QG_AI_MODELS = model *( ";" model )
 *     model        = name "=" [ dep *( "," dep ) ] [ ">" fallback ]
 *     dep          = provider [ ":" provider-model ]
 *
 * e.g. "analyst=openai:gpt-4o,anthropic:claude-3-5-sonnet-latest;fast=openai".
 * A provider must be configured in the environment (or be `builtin`); the
 * fallback defaults to `builtin` ("none" for no fallback). Errors name the
 * variable and the bad part.
 *
 * The database (tables ai_models, ai_deployments) holds the admin API's
 * named models and deployments. A named model defined there replaces the
 * environment's model of the same name together with its deployments; its
 * deployments are the database rows with that model_name. Keys set through
 * the admin API live in the vault as secret "ai.<deployment id>".
 *
 * A deployment serving several named models appears once per model; ids are
 * unique in the catalog (the router keys cool-down and rpm/tpm state by id),
 * so the copies after the first get "@<model>": env-openai serves analyst,
 * env-openai@fast serves fast, builtin@offline serves a QG_AI_MODELS model
 * "offline=builtin".
 *
 * Everything here is plain data; functions are thread-safe as long as the
 * environment is not modified concurrently.
 */
#ifndef QG_AI_CATALOG_H
#define QG_AI_CATALOG_H

#include "ai/provider.h"
#include "auth/vault.h"
#include "store/store.h"

#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QG_AI_MAX_DEPLOYMENTS 256
#define QG_AI_MAX_MODELS      64

/* Where an entry came from. */
typedef enum {
    QG_AI_SRC_BUILTIN = 0, /* the builtin model and deployment */
    QG_AI_SRC_ENV,         /* the environment (conventional variables, QG_AI_MODELS) */
    QG_AI_SRC_DB,          /* the admin API */
} qg_ai_source;

/* "builtin", "environment", "database". */
const char *qg_ai_source_name(qg_ai_source s);

/* The environment's catalog only: deployments (*deps, *ndeps) and named
 * models (*models, *nmodels), builtin first. On success the caller frees
 * both arrays with free(); on failure they are NULL. QG_EINVAL names the
 * variable and the bad part (bad QG_AI_MODELS, bad price). */
qg_status qg_ai_catalog_env(qg_ai_deployment **deps, size_t *ndeps, qg_ai_model **models,
                            size_t *nmodels, qg_error *err);

/* The whole catalog: the environment's, then the database's (c may be NULL:
 * environment only), a database model replacing an environment model of the
 * same name. Deployments are grouped by model in model order and sorted by
 * priority inside each. src_deps and src_models (may be NULL) receive
 * arrays of qg_ai_source parallel to the two arrays, also to free(). The
 * caller frees every array with free(); on failure they are NULL. */
qg_status qg_ai_catalog_load_ex(qg_conn *c, qg_ai_deployment **deps, size_t *ndeps,
                                qg_ai_model **models, size_t *nmodels, qg_ai_source **src_deps,
                                qg_ai_source **src_models, qg_error *err);
/* qg_ai_catalog_load_ex without the sources: the lead's facade. */
qg_status qg_ai_catalog_load(qg_conn *c, qg_ai_deployment **deps, size_t *ndeps,
                             qg_ai_model **models, size_t *nmodels, qg_error *err);

/* Resolves d->key_ref into out (cap bytes, NUL-terminated): "" when there is
 * none; "env:NAME" reads the variable NAME (only names ending in "_API_KEY"
 * are honoured); anything else is a vault secret name. QG_ENOTFOUND when the
 * variable or secret is missing, QG_EDENIED for a refused env name, QG_ERANGE
 * when out is too small. err names the deployment and the reference, never
 * the key. v and c may be NULL when the reference needs no vault. */
qg_status qg_ai_catalog_key(qg_vault *v, qg_conn *c, const qg_ai_deployment *d, char *out,
                            size_t cap, qg_error *err);

/* True when key_ref is one the admin API accepts: "", "env:<NAME>_API_KEY"
 * or a vault secret named "ai.<...>". */
bool qg_ai_key_ref_allowed(const char *key_ref);

/* ---- the database's entries (admin API) ---- */

/* A named-model or deployment name: 1-63 of [A-Za-z0-9._-]. */
bool qg_ai_catalog_name_ok(const char *s);

/* Reads one database model; QG_ENOTFOUND when absent. out may be NULL. */
qg_status qg_ai_catalog_model_get(qg_conn *c, const char *name, qg_ai_model *out, qg_error *err);
/* Inserts or replaces m (by name); *created (may be NULL) tells which.
 * QG_EINVAL for a bad name (or "builtin"), a fallback that does not exist or
 * that leads back to m. */
qg_status qg_ai_catalog_model_put(qg_conn *c, const qg_ai_model *m, bool *created, qg_error *err);
/* QG_ENOTFOUND when the database has no such model; QG_EEXIST while
 * deployments still serve it. */
qg_status qg_ai_catalog_model_delete(qg_conn *c, const char *name, qg_error *err);

/* Reads one database deployment; QG_ENOTFOUND when absent. */
qg_status qg_ai_catalog_dep_get(qg_conn *c, const char *id, qg_ai_deployment *out, qg_error *err);
/* Validates d (provider, model, base URL, key_ref, numbers; model_name must
 * be a database model) and inserts it (create; an empty d->id gets a new
 * "dep_<ulid>") or updates the row d->id (QG_ENOTFOUND when absent).
 * QG_EINVAL names the field; QG_EEXIST when create meets an existing id. */
qg_status qg_ai_catalog_dep_put(qg_conn *c, qg_ai_deployment *d, bool create, qg_error *err);
/* Deletes the row and its vault secret (v may be NULL to keep it).
 * QG_ENOTFOUND when absent. */
qg_status qg_ai_catalog_dep_delete(qg_vault *v, qg_conn *c, const char *id, qg_error *err);

#endif
