/*
 * handlers_int.h - small helpers the route handlers share (defined in
 * reply.c). Not for use outside src/http.
 */
#ifndef QG_HANDLERS_INT_H
#define QG_HANDLERS_INT_H

#include "http/http.h"

/* Lists: default and largest `limit` (docs/api.md). */
#define QG_LIST_DEFAULT 50
#define QG_LIST_MAX     500

/* Reads ?limit= (def when absent). On a bad value replies 400 naming
 * `limit` and returns false. */
bool qg_req_limit(qg_req *r, int def, int max, int *out);

/* The API's user object; the caller owns the returned tree. */
cJSON *qg_user_json(const qg_user *u);

/* Replies 200 {"items":items,"next":next|null}; takes ownership of items. */
void qg_reply_list(qg_req *r, cJSON *items, const char *next);

/* Adds name: s, or name: null when s is NULL. */
bool qg_json_str_or_null(cJSON *obj, const char *name, const char *s);

/* Adds name: "1h" (the timeframe's text), or name: null when tf is 0. */
void qg_json_timeframe(cJSON *obj, const char *name, int64_t tf_ms);

/* True when rc is QG_OK. Otherwise replies - 404 "WHAT 'ID' not found" for
 * QG_ENOTFOUND, else as qg_reply_status - and returns false. */
bool qg_reply_unless_ok(qg_req *r, qg_status rc, const qg_error *err, const char *what,
                        const char *id);

/* A keyset page being filled, newest id first: `limit` items, then at most
 * one probe row that only tells there is a next page. items is the
 * caller's. */
typedef struct qg_page {
    cJSON *items;
    int n, limit;
    char last[QG_ID_MAX]; /* id of the last item kept: the next cursor */
} qg_page;

/* A row with this id arrived: true when the caller should add its item,
 * false for the probe row. */
bool qg_page_take(qg_page *p, const char *id);

/* The cursor for the next page, or NULL when this page is the last. */
const char *qg_page_next(const qg_page *p);

/* Lists a page of the caller's rows: reads ?limit= and ?before= and runs
 * sql, which selects the id first and takes (user id, before, before,
 * limit + 1) as its parameters; row_json turns a row into its item. False
 * after replying (400, 503 or the failure); else out->items is the
 * caller's. */
bool qg_req_own_page(qg_req *r, const char *sql, cJSON *(*row_json)(const qg_row *row),
                     qg_page *out);

/* Reads one of the caller's rows: runs sql, which takes (id, user id) as
 * its parameters, passing each row to row (may be NULL) with ud. False
 * after replying 404 "WHAT 'ID' not found" when there is no row, 503, or
 * the failure. */
bool qg_req_own_row(qg_req *r, const char *sql, const char *what, const char *id, qg_row_fn row,
                    void *ud);

/* Password fields: the longest accepted before the policy has its say. */
#define QG_PASSWORD_FIELD_MAX 1024

/* Reads the required "email" and "password" fields; false after replying
 * 400. */
bool qg_field_credentials(qg_req *r, const cJSON *body, const char **email, const char **password);

/* Checks the password against the policy, creates the account and replies
 * 201 with it (its id the audit target); else 400, 409 when the email is
 * taken, or the failure. */
void qg_reply_user_create(qg_req *r, const char *email, const char *password, qg_role role,
                          bool approved);

#endif
