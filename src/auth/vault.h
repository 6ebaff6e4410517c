/*
 * vault.h - provider API keys and notification tokens, encrypted at rest.
 *
 * Each value is sealed with libsodium's crypto_secretbox_easy
 * (XSalsa20-Poly1305) under the 32-byte master key with a fresh random nonce,
 * and stored base64 in the `secrets` table. The master key comes from
 * QG_MASTER_KEY (64 hex characters or 44 base64 characters) or, when that is
 * unset, from `<data dir>/master.key` (created with mode 0600 on first use;
 * a key file readable by group or others is refused). A check value sealed
 * under the key (table `vault_meta`) tells at open time that the key is the
 * one the vault was written with, instead of failing on the first read.
 *
 * Plain values never leave this module except through qg_vault_get, and are
 * wiped (sodium_memzero) from its own buffers after use.
 */
#ifndef QG_VAULT_H
#define QG_VAULT_H

#include "store/store.h"

#include <quantgate/status.h>

#include <stdint.h>

typedef struct qg_vault qg_vault;

#define QG_SECRET_NAME_MAX  64
#define QG_SECRET_VALUE_MAX 8192

/* Loads the master key (see above) and checks it against the database.
 * data_dir is where master.key lives. The caller owns the vault. */
qg_status qg_vault_open(qg_conn *c, const char *data_dir, qg_vault **out, qg_error *err);
void qg_vault_free(qg_vault *v);

/* The 32-byte key that signs access tokens: QG_JWT_SECRET when set (any
 * length, hashed to 32 bytes), otherwise derived from the master key with
 * crypto_kdf (so rotating the master key signs everyone out). */
void qg_vault_jwt_key(const qg_vault *v, uint8_t out[32]);

/* Name: 1-64 of [A-Za-z0-9_.-]; value: 1-8192 bytes. err names the field. */
qg_status qg_vault_put(qg_vault *v, qg_conn *c, const char *name, const char *value, qg_error *err);
/* Decrypts into out (cap bytes, NUL-terminated). QG_ENOTFOUND when absent. */
qg_status qg_vault_get(qg_vault *v, qg_conn *c, const char *name, char *out, size_t cap,
                       qg_error *err);
qg_status qg_vault_delete(qg_vault *v, qg_conn *c, const char *name, qg_error *err);

typedef struct qg_secret_info {
    char name[QG_SECRET_NAME_MAX + 1];
    char masked[32]; /* qg_config_mask of the value */
    int64_t created_at, updated_at;
} qg_secret_info;
qg_status qg_vault_list(qg_vault *v, qg_conn *c, qg_status (*fn)(void *ud, const qg_secret_info *s),
                        void *ud, qg_error *err);

/* Re-encrypts every secret under a new master key in one transaction. The
 * new key is QG_NEW_MASTER_KEY when set, otherwise random. With a key file,
 * the new key is written to master.key.new, the transaction commits, then the
 * file is renamed over master.key (qg_vault_open finishes a rename that a
 * crash interrupted). With QG_MASTER_KEY and no QG_NEW_MASTER_KEY, the new
 * key is written, hex, to new_key_hex (65 bytes) for the operator to install;
 * otherwise new_key_hex is set to "". *count gets the number re-encrypted. */
qg_status qg_vault_rotate(qg_vault *v, qg_conn *c, int *count, char new_key_hex[65], qg_error *err);

#endif
