/*
 * server_config.c - where the server keeps its data, shared by the commands
 * that open the database (serve, migrate, user, vault), so they always agree.
 */
#include "cmd/cmd.h"
#include "store/store.h"

#include <quantgate/config.h>

const char *qg_cmd_data_dir(void)
{
    return qg_config_str("QG_DATA_DIR", "var");
}

const char *qg_cmd_database_url(char *buf, size_t cap)
{
    const char *url = qg_config_str("DATABASE_URL", NULL);
    if (url) return url;
    snprintf(buf, cap, "sqlite://%s/quantgate.db", qg_cmd_data_dir());
    return buf;
}

int qg_cmd_store_open(const char *cmd, const char *url, qg_store **store, qg_conn **conn)
{
    qg_error err = {0};
    char buf[1024];
    *store = NULL;
    *conn = NULL;
    if (!url) url = qg_cmd_database_url(buf, sizeof buf);
    if (qg_store_open(url, 1, true, store, &err)) return qg_cmd_fail(cmd, "%s", err.msg);
    if (qg_store_acquire(*store, conn, &err)) {
        qg_store_close(*store);
        *store = NULL;
        *conn = NULL;
        return qg_cmd_fail(cmd, "%s", err.msg);
    }
    return 0;
}

void qg_cmd_store_close(qg_store *store, qg_conn *conn)
{
    qg_store_release(store, conn);
    qg_store_close(store);
}
