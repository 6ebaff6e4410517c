/*
 * test_core.c - status/error, arena, capped buffer, time, numbers, config.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <criterion/redirect.h>

#include <quantgate/config.h>
#include <quantgate/json.h>
#include <quantgate/log.h>
#include <quantgate/mem.h>
#include <quantgate/num.h>
#include <quantgate/pool.h>
#include <quantgate/time.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(core, error_set_and_prefix)
{
    qg_error e = {0};
    cr_assert_eq(qg_error_set(&e, QG_EINVAL, "field '%s': %s", "cash", "must be > 0"), QG_EINVAL);
    qg_error_prefix(&e, "spec.json");
    cr_assert_str_eq(e.msg, "spec.json: field 'cash': must be > 0");
    cr_assert_str_eq(qg_status_name(QG_ENOMEM), "ENOMEM");
    cr_assert_eq(qg_error_set(NULL, QG_EIO, "x"), QG_EIO);
}

Test(core, arena_alignment_and_big_blocks)
{
    qg_arena a;
    qg_arena_init(&a, 128);
    char *p = qg_arena_alloc(&a, 3);
    char *q = qg_arena_alloc(&a, 5);
    cr_assert_eq(((uintptr_t)p) % 16, 0);
    cr_assert_eq(((uintptr_t)q) % 16, 0);
    char *big = qg_arena_alloc(&a, 10000);
    memset(big, 7, 10000);
    char *r = qg_arena_alloc(&a, 16); /* still served from the small chunk */
    cr_assert_not_null(r);
    cr_assert_str_eq(qg_arena_sprintf(&a, "%d-%s", 42, "x"), "42-x");
    char src[] = "copied";
    char *dup = qg_arena_strdup(&a, src);
    src[0] = 'X';
    cr_assert_str_eq(dup, "copied");
    cr_assert_null(qg_arena_strdup(&a, NULL));
    qg_arena_free(&a);
}

Test(core, buffer_cap_is_hard)
{
    qg_buf b;
    qg_buf_init(&b, 10);
    cr_assert_eq(qg_buf_puts(&b, "12345"), QG_OK);
    cr_assert_eq(qg_buf_printf(&b, "%s", "67890"), QG_OK);
    cr_assert_eq(qg_buf_puts(&b, "x"), QG_ERANGE);
    cr_assert_str_eq(b.data, "1234567890");
    qg_buf_free(&b);
    qg_buf_init(&b, 100);
    cr_assert_eq(qg_buf_html(&b, "<a&'>"), QG_OK);
    cr_assert_str_eq(b.data, "&lt;a&amp;&#39;&gt;");
    qg_buf_free(&b);
}

/* printf into the room left, past it (the buffer grows), and past the
 * cap (refused, the text before it intact and terminated). */
Test(core, buffer_printf_fits_grows_and_keeps_the_cap)
{
    qg_buf b;
    qg_buf_init(&b, 300);
    cr_assert_eq(qg_buf_printf(&b, "%d-%s", 7, "a"), QG_OK);
    cr_assert_str_eq(b.data, "7-a");
    size_t cap = b.cap;
    cr_assert_eq(qg_buf_printf(&b, "|%s|", "b"), QG_OK, "fits the room left");
    cr_assert_eq(b.cap, cap);
    cr_assert_str_eq(b.data, "7-a|b|");
    char big[260];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cr_assert_eq(qg_buf_printf(&b, "%s", big), QG_OK, "grows past the first allocation");
    cr_assert_eq(b.len, 6 + 259);
    cr_assert(!strncmp(b.data, "7-a|b|zzz", 9));
    cr_assert_eq(strlen(b.data), b.len);
    cr_assert_eq(qg_buf_printf(&b, "%s", big), QG_ERANGE, "past the cap");
    cr_assert_eq(strlen(b.data), 6 + 259, "what was there stays, terminated");
    cr_assert_eq(qg_buf_printf(&b, "%s", "ok"), QG_OK);
    cr_assert_eq(b.len, 6 + 259 + 2);
    cr_assert_str_eq(b.data + b.len - 2, "ok");
    qg_buf_free(&b);
}

Test(core, buffer_json_strings_read_back)
{
    qg_buf b;
    qg_buf_init(&b, 256);
    cr_assert_eq(qg_buf_json_str(&b, "a\"b\\c\n\x01\xc3\xa9"), QG_OK);
    cr_assert_eq(qg_buf_puts(&b, ","), QG_OK);
    cr_assert_eq(qg_buf_json_str(&b, NULL), QG_OK);
    cr_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\",null");
    qg_buf_reset(&b);
    cr_assert_eq(qg_buf_json_str(&b, "x\ty"), QG_OK);
    cJSON *j = cJSON_Parse(b.data);
    cr_assert(cJSON_IsString(j));
    cr_assert_str_eq(j->valuestring, "x\ty");
    cJSON_Delete(j);
    qg_buf_free(&b);
}

Test(core, iso_time_parsing)
{
    int64_t ms;
    cr_assert_null(qg_time_parse_iso("1970-01-01", 10, &ms));
    cr_assert_eq(ms, 0);
    cr_assert_null(qg_time_parse_iso("2024-02-29T12:30:15.250Z", 24, &ms));
    cr_assert_eq(ms, 1709209815250LL);
    cr_assert_null(qg_time_parse_iso("2024-02-29 14:30:15+02:00", 25, &ms));
    cr_assert_eq(ms, 1709209815000LL);
    cr_assert_null(qg_time_parse_iso("2024-02-29T07:30:15-0500", 24, &ms));
    cr_assert_eq(ms, 1709209815000LL);
    cr_assert_str_eq(qg_time_parse_iso("2023-02-29", 10, &ms), "day out of range");
    cr_assert_not_null(qg_time_parse_iso("2024-01-01T25:00", 16, &ms));
    cr_assert_not_null(qg_time_parse_iso("2024/01/01", 10, &ms));
    char buf[40];
    qg_time_format_iso(1709209815250LL, buf, sizeof buf);
    cr_assert_str_eq(buf, "2024-02-29T12:30:15.250Z");
    qg_time_format_iso(-QG_MS_PER_DAY, buf, sizeof buf);
    cr_assert_str_eq(buf, "1969-12-31T00:00:00Z");
    qg_time_format_iso(5, buf, sizeof buf); /* milliseconds keep their zeros */
    cr_assert_str_eq(buf, "1970-01-01T00:00:00.005Z");
    qg_time_format_iso(253402300799999LL, buf, sizeof buf);
    cr_assert_str_eq(buf, "9999-12-31T23:59:59.999Z");
    qg_time_format_iso(253402300800000LL, buf, sizeof buf); /* five-digit years still print */
    cr_assert_str_eq(buf, "10000-01-01T00:00:00Z");
    qg_time_format_iso(-62167219200001LL, buf, sizeof buf); /* and years before 0 */
    cr_assert_str_eq(buf, "-001-12-31T23:59:59.999Z");
}

Test(core, time_args_and_timeframes)
{
    int64_t ms;
    qg_error e = {0};
    cr_assert_eq(qg_time_parse_arg("1700000000", &ms, &e), QG_OK);
    cr_assert_eq(ms, 1700000000000LL);
    cr_assert_eq(qg_time_parse_arg("1700000000123", &ms, &e), QG_OK);
    cr_assert_eq(ms, 1700000000123LL);
    cr_assert_eq(qg_time_parse_arg("yesterday", &ms, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "'yesterday'"));
    cr_assert_eq(qg_timeframe_parse("15m", &ms, &e), QG_OK);
    cr_assert_eq(ms, 15 * QG_MS_PER_MIN);
    cr_assert_eq(qg_timeframe_parse("4h", &ms, &e), QG_OK);
    cr_assert_eq(qg_timeframe_parse("7x", &ms, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "'7x'"));
    char buf[16];
    qg_timeframe_format(4 * QG_MS_PER_HOUR, buf, sizeof buf);
    cr_assert_str_eq(buf, "4h");
    /* 2024-01-03 is a Wednesday; its week starts Monday 2024-01-01. */
    int64_t wed;
    qg_time_parse_iso("2024-01-03T10:00Z", 17, &wed);
    int64_t mon;
    qg_time_parse_iso("2024-01-01", 10, &mon);
    cr_assert_eq(qg_time_bucket(wed, 7 * QG_MS_PER_DAY), mon);
    cr_assert_eq(qg_time_bucket(wed, QG_MS_PER_DAY), mon + 2 * QG_MS_PER_DAY);
}

Test(core, number_parsing_matches_strtod)
{
    const char *cases[] = {"0",
                           "-0.5",
                           "123.456",
                           "1e10",
                           "1.5E-7",
                           "99999.99",
                           "0.1",
                           "3.14159265358979",
                           "12345678901234567890.5",
                           "1e300",
                           "-2.5e-310",
                           "00012.50"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v;
        const char *s = cases[i], *e = s + strlen(s);
        cr_assert_eq(qg_parse_double(s, e, &v), e, "%s", s);
        cr_assert_eq(v, strtod(s, NULL), "%s: %.17g vs %.17g", s, v, strtod(s, NULL));
    }
    double v;
    const char *bad = "abc";
    cr_assert_null(qg_parse_double(bad, bad + 3, &v));
    const char *partial = "12.5x";
    cr_assert_eq(qg_parse_double(partial, partial + 5, &v), partial + 4);
    char out[32];
    qg_format_fixed(101.005, 2, out);
    cr_assert(strcmp(out, "101.01") == 0 || strcmp(out, "101.00") == 0);
    qg_format_fixed(-0.004, 2, out);
    cr_assert_str_eq(out, "0.00");
    qg_format_fixed(12345.678, 3, out);
    cr_assert_str_eq(out, "12345.678");
}

Test(core, dotenv_keeps_existing_environment)
{
    char path[] = "/tmp/qg_envXXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment\nexport QG_T_A=1\nQG_T_B=\"two words\"\nQG_T_C=file\n");
    fclose(f);
    setenv("QG_T_C", "env", 1);
    qg_error e = {0};
    cr_assert_eq(qg_config_load_dotenv(path, &e), QG_OK);
    cr_assert_str_eq(getenv("QG_T_A"), "1");
    cr_assert_str_eq(getenv("QG_T_B"), "two words");
    cr_assert_str_eq(getenv("QG_T_C"), "env");
    f = fopen(path, "w");
    fprintf(f, "GOOD=1\nno equals sign\n");
    fclose(f);
    cr_assert_eq(qg_config_load_dotenv(path, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, ":2:"), "%s", e.msg);
    unlink(path);
    char m[64];
    qg_config_mask("sk-abcdefghijklmnopa1b2", m, sizeof m);
    cr_assert_str_eq(m, "sk-...a1b2");
    cr_assert(qg_config_is_secret("OPENAI_API_KEY"));
    cr_assert(!qg_config_is_secret("QG_PORT"));
    cr_assert(qg_config_is_secret("QG_SLACK_WEBHOOK_URL"), "a Slack URL carries its token");
}

static void count_job(void *ud, size_t i, int worker)
{
    atomic_fetch_add((atomic_size_t *)ud, i + 1);
}

Test(core, parallel_for_runs_every_index_once)
{
    atomic_size_t sum;
    atomic_init(&sum, 0);
    cr_assert_eq(qg_parallel_for(1000, 4, count_job, &sum), QG_OK);
    cr_assert_eq(atomic_load(&sum), 1000 * 1001 / 2);
}

Test(core, log_levels_filter_and_format, .init = cr_redirect_stderr)
{
    cr_assert_eq(qg_log_level_parse("WARN"), QG_LOG_WARN);
    cr_assert_eq(qg_log_level_parse("loud"), -1);
    qg_log_set_level(QG_LOG_WARN);
    qg_info("hidden %d", 1);
    qg_warn("shown %d", 2);
    qg_err("also shown");
    fflush(stderr);
    /* "<ISO time> WARN  shown 2\n<ISO time> ERROR also shown\n" */
    char buf[256] = {0};
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    cr_assert(strstr(buf, "WARN  shown 2\n"), "%s", buf);
    cr_assert(strstr(buf, "ERROR also shown\n"), "%s", buf);
    cr_assert_null(strstr(buf, "hidden"));
    cr_assert(buf[4] == '-' && buf[10] == 'T', "timestamp first: %s", buf);
}

/* ---- the cJSON scratch scope ---- */

static bool inside(const void *p, const void *buf, size_t cap)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)buf;
    return a >= b && a < b + cap;
}

static void *parse_elsewhere(void *buf)
{
    cJSON *d = cJSON_Parse("{\"k\":\"v\"}");
    bool ok = d && !inside(d, buf, 4096) && !strcmp(d->child->valuestring, "v");
    cJSON_Delete(d);
    return ok ? buf : NULL;
}

Test(core, json_scratch_serves_this_thread_only_and_spills_when_full)
{
    _Alignas(max_align_t) static char buf[4096];
    qg_json_scratch_begin(buf, sizeof buf);
    cJSON *d = cJSON_Parse("{\"symbol\":\"EURUSD\",\"c\":[1,2,3]}");
    cr_assert_not_null(d);
    cr_assert_str_eq(cJSON_GetObjectItem(d, "symbol")->valuestring, "EURUSD");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d, "c")), 3);
    cr_assert_eq(inside(d, buf, sizeof buf), QG_JSON_SCRATCH == 1);
    cr_assert_eq((uintptr_t)d % _Alignof(max_align_t), 0);
    /* another thread keeps malloc meanwhile */
    pthread_t t;
    void *res = NULL;
    cr_assert_eq(pthread_create(&t, NULL, parse_elsewhere, buf), 0);
    pthread_join(t, &res);
    cr_assert_eq(res, buf);
    cJSON_Delete(d);
    /* more than the buffer holds: the rest comes from malloc, all correct */
    char big[16384];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof big - n, "[");
    for (int i = 0; i < 500; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s\"s%d\"", i ? "," : "", i);
    snprintf(big + n, sizeof big - n, "]");
    cJSON *a = cJSON_Parse(big);
    cr_assert_eq(cJSON_GetArraySize(a), 500);
    cr_assert_str_eq(cJSON_GetArrayItem(a, 499)->valuestring, "s499");
    cr_assert_not(inside(cJSON_GetArrayItem(a, 499), buf, sizeof buf));
    cJSON_Delete(a);
    qg_json_scratch_end();
    /* after the scope: malloc again */
    cJSON *after = cJSON_Parse("[true]");
    cr_assert_not(inside(after, buf, sizeof buf));
    cJSON_Delete(after);
}

/* ---- qg_json_print against cJSON_PrintUnformatted ---- */

static uint64_t rnd_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static double rnd_number(void)
{
    static const double pick[] = {0.0,
                                  -0.0,
                                  1.0,
                                  -1.0,
                                  0.1,
                                  1.0 / 3,
                                  1e21,
                                  1e-7,
                                  2147483647.0,
                                  2147483648.0,
                                  -2147483649.0,
                                  1.0865,
                                  0.85,
                                  4.9e-324,
                                  1.7976931348623157e308,
                                  123456789012.5,
                                  1e-4,
                                  9.99999e-5,
                                  0.0001234,
                                  999999999999999.9,
                                  99999999999999.98,
                                  0.30000000000000004,
                                  1e15,
                                  123456.7890123456};
    double d;
    switch (rnd() % 6) {
    case 0:
        return pick[rnd() % (sizeof pick / sizeof pick[0])];
    case 1:
        return (double)(int64_t)(rnd() % 2000001) - 1000000;
    case 2: /* prices: a few decimals, any magnitude */
        return (double)((int64_t)(rnd() % 2000000001) - 1000000000) / pow(10, (double)(rnd() % 18));
    case 3:
        do {
            uint64_t bits = rnd();
            memcpy(&d, &bits, sizeof d);
        } while (!isfinite(d));
        return d;
    case 4:
        return ldexp((double)(rnd() % 1000000), (int)(rnd() % 200) - 100);
    default:
        return rnd() % 3 ? NAN : -INFINITY;
    }
}

static void rnd_text(char *out, size_t cap)
{
    size_t n = rnd() % (cap - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned)(rnd() % 260);
        out[i] = c >= 256 ? "\"\\\n\t"[c - 256] : c ? (char)c : (char)0x7a;
    }
    out[n] = '\0';
}

static cJSON *rnd_value(int depth)
{
    char t[40];
    switch (rnd() % (depth < 4 ? 9 : 6)) {
    case 0:
        return cJSON_CreateNull();
    case 1:
        return cJSON_CreateBool(rnd() % 2);
    case 2:
    case 3:
        return cJSON_CreateNumber(rnd_number());
    case 4:
        rnd_text(t, sizeof t);
        return cJSON_CreateString(t);
    case 5:
        return rnd() % 4 ? cJSON_CreateString("") : cJSON_CreateRaw("{\"raw\":[1,2]}");
    case 6:
    case 7: {
        cJSON *o = cJSON_CreateObject();
        for (int i = (int)(rnd() % 5); i > 0; i--) {
            rnd_text(t, sizeof t);
            cJSON_AddItemToObject(o, t, rnd_value(depth + 1));
        }
        return o;
    }
    default: {
        cJSON *a = cJSON_CreateArray();
        for (int i = (int)(rnd() % 5); i > 0; i--) cJSON_AddItemToArray(a, rnd_value(depth + 1));
        return a;
    }
    }
}

Test(core, json_print_writes_what_cjson_writes)
{
    for (int i = 0; i < 50000; i++) {
        cJSON *v = rnd_value(0);
        char *want = cJSON_PrintUnformatted(v);
        char *got = qg_json_compact(v);
        cr_assert_not_null(want);
        cr_assert_not_null(got, "document %d", i);
        cr_assert_str_eq(got, want, "document %d", i);
        free(got);
        cJSON_free(want);
        cJSON_Delete(v);
    }
    /* a document that parsed the usual way, and what cJSON cannot print */
    cJSON *d = cJSON_Parse("{\"a\":[1.5,-2,\"\\u0001\\u001f\u00e9\"],\"b\":{},\"c\":[]}");
    char *got = qg_json_compact(d);
    cr_assert_str_eq(got, "{\"a\":[1.5,-2,\"\\u0001\\u001f\u00e9\"],\"b\":{},\"c\":[]}");
    free(got);
    cJSON_Delete(d);
    cJSON *raw = cJSON_CreateRaw(NULL);
    cr_assert_null(cJSON_PrintUnformatted(raw));
    cr_assert_null(qg_json_compact(raw));
    cJSON_Delete(raw);
    cr_assert_null(qg_json_compact(NULL));
}
