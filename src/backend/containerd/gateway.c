/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The containerd sandbox's end of the tool gateway on the host (gateway.h):
 * the directory the spec bind-mounts at /run/toolruntime, and the unix
 * socket in it on which the core's gateway session listens for each run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/containerd/gateway.h"
#include "backend/containerd/sandbox.h"
#include "core/plan.h"
#include "util/macros.h"
#include "util/proc.h"

/* The host side of the gateway endpoint: <state>/<id>.gw (0700, ours)
 * holding gw/ (owned by the sandbox's own uid, 0700), which the spec
 * bind-mounts at /run/toolruntime.  The outer directory keeps every other
 * host user out; the inner one lets this sandbox's uid -- which no other
 * live sandbox shares -- reach the socket, and nothing else.  The id is
 * random and mkdir never reuses an existing entry; the name lets gc match
 * the directory to its container. */
int tr__ctrd_gateway_dir_make(const char *state_dir, const char *id, uid_t uid, char **ret_outer, char **ret_inner,
                              int *ret_lock, tr_error **ret_err) {
        _cleanup_free_ char *outer = NULL, *inner = NULL;
        if (asprintf(&outer, "%s/%s.gw", state_dir, id) < 0)
                return outer = NULL,
                       tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "gateway", "out of memory");
        _cleanup_close_ int lock = tr__ctrd_exec_dir_create(outer);
        if (lock < 0) {
                tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "gateway", "mkdir %s: %s", outer,
                             strerror(-lock));
                return lock;
        }
        if (asprintf(&inner, "%s/gw", outer) < 0) {
                inner = NULL;
                errno = ENOMEM;
        }
        if (!inner || mkdir(inner, 0700) < 0 || chown(inner, uid, (gid_t) uid) < 0) {
                int e = errno;
                tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "gateway", "gateway dir in %s: %s", outer,
                             strerror(e));
                (void) tr__rm_rf(outer);
                return -e;
        }
        *ret_outer = TAKE_PTR(outer);
        *ret_inner = TAKE_PTR(inner);
        *ret_lock = TAKE_FD(lock);
        return 0;
}

/* The transport of the core's gateway session for this run: a unix socket
 * in the sandbox's directory, which the spec bind-mounts. */
int tr__ctrd_gateway_listen(const char *inner, uid_t uid, tr_exec *ex, tr_error **ret_err) {
        tr__gw_session *gw = tr__exec_gateway(ex);
        if (!inner || !gw)
                return 0;
        _cleanup_free_ char *sock = NULL;
        if (asprintf(&sock, "%s/gateway.sock", inner) < 0)
                return sock = NULL,
                       tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "gateway", "out of memory");
        int r = tr__gw_session_listen_unix(gw, sock, ret_err);
        if (r < 0)
                return r;
        /* connect() needs write permission on the socket: give it to the
         * sandbox's uid alone. */
        if (chown(sock, uid, (gid_t) uid) < 0 || chmod(sock, 0600) < 0) {
                int e = errno;
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "gateway", "gateway socket %s: %s",
                                    sock, strerror(e));
        }
        return 0;
}
