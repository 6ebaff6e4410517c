/*
 * store.c - the backend-independent half of the store: choosing a backend by
 * URL scheme, the connection pool, statistics, migrations and ids.
 *
 * Pool: connections are opened lazily up to max_conns and kept on an idle
 * stack; acquire waits on a condition variable while all are in use. A
 * connection released inside a transaction is rolled back first, so a
 * forgotten rollback on an error path cannot leak a held write lock into the
 * next user.
 *
 * Statistics are relaxed atomic counters; statement time is measured with the
 * monotonic clock around each backend call.
 *
 * Migrations: schema_migrations(version, name, applied_at) records what ran.
 * Each pending migration runs in one transaction together with its row, and
 * the version is re-read inside that transaction, so two processes migrating
 * at once apply each migration once. A database newer than this build is
 * refused at open: running old code on a new schema corrupts data quietly.
 *
 * Rows: every backend's struct qg_row starts with a pointer to its backend
 * table, which is how the qg_row_* accessors find their implementation.
 */
#include "store/store_int.h"

#include <quantgate/log.h>
#include <quantgate/time.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_MAX_CONNS 8
#define URL_SHOWN_MAX     256

struct qg_conn {
    qg_store *store;
    void *impl;    /* backend connection */
    qg_conn *next; /* idle list */
    bool in_tx;
};

struct qg_store {
    const qg_store_driver *be;
    char *target; /* URL after the scheme */
    char url_shown[URL_SHOWN_MAX];
    int max_conns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qg_conn *idle; /* stack of idle connections */
    int n_open;    /* idle + in use */
    _Atomic uint64_t queries, errors, commits, rollbacks, busy_us;
};

static const qg_store_driver *const backends[] = {&qg_store_sqlite};

/* ---- URLs ---- */

void qg_store_mask_url(const char *url, char *out, size_t cap)
{
    if (!cap) return;
    /* Only a real scheme (RFC 3986: a letter, then letters, digits, + - .)
     * ends at "://"; a later "://" (in a path) must not move the authority
     * past user:PASS@. */
    size_t slen = 0;
    if (isalpha((unsigned char)url[0]))
        while (isalnum((unsigned char)url[slen]) || url[slen] == '+' || url[slen] == '-' ||
               url[slen] == '.')
            slen++;
    bool scheme = slen && strncmp(url + slen, "://", 3) == 0;
    const char *auth = scheme ? url + slen + 3 : url;
    /* Without a scheme nothing says where the authority ends: look for
     * user:PASS@ in the whole text rather than risk showing a password. */
    size_t auth_len = scheme ? strcspn(auth, "/?#") : strlen(auth);
    const char *at = memrchr(auth, '@', auth_len);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon)
        snprintf(out, cap, "%.*s:****%s", (int)(colon - url), url, at);
    else
        snprintf(out, cap, "%s", url);
    /* password=... in a query string (libpq style) */
    char *pw = strstr(out, "password=");
    if (pw) {
        char *end = pw + 9 + strcspn(pw + 9, "&#");
        char rest[URL_SHOWN_MAX];
        snprintf(rest, sizeof rest, "%s", end);
        snprintf(pw + 9, cap - (size_t)(pw + 9 - out), "****%s", rest);
    }
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static qg_status pick_backend(const char *url, const char *shown, const qg_store_driver **out,
                              qg_error *err)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (has_prefix(url, backends[i]->scheme)) {
            *out = backends[i];
            return QG_OK;
        }
    }
    if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://"))
        return qg_error_set(err, QG_EINVAL,
                            "database URL '%s': the PostgreSQL backend is not built yet "
                            "(supported: sqlite://PATH)",
                            shown);
    char list[128] = "";
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%sPATH", i ? ", " : "", backends[i]->scheme);
    }
    return qg_error_set(err, QG_EINVAL, "database URL '%s': unsupported scheme (supported: %s)",
                        shown, list);
}

/* ---- timing and counters ---- */

static void count(_Atomic uint64_t *c, uint64_t by)
{
    atomic_fetch_add_explicit(c, by, memory_order_relaxed);
}

/* ---- pool ---- */

qg_status qg_store_acquire(qg_store *s, qg_conn **out, qg_error *err)
{
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    while (!s->idle && s->n_open >= s->max_conns) pthread_cond_wait(&s->cv, &s->mu);
    qg_conn *c = s->idle;
    if (c) {
        s->idle = c->next;
        pthread_mutex_unlock(&s->mu);
        c->next = NULL;
        *out = c;
        return QG_OK;
    }
    s->n_open++; /* reserve the slot, connect outside the lock */
    pthread_mutex_unlock(&s->mu);

    qg_status rc = QG_OK;
    c = calloc(1, sizeof *c);
    if (!c)
        rc = qg_error_set(err, QG_ENOMEM, "store: out of memory for a connection");
    else if ((rc = s->be->connect(s->target, &c->impl, err)))
        qg_error_prefix(err, "%s", s->url_shown);
    if (rc) {
        free(c);
        pthread_mutex_lock(&s->mu);
        s->n_open--;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    c->store = s;
    *out = c;
    return QG_OK;
}

void qg_store_release(qg_store *s, qg_conn *c)
{
    if (!c) return;
    if (c->in_tx) {
        qg_warn("store: a connection came back inside a transaction; rolling it back");
        qg_conn_rollback(c);
    }
    pthread_mutex_lock(&s->mu);
    c->next = s->idle;
    s->idle = c;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- statements ---- */

qg_status qg_conn_exec(qg_conn *c, const char *sql, const qg_val *params, size_t n,
                       int64_t *changes, qg_error *err)
{
    qg_store *s = c->store;
    uint64_t t0 = qg_time_mono_us();
    qg_status rc = s->be->exec(c->impl, sql, params, n, changes, err);
    count(&s->busy_us, qg_time_mono_us() - t0);
    count(&s->queries, 1);
    if (rc) count(&s->errors, 1);
    return rc;
}

/* Wraps the caller's row callback to tell its stop status apart from a
 * statement error (only the latter counts as an error). */
typedef struct {
    qg_row_fn fn;
    void *ud;
    qg_status stopped;
} row_tramp;

static qg_status tramp_fn(void *ud, const qg_row *row)
{
    row_tramp *t = ud;
    qg_status rc = t->fn(t->ud, row);
    if (rc) t->stopped = rc;
    return rc;
}

qg_status qg_conn_query(qg_conn *c, const char *sql, const qg_val *params, size_t n,
                        qg_row_fn row_fn, void *ud, qg_error *err)
{
    qg_store *s = c->store;
    row_tramp t = {.fn = row_fn, .ud = ud};
    uint64_t t0 = qg_time_mono_us();
    qg_status rc = s->be->query(c->impl, sql, params, n, row_fn ? tramp_fn : NULL, &t, err);
    count(&s->busy_us, qg_time_mono_us() - t0);
    count(&s->queries, 1);
    if (rc && rc != t.stopped) count(&s->errors, 1);
    return rc;
}

/* Every backend's row starts with its backend table. */
static const qg_store_driver *row_be(const qg_row *r)
{
    return *(const qg_store_driver *const *)(const void *)r;
}

int qg_row_count(const qg_row *r)
{
    return row_be(r)->row_count(r);
}

bool qg_row_is_null(const qg_row *r, int col)
{
    return row_be(r)->row_is_null(r, col);
}

int64_t qg_row_int(const qg_row *r, int col)
{
    return row_be(r)->row_int(r, col);
}

double qg_row_double(const qg_row *r, int col)
{
    return row_be(r)->row_double(r, col);
}

const char *qg_row_text(const qg_row *r, int col)
{
    return row_be(r)->row_text(r, col);
}

qg_status qg_row_take_id(void *ud, const qg_row *row)
{
    const char *t = qg_row_text(row, 0);
    snprintf(ud, QG_ID_MAX, "%s", t ? t : "");
    return QG_OK;
}

qg_status qg_sql_union_all(char *out, size_t cap, const char *select, size_t n)
{
    size_t len = 0;
    if (cap) out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? " UNION ALL " : "", select);
        if (w < 0 || (size_t)w >= cap - len) return QG_ERANGE;
        len += (size_t)w;
    }
    return QG_OK;
}

/* ---- transactions ---- */

qg_status qg_conn_log_path(qg_conn *c, char *out, size_t cap, qg_error *err)
{
    if (!c->store->be->log_path)
        return qg_error_set(err, QG_ENOTFOUND, "%s: commits sync themselves", c->store->be->name);
    return c->store->be->log_path(c->impl, out, cap, err);
}

qg_status qg_conn_begin(qg_conn *c, qg_error *err)
{
    if (c->in_tx) return qg_error_set(err, QG_EINTERNAL, "store: begin inside an open transaction");
    qg_status rc = qg_conn_exec(c, c->store->be->begin_sql, NULL, 0, NULL, err);
    if (rc == QG_OK) c->in_tx = true;
    return rc;
}

qg_status qg_conn_commit(qg_conn *c, qg_error *err)
{
    if (!c->in_tx) return qg_error_set(err, QG_EINTERNAL, "store: commit without a transaction");
    qg_status rc = qg_conn_exec(c, "COMMIT", NULL, 0, NULL, err);
    if (rc) {
        /* A failed COMMIT may leave the transaction open; close it so the
         * caller's later rollback (or none) is always safe. */
        qg_conn_rollback(c);
        return rc;
    }
    c->in_tx = false;
    count(&c->store->commits, 1);
    return QG_OK;
}

qg_status qg_conn_rollback(qg_conn *c)
{
    if (!c->in_tx) return QG_OK;
    c->in_tx = false;
    count(&c->store->rollbacks, 1);
    /* Fails only when the backend already rolled back on its own (e.g. an
     * I/O error); either way no transaction is open afterwards. */
    return qg_conn_exec(c, "ROLLBACK", NULL, 0, NULL, NULL);
}

/* ---- migrations ---- */

static const char create_versions_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                          "  version INTEGER PRIMARY KEY,"
                                          "  name TEXT NOT NULL,"
                                          "  applied_at BIGINT NOT NULL)";

static qg_status int_row(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_is_null(row, 0) ? 0 : qg_row_int(row, 0);
    return QG_OK;
}

static int latest_version(void)
{
    size_t n;
    const qg_migration *m = qg_migrations(&n);
    return n ? m[n - 1].version : 0;
}

static qg_status read_version(qg_conn *c, int *out, qg_error *err)
{
    int64_t v = 0;
    qg_status rc = qg_conn_exec(c, create_versions_sql, NULL, 0, NULL, err);
    if (!rc)
        rc = qg_conn_query(c, "SELECT MAX(version) FROM schema_migrations", NULL, 0, int_row, &v,
                           err);
    *out = (int)v;
    return rc;
}

static qg_status check_not_newer(qg_store *s, int current, qg_error *err)
{
    int latest = latest_version();
    if (current <= latest) return QG_OK;
    return qg_error_set(err, QG_EINVAL,
                        "database %s is at schema version %d, newer than this build of quantgate "
                        "knows (%d); run a newer quantgate or restore a matching backup",
                        s->url_shown, current, latest);
}

static qg_status apply_one(qg_conn *c, const qg_migration *m, bool *ran, qg_error *err)
{
    *ran = false;
    int current;
    qg_status rc = qg_conn_begin(c, err);
    if (rc) return rc;
    /* Re-read under the write lock: another process may have got here first. */
    if ((rc = read_version(c, &current, err))) goto out;
    if ((rc = check_not_newer(c->store, current, err))) goto out;
    if (current >= m->version) goto out;
    if ((rc = c->store->be->exec_script(c->impl, m->sql, err))) goto out;
    qg_val row[] = {QG_VINT(m->version), QG_VTEXT(m->name), QG_VINT(qg_time_now_ms())};
    if ((rc = qg_conn_exec(c,
                           "INSERT INTO schema_migrations (version, name, applied_at) "
                           "VALUES (?, ?, ?)",
                           row, 3, NULL, err)))
        goto out;
    if ((rc = qg_conn_commit(c, err))) goto out; /* commit rolled back already */
    *ran = true;
    return QG_OK;
out:
    if (rc) qg_error_prefix(err, "migration %d (%s)", m->version, m->name);
    qg_conn_rollback(c);
    return rc;
}

static qg_status migrate_conn(qg_conn *c, int *applied, qg_error *err)
{
    size_t n;
    const qg_migration *m = qg_migrations(&n);
    int current, done = 0;
    qg_status rc = read_version(c, &current, err);
    if (!rc) rc = check_not_newer(c->store, current, err);
    for (size_t i = 0; !rc && i < n; i++) {
        if (m[i].version <= current) continue;
        bool ran;
        if ((rc = apply_one(c, &m[i], &ran, err))) break;
        if (ran) {
            done++;
            qg_info("store: applied migration %d (%s)", m[i].version, m[i].name);
        }
    }
    if (applied) *applied = done;
    return rc;
}

qg_status qg_store_migrate(qg_store *s, int *applied, qg_error *err)
{
    qg_conn *c;
    if (applied) *applied = 0;
    qg_status rc = qg_store_acquire(s, &c, err);
    if (rc) return rc;
    rc = migrate_conn(c, applied, err);
    qg_store_release(s, c);
    return rc;
}

qg_status qg_store_version(qg_store *s, int *current, int *latest, qg_error *err)
{
    qg_conn *c;
    int cur = 0;
    qg_status rc = qg_store_acquire(s, &c, err);
    if (rc) return rc;
    rc = read_version(c, &cur, err);
    qg_store_release(s, c);
    if (current) *current = cur;
    if (latest) *latest = latest_version();
    return rc;
}

/* ---- open / close ---- */

void qg_store_close(qg_store *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    int idle = 0;
    while (s->idle) {
        qg_conn *c = s->idle;
        s->idle = c->next;
        s->be->close(c->impl);
        free(c);
        idle++;
    }
    if (idle != s->n_open)
        qg_warn("store: closed with %d connection(s) still in use", s->n_open - idle);
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->target);
    free(s);
}

qg_status qg_store_open(const char *url, int max_conns, bool migrate, qg_store **out, qg_error *err)
{
    qg_status rc = QG_OK;
    qg_store *s = NULL;
    qg_conn *c = NULL;
    *out = NULL;
    if (!url || !*url)
        return qg_error_set(err, QG_EINVAL, "database URL is empty (expected sqlite://PATH)");
    char shown[URL_SHOWN_MAX];
    qg_store_mask_url(url, shown, sizeof shown);
    const qg_store_driver *be;
    if ((rc = pick_backend(url, shown, &be, err))) return rc;

    s = calloc(1, sizeof *s);
    if (!s || !(s->target = strdup(url + strlen(be->scheme)))) {
        free(s);
        return qg_error_set(err, QG_ENOMEM, "store: out of memory");
    }
    s->be = be;
    memcpy(s->url_shown, shown, sizeof shown);
    s->max_conns = max_conns > 0 ? max_conns : DEFAULT_MAX_CONNS;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    /* Open one connection now so a bad URL fails at start, not on the
     * first request, and check the schema version on it. */
    if ((rc = qg_store_acquire(s, &c, err))) goto out;
    if (migrate) {
        rc = migrate_conn(c, NULL, err);
    } else {
        int current;
        rc = read_version(c, &current, err);
        if (!rc) rc = check_not_newer(s, current, err);
    }
    qg_store_release(s, c);
out:
    if (rc)
        qg_store_close(s);
    else
        *out = s;
    return rc;
}

qg_status qg_store_ping(qg_store *s, qg_error *err)
{
    qg_conn *c;
    int64_t one = 0;
    qg_status rc = qg_store_acquire(s, &c, err);
    if (rc) return rc;
    rc = qg_conn_query(c, "SELECT 1", NULL, 0, int_row, &one, err);
    qg_store_release(s, c);
    if (!rc && one != 1)
        rc = qg_error_set(err, QG_EIO, "store: SELECT 1 returned %lld", (long long)one);
    return rc;
}

void qg_store_get_stats(const qg_store *s, qg_store_stats *out)
{
    qg_store *m = (qg_store *)s; /* atomic loads take non-const pointers in C17 */
    out->queries = atomic_load_explicit(&m->queries, memory_order_relaxed);
    out->errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
    out->commits = atomic_load_explicit(&m->commits, memory_order_relaxed);
    out->rollbacks = atomic_load_explicit(&m->rollbacks, memory_order_relaxed);
    out->busy_us = atomic_load_explicit(&m->busy_us, memory_order_relaxed);
}

const char *qg_store_backend(const qg_store *s)
{
    return s->be->name;
}

/* ---- ids ---- */

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static pthread_mutex_t id_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last_ms;
static uint8_t id_last_rand[10];

static void fill_random(uint8_t *p, size_t n)
{
    while (n) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            /* getrandom cannot fail on Linux >= 3.17 with a valid buffer;
             * abort rather than hand out predictable ids. */
            qg_err("store: getrandom failed: %s", strerror(errno));
            abort();
        }
        p += got;
        n -= (size_t)got;
    }
}

/* Next (ms, random) pair: fresh randomness in a new millisecond, otherwise
 * the previous random part plus one (ULID monotonic), so ids from this
 * process sort in creation order even within a millisecond or when the
 * clock steps back. */
static void next_ulid(uint64_t *ms, uint8_t rnd[10])
{
    uint64_t now = (uint64_t)qg_time_now_ms() & 0xFFFFFFFFFFFFull;
    pthread_mutex_lock(&id_mu);
    if (now > id_last_ms) {
        id_last_ms = now;
        fill_random(id_last_rand, sizeof id_last_rand);
    } else {
        int i = 9;
        while (i >= 0 && ++id_last_rand[i] == 0) i--;
        if (i < 0) id_last_ms++; /* 2^80 ids in one ms: borrow the next one */
    }
    *ms = id_last_ms;
    memcpy(rnd, id_last_rand, 10);
    pthread_mutex_unlock(&id_mu);
}

void qg_store_new_id(const char *prefix, char *out, size_t cap)
{
    size_t plen = strlen(prefix);
    if (cap < plen + 28) {
        if (cap) out[0] = '\0';
        return;
    }
    uint64_t ms;
    uint8_t r[10];
    next_ulid(&ms, r);
    memcpy(out, prefix, plen);
    char *p = out + plen;
    *p++ = '_';
    for (int i = 9; i >= 0; i--) p[9 - i] = crockford[(ms >> (5 * i)) & 31];
    p += 10;
    /* 80 random bits as two 40-bit halves, 8 characters each */
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 5; i++) hi = hi << 8 | r[i];
    for (int i = 5; i < 10; i++) lo = lo << 8 | r[i];
    for (int i = 7; i >= 0; i--) p[7 - i] = crockford[(hi >> (5 * i)) & 31];
    for (int i = 7; i >= 0; i--) p[15 - i] = crockford[(lo >> (5 * i)) & 31];
    p[16] = '\0';
}
