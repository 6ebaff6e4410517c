/*
 * test_notify.c - the notifier against tests/integration/fake_notify.py (a
 * local server speaking the Telegram Bot API, Slack, Discord and generic
 * webhook formats, started per test as a subprocess): deliveries to several
 * chats, 429 retry_after honoured, 5xx retried with backoff, other 4xx
 * final, each backend's body, text caps, stopping, and that no token or
 * webhook URL reaches a record, an error or the log.
 */
#include "notify/notify.h"
#include "notify/notify_int.h"

#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"

static pid_t fake_pid;
static char fake_url[128];

static void fake_start(void)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fake_pid = fork();
    cr_assert(fake_pid >= 0);
    if (fake_pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execlp("python3", "python3", QG_TEST_DATA "/../integration/fake_notify.py", "--quiet",
               "--token", TOKEN, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    char line[256] = "";
    cr_assert(fgets(line, sizeof line, f), "fake_notify.py did not start");
    fclose(f);
    cr_assert(strncmp(line, "FAKE_NOTIFY_URL=", 16) == 0, "unexpected: %s", line);
    snprintf(fake_url, sizeof fake_url, "%s", line + 16);
    fake_url[strcspn(fake_url, "\r\n")] = '\0';
}

static void fake_stop(void)
{
    if (fake_pid > 0) {
        kill(fake_pid, SIGTERM);
        waitpid(fake_pid, NULL, 0);
        fake_pid = 0;
    }
}

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
    qg_buf_append(ud, p, s * n);
    return s * n;
}

/* A request to the fake's control API; returns the parsed body. */
static cJSON *fake_call(const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", fake_url, path);
    qg_buf b;
    qg_buf_init(&b, 16 << 20);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    }
    cr_assert_eq(curl_easy_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    cJSON *j = cJSON_Parse(b.len ? b.data : "null");
    qg_buf_free(&b);
    return j;
}

static void fail_next(const char *path, int status, int n, double retry_after)
{
    char body[256];
    if (retry_after >= 0)
        snprintf(body, sizeof body, "{\"path\":\"%s\",\"status\":%d,\"n\":%d,\"retry_after\":%g}",
                 path, status, n, retry_after);
    else
        snprintf(body, sizeof body, "{\"path\":\"%s\",\"status\":%d,\"n\":%d}", path, status, n);
    cJSON_Delete(fake_call("/_fake/fail", body));
}

static cJSON *messages(void)
{
    return fake_call("/_fake/messages", NULL);
}

static void base_cfg(qg_notify_config *c)
{
    memset(c, 0, sizeof *c);
    c->telegram_token = TOKEN;
    c->telegram_api_url = fake_url;
    c->retries = 4;
    c->retry_base_ms = 20;
    c->retry_max_ms = 1000;
    c->retry_after_max_s = 60;
    c->timeout_ms = 5000;
}

static qg_notify *make(const qg_notify_config *c)
{
    qg_notify *n = NULL;
    qg_error err = {0};
    qg_status rc = qg_notify_new(c, &n, &err);
    cr_assert_eq(rc, QG_OK, "qg_notify_new: %s", err.msg);
    return n;
}

static const qg_notify_msg sample = {
    .signal_id = "sig_1",
    .symbol = "EURUSD",
    .timeframe = "15m",
    .signal_type = "bullish_bos",
    .confidence = 85,
    .score = 90,
    .risk = "medium",
    .explanation = "Clean break of structure.",
    .has_entry = true,
    .entry = 1.0851,
};

static void no_secret(const qg_delivery *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_null(strstr(d[i].target, "AAHdq"), "token in target");
        cr_assert_null(strstr(d[i].error, "AAHdq"), "token in error: %s", d[i].error);
        cr_assert_null(strstr(d[i].key, "AAHdq"));
        cr_assert_null(strstr(d[i].target, "SECRETPART"), "url in target: %s", d[i].target);
        cr_assert_null(strstr(d[i].error, "SECRETPART"), "url in error: %s", d[i].error);
        cr_assert_null(strstr(d[i].key, "SECRETPART"));
    }
}

TestSuite(notify, .init = fake_start, .fini = fake_stop, .timeout = 60);

Test(notify, telegram_several_chats_200)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "111, -1002223334445,@alerts_chan";
    qg_notify *n = make(&c);
    cr_assert_eq(qg_notify_targets(n), 3);
    cr_assert_not(qg_notify_reads_extra(n), "only the generic webhook sends the signal object");
    qg_delivery d[QG_NOTIFY_TARGETS_MAX];
    size_t nd = 0;
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_OK);
    cr_assert_eq(nd, 3);
    for (size_t i = 0; i < nd; i++) {
        cr_assert(d[i].ok, "%s: %s", d[i].target, d[i].error);
        cr_assert_eq(d[i].attempts, 1);
        cr_assert_eq(d[i].http_status, 200);
        cr_assert_str_eq(d[i].channel, "telegram");
        cr_assert_str_empty(d[i].error);
        cr_assert(d[i].at_ms > 0);
    }
    cr_assert_str_eq(d[1].target, "-1002223334445");
    cr_assert_str_eq(d[1].key, "-1002223334445");
    no_secret(d, nd);

    cJSON *ms = messages();
    cr_assert_eq(cJSON_GetArraySize(ms), 3);
    int seen = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, ms)
    {
        const cJSON *body = cJSON_GetObjectItem(m, "body");
        const cJSON *chat = cJSON_GetObjectItem(body, "chat_id");
        if (cJSON_IsNumber(chat) && chat->valuedouble == 111) seen |= 1;
        if (cJSON_IsNumber(chat) && chat->valuedouble == -1002223334445.0) seen |= 2;
        if (cJSON_IsString(chat) && strcmp(chat->valuestring, "@alerts_chan") == 0) seen |= 4;
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(body, "disable_web_page_preview")));
        cr_assert_null(cJSON_GetObjectItem(body, "parse_mode"));
        const char *text = cJSON_GetObjectItem(body, "text")->valuestring;
        cr_assert_not_null(strstr(text, "Symbol: EURUSD"), "%s", text);
        cr_assert_not_null(strstr(text, "Score: 90/100"), "%s", text);
        cr_assert_not_null(strstr(text, "Entry: 1.0851"), "%s", text);
    }
    cr_assert_eq(seen, 7);
    cJSON_Delete(ms);

    qg_buf mb;
    qg_buf_init(&mb, 1 << 16);
    cr_assert_eq(qg_notify_render_metrics(n, &mb), QG_OK);
    cr_assert_not_null(
        strstr(mb.data, "quantgate_notify_deliveries_total{channel=\"telegram\",result=\"ok\"} 3"));
    cr_assert_not_null(strstr(mb.data, "quantgate_notify_attempts_total{channel=\"telegram\"} 3"));
    qg_buf_free(&mb);
    qg_notify_free(n);
}

Test(notify, telegram_429_waits_retry_after)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "42";
    qg_notify *n = make(&c);
    fail_next("telegram", 429, 1, 1);
    qg_delivery d[4];
    size_t nd = 0;
    int64_t t0 = qg_time_now_ms();
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_OK);
    int64_t took = qg_time_now_ms() - t0;
    cr_assert(d[0].ok, "%s", d[0].error);
    cr_assert_eq(d[0].attempts, 2);
    /* The backoff would have been 10-20 ms: the wait came from retry_after. */
    cr_assert_geq(took, 1000, "retried after %lld ms, retry_after was 1 s", (long long)took);
    cJSON *ms = messages();
    cr_assert_eq(cJSON_GetArraySize(ms), 1);
    cJSON_Delete(ms);
    qg_notify_free(n);
}

Test(notify, retry_after_is_capped)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "42";
    c.retry_after_max_s = 0; /* the cap wins over the server's 30 s */
    qg_notify *n = make(&c);
    fail_next("telegram", 429, 1, 30);
    qg_delivery d[4];
    size_t nd = 0;
    int64_t t0 = qg_time_now_ms();
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_OK);
    cr_assert_lt(qg_time_now_ms() - t0, 5000);
    cr_assert_eq(d[0].attempts, 2);
    qg_notify_free(n);
}

Test(notify, server_error_then_success_with_backoff)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "42";
    c.retry_base_ms = 100;
    qg_notify *n = make(&c);
    fail_next("telegram", 500, 2, -1);
    qg_delivery d[4];
    size_t nd = 0;
    int64_t t0 = qg_time_now_ms();
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_OK);
    int64_t took = qg_time_now_ms() - t0;
    cr_assert(d[0].ok, "%s", d[0].error);
    cr_assert_eq(d[0].attempts, 3);
    cr_assert_eq(d[0].http_status, 200);
    /* waits of 100 then 200 ms, each at least half with the jitter */
    cr_assert_geq(took, 150, "took %lld ms", (long long)took);
    qg_notify_free(n);
}

Test(notify, retries_exhausted)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "42";
    c.retries = 2;
    qg_notify *n = make(&c);
    fail_next("telegram", 503, 10, -1);
    qg_delivery d[4];
    size_t nd = 0;
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_EIO);
    cr_assert_not(d[0].ok);
    cr_assert_eq(d[0].attempts, 3);
    cr_assert_eq(d[0].http_status, 503);
    cr_assert_not_null(strstr(d[0].error, "HTTP 503"), "%s", d[0].error);
    qg_buf mb;
    qg_buf_init(&mb, 1 << 16);
    qg_notify_render_metrics(n, &mb);
    cr_assert_not_null(strstr(
        mb.data, "quantgate_notify_deliveries_total{channel=\"telegram\",result=\"failed\"} 1"));
    cr_assert_not_null(strstr(mb.data, "quantgate_notify_attempts_total{channel=\"telegram\"} 3"));
    qg_buf_free(&mb);
    qg_notify_free(n);
}

Test(notify, client_error_is_final)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "42,43";
    qg_notify *n = make(&c);
    fail_next("telegram", 400, 1, -1);
    qg_delivery d[4];
    size_t nd = 0;
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_EIO);
    cr_assert_eq(nd, 2);
    int failed = 0, ok = 0;
    for (size_t i = 0; i < nd; i++) {
        cr_assert_eq(d[i].attempts, 1, "a 400 is not retried");
        if (d[i].ok)
            ok++;
        else {
            failed++;
            cr_assert_eq(d[i].http_status, 400);
            cr_assert_not_null(strstr(d[i].error, "chat not found"), "%s", d[i].error);
        }
    }
    cr_assert_eq(failed, 1);
    cr_assert_eq(ok, 1);
    no_secret(d, nd);
    qg_notify_free(n);
}

Test(notify, wrong_token_is_final_and_masked)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_token = "999:AAHdqWRONGWRONGWRONG";
    c.telegram_chats = "42";
    qg_notify *n = make(&c);
    qg_delivery d[4];
    size_t nd = 0;
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_EIO);
    cr_assert_eq(d[0].http_status, 401);
    cr_assert_eq(d[0].attempts, 1);
    cr_assert_null(strstr(d[0].error, "WRONGWRONG"));
    qg_notify_free(n);
}

static const char *msg_field(cJSON *ms, const char *channel, const char *field)
{
    cJSON *m;
    cJSON_ArrayForEach(m, ms)
    {
        if (strcmp(cJSON_GetObjectItem(m, "channel")->valuestring, channel) == 0) {
            cJSON *body = cJSON_GetObjectItem(m, "body");
            cJSON *f = cJSON_GetObjectItem(body, field);
            return cJSON_IsString(f) ? f->valuestring : NULL;
        }
    }
    return NULL;
}

Test(notify, slack_discord_webhook_bodies)
{
    char slack[256], discord[256], hook[256];
    snprintf(slack, sizeof slack, "%s/slack/T000/B000/SECRETPART1", fake_url);
    snprintf(discord, sizeof discord, "%s/discord/123/SECRETPART2", fake_url);
    snprintf(hook, sizeof hook, "%s/webhook/SECRETPART3", fake_url);
    qg_notify_config c;
    base_cfg(&c);
    c.slack_urls = slack;
    c.discord_urls = discord;
    c.webhook_urls = hook;
    qg_notify *n = make(&c);
    cr_assert_eq(qg_notify_targets(n), 3);
    cr_assert(qg_notify_reads_extra(n));
    cJSON *extra = cJSON_Parse("{\"id\":\"sig_1\",\"symbol\":\"EURUSD\",\"score\":90}");
    qg_notify_msg m = sample;
    m.extra = extra;
    qg_delivery d[4];
    size_t nd = 0;
    cr_assert_eq(qg_notify_send(n, &m, NULL, NULL, NULL, d, &nd), QG_OK);
    cr_assert_eq(nd, 3);
    cr_assert_str_eq(d[0].channel, "slack");
    cr_assert_str_eq(d[1].channel, "discord");
    cr_assert_eq(d[1].http_status, 204);
    cr_assert_str_eq(d[2].channel, "webhook");
    for (size_t i = 0; i < nd; i++) {
        cr_assert(d[i].ok, "%s: %s", d[i].channel, d[i].error);
        cr_assert_not_null(strstr(d[i].target, "127.0.0.1"), "%s", d[i].target);
        cr_assert_not_null(strstr(d[i].key, "sha256:"), "%s", d[i].key);
    }
    cr_assert(strncmp(d[0].target, "http://127.0.0.1:", 17) == 0, "%s", d[0].target);
    size_t tl = strlen(d[0].target);
    cr_assert(tl > 4 && strcmp(d[0].target + tl - 4, "ART1") == 0, "last 4 shown: %s", d[0].target);
    no_secret(d, nd);

    cJSON *ms = messages();
    cr_assert_eq(cJSON_GetArraySize(ms), 3);
    const char *st = msg_field(ms, "slack", "text");
    cr_assert_not_null(st);
    cr_assert_not_null(strstr(st, "Symbol: EURUSD"));
    const char *dc = msg_field(ms, "discord", "content");
    cr_assert_not_null(dc);
    cr_assert_not_null(strstr(dc, "Signal: bullish_bos"));
    cr_assert_str_eq(msg_field(ms, "webhook", "event"), "signal");
    cr_assert_not_null(strstr(msg_field(ms, "webhook", "text"), "EURUSD"));
    cJSON *w;
    cJSON_ArrayForEach(w, ms)
    {
        if (strcmp(cJSON_GetObjectItem(w, "channel")->valuestring, "webhook") != 0) continue;
        cJSON *sig = cJSON_GetObjectItem(cJSON_GetObjectItem(w, "body"), "signal");
        cr_assert_str_eq(cJSON_GetObjectItem(sig, "id")->valuestring, "sig_1");
        cr_assert_eq(cJSON_GetObjectItem(sig, "score")->valuedouble, 90);
    }
    cJSON_Delete(ms);
    cJSON_Delete(extra);
    qg_notify_free(n);
}

Test(notify, discord_429_float_retry_after_and_cap)
{
    char discord[256];
    snprintf(discord, sizeof discord, "%s/discord/123/SECRETPART2", fake_url);
    qg_notify_config c;
    base_cfg(&c);
    c.discord_urls = discord;
    qg_notify *n = make(&c);
    fail_next("discord", 429, 1, 0.6);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    qg_notify_msg m = {.text = big};
    qg_delivery d[4];
    size_t nd = 0;
    int64_t t0 = qg_time_now_ms();
    cr_assert_eq(qg_notify_send(n, &m, NULL, NULL, NULL, d, &nd), QG_OK, "%s", d[0].error);
    cr_assert_geq(qg_time_now_ms() - t0, 600);
    cr_assert_eq(d[0].attempts, 2);
    cJSON *ms = messages();
    const char *dc = msg_field(ms, "discord", "content");
    cr_assert_not_null(dc);
    /* 1999 x and the 3-byte ellipsis: 2000 characters, Discord's cap */
    cr_assert_eq(strlen(dc), 1999 + 3);
    cr_assert_str_eq(dc + 1999, "\xE2\x80\xA6");
    cJSON_Delete(ms);
    qg_notify_free(n);
}

Test(notify, slack_500_then_ok)
{
    char slack[256];
    snprintf(slack, sizeof slack, "%s/slack/T000/B000/SECRETPART1", fake_url);
    qg_notify_config c;
    base_cfg(&c);
    c.slack_urls = slack;
    qg_notify *n = make(&c);
    fail_next("slack", 500, 1, -1);
    qg_delivery d[4];
    size_t nd = 0;
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_OK);
    cr_assert_eq(d[0].attempts, 2);
    qg_notify_free(n);
}

Test(notify, telegram_text_is_capped_at_4096)
{
    qg_notify_config c;
    base_cfg(&c);
    qg_notify *n = make(&c);
    char *big = qg_xmalloc(5001);
    memset(big, 'y', 5000);
    big[5000] = '\0';
    qg_delivery d;
    cr_assert_eq(qg_notify_telegram_text(n, "77", big, &d), QG_OK, "%s", d.error);
    cr_assert(d.ok);
    cJSON *ms = messages();
    cr_assert_eq(cJSON_GetArraySize(ms), 1);
    const char *t = cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 0), "text")->valuestring;
    cr_assert_eq(strlen(t), 4095 + 3);
    cJSON_Delete(ms);
    free(big);
    qg_notify_free(n);
}

Test(notify, parse_mode_escapes)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "1";
    c.telegram_parse_mode = "HTML";
    qg_notify *n = make(&c);
    qg_notify_msg m = {.text = "Title\n1 < 2 & ok"};
    qg_delivery d[2];
    size_t nd = 0;
    cr_assert_eq(qg_notify_send(n, &m, NULL, NULL, NULL, d, &nd), QG_OK, "%s", d[0].error);
    cJSON *ms = messages();
    cJSON *body = cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 0), "body");
    cr_assert_str_eq(cJSON_GetObjectItem(body, "parse_mode")->valuestring, "HTML");
    cr_assert_str_eq(cJSON_GetObjectItem(body, "text")->valuestring,
                     "<b>Title</b>\n1 &lt; 2 &amp; ok");
    cJSON_Delete(ms);
    qg_notify_free(n);
}

static bool skip_first(void *ud, const char *channel, const char *key)
{
    (void)channel;
    return strcmp(key, (const char *)ud) != 0;
}

Test(notify, want_skips_delivered_targets)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "5,6";
    qg_notify *n = make(&c);
    qg_delivery d[4];
    size_t nd = 0;
    cr_assert_eq(qg_notify_send(n, &sample, skip_first, "5", NULL, d, &nd), QG_OK);
    cr_assert_eq(nd, 1);
    cr_assert_str_eq(d[0].key, "6");
    qg_notify_free(n);
}

/* Sets flag after ms milliseconds, on a thread of its own. */
typedef struct stopper {
    atomic_bool flag;
    int ms;
} stopper;

static void *set_stop(void *arg)
{
    stopper *s = arg;
    usleep((useconds_t)s->ms * 1000);
    atomic_store(&s->flag, true);
    return NULL;
}

Test(notify, stop_abandons_retries)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "5";
    qg_notify *n = make(&c);
    fail_next("telegram", 429, 5, 20);
    stopper stop = {.ms = 300};
    pthread_t th;
    pthread_create(&th, NULL, set_stop, &stop);
    qg_delivery d[4];
    size_t nd = 0;
    int64_t t0 = qg_time_now_ms();
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, &stop.flag, d, &nd), QG_EIO);
    pthread_join(th, NULL);
    cr_assert_lt(qg_time_now_ms() - t0, 3000);
    cr_assert_not(d[0].ok);
    cr_assert_not_null(strstr(d[0].error, "shutting down"), "%s", d[0].error);
    cr_assert_not_null(strstr(d[0].error, "429"), "%s", d[0].error);
    qg_notify_free(n);
}

/* ---- merging: texts queued for a busy chat target go out as one message */

typedef struct burst_sender {
    qg_notify *n;
    qg_notify_msg m;
    char id[32];
    atomic_bool *stop;
    qg_delivery d[4];
    size_t nd;
    qg_status rc;
} burst_sender;

static void *burst_send(void *arg)
{
    burst_sender *b = arg;
    b->rc = qg_notify_send(b->n, &b->m, NULL, NULL, b->stop, b->d, &b->nd);
    return NULL;
}

/* Sends one alert on a thread of its own, then the others once the first
 * holds the lane (its 429 wait), so they queue behind it. */
static void burst(qg_notify *n, burst_sender *b, int count, const char *text, atomic_bool *stop)
{
    pthread_t th[16];
    for (int i = 0; i < count; i++) {
        b[i] = (burst_sender){.n = n, .m = sample, .stop = stop};
        snprintf(b[i].id, sizeof b[i].id, "sig_burst_%02d", i);
        b[i].m.signal_id = b[i].id;
        if (text) b[i].m.text = text;
        pthread_create(&th[i], NULL, burst_send, &b[i]);
        if (i == 0) usleep(300 * 1000);
    }
    for (int i = 0; i < count; i++) pthread_join(th[i], NULL);
}

/* How many times `id` occurs across the messages' texts. */
static int id_count(cJSON *ms, const char *id)
{
    int seen = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, ms)
    {
        const char *t = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "body"), "text")->valuestring;
        for (const char *p = t; (p = strstr(p, id)); p += strlen(id)) seen++;
    }
    return seen;
}

static bool metric_has(qg_notify *n, const char *line)
{
    qg_buf mb;
    qg_buf_init(&mb, 1 << 16);
    cr_assert_eq(qg_notify_render_metrics(n, &mb), QG_OK);
    bool has = strstr(mb.data, line) != NULL;
    qg_buf_free(&mb);
    return has;
}

Test(notify, burst_to_a_busy_chat_goes_out_as_one_message)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "77";
    qg_notify *n = make(&c);
    fail_next("telegram", 429, 1, 1);
    burst_sender b[10];
    burst(n, b, 10, NULL, NULL);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(b[i].rc, QG_OK, "%s: %s", b[i].id, b[i].d[0].error);
        cr_assert_eq(b[i].nd, 1);
        cr_assert(b[i].d[0].ok);
        cr_assert_str_eq(b[i].d[0].key, "77");
        cr_assert_eq(b[i].d[0].http_status, 200);
        cr_assert_eq(b[i].d[0].attempts, i == 0 ? 2 : 1, "%s", b[i].id);
    }
    /* The first alone (after its 429), the nine that queued meanwhile as one. */
    cJSON *ms = messages();
    cr_assert_eq(cJSON_GetArraySize(ms), 2);
    for (int i = 0; i < 10; i++) cr_assert_eq(id_count(ms, b[i].id), 1, "%s", b[i].id);
    const char *merged =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 1), "body"), "text")
            ->valuestring;
    cr_assert_not_null(strstr(merged, "\n\n\xF0\x9F\x8E\xAF TRADING ALERT"),
                       "alerts are joined by a blank line: %s", merged);
    cJSON_Delete(ms);
    cr_assert(
        metric_has(n, "quantgate_notify_deliveries_total{channel=\"telegram\",result=\"ok\"} 10"));
    cr_assert(metric_has(n, "quantgate_notify_attempts_total{channel=\"telegram\"} 3"));
    cr_assert(metric_has(n, "quantgate_notify_merged_total{channel=\"telegram\"} 9"));
    qg_notify_free(n);
}

static void answer_after(double seconds)
{
    char body[64];
    snprintf(body, sizeof body, "{\"seconds\":%g}", seconds);
    cJSON_Delete(fake_call("/_fake/delay", body));
}

/* A caller's stop_reason names why its stop flag ended a send in flight
 * (a plan step's timeout, not a shutdown). */
Test(notify, stop_reason_names_the_callers_deadline)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "6";
    qg_notify *n = make(&c);
    answer_after(5);
    stopper stop = {.ms = 200};
    pthread_t th;
    pthread_create(&th, NULL, set_stop, &stop);
    qg_notify_msg m = sample;
    m.stop_reason = "the plan step's timeout_s passed";
    qg_delivery d[4];
    size_t nd = 0;
    int64_t t0 = qg_time_now_ms();
    cr_assert_eq(qg_notify_send(n, &m, NULL, NULL, &stop.flag, d, &nd), QG_EIO);
    pthread_join(th, NULL);
    answer_after(0);
    cr_assert_lt(qg_time_now_ms() - t0, 4000, "the send in flight was not abandoned");
    cr_assert_eq(nd, 1);
    cr_assert_not(d[0].ok);
    cr_assert_str_eq(d[0].error, "the plan step's timeout_s passed", "%s", d[0].error);
    qg_notify_free(n);
}

Test(notify, stop_while_a_merged_message_is_on_its_way)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "82";
    qg_notify *n = make(&c);
    /* 0 s: the first alert's 429 holds the chat for 0.5 s; 0.3 s: answers
     * start taking 0.6 s and two alerts queue; 0.5 s: the first is sent
     * again (answered at 1.1 s), then the two go out merged (on their way
     * until 1.7 s); 1.4 s: stop. The caller whose alert is in the other's
     * message must wait for that sender to give up: it used to spin
     * holding the lanes' lock, so the sender could never hand over the
     * outcome. */
    fail_next("telegram", 429, 1, 0.5);
    stopper stop = {.ms = 1400};
    pthread_t th, senders[3];
    pthread_create(&th, NULL, set_stop, &stop);
    int64_t t0 = qg_time_now_ms();
    burst_sender b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = (burst_sender){.n = n, .m = sample, .stop = &stop.flag};
        snprintf(b[i].id, sizeof b[i].id, "sig_stop_%d", i);
        b[i].m.signal_id = b[i].id;
        if (i == 1) {
            usleep(300 * 1000);
            answer_after(0.6);
        }
        pthread_create(&senders[i], NULL, burst_send, &b[i]);
    }
    for (int i = 0; i < 3; i++) pthread_join(senders[i], NULL);
    pthread_join(th, NULL);
    cr_assert_lt(qg_time_now_ms() - t0, 3000);
    cr_assert(b[0].d[0].ok, "%s", b[0].d[0].error);
    cr_assert_eq(b[0].d[0].attempts, 2);
    for (int i = 1; i < 3; i++) {
        cr_assert_eq(b[i].rc, QG_EIO);
        cr_assert_not(b[i].d[0].ok);
        cr_assert_not_null(strstr(b[i].d[0].error, "shutting down"), "%s", b[i].d[0].error);
    }
    qg_notify_free(n);
}

Test(notify, merged_messages_stay_within_the_length_limit)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "78";
    qg_notify *n = make(&c);
    /* 1,500 units each: two fit one 4,096-unit message, three do not. */
    char text[1501];
    memset(text, 'x', 1500);
    text[1500] = '\0';
    fail_next("telegram", 429, 1, 1);
    burst_sender b[5];
    burst(n, b, 5, text, NULL);
    for (int i = 0; i < 5; i++) cr_assert(b[i].d[0].ok, "%s", b[i].d[0].error);
    cJSON *ms = messages();
    /* 1 alone, then 2 + 2 */
    cr_assert_eq(cJSON_GetArraySize(ms), 3);
    cJSON *m;
    cJSON_ArrayForEach(m, ms)
    {
        const char *t = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "body"), "text")->valuestring;
        cr_assert_leq(strlen(t), 4096, "%zu", strlen(t));
        cr_assert_neq(strstr(t, "\xE2\x80\xA6"), t, "merging never cuts an alert");
    }
    cJSON_Delete(ms);
    qg_notify_free(n);
}

Test(notify, merge_max_1_sends_every_alert_alone)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "79";
    c.merge_max = 1;
    qg_notify *n = make(&c);
    fail_next("telegram", 429, 1, 1);
    burst_sender b[4];
    burst(n, b, 4, NULL, NULL);
    cJSON *ms = messages();
    cr_assert_eq(cJSON_GetArraySize(ms), 4);
    cJSON_Delete(ms);
    cr_assert(metric_has(n, "quantgate_notify_merged_total{channel=\"telegram\"} 0"));
    qg_notify_free(n);
}

Test(notify, the_generic_webhook_never_merges)
{
    char url[200];
    snprintf(url, sizeof url, "%s/webhook/SECRETPART4", fake_url);
    qg_notify_config c;
    base_cfg(&c);
    c.webhook_urls = url;
    qg_notify *n = make(&c);
    fail_next("webhook", 429, 1, 1);
    burst_sender b[4];
    burst(n, b, 4, NULL, NULL);
    cJSON *ms = messages();
    cr_assert_eq(cJSON_GetArraySize(ms), 4, "one signal object per request");
    cJSON_Delete(ms);
    qg_notify_free(n);
}

Test(notify, stop_fails_queued_alerts)
{
    qg_notify_config c;
    base_cfg(&c);
    c.telegram_chats = "80";
    qg_notify *n = make(&c);
    fail_next("telegram", 429, 5, 20);
    stopper stop = {.ms = 300};
    pthread_t th;
    pthread_create(&th, NULL, set_stop, &stop);
    int64_t t0 = qg_time_now_ms();
    burst_sender b[4];
    burst(n, b, 4, NULL, &stop.flag);
    pthread_join(th, NULL);
    cr_assert_lt(qg_time_now_ms() - t0, 3000);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(b[i].rc, QG_EIO);
        cr_assert_eq(b[i].nd, 1);
        cr_assert_not(b[i].d[0].ok);
        cr_assert_str_eq(b[i].d[0].key, "80");
        cr_assert_not_null(strstr(b[i].d[0].error, "shutting down"), "%s", b[i].d[0].error);
    }
    qg_notify_free(n);
}

Test(notify, transport_error_and_log_are_masked)
{
    /* stderr to a file, to read what the log said */
    char path[] = "/tmp/qg_notify_logXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);

    qg_notify_config c;
    base_cfg(&c);
    c.telegram_api_url = "http://127.0.0.1:1"; /* nothing listens */
    c.telegram_chats = "5";
    c.slack_urls = "http://127.0.0.1:1/slack/SECRETPART9";
    c.retries = 1;
    qg_notify *n = make(&c);
    qg_delivery d[4];
    size_t nd = 0;
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_EIO);
    qg_notify_free(n);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char log[8192] = "";
    ssize_t got = pread(fd, log, sizeof log - 1, 0);
    close(fd);
    unlink(path);
    cr_assert(got > 0);
    log[got] = '\0';
    cr_assert_eq(nd, 2);
    for (size_t i = 0; i < nd; i++) {
        cr_assert_not(d[i].ok);
        cr_assert_eq(d[i].attempts, 2);
        cr_assert_eq(d[i].http_status, 0);
        cr_assert_not_null(strstr(d[i].error, "transport"), "%s", d[i].error);
    }
    no_secret(d, nd);
    cr_assert_not_null(strstr(log, "failed after 2 attempt"), "%s", log);
    cr_assert_null(strstr(log, "AAHdq"), "token in the log: %s", log);
    cr_assert_null(strstr(log, "SECRETPART"), "URL in the log: %s", log);
}

Test(notify, config_errors_name_the_variable)
{
    qg_notify_config c;
    base_cfg(&c);
    qg_notify *n = NULL;
    qg_error err = {0};

    c.telegram_chats = "12,abc";
    cr_assert_eq(qg_notify_new(&c, &n, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "TELEGRAM_CHAT_ID"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "'abc'"), "%s", err.msg);

    base_cfg(&c);
    c.telegram_parse_mode = "Markdown";
    cr_assert_eq(qg_notify_new(&c, &n, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "QG_TELEGRAM_PARSE_MODE"), "%s", err.msg);

    base_cfg(&c);
    c.telegram_token = NULL;
    c.telegram_chats = "12";
    cr_assert_eq(qg_notify_new(&c, &n, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "TELEGRAM_BOT_TOKEN"), "%s", err.msg);

    base_cfg(&c);
    c.telegram_token = "AAHdq-no-colon-SECRET";
    cr_assert_eq(qg_notify_new(&c, &n, &err), QG_EINVAL);
    cr_assert_null(strstr(err.msg, "AAHdq"), "%s", err.msg);

    base_cfg(&c);
    c.slack_urls = "https://hooks.slack.com/services/T/B/SECRETPART,ftp://x/SECRETPART";
    cr_assert_eq(qg_notify_new(&c, &n, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "QG_SLACK_WEBHOOK_URL: entry 2"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "SECRETPART"), "%s", err.msg);

    base_cfg(&c);
    c.retries = -1;
    cr_assert_eq(qg_notify_new(&c, &n, &err), QG_EINVAL);
    cr_assert_not_null(strstr(err.msg, "QG_NOTIFY_RETRIES"), "%s", err.msg);

    /* no targets at all is valid: nothing is sent */
    base_cfg(&c);
    c.telegram_token = NULL;
    cr_assert_eq(qg_notify_new(&c, &n, &err), QG_OK, "%s", err.msg);
    qg_delivery d[2];
    size_t nd = 9;
    cr_assert_eq(qg_notify_send(n, &sample, NULL, NULL, NULL, d, &nd), QG_OK);
    cr_assert_eq(nd, 0);
    qg_delivery one;
    cr_assert_eq(qg_notify_telegram_text(n, "5", "x", &one), QG_EINVAL);
    qg_notify_free(n);
}

Test(notify, format_and_caps)
{
    char *t = qg_notify_format(&sample);
    cr_assert_not_null(strstr(t, "TRADING ALERT"));
    cr_assert_not_null(strstr(t, "Timeframe: 15m\n"));
    cr_assert_not_null(strstr(t, "Confidence: 85%\n"));
    cr_assert_not_null(strstr(t, "Risk: medium\n"));
    cr_assert_not_null(strstr(t, "Clean break of structure."));
    cr_assert_null(strstr(t, "Exit:"), "no exit given");
    cr_assert_neq(t[strlen(t) - 1], '\n');
    free(t);
    qg_notify_msg m = {.text = "as is"};
    t = qg_notify_format(&m);
    cr_assert_str_eq(t, "as is");
    free(t);

    /* UTF-16 counting: an emoji is 2 units and is never cut in half */
    char *c = qg_notify_cap_text("ab\xF0\x9F\x8E\xAF"
                                 "cd",
                                 4);
    cr_assert_str_eq(c, "ab\xE2\x80\xA6");
    free(c);
    c = qg_notify_cap_text("ab\xF0\x9F\x8E\xAF", 4);
    cr_assert_str_eq(c, "ab\xF0\x9F\x8E\xAF");
    free(c);
    cr_assert_eq(qg_notify_parse_retry_after("1.5"), 1.5);
    cr_assert_eq(qg_notify_parse_retry_after(" 3"), 3);
    cr_assert_lt(qg_notify_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
    cr_assert_lt(qg_notify_parse_retry_after(""), 0);
}
