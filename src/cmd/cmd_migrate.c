/*
 * cmd_migrate.c - `quantgate migrate`: brings the database schema up to the
 * version this build knows, or with --status only reports where it is.
 *
 * The URL comes from --database, else DATABASE_URL, else the data directory
 * (the same default `serve` uses). It is printed with any password masked.
 * Exit status 0 when the schema is (or, with --status, was read) fine, 1 on
 * any database error, 2 on a usage error.
 */
#include "cmd/cmd.h"

#include "store/store_int.h"

static void usage(void)
{
    printf("usage: quantgate migrate [--database URL] [--status]\n\n"
           "Applies pending database migrations (each in its own transaction) and\n"
           "prints the schema version. `serve` does the same at start; this runs it\n"
           "on its own, e.g. before an upgrade.\n\n"
           "options:\n"
           "  --database URL   database to migrate (default: DATABASE_URL, else\n"
           "                   sqlite://$QG_DATA_DIR/quantgate.db)\n"
           "  --status         print the current and latest versions, apply nothing\n"
           "  --help           this text\n");
}

static const char *plural(int n)
{
    return n == 1 ? "" : "s";
}

static int count_pending(int current)
{
    size_t n;
    int pending = 0;
    const qg_migration *m = qg_migrations(&n);
    for (size_t i = 0; i < n; i++) pending += m[i].version > current;
    return pending;
}

/* Lists migrations newer than current, one per line. */
static void print_pending(int current)
{
    size_t n;
    const qg_migration *m = qg_migrations(&n);
    for (size_t i = 0; i < n; i++)
        if (m[i].version > current) printf("  pending %d: %s\n", m[i].version, m[i].name);
}

int qg_cmd_migrate(int argc, char **argv)
{
    const char *url = NULL;
    bool status_only = false;
    qg_args a = qg_args_begin(argc, argv);
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help")) return usage(), 0;
        if (qg_args_value(&a, "--database", &url)) continue;
        if (qg_args_flag(&a, "--status")) {
            status_only = true;
            continue;
        }
        return qg_args_unknown(&a);
    }
    char url_buf[512], shown[256];
    if (!url) url = qg_cmd_database_url(url_buf, sizeof url_buf);
    qg_store_mask_url(url, shown, sizeof shown);

    qg_error err = {0};
    qg_store *s = NULL;
    int rc = 0, applied = 0, current = 0, latest = 0;
    /* Open without migrating so the count of applied migrations is ours. */
    if (qg_store_open(url, 1, false, &s, &err) ||
        (!status_only && qg_store_migrate(s, &applied, &err)) ||
        qg_store_version(s, &current, &latest, &err)) {
        rc = qg_cmd_fail("migrate", "%s", err.msg);
        goto out;
    }
    if (status_only) {
        int pending = count_pending(current);
        printf("database %s: schema version %d (latest %d), %d migration%s pending\n", shown,
               current, latest, pending, plural(pending));
        print_pending(current);
    } else {
        printf("database %s: applied %d migration%s, schema version %d (latest %d)\n", shown,
               applied, plural(applied), current, latest);
    }
out:
    qg_store_close(s);
    return rc;
}
