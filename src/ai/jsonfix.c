/*
 * jsonfix.c - finding, repairing and validating JSON in model answers.
 *
 * Extraction tries candidate starts in order of how JSON-like they are:
 * first each '{' before a key or '[' before a value, parsed as it stands or
 * else repaired, then the remaining '{' and '[' (repaired). The repairer is one forward pass with a
 * container stack: it rewrites tokens (single quotes, bare words, Python literals, numbers like
 * "+1" or ".5"), drops comments and stray characters, defers every comma until the next item (so
 * trailing and doubled commas vanish and a missing one is inserted), and closes whatever is still
 * open at the end. Whatever it produces is parsed again by cJSON before it is returned, so a
 * successful extract always yields valid JSON.
 *
 * Bounds: input at most QG_JSONFIX_MAX_INPUT bytes, nesting at most
 * FIX_MAX_DEPTH, at most FIX_MAX_STARTS candidate starts per pass, so the
 * work is linear in the input times a small constant.
 */
#include "ai/jsonfix.h"

#include <quantgate/json.h>

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX_MAX_DEPTH  256
#define FIX_MAX_STARTS 32

/* ---- the repairer ---- */

typedef enum { ST_KEY, ST_COLON, ST_VALUE, ST_COMMA } fix_state;
typedef enum { ROLE_KEY, ROLE_VALUE } fix_role;

typedef struct fixer {
    const char *p, *end;
    qg_buf out;
    char kind[FIX_MAX_DEPTH]; /* '{' or '[' */
    fix_state st[FIX_MAX_DEPTH];
    int depth;
    bool done; /* the top-level value is complete */
    bool failed;
} fixer;

static void emit(fixer *f, const char *s, size_t n)
{
    if (qg_buf_append(&f->out, s, n)) f->failed = true;
}

static void emit_c(fixer *f, char c)
{
    emit(f, &c, 1);
}

/* Before a token in the current container: inserts the deferred comma or a
 * missing colon and says whether the token is a key or a value. */
static fix_role prep(fixer *f)
{
    if (f->depth == 0) return ROLE_VALUE;
    int t = f->depth - 1;
    if (f->st[t] == ST_COMMA) {
        emit_c(f, ',');
        f->st[t] = f->kind[t] == '{' ? ST_KEY : ST_VALUE;
    }
    if (f->st[t] == ST_COLON) {
        emit_c(f, ':');
        f->st[t] = ST_VALUE;
    }
    return f->st[t] == ST_KEY ? ROLE_KEY : ROLE_VALUE;
}

static void token_done(fixer *f, fix_role role)
{
    if (f->depth == 0) {
        f->done = true;
        return;
    }
    f->st[f->depth - 1] = role == ROLE_KEY ? ST_COLON : ST_COMMA;
}

/* Closes the innermost container, giving a dangling key a null value. */
static void close_top(fixer *f)
{
    int t = f->depth - 1;
    if (f->kind[t] == '{') {
        if (f->st[t] == ST_COLON)
            emit(f, ":null", 5);
        else if (f->st[t] == ST_VALUE)
            emit(f, "null", 4);
    }
    emit_c(f, f->kind[t] == '{' ? '}' : ']');
    f->depth--;
    token_done(f, ROLE_VALUE);
}

static bool is_hex(int c)
{
    return isxdigit((unsigned char)c) != 0;
}

/* Single-quoted strings hold apostrophes ("it's"): a quote closes the
 * string only where JSON structure follows it. */
static bool single_quote_closes(const char *p, const char *end)
{
    for (p++; p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'); p++) {
    }
    return p >= end || *p == ',' || *p == ':' || *p == '}' || *p == ']';
}

/* Copies a string token starting at the quote f->p as a JSON string. */
static void fix_string(fixer *f)
{
    char q = *f->p++;
    emit_c(f, '"');
    while (f->p < f->end && !f->failed) {
        unsigned char c = (unsigned char)*f->p;
        if (c == (unsigned char)q && (q == '"' || single_quote_closes(f->p, f->end))) {
            f->p++;
            emit_c(f, '"');
            return;
        }
        if (c == '\\') {
            if (f->p + 1 >= f->end) {
                emit(f, "\\\\", 2);
                f->p++;
                continue;
            }
            char e = f->p[1];
            if (e == '\'') {
                emit_c(f, '\'');
                f->p += 2;
            } else if (strchr("\"\\/bfnrt", e)) {
                emit(f, f->p, 2);
                f->p += 2;
            } else if (e == 'u' && f->end - f->p >= 6 && is_hex(f->p[2]) && is_hex(f->p[3]) &&
                       is_hex(f->p[4]) && is_hex(f->p[5])) {
                emit(f, f->p, 6);
                f->p += 6;
            } else { /* an escape JSON does not have: keep the backslash as text */
                emit(f, "\\\\", 2);
                f->p++;
            }
            continue;
        }
        if (c == '"') {
            emit(f, "\\\"", 2);
        } else if (c < 0x20) {
            char esc[8];
            if (c == '\n')
                emit(f, "\\n", 2);
            else if (c == '\t')
                emit(f, "\\t", 2);
            else if (c == '\r')
                emit(f, "\\r", 2);
            else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                emit(f, esc, 6);
            }
        } else {
            emit_c(f, (char)c);
        }
        f->p++;
    }
    emit_c(f, '"'); /* cut off inside the string */
}

/* A strict JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool strict_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n || !isdigit((unsigned char)s[i])) return false;
    if (s[i] == '0')
        i++;
    else
        while (i < n && isdigit((unsigned char)s[i])) i++;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !isdigit((unsigned char)s[i])) return false;
        while (i < n && isdigit((unsigned char)s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !isdigit((unsigned char)s[i])) return false;
        while (i < n && isdigit((unsigned char)s[i])) i++;
    }
    return i == n;
}

static void emit_quoted_raw(fixer *f, const char *s, size_t n)
{
    emit_c(f, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') emit_c(f, '\\');
        if (c < 0x20) continue;
        emit_c(f, (char)c);
    }
    emit_c(f, '"');
}

/* A number token: "+1" -> 1, ".5" -> 0.5, "1." -> 1.0; anything else that
 * is not a JSON number becomes a string. */
static void fix_number(fixer *f)
{
    const char *s = f->p;
    while (f->p < f->end && (isdigit((unsigned char)*f->p) || strchr("+-.eE", *f->p) != NULL) &&
           *f->p)
        f->p++;
    size_t n = (size_t)(f->p - s);
    fix_role role = prep(f);
    char tmp[72];
    size_t k = 0;
    if (n < 64) {
        size_t i = 0;
        if (s[i] == '+') i++;
        if (i < n && s[i] == '-') tmp[k++] = s[i++];
        if (i < n && s[i] == '.') tmp[k++] = '0';
        for (; i < n; i++) tmp[k++] = s[i];
        if (k && tmp[k - 1] == '.') tmp[k++] = '0';
    }
    if (role == ROLE_VALUE && n < 64 && strict_number(tmp, k))
        emit(f, tmp, k);
    else
        emit_quoted_raw(f, s, n);
    token_done(f, role);
}

static bool word_char(int c)
{
    return isalnum(c) || c == '_' || c == '$' || c == '-' || c >= 0x80;
}

/* A bare word: an unquoted key, a literal in any common spelling, or an
 * unquoted string value. */
static void fix_word(fixer *f)
{
    const char *s = f->p;
    while (f->p < f->end && word_char((unsigned char)*f->p)) f->p++;
    size_t n = (size_t)(f->p - s);
    fix_role role = prep(f);
    static const struct {
        const char *word, *json;
    } lits[] = {
        {"true", "true"},   {"True", "true"},     {"TRUE", "true"}, {"false", "false"},
        {"False", "false"}, {"FALSE", "false"},   {"null", "null"}, {"None", "null"},
        {"NULL", "null"},   {"Null", "null"},     {"nil", "null"},  {"undefined", "null"},
        {"NaN", "null"},    {"Infinity", "null"},
    };
    if (role == ROLE_VALUE) {
        for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
            if (strlen(lits[i].word) == n && !memcmp(lits[i].word, s, n)) {
                emit(f, lits[i].json, strlen(lits[i].json));
                token_done(f, role);
                return;
            }
        }
    }
    emit_quoted_raw(f, s, n);
    token_done(f, role);
}

static void skip_comment(fixer *f)
{
    if (f->p[0] == '#' || (f->p + 1 < f->end && f->p[1] == '/')) {
        while (f->p < f->end && *f->p != '\n') f->p++;
        return;
    }
    if (f->p + 1 < f->end && f->p[1] == '*') {
        const char *e = NULL;
        for (const char *q = f->p + 2; q + 1 < f->end; q++)
            if (q[0] == '*' && q[1] == '/') {
                e = q;
                break;
            }
        f->p = e ? e + 2 : f->end;
        return;
    }
    f->p++; /* a stray '/' */
}

static void fix_open(fixer *f, char c)
{
    fix_role role = prep(f);
    if (role == ROLE_KEY) { /* a container where a key belongs: give it an empty key */
        emit(f, "\"\":", 3);
        f->st[f->depth - 1] = ST_VALUE;
    }
    if (f->depth >= FIX_MAX_DEPTH) {
        f->failed = true;
        return;
    }
    emit_c(f, c);
    f->kind[f->depth] = c;
    f->st[f->depth] = c == '{' ? ST_KEY : ST_VALUE;
    f->depth++;
    f->p++;
}

static void fix_close(fixer *f, char c)
{
    f->p++;
    char want = c == '}' ? '{' : '[';
    int t = f->depth - 1;
    while (t >= 0 && f->kind[t] != want) t--;
    if (t < 0) return; /* closes nothing that is open: a stray */
    while (f->depth > t && !f->failed) close_top(f);
}

/* Repairs from start (a '{' or '[') into f->out; false when the result
 * overflowed or nested too deep. */
static bool fix_run(fixer *f, const char *start, const char *end)
{
    f->p = start;
    f->end = end;
    f->depth = 0;
    f->done = false;
    f->failed = false;
    qg_buf_reset(&f->out);
    while (f->p < f->end && !f->done && !f->failed) {
        char c = *f->p;
        if (c == '{' || c == '[')
            fix_open(f, c);
        else if (c == '}' || c == ']')
            fix_close(f, c);
        else if (c == '"' || c == '\'') {
            fix_role role = prep(f);
            fix_string(f);
            token_done(f, role);
        } else if (c == ',') {
            f->p++; /* deferred: prep writes it before the next item */
        } else if (c == ':') {
            f->p++;
            int t = f->depth - 1;
            if (t >= 0 && f->st[t] == ST_COLON) {
                emit_c(f, ':');
                f->st[t] = ST_VALUE;
            }
        } else if (c == '/' || c == '#') {
            skip_comment(f);
        } else if (isdigit((unsigned char)c) || c == '-' || c == '+' || c == '.') {
            fix_number(f);
        } else if (word_char((unsigned char)c)) {
            fix_word(f);
        } else {
            f->p++; /* whitespace and stray characters */
        }
    }
    while (f->depth > 0 && !f->failed) close_top(f);
    return !f->failed;
}

/* ---- candidates ---- */

/* The body of the first ``` fence holding a '{' or '[', else the whole
 * text. */
static void find_region(const char *text, size_t n, const char **rs, const char **re)
{
    const char *end = text + n;
    const char *p = text;
    while ((p = strstr(p, "```")) != NULL) {
        const char *body = p + 3;
        while (body < end && *body != '\n' && *body != '{' && *body != '[') body++;
        const char *close = strstr(body, "```");
        const char *bend = close ? close : end;
        for (const char *q = body; q < bend; q++) {
            if (*q == '{' || *q == '[') {
                *rs = body;
                *re = bend;
                return;
            }
        }
        if (!close) break;
        p = close + 3;
    }
    *rs = text;
    *re = end;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && isspace((unsigned char)*p)) p++;
    return p;
}

/* A start that looks like JSON rather than prose ("[see below]"). */
static bool looks_like_json(const char *p, const char *end)
{
    const char *q = skip_ws(p + 1, end);
    if (q >= end) return false;
    if (*p == '{') {
        if (*q == '"' || *q == '\'' || *q == '}') return true;
        const char *w = q;
        while (w < end && word_char((unsigned char)*w)) w++;
        return w > q && skip_ws(w, end) < end && *skip_ws(w, end) == ':';
    }
    return strchr("{[\"'-.]0123456789", *q) != NULL || !strncmp(q, "true", 4) ||
           !strncmp(q, "false", 5) || !strncmp(q, "null", 4);
}

static const char *to_arena(qg_arena *a, const cJSON *v, qg_error *err)
{
    char *s = qg_json_compact(v);
    if (!s) {
        qg_error_set(err, QG_ENOMEM, "jsonfix: out of memory");
        return NULL;
    }
    char *copy = qg_arena_strndup(a, s, strlen(s));
    cJSON_free(s);
    if (!copy) qg_error_set(err, QG_ENOMEM, "jsonfix: out of memory");
    return copy;
}

/* Parses buf[0..n) completely as an object or array. */
static cJSON *parse_container(const char *buf, size_t n)
{
    cJSON *v = cJSON_ParseWithLengthOpts(buf, n, NULL, false);
    if (v && !cJSON_IsObject(v) && !cJSON_IsArray(v)) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

qg_status qg_jsonfix_extract_value(const char *text, qg_arena *a, const char **json_out,
                                   cJSON **value_out, qg_error *err)
{
    *value_out = NULL;
    if (!text) return qg_error_set(err, QG_EINVAL, "answer: empty");
    size_t n = strlen(text);
    if (n > QG_JSONFIX_MAX_INPUT)
        return qg_error_set(err, QG_ERANGE, "answer: %zu bytes, longer than the %zu accepted", n,
                            QG_JSONFIX_MAX_INPUT);
    /* An answer that is exactly one JSON value (after whitespace) is taken
     * as it is: a ``` inside one of its strings is not a fence. */
    const char *vend = NULL;
    cJSON *whole = cJSON_ParseWithLengthOpts(text, n, &vend, false);
    if (whole && (cJSON_IsObject(whole) || cJSON_IsArray(whole)) && !*skip_ws(vend, text + n)) {
        const char *s = to_arena(a, whole, err);
        if (!s) {
            cJSON_Delete(whole);
            return QG_ENOMEM;
        }
        *json_out = s;
        *value_out = whole;
        return QG_OK;
    }
    cJSON_Delete(whole);
    const char *rs, *re;
    find_region(text, n, &rs, &re);

    /* Pass 1: starts that look like JSON, as they stand or repaired (an
     * inner "[1,2]" of a broken outer array must not win, so each start is
     * settled before the next). Pass 2: any start, repaired. */
    fixer f = {0};
    qg_buf_init(&f.out, 2 * (size_t)(re - rs) + 4 * FIX_MAX_DEPTH + 64);
    qg_status rc = QG_EINVAL;
    for (int pass = 1; pass <= 2 && rc; pass++) {
        int tries = 0;
        for (const char *p = rs; p < re && tries < FIX_MAX_STARTS; p++) {
            if (*p != '{' && *p != '[') continue;
            bool jsonish = looks_like_json(p, re);
            if (pass == 1 ? !jsonish : jsonish) continue;
            tries++;
            cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(re - p), NULL, false);
            if (!v && fix_run(&f, p, re) && f.out.len) v = parse_container(f.out.data, f.out.len);
            if (!v) continue;
            const char *s = to_arena(a, v, err);
            rc = s ? QG_OK : QG_ENOMEM;
            if (s) {
                *json_out = s;
                *value_out = v;
            } else {
                cJSON_Delete(v);
            }
            break;
        }
    }
    qg_buf_free(&f.out);
    if (rc == QG_EINVAL)
        qg_error_set(err, QG_EINVAL, "answer: no JSON object or array could be found or repaired");
    return rc;
}

qg_status qg_jsonfix_extract(const char *text, qg_arena *a, const char **json_out, qg_error *err)
{
    cJSON *v = NULL;
    qg_status rc = qg_jsonfix_extract_value(text, a, json_out, &v, err);
    cJSON_Delete(v);
    return rc;
}

/* ---- validation ---- */

#define PATH_MAX_LEN 256

typedef struct vctx {
    char path[PATH_MAX_LEN];
    size_t len;
    qg_error *err;
} vctx;

static size_t path_push_key(vctx *c, const char *key)
{
    size_t old = c->len;
    bool ident = key[0] && !isdigit((unsigned char)key[0]);
    for (const char *k = key; *k && ident; k++)
        if (!isalnum((unsigned char)*k) && *k != '_') ident = false;
    int w = ident ? snprintf(c->path + c->len, sizeof c->path - c->len, ".%s", key)
                  : snprintf(c->path + c->len, sizeof c->path - c->len, "[\"%s\"]", key);
    if (w > 0)
        c->len = c->len + (size_t)w < sizeof c->path ? c->len + (size_t)w : sizeof c->path - 1;
    return old;
}

static size_t path_push_index(vctx *c, int i)
{
    size_t old = c->len;
    int w = snprintf(c->path + c->len, sizeof c->path - c->len, "[%d]", i);
    if (w > 0)
        c->len = c->len + (size_t)w < sizeof c->path ? c->len + (size_t)w : sizeof c->path - 1;
    return old;
}

static void path_pop(vctx *c, size_t old)
{
    c->len = old;
    c->path[old] = 0;
}

static const char *type_of(const cJSON *v)
{
    if (cJSON_IsObject(v)) return "object";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        return isfinite(d) && d == floor(d) ? "integer" : "number";
    }
    return "invalid";
}

static bool type_matches(const cJSON *v, const char *t)
{
    const char *have = type_of(v);
    if (!strcmp(t, have)) return true;
    return !strcmp(t, "number") && !strcmp(have, "integer");
}

/* The value as short JSON text for a message. */
static void short_json(const cJSON *v, char *out, size_t cap)
{
    char *s = qg_json_compact(v);
    if (!s) {
        snprintf(out, cap, "?");
        return;
    }
    if (strlen(s) > 60)
        snprintf(out, cap, "%.57s...", s);
    else
        snprintf(out, cap, "%s", s);
    cJSON_free(s);
}

static qg_status vfail(vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static qg_status vfail(vctx *c, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qg_error_set(c->err, QG_EINVAL, "%s: %s", c->path, msg);
}

static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static qg_status validate_node(vctx *c, const cJSON *v, const cJSON *sch);

static qg_status check_type(vctx *c, const cJSON *v, const cJSON *t)
{
    if (!t) return QG_OK;
    char want[128] = "";
    if (cJSON_IsString(t)) {
        if (type_matches(v, t->valuestring)) return QG_OK;
        snprintf(want, sizeof want, "%s", t->valuestring);
    } else if (cJSON_IsArray(t)) {
        const cJSON *e;
        size_t w = 0;
        cJSON_ArrayForEach(e, t)
        {
            if (!cJSON_IsString(e)) continue;
            if (type_matches(v, e->valuestring)) return QG_OK;
            int k = snprintf(want + w, sizeof want - w, "%s%s", w ? " or " : "", e->valuestring);
            if (k > 0 && w + (size_t)k < sizeof want) w += (size_t)k;
        }
    } else {
        return QG_OK;
    }
    return vfail(c, "expected %s, got %s", want, type_of(v));
}

static qg_status check_enum(vctx *c, const cJSON *v, const cJSON *en)
{
    if (!cJSON_IsArray(en)) return QG_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, en)
    {
        if (cJSON_Compare(v, e, true)) return QG_OK;
    }
    char list[256] = "", one[72], have[72];
    size_t w = 0;
    cJSON_ArrayForEach(e, en)
    {
        if (cJSON_IsString(e))
            snprintf(one, sizeof one, "%s", e->valuestring);
        else
            short_json(e, one, sizeof one);
        int k = snprintf(list + w, sizeof list - w, "%s%s", w ? ", " : "", one);
        if (k < 0 || w + (size_t)k >= sizeof list) break;
        w += (size_t)k;
    }
    short_json(v, have, sizeof have);
    return vfail(c, "%s is not one of %s", have, list);
}

static qg_status check_number(vctx *c, const cJSON *v, const cJSON *sch)
{
    if (!cJSON_IsNumber(v)) return QG_OK;
    double d = v->valuedouble;
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "minimum")) && cJSON_IsNumber(k) &&
        d < k->valuedouble)
        return vfail(c, "%g is below the minimum %g", d, k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "maximum")) && cJSON_IsNumber(k) &&
        d > k->valuedouble)
        return vfail(c, "%g is above the maximum %g", d, k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "exclusiveMinimum")) && cJSON_IsNumber(k) &&
        d <= k->valuedouble)
        return vfail(c, "%g must be greater than %g", d, k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "exclusiveMaximum")) && cJSON_IsNumber(k) &&
        d >= k->valuedouble)
        return vfail(c, "%g must be less than %g", d, k->valuedouble);
    return QG_OK;
}

static qg_status check_string(vctx *c, const cJSON *v, const cJSON *sch)
{
    if (!cJSON_IsString(v)) return QG_OK;
    size_t n = utf8_len(v->valuestring);
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "minLength")) && cJSON_IsNumber(k) &&
        (double)n < k->valuedouble)
        return vfail(c, "%zu characters, fewer than the minimum %g", n, k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "maxLength")) && cJSON_IsNumber(k) &&
        (double)n > k->valuedouble)
        return vfail(c, "%zu characters, more than the maximum %g", n, k->valuedouble);
    return QG_OK;
}

static qg_status check_array(vctx *c, const cJSON *v, const cJSON *sch)
{
    if (!cJSON_IsArray(v)) return QG_OK;
    int n = cJSON_GetArraySize(v);
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "minItems")) && cJSON_IsNumber(k) &&
        n < k->valuedouble)
        return vfail(c, "%d items, fewer than the minimum %g", n, k->valuedouble);
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "maxItems")) && cJSON_IsNumber(k) &&
        n > k->valuedouble)
        return vfail(c, "%d items, more than the maximum %g", n, k->valuedouble);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(sch, "items");
    if (!cJSON_IsObject(items)) return QG_OK;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        size_t old = path_push_index(c, i++);
        qg_status rc = validate_node(c, e, items);
        path_pop(c, old);
        if (rc) return rc;
    }
    return QG_OK;
}

static qg_status check_object(vctx *c, const cJSON *v, const cJSON *sch)
{
    if (!cJSON_IsObject(v)) return QG_OK;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(sch, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(sch, "required");
    const cJSON *e;
    if (cJSON_IsArray(req)) {
        cJSON_ArrayForEach(e, req)
        {
            if (!cJSON_IsString(e) || cJSON_GetObjectItemCaseSensitive(v, e->valuestring)) continue;
            size_t old = path_push_key(c, e->valuestring);
            qg_status rc = vfail(c, "required property missing");
            path_pop(c, old);
            return rc;
        }
    }
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(sch, "additionalProperties");
    cJSON_ArrayForEach(e, v)
    {
        const cJSON *ps =
            cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, e->string) : NULL;
        size_t old = path_push_key(c, e->string);
        qg_status rc = QG_OK;
        if (ps) {
            rc = validate_node(c, e, ps);
        } else if (cJSON_IsFalse(addl)) {
            char allowed[200] = "";
            size_t w = 0;
            const cJSON *p;
            cJSON_ArrayForEach(p, props)
            {
                int k = snprintf(allowed + w, sizeof allowed - w, "%s%s", w ? ", " : "", p->string);
                if (k < 0 || w + (size_t)k >= sizeof allowed) break;
                w += (size_t)k;
            }
            rc = vfail(c, "property not allowed (allowed: %s)", w ? allowed : "none");
        } else if (cJSON_IsObject(addl)) {
            rc = validate_node(c, e, addl);
        }
        path_pop(c, old);
        if (rc) return rc;
    }
    return QG_OK;
}

static qg_status validate_node(vctx *c, const cJSON *v, const cJSON *sch)
{
    if (!cJSON_IsObject(sch)) return QG_OK;
    qg_status rc = check_type(c, v, cJSON_GetObjectItemCaseSensitive(sch, "type"));
    if (rc) return rc;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(sch, "const");
    if (k && !cJSON_Compare(v, k, true)) {
        char want[72];
        short_json(k, want, sizeof want);
        return vfail(c, "must be %s", want);
    }
    if ((rc = check_enum(c, v, cJSON_GetObjectItemCaseSensitive(sch, "enum")))) return rc;
    if ((rc = check_number(c, v, sch))) return rc;
    if ((rc = check_string(c, v, sch))) return rc;
    if ((rc = check_array(c, v, sch))) return rc;
    return check_object(c, v, sch);
}

qg_status qg_jsonfix_validate(const cJSON *value, const char *schema_json, qg_error *err)
{
    if (!schema_json) return QG_OK;
    cJSON *sch = cJSON_Parse(schema_json);
    if (!cJSON_IsObject(sch)) {
        cJSON_Delete(sch);
        return qg_error_set(err, QG_EINVAL, "expected shape: not a JSON object");
    }
    vctx c = {.path = "$", .len = 1, .err = err};
    qg_status rc = validate_node(&c, value, sch);
    cJSON_Delete(sch);
    return rc;
}

qg_status qg_jsonfix_parse_value(const char *text, const char *schema_json, qg_arena *a,
                                 const char **json_out, cJSON **value_out, qg_error *err)
{
    const char *json = NULL;
    cJSON *v = NULL;
    qg_status rc = qg_jsonfix_extract_value(text, a, &json, &v, err);
    if (!rc && schema_json) rc = qg_jsonfix_validate(v, schema_json, err);
    if (!rc) {
        *json_out = json;
        if (value_out) {
            *value_out = v;
            v = NULL;
        }
    }
    cJSON_Delete(v);
    return rc;
}

qg_status qg_jsonfix_parse(const char *text, const char *schema_json, qg_arena *a,
                           const char **json_out, qg_error *err)
{
    return qg_jsonfix_parse_value(text, schema_json, a, json_out, NULL, err);
}
