/*
 * test_rules.c - the pipeline's deterministic filters: time zones (TZif and
 * the footer rule far in the future), killzone edges across daylight-saving
 * changes, windows across midnight, day masks and per-symbol overrides,
 * cooldowns, each policy field's allow and deny, and the score.
 */
#include "signal/rules.h"

#include <quantgate/time.h>

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t utc(int y, int mo, int d, int h, int mi, int s, int ms)
{
    return qg_days_from_civil(y, (unsigned)mo, (unsigned)d) * QG_MS_PER_DAY + h * QG_MS_PER_HOUR +
           mi * QG_MS_PER_MIN + s * QG_MS_PER_SEC + ms;
}

static qg_tz *load(const char *name)
{
    qg_tz *tz = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_tz_load(name, &tz, &err), QG_OK, "%s: %s", name, err.msg);
    return tz;
}

/* ---- time zones ---- */

Test(tz, london_and_new_york_offsets)
{
    qg_tz *l = load("Europe/London"), *ny = load("America/New_York");
    cr_assert_str_eq(qg_tz_name(l), "Europe/London");
    cr_assert_eq(qg_tz_offset(l, utc(2024, 1, 15, 12, 0, 0, 0)), 0);
    cr_assert_eq(qg_tz_offset(l, utc(2024, 7, 15, 12, 0, 0, 0)), 3600);
    /* 2024-03-31 01:00 UTC clocks go forward. */
    cr_assert_eq(qg_tz_offset(l, utc(2024, 3, 31, 0, 59, 59, 999)), 0);
    cr_assert_eq(qg_tz_offset(l, utc(2024, 3, 31, 1, 0, 0, 0)), 3600);
    cr_assert_eq(qg_tz_offset(ny, utc(2024, 1, 15, 12, 0, 0, 0)), -5 * 3600);
    cr_assert_eq(qg_tz_offset(ny, utc(2024, 3, 10, 6, 59, 59, 999)), -5 * 3600);
    cr_assert_eq(qg_tz_offset(ny, utc(2024, 3, 10, 7, 0, 0, 0)), -4 * 3600);
    cr_assert_eq(qg_tz_offset(ny, utc(2024, 11, 3, 5, 59, 59, 999)), -4 * 3600);
    cr_assert_eq(qg_tz_offset(ny, utc(2024, 11, 3, 6, 0, 0, 0)), -5 * 3600);
    /* Before any transition: local mean time of the first type. */
    cr_assert_eq(qg_tz_offset(ny, utc(1850, 1, 1, 0, 0, 0, 0)), -17762);
    qg_tz_free(l);
    qg_tz_free(ny);
}

Test(tz, footer_rule_in_2040)
{
    qg_tz *l = load("Europe/London"), *ny = load("America/New_York");
    qg_tz *syd = load("Australia/Sydney"), *tok = load("Asia/Tokyo");
    cr_assert_eq(qg_tz_offset(l, utc(2040, 3, 25, 0, 59, 59, 0)), 0);
    cr_assert_eq(qg_tz_offset(l, utc(2040, 3, 25, 1, 0, 0, 0)), 3600);
    cr_assert_eq(qg_tz_offset(l, utc(2040, 10, 28, 0, 59, 59, 0)), 3600);
    cr_assert_eq(qg_tz_offset(l, utc(2040, 10, 28, 1, 0, 0, 0)), 0);
    cr_assert_eq(qg_tz_offset(ny, utc(2040, 3, 11, 6, 59, 59, 0)), -5 * 3600);
    cr_assert_eq(qg_tz_offset(ny, utc(2040, 3, 11, 7, 0, 0, 0)), -4 * 3600);
    cr_assert_eq(qg_tz_offset(ny, utc(2040, 11, 4, 5, 59, 59, 0)), -4 * 3600);
    cr_assert_eq(qg_tz_offset(ny, utc(2040, 11, 4, 6, 0, 0, 0)), -5 * 3600);
    /* Southern hemisphere: daylight time spans the new year. */
    cr_assert_eq(qg_tz_offset(syd, utc(2040, 1, 15, 0, 0, 0, 0)), 11 * 3600);
    cr_assert_eq(qg_tz_offset(syd, utc(2040, 7, 15, 0, 0, 0, 0)), 10 * 3600);
    cr_assert_eq(qg_tz_offset(syd, utc(2100, 12, 31, 23, 0, 0, 0)), 11 * 3600);
    cr_assert_eq(qg_tz_offset(tok, utc(2040, 7, 15, 0, 0, 0, 0)), 9 * 3600);
    qg_tz_free(l);
    qg_tz_free(ny);
    qg_tz_free(syd);
    qg_tz_free(tok);
}

Test(tz, shared_and_checked)
{
    qg_tz *a = load("Europe/London"), *b = load("Europe/London");
    cr_assert_eq(a, b, "one zone loaded once is shared");
    qg_tz_free(a);
    cr_assert_eq(qg_tz_offset(b, utc(2024, 7, 1, 0, 0, 0, 0)), 3600, "still usable");
    qg_tz_free(b);
    qg_tz *u = load("UTC");
    cr_assert_eq(qg_tz_offset(u, utc(2024, 7, 1, 0, 0, 0, 0)), 0);
    qg_tz_free(u);
    qg_tz *tz = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_tz_load("../etc/passwd", &tz, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "not a zone name"), "%s", err.msg);
    cr_assert_eq(qg_tz_load("Mars/Olympus", &tz, &err), QG_ENOTFOUND);
    cr_assert_str_eq(err.msg, "time zone Mars/Olympus: not found in /usr/share/zoneinfo");
    cr_assert_null(tz);
}

Test(tz, zoneinfo_dir_from_env)
{
    setenv("QG_ZONEINFO_DIR", "/nonexistent-zoneinfo", 1);
    qg_tz *tz = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_tz_load("Europe/Paris", &tz, &err), QG_ENOTFOUND);
    cr_assert_str_eq(err.msg, "time zone Europe/Paris: not found in /nonexistent-zoneinfo");
    /* UTC never needs the files. */
    cr_assert_eq(qg_tz_load("UTC", &tz, &err), QG_OK);
    qg_tz_free(tz);
    unsetenv("QG_ZONEINFO_DIR");
}

/* ---- sessions ---- */

static qg_sessions *sessions(const char *spec)
{
    qg_sessions *s = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_sessions_parse(spec, &s, &err), QG_OK, "%s: %s", spec ? spec : "", err.msg);
    return s;
}

static const char *match(const qg_sessions *s, const char *sym, int64_t t)
{
    const qg_session_window *w = qg_sessions_match(s, sym, t);
    return w ? w->name : "-";
}

Test(sessions, london_edges_across_march_dst)
{
    qg_sessions *s = sessions(NULL);
    /* Friday 2024-03-29 (GMT): 07:00 local is 07:00 UTC. */
    cr_assert_str_eq(match(s, "EURUSD", utc(2024, 3, 29, 6, 59, 59, 999)), "-");
    cr_assert_str_eq(match(s, "EURUSD", utc(2024, 3, 29, 7, 0, 0, 0)), "london");
    cr_assert_str_eq(match(s, "EURUSD", utc(2024, 3, 29, 9, 59, 59, 999)), "london");
    cr_assert_str_eq(match(s, "EURUSD", utc(2024, 3, 29, 10, 0, 0, 0)), "-");
    /* Monday 2024-04-01 (BST): 07:00 local is 06:00 UTC. */
    cr_assert_str_eq(match(s, "EURUSD", utc(2024, 4, 1, 5, 59, 59, 999)), "-");
    cr_assert_str_eq(match(s, "EURUSD", utc(2024, 4, 1, 6, 0, 0, 0)), "london");
    cr_assert_str_eq(match(s, "EURUSD", utc(2024, 4, 1, 8, 59, 59, 999)), "london");
    cr_assert_str_eq(match(s, "EURUSD", utc(2024, 4, 1, 9, 0, 0, 0)), "-");
    qg_sessions_free(s);
}

Test(sessions, new_york_edges_across_march_and_november_dst)
{
    qg_sessions *s = sessions("");
    /* Friday 2024-03-08 (EST): 07:00-10:00 local is 12:00-15:00 UTC. */
    cr_assert_str_eq(match(s, "ES", utc(2024, 3, 8, 11, 59, 59, 999)), "-");
    cr_assert_str_eq(match(s, "ES", utc(2024, 3, 8, 12, 0, 0, 0)), "new_york");
    cr_assert_str_eq(match(s, "ES", utc(2024, 3, 8, 14, 59, 59, 999)), "new_york");
    cr_assert_str_eq(match(s, "ES", utc(2024, 3, 8, 15, 0, 0, 0)), "-");
    /* Monday 2024-03-11 (EDT): 11:00-14:00 UTC. */
    cr_assert_str_eq(match(s, "ES", utc(2024, 3, 11, 10, 59, 59, 999)), "-");
    cr_assert_str_eq(match(s, "ES", utc(2024, 3, 11, 11, 0, 0, 0)), "new_york");
    cr_assert_str_eq(match(s, "ES", utc(2024, 3, 11, 13, 59, 59, 999)), "new_york");
    cr_assert_str_eq(match(s, "ES", utc(2024, 3, 11, 14, 0, 0, 0)), "-");
    /* Friday 2024-11-01 (EDT) then Monday 2024-11-04 (EST). */
    cr_assert_str_eq(match(s, "ES", utc(2024, 11, 1, 11, 0, 0, 0)), "new_york");
    cr_assert_str_eq(match(s, "ES", utc(2024, 11, 1, 14, 0, 0, 0)), "-");
    cr_assert_str_eq(match(s, "ES", utc(2024, 11, 4, 11, 59, 59, 999)), "-");
    cr_assert_str_eq(match(s, "ES", utc(2024, 11, 4, 12, 0, 0, 0)), "new_york");
    cr_assert_str_eq(match(s, "ES", utc(2024, 11, 4, 14, 59, 59, 999)), "new_york");
    /* London's window the same Monday in winter. */
    cr_assert_str_eq(match(s, "ES", utc(2024, 11, 4, 7, 0, 0, 0)), "london");
    qg_sessions_free(s);
}

Test(sessions, asia_across_midnight_and_weekend_mask)
{
    qg_sessions *s = sessions(NULL);
    /* Asia 20:00-00:00 New York, Monday-Friday by the local start day.
     * Thursday 2024-01-11 20:00 EST = Friday 01:00 UTC. */
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 12, 0, 59, 59, 999)), "-");
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 12, 1, 0, 0, 0)), "asia");
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 12, 4, 59, 59, 999)), "asia");
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 12, 5, 0, 0, 0)), "-");
    /* Saturday 2024-01-13 20:00 EST (Sunday 01:00 UTC): not a weekday. */
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 14, 1, 0, 0, 0)), "-");
    /* Saturday London morning. */
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 13, 8, 0, 0, 0)), "-");
    qg_sessions_free(s);

    s = sessions("late=UTC 22:00-02:00 mon-fri");
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 12, 23, 0, 0, 0)), "late");    /* Fri */
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 13, 1, 59, 59, 999)), "late"); /* Fri's window */
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 13, 2, 0, 0, 0)), "-");
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 13, 23, 0, 0, 0)), "-"); /* Sat */
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 15, 1, 0, 0, 0)), "-");  /* Sun's window */
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 15, 21, 59, 59, 999)), "-");
    cr_assert_str_eq(match(s, "X", utc(2024, 1, 15, 22, 0, 0, 0)), "late"); /* Mon */
    qg_sessions_free(s);

    s = sessions("wknd=Europe/London 10:00-12:00 sat-sun; fm=09:00-09:30 fri-mon");
    cr_assert_str_eq(match(s, "X", utc(2024, 7, 13, 9, 0, 0, 0)), "wknd"); /* Sat 10:00 BST */
    cr_assert_str_eq(match(s, "X", utc(2024, 7, 15, 9, 0, 0, 0)), "fm");   /* Mon */
    cr_assert_str_eq(match(s, "X", utc(2024, 7, 16, 9, 0, 0, 0)), "-");    /* Tue */
    qg_sessions_free(s);
}

Test(sessions, per_symbol_override)
{
    qg_sessions *s = sessions(NULL);
    qg_error err = {0};
    cr_assert_eq(qg_sessions_set_symbol(s, "btcusd", "all=UTC 00:00-00:00 daily", &err), QG_OK,
                 "%s", err.msg);
    cr_assert_eq(qg_sessions_set_symbol(s, "XAUUSD", "gold=America/New_York 08:30-11:00", &err),
                 QG_OK, "%s", err.msg);
    int64_t sat = utc(2024, 1, 13, 15, 0, 0, 0);
    cr_assert_str_eq(match(s, "BTCUSD", sat), "all");
    cr_assert_str_eq(match(s, "EURUSD", sat), "-");
    /* Monday 2024-01-15 13:30 UTC = 08:30 EST. */
    cr_assert_str_eq(match(s, "XAUUSD", utc(2024, 1, 15, 13, 29, 59, 999)), "-");
    cr_assert_str_eq(match(s, "XAUUSD", utc(2024, 1, 15, 13, 30, 0, 0)), "gold");
    cr_assert_str_eq(match(s, "XAUUSD", utc(2024, 1, 15, 7, 0, 0, 0)), "-"); /* no london */
    cr_assert_str_eq(match(s, "EURUSD", utc(2024, 1, 15, 7, 0, 0, 0)), "london");
    /* Replacing an override. */
    cr_assert_eq(qg_sessions_set_symbol(s, "BTCUSD", "none", &err), QG_OK);
    cr_assert_str_eq(match(s, "BTCUSD", sat), "-");
    cJSON *j = qg_sessions_json(s);
    char *txt = cJSON_PrintUnformatted(j);
    cr_assert(strstr(txt, "{\"name\":\"london\",\"tz\":\"Europe/London\",\"start\":\"07:00\","
                          "\"end\":\"10:00\",\"days\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"]}"),
              "%s", txt);
    cr_assert(strstr(txt, "\"XAUUSD\":[{\"name\":\"gold\""), "%s", txt);
    free(txt);
    cJSON_Delete(j);
    qg_sessions_free(s);
}

static void spec_error(const char *spec, const char *msg)
{
    qg_sessions *s = NULL;
    qg_error err = {0};
    cr_assert_neq(qg_sessions_parse(spec, &s, &err), QG_OK, "accepted %s", spec);
    cr_assert_null(s);
    cr_assert_str_eq(err.msg, msg);
}

Test(sessions, spec_errors)
{
    spec_error("london", "sessions item 1 \"london\": expected name=[Zone ]HH:MM-HH:MM[ days]");
    spec_error("a=UTC 07:00-10:00;b=Europe/London 7-10",
               "sessions item 2 \"b=Europe/London 7-10\": \"7-10\" is not HH:MM-HH:MM (00:00 "
               "to 24:00)");
    spec_error("a=UTC 07:00-25:00", "sessions item 1 \"a=UTC 07:00-25:00\": \"07:00-25:00\" is "
                                    "not HH:MM-HH:MM (00:00 to 24:00)");
    spec_error("a=Europe/Londn 07:00-10:00",
               "sessions item 1 \"a=Europe/Londn 07:00-10:00\": time zone Europe/Londn: not "
               "found in /usr/share/zoneinfo");
    spec_error("a=UTC 07:00-10:00 funday", "sessions item 1 \"a=UTC 07:00-10:00 funday\": "
                                           "\"funday\" is not a day list (mon-fri, daily, "
                                           "sat-sun, mon,wed,fri)");
    spec_error("a=UTC 07:00-10:00;a=UTC 12:00-13:00",
               "sessions item 2 \"a=UTC 12:00-13:00\": the name a is used twice");
    spec_error("bad name=UTC 07:00-10:00", "sessions item 1 \"bad name=UTC 07:00-10:00\": the "
                                           "name must be 1-24 letters, digits, _ or -");
    spec_error(" ; ", "sessions: empty (use \"none\" for no windows)");
}

/* ---- cooldown ---- */

Test(cooldown, per_symbol_and_type)
{
    qg_cooldown *c = qg_cooldown_new(60000);
    int64_t rem = -1, t = 1000000;
    cr_assert(qg_cooldown_take(c, "EURUSD", "BoS", t, &rem));
    cr_assert_eq(rem, 0);
    cr_assert(!qg_cooldown_take(c, "EURUSD", "BoS", t + 59999, &rem));
    cr_assert_eq(rem, 1);
    cr_assert(qg_cooldown_take(c, "EURUSD", "FVG", t + 1, NULL), "another type");
    cr_assert(qg_cooldown_take(c, "GBPUSD", "BoS", t + 1, NULL), "another symbol");
    /* A dropped signal does not extend the cooldown. */
    cr_assert(qg_cooldown_take(c, "EURUSD", "BoS", t + 60000, &rem));
    cr_assert(!qg_cooldown_take(c, "EURUSD", "BoS", t + 100000, &rem));
    cr_assert_eq(rem, 20000);
    qg_cooldown_clear(c);
    cr_assert(qg_cooldown_take(c, "EURUSD", "BoS", t + 100000, NULL));
    qg_cooldown_free(c);
    qg_cooldown *off = qg_cooldown_new(0);
    cr_assert(qg_cooldown_take(off, "A", "B", 1, NULL));
    cr_assert(qg_cooldown_take(off, "A", "B", 1, NULL));
    qg_cooldown_free(off);
}

Test(cooldown, bounded_keys)
{
    qg_cooldown *c = qg_cooldown_new(3600000);
    char sym[16];
    for (int i = 0; i < 100001; i++) {
        snprintf(sym, sizeof sym, "S%d", i);
        cr_assert(qg_cooldown_take(c, sym, "t", 1000 + i, NULL));
    }
    /* S0 was the oldest and was evicted; S1 is still cooling down. */
    cr_assert(qg_cooldown_take(c, "S0", "t", 200000, NULL));
    cr_assert(!qg_cooldown_take(c, "S2", "t", 200000, NULL));
    qg_cooldown_free(c);
}

/* ---- policies ---- */

static qg_signal sig(const char *symbol, const char *type, double conf)
{
    qg_signal s;
    memset(&s, 0, sizeof s);
    snprintf(s.symbol, sizeof s.symbol, "%s", symbol);
    snprintf(s.signal_type, sizeof s.signal_type, "%s", type);
    snprintf(s.timeframe, sizeof s.timeframe, "15m");
    s.confidence = conf;
    return s;
}

static qg_policy_set *policies(const char *json)
{
    cJSON *arr = cJSON_Parse(json);
    cr_assert(arr, "bad test JSON %s", json);
    qg_policy_set *p = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_policy_parse(arr, &p, &err), QG_OK, "%s", err.msg);
    cJSON_Delete(arr);
    return p;
}

static void expect(qg_policy_set *p, const qg_signal *s, bool has_score, double score, int64_t now,
                   qg_policy_action action, const char *reason)
{
    qg_policy_verdict v;
    qg_policy_eval(p, s, has_score, score, now, &v);
    cr_assert_eq(v.action, action, "%s: got %d (%s)", s->symbol, v.action, v.reason);
    cr_assert_str_eq(v.reason, reason);
}

Test(policy, each_field_allows_and_denies)
{
    qg_policy_set *p =
        policies("[{\"name\":\"conf\",\"min_confidence\":70},"
                 "{\"name\":\"types\",\"blocked_types\":[\"error\",\"test\"],\"action\":\"defer\"},"
                 "{\"name\":\"allow\",\"allowed_symbols\":[\"EURUSD\",\"BTCUSDT\",\"XAUUSD\"]},"
                 "{\"name\":\"block\",\"blocked_symbols\":\"XAUUSD\",\"action\":\"escalate\"},"
                 "{\"name\":\"mtf\",\"when\":{\"symbol\":\"BTCUSDT\"},\"require_multi_tf\":true},"
                 "{\"name\":\"score\",\"min_score\":80}]");
    qg_signal s = sig("EURUSD", "BoS", 70);
    expect(p, &s, false, 0, 0, QG_POLICY_ALLOW, "allowed by 5 policies");
    expect(p, &s, true, 80, 0, QG_POLICY_ALLOW, "allowed by 5 policies");
    expect(p, &s, true, 79.5, 0, QG_POLICY_DROP, "score 79.5 below min_score 80 (policy score)");
    s.confidence = 69.9;
    expect(p, &s, false, 0, 0, QG_POLICY_DROP,
           "confidence 69.9 below min_confidence 70 (policy conf)");
    s = sig("EURUSD", "Error", 90);
    expect(p, &s, false, 0, 0, QG_POLICY_DEFER,
           "signal type Error is in blocked_types (policy types)");
    s = sig("DOGEUSD", "BoS", 90);
    expect(p, &s, false, 0, 0, QG_POLICY_DROP,
           "symbol DOGEUSD is not in allowed_symbols (policy allow)");
    s = sig("XAUUSD", "BoS", 90);
    expect(p, &s, false, 0, 0, QG_POLICY_ESCALATE,
           "symbol XAUUSD is in blocked_symbols (policy block)");
    s = sig("BTCUSDT", "BoS", 90);
    expect(p, &s, false, 0, 0, QG_POLICY_DROP,
           "multi_tf is false and require_multi_tf is set (policy mtf)");
    s.multi_tf = true;
    expect(p, &s, false, 0, 0, QG_POLICY_ALLOW, "allowed by 6 policies");
    /* The first denying policy decides. */
    s = sig("XAUUSD", "error", 10);
    qg_policy_verdict v;
    qg_policy_eval(p, &s, false, 0, 0, &v);
    cr_assert_str_eq(v.policy, "conf");
    qg_policy_free(p);
}

Test(policy, scope_matching)
{
    qg_policy_set *p = policies("[{\"name\":\"btc-high\",\"when\":{\"symbol\":[\"btcusdt\","
                                "\"ETHUSDT\"],\"signal_type\":\"FVG\",\"timeframe\":\"15m\"},"
                                "\"min_confidence\":90}]");
    qg_signal s = sig("BTCUSDT", "FVG", 80);
    expect(p, &s, false, 0, 0, QG_POLICY_DROP,
           "confidence 80 below min_confidence 90 (policy btc-high)");
    s = sig("BTCUSDT", "BoS", 80);
    expect(p, &s, false, 0, 0, QG_POLICY_ALLOW, "allowed by 0 policies");
    s = sig("SOLUSDT", "FVG", 80);
    expect(p, &s, false, 0, 0, QG_POLICY_ALLOW, "allowed by 0 policies");
    s = sig("ETHUSDT", "FVG", 80);
    strcpy(s.timeframe, "1h");
    expect(p, &s, false, 0, 0, QG_POLICY_ALLOW, "allowed by 0 policies");
    qg_policy_free(p);
    p = policies("[{\"name\":\"off\",\"enabled\":false,\"min_confidence\":100}]");
    s = sig("BTCUSDT", "FVG", 1);
    expect(p, &s, false, 0, 0, QG_POLICY_ALLOW, "allowed by 0 policies");
    qg_policy_free(p);
}

Test(policy, max_per_hour_sliding_window)
{
    qg_policy_set *p = policies("[{\"name\":\"rate\",\"when\":{\"symbol\":[\"A\",\"B\"]},"
                                "\"max_per_hour\":2},{\"name\":\"all\",\"max_per_hour\":3}]");
    int64_t t0 = utc(2024, 1, 1, 0, 0, 0, 0);
    qg_signal a = sig("A", "BoS", 50), b = sig("B", "BoS", 50), c = sig("C", "BoS", 50);
    strcpy(a.id, "sig_1");
    expect(p, &a, false, 0, t0, QG_POLICY_ALLOW, "allowed by 2 policies");
    /* The same signal evaluated again (after scoring) is not counted twice. */
    expect(p, &a, true, 90, t0 + 1, QG_POLICY_ALLOW, "allowed by 2 policies");
    strcpy(a.id, "sig_2");
    expect(p, &a, false, 0, t0 + 10 * QG_MS_PER_MIN, QG_POLICY_ALLOW, "allowed by 2 policies");
    strcpy(a.id, "sig_3");
    expect(p, &a, false, 0, t0 + 20 * QG_MS_PER_MIN, QG_POLICY_DROP,
           "max_per_hour 2 reached for A|*|* (policy rate)");
    /* B has its own key under the same policy; the global policy counts
     * everything: A twice, B once, then C is the fourth. */
    expect(p, &b, false, 0, t0 + 21 * QG_MS_PER_MIN, QG_POLICY_ALLOW, "allowed by 2 policies");
    expect(p, &c, false, 0, t0 + 22 * QG_MS_PER_MIN, QG_POLICY_DROP,
           "max_per_hour 3 reached for all signals (policy all)");
    /* An hour after the first A, one slot frees up. */
    strcpy(a.id, "sig_4");
    expect(p, &a, false, 0, t0 + QG_MS_PER_HOUR - 1, QG_POLICY_DROP,
           "max_per_hour 2 reached for A|*|* (policy rate)");
    expect(p, &a, false, 0, t0 + QG_MS_PER_HOUR, QG_POLICY_ALLOW, "allowed by 2 policies");
    qg_policy_free(p);
}

static void policy_error(const char *json, const char *msg)
{
    cJSON *arr = cJSON_Parse(json);
    cr_assert(arr);
    qg_policy_set *p = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_policy_parse(arr, &p, &err), QG_EINVAL, "accepted %s", json);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_null(p);
    cJSON_Delete(arr);
}

Test(policy, parse_errors)
{
    policy_error("{}", "policies: expected a JSON array of policy objects");
    policy_error("[{\"name\":\"x\",\"min_confidence\":140}]",
                 "policy 0 (x): min_confidence: 140 is out of range 0-100");
    policy_error("[{\"name\":\"x\"},{\"bogus\":1}]",
                 "policy 1: bogus: unknown field (allowed: name, when, min_confidence, "
                 "blocked_types, allowed_symbols, blocked_symbols, max_per_hour, "
                 "require_multi_tf, min_score, action, enabled)");
    policy_error("[{\"when\":{\"session\":\"london\"}}]",
                 "policy 0: when.session: unknown field (allowed: symbol, signal_type, "
                 "timeframe)");
    policy_error("[{\"action\":\"explode\"}]",
                 "policy 0: action: expected \"drop\", \"defer\" or \"escalate\"");
    policy_error("[{\"max_per_hour\":2.5}]", "policy 0: max_per_hour: expected a whole number");
    policy_error("[{\"max_per_hour\":0}]", "policy 0: max_per_hour: 0 is out of range 1-100000");
    policy_error("[{\"blocked_types\":[\"a\",1]}]",
                 "policy 0: blocked_types[1]: expected a string of 1-32 characters");
    policy_error("[{\"require_multi_tf\":1}]",
                 "policy 0: require_multi_tf: expected true or false");
    policy_error("[{\"name\":\"a\"},{\"name\":\"a\"}]",
                 "policy 1 (a): name: \"a\" is also policy 0's");
    cJSON *one = cJSON_Parse("{\"name\":\"ok\",\"min_confidence\":75,\"blocked_types\":[\"x\"]}");
    qg_error err = {0};
    cr_assert_eq(qg_policy_validate(one, &err), QG_OK, "%s", err.msg);
    cJSON_Delete(one);
    one = cJSON_Parse("{\"min_score\":\"high\"}");
    cr_assert_eq(qg_policy_validate(one, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "min_score: expected a number");
    cJSON_Delete(one);
}

/* ---- score ---- */

Test(score, defaults_and_cap)
{
    qg_score_weights w;
    qg_score_weights_default(&w);
    qg_signal s = sig("EURUSD", "FVG", 80);
    cr_assert_eq(qg_score(&w, &s, false), 60);
    s.nconfluences = 1;
    cr_assert_eq(qg_score(&w, &s, true), 80);
    strcpy(s.signal_type, "BoS");
    cr_assert_eq(qg_score(&w, &s, true), 90);
    s.nconfluences = 2;
    cr_assert_eq(qg_score(&w, &s, true), 100);
    s.nconfluences = 5;
    cr_assert_eq(qg_score(&w, &s, true), 100, "capped");
    strcpy(s.signal_type, "choch_bear");
    s.nconfluences = 2;
    cr_assert_eq(qg_score(&w, &s, false), 90);
    s.multi_tf = true;
    cr_assert_eq(qg_score(&w, &s, false), 90, "multi_tf weighs 0 by default");
}

Test(score, weights_spec)
{
    qg_score_weights w;
    qg_error err = {0};
    cr_assert_eq(qg_score_weights_parse("base=50, confluence=5,multi_tf=15,cap=90", &w, &err),
                 QG_OK, "%s", err.msg);
    cr_assert_eq(w.base, 50);
    cr_assert_eq(w.per_confluence, 5);
    cr_assert_eq(w.killzone, 10);
    cr_assert_eq(w.multi_tf, 15);
    cr_assert_eq(w.cap, 90);
    qg_signal s = sig("X", "BoS", 0);
    s.nconfluences = 3;
    s.multi_tf = true;
    cr_assert_eq(qg_score(&w, &s, true), 90); /* 50+15+10+10+15 = 100, capped at 90 */
    cr_assert_eq(qg_score(&w, &s, false), 90);
    s.multi_tf = false;
    cr_assert_eq(qg_score(&w, &s, false), 75);
    cr_assert_eq(qg_score_weights_parse("base=-200,cap=50", &w, &err), QG_OK);
    cr_assert_eq(qg_score(&w, &s, false), 0, "never below 0");
    qg_score_weights keep = w;
    cr_assert_eq(qg_score_weights_parse("bonus=5", &w, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "score weights: unknown key \"bonus\" (known: base, confluence, "
                              "killzone, structure, multi_tf, cap)");
    cr_assert_eq(memcmp(&keep, &w, sizeof w), 0, "untouched on error");
    cr_assert_eq(qg_score_weights_parse("base=abc", &w, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "score weights: base: \"abc\" is not a number in -1000..1000");
    cr_assert_eq(qg_score_weights_parse("killzone", &w, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "score weights: \"killzone\" is not key=value");
    cr_assert_eq(qg_score_weights_parse("cap=0", &w, &err), QG_EINVAL);
    cr_assert_str_eq(err.msg, "score weights: cap: must be above 0");
    cr_assert_eq(qg_score_weights_parse("", &w, &err), QG_OK);
    cr_assert_eq(w.base, 60);
}
