/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the containerd image resolver's parsers, i.e.
 * everything an image in containerd's content store reaches (the index,
 * the manifest, the config and its diff_ids -> chain id), plus the RFC 3339
 * parser gc runs over labels and the grpc-message percent-decoder.  The
 * first input byte picks the parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/client.h"
#include "backend/containerd/grpc.h"
#include "backend/containerd/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        unsigned which = data[0] % 5;
        const char *s = (const char *) data + 1;
        size_t n = size - 1;
        tr_error *err = NULL;
        switch (which) {
        case 0: {
                tr__ctrd_desc d = { 0 };
                if (tr__ctrd_parse_index(s, n, "linux", "amd64", &d, &err) == 0 && !tr__ctrd_digest_valid(d.digest))
                        abort(); /* a descriptor we accept must carry a valid digest */
                tr__ctrd_desc_done(&d);
                break;
        }
        case 1: {
                tr__ctrd_desc d = { 0 };
                if (tr__ctrd_parse_manifest(s, n, &d, &err) == 0 && !tr__ctrd_digest_valid(d.digest))
                        abort();
                tr__ctrd_desc_done(&d);
                break;
        }
        case 2: {
                char *chain = NULL;
                if (tr__ctrd_parse_config_chain_id(s, n, &chain, &err) == 0 && !tr__ctrd_digest_valid(chain))
                        abort();
                free(chain);
                break;
        }
        case 3: {
                char buf[64];
                if (n >= sizeof buf)
                        n = sizeof buf - 1;
                memcpy(buf, s, n);
                buf[n] = 0;
                int64_t t;
                (void) tr__ctrd_parse_rfc3339(buf, &t);
                break;
        }
        default: {
                char out[TR_GRPC_MAX_STATUS_MESSAGE];
                tr__grpc_percent_decode(s, n, out, sizeof out);
                break;
        }
        }
        tr_error_free(err);
        return 0;
}
