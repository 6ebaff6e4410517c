/*
 * bars_json.c - the streaming JSON bar parser for [[ts, o, h, l, c, v], ...].
 *
 * A byte-level state machine instead of a JSON tree: a tree of 10M rows
 * would take gigabytes, while this keeps one row and one token. States and
 * a token cut by a chunk boundary (kept in tok_buf) carry over between
 * feeds, so any chunking gives the same bars and the same messages. Tokens
 * that lie wholly inside a chunk are parsed in place.
 *
 * Rules: the timestamp is a number (epoch s or ms) or an ISO-8601 string;
 * prices may also be numeric strings ("0.0163", as exchange APIs send them);
 * values after the sixth are ignored (exchange klines carry extra fields). A
 * bad value makes the row (one inner array) bad, which lenient mode skips;
 * broken structure (a missing bracket, a nested object) is always an error.
 * Columns in messages are byte columns, 1-based.
 */
#include "market/bars_int.h"

#include <quantgate/num.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX 128

typedef enum {
    J_START,       /* before the outer '[' */
    J_FIRST,       /* after the outer '[': a bar or ']' */
    J_NEXT,        /* after ',' between bars: a bar */
    J_AFTER_ROW,   /* after a bar: ',' or ']' */
    J_VALUE,       /* inside a bar, a value expected */
    J_AFTER_VALUE, /* inside a bar, after a value: ',' or ']' */
    J_END          /* after the outer ']' */
} jstate;

typedef enum { TOK_NONE = 0, TOK_BARE, TOK_STRING } tok_kind;

struct qg_json {
    qg_bars_sink *s;
    jstate state;
    /* position: lines from 1; offsets count bytes before the current chunk */
    uint64_t line, off, line_start;
    /* a token cut by the end of a chunk */
    tok_kind tok;
    bool tok_esc, tok_long;
    size_t tok_len;
    qg_pos tok_pos;
    char tok_buf[TOK_MAX];
    /* the bar being read */
    unsigned nval;
    bool row_bad, estimated;
    uint64_t row_off;
    qg_bar bar;
    qg_pos pos[QG_F_COUNT];
    qg_day_cache day;
};

qg_json *qg_json_new(qg_bars_sink *s)
{
    qg_json *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->s = s;
    j->line = 1;
    return j;
}

void qg_json_free(qg_json *j)
{
    free(j);
}

static bool bare_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
           c == '-' || c == '.';
}

/* Index of the closing quote, of a raw newline (an error), or n. */
static size_t scan_string(bool *esc, const char *d, size_t n, size_t k)
{
    for (; k < n; k++) {
        if (*esc)
            *esc = false;
        else if (d[k] == '\\')
            *esc = true;
        else if (d[k] == '"' || d[k] == '\n')
            return k;
    }
    return n;
}

static bool is_numeric_text(const char *p, size_t n, double *out)
{
    return n && qg_parse_double(p, p + n, out) == p + n && isfinite(*out);
}

static void price_value(qg_json *j, unsigned idx, tok_kind kind, const char *p, size_t n)
{
    double *dst[] = {NULL, &j->bar.open, &j->bar.high, &j->bar.low, &j->bar.close, &j->bar.volume};
    qg_pos at = j->tok_pos;
    bool numeric_start = n && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.');
    bool ok;
    if (kind == TOK_BARE && qg_plain_decimal(p, p + n, dst[idx]) == p + n)
        ok = true;
    else if (kind == TOK_BARE && numeric_start)
        ok = qg_sink_num(j->s, p, n, at, (int)idx, dst[idx]);
    else if (kind == TOK_STRING && is_numeric_text(p, n, dst[idx]))
        ok = true;
    else
        ok = qg_sink_reject(j->s, at, "expected a number for '%s'", qg_bar_field_names[idx]);
    if (!ok) j->row_bad = true;
}

/* One complete token inside a bar. */
static void value(qg_json *j, tok_kind kind, const char *p, size_t n)
{
    unsigned idx = j->nval++;
    if (idx < QG_F_COUNT) j->pos[idx] = j->tok_pos;
    if (j->row_bad || idx >= QG_F_COUNT) return;
    if (j->tok_long) {
        j->row_bad = !qg_sink_reject(j->s, j->tok_pos, "value for '%s' is too long",
                                     qg_bar_field_names[idx]);
        return;
    }
    if (idx == QG_F_TS) {
        bool iso19 = n == 19 || (n == 20 && p[19] == 'Z');
        if (kind == TOK_STRING && iso19 && j->s->ts_kind == QG_TSK_ISO &&
            qg_iso19(&j->day, p, &j->bar.ts))
            return;
        if (!qg_sink_ts(j->s, p, n, j->tok_pos, &j->bar.ts)) j->row_bad = true;
        return;
    }
    price_value(j, idx, kind, p, n);
}

static void append_tok(qg_json *j, const char *p, size_t n)
{
    if (n > TOK_MAX - j->tok_len) {
        j->tok_long = true;
        n = TOK_MAX - j->tok_len;
    }
    memcpy(j->tok_buf + j->tok_len, p, n);
    j->tok_len += n;
}

static bool fail_at(qg_json *j, size_t i, const char *what)
{
    uint64_t at = j->off + i;
    return qg_sink_fail(j->s, (qg_pos){j->line, (unsigned)(at - j->line_start + 1)}, "%s", what);
}

/* Starts a token at d[i]; returns the index after what was consumed. */
static size_t start_token(qg_json *j, const char *d, size_t n, size_t i)
{
    j->tok_pos = (qg_pos){j->line, (unsigned)(j->off + i - j->line_start + 1)};
    j->tok_len = 0;
    j->tok_long = j->tok_esc = false;
    j->state = J_AFTER_VALUE;
    size_t k;
    if (d[i] == '"') {
        k = scan_string(&j->tok_esc, d, n, i + 1);
        if (k == n) {
            append_tok(j, d + i + 1, n - i - 1);
            j->tok = TOK_STRING;
            return n;
        }
        if (d[k] != '"') return fail_at(j, k, "unterminated string"), n;
        j->tok_long = k - i - 1 > TOK_MAX; /* the verdict it would get if cut */
        value(j, TOK_STRING, d + i + 1, k - i - 1);
        return k + 1;
    }
    k = i;
    while (k < n && bare_char(d[k])) k++;
    if (k == n) {
        append_tok(j, d + i, n - i);
        j->tok = TOK_BARE;
        return n;
    }
    j->tok_long = k - i > TOK_MAX;
    value(j, TOK_BARE, d + i, k - i);
    return k;
}

/* Continues a token cut by the previous chunk's end. */
static size_t continue_token(qg_json *j, const char *d, size_t n)
{
    size_t k;
    if (j->tok == TOK_STRING) {
        k = scan_string(&j->tok_esc, d, n, 0);
        append_tok(j, d, k);
        if (k == n) return n;
        if (d[k] != '"') return fail_at(j, k, "unterminated string"), n;
        j->tok = TOK_NONE;
        value(j, TOK_STRING, j->tok_buf, j->tok_len);
        return k + 1;
    }
    k = 0;
    while (k < n && bare_char(d[k])) k++;
    append_tok(j, d, k);
    if (k == n) return n;
    j->tok = TOK_NONE;
    value(j, TOK_BARE, j->tok_buf, j->tok_len);
    return k;
}

static void begin_row(qg_json *j, size_t i)
{
    j->state = J_VALUE;
    j->nval = 0;
    j->row_bad = false;
    j->row_off = j->off + i;
    memset(&j->bar, 0, sizeof j->bar);
}

static void end_row(qg_json *j, size_t i)
{
    qg_pos at = {j->line, (unsigned)(j->off + i - j->line_start + 1)};
    j->state = J_AFTER_ROW;
    if (j->row_bad) return;
    if (j->nval < 5) {
        qg_sink_reject(j->s, at,
                       "expected 5 or 6 values [timestamp, open, high, low, close, volume], "
                       "found %u",
                       j->nval);
        return;
    }
    if (j->nval == 5) j->pos[QG_F_VOLUME] = at;
    if (!j->estimated) {
        qg_sink_estimate(j->s, (size_t)(j->off + i - j->row_off) + 2);
        j->estimated = true;
    }
    if (!qg_sink_add_fast(j->s, &j->bar)) qg_sink_add(j->s, &j->bar, j->pos);
}

static const char *const NOT_A_BAR =
    "expected '[' to start a bar [timestamp, open, high, low, close, volume]";

/* One structural byte d[i] (not blank, not inside a token). */
static size_t step(qg_json *j, const char *d, size_t n, size_t i)
{
    char ch = d[i];
    switch (j->state) {
    case J_START:
        if (ch != '[') return fail_at(j, i, "expected a JSON array of bars, starting with '['"), n;
        j->state = J_FIRST;
        return i + 1;
    case J_FIRST:
        if (ch == ']') return j->state = J_END, i + 1;
        /* fall through */
    case J_NEXT:
        if (ch != '[') return fail_at(j, i, NOT_A_BAR), n;
        begin_row(j, i);
        return i + 1;
    case J_AFTER_ROW:
        if (ch == ',') return j->state = J_NEXT, i + 1;
        if (ch == ']') return j->state = J_END, i + 1;
        return fail_at(j, i, "expected ',' or ']' after a bar"), n;
    case J_VALUE:
        if (ch == ']' && j->nval == 0) return end_row(j, i), i + 1;
        if (ch == '"' || bare_char(ch)) return start_token(j, d, n, i);
        if (ch == '[' || ch == '{')
            return fail_at(j, i, "a bar holds numbers or strings, not arrays or objects"), n;
        return fail_at(j, i, "expected a value"), n;
    case J_AFTER_VALUE:
        if (ch == ',') return j->state = J_VALUE, i + 1;
        if (ch == ']') return end_row(j, i), i + 1;
        return fail_at(j, i, "expected ',' or ']' in a bar"), n;
    case J_END:
        return fail_at(j, i, "unexpected text after the end of the array"), n;
    }
    return n;
}

qg_status qg_json_feed(qg_json *j, const char *d, size_t n)
{
    size_t i = j->tok ? continue_token(j, d, n) : 0;
    while (i < n && !j->s->fatal) {
        char ch = d[i];
        if (ch == ' ' || ch == '\t' || ch == '\r') {
            i++;
        } else if (ch == '\n') {
            j->line++;
            j->line_start = j->off + ++i;
        } else if (j->state == J_START && j->off + i < 3 && ch == "\xEF\xBB\xBF"[j->off + i]) {
            i++; /* a UTF-8 byte order mark (EF BB BF) */
        } else {
            i = step(j, d, n, i);
        }
    }
    j->off += n;
    return j->s->fatal;
}

qg_status qg_json_finish(qg_json *j)
{
    if (j->s->fatal || j->state == J_END) return j->s->fatal;
    if (j->state == J_START) return QG_OK; /* blank input: the sink says "no bars" */
    qg_sink_fail(j->s, (qg_pos){j->line, (unsigned)(j->off - j->line_start + 1)},
                 "unexpected end of input: the array is not closed with ']'");
    return j->s->fatal;
}
