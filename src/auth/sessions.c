/*
 * sessions.c - refresh tokens (sessions) and machine API tokens.
 *
 * Both are 32 random bytes shown to their owner once; the database holds only
 * their SHA-256, looked up through a UNIQUE index, so a stolen database dump
 * cannot be replayed. A refresh token is single-use: rotation revokes it and
 * issues the next one in one transaction, so two concurrent refreshes with
 * the same token cannot both succeed (the revoke only changes a row that is
 * still unrevoked).
 */
#include "auth/auth.h"

#include <quantgate/time.h>

#include <sodium.h>

#include <stdio.h>
#include <string.h>

#define QG_REFRESH_PREFIX "rt_"
#define QG_MACHINE_PREFIX "qg_"
#define QG_TOKEN_BODY_LEN 43

/* True when s is prefix + 43 base64url characters. */
static bool token_shape(const char *s, const char *prefix)
{
    size_t pn = strlen(prefix);
    if (!s || strncmp(s, prefix, pn) != 0) return false;
    size_t n = 0;
    for (const char *p = s + pn; *p; p++, n++) {
        char ch = *p;
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
        if (!ok || n >= QG_TOKEN_BODY_LEN) return false;
    }
    return n == QG_TOKEN_BODY_LEN;
}

/* ---- refresh tokens ---- */

static qg_status session_insert(qg_conn *c, const char *user_id, int64_t ttl_s, char *out,
                                qg_error *err)
{
    char token[QG_TOKEN_MAX], hash[65], id[QG_ID_MAX];
    if (ttl_s <= 0) return qg_error_set(err, QG_EINVAL, "refresh token lifetime must be > 0");
    qg_token_random(QG_REFRESH_PREFIX, token, sizeof token);
    qg_token_hash(token, hash);
    qg_store_new_id("ses", id, sizeof id);
    int64_t now = qg_time_now_ms();
    qg_val p[] = {QG_VTEXT(id), QG_VTEXT(user_id), QG_VTEXT(hash), QG_VINT(now),
                  QG_VINT(now + ttl_s * 1000)};
    qg_status rc = qg_conn_exec(c,
                                "INSERT INTO sessions (id, user_id, token_hash, created_at, "
                                "expires_at) VALUES (?, ?, ?, ?, ?)",
                                p, 5, NULL, err);
    if (rc == QG_OK) memcpy(out, token, strlen(token) + 1);
    sodium_memzero(token, sizeof token);
    return rc;
}

qg_status qg_session_create(qg_conn *c, const char *user_id, int64_t ttl_s, char *out,
                            qg_error *err)
{
    return session_insert(c, user_id, ttl_s, out, err);
}

typedef struct {
    bool found;
    char id[QG_ID_MAX];
    char user_id[QG_ID_MAX];
    int64_t expires_at;
    bool revoked;
} session_row;

static qg_status session_from_row(void *ud, const qg_row *r)
{
    session_row *s = ud;
    s->found = true;
    snprintf(s->id, sizeof s->id, "%s", qg_row_text(r, 0) ? qg_row_text(r, 0) : "");
    snprintf(s->user_id, sizeof s->user_id, "%s", qg_row_text(r, 1) ? qg_row_text(r, 1) : "");
    s->expires_at = qg_row_int(r, 2);
    s->revoked = !qg_row_is_null(r, 3);
    return QG_OK;
}

/* Finds the live session for a plain token and marks it revoked. */
static qg_status session_consume(qg_conn *c, const char *token, session_row *s, qg_error *err)
{
    char hash[65];
    memset(s, 0, sizeof *s);
    if (!token_shape(token, QG_REFRESH_PREFIX))
        return qg_error_set(err, QG_EDENIED, "unknown refresh token");
    qg_token_hash(token, hash);
    qg_val p[] = {QG_VTEXT(hash)};
    qg_status rc = qg_conn_query(
        c, "SELECT id, user_id, expires_at, revoked_at FROM sessions WHERE token_hash = ?", p, 1,
        session_from_row, s, err);
    if (rc) return rc;
    if (!s->found) return qg_error_set(err, QG_EDENIED, "unknown refresh token");
    if (s->revoked) return qg_error_set(err, QG_EDENIED, "refresh token revoked");
    int64_t now = qg_time_now_ms();
    if (s->expires_at <= now) return qg_error_set(err, QG_EDENIED, "refresh token expired");
    qg_val u[] = {QG_VINT(now), QG_VTEXT(s->id)};
    int64_t changes = 0;
    rc = qg_conn_exec(c, "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                      u, 2, &changes, err);
    if (rc) return rc;
    /* Someone else used it between the read and the write. */
    if (changes != 1) return qg_error_set(err, QG_EDENIED, "refresh token revoked");
    return QG_OK;
}

qg_status qg_session_rotate(qg_conn *c, const char *token, int64_t ttl_s, char *new_out,
                            char user_id_out[QG_ID_MAX], qg_error *err)
{
    session_row s;
    qg_status rc = qg_conn_begin(c, err);
    if (rc) return rc;
    if ((rc = session_consume(c, token, &s, err))) goto fail;
    if ((rc = session_insert(c, s.user_id, ttl_s, new_out, err))) goto fail;
    if ((rc = qg_conn_commit(c, err))) goto fail;
    if (user_id_out) memcpy(user_id_out, s.user_id, QG_ID_MAX);
    return QG_OK;
fail:
    qg_conn_rollback(c);
    if (new_out) new_out[0] = '\0';
    return rc;
}

qg_status qg_session_revoke(qg_conn *c, const char *token, char user_id_out[QG_ID_MAX],
                            qg_error *err)
{
    session_row s;
    char hash[65];
    if (!token_shape(token, QG_REFRESH_PREFIX))
        return qg_error_set(err, QG_EDENIED, "unknown refresh token");
    qg_token_hash(token, hash);
    qg_val p[] = {QG_VTEXT(hash)};
    memset(&s, 0, sizeof s);
    qg_status rc = qg_conn_query(
        c, "SELECT id, user_id, expires_at, revoked_at FROM sessions WHERE token_hash = ?", p, 1,
        session_from_row, &s, err);
    if (rc) return rc;
    if (!s.found) return qg_error_set(err, QG_EDENIED, "unknown refresh token");
    qg_val u[] = {QG_VINT(qg_time_now_ms()), QG_VTEXT(s.id)};
    int64_t changes = 0;
    rc = qg_conn_exec(c, "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                      u, 2, &changes, err);
    if (rc) return rc;
    if (changes != 1) return qg_error_set(err, QG_EDENIED, "refresh token already revoked");
    if (user_id_out) memcpy(user_id_out, s.user_id, QG_ID_MAX);
    return QG_OK;
}

/* ---- machine API tokens ---- */

const char *qg_scope_name(qg_scope s)
{
    return s == QG_SCOPE_WRITE ? "write" : s == QG_SCOPE_READ ? "read" : "none";
}

int qg_scope_parse(const char *s)
{
    if (!s) return 0;
    if (strcmp(s, "read") == 0) return QG_SCOPE_READ;
    if (strcmp(s, "write") == 0) return QG_SCOPE_WRITE;
    return 0;
}

bool qg_api_token_looks_like(const char *token)
{
    return token_shape(token, QG_MACHINE_PREFIX);
}

#define TOKEN_COLS "id, user_id, name, prefix, scope, created_at, last_used_at"

static void api_token_from_row(const qg_row *r, qg_api_token *t)
{
    memset(t, 0, sizeof *t);
    const char *s;
    if ((s = qg_row_text(r, 0))) snprintf(t->id, sizeof t->id, "%s", s);
    if ((s = qg_row_text(r, 1))) snprintf(t->user_id, sizeof t->user_id, "%s", s);
    if ((s = qg_row_text(r, 2))) snprintf(t->name, sizeof t->name, "%s", s);
    if ((s = qg_row_text(r, 3))) snprintf(t->prefix, sizeof t->prefix, "%s", s);
    t->scope = (qg_scope)qg_scope_parse(qg_row_text(r, 4));
    t->created_at = qg_row_int(r, 5);
    t->last_used_at = qg_row_is_null(r, 6) ? 0 : qg_row_int(r, 6);
}

static qg_status check_token_name(const char *name, qg_error *err)
{
    if (!name || !*name) return qg_error_set(err, QG_EINVAL, "field 'name': must not be empty");
    size_t n = strnlen(name, 65);
    if (n > 64) return qg_error_set(err, QG_EINVAL, "field 'name': longer than 64 characters");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f)
            return qg_error_set(err, QG_EINVAL, "field 'name': control characters are not allowed");
    }
    return QG_OK;
}

qg_status qg_api_token_create(qg_conn *c, const char *user_id, const char *name, qg_scope scope,
                              qg_api_token *out, char *plain_out, qg_error *err)
{
    qg_status rc = check_token_name(name, err);
    if (rc) return rc;
    if (scope != QG_SCOPE_READ && scope != QG_SCOPE_WRITE)
        return qg_error_set(err, QG_EINVAL, "field 'scope': must be read or write");
    char token[QG_TOKEN_MAX], hash[65];
    qg_api_token t = {.scope = scope, .created_at = qg_time_now_ms()};
    qg_store_new_id("tok", t.id, sizeof t.id);
    snprintf(t.user_id, sizeof t.user_id, "%s", user_id);
    snprintf(t.name, sizeof t.name, "%s", name);
    qg_token_random(QG_MACHINE_PREFIX, token, sizeof token);
    snprintf(t.prefix, sizeof t.prefix, "%.7s", token);
    qg_token_hash(token, hash);
    qg_val p[] = {QG_VTEXT(t.id),       QG_VTEXT(user_id), QG_VTEXT(t.name),
                  QG_VTEXT(t.prefix),   QG_VTEXT(hash),    QG_VTEXT(qg_scope_name(scope)),
                  QG_VINT(t.created_at)};
    rc = qg_conn_exec(c,
                      "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, scope, "
                      "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      p, 7, NULL, err);
    if (rc == QG_OK) {
        if (out) *out = t;
        memcpy(plain_out, token, strlen(token) + 1);
    }
    sodium_memzero(token, sizeof token);
    return rc;
}

typedef struct {
    qg_api_token *t;
    bool found;
} token_one;

static qg_status token_one_row(void *ud, const qg_row *r)
{
    token_one *o = ud;
    api_token_from_row(r, o->t);
    o->found = true;
    return QG_OK;
}

#define QG_TOKEN_LAST_USED_GRAIN_MS 60000

qg_status qg_api_token_resolve(qg_conn *c, const char *plain, qg_api_token *out, qg_error *err)
{
    char hash[65];
    qg_api_token tmp;
    token_one o = {.t = out ? out : &tmp};
    if (!qg_api_token_looks_like(plain)) return qg_error_set(err, QG_EDENIED, "unknown API token");
    qg_token_hash(plain, hash);
    qg_val p[] = {QG_VTEXT(hash)};
    qg_status rc = qg_conn_query(
        c, "SELECT " TOKEN_COLS " FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL", p,
        1, token_one_row, &o, err);
    if (rc) return rc;
    if (!o.found) return qg_error_set(err, QG_EDENIED, "unknown or revoked API token");
    int64_t now = qg_time_now_ms();
    /* last_used_at is kept to the minute: a write on every request would
     * put a commit on the path of every scripted call. A failure here must
     * not fail the request. */
    if (now - o.t->last_used_at < QG_TOKEN_LAST_USED_GRAIN_MS) return QG_OK;
    qg_val u[] = {QG_VINT(now), QG_VTEXT(o.t->id)};
    if (qg_conn_exec(c, "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", u, 2, NULL, NULL) ==
        QG_OK)
        o.t->last_used_at = now;
    return QG_OK;
}

typedef struct {
    qg_status (*fn)(void *ud, const qg_api_token *t);
    void *ud;
} token_walk;

static qg_status token_walk_row(void *ud, const qg_row *r)
{
    token_walk *w = ud;
    qg_api_token t;
    api_token_from_row(r, &t);
    return w->fn(w->ud, &t);
}

qg_status qg_api_token_list(qg_conn *c, const char *user_id,
                            qg_status (*fn)(void *ud, const qg_api_token *t), void *ud,
                            qg_error *err)
{
    token_walk w = {fn, ud};
    qg_val p[] = {QG_VTEXT(user_id)};
    return qg_conn_query(c,
                         "SELECT " TOKEN_COLS " FROM api_tokens WHERE user_id = ? AND "
                         "revoked_at IS NULL ORDER BY id DESC",
                         p, 1, token_walk_row, &w, err);
}

qg_status qg_api_token_revoke(qg_conn *c, const char *user_id, const char *id, qg_error *err)
{
    qg_val p[] = {QG_VINT(qg_time_now_ms()), QG_VTEXT(id), QG_VTEXT(user_id)};
    int64_t changes = 0;
    qg_status rc = qg_conn_exec(c,
                                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND "
                                "user_id = ? AND revoked_at IS NULL",
                                p, 3, &changes, err);
    if (rc) return rc;
    if (changes == 0) return qg_error_set(err, QG_ENOTFOUND, "token '%s' not found", id);
    return QG_OK;
}
