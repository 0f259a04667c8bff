/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image pull (see pull.h).  Order of work: fetch and verify the manifest
 * chain and the config (small), check the declared sizes against the cap,
 * then per layer fetch, verify (sha256 and size) and write it to the
 * content store; then config, manifest and index with their gc.ref labels;
 * then unpack the layers into the snapshotter (Prepare + Diff.Apply +
 * Commit under the chain id, checking each applied diff against the
 * config's diff_id); last, the image record.
 */
#include <errno.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/containerd/client_pb.h"
#include "backend/containerd/image.h"
#include "backend/containerd/pull.h"
#include "backend/containerd/registry.h"
#include "backend/containerd/sandbox.h"
#include "ctrd_services_content_v1_content.pb-c.h"
#include "ctrd_services_diff_v1_diff.pb-c.h"
#include "ctrd_services_images_v1_images.pb-c.h"
#include "ctrd_services_snapshots_v1_snapshots.pb-c.h"
#include "core/plan.h"
#include "util/config.h"
#include "util/macros.h"
#include "util/strv.h"
#include "util/timeutil.h"

#define OP          "image.pull"
#define WRITE_CHUNK (1024 * 1024)
/* An interrupted pull's lease outlives the process by at most this. */
#define LEASE_TTL_SEC      3600
#define DEFAULT_TIMEOUT_MS (30LL * 60 * 1000)

#define GC_REF_CONTENT  "containerd.io/gc.ref.content."
#define GC_REF_SNAPSHOT "containerd.io/gc.ref.snapshot."

bool tr__ctrd_ref_pinned(const char *ref) {
        const char *at = ref ? strchr(ref, '@') : NULL;
        return at && tr__ctrd_digest_valid(at + 1);
}

static int oom(tr_error **ret_err) {
        tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, OP, "out of memory");
        return -ENOMEM;
}

static void sha256_of(const void *p, size_t n, char out[72]) {
        struct sha256_ctx h;
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256_init(&h);
        sha256_update(&h, n, p);
        sha256_digest(&h, sizeof d, d);
        memcpy(out, "sha256:", 7);
        for (size_t i = 0; i < sizeof d; i++)
                snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
}

/* The bytes must be what the digest names: a registry (or anything on
 * the path to it) that serves other bytes is refused. */
static int verify(const char *what, const char *data, size_t len, const char *digest, int64_t size,
                  tr_error **ret_err) {
        char got[72];
        sha256_of(data, len, got);
        if ((size >= 0 && (int64_t) len != size) || !streq(got, digest)) {
                tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, TR_BACKEND_CONTAINERD, OP,
                             "digest mismatch for %s %s: the registry sent %zu bytes hashing to %s", what, digest, len,
                             got);
                return -EBADMSG;
        }
        return 0;
}

typedef struct layer {
        tr__ctrd_desc desc;
        char *diff_id;
        char *chain_id;
} layer;

typedef struct pull {
        const tr__ctrd_ctx *cx; /* with the lease */
        const char *snapshotter;
        tr__reg *reg;
        tr__reg_ref ref;
        int64_t max_bytes;
        int64_t total;
        tr__ctrd_desc top; /* what the image record points at */
        char *top_data;
        size_t top_len;
        tr__ctrd_desc manifest; /* == top unless top is an index */
        char *manifest_data;
        size_t manifest_len;
        tr__ctrd_desc config;
        char *config_data;
        size_t config_len;
        layer *layers;
        size_t n_layers;
} pull;

static void pull_done(pull *p) {
        tr__reg_free(p->reg);
        tr__reg_ref_done(&p->ref);
        tr__ctrd_desc_done(&p->top);
        tr__ctrd_desc_done(&p->manifest);
        tr__ctrd_desc_done(&p->config);
        free(p->top_data);
        free(p->manifest_data);
        free(p->config_data);
        for (size_t i = 0; i < p->n_layers; i++) {
                tr__ctrd_desc_done(&p->layers[i].desc);
                free(p->layers[i].diff_id);
                free(p->layers[i].chain_id);
        }
        free(p->layers);
}

static int bad_image(tr_error **ret_err, const char *what) {
        tr_error_set(ret_err, TR_E_IMAGE_NOT_FOUND, TR_BACKEND_CONTAINERD, OP, "the registry's image is unusable: %s",
                     what);
        return -EBADMSG;
}

static int fetch_manifest(pull *p, const char *ref, const char *want_digest, int64_t want_size, char **ret_data,
                          size_t *ret_len, tr__ctrd_desc *ret_desc, tr_error **ret_err) {
        _cleanup_free_ char *data = NULL, *ct = NULL;
        size_t len = 0;
        int r = tr__reg_get(p->reg, "manifests", ref, TR_CTRD_MAX_MANIFEST, &data, &len, &ct, ret_err);
        if (r < 0)
                return r;
        char dg[72];
        sha256_of(data, len, dg);
        if (want_digest && (r = verify("manifest", data, len, want_digest, want_size, ret_err)) < 0)
                return r;
        _cleanup_(json_decrefp) json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
        const char *mt = json_string_value(json_object_get(root, "mediaType"));
        /* The registry's Content-Type when the document does not say. */
        if (!mt && ct)
                mt = ct;
        if (!json_is_object(root) || !mt)
                return bad_image(ret_err, "manifest without a media type");
        ret_desc->media_type = strdup(mt);
        ret_desc->digest = strdup(dg);
        ret_desc->size = (int64_t) len;
        if (!ret_desc->media_type || !ret_desc->digest)
                return oom(ret_err);
        *ret_data = TAKE_PTR(data);
        *ret_len = len;
        return 0;
}

static int parse_layers(pull *p, tr_error **ret_err) {
        _cleanup_(json_decrefp) json_t *m = json_loadb(p->manifest_data, p->manifest_len, JSON_REJECT_DUPLICATES, NULL);
        _cleanup_(json_decrefp) json_t *c = json_loadb(p->config_data, p->config_len, JSON_REJECT_DUPLICATES, NULL);
        json_t *ls = json_object_get(m, "layers");
        json_t *ids = json_object_get(json_object_get(c, "rootfs"), "diff_ids");
        size_t n = json_array_size(ls);
        if (!json_is_array(ls) || n == 0 || n > TR_CTRD_MAX_LAYERS)
                return bad_image(ret_err, "manifest has no layers or too many");
        if (json_array_size(ids) != n)
                return bad_image(ret_err, "config's diff_ids do not match the manifest's layers");
        p->layers = calloc(n, sizeof *p->layers);
        if (!p->layers)
                return oom(ret_err);
        p->n_layers = n;
        const char *v[TR_CTRD_MAX_LAYERS];
        for (size_t i = 0; i < n; i++) {
                json_t *l = json_array_get(ls, i);
                const char *mt = json_string_value(json_object_get(l, "mediaType"));
                const char *dg = json_string_value(json_object_get(l, "digest"));
                json_t *sz = json_object_get(l, "size");
                v[i] = json_string_value(json_array_get(ids, i));
                if (!mt || !tr__ctrd_digest_valid(dg) || !json_is_integer(sz) || json_integer_value(sz) < 0 ||
                    !tr__ctrd_digest_valid(v[i]))
                        return bad_image(ret_err, "malformed layer descriptor");
                layer *L = &p->layers[i];
                L->desc.media_type = strdup(mt);
                L->desc.digest = strdup(dg);
                L->desc.size = json_integer_value(sz);
                L->diff_id = strdup(v[i]);
                if (!L->desc.media_type || !L->desc.digest || !L->diff_id ||
                    tr__ctrd_chain_id(v, i + 1, &L->chain_id) < 0)
                        return oom(ret_err);
                p->total += L->desc.size;
        }
        return 0;
}

/* Content.Write of a whole verified blob, as one client stream: WRITE
 * messages of WRITE_CHUNK bytes, the last one a COMMIT with the labels. */
static int content_write(pull *p, const char *digest, const char *data, size_t len, const char *const *labels,
                         tr_error **ret_err) {
        _cleanup_free_ char *ref = NULL;
        if (asprintf(&ref, "toolruntime-pull-%s", digest) < 0)
                return ref = NULL, oom(ret_err);
        _cleanup_(tr__ctrd_kv_list_done) kv_list kv = { 0 };
        if (tr__ctrd_kv_list_build(&containerd__services__content__v1__write_content_request__labels_entry__descriptor,
                                   labels, &kv) < 0)
                return oom(ret_err);
        size_t n_msgs = len / WRITE_CHUNK + 1, cap = len + n_msgs * (5 + 256 + 2 * sizeof kv) + 4096;
        for (const char *const *l = labels; l && *l; l++)
                cap += strlen(*l) + 16;
        uint8_t *body = malloc(cap);
        if (!body)
                return oom(ret_err);
        size_t off = 0, used = 0;
        do {
                size_t n = len - off < WRITE_CHUNK ? len - off : WRITE_CHUNK;
                bool last = off + n == len;
                Containerd__Services__Content__V1__WriteContentRequest req =
                        CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
                req.action = last ? CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT
                                  : CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__WRITE;
                req.ref = ref;
                req.total = (int64_t) len;
                req.expected = UNCONST(digest);
                req.offset = (int64_t) off;
                req.data.data = (uint8_t *) UNCONST(data + off);
                req.data.len = n;
                if (last) {
                        req.n_labels = kv.n;
                        req.labels = (void *) kv.ptrs;
                }
                size_t sz = protobuf_c_message_get_packed_size(&req.base);
                if (used + 5 + sz > cap) {
                        free(body);
                        return oom(ret_err);
                }
                tr__grpc_frame_prefix(body + used, (uint32_t) sz);
                protobuf_c_message_pack(&req.base, body + used + 5);
                used += 5 + sz;
                off += n;
        } while (off < len);
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        tr_error *err = NULL;
        int r = tr__grpc_call_start_body(p->cx->conn, "/containerd.services.content.v1.Content/Write", body, used,
                                         p->cx->lease, p->cx->deadline_ns, &call, &err);
        if (r >= 0)
                r = tr__grpc_call_wait(p->cx->conn, call, p->cx->cancel_fd, &err);
        if (r == -EEXIST) { /* already in the store: nothing to write */
                tr_error_free(err);
                return 0;
        }
        if (r < 0) {
                /* Drop the partial ingest; the lease's removal does the rest. */
                Containerd__Services__Content__V1__AbortRequest ab =
                        CONTAINERD__SERVICES__CONTENT__V1__ABORT_REQUEST__INIT;
                ab.ref = ref;
                tr__ctrd_ctx c2 = *p->cx;
                c2.cancel_fd = -1;
                c2.deadline_ns = tr__now_ns() + 10 * TR_NSEC_PER_SEC;
                (void) tr__ctrd_unary(&c2, "content.abort", "/containerd.services.content.v1.Content/Abort", &ab.base,
                                      NULL, NULL, NULL);
                tr_error_prefix(err, "writing %s to containerd", digest);
                if (ret_err)
                        *ret_err = err;
                else
                        tr_error_free(err);
        }
        return r;
}

static int fetch_layers(pull *p, tr_error **ret_err) {
        for (size_t i = 0; i < p->n_layers; i++) {
                layer *L = &p->layers[i];
                _cleanup_free_ char *data = NULL;
                size_t len = 0;
                int r = tr__reg_get(p->reg, "blobs", L->desc.digest, (size_t) L->desc.size, &data, &len, NULL, ret_err);
                if (r < 0)
                        return r;
                if ((r = verify("layer", data, len, L->desc.digest, L->desc.size, ret_err)) < 0)
                        return r;
                if ((r = content_write(p, L->desc.digest, data, len, NULL, ret_err)) < 0)
                        return r;
        }
        return 0;
}

static int write_metadata(pull *p, tr_error **ret_err) {
        _cleanup_free_ char *snap_key = NULL;
        if (asprintf(&snap_key, GC_REF_SNAPSHOT "%s", p->snapshotter) < 0)
                return snap_key = NULL, oom(ret_err);
        const char *cl[] = { snap_key, p->layers[p->n_layers - 1].chain_id, NULL };
        int r = content_write(p, p->config.digest, p->config_data, p->config_len, cl, ret_err);
        if (r < 0)
                return r;
        _cleanup_strv_ char **ml = NULL;
        r = tr__strv_push(&ml, GC_REF_CONTENT "config") | tr__strv_push(&ml, p->config.digest);
        for (size_t i = 0; i < p->n_layers; i++) {
                char k[64];
                snprintf(k, sizeof k, GC_REF_CONTENT "l.%zu", i);
                r |= tr__strv_push(&ml, k) | tr__strv_push(&ml, p->layers[i].desc.digest);
        }
        if (r < 0)
                return oom(ret_err);
        r = content_write(p, p->manifest.digest, p->manifest_data, p->manifest_len, (const char *const *) ml, ret_err);
        if (r < 0 || !p->top_data)
                return r;
        const char *il[] = { GC_REF_CONTENT "m.0", p->manifest.digest, NULL };
        return content_write(p, p->top.digest, p->top_data, p->top_len, il, ret_err);
}

static int snapshot_exists(pull *p, const char *key) {
        Containerd__Services__Snapshots__V1__StatSnapshotRequest req =
                CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;
        req.snapshotter = UNCONST(p->snapshotter);
        req.key = UNCONST(key);
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(p->cx, "snapshot.stat", "/containerd.services.snapshots.v1.Snapshots/Stat", &req.base,
                               &containerd__services__snapshots__v1__stat_snapshot_response__descriptor, &resp, NULL);
        if (resp)
                protobuf_c_message_free_unpacked(resp, NULL);
        return r >= 0;
}

static int apply(pull *p, const layer *L, const tr__ctrd_mounts *m, tr_error **ret_err) {
        Containerd__Types__Mount *mounts = calloc(m->n ? m->n : 1, sizeof *mounts);
        Containerd__Types__Mount **mp = calloc(m->n ? m->n : 1, sizeof *mp);
        if (!mounts || !mp) {
                free(mounts);
                free(mp);
                return oom(ret_err);
        }
        for (size_t i = 0; i < m->n; i++) {
                containerd__types__mount__init(&mounts[i]);
                mounts[i].type = m->items[i].type;
                mounts[i].source = m->items[i].source;
                mounts[i].n_options = tr__strv_len(m->items[i].options);
                mounts[i].options = m->items[i].options;
                mp[i] = &mounts[i];
        }
        Containerd__Types__Descriptor d = CONTAINERD__TYPES__DESCRIPTOR__INIT;
        d.media_type = L->desc.media_type;
        d.digest = L->desc.digest;
        d.size = L->desc.size;
        Containerd__Services__Diff__V1__ApplyRequest req = CONTAINERD__SERVICES__DIFF__V1__APPLY_REQUEST__INIT;
        req.diff = &d;
        req.n_mounts = m->n;
        req.mounts = mp;
        Containerd__Services__Diff__V1__ApplyResponse *resp = NULL;
        int r = tr__ctrd_unary(p->cx, "diff.apply", "/containerd.services.diff.v1.Diff/Apply", &req.base,
                               &containerd__services__diff__v1__apply_response__descriptor, (ProtobufCMessage **) &resp,
                               ret_err);
        free(mounts);
        free(mp);
        if (r < 0)
                return r;
        /* The uncompressed layer must be the one the config names: else
         * the chain id we commit under would lie about its content. */
        bool ok = resp->applied && resp->applied->digest && streq(resp->applied->digest, L->diff_id);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        if (!ok) {
                tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, TR_BACKEND_CONTAINERD, OP,
                             "layer %s does not unpack to the diff_id %s its config names", L->desc.digest, L->diff_id);
                return -EBADMSG;
        }
        return 0;
}

static int unpack(pull *p, tr_error **ret_err) {
        for (size_t i = 0; i < p->n_layers; i++) {
                layer *L = &p->layers[i];
                if (snapshot_exists(p, L->chain_id))
                        continue;
                char key[160];
                snprintf(key, sizeof key, "toolruntime-extract-%d-%zu-%s", (int) getpid(), i, L->chain_id + 7);
                tr__ctrd_mounts m = { 0 };
                int r = tr__ctrd_snapshot_prepare(p->cx, p->snapshotter, key, i ? p->layers[i - 1].chain_id : NULL,
                                                  NULL, &m, ret_err);
                if (r < 0)
                        return r;
                r = apply(p, L, &m, ret_err);
                tr__ctrd_mounts_done(&m);
                if (r >= 0) {
                        Containerd__Services__Snapshots__V1__CommitSnapshotRequest req =
                                CONTAINERD__SERVICES__SNAPSHOTS__V1__COMMIT_SNAPSHOT_REQUEST__INIT;
                        req.snapshotter = UNCONST(p->snapshotter);
                        req.name = L->chain_id;
                        req.key = key;
                        r = tr__ctrd_unary(p->cx, "snapshot.commit",
                                           "/containerd.services.snapshots.v1.Snapshots/Commit", &req.base, NULL, NULL,
                                           ret_err);
                        if (r == -EEXIST) /* a concurrent pull committed it first */
                                r = 0;
                }
                if (r < 0) {
                        tr__ctrd_ctx c2 = *p->cx;
                        c2.cancel_fd = -1;
                        c2.deadline_ns = tr__now_ns() + 10 * TR_NSEC_PER_SEC;
                        (void) tr__ctrd_snapshot_remove(&c2, p->snapshotter, key, NULL);
                        return r;
                }
        }
        return 0;
}

static int image_record(pull *p, tr_error **ret_err) {
        const char *labels[] = { TR_CTRD_OWNER_LABEL, TR_CTRD_OWNER_VALUE, "io.toolruntime.source", "pull", NULL };
        _cleanup_(tr__ctrd_kv_list_done) kv_list kv = { 0 };
        if (tr__ctrd_kv_list_build(&containerd__services__images__v1__image__labels_entry__descriptor, labels, &kv) < 0)
                return oom(ret_err);
        Containerd__Types__Descriptor d = CONTAINERD__TYPES__DESCRIPTOR__INIT;
        d.media_type = p->top.media_type;
        d.digest = p->top.digest;
        d.size = p->top.size;
        Containerd__Services__Images__V1__Image img = CONTAINERD__SERVICES__IMAGES__V1__IMAGE__INIT;
        img.name = p->ref.name;
        img.target = &d;
        img.n_labels = kv.n;
        img.labels = (void *) kv.ptrs;
        Containerd__Services__Images__V1__CreateImageRequest req =
                CONTAINERD__SERVICES__IMAGES__V1__CREATE_IMAGE_REQUEST__INIT;
        req.image = &img;
        tr_error *err = NULL;
        int r = tr__ctrd_unary(p->cx, "image.create", "/containerd.services.images.v1.Images/Create", &req.base,
                               &containerd__services__images__v1__create_image_response__descriptor, NULL, &err);
        if (r == -EEXIST) {
                /* A re-pull: point the name at what was just pulled. */
                tr_error_free(TAKE_PTR(err));
                Containerd__Services__Images__V1__UpdateImageRequest up =
                        CONTAINERD__SERVICES__IMAGES__V1__UPDATE_IMAGE_REQUEST__INIT;
                up.image = &img;
                r = tr__ctrd_unary(p->cx, "image.update", "/containerd.services.images.v1.Images/Update", &up.base,
                                   &containerd__services__images__v1__update_image_response__descriptor, NULL, &err);
        }
        if (r < 0) {
                if (ret_err)
                        *ret_err = err;
                else
                        tr_error_free(err);
        }
        return r;
}

static int resolve_manifest(pull *p, tr_error **ret_err) {
        const char *want = p->ref.digest;
        int r = fetch_manifest(p, want ? want : p->ref.tag, want, -1, &p->top_data, &p->top_len, &p->top, ret_err);
        if (r < 0)
                return r;
        if (tr__ctrd_is_index(p->top.media_type)) {
                tr__ctrd_desc m = { 0 };
                r = tr__ctrd_parse_index(p->top_data, p->top_len, "linux", tr__ctrd_host_arch(), &m, ret_err);
                if (r < 0)
                        return r;
                tr__ctrd_desc got = { 0 };
                r = fetch_manifest(p, m.digest, m.digest, m.size, &p->manifest_data, &p->manifest_len, &got, ret_err);
                tr__ctrd_desc_done(&m);
                p->manifest = got;
                if (r < 0)
                        return r;
                if (tr__ctrd_is_index(p->manifest.media_type))
                        return bad_image(ret_err, "nested index");
        } else {
                p->manifest_data = TAKE_PTR(p->top_data);
                p->manifest_len = p->top_len;
                p->manifest = p->top;
                p->top = (tr__ctrd_desc){ 0 };
                if (!(p->top.media_type = strdup(p->manifest.media_type)) ||
                    !(p->top.digest = strdup(p->manifest.digest)))
                        return oom(ret_err);
                p->top.size = p->manifest.size;
        }
        r = tr__ctrd_parse_manifest(p->manifest_data, p->manifest_len, &p->config, ret_err);
        if (r < 0)
                return r;
        r = tr__reg_get(p->reg, "blobs", p->config.digest, TR_CTRD_MAX_MANIFEST, &p->config_data, &p->config_len, NULL,
                        ret_err);
        if (r < 0)
                return r;
        return verify("config", p->config_data, p->config_len, p->config.digest, p->config.size, ret_err);
}

static int do_pull(pull *p, const tr_image_pull_opts *o, tr_error **ret_err) {
        int r = resolve_manifest(p, ret_err);
        if (r < 0)
                return r;
        if ((r = parse_layers(p, ret_err)) < 0)
                return r;
        p->total += p->config.size + p->manifest.size;
        if (p->total > p->max_bytes) {
                tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, TR_BACKEND_CONTAINERD, OP,
                             "image %s weighs %lld bytes, over the limit of %lld (--max-image-size)", p->ref.name,
                             (long long) p->total, (long long) p->max_bytes);
                return -EFBIG;
        }
        if ((r = fetch_layers(p, ret_err)) < 0 || (r = write_metadata(p, ret_err)) < 0 || (r = unpack(p, ret_err)) < 0)
                return r;
        return image_record(p, ret_err);
}

int tr__ctrd_pull(const tr__ctrd_ctx *cx0, const char *snapshotter, const char *ref, const tr_image_pull_opts *opts,
                  char **ret_name, tr_error **ret_err) {
        static const tr_image_pull_opts none = { 0 };
        const tr_image_pull_opts *o = opts ? opts : &none;
        pull p = { .snapshotter = snapshotter,
                   .max_bytes = o->max_bytes > 0 ? o->max_bytes : TR_IMAGE_PULL_DEFAULT_MAX_BYTES };
        int r = tr__reg_ref_parse(ref, &p.ref, ret_err);
        if (r < 0)
                return r;
        tr__reg_opts ro = { .config_path = o->registry_config,
                            .insecure = o->insecure_registries,
                            .deadline_ns = cx0->deadline_ns,
                            .progress = o->progress,
                            .progress_userdata = o->progress_userdata };
        if ((r = tr__reg_open(&p.ref, &ro, &p.reg, ret_err)) < 0) {
                pull_done(&p);
                return r;
        }
        char lease[96], expires[32], owner_exp[32];
        snprintf(lease, sizeof lease, "toolruntime-pull-%d-%lld", (int) getpid(), (long long) tr__now_ns());
        tr__ctrd_rfc3339((int64_t) time(NULL) + LEASE_TTL_SEC, expires);
        tr__ctrd_rfc3339((int64_t) time(NULL) + LEASE_TTL_SEC, owner_exp);
        const char *ll[] = { TR_CTRD_OWNER_LABEL,
                             TR_CTRD_OWNER_VALUE,
                             TR_CTRD_GC_EXPIRE_LABEL,
                             expires,
                             TR_CTRD_EXPIRES_LABEL,
                             owner_exp,
                             NULL };
        if ((r = tr__ctrd_lease_create(cx0, lease, ll, ret_err)) < 0) {
                pull_done(&p);
                return r;
        }
        tr__ctrd_ctx cx = *cx0;
        cx.lease = lease;
        p.cx = &cx;
        r = do_pull(&p, o, ret_err);
        if (r >= 0 && ret_name && !(*ret_name = strdup(p.ref.name)))
                r = oom(ret_err);
        /* On success the image record holds everything now; on failure,
         * wait for containerd's GC so that nothing is left once we return. */
        tr__ctrd_ctx c2 = *cx0;
        c2.cancel_fd = -1;
        c2.deadline_ns = tr__now_ns() + 60 * TR_NSEC_PER_SEC;
        (void) tr__ctrd_lease_delete(&c2, lease, r < 0, NULL);
        pull_done(&p);
        return r;
}

TR_PUBLIC int tr_containerd_image_pull(const tr_containerd_config *user_cfg, const char *ref,
                                       const tr_image_pull_opts *opts, char **ret_name, tr_error **ret_err) {
        tr_containerd_config cfg_copy;
        int r_cfg = tr__containerd_config_copy(user_cfg, &cfg_copy, ret_err);
        if (r_cfg < 0)
                return r_cfg;
        const tr_containerd_config *c = &cfg_copy;
        const char *socket = c->socket_path, *ns = c->namespace_name, *snap = c->snapshotter;
        int64_t ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
        int64_t deadline = tr__now_ns() + ms * TR_NSEC_PER_MSEC;
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *conn = NULL;
        int r = tr__grpc_connect(socket, ns, deadline, -1, &conn, ret_err);
        if (r < 0)
                return r;
        tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = deadline, .cancel_fd = -1 };
        return tr__ctrd_pull(&cx, snap, ref, opts, ret_name, ret_err);
}

TR_PUBLIC bool tr_image_pull_allowed(tr_profile profile, const char *ref) {
        return !tr__profile_isolation(profile)->pinned_images || tr__ctrd_ref_pinned(ref);
}

int tr__ctrd_pull_on_demand(tr__ctrd_client *cl, tr__grpc_conn *conn, const char *ref, tr_exec *ex, tr_error *not_found,
                            tr_error **ret_err) {
        if (!tr_image_pull_allowed(tr_exec_profile(ex), ref)) {
                tr_error_prefix(not_found,
                                "the hardened profile pulls only images pinned by digest (NAME@sha256:...); "
                                "pull %s first with `toolruntime image pull`",
                                ref);
                if (ret_err)
                        *ret_err = not_found;
                else
                        tr_error_free(not_found);
                return -ENOENT;
        }
        tr_error_free(not_found);
        int64_t t0 = tr__now_ns();
        int64_t ms = cl->pull->timeout_ms > 0 ? cl->pull->timeout_ms : DEFAULT_TIMEOUT_MS;
        tr__ctrd_ctx cx = { .conn = conn,
                            .deadline_ns = t0 + ms * TR_NSEC_PER_MSEC,
                            .cancel_fd = tr_exec_cancel_fd(ex) };
        int r = tr__ctrd_pull(&cx, cl->snapshotter, ref, cl->pull, NULL, ret_err);
        if (r < 0)
                return r;
        tr_exec_set_deadline_ns(ex, tr_exec_deadline_ns(ex) + (tr__now_ns() - t0));
        return 0;
}
