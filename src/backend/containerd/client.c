/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Typed wrappers over containerd's services (see client.h): version,
 * images and content, snapshots, and the helpers every wrapper shares;
 * the objects a sandbox holds (containers, tasks, leases) are in
 * client_objects.c.  Request
 * messages are built on the stack from borrowed strings (protobuf-c never
 * writes through the char * fields of a message it packs, hence the casts
 * that drop const); responses are unpacked, copied into plain C values and
 * freed here, so no generated type escapes this file.
 */
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/containerd/client.h"
#include "backend/containerd/client_pb.h"
#include "ctrd_services_content_v1_content.pb-c.h"
#include "ctrd_services_images_v1_images.pb-c.h"
#include "ctrd_services_snapshots_v1_snapshots.pb-c.h"
#include "ctrd_services_version_v1_version.pb-c.h"
#include "util/macros.h"
#include "util/strv.h"

#define SVC_VERSION   "/containerd.services.version.v1.Version/"
#define SVC_IMAGES    "/containerd.services.images.v1.Images/"
#define SVC_CONTENT   "/containerd.services.content.v1.Content/"
#define SVC_SNAPSHOTS "/containerd.services.snapshots.v1.Snapshots/"

int tr__ctrd_oom(tr_error **ret_err, const char *op) {
        tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, op, "out of memory");
        if (ret_err && *ret_err)
                tr_error_set_errno(*ret_err, ENOMEM);
        return -ENOMEM;
}

/* Relabel a grpc-layer error with the RPC's short name as its operation. */
int tr__ctrd_unary(const tr__ctrd_ctx *cx, const char *op, const char *path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp, tr_error **ret_err) {
        tr_error *err = NULL;
        int r = tr__grpc_unary(cx->conn, path, req, resp_desc, cx->lease, cx->deadline_ns, cx->cancel_fd, ret_resp,
                               ret_err ? &err : NULL);
        if (r < 0 && ret_err) {
                /* The path is in the message already when useful; the op is the short name. */
                tr_error *e2 = NULL;
                tr_error_set(&e2, tr_error_code(err), TR_BACKEND_CONTAINERD, op, "%s", tr_error_message(err));
                if (e2) {
                        tr_error_set_retryable(e2, tr_error_retryable(err));
                        tr_error_set_errno(e2, tr_error_errno(err));
                        tr_error_set_grpc_status(e2, tr_error_grpc_status(err));
                        tr_error_free(err);
                        *ret_err = e2;
                } else
                        *ret_err = err;
        }
        return r;
}

void tr__ctrd_desc_done(tr__ctrd_desc *d) {
        free(d->media_type);
        free(d->digest);
        *d = (tr__ctrd_desc){ 0 };
}

void tr__ctrd_mounts_done(tr__ctrd_mounts *m) {
        for (size_t i = 0; i < m->n; i++) {
                free(m->items[i].type);
                free(m->items[i].source);
                tr__strv_free(m->items[i].options);
        }
        free(m->items);
        *m = (tr__ctrd_mounts){ 0 };
}

void tr__ctrd_items_done(tr__ctrd_items *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].id);
                tr__strv_free(l->items[i].labels);
        }
        free(l->items);
        *l = (tr__ctrd_items){ 0 };
}

const char *tr__ctrd_item_label(const tr__ctrd_item *it, const char *key) {
        for (char **p = it->labels; p && p[0] && p[1]; p += 2)
                if (streq(p[0], key))
                        return p[1];
        return NULL;
}

void tr__ctrd_kv_list_done(kv_list *l) {
        free(l->storage);
        free(l->ptrs);
}

int tr__ctrd_kv_list_build(const ProtobufCMessageDescriptor *d, const char *const *labels, kv_list *ret) {
        size_t n = 0;
        while (labels && labels[2 * n] && labels[2 * n + 1])
                n++;
        *ret = (kv_list){ 0 };
        if (n == 0)
                return 0;
        ret->storage = calloc(n, sizeof *ret->storage);
        ret->ptrs = calloc(n, sizeof *ret->ptrs);
        if (!ret->storage || !ret->ptrs) {
                tr__ctrd_kv_list_done(ret);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                protobuf_c_message_init(d, &ret->storage[i]);
                ret->storage[i].key = UNCONST(labels[2 * i]);
                ret->storage[i].value = UNCONST(labels[2 * i + 1]);
                ret->ptrs[i] = &ret->storage[i];
        }
        ret->n = n;
        return 0;
}

static int labels_copy(kv_entry **entries, size_t n, char ***ret) {
        _cleanup_strv_ char **v = NULL;
        for (size_t i = 0; i < n; i++)
                if (tr__strv_push(&v, entries[i]->key) < 0 || tr__strv_push(&v, entries[i]->value) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(v);
        return 0;
}

int tr__ctrd_items_push(tr__ctrd_items *l, const char *id, kv_entry **labels, size_t n_labels) {
        tr__ctrd_item *n = realloc(l->items, (l->n + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        l->items = n;
        tr__ctrd_item it = { .id = strdup(id) };
        if (!it.id || labels_copy(labels, n_labels, &it.labels) < 0) {
                free(it.id);
                return -ENOMEM;
        }
        l->items[l->n++] = it;
        return 0;
}

static int mounts_copy(Containerd__Types__Mount **mounts, size_t n, tr__ctrd_mounts *ret) {
        tr__ctrd_mounts m = { .items = calloc(n ? n : 1, sizeof *m.items) };
        if (!m.items)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                m.n++;
                m.items[i].type = strdup(mounts[i]->type);
                m.items[i].source = strdup(mounts[i]->source);
                if (!m.items[i].type || !m.items[i].source)
                        goto fail;
                for (size_t j = 0; j < mounts[i]->n_options; j++)
                        if (tr__strv_push(&m.items[i].options, mounts[i]->options[j]) < 0)
                                goto fail;
        }
        *ret = m;
        return 0;
fail:
        tr__ctrd_mounts_done(&m);
        return -ENOMEM;
}

/* ---- version ------------------------------------------------------------ */

int tr__ctrd_version(const tr__ctrd_ctx *cx, char **ret_version, tr_error **ret_err) {
        Google__Protobuf__Empty req = GOOGLE__PROTOBUF__EMPTY__INIT;
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "version", SVC_VERSION "Version", &req.base,
                               &containerd__services__version__v1__version_response__descriptor, &resp, ret_err);
        if (r < 0)
                return r;
        Containerd__Services__Version__V1__VersionResponse *v = (void *) resp;
        char *s = strdup(v->version);
        protobuf_c_message_free_unpacked(resp, NULL);
        if (!s)
                return tr__ctrd_oom(ret_err, "version");
        if (ret_version)
                *ret_version = s;
        else
                free(s);
        return 0;
}

/* ---- images & content ----------------------------------------------------- */

int tr__ctrd_image_get(const tr__ctrd_ctx *cx, const char *name, tr__ctrd_desc *ret_target, tr_error **ret_err) {
        Containerd__Services__Images__V1__GetImageRequest req =
                CONTAINERD__SERVICES__IMAGES__V1__GET_IMAGE_REQUEST__INIT;
        req.name = UNCONST(name);
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "image.get", SVC_IMAGES "Get", &req.base,
                               &containerd__services__images__v1__get_image_response__descriptor, &resp, ret_err);
        if (r < 0)
                return r;
        Containerd__Services__Images__V1__GetImageResponse *g = (void *) resp;
        if (!g->image || !g->image->target) {
                protobuf_c_message_free_unpacked(resp, NULL);
                tr_error_set(ret_err, TR_E_CONTAINER_FAILED, TR_BACKEND_CONTAINERD, "image.get",
                             "containerd returned image %s without a target", name);
                return -EBADMSG;
        }
        tr__ctrd_desc d = {
                .media_type = strdup(g->image->target->media_type),
                .digest = strdup(g->image->target->digest),
                .size = g->image->target->size,
        };
        protobuf_c_message_free_unpacked(resp, NULL);
        if (!d.media_type || !d.digest) {
                tr__ctrd_desc_done(&d);
                return tr__ctrd_oom(ret_err, "image.get");
        }
        *ret_target = d;
        return 0;
}

static bool digest_matches(const char *digest, const void *data, size_t len) {
        static const char prefix[] = "sha256:";
        if (strncmp(digest, prefix, sizeof prefix - 1) != 0)
                return false;
        struct sha256_ctx h;
        uint8_t out[SHA256_DIGEST_SIZE];
        sha256_init(&h);
        sha256_update(&h, len, data);
        sha256_digest(&h, sizeof out, out);
        char hex[2 * SHA256_DIGEST_SIZE + 1];
        for (size_t i = 0; i < sizeof out; i++)
                snprintf(hex + 2 * i, 3, "%02x", out[i]);
        return streq(digest + sizeof prefix - 1, hex);
}

int tr__ctrd_content_read(const tr__ctrd_ctx *cx, const char *digest, int64_t size, size_t max, char **ret_data,
                          size_t *ret_len, tr_error **ret_err) {
        if (size < 0 || (uint64_t) size > max) {
                tr_error_set(ret_err, TR_E_CONTAINER_FAILED, TR_BACKEND_CONTAINERD, "content.read",
                             "blob %s is %lld bytes, more than the %zu allowed", digest, (long long) size, max);
                return -EMSGSIZE;
        }
        Containerd__Services__Content__V1__ReadContentRequest req =
                CONTAINERD__SERVICES__CONTENT__V1__READ_CONTENT_REQUEST__INIT;
        req.digest = UNCONST(digest);
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        int r = tr__grpc_call_start_pb(cx->conn, SVC_CONTENT "Read", &req.base, cx->lease, cx->deadline_ns, &call,
                                       ret_err);
        if (r >= 0)
                r = tr__grpc_call_wait(cx->conn, call, cx->cancel_fd, ret_err);
        if (r < 0)
                return r;
        _cleanup_free_ char *buf = malloc((size_t) size + 1);
        if (!buf)
                return tr__ctrd_oom(ret_err, "content.read");
        size_t got = 0;
        for (size_t i = 0; i < tr__grpc_call_n_messages(call); i++) {
                size_t len;
                const uint8_t *m = tr__grpc_call_message(call, i, &len);
                Containerd__Services__Content__V1__ReadContentResponse *rc =
                        containerd__services__content__v1__read_content_response__unpack(NULL, len, m);
                if (!rc) {
                        tr_error_set(ret_err, TR_E_CONTAINER_FAILED, TR_BACKEND_CONTAINERD, "content.read",
                                     "malformed content chunk for %s", digest);
                        return -EBADMSG;
                }
                bool ok = rc->offset >= 0 && (uint64_t) rc->offset <= (uint64_t) size &&
                          rc->data.len <= (uint64_t) size - (uint64_t) rc->offset;
                if (ok) {
                        memcpy(buf + rc->offset, rc->data.data, rc->data.len);
                        got += rc->data.len;
                }
                containerd__services__content__v1__read_content_response__free_unpacked(rc, NULL);
                if (!ok) {
                        tr_error_set(ret_err, TR_E_CONTAINER_FAILED, TR_BACKEND_CONTAINERD, "content.read",
                                     "content chunk for %s outside the blob", digest);
                        return -EBADMSG;
                }
        }
        /* A blob is addressed by its digest: check it, so that a corrupt store
         * cannot feed the resolver something else. */
        if (got != (size_t) size || !digest_matches(digest, buf, (size_t) size)) {
                tr_error_set(ret_err, TR_E_CONTAINER_FAILED, TR_BACKEND_CONTAINERD, "content.read",
                             "content %s does not match its digest or size", digest);
                return -EBADMSG;
        }
        buf[size] = 0;
        *ret_len = (size_t) size;
        *ret_data = TAKE_PTR(buf);
        return 0;
}

/* ---- snapshots ------------------------------------------------------------ */

int tr__ctrd_snapshot_prepare(const tr__ctrd_ctx *cx, const char *snapshotter, const char *key, const char *parent,
                              const char *const *labels, tr__ctrd_mounts *ret_mounts, tr_error **ret_err) {
        Containerd__Services__Snapshots__V1__PrepareSnapshotRequest req =
                CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
        _cleanup_(tr__ctrd_kv_list_done) kv_list kv = { 0 };
        if (tr__ctrd_kv_list_build(
                    &containerd__services__snapshots__v1__prepare_snapshot_request__labels_entry__descriptor, labels,
                    &kv) < 0)
                return tr__ctrd_oom(ret_err, "snapshot.prepare");
        req.snapshotter = UNCONST(snapshotter);
        req.key = UNCONST(key);
        req.parent = UNCONST(parent ? parent : "");
        req.n_labels = kv.n;
        req.labels = (void *) kv.ptrs;
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "snapshot.prepare", SVC_SNAPSHOTS "Prepare", &req.base,
                               &containerd__services__snapshots__v1__prepare_snapshot_response__descriptor, &resp,
                               ret_err);
        if (r < 0)
                return r;
        Containerd__Services__Snapshots__V1__PrepareSnapshotResponse *p = (void *) resp;
        r = mounts_copy(p->mounts, p->n_mounts, ret_mounts);
        protobuf_c_message_free_unpacked(resp, NULL);
        return r < 0 ? tr__ctrd_oom(ret_err, "snapshot.prepare") : 0;
}

int tr__ctrd_snapshot_mounts(const tr__ctrd_ctx *cx, const char *snapshotter, const char *key,
                             tr__ctrd_mounts *ret_mounts, tr_error **ret_err) {
        Containerd__Services__Snapshots__V1__MountsRequest req =
                CONTAINERD__SERVICES__SNAPSHOTS__V1__MOUNTS_REQUEST__INIT;
        req.snapshotter = UNCONST(snapshotter);
        req.key = UNCONST(key);
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "snapshot.mounts", SVC_SNAPSHOTS "Mounts", &req.base,
                               &containerd__services__snapshots__v1__mounts_response__descriptor, &resp, ret_err);
        if (r < 0)
                return r;
        Containerd__Services__Snapshots__V1__MountsResponse *p = (void *) resp;
        r = mounts_copy(p->mounts, p->n_mounts, ret_mounts);
        protobuf_c_message_free_unpacked(resp, NULL);
        return r < 0 ? tr__ctrd_oom(ret_err, "snapshot.mounts") : 0;
}

int tr__ctrd_snapshot_remove(const tr__ctrd_ctx *cx, const char *snapshotter, const char *key, tr_error **ret_err) {
        Containerd__Services__Snapshots__V1__RemoveSnapshotRequest req =
                CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
        req.snapshotter = UNCONST(snapshotter);
        req.key = UNCONST(key);
        return tr__ctrd_unary(cx, "snapshot.remove", SVC_SNAPSHOTS "Remove", &req.base, NULL, NULL, ret_err);
}

int tr__ctrd_snapshot_list(const tr__ctrd_ctx *cx, const char *snapshotter, const char *filter, tr__ctrd_items *ret,
                           tr_error **ret_err) {
        Containerd__Services__Snapshots__V1__ListSnapshotsRequest req =
                CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
        char *filters[1] = { UNCONST(filter) };
        req.snapshotter = UNCONST(snapshotter);
        req.n_filters = filter ? 1 : 0;
        req.filters = filters;
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        int r = tr__grpc_call_start_pb(cx->conn, SVC_SNAPSHOTS "List", &req.base, cx->lease, cx->deadline_ns, &call,
                                       ret_err);
        if (r >= 0)
                r = tr__grpc_call_wait(cx->conn, call, cx->cancel_fd, ret_err);
        if (r < 0)
                return r;
        tr__ctrd_items l = { 0 };
        for (size_t i = 0; i < tr__grpc_call_n_messages(call); i++) {
                size_t len;
                const uint8_t *m = tr__grpc_call_message(call, i, &len);
                Containerd__Services__Snapshots__V1__ListSnapshotsResponse *resp =
                        containerd__services__snapshots__v1__list_snapshots_response__unpack(NULL, len, m);
                if (!resp) {
                        tr__ctrd_items_done(&l);
                        tr_error_set(ret_err, TR_E_CONTAINER_FAILED, TR_BACKEND_CONTAINERD, "snapshot.list",
                                     "malformed snapshot list");
                        return -EBADMSG;
                }
                for (size_t j = 0; j < resp->n_info && r >= 0; j++) {
                        r = tr__ctrd_items_push(&l, resp->info[j]->name, (kv_entry **) resp->info[j]->labels,
                                                resp->info[j]->n_labels);
                        if (r >= 0)
                                l.items[l.n - 1].active =
                                        resp->info[j]->kind == CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__ACTIVE;
                }
                containerd__services__snapshots__v1__list_snapshots_response__free_unpacked(resp, NULL);
                if (r < 0) {
                        tr__ctrd_items_done(&l);
                        return tr__ctrd_oom(ret_err, "snapshot.list");
                }
        }
        *ret = l;
        return 0;
}

/* ---- time ------------------------------------------------------------ */

void tr__ctrd_rfc3339(int64_t unix_sec, char out[32]) {
        time_t t = (time_t) unix_sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int tr__ctrd_parse_rfc3339(const char *s, int64_t *ret_unix_sec) {
        struct tm tm = { 0 };
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        int64_t off = 0;
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                int hh, mm;
                if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || strlen(p) != 6)
                        return -EINVAL;
                off = (int64_t) (hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
                p += 6;
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;
        *ret_unix_sec = (int64_t) timegm(&tm) - off;
        return 0;
}
