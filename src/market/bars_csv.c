/*
 * bars_csv.c - the CSV bar parser.
 *
 * The header maps each field position to a role (time, open, ..., or
 * ignored); rows are then parsed field by field straight from the input
 * bytes: a number is parsed in place and accepted when it ends exactly at
 * the delimiter, and only fields that do not (quotes, blanks, bad text) go
 * through the careful splitter that also builds the messages. Timestamps of
 * the shape "YYYY-MM-DDTHH:MM:SS[Z]" reuse the previous row's day number
 * when the date text is unchanged, so a row costs one memcmp for the date.
 *
 * Lines are split with memchr; a line cut by a chunk boundary is copied into
 * a fixed carry-over buffer (QG_BARS_LINE_MAX, the longest line accepted),
 * the only copy the parser makes. Lines are counted from 1, blank lines
 * included, so messages point at the line an editor shows.
 */
#include "market/bars_int.h"

#include <quantgate/num.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { R_IGNORE = 0, R_TS, R_DATE, R_TIME, R_OPEN, R_HIGH, R_LOW, R_CLOSE, R_VOLUME, R_COUNT };

#define CSV_MAX_FIELDS 1024

struct qg_csv {
    qg_bars_sink *s;
    uint64_t line; /* lines seen so far */
    bool have_header;
    bool estimated;
    char delim;
    unsigned nfields;
    unsigned col[R_COUNT]; /* 1-based field number of each role; 0: absent */
    unsigned char role[CSV_MAX_FIELDS];
    qg_day_cache day;
    size_t carry_len;
    char carry[QG_BARS_LINE_MAX];
};

static const struct {
    const char *name;
    unsigned char role;
} column_names[] = {
    {"timestamp", R_TS}, {"datetime", R_TS}, {"open_time", R_TS},  {"ts", R_TS},
    {"time", R_TIME},    {"date", R_DATE},   {"open", R_OPEN},     {"o", R_OPEN},
    {"high", R_HIGH},    {"h", R_HIGH},      {"low", R_LOW},       {"l", R_LOW},
    {"close", R_CLOSE},  {"c", R_CLOSE},     {"volume", R_VOLUME}, {"v", R_VOLUME},
};

qg_csv *qg_csv_new(qg_bars_sink *s)
{
    qg_csv *c = malloc(sizeof *c);
    if (!c) return NULL;
    memset(c, 0, offsetof(qg_csv, carry));
    c->s = s;
    c->delim = ',';
    return c;
}

void qg_csv_free(qg_csv *c)
{
    free(c);
}

static bool is_blank_char(char ch, char delim)
{
    return ch == ' ' || (ch == '\t' && delim != '\t');
}

/* Finds the field that starts at f: its value, trimmed of blanks and of one
 * pair of double quotes, in [*vs, *ve); returns where the field ends (the
 * delimiter or le). Text after a closing quote makes the raw field the
 * value, so that the caller reports it as it is. */
static const char *split_field(const char *f, const char *le, char delim, const char **vs,
                               const char **ve)
{
    const char *p = f;
    while (p < le && is_blank_char(*p, delim)) p++;
    const char *d = NULL;
    if (p < le && *p == '"') {
        const char *q = p + 1, *e;
        while ((e = memchr(q, '"', (size_t)(le - q))) && e + 1 < le && e[1] == '"') q = e + 2;
        if (!e) {
            *vs = p + 1;
            *ve = le;
            return le;
        }
        d = memchr(e + 1, delim, (size_t)(le - e - 1));
        if (!d) d = le;
        const char *r = e + 1;
        while (r < d && is_blank_char(*r, delim)) r++;
        if (r == d) {
            *vs = p + 1;
            *ve = e;
            return d;
        }
    } else {
        d = memchr(p, delim, (size_t)(le - p));
        if (!d) d = le;
    }
    const char *e = d;
    while (e > p && is_blank_char(e[-1], delim)) e--;
    *vs = p;
    *ve = e;
    return d;
}

/* ---- header ---- */

static char detect_delim(const char *p, const char *le)
{
    size_t comma = 0, semi = 0, tab = 0;
    bool quoted = false;
    for (; p < le; p++) {
        if (*p == '"') quoted = !quoted;
        if (quoted) continue;
        comma += *p == ',';
        semi += *p == ';';
        tab += *p == '\t';
    }
    if (semi > comma && semi >= tab) return ';';
    if (tab > comma && tab > semi) return '\t';
    return ',';
}

static unsigned char role_of(const char *vs, const char *ve)
{
    while (vs < ve && (*vs == ' ' || *vs == '"' || *vs == '\'')) vs++;
    while (ve > vs && (ve[-1] == ' ' || ve[-1] == '"' || ve[-1] == '\'')) ve--;
    size_t n = (size_t)(ve - vs);
    for (size_t i = 0; i < sizeof column_names / sizeof column_names[0]; i++)
        if (strlen(column_names[i].name) == n && strncasecmp(vs, column_names[i].name, n) == 0)
            return column_names[i].role;
    return R_IGNORE;
}

/* The header's field names joined by ", " for messages. */
static void header_list(const qg_csv *c, const char *p, const char *le, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (const char *f = p;;) {
        const char *vs, *ve, *fe = split_field(f, le, c->delim, &vs, &ve);
        int w = snprintf(out + len, cap - len, "%s%.*s", len ? ", " : "", (int)(ve - vs), vs);
        if (w < 0 || (size_t)w >= cap - len) {
            if (cap > 4) memcpy(out + cap - 4, "...", 4);
            return;
        }
        len += (size_t)w;
        if (fe == le) return;
        f = fe + 1;
    }
}

/* "date" and "time" columns are combined when there is no single time
 * column; either alone is the time column. */
static void resolve_time(qg_csv *c)
{
    unsigned *col = c->col;
    if (!col[R_TS] && col[R_DATE] && !col[R_TIME]) col[R_TS] = col[R_DATE], col[R_DATE] = 0;
    if (!col[R_TS] && col[R_TIME] && !col[R_DATE]) col[R_TS] = col[R_TIME], col[R_TIME] = 0;
    if (col[R_TS]) {
        for (unsigned k = 0; k < c->nfields; k++)
            if (c->role[k] == R_DATE || c->role[k] == R_TIME) c->role[k] = R_IGNORE;
        c->role[col[R_TS] - 1] = R_TS;
        col[R_DATE] = col[R_TIME] = 0;
    }
}

static qg_status header(qg_csv *c, const char *p, const char *le)
{
    qg_pos at = {c->line, 0};
    c->delim = detect_delim(p, le);
    unsigned k = 0;
    for (const char *f = p;; k++) {
        if (k == CSV_MAX_FIELDS)
            return qg_sink_fail(c->s, at, "the header has more than %d columns", CSV_MAX_FIELDS),
                   c->s->fatal;
        const char *vs, *ve, *fe = split_field(f, le, c->delim, &vs, &ve);
        unsigned char r = role_of(vs, ve);
        if (r && c->col[r]) r = R_IGNORE; /* a repeated name: the first one counts */
        c->role[k] = r;
        if (r) c->col[r] = k + 1;
        if (fe == le) break;
        f = fe + 1;
    }
    c->nfields = k + 1;
    resolve_time(c);
    static const struct {
        unsigned char role;
        const char *what;
    } need[] = {{R_TS, "'timestamp' (or time, date, datetime, ts, open_time)"},
                {R_OPEN, "'open'"},
                {R_HIGH, "'high'"},
                {R_LOW, "'low'"},
                {R_CLOSE, "'close'"}};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (c->col[need[i].role] || (need[i].role == R_TS && c->col[R_DATE])) continue;
        char list[200];
        header_list(c, p, le, list, sizeof list);
        qg_sink_fail(c->s, at, "missing column %s (header has: %s)", need[i].what, list);
        return c->s->fatal;
    }
    c->have_header = true;
    return QG_OK;
}

/* ---- rows ---- */

/* The common timestamp shapes, once the first row has fixed the kind.
 * NULL sends the field to the careful path (which also words errors). */
static const char *ts_iso_fast(qg_csv *c, const char *f, const char *le, int64_t *out)
{
    if (le - f < 19 || !qg_iso19(&c->day, f, out)) return NULL;
    const char *e = f + 19;
    if (e < le && *e == 'Z') e++;
    return e == le || *e == c->delim ? e : NULL;
}

static const char *ts_epoch_fast(qg_csv *c, const char *f, const char *le, int64_t *out)
{
    int64_t v;
    const char *e = qg_parse_int64(f, le, &v);
    if (!e || (e != le && *e != c->delim)) return NULL;
    bool sec = v > -100000000000LL && v < 100000000000LL;
    if (sec != (c->s->ts_kind == QG_TSK_SEC) || v > 10000000000000000LL || v < -10000000000000000LL)
        return NULL;
    *out = sec ? v * 1000 : v;
    return e;
}

static const char *field_ts(qg_csv *c, const char *f, const char *le, unsigned k, int64_t *out)
{
    const char *fe = NULL;
    if (c->s->ts_kind == QG_TSK_ISO)
        fe = ts_iso_fast(c, f, le, out);
    else if (c->s->ts_kind != QG_TSK_UNKNOWN)
        fe = ts_epoch_fast(c, f, le, out);
    if (fe) return fe;
    const char *vs, *ve;
    fe = split_field(f, le, c->delim, &vs, &ve);
    return qg_sink_ts(c->s, vs, (size_t)(ve - vs), (qg_pos){c->line, k + 1}, out) ? fe : NULL;
}

static inline const char *field_num(qg_csv *c, const char *f, const char *le, unsigned k, int field,
                                    double *out)
{
    const char *e = qg_plain_decimal(f, le, out);
    if (e && (e == le || *e == c->delim)) return e;
    e = qg_parse_double(f, le, out);
    if (e && (e == le || *e == c->delim) && isfinite(*out)) return e;
    const char *vs, *ve, *fe = split_field(f, le, c->delim, &vs, &ve);
    return qg_sink_num(c->s, vs, (size_t)(ve - vs), (qg_pos){c->line, k + 1}, field, out) ? fe
                                                                                          : NULL;
}

static const char *field_skip(qg_csv *c, const char *f, const char *le)
{
    const char *vs, *ve;
    if (f < le && *f != '"' && *f != ' ') {
        const char *d = memchr(f, c->delim, (size_t)(le - f));
        return d ? d : le;
    }
    return split_field(f, le, c->delim, &vs, &ve);
}

static unsigned count_fields(const qg_csv *c, const char *p, const char *le)
{
    unsigned n = 1;
    const char *vs, *ve;
    for (const char *fe; (fe = split_field(p, le, c->delim, &vs, &ve)) != le; p = fe + 1) n++;
    return n;
}

typedef struct {
    const char *date, *date_end, *time, *time_end;
} split_dt;

/* "2024-01-02" and "13:45:00" from two columns become one ISO text. */
static bool combine_dt(qg_csv *c, const split_dt *dt, int64_t *out)
{
    char buf[96];
    size_t dn = (size_t)(dt->date_end - dt->date), tn = (size_t)(dt->time_end - dt->time);
    qg_pos at = {c->line, c->col[R_DATE]};
    if (dn > 40 || tn > 40) {
        char q[40];
        return qg_sink_reject(c->s, at, "timestamp '%s' is too long",
                              qg_sink_quote(dt->date, dn, q));
    }
    memcpy(buf, dt->date, dn);
    size_t n = dn;
    if (tn) {
        buf[n++] = 'T';
        memcpy(buf + n, dt->time, tn);
        n += tn;
    }
    return qg_sink_ts(c->s, buf, n, at, out);
}

static qg_status reject_count(qg_csv *c, const char *p, const char *le, unsigned col)
{
    qg_sink_reject(c->s, (qg_pos){c->line, col}, "expected %u fields as in the header, found %u",
                   c->nfields, count_fields(c, p, le));
    return c->s->fatal;
}

static inline const char *field(qg_csv *c, const char *f, const char *le, unsigned k, qg_bar *b,
                                split_dt *dt)
{
    switch (c->role[k]) {
    case R_TS:
        return field_ts(c, f, le, k, &b->ts);
    case R_OPEN:
        return field_num(c, f, le, k, QG_F_OPEN, &b->open);
    case R_HIGH:
        return field_num(c, f, le, k, QG_F_HIGH, &b->high);
    case R_LOW:
        return field_num(c, f, le, k, QG_F_LOW, &b->low);
    case R_CLOSE:
        return field_num(c, f, le, k, QG_F_CLOSE, &b->close);
    case R_VOLUME:
        return field_num(c, f, le, k, QG_F_VOLUME, &b->volume);
    case R_DATE:
        return split_field(f, le, c->delim, &dt->date, &dt->date_end);
    case R_TIME:
        return split_field(f, le, c->delim, &dt->time, &dt->time_end);
    default:
        return field_skip(c, f, le);
    }
}

static qg_status row(qg_csv *c, const char *p, const char *le)
{
    qg_bar b = {0};
    split_dt dt = {0};
    unsigned k = 0;
    for (const char *f = p;;) {
        const char *fe = field(c, f, le, k, &b, &dt);
        if (!fe) return c->s->fatal; /* rejected: the row is dropped */
        k++;
        if (fe == le) break;
        if (k == c->nfields) return reject_count(c, p, le, k + 1);
        f = fe + 1;
    }
    if (k < c->nfields) return reject_count(c, p, le, k + 1);
    if (c->col[R_DATE] && !combine_dt(c, &dt, &b.ts)) return c->s->fatal;
    if (!c->estimated) {
        qg_sink_estimate(c->s, (size_t)(le - p) + 1);
        c->estimated = true;
    }
    if (qg_sink_add_fast(c->s, &b)) return QG_OK;
    unsigned tcol = c->col[R_TS] ? c->col[R_TS] : c->col[R_DATE];
    const qg_pos pos[QG_F_COUNT] = {
        {c->line, tcol},          {c->line, c->col[R_OPEN]},  {c->line, c->col[R_HIGH]},
        {c->line, c->col[R_LOW]}, {c->line, c->col[R_CLOSE]}, {c->line, c->col[R_VOLUME]},
    };
    qg_sink_add(c->s, &b, pos);
    return c->s->fatal;
}

static qg_status line(qg_csv *c, const char *p, const char *le)
{
    c->line++;
    if (le > p && le[-1] == '\r') le--;
    if (c->line == 1 && le - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    const char *q = p;
    while (q < le && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
    if (q == le) return QG_OK; /* blank lines are allowed anywhere */
    return c->have_header ? row(c, p, le) : header(c, p, le);
}

static qg_status too_long(qg_csv *c)
{
    qg_sink_fail(c->s, (qg_pos){c->line + 1, 0}, "line is longer than %u KiB",
                 QG_BARS_LINE_MAX / 1024);
    return c->s->fatal;
}

qg_status qg_csv_feed(qg_csv *c, const char *data, size_t n)
{
    const char *p = data, *end = data + n;
    if (c->carry_len) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (take > QG_BARS_LINE_MAX - c->carry_len) return too_long(c);
        memcpy(c->carry + c->carry_len, p, take);
        c->carry_len += take;
        if (!nl) return QG_OK;
        size_t len = c->carry_len;
        c->carry_len = 0;
        line(c, c->carry, c->carry + len);
        p = nl + 1;
    }
    while (p < end && !c->s->fatal) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            if ((size_t)(end - p) > QG_BARS_LINE_MAX) return too_long(c);
            memcpy(c->carry, p, (size_t)(end - p));
            c->carry_len = (size_t)(end - p);
            break;
        }
        line(c, p, nl);
        p = nl + 1;
    }
    return c->s->fatal;
}

qg_status qg_csv_finish(qg_csv *c)
{
    if (c->carry_len && !c->s->fatal) {
        size_t n = c->carry_len;
        c->carry_len = 0;
        line(c, c->carry, c->carry + n);
    }
    return c->s->fatal;
}
