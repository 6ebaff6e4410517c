/*
 * audit.h - the audit log: every mutating request and every login attempt.
 *
 * Rows are append-only (no route updates or deletes them); they are written
 * by the HTTP layer after the response status is known and read by admins
 * with filters, newest first.
 */
#ifndef QG_AUDIT_H
#define QG_AUDIT_H

#include "store/store.h"

#include <quantgate/status.h>

#include <stdint.h>

typedef struct qg_audit_entry {
    char id[QG_ID_MAX];
    int64_t ts;              /* ms */
    const char *actor_id;    /* NULL for anonymous */
    const char *actor_email; /* NULL for anonymous; the attempted email on a failed login */
    const char *action;      /* "POST /api/datasets", "auth.login" */
    const char *target;      /* the id or name acted on, or NULL */
    const char *outcome;     /* "ok", "denied", "error" */
    int status;              /* HTTP status */
    const char *address;     /* client address */
    const char *request_id;
} qg_audit_entry;

/* Appends e (id and ts are filled in when empty/0). */
qg_status qg_audit_append(qg_conn *c, qg_audit_entry *e, qg_error *err);

typedef struct qg_audit_filter {
    const char *actor;   /* actor id or email, or NULL */
    const char *action;  /* exact, or NULL */
    const char *outcome; /* exact, or NULL */
    int64_t from, to;    /* ms, 0 = open */
    const char *before;  /* id cursor, or NULL */
    int limit;
} qg_audit_filter;

/* Calls fn for each matching entry, newest first; the entry's strings are
 * valid only during the call. */
qg_status qg_audit_query(qg_conn *c, const qg_audit_filter *f,
                         qg_status (*fn)(void *ud, const qg_audit_entry *e), void *ud,
                         qg_error *err);

#endif
