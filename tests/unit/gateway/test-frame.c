/* SPDX-License-Identifier: Apache-2.0 */
/* The frame codec and the message decoder. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "gateway/frame.h"
#include "gateway/protocol.h"

Test(gw_frame, split_reads) {
        uint8_t *f = NULL;
        size_t n = 0;
        cr_assert_eq(tr__frame_encode("{\"a\":1}", 7, &f, &n), 0);
        cr_assert_eq(n, 11);
        tr__frame_reader r;
        tr__frame_reader_init(&r, 0);
        const uint8_t *p;
        size_t len;
        /* One byte at a time: a frame appears only when complete. */
        for (size_t i = 0; i < n; i++) {
                cr_assert_eq(tr__frame_reader_next(&r, &p, &len), 0);
                cr_assert_eq(tr__frame_reader_feed(&r, f + i, 1), 1);
        }
        cr_assert_eq(tr__frame_reader_next(&r, &p, &len), 1);
        cr_assert_eq(len, 7);
        cr_assert_eq(memcmp(p, "{\"a\":1}", 7), 0);
        cr_assert_eq(tr__frame_reader_next(&r, &p, &len), 0);
        tr__frame_reader_done(&r);
        free(f);
}

Test(gw_frame, oversized) {
        tr__frame_reader r;
        tr__frame_reader_init(&r, 16);
        uint8_t hdr[4];
        tr__frame_put_header(hdr, 17);
        cr_assert_eq(tr__frame_reader_feed(&r, hdr, 4), 4);
        const uint8_t *p;
        size_t len;
        cr_assert_eq(tr__frame_reader_next(&r, &p, &len), -EMSGSIZE);
        tr__frame_reader_done(&r);
        uint8_t *f;
        cr_assert_eq(tr__frame_encode("x", TR_FRAME_MAX + 1, &f, &len), -EMSGSIZE);
}

Test(gw_frame, buffer_bounded) {
        /* A frame at the cap fits; nothing beyond one frame is buffered. */
        tr__frame_reader r;
        tr__frame_reader_init(&r, 100);
        uint8_t buf[300];
        memset(buf, ' ', sizeof(buf));
        tr__frame_put_header(buf, 100);
        tr__frame_put_header(buf + 104, 100);
        ssize_t k = tr__frame_reader_feed(&r, buf, sizeof(buf));
        cr_assert_eq(k, 104);
        const uint8_t *p;
        size_t len;
        cr_assert_eq(tr__frame_reader_next(&r, &p, &len), 1);
        cr_assert_eq(len, 100);
        k = tr__frame_reader_feed(&r, buf + 104, sizeof(buf) - 104);
        cr_assert_eq(k, 104);
        cr_assert_eq(tr__frame_reader_next(&r, &p, &len), 1);
        tr__frame_reader_done(&r);
}

static int decode(const char *s, tr__gw_msg *m, json_t **bad) {
        tr_error *err = NULL;
        int r = tr__gw_msg_decode(s, strlen(s), m, bad, &err);
        if (r < 0) {
                cr_assert_eq(tr_error_code(err), TR_E_PROTOCOL);
                tr_error_free(err);
        }
        return r;
}

Test(gw_proto, decode) {
        tr__gw_msg m;
        json_t *bad = NULL;
        cr_assert_eq(decode("{\"type\":\"run_tool\",\"id\":3,\"payload\":{\"id\":\"a:b\"}}", &m, &bad), 0);
        cr_assert_eq(m.type, TR__GW_RUN_TOOL);
        cr_assert_eq(json_integer_value(m.id), 3);
        tr__gw_msg_done(&m);
        cr_assert_eq(decode("{\"type\":\"list_namespaces\",\"id\":\"x\"}", &m, &bad), 0);
        cr_assert(json_is_object(m.payload));
        tr__gw_msg_done(&m);
        cr_assert_lt(decode("[1]", &m, &bad), 0);
        cr_assert_null(bad);
        cr_assert_lt(decode("{\"type\":\"what\",\"id\":9}", &m, &bad), 0);
        cr_assert_eq(json_integer_value(bad), 9);
        json_decref(bad);
        cr_assert_lt(decode("{\"type\":\"run_tool\",\"id\":{}}", &m, &bad), 0);
        cr_assert_null(bad);
        cr_assert_lt(decode("{\"type\":\"run_tool\",\"id\":1,\"id\":2}", &m, &bad), 0);
        cr_assert_lt(decode("{\"type\":\"run_tool\",\"id\":1,\"payload\":\"\\u0000\"}", &m, &bad), 0);
        json_decref(bad);
}

Test(gw_proto, chain_parse) {
        json_t *s = json_loads("[{\"tool_id\":\"a:b\",\"args\":{\"x\":1}},{\"tool_id\":\"a:c\",\"use_previous\":true}]",
                               0, NULL);
        tr__gw_chain_step *v = NULL;
        size_t n = 0;
        cr_assert_eq(tr__gw_chain_parse(s, &v, &n, NULL), 0);
        cr_assert_eq(n, 2);
        json_t *prev = json_integer(5);
        json_t *a = tr__gw_chain_step_args(&v[1], prev);
        cr_assert_eq(json_integer_value(json_object_get(a, "previous")), 5);
        json_decref(a);
        json_decref(prev);
        free(v);
        json_decref(s);
        s = json_loads("[{\"tool_id\":\"a:b\",\"use_previous\":true}]", 0, NULL);
        cr_assert_lt(tr__gw_chain_parse(s, &v, &n, NULL), 0);
        json_decref(s);
}

Test(gw_proto, tool_ids) {
        cr_assert(tr__gw_tool_id_valid("ns:name"));
        cr_assert(tr__gw_tool_id_valid("a-b.c:d_e/f"));
        cr_assert(!tr__gw_tool_id_valid("nocolon"));
        cr_assert(!tr__gw_tool_id_valid(":x"));
        cr_assert(!tr__gw_tool_id_valid("x:"));
        cr_assert(!tr__gw_tool_id_valid("a:b:c"));
        cr_assert(!tr__gw_tool_id_valid("a b:c"));
}
