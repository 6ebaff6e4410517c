/*
 * cmd_notify.c - `quantgate notify test [--text T]`: sends one message to
 * every notification target configured in the environment (the same
 * variables `serve` reads, docs/notify.md) with the server's retry policy,
 * and prints one line per delivery: channel, masked target, ok or failed,
 * attempts, the last HTTP status and the error. Exit status 1 when any
 * delivery failed or nothing is configured.
 */
#include "cmd/cmd.h"
#include "notify/notify.h"

#include <quantgate/time.h>

#include <stdio.h>
#include <string.h>

#define CMD "notify"

static void usage(FILE *out)
{
    fprintf(out, "usage: quantgate notify test [--text TEXT]\n\n"
                 "Sends a test message to every configured target (TELEGRAM_CHAT_ID with\n"
                 "TELEGRAM_BOT_TOKEN, QG_SLACK_WEBHOOK_URL, QG_DISCORD_WEBHOOK_URL,\n"
                 "QG_NOTIFY_WEBHOOK_URL) and prints one line per delivery:\n"
                 "  channel  target (masked)  ok|failed  attempts=N  http=STATUS  [error]\n"
                 "Exit status 1 when any delivery failed.\n");
}

int qg_cmd_notify(int argc, char **argv)
{
    static const char *const actions[] = {"test", NULL};
    int which = 0;
    int st = qg_args_action(argc, argv, CMD, actions, usage, &which);
    if (st >= 0) return st;
    const char *text = NULL;
    qg_args a = qg_args_begin(argc - 1, argv + 1);
    a.cmd = CMD;
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (qg_args_value(&a, "--text", &text)) continue;
        return qg_args_unknown(&a);
    }
    if (text && !*text) return qg_cmd_fail(CMD, "--text: empty; leave it out for the default");

    qg_notify_config cfg;
    qg_notify_config_from_env(&cfg);
    qg_notify *n = NULL;
    qg_error err = {0};
    if (qg_notify_new(&cfg, &n, &err)) return qg_cmd_fail(CMD, "%s", err.msg);
    if (qg_notify_targets(n) == 0) {
        qg_notify_free(n);
        return qg_cmd_fail(CMD, "no notification target is configured (TELEGRAM_CHAT_ID, "
                                "QG_SLACK_WEBHOOK_URL, QG_DISCORD_WEBHOOK_URL, "
                                "QG_NOTIFY_WEBHOOK_URL)");
    }
    char when[40], deftext[96];
    qg_time_format_iso(qg_time_now_ms(), when, sizeof when);
    snprintf(deftext, sizeof deftext, "quantgate test notification (%s)", when);
    qg_notify_msg m = {.text = text ? text : deftext};
    qg_delivery d[QG_NOTIFY_TARGETS_MAX];
    size_t nd = 0;
    qg_status rc = qg_notify_send(n, &m, NULL, NULL, NULL, d, &nd);
    int failed = 0;
    for (size_t i = 0; i < nd; i++) {
        if (!d[i].ok) failed++;
        printf("%-9s %-40s %-6s attempts=%d http=%d%s%s\n", d[i].channel, d[i].target,
               d[i].ok ? "ok" : "failed", d[i].attempts, d[i].http_status,
               d[i].ok ? "" : "  error: ", d[i].ok ? "" : d[i].error);
    }
    fflush(stdout);
    qg_notify_free(n);
    if (rc || failed) {
        fprintf(stderr, "quantgate notify: %d of %zu deliveries failed\n", failed, nd);
        return 1;
    }
    return 0;
}
