/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tr_containerd_check: what `toolruntime doctor` asks of the containerd
 * backend — is the socket there, does the daemon answer, is the sandbox
 * image imported — answered with the same client and the same errors as
 * an execution, so doctor's verdict is the backend's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/client.h"
#include "backend/containerd/grpc.h"
#include "backend/containerd/sandbox.h"
#include "toolruntime.h"
#include "util/config.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/timeutil.h"

/* Doctor must answer promptly even when the daemon hangs. */
#define CHECK_TIMEOUT_NS (5 * TR_NSEC_PER_SEC)

TR_PUBLIC int tr_containerd_check(const tr_containerd_config *user_cfg, char **ret_detail, tr_error **ret_err) {
        tr_containerd_config cfg_copy;
        int r_cfg = tr__containerd_config_copy(user_cfg, &cfg_copy, ret_err);
        if (r_cfg < 0)
                return r_cfg;
        const tr_containerd_config *cfg = &cfg_copy;
        const char *image = cfg && cfg->image_ref ? cfg->image_ref : TR_CONTAINERD_DEFAULT_IMAGE;
        tr__ctrd_client cl;
        int r = tr__ctrd_client_init(&cl, cfg ? cfg->socket_path : NULL, cfg ? cfg->namespace_name : NULL,
                                     cfg ? cfg->snapshotter : NULL, cfg ? cfg->state_dir : NULL);
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "check", "out of memory");
        int64_t deadline = tr__now_ns() + CHECK_TIMEOUT_NS;
        tr__grpc_conn *conn = NULL;
        _cleanup_free_ char *version = NULL, *chain = NULL;
        r = tr__ctrd_client_connect(&cl, deadline, -1, &conn, ret_err);
        if (r >= 0) {
                tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = deadline, .cancel_fd = -1 };
                r = tr__ctrd_version(&cx, &version, ret_err);
                if (r >= 0)
                        r = tr__ctrd_client_resolve(&cl, &cx, image, &chain, ret_err);
        }
        if (r >= 0 && ret_detail) {
                char *d = NULL;
                if (asprintf(&d, "containerd %s at %s, namespace %s, image %s", version ? version : "?", cl.socket_path,
                             cl.ns, image) < 0)
                        d = NULL;
                *ret_detail = d;
        }
        tr__grpc_conn_free(conn);
        tr__ctrd_client_done(&cl);
        return r;
}
