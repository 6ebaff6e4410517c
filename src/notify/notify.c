/*
 * notify.c - the notifier core: configuration, targets, the alert text,
 * and delivery with retries, one lane per target.
 *
 * Lanes: every target has a queue and a thread of its own (qg-notify).
 * qg_notify_post puts an alert's text on the lane of each wanted target
 * and returns; the lane's thread sends the queue oldest first, one batch
 * at a time, through its own curl multi handle (so connections stay
 * alive between messages), and the last target to finish an alert hands
 * its records to the poster's callback. qg_notify_send is a post and a
 * wait for that callback. A batch's transfers are small state machines
 * (waiting until next_at -> in flight -> done or waiting again); the
 * thread sleeps in curl_multi_poll until a transfer progresses or the
 * next retry is due, waking at least every QG_NOTIFY_TICK_MS to notice
 * stopped callers. Backoff is base * 2^(attempt-1), capped at
 * retry_max_ms, with "equal jitter" (half fixed, half random) so the
 * lanes retrying after one outage do not hit the receiver in lockstep. A
 * 429's retry_after replaces the backoff (capped at retry_after_max_s).
 *
 * Merging: a chat target (Telegram, Slack, Discord) has one message on
 * its way at a time, retries included. An alert for an idle chat goes
 * out at once, alone; the alerts that arrive while a message is on its
 * way (an answer pending, a 429's retry_after, a 5xx's backoff) queue,
 * and the next message carries as many of them as fit the platform's
 * length limit and QG_NOTIFY_MERGE_MAX, joined by a blank line. Each
 * alert's record is its message's outcome. So a chat receives its alerts
 * in order, a quiet chat gets each at once and a busy one gets them
 * batched (group commit for messages: no timer, a batch is what queued
 * during one round trip), and a slow or limited chat never holds the
 * caller's thread. The generic webhook carries one signal object per
 * request, so it never merges: its lane sends up to QG_NOTIFY_TARGETS_MAX
 * queued alerts in parallel, as does every lane when merging is off.
 *
 * Stopping: a caller's stop flag fails its alerts still queued (within a
 * tick) and abandons a message on its way once every caller whose alert
 * it carries stopped; qg_notify_free abandons everything ("shutting
 * down") and joins the lanes, so every callback has run when it returns.
 *
 * Secrets: the bot token and the webhook URLs exist only in the target
 * table and in the URL handed to curl; targets are shown masked, errors are
 * built from statuses, curl's code names and the platforms' descriptions,
 * and every error is scrubbed of the token and URLs before it is kept.
 */
#include "notify/notify_int.h"

#include <quantgate/config.h>
#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QG_NOTIFY_TICK_MS    100
#define QG_NOTIFY_RESP_MAX   (64 << 10) /* response bytes kept for classify */
#define QG_NOTIFY_CONNECT_MS 10000

static const qg_notify_backend *const backends[QG_NCH__COUNT] = {
    [QG_NCH_TELEGRAM] = &qg_notify_telegram,
    [QG_NCH_SLACK] = &qg_notify_slack,
    [QG_NCH_DISCORD] = &qg_notify_discord,
    [QG_NCH_WEBHOOK] = &qg_notify_webhook,
};

/* ---------------------------------------------------------------- config */

static const char *env_or_null(const char *name)
{
    const char *v = qg_config_str(name, NULL);
    return v && *v ? v : NULL;
}

static int64_t env_int(const char *name, int64_t def)
{
    int64_t v = def;
    if (qg_config_int(name, def, &v, NULL) != QG_OK) return def;
    return v;
}

void qg_notify_config_from_env(qg_notify_config *c)
{
    memset(c, 0, sizeof *c);
    c->telegram_token = env_or_null("TELEGRAM_BOT_TOKEN");
    c->telegram_chats = env_or_null("TELEGRAM_CHAT_ID");
    c->telegram_api_url = env_or_null("QG_TELEGRAM_API_URL");
    c->telegram_parse_mode = env_or_null("QG_TELEGRAM_PARSE_MODE");
    c->slack_urls = env_or_null("QG_SLACK_WEBHOOK_URL");
    c->discord_urls = env_or_null("QG_DISCORD_WEBHOOK_URL");
    c->webhook_urls = env_or_null("QG_NOTIFY_WEBHOOK_URL");
    c->retries = (int)env_int("QG_NOTIFY_RETRIES", 4);
    c->retry_base_ms = env_int("QG_NOTIFY_RETRY_BASE_MS", 500);
    c->retry_max_ms = env_int("QG_NOTIFY_RETRY_MAX_MS", 30000);
    c->retry_after_max_s = env_int("QG_NOTIFY_RETRY_AFTER_MAX_S", 60);
    c->timeout_ms = env_int("QG_NOTIFY_TIMEOUT_MS", 10000);
    c->merge_max = (int)env_int("QG_NOTIFY_MERGE_MAX", QG_NOTIFY_MERGE_DEFAULT);
}

/* http:// or https:// followed by a host. */
static bool url_ok(const char *u)
{
    const char *h = NULL;
    if (strncmp(u, "https://", 8) == 0)
        h = u + 8;
    else if (strncmp(u, "http://", 7) == 0)
        h = u + 7;
    if (!h || !*h || *h == '/' || *h == ':') return false;
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\\') return false;
    return true;
}

/* An integer (optionally negative: groups) or an @channel name. */
static bool chat_ok(const char *s)
{
    if (*s == '@') {
        if (!s[1] || strlen(s) > 64) return false;
        for (const char *p = s + 1; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_') return false;
        return true;
    }
    if (*s == '-') s++;
    if (!*s || strlen(s) > 20) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

/* Bot tokens go into a URL path: "<digits>:<[A-Za-z0-9_-]>". */
static bool token_ok(const char *t)
{
    const char *colon = strchr(t, ':');
    if (!colon || colon == t || !colon[1] || strlen(t) > 128) return false;
    for (const char *p = t; p < colon; p++)
        if (!isdigit((unsigned char)*p)) return false;
    for (const char *p = colon + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') return false;
    return true;
}

/* "scheme://host/…last4": enough to tell two webhooks apart, never
 * enough to use one. */
static void mask_url(const char *url, char *out, size_t cap)
{
    const char *sep = strstr(url, "://");
    const char *h = sep ? sep + 3 : url;
    size_t hl = strcspn(h, "/?#");
    const char *at = memchr(h, '@', hl); /* never show user:password@ */
    if (at) {
        hl -= (size_t)(at + 1 - h);
        h = at + 1;
    }
    if (hl > 60) hl = 60;
    size_t n = strlen(url);
    bool rest = h + hl < url + n;
    snprintf(out, cap, "%.*s%.*s%s%s", sep ? (int)(sep + 3 - url) : 0, url, (int)hl, h,
             rest ? "/\xE2\x80\xA6" : "", rest && n >= 4 ? url + n - 4 : "");
}

static void url_key(const char *url, char *out, size_t cap)
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)url, strlen(url));
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, d, 16);
    snprintf(out, cap, "sha256:%s", hex);
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    size_t i = 0;
    while (isspace((unsigned char)s[i])) i++;
    if (i) memmove(s, s + i, n - i + 1);
}

/* Adds one target per comma-separated entry of list. */
static qg_status add_targets(qg_notify *n, qg_notify_chan ch, const char *var, const char *list,
                             qg_error *err)
{
    if (!list) return QG_OK;
    char *copy = qg_xstrdup(list);
    qg_status rc = QG_OK;
    int idx = 0;
    for (char *save = NULL, *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        trim(e);
        idx++;
        if (!*e) continue;
        if (ch == QG_NCH_TELEGRAM ? !chat_ok(e) : !url_ok(e)) {
            /* A chat id is not a secret; a webhook URL is, so it is not echoed. */
            if (ch == QG_NCH_TELEGRAM)
                rc = qg_error_set(err, QG_EINVAL,
                                  "%s: '%.40s' is not a chat id (an integer or an @channel name)",
                                  var, e);
            else
                rc = qg_error_set(err, QG_EINVAL, "%s: entry %d is not an http(s) URL", var, idx);
            goto out;
        }
        if (n->ntargets >= QG_NOTIFY_TARGETS_MAX) {
            rc = qg_error_set(err, QG_ERANGE, "%s: more than %d notification targets in all", var,
                              QG_NOTIFY_TARGETS_MAX);
            goto out;
        }
        qg_notify_target *t = &n->targets[n->ntargets++];
        t->chan = ch;
        t->dest = qg_xstrdup(e);
        if (ch == QG_NCH_TELEGRAM) {
            snprintf(t->masked, sizeof t->masked, "%s", e);
            snprintf(t->key, sizeof t->key, "%s", e);
        } else {
            mask_url(e, t->masked, sizeof t->masked);
            url_key(e, t->key, sizeof t->key);
        }
    }
out:
    free(copy);
    return rc;
}

static qg_status lanes_start(qg_notify *n, qg_error *err);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

qg_status qg_notify_new(const qg_notify_config *cfg, qg_notify **out, qg_error *err)
{
    *out = NULL;
    qg_status rc = QG_OK;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return qg_error_set(err, QG_EINTERNAL, "notify: curl_global_init failed");
    if (sodium_init() < 0) return qg_error_set(err, QG_EINTERNAL, "notify: sodium_init failed");

    qg_notify *n = qg_xcalloc(1, sizeof *n);
    n->merge_max = cfg->merge_max ? cfg->merge_max : QG_NOTIFY_MERGE_DEFAULT;
    n->retries = cfg->retries;
    n->retry_base_ms = cfg->retry_base_ms;
    n->retry_max_ms = cfg->retry_max_ms;
    n->retry_after_max_s = cfg->retry_after_max_s;
    n->timeout_ms = cfg->timeout_ms;
    if (n->retries < 0 || n->retries > 20) {
        rc = qg_error_set(err, QG_EINVAL, "QG_NOTIFY_RETRIES: %d is out of range (0..20)",
                          n->retries);
        goto out;
    }
    if (n->retry_base_ms < 1 || n->retry_max_ms < n->retry_base_ms) {
        rc = qg_error_set(err, QG_EINVAL,
                          "QG_NOTIFY_RETRY_BASE_MS: must be at least 1 ms and at most the "
                          "backoff cap (%lld ms)",
                          (long long)n->retry_max_ms);
        goto out;
    }
    if (n->retry_after_max_s < 0) {
        rc = qg_error_set(err, QG_EINVAL, "QG_NOTIFY_RETRY_AFTER_MAX_S: must not be negative");
        goto out;
    }
    if (n->merge_max < 1 || n->merge_max > QG_NOTIFY_MERGE_MAX_LIMIT) {
        rc = qg_error_set(err, QG_EINVAL,
                          "QG_NOTIFY_MERGE_MAX: %d is out of range (1..%d; 1 sends every alert "
                          "on its own)",
                          n->merge_max, QG_NOTIFY_MERGE_MAX_LIMIT);
        goto out;
    }
    if (n->timeout_ms < 100) {
        rc = qg_error_set(err, QG_EINVAL, "QG_NOTIFY_TIMEOUT_MS: must be at least 100 ms");
        goto out;
    }

    const char *api = cfg->telegram_api_url && *cfg->telegram_api_url ? cfg->telegram_api_url
                                                                      : "https://api.telegram.org";
    if (!url_ok(api)) {
        rc = qg_error_set(err, QG_EINVAL, "QG_TELEGRAM_API_URL: not an http(s) URL");
        goto out;
    }
    n->tg_api = qg_xstrdup(api);
    for (size_t l = strlen(n->tg_api); l > 0 && n->tg_api[l - 1] == '/'; l--)
        n->tg_api[l - 1] = '\0';

    const char *pm = cfg->telegram_parse_mode;
    if (pm && *pm) {
        if (strcmp(pm, "HTML") != 0 && strcmp(pm, "MarkdownV2") != 0) {
            rc = qg_error_set(err, QG_EINVAL,
                              "QG_TELEGRAM_PARSE_MODE: '%.20s' is not one of HTML, MarkdownV2 "
                              "(or empty for plain text)",
                              pm);
            goto out;
        }
        n->tg_parse_mode = qg_xstrdup(pm);
    }
    if (cfg->telegram_token && *cfg->telegram_token) {
        if (!token_ok(cfg->telegram_token)) {
            rc = qg_error_set(err, QG_EINVAL,
                              "TELEGRAM_BOT_TOKEN: not a bot token (<bot id>:<secret> as "
                              "BotFather gives it)");
            goto out;
        }
        n->tg_token = qg_xstrdup(cfg->telegram_token);
    }
    bool chats = false;
    for (const char *p = cfg->telegram_chats; p && *p; p++)
        if (!isspace((unsigned char)*p) && *p != ',') chats = true;
    if (chats && !n->tg_token) {
        rc = qg_error_set(err, QG_EINVAL, "TELEGRAM_CHAT_ID: set, but TELEGRAM_BOT_TOKEN is not");
        goto out;
    }
    if ((rc = add_targets(n, QG_NCH_TELEGRAM, "TELEGRAM_CHAT_ID", cfg->telegram_chats, err)) ||
        (rc = add_targets(n, QG_NCH_SLACK, "QG_SLACK_WEBHOOK_URL", cfg->slack_urls, err)) ||
        (rc = add_targets(n, QG_NCH_DISCORD, "QG_DISCORD_WEBHOOK_URL", cfg->discord_urls, err)) ||
        (rc = add_targets(n, QG_NCH_WEBHOOK, "QG_NOTIFY_WEBHOOK_URL", cfg->webhook_urls, err)))
        goto out;
    rc = lanes_start(n, err);
out:
    if (rc) {
        qg_notify_free(n);
        return rc;
    }
    *out = n;
    return QG_OK;
}

size_t qg_notify_targets(const qg_notify *n)
{
    return n ? n->ntargets : 0;
}

bool qg_notify_reads_extra(const qg_notify *n)
{
    for (size_t i = 0; n && i < n->ntargets; i++)
        if (backends[n->targets[i].chan]->reads_extra) return true;
    return false;
}

/* --------------------------------------------------------------- helpers */

char *qg_notify_print(cJSON *root)
{
    char *s = qg_json_compact(root);
    cJSON_Delete(root);
    return s ? s : qg_xstrdup("{}");
}

/* qg_notify_cap_text that also gives the result's length in UTF-16 units. */
static char *cap_text_units(const char *text, size_t max, size_t *units_out)
{
    size_t units = 0, i = 0, cut = 0, cut_units = 0;
    const unsigned char *s = (const unsigned char *)text;
    /* Walk whole UTF-8 sequences, counting UTF-16 units; remember the last
     * boundary that still leaves room for the 1-unit ellipsis. */
    while (s[i]) {
        size_t len = s[i] < 0x80 ? 1 : s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : s[i] >= 0xC0 ? 2 : 1;
        size_t u = len == 4 ? 2 : 1;
        for (size_t k = 1; k < len; k++)
            if (!s[i + k]) len = k; /* a truncated sequence ends the text */
        if (units + u <= (max ? max - 1 : 0)) cut = i + len, cut_units = units + u;
        units += u;
        i += len;
    }
    if (units <= max) {
        *units_out = units;
        return qg_xstrdup(text);
    }
    char *out = qg_xmalloc(cut + 4);
    memcpy(out, text, cut);
    memcpy(out + cut, "\xE2\x80\xA6", 4); /* "…" and the NUL */
    *units_out = cut_units + 1;
    return out;
}

char *qg_notify_cap_text(const char *text, size_t max)
{
    size_t units;
    return cap_text_units(text, max, &units);
}

double qg_notify_parse_retry_after(const char *hdr)
{
    if (!hdr || !*hdr) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(hdr, &end);
    while (end && isspace((unsigned char)*end)) end++;
    if (errno || end == hdr || (end && *end) || !(v >= 0) || !isfinite(v)) return -1;
    return v;
}

void qg_notify_verdict_from_status(int status, const char *retry_after, const char *detail,
                                   qg_notify_verdict *v)
{
    v->retry_after_s = -1;
    if (status >= 200 && status < 300) {
        v->kind = QG_NV_OK;
        v->error[0] = '\0';
        return;
    }
    v->kind = (status == 429 || status >= 500) ? QG_NV_RETRY : QG_NV_FINAL;
    if (status == 429) v->retry_after_s = qg_notify_parse_retry_after(retry_after);
    if (detail && *detail) {
        int n = snprintf(v->error, sizeof v->error, "HTTP %d: %.150s", status, detail);
        /* one line */
        for (int i = 0; i < n && i < (int)sizeof v->error && v->error[i]; i++)
            if (v->error[i] == '\n' || v->error[i] == '\r') v->error[i] = ' ';
    } else {
        snprintf(v->error, sizeof v->error, "HTTP %d", status);
    }
}

/* Replaces every occurrence of needle (when at least 6 characters long) in
 * s with "****". */
static void scrub_one(char *s, size_t cap, const char *needle)
{
    size_t nl = needle ? strlen(needle) : 0;
    if (nl < 6) return;
    for (char *p = strstr(s, needle); p; p = strstr(p, needle)) {
        size_t tail = strlen(p + nl);
        if (4 + tail + (size_t)(p - s) + 1 > cap) tail = cap - (size_t)(p - s) - 5;
        memmove(p + 4, p + nl, tail);
        p[4 + tail] = '\0';
        memcpy(p, "****", 4);
        p += 4;
    }
}

/* Belt and braces: nothing the platforms or curl said may carry a secret
 * into a record or a log line. */
static void scrub(const qg_notify *n, char *s, size_t cap)
{
    scrub_one(s, cap, n->tg_token);
    for (size_t i = 0; i < n->ntargets; i++)
        if (n->targets[i].chan != QG_NCH_TELEGRAM) scrub_one(s, cap, n->targets[i].dest);
}

static const char *fmt_num(char *buf, size_t cap, double v)
{
    snprintf(buf, cap, "%.10g", v);
    return buf;
}

/* label, value, newline: most of an alert, without printf (whose %s
 * copies a byte at a time; the explanation is hundreds of them). */
static void put_field(qg_buf *b, const char *label, const char *value)
{
    (void)qg_buf_puts(b, label);
    (void)qg_buf_puts(b, value);
    (void)qg_buf_puts(b, "\n");
}

char *qg_notify_format(const qg_notify_msg *m)
{
    if (m->text) return qg_xstrdup(m->text);
    qg_buf b;
    qg_buf_init(&b, (size_t)64 << 10);
    char x[64];
    qg_buf_puts(&b, "\xF0\x9F\x8E\xAF TRADING ALERT\n"); /* 🎯 */
    if (m->symbol) put_field(&b, "Symbol: ", m->symbol);
    if (m->timeframe) put_field(&b, "Timeframe: ", m->timeframe);
    if (m->signal_type) put_field(&b, "Signal: ", m->signal_type);
    qg_buf_printf(&b, "Confidence: %s%%\n", fmt_num(x, sizeof x, m->confidence));
    if (m->session) put_field(&b, "Session: ", m->session);
    qg_buf_puts(&b, "\n\xF0\x9F\x93\x8A AI Analysis:\n"); /* 📊 */
    qg_buf_printf(&b, "Score: %s/100\n", fmt_num(x, sizeof x, m->score));
    if (m->risk) put_field(&b, "Risk: ", m->risk);
    if (m->has_entry) put_field(&b, "Entry: ", fmt_num(x, sizeof x, m->entry));
    if (m->has_exit) put_field(&b, "Exit: ", fmt_num(x, sizeof x, m->exit));
    if (m->has_sl) put_field(&b, "SL: ", fmt_num(x, sizeof x, m->sl));
    if (m->has_tp) put_field(&b, "TP: ", fmt_num(x, sizeof x, m->tp));
    if (m->explanation && *m->explanation)
        put_field(&b, "\n\xF0\x9F\x92\xA1 ", m->explanation); /* 💡 */
    if (m->signal_id) put_field(&b, "\nid: ", m->signal_id);
    /* No trailing newline: chats show it as an empty line. */
    while (b.len && b.data[b.len - 1] == '\n') b.data[--b.len] = '\0';
    char *out = qg_xstrdup(b.len ? b.data : "");
    qg_buf_free(&b);
    return out;
}

/* ------------------------------------------------------------- delivery */

/* One alert's text for one target, queued on the target's lane. */
struct qg_notify_item {
    qg_notify_item *next;
    struct post_state *post;
    qg_delivery *rec; /* the post's record for this target */
    size_t target;    /* index in n->targets */
    char *text;       /* merging targets: capped for the backend (owned) */
    size_t units;     /* its length in UTF-16 units */
    char *url, *body; /* other targets: the POST, built when posted (owned) */
    const char *build_error;
};

/* One qg_notify_post's state: its records, and what to call when all are final. */
typedef struct post_state {
    atomic_bool *stop; /* the caller's (may be NULL) */
    char why_stop[128];
    qg_notify_done_fn done;
    void *done_ud;
    atomic_size_t left; /* items not yet final */
    size_t nrec;
    qg_delivery *rec;     /* [nrec], in the same allocation */
    qg_notify_item *item; /* [nrec], likewise */
} post_state;

/* Frees a built request; the URL may hold the bot token. */
static void free_request(char **url, char **body)
{
    if (*url) sodium_memzero(*url, strlen(*url));
    free(*url);
    free(*body);
    *url = *body = NULL;
}

static bool post_stopped(const post_state *p)
{
    return p->stop && atomic_load(p->stop);
}

/* The item's record is final: frees what it owned, and the last item of a
 * post hands the records to the post's callback. */
static void item_done(qg_notify_item *it)
{
    free(it->text);
    it->text = NULL;
    free_request(&it->url, &it->body);
    post_state *p = it->post;
    if (atomic_fetch_sub(&p->left, 1) != 1) return;
    p->done(p->done_ud, p->rec, p->nrec);
    free(p);
}

/* A queued item that never went out (its caller stopped, or the notifier
 * is closing). */
static void item_abandon(qg_notify *n, qg_notify_item *it, const char *why)
{
    snprintf(it->rec->error, sizeof it->rec->error, "%s", why);
    it->rec->at_ms = qg_time_now_ms();
    atomic_fetch_add(&n->failed[n->targets[it->target].chan], 1);
    item_done(it);
}

typedef struct job {
    qg_notify_chan chan;
    char *url, *body;
    CURL *easy;
    qg_buf resp;
    char retry_after[64];
    bool in_flight, done;
    int64_t next_at;
    size_t alerts; /* alerts this message carries (merged ones), for the counters */
    qg_notify_item **items;
    size_t nitems;
    qg_delivery *rec;
} job;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    job *j = ud;
    size_t n = size * nmemb;
    /* Past the cap the rest is dropped, not an error: classify needs only
     * the start, and the transfer should finish normally. */
    if (j->resp.len < QG_NOTIFY_RESP_MAX) {
        size_t room = QG_NOTIFY_RESP_MAX - j->resp.len;
        qg_buf_append(&j->resp, p, n < room ? n : room);
    }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    job *j = ud;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
        size_t i = sizeof name - 1;
        while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
        size_t e = n;
        while (e > i && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' ')) e--;
        size_t l = e - i < sizeof j->retry_after - 1 ? e - i : sizeof j->retry_after - 1;
        memcpy(j->retry_after, p + i, l);
        j->retry_after[l] = '\0';
    }
    return n;
}

static int64_t backoff_ms(const qg_notify *n, int attempt)
{
    int64_t d = n->retry_base_ms;
    for (int i = 1; i < attempt && d < n->retry_max_ms; i++) d *= 2;
    if (d > n->retry_max_ms) d = n->retry_max_ms;
    int64_t half = d / 2;
    return d - half + (half > 0 ? (int64_t)randombytes_uniform((uint32_t)(half + 1)) : 0);
}

static void job_start(qg_notify *n, CURLM *multi, struct curl_slist *hdrs, job *j)
{
    qg_buf_reset(&j->resp);
    j->retry_after[0] = '\0';
    CURL *e = j->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)n->timeout_ms);
    curl_easy_setopt(
        e, CURLOPT_CONNECTTIMEOUT_MS,
        (long)(n->timeout_ms < QG_NOTIFY_CONNECT_MS ? n->timeout_ms : QG_NOTIFY_CONNECT_MS));
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "quantgate-notify/1");
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    j->rec->attempts++;
    atomic_fetch_add(&n->attempts[j->chan], 1);
    j->in_flight = true;
    curl_multi_add_handle(multi, e);
}

static void job_finish(qg_notify *n, job *j, bool ok, const char *error)
{
    j->done = true;
    j->rec->ok = ok;
    j->rec->at_ms = qg_time_now_ms();
    if (j->alerts > 1) atomic_fetch_add(&n->merged[j->chan], j->alerts);
    if (ok) {
        j->rec->error[0] = '\0';
        atomic_fetch_add(&n->delivered[j->chan], j->alerts);
        return;
    }
    snprintf(j->rec->error, sizeof j->rec->error, "%s", error);
    scrub(n, j->rec->error, sizeof j->rec->error);
    atomic_fetch_add(&n->failed[j->chan], j->alerts);
    qg_warn("notify: %s %s failed after %d attempt(s): %s", j->rec->channel, j->rec->target,
            j->rec->attempts, j->rec->error);
}

/* A transfer ended: judge it and finish the job or schedule its retry. */
static void job_done(qg_notify *n, job *j, CURLcode res)
{
    j->in_flight = false;
    qg_notify_verdict v = {.kind = QG_NV_RETRY, .retry_after_s = -1};
    long status = 0;
    if (res == CURLE_OK) {
        curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
        j->rec->http_status = (int)status;
        backends[j->chan]->classify((int)status, j->resp.len ? j->resp.data : "", j->retry_after,
                                    &v);
    } else {
        /* curl's code name, not its error buffer: the buffer can name the URL. */
        snprintf(v.error, sizeof v.error, "transport: %s", curl_easy_strerror(res));
    }
    if (v.kind == QG_NV_OK) {
        job_finish(n, j, true, NULL);
        return;
    }
    if (v.kind == QG_NV_FINAL || j->rec->attempts > n->retries) {
        job_finish(n, j, false, v.error);
        return;
    }
    int64_t wait;
    if (v.retry_after_s >= 0) {
        double s = v.retry_after_s < (double)n->retry_after_max_s ? v.retry_after_s
                                                                  : (double)n->retry_after_max_s;
        wait = (int64_t)ceil(s * 1000.0);
    } else {
        wait = backoff_ms(n, j->rec->attempts);
    }
    j->next_at = qg_time_now_ms() + wait;
    /* Kept so a final "shutting down" still says what went wrong. */
    snprintf(j->rec->error, sizeof j->rec->error, "%s", v.error);
    scrub(n, j->rec->error, sizeof j->rec->error);
    qg_debug("notify: %s %s attempt %d: %s; retrying in %lld ms", j->rec->channel, j->rec->target,
             j->rec->attempts, j->rec->error, (long long)wait);
}

static void record_init(qg_delivery *d, const qg_notify_target *t)
{
    memset(d, 0, sizeof *d);
    snprintf(d->channel, sizeof d->channel, "%s", backends[t->chan]->channel);
    snprintf(d->target, sizeof d->target, "%s", t->masked);
    snprintf(d->key, sizeof d->key, "%s", t->key);
}

/* One message to one target for run_jobs. */
typedef struct send_item {
    const qg_notify_target *t;
    char *url, *body;        /* the POST (run_jobs frees them); url NULL when building failed */
    const char *build_error; /* why url is NULL */
    size_t alerts;           /* alerts merged into it (1 when alone) */
    qg_notify_item **items;  /* the queued alerts it carries; none for a direct send */
    size_t nitems;
    qg_delivery *rec; /* filled with the outcome */
} send_item;

/* Why a job must be abandoned now, or NULL: the notifier is closing, or
 * every caller whose alert it carries stopped. */
static const char *job_stop_reason(const qg_notify *n, const job *j)
{
    if (atomic_load(&n->closing)) return "shutting down";
    if (!j->nitems) return NULL;
    for (size_t i = 0; i < j->nitems; i++)
        if (!post_stopped(j->items[i]->post)) return NULL;
    return j->items[0]->post->why_stop;
}

static void lane_sweep(qg_notify_lane *l);

/* Runs items[0..nj) to the end, in parallel, on the handles given (made
 * when NULL). A job is abandoned when job_stop_reason says so; lane (may
 * be NULL) is swept for stopped callers every QG_NOTIFY_TICK_MS meanwhile. */
static void run_jobs(qg_notify *n, CURLM *multi, CURL **easy, send_item *items, size_t nj,
                     qg_notify_lane *lane)
{
    job jobs[QG_NOTIFY_TARGETS_MAX];
    memset(jobs, 0, sizeof jobs);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    size_t pending = 0;
    int64_t now = qg_time_now_ms();

    for (size_t i = 0; i < nj; i++) {
        job *j = &jobs[i];
        j->chan = items[i].t->chan;
        j->alerts = items[i].alerts;
        j->items = items[i].items;
        j->nitems = items[i].nitems;
        j->rec = items[i].rec;
        j->url = items[i].url;
        j->body = items[i].body;
        record_init(j->rec, items[i].t);
        qg_buf_init(&j->resp, QG_NOTIFY_RESP_MAX + 1);
        if (!easy[i]) easy[i] = curl_easy_init();
        j->easy = easy[i];
        if (!j->url || !j->easy) {
            job_finish(n, j, false, j->url ? "out of memory" : items[i].build_error);
            continue;
        }
        j->next_at = now;
        pending++;
    }

    while (pending > 0) {
        for (size_t i = 0; i < nj; i++) {
            job *j = &jobs[i];
            const char *why_stop = j->done ? NULL : job_stop_reason(n, j);
            if (!why_stop) continue;
            if (j->in_flight) curl_multi_remove_handle(multi, j->easy);
            j->in_flight = false;
            char why[256];
            snprintf(why, sizeof why, "%s%s%s", why_stop, j->rec->error[0] ? " after: " : "",
                     j->rec->error);
            job_finish(n, j, false, why);
            pending--;
        }
        if (pending == 0) break;
        now = qg_time_now_ms();
        int64_t wait = QG_NOTIFY_TICK_MS;
        for (size_t i = 0; i < nj; i++) {
            job *j = &jobs[i];
            if (j->done || j->in_flight) continue;
            if (j->next_at <= now)
                job_start(n, multi, hdrs, j);
            else if (j->next_at - now < wait)
                wait = j->next_at - now;
        }
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        bool progressed = false;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            job *j = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            CURLcode res = msg->data.result;
            curl_multi_remove_handle(multi, msg->easy_handle);
            job_done(n, j, res);
            if (j->done) pending--;
            progressed = true;
        }
        if (lane) lane_sweep(lane);
        if (progressed || pending == 0) continue;
        curl_multi_poll(multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
    }

    for (size_t i = 0; i < nj; i++) {
        free_request(&jobs[i].url, &jobs[i].body);
        qg_buf_free(&jobs[i].resp);
    }
    curl_slist_free_all(hdrs);
}

/* ----------------------------------------------------------------- lanes */

#define MERGE_SEP       "\n\n"
#define MERGE_SEP_UNITS 2

static bool merges(const qg_notify *n, const qg_notify_target *t)
{
    return n->merge_max > 1 && backends[t->chan]->merges;
}

/* Under l->mu: unlinks the queued items whose caller stopped onto *out
 * (they are abandoned outside the lock: that may run callbacks). */
static void unlink_stopped(qg_notify_lane *l, qg_notify_item **out)
{
    qg_notify_item **pp = &l->head, *last = NULL;
    while (*pp) {
        qg_notify_item *it = *pp;
        if (post_stopped(it->post)) {
            *pp = it->next;
            it->next = *out;
            *out = it;
            l->queued--;
        } else {
            last = it;
            pp = &it->next;
        }
    }
    l->tail = last;
}

static void abandon_list(qg_notify *n, qg_notify_item *list)
{
    for (qg_notify_item *it = list, *next; it; it = next) {
        next = it->next;
        item_abandon(n, it, it->post->why_stop);
    }
}

/* On the lane thread while a message is on its way: a caller whose alert
 * still queues behind it and who stopped gets its answer now, not when
 * the message is done. At most once per tick: the queue may be long. */
static void lane_sweep(qg_notify_lane *l)
{
    int64_t now = qg_time_now_ms();
    if (now - l->swept_at < QG_NOTIFY_TICK_MS) return;
    l->swept_at = now;
    qg_notify_item *stopped = NULL;
    pthread_mutex_lock(&l->mu);
    unlink_stopped(l, &stopped);
    pthread_mutex_unlock(&l->mu);
    abandon_list(l->n, stopped);
}

/* Under l->mu: the oldest items that go out together. A merging target
 * takes as many texts as fit one message (the platform's length limit
 * and QG_NOTIFY_MERGE_MAX); another takes up to QG_NOTIFY_TARGETS_MAX
 * items, each its own request, sent in parallel. Stopped callers' items
 * met on the way go to *stopped. */
static size_t take_batch(qg_notify_lane *l, qg_notify_item **out, qg_notify_item **stopped)
{
    qg_notify *n = l->n;
    const qg_notify_target *t = &n->targets[l->target];
    bool merging = merges(n, t);
    size_t max_items = merging ? (size_t)n->merge_max : QG_NOTIFY_TARGETS_MAX;
    size_t k = 0, units = 0, max = backends[t->chan]->max_text;
    while (l->head && k < max_items) {
        qg_notify_item *it = l->head;
        if (post_stopped(it->post)) {
            l->head = it->next;
            l->queued--;
            it->next = *stopped;
            *stopped = it;
            continue;
        }
        if (merging) {
            size_t add = it->units + (k ? MERGE_SEP_UNITS : 0);
            if (k && units + add > max) break;
            units += add;
        }
        out[k++] = it;
        l->head = it->next;
        l->queued--;
    }
    if (!l->head) l->tail = NULL;
    return k;
}

/* Sends one batch and hands every item its outcome. */
static void send_batch(qg_notify_lane *l, qg_notify_item **b, size_t k)
{
    qg_notify *n = l->n;
    const qg_notify_target *t = &n->targets[l->target];
    send_item items[QG_NOTIFY_TARGETS_MAX];
    qg_delivery recs[QG_NOTIFY_TARGETS_MAX];
    size_t nj = 0;
    if (merges(n, t)) {
        /* One message: the texts joined by a blank line. The chat
         * backends build from the text alone. */
        size_t len = 0;
        for (size_t i = 0; i < k; i++) len += strlen(b[i]->text) + sizeof MERGE_SEP - 1;
        char *text = qg_xmalloc(len + 1), *p = text;
        for (size_t i = 0; i < k; i++) {
            if (i) p = stpcpy(p, MERGE_SEP);
            p = stpcpy(p, b[i]->text);
        }
        static const qg_notify_msg text_only = {.text = ""};
        items[0] = (send_item){.t = t, .alerts = k, .items = b, .nitems = k, .rec = &recs[0]};
        if (backends[t->chan]->build(n, t->dest, text, &text_only, &items[0].url, &items[0].body))
            items[0].build_error = "out of memory";
        free(text);
        nj = 1;
    } else {
        for (size_t i = 0; i < k; i++) {
            items[i] = (send_item){.t = t,
                                   .url = b[i]->url,
                                   .body = b[i]->body,
                                   .build_error = b[i]->build_error,
                                   .alerts = 1,
                                   .items = &b[i],
                                   .nitems = 1,
                                   .rec = &recs[i]};
            b[i]->url = b[i]->body = NULL; /* run_jobs frees them */
        }
        nj = k;
    }
    run_jobs(n, l->multi, l->easy, items, nj, l);
    for (size_t i = 0; i < k; i++) {
        *b[i]->rec = recs[nj == 1 ? 0 : i];
        item_done(b[i]);
    }
}

/* A lane's thread: sends its queue, oldest first, one batch at a time, so
 * a chat gets its alerts in order and a busy one gets them merged. */
static void *lane_main(void *arg)
{
    qg_notify_lane *l = arg;
    pthread_setname_np(pthread_self(), "qg-notify");
    for (;;) {
        qg_notify_item *b[QG_NOTIFY_TARGETS_MAX > QG_NOTIFY_MERGE_MAX_LIMIT
                              ? QG_NOTIFY_TARGETS_MAX
                              : QG_NOTIFY_MERGE_MAX_LIMIT];
        qg_notify_item *stopped = NULL;
        pthread_mutex_lock(&l->mu);
        while (!l->head && !atomic_load(&l->n->closing)) pthread_cond_wait(&l->cv, &l->mu);
        if (!l->head) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        size_t k = take_batch(l, b, &stopped);
        pthread_mutex_unlock(&l->mu);
        abandon_list(l->n, stopped);
        if (k) send_batch(l, b, k);
    }
    return NULL;
}

static void lane_push(qg_notify_lane *l, qg_notify_item *it)
{
    pthread_mutex_lock(&l->mu);
    it->next = NULL;
    bool was_empty = !l->head;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->queued++;
    if (was_empty) pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static qg_status lanes_start(qg_notify *n, qg_error *err)
{
    for (size_t i = 0; i < n->ntargets; i++) {
        qg_notify_lane *l = &n->lanes[i];
        l->n = n;
        l->target = i;
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        l->multi = curl_multi_init();
        if (!l->multi) return qg_error_set(err, QG_ENOMEM, "notify: curl_multi_init failed");
        int e = pthread_create(&l->thread, NULL, lane_main, l);
        if (e) return qg_error_set(err, QG_EINTERNAL, "notify: pthread_create: %s", strerror(e));
        l->started = true;
    }
    return QG_OK;
}

void qg_notify_free(qg_notify *n)
{
    if (!n) return;
    /* Each lane sends what is queued as abandoned ("shutting down") and
     * exits; every post's callback has run once the threads are joined. */
    atomic_store(&n->closing, true);
    for (size_t i = 0; i < n->ntargets; i++) {
        qg_notify_lane *l = &n->lanes[i];
        if (!l->n) continue;
        pthread_mutex_lock(&l->mu);
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        if (l->started) pthread_join(l->thread, NULL);
        for (int k = 0; k < QG_NOTIFY_TARGETS_MAX; k++)
            if (l->easy[k]) curl_easy_cleanup(l->easy[k]);
        if (l->multi) curl_multi_cleanup(l->multi);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    for (size_t i = 0; i < n->ntargets; i++) free(n->targets[i].dest);
    if (n->tg_token) sodium_memzero(n->tg_token, strlen(n->tg_token));
    free(n->tg_token);
    free(n->tg_api);
    free(n->tg_parse_mode);
    free(n);
}

/* ------------------------------------------------------------- posting */

qg_status qg_notify_post(qg_notify *n, const qg_notify_msg *m, qg_notify_want_fn want, void *ud,
                         atomic_bool *stop, qg_notify_done_fn done, void *done_ud)
{
    size_t target[QG_NOTIFY_TARGETS_MAX], nj = 0;
    for (size_t i = 0; n && i < n->ntargets; i++)
        if (!want || want(ud, backends[n->targets[i].chan]->channel, n->targets[i].key))
            target[nj++] = i;
    if (nj == 0) {
        done(done_ud, NULL, 0);
        return QG_OK;
    }
    post_state *p = qg_xcalloc(1, sizeof *p + nj * (sizeof *p->rec + sizeof *p->item));
    p->rec = (qg_delivery *)(p + 1);
    p->item = (qg_notify_item *)(p->rec + nj);
    p->nrec = nj;
    p->stop = stop;
    snprintf(p->why_stop, sizeof p->why_stop, "%s",
             m->stop_reason ? m->stop_reason : "shutting down");
    p->done = done;
    p->done_ud = done_ud;
    atomic_init(&p->left, nj);
    char *text = qg_notify_format(m);
    for (size_t k = 0; k < nj; k++) {
        const qg_notify_target *t = &n->targets[target[k]];
        qg_notify_item *it = &p->item[k];
        it->post = p;
        it->rec = &p->rec[k];
        it->target = target[k];
        record_init(it->rec, t);
        char *capped = cap_text_units(text, backends[t->chan]->max_text, &it->units);
        if (merges(n, t)) {
            it->text = capped;
            continue;
        }
        /* Built now: the generic webhook's body carries m->extra, which
         * is the caller's only until this returns. */
        qg_status brc = backends[t->chan]->build(n, t->dest, capped, m, &it->url, &it->body);
        if (brc)
            it->build_error = brc == QG_EINVAL ? "TELEGRAM_BOT_TOKEN is not set" : "out of memory";
        free(capped);
    }
    free(text);
    /* The last push may finish the post on a lane thread at once: p is not
     * touched after the loop. */
    for (size_t k = 0; k < nj; k++) lane_push(&n->lanes[target[k]], &p->item[k]);
    return QG_OK;
}

/* A blocking qg_notify_send's wait for its post. */
typedef struct send_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    qg_delivery *out;
    size_t n;
} send_wait;

static void send_woken(void *ud, const qg_delivery *d, size_t nd)
{
    send_wait *w = ud;
    if (nd) memcpy(w->out, d, nd * sizeof *d);
    pthread_mutex_lock(&w->mu);
    w->n = nd;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu); /* w may be gone after this */
}

qg_status qg_notify_send(qg_notify *n, const qg_notify_msg *m, qg_notify_want_fn want, void *ud,
                         atomic_bool *stop, qg_delivery *out, size_t *n_out)
{
    *n_out = 0;
    if (!n) return QG_OK;
    send_wait w = {.out = out};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    (void)qg_notify_post(n, m, want, ud, stop, send_woken, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    qg_status rc = QG_OK;
    for (size_t k = 0; k < w.n; k++)
        if (!out[k].ok) rc = QG_EIO;
    *n_out = w.n;
    return rc;
}

qg_status qg_notify_telegram_text(qg_notify *n, const char *chat_id, const char *text,
                                  qg_delivery *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->channel, sizeof out->channel, "telegram");
    if (!n || !n->tg_token) {
        snprintf(out->error, sizeof out->error, "TELEGRAM_BOT_TOKEN is not set");
        return QG_EINVAL;
    }
    if (!chat_id || !chat_ok(chat_id)) {
        snprintf(out->error, sizeof out->error, "not a chat id");
        return QG_EINVAL;
    }
    qg_notify_target t = {.chan = QG_NCH_TELEGRAM, .dest = (char *)chat_id};
    snprintf(t.masked, sizeof t.masked, "%s", chat_id);
    snprintf(t.key, sizeof t.key, "%s", chat_id);
    qg_notify_msg m = {.text = text ? text : ""};
    char *capped = qg_notify_cap_text(m.text, backends[QG_NCH_TELEGRAM]->max_text);
    send_item item = {.t = &t, .alerts = 1, .rec = out};
    if (backends[QG_NCH_TELEGRAM]->build(n, t.dest, capped, &m, &item.url, &item.body))
        item.build_error = "out of memory";
    free(capped);
    /* A command's reply, not an alert: its own handles, outside the lanes. */
    CURLM *multi = curl_multi_init();
    CURL *easy[1] = {NULL};
    if (!multi) {
        free_request(&item.url, &item.body);
        snprintf(out->error, sizeof out->error, "out of memory");
        return QG_ENOMEM;
    }
    run_jobs(n, multi, easy, &item, 1, NULL);
    if (easy[0]) curl_easy_cleanup(easy[0]);
    curl_multi_cleanup(multi);
    return out->ok ? QG_OK : QG_EIO;
}

/* One counter labelled by channel. */
static qg_status render_per_channel(qg_buf *out, const char *name, const char *help,
                                    atomic_uint_fast64_t *by_channel)
{
    qg_status rc = qg_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int c = 0; c < QG_NCH__COUNT && !rc; c++)
        rc = qg_buf_printf(out, "%s{channel=\"%s\"} %llu\n", name, backends[c]->channel,
                           (unsigned long long)atomic_load(&by_channel[c]));
    return rc;
}

qg_status qg_notify_render_metrics(qg_notify *n, qg_buf *out)
{
    if (!n) return QG_OK;
    qg_status rc = qg_buf_puts(out, "# HELP quantgate_notify_deliveries_total Notification "
                                    "deliveries by channel and result.\n"
                                    "# TYPE quantgate_notify_deliveries_total counter\n");
    for (int c = 0; c < QG_NCH__COUNT && !rc; c++) {
        rc = qg_buf_printf(out,
                           "quantgate_notify_deliveries_total{channel=\"%s\",result=\"ok\"} %llu\n"
                           "quantgate_notify_deliveries_total{channel=\"%s\",result=\"failed\"} "
                           "%llu\n",
                           backends[c]->channel, (unsigned long long)atomic_load(&n->delivered[c]),
                           backends[c]->channel, (unsigned long long)atomic_load(&n->failed[c]));
    }
    if (!rc)
        rc = render_per_channel(out, "quantgate_notify_attempts_total",
                                "HTTP attempts made by notification deliveries (retries included).",
                                n->attempts);
    if (!rc)
        rc = render_per_channel(out, "quantgate_notify_merged_total",
                                "Alerts that went out in one message with others (queued while "
                                "an earlier message to the target was on its way).",
                                n->merged);
    size_t queued = 0;
    for (size_t i = 0; i < n->ntargets; i++) {
        pthread_mutex_lock(&n->lanes[i].mu);
        queued += n->lanes[i].queued;
        pthread_mutex_unlock(&n->lanes[i].mu);
    }
    if (!rc)
        rc = qg_buf_printf(out,
                           "# HELP quantgate_notify_queued Alerts waiting on the targets' lanes "
                           "for the message on its way.\n"
                           "# TYPE quantgate_notify_queued gauge\n"
                           "quantgate_notify_queued %zu\n",
                           queued);
    if (!rc)
        rc = qg_buf_printf(out,
                           "# HELP quantgate_notify_targets Configured notification targets.\n"
                           "# TYPE quantgate_notify_targets gauge\n"
                           "quantgate_notify_targets %zu\n",
                           n->ntargets);
    return rc;
}
