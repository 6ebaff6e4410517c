/*
 * fuzz_text.c - libFuzzer target for the small text parsers a user types:
 * indicator specs ("macd:12,26,9@hl2"), dates and timeframes (--from,
 * --timeframe), grid axes (--grid fast=5:50:5) and .env files. The first
 * byte picks the parser; the rest is the text. Beyond not crashing, every
 * parser must either succeed or leave a non-empty message.
 */
#include <quantgate/backtest.h>
#include <quantgate/config.h>
#include <quantgate/indicators.h>
#include <quantgate/time.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void require_message(qg_status rc, const qg_error *err)
{
    if (rc && !err->msg[0]) abort();
}

static void fuzz_indicator(const char *text)
{
    qg_ind_spec s;
    qg_error err = {0};
    qg_status rc = qg_ind_parse(text, &s, &err);
    require_message(rc, &err);
    if (rc) return;
    /* A spec that parses must name its columns and run over a few bars. */
    char name[128];
    for (int k = 0; k < qg_ind_output_count(&s); k++) qg_ind_column_name(&s, k, name, sizeof name);
    if (s.params[0] > 1000 || s.params[1] > 1000 || s.params[2] > 1000) return;
    qg_bars b = {0};
    for (int i = 0; i < 40; i++) {
        qg_bar bar = {i * 60000LL, 100 + i % 7, 101 + i % 7, 99 + i % 5, 100 + i % 3, 10};
        qg_bars_push(&b, &bar);
    }
    double out[QG_IND_MAX_OUTPUTS][40];
    double *outs[QG_IND_MAX_OUTPUTS] = {out[0], out[1], out[2]};
    qg_ind_compute(&s, &b, outs);
    qg_bars_free(&b);
}

static void fuzz_env(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/qg_fuzz_envXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return;
    if (write(fd, data, size) != (ssize_t)size) size = 0;
    close(fd);
    qg_error err = {0};
    qg_status rc = qg_config_load_dotenv(path, &err);
    require_message(rc, &err);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 512) return 0;
    char text[512];
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    qg_error err = {0};
    int64_t ms;
    qg_grid_axis axis;
    switch (data[0] % 5) {
    case 0:
        fuzz_indicator(text);
        break;
    case 1:
        require_message(qg_time_parse_arg(text, &ms, &err), &err);
        break;
    case 2:
        require_message(qg_timeframe_parse(text, &ms, &err), &err);
        break;
    case 3:
        require_message(qg_grid_axis_parse(text, &axis, &err), &err);
        break;
    case 4:
        fuzz_env(data + 1, size - 1);
        break;
    }
    return 0;
}
