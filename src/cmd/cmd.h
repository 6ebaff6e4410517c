/*
 * cmd.h - the quantgate command line: one file per subcommand, sharing a
 * small option parser and a progress bar.
 *
 * A subcommand is `int qg_cmd_NAME(int argc, char **argv)` where argv[0] is
 * the subcommand name; it returns the process exit status (0 ok, 1 failure,
 * 2 usage error). Errors go to stderr as "quantgate NAME: message".
 */
#ifndef QG_CMD_H
#define QG_CMD_H

#include <quantgate/bars.h>
#include <quantgate/status.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

int qg_cmd_gen_data(int argc, char **argv);
int qg_cmd_indicators(int argc, char **argv);
int qg_cmd_backtest(int argc, char **argv);
int qg_cmd_check(int argc, char **argv);
int qg_cmd_optimize(int argc, char **argv);
int qg_cmd_config(int argc, char **argv);
int qg_cmd_serve(int argc, char **argv);
int qg_cmd_migrate(int argc, char **argv);
int qg_cmd_user(int argc, char **argv);
int qg_cmd_vault(int argc, char **argv);
int qg_cmd_docs(int argc, char **argv);
int qg_cmd_detect(int argc, char **argv);
int qg_cmd_notify(int argc, char **argv);

/* ---- server-side settings shared by serve, migrate, user and vault ---- */
/* QG_DATA_DIR or "var". */
const char *qg_cmd_data_dir(void);
/* DATABASE_URL, or sqlite://<data dir>/quantgate.db, written into buf. */
const char *qg_cmd_database_url(char *buf, size_t cap);

/* ---- options ----
 * Usage in a subcommand:
 *   qg_args a = qg_args_begin(argc, argv);
 *   while (qg_args_next(&a)) {
 *       if (qg_args_value(&a, "--data", &data)) continue;
 *       if (qg_args_flag(&a, "--json")) { json = true; continue; }
 *       return qg_args_unknown(&a);
 *   }
 * Options take "--name value" or "--name=value". A missing value prints a
 * usage error and exits with status 2. */
typedef struct qg_args {
    int argc;
    char **argv;
    int i;
    const char *cmd;
} qg_args;

qg_args qg_args_begin(int argc, char **argv);
bool qg_args_next(qg_args *a);
bool qg_args_value(qg_args *a, const char *name, const char **value);
bool qg_args_flag(qg_args *a, const char *name);
/* Reports the current argument as unknown; returns 2. */
int qg_args_unknown(qg_args *a);
/* For commands with actions (`quantgate user add`): argv[1] names one of
 * actions (NULL-terminated). Sets *which to its index and returns -1; for
 * --help, a missing or an unknown action it prints usage or the error and
 * returns the exit status. */
int qg_args_action(int argc, char **argv, const char *cmd, const char *const actions[],
                   void (*usage)(FILE *out), int *which);
/* Parses numbers given as option values; on failure prints the option, the
 * value and the reason, and exits 2. */
double qg_args_double(const qg_args *a, const char *name, const char *value, double min,
                      double max);
long long qg_args_int(const qg_args *a, const char *name, const char *value, long long min,
                      long long max);

/* Prints "quantgate CMD: message" to stderr; returns 1. */
int qg_cmd_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- progress bar on stderr, shown only when stderr is a terminal ---- */
typedef struct qg_progress {
    const char *label;
    bool enabled;
    int64_t last_ms;
    int last_pct;
} qg_progress;

void qg_progress_init(qg_progress *p, const char *label, bool quiet);
/* A qg_progress_fn: ud is the qg_progress. Redraws at most 10 times/s. */
void qg_progress_update(void *ud, uint64_t done, uint64_t total);
/* Clears the bar line. */
void qg_progress_done(qg_progress *p);

/* ---- shared data loading for --data/--timeframe/--from/--to/--lenient ---- */
typedef struct qg_data_args {
    const char *path;
    const char *timeframe; /* NULL: as loaded */
    const char *from, *to; /* NULL: unbounded */
    bool lenient;
    bool quiet;
} qg_data_args;

/* Consumes --data, --timeframe, --from, --to, --lenient and --quiet. */
bool qg_data_args_match(qg_args *a, qg_data_args *d);
/* Loads, reports skipped rows on stderr, resamples and cuts as asked. On
 * success *bars owns the data; *view is the selected range inside it. */
int qg_data_load(const char *cmd, const qg_data_args *d, qg_bars *bars, qg_bars *view);

/* ---- the server's database, for user and vault ---- */
typedef struct qg_store qg_store;
typedef struct qg_conn qg_conn;

/* Opens url (NULL: qg_cmd_database_url()) with one connection, migrating
 * it, and takes that connection. On failure prints "quantgate CMD:
 * message" and returns 1 with nothing left open; on success returns 0 and
 * the caller gives both back with qg_cmd_store_close. */
int qg_cmd_store_open(const char *cmd, const char *url, qg_store **store, qg_conn **conn);
/* Releases conn (may be NULL) and closes store (may be NULL). */
void qg_cmd_store_close(qg_store *store, qg_conn *conn);

#endif
