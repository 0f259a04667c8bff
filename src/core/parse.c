/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The string forms of limits: sizes, counts and seconds.  One strict parser
 * for the library and the CLI.  Strict because a lenient one turns typos
 * into different limits: strtod() reads "0x10" as 16, "1e3" as 1000 and
 * " 5" as 5, and "0.0001k" rounded to 0 bytes, which means unlimited.  Here
 * a value is plain ASCII digits (and a suffix or fraction where the form
 * has one), nothing before or after.
 */
#include <errno.h>
#include <stdbool.h>

#include "core/internal.h"

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* Digits s[0..) up to the first non-digit, into *ret (at most `max`).
 * Returns the number of digits, 0 when there are none, -ERANGE when the
 * value exceeds `max`. */
static int digits(const char *s, int64_t max, int64_t *ret) {
        int64_t v = 0;
        int n = 0;
        for (; IS_DIGIT(s[n]); n++) {
                int d = s[n] - '0';
                if (v > (max - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return n;
}

static int bad(tr_error **ret_err, const char *s, const char *form) {
        return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "parse", "invalid value '%s': expected %s",
                            s ? s : "(null)", form);
}

#define SIZE_FORM    "a size in bytes: digits with an optional k, M or G suffix (binary: 1k = 1024), e.g. 64M"
#define COUNT_FORM   "a whole number: digits only, e.g. 64"
#define SECONDS_FORM "decimal seconds: digits with an optional fraction, e.g. 1.5"

TR_PUBLIC int tr_parse_size(const char *s, int64_t *ret_bytes, tr_error **ret_err) {
        if (!s)
                return bad(ret_err, s, SIZE_FORM);
        int64_t v;
        int n = digits(s, TR_LIMIT_MAX, &v);
        if (n == -ERANGE)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "parse",
                                    "size '%s' is too large (at most %lld bytes)", s, (long long) TR_LIMIT_MAX);
        if (n == 0)
                return bad(ret_err, s, SIZE_FORM);
        int shift = 0;
        switch (s[n]) {
        case '\0': break;
        case 'k':
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        default: return bad(ret_err, s, SIZE_FORM);
        }
        if (shift && s[n + 1] != '\0')
                return bad(ret_err, s, SIZE_FORM);
        if (v > (TR_LIMIT_MAX >> shift))
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "parse",
                                    "size '%s' is too large (at most %lld bytes)", s, (long long) TR_LIMIT_MAX);
        *ret_bytes = v << shift;
        return 0;
}

TR_PUBLIC int tr_parse_count(const char *s, int64_t *ret, tr_error **ret_err) {
        if (!s)
                return bad(ret_err, s, COUNT_FORM);
        int64_t v;
        int n = digits(s, TR_LIMIT_MAX, &v);
        if (n == -ERANGE)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "parse",
                                    "'%s' is too large (at most %lld)", s, (long long) TR_LIMIT_MAX);
        if (n == 0 || s[n] != '\0')
                return bad(ret_err, s, COUNT_FORM);
        *ret = v;
        return 0;
}

TR_PUBLIC int tr_parse_seconds(const char *s, int64_t *ret_ms, tr_error **ret_err) {
        if (!s)
                return bad(ret_err, s, SECONDS_FORM);
        const int64_t max_s = TR_TIMEOUT_MAX_MS / 1000;
        int64_t whole;
        int n = digits(s, max_s, &whole);
        if (n == -ERANGE)
                goto too_large;
        if (n == 0)
                return bad(ret_err, s, SECONDS_FORM);
        int64_t ms = whole * 1000;
        bool nonzero = whole > 0;
        const char *p = s + n;
        if (*p == '.') {
                p++;
                if (!IS_DIGIT(*p))
                        return bad(ret_err, s, SECONDS_FORM);
                /* Milliseconds from the first three digits, rounded half up
                 * on the fourth; the rest only tells whether it was zero. */
                int64_t scale = 100;
                for (int i = 0; IS_DIGIT(*p); i++, p++) {
                        int d = *p - '0';
                        nonzero = nonzero || d;
                        if (i < 3) {
                                ms += d * scale;
                                scale /= 10;
                        } else if (i == 3 && d >= 5) {
                                ms++;
                        }
                }
        }
        if (*p != '\0')
                return bad(ret_err, s, SECONDS_FORM);
        if (nonzero && ms == 0)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "parse",
                                    "'%s' seconds rounds to 0 ms, which would mean the default: give at least 0.001",
                                    s);
        if (ms > TR_TIMEOUT_MAX_MS)
                goto too_large;
        *ret_ms = ms;
        return 0;
too_large:
        return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "parse",
                            "'%s' seconds is too large (at most %lld)", s, (long long) max_s);
}
