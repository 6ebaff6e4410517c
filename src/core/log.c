/*
 * log.c - leveled logging. A line is formatted into a stack buffer and
 * written with one fputs so concurrent threads do not interleave mid-line.
 */
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static atomic_int g_level = -1; /* -1: not yet read from the environment */

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int qg_log_level_parse(const char *s)
{
    for (int i = 0; i <= QG_LOG_OFF; i++)
        if (strcasecmp(s, level_names[i]) == 0) return i;
    return -1;
}

void qg_log_set_level(qg_log_level level)
{
    atomic_store(&g_level, (int)level);
}

qg_log_level qg_log_get_level(void)
{
    int lv = atomic_load(&g_level);
    if (lv < 0) {
        const char *env = getenv("QG_LOG_LEVEL");
        lv = env ? qg_log_level_parse(env) : -1;
        if (lv < 0) lv = QG_LOG_INFO;
        atomic_store(&g_level, lv);
    }
    return (qg_log_level)lv;
}

void qg_log(qg_log_level level, const char *fmt, ...)
{
    if (level < qg_log_get_level() || level >= QG_LOG_OFF) return;
    char line[2048];
    char ts[40];
    qg_time_format_iso(qg_time_now_ms(), ts, sizeof ts);
    static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    int n = snprintf(line, sizeof line, "%s %s ", ts, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (len + 1 < sizeof line) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
}
