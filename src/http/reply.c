/*
 * reply.c - the reply helpers and request helpers every handler uses.
 *
 * Replies: each qg_reply_* call replaces whatever reply was there before
 * (r->out is reset, status and type are overwritten), so a handler may
 * start a success reply and still turn it into an error. Error bodies are
 * always built with cJSON so messages holding quotes or control characters
 * stay valid JSON. Statuses that are bugs (500) never show their message to
 * the client: it goes to the log with the request id, and the client gets
 * the id to quote.
 *
 * Request helpers parse lazily and cache what they parsed on the request
 * (the JSON tree in r->body_json, the connection in r->db); the dispatcher
 * frees both after the handler returns.
 */
#include "http/app.h"
#include "http/handlers_int.h"
#include "http/http.h"

#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Used when the dispatcher did not size r->out (tests, early errors). */
#define QG_REPLY_DEFAULT_MAX (64u << 20)

const char *qg_method_name(int method)
{
    switch (method) {
    case QG_GET:
        return "GET";
    case QG_POST:
        return "POST";
    case QG_PUT:
        return "PUT";
    case QG_PATCH:
        return "PATCH";
    case QG_DELETE:
        return "DELETE";
    case QG_HEAD:
        return "HEAD";
    case QG_OPTIONS:
        return "OPTIONS";
    }
    return "?";
}

/* Empties r->out (sizing it first if nobody did) and clears error_code. */
static void reply_start(qg_req *r, int status, const char *type)
{
    if (r->out.max == 0 && r->out.data == NULL) qg_buf_init(&r->out, QG_REPLY_DEFAULT_MAX);
    qg_buf_reset(&r->out);
    r->status = status;
    r->out_type = type;
    r->error_code = NULL;
}

/* The last resort when even an error body cannot be written. */
static void reply_plain_internal(qg_req *r)
{
    static const char body[] = "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}";
    reply_start(r, 500, "application/json");
    r->error_code = "internal";
    (void)qg_buf_append(&r->out, body, sizeof body - 1);
}

void qg_reply_raw(qg_req *r, int status, const char *type, const char *data, size_t n)
{
    reply_start(r, status, type);
    qg_status rc = qg_buf_append(&r->out, data, n);
    if (rc) {
        qg_err("request %s: response of %zu bytes does not fit (%s)",
               r->request_id ? r->request_id : "-", n, qg_status_name(rc));
        qg_reply_error(r, 500, "internal", "internal error (request %s): response too large",
                       r->request_id ? r->request_id : "-");
    }
}

void qg_reply_empty(qg_req *r, int status)
{
    reply_start(r, status, NULL);
}

void qg_reply_json(qg_req *r, int status, cJSON *body)
{
    char *text = body ? qg_json_compact(body) : NULL;
    cJSON_Delete(body);
    if (!text) {
        qg_err("request %s: could not serialise the response", r->request_id ? r->request_id : "-");
        reply_plain_internal(r);
        return;
    }
    qg_reply_raw(r, status, "application/json", text, strlen(text));
    free(text);
}

void qg_reply_error(qg_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[QG_ERROR_MSG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    char *text = qg_json_compact(root);
    cJSON_Delete(root);
    if (!text) {
        reply_plain_internal(r);
        return;
    }
    reply_start(r, status, "application/json");
    if (qg_buf_append(&r->out, text, strlen(text))) {
        free(text);
        reply_plain_internal(r);
        return;
    }
    free(text);
    /* Codes are normally literals; the copy keeps the access log safe anyway. */
    char *c = qg_arena_strndup(&r->arena, code, strlen(code));
    r->error_code = c ? c : "internal";
}

/* How a status that is the client's doing is answered; the rest are 500. */
static const struct {
    qg_status rc;
    int http;
    const char *code, *fallback; /* the message when err has none */
} status_replies[] = {
    {QG_EINVAL, 400, "validation_failed", "invalid request"},
    {QG_ENOTFOUND, 404, "not_found", "not found"},
    {QG_EDENIED, 403, "forbidden", "not allowed"},
    {QG_EEXIST, 409, "conflict", "already exists"},
    {QG_ERANGE, 413, "payload_too_large", "too large"},
    {QG_EAGAIN, 503, "unavailable", "try again later"},
};

void qg_reply_status(qg_req *r, qg_status rc, const qg_error *err)
{
    const char *msg = err && err->msg[0] ? err->msg : NULL;
    for (size_t i = 0; i < sizeof status_replies / sizeof status_replies[0]; i++) {
        if (status_replies[i].rc != rc) continue;
        qg_reply_error(r, status_replies[i].http, status_replies[i].code, "%s",
                       msg ? msg : status_replies[i].fallback);
        return;
    }
    const char *id = r->request_id ? r->request_id : "-";
    qg_err("request %s: %s %s: %s: %s", id, qg_method_name(r->method), r->path ? r->path : "",
           qg_status_name(rc), msg ? msg : "(no message)");
    qg_reply_error(r, 500, "internal", "internal error (request %s)", id);
}

void qg_reply_header(qg_req *r, const char *name, const char *value)
{
    if (r->nhdr >= QG_MAX_RESP_HEADERS) {
        qg_warn("request %s: response header '%s' dropped (more than %d)",
                r->request_id ? r->request_id : "-", name, QG_MAX_RESP_HEADERS);
        return;
    }
    char *n = qg_arena_strndup(&r->arena, name, strlen(name));
    char *v = qg_arena_strndup(&r->arena, value, strlen(value));
    if (!n || !v) return;
    r->hdr_name[r->nhdr] = n;
    r->hdr_value[r->nhdr] = v;
    r->nhdr++;
}

/* ---- request helpers ---- */

/* 1-based line and column (in bytes) of pos within s. */
static void line_col(const char *s, const char *pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (const char *p = s; p < pos; p++) {
        if (*p == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

cJSON *qg_req_json(qg_req *r)
{
    if (r->body_json) return r->body_json;
    const char *body = r->body ? r->body : "";
    size_t n = r->body ? r->body_len : 0;
    size_t i = 0;
    while (i < n && strchr(" \t\r\n", body[i])) i++;
    if (i == n) {
        qg_reply_error(r, 400, "validation_failed", "request body: expected a JSON object");
        return NULL;
    }
    /* A NUL inside the body would end the parse early and hide the rest. */
    size_t text_len = strnlen(body, n);
    if (text_len < n) {
        int line, col;
        line_col(body, body + text_len, &line, &col);
        qg_reply_error(r, 400, "invalid_json", "invalid JSON at line %d, column %d", line, col);
        return NULL;
    }
    const char *end = NULL;
    /* The length includes the NUL: cJSON's trailing-garbage check wants to
     * see it. */
    cJSON *doc = cJSON_ParseWithLengthOpts(body, n + 1, &end, true);
    if (!doc) {
        int line, col;
        line_col(body, end && end >= body && end <= body + n ? end : body + n, &line, &col);
        qg_reply_error(r, 400, "invalid_json", "invalid JSON at line %d, column %d", line, col);
        return NULL;
    }
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        qg_reply_error(r, 400, "validation_failed", "request body: expected a JSON object");
        return NULL;
    }
    r->body_json = doc;
    return doc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) ('+' is a space, %XX a byte) into the arena. A broken or
 * %00 escape is kept literally so the result stays one C string. */
static char *query_decode(qg_arena *a, const char *s, size_t n)
{
    char *out = qg_arena_alloc(a, n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0 &&
                   (hexval(s[i + 1]) | hexval(s[i + 2])) != 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

const char *qg_req_header(const qg_req *r, const char *name)
{
    for (int i = 0; i < r->nxhdr; i++)
        if (strcasecmp(r->xhdr_name[i], name) == 0) return r->xhdr_value[i];
    return NULL;
}

const char *qg_req_query(qg_req *r, const char *name)
{
    const char *q = r->query ? r->query : "";
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        if (klen > 0) {
            char *key = query_decode(&r->arena, q, klen);
            if (key && strcmp(key, name) == 0) {
                if (!eq) return "";
                return query_decode(&r->arena, eq + 1, len - klen - 1);
            }
        }
        if (!amp) break;
        q = amp + 1;
    }
    return NULL;
}

qg_conn *qg_req_db(qg_req *r)
{
    if (r->db) return r->db;
    qg_error err = {0};
    qg_status rc = qg_store_acquire(r->app->store, &r->db, &err);
    if (rc) {
        r->db = NULL;
        qg_err("request %s: database unavailable: %s", r->request_id ? r->request_id : "-",
               err.msg);
        qg_reply_error(r, 503, "unavailable", "database unavailable");
        return NULL;
    }
    return r->db;
}

/* The field, with JSON null treated as absent. When it is absent, *ok says
 * whether that is fine: a required field has been answered 400. */
static const cJSON *field_get(qg_req *r, const cJSON *obj, const char *name, bool required,
                              bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *ok = true;
    if (v && !cJSON_IsNull(v)) return v;
    if (required) {
        qg_reply_error(r, 400, "validation_failed", "field '%s': is required", name);
        *ok = false;
    }
    return NULL;
}

bool qg_field_str(qg_req *r, const cJSON *obj, const char *name, bool required, size_t max_len,
                  const char **out)
{
    bool ok;
    const cJSON *v = field_get(r, obj, name, required, &ok);
    if (!v) return ok;
    if (!cJSON_IsString(v) || !v->valuestring) {
        qg_reply_error(r, 400, "validation_failed", "field '%s': expected a string", name);
        return false;
    }
    if (max_len && strlen(v->valuestring) > max_len) {
        qg_reply_error(r, 400, "validation_failed", "field '%s': must be at most %zu characters",
                       name, max_len);
        return false;
    }
    *out = v->valuestring;
    return true;
}

/* %g without the exponent's '+' and leading zeros: 1e12, 1e-5, 0.5. */
static void fmt_num(double x, char *out, size_t cap)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%g", x);
    char *e = strchr(tmp, 'e');
    if (!e) {
        snprintf(out, cap, "%s", tmp);
        return;
    }
    char *p = e + 1;
    char sign = 0;
    if (*p == '+' || *p == '-') sign = *p++;
    while (*p == '0' && p[1]) p++;
    *e = '\0';
    snprintf(out, cap, "%se%s%s", tmp, sign == '-' ? "-" : "", p);
}

bool qg_field_num(qg_req *r, const cJSON *obj, const char *name, bool required, double min,
                  double max, double *out)
{
    bool ok;
    const cJSON *v = field_get(r, obj, name, required, &ok);
    if (!v) return ok;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        qg_reply_error(r, 400, "validation_failed", "field '%s': expected a number", name);
        return false;
    }
    if (v->valuedouble < min || v->valuedouble > max) {
        char lo[32], hi[32];
        fmt_num(min, lo, sizeof lo);
        fmt_num(max, hi, sizeof hi);
        qg_reply_error(r, 400, "validation_failed", "field '%s': must be between %s and %s", name,
                       lo, hi);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

bool qg_field_bool(qg_req *r, const cJSON *obj, const char *name, bool required, bool *out)
{
    bool ok;
    const cJSON *v = field_get(r, obj, name, required, &ok);
    if (!v) return ok;
    if (!cJSON_IsBool(v)) {
        qg_reply_error(r, 400, "validation_failed", "field '%s': expected true or false", name);
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

cJSON *qg_json_time(int64_t ms)
{
    if (ms == 0) return cJSON_CreateNull();
    char buf[40];
    qg_time_format_iso(ms, buf, sizeof buf);
    return cJSON_CreateString(buf);
}

/* ---- shared by the handlers (handlers_int.h) ---- */

bool qg_req_limit(qg_req *r, int def, int max, int *out)
{
    const char *s = qg_req_query(r, "limit");
    if (!s) {
        *out = def;
        return true;
    }
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > max) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'limit': must be an integer between 1 and %d", max);
        return false;
    }
    *out = (int)v;
    return true;
}

cJSON *qg_user_json(const qg_user *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", u->id);
    cJSON_AddStringToObject(o, "email", u->email);
    cJSON_AddStringToObject(o, "role", qg_role_name(u->role));
    cJSON_AddBoolToObject(o, "approved", u->approved);
    cJSON_AddBoolToObject(o, "disabled", u->disabled);
    cJSON_AddBoolToObject(o, "password_change_required", u->must_change_password);
    cJSON_AddItemToObject(o, "created_at", qg_json_time(u->created_at));
    return o;
}

void qg_reply_list(qg_req *r, cJSON *items, const char *next)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "items", items);
    if (next)
        cJSON_AddStringToObject(o, "next", next);
    else
        cJSON_AddNullToObject(o, "next");
    qg_reply_json(r, 200, o);
}

bool qg_json_str_or_null(cJSON *obj, const char *name, const char *s)
{
    return (s ? cJSON_AddStringToObject(obj, name, s) : cJSON_AddNullToObject(obj, name)) != NULL;
}

void qg_json_timeframe(cJSON *obj, const char *name, int64_t tf_ms)
{
    char text[16];
    if (tf_ms > 0) {
        qg_timeframe_format(tf_ms, text, sizeof text);
        cJSON_AddStringToObject(obj, name, text);
    } else {
        cJSON_AddNullToObject(obj, name);
    }
}

bool qg_reply_unless_ok(qg_req *r, qg_status rc, const qg_error *err, const char *what,
                        const char *id)
{
    if (rc == QG_OK) return true;
    if (rc == QG_ENOTFOUND)
        qg_reply_error(r, 404, "not_found", "%s '%s' not found", what, id);
    else
        qg_reply_status(r, rc, err);
    return false;
}

bool qg_page_take(qg_page *p, const char *id)
{
    if (p->n == p->limit) {
        p->n = p->limit + 1;
        return false;
    }
    snprintf(p->last, sizeof p->last, "%s", id);
    p->n++;
    return true;
}

const char *qg_page_next(const qg_page *p)
{
    return p->n > p->limit ? p->last : NULL;
}

typedef struct own_page {
    qg_page *page;
    cJSON *(*row_json)(const qg_row *row);
} own_page;

static qg_status own_page_row(void *ud, const qg_row *row)
{
    own_page *c = ud;
    if (qg_page_take(c->page, qg_row_text(row, 0)))
        cJSON_AddItemToArray(c->page->items, c->row_json(row));
    return QG_OK;
}

bool qg_req_own_page(qg_req *r, const char *sql, cJSON *(*row_json)(const qg_row *row),
                     qg_page *out)
{
    int limit;
    if (!qg_req_limit(r, QG_LIST_DEFAULT, QG_LIST_MAX, &limit)) return false;
    const char *before = qg_req_query(r, "before");
    qg_conn *db = qg_req_db(r);
    if (!db) return false;
    *out = (qg_page){.items = cJSON_CreateArray(), .limit = limit};
    own_page c = {out, row_json};
    qg_error err = {0};
    const qg_val p[] = {QG_VTEXT(r->who.user.id), QG_VTEXT(before), QG_VTEXT(before),
                        QG_VINT(limit + 1)};
    qg_status rc = qg_conn_query(db, sql, p, 4, own_page_row, &c, &err);
    if (rc) {
        cJSON_Delete(out->items);
        out->items = NULL;
        qg_reply_status(r, rc, &err);
        return false;
    }
    return true;
}

typedef struct own_row {
    qg_row_fn row;
    void *ud;
    bool found;
} own_row;

static qg_status own_row_cb(void *ud, const qg_row *row)
{
    own_row *c = ud;
    c->found = true;
    return c->row ? c->row(c->ud, row) : QG_OK;
}

bool qg_req_own_row(qg_req *r, const char *sql, const char *what, const char *id, qg_row_fn row,
                    void *ud)
{
    qg_conn *db = qg_req_db(r);
    if (!db) return false;
    own_row c = {row, ud, false};
    qg_error err = {0};
    const qg_val p[] = {QG_VTEXT(id), QG_VTEXT(r->who.user.id)};
    qg_status rc = qg_conn_query(db, sql, p, 2, own_row_cb, &c, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return false;
    }
    if (!c.found) {
        qg_reply_error(r, 404, "not_found", "%s '%.64s' not found", what, id);
        return false;
    }
    return true;
}

bool qg_field_credentials(qg_req *r, const cJSON *body, const char **email, const char **password)
{
    return qg_field_str(r, body, "email", true, QG_EMAIL_MAX, email) &&
           qg_field_str(r, body, "password", true, QG_PASSWORD_FIELD_MAX, password);
}

void qg_reply_user_create(qg_req *r, const char *email, const char *password, qg_role role,
                          bool approved)
{
    qg_error err = {0};
    qg_status rc = qg_password_check_policy(password, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_user u;
    rc = qg_user_create(db, email, password, role, approved, &u, &err);
    if (rc == QG_EEXIST) {
        qg_reply_error(r, 409, "conflict", "email already registered");
        return;
    }
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    r->audit_target = qg_arena_strndup(&r->arena, u.id, strlen(u.id));
    qg_reply_json(r, 201, qg_user_json(&u));
}
