/*
 * pipeline_int.h - the pipeline's insides, shared by its three files:
 *   pipeline.c  lifecycle, the queue and workers, resume, pause, the
 *               dead-letter queue, outcomes, stats and /metrics;
 *   stages.c    the stages one signal goes through (one job at a time per
 *               worker);
 *   events.c    every write (state changes, deliveries, dead letters) as
 *               group-committed batcher ops, and the in-memory event ring
 *               the SSE stream reads.
 * Not for use outside src/signal.
 */
#ifndef QG_SIGNAL_PIPELINE_INT_H
#define QG_SIGNAL_PIPELINE_INT_H

#include "signal/idset.h"
#include "signal/pipeline.h"

#include <pthread.h>
#include <stdatomic.h>

/* The stages in order; a job starts at one of them. */
typedef enum {
    ST_CONFLUENCE,
    ST_KILLZONE,
    ST_COOLDOWN,
    ST_POLICY,
    ST_SCORE,
    ST_THRESHOLD,
    ST_ANALYSE,
    ST_PLAN,
    ST_REMEMBER,
    ST_NOTIFY,
    ST_DONE,
    ST_OUTCOME, /* not a stage a job runs: the stage name of outcome events */
    ST__COUNT
} qg_pstage;

/* "confluence", "killzone", ... "done". */
const char *qg_pstage_name(qg_pstage s);
/* -1 when unknown. */
int qg_pstage_parse(const char *name);

/* Drop reasons counted in /metrics (quantgate_signals_dropped_total{reason}). */
typedef enum {
    DROP_CONFLUENCE,
    DROP_KILLZONE,
    DROP_COOLDOWN,
    DROP_POLICY,
    DROP_THRESHOLD,
    DROP_DEFER_LIMIT,
    DROP__COUNT
} qg_pdrop;

/* One signal in the queue or in a worker's hands. */
typedef struct qg_pjob {
    qg_signal sig;
    qg_pstage start; /* where to begin */
    bool resumed;    /* from the database: deliveries may already exist */
    /* what earlier stages produced (loaded on resume) */
    char session[QG_SESSION_NAME_MAX + 1];
    bool has_score;
    double score;
    char *analysis;              /* JSON text or NULL (owned) */
    cJSON *an_doc;               /* analysis parsed once (owned; NULL until needed; read
                                    only once set, so plan steps may share it) */
    char *plan_result;           /* JSON text or NULL (owned) */
    bool analysis_new, plan_new; /* not yet handed to a write: the next state
                                    write carries them (once, not with every later one) */
    bool notify_failed;          /* the posted notify attempt failed (notify_err): a
                                    worker goes on with the stage's retries */
    qg_error notify_err;
    struct qg_pjob *next;
} qg_pjob;

void qg_pjob_free(qg_pjob *j);

#define QG_PIPE_BUCKETS 14

typedef struct qg_pstage_hist {
    atomic_uint_fast64_t bucket[QG_PIPE_BUCKETS + 1];
    atomic_uint_fast64_t sum_us;
} qg_pstage_hist;

typedef struct qg_pevent {
    uint64_t seq;
    char *json;
} qg_pevent;

/* The id set starts with this many chains (signal/idset.h). */
#define QG_PIPE_IDSET_INITIAL 4096

struct qg_pipeline {
    qg_pipeline_config cfg;
    char *owner_id;
    char *model;
    cJSON *plan_json; /* a copy of cfg->plan or NULL */
    int64_t defer_ms; /* QG_SIGNAL_DEFER_S */
    int defer_max;    /* QG_SIGNAL_DEFER_MAX */
    bool analyse_on;  /* model not "off" */

    qg_cooldown *cooldown;
    pthread_rwlock_t policy_lock;
    qg_policy_set *policies; /* under policy_lock */
    size_t npolicies;

    /* queue */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work arrived, unpaused or stopping */
    pthread_cond_t stop_cv; /* backoff waits */
    qg_pjob *head, *tail;
    size_t queued;
    int idle;        /* workers waiting on cv: a push wakes one only then */
    bool overflowed; /* a signal was refused: the sweep looks for received rows */
    qg_idset ids;    /* the ids queued or in flight (under mu) */
    atomic_bool stop;
    atomic_bool paused;
    pthread_t *threads;
    int nthreads;
    pthread_t sweeper;
    bool sweeper_started;

    /* remembering runs on its own thread (memory writes are slow and
     * serialised per collection): the remember stage only queues a copy,
     * and waits on rm_room_cv while the queue is full */
    pthread_mutex_t rm_mu;
    pthread_cond_t rm_cv, rm_room_cv;
    qg_pjob *rm_head, *rm_tail;
    size_t rm_n;
    struct qg_pfin *fin_head, *fin_tail; /* committed memory rows the rememberer indexes, FIFO */
    pthread_t rememberer;
    bool rememberer_started;
    atomic_uint_fast64_t n_remembered, n_remember_dropped;

    /* counters */
    atomic_uint_fast64_t n_received, n_accepted, n_ignored, n_duplicates, n_rate_limited;
    atomic_uint_fast64_t n_filtered, n_analysed, n_notified, n_done, n_failed, n_deferred,
        n_escalated, n_retries, n_resumed, n_replayed, n_write_errors;
    atomic_uint_fast64_t n_dropped[DROP__COUNT];
    atomic_size_t in_flight;
    /* signals whose alert is with the notifier (under mu): at
     * cfg.notify_queue the workers wait on posted_cv, which also tells
     * qg_pipeline_free when the last came back */
    size_t posted;
    pthread_cond_t posted_cv;
    atomic_long dlq; /* rows in signal_dlq (loaded at start, then tracked) */
    qg_pstage_hist hist[ST__COUNT];

    /* event ring */
    pthread_mutex_t ev_mu;
    qg_pevent ring[QG_PIPE_EVENTS_RING];
    uint64_t ev_seq; /* last seq written */
};

/* Told after a remember op's transaction ended: pa (NULL when the row was
 * written synchronously) is the caller's to qg_memory_add_finish. */
typedef void (*qg_premember_fn)(void *ud, qg_mem_pending *pa, bool ok);

/* ---- pipeline.c ---- */
/* Queues a job (takes it); false when the queue is full or the id is
 * already queued (the job is then freed). */
bool qg_pipeline_push(qg_pipeline *p, qg_pjob *j);
/* Waits ms or until stopping; true when stopping. */
bool qg_pipeline_sleep(qg_pipeline *p, int64_t ms);
/* A worker is done with j (freed here; its id leaves the queued set once
 * its writes commit). */
void qg_pipeline_job_finished(qg_pipeline *p, qg_pjob *j);
/* A job back from the notifier for its notify stage's retries: queued
 * for a worker (ahead of new work), or finished when stopping. */
void qg_pipeline_repush(qg_pipeline *p, qg_pjob *j);
/* Takes a place for a posted alert, waiting while cfg.notify_queue are
 * out; false when stopping. qg_pipeline_posted_back gives it back. */
bool qg_pipeline_post_room(qg_pipeline *p);
void qg_pipeline_posted_back(qg_pipeline *p);

/* Queues a copy of j for the rememberer, waiting while its queue is full
 * (the workers then go at the rememberer's pace instead of dropping
 * analyses); false only when the pipeline is stopping. */
bool qg_pipeline_remember_later(qg_pipeline *p, const qg_pjob *j);
/* At shutdown the rememberer goes on with its queue for this long. */
#define QG_PIPE_REMEMBER_DRAIN_MS 10000

/* ---- stages.c ---- */
/* Runs one job from its start stage to an end (done, filtered, deferred,
 * escalated or failed) and returns true; or posts its alert to the
 * notifier and returns false: the job is then the notifier's callback's,
 * which finishes it (or hands it back through qg_pipeline_repush). */
bool qg_pipeline_run_job(qg_pipeline *p, qg_pjob *j);
/* Remembers j's setup and analysis in the "analyses" collection (with the
 * outcome when given) and records a "remember" event holding the memory
 * id. */
qg_status qg_pipeline_remember(qg_pipeline *p, qg_conn *c, qg_pjob *j, const char *state,
                               const char *outcome, bool has_pnl, double pnl, qg_error *err);
/* The rememberer's form: the memory row and the "remember" event go to
 * the batcher as one op (group-committed with the pipeline's other
 * writes); cb (as for qg_pipeline_record_memory; pa NULL on the fall back)
 * gets whether they committed, on the writer thread (or at once on the fall back to
 * qg_pipeline_remember for a collection without its dimension yet). An error return means nothing
 * was queued and cb is not called. j may be freed when this returns. */
qg_status qg_pipeline_remember_async(qg_pipeline *p, qg_pjob *j, qg_premember_fn cb, void *ud,
                                     qg_error *err);
/* Policies: config ones then the enabled rows of signal_policies. */
qg_status qg_pipeline_load_policies(qg_pipeline *p, qg_conn *c, qg_error *err);

/* ---- events.c ---- */
/* A state change: updates the signals row (state, stage, reason and the
 * job's session/score/analysis/plan result), adds a signal_events row with
 * detail (JSON text or NULL), pushes the live event and counts. Async
 * through the batcher (sync when wait is true). */
typedef struct qg_pstate {
    const char *state;
    qg_pstage stage;
    const char *reason; /* may be NULL */
    const char *detail; /* JSON object text or NULL */
    const char *error;  /* failed: the error */
    int attempts;       /* failed: attempts made */
    bool dlq;           /* also park in signal_dlq */
    bool dlq_delete;    /* also remove the signal_dlq row (replay, discard) */
    bool update_signal; /* false: only an event (state unchanged) */
} qg_pstate;
qg_status qg_pipeline_record(qg_pipeline *p, qg_pjob *j, const qg_pstate *st, bool wait,
                             qg_error *err);
/* Two states as one async write, in order: both events, and the signals
 * row updated once, to the later state when it updates the row (what the
 * earlier one would write there is overwritten in the same transaction
 * anyway). */
qg_status qg_pipeline_record_two(qg_pipeline *p, qg_pjob *j, const qg_pstate *first,
                                 const qg_pstate *then, qg_error *err);
/* The same as an async qg_pipeline_record that also writes the memory
 * row pa (qg_memory_add_prepare) in the same transaction. After the
 * commit (on the writer thread) cb gets pa and whether it committed, and
 * must qg_memory_add_finish it (NULL cb: finished there). pa is consumed
 * either way. Waits while the batcher is full (not for the workers: the
 * rememberer). */
qg_status qg_pipeline_record_memory(qg_pipeline *p, qg_pjob *j, const qg_pstate *st,
                                    qg_mem_pending *pa, qg_premember_fn cb, void *ud,
                                    qg_error *err);
/* One delivery row (async, submitted right after the send). */
void qg_pipeline_record_delivery(qg_pipeline *p, const char *signal_id, const qg_delivery *d);
/* Pushes {"seq","signal_id","state","stage","reason","at"} into the ring. */
void qg_pipeline_push_event(qg_pipeline *p, const char *signal_id, const char *state,
                            const char *stage, const char *reason, int64_t at);
void qg_pipeline_events_free(qg_pipeline *p);

#endif
