/*
 * cmd_detect.c - `quantgate detect`: the ICT detector (docs/ict.md) over a
 * file of bars, as a table of detections or, with --json, one webhook
 * payload (the TradingView alert shape) per line, then a count per type.
 *
 * The detector sees the bars one at a time exactly as the live path
 * (POST /api/bars) does, so what this prints is what the server would
 * have sent, bar for bar.
 */
#include "cmd/cmd.h"
#include "signal/live.h"
#include "signal/signal.h"

#include <quantgate/ict.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: quantgate detect --data FILE [options]\n\n"
                 "Runs the ICT detector bar by bar (no look-ahead: a swing is reported when\n"
                 "confirmed, the HTF bias uses completed HTF bars only) and prints each\n"
                 "signal: BoS, CHoCH, FVG, OB, liquidity_sweep (docs/ict.md).\n\n"
                 "  --data FILE        bars as CSV or a JSON array (required)\n"
                 "  --htf TF           higher timeframe for the bias (e.g. 4h; default none)\n"
                 "  --swing N          pivot bars on each side of a swing (default 5)\n"
                 "  --json             one webhook payload per line on stdout (summary on stderr)\n"
                 "  --all              the table also lists swings and equal highs/lows\n"
                 "  --symbol S         the signals' symbol (default: the file name)\n"
                 "  --timeframe TF     resample first; also the signals' timeframe\n"
                 "  --from DATE        first bar (the detector still sees the bars before it\n"
                 "  --to DATE          only as far as --from; --to is exclusive)\n"
                 "  --lenient          skip bad rows instead of failing\n"
                 "  --quiet            no progress bar\n"
                 "  --help             this text\n");
}

/* The file name without directory and extension, as a symbol. */
static void symbol_from_path(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t i = 0;
    for (; base[i] && base[i] != '.' && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)base[i];
        out[i] = isalnum(ch) || ch == '-' || ch == '_' ? (char)toupper(ch) : '_';
    }
    out[i] = 0;
    if (!i) snprintf(out, cap, "UNKNOWN");
}

static void print_row(const qg_ict_event *e)
{
    char ts[40], zone[64] = "", sl[24] = "-", tp[24] = "-";
    qg_time_format_iso(e->ts, ts, sizeof ts);
    if (e->zone_lo != e->zone_hi)
        snprintf(zone, sizeof zone, "%.5g-%.5g", e->zone_lo, e->zone_hi);
    else
        snprintf(zone, sizeof zone, "%.5g", e->level);
    if (e->has_sl) snprintf(sl, sizeof sl, "%.5g", e->sl);
    if (e->has_tp) snprintf(tp, sizeof tp, "%.5g", e->tp);
    const char *names[QG_ICT_C_COUNT];
    int n = qg_ict_confluence_names(e->confluences, names, QG_ICT_C_COUNT);
    char conf[256] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof conf; i++)
        len += (size_t)snprintf(conf + len, sizeof conf - len, "%s%s", i ? "," : "", names[i]);
    if (qg_ict_is_signal(e->type))
        printf("%-24s %-15s %-4s %11.5g %-23s %11s %11s %4d  %s\n", ts, qg_ict_type_name(e->type),
               e->dir > 0 ? "bull" : "bear", e->close, zone, sl, tp, e->confidence, conf);
    else
        printf("%-24s %-15s %-4s %11.5g %-23s\n", ts, qg_ict_type_name(e->type),
               e->dir > 0 ? "bull" : "bear", e->close, zone);
}

int qg_cmd_detect(int argc, char **argv)
{
    const char *cmd = "detect";
    qg_data_args d = {0};
    const char *htf = NULL, *symbol = NULL;
    long long swing = 5;
    bool json = false, all = false;
    qg_args a = qg_args_begin(argc, argv);
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help") || qg_args_flag(&a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (qg_data_args_match(&a, &d)) continue;
        const char *v;
        if (qg_args_value(&a, "--htf", &htf)) continue;
        if (qg_args_value(&a, "--symbol", &symbol)) continue;
        if (qg_args_value(&a, "--swing", &v)) {
            swing = qg_args_int(&a, "--swing", v, 1, 100);
            continue;
        }
        if (qg_args_flag(&a, "--json")) {
            json = true;
            continue;
        }
        if (qg_args_flag(&a, "--all")) {
            all = true;
            continue;
        }
        return qg_args_unknown(&a);
    }
    qg_error err = {0};
    qg_ict_config cfg = {.swing_length = (int)swing};
    if (htf && qg_timeframe_parse(htf, &cfg.htf_ms, &err))
        return qg_cmd_fail(cmd, "--htf: %s", err.msg), 2;
    char sym[QG_SIGNAL_SYMBOL_MAX + 1];
    if (symbol) {
        if (!*symbol || strlen(symbol) > QG_SIGNAL_SYMBOL_MAX)
            return qg_cmd_fail(cmd, "--symbol: must be 1 to %d characters", QG_SIGNAL_SYMBOL_MAX),
                   2;
        size_t i = 0;
        for (; symbol[i]; i++) sym[i] = (char)toupper((unsigned char)symbol[i]);
        sym[i] = 0;
    } else if (d.path) {
        symbol_from_path(d.path, sym, sizeof sym);
    }

    qg_bars bars = {0}, view = {0};
    qg_ict *det = NULL;
    int rc = qg_data_load(cmd, &d, &bars, &view);
    if (rc) goto out;
    char tf[QG_SIGNAL_TIMEFRAME_MAX + 1] = "unknown";
    if (d.timeframe)
        snprintf(tf, sizeof tf, "%s", d.timeframe);
    else if (bars.timeframe_ms)
        qg_timeframe_format(bars.timeframe_ms, tf, sizeof tf);
    cfg.timeframe_ms = bars.timeframe_ms;
    if (cfg.htf_ms && cfg.timeframe_ms && cfg.htf_ms <= cfg.timeframe_ms) {
        rc = qg_cmd_fail(cmd, "--htf %s is not above the bars' timeframe (%s)", htf, tf);
        goto out;
    }
    if (qg_ict_new(&cfg, &det, &err)) {
        rc = qg_cmd_fail(cmd, "%s", err.msg);
        goto out;
    }

    size_t per[QG_ICT_NTYPES] = {0}, signals = 0;
    size_t first = view.n ? (size_t)(view.ts - bars.ts) : 0;
    if (!json)
        printf("%-24s %-15s %-4s %11s %-23s %11s %11s %4s  %s\n", "time", "type", "dir", "close",
               "level/zone", "sl", "tp", "conf", "confluences");
    qg_buf line;
    qg_buf_init(&line, 4096);
    /* the bars before --from warm the detector up; events count from --from */
    for (size_t i = 0; i < first + view.n; i++) {
        qg_ict_event ev[QG_ICT_MAX_EVENTS_PER_BAR];
        size_t n = 0;
        if (qg_ict_push(det, bars.ts[i], bars.open[i], bars.high[i], bars.low[i], bars.close[i],
                        bars.volume[i], ev, QG_ICT_MAX_EVENTS_PER_BAR, &n, &err)) {
            rc = qg_cmd_fail(cmd, "bar %zu: %s", i, err.msg);
            break;
        }
        if (i < first) continue;
        for (size_t k = 0; k < n; k++) {
            per[ev[k].type]++;
            bool sig = qg_ict_is_signal(ev[k].type);
            signals += sig;
            if (!json) {
                if (sig || all) print_row(&ev[k]);
                continue;
            }
            if (!sig) continue;
            qg_signal s;
            qg_ict_event_to_signal(&ev[k], sym, tf, &s);
            qg_buf_reset(&line);
            if (qg_signal_to_json(&s, &line)) {
                rc = qg_cmd_fail(cmd, "a signal at bar %zu does not fit in a line", i);
                break;
            }
            fwrite(line.data, 1, line.len, stdout);
            fputc('\n', stdout);
        }
        if (rc) break;
    }
    qg_buf_free(&line);
    if (!rc) {
        FILE *o = json ? stderr : stdout;
        fprintf(o, "%s%zu signals in %zu bars of %s %s:", json ? "" : "\n", signals, view.n, sym,
                tf);
        for (int t = 0; t < QG_ICT_NTYPES; t++)
            fprintf(o, " %s %zu%s", qg_ict_type_name((qg_ict_type)t), per[t],
                    t + 1 < QG_ICT_NTYPES ? "," : "\n");
    }
out:
    qg_ict_free(det);
    qg_bars_free(&bars);
    return rc;
}
