/*
 * tz.c - IANA time zones from TZif files (RFC 8536, versions 1 to 3) and
 * the POSIX TZ rule in their footer.
 *
 * A zone is its list of transitions (UTC seconds -> local time type) plus
 * the footer rule ("GMT0BST,M3.5.0/1,M10.5.0", "EST5EDT,M3.2.0,M11.1.0")
 * that gives the offset after the last transition, so 2040 is right even
 * though the file lists transitions only up to 2037. Version 1 files have
 * no footer and 32-bit times; for v2+ the 64-bit block is read instead.
 *
 * Zones are loaded once per process: a mutex-guarded list keyed by name
 * with a reference count, so every session set that names Europe/London
 * shares one immutable qg_tz, and qg_tz_free drops a reference. Lookups
 * (qg_tz_offset) take no lock: a loaded zone never changes.
 */
#include "signal/rules.h"

#include <quantgate/config.h>
#include <quantgate/file.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_NAME_MAX    64
#define TZ_FILE_MAX    (1 << 20)
#define TZ_DIR_DEFAULT "/usr/share/zoneinfo"

/* One end of a DST period in a POSIX rule. */
typedef struct {
    char kind; /* 'J' (1-365, no Feb 29), 'N' (0-365), 'M' (month.week.day) */
    int a, b, c;
    int32_t secs; /* local time of day of the change, may be < 0 or > 24h (v3) */
} tz_date;

typedef struct {
    bool valid;
    bool has_dst;
    int32_t std_off, dst_off; /* seconds east of UTC */
    tz_date start, end;
} tz_rule;

struct qg_tz {
    char name[TZ_NAME_MAX + 1];
    int refs;
    struct qg_tz *next;
    size_t ntrans;
    int64_t *trans; /* UTC seconds, ascending */
    uint8_t *idx;   /* type index per transition */
    size_t ntypes;
    int32_t *utoff; /* per type */
    tz_rule rule;   /* footer; invalid for v1 files or an empty footer */
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static qg_tz *cache_head;

/* ---- POSIX TZ strings ---- */

static const char *p_name(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p, '>');
        return q && q > p + 1 ? q + 1 : NULL;
    }
    const char *s = p;
    while (isalpha((unsigned char)*p)) p++;
    return p - s >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]]; hours up to 167 (v3). */
static const char *p_time(const char *p, int32_t *out)
{
    int sign = 1;
    if (*p == '+' || *p == '-') sign = *p++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*p)) return NULL;
    long h = 0, m = 0, s = 0;
    while (isdigit((unsigned char)*p)) {
        h = h * 10 + (*p++ - '0');
        if (h > 167) return NULL;
    }
    if (*p == ':') {
        p++;
        if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1])) return NULL;
        m = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        if (*p == ':') {
            p++;
            if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1])) return NULL;
            s = (p[0] - '0') * 10 + (p[1] - '0');
            p += 2;
        }
    }
    if (m > 59 || s > 59) return NULL;
    *out = (int32_t)(sign * (h * 3600 + m * 60 + s));
    return p;
}

static const char *p_int(const char *p, int lo, int hi, int *out)
{
    if (!isdigit((unsigned char)*p)) return NULL;
    int v = 0;
    while (isdigit((unsigned char)*p)) {
        v = v * 10 + (*p++ - '0');
        if (v > hi) return NULL;
    }
    if (v < lo) return NULL;
    *out = v;
    return p;
}

static const char *p_date(const char *p, tz_date *d)
{
    memset(d, 0, sizeof *d);
    d->secs = 7200; /* 02:00 local by default */
    if (*p == 'J') {
        d->kind = 'J';
        p = p_int(p + 1, 1, 365, &d->a);
    } else if (*p == 'M') {
        d->kind = 'M';
        p = p_int(p + 1, 1, 12, &d->a);
        if (!p || *p++ != '.') return NULL;
        p = p_int(p, 1, 5, &d->b);
        if (!p || *p++ != '.') return NULL;
        p = p_int(p, 0, 6, &d->c);
    } else {
        d->kind = 'N';
        p = p_int(p, 0, 365, &d->a);
    }
    if (!p) return NULL;
    if (*p == '/') p = p_time(p + 1, &d->secs);
    return p;
}

/* Parses a POSIX TZ string into r; false when it is not one. */
static bool parse_rule(const char *s, tz_rule *r)
{
    memset(r, 0, sizeof *r);
    const char *p = p_name(s);
    int32_t off;
    if (!p || !(p = p_time(p, &off))) return false;
    r->std_off = -off; /* POSIX offsets count west of UTC */
    if (*p == 0) {
        r->valid = true;
        return true;
    }
    if (!(p = p_name(p))) return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = p_time(p, &off))) return false;
        r->dst_off = -off;
    }
    if (*p == 0) {
        /* No rule given: POSIX leaves it to the implementation; use the
         * US rules as glibc does. */
        r->start = (tz_date){'M', 3, 2, 0, 7200};
        r->end = (tz_date){'M', 11, 1, 0, 7200};
        r->valid = true;
        return true;
    }
    if (*p++ != ',' || !(p = p_date(p, &r->start))) return false;
    if (*p++ != ',' || !(p = p_date(p, &r->end))) return false;
    if (*p) return false;
    r->valid = true;
    return true;
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* UTC-midnight day number (days since 1970) of the rule date in year y. */
static int64_t rule_day(const tz_date *d, int64_t y)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t jan1 = qg_days_from_civil(y, 1, 1);
    switch (d->kind) {
    case 'J':
        return jan1 + d->a - 1 + (leap(y) && d->a >= 60 ? 1 : 0);
    case 'N':
        return jan1 + d->a;
    default: {
        int64_t first = qg_days_from_civil(y, (unsigned)d->a, 1);
        int dow = (int)(((first + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
        int day = 1 + (d->c - dow + 7) % 7 + (d->b - 1) * 7;
        int len = mdays[d->a - 1] + (d->a == 2 && leap(y) ? 1 : 0);
        while (day > len) day -= 7;
        return first + day - 1;
    }
    }
}

static int32_t rule_offset(const tz_rule *r, int64_t t)
{
    if (!r->has_dst) return r->std_off;
    int64_t local = t + r->std_off;
    int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    int64_t y;
    unsigned m, d;
    qg_civil_from_days(days, &y, &m, &d);
    /* The start is given in standard time, the end in daylight time. */
    int64_t start = rule_day(&r->start, y) * 86400 + r->start.secs - r->std_off;
    int64_t end = rule_day(&r->end, y) * 86400 + r->end.secs - r->dst_off;
    bool dst = start < end ? (t >= start && t < end) : (t < end || t >= start);
    return dst ? r->dst_off : r->std_off;
}

/* ---- TZif ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts;

static bool read_header(const unsigned char *p, size_t n, int *version, tzif_counts *c)
{
    if (n < 44 || memcmp(p, "TZif", 4) != 0) return false;
    *version = p[4] == 0 ? 1 : p[4] - '0';
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    return c->type >= 1 && c->type <= 256 && c->time < 1000000 && c->chars < 100000 &&
           c->leap < 100000 && (c->isut == 0 || c->isut == c->type) &&
           (c->isstd == 0 || c->isstd == c->type);
}

static size_t block_len(const tzif_counts *c, int tsize)
{
    return (size_t)c->time * tsize + c->time + (size_t)c->type * 6 + c->chars +
           (size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

/* Fills tz from the TZif bytes; false when malformed. */
static bool parse_tzif(const unsigned char *p, size_t n, qg_tz *tz)
{
    int version;
    tzif_counts c;
    if (!read_header(p, n, &version, &c)) return false;
    size_t v1 = block_len(&c, 4);
    if (44 + v1 > n) return false;
    int tsize = 4;
    const unsigned char *data = p + 44;
    const unsigned char *end = p + n;
    if (version >= 2) {
        const unsigned char *h2 = p + 44 + v1;
        if (!read_header(h2, (size_t)(end - h2), &version, &c)) return false;
        tsize = 8;
        data = h2 + 44;
        if (block_len(&c, 8) > (size_t)(end - data)) return false;
    }
    tz->ntrans = c.time;
    tz->ntypes = c.type;
    tz->trans = calloc(c.time ? c.time : 1, sizeof *tz->trans);
    tz->idx = calloc(c.time ? c.time : 1, 1);
    tz->utoff = calloc(c.type, sizeof *tz->utoff);
    if (!tz->trans || !tz->idx || !tz->utoff) return false;
    const unsigned char *q = data;
    for (uint32_t i = 0; i < c.time; i++, q += tsize)
        tz->trans[i] = tsize == 8 ? be64(q) : (int32_t)be32(q);
    for (uint32_t i = 0; i < c.time; i++) {
        tz->idx[i] = *q++;
        if (tz->idx[i] >= c.type) return false;
        if (i && tz->trans[i] <= tz->trans[i - 1]) return false;
    }
    for (uint32_t i = 0; i < c.type; i++, q += 6) {
        tz->utoff[i] = (int32_t)be32(q);
        if (tz->utoff[i] < -89999 || tz->utoff[i] > 93599) return false;
    }
    q += c.chars + (size_t)c.leap * (tsize + 4) + c.isstd + c.isut;
    if (version >= 2 && q < end && *q == '\n') {
        const unsigned char *nl = memchr(q + 1, '\n', (size_t)(end - q - 1));
        if (nl && nl - q - 1 < 128) {
            char footer[128];
            memcpy(footer, q + 1, (size_t)(nl - q - 1));
            footer[nl - q - 1] = 0;
            /* An empty footer or one we cannot read leaves the last type in
             * force, as RFC 8536 allows readers to. */
            if (footer[0] && !parse_rule(footer, &tz->rule)) tz->rule.valid = false;
        }
    }
    return true;
}

static void tz_destroy(qg_tz *tz)
{
    if (!tz) return;
    free(tz->trans);
    free(tz->idx);
    free(tz->utoff);
    free(tz);
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || strstr(name, "..")) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && !strchr("_-+/", c)) return false;
    }
    return true;
}

/* A built-in UTC so the defaults never depend on the zoneinfo files for it. */
static qg_tz *make_utc(const char *name)
{
    qg_tz *tz = calloc(1, sizeof *tz);
    if (!tz) return NULL;
    snprintf(tz->name, sizeof tz->name, "%s", name);
    tz->ntypes = 1;
    tz->utoff = calloc(1, sizeof *tz->utoff);
    if (!tz->utoff) {
        free(tz);
        return NULL;
    }
    return tz;
}

static qg_tz *cache_find(const char *name)
{
    for (qg_tz *t = cache_head; t; t = t->next)
        if (!strcmp(t->name, name)) return t;
    return NULL;
}

static qg_status load_file(const char *name, qg_tz **out, qg_error *err)
{
    const char *dir = qg_config_str("QG_ZONEINFO_DIR", TZ_DIR_DEFAULT);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *data = NULL;
    size_t n = 0;
    qg_error ferr = {0};
    qg_status rc = qg_file_read_all(path, TZ_FILE_MAX, &data, &n, &ferr);
    if (rc) {
        if (!strcmp(name, "UTC") || !strcmp(name, "Etc/UTC") || !strcmp(name, "GMT")) {
            *out = make_utc(name);
            return *out ? QG_OK : qg_error_set(err, QG_ENOMEM, "time zone %s: out of memory", name);
        }
        if (rc == QG_ENOTFOUND)
            return qg_error_set(err, QG_ENOTFOUND, "time zone %s: not found in %s", name, dir);
        return qg_error_set(err, rc, "time zone %s: %s", name, ferr.msg);
    }
    qg_tz *tz = calloc(1, sizeof *tz);
    if (!tz) {
        free(data);
        return qg_error_set(err, QG_ENOMEM, "time zone %s: out of memory", name);
    }
    snprintf(tz->name, sizeof tz->name, "%s", name);
    bool ok = parse_tzif((const unsigned char *)data, n, tz);
    free(data);
    if (!ok) {
        tz_destroy(tz);
        return qg_error_set(err, QG_EINVAL, "time zone %s: %s is not a valid TZif file", name,
                            path);
    }
    *out = tz;
    return QG_OK;
}

qg_status qg_tz_load(const char *name, qg_tz **out, qg_error *err)
{
    *out = NULL;
    if (!name || !name_ok(name))
        return qg_error_set(err, QG_EINVAL,
                            "time zone \"%.64s\": not a zone name (letters, digits, _ - + /, "
                            "like Europe/London)",
                            name ? name : "");
    pthread_mutex_lock(&cache_mu);
    qg_tz *hit = cache_find(name);
    if (hit) hit->refs++;
    pthread_mutex_unlock(&cache_mu);
    if (hit) {
        *out = hit;
        return QG_OK;
    }
    qg_tz *tz = NULL;
    qg_status rc = load_file(name, &tz, err);
    if (rc) return rc;
    pthread_mutex_lock(&cache_mu);
    hit = cache_find(name); /* another thread may have loaded it meanwhile */
    if (hit) {
        hit->refs++;
    } else {
        tz->refs = 1;
        tz->next = cache_head;
        cache_head = tz;
    }
    pthread_mutex_unlock(&cache_mu);
    if (hit) {
        tz_destroy(tz);
        tz = hit;
    }
    *out = tz;
    return QG_OK;
}

void qg_tz_free(qg_tz *tz)
{
    if (!tz) return;
    pthread_mutex_lock(&cache_mu);
    bool last = --tz->refs == 0;
    if (last) {
        for (qg_tz **pp = &cache_head; *pp; pp = &(*pp)->next) {
            if (*pp == tz) {
                *pp = tz->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&cache_mu);
    if (last) tz_destroy(tz);
}

int32_t qg_tz_offset(const qg_tz *tz, int64_t utc_ms)
{
    if (!tz) return 0;
    int64_t t = utc_ms >= 0 ? utc_ms / 1000 : -((-utc_ms + 999) / 1000);
    if (tz->ntrans == 0) return tz->rule.valid ? rule_offset(&tz->rule, t) : tz->utoff[0];
    if (t < tz->trans[0]) return tz->utoff[0];
    if (t >= tz->trans[tz->ntrans - 1] && tz->rule.valid) return rule_offset(&tz->rule, t);
    size_t lo = 0, hi = tz->ntrans; /* last transition <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->utoff[tz->idx[lo]];
}

const char *qg_tz_name(const qg_tz *tz)
{
    return tz ? tz->name : "UTC";
}
