/*
 * test_batch.c - the group-commit batcher on a temporary SQLite file: ops
 * from many threads all commit and each done runs once, in submission
 * order per submitter; a failing op does not sink its batch; barriers wait
 * for earlier writes; batches actually group under load; the queue cap
 * answers QG_EAGAIN; free commits what is queued; the pipelined sync is
 * used where asked for and possible; the writer's wider page cache and
 * automatic checkpoint go back to the pool's settings when the batcher
 * ends; a producer waits for room; ops submitted first overtake the
 * queue.
 */
#include <criterion/criterion.h>

#include "store/batch.h"
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static qg_store *store;

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qg_batch_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    char url[128];
    snprintf(url, sizeof url, "sqlite://%s/b.db", tmpdir);
    qg_error err = {0};
    cr_assert_eq(qg_store_open(url, 4, true, &store, &err), QG_OK, "%s", err.msg);
    qg_conn *c = NULL;
    cr_assert_eq(qg_store_acquire(store, &c, &err), QG_OK);
    cr_assert_eq(qg_conn_exec(c, "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)", NULL, 0,
                              NULL, &err),
                 QG_OK, "%s", err.msg);
    qg_store_release(store, c);
}

static void teardown(void)
{
    qg_store_close(store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static qg_status count_row(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_int(row, 0);
    return QG_OK;
}

static int64_t rows(void)
{
    qg_conn *c = NULL;
    qg_error err = {0};
    int64_t n = -1;
    cr_assert_eq(qg_store_acquire(store, &c, &err), QG_OK);
    cr_assert_eq(qg_conn_query(c, "SELECT COUNT(*) FROM t", NULL, 0, count_row, &n, &err), QG_OK);
    qg_store_release(store, c);
    return n;
}

typedef struct {
    int64_t key;
    atomic_int *done_count;
    atomic_int done_calls;
    qg_status rc;
    int64_t *order; /* per-submitter log of done keys */
    atomic_int *order_n;
} op;

static qg_status insert(qg_conn *c, void *arg, qg_error *err)
{
    op *o = arg;
    qg_val p[] = {QG_VINT(o->key), QG_VTEXT("x")};
    return qg_conn_exec(c, "INSERT INTO t (k, v) VALUES (?, ?)", p, 2, NULL, err);
}

static void done(void *arg, qg_status rc, const qg_error *err)
{
    op *o = arg;
    (void)err;
    o->rc = rc;
    atomic_fetch_add(&o->done_calls, 1);
    if (o->order) o->order[atomic_fetch_add(o->order_n, 1)] = o->key;
    atomic_fetch_add(o->done_count, 1);
}

#define THREADS    4
#define PER_THREAD 2000

typedef struct {
    qg_batcher *b;
    int t;
    op *ops;
    atomic_int *done_count;
    int64_t order[PER_THREAD];
    atomic_int order_n;
} submitter;

static void *submit_many(void *arg)
{
    submitter *s = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        op *o = &s->ops[i];
        o->key = (int64_t)s->t * PER_THREAD + i;
        o->done_count = s->done_count;
        o->order = s->order;
        o->order_n = &s->order_n;
        cr_assert_eq(qg_batcher_submit(s->b, insert, done, o), QG_OK);
    }
    return NULL;
}

Test(batch, threads_commit_everything_once_in_order, .init = setup, .fini = teardown)
{
    qg_batcher *b = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_batcher_new(store, "t-batch", 0, 0, QG_BATCH_SYNC_PIPELINED, &b, &err), QG_OK,
                 "%s", err.msg);
    atomic_int done_count = 0;
    static submitter subs[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        subs[t] = (submitter){.b = b, .t = t, .done_count = &done_count};
        subs[t].ops = calloc(PER_THREAD, sizeof(op));
        pthread_create(&th[t], NULL, submit_many, &subs[t]);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    /* a barrier: everything before it has committed when it returns */
    cr_assert_eq(qg_batcher_run(b, NULL, NULL, &err), QG_OK);
    cr_assert_eq(atomic_load(&done_count), THREADS * PER_THREAD);
    cr_assert_eq(rows(), THREADS * PER_THREAD);
    qg_batcher_stats st;
    qg_batcher_get_stats(b, &st);
    cr_assert_eq(st.ops, THREADS * PER_THREAD + 1);
    cr_assert_eq(st.failed, 0);
    /* grouped: far fewer transactions than ops */
    cr_assert_lt(st.batches, (uint64_t)THREADS * PER_THREAD / 4, "batches %llu",
                 (unsigned long long)st.batches);
    cr_assert_gt(st.largest, 1);
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++) {
            cr_assert_eq(subs[t].ops[i].done_calls, 1);
            cr_assert_eq(subs[t].ops[i].rc, QG_OK);
            cr_assert_eq(subs[t].order[i], (int64_t)t * PER_THREAD + i, "done out of order");
        }
        free(subs[t].ops);
    }
    qg_batcher_free(b);
}

Test(batch, a_failing_op_does_not_sink_its_batch, .init = setup, .fini = teardown)
{
    qg_batcher *b = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_batcher_new(store, NULL, 0, 0, QG_BATCH_SYNC_COMMIT, &b, &err), QG_OK);
    atomic_int n = 0;
    op ops[5] = {{.key = 1}, {.key = 2}, {.key = 1}, {.key = 3}, {.key = 4}};
    for (int i = 0; i < 5; i++) {
        ops[i].done_count = &n;
        cr_assert_eq(qg_batcher_submit(b, insert, done, &ops[i]), QG_OK);
    }
    cr_assert_eq(qg_batcher_run(b, NULL, NULL, &err), QG_OK);
    cr_assert_eq(ops[2].rc, QG_EEXIST, "the repeated key fails alone");
    for (int i = 0; i < 5; i++)
        if (i != 2) cr_assert_eq(ops[i].rc, QG_OK, "op %d", i);
    cr_assert_eq(rows(), 4);
    /* qg_batcher_run reports an op's own failure */
    op dup = {.key = 4, .done_count = &n};
    cr_assert_eq(qg_batcher_run(b, insert, &dup, &err), QG_EEXIST);
    qg_batcher_free(b);
}

Test(batch, queue_cap_pushes_back_and_free_commits_the_rest, .init = setup, .fini = teardown)
{
    qg_batcher *b = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_batcher_new(store, NULL, 0, 64, QG_BATCH_SYNC_PIPELINED, &b, &err), QG_OK);
    static op ops[20000];
    atomic_int n = 0;
    int accepted = 0, refused = 0;
    for (int i = 0; i < 20000; i++) {
        ops[i] = (op){.key = i, .done_count = &n};
        qg_status rc = qg_batcher_submit(b, insert, done, &ops[i]);
        if (rc == QG_OK)
            accepted++;
        else {
            cr_assert_eq(rc, QG_EAGAIN);
            refused++;
        }
    }
    cr_assert_gt(refused, 0, "a 64-op queue must refuse some of 20000 quick submits");
    qg_batcher_free(b); /* commits what was queued */
    cr_assert_eq(atomic_load(&n), accepted);
    cr_assert_eq(rows(), accepted);
}

/* SQLite checkpoints in the background every few hundred writes, so the
 * automatic checkpoint inside a commit finds little to copy. */
Test(batch, checkpoints_run_in_the_background, .init = setup, .fini = teardown)
{
    qg_batcher *b = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_batcher_new(store, "t-ckpt", 0, 0, QG_BATCH_SYNC_COMMIT, &b, &err), QG_OK, "%s",
                 err.msg);
    static op ops[3000];
    atomic_int n = 0;
    for (int i = 0; i < 3000; i++) {
        ops[i] = (op){.key = i, .done_count = &n};
        cr_assert_eq(qg_batcher_submit(b, insert, done, &ops[i]), QG_OK);
    }
    while (atomic_load(&n) < 3000) usleep(1000);
    qg_batcher_stats st;
    for (int tries = 0; tries < 2000; tries++) {
        qg_batcher_get_stats(b, &st);
        if (st.checkpoints > 0) break;
        usleep(1000);
    }
    cr_assert_gt(st.checkpoints, 0, "3000 writes and no background checkpoint");
    cr_assert_eq(st.ops, 3000);
    qg_batcher_free(b);
    cr_assert_eq(rows(), 3000);
}

/* Pipelined on a SQLite file, the WAL is synced by the syncer thread and a
 * barrier still runs after every earlier done; asked for COMMIT syncs, or
 * on an in-memory database (no log), there is no syncer. */
Test(batch, the_log_is_synced_off_the_writer_on_a_file_database, .init = setup, .fini = teardown)
{
    qg_batcher *b = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_batcher_new(store, "t-sync", 0, 0, QG_BATCH_SYNC_PIPELINED, &b, &err), QG_OK,
                 "%s", err.msg);
    static op ops[500];
    atomic_int n = 0;
    for (int i = 0; i < 500; i++) {
        ops[i] = (op){.key = i, .done_count = &n};
        cr_assert_eq(qg_batcher_submit(b, insert, done, &ops[i]), QG_OK);
    }
    cr_assert_eq(qg_batcher_run(b, NULL, NULL, &err), QG_OK, "a barrier after the writes");
    cr_assert_eq(atomic_load(&n), 500, "the barrier's done came before earlier dones");
    qg_batcher_stats st;
    qg_batcher_get_stats(b, &st);
    cr_assert(st.log_sync, "a WAL database syncs its log on the syncer");
    cr_assert_gt(st.commit_us, 0);
    cr_assert_eq(rows(), 500);
    qg_batcher_free(b);

    cr_assert_eq(qg_batcher_new(store, "t-commit", 0, 0, QG_BATCH_SYNC_COMMIT, &b, &err), QG_OK);
    qg_batcher_get_stats(b, &st);
    cr_assert_not(st.log_sync, "asked for a sync in each COMMIT");
    qg_batcher_free(b);

    qg_store *mem = NULL;
    cr_assert_eq(qg_store_open("sqlite://:memory:", 1, false, &mem, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_batcher_new(mem, "t-mem", 0, 0, QG_BATCH_SYNC_PIPELINED, &b, &err), QG_OK, "%s",
                 err.msg);
    qg_batcher_get_stats(b, &st);
    cr_assert_not(st.log_sync, "no log to sync in memory");
    cr_assert_eq(qg_batcher_run(b, NULL, NULL, &err), QG_OK);
    qg_batcher_free(b);
    qg_store_close(mem);
}

/* The two settings the writer changes on its connection. */
typedef struct writer_pragmas {
    int64_t cache_size, autocheckpoint;
} writer_pragmas;

static qg_status read_pragmas(qg_conn *c, void *arg, qg_error *err)
{
    writer_pragmas *p = arg;
    qg_status rc = qg_conn_query(c, "PRAGMA cache_size", NULL, 0, count_row, &p->cache_size, err);
    return rc ? rc
              : qg_conn_query(c, "PRAGMA wal_autocheckpoint", NULL, 0, count_row,
                              &p->autocheckpoint, err);
}

/* The writer's connection gets a page cache big enough for a loaded
 * batch (no spill into the log mid-transaction) and leaves checkpoints to
 * the checkpointer (no wait for the disk inside its commits); the pool
 * gets that connection back as it lent it. */
Test(batch, the_writer_widens_its_cache_and_gives_it_back, .init = setup, .fini = teardown)
{
    qg_store *one = NULL;
    qg_error err = {0};
    char url[128];
    snprintf(url, sizeof url, "sqlite://%s/one.db", tmpdir);
    cr_assert_eq(qg_store_open(url, 1, false, &one, &err), QG_OK, "%s", err.msg);
    qg_conn *c = NULL;
    writer_pragmas before = {0}, during = {0}, after = {0};
    cr_assert_eq(qg_store_acquire(one, &c, &err), QG_OK);
    cr_assert_eq(read_pragmas(c, &before, &err), QG_OK, "%s", err.msg);
    qg_store_release(one, c);

    qg_batcher *b = NULL;
    cr_assert_eq(qg_batcher_new(one, "t-cache", 0, 0, QG_BATCH_SYNC_PIPELINED, &b, &err), QG_OK,
                 "%s", err.msg);
    cr_assert_eq(qg_batcher_run(b, read_pragmas, &during, &err), QG_OK, "%s", err.msg);
    qg_batcher_free(b);
    cr_assert_lt(during.cache_size, before.cache_size,
                 "a cache wider than the pool's (negative: KiB)");
    cr_assert_leq(during.cache_size, -16384, "at least 16 MiB for the writer, got %lld",
                  (long long)during.cache_size);
    cr_assert_eq(before.autocheckpoint, 1000, "SQLite's default on the pool");
    cr_assert_geq(during.autocheckpoint, 10 * before.autocheckpoint,
                  "the writer's own checkpoint only as a net, got %lld",
                  (long long)during.autocheckpoint);

    cr_assert_eq(qg_store_acquire(one, &c, &err), QG_OK);
    cr_assert_eq(read_pragmas(c, &after, &err), QG_OK);
    qg_store_release(one, c);
    cr_assert_eq(after.cache_size, before.cache_size,
                 "the pool's connection is back to its own cache size");
    cr_assert_eq(after.autocheckpoint, before.autocheckpoint,
                 "and to its own automatic checkpoint");
    qg_store_close(one);
}

/* Ops past `allowed` wait in their apply: the test decides how far the
 * writer gets. */
static atomic_int allowed, applied;

static qg_status gated_insert(qg_conn *c, void *arg, qg_error *err)
{
    while (atomic_load(&applied) >= atomic_load(&allowed)) usleep(200);
    atomic_fetch_add(&applied, 1);
    return insert(c, arg, err);
}

/* A producer that can wait waits while more than max ops are queued, and
 * goes on once the writer has taken them down to max; a stop flag ends
 * the wait at once. */
Test(batch, wait_room_holds_a_producer_until_the_queue_is_short, .init = setup, .fini = teardown)
{
    qg_batcher *b = NULL;
    qg_error err = {0};
    /* one op a batch: the queue goes down one by one */
    cr_assert_eq(qg_batcher_new(store, "t-room", 1, 0, QG_BATCH_SYNC_COMMIT, &b, &err), QG_OK, "%s",
                 err.msg);
    atomic_store(&allowed, 0);
    atomic_store(&applied, 0);
    static op ops[60];
    atomic_int n = 0;
    for (int i = 0; i < 60; i++) {
        ops[i] = (op){.key = i, .done_count = &n};
        cr_assert_eq(qg_batcher_submit(b, gated_insert, done, &ops[i]), QG_OK);
    }
    qg_batcher_stats st;
    qg_batcher_get_stats(b, &st);
    cr_assert_geq(st.queued, 59, "the held writer keeps them queued (%zu)", st.queued);
    atomic_bool stop = true;
    qg_batcher_wait_room(b, 0, &stop); /* returns at once */
    atomic_store(&allowed, 50);        /* the 51st op's apply holds the writer */
    qg_batcher_wait_room(b, 10, NULL);
    qg_batcher_get_stats(b, &st);
    cr_assert_leq(st.queued, 10, "returned with %zu queued", st.queued);
    cr_assert_leq(atomic_load(&applied), 50, "before the held ops ran");
    atomic_store(&allowed, 60);
    qg_batcher_wait_room(b, 0, NULL);
    qg_batcher_free(b);
    cr_assert_eq(rows(), 60);
    cr_assert_eq(atomic_load(&n), 60);
}

/* Ops submitted first go into the next batch ahead of every ordinary op
 * queued before them, in their own order, with a few hundred ordinary ops
 * beside them at most; a barrier submitted first waits only for them. */
Test(batch, ops_submitted_first_overtake_the_queue, .init = setup, .fini = teardown)
{
    qg_batcher *b = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_batcher_new(store, "t-first", 0, 0, QG_BATCH_SYNC_COMMIT, &b, &err), QG_OK,
                 "%s", err.msg);
    enum { ORDINARY = 2000, FIRST = 3, ALL = 1 + ORDINARY + FIRST + 1 };
    static op ops[ALL];
    static int64_t order[ALL];
    atomic_int n = 0, logged = 0;
    for (int i = 0; i < ALL; i++)
        ops[i] = (op){.key = i, .done_count = &n, .order = order, .order_n = &logged};
    /* The writer held inside op 0 while the rest is queued. */
    atomic_store(&allowed, 0);
    atomic_store(&applied, 0);
    cr_assert_eq(qg_batcher_submit(b, gated_insert, done, &ops[0]), QG_OK);
    qg_batcher_stats st;
    do {
        usleep(1000);
        qg_batcher_get_stats(b, &st);
    } while (st.queued);
    for (int i = 1; i <= ORDINARY; i++)
        cr_assert_eq(qg_batcher_submit(b, insert, done, &ops[i]), QG_OK);
    for (int i = ORDINARY + 1; i <= ORDINARY + FIRST; i++)
        cr_assert_eq(qg_batcher_submit_first(b, insert, done, &ops[i]), QG_OK);
    cr_assert_eq(qg_batcher_submit_first(b, NULL, done, &ops[ALL - 1]), QG_OK);
    qg_batcher_get_stats(b, &st);
    cr_assert_eq(st.queued, ORDINARY + FIRST + 1, "both queues count (%zu)", st.queued);
    atomic_store(&allowed, 1);
    qg_batcher_free(b);
    cr_assert_eq(atomic_load(&n), ALL);
    cr_assert_eq(rows(), 1 + ORDINARY + FIRST);
    cr_assert_eq(order[0], 0);
    /* Then the first ones and their barrier, in order, before the
     * ordinary ops that share their batch. */
    for (int i = 0; i <= FIRST; i++)
        cr_assert_eq(order[1 + i], ORDINARY + 1 + i, "done %d: key %lld", 1 + i,
                     (long long)order[1 + i]);
    cr_assert_eq(order[2 + FIRST], 1, "then the ordinary ones, in order");
    for (int i = 1; i <= ORDINARY; i++) cr_assert_eq(ops[i].rc, QG_OK);
    /* Every ordinary op still in submission order. */
    for (int i = 3 + FIRST; i < ALL; i++) cr_assert_eq(order[i], order[i - 1] + 1);
}
