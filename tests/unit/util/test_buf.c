/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <string.h>

#include "util/buf.h"

Test(cbuf, caps_head_and_keeps_tail) {
        tr__cbuf b;
        tr__cbuf_init(&b, 10);
        cr_assert_eq(tr__cbuf_append(&b, "0123456789abcdef", 16), 0);
        cr_assert(b.truncated);
        cr_assert_eq(b.len, 10);
        size_t n = 0;
        char *t = tr__cbuf_tail_linear(&b, &n);
        cr_assert_eq(n, 6);
        cr_assert_str_eq(t, "abcdef");
        free(t);
        char *big = malloc(TR_CBUF_TAIL + 100);
        memset(big, 'x', TR_CBUF_TAIL + 100);
        memcpy(big + TR_CBUF_TAIL + 100 - 3, "END", 3);
        cr_assert_eq(tr__cbuf_append(&b, big, TR_CBUF_TAIL + 100), 0);
        t = tr__cbuf_tail_linear(&b, &n);
        cr_assert_eq(n, TR_CBUF_TAIL);
        cr_assert_eq(memcmp(t + n - 3, "END", 3), 0);
        free(t);
        cr_assert_eq(tr__cbuf_append(&b, "Z", 1), 0);
        t = tr__cbuf_tail_linear(&b, &n);
        cr_assert_eq(memcmp(t + n - 4, "ENDZ", 4), 0);
        free(t);
        free(big);
        size_t len;
        char *head = tr__cbuf_steal(&b, &len);
        cr_assert_str_eq(head, "0123456789");
        free(head);
        tr__cbuf_done(&b);
}

Test(cbuf, empty_steal_is_empty_string) {
        tr__cbuf b;
        tr__cbuf_init(&b, 10);
        size_t len = 99;
        char *s = tr__cbuf_steal(&b, &len);
        cr_assert_str_eq(s, "");
        cr_assert_eq(len, 0);
        free(s);
        tr__cbuf_done(&b);
}
