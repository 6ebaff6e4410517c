/*
 * status.c - names of status codes and the message-carrying error.
 * Messages are truncated to QG_ERROR_MSG_MAX-1 bytes, never overflowed.
 */
#include <quantgate/status.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *qg_status_name(qg_status code)
{
    switch (code) {
    case QG_OK:
        return "OK";
    case QG_EINVAL:
        return "EINVAL";
    case QG_ENOMEM:
        return "ENOMEM";
    case QG_EIO:
        return "EIO";
    case QG_ENOTFOUND:
        return "ENOTFOUND";
    case QG_EDENIED:
        return "EDENIED";
    case QG_EAGAIN:
        return "EAGAIN";
    case QG_ERANGE:
        return "ERANGE";
    case QG_EEXIST:
        return "EEXIST";
    case QG_EINTERNAL:
        return "EINTERNAL";
    }
    return "EUNKNOWN";
}

qg_status qg_error_set(qg_error *err, qg_status code, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void qg_error_prefix(qg_error *err, const char *fmt, ...)
{
    if (!err) return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[QG_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
}

void qg_error_clear(qg_error *err)
{
    if (!err) return;
    err->code = QG_OK;
    err->msg[0] = '\0';
}
