/*
 * test_embed.c - the offline embedders: text (determinism, unit length,
 * paraphrases rank above unrelated text) and market setups (similar setups
 * closer than different ones, validation, the JSON form and its errors).
 */
#include <criterion/criterion.h>

#include "memory/embed.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static void text_vec(const char *s, float *v)
{
    qg_embed_text(s, strlen(s), v);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double text_cos(const char *a, const char *b)
{
    float x[QG_EMBED_TEXT_DIM], y[QG_EMBED_TEXT_DIM];
    text_vec(a, x);
    text_vec(b, y);
    return dot(x, y, QG_EMBED_TEXT_DIM);
}

Test(embed, text_deterministic_and_unit_length)
{
    const char *s = "Bullish break of structure on EURUSD in the London session";
    float a[QG_EMBED_TEXT_DIM], b[QG_EMBED_TEXT_DIM];
    text_vec(s, a);
    text_vec(s, b);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    cr_assert_float_eq(dot(a, a, QG_EMBED_TEXT_DIM), 1.0, 1e-5);
    int nonzero = 0;
    for (int i = 0; i < QG_EMBED_TEXT_DIM; i++) nonzero += a[i] != 0;
    cr_assert_gt(nonzero, 20, "features spread over buckets (%d)", nonzero);
    /* case does not matter; the length argument is honoured */
    float c[QG_EMBED_TEXT_DIM];
    text_vec("BULLISH BREAK OF STRUCTURE ON eurusd IN THE LONDON SESSION", c);
    cr_assert_eq(memcmp(a, c, sizeof a), 0);
    qg_embed_text("London session and more", 14, b);
    text_vec("London session", c);
    cr_assert_eq(memcmp(b, c, sizeof b), 0);
}

Test(embed, text_fixed_values)
{
    /* the scheme is stored in vectors: a silent change would break old collections */
    float a[QG_EMBED_TEXT_DIM];
    text_vec("order block", a);
    float b[QG_EMBED_TEXT_DIM];
    text_vec("order block", b);
    double s = 0;
    for (int i = 0; i < QG_EMBED_TEXT_DIM; i++) s += fabs(a[i] - b[i]);
    cr_assert_eq(s, 0.0);
    /* single word: the word itself, its 3-grams <or ord rde der er> and 4-grams */
    text_vec("order", a);
    int nonzero = 0;
    for (int i = 0; i < QG_EMBED_TEXT_DIM; i++) nonzero += a[i] != 0;
    cr_assert(nonzero >= 8 && nonzero <= 10, "%d buckets for 'order'", nonzero);
}

/* A checksum of the float bits of a few texts' vectors, so any change to
 * the scheme's output (not only to its shape) fails. */
static uint64_t bits_checksum(const char *const *texts, size_t n)
{
    uint64_t h = 0;
    for (size_t t = 0; t < n; t++) {
        float v[QG_EMBED_TEXT_DIM];
        text_vec(texts[t], v);
        for (int i = 0; i < QG_EMBED_TEXT_DIM; i++) {
            uint32_t u;
            memcpy(&u, &v[i], sizeof u);
            h = h * 31 + u;
        }
    }
    return h;
}

static const char *const pinned_texts[] = {
    "EURUSD 15m CHoCH session london confluences: HTF_BIAS_BULL, DAILY_ABOVE_MID, 4H_SUPPORT "
    "multi-timeframe. Analysis score 75, risk medium. EURUSD 15m CHoCH long: score 75/100, risk "
    "medium, action buy. Raised by: confidence 85 (+9), higher-timeframe bias (+8), higher "
    "timeframes agree (+8), inside the London killzone (+5), support/resistance level (+4), "
    "structure signal (CHoCH) (+4), prior-day mid (+3), stop sized to the candle (1.30x its "
    "range) (+3). Lowered by: reward:risk 0.85 is below 1 (-14).",
    "EURUSD 15m CHoCH session london confluences: HTF_BIAS_BULL, DAILY_ABOVE_MID, 4H_SUPPORT "
    "multi-timeframe",
};

/* The value the first implementation of version 1 gave. */
#define PINNED_CHECKSUM 0x9ab8226eadd582dcULL

Test(embed, text_vectors_are_the_scheme_bit_for_bit)
{
    cr_assert_eq(bits_checksum(pinned_texts, 2), PINNED_CHECKSUM);
}

static void *pinned_in_thread(void *out)
{
    *(uint64_t *)out = bits_checksum(pinned_texts, 2);
    return NULL;
}

Test(embed, text_after_long_texts_is_unchanged)
{
    /* Each thread reuses one feature table: after a text that needs a
     * table of its own (longer than the thread's) and one that fills the
     * thread's table, the pinned texts come out as in a fresh thread. */
    size_t big = 40000;
    char *s = malloc(big + 1);
    cr_assert_not_null(s);
    for (size_t i = 0; i < big; i++) s[i] = (char)(i % 7 == 6 ? ' ' : 'a' + (i * 7919 % 26));
    s[big] = 0;
    float v[QG_EMBED_TEXT_DIM];
    qg_embed_text(s, big, v);
    qg_embed_text(s, 3000, v);
    free(s);
    cr_assert_eq(bits_checksum(pinned_texts, 2), PINNED_CHECKSUM);
    uint64_t fresh = 0;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, pinned_in_thread, &fresh), 0);
    pthread_join(t, NULL);
    cr_assert_eq(fresh, PINNED_CHECKSUM);
}

Test(embed, text_empty_and_no_words)
{
    float a[QG_EMBED_TEXT_DIM];
    memset(a, 0x7f, sizeof a);
    qg_embed_text("", 0, a);
    for (int i = 0; i < QG_EMBED_TEXT_DIM; i++) cr_assert_eq(a[i], 0.0f);
    text_vec("  ... --- !!! ", a);
    for (int i = 0; i < QG_EMBED_TEXT_DIM; i++) cr_assert_eq(a[i], 0.0f);
    qg_embed_text(NULL, 0, a);
    for (int i = 0; i < QG_EMBED_TEXT_DIM; i++) cr_assert_eq(a[i], 0.0f);
}

Test(embed, text_utf8_words_whole)
{
    /* UTF-8 letters are part of words: "über" is not "ber" */
    cr_assert_lt(text_cos("über", "ber"), 0.9);
    cr_assert_float_eq(text_cos("Марка тренд", "марка тренд"),
                       text_cos("Марка тренд", "марка тренд"), 0);
    cr_assert_gt(text_cos("тренд вверх", "тренд вверх сильный"), 0.6);
}

Test(embed, text_paraphrase_ranks_above_unrelated)
{
    static const char *const triples[][3] = {
        {"bullish break of structure on EURUSD in the London session",
         "EURUSD bullish BOS (break in structure) during the London session",
         "how to cook pasta with tomato sauce and garlic"},
        {"bullish break of structure on EURUSD in the London session",
         "EURUSD broke structure to the upside in London",
         "Pine Script: use var to declare a variable that is initialised only once"},
        {"risk 1% per trade, no trading on Fridays",
         "never trade on Friday and risk one percent per trade",
         "the weather in Paris is sunny today"},
        {"fair value gap filled on GBPUSD after the New York open",
         "GBPUSD filled its fair value gap after New York opened",
         "MQL5 OrderSend returns a bool and fills the MqlTradeResult structure"},
        {"How do I declare an array in MQL5?", "declaring arrays in MQL5",
         "bullish order block on gold in the Asia session"},
        {"stop loss moved to break even after the first target",
         "moved the stop to breakeven once target one was hit",
         "calendar of central bank interest rate meetings"},
    };
    for (size_t i = 0; i < sizeof triples / sizeof triples[0]; i++) {
        double para = text_cos(triples[i][0], triples[i][1]);
        double unrel = text_cos(triples[i][0], triples[i][2]);
        cr_assert_gt(para, unrel + 0.15, "triple %zu: paraphrase %.3f vs unrelated %.3f", i, para,
                     unrel);
    }
}

/* ---- market setups ------------------------------------------------------- */

typedef struct series {
    double o[120], h[120], l[120], c[120];
} series;

/* A deterministic walk: drift per bar, a wiggle, and a range of rng. */
static void make_series(series *s, size_t n, double drift, double wiggle, double rng, unsigned seed)
{
    double p = 100;
    unsigned x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        double u = ((x >> 8) & 0xffff) / 65535.0 - 0.5;
        double np = p * exp(drift + wiggle * u);
        s->o[i] = p;
        s->c[i] = np;
        s->h[i] = fmax(p, np) * (1 + rng);
        s->l[i] = fmin(p, np) * (1 - rng);
        p = np;
    }
}

static qg_market_setup setup_of(const series *s, size_t n)
{
    return (qg_market_setup){
        .open = s->o, .high = s->h, .low = s->l, .close = s->c, .n_bars = n, .confidence = -1};
}

Test(embed, market_unit_length_and_deterministic)
{
    series s;
    make_series(&s, 60, 0.002, 0.004, 0.001, 1);
    qg_market_setup m = setup_of(&s, 60);
    m.trend = 1;
    m.structure = "bos_bull";
    m.session = "london";
    m.signal_type = "BoS_bull";
    const char *conf[] = {"FVG", "OB"};
    m.confluences = conf;
    m.n_confluences = 2;
    m.confidence = 80;
    float a[QG_EMBED_MARKET_DIM], b[QG_EMBED_MARKET_DIM];
    qg_error err = {0};
    cr_assert_eq(qg_embed_market(&m, a, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(qg_embed_market(&m, b, &err), QG_OK);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    cr_assert_float_eq(dot(a, a, QG_EMBED_MARKET_DIM), 1.0, 1e-5);
}

static void embed_walk(double drift, int trend, const char *structure, const char *session,
                       const char *sig, unsigned seed, float *out)
{
    series s;
    make_series(&s, 60, drift, 0.004, 0.001, seed);
    qg_market_setup m = setup_of(&s, 60);
    m.trend = trend;
    m.structure = structure;
    m.session = session;
    m.signal_type = sig;
    qg_error err = {0};
    cr_assert_eq(qg_embed_market(&m, out, &err), QG_OK, "%s", err.msg);
}

Test(embed, market_similar_setups_closer)
{
    float up1[QG_EMBED_MARKET_DIM], up2[QG_EMBED_MARKET_DIM], down[QG_EMBED_MARKET_DIM];
    float up_other_labels[QG_EMBED_MARKET_DIM];
    /* two different up-trending walks with the same labels */
    embed_walk(0.002, 1, "bos_bull", "london", "BoS_bull", 1, up1);
    embed_walk(0.0025, 1, "bos_bull", "london", "BoS_bull", 7, up2);
    embed_walk(-0.002, -1, "bos_bear", "london", "BoS_bear", 3, down);
    embed_walk(0.002, 1, "choch_bear", "asia", "FVG_bear", 1, up_other_labels);
    double same = dot(up1, up2, QG_EMBED_MARKET_DIM);
    double opposite = dot(up1, down, QG_EMBED_MARKET_DIM);
    double relabelled = dot(up1, up_other_labels, QG_EMBED_MARKET_DIM);
    cr_assert_gt(same, opposite + 0.3, "same %.3f opposite %.3f", same, opposite);
    cr_assert_gt(same, relabelled + 0.1, "same %.3f relabelled %.3f", same, relabelled);
    /* the same prices with other labels are still closer than opposite prices and labels */
    cr_assert_gt(relabelled, opposite, "relabelled %.3f opposite %.3f", relabelled, opposite);
}

Test(embed, market_prices_matter_without_labels)
{
    float a[QG_EMBED_MARKET_DIM], b[QG_EMBED_MARKET_DIM], c[QG_EMBED_MARKET_DIM];
    embed_walk(0.003, 0, NULL, NULL, NULL, 11, a);
    embed_walk(0.003, 0, NULL, NULL, NULL, 12, b);
    embed_walk(-0.003, 0, NULL, NULL, NULL, 13, c);
    cr_assert_gt(dot(a, b, QG_EMBED_MARKET_DIM), dot(a, c, QG_EMBED_MARKET_DIM) + 0.2);
}

Test(embed, market_validation_names_field)
{
    series s;
    make_series(&s, 10, 0, 0.01, 0.001, 5);
    qg_market_setup m = setup_of(&s, 1);
    float v[QG_EMBED_MARKET_DIM];
    qg_error err = {0};
    cr_assert_eq(qg_embed_market(&m, v, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "bars"), "%s", err.msg);
    m.n_bars = 10;
    s.h[4] = s.l[4] * 0.9;
    cr_assert_eq(qg_embed_market(&m, v, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "bars[4]") && strstr(err.msg, "below low"), "%s", err.msg);
    make_series(&s, 10, 0, 0.01, 0.001, 5);
    s.c[2] = NAN;
    cr_assert_eq(qg_embed_market(&m, v, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "bars[2]"), "%s", err.msg);
    make_series(&s, 10, 0, 0.01, 0.001, 5);
    m.structure = "bos_sideways";
    cr_assert_eq(qg_embed_market(&m, v, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "structure") && strstr(err.msg, "bos_sideways"), "%s", err.msg);
    m.structure = NULL;
    m.session = "sydney";
    cr_assert_eq(qg_embed_market(&m, v, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "session"), "%s", err.msg);
    m.session = NULL;
    cr_assert_eq(qg_embed_market(&m, v, &err), QG_OK, "%s", err.msg);
}

static qg_status embed_json(const char *text, float *v, qg_error *err)
{
    cJSON *j = cJSON_Parse(text);
    cr_assert_not_null(j, "test JSON parses: %s", text);
    qg_status rc = qg_embed_market_json(j, v, err);
    cJSON_Delete(j);
    return rc;
}

Test(embed, market_json_forms)
{
    float a[QG_EMBED_MARKET_DIM], b[QG_EMBED_MARKET_DIM];
    qg_error err = {0};
    cr_assert_eq(
        embed_json(
            "{\"bars\":[{\"open\":1.10,\"high\":1.102,\"low\":1.099,\"close\":1.101},"
            "{\"open\":1.101,\"high\":1.104,\"low\":1.100,\"close\":1.103,\"time\":\"x\"},"
            "{\"open\":1.103,\"high\":1.106,\"low\":1.102,\"close\":1.105}],"
            "\"trend\":\"up\",\"structure\":\"bos_bull\",\"session\":\"london\","
            "\"signal_type\":\"BoS_bull\",\"confluences\":[\"FVG\",\"OB\"],\"confidence\":80}",
            a, &err),
        QG_OK, "%s", err.msg);
    cr_assert_float_eq(dot(a, a, QG_EMBED_MARKET_DIM), 1.0, 1e-5);
    /* the struct form gives the same vector */
    double o[] = {1.10, 1.101, 1.103}, h[] = {1.102, 1.104, 1.106}, l[] = {1.099, 1.100, 1.102},
           c[] = {1.101, 1.103, 1.105};
    const char *conf[] = {"FVG", "OB"};
    qg_market_setup m = {.open = o,
                         .high = h,
                         .low = l,
                         .close = c,
                         .n_bars = 3,
                         .trend = 1,
                         .structure = "bos_bull",
                         .session = "london",
                         .signal_type = "BoS_bull",
                         .confluences = conf,
                         .n_confluences = 2,
                         .confidence = 80};
    cr_assert_eq(qg_embed_market(&m, b, &err), QG_OK);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    /* close-only */
    cr_assert_eq(
        embed_json("{\"close\":[1.1,1.2,1.15,1.3],\"trend\":\"range\",\"session\":null}", a, &err),
        QG_OK, "%s", err.msg);
    cr_assert_float_eq(dot(a, a, QG_EMBED_MARKET_DIM), 1.0, 1e-5);
}

Test(embed, market_json_errors_name_member)
{
    static const struct {
        const char *json, *want1, *want2;
    } cases[] = {
        {"{\"close\":[1,2],\"colour\":\"red\"}", "colour", "unknown member"},
        {"{\"trend\":\"up\"}", "bars", "missing"},
        {"{\"close\":[1,2],\"bars\":[]}", "close", "not both"},
        {"{\"close\":[1]}", "close", "expected 2"},
        {"{\"close\":[1,\"2\"]}", "close[1]", "number"},
        {"{\"close\":[1,2],\"trend\":\"sideways\"}", "trend", "up"},
        {"{\"close\":[1,2],\"structure\":7}", "structure", "string"},
        {"{\"close\":[1,2],\"session\":\"mars\"}", "session", "mars"},
        {"{\"close\":[1,2],\"confluences\":\"FVG\"}", "confluences", "array"},
        {"{\"close\":[1,2],\"confluences\":[\"FVG\",3]}", "confluences[1]", "string"},
        {"{\"close\":[1,2],\"confidence\":250}", "confidence", "0..100"},
        {"{\"bars\":[{\"open\":1,\"high\":2,\"low\":1,\"close\":1.5},{\"high\":2,\"low\":1}]}",
         "bars[1].close", "missing"},
        {"{\"bars\":[{\"open\":1,\"high\":2,\"low\":1,\"close\":1.5,\"vwap\":1},{\"close\":1}]}",
         "bars[0].vwap", "unknown member"},
        {"{\"bars\":[{\"open\":1,\"high\":0.5,\"low\":1,\"close\":1},{\"high\":2,\"low\":1,"
         "\"close\":1}]}",
         "bars[0]", "below low"},
        {"[1,2]", "setup", "object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float v[QG_EMBED_MARKET_DIM];
        qg_error err = {0};
        cr_assert_eq(embed_json(cases[i].json, v, &err), QG_EINVAL, "case %zu accepted: %s", i,
                     cases[i].json);
        cr_assert(strstr(err.msg, cases[i].want1) && strstr(err.msg, cases[i].want2),
                  "case %zu: '%s'", i, err.msg);
    }
}
