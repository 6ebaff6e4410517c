/*
 * toolloop.h - the tool-calling loop: model, tools, model, ... until the
 * model answers without calling a tool, a step limit, or a token budget.
 *
 * Each step calls the model through the facade (qg_ai_complete: budgets,
 * routing, usage records), appends the assistant turn with its tool calls,
 * runs each call through the caller's executor and appends one ROLE_TOOL
 * message per result. Unknown tool names, arguments that are not JSON
 * (after repair) and executor failures become tool results carrying an
 * error text, so the model can recover; they never end the loop.
 *
 * With a database connection every step is kept in ai_steps for the audit
 * trail, in order (seq 1, 2, ...):
 *   request      one model call: name = the deployment that answered,
 *                content = {"step","model","finish_reason","text"},
 *                input/output tokens, call_id = the ai_calls row
 *   tool_call    name = tool, content = its arguments (JSON text)
 *   tool_result  name = tool, content = what the executor returned
 *   answer       content = the final text
 *   stop         name = reason (step_limit, token_budget, cancelled,
 *                invalid_output, error), content = the message
 * Every row of a step carries that model call's call_id, which is how
 * GET /api/ai/runs/{id} finds the run's owner (ai_calls.user_id).
 */
#ifndef QG_AI_TOOLLOOP_H
#define QG_AI_TOOLLOOP_H

#include "ai/ai.h"
#include "store/store.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <stdint.h>

/* Runs one tool call. *result_text (allocated in a, or static) is what the
 * model sees. On failure return non-QG_OK and optionally set *result_text
 * to a message: the model then gets {"error": "..."} for that call. */
typedef qg_status (*qg_ai_tool_exec_fn)(void *ud, const qg_ai_tool_call *call, qg_arena *a,
                                        const char **result_text);

/* The facade's signature; the loop calls qg_ai_complete unless a config
 * supplies another (tests script answers this way). */
typedef qg_status (*qg_ai_complete_fn)(qg_ai *ai, const qg_ai_call *call, qg_arena *a,
                                       qg_ai_result *out, qg_error *err);

#define QG_AI_TOOLLOOP_DEFAULT_STEPS 8

typedef struct qg_ai_toolloop {
    /* The model call: who, model, system, initial messages, tools,
     * tool_choice, on_delta, cancel. Borrowed. template_id must be NULL
     * (render the template first: its text would be appended after the tool
     * results on every step). expect_shape applies to the final answer
     * only. */
    qg_ai_call base;
    qg_ai_tool_exec_fn exec;
    void *exec_ud;
    int max_steps;              /* model calls at most; 0: QG_AI_TOOLLOOP_DEFAULT_STEPS */
    int64_t max_total_tokens;   /* input + output over all calls; 0: no limit */
    qg_conn *db;                /* NULL: steps are not stored */
    const char *run_id;         /* with db: NULL makes a new "run_<ulid>" */
    qg_ai_complete_fn complete; /* NULL: qg_ai_complete */
} qg_ai_toolloop;

typedef struct qg_ai_toolloop_result {
    const char *text; /* the final answer; "" when the loop stopped early */
    /* "answer", "step_limit", "token_budget", "cancelled", "invalid_output"
     * (expect_shape still unmet after one corrective turn), "error" */
    const char *stop_reason;
    int steps;         /* model calls made */
    int tool_calls;    /* tool calls executed */
    int tool_errors;   /* of which unknown tool, bad arguments or executor failure */
    qg_ai_usage usage; /* summed over the calls */
    double cost_usd;   /* summed */
    /* the whole conversation: the initial messages, each assistant turn
     * with its tool calls and the tool results, and the final answer */
    const qg_ai_msg *messages;
    size_t n_messages;
    qg_ai_result last;      /* the last model call's result (json set on a validated answer) */
    char run_id[QG_ID_MAX]; /* "" without persistence */
} qg_ai_toolloop_result;

/* Runs the loop. QG_OK when the model gave a final answer (out->text;
 * with expect_shape, out->last.json is the validated JSON after at most one
 * corrective turn, else QG_EINVAL "invalid_output").
 * QG_ERANGE when the step limit or the token budget stopped it
 * (out->stop_reason says which; err names the limit). A failed model call
 * returns its status (qg_ai_complete's: QG_EDENIED, QG_EAGAIN, ...) with
 * stop_reason "error"; a failed write of a step returns that status. In
 * every case out->messages holds the conversation so far and, with a
 * database, a stop step is recorded when possible. Everything in *out lives
 * in arena a. */
qg_status qg_ai_toolloop_run(qg_ai *ai, const qg_ai_toolloop *cfg, qg_arena *a,
                             qg_ai_toolloop_result *out, qg_error *err);

#endif
