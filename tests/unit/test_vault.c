/*
 * test_vault.c - the secrets vault: sealing, masking, master key sources and
 * file modes, the check value, rotation and its crash recovery, and the JWT
 * key derived from the master key.
 */
#include <criterion/criterion.h>

#include "auth/vault.h"

#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static char url[400];
static qg_store *store;
static qg_conn *conn;

#define KEY_HEX_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_HEX_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static void setup(void)
{
    qg_error err = {0};
    unsetenv("QG_MASTER_KEY");
    unsetenv("QG_NEW_MASTER_KEY");
    unsetenv("QG_JWT_SECRET");
    snprintf(dir, sizeof dir, "/tmp/qg_vault_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(url, sizeof url, "sqlite://%s/t.db", dir);
    cr_assert_eq(qg_store_open(url, 2, true, &store, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_store_acquire(store, &conn, &err), QG_OK, "%s", err.msg);
}

static void teardown(void)
{
    if (conn) qg_store_release(store, conn);
    if (store) qg_store_close(store);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void path_of(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static qg_vault *open_ok(void)
{
    qg_vault *v = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_vault_open(conn, dir, &v, &err), QG_OK, "%s", err.msg);
    cr_assert_not_null(v);
    return v;
}

typedef struct {
    int n;
    qg_secret_info s[8];
} info_list;

static qg_status collect(void *ud, const qg_secret_info *s)
{
    info_list *l = ud;
    if (l->n < 8) l->s[l->n] = *s;
    l->n++;
    return QG_OK;
}

Test(vault, put_get_list_delete, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    qg_vault *v = open_ok();
    char out[QG_SECRET_VALUE_MAX + 1];
    cr_assert_eq(qg_vault_put(v, conn, "OPENAI_API_KEY", "sk-abcdefghijklmnopa1b2", &err), QG_OK,
                 "%s", err.msg);
    cr_assert_eq(qg_vault_put(v, conn, "tg.token", "123456:telegram-bot-token", &err), QG_OK);
    cr_assert_eq(qg_vault_get(v, conn, "OPENAI_API_KEY", out, sizeof out, &err), QG_OK, "%s",
                 err.msg);
    cr_assert_str_eq(out, "sk-abcdefghijklmnopa1b2");

    /* Overwrite keeps one row. */
    cr_assert_eq(qg_vault_put(v, conn, "tg.token", "999999:another-bot-token", &err), QG_OK);
    cr_assert_eq(qg_vault_get(v, conn, "tg.token", out, sizeof out, &err), QG_OK);
    cr_assert_str_eq(out, "999999:another-bot-token");

    /* Nothing plain in the database. */
    info_list l = {0};
    cr_assert_eq(qg_vault_list(v, conn, collect, &l, &err), QG_OK);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.s[0].name, "OPENAI_API_KEY");
    cr_assert_str_eq(l.s[0].masked, "sk-...a1b2");
    cr_assert_str_eq(l.s[1].name, "tg.token");
    cr_assert_eq(strstr(l.s[1].masked, "another"), NULL);
    cr_assert_gt(l.s[0].created_at, 0);

    /* A buffer too small gets nothing. */
    char small[8] = "xxxxxxx";
    cr_assert_eq(qg_vault_get(v, conn, "tg.token", small, sizeof small, &err), QG_ERANGE);
    cr_assert_str_eq(small, "xxxxxxx");

    /* Validation. */
    cr_assert_eq(qg_vault_put(v, conn, "bad name", "x", &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "name"));
    cr_assert_eq(qg_vault_put(v, conn, "", "x", &err), QG_EINVAL);
    cr_assert_eq(qg_vault_put(v, conn, "ok", "", &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "value"));
    char *big = malloc(QG_SECRET_VALUE_MAX + 2);
    memset(big, 'v', QG_SECRET_VALUE_MAX + 1);
    big[QG_SECRET_VALUE_MAX + 1] = '\0';
    cr_assert_eq(qg_vault_put(v, conn, "big", big, &err), QG_EINVAL);
    big[QG_SECRET_VALUE_MAX] = '\0';
    cr_assert_eq(qg_vault_put(v, conn, "big", big, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_vault_get(v, conn, "big", out, sizeof out, &err), QG_OK);
    cr_assert_eq(strlen(out), QG_SECRET_VALUE_MAX);
    free(big);

    cr_assert_eq(qg_vault_delete(v, conn, "tg.token", &err), QG_OK);
    cr_assert_eq(qg_vault_get(v, conn, "tg.token", out, sizeof out, &err), QG_ENOTFOUND);
    cr_assert_eq(qg_vault_delete(v, conn, "tg.token", &err), QG_ENOTFOUND);
    qg_vault_free(v);
}

Test(vault, key_file_created_0600_and_reused, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    char kp[300], out[64];
    path_of("master.key", kp, sizeof kp);
    cr_assert_neq(access(kp, F_OK), 0);
    qg_vault *v = open_ok();
    struct stat st;
    cr_assert_eq(stat(kp, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, 65); /* 64 hex + newline */
    cr_assert_eq(qg_vault_put(v, conn, "A", "value-one", &err), QG_OK);
    qg_vault_free(v);
    v = open_ok();
    cr_assert_eq(qg_vault_get(v, conn, "A", out, sizeof out, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(out, "value-one");
    qg_vault_free(v);

    /* Group-readable: refused, naming the file and the mode. */
    cr_assert_eq(chmod(kp, 0640), 0);
    qg_vault *w = NULL;
    cr_assert_eq(qg_vault_open(conn, dir, &w, &err), QG_EDENIED);
    cr_assert_null(w);
    cr_assert(strstr(err.msg, kp), "%s", err.msg);
    cr_assert(strstr(err.msg, "0640"), "%s", err.msg);

    /* A missing key file once data is sealed is an error, not a new key. */
    cr_assert_eq(unlink(kp), 0);
    cr_assert_eq(qg_vault_open(conn, dir, &w, &err), QG_ENOTFOUND);
    cr_assert(strstr(err.msg, "master.key"), "%s", err.msg);
}

Test(vault, env_key_and_wrong_key, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    char out[64];
    setenv("QG_MASTER_KEY", KEY_HEX_A, 1);
    qg_vault *v = open_ok();
    cr_assert_eq(qg_vault_put(v, conn, "A", "value-one", &err), QG_OK);
    qg_vault_free(v);
    char kp[300];
    path_of("master.key", kp, sizeof kp);
    cr_assert_neq(access(kp, F_OK), 0, "no key file with QG_MASTER_KEY");

    /* The same key in base64 works. */
    uint8_t raw[32];
    char b64[64];
    sodium_hex2bin(raw, 32, KEY_HEX_A, 64, NULL, NULL, NULL);
    sodium_bin2base64(b64, sizeof b64, raw, 32, sodium_base64_VARIANT_ORIGINAL);
    setenv("QG_MASTER_KEY", b64, 1);
    v = open_ok();
    cr_assert_eq(qg_vault_get(v, conn, "A", out, sizeof out, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(out, "value-one");
    qg_vault_free(v);

    /* Another valid key: refused at open. */
    setenv("QG_MASTER_KEY", KEY_HEX_B, 1);
    qg_vault *w = NULL;
    cr_assert_eq(qg_vault_open(conn, dir, &w, &err), QG_EDENIED);
    cr_assert_null(w);
    cr_assert(strstr(err.msg, "QG_MASTER_KEY"), "%s", err.msg);

    /* Malformed: names the variable, never echoes the value. */
    setenv("QG_MASTER_KEY", "hunter2-not-a-key", 1);
    cr_assert_eq(qg_vault_open(conn, dir, &w, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "QG_MASTER_KEY"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "hunter2"));
    setenv("QG_MASTER_KEY", KEY_HEX_A "00", 1);
    cr_assert_eq(qg_vault_open(conn, dir, &w, &err), QG_EINVAL);
}

Test(vault, rotate_with_key_file, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    char out[64], kp[300], np[300], old_hex[128];
    path_of("master.key", kp, sizeof kp);
    path_of("master.key.new", np, sizeof np);
    qg_vault *v = open_ok();
    cr_assert_eq(qg_vault_put(v, conn, "A", "value-one", &err), QG_OK);
    cr_assert_eq(qg_vault_put(v, conn, "B", "value-two-longer", &err), QG_OK);
    uint8_t jwt1[32], jwt2[32];
    qg_vault_jwt_key(v, jwt1);
    FILE *f = fopen(kp, "r");
    cr_assert_not_null(fgets(old_hex, sizeof old_hex, f));
    fclose(f);

    int count = -1;
    char hex[65] = "junk";
    cr_assert_eq(qg_vault_rotate(v, conn, &count, hex, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(count, 2);
    cr_assert_str_eq(hex, ""); /* the key went to the file */
    cr_assert_neq(access(np, F_OK), 0);
    qg_vault_jwt_key(v, jwt2);
    cr_assert_neq(memcmp(jwt1, jwt2, 32), 0);
    cr_assert_eq(qg_vault_get(v, conn, "B", out, sizeof out, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(out, "value-two-longer");
    qg_vault_free(v);

    struct stat st;
    cr_assert_eq(stat(kp, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    v = open_ok();
    cr_assert_eq(qg_vault_get(v, conn, "A", out, sizeof out, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(out, "value-one");
    uint8_t jwt3[32];
    qg_vault_jwt_key(v, jwt3);
    cr_assert_eq(memcmp(jwt2, jwt3, 32), 0);
    qg_vault_free(v);

    /* The old key is now refused. */
    setenv("QG_MASTER_KEY", old_hex, 1);
    qg_vault *w = NULL;
    cr_assert_eq(qg_vault_open(conn, dir, &w, &err), QG_EDENIED);
}

Test(vault, rotate_with_env_key, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    char out[64], hex[65];
    int count = 0;
    setenv("QG_MASTER_KEY", KEY_HEX_A, 1);
    qg_vault *v = open_ok();
    cr_assert_eq(qg_vault_put(v, conn, "A", "value-one", &err), QG_OK);
    cr_assert_eq(qg_vault_rotate(v, conn, &count, hex, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(count, 1);
    cr_assert_eq(strlen(hex), 64);
    qg_vault_free(v);

    qg_vault *w = NULL;
    cr_assert_eq(qg_vault_open(conn, dir, &w, &err), QG_EDENIED); /* old key */
    setenv("QG_MASTER_KEY", hex, 1);
    v = open_ok();
    cr_assert_eq(qg_vault_get(v, conn, "A", out, sizeof out, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(out, "value-one");

    /* An explicit new key is used and not printed back. */
    setenv("QG_NEW_MASTER_KEY", KEY_HEX_B, 1);
    cr_assert_eq(qg_vault_rotate(v, conn, &count, hex, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(hex, "");
    qg_vault_free(v);
    unsetenv("QG_NEW_MASTER_KEY");
    setenv("QG_MASTER_KEY", KEY_HEX_B, 1);
    v = open_ok();
    cr_assert_eq(qg_vault_get(v, conn, "A", out, sizeof out, &err), QG_OK, "%s", err.msg);
    /* Rotating to the same key is refused. */
    setenv("QG_NEW_MASTER_KEY", KEY_HEX_B, 1);
    cr_assert_eq(qg_vault_rotate(v, conn, &count, hex, &err), QG_EINVAL);
    qg_vault_free(v);
}

Test(vault, jwt_secret_overrides, .init = setup, .fini = teardown)
{
    uint8_t a[32], b[32], c[32];
    setenv("QG_MASTER_KEY", KEY_HEX_A, 1);
    qg_vault *v = open_ok();
    qg_vault_jwt_key(v, a);
    qg_vault_free(v);
    setenv("QG_JWT_SECRET", "a jwt secret of any length", 1);
    v = open_ok();
    qg_vault_jwt_key(v, b);
    qg_vault_free(v);
    cr_assert_neq(memcmp(a, b, 32), 0);
    crypto_generichash(c, 32, (const uint8_t *)"a jwt secret of any length", 26, NULL, 0);
    cr_assert_eq(memcmp(b, c, 32), 0);
    /* The JWT key is not the master key itself. */
    uint8_t raw[32];
    sodium_hex2bin(raw, 32, KEY_HEX_A, 64, NULL, NULL, NULL);
    cr_assert_neq(memcmp(a, raw, 32), 0);
}

/* A crash after the commit but before the rename leaves master.key old and
 * master.key.new current: open finishes the rename. */
Test(vault, recovers_committed_rotation, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    char out[64], kp[300], np[300], old_key[128];
    path_of("master.key", kp, sizeof kp);
    path_of("master.key.new", np, sizeof np);
    qg_vault *v = open_ok();
    cr_assert_eq(qg_vault_put(v, conn, "A", "value-one", &err), QG_OK);
    FILE *f = fopen(kp, "r");
    cr_assert_not_null(fgets(old_key, sizeof old_key, f));
    fclose(f);
    int count;
    char hex[65];
    cr_assert_eq(qg_vault_rotate(v, conn, &count, hex, &err), QG_OK, "%s", err.msg);
    qg_vault_free(v);
    /* Simulate: the current key in .new, the old one back in master.key. */
    cr_assert_eq(rename(kp, np), 0);
    f = fopen(kp, "w");
    fputs(old_key, f);
    fclose(f);
    cr_assert_eq(chmod(kp, 0600), 0);

    v = open_ok();
    cr_assert_neq(access(np, F_OK), 0);
    cr_assert_eq(qg_vault_get(v, conn, "A", out, sizeof out, &err), QG_OK, "%s", err.msg);
    cr_assert_str_eq(out, "value-one");
    qg_vault_free(v);
}

/* A crash before the commit leaves a master.key.new that opens nothing: it is
 * removed and master.key stays in use. */
Test(vault, discards_uncommitted_rotation, .init = setup, .fini = teardown)
{
    qg_error err = {0};
    char out[64], np[300];
    path_of("master.key.new", np, sizeof np);
    qg_vault *v = open_ok();
    cr_assert_eq(qg_vault_put(v, conn, "A", "value-one", &err), QG_OK);
    qg_vault_free(v);
    FILE *f = fopen(np, "w");
    fputs(KEY_HEX_B "\n", f);
    fclose(f);
    cr_assert_eq(chmod(np, 0600), 0);
    v = open_ok();
    cr_assert_neq(access(np, F_OK), 0);
    cr_assert_eq(qg_vault_get(v, conn, "A", out, sizeof out, &err), QG_OK, "%s", err.msg);
    qg_vault_free(v);
}
