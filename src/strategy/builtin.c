/*
 * builtin.c - the strategies shipped with the binary. Each is an ordinary
 * spec (docs/strategy-spec.md), so `--strategy sma_cross` and a JSON file
 * with the same text behave identically; users copy these as templates.
 * Every built-in defines both sides, so `--direction both` works.
 */
#include <quantgate/strategy.h>

#include <string.h>

static const struct {
    const char *name;
    const char *json;
} builtins[] = {
    {"sma_cross",
     "{\"name\": \"sma_cross\",\n"
     " \"description\": \"Long when the fast SMA crosses above the slow SMA, out (or short) when "
     "it crosses back below.\",\n"
     " \"params\": {\"fast\": 10, \"slow\": 30},\n"
     " \"constraints\": [\"fast < slow\"],\n"
     " \"indicators\": {\"fast\": \"sma:$fast\", \"slow\": \"sma:$slow\"},\n"
     " \"entry\": {\"long\": {\"cross_above\": [\"fast\", \"slow\"]},\n"
     "           \"short\": {\"cross_below\": [\"fast\", \"slow\"]}},\n"
     " \"exit\": {\"long\": {\"cross_below\": [\"fast\", \"slow\"]},\n"
     "          \"short\": {\"cross_above\": [\"fast\", \"slow\"]}},\n"
     " \"direction\": \"long\",\n"
     " \"sizing\": {\"percent_equity\": 100}}\n"},
    {"ema_cross",
     "{\"name\": \"ema_cross\",\n"
     " \"description\": \"Long when the fast EMA crosses above the slow EMA, out (or short) when "
     "it crosses back below.\",\n"
     " \"params\": {\"fast\": 12, \"slow\": 26},\n"
     " \"constraints\": [\"fast < slow\"],\n"
     " \"indicators\": {\"fast\": \"ema:$fast\", \"slow\": \"ema:$slow\"},\n"
     " \"entry\": {\"long\": {\"cross_above\": [\"fast\", \"slow\"]},\n"
     "           \"short\": {\"cross_below\": [\"fast\", \"slow\"]}},\n"
     " \"exit\": {\"long\": {\"cross_below\": [\"fast\", \"slow\"]},\n"
     "          \"short\": {\"cross_above\": [\"fast\", \"slow\"]}},\n"
     " \"direction\": \"long\",\n"
     " \"sizing\": {\"percent_equity\": 100}}\n"},
    {"rsi_reversion",
     "{\"name\": \"rsi_reversion\",\n"
     " \"description\": \"Mean reversion: long when RSI crosses back above the lower level from "
     "oversold, out when it reaches the upper level; shorts mirror it.\",\n"
     " \"params\": {\"period\": 14, \"lower\": 30, \"upper\": 70},\n"
     " \"constraints\": [\"lower < upper\"],\n"
     " \"indicators\": {\"rsi\": \"rsi:$period\"},\n"
     " \"entry\": {\"long\": {\"cross_above\": [\"rsi\", \"$lower\"]},\n"
     "           \"short\": {\"cross_below\": [\"rsi\", \"$upper\"]}},\n"
     " \"exit\": {\"long\": {\"gte\": [\"rsi\", \"$upper\"]},\n"
     "          \"short\": {\"lte\": [\"rsi\", \"$lower\"]}},\n"
     " \"direction\": \"long\",\n"
     " \"sizing\": {\"percent_equity\": 100}}\n"},
    {"bollinger_breakout",
     "{\"name\": \"bollinger_breakout\",\n"
     " \"description\": \"Long when the close breaks above the upper Bollinger band, out when it "
     "falls back below the middle band; shorts mirror it.\",\n"
     " \"params\": {\"period\": 20, \"k\": 2},\n"
     " \"indicators\": {\"bb\": \"bbands:$period,$k\"},\n"
     " \"entry\": {\"long\": {\"cross_above\": [\"close\", \"bb.upper\"]},\n"
     "           \"short\": {\"cross_below\": [\"close\", \"bb.lower\"]}},\n"
     " \"exit\": {\"long\": {\"cross_below\": [\"close\", \"bb.middle\"]},\n"
     "          \"short\": {\"cross_above\": [\"close\", \"bb.middle\"]}},\n"
     " \"direction\": \"long\",\n"
     " \"sizing\": {\"percent_equity\": 100}}\n"},
    {"donchian_breakout",
     "{\"name\": \"donchian_breakout\",\n"
     " \"description\": \"Turtle-style breakout: long when the close exceeds the highest high of "
     "the previous `period` bars, out when it falls below the lowest low of the previous "
     "`exit_period` bars; shorts mirror it. Stop at 2 ATR.\",\n"
     " \"params\": {\"period\": 20, \"exit_period\": 10, \"atr_mult\": 2},\n"
     " \"indicators\": {\"entry_ch\": \"donchian:$period\", \"exit_ch\": "
     "\"donchian:$exit_period\"},\n"
     " \"entry\": {\"long\": {\"gt\": [\"close\", \"entry_ch.upper[1]\"]},\n"
     "           \"short\": {\"lt\": [\"close\", \"entry_ch.lower[1]\"]}},\n"
     " \"exit\": {\"long\": {\"lt\": [\"close\", \"exit_ch.lower[1]\"]},\n"
     "          \"short\": {\"gt\": [\"close\", \"exit_ch.upper[1]\"]}},\n"
     " \"stop_loss\": {\"atr\": \"$atr_mult\", \"period\": 20},\n"
     " \"direction\": \"long\",\n"
     " \"sizing\": {\"percent_equity\": 100}}\n"},
};

static const char *const names[] = {"sma_cross",          "ema_cross",         "rsi_reversion",
                                    "bollinger_breakout", "donchian_breakout", NULL};

const char *qg_strategy_builtin(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(builtins[i].name, name) == 0) return builtins[i].json;
    return NULL;
}

const char *const *qg_strategy_builtin_names(void)
{
    return names;
}
