/*
 * json.h - cJSON helpers: a scratch allocator for short-lived documents,
 * and a faster compact printer.
 *
 * cJSON allocates every node and string with malloc: a 400-byte webhook
 * payload is about forty allocations, more than the thread cache holds, so
 * on the event loop half its parse time was malloc and free. Between
 * qg_json_scratch_begin and qg_json_scratch_end, the calling thread's
 * cJSON allocations are carved from the caller's buffer instead (spilling
 * to malloc when it is full) and freeing them is a no-op; every other
 * thread, and this one outside the scope, uses malloc as before.
 *
 * Rules: a document parsed inside the scope must be deleted (or dropped)
 * inside it; nothing allocated there may outlive the buffer. Scopes do not
 * nest. Under AddressSanitizer the scope is a no-op, so the sanitizer keeps
 * checking every cJSON allocation.
 *
 * The hooks are installed once at program start (a constructor, before any
 * thread exists): cJSON's hook table is global and not thread-safe to change.
 */
#ifndef QUANTGATE_JSON_H
#define QUANTGATE_JSON_H

#include <stddef.h>

struct cJSON;

/* 1 when the scope really serves allocations (0 under AddressSanitizer). */
#if defined(__SANITIZE_ADDRESS__)
#define QG_JSON_SCRATCH 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QG_JSON_SCRATCH 0
#endif
#endif
#ifndef QG_JSON_SCRATCH
#define QG_JSON_SCRATCH 1
#endif

/* buf (cap bytes, any alignment) serves this thread's cJSON allocations
 * until qg_json_scratch_end. */
void qg_json_scratch_begin(void *buf, size_t cap);
void qg_json_scratch_end(void);

/* The same text as cJSON_PrintUnformatted(item), in a third to a half of
 * the time (integers and short decimals without printf, other numbers read
 * back with strtod instead of sscanf). malloc'd: the caller owns it (free
 * or cJSON_free; no copy needed); NULL when item is NULL, holds an
 * invalid item or a raw one without text, or out of memory. Never uses
 * the scratch buffer, so the text may outlive a scope it was printed in. */
char *qg_json_compact(const struct cJSON *item);

#endif
