/*
 * notify.h - outgoing notifications: Telegram (Bot API sendMessage to
 * several chat ids), Slack and Discord (incoming webhooks) and a generic
 * JSON webhook, each a backend behind one function-pointer table (one file
 * per backend: telegram.c, slack.c, discord.c, webhook.c).
 *
 * A delivery is one message to one target (a Telegram chat id, a Slack or
 * Discord webhook URL, a generic URL). It is retried with exponential
 * backoff (base QG_NOTIFY_RETRY_BASE_MS, doubled per attempt, capped, with
 * jitter) up to QG_NOTIFY_RETRIES times on transport errors, 5xx and 429;
 * a 429 waits the server's retry_after (Telegram's
 * {"parameters":{"retry_after":N}} or a Retry-After header) instead of the
 * backoff, capped by QG_NOTIFY_RETRY_AFTER_MAX_S. Other 4xx are final.
 *
 * Each backend's base URL is configurable (QG_TELEGRAM_API_URL, default
 * https://api.telegram.org; the Slack, Discord and generic URLs are whole
 * webhook URLs), so tests point them at a local server speaking the same
 * wire format. Secrets (the bot token, webhook URLs) never appear in logs,
 * errors or the delivery records: targets are shown masked.
 *
 * Lanes and merging: each target has a queue and a thread that sends it
 * in order. A chat target (Telegram, Slack, Discord) has one message on
 * its way at a time; alerts that arrive meanwhile (while an answer is
 * pending or a 429 or 5xx waits to retry) go out joined in the next
 * message, up to the platform's length limit and QG_NOTIFY_MERGE_MAX
 * alerts each (default 20; 1 sends every alert on its own, in parallel).
 * Each alert still gets its own delivery record (its message's outcome).
 *
 * Threads: one qg_notify is shared. qg_notify_post returns at once and
 * calls back on a lane thread; qg_notify_send blocks the calling thread
 * until its alert is final. Both may run on many threads at once.
 */
#ifndef QG_NOTIFY_NOTIFY_H
#define QG_NOTIFY_NOTIFY_H

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qg_notify qg_notify;

#define QG_NOTIFY_TARGETS_MAX     32
#define QG_NOTIFY_MERGE_MAX_LIMIT 64 /* most alerts one message may carry */
#define QG_NOTIFY_MERGE_DEFAULT   20

typedef struct qg_notify_config {
    /* Telegram: TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID (comma-separated ids),
     * QG_TELEGRAM_API_URL, QG_TELEGRAM_PARSE_MODE ("" | "HTML" |
     * "MarkdownV2") */
    const char *telegram_token, *telegram_chats, *telegram_api_url, *telegram_parse_mode;
    /* QG_SLACK_WEBHOOK_URL, QG_DISCORD_WEBHOOK_URL, QG_NOTIFY_WEBHOOK_URL
     * (each may hold several URLs separated by commas) */
    const char *slack_urls, *discord_urls, *webhook_urls;
    int retries;               /* QG_NOTIFY_RETRIES, default 4 (attempts = retries + 1) */
    int64_t retry_base_ms;     /* QG_NOTIFY_RETRY_BASE_MS, default 500 */
    int64_t retry_max_ms;      /* cap of one backoff wait, default 30000 */
    int64_t retry_after_max_s; /* QG_NOTIFY_RETRY_AFTER_MAX_S, default 60 */
    int64_t timeout_ms;        /* QG_NOTIFY_TIMEOUT_MS per attempt, default 10000 */
    int merge_max; /* QG_NOTIFY_MERGE_MAX, 1..64 (1 = no merging); 0 = the default, 20 */
} qg_notify_config;

/* Reads the variables above through qg_config_str (NULL/"" = unset). */
void qg_notify_config_from_env(qg_notify_config *c);

/* Validates the configuration (URLs are http(s), chat ids are integers or
 * @channel names, parse mode known; errors name the variable and reason,
 * never the token) and builds the notifier. A notifier with no target is
 * valid: qg_notify_send then delivers nothing. The caller owns *out. */
qg_status qg_notify_new(const qg_notify_config *cfg, qg_notify **out, qg_error *err);
void qg_notify_free(qg_notify *n);

/* What is sent: the pipeline fills it from the signal and its analysis.
 * Every string may be NULL (omitted). */
typedef struct qg_notify_msg {
    const char *signal_id, *correlation_id;
    const char *symbol, *timeframe, *signal_type, *session;
    double confidence, score;
    const char *risk, *explanation;
    bool has_entry, has_exit, has_sl, has_tp;
    double entry, exit, sl, tp;
    const char *text;   /* when set, sent as is instead of the formatted alert */
    const cJSON *extra; /* generic webhook: merged into its JSON body as "signal" */
    /* what a set stop flag means, in the error of the sends it abandons
     * (NULL: "shutting down") */
    const char *stop_reason;
} qg_notify_msg;

/* The alert text every chat backend sends (plain text, one field per
 * line, like the Telegram alerts traders know); caller frees. */
char *qg_notify_format(const qg_notify_msg *m);

typedef struct qg_delivery {
    char channel[16]; /* "telegram", "slack", "discord", "webhook" */
    char target[96];  /* masked: chat id, or scheme://host/…last 4 */
    char key[96];     /* an unmasked stable key of the target (sha-256 prefix of the
                         URL or the chat id) for "already delivered" checks */
    bool ok;
    int attempts;
    int http_status; /* the last response's status, 0 when none */
    char error[256]; /* "" when ok */
    int64_t at_ms;
} qg_delivery;

/* Number of targets across channels. */
size_t qg_notify_targets(const qg_notify *n);

/* Whether any target sends qg_notify_msg.extra (a generic webhook does),
 * so a caller can skip building it when none does. */
bool qg_notify_reads_extra(const qg_notify *n);

/* Optional hook before each target: return false to skip it (the pipeline
 * skips targets already delivered before a restart). */
typedef bool (*qg_notify_want_fn)(void *ud, const char *channel, const char *key);

/* Called once an alert is final for every target it went to: d[0..n) is
 * one record per target tried (n = 0 when none was wanted), valid only
 * during the call. Runs on a lane thread (or on the posting thread when
 * no target is wanted); it must not wait for the notifier. */
typedef void (*qg_notify_done_fn)(void *ud, const qg_delivery *d, size_t n);

/* Queues m for every wanted target (want is called now, on this thread)
 * and returns; done(done_ud, ...) follows. m is copied: the caller may
 * free it on return. `stop` (may be NULL; must outlive the post) set to
 * true fails the alert where it still queues, and abandons a message on
 * its way when every alert in it was stopped ("shutting down", or
 * m->stop_reason, in the errors). */
qg_status qg_notify_post(qg_notify *n, const qg_notify_msg *m, qg_notify_want_fn want, void *ud,
                         atomic_bool *stop, qg_notify_done_fn done, void *done_ud);

/* qg_notify_post that waits for the outcome: fills out[0..*n_out) (cap
 * QG_NOTIFY_TARGETS_MAX) with one record per target tried. Returns QG_OK
 * when every tried target was delivered, QG_EIO when at least one
 * failed. */
qg_status qg_notify_send(qg_notify *n, const qg_notify_msg *m, qg_notify_want_fn want, void *ud,
                         atomic_bool *stop, qg_delivery *out, size_t *n_out);

/* Sends one Telegram text to one chat (the /api/telegram/command replies
 * when not answered in the webhook body); same retries. */
qg_status qg_notify_telegram_text(qg_notify *n, const char *chat_id, const char *text,
                                  qg_delivery *out);

/* Counters for /metrics: quantgate_notify_deliveries_total{channel,result}
 * (one per alert and target), quantgate_notify_attempts_total{channel}
 * (HTTP requests), quantgate_notify_merged_total{channel} (alerts that
 * went out in a message with others) and quantgate_notify_queued (alerts
 * waiting on the lanes). */
qg_status qg_notify_render_metrics(qg_notify *n, qg_buf *out);

#endif
