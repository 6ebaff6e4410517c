/*
 * report.c - the self-contained HTML backtest report.
 *
 * One page, no external resources: inline CSS, the equity curve and the
 * drawdown as inline SVG, no scripts, fonts or images, so the file can be
 * mailed or archived and still render the same. Every string that comes
 * from a user (strategy name, description, parameter names, data name,
 * settings) goes through qg_buf_html.
 *
 * Writing uses a sticky status (struct page): after the first failure every
 * write is a no-op, so the section writers read top to bottom without an
 * error check per line. On failure the output buffer is cut back to what it
 * held before the call, so a caller never gets half a page.
 *
 * Size: the curve is thinned to at most MAX_PLOT_POINTS and the table to
 * MAX_TRADE_ROWS, so a page stays at a few MB whatever the run produced.
 */
#include <quantgate/backtest.h>
#include <quantgate/time.h>

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifndef QG_VERSION
#define QG_VERSION "dev"
#endif

#define MAX_TRADE_ROWS  5000
#define MAX_PLOT_POINTS 2000

/* Chart geometry in viewBox units; both charts share the x mapping so the
 * drawdown lines up under the equity curve. */
#define CHART_W  900.0
#define EQ_H     300.0
#define DD_H     150.0
#define PAD_L    70.0
#define PAD_R    16.0
#define PAD_T    12.0
#define PAD_B    26.0
#define X_LABELS 5

#define DASH "\u2013" /* printed for a metric that is NaN */
#define INF  "\u221e"

typedef struct page {
    qg_buf *b;
    qg_status rc; /* first failure; later writes are skipped */
} page;

static void put(page *p, const char *s)
{
    if (!p->rc) p->rc = qg_buf_puts(p->b, s);
}

__attribute__((format(printf, 2, 3))) static void putf(page *p, const char *fmt, ...)
{
    if (p->rc) return;
    va_list ap;
    va_start(ap, fmt);
    p->rc = qg_buf_vprintf(p->b, fmt, ap);
    va_end(ap);
}

static void esc(page *p, const char *s)
{
    if (!p->rc && s) p->rc = qg_buf_html(p->b, s);
}

/* ---- number and time text ---- */

/* Formatted values are returned by value so they can be passed straight to
 * putf: the temporary lives until the end of the full expression. */
typedef struct txt {
    char s[64];
} txt;

/* Inserts thousands separators into the integer part of a plain decimal. */
static void group_digits(const char *in, char *out, size_t cap)
{
    const char *dot = strchr(in, '.');
    size_t int_len = dot ? (size_t)(dot - in) : strlen(in);
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 2 < cap; i++) {
        if (i > 0 && i < int_len && (int_len - i) % 3 == 0) out[o++] = ',';
        out[o++] = in[i];
    }
    out[o] = '\0';
}

/* Fixed decimals with grouping; NaN as a dash, infinities as the sign. The
 * sign is applied after rounding so -0.001 never prints as "-0.00". */
static txt fmt_num(double v, int decimals, bool plus)
{
    txt t;
    if (isnan(v)) {
        snprintf(t.s, sizeof t.s, "%s", DASH);
        return t;
    }
    if (isinf(v)) {
        snprintf(t.s, sizeof t.s, "%s%s", v < 0 ? "-" : plus ? "+" : "", INF);
        return t;
    }
    if (fabs(v) >= 1e15) { /* too wide for a cell: scientific is clearer */
        snprintf(t.s, sizeof t.s, "%.4g", v);
        return t;
    }
    char raw[40], grouped[56];
    snprintf(raw, sizeof raw, "%.*f", decimals, fabs(v));
    bool zero = strspn(raw, "0.") == strlen(raw);
    group_digits(raw, grouped, sizeof grouped);
    const char *sign = zero ? "" : v < 0 ? "-" : plus ? "+" : "";
    snprintf(t.s, sizeof t.s, "%s%s", sign, grouped);
    return t;
}

static txt fmt_money(double v)
{
    return fmt_num(v, 2, false);
}

static txt fmt_pct(double v, bool plus)
{
    txt t = fmt_num(v, 2, plus);
    if (isfinite(v)) strncat(t.s, "%", sizeof t.s - strlen(t.s) - 1);
    return t;
}

/* Prices read like a quote screen: cents from 100 up (BTC, 43,210.55),
 * four decimals from 1 (FX, 1.0853), four significant digits below 1
 * (0.0001234) so cheap tokens do not show as 0.0000. */
static txt fmt_price(double v)
{
    double a = fabs(v);
    if (isfinite(v) && a > 0 && a < 1) {
        txt t;
        snprintf(t.s, sizeof t.s, "%.4g", v);
        return t;
    }
    return fmt_num(v, a >= 100 ? 2 : 4, false);
}

/* Share counts are whole; crypto quantities are fractional. */
static txt fmt_qty(double v)
{
    if (isfinite(v) && v == floor(v)) return fmt_num(v, 0, false);
    txt t;
    snprintf(t.s, sizeof t.s, "%.6g", v);
    return t;
}

/* "2024-01-02"; with_time adds " 03:04" (and ":05" when seconds are set). */
static txt fmt_time(int64_t ms, bool with_time)
{
    char iso[40];
    qg_time_format_iso(ms, iso, sizeof iso);
    txt t;
    size_t keep = !with_time ? 10 : ms % QG_MS_PER_MIN ? 19 : 16;
    snprintf(t.s, sizeof t.s, "%.*s", (int)keep, iso);
    if (strlen(t.s) > 10) t.s[10] = ' ';
    return t;
}

static const char *tone(double v)
{
    return v > 0 ? "pos" : v < 0 ? "neg" : "";
}

/* ---- head and header ---- */

static const char CSS[] =
    ":root{--bg:#f6f7f9;--card:#fff;--ink:#111827;--mute:#6b7280;--line:#e5e7eb;"
    "--pos:#059669;--neg:#dc2626;--accent:#2563eb}"
    "@media(prefers-color-scheme:dark){:root{--bg:#0f1115;--card:#171a21;--ink:#e5e7eb;"
    "--mute:#9ca3af;--line:#2a2f3a;--pos:#34d399;--neg:#f87171;--accent:#60a5fa}}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,"
    "-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}"
    "main{max-width:1120px;margin:0 auto;padding:24px 20px 48px}"
    "header{border-bottom:1px solid var(--line);padding-bottom:14px;margin-bottom:20px}"
    "h1{font-size:24px;margin:0 0 4px;font-weight:650}"
    "h2{font-size:15px;margin:28px 0 10px;text-transform:uppercase;letter-spacing:.06em;"
    "color:var(--mute);font-weight:600}"
    ".sub{color:var(--mute);margin:0}.desc{margin:8px 0 0;max-width:80ch}"
    ".grid{display:grid;grid-template-columns:repeat(4,1fr);gap:10px}"
    "@media(max-width:720px){.grid{grid-template-columns:repeat(2,1fr)}}"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "padding:10px 12px}"
    ".card .k{color:var(--mute);font-size:12px}"
    ".card .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums;"
    "white-space:nowrap}"
    ".card .s{color:var(--mute);font-size:12px}"
    ".pos{color:var(--pos)}.neg{color:var(--neg)}"
    ".panel{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "padding:8px 10px}"
    "svg{display:block;width:100%;height:auto}"
    "svg text{font:11px system-ui,sans-serif;fill:var(--mute)}"
    ".gl{stroke:var(--line);stroke-width:1}"
    ".eq{fill:none;stroke:var(--accent);stroke-width:1.6;stroke-linejoin:round}"
    ".eqa{fill:var(--accent);fill-opacity:.07;stroke:none}"
    ".base{stroke:var(--mute);stroke-dasharray:5 4;stroke-width:1}"
    ".dd{fill:var(--neg);fill-opacity:.35;stroke:var(--neg);stroke-width:1}"
    ".note{color:var(--mute);font-style:italic}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:0}"
    "dt{color:var(--mute)}dd{margin:0}"
    "table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums;"
    "font-size:13px}"
    "th,td{padding:5px 8px;border-bottom:1px solid var(--line);white-space:nowrap}"
    "th{text-align:left;color:var(--mute);font-weight:600;background:var(--card)}"
    "td:nth-child(n+4):not(:nth-child(5)):not(:last-child),"
    "th:nth-child(n+4):not(:nth-child(5)):not(:last-child){text-align:right}"
    "tbody tr:hover{background:var(--bg)}"
    ".scroll{overflow-x:auto}"
    "footer{margin-top:32px;color:var(--mute);font-size:12px}";

static void write_head(page *p, const qg_strategy *s, const qg_report_meta *meta)
{
    put(p, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
           "<title>");
    if (meta && meta->title && meta->title[0])
        esc(p, meta->title);
    else if (s && s->name[0])
        esc(p, s->name);
    else
        put(p, "Backtest report");
    put(p, "</title><style>");
    put(p, CSS);
    put(p, "</style></head><body><main>\n");
}

static void write_header(page *p, const qg_metrics *m, const qg_strategy *s,
                         const qg_report_meta *meta)
{
    put(p, "<header><h1>");
    if (s && s->name[0])
        esc(p, s->name);
    else if (meta && meta->title && meta->title[0])
        esc(p, meta->title);
    else
        put(p, "Backtest");
    put(p, "</h1><p class=\"sub\">");
    if (meta && meta->data_name) {
        esc(p, meta->data_name);
        put(p, " &middot; ");
    }
    putf(p, "%s &rarr; %s &middot; %s bars &middot; equity %s &rarr; %s</p>",
         fmt_time(m->start_ts, false).s, fmt_time(m->end_ts, false).s,
         fmt_num((double)m->bars, 0, false).s, fmt_money(m->start_equity).s,
         fmt_money(m->final_equity).s);
    if (s && s->description[0]) {
        put(p, "<p class=\"desc\">");
        esc(p, s->description);
        put(p, "</p>");
    }
    put(p, "</header>\n");
}

/* ---- metric cards ---- */

static void card(page *p, const char *label, const char *value, const char *cls, const char *sub)
{
    putf(p, "<div class=\"card\"><div class=\"k\">%s</div><div class=\"v %s\">%s</div>", label, cls,
         value);
    if (sub && sub[0]) putf(p, "<div class=\"s\">%s</div>", sub);
    put(p, "</div>");
}

static txt fmt_days(int64_t ms)
{
    double days = (double)ms / (double)QG_MS_PER_DAY;
    txt t;
    snprintf(t.s, sizeof t.s, "longest %s days below peak",
             fmt_num(days, days < 10 ? 1 : 0, false).s);
    return t;
}

static void write_return_cards(page *p, const qg_metrics *m)
{
    txt sub;
    snprintf(sub.s, sizeof sub.s, "final equity %s", fmt_money(m->final_equity).s);
    card(p, "Total return", fmt_pct(m->total_return, true).s, tone(m->total_return), sub.s);
    card(p, "CAGR", fmt_pct(m->cagr, true).s, tone(m->cagr), "per year");
    card(p, "Buy &amp; hold", fmt_pct(m->buy_hold_return, true).s, tone(m->buy_hold_return),
         "first open to last close");
    card(p, "Max drawdown", fmt_pct(-m->max_drawdown, false).s, tone(-m->max_drawdown),
         fmt_days(m->max_drawdown_ms).s);
    card(p, "Volatility", fmt_pct(m->volatility, false).s, "", "annualised");
    card(p, "Sharpe", fmt_num(m->sharpe, 2, false).s, tone(m->sharpe), "");
    card(p, "Sortino", fmt_num(m->sortino, 2, false).s, tone(m->sortino), "");
    card(p, "Calmar", fmt_num(m->calmar, 2, false).s, tone(m->calmar), "");
}

/* Profit factor is good above 1, not above 0, so it gets its own tone. */
static void write_trade_cards(page *p, const qg_metrics *m)
{
    txt sub;
    snprintf(sub.s, sizeof sub.s, "%zu won, %zu lost", m->wins, m->losses);
    card(p, "Trades", fmt_num((double)m->trades, 0, false).s, "", sub.s);
    card(p, "Win rate", fmt_pct(m->win_rate, false).s, "", "");
    card(p, "Profit factor", fmt_num(m->profit_factor, 2, false).s,
         m->profit_factor > 1   ? "pos"
         : m->profit_factor < 1 ? "neg"
                                : "",
         "gross win / loss");
    card(p, "Expectancy", fmt_money(m->expectancy).s, tone(m->expectancy), "per trade");
    putf(p,
         "<div class=\"card\"><div class=\"k\">Avg win / loss</div><div class=\"v\">"
         "<span class=\"pos\">%s</span> / <span class=\"neg\">%s</span></div></div>",
         fmt_money(m->avg_win).s, fmt_money(m->avg_loss).s);
    card(p, "SQN", fmt_num(m->sqn, 2, false).s, tone(m->sqn), "");
    card(p, "Exposure", fmt_pct(m->exposure, false).s, "", "of bars in a position");
    card(p, "Fees", fmt_money(m->fees).s, "", "total paid");
}

static void write_metrics(page *p, const qg_metrics *m)
{
    put(p, "<section><h2>Performance</h2><div class=\"grid\">");
    write_return_cards(p, m);
    write_trade_cards(p, m);
    put(p, "</div></section>\n");
}

/* ---- charts ---- */

/* A plotted value range and the spacing of its gridlines. */
typedef struct axis {
    double lo, hi, step;
} axis;

/* The smallest round step (1, 2, 2.5, 5 x 10^k) that cuts span into at
 * most `intervals` pieces. */
static double nice_step(double span, double intervals)
{
    double raw = span / intervals;
    double mag = pow(10.0, floor(log10(raw)));
    static const double mult[] = {1, 2, 2.5, 5};
    for (size_t i = 0; i < sizeof mult / sizeof mult[0]; i++)
        if (mult[i] * mag >= raw) return mult[i] * mag;
    return 10 * mag;
}

/* The data plus a small margin, so the line never touches the frame and a
 * floor far below the data does not waste half the chart. */
static axis value_axis(double lo, double hi)
{
    if (!(hi > lo)) {
        double pad = fabs(hi) > 0 ? fabs(hi) * 0.01 : 1.0;
        lo -= pad;
        hi += pad;
    }
    double margin = (hi - lo) * 0.05;
    axis a = {lo - margin, hi + margin, 0};
    a.step = nice_step(a.hi - a.lo, 5);
    return a;
}

/* Enough decimals to tell adjacent gridline labels apart. */
static int step_decimals(double step)
{
    int d = 0;
    while (d < 6 && fabs(step * pow(10, d) - round(step * pow(10, d))) > 1e-6) d++;
    return d;
}

static double y_at(double v, axis a, double h)
{
    return PAD_T + (a.hi - v) / (a.hi - a.lo) * (h - PAD_T - PAD_B);
}

/* Gridlines on the multiples of the step inside the range. Counted, not
 * accumulated, so float drift cannot drop a line; the bound guards against
 * a degenerate (infinite) range. */
static void write_y_grid(page *p, axis a, double h, const char *suffix)
{
    int dec = step_decimals(a.step);
    double first = ceil(a.lo / a.step - 1e-9) * a.step;
    double span = (a.hi - first) / a.step;
    int lines = isfinite(span) && span < 20 ? (int)floor(span + 1e-9) : -1;
    for (int k = 0; k <= lines; k++) {
        double v = first + k * a.step;
        double y = y_at(v, a, h);
        double shown = fabs(v) < a.step * 1e-6 ? 0 : v; /* no "-0" label */
        putf(p, "<line class=\"gl\" x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\"/>", PAD_L,
             CHART_W - PAD_R, y, y);
        putf(p, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s%s</text>", PAD_L - 6, y + 4,
             fmt_num(shown, dec, false).s, suffix);
    }
}

/* The x mapping: by timestamp, or by index when time does not advance
 * (hand-built or broken data) so the chart still spreads out. Curves
 * longer than MAX_PLOT_POINTS are thinned to every stride-th point. */
typedef struct xmap {
    const qg_equity_point *pts;
    size_t n, stride;
    int64_t t0, t1;
    bool by_time;
} xmap;

static xmap make_xmap(const qg_equity_point *pts, size_t n)
{
    xmap x = {pts, n, (n + MAX_PLOT_POINTS - 1) / MAX_PLOT_POINTS, pts[0].ts, pts[n - 1].ts, false};
    x.by_time = x.t1 > x.t0;
    return x;
}

static double x_of_ts(const xmap *x, int64_t ts)
{
    double f = (double)(ts - x->t0) / (double)(x->t1 - x->t0);
    return PAD_L + f * (CHART_W - PAD_L - PAD_R);
}

static double x_at(const xmap *x, size_t i)
{
    if (x->by_time) return x_of_ts(x, x->pts[i].ts);
    return PAD_L + (double)i / (double)(x->n - 1) * (CHART_W - PAD_L - PAD_R);
}

/* Plotted indices: every stride-th point and always the last one. */
static size_t next_index(const xmap *x, size_t i)
{
    if (i == x->n - 1) return x->n;
    return i + x->stride < x->n ? i + x->stride : x->n - 1;
}

static void x_tick(page *p, double px, double h, const char *label)
{
    /* Labels near an edge are aligned inward so they stay inside. */
    const char *anchor = px > CHART_W - PAD_R - 40 ? "end" : px < PAD_L + 30 ? "start" : "middle";
    putf(p, "<line class=\"gl\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\"/>", px, px,
         h - PAD_B, h - PAD_B + 4);
    putf(p, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"%s\">%s</text>", px, h - 8, anchor, label);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

/* Long runs: ticks on calendar month starts (1, 2, 3, 6 months or whole
 * years), because "Jan 2021" reads better than an arbitrary day. */
static void write_month_ticks(page *p, const xmap *x, double h)
{
    static const char *const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const int64_t steps[] = {1, 2, 3, 6, 12, 24, 60, 120, 240, 600};
    double months = (double)(x->t1 - x->t0) / (30.44 * (double)QG_MS_PER_DAY);
    int64_t step = 1200;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (months / (double)steps[i] <= 6) {
            step = steps[i];
            break;
        }
    }
    int64_t y;
    unsigned m, d;
    qg_civil_from_days(floor_div(x->t0, QG_MS_PER_DAY), &y, &m, &d);
    int64_t idx = (floor_div(y * 12 + (m - 1), step) + 1) * step; /* first start after t0 */
    for (int n = 0; n < 24; n++, idx += step) {
        int64_t ty = floor_div(idx, 12);
        unsigned tm = (unsigned)(idx - ty * 12) + 1;
        int64_t ts = qg_days_from_civil(ty, tm, 1) * QG_MS_PER_DAY;
        if (ts > x->t1) break;
        char label[24];
        if (step >= 12)
            snprintf(label, sizeof label, "%lld", (long long)ty);
        else
            snprintf(label, sizeof label, "%s %lld", names[tm - 1], (long long)ty);
        x_tick(p, x_of_ts(x, ts), h, label);
    }
}

/* Short runs: ticks on round multiples of minutes, hours or days. */
static void write_fixed_ticks(page *p, const xmap *x, double h)
{
    static const int64_t steps[] = {QG_MS_PER_MIN,      5 * QG_MS_PER_MIN,  15 * QG_MS_PER_MIN,
                                    30 * QG_MS_PER_MIN, QG_MS_PER_HOUR,     2 * QG_MS_PER_HOUR,
                                    3 * QG_MS_PER_HOUR, 6 * QG_MS_PER_HOUR, 12 * QG_MS_PER_HOUR,
                                    QG_MS_PER_DAY,      2 * QG_MS_PER_DAY,  7 * QG_MS_PER_DAY,
                                    14 * QG_MS_PER_DAY};
    size_t n_steps = sizeof steps / sizeof steps[0];
    int64_t step = steps[n_steps - 1];
    for (size_t i = 0; i < n_steps; i++) {
        if ((x->t1 - x->t0) / steps[i] <= 6) {
            step = steps[i];
            break;
        }
    }
    /* Weekly ticks fall on Mondays (the epoch was a Thursday). */
    int64_t origin = step % (7 * QG_MS_PER_DAY) ? 0 : 4 * QG_MS_PER_DAY;
    int64_t ts = origin + (floor_div(x->t0 - origin - 1, step) + 1) * step;
    for (int n = 0; n < 24 && ts <= x->t1; n++, ts += step)
        x_tick(p, x_of_ts(x, ts), h, fmt_time(ts, step < QG_MS_PER_DAY).s);
}

/* Without usable time, label five evenly spaced samples. */
static void write_index_ticks(page *p, const xmap *x, double h)
{
    for (int k = 0; k < X_LABELS; k++) {
        size_t i = (size_t)k * (x->n - 1) / (X_LABELS - 1);
        x_tick(p, x_at(x, i), h, fmt_time(x->pts[i].ts, true).s);
    }
}

static void write_x_labels(page *p, const xmap *x, double h)
{
    if (!x->by_time)
        write_index_ticks(p, x, h);
    else if (x->t1 - x->t0 >= 100 * QG_MS_PER_DAY)
        write_month_ticks(p, x, h);
    else
        write_fixed_ticks(p, x, h);
}

/* Emits "x,y " for each plotted equity point; NaN points are skipped so a
 * bad sample makes a straight segment rather than a broken page. */
static void write_equity_points(page *p, const xmap *x, axis a)
{
    for (size_t i = 0; i < x->n; i = next_index(x, i)) {
        double v = x->pts[i].equity;
        if (isfinite(v)) putf(p, "%.1f,%.1f ", x_at(x, i), y_at(v, a, EQ_H));
    }
}

static axis equity_axis(const xmap *x, double start_equity)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < x->n; i++) {
        double v = x->pts[i].equity;
        if (isfinite(v)) lo = fmin(lo, v), hi = fmax(hi, v);
    }
    if (!isfinite(lo)) lo = hi = isfinite(start_equity) ? start_equity : 0;
    if (isfinite(start_equity)) lo = fmin(lo, start_equity), hi = fmax(hi, start_equity);
    return value_axis(lo, hi);
}

static void write_equity_chart(page *p, const xmap *x, double start_equity)
{
    axis a = equity_axis(x, start_equity);
    double bottom = EQ_H - PAD_B;
    putf(p, "<svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"Equity curve\">", CHART_W,
         EQ_H);
    write_y_grid(p, a, EQ_H, "");
    write_x_labels(p, x, EQ_H);
    putf(p, "<polygon class=\"eqa\" points=\"%.1f,%.1f ", x_at(x, 0), bottom);
    write_equity_points(p, x, a);
    putf(p, "%.1f,%.1f\"/>", x_at(x, x->n - 1), bottom);
    if (isfinite(start_equity)) {
        double y = y_at(start_equity, a, EQ_H);
        putf(p, "<line class=\"base\" x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\"/>", PAD_L,
             CHART_W - PAD_R, y, y);
    }
    put(p, "<polyline class=\"eq\" points=\"");
    write_equity_points(p, x, a);
    put(p, "\"/></svg>");
}

/* Deepest drawdown in the bucket that a plotted point stands for, so
 * thinning never hides the worst moment. */
static double bucket_drawdown(const xmap *x, size_t i)
{
    size_t end = next_index(x, i);
    double dd = 0;
    for (size_t j = i; j < end; j++) {
        double v = x->pts[j].drawdown;
        if (isfinite(v) && v > dd) dd = v;
    }
    return dd;
}

static void write_drawdown_chart(page *p, const xmap *x)
{
    double worst = 0;
    for (size_t i = 0; i < x->n; i++) {
        double v = x->pts[i].drawdown;
        if (isfinite(v)) worst = fmax(worst, v);
    }
    /* Drawn downward from 0 at the top; 1% keeps a run that never lost
     * from dividing by zero. */
    double depth = (worst > 0 ? worst : 1) * 1.06;
    axis a = {-depth, 0, nice_step(depth, 4)};
    double zero = y_at(0, a, DD_H);
    putf(p, "<svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"Drawdown\">", CHART_W, DD_H);
    write_y_grid(p, a, DD_H, "%");
    write_x_labels(p, x, DD_H);
    putf(p, "<path class=\"dd\" d=\"M%.1f,%.1f", x_at(x, 0), zero);
    for (size_t i = 0; i < x->n; i = next_index(x, i))
        putf(p, " L%.1f,%.1f", x_at(x, i), y_at(-bucket_drawdown(x, i), a, DD_H));
    putf(p, " L%.1f,%.1f Z\"/></svg>", x_at(x, x->n - 1), zero);
}

static void write_charts(page *p, const qg_bt_result *r)
{
    put(p, "<section><h2>Equity</h2><div class=\"panel\">");
    if (!r->curve || r->n_curve < 2) {
        putf(p,
             "<p class=\"note\">The run kept %zu equity points: not enough points to draw a "
             "chart.</p></div></section>\n",
             r->curve ? r->n_curve : 0);
        return;
    }
    xmap x = make_xmap(r->curve, r->n_curve);
    write_equity_chart(p, &x, r->m.start_equity);
    put(p, "</div><h2>Drawdown</h2><div class=\"panel\">");
    write_drawdown_chart(p, &x);
    put(p, "</div></section>\n");
}

/* ---- settings ---- */

static txt describe_exit(const char *what, const qg_exit_rule *e)
{
    txt t;
    switch (e->kind) {
    case QG_EXIT_PERCENT:
        snprintf(t.s, sizeof t.s, "%s %g%% from entry", what, e->value);
        break;
    case QG_EXIT_ATR:
        snprintf(t.s, sizeof t.s, "%s %g x ATR(%d) from entry", what, e->value, e->atr_period);
        break;
    case QG_EXIT_PRICE:
        snprintf(t.s, sizeof t.s, "%s %g price units from entry", what, e->value);
        break;
    default:
        snprintf(t.s, sizeof t.s, "none");
        break;
    }
    return t;
}

static txt describe_sizing(const qg_sizing *z)
{
    txt t;
    switch (z->kind) {
    case QG_SIZE_FIXED_QTY:
        snprintf(t.s, sizeof t.s, "fixed quantity %g", z->value);
        break;
    case QG_SIZE_RISK_PERCENT:
        snprintf(t.s, sizeof t.s, "risk %g%% of equity per trade", z->value);
        break;
    default:
        snprintf(t.s, sizeof t.s, "size %g%% of equity", z->value);
        break;
    }
    return t;
}

static const char *describe_direction(qg_direction d)
{
    switch (d) {
    case QG_DIR_LONG:
        return "long only";
    case QG_DIR_SHORT:
        return "short only";
    case QG_DIR_BOTH:
        return "long and short";
    default:
        return DASH;
    }
}

static void write_params(page *p, const qg_strategy *s)
{
    put(p, "<dt>Parameters</dt><dd>");
    if (!s->n_params) put(p, "none");
    for (size_t i = 0; i < s->n_params && i < QG_STRAT_MAX_PARAMS; i++) {
        if (i) put(p, ", ");
        esc(p, s->params[i].name);
        putf(p, " = %g", s->params[i].value);
    }
    put(p, "</dd>");
}

static void write_strategy_settings(page *p, const qg_strategy *s)
{
    write_params(p, s);
    putf(p, "<dt>Direction</dt><dd>%s</dd>", describe_direction(s->direction));
    if (s->timeframe_ms > 0) {
        char tf[16];
        qg_timeframe_format(s->timeframe_ms, tf, sizeof tf);
        putf(p, "<dt>Timeframe</dt><dd>resampled to %s</dd>", tf);
    }
    putf(p, "<dt>Stop loss</dt><dd>%s</dd>", describe_exit("stop", &s->stop_loss).s);
    putf(p, "<dt>Take profit</dt><dd>%s</dd>", describe_exit("target", &s->take_profit).s);
    putf(p, "<dt>Sizing</dt><dd>%s</dd>", describe_sizing(&s->sizing).s);
}

static void write_settings(page *p, const qg_metrics *m, const qg_strategy *s,
                           const qg_report_meta *meta)
{
    put(p, "<section><h2>Settings</h2><div class=\"panel\"><dl>");
    if (meta && meta->data_name) {
        put(p, "<dt>Data</dt><dd>");
        esc(p, meta->data_name);
        put(p, "</dd>");
    }
    putf(p, "<dt>Period</dt><dd>%s &rarr; %s</dd>", fmt_time(m->start_ts, true).s,
         fmt_time(m->end_ts, true).s);
    putf(p, "<dt>Starting equity</dt><dd>%s</dd>", fmt_money(m->start_equity).s);
    if (meta && meta->settings) {
        put(p, "<dt>Run</dt><dd>");
        esc(p, meta->settings);
        put(p, "</dd>");
    }
    if (s) write_strategy_settings(p, s);
    put(p, "</dl></div></section>\n");
}

/* ---- trades ---- */

/* Daily data has every fill at midnight; dropping "00:00" saves width. */
static bool all_midnight(const qg_trade *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].entry_ts % QG_MS_PER_DAY || t[i].exit_ts % QG_MS_PER_DAY) return false;
    return true;
}

static void write_trade_row(page *p, size_t no, const qg_trade *t, bool with_time)
{
    putf(p, "<tr><td>%zu</td><td class=\"%s\">%s</td><td>%s</td><td>%s</td>", no,
         t->side < 0 ? "neg" : "pos", t->side < 0 ? "short" : "long",
         fmt_time(t->entry_ts, with_time).s, fmt_price(t->entry_price).s);
    putf(p, "<td>%s</td><td>%s</td><td>%s</td><td>%s</td>", fmt_time(t->exit_ts, with_time).s,
         fmt_price(t->exit_price).s, fmt_qty(t->qty).s, fmt_money(t->fees).s);
    putf(p, "<td class=\"%s\">%s</td><td class=\"%s\">%s</td><td>%s</td></tr>\n", tone(t->pnl),
         fmt_num(t->pnl, 2, true).s, tone(t->return_pct), fmt_pct(t->return_pct, true).s,
         qg_exit_reason_name(t->reason));
}

static void write_trade_table(page *p, const qg_trade *t, size_t n)
{
    size_t shown = n < MAX_TRADE_ROWS ? n : MAX_TRADE_ROWS;
    if (shown < n)
        putf(p, "<p class=\"note\">Table truncated: showing %d of %zu trades.</p>", MAX_TRADE_ROWS,
             n);
    bool with_time = !all_midnight(t, shown);
    put(p, "<div class=\"panel scroll\"><table><thead><tr><th>#</th><th>Side</th>"
           "<th>Entry time</th><th>Entry price</th><th>Exit time</th><th>Exit price</th>"
           "<th>Qty</th><th>Fees</th><th>PnL</th><th>Return</th><th>Exit reason</th>"
           "</tr></thead><tbody>\n");
    for (size_t i = 0; i < shown && !p->rc; i++) write_trade_row(p, i + 1, &t[i], with_time);
    put(p, "</tbody></table></div>");
}

static void write_trades(page *p, const qg_bt_result *r)
{
    put(p, "<section><h2>Trades</h2>");
    if (r->trades && r->n_trades)
        write_trade_table(p, r->trades, r->n_trades);
    else if (r->m.trades)
        putf(p,
             "<p class=\"note\">The %zu trades of this run were not kept, so they are not "
             "listed.</p>",
             r->m.trades);
    else
        put(p, "<p class=\"note\">No trades.</p>");
    put(p, "</section>\n");
}

qg_status qg_report_html(const qg_bt_result *r, const qg_strategy *s, const qg_report_meta *meta,
                         qg_buf *out)
{
    if (!r || !out) return QG_EINVAL;
    size_t start = out->len;
    page p = {out, QG_OK};
    write_head(&p, s, meta);
    write_header(&p, &r->m, s, meta);
    write_metrics(&p, &r->m);
    write_charts(&p, r);
    write_settings(&p, &r->m, s, meta);
    write_trades(&p, r);
    put(&p, "<footer>Generated by quantgate " QG_VERSION ". Past performance in a backtest is "
            "not a promise of future results.</footer>\n</main></body></html>\n");
    if (p.rc) {
        out->len = start; /* never hand back half a page */
        if (out->data) out->data[start] = '\0';
    }
    return p.rc;
}
