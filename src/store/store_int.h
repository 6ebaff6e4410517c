/*
 * store_int.h - what backends implement; services use store.h only.
 *
 * A backend is a table of function pointers (SQLite's VFS, Redis's
 * ConnectionType): store.c holds the pool, statistics and migrations and
 * calls through the table, one backend per file (sqlite.c, postgres.c).
 */
#ifndef QG_STORE_INT_H
#define QG_STORE_INT_H

#include "store/store.h"

typedef struct qg_migration {
    int version;
    const char *name;
    const char *sql; /* one or more statements separated by ';' */
} qg_migration;

/* The schema, oldest first (migrations.c). */
const qg_migration *qg_migrations(size_t *n);

/* A backend's table. (Named "driver" because store.h already has a function
 * called qg_store_backend.) Every backend defines struct qg_row with a
 * `const qg_store_driver *` as its first member: the qg_row_* accessors in
 * store.c read it to call the right row functions. */
typedef struct qg_store_driver {
    const char *name;   /* "sqlite" */
    const char *scheme; /* "sqlite://" */
    /* Opens one connection to the database at the part of the URL after the
     * scheme; *out is backend-private and freed by close. */
    qg_status (*connect)(const char *target, void **out, qg_error *err);
    void (*close)(void *conn);
    /* Runs a script of statements with no parameters (migrations). */
    qg_status (*exec_script)(void *conn, const char *sql, qg_error *err);
    qg_status (*exec)(void *conn, const char *sql, const qg_val *params, size_t n, int64_t *changes,
                      qg_error *err);
    qg_status (*query)(void *conn, const char *sql, const qg_val *params, size_t n,
                       qg_row_fn row_fn, void *ud, qg_error *err);
    int (*row_count)(const qg_row *r);
    bool (*row_is_null)(const qg_row *r, int col);
    int64_t (*row_int)(const qg_row *r, int col);
    double (*row_double)(const qg_row *r, int col);
    const char *(*row_text)(const qg_row *r, int col);
    const char *begin_sql; /* "BEGIN IMMEDIATE" */
    /* Optional (NULL: every commit is durable when it returns). The path of
     * the log file whose fdatasync makes durable every commit that returned
     * before the sync began, on a connection set to sync less itself
     * (SQLite: the WAL, with synchronous=NORMAL). QG_ENOTFOUND when this
     * database has none (":memory:"). */
    qg_status (*log_path)(void *conn, char *out, size_t cap, qg_error *err);
} qg_store_driver;

extern const qg_store_driver qg_store_sqlite;

#endif
