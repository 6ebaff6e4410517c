/*
 * h_auth.c - sign-up, login, refresh, logout and the caller's own account.
 *
 * Login is the one route that writes its own audit row (QG_ROUTE_NO_AUDIT):
 * the dispatcher does not know the attempted email or the user behind it,
 * and a throttled attempt never reaches the database otherwise. Unknown
 * email and wrong password share one message, and a locked account answers
 * 429 before the password is even checked, so the route cannot be used to
 * probe accounts or guess passwords quickly.
 *
 * Refresh issues the new access token with the user's role as stored now,
 * so a demotion or a disable takes effect at the next refresh at the latest
 * (the dispatcher already re-reads the user on every request).
 */
#include "auth/audit.h"
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <stdio.h>
#include <string.h>

#define QG_JWT_MAX         1024
#define QG_LOGIN_FAIL_MSG  "invalid email or password"
#define QG_BAD_REFRESH_MSG "refresh token is invalid, expired or revoked"

void qg_h_signup(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    const char *email = NULL, *password = NULL;
    if (!body || !qg_field_credentials(r, body, &email, &password)) return;
    qg_reply_user_create(r, email, password, QG_ROLE_CLIENT, false);
}

/* Writes the login's audit row. Takes a connection when the handler has
 * none yet (a throttled attempt); the dispatcher releases r->db. */
static void login_audit(qg_req *r, const char *actor_id, const char *email, const char *outcome)
{
    if (!r->db) {
        qg_error aerr = {0};
        if (qg_store_acquire(r->app->store, &r->db, &aerr)) {
            r->db = NULL;
            qg_err("request %s: login audit row not written: %s",
                   r->request_id ? r->request_id : "-", aerr.msg);
            return;
        }
    }
    qg_audit_entry e = {0};
    e.actor_id = actor_id;
    e.actor_email = email;
    e.action = "auth.login";
    e.target = actor_id;
    e.outcome = outcome;
    e.status = r->status;
    e.address = r->address;
    e.request_id = r->request_id;
    qg_error err = {0};
    if (qg_audit_append(r->db, &e, &err))
        qg_err("request %s: login audit row not written: %s", r->request_id ? r->request_id : "-",
               err.msg);
}

/* Replies 200 with a fresh access token for u and the refresh token rt. */
static void reply_tokens(qg_req *r, const qg_user *u, const char *refresh_token)
{
    char jwt[QG_JWT_MAX];
    qg_error err = {0};
    qg_status rc = qg_jwt_issue(r->app->jwt_key, u->id, u->role, qg_time_now_ms() / 1000,
                                r->app->access_ttl_s, jwt, sizeof jwt, &err);
    if (rc) {
        /* Never a client error: the claims come from the database. */
        qg_reply_status(r, rc == QG_EINVAL ? QG_EINTERNAL : rc, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "access_token", jwt);
    cJSON_AddStringToObject(o, "refresh_token", refresh_token);
    cJSON_AddStringToObject(o, "token_type", "bearer");
    cJSON_AddNumberToObject(o, "expires_in", (double)r->app->access_ttl_s);
    if (u->must_change_password) cJSON_AddBoolToObject(o, "password_change_required", true);
    qg_reply_json(r, 200, o);
}

/* The throttle key: the normalised email when it is one, else the text. */
static void login_account_key(const char *email, char *out, size_t cap)
{
    if (qg_email_normalize(email, out, cap, NULL)) snprintf(out, cap, "%s", email);
}

/* The login throttle for account: false after replying 429 with
 * Retry-After; `tries` names what failed too often. */
static bool login_allowed(qg_req *r, const char *account, int64_t now, const char *tries)
{
    int retry = 0;
    if (!r->app->limits || qg_ratelimit_login_check(r->app->limits, account, now, &retry))
        return true;
    char secs[24];
    snprintf(secs, sizeof secs, "%d", retry);
    qg_reply_error(r, 429, "rate_limited", "too many %s for this account; retry in %d seconds",
                   tries, retry);
    qg_reply_header(r, "Retry-After", secs);
    return false;
}

/* 403 for an account that may not sign in. */
static void reply_account_blocked(qg_req *r, const qg_user *u)
{
    qg_reply_error(r, 403, "forbidden",
                   u->disabled ? "account disabled" : "account pending approval");
}

void qg_h_login(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    const char *email = NULL, *password = NULL;
    if (!body || !qg_field_credentials(r, body, &email, &password)) return;

    char account[QG_EMAIL_MAX + 1];
    login_account_key(email, account, sizeof account);
    int64_t now = qg_time_now_ms();
    qg_ratelimit *rl = r->app->limits;
    if (!login_allowed(r, account, now, "failed logins")) {
        login_audit(r, NULL, account, "denied");
        return;
    }

    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_user u;
    qg_error err = {0};
    qg_status rc = qg_user_authenticate(db, email, password, &u, &err);
    if (rc == QG_EDENIED) {
        if (rl) qg_ratelimit_login_fail(rl, account, now);
        qg_reply_error(r, 401, "unauthorized", QG_LOGIN_FAIL_MSG);
        login_audit(r, NULL, account, "denied");
        return;
    }
    if (rc) {
        qg_reply_status(r, rc, &err);
        login_audit(r, NULL, account, r->status >= 500 ? "error" : "denied");
        return;
    }
    /* The password was right: the failures so far were the owner's typos. */
    if (rl) qg_ratelimit_login_success(rl, account);
    if (u.disabled || !u.approved) {
        reply_account_blocked(r, &u);
        login_audit(r, u.id, u.email, "denied");
        return;
    }
    char refresh[QG_TOKEN_MAX];
    rc = qg_session_create(db, u.id, r->app->refresh_ttl_s, refresh, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        login_audit(r, u.id, u.email, "error");
        return;
    }
    reply_tokens(r, &u, refresh);
    login_audit(r, u.id, u.email, r->status == 200 ? "ok" : "error");
}

/* Reads the body's refresh_token and takes a connection; NULL after
 * replying. */
static qg_conn *refresh_request(qg_req *r, const char **token)
{
    cJSON *body = qg_req_json(r);
    if (!body || !qg_field_str(r, body, "refresh_token", true, QG_TOKEN_MAX * 2, token))
        return NULL;
    return qg_req_db(r);
}

/* After rotating or revoking the refresh token: true when rc is QG_OK, and
 * the token's user becomes the audit target; else replies 401 for a token
 * that is unknown, expired or revoked, or the failure. */
static bool session_done(qg_req *r, qg_status rc, const qg_error *err, const char *user_id)
{
    if (rc == QG_EDENIED || rc == QG_ENOTFOUND) {
        qg_reply_error(r, 401, "unauthorized", QG_BAD_REFRESH_MSG);
        return false;
    }
    if (rc) {
        qg_reply_status(r, rc, err);
        return false;
    }
    r->audit_target = qg_arena_strndup(&r->arena, user_id, strlen(user_id));
    return true;
}

void qg_h_refresh(qg_req *r)
{
    const char *token = NULL;
    qg_conn *db = refresh_request(r, &token);
    if (!db) return;
    char fresh[QG_TOKEN_MAX];
    char user_id[QG_ID_MAX];
    qg_error err = {0};
    qg_status rc = qg_session_rotate(db, token, r->app->refresh_ttl_s, fresh, user_id, &err);
    if (!session_done(r, rc, &err, user_id)) return;
    qg_user u;
    rc = qg_user_get(db, user_id, &u, &err);
    if (rc || u.disabled || !u.approved) {
        /* The rotation already happened: take the new token back too. */
        char ignored[QG_ID_MAX];
        qg_error rerr = {0};
        if (qg_session_revoke(db, fresh, ignored, &rerr))
            qg_warn("request %s: revoking a refused refresh: %s",
                    r->request_id ? r->request_id : "-", rerr.msg);
        if (rc == QG_ENOTFOUND)
            qg_reply_error(r, 401, "unauthorized", QG_BAD_REFRESH_MSG);
        else if (rc)
            qg_reply_status(r, rc, &err);
        else
            reply_account_blocked(r, &u);
        return;
    }
    reply_tokens(r, &u, fresh);
}

void qg_h_logout(qg_req *r)
{
    const char *token = NULL;
    qg_conn *db = refresh_request(r, &token);
    if (!db) return;
    char user_id[QG_ID_MAX];
    qg_error err = {0};
    qg_status rc = qg_session_revoke(db, token, user_id, &err);
    if (session_done(r, rc, &err, user_id)) qg_reply_empty(r, 204);
}

void qg_h_me(qg_req *r)
{
    qg_reply_json(r, 200, qg_user_json(&r->who.user));
}

/* The policy names `password`; this route's field is `new_password`. */
static void reply_new_password_policy(qg_req *r, const qg_error *err)
{
    static const char prefix[] = "field 'password'";
    if (strncmp(err->msg, prefix, sizeof prefix - 1) == 0)
        qg_reply_error(r, 400, "validation_failed", "field 'new_password'%s",
                       err->msg + sizeof prefix - 1);
    else
        qg_reply_status(r, err->code ? err->code : QG_EINVAL, err);
}

void qg_h_me_password(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    const char *cur = NULL, *next = NULL;
    if (!body || !qg_field_str(r, body, "current_password", true, QG_PASSWORD_FIELD_MAX, &cur) ||
        !qg_field_str(r, body, "new_password", true, QG_PASSWORD_FIELD_MAX, &next))
        return;
    const qg_user *me = &r->who.user;
    r->audit_target = qg_arena_strndup(&r->arena, me->id, strlen(me->id));
    qg_error err = {0};
    qg_status rc = qg_password_check_policy(next, &err);
    if (rc) {
        reply_new_password_policy(r, &err);
        return;
    }
    if (strcmp(cur, next) == 0) {
        qg_reply_error(r, 400, "validation_failed",
                       "field 'new_password': must differ from the current password");
        return;
    }
    /* Guessing the current password here is throttled like a login. */
    int64_t now = qg_time_now_ms();
    qg_ratelimit *rl = r->app->limits;
    if (!login_allowed(r, me->email, now, "wrong passwords")) return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    qg_user u;
    rc = qg_user_authenticate(db, me->email, cur, &u, &err);
    if (rc == QG_EDENIED || (!rc && strcmp(u.id, me->id) != 0)) {
        if (rl) qg_ratelimit_login_fail(rl, me->email, now);
        qg_reply_error(r, 400, "validation_failed",
                       "field 'current_password': does not match the account's password");
        return;
    }
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    if (rl) qg_ratelimit_login_success(rl, me->email);
    rc = qg_user_set_password(db, me->id, next, &err);
    if (rc) {
        if (rc == QG_EINVAL)
            reply_new_password_policy(r, &err);
        else
            qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_empty(r, 204);
}
