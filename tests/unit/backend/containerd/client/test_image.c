/* SPDX-License-Identifier: Apache-2.0 */
/* The containerd client's pure parts: image metadata parsers, the rootfs
 * chain id, digests, RFC 3339 times and the gRPC wire helpers. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/client.h"
#include "backend/containerd/grpc.h"
#include "backend/containerd/image.h"
#include "util/handles.h"

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

Test(image, chain_id) {
        char *id = NULL;
        const char *one[] = { DA };
        cr_assert_eq(tr__ctrd_chain_id(one, 1, &id), 0);
        cr_expect_str_eq(id, DA, "one layer: the chain id is the diff id");
        free(id);
        /* sha256("<a> <b>"), then sha256("<that> <c>"): the OCI definition. */
        const char *three[] = { DA, DB, DC };
        cr_assert_eq(tr__ctrd_chain_id(three, 2, &id), 0);
        cr_expect_str_eq(id, "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
        free(id);
        cr_assert_eq(tr__ctrd_chain_id(three, 3, &id), 0);
        cr_expect_str_eq(id, "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588");
        free(id);
        const char *bad[] = { DA, "sha256:xyz" };
        cr_expect_eq(tr__ctrd_chain_id(bad, 2, &id), -EINVAL);
        cr_expect_eq(tr__ctrd_chain_id(bad, 0, &id), -EINVAL);
}

Test(image, digest_valid) {
        cr_expect(tr__ctrd_digest_valid(DA));
        cr_expect_not(tr__ctrd_digest_valid("sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        cr_expect_not(tr__ctrd_digest_valid("sha512:aa"));
        cr_expect_not(tr__ctrd_digest_valid(DA "a"));
        cr_expect_not(tr__ctrd_digest_valid("sha256:../../etc/passwd"));
        cr_expect_not(tr__ctrd_digest_valid(NULL));
}

Test(image, index_picks_platform) {
        const char *idx = "{\"schemaVersion\":2,\"manifests\":["
                          "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DA "\","
                          "\"size\":10,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
                          "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DB "\","
                          "\"size\":20,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
        tr__ctrd_desc d = { 0 };
        cr_assert_eq(tr__ctrd_parse_index(idx, strlen(idx), "linux", "amd64", &d, NULL), 0);
        cr_expect_str_eq(d.digest, DB);
        cr_expect_eq(d.size, 20);
        tr__ctrd_desc_done(&d);
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_expect_eq(tr__ctrd_parse_index(idx, strlen(idx), "linux", "s390x", &d, &err), -ENOENT);
        cr_expect_eq(tr_error_code(err), TR_E_IMAGE_NOT_FOUND);
        cr_expect(strstr(tr_error_message(err), "linux/s390x") != NULL);
}

Test(image, index_single_entry_without_platform) {
        const char *idx = "{\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                          "\"digest\":\"" DA "\",\"size\":350}]}";
        tr__ctrd_desc d = { 0 };
        cr_assert_eq(tr__ctrd_parse_index(idx, strlen(idx), "linux", "amd64", &d, NULL), 0);
        cr_expect_str_eq(d.digest, DA);
        tr__ctrd_desc_done(&d);
}

Test(image, index_rejects_garbage) {
        static const char *const cases[] = {
                "",
                "[]",
                "{\"manifests\":{}}",
                "{\"manifests\":[{\"digest\":\"sha256:zz\",\"size\":1}]}",
                "{\"manifests\":[{\"digest\":\"" DA "\",\"size\":-1}]}",
                /* a nested index is refused rather than followed */
                "{\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"" DA
                "\",\"size\":1}]}",
                /* duplicate keys could make two parsers disagree */
                "{\"manifests\":[{\"digest\":\"" DA "\",\"digest\":\"" DB "\",\"size\":1}]}",
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                tr__ctrd_desc d = { 0 };
                _cleanup_(tr_error_freep) tr_error *err = NULL;
                cr_expect_lt(tr__ctrd_parse_index(cases[i], strlen(cases[i]), "linux", "amd64", &d, &err), 0,
                             "case %zu accepted", i);
                cr_expect_eq(tr_error_code(err), TR_E_IMAGE_NOT_FOUND, "case %zu", i);
                tr__ctrd_desc_done(&d);
        }
}

Test(image, manifest_and_config) {
        const char *m = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                        "\"digest\":\"" DC "\",\"size\":123},\"layers\":[]}";
        tr__ctrd_desc d = { 0 };
        cr_assert_eq(tr__ctrd_parse_manifest(m, strlen(m), &d, NULL), 0);
        cr_expect_str_eq(d.digest, DC);
        cr_expect_eq(d.size, 123);
        tr__ctrd_desc_done(&d);
        cr_expect_lt(tr__ctrd_parse_manifest("{}", 2, &d, NULL), 0);

        const char *cfg = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",\"" DB "\"]}}";
        char *chain = NULL;
        cr_assert_eq(tr__ctrd_parse_config_chain_id(cfg, strlen(cfg), &chain, NULL), 0);
        cr_expect_str_eq(chain, "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
        free(chain);
        const char *empty = "{\"rootfs\":{\"diff_ids\":[]}}";
        cr_expect_lt(tr__ctrd_parse_config_chain_id(empty, strlen(empty), &chain, NULL), 0);
        const char *bad = "{\"rootfs\":{\"diff_ids\":[\"" DA "\", 5]}}";
        cr_expect_lt(tr__ctrd_parse_config_chain_id(bad, strlen(bad), &chain, NULL), 0);
}

Test(image, is_index) {
        cr_expect(tr__ctrd_is_index("application/vnd.oci.image.index.v1+json"));
        cr_expect(tr__ctrd_is_index("application/vnd.docker.distribution.manifest.list.v2+json"));
        cr_expect_not(tr__ctrd_is_index("application/vnd.oci.image.manifest.v1+json"));
        cr_expect_not(tr__ctrd_is_index(NULL));
}

static void check_candidates(const char *ref, const char *const *want) {
        char *got[TR_CTRD_IMAGE_CANDIDATES];
        int n = tr__ctrd_image_candidates(ref, got);
        int w = 0;
        while (want[w])
                w++;
        cr_assert_eq(n, w, "%s: %d candidates, want %d", ref, n, w);
        for (int i = 0; i < n; i++) {
                cr_assert_str_eq(got[i], want[i], "%s: candidate %d", ref, i);
                free(got[i]);
        }
}

Test(image, candidates) {
        /* A bare short name is NAME:latest, here or on Docker Hub. */
        check_candidates("sci", (const char *const[]){ "sci", "sci:latest", "docker.io/library/sci",
                                                       "docker.io/library/sci:latest", NULL });
        check_candidates("toolruntime-sandbox:latest",
                         (const char *const[]){ "toolruntime-sandbox:latest",
                                                "docker.io/library/toolruntime-sandbox:latest", NULL });
        /* A registry part: only the literal name, plus :latest when bare;
         * a port is not a tag. */
        check_candidates("127.0.0.1:5000/sb",
                         (const char *const[]){ "127.0.0.1:5000/sb", "127.0.0.1:5000/sb:latest", NULL });
        check_candidates("127.0.0.1:5000/sb@sha256:00", (const char *const[]){ "127.0.0.1:5000/sb@sha256:00", NULL });
}

Test(time, rfc3339) {
        char buf[32];
        tr__ctrd_rfc3339(0, buf);
        cr_expect_str_eq(buf, "1970-01-01T00:00:00Z");
        tr__ctrd_rfc3339(1795395723, buf);
        int64_t t = 0;
        cr_assert_eq(tr__ctrd_parse_rfc3339(buf, &t), 0);
        cr_expect_eq(t, 1795395723);
        cr_assert_eq(tr__ctrd_parse_rfc3339("2026-11-23T01:02:03.123456789Z", &t), 0);
        cr_assert_eq(tr__ctrd_parse_rfc3339("2026-11-23T02:02:03+01:00", &t), 0);
        int64_t t2;
        cr_assert_eq(tr__ctrd_parse_rfc3339("2026-11-23T01:02:03Z", &t2), 0);
        cr_expect_eq(t, t2);
        cr_expect_eq(tr__ctrd_parse_rfc3339("yesterday", &t), -EINVAL);
        cr_expect_eq(tr__ctrd_parse_rfc3339("2026-11-23T01:02:03", &t), -EINVAL);
        cr_expect_eq(tr__ctrd_parse_rfc3339("2026-11-23T01:02:03Zjunk", &t), -EINVAL);
}

Test(grpc, percent_decode) {
        char out[64];
        const char *in = "no such image: a%20b%25c%zz%4";
        tr__grpc_percent_decode(in, strlen(in), out, sizeof out);
        cr_expect_str_eq(out, "no such image: a b%c%zz%4");
        char small[5];
        tr__grpc_percent_decode("abcdefgh", 8, small, sizeof small);
        cr_expect_str_eq(small, "abcd");
}

Test(grpc, frame_prefix_and_timeout) {
        uint8_t p[5];
        tr__grpc_frame_prefix(p, 0x01020304);
        cr_expect_eq(p[0], 0);
        cr_expect_eq(p[1], 1);
        cr_expect_eq(p[4], 4);
        char t[32];
        tr__grpc_timeout_header(1500, t, sizeof t);
        cr_expect_str_eq(t, "1500m");
        tr__grpc_timeout_header(0, t, sizeof t);
        cr_expect_str_eq(t, "1m");
        tr__grpc_timeout_header(100000000LL * 10, t, sizeof t);
        cr_expect_str_eq(t, "1000000S");
}
