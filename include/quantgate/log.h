/*
 * log.h - leveled logging to stderr.
 *
 * One line per event: "2026-01-02T03:04:05.678Z INFO  message". The level
 * comes from QG_LOG_LEVEL (debug, info, warn, error; default info) unless a
 * program sets it. Callers never pass secrets here.
 */
#ifndef QUANTGATE_LOG_H
#define QUANTGATE_LOG_H

typedef enum { QG_LOG_DEBUG = 0, QG_LOG_INFO, QG_LOG_WARN, QG_LOG_ERROR, QG_LOG_OFF } qg_log_level;

void qg_log_set_level(qg_log_level level);
qg_log_level qg_log_get_level(void);
/* Parses "debug|info|warn|error|off"; returns -1 when unknown. */
int qg_log_level_parse(const char *s);
void qg_log(qg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define qg_debug(...) qg_log(QG_LOG_DEBUG, __VA_ARGS__)
#define qg_info(...)  qg_log(QG_LOG_INFO, __VA_ARGS__)
#define qg_warn(...)  qg_log(QG_LOG_WARN, __VA_ARGS__)
#define qg_err(...)   qg_log(QG_LOG_ERROR, __VA_ARGS__)

#endif
