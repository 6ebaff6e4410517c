/*
 * cmd_vault.c - `quantgate vault`: list the stored secrets (masked) and
 * rotate the master key from the server's shell.
 *
 * No value is ever printed. Rotation prints a new key only in the one case
 * where the operator must install it: the key came from QG_MASTER_KEY and no
 * QG_NEW_MASTER_KEY was given, so nothing else holds it.
 */
#include "auth/vault.h"
#include "cmd/cmd.h"

#include <quantgate/config.h>
#include <quantgate/time.h>

#include <sodium.h>

#include <stdio.h>
#include <string.h>

#define CMD "vault"

static void usage(FILE *out)
{
    fprintf(out, "usage: quantgate vault list\n"
                 "       quantgate vault rotate\n"
                 "Options: --database URL (default: DATABASE_URL or sqlite://<QG_DATA_DIR>/"
                 "quantgate.db)\n"
                 "The master key comes from QG_MASTER_KEY, or <QG_DATA_DIR>/master.key.\n"
                 "rotate re-encrypts every secret under a new key (QG_NEW_MASTER_KEY, or a random\n"
                 "one) in one transaction. Access tokens are signed with a key derived from the\n"
                 "master key (unless QG_JWT_SECRET is set), so rotation signs everyone out.\n"
                 "Stop the server before rotating and restart it afterwards.\n");
}

static qg_status print_secret(void *ud, const qg_secret_info *s)
{
    char when[40];
    qg_time_format_iso(s->updated_at, when, sizeof when);
    printf("%-40s %-24s %s\n", s->name, s->masked, when);
    (*(int *)ud)++;
    return QG_OK;
}

static int vault_list(qg_vault *v, qg_conn *c)
{
    qg_error err = {0};
    int n = 0;
    printf("%-40s %-24s %s\n", "NAME", "MASKED", "UPDATED");
    if (qg_vault_list(v, c, print_secret, &n, &err)) return qg_cmd_fail(CMD, "%s", err.msg);
    return 0;
}

static int vault_rotate(qg_vault *v, qg_conn *c)
{
    qg_error err = {0};
    int count = 0;
    char hex[65] = "";
    const char *env_key = qg_config_str("QG_MASTER_KEY", NULL);
    if (qg_vault_rotate(v, c, &count, hex, &err)) return qg_cmd_fail(CMD, "%s", err.msg);
    printf("re-encrypted %d secret%s under the new master key\n", count, count == 1 ? "" : "s");
    if (hex[0]) {
        printf("new master key: %s\n", hex);
        printf("Set QG_MASTER_KEY to this value wherever the server gets its environment\n"
               "before restarting it: the old key no longer opens the vault. It is shown\n"
               "only now.\n");
        sodium_memzero(hex, sizeof hex);
    } else if (env_key) {
        printf("Set QG_MASTER_KEY to the value of QG_NEW_MASTER_KEY before restarting the\n"
               "server: the old key no longer opens the vault.\n");
    } else {
        printf("the new key is in %s/master.key\n", qg_cmd_data_dir());
    }
    if (!qg_config_str("QG_JWT_SECRET", NULL))
        printf("Access tokens signed with the old key are no longer valid: everyone signs in "
               "again.\n");
    return 0;
}

int qg_cmd_vault(int argc, char **argv)
{
    static const char *const actions[] = {"list", "rotate", NULL};
    int which = 0;
    int st = qg_args_action(argc, argv, CMD, actions, usage, &which);
    if (st >= 0) return st;
    bool is_list = which == 0;
    const char *url = NULL;
    qg_args a = qg_args_begin(argc - 1, argv + 1);
    a.cmd = CMD;
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (qg_args_value(&a, "--database", &url)) continue;
        return qg_args_unknown(&a);
    }

    qg_error err = {0};
    qg_store *store = NULL;
    qg_conn *conn = NULL;
    qg_vault *v = NULL;
    int rc = qg_cmd_store_open(CMD, url, &store, &conn);
    if (rc) return rc;
    if (qg_vault_open(conn, qg_cmd_data_dir(), &v, &err)) {
        rc = qg_cmd_fail(CMD, "%s", err.msg);
        goto out;
    }
    rc = is_list ? vault_list(v, conn) : vault_rotate(v, conn);
out:
    qg_vault_free(v);
    qg_cmd_store_close(store, conn);
    return rc;
}
