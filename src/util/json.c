/* SPDX-License-Identifier: Apache-2.0 */
/* JSON helpers shared by the front ends (json.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toolruntime.h"
#include "util/json.h"
#include "util/macros.h"

/* JSON strings must be UTF-8; snippet output need not be.  Invalid bytes
 * become U+FFFD so a report stays parseable. */
TR_PUBLIC int tr_utf8_sanitize(const char *s, size_t n, char **ret_text, size_t *ret_len, tr_error **ret_err) {
        if ((!s && n) || !ret_text)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "utf8", "invalid argument");
        /* Each input byte yields at most 3 output bytes (U+FFFD). */
        if (n > (SIZE_MAX - 1) / 3)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "utf8", "text too long");
        _cleanup_free_ char *out = malloc(n * 3 + 1);
        if (!out)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "utf8", "out of memory");
        size_t o = 0;
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];
                size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
                bool ok = need > 0 && i + need <= n;
                for (size_t k = 1; ok && k < need; k++)
                        ok = ((unsigned char) s[i + k] >> 6) == 2;
                if (ok && need > 1) {
                        /* Reject overlongs, surrogates and > U+10FFFF, as jansson does. */
                        uint32_t cp = need == 2 ? (c & 0x1fu) : need == 3 ? (c & 0x0fu) : (c & 0x07u);
                        for (size_t k = 1; k < need; k++)
                                cp = (cp << 6) | ((unsigned char) s[i + k] & 0x3fu);
                        ok = !((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
                               (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff);
                }
                if (ok) {
                        memcpy(out + o, s + i, need);
                        o += need;
                        i += need;
                } else {
                        memcpy(out + o, "\xef\xbf\xbd", 3);
                        o += 3;
                        i++;
                }
        }
        out[o] = 0;
        *ret_text = TAKE_PTR(out);
        if (ret_len)
                *ret_len = o;
        return 0;
}

json_t *tr__json_bytes(const char *s, size_t n) {
        json_t *j = json_stringn(s, n);
        if (j)
                return j;
        _cleanup_free_ char *clean = NULL;
        size_t len = 0;
        if (tr_utf8_sanitize(s, n, &clean, &len, NULL) < 0)
                return NULL;
        return json_stringn(clean, len);
}
