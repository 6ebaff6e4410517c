/*
 * discord.c - the Discord webhook backend.
 *
 *   POST <QG_DISCORD_WEBHOOK_URL>   {"content":"...","allowed_mentions":{"parse":[]}}
 *
 * Discord answers 204 (or 200 with the message when ?wait=true); content
 * is at most 2000 characters. A 429 carries {"retry_after":<seconds, a
 * float>,"global":..} and a Retry-After header; the body's value is the
 * precise one. allowed_mentions is empty so an alert never pings
 * @everyone. The webhook URL (it holds the webhook's token) is only shown
 * masked.
 */
#include "notify/notify_int.h"

#include <quantgate/mem.h>

#include <cjson/cJSON.h>
#include <string.h>

#define QG_DISCORD_TEXT_MAX 2000

static qg_status discord_build(const qg_notify *n, const char *dest, const char *text,
                               const qg_notify_msg *m, char **url, char **body)
{
    (void)n;
    (void)m;
    *url = qg_xstrdup(dest);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "content", text);
    cJSON *am = cJSON_AddObjectToObject(root, "allowed_mentions");
    cJSON_AddArrayToObject(am, "parse");
    *body = qg_notify_print(root);
    return QG_OK;
}

static void discord_classify(int status, const char *body, const char *retry_after,
                             qg_notify_verdict *v)
{
    cJSON *j = status >= 300 ? cJSON_Parse(body) : NULL;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
    qg_notify_verdict_from_status(status, retry_after,
                                  cJSON_IsString(msg) ? msg->valuestring : NULL, v);
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(j, "retry_after");
    if (status == 429 && cJSON_IsNumber(ra) && ra->valuedouble >= 0)
        v->retry_after_s = ra->valuedouble;
    cJSON_Delete(j);
}

const qg_notify_backend qg_notify_discord = {
    .channel = "discord",
    .max_text = QG_DISCORD_TEXT_MAX,
    .merges = true,
    .reads_extra = false,
    .build = discord_build,
    .classify = discord_classify,
};
