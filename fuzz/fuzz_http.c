/*
 * fuzz_http.c - libFuzzer target for the parsers the HTTP server runs on
 * untrusted input: the router (method and path), query strings, JSON bodies
 * and the field readers, QG_RATE_LIMITS, access tokens (as sent, and as
 * correctly signed tokens with fuzzed header and claims), emails, the
 * password policy, and the database URL masking that keeps passwords out of
 * logs. The first byte picks the parser; the rest is the input. Beyond not
 * crashing, each must keep its promise: a route index that fits the path, a
 * 400 whose body is the documented error JSON, rates that are finite and
 * positive, a verified token whose claims are sane (and that no other key
 * accepts), and a masked URL that does not contain the password.
 */
#include "auth/auth.h"
#include "http/handlers_int.h"
#include "http/http.h"
#include "http/ratelimit.h"
#include "http/router.h"
#include "http/server.h"
#include "store/store.h"

#include <quantgate/mem.h>
#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_INPUT 8192
#define NOW_S          1700000000LL /* fixed, so a run replays exactly */

static const uint8_t jwt_key[32] = "fuzz-key-0123456789abcdef-fuzz!";
static const uint8_t other_key[32] = "another-key-0123456789abcdef-xx";

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void require_message(qg_status rc, const qg_error *err)
{
    CHECK(!rc || err->msg[0]);
}

/* A reply a parser left must be the documented error object:
 * {"error":{"code":"...","message":"..."}} with the given HTTP status. */
static void require_error_reply(const qg_req *r, int status)
{
    CHECK(r->status == status);
    CHECK(r->out.len > 0 && r->out.data);
    CHECK(r->error_code && r->error_code[0]);
    cJSON *doc = cJSON_ParseWithLength(r->out.data, r->out.len);
    CHECK(doc != NULL);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    CHECK(cJSON_IsObject(e));
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    CHECK(cJSON_IsString(code) && code->valuestring[0]);
    CHECK(strcmp(code->valuestring, r->error_code) == 0);
    CHECK(cJSON_IsString(msg) && msg->valuestring[0]);
    cJSON_Delete(doc);
}

/* ---- router ---- */

/* Rebuilds the path from the route's pattern and the captured parameters;
 * a match must reproduce the path exactly. */
static void require_pattern_fits(const char *pattern, const char *const *params, int n,
                                 const char *path)
{
    char rebuilt[FUZZ_MAX_INPUT + 64];
    size_t len = 0;
    int k = 0;
    for (const char *p = pattern; *p;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            CHECK(close && k < n);
            size_t pl = strlen(params[k]);
            CHECK(len + pl < sizeof rebuilt);
            memcpy(rebuilt + len, params[k++], pl);
            len += pl;
            p = close + 1;
        } else {
            CHECK(len + 1 < sizeof rebuilt);
            rebuilt[len++] = *p++;
        }
    }
    rebuilt[len] = '\0';
    CHECK(k == n);
    CHECK(strcmp(rebuilt, path) == 0);
}

static void fuzz_router(uint8_t sel, const char *text, size_t n)
{
    static const int methods[] = {QG_GET,  QG_POST,    QG_PUT, QG_PATCH,        QG_DELETE,
                                  QG_HEAD, QG_OPTIONS, 0,      QG_GET | QG_POST};
    int method = methods[sel % (sizeof methods / sizeof methods[0])];
    char *path = malloc(n + 1);
    memcpy(path, text, n + 1);
    const char *params[QG_MAX_PARAMS] = {0};
    int nparams = -1, allow = -1;
    int idx = qg_router_match(path, method, params, &nparams, &allow);
    int want = method == QG_HEAD ? QG_GET : method;
    if (idx >= 0) {
        CHECK(idx < qg_router_count());
        CHECK(qg_routes[idx].method == want);
        CHECK(nparams >= 0 && nparams <= QG_MAX_PARAMS);
        for (int k = 0; k < nparams; k++) {
            CHECK(params[k] >= path && params[k] < path + n);
            CHECK(params[k][0] != '\0');
            CHECK(strchr(params[k], '/') == NULL);
        }
        require_pattern_fits(qg_routes[idx].pattern, params, nparams, text);
    } else if (idx == QG_ROUTE_BAD_METHOD) {
        /* want may be 0 or two bits here (never from the server): a route
         * of one of them then only fails on the other. */
        CHECK(allow != 0);
        if (want && (want & (want - 1)) == 0) CHECK((allow & want) == 0);
        CHECK(nparams == 0);
    } else {
        CHECK(idx == QG_ROUTE_NOT_FOUND);
        CHECK(allow == 0 && nparams == 0);
    }
    /* The Allow header for any mask, into any buffer size. */
    size_t cap = 1 + sel % 48;
    char *hdr = malloc(cap);
    qg_router_allow_header(allow > 0 ? allow : sel, hdr, cap);
    CHECK(memchr(hdr, '\0', cap) != NULL);
    free(hdr);
    /* The method name parser on the same text. */
    int m = qg_method_parse(text, n);
    CHECK(m == 0 || (m & (m - 1)) == 0);
    if (m) CHECK(strlen(qg_method_name(m)) == n && memcmp(qg_method_name(m), text, n) == 0);
    free(path);
}

/* ---- requests: query, JSON body, fields ---- */

static void fuzz_query(uint8_t sel, const char *text, size_t n)
{
    /* name, a NUL, then the query (its own NUL ends it) */
    const char *name = text;
    size_t name_len = strlen(name);
    const char *query = name_len < n ? text + name_len + 1 : "";
    qg_req r;
    qg_req_init(&r, NULL);
    r.query = query;
    const char *v = qg_req_query(&r, name);
    if (v) CHECK(strlen(v) <= strlen(query));
    /* Asking twice gives the same answer (decoding has no state). */
    const char *v2 = qg_req_query(&r, name);
    CHECK((v == NULL) == (v2 == NULL));
    if (v) CHECK(strcmp(v, v2) == 0);
    /* ?limit= as the list handlers read it. */
    int max = 1 + sel % 500, limit = -1;
    if (qg_req_limit(&r, 1, max, &limit)) {
        CHECK(r.status == 0);
        CHECK(limit >= 1 && limit <= max);
    } else {
        require_error_reply(&r, 400);
    }
    qg_req_release(&r);
}

/* A field reader either succeeds without replying or leaves a 400. */
static void check_field(qg_req *r, bool ok)
{
    if (ok) {
        CHECK(r->status == 0);
    } else {
        require_error_reply(r, 400);
        r->status = 0;
        r->error_code = NULL;
    }
}

static void fuzz_json(uint8_t sel, const uint8_t *data, size_t n)
{
    char *body = malloc(n + 1);
    memcpy(body, data, n);
    body[n] = '\0';
    qg_req r;
    qg_req_init(&r, NULL);
    r.body = body;
    r.body_len = n;
    cJSON *doc = qg_req_json(&r);
    if (!doc) {
        require_error_reply(&r, 400);
        CHECK(r.body_json == NULL);
        goto out;
    }
    CHECK(cJSON_IsObject(doc));
    CHECK(r.status == 0);
    CHECK(qg_req_json(&r) == doc); /* cached */
    bool required = sel & 1;
    const char *s = NULL;
    double num = 0;
    bool flag = false;
    check_field(&r, qg_field_str(&r, doc, "name", required, sel % 64, &s));
    if (s) CHECK(sel % 64 == 0 || strlen(s) <= sel % 64);
    check_field(&r, qg_field_num(&r, doc, "n", required, -1e6, 1e6, &num));
    CHECK(isfinite(num) && num >= -1e6 && num <= 1e6);
    check_field(&r, qg_field_bool(&r, doc, "flag", required, &flag));
    const char *email = NULL, *password = NULL;
    check_field(&r, qg_field_credentials(&r, doc, &email, &password));
out:
    qg_req_release(&r);
    free(body);
}

/* ---- QG_RATE_LIMITS ---- */

static void fuzz_ratelimit(const char *text)
{
    qg_rl_config c, before;
    qg_rl_config_default(&c);
    before = c;
    qg_error err = {0};
    qg_status rc = qg_rl_config_parse(&c, text, &err);
    require_message(rc, &err);
    if (rc) {
        CHECK(memcmp(&c, &before, sizeof c) == 0); /* a bad spec changes nothing */
        return;
    }
    for (int i = QG_RL_AUTH; i < QG_RL__COUNT; i++) {
        CHECK(isfinite(c.rule[i].rate) && c.rule[i].rate > 0 && c.rule[i].rate <= 1e6);
        CHECK(isfinite(c.rule[i].burst) && c.rule[i].burst >= 1 && c.rule[i].burst <= 1e6);
    }
    CHECK(c.login_max_fails == before.login_max_fails);
    CHECK(c.login_window_ms == before.login_window_ms);
}

/* ---- access tokens ---- */

static void require_sane_claims(const qg_jwt_claims *cl)
{
    CHECK(cl->sub[0] != '\0');
    CHECK(memchr(cl->sub, '\0', sizeof cl->sub) != NULL);
    CHECK(cl->role == QG_ROLE_CLIENT || cl->role == QG_ROLE_DEVELOPER || cl->role == QG_ROLE_ADMIN);
    CHECK(cl->exp > NOW_S);
    CHECK(cl->iat >= 0);
}

static void fuzz_jwt_token(const char *token)
{
    qg_jwt_claims cl;
    qg_error err = {0};
    qg_status rc = qg_jwt_verify(jwt_key, token, NOW_S, &cl, &err);
    require_message(rc, &err);
    CHECK(rc == QG_OK || rc == QG_EDENIED);
    if (rc == QG_OK) require_sane_claims(&cl);
}

/* The input is "header JSON \n claims JSON"; both are signed with the key,
 * so verification reaches the algorithm and claim checks. The same token
 * must never pass under another key. */
static void fuzz_jwt_signed(const char *text, size_t n)
{
    const char *nl = memchr(text, '\n', n);
    if (!nl) return;
    size_t hl = (size_t)(nl - text), pl = n - hl - 1;
    size_t b64h = sodium_base64_ENCODED_LEN(hl, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t b64p = sodium_base64_ENCODED_LEN(pl, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t b64s = sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *token = malloc(b64h + b64p + b64s + 3);
    sodium_bin2base64(token, b64h, (const unsigned char *)text, hl,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t len = strlen(token);
    token[len++] = '.';
    sodium_bin2base64(token + len, b64p, (const unsigned char *)nl + 1, pl,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    len += strlen(token + len);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256(mac, (const unsigned char *)token, len, jwt_key);
    token[len++] = '.';
    sodium_bin2base64(token + len, b64s, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);

    qg_jwt_claims cl;
    qg_error err = {0};
    qg_status rc = qg_jwt_verify(jwt_key, token, NOW_S, &cl, &err);
    require_message(rc, &err);
    CHECK(rc == QG_OK || rc == QG_EDENIED);
    if (rc == QG_OK) require_sane_claims(&cl);

    qg_error err2 = {0};
    rc = qg_jwt_verify(other_key, token, NOW_S, &cl, &err2);
    CHECK(rc == QG_EDENIED);
    require_message(rc, &err2);
    free(token);
}

/* ---- emails and passwords ---- */

static void fuzz_email(uint8_t sel, const char *text, size_t n)
{
    size_t cap = sel & 1 ? 1 + sel % 64 : QG_EMAIL_MAX + 1;
    char *out = malloc(cap);
    qg_error err = {0};
    qg_status rc = qg_email_normalize(text, out, cap, &err);
    require_message(rc, &err);
    if (!rc) {
        size_t len = strnlen(out, cap);
        CHECK(len < cap && len > 0 && len <= QG_EMAIL_MAX);
        const char *at = strchr(out, '@');
        CHECK(at && at > out && at[1] && strchr(at + 1, '@') == NULL);
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)out[i];
            CHECK(ch > 0x20 && ch != 0x7f && !isupper(ch));
        }
        /* Normalising is idempotent. */
        char again[QG_EMAIL_MAX + 1];
        qg_error err2 = {0};
        CHECK(qg_email_normalize(out, again, sizeof again, &err2) == QG_OK);
        CHECK(strcmp(again, out) == 0);
    }
    free(out);

    /* The policy is exactly a length rule. */
    err = (qg_error){0};
    rc = qg_password_check_policy(text, &err);
    require_message(rc, &err);
    size_t len = strlen(text);
    CHECK((rc == QG_OK) == (len >= 10 && len <= 1024));
    (void)n;
}

/* ---- database URL masking ---- */

/* Copies [s, s+n) into dst replacing bytes in `bad` (and NUL) with 'x'. */
static size_t put_clean(char *dst, const char *s, size_t n, const char *bad)
{
    for (size_t i = 0; i < n; i++) dst[i] = (s[i] && !strchr(bad, s[i])) ? s[i] : 'x';
    return n;
}

static void fuzz_mask_url(uint8_t sel, const uint8_t *data, size_t n)
{
    static const char *schemes[] = {"postgres://", "postgresql://", "sqlite://", ""};
    size_t cap = sel & 1 ? 1 + sel % 128 : 512;
    char *out = malloc(cap);

    /* Raw: any text, only the output contract is checked. */
    char *raw = malloc(n + 1);
    memcpy(raw, data, n);
    raw[n] = '\0';
    qg_store_mask_url(raw, out, cap);
    CHECK(memchr(out, '\0', cap) != NULL);
    free(raw);

    /* Built: scheme user:PASS@rest, with "user" free of ':' and of the
     * authority's ends, and PASS free of '@' and of the ends. */
    const char *text = (const char *)data;
    const char *nl1 = memchr(text, '\n', n);
    if (!nl1) goto out;
    const char *nl2 = memchr(nl1 + 1, '\n', n - (size_t)(nl1 + 1 - text));
    if (!nl2) goto out;
    size_t ul = (size_t)(nl1 - text), pl = (size_t)(nl2 - nl1 - 1),
           rl = n - (size_t)(nl2 + 1 - text);
    if (pl == 0) goto out;
    const char *scheme = schemes[(sel >> 1) % 4];
    size_t sl = strlen(scheme);
    char *url = malloc(sl + ul + pl + rl + 3);
    char *ref = malloc(sl + ul + rl + 7); /* the URL with the password already masked */
    char *pass = malloc(pl + 1);
    size_t u = 0;
    memcpy(url, scheme, sl);
    u += sl;
    u += put_clean(url + u, text, ul, ":/?#@");
    url[u++] = ':';
    size_t pass_at = u;
    u += put_clean(url + u, nl1 + 1, pl, "/?#@");
    memcpy(pass, url + pass_at, pl);
    pass[pl] = '\0';
    url[u++] = '@';
    u += put_clean(url + u, nl2 + 1, rl, "");
    url[u] = '\0';
    snprintf(ref, sl + ul + rl + 7, "%.*s****%s", (int)pass_at, url, url + pass_at + pl);

    qg_store_mask_url(url, out, cap);
    CHECK(memchr(out, '\0', cap) != NULL);
    /* Masking only removes text and inserts "****", so a password without
     * '*' that the rest of the URL does not contain cannot appear. */
    if (!strchr(pass, '*') && !strstr(ref, pass)) {
        if (strstr(out, pass)) {
            fprintf(stderr, "fuzz_http: password '%s' shown in '%s' (url '%s')\n", pass, out, url);
            abort();
        }
    }
    free(url);
    free(ref);
    free(pass);
out:
    free(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    qg_error err = {0};
    if (qg_auth_init(&err)) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > FUZZ_MAX_INPUT) return 0;
    uint8_t which = data[0], sel = data[1];
    const uint8_t *in = data + 2;
    size_t n = size - 2;
    /* Most parsers take a C string: the input up to its first NUL. */
    char *text = malloc(n + 1);
    memcpy(text, in, n);
    text[n] = '\0';
    size_t tn = strlen(text);
    switch (which % 8) {
    case 0:
        fuzz_router(sel, text, tn);
        break;
    case 1:
        fuzz_query(sel, text, n);
        break;
    case 2:
        fuzz_json(sel, in, n);
        break;
    case 3:
        fuzz_ratelimit(text);
        break;
    case 4:
        fuzz_jwt_token(text);
        break;
    case 5:
        fuzz_jwt_signed(text, tn);
        break;
    case 6:
        fuzz_email(sel, text, tn);
        break;
    case 7:
        fuzz_mask_url(sel, in, n);
        break;
    }
    free(text);
    return 0;
}
