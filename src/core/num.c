/*
 * num.c - decimal parsing and fixed-point formatting for hot loops.
 *
 * Fast path (Clinger 1990): when the decimal mantissa fits in 53 bits and the
 * power of ten is at most 22 in magnitude, mantissa * 10^e (or / 10^-e) is a
 * single correctly rounded IEEE operation on two exact doubles. Everything
 * else goes through strtod, which is slower but exact.
 */
#include <quantgate/num.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static const char *slow_path(const char *s, const char *stop, double *out)
{
    char tmp[128];
    size_t len = (size_t)(stop - s);
    if (len >= sizeof tmp) return NULL;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *e;
    *out = strtod(tmp, &e);
    return e == tmp + len ? stop : NULL;
}

const char *qg_parse_double(const char *s, const char *end, double *out)
{
    const char *p = s;
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+')) neg = *p++ == '-';
    uint64_t mant = 0;
    int ndigits = 0, exp10 = 0;
    bool any = false;
    while (p < end && (unsigned)(*p - '0') <= 9) {
        if (ndigits < 19) {
            mant = mant * 10 + (uint64_t)(*p - '0');
            if (mant) ndigits++;
        } else {
            exp10++; /* digit beyond what we track: scale instead */
        }
        p++;
        any = true;
    }
    if (p < end && *p == '.') {
        p++;
        while (p < end && (unsigned)(*p - '0') <= 9) {
            if (ndigits < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                if (mant) ndigits++;
                exp10--;
            }
            p++;
            any = true;
        }
    }
    if (!any) return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        bool eneg = false;
        if (q < end && (*q == '-' || *q == '+')) eneg = *q++ == '-';
        if (q >= end || (unsigned)(*q - '0') > 9) return NULL;
        int e = 0;
        while (q < end && (unsigned)(*q - '0') <= 9) {
            if (e < 100000) e = e * 10 + (*q - '0');
            q++;
        }
        exp10 += eneg ? -e : e;
        p = q;
    }
    if (ndigits >= 19 || mant > (1ULL << 53) || exp10 < -22 || exp10 > 22)
        return slow_path(s, p, out);
    double v = (double)mant;
    v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
    *out = neg ? -v : v;
    return p;
}

const char *qg_parse_int64(const char *s, const char *end, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+')) neg = *p++ == '-';
    if (p >= end || (unsigned)(*p - '0') > 9) return NULL;
    uint64_t v = 0;
    while (p < end && (unsigned)(*p - '0') <= 9) {
        if (v > (UINT64_C(9223372036854775807) - 9) / 10) return NULL;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return p;
}

int qg_format_fixed(double v, int decimals, char *out)
{
    if (decimals < 0) decimals = 0;
    if (decimals > 9 || !(fabs(v) < 1e15) || isnan(v))
        return snprintf(out, 32, "%.*f", decimals, v);
    static const uint64_t p10[] = {1,      10,      100,      1000,      10000,
                                   100000, 1000000, 10000000, 100000000, 1000000000};
    bool neg = v < 0;
    uint64_t scaled = (uint64_t)llround(fabs(v) * (double)p10[decimals]);
    if (scaled == 0) neg = false;
    uint64_t ip = scaled / p10[decimals], fp = scaled % p10[decimals];
    char tmp[32];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip);
    int len = 0;
    if (neg) out[len++] = '-';
    while (n) out[len++] = tmp[--n];
    if (decimals) {
        out[len++] = '.';
        for (int k = decimals - 1; k >= 0; k--) {
            out[len + k] = (char)('0' + fp % 10);
            fp /= 10;
        }
        len += decimals;
    }
    out[len] = '\0';
    return len;
}
