/*
 * args.c - the option parser, progress bar and data loading shared by the
 * subcommands.
 */
#include "cmd/cmd.h"

#include <quantgate/time.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

qg_args qg_args_begin(int argc, char **argv)
{
    return (qg_args){.argc = argc, .argv = argv, .i = 0, .cmd = argv[0]};
}

bool qg_args_next(qg_args *a)
{
    return ++a->i < a->argc;
}

bool qg_args_value(qg_args *a, const char *name, const char **value)
{
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) return false;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return true;
    }
    if (arg[n] != '\0') return false;
    if (a->i + 1 >= a->argc) {
        fprintf(stderr, "quantgate %s: option %s needs a value\n", a->cmd, name);
        exit(2);
    }
    *value = a->argv[++a->i];
    return true;
}

bool qg_args_flag(qg_args *a, const char *name)
{
    return strcmp(a->argv[a->i], name) == 0;
}

int qg_args_unknown(qg_args *a)
{
    const char *arg = a->argv[a->i];
    if (arg[0] == '-')
        fprintf(stderr, "quantgate %s: unknown option '%s' (see quantgate %s --help)\n", a->cmd,
                arg, a->cmd);
    else
        fprintf(stderr, "quantgate %s: unexpected argument '%s'\n", a->cmd, arg);
    return 2;
}

int qg_args_action(int argc, char **argv, const char *cmd, const char *const actions[],
                   void (*usage)(FILE *out), int *which)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    char list[128] = "";
    for (int i = 0; actions[i]; i++) {
        if (strcmp(sub, actions[i]) == 0) {
            *which = i;
            return -1;
        }
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", actions[i]);
    }
    fprintf(stderr, "quantgate %s: unknown action '%s' (%s)\n", cmd, sub, list);
    return 2;
}

double qg_args_double(const qg_args *a, const char *name, const char *value, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v)) {
        fprintf(stderr, "quantgate %s: %s: '%s' is not a number\n", a->cmd, name, value);
        exit(2);
    }
    if (v < min || v > max) {
        fprintf(stderr, "quantgate %s: %s: %s is out of range [%g, %g]\n", a->cmd, name, value, min,
                max);
        exit(2);
    }
    return v;
}

long long qg_args_int(const qg_args *a, const char *name, const char *value, long long min,
                      long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end) {
        fprintf(stderr, "quantgate %s: %s: '%s' is not a whole number\n", a->cmd, name, value);
        exit(2);
    }
    if (v < min || v > max) {
        fprintf(stderr, "quantgate %s: %s: %s is out of range [%lld, %lld]\n", a->cmd, name, value,
                min, max);
        exit(2);
    }
    return v;
}

int qg_cmd_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "quantgate %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* ---- progress ---- */

void qg_progress_init(qg_progress *p, const char *label, bool quiet)
{
    p->label = label;
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->last_ms = 0;
    p->last_pct = -1;
}

void qg_progress_update(void *ud, uint64_t done, uint64_t total)
{
    qg_progress *p = ud;
    if (!p || !p->enabled || !total) return;
    int pct = (int)(done * 100 / total);
    int64_t now = qg_time_now_ms();
    if (pct == p->last_pct || (now - p->last_ms < 100 && pct < 100)) return;
    p->last_pct = pct;
    p->last_ms = now;
    char bar[31];
    int fill = pct * 30 / 100;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r%-10s [%s] %3d%%", p->label, bar, pct);
    fflush(stderr);
}

void qg_progress_done(qg_progress *p)
{
    if (p->enabled && p->last_pct >= 0) fprintf(stderr, "\r\033[K");
    p->last_pct = -1;
}

/* ---- data loading ---- */

bool qg_data_args_match(qg_args *a, qg_data_args *d)
{
    if (qg_args_value(a, "--data", &d->path)) return true;
    if (qg_args_value(a, "--timeframe", &d->timeframe)) return true;
    if (qg_args_value(a, "--from", &d->from)) return true;
    if (qg_args_value(a, "--to", &d->to)) return true;
    if (qg_args_flag(a, "--lenient")) return d->lenient = true;
    if (qg_args_flag(a, "--quiet")) return d->quiet = true;
    return false;
}

int qg_data_load(const char *cmd, const qg_data_args *d, qg_bars *bars, qg_bars *view)
{
    qg_error err = {0};
    qg_load_report rep = {0};
    qg_progress prog;
    int64_t tf = 0, from = INT64_MIN, to = INT64_MAX;
    if (!d->path) return qg_cmd_fail(cmd, "--data FILE is required"), 2;
    if (d->timeframe && qg_timeframe_parse(d->timeframe, &tf, &err))
        return qg_cmd_fail(cmd, "--timeframe: %s", err.msg);
    if (d->from && qg_time_parse_arg(d->from, &from, &err))
        return qg_cmd_fail(cmd, "--from: %s", err.msg);
    if (d->to && qg_time_parse_arg(d->to, &to, &err)) return qg_cmd_fail(cmd, "--to: %s", err.msg);

    qg_progress_init(&prog, "loading", d->quiet);
    qg_load_opts opts = {
        .lenient = d->lenient, .progress = qg_progress_update, .progress_ud = &prog};
    qg_status rc = qg_bars_load_file(d->path, &opts, bars, &rep, &err);
    qg_progress_done(&prog);
    if (rc) return qg_cmd_fail(cmd, "%s", err.msg);
    if (rep.skipped) {
        fprintf(stderr, "quantgate %s: skipped %zu bad row%s of %zu (--lenient); first:\n", cmd,
                rep.skipped, rep.skipped == 1 ? "" : "s", rep.rows + rep.skipped);
        for (size_t i = 0; i < rep.n_reported; i++) fprintf(stderr, "  %s\n", rep.reported[i]);
    }
    if (tf && tf != bars->timeframe_ms) {
        qg_bars rs = {0};
        if (qg_bars_resample(bars, tf, &rs, &err)) return qg_cmd_fail(cmd, "%s", err.msg);
        qg_bars_free(bars);
        *bars = rs;
    }
    *view = qg_bars_between(bars, from, to);
    if (view->n == 0) return qg_cmd_fail(cmd, "no bars between --from and --to");
    return 0;
}
