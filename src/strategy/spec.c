/*
 * spec.c - parsing and resolving strategy specs (docs/strategy-spec.md).
 *
 * The parser walks the cJSON tree once, keeping a JSON path ("entry.long.
 * and[1].gt[0]") so every error can say where it is. Parameters are resolved
 * first, so every later number may be a "$param" reference; indicator names
 * are bound before conditions, so operands become indices. Unknown fields
 * are errors: a misspelt "stop_los" silently ignored would cost money.
 */
#include <quantgate/strategy.h>
#include <quantgate/time.h>

#include <cjson/cJSON.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    qg_strategy *s;
    qg_error *err;
} parser;

static const char *const field_names[] = {"close",  "open", "high", "low",
                                          "volume", "hl2",  "hlc3", "ohlc4"};

static qg_status fail(parser *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static qg_status fail(parser *p, const char *path, const char *fmt, ...)
{
    char msg[QG_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path && *path) return qg_error_set(p->err, QG_EINVAL, "%s: %s", path, msg);
    return qg_error_set(p->err, QG_EINVAL, "%s", msg);
}

static void join_path(char *out, size_t cap, const char *base, const char *key)
{
    if (base && *base)
        snprintf(out, cap, "%s.%s", base, key);
    else
        snprintf(out, cap, "%s", key);
}

static bool is_identifier(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_')) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

/* Rejects keys outside `known` (a NULL-terminated list). */
static qg_status check_keys(parser *p, const cJSON *obj, const char *path, const char *const *known)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(it->string, *k) == 0;
        if (ok) continue;
        char list[256] = "";
        for (const char *const *k = known; *k; k++) {
            strncat(list, *k, sizeof list - strlen(list) - 1);
            if (k[1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        char where[256];
        join_path(where, sizeof where, path, it->string);
        return fail(p, where, "unknown field (expected one of: %s)", list);
    }
    return QG_OK;
}

/* ---- parameters ---- */

static const qg_strategy_param *find_param(const qg_strategy *s, const char *name)
{
    for (size_t i = 0; i < s->n_params; i++)
        if (strcmp(s->params[i].name, name) == 0) return &s->params[i];
    return NULL;
}

double qg_strategy_param_value(const qg_strategy *s, const char *name)
{
    const qg_strategy_param *p = find_param(s, name);
    return p ? p->value : NAN;
}

static void param_list(const qg_strategy *s, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < s->n_params; i++) {
        strncat(out, s->params[i].name, cap - strlen(out) - 1);
        if (i + 1 < s->n_params) strncat(out, ", ", cap - strlen(out) - 1);
    }
    if (!s->n_params) snprintf(out, cap, "none");
}

static qg_status parse_params(parser *p, const cJSON *obj, const qg_param_override *ov, size_t n_ov)
{
    qg_strategy *s = p->s;
    if (obj && !cJSON_IsObject(obj)) return fail(p, "params", "must be an object of name: number");
    for (const cJSON *it = obj ? obj->child : NULL; it; it = it->next) {
        char where[256];
        join_path(where, sizeof where, "params", it->string);
        if (!is_identifier(it->string) || strlen(it->string) >= sizeof s->params[0].name)
            return fail(p, where, "parameter names are letters, digits and _ (up to 31)");
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
            return fail(p, where, "must be a number");
        if (s->n_params == QG_STRAT_MAX_PARAMS)
            return fail(p, where, "too many parameters (at most %d)", QG_STRAT_MAX_PARAMS);
        qg_strategy_param *sp = &s->params[s->n_params++];
        snprintf(sp->name, sizeof sp->name, "%s", it->string);
        sp->value = it->valuedouble;
    }
    for (size_t i = 0; i < n_ov; i++) {
        qg_strategy_param *sp = (qg_strategy_param *)find_param(s, ov[i].name);
        if (!sp) {
            char list[256];
            param_list(s, list, sizeof list);
            return fail(p, "", "parameter '%s' is not declared by strategy '%s' (declared: %s)",
                        ov[i].name, s->name, list);
        }
        sp->value = ov[i].value;
    }
    return QG_OK;
}

/* A number, or "$name" naming a parameter. */
static qg_status number_value(parser *p, const cJSON *v, const char *path, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return QG_OK;
    }
    if (cJSON_IsString(v) && v->valuestring[0] == '$') {
        const qg_strategy_param *sp = find_param(p->s, v->valuestring + 1);
        if (!sp) {
            char list[256];
            param_list(p->s, list, sizeof list);
            return fail(p, path, "unknown parameter '%s' (declared: %s)", v->valuestring, list);
        }
        *out = sp->value;
        return QG_OK;
    }
    return fail(p, path, "expected a number or a \"$parameter\"");
}

/* ---- indicators ---- */

static int find_indicator(const qg_strategy *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n_ind; i++)
        if (strlen(s->ind[i].name) == len && strncmp(s->ind[i].name, name, len) == 0) return (int)i;
    return -1;
}

/* Replaces each "$name" in text by the parameter's value. */
static qg_status substitute(parser *p, const char *text, const char *path, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *c = text; *c;) {
        if (*c != '$') {
            if (o + 1 >= cap) return fail(p, path, "indicator text too long");
            out[o++] = *c++;
            continue;
        }
        const char *start = ++c;
        while (isalnum((unsigned char)*c) || *c == '_') c++;
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(c - start), start);
        const qg_strategy_param *sp = find_param(p->s, name);
        if (!sp) {
            char list[256];
            param_list(p->s, list, sizeof list);
            return fail(p, path, "unknown parameter '$%s' (declared: %s)", name, list);
        }
        int n = snprintf(out + o, cap - o, "%.15g", sp->value);
        if (n < 0 || (size_t)n >= cap - o) return fail(p, path, "indicator text too long");
        o += (size_t)n;
    }
    out[o] = '\0';
    return QG_OK;
}

static qg_status indicator_from_object(parser *p, const cJSON *v, const char *path,
                                       qg_ind_spec *spec)
{
    static const char *const keys[] = {"type", "params", "source", NULL};
    qg_status rc = check_keys(p, v, path, keys);
    if (rc) return rc;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(v, "type");
    char where[256];
    join_path(where, sizeof where, path, "type");
    if (!cJSON_IsString(type)) return fail(p, where, "required: the indicator name, e.g. \"sma\"");
    int kind = qg_ind_kind_parse(type->valuestring);
    if (kind < 0) {
        qg_ind_spec probe;
        qg_ind_parse(type->valuestring, &probe, p->err); /* its message lists the names */
        return qg_error_prefix(p->err, "%s", where), QG_EINVAL;
    }
    memset(spec, 0, sizeof *spec);
    spec->kind = (qg_ind_kind)kind;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(v, "params");
    if (params) {
        join_path(where, sizeof where, path, "params");
        if (!cJSON_IsArray(params)) return fail(p, where, "must be an array of numbers");
        int i = 0;
        for (const cJSON *it = params->child; it; it = it->next, i++) {
            char elem[280];
            snprintf(elem, sizeof elem, "%s[%d]", where, i);
            if (i >= QG_IND_MAX_PARAMS) return fail(p, where, "too many parameters");
            rc = number_value(p, it, elem, &spec->params[i]);
            if (rc) return rc;
        }
        spec->nparams = i;
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(v, "source");
    if (src) {
        join_path(where, sizeof where, path, "source");
        int f = cJSON_IsString(src) ? qg_source_parse(src->valuestring) : -1;
        if (f < 0)
            return fail(p, where,
                        "expected one of close, open, high, low, volume, hl2, hlc3, ohlc4");
        spec->source = (qg_source)f;
    }
    if (qg_ind_validate(spec, p->err)) return qg_error_prefix(p->err, "%s", path), QG_EINVAL;
    return QG_OK;
}

static qg_status parse_indicators(parser *p, const cJSON *obj)
{
    qg_strategy *s = p->s;
    if (!obj) return QG_OK;
    if (!cJSON_IsObject(obj))
        return fail(p, "indicators", "must be an object of name: \"type:params\"");
    for (const cJSON *it = obj->child; it; it = it->next) {
        char where[256];
        join_path(where, sizeof where, "indicators", it->string);
        if (!is_identifier(it->string) || strlen(it->string) >= sizeof s->ind[0].name ||
            it->string[0] == '_')
            return fail(p, where,
                        "indicator names are letters, digits and _ (up to 31), not "
                        "starting with _");
        for (size_t f = 0; f < sizeof field_names / sizeof field_names[0]; f++)
            if (strcmp(it->string, field_names[f]) == 0)
                return fail(p, where, "'%s' is a price field; choose another name", it->string);
        if (s->n_ind == QG_STRAT_MAX_INDICATORS)
            return fail(p, where, "too many indicators (at most %d)", QG_STRAT_MAX_INDICATORS);
        qg_strategy_ind *si = &s->ind[s->n_ind];
        snprintf(si->name, sizeof si->name, "%s", it->string);
        qg_status rc;
        if (cJSON_IsString(it)) {
            char text[128];
            rc = substitute(p, it->valuestring, where, text, sizeof text);
            if (!rc && qg_ind_parse(text, &si->spec, p->err))
                return qg_error_prefix(p->err, "%s", where), QG_EINVAL;
        } else if (cJSON_IsObject(it)) {
            rc = indicator_from_object(p, it, where, &si->spec);
        } else {
            rc = fail(p, where, "expected \"type:params\" (e.g. \"sma:20\") or an object");
        }
        if (rc) return rc;
        s->n_ind++;
    }
    return QG_OK;
}

/* Index of a hidden ATR indicator for stops, added on first use. */
static qg_status hidden_atr(parser *p, int period, const char *path, int *out)
{
    qg_strategy *s = p->s;
    char name[32];
    snprintf(name, sizeof name, "__atr%d", period);
    int i = find_indicator(s, name, strlen(name));
    if (i >= 0) return (*out = i), QG_OK;
    if (s->n_ind == QG_STRAT_MAX_INDICATORS) return fail(p, path, "too many indicators");
    qg_strategy_ind *si = &s->ind[s->n_ind];
    snprintf(si->name, sizeof si->name, "%s", name);
    memset(&si->spec, 0, sizeof si->spec);
    si->spec.kind = QG_IND_ATR;
    si->spec.nparams = 1;
    si->spec.params[0] = period;
    if (qg_ind_validate(&si->spec, p->err)) return qg_error_prefix(p->err, "%s", path), QG_EINVAL;
    *out = (int)s->n_ind++;
    return QG_OK;
}

/* ---- conditions ---- */

static void operand_help(const qg_strategy *s, char *out, size_t cap)
{
    snprintf(out, cap, "indicators: ");
    size_t shown = 0;
    for (size_t i = 0; i < s->n_ind; i++) {
        if (s->ind[i].name[0] == '_') continue;
        if (shown++) strncat(out, ", ", cap - strlen(out) - 1);
        strncat(out, s->ind[i].name, cap - strlen(out) - 1);
    }
    if (!shown) strncat(out, "none", cap - strlen(out) - 1);
    strncat(out, "; fields: open, high, low, close, volume, hl2, hlc3, ohlc4",
            cap - strlen(out) - 1);
}

static qg_status parse_operand(parser *p, const cJSON *v, const char *path, qg_operand *o)
{
    memset(o, 0, sizeof *o);
    if (cJSON_IsNumber(v) || (cJSON_IsString(v) && v->valuestring[0] == '$')) {
        o->kind = QG_OPD_CONST;
        return number_value(p, v, path, &o->value);
    }
    if (!cJSON_IsString(v))
        return fail(p, path, "expected an operand: a number, \"$param\", an indicator or a field");
    const char *text = v->valuestring;
    size_t len = strlen(text);
    /* Optional lag suffix "[k]": the value k bars back. */
    const char *br = strchr(text, '[');
    if (br) {
        char *end;
        long lag = strtol(br + 1, &end, 10);
        if (end == br + 1 || *end != ']' || end[1] != '\0')
            return fail(p, path, "'%s': a lag is written name[k] with k a whole number", text);
        if (lag < 0) return fail(p, path, "'%s': negative lags would read future bars", text);
        if (lag > QG_STRAT_MAX_LAG)
            return fail(p, path, "'%s': lag %ld is over the maximum of %d", text, lag,
                        QG_STRAT_MAX_LAG);
        o->lag = (int)lag;
        len = (size_t)(br - text);
    }
    const char *dot = memchr(text, '.', len);
    size_t base_len = dot ? (size_t)(dot - text) : len;
    int ind = find_indicator(p->s, text, base_len);
    if (ind >= 0 && text[0] != '_') {
        const qg_ind_spec *spec = &p->s->ind[ind].spec;
        o->kind = QG_OPD_IND;
        o->ind = ind;
        o->output = 0;
        if (dot) {
            size_t klen = len - base_len - 1;
            int found = -1;
            for (int k = 0; k < qg_ind_output_count(spec); k++) {
                const char *key = qg_ind_output_key(spec, k);
                if (strlen(key) == klen && strncmp(key, dot + 1, klen) == 0) found = k;
            }
            if (found < 0) {
                char outs[128] = "";
                for (int k = 0; k < qg_ind_output_count(spec); k++) {
                    if (k) strncat(outs, ", ", sizeof outs - strlen(outs) - 1);
                    strncat(outs, qg_ind_output_key(spec, k), sizeof outs - strlen(outs) - 1);
                }
                return fail(p, path, "'%s': %s has no output '%.*s' (outputs: %s)", text,
                            p->s->ind[ind].name, (int)klen, dot + 1, outs);
            }
            o->output = found;
        }
        return QG_OK;
    }
    if (!dot) {
        for (size_t f = 0; f < sizeof field_names / sizeof field_names[0]; f++) {
            if (strlen(field_names[f]) == len && strncmp(text, field_names[f], len) == 0) {
                o->kind = QG_OPD_FIELD;
                o->field = (qg_source)qg_source_parse(field_names[f]);
                return QG_OK;
            }
        }
    }
    char help[256];
    operand_help(p->s, help, sizeof help);
    return fail(p, path, "unknown operand '%s' (%s)", text, help);
}

static const struct {
    const char *name;
    qg_cond_op op;
} cond_ops[] = {{"cross_above", QG_COND_CROSS_ABOVE},
                {"cross_below", QG_COND_CROSS_BELOW},
                {"gt", QG_COND_GT},
                {"lt", QG_COND_LT},
                {"gte", QG_COND_GTE},
                {"lte", QG_COND_LTE},
                {"and", QG_COND_AND},
                {"or", QG_COND_OR},
                {"not", QG_COND_NOT}};

static qg_status new_node(parser *p, const char *path, int *out)
{
    if (p->s->n_nodes == QG_STRAT_MAX_NODES)
        return fail(p, path, "conditions too large (at most %d nodes)", QG_STRAT_MAX_NODES);
    *out = (int)p->s->n_nodes++;
    memset(&p->s->nodes[*out], 0, sizeof p->s->nodes[0]);
    return QG_OK;
}

static qg_status parse_cond(parser *p, const cJSON *v, const char *path, int depth, int *out)
{
    if (depth > 16) return fail(p, path, "conditions nested too deeply");
    if (!cJSON_IsObject(v) || !v->child || v->child->next)
        return fail(p, path,
                    "a condition is an object with one operator, e.g. "
                    "{\"cross_above\": [\"fast\", \"slow\"]}");
    const cJSON *arg = v->child;
    int op = -1;
    for (size_t i = 0; i < sizeof cond_ops / sizeof cond_ops[0]; i++)
        if (strcmp(arg->string, cond_ops[i].name) == 0) op = (int)cond_ops[i].op;
    char where[256];
    join_path(where, sizeof where, path, arg->string);
    if (op < 0)
        return fail(p, where,
                    "unknown operator (use cross_above, cross_below, gt, lt, gte, lte, "
                    "and, or, not)");
    qg_status rc;
    if (op == QG_COND_NOT) {
        const cJSON *inner = cJSON_IsArray(arg) ? arg->child : arg;
        if (cJSON_IsArray(arg) && cJSON_GetArraySize(arg) != 1)
            return fail(p, where, "takes one condition");
        int child;
        if ((rc = parse_cond(p, inner, where, depth + 1, &child))) return rc;
        if ((rc = new_node(p, where, out))) return rc;
        p->s->nodes[*out] = (qg_cond_node){.op = QG_COND_NOT, .left = child, .right = -1};
        return QG_OK;
    }
    if (!cJSON_IsArray(arg)) return fail(p, where, "expects an array");
    int n = cJSON_GetArraySize(arg);
    if (op == QG_COND_AND || op == QG_COND_OR) {
        if (n < 1) return fail(p, where, "needs at least one condition");
        int acc = -1, i = 0;
        for (const cJSON *it = arg->child; it; it = it->next, i++) {
            char elem[280];
            snprintf(elem, sizeof elem, "%s[%d]", where, i);
            int child;
            if ((rc = parse_cond(p, it, elem, depth + 1, &child))) return rc;
            if (acc < 0) {
                acc = child;
                continue;
            }
            int node = -1;
            if ((rc = new_node(p, where, &node))) return rc;
            p->s->nodes[node] = (qg_cond_node){.op = (qg_cond_op)op, .left = acc, .right = child};
            acc = node;
        }
        *out = acc;
        return QG_OK;
    }
    if (n != 2) return fail(p, where, "compares exactly two operands, found %d", n);
    qg_operand a, b;
    char ea[280], eb[280];
    snprintf(ea, sizeof ea, "%s[0]", where);
    snprintf(eb, sizeof eb, "%s[1]", where);
    if ((rc = parse_operand(p, arg->child, ea, &a))) return rc;
    if ((rc = parse_operand(p, arg->child->next, eb, &b))) return rc;
    if (a.kind == QG_OPD_CONST && b.kind == QG_OPD_CONST)
        return fail(p, where, "compares two constants; one side must change with the data");
    if ((rc = new_node(p, where, out))) return rc;
    p->s->nodes[*out] =
        (qg_cond_node){.op = (qg_cond_op)op, .a = a, .b = b, .left = -1, .right = -1};
    return QG_OK;
}

static qg_status parse_sides(parser *p, const cJSON *obj, const char *name, int *lng, int *sht)
{
    *lng = *sht = -1;
    if (!obj) return QG_OK;
    if (!cJSON_IsObject(obj))
        return fail(p, name, "must be an object with \"long\" and/or \"short\" conditions");
    static const char *const keys[] = {"long", "short", NULL};
    qg_status rc = check_keys(p, obj, name, keys);
    if (rc) return rc;
    char where[256];
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(obj, "long");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, "short");
    join_path(where, sizeof where, name, "long");
    if (l && (rc = parse_cond(p, l, where, 0, lng))) return rc;
    join_path(where, sizeof where, name, "short");
    if (s && (rc = parse_cond(p, s, where, 0, sht))) return rc;
    return QG_OK;
}

/* ---- stops, targets, sizing ---- */

static qg_status parse_exit_rule(parser *p, const cJSON *obj, const char *name, qg_exit_rule *r)
{
    memset(r, 0, sizeof *r);
    if (!obj) return QG_OK;
    static const char *const keys[] = {"percent", "atr", "period", "price", NULL};
    if (!cJSON_IsObject(obj))
        return fail(p, name,
                    "expected {\"percent\": x}, {\"atr\": mult, \"period\": n} or "
                    "{\"price\": distance}");
    qg_status rc = check_keys(p, obj, name, keys);
    if (rc) return rc;
    const cJSON *pct = cJSON_GetObjectItemCaseSensitive(obj, "percent");
    const cJSON *atr = cJSON_GetObjectItemCaseSensitive(obj, "atr");
    const cJSON *price = cJSON_GetObjectItemCaseSensitive(obj, "price");
    const cJSON *period = cJSON_GetObjectItemCaseSensitive(obj, "period");
    if (!!pct + !!atr + !!price != 1)
        return fail(p, name, "give exactly one of percent, atr or price");
    if (period && !atr) return fail(p, name, "period goes with atr");
    char where[256];
    const cJSON *v = pct ? pct : atr ? atr : price;
    join_path(where, sizeof where, name, v->string);
    r->kind = pct ? QG_EXIT_PERCENT : atr ? QG_EXIT_ATR : QG_EXIT_PRICE;
    if ((rc = number_value(p, v, where, &r->value))) return rc;
    if (!(r->value > 0)) return fail(p, where, "must be greater than 0");
    if (pct && r->value >= 100 && strcmp(name, "stop_loss") == 0)
        return fail(p, where, "a stop of 100%% or more never triggers");
    if (atr) {
        double per = 14;
        join_path(where, sizeof where, name, "period");
        if (period && (rc = number_value(p, period, where, &per))) return rc;
        if (per < 1 || per != floor(per) || per > 100000)
            return fail(p, where, "must be a whole number >= 1");
        r->atr_period = (int)per;
        if ((rc = hidden_atr(p, r->atr_period, name, &r->atr_ind))) return rc;
    }
    return QG_OK;
}

static qg_status parse_sizing(parser *p, const cJSON *obj)
{
    qg_sizing *z = &p->s->sizing;
    z->kind = QG_SIZE_PERCENT_EQUITY;
    z->value = 100;
    if (!obj) return QG_OK;
    static const char *const keys[] = {"percent_equity", "fixed_qty", "risk_percent", NULL};
    if (!cJSON_IsObject(obj) || !obj->child || obj->child->next)
        return fail(p, "sizing",
                    "expected one of {\"percent_equity\": x}, {\"fixed_qty\": q}, "
                    "{\"risk_percent\": r}");
    qg_status rc = check_keys(p, obj, "sizing", keys);
    if (rc) return rc;
    char where[256];
    join_path(where, sizeof where, "sizing", obj->child->string);
    if ((rc = number_value(p, obj->child, where, &z->value))) return rc;
    if (strcmp(obj->child->string, "fixed_qty") == 0) {
        z->kind = QG_SIZE_FIXED_QTY;
        if (!(z->value > 0)) return fail(p, where, "must be greater than 0");
        return QG_OK;
    }
    z->kind = strcmp(obj->child->string, "risk_percent") == 0 ? QG_SIZE_RISK_PERCENT
                                                              : QG_SIZE_PERCENT_EQUITY;
    if (!(z->value > 0 && z->value <= 100)) return fail(p, where, "must be in (0, 100]");
    return QG_OK;
}

/* ---- constraints: "a < b" over parameters and numbers ---- */

static qg_status constraint_side(parser *p, const char *tok, const char *path, double *out)
{
    char *end;
    double v = strtod(tok, &end);
    if (end != tok && *end == '\0') return (*out = v), QG_OK;
    const qg_strategy_param *sp = find_param(p->s, tok[0] == '$' ? tok + 1 : tok);
    if (!sp) return fail(p, path, "'%s' is neither a number nor a declared parameter", tok);
    *out = sp->value;
    return QG_OK;
}

static qg_status parse_constraints(parser *p, const cJSON *arr)
{
    if (!arr) return QG_OK;
    if (!cJSON_IsArray(arr))
        return fail(p, "constraints", "must be an array like [\"fast < slow\"]");
    static const struct {
        const char *tok;
        qg_cmp cmp;
    } cmps[] = {{"<=", QG_CMP_LE}, {">=", QG_CMP_GE}, {"==", QG_CMP_EQ},
                {"!=", QG_CMP_NE}, {"<", QG_CMP_LT},  {">", QG_CMP_GT}};
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        char where[64];
        snprintf(where, sizeof where, "constraints[%d]", i);
        if (p->s->n_constraints == QG_STRAT_MAX_CONSTRAINTS)
            return fail(p, where, "too many constraints");
        char a[64], op[4], b[64];
        if (!cJSON_IsString(it) || sscanf(it->valuestring, "%63s %3s %63s", a, op, b) != 3)
            return fail(p, where, "expected \"a OP b\" with OP one of < <= > >= == !=");
        qg_constraint *c = &p->s->constraints[p->s->n_constraints];
        int found = 0;
        for (size_t k = 0; k < sizeof cmps / sizeof cmps[0] && !found; k++)
            if (strcmp(op, cmps[k].tok) == 0) c->cmp = cmps[k].cmp, found = 1;
        if (!found) return fail(p, where, "unknown comparison '%s'", op);
        qg_status rc = constraint_side(p, a, where, &c->a);
        if (!rc) rc = constraint_side(p, b, where, &c->b);
        if (rc) return rc;
        snprintf(c->text, sizeof c->text, "%s", it->valuestring);
        p->s->n_constraints++;
    }
    return QG_OK;
}

static bool constraint_holds(const qg_constraint *c)
{
    switch (c->cmp) {
    case QG_CMP_LT:
        return c->a < c->b;
    case QG_CMP_LE:
        return c->a <= c->b;
    case QG_CMP_GT:
        return c->a > c->b;
    case QG_CMP_GE:
        return c->a >= c->b;
    case QG_CMP_EQ:
        return c->a == c->b;
    case QG_CMP_NE:
        return c->a != c->b;
    }
    return false;
}

/* ---- the document ---- */

static void json_error_position(const char *json, size_t len, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    if (!at || at < json || at > json + len) return;
    for (const char *c = json; c < at; c++) {
        if (*c == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int node_max_lag(const qg_strategy *s, int node)
{
    if (node < 0) return 0;
    const qg_cond_node *n = &s->nodes[node];
    switch (n->op) {
    case QG_COND_AND:
    case QG_COND_OR: {
        int l = node_max_lag(s, n->left), r = node_max_lag(s, n->right);
        return l > r ? l : r;
    }
    case QG_COND_NOT:
        return node_max_lag(s, n->left);
    case QG_COND_CROSS_ABOVE:
    case QG_COND_CROSS_BELOW: {
        int m = n->a.lag > n->b.lag ? n->a.lag : n->b.lag;
        return m + 1;
    }
    default:
        return n->a.lag > n->b.lag ? n->a.lag : n->b.lag;
    }
}

static qg_status parse_document(parser *p, const cJSON *root, const qg_param_override *ov,
                                size_t n_ov)
{
    qg_strategy *s = p->s;
    static const char *const keys[] = {
        "name", "description", "params",      "indicators", "direction",   "timeframe", "entry",
        "exit", "stop_loss",   "take_profit", "sizing",     "constraints", NULL};
    if (!cJSON_IsObject(root)) return fail(p, "", "a strategy spec is a JSON object");
    qg_status rc = check_keys(p, root, "", keys);
    if (rc) return rc;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (name && !cJSON_IsString(name)) return fail(p, "name", "must be a string");
    snprintf(s->name, sizeof s->name, "%s", name ? name->valuestring : "custom");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(root, "description");
    if (desc && !cJSON_IsString(desc)) return fail(p, "description", "must be a string");
    snprintf(s->description, sizeof s->description, "%s", desc ? desc->valuestring : "");

    if ((rc = parse_params(p, cJSON_GetObjectItemCaseSensitive(root, "params"), ov, n_ov)))
        return rc;
    if ((rc = parse_constraints(p, cJSON_GetObjectItemCaseSensitive(root, "constraints"))))
        return rc;
    for (size_t i = 0; i < s->n_constraints; i++)
        if (!constraint_holds(&s->constraints[i]))
            return fail(p, "", "constraint '%s' does not hold (%g vs %g)", s->constraints[i].text,
                        s->constraints[i].a, s->constraints[i].b);
    if ((rc = parse_indicators(p, cJSON_GetObjectItemCaseSensitive(root, "indicators")))) return rc;

    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(root, "direction");
    s->direction = QG_DIR_LONG;
    if (dir) {
        const char *d = cJSON_IsString(dir) ? dir->valuestring : "";
        if (strcmp(d, "long") == 0)
            s->direction = QG_DIR_LONG;
        else if (strcmp(d, "short") == 0)
            s->direction = QG_DIR_SHORT;
        else if (strcmp(d, "both") == 0)
            s->direction = QG_DIR_BOTH;
        else
            return fail(p, "direction", "expected \"long\", \"short\" or \"both\"");
    }
    const cJSON *tf = cJSON_GetObjectItemCaseSensitive(root, "timeframe");
    if (tf) {
        if (!cJSON_IsString(tf)) return fail(p, "timeframe", "must be a string like \"15m\"");
        if (qg_timeframe_parse(tf->valuestring, &s->timeframe_ms, p->err))
            return qg_error_prefix(p->err, "timeframe"), QG_EINVAL;
    }
    if ((rc = parse_sides(p, cJSON_GetObjectItemCaseSensitive(root, "entry"), "entry",
                          &s->entry_long, &s->entry_short)))
        return rc;
    if ((rc = parse_sides(p, cJSON_GetObjectItemCaseSensitive(root, "exit"), "exit", &s->exit_long,
                          &s->exit_short)))
        return rc;
    if ((rc = parse_exit_rule(p, cJSON_GetObjectItemCaseSensitive(root, "stop_loss"), "stop_loss",
                              &s->stop_loss)))
        return rc;
    if ((rc = parse_exit_rule(p, cJSON_GetObjectItemCaseSensitive(root, "take_profit"),
                              "take_profit", &s->take_profit)))
        return rc;
    if ((rc = parse_sizing(p, cJSON_GetObjectItemCaseSensitive(root, "sizing")))) return rc;
    if (s->sizing.kind == QG_SIZE_RISK_PERCENT && s->stop_loss.kind == QG_EXIT_NONE)
        return fail(p, "sizing.risk_percent", "needs a stop_loss to measure the risk against");
    if (s->entry_long < 0 && s->entry_short < 0)
        return fail(p, "entry", "required: a \"long\" and/or \"short\" entry condition");
    s->max_lag = 0;
    int roots[] = {s->entry_long, s->entry_short, s->exit_long, s->exit_short};
    for (size_t i = 0; i < 4; i++) {
        int l = node_max_lag(s, roots[i]);
        if (l > s->max_lag) s->max_lag = l;
    }
    return QG_OK;
}

qg_status qg_strategy_parse(const char *json, size_t len, const qg_param_override *ov, size_t n_ov,
                            qg_strategy *out, qg_error *err)
{
    memset(out, 0, sizeof *out);
    out->entry_long = out->entry_short = out->exit_long = out->exit_short = -1;
    parser p = {.s = out, .err = err};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (!root) {
        int line, col;
        json_error_position(json, len, end ? end : cJSON_GetErrorPtr(), &line, &col);
        return qg_error_set(err, QG_EINVAL, "line %d, column %d: invalid JSON", line, col);
    }
    /* cJSON stops after the first value; anything but blanks after it is
     * a mistake (two documents, a stray character), not something to drop. */
    const char *rest = end;
    while (rest < json + len && isspace((unsigned char)*rest)) rest++;
    if (rest < json + len) {
        int line, col;
        json_error_position(json, len, rest, &line, &col);
        cJSON_Delete(root);
        return qg_error_set(err, QG_EINVAL,
                            "line %d, column %d: invalid JSON: unexpected text after the document",
                            line, col);
    }
    qg_status rc = parse_document(&p, root, ov, n_ov);
    cJSON_Delete(root);
    return rc;
}
