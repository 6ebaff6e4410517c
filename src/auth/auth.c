/*
 * auth.c - roles, passwords, user accounts and the random-token helpers.
 *
 * Passwords are stored only as argon2id strings (crypto_pwhash_str), which
 * carry their own salt and cost parameters, so raising the cost later keeps
 * old hashes verifiable. Authentication does the same argon2 work whether or
 * not the email exists (a dummy hash made at init with the current cost), so
 * response time does not reveal which accounts exist, and both failures carry
 * one message.
 *
 * Emails are normalised (trimmed, lower-cased) before every lookup and
 * insert, so the UNIQUE constraint on users.email is case-insensitive in
 * effect.
 */
#include "auth/auth.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <sodium.h>

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QG_PASSWORD_MIN  10
#define QG_PASSWORD_MAX  1024
#define QG_AUTH_FAIL_MSG "invalid email or password"

static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = -1;

/* ---- roles ---- */

const char *qg_role_name(qg_role r)
{
    switch (r) {
    case QG_ROLE_CLIENT:
        return "client";
    case QG_ROLE_DEVELOPER:
        return "developer";
    case QG_ROLE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

qg_role qg_role_parse(const char *s)
{
    if (!s) return QG_ROLE_NONE;
    if (strcmp(s, "client") == 0) return QG_ROLE_CLIENT;
    if (strcmp(s, "developer") == 0) return QG_ROLE_DEVELOPER;
    if (strcmp(s, "admin") == 0) return QG_ROLE_ADMIN;
    return QG_ROLE_NONE;
}

/* ---- init ---- */

/* The test-only fast limits: argon2 at its interactive cost makes a
 * sanitizer test run take minutes. Warned once because it must never be on
 * in production. */
static bool argon2_fast(void)
{
    static atomic_bool warned;
    const char *v = getenv("QG_ARGON2_FAST");
    if (!v || strcmp(v, "1") != 0) return false;
    if (!atomic_exchange(&warned, true))
        qg_warn("QG_ARGON2_FAST=1: password hashing uses minimal argon2 limits (tests only)");
    return true;
}

static void auth_init_once(void)
{
    if (sodium_init() < 0) return;
    /* A hash of a random password nobody knows, at the current cost, so a
     * lookup miss verifies against something that costs the same. */
    char pw[33];
    qg_token_random("", pw, sizeof pw);
    if (qg_password_hash(pw, dummy_hash, sizeof dummy_hash, NULL) != QG_OK) return;
    sodium_memzero(pw, sizeof pw);
    init_result = 0;
}

qg_status qg_auth_init(qg_error *err)
{
    pthread_once(&init_once, auth_init_once);
    if (init_result != 0)
        return qg_error_set(err, QG_EINTERNAL, "libsodium could not be initialised");
    return QG_OK;
}

/* ---- token helpers ---- */

void qg_token_random(const char *prefix, char *out, size_t cap)
{
    uint8_t raw[32];
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, cap, "%s%s", prefix, b64);
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(b64, sizeof b64);
}

void qg_token_hash(const char *s, char out[65])
{
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
    sodium_bin2hex(out, 65, h, sizeof h);
}

/* ---- passwords ---- */

qg_status qg_password_check_policy(const char *password, qg_error *err)
{
    if (!password || !*password)
        return qg_error_set(err, QG_EINVAL, "field 'password': must not be empty");
    size_t n = strnlen(password, QG_PASSWORD_MAX + 1);
    if (n < QG_PASSWORD_MIN)
        return qg_error_set(err, QG_EINVAL, "field 'password': must be at least %d characters",
                            QG_PASSWORD_MIN);
    if (n > QG_PASSWORD_MAX)
        return qg_error_set(err, QG_EINVAL, "field 'password': must be at most %d characters",
                            QG_PASSWORD_MAX);
    return QG_OK;
}

qg_status qg_password_hash(const char *password, char *out, size_t cap, qg_error *err)
{
    if (cap < crypto_pwhash_STRBYTES)
        return qg_error_set(err, QG_ERANGE, "password hash buffer too small");
    bool fast = argon2_fast();
    unsigned long long ops = fast ? crypto_pwhash_OPSLIMIT_MIN : crypto_pwhash_OPSLIMIT_INTERACTIVE;
    size_t mem = fast ? crypto_pwhash_MEMLIMIT_MIN : crypto_pwhash_MEMLIMIT_INTERACTIVE;
    if (crypto_pwhash_str(out, password, strlen(password), ops, mem) != 0)
        return qg_error_set(err, QG_ENOMEM, "password hashing ran out of memory");
    return QG_OK;
}

bool qg_password_verify(const char *hash, const char *password)
{
    if (!hash || !password) return false;
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

/* ---- emails ---- */

qg_status qg_email_normalize(const char *in, char *out, size_t cap, qg_error *err)
{
    if (!in) return qg_error_set(err, QG_EINVAL, "field 'email': is required");
    const char *b = in, *e = in + strlen(in);
    while (b < e && isspace((unsigned char)*b)) b++;
    while (e > b && isspace((unsigned char)e[-1])) e--;
    size_t n = (size_t)(e - b);
    if (n == 0) return qg_error_set(err, QG_EINVAL, "field 'email': must not be empty");
    if (n > QG_EMAIL_MAX)
        return qg_error_set(err, QG_EINVAL, "field 'email': longer than %d characters",
                            QG_EMAIL_MAX);
    if (n + 1 > cap) return qg_error_set(err, QG_ERANGE, "field 'email': buffer too small");
    const char *at = NULL;
    for (const char *p = b; p < e; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch == 0x7f)
            return qg_error_set(err, QG_EINVAL,
                                "field 'email': spaces and control characters are not allowed");
        if (ch == '@') {
            if (at) return qg_error_set(err, QG_EINVAL, "field 'email': more than one '@'");
            at = p;
        }
    }
    if (!at) return qg_error_set(err, QG_EINVAL, "field 'email': not an email address (no '@')");
    if (at == b) return qg_error_set(err, QG_EINVAL, "field 'email': nothing before '@'");
    if (at + 1 == e) return qg_error_set(err, QG_EINVAL, "field 'email': no domain after '@'");
    if (at[1] == '.' || e[-1] == '.')
        return qg_error_set(err, QG_EINVAL, "field 'email': the domain is not valid");
    for (size_t i = 0; i < n; i++) out[i] = (char)tolower((unsigned char)b[i]);
    out[n] = '\0';
    return QG_OK;
}

/* ---- users ---- */

#define USER_COLS "id, email, role, approved, disabled, must_change_password, created_at"

typedef struct {
    qg_user *u;
    char *hash; /* crypto_pwhash_STRBYTES, or NULL when not selected */
    bool found;
} user_row_ctx;

static void user_from_row(const qg_row *r, qg_user *u)
{
    memset(u, 0, sizeof *u);
    snprintf(u->id, sizeof u->id, "%s", qg_row_text(r, 0) ? qg_row_text(r, 0) : "");
    snprintf(u->email, sizeof u->email, "%s", qg_row_text(r, 1) ? qg_row_text(r, 1) : "");
    u->role = qg_role_parse(qg_row_text(r, 2));
    u->approved = qg_row_int(r, 3) != 0;
    u->disabled = qg_row_int(r, 4) != 0;
    u->must_change_password = qg_row_int(r, 5) != 0;
    u->created_at = qg_row_int(r, 6);
}

static qg_status user_row(void *ud, const qg_row *r)
{
    user_row_ctx *ctx = ud;
    user_from_row(r, ctx->u);
    if (ctx->hash) {
        const char *h = qg_row_text(r, 7);
        snprintf(ctx->hash, crypto_pwhash_STRBYTES, "%s", h ? h : "");
    }
    ctx->found = true;
    return QG_OK;
}

qg_status qg_user_create(qg_conn *c, const char *email, const char *password, qg_role role,
                         bool approved, qg_user *out, qg_error *err)
{
    qg_status rc = QG_OK;
    char norm[QG_EMAIL_MAX + 1];
    char hash[crypto_pwhash_STRBYTES];
    if ((rc = qg_email_normalize(email, norm, sizeof norm, err))) return rc;
    if (role == QG_ROLE_NONE)
        return qg_error_set(err, QG_EINVAL,
                            "field 'role': must be one of admin, developer, client");
    if ((rc = qg_password_check_policy(password, err))) return rc;
    if ((rc = qg_password_hash(password, hash, sizeof hash, err))) return rc;

    qg_user u = {.role = role, .approved = approved, .created_at = qg_time_now_ms()};
    qg_store_new_id("usr", u.id, sizeof u.id);
    snprintf(u.email, sizeof u.email, "%s", norm);
    qg_val p[] = {QG_VTEXT(u.id),
                  QG_VTEXT(u.email),
                  QG_VTEXT(hash),
                  QG_VTEXT(qg_role_name(role)),
                  QG_VINT(approved ? 1 : 0),
                  QG_VINT(u.created_at),
                  QG_VINT(u.created_at)};
    rc = qg_conn_exec(c,
                      "INSERT INTO users (id, email, password_hash, role, approved, disabled, "
                      "must_change_password, created_at, updated_at) "
                      "VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?)",
                      p, sizeof p / sizeof p[0], NULL, err);
    if (rc == QG_EEXIST) {
        rc = qg_error_set(err, QG_EEXIST, "field 'email': '%s' is already registered", norm);
        goto out;
    }
    if (rc) goto out;
    if (out) *out = u;
out:
    sodium_memzero(hash, sizeof hash);
    return rc;
}

qg_status qg_user_get(qg_conn *c, const char *id, qg_user *out, qg_error *err)
{
    qg_user tmp;
    user_row_ctx ctx = {.u = out ? out : &tmp};
    qg_val p[] = {QG_VTEXT(id)};
    qg_status rc =
        qg_conn_query(c, "SELECT " USER_COLS " FROM users WHERE id = ?", p, 1, user_row, &ctx, err);
    if (rc) return rc;
    if (!ctx.found) return qg_error_set(err, QG_ENOTFOUND, "user '%s' not found", id);
    return QG_OK;
}

qg_status qg_user_get_by_email(qg_conn *c, const char *email, qg_user *out, qg_error *err)
{
    char norm[QG_EMAIL_MAX + 1];
    qg_status rc = qg_email_normalize(email, norm, sizeof norm, err);
    if (rc) return rc;
    qg_user tmp;
    user_row_ctx ctx = {.u = out ? out : &tmp};
    qg_val p[] = {QG_VTEXT(norm)};
    rc = qg_conn_query(c, "SELECT " USER_COLS " FROM users WHERE email = ?", p, 1, user_row, &ctx,
                       err);
    if (rc) return rc;
    if (!ctx.found) return qg_error_set(err, QG_ENOTFOUND, "no user with email '%s'", norm);
    return QG_OK;
}

qg_status qg_user_authenticate(qg_conn *c, const char *email, const char *password, qg_user *out,
                               qg_error *err)
{
    qg_status rc = qg_auth_init(err);
    if (rc) return rc;
    char norm[QG_EMAIL_MAX + 1];
    char hash[crypto_pwhash_STRBYTES] = "";
    qg_user u;
    user_row_ctx ctx = {.u = &u, .hash = hash};
    if (!password) password = "";
    if (qg_email_normalize(email, norm, sizeof norm, NULL) == QG_OK) {
        qg_val p[] = {QG_VTEXT(norm)};
        rc = qg_conn_query(c, "SELECT " USER_COLS ", password_hash FROM users WHERE email = ?", p,
                           1, user_row, &ctx, err);
        if (rc) return rc;
    }
    /* Verify against the dummy hash on a miss: the same argon2 work either
     * way. The password must still not match it (nobody knows it). */
    bool ok = qg_password_verify(ctx.found ? hash : dummy_hash, password) && ctx.found;
    sodium_memzero(hash, sizeof hash);
    if (!ok) return qg_error_set(err, QG_EDENIED, QG_AUTH_FAIL_MSG);
    if (out) *out = u;
    return QG_OK;
}

qg_status qg_user_update(qg_conn *c, const char *id, const qg_role *role, const bool *approved,
                         const bool *disabled, qg_error *err)
{
    char sql[256] = "UPDATE users SET updated_at = ?";
    qg_val p[5];
    size_t n = 0;
    p[n++] = QG_VINT(qg_time_now_ms());
    if (role) {
        if (*role == QG_ROLE_NONE)
            return qg_error_set(err, QG_EINVAL,
                                "field 'role': must be one of admin, developer, client");
        strcat(sql, ", role = ?");
        p[n++] = QG_VTEXT(qg_role_name(*role));
    }
    if (approved) {
        strcat(sql, ", approved = ?");
        p[n++] = QG_VINT(*approved ? 1 : 0);
    }
    if (disabled) {
        strcat(sql, ", disabled = ?");
        p[n++] = QG_VINT(*disabled ? 1 : 0);
    }
    strcat(sql, " WHERE id = ?");
    p[n++] = QG_VTEXT(id);
    int64_t changes = 0;
    qg_status rc = qg_conn_exec(c, sql, p, n, &changes, err);
    if (rc) return rc;
    if (changes == 0) return qg_error_set(err, QG_ENOTFOUND, "user '%s' not found", id);
    return QG_OK;
}

qg_status qg_user_set_password(qg_conn *c, const char *id, const char *password, qg_error *err)
{
    char hash[crypto_pwhash_STRBYTES];
    qg_status rc = qg_password_check_policy(password, err);
    if (rc) return rc;
    if ((rc = qg_password_hash(password, hash, sizeof hash, err))) return rc;
    qg_val p[] = {QG_VTEXT(hash), QG_VINT(qg_time_now_ms()), QG_VTEXT(id)};
    int64_t changes = 0;
    rc = qg_conn_exec(c,
                      "UPDATE users SET password_hash = ?, must_change_password = 0, "
                      "updated_at = ? WHERE id = ?",
                      p, 3, &changes, err);
    sodium_memzero(hash, sizeof hash);
    if (rc) return rc;
    if (changes == 0) return qg_error_set(err, QG_ENOTFOUND, "user '%s' not found", id);
    return QG_OK;
}

qg_status qg_user_require_password_change(qg_conn *c, const char *id, qg_error *err)
{
    qg_val p[] = {QG_VINT(qg_time_now_ms()), QG_VTEXT(id)};
    int64_t changes = 0;
    qg_status rc =
        qg_conn_exec(c, "UPDATE users SET must_change_password = 1, updated_at = ? WHERE id = ?", p,
                     2, &changes, err);
    if (rc) return rc;
    if (changes == 0) return qg_error_set(err, QG_ENOTFOUND, "user '%s' not found", id);
    return QG_OK;
}

qg_status qg_user_delete(qg_conn *c, const char *id, qg_error *err)
{
    qg_val p[] = {QG_VTEXT(id)};
    int64_t changes = 0;
    qg_status rc = qg_conn_exec(c, "DELETE FROM users WHERE id = ?", p, 1, &changes, err);
    if (rc) return rc;
    if (changes == 0) return qg_error_set(err, QG_ENOTFOUND, "user '%s' not found", id);
    return QG_OK;
}

static qg_status count_row(void *ud, const qg_row *r)
{
    *(int64_t *)ud = qg_row_int(r, 0);
    return QG_OK;
}

qg_status qg_user_count(qg_conn *c, int64_t *out, qg_error *err)
{
    *out = 0;
    return qg_conn_query(c, "SELECT COUNT(*) FROM users", NULL, 0, count_row, out, err);
}

typedef struct {
    qg_status (*fn)(void *ud, const qg_user *u);
    void *ud;
} user_walk;

static qg_status user_walk_row(void *ud, const qg_row *r)
{
    user_walk *w = ud;
    qg_user u;
    user_from_row(r, &u);
    return w->fn(w->ud, &u);
}

qg_status qg_user_list(qg_conn *c, const char *before, int limit, bool pending_only,
                       qg_status (*fn)(void *ud, const qg_user *u), void *ud, qg_error *err)
{
    char sql[256] = "SELECT " USER_COLS " FROM users WHERE 1 = 1";
    qg_val p[2];
    size_t n = 0;
    if (before && *before) {
        strcat(sql, " AND id < ?");
        p[n++] = QG_VTEXT(before);
    }
    if (pending_only) strcat(sql, " AND approved = 0");
    strcat(sql, " ORDER BY id DESC LIMIT ?");
    if (limit <= 0) limit = 50;
    if (limit > 1000) limit = 1000;
    p[n++] = QG_VINT(limit);
    user_walk w = {fn, ud};
    return qg_conn_query(c, sql, p, n, user_walk_row, &w, err);
}
