/*
 * bars.c - the columnar bar container: growth, views and lookups.
 *
 * Columns grow together by doubling; glibc serves large blocks with mmap and
 * grows them with mremap, so growing a multi-gigabyte series does not copy.
 */
#include <quantgate/bars.h>

#include <stdlib.h>
#include <string.h>

qg_status qg_bars_reserve(qg_bars *b, size_t cap)
{
    if (cap <= b->cap) return QG_OK;
    if (b->n && !b->cap) return QG_EINVAL; /* a view cannot grow */
    double **cols[] = {&b->open, &b->high, &b->low, &b->close, &b->volume};
    int64_t *ts = realloc(b->ts, cap * sizeof *ts);
    if (!ts) return QG_ENOMEM;
    b->ts = ts;
    for (size_t k = 0; k < 5; k++) {
        double *p = realloc(*cols[k], cap * sizeof *p);
        if (!p) return QG_ENOMEM;
        *cols[k] = p;
    }
    b->cap = cap;
    return QG_OK;
}

qg_status qg_bars_push(qg_bars *b, const qg_bar *bar)
{
    if (b->n == b->cap) {
        qg_status rc = qg_bars_reserve(b, b->cap ? b->cap * 2 : 4096);
        if (rc) return rc;
    }
    size_t i = b->n++;
    b->ts[i] = bar->ts;
    b->open[i] = bar->open;
    b->high[i] = bar->high;
    b->low[i] = bar->low;
    b->close[i] = bar->close;
    b->volume[i] = bar->volume;
    return QG_OK;
}

void qg_bars_free(qg_bars *b)
{
    if (b->cap) {
        free(b->ts);
        free(b->open);
        free(b->high);
        free(b->low);
        free(b->close);
        free(b->volume);
    }
    memset(b, 0, sizeof *b);
}

qg_bars qg_bars_view(const qg_bars *b, size_t from, size_t count)
{
    if (from > b->n) from = b->n;
    if (count > b->n - from) count = b->n - from;
    qg_bars v = {0};
    if (b->ts) {
        v.ts = b->ts + from;
        v.open = b->open + from;
        v.high = b->high + from;
        v.low = b->low + from;
        v.close = b->close + from;
        v.volume = b->volume + from;
    }
    v.n = count;
    v.timeframe_ms = b->timeframe_ms;
    return v;
}

qg_bar qg_bars_get(const qg_bars *b, size_t i)
{
    return (qg_bar){b->ts[i], b->open[i], b->high[i], b->low[i], b->close[i], b->volume[i]};
}

size_t qg_bars_lower_bound(const qg_bars *b, int64_t t)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->ts[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

qg_bars qg_bars_between(const qg_bars *b, int64_t from_ms, int64_t to_ms)
{
    size_t lo = from_ms == INT64_MIN ? 0 : qg_bars_lower_bound(b, from_ms);
    size_t hi = to_ms == INT64_MAX ? b->n : qg_bars_lower_bound(b, to_ms);
    return qg_bars_view(b, lo, hi > lo ? hi - lo : 0);
}

int64_t qg_bars_detect_timeframe(const qg_bars *b)
{
    /* The mode of the first deltas: gaps (weekends, halts) are rarer than
     * regular steps, so the most frequent spacing is the bar width. */
    enum { SAMPLE = 1024 };
    int64_t d[SAMPLE];
    size_t m = 0;
    for (size_t i = 1; i < b->n && m < SAMPLE; i++) d[m++] = b->ts[i] - b->ts[i - 1];
    if (!m) return 0;
    int64_t best = d[0];
    size_t best_count = 0;
    for (size_t i = 0; i < m; i++) {
        size_t c = 0;
        for (size_t j = 0; j < m; j++) c += d[j] == d[i];
        if (c > best_count || (c == best_count && d[i] < best)) {
            best = d[i];
            best_count = c;
        }
        if (best_count > m / 2) break;
    }
    return best;
}
