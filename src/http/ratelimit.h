/*
 * ratelimit.h - token buckets per (class, key), shared by all threads.
 *
 * Each route class (http.h qg_rl_class) has a rate (tokens per second) and a
 * burst (bucket size), the same for its per-address and per-user buckets;
 * keys are "a:<address>" or "u:<user id>". A separate limiter counts failed
 * logins per account: after max_fails within window_s further attempts are
 * refused until the oldest failure leaves the window.
 *
 * The table is a fixed number of mutex-protected shards of open hash maps;
 * idle full buckets are dropped when a shard fills, so memory stays bounded
 * under an address-spraying client. Times are passed in (ms) so tests can
 * drive the clock.
 */
#ifndef QG_RATELIMIT_H
#define QG_RATELIMIT_H

#include "http/http.h"

#include <quantgate/status.h>

#include <stdbool.h>
#include <stdint.h>

typedef struct qg_ratelimit qg_ratelimit;

typedef struct qg_rl_rule {
    double rate;  /* tokens added per second */
    double burst; /* bucket size */
} qg_rl_rule;

typedef struct qg_rl_config {
    qg_rl_rule rule[QG_RL__COUNT]; /* index QG_RL_NONE is ignored */
    int login_max_fails;           /* default 5 */
    int64_t login_window_ms;       /* default 15 min */
} qg_rl_config;

/* The defaults: auth 5/s burst 20, read 50/s burst 200, write 20/s burst 60,
 * heavy 1/s burst 10, login 5 fails per 15 minutes. */
void qg_rl_config_default(qg_rl_config *c);
/* Parses QG_RATE_LIMITS-style overrides into c: "auth=5/s:20,read=100/s:300,
 * heavy=30/m:10" (rate per s, m or h, then ':' burst). QG_EINVAL naming the
 * item and the reason. "off" is handled by the caller (no limiter at all). */
qg_status qg_rl_config_parse(qg_rl_config *c, const char *spec, qg_error *err);

qg_ratelimit *qg_ratelimit_new(const qg_rl_config *c);
void qg_ratelimit_free(qg_ratelimit *rl);

/* Takes one token from key's bucket of class cls. True when allowed; when
 * refused, *retry_after_s (may be NULL) gets whole seconds until a token is
 * there (at least 1). */
bool qg_ratelimit_take(qg_ratelimit *rl, qg_rl_class cls, const char *key, int64_t now_ms,
                       int *retry_after_s);

/* Login throttle per account (normalised email). check: false while the
 * account is locked, with *retry_after_s set. fail records a failure;
 * success clears the account's failures. */
bool qg_ratelimit_login_check(qg_ratelimit *rl, const char *account, int64_t now_ms,
                              int *retry_after_s);
void qg_ratelimit_login_fail(qg_ratelimit *rl, const char *account, int64_t now_ms);
void qg_ratelimit_login_success(qg_ratelimit *rl, const char *account);

#endif
