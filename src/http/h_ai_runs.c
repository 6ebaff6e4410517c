/*
 * h_ai_runs.c - GET /api/ai/runs/{id}: the audit trail of one tool-calling
 * run (ai/toolloop.h), step by step as it was stored in ai_steps.
 *
 * ai_steps has no owner column: a run belongs to the user of the model
 * calls it made (ai_steps.call_id -> ai_calls.user_id). Admins see every
 * run; anyone else gets 404 for a run that is not theirs, the same answer
 * as for one that does not exist, so run ids cannot be probed.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"

#include <stdio.h>
#include <string.h>

#define RUN_STEPS_MAX 5000 /* rows returned; a run stops long before (step limit) */

typedef struct run_view {
    cJSON *steps;
    int64_t input, output;
    int64_t first_ts, last_ts;
    const char *end; /* "answer" or the stop reason; NULL while running */
    char end_buf[32];
    int n;
} run_view;

static qg_status step_row(void *ud, const qg_row *row)
{
    run_view *v = ud;
    cJSON *s = cJSON_CreateObject();
    int64_t ts = qg_row_int(row, 1);
    const char *kind = qg_row_text(row, 2);
    cJSON_AddNumberToObject(s, "seq", (double)qg_row_int(row, 0));
    cJSON_AddItemToObject(s, "ts", qg_json_time(ts));
    cJSON_AddStringToObject(s, "kind", kind ? kind : "");
    qg_json_str_or_null(s, "name", qg_row_text(row, 3));
    cJSON_AddStringToObject(s, "content", qg_row_text(row, 4) ? qg_row_text(row, 4) : "");
    cJSON_AddNumberToObject(s, "input_tokens", (double)qg_row_int(row, 5));
    cJSON_AddNumberToObject(s, "output_tokens", (double)qg_row_int(row, 6));
    qg_json_str_or_null(s, "call_id", qg_row_text(row, 7));
    cJSON_AddItemToArray(v->steps, s);
    v->input += qg_row_int(row, 5);
    v->output += qg_row_int(row, 6);
    if (!v->n++) v->first_ts = ts;
    v->last_ts = ts;
    if (kind && !strcmp(kind, "answer")) {
        v->end = "answer";
    } else if (kind && !strcmp(kind, "stop")) {
        snprintf(v->end_buf, sizeof v->end_buf, "%s",
                 qg_row_text(row, 3) ? qg_row_text(row, 3) : "stop");
        v->end = v->end_buf;
    }
    return QG_OK;
}

void qg_h_ai_runs_get(qg_req *r)
{
    qg_ai_flush(r->app->ai); /* read what was just recorded */
    const char *id = r->param[0];
    if (r->who.user.role != QG_ROLE_ADMIN &&
        !qg_req_own_row(r,
                        "SELECT 1 FROM ai_steps s JOIN ai_calls c ON c.id = s.call_id "
                        "WHERE s.run_id = ? AND c.user_id = ? LIMIT 1",
                        "run", id, NULL, NULL))
        return;
    qg_conn *db = qg_req_db(r);
    if (!db) return;
    run_view v = {.steps = cJSON_CreateArray()};
    qg_error err = {0};
    const qg_val p[] = {QG_VTEXT(id), QG_VINT(RUN_STEPS_MAX)};
    qg_status rc = qg_conn_query(db,
                                 "SELECT seq, ts, kind, name, content, input_tokens, "
                                 "output_tokens, call_id FROM ai_steps WHERE run_id = ? "
                                 "ORDER BY seq LIMIT ?",
                                 p, 2, step_row, &v, &err);
    if (rc || v.n == 0) {
        cJSON_Delete(v.steps);
        if (rc)
            qg_reply_status(r, rc, &err);
        else
            qg_reply_error(r, 404, "not_found", "run '%.64s' not found", id);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    qg_json_str_or_null(o, "outcome", v.end);
    cJSON_AddItemToObject(o, "started_at", qg_json_time(v.first_ts));
    cJSON_AddItemToObject(o, "finished_at", v.end ? qg_json_time(v.last_ts) : cJSON_CreateNull());
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "input_tokens", (double)v.input);
    cJSON_AddNumberToObject(u, "output_tokens", (double)v.output);
    cJSON_AddItemToObject(o, "steps", v.steps);
    r->audit_target = id;
    qg_reply_json(r, 200, o);
}
