/*
 * test_ai_stream.c - the SSE/NDJSON framer (every split of the input gives
 * the same events), stream assembly (deltas forwarded, tool calls, usage,
 * finish), Retry-After parsing and error classification of ai/stream.c.
 *
 * A recording provider defined here turns each event into "[event|data]"
 * text, so the tests compare what the provider would have seen.
 */
#include <criterion/criterion.h>

#include "ai/provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a provider that records events ---- */

static qg_buf seen;
static int fail_on_event = -1; /* index of the event whose decoding fails */
static int nevents;

static qg_status rec_event(qg_ai_stream *st, const char *event, const char *data, size_t n,
                           qg_error *err)
{
    if (nevents++ == fail_on_event) return qg_error_set(err, QG_EINVAL, "bad event %d", nevents);
    qg_buf_printf(&seen, "[%s|%.*s]", event ? event : "-", (int)n, data);
    return qg_ai_stream_text(st, data, n);
}

static const qg_ai_provider rec_sse = {
    .name = "rec", .framing = QG_AI_FRAMING_SSE, .stream_event = rec_event};
static const qg_ai_provider rec_nd = {
    .name = "rec", .framing = QG_AI_FRAMING_NDJSON, .stream_event = rec_event};

static void reset(void)
{
    qg_buf_free(&seen);
    qg_buf_init(&seen, 1 << 20);
    nevents = 0;
    fail_on_event = -1;
}

/* Feeds input in pieces cut at the given offsets, ends, returns what the
 * provider saw (malloc'd). */
static char *frame(const qg_ai_provider *p, const char *in, const size_t *cuts, int ncuts,
                   qg_status *rc_out)
{
    reset();
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_stream st;
    qg_ai_stream_init(&st, &a, NULL, NULL);
    qg_ai_framer f;
    qg_ai_framer_init(&f, p, &st);
    size_t len = strlen(in), at = 0;
    qg_status rc = QG_OK;
    for (int i = 0; i <= ncuts && !rc; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = qg_ai_framer_feed(&f, in + at, end - at);
        at = end;
    }
    if (!rc) rc = qg_ai_framer_end(&f);
    if (rc_out) *rc_out = rc;
    qg_ai_response r;
    qg_ai_stream_finish(&st, &r);
    qg_ai_framer_free(&f);
    char *out = strdup(seen.len ? seen.data : "");
    qg_arena_free(&a);
    return out;
}

static char *frame_whole(const qg_ai_provider *p, const char *in)
{
    return frame(p, in, NULL, 0, NULL);
}

/* Every two-piece split and the byte-by-byte feed give the whole-input
 * result. */
static void assert_split_invariant(const qg_ai_provider *p, const char *in)
{
    char *want = frame_whole(p, in);
    size_t len = strlen(in);
    for (size_t cut = 0; cut <= len; cut++) {
        char *got = frame(p, in, &cut, 1, NULL);
        cr_assert_str_eq(got, want, "split at %zu of %s", cut, in);
        free(got);
    }
    size_t *cuts = malloc(sizeof(size_t) * (len + 1));
    for (size_t i = 0; i < len; i++) cuts[i] = i + 1;
    char *got = frame(p, in, cuts, (int)len, NULL);
    cr_assert_str_eq(got, want, "byte by byte");
    free(got);
    free(cuts);
    free(want);
}

static const char *SSE_SAMPLE = ": keep-alive comment\r\n"
                                "event: message_start\r\n"
                                "data: {\"a\":1}\r\n"
                                "\r\n"
                                "data: line one\n"
                                "data: line two\n"
                                "data:no space\n"
                                "id: 7\n"
                                "retry: 100\n"
                                "\n"
                                "event: ping\n"
                                "\n"
                                "data\n"
                                "\n"
                                "event: last\n"
                                "data: [DONE]";

Test(ai_stream, sse_events_data_lines_comments_crlf)
{
    char *got = frame_whole(&rec_sse, SSE_SAMPLE);
    /* the "ping" event has no data and is not dispatched; its name does not
     * leak into the next event; a bare "data" line is an empty data line;
     * the last event is flushed at the end without its blank line */
    cr_assert_str_eq(got, "[message_start|{\"a\":1}]"
                          "[-|line one\nline two\nno space]"
                          "[-|]"
                          "[last|[DONE]]");
    free(got);
}

Test(ai_stream, sse_every_split_gives_the_same_events)
{
    assert_split_invariant(&rec_sse, SSE_SAMPLE);
}

Test(ai_stream, sse_crlf_split_between_cr_and_lf)
{
    const char *in = "data: a\r\n\r\ndata: b\r\n\r\n";
    size_t cut = 8; /* after "data: a\r" */
    char *got = frame(&rec_sse, in, &cut, 1, NULL);
    cr_assert_str_eq(got, "[-|a][-|b]");
    free(got);
}

static const char *ND_SAMPLE = "{\"m\":1}\n"
                               "\n"
                               "{\"m\":2}\r\n"
                               "   \n"
                               "{\"m\":3}  \t\n"
                               "{\"done\":true}";

Test(ai_stream, ndjson_lines_blank_lines_and_last_line)
{
    char *got = frame_whole(&rec_nd, ND_SAMPLE);
    cr_assert_str_eq(got, "[-|{\"m\":1}][-|{\"m\":2}][-|{\"m\":3}][-|{\"done\":true}]");
    free(got);
    assert_split_invariant(&rec_nd, ND_SAMPLE);
}

Test(ai_stream, line_cap_is_enforced_and_sticky)
{
    reset();
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_stream st;
    qg_ai_stream_init(&st, &a, NULL, NULL);
    qg_ai_framer f;
    qg_ai_framer_init(&f, &rec_nd, &st);
    size_t chunk = 1 << 20;
    char *big = malloc(chunk);
    memset(big, 'x', chunk);
    qg_status rc = QG_OK;
    int i;
    for (i = 0; i < 8 && !rc; i++) rc = qg_ai_framer_feed(&f, big, chunk);
    cr_assert_eq(rc, QG_ERANGE, "a line without end over the cap fails");
    cr_assert_leq(i, 5, "fails once past 4 MiB, not later");
    cr_assert(strstr(f.err.msg, "line too long"), "%s", f.err.msg);
    /* later input, even good, is ignored with the same failure */
    cr_assert_eq(qg_ai_framer_feed(&f, "\n{\"ok\":1}\n", 10), QG_ERANGE);
    cr_assert_eq(qg_ai_framer_end(&f), QG_ERANGE);
    cr_assert_eq(nevents, 0);
    free(big);
    qg_ai_response r;
    qg_ai_stream_finish(&st, &r);
    qg_ai_framer_free(&f);
    qg_arena_free(&a);
}

Test(ai_stream, sse_event_data_cap)
{
    reset();
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_stream st;
    qg_ai_stream_init(&st, &a, NULL, NULL);
    qg_ai_framer f;
    qg_ai_framer_init(&f, &rec_sse, &st);
    /* many short data lines that together exceed the event cap */
    size_t line_len = 64 * 1024;
    char *line = malloc(line_len + 8);
    memcpy(line, "data: ", 6);
    memset(line + 6, 'y', line_len);
    line[6 + line_len] = '\n';
    qg_status rc = QG_OK;
    for (int i = 0; i < 100 && !rc; i++) rc = qg_ai_framer_feed(&f, line, line_len + 7);
    cr_assert_eq(rc, QG_ERANGE);
    cr_assert(strstr(f.err.msg, "event too large"), "%s", f.err.msg);
    free(line);
    qg_ai_response r;
    qg_ai_stream_finish(&st, &r);
    qg_ai_framer_free(&f);
    qg_arena_free(&a);
}

Test(ai_stream, provider_failure_stops_the_framer)
{
    reset();
    fail_on_event = 1;
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_stream st;
    qg_ai_stream_init(&st, &a, NULL, NULL);
    qg_ai_framer f;
    qg_ai_framer_init(&f, &rec_sse, &st);
    qg_status rc = qg_ai_framer_feed(&f, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27);
    cr_assert_eq(rc, QG_EINVAL);
    cr_assert_str_eq(seen.data, "[-|1]", "the third event is never decoded");
    cr_assert(strstr(f.err.msg, "bad event 2"), "the provider's message is kept: %s", f.err.msg);
    cr_assert_eq(qg_ai_framer_end(&f), QG_EINVAL);
    qg_ai_response r;
    qg_ai_stream_finish(&st, &r);
    qg_ai_framer_free(&f);
    qg_arena_free(&a);
}

/* ---- stream assembly ---- */

typedef struct deltas {
    qg_buf log;
    int n;
} deltas;

static void on_delta(void *ud, const qg_ai_delta *d)
{
    deltas *ds = ud;
    ds->n++;
    if (d->kind == QG_AI_DELTA_TEXT)
        qg_buf_printf(&ds->log, "T(%.*s)", (int)d->len, d->text);
    else
        qg_buf_printf(&ds->log, "C%d(%s,%s,%.*s)", d->index, d->id ? d->id : "-",
                      d->name ? d->name : "-", (int)d->len, d->text);
}

Test(ai_stream, assembly_text_tools_usage_finish)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    deltas ds = {0};
    qg_buf_init(&ds.log, 4096);
    qg_ai_stream st;
    qg_ai_stream_init(&st, &a, on_delta, &ds);
    cr_assert_eq(qg_ai_stream_text(&st, "Hel", 3), QG_OK);
    cr_assert_eq(qg_ai_stream_text(&st, "", 0), QG_OK); /* nothing forwarded */
    cr_assert_eq(qg_ai_stream_text(&st, "lo", 2), QG_OK);
    cr_assert_eq(qg_ai_stream_tool(&st, 0, "call_a", "get_price", "{\"sym", 5), QG_OK);
    cr_assert_eq(qg_ai_stream_tool(&st, 0, NULL, NULL, "\":\"BTC\"}", 8), QG_OK);
    cr_assert_eq(qg_ai_stream_tool(&st, 1, "call_b", "now", NULL, 0), QG_OK);
    cr_assert_eq(qg_ai_stream_tool(&st, QG_AI_MAX_TOOL_CALLS, "x", "y", "", 0), QG_ERANGE);
    qg_ai_stream_usage(&st, 10, -1, -1);
    qg_ai_stream_usage(&st, -1, 7, 2);
    qg_ai_stream_set_model(&st, "gpt-x", 5);
    qg_ai_stream_set_model(&st, "other", 5); /* the first one wins */
    qg_ai_response r;
    qg_ai_stream_finish(&st, &r);
    cr_assert_str_eq(ds.log.data, "T(Hel)T(lo)C0(call_a,get_price,{\"sym)C0(-,-,\":\"BTC\"})"
                                  "C1(call_b,now,)");
    cr_assert_str_eq(r.text, "Hello");
    cr_assert_eq(r.n_tool_calls, 2);
    cr_assert_str_eq(r.tool_calls[0].id, "call_a");
    cr_assert_str_eq(r.tool_calls[0].arguments, "{\"sym\":\"BTC\"}");
    cr_assert_str_eq(r.tool_calls[1].name, "now");
    cr_assert_str_eq(r.tool_calls[1].arguments, "{}");
    cr_assert_str_eq(r.finish_reason, "tool_calls");
    cr_assert_str_eq(r.model, "gpt-x");
    cr_assert_eq(r.usage.input, 10);
    cr_assert_eq(r.usage.output, 7);
    cr_assert_eq(r.usage.cached, 2);
    cr_assert_eq(r.error.kind, QG_AI_OK);
    qg_buf_free(&ds.log);
    qg_arena_free(&a);
}

Test(ai_stream, assembly_made_up_ids_and_explicit_finish)
{
    qg_arena a;
    qg_arena_init(&a, 0);
    qg_ai_stream st;
    qg_ai_stream_init(&st, &a, NULL, NULL);
    qg_ai_stream_tool(&st, 1, NULL, "f", "{}", 2); /* index 0 never seen */
    qg_ai_stream_set_finish(&st, "length");
    qg_ai_response r;
    qg_ai_stream_finish(&st, &r);
    cr_assert_eq(r.n_tool_calls, 2);
    cr_assert_str_eq(r.tool_calls[0].id, "call_0");
    cr_assert_str_eq(r.tool_calls[0].name, "");
    cr_assert_str_eq(r.tool_calls[1].id, "call_1");
    cr_assert_str_eq(r.finish_reason, "length");
    cr_assert_str_eq(r.text, "");
    qg_arena_free(&a);

    qg_arena_init(&a, 0);
    qg_ai_stream_init(&st, &a, NULL, NULL);
    qg_ai_stream_finish(&st, &r);
    cr_assert_str_eq(r.finish_reason, "stop");
    cr_assert_null(r.model);
    cr_assert_eq(r.error.retry_after_ms, -1);
    qg_arena_free(&a);
}

/* ---- helpers ---- */

Test(ai_stream, retry_after_values)
{
    cr_assert_eq(qg_ai_parse_retry_after("2"), 2000);
    cr_assert_eq(qg_ai_parse_retry_after(" 1.5"), 1500);
    cr_assert_eq(qg_ai_parse_retry_after("0"), 0);
    cr_assert_eq(qg_ai_parse_retry_after(NULL), -1);
    cr_assert_eq(qg_ai_parse_retry_after(""), -1);
    cr_assert_eq(qg_ai_parse_retry_after("soon"), -1);
    cr_assert_eq(qg_ai_parse_retry_after("3x"), -1);
    cr_assert_eq(qg_ai_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0, "a past date");
    char date[64];
    time_t later = time(NULL) + 120;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int64_t ms = qg_ai_parse_retry_after(date);
    cr_assert(ms > 115000 && ms <= 120000, "%s -> %lld", date, (long long)ms);
}

Test(ai_stream, error_kinds)
{
    cr_assert_eq(qg_ai_errkind_from_status(200), QG_AI_OK);
    cr_assert_eq(qg_ai_errkind_from_status(401), QG_AI_EAUTH);
    cr_assert_eq(qg_ai_errkind_from_status(403), QG_AI_EAUTH);
    cr_assert_eq(qg_ai_errkind_from_status(429), QG_AI_ERATE);
    cr_assert_eq(qg_ai_errkind_from_status(529), QG_AI_EOVERLOADED);
    cr_assert_eq(qg_ai_errkind_from_status(500), QG_AI_ESERVER);
    cr_assert_eq(qg_ai_errkind_from_status(404), QG_AI_EBADREQ);
    cr_assert(qg_ai_errkind_retryable(QG_AI_ERATE));
    cr_assert(qg_ai_errkind_retryable(QG_AI_ENETWORK));
    cr_assert_not(qg_ai_errkind_retryable(QG_AI_EAUTH));
    cr_assert_not(qg_ai_errkind_retryable(QG_AI_ECONTEXT));
    cr_assert_str_eq(qg_ai_errkind_name(QG_AI_ERATE), "rate_limited");
    cr_assert_eq(qg_ai_role_parse("tool"), QG_AI_ROLE_TOOL);
    cr_assert_eq(qg_ai_role_parse("robot"), -1);
}
