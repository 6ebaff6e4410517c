/*
 * bars_load.c - the bar loaders' shared half: the sink that validates and
 * stores rows for both formats, the parser object that picks CSV or JSON,
 * and the file and memory entry points.
 *
 * Memory: the columns are reserved once from the input size and the first
 * row's length (rows ~= bytes / row bytes), so a large file is loaded
 * without repeated growth; if the estimate overshot by more than 10% the
 * columns are trimmed at the end. Nothing is allocated per row.
 */
#include "market/bars_int.h"

#include <quantgate/num.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

const char *const qg_bar_field_names[QG_F_COUNT] = {"timestamp", "open",  "high",
                                                    "low",       "close", "volume"};

void qg_sink_init(qg_bars_sink *s, const char *name, const qg_load_opts *opts, qg_bars *out)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->out = out;
    s->n0 = out->n;
    s->lenient = opts && opts->lenient;
    if (out->n) { /* appending: the new rows must continue the series */
        s->have_prev = true;
        s->prev_ts = out->ts[out->n - 1];
    }
}

static void format_at(const qg_bars_sink *s, qg_pos pos, const char *reason, char *out, size_t cap)
{
    if (pos.line && pos.col)
        snprintf(out, cap, "%s:%llu:%u: %s", s->name, (unsigned long long)pos.line, pos.col,
                 reason);
    else if (pos.line)
        snprintf(out, cap, "%s:%llu: %s", s->name, (unsigned long long)pos.line, reason);
    else
        snprintf(out, cap, "%s: %s", s->name, reason);
}

/* Records reason as the error that stops the load. */
static bool fail_at(qg_bars_sink *s, qg_pos pos, const char *reason)
{
    format_at(s, pos, reason, s->err.msg, sizeof s->err.msg);
    s->err.code = s->fatal = QG_EINVAL;
    return false;
}

bool qg_sink_reject(qg_bars_sink *s, qg_pos pos, const char *fmt, ...)
{
    char reason[QG_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (!s->lenient) return fail_at(s, pos, reason);
    s->rep.skipped++;
    if (s->rep.n_reported < QG_LOAD_MAX_REPORTED)
        format_at(s, pos, reason, s->rep.reported[s->rep.n_reported++], QG_LOAD_MSG_MAX);
    return false;
}

bool qg_sink_fail(qg_bars_sink *s, qg_pos pos, const char *fmt, ...)
{
    char reason[QG_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return fail_at(s, pos, reason);
}

const char *qg_sink_quote(const char *p, size_t n, char *out)
{
    size_t k = 0;
    for (; k < n && k < 32; k++) out[k] = isprint((unsigned char)p[k]) ? p[k] : '?';
    if (k < n) memcpy(out + k, "...", 3), k += 3;
    out[k] = '\0';
    return out;
}

static const char *kind_name(qg_ts_kind k)
{
    switch (k) {
    case QG_TSK_ISO:
        return "ISO-8601";
    case QG_TSK_SEC:
        return "epoch seconds";
    case QG_TSK_MS:
        return "epoch milliseconds";
    default:
        return "unknown";
    }
}

/* Epoch numbers: below 1e11 they are seconds (1e11 s is the year 5138, and
 * 1e11 ms is 1973), otherwise milliseconds. */
static bool parse_epoch(const char *p, size_t n, qg_ts_kind *kind, int64_t *ms)
{
    int64_t iv;
    if (qg_parse_int64(p, p + n, &iv) == p + n) {
        bool sec = iv > -100000000000LL && iv < 100000000000LL;
        if (!sec && (iv > 10000000000000000LL || iv < -10000000000000000LL)) return false;
        *kind = sec ? QG_TSK_SEC : QG_TSK_MS;
        *ms = sec ? iv * 1000 : iv;
        return true;
    }
    double v;
    if (qg_parse_double(p, p + n, &v) != p + n || !(fabs(v) < 1e16)) return false;
    *kind = fabs(v) < 1e11 ? QG_TSK_SEC : QG_TSK_MS;
    *ms = llround(*kind == QG_TSK_SEC ? v * 1000.0 : v);
    return true;
}

bool qg_sink_ts(qg_bars_sink *s, const char *p, size_t n, qg_pos pos, int64_t *out_ms)
{
    char q[40];
    qg_ts_kind kind;
    if (n == 0) return qg_sink_reject(s, pos, "missing timestamp");
    if (n >= 5 && p[4] == '-') {
        const char *why = qg_time_parse_iso(p, n, out_ms);
        if (why) return qg_sink_reject(s, pos, "timestamp '%s': %s", qg_sink_quote(p, n, q), why);
        kind = QG_TSK_ISO;
    } else if (!parse_epoch(p, n, &kind, out_ms)) {
        return qg_sink_reject(s, pos,
                              "timestamp '%s' is neither an ISO-8601 date nor epoch seconds or "
                              "milliseconds",
                              qg_sink_quote(p, n, q));
    }
    if (s->ts_kind == QG_TSK_UNKNOWN) s->ts_kind = kind;
    if (kind != s->ts_kind)
        return qg_sink_reject(s, pos, "timestamp '%s' is %s but the first row used %s",
                              qg_sink_quote(p, n, q), kind_name(kind), kind_name(s->ts_kind));
    return true;
}

bool qg_sink_num(qg_bars_sink *s, const char *p, size_t n, qg_pos pos, int f, double *out)
{
    char q[40];
    const char *name = qg_bar_field_names[f];
    if (n == 0) {
        if (f == QG_F_VOLUME) return *out = 0, true; /* a blank volume means none traded */
        return qg_sink_reject(s, pos, "missing value for '%s'", name);
    }
    const char *e = qg_parse_double(p, p + n, out);
    if (e != p + n) {
        const char *t = p + (*p == '-' || *p == '+');
        bool nonfinite =
            (p + n - t >= 3) && (!strncasecmp(t, "nan", 3) || !strncasecmp(t, "inf", 3));
        return qg_sink_reject(s, pos, "%s for '%s', found '%s'",
                              nonfinite ? "expected a finite number" : "expected a number", name,
                              qg_sink_quote(p, n, q));
    }
    if (!isfinite(*out))
        return qg_sink_reject(s, pos, "'%s' is out of range for '%s'", qg_sink_quote(p, n, q),
                              name);
    return true;
}

void qg_sink_estimate(qg_bars_sink *s, size_t row_bytes)
{
    if (!s->size_hint || !row_bytes || s->est_rows) return;
    /* A little over the estimate: later rows are often a byte or two longer
     * or shorter than the first, and growing by doubling at 99% would
     * double the reservation. */
    uint64_t est = s->size_hint / row_bytes;
    s->est_rows = (size_t)(est + est / 32 + 16);
}

static bool grow(qg_bars_sink *s)
{
    qg_bars *o = s->out;
    size_t want = o->cap ? o->cap * 2 : 4096;
    if (o->n < s->est_rows && s->est_rows > o->cap) want = s->est_rows;
    if (qg_bars_reserve(o, want) == QG_OK) return true;
    s->err.code = s->fatal = QG_ENOMEM;
    snprintf(s->err.msg, sizeof s->err.msg, "%s: out of memory for %zu bars", s->name, want);
    return false;
}

bool qg_sink_add(qg_bars_sink *s, const qg_bar *b, const qg_pos pos[QG_F_COUNT])
{
    static const int price[] = {QG_F_OPEN, QG_F_HIGH, QG_F_LOW, QG_F_CLOSE, QG_F_VOLUME};
    const double v[] = {0, b->open, b->high, b->low, b->close, b->volume};
    for (size_t k = 0; k < 5; k++)
        if (v[price[k]] < 0)
            return qg_sink_reject(s, pos[price[k]], "%s (%.15g) is negative",
                                  qg_bar_field_names[price[k]], v[price[k]]);
    if (b->high < b->low)
        return qg_sink_reject(s, pos[QG_F_HIGH], "high (%.15g) is below low (%.15g)", b->high,
                              b->low);
    static const int ends[] = {QG_F_OPEN, QG_F_CLOSE};
    for (size_t k = 0; k < 2; k++) {
        int f = ends[k];
        if (v[f] < b->low || v[f] > b->high)
            return qg_sink_reject(s, pos[f], "%s (%.15g) is outside [low, high] = [%.15g, %.15g]",
                                  qg_bar_field_names[f], v[f], b->low, b->high);
    }
    if (s->have_prev && b->ts <= s->prev_ts) {
        char a[40], p[40];
        qg_time_format_iso(b->ts, a, sizeof a);
        qg_time_format_iso(s->prev_ts, p, sizeof p);
        return qg_sink_reject(s, pos[QG_F_TS], "timestamp %s is not after the previous row's %s", a,
                              p);
    }
    if (s->out->n >= s->out->cap && !grow(s)) return false;
    return qg_sink_add_fast(s, b);
}

/* Gives back what the estimate reserved beyond the rows read, when that is
 * more than 10%: realloc shrinks in place (or by mremap) without copying. */
static void trim(qg_bars *o)
{
    if (o->cap <= o->n + o->n / 10 || o->n == 0) return;
    double **cols[] = {&o->open, &o->high, &o->low, &o->close, &o->volume};
    int64_t *ts = realloc(o->ts, o->n * sizeof *ts);
    if (ts) o->ts = ts;
    for (size_t k = 0; k < 5; k++) {
        double *p = realloc(*cols[k], o->n * sizeof *p);
        if (p) *cols[k] = p;
    }
    o->cap = o->n; /* realloc failing to shrink leaves a larger block: still valid */
}

qg_status qg_sink_finish(qg_bars_sink *s)
{
    if (s->fatal) return s->fatal;
    s->rep.rows = s->out->n - s->n0;
    if (s->rep.rows == 0) {
        if (s->rep.skipped)
            qg_sink_fail(s, (qg_pos){0}, "no bars (%zu bad row%s skipped; first: %s)",
                         s->rep.skipped, s->rep.skipped == 1 ? "" : "s", s->rep.reported[0]);
        else
            qg_sink_fail(s, (qg_pos){0}, "no bars");
        return s->fatal;
    }
    trim(s->out);
    s->out->timeframe_ms = qg_bars_detect_timeframe(s->out);
    return QG_OK;
}

/* ---- the parser object: format choice and dispatch ---- */

#define AUTO_PENDING_MAX 4096

struct qg_bars_parser {
    qg_bars_sink s;
    qg_bars_format format; /* AUTO until the first meaningful byte */
    qg_csv *csv;
    qg_json *json;
    qg_progress_fn progress;
    void *progress_ud;
    uint64_t fed;
    size_t pending_len; /* blank bytes (and a BOM) seen while still AUTO */
    char pending[AUTO_PENDING_MAX];
    char name[];
};

qg_bars_parser *qg_bars_parser_new(const char *name, qg_bars_format format,
                                   const qg_load_opts *opts, qg_bars *out)
{
    size_t nlen = strlen(name);
    qg_bars_parser *p = calloc(1, sizeof *p + nlen + 1);
    if (!p) return NULL;
    memcpy(p->name, name, nlen + 1);
    qg_sink_init(&p->s, p->name, opts, out);
    p->format = format;
    if (opts) {
        p->progress = opts->progress;
        p->progress_ud = opts->progress_ud;
    }
    bool ok = format == QG_FORMAT_CSV    ? (p->csv = qg_csv_new(&p->s)) != NULL
              : format == QG_FORMAT_JSON ? (p->json = qg_json_new(&p->s)) != NULL
                                         : true;
    if (!ok) {
        free(p);
        return NULL;
    }
    return p;
}

void qg_bars_parser_size_hint(qg_bars_parser *p, uint64_t bytes)
{
    p->s.size_hint = bytes;
}

static qg_status dispatch(qg_bars_parser *p, const char *data, size_t n)
{
    if (p->csv) return qg_csv_feed(p->csv, data, n);
    return qg_json_feed(p->json, data, n);
}

static qg_status choose(qg_bars_parser *p, qg_bars_format f)
{
    p->format = f;
    if (f == QG_FORMAT_JSON ? !(p->json = qg_json_new(&p->s)) : !(p->csv = qg_csv_new(&p->s))) {
        p->s.err.code = p->s.fatal = QG_ENOMEM;
        snprintf(p->s.err.msg, sizeof p->s.err.msg, "%s: out of memory", p->name);
        return QG_ENOMEM;
    }
    qg_status rc = p->pending_len ? dispatch(p, p->pending, p->pending_len) : QG_OK;
    p->pending_len = 0;
    return rc;
}

/* While the format is AUTO, skips blanks and a UTF-8 BOM (kept in pending
 * so the chosen parser still sees them and counts lines right) and decides
 * on the first other byte. Returns how many bytes were consumed. */
static size_t detect(qg_bars_parser *p, const char *data, size_t n, qg_status *rc)
{
    size_t i = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        bool bom = p->fed + i < 3 && (c == 0xEF || c == 0xBB || c == 0xBF);
        bool blank = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        if ((!bom && !blank) || p->pending_len == AUTO_PENDING_MAX) {
            *rc = choose(p, c == '[' ? QG_FORMAT_JSON : QG_FORMAT_CSV);
            return i;
        }
        p->pending[p->pending_len++] = (char)c;
    }
    *rc = QG_OK;
    return i;
}

qg_status qg_bars_parser_feed(qg_bars_parser *p, const char *data, size_t n, qg_error *err)
{
    qg_status rc = p->s.fatal;
    if (!rc && p->format == QG_FORMAT_AUTO) {
        size_t used = detect(p, data, n, &rc);
        p->fed += used;
        data += used;
        n -= used;
    }
    if (!rc && n) {
        rc = dispatch(p, data, n);
        p->fed += n;
    }
    if (rc) {
        if (err) *err = p->s.err;
        return rc;
    }
    if (p->progress) p->progress(p->progress_ud, p->fed, p->s.size_hint);
    return QG_OK;
}

qg_status qg_bars_parser_finish(qg_bars_parser *p, qg_load_report *rep, qg_error *err)
{
    qg_status rc = p->s.fatal;
    if (!rc && p->csv) rc = qg_csv_finish(p->csv);
    if (!rc && p->json) rc = qg_json_finish(p->json);
    if (!rc) rc = qg_sink_finish(&p->s);
    if (rep) {
        p->s.rep.rows = p->s.out->n - p->s.n0;
        *rep = p->s.rep;
    }
    if (rc && err) *err = p->s.err;
    return rc;
}

void qg_bars_parser_free(qg_bars_parser *p)
{
    if (!p) return;
    qg_csv_free(p->csv);
    qg_json_free(p->json);
    free(p);
}

/* ---- whole inputs ---- */

typedef struct {
    qg_bars_parser *p;
    qg_error *err;
} feed_ctx;

static qg_status feed_cb(void *ud, const char *data, size_t n)
{
    feed_ctx *ctx = ud;
    return qg_bars_parser_feed(ctx->p, data, n, ctx->err);
}

static bool ends_with_json(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".json") == 0;
}

qg_status qg_bars_load_file(const char *path, const qg_load_opts *opts, qg_bars *out,
                            qg_load_report *rep, qg_error *err)
{
    qg_bars_format f = ends_with_json(path) ? QG_FORMAT_JSON : QG_FORMAT_AUTO;
    qg_bars_parser *p = qg_bars_parser_new(path, f, opts, out);
    if (!p) return qg_error_set(err, QG_ENOMEM, "%s: out of memory", path);
    struct stat st;
    if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        qg_bars_parser_size_hint(p, (uint64_t)st.st_size);
    feed_ctx ctx = {p, err};
    /* Progress is reported by the parser (it knows the size hint), so
     * qg_file_feed is not given the callback too. */
    qg_status rc = qg_file_feed(path, 0, feed_cb, &ctx, NULL, NULL, err);
    if (!rc) rc = qg_bars_parser_finish(p, rep, err);
    qg_bars_parser_free(p);
    return rc;
}

qg_status qg_bars_load_mem(const char *name, const char *data, size_t n, const qg_load_opts *opts,
                           qg_bars *out, qg_load_report *rep, qg_error *err)
{
    qg_bars_parser *p = qg_bars_parser_new(name, QG_FORMAT_AUTO, opts, out);
    if (!p) return qg_error_set(err, QG_ENOMEM, "%s: out of memory", name);
    qg_bars_parser_size_hint(p, n);
    qg_status rc = QG_OK;
    /* Slices of 4 MiB so a progress callback sees the input move. */
    for (size_t off = 0; off < n && !rc; off += 4u << 20)
        rc = qg_bars_parser_feed(p, data + off, n - off < (4u << 20) ? n - off : 4u << 20, err);
    if (!rc) rc = qg_bars_parser_finish(p, rep, err);
    qg_bars_parser_free(p);
    return rc;
}
