/*
 * notify_int.h - what the notifier core (notify.c) and its backends
 * (telegram.c, slack.c, discord.c, webhook.c) share. Not for use outside
 * src/notify.
 *
 * A backend knows two things about its platform: how one message to one
 * target becomes an HTTP POST (URL and JSON body), and how a response is
 * judged (delivered, retry - with the server's retry_after when it gave
 * one - or final). Everything else (parallel transfers, retries, backoff,
 * masking, counters) is the core's, so the retry policy is the same for
 * every channel.
 */
#ifndef QG_NOTIFY_INT_H
#define QG_NOTIFY_INT_H

#include "notify/notify.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    QG_NCH_TELEGRAM = 0,
    QG_NCH_SLACK,
    QG_NCH_DISCORD,
    QG_NCH_WEBHOOK,
    QG_NCH__COUNT
} qg_notify_chan;

typedef enum { QG_NV_OK = 0, QG_NV_RETRY, QG_NV_FINAL } qg_notify_verdict_kind;

typedef struct qg_notify_verdict {
    qg_notify_verdict_kind kind;
    double retry_after_s; /* the server's wait for a 429, < 0 when it named none */
    char error[200];      /* why not OK; never a URL or a token */
} qg_notify_verdict;

typedef struct qg_notify_backend {
    const char *channel;
    /* Longest text the platform takes (Telegram counts UTF-16 code units,
     * Discord characters; both are capped here in UTF-16 units, which is
     * never more than the characters). */
    size_t max_text;
    /* Queued texts to one target may go out joined as one message (the
     * chat platforms; not the generic webhook, one signal per body). */
    bool merges;
    /* The body carries the message's `extra` object (the generic webhook's
     * "signal"); the others never read it. */
    bool reads_extra;
    /* Builds the POST for one message: *url and *body are heap strings the
     * caller frees. dest is the target (a chat id or a webhook URL); text is
     * already capped. */
    qg_status (*build)(const qg_notify *n, const char *dest, const char *text,
                       const qg_notify_msg *m, char **url, char **body);
    /* Judges a response (status > 0). body is NUL-terminated (may be cut
     * at the capture cap); retry_after is the Retry-After header or "". */
    void (*classify)(int status, const char *body, const char *retry_after, qg_notify_verdict *v);
} qg_notify_backend;

extern const qg_notify_backend qg_notify_telegram;
extern const qg_notify_backend qg_notify_slack;
extern const qg_notify_backend qg_notify_discord;
extern const qg_notify_backend qg_notify_webhook;

typedef struct qg_notify_target {
    qg_notify_chan chan;
    char *dest;      /* chat id or URL (owned; secret for URLs) */
    char masked[96]; /* what logs, errors and records show */
    char key[96];    /* qg_delivery.key */
} qg_notify_target;

typedef struct qg_notify_item qg_notify_item; /* one alert's text queued for one target */

/* A target's queue and the thread that sends it (notify.c, "Lanes"). */
typedef struct qg_notify_lane {
    struct qg_notify *n;
    size_t target;                     /* index in n->targets */
    pthread_mutex_t mu;                /* guards the queue */
    pthread_cond_t cv;                 /* an item arrived, or closing */
    qg_notify_item *head, *tail;       /* oldest first */
    size_t queued;                     /* items in the queue */
    int64_t swept_at;                  /* last scan for stopped items (ms, lane thread only) */
    CURLM *multi;                      /* the lane thread's handles: connections */
    CURL *easy[QG_NOTIFY_TARGETS_MAX]; /* stay alive between messages */
    pthread_t thread;
    bool started;
} qg_notify_lane;

struct qg_notify {
    char *tg_token;      /* NULL when unset (secret) */
    char *tg_api;        /* base URL without a trailing '/' */
    char *tg_parse_mode; /* NULL, "HTML" or "MarkdownV2" */
    qg_notify_target targets[QG_NOTIFY_TARGETS_MAX];
    size_t ntargets;
    int retries;
    int64_t retry_base_ms, retry_max_ms, retry_after_max_s, timeout_ms;
    int merge_max; /* QG_NOTIFY_MERGE_MAX; 1 = every alert its own message */

    atomic_bool closing;                         /* qg_notify_free: lanes finish and exit */
    qg_notify_lane lanes[QG_NOTIFY_TARGETS_MAX]; /* by target index */

    atomic_uint_fast64_t delivered[QG_NCH__COUNT], failed[QG_NCH__COUNT], attempts[QG_NCH__COUNT];
    atomic_uint_fast64_t merged[QG_NCH__COUNT]; /* alerts that shared a message */
};

/* ---- helpers shared by the backends (notify.c) ---- */

/* A heap copy of text cut to at most max UTF-16 code units (never inside
 * a UTF-8 sequence), ending in "…" when cut. */
char *qg_notify_cap_text(const char *text, size_t max);

/* Seconds from a Retry-After header ("5", "1.5"); -1 when absent or an
 * HTTP date (then the backoff applies). */
double qg_notify_parse_retry_after(const char *hdr);

/* The generic part of a verdict from the status alone: 2xx OK, 429 and
 * 5xx RETRY (retry_after from the header), other statuses FINAL; the
 * error is "HTTP <status>" plus detail when given (cut, one line). */
void qg_notify_verdict_from_status(int status, const char *retry_after, const char *detail,
                                   qg_notify_verdict *v);

/* The cJSON tree printed unformatted as a heap string (cJSON's allocator:
 * free with cJSON_free... which is free() here). Deletes root. */
char *qg_notify_print(cJSON *root);

#endif
