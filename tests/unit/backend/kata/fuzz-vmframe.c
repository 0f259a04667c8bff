/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the VM channel codec (src/util/frame.c), i.e. what a
 * guest's bytes reach on the host before the kata backend looks at a frame:
 * the incremental frame reader, then the TLV walk the exit status and the
 * request go through.  The first input byte picks the read chunk size, so
 * frame boundaries fall at every position.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "util/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        size_t chunk = (size_t) data[0] % 64 + 1;
        data++;
        size--;
        tr__vf_reader r;
        /* The host's cap for guest frames is small; so is this one, to keep
         * the oversized path reachable. */
        tr__vf_reader_init(&r, 4096);
        size_t off = 0;
        int dead = 0;
        while (off < size && !dead) {
                size_t n = size - off < chunk ? size - off : chunk;
                ssize_t k = tr__vf_reader_feed(&r, data + off, n);
                if (k < 0)
                        break;
                off += (size_t) k;
                tr__vf_frame f;
                int m;
                while ((m = tr__vf_reader_next(&r, &f)) > 0) {
                        tr__vf_tlv_iter it;
                        tr__vf_tlv_iter_init(&it, f.payload, f.len);
                        uint16_t tag;
                        const uint8_t *v;
                        size_t vn;
                        uint64_t u;
                        while (tr__vf_tlv_next(&it, &tag, &v, &vn) > 0)
                                (void) tr__vf_tlv_u64(v, vn, &u);
                }
                if (m < 0 || k == 0)
                        dead = 1;
        }
        tr__vf_reader_done(&r);
        return 0;
}
