/*
 * service.c - builds the signal-alert service from the environment (see
 * service.h): every setting is read and checked here, so a bad value stops
 * the server at start with the variable's name, never midway through a
 * signal.
 *
 * Order matters at both ends: the batcher comes first (ingest and the
 * pipeline write through it, and the AI layer's usage records) and goes
 * last (their final writes must commit); ingest stops taking signals
 * before the pipeline stops.
 */
#include "signal/service.h"

#include "signal/live.h"

#include <quantgate/config.h>
#include <quantgate/file.h>
#include <quantgate/log.h>
#include <quantgate/mem.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A JSON value from a variable: inline JSON, or @path to a file. */
static qg_status env_json(const char *name, cJSON **out, qg_error *err)
{
    const char *v = qg_config_str(name, NULL);
    *out = NULL;
    if (!v || !*v) return QG_OK;
    char *text = NULL;
    if (v[0] == '@') {
        size_t len = 0;
        qg_status rc = qg_file_read_all(v + 1, (size_t)1 << 20, &text, &len, err);
        if (rc) {
            char why[QG_ERROR_MSG_MAX];
            snprintf(why, sizeof why, "%s", err->msg);
            return qg_error_set(err, rc, "%s: %s", name, why);
        }
    } else {
        text = qg_xstrdup(v);
    }
    const char *bad = NULL;
    *out = cJSON_ParseWithOpts(text, &bad, true);
    qg_status rc = QG_OK;
    if (!*out)
        rc = qg_error_set(err, QG_EINVAL, "%s: invalid JSON at offset %ld", name,
                          bad ? (long)(bad - text) : 0L);
    free(text);
    return rc;
}

/* QG_SIGNAL_OWNER's account, else the oldest admin, else the fallback. */
static qg_status resolve_owner(qg_store *store, const char *fallback, char *out, qg_error *err)
{
    const char *email = qg_config_str("QG_SIGNAL_OWNER", "");
    qg_conn *c = NULL;
    qg_status rc = qg_store_acquire(store, &c, err);
    if (rc) return rc;
    out[0] = 0;
    if (*email) {
        qg_val p[] = {QG_VTEXT(email)};
        rc = qg_conn_query(c, "SELECT id FROM users WHERE email = ?", p, 1, qg_row_take_id, out,
                           err);
        if (!rc && !out[0])
            rc = qg_error_set(err, QG_EINVAL, "QG_SIGNAL_OWNER: no account '%.100s'", email);
    } else {
        rc = qg_conn_query(c,
                           "SELECT id FROM users WHERE role = 'admin' ORDER BY created_at, id "
                           "LIMIT 1",
                           NULL, 0, qg_row_take_id, out, err);
    }
    qg_store_release(store, c);
    if (!rc && !out[0] && fallback) snprintf(out, QG_ID_MAX, "%s", fallback);
    return rc;
}

/* TELEGRAM_CHAT_ID and QG_TELEGRAM_ALLOWED_CHATS: numeric chat ids. */
static qg_status parse_chats(qg_signals *s, const char *name, qg_error *err)
{
    const char *v = qg_config_str(name, "");
    char *copy = qg_xstrdup(v), *save = NULL;
    qg_status rc = QG_OK;
    for (char *tok = strtok_r(copy, ", ", &save); tok && !rc; tok = strtok_r(NULL, ", ", &save)) {
        char *end = NULL;
        long long id = strtoll(tok, &end, 10);
        if (end == tok || *end) continue; /* @channel names receive alerts but send no commands */
        if (s->nallowed == QG_TELEGRAM_ALLOWED_MAX)
            rc = qg_error_set(err, QG_ERANGE, "%s: more than %d chat ids", name,
                              QG_TELEGRAM_ALLOWED_MAX);
        else
            s->allowed_chats[s->nallowed++] = id;
    }
    free(copy);
    return rc;
}

/* QG_SIGNAL_SYNC: pipelined (the default: the log is synced on its own
 * thread while the next batch commits) or commit (each COMMIT syncs). */
static qg_status sync_mode(qg_batch_sync *out, qg_error *err)
{
    const char *v = qg_config_str("QG_SIGNAL_SYNC", "pipelined");
    if (strcmp(v, "pipelined") == 0)
        *out = QG_BATCH_SYNC_PIPELINED;
    else if (strcmp(v, "commit") == 0)
        *out = QG_BATCH_SYNC_COMMIT;
    else
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_SYNC='%.40s': must be pipelined or commit",
                            v);
    return QG_OK;
}

static qg_status open_webhook_auth(qg_signals *s, qg_error *err)
{
    const char *secret = qg_config_str("WEBHOOK_SECRET", "");
    if (*secret) {
        s->webhook_secret = qg_xstrdup(secret);
        crypto_generichash(s->secret_digest, sizeof s->secret_digest, (const unsigned char *)secret,
                           strlen(secret), NULL, 0);
    }
    const char *hmac = qg_config_str("QG_WEBHOOK_HMAC", "optional");
    if (strcmp(hmac, "required") == 0)
        s->hmac_required = true;
    else if (strcmp(hmac, "optional") != 0)
        return qg_error_set(err, QG_EINVAL, "QG_WEBHOOK_HMAC='%.40s': must be optional or required",
                            hmac);
    if (s->hmac_required && !s->webhook_secret)
        return qg_error_set(err, QG_EINVAL,
                            "QG_WEBHOOK_HMAC=required needs WEBHOOK_SECRET (the HMAC key)");
    int64_t replay;
    qg_status rc = qg_config_int_range("QG_WEBHOOK_REPLAY_WINDOW_S", 300, 1, 86400, &replay, err);
    s->replay_window_ms = replay * 1000;
    const char *tg = qg_config_str("QG_TELEGRAM_WEBHOOK_SECRET", "");
    if (*tg) s->telegram_secret = qg_xstrdup(tg);
    if (!rc) rc = parse_chats(s, "TELEGRAM_CHAT_ID", err);
    if (!rc) rc = parse_chats(s, "QG_TELEGRAM_ALLOWED_CHATS", err);
    return rc;
}

static qg_status open_rules(qg_signals *s, qg_pipeline_config *pc, qg_error *err)
{
    qg_status rc = qg_sessions_parse(qg_config_str("QG_SIGNAL_SESSIONS", ""), &s->sessions, err);
    if (rc) return rc;
    pc->sessions = s->sessions;
    qg_score_weights_default(&pc->weights);
    const char *w = qg_config_str("QG_SIGNAL_SCORE_WEIGHTS", "");
    if (*w && (rc = qg_score_weights_parse(w, &pc->weights, err))) return rc;
    if ((rc = env_json("QG_SIGNAL_POLICY", &s->policies, err))) return rc;
    if (s->policies && !cJSON_IsArray(s->policies))
        return qg_error_set(err, QG_EINVAL, "QG_SIGNAL_POLICY: must be a JSON array of policies");
    pc->config_policies = s->policies;
    if ((rc = env_json("QG_SIGNAL_PLAN", &s->plan, err))) return rc;
    pc->plan = s->plan;
    return QG_OK;
}

static qg_status open_pipeline_config(qg_pipeline_config *pc, qg_error *err)
{
    int64_t workers, queue_max, min_conf, cooldown_s, similar, retries, retry_base, rm_queue,
        nt_queue, write_ahead;
    bool killzone, remember, ai_plans;
    qg_status rc;
    if ((rc = qg_config_int_range("QG_SIGNAL_WORKERS", 8, 1, 256, &workers, err)) ||
        (rc = qg_config_int_range("QG_SIGNAL_QUEUE_MAX", 100000, 16, 100000000, &queue_max, err)) ||
        (rc = qg_config_int_range("QG_SIGNAL_MIN_CONFLUENCES", 2, 0, QG_SIGNAL_CONFLUENCES_MAX,
                                  &min_conf, err)) ||
        (rc = qg_config_int_range("QG_SIGNAL_COOLDOWN_S", 0, 0, 7 * 86400, &cooldown_s, err)) ||
        (rc = qg_config_int_range("QG_SIGNAL_SIMILAR", 5, 0, 50, &similar, err)) ||
        (rc = qg_config_int_range("QG_SIGNAL_RETRIES", 3, 0, 20, &retries, err)) ||
        (rc = qg_config_int_range("QG_SIGNAL_RETRY_BASE_MS", 200, 1, 600000, &retry_base, err)) ||
        (rc = qg_config_bool("QG_SIGNAL_KILLZONE_REQUIRED", true, &killzone, err)) ||
        (rc = qg_config_bool("QG_SIGNAL_REMEMBER", true, &remember, err)) ||
        (rc = qg_config_int_range("QG_SIGNAL_REMEMBER_QUEUE", QG_PIPE_REMEMBER_QUEUE, 1, 10000000,
                                  &rm_queue, err)) ||
        (rc = qg_config_int_range("QG_SIGNAL_NOTIFY_QUEUE", QG_PIPE_NOTIFY_QUEUE, 1, 10000000,
                                  &nt_queue, err)) ||
        (rc = qg_config_int_range("QG_SIGNAL_WRITE_AHEAD", QG_PIPE_WRITE_AHEAD, 64, 1000000,
                                  &write_ahead, err)) ||
        (rc = qg_config_bool("QG_SIGNAL_AI_PLANS", true, &ai_plans, err)) ||
        (rc = qg_config_double("QG_SIGNAL_SCORE_THRESHOLD", 70, 0, 100, &pc->score_threshold, err)))
        return rc;
    pc->workers = (int)workers;
    pc->queue_max = (size_t)queue_max;
    pc->min_confluences = (int)min_conf;
    pc->cooldown_ms = cooldown_s * 1000;
    pc->similar_setups = (int)similar;
    pc->stage_retries = (int)retries;
    pc->stage_retry_base_ms = retry_base;
    pc->killzone_required = killzone;
    pc->remember = remember;
    pc->remember_queue = (size_t)rm_queue;
    pc->notify_queue = (size_t)nt_queue;
    pc->write_ahead = (size_t)write_ahead;
    pc->ai_plans = ai_plans;
    pc->model = qg_config_str("QG_SIGNAL_MODEL", "builtin");
    return QG_OK;
}

static qg_status open_ingest(qg_signals *s, qg_store *store, qg_error *err)
{
    qg_ingest_config ic = {.store = store, .batcher = s->batcher, .pipeline = s->pipeline};
    int64_t window;
    bool limits_on = strcmp(qg_config_str("QG_RATE_LIMITS", ""), "off") != 0;
    qg_status rc;
    if ((rc =
             qg_config_double("QG_WEBHOOK_RATE_PER_SYMBOL", 0, 0, 1e9, &ic.rate_per_symbol, err)) ||
        (rc = qg_config_double("QG_WEBHOOK_RATE_GLOBAL", 0, 0, 1e9, &ic.rate_global, err)) ||
        (rc = qg_config_double("MIN_CONFIDENCE_SCORE", 0, 0, 100, &ic.min_confidence, err)) ||
        (rc = qg_config_int_range("QG_WEBHOOK_DEDUP_WINDOW_S", 300, 0, 30 * 86400, &window, err)))
        return rc;
    if (!limits_on) ic.rate_per_symbol = ic.rate_global = 0;
    ic.dedup_window_ms = window * 1000;
    return qg_ingest_new(&ic, &s->ingest, err);
}

/* QG_DETECT_KEEP_BARS: the bars kept a pair so the live detectors
 * survive a restart (0: state in memory only). */
static qg_status restore_live(qg_signals *s, qg_store *store, qg_error *err)
{
    int64_t keep;
    qg_status rc = qg_config_int_range("QG_DETECT_KEEP_BARS", 5000, 0, 1000000, &keep, err);
    size_t pairs = 0, bars = 0;
    if (!rc) rc = qg_ict_live_persist(s->live, store, s->batcher, keep, &pairs, &bars, err);
    if (rc) {
        qg_error_prefix(err, "live detector");
        return rc;
    }
    if (pairs)
        qg_info("live detector: %zu bars of %zu symbol/timeframe pairs replayed", bars, pairs);
    return QG_OK;
}

qg_status qg_signals_open(qg_store *store, qg_ai *ai, qg_memory *memory, const char *owner_fallback,
                          qg_signals **out, qg_error *err)
{
    qg_signals *s = qg_xcalloc(1, sizeof *s);
    qg_pipeline_config pc = {.store = store, .ai = ai, .memory = memory};
    qg_notify_config nc;
    int64_t batch_max;
    qg_status rc = qg_config_int_range("QG_SIGNAL_BATCH_MAX", 4096, 1, 1000000, &batch_max, err);
    if (!rc) rc = open_webhook_auth(s, err);
    if (!rc) rc = resolve_owner(store, owner_fallback, s->owner_id, err);
    if (!rc) rc = open_pipeline_config(&pc, err);
    if (!rc) rc = open_rules(s, &pc, err);
    if (!rc) {
        qg_notify_config_from_env(&nc);
        rc = qg_notify_new(&nc, &s->notify, err);
    }
    if (!rc) rc = qg_ict_live_new(qg_config_str("QG_DETECT_HTF", NULL), &s->live, err);
    qg_batch_sync sync = QG_BATCH_SYNC_PIPELINED;
    if (!rc) rc = sync_mode(&sync, err);
    if (!rc) rc = qg_batcher_new(store, "qg-sigdb", (int)batch_max, 0, sync, &s->batcher, err);
    if (!rc) {
        s->ai = ai;
        qg_ai_use_batcher(ai, s->batcher);
        pc.batcher = s->batcher;
        pc.notify = s->notify;
        pc.owner_id = s->owner_id;
        rc = qg_pipeline_new(&pc, &s->pipeline, err);
    }
    if (!rc) rc = open_ingest(s, store, err);
    if (!rc) rc = restore_live(s, store, err);
    size_t resumed = 0;
    if (!rc) rc = qg_pipeline_resume(s->pipeline, &resumed, err);
    if (rc) {
        qg_signals_free(s);
        return rc;
    }
    if (resumed) qg_info("signals: %zu unfinished signals resumed", resumed);
    *out = s;
    return QG_OK;
}

void qg_signals_free(qg_signals *s)
{
    if (!s) return;
    /* The loops have stopped, so nothing new comes in: let the accepts in
     * flight commit (their done hands them to the pipeline), stop the
     * pipeline, then let its last writes commit. */
    if (s->batcher) {
        qg_error err = {0};
        qg_batcher_run(s->batcher, NULL, NULL, &err);
    }
    qg_pipeline_free(s->pipeline);
    qg_ai_use_batcher(s->ai, NULL);
    qg_batcher_free(s->batcher);
    qg_ingest_free(s->ingest);
    qg_ict_live_free(s->live);
    qg_notify_free(s->notify);
    qg_sessions_free(s->sessions);
    cJSON_Delete(s->policies);
    cJSON_Delete(s->plan);
    if (s->webhook_secret) sodium_memzero(s->webhook_secret, strlen(s->webhook_secret));
    sodium_memzero(s->secret_digest, sizeof s->secret_digest);
    free(s->webhook_secret);
    free(s->telegram_secret);
    free(s);
}

bool qg_signals_secret_ok(const qg_signals *s, const char *presented)
{
    if (!s->webhook_secret || !presented) return false;
    /* Compare fixed-size digests, so neither the content nor the length of
     * the secret leaks through timing. */
    unsigned char b[sizeof s->secret_digest];
    crypto_generichash(b, sizeof b, (const unsigned char *)presented, strlen(presented), NULL, 0);
    return sodium_memcmp(s->secret_digest, b, sizeof b) == 0;
}
