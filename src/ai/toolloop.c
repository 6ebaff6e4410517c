/*
 * toolloop.c - the tool-calling loop (see toolloop.h for the contract and
 * the ai_steps rows it writes).
 *
 * The conversation grows in the caller's arena: an array of qg_ai_msg that
 * doubles when full (the old copies stay in the arena until it is freed;
 * conversations are short). Tool results that a model cannot use - an
 * unknown tool, arguments that are not a JSON object even after repair, an
 * executor failure - are turned into {"error": "..."} results, because a
 * model that sees its mistake usually corrects it on the next step.
 *
 * The final answer is checked against expect_shape here rather than in the
 * facade (intermediate tool-calling turns have no answer to check): one
 * corrective turn with the validation message, then "invalid_output".
 */
#include "ai/toolloop.h"

#include "ai/jsonfix.h"

#include <quantgate/json.h>
#include <quantgate/time.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#define STEP_CONTENT_MAX ((size_t)256 << 10) /* bytes of one stored step */

typedef struct loop {
    const qg_ai_toolloop *cfg;
    qg_arena *a;
    qg_ai_toolloop_result *out;
    qg_ai_msg *msgs;
    size_t n, cap;
    int64_t seq;
    const char *call_id; /* the current model call's ai_calls id, or NULL */
} loop;

static qg_status push_msg(loop *l, const qg_ai_msg *m)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        qg_ai_msg *grown = qg_arena_alloc(l->a, cap * sizeof *grown);
        if (!grown) return QG_ENOMEM;
        if (l->n) memcpy(grown, l->msgs, l->n * sizeof *grown);
        l->msgs = grown;
        l->cap = cap;
    }
    l->msgs[l->n++] = *m;
    l->out->messages = l->msgs;
    l->out->n_messages = l->n;
    return QG_OK;
}

static qg_status max_seq_row(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_is_null(row, 0) ? 0 : qg_row_int(row, 0);
    return QG_OK;
}

/* Stored content is capped; the model still saw the whole text. */
static const char *capped(loop *l, const char *s)
{
    if (!s) return "";
    size_t n = strlen(s);
    if (n <= STEP_CONTENT_MAX) return s;
    size_t cut = STEP_CONTENT_MAX;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    char *c = qg_arena_sprintf(l->a, "%.*s...[truncated %zu bytes]", (int)cut, s, n - cut);
    return c ? c : "";
}

static qg_status store_step(loop *l, const char *kind, const char *name, const char *content,
                            int64_t in_tokens, int64_t out_tokens, qg_error *err)
{
    if (!l->cfg->db) return QG_OK;
    const qg_val p[] = {
        QG_VTEXT(l->out->run_id),
        QG_VINT(++l->seq),
        QG_VINT(qg_time_now_ms()),
        QG_VTEXT(kind),
        name ? QG_VTEXT(name) : QG_VNULL,
        QG_VTEXT(capped(l, content)),
        QG_VINT(in_tokens),
        QG_VINT(out_tokens),
        l->call_id && *l->call_id ? QG_VTEXT(l->call_id) : QG_VNULL,
    };
    qg_status rc = qg_conn_exec(l->cfg->db,
                                "INSERT INTO ai_steps (run_id, seq, ts, kind, name, content, "
                                "input_tokens, output_tokens, call_id) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                p, sizeof p / sizeof p[0], NULL, err);
    if (rc)
        qg_error_prefix(err, "tool loop: storing step %lld of run %s", (long long)l->seq,
                        l->out->run_id);
    return rc;
}

/* Ends the loop early: records the stop step and sets the reason. The
 * returned status is rc unless storing the step failed first. */
static qg_status stop(loop *l, const char *reason, qg_status rc, qg_error *err)
{
    l->out->stop_reason = reason;
    l->out->text = "";
    qg_error serr = {0};
    if (store_step(l, "stop", reason, err && err->msg[0] ? err->msg : reason, 0, 0, &serr) && !rc) {
        if (err) *err = serr;
        return serr.code;
    }
    return rc;
}

static const char *json_text(qg_arena *a, cJSON *o)
{
    char *s = qg_json_compact(o);
    cJSON_Delete(o);
    if (!s) return NULL;
    char *c = qg_arena_strndup(a, s, strlen(s));
    cJSON_free(s);
    return c;
}

static const char *error_result(loop *l, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    const char *s = json_text(l->a, o);
    return s ? s : "{\"error\":\"tool failed\"}";
}

static const qg_ai_tool *find_tool(const qg_ai_request *req, const char *name)
{
    for (size_t i = 0; name && i < req->n_tools; i++)
        if (req->tools[i].name && !strcmp(req->tools[i].name, name)) return &req->tools[i];
    return NULL;
}

/* Runs one call; the result is always text for the model. */
static const char *run_tool(loop *l, const qg_ai_tool_call *call, bool *failed)
{
    const qg_ai_request *req = &l->cfg->base.req;
    *failed = true;
    if (!find_tool(req, call->name)) {
        qg_buf names;
        qg_buf_init(&names, 1024);
        for (size_t i = 0; i < req->n_tools; i++)
            qg_buf_printf(&names, "%s%s", i ? ", " : "", req->tools[i].name);
        const char *msg =
            qg_arena_sprintf(l->a, "unknown tool '%.64s'; available tools: %s",
                             call->name ? call->name : "", names.len ? names.data : "none");
        qg_buf_free(&names);
        return error_result(l, msg ? msg : "unknown tool");
    }
    if (!l->cfg->exec) return error_result(l, "no tool executor is configured");
    qg_ai_tool_call fixed = *call;
    const char *args = call->arguments && *call->arguments ? call->arguments : "{}";
    cJSON *parsed = cJSON_Parse(args);
    if (!parsed) {
        const char *repaired = NULL;
        qg_error jerr = {0};
        if (qg_jsonfix_extract(args, l->a, &repaired, &jerr))
            return error_result(l, "arguments are not valid JSON; send a JSON object");
        parsed = cJSON_Parse(repaired);
        args = repaired;
    }
    bool is_obj = cJSON_IsObject(parsed);
    cJSON_Delete(parsed);
    if (!is_obj) return error_result(l, "arguments must be a JSON object");
    fixed.arguments = args;
    const char *result = NULL;
    qg_status rc = l->cfg->exec(l->cfg->exec_ud, &fixed, l->a, &result);
    if (rc) {
        const char *msg = qg_arena_sprintf(l->a, "tool '%.64s' failed: %s", call->name,
                                           result && *result ? result : qg_status_name(rc));
        return error_result(l, msg ? msg : "tool failed");
    }
    *failed = false;
    return result ? result : "";
}

static qg_status store_request(loop *l, const qg_ai_result *res)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", l->out->steps);
    if (res->model_name) cJSON_AddStringToObject(o, "model", res->model_name);
    if (res->resp.finish_reason)
        cJSON_AddStringToObject(o, "finish_reason", res->resp.finish_reason);
    cJSON_AddStringToObject(o, "text", res->resp.text ? res->resp.text : "");
    cJSON *names = cJSON_AddArrayToObject(o, "tool_calls");
    for (size_t i = 0; i < res->resp.n_tool_calls; i++)
        cJSON_AddItemToArray(
            names,
            cJSON_CreateString(res->resp.tool_calls[i].name ? res->resp.tool_calls[i].name : ""));
    const char *content = json_text(l->a, o);
    const char *name = res->deployment_id ? res->deployment_id : res->model_name;
    return store_step(l, "request", name, content ? content : "{}", res->resp.usage.input,
                      res->resp.usage.output, NULL);
}

static qg_status setup(loop *l, qg_error *err)
{
    const qg_ai_toolloop *cfg = l->cfg;
    if (cfg->base.template_id)
        return qg_error_set(err, QG_EINVAL,
                            "tool loop: template_id: render the template first (its text would "
                            "follow the tool results on every step)");
    if (cfg->max_steps < 0 || cfg->max_total_tokens < 0)
        return qg_error_set(err, QG_EINVAL,
                            "tool loop: max_steps and max_total_tokens must be >= 0");
    for (size_t i = 0; i < cfg->base.req.n_messages; i++) {
        qg_status rc = push_msg(l, &cfg->base.req.messages[i]);
        if (rc) return qg_error_set(err, rc, "tool loop: out of memory");
    }
    if (!cfg->db) return QG_OK;
    if (cfg->run_id) {
        if (!*cfg->run_id || strlen(cfg->run_id) >= sizeof l->out->run_id)
            return qg_error_set(err, QG_EINVAL, "tool loop: run_id: empty or longer than %zu",
                                sizeof l->out->run_id - 1);
        snprintf(l->out->run_id, sizeof l->out->run_id, "%s", cfg->run_id);
        const qg_val p[] = {QG_VTEXT(cfg->run_id)};
        return qg_conn_query(cfg->db, "SELECT MAX(seq) FROM ai_steps WHERE run_id = ?", p, 1,
                             max_seq_row, &l->seq, err);
    }
    qg_store_new_id("run", l->out->run_id, sizeof l->out->run_id);
    return QG_OK;
}

/* The final answer: checked against expect_shape when there is one. true
 * when it is accepted; false after adding a corrective turn. */
static bool accept_answer(loop *l, qg_ai_result *res, bool *corrected, qg_status *rc, qg_error *err)
{
    const char *shape = l->cfg->base.expect_shape;
    *rc = QG_OK;
    if (!shape) return true;
    const char *json = NULL;
    qg_error verr = {0};
    if (!qg_jsonfix_parse(res->resp.text, shape, l->a, &json, &verr)) {
        res->json = json;
        return true;
    }
    if (*corrected) {
        *rc = qg_error_set(err, QG_EINVAL,
                           "tool loop: the answer is still not the expected "
                           "shape: %s",
                           verr.msg);
        return true;
    }
    *corrected = true;
    qg_ai_msg said = {.role = QG_AI_ROLE_ASSISTANT, .content = res->resp.text};
    const char *fix = qg_arena_sprintf(l->a,
                                       "Your answer is not valid: %s. Reply again with only the "
                                       "JSON, matching the expected shape.",
                                       verr.msg);
    qg_ai_msg ask = {.role = QG_AI_ROLE_USER, .content = fix ? fix : "Reply with valid JSON."};
    if (push_msg(l, &said) || push_msg(l, &ask))
        *rc = qg_error_set(err, QG_ENOMEM, "tool loop: out of memory");
    return *rc != QG_OK;
}

qg_status qg_ai_toolloop_run(qg_ai *ai, const qg_ai_toolloop *cfg, qg_arena *a,
                             qg_ai_toolloop_result *out, qg_error *err)
{
    memset(out, 0, sizeof *out);
    out->text = "";
    out->stop_reason = "error";
    loop l = {.cfg = cfg, .a = a, .out = out};
    qg_status rc = setup(&l, err);
    if (rc) return rc;
    qg_ai_complete_fn complete = cfg->complete ? cfg->complete : qg_ai_complete;
    int max_steps = cfg->max_steps ? cfg->max_steps : QG_AI_TOOLLOOP_DEFAULT_STEPS;
    bool corrected = false;

    for (;;) {
        if (cfg->base.cancel && atomic_load(cfg->base.cancel)) {
            qg_error_set(err, QG_EAGAIN, "tool loop: cancelled");
            return stop(&l, "cancelled", QG_EAGAIN, err);
        }
        qg_ai_call call = cfg->base;
        call.req.messages = l.msgs;
        call.req.n_messages = l.n;
        call.expect_shape = NULL; /* checked here, on the final answer only */
        qg_ai_result res;
        memset(&res, 0, sizeof res);
        rc = complete(ai, &call, a, &res, err);
        out->steps++;
        out->last = res;
        out->usage.input += res.resp.usage.input;
        out->usage.output += res.resp.usage.output;
        out->usage.cached += res.resp.usage.cached;
        out->cost_usd += res.cost_usd;
        l.call_id = res.call_id[0] ? qg_arena_strndup(a, res.call_id, strlen(res.call_id)) : NULL;
        if (rc) {
            qg_error_prefix(err, "tool loop: step %d", out->steps);
            return stop(&l, "error", rc, err);
        }
        if ((rc = store_request(&l, &res))) return rc;

        if (res.resp.n_tool_calls == 0) {
            qg_status vrc;
            if (accept_answer(&l, &res, &corrected, &vrc, err)) {
                out->last = res;
                if (vrc) return stop(&l, "invalid_output", vrc, err);
                out->text = res.resp.text ? res.resp.text : "";
                out->stop_reason = "answer";
                qg_ai_msg said = {.role = QG_AI_ROLE_ASSISTANT, .content = out->text};
                if (push_msg(&l, &said))
                    return qg_error_set(err, QG_ENOMEM, "tool loop: out of memory");
                return store_step(&l, "answer", NULL, out->text, 0, 0, err);
            }
            if (out->steps >= max_steps) {
                qg_error_set(err, QG_ERANGE, "tool loop: step limit %d reached", max_steps);
                return stop(&l, "step_limit", QG_ERANGE, err);
            }
            continue;
        }

        int64_t used = out->usage.input + out->usage.output;
        if (cfg->max_total_tokens && used >= cfg->max_total_tokens) {
            qg_error_set(err, QG_ERANGE,
                         "tool loop: token budget %lld reached (%lld used) with tool calls "
                         "pending",
                         (long long)cfg->max_total_tokens, (long long)used);
            return stop(&l, "token_budget", QG_ERANGE, err);
        }
        if (out->steps >= max_steps) {
            qg_error_set(err, QG_ERANGE, "tool loop: step limit %d reached with tool calls pending",
                         max_steps);
            return stop(&l, "step_limit", QG_ERANGE, err);
        }
        qg_ai_msg turn = {.role = QG_AI_ROLE_ASSISTANT,
                          .content = res.resp.text,
                          .tool_calls = res.resp.tool_calls,
                          .n_tool_calls = res.resp.n_tool_calls};
        if (push_msg(&l, &turn)) return qg_error_set(err, QG_ENOMEM, "tool loop: out of memory");
        for (size_t i = 0; i < res.resp.n_tool_calls; i++) {
            const qg_ai_tool_call *tc = &res.resp.tool_calls[i];
            if ((rc = store_step(&l, "tool_call", tc->name, tc->arguments, 0, 0, err))) return rc;
            bool failed;
            const char *result = run_tool(&l, tc, &failed);
            out->tool_calls++;
            if (failed) out->tool_errors++;
            if ((rc = store_step(&l, "tool_result", tc->name, result, 0, 0, err))) return rc;
            qg_ai_msg m = {.role = QG_AI_ROLE_TOOL,
                           .content = result,
                           .tool_call_id = tc->id,
                           .tool_name = tc->name};
            if (push_msg(&l, &m)) return qg_error_set(err, QG_ENOMEM, "tool loop: out of memory");
        }
    }
}
