/*
 * cmd_indicators.c - `quantgate indicators`: computes indicators over bars
 * and prints them as CSV or JSON, one row per bar.
 *
 * Indicators are computed over every loaded bar from the first one, so the
 * values printed from --from on are warmed up on the history before it and
 * do not depend on --from. Bars go through the indicators in blocks of
 * BLOCK and each block is printed as soon as it is computed: memory stays
 * bounded whatever the number of bars, and the JSON is streamed row by row
 * rather than built as a tree.
 */
#include "cmd/cmd.h"

#include <quantgate/indicators.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IND  64   /* --ind options accepted */
#define BLOCK    4096 /* bars per compute-and-print step */
#define COL_MAX  64   /* bytes of a column name */
#define CELL_MAX 32   /* bytes of one formatted value, separator included */

typedef struct {
    size_t n_ind, n_cols;
    qg_ind_spec spec[MAX_IND];
    qg_ind *ind[MAX_IND];
    char names[MAX_IND * QG_IND_MAX_OUTPUTS][COL_MAX];
    double *vals; /* n_cols columns of BLOCK values */
    bool json;
} table;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: quantgate indicators --data FILE --ind SPEC [--ind SPEC ...] [options]\n\n"
            "Computes indicators over OHLCV bars and prints one row per bar: the\n"
            "timestamp (ISO-8601, UTC) then one column per indicator output.\n\n"
            "  --data FILE        bars as CSV or a JSON array (required)\n"
            "  --ind SPEC         name[:params][@source], repeatable (up to %d), e.g.\n"
            "                     rsi:14  ema:20  macd:12,26,9  bbands:20,2  sma:20@hl2\n"
            "                     kinds: sma ema wma rsi atr macd bbands stoch adx cci roc\n"
            "                     willr donchian obv vwap (see docs/indicators.md)\n"
            "  --format csv|json  output format (default csv); undefined values are\n"
            "                     empty in CSV and null in JSON\n"
            "  --timeframe TF     resample first (15m, 4h, 1d, ...)\n"
            "  --from DATE        first bar printed (indicators still warm up on the\n"
            "  --to DATE          bars before it); --to is exclusive\n"
            "  --lenient          skip bad rows instead of failing\n"
            "  --quiet            no progress bar\n"
            "  --help             this text\n",
            MAX_IND);
}

/* Parses one --ind value into the table; returns false after printing. */
static bool add_indicator(table *t, const char *cmd, const char *text)
{
    qg_error err = {0};
    if (t->n_ind == MAX_IND) {
        qg_cmd_fail(cmd, "too many --ind options (at most %d)", MAX_IND);
        return false;
    }
    qg_ind_spec *s = &t->spec[t->n_ind];
    if (qg_ind_parse(text, s, &err)) {
        qg_cmd_fail(cmd, "--ind: %s", err.msg);
        return false;
    }
    for (int k = 0; k < qg_ind_output_count(s); k++) {
        char *name = t->names[t->n_cols];
        qg_ind_column_name(s, k, name, COL_MAX);
        for (size_t j = 0; j < t->n_cols; j++)
            if (strcmp(t->names[j], name) == 0) {
                qg_cmd_fail(cmd, "--ind: indicator '%s': column %s is already printed", text, name);
                return false;
            }
        t->n_cols++;
    }
    t->n_ind++;
    return true;
}

/* Allocates the states and the output block. The CLI aborts on
 * out-of-memory (qg_xmalloc), as programs do. */
static void table_open(table *t)
{
    for (size_t i = 0; i < t->n_ind; i++) {
        t->ind[i] = qg_ind_new(&t->spec[i]);
        if (!t->ind[i]) {
            fprintf(stderr, "quantgate: out of memory\n");
            exit(1);
        }
    }
    t->vals = qg_xmalloc(t->n_cols * BLOCK * sizeof *t->vals);
}

static void table_close(table *t)
{
    for (size_t i = 0; i < t->n_ind; i++) qg_ind_free(t->ind[i]);
    free(t->vals);
}

static void print_header(const table *t, FILE *out)
{
    if (!t->json) {
        fputs("timestamp", out);
        for (size_t c = 0; c < t->n_cols; c++) fprintf(out, ",%s", t->names[c]);
        fputc('\n', out);
        return;
    }
    fputs("{\"columns\":[\"timestamp\"", out);
    for (size_t c = 0; c < t->n_cols; c++) fprintf(out, ",\"%s\"", t->names[c]);
    fputs("],\"rows\":[", out);
}

/* Formats bar i of the block (timestamp ts) into line; returns its length.
 * line holds 48 + n_cols * CELL_MAX bytes. */
static size_t format_row(const table *t, size_t i, int64_t ts, char *line)
{
    char iso[40];
    size_t len;
    qg_time_format_iso(ts, iso, sizeof iso);
    len = (size_t)sprintf(line, t->json ? "[\"%s\"" : "%s", iso);
    for (size_t c = 0; c < t->n_cols; c++) {
        double v = t->vals[c * BLOCK + i];
        line[len++] = ',';
        if (isfinite(v))
            len += (size_t)snprintf(line + len, CELL_MAX, "%.10g", v);
        else if (t->json)
            len += (size_t)sprintf(line + len, "null");
    }
    if (t->json) line[len++] = ']';
    return len;
}

/* Runs bars [0, end) through the indicators and prints rows [start, end). */
static void print_rows(table *t, const qg_bars *b, size_t start, size_t end, FILE *out)
{
    char *line = qg_xmalloc(48 + t->n_cols * CELL_MAX);
    bool first = true;
    for (size_t from = 0; from < end; from += BLOCK) {
        size_t n = end - from < BLOCK ? end - from : BLOCK, col = 0;
        for (size_t k = 0; k < t->n_ind; k++) {
            double *o[QG_IND_MAX_OUTPUTS];
            int nout = qg_ind_output_count(&t->spec[k]);
            for (int j = 0; j < nout; j++) o[j] = t->vals + (col + (size_t)j) * BLOCK;
            qg_ind_update_block(t->ind[k], b, from, n, o);
            col += (size_t)nout;
        }
        for (size_t i = from < start ? start - from : 0; i < n; i++) {
            size_t len = format_row(t, i, b->ts[from + i], line);
            if (t->json)
                fputs(first ? "\n" : ",\n", out);
            else
                line[len++] = '\n';
            fwrite(line, 1, len, out);
            first = false;
        }
    }
    if (t->json) fputs("\n]}\n", out);
    free(line);
}

int qg_cmd_indicators(int argc, char **argv)
{
    const char *cmd = argv[0], *format = "csv", *text;
    qg_data_args d = {0};
    table t = {0};
    qg_args a = qg_args_begin(argc, argv);
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help") || qg_args_flag(&a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (qg_data_args_match(&a, &d)) continue;
        if (qg_args_value(&a, "--format", &format)) continue;
        if (qg_args_value(&a, "--ind", &text)) {
            if (!add_indicator(&t, cmd, text)) return 2;
            continue;
        }
        return qg_args_unknown(&a);
    }
    if (strcmp(format, "csv") != 0 && strcmp(format, "json") != 0) {
        qg_cmd_fail(cmd, "--format: '%s' is not csv or json", format);
        return 2;
    }
    t.json = format[0] == 'j';
    if (!t.n_ind) {
        qg_cmd_fail(cmd, "at least one --ind SPEC is required (e.g. --ind rsi:14)");
        return 2;
    }

    qg_bars bars = {0}, view;
    int rc = qg_data_load(cmd, &d, &bars, &view);
    if (rc) {
        qg_bars_free(&bars);
        return rc;
    }
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    size_t start = (size_t)(view.ts - bars.ts);
    table_open(&t);
    print_header(&t, stdout);
    print_rows(&t, &bars, start, start + view.n, stdout);
    table_close(&t);
    qg_bars_free(&bars);
    if (fflush(stdout) || ferror(stdout)) return qg_cmd_fail(cmd, "write error on stdout");
    return 0;
}
