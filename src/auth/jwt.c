/*
 * jwt.c - HS256 access tokens.
 *
 * libjwt signs and checks signatures, but it trusts the algorithm a token
 * names in its own header (a token saying `alg: none` or HS512 would be
 * checked by that algorithm's rules). So verification parses the header
 * itself first and refuses anything but HS256 before libjwt sees the token;
 * after decoding it checks the algorithm again and then every claim: typ,
 * iss, exp, sub and role. Reasons go into err for logs; callers answer 401
 * whatever the reason.
 */
#include "auth/auth.h"

#include <cjson/cJSON.h>
#include <jwt.h>
#include <sodium.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QG_JWT_ISSUER  "quantgate"
#define QG_JWT_TYP     "access"
#define QG_JWT_MAX     4096 /* tokens longer than this are refused unread */
#define QG_JWT_SEG_MAX 2048 /* decoded header/payload cap */

qg_status qg_jwt_issue(const uint8_t key[32], const char *user_id, qg_role role, int64_t now_s,
                       int64_t ttl_s, char *out, size_t cap, qg_error *err)
{
    qg_status rc = QG_OK;
    jwt_t *jwt = NULL;
    char *enc = NULL;
    if (!user_id || !*user_id || role == QG_ROLE_NONE)
        return qg_error_set(err, QG_EINVAL, "a token needs a subject and a role");
    if (ttl_s <= 0) return qg_error_set(err, QG_EINVAL, "token lifetime must be > 0");

    uint8_t jti_raw[16];
    char jti[33];
    randombytes_buf(jti_raw, sizeof jti_raw);
    sodium_bin2hex(jti, sizeof jti, jti_raw, sizeof jti_raw);

    if (jwt_new(&jwt) != 0) {
        rc = qg_error_set(err, QG_ENOMEM, "out of memory creating a token");
        goto out;
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, key, 32) != 0 || jwt_add_grant(jwt, "sub", user_id) != 0 ||
        jwt_add_grant(jwt, "role", qg_role_name(role)) != 0 ||
        jwt_add_grant(jwt, "typ", QG_JWT_TYP) != 0 ||
        jwt_add_grant(jwt, "iss", QG_JWT_ISSUER) != 0 || jwt_add_grant(jwt, "jti", jti) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) != 0) {
        rc = qg_error_set(err, QG_EINTERNAL, "could not build the token claims");
        goto out;
    }
    enc = jwt_encode_str(jwt);
    if (!enc) {
        rc = qg_error_set(err, QG_ENOMEM, "could not encode the token");
        goto out;
    }
    if (strlen(enc) + 1 > cap) {
        rc = qg_error_set(err, QG_ERANGE, "token buffer too small (%zu bytes needed)",
                          strlen(enc) + 1);
        goto out;
    }
    memcpy(out, enc, strlen(enc) + 1);
out:
    free(enc);
    jwt_free(jwt);
    return rc;
}

/* Decodes one base64url segment [s, s+n) and parses it as a JSON object.
 * NULL when it is not one. */
static cJSON *segment_json(const char *s, size_t n)
{
    unsigned char buf[QG_JWT_SEG_MAX + 1];
    size_t len = 0;
    if (n == 0 || n > QG_JWT_SEG_MAX * 4 / 3) return NULL;
    if (sodium_base642bin(buf, QG_JWT_SEG_MAX, s, n, NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return NULL;
    buf[len] = '\0';
    cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static const char *json_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Checks the header's algorithm before anything else is read. */
static qg_status check_header(const char *token, const char **dot1, const char **dot2,
                              qg_error *err)
{
    qg_status rc = QG_OK;
    *dot1 = strchr(token, '.');
    *dot2 = *dot1 ? strchr(*dot1 + 1, '.') : NULL;
    if (!*dot1 || !*dot2 || strchr(*dot2 + 1, '.'))
        return qg_error_set(err, QG_EDENIED, "malformed token (expected three segments)");
    cJSON *h = segment_json(token, (size_t)(*dot1 - token));
    if (!h) return qg_error_set(err, QG_EDENIED, "malformed token header");
    const char *alg = json_str(h, "alg");
    if (!alg) {
        rc = qg_error_set(err, QG_EDENIED, "malformed token header (no alg)");
    } else if (strcmp(alg, "HS256") != 0) {
        /* Never echo more than a short, printable algorithm name. */
        if (strcasecmp(alg, "none") == 0)
            rc = qg_error_set(err, QG_EDENIED, "algorithm none not accepted");
        else
            rc = qg_error_set(err, QG_EDENIED, "algorithm '%.16s' not accepted (HS256 only)", alg);
    }
    cJSON_Delete(h);
    return rc;
}

qg_status qg_jwt_verify(const uint8_t key[32], const char *token, int64_t now_s, qg_jwt_claims *out,
                        qg_error *err)
{
    qg_status rc = QG_OK;
    jwt_t *jwt = NULL;
    cJSON *payload = NULL;
    const char *dot1, *dot2;
    if (!token || !*token) return qg_error_set(err, QG_EDENIED, "no token");
    if (strlen(token) > QG_JWT_MAX) return qg_error_set(err, QG_EDENIED, "token too long");
    if ((rc = check_header(token, &dot1, &dot2, err))) return rc;
    /* The payload must be JSON before a signature failure can be told apart
     * from garbage. */
    payload = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!payload) {
        rc = qg_error_set(err, QG_EDENIED, "malformed token payload");
        goto out;
    }
    if (dot2[1] == '\0') {
        rc = qg_error_set(err, QG_EDENIED, "token has no signature");
        goto out;
    }
    int jrc = jwt_decode(&jwt, token, key, 32);
    if (jrc != 0 || !jwt) {
        rc = qg_error_set(err, QG_EDENIED, jrc == ENOMEM ? "out of memory" : "bad signature");
        goto out;
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        rc = qg_error_set(err, QG_EDENIED, "algorithm not accepted (HS256 only)");
        goto out;
    }
    const char *typ = jwt_get_grant(jwt, "typ");
    const char *iss = jwt_get_grant(jwt, "iss");
    const char *sub = jwt_get_grant(jwt, "sub");
    const char *role = jwt_get_grant(jwt, "role");
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    int exp_errno = errno;
    long iat = jwt_get_grant_int(jwt, "iat");
    if (!typ || strcmp(typ, QG_JWT_TYP) != 0) {
        rc = qg_error_set(err, QG_EDENIED, "not an access token (typ)");
    } else if (!iss || strcmp(iss, QG_JWT_ISSUER) != 0) {
        rc = qg_error_set(err, QG_EDENIED, "wrong issuer");
    } else if (exp_errno || exp <= 0) {
        rc = qg_error_set(err, QG_EDENIED, "token has no expiry");
    } else if ((int64_t)exp <= now_s) {
        rc = qg_error_set(err, QG_EDENIED, "token expired");
    } else if (!sub || !*sub || strlen(sub) >= QG_ID_MAX) {
        rc = qg_error_set(err, QG_EDENIED, "token has no valid subject");
    } else if (qg_role_parse(role) == QG_ROLE_NONE) {
        rc = qg_error_set(err, QG_EDENIED, "token has no valid role");
    }
    if (rc) goto out;
    if (out) {
        memset(out, 0, sizeof *out);
        snprintf(out->sub, sizeof out->sub, "%s", sub);
        out->role = qg_role_parse(role);
        out->iat = iat > 0 ? (int64_t)iat : 0;
        out->exp = (int64_t)exp;
    }
out:
    cJSON_Delete(payload);
    jwt_free(jwt);
    return rc;
}
