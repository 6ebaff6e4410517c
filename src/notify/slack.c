/*
 * slack.c - the Slack incoming-webhook backend.
 *
 *   POST <QG_SLACK_WEBHOOK_URL>   {"text":"..."}
 *
 * Slack answers 200 with the plain-text body "ok"; errors are plain-text
 * codes (400 invalid_payload, 403 action_prohibited, 404 no_service, 410
 * channel_is_archived, 429 rate_limited with Retry-After, 500
 * rollup_error), which go into the delivery's error. The webhook URL is
 * the secret: it is only ever shown masked.
 */
#include "notify/notify_int.h"

#include <quantgate/mem.h>

#include <cjson/cJSON.h>
#include <string.h>

#define QG_SLACK_TEXT_MAX 40000

static qg_status slack_build(const qg_notify *n, const char *dest, const char *text,
                             const qg_notify_msg *m, char **url, char **body)
{
    (void)n;
    (void)m;
    *url = qg_xstrdup(dest);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "text", text);
    *body = qg_notify_print(root);
    return QG_OK;
}

static void slack_classify(int status, const char *body, const char *retry_after,
                           qg_notify_verdict *v)
{
    /* Slack's error bodies are short codes; anything else (an HTML page
     * from a proxy) is left out of the error. */
    const char *detail = NULL;
    if (status >= 300 && body && *body && strlen(body) < 64 && !strchr(body, '<')) detail = body;
    qg_notify_verdict_from_status(status, retry_after, detail, v);
}

const qg_notify_backend qg_notify_slack = {
    .channel = "slack",
    .max_text = QG_SLACK_TEXT_MAX,
    .merges = true,
    .reads_extra = false,
    .build = slack_build,
    .classify = slack_classify,
};
