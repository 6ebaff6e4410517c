/*
 * fuzz_spec.c - libFuzzer target for the strategy spec parser, and for the
 * backtester on whatever spec parses (over a small fixed series), so a
 * spec that parses can never crash the engine.
 */
#include <quantgate/backtest.h>

#include <stddef.h>
#include <stdint.h>

static qg_bars fixed_bars(void)
{
    static qg_bars b;
    if (b.n) return b;
    double p = 100;
    uint64_t x = 42;
    for (int i = 0; i < 300; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(x >> 11) / 9007199254740992.0 - 0.5;
        double c = p * (1 + u * 0.02);
        double hi = (p > c ? p : c) * 1.001, lo = (p < c ? p : c) * 0.999;
        qg_bar bar = {(int64_t)i * 60000, p, hi, lo, c, 10};
        qg_bars_push(&b, &bar);
        p = c;
    }
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qg_strategy s;
    qg_error err = {0};
    if (qg_strategy_parse((const char *)data, size, NULL, 0, &s, &err)) return 0;
    qg_bars b = fixed_bars();
    qg_bt_config cfg = qg_bt_config_default();
    cfg.direction = QG_DIR_BOTH;
    cfg.keep_decisions = true;
    qg_bt_result r;
    if (qg_backtest_run(&s, &b, &cfg, &r, &err) == QG_OK) qg_bt_result_free(&r);
    return 0;
}
