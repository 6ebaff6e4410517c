/*
 * telegram.c - the Telegram Bot API backend: one sendMessage per chat id.
 *
 *   POST {QG_TELEGRAM_API_URL}/bot<token>/sendMessage
 *   {"chat_id":<id>,"text":"...","parse_mode"?:"HTML"|"MarkdownV2",
 *    "disable_web_page_preview":true}
 *
 * Delivered means HTTP 200 and {"ok":true,...}. Errors come back as
 * {"ok":false,"error_code":N,"description":"..."}; a flood-control 429
 * carries "parameters":{"retry_after":N} (seconds), which the core waits
 * out instead of its backoff. The description never holds the token, so
 * it goes into the delivery's error.
 *
 * Text is plain: with a parse mode configured it is escaped for that mode
 * (so a '.' or '<' in an explanation never turns a message into a 400)
 * and only the first line - the alert's title - is made bold.
 */
#include "notify/notify_int.h"

#include <quantgate/mem.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QG_TELEGRAM_TEXT_MAX 4096

/* Escapes s for the parse mode into b (MarkdownV2: every reserved
 * character gets a backslash; HTML: & < >). */
static void tg_escape(qg_buf *b, const char *s, size_t n, const char *mode)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (strcmp(mode, "HTML") == 0) {
            if (c == '&')
                qg_buf_puts(b, "&amp;");
            else if (c == '<')
                qg_buf_puts(b, "&lt;");
            else if (c == '>')
                qg_buf_puts(b, "&gt;");
            else
                qg_buf_append(b, &c, 1);
        } else {
            if (strchr("_*[]()~`>#+-=|{}.!\\", c)) qg_buf_append(b, "\\", 1);
            qg_buf_append(b, &c, 1);
        }
    }
}

/* The text as sent: escaped for the parse mode, its first line bold. */
static char *tg_render(const char *text, const char *mode)
{
    if (!mode) return qg_xstrdup(text);
    qg_buf b;
    qg_buf_init(&b, (size_t)64 << 10);
    const char *nl = strchr(text, '\n');
    size_t first = nl ? (size_t)(nl - text) : strlen(text);
    bool html = strcmp(mode, "HTML") == 0;
    qg_buf_puts(&b, html ? "<b>" : "*");
    tg_escape(&b, text, first, mode);
    qg_buf_puts(&b, html ? "</b>" : "*");
    if (nl) tg_escape(&b, nl, strlen(nl), mode);
    char *out = qg_xstrdup(b.len ? b.data : "");
    qg_buf_free(&b);
    return out;
}

static bool tg_numeric(const char *s)
{
    if (*s == '-') s++;
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

static qg_status tg_build(const qg_notify *n, const char *dest, const char *text,
                          const qg_notify_msg *m, char **url, char **body)
{
    (void)m;
    if (!n->tg_token) return QG_EINVAL;
    size_t ul = strlen(n->tg_api) + strlen(n->tg_token) + 32;
    *url = qg_xmalloc(ul);
    snprintf(*url, ul, "%s/bot%s/sendMessage", n->tg_api, n->tg_token);

    cJSON *root = cJSON_CreateObject();
    /* Numeric ids go as JSON integers written digit for digit (a double
     * would round ids past 2^53); @channel names as strings. */
    if (tg_numeric(dest))
        cJSON_AddItemToObject(root, "chat_id", cJSON_CreateRaw(dest));
    else
        cJSON_AddStringToObject(root, "chat_id", dest);
    char *rendered = tg_render(text, n->tg_parse_mode);
    /* Escaping can grow the text past the cap: cut again (rare). */
    char *capped = qg_notify_cap_text(rendered, QG_TELEGRAM_TEXT_MAX);
    free(rendered);
    cJSON_AddStringToObject(root, "text", capped);
    free(capped);
    if (n->tg_parse_mode) cJSON_AddStringToObject(root, "parse_mode", n->tg_parse_mode);
    cJSON_AddBoolToObject(root, "disable_web_page_preview", true);
    *body = qg_notify_print(root);
    return QG_OK;
}

static void tg_classify(int status, const char *body, const char *retry_after, qg_notify_verdict *v)
{
    cJSON *j = cJSON_Parse(body);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(j, "description");
    const char *d = cJSON_IsString(desc) ? desc->valuestring : NULL;
    if (status == 200) {
        if (cJSON_IsTrue(ok)) {
            v->kind = QG_NV_OK;
            v->retry_after_s = -1;
            v->error[0] = '\0';
        } else {
            /* A 200 that is not {"ok":true} is not a Bot API answer: a
             * misconfigured QG_TELEGRAM_API_URL, not worth retrying. */
            v->kind = QG_NV_FINAL;
            v->retry_after_s = -1;
            snprintf(v->error, sizeof v->error, "HTTP 200 without \"ok\":true%s%s", d ? ": " : "",
                     d ? d : "");
        }
        cJSON_Delete(j);
        return;
    }
    qg_notify_verdict_from_status(status, retry_after, d, v);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(j, "parameters");
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(params, "retry_after");
    if (status == 429 && cJSON_IsNumber(ra) && ra->valuedouble >= 0)
        v->retry_after_s = ra->valuedouble;
    cJSON_Delete(j);
}

const qg_notify_backend qg_notify_telegram = {
    .channel = "telegram",
    .max_text = QG_TELEGRAM_TEXT_MAX,
    .merges = true,
    .reads_extra = false,
    .build = tg_build,
    .classify = tg_classify,
};
