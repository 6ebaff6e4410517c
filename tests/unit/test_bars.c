/*
 * test_bars.c - bar loading (CSV, JSON), validation messages, lenient mode,
 * chunking, resampling, lookups, the generator and CSV writing.
 */
#include <criterion/criterion.h>

#include <quantgate/bars.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0   1704067200000LL /* 2024-01-01T00:00:00Z */
#define MIN  QG_MS_PER_MIN
#define HOUR QG_MS_PER_HOUR

/* Loads text with `name` for messages; returns the status. */
static qg_status load(const char *name, const char *text, bool lenient, qg_bars *b,
                      qg_load_report *rep, qg_error *err)
{
    qg_load_opts o = {.lenient = lenient};
    memset(b, 0, sizeof *b);
    return qg_bars_load_mem(name, text, strlen(text), &o, b, rep, err);
}

/* Loads text that must fail; returns the message. */
static const char *load_err(const char *name, const char *text)
{
    static qg_error err;
    qg_bars b;
    qg_load_report rep;
    memset(&err, 0, sizeof err);
    cr_assert_neq(load(name, text, false, &b, &rep, &err), QG_OK, "expected an error for %s", text);
    qg_bars_free(&b);
    return err.msg;
}

/* Feeds text in chunks of `chunk` bytes (0: all at once) through a parser. */
static qg_status feed_chunks(const char *name, const char *text, size_t n, size_t chunk,
                             bool lenient, qg_bars *b, qg_load_report *rep, qg_error *err)
{
    qg_load_opts o = {.lenient = lenient};
    memset(b, 0, sizeof *b);
    qg_bars_parser *p = qg_bars_parser_new(name, QG_FORMAT_AUTO, &o, b);
    cr_assert_not_null(p);
    qg_status rc = QG_OK;
    if (!chunk) chunk = n ? n : 1;
    for (size_t off = 0; off < n && !rc; off += chunk)
        rc = qg_bars_parser_feed(p, text + off, n - off < chunk ? n - off : chunk, err);
    if (!rc) rc = qg_bars_parser_finish(p, rep, err);
    qg_bars_parser_free(p);
    return rc;
}

static char *read_file(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", QG_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return s;
}

static void assert_same_bars(const qg_bars *a, const qg_bars *b)
{
    cr_assert_eq(a->n, b->n, "bar counts differ: %zu vs %zu", a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        qg_bar x = qg_bars_get(a, i), y = qg_bars_get(b, i);
        cr_assert(x.ts == y.ts && x.open == y.open && x.high == y.high && x.low == y.low &&
                      x.close == y.close && x.volume == y.volume,
                  "bar %zu differs", i);
    }
}

static void assert_bar(const qg_bars *b, size_t i, int64_t ts, double o, double h, double l,
                       double c, double v)
{
    cr_assert_lt(i, b->n);
    cr_assert_eq(b->ts[i], ts, "bar %zu ts %lld != %lld", i, (long long)b->ts[i], (long long)ts);
    cr_assert_float_eq(b->open[i], o, 1e-12, "bar %zu open", i);
    cr_assert_float_eq(b->high[i], h, 1e-12, "bar %zu high", i);
    cr_assert_float_eq(b->low[i], l, 1e-12, "bar %zu low", i);
    cr_assert_float_eq(b->close[i], c, 1e-12, "bar %zu close", i);
    cr_assert_float_eq(b->volume[i], v, 1e-9, "bar %zu volume", i);
}

/* ---- CSV: timestamps ---- */

Test(bars, csv_iso_timestamp_forms)
{
    qg_bars b;
    qg_load_report rep;
    qg_error err = {0};
    const char *csv = "timestamp,open,high,low,close,volume\n"
                      "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n"
                      "2024-01-01 00:01:00,1,2,0.5,1.5,10\n"
                      "2024-01-01T02:02:00+02:00,1,2,0.5,1.5,10\n"
                      "2024-01-01T00:03:00.250Z,1,2,0.5,1.5,10\n"
                      "2024-01-01t00:04:00z,1,2,0.5,1.5,10\n"
                      "2024-01-02,1,2,0.5,1.5,10\n";
    cr_assert_eq(load("data.csv", csv, false, &b, &rep, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(rep.rows, 6);
    int64_t want[] = {T0,           T0 + MIN,          T0 + 2 * MIN, T0 + 3 * MIN + 250,
                      T0 + 4 * MIN, T0 + QG_MS_PER_DAY};
    for (size_t i = 0; i < 6; i++) cr_assert_eq(b.ts[i], want[i], "row %zu", i);
    assert_bar(&b, 0, T0, 1, 2, 0.5, 1.5, 10);
    qg_bars_free(&b);
}

Test(bars, csv_epoch_seconds_milliseconds_and_fractions)
{
    qg_bars b;
    qg_load_report rep;
    qg_error err = {0};
    cr_assert_eq(load("s.csv", "ts,o,h,l,c\n1704067200,1,2,0.5,1.5\n1704067260,1,2,0.5,1.5\n",
                      false, &b, &rep, &err),
                 QG_OK, "%s", err.msg);
    cr_assert_eq(b.ts[0], T0);
    cr_assert_eq(b.ts[1], T0 + MIN);
    cr_assert_eq(b.volume[0], 0); /* volume is optional */
    cr_assert_eq(b.timeframe_ms, MIN);
    qg_bars_free(&b);
    cr_assert_eq(load("ms.csv",
                      "ts,o,h,l,c\n1704067200000,1,2,0.5,1.5\n1704067200500,1,2,0.5,1.5\n", false,
                      &b, &rep, &err),
                 QG_OK, "%s", err.msg);
    cr_assert_eq(b.ts[1], T0 + 500);
    qg_bars_free(&b);
    cr_assert_eq(load("f.csv", "ts,o,h,l,c\n1704067200.5,1,2,0.5,1.5\n1704067201.25,1,2,0.5,1.5\n",
                      false, &b, &rep, &err),
                 QG_OK, "%s", err.msg);
    cr_assert_eq(b.ts[0], T0 + 500);
    cr_assert_eq(b.ts[1], T0 + 1250);
    qg_bars_free(&b);
}

Test(bars, csv_timestamp_kind_is_fixed_by_the_first_row)
{
    cr_assert_str_eq(load_err("d.csv", "ts,o,h,l,c\n1704067200,1,2,0.5,1.5\n"
                                       "1704067260000,1,2,0.5,1.5\n"),
                     "d.csv:3:1: timestamp '1704067260000' is epoch milliseconds but the first "
                     "row used epoch seconds");
    cr_assert_str_eq(load_err("d.csv", "o,h,l,c,date\n1,2,0.5,1.5,2024-01-01\n"
                                       "1,2,0.5,1.5,1704067260\n"),
                     "d.csv:3:5: timestamp '1704067260' is epoch seconds but the first row used "
                     "ISO-8601");
    cr_assert_str_eq(load_err("d.csv", "ts,o,h,l,c\n2024-13-01,1,2,0.5,1.5\n"),
                     "d.csv:2:1: timestamp '2024-13-01': month out of range");
    cr_assert_str_eq(load_err("d.csv", "ts,o,h,l,c\nyesterday,1,2,0.5,1.5\n"),
                     "d.csv:2:1: timestamp 'yesterday' is neither an ISO-8601 date nor epoch "
                     "seconds or milliseconds");
    cr_assert_str_eq(load_err("d.csv", "ts,o,h,l,c\n,1,2,0.5,1.5\n"),
                     "d.csv:2:1: missing timestamp");
}

/* ---- CSV: headers ---- */

Test(bars, csv_header_case_order_aliases_and_extra_columns)
{
    qg_bars b;
    qg_load_report rep;
    qg_error err = {0};
    const char *csv = "Symbol, VOLUME ,Close,Low,High,Open,DateTime,extra\n"
                      "X,5,1.5,0.5,2,1,2024-01-01T00:00:00Z,zz\n";
    cr_assert_eq(load("h.csv", csv, false, &b, &rep, &err), QG_OK, "%s", err.msg);
    assert_bar(&b, 0, T0, 1, 2, 0.5, 1.5, 5);
    qg_bars_free(&b);
    cr_assert_eq(
        load("h.csv", "open_time,O,H,L,C,V\n1704067200000,1,2,0.5,1.5,5\n", false, &b, &rep, &err),
        QG_OK, "%s", err.msg);
    assert_bar(&b, 0, T0, 1, 2, 0.5, 1.5, 5);
    qg_bars_free(&b);
}

Test(bars, csv_split_date_time_semicolon_bom_crlf_quotes)
{
    size_t n;
    char *text = read_file("bars_semicolon_split.csv", &n);
    qg_bars b = {0};
    qg_load_report rep;
    qg_error err = {0};
    cr_assert_eq(qg_bars_load_mem("s.csv", text, n, NULL, &b, &rep, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(rep.rows, 2);
    int64_t t = qg_days_from_civil(2024, 1, 2) * QG_MS_PER_DAY + 13 * HOUR + 45 * MIN;
    assert_bar(&b, 0, t, 10.5, 11, 10, 10.5, 7);
    assert_bar(&b, 1, t + MIN, 10.5, 10.75, 10.25, 10.25, 3);
    qg_bars_free(&b);
    free(text);

    const char *quoted = "\"timestamp\",\"open\",\"high\",\"low\",\"close\"\r\n"
                         "\"2024-01-01 00:00:00\",\"1\", \"2\" ,\"0.5\",\"1.5\"\r\n"
                         "\r\n"
                         "  \r\n";
    cr_assert_eq(load("q.csv", quoted, false, &b, &rep, &err), QG_OK, "%s", err.msg);
    assert_bar(&b, 0, T0, 1, 2, 0.5, 1.5, 0);
    qg_bars_free(&b);
}

Test(bars, csv_tab_delimited_epoch_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bars_tab_epoch.csv", QG_TEST_DATA);
    qg_bars b = {0};
    qg_load_report rep;
    qg_error err = {0};
    cr_assert_eq(qg_bars_load_file(path, NULL, &b, &rep, &err), QG_OK, "%s", err.msg);
    assert_bar(&b, 0, T0, 1, 2, 0.5, 1.5, 0);
    assert_bar(&b, 1, T0 + MIN, 1.5, 2, 1, 1, 0);
    qg_bars_free(&b);
}

Test(bars, csv_missing_columns_are_named)
{
    cr_assert_str_eq(load_err("data.csv", "timestamp,open,high,low\n2024-01-01,1,2,0.5\n"),
                     "data.csv:1: missing column 'close' (header has: timestamp, open, high, low)");
    cr_assert_str_eq(load_err("data.csv", "\n\nwhen,open,high,low,close\n"),
                     "data.csv:3: missing column 'timestamp' (or time, date, datetime, ts, "
                     "open_time) (header has: when, open, high, low, close)");
}

/* ---- CSV: row errors ---- */

#define HDR  "timestamp,open,high,low,close,volume\n"
#define ROW1 "2024-01-01T00:00:00Z,100,101,99,100,5\n"

Test(bars, csv_row_error_messages)
{
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,12.3x,99,100,5\n"),
                     "data.csv:3:3: expected a number for 'high', found '12.3x'");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,NaN,101,99,100,5\n"),
                     "data.csv:3:2: expected a finite number for 'open', found 'NaN'");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,101,99,-inf,5\n"),
                     "data.csv:3:5: expected a finite number for 'close', found '-inf'");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,1e999,99,100,5\n"),
                     "data.csv:3:3: '1e999' is out of range for 'high'");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,101,,100,5\n"),
                     "data.csv:3:4: missing value for 'low'");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,-1,101,-2,100,5\n"),
                     "data.csv:3:2: open (-1) is negative");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,101,99,100,-3\n"),
                     "data.csv:3:6: volume (-3) is negative");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,99.5,100.2,100,1\n"),
                     "data.csv:3:3: high (99.5) is below low (100.2)");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,98,101,99,100,1\n"),
                     "data.csv:3:2: open (98) is outside [low, high] = [99, 101]");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,101,99,101.5,1\n"),
                     "data.csv:3:5: close (101.5) is outside [low, high] = [99, 101]");
    cr_assert_str_eq(load_err("data.csv", HDR "2024-01-01T00:06:00Z,100,101,99,100,5\n"
                                              "2024-01-01T00:05:00Z,100,101,99,100,5\n"),
                     "data.csv:3:1: timestamp 2024-01-01T00:05:00Z is not after the previous "
                     "row's 2024-01-01T00:06:00Z");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 ROW1),
                     "data.csv:3:1: timestamp 2024-01-01T00:00:00Z is not after the previous "
                     "row's 2024-01-01T00:00:00Z");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,101,99,100\n"),
                     "data.csv:3:6: expected 6 fields as in the header, found 5");
    cr_assert_str_eq(load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,101,99,100,1,7\n"),
                     "data.csv:3:7: expected 6 fields as in the header, found 7");
}

Test(bars, csv_long_quoted_text_is_capped)
{
    const char *msg = load_err("data.csv", HDR ROW1 "2024-01-01T00:01:00Z,100,"
                                                    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF,"
                                                    "99,100,5\n");
    cr_assert_str_eq(msg, "data.csv:3:3: expected a number for 'high', found "
                          "'abcdefghijklmnopqrstuvwxyz012345...'");
}

Test(bars, csv_empty_inputs_and_long_lines)
{
    cr_assert_str_eq(load_err("e.csv", ""), "e.csv: no bars");
    cr_assert_str_eq(load_err("e.csv", HDR), "e.csv: no bars");
    cr_assert_str_eq(load_err("e.csv", "\n\n  \n"), "e.csv: no bars");
    size_t n = 70000;
    char *big = malloc(n + 256);
    strcpy(big, HDR ROW1);
    size_t k = strlen(big);
    memset(big + k, 'x', n);
    big[k + n] = '\0';
    cr_assert_str_eq(load_err("e.csv", big), "e.csv:3: line is longer than 64 KiB");
    free(big);
}

/* ---- lenient mode ---- */

Test(bars, csv_lenient_counts_and_first_messages)
{
    size_t n;
    char *text = read_file("bars_bad.csv", &n);
    qg_bars b = {0};
    qg_load_report rep;
    qg_error err = {0};
    qg_load_opts o = {.lenient = true};
    cr_assert_eq(qg_bars_load_mem("bars_bad.csv", text, n, &o, &b, &rep, &err), QG_OK, "%s",
                 err.msg);
    cr_assert_eq(rep.rows, 3);
    cr_assert_eq(rep.skipped, 5);
    cr_assert_eq(rep.n_reported, QG_LOAD_MAX_REPORTED);
    cr_assert_str_eq(rep.reported[0],
                     "bars_bad.csv:3:3: expected a number for 'high', found 'abc'");
    cr_assert_str_eq(rep.reported[1], "bars_bad.csv:4:3: high (99.5) is below low (100.2)");
    cr_assert_str_eq(rep.reported[2],
                     "bars_bad.csv:6:6: expected 6 fields as in the header, found 5");
    cr_assert_str_eq(rep.reported[3], "bars_bad.csv:7:6: volume (-5) is negative");
    cr_assert_str_eq(rep.reported[4],
                     "bars_bad.csv:8:2: open (102) is outside [low, high] = [99, 101]");
    /* the skipped rows 3 and 4 did not become "previous": 00:01:30 is kept */
    cr_assert_eq(b.ts[1], T0 + 90000);
    cr_assert_eq(b.ts[2], T0 + 6 * MIN);
    qg_bars_free(&b);

    /* strict mode stops at the first */
    cr_assert_neq(qg_bars_load_mem("bars_bad.csv", text, n, NULL, &b, &rep, &err), QG_OK);
    cr_assert_str_eq(err.msg, "bars_bad.csv:3:3: expected a number for 'high', found 'abc'");
    qg_bars_free(&b);
    free(text);
}

Test(bars, lenient_with_every_row_bad_is_still_no_bars)
{
    qg_bars b;
    qg_load_report rep;
    qg_error err = {0};
    cr_assert_neq(load("x.csv", HDR "2024-01-01,1,2,3,1,1\n", true, &b, &rep, &err), QG_OK);
    cr_assert_str_eq(err.msg, "x.csv: no bars (1 bad row skipped; first: x.csv:2:3: high (2) is "
                              "below low (3))");
    qg_bars_free(&b);
}

/* ---- chunking ---- */

static void check_chunking(const char *file, bool lenient)
{
    size_t n;
    char *text = read_file(file, &n);
    qg_bars whole, b;
    qg_load_report rw, r;
    qg_error ew = {0}, e = {0};
    qg_status rcw = feed_chunks(file, text, n, 0, lenient, &whole, &rw, &ew);
    size_t sizes[] = {1, 2, 3, 7, 64};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        memset(&e, 0, sizeof e);
        qg_status rc = feed_chunks(file, text, n, sizes[k], lenient, &b, &r, &e);
        cr_assert_eq(rc, rcw, "%s in chunks of %zu", file, sizes[k]);
        cr_assert_str_eq(e.msg, ew.msg, "%s in chunks of %zu", file, sizes[k]);
        cr_assert_eq(r.skipped, rw.skipped);
        for (size_t i = 0; i < r.n_reported; i++) cr_assert_str_eq(r.reported[i], rw.reported[i]);
        assert_same_bars(&b, &whole);
        qg_bars_free(&b);
    }
    qg_bars_free(&whole);
    free(text);
}

Test(bars, chunk_boundaries_do_not_matter)
{
    check_chunking("bars_good.csv", false);
    check_chunking("bars_semicolon_split.csv", false);
    check_chunking("bars_bad.csv", false);
    check_chunking("bars_bad.csv", true);
    check_chunking("bars_good.json", false);
    check_chunking("bars_bad.json", false);
    check_chunking("bars_bad.json", true);
}

/* ---- JSON ---- */

Test(bars, json_happy_path_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bars_good.json", QG_TEST_DATA);
    qg_bars b = {0};
    qg_load_report rep;
    qg_error err = {0};
    cr_assert_eq(qg_bars_load_file(path, NULL, &b, &rep, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(rep.rows, 3);
    assert_bar(&b, 0, T0, 100, 101, 99, 100.5, 10);
    assert_bar(&b, 1, T0 + MIN, 100.5, 101, 99.5, 101, 0);
    /* a string time, numeric strings, extra exchange fields ignored */
    assert_bar(&b, 2, T0 + 2 * MIN, 101, 102.5, 100.5, 102, 12.5);
    cr_assert_eq(b.timeframe_ms, MIN);
    qg_bars_free(&b);
}

Test(bars, json_epoch_seconds_and_blank_layout)
{
    qg_bars b;
    qg_load_report rep;
    qg_error err = {0};
    cr_assert_eq(load("x.json",
                      " \n[ [ 1704067200 ,1,2,0.5,1.5,1e2 ] ,\n[1704067260.5,1,2,0.5,1.5]]\n",
                      false, &b, &rep, &err),
                 QG_OK, "%s", err.msg);
    assert_bar(&b, 0, T0, 1, 2, 0.5, 1.5, 100);
    assert_bar(&b, 1, T0 + MIN + 500, 1, 2, 0.5, 1.5, 0);
    qg_bars_free(&b);
    cr_assert_str_eq(load_err("x.json", "[]"), "x.json: no bars");
    const char *iso =
        "[[\"2024-01-01T00:00:00Z\",1,2,0.5,1.5,3],[\"2024-01-01 02:00:00+01:00\",1,2,0.5,1.5,3]]";
    cr_assert_eq(load("iso.json", iso, false, &b, &rep, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(b.ts[0], T0);
    cr_assert_eq(b.ts[1], T0 + HOUR);
    qg_bars_free(&b);
}

Test(bars, json_error_messages)
{
    cr_assert_str_eq(
        load_err("bars.json", "[\n[1704067200,1,2,0.5,1.5,3],\n[1704067260,1,\"x\",0.5,1.5]]"),
        "bars.json:3:15: expected a number for 'high'");
    cr_assert_str_eq(load_err("bars.json", "[[1704067200,1,true,0.5,1.5]]"),
                     "bars.json:1:16: expected a number for 'high'");
    cr_assert_str_eq(load_err("bars.json", "[[1704067200,1,2,0.5,1.5,3],[1704067260,1,2,0.5]]"),
                     "bars.json:1:48: expected 5 or 6 values [timestamp, open, high, low, close, "
                     "volume], found 4");
    cr_assert_str_eq(load_err("bars.json", "[[1704067200,1,2,0.5,1.5,3],[1704067200,1,2,0.5,1.5]]"),
                     "bars.json:1:30: timestamp 2024-01-01T00:00:00Z is not after the previous "
                     "row's 2024-01-01T00:00:00Z");
    cr_assert_str_eq(load_err("bars.json", "[[1704067200,1,2,3,1.5]]"),
                     "bars.json:1:16: high (2) is below low (3)");
    cr_assert_str_eq(load_err("bars.json", "[[1704067200,1,2,0.5,1.5,3]"),
                     "bars.json:1:28: unexpected end of input: the array is not closed with ']'");
    cr_assert_str_eq(load_err("bars.json", "[[1704067200,1,2,0.5,1.5,3] [1704067260,1,2,0.5,1.5]]"),
                     "bars.json:1:29: expected ',' or ']' after a bar");
    cr_assert_str_eq(load_err("bars.json", "[1704067200,1,2,0.5,1.5]"),
                     "bars.json:1:2: expected '[' to start a bar [timestamp, open, high, low, "
                     "close, volume]");
    cr_assert_str_eq(load_err("bars.json", "[[1704067200,{\"a\":1}]]"),
                     "bars.json:1:14: a bar holds numbers or strings, not arrays or objects");
    cr_assert_str_eq(load_err("bars.json", "[[1704067200,1,2,0.5,1.5]] x"),
                     "bars.json:1:28: unexpected text after the end of the array");
    cr_assert_str_eq(
        load_err("bars.json", "[[\"2024-01-01T00:00:00Z\",1,2,0.5,1.5],[1704067260,1,2,0.5,1.5]]"),
        "bars.json:1:40: timestamp '1704067260' is epoch seconds but the first row "
        "used ISO-8601");
    cr_assert_str_eq(load_err("bars.json", "[[1704067200,1,2,0.5,1.5,\"abc]]"),
                     "bars.json:1:32: unexpected end of input: the array is not closed with ']'");
}

Test(bars, json_lenient_skips_one_inner_array)
{
    size_t n;
    char *text = read_file("bars_bad.json", &n);
    qg_bars b = {0};
    qg_load_report rep;
    qg_error err = {0};
    qg_load_opts o = {.lenient = true};
    cr_assert_eq(qg_bars_load_mem("bars_bad.json", text, n, &o, &b, &rep, &err), QG_OK, "%s",
                 err.msg);
    cr_assert_eq(rep.rows, 3);
    cr_assert_eq(rep.skipped, 1);
    cr_assert_eq(rep.n_reported, 1);
    cr_assert_str_eq(rep.reported[0], "bars_bad.json:3:18: expected a number for 'high'");
    cr_assert_eq(b.ts[2], T0 + 3 * MIN);
    qg_bars_free(&b);
    cr_assert_neq(qg_bars_load_mem("bars_bad.json", text, n, NULL, &b, &rep, &err), QG_OK);
    cr_assert_str_eq(err.msg, "bars_bad.json:3:18: expected a number for 'high'");
    qg_bars_free(&b);
    free(text);
}

Test(bars, load_file_errors_and_format_choice)
{
    qg_bars b = {0};
    qg_load_report rep;
    qg_error err = {0};
    cr_assert_eq(qg_bars_load_file("/nonexistent/bars.csv", NULL, &b, &rep, &err), QG_ENOTFOUND);
    cr_assert(strstr(err.msg, "/nonexistent/bars.csv") != NULL, "%s", err.msg);
    /* a .json name is parsed as JSON even when it is not */
    char path[512];
    snprintf(path, sizeof path, "%s/bars_good.csv", QG_TEST_DATA);
    cr_assert_eq(qg_bars_load_file(path, NULL, &b, &rep, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(rep.rows, 5);
    cr_assert_eq(b.timeframe_ms, MIN);
    qg_bars_free(&b);
    qg_bars_parser *p = qg_bars_parser_new("x.json", QG_FORMAT_JSON, NULL, &b);
    cr_assert_neq(qg_bars_parser_feed(p, "ts,open\n", 8, &err), QG_OK);
    cr_assert_str_eq(err.msg, "x.json:1:1: expected a JSON array of bars, starting with '['");
    qg_bars_parser_free(p);
    qg_bars_free(&b);
}

Test(bars, loading_appends_after_existing_bars)
{
    qg_bars b = {0};
    qg_load_report rep;
    qg_error err = {0};
    cr_assert_eq(qg_bars_load_mem("a.csv", HDR ROW1, strlen(HDR ROW1), NULL, &b, &rep, &err),
                 QG_OK);
    cr_assert_neq(qg_bars_load_mem("b.csv", HDR ROW1, strlen(HDR ROW1), NULL, &b, &rep, &err),
                  QG_OK);
    cr_assert_str_eq(err.msg, "b.csv:2:1: timestamp 2024-01-01T00:00:00Z is not after the "
                              "previous row's 2024-01-01T00:00:00Z");
    const char *more = HDR "2024-01-01T00:01:00Z,100,101,99,100,5\n";
    cr_assert_eq(qg_bars_load_mem("c.csv", more, strlen(more), NULL, &b, &rep, &err), QG_OK);
    cr_assert_eq(b.n, 2);
    cr_assert_eq(rep.rows, 1);
    qg_bars_free(&b);
}

/* ---- resampling ---- */

static qg_bars minute_bars(size_t n, int64_t start)
{
    qg_bars b = {0};
    for (size_t i = 0; i < n; i++) {
        double o = 100 + (double)i, c = o + 0.5;
        qg_bar bar = {start + (int64_t)i * MIN, o, c + 1 + (double)(i % 3),
                      o - 1 - (double)(i % 2),  c, (double)(i + 1)};
        qg_bars_push(&b, &bar);
    }
    b.timeframe_ms = MIN;
    return b;
}

Test(bars, resample_1m_to_5m_by_hand)
{
    qg_bars in = minute_bars(12, T0), out = {0};
    qg_error err = {0};
    cr_assert_eq(qg_bars_resample(&in, 5 * MIN, &out, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(out.n, 3);
    cr_assert_eq(out.timeframe_ms, 5 * MIN);
    /* bars 0..4: open 100, high max(c+1+i%3) = bar 4: 104.5+1+1 = 106.5, low min(o-1-i%2) = 99,
     * close 104.5, volume 1+2+3+4+5 */
    assert_bar(&out, 0, T0, 100, 106.5, 99, 104.5, 15);
    /* bars 5..9: high bar 8: 108.5+1+2 = 111.5; low bar 5: 105-1-1 = 103; volume 6..10 */
    assert_bar(&out, 1, T0 + 5 * MIN, 105, 111.5, 103, 109.5, 40);
    /* bars 10,11: a partial last bucket */
    assert_bar(&out, 2, T0 + 10 * MIN, 110, 114.5, 109, 111.5, 23);
    qg_bars_free(&in);
    qg_bars_free(&out);
}

Test(bars, resample_partial_first_bucket)
{
    qg_bars in = minute_bars(4, T0 + 3 * MIN), out = {0}; /* 00:03 .. 00:06 */
    qg_error err = {0};
    cr_assert_eq(qg_bars_resample(&in, 5 * MIN, &out, &err), QG_OK);
    cr_assert_eq(out.n, 2);
    /* 00:03, 00:04 go to the 00:00 bucket */
    assert_bar(&out, 0, T0, 100, 103.5, 99, 101.5, 3);
    assert_bar(&out, 1, T0 + 5 * MIN, 102, 105.5, 101, 103.5, 7);
    qg_bars_free(&in);
    qg_bars_free(&out);
}

static qg_bars hour_bars(size_t n, int64_t start)
{
    qg_bars b = {0};
    for (size_t i = 0; i < n; i++) {
        double o = 10 + (double)(i % 7);
        qg_bar bar = {start + (int64_t)i * HOUR, o, o + 2, o - 1, o + 1, 1};
        qg_bars_push(&b, &bar);
    }
    b.timeframe_ms = HOUR;
    return b;
}

Test(bars, resample_hours_to_4h_and_1d)
{
    qg_bars in = hour_bars(48, T0 + 2 * HOUR), out = {0};
    qg_error err = {0};
    cr_assert_eq(qg_bars_resample(&in, 4 * HOUR, &out, &err), QG_OK);
    cr_assert_eq(out.n, 13); /* 02:00 starts in the 00:00 bucket: 2 + 11*4 + 2 */
    /* bucket 00:00 holds bars 0,1 (o 10, 11) */
    assert_bar(&out, 0, T0, 10, 13, 9, 12, 2);
    /* bucket 04:00 holds bars 2..5 (o 12,13,14,15): high 17, low 11, close 16 */
    assert_bar(&out, 1, T0 + 4 * HOUR, 12, 17, 11, 16, 4);
    qg_bars_free(&out);
    cr_assert_eq(qg_bars_resample(&in, QG_MS_PER_DAY, &out, &err), QG_OK);
    cr_assert_eq(out.n, 3);
    /* day 1: bars 0..21 (02:00..23:00): o%7 cycles through every value */
    assert_bar(&out, 0, T0, 10, 18, 9, 10 + 21 % 7 + 1, 22);
    assert_bar(&out, 1, T0 + QG_MS_PER_DAY, 10 + 22 % 7, 18, 9, 10 + 45 % 7 + 1, 24);
    assert_bar(&out, 2, T0 + 2 * QG_MS_PER_DAY, 10 + 46 % 7, 10 + 47 % 7 + 2, 10 + 46 % 7 - 1,
               10 + 47 % 7 + 1, 2);
    qg_bars_free(&out);
    qg_bars_free(&in);
}

Test(bars, resample_weeks_start_on_monday)
{
    /* 2024-01-01 is a Monday; start on Wednesday 2024-01-03 */
    qg_bars in = {0}, out = {0};
    for (int d = 0; d < 10; d++) {
        qg_bar bar = {T0 + (2 + d) * QG_MS_PER_DAY, 1, 2, 0.5, 1, 1};
        qg_bars_push(&in, &bar);
    }
    in.timeframe_ms = QG_MS_PER_DAY;
    qg_error err = {0};
    cr_assert_eq(qg_bars_resample(&in, 7 * QG_MS_PER_DAY, &out, &err), QG_OK);
    cr_assert_eq(out.n, 2);
    cr_assert_eq(out.ts[0], T0);
    cr_assert_eq(out.volume[0], 5); /* Wed..Sun */
    cr_assert_eq(out.ts[1], T0 + 7 * QG_MS_PER_DAY);
    qg_bars_free(&in);
    qg_bars_free(&out);
}

Test(bars, resample_rejects_bad_timeframes)
{
    qg_bars in = minute_bars(10, T0), out = {0};
    in.timeframe_ms = 5 * MIN;
    qg_error err = {0};
    cr_assert_eq(qg_bars_resample(&in, 7 * MIN, &out, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "cannot resample 5m bars to 7m: not a multiple");
    cr_assert_eq(qg_bars_resample(&in, MIN, &out, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "cannot resample 5m bars to 1m: the target timeframe is shorter");
    cr_assert_eq(qg_bars_resample(&in, 0, &out, &err), QG_EINVAL);
    qg_bars_free(&in);
    qg_bars_free(&out);
}

/* ---- lookups ---- */

Test(bars, between_and_lower_bound)
{
    qg_bars b = minute_bars(10, T0);
    cr_assert_eq(qg_bars_lower_bound(&b, T0 - 1), 0);
    cr_assert_eq(qg_bars_lower_bound(&b, T0 + 3 * MIN), 3);
    cr_assert_eq(qg_bars_lower_bound(&b, T0 + 3 * MIN + 1), 4);
    cr_assert_eq(qg_bars_lower_bound(&b, T0 + 100 * MIN), 10);
    qg_bars v = qg_bars_between(&b, T0 + 2 * MIN, T0 + 5 * MIN);
    cr_assert_eq(v.n, 3);
    cr_assert_eq(v.cap, 0);
    cr_assert_eq(v.ts[0], T0 + 2 * MIN);
    cr_assert_eq(qg_bars_between(&b, INT64_MIN, T0 + 2 * MIN).n, 2);
    cr_assert_eq(qg_bars_between(&b, T0 + 8 * MIN, INT64_MAX).n, 2);
    cr_assert_eq(qg_bars_between(&b, T0 + 5 * MIN, T0 + 2 * MIN).n, 0);
    qg_bars_free(&v); /* a view: no-op */
    qg_bars_free(&b);
}

/* ---- generator ---- */

Test(bars, generator_is_deterministic_per_seed)
{
    qg_gen_opts o = {.bars = 5000, .tf_ms = MIN, .seed = 42, .start_ms = T0};
    qg_bars a = {0}, b = {0}, c = {0};
    qg_error err = {0};
    cr_assert_eq(qg_bars_generate(&o, &a, &err), QG_OK);
    cr_assert_eq(qg_bars_generate(&o, &b, &err), QG_OK);
    assert_same_bars(&a, &b);
    o.seed = 43;
    cr_assert_eq(qg_bars_generate(&o, &c, &err), QG_OK);
    size_t same = 0;
    for (size_t i = 1; i < c.n; i++) same += c.close[i] == a.close[i];
    cr_assert_lt(same, c.n / 2, "different seeds gave %zu equal closes", same);
    qg_bars_free(&a);
    qg_bars_free(&b);
    qg_bars_free(&c);
}

Test(bars, generator_bars_are_consistent)
{
    qg_gen_opts o = {.bars = 100000, .tf_ms = MIN, .seed = 7, .start_ms = T0};
    qg_bars b = {0};
    qg_error err = {0};
    cr_assert_eq(qg_bars_generate(&o, &b, &err), QG_OK);
    cr_assert_eq(b.n, 100000);
    cr_assert_eq(b.timeframe_ms, MIN);
    cr_assert_eq(b.open[0], 100);
    size_t gaps = 0;
    for (size_t i = 0; i < b.n; i++) {
        cr_assert_eq(b.ts[i], T0 + (int64_t)i * MIN);
        cr_assert(b.low[i] > 0 && b.low[i] <= fmin(b.open[i], b.close[i]), "bar %zu low", i);
        cr_assert(b.high[i] >= fmax(b.open[i], b.close[i]), "bar %zu high", i);
        cr_assert(b.volume[i] >= 0, "bar %zu volume", i);
        /* on the 0.01 tick */
        double cents = b.close[i] * 100;
        cr_assert_float_eq(cents, nearbyint(cents), 1e-6, "bar %zu close off tick", i);
        if (i && b.open[i] != b.close[i - 1]) gaps++;
    }
    cr_assert_lt(gaps, b.n / 10, "open should mostly equal the previous close (%zu gaps)", gaps);
    qg_bars_free(&b);
}

static double annual_vol(const qg_bars *b, int64_t tf)
{
    double s = 0, s2 = 0;
    size_t n = 0;
    for (size_t i = 1; i < b->n; i++) {
        double r = log(b->close[i] / b->close[i - 1]);
        s += r;
        s2 += r * r;
        n++;
    }
    double var = s2 / (double)n - (s / (double)n) * (s / (double)n);
    return sqrt(var * (365.25 * QG_MS_PER_DAY / (double)tf));
}

Test(bars, generator_volatility_is_plausible_at_1m_and_1d)
{
    qg_bars b = {0};
    qg_error err = {0};
    qg_gen_opts o = {.bars = 200000, .tf_ms = MIN, .seed = 3, .start_ms = T0};
    cr_assert_eq(qg_bars_generate(&o, &b, &err), QG_OK);
    double v1m = annual_vol(&b, MIN);
    cr_assert(v1m > 0.45 && v1m < 1.0, "1m annualised vol %.2f", v1m);
    /* volatility is higher in the US session than in the quiet hours */
    double busy = 0, quiet = 0;
    size_t nb = 0, nq = 0;
    for (size_t i = 1; i < b.n; i++) {
        int64_t m = (b.ts[i] % QG_MS_PER_DAY) / MIN;
        double r = fabs(log(b.close[i] / b.close[i - 1]));
        if (m >= 14 * 60 && m < 16 * 60) busy += r, nb++;
        if (m >= 3 * 60 && m < 6 * 60) quiet += r, nq++;
    }
    cr_assert_gt(busy / (double)nb, 1.5 * quiet / (double)nq);
    qg_bars_free(&b);
    o = (qg_gen_opts){.bars = 3000, .tf_ms = QG_MS_PER_DAY, .seed = 3, .start_ms = T0};
    cr_assert_eq(qg_bars_generate(&o, &b, &err), QG_OK);
    double v1d = annual_vol(&b, QG_MS_PER_DAY);
    cr_assert(v1d > 0.45 && v1d < 1.0, "1d annualised vol %.2f", v1d);
    qg_bars_free(&b);
}

Test(bars, generator_rejects_bad_options)
{
    qg_gen g;
    qg_error err = {0};
    cr_assert_eq(qg_gen_init(&g, &(qg_gen_opts){.tf_ms = 0}, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "tf_ms must be > 0");
    cr_assert_eq(qg_gen_init(&g, &(qg_gen_opts){.tf_ms = MIN, .start_price = -5}, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "start_price (-5) must be > 0");
}

/* ---- writing ---- */

static void round_trip(qg_ts_format tsf, int64_t tf)
{
    qg_gen_opts o = {.bars = 3000, .tf_ms = tf, .seed = 11, .start_ms = T0 + 250};
    qg_bars b = {0}, back = {0};
    qg_error err = {0};
    cr_assert_eq(qg_bars_generate(&o, &b, &err), QG_OK);
    /* a small buffer: rows must never be cut */
    size_t cap = 1 << 20, len = strlen(QG_BARS_CSV_HEADER), pos = 0;
    char *text = malloc(cap), chunk[1000];
    memcpy(text, QG_BARS_CSV_HEADER, len);
    while (pos < b.n) {
        size_t n = qg_bars_format_csv(&b, &pos, chunk, sizeof chunk, tsf, 2);
        cr_assert_gt(n, 0);
        cr_assert_eq(chunk[n - 1], '\n');
        memcpy(text + len, chunk, n);
        len += n;
    }
    qg_load_report rep;
    cr_assert_eq(qg_bars_load_mem("rt.csv", text, len, NULL, &back, &rep, &err), QG_OK, "%s",
                 err.msg);
    assert_same_bars(&b, &back);
    cr_assert_eq(back.timeframe_ms, tf);
    qg_bars_free(&b);
    qg_bars_free(&back);
    free(text);
}

Test(bars, format_csv_round_trips)
{
    round_trip(QG_TS_ISO, MIN);
    round_trip(QG_TS_EPOCH_S, MIN);
    round_trip(QG_TS_EPOCH_MS, HOUR);
    round_trip(QG_TS_ISO, QG_MS_PER_DAY);
}

Test(bars, format_csv_text)
{
    qg_bars b = {0};
    qg_bar bar = {T0 + 1500, 1, 2.125, 0.5, 1.5, 10};
    qg_bars_push(&b, &bar);
    bar.ts = -QG_MS_PER_DAY - 500;
    qg_bars_push(&b, &bar);
    char out[256];
    size_t pos = 0;
    size_t n = qg_bars_format_csv(&b, &pos, out, sizeof out, QG_TS_ISO, 2);
    out[n] = '\0';
    cr_assert_str_eq(out, "2024-01-01T00:00:01.500Z,1.00,2.13,0.50,1.50,10.00\n"
                          "1969-12-30T23:59:59.500Z,1.00,2.13,0.50,1.50,10.00\n");
    pos = 0;
    n = qg_bars_format_csv(&b, &pos, out, sizeof out, QG_TS_EPOCH_S, 0);
    out[n] = '\0';
    cr_assert_str_eq(out, "1704067201.500,1,2,1,2,10\n-86400.500,1,2,1,2,10\n");
    pos = 0;
    n = qg_bars_format_csv(&b, &pos, out, 30, QG_TS_EPOCH_MS, 1);
    cr_assert_eq(n, 0); /* the first row (36 bytes) does not fit in 30 */
    cr_assert_eq(pos, 0);
    qg_bars_free(&b);
}
