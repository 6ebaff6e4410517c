/*
 * fuzz_bars.c - libFuzzer target for the bar loaders (CSV and JSON).
 *
 * The first input byte picks the options (lenient or not, a chunk size);
 * the rest is the file. Each input is loaded twice, all at once through
 * qg_bars_load_mem and in small chunks through the push parser, and the two
 * must agree exactly (status, message, report, bars): chunk boundaries may
 * fall anywhere and must not change the result. Loaded bars must satisfy
 * the loader's guarantees (increasing time, low <= open/close <= high, no
 * negatives, finite values). Build and run: see fuzz/README.md.
 */
#include <quantgate/bars.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_bars(const qg_bars *b)
{
    for (size_t i = 0; i < b->n; i++) {
        double o = b->open[i], h = b->high[i], l = b->low[i], c = b->close[i], v = b->volume[i];
        if (!isfinite(o) || !isfinite(h) || !isfinite(l) || !isfinite(c) || !isfinite(v)) abort();
        if (l < 0 || v < 0 || l > h || o < l || o > h || c < l || c > h) abort();
        if (i && b->ts[i] <= b->ts[i - 1]) abort();
    }
}

static qg_status chunked(const char *d, size_t n, size_t chunk, const qg_load_opts *o, qg_bars *b,
                         qg_load_report *rep, qg_error *err)
{
    qg_bars_parser *p = qg_bars_parser_new("fuzz", QG_FORMAT_AUTO, o, b);
    if (!p) abort();
    qg_status rc = QG_OK;
    for (size_t off = 0; off < n && !rc; off += chunk)
        rc = qg_bars_parser_feed(p, d + off, n - off < chunk ? n - off : chunk, err);
    if (!rc) rc = qg_bars_parser_finish(p, rep, err);
    qg_bars_parser_free(p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    qg_load_opts o = {.lenient = data[0] & 1};
    size_t chunk = (size_t)(data[0] >> 1) % 17 + 1;
    const char *d = (const char *)data + 1;
    size_t n = size - 1;

    qg_bars a = {0}, b = {0};
    qg_load_report ra = {0}, rb = {0};
    qg_error ea = {0}, eb = {0};
    qg_status rca = qg_bars_load_mem("fuzz", d, n, &o, &a, &ra, &ea);
    qg_status rcb = chunked(d, n, chunk, &o, &b, &rb, &eb);
    if (rca != rcb || strcmp(ea.msg, eb.msg) != 0) abort();
    if (!rca) {
        if (a.n != b.n || ra.rows != rb.rows || ra.skipped != rb.skipped) abort();
        for (size_t i = 0; i < ra.n_reported; i++)
            if (strcmp(ra.reported[i], rb.reported[i]) != 0) abort();
        for (size_t i = 0; i < a.n; i++) {
            qg_bar x = qg_bars_get(&a, i), y = qg_bars_get(&b, i);
            if (memcmp(&x, &y, sizeof x) != 0) abort();
        }
        check_bars(&a);
    }
    qg_bars_free(&a);
    qg_bars_free(&b);
    return 0;
}
