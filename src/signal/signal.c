/*
 * signal.c - the TradingView alert: strict parse and validation, canonical
 * JSON and the fingerprint.
 *
 * This runs on every webhook, so it allocates nothing beyond the cJSON tree
 * of the body: fields are copied into the fixed-size qg_signal, messages are
 * formatted into the caller's qg_error, and the canonical JSON is written
 * into a stack buffer (its size is bounded by the struct's limits) before
 * it is hashed or appended to the caller's qg_buf.
 *
 * Every rejection is "field: reason" naming the offending value when it is
 * short. The field name handed back through field_out is either a string
 * literal or a copy kept in err->msg just after the message's NUL, so it
 * survives the cJSON tree (and the body) being freed.
 *
 * Canonical form: a fixed key order (symbol, timeframe, signal_type,
 * confidence, timestamp, price_data{open,high,low,close}, sl, tp, multi_tf,
 * confluences, id), the timestamp as ISO-8601 UTC, numbers in the shortest
 * form that reads back to the same double, no whitespace. sl and tp appear
 * only when set, id only when set (and never in the fingerprint).
 */
#include "signal/signal.h"

#include <quantgate/json.h>
#include <quantgate/num.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <math.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Big enough for the largest signal the limits allow (16 confluences of 48
 * characters, every one escaped, plus a 64-character id escaped). */
#define CANON_MAX QG_SIGNAL_JSON_MAX

/* Timestamps later than this are nonsense (year 9999). */
#define TS_MAX_MS 253402300799999LL

/* ---- errors ---- */

/* Points *field_out at a copy of name kept after the message's NUL in
 * err->msg, or at a literal when there is no room (or no err). */
static void set_field(qg_error *err, const char **field_out, const char *name, bool literal)
{
    if (!field_out) return;
    if (literal || !err) {
        *field_out = literal ? name : "payload";
        return;
    }
    size_t used = strlen(err->msg) + 1, n = strlen(name);
    if (used + n + 1 > sizeof err->msg) {
        *field_out = "payload";
        return;
    }
    memcpy(err->msg + used, name, n + 1);
    *field_out = err->msg + used;
}

/* Shortest decimal form of v that strtod reads back exactly. out needs 32
 * bytes. */
static int fmt_num(double v, char *out)
{
    if (v == 0) v = 0; /* -0 prints as 0 */
    /* Fast path for prices: the fewest decimals k such that m / 10^k (m an
     * integer below 2^53, 10^k exact) is v. That division is correctly
     * rounded, so the decimal m.10^-k reads back as v, and no shorter
     * decimal does. snprintf("%g") costs far more on this hot path. */
    static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11};
    double a = fabs(v);
    for (int k = 0; k < 12 && isfinite(v) && a * p10[k] < 9007199254740992.0; k++) {
        double m = nearbyint(v * p10[k]);
        if (m / p10[k] != v) continue;
        /* Digits of |m| right to left, the point k digits in. */
        unsigned long long u = (unsigned long long)fabs(m);
        char tmp[32];
        int t = 0;
        for (int d = 0; u || d <= k; d++) {
            if (d == k && k) tmp[t++] = '.';
            tmp[t++] = (char)('0' + u % 10);
            u /= 10;
        }
        int n = 0;
        if (m < 0) out[n++] = '-';
        while (t) out[n++] = tmp[--t];
        out[n] = 0;
        return n;
    }
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(out, 32, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v) return n;
    }
    return (int)strlen(out);
}

/* A short quoted preview of a user string for messages. */
static void preview(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s), max = cap > 8 ? cap - 6 : 0;
    size_t k = 0;
    out[k++] = '"';
    for (size_t i = 0; i < n && i < max && k + 2 < cap; i++)
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n > max && k + 4 < cap) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k++] = '"';
    out[k] = 0;
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

static qg_status type_error(qg_error *err, const char **field_out, const char *field,
                            const char *want, const cJSON *v)
{
    set_field(err, field_out, field, true);
    return qg_error_set(err, QG_EINVAL, "%s: expected %s, got %s", field, want, type_name(v));
}

/* ---- field readers ---- */

typedef enum { CS_SYMBOL, CS_TIMEFRAME, CS_TYPE, CS_PRINTABLE } charset;

static bool char_ok(charset cs, unsigned char c)
{
    switch (cs) {
    case CS_SYMBOL:
        return isalnum(c) || strchr("._-/:!", c);
    case CS_TIMEFRAME:
        return isalnum(c);
    case CS_TYPE:
        return isalnum(c) || strchr("._-", c);
    case CS_PRINTABLE:
        return c >= 0x20 && c < 0x7f;
    }
    return false;
}

static const char *charset_desc(charset cs)
{
    switch (cs) {
    case CS_SYMBOL:
        return "letters, digits and . _ - / : !";
    case CS_TIMEFRAME:
        return "letters and digits";
    case CS_TYPE:
        return "letters, digits and . _ -";
    case CS_PRINTABLE:
        return "printable ASCII";
    }
    return "";
}

/* Copies a string field of 1..max characters from cs into out. */
static qg_status read_str(const cJSON *v, const char *field, size_t max, charset cs, char *out,
                          const char **field_out, qg_error *err)
{
    if (!cJSON_IsString(v) || !v->valuestring)
        return type_error(err, field_out, field, "a string", v);
    const char *s = v->valuestring;
    size_t n = strlen(s);
    char pv[48];
    if (n == 0) {
        set_field(err, field_out, field, true);
        return qg_error_set(err, QG_EINVAL, "%s: must not be empty", field);
    }
    if (n > max) {
        preview(s, pv, sizeof pv);
        set_field(err, field_out, field, true);
        return qg_error_set(err, QG_EINVAL, "%s: %s is %zu characters, at most %zu", field, pv, n,
                            max);
    }
    for (size_t i = 0; i < n; i++) {
        if (!char_ok(cs, (unsigned char)s[i])) {
            preview(s, pv, sizeof pv);
            set_field(err, field_out, field, true);
            return qg_error_set(err, QG_EINVAL, "%s: %s has a character other than %s", field, pv,
                                charset_desc(cs));
        }
    }
    memcpy(out, s, n + 1);
    return QG_OK;
}

static qg_status read_price(const cJSON *v, const char *field, double *out, const char **field_out,
                            qg_error *err)
{
    if (!cJSON_IsNumber(v)) return type_error(err, field_out, field, "a number", v);
    double d = v->valuedouble;
    if (!isfinite(d) || d <= 0) {
        char nb[32];
        fmt_num(d, nb);
        set_field(err, field_out, field, true);
        return qg_error_set(err, QG_EINVAL, "%s: %s must be a price above 0", field, nb);
    }
    *out = d;
    return QG_OK;
}

static bool has_zone(const char *s, size_t n)
{
    if (n && (s[n - 1] == 'Z' || s[n - 1] == 'z')) return true;
    /* An offset's sign comes after the date's own dashes (10 chars). */
    for (size_t i = 10; i < n; i++)
        if (s[i] == '+' || s[i] == '-') return true;
    return false;
}

static qg_status read_timestamp(const cJSON *v, int64_t now_ms, int64_t *out,
                                const char **field_out, qg_error *err)
{
    static const char *F = "timestamp";
    char pv[48];
    int64_t ms = 0;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        char nb[32];
        fmt_num(d, nb);
        if (!isfinite(d) || d < 0 || d > (double)TS_MAX_MS) {
            set_field(err, field_out, F, true);
            return qg_error_set(err, QG_EINVAL, "%s: %s is not epoch seconds or milliseconds", F,
                                nb);
        }
        ms = d < 1e11 ? (int64_t)llround(d * 1000.0) : (int64_t)llround(d);
    } else if (cJSON_IsString(v) && v->valuestring) {
        const char *s = v->valuestring;
        size_t n = strlen(s);
        preview(s, pv, sizeof pv);
        if (n == 0) {
            set_field(err, field_out, F, true);
            return qg_error_set(err, QG_EINVAL, "%s: must not be empty", F);
        }
        size_t digits = 0;
        while (digits < n && isdigit((unsigned char)s[digits])) digits++;
        if (digits == n) {
            int64_t e;
            const char *end = qg_parse_int64(s, s + n, &e);
            if (!end || end != s + n || e > TS_MAX_MS) {
                set_field(err, field_out, F, true);
                return qg_error_set(err, QG_EINVAL, "%s: %s is not epoch seconds or milliseconds",
                                    F, pv);
            }
            ms = e < 100000000000LL ? e * 1000 : e;
        } else {
            const char *why = qg_time_parse_iso(s, n, &ms);
            if (why) {
                set_field(err, field_out, F, true);
                return qg_error_set(err, QG_EINVAL,
                                    "%s: %s is not an ISO-8601 time: %s (or use epoch seconds "
                                    "or milliseconds)",
                                    F, pv, why);
            }
            if (n <= 10 || !has_zone(s, n)) {
                set_field(err, field_out, F, true);
                return qg_error_set(err, QG_EINVAL,
                                    "%s: %s has no time zone (end it with Z or an offset like "
                                    "+01:00)",
                                    F, pv);
            }
            if (ms < 0) {
                set_field(err, field_out, F, true);
                return qg_error_set(err, QG_EINVAL, "%s: %s is before 1970", F, pv);
            }
        }
    } else {
        return type_error(err, field_out, F, "an ISO-8601 string or epoch number", v);
    }
    if (now_ms <= 0) now_ms = qg_time_now_ms();
    if (ms > now_ms + QG_MS_PER_DAY) {
        char iso[40];
        qg_time_format_iso(ms, iso, sizeof iso);
        set_field(err, field_out, F, true);
        return qg_error_set(err, QG_EINVAL, "%s: %s is more than 1 day in the future", F, iso);
    }
    *out = ms;
    return QG_OK;
}

/* Rejects a key that appears twice (cJSON keeps both; which one wins would
 * be an accident of the parser). */
static qg_status check_dup_keys(const cJSON *obj, const char *prefix, const char **field_out,
                                qg_error *err)
{
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && strcmp(a->string, b->string) == 0) {
                char name[96];
                snprintf(name, sizeof name, "%s%.60s", prefix, a->string[0] ? a->string : "\"\"");
                qg_error_set(err, QG_EINVAL, "%s: given more than once", name);
                set_field(err, field_out, name, false);
                return QG_EINVAL;
            }
    return QG_OK;
}

static qg_status unknown_field(const char *prefix, const char *key, const char *allowed,
                               const char **field_out, qg_error *err)
{
    char name[96];
    /* An empty key would give an empty field name: show it quoted. */
    snprintf(name, sizeof name, "%s%.60s", prefix, key[0] ? key : "\"\"");
    qg_error_set(err, QG_EINVAL, "%s: unknown field (allowed: %s)", name, allowed);
    set_field(err, field_out, name, false);
    return QG_EINVAL;
}

static qg_status read_price_data(const cJSON *pd, qg_signal *out, const char **field_out,
                                 qg_error *err)
{
    static const char *ALLOWED = "open, high, low, close";
    if (!cJSON_IsObject(pd)) return type_error(err, field_out, "price_data", "an object", pd);
    qg_status rc = check_dup_keys(pd, "price_data.", field_out, err);
    if (rc) return rc;
    const cJSON *o = NULL, *h = NULL, *l = NULL, *c = NULL;
    for (const cJSON *it = pd->child; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        if (!strcmp(k, "open"))
            o = it;
        else if (!strcmp(k, "high"))
            h = it;
        else if (!strcmp(k, "low"))
            l = it;
        else if (!strcmp(k, "close"))
            c = it;
        else
            return unknown_field("price_data.", k, ALLOWED, field_out, err);
    }
    const cJSON *vals[4] = {o, h, l, c};
    static const char *names[4] = {"price_data.open", "price_data.high", "price_data.low",
                                   "price_data.close"};
    double *dst[4] = {&out->open, &out->high, &out->low, &out->close};
    for (int i = 0; i < 4; i++) {
        if (!vals[i]) {
            set_field(err, field_out, names[i], true);
            return qg_error_set(err, QG_EINVAL, "%s: required", names[i]);
        }
        if ((rc = read_price(vals[i], names[i], dst[i], field_out, err))) return rc;
    }
    char a[32], b[32], lo[32], hi[32];
    fmt_num(out->low, lo);
    fmt_num(out->high, hi);
    if (out->high < out->low) {
        set_field(err, field_out, "price_data.high", true);
        return qg_error_set(err, QG_EINVAL,
                            "price_data.high: %s is below price_data.low %s (high must be >= "
                            "open, close and low)",
                            hi, lo);
    }
    if (out->open < out->low || out->open > out->high) {
        fmt_num(out->open, a);
        set_field(err, field_out, "price_data.open", true);
        return qg_error_set(err, QG_EINVAL, "price_data.open: %s is outside low-high %s-%s", a, lo,
                            hi);
    }
    if (out->close < out->low || out->close > out->high) {
        fmt_num(out->close, b);
        set_field(err, field_out, "price_data.close", true);
        return qg_error_set(err, QG_EINVAL, "price_data.close: %s is outside low-high %s-%s", b, lo,
                            hi);
    }
    return QG_OK;
}

static qg_status read_confluences(const cJSON *v, qg_signal *out, const char **field_out,
                                  qg_error *err)
{
    if (!cJSON_IsArray(v))
        return type_error(err, field_out, "confluences", "an array of strings", v);
    int n = cJSON_GetArraySize(v);
    if (n > QG_SIGNAL_CONFLUENCES_MAX) {
        set_field(err, field_out, "confluences", true);
        return qg_error_set(err, QG_EINVAL, "confluences: %d given, at most %d", n,
                            QG_SIGNAL_CONFLUENCES_MAX);
    }
    int i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        char name[32];
        snprintf(name, sizeof name, "confluences[%d]", i);
        qg_error tmp;
        qg_status rc = read_str(it, name, QG_SIGNAL_CONFLUENCE_MAX, CS_PRINTABLE,
                                out->confluences[i], NULL, &tmp);
        if (rc) {
            qg_error_set(err, tmp.code, "%s", tmp.msg);
            set_field(err, field_out, name, false);
            return rc;
        }
        for (int j = 0; j < i; j++) {
            if (strcasecmp(out->confluences[j], out->confluences[i]) == 0) {
                char pv[64];
                preview(out->confluences[i], pv, sizeof pv);
                qg_error_set(err, QG_EINVAL, "%s: %s duplicates confluences[%d]", name, pv, j);
                set_field(err, field_out, name, false);
                return QG_EINVAL;
            }
        }
    }
    out->nconfluences = i;
    return QG_OK;
}

/* ---- parse ---- */

enum {
    F_SYMBOL,
    F_TIMEFRAME,
    F_TYPE,
    F_CONFIDENCE,
    F_TIMESTAMP,
    F_PRICE,
    F_SL,
    F_TP,
    F_MULTI_TF,
    F_CONFLUENCES,
    F_ID,
    F_COUNT
};
static const char *const FIELD_NAMES[F_COUNT] = {
    "symbol", "timeframe", "signal_type", "confidence",  "timestamp", "price_data",
    "sl",     "tp",        "multi_tf",    "confluences", "id"};
static const char *const ALLOWED_TOP = "symbol, timeframe, signal_type, confidence, timestamp, "
                                       "price_data, sl, tp, multi_tf, confluences, id";

qg_status qg_signal_from_json(const cJSON *obj, int64_t now_ms, qg_signal *out,
                              const char **field_out, qg_error *err)
{
    memset(out, 0, sizeof *out);
    out->source = QG_SIGNAL_WEBHOOK;
    if (!cJSON_IsObject(obj)) {
        set_field(err, field_out, "body", true);
        return qg_error_set(err, QG_EINVAL, "body: expected a JSON object, got %s", type_name(obj));
    }
    qg_status rc = check_dup_keys(obj, "", field_out, err);
    if (rc) return rc;
    const cJSON *f[F_COUNT] = {0};
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        int idx = -1;
        for (int i = 0; i < F_COUNT; i++)
            if (!strcmp(k, FIELD_NAMES[i])) idx = i;
        if (idx < 0) return unknown_field("", k, ALLOWED_TOP, field_out, err);
        /* null means "absent" for the optional fields only. */
        f[idx] = (cJSON_IsNull(it) && idx >= F_SL) ? NULL : it;
    }
    /* Required fields are checked in field order, each just before it is
     * read, so the first problem reported is the first field's. */
#define REQUIRE(i)                                                                                 \
    do {                                                                                           \
        if (!f[i]) {                                                                               \
            set_field(err, field_out, FIELD_NAMES[i], true);                                       \
            return qg_error_set(err, QG_EINVAL, "%s: required", FIELD_NAMES[i]);                   \
        }                                                                                          \
    } while (0)
    REQUIRE(F_SYMBOL);
    if ((rc = read_str(f[F_SYMBOL], "symbol", QG_SIGNAL_SYMBOL_MAX, CS_SYMBOL, out->symbol,
                       field_out, err)))
        return rc;
    for (char *p = out->symbol; *p; p++) *p = (char)toupper((unsigned char)*p);
    REQUIRE(F_TIMEFRAME);
    if ((rc = read_str(f[F_TIMEFRAME], "timeframe", QG_SIGNAL_TIMEFRAME_MAX, CS_TIMEFRAME,
                       out->timeframe, field_out, err)))
        return rc;
    REQUIRE(F_TYPE);
    if ((rc = read_str(f[F_TYPE], "signal_type", QG_SIGNAL_TYPE_MAX, CS_TYPE, out->signal_type,
                       field_out, err)))
        return rc;
    REQUIRE(F_CONFIDENCE);
    const cJSON *c = f[F_CONFIDENCE];
    if (!cJSON_IsNumber(c)) return type_error(err, field_out, "confidence", "a number", c);
    if (!isfinite(c->valuedouble) || c->valuedouble < 0 || c->valuedouble > 100) {
        char nb[32];
        fmt_num(c->valuedouble, nb);
        set_field(err, field_out, "confidence", true);
        return qg_error_set(err, QG_EINVAL, "confidence: %s is out of range 0-100", nb);
    }
    out->confidence = c->valuedouble == 0 ? 0 : c->valuedouble;
    REQUIRE(F_TIMESTAMP);
    if ((rc = read_timestamp(f[F_TIMESTAMP], now_ms, &out->ts_ms, field_out, err))) return rc;
    REQUIRE(F_PRICE);
    if ((rc = read_price_data(f[F_PRICE], out, field_out, err))) return rc;
    if (f[F_SL]) {
        if ((rc = read_price(f[F_SL], "sl", &out->sl, field_out, err))) return rc;
        out->has_sl = true;
    }
    if (f[F_TP]) {
        if ((rc = read_price(f[F_TP], "tp", &out->tp, field_out, err))) return rc;
        out->has_tp = true;
    }
    if (f[F_MULTI_TF]) {
        if (!cJSON_IsBool(f[F_MULTI_TF]))
            return type_error(err, field_out, "multi_tf", "a boolean", f[F_MULTI_TF]);
        out->multi_tf = cJSON_IsTrue(f[F_MULTI_TF]);
    }
    if (f[F_CONFLUENCES] && (rc = read_confluences(f[F_CONFLUENCES], out, field_out, err)))
        return rc;
    if (f[F_ID] && (rc = read_str(f[F_ID], "id", QG_SIGNAL_CLIENT_ID_MAX, CS_PRINTABLE,
                                  out->client_id, field_out, err)))
        return rc;
#undef REQUIRE
    return QG_OK;
}

/* 1-based line and column (in bytes) of pos within s (as the HTTP layer
 * reports invalid JSON). */
static void line_col(const char *s, const char *pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (const char *p = s; p < pos; p++) {
        if (*p == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static qg_status syntax_error(const char *json, const char *pos, const char **field_out,
                              qg_error *err)
{
    int line, col;
    line_col(json, pos, &line, &col);
    set_field(err, field_out, "body", true);
    return qg_error_set(err, QG_EINVAL, "body: invalid JSON at line %d, column %d", line, col);
}

qg_status qg_signal_parse(const char *json, size_t len, int64_t now_ms, qg_signal *out,
                          const char **field_out, qg_error *err)
{
    memset(out, 0, sizeof *out);
    if (!json) json = "";
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", json[i]) && json[i]) i++;
    if (i == len) {
        set_field(err, field_out, "body", true);
        return qg_error_set(err, QG_EINVAL, "body: expected a JSON object, got nothing");
    }
    /* A NUL inside the body would end the parse early and hide the rest. */
    size_t text_len = strnlen(json, len);
    if (text_len < len) return syntax_error(json, json + text_len, field_out, err);
    /* A webhook payload's ~40 nodes and strings fit; a bigger body spills
     * to malloc. The document never leaves this function. */
    _Alignas(max_align_t) char scratch[8192];
    qg_json_scratch_begin(scratch, sizeof scratch);
    const char *end = NULL;
    qg_status rc;
    cJSON *doc = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (!doc) {
        const char *at = cJSON_GetErrorPtr();
        if (!end || end < json || end > json + len) end = at;
        if (!end || end < json || end > json + len) end = json + len;
        rc = syntax_error(json, end, field_out, err);
        goto out;
    }
    const char *p = end;
    while (p < json + len && strchr(" \t\r\n", *p)) p++;
    if (p < json + len)
        rc = syntax_error(json, p, field_out, err);
    else
        rc = qg_signal_from_json(doc, now_ms, out, field_out, err);
out:
    cJSON_Delete(doc);
    qg_json_scratch_end();
    return rc;
}

/* ---- canonical JSON ---- */

typedef struct {
    char *p;
    size_t n, cap;
} wbuf;

static void w_raw(wbuf *w, const char *s, size_t n)
{
    if (w->n + n >= w->cap) n = w->cap - 1 - w->n; /* cannot happen: CANON_MAX bounds it */
    memcpy(w->p + w->n, s, n);
    w->n += n;
    w->p[w->n] = 0;
}

static void w_str(wbuf *w, const char *s)
{
    w_raw(w, s, strlen(s));
}

/* Our strings are printable ASCII (validated), so only " and \ need
 * escaping; control bytes are escaped anyway for signals built in code. */
static void w_json_str(wbuf *w, const char *s)
{
    w_raw(w, "\"", 1);
    for (;;) {
        size_t run = 0; /* bytes copied as they are, in one go */
        while (s[run] && s[run] != '"' && s[run] != '\\' && (unsigned char)s[run] >= 0x20) run++;
        w_raw(w, s, run);
        s += run;
        unsigned char c = (unsigned char)*s;
        if (!c) break;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            w_raw(w, e, 2);
        } else {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            w_raw(w, e, 6);
        }
        s++;
    }
    w_raw(w, "\"", 1);
}

static void w_num(wbuf *w, double v)
{
    char nb[32];
    if (!isfinite(v)) v = 0; /* never valid; keeps the output JSON */
    int n = fmt_num(v, nb);
    w_raw(w, nb, (size_t)n);
}

static void w_key_num(wbuf *w, const char *key, double v)
{
    w_str(w, key);
    w_num(w, v);
}

/* Every field but the client id, the object left open. */
static void canonical_fields(const qg_signal *s, wbuf *w)
{
    char iso[40];
    w_str(w, "{\"symbol\":");
    w_json_str(w, s->symbol);
    w_str(w, ",\"timeframe\":");
    w_json_str(w, s->timeframe);
    w_str(w, ",\"signal_type\":");
    w_json_str(w, s->signal_type);
    w_key_num(w, ",\"confidence\":", s->confidence);
    qg_time_format_iso(s->ts_ms, iso, sizeof iso);
    w_str(w, ",\"timestamp\":");
    w_json_str(w, iso);
    w_key_num(w, ",\"price_data\":{\"open\":", s->open);
    w_key_num(w, ",\"high\":", s->high);
    w_key_num(w, ",\"low\":", s->low);
    w_key_num(w, ",\"close\":", s->close);
    w_str(w, "}");
    if (s->has_sl) w_key_num(w, ",\"sl\":", s->sl);
    if (s->has_tp) w_key_num(w, ",\"tp\":", s->tp);
    w_str(w, s->multi_tf ? ",\"multi_tf\":true" : ",\"multi_tf\":false");
    w_str(w, ",\"confluences\":[");
    int n = s->nconfluences < 0 ? 0 : s->nconfluences;
    if (n > QG_SIGNAL_CONFLUENCES_MAX) n = QG_SIGNAL_CONFLUENCES_MAX;
    for (int i = 0; i < n; i++) {
        if (i) w_raw(w, ",", 1);
        w_json_str(w, s->confluences[i]);
    }
    w_str(w, "]");
}

/* The client id when asked for and set, then the closing brace. */
static void canonical_end(const qg_signal *s, bool with_id, wbuf *w)
{
    if (with_id && s->client_id[0]) {
        w_str(w, ",\"id\":");
        w_json_str(w, s->client_id);
    }
    w_str(w, "}");
}

static void canonical(const qg_signal *s, bool with_id, wbuf *w)
{
    canonical_fields(s, w);
    canonical_end(s, with_id, w);
}

qg_status qg_signal_to_json(const qg_signal *s, qg_buf *out)
{
    char tmp[CANON_MAX];
    wbuf w = {tmp, 0, sizeof tmp};
    tmp[0] = 0;
    canonical(s, true, &w);
    return qg_buf_append(out, tmp, w.n);
}

cJSON *qg_signal_json(const qg_signal *s)
{
    char tmp[CANON_MAX];
    wbuf w = {tmp, 0, sizeof tmp};
    tmp[0] = 0;
    canonical(s, true, &w);
    /* Parsing our own canonical text keeps one definition of the shape. */
    return cJSON_ParseWithLength(tmp, w.n);
}

/* BLAKE2b-256 rather than SHA-256: the same width and collision
 * resistance, and four times faster in libsodium (0.6 against 2.3 us for
 * an alert on this project's machine), on a path every accept takes. */
static void fingerprint_of(const char *canon, size_t n, char *out)
{
    unsigned char h[QG_SIGNAL_FINGERPRINT_LEN / 2];
    crypto_generichash(h, sizeof h, (const unsigned char *)canon, n, NULL, 0);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof h; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[QG_SIGNAL_FINGERPRINT_LEN] = 0;
}

void qg_signal_fingerprint(const qg_signal *s, char *out)
{
    char tmp[CANON_MAX];
    wbuf w = {tmp, 0, sizeof tmp};
    tmp[0] = 0;
    canonical(s, false, &w);
    fingerprint_of(tmp, w.n, out);
}

size_t qg_signal_canonical(const qg_signal *s, char out[QG_SIGNAL_JSON_MAX],
                           char fingerprint[QG_SIGNAL_FINGERPRINT_LEN + 1])
{
    wbuf w = {out, 0, QG_SIGNAL_JSON_MAX};
    out[0] = 0;
    canonical_fields(s, &w);
    size_t fields = w.n;
    canonical_end(s, false, &w);
    fingerprint_of(out, w.n, fingerprint);
    w.n = fields; /* reopen the object for the id */
    canonical_end(s, true, &w);
    return w.n;
}

/* ---- small helpers ---- */

bool qg_signal_is_structure_break(const qg_signal *s)
{
    static const char *const prefixes[] = {"bos", "choch", "break_of_structure",
                                           "change_of_character"};
    const char *t = s->signal_type;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncasecmp(t, prefixes[i], n) == 0 &&
            (t[n] == 0 || t[n] == '_' || t[n] == '-' || t[n] == '.'))
            return true;
    }
    return false;
}

const char *qg_signal_source_name(qg_signal_source src)
{
    switch (src) {
    case QG_SIGNAL_WEBHOOK:
        return "webhook";
    case QG_SIGNAL_DETECTOR:
        return "detector";
    case QG_SIGNAL_API:
        return "api";
    }
    return "webhook";
}
