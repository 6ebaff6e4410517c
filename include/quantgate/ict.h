/*
 * ict.h - the native ICT / Smart Money Concepts detector: swing highs and
 * lows, break of structure, change of character, fair value gaps,
 * liquidity pools (equal highs and lows) and their sweeps, order blocks,
 * prior-day high/low/mid (premium and discount), higher-timeframe bias and
 * killzones. docs/ict.md defines every concept precisely.
 *
 * The detector is incremental and causal: qg_ict_push takes one closed bar
 * and returns the events that bar makes known, computed only from that bar
 * and the bars before it. A swing is reported when it is confirmed,
 * swing_length bars after its pivot; the higher-timeframe bias uses only
 * completed higher-timeframe bars. So running the detector over a prefix of
 * a series yields exactly the prefix of the events of the full run.
 *
 * Pure engine: no I/O, no globals, no allocation after qg_ict_new. One
 * detector is not thread-safe; use one per (symbol, timeframe).
 */
#ifndef QUANTGATE_ICT_H
#define QUANTGATE_ICT_H

#include <quantgate/bars.h>
#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    QG_ICT_SWING_HIGH, /* a pivot high, confirmed swing_length bars later */
    QG_ICT_SWING_LOW,
    QG_ICT_BOS,   /* close beyond the last swing in the direction of the trend */
    QG_ICT_CHOCH, /* the first close beyond a swing against the trend */
    QG_ICT_FVG,   /* three-bar gap */
    QG_ICT_OB,    /* the last opposite candle before the break */
    QG_ICT_EQH,   /* equal highs: a buy-side liquidity pool */
    QG_ICT_EQL,   /* equal lows: a sell-side liquidity pool */
    QG_ICT_SWEEP, /* a pool traded through and closed back inside */
    QG_ICT_NTYPES
} qg_ict_type;

/* Killzones (sessions in New York / London wall-clock time). */
typedef enum {
    QG_ICT_KZ_NONE = 0,
    QG_ICT_KZ_LONDON,   /* 07:00-10:00 Europe/London, Mon-Fri */
    QG_ICT_KZ_NEW_YORK, /* 07:00-10:00 America/New_York, Mon-Fri */
    QG_ICT_KZ_ASIA      /* 20:00-24:00 America/New_York, Mon-Fri */
} qg_ict_killzone;

/* Confluences, as bits of qg_ict_event.confluences. */
enum {
    QG_ICT_C_HTF_BIAS_BULL = 1u << 0,
    QG_ICT_C_HTF_BIAS_BEAR = 1u << 1,
    QG_ICT_C_DISCOUNT = 1u << 2, /* long, close below the prior-day mid */
    QG_ICT_C_PREMIUM = 1u << 3,  /* short, close above the prior-day mid */
    QG_ICT_C_FVG = 1u << 4,
    QG_ICT_C_OB = 1u << 5,
    QG_ICT_C_LIQUIDITY_SWEEP = 1u << 6,
    QG_ICT_C_KILLZONE_LONDON = 1u << 7,
    QG_ICT_C_KILLZONE_NEW_YORK = 1u << 8,
    QG_ICT_C_KILLZONE_ASIA = 1u << 9,
    QG_ICT_C_COUNT = 10
};

/* Optional killzone test replacing the built-in US/UK daylight-saving
 * rules: the session containing the UTC instant ts_ms (a bar's open). */
typedef qg_ict_killzone (*qg_ict_killzone_fn)(void *ud, int64_t ts_ms);

/* Zero values mean the defaults in brackets. */
typedef struct qg_ict_config {
    int swing_length;        /* pivot bars on each side [5], 1..100 */
    int64_t timeframe_ms;    /* bar width, to close an HTF bucket on its last bar [0: unknown] */
    int64_t htf_ms;          /* higher timeframe for the bias [0: no bias] */
    int htf_swing_length;    /* pivot bars on the higher timeframe [3] */
    int atr_period;          /* Wilder ATR [14] */
    double eq_tolerance_atr; /* equal highs/lows within this many ATRs [0.1] */
    double fvg_min_atr;      /* minimum FVG size in ATRs [0: any gap] */
    int ob_lookback;         /* bars searched back for an order block [50] */
    int confluence_bars;     /* how recent an FVG or sweep must be to count [10] */
    double rr;               /* take-profit at rr times the risk [2] */
    bool no_killzones;       /* no killzone confluences */
    qg_ict_killzone_fn killzone; /* NULL: built-in rules */
    void *killzone_ud;
} qg_ict_config;

typedef struct qg_ict_event {
    int64_t ts; /* the bar that made the event known (its open time) */
    qg_ict_type type;
    int dir;                       /* +1 bullish, -1 bearish */
    double open, high, low, close; /* of that bar */
    double level;                  /* swing price, broken swing, pool level, swept pool */
    double zone_lo, zone_hi;       /* FVG gap, OB candle range (else level, level) */
    int64_t ref_ts;                /* the bar the concept is about: pivot, broken swing, OB candle,
                                      FVG's first bar, the pool's earlier swing */
    bool has_sl, has_tp;
    double sl, tp;
    int confidence;       /* 0..100 */
    unsigned confluences; /* QG_ICT_C_* bits */
} qg_ict_event;

/* What the detector knows after the last bar (for tests and displays). */
typedef struct qg_ict_state {
    size_t bars;
    int trend;       /* +1, -1, 0 before the first break */
    int htf_bias;    /* +1, -1, 0 (no HTF or no HTF break yet) */
    size_t htf_bars; /* completed higher-timeframe bars */
    bool has_prior_day;
    double pd_high, pd_low, pd_mid;
    double atr;
    bool has_swing_high, has_swing_low;
    double swing_high, swing_low; /* last confirmed */
    qg_ict_killzone killzone;     /* of the last bar */
} qg_ict_state;

typedef struct qg_ict qg_ict;

/* At most this many events come out of one bar. */
#define QG_ICT_MAX_EVENTS_PER_BAR 16

/* Fills the defaults into a zeroed or partial config. */
void qg_ict_config_defaults(qg_ict_config *c);

/* Validates cfg (NULL: defaults) and allocates a detector; the caller owns
 * *out (qg_ict_free). The error names the field and the reason. */
qg_status qg_ict_new(const qg_ict_config *cfg, qg_ict **out, qg_error *err);
void qg_ict_free(qg_ict *d);

/* Feeds the next closed bar (ts strictly increasing, low <= open,close <=
 * high). Writes up to cap events into out and their number into *n;
 * QG_ERANGE if more than cap were produced (cap QG_ICT_MAX_EVENTS_PER_BAR
 * always suffices), QG_EINVAL for a bar out of order or inconsistent (the
 * detector is unchanged then). */
qg_status qg_ict_push(qg_ict *d, int64_t ts, double o, double h, double l, double c, double v,
                      qg_ict_event *out, size_t cap, size_t *n, qg_error *err);

void qg_ict_state_get(const qg_ict *d, qg_ict_state *out);

/* Runs a new detector over all bars (cfg->timeframe_ms 0: bars'). *out is
 * a malloc'd array of *n events the caller frees (NULL when none). */
qg_status qg_ict_run(const qg_ict_config *cfg, const qg_bars *bars, qg_ict_event **out, size_t *n,
                     qg_error *err);

/* "swing_high", "swing_low", "BoS", "CHoCH", "FVG", "OB", "EQH", "EQL",
 * "liquidity_sweep". */
const char *qg_ict_type_name(qg_ict_type t);
/* True for the types that become signals (BoS, CHoCH, FVG, OB, sweep). */
bool qg_ict_is_signal(qg_ict_type t);
/* "HTF_BIAS_BULL", ... for one bit (index 0..QG_ICT_C_COUNT-1). */
const char *qg_ict_confluence_name(int bit);
/* Fills names with the event's confluence names (in bit order); returns
 * how many (at most cap). */
int qg_ict_confluence_names(unsigned confluences, const char **names, int cap);
/* "london", "new_york", "asia", "" */
const char *qg_ict_killzone_name(qg_ict_killzone k);

/* The built-in killzone rules (US and UK daylight saving in pure code). */
qg_ict_killzone qg_ict_killzone_at(int64_t ts_ms);
/* UTC offsets in seconds of New York and London at a UTC instant. */
int qg_ict_ny_offset(int64_t ts_ms);
int qg_ict_london_offset(int64_t ts_ms);

#endif
