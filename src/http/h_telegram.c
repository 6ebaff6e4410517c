/*
 * h_telegram.c - POST /api/telegram/command: the bot's webhook. Telegram
 * posts an Update here (setWebhook, docs/notify.md); commands from the
 * allowed chats are run and answered in the webhook reply itself:
 *
 *   200 {"method":"sendMessage","chat_id":<chat>,"text":"..."}
 *
 * which Telegram executes as a sendMessage call, so a reply costs no
 * outgoing request and needs no retry.
 *
 * Authentication is the route's own (it is open, QG_ROLE_NONE): when
 * QG_TELEGRAM_WEBHOOK_SECRET is set, the X-Telegram-Bot-Api-Secret-Token
 * header (the secret_token given to setWebhook) must equal it, compared
 * in constant time, or the answer is 403. Only chats in TELEGRAM_CHAT_ID or
 * QG_TELEGRAM_ALLOWED_CHATS are served; an update from any other chat, or
 * one that is not a command, gets 200 with an empty object (Telegram
 * would retry any other status) and nothing happens; other chats are
 * logged.
 *
 * Commands: /status (pipeline running or paused, queue, in flight, DLQ,
 * counters), /stats (win rate and expectancy, overall and per symbol, from
 * the recorded outcomes), /last [n] (the newest signals), /pause, /resume,
 * /help (also /start).
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include "signal/pipeline.h"
#include "signal/service.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TG_LAST_DEFAULT  5
#define TG_LAST_MAX      20
#define TG_STATS_SYMBOLS 25 /* per-symbol lines in /stats, most traded first */
#define TG_TEXT_MAX      4000

static const char tg_help[] = "quantgate bot commands:\n"
                              "/status - pipeline state, queue, dead letters, counters\n"
                              "/stats - win rate and expectancy, overall and by symbol\n"
                              "/last [n] - the newest n signals (default 5, at most 20)\n"
                              "/pause - stop processing (signals are still accepted and kept)\n"
                              "/resume - process again, kept signals first\n"
                              "/help - this list";

/* Constant-time comparison through fixed-size digests: neither the content
 * nor the length of the secret leaks through timing. */
static bool secret_ok(const char *want, const char *got)
{
    if (!got) return false;
    unsigned char a[crypto_generichash_BYTES], b[crypto_generichash_BYTES];
    crypto_generichash(a, sizeof a, (const unsigned char *)want, strlen(want), NULL, 0);
    crypto_generichash(b, sizeof b, (const unsigned char *)got, strlen(got), NULL, 0);
    return sodium_memcmp(a, b, sizeof a) == 0;
}

static bool chat_allowed(const qg_signals *s, long long chat)
{
    for (int i = 0; i < s->nallowed; i++)
        if (s->allowed_chats[i] == chat) return true;
    return false;
}

static void reply_text(qg_req *r, long long chat, const char *text)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "method", "sendMessage");
    cJSON_AddNumberToObject(body, "chat_id", (double)chat);
    cJSON_AddStringToObject(body, "text", text);
    qg_reply_json(r, 200, body);
}

/* ---- /status ---- */

static void cmd_status(qg_req *r, qg_signals *s, qg_buf *t)
{
    qg_pipeline_stats st;
    memset(&st, 0, sizeof st);
    qg_pipeline_get_stats(s->pipeline, &st);
    qg_buf_printf(t,
                  "Pipeline: %s\n"
                  "Queued: %zu\nIn flight: %zu\nDLQ: %zu\n\n"
                  "Received: %llu\nAccepted: %llu\nIgnored: %llu\nDuplicates: %llu\n"
                  "Rate limited: %llu\nFiltered: %llu\nAnalysed: %llu\nNotified: %llu\n"
                  "Done: %llu\nDeferred: %llu\nEscalated: %llu\nFailed: %llu\n"
                  "Notification targets: %zu",
                  qg_pipeline_paused(s->pipeline) ? "paused" : "running", st.queued, st.in_flight,
                  st.dlq, (unsigned long long)st.received, (unsigned long long)st.accepted,
                  (unsigned long long)st.ignored, (unsigned long long)st.duplicates,
                  (unsigned long long)st.rate_limited, (unsigned long long)st.filtered,
                  (unsigned long long)st.analysed, (unsigned long long)st.notified,
                  (unsigned long long)st.done, (unsigned long long)st.deferred,
                  (unsigned long long)st.escalated, (unsigned long long)st.failed,
                  qg_notify_targets(s->notify));
    (void)r;
}

/* ---- /stats ---- */

typedef struct stats_row {
    qg_buf *t;
    int n;
} stats_row;

/* One line: "<label>: N trades, W win / L loss / B breakeven, win rate X%,
 * expectancy P". */
static qg_status stats_line(void *ud, const qg_row *row)
{
    stats_row *sr = ud;
    const char *label = qg_row_is_null(row, 0) ? "All" : qg_row_text(row, 0);
    int64_t trades = qg_row_int(row, 1), wins = qg_row_int(row, 2), losses = qg_row_int(row, 3),
            be = qg_row_int(row, 4);
    if (trades == 0) return QG_OK;
    qg_buf_printf(sr->t, "%s: %lld trade%s, %lld win / %lld loss / %lld breakeven, win rate %.1f%%",
                  label, (long long)trades, trades == 1 ? "" : "s", (long long)wins,
                  (long long)losses, (long long)be, 100.0 * (double)wins / (double)trades);
    if (!qg_row_is_null(row, 5))
        qg_buf_printf(sr->t, ", expectancy %+.4g per trade", qg_row_double(row, 5));
    qg_buf_puts(sr->t, "\n");
    sr->n++;
    return QG_OK;
}

#define STATS_COLS                                                                                 \
    "COUNT(*), SUM(CASE WHEN outcome = 'win' THEN 1 ELSE 0 END), "                                 \
    "SUM(CASE WHEN outcome = 'loss' THEN 1 ELSE 0 END), "                                          \
    "SUM(CASE WHEN outcome = 'breakeven' THEN 1 ELSE 0 END), AVG(pnl)"

static bool cmd_stats(qg_req *r, qg_buf *t)
{
    qg_conn *db = qg_req_db(r);
    if (!db) return false;
    qg_error err = {0};
    stats_row sr = {.t = t};
    qg_buf_puts(t, "Outcomes (win rate = wins / trades; expectancy = mean pnl)\n");
    qg_status rc =
        qg_conn_query(db, "SELECT NULL, " STATS_COLS " FROM signals WHERE outcome IS NOT NULL",
                      NULL, 0, stats_line, &sr, &err);
    if (!rc && sr.n == 0) {
        qg_buf_puts(t, "No outcomes recorded yet (POST /api/signals/{id}/outcome).");
        return true;
    }
    if (!rc) {
        qg_buf_puts(t, "\nBy symbol:\n");
        qg_val p[1] = {QG_VINT(TG_STATS_SYMBOLS)};
        rc = qg_conn_query(db,
                           "SELECT symbol, " STATS_COLS " FROM signals WHERE outcome IS NOT NULL "
                           "GROUP BY symbol ORDER BY COUNT(*) DESC, symbol LIMIT ?",
                           p, 1, stats_line, &sr, &err);
    }
    if (rc) {
        qg_reply_status(r, rc, &err);
        return false;
    }
    return true;
}

/* ---- /last ---- */

static qg_status last_line(void *ud, const qg_row *row)
{
    stats_row *sr = ud;
    char when[40];
    qg_time_format_iso(qg_row_int(row, 0), when, sizeof when);
    qg_buf_printf(sr->t, "%s %s %s %s %s", when, qg_row_text(row, 1), qg_row_text(row, 2),
                  qg_row_text(row, 3), qg_row_text(row, 4));
    if (!qg_row_is_null(row, 5)) qg_buf_printf(sr->t, " score %.0f", qg_row_double(row, 5));
    if (!qg_row_is_null(row, 6)) qg_buf_printf(sr->t, " %s", qg_row_text(row, 6));
    qg_buf_puts(sr->t, "\n");
    sr->n++;
    return QG_OK;
}

static bool cmd_last(qg_req *r, const char *arg, qg_buf *t)
{
    long n = TG_LAST_DEFAULT;
    if (arg && *arg) {
        char *end = NULL;
        n = strtol(arg, &end, 10);
        while (end && isspace((unsigned char)*end)) end++;
        if (end == arg || (end && *end) || n < 1) {
            qg_buf_printf(t, "Usage: /last [n], n from 1 to %d", TG_LAST_MAX);
            return true;
        }
        if (n > TG_LAST_MAX) n = TG_LAST_MAX;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) return false;
    qg_error err = {0};
    stats_row sr = {.t = t};
    qg_val p[1] = {QG_VINT(n)};
    qg_status rc =
        qg_conn_query(db,
                      "SELECT received_at, symbol, timeframe, signal_type, state, score, "
                      "outcome FROM signals ORDER BY received_at DESC, id DESC LIMIT ?",
                      p, 1, last_line, &sr, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return false;
    }
    if (sr.n == 0) qg_buf_puts(t, "No signals yet.");
    return true;
}

/* ---- /pause, /resume ---- */

static void cmd_pause(qg_signals *s, bool pause, qg_buf *t)
{
    qg_error err = {0};
    if (qg_pipeline_set_paused(s->pipeline, pause, &err)) {
        qg_buf_printf(t, "Could not %s the pipeline: %s", pause ? "pause" : "resume", err.msg);
        return;
    }
    if (pause)
        qg_buf_puts(t, "Pipeline paused. Signals are still accepted and kept; /resume processes "
                       "them.");
    else
        qg_buf_puts(t, "Pipeline running.");
}

/* ---- the update ---- */

/* The message of an update: message, edited_message or channel_post. */
static const cJSON *update_message(const cJSON *u)
{
    static const char *const kinds[] = {"message", "edited_message", "channel_post"};
    for (size_t i = 0; i < 3; i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(u, kinds[i]);
        if (cJSON_IsObject(m)) return m;
    }
    return NULL;
}

void qg_h_telegram_command(qg_req *r)
{
    qg_signals *s = r->app->signals;
    if (!s || !s->pipeline) {
        qg_reply_error(r, 503, "unavailable", "signal alerts are not enabled on this server");
        return;
    }
    if (s->telegram_secret &&
        !secret_ok(s->telegram_secret, qg_req_header(r, "x-telegram-bot-api-secret-token"))) {
        qg_warn("telegram: update from %s without the webhook secret token", r->address);
        qg_reply_error(r, 403, "forbidden",
                       "X-Telegram-Bot-Api-Secret-Token is missing or does not match");
        return;
    }
    cJSON *u = qg_req_json(r);
    if (!u) return;
    const cJSON *m = update_message(u);
    const cJSON *chat = cJSON_GetObjectItemCaseSensitive(m, "chat");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(chat, "id");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
    if (!cJSON_IsNumber(id) || !cJSON_IsString(text) || text->valuestring[0] != '/') {
        /* Not a command (a photo, a join, plain text): nothing to do. */
        qg_reply_json(r, 200, cJSON_CreateObject());
        return;
    }
    long long chat_id = (long long)id->valuedouble;
    /* "/last@quantgate_bot 3": the command, the bot name in groups, args */
    const char *cmd = text->valuestring + 1;
    size_t cl = strcspn(cmd, "@ \t\n");
    const char *arg = cmd + strcspn(cmd, " \t\n");
    while (*arg && isspace((unsigned char)*arg)) arg++;
    char name[16];
    snprintf(name, sizeof name, "%.*s", (int)(cl < sizeof name - 1 ? cl : sizeof name - 1), cmd);
    for (char *p = name; *p; p++) *p = (char)tolower((unsigned char)*p);

    if (!chat_allowed(s, chat_id)) {
        qg_info("telegram: /%s from chat %lld ignored: the chat is not allowed "
                "(TELEGRAM_CHAT_ID, QG_TELEGRAM_ALLOWED_CHATS)",
                name, chat_id);
        qg_reply_json(r, 200, cJSON_CreateObject());
        return;
    }
    qg_info("telegram: /%s from chat %lld", name, chat_id);
    qg_buf t;
    qg_buf_init(&t, TG_TEXT_MAX);
    bool ok = true;
    if (strcmp(name, "status") == 0)
        cmd_status(r, s, &t);
    else if (strcmp(name, "stats") == 0)
        ok = cmd_stats(r, &t);
    else if (strcmp(name, "last") == 0)
        ok = cmd_last(r, arg, &t);
    else if (strcmp(name, "pause") == 0)
        cmd_pause(s, true, &t);
    else if (strcmp(name, "resume") == 0)
        cmd_pause(s, false, &t);
    else if (strcmp(name, "help") == 0 || strcmp(name, "start") == 0)
        qg_buf_puts(&t, tg_help);
    else
        qg_buf_printf(&t, "Unknown command /%s.\n\n%s", name, tg_help);
    if (ok) {
        /* the buffer stops at its cap: the reply is whatever fitted */
        while (t.len && t.data[t.len - 1] == '\n') t.data[--t.len] = '\0';
        reply_text(r, chat_id, t.len ? t.data : "(nothing)");
    }
    qg_buf_free(&t);
}
