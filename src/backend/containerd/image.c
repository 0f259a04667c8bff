/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image resolution (see image.h).  Everything read from the content store
 * is treated as untrusted: sizes are capped before reading, digests are
 * checked by the content reader and re-validated here before they are sent
 * back to containerd or hashed into the chain id.
 */
#include <errno.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/image.h"
#include "util/macros.h"

#define MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

void tr__ctrd_image_done(tr__ctrd_image *img) {
        free(img->name);
        free(img->digest);
        free(img->chain_id);
        *img = (tr__ctrd_image){ 0 };
}

static int bad(tr_error **ret_err, const char *what, const char *detail) {
        tr_error_set(ret_err, TR_E_IMAGE_NOT_FOUND, TR_BACKEND_CONTAINERD, "image.resolve",
                     "image is unusable: %s%s%s (rebuild it with `toolruntime image build`)", what, detail ? ": " : "",
                     detail ? detail : "");
        return -EBADMSG;
}

bool tr__ctrd_digest_valid(const char *d) {
        if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
                return false;
        for (const char *p = d + 7; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

bool tr__ctrd_is_index(const char *mt) {
        return mt && (streq(mt, MT_OCI_INDEX) || streq(mt, MT_DOCKER_LIST));
}

const char *tr__ctrd_host_arch(void) {
#if defined(__x86_64__)
        return "amd64";
#elif defined(__aarch64__)
        return "arm64";
#elif defined(__i386__)
        return "386";
#elif defined(__arm__)
        return "arm";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
        return "ppc64le";
#elif defined(__s390x__)
        return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
        return "riscv64";
#else
        return "unknown";
#endif
}

static int desc_from_json(const json_t *o, tr__ctrd_desc *ret) {
        const char *mt = json_string_value(json_object_get(o, "mediaType"));
        const char *dg = json_string_value(json_object_get(o, "digest"));
        json_t *sz = json_object_get(o, "size");
        if (!tr__ctrd_digest_valid(dg) || !json_is_integer(sz) || json_integer_value(sz) < 0)
                return -EBADMSG;
        tr__ctrd_desc d = { .media_type = strdup(mt ? mt : ""), .digest = strdup(dg), .size = json_integer_value(sz) };
        if (!d.media_type || !d.digest) {
                tr__ctrd_desc_done(&d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

static json_t *parse(const char *json, size_t len) {
        /* No duplicate keys: two different "digest"s in one object is an
         * attempt to make two parsers disagree. */
        return json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
}

int tr__ctrd_parse_index(const char *json, size_t len, const char *os, const char *arch, tr__ctrd_desc *ret,
                         tr_error **ret_err) {
        _cleanup_(json_decrefp) json_t *root = parse(json, len);
        json_t *ms = json_object_get(root, "manifests");
        if (!json_is_array(ms))
                return bad(ret_err, "index has no manifests", NULL);
        size_t i;
        json_t *m;
        json_array_foreach(ms, i, m) {
                json_t *pf = json_object_get(m, "platform");
                const char *pos = json_string_value(json_object_get(pf, "os"));
                const char *parch = json_string_value(json_object_get(pf, "architecture"));
                /* An entry without a platform is taken only when it is the
                 * only one (single-platform images built by umoci). */
                bool match = pf ? (pos && parch && streq(pos, os) && streq(parch, arch)) : json_array_size(ms) == 1;
                if (!match)
                        continue;
                int r = desc_from_json(m, ret);
                if (r == -ENOMEM)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "image.resolve",
                                            "out of memory"),
                               -ENOMEM;
                if (r < 0)
                        return bad(ret_err, "malformed manifest descriptor in index", NULL);
                if (tr__ctrd_is_index(ret->media_type)) {
                        tr__ctrd_desc_done(ret);
                        return bad(ret_err, "nested index", NULL);
                }
                return 0;
        }
        char want[64];
        snprintf(want, sizeof want, "%s/%s", os, arch);
        tr_error_set(ret_err, TR_E_IMAGE_NOT_FOUND, TR_BACKEND_CONTAINERD, "image.resolve",
                     "image has no %s variant; build one for this machine with `toolruntime image build`", want);
        return -ENOENT;
}

int tr__ctrd_parse_manifest(const char *json, size_t len, tr__ctrd_desc *ret_config, tr_error **ret_err) {
        _cleanup_(json_decrefp) json_t *root = parse(json, len);
        if (!json_is_object(root))
                return bad(ret_err, "manifest is not a JSON object", NULL);
        int r = desc_from_json(json_object_get(root, "config"), ret_config);
        if (r == -ENOMEM)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "image.resolve", "out of memory"),
                       -ENOMEM;
        if (r < 0)
                return bad(ret_err, "manifest has no valid config descriptor", NULL);
        return 0;
}

static void sha256_hex(const void *p, size_t n, char out[7 + 64 + 1]) {
        struct sha256_ctx h;
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_init(&h);
        sha256_update(&h, n, p);
        sha256_digest(&h, sizeof d, d);
        memcpy(out, "sha256:", 7);
        for (size_t i = 0; i < sizeof d; i++)
                snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
}

int tr__ctrd_chain_id(const char *const *diff_ids, size_t n, char **ret_chain_id) {
        if (n == 0)
                return -EINVAL;
        char cur[7 + 64 + 1];
        if (!tr__ctrd_digest_valid(diff_ids[0]))
                return -EINVAL;
        memcpy(cur, diff_ids[0], sizeof cur);
        for (size_t i = 1; i < n; i++) {
                if (!tr__ctrd_digest_valid(diff_ids[i]))
                        return -EINVAL;
                char buf[2 * sizeof cur + 1];
                int len = snprintf(buf, sizeof buf, "%s %s", cur, diff_ids[i]);
                sha256_hex(buf, (size_t) len, cur);
        }
        char *s = strdup(cur);
        if (!s)
                return -ENOMEM;
        *ret_chain_id = s;
        return 0;
}

int tr__ctrd_parse_config_chain_id(const char *json, size_t len, char **ret_chain_id, tr_error **ret_err) {
        _cleanup_(json_decrefp) json_t *root = parse(json, len);
        json_t *ids = json_object_get(json_object_get(root, "rootfs"), "diff_ids");
        size_t n = json_array_size(ids);
        if (!json_is_array(ids) || n == 0)
                return bad(ret_err, "config has no rootfs.diff_ids", NULL);
        if (n > TR_CTRD_MAX_LAYERS)
                return bad(ret_err, "too many layers", NULL);
        const char *v[TR_CTRD_MAX_LAYERS];
        for (size_t i = 0; i < n; i++)
                v[i] = json_string_value(json_array_get(ids, i));
        int r = tr__ctrd_chain_id(v, n, ret_chain_id);
        if (r == -ENOMEM)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "image.resolve", "out of memory"),
                       -ENOMEM;
        if (r < 0)
                return bad(ret_err, "malformed diff_id in config", NULL);
        return 0;
}

/* Does `ref` name a registry ("host.tld/...", "host:port/...", "localhost/...")? */
static bool has_domain(const char *ref) {
        const char *slash = strchr(ref, '/');
        if (!slash)
                return false;
        size_t n = (size_t) (slash - ref);
        return memchr(ref, '.', n) || memchr(ref, ':', n) || (n == 9 && strncmp(ref, "localhost", 9) == 0);
}

int tr__ctrd_image_candidates(const char *ref, char *ret[TR_CTRD_IMAGE_CANDIDATES]) {
        memset(ret, 0, TR_CTRD_IMAGE_CANDIDATES * sizeof *ret);
        const char *last = strrchr(ref, '/');
        last = last ? last + 1 : ref;
        /* Docker's spelling: a name without tag or digest means :latest. */
        bool bare = !strchr(last, ':') && !strchr(ref, '@');
        size_t n = 0;
        int r = 0;
        r |= (ret[n++] = strdup(ref)) ? 0 : -1;
        if (bare)
                r |= asprintf(&ret[n++], "%s:latest", ref) < 0 ? -1 : 0;
        if (!has_domain(ref)) {
                /* `ctr images import` and docker-style tools store short
                 * names normalised; accept both spellings of the same image. */
                r |= asprintf(&ret[n++], "docker.io/library/%s", ref) < 0 ? -1 : 0;
                if (bare)
                        r |= asprintf(&ret[n++], "docker.io/library/%s:latest", ref) < 0 ? -1 : 0;
        }
        if (r < 0) {
                for (size_t i = 0; i < TR_CTRD_IMAGE_CANDIDATES; i++)
                        free(ret[i]), ret[i] = NULL;
                return -ENOMEM;
        }
        return (int) n;
}

int tr__ctrd_image_find(const tr__ctrd_ctx *cx, const char *ref, char **ret_name, tr__ctrd_desc *ret_target,
                        tr_error **ret_err) {
        char *cand[TR_CTRD_IMAGE_CANDIDATES];
        int n = tr__ctrd_image_candidates(ref, cand);
        if (n < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "image.resolve", "out of memory"),
                       -ENOMEM;
        int r = -ENOENT, found = -1;
        tr_error *err = NULL;
        for (int i = 0; i < n && r == -ENOENT; i++) {
                tr_error_free(TAKE_PTR(err));
                r = tr__ctrd_image_get(cx, cand[i], ret_target, &err);
                if (r >= 0)
                        found = i;
        }
        if (found >= 0) {
                *ret_name = TAKE_PTR(cand[found]);
                for (int i = 0; i < n; i++)
                        free(cand[i]);
                return 0;
        }
        for (int i = 0; i < n; i++)
                free(cand[i]);
        if (r == -ENOENT) {
                tr_error_free(err);
                tr_error_set(ret_err, TR_E_IMAGE_NOT_FOUND, TR_BACKEND_CONTAINERD, "image.resolve",
                             "image %s not found in containerd; build and import it with `toolruntime image build`",
                             ref);
                if (ret_err && *ret_err)
                        tr_error_set_grpc_status(*ret_err, TR_GRPC_NOT_FOUND);
                return r;
        }
        if (ret_err)
                *ret_err = err;
        else
                tr_error_free(err);
        return r;
}

static int read_blob(const tr__ctrd_ctx *cx, const tr__ctrd_desc *d, char **ret, size_t *ret_len, tr_error **ret_err) {
        if (!tr__ctrd_digest_valid(d->digest))
                return bad(ret_err, "invalid digest", d->digest);
        int r = tr__ctrd_content_read(cx, d->digest, d->size, TR_CTRD_MAX_MANIFEST, ret, ret_len, ret_err);
        if (r == -ENOENT && ret_err && *ret_err)
                tr_error_prefix(*ret_err,
                                "image content %s is missing (re-import the image with `toolruntime "
                                "image build`)",
                                d->digest);
        return r;
}

int tr__ctrd_image_resolve(const tr__ctrd_ctx *cx, const char *ref, tr__ctrd_image *ret, tr_error **ret_err) {
        _cleanup_free_ char *name = NULL;
        tr__ctrd_desc target = { 0 }, config = { 0 };
        _cleanup_free_ char *blob = NULL, *chain = NULL;
        size_t len = 0;
        int r = tr__ctrd_image_find(cx, ref, &name, &target, ret_err);
        if (r < 0)
                return r;
        r = read_blob(cx, &target, &blob, &len, ret_err);
        if (r < 0)
                goto out;
        if (tr__ctrd_is_index(target.media_type)) {
                tr__ctrd_desc m = { 0 };
                r = tr__ctrd_parse_index(blob, len, "linux", tr__ctrd_host_arch(), &m, ret_err);
                if (r < 0)
                        goto out;
                tr__ctrd_desc_done(&target);
                target = m;
                free(TAKE_PTR(blob));
                r = read_blob(cx, &target, &blob, &len, ret_err);
                if (r < 0)
                        goto out;
        }
        r = tr__ctrd_parse_manifest(blob, len, &config, ret_err);
        if (r < 0)
                goto out;
        free(TAKE_PTR(blob));
        r = read_blob(cx, &config, &blob, &len, ret_err);
        if (r < 0)
                goto out;
        r = tr__ctrd_parse_config_chain_id(blob, len, &chain, ret_err);
        if (r < 0)
                goto out;
        ret->name = TAKE_PTR(name);
        ret->digest = TAKE_PTR(target.digest);
        ret->chain_id = TAKE_PTR(chain);
out:
        tr__ctrd_desc_done(&target);
        tr__ctrd_desc_done(&config);
        return r;
}
