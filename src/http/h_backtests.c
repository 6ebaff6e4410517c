/*
 * h_backtests.c - backtest jobs over HTTP: start, list, read, cancel and
 * delete, and their progress as Server-Sent Events.
 *
 * POST validates everything a run depends on (strategy and parameters,
 * settings, timeframe against the dataset, the from/to window against the
 * data) before the row is written, so a queued job fails only on what
 * cannot be known in advance. Messages mirror `quantgate backtest`'s
 * options with field names instead of flags. The job itself runs on the
 * background pool (jobs.c); GET reads the row and overlays the live
 * progress of a job still running in this process.
 *
 * The event stream's poll runs on the event loop: it reads the job's
 * atomics and its final_json only, never the database or a lock.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <quantgate/json.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const request_fields[] = {"dataset_id", "strategy", "params",       "timeframe",
                                             "cash",       "fee_bps",  "slippage_bps", "direction",
                                             "size_pct",   "from",     "to",           NULL};

static bool known_fields(qg_req *r, const cJSON *body)
{
    for (const cJSON *it = body->child; it; it = it->next) {
        bool ok = false;
        for (const char *const *f = request_fields; *f && !ok; f++)
            ok = strcmp(*f, it->string) == 0;
        if (!ok) {
            qg_reply_error(r, 400, "validation_failed",
                           "field '%.64s': unknown field (expected dataset_id, strategy, params, "
                           "timeframe, cash, fee_bps, slippage_bps, direction, size_pct, from, to)",
                           it->string);
            return false;
        }
    }
    return true;
}

/* A time field: an ISO-8601 string or epoch seconds/milliseconds. */
static bool time_field(qg_req *r, const cJSON *body, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v || cJSON_IsNull(v)) return true;
    char num[32];
    const char *text = NULL;
    if (cJSON_IsString(v))
        text = v->valuestring;
    else if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && fabs(v->valuedouble) < 1e16) {
        snprintf(num, sizeof num, "%.0f", v->valuedouble);
        text = num;
    }
    qg_error err = {0};
    if (!text) {
        qg_reply_error(r, 400, "validation_failed",
                       "field '%s': expected a date-time string or epoch number", name);
        return false;
    }
    if (qg_time_parse_arg(text, out, &err)) {
        qg_reply_error(r, 400, "validation_failed", "field '%s': %s", name, err.msg);
        return false;
    }
    return true;
}

static char *builtin_list(char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *const *n = qg_strategy_builtin_names(); *n; n++) {
        strncat(out, *n, cap - strlen(out) - 1);
        if (n[1]) strncat(out, ", ", cap - strlen(out) - 1);
    }
    return out;
}

/* Fills sp->strategy from "strategy" and "params". */
static bool strategy_fields(qg_req *r, const cJSON *body, qg_bt_job_spec *sp)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "strategy");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "params");
    char names[256];
    qg_param_override ov[QG_STRAT_MAX_PARAMS];
    size_t n_ov = 0;
    if (params && !cJSON_IsNull(params)) {
        if (!cJSON_IsObject(params)) {
            qg_reply_error(r, 400, "validation_failed",
                           "field 'params': expected an object of name: number");
            return false;
        }
        for (const cJSON *it = params->child; it; it = it->next) {
            if (n_ov == QG_STRAT_MAX_PARAMS) {
                qg_reply_error(r, 400, "validation_failed",
                               "field 'params': more than %d parameters", QG_STRAT_MAX_PARAMS);
                return false;
            }
            if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
                qg_reply_error(r, 400, "validation_failed",
                               "field 'params.%.32s': expected a number", it->string);
                return false;
            }
            ov[n_ov++] = (qg_param_override){it->string, it->valuedouble};
        }
    }
    const char *json = NULL;
    char *printed = NULL;
    if (!s || cJSON_IsNull(s)) {
        qg_reply_error(r, 400, "validation_failed",
                       "field 'strategy': is required (a built-in name: %s; or a spec object)",
                       builtin_list(names, sizeof names));
        return false;
    }
    if (cJSON_IsString(s)) {
        json = qg_strategy_builtin(s->valuestring);
        if (!json) {
            qg_reply_error(r, 400, "validation_failed",
                           "field 'strategy': unknown strategy '%.64s' (built-in: %s)",
                           s->valuestring, builtin_list(names, sizeof names));
            return false;
        }
    } else if (cJSON_IsObject(s)) {
        json = printed = qg_json_compact(s);
    } else {
        qg_reply_error(r, 400, "validation_failed",
                       "field 'strategy': expected a built-in name or a spec object");
        return false;
    }
    qg_error err = {0};
    qg_status rc = json ? qg_strategy_parse(json, strlen(json), ov, n_ov, &sp->strategy, &err)
                        : qg_error_set(&err, QG_ENOMEM, "out of memory");
    free(printed);
    if (rc) {
        /* A built-in is always valid: its errors come from the overrides. */
        qg_reply_error(r, rc == QG_EINVAL ? 400 : 500,
                       rc == QG_EINVAL ? "validation_failed" : "internal", "field '%s': %s",
                       cJSON_IsString(s) ? "params" : "strategy", err.msg);
        return false;
    }
    return true;
}

/* The settings the CLI takes as --cash, --fee-bps, ... */
static bool settings_fields(qg_req *r, const cJSON *body, qg_bt_job_spec *sp)
{
    qg_bt_config *cfg = &sp->cfg;
    const char *dir = NULL, *tf = NULL;
    if (!qg_field_num(r, body, "cash", false, 1e-6, 1e15, &cfg->cash) ||
        !qg_field_num(r, body, "fee_bps", false, 0, 9999, &cfg->fee_bps) ||
        !qg_field_num(r, body, "slippage_bps", false, 0, 9999, &cfg->slippage_bps) ||
        !qg_field_num(r, body, "size_pct", false, 1e-9, 100, &cfg->size_pct) ||
        !qg_field_str(r, body, "direction", false, 16, &dir) ||
        !qg_field_str(r, body, "timeframe", false, 16, &tf))
        return false;
    if (dir) {
        if (strcmp(dir, "long") == 0)
            cfg->direction = QG_DIR_LONG;
        else if (strcmp(dir, "short") == 0)
            cfg->direction = QG_DIR_SHORT;
        else if (strcmp(dir, "both") == 0)
            cfg->direction = QG_DIR_BOTH;
        else {
            qg_reply_error(r, 400, "validation_failed",
                           "field 'direction': '%s' is not long, short or both", dir);
            return false;
        }
    }
    qg_error err = {0};
    if (tf && qg_timeframe_parse(tf, &sp->timeframe_ms, &err)) {
        qg_reply_error(r, 400, "validation_failed", "field 'timeframe': %s", err.msg);
        return false;
    }
    sp->from_ms = INT64_MIN;
    sp->to_ms = INT64_MAX;
    if (!time_field(r, body, "from", &sp->from_ms) || !time_field(r, body, "to", &sp->to_ms))
        return false;
    if (sp->from_ms >= sp->to_ms) {
        qg_reply_error(r, 400, "validation_failed", "field 'to': must be after 'from'");
        return false;
    }
    return true;
}

typedef struct {
    char path[1024];
    int64_t tf, first, last;
} dataset_row;

static qg_status dataset_cb(void *ud, const qg_row *row)
{
    dataset_row *d = ud;
    snprintf(d->path, sizeof d->path, "%s", qg_row_text(row, 0));
    d->tf = qg_row_int(row, 1);
    d->first = qg_row_int(row, 2);
    d->last = qg_row_int(row, 3);
    return QG_OK;
}

/* The dataset must be the caller's, and the timeframe and window must fit
 * its data. */
static bool dataset_checks(qg_req *r, const char *dataset_id, qg_bt_job_spec *sp)
{
    dataset_row d = {0};
    if (!qg_req_own_row(r,
                        "SELECT path, timeframe_ms, first_ts, last_ts FROM datasets WHERE id = ? "
                        "AND user_id = ?",
                        "dataset", dataset_id, dataset_cb, &d))
        return false;
    snprintf(sp->dataset_path, sizeof sp->dataset_path, "%s", d.path);
    int64_t tf = sp->timeframe_ms ? sp->timeframe_ms : sp->strategy.timeframe_ms;
    if (tf && d.tf && tf != d.tf) {
        char a[16], b[16];
        qg_timeframe_format(tf, a, sizeof a);
        qg_timeframe_format(d.tf, b, sizeof b);
        if (tf < d.tf || tf % d.tf) {
            qg_reply_error(r, 400, "validation_failed",
                           "field 'timeframe': %s is not a multiple of the dataset's %s", a, b);
            return false;
        }
    }
    if (sp->from_ms > d.last || sp->to_ms <= d.first) {
        char a[40], b[40];
        qg_time_format_iso(d.first, a, sizeof a);
        qg_time_format_iso(d.last, b, sizeof b);
        qg_reply_error(r, 400, "validation_failed",
                       "field 'from': no bars between 'from' and 'to' (the dataset spans %s to %s)",
                       a, b);
        return false;
    }
    return true;
}

void qg_h_backtests_create(qg_req *r)
{
    qg_app *app = r->app;
    if (atomic_load(&app->stopping)) {
        qg_reply_error(r, 503, "unavailable", "the server is shutting down");
        return;
    }
    cJSON *body = qg_req_json(r);
    const char *dataset_id = NULL;
    if (!body || !known_fields(r, body) ||
        !qg_field_str(r, body, "dataset_id", true, QG_ID_MAX - 1, &dataset_id))
        return;
    qg_bt_job_spec *sp = qg_xcalloc(1, sizeof *sp);
    sp->cfg = qg_bt_config_default();
    char *request = NULL;
    qg_conn *db = NULL;
    if (!strategy_fields(r, body, sp) || !settings_fields(r, body, sp)) goto out;
    if (!(db = qg_req_db(r)) || !dataset_checks(r, dataset_id, sp)) goto out;

    char id[QG_ID_MAX];
    qg_store_new_id("bt", id, sizeof id);
    request = qg_json_compact(body);
    qg_error err = {0};
    const qg_val p[] = {QG_VTEXT(id), QG_VTEXT(r->who.user.id), QG_VTEXT(dataset_id),
                        QG_VTEXT(request), QG_VINT(qg_time_now_ms())};
    qg_status rc = request ? qg_conn_exec(db,
                                          "INSERT INTO backtests (id, user_id, dataset_id, status, "
                                          "request, created_at) VALUES (?, ?, ?, 'queued', ?, ?)",
                                          p, 5, NULL, &err)
                           : qg_error_set(&err, QG_ENOMEM, "out of memory");
    if (rc) {
        qg_reply_status(r, rc, &err);
        goto out;
    }
    r->audit_target = qg_arena_strndup(&r->arena, id, strlen(id));
    rc = qg_jobs_submit(app->jobs, id, r->who.user.id, sp, &err);
    sp = NULL; /* owned by the job (or freed) now */
    if (rc) {
        const qg_val d[] = {QG_VTEXT(id)};
        qg_error e2 = {0};
        (void)qg_conn_exec(db, "DELETE FROM backtests WHERE id = ?", d, 1, NULL, &e2);
        qg_reply_status(r, rc, &err);
        goto out;
    }
    char loc[96];
    snprintf(loc, sizeof loc, "/api/backtests/%s", id);
    qg_reply_header(r, "Location", loc);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "status", "queued");
    qg_reply_json(r, 202, o);
out:
    free(request);
    free(sp);
}

/* The status object with the live status and progress overlaid. */
static cJSON *status_object(qg_req *r, const char *id, qg_status *rc, qg_error *err)
{
    qg_conn *db = qg_req_db(r);
    if (!db) return *rc = QG_EAGAIN, NULL;
    cJSON *o = NULL;
    if ((*rc = qg_backtest_status_json(db, id, r->who.user.id, &o, err))) return NULL;
    qg_job *job = qg_jobs_find(r->app->jobs, id, r->who.user.id);
    if (job) {
        int st = atomic_load(&job->status);
        if (!qg_job_status_terminal(st)) {
            cJSON_ReplaceItemInObject(o, "status",
                                      cJSON_CreateString(qg_job_status_name((qg_job_status)st)));
            cJSON_ReplaceItemInObject(o, "progress",
                                      cJSON_CreateNumber(atomic_load(&job->progress)));
        }
        qg_job_unref(r->app->jobs, job);
    }
    return o;
}

void qg_h_backtests_get(qg_req *r)
{
    qg_status rc = QG_OK;
    qg_error err = {0};
    cJSON *o = status_object(r, r->param[0], &rc, &err);
    if (!o) {
        if (rc != QG_EAGAIN) qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_json(r, 200, o);
}

static cJSON *backtest_row_json(const qg_row *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", qg_row_text(row, 0));
    cJSON_AddStringToObject(o, "status", qg_row_text(row, 1));
    cJSON_AddNumberToObject(o, "progress", qg_row_double(row, 2));
    cJSON_AddStringToObject(o, "dataset_id", qg_row_text(row, 3));
    cJSON *req = cJSON_Parse(qg_row_text(row, 4));
    cJSON_AddItemToObject(o, "request", req ? req : cJSON_CreateNull());
    qg_json_str_or_null(o, "error", qg_row_text(row, 5));
    const char *const times[] = {"created_at", "started_at", "finished_at"};
    for (int k = 0; k < 3; k++)
        cJSON_AddItemToObject(o, times[k],
                              qg_row_is_null(row, 6 + k) ? cJSON_CreateNull()
                                                         : qg_json_time(qg_row_int(row, 6 + k)));
    return o;
}

void qg_h_backtests_list(qg_req *r)
{
    qg_page pg;
    if (!qg_req_own_page(r,
                         "SELECT id, status, progress, dataset_id, request, error, "
                         "created_at, started_at, finished_at FROM backtests "
                         "WHERE user_id = ? AND (? IS NULL OR id < ?) "
                         "ORDER BY id DESC LIMIT ?",
                         backtest_row_json, &pg))
        return;
    /* Live progress for the page's running jobs. */
    for (cJSON *it = pg.items->child; it; it = it->next) {
        const char *id = cJSON_GetObjectItemCaseSensitive(it, "id")->valuestring;
        qg_job *job = qg_jobs_find(r->app->jobs, id, r->who.user.id);
        if (!job) continue;
        int st = atomic_load(&job->status);
        if (!qg_job_status_terminal(st))
            cJSON_ReplaceItemInObject(it, "progress",
                                      cJSON_CreateNumber(atomic_load(&job->progress)));
        qg_job_unref(r->app->jobs, job);
    }
    qg_reply_list(r, pg.items, qg_page_next(&pg));
}

void qg_h_backtests_delete(qg_req *r)
{
    const char *id = r->param[0];
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    r->audit_target = id;
    if (!qg_req_own_row(r, "SELECT 1 FROM backtests WHERE id = ? AND user_id = ?", "backtest", id,
                        NULL, NULL))
        return;
    qg_job *job = qg_jobs_find(r->app->jobs, id, r->who.user.id);
    if (job) {
        atomic_store(&job->cancel, true);
        qg_job_unref(r->app->jobs, job);
    }
    qg_error err = {0};
    const qg_val p[] = {QG_VTEXT(id), QG_VTEXT(r->who.user.id)};
    qg_status rc =
        qg_conn_exec(db, "DELETE FROM backtests WHERE id = ? AND user_id = ?", p, 2, NULL, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_empty(r, 204);
}

/* ---- Server-Sent Events ---- */

#define KEEPALIVE_MS 15000

typedef struct {
    qg_jobs *jobs;
    qg_job *job;
    long last_permille; /* last progress sent, in thousandths; -1 none */
    int64_t last_sent_ms;
} sse_stream;

static void sse_progress(qg_buf *out, sse_stream *s, long permille)
{
    (void)qg_buf_printf(out, "event: progress\ndata: {\"progress\":%.3f}\n\n",
                        (double)permille / 1000.0);
    s->last_permille = permille;
    s->last_sent_ms = qg_time_now_ms();
}

static bool sse_poll(void *arg, qg_buf *out)
{
    sse_stream *s = arg;
    int st = atomic_load(&s->job->status);
    if (qg_job_status_terminal(st)) {
        /* final_json was written before the status turned terminal. */
        (void)qg_buf_printf(out, "event: %s\ndata: %s\n\n", qg_job_status_name((qg_job_status)st),
                            s->job->final_json ? s->job->final_json : "{}");
        return true;
    }
    long pm = lround(atomic_load_explicit(&s->job->progress, memory_order_relaxed) * 1000.0);
    if (pm != s->last_permille)
        sse_progress(out, s, pm);
    else if (qg_time_now_ms() - s->last_sent_ms >= KEEPALIVE_MS) {
        (void)qg_buf_puts(out, ": keepalive\n\n");
        s->last_sent_ms = qg_time_now_ms();
    }
    return false;
}

static void sse_free(void *arg)
{
    sse_stream *s = arg;
    qg_job_unref(s->jobs, s->job);
    free(s);
}

void qg_h_backtests_events(qg_req *r)
{
    const char *id = r->param[0];
    qg_job *job = qg_jobs_find(r->app->jobs, id, r->who.user.id);
    if (job && !qg_job_status_terminal(atomic_load(&job->status))) {
        sse_stream *s = qg_xcalloc(1, sizeof *s);
        s->jobs = r->app->jobs;
        s->job = job;
        qg_buf first;
        qg_buf_init(&first, 4096);
        sse_progress(&first, s, lround(atomic_load(&job->progress) * 1000.0));
        qg_reply_raw(r, 200, "text/event-stream", first.data, first.len);
        qg_buf_free(&first);
        qg_reply_header(r, "Cache-Control", "no-cache");
        r->stream_poll = sse_poll;
        r->stream_free = sse_free;
        r->stream_arg = s;
        return;
    }
    /* Finished (or never live here): the row has the final state. */
    qg_job_unref(r->app->jobs, job);
    qg_status rc = QG_OK;
    qg_error err = {0};
    cJSON *o = status_object(r, id, &rc, &err);
    if (!o) {
        if (rc != QG_EAGAIN) qg_reply_status(r, rc, &err);
        return;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
    char *data = qg_json_compact(o);
    qg_buf ev;
    qg_buf_init(&ev, 64u << 20);
    qg_status wrc =
        data ? qg_buf_printf(&ev, "event: %s\ndata: %s\n\n", st->valuestring, data) : QG_ENOMEM;
    if (wrc)
        qg_reply_status(r, wrc, &(qg_error){wrc, "cannot write the event"});
    else
        qg_reply_raw(r, 200, "text/event-stream", ev.data, ev.len);
    qg_buf_free(&ev);
    free(data);
    cJSON_Delete(o);
}
