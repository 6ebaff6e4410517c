/*
 * test_ratelimit.c - token buckets (burst, refusal, Retry-After, refill,
 * independence of keys and classes, bounded memory under a million keys,
 * exactness under threads), the QG_RATE_LIMITS parser and the login
 * throttle. The clock is passed in, so time is simulated.
 */
#include <criterion/criterion.h>

#include "http/ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qg_ratelimit *rl_with(double rate, double burst)
{
    qg_rl_config c;
    qg_rl_config_default(&c);
    c.rule[QG_RL_READ] = (qg_rl_rule){rate, burst};
    qg_ratelimit *rl = qg_ratelimit_new(&c);
    cr_assert_not_null(rl);
    return rl;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * 4;
}

Test(ratelimit, defaults)
{
    qg_rl_config c;
    qg_rl_config_default(&c);
    cr_assert_float_eq(c.rule[QG_RL_AUTH].rate, 5, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_AUTH].burst, 20, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_READ].rate, 50, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_READ].burst, 200, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_WRITE].rate, 20, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_WRITE].burst, 60, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_HEAVY].rate, 1, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_HEAVY].burst, 10, 1e-9);
    cr_assert_eq(c.login_max_fails, 5);
    cr_assert_eq(c.login_window_ms, 15 * 60 * 1000);
}

Test(ratelimit, burst_then_refused_with_retry_after)
{
    qg_ratelimit *rl = rl_with(2, 5); /* 2/s, burst 5 */
    int64_t t = 1000000;
    for (int i = 0; i < 5; i++) cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "a:1.2.3.4", t, NULL));
    int ra = -1;
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_READ, "a:1.2.3.4", t, &ra));
    cr_assert_eq(ra, 1, "empty bucket at 2/s: one token in 0.5 s -> 1, got %d", ra);
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_READ, "a:1.2.3.4", t, NULL)); /* NULL allowed */
    qg_ratelimit_free(rl);

    /* slow rate: 6/m -> a token every 10 s */
    qg_rl_config c;
    qg_rl_config_default(&c);
    c.rule[QG_RL_HEAVY] = (qg_rl_rule){0.1, 2};
    rl = qg_ratelimit_new(&c);
    cr_assert(qg_ratelimit_take(rl, QG_RL_HEAVY, "u:7", t, NULL));
    cr_assert(qg_ratelimit_take(rl, QG_RL_HEAVY, "u:7", t, NULL));
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_HEAVY, "u:7", t, &ra));
    cr_assert_eq(ra, 10);
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_HEAVY, "u:7", t + 2500, &ra));
    cr_assert_eq(ra, 8, "7.5 s left rounds up to 8, got %d", ra);
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_HEAVY, "u:7", t + 9999, &ra));
    cr_assert_eq(ra, 1);
    cr_assert(qg_ratelimit_take(rl, QG_RL_HEAVY, "u:7", t + 10000, NULL));
    qg_ratelimit_free(rl);
}

Test(ratelimit, continuous_refill_capped_at_burst)
{
    qg_ratelimit *rl = rl_with(10, 4); /* a token every 100 ms */
    int64_t t = 5000;
    for (int i = 0; i < 4; i++) cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "k", t, NULL));
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_READ, "k", t + 50, NULL));
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "k", t + 100, NULL));
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_READ, "k", t + 150, NULL));
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "k", t + 200, NULL));
    /* an hour later the bucket holds burst (4), not 36000 */
    int64_t later = t + 3600 * 1000;
    int ok = 0;
    for (int i = 0; i < 100; i++) ok += qg_ratelimit_take(rl, QG_RL_READ, "k", later, NULL);
    cr_assert_eq(ok, 4);
    /* a clock stepping back adds nothing and does not break the bucket */
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_READ, "k", later - 60000, NULL));
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "k", later + 100, NULL));
    qg_ratelimit_free(rl);
}

Test(ratelimit, keys_and_classes_are_independent)
{
    qg_rl_config c;
    qg_rl_config_default(&c);
    c.rule[QG_RL_READ] = (qg_rl_rule){1, 2};
    c.rule[QG_RL_WRITE] = (qg_rl_rule){1, 3};
    qg_ratelimit *rl = qg_ratelimit_new(&c);
    int64_t t = 42;
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "a:10.0.0.1", t, NULL));
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "a:10.0.0.1", t, NULL));
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_READ, "a:10.0.0.1", t, NULL));
    /* other key, same class */
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "a:10.0.0.2", t, NULL));
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "u:10.0.0.1", t, NULL));
    /* same key, other class, its own burst */
    for (int i = 0; i < 3; i++)
        cr_assert(qg_ratelimit_take(rl, QG_RL_WRITE, "a:10.0.0.1", t, NULL));
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_WRITE, "a:10.0.0.1", t, NULL));
    /* QG_RL_NONE is never limited */
    for (int i = 0; i < 1000; i++)
        cr_assert(qg_ratelimit_take(rl, QG_RL_NONE, "a:10.0.0.1", t, NULL));
    /* long keys (beyond the slot) differing only at the end stay apart */
    char k1[300], k2[300];
    memset(k1, 'x', sizeof(k1) - 1);
    k1[sizeof(k1) - 1] = '\0';
    memcpy(k2, k1, sizeof(k1));
    k2[sizeof(k2) - 2] = 'y';
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, k1, t, NULL));
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, k1, t, NULL));
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_READ, k1, t, NULL));
    cr_assert(qg_ratelimit_take(rl, QG_RL_READ, k2, t, NULL));
    qg_ratelimit_free(rl);
}

Test(ratelimit, parser_accepts)
{
    qg_rl_config c;
    qg_rl_config_default(&c);
    qg_error e = {0};
    cr_assert_eq(qg_rl_config_parse(&c, "auth=5/s:20,read=100/s:300,heavy=30/m:10", &e), QG_OK,
                 "%s", e.msg);
    cr_assert_float_eq(c.rule[QG_RL_READ].rate, 100, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_READ].burst, 300, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_HEAVY].rate, 0.5, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_HEAVY].burst, 10, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_WRITE].rate, 20, 1e-9, "untouched class keeps its default");
    cr_assert_eq(qg_rl_config_parse(&c, " write = 3600/h : 7 , read=2.5/s", &e), QG_OK, "%s",
                 e.msg);
    cr_assert_float_eq(c.rule[QG_RL_WRITE].rate, 1, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_WRITE].burst, 7, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_READ].rate, 2.5, 1e-9);
    cr_assert_float_eq(c.rule[QG_RL_READ].burst, 300, 1e-9, "no burst given: kept");
    cr_assert_eq(qg_rl_config_parse(&c, "", &e), QG_OK);
}

static void expect_reject(const char *spec, const char *want)
{
    qg_rl_config c, before;
    qg_rl_config_default(&c);
    before = c;
    qg_error e = {0};
    cr_assert_eq(qg_rl_config_parse(&c, spec, &e), QG_EINVAL, "'%s' accepted", spec);
    cr_assert(strstr(e.msg, want), "'%s': message '%s' lacks '%s'", spec, e.msg, want);
    cr_assert(memcmp(&c, &before, sizeof(c)) == 0, "'%s': config changed on error", spec);
}

Test(ratelimit, parser_rejects_with_reasons)
{
    expect_reject("read=abc",
                  "QG_RATE_LIMITS: item 'read=abc': rate must be like 50/s, 300/m or 1000/h");
    expect_reject("read=50/d:10", "item 'read=50/d:10': rate must be like");
    expect_reject("read=/s:10", "rate must be like");
    expect_reject("read=-5/s:10", "rate must be like");
    expect_reject("read=inf/s", "rate must be like");
    expect_reject("read=0/s:10", "rate must be above 0");
    expect_reject("read=5/s:0", "item 'read=5/s:0': burst must be a whole number");
    expect_reject("read=5/s:1.5", "burst must be a whole number");
    expect_reject("read=5/s:", "burst must be a whole number");
    expect_reject("auth=5/s:20,reads=5/s:10", "item 'reads=5/s:10': unknown class 'reads'");
    expect_reject("none=5/s:10", "unknown class 'none'");
    expect_reject("off", "item 'off': expected class=rate:burst");
    expect_reject("auth=5/s:20,,read=1/s:2", "empty item");
    expect_reject("auth=5/s:20,", "empty item");
}

Test(ratelimit, login_lock_window_and_success_reset)
{
    qg_rl_config c;
    qg_rl_config_default(&c);
    c.login_max_fails = 3;
    c.login_window_ms = 60000;
    qg_ratelimit *rl = qg_ratelimit_new(&c);
    const char *acct = "alice@example.com";
    int64_t t = 1000000;
    int ra = -1;
    cr_assert(qg_ratelimit_login_check(rl, acct, t, &ra));
    qg_ratelimit_login_fail(rl, acct, t);
    qg_ratelimit_login_fail(rl, acct, t + 10000);
    cr_assert(qg_ratelimit_login_check(rl, acct, t + 10000, &ra));
    qg_ratelimit_login_fail(rl, acct, t + 20000);
    cr_assert_not(qg_ratelimit_login_check(rl, acct, t + 20000, &ra));
    cr_assert_eq(ra, 40, "oldest failure leaves the window in 40 s, got %d", ra);
    cr_assert_not(qg_ratelimit_login_check(rl, acct, t + 59500, &ra));
    cr_assert_eq(ra, 1);
    /* other accounts are not affected */
    cr_assert(qg_ratelimit_login_check(rl, "bob@example.com", t + 20000, NULL));
    /* the oldest leaves the window: open again, one more failure locks again */
    cr_assert(qg_ratelimit_login_check(rl, acct, t + 60000, NULL));
    qg_ratelimit_login_fail(rl, acct, t + 61000);
    cr_assert_not(qg_ratelimit_login_check(rl, acct, t + 61000, &ra));
    cr_assert_eq(ra, 9, "failure at +10 s leaves at +70 s, got %d", ra);
    /* success clears the account */
    qg_ratelimit_login_success(rl, acct);
    cr_assert(qg_ratelimit_login_check(rl, acct, t + 61000, NULL));
    qg_ratelimit_login_fail(rl, acct, t + 62000);
    qg_ratelimit_login_fail(rl, acct, t + 62000);
    cr_assert(qg_ratelimit_login_check(rl, acct, t + 62000, NULL));
    qg_ratelimit_login_fail(rl, acct, t + 62000);
    cr_assert_not(qg_ratelimit_login_check(rl, acct, t + 62000, &ra));
    cr_assert_eq(ra, 60);
    qg_ratelimit_login_success(rl, "nobody@example.com"); /* unknown account: no-op */
    qg_ratelimit_free(rl);
}

Test(ratelimit, million_keys_bounded_memory, .timeout = 120)
{
    qg_ratelimit *rl = rl_with(1, 3);
    char key[64];
    /* warm up: fill every shard once so the tables' pages are touched */
    for (int i = 0; i < 200000; i++) {
        snprintf(key, sizeof(key), "a:warm-%d", i);
        qg_ratelimit_take(rl, QG_RL_READ, key, 1000, NULL);
    }
    long before = rss_kb();
    int64_t t = 2000;
    int abuser_ok = 0, refused = 0;
    for (int i = 0; i < 1000000; i++) {
        snprintf(key, sizeof(key), "a:10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        refused += !qg_ratelimit_take(rl, QG_RL_READ, key, t + i / 1000, NULL);
        /* 50 abusers in the middle of the spray are recent, so neither
         * eviction nor the back-shifting of deletions may lose their
         * buckets: each gets its burst (3) plus at most one refill */
        if (i % 100 == 0) {
            snprintf(key, sizeof(key), "a:abuser-%d", (i / 100) % 50);
            abuser_ok += qg_ratelimit_take(rl, QG_RL_READ, key, t + i / 1000, NULL);
        }
    }
    cr_assert_eq(refused, 0, "a new key was refused");
    /* the spray spans one second (1 ms per 1000 keys) */
    cr_assert_leq(abuser_ok, 50 * 4, "an abuser's bucket was reset: %d allowed", abuser_ok);
    cr_assert_geq(abuser_ok, 50 * 3, "abusers got %d", abuser_ok);
    long after = rss_kb();
    cr_assert_lt(after - before, 8 * 1024, "RSS grew by %ld kB", after - before);
    /* still works: a fresh key gets its burst and then is refused */
    int64_t now = t + 2000;
    for (int i = 0; i < 3; i++) cr_assert(qg_ratelimit_take(rl, QG_RL_READ, "u:fresh", now, NULL));
    cr_assert_not(qg_ratelimit_take(rl, QG_RL_READ, "u:fresh", now, NULL));
    /* long after the spray every old bucket has refilled, so the idle sweep
     * makes room for new keys */
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "a:late-%d", i);
        cr_assert(qg_ratelimit_take(rl, QG_RL_READ, key, now + 10000, NULL));
    }
    qg_ratelimit_free(rl);
}

/* Drained buckets that refill only every 1000 s, touched every round while
 * a spray of new keys forces constant least-recently-used eviction: any of
 * them that the table lost (evicted, or made unreachable by a deletion)
 * would come back full and let a request through. */
Test(ratelimit, eviction_never_loses_recent_buckets, .timeout = 120)
{
    qg_rl_config c;
    qg_rl_config_default(&c);
    c.rule[QG_RL_HEAVY] = (qg_rl_rule){0.001, 1};
    qg_ratelimit *rl = qg_ratelimit_new(&c);
    char key[64];
    int leaked = 0, refused_new = 0;
    /* fill the table first, so the tracked keys land in long probe runs */
    for (int j = 0; j < 200000; j++) {
        snprintf(key, sizeof(key), "a:fill-%d", j);
        qg_ratelimit_take(rl, QG_RL_HEAVY, key, 9000, NULL);
    }
    for (int round = 0; round < 300; round++) {
        int64_t now = 10000 + round;
        for (int j = 0; j < 3000; j++) {
            snprintf(key, sizeof(key), "u:tracked-%d", j);
            bool ok = qg_ratelimit_take(rl, QG_RL_HEAVY, key, now, NULL);
            if (round > 0) leaked += ok;
        }
        for (int j = 0; j < 3000; j++) {
            snprintf(key, sizeof(key), "a:spray-%d-%d", round, j);
            refused_new += !qg_ratelimit_take(rl, QG_RL_HEAVY, key, now, NULL);
        }
    }
    cr_assert_eq(leaked, 0, "%d takes on drained buckets were allowed", leaked);
    cr_assert_eq(refused_new, 0);
    qg_ratelimit_free(rl);
}

typedef struct hammer_arg {
    qg_ratelimit *rl;
    atomic_int *granted;
} hammer_arg;

static void *hammer(void *p)
{
    hammer_arg *a = p;
    for (int i = 0; i < 20000; i++) {
        if (qg_ratelimit_take(a->rl, QG_RL_READ, "u:shared", 777, NULL))
            atomic_fetch_add(a->granted, 1);
    }
    return NULL;
}

Test(ratelimit, four_threads_take_exactly_burst)
{
    qg_ratelimit *rl = rl_with(100, 1000);
    atomic_int granted = 0;
    hammer_arg a = {rl, &granted};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, hammer, &a);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&granted), 1000);
    qg_ratelimit_free(rl);
}
