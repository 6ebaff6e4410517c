/*
 * time.c - UTC date arithmetic (Howard Hinnant's civil-day algorithms),
 * ISO-8601 parsing and formatting, timeframes.
 *
 * The ISO parser reads fixed-width fields by hand: loaders call it once per
 * row, so it must not allocate, call locale functions or use sscanf.
 */
#include <quantgate/time.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t qg_time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t qg_time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct timespec qg_time_deadline(clockid_t clock, int64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    return ts;
}

int64_t qg_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void qg_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

/* Reads exactly w digits at s[*i]; returns -1 if any is not a digit. */
static int digits(const char *s, size_t n, size_t *i, int w)
{
    if (*i + (size_t)w > n) return -1;
    int v = 0;
    for (int k = 0; k < w; k++) {
        unsigned c = (unsigned)(s[*i + k] - '0');
        if (c > 9) return -1;
        v = v * 10 + (int)c;
    }
    *i += (size_t)w;
    return v;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

const char *qg_time_parse_iso(const char *s, size_t n, int64_t *out_ms)
{
    static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t i = 0;
    int y = digits(s, n, &i, 4);
    if (y < 0 || i >= n || s[i++] != '-') return "expected a date YYYY-MM-DD";
    int mo = digits(s, n, &i, 2);
    if (mo < 0 || i >= n || s[i++] != '-') return "expected a date YYYY-MM-DD";
    int d = digits(s, n, &i, 2);
    if (d < 0) return "expected a date YYYY-MM-DD";
    if (mo < 1 || mo > 12) return "month out of range";
    int maxd = mdays[mo - 1] + (mo == 2 && is_leap(y));
    if (d < 1 || d > maxd) return "day out of range";
    int64_t ms = qg_days_from_civil(y, (unsigned)mo, (unsigned)d) * QG_MS_PER_DAY;
    if (i == n) {
        *out_ms = ms;
        return NULL;
    }
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return "expected 'T' or a space after the date";
    i++;
    int hh = digits(s, n, &i, 2);
    if (hh < 0 || i >= n || s[i++] != ':') return "expected a time HH:MM";
    int mm = digits(s, n, &i, 2);
    if (mm < 0) return "expected a time HH:MM";
    int ss = 0, frac_ms = 0;
    if (i < n && s[i] == ':') {
        i++;
        ss = digits(s, n, &i, 2);
        if (ss < 0) return "expected seconds after HH:MM:";
        if (i < n && (s[i] == '.' || s[i] == ',')) {
            i++;
            int scale = 100, nd = 0;
            while (i < n && (unsigned)(s[i] - '0') <= 9) {
                frac_ms += (s[i] - '0') * scale;
                scale /= 10;
                i++;
                nd++;
            }
            if (nd == 0) return "expected digits after the decimal point";
        }
    }
    if (hh > 23 || mm > 59 || ss > 60) return "time out of range";
    ms += hh * QG_MS_PER_HOUR + mm * QG_MS_PER_MIN + ss * QG_MS_PER_SEC + frac_ms;
    if (i == n) {
        *out_ms = ms;
        return NULL;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        *out_ms = ms;
        return NULL;
    }
    if (s[i] != '+' && s[i] != '-') return "unexpected text after the time";
    int sign = s[i++] == '-' ? -1 : 1;
    int oh = digits(s, n, &i, 2), om = 0;
    if (oh < 0) return "expected a zone offset +HH:MM";
    if (i < n && s[i] == ':') i++;
    if (i < n) {
        om = digits(s, n, &i, 2);
        if (om < 0) return "expected a zone offset +HH:MM";
    }
    if (i != n) return "unexpected text after the zone offset";
    if (oh > 23 || om > 59) return "zone offset out of range";
    *out_ms = ms - sign * (oh * QG_MS_PER_HOUR + om * QG_MS_PER_MIN);
    return NULL;
}

qg_status qg_time_parse_arg(const char *s, int64_t *out_ms, qg_error *err)
{
    size_t n = strlen(s);
    bool all_digits = n > 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned)(s[i] - '0') > 9) all_digits = false;
    if (all_digits && n != 4 && n != 8) {
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        if (errno) return qg_error_set(err, QG_EINVAL, "'%s': timestamp out of range", s);
        *out_ms = v < 100000000000LL ? v * 1000 : v;
        return QG_OK;
    }
    const char *why = qg_time_parse_iso(s, n, out_ms);
    if (why)
        return qg_error_set(err, QG_EINVAL,
                            "'%s' is not a date: %s (use YYYY-MM-DD, an ISO-8601 date-time, or "
                            "epoch seconds or milliseconds)",
                            s, why);
    return QG_OK;
}

/* The low `width` decimal digits of v, zero-padded; returns the end. */
static char *put_digits(char *o, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

void qg_time_format_iso(int64_t ms, char *out, size_t cap)
{
    int64_t days = ms >= 0 ? ms / QG_MS_PER_DAY : -((-ms + QG_MS_PER_DAY - 1) / QG_MS_PER_DAY);
    int64_t rem = ms - days * QG_MS_PER_DAY;
    int64_t y;
    unsigned m, d;
    qg_civil_from_days(days, &y, &m, &d);
    int hh = (int)(rem / QG_MS_PER_HOUR), mi = (int)(rem / QG_MS_PER_MIN % 60);
    int ss = (int)(rem / 1000 % 60), msec = (int)(rem % 1000);
    if (y >= 0 && y <= 9999 && cap >= 25) {
        /* By hand: snprintf was a tenth of a webhook accept's parse. */
        char *o = out;
        o = put_digits(o, (unsigned)y, 4);
        *o++ = '-';
        o = put_digits(o, m, 2);
        *o++ = '-';
        o = put_digits(o, d, 2);
        *o++ = 'T';
        o = put_digits(o, (unsigned)hh, 2);
        *o++ = ':';
        o = put_digits(o, (unsigned)mi, 2);
        *o++ = ':';
        o = put_digits(o, (unsigned)ss, 2);
        if (msec) {
            *o++ = '.';
            o = put_digits(o, (unsigned)msec, 3);
        }
        *o++ = 'Z';
        *o = 0;
        return;
    }
    if (msec)
        snprintf(out, cap, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d, hh, mi, ss,
                 msec);
    else
        snprintf(out, cap, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d, hh, mi, ss);
}

qg_status qg_timeframe_parse(const char *s, int64_t *out_ms, qg_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    int64_t unit = 0;
    if (end != s && end[0] && !end[1]) {
        switch (end[0]) {
        case 'm':
            unit = QG_MS_PER_MIN;
            break;
        case 'h':
            unit = QG_MS_PER_HOUR;
            break;
        case 'd':
            unit = QG_MS_PER_DAY;
            break;
        case 'w':
            unit = 7 * QG_MS_PER_DAY;
            break;
        }
    }
    if (!unit || errno || v < 1 || v > 100000)
        return qg_error_set(err, QG_EINVAL,
                            "timeframe '%s' is not valid: use a count and a unit, e.g. 1m, 5m, "
                            "15m, 1h, 4h, 1d, 1w",
                            s);
    *out_ms = v * unit;
    return QG_OK;
}

void qg_timeframe_format(int64_t ms, char *out, size_t cap)
{
    static const struct {
        int64_t ms;
        char unit;
    } units[] = {{7 * QG_MS_PER_DAY, 'w'},
                 {QG_MS_PER_DAY, 'd'},
                 {QG_MS_PER_HOUR, 'h'},
                 {QG_MS_PER_MIN, 'm'},
                 {QG_MS_PER_SEC, 's'}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms > 0 && ms % units[i].ms == 0) {
            snprintf(out, cap, "%lld%c", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(out, cap, "%lldms", (long long)ms);
}

int64_t qg_time_bucket(int64_t ts, int64_t tf_ms)
{
    /* 1970-01-01 was a Thursday; Monday-aligned weeks start 4 days later. */
    int64_t origin = (tf_ms % (7 * QG_MS_PER_DAY) == 0) ? 4 * QG_MS_PER_DAY : 0;
    int64_t t = ts - origin;
    int64_t b = t >= 0 ? t / tf_ms : -((-t + tf_ms - 1) / tf_ms);
    return b * tf_ms + origin;
}
