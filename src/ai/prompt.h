/*
 * prompt.h - versioned prompt templates kept in the database
 * (prompt_templates, prompt_versions) and rendered with parameters.
 *
 * A template (id such as "signal.analyze"; kind task or partial) has a
 * history of versions; each edit appends version max+1 and makes it active,
 * rollback only moves the active pointer, so history is never rewritten.
 * A version holds a system text, a body (the user message) and its declared
 * parameters, a JSON array of
 *   {"name":"signal","required":true,"default":...,"trusted":false,"description":"..."}.
 *
 * Template syntax (docs/ai/prompts.md):
 *   {{name}}         the value of a declared parameter
 *   {{> partial_id}} the active version's body of a partial (recursively, depth
 *                    at most QG_PROMPT_MAX_DEPTH, a cycle is an error naming
 *                    the chain)
 *   {{{{             a literal "{{" (nothing else needs escaping)
 * Rendering is a single pass: text that comes from a value is never scanned
 * for tags. Every value not declared "trusted" is user-supplied text and is
 * inserted fenced, <data name="NAME">...</data>, with <, > and & escaped, so
 * it can neither close the fence nor pass itself off as instructions.
 * Versions are validated when saved: an undeclared {{x}} or an unknown
 * partial is rejected with the field and line.
 *
 * Memory: everything returned lives in the caller's arena. Functions take a
 * qg_conn the caller has acquired and does not share with another thread.
 */
#ifndef QG_AI_PROMPT_H
#define QG_AI_PROMPT_H

#include "store/store.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QG_PROMPT_ID_MAX    64      /* template id length */
#define QG_PROMPT_PARAM_MAX 64      /* parameter name length */
#define QG_PROMPT_NPARAMS   64      /* declared parameters per version */
#define QG_PROMPT_TEXT_MAX  65536   /* system or body text of one version */
#define QG_PROMPT_NOTE_MAX  1024    /* version note and template description */
#define QG_PROMPT_OUT_MAX   1048576 /* one rendered part (system or user) */
#define QG_PROMPT_MAX_DEPTH 8       /* nesting of partials */
#define QG_PROMPT_FILE_MAX  262144  /* one *.prompt file */

typedef enum { QG_PROMPT_TASK = 0, QG_PROMPT_PARTIAL = 1 } qg_prompt_kind;

/* "task" / "partial"; parse returns -1 when unknown. */
const char *qg_prompt_kind_name(qg_prompt_kind k);
int qg_prompt_kind_parse(const char *s);

/* True for 1..QG_PROMPT_ID_MAX characters of [a-z0-9._-]. */
bool qg_prompt_id_valid(const char *id);

/* Per-version performance from ai_calls (template_id, template_version). */
typedef struct qg_prompt_stats {
    int64_t calls;
    int64_t failures; /* outcome != 'ok' */
    double avg_input_tokens;
    double avg_output_tokens;
    double avg_latency_ms;
} qg_prompt_stats;

typedef struct qg_prompt_template {
    const char *id;
    qg_prompt_kind kind;
    const char *description;
    int active_version;
    int latest_version;
    int64_t created_at; /* ms */
    int64_t updated_at; /* ms: last edit or rollback */
} qg_prompt_template;

typedef struct qg_prompt_version {
    const char *template_id;
    int version;
    const char *system;      /* "" when none */
    const char *body;        /* the user message */
    const char *params_json; /* normalised JSON array of declarations */
    const char *note;
    const char *author_id; /* NULL: loaded from a file */
    int64_t created_at;    /* ms */
    qg_prompt_stats stats;
} qg_prompt_version;

/* ---- reading ---- */

/* Every template, ordered by id, into an arena array. */
qg_status qg_prompt_list(qg_conn *c, qg_arena *a, qg_prompt_template **out, size_t *n,
                         qg_error *err);
/* One template; QG_ENOTFOUND when there is none. */
qg_status qg_prompt_get(qg_conn *c, const char *id, qg_arena *a, qg_prompt_template *out,
                        qg_error *err);
/* All versions of a template, newest first, with their stats; QG_ENOTFOUND
 * for an unknown template. */
qg_status qg_prompt_versions(qg_conn *c, const char *id, qg_arena *a, qg_prompt_version **out,
                             size_t *n, qg_error *err);
/* One version (0: the active one) with its stats; QG_ENOTFOUND naming the
 * template or version. */
qg_status qg_prompt_version_get(qg_conn *c, const char *id, int version, qg_arena *a,
                                qg_prompt_version *out, qg_error *err);

/* ---- editing ---- */

typedef struct qg_prompt_edit {
    const char *id;
    const char *kind;        /* "task"/"partial"; NULL: keep (new template: task) */
    const char *description; /* NULL: keep (new template: "") */
    const char *system;      /* NULL: "" */
    const char *body;        /* required, not empty */
    const char *params_json; /* JSON array of declarations; NULL: "[]" */
    const char *note;        /* NULL: "" */
    const char *author_id;   /* NULL: none (files) */
} qg_prompt_edit;

/* Validates and stores a new version (max+1) and makes it active, creating
 * the template when it does not exist. *version (may be NULL) gets the new
 * version number, *created (may be NULL) whether the template is new.
 * QG_EINVAL names the field ("params[1].name: ...", "body: line 4: ...");
 * the kind of an existing template cannot change. */
qg_status qg_prompt_save(qg_conn *c, const qg_prompt_edit *e, int *version, bool *created,
                         qg_error *err);
/* Makes an existing version active again. QG_ENOTFOUND for an unknown
 * template or version. */
qg_status qg_prompt_rollback(qg_conn *c, const char *id, int version, qg_error *err);

/* ---- rendering ---- */

typedef struct qg_prompt_rendered {
    const char *system;
    const char *user;
    int version;
    const char *template_id;
} qg_prompt_rendered;

/* Renders a template (version 0: the active one) with params_json, a JSON
 * object (NULL or "" is {}): strings as they are, other values as JSON, null
 * as absent; keys nobody declared are ignored. QG_ENOTFOUND for an unknown
 * template/version/partial, QG_EINVAL for a missing required parameter
 * (`template signal.analyze: missing required parameter "signal"`), bad
 * params JSON, a cycle or too deep nesting of partials. The texts live in a. */
qg_status qg_prompt_render(qg_conn *c, const char *template_id, int version,
                           const char *params_json, qg_arena *a, qg_prompt_rendered *out,
                           qg_error *err);

/* A cache of templates' active versions for repeated renders (one per
 * store: the AI layer keeps one). An entry is used only until the next
 * qg_prompt_save or qg_prompt_rollback of this process, so changes made
 * through them are seen at once; rows edited by hand behind them are not
 * (stored versions are append-only). Thread-safe. */
typedef struct qg_prompt_cache qg_prompt_cache;
qg_prompt_cache *qg_prompt_cache_new(void);
void qg_prompt_cache_free(qg_prompt_cache *pc);
struct cJSON;
/* qg_prompt_render through pc (NULL: no cache). params, when not NULL,
 * is params_json already parsed (borrowed) and is read instead of it. */
qg_status qg_prompt_render_cached(qg_prompt_cache *pc, qg_conn *c, const char *template_id,
                                  int version, const char *params_json, const struct cJSON *params,
                                  qg_arena *a, qg_prompt_rendered *out, qg_error *err);

/* ---- default templates (prompts/ *.prompt) ---- */

/* Parses one *.prompt file (name is used in messages). The strings of *out
 * live in a; params_json is the normalised declaration array. */
qg_status qg_prompt_parse_file(const char *text, size_t len, const char *name, qg_arena *a,
                               qg_prompt_edit *out, qg_error *err);

/* Loads every *.prompt file of dir whose template id is not yet in the
 * database, as version 1 (first start; edits are never overwritten).
 * Partials go in before the templates that include them. A bad file does not
 * stop the others: they are loaded and the first error is returned, naming
 * the file. A missing dir is QG_ENOTFOUND (other directory errors QG_EIO).
 * *loaded (may be NULL) counts the templates added. */
qg_status qg_prompt_seed_defaults(qg_conn *c, const char *dir, int *loaded, qg_error *err);

#endif
