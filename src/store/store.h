/*
 * store.h - relational storage behind one small interface.
 *
 * A qg_store is a pool of connections to one database, opened from a URL
 * (`sqlite://var/quantgate.db`; `postgres://...` when that backend lands).
 * Services write their own SQL against qg_conn with `?` placeholders and
 * portable types only (TEXT, BIGINT, DOUBLE PRECISION, INTEGER 0/1 for
 * booleans; ids are application-generated TEXT; times are BIGINT UTC ms;
 * no AUTOINCREMENT, no RETURNING), so a second backend runs the same SQL.
 *
 * Threads: a qg_store is shared by all threads; a qg_conn belongs to the
 * thread that acquired it until it is released. Statements are prepared once
 * per connection and cached by their SQL text.
 */
#ifndef QG_STORE_H
#define QG_STORE_H

#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qg_store qg_store;
typedef struct qg_conn qg_conn;
typedef struct qg_row qg_row;

typedef enum { QG_VAL_NULL, QG_VAL_INT, QG_VAL_DOUBLE, QG_VAL_TEXT } qg_val_type;

/* A bound parameter. Text is copied by the backend while binding, so it only
 * has to live for the call. */
typedef struct qg_val {
    qg_val_type type;
    int64_t i;
    double d;
    const char *s; /* NUL-terminated; NULL binds SQL NULL */
} qg_val;

#define QG_VNULL    ((qg_val){.type = QG_VAL_NULL})
#define QG_VINT(x)  ((qg_val){.type = QG_VAL_INT, .i = (int64_t)(x)})
#define QG_VDBL(x)  ((qg_val){.type = QG_VAL_DOUBLE, .d = (double)(x)})
#define QG_VTEXT(x) ((qg_val){.type = QG_VAL_TEXT, .s = (x)})

/* Counters for /metrics, updated atomically by every connection. */
typedef struct qg_store_stats {
    uint64_t queries;   /* statements executed */
    uint64_t errors;    /* statements that failed */
    uint64_t commits;   /* transactions committed */
    uint64_t rollbacks; /* transactions rolled back */
    uint64_t busy_us;   /* total time spent executing statements, microseconds */
} qg_store_stats;

/* Opens the database named by url with up to max_conns connections and
 * applies pending migrations when migrate is true. The caller owns the store
 * and frees it with qg_store_close (which waits for nothing: release every
 * connection first). Errors name the URL (password masked) and the reason. */
qg_status qg_store_open(const char *url, int max_conns, bool migrate, qg_store **out,
                        qg_error *err);
void qg_store_close(qg_store *s);

/* Applies pending migrations; *applied (may be NULL) gets how many ran. */
qg_status qg_store_migrate(qg_store *s, int *applied, qg_error *err);
/* The schema version the database is at, and the newest this build knows. */
qg_status qg_store_version(qg_store *s, int *current, int *latest, qg_error *err);
/* Runs `SELECT 1` on a connection: the readiness probe. */
qg_status qg_store_ping(qg_store *s, qg_error *err);
void qg_store_get_stats(const qg_store *s, qg_store_stats *out);
/* Writes url with any password (user:PASS@ or password=PASS) replaced by
 * "****", for messages and logs. */
void qg_store_mask_url(const char *url, char *out, size_t cap);
/* "sqlite" or "postgres". */
const char *qg_store_backend(const qg_store *s);

/* Takes a connection, waiting while all are in use. Never fails for SQLite
 * once the store is open; QG_EIO when a backend cannot reconnect. */
qg_status qg_store_acquire(qg_store *s, qg_conn **out, qg_error *err);
void qg_store_release(qg_store *s, qg_conn *c);

/* Runs one statement that returns no rows. *changes (may be NULL) gets the
 * number of rows it changed. A unique-constraint violation is QG_EEXIST. */
qg_status qg_conn_exec(qg_conn *c, const char *sql, const qg_val *params, size_t n,
                       int64_t *changes, qg_error *err);

/* Runs one query and calls row_fn for each row; row_fn returns QG_OK to go
 * on or anything else to stop (that status is returned). The row and every
 * pointer taken from it are valid only during the callback. */
typedef qg_status (*qg_row_fn)(void *ud, const qg_row *row);
qg_status qg_conn_query(qg_conn *c, const char *sql, const qg_val *params, size_t n,
                        qg_row_fn row_fn, void *ud, qg_error *err);

/* Column accessors; col is 0-based. Text of a NULL column is NULL. */
int qg_row_count(const qg_row *r);
bool qg_row_is_null(const qg_row *r, int col);
int64_t qg_row_int(const qg_row *r, int col);
double qg_row_double(const qg_row *r, int col);
const char *qg_row_text(const qg_row *r, int col);

/* Writes n copies of select (one lookup, e.g. "SELECT ... WHERE id = ?")
 * joined by UNION ALL into out, for looking a few keys up in one query:
 * "key IN (?, ...)" makes SQLite build a temporary b-tree of the values on
 * every call. The query takes the parameters of each copy in turn. Returns
 * QG_ERANGE when out is too small. */
qg_status qg_sql_union_all(char *out, size_t cap, const char *select, size_t n);

/* A qg_row_fn that copies column 0's text (an id; "" when NULL) into ud,
 * a char[QG_ID_MAX]: for queries that look one id up. */
qg_status qg_row_take_id(void *ud, const qg_row *row);

/* Transactions on one connection. begin is BEGIN IMMEDIATE on SQLite, so
 * writers queue on the busy timeout instead of failing at commit. */
qg_status qg_conn_begin(qg_conn *c, qg_error *err);
qg_status qg_conn_commit(qg_conn *c, qg_error *err);
qg_status qg_conn_rollback(qg_conn *c);

/* The log file behind deferred durability (see store_int.h's log_path):
 * QG_ENOTFOUND for a backend or database without one. */
qg_status qg_conn_log_path(qg_conn *c, char *out, size_t cap, qg_error *err);

/* Writes a new id: prefix, '_', 26 Crockford base32 characters of a 48-bit
 * millisecond time and 80 random bits (ULID), so ids sort by creation time.
 * out needs at least strlen(prefix) + 28 bytes. */
void qg_store_new_id(const char *prefix, char *out, size_t cap);
#define QG_ID_MAX 40

#endif
