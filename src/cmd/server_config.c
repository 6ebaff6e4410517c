/*
 * server_config.c - where the server keeps its data, shared by the commands
 * that open the database (serve, migrate, user, vault), so they always agree.
 */
#include "cmd/cmd.h"

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
