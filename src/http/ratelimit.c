/*
 * ratelimit.c - token buckets per (class, key) and the login-failure
 * throttle, shared by every worker thread.
 *
 * Both live in fixed-size tables: a fixed number of shards, each a mutex and
 * an open-addressing (linear probing) hash map of fixed capacity whose slots
 * hold a copy of the key (keys too long for the slot keep a prefix and are
 * told apart by their 64-bit hash). Nothing is allocated after
 * qg_ratelimit_new, so an address-spraying client cannot grow memory: when a
 * shard reaches its load limit, entries that are idle (a bucket that has
 * refilled to its burst, an account whose failures all left the window) are
 * dropped first, since dropping them loses nothing; if that frees too little,
 * the least recently used entries go, down to 7/8 of the limit so the cost
 * of a sweep is spread over many inserts. Deletion shifts later entries of
 * the probe run back, so the table never needs tombstones.
 *
 * The hash is seeded at random per limiter, so a client cannot aim many keys
 * at one shard. Buckets refill continuously: tokens += elapsed * rate, capped
 * at the burst; a clock that goes backwards adds nothing.
 */
#include "http/ratelimit.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define RL_SHARDS          64
#define RL_SHARD_CAP       2048 /* slots per shard, a power of two */
#define RL_LOGIN_SHARDS    16
#define RL_LOGIN_CAP       1024
#define RL_KEY_SLOT        88 /* key bytes kept per entry, NUL included */
#define RL_LOGIN_MAX_FAILS 16 /* cap on login_max_fails: the ring size */
#define RL_RETRY_MAX       (7 * 86400)

/* The part every entry starts with. */
typedef struct rl_head {
    uint64_t hash;
    int64_t last_use; /* ms, for the least-recently-used cut */
    uint8_t used;
    uint8_t cls;
    uint8_t truncated; /* key longer than the slot: only a prefix is kept */
    char key[RL_KEY_SLOT];
} rl_head;

typedef struct rl_bucket {
    rl_head h;
    double tokens;
    int64_t last_ms; /* time tokens was computed at */
} rl_bucket;

typedef struct rl_login {
    rl_head h;
    int n;     /* failures kept, <= max_fails */
    int first; /* ring index of the oldest */
    int64_t ts[RL_LOGIN_MAX_FAILS];
} rl_login;

typedef bool (*rl_idle_fn)(const qg_ratelimit *rl, const rl_head *h, int64_t now_ms);

typedef struct rl_shard {
    pthread_mutex_t mu;
    unsigned char *slots; /* cap entries of esz bytes */
    int64_t *scratch;     /* cap last-use times, for the LRU cut */
    uint32_t count;
} rl_shard;

typedef struct rl_table {
    rl_shard *shard;
    uint32_t nshards;
    uint32_t cap;      /* slots per shard */
    uint32_t max_load; /* entries per shard before eviction */
    size_t esz;
    rl_idle_fn idle;
} rl_table;

struct qg_ratelimit {
    qg_rl_config cfg;
    uint64_t seed;
    rl_table buckets;
    rl_table logins;
};

/* ---- configuration ---- */

static const char *const rl_class_names[QG_RL__COUNT] = {"none", "auth", "read", "write", "heavy"};

void qg_rl_config_default(qg_rl_config *c)
{
    memset(c, 0, sizeof(*c));
    c->rule[QG_RL_AUTH] = (qg_rl_rule){5, 20};
    c->rule[QG_RL_READ] = (qg_rl_rule){50, 200};
    c->rule[QG_RL_WRITE] = (qg_rl_rule){20, 60};
    c->rule[QG_RL_HEAVY] = (qg_rl_rule){1, 10};
    c->login_max_fails = 5;
    c->login_window_ms = 15 * 60 * 1000;
}

/* Plain decimal number ("12", "0.5") spanning exactly [s, e); no sign,
 * exponent, hex, inf or nan, which strtod would take. */
static bool rl_parse_decimal(const char *s, const char *e, double *out)
{
    bool digits = false, dot = false;
    for (const char *p = s; p < e; p++) {
        if (isdigit((unsigned char)*p))
            digits = true;
        else if (*p == '.' && !dot)
            dot = true;
        else
            return false;
    }
    if (!digits || e - s > 30) return false;
    char tmp[32];
    memcpy(tmp, s, (size_t)(e - s));
    tmp[e - s] = '\0';
    *out = strtod(tmp, NULL);
    return isfinite(*out);
}

static const char *rl_trim_start(const char *s, const char *e)
{
    while (s < e && isspace((unsigned char)*s)) s++;
    return s;
}

static const char *rl_trim_end(const char *s, const char *e)
{
    while (e > s && isspace((unsigned char)e[-1])) e--;
    return e;
}

/* One "class=rate/unit[:burst]" item in [s, e). */
static qg_status rl_parse_item(qg_rl_config *c, const char *s, const char *e, qg_error *err)
{
    int n = (int)(e - s);
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (!eq)
        return qg_error_set(err, QG_EINVAL,
                            "QG_RATE_LIMITS: item '%.*s': expected class=rate:burst, e.g. "
                            "read=50/s:200",
                            n > 80 ? 80 : n, s);
    const char *ne = rl_trim_end(s, eq);
    int cls = -1;
    for (int i = QG_RL_AUTH; i < QG_RL__COUNT; i++) {
        if ((size_t)(ne - s) == strlen(rl_class_names[i]) &&
            memcmp(s, rl_class_names[i], (size_t)(ne - s)) == 0)
            cls = i;
    }
    if (cls < 0)
        return qg_error_set(err, QG_EINVAL,
                            "QG_RATE_LIMITS: item '%.*s': unknown class '%.*s' (expected auth, "
                            "read, write or heavy)",
                            n > 80 ? 80 : n, s, (int)(ne - s) > 40 ? 40 : (int)(ne - s), s);

    const char *v = rl_trim_start(eq + 1, e);
    /* v <= e always; the explicit 0 keeps GCC's range analysis from seeing
     * a negative length */
    size_t vlen = v < e ? (size_t)(e - v) : 0;
    const char *colon = memchr(v, ':', vlen);
    const char *rate_end = rl_trim_end(v, colon ? colon : e);
    const char *slash = memchr(v, '/', rate_end > v ? (size_t)(rate_end - v) : 0);
    double num = 0, per = 0;
    if (slash && rate_end - slash == 2) {
        per = slash[1] == 's' ? 1 : slash[1] == 'm' ? 60 : slash[1] == 'h' ? 3600 : 0;
    }
    if (!slash || per == 0 || !rl_parse_decimal(v, rl_trim_end(v, slash), &num))
        return qg_error_set(err, QG_EINVAL,
                            "QG_RATE_LIMITS: item '%.*s': rate must be like 50/s, 300/m or "
                            "1000/h",
                            n > 80 ? 80 : n, s);
    double rate = num / per;
    if (!(rate > 0) || rate > 1e6)
        return qg_error_set(err, QG_EINVAL,
                            "QG_RATE_LIMITS: item '%.*s': rate must be above 0 and at most "
                            "1000000/s",
                            n > 80 ? 80 : n, s);

    double burst = c->rule[cls].burst;
    if (colon) {
        const char *b = rl_trim_start(colon + 1, e);
        bool whole = b < e;
        for (const char *p = b; p < e; p++) whole = whole && isdigit((unsigned char)*p);
        if (!whole || !rl_parse_decimal(b, e, &burst) || burst < 1 || burst > 1e6)
            return qg_error_set(err, QG_EINVAL,
                                "QG_RATE_LIMITS: item '%.*s': burst must be a whole number from "
                                "1 to 1000000",
                                n > 80 ? 80 : n, s);
    }
    if (burst < 1) burst = 1;
    c->rule[cls].rate = rate;
    c->rule[cls].burst = burst;
    return QG_OK;
}

qg_status qg_rl_config_parse(qg_rl_config *c, const char *spec, qg_error *err)
{
    /* Parse into a copy so a bad item leaves c as it was. */
    qg_rl_config tmp = *c;
    const char *p = spec ? spec : "";
    const char *end = p + strlen(p);
    if (rl_trim_start(p, end) == end) return QG_OK;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *ie = comma ? comma : end;
        const char *s = rl_trim_start(p, ie);
        const char *e = rl_trim_end(s, ie);
        if (s == e)
            return qg_error_set(err, QG_EINVAL,
                                "QG_RATE_LIMITS: empty item (two commas, or a comma at an end)");
        qg_status rc = rl_parse_item(&tmp, s, e, err);
        if (rc) return rc;
        if (!comma) break;
        p = comma + 1;
    }
    *c = tmp;
    return QG_OK;
}

/* ---- the sharded table ---- */

static uint64_t rl_hash(uint64_t seed, int cls, const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    h = (h ^ (uint64_t)(cls + 1)) * 0x100000001b3ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
    /* splitmix64 finaliser: FNV's high bits (the shard) are weak alone */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static rl_head *rl_slot(const rl_table *t, const rl_shard *sh, uint32_t i)
{
    return (rl_head *)(void *)(sh->slots + (size_t)i * t->esz);
}

static rl_shard *rl_shard_of(const rl_table *t, uint64_t hash)
{
    return &t->shard[(hash >> 40) % t->nshards];
}

static bool rl_match(const rl_head *h, uint64_t hash, int cls, const char *key, size_t len)
{
    if (h->hash != hash || h->cls != cls) return false;
    if (len >= RL_KEY_SLOT) return h->truncated && memcmp(h->key, key, RL_KEY_SLOT - 1) == 0;
    return !h->truncated && memcmp(h->key, key, len + 1) == 0;
}

static rl_head *rl_find(const rl_table *t, rl_shard *sh, uint64_t hash, int cls, const char *key,
                        size_t len)
{
    uint32_t mask = t->cap - 1;
    for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask) {
        rl_head *h = rl_slot(t, sh, i);
        if (!h->used) return NULL;
        if (rl_match(h, hash, cls, key, len)) return h;
    }
}

/* Removes slot i, shifting later members of its probe run back into the
 * gap so lookups never stop early. */
static void rl_delete_at(const rl_table *t, rl_shard *sh, uint32_t i)
{
    uint32_t mask = t->cap - 1;
    uint32_t j = i;
    for (;;) {
        rl_slot(t, sh, i)->used = 0;
        for (;;) {
            j = (j + 1) & mask;
            rl_head *h = rl_slot(t, sh, j);
            if (!h->used) {
                sh->count--;
                return;
            }
            uint32_t home = (uint32_t)h->hash & mask;
            /* the entry at j may move to i unless its home lies in (i, j] */
            bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) break;
        }
        memcpy(rl_slot(t, sh, i), rl_slot(t, sh, j), t->esz);
        i = j;
    }
}

/* The k-th smallest of a[0..n) (0-based), reordering a; quickselect, so
 * no allocation under the shard lock (glibc's qsort may malloc). */
static int64_t rl_select(int64_t *a, uint32_t n, uint32_t k)
{
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t pivot = a[lo + (hi - lo) / 2];
        uint32_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                int64_t tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* Deletes every entry for which drop() holds. A deletion pulls later entries
 * back into slot i, so i is examined again; an entry pulled across the wrap
 * may be examined twice, which is harmless. */
static void rl_sweep_idle(const qg_ratelimit *rl, const rl_table *t, rl_shard *sh, int64_t now)
{
    for (uint32_t i = 0; i < t->cap;) {
        rl_head *h = rl_slot(t, sh, i);
        if (h->used && t->idle(rl, h, now))
            rl_delete_at(t, sh, i);
        else
            i++;
    }
}

static void rl_sweep_older(const rl_table *t, rl_shard *sh, int64_t cut, bool equal_too,
                           uint32_t target)
{
    for (uint32_t i = 0; i < t->cap && sh->count > target;) {
        rl_head *h = rl_slot(t, sh, i);
        if (h->used && (h->last_use < cut || (equal_too && h->last_use == cut)))
            rl_delete_at(t, sh, i);
        else
            i++;
    }
}

/* Makes room in a full shard (see the file comment). */
static void rl_evict(const qg_ratelimit *rl, const rl_table *t, rl_shard *sh, int64_t now)
{
    uint32_t target = t->max_load - t->max_load / 8;
    rl_sweep_idle(rl, t, sh, now);
    if (sh->count <= target) return;
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->cap; i++) {
        const rl_head *h = rl_slot(t, sh, i);
        if (h->used) sh->scratch[n++] = h->last_use;
    }
    int64_t cut = rl_select(sh->scratch, n, sh->count - target - 1);
    rl_sweep_older(t, sh, cut, false, target);
    rl_sweep_older(t, sh, cut, true, target);
}

/* The entry for (cls, key), created zeroed (but for the head) when absent;
 * *created says which. Called with the shard locked. */
static rl_head *rl_get(const qg_ratelimit *rl, const rl_table *t, rl_shard *sh, uint64_t hash,
                       int cls, const char *key, size_t len, int64_t now, bool *created)
{
    rl_head *h = rl_find(t, sh, hash, cls, key, len);
    *created = h == NULL;
    if (h) return h;
    if (sh->count >= t->max_load) rl_evict(rl, t, sh, now);
    uint32_t mask = t->cap - 1;
    uint32_t i = (uint32_t)hash & mask;
    while (rl_slot(t, sh, i)->used) i = (i + 1) & mask;
    h = rl_slot(t, sh, i);
    memset(h, 0, t->esz);
    h->used = 1;
    h->hash = hash;
    h->cls = (uint8_t)cls;
    h->last_use = now;
    if (len >= RL_KEY_SLOT) {
        h->truncated = 1;
        memcpy(h->key, key, RL_KEY_SLOT - 1);
    } else {
        memcpy(h->key, key, len + 1);
    }
    sh->count++;
    return h;
}

static bool rl_table_init(rl_table *t, uint32_t nshards, uint32_t cap, size_t esz, rl_idle_fn idle)
{
    t->nshards = nshards;
    t->cap = cap;
    t->max_load = cap / 4 * 3;
    t->esz = esz;
    t->idle = idle;
    t->shard = calloc(nshards, sizeof(rl_shard));
    if (!t->shard) return false;
    for (uint32_t i = 0; i < nshards; i++) {
        rl_shard *sh = &t->shard[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->slots = calloc(cap, esz);
        sh->scratch = calloc(cap, sizeof(int64_t));
        if (!sh->slots || !sh->scratch) return false;
    }
    return true;
}

static void rl_table_free(rl_table *t)
{
    if (!t->shard) return;
    for (uint32_t i = 0; i < t->nshards; i++) {
        pthread_mutex_destroy(&t->shard[i].mu);
        free(t->shard[i].slots);
        free(t->shard[i].scratch);
    }
    free(t->shard);
}

/* ---- token buckets ---- */

/* Tokens the bucket holds at now (never moves backwards in time). */
static double rl_tokens_at(const qg_rl_rule *r, const rl_bucket *b, int64_t now)
{
    double t = b->tokens;
    if (now > b->last_ms) t += (double)(now - b->last_ms) / 1000.0 * r->rate;
    return t > r->burst ? r->burst : t;
}

static bool rl_bucket_idle(const qg_ratelimit *rl, const rl_head *h, int64_t now)
{
    const rl_bucket *b = (const rl_bucket *)(const void *)h;
    const qg_rl_rule *r = &rl->cfg.rule[h->cls];
    return rl_tokens_at(r, b, now) >= r->burst;
}

static bool rl_login_idle(const qg_ratelimit *rl, const rl_head *h, int64_t now)
{
    const rl_login *l = (const rl_login *)(const void *)h;
    if (l->n == 0) return true;
    int newest = (l->first + l->n - 1) % rl->cfg.login_max_fails;
    return now - l->ts[newest] >= rl->cfg.login_window_ms;
}

qg_ratelimit *qg_ratelimit_new(const qg_rl_config *c)
{
    qg_ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl) return NULL;
    rl->cfg = *c;
    if (rl->cfg.login_max_fails < 1) rl->cfg.login_max_fails = 5;
    if (rl->cfg.login_max_fails > RL_LOGIN_MAX_FAILS) rl->cfg.login_max_fails = RL_LOGIN_MAX_FAILS;
    if (rl->cfg.login_window_ms <= 0) rl->cfg.login_window_ms = 15 * 60 * 1000;
    if (getrandom(&rl->seed, sizeof(rl->seed), GRND_NONBLOCK) != sizeof(rl->seed))
        rl->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)rl;
    if (!rl_table_init(&rl->buckets, RL_SHARDS, RL_SHARD_CAP, sizeof(rl_bucket), rl_bucket_idle) ||
        !rl_table_init(&rl->logins, RL_LOGIN_SHARDS, RL_LOGIN_CAP, sizeof(rl_login),
                       rl_login_idle)) {
        qg_ratelimit_free(rl);
        return NULL;
    }
    return rl;
}

void qg_ratelimit_free(qg_ratelimit *rl)
{
    if (!rl) return;
    rl_table_free(&rl->buckets);
    rl_table_free(&rl->logins);
    free(rl);
}

static int rl_ceil_seconds(double s)
{
    if (!(s < RL_RETRY_MAX)) return RL_RETRY_MAX;
    int r = (int)ceil(s - 1e-9); /* 1.0000000001 from float noise is still 1 */
    return r < 1 ? 1 : r;
}

bool qg_ratelimit_take(qg_ratelimit *rl, qg_rl_class cls, const char *key, int64_t now_ms,
                       int *retry_after_s)
{
    if (!rl || cls <= QG_RL_NONE || cls >= QG_RL__COUNT) return true;
    const qg_rl_rule *r = &rl->cfg.rule[cls];
    if (!(r->rate > 0) || !(r->burst >= 1)) return true;
    if (!key) key = "";
    size_t len = strlen(key);
    uint64_t hash = rl_hash(rl->seed, cls, key, len);
    rl_shard *sh = rl_shard_of(&rl->buckets, hash);

    pthread_mutex_lock(&sh->mu);
    bool created;
    rl_bucket *b =
        (rl_bucket *)(void *)rl_get(rl, &rl->buckets, sh, hash, cls, key, len, now_ms, &created);
    if (created) {
        b->tokens = r->burst;
        b->last_ms = now_ms;
    }
    b->tokens = rl_tokens_at(r, b, now_ms);
    if (now_ms > b->last_ms) b->last_ms = now_ms;
    if (now_ms > b->h.last_use) b->h.last_use = now_ms;
    bool ok = b->tokens >= 1;
    if (ok) b->tokens -= 1;
    double wait = ok ? 0 : (1 - b->tokens) / r->rate;
    pthread_mutex_unlock(&sh->mu);

    if (!ok && retry_after_s) *retry_after_s = rl_ceil_seconds(wait);
    return ok;
}

/* ---- login throttle ---- */

/* Drops failures that left the window; true when the account is locked,
 * with the seconds until it opens in *wait_s. */
static bool rl_login_locked(const qg_ratelimit *rl, rl_login *l, int64_t now, int *wait_s)
{
    int max = rl->cfg.login_max_fails;
    int64_t win = rl->cfg.login_window_ms;
    while (l->n > 0 && now - l->ts[l->first] >= win) {
        l->first = (l->first + 1) % max;
        l->n--;
    }
    if (l->n < max) return false;
    int64_t ms = l->ts[l->first] + win - now;
    *wait_s = rl_ceil_seconds((double)ms / 1000.0);
    return true;
}

bool qg_ratelimit_login_check(qg_ratelimit *rl, const char *account, int64_t now_ms,
                              int *retry_after_s)
{
    if (!rl || !account) return true;
    size_t len = strlen(account);
    uint64_t hash = rl_hash(rl->seed, 0, account, len);
    rl_shard *sh = rl_shard_of(&rl->logins, hash);
    int wait = 0;
    pthread_mutex_lock(&sh->mu);
    rl_login *l = (rl_login *)(void *)rl_find(&rl->logins, sh, hash, 0, account, len);
    bool locked = l && rl_login_locked(rl, l, now_ms, &wait);
    pthread_mutex_unlock(&sh->mu);
    if (locked && retry_after_s) *retry_after_s = wait;
    return !locked;
}

void qg_ratelimit_login_fail(qg_ratelimit *rl, const char *account, int64_t now_ms)
{
    if (!rl || !account) return;
    size_t len = strlen(account);
    uint64_t hash = rl_hash(rl->seed, 0, account, len);
    rl_shard *sh = rl_shard_of(&rl->logins, hash);
    int max = rl->cfg.login_max_fails;
    pthread_mutex_lock(&sh->mu);
    bool created;
    rl_login *l =
        (rl_login *)(void *)rl_get(rl, &rl->logins, sh, hash, 0, account, len, now_ms, &created);
    int wait;
    rl_login_locked(rl, l, now_ms, &wait); /* prunes the window */
    if (l->n == max) {                     /* the ring is full: the oldest makes room */
        l->first = (l->first + 1) % max;
        l->n--;
    }
    /* keep the ring in time order even if the clock stepped back */
    int64_t t = now_ms;
    if (l->n > 0 && l->ts[(l->first + l->n - 1) % max] > t) t = l->ts[(l->first + l->n - 1) % max];
    l->ts[(l->first + l->n) % max] = t;
    l->n++;
    if (now_ms > l->h.last_use) l->h.last_use = now_ms;
    pthread_mutex_unlock(&sh->mu);
}

void qg_ratelimit_login_success(qg_ratelimit *rl, const char *account)
{
    if (!rl || !account) return;
    size_t len = strlen(account);
    uint64_t hash = rl_hash(rl->seed, 0, account, len);
    rl_shard *sh = rl_shard_of(&rl->logins, hash);
    pthread_mutex_lock(&sh->mu);
    rl_head *h = rl_find(&rl->logins, sh, hash, 0, account, len);
    if (h)
        rl_delete_at(&rl->logins, sh,
                     (uint32_t)(((unsigned char *)h - sh->slots) / rl->logins.esz));
    pthread_mutex_unlock(&sh->mu);
}
