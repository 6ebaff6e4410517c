/*
 * auth.h - accounts, passwords, sessions and machine tokens.
 *
 * Passwords are hashed with argon2id (libsodium crypto_pwhash_str, the
 * interactive limits unless QG_ARGON2_FAST is set for tests). Access tokens
 * are HS256 JWTs (libjwt) that carry sub, role, typ=access, iss, iat and exp;
 * verification accepts HS256 only, so `alg: none` and other algorithms are
 * refused before any claim is read. Refresh tokens (`rt_` + 43 base64url
 * chars) and machine tokens (`qg_` + 43 chars) are 32 random bytes; only
 * their SHA-256 (hex) is stored, so a database leak does not leak tokens.
 *
 * Every function that touches the database takes a qg_conn the caller holds;
 * none keeps it. Returned strings live in the caller's structs (fixed-size
 * fields), so nothing here needs freeing.
 */
#ifndef QG_AUTH_H
#define QG_AUTH_H

#include "store/store.h"

#include <quantgate/status.h>

#include <stdbool.h>
#include <stdint.h>

typedef enum { QG_ROLE_NONE = 0, QG_ROLE_CLIENT, QG_ROLE_DEVELOPER, QG_ROLE_ADMIN } qg_role;

/* "client", "developer", "admin" (and "none" for QG_ROLE_NONE). */
const char *qg_role_name(qg_role r);
/* QG_ROLE_NONE when s is not a role name. */
qg_role qg_role_parse(const char *s);

#define QG_EMAIL_MAX 255

typedef struct qg_user {
    char id[QG_ID_MAX];
    char email[QG_EMAIL_MAX + 1];
    qg_role role;
    bool approved;
    bool disabled;
    bool must_change_password; /* the first-run admin's one-time password */
    int64_t created_at;        /* ms */
} qg_user;

/* Must be called once before any other function here (sodium_init). */
qg_status qg_auth_init(qg_error *err);

/* ---- passwords ---- */
/* At least 10 and at most 1024 bytes; err names `password` and the reason. */
qg_status qg_password_check_policy(const char *password, qg_error *err);
/* Writes the argon2id encoded hash (crypto_pwhash_STRBYTES) into out. */
qg_status qg_password_hash(const char *password, char *out, size_t cap, qg_error *err);
bool qg_password_verify(const char *hash, const char *password);

/* ---- users ---- */
/* Lower-cases and validates an email into out; err names `email`. */
qg_status qg_email_normalize(const char *in, char *out, size_t cap, qg_error *err);
/* Creates a user. QG_EEXIST when the email is taken. */
qg_status qg_user_create(qg_conn *c, const char *email, const char *password, qg_role role,
                         bool approved, qg_user *out, qg_error *err);
qg_status qg_user_get(qg_conn *c, const char *id, qg_user *out, qg_error *err);
qg_status qg_user_get_by_email(qg_conn *c, const char *email, qg_user *out, qg_error *err);
/* Checks email and password. QG_EDENIED for unknown email or wrong password
 * (one message for both, and the same work done for both, so timing does not
 * tell which); on success *out is the user whatever its approval state. */
qg_status qg_user_authenticate(qg_conn *c, const char *email, const char *password, qg_user *out,
                               qg_error *err);
/* Updates the fields whose pointers are non-NULL. QG_ENOTFOUND when absent. */
qg_status qg_user_update(qg_conn *c, const char *id, const qg_role *role, const bool *approved,
                         const bool *disabled, qg_error *err);
/* Sets a new password (policy checked) and clears must_change_password. */
qg_status qg_user_set_password(qg_conn *c, const char *id, const char *password, qg_error *err);
/* Sets must_change_password (the first-run admin). */
qg_status qg_user_require_password_change(qg_conn *c, const char *id, qg_error *err);
/* Deletes the user and, through foreign keys, everything they own. */
qg_status qg_user_delete(qg_conn *c, const char *id, qg_error *err);
qg_status qg_user_count(qg_conn *c, int64_t *out, qg_error *err);
/* Pages through users newest first: ids below `before` (NULL: from the
 * newest), at most limit, only pending ones when pending_only. fn is called
 * per user; a non-OK return stops the walk and is returned. */
qg_status qg_user_list(qg_conn *c, const char *before, int limit, bool pending_only,
                       qg_status (*fn)(void *ud, const qg_user *u), void *ud, qg_error *err);

/* ---- access tokens (JWT HS256) ---- */
typedef struct qg_jwt_claims {
    char sub[QG_ID_MAX];
    qg_role role;
    int64_t iat; /* seconds */
    int64_t exp; /* seconds */
} qg_jwt_claims;

/* key is the HMAC key (32 bytes). Writes the compact JWT into out. */
qg_status qg_jwt_issue(const uint8_t key[32], const char *user_id, qg_role role, int64_t now_s,
                       int64_t ttl_s, char *out, size_t cap, qg_error *err);
/* QG_EDENIED with a reason for: malformed, alg other than HS256, bad
 * signature, wrong typ or iss, expired (exp <= now_s). */
qg_status qg_jwt_verify(const uint8_t key[32], const char *token, int64_t now_s, qg_jwt_claims *out,
                        qg_error *err);

/* ---- refresh tokens ---- */
#define QG_TOKEN_MAX 64
/* Creates a refresh token for user_id valid ttl_s seconds; the plain token
 * goes into out (QG_TOKEN_MAX). */
qg_status qg_session_create(qg_conn *c, const char *user_id, int64_t ttl_s, char *out,
                            qg_error *err);
/* Revokes `token` and issues a new one for the same user (rotation). The
 * plain new token goes into new_out, the user id into user_id_out.
 * QG_EDENIED when the token is unknown, expired or revoked. */
qg_status qg_session_rotate(qg_conn *c, const char *token, int64_t ttl_s, char *new_out,
                            char user_id_out[QG_ID_MAX], qg_error *err);
/* Revokes one refresh token; QG_EDENIED when unknown or already revoked. */
qg_status qg_session_revoke(qg_conn *c, const char *token, char user_id_out[QG_ID_MAX],
                            qg_error *err);

/* ---- machine API tokens ---- */
typedef enum { QG_SCOPE_READ = 1, QG_SCOPE_WRITE = 2 } qg_scope;
const char *qg_scope_name(qg_scope s);
/* 0 when s is not "read" or "write". */
int qg_scope_parse(const char *s);

typedef struct qg_api_token {
    char id[QG_ID_MAX];
    char user_id[QG_ID_MAX];
    char name[65];
    char prefix[12]; /* first 7 characters of the token, for recognising it */
    qg_scope scope;
    int64_t created_at;
    int64_t last_used_at; /* 0 when never */
} qg_api_token;

/* True when token has the machine-token shape (`qg_` prefix). */
bool qg_api_token_looks_like(const char *token);
/* Creates a token; the plain token goes into plain_out (QG_TOKEN_MAX). name:
 * 1-64 printable characters, err names `name`. */
qg_status qg_api_token_create(qg_conn *c, const char *user_id, const char *name, qg_scope scope,
                              qg_api_token *out, char *plain_out, qg_error *err);
/* Looks a plain token up and records its use. QG_EDENIED when unknown or
 * revoked. */
qg_status qg_api_token_resolve(qg_conn *c, const char *plain, qg_api_token *out, qg_error *err);
qg_status qg_api_token_list(qg_conn *c, const char *user_id,
                            qg_status (*fn)(void *ud, const qg_api_token *t), void *ud,
                            qg_error *err);
/* QG_ENOTFOUND when the token is not user_id's. */
qg_status qg_api_token_revoke(qg_conn *c, const char *user_id, const char *id, qg_error *err);

/* ---- helpers shared with the vault ---- */
/* 32 random bytes as `prefix` + 43 base64url characters. */
void qg_token_random(const char *prefix, char *out, size_t cap);
/* SHA-256 of s as 64 lower-case hex characters + NUL. */
void qg_token_hash(const char *s, char out[65]);

#endif
