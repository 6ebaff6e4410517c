/*
 * result_json.c - a backtest's metrics and trades as JSON, the one shape
 * both `quantgate backtest --json` and the HTTP API (GET /api/backtests/{id})
 * answer with, so the two cannot drift apart.
 *
 * JSON has no NaN or infinity: such metrics (a Sharpe ratio of a flat curve,
 * the profit factor without a loss) become null.
 */
#include <quantgate/backtest.h>
#include <quantgate/time.h>

#include <cjson/cJSON.h>

#include <math.h>

static void add_number(cJSON *obj, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

cJSON *qg_bt_metrics_json(const qg_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    char from[40], to[40];
    qg_time_format_iso(m->start_ts, from, sizeof from);
    qg_time_format_iso(m->end_ts, to, sizeof to);
    cJSON_AddNumberToObject(o, "bars", (double)m->bars);
    cJSON_AddStringToObject(o, "start", from);
    cJSON_AddStringToObject(o, "end", to);
    const struct {
        const char *k;
        double v;
    } f[] = {{"start_equity", m->start_equity},
             {"final_equity", m->final_equity},
             {"total_return_pct", m->total_return},
             {"buy_hold_return_pct", m->buy_hold_return},
             {"cagr_pct", m->cagr},
             {"volatility_pct", m->volatility},
             {"sharpe", m->sharpe},
             {"sortino", m->sortino},
             {"calmar", m->calmar},
             {"max_drawdown_pct", m->max_drawdown},
             {"max_drawdown_days", (double)m->max_drawdown_ms / QG_MS_PER_DAY},
             {"trades", (double)m->trades},
             {"wins", (double)m->wins},
             {"losses", (double)m->losses},
             {"win_rate_pct", m->win_rate},
             {"profit_factor", m->profit_factor},
             {"expectancy", m->expectancy},
             {"avg_win", m->avg_win},
             {"avg_loss", m->avg_loss},
             {"best_trade", m->best_trade},
             {"worst_trade", m->worst_trade},
             {"exposure_pct", m->exposure},
             {"sqn", m->sqn},
             {"fees", m->fees},
             {"periods_per_year", m->periods_per_year}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) add_number(o, f[i].k, f[i].v);
    cJSON_AddStringToObject(o, "returns_basis", m->daily_returns ? "daily" : "bar");
    return o;
}

cJSON *qg_bt_trades_json(const qg_bt_result *r)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < r->n_trades; i++) {
        const qg_trade *t = &r->trades[i];
        cJSON *o = cJSON_CreateObject();
        char a[40], b[40];
        qg_time_format_iso(t->entry_ts, a, sizeof a);
        qg_time_format_iso(t->exit_ts, b, sizeof b);
        cJSON_AddStringToObject(o, "side", t->side > 0 ? "long" : "short");
        cJSON_AddStringToObject(o, "entry_time", a);
        cJSON_AddNumberToObject(o, "entry_price", t->entry_price);
        cJSON_AddStringToObject(o, "exit_time", b);
        cJSON_AddNumberToObject(o, "exit_price", t->exit_price);
        cJSON_AddNumberToObject(o, "quantity", t->qty);
        cJSON_AddNumberToObject(o, "fees", t->fees);
        cJSON_AddNumberToObject(o, "pnl", t->pnl);
        cJSON_AddNumberToObject(o, "return_pct", t->return_pct);
        cJSON_AddStringToObject(o, "exit_reason", qg_exit_reason_name(t->reason));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}
