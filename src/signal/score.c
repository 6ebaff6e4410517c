/*
 * score.c - the deterministic signal score: a base plus weights for each
 * confluence, a killzone, a structure break (BoS/CHoCH) and multi-timeframe
 * agreement, clamped to [0, cap]. Defaults reproduce the alerting script
 * quantgate replaces: 60 + 10/confluence + 10 killzone + 10 BoS/CHoCH, cap
 * 100.
 */
#include "signal/rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qg_score_weights_default(qg_score_weights *w)
{
    w->base = 60;
    w->per_confluence = 10;
    w->killzone = 10;
    w->structure_break = 10;
    w->multi_tf = 0;
    w->cap = 100;
}

qg_status qg_score_weights_parse(const char *spec, qg_score_weights *w, qg_error *err)
{
    static const char *KNOWN = "base, confluence, killzone, structure, multi_tf, cap";
    qg_score_weights tmp;
    qg_score_weights_default(&tmp);
    const char *p = spec ? spec : "";
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *item = p;
        size_t len = strcspn(p, ",");
        p += len;
        while (len && item[len - 1] == ' ') len--;
        const char *eq = memchr(item, '=', len);
        if (!eq)
            return qg_error_set(err, QG_EINVAL, "score weights: \"%.*s\" is not key=value",
                                (int)(len > 40 ? 40 : len), item);
        size_t klen = (size_t)(eq - item);
        while (klen && item[klen - 1] == ' ') klen--;
        double *dst = NULL;
        if (klen == 4 && !memcmp(item, "base", 4))
            dst = &tmp.base;
        else if (klen == 10 && !memcmp(item, "confluence", 10))
            dst = &tmp.per_confluence;
        else if (klen == 8 && !memcmp(item, "killzone", 8))
            dst = &tmp.killzone;
        else if (klen == 9 && !memcmp(item, "structure", 9))
            dst = &tmp.structure_break;
        else if (klen == 8 && !memcmp(item, "multi_tf", 8))
            dst = &tmp.multi_tf;
        else if (klen == 3 && !memcmp(item, "cap", 3))
            dst = &tmp.cap;
        if (!dst)
            return qg_error_set(err, QG_EINVAL, "score weights: unknown key \"%.*s\" (known: %s)",
                                (int)(klen > 32 ? 32 : klen), item, KNOWN);
        const char *v = eq + 1;
        while (*v == ' ') v++;
        size_t vlen = (size_t)(item + len - v);
        char num[48];
        if (vlen == 0 || vlen >= sizeof num)
            return qg_error_set(err, QG_EINVAL, "score weights: %.*s: expected a number", (int)klen,
                                item);
        memcpy(num, v, vlen);
        num[vlen] = 0;
        char *end;
        double d = strtod(num, &end);
        if (*end || !isfinite(d) || d < -1000 || d > 1000)
            return qg_error_set(err, QG_EINVAL,
                                "score weights: %.*s: \"%s\" is not a number in -1000..1000",
                                (int)klen, item, num);
        *dst = d;
    }
    if (tmp.cap <= 0) return qg_error_set(err, QG_EINVAL, "score weights: cap: must be above 0");
    *w = tmp;
    return QG_OK;
}

double qg_score(const qg_score_weights *w, const qg_signal *s, bool in_killzone)
{
    double v = w->base + w->per_confluence * s->nconfluences;
    if (in_killzone) v += w->killzone;
    if (qg_signal_is_structure_break(s)) v += w->structure_break;
    if (s->multi_tf) v += w->multi_tf;
    if (v > w->cap) v = w->cap;
    if (v < 0) v = 0;
    return v;
}
