/*
 * embed.h - the offline embedders: text by feature hashing, and market
 * setups as numeric vectors.
 *
 * Text: words (lower-cased, split on anything that is not a letter or a
 * digit) and character n-grams of each word are hashed into
 * QG_EMBED_TEXT_DIM buckets with a signed hash, weighted (words and bigrams
 * above character n-grams; see embed.c for the exact scheme) and normalised
 * to unit length. Deterministic across machines and runs, no model file,
 * and good enough that a near-paraphrase ranks above unrelated text. Used
 * when a collection's embedder is "hash" (the default); provider models go
 * through the AI layer (src/ai/embed.h).
 *
 * Market setup: a fixed-length vector describing the situation, not the
 * words (normalised recent returns and ranges, volatility, trend, ICT
 * structure state, session, signal type, confluences), so "setups like this
 * one" finds similar markets. Each block is scaled so no single feature
 * dominates the cosine distance; the layout is documented in embed.c and
 * docs/memory.md.
 *
 * Both are pure functions: no I/O, no globals, safe on any thread.
 */
#ifndef QG_MEMORY_EMBED_H
#define QG_MEMORY_EMBED_H

#include <quantgate/status.h>

#include <cjson/cJSON.h>
#include <stddef.h>

#define QG_EMBED_TEXT_DIM   256
#define QG_EMBED_MARKET_DIM 64
#define QG_SETUP_MAX_BARS   500

/* Writes QG_EMBED_TEXT_DIM floats to out (unit length, or all zero for text
 * with no words). */
void qg_embed_text(const char *text, size_t len, float *out);

typedef struct qg_market_setup {
    const double *open, *high, *low, *close; /* recent bars, oldest first */
    size_t n_bars;                           /* 2..QG_SETUP_MAX_BARS */
    int trend;                               /* -1 down, 0 range, +1 up */
    const char *structure;   /* "", "bos_bull", "bos_bear", "choch_bull", "choch_bear" */
    const char *session;     /* "asia", "london", "new_york", "off", or NULL */
    const char *signal_type; /* as the alert names it ("BoS_bull", "FVG_bear", ...), or NULL */
    const char *const *confluences;
    size_t n_confluences;
    double confidence; /* 0..100, or < 0 when unknown */
} qg_market_setup;

/* Writes QG_EMBED_MARKET_DIM floats to out. QG_EINVAL naming the field when
 * the setup is unusable (too few bars, a bar whose high is below its low, a
 * non-finite price, an unknown structure or session). */
qg_status qg_embed_market(const qg_market_setup *s, float *out, qg_error *err);

/* The same from JSON, as the HTTP API takes it:
 *   {"bars":[{"open":..,"high":..,"low":..,"close":..},...] or
 *    "close":[...] (then high = low = open = close),
 *    "trend":"up"|"down"|"range", "structure":"bos_bull"|..., "session":"london",
 *    "signal_type":"BoS_bull", "confluences":["FVG","OB"], "confidence":80}
 * Unknown members are rejected; errors name the member and the reason. */
qg_status qg_embed_market_json(const cJSON *setup, float *out, qg_error *err);

#endif
