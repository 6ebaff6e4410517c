/*
 * json.c - the cJSON scratch allocator (see json.h).
 *
 * A thread-local bump pointer over the caller's buffer. free() of a pointer
 * inside the buffer is ignored (the whole buffer goes at the scope's end);
 * anything else is a malloc'd block and goes to free(). cJSON's hooks are
 * global, so they are set before main by a constructor: this object is
 * linked in whenever something calls the scope functions.
 */
#include <quantgate/json.h>

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>

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
