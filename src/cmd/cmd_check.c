/*
 * cmd_check.c - `quantgate check`: re-runs a strategy on the data cut at
 * many points and reports any decision that changes when later bars are
 * removed (which would mean it used them). Exit status 0 when clean, 1 when
 * look-ahead was found.
 */
#include "cmd/strategy_args.h"

#include <quantgate/pool.h>
#include <quantgate/time.h>

static void usage(void)
{
    printf("usage: quantgate check --data FILE --strategy NAME|SPEC.json [options]\n\n"
           "Proves the strategy makes no decision that uses later bars: runs it on the\n"
           "full data and on prefixes cut at many points, and compares every decision\n"
           "inside each prefix. Exit status 1 when a decision changed.\n\n"
           "options:\n%s"
           "  --cuts N              prefixes to try (default 50)\n"
           "  --threads N           threads (default: all cores)\n",
           QG_STRATEGY_OPTIONS_HELP);
}

static const char *action_or_none(int a)
{
    return a ? qg_action_name((qg_action)a) : "nothing";
}

int qg_cmd_check(int argc, char **argv)
{
    qg_strategy_args sa;
    qg_data_args d = {0};
    long long cuts = 50, threads = 0;
    const char *v;
    qg_strategy_args_init(&sa);
    qg_args a = qg_args_begin(argc, argv);
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help")) return usage(), 0;
        if (qg_strategy_args_match(&a, &sa) || qg_data_args_match(&a, &d)) continue;
        if (qg_args_value(&a, "--cuts", &v)) {
            cuts = qg_args_int(&a, "--cuts", v, 1, 100000);
            continue;
        }
        if (qg_args_value(&a, "--threads", &v)) {
            threads = qg_args_int(&a, "--threads", v, 1, 1024);
            continue;
        }
        return qg_args_unknown(&a);
    }
    qg_strategy s;
    qg_bars bars = {0}, view;
    int rc = qg_strategy_args_load("check", &sa, &s);
    if (rc) goto out;
    if ((rc = qg_strategy_data_load("check", &s, &d, &bars, &view))) goto out;
    qg_strategy_runner runner = {.strategy = &s, .cfg = sa.cfg};
    qg_check_report rep;
    qg_error err = {0};
    if (qg_lookahead_check(qg_strategy_decide, &runner, &view, (size_t)cuts, (int)threads, &rep,
                           &err)) {
        rc = qg_cmd_fail("check", "%s", err.msg);
        goto out;
    }
    char desc[256];
    qg_strategy_describe(&s, desc, sizeof desc);
    printf("strategy  %s\n", desc);
    printf("checked   %zu decisions on %zu bars against %zu cut points\n", rep.decisions, view.n,
           rep.cuts);
    if (rep.mismatches == 0) {
        printf("result    no look-ahead: every decision is the same when later bars are "
               "removed\n");
        goto out;
    }
    printf("result    LOOK-AHEAD: %zu decisions changed when later bars were removed\n",
           rep.mismatches);
    for (size_t i = 0; i < rep.n_reported; i++) {
        char when[40];
        qg_time_format_iso(view.ts[rep.reported[i].bar], when, sizeof when);
        printf("  bar %zu (%s), data cut after bar %zu: full run %s, cut run %s\n",
               rep.reported[i].bar, when, rep.reported[i].cut - 1,
               action_or_none(rep.reported[i].full), action_or_none(rep.reported[i].prefix));
    }
    rc = 1;
out:
    qg_bars_free(&bars);
    qg_strategy_args_free(&sa);
    return rc;
}
