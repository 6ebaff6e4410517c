/*
 * vault.c - secrets sealed under the master key.
 *
 * Invariants:
 * - vault_meta holds one check value sealed under the current master key;
 *   qg_vault_open refuses a key that cannot open it, so a wrong key fails at
 *   start, not at the first secret read.
 * - Rotation re-seals every secret and the check value in one transaction.
 *   With a key file, the new key is written to master.key.new before the
 *   commit and renamed over master.key after it. On open, a leftover
 *   master.key.new that opens the check value means the commit happened and
 *   the rename did not: the rename is finished. One that does not is a
 *   rotation that never committed: it is removed.
 * - Plain values and keys are wiped from this module's buffers after use;
 *   key material never reaches a log line or an error message.
 */
#include "auth/vault.h"

#include <quantgate/config.h>
#include <quantgate/log.h>
#include <quantgate/time.h>

#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QG_KEY_FILE     "master.key"
#define QG_KEY_FILE_NEW "master.key.new"
#define QG_VAULT_CHECK  "quantgate-vault-check-v1"
#define QG_PATH_MAX     4096

struct qg_vault {
    uint8_t key[crypto_secretbox_KEYBYTES];
    uint8_t jwt_key[32];
    bool from_env; /* QG_MASTER_KEY, not the key file */
    char key_path[QG_PATH_MAX];
    char new_path[QG_PATH_MAX];
};

/* ---- key parsing and files ---- */

/* 64 hex characters or the base64 (standard or URL-safe, padded or not) of
 * exactly 32 bytes. Trailing whitespace (a key file's newline) is ignored. */
static bool parse_key(const char *s, uint8_t key[32])
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    size_t len = 0;
    const char *end = NULL;
    if (n == 64 && sodium_hex2bin(key, 32, s, n, NULL, &len, &end) == 0 && len == 32 &&
        end == s + n)
        return true;
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        uint8_t tmp[48];
        if (n >= 43 && n <= 44 &&
            sodium_base642bin(tmp, sizeof tmp, s, n, NULL, &len, &end, variants[i]) == 0 &&
            len == 32 && end == s + n) {
            memcpy(key, tmp, 32);
            sodium_memzero(tmp, sizeof tmp);
            return true;
        }
        sodium_memzero(tmp, sizeof tmp);
    }
    sodium_memzero(key, 32);
    return false;
}

/* Reads a key file, refusing one that group or others may access. */
static qg_status read_key_file(const char *path, uint8_t key[32], qg_error *err)
{
    qg_status rc = QG_OK;
    char buf[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return QG_ENOTFOUND;
        return qg_error_set(err, QG_EIO, "master key file %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = qg_error_set(err, QG_EIO, "master key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = qg_error_set(err, QG_EINVAL, "master key file %s: not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077) {
        rc = qg_error_set(err, QG_EDENIED,
                          "master key file %s has mode %04o: it must not be accessible by group "
                          "or others (chmod 600 %s)",
                          path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) {
        rc = qg_error_set(err, QG_EIO, "master key file %s: %s", path, strerror(errno));
        goto out;
    }
    buf[n] = '\0';
    if (!parse_key(buf, key))
        rc = qg_error_set(err, QG_EINVAL,
                          "master key file %s: must hold 64 hex characters or the base64 of 32 "
                          "bytes",
                          path);
out:
    sodium_memzero(buf, sizeof buf);
    close(fd);
    return rc;
}

/* Writes key as hex to path with mode 0600, durably. excl: fail if it
 * exists (first creation must not overwrite a key someone else just made). */
static qg_status write_key_file(const char *path, const uint8_t key[32], bool excl, qg_error *err)
{
    char hex[66];
    sodium_bin2hex(hex, 65, key, 32);
    hex[64] = '\n';
    hex[65] = '\0';
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (excl ? O_EXCL : O_TRUNC);
    int fd = open(path, flags, 0600);
    qg_status rc = QG_OK;
    if (fd < 0) {
        rc = qg_error_set(err, errno == EEXIST ? QG_EEXIST : QG_EIO, "master key file %s: %s", path,
                          strerror(errno));
        goto out;
    }
    /* O_TRUNC keeps an existing file's mode: force 0600. */
    if (fchmod(fd, 0600) != 0 || write(fd, hex, 65) != 65 || fsync(fd) != 0) {
        rc = qg_error_set(err, QG_EIO, "master key file %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        goto out;
    }
    close(fd);
out:
    sodium_memzero(hex, sizeof hex);
    return rc;
}

/* ---- sealing ---- */

/* Seals msg under key: nonce and ciphertext come back base64 in malloc'd
 * strings owned by the caller. */
static qg_status seal(const uint8_t key[32], const char *msg, size_t n, char **nonce_b64,
                      char **ct_b64, qg_error *err)
{
    uint8_t nonce[crypto_secretbox_NONCEBYTES];
    size_t ct_n = n + crypto_secretbox_MACBYTES;
    uint8_t *ct = malloc(ct_n);
    size_t nb = sodium_base64_ENCODED_LEN(sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
    size_t cb = sodium_base64_ENCODED_LEN(ct_n, sodium_base64_VARIANT_ORIGINAL);
    *nonce_b64 = malloc(nb);
    *ct_b64 = malloc(cb);
    if (!ct || !*nonce_b64 || !*ct_b64) {
        free(ct);
        free(*nonce_b64);
        free(*ct_b64);
        *nonce_b64 = *ct_b64 = NULL;
        return qg_error_set(err, QG_ENOMEM, "out of memory sealing a secret");
    }
    randombytes_buf(nonce, sizeof nonce);
    crypto_secretbox_easy(ct, (const uint8_t *)msg, n, nonce, key);
    sodium_bin2base64(*nonce_b64, nb, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(*ct_b64, cb, ct, ct_n, sodium_base64_VARIANT_ORIGINAL);
    free(ct);
    return QG_OK;
}

/* Opens a sealed value into out (cap bytes, NUL-terminated); *out_n gets the
 * length. QG_EDENIED when the key does not open it. */
static qg_status unseal(const uint8_t key[32], const char *nonce_b64, const char *ct_b64, char *out,
                        size_t cap, size_t *out_n, qg_error *err)
{
    uint8_t nonce[crypto_secretbox_NONCEBYTES];
    size_t len = 0;
    if (!nonce_b64 || !ct_b64 ||
        sodium_base642bin(nonce, sizeof nonce, nonce_b64, strlen(nonce_b64), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        len != sizeof nonce)
        return qg_error_set(err, QG_EINTERNAL, "a stored secret is corrupt (nonce)");
    size_t ct_cap = strlen(ct_b64) / 4 * 3 + 3;
    uint8_t *ct = malloc(ct_cap);
    if (!ct) return qg_error_set(err, QG_ENOMEM, "out of memory opening a secret");
    qg_status rc = QG_OK;
    size_t ct_n = 0;
    if (sodium_base642bin(ct, ct_cap, ct_b64, strlen(ct_b64), NULL, &ct_n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        ct_n < crypto_secretbox_MACBYTES) {
        rc = qg_error_set(err, QG_EINTERNAL, "a stored secret is corrupt (ciphertext)");
        goto out;
    }
    size_t n = ct_n - crypto_secretbox_MACBYTES;
    if (n + 1 > cap) {
        rc = qg_error_set(err, QG_ERANGE, "secret longer than the buffer (%zu bytes)", n);
        goto out;
    }
    if (crypto_secretbox_open_easy((uint8_t *)out, ct, ct_n, nonce, key) != 0) {
        rc = qg_error_set(err, QG_EDENIED, "the master key does not open this secret");
        goto out;
    }
    out[n] = '\0';
    if (out_n) *out_n = n;
out:
    free(ct);
    return rc;
}

/* ---- check value ---- */

typedef struct {
    bool found;
    char nonce[64];
    char value[128];
} meta_row;

static qg_status meta_from_row(void *ud, const qg_row *r)
{
    meta_row *m = ud;
    m->found = true;
    snprintf(m->nonce, sizeof m->nonce, "%s", qg_row_text(r, 0) ? qg_row_text(r, 0) : "");
    snprintf(m->value, sizeof m->value, "%s", qg_row_text(r, 1) ? qg_row_text(r, 1) : "");
    return QG_OK;
}

static qg_status meta_read(qg_conn *c, meta_row *m, qg_error *err)
{
    memset(m, 0, sizeof *m);
    return qg_conn_query(c, "SELECT check_nonce, check_value FROM vault_meta WHERE id = 1", NULL, 0,
                         meta_from_row, m, err);
}

static bool meta_opens(const meta_row *m, const uint8_t key[32])
{
    char buf[64];
    size_t n = 0;
    bool ok = unseal(key, m->nonce, m->value, buf, sizeof buf, &n, NULL) == QG_OK &&
              n == strlen(QG_VAULT_CHECK) && memcmp(buf, QG_VAULT_CHECK, n) == 0;
    return ok;
}

/* Seals the check value under key: an insert when first == true. */
static qg_status meta_write(qg_conn *c, const uint8_t key[32], bool first, qg_error *err)
{
    char *nonce = NULL, *ct = NULL;
    qg_status rc = seal(key, QG_VAULT_CHECK, strlen(QG_VAULT_CHECK), &nonce, &ct, err);
    if (rc) return rc;
    if (first) {
        qg_val p[] = {QG_VTEXT(nonce), QG_VTEXT(ct)};
        rc = qg_conn_exec(c,
                          "INSERT INTO vault_meta (id, check_nonce, check_value) VALUES (1, ?, ?)",
                          p, 2, NULL, err);
    } else {
        qg_val p[] = {QG_VTEXT(nonce), QG_VTEXT(ct), QG_VINT(qg_time_now_ms())};
        rc = qg_conn_exec(
            c,
            "UPDATE vault_meta SET check_nonce = ?, check_value = ?, rotated_at = ? WHERE id = 1",
            p, 3, NULL, err);
    }
    free(nonce);
    free(ct);
    return rc;
}

/* ---- open ---- */

static void derive_jwt_key(qg_vault *v)
{
    const char *secret = getenv("QG_JWT_SECRET");
    if (secret && *secret)
        crypto_generichash(v->jwt_key, 32, (const uint8_t *)secret, strlen(secret), NULL, 0);
    else
        crypto_kdf_derive_from_key(v->jwt_key, 32, 1, "qgjwtkey", v->key);
}

/* Loads the key from the key file, creating it on first use and finishing
 * or discarding an interrupted rotation (see the invariants above). */
static qg_status load_key_file(qg_vault *v, const char *data_dir, const meta_row *m, qg_error *err)
{
    uint8_t pending[32];
    qg_status rc = read_key_file(v->new_path, pending, err);
    if (rc == QG_OK) {
        if (m->found && meta_opens(m, pending)) {
            if (rename(v->new_path, v->key_path) != 0) {
                rc = qg_error_set(err, QG_EIO, "finishing the key rotation (%s -> %s): %s",
                                  v->new_path, v->key_path, strerror(errno));
                goto out;
            }
            qg_warn("vault: finished an interrupted master key rotation (%s)", v->key_path);
        } else {
            unlink(v->new_path);
            qg_warn("vault: removed %s left by a master key rotation that did not commit",
                    v->new_path);
        }
    } else if (rc != QG_ENOTFOUND) {
        goto out;
    }
    rc = read_key_file(v->key_path, v->key, err);
    if (rc != QG_ENOTFOUND) goto out;
    if (m->found) {
        rc = qg_error_set(err, QG_ENOTFOUND,
                          "master key file %s is missing but the vault holds sealed data: "
                          "restore the file or set QG_MASTER_KEY",
                          v->key_path);
        goto out;
    }
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        rc = qg_error_set(err, QG_EIO, "data directory %s: %s", data_dir, strerror(errno));
        goto out;
    }
    randombytes_buf(v->key, sizeof v->key);
    rc = write_key_file(v->key_path, v->key, true, err);
    if (rc == QG_EEXIST) rc = read_key_file(v->key_path, v->key, err); /* a racing start made it */
    if (rc == QG_OK) qg_info("vault: created master key file %s (mode 0600)", v->key_path);
out:
    sodium_memzero(pending, sizeof pending);
    return rc;
}

qg_status qg_vault_open(qg_conn *c, const char *data_dir, qg_vault **out, qg_error *err)
{
    qg_status rc = QG_OK;
    meta_row m;
    *out = NULL;
    if (sodium_init() < 0) return qg_error_set(err, QG_EINTERNAL, "libsodium init failed");
    qg_vault *v = sodium_malloc(sizeof *v);
    if (!v) return qg_error_set(err, QG_ENOMEM, "out of memory opening the vault");
    memset(v, 0, sizeof *v);
    if (!data_dir || !*data_dir) data_dir = ".";
    snprintf(v->key_path, sizeof v->key_path, "%s/%s", data_dir, QG_KEY_FILE);
    snprintf(v->new_path, sizeof v->new_path, "%s/%s", data_dir, QG_KEY_FILE_NEW);

    if ((rc = meta_read(c, &m, err))) goto out;
    const char *env = getenv("QG_MASTER_KEY");
    if (env && *env) {
        v->from_env = true;
        if (!parse_key(env, v->key)) {
            rc = qg_error_set(err, QG_EINVAL,
                              "QG_MASTER_KEY must be 64 hex characters or the base64 of 32 "
                              "bytes (it has %zu characters)",
                              strlen(env));
            goto out;
        }
    } else if ((rc = load_key_file(v, data_dir, &m, err))) {
        goto out;
    }

    if (!m.found) {
        rc = meta_write(c, v->key, true, err);
        if (rc == QG_EEXIST) { /* another process initialised it first */
            if ((rc = meta_read(c, &m, err))) goto out;
        } else if (rc) {
            goto out;
        }
    }
    if (m.found && !meta_opens(&m, v->key)) {
        rc = qg_error_set(err, QG_EDENIED,
                          "the master key (%s) is not the one this vault was sealed with",
                          v->from_env ? "QG_MASTER_KEY" : v->key_path);
        goto out;
    }
    derive_jwt_key(v);
    *out = v;
out:
    if (rc) qg_vault_free(v);
    return rc;
}

void qg_vault_free(qg_vault *v)
{
    if (v) sodium_free(v); /* sodium_free wipes the memory */
}

void qg_vault_jwt_key(const qg_vault *v, uint8_t out[32])
{
    memcpy(out, v->jwt_key, 32);
}

/* ---- secrets ---- */

static qg_status check_name(const char *name, qg_error *err)
{
    if (!name || !*name) return qg_error_set(err, QG_EINVAL, "field 'name': must not be empty");
    size_t n = strnlen(name, QG_SECRET_NAME_MAX + 1);
    if (n > QG_SECRET_NAME_MAX)
        return qg_error_set(err, QG_EINVAL, "field 'name': longer than %d characters",
                            QG_SECRET_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return qg_error_set(err, QG_EINVAL, "field 'name': only A-Z a-z 0-9 _ . - are allowed");
    }
    return QG_OK;
}

qg_status qg_vault_put(qg_vault *v, qg_conn *c, const char *name, const char *value, qg_error *err)
{
    qg_status rc = check_name(name, err);
    if (rc) return rc;
    if (!value || !*value) return qg_error_set(err, QG_EINVAL, "field 'value': must not be empty");
    size_t n = strnlen(value, QG_SECRET_VALUE_MAX + 1);
    if (n > QG_SECRET_VALUE_MAX)
        return qg_error_set(err, QG_EINVAL, "field 'value': longer than %d bytes",
                            QG_SECRET_VALUE_MAX);
    char masked[32];
    char *nonce = NULL, *ct = NULL;
    qg_config_mask(value, masked, sizeof masked);
    if ((rc = seal(v->key, value, n, &nonce, &ct, err))) return rc;
    int64_t now = qg_time_now_ms();
    qg_val p[] = {QG_VTEXT(name),   QG_VTEXT(nonce), QG_VTEXT(ct),
                  QG_VTEXT(masked), QG_VINT(now),    QG_VINT(now)};
    rc = qg_conn_exec(c,
                      "INSERT INTO secrets (name, nonce, ciphertext, masked, created_at, "
                      "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                      "nonce = excluded.nonce, ciphertext = excluded.ciphertext, masked = "
                      "excluded.masked, updated_at = excluded.updated_at",
                      p, 6, NULL, err);
    free(nonce);
    free(ct);
    return rc;
}

typedef struct {
    bool found;
    char *nonce;
    char *ct;
} secret_row;

static qg_status secret_from_row(void *ud, const qg_row *r)
{
    secret_row *s = ud;
    const char *n = qg_row_text(r, 0), *ct = qg_row_text(r, 1);
    s->nonce = strdup(n ? n : "");
    s->ct = strdup(ct ? ct : "");
    if (!s->nonce || !s->ct) return QG_ENOMEM;
    s->found = true;
    return QG_OK;
}

qg_status qg_vault_get(qg_vault *v, qg_conn *c, const char *name, char *out, size_t cap,
                       qg_error *err)
{
    secret_row s = {0};
    char *plain = NULL;
    qg_val p[] = {QG_VTEXT(name)};
    qg_status rc = qg_conn_query(c, "SELECT nonce, ciphertext FROM secrets WHERE name = ?", p, 1,
                                 secret_from_row, &s, err);
    if (rc == QG_ENOMEM) rc = qg_error_set(err, QG_ENOMEM, "out of memory reading a secret");
    if (rc) goto out;
    if (!s.found) {
        rc = qg_error_set(err, QG_ENOTFOUND, "secret '%s' not found", name);
        goto out;
    }
    /* Open into our own buffer first so a short caller buffer never sees a
     * partial plain text. */
    plain = malloc(QG_SECRET_VALUE_MAX + 1);
    if (!plain) {
        rc = qg_error_set(err, QG_ENOMEM, "out of memory reading a secret");
        goto out;
    }
    size_t n = 0;
    if ((rc = unseal(v->key, s.nonce, s.ct, plain, QG_SECRET_VALUE_MAX + 1, &n, err))) goto out;
    if (n + 1 > cap) {
        rc = qg_error_set(err, QG_ERANGE, "secret '%s' is longer than the buffer", name);
        goto out;
    }
    memcpy(out, plain, n + 1);
out:
    if (plain) {
        sodium_memzero(plain, QG_SECRET_VALUE_MAX + 1);
        free(plain);
    }
    free(s.nonce);
    free(s.ct);
    return rc;
}

qg_status qg_vault_delete(qg_vault *v, qg_conn *c, const char *name, qg_error *err)
{
    (void)v;
    qg_val p[] = {QG_VTEXT(name)};
    int64_t changes = 0;
    qg_status rc = qg_conn_exec(c, "DELETE FROM secrets WHERE name = ?", p, 1, &changes, err);
    if (rc) return rc;
    if (changes == 0) return qg_error_set(err, QG_ENOTFOUND, "secret '%s' not found", name);
    return QG_OK;
}

typedef struct {
    qg_status (*fn)(void *ud, const qg_secret_info *s);
    void *ud;
} list_walk;

static qg_status list_row(void *ud, const qg_row *r)
{
    list_walk *w = ud;
    qg_secret_info s;
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "%s", qg_row_text(r, 0) ? qg_row_text(r, 0) : "");
    snprintf(s.masked, sizeof s.masked, "%s", qg_row_text(r, 1) ? qg_row_text(r, 1) : "");
    s.created_at = qg_row_int(r, 2);
    s.updated_at = qg_row_int(r, 3);
    return w->fn(w->ud, &s);
}

qg_status qg_vault_list(qg_vault *v, qg_conn *c, qg_status (*fn)(void *ud, const qg_secret_info *s),
                        void *ud, qg_error *err)
{
    (void)v;
    list_walk w = {fn, ud};
    return qg_conn_query(c,
                         "SELECT name, masked, created_at, updated_at FROM secrets ORDER BY name",
                         NULL, 0, list_row, &w, err);
}

/* ---- rotation ---- */

typedef struct rot_item {
    char name[QG_SECRET_NAME_MAX + 1];
    char *nonce, *ct;
} rot_item;

typedef struct {
    rot_item *items;
    size_t n, cap;
} rot_list;

static qg_status rot_row(void *ud, const qg_row *r)
{
    rot_list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        rot_item *p = realloc(l->items, cap * sizeof *p);
        if (!p) return QG_ENOMEM;
        l->items = p;
        l->cap = cap;
    }
    rot_item *it = &l->items[l->n];
    snprintf(it->name, sizeof it->name, "%s", qg_row_text(r, 0) ? qg_row_text(r, 0) : "");
    it->nonce = strdup(qg_row_text(r, 1) ? qg_row_text(r, 1) : "");
    it->ct = strdup(qg_row_text(r, 2) ? qg_row_text(r, 2) : "");
    l->n++;
    if (!it->nonce || !it->ct) return QG_ENOMEM;
    return QG_OK;
}

static void rot_free(rot_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].nonce);
        free(l->items[i].ct);
    }
    free(l->items);
}

/* Re-seals every secret from old to new_key on c (inside the caller's
 * transaction). */
static qg_status reseal_all(qg_conn *c, const uint8_t old[32], const uint8_t new_key[32],
                            int *count, qg_error *err)
{
    rot_list l = {0};
    char *plain = malloc(QG_SECRET_VALUE_MAX + 1);
    qg_status rc = QG_OK;
    if (!plain) return qg_error_set(err, QG_ENOMEM, "out of memory rotating the vault");
    rc = qg_conn_query(c, "SELECT name, nonce, ciphertext FROM secrets ORDER BY name", NULL, 0,
                       rot_row, &l, err);
    if (rc == QG_ENOMEM) rc = qg_error_set(err, QG_ENOMEM, "out of memory rotating the vault");
    if (rc) goto out;
    for (size_t i = 0; i < l.n; i++) {
        size_t n = 0;
        char *nonce = NULL, *ct = NULL;
        rc = unseal(old, l.items[i].nonce, l.items[i].ct, plain, QG_SECRET_VALUE_MAX + 1, &n, err);
        if (rc) {
            qg_error_prefix(err, "secret '%s'", l.items[i].name);
            goto out;
        }
        rc = seal(new_key, plain, n, &nonce, &ct, err);
        sodium_memzero(plain, n);
        if (rc) goto out;
        /* updated_at is left alone: the value did not change. */
        qg_val p[] = {QG_VTEXT(nonce), QG_VTEXT(ct), QG_VTEXT(l.items[i].name)};
        rc = qg_conn_exec(c, "UPDATE secrets SET nonce = ?, ciphertext = ? WHERE name = ?", p, 3,
                          NULL, err);
        free(nonce);
        free(ct);
        if (rc) goto out;
    }
    *count = (int)l.n;
out:
    sodium_memzero(plain, QG_SECRET_VALUE_MAX + 1);
    free(plain);
    rot_free(&l);
    return rc;
}

qg_status qg_vault_rotate(qg_vault *v, qg_conn *c, int *count, char new_key_hex[65], qg_error *err)
{
    qg_status rc = QG_OK;
    uint8_t new_key[32];
    bool wrote_new = false, in_tx = false;
    const char *env_new = getenv("QG_NEW_MASTER_KEY");
    bool given = env_new && *env_new;
    *count = 0;
    new_key_hex[0] = '\0';
    if (given) {
        if (!parse_key(env_new, new_key)) {
            rc = qg_error_set(err, QG_EINVAL,
                              "QG_NEW_MASTER_KEY must be 64 hex characters or the base64 of 32 "
                              "bytes (it has %zu characters)",
                              strlen(env_new));
            goto out;
        }
        if (sodium_memcmp(new_key, v->key, 32) == 0) {
            rc = qg_error_set(err, QG_EINVAL, "QG_NEW_MASTER_KEY is the current master key");
            goto out;
        }
    } else {
        randombytes_buf(new_key, sizeof new_key);
    }

    if ((rc = qg_conn_begin(c, err))) goto out;
    in_tx = true;
    if ((rc = reseal_all(c, v->key, new_key, count, err))) goto out;
    if ((rc = meta_write(c, new_key, false, err))) goto out;
    if (!v->from_env) {
        if ((rc = write_key_file(v->new_path, new_key, false, err))) goto out;
        wrote_new = true;
    }
    if ((rc = qg_conn_commit(c, err))) goto out;
    in_tx = false;
    if (wrote_new && rename(v->new_path, v->key_path) != 0) {
        /* Committed: the next open finishes the rename from master.key.new. */
        qg_warn("vault: renaming %s to %s failed (%s); it will be finished at next start",
                v->new_path, v->key_path, strerror(errno));
    }
    wrote_new = false;
    memcpy(v->key, new_key, 32);
    derive_jwt_key(v);
    if (v->from_env && !given) sodium_bin2hex(new_key_hex, 65, new_key, 32);
out:
    if (in_tx) qg_conn_rollback(c);
    if (wrote_new) unlink(v->new_path);
    if (rc) *count = 0;
    sodium_memzero(new_key, sizeof new_key);
    return rc;
}
