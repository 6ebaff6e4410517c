/*
 * json.c - the cJSON scratch allocator and the compact printer (see json.h).
 *
 * A thread-local bump pointer over the caller's buffer. free() of a pointer
 * inside the buffer is ignored (the whole buffer goes at the scope's end);
 * anything else is a malloc'd block and goes to free(). cJSON's hooks are
 * global, so they are set before main by a constructor: this object is
 * linked in whenever something calls the scope functions.
 */
#include <quantgate/json.h>
#include <quantgate/mem.h>

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if QG_JSON_SCRATCH

typedef struct {
    char *base, *next, *end;
} scratch;

static _Thread_local scratch tls;

static void *scratch_malloc(size_t n)
{
    if (tls.next) {
        /* max_align_t alignment, as malloc gives */
        uintptr_t at = ((uintptr_t)tls.next + (_Alignof(max_align_t) - 1)) &
                       ~(uintptr_t)(_Alignof(max_align_t) - 1);
        if (at <= (uintptr_t)tls.end && n <= (uintptr_t)tls.end - at) {
            tls.next = (char *)at + n;
            return (void *)at;
        }
    }
    return malloc(n);
}

static void scratch_free(void *p)
{
    uintptr_t at = (uintptr_t)p;
    if (tls.base && at >= (uintptr_t)tls.base && at < (uintptr_t)tls.end) return;
    free(p);
}

__attribute__((constructor)) static void install_hooks(void)
{
    cJSON_Hooks h = {.malloc_fn = scratch_malloc, .free_fn = scratch_free};
    cJSON_InitHooks(&h);
}

void qg_json_scratch_begin(void *buf, size_t cap)
{
    tls.base = tls.next = buf;
    tls.end = (char *)buf + cap;
}

void qg_json_scratch_end(void)
{
    tls.base = tls.next = tls.end = NULL;
}

#else

void qg_json_scratch_begin(void *buf, size_t cap)
{
    (void)buf;
    (void)cap;
}

void qg_json_scratch_end(void) {}

#endif

/* ---- the compact printer ----
 *
 * Byte for byte what cJSON_PrintUnformatted writes (tests/unit/test_core.c
 * compares the two on random documents): the same escapes, and numbers by
 * cJSON's rule (15 significant digits when they read back within
 * DBL_EPSILON, else 17). cJSON checks the read back with sscanf, which
 * costs as much as the printing; strtod reads the same digits to the same
 * double in a fraction of the time. */

typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} jbuf;

static bool jb_reserve(jbuf *b, size_t n)
{
    if (b->failed) return false;
    if (b->len + n < b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap <= b->len + n) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) {
        b->failed = true;
        return false;
    }
    b->p = q;
    b->cap = cap;
    return true;
}

static void jb_put(jbuf *b, const char *s, size_t n)
{
    if (!jb_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* 1 for the bytes a string cannot hold as they are (and for its NUL). */
#define ONES8 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char special[256] = {ONES8, ONES8, ONES8, ONES8, ['"'] = 1, ['\\'] = 1};
#undef ONES8

static void jb_string(jbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    jb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        size_t n = 0;
        while (!special[p[n]]) n++;
        if (n) jb_put(b, (const char *)p, n);
        p += n;
        if (!*p) break;
        const char *e = qg_json_escape_of(*p);
        if (e) {
            jb_put(b, e, 2);
        } else {
            char u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            jb_put(b, u, sizeof u);
        }
        p++;
    }
    jb_put(b, "\"", 1);
}

/* Writes u's digits ending just before end; returns where they start. */
static char *digits_before(char *end, uint64_t u)
{
    do {
        *--end = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return end;
}

static void jb_uint(jbuf *b, uint64_t u)
{
    char t[24];
    char *at = digits_before(t + sizeof t, u);
    jb_put(b, at, (size_t)(t + sizeof t - at));
}

/* Prices and the like: d is the double nearest m / 10^k for an integer m
 * of at most 15 digits and the smallest such k. Then %1.15g (fixed
 * notation for 1e-4 <= |d| < 1e15) is exactly m's digits with the point k
 * from the right, as d lies far closer to m / 10^k than half a unit of the
 * 15th digit, and it reads back as d. False: the caller prints. */
static bool put_short_decimal(jbuf *b, double d)
{
    static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double a = fabs(d);
    if (!(a >= 1e-4 && a < 1e15)) return false;
    for (int k = 1; k <= 15; k++) {
        double scaled = a * p10[k];
        if (scaled >= 1e15) return false;
        double m = nearbyint(scaled);
        if (m / p10[k] != a) continue;
        char t[40];
        char *at = t + sizeof t;
        uint64_t u = (uint64_t)m;
        for (int j = 0; j < k; j++, u /= 10) *--at = (char)('0' + u % 10);
        *--at = '.';
        at = digits_before(at, u);
        if (d < 0) *--at = '-';
        jb_put(b, at, (size_t)(t + sizeof t - at));
        return true;
    }
    return false;
}

static void jb_number(jbuf *b, const cJSON *it)
{
    double d = it->valuedouble;
    if (isnan(d) || isinf(d)) {
        jb_put(b, "null", 4);
        return;
    }
    /* %1.15g of an integral value below 1e15 is its digits (no exponent
     * under 15 significant ones): the common case, without printf. */
    if (d == trunc(d) && fabs(d) < 1e15) {
        if (signbit(d)) jb_put(b, "-", 1);
        jb_uint(b, (uint64_t)fabs(d));
        return;
    }
    if (put_short_decimal(b, d)) return;
    char t[32];
    int n = snprintf(t, sizeof t, "%1.15g", d);
    double back = strtod(t, NULL);
    double big = fabs(back) > fabs(d) ? fabs(back) : fabs(d);
    if (!(fabs(back - d) <= big * DBL_EPSILON)) n = snprintf(t, sizeof t, "%1.17g", d);
    /* cJSON writes the locale's decimal point as '.'; printf here runs in
     * the "C" locale, as the server never calls setlocale. */
    jb_put(b, t, (size_t)n);
}

static bool jb_value(jbuf *b, const cJSON *it)
{
    switch (it->type & 0xFF) {
    case cJSON_NULL:
        jb_put(b, "null", 4);
        return true;
    case cJSON_False:
        jb_put(b, "false", 5);
        return true;
    case cJSON_True:
        jb_put(b, "true", 4);
        return true;
    case cJSON_Number:
        jb_number(b, it);
        return true;
    case cJSON_String:
        jb_string(b, it->valuestring);
        return true;
    case cJSON_Raw:
        if (!it->valuestring) return false;
        jb_put(b, it->valuestring, strlen(it->valuestring));
        return true;
    case cJSON_Array:
    case cJSON_Object: {
        bool obj = (it->type & 0xFF) == cJSON_Object;
        jb_put(b, obj ? "{" : "[", 1);
        for (const cJSON *c = it->child; c; c = c->next) {
            if (obj) {
                jb_string(b, c->string);
                jb_put(b, ":", 1);
            }
            if (!jb_value(b, c)) return false;
            if (c->next) jb_put(b, ",", 1);
        }
        jb_put(b, obj ? "}" : "]", 1);
        return true;
    }
    default:
        return false;
    }
}

char *qg_json_compact(const cJSON *item)
{
    if (!item) return NULL;
    jbuf b = {0};
    if (!jb_value(&b, item) || !jb_reserve(&b, 1)) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0';
    return b.p;
}
