/*
 * test_memory.c - the memory service against a real SQLite file: add,
 * search, list, forget; filters applied during the search still fill n;
 * per-user isolation; expiry of short-term items with an injected clock;
 * working memory; market setups; collections; persistence across close and
 * reopen through the snapshot, through a rebuild (snapshot deleted), and
 * from a corrupt snapshot (rebuild with a warning).
 */
#include "memory/memory.h"
#include "store/store.h"

#include <quantgate/log.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T0 1700000000000LL

typedef struct fx {
    char dir[128], db[192], snaps[192];
    qg_store *store;
    qg_conn *c;
    qg_memory *m;
    qg_arena a;
} fx;

static void add_user(fx *f, const char *id)
{
    qg_error err = {0};
    char email[96];
    snprintf(email, sizeof email, "%s@example.com", id);
    qg_val p[] = {QG_VTEXT(id), QG_VTEXT(email)};
    cr_assert_eq(qg_conn_exec(f->c,
                              "INSERT INTO users (id, email, password_hash, role, approved, "
                              "created_at, updated_at) VALUES (?, ?, 'x', 'developer', 1, 0, 0)",
                              p, 2, NULL, &err),
                 QG_OK, "%s", err.msg);
}

static void mem_open(fx *f, qg_vindex_kind kind)
{
    qg_error err = {0};
    qg_memory_config cfg = {.store = f->store, .snapshot_dir = f->snaps, .index_kind = kind};
    cr_assert_eq(qg_memory_open(&cfg, &f->m, &err), QG_OK, "%s", err.msg);
}

static void setup_fx(fx *f)
{
    memset(f, 0, sizeof *f);
    qg_log_set_level(QG_LOG_WARN);
    snprintf(f->dir, sizeof f->dir, "/tmp/qg-memory-XXXXXX");
    cr_assert(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "sqlite://%s/t.db", f->dir);
    snprintf(f->snaps, sizeof f->snaps, "%s/memory", f->dir);
    qg_error err = {0};
    cr_assert_eq(qg_store_open(f->db, 4, true, &f->store, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_store_acquire(f->store, &f->c, &err), QG_OK);
    add_user(f, "usr_a");
    add_user(f, "usr_b");
    qg_arena_init(&f->a, 0);
    mem_open(f, QG_VINDEX_HNSW);
}

static void teardown_fx(fx *f)
{
    qg_memory_free(f->m);
    qg_arena_free(&f->a);
    qg_store_release(f->store, f->c);
    qg_store_close(f->store);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    cr_assert_eq(system(cmd), 0);
}

static void add(fx *f, const qg_mem_add *in, char *id)
{
    qg_error err = {0};
    cr_assert_eq(qg_memory_add(f->m, f->c, in, id, &err), QG_OK, "%s", err.msg);
}

static size_t search(fx *f, qg_mem_query q, qg_mem_item **out)
{
    qg_error err = {0};
    size_t n = 0;
    cr_assert_eq(qg_memory_search(f->m, f->c, &q, &f->a, out, &n, &err), QG_OK, "%s", err.msg);
    return n;
}

Test(memory, add_search_list_forget)
{
    fx f;
    setup_fx(&f);
    char id1[QG_ID_MAX], id2[QG_ID_MAX], id3[QG_ID_MAX];
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .collection = "analyses",
                      .kind = QG_MEM_LONG,
                      .text = "gold broke above the asian range high and rallied into london",
                      .symbol = "XAUUSD",
                      .timeframe = "15m",
                      .meta_json = "{\"outcome\":\"win\"}",
                      .now_ms = T0},
        id1);
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .collection = "analyses",
                      .kind = QG_MEM_LONG,
                      .text = "euro dollar ranged all day on low volume before the fed minutes",
                      .symbol = "EURUSD",
                      .now_ms = T0 + 1},
        id2);
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .collection = "analyses",
                      .kind = QG_MEM_LONG,
                      .text = "bitcoin swept the weekly low then reclaimed it",
                      .symbol = "BTCUSD",
                      .now_ms = T0 + 2},
        id3);
    cr_assert(!strncmp(id1, "mem_", 4));

    qg_mem_item *it;
    size_t n = search(&f,
                      (qg_mem_query){.user_id = "usr_a",
                                     .collection = "analyses",
                                     .text = "gold rallied after breaking the asian range high",
                                     .n = 3,
                                     .now_ms = T0 + 10},
                      &it);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(it[0].id, id1);
    cr_assert_str_eq(it[0].symbol, "XAUUSD");
    cr_assert_str_eq(it[0].timeframe, "15m");
    cr_assert_str_eq(it[0].meta_json, "{\"outcome\":\"win\"}");
    cr_assert_str_eq(it[0].collection, "analyses");
    cr_assert_eq(it[0].kind, QG_MEM_LONG);
    cr_assert_eq(it[0].created_at, T0);
    cr_assert(it[0].score > it[1].score && it[1].score >= it[2].score);
    cr_assert(it[0].score > 0.3f && it[0].score <= 1.0001f, "score %f", it[0].score);

    /* no collection: every text collection */
    n = search(&f, (qg_mem_query){.user_id = "usr_a", .text = "bitcoin weekly low", .n = 1}, &it);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(it[0].id, id3);

    /* list: newest first, paged */
    char next[QG_ID_MAX];
    qg_error err = {0};
    cr_assert_eq(
        qg_memory_list(f.m, f.c,
                       &(qg_mem_list){.user_id = "usr_a", .collection = "analyses", .limit = 2},
                       &f.a, &it, &n, next, &err),
        QG_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(it[0].id, id3);
    cr_assert_str_eq(it[1].id, id2);
    cr_assert_str_eq(next, id2);
    cr_assert_eq(qg_memory_list(
                     f.m, f.c,
                     &(qg_mem_list){
                         .user_id = "usr_a", .collection = "analyses", .limit = 2, .before = next},
                     &f.a, &it, &n, next, &err),
                 QG_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(it[0].id, id1);
    cr_assert_str_eq(next, "");

    /* get, forget, forget again */
    qg_mem_item one;
    cr_assert_eq(qg_memory_get(f.m, f.c, "usr_a", id1, 0, &f.a, &one, &err), QG_OK);
    cr_assert_str_eq(one.text, "gold broke above the asian range high and rallied into london");
    cr_assert_eq(qg_memory_forget(f.m, f.c, "usr_a", id1, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_memory_forget(f.m, f.c, "usr_a", id1, &err), QG_ENOTFOUND);
    cr_assert(strstr(err.msg, id1));
    cr_assert_eq(qg_memory_get(f.m, f.c, "usr_a", id1, 0, &f.a, &one, &err), QG_ENOTFOUND);
    n = search(&f,
               (qg_mem_query){.user_id = "usr_a",
                              .collection = "analyses",
                              .text = "gold rallied after breaking the asian range high",
                              .n = 5},
               &it);
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++) cr_assert_str_neq(it[i].id, id1);
    teardown_fx(&f);
}

/* A deterministic pseudo-random word salad for bulk items. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static const char *const words[] = {"breakout",   "range",  "sweep", "liquidity", "gap",
                                    "order",      "block",  "trend", "reversal",  "london",
                                    "asia",       "volume", "spike", "retest",    "support",
                                    "resistance", "fvg",    "choch", "bos",       "momentum"};

static void salad(uint64_t *seed, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (int w = 0; w < 8; w++)
        len += (size_t)snprintf(out + len, cap - len, "%s ",
                                words[rng_next(seed) % (sizeof words / sizeof words[0])]);
}

static void filters_fill_n(qg_vindex_kind kind)
{
    fx f;
    setup_fx(&f);
    if (kind != QG_VINDEX_HNSW) {
        qg_memory_free(f.m);
        mem_open(&f, kind);
    }
    static const char *const syms[] = {"EURUSD", "GBPUSD", "USDJPY", "BTCUSD", "NAS100"};
    uint64_t seed = 42;
    char text[256];
    qg_error err = {0};
    cr_assert_eq(qg_conn_begin(f.c, &err), QG_OK); /* speed only: one fsync */
    cr_assert_eq(qg_conn_commit(f.c, &err), QG_OK);
    for (int i = 0; i < 2000; i++) {
        salad(&seed, text, sizeof text);
        bool gold = i % 66 == 7 && i < 66 * 30; /* 30 of them */
        const char *sym = gold ? "XAUUSD" : syms[i % 5];
        add(&f,
            &(qg_mem_add){.user_id = i % 2 ? "usr_a" : "usr_b",
                          .collection = "signals",
                          .text = text,
                          .symbol = sym,
                          .timeframe = i % 3 ? "1h" : "5m",
                          .ts = T0 + i * 1000,
                          .now_ms = T0},
            NULL);
    }
    /* gold items all belong to usr_a (i odd) or usr_b (i even): count usr_a's */
    int gold_a = 0;
    for (int i = 0; i < 2000; i++)
        if (i % 66 == 7 && i < 66 * 30 && i % 2) gold_a++;
    cr_assert(gold_a >= 10, "%d", gold_a);

    qg_mem_item *it;
    size_t n = search(&f,
                      (qg_mem_query){.user_id = "usr_a",
                                     .collection = "signals",
                                     .text = "liquidity sweep then breakout retest",
                                     .n = 10,
                                     .symbol = "XAUUSD",
                                     .now_ms = T0},
                      &it);
    cr_assert_eq(n, 10, "a narrow filter must still fill n (got %zu)", n);
    for (size_t i = 0; i < n; i++) cr_assert_str_eq(it[i].symbol, "XAUUSD");

    /* fewer matches than n: all of them, nothing else */
    n = search(&f,
               (qg_mem_query){.user_id = "usr_a",
                              .collection = "signals",
                              .text = "breakout",
                              .n = 100,
                              .symbol = "XAUUSD",
                              .now_ms = T0},
               &it);
    cr_assert_eq((int)n, gold_a);

    /* combined filters and a time range */
    n = search(&f,
               (qg_mem_query){.user_id = "usr_a",
                              .collection = "signals",
                              .text = "breakout",
                              .n = 50,
                              .symbol = "EURUSD",
                              .timeframe = "5m",
                              .since = T0 + 100000,
                              .until = T0 + 900000,
                              .now_ms = T0},
               &it);
    cr_assert(n > 0);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(it[i].symbol, "EURUSD");
        cr_assert_str_eq(it[i].timeframe, "5m");
        cr_assert(it[i].ts >= T0 + 100000 && it[i].ts <= T0 + 900000);
    }
    /* a value nobody has */
    n = search(
        &f,
        (qg_mem_query){
            .user_id = "usr_a", .collection = "signals", .text = "breakout", .symbol = "NOPE"},
        &it);
    cr_assert_eq(n, 0);
    teardown_fx(&f);
}

Test(memory, filters_fill_n_hnsw, .timeout = 120)
{
    filters_fill_n(QG_VINDEX_HNSW);
}

Test(memory, filters_fill_n_flat, .timeout = 120)
{
    filters_fill_n(QG_VINDEX_FLAT);
}

Test(memory, isolation)
{
    fx f;
    setup_fx(&f);
    char ida[QG_ID_MAX], idb[QG_ID_MAX];
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .kind = QG_MEM_EPISODIC,
                      .text = "risk 1% per trade, no trading on Fridays"},
        ida);
    add(&f,
        &(qg_mem_add){.user_id = "usr_b",
                      .kind = QG_MEM_EPISODIC,
                      .text = "risk 2% per trade, trades only the new york session"},
        idb);
    qg_mem_item *it;
    size_t n =
        search(&f, (qg_mem_query){.user_id = "usr_b", .text = "risk per trade Fridays"}, &it);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(it[0].id, idb);
    cr_assert_str_eq(it[0].collection, "facts");
    cr_assert_eq(it[0].kind, QG_MEM_EPISODIC);
    qg_error err = {0};
    qg_mem_item one;
    cr_assert_eq(qg_memory_get(f.m, f.c, "usr_b", ida, 0, &f.a, &one, &err), QG_ENOTFOUND);
    cr_assert_eq(qg_memory_forget(f.m, f.c, "usr_b", ida, &err), QG_ENOTFOUND);
    cr_assert_eq(qg_memory_get(f.m, f.c, "usr_a", ida, 0, &f.a, &one, &err), QG_OK);
    char next[QG_ID_MAX];
    cr_assert_eq(
        qg_memory_list(f.m, f.c, &(qg_mem_list){.user_id = "usr_a"}, &f.a, &it, &n, next, &err),
        QG_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(it[0].id, ida);
    /* a user who never stored anything */
    n = search(&f, (qg_mem_query){.user_id = "usr_nobody", .text = "risk per trade"}, &it);
    cr_assert_eq(n, 0);
    /* forget by filter touches only the caller's items */
    int64_t removed = 0;
    cr_assert_eq(qg_memory_forget_where(
                     f.m, f.c, &(qg_mem_forget_where){.user_id = "usr_b", .collection = "facts"},
                     &removed, &err),
                 QG_OK, "%s", err.msg);
    cr_assert_eq(removed, 1);
    cr_assert_eq(qg_memory_get(f.m, f.c, "usr_a", ida, 0, &f.a, &one, &err), QG_OK);
    cr_assert_eq(qg_memory_forget_where(f.m, f.c, &(qg_mem_forget_where){.user_id = "usr_b"},
                                        &removed, &err),
                 QG_EINVAL, "forgetting everything needs a filter");
    teardown_fx(&f);
}

Test(memory, short_term_expiry)
{
    fx f;
    setup_fx(&f);
    char id[QG_ID_MAX], keep[QG_ID_MAX];
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .kind = QG_MEM_SHORT,
                      .text = "user asked about the gold breakout",
                      .session = "chat-1",
                      .now_ms = T0},
        id);
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .kind = QG_MEM_SHORT,
                      .text = "user asked about the gold breakout again",
                      .session = "chat-1",
                      .ttl_ms = 72 * QG_MS_PER_HOUR,
                      .now_ms = T0},
        keep);
    qg_error err = {0};
    qg_mem_item one;
    cr_assert_eq(qg_memory_get(f.m, f.c, "usr_a", id, T0, &f.a, &one, &err), QG_OK);
    cr_assert_eq(one.expires_at, T0 + 24 * QG_MS_PER_HOUR, "the default short TTL is 24 h");
    cr_assert_str_eq(one.collection, "conversations");
    qg_mem_item *it;
    size_t n = search(&f,
                      (qg_mem_query){.user_id = "usr_a",
                                     .text = "gold breakout",
                                     .n = 5,
                                     .kind = QG_MEM_SHORT,
                                     .session = "chat-1",
                                     .now_ms = T0 + QG_MS_PER_HOUR},
                      &it);
    cr_assert_eq(n, 2);
    int64_t later = T0 + 25 * QG_MS_PER_HOUR;
    n = search(&f,
               (qg_mem_query){.user_id = "usr_a", .text = "gold breakout", .n = 5, .now_ms = later},
               &it);
    cr_assert_eq(n, 1, "an expired item is never returned");
    cr_assert_str_eq(it[0].id, keep);
    char next[QG_ID_MAX];
    cr_assert_eq(
        qg_memory_list(f.m, f.c,
                       &(qg_mem_list){.user_id = "usr_a", .kind = QG_MEM_SHORT, .now_ms = later},
                       &f.a, &it, &n, next, &err),
        QG_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(qg_memory_get(f.m, f.c, "usr_a", id, later, &f.a, &one, &err), QG_ENOTFOUND);
    int64_t removed = 0;
    cr_assert_eq(qg_memory_purge(f.m, f.c, later, &removed, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(removed, 1);
    size_t cnt;
    cr_assert_eq(qg_memory_index_info(f.m, "conversations", NULL, &cnt, NULL), QG_OK);
    cr_assert_eq(cnt, 1, "purged from the index too");
    /* the row is gone: even the present clock does not find it */
    cr_assert_eq(qg_memory_get(f.m, f.c, "usr_a", id, T0, &f.a, &one, &err), QG_ENOTFOUND);
    teardown_fx(&f);
}

Test(memory, working_memory)
{
    fx f;
    setup_fx(&f);
    qg_error err = {0};
    bool created = false;
    cr_assert_eq(qg_memory_working_put(f.m, f.c, "usr_a", "s1", "plan", "{\"step\":1}", 0, T0,
                                       &created, &err),
                 QG_OK, "%s", err.msg);
    cr_assert(created);
    cr_assert_eq(qg_memory_working_put(f.m, f.c, "usr_a", "s1", "plan", "{\"step\":2}", 0, T0 + 5,
                                       &created, &err),
                 QG_OK);
    cr_assert(!created, "a second put updates");
    cr_assert_eq(qg_memory_working_put(f.m, f.c, "usr_a", "s1", "symbol", "\"XAUUSD\"",
                                       QG_MS_PER_MIN, T0, NULL, &err),
                 QG_OK);
    cr_assert_eq(qg_memory_working_put(f.m, f.c, "usr_b", "s1", "plan", "[]", 0, T0, NULL, &err),
                 QG_OK);
    qg_mem_working w;
    cr_assert_eq(qg_memory_working_get(f.m, f.c, "usr_a", "s1", "plan", T0 + 10, &f.a, &w, &err),
                 QG_OK);
    cr_assert_str_eq(w.value_json, "{\"step\":2}");
    cr_assert_eq(w.created_at, T0);
    cr_assert_eq(w.updated_at, T0 + 5);
    qg_mem_working *all;
    size_t n;
    cr_assert_eq(qg_memory_working_list(f.m, f.c, "usr_a", "s1", T0 + 10, &f.a, &all, &n, &err),
                 QG_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(all[0].key, "plan");
    cr_assert_str_eq(all[1].key, "symbol");
    /* the one-minute key expires */
    cr_assert_eq(qg_memory_working_list(f.m, f.c, "usr_a", "s1", T0 + 2 * QG_MS_PER_MIN, &f.a, &all,
                                        &n, &err),
                 QG_OK);
    cr_assert_eq(n, 1);
    /* bad input names the field */
    cr_assert_eq(
        qg_memory_working_put(f.m, f.c, "usr_a", "s1", "k", "{not json", 0, T0, NULL, &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "value"), "%s", err.msg);
    cr_assert_eq(qg_memory_working_put(f.m, f.c, "usr_a", "", "k", "1", 0, T0, NULL, &err),
                 QG_EINVAL);
    cr_assert(strstr(err.msg, "session"), "%s", err.msg);
    /* delete a key, then the session; the other user's session stays */
    int64_t removed = 0;
    cr_assert_eq(qg_memory_working_delete(f.m, f.c, "usr_a", "s1", "plan", &removed, &err), QG_OK);
    cr_assert_eq(qg_memory_working_get(f.m, f.c, "usr_a", "s1", "plan", T0, &f.a, &w, &err),
                 QG_ENOTFOUND);
    cr_assert_eq(
        qg_memory_forget_where(
            f.m, f.c,
            &(qg_mem_forget_where){.user_id = "usr_a", .kind = QG_MEM_WORKING, .session = "s1"},
            &removed, &err),
        QG_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(qg_memory_working_delete(f.m, f.c, "usr_a", "s1", NULL, &removed, &err),
                 QG_ENOTFOUND);
    cr_assert_eq(qg_memory_working_get(f.m, f.c, "usr_b", "s1", "plan", T0, &f.a, &w, &err), QG_OK);
    teardown_fx(&f);
}

static cJSON *setup_json(double drift, const char *session)
{
    cJSON *s = cJSON_CreateObject();
    cJSON *close = cJSON_AddArrayToObject(s, "close");
    double p = 100;
    for (int i = 0; i < 40; i++) {
        p += drift + ((i * 7919) % 13 - 6) * 0.05;
        cJSON_AddItemToArray(close, cJSON_CreateNumber(p));
    }
    cJSON_AddStringToObject(s, "trend", drift > 0 ? "up" : drift < 0 ? "down" : "range");
    cJSON_AddStringToObject(s, "session", session);
    cJSON_AddStringToObject(s, "signal_type", drift > 0 ? "BoS_bull" : "BoS_bear");
    return s;
}

Test(memory, market_setups)
{
    fx f;
    setup_fx(&f);
    char up[QG_ID_MAX], down[QG_ID_MAX];
    cJSON *s1 = setup_json(0.8, "london"), *s2 = setup_json(-0.8, "new_york");
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .collection = "setups",
                      .setup = s1,
                      .text = "bull BoS, ended +2R",
                      .symbol = "XAUUSD"},
        up);
    add(&f, &(qg_mem_add){.user_id = "usr_a", .collection = "setups", .setup = s2, .text = ""},
        down);
    qg_mem_item *it;
    cJSON *q = setup_json(0.7, "london");
    size_t n = search(&f, (qg_mem_query){.user_id = "usr_a", .setup = q, .n = 2}, &it);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(it[0].id, up);
    cr_assert_str_eq(it[0].session, "london", "the setup's session is the item's");
    cr_assert_str_eq(it[0].signal_type, "BoS_bull");
    /* filter by the session taken from the setup */
    n = search(&f, (qg_mem_query){.user_id = "usr_a", .setup = q, .n = 2, .session = "new_york"},
               &it);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(it[0].id, down);
    /* text into a market collection, a setup into a text collection: 400s naming setup */
    qg_error err = {0};
    cr_assert_eq(
        qg_memory_add(f.m, f.c,
                      &(qg_mem_add){.user_id = "usr_a", .collection = "setups", .text = "words"},
                      NULL, &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "setup"), "%s", err.msg);
    cr_assert_eq(
        qg_memory_add(
            f.m, f.c,
            &(qg_mem_add){.user_id = "usr_a", .collection = "signals", .setup = s1, .text = "x"},
            NULL, &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "setup"), "%s", err.msg);
    cJSON *bad = cJSON_Parse("{\"close\":[1,2,3],\"trend\":\"sideways\"}");
    cr_assert_eq(
        qg_memory_add(
            f.m, f.c,
            &(qg_mem_add){.user_id = "usr_a", .collection = "setups", .setup = bad, .text = ""},
            NULL, &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "trend"), "%s", err.msg);
    cJSON_Delete(bad);
    cJSON_Delete(s1);
    cJSON_Delete(s2);
    cJSON_Delete(q);
    teardown_fx(&f);
}

Test(memory, validation_names_the_field)
{
    fx f;
    setup_fx(&f);
    qg_error err = {0};
    static const struct {
        qg_mem_add in;
        qg_status rc;
        const char *field;
    } cases[] = {
        {{.user_id = "usr_a", .text = "x"}, QG_EINVAL, "collection"},
        {{.user_id = "usr_a", .collection = "signals", .kind = QG_MEM_WORKING, .text = "x"},
         QG_EINVAL,
         "kind"},
        {{.user_id = "usr_a", .collection = "nope", .text = "x"}, QG_ENOTFOUND, "collection"},
        {{.user_id = "usr_a", .collection = "signals"}, QG_EINVAL, "text"},
        {{.user_id = "usr_a", .collection = "signals", .text = "..."}, QG_EINVAL, "text"},
        {{.user_id = "usr_a", .collection = "signals", .text = "x", .meta_json = "[1]"},
         QG_EINVAL,
         "meta"},
        {{.user_id = "usr_a", .collection = "signals", .text = "x", .symbol = ""},
         QG_EINVAL,
         "symbol"},
        {{.user_id = "usr_a", .collection = "signals", .text = "x", .session = "a\nb"},
         QG_EINVAL,
         "session"},
        {{.user_id = "usr_a", .collection = "signals", .text = "x", .ttl_ms = -5},
         QG_EINVAL,
         "ttl"},
        {{.collection = "signals", .text = "x"}, QG_EINVAL, "user_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(qg_memory_add(f.m, f.c, &cases[i].in, NULL, &err), cases[i].rc, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].field), "case %zu: %s", i, err.msg);
    }
    char big[5000];
    memset(big, 'a', sizeof big - 10);
    memcpy(big, "{\"k\":\"", 6);
    strcpy(big + sizeof big - 10, "\"}");
    cr_assert_eq(qg_memory_add(f.m, f.c,
                               &(qg_mem_add){.user_id = "usr_a",
                                             .collection = "signals",
                                             .text = "x",
                                             .meta_json = big},
                               NULL, &err),
                 QG_EINVAL);
    cr_assert(strstr(err.msg, "meta"), "%s", err.msg);
    qg_mem_item *it;
    size_t n;
    cr_assert_eq(qg_memory_search(f.m, f.c,
                                  &(qg_mem_query){.user_id = "usr_a", .text = "x", .n = 1000}, &f.a,
                                  &it, &n, &err),
                 QG_EINVAL);
    cr_assert(strstr(err.msg, "n:"), "%s", err.msg);
    cr_assert_eq(
        qg_memory_search(f.m, f.c, &(qg_mem_query){.user_id = "usr_a"}, &f.a, &it, &n, &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "q:"), "%s", err.msg);
    cr_assert_eq(
        qg_memory_search(f.m, f.c,
                         &(qg_mem_query){.user_id = "usr_a", .text = "x", .kind = QG_MEM_WORKING},
                         &f.a, &it, &n, &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "kind"), "%s", err.msg);
    cr_assert_eq(
        qg_memory_search(f.m, f.c,
                         &(qg_mem_query){.user_id = "usr_a", .text = "x", .since = 5, .until = 4},
                         &f.a, &it, &n, &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "until"), "%s", err.msg);
    teardown_fx(&f);
}

Test(memory, collections)
{
    fx f;
    setup_fx(&f);
    qg_error err = {0};
    cr_assert_eq(
        qg_memory_collection_create(f.m, f.c, "Bad Name", "hash", NULL, NULL, "usr_a", &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "name"), "%s", err.msg);
    cr_assert_eq(
        qg_memory_collection_create(f.m, f.c, "notes", "word2vec", NULL, NULL, "usr_a", &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "embedder"), "%s", err.msg);
    cr_assert_eq(
        qg_memory_collection_create(f.m, f.c, "notes", "hash", "manhattan", NULL, "usr_a", &err),
        QG_EINVAL);
    cr_assert(strstr(err.msg, "metric"), "%s", err.msg);
    cr_assert_eq(
        qg_memory_collection_create(f.m, f.c, "notes", "hash", "dot", "my notes", "usr_a", &err),
        QG_OK, "%s", err.msg);
    cr_assert_eq(qg_memory_collection_create(f.m, f.c, "notes", "hash", NULL, NULL, "usr_a", &err),
                 QG_EEXIST);
    cr_assert_eq(
        qg_memory_collection_create(f.m, f.c, "signals", "hash", NULL, NULL, "usr_a", &err),
        QG_EEXIST);
    add(&f, &(qg_mem_add){.user_id = "usr_a", .collection = "notes", .text = "pine script arrays"},
        NULL);
    add(&f, &(qg_mem_add){.user_id = "usr_b", .collection = "notes", .text = "mql5 order send"},
        NULL);
    qg_mem_collection *cs;
    size_t n;
    cr_assert_eq(qg_memory_collections(f.m, f.c, "usr_a", 0, &cs, &n, &err), QG_OK);
    cr_assert_eq(n, 6);
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cs[i].name, "notes")) continue;
        seen = true;
        cr_assert_str_eq(cs[i].embedder, "hash");
        cr_assert_eq(cs[i].metric, QG_VMETRIC_DOT);
        cr_assert_eq(cs[i].dim, 256);
        cr_assert_eq(cs[i].count, 2);
        cr_assert_eq(cs[i].user_count, 1);
    }
    cr_assert(seen);
    free(cs);
    /* the new collection survives a restart */
    qg_memory_free(f.m);
    mem_open(&f, QG_VINDEX_HNSW);
    qg_mem_item *it;
    n = search(&f, (qg_mem_query){.user_id = "usr_a", .collection = "notes", .text = "pine arrays"},
               &it);
    cr_assert_eq(n, 1);
    cr_assert(it[0].score > 0.2f, "dot of unit vectors: %f", it[0].score);
    teardown_fx(&f);
}

/* ---- persistence ---- */

typedef struct snapshot_result {
    size_t n;
    char ids[10][QG_ID_MAX];
    float scores[10];
} snapshot_result;

static void run_queries(fx *f, snapshot_result out[3])
{
    static const char *const qs[] = {"liquidity sweep breakout", "order block retest london",
                                     "momentum spike volume"};
    for (int i = 0; i < 3; i++) {
        qg_mem_item *it;
        size_t n = search(f,
                          (qg_mem_query){.user_id = "usr_a",
                                         .collection = "signals",
                                         .text = qs[i],
                                         .n = 10,
                                         .symbol = "EURUSD"},
                          &it);
        out[i].n = n;
        for (size_t k = 0; k < n; k++) {
            snprintf(out[i].ids[k], QG_ID_MAX, "%s", it[k].id);
            out[i].scores[k] = it[k].score;
        }
    }
}

static void same_results(const snapshot_result a[3], const snapshot_result b[3])
{
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(a[i].n, b[i].n, "query %d", i);
        for (size_t k = 0; k < a[i].n; k++) {
            cr_assert_str_eq(a[i].ids[k], b[i].ids[k], "query %d rank %zu", i, k);
            cr_assert_float_eq(a[i].scores[k], b[i].scores[k], 1e-5);
        }
    }
}

static int64_t mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st)) return -1;
    return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

Test(memory, persistence, .timeout = 120)
{
    fx f;
    setup_fx(&f);
    uint64_t seed = 7;
    char text[256];
    static const char *const syms[] = {"EURUSD", "GBPUSD", "XAUUSD"};
    char first[QG_ID_MAX];
    for (int i = 0; i < 600; i++) {
        salad(&seed, text, sizeof text);
        add(&f,
            &(qg_mem_add){.user_id = i % 4 ? "usr_a" : "usr_b",
                          .collection = "signals",
                          .text = text,
                          .symbol = syms[i % 3]},
            i == 3 ? first : NULL);
    }
    qg_error err = {0};
    cr_assert_eq(qg_memory_forget(f.m, f.c, "usr_a", first, &err), QG_OK); /* a deletion too */
    snapshot_result before[3], after[3];
    run_queries(&f, before);
    cr_assert_eq(before[0].n, 10);

    char path[256];
    snprintf(path, sizeof path, "%s/signals.qgvx", f.snaps);
    /* 1. clean close writes the snapshot; reopen loads it (file untouched) */
    qg_memory_free(f.m);
    int64_t t1 = mtime_ns(path);
    cr_assert(t1 > 0, "a snapshot is written at close");
    usleep(20000);
    mem_open(&f, QG_VINDEX_HNSW);
    cr_assert_eq(mtime_ns(path), t1, "loaded from the snapshot, not rebuilt");
    run_queries(&f, after);
    same_results(before, after);

    /* 2. snapshot deleted: rebuilt from the rows, and a fresh one written */
    qg_memory_free(f.m);
    cr_assert_eq(unlink(path), 0);
    mem_open(&f, QG_VINDEX_HNSW);
    cr_assert(mtime_ns(path) > 0, "the rebuild writes a fresh snapshot");
    run_queries(&f, after);
    same_results(before, after);

    /* 3. corrupt snapshot: a warning, a rebuild, the same answers */
    qg_memory_free(f.m);
    FILE *fp = fopen(path, "r+b");
    cr_assert(fp);
    fseek(fp, 0, SEEK_SET);
    fwrite("garbage!garbage!", 1, 16, fp);
    fclose(fp);
    mem_open(&f, QG_VINDEX_HNSW);
    run_queries(&f, after);
    same_results(before, after);
    qg_vindex *ix = NULL;
    cr_assert_eq(qg_vindex_load(path, &ix, &err), QG_OK, "rewritten after the rebuild: %s",
                 err.msg);
    qg_vindex_free(ix);

    /* 3b. other HNSW settings than the snapshot's: rebuilt with them, and
     * rebuilt again when they go back */
    qg_memory_free(f.m);
    qg_memory_config cfg = {.store = f.store,
                            .snapshot_dir = f.snaps,
                            .index_kind = QG_VINDEX_HNSW,
                            .hnsw_ef_construction = 100};
    cr_assert_eq(qg_memory_open(&cfg, &f.m, &err), QG_OK, "%s", err.msg);
    run_queries(&f, after);
    cr_assert_eq(after[0].n, 10);
    cr_assert_eq(qg_vindex_load(path, &ix, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_vindex_get_params(ix)->ef_construction, 100, "rebuilt with the new setting");
    qg_vindex_free(ix);
    qg_memory_free(f.m);
    mem_open(&f, QG_VINDEX_HNSW);
    cr_assert_eq(qg_vindex_load(path, &ix, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_vindex_get_params(ix)->ef_construction, 200, "rebuilt with the default");
    qg_vindex_free(ix);
    run_queries(&f, after);
    same_results(before, after);

    /* 4. a change the snapshot does not know (rows written behind its back) */
    qg_memory_free(f.m);
    cr_assert_eq(qg_conn_exec(f.c,
                              "DELETE FROM memory_items WHERE seq = (SELECT MAX(seq) FROM "
                              "memory_items WHERE collection = 'signals' AND user_id = 'usr_b')",
                              NULL, 0, NULL, &err),
                 QG_OK);
    mem_open(&f, QG_VINDEX_HNSW);
    size_t cnt = 0;
    cr_assert_eq(qg_memory_index_info(f.m, "signals", NULL, &cnt, NULL), QG_OK);
    cr_assert_eq(cnt, 600 - 1 - 1, "caught up: the deleted row's label left the index");
    run_queries(&f, after);
    same_results(before, after); /* usr_b's item never was in usr_a's results */
    teardown_fx(&f);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp -p '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0);
}

static void add_signals(fx *f, uint64_t *seed, int n, char (*ids)[QG_ID_MAX])
{
    static const char *const syms[] = {"EURUSD", "GBPUSD", "XAUUSD"};
    char text[256];
    for (int i = 0; i < n; i++) {
        salad(seed, text, sizeof text);
        add(f,
            &(qg_mem_add){
                .user_id = "usr_a", .collection = "signals", .text = text, .symbol = syms[i % 3]},
            ids ? ids[i] : NULL);
    }
}

/* After a crash the snapshot is older than the rows: it is loaded and
 * brought up to them (rows added since are indexed, rows deleted since
 * leave the index) instead of rebuilding the whole index; when more than
 * half the items are newer than the snapshot, it is rebuilt. */
Test(memory, stale_snapshot_is_caught_up, .timeout = 120)
{
    fx f;
    setup_fx(&f);
    uint64_t seed = 5;
    static char ids[300][QG_ID_MAX];
    char path[256], at100[256], at300[256];
    snprintf(path, sizeof path, "%s/signals.qgvx", f.snaps);
    snprintf(at100, sizeof at100, "%s/at100.qgvx", f.dir);
    snprintf(at300, sizeof at300, "%s/at300.qgvx", f.dir);
    add_signals(&f, &seed, 100, ids);
    qg_memory_free(f.m); /* a clean close writes the snapshot */
    copy_file(path, at100);
    mem_open(&f, QG_VINDEX_HNSW);
    add_signals(&f, &seed, 200, ids + 100);
    qg_memory_free(f.m);
    copy_file(path, at300);
    mem_open(&f, QG_VINDEX_HNSW);
    add_signals(&f, &seed, 60, NULL);
    qg_error err = {0};
    for (int i = 0; i < 10; i++)
        cr_assert_eq(qg_memory_forget(f.m, f.c, "usr_a", ids[i * 7], &err), QG_OK, "%s", err.msg);
    snapshot_result before[3], after[3];
    run_queries(&f, before);
    cr_assert_eq(before[0].n, 10);
    qg_memory_free(f.m);

    /* As after a crash: the snapshot of 300 items, the rows of 350. */
    copy_file(at300, path);
    int64_t t = mtime_ns(path);
    usleep(20000);
    mem_open(&f, QG_VINDEX_HNSW);
    cr_assert_eq(mtime_ns(path), t, "caught up, not rebuilt (a rebuild writes a fresh snapshot)");
    size_t cnt = 0;
    cr_assert_eq(qg_memory_index_info(f.m, "signals", NULL, &cnt, NULL), QG_OK);
    cr_assert_eq(cnt, 350);
    run_queries(&f, after);
    same_results(before, after);
    qg_memory_free(f.m);

    /* The snapshot of 100 items: 260 of the 350 are newer, so a rebuild. */
    copy_file(at100, path);
    t = mtime_ns(path);
    usleep(20000);
    mem_open(&f, QG_VINDEX_HNSW);
    cr_assert(mtime_ns(path) > t, "rebuilt, and a fresh snapshot written");
    cr_assert_eq(qg_memory_index_info(f.m, "signals", NULL, &cnt, NULL), QG_OK);
    cr_assert_eq(cnt, 350);
    run_queries(&f, after);
    same_results(before, after);
    teardown_fx(&f);
}

/* ---- threads ---- */

typedef struct worker {
    fx *f;
    int id;
    int done;
    qg_status rc;
    char msg[QG_ERROR_MSG_MAX];
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    qg_conn *c = NULL;
    qg_error err = {0};
    qg_arena a;
    qg_arena_init(&a, 0);
    if ((w->rc = qg_store_acquire(w->f->store, &c, &err))) goto out;
    uint64_t seed = 100 + (uint64_t)w->id;
    char text[256];
    for (int i = 0; i < 150 && !w->rc; i++) {
        salad(&seed, text, sizeof text);
        if (w->id < 2) { /* writers: add, and forget every third */
            char id[QG_ID_MAX];
            w->rc = qg_memory_add(w->f->m, c,
                                  &(qg_mem_add){.user_id = "usr_a",
                                                .collection = "signals",
                                                .text = text,
                                                .symbol = w->id ? "EURUSD" : "XAUUSD"},
                                  id, &err);
            if (!w->rc && i % 3 == 0) w->rc = qg_memory_forget(w->f->m, c, "usr_a", id, &err);
        } else { /* readers: every result passes the filter */
            qg_mem_item *it;
            size_t n = 0;
            w->rc = qg_memory_search(w->f->m, c,
                                     &(qg_mem_query){.user_id = "usr_a",
                                                     .collection = "signals",
                                                     .text = text,
                                                     .n = 5,
                                                     .symbol = "XAUUSD"},
                                     &a, &it, &n, &err);
            for (size_t k = 0; k < n && !w->rc; k++)
                if (strcmp(it[k].symbol, "XAUUSD")) w->rc = QG_EINTERNAL;
        }
        w->done++;
    }
out:
    snprintf(w->msg, sizeof w->msg, "%s", err.msg);
    if (c) qg_store_release(w->f->store, c);
    qg_arena_free(&a);
    return NULL;
}

Test(memory, concurrent_writers_and_readers, .timeout = 120)
{
    fx f;
    setup_fx(&f);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.f = &f, .id = i};
        cr_assert_eq(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) cr_assert_eq(w[i].rc, QG_OK, "worker %d: %s", i, w[i].msg);
    size_t cnt = 0;
    cr_assert_eq(qg_memory_index_info(f.m, "signals", NULL, &cnt, NULL), QG_OK);
    cr_assert_eq(cnt, 2 * 100, "150 added, 50 forgotten, by each writer");
    qg_buf b;
    qg_buf_init(&b, 1 << 16);
    cr_assert_eq(qg_memory_render_metrics(f.m, &b), QG_OK);
    cr_assert(strstr(b.data, "qg_memory_items{collection=\"signals\"} 200\n"), "%s", b.data);
    cr_assert(strstr(b.data, "qg_memory_searches_total 300\n"), "%s", b.data);
    qg_buf_free(&b);
    teardown_fx(&f);
}

/* ---- background snapshots ---- */

static void wait_bg_snapshots(qg_memory *m, uint64_t want)
{
    for (int i = 0; i < 1000 && qg_memory_bg_snapshots(m) < want; i++) usleep(10000);
    cr_assert_eq(qg_memory_bg_snapshots(m), want, "background snapshots written");
}

static qg_status take_int(void *ud, const qg_row *r)
{
    *(int64_t *)ud = qg_row_int(r, 0);
    return QG_OK;
}

static int64_t coll_gen(qg_conn *c, const char *col)
{
    int64_t v = -2;
    qg_error err = {0};
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT %s FROM memory_collections WHERE name = 'signals'", col);
    cr_assert_eq(qg_conn_query(c, sql, NULL, 0, take_int, &v, &err), QG_OK, "%s", err.msg);
    return v;
}

/* After QG_MEMORY_SNAPSHOT_CHANGES changes the snapshot is rewritten in the
 * background while the service stays open; a copy of the database and the
 * snapshot taken then (as after a crash: no clean free) loads the snapshot
 * instead of rebuilding, and answers like the original. */
Test(memory, background_snapshot, .timeout = 120)
{
    fx f;
    setup_fx(&f);
    qg_memory_free(f.m);
    qg_error err = {0};
    qg_memory_config cfg = {.store = f.store, .snapshot_dir = f.snaps, .snapshot_changes = 50};
    cr_assert_eq(qg_memory_open(&cfg, &f.m, &err), QG_OK, "%s", err.msg);
    char path[256];
    snprintf(path, sizeof path, "%s/signals.qgvx", f.snaps);
    int64_t g0 = coll_gen(f.c, "generation");
    cr_assert_eq(coll_gen(f.c, "snapshot_gen"), g0);

    uint64_t seed = 11;
    char text[256];
    for (int i = 0; i < 49; i++) {
        salad(&seed, text, sizeof text);
        add(&f, &(qg_mem_add){.user_id = "usr_a", .collection = "signals", .text = text}, NULL);
    }
    usleep(50000);
    cr_assert_eq(qg_memory_bg_snapshots(f.m), 0, "49 changes: not yet");
    cr_assert_eq(coll_gen(f.c, "snapshot_gen"), g0);
    salad(&seed, text, sizeof text);
    add(&f, &(qg_mem_add){.user_id = "usr_a", .collection = "signals", .text = text}, NULL);
    wait_bg_snapshots(f.m, 1);
    cr_assert_eq(coll_gen(f.c, "generation"), g0 + 50);
    cr_assert_eq(coll_gen(f.c, "snapshot_gen"), g0 + 50, "the generation is recorded");
    int64_t t1 = mtime_ns(path);
    cr_assert(t1 > 0, "the snapshot file exists");
    qg_vindex *ix = NULL;
    cr_assert_eq(qg_vindex_load(path, &ix, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_vindex_count(ix), 50);
    qg_vindex_free(ix);

    /* A copy while the service is open: a consistent database file
     * (VACUUM INTO) and the snapshot, then opened elsewhere. */
    fx g;
    memset(&g, 0, sizeof g);
    snprintf(g.dir, sizeof g.dir, "%s/copy", f.dir);
    cr_assert_eq(mkdir(g.dir, 0700), 0);
    snprintf(g.db, sizeof g.db, "sqlite://%s/t.db", g.dir);
    snprintf(g.snaps, sizeof g.snaps, "%s/memory", g.dir);
    cr_assert_eq(mkdir(g.snaps, 0700), 0);
    char sql[512], cmd[1024], gpath[256];
    snprintf(sql, sizeof sql, "VACUUM INTO '%s/t.db'", g.dir);
    cr_assert_eq(qg_conn_exec(f.c, sql, NULL, 0, NULL, &err), QG_OK, "%s", err.msg);
    snprintf(gpath, sizeof gpath, "%s/signals.qgvx", g.snaps);
    snprintf(cmd, sizeof cmd, "cp -p '%s' '%s'", path, gpath);
    cr_assert_eq(system(cmd), 0);
    int64_t tg = mtime_ns(gpath);
    qg_log_set_level(QG_LOG_ERROR);
    cr_assert_eq(qg_store_open(g.db, 4, true, &g.store, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_store_acquire(g.store, &g.c, &err), QG_OK);
    qg_arena_init(&g.a, 0);
    qg_memory_config gcfg = {.store = g.store, .snapshot_dir = g.snaps, .snapshot_changes = -1};
    cr_assert_eq(qg_memory_open(&gcfg, &g.m, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(mtime_ns(gpath), tg, "loaded from the snapshot, not rebuilt");
    size_t cnt = 0;
    cr_assert_eq(qg_memory_index_info(g.m, "signals", NULL, &cnt, NULL), QG_OK);
    cr_assert_eq(cnt, 50);
    salad(&seed, text, sizeof text);
    qg_mem_query q = {.user_id = "usr_a", .collection = "signals", .text = text, .n = 10};
    qg_mem_item *a = NULL, *b = NULL;
    size_t na = search(&f, q, &a), nb = search(&g, q, &b);
    cr_assert_eq(na, 10);
    cr_assert_eq(nb, na);
    for (size_t i = 0; i < na; i++) cr_assert_str_eq(a[i].id, b[i].id);
    qg_memory_free(g.m);
    qg_arena_free(&g.a);
    qg_store_release(g.store, g.c);
    qg_store_close(g.store);

    /* 50 more changes (forgets count too): the snapshot is rewritten. */
    usleep(20000);
    char ids[5][QG_ID_MAX];
    for (int i = 0; i < 45; i++) {
        salad(&seed, text, sizeof text);
        add(&f, &(qg_mem_add){.user_id = "usr_a", .collection = "signals", .text = text},
            i < 5 ? ids[i] : NULL);
    }
    for (int i = 0; i < 5; i++)
        cr_assert_eq(qg_memory_forget(f.m, f.c, "usr_a", ids[i], &err), QG_OK, "%s", err.msg);
    wait_bg_snapshots(f.m, 2);
    cr_assert(mtime_ns(path) > t1, "rewritten");
    cr_assert_eq(coll_gen(f.c, "snapshot_gen"), g0 + 100);
    cr_assert_eq(qg_vindex_load(path, &ix, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_vindex_count(ix), 90);
    qg_vindex_free(ix);
    teardown_fx(&f);
}

static qg_status count_cb(void *ud, const qg_row *row)
{
    *(int64_t *)ud = qg_row_int(row, 0);
    return QG_OK;
}

/* The batched add: nothing is found before finish; a committed write is
 * found (row and index) after it, in search order with items added the
 * usual way; a finish without commit leaves neither row nor index entry. */
Test(memory, batched_add_prepare_write_finish)
{
    fx f;
    setup_fx(&f);
    qg_error err = {0};
    char plain[QG_ID_MAX], id[QG_ID_MAX], gone[QG_ID_MAX];
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .collection = "analyses",
                      .kind = QG_MEM_LONG,
                      .text = "silver swept the london low and reversed",
                      .symbol = "XAGUSD"},
        plain);
    qg_mem_pending *pa = NULL;
    qg_mem_add in = {.user_id = "usr_a",
                     .collection = "analyses",
                     .kind = QG_MEM_LONG,
                     .text = "gold swept the asian low and rallied into new york",
                     .symbol = "XAUUSD",
                     .meta_json = "{\"signal_id\":\"sig_1\"}"};
    cr_assert_eq(qg_memory_add_prepare(f.m, &in, &pa, id, &err), QG_OK, "%s", err.msg);
    cr_assert(!strncmp(id, "mem_", 4), "%s", id);
    qg_mem_query q = {.user_id = "usr_a", .collection = "analyses", .text = "gold asian low"};
    qg_mem_item *items = NULL;
    cr_assert_eq(search(&f, q, &items), 1, "not searchable before finish");
    cr_assert_eq(qg_conn_begin(f.c, &err), QG_OK);
    cr_assert_eq(qg_memory_add_write(pa, f.c, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_conn_commit(f.c, &err), QG_OK);
    qg_memory_add_finish(pa, true);
    size_t n = search(&f, q, &items);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(items[0].id, id, "the gold item ranks first");
    cr_assert_str_eq(items[0].symbol, "XAUUSD");
    cr_assert_str_eq(items[0].meta_json, "{\"signal_id\":\"sig_1\"}");
    cr_assert_str_eq(items[1].id, plain);
    /* prepared, never written: dropped */
    in.text = "gold again";
    cr_assert_eq(qg_memory_add_prepare(f.m, &in, &pa, gone, &err), QG_OK, "%s", err.msg);
    qg_memory_add_finish(pa, false);
    cr_assert_eq(search(&f, q, &items), 2);
    int64_t rows = -1;
    qg_val v[] = {QG_VTEXT(gone)};
    cr_assert_eq(qg_conn_query(f.c, "SELECT COUNT(*) FROM memory_items WHERE id = ?", v, 1,
                               count_cb, &rows, &err),
                 QG_OK);
    cr_assert_eq(rows, 0);
    teardown_fx(&f);
}

static uint64_t metric(qg_memory *m, const char *name)
{
    qg_buf b;
    qg_buf_init(&b, 1 << 20);
    cr_assert_eq(qg_memory_render_metrics(m, &b), QG_OK);
    char want[96];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(b.data, want);
    cr_assert_not_null(at, "%s in %s", name, b.data);
    uint64_t v = strtoull(at + strlen(want), NULL, 10);
    qg_buf_free(&b);
    return v;
}

static void same_item(const qg_mem_item *x, const qg_mem_item *y)
{
    cr_assert_str_eq(x->id, y->id);
    cr_assert_str_eq(x->collection, y->collection);
    cr_assert_eq(x->kind, y->kind);
    cr_assert_str_eq(x->text, y->text);
    cr_assert_eq(!x->symbol, !y->symbol);
    if (x->symbol) cr_assert_str_eq(x->symbol, y->symbol);
    cr_assert_eq(!x->session, !y->session);
    if (x->session) cr_assert_str_eq(x->session, y->session);
    cr_assert_eq(!x->timeframe, !y->timeframe);
    cr_assert_eq(!x->signal_type, !y->signal_type);
    cr_assert_eq(x->ts, y->ts);
    cr_assert_str_eq(x->meta_json, y->meta_json);
    cr_assert_eq(x->created_at, y->created_at);
    cr_assert_eq(x->expires_at, y->expires_at);
    cr_assert_float_eq(x->score, y->score, 1e-6);
}

/* Searches read their hits' rows from the row cache (what the service
 * wrote or read last): the same items, field for field, as with the cache
 * off; a row forgotten by a bulk forget is never served again. */
Test(memory, the_row_cache_serves_what_the_database_holds)
{
    fx f;
    setup_fx(&f);
    char ids[3][QG_ID_MAX];
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .collection = "analyses",
                      .kind = QG_MEM_LONG,
                      .text = "gold swept the asian low and rallied",
                      .symbol = "XAUUSD",
                      .session = "london",
                      .ts = T0 - 5,
                      .meta_json = "{\"signal_id\":\"sig_1\"}",
                      .now_ms = T0},
        ids[0]);
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .collection = "analyses",
                      .kind = QG_MEM_LONG,
                      .text = "gold swept the asian high and sold off",
                      .now_ms = T0 + 1},
        ids[1]);
    add(&f,
        &(qg_mem_add){.user_id = "usr_a",
                      .kind = QG_MEM_SHORT,
                      .text = "gold swept the weekly low",
                      .now_ms = T0 + 2},
        ids[2]);
    qg_mem_query q = {
        .user_id = "usr_a", .text = "gold swept the asian low", .n = 3, .now_ms = T0 + 3};
    qg_mem_item *cached = NULL, *read = NULL;
    uint64_t hits0 = metric(f.m, "qg_memory_row_cache_hits_total");
    size_t n = search(&f, q, &cached);
    cr_assert_eq(n, 3);
    cr_assert_eq(metric(f.m, "qg_memory_row_cache_hits_total"), hits0 + 3, "added rows are cached");

    qg_memory_free(f.m);
    qg_error err = {0};
    qg_memory_config cfg = {.store = f.store, .snapshot_dir = f.snaps, .row_cache = -1};
    cr_assert_eq(qg_memory_open(&cfg, &f.m, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(search(&f, q, &read), 3);
    for (size_t i = 0; i < n; i++) same_item(&cached[i], &read[i]);
    cr_assert_eq(metric(f.m, "qg_memory_row_cache_hits_total"), 0, "no cache");

    /* A fresh cache fills from what searches read, then serves them. */
    qg_memory_free(f.m);
    mem_open(&f, QG_VINDEX_HNSW);
    cr_assert_eq(search(&f, q, &read), 3);
    cr_assert_eq(metric(f.m, "qg_memory_row_cache_misses_total"), 3);
    cr_assert_eq(search(&f, q, &read), 3);
    cr_assert_eq(metric(f.m, "qg_memory_row_cache_hits_total"), 3);
    for (size_t i = 0; i < n; i++) same_item(&cached[i], &read[i]);

    int64_t removed = 0;
    qg_mem_forget_where fw = {.user_id = "usr_a", .symbol = "XAUUSD"};
    cr_assert_eq(qg_memory_forget_where(f.m, f.c, &fw, &removed, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(removed, 1);
    n = search(&f, q, &read);
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++) cr_assert_str_neq(read[i].id, ids[0]);
    teardown_fx(&f);
}
