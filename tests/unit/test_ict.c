/*
 * test_ict.c - the ICT detector on hand-built bar sequences, one per
 * concept (docs/ict.md), the killzone rules across daylight-saving
 * changes, and the no-look-ahead property: cutting future bars never
 * changes a past detection.
 */
#include <criterion/criterion.h>

#include <quantgate/bars.h>
#include <quantgate/ict.h>
#include <quantgate/time.h>

#include <stdlib.h>
#include <string.h>

#define T0   1704153600000LL /* 2024-01-02T00:00Z, a Tuesday */
#define HOUR QG_MS_PER_HOUR

typedef struct {
    double o, h, l, c;
} ohlc;

typedef struct {
    qg_ict_event ev[256];
    size_t n;
    size_t bar_of[256]; /* the index of the bar that produced each event */
} events;

static qg_ict *make(qg_ict_config *c)
{
    qg_ict *d = NULL;
    qg_error err = {0};
    cr_assert_eq(qg_ict_new(c, &d, &err), QG_OK, "%s", err.msg);
    return d;
}

/* Pushes bars starting at bar index `first` (times T0 + i * step). */
static void feed(qg_ict *d, const ohlc *b, size_t n, size_t first, int64_t step, events *all)
{
    for (size_t i = 0; i < n; i++) {
        qg_ict_event out[QG_ICT_MAX_EVENTS_PER_BAR];
        size_t k = 0;
        qg_error err = {0};
        size_t idx = first + i;
        cr_assert_eq(qg_ict_push(d, T0 + (int64_t)idx * step, b[i].o, b[i].h, b[i].l, b[i].c, 1,
                                 out, QG_ICT_MAX_EVENTS_PER_BAR, &k, &err),
                     QG_OK, "bar %zu: %s", idx, err.msg);
        for (size_t j = 0; j < k && all->n < 256; j++) {
            all->bar_of[all->n] = idx;
            all->ev[all->n++] = out[j];
        }
    }
}

static const qg_ict_event *find(const events *e, qg_ict_type t, int dir, size_t *bar)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->ev[i].type == t && (dir == 0 || e->ev[i].dir == dir)) {
            if (bar) *bar = e->bar_of[i];
            return &e->ev[i];
        }
    return NULL;
}

static size_t count(const events *e, qg_ict_type t)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++) n += e->ev[i].type == t;
    return n;
}

Test(ict, swing_high_confirmed_exactly_n_bars_later)
{
    qg_ict_config c = {.swing_length = 2, .no_killzones = true};
    qg_ict *d = make(&c);
    static const ohlc b[] = {{9.5, 10, 9, 9.8},  {9.8, 11, 9.5, 10.5}, {10.5, 15, 10, 12},
                             {12, 12, 10.5, 11}, {11, 11, 10, 10.2},   {10.2, 10, 9.6, 9.8}};
    events e = {0};
    /* bars 0..3: the pivot at bar 2 is not known yet */
    feed(d, b, 4, 0, HOUR, &e);
    cr_assert_null(find(&e, QG_ICT_SWING_HIGH, 0, NULL), "a swing reported before confirmation");
    qg_ict_state st;
    qg_ict_state_get(d, &st);
    cr_assert_not(st.has_swing_high);
    feed(d, b + 4, 1, 4, HOUR, &e);
    size_t at = 0;
    const qg_ict_event *sh = find(&e, QG_ICT_SWING_HIGH, 0, &at);
    cr_assert_not_null(sh);
    cr_assert_eq(at, 4, "confirmed at bar %zu, expected 2 + swing_length = 4", at);
    cr_assert_eq(sh->ts, T0 + 4 * HOUR);
    cr_assert_eq(sh->ref_ts, T0 + 2 * HOUR);
    cr_assert_float_eq(sh->level, 15, 1e-12);
    cr_assert_not(qg_ict_is_signal(sh->type));
    qg_ict_free(d);
}

Test(ict, equal_high_is_not_a_pivot_on_the_left)
{
    /* a pivot must be strictly above the bars before it */
    qg_ict_config c = {.swing_length = 1, .no_killzones = true};
    qg_ict *d = make(&c);
    static const ohlc b[] = {{10, 12, 9, 10}, {10, 12, 9, 10}, {10, 11, 9, 10}};
    events e = {0};
    feed(d, b, 3, 0, HOUR, &e);
    cr_assert_null(find(&e, QG_ICT_SWING_HIGH, 0, NULL));
    qg_ict_free(d);
}

/* Swing high 12 (bar 1), swing low 10.2 (bar 3), bar 4 closes at 12.3 above
 * 12: BoS up; bar 6 closes at 10.0 below 10.2: CHoCH down. */
static const ohlc structure_bars[] = {
    {10, 11, 9, 10.5},       {10.5, 12, 10, 11.5},     {11.5, 11.8, 10.5, 11},
    {11, 11.2, 10.2, 10.4},  {10.4, 12.5, 10.3, 12.3}, {12.3, 12.4, 11, 11.2},
    {11.2, 11.3, 9.8, 10.0},
};

Test(ict, break_of_structure_then_change_of_character)
{
    qg_ict_config c = {.swing_length = 1, .no_killzones = true};
    qg_ict *d = make(&c);
    events e = {0};
    feed(d, structure_bars, 7, 0, HOUR, &e);
    size_t at = 0;
    const qg_ict_event *bos = find(&e, QG_ICT_BOS, +1, &at);
    cr_assert_not_null(bos);
    cr_assert_eq(at, 4);
    cr_assert_float_eq(bos->level, 12, 1e-12);
    cr_assert_eq(bos->ref_ts, T0 + 1 * HOUR);
    cr_assert_float_eq(bos->close, 12.3, 1e-12);
    cr_assert(bos->has_sl && bos->sl < bos->close, "sl %g", bos->sl);
    cr_assert(bos->has_tp && bos->tp > bos->close);
    cr_assert_float_eq(bos->tp - bos->close, 2 * (bos->close - bos->sl), 1e-9);
    cr_assert(bos->confidence >= 50 && bos->confidence <= 100);

    const qg_ict_event *ch = find(&e, QG_ICT_CHOCH, -1, &at);
    cr_assert_not_null(ch, "the first close below the swing low in an up-trend is a CHoCH");
    cr_assert_eq(at, 6);
    cr_assert_float_eq(ch->level, 10.2, 1e-12);
    cr_assert_eq(ch->ref_ts, T0 + 3 * HOUR);
    cr_assert(ch->sl > ch->close && ch->tp < ch->close);
    cr_assert_eq(count(&e, QG_ICT_BOS), 1);
    cr_assert_eq(count(&e, QG_ICT_CHOCH), 1);
    qg_ict_state st;
    qg_ict_state_get(d, &st);
    cr_assert_eq(st.trend, -1);
    qg_ict_free(d);
}

Test(ict, order_block_is_the_last_opposite_candle)
{
    qg_ict_config c = {.swing_length = 1, .no_killzones = true};
    qg_ict *d = make(&c);
    events e = {0};
    feed(d, structure_bars, 7, 0, HOUR, &e);
    size_t at = 0;
    const qg_ict_event *ob = find(&e, QG_ICT_OB, +1, &at);
    cr_assert_not_null(ob);
    cr_assert_eq(at, 4, "known at the break");
    cr_assert_eq(ob->ref_ts, T0 + 3 * HOUR, "bar 3 is the last down candle before the break");
    cr_assert_float_eq(ob->zone_lo, 10.2, 1e-12);
    cr_assert_float_eq(ob->zone_hi, 11.2, 1e-12);
    cr_assert_float_eq(ob->sl, 10.2, 1e-12);
    const qg_ict_event *bear = find(&e, QG_ICT_OB, -1, &at);
    cr_assert_not_null(bear);
    cr_assert_eq(at, 6);
    cr_assert_eq(bear->ref_ts, T0 + 4 * HOUR, "bar 4 is the last up candle before the drop");
    cr_assert_float_eq(bear->zone_lo, 10.3, 1e-12);
    cr_assert_float_eq(bear->zone_hi, 12.5, 1e-12);
    qg_ict_free(d);
}

Test(ict, fair_value_gap_and_minimum_size)
{
    static const ohlc b[] = {{9.5, 10, 9, 9.8}, {9.8, 12, 9.5, 11.9}, {11.9, 13, 10.5, 12.5}};
    qg_ict_config c = {.swing_length = 3, .no_killzones = true};
    qg_ict *d = make(&c);
    events e = {0};
    feed(d, b, 3, 0, HOUR, &e);
    size_t at = 0;
    const qg_ict_event *f = find(&e, QG_ICT_FVG, +1, &at);
    cr_assert_not_null(f);
    cr_assert_eq(at, 2);
    cr_assert_float_eq(f->zone_lo, 10, 1e-12);
    cr_assert_float_eq(f->zone_hi, 10.5, 1e-12);
    cr_assert_eq(f->ref_ts, T0);
    cr_assert_null(find(&e, QG_ICT_FVG, -1, NULL));
    qg_ict_free(d);

    /* the same gap (0.5) below a minimum of 1 ATR (about 2.3) is not reported */
    qg_ict_config c2 = {.swing_length = 3, .no_killzones = true, .fvg_min_atr = 1};
    d = make(&c2);
    events e2 = {0};
    feed(d, b, 3, 0, HOUR, &e2);
    cr_assert_null(find(&e2, QG_ICT_FVG, 0, NULL));
    qg_ict_free(d);

    /* a bearish gap: high of bar 2 below the low of bar 0 */
    static const ohlc s[] = {{10.5, 11, 10, 10.2}, {10.2, 10.3, 8, 8.1}, {8.1, 9.5, 7.5, 8}};
    d = make(&c);
    events e3 = {0};
    feed(d, s, 3, 0, HOUR, &e3);
    f = find(&e3, QG_ICT_FVG, -1, NULL);
    cr_assert_not_null(f);
    cr_assert_float_eq(f->zone_lo, 9.5, 1e-12);
    cr_assert_float_eq(f->zone_hi, 10, 1e-12);
    qg_ict_free(d);
}

Test(ict, equal_highs_then_liquidity_sweep)
{
    static const ohlc b[] = {
        {11, 11.5, 10.5, 11},     {11, 12.0, 10.8, 11.5},    {11.5, 11.6, 10.6, 10.8},
        {10.8, 11.0, 10, 10.5},   {10.5, 12.02, 10.4, 11.8}, {11.8, 11.9, 11.0, 11.2},
        {11.2, 12.3, 11.1, 11.9},
    };
    qg_ict_config c = {.swing_length = 1, .no_killzones = true, .eq_tolerance_atr = 0.5};
    qg_ict *d = make(&c);
    events e = {0};
    feed(d, b, 6, 0, HOUR, &e);
    size_t at = 0;
    const qg_ict_event *eq = find(&e, QG_ICT_EQH, 0, &at);
    cr_assert_not_null(eq, "12.00 and 12.02 are within 0.5 ATR");
    cr_assert_eq(at, 5, "known when the second high is confirmed");
    cr_assert_float_eq(eq->level, 12.02, 1e-12);
    cr_assert_eq(eq->ref_ts, T0 + 1 * HOUR);
    cr_assert_null(find(&e, QG_ICT_SWEEP, 0, NULL));
    feed(d, b + 6, 1, 6, HOUR, &e);
    const qg_ict_event *sw = find(&e, QG_ICT_SWEEP, -1, &at);
    cr_assert_not_null(sw, "a wick above the pool and a close back below is a sweep");
    cr_assert_eq(at, 6);
    cr_assert_float_eq(sw->level, 12.02, 1e-12);
    cr_assert_float_eq(sw->sl, 12.3, 1e-12);
    cr_assert_null(find(&e, QG_ICT_BOS, 0, NULL));
    qg_ict_free(d);

    /* with a tight tolerance the highs are not equal */
    qg_ict_config c2 = {.swing_length = 1, .no_killzones = true, .eq_tolerance_atr = 0.001};
    d = make(&c2);
    events e2 = {0};
    feed(d, b, 7, 0, HOUR, &e2);
    cr_assert_null(find(&e2, QG_ICT_EQH, 0, NULL));
    cr_assert_null(find(&e2, QG_ICT_SWEEP, 0, NULL));
    qg_ict_free(d);
}

Test(ict, prior_day_levels_premium_discount)
{
    qg_ict_config c = {.swing_length = 1, .no_killzones = true};
    qg_ict *d = make(&c);
    events e = {0};
    /* day 1 (2024-01-02): one bar spanning 10..20 at 22:00 */
    static const ohlc day1[] = {{15, 20, 10, 15}};
    feed(d, day1, 1, 22, HOUR, &e);
    qg_ict_state st;
    qg_ict_state_get(d, &st);
    cr_assert_not(st.has_prior_day, "no prior day during the first day");
    /* day 2 from 00:00: the structure sequence, all below the mid (15) */
    feed(d, structure_bars, 7, 24, HOUR, &e);
    qg_ict_state_get(d, &st);
    cr_assert(st.has_prior_day);
    cr_assert_float_eq(st.pd_high, 20, 1e-12);
    cr_assert_float_eq(st.pd_low, 10, 1e-12);
    cr_assert_float_eq(st.pd_mid, 15, 1e-12);
    const qg_ict_event *bos = find(&e, QG_ICT_BOS, +1, NULL);
    cr_assert_not_null(bos);
    cr_assert(bos->confluences & QG_ICT_C_DISCOUNT, "a long below the prior-day mid");
    const qg_ict_event *ch = find(&e, QG_ICT_CHOCH, -1, NULL);
    cr_assert_not_null(ch);
    cr_assert_not(ch->confluences & QG_ICT_C_PREMIUM, "a short below the mid is not premium");
    qg_ict_free(d);
}

Test(ict, htf_bias_from_completed_buckets_only)
{
    /* 1h bars, 2h HTF, HTF swing length 1. HTF candles (h, l, c):
     * H0 11/9/10, H1 12/10/11 (pivot high), H2 11.5/10/10.5, H3 13/10.5/12.8:
     * H3 closes above 12, a bullish HTF break, known when H3 completes. */
    static const double htf[][3] = {{11, 9, 10}, {12, 10, 11}, {11.5, 10, 10.5}, {13, 10.5, 12.8}};
    ohlc b[8];
    for (int i = 0; i < 4; i++) {
        b[2 * i] = (ohlc){htf[i][2], htf[i][0], htf[i][1], htf[i][2]};
        b[2 * i + 1] = b[2 * i];
    }
    qg_ict_config c = {.swing_length = 1,
                       .no_killzones = true,
                       .timeframe_ms = HOUR,
                       .htf_ms = 2 * HOUR,
                       .htf_swing_length = 1};
    qg_ict *d = make(&c);
    events e = {0};
    feed(d, b, 7, 0, HOUR, &e);
    qg_ict_state st;
    qg_ict_state_get(d, &st);
    cr_assert_eq(st.htf_bars, 3);
    cr_assert_eq(st.htf_bias, 0, "H3 is not complete after its first hour");
    feed(d, b + 7, 1, 7, HOUR, &e);
    qg_ict_state_get(d, &st);
    cr_assert_eq(st.htf_bars, 4, "the last 1h bar of a 2h bucket completes it");
    cr_assert_eq(st.htf_bias, +1);
    qg_ict_free(d);

    /* without the bar width, a bucket completes when the next one starts */
    c.timeframe_ms = 0;
    d = make(&c);
    events e2 = {0};
    feed(d, b, 8, 0, HOUR, &e2);
    qg_ict_state_get(d, &st);
    cr_assert_eq(st.htf_bars, 3);
    cr_assert_eq(st.htf_bias, 0);
    static const ohlc next[] = {{12.8, 12.9, 12.7, 12.8}};
    feed(d, next, 1, 8, HOUR, &e2);
    qg_ict_state_get(d, &st);
    cr_assert_eq(st.htf_bias, +1);
    qg_ict_free(d);
}

Test(ict, htf_bias_is_a_confluence)
{
    /* a bullish HTF bias, then the structure sequence on 1h bars */
    static const double htf[][3] = {{11, 9, 10}, {12, 10, 11}, {11.5, 10, 10.5}, {13, 10.5, 12.8}};
    ohlc b[8];
    for (int i = 0; i < 4; i++) {
        b[2 * i] = (ohlc){htf[i][2], htf[i][0], htf[i][1], htf[i][2]};
        b[2 * i + 1] = b[2 * i];
    }
    qg_ict_config c = {.swing_length = 1,
                       .no_killzones = true,
                       .timeframe_ms = HOUR,
                       .htf_ms = 2 * HOUR,
                       .htf_swing_length = 1};
    qg_ict *d = make(&c);
    events e = {0};
    feed(d, b, 8, 0, HOUR, &e);
    ohlc up[7];
    for (int i = 0; i < 7; i++) {
        up[i] = structure_bars[i];
        up[i].o += 3, up[i].h += 3, up[i].l += 3, up[i].c += 3;
    }
    events e2 = {0};
    feed(d, up, 7, 8, HOUR, &e2);
    const qg_ict_event *bull = NULL;
    for (size_t i = 0; i < e2.n; i++)
        if (qg_ict_is_signal(e2.ev[i].type) && e2.ev[i].dir > 0) bull = &e2.ev[i];
    cr_assert_not_null(bull);
    cr_assert(bull->confluences & QG_ICT_C_HTF_BIAS_BULL, "%s", qg_ict_type_name(bull->type));
    const char *names[QG_ICT_C_COUNT];
    int n = qg_ict_confluence_names(bull->confluences, names, QG_ICT_C_COUNT);
    cr_assert_geq(n, 1);
    cr_assert_str_eq(names[0], "HTF_BIAS_BULL");
    qg_ict_free(d);
}

static int64_t iso(const char *s)
{
    int64_t ms = 0;
    cr_assert_null(qg_time_parse_iso(s, strlen(s), &ms), "%s", s);
    return ms;
}

Test(ict, killzones_follow_daylight_saving)
{
    /* US DST starts 2024-03-10 07:00Z, ends 2024-11-03 06:00Z */
    cr_assert_eq(qg_ict_ny_offset(iso("2024-03-10T06:59Z")), -5 * 3600);
    cr_assert_eq(qg_ict_ny_offset(iso("2024-03-10T07:00Z")), -4 * 3600);
    cr_assert_eq(qg_ict_ny_offset(iso("2024-11-03T05:59Z")), -4 * 3600);
    cr_assert_eq(qg_ict_ny_offset(iso("2024-11-03T06:00Z")), -5 * 3600);
    /* UK BST 2024-03-31 01:00Z .. 2024-10-27 01:00Z */
    cr_assert_eq(qg_ict_london_offset(iso("2024-03-31T00:59Z")), 0);
    cr_assert_eq(qg_ict_london_offset(iso("2024-03-31T01:00Z")), 3600);
    cr_assert_eq(qg_ict_london_offset(iso("2024-10-27T00:59Z")), 3600);
    cr_assert_eq(qg_ict_london_offset(iso("2024-10-27T01:00Z")), 0);

    /* New York 07:00 is 12:00Z in winter, 11:00Z in summer */
    cr_assert_eq(qg_ict_killzone_at(iso("2024-03-08T12:00Z")), QG_ICT_KZ_NEW_YORK);
    cr_assert_eq(qg_ict_killzone_at(iso("2024-03-08T11:00Z")), QG_ICT_KZ_NONE);
    cr_assert_eq(qg_ict_killzone_at(iso("2024-03-11T11:00Z")), QG_ICT_KZ_NEW_YORK);
    cr_assert_eq(qg_ict_killzone_at(iso("2024-03-11T14:00Z")), QG_ICT_KZ_NONE);
    /* London 07:00 is 07:00Z in winter (US already on DST), 06:00Z in BST */
    cr_assert_eq(qg_ict_killzone_at(iso("2024-03-11T07:00Z")), QG_ICT_KZ_LONDON);
    cr_assert_eq(qg_ict_killzone_at(iso("2024-04-02T06:00Z")), QG_ICT_KZ_LONDON);
    cr_assert_eq(qg_ict_killzone_at(iso("2024-04-02T09:30Z")), QG_ICT_KZ_NONE);
    /* Asia 20:00-24:00 New York */
    cr_assert_eq(qg_ict_killzone_at(iso("2024-01-03T01:00Z")), QG_ICT_KZ_ASIA);
    cr_assert_eq(qg_ict_killzone_at(iso("2024-07-03T00:30Z")), QG_ICT_KZ_ASIA);
    cr_assert_eq(qg_ict_killzone_at(iso("2024-07-03T04:00Z")), QG_ICT_KZ_NONE);
    /* weekends */
    cr_assert_eq(qg_ict_killzone_at(iso("2024-01-06T12:00Z")), QG_ICT_KZ_NONE);
}

static qg_ict_killzone always_london(void *ud, int64_t ts)
{
    (void)ts;
    ++*(int *)ud;
    return QG_ICT_KZ_LONDON;
}

Test(ict, killzone_callback)
{
    int calls = 0;
    qg_ict_config c = {.swing_length = 1, .killzone = always_london, .killzone_ud = &calls};
    qg_ict *d = make(&c);
    events e = {0};
    feed(d, structure_bars, 7, 0, HOUR, &e);
    cr_assert_eq(calls, 7);
    const qg_ict_event *bos = find(&e, QG_ICT_BOS, +1, NULL);
    cr_assert_not_null(bos);
    cr_assert(bos->confluences & QG_ICT_C_KILLZONE_LONDON);
    qg_ict_free(d);
}

Test(ict, rejects_bad_bars_and_config)
{
    qg_ict *d = NULL;
    qg_error err = {0};
    qg_ict_config bad = {.swing_length = 500};
    cr_assert_eq(qg_ict_new(&bad, &d, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "swing_length"), "%s", err.msg);
    d = make(NULL);
    qg_ict_event out[QG_ICT_MAX_EVENTS_PER_BAR];
    size_t n;
    cr_assert_eq(qg_ict_push(d, T0, 10, 11, 9, 10, 1, out, 16, &n, &err), QG_OK);
    cr_assert_eq(qg_ict_push(d, T0, 10, 11, 9, 10, 1, out, 16, &n, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "not after"), "%s", err.msg);
    cr_assert_eq(qg_ict_push(d, T0 + HOUR, 10, 9, 11, 10, 1, out, 16, &n, &err), QG_EINVAL);
    qg_ict_free(d);
}

/* The property: for a generated series, the detections of bars[0..k) are
 * exactly the detections of the full run with ts < bars[k]. */
Test(ict, cutting_future_bars_never_changes_past_detections)
{
    qg_gen_opts go = {.bars = 6000, .tf_ms = 15 * QG_MS_PER_MIN, .seed = 7, .start_ms = T0};
    qg_bars bars = {0};
    qg_error err = {0};
    cr_assert_eq(qg_bars_generate(&go, &bars, &err), QG_OK, "%s", err.msg);
    qg_ict_config c = {
        .swing_length = 3, .timeframe_ms = go.tf_ms, .htf_ms = 4 * HOUR, .eq_tolerance_atr = 0.2};
    qg_ict_event *all = NULL;
    size_t nall = 0;
    cr_assert_eq(qg_ict_run(&c, &bars, &all, &nall, &err), QG_OK, "%s", err.msg);
    size_t per[QG_ICT_NTYPES] = {0};
    for (size_t i = 0; i < nall; i++) per[all[i].type]++;
    for (int t = 0; t < QG_ICT_NTYPES; t++)
        cr_assert_gt(per[t], 0, "no %s in 6000 bars", qg_ict_type_name((qg_ict_type)t));
    bool htf_seen = false;
    for (size_t i = 0; i < nall; i++)
        htf_seen =
            htf_seen || (all[i].confluences & (QG_ICT_C_HTF_BIAS_BULL | QG_ICT_C_HTF_BIAS_BEAR));
    cr_assert(htf_seen, "the HTF bias never counted");

    static const size_t cuts[] = {1, 2, 17, 250, 999, 2048, 3333, 5000, 5999};
    for (size_t ci = 0; ci < sizeof cuts / sizeof cuts[0]; ci++) {
        size_t k = cuts[ci];
        qg_bars v = qg_bars_view(&bars, 0, k);
        qg_ict_event *part = NULL;
        size_t npart = 0;
        cr_assert_eq(qg_ict_run(&c, &v, &part, &npart, &err), QG_OK, "%s", err.msg);
        size_t expect = 0;
        while (expect < nall && all[expect].ts < bars.ts[k]) expect++;
        cr_assert_eq(npart, expect, "cut at %zu: %zu events, the full run had %zu before it", k,
                     npart, expect);
        for (size_t i = 0; i < npart; i++)
            cr_assert_eq(memcmp(&part[i], &all[i], sizeof part[i]), 0,
                         "cut at %zu: event %zu (%s) differs", k, i,
                         qg_ict_type_name(part[i].type));
        free(part);
    }
    free(all);
    qg_bars_free(&bars);
}
