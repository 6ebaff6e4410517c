/*
 * sqlite.c - the SQLite backend of the store (scheme "sqlite://").
 *
 * One backend connection is one sqlite3 handle opened in multi-thread mode
 * (SQLITE_OPEN_NOMUTEX): the pool in store.c guarantees that only one thread
 * uses a connection at a time, so SQLite's per-handle mutex would be pure
 * cost. Every connection runs in WAL mode (readers never block the writer),
 * waits up to 5 s on a lock, enforces foreign keys and syncs at NORMAL.
 *
 * Statements are prepared once per connection and kept in a small cache
 * keyed by their SQL text (hash + exact compare against sqlite3_sql), evicted
 * least-recently-used. After every call the statement is reset and its
 * bindings cleared, so bound text can be SQLITE_STATIC: it only has to live
 * for the call, and nothing is copied or allocated per call or per row.
 *
 * The row handed to callbacks is a stack struct whose first member is the
 * backend table (store.c dispatches the row accessors through it).
 *
 * Error messages carry sqlite3_errmsg and, for prepare errors, the start of
 * the SQL text; never bound values, which may be secrets.
 */
#include "store/store_int.h"

#include <quantgate/hash.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STMT_CACHE_SIZE 64
#define BUSY_TIMEOUT_MS 5000
#define SQL_SNIPPET     60 /* characters of SQL quoted in prepare errors */

typedef struct stmt_entry {
    sqlite3_stmt *st; /* NULL when the slot is free */
    const char *seen; /* the caller's text at the last use: a hint only */
    uint64_t hash;
    uint64_t last_use;
} stmt_entry;

typedef struct sqlite_conn {
    sqlite3 *db;
    uint64_t tick; /* LRU clock */
    stmt_entry cache[STMT_CACHE_SIZE];
} sqlite_conn;

/* The row seen by callbacks: the statement positioned on it. The backend
 * pointer must stay first (store.c reads it to dispatch accessors). */
struct qg_row {
    const qg_store_driver *backend;
    sqlite3_stmt *st;
};

static qg_status map_code(int ext)
{
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) return QG_EEXIST;
    if ((ext & 0xff) == SQLITE_BUSY || (ext & 0xff) == SQLITE_LOCKED) return QG_EAGAIN;
    if ((ext & 0xff) == SQLITE_NOMEM) return QG_ENOMEM;
    return QG_EIO;
}

/* Fills err from the handle's last error; returns the mapped status. */
static qg_status db_error(sqlite3 *db, qg_error *err, const char *what)
{
    int ext = sqlite3_extended_errcode(db);
    return qg_error_set(err, map_code(ext), "sqlite: %s: %s", what, sqlite3_errmsg(db));
}

/* ---- connecting ---- */

/* mkdir -p for the directory part of path, new directories 0700 (the
 * database holds password hashes and encrypted secrets). */
static qg_status make_parent_dirs(const char *path, qg_error *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return qg_error_set(err, QG_EINVAL, "sqlite: database path is longer than %zu bytes",
                            sizeof buf - 1);
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return QG_OK;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return qg_error_set(err, QG_EIO, "sqlite: cannot create directory '%s': %s", buf,
                                strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return qg_error_set(err, QG_EIO, "sqlite: cannot create directory '%s': %s", buf,
                            strerror(errno));
    return QG_OK;
}

/* Creates the file 0600 before SQLite does (it would use 0644); the -wal and
 * -shm files copy the database file's permissions. */
/* Creates the file (mode 0600) when it does not exist yet. Never opens an
 * existing one: closing any descriptor of a file drops every POSIX lock the
 * process holds on it, SQLite's included, and another process (the CLI, a
 * backup tool) that then sees no lock takes the WAL for abandoned and
 * deletes it under the server's open connections. */
static qg_status precreate_file(const char *path, qg_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) return QG_OK;
    if (fd < 0)
        return qg_error_set(err, QG_EIO, "sqlite: cannot open database '%s': %s", path,
                            strerror(errno));
    close(fd);
    return QG_OK;
}

static void sq_close(void *conn)
{
    sqlite_conn *c = conn;
    if (!c) return;
    for (int i = 0; i < STMT_CACHE_SIZE; i++) sqlite3_finalize(c->cache[i].st);
    sqlite3_close_v2(c->db);
    free(c);
}

/* Before SQLite's first use: without memory statistics, every allocation
 * inside SQLite stops taking one process-wide mutex (contended by the
 * request workers, the pipeline and the writer; nothing reads them). */
static void configure_once(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static qg_status sq_connect(const char *target, void **out, qg_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_once);
    qg_status rc = QG_OK;
    sqlite_conn *c = NULL;
    *out = NULL;
    if (!target || !*target)
        return qg_error_set(err, QG_EINVAL,
                            "sqlite: the URL names no database file "
                            "(expected sqlite://PATH or sqlite:///ABS/PATH)");
    bool memory = strcmp(target, ":memory:") == 0;
    if (!memory) {
        if ((rc = make_parent_dirs(target, err))) goto out;
        if ((rc = precreate_file(target, err))) goto out;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        rc = qg_error_set(err, QG_ENOMEM, "sqlite: out of memory opening a connection");
        goto out;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(target, &c->db, flags, NULL) != SQLITE_OK) {
        rc = qg_error_set(err, QG_EIO, "sqlite: cannot open database '%s': %s", target,
                          c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(c->db, 1);
    /* The busy timeout first: switching to WAL takes a lock that another
     * connection opening at the same moment may hold. */
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    if (sqlite3_exec(c->db,
                     "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; "
                     "PRAGMA synchronous=NORMAL;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_error(c->db, err, "configuring the connection");
        qg_error_prefix(err, "database '%s'", target);
        goto out;
    }
out:
    if (rc)
        sq_close(c);
    else
        *out = c;
    return rc;
}

/* ---- statement cache ---- */

static bool only_space(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != ';') return false;
    return true;
}

/* The cached statement whose text the caller passed at the same address
 * last time (a string literal, nearly always): one vectorised strcmp
 * instead of hashing the whole text byte by byte, which was most of a
 * lookup. The strcmp keeps it right for a caller's reused buffer. */
static stmt_entry *cached_at(sqlite_conn *c, const char *sql)
{
    for (int i = 0; i < STMT_CACHE_SIZE; i++) {
        stmt_entry *e = &c->cache[i];
        if (e->st && e->seen == sql && strcmp(sqlite3_sql(e->st), sql) == 0) return e;
    }
    return NULL;
}

/* e serves sql now: the most recently used, with sql's address as its hint. */
static qg_status use_entry(sqlite_conn *c, stmt_entry *e, const char *sql, sqlite3_stmt **out)
{
    e->seen = sql;
    e->last_use = ++c->tick;
    *out = e->st;
    return QG_OK;
}

/* Finds or prepares the statement for sql. The statement stays owned by
 * the cache; callers reset it (release_stmt) when done. */
static qg_status get_stmt(sqlite_conn *c, const char *sql, sqlite3_stmt **out, qg_error *err)
{
    stmt_entry *hit = cached_at(c, sql);
    if (hit) return use_entry(c, hit, sql, out);
    uint64_t h = qg_fnv1a_str(QG_FNV1A_BASIS, sql);
    stmt_entry *free_slot = NULL, *lru = NULL;
    for (int i = 0; i < STMT_CACHE_SIZE; i++) {
        stmt_entry *e = &c->cache[i];
        if (!e->st) {
            if (!free_slot) free_slot = e;
            continue;
        }
        if (e->hash == h && strcmp(sqlite3_sql(e->st), sql) == 0) return use_entry(c, e, sql, out);
        if (!lru || e->last_use < lru->last_use) lru = e;
    }
    stmt_entry *victim = free_slot ? free_slot : lru;
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail) != SQLITE_OK) {
        int ext = sqlite3_extended_errcode(c->db);
        return qg_error_set(err, map_code(ext) == QG_EAGAIN ? QG_EAGAIN : QG_EIO,
                            "sqlite: preparing \"%.*s%s\": %s", SQL_SNIPPET, sql,
                            strlen(sql) > SQL_SNIPPET ? "..." : "", sqlite3_errmsg(c->db));
    }
    if (!st || (tail && !only_space(tail))) {
        sqlite3_finalize(st);
        return qg_error_set(err, QG_EINVAL,
                            "sqlite: \"%.*s%s\": expected exactly one statement (scripts go "
                            "through exec_script)",
                            SQL_SNIPPET, sql, strlen(sql) > SQL_SNIPPET ? "..." : "");
    }
    sqlite3_finalize(victim->st);
    victim->st = st;
    victim->hash = h;
    return use_entry(c, victim, sql, out);
}

static void release_stmt(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static qg_status bind_params(sqlite_conn *c, sqlite3_stmt *st, const qg_val *params, size_t n,
                             qg_error *err)
{
    int want = sqlite3_bind_parameter_count(st);
    if ((size_t)want != n)
        return qg_error_set(err, QG_EINVAL, "sqlite: statement takes %d parameters, %zu given",
                            want, n);
    for (size_t i = 0; i < n; i++) {
        const qg_val *v = &params[i];
        int col = (int)i + 1, r;
        switch (v->type) {
        case QG_VAL_INT:
            r = sqlite3_bind_int64(st, col, v->i);
            break;
        case QG_VAL_DOUBLE:
            r = sqlite3_bind_double(st, col, v->d);
            break;
        case QG_VAL_TEXT:
            /* STATIC: the statement is reset and cleared before the call
             * returns, so the caller's text outlives every use. */
            r = v->s ? sqlite3_bind_text(st, col, v->s, -1, SQLITE_STATIC)
                     : sqlite3_bind_null(st, col);
            break;
        case QG_VAL_NULL:
            r = sqlite3_bind_null(st, col);
            break;
        default:
            return qg_error_set(err, QG_EINVAL, "sqlite: parameter %d has an unknown type %d", col,
                                (int)v->type);
        }
        if (r != SQLITE_OK) return db_error(c->db, err, "binding a parameter");
    }
    return QG_OK;
}

/* ---- running statements ---- */

static qg_status sq_exec_script(void *conn, const char *sql, qg_error *err)
{
    sqlite_conn *c = conn;
    char *msg = NULL;
    int r = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (r == SQLITE_OK) return QG_OK;
    qg_status rc = qg_error_set(err, map_code(sqlite3_extended_errcode(c->db)), "sqlite: %s",
                                msg ? msg : sqlite3_errstr(r));
    sqlite3_free(msg);
    return rc;
}

static qg_status sq_exec(void *conn, const char *sql, const qg_val *params, size_t n,
                         int64_t *changes, qg_error *err)
{
    sqlite_conn *c = conn;
    sqlite3_stmt *st;
    qg_status rc = get_stmt(c, sql, &st, err);
    if (rc) return rc;
    if ((rc = bind_params(c, st, params, n, err))) goto out;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    }
    if (r != SQLITE_DONE) {
        rc = db_error(c->db, err, "executing a statement");
        goto out;
    }
    if (changes) *changes = sqlite3_changes64(c->db);
out:
    release_stmt(st);
    return rc;
}

static qg_status sq_query(void *conn, const char *sql, const qg_val *params, size_t n,
                          qg_row_fn row_fn, void *ud, qg_error *err)
{
    sqlite_conn *c = conn;
    sqlite3_stmt *st;
    qg_status rc = get_stmt(c, sql, &st, err);
    if (rc) return rc;
    if ((rc = bind_params(c, st, params, n, err))) goto out;
    struct qg_row row = {.backend = &qg_store_sqlite, .st = st};
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (row_fn && (rc = row_fn(ud, &row))) goto out;
    }
    if (r != SQLITE_DONE) rc = db_error(c->db, err, "running a query");
out:
    release_stmt(st);
    return rc;
}

/* ---- rows ---- */

static int sq_row_count(const qg_row *r)
{
    return sqlite3_data_count(r->st);
}

static bool in_range(const qg_row *r, int col)
{
    return col >= 0 && col < sqlite3_data_count(r->st);
}

static bool sq_row_is_null(const qg_row *r, int col)
{
    return !in_range(r, col) || sqlite3_column_type(r->st, col) == SQLITE_NULL;
}

static int64_t sq_row_int(const qg_row *r, int col)
{
    return in_range(r, col) ? sqlite3_column_int64(r->st, col) : 0;
}

static double sq_row_double(const qg_row *r, int col)
{
    return in_range(r, col) ? sqlite3_column_double(r->st, col) : 0.0;
}

static const char *sq_row_text(const qg_row *r, int col)
{
    return in_range(r, col) ? (const char *)sqlite3_column_text(r->st, col) : NULL;
}

/* The WAL: with synchronous=NORMAL a commit appends its frames without
 * syncing them, and recovery replays every valid frame up to the last
 * commit, so an fdatasync of the file makes durable every commit written
 * before it. Only in WAL mode (a file that could not switch has none). */
static qg_status sq_log_path(void *conn, char *out, size_t cap, qg_error *err)
{
    sqlite_conn *c = conn;
    sqlite3_filename db = sqlite3_db_filename(c->db, "main");
    const char *wal = db && *db ? sqlite3_filename_wal(db) : NULL;
    if (!wal || !*wal) return qg_error_set(err, QG_ENOTFOUND, "sqlite: an in-memory database");
    sqlite3_stmt *st = NULL;
    const char *mode = NULL;
    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(st, 0);
    bool is_wal = mode && strcmp(mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!is_wal) return qg_error_set(err, QG_ENOTFOUND, "sqlite: not in WAL mode");
    if (strlen(wal) >= cap) return qg_error_set(err, QG_ERANGE, "sqlite: WAL path too long");
    memcpy(out, wal, strlen(wal) + 1);
    return QG_OK;
}

const qg_store_driver qg_store_sqlite = {
    .name = "sqlite",
    .scheme = "sqlite://",
    .connect = sq_connect,
    .close = sq_close,
    .exec_script = sq_exec_script,
    .exec = sq_exec,
    .query = sq_query,
    .row_count = sq_row_count,
    .row_is_null = sq_row_is_null,
    .row_int = sq_row_int,
    .row_double = sq_row_double,
    .row_text = sq_row_text,
    .begin_sql = "BEGIN IMMEDIATE",
    .log_path = sq_log_path,
};
