/*
 * test_rowcache.c - the memory row cache: a row comes back as it was put,
 * only to its owner; a newer seq on the same slot replaces it; a drop
 * forgets it (and only it); a cache of 0 rows is no cache; hits and misses
 * are counted.
 */
#include <criterion/criterion.h>

#include "memory/rowcache.h"

#include <stdio.h>
#include <string.h>

static qg_mem_item item(const char *id, const char *text, const char *symbol)
{
    qg_mem_item it = {.collection = "analyses",
                      .kind = QG_MEM_LONG,
                      .text = text,
                      .symbol = symbol,
                      .timeframe = "15m",
                      .signal_type = NULL,
                      .session = "london",
                      .ts = 1700000000123LL,
                      .meta_json = "{\"signal_id\":\"sig_1\"}",
                      .created_at = 1700000000456LL,
                      .expires_at = 0,
                      .score = 0.9f};
    snprintf(it.id, sizeof it.id, "%s", id);
    return it;
}

Test(rowcache, a_row_comes_back_as_put_to_its_owner_only)
{
    qg_rowcache *rc = qg_rowcache_new(100);
    qg_arena a;
    qg_arena_init(&a, 0);
    char text[64];
    snprintf(text, sizeof text, "gold swept the asian low");
    qg_mem_item in = item("mem_1", text, "XAUUSD"), out;
    qg_rowcache_put(rc, 7, "usr_a", &in);
    memset(text, 'x', strlen(text)); /* the cache holds its own copy */
    cr_assert(qg_rowcache_get(rc, 7, "usr_a", &a, &out));
    cr_assert_str_eq(out.id, "mem_1");
    cr_assert_str_eq(out.collection, "analyses");
    cr_assert_eq(out.kind, QG_MEM_LONG);
    cr_assert_str_eq(out.text, "gold swept the asian low");
    cr_assert_str_eq(out.symbol, "XAUUSD");
    cr_assert_str_eq(out.timeframe, "15m");
    cr_assert_null(out.signal_type);
    cr_assert_str_eq(out.session, "london");
    cr_assert_eq(out.ts, 1700000000123LL);
    cr_assert_str_eq(out.meta_json, "{\"signal_id\":\"sig_1\"}");
    cr_assert_eq(out.created_at, 1700000000456LL);
    cr_assert_eq(out.expires_at, 0);
    cr_assert_eq(out.score, 0, "a score is the search's, not the row's");
    cr_assert_not(qg_rowcache_get(rc, 7, "usr_b", &a, &out), "another user's row");
    cr_assert_not(qg_rowcache_get(rc, 8, "usr_a", &a, &out), "never put");
    qg_rowcache_stats st;
    qg_rowcache_get_stats(rc, &st);
    cr_assert_eq(st.cap, 128, "rounded up to a power of two");
    cr_assert_eq(st.hits, 1);
    cr_assert_eq(st.misses, 2);
    qg_arena_free(&a);
    qg_rowcache_free(rc);
}

Test(rowcache, a_newer_seq_on_the_slot_replaces_and_a_drop_forgets_only_its_own)
{
    qg_rowcache *rc = qg_rowcache_new(16);
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_mem_item one = item("mem_1", "first", "EURUSD"), two = item("mem_2", "second", NULL), out;
    qg_rowcache_put(rc, 3, "usr_a", &one);
    qg_rowcache_put(rc, 3 + 16, "usr_a", &two); /* the same slot */
    cr_assert_not(qg_rowcache_get(rc, 3, "usr_a", &a, &out), "replaced");
    cr_assert(qg_rowcache_get(rc, 19, "usr_a", &a, &out));
    cr_assert_str_eq(out.text, "second");
    cr_assert_null(out.symbol);
    qg_rowcache_drop(rc, 3); /* no longer there: the slot's row stays */
    cr_assert(qg_rowcache_get(rc, 19, "usr_a", &a, &out));
    qg_rowcache_drop(rc, 19);
    cr_assert_not(qg_rowcache_get(rc, 19, "usr_a", &a, &out));
    qg_rowcache_put(rc, 19, "usr_a", &two); /* a slot can be filled again */
    cr_assert(qg_rowcache_get(rc, 19, "usr_a", &a, &out));
    qg_arena_free(&a);
    qg_rowcache_free(rc);
}

Test(rowcache, zero_rows_is_no_cache)
{
    qg_rowcache *rc = qg_rowcache_new(0);
    cr_assert_null(rc);
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_mem_item in = item("mem_1", "t", "EURUSD"), out;
    qg_rowcache_put(rc, 1, "usr_a", &in);
    cr_assert_not(qg_rowcache_get(rc, 1, "usr_a", &a, &out));
    qg_rowcache_drop(rc, 1);
    qg_rowcache_stats st;
    qg_rowcache_get_stats(rc, &st);
    cr_assert_eq(st.cap, 0);
    qg_arena_free(&a);
    qg_rowcache_free(rc);
}
