/*
 * test_decimal.c - the loaders' decimal fast path (qg_plain_decimal) must
 * give exactly what strtod gives, for every shape of number, and the same
 * answer whether the input ends right after the number or goes on.
 * (Reading eight digits at a time with SWAR was tried here and measured
 * slower than the byte loop on prices of 4 to 6 digits, so it is not used.)
 */
#include <criterion/criterion.h>

#include "market/bars_int.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static unsigned next(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

Test(decimal, fast_path_matches_strtod)
{
    static const char after[] = ",;\t\n\r .e-+x\"0";
    char buf[64];
    for (int iter = 0; iter < 300000; iter++) {
        size_t n = 0;
        if (next(4) == 0) buf[n++] = '-';
        unsigned ni = next(11), nf = next(11);
        for (unsigned i = 0; i < ni; i++) buf[n++] = (char)('0' + next(10));
        bool dot = next(3) != 0;
        if (dot) buf[n++] = '.';
        for (unsigned i = 0; dot && i < nf; i++) buf[n++] = (char)('0' + next(10));
        size_t numlen = n;
        buf[n++] = after[next(sizeof after - 1)];
        while (n < sizeof buf) buf[n++] = (char)(next(3) ? '0' + next(10) : ',');
        double fast = 0, slow = 0;
        /* Parse with the rest of the row after the number, and with the
         * input ending at the number. */
        const char *ef = qg_plain_decimal(buf, buf + sizeof buf, &fast);
        char copy[64];
        memcpy(copy, buf, numlen);
        const char *es = qg_plain_decimal(copy, copy + numlen, &slow);
        char text[64];
        memcpy(text, buf, numlen);
        text[numlen] = '\0';
        if (buf[numlen] == 'e' || buf[numlen] == '.' || ((unsigned)(buf[numlen] - '0') <= 9) ||
            (numlen == 0 && buf[0] == '-')) {
            /* Followed by more number text: the byte path saw a shorter
             * input, so only the full-buffer result is checked. */
            if (ef) cr_assert(ef - buf >= (ptrdiff_t)numlen, "%s", text);
            continue;
        }
        cr_assert_eq(!ef, !es, "'%s': fast %s, bytes %s", text, ef ? "ok" : "NULL",
                     es ? "ok" : "NULL");
        if (!ef) continue;
        cr_assert_eq(ef - buf, es - copy, "'%s': ends differ", text);
        cr_assert_eq(ef - buf, (ptrdiff_t)numlen, "'%s'", text);
        cr_assert_eq(fast, slow, "'%s': %.17g vs %.17g", text, fast, slow);
        cr_assert_eq(fast, strtod(text, NULL), "'%s': %.17g vs strtod", text, fast);
    }
}
