/*
 * bars_format.c - bars as CSV text, fast enough to write 10M rows.
 *
 * snprintf per field would cost more than the rest of gen-data together, so
 * numbers go through qg_format_fixed and timestamps through a hand-written
 * ISO writer that keeps the date text of the previous row: consecutive bars
 * almost always share the day, so a row costs the time of day only. The
 * output is what qg_time_format_iso prints.
 */
#include <quantgate/bars.h>
#include <quantgate/num.h>
#include <quantgate/time.h>

#include <string.h>

/* The longest row: a timestamp and five numbers of at most 31 bytes each. */
#define ROW_MAX 256

typedef struct {
    int64_t day; /* day number whose date text is cached */
    char date[16];
    int date_len;
} day_cache;

static int put_uint(char *w, uint64_t v)
{
    char tmp[24];
    int n = 0, len = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) w[len++] = tmp[--n];
    return len;
}

static void put2(char *w, int v)
{
    w[0] = (char)('0' + v / 10);
    w[1] = (char)('0' + v % 10);
}

static int put_iso(char *w, int64_t ms, day_cache *dc)
{
    int64_t day = ms >= 0 ? ms / QG_MS_PER_DAY : -((-ms + QG_MS_PER_DAY - 1) / QG_MS_PER_DAY);
    int64_t rem = ms - day * QG_MS_PER_DAY;
    if (day != dc->day) {
        int64_t y;
        unsigned m, d;
        qg_civil_from_days(day, &y, &m, &d);
        if (y < 0 || y > 9999) { /* rare: let the general formatter handle it */
            char buf[48];
            qg_time_format_iso(ms, buf, sizeof buf);
            size_t n = strlen(buf);
            memcpy(w, buf, n);
            return (int)n;
        }
        put2(dc->date, (int)(y / 100));
        put2(dc->date + 2, (int)(y % 100));
        dc->date[4] = '-';
        put2(dc->date + 5, (int)m);
        dc->date[7] = '-';
        put2(dc->date + 8, (int)d);
        dc->date[10] = 'T';
        dc->day = day;
    }
    memcpy(w, dc->date, 11);
    int s = (int)(rem / 1000), msec = (int)(rem % 1000);
    put2(w + 11, s / 3600);
    w[13] = ':';
    put2(w + 14, s / 60 % 60);
    w[16] = ':';
    put2(w + 17, s % 60);
    int n = 19;
    if (msec) {
        w[n++] = '.';
        w[n++] = (char)('0' + msec / 100);
        put2(w + n, msec % 100);
        n += 2;
    }
    w[n++] = 'Z';
    return n;
}

static int put_epoch(char *w, int64_t ms, qg_ts_format tsf)
{
    int n = 0;
    uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    if (ms < 0) w[n++] = '-';
    if (tsf == QG_TS_EPOCH_MS) return n + put_uint(w + n, a);
    n += put_uint(w + n, a / 1000);
    if (a % 1000) {
        int f = (int)(a % 1000);
        w[n++] = '.';
        w[n++] = (char)('0' + f / 100);
        put2(w + n, f % 100);
        n += 2;
    }
    return n;
}

static int put_num(char *w, double v, int decimals)
{
    int n = qg_format_fixed(v, decimals, w);
    return n > 31 ? 31 : n; /* qg_format_fixed's slow path may report more than it wrote */
}

static size_t format_row(const qg_bars *b, size_t i, char *w, qg_ts_format tsf, int decimals,
                         day_cache *dc)
{
    int n = tsf == QG_TS_ISO ? put_iso(w, b->ts[i], dc) : put_epoch(w, b->ts[i], tsf);
    const double v[] = {b->open[i], b->high[i], b->low[i], b->close[i], b->volume[i]};
    for (size_t k = 0; k < 5; k++) {
        w[n++] = ',';
        n += put_num(w + n, v[k], decimals);
    }
    w[n++] = '\n';
    return (size_t)n;
}

size_t qg_bars_format_csv(const qg_bars *b, size_t *pos, char *out, size_t cap, qg_ts_format tsf,
                          int decimals)
{
    char row[ROW_MAX];
    day_cache dc = {.day = INT64_MIN};
    size_t used = 0, i = *pos;
    if (decimals < 0) decimals = 0;
    for (; i < b->n; i++) {
        /* Straight into out while a whole row surely fits; near the end
         * through row[], so that only whole rows are written. */
        char *w = cap - used >= ROW_MAX ? out + used : row;
        size_t len = format_row(b, i, w, tsf, decimals, &dc);
        if (w == row) {
            if (len > cap - used) break;
            memcpy(out + used, row, len);
        }
        used += len;
    }
    *pos = i;
    return used;
}
