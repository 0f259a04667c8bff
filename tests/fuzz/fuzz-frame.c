/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the gateway's frame reader and message decoder, i.e.
 * everything a sandbox's bytes reach before dispatch.  The first input byte
 * picks the read chunk size, so frame boundaries fall at every position.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gateway/frame.h"
#include "gateway/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        size_t chunk = (size_t) data[0] % 64 + 1;
        data++;
        size--;
        tr__frame_reader r;
        /* A small cap keeps the "oversized" path reachable. */
        tr__frame_reader_init(&r, 4096);
        size_t off = 0;
        bool dead = false;
        while (off < size && !dead) {
                size_t n = size - off < chunk ? size - off : chunk;
                ssize_t k = tr__frame_reader_feed(&r, data + off, n);
                if (k < 0)
                        break;
                off += (size_t) k;
                for (;;) {
                        const uint8_t *p;
                        size_t len;
                        int fr = tr__frame_reader_next(&r, &p, &len);
                        if (fr < 0) {
                                dead = true;
                                break;
                        }
                        if (fr == 0)
                                break;
                        tr__gw_msg m;
                        json_t *bad = NULL;
                        tr_error *err = NULL;
                        if (tr__gw_msg_decode(p, len, &m, &bad, &err) == 0) {
                                uint8_t *f = NULL;
                                size_t fl = 0;
                                if (tr__gw_encode(TR__GW_RESPONSE, m.id, m.payload, &f, &fl) == 0)
                                        free(f);
                                json_t *steps = json_object_get(m.payload, "steps");
                                tr__gw_chain_step *v = NULL;
                                size_t nv = 0;
                                if (steps && tr__gw_chain_parse(steps, &v, &nv, NULL) == 0) {
                                        json_t *prev = json_true();
                                        for (size_t i = 0; i < nv; i++) {
                                                json_decref(tr__gw_chain_step_args(&v[i], prev));
                                                (void) tr__gw_tool_id_valid(v[i].tool_id);
                                        }
                                        json_decref(prev);
                                        free(v);
                                }
                                tr__gw_msg_done(&m);
                        } else {
                                uint8_t *f = NULL;
                                size_t fl = 0;
                                if (tr__gw_encode_error(bad, tr_error_code_name(err), tr_error_message(err), &f, &fl) ==
                                    0)
                                        free(f);
                                json_decref(bad);
                                tr_error_free(err);
                        }
                }
        }
        tr__frame_reader_done(&r);
        return 0;
}
