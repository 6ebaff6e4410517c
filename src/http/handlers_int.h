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

#endif
