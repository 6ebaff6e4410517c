/*
 * cmd_gen_data.c - `quantgate gen-data`: synthetic OHLCV bars as CSV or JSON.
 *
 * Streams: bars come from qg_gen_next in batches of BATCH into a small
 * reused qg_bars, are formatted into a 1 MiB buffer and written out, so
 * memory stays constant whatever --bars is (10M bars would be 480 MB held).
 * stdout carries only data; messages and the progress bar go to stderr.
 */
#include "cmd/cmd.h"

#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OUT_BUF (1u << 20)
#define BATCH   8192

typedef struct {
    size_t bars;
    qg_gen_opts gen;
    const char *out; /* NULL or "-": stdout */
    bool json, quiet;
    qg_ts_format tsf;
    int decimals;
} gen_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: quantgate gen-data --bars N [options]\n\n"
            "Writes realistic synthetic OHLCV bars (volatility regimes, intraday seasonality).\n\n"
            "  --bars N            how many bars (required)\n"
            "  --timeframe TF      bar width: 1m, 5m, 1h, 4h, 1d, 1w... (default 1m)\n"
            "  --seed S            same seed, same data (default 1)\n"
            "  --start DATE        first bar's time, ISO-8601 or epoch (default 2024-01-01)\n"
            "  --price P           start price (default 100)\n"
            "  --tick T            price increment (default 0.01)\n"
            "  --out FILE          output file; - or none: stdout\n"
            "  --format csv|json   (default csv)\n"
            "  --ts iso|s|ms       timestamp form (default iso)\n"
            "  --quiet             no progress bar and no summary line\n");
}

/* Digits needed to print multiples of tick exactly (0.01 -> 2, 0.5 -> 1). */
static int tick_decimals(double tick)
{
    int d = 0;
    for (double t = tick; d < 9 && fabs(t - nearbyint(t)) > 1e-9 * fmax(1, t); t *= 10) d++;
    return d;
}

/* Option values: each error names the option and exits 2. */
static bool parse_choice(const qg_args *a, const char *name, const char *v, const char *x,
                         const char *y, const char *z, int *out)
{
    const char *c[] = {x, y, z};
    for (int k = 0; k < 3; k++)
        if (c[k] && strcmp(v, c[k]) == 0) return *out = k, true;
    fprintf(stderr, "quantgate %s: %s: '%s' is not one of %s, %s%s%s\n", a->cmd, name, v, x, y,
            z ? ", " : "", z ? z : "");
    exit(2);
}

static int parse_args(int argc, char **argv, gen_args *g)
{
    const char *bars = NULL, *tf = "1m", *seed = "1", *start = "2024-01-01", *price = "100",
               *tick = "0.01", *format = "csv", *ts = "iso";
    qg_args a = qg_args_begin(argc, argv);
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help") || qg_args_flag(&a, "-h")) return usage(stdout), -1;
        if (qg_args_value(&a, "--bars", &bars) || qg_args_value(&a, "--timeframe", &tf) ||
            qg_args_value(&a, "--seed", &seed) || qg_args_value(&a, "--start", &start) ||
            qg_args_value(&a, "--price", &price) || qg_args_value(&a, "--tick", &tick) ||
            qg_args_value(&a, "--out", &g->out) || qg_args_value(&a, "--format", &format) ||
            qg_args_value(&a, "--ts", &ts))
            continue;
        if (qg_args_flag(&a, "--quiet")) {
            g->quiet = true;
            continue;
        }
        return qg_args_unknown(&a);
    }
    qg_error err = {0};
    if (!bars) {
        fprintf(stderr, "quantgate %s: --bars N is required\n", a.cmd);
        return 2;
    }
    g->bars = (size_t)qg_args_int(&a, "--bars", bars, 1, 10000000000LL);
    g->gen.seed = (uint64_t)qg_args_int(&a, "--seed", seed, 0, INT64_MAX);
    g->gen.start_price = qg_args_double(&a, "--price", price, 1e-6, 1e12);
    g->gen.tick = qg_args_double(&a, "--tick", tick, 1e-9, g->gen.start_price);
    if (qg_timeframe_parse(tf, &g->gen.tf_ms, &err)) {
        fprintf(stderr, "quantgate %s: --timeframe: %s\n", a.cmd, err.msg);
        return 2;
    }
    if (qg_time_parse_arg(start, &g->gen.start_ms, &err)) {
        fprintf(stderr, "quantgate %s: --start: %s\n", a.cmd, err.msg);
        return 2;
    }
    int fmt, tsk;
    parse_choice(&a, "--format", format, "csv", "json", NULL, &fmt);
    parse_choice(&a, "--ts", ts, "iso", "s", "ms", &tsk);
    g->json = fmt == 1;
    g->tsf = tsk == 0 ? QG_TS_ISO : tsk == 1 ? QG_TS_EPOCH_S : QG_TS_EPOCH_MS;
    g->decimals = tick_decimals(g->gen.tick);
    g->gen.bars = g->bars;
    return 0;
}

/* CSV rows "t,o,h,l,c,v\n" become JSON rows "[t,o,h,l,c,v]" (t quoted when
 * ISO), separated by ",\n"; dst has room for csv_len * 2 + 4 bytes. */
static size_t csv_to_json(const char *csv, size_t csv_len, char *dst, bool quote_ts, bool *first)
{
    size_t n = 0;
    for (const char *p = csv, *end = csv + csv_len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *comma = memchr(p, ',', (size_t)(nl - p));
        if (!*first) dst[n++] = ',', dst[n++] = '\n';
        *first = false;
        dst[n++] = '[';
        if (quote_ts) dst[n++] = '"';
        memcpy(dst + n, p, (size_t)(comma - p));
        n += (size_t)(comma - p);
        if (quote_ts) dst[n++] = '"';
        memcpy(dst + n, comma, (size_t)(nl - comma));
        n += (size_t)(nl - comma);
        dst[n++] = ']';
        p = nl + 1;
    }
    return n;
}

typedef struct {
    FILE *f;
    const char *name;
    char *buf, *json;
    bool first;
} writer;

static bool put(writer *w, const char *p, size_t n)
{
    return fwrite(p, 1, n, w->f) == n;
}

/* Formats and writes bars b; false on a write error (errno set). */
static bool write_batch(writer *w, const gen_args *g, const qg_bars *b)
{
    size_t pos = 0;
    while (pos < b->n) {
        size_t cap = g->json ? OUT_BUF / 2 - 8 : OUT_BUF;
        size_t len = qg_bars_format_csv(b, &pos, w->buf, cap, g->tsf, g->decimals);
        if (g->json) {
            len = csv_to_json(w->buf, len, w->json, g->tsf == QG_TS_ISO, &w->first);
            if (!put(w, w->json, len)) return false;
        } else if (!put(w, w->buf, len)) {
            return false;
        }
    }
    return true;
}

static int generate(const char *cmd, const gen_args *g, writer *w)
{
    qg_error err = {0};
    qg_gen gen;
    qg_bars batch = {0};
    qg_progress prog;
    if (qg_gen_init(&gen, &g->gen, &err)) return qg_cmd_fail(cmd, "%s", err.msg);
    if (qg_bars_reserve(&batch, BATCH)) return qg_cmd_fail(cmd, "out of memory");
    qg_progress_init(&prog, "generating", g->quiet);
    bool ok = g->json ? put(w, "[\n", 2) : put(w, QG_BARS_CSV_HEADER, strlen(QG_BARS_CSV_HEADER));
    for (size_t done = 0; ok && done < g->bars;) {
        qg_bar bar;
        batch.n = 0;
        while (batch.n < BATCH && done + batch.n < g->bars) {
            qg_gen_next(&gen, &bar);
            qg_bars_push(&batch, &bar); /* within the reserved capacity: cannot fail */
        }
        ok = write_batch(w, g, &batch);
        done += batch.n;
        qg_progress_update(&prog, done, g->bars);
    }
    if (ok && g->json) ok = put(w, "\n]\n", 3);
    qg_progress_done(&prog);
    qg_bars_free(&batch);
    if (!ok) return qg_cmd_fail(cmd, "%s: write failed: %s", w->name, strerror(errno));
    return 0;
}

int qg_cmd_gen_data(int argc, char **argv)
{
    gen_args g = {0};
    int rc = parse_args(argc, argv, &g);
    if (rc) return rc < 0 ? 0 : rc;
    bool to_stdout = !g.out || strcmp(g.out, "-") == 0;
    writer w = {.name = to_stdout ? "stdout" : g.out, .first = true};
    w.f = to_stdout ? stdout : fopen(g.out, "wb");
    if (!w.f) return qg_cmd_fail(argv[0], "--out: %s: %s", g.out, strerror(errno));
    w.buf = qg_xmalloc(OUT_BUF);
    w.json = g.json ? qg_xmalloc(OUT_BUF + 64) : NULL;
    rc = generate(argv[0], &g, &w);
    if (fflush(w.f) != 0 && !rc)
        rc = qg_cmd_fail(argv[0], "%s: write failed: %s", w.name, strerror(errno));
    if (!to_stdout && fclose(w.f) != 0 && !rc)
        rc = qg_cmd_fail(argv[0], "%s: write failed: %s", w.name, strerror(errno));
    free(w.buf);
    free(w.json);
    if (!rc && !g.quiet) fprintf(stderr, "wrote %zu bars to %s\n", g.bars, w.name);
    return rc;
}
