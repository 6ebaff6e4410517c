/*
 * status.h - the one status type of quantgate and the error that carries a
 * message a person can read.
 *
 * Every fallible function returns a qg_status; QG_OK is zero so `if (rc)`
 * reads as "if it failed". Functions that can fail on user input also take a
 * `qg_error *err` (may be NULL) and fill it with a message that names the
 * field, line or value and the reason, like sqlite3_errmsg.
 */
#ifndef QUANTGATE_STATUS_H
#define QUANTGATE_STATUS_H

#include <stddef.h>

typedef enum {
    QG_OK = 0,
    QG_EINVAL,    /* bad input: the message says which and why */
    QG_ENOMEM,    /* allocation failed */
    QG_EIO,       /* file or socket error */
    QG_ENOTFOUND, /* no such thing */
    QG_EDENIED,   /* not allowed */
    QG_EAGAIN,    /* try again later */
    QG_ERANGE,    /* a cap was reached (buffer, count, size) */
    QG_EEXIST,    /* already exists */
    QG_EINTERNAL  /* a bug: an invariant did not hold */
} qg_status;

#define QG_ERROR_MSG_MAX 512

typedef struct qg_error {
    qg_status code;
    char msg[QG_ERROR_MSG_MAX];
} qg_error;

/* Short stable name of a status ("EINVAL"). Never NULL. */
const char *qg_status_name(qg_status code);

/* Fills err (if not NULL) with code and a printf-style message; returns code
 * so callers can write `return qg_error_set(err, QG_EINVAL, "...")`. */
qg_status qg_error_set(qg_error *err, qg_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (for adding context such as a
 * file name as the error travels up). No-op if err is NULL. */
void qg_error_prefix(qg_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resets err to QG_OK with an empty message. */
void qg_error_clear(qg_error *err);

#endif
