/*
 * dispatch.c - what happens to a request on a worker thread, around its
 * handler: who is calling, may they, not too often, and a record of it.
 *
 * Order: authenticate (JWT or machine token; the account must exist, be
 * approved and enabled, and its current role is used), authorise against
 * the route's role and the token's scope, the one-time-password gate, the
 * per-user rate limit, the handler, then the audit row for every mutating
 * request (denied ones included) and the release of the database
 * connection. Public routes skip authentication entirely, so a stale token
 * never breaks sign-up or login.
 */
#include "http/server.h"

#include "auth/audit.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <stdio.h>
#include <string.h>

#define QG_REPLY_MAX ((size_t)256 << 20)

void qg_req_init(qg_req *r, qg_app *app)
{
    memset(r, 0, sizeof *r);
    r->app = app;
    qg_arena_init(&r->arena, 4096);
    qg_buf_init(&r->out, QG_REPLY_MAX);
    r->query = "";
    r->body = "";
    r->content_type = "";
    r->authorization = "";
    r->address = "";
    r->request_id = "";
    r->upstream_us = -1;
}

void qg_req_release(qg_req *r)
{
    if (r->db) {
        qg_store_release(r->app->store, r->db);
        r->db = NULL;
    }
    if (r->body_json) {
        cJSON_Delete(r->body_json);
        r->body_json = NULL;
    }
    qg_buf_free(&r->out);
    qg_arena_free(&r->arena);
}

static void unauthorized(qg_req *r, const char *why)
{
    qg_reply_header(r, "www-authenticate", "Bearer");
    qg_reply_error(r, 401, "unauthorized", "%s", why);
}

/* Reads the bearer token and fills r->who. Replies 401/403/503 and returns
 * false when the caller cannot be identified. */
static bool authenticate(qg_req *r)
{
    const char *h = r->authorization;
    if (!*h) {
        unauthorized(r, "missing credentials: send 'Authorization: Bearer <token>'");
        return false;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        unauthorized(r, "the Authorization header must use the Bearer scheme");
        return false;
    }
    const char *token = h + 7;
    while (*token == ' ') token++;
    qg_conn *c = qg_req_db(r);
    if (!c) return false;
    qg_error err = {0};
    qg_principal *who = &r->who;
    const char *user_id;
    if (qg_api_token_looks_like(token)) {
        qg_api_token t;
        if (qg_api_token_resolve(c, token, &t, &err) != QG_OK) {
            unauthorized(r, "invalid or revoked API token");
            return false;
        }
        who->via_api_token = true;
        who->scope = t.scope;
        snprintf(who->token_id, sizeof who->token_id, "%s", t.id);
        user_id = qg_arena_strndup(&r->arena, t.user_id, strlen(t.user_id));
    } else {
        qg_jwt_claims cl;
        if (qg_jwt_verify(r->app->jwt_key, token, qg_time_now_ms() / 1000, &cl, &err) != QG_OK) {
            unauthorized(r, err.msg[0] ? err.msg : "invalid access token");
            return false;
        }
        who->scope = QG_SCOPE_WRITE;
        user_id = qg_arena_strndup(&r->arena, cl.sub, strlen(cl.sub));
    }
    qg_status rc = qg_user_get(c, user_id, &who->user, &err);
    if (rc == QG_ENOTFOUND) {
        unauthorized(r, "the account behind this token no longer exists");
        return false;
    }
    if (rc) {
        qg_reply_status(r, rc, &err);
        return false;
    }
    who->authenticated = true;
    if (who->user.disabled) {
        qg_reply_error(r, 403, "forbidden", "account disabled");
        return false;
    }
    if (!who->user.approved) {
        qg_reply_error(r, 403, "forbidden", "account pending approval");
        return false;
    }
    return true;
}

bool qg_req_authenticate(qg_req *r)
{
    return authenticate(r);
}

static bool authorize(qg_req *r)
{
    const qg_route *rt = r->route;
    const qg_principal *who = &r->who;
    if (who->user.role < rt->role) {
        qg_reply_error(r, 403, "forbidden", "%s %s needs the %s role; you are %s",
                       qg_method_name(rt->method), rt->pattern, qg_role_name(rt->role),
                       qg_role_name(who->user.role));
        return false;
    }
    if (who->via_api_token && who->scope == QG_SCOPE_READ && rt->method != QG_GET) {
        qg_reply_error(r, 403, "forbidden", "this API token has the read scope; %s needs write",
                       qg_method_name(rt->method));
        return false;
    }
    /* Routes open to anyone never get here, so logout stays usable. */
    if (who->user.must_change_password && !(rt->flags & QG_ROUTE_ONE_TIME_OK)) {
        qg_reply_error(r, 403, "password_change_required",
                       "change the one-time password first: POST /api/me/password");
        return false;
    }
    return true;
}

static bool user_rate_ok(qg_req *r)
{
    qg_app *app = r->app;
    if (!app->limits || r->route->rl == QG_RL_NONE) return true;
    char key[QG_ID_MAX + 4];
    int retry = 1;
    snprintf(key, sizeof key, "u:%s", r->who.user.id);
    if (qg_ratelimit_take(app->limits, r->route->rl, key, qg_time_now_ms(), &retry)) return true;
    char ra[16];
    snprintf(ra, sizeof ra, "%d", retry);
    qg_reply_header(r, "retry-after", ra);
    qg_reply_error(r, 429, "rate_limited", "too many requests for this account; retry in %d s",
                   retry);
    return false;
}

static const char *outcome_of(int status)
{
    if (status < 400) return "ok";
    if (status == 401 || status == 403 || status == 429) return "denied";
    return "error";
}

static void audit(qg_req *r)
{
    const qg_route *rt = r->route;
    if (rt->method == QG_GET || (rt->flags & QG_ROUTE_NO_AUDIT)) return;
    qg_conn *c = r->db;
    qg_error err = {0};
    bool own = false;
    if (!c) {
        if (qg_store_acquire(r->app->store, &c, &err) != QG_OK) goto fail;
        own = true;
    }
    char action[128];
    snprintf(action, sizeof action, "%s %s", qg_method_name(rt->method), rt->pattern);
    qg_audit_entry e = {
        .actor_id = r->who.authenticated ? r->who.user.id : NULL,
        .actor_email = r->who.authenticated ? r->who.user.email : NULL,
        .action = action,
        .target = r->audit_target ? r->audit_target : (r->nparam ? r->param[0] : NULL),
        .outcome = outcome_of(r->status),
        .status = r->status,
        .address = r->address,
        .request_id = r->request_id,
    };
    qg_status rc = qg_audit_append(c, &e, &err);
    if (own) qg_store_release(r->app->store, c);
    if (rc == QG_OK) return;
fail:
    qg_err("audit: cannot record %s %s (request %s): %s", qg_method_name(rt->method), rt->pattern,
           r->request_id, err.msg);
}

void qg_dispatch(qg_req *r)
{
    const qg_route *rt = r->route;
    bool go = true;
    if (rt->role != QG_ROLE_NONE) go = authenticate(r) && authorize(r) && user_rate_ok(r);
    if (go) rt->fn(r);
    /* A deferred reply belongs to its finisher from here on: only the
     * connection is ours to release. */
    if (!r->deferred) {
        if (r->status == 0)
            qg_reply_error(r, 500, "internal", "internal error (request %s): no reply",
                           r->request_id);
        audit(r);
    }
    if (r->db) {
        qg_store_release(r->app->store, r->db);
        r->db = NULL;
    }
}
