/* SPDX-License-Identifier: Apache-2.0 */
/*
 * toolruntime's own images in containerd: listing and removing the images
 * labelled io.toolruntime.owner (pulled by tr_containerd_image_pull, or
 * built by `toolruntime image build`).  Images that other tools put into
 * the same namespace carry no such label and are never listed nor removed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/client.h"
#include "backend/containerd/client_pb.h"
#include "backend/containerd/image.h"
#include "ctrd_services_images_v1_images.pb-c.h"
#include "toolruntime/containerd.h"
#include "util/config.h"
#include "util/macros.h"
#include "util/timeutil.h"

#define OWNER_FILTER "labels.\"" TR_CTRD_OWNER_LABEL "\"==" TR_CTRD_OWNER_VALUE
#define LIST_TIMEOUT (30 * TR_NSEC_PER_SEC)

static int oom(tr_error **ret_err, const char *op) {
        tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, op, "out of memory");
        return -ENOMEM;
}

/* Every entry point reads the caller's config through here (util/config.h). */
static int connect_cfg(const tr_containerd_config *cfg, int64_t deadline, tr__grpc_conn **ret, tr_error **ret_err) {
        tr_containerd_config copy;
        int r = tr__containerd_config_copy(cfg, &copy, ret_err);
        if (r < 0)
                return r;
        const tr_containerd_config *c = &copy;
        return tr__grpc_connect(c->socket_path, c->namespace_name, deadline, -1, ret, ret_err);
}

static const char *label(const Containerd__Services__Images__V1__Image *im, const char *key) {
        for (size_t i = 0; i < im->n_labels; i++)
                if (im->labels[i]->key && streq(im->labels[i]->key, key))
                        return im->labels[i]->value;
        return NULL;
}

/* Images.List with one filter; *ret is the unpacked response. */
static int list(const tr__ctrd_ctx *cx, const char *filter, Containerd__Services__Images__V1__ListImagesResponse **ret,
                tr_error **ret_err) {
        Containerd__Services__Images__V1__ListImagesRequest req =
                CONTAINERD__SERVICES__IMAGES__V1__LIST_IMAGES_REQUEST__INIT;
        char *filters[] = { (char *) filter };
        req.n_filters = 1;
        req.filters = filters;
        return tr__ctrd_unary(cx, "image.list", "/containerd.services.images.v1.Images/List", &req.base,
                              &containerd__services__images__v1__list_images_response__descriptor,
                              (ProtobufCMessage **) ret, ret_err);
}

TR_PUBLIC void tr_image_entries_free(tr_image_entry *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].name);
                free(v[i].digest);
                free(v[i].source);
        }
        free(v);
}

TR_PUBLIC int tr_containerd_image_list(const tr_containerd_config *cfg, tr_image_entry **ret, size_t *ret_n,
                                       tr_error **ret_err) {
        int64_t deadline = tr__now_ns() + LIST_TIMEOUT;
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *conn = NULL;
        int r = connect_cfg(cfg, deadline, &conn, ret_err);
        if (r < 0)
                return r;
        tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = deadline, .cancel_fd = -1 };
        Containerd__Services__Images__V1__ListImagesResponse *resp = NULL;
        if ((r = list(&cx, OWNER_FILTER, &resp, ret_err)) < 0)
                return r;
        tr_image_entry *v = calloc(resp->n_images ? resp->n_images : 1, sizeof *v);
        if (!v) {
                protobuf_c_message_free_unpacked(&resp->base, NULL);
                return oom(ret_err, "image.list");
        }
        size_t n = 0;
        for (size_t i = 0; i < resp->n_images; i++) {
                const Containerd__Services__Images__V1__Image *im = resp->images[i];
                const char *src = label(im, "io.toolruntime.source");
                tr_image_entry *e = &v[n++];
                e->name = strdup(im->name ? im->name : "");
                e->digest = strdup(im->target && im->target->digest ? im->target->digest : "");
                e->source = strdup(src ? src : "");
                if (!e->name || !e->digest || !e->source) {
                        protobuf_c_message_free_unpacked(&resp->base, NULL);
                        tr_image_entries_free(v, n);
                        return oom(ret_err, "image.list");
                }
        }
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        *ret = v;
        *ret_n = n;
        return 0;
}

TR_PUBLIC int tr_containerd_image_remove(const tr_containerd_config *cfg, const char *ref, char **ret_digest,
                                         tr_error **ret_err) {
        int64_t deadline = tr__now_ns() + LIST_TIMEOUT;
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *conn = NULL;
        int r = connect_cfg(cfg, deadline, &conn, ret_err);
        if (r < 0)
                return r;
        tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = deadline, .cancel_fd = -1 };
        char *cand[TR_CTRD_IMAGE_CANDIDATES];
        int n = tr__ctrd_image_candidates(ref, cand);
        if (n < 0)
                return oom(ret_err, "image.remove");
        /* The first spelling that names one of our images; a name that
         * exists without our label is refused, not removed. */
        _cleanup_free_ char *name = NULL, *digest = NULL;
        bool foreign = false;
        for (int i = 0; i < n && r >= 0 && !name; i++) {
                _cleanup_free_ char *filter = NULL;
                if (asprintf(&filter, "name==\"%s\"", cand[i]) < 0) {
                        filter = NULL;
                        r = oom(ret_err, "image.remove");
                        break;
                }
                Containerd__Services__Images__V1__ListImagesResponse *resp = NULL;
                if ((r = list(&cx, filter, &resp, ret_err)) < 0)
                        break;
                if (resp->n_images == 1) {
                        const Containerd__Services__Images__V1__Image *im = resp->images[0];
                        const char *owner = label(im, TR_CTRD_OWNER_LABEL);
                        if (owner && streq(owner, TR_CTRD_OWNER_VALUE)) {
                                name = strdup(cand[i]);
                                digest = strdup(im->target && im->target->digest ? im->target->digest : "");
                                if (!name || !digest)
                                        r = oom(ret_err, "image.remove");
                        } else
                                foreign = true;
                }
                protobuf_c_message_free_unpacked(&resp->base, NULL);
        }
        for (int i = 0; i < n; i++)
                free(cand[i]);
        if (r < 0)
                return r;
        if (!name) {
                tr_error_set(ret_err, TR_E_IMAGE_NOT_FOUND, TR_BACKEND_CONTAINERD, "image.remove",
                             foreign ? "image %s was not built or pulled by toolruntime (no io.toolruntime.owner "
                                       "label): left alone"
                                     : "no image %s in containerd",
                             ref);
                return -ENOENT;
        }
        /* sync: containerd's GC has removed the blobs and snapshots only
         * this image held once the call returns. */
        Containerd__Services__Images__V1__DeleteImageRequest req =
                CONTAINERD__SERVICES__IMAGES__V1__DELETE_IMAGE_REQUEST__INIT;
        req.name = name;
        req.sync = true;
        r = tr__ctrd_unary(&cx, "image.delete", "/containerd.services.images.v1.Images/Delete", &req.base, NULL, NULL,
                           ret_err);
        if (r >= 0 && ret_digest)
                *ret_digest = TAKE_PTR(digest);
        return r;
}

TR_PUBLIC int tr_containerd_image_lookup(const tr_containerd_config *cfg, const char *ref, char **ret_name,
                                         char **ret_digest, tr_error **ret_err) {
        int64_t deadline = tr__now_ns() + LIST_TIMEOUT;
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *conn = NULL;
        int r = connect_cfg(cfg, deadline, &conn, ret_err);
        if (r < 0)
                return r;
        tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = deadline, .cancel_fd = -1 };
        _cleanup_free_ char *name = NULL;
        tr__ctrd_desc target = { 0 };
        if ((r = tr__ctrd_image_find(&cx, ref, &name, &target, ret_err)) < 0)
                return r;
        *ret_name = TAKE_PTR(name);
        *ret_digest = TAKE_PTR(target.digest);
        tr__ctrd_desc_done(&target);
        return 0;
}
