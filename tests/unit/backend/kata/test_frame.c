/* SPDX-License-Identifier: Apache-2.0 */
/* The VM channel codec (src/util/frame.c): round trips, incremental input,
 * and every way a hostile guest can mangle a stream (bad magic, unknown
 * type, flags, oversized length, truncated TLVs), which must be rejected
 * without over-reading or over-allocating. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/frame.h"

static void feed_all(tr__vf_reader *r, const void *p, size_t n) {
        cr_assert_eq(tr__vf_reader_feed(r, p, n), (ssize_t) n);
}

Test(frame, round_trip_one_byte_at_a_time) {
        tr__vf_buf b = { 0 };
        cr_assert_eq(tr__vf_buf_frame(&b, TR_VF_STDOUT, NULL, 0, "hello", 5), 0);
        uint8_t id[4];
        tr__vf_put_u32(id, 7);
        cr_assert_eq(tr__vf_buf_frame(&b, TR_VF_GW_DATA, id, 4, "xyz", 3), 0);
        cr_assert_eq(tr__vf_buf_frame(&b, TR_VF_STARTED, NULL, 0, NULL, 0), 0);

        tr__vf_reader r;
        tr__vf_reader_init(&r, 1024);
        tr__vf_frame f;
        int got = 0;
        for (size_t i = 0; i < b.len; i++) {
                feed_all(&r, b.data + i, 1);
                int k;
                while ((k = tr__vf_reader_next(&r, &f)) > 0) {
                        if (got == 0) {
                                cr_assert_eq(f.type, TR_VF_STDOUT);
                                cr_assert_eq(f.len, 5);
                                cr_assert(memcmp(f.payload, "hello", 5) == 0);
                        } else if (got == 1) {
                                cr_assert_eq(f.type, TR_VF_GW_DATA);
                                cr_assert_eq(f.len, 7);
                                cr_assert_eq(tr__vf_get_u32(f.payload), 7);
                                cr_assert(memcmp(f.payload + 4, "xyz", 3) == 0);
                        } else {
                                cr_assert_eq(f.type, TR_VF_STARTED);
                                cr_assert_eq(f.len, 0);
                        }
                        got++;
                }
                cr_assert_geq(k, 0);
        }
        cr_assert_eq(got, 3);
        cr_assert_eq(tr__vf_reader_pending(&r), 0);
        tr__vf_reader_done(&r);
        tr__vf_buf_done(&b);
}

static int parse_one(const uint8_t *p, size_t n, size_t max) {
        tr__vf_reader r;
        tr__vf_reader_init(&r, max);
        tr__vf_reader_feed(&r, p, n);
        tr__vf_frame f;
        int k = tr__vf_reader_next(&r, &f);
        tr__vf_reader_done(&r);
        return k;
}

Test(frame, malformed_headers_are_rejected) {
        uint8_t ok[8] = { 'T', 'V', TR_VF_STDOUT, 0, 0, 0, 0, 0 };
        cr_assert_eq(parse_one(ok, 8, 64), 1);
        uint8_t bad_magic[8] = { 'X', 'V', TR_VF_STDOUT, 0, 0, 0, 0, 0 };
        cr_assert_eq(parse_one(bad_magic, 8, 64), -EBADMSG);
        uint8_t bad_type0[8] = { 'T', 'V', 0, 0, 0, 0, 0, 0 };
        cr_assert_eq(parse_one(bad_type0, 8, 64), -EBADMSG);
        uint8_t bad_type[8] = { 'T', 'V', TR__VF_TYPE_MAX, 0, 0, 0, 0, 0 };
        cr_assert_eq(parse_one(bad_type, 8, 64), -EBADMSG);
        uint8_t bad_flags[8] = { 'T', 'V', TR_VF_STDOUT, 1, 0, 0, 0, 0 };
        cr_assert_eq(parse_one(bad_flags, 8, 64), -EBADMSG);
        /* A header announcing more than the cap is refused at once, before
         * any payload is buffered. */
        uint8_t big[8] = { 'T', 'V', TR_VF_STDOUT, 0, 0, 0, 0, 65 };
        cr_assert_eq(parse_one(big, 8, 64), -EMSGSIZE);
        uint8_t huge[8] = { 'T', 'V', TR_VF_STDOUT, 0, 0xff, 0xff, 0xff, 0xff };
        cr_assert_eq(parse_one(huge, 8, 0), -EMSGSIZE);
        /* Short input is "need more", not an error. */
        cr_assert_eq(parse_one(ok, 5, 64), 0);
        uint8_t partial[10] = { 'T', 'V', TR_VF_STDOUT, 0, 0, 0, 0, 4, 'a', 'b' };
        cr_assert_eq(parse_one(partial, 10, 64), 0);
}

Test(frame, reader_never_buffers_more_than_one_frame) {
        tr__vf_reader r;
        tr__vf_reader_init(&r, 100);
        uint8_t junk[4096];
        memset(junk, 'A', sizeof(junk));
        ssize_t took = tr__vf_reader_feed(&r, junk, sizeof(junk));
        cr_assert_leq(took, 108);
        cr_assert_leq(r.alloc, 108);
        tr__vf_frame f;
        cr_assert_eq(tr__vf_reader_next(&r, &f), -EBADMSG);
        tr__vf_reader_done(&r);
}

Test(frame, read_fd_and_eof) {
        int sp[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        cr_assert_eq(tr__vf_write(sp[0], TR_VF_STDERR, NULL, 0, "oops", 4), 0);
        close(sp[0]);
        tr__vf_reader r;
        tr__vf_reader_init(&r, 0);
        cr_assert_eq(tr__vf_reader_read_fd(&r, sp[1]), 12);
        tr__vf_frame f;
        cr_assert_eq(tr__vf_reader_next(&r, &f), 1);
        cr_assert_eq(f.type, TR_VF_STDERR);
        cr_assert_eq(tr__vf_reader_read_fd(&r, sp[1]), 0);
        close(sp[1]);
        tr__vf_reader_done(&r);
}

Test(frame, writer_refuses_bad_frames) {
        uint8_t hdr[8];
        cr_assert_eq(tr__vf_header(hdr, 0, 1), -EINVAL);
        cr_assert_eq(tr__vf_header(hdr, TR__VF_TYPE_MAX, 1), -EINVAL);
        cr_assert_eq(tr__vf_header(hdr, TR_VF_STDOUT, (size_t) TR_VF_MAX_PAYLOAD + 1), -EMSGSIZE);
        tr__vf_buf b = { 0 };
        cr_assert_eq(tr__vf_buf_frame(&b, TR_VF_STDOUT, "x", 1, NULL, TR_VF_MAX_PAYLOAD), -EMSGSIZE);
        cr_assert_eq(b.len, 0);
        tr__vf_buf_done(&b);
}

Test(tlv, round_trip_and_truncation) {
        tr__vf_buf b = { 0 };
        cr_assert_eq(tr__vf_tlv_add_str(&b, 1, "python3"), 0);
        cr_assert_eq(tr__vf_tlv_add_u64(&b, 4, 0x0102030405060708ULL), 0);
        cr_assert_eq(tr__vf_tlv_add(&b, 3, "", 0), 0);
        tr__vf_tlv_iter it;
        tr__vf_tlv_iter_init(&it, b.data, b.len);
        uint16_t tag;
        const uint8_t *v;
        size_t n;
        uint64_t u;
        cr_assert_eq(tr__vf_tlv_next(&it, &tag, &v, &n), 1);
        cr_assert_eq(tag, 1);
        cr_assert_eq(n, 7);
        cr_assert_eq(tr__vf_tlv_u64(v, n, &u), -EBADMSG);
        cr_assert_eq(tr__vf_tlv_next(&it, &tag, &v, &n), 1);
        cr_assert_eq(tr__vf_tlv_u64(v, n, &u), 0);
        cr_assert_eq(u, 0x0102030405060708ULL);
        cr_assert_eq(tr__vf_tlv_next(&it, &tag, &v, &n), 1);
        cr_assert_eq(n, 0);
        cr_assert_eq(tr__vf_tlv_next(&it, &tag, &v, &n), 0);

        /* Every truncation of the list either stops cleanly at an item
         * boundary or is reported; never an over-read (ASan watches). */
        for (size_t cut = 0; cut < b.len; cut++) {
                uint8_t *copy = malloc(cut ? cut : 1);
                memcpy(copy, b.data, cut);
                tr__vf_tlv_iter_init(&it, copy, cut);
                int k;
                while ((k = tr__vf_tlv_next(&it, &tag, &v, &n)) > 0)
                        cr_assert_leq(v + n, copy + cut);
                cr_assert(k == 0 || k == -EBADMSG);
                free(copy);
        }
        /* A length field pointing past the end. */
        uint8_t lie[6 + 2] = { 0, 1, 0xff, 0xff, 0xff, 0xff, 'a', 'b' };
        tr__vf_tlv_iter_init(&it, lie, sizeof(lie));
        cr_assert_eq(tr__vf_tlv_next(&it, &tag, &v, &n), -EBADMSG);
        tr__vf_buf_done(&b);
}

Test(frame, random_garbage_never_crashes) {
        unsigned seed = 12345;
        for (int round = 0; round < 2000; round++) {
                uint8_t buf[64];
                for (size_t i = 0; i < sizeof(buf); i++)
                        buf[i] = (uint8_t) rand_r(&seed);
                /* Bias towards valid-looking headers. */
                if (round % 2) {
                        buf[0] = 'T';
                        buf[1] = 'V';
                        buf[3] = 0;
                        buf[4] = buf[5] = buf[6] = 0;
                }
                tr__vf_reader r;
                tr__vf_reader_init(&r, 32);
                tr__vf_reader_feed(&r, buf, sizeof(buf));
                tr__vf_frame f;
                int k;
                while ((k = tr__vf_reader_next(&r, &f)) > 0) {
                        cr_assert_leq(f.len, 32);
                        tr__vf_tlv_iter it;
                        tr__vf_tlv_iter_init(&it, f.payload, f.len);
                        uint16_t tag;
                        const uint8_t *v;
                        size_t n;
                        while (tr__vf_tlv_next(&it, &tag, &v, &n) > 0)
                                ;
                }
                tr__vf_reader_done(&r);
        }
}
