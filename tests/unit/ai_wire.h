/*
 * ai_wire.h - helpers the provider unit tests share: reading a recorded
 * wire sample from tests/data/ai/ and finding a header in an encoded
 * request. Header-only (static inline) because every test file is its own
 * translation unit in one binary.
 */
#ifndef QG_TEST_AI_WIRE_H
#define QG_TEST_AI_WIRE_H

#include "ai/provider.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The whole of tests/data/ai/<name>, NUL-terminated; the caller frees it.
 * *n (may be NULL) gets its length. Fails the test when it cannot be read. */
static inline char *ai_slurp(const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ai/%s", QG_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    cr_assert_eq(fread(s, 1, (size_t)len, f), (size_t)len);
    s[len] = 0;
    fclose(f);
    if (n) *n = (size_t)len;
    return s;
}

/* The first header of r starting with prefix ("Authorization:"), compared
 * case-insensitively as HTTP does, or NULL. */
static inline const char *ai_header(const qg_ai_http_req *r, const char *prefix)
{
    for (int i = 0; i < r->nheaders; i++)
        if (!strncasecmp(r->headers[i], prefix, strlen(prefix))) return r->headers[i];
    return NULL;
}

#endif
