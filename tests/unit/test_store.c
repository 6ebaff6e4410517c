/*
 * test_store.c - the store on a temporary SQLite file: migrations, values,
 * constraints, transactions, the statement cache, the pool under threads,
 * ids, URL errors and statistics.
 */
#include <criterion/criterion.h>

#include "store/store.h"
#include "store/store_int.h"

#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static char dburl[128];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qg_store_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    /* a missing sub-directory: the backend must create it */
    snprintf(dburl, sizeof dburl, "sqlite://%s/sub/q.db", tmpdir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static qg_store *open_store(int max_conns)
{
    qg_store *s = NULL;
    qg_error err = {0};
    qg_status rc = qg_store_open(dburl, max_conns, true, &s, &err);
    cr_assert_eq(rc, QG_OK, "open: %s", err.msg);
    return s;
}

static qg_status count_row(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_int(row, 0);
    return QG_OK;
}

static int64_t count_sql(qg_conn *c, const char *sql)
{
    int64_t n = -1;
    qg_error err = {0};
    cr_assert_eq(qg_conn_query(c, sql, NULL, 0, count_row, &n, &err), QG_OK, "%s", err.msg);
    return n;
}

static void add_user(qg_conn *c, const char *id, const char *email, qg_status want)
{
    qg_error err = {0};
    qg_val v[] = {QG_VTEXT(id),       QG_VTEXT(email), QG_VTEXT("hash"),
                  QG_VTEXT("client"), QG_VINT(1),      QG_VINT(2)};
    qg_status rc = qg_conn_exec(c,
                                "INSERT INTO users (id, email, password_hash, role, created_at, "
                                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                                v, 6, NULL, &err);
    cr_assert_eq(rc, want, "insert user %s: got %s (%s)", id, qg_status_name(rc), err.msg);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, migrations_apply_once_and_report_versions)
{
    qg_store *s = open_store(2);
    int cur = -1, latest = -1, applied = -1;
    qg_error err = {0};
    cr_assert_eq(qg_store_version(s, &cur, &latest, &err), QG_OK, "%s", err.msg);
    size_t n;
    const qg_migration *m = qg_migrations(&n);
    cr_assert_gt(n, 0);
    cr_assert_eq(latest, m[n - 1].version);
    cr_assert_eq(cur, latest);
    cr_assert_eq(qg_store_migrate(s, &applied, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(applied, 0);
    cr_assert_str_eq(qg_store_backend(s), "sqlite");
    qg_conn *c;
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    cr_assert_eq(count_sql(c, "SELECT COUNT(*) FROM schema_migrations"), (int64_t)n);
    qg_store_release(s, c);
    qg_store_close(s);

    /* a second open applies nothing and keeps the version */
    s = open_store(1);
    cr_assert_eq(qg_store_migrate(s, &applied, &err), QG_OK);
    cr_assert_eq(applied, 0);
    cr_assert_eq(qg_store_version(s, &cur, NULL, &err), QG_OK);
    cr_assert_eq(cur, latest);
    cr_assert_eq(qg_store_ping(s, &err), QG_OK, "%s", err.msg);
    qg_store_close(s);
}

Test(store, fresh_database_without_migrate_is_version_zero)
{
    qg_store *s = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_store_open(dburl, 1, false, &s, &err), QG_OK, "%s", err.msg);
    int cur = -1, latest = -1, applied = 0;
    cr_assert_eq(qg_store_version(s, &cur, &latest, &err), QG_OK);
    cr_assert_eq(cur, 0);
    cr_assert_eq(qg_store_migrate(s, &applied, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(applied, latest);
    cr_assert_eq(qg_store_version(s, &cur, NULL, &err), QG_OK);
    cr_assert_eq(cur, latest);
    qg_store_close(s);
}

typedef struct {
    int rows;
    int64_t i;
    double d;
    char text[64];
    bool text_null, int_null, ncols_ok;
} value_row;

static qg_status read_values(void *ud, const qg_row *row)
{
    value_row *v = ud;
    v->rows++;
    v->ncols_ok = qg_row_count(row) == 4;
    v->i = qg_row_int(row, 0);
    v->d = qg_row_double(row, 1);
    const char *t = qg_row_text(row, 2);
    snprintf(v->text, sizeof v->text, "%s", t ? t : "(null)");
    v->text_null = qg_row_text(row, 3) == NULL && qg_row_is_null(row, 3);
    v->int_null = qg_row_is_null(row, 0);
    return QG_OK;
}

Test(store, values_of_every_type_and_null)
{
    qg_store *s = open_store(1);
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    cr_assert_eq(qg_conn_exec(c, "CREATE TABLE t (i BIGINT, d DOUBLE PRECISION, s TEXT, n TEXT)",
                              NULL, 0, NULL, &err),
                 QG_OK, "%s", err.msg);
    char text[32];
    snprintf(text, sizeof text, "h\xc3\xa9llo 'q'");
    qg_val v[] = {QG_VINT(-9007199254740993LL), QG_VDBL(2.5e-3), QG_VTEXT(text), QG_VTEXT(NULL)};
    int64_t changes = 0;
    cr_assert_eq(qg_conn_exec(c, "INSERT INTO t VALUES (?, ?, ?, ?)", v, 4, &changes, &err), QG_OK,
                 "%s", err.msg);
    cr_assert_eq(changes, 1);
    /* the caller's buffer may change after the call: the row keeps the old value */
    strcpy(text, "changed");
    qg_val nulls[] = {QG_VNULL, QG_VNULL, QG_VTEXT("x"), QG_VNULL};
    cr_assert_eq(qg_conn_exec(c, "INSERT INTO t VALUES (?, ?, ?, ?)", nulls, 4, NULL, &err), QG_OK);

    value_row r = {0};
    qg_val key[] = {QG_VINT(-9007199254740993LL)};
    cr_assert_eq(
        qg_conn_query(c, "SELECT i, d, s, n FROM t WHERE i = ?", key, 1, read_values, &r, &err),
        QG_OK, "%s", err.msg);
    cr_assert_eq(r.rows, 1);
    cr_assert(r.ncols_ok);
    cr_assert_eq(r.i, -9007199254740993LL);
    cr_assert_float_eq(r.d, 2.5e-3, 1e-15);
    cr_assert_str_eq(r.text, "h\xc3\xa9llo 'q'");
    cr_assert(r.text_null);
    cr_assert(!r.int_null);

    memset(&r, 0, sizeof r);
    cr_assert_eq(qg_conn_query(c, "SELECT i, d, s, n FROM t WHERE i IS NULL", NULL, 0, read_values,
                               &r, &err),
                 QG_OK);
    cr_assert_eq(r.rows, 1);
    cr_assert(r.int_null);
    cr_assert_eq(r.i, 0);
    cr_assert_str_eq(r.text, "x");

    /* changes counts updated rows; no rows is not an error */
    cr_assert_eq(qg_conn_exec(c, "UPDATE t SET s = 'y'", NULL, 0, &changes, &err), QG_OK);
    cr_assert_eq(changes, 2);
    memset(&r, 0, sizeof r);
    qg_val none[] = {QG_VINT(42)};
    cr_assert_eq(
        qg_conn_query(c, "SELECT i, d, s, n FROM t WHERE i = ?", none, 1, read_values, &r, &err),
        QG_OK);
    cr_assert_eq(r.rows, 0);

    /* wrong parameter count is a clear error, not a silent NULL */
    cr_assert_eq(qg_conn_exec(c, "INSERT INTO t VALUES (?, ?, ?, ?)", v, 3, NULL, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "4 parameters"), "%s", err.msg);
    /* bad SQL names the statement */
    cr_assert_eq(qg_conn_exec(c, "SELEC nonsense", NULL, 0, NULL, &err), QG_EIO);
    cr_assert(strstr(err.msg, "SELEC nonsense"), "%s", err.msg);
    /* two statements in one call are refused */
    cr_assert_eq(qg_conn_exec(c, "DELETE FROM t; DROP TABLE t", NULL, 0, NULL, &err), QG_EINVAL);
    cr_assert_eq(count_sql(c, "SELECT COUNT(*) FROM t"), 2);
    qg_store_release(s, c);
    qg_store_close(s);
}

static qg_status stop_after_two(void *ud, const qg_row *row)
{
    int *n = ud;
    return ++*n == 2 ? QG_ENOTFOUND : QG_OK;
}

static qg_status sum_row(void *ud, const qg_row *row)
{
    *(int64_t *)ud += qg_row_int(row, 0);
    return QG_OK;
}

Test(store, union_all_looks_several_keys_up_in_one_query)
{
    char sql[128];
    cr_assert_eq(qg_sql_union_all(sql, sizeof sql, "SELECT a FROM t WHERE k = ?", 1), QG_OK);
    cr_assert_str_eq(sql, "SELECT a FROM t WHERE k = ?");
    cr_assert_eq(qg_sql_union_all(sql, sizeof sql, "SELECT a FROM t WHERE k = ?", 3), QG_OK);
    cr_assert_str_eq(sql, "SELECT a FROM t WHERE k = ? UNION ALL SELECT a FROM t WHERE k = ? "
                          "UNION ALL SELECT a FROM t WHERE k = ?");
    cr_assert_eq(qg_sql_union_all(sql, 60, "SELECT a FROM t WHERE k = ?", 2), QG_ERANGE);

    qg_store *s = open_store(1);
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    cr_assert_eq(
        qg_conn_exec(c, "CREATE TABLE t (k TEXT PRIMARY KEY, a BIGINT)", NULL, 0, NULL, &err),
        QG_OK, "%s", err.msg);
    cr_assert_eq(qg_conn_exec(c, "INSERT INTO t VALUES ('x', 1), ('y', 10), ('z', 100)", NULL, 0,
                              NULL, &err),
                 QG_OK, "%s", err.msg);
    /* A missing key gives no row; the others one each, in the given order. */
    cr_assert_eq(qg_sql_union_all(sql, sizeof sql, "SELECT a FROM t WHERE k = ?", 3), QG_OK);
    qg_val keys[] = {QG_VTEXT("z"), QG_VTEXT("nope"), QG_VTEXT("x")};
    int64_t sum = 0;
    cr_assert_eq(qg_conn_query(c, sql, keys, 3, sum_row, &sum, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(sum, 101);
    qg_store_release(s, c);
    qg_store_close(s);
}

Test(store, callback_status_stops_the_query)
{
    qg_store *s = open_store(1);
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    int n = 0;
    cr_assert_eq(qg_conn_query(c,
                               "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r "
                               "WHERE x < 10) SELECT x FROM r",
                               NULL, 0, stop_after_two, &n, &err),
                 QG_ENOTFOUND);
    cr_assert_eq(n, 2);
    /* the statement was reset: running it again starts from the first row */
    n = 0;
    cr_assert_eq(qg_conn_query(c,
                               "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r "
                               "WHERE x < 10) SELECT x FROM r",
                               NULL, 0, stop_after_two, &n, &err),
                 QG_ENOTFOUND);
    cr_assert_eq(n, 2);
    qg_store_release(s, c);
    qg_store_close(s);
}

Test(store, unique_violation_is_eexist_and_foreign_keys_hold)
{
    qg_store *s = open_store(1);
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    add_user(c, "usr_1", "a@example.com", QG_OK);
    add_user(c, "usr_2", "a@example.com", QG_EEXIST); /* UNIQUE email */
    add_user(c, "usr_1", "b@example.com", QG_EEXIST); /* PRIMARY KEY */
    qg_val sess[] = {QG_VTEXT("ses_1"), QG_VTEXT("usr_missing"), QG_VTEXT("th-secret-value"),
                     QG_VINT(1), QG_VINT(2)};
    const char *ins = "INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at) "
                      "VALUES (?, ?, ?, ?, ?)";
    qg_status rc = qg_conn_exec(c, ins, sess, 5, NULL, &err);
    cr_assert_eq(rc, QG_EIO, "%s", err.msg);
    cr_assert(strstr(err.msg, "FOREIGN KEY"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "th-secret-value"), "a bound value leaked: %s", err.msg);
    sess[1] = QG_VTEXT("usr_1");
    cr_assert_eq(qg_conn_exec(c, ins, sess, 5, NULL, &err), QG_OK, "%s", err.msg);
    /* ON DELETE CASCADE works because foreign keys are on */
    cr_assert_eq(qg_conn_exec(c, "DELETE FROM users", NULL, 0, NULL, &err), QG_OK);
    cr_assert_eq(count_sql(c, "SELECT COUNT(*) FROM sessions"), 0);
    /* a CHECK violation is not EEXIST */
    qg_val bad[] = {QG_VTEXT("usr_3"), QG_VTEXT("c@x"), QG_VTEXT("h"),
                    QG_VTEXT("root"),  QG_VINT(1),      QG_VINT(1)};
    cr_assert_eq(qg_conn_exec(c,
                              "INSERT INTO users (id, email, password_hash, role, created_at, "
                              "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                              bad, 6, NULL, &err),
                 QG_EIO);
    qg_store_release(s, c);
    qg_store_close(s);
}

Test(store, rollback_leaves_nothing_and_release_rolls_back)
{
    qg_store *s = open_store(1);
    qg_store_stats st0, st;
    qg_store_get_stats(s, &st0); /* opening committed the migrations */
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    cr_assert_eq(qg_conn_begin(c, &err), QG_OK, "%s", err.msg);
    add_user(c, "usr_1", "a@example.com", QG_OK);
    add_user(c, "usr_2", "b@example.com", QG_OK);
    cr_assert_eq(count_sql(c, "SELECT COUNT(*) FROM users"), 2);
    cr_assert_eq(qg_conn_rollback(c), QG_OK);
    cr_assert_eq(count_sql(c, "SELECT COUNT(*) FROM users"), 0);
    cr_assert_eq(qg_conn_rollback(c), QG_OK); /* nothing open: harmless */
    cr_assert_eq(qg_conn_commit(c, &err), QG_EINTERNAL);

    cr_assert_eq(qg_conn_begin(c, &err), QG_OK);
    add_user(c, "usr_3", "c@example.com", QG_OK);
    cr_assert_eq(qg_conn_commit(c, &err), QG_OK, "%s", err.msg);

    /* a connection released mid-transaction comes back clean */
    cr_assert_eq(qg_conn_begin(c, &err), QG_OK);
    add_user(c, "usr_4", "d@example.com", QG_OK);
    qg_store_release(s, c);
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    cr_assert_eq(count_sql(c, "SELECT COUNT(*) FROM users"), 1);
    cr_assert_eq(qg_conn_begin(c, &err), QG_OK, "the connection is still in a transaction");
    cr_assert_eq(qg_conn_commit(c, &err), QG_OK);

    qg_store_get_stats(s, &st);
    cr_assert_eq(st.commits - st0.commits, 2);
    cr_assert_eq(st.rollbacks - st0.rollbacks, 2);
    qg_store_release(s, c);
    qg_store_close(s);
}

Test(store, statement_cache_reuses_and_evicts)
{
    qg_store *s = open_store(1);
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    cr_assert_eq(qg_conn_exec(c, "CREATE TABLE k (n BIGINT)", NULL, 0, NULL, &err), QG_OK);
    /* The same SQL from different buffers (the cache keys on text, not
     * on the pointer) thousands of times. */
    for (int i = 0; i < 5000; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "INSERT INTO k (n) VALUES (?)");
        qg_val v[] = {QG_VINT(i)};
        cr_assert_eq(qg_conn_exec(c, sql, v, 1, NULL, &err), QG_OK, "%s", err.msg);
    }
    cr_assert_eq(count_sql(c, "SELECT COUNT(*) FROM k"), 5000);
    cr_assert_eq(count_sql(c, "SELECT SUM(n) FROM k"), 5000LL * 4999 / 2);
    /* More distinct statements than the cache holds, twice: evicted ones
     * are prepared again and still give the right answers. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 150; i++) {
            char sql[80];
            snprintf(sql, sizeof sql, "SELECT COUNT(*) + %d FROM k WHERE n < %d", i, i);
            cr_assert_eq(count_sql(c, sql), 2 * (int64_t)i);
        }
    }
    /* One buffer holding two statements in turn: the cache's hint on the
     * caller's address never hands back the other one. */
    for (int i = 0; i < 6; i++) {
        char sql[40];
        snprintf(sql, sizeof sql, "SELECT %s", i % 2 ? "1" : "2");
        cr_assert_eq(count_sql(c, sql), i % 2 ? 1 : 2, "round %d", i);
    }
    /* SQLite's sqlite_stmt table lists this connection's prepared
     * statements: the insert is one statement that ran 5000 times, and the
     * cache never holds more than its 64 entries. */
    qg_val ins[] = {QG_VTEXT("INSERT INTO k (n) VALUES (?)")};
    int64_t runs = 0;
    cr_assert_eq(qg_conn_query(c, "SELECT run FROM sqlite_stmt WHERE sql = ?", ins, 1, count_row,
                               &runs, &err),
                 QG_OK, "%s", err.msg);
    cr_assert_eq(runs, 0, "the insert was evicted by the 150 selects");
    for (int i = 0; i < 100; i++) {
        qg_val v[] = {QG_VINT(i)};
        cr_assert_eq(qg_conn_exec(c, "INSERT INTO k (n) VALUES (?)", v, 1, NULL, &err), QG_OK);
    }
    cr_assert_eq(qg_conn_query(c, "SELECT run FROM sqlite_stmt WHERE sql = ?", ins, 1, count_row,
                               &runs, &err),
                 QG_OK);
    cr_assert_eq(runs, 100, "one cached statement ran 100 times");
    cr_assert_eq(count_sql(c, "SELECT COUNT(*) FROM sqlite_stmt WHERE sql LIKE 'INSERT INTO k%'"),
                 1);
    cr_assert_leq(count_sql(c, "SELECT COUNT(*) FROM sqlite_stmt"), 64);
    qg_store_release(s, c);
    qg_store_stats st;
    qg_store_get_stats(s, &st);
    cr_assert_geq(st.queries, 5000 + 2 + 300);
    qg_store_close(s);
}

typedef struct {
    qg_store *s;
    int t;
    char ids[200][QG_ID_MAX];
    int fails;
} worker;

static void *insert_worker(void *arg)
{
    worker *w = arg;
    qg_error err = {0};
    for (int i = 0; i < 200; i++) {
        qg_conn *c;
        if (qg_store_acquire(w->s, &c, &err)) {
            w->fails++;
            continue;
        }
        qg_store_new_id("evt", w->ids[i], sizeof w->ids[i]);
        qg_val v[] = {QG_VTEXT(w->ids[i]), QG_VINT(w->t), QG_VINT(i)};
        qg_status rc = qg_conn_begin(c, &err);
        if (!rc)
            rc = qg_conn_exec(c, "INSERT INTO ev (id, t, i) VALUES (?, ?, ?)", v, 3, NULL, &err);
        if (!rc) rc = qg_conn_commit(c, &err);
        if (rc) {
            qg_conn_rollback(c);
            w->fails++;
        }
        qg_store_release(w->s, c);
    }
    return NULL;
}

static qg_status collect_id(void *ud, const qg_row *row)
{
    char(*ids)[QG_ID_MAX] = *(char(**)[QG_ID_MAX])ud;
    snprintf(ids[0], QG_ID_MAX, "%s", qg_row_text(row, 0));
    *(char(**)[QG_ID_MAX])ud = ids + 1;
    return QG_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

Test(store, four_threads_insert_in_transactions)
{
    qg_store *s = open_store(3); /* fewer connections than threads: acquire must wait */
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    cr_assert_eq(qg_conn_exec(c, "CREATE TABLE ev (id TEXT PRIMARY KEY, t INTEGER, i INTEGER)",
                              NULL, 0, NULL, &err),
                 QG_OK);
    qg_store_release(s, c);

    static worker w[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        w[t] = (worker){.s = s, .t = t};
        cr_assert_eq(pthread_create(&th[t], NULL, insert_worker, &w[t]), 0);
    }
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++) cr_assert_eq(w[t].fails, 0, "thread %d had failures", t);

    /* ids from each thread are increasing (one process, monotonic) */
    for (int t = 0; t < 4; t++)
        for (int i = 1; i < 200; i++)
            cr_assert_lt(strcmp(w[t].ids[i - 1], w[t].ids[i]), 0, "%s !< %s", w[t].ids[i - 1],
                         w[t].ids[i]);

    static char all[800][QG_ID_MAX];
    char(*p)[QG_ID_MAX] = all;
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    cr_assert_eq(count_sql(c, "SELECT COUNT(*) FROM ev"), 800);
    cr_assert_eq(count_sql(c, "SELECT COUNT(DISTINCT id) FROM ev"), 800);
    cr_assert_eq(qg_conn_query(c, "SELECT id FROM ev ORDER BY id", NULL, 0, collect_id, &p, &err),
                 QG_OK);
    cr_assert_eq(p - all, 800);
    for (int i = 1; i < 800; i++) cr_assert_lt(strcmp(all[i - 1], all[i]), 0);
    /* sorting the ids by text gives creation order per thread */
    for (int t = 0; t < 4; t++) {
        static char mine[200][QG_ID_MAX];
        memcpy(mine, w[t].ids, sizeof mine);
        qsort(mine, 200, QG_ID_MAX, cmp_str);
        cr_assert_eq(memcmp(mine, w[t].ids, sizeof mine), 0);
    }
    qg_store_release(s, c);
    qg_store_close(s);
}

static qg_status text_row(void *ud, const qg_row *row)
{
    snprintf(ud, 32, "%s", qg_row_text(row, 0));
    return QG_OK;
}

Test(store, wal_mode_and_pragmas_on_every_connection)
{
    qg_store *s = open_store(2);
    qg_conn *a, *b;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(s, &a, &err), QG_OK);
    cr_assert_eq(qg_store_acquire(s, &b, &err), QG_OK); /* a second, lazily opened */
    qg_conn *cs[] = {a, b};
    for (int i = 0; i < 2; i++) {
        char mode[32] = "";
        cr_assert_eq(qg_conn_query(cs[i], "PRAGMA journal_mode", NULL, 0, text_row, mode, &err),
                     QG_OK);
        cr_assert_str_eq(mode, "wal");
        cr_assert_eq(count_sql(cs[i], "PRAGMA foreign_keys"), 1);
        cr_assert_eq(count_sql(cs[i], "PRAGMA synchronous"), 1); /* NORMAL */
        cr_assert_eq(count_sql(cs[i], "PRAGMA busy_timeout"), 5000);
    }
    qg_store_release(s, a);
    qg_store_release(s, b);
    qg_store_close(s);
}

Test(store, bad_urls_name_the_url_and_hide_passwords)
{
    qg_store *s = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_store_open("mysql://bob:hunter2@db/x", 1, true, &s, &err), QG_EINVAL);
    cr_assert_null(s);
    cr_assert_null(strstr(err.msg, "hunter2"), "%s", err.msg);
    cr_assert(strstr(err.msg, "mysql://bob:****@db/x"), "%s", err.msg);
    cr_assert(strstr(err.msg, "sqlite://"), "supported schemes listed: %s", err.msg);

    cr_assert_eq(qg_store_open("postgres://u:pw-secret@h:5432/q", 1, true, &s, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "PostgreSQL backend is not built yet"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "pw-secret"), "%s", err.msg);
    cr_assert_eq(qg_store_open("postgresql://h/q?password=zz-top", 1, true, &s, &err), QG_EINVAL);
    cr_assert_null(strstr(err.msg, "zz-top"), "%s", err.msg);

    cr_assert_eq(qg_store_open("", 1, true, &s, &err), QG_EINVAL);
    cr_assert_eq(qg_store_open("sqlite://", 1, true, &s, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "no database file"), "%s", err.msg);

    /* a path that cannot be created */
    cr_assert_eq(qg_store_open("sqlite:///proc/nope/q.db", 1, true, &s, &err), QG_EIO);
    cr_assert(strstr(err.msg, "/proc/nope"), "%s", err.msg);

    char out[128];
    qg_store_mask_url("sqlite://var/q.db", out, sizeof out);
    cr_assert_str_eq(out, "sqlite://var/q.db");
    qg_store_mask_url("postgres://u:p@h/d?sslmode=require&password=x&a=b", out, sizeof out);
    cr_assert_str_eq(out, "postgres://u:****@h/d?sslmode=require&password=****&a=b");
    /* found by fuzz_http: no scheme, and a "://" later in the path */
    qg_store_mask_url("bob:hunter22@host/x://y", out, sizeof out);
    cr_assert_str_eq(out, "bob:****@host/x://y");
    qg_store_mask_url("1x://u:secret@h", out, sizeof out); /* not a scheme: starts with a digit */
    cr_assert(!strstr(out, "secret"), "%s", out);
}

Test(store, absolute_url_form_and_file_mode)
{
    /* dburl is already sqlite:///tmp/... (absolute); check the file is private */
    qg_store *s = open_store(1);
    qg_store_close(s);
    char path[128], dir[128];
    snprintf(path, sizeof path, "%s/sub/q.db", tmpdir);
    snprintf(dir, sizeof dir, "%s/sub", tmpdir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
}

Test(store, relative_url_form)
{
    char cwd[512];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(tmpdir), 0);
    qg_store *s = NULL;
    qg_error err = {0};
    qg_status rc = qg_store_open("sqlite://rel/dir/r.db", 1, true, &s, &err);
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_eq(rc, QG_OK, "%s", err.msg);
    qg_store_close(s);
    char path[128];
    snprintf(path, sizeof path, "%s/rel/dir/r.db", tmpdir);
    cr_assert_eq(access(path, F_OK), 0);
}

Test(store, newer_schema_is_refused)
{
    qg_store *s = open_store(1);
    qg_conn *c;
    qg_error err = {0};
    int latest;
    cr_assert_eq(qg_store_version(s, NULL, &latest, &err), QG_OK);
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    qg_val v[] = {QG_VINT(latest + 5), QG_VTEXT("from the future"), QG_VINT(0)};
    cr_assert_eq(qg_conn_exec(c,
                              "INSERT INTO schema_migrations (version, name, applied_at) VALUES "
                              "(?, ?, ?)",
                              v, 3, NULL, &err),
                 QG_OK);
    qg_store_release(s, c);
    qg_store_close(s);

    for (int migrate = 0; migrate < 2; migrate++) {
        s = NULL;
        cr_assert_eq(qg_store_open(dburl, 1, migrate, &s, &err), QG_EINVAL);
        cr_assert_null(s);
        char want[64];
        snprintf(want, sizeof want, "schema version %d", latest + 5);
        cr_assert(strstr(err.msg, want), "%s", err.msg);
        cr_assert(strstr(err.msg, "newer"), "%s", err.msg);
    }
}

Test(store, stats_count_queries_errors_and_time)
{
    qg_store *s = open_store(1);
    qg_store_stats a, b;
    qg_store_get_stats(s, &a);
    qg_conn *c;
    qg_error err = {0};
    cr_assert_eq(qg_store_acquire(s, &c, &err), QG_OK);
    for (int i = 0; i < 10; i++) count_sql(c, "SELECT COUNT(*) FROM users");
    cr_assert_eq(qg_conn_exec(c, "SELECT * FROM no_such_table", NULL, 0, NULL, &err), QG_EIO);
    cr_assert_eq(qg_conn_begin(c, &err), QG_OK);
    cr_assert_eq(qg_conn_commit(c, &err), QG_OK);
    cr_assert_eq(qg_conn_begin(c, &err), QG_OK);
    cr_assert_eq(qg_conn_rollback(c), QG_OK);
    qg_store_release(s, c);
    qg_store_get_stats(s, &b);
    cr_assert_eq(b.queries - a.queries, 10 + 1 + 4);
    cr_assert_eq(b.errors - a.errors, 1);
    cr_assert_eq(b.commits - a.commits, 1);
    cr_assert_eq(b.rollbacks - a.rollbacks, 1);
    cr_assert_geq(b.busy_us, a.busy_us);
    qg_store_close(s);
}

Test(store, ids_are_ulids_and_monotonic)
{
    char prev[QG_ID_MAX] = "", id[QG_ID_MAX];
    for (int i = 0; i < 10000; i++) {
        qg_store_new_id("usr", id, sizeof id);
        cr_assert_eq(strlen(id), 3 + 1 + 26);
        cr_assert_eq(strncmp(id, "usr_", 4), 0);
        for (const char *p = id + 4; *p; p++)
            cr_assert(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", *p), "bad char in %s", id);
        cr_assert_lt(strcmp(prev, id), 0, "%s !< %s", prev, id);
        memcpy(prev, id, sizeof id);
    }
    /* the time part decodes to now */
    int64_t ms = 0;
    const char *alpha = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    for (int i = 0; i < 10; i++) ms = ms * 32 + (strchr(alpha, id[4 + i]) - alpha);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    cr_assert(ms <= now + 1000 && ms > now - 10000, "id time %lld, now %lld", (long long)ms,
              (long long)now);
    /* too small a buffer gives an empty string, never an overflow */
    char small[10] = "x";
    qg_store_new_id("usr", small, sizeof small);
    cr_assert_str_eq(small, "");
}
