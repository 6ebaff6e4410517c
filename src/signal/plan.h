/*
 * plan.h - the plan executor: a small graph of steps run for one signal.
 *
 * A plan (from QG_SIGNAL_PLAN, a file, or the "plan" of an AI analysis):
 *   {"start":"look",
 *    "max_steps": 32,                                  (optional guard, default 32)
 *    "steps":{
 *      "look":  {"type":"memory_lookup","params":{"n":5},"on_success":"judge"},
 *      "judge": {"type":"analyse","retries":2,"retry_delay_s":0.5,
 *                "on_success":"tell","on_failure":"esc"},
 *      "tell":  {"type":"notify","retries":3,"retry_delay_s":1},
 *      "esc":   {"type":"escalate","params":{"reason":"analysis failed"}}}}
 * Step fields: type (required; one of the registered types), params (an
 * object, default {}), retries (0..10, default 0), retry_delay_s (0..3600,
 * default 1; attempt k waits retry_delay_s * 2^(k-1) with +-10% jitter),
 * on_success / on_failure (step names or absent = end), timeout_s
 * (optional: an attempt still running then is cancelled and fails), and "parallel": [names...] to
 * start several steps at once (bounded by the executor's concurrency) before going to on_success
 * when all succeeded (on_failure when any failed).
 *
 * Validation (before anything runs): start exists, every referenced step
 * exists, every type is known to the ops table, no unknown fields, no step
 * reachable from itself through on_success only (a success loop never
 * ends; failure edges may loop because retries bound them), at most
 * QG_PLAN_STEPS_MAX steps. Errors name the step, the field and the reason.
 *
 * Execution: steps run through the caller's ops (the pipeline implements
 * analyse, memory_lookup, notify, record, escalate; the executor itself
 * implements wait {"seconds":N}), each attempt's result or error recorded.
 * The executor never sleeps past *stop; a stop ends the plan as failed.
 */
#ifndef QG_SIGNAL_PLAN_H
#define QG_SIGNAL_PLAN_H

#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define QG_PLAN_STEPS_MAX 64
#define QG_PLAN_NAME_MAX  48

typedef struct qg_plan qg_plan;

/* One step type the caller provides. run executes one attempt: it returns
 * QG_OK with *result (a new cJSON the executor takes, may stay NULL), or an
 * error with err filled (the executor retries per the step). params is the
 * step's params object (never NULL). cancel (never NULL) becomes true when
 * the attempt's timeout_s passes or the plan is stopped: an op that blocks
 * hands it to what it waits on (the AI layer's cancel, the notifier's stop)
 * so the attempt ends then instead of when that call would have. Runs on
 * the executor's threads: must be thread-safe when a plan uses "parallel". */
typedef struct qg_plan_op {
    const char *type;
    qg_status (*run)(void *ud, const char *step, const cJSON *params, atomic_bool *cancel,
                     cJSON **result, qg_error *err);
} qg_plan_op;

typedef struct qg_plan_ops {
    const qg_plan_op *ops; /* types known besides the built-in "wait" */
    int n;
    void *ud;
    int concurrency;   /* steps at once within a "parallel" fan-out; <= 0: 4 */
    atomic_bool *stop; /* may be NULL */
} qg_plan_ops;

/* Parses and validates a plan against the known types. The caller owns
 * *out (qg_plan_free). */
qg_status qg_plan_parse(const cJSON *json, const qg_plan_ops *ops, qg_plan **out, qg_error *err);
void qg_plan_free(qg_plan *p);

/* Runs the plan. *report (caller owns) gets
 *   {"ok":true|false,"steps":[{"step":"look","type":"memory_lookup","ok":true,
 *     "attempts":1,"ms":0.4,"result":{...}|"error":"..."}...],"path":["look","judge",...]}
 * Returns QG_OK when the plan reached an end through success edges or a
 * failure edge that led to an end with the last step successful; the
 * status of the last failed step otherwise (QG_EAGAIN when stopped). */
qg_status qg_plan_run(const qg_plan *p, const qg_plan_ops *ops, cJSON **report, qg_error *err);

#endif
