/*
 * config.c - environment and .env configuration. The parser is line based
 * and keeps no state beyond the environment itself.
 */
#include <quantgate/config.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

qg_status qg_config_load_dotenv(const char *path, qg_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return qg_error_set(err, QG_ENOTFOUND, "%s: no such file", path);
        return qg_error_set(err, QG_EIO, "%s: %s", path, strerror(errno));
    }
    qg_status rc = QG_OK;
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        if (strncmp(s, "export ", 7) == 0) s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq || eq == s) {
            rc = qg_error_set(err, QG_EINVAL, "%s:%d: expected KEY=VALUE", path, lineno);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s);
        char *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        }
        for (char *k = key; *k; k++) {
            if (!isalnum((unsigned char)*k) && *k != '_') {
                rc = qg_error_set(err, QG_EINVAL, "%s:%d: invalid variable name '%s'", path, lineno,
                                  key);
                goto out;
            }
        }
        setenv(key, val, 0);
    }
out:
    fclose(f);
    return rc;
}

const char *qg_config_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v && *v) ? v : def;
}

qg_status qg_config_int(const char *name, int64_t def, int64_t *out, qg_error *err)
{
    const char *v = qg_config_str(name, NULL);
    if (!v) {
        *out = def;
        return QG_OK;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v)
        return qg_error_set(err, QG_EINVAL, "%s: '%s' is not an integer", name, v);
    *out = x;
    return QG_OK;
}

qg_status qg_config_int_range(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                              qg_error *err)
{
    qg_status rc = qg_config_int(name, def, out, err);
    if (rc) return rc;
    if (*out < min || *out > max)
        return qg_error_set(err, QG_EINVAL, "%s=%lld: must be between %lld and %lld", name,
                            (long long)*out, (long long)min, (long long)max);
    return QG_OK;
}

qg_status qg_config_double(const char *name, double def, double min, double max, double *out,
                           qg_error *err)
{
    const char *v = qg_config_str(name, NULL);
    *out = def;
    if (!v) return QG_OK;
    char *end = NULL;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d))
        return qg_error_set(err, QG_EINVAL, "%s='%.40s': not a number", name, v);
    if (d < min || d > max)
        return qg_error_set(err, QG_EINVAL, "%s=%g: must be between %g and %g", name, d, min, max);
    *out = d;
    return QG_OK;
}

qg_status qg_config_bool(const char *name, bool def, bool *out, qg_error *err)
{
    const char *v = qg_config_str(name, NULL);
    if (!v) {
        *out = def;
        return QG_OK;
    }
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return (*out = true), QG_OK;
        if (strcasecmp(v, no[i]) == 0) return (*out = false), QG_OK;
    }
    return qg_error_set(err, QG_EINVAL, "%s: '%s' is not a boolean (use on or off)", name, v);
}

bool qg_config_is_secret(const char *name)
{
    /* Slack, Discord and webhook URLs carry their credential in the path. */
    static const char *const marks[] = {"KEY", "TOKEN", "SECRET", "PASSWORD", "WEBHOOK_URL"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strcasestr(name, marks[i])) return true;
    return false;
}

void qg_config_mask(const char *value, char *out, size_t cap)
{
    size_t n = strlen(value);
    if (n < 12) {
        snprintf(out, cap, "****");
        return;
    }
    /* Keep a recognisable prefix and the last four, like "sk-...a1b2". */
    size_t pre = value[2] == '-' ? 3 : 2;
    snprintf(out, cap, "%.*s...%s", (int)pre, value, value + n - 4);
}
