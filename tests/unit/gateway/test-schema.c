/* SPDX-License-Identifier: Apache-2.0 */
/* Untrusted metadata checks and argument validation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gateway/schema.h"

static json_t *checked(const char *s) {
        json_t *in = json_loads(s, 0, NULL);
        cr_assert_not_null(in);
        json_t *out = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr__schema_check(in, &out, "test", &err), 0, "%s", err ? tr_error_message(err) : "");
        cr_assert_null(err);
        json_decref(in);
        return out;
}

static int valid(json_t *schema, const char *args) {
        json_t *a = json_loads(args, JSON_DECODE_ANY, NULL);
        tr_error *err = NULL;
        int r = tr__schema_validate(schema, a, &err);
        json_decref(a);
        /* A failure is one tr_error: invalid_arguments, op "validate". */
        if (r < 0) {
                cr_assert_not_null(err);
                cr_assert_eq(tr_error_code(err), TR_E_INVALID_ARGUMENTS);
                cr_assert_str_eq(tr_error_op(err), "validate");
        } else
                cr_assert_null(err);
        tr_error_free(err);
        return r;
}

Test(gw_schema, validate) {
        json_t *s = checked("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":0},"
                            "\"u\":{\"type\":\"string\",\"enum\":[\"x\",\"y\"]},\"l\":{\"type\":\"array\","
                            "\"items\":{\"type\":\"string\"},\"maxItems\":2},\"n\":{\"type\":[\"number\",\"null\"]}},"
                            "\"required\":[\"a\"],\"additionalProperties\":false}");
        cr_assert_eq(valid(s, "{\"a\":1}"), 0);
        cr_assert_eq(valid(s, "{\"a\":1.0}"), 0);
        cr_assert_lt(valid(s, "{\"a\":1.5}"), 0);
        cr_assert_lt(valid(s, "{\"a\":-1}"), 0);
        cr_assert_lt(valid(s, "{}"), 0);
        cr_assert_lt(valid(s, "{\"a\":\"1\"}"), 0);
        cr_assert_eq(valid(s, "{\"a\":1,\"u\":\"x\"}"), 0);
        cr_assert_lt(valid(s, "{\"a\":1,\"u\":\"z\"}"), 0);
        cr_assert_lt(valid(s, "{\"a\":1,\"zzz\":1}"), 0);
        cr_assert_eq(valid(s, "{\"a\":1,\"l\":[\"p\"]}"), 0);
        cr_assert_lt(valid(s, "{\"a\":1,\"l\":[1]}"), 0);
        cr_assert_lt(valid(s, "{\"a\":1,\"l\":[\"a\",\"b\",\"c\"]}"), 0);
        cr_assert_eq(valid(s, "{\"a\":1,\"n\":null}"), 0);
        cr_assert_lt(valid(s, "{\"a\":1,\"n\":true}"), 0);
        json_decref(s);
}

Test(gw_schema, reject_bad_schemas) {
        const char *bad[] = {
                "[]",
                "{\"type\":\"string\"}",
                "{\"type\":\"object\",\"required\":\"a\"}",
                "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"bogus\"}}}",
                "{\"type\":\"object\",\"properties\":[]}",
                "{\"type\":\"object\",\"properties\":{\"a\":{\"maxLength\":-1}}}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                json_t *in = json_loads(bad[i], 0, NULL);
                json_t *out = NULL;
                tr_error *err = NULL;
                cr_assert_lt(tr__schema_check(in, &out, "manifest", &err), 0, "%s", bad[i]);
                cr_assert_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
                cr_assert_str_eq(tr_error_op(err), "manifest");
                tr_error_free(err);
                json_decref(in);
        }
        /* Too deep. */
        char deep[4096];
        size_t o = (size_t) snprintf(deep, sizeof(deep), "{\"type\":\"object\"");
        for (int i = 0; i < 40; i++)
                o += (size_t) snprintf(deep + o, sizeof(deep) - o, ",\"properties\":{\"a\":{\"type\":\"object\"");
        for (int i = 0; i < 40; i++)
                o += (size_t) snprintf(deep + o, sizeof(deep) - o, "}}");
        snprintf(deep + o, sizeof(deep) - o, "}");
        json_t *in = json_loads(deep, 0, NULL);
        cr_assert_not_null(in);
        json_t *out = NULL;
        tr_error *err = NULL;
        cr_assert_lt(tr__schema_check(in, &out, "test", &err), 0);
        cr_assert_not_null(strstr(tr_error_message(err), "deeper"), "%s", tr_error_message(err));
        tr_error_free(err);
        json_decref(in);
}

/* The message names the offending path. */
Test(gw_schema, validation_error_names_the_path) {
        json_t *s = checked("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}");
        json_t *a = json_loads("{\"a\":\"x\"}", 0, NULL);
        tr_error *err = NULL;
        cr_assert_lt(tr__schema_validate(s, a, &err), 0);
        cr_assert_str_eq(tr_error_message(err), "args.a: expected integer, got string");
        tr_error_free(err);
        json_decref(a);
        json_decref(s);
}

Test(gw_schema, sanitize) {
        char *s = tr__text_sanitize("a\x1b[2Jb\nc\td\x7f", 100);
        cr_assert_str_eq(s, "a[2Jb\nc\td");
        free(s);
        /* Cut at a UTF-8 boundary: "é" is two bytes. */
        s = tr__text_sanitize("ab\xc3\xa9", 3);
        cr_assert_str_eq(s, "ab");
        free(s);
        cr_assert(tr__tool_name_valid("get_weather", 128));
        cr_assert(!tr__tool_name_valid("get weather", 128));
        cr_assert(!tr__tool_name_valid("", 128));
}
