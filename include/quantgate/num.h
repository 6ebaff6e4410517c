/*
 * num.h - fast, exact decimal number parsing for loaders.
 *
 * qg_parse_double reads a decimal number ("-12.5", "3e-4", "1E6") from
 * [s, end). Numbers with at most 19 significant digits and a small exponent
 * take Clinger's fast path (exact, correctly rounded); anything else falls
 * back to strtod on a bounded copy, so results always equal strtod's.
 * It does not accept "nan", "inf", hex floats or leading '+' spaces.
 */
#ifndef QUANTGATE_NUM_H
#define QUANTGATE_NUM_H

#include <stdbool.h>
#include <stdint.h>

/* Parses one number starting at s; returns the first byte after it, or NULL
 * when s does not start with a number. Never reads at or past end. */
const char *qg_parse_double(const char *s, const char *end, double *out);

/* Parses an optionally signed decimal integer; NULL when none or overflow. */
const char *qg_parse_int64(const char *s, const char *end, int64_t *out);

/* Writes v with `decimals` digits after the point into out (which must hold
 * at least 32 bytes); returns the length. Fast path for |v| < 1e15. */
int qg_format_fixed(double v, int decimals, char *out);

#endif
