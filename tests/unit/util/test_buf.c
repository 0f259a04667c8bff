/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"

Test(cbuf, caps_head_and_counts_the_rest) {
        tr__cbuf b;
        tr__cbuf_init(&b, 10);
        cr_assert_eq(tr__cbuf_append(&b, "0123456789abcdef", 16), 0);
        cr_assert(b.truncated);
        cr_assert_eq(b.len, 10);
        cr_assert_eq(tr__cbuf_append(&b, "Z", 1), 0);
        cr_assert_eq(b.total, 17);
        size_t len;
        char *head = tr__cbuf_steal(&b, &len);
        cr_assert_str_eq(head, "0123456789");
        cr_assert_eq(len, 10);
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

#include <sys/stat.h>
#include <unistd.h>

#include "util/proc.h"

Test(proc, rm_rf_removes_trees_made_unreadable) {
        char dir[] = "/tmp/tr-test-rmrf-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char sub[128], file[160];
        snprintf(sub, sizeof(sub), "%s/locked", dir);
        snprintf(file, sizeof(file), "%s/f", sub);
        cr_assert_eq(mkdir(sub, 0700), 0);
        FILE *f = fopen(file, "w");
        cr_assert_not_null(f);
        fclose(f);
        cr_assert_eq(chmod(sub, 0), 0);
        cr_assert_eq(tr__rm_rf(dir), 0);
        cr_assert_neq(access(dir, F_OK), 0);
        cr_assert_eq(tr__rm_rf("/tmp/tr-test-rmrf-does-not-exist"), 0);
}
