/*
 * p_builtin.c - the `builtin` provider: an offline, deterministic reasoner
 * that answers in-process (only `complete` is set in its table).
 *
 * It dispatches on qg_ai_request.task:
 *   signal.analyze  scores a TradingView alert from its own evidence
 *                   (qg_builtin_analyze_signal) and answers JSON;
 *   chat.intent     maps the last user message to a strategy builder
 *                   command (qg_builtin_classify_intent) and answers JSON;
 *   anything else   says plainly what it can do offline and how to enable
 *                   free-form chat (JSON when the request asks for it).
 *
 * Signal scoring is additive and explainable: a base of 45, then one signed
 * contribution per factor (confluences, confidence, timeframe agreement,
 * reward:risk, stop size against the candle, session, structure), each kept
 * in the answer's factors[] and named in the explanation. A stop or target
 * on the wrong side of the entry is a sanity failure: heavy penalty, action
 * hold, risk high, whatever else the signal claims.
 *
 * Usage is estimated at about 4 bytes a token so budgets and usage
 * accounting work the same as with remote providers.
 */
#include "ai/builtin.h"

#include "ai/jsonfix.h"
#include "ai/provider.h"

#include <quantgate/ict.h>
#include <quantgate/json.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const qg_builtin_phases[QG_BUILTIN_NPHASES] = {"requirements", "blueprint", "code",
                                                           "testing", "deployment"};

int64_t qg_builtin_count_tokens(const char *text)
{
    if (!text) return 0;
    size_t n = strlen(text);
    return (int64_t)((n + 3) / 4);
}

/* ---- signal analysis ---- */

#define MAX_FACTORS 32

typedef struct factor {
    char name[40];
    double impact;
    char detail[160];
} factor;

typedef struct analysis {
    factor f[MAX_FACTORS];
    int n;
} analysis;

static void add_factor(analysis *an, const char *name, double impact, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_factor(analysis *an, const char *name, double impact, const char *fmt, ...)
{
    if (an->n >= MAX_FACTORS) return;
    factor *f = &an->f[an->n++];
    snprintf(f->name, sizeof f->name, "%s", name);
    f->impact = round(impact * 10.0) / 10.0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
}

/* A number, or a numeric string ("1.0850"), from obj[name]. */
static bool get_num(const cJSON *obj, const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
        *out = v->valuedouble;
        return true;
    }
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        double d = strtod(v->valuestring, &end);
        while (*end == ' ') end++;
        if (!*end && isfinite(d)) {
            *out = d;
            return true;
        }
    }
    return false;
}

/* Lower-case alphanumerics only: "HTF_BIAS_BULL" -> "htfbiasbull". */
static void squash(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    for (; s && *s && k + 1 < cap; s++)
        if (isalnum((unsigned char)*s)) out[k++] = (char)tolower((unsigned char)*s);
    out[k] = 0;
}

/* +1 bullish, -1 bearish, 0 neither or both. */
static int bias_of(const char *sq)
{
    static const char *const up[] = {"bull", "long", "buy", "up", "support", "discount", "above"};
    static const char *const down[] = {"bear",       "short",   "sell", "down",
                                       "resistance", "premium", "below"};
    bool u = false, d = false;
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++)
        if (strstr(sq, up[i])) u = true;
    for (size_t i = 0; i < sizeof down / sizeof down[0]; i++)
        if (strstr(sq, down[i])) d = true;
    /* "premium_discount" names the zone concept, not a side */
    if (u && d) return 0;
    return u ? 1 : d ? -1 : 0;
}

typedef struct confluence_kind {
    const char *key; /* substring of the squashed name */
    const char *label;
    double weight;
} confluence_kind;

static const confluence_kind confluence_kinds[] = {
    {"liquiditysweep", "liquidity sweep", 9},
    {"sweep", "liquidity sweep", 9},
    {"orderblock", "order block", 8},
    {"ob", "order block", 8},
    {"htfbias", "higher-timeframe bias", 8},
    {"fvg", "fair value gap", 7},
    {"fairvaluegap", "fair value gap", 7},
    {"imbalance", "fair value gap", 7},
    {"choch", "change of character", 7},
    {"changeofcharacter", "change of character", 7},
    {"bos", "break of structure", 7},
    {"breakofstructure", "break of structure", 7},
    {"breaker", "breaker block", 6},
    {"displacement", "displacement", 6},
    {"ote", "optimal trade entry", 6},
    {"smt", "SMT divergence", 6},
    {"liquidity", "liquidity", 6},
    {"killzone", "killzone timing", 5},
    {"premiumdiscount", "premium/discount zone", 5},
    {"premium", "premium/discount zone", 5},
    {"discount", "premium/discount zone", 5},
    {"mitigation", "mitigation block", 5},
    {"support", "support/resistance level", 4},
    {"resistance", "support/resistance level", 4},
    {"mid", "prior-day mid", 3},
};

static const confluence_kind *confluence_find(const char *sq)
{
    for (size_t i = 0; i < sizeof confluence_kinds / sizeof confluence_kinds[0]; i++) {
        const char *k = confluence_kinds[i].key;
        /* two-letter keys only as the whole name ("ob"), never inside words */
        if (strlen(k) <= 2 ? !strcmp(sq, k) : strstr(sq, k) != NULL) return &confluence_kinds[i];
    }
    return NULL;
}

typedef struct sig {
    const char *symbol, *timeframe, *type;
    double open, high, low, close;
    bool has_sl, has_tp;
    double sl, tp;
    int dir; /* +1 long, -1 short, 0 unknown */
} sig;

static int dir_of_word(const char *s)
{
    char sq[64];
    squash(s, sq, sizeof sq);
    if (strstr(sq, "buy") || strstr(sq, "long") || strstr(sq, "bull")) return 1;
    if (strstr(sq, "sell") || strstr(sq, "short") || strstr(sq, "bear")) return -1;
    if (!strcmp(sq, "up")) return 1;
    if (!strcmp(sq, "down")) return -1;
    return 0;
}

/* Direction votes of multi_tf entries: +1/-1/0 each. */
static int tf_vote(const cJSON *e)
{
    if (cJSON_IsBool(e)) return cJSON_IsTrue(e) ? 2 : -2; /* agrees / disagrees, no side */
    if (cJSON_IsNumber(e)) return e->valuedouble > 0 ? 1 : e->valuedouble < 0 ? -1 : 0;
    if (cJSON_IsString(e)) {
        const char *s = e->valuestring;
        const char *colon = strchr(s, ':');
        return dir_of_word(colon ? colon + 1 : s) ? dir_of_word(colon ? colon + 1 : s)
                                                  : dir_of_word(s);
    }
    if (cJSON_IsObject(e)) {
        static const char *const keys[] = {"direction", "bias", "trend", "signal", "side", "agree"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, keys[i]);
            if (v) return tf_vote(v);
        }
    }
    return 0;
}

typedef struct tf_tally {
    int up, down, agree, disagree, neutral;
    bool given;
    bool flag; /* multi_tf was a plain boolean */
    bool flag_value;
} tf_tally;

static void tally_multi_tf(const cJSON *m, tf_tally *t)
{
    memset(t, 0, sizeof *t);
    if (!m || cJSON_IsNull(m)) return;
    t->given = true;
    if (cJSON_IsBool(m)) {
        t->flag = true;
        t->flag_value = cJSON_IsTrue(m);
        return;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, m)
    {
        int v = tf_vote(e);
        if (v == 1)
            t->up++;
        else if (v == -1)
            t->down++;
        else if (v == 2)
            t->agree++;
        else if (v == -2)
            t->disagree++;
        else
            t->neutral++;
    }
}

/* Rounds a price to 7 significant digits so answers print cleanly. */
static double tidy(double x)
{
    if (x == 0 || !isfinite(x)) return x;
    int e = (int)floor(log10(fabs(x)));
    if (e - 6 < 0) {
        double p = pow(10.0, 6 - e);
        return round(x * p) / p;
    }
    double q = pow(10.0, e - 6);
    return round(x / q) * q;
}

static int parse_signal(const cJSON *s, sig *g, qg_error *err)
{
    memset(g, 0, sizeof *g);
    if (!cJSON_IsObject(s)) return qg_error_set(err, QG_EINVAL, "signal: not a JSON object");
    const cJSON *sym = cJSON_GetObjectItemCaseSensitive(s, "symbol");
    if (!cJSON_IsString(sym) || !sym->valuestring[0])
        return qg_error_set(err, QG_EINVAL, "signal: field 'symbol' is missing or not a string");
    g->symbol = sym->valuestring;
    const cJSON *tf = cJSON_GetObjectItemCaseSensitive(s, "timeframe");
    g->timeframe = cJSON_IsString(tf) ? tf->valuestring : "";
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(s, "signal_type");
    g->type = cJSON_IsString(ty) ? ty->valuestring : "";
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(s, "price_data");
    if (!cJSON_IsObject(pd))
        return qg_error_set(err, QG_EINVAL,
                            "signal: field 'price_data' is missing or not an object");
    if (!get_num(pd, "close", &g->close))
        return qg_error_set(err, QG_EINVAL,
                            "signal: field 'price_data.close' is missing or not a number");
    if (g->close <= 0)
        return qg_error_set(err, QG_EINVAL, "signal: field 'price_data.close' must be positive");
    if (!get_num(pd, "open", &g->open)) g->open = g->close;
    if (!get_num(pd, "high", &g->high)) g->high = fmax(g->open, g->close);
    if (!get_num(pd, "low", &g->low)) g->low = fmin(g->open, g->close);
    g->has_sl = get_num(s, "sl", &g->sl) || get_num(s, "stop_loss", &g->sl);
    g->has_tp = get_num(s, "tp", &g->tp) || get_num(s, "take_profit", &g->tp);
    g->dir = dir_of_word(g->type);
    return QG_OK;
}

/* The trade's side when signal_type does not say (CHoCH, BoS): the
 * confluences' bias, then where sl and tp sit, then timeframe votes, then
 * the candle's colour. */
static int infer_direction(const sig *g, const cJSON *conf, const tf_tally *t, const char **how)
{
    int votes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, conf)
    {
        char sq[96];
        if (cJSON_IsString(e)) squash(e->valuestring, sq, sizeof sq), votes += bias_of(sq);
    }
    if (votes) {
        *how = "the confluences' bias";
        return votes > 0 ? 1 : -1;
    }
    if (g->has_sl && g->has_tp) {
        if (g->tp > g->close && g->sl < g->close) return *how = "where sl and tp sit", 1;
        if (g->tp < g->close && g->sl > g->close) return *how = "where sl and tp sit", -1;
    }
    if (t->up != t->down) {
        *how = "the timeframes' majority";
        return t->up > t->down ? 1 : -1;
    }
    if (g->close != g->open) {
        *how = "the candle's direction";
        return g->close > g->open ? 1 : -1;
    }
    return 0;
}

static void score_confluences(analysis *an, const cJSON *conf, int dir)
{
    char seen[16][40];
    int nseen = 0, count = 0;
    double gained = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, conf)
    {
        if (!cJSON_IsString(e)) continue;
        char sq[96];
        squash(e->valuestring, sq, sizeof sq);
        if (!sq[0]) continue;
        const confluence_kind *k = confluence_find(sq);
        const char *label = k ? k->label : e->valuestring;
        bool dup = false;
        for (int i = 0; i < nseen; i++)
            if (!strcmp(seen[i], label)) dup = true;
        if (dup) continue;
        if (nseen < 16) snprintf(seen[nseen++], sizeof seen[0], "%s", label);
        count++;
        double w = k ? k->weight : 3;
        int b = bias_of(sq);
        if (dir && b && b != dir) {
            add_factor(an, "confluence", -w / 2, "%s points against the %s", label,
                       dir > 0 ? "long" : "short");
            continue;
        }
        if (gained + w > 30) w = 30 - gained; /* confluences overlap: cap their sum */
        if (w <= 0) continue;
        gained += w;
        add_factor(an, "confluence", w, "%s%s", label, k ? "" : " (unrecognised confluence)");
    }
    if (count < 2)
        add_factor(an, "few_confluences", -8, "only %d confluence%s (at least 2 expected)", count,
                   count == 1 ? "" : "s");
}

static void score_confidence(analysis *an, const cJSON *s)
{
    double c;
    if (!get_num(s, "confidence", &c)) {
        add_factor(an, "confidence", -3, "no confidence given");
        return;
    }
    if (c > 0 && c <= 1) c *= 100; /* 0.85 means 85 */
    if (c < 0) c = 0;
    if (c > 100) c = 100;
    double impact = (c - 60) * 0.35;
    add_factor(an, "confidence", impact, "confidence %.0f%s", c, impact >= 0 ? "" : " is below 60");
}

static void score_timeframes(analysis *an, const tf_tally *t, int dir)
{
    if (!t->given) return;
    if (t->flag) {
        if (t->flag_value)
            add_factor(an, "multi_timeframe", 8, "higher timeframes agree");
        else
            add_factor(an, "multi_timeframe", -6, "higher timeframes do not agree");
        return;
    }
    int agree = t->agree + (dir > 0 ? t->up : dir < 0 ? t->down : 0);
    int disagree = t->disagree + (dir > 0 ? t->down : dir < 0 ? t->up : 0);
    int total = agree + disagree + t->neutral + (dir == 0 ? t->up + t->down : 0);
    if (total == 0) return;
    double impact = 12.0 * (agree - disagree) / total;
    add_factor(an, "multi_timeframe", impact, "%d of %d timeframes agree%s", agree, total,
               disagree ? (disagree == 1 ? ", 1 disagrees" : ", several disagree") : "");
}

/* Inside the London or New York killzone: 07:00-10:00 on a weekday in
 * each city's own time, daylight saving included (the rule the detector and
 * the pipeline's default sessions use, market/ict.c). */
static void score_session(analysis *an, const cJSON *s, bool killzone_confluence)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(s, "timestamp");
    int64_t ms = 0;
    bool ok = false;
    if (cJSON_IsString(ts))
        ok = !qg_time_parse_iso(ts->valuestring, strlen(ts->valuestring), &ms);
    else if (cJSON_IsNumber(ts) && ts->valuedouble > 0) {
        double v = ts->valuedouble;
        ms = (int64_t)(v < 1e11 ? v * 1000 : v);
        ok = true;
    }
    if (!ok || killzone_confluence) return;
    switch (qg_ict_killzone_at(ms)) {
    case QG_ICT_KZ_LONDON:
        add_factor(an, "session", 5, "inside the London killzone");
        break;
    case QG_ICT_KZ_NEW_YORK:
        add_factor(an, "session", 5, "inside the New York killzone");
        break;
    default:
        add_factor(an, "session", -2, "outside the London and New York killzones");
    }
}

typedef struct levels {
    double entry, sl, tp, rr;
    bool has_levels;
    bool sane;
} levels;

static void score_levels(analysis *an, sig *g, int dir, levels *lv)
{
    double range = fabs(g->high - g->low);
    if (range <= 0) range = g->close * 0.001;
    lv->entry = g->close;
    lv->sane = true;
    lv->has_levels = false;
    if (!dir && !(g->has_sl && g->has_tp)) return;
    lv->sl = g->sl;
    lv->tp = g->tp;
    if (!g->has_sl && dir) {
        double edge =
            dir > 0 ? fmin(g->low, g->close - 0.5 * range) : fmax(g->high, g->close + 0.5 * range);
        lv->sl = edge - dir * 0.1 * range;
        add_factor(an, "derived_stop", 0, "no sl given: stop placed beyond the candle %s",
                   dir > 0 ? "low" : "high");
    }
    if (!g->has_tp && dir) {
        lv->tp = lv->entry + dir * 2.0 * fabs(lv->entry - lv->sl);
        add_factor(an, "derived_target", 0, "no tp given: target set at 2R");
    }
    lv->has_levels = true;
    if (dir) {
        if ((lv->sl - lv->entry) * dir >= 0) {
            lv->sane = false;
            add_factor(an, "stop_wrong_side", -40,
                       "stop %g is on the wrong side of the entry %g "
                       "for a %s",
                       lv->sl, lv->entry, dir > 0 ? "long" : "short");
        }
        if ((lv->tp - lv->entry) * dir <= 0) {
            lv->sane = false;
            add_factor(an, "target_wrong_side", -30,
                       "target %g is on the wrong side of the entry %g for a %s", lv->tp, lv->entry,
                       dir > 0 ? "long" : "short");
        }
    }
    double risk = fabs(lv->entry - lv->sl), reward = fabs(lv->tp - lv->entry);
    lv->rr = risk > 0 ? reward / risk : 0;
    if (!lv->sane) return;
    if (lv->rr >= 3)
        add_factor(an, "reward_risk", 12, "reward:risk %.2f", lv->rr);
    else if (lv->rr >= 2)
        add_factor(an, "reward_risk", 8, "reward:risk %.2f", lv->rr);
    else if (lv->rr >= 1.5)
        add_factor(an, "reward_risk", 3, "reward:risk %.2f", lv->rr);
    else if (lv->rr >= 1)
        add_factor(an, "reward_risk", -4, "reward:risk only %.2f", lv->rr);
    else
        add_factor(an, "reward_risk", -14, "reward:risk %.2f is below 1", lv->rr);
    double ratio = risk / range;
    if (ratio < 0.3)
        add_factor(an, "stop_distance", -6, "stop within the candle's noise (%.2fx its range)",
                   ratio);
    else if (ratio > 4)
        add_factor(an, "stop_distance", -5, "stop wide (%.1fx the candle range)", ratio);
    else if (ratio >= 0.5 && ratio <= 2)
        add_factor(an, "stop_distance", 3, "stop sized to the candle (%.2fx its range)", ratio);
}

static int cmp_impact(const void *pa, const void *pb)
{
    const factor *a = pa, *b = pb;
    double d = fabs(b->impact) - fabs(a->impact);
    return d > 0 ? 1 : d < 0 ? -1 : 0;
}

static void explain(const analysis *an, const sig *g, int dir, int score, const char *risk,
                    const char *action, const levels *lv, qg_buf *b)
{
    const char *side = dir > 0 ? "long" : dir < 0 ? "short" : "with no clear direction";
    qg_buf_printf(b, "%s%s%s%s%s %s: score %d/100, risk %s, action %s.", g->symbol,
                  g->timeframe[0] ? " " : "", g->timeframe, g->type[0] ? " " : "", g->type, side,
                  score, risk, action);
    factor sorted[MAX_FACTORS];
    memcpy(sorted, an->f, sizeof(factor) * (size_t)an->n);
    qsort(sorted, (size_t)an->n, sizeof(factor), cmp_impact);
    for (int pass = 0; pass < 2; pass++) {
        int shown = 0;
        for (int i = 0; i < an->n && shown < 8; i++) {
            const factor *f = &sorted[i];
            if (pass == 0 ? f->impact <= 0 : f->impact >= 0) continue;
            (void)qg_buf_puts(b, shown ? ", " : pass == 0 ? " Raised by: " : " Lowered by: ");
            (void)qg_buf_puts(b, f->detail);
            qg_buf_printf(b, " (%+.0f)", f->impact);
            shown++;
        }
        if (shown) qg_buf_puts(b, ".");
    }
    if (!lv->sane)
        qg_buf_puts(b, " The levels are inconsistent, so the trade is not taken.");
    else if (!dir)
        qg_buf_puts(b, " No direction can be told from the signal, so hold.");
}

qg_status qg_builtin_analyze_signal(const cJSON *signal, qg_arena *a, const char **json_out,
                                    qg_error *err)
{
    sig g;
    qg_status rc = parse_signal(signal, &g, err);
    if (rc) return rc;
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(signal, "confluences");
    if (!cJSON_IsArray(conf)) conf = NULL;
    tf_tally t;
    tally_multi_tf(cJSON_GetObjectItemCaseSensitive(signal, "multi_tf"), &t);

    analysis an = {.n = 0};
    int dir = g.dir;
    if (!dir) {
        const char *how = NULL;
        dir = infer_direction(&g, conf, &t, &how);
        if (dir)
            add_factor(&an, "direction", 0, "direction %s inferred from %s",
                       dir > 0 ? "long" : "short", how);
    }
    score_confluences(&an, conf, dir);
    score_confidence(&an, signal);
    score_timeframes(&an, &t, dir);
    bool kz = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, conf)
    {
        char sq[96];
        if (cJSON_IsString(e))
            squash(e->valuestring, sq, sizeof sq), kz |= !!strstr(sq, "killzone");
    }
    score_session(&an, signal, kz);
    char tsq[64];
    squash(g.type, tsq, sizeof tsq);
    if (strstr(tsq, "choch") || strstr(tsq, "bos") || strstr(tsq, "structure"))
        add_factor(&an, "structure", 4, "structure signal (%s)", g.type);
    if (g.high < g.low)
        add_factor(&an, "candle", -5, "candle high %g is below its low %g", g.high, g.low);
    levels lv = {0};
    score_levels(&an, &g, dir, &lv);

    double total = 45;
    for (int i = 0; i < an.n; i++) total += an.f[i].impact;
    int score = (int)lround(fmax(0, fmin(100, total)));
    const char *action = lv.sane && dir && score >= 60 ? (dir > 0 ? "buy" : "sell") : "hold";
    const char *risk = !lv.sane                       ? "high"
                       : score >= 75 && lv.rr >= 2    ? "low"
                       : score >= 55 && lv.has_levels ? "medium"
                                                      : "high";

    cJSON *o = cJSON_CreateObject();
    qg_buf ex;
    qg_buf_init(&ex, 4096);
    cJSON_AddStringToObject(o, "symbol", g.symbol);
    cJSON_AddStringToObject(o, "timeframe", g.timeframe);
    cJSON_AddStringToObject(o, "direction", dir > 0 ? "long" : dir < 0 ? "short" : "none");
    cJSON_AddNumberToObject(o, "score", score);
    cJSON_AddStringToObject(o, "risk", risk);
    cJSON_AddStringToObject(o, "action", action);
    cJSON_AddNumberToObject(o, "entry", tidy(lv.entry));
    if (lv.has_levels) {
        cJSON_AddNumberToObject(o, "stop_loss", tidy(lv.sl));
        cJSON_AddNumberToObject(o, "take_profit", tidy(lv.tp));
        cJSON_AddNumberToObject(o, "exit", tidy(lv.tp));
        cJSON_AddNumberToObject(o, "risk_reward", round(lv.rr * 100) / 100);
    } else {
        cJSON_AddNullToObject(o, "stop_loss");
        cJSON_AddNullToObject(o, "take_profit");
        cJSON_AddNullToObject(o, "exit");
        cJSON_AddNullToObject(o, "risk_reward");
    }
    explain(&an, &g, dir, score, risk, action, &lv, &ex);
    cJSON_AddStringToObject(o, "explanation", ex.len ? ex.data : "");
    cJSON *fs = cJSON_AddArrayToObject(o, "factors");
    for (int i = 0; i < an.n; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "factor", an.f[i].name);
        cJSON_AddNumberToObject(f, "impact", an.f[i].impact);
        cJSON_AddStringToObject(f, "detail", an.f[i].detail);
        cJSON_AddItemToArray(fs, f);
    }
    cJSON_AddStringToObject(o, "reasoner", "builtin");
    char *s = qg_json_compact(o);
    cJSON_Delete(o);
    qg_buf_free(&ex);
    if (!s) return qg_error_set(err, QG_ENOMEM, "signal: out of memory");
    *json_out = qg_arena_strndup(a, s, strlen(s));
    cJSON_free(s);
    return *json_out ? QG_OK : qg_error_set(err, QG_ENOMEM, "signal: out of memory");
}

/* ---- intent classification ---- */

typedef enum { I_PROCEED, I_BACK, I_CODE, I_TESTS, I_DEPLOY, I_RESTART, I_HELP } intent_id;

static const char *const intent_names[] = {"proceed", "back",    "start_coding", "run_tests",
                                           "deploy",  "restart", "help"};

typedef struct phrase {
    const char *text; /* normalised words, matched whole */
    intent_id intent;
    bool strong; /* weak phrases count only in short messages */
    bool needs_phase;
} phrase;

/* Checked in this order: the more specific command wins ("looks good,
 * start coding" is start_coding, not proceed). */
static const phrase phrases[] = {
    {"start over", I_RESTART, true, false},
    {"start again", I_RESTART, true, false},
    {"start from scratch", I_RESTART, true, false},
    {"from scratch", I_RESTART, true, false},
    {"begin again", I_RESTART, true, false},
    {"start fresh", I_RESTART, true, false},
    {"restart", I_RESTART, true, false},
    {"reset", I_RESTART, true, false},
    {"go back", I_BACK, true, false},
    {"take me back", I_BACK, true, false},
    {"step back", I_BACK, true, false},
    {"previous phase", I_BACK, true, false},
    {"previous step", I_BACK, true, false},
    {"back to", I_BACK, true, true},
    {"return to", I_BACK, true, true},
    {"revisit", I_BACK, true, true},
    {"revise", I_BACK, true, true},
    {"back", I_BACK, false, false},
    {"start coding", I_CODE, true, false},
    {"begin coding", I_CODE, true, false},
    {"start the code", I_CODE, true, false},
    {"write the code", I_CODE, true, false},
    {"write code", I_CODE, true, false},
    {"generate the code", I_CODE, true, false},
    {"generate code", I_CODE, true, false},
    {"show me the code", I_CODE, true, false},
    {"lets code", I_CODE, true, false},
    {"code it", I_CODE, true, false},
    {"build it", I_CODE, true, false},
    {"implement it", I_CODE, true, false},
    {"run the tests", I_TESTS, true, false},
    {"run tests", I_TESTS, true, false},
    {"run the test", I_TESTS, true, false},
    {"run a backtest", I_TESTS, true, false},
    {"run the backtest", I_TESTS, true, false},
    {"run backtest", I_TESTS, true, false},
    {"run a test", I_TESTS, true, false},
    {"backtest it", I_TESTS, true, false},
    {"test it", I_TESTS, true, false},
    {"test the strategy", I_TESTS, true, false},
    {"test the code", I_TESTS, true, false},
    {"start testing", I_TESTS, true, false},
    {"lets test", I_TESTS, true, false},
    {"backtest", I_TESTS, false, false},
    {"deploy", I_DEPLOY, true, false},
    {"go live", I_DEPLOY, true, false},
    {"ship it", I_DEPLOY, true, false},
    {"push to production", I_DEPLOY, true, false},
    {"make it live", I_DEPLOY, true, false},
    {"launch it", I_DEPLOY, true, false},
    {"proceed", I_PROCEED, true, false},
    {"move on", I_PROCEED, true, false},
    {"move forward", I_PROCEED, true, false},
    {"go ahead", I_PROCEED, true, false},
    {"next phase", I_PROCEED, true, false},
    {"next step", I_PROCEED, true, false},
    {"continue", I_PROCEED, true, false},
    {"carry on", I_PROCEED, true, false},
    {"looks good", I_PROCEED, true, false},
    {"looks great", I_PROCEED, true, false},
    {"sounds good", I_PROCEED, true, false},
    {"lgtm", I_PROCEED, true, false},
    {"approved", I_PROCEED, true, false},
    {"i approve", I_PROCEED, true, false},
    {"good to go", I_PROCEED, true, false},
    {"lets go", I_PROCEED, true, false},
    {"go to", I_PROCEED, true, true},
    {"next", I_PROCEED, false, false},
    {"yes", I_PROCEED, false, false},
    {"ok", I_PROCEED, false, false},
    {"okay", I_PROCEED, false, false},
    {"confirm", I_PROCEED, false, false},
    {"confirmed", I_PROCEED, false, false},
    {"perfect", I_PROCEED, false, false},
    {"great", I_PROCEED, false, false},
    {"done", I_PROCEED, false, false},
    {"help", I_HELP, true, false},
    {"what can you do", I_HELP, true, false},
    {"how does this work", I_HELP, true, false},
    {"what are the commands", I_HELP, true, false},
    {"what do i do", I_HELP, true, false},
    {"what should i do", I_HELP, true, false},
    {"commands", I_HELP, false, false},
};

static const struct {
    const char *word;
    int phase;
} phase_words[] = {
    {"requirements", 0}, {"requirement", 0},    {"reqs", 0},         {"blueprint", 1},
    {"design", 1},       {"plan", 1},           {"architecture", 1}, {"code", 2},
    {"coding", 2},       {"implementation", 2}, {"testing", 3},      {"tests", 3},
    {"test", 3},         {"backtest", 3},       {"backtesting", 3},  {"deployment", 4},
    {"deploy", 4},       {"production", 4},     {"live", 4},
};

static const char *const negations[] = {"dont", "do not", "not yet", "wait",      "hold on",
                                        "stop", "never",  "cancel",  "not ready", "no"};

#define NORM_MAX 2048

/* " words | words " : lower case, letters and digits, apostrophes dropped
 * ("let's" -> "lets"), clause punctuation kept as '|', one space between. */
static size_t normalise(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    out[k++] = ' ';
    for (; *s && k + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\'') continue;
        if (isalnum(c)) {
            out[k++] = (char)tolower(c);
        } else if (strchr(".,;!?\n", c)) {
            if (out[k - 1] != ' ') out[k++] = ' ';
            if (k < 2 || out[k - 2] != '|') out[k++] = '|', out[k++] = ' ';
        } else if (out[k - 1] != ' ') {
            out[k++] = ' ';
        }
    }
    if (out[k - 1] != ' ') out[k++] = ' ';
    while (k >= 3 && out[k - 2] == '|') k -= 2; /* no empty clause at the end */
    out[k] = 0;
    return k;
}

/* Position of " text " in hay inside [from, to), or NULL. */
static const char *find_words(const char *from, const char *to, const char *text)
{
    char pat[64];
    int n = snprintf(pat, sizeof pat, " %s ", text);
    if (n <= 0 || (size_t)n >= sizeof pat) return NULL;
    for (const char *p = from; p + n <= to; p++)
        if (!memcmp(p, pat, (size_t)n)) return p;
    return NULL;
}

static int count_words(const char *norm)
{
    int n = 0;
    for (const char *p = norm; *p; p++)
        if (*p != ' ' && *p != '|' && (p == norm || p[-1] == ' ')) n++;
    return n;
}

/* The first phase named in [from, to), or -1. */
static int phase_in(const char *from, const char *to)
{
    int best = -1;
    const char *best_at = NULL;
    for (size_t i = 0; i < sizeof phase_words / sizeof phase_words[0]; i++) {
        const char *at = find_words(from, to, phase_words[i].word);
        if (at && (!best_at || at < best_at)) best_at = at, best = phase_words[i].phase;
    }
    return best;
}

static int phase_index(const char *name)
{
    for (int i = 0; name && i < QG_BUILTIN_NPHASES; i++)
        if (!strcmp(name, qg_builtin_phases[i])) return i;
    return -1;
}

/* A negation earlier in the same clause ("don't deploy yet"). */
static bool negated(const char *clause, const char *at)
{
    for (size_t i = 0; i < sizeof negations / sizeof negations[0]; i++) {
        const char *n = find_words(clause, at + 1, negations[i]);
        if (n && n < at) return true;
    }
    return false;
}

static bool wh_question(const char *text, const char *norm)
{
    const char *q = strrchr(text, '?');
    if (!q) return false;
    static const char *const wh[] = {" what ", " why ", " how ",   " when ",  " is ", " are ",
                                     " does ", " do ",  " which ", " where ", " who "};
    for (size_t i = 0; i < sizeof wh / sizeof wh[0]; i++)
        if (!strncmp(norm, wh[i], strlen(wh[i]))) return true;
    return false;
}

void qg_builtin_classify_intent(const char *text, const char *current_phase, qg_builtin_intent *out)
{
    out->intent = "chat";
    out->target_phase = NULL;
    out->confidence = 0.6;
    if (!text) return;
    char norm[NORM_MAX];
    size_t len = normalise(text, norm, sizeof norm);
    int words = count_words(norm);
    if (words == 0) return;
    if (words > 6) out->confidence = 0.85; /* a long message without a command is chat */

    /* Long messages carry commands in their first or last clause; a word like
     * "next" deep inside a requirement ("enter on the next candle") is not one. */
    const char *first_end = strchr(norm + 1, '|');
    const char *last_start = strrchr(norm, '|');
    const char *spans[2][2] = {{norm, norm + len}, {NULL, NULL}};
    if (words > 15 && first_end) {
        spans[0][1] = first_end + 1;
        spans[1][0] = last_start;
        spans[1][1] = norm + len;
    }
    bool question = wh_question(text, norm);
    for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++) {
        const phrase *ph = &phrases[i];
        if (!ph->strong && words > 6) continue;
        for (int s = 0; s < 2; s++) {
            if (!spans[s][0]) continue;
            const char *at = find_words(spans[s][0], spans[s][1], ph->text);
            if (!at) continue;
            int phase = phase_in(at, spans[s][1]);
            if (ph->needs_phase && phase < 0) continue;
            /* the clause this match sits in */
            const char *clause = at;
            while (clause > norm && *clause != '|') clause--;
            if (negated(clause, at)) {
                out->intent = "chat";
                out->confidence = 0.7;
                return;
            }
            if (question && ph->intent != I_HELP) {
                out->intent = "chat";
                out->confidence = 0.65;
                return;
            }
            out->intent = intent_names[ph->intent];
            double conf = ph->strong ? 0.95 : 0.75;
            if (words > 15)
                conf -= 0.2;
            else if (words > 6)
                conf -= 0.1;
            out->confidence = conf;
            int cur = phase_index(current_phase);
            switch (ph->intent) {
            case I_PROCEED:
                if (phase < 0 && cur >= 0 && cur + 1 < QG_BUILTIN_NPHASES) phase = cur + 1;
                break;
            case I_BACK:
                if (phase < 0 && cur > 0) phase = cur - 1;
                break;
            case I_CODE:
                phase = 2;
                break;
            case I_TESTS:
                phase = 3;
                break;
            case I_DEPLOY:
                phase = 4;
                break;
            case I_RESTART:
                phase = 0;
                break;
            case I_HELP:
                phase = -1;
                break;
            }
            out->target_phase = phase >= 0 ? qg_builtin_phases[phase] : NULL;
            return;
        }
    }
}

qg_status qg_builtin_intent_json(const char *text, const char *current_phase, qg_arena *a,
                                 const char **json_out, qg_error *err)
{
    qg_builtin_intent in;
    qg_builtin_classify_intent(text, current_phase, &in);
    *json_out = qg_arena_sprintf(
        a, "{\"intent\":\"%s\",\"target_phase\":%s%s%s,\"confidence\":%.2f}", in.intent,
        in.target_phase ? "\"" : "", in.target_phase ? in.target_phase : "null",
        in.target_phase ? "\"" : "", in.confidence);
    return *json_out ? QG_OK : qg_error_set(err, QG_ENOMEM, "intent: out of memory");
}

/* ---- the provider ---- */

static const char *last_user_text(const qg_ai_request *req)
{
    for (size_t i = req->n_messages; i > 0; i--)
        if (req->messages[i - 1].role == QG_AI_ROLE_USER && req->messages[i - 1].content)
            return req->messages[i - 1].content;
    return "";
}

/* The first few words of the user's message, as a short topic. */
static void topic_of(const char *text, char *out, size_t cap)
{
    size_t k = 0, words = 0;
    bool space = true;
    for (const char *p = text; *p && k + 4 < cap && words < 10; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == '"' || c == ' ' || c == '\\') {
            if (!space && k) out[k++] = ' ', words++;
            space = true;
            continue;
        }
        out[k++] = (char)c;
        space = false;
    }
    while (k && (out[k - 1] == ' ' || ((unsigned char)out[k - 1] & 0xC0) == 0xC0)) k--;
    /* never end inside a UTF-8 sequence */
    size_t j = k;
    while (j && ((unsigned char)out[j - 1] & 0xC0) == 0x80) j--;
    if (j && ((unsigned char)out[j - 1] & 0x80)) {
        unsigned char lead = (unsigned char)out[j - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        if (k - (j - 1) < need) k = j - 1;
    }
    out[k] = 0;
}

static bool task_wants_json(const qg_ai_request *req)
{
    return req->json_mode;
}

/* What the user said: through a chat template the last user message is the
 * rendered (fenced) prompt, so the template's "message" parameter is the
 * better source. */
static const char *user_words(const qg_ai_request *req, qg_arena *a)
{
    cJSON *in = req->task_input ? cJSON_Parse(req->task_input) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(in, "message");
    const char *text =
        cJSON_IsString(m) ? qg_arena_strndup(a, m->valuestring, strlen(m->valuestring)) : NULL;
    cJSON_Delete(in);
    return text ? text : last_user_text(req);
}

static const char *capabilities_text(const qg_ai_request *req, qg_arena *a)
{
    char topic[96];
    topic_of(user_words(req, a), topic, sizeof topic);
    const char *phase = NULL;
    if (req->task && !strncmp(req->task, "chat.", 5) && phase_index(req->task + 5) >= 0)
        phase = req->task + 5;
    return qg_arena_sprintf(
        a,
        "This is quantgate's built-in offline assistant; no language model provider is "
        "configured for this request, so I cannot discuss %s%s%s freely. Offline I can analyse a "
        "trading signal (score, risk, entry, stop, target and an explanation derived from its "
        "confluences, confidence, timeframe agreement and levels) and recognise the strategy "
        "builder's commands: proceed, go back to a phase, start coding, run tests, deploy, "
        "restart and help.%s%s%s To chat freely, configure a provider: set OPENAI_API_KEY, "
        "ANTHROPIC_API_KEY, GEMINI_API_KEY or OLLAMA_HOST, or add a deployment through the "
        "admin API.",
        topic[0] ? "\"" : "", topic[0] ? topic : "your message", topic[0] ? "\"" : "",
        phase ? " You are in the " : "", phase ? phase : "",
        phase ? " phase; say \"proceed\" to move on or \"go back to <phase>\" to return." : "");
}

static qg_status answer_for(const qg_ai_request *req, qg_arena *a, const char **text, qg_error *err)
{
    const char *task = req->task ? req->task : "";
    if (!strcmp(task, "signal.analyze")) {
        const char *in = req->task_input;
        cJSON *parsed = NULL; /* ours to free: the input parsed here, without a task_doc */
        const cJSON *doc = req->task_doc;
        if (!doc) {
            if (!in || !*in) {
                const char *fixed = NULL;
                if (qg_jsonfix_extract(last_user_text(req), a, &fixed, NULL) == QG_OK) in = fixed;
            }
            if (!in) return qg_error_set(err, QG_EINVAL, "signal.analyze: task_input: missing");
            if (!(doc = parsed = cJSON_Parse(in)))
                return qg_error_set(err, QG_EINVAL, "signal.analyze: task_input: not valid JSON");
        }
        /* Through the signal.analyze template the input is the template's
         * parameters, {"signal": {...}, ...}: the signal is that member
         * (an object, or JSON text when the caller passed it as a string). */
        const cJSON *target = doc;
        cJSON *inner = NULL;
        const cJSON *member = cJSON_GetObjectItemCaseSensitive(doc, "signal");
        if (cJSON_IsObject(member))
            target = member;
        else if (cJSON_IsString(member) && (inner = cJSON_Parse(member->valuestring)))
            target = inner;
        qg_status rc = qg_builtin_analyze_signal(target, a, text, err);
        cJSON_Delete(inner);
        cJSON_Delete(parsed);
        return rc;
    }
    if (!strcmp(task, "chat.intent")) {
        const char *msg = last_user_text(req), *phase = NULL;
        cJSON *in = req->task_input ? cJSON_Parse(req->task_input) : NULL;
        if (cJSON_IsObject(in)) {
            static const char *const tk[] = {"text", "message", "content"};
            for (size_t i = 0; i < 3; i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, tk[i]);
                if (cJSON_IsString(v)) {
                    msg = v->valuestring;
                    break;
                }
            }
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(in, "current_phase");
            if (!p) p = cJSON_GetObjectItemCaseSensitive(in, "phase");
            if (cJSON_IsString(p)) phase = p->valuestring;
        } else if (cJSON_IsString(in)) {
            msg = in->valuestring;
        } else if (!in && req->task_input && *req->task_input) {
            msg = req->task_input;
        }
        qg_status rc = qg_builtin_intent_json(msg, phase, a, text, err);
        cJSON_Delete(in);
        return rc;
    }
    const char *t = capabilities_text(req, a);
    if (!t) return qg_error_set(err, QG_ENOMEM, "builtin: out of memory");
    if (!task_wants_json(req)) {
        *text = t;
        return QG_OK;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "answer", t);
    cJSON_AddStringToObject(o, "provider", "builtin");
    cJSON *caps = cJSON_AddArrayToObject(o, "capabilities");
    cJSON_AddItemToArray(caps, cJSON_CreateString("signal.analyze"));
    cJSON_AddItemToArray(caps, cJSON_CreateString("chat.intent"));
    char *s = qg_json_compact(o);
    cJSON_Delete(o);
    if (!s) return qg_error_set(err, QG_ENOMEM, "builtin: out of memory");
    *text = qg_arena_strndup(a, s, strlen(s));
    cJSON_free(s);
    return *text ? QG_OK : qg_error_set(err, QG_ENOMEM, "builtin: out of memory");
}

static int64_t request_tokens(const qg_ai_request *req)
{
    int64_t n = qg_builtin_count_tokens(req->system) + qg_builtin_count_tokens(req->task_input);
    for (size_t i = 0; i < req->n_messages; i++) {
        const qg_ai_msg *m = &req->messages[i];
        n += qg_builtin_count_tokens(m->content) + 3; /* role and framing */
        for (size_t j = 0; j < m->n_tool_calls; j++)
            n += qg_builtin_count_tokens(m->tool_calls[j].name) +
                 qg_builtin_count_tokens(m->tool_calls[j].arguments);
    }
    for (size_t i = 0; i < req->n_tools; i++)
        n += qg_builtin_count_tokens(req->tools[i].name) +
             qg_builtin_count_tokens(req->tools[i].description) +
             qg_builtin_count_tokens(req->tools[i].parameters);
    return n;
}

/* Delivers text as a few deltas, cut only between UTF-8 sequences. */
static qg_status deliver(qg_ai_stream *st, const char *text, bool chunked)
{
    size_t n = strlen(text);
    size_t pieces = chunked && n > 16 ? 4 : 1;
    size_t at = 0;
    for (size_t i = 1; i <= pieces; i++) {
        size_t cut = i == pieces ? n : n * i / pieces;
        while (cut < n && ((unsigned char)text[cut] & 0xC0) == 0x80) cut++;
        if (cut <= at) continue;
        qg_status rc = qg_ai_stream_text(st, text + at, cut - at);
        if (rc) return rc;
        at = cut;
    }
    return QG_OK;
}

static qg_status builtin_complete(const qg_ai_deployment *d, const qg_ai_request *req, qg_arena *a,
                                  qg_ai_stream_fn on_delta, void *ud, qg_ai_response *out,
                                  qg_error *err)
{
    memset(out, 0, sizeof *out);
    out->error.retry_after_ms = -1;
    const char *text = NULL;
    qg_status rc = answer_for(req, a, &text, err);
    if (rc) {
        out->text = "";
        out->finish_reason = "stop";
        out->error.kind = rc == QG_EINVAL ? QG_AI_EBADREQ : QG_AI_ESERVER;
        snprintf(out->error.message, sizeof out->error.message, "%s",
                 err ? err->msg : "builtin failed");
        return rc;
    }
    qg_ai_stream st;
    qg_ai_stream_init(&st, a, on_delta, ud);
    rc = deliver(&st, text, on_delta != NULL);
    qg_ai_stream_usage(&st, request_tokens(req), qg_builtin_count_tokens(text), 0);
    qg_ai_stream_set_finish(&st, "stop");
    const char *model = d && d->model[0] ? d->model : "builtin";
    qg_ai_stream_set_model(&st, model, strlen(model));
    qg_ai_stream_finish(&st, out);
    if (rc) return qg_error_set(err, rc, "builtin: answer too large");
    return QG_OK;
}

const qg_ai_provider qg_ai_provider_builtin = {
    .name = "builtin",
    .framing = QG_AI_FRAMING_SSE,
    .encode = NULL,
    .decode = NULL,
    .stream_event = NULL,
    .decode_error = NULL,
    .complete = builtin_complete,
};
