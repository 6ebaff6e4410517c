/*
 * strategy_args.c - the options backtest, check and optimize share:
 * --strategy NAME|FILE, --param k=v, --cash, --fee-bps, --slippage-bps,
 * --size-pct, --direction; and loading the strategy they name.
 */
#include "cmd/strategy_args.h"

#include <quantgate/file.h>
#include <quantgate/json.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

void qg_strategy_args_init(qg_strategy_args *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->cfg = qg_bt_config_default();
}

static void parse_param(qg_args *a, qg_strategy_args *sa, const char *text)
{
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        fprintf(stderr, "quantgate %s: --param '%s': expected name=value\n", a->cmd, text);
        exit(2);
    }
    if (sa->n_params == QG_STRAT_MAX_PARAMS) {
        fprintf(stderr, "quantgate %s: too many --param options\n", a->cmd);
        exit(2);
    }
    size_t k = sa->n_params++;
    snprintf(sa->names[k], sizeof sa->names[k], "%.*s", (int)(eq - text), text);
    sa->params[k].name = sa->names[k];
    sa->params[k].value = qg_args_double(a, "--param", eq + 1, -1e300, 1e300);
}

bool qg_strategy_args_match(qg_args *a, qg_strategy_args *sa)
{
    const char *v;
    if (qg_args_value(a, "--strategy", &sa->strategy)) return true;
    if (qg_args_value(a, "--param", &v)) return parse_param(a, sa, v), true;
    if (qg_args_value(a, "--cash", &v))
        return sa->cfg.cash = qg_args_double(a, "--cash", v, 1e-6, 1e15), true;
    if (qg_args_value(a, "--fee-bps", &v))
        return sa->cfg.fee_bps = qg_args_double(a, "--fee-bps", v, 0, 9999), true;
    if (qg_args_value(a, "--slippage-bps", &v))
        return sa->cfg.slippage_bps = qg_args_double(a, "--slippage-bps", v, 0, 9999), true;
    if (qg_args_value(a, "--size-pct", &v))
        return sa->cfg.size_pct = qg_args_double(a, "--size-pct", v, 1e-9, 100), true;
    if (qg_args_value(a, "--direction", &v)) {
        if (strcmp(v, "long") == 0)
            sa->cfg.direction = QG_DIR_LONG;
        else if (strcmp(v, "short") == 0)
            sa->cfg.direction = QG_DIR_SHORT;
        else if (strcmp(v, "both") == 0)
            sa->cfg.direction = QG_DIR_BOTH;
        else {
            fprintf(stderr, "quantgate %s: --direction: '%s' is not long, short or both\n", a->cmd,
                    v);
            exit(2);
        }
        return true;
    }
    return false;
}

int qg_strategy_args_load(const char *cmd, qg_strategy_args *sa, qg_strategy *out)
{
    qg_error err = {0};
    if (!sa->strategy) {
        char names[256] = "";
        for (const char *const *n = qg_strategy_builtin_names(); *n; n++) {
            strncat(names, *n, sizeof names - strlen(names) - 1);
            if (n[1]) strncat(names, ", ", sizeof names - strlen(names) - 1);
        }
        return qg_cmd_fail(cmd, "--strategy NAME|SPEC.json is required (built-in: %s)", names), 2;
    }
    const char *builtin = qg_strategy_builtin(sa->strategy);
    if (builtin) {
        sa->json = qg_xstrdup(builtin);
        sa->json_len = strlen(builtin);
    } else if (qg_file_read_all(sa->strategy, 1 << 20, &sa->json, &sa->json_len, &err)) {
        if (err.code == QG_ENOTFOUND && !strchr(sa->strategy, '.') && !strchr(sa->strategy, '/'))
            return qg_cmd_fail(cmd,
                               "unknown strategy '%s': not a built-in (see quantgate %s "
                               "--help) and no such file",
                               sa->strategy, cmd);
        return qg_cmd_fail(cmd, "%s", err.msg);
    }
    if (qg_strategy_parse(sa->json, sa->json_len, sa->params, sa->n_params, out, &err))
        return qg_cmd_fail(cmd, "%s: %s", sa->strategy, err.msg);
    return 0;
}

void qg_strategy_args_free(qg_strategy_args *sa)
{
    free(sa->json);
    sa->json = NULL;
}

void qg_strategy_describe(const qg_strategy *s, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "%s", s->name);
    for (size_t i = 0; i < s->n_params && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s=%g", i ? ", " : " (", s->params[i].name,
                              s->params[i].value);
    if (s->n_params && o < cap) snprintf(out + o, cap - o, ")");
}

int qg_strategy_data_load(const char *cmd, const qg_strategy *s, const qg_data_args *d,
                          qg_bars *bars, qg_bars *view)
{
    qg_data_args args = *d;
    char tf[16];
    if (!args.timeframe && s->timeframe_ms) {
        qg_timeframe_format(s->timeframe_ms, tf, sizeof tf);
        args.timeframe = tf;
    }
    return qg_data_load(cmd, &args, bars, view);
}

void qg_progress_attach(qg_progress *p, const char *label, bool quiet, qg_bt_config *cfg)
{
    qg_progress_init(p, label, quiet);
    cfg->progress = qg_progress_update;
    cfg->progress_ud = p;
}

qg_bars qg_warm_view(const qg_bars *all, const qg_bars *view, qg_bt_config *cfg)
{
    size_t offset = view->n ? (size_t)(view->ts - all->ts) : 0;
    cfg->start_bar = offset;
    return qg_bars_view(all, 0, offset + view->n);
}

const char *qg_direction_name(qg_direction d)
{
    return d == QG_DIR_BOTH ? "both" : d == QG_DIR_SHORT ? "short" : "long";
}

void qg_json_add_number(cJSON *obj, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

int qg_json_print(const char *cmd, cJSON *root)
{
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return qg_cmd_fail(cmd, "out of memory printing JSON");
    puts(text);
    free(text);
    return 0;
}

const char *const QG_STRATEGY_OPTIONS_HELP =
    "  --strategy NAME|FILE  built-in (sma_cross, ema_cross, rsi_reversion,\n"
    "                        bollinger_breakout, donchian_breakout) or a spec .json\n"
    "  --param NAME=VALUE    override a strategy parameter (repeatable)\n"
    "  --cash N              starting cash (default 10000)\n"
    "  --fee-bps N           fee per side in basis points (default 0)\n"
    "  --slippage-bps N      slippage per side in basis points (default 0)\n"
    "  --size-pct N          size every entry at N% of equity (overrides the spec)\n"
    "  --direction D         long, short or both (default: the spec's)\n"
    "  --data FILE           bars: CSV or JSON [[ts,o,h,l,c,v],...]\n"
    "  --timeframe TF        resample first: 5m, 15m, 1h, 4h, 1d, ...\n"
    "  --from DATE --to DATE only bars with from <= time < to\n"
    "  --lenient             skip bad rows (and report them) instead of failing\n"
    "  --quiet               no progress bar\n";
