/*
 * indicators.c - indicator specs: the text form "name[:p1,p2,...][@source]",
 * defaults, validation, output keys, column names and lookbacks.
 *
 * Everything a kind needs to be described (its parameters, their defaults,
 * its outputs) lives in one table, `kinds`, indexed by qg_ind_kind, so adding
 * a kind is one row here plus its kernel in ind_state.c. A spec that passed
 * qg_ind_validate has every parameter filled in and in range; the state code
 * relies on that and does not check again.
 */
#include <quantgate/indicators.h>

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest period accepted: bounds the ring buffers (100000 doubles, 800 KB). */
#define QG_IND_MAX_PERIOD 100000
/* Longest text form parse accepts; real specs are under 30 characters. */
#define QG_IND_TEXT_MAX 128

typedef struct {
    const char *name;
    int nparams;
    double defaults[QG_IND_MAX_PARAMS];
    const char *params[QG_IND_MAX_PARAMS]; /* short names, as in "(fast, slow, signal)" */
    unsigned periods;                      /* bit k set: param k is a period */
    int noutputs;
    const char *keys[QG_IND_MAX_OUTPUTS]; /* qg_ind_output_key */
    const char *cols[QG_IND_MAX_OUTPUTS]; /* column name stems */
    int single_input;                     /* reads spec.source */
} kind_info;

static const kind_info kinds[QG_IND__COUNT] = {
    [QG_IND_SMA] = {"sma", 1, {20}, {"period"}, 1, 1, {"value"}, {"sma"}, 1},
    [QG_IND_EMA] = {"ema", 1, {20}, {"period"}, 1, 1, {"value"}, {"ema"}, 1},
    [QG_IND_WMA] = {"wma", 1, {10}, {"period"}, 1, 1, {"value"}, {"wma"}, 1},
    [QG_IND_RSI] = {"rsi", 1, {14}, {"period"}, 1, 1, {"value"}, {"rsi"}, 1},
    [QG_IND_ATR] = {"atr", 1, {14}, {"period"}, 1, 1, {"value"}, {"atr"}, 0},
    [QG_IND_MACD] = {"macd",
                     3,
                     {12, 26, 9},
                     {"fast", "slow", "signal"},
                     7,
                     3,
                     {"macd", "signal", "hist"},
                     {"macd", "macd_signal", "macd_hist"},
                     1},
    [QG_IND_BBANDS] = {"bbands",
                       2,
                       {20, 2},
                       {"period", "multiplier"},
                       1,
                       3,
                       {"upper", "middle", "lower"},
                       {"bbands_upper", "bbands_middle", "bbands_lower"},
                       1},
    [QG_IND_STOCH] = {"stoch",
                      3,
                      {14, 3, 3},
                      {"fastk", "slowk", "slowd"},
                      7,
                      2,
                      {"k", "d"},
                      {"stoch_k", "stoch_d"},
                      0},
    [QG_IND_ADX] = {"adx",
                    1,
                    {14},
                    {"period"},
                    1,
                    3,
                    {"adx", "plus_di", "minus_di"},
                    {"adx", "plus_di", "minus_di"},
                    0},
    [QG_IND_CCI] = {"cci", 1, {20}, {"period"}, 1, 1, {"value"}, {"cci"}, 0},
    [QG_IND_ROC] = {"roc", 1, {10}, {"period"}, 1, 1, {"value"}, {"roc"}, 1},
    [QG_IND_WILLR] = {"willr", 1, {14}, {"period"}, 1, 1, {"value"}, {"willr"}, 0},
    [QG_IND_DONCHIAN] = {"donchian",
                         1,
                         {20},
                         {"period"},
                         1,
                         3,
                         {"upper", "middle", "lower"},
                         {"donchian_upper", "donchian_middle", "donchian_lower"},
                         0},
    [QG_IND_OBV] = {"obv", 0, {0}, {NULL}, 0, 1, {"value"}, {"obv"}, 0},
    [QG_IND_VWAP] = {"vwap", 0, {0}, {NULL}, 0, 1, {"value"}, {"vwap"}, 0},
};

static const char *const source_names[] = {"close",  "open", "high", "low",
                                           "volume", "hl2",  "hlc3", "ohlc4"};
#define N_SOURCES ((int)(sizeof source_names / sizeof source_names[0]))

static const char known_kinds[] =
    "sma, ema, wma, rsi, atr, macd, bbands, stoch, adx, cci, roc, willr, donchian, obv, vwap";
static const char single_input_kinds[] = "sma, ema, wma, rsi, macd, bbands and roc";

/* ---- names ---- */

int qg_source_parse(const char *name)
{
    for (int i = 0; name && i < N_SOURCES; i++)
        if (strcasecmp(name, source_names[i]) == 0) return i;
    return -1;
}

const char *qg_source_name(qg_source src)
{
    return (int)src >= 0 && (int)src < N_SOURCES ? source_names[src] : "?";
}

const char *qg_ind_kind_name(qg_ind_kind kind)
{
    return (int)kind >= 0 && kind < QG_IND__COUNT ? kinds[kind].name : "?";
}

int qg_ind_kind_parse(const char *name)
{
    for (int i = 0; name && i < QG_IND__COUNT; i++)
        if (strcasecmp(name, kinds[i].name) == 0) return i;
    return -1;
}

/* ---- validation ---- */

/* "(fast, slow, signal)" for the wrong-count message. */
static void param_list(const kind_info *ki, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (int k = 0; k < ki->nparams && len < cap; k++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", k ? ", " : "(", ki->params[k]);
    if (len < cap) snprintf(out + len, cap - len, ")");
}

/* Checks param k of s; writes the reason into why and returns false when bad. */
static bool check_param(const qg_ind_spec *s, int k, char *why, size_t cap)
{
    const kind_info *ki = &kinds[s->kind];
    double v = s->params[k];
    if (!(ki->periods & (1u << k))) {
        /* the only non-period parameter is the bbands multiplier */
        if (isfinite(v) && v > 0) return true;
        snprintf(why, cap, "%s must be a number > 0", ki->params[k]);
        return false;
    }
    char what[32];
    if (strcmp(ki->params[k], "period") == 0)
        snprintf(what, sizeof what, "period");
    else
        snprintf(what, sizeof what, "%s period", ki->params[k]);
    if (!isfinite(v) || v < 1 || v != floor(v)) {
        snprintf(why, cap, "%s must be a whole number >= 1", what);
        return false;
    }
    if (v > QG_IND_MAX_PERIOD) {
        snprintf(why, cap, "%s must be at most %d", what, QG_IND_MAX_PERIOD);
        return false;
    }
    return true;
}

/* Fills defaults and checks everything; on failure writes the reason (without
 * the "indicator '...'" prefix) into why. */
static bool validate_reason(qg_ind_spec *s, char *why, size_t cap)
{
    if ((int)s->kind < 0 || s->kind >= QG_IND__COUNT) {
        snprintf(why, cap, "unknown kind %d (known: %s)", (int)s->kind, known_kinds);
        return false;
    }
    const kind_info *ki = &kinds[s->kind];
    if ((int)s->source < 0 || (int)s->source >= N_SOURCES) {
        snprintf(why, cap, "unknown source %d", (int)s->source);
        return false;
    }
    if (s->source != QG_SRC_CLOSE && !ki->single_input) {
        snprintf(why, cap, "a source (@%s) applies only to %s", qg_source_name(s->source),
                 single_input_kinds);
        return false;
    }
    if (s->nparams == 0) {
        for (int k = 0; k < ki->nparams; k++) s->params[k] = ki->defaults[k];
        s->nparams = ki->nparams;
    }
    if (s->nparams != ki->nparams) {
        char list[64];
        param_list(ki, list, sizeof list);
        if (ki->nparams == 0)
            snprintf(why, cap, "takes no parameters");
        else
            snprintf(why, cap, "expects %d parameter%s %s", ki->nparams,
                     ki->nparams == 1 ? "" : "s", list);
        return false;
    }
    for (int k = 0; k < ki->nparams; k++)
        if (!check_param(s, k, why, cap)) return false;
    if (s->kind == QG_IND_MACD && s->params[0] >= s->params[1]) {
        snprintf(why, cap, "fast period (%g) must be less than slow period (%g)", s->params[0],
                 s->params[1]);
        return false;
    }
    return true;
}

/* The text form of a spec, "macd:12,26,9@hl2", for messages about specs that
 * were built by hand rather than parsed. */
static void spec_text(const qg_ind_spec *s, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "%s", qg_ind_kind_name(s->kind));
    int np = s->nparams < 0 ? 0 : s->nparams > QG_IND_MAX_PARAMS ? QG_IND_MAX_PARAMS : s->nparams;
    for (int k = 0; k < np && len < cap; k++)
        len += (size_t)snprintf(out + len, cap - len, "%s%g", k ? "," : ":", s->params[k]);
    if (s->source != QG_SRC_CLOSE && len < cap)
        snprintf(out + len, cap - len, "@%s", qg_source_name(s->source));
}

qg_status qg_ind_validate(qg_ind_spec *s, qg_error *err)
{
    char why[256], text[QG_IND_TEXT_MAX];
    spec_text(s, text, sizeof text);
    if (validate_reason(s, why, sizeof why)) return QG_OK;
    return qg_error_set(err, QG_EINVAL, "indicator '%s': %s", text, why);
}

/* ---- parsing ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* Parses the comma-separated list p into s->params; false with a reason. */
static bool parse_params(char *p, qg_ind_spec *s, char *why, size_t cap)
{
    int n = 0;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        char *item = trim(p), *end;
        if (n == QG_IND_MAX_PARAMS) {
            snprintf(why, cap, "too many parameters (at most %d)", QG_IND_MAX_PARAMS);
            return false;
        }
        if (!*item) {
            snprintf(why, cap, "parameter %d is empty", n + 1);
            return false;
        }
        double v = strtod(item, &end);
        if (*end || !isfinite(v)) {
            snprintf(why, cap, "parameter %d ('%s') is not a number", n + 1, item);
            return false;
        }
        s->params[n++] = v;
        if (!comma) break;
        p = comma + 1;
    }
    s->nparams = n;
    return true;
}

/* Splits "name[:params][@source]" into s; false with a reason. */
static bool parse_text(char *buf, qg_ind_spec *s, char *why, size_t cap)
{
    char *at = strchr(buf, '@'), *colon;
    if (at) {
        *at = '\0';
        int src = qg_source_parse(trim(at + 1));
        if (src < 0) {
            snprintf(why, cap,
                     "unknown source '%s' (known: close, open, high, low, volume, "
                     "hl2, hlc3, ohlc4)",
                     trim(at + 1));
            return false;
        }
        s->source = (qg_source)src;
    }
    colon = strchr(buf, ':');
    if (colon) *colon = '\0';
    int kind = qg_ind_kind_parse(trim(buf));
    if (kind < 0) {
        snprintf(why, cap, "unknown name (known: %s)", known_kinds);
        return false;
    }
    s->kind = (qg_ind_kind)kind;
    if (colon && !parse_params(colon + 1, s, why, cap)) return false;
    return validate_reason(s, why, cap);
}

qg_status qg_ind_parse(const char *text, qg_ind_spec *out, qg_error *err)
{
    char buf[QG_IND_TEXT_MAX], why[256];
    qg_ind_spec s = {.kind = QG_IND_SMA, .nparams = 0, .source = QG_SRC_CLOSE};
    if (!text || !*text) return qg_error_set(err, QG_EINVAL, "indicator '': empty");
    if (strlen(text) >= sizeof buf)
        return qg_error_set(err, QG_EINVAL, "indicator '%.40s...': text is too long (max %d)", text,
                            QG_IND_TEXT_MAX - 1);
    memcpy(buf, text, strlen(text) + 1);
    if (!parse_text(buf, &s, why, sizeof why))
        return qg_error_set(err, QG_EINVAL, "indicator '%s': %s", text, why);
    *out = s;
    return QG_OK;
}

/* ---- outputs ---- */

int qg_ind_output_count(const qg_ind_spec *s)
{
    return (int)s->kind >= 0 && s->kind < QG_IND__COUNT ? kinds[s->kind].noutputs : 0;
}

const char *qg_ind_output_key(const qg_ind_spec *s, int k)
{
    if (k < 0 || k >= qg_ind_output_count(s)) return "?";
    return kinds[s->kind].keys[k];
}

void qg_ind_column_name(const qg_ind_spec *s, int k, char *out, size_t cap)
{
    if (!cap) return;
    if (k < 0 || k >= qg_ind_output_count(s)) {
        snprintf(out, cap, "?");
        return;
    }
    const kind_info *ki = &kinds[s->kind];
    size_t len = (size_t)snprintf(out, cap, "%s", ki->cols[k]);
    int np = s->nparams ? s->nparams : ki->nparams;
    if (np > QG_IND_MAX_PARAMS) np = QG_IND_MAX_PARAMS;
    for (int j = 0; j < np && len < cap; j++)
        len += (size_t)snprintf(out + len, cap - len, "_%g",
                                s->nparams ? s->params[j] : ki->defaults[j]);
    if (s->source != QG_SRC_CLOSE && len < cap)
        snprintf(out + len, cap - len, "_%s", qg_source_name(s->source));
}

/* The lookbacks below are the first bar index where each output is defined;
 * docs/indicators.md derives each one. */
size_t qg_ind_lookback(const qg_ind_spec *s, int k)
{
    if (k < 0 || k >= qg_ind_output_count(s)) return SIZE_MAX;
    const kind_info *ki = &kinds[s->kind];
    size_t p[QG_IND_MAX_PARAMS];
    for (int j = 0; j < QG_IND_MAX_PARAMS; j++)
        p[j] = (size_t)(s->nparams ? s->params[j] : ki->defaults[j]);
    switch (s->kind) {
    case QG_IND_RSI:
    case QG_IND_ATR:
    case QG_IND_ROC:
        return p[0];
    case QG_IND_MACD:
        return k == 0 ? p[1] - 1 : p[1] + p[2] - 2;
    case QG_IND_STOCH:
        return k == 0 ? p[0] + p[1] - 2 : p[0] + p[1] + p[2] - 3;
    case QG_IND_ADX:
        return k == 0 ? 2 * p[0] - 1 : p[0];
    case QG_IND_OBV:
    case QG_IND_VWAP:
        return 0;
    default:
        return p[0] - 1; /* sma ema wma bbands cci willr donchian */
    }
}
