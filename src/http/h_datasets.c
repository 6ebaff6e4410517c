/*
 * h_datasets.c - uploaded bar datasets (upload, list, get, delete, candles)
 * and the list of built-in strategies.
 *
 * An upload is parsed by the CLI's push parser, so a bad row answers with
 * the loader's "body:LINE:COL: reason". What is stored is a normalised CSV
 * (ISO times, 8 decimals) in <data_dir>/datasets/<id>.csv, written to a
 * temporary name and renamed, so a reader never sees half a file; the row
 * in `datasets` is written after the file and removed before it. Files
 * never change after upload, which lets the bars cache (jobs.c) key them by
 * path. Every query is scoped to the caller: someone else's dataset is 404.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN    100
#define CSV_DECIMALS    8
#define CANDLES_DEFAULT 1000
#define CANDLES_MAX     10000

/* ---- strategies ---- */

static cJSON *strategy_json(const char *name, const char *json)
{
    qg_strategy s;
    qg_error err = {0};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    if (qg_strategy_parse(json, strlen(json), NULL, 0, &s, &err) == QG_OK) {
        cJSON_AddStringToObject(o, "description", s.description);
        cJSON_AddStringToObject(o, "direction",
                                s.direction == QG_DIR_BOTH    ? "both"
                                : s.direction == QG_DIR_SHORT ? "short"
                                                              : "long");
        cJSON *params = cJSON_AddArrayToObject(o, "params");
        for (size_t i = 0; i < s.n_params; i++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "name", s.params[i].name);
            cJSON_AddNumberToObject(p, "default", s.params[i].value);
            cJSON_AddItemToArray(params, p);
        }
        cJSON *cons = cJSON_AddArrayToObject(o, "constraints");
        for (size_t i = 0; i < s.n_constraints; i++)
            cJSON_AddItemToArray(cons, cJSON_CreateString(s.constraints[i].text));
    }
    cJSON *spec = cJSON_Parse(json);
    cJSON_AddItemToObject(o, "spec", spec ? spec : cJSON_CreateNull());
    return o;
}

void qg_h_strategies_list(qg_req *r)
{
    cJSON *items = cJSON_CreateArray();
    for (const char *const *n = qg_strategy_builtin_names(); *n; n++)
        cJSON_AddItemToArray(items, strategy_json(*n, qg_strategy_builtin(*n)));
    qg_reply_list(r, items, NULL);
}

/* ---- dataset objects ---- */

#define DATASET_COLS                                                                               \
    "id, name, symbol, timeframe_ms, rows, first_ts, last_ts, bytes, skipped, created_at, path"

static cJSON *dataset_json(const qg_row *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", qg_row_text(row, 0));
    cJSON_AddStringToObject(o, "name", qg_row_text(row, 1));
    cJSON_AddStringToObject(o, "symbol", qg_row_text(row, 2));
    qg_json_timeframe(o, "timeframe", qg_row_int(row, 3));
    cJSON_AddNumberToObject(o, "rows", (double)qg_row_int(row, 4));
    cJSON_AddItemToObject(o, "first", qg_json_time(qg_row_int(row, 5)));
    cJSON_AddItemToObject(o, "last", qg_json_time(qg_row_int(row, 6)));
    cJSON_AddNumberToObject(o, "bytes", (double)qg_row_int(row, 7));
    cJSON_AddNumberToObject(o, "skipped", (double)qg_row_int(row, 8));
    cJSON_AddItemToObject(o, "created_at", qg_json_time(qg_row_int(row, 9)));
    return o;
}

typedef struct {
    cJSON *obj; /* the dataset object */
    char path[1024];
    int64_t tf;
} one_ctx;

static qg_status one_row(void *ud, const qg_row *row)
{
    one_ctx *c = ud;
    c->obj = dataset_json(row);
    snprintf(c->path, sizeof c->path, "%s", qg_row_text(row, 10));
    c->tf = qg_row_int(row, 3);
    return QG_OK;
}

/* The caller's dataset r->param[0]; replies 404 (or the failure) and
 * returns false when there is none. c->obj is the caller's to free. */
static bool load_own(qg_req *r, one_ctx *c)
{
    if (qg_req_own_row(r, "SELECT " DATASET_COLS " FROM datasets WHERE id = ? AND user_id = ?",
                       "dataset", r->param[0], one_row, c))
        return true;
    cJSON_Delete(c->obj);
    c->obj = NULL;
    return false;
}

void qg_h_datasets_get(qg_req *r)
{
    one_ctx c = {0};
    if (load_own(r, &c)) qg_reply_json(r, 200, c.obj);
}

void qg_h_datasets_list(qg_req *r)
{
    qg_page pg;
    if (qg_req_own_page(r,
                        "SELECT " DATASET_COLS " FROM datasets WHERE user_id = ? "
                        "AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
                        dataset_json, &pg))
        qg_reply_list(r, pg.items, qg_page_next(&pg));
}

void qg_h_datasets_delete(qg_req *r)
{
    one_ctx c = {0};
    r->audit_target = r->param[0];
    if (!load_own(r, &c)) return;
    cJSON_Delete(c.obj);
    qg_error err = {0};
    const qg_val p[] = {QG_VTEXT(r->param[0]), QG_VTEXT(r->who.user.id)};
    qg_status rc =
        qg_conn_exec(r->db, "DELETE FROM datasets WHERE id = ? AND user_id = ?", p, 2, NULL, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_bars_cache_forget(r->app->jobs, c.path);
    if (unlink(c.path) != 0 && errno != ENOENT)
        qg_warn("dataset %s: cannot remove %s: %s", r->param[0], c.path, strerror(errno));
    qg_reply_empty(r, 204);
}

/* ---- upload ---- */

/* CSV or JSON from the Content-Type (parameters ignored); else replies 415. */
static bool body_format(qg_req *r, qg_bars_format *out)
{
    const char *ct = r->content_type ? r->content_type : "";
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    if (n == 8 && strncasecmp(ct, "text/csv", 8) == 0)
        *out = QG_FORMAT_CSV;
    else if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        *out = QG_FORMAT_JSON;
    else {
        qg_reply_error(r, 415, "unsupported_media_type",
                       "Content-Type '%.64s' is not accepted: send text/csv or application/json",
                       ct);
        return false;
    }
    return true;
}

static bool query_bool(qg_req *r, const char *name, bool *out)
{
    const char *v = qg_req_query(r, name);
    if (!v) return true;
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *out = true;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = false;
    else {
        qg_reply_error(r, 400, "validation_failed", "query parameter '%s': expected true or false",
                       name);
        return false;
    }
    return true;
}

static bool query_text(qg_req *r, const char *name, bool required, const char **out)
{
    const char *v = qg_req_query(r, name);
    if (!v) {
        if (!required) return true;
        qg_reply_error(r, 400, "validation_failed", "query parameter '%s': is required", name);
        return false;
    }
    size_t n = strlen(v);
    if (n < 1 || n > NAME_MAX_LEN) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter '%s': must be 1 to %d characters", name, NAME_MAX_LEN);
        return false;
    }
    *out = v;
    return true;
}

static bool query_timeframe(qg_req *r, int64_t *out)
{
    const char *v = qg_req_query(r, "timeframe");
    qg_error err = {0};
    if (v && qg_timeframe_parse(v, out, &err)) {
        qg_reply_error(r, 400, "validation_failed", "query parameter 'timeframe': %s", err.msg);
        return false;
    }
    return true;
}

/* Writes bars as CSV to path through path.tmp and a rename; *bytes gets the
 * file size. */
static qg_status write_csv(const char *path, const qg_bars *b, int64_t *bytes, qg_error *err)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return qg_error_set(err, QG_EIO, "cannot create %s: %s", tmp, strerror(errno));
    enum { CAP = 1 << 16 };
    char *buf = qg_xmalloc(CAP);
    size_t pos = 0;
    int64_t total = (int64_t)strlen(QG_BARS_CSV_HEADER);
    bool ok = fputs(QG_BARS_CSV_HEADER, f) >= 0;
    while (ok && pos < b->n) {
        size_t n = qg_bars_format_csv(b, &pos, buf, CAP, QG_TS_ISO, CSV_DECIMALS);
        ok = fwrite(buf, 1, n, f) == n;
        total += (int64_t)n;
    }
    free(buf);
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return qg_error_set(err, QG_EIO, "cannot write %s: %s", path, strerror(e));
    }
    *bytes = total;
    return QG_OK;
}

static qg_status make_dir(const char *dir, qg_error *err)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return qg_error_set(err, QG_EIO, "cannot create %s: %s", dir, strerror(errno));
    return QG_OK;
}

/* Parses the body into *bars; on bad input replies 400 and returns false. */
static bool parse_body(qg_req *r, qg_bars_format fmt, bool lenient, qg_bars *bars,
                       qg_load_report *rep)
{
    if (r->body_len == 0) {
        qg_reply_error(r, 400, "validation_failed", "body: no bars (the body is empty)");
        return false;
    }
    qg_load_opts opts = {.lenient = lenient};
    qg_error err = {0};
    qg_bars_parser *p = qg_bars_parser_new("body", fmt, &opts, bars);
    if (!p) {
        qg_reply_status(r, QG_ENOMEM, &(qg_error){QG_ENOMEM, "out of memory parsing the body"});
        return false;
    }
    qg_bars_parser_size_hint(p, r->body_len);
    qg_status rc = qg_bars_parser_feed(p, r->body, r->body_len, &err);
    if (!rc) rc = qg_bars_parser_finish(p, rep, &err);
    qg_bars_parser_free(p);
    if (rc) {
        qg_reply_status(r, rc == QG_EINVAL || rc == QG_ERANGE ? QG_EINVAL : rc, &err);
        return false;
    }
    return true;
}

/* Applies ?timeframe=: coarser resamples, finer is an error. */
static bool apply_timeframe(qg_req *r, int64_t tf, qg_bars *bars)
{
    if (!tf || tf == bars->timeframe_ms) return true;
    if (bars->n < 2 || !bars->timeframe_ms) {
        bars->timeframe_ms = tf;
        return true;
    }
    char a[16], b[16];
    qg_timeframe_format(tf, a, sizeof a);
    qg_timeframe_format(bars->timeframe_ms, b, sizeof b);
    if (tf < bars->timeframe_ms) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'timeframe': %s is finer than the data's spacing (%s)", a,
                       b);
        return false;
    }
    qg_bars rs = {0};
    qg_error err = {0};
    if (qg_bars_resample(bars, tf, &rs, &err)) {
        qg_bars_free(&rs);
        qg_reply_error(r, 400, "validation_failed", "query parameter 'timeframe': %s", err.msg);
        return false;
    }
    qg_bars_free(bars);
    *bars = rs;
    return true;
}

void qg_h_datasets_create(qg_req *r)
{
    qg_bars_format fmt;
    const char *name = NULL, *symbol = NULL;
    bool lenient = false;
    int64_t tf = 0;
    if (!body_format(r, &fmt) || !query_text(r, "name", true, &name) ||
        !query_text(r, "symbol", false, &symbol) || !query_timeframe(r, &tf) ||
        !query_bool(r, "lenient", &lenient))
        return;
    if (!symbol) symbol = name;

    qg_bars bars = {0};
    qg_load_report rep = {0};
    char *dir = NULL, *path = NULL;
    qg_error err = {0};
    qg_status rc = QG_OK;
    if (!parse_body(r, fmt, lenient, &bars, &rep) || !apply_timeframe(r, tf, &bars)) goto out;

    char id[QG_ID_MAX];
    qg_store_new_id("ds", id, sizeof id);
    dir = qg_arena_sprintf(&r->arena, "%s/datasets", r->app->data_dir);
    path = qg_arena_sprintf(&r->arena, "%s/%s.csv", dir, id);
    int64_t bytes = 0;
    if ((rc = make_dir(r->app->data_dir, &err)) || (rc = make_dir(dir, &err)) ||
        (rc = write_csv(path, &bars, &bytes, &err))) {
        qg_reply_status(r, rc, &err);
        goto out;
    }
    qg_conn *db = qg_req_db(r);
    if (!db) {
        unlink(path);
        goto out;
    }
    const qg_val p[] = {QG_VTEXT(id),
                        QG_VTEXT(r->who.user.id),
                        QG_VTEXT(name),
                        QG_VTEXT(symbol),
                        QG_VINT(bars.timeframe_ms),
                        QG_VINT(bars.n),
                        QG_VINT(bars.ts[0]),
                        QG_VINT(bars.ts[bars.n - 1]),
                        QG_VINT(bytes),
                        QG_VINT(rep.skipped),
                        QG_VTEXT(path),
                        QG_VINT(qg_time_now_ms())};
    rc = qg_conn_exec(db,
                      "INSERT INTO datasets (id, user_id, name, symbol, timeframe_ms, rows, "
                      "first_ts, last_ts, bytes, skipped, path, created_at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      p, 12, NULL, &err);
    if (rc) {
        unlink(path);
        qg_reply_status(r, rc, &err);
        goto out;
    }
    r->audit_target = qg_arena_strndup(&r->arena, id, strlen(id));
    r->param[0] = r->audit_target;
    one_ctx c = {0};
    if (!load_own(r, &c)) goto out;
    if (rep.skipped) {
        cJSON *msgs = cJSON_AddArrayToObject(c.obj, "skipped_examples");
        for (size_t i = 0; i < rep.n_reported; i++)
            cJSON_AddItemToArray(msgs, cJSON_CreateString(rep.reported[i]));
    }
    char loc[96];
    snprintf(loc, sizeof loc, "/api/datasets/%s", id);
    qg_reply_header(r, "Location", loc);
    qg_reply_json(r, 201, c.obj);
out:
    qg_bars_free(&bars);
}

/* ---- candles ---- */

static bool query_time(qg_req *r, const char *name, int64_t *out)
{
    const char *v = qg_req_query(r, name);
    qg_error err = {0};
    if (v && qg_time_parse_arg(v, out, &err)) {
        qg_reply_error(r, 400, "validation_failed", "query parameter '%s': %s", name, err.msg);
        return false;
    }
    return true;
}

static cJSON *candle_json(const qg_bars *b, size_t i)
{
    const double v[] = {(double)b->ts[i], b->open[i],  b->high[i],
                        b->low[i],        b->close[i], b->volume[i]};
    return cJSON_CreateDoubleArray(v, 6);
}

void qg_h_datasets_candles(qg_req *r)
{
    int64_t from = INT64_MIN, to = INT64_MAX, tf = 0;
    int limit;
    if (!query_time(r, "from", &from) || !query_time(r, "to", &to) || !query_timeframe(r, &tf) ||
        !qg_req_limit(r, CANDLES_DEFAULT, CANDLES_MAX, &limit))
        return;
    one_ctx c = {0};
    if (!load_own(r, &c)) return;
    cJSON_Delete(c.obj);
    if (tf && c.tf && tf != c.tf && (tf < c.tf || tf % c.tf)) {
        char a[16], b[16];
        qg_timeframe_format(tf, a, sizeof a);
        qg_timeframe_format(c.tf, b, sizeof b);
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'timeframe': %s is not a multiple of the dataset's %s", a,
                       b);
        return;
    }
    const qg_bars *all = NULL;
    qg_bars_ref *ref = NULL;
    qg_bars rs = {0};
    qg_error err = {0};
    qg_status rc = qg_bars_cache_get(r->app->jobs, c.path, &all, &ref, &err);
    if (rc) {
        qg_reply_status(r, rc == QG_EINVAL ? QG_EINTERNAL : rc, &err);
        return;
    }
    bool resample = tf && tf != all->timeframe_ms;
    /* Whole buckets only: a resampled window starts at its bucket. */
    int64_t lo = resample && from != INT64_MIN ? qg_time_bucket(from, tf) : from;
    qg_bars view = qg_bars_between(all, lo, to);
    const qg_bars *out = &view;
    if (resample && view.n) {
        if ((rc = qg_bars_resample(&view, tf, &rs, &err))) {
            qg_reply_status(r, rc, &err);
            goto out;
        }
        out = &rs;
    }
    int64_t out_tf = resample ? tf : all->timeframe_ms;
    cJSON *o = cJSON_CreateObject();
    qg_json_timeframe(o, "timeframe", out_tf);
    cJSON *arr = cJSON_AddArrayToObject(o, "candles");
    size_t n = out->n < (size_t)limit ? out->n : (size_t)limit;
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, candle_json(out, i));
    cJSON_AddBoolToObject(o, "truncated", out->n > n);
    qg_reply_json(r, 200, o);
out:
    qg_bars_free(&rs);
    qg_bars_cache_put(ref);
}
