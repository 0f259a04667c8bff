/* SPDX-License-Identifier: Apache-2.0 */
/* The strict string forms of limits (tr_parse_size, _count, _seconds): what
 * they accept, and that everything else is invalid_limits naming the form. */
#include <criterion/criterion.h>
#include <string.h>

#include "toolruntime.h"

static int64_t ok_size(const char *s) {
        int64_t v = -7;
        tr_error *err = NULL;
        cr_assert_eq(tr_parse_size(s, &v, &err), 0, "size '%s' rejected", s);
        cr_assert_null(err);
        return v;
}

static int64_t ok_seconds(const char *s) {
        int64_t v = -7;
        cr_assert_eq(tr_parse_seconds(s, &v, NULL), 0, "seconds '%s' rejected", s);
        return v;
}

/* Rejected with invalid_limits and a message containing `want`; the output
 * is left alone. */
static void bad(int (*parse)(const char *, int64_t *, tr_error **), const char *s, const char *want) {
        int64_t v = -7;
        tr_error *err = NULL;
        cr_expect_lt(parse(s, &v, &err), 0, "'%s' accepted", s ? s : "(null)");
        cr_assert_not_null(err);
        cr_expect_eq(tr_error_code(err), TR_E_INVALID_LIMITS);
        cr_expect(strstr(tr_error_message(err), want), "'%s': message '%s' lacks '%s'", s ? s : "(null)",
                  tr_error_message(err), want);
        cr_expect_eq(v, -7);
        tr_error_free(err);
}

Test(parse, sizes) {
        cr_expect_eq(ok_size("0"), 0);
        cr_expect_eq(ok_size("4096"), 4096);
        cr_expect_eq(ok_size("007"), 7);
        cr_expect_eq(ok_size("64k"), 64 * 1024);
        cr_expect_eq(ok_size("64K"), 64 * 1024);
        cr_expect_eq(ok_size("512M"), 512LL << 20);
        cr_expect_eq(ok_size("2G"), 2LL << 30);
        cr_expect_eq(ok_size("1048576G"), TR_LIMIT_MAX);
        const char *form = "digits with an optional k, M or G suffix";
        const char *const rejected[] = { "",     " 64M",    "64M ", "+64M", "-64M",  "0x10", "1e3",
                                         "1.5M", "0.0001k", "64m",  "64MB", "64MiB", "2g",   "64KK",
                                         "M",    "k",       "١٢",   "6 4",  "64T",   "inf",  "nan" };
        for (size_t i = 0; i < sizeof(rejected) / sizeof(*rejected); i++)
                bad(tr_parse_size, rejected[i], form);
        bad(tr_parse_size, NULL, form);
        bad(tr_parse_size, "1048577G", "too large");
        bad(tr_parse_size, "99999999999999999999999", "too large");
}

Test(parse, counts) {
        int64_t v = -1;
        cr_expect_eq(tr_parse_count("0", &v, NULL), 0);
        cr_expect_eq(v, 0);
        cr_expect_eq(tr_parse_count("128", &v, NULL), 0);
        cr_expect_eq(v, 128);
        const char *const rejected[] = { "", "-1", "+1", " 1", "1 ", "0x10", "1e2", "1.0", "64k", "abc" };
        for (size_t i = 0; i < sizeof(rejected) / sizeof(*rejected); i++)
                bad(tr_parse_count, rejected[i], "digits only");
        bad(tr_parse_count, "1125899906842625", "too large");
}

Test(parse, seconds) {
        cr_expect_eq(ok_seconds("0"), 0);
        cr_expect_eq(ok_seconds("30"), 30000);
        cr_expect_eq(ok_seconds("1.5"), 1500);
        cr_expect_eq(ok_seconds("0.25"), 250);
        cr_expect_eq(ok_seconds("0.001"), 1);
        cr_expect_eq(ok_seconds("0.0005"), 1, "rounds to the nearest ms");
        cr_expect_eq(ok_seconds("1.0004"), 1000);
        cr_expect_eq(ok_seconds("0.000"), 0, "zero written long is still zero");
        cr_expect_eq(ok_seconds("1000000"), TR_TIMEOUT_MAX_MS);
        const char *form = "decimal seconds";
        const char *const rejected[] = { "",   "0x10", "1e3", " 5",  "5 ",  "+5",  "-5",   ".5",
                                         "5.", "5s",   "1,5", "inf", "nan", "abc", "1.2.3" };
        for (size_t i = 0; i < sizeof(rejected) / sizeof(*rejected); i++)
                bad(tr_parse_seconds, rejected[i], form);
        bad(tr_parse_seconds, "0.0001", "rounds to 0");
        bad(tr_parse_seconds, "0.0004999", "rounds to 0");
        bad(tr_parse_seconds, "1000000.001", "too large");
        bad(tr_parse_seconds, "99999999999999999999", "too large");
}
