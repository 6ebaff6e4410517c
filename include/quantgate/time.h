/*
 * time.h - UTC timestamps in milliseconds, ISO-8601 parsing and printing,
 * and timeframes ("1m", "4h", "1d", "1w").
 *
 * All times in quantgate are int64 milliseconds since the Unix epoch, UTC.
 * Parsing is allocation-free and fast enough for per-row use in loaders.
 */
#ifndef QUANTGATE_TIME_H
#define QUANTGATE_TIME_H

#include <quantgate/status.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define QG_MS_PER_SEC  1000LL
#define QG_MS_PER_MIN  60000LL
#define QG_MS_PER_HOUR 3600000LL
#define QG_MS_PER_DAY  86400000LL

int64_t qg_time_now_ms(void);
/* Microseconds on the monotonic clock (intervals only: not a time of day). */
int64_t qg_time_mono_us(void);
/* The time ms from now on `clock`, as pthread_cond_timedwait takes it
 * (CLOCK_REALTIME, or the clock the condition variable was made with). */
struct timespec qg_time_deadline(clockid_t clock, int64_t ms);

/* Days since 1970-01-01 for a proleptic Gregorian date (month 1-12). */
int64_t qg_days_from_civil(int64_t y, unsigned m, unsigned d);
/* Inverse of qg_days_from_civil. */
void qg_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* Parses an ISO-8601 date or date-time from s[0..n): "2024-01-02",
 * "2024-01-02T03:04", "2024-01-02 03:04:05", with optional fraction
 * ".123", and an optional zone "Z", "+02:00", "+0200" or "-05". No zone
 * means UTC. Returns NULL on success, or a static reason on failure. */
const char *qg_time_parse_iso(const char *s, size_t n, int64_t *out_ms);

/* Parses a time given on a command line: ISO-8601 as above, or an integer
 * epoch in seconds (< 1e11) or milliseconds. Error names the value. */
qg_status qg_time_parse_arg(const char *s, int64_t *out_ms, qg_error *err);

/* Writes "2024-01-02T03:04:05.678Z" (milliseconds only when non-zero). */
void qg_time_format_iso(int64_t ms, char *out, size_t cap);

/* Parses a timeframe "Nm", "Nh", "Nd" or "Nw" (N >= 1) into milliseconds.
 * Error names the value and lists the accepted forms. */
qg_status qg_timeframe_parse(const char *s, int64_t *out_ms, qg_error *err);
/* Formats milliseconds as the shortest of "15m", "4h", "1d", "1w". */
void qg_timeframe_format(int64_t ms, char *out, size_t cap);

/* Start of the bucket of width tf_ms that holds ts. Buckets are aligned to
 * the epoch (days start 00:00 UTC); weekly buckets start on Monday. */
int64_t qg_time_bucket(int64_t ts, int64_t tf_ms);

#endif
