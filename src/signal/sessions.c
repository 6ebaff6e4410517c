/*
 * sessions.c - killzones: named wall-clock windows in a time zone, on some
 * local days of the week, with per-symbol overrides.
 *
 * A window is matched by turning the UTC instant into local time with the
 * zone's offset at that instant (so daylight saving moves the window in
 * UTC, as traders expect: London 07:00 is 07:00 UTC in winter and 06:00
 * UTC in summer). Start is inclusive, end exclusive, both with millisecond
 * precision; end before start wraps past midnight and the day mask is the
 * local day of the start; end equal to start is the whole day.
 *
 * Spec syntax (QG_SIGNAL_SESSIONS, QG_SIGNAL_SESSIONS_<SYMBOL>): items
 * separated by ';', each "name=[Zone ]HH:MM-HH:MM[ days]" where days is
 * "mon-fri" (the default), "daily", "sat-sun", "mon,wed,fri", "fri-mon";
 * the zone defaults to UTC. "none" is a set with no windows. A spec
 * replaces the defaults (or, per symbol, the set used for that symbol).
 *
 * The set is immutable after parsing except through qg_sessions_set_symbol,
 * which the service calls at start-up before any thread matches.
 */
#include "signal/rules.h"

#include <quantgate/time.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DAYS_ALL     0x7fu
#define DAYS_WEEKDAY 0x1fu

typedef struct {
    qg_session_window w[QG_SESSIONS_MAX];
    int n;
} window_list;

typedef struct {
    char symbol[QG_SIGNAL_SYMBOL_MAX + 1];
    window_list list;
} symbol_override;

struct qg_sessions {
    window_list def;
    symbol_override *over;
    size_t nover, capover;
};

static const char *const DAY_NAMES[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static void list_release(window_list *l)
{
    for (int i = 0; i < l->n; i++) qg_tz_free((qg_tz *)l->w[i].tz);
    l->n = 0;
}

/* ---- spec parsing ---- */

static int day_index(const char *s, size_t n)
{
    if (n != 3) return -1;
    for (int i = 0; i < 7; i++)
        if (strncasecmp(s, DAY_NAMES[i], 3) == 0) return i;
    return -1;
}

/* "mon-fri", "daily", "weekdays", "weekends", "sat-sun", "mon,wed,fri-sun". */
static bool parse_days(const char *s, unsigned *mask)
{
    if (!strcasecmp(s, "daily") || !strcasecmp(s, "all")) {
        *mask = DAYS_ALL;
        return true;
    }
    if (!strcasecmp(s, "weekdays")) {
        *mask = DAYS_WEEKDAY;
        return true;
    }
    if (!strcasecmp(s, "weekends")) {
        *mask = 0x60u;
        return true;
    }
    unsigned m = 0;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *dash = memchr(p, '-', len);
        int a, b;
        if (dash) {
            a = day_index(p, (size_t)(dash - p));
            b = day_index(dash + 1, len - (size_t)(dash - p) - 1);
        } else {
            a = b = day_index(p, len);
        }
        if (a < 0 || b < 0) return false;
        for (int d = a;; d = (d + 1) % 7) { /* fri-mon wraps over the weekend */
            m |= 1u << d;
            if (d == b) break;
        }
        p += len;
        if (*p == ',') p++;
        if (comma && !*p) return false;
    }
    if (!m) return false;
    *mask = m;
    return true;
}

/* "HH:MM" (00:00-24:00) into minutes. */
static bool parse_hhmm(const char *s, size_t n, int *out)
{
    if (n != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return false;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && m != 0)) return false;
    *out = h * 60 + m;
    return true;
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > QG_SESSION_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return false;
    return true;
}

/* Parses one "name=[Zone ]HH:MM-HH:MM[ days]" item into w (loading the
 * zone). The error names the reason; the caller adds the item. */
static qg_status parse_item(char *item, qg_session_window *w, qg_error *err)
{
    memset(w, 0, sizeof *w);
    char *eq = strchr(item, '=');
    if (!eq) return qg_error_set(err, QG_EINVAL, "expected name=[Zone ]HH:MM-HH:MM[ days]");
    char *name = item, *end = eq;
    while (end > name && isspace((unsigned char)end[-1])) end--;
    if (!name_ok(name, (size_t)(end - name)))
        return qg_error_set(err, QG_EINVAL, "the name must be 1-%d letters, digits, _ or -",
                            QG_SESSION_NAME_MAX);
    memcpy(w->name, name, (size_t)(end - name));
    w->name[end - name] = 0;
    char *tok[4];
    int nt = 0;
    char *save = NULL;
    for (char *t = strtok_r(eq + 1, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (nt == 3) return qg_error_set(err, QG_EINVAL, "unexpected \"%.32s\"", t);
        tok[nt++] = t;
    }
    if (nt == 0) return qg_error_set(err, QG_EINVAL, "expected [Zone ]HH:MM-HH:MM[ days]");
    int ti = 0;
    const char *zone = "UTC";
    if (!strchr(tok[0], ':') || strchr(tok[0], '/') || nt == 3) {
        /* A zone name has no ':'; "UTC" and "Europe/London" both pass. */
        zone = tok[0];
        ti = 1;
    }
    if (ti >= nt) return qg_error_set(err, QG_EINVAL, "expected HH:MM-HH:MM after the zone");
    char *range = tok[ti];
    char *dash = strchr(range, '-');
    if (!dash || !parse_hhmm(range, (size_t)(dash - range), &w->start_min) ||
        !parse_hhmm(dash + 1, strlen(dash + 1), &w->end_min))
        return qg_error_set(err, QG_EINVAL, "\"%.32s\" is not HH:MM-HH:MM (00:00 to 24:00)", range);
    if (w->start_min == 1440) w->start_min = 0;
    if (w->end_min == 1440) w->end_min = 0;
    w->days_mask = DAYS_WEEKDAY;
    if (ti + 1 < nt && !parse_days(tok[ti + 1], &w->days_mask))
        return qg_error_set(err, QG_EINVAL,
                            "\"%.32s\" is not a day list (mon-fri, daily, sat-sun, mon,wed,fri)",
                            tok[ti + 1]);
    if (ti + 2 < nt) return qg_error_set(err, QG_EINVAL, "unexpected \"%.32s\"", tok[ti + 2]);
    qg_tz *tz = NULL;
    qg_status rc = qg_tz_load(zone, &tz, err);
    if (rc) return rc;
    w->tz = tz;
    return QG_OK;
}

static qg_status parse_list(const char *spec, window_list *out, qg_error *err)
{
    out->n = 0;
    size_t len = strlen(spec);
    if (len > 4096) return qg_error_set(err, QG_EINVAL, "sessions: longer than 4096 characters");
    char buf[4097];
    memcpy(buf, spec, len + 1);
    char *trim = buf;
    while (isspace((unsigned char)*trim)) trim++;
    if (!strcasecmp(trim, "none") || !strcasecmp(trim, "off")) return QG_OK;
    int index = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*item)) item++;
        size_t n = strlen(item);
        while (n && isspace((unsigned char)item[n - 1])) item[--n] = 0;
        if (!n) continue;
        index++;
        char shown[80];
        snprintf(shown, sizeof shown, "%s", item);
        if (out->n == QG_SESSIONS_MAX) {
            list_release(out);
            return qg_error_set(err, QG_EINVAL, "sessions: more than %d windows", QG_SESSIONS_MAX);
        }
        qg_status rc = parse_item(item, &out->w[out->n], err);
        if (rc) {
            qg_error_prefix(err, "sessions item %d \"%s\"", index, shown);
            list_release(out);
            return rc;
        }
        for (int i = 0; i < out->n; i++) {
            if (!strcmp(out->w[i].name, out->w[out->n].name)) {
                qg_tz_free((qg_tz *)out->w[out->n].tz);
                list_release(out);
                return qg_error_set(err, QG_EINVAL,
                                    "sessions item %d \"%s\": the name %s is used twice", index,
                                    shown, out->w[i].name);
            }
        }
        out->n++;
    }
    if (index == 0)
        return qg_error_set(err, QG_EINVAL, "sessions: empty (use \"none\" for no windows)");
    return QG_OK;
}

static qg_status defaults(window_list *out, qg_error *err)
{
    return parse_list("london=Europe/London 07:00-10:00 mon-fri;"
                      "new_york=America/New_York 07:00-10:00 mon-fri;"
                      "asia=America/New_York 20:00-00:00 mon-fri",
                      out, err);
}

qg_status qg_sessions_parse(const char *spec, qg_sessions **out, qg_error *err)
{
    *out = NULL;
    qg_sessions *s = calloc(1, sizeof *s);
    if (!s) return qg_error_set(err, QG_ENOMEM, "sessions: out of memory");
    bool empty = true;
    for (const char *p = spec ? spec : ""; *p; p++)
        if (!isspace((unsigned char)*p)) empty = false;
    qg_status rc = empty ? defaults(&s->def, err) : parse_list(spec, &s->def, err);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return QG_OK;
}

qg_status qg_sessions_set_symbol(qg_sessions *s, const char *symbol, const char *spec,
                                 qg_error *err)
{
    size_t n = symbol ? strlen(symbol) : 0;
    if (n == 0 || n > QG_SIGNAL_SYMBOL_MAX)
        return qg_error_set(err, QG_EINVAL, "sessions: symbol must be 1-%d characters",
                            QG_SIGNAL_SYMBOL_MAX);
    window_list l;
    qg_status rc = parse_list(spec ? spec : "", &l, err);
    if (rc) {
        qg_error_prefix(err, "%s", symbol);
        return rc;
    }
    char up[QG_SIGNAL_SYMBOL_MAX + 1];
    for (size_t i = 0; i <= n; i++) up[i] = (char)toupper((unsigned char)symbol[i]);
    for (size_t i = 0; i < s->nover; i++) {
        if (!strcmp(s->over[i].symbol, up)) {
            list_release(&s->over[i].list);
            s->over[i].list = l;
            return QG_OK;
        }
    }
    if (s->nover == s->capover) {
        size_t cap = s->capover ? s->capover * 2 : 8;
        symbol_override *o = realloc(s->over, cap * sizeof *o);
        if (!o) {
            list_release(&l);
            return qg_error_set(err, QG_ENOMEM, "sessions: out of memory");
        }
        s->over = o;
        s->capover = cap;
    }
    memcpy(s->over[s->nover].symbol, up, n + 1);
    s->over[s->nover].list = l;
    s->nover++;
    return QG_OK;
}

void qg_sessions_free(qg_sessions *s)
{
    if (!s) return;
    list_release(&s->def);
    for (size_t i = 0; i < s->nover; i++) list_release(&s->over[i].list);
    free(s->over);
    free(s);
}

/* ---- matching ---- */

static const window_list *list_for(const qg_sessions *s, const char *symbol)
{
    if (symbol)
        for (size_t i = 0; i < s->nover; i++)
            if (!strcasecmp(s->over[i].symbol, symbol)) return &s->over[i].list;
    return &s->def;
}

/* Monday = 0 for a day number since 1970-01-01 (a Thursday). */
static int weekday(int64_t day)
{
    return (int)(((day + 3) % 7 + 7) % 7);
}

static bool window_has(const qg_session_window *w, int64_t utc_ms)
{
    int64_t local = utc_ms + (int64_t)qg_tz_offset(w->tz, utc_ms) * 1000;
    int64_t day =
        local >= 0 ? local / QG_MS_PER_DAY : -((-local + QG_MS_PER_DAY - 1) / QG_MS_PER_DAY);
    int64_t tod = local - day * QG_MS_PER_DAY;
    int64_t start = w->start_min * QG_MS_PER_MIN, end = w->end_min * QG_MS_PER_MIN;
    if (start < end) return tod >= start && tod < end && (w->days_mask >> weekday(day) & 1u);
    /* Wraps past midnight (or the whole day when start == end): the part
     * after midnight belongs to the previous local day's window. */
    if (tod >= start && (w->days_mask >> weekday(day) & 1u)) return true;
    return tod < end && (w->days_mask >> weekday(day - 1) & 1u);
}

const qg_session_window *qg_sessions_match(const qg_sessions *s, const char *symbol, int64_t utc_ms)
{
    if (!s) return NULL;
    const window_list *l = list_for(s, symbol);
    for (int i = 0; i < l->n; i++)
        if (window_has(&l->w[i], utc_ms)) return &l->w[i];
    return NULL;
}

/* ---- JSON ---- */

static cJSON *list_json(const window_list *l)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < l->n; i++) {
        const qg_session_window *w = &l->w[i];
        cJSON *o = cJSON_CreateObject();
        char t[8];
        cJSON_AddStringToObject(o, "name", w->name);
        cJSON_AddStringToObject(o, "tz", qg_tz_name(w->tz));
        snprintf(t, sizeof t, "%02d:%02d", w->start_min / 60, w->start_min % 60);
        cJSON_AddStringToObject(o, "start", t);
        snprintf(t, sizeof t, "%02d:%02d", w->end_min / 60, w->end_min % 60);
        cJSON_AddStringToObject(o, "end", t);
        cJSON *days = cJSON_AddArrayToObject(o, "days");
        for (int d = 0; d < 7; d++)
            if (w->days_mask >> d & 1u)
                cJSON_AddItemToArray(days, cJSON_CreateString(DAY_NAMES[d]));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

cJSON *qg_sessions_json(const qg_sessions *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddItemToObject(o, "default", list_json(&s->def));
    cJSON *sym = cJSON_AddObjectToObject(o, "symbols");
    for (size_t i = 0; i < s->nover; i++)
        cJSON_AddItemToObject(sym, s->over[i].symbol, list_json(&s->over[i].list));
    return o;
}
