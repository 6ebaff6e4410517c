/*
 * notify.c - the notifier core: configuration, targets, the alert text,
 * and delivery with retries, in parallel across targets.
 *
 * One qg_notify_send runs every target's transfers on the calling thread
 * through one curl multi handle: each target is a small state machine
 * (waiting until next_at -> in flight -> done or waiting again), and the
 * loop sleeps in curl_multi_poll until a transfer progresses or the next
 * retry is due, waking at least every QG_NOTIFY_TICK_MS to notice `stop`.
 * Backoff is base * 2^(attempt-1), capped at retry_max_ms, with "equal
 * jitter" (half fixed, half random) so many workers retrying after one
 * outage do not hit the receiver in lockstep. A 429's retry_after replaces
 * the backoff (capped at retry_after_max_s).
 *
 * Merging: each chat target (Telegram, Slack, Discord) has a lane. While a
 * send to the target waits to retry (a 429's retry_after, a 5xx's
 * backoff), the lane is held: alerts for that target queue on it instead
 * of each going out and hitting the same limit. When the hold ends, the
 * caller of the oldest queued alert sends the queue as few messages as it
 * takes (as many texts as fit the platform's limit and QG_NOTIFY_MERGE_MAX,
 * joined by a blank line, one batch at a time, in order); the callers of
 * the other texts wait for that message's outcome, which becomes their
 * delivery record. Otherwise every alert is sent at once on its own, as
 * before: waiting to merge when nothing holds the target would only idle
 * the workers. The generic webhook carries one signal object per request,
 * so it never merges.
 *
 * Handles: each calling thread gets its own multi handle and easy handles
 * (a qg_notify_tctx, made on the thread's first send and kept on the
 * notifier's list, freed with it), so connections stay in that multi
 * handle's cache and the next message reuses them (keep-alive) without any
 * locking on the send path.
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

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}
static atomic_uint_fast64_t next_gen = 1;

qg_status qg_notify_new(const qg_notify_config *cfg, qg_notify **out, qg_error *err)
{
    *out = NULL;
    qg_status rc = QG_OK;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return qg_error_set(err, QG_EINTERNAL, "notify: curl_global_init failed");
    if (sodium_init() < 0) return qg_error_set(err, QG_EINTERNAL, "notify: sodium_init failed");

    qg_notify *n = qg_xcalloc(1, sizeof *n);
    pthread_mutex_init(&n->lock, NULL);
    pthread_mutex_init(&n->lane_mu, NULL);
    n->merge_max = cfg->merge_max ? cfg->merge_max : QG_NOTIFY_MERGE_DEFAULT;
    n->gen = atomic_fetch_add(&next_gen, 1);
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

/* ------------------------------------------------------ per-thread handles */

struct qg_notify_tctx {
    qg_notify_tctx *next;
    pthread_t owner;
    CURLM *multi;
    CURL *easy[QG_NOTIFY_TARGETS_MAX];
};

static _Thread_local struct {
    uint64_t gen;
    qg_notify_tctx *ctx;
} tls_ctx;

/* The calling thread's handles for n (made on first use). */
static qg_notify_tctx *tctx_get(qg_notify *n)
{
    if (tls_ctx.gen == n->gen && tls_ctx.ctx) return tls_ctx.ctx;
    pthread_t self = pthread_self();
    qg_notify_tctx *c = NULL;
    pthread_mutex_lock(&n->lock);
    for (c = n->tctxs; c; c = c->next)
        if (pthread_equal(c->owner, self)) break;
    if (!c) {
        c = qg_xcalloc(1, sizeof *c);
        c->owner = self;
        c->multi = curl_multi_init();
        c->next = n->tctxs;
        n->tctxs = c;
    }
    pthread_mutex_unlock(&n->lock);
    tls_ctx.gen = n->gen;
    tls_ctx.ctx = c;
    return c;
}

void qg_notify_free(qg_notify *n)
{
    if (!n) return;
    for (qg_notify_tctx *c = n->tctxs, *next; c; c = next) {
        next = c->next;
        for (int i = 0; i < QG_NOTIFY_TARGETS_MAX; i++)
            if (c->easy[i]) curl_easy_cleanup(c->easy[i]);
        if (c->multi) curl_multi_cleanup(c->multi);
        free(c);
    }
    for (size_t i = 0; i < n->ntargets; i++) free(n->targets[i].dest);
    if (n->tg_token) sodium_memzero(n->tg_token, strlen(n->tg_token));
    free(n->tg_token);
    free(n->tg_api);
    free(n->tg_parse_mode);
    pthread_mutex_destroy(&n->lock);
    pthread_mutex_destroy(&n->lane_mu);
    free(n);
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

char *qg_notify_format(const qg_notify_msg *m)
{
    if (m->text) return qg_xstrdup(m->text);
    qg_buf b;
    qg_buf_init(&b, (size_t)64 << 10);
    char x[64];
    qg_buf_puts(&b, "\xF0\x9F\x8E\xAF TRADING ALERT\n"); /* 🎯 */
    if (m->symbol) qg_buf_printf(&b, "Symbol: %s\n", m->symbol);
    if (m->timeframe) qg_buf_printf(&b, "Timeframe: %s\n", m->timeframe);
    if (m->signal_type) qg_buf_printf(&b, "Signal: %s\n", m->signal_type);
    qg_buf_printf(&b, "Confidence: %s%%\n", fmt_num(x, sizeof x, m->confidence));
    if (m->session) qg_buf_printf(&b, "Session: %s\n", m->session);
    qg_buf_puts(&b, "\n\xF0\x9F\x93\x8A AI Analysis:\n"); /* 📊 */
    qg_buf_printf(&b, "Score: %s/100\n", fmt_num(x, sizeof x, m->score));
    if (m->risk) qg_buf_printf(&b, "Risk: %s\n", m->risk);
    if (m->has_entry) qg_buf_printf(&b, "Entry: %s\n", fmt_num(x, sizeof x, m->entry));
    if (m->has_exit) qg_buf_printf(&b, "Exit: %s\n", fmt_num(x, sizeof x, m->exit));
    if (m->has_sl) qg_buf_printf(&b, "SL: %s\n", fmt_num(x, sizeof x, m->sl));
    if (m->has_tp) qg_buf_printf(&b, "TP: %s\n", fmt_num(x, sizeof x, m->tp));
    if (m->explanation && *m->explanation)
        qg_buf_printf(&b, "\n\xF0\x9F\x92\xA1 %s\n", m->explanation); /* 💡 */
    if (m->signal_id) qg_buf_printf(&b, "\nid: %s\n", m->signal_id);
    /* No trailing newline: chats show it as an empty line. */
    while (b.len && b.data[b.len - 1] == '\n') b.data[--b.len] = '\0';
    char *out = qg_xstrdup(b.len ? b.data : "");
    qg_buf_free(&b);
    return out;
}

/* ------------------------------------------------------------- delivery */

typedef struct job {
    qg_notify_chan chan;
    const char *dest;
    char *url, *body;
    CURL *easy;
    qg_buf resp;
    char retry_after[64];
    bool in_flight, done;
    int64_t next_at;
    size_t alerts;        /* alerts this message carries (merged ones), for the counters */
    qg_notify_lane *lane; /* the target's lane when it merges, else NULL */
    bool holding;         /* this job's retry wait holds the lane */
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

static void lane_hold(qg_notify *n, job *j, bool hold);

static void job_finish(qg_notify *n, job *j, bool ok, const char *error)
{
    j->done = true;
    if (j->holding) lane_hold(n, j, false);
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
    if (j->lane && !j->holding) lane_hold(n, j, true);
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
    const char *text;       /* capped for t's backend */
    const qg_notify_msg *m; /* what the backend builds from besides the text
                               (the generic webhook's signal object) */
    size_t alerts;          /* alerts merged into text (1 when alone) */
    qg_notify_lane *lane;   /* t's lane when t merges, else NULL */
    qg_delivery *rec;       /* filled with the outcome */
} send_item;

/* Runs items[0..nj) to the end (or until *stop), in parallel. Returns
 * QG_OK when all were delivered. A stop abandons the transfers in flight
 * or waiting to retry; why_stop says why in their errors ("shutting down",
 * or a caller's deadline). */
static qg_status run_jobs(qg_notify *n, const send_item *items, size_t nj, atomic_bool *stop,
                          const char *why_stop)
{
    qg_notify_tctx *ctx = tctx_get(n);
    job jobs[QG_NOTIFY_TARGETS_MAX];
    memset(jobs, 0, sizeof jobs);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    size_t pending = 0;
    int64_t now = qg_time_now_ms();

    for (size_t i = 0; i < nj; i++) {
        job *j = &jobs[i];
        j->chan = items[i].t->chan;
        j->dest = items[i].t->dest;
        j->alerts = items[i].alerts;
        j->lane = items[i].lane;
        j->rec = items[i].rec;
        record_init(j->rec, items[i].t);
        qg_buf_init(&j->resp, QG_NOTIFY_RESP_MAX + 1);
        if (!ctx->easy[i]) ctx->easy[i] = curl_easy_init();
        j->easy = ctx->easy[i];
        const qg_notify_backend *be = backends[j->chan];
        qg_status brc = j->easy
                            ? be->build(n, j->dest, items[i].text, items[i].m, &j->url, &j->body)
                            : QG_ENOMEM;
        if (brc) {
            job_finish(n, j, false,
                       brc == QG_EINVAL ? "TELEGRAM_BOT_TOKEN is not set" : "out of memory");
            continue;
        }
        j->next_at = now;
        pending++;
    }

    while (pending > 0) {
        if (stop && atomic_load(stop)) {
            for (size_t i = 0; i < nj; i++) {
                job *j = &jobs[i];
                if (j->done) continue;
                if (j->in_flight) curl_multi_remove_handle(ctx->multi, j->easy);
                j->in_flight = false;
                char why[256];
                snprintf(why, sizeof why, "%s%s%s", why_stop, j->rec->error[0] ? " after: " : "",
                         j->rec->error);
                job_finish(n, j, false, why);
            }
            break;
        }
        now = qg_time_now_ms();
        int64_t wait = QG_NOTIFY_TICK_MS;
        for (size_t i = 0; i < nj; i++) {
            job *j = &jobs[i];
            if (j->done || j->in_flight) continue;
            if (j->next_at <= now)
                job_start(n, ctx->multi, hdrs, j);
            else if (j->next_at - now < wait)
                wait = j->next_at - now;
        }
        int running = 0;
        curl_multi_perform(ctx->multi, &running);
        CURLMsg *msg;
        int left;
        bool progressed = false;
        while ((msg = curl_multi_info_read(ctx->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            job *j = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            CURLcode res = msg->data.result;
            curl_multi_remove_handle(ctx->multi, msg->easy_handle);
            job_done(n, j, res);
            if (j->done) pending--;
            progressed = true;
        }
        if (progressed || pending == 0) continue;
        curl_multi_poll(ctx->multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
    }

    qg_status rc = QG_OK;
    for (size_t i = 0; i < nj; i++) {
        if (!jobs[i].rec->ok) rc = QG_EIO;
        if (jobs[i].url) sodium_memzero(jobs[i].url, strlen(jobs[i].url)); /* holds the token */
        free(jobs[i].url);
        free(jobs[i].body);
        qg_buf_free(&jobs[i].resp);
    }
    curl_slist_free_all(hdrs);
    return rc;
}

/* ----------------------------------------------------------------- lanes */

#define MERGE_SEP       "\n\n"
#define MERGE_SEP_UNITS 2

struct qg_notify_wait {
    qg_notify_wait *next;
    size_t target; /* index in n->targets */
    char *text;    /* capped for the target's backend (owned by the caller) */
    size_t units;  /* its length in UTF-16 units */
    qg_delivery *rec;
    pthread_cond_t *wake; /* the caller's: signalled when this is done or
                             may be sent */
    bool taken;           /* in a sender's batch: only that sender finishes it */
    bool done;            /* rec holds the outcome */
};

static bool merges(const qg_notify *n, const qg_notify_target *t)
{
    return n->merge_max > 1 && backends[t->chan]->merges;
}

/* Under lane_mu: the lane's queue may be sent now (nothing holds the
 * target and no batch of it is on its way). */
static bool lane_free(const qg_notify_lane *l)
{
    return l->held == 0 && l->senders == 0;
}

/* A job of a merging target entered (hold) or left (release) a retry
 * wait. When the last hold goes, the caller of the first queued text is
 * woken to send the queue. Called without lane_mu. */
static void lane_hold(qg_notify *n, job *j, bool hold)
{
    pthread_mutex_lock(&n->lane_mu);
    qg_notify_lane *l = j->lane;
    l->held += hold ? 1 : -1;
    j->holding = hold;
    if (lane_free(l) && l->head) pthread_cond_signal(l->head->wake);
    pthread_mutex_unlock(&n->lane_mu);
}

/* A sender's share of one lane: the waits it took, oldest first. */
typedef struct lane_batch {
    size_t target;
    qg_notify_wait *w[QG_NOTIFY_MERGE_MAX_LIMIT];
    size_t k;
    char *text; /* the texts joined (owned; NULL when k == 1) */
    qg_delivery rec;
} lane_batch;

/* Under lane_mu: takes the queued waits that fit one message. */
static void take_batch(qg_notify *n, size_t target, lane_batch *b)
{
    qg_notify_lane *l = &n->lanes[target];
    size_t max = backends[n->targets[target].chan]->max_text, units = 0;
    b->target = target;
    b->k = 0;
    b->text = NULL;
    while (l->head && b->k < (size_t)n->merge_max) {
        qg_notify_wait *w = l->head;
        size_t add = w->units + (b->k ? MERGE_SEP_UNITS : 0);
        if (b->k && units + add > max) break;
        units += add;
        w->taken = true;
        b->w[b->k++] = w;
        l->head = w->next;
    }
    if (!l->head) l->tail = NULL;
    l->senders++;
}

/* Outside the lock: the batch's one text (the waits' texts stay theirs
 * until they are done, so reading them needs no lock). */
static const char *batch_text(lane_batch *b)
{
    if (b->k == 1) return b->w[0]->text;
    size_t len = 0;
    for (size_t i = 0; i < b->k; i++) len += strlen(b->w[i]->text) + sizeof MERGE_SEP - 1;
    char *t = qg_xmalloc(len + 1), *p = t;
    for (size_t i = 0; i < b->k; i++) {
        if (i) p = stpcpy(p, MERGE_SEP);
        p = stpcpy(p, b->w[i]->text);
    }
    b->text = t;
    return t;
}

/* Under lane_mu: hands the outcome to every wait of the batch and wakes
 * the caller of the next queued text, if any, to send the rest. Each
 * caller is woken only when there is something for it to do. */
static void finish_batch(qg_notify *n, lane_batch *b)
{
    for (size_t i = 0; i < b->k; i++) {
        *b->w[i]->rec = b->rec;
        b->w[i]->done = true;
        pthread_cond_signal(b->w[i]->wake);
    }
    qg_notify_lane *l = &n->lanes[b->target];
    l->senders--;
    if (lane_free(l) && l->head) pthread_cond_signal(l->head->wake);
    free(b->text);
    b->text = NULL;
}

/* Under lane_mu, when stopping: a wait no sender took fails here. */
static void abandon_wait(qg_notify *n, qg_notify_wait *w, const char *why_stop)
{
    qg_notify_lane *l = &n->lanes[w->target];
    qg_notify_wait *prev = NULL;
    for (qg_notify_wait *x = l->head; x; prev = x, x = x->next) {
        if (x != w) continue;
        if (prev)
            prev->next = w->next;
        else
            l->head = w->next;
        if (l->tail == w) l->tail = prev;
        break;
    }
    record_init(w->rec, &n->targets[w->target]);
    snprintf(w->rec->error, sizeof w->rec->error, "%s", why_stop);
    w->rec->at_ms = qg_time_now_ms();
    atomic_fetch_add(&n->failed[n->targets[w->target].chan], 1);
    w->done = true;
}

/* Sends the direct items, then sends or waits for the caller's queued
 * texts: it sends a lane's queue itself when the lane is free, else waits
 * until its texts went out in another caller's batch or it is woken to
 * send. Returns once every text is done. */
static void run_lanes(qg_notify *n, const send_item *direct, size_t nd, qg_notify_wait *waits,
                      size_t nw, pthread_cond_t *wake, atomic_bool *stop, const char *why_stop)
{
    if (nd) (void)run_jobs(n, direct, nd, stop, why_stop);
    pthread_mutex_lock(&n->lane_mu);
    for (;;) {
        lane_batch batches[QG_NOTIFY_TARGETS_MAX];
        size_t nb = 0;
        bool all_done = true;
        for (size_t i = 0; i < nw; i++) {
            qg_notify_wait *w = &waits[i];
            if (w->done) continue;
            all_done = false;
            if (!w->taken && lane_free(&n->lanes[w->target]))
                take_batch(n, w->target, &batches[nb++]);
        }
        if (nb) {
            pthread_mutex_unlock(&n->lane_mu);
            /* The chat backends build from the text alone: a merged
             * one carries several signals. */
            static const qg_notify_msg text_only = {.text = ""};
            send_item items[QG_NOTIFY_TARGETS_MAX];
            for (size_t i = 0; i < nb; i++)
                items[i] = (send_item){.t = &n->targets[batches[i].target],
                                       .text = batch_text(&batches[i]),
                                       .m = &text_only,
                                       .alerts = batches[i].k,
                                       .lane = &n->lanes[batches[i].target],
                                       .rec = &batches[i].rec};
            (void)run_jobs(n, items, nb, stop, why_stop);
            pthread_mutex_lock(&n->lane_mu);
            for (size_t i = 0; i < nb; i++) finish_batch(n, &batches[i]);
            continue;
        }
        if (all_done) break;
        if (stop && atomic_load(stop)) {
            bool abandoned = false;
            for (size_t i = 0; i < nw; i++)
                if (!waits[i].done && !waits[i].taken) {
                    abandon_wait(n, &waits[i], why_stop);
                    abandoned = true;
                }
            if (abandoned) continue;
            /* The taken ones: their sender stops soon too and needs
             * lane_mu to hand over the outcome, so wait, not spin. */
        }
        struct timespec until = qg_time_deadline(CLOCK_MONOTONIC, QG_NOTIFY_TICK_MS);
        pthread_cond_timedwait(wake, &n->lane_mu, &until);
    }
    pthread_mutex_unlock(&n->lane_mu);
}

/* Under lane_mu: a merging target's text queues while the target is held
 * or has a queue (so it goes out after the older ones, merged with them);
 * otherwise it is sent at once. */
static bool must_queue(const qg_notify_lane *l)
{
    return !lane_free(l) || l->head;
}

qg_status qg_notify_send(qg_notify *n, const qg_notify_msg *m, qg_notify_want_fn want, void *ud,
                         atomic_bool *stop, qg_delivery *out, size_t *n_out)
{
    *n_out = 0;
    if (!n) return QG_OK;
    /* The wanted targets and their texts, outside the lanes' lock. */
    size_t target[QG_NOTIFY_TARGETS_MAX], units[QG_NOTIFY_TARGETS_MAX];
    char *capped[QG_NOTIFY_TARGETS_MAX];
    char *text = NULL;
    size_t nj = 0;
    bool any_lane = false;
    for (size_t i = 0; i < n->ntargets; i++) {
        const qg_notify_target *t = &n->targets[i];
        if (want && !want(ud, backends[t->chan]->channel, t->key)) continue;
        if (!text) text = qg_notify_format(m);
        capped[nj] = cap_text_units(text, backends[t->chan]->max_text, &units[nj]);
        target[nj++] = i;
        any_lane = any_lane || merges(n, t);
    }
    free(text);
    if (nj == 0) return QG_OK;

    send_item direct[QG_NOTIFY_TARGETS_MAX];
    qg_notify_wait waits[QG_NOTIFY_TARGETS_MAX];
    size_t nd = 0, nw = 0;
    pthread_cond_t wake;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &ca);
    pthread_condattr_destroy(&ca);
    if (any_lane) pthread_mutex_lock(&n->lane_mu);
    for (size_t k = 0; k < nj; k++) {
        const qg_notify_target *t = &n->targets[target[k]];
        qg_notify_lane *l = merges(n, t) ? &n->lanes[target[k]] : NULL;
        if (l && must_queue(l)) {
            qg_notify_wait *w = &waits[nw++];
            *w = (qg_notify_wait){.target = target[k],
                                  .text = capped[k],
                                  .units = units[k],
                                  .rec = &out[k],
                                  .wake = &wake};
            if (l->tail)
                l->tail->next = w;
            else
                l->head = w;
            l->tail = w;
        } else {
            direct[nd++] = (send_item){
                .t = t, .text = capped[k], .m = m, .alerts = 1, .lane = l, .rec = &out[k]};
        }
    }
    if (any_lane) pthread_mutex_unlock(&n->lane_mu);
    run_lanes(n, direct, nd, waits, nw, &wake, stop,
              m->stop_reason ? m->stop_reason : "shutting down");
    pthread_cond_destroy(&wake);
    qg_status rc = QG_OK;
    for (size_t k = 0; k < nj; k++) {
        if (!out[k].ok) rc = QG_EIO;
        free(capped[k]);
    }
    *n_out = nj;
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
    send_item item = {.t = &t, .text = capped, .m = &m, .alerts = 1, .rec = out};
    qg_status rc = run_jobs(n, &item, 1, NULL, "shutting down");
    free(capped);
    return rc;
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
                                "a retry held the target).",
                                n->merged);
    if (!rc)
        rc = qg_buf_printf(out,
                           "# HELP quantgate_notify_targets Configured notification targets.\n"
                           "# TYPE quantgate_notify_targets gauge\n"
                           "quantgate_notify_targets %zu\n",
                           n->ntargets);
    return rc;
}
