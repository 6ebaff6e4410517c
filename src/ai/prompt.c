/*
 * prompt.c - versioned prompt templates: storage, validation, rendering and
 * the default templates shipped as prompts/ *.prompt files.
 *
 * Invariants:
 * - prompt_versions is append-only: a save inserts max+1 and points
 *   prompt_templates.active_version at it; rollback only moves that pointer.
 * - A stored version always passed validate_version: its params_json is the
 *   normalised declaration array, every {{name}} in it is declared and every
 *   {{> partial}} existed as a partial when it was saved.
 * - Rendering is one pass over the template text. Values are appended to the
 *   output and never scanned again, so a value holding "{{x}}" stays text.
 *   Untrusted values go inside <data name="..."> fences with <, > and &
 *   escaped, so the only "</data>" in a rendered prompt is ours.
 */
#include "ai/prompt.h"

#include <quantgate/file.h>
#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

const char *qg_prompt_kind_name(qg_prompt_kind k)
{
    return k == QG_PROMPT_PARTIAL ? "partial" : "task";
}

int qg_prompt_kind_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "task") == 0) return QG_PROMPT_TASK;
    if (strcmp(s, "partial") == 0) return QG_PROMPT_PARTIAL;
    return -1;
}

static bool id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
           ch == '-';
}

static bool id_valid_n(const char *s, size_t n)
{
    if (n == 0 || n > QG_PROMPT_ID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!id_char(s[i])) return false;
    return true;
}

bool qg_prompt_id_valid(const char *id)
{
    return id && id_valid_n(id, strlen(id));
}

/* Parameter names are identifiers: [A-Za-z_][A-Za-z0-9_]*. */
static bool param_name_valid_n(const char *s, size_t n)
{
    if (n == 0 || n > QG_PROMPT_PARAM_MAX) return false;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return false;
    return true;
}

/* ---- parameter declarations ---- */

typedef struct decl {
    const char *name;
    bool required;
    bool trusted;
    const char *def; /* rendered default (strings as is, else JSON), NULL: none */
} decl;

typedef struct decls {
    decl *v;
    size_t n;
} decls;

static const decl *decl_find(const decls *d, const char *name, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (strlen(d->v[i].name) == n && memcmp(d->v[i].name, name, n) == 0) return &d->v[i];
    return NULL;
}

/* A JSON value as prompt text: strings as they are, the rest as JSON. */
static const char *value_text(const cJSON *v, qg_arena *a)
{
    if (cJSON_IsString(v)) return qg_arena_strndup(a, v->valuestring, strlen(v->valuestring));
    char *s = qg_json_compact(v);
    if (!s) return NULL;
    char *out = qg_arena_strndup(a, s, strlen(s));
    cJSON_free(s);
    return out;
}

static bool key_known(const char *k)
{
    static const char *const keys[] = {"name", "required", "default", "trusted", "description"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(k, keys[i]) == 0) return true;
    return false;
}

/* Checks one declaration object (index i) and appends its parsed form to
 * d->v[d->n] and, unless norm is NULL, its normalised form to norm. */
static qg_status decl_one(const cJSON *o, int i, decls *d, cJSON *norm, qg_arena *a, qg_error *err)
{
    if (!cJSON_IsObject(o))
        return qg_error_set(err, QG_EINVAL,
                            "params[%d]: expected an object {name, required, "
                            "default, trusted, description}",
                            i);
    for (const cJSON *k = o->child; k; k = k->next)
        if (!key_known(k->string))
            return qg_error_set(err, QG_EINVAL,
                                "params[%d]: unknown key \"%.64s\" (expected name, required, "
                                "default, trusted, description)",
                                i, k->string);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!cJSON_IsString(name) || !param_name_valid_n(name->valuestring, strlen(name->valuestring)))
        return qg_error_set(err, QG_EINVAL,
                            "params[%d].name: expected 1-%d characters of letters, digits and "
                            "'_', not starting with a digit",
                            i, QG_PROMPT_PARAM_MAX);
    if (decl_find(d, name->valuestring, strlen(name->valuestring)))
        return qg_error_set(err, QG_EINVAL, "params[%d].name: \"%s\" is declared twice", i,
                            name->valuestring);
    decl x = {.name = qg_arena_strndup(a, name->valuestring, strlen(name->valuestring))};
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(o, "required");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "trusted");
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(o, "default");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(o, "description");
    if (req && !cJSON_IsBool(req))
        return qg_error_set(err, QG_EINVAL, "params[%d].required: expected true or false", i);
    if (tr && !cJSON_IsBool(tr))
        return qg_error_set(err, QG_EINVAL, "params[%d].trusted: expected true or false", i);
    if (desc && !cJSON_IsString(desc))
        return qg_error_set(err, QG_EINVAL, "params[%d].description: expected a string", i);
    if (desc && strlen(desc->valuestring) > QG_PROMPT_NOTE_MAX)
        return qg_error_set(err, QG_EINVAL, "params[%d].description: longer than %d bytes", i,
                            QG_PROMPT_NOTE_MAX);
    x.required = cJSON_IsTrue(req);
    x.trusted = cJSON_IsTrue(tr);
    if (def && cJSON_IsNull(def)) def = NULL;
    if (def && x.required)
        return qg_error_set(err, QG_EINVAL,
                            "params[%d].default: \"%s\" is required, so a default would never "
                            "be used",
                            i, x.name);
    if (def && !(x.def = value_text(def, a))) return qg_error_set(err, QG_ENOMEM, "out of memory");
    if (!x.name) return qg_error_set(err, QG_ENOMEM, "out of memory");

    d->v[d->n++] = x;
    if (!norm) return QG_OK; /* a render: only the parsed form */
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "name", x.name);
    cJSON_AddBoolToObject(n, "required", x.required);
    cJSON_AddBoolToObject(n, "trusted", x.trusted);
    if (def) cJSON_AddItemToObject(n, "default", cJSON_Duplicate(def, true));
    cJSON_AddStringToObject(n, "description", desc ? desc->valuestring : "");
    cJSON_AddItemToArray(norm, n);
    return QG_OK;
}

/* Parses a declaration array (NULL or "" is []). *normalised (may be NULL)
 * gets the canonical JSON text in a. */
static qg_status decls_parse(const char *json, qg_arena *a, decls *d, const char **normalised,
                             qg_error *err)
{
    d->v = NULL;
    d->n = 0;
    if (!json || !*json) json = "[]";
    qg_status rc = QG_OK;
    cJSON *norm = NULL;
    cJSON *arr = cJSON_Parse(json);
    if (!cJSON_IsArray(arr)) {
        rc = qg_error_set(err, QG_EINVAL, "params: expected a JSON array of declarations");
        goto out;
    }
    int n = cJSON_GetArraySize(arr);
    if (n > QG_PROMPT_NPARAMS) {
        rc = qg_error_set(err, QG_EINVAL, "params: %d declarations, at most %d", n,
                          QG_PROMPT_NPARAMS);
        goto out;
    }
    d->v = qg_arena_alloc(a, sizeof(decl) * (size_t)(n ? n : 1));
    if (normalised) norm = cJSON_CreateArray();
    if (!d->v || (normalised && !norm)) {
        rc = qg_error_set(err, QG_ENOMEM, "out of memory");
        goto out;
    }
    int i = 0;
    for (const cJSON *o = arr->child; o; o = o->next, i++)
        if ((rc = decl_one(o, i, d, norm, a, err))) goto out;
    if (normalised) {
        char *s = qg_json_compact(norm);
        *normalised = s ? qg_arena_strndup(a, s, strlen(s)) : NULL;
        cJSON_free(s);
        if (!*normalised) rc = qg_error_set(err, QG_ENOMEM, "out of memory");
    }
out:
    cJSON_Delete(arr);
    cJSON_Delete(norm);
    return rc;
}

/* ---- the template scanner ---- */

typedef enum { TOK_END, TOK_TEXT, TOK_PARAM, TOK_PARTIAL } tok_kind;

typedef struct tok {
    tok_kind kind;
    const char *s; /* text, parameter name or partial id (not NUL-terminated) */
    size_t n;
    int line;
} tok;

typedef struct scanner {
    const char *p;
    int line;
} scanner;

/* The longest tag we look for the closing braces in. */
#define TAG_MAX 160

static qg_status scan_next(scanner *sc, tok *t, qg_error *err)
{
    const char *p = sc->p;
    t->line = sc->line;
    if (!*p) {
        t->kind = TOK_END;
        return QG_OK;
    }
    if (p[0] == '{' && p[1] == '{') {
        if (p[2] == '{' && p[3] == '{') { /* "{{{{" is a literal "{{" */
            *t = (tok){TOK_TEXT, p, 2, sc->line};
            sc->p = p + 4;
            return QG_OK;
        }
        const char *q = p + 2;
        while (*q && *q != '\n' && q - p < TAG_MAX && !(q[0] == '}' && q[1] == '}')) q++;
        if (!(q[0] == '}' && q[1] == '}'))
            return qg_error_set(err, QG_EINVAL,
                                "line %d: \"{{\" without a closing \"}}\" on the same line "
                                "(write \"{{{{\" for a literal \"{{\")",
                                sc->line);
        const char *b = p + 2, *e = q;
        while (b < e && (*b == ' ' || *b == '\t')) b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
        sc->p = q + 2;
        if (b < e && *b == '>') {
            b++;
            while (b < e && (*b == ' ' || *b == '\t')) b++;
            if (!id_valid_n(b, (size_t)(e - b)))
                return qg_error_set(err, QG_EINVAL,
                                    "line %d: \"{{> %.*s}}\": a partial id is 1-%d characters of "
                                    "a-z, 0-9, '.', '_' and '-'",
                                    sc->line, (int)(e - b), b, QG_PROMPT_ID_MAX);
            *t = (tok){TOK_PARTIAL, b, (size_t)(e - b), sc->line};
            return QG_OK;
        }
        if (!param_name_valid_n(b, (size_t)(e - b)))
            return qg_error_set(err, QG_EINVAL,
                                "line %d: \"{{%.*s}}\" is neither a parameter name nor a "
                                "partial include (write \"{{{{\" for a literal \"{{\")",
                                sc->line, (int)(q - p - 2), p + 2);
        *t = (tok){TOK_PARAM, b, (size_t)(e - b), sc->line};
        return QG_OK;
    }
    /* Text up to the next "{{": strchr and memchr run a word at a time
     * where a byte loop was a third of rendering a prompt. */
    const char *q = p;
    while ((q = strchr(q, '{')) && q[1] != '{') q++;
    if (!q) q = p + strlen(p);
    for (const char *nl = p; (nl = memchr(nl, '\n', (size_t)(q - nl))); nl++) sc->line++;
    *t = (tok){TOK_TEXT, p, (size_t)(q - p), t->line};
    sc->p = q;
    return QG_OK;
}

/* ---- database helpers ---- */

/* A template's kind and active version; QG_ENOTFOUND when missing. */
typedef struct tmpl_head {
    bool found;
    qg_prompt_kind kind;
    int active;
} tmpl_head;

static qg_status head_row(void *ud, const qg_row *row)
{
    tmpl_head *h = ud;
    h->found = true;
    h->kind = qg_prompt_kind_parse(qg_row_text(row, 0)) == QG_PROMPT_PARTIAL ? QG_PROMPT_PARTIAL
                                                                             : QG_PROMPT_TASK;
    h->active = (int)qg_row_int(row, 1);
    return QG_OK;
}

static qg_status load_head(qg_conn *c, const char *id, tmpl_head *h, qg_error *err)
{
    *h = (tmpl_head){0};
    qg_val p[] = {QG_VTEXT(id)};
    return qg_conn_query(c, "SELECT kind, active_version FROM prompt_templates WHERE id = ?", p, 1,
                         head_row, h, err);
}

/* The texts of one version, for rendering. */
typedef struct vtext {
    qg_arena *a;
    bool found;
    const char *system, *body, *params;
} vtext;

static qg_status vtext_row(void *ud, const qg_row *row)
{
    vtext *v = ud;
    const char *s[3];
    for (int i = 0; i < 3; i++) {
        const char *x = qg_row_text(row, i);
        s[i] = qg_arena_strndup(v->a, x ? x : "", x ? strlen(x) : 0);
        if (!s[i]) return QG_ENOMEM;
    }
    v->system = s[0];
    v->body = s[1];
    v->params = s[2];
    v->found = true;
    return QG_OK;
}

static qg_status load_vtext(qg_conn *c, const char *id, int version, qg_arena *a, vtext *out,
                            qg_error *err)
{
    *out = (vtext){.a = a};
    qg_val p[] = {QG_VTEXT(id), QG_VINT(version)};
    return qg_conn_query(c,
                         "SELECT system, body, params FROM prompt_versions "
                         "WHERE template_id = ? AND version = ?",
                         p, 2, vtext_row, out, err);
}

/* ---- the render cache ----
 * Rendering a template costs a head and a version lookup for it and for
 * every partial it includes. Stored versions never change (append-only)
 * and the active pointer moves only through save and rollback here, which
 * bump prompt_gen: a cache entry (a template's kind, active version and
 * that version's texts) is used only while the generation it was read at
 * is still current, so a save or rollback is seen by the next render. */

static atomic_uint_fast64_t prompt_gen = 1;

#define QG_PROMPT_CACHE_MAX 64

typedef struct pc_entry {
    char id[QG_PROMPT_ID_MAX + 1];
    uint64_t gen;
    tmpl_head h;
    bool has_text; /* the active version's texts below */
    char *system, *body, *params;
    /* The active version's system text rendered, when it uses no
     * parameter (partials only, as most do): the same for every render
     * at this generation. NULL until a render stores it. */
    char *system_out;
} pc_entry;

struct qg_prompt_cache {
    pthread_mutex_t mu;
    pc_entry e[QG_PROMPT_CACHE_MAX];
    int n;
};

qg_prompt_cache *qg_prompt_cache_new(void)
{
    qg_prompt_cache *pc = qg_xcalloc(1, sizeof *pc);
    pthread_mutex_init(&pc->mu, NULL);
    return pc;
}

static void pc_entry_clear(pc_entry *e)
{
    free(e->system);
    free(e->body);
    free(e->params);
    free(e->system_out);
    memset(e, 0, sizeof *e);
}

void qg_prompt_cache_free(qg_prompt_cache *pc)
{
    if (!pc) return;
    for (int i = 0; i < pc->n; i++) pc_entry_clear(&pc->e[i]);
    pthread_mutex_destroy(&pc->mu);
    free(pc);
}

static pc_entry *pc_find_locked(qg_prompt_cache *pc, const char *id)
{
    for (int i = 0; i < pc->n; i++)
        if (!strcmp(pc->e[i].id, id)) return &pc->e[i];
    return NULL;
}

/* The head of id and, for the active version, its texts (in a): from the
 * cache when current, else from the database (then cached). */
static qg_status cached_load(qg_prompt_cache *pc, qg_conn *c, const char *id, qg_arena *a,
                             tmpl_head *h, vtext *v, qg_error *err)
{
    *v = (vtext){.a = a};
    uint64_t gen = atomic_load(&prompt_gen);
    if (pc && strlen(id) <= QG_PROMPT_ID_MAX) {
        pthread_mutex_lock(&pc->mu);
        pc_entry *e = pc_find_locked(pc, id);
        bool hit = e && e->gen == gen && (e->has_text || !e->h.found);
        if (hit) {
            *h = e->h;
            if (e->has_text) {
                v->system = qg_arena_strndup(a, e->system, strlen(e->system));
                v->body = qg_arena_strndup(a, e->body, strlen(e->body));
                v->params = qg_arena_strndup(a, e->params, strlen(e->params));
                v->found = v->system && v->body && v->params;
            }
        }
        pthread_mutex_unlock(&pc->mu);
        if (hit)
            return v->found || !h->found ? QG_OK : qg_error_set(err, QG_ENOMEM, "out of memory");
    }
    qg_status rc = load_head(c, id, h, err);
    if (rc || !h->found) goto put;
    if ((rc = load_vtext(c, id, h->active, a, v, err))) return rc;
put:
    if (rc || !pc || strlen(id) > QG_PROMPT_ID_MAX || (h->found && !v->found)) return rc;
    pthread_mutex_lock(&pc->mu);
    pc_entry *e = pc_find_locked(pc, id);
    if (!e) {
        if (pc->n == QG_PROMPT_CACHE_MAX) { /* full: start over */
            for (int i = 0; i < pc->n; i++) pc_entry_clear(&pc->e[i]);
            pc->n = 0;
        }
        e = &pc->e[pc->n++];
    }
    pc_entry_clear(e);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->gen = gen; /* read before the lookups: a save meanwhile makes it stale */
    e->h = *h;
    if (v->found) {
        e->system = qg_xstrdup(v->system);
        e->body = qg_xstrdup(v->body);
        e->params = qg_xstrdup(v->params);
        e->has_text = true;
    }
    pthread_mutex_unlock(&pc->mu);
    return QG_OK;
}

/* ---- rendering ---- */

#define QG_STR_(x) #x
#define QG_STR(x)  QG_STR_(x)

typedef struct render_ctx {
    qg_conn *c;
    qg_prompt_cache *pc; /* may be NULL */
    qg_arena *a;
    const char *root;  /* the template asked for, for messages */
    const cJSON *vals; /* the parameter object; NULL: dry run (only partials) */
    bool used_param;   /* a parameter tag was rendered */
    /* chain[0] is the root, chain[1..depth-1] the partials being expanded */
    const char *chain[QG_PROMPT_MAX_DEPTH + 2];
    int depth;
} render_ctx;

static qg_status put_fenced(qg_buf *out, const char *name, const char *v)
{
    qg_status rc = qg_buf_printf(out, "<data name=\"%s\">", name);
    for (const char *p = v; !rc && *p;) {
        size_t n = strcspn(p, "<>&");
        if (n) rc = qg_buf_append(out, p, n);
        p += n;
        if (rc || !*p) break;
        rc = qg_buf_puts(out, *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : "&amp;");
        p++;
    }
    if (!rc) rc = qg_buf_puts(out, "</data>");
    return rc;
}

static qg_status chain_error(render_ctx *x, const char *id, size_t n, const char *why,
                             qg_error *err)
{
    char chain[512] = "";
    size_t used = 0;
    for (int i = 0; i < x->depth && used < sizeof chain; i++)
        used += (size_t)snprintf(chain + used, sizeof chain - used, "%s -> ", x->chain[i]);
    return qg_error_set(err, QG_EINVAL, "template %s: %s: %s%.*s", x->root, why, chain, (int)n, id);
}

static qg_status render_text(render_ctx *x, const char *text, const decls *d, qg_buf *out,
                             qg_error *err);

static qg_status render_partial(render_ctx *x, const char *id, size_t n, qg_buf *out, qg_error *err)
{
    for (int i = 0; i < x->depth; i++)
        if (strlen(x->chain[i]) == n && memcmp(x->chain[i], id, n) == 0)
            return chain_error(x, id, n, "partials include each other", err);
    if (x->depth > QG_PROMPT_MAX_DEPTH)
        return chain_error(
            x, id, n, "partials nested too deep (at most " QG_STR(QG_PROMPT_MAX_DEPTH) " levels)",
            err);
    char *pid = qg_arena_strndup(x->a, id, n);
    if (!pid) return qg_error_set(err, QG_ENOMEM, "out of memory");
    tmpl_head h;
    vtext v;
    qg_status rc = cached_load(x->pc, x->c, pid, x->a, &h, &v, err);
    if (rc) return rc;
    if (!h.found || h.kind != QG_PROMPT_PARTIAL)
        return qg_error_set(err, QG_EINVAL, "template %s: the included partial \"%s\" %s", x->root,
                            pid, h.found ? "is a task" : "does not exist");
    if (!v.found)
        return qg_error_set(err, QG_EINTERNAL, "template %s: active version %d missing", pid,
                            h.active);
    decls pd;
    rc = decls_parse(v.params, x->a, &pd, NULL, err);
    if (rc) {
        qg_error_prefix(err, "partial %s", pid);
        return rc;
    }
    x->chain[x->depth++] = pid;
    rc = render_text(x, v.body, &pd, out, err);
    x->depth--;
    return rc;
}

static qg_status render_param(render_ctx *x, const tok *t, const decls *d, qg_buf *out,
                              qg_error *err)
{
    if (!x->vals) return QG_OK; /* dry run */
    x->used_param = true;
    const decl *dc = decl_find(d, t->s, t->n);
    const char *owner = x->chain[x->depth - 1];
    if (!dc) /* validated at save; only a hand-edited database gets here */
        return qg_error_set(err, QG_EINVAL, "template %s: line %d: undeclared parameter \"%.*s\"",
                            owner, t->line, (int)t->n, t->s);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(x->vals, dc->name);
    const char *s = NULL;
    if (v && !cJSON_IsNull(v)) {
        if (!(s = value_text(v, x->a))) return qg_error_set(err, QG_ENOMEM, "out of memory");
    } else if (dc->required) {
        if (x->depth > 1)
            return qg_error_set(err, QG_EINVAL,
                                "template %s: missing required parameter \"%s\" (declared by "
                                "partial %s)",
                                x->root, dc->name, owner);
        return qg_error_set(err, QG_EINVAL, "template %s: missing required parameter \"%s\"",
                            x->root, dc->name);
    } else {
        s = dc->def ? dc->def : "";
    }
    if (!*s) return QG_OK;
    return dc->trusted ? qg_buf_puts(out, s) : put_fenced(out, dc->name, s);
}

static qg_status render_text(render_ctx *x, const char *text, const decls *d, qg_buf *out,
                             qg_error *err)
{
    scanner sc = {text, 1};
    for (;;) {
        tok t;
        qg_status rc = scan_next(&sc, &t, err);
        if (rc) {
            qg_error_prefix(err, "template %s", x->chain[x->depth - 1]);
            return rc;
        }
        switch (t.kind) {
        case TOK_END:
            return QG_OK;
        case TOK_TEXT:
            rc = qg_buf_append(out, t.s, t.n);
            break;
        case TOK_PARAM:
            rc = render_param(x, &t, d, out, err);
            break;
        case TOK_PARTIAL:
            rc = render_partial(x, t.s, t.n, out, err);
            break;
        }
        if (rc == QG_ERANGE)
            return qg_error_set(err, QG_EINVAL,
                                "template %s: the rendered prompt is longer than "
                                "%d bytes",
                                x->root, QG_PROMPT_OUT_MAX);
        if (rc) return rc;
    }
}

/* Renders text into a NUL-terminated arena string. */
static qg_status render_part(render_ctx *x, const char *text, const decls *d, const char **out,
                             qg_error *err)
{
    qg_buf b;
    qg_buf_init(&b, QG_PROMPT_OUT_MAX);
    x->chain[0] = x->root;
    x->depth = 1;
    qg_status rc = render_text(x, text, d, &b, err);
    if (!rc) {
        *out = qg_arena_strndup(x->a, b.len ? b.data : "", b.len);
        if (!*out) rc = qg_error_set(err, QG_ENOMEM, "out of memory");
    }
    qg_buf_free(&b);
    return rc;
}

qg_status qg_prompt_render(qg_conn *c, const char *template_id, int version,
                           const char *params_json, qg_arena *a, qg_prompt_rendered *out,
                           qg_error *err)
{
    return qg_prompt_render_cached(NULL, c, template_id, version, params_json, NULL, a, out, err);
}

/* The cached rendered system text of id's active version at generation
 * gen, copied into a; NULL when there is none. */
static const char *cached_system(qg_prompt_cache *pc, const char *id, uint64_t gen, qg_arena *a)
{
    const char *out = NULL;
    pthread_mutex_lock(&pc->mu);
    const pc_entry *e = pc_find_locked(pc, id);
    if (e && e->gen == gen && e->system_out)
        out = qg_arena_strndup(a, e->system_out, strlen(e->system_out));
    pthread_mutex_unlock(&pc->mu);
    return out;
}

/* Keeps sys as id's rendered system text if the entry is still the one
 * read at generation gen. */
static void cache_system(qg_prompt_cache *pc, const char *id, uint64_t gen, const char *sys)
{
    pthread_mutex_lock(&pc->mu);
    pc_entry *e = pc_find_locked(pc, id);
    if (e && e->gen == gen && e->has_text && !e->system_out) e->system_out = qg_xstrdup(sys);
    pthread_mutex_unlock(&pc->mu);
}

qg_status qg_prompt_render_cached(qg_prompt_cache *pc, qg_conn *c, const char *template_id,
                                  int version, const char *params_json, const cJSON *params,
                                  qg_arena *a, qg_prompt_rendered *out, qg_error *err)
{
    qg_status rc = QG_OK;
    cJSON *vals = NULL; /* parsed here, when params is NULL */
    if (!qg_prompt_id_valid(template_id))
        return qg_error_set(err, QG_ENOTFOUND, "template \"%.64s\" not found",
                            template_id ? template_id : "");
    tmpl_head h;
    vtext v;
    /* Read before the texts: a system text cached at this generation was
     * rendered from the same texts. */
    uint64_t gen = atomic_load(&prompt_gen);
    if ((rc = cached_load(pc, c, template_id, a, &h, &v, err))) return rc;
    if (!h.found) return qg_error_set(err, QG_ENOTFOUND, "template %s not found", template_id);
    if (version <= 0) version = h.active;
    bool cacheable = pc && version == h.active && strlen(template_id) <= QG_PROMPT_ID_MAX;
    if (version != h.active && (rc = load_vtext(c, template_id, version, a, &v, err))) return rc;
    if (!v.found)
        return qg_error_set(err, QG_ENOTFOUND, "template %s has no version %d", template_id,
                            version);
    if (!params) {
        vals = params_json && *params_json ? cJSON_Parse(params_json) : cJSON_CreateObject();
        params = vals;
    }
    if (!cJSON_IsObject(params)) {
        rc = qg_error_set(err, QG_EINVAL, "template %s: params: expected a JSON object",
                          template_id);
        goto out;
    }
    decls d;
    if ((rc = decls_parse(v.params, a, &d, NULL, err))) goto out;
    render_ctx x = {.c = c, .pc = pc, .a = a, .root = template_id, .vals = params};
    const char *sys = cacheable ? cached_system(pc, template_id, gen, a) : NULL;
    const char *user = NULL;
    if (!sys) {
        if ((rc = render_part(&x, v.system, &d, &sys, err))) goto out;
        if (cacheable && !x.used_param) cache_system(pc, template_id, gen, sys);
    }
    if ((rc = render_part(&x, v.body, &d, &user, err))) goto out;
    out->system = sys;
    out->user = user;
    out->version = version;
    out->template_id = qg_arena_strndup(a, template_id, strlen(template_id));
    if (!out->template_id) rc = qg_error_set(err, QG_ENOMEM, "out of memory");
out:
    cJSON_Delete(vals);
    return rc;
}

/* ---- validation of a version being saved ---- */

/* Every {{name}} of text must be declared; every {{> id}} must be an
 * existing partial (or the template being saved, which is then a cycle). */
static qg_status check_tags(qg_conn *c, const char *field, const char *text, const decls *d,
                            bool check_partials, qg_error *err)
{
    scanner sc = {text, 1};
    for (;;) {
        tok t;
        qg_status rc = scan_next(&sc, &t, err);
        if (rc) {
            qg_error_prefix(err, "%s", field);
            return rc;
        }
        if (t.kind == TOK_END) return QG_OK;
        if (t.kind == TOK_PARAM && !decl_find(d, t.s, t.n))
            return qg_error_set(err, QG_EINVAL,
                                "%s: line %d: undeclared parameter \"%.*s\" (declare it in "
                                "params)",
                                field, t.line, (int)t.n, t.s);
        if (t.kind == TOK_PARTIAL && check_partials) {
            char id[QG_PROMPT_ID_MAX + 1];
            snprintf(id, sizeof id, "%.*s", (int)t.n, t.s);
            tmpl_head h;
            if ((rc = load_head(c, id, &h, err))) return rc;
            if (!h.found || h.kind != QG_PROMPT_PARTIAL)
                return qg_error_set(
                    err, QG_EINVAL, "%s: line %d: \"{{> %s}}\": %s", field, t.line, id,
                    h.found ? "that template is a task, not a partial" : "no such partial");
        }
    }
}

static qg_status check_len(const char *field, const char *s, size_t max, qg_error *err)
{
    if (s && strlen(s) > max)
        return qg_error_set(err, QG_EINVAL, "%s: longer than %zu bytes", field, max);
    return QG_OK;
}

/* ---- saving ---- */

static qg_status int_row(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_is_null(row, 0) ? 0 : qg_row_int(row, 0);
    return QG_OK;
}

/* The body of qg_prompt_save inside its transaction. */
static qg_status save_locked(qg_conn *c, const qg_prompt_edit *e, qg_arena *a, int *version,
                             bool *created, qg_error *err)
{
    tmpl_head h;
    qg_status rc = load_head(c, e->id, &h, err);
    if (rc) return rc;
    int kind = e->kind ? qg_prompt_kind_parse(e->kind) : (h.found ? (int)h.kind : QG_PROMPT_TASK);
    if (kind < 0)
        return qg_error_set(err, QG_EINVAL, "kind: expected \"task\" or \"partial\", not \"%.32s\"",
                            e->kind);
    if (h.found && kind != (int)h.kind)
        return qg_error_set(err, QG_EINVAL, "kind: template %s is a %s; its kind cannot change",
                            e->id, qg_prompt_kind_name(h.kind));
    const char *system = e->system ? e->system : "";
    if (kind == QG_PROMPT_PARTIAL && *system)
        return qg_error_set(err, QG_EINVAL,
                            "system: a partial has only a body (it is included "
                            "into other templates' text)");
    decls d;
    const char *params = NULL;
    if ((rc = decls_parse(e->params_json, a, &d, &params, err))) return rc;
    if ((rc = check_tags(c, "system", system, &d, true, err))) return rc;
    if ((rc = check_tags(c, "body", e->body, &d, true, err))) return rc;
    /* Expand the includes without values (a dry run): a partial that
     * reaches itself again through others is in the chain as its root, and
     * nesting deeper than the cap shows now rather than at the first call. */
    render_ctx x = {.c = c, .a = a, .root = e->id};
    const char *dummy;
    if ((rc = render_part(&x, system, &d, &dummy, err))) return rc;
    if ((rc = render_part(&x, e->body, &d, &dummy, err))) return rc;

    int64_t maxv = 0;
    qg_val pid[] = {QG_VTEXT(e->id)};
    if ((rc = qg_conn_query(c, "SELECT MAX(version) FROM prompt_versions WHERE template_id = ?",
                            pid, 1, int_row, &maxv, err)))
        return rc;
    int v = (int)maxv + 1;
    int64_t now = qg_time_now_ms();
    if (!h.found) {
        qg_val p[] = {QG_VTEXT(e->id),
                      QG_VTEXT(qg_prompt_kind_name(kind)),
                      QG_VTEXT(e->description ? e->description : ""),
                      QG_VINT(v),
                      QG_VINT(now),
                      QG_VINT(now)};
        rc = qg_conn_exec(c,
                          "INSERT INTO prompt_templates (id, kind, description, active_version, "
                          "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                          p, 6, NULL, err);
    } else {
        qg_val p[] = {QG_VINT(v), QG_VINT(now),
                      e->description ? QG_VTEXT(e->description) : QG_VNULL, QG_VTEXT(e->id)};
        rc = qg_conn_exec(c,
                          "UPDATE prompt_templates SET active_version = ?, updated_at = ?, "
                          "description = COALESCE(?, description) WHERE id = ?",
                          p, 4, NULL, err);
    }
    if (rc) return rc;
    qg_val p[] = {QG_VTEXT(e->id),
                  QG_VINT(v),
                  QG_VTEXT(system),
                  QG_VTEXT(e->body),
                  QG_VTEXT(params),
                  QG_VTEXT(e->note ? e->note : ""),
                  e->author_id ? QG_VTEXT(e->author_id) : QG_VNULL,
                  QG_VINT(now)};
    rc = qg_conn_exec(c,
                      "INSERT INTO prompt_versions (template_id, version, system, body, params, "
                      "note, author_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      p, 8, NULL, err);
    if (rc) return rc;
    if (version) *version = v;
    if (created) *created = !h.found;
    return QG_OK;
}

qg_status qg_prompt_save(qg_conn *c, const qg_prompt_edit *e, int *version, bool *created,
                         qg_error *err)
{
    if (!qg_prompt_id_valid(e->id))
        return qg_error_set(err, QG_EINVAL,
                            "id: expected 1-%d characters of a-z, 0-9, '.', '_' and '-'",
                            QG_PROMPT_ID_MAX);
    if (!e->body || !*e->body) return qg_error_set(err, QG_EINVAL, "body: required and not empty");
    qg_status rc;
    if ((rc = check_len("body", e->body, QG_PROMPT_TEXT_MAX, err)) ||
        (rc = check_len("system", e->system, QG_PROMPT_TEXT_MAX, err)) ||
        (rc = check_len("note", e->note, QG_PROMPT_NOTE_MAX, err)) ||
        (rc = check_len("description", e->description, QG_PROMPT_NOTE_MAX, err)))
        return rc;
    qg_arena a;
    qg_arena_init(&a, 0);
    if ((rc = qg_conn_begin(c, err))) goto out;
    rc = save_locked(c, e, &a, version, created, err);
    if (rc)
        qg_conn_rollback(c);
    else
        rc = qg_conn_commit(c, err);
    atomic_fetch_add(&prompt_gen, 1); /* after the commit: cached renders re-read */
out:
    qg_arena_free(&a);
    return rc;
}

qg_status qg_prompt_rollback(qg_conn *c, const char *id, int version, qg_error *err)
{
    if (!qg_prompt_id_valid(id))
        return qg_error_set(err, QG_ENOTFOUND, "template \"%.64s\" not found", id ? id : "");
    int64_t n = 0;
    qg_val p[] = {QG_VTEXT(id), QG_VINT(version)};
    qg_status rc = qg_conn_query(c,
                                 "SELECT COUNT(*) FROM prompt_versions WHERE template_id = ? AND "
                                 "version = ?",
                                 p, 2, int_row, &n, err);
    if (rc) return rc;
    if (n == 0) {
        tmpl_head h;
        if ((rc = load_head(c, id, &h, err))) return rc;
        if (!h.found) return qg_error_set(err, QG_ENOTFOUND, "template %s not found", id);
        return qg_error_set(err, QG_ENOTFOUND, "template %s has no version %d", id, version);
    }
    qg_val u[] = {QG_VINT(version), QG_VINT(qg_time_now_ms()), QG_VTEXT(id)};
    rc = qg_conn_exec(c,
                      "UPDATE prompt_templates SET active_version = ?, updated_at = ? WHERE id = ?",
                      u, 3, NULL, err);
    atomic_fetch_add(&prompt_gen, 1);
    return rc;
}

/* ---- reading ---- */

/* Grows an arena array by one element (doubling; old blocks stay in the
 * arena until it is freed, which is fine for listings this small). */
static void *arr_push(qg_arena *a, void **arr, size_t *n, size_t *cap, size_t elem)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        void *p = qg_arena_alloc(a, nc * elem);
        if (!p) return NULL;
        if (*n) memcpy(p, *arr, *n * elem);
        *arr = p;
        *cap = nc;
    }
    return (char *)*arr + (*n)++ * elem;
}

typedef struct tmpl_list {
    qg_arena *a;
    qg_prompt_template *v;
    size_t n, cap;
} tmpl_list;

static const char *dup_col(qg_arena *a, const qg_row *row, int col)
{
    return qg_arena_strdup(a, qg_row_text(row, col));
}

static qg_status tmpl_row(void *ud, const qg_row *row)
{
    tmpl_list *l = ud;
    qg_prompt_template *t = arr_push(l->a, (void **)&l->v, &l->n, &l->cap, sizeof *t);
    if (!t) return QG_ENOMEM;
    t->id = dup_col(l->a, row, 0);
    t->kind = qg_prompt_kind_parse(qg_row_text(row, 1)) == QG_PROMPT_PARTIAL ? QG_PROMPT_PARTIAL
                                                                             : QG_PROMPT_TASK;
    t->description = dup_col(l->a, row, 2);
    t->active_version = (int)qg_row_int(row, 3);
    t->created_at = qg_row_int(row, 4);
    t->updated_at = qg_row_int(row, 5);
    t->latest_version = (int)qg_row_int(row, 6);
    return t->id && t->description ? QG_OK : QG_ENOMEM;
}

#define TMPL_SELECT                                                                                \
    "SELECT t.id, t.kind, t.description, t.active_version, t.created_at, t.updated_at, "           \
    "(SELECT MAX(v.version) FROM prompt_versions v WHERE v.template_id = t.id) "                   \
    "FROM prompt_templates t "

qg_status qg_prompt_list(qg_conn *c, qg_arena *a, qg_prompt_template **out, size_t *n,
                         qg_error *err)
{
    tmpl_list l = {.a = a};
    qg_status rc = qg_conn_query(c, TMPL_SELECT "ORDER BY t.id", NULL, 0, tmpl_row, &l, err);
    if (rc == QG_ENOMEM) return qg_error_set(err, rc, "out of memory");
    if (rc) return rc;
    *out = l.v;
    *n = l.n;
    return QG_OK;
}

qg_status qg_prompt_get(qg_conn *c, const char *id, qg_arena *a, qg_prompt_template *out,
                        qg_error *err)
{
    if (!qg_prompt_id_valid(id))
        return qg_error_set(err, QG_ENOTFOUND, "template \"%.64s\" not found", id ? id : "");
    tmpl_list l = {.a = a};
    qg_val p[] = {QG_VTEXT(id)};
    qg_status rc = qg_conn_query(c, TMPL_SELECT "WHERE t.id = ?", p, 1, tmpl_row, &l, err);
    if (rc == QG_ENOMEM) return qg_error_set(err, rc, "out of memory");
    if (rc) return rc;
    if (l.n == 0) return qg_error_set(err, QG_ENOTFOUND, "template %s not found", id);
    *out = l.v[0];
    return QG_OK;
}

typedef struct ver_list {
    qg_arena *a;
    qg_prompt_version *v;
    size_t n, cap;
} ver_list;

static qg_status ver_row(void *ud, const qg_row *row)
{
    ver_list *l = ud;
    qg_prompt_version *v = arr_push(l->a, (void **)&l->v, &l->n, &l->cap, sizeof *v);
    if (!v) return QG_ENOMEM;
    *v = (qg_prompt_version){0};
    v->template_id = dup_col(l->a, row, 0);
    v->version = (int)qg_row_int(row, 1);
    v->system = dup_col(l->a, row, 2);
    v->body = dup_col(l->a, row, 3);
    v->params_json = dup_col(l->a, row, 4);
    v->note = dup_col(l->a, row, 5);
    v->author_id = dup_col(l->a, row, 6);
    v->created_at = qg_row_int(row, 7);
    return v->template_id && v->system && v->body && v->params_json && v->note ? QG_OK : QG_ENOMEM;
}

static qg_status stats_row(void *ud, const qg_row *row)
{
    ver_list *l = ud;
    int version = (int)qg_row_int(row, 0);
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].version != version) continue;
        qg_prompt_stats *s = &l->v[i].stats;
        s->calls = qg_row_int(row, 1);
        s->failures = qg_row_int(row, 2);
        s->avg_input_tokens = qg_row_double(row, 3);
        s->avg_output_tokens = qg_row_double(row, 4);
        s->avg_latency_ms = qg_row_double(row, 5);
    }
    return QG_OK;
}

/* Loads the versions of id (all, or just one when version > 0) and their
 * stats. */
static qg_status load_versions(qg_conn *c, const char *id, int version, qg_arena *a, ver_list *l,
                               qg_error *err)
{
    *l = (ver_list){.a = a};
    qg_val p[] = {QG_VTEXT(id), QG_VINT(version), QG_VINT(version)};
    qg_status rc = qg_conn_query(c,
                                 "SELECT template_id, version, system, body, params, note, "
                                 "author_id, created_at FROM prompt_versions WHERE template_id = "
                                 "? AND (? = 0 OR version = ?) ORDER BY version DESC",
                                 p, 3, ver_row, l, err);
    if (rc == QG_ENOMEM) return qg_error_set(err, rc, "out of memory");
    if (rc || l->n == 0) return rc;
    return qg_conn_query(c,
                         "SELECT template_version, COUNT(*), "
                         "SUM(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END), "
                         "AVG(input_tokens), AVG(output_tokens), AVG(latency_ms) "
                         "FROM ai_calls WHERE template_id = ? AND (? = 0 OR template_version = ?) "
                         "GROUP BY template_version",
                         p, 3, stats_row, l, err);
}

qg_status qg_prompt_versions(qg_conn *c, const char *id, qg_arena *a, qg_prompt_version **out,
                             size_t *n, qg_error *err)
{
    if (!qg_prompt_id_valid(id))
        return qg_error_set(err, QG_ENOTFOUND, "template \"%.64s\" not found", id ? id : "");
    ver_list l;
    qg_status rc = load_versions(c, id, 0, a, &l, err);
    if (rc) return rc;
    if (l.n == 0) return qg_error_set(err, QG_ENOTFOUND, "template %s not found", id);
    *out = l.v;
    *n = l.n;
    return QG_OK;
}

qg_status qg_prompt_version_get(qg_conn *c, const char *id, int version, qg_arena *a,
                                qg_prompt_version *out, qg_error *err)
{
    if (!qg_prompt_id_valid(id))
        return qg_error_set(err, QG_ENOTFOUND, "template \"%.64s\" not found", id ? id : "");
    tmpl_head h;
    qg_status rc = load_head(c, id, &h, err);
    if (rc) return rc;
    if (!h.found) return qg_error_set(err, QG_ENOTFOUND, "template %s not found", id);
    if (version <= 0) version = h.active;
    ver_list l;
    if ((rc = load_versions(c, id, version, a, &l, err))) return rc;
    if (l.n == 0)
        return qg_error_set(err, QG_ENOTFOUND, "template %s has no version %d", id, version);
    *out = l.v[0];
    return QG_OK;
}

/* ---- *.prompt files ---- */

/* One "param:" header line: NAME [required|optional] [trusted]
 * [default=VALUE] [-- description]. VALUE is a JSON string, array or object,
 * or a bare word taken as a string. */
static qg_status parse_param_line(const char *s, const char *where, int line, cJSON *arr,
                                  qg_error *err)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return qg_error_set(err, QG_ENOMEM, "out of memory");
    cJSON_AddItemToArray(arr, o);
    const char *p = s;
    char word[QG_PROMPT_PARAM_MAX + 1];
    bool first = true;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        if (p[0] == '-' && p[1] == '-') {
            p += 2;
            while (*p == ' ' || *p == '\t') p++;
            cJSON_AddStringToObject(o, "description", p);
            break;
        }
        if (strncmp(p, "default=", 8) == 0) {
            p += 8;
            cJSON *v;
            if (*p == '"' || *p == '[' || *p == '{') {
                const char *end = NULL;
                v = cJSON_ParseWithOpts(p, &end, false);
                if (!v)
                    return qg_error_set(err, QG_EINVAL, "%s:%d: param default: bad JSON value",
                                        where, line);
                p = end;
            } else {
                size_t n = strcspn(p, " \t");
                char *tmp = strndup(p, n);
                v = tmp ? cJSON_CreateString(tmp) : NULL;
                free(tmp);
                if (!v) return qg_error_set(err, QG_ENOMEM, "out of memory");
                p += n;
            }
            cJSON_AddItemToObject(o, "default", v);
            continue;
        }
        size_t n = strcspn(p, " \t");
        if (n >= sizeof word)
            return qg_error_set(err, QG_EINVAL, "%s:%d: param: \"%.*s\" is too long", where, line,
                                (int)(n > 40 ? 40 : n), p);
        memcpy(word, p, n);
        word[n] = '\0';
        p += n;
        if (first) {
            cJSON_AddStringToObject(o, "name", word);
            first = false;
        } else if (strcmp(word, "required") == 0) {
            cJSON_AddBoolToObject(o, "required", true);
        } else if (strcmp(word, "optional") == 0) {
            cJSON_AddBoolToObject(o, "required", false);
        } else if (strcmp(word, "trusted") == 0) {
            cJSON_AddBoolToObject(o, "trusted", true);
        } else {
            return qg_error_set(err, QG_EINVAL,
                                "%s:%d: param: unknown word \"%s\" (expected required, optional, "
                                "trusted, default=VALUE or -- description)",
                                where, line, word);
        }
    }
    if (first) return qg_error_set(err, QG_EINVAL, "%s:%d: param: a name is required", where, line);
    return QG_OK;
}

/* Trims leading and trailing blank lines of a section; returns it in a. */
static char *section_text(qg_arena *a, const char *b, const char *e)
{
    for (;;) { /* drop whole blank leading lines */
        const char *q = b;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < e && *q == '\n')
            b = q + 1;
        else
            break;
    }
    while (e > b && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
    return qg_arena_strndup(a, b, (size_t)(e - b));
}

static char *trim_dup(qg_arena *a, const char *b, const char *e)
{
    while (b < e && isspace((unsigned char)*b)) b++;
    while (e > b && isspace((unsigned char)e[-1])) e--;
    return qg_arena_strndup(a, b, (size_t)(e - b));
}

/* Which section marker a line is: 0 none, 1 system, 2 user/body. */
static int section_marker(const char *b, const char *e)
{
    while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    size_t n = (size_t)(e - b);
    if (n == 14 && memcmp(b, "--- system ---", 14) == 0) return 1;
    if (n == 12 && memcmp(b, "--- user ---", 12) == 0) return 2;
    if (n == 12 && memcmp(b, "--- body ---", 12) == 0) return 2;
    return 0;
}

qg_status qg_prompt_parse_file(const char *text, size_t len, const char *name, qg_arena *a,
                               qg_prompt_edit *out, qg_error *err)
{
    qg_status rc = QG_OK;
    *out = (qg_prompt_edit){0};
    cJSON *params = cJSON_CreateArray();
    if (!params) return qg_error_set(err, QG_ENOMEM, "out of memory");
    const char *p = text, *end = text + len;
    const char *sec_start[3] = {0}, *sec_end[3] = {0};
    int cur = 0, line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        int m = section_marker(p, le);
        if (m) {
            if (cur) sec_end[cur] = p;
            if (sec_start[m]) {
                rc = qg_error_set(err, QG_EINVAL, "%s:%d: second \"%s\" section", name, line,
                                  m == 1 ? "system" : "user");
                goto out;
            }
            cur = m;
            sec_start[m] = nl ? nl + 1 : end;
        } else if (!cur) { /* header */
            const char *b = p;
            while (b < le && isspace((unsigned char)*b)) b++;
            if (b == le || *b == '#') goto next;
            const char *colon = memchr(b, ':', (size_t)(le - b));
            if (!colon) {
                rc = qg_error_set(err, QG_EINVAL,
                                  "%s:%d: expected \"key: value\" or a \"--- system ---\" / "
                                  "\"--- user ---\" line",
                                  name, line);
                goto out;
            }
            char key[16];
            snprintf(key, sizeof key, "%.*s", (int)(colon - b), b);
            char *val = trim_dup(a, colon + 1, le);
            if (!val) {
                rc = qg_error_set(err, QG_ENOMEM, "out of memory");
                goto out;
            }
            if (strcmp(key, "id") == 0)
                out->id = val;
            else if (strcmp(key, "kind") == 0)
                out->kind = val;
            else if (strcmp(key, "description") == 0)
                out->description = val;
            else if (strcmp(key, "note") == 0)
                out->note = val;
            else if (strcmp(key, "param") == 0) {
                if ((rc = parse_param_line(val, name, line, params, err))) goto out;
            } else {
                rc = qg_error_set(err, QG_EINVAL,
                                  "%s:%d: unknown header \"%s\" (expected id, kind, description, "
                                  "note or param)",
                                  name, line, key);
                goto out;
            }
        }
    next:
        p = nl ? nl + 1 : end;
    }
    if (cur) sec_end[cur] = end;
    if (!sec_start[2]) {
        rc = qg_error_set(err, QG_EINVAL, "%s: no \"--- user ---\" section", name);
        goto out;
    }
    out->body = section_text(a, sec_start[2], sec_end[2]);
    out->system = sec_start[1] ? section_text(a, sec_start[1], sec_end[1]) : "";
    char *pj = qg_json_compact(params);
    out->params_json = pj ? qg_arena_strndup(a, pj, strlen(pj)) : NULL;
    cJSON_free(pj);
    if (!out->body || !out->system || !out->params_json) {
        rc = qg_error_set(err, QG_ENOMEM, "out of memory");
        goto out;
    }
    decls d;
    if ((rc = decls_parse(out->params_json, a, &d, &out->params_json, err))) {
        qg_error_prefix(err, "%s", name);
        goto out;
    }
    if (!out->id) {
        rc = qg_error_set(err, QG_EINVAL, "%s: no \"id:\" header", name);
        goto out;
    }
    if (!qg_prompt_id_valid(out->id)) {
        rc = qg_error_set(err, QG_EINVAL,
                          "%s: id \"%.64s\": expected 1-%d characters of a-z, "
                          "0-9, '.', '_' and '-'",
                          name, out->id, QG_PROMPT_ID_MAX);
        goto out;
    }
out:
    cJSON_Delete(params);
    return rc;
}

/* ---- seeding ---- */

typedef struct seed_item {
    char file[256];
    qg_prompt_edit e;
    bool done;
} seed_item;

static int cmp_names(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The first partial text includes that is not in the database yet, copied
 * to missing; false when all are there. */
static bool needs_partial(qg_conn *c, const char *text, char *missing, size_t cap)
{
    scanner sc = {text, 1};
    for (;;) {
        tok t = {0};
        if (scan_next(&sc, &t, NULL) || t.kind == TOK_END) return false;
        if (t.kind != TOK_PARTIAL) continue;
        snprintf(missing, cap, "%.*s", (int)t.n, t.s);
        tmpl_head h;
        if (load_head(c, missing, &h, NULL) == QG_OK && !h.found) return true;
    }
}

static void keep_first(qg_status *first, qg_error *err, qg_status rc, const qg_error *e)
{
    if (*first) return;
    *first = rc;
    if (err) *err = *e;
}

qg_status qg_prompt_seed_defaults(qg_conn *c, const char *dir, int *loaded, qg_error *err)
{
    qg_status first = QG_OK;
    int nloaded = 0;
    char **names = NULL;
    size_t nnames = 0, cap = 0;
    seed_item *items = NULL;
    size_t nitems = 0;
    qg_arena a;
    qg_arena_init(&a, 0);
    DIR *d = opendir(dir);
    if (!d) {
        first = qg_error_set(err, errno == ENOENT ? QG_ENOTFOUND : QG_EIO,
                             "prompts directory '%s': %s", dir, strerror(errno));
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= 7 || strcmp(de->d_name + n - 7, ".prompt") != 0 || de->d_name[0] == '.') continue;
        if (nnames == cap) {
            cap = cap ? cap * 2 : 16;
            names = qg_xrealloc(names, cap * sizeof *names);
        }
        names[nnames++] = qg_xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, nnames, sizeof *names, cmp_names);
    items = qg_xcalloc(nnames ? nnames : 1, sizeof *items);

    for (size_t i = 0; i < nnames; i++) {
        qg_error e = {0};
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *text = NULL;
        size_t len = 0;
        qg_status rc = qg_file_read_all(path, QG_PROMPT_FILE_MAX, &text, &len, &e);
        if (!rc) rc = qg_prompt_parse_file(text, len, names[i], &a, &items[nitems].e, &e);
        free(text);
        tmpl_head h = {0};
        if (!rc) rc = load_head(c, items[nitems].e.id, &h, &e);
        if (rc) {
            keep_first(&first, err, rc, &e);
            continue;
        }
        if (h.found) continue; /* loaded before, maybe edited since: never overwrite */
        snprintf(items[nitems].file, sizeof items[nitems].file, "%s", names[i]);
        items[nitems].e.note = items[nitems].e.note ? items[nitems].e.note : "default";
        nitems++;
    }

    /* Passes: a file goes in once every partial it includes exists. */
    for (bool progress = true; progress;) {
        progress = false;
        for (size_t i = 0; i < nitems; i++) {
            seed_item *it = &items[i];
            char miss[QG_PROMPT_ID_MAX + 1];
            if (it->done || needs_partial(c, it->e.system, miss, sizeof miss) ||
                needs_partial(c, it->e.body, miss, sizeof miss))
                continue;
            it->done = true;
            progress = true;
            qg_error e = {0};
            qg_status rc = qg_prompt_save(c, &it->e, NULL, NULL, &e);
            if (rc) {
                qg_error_prefix(&e, "%s", it->file);
                keep_first(&first, err, rc, &e);
                continue;
            }
            nloaded++;
            qg_info("prompts: loaded template %s from %s", it->e.id, it->file);
        }
    }
    for (size_t i = 0; i < nitems; i++) {
        char miss[QG_PROMPT_ID_MAX + 1] = "";
        if (items[i].done) continue;
        if (!needs_partial(c, items[i].e.system, miss, sizeof miss))
            needs_partial(c, items[i].e.body, miss, sizeof miss);
        qg_error e = {0};
        qg_status rc = qg_error_set(&e, QG_EINVAL,
                                    "%s: includes the partial \"%s\", which no "
                                    "file defines",
                                    items[i].file, miss);
        keep_first(&first, err, rc, &e);
    }
out:
    for (size_t i = 0; i < nnames; i++) free(names[i]);
    free(names);
    free(items);
    qg_arena_free(&a);
    if (loaded) *loaded = nloaded;
    return first;
}
