/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A backend's containerd client (tr__ctrd_client): its connection
 * settings, the connections it keeps for reuse (one process running one
 * execution at a time talks to containerd over one connection; a broken or
 * GOAWAY'd one is dropped and replaced on next use), and the image cache,
 * so that an image is resolved once per manifest.  The reaper that tears
 * finished sandboxes down is sandbox.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/image.h"
#include "backend/containerd/runner.h"
#include "backend/containerd/sandbox.h"
#include "util/macros.h"

int tr__ctrd_client_init(tr__ctrd_client *cl, const char *socket_path, const char *ns, const char *snapshotter,
                         const char *state_dir) {
        *cl = (tr__ctrd_client){ 0 };
        cl->socket_path = strdup(socket_path ? socket_path : TR_CONTAINERD_DEFAULT_SOCKET);
        cl->ns = strdup(ns ? ns : TR_CONTAINERD_DEFAULT_NAMESPACE);
        cl->snapshotter = strdup(snapshotter ? snapshotter : TR_CONTAINERD_DEFAULT_SNAPSHOTTER);
        cl->state_dir = strdup(state_dir ? state_dir : tr__ctrd_default_state_dir());
        if (!cl->socket_path || !cl->ns || !cl->snapshotter || !cl->state_dir ||
            pthread_mutex_init(&cl->cache_lock, NULL) != 0 || pthread_mutex_init(&cl->conn_lock, NULL) != 0 ||
            pthread_mutex_init(&cl->reaper_lock, NULL) != 0 || pthread_cond_init(&cl->reaper_cond, NULL) != 0) {
                free(cl->socket_path);
                free(cl->ns);
                free(cl->snapshotter);
                free(cl->state_dir);
                return -ENOMEM;
        }
        return 0;
}

void tr__ctrd_client_done(tr__ctrd_client *cl) {
        tr__ctrd_reaper_stop(cl);
        while (cl->n_idle > 0)
                tr__grpc_conn_free(cl->idle[--cl->n_idle]);
        pthread_mutex_destroy(&cl->conn_lock);
        pthread_mutex_destroy(&cl->reaper_lock);
        pthread_cond_destroy(&cl->reaper_cond);
        free(cl->socket_path);
        free(cl->ns);
        free(cl->snapshotter);
        free(cl->state_dir);
        free(cl->cache_digest);
        free(cl->cache_chain_id);
        pthread_mutex_destroy(&cl->cache_lock);
}

int tr__ctrd_client_connect(tr__ctrd_client *cl, int64_t deadline_ns, int cancel_fd, tr__grpc_conn **ret,
                            tr_error **ret_err) {
        for (;;) {
                pthread_mutex_lock(&cl->conn_lock);
                tr__grpc_conn *c = cl->n_idle > 0 ? cl->idle[--cl->n_idle] : NULL;
                pthread_mutex_unlock(&cl->conn_lock);
                if (!c)
                        break;
                /* Ours alone now: checking it reads from it. */
                if (tr__grpc_conn_reusable(c)) {
                        *ret = c;
                        return 0;
                }
                tr__grpc_conn_free(c);
        }
        return tr__grpc_connect(cl->socket_path, cl->ns, deadline_ns, cancel_fd, ret, ret_err);
}

void tr__ctrd_client_release(tr__ctrd_client *cl, tr__grpc_conn *conn) {
        if (!conn)
                return;
        if (tr__grpc_conn_reusable(conn)) {
                pthread_mutex_lock(&cl->conn_lock);
                bool kept = cl->n_idle < TR_CTRD_IDLE_CONNS;
                if (kept)
                        cl->idle[cl->n_idle++] = conn;
                pthread_mutex_unlock(&cl->conn_lock);
                if (kept)
                        return;
        }
        tr__grpc_conn_free(conn);
}

int tr__ctrd_client_resolve(tr__ctrd_client *cl, const tr__ctrd_ctx *cx, const char *ref, char **ret_chain_id,
                            tr_error **ret_err) {
        /* One Images.Get tells whether the name still points where it did;
         * only then is the cached chain id valid.  Saves the two or three
         * content reads per execution. */
        tr__ctrd_desc target = { 0 };
        tr_error *err = NULL;
        int r = tr__ctrd_image_get(cx, ref, &target, &err);
        tr_error_free(err);
        if (r >= 0) {
                char *hit = NULL;
                pthread_mutex_lock(&cl->cache_lock);
                if (cl->cache_digest && streq(cl->cache_digest, target.digest))
                        hit = strdup(cl->cache_chain_id);
                pthread_mutex_unlock(&cl->cache_lock);
                tr__ctrd_desc_done(&target);
                if (hit) {
                        *ret_chain_id = hit;
                        return 0;
                }
        }
        tr__ctrd_image img = { 0 };
        r = tr__ctrd_image_resolve(cx, ref, &img, ret_err);
        if (r < 0)
                return r;
        /* Cache under the digest the name points at (the index, for a
         * multi-platform image); img.digest is the manifest's. */
        tr__ctrd_desc t2 = { 0 };
        if (tr__ctrd_image_get(cx, img.name, &t2, NULL) >= 0) {
                pthread_mutex_lock(&cl->cache_lock);
                free(cl->cache_digest);
                free(cl->cache_chain_id);
                cl->cache_digest = TAKE_PTR(t2.digest);
                cl->cache_chain_id = strdup(img.chain_id);
                if (!cl->cache_chain_id)
                        free(TAKE_PTR(cl->cache_digest));
                pthread_mutex_unlock(&cl->cache_lock);
                tr__ctrd_desc_done(&t2);
        }
        *ret_chain_id = TAKE_PTR(img.chain_id);
        tr__ctrd_image_done(&img);
        return 0;
}

int tr__ctrd_client_new(const char *socket_path, const char *ns, const char *snapshotter, const char *state_dir,
                        tr__ctrd_client **ret) {
        tr__ctrd_client *cl = calloc(1, sizeof(*cl));
        if (!cl)
                return -ENOMEM;
        int r = tr__ctrd_client_init(cl, socket_path, ns, snapshotter, state_dir);
        if (r < 0) {
                free(cl);
                return r;
        }
        *ret = cl;
        return 0;
}

void tr__ctrd_client_free(tr__ctrd_client *cl) {
        if (!cl)
                return;
        tr__ctrd_client_done(cl);
        free(cl);
}

int tr__ctrd_client_run(tr__ctrd_client *cl, const tr_containerd_spec *spec, tr_exec *ex, tr_containerd_run_result *ret,
                        tr_error **ret_err) {
        return tr__ctrd_real_runner.run(cl, spec, ex, ret, ret_err);
}
