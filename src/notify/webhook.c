/*
 * webhook.c - the generic JSON webhook backend.
 *
 *   POST <QG_NOTIFY_WEBHOOK_URL>
 *   {"event":"signal","text":"...","signal":{...}}
 *
 * "signal" is the message's `extra` object when the pipeline gave one (the
 * stored signal with its analysis), else the message's own fields. A
 * plain text message without a signal (`quantgate notify test`) is sent
 * as {"event":"message","text":"..."}. Any 2xx is delivered; 429 and 5xx
 * are retried (Retry-After honoured); other statuses are final. The
 * receiver's body is not copied into errors: it could echo anything.
 */
#include "notify/notify_int.h"

#include <quantgate/mem.h>

#include <cjson/cJSON.h>
#include <string.h>

#define QG_WEBHOOK_TEXT_MAX 65536

static void add_str(cJSON *o, const char *name, const char *s)
{
    if (s) cJSON_AddStringToObject(o, name, s);
}

static cJSON *signal_json(const qg_notify_msg *m)
{
    if (m->extra) return cJSON_Duplicate(m->extra, true);
    cJSON *s = cJSON_CreateObject();
    add_str(s, "id", m->signal_id);
    add_str(s, "correlation_id", m->correlation_id);
    add_str(s, "symbol", m->symbol);
    add_str(s, "timeframe", m->timeframe);
    add_str(s, "signal_type", m->signal_type);
    add_str(s, "session", m->session);
    cJSON_AddNumberToObject(s, "confidence", m->confidence);
    cJSON_AddNumberToObject(s, "score", m->score);
    add_str(s, "risk", m->risk);
    add_str(s, "explanation", m->explanation);
    if (m->has_entry) cJSON_AddNumberToObject(s, "entry", m->entry);
    if (m->has_exit) cJSON_AddNumberToObject(s, "exit", m->exit);
    if (m->has_sl) cJSON_AddNumberToObject(s, "sl", m->sl);
    if (m->has_tp) cJSON_AddNumberToObject(s, "tp", m->tp);
    return s;
}

static qg_status webhook_build(const qg_notify *n, const char *dest, const char *text,
                               const qg_notify_msg *m, char **url, char **body)
{
    (void)n;
    *url = qg_xstrdup(dest);
    bool has_signal = m->extra || m->signal_id || m->symbol;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "event", has_signal ? "signal" : "message");
    cJSON_AddStringToObject(root, "text", text);
    if (has_signal) cJSON_AddItemToObject(root, "signal", signal_json(m));
    *body = qg_notify_print(root);
    return QG_OK;
}

static void webhook_classify(int status, const char *body, const char *retry_after,
                             qg_notify_verdict *v)
{
    (void)body;
    qg_notify_verdict_from_status(status, retry_after, NULL, v);
}

const qg_notify_backend qg_notify_webhook = {
    .channel = "webhook",
    .max_text = QG_WEBHOOK_TEXT_MAX,
    .merges = false,
    .reads_extra = true,
    .build = webhook_build,
    .classify = webhook_classify,
};
