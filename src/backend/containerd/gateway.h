/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The containerd sandbox's gateway endpoint on the host (gateway.c).
 */
#pragma once

#include <sys/types.h>

#include "toolruntime.h"

/* Where the spec mounts the gateway directory inside the container. */
#define TR__CTRD_GATEWAY_ENV_VALUE "unix:/run/toolruntime/gateway.sock"

/* Make <state_dir>/<id>.gw (0700) holding gw/ (owned by `uid`, 0700): the
 * outer path, the inner one (to mount) and a lock fd held until destroy. */
int tr__ctrd_gateway_dir_make(const char *state_dir, const char *id, uid_t uid, char **ret_outer, char **ret_inner,
                              int *ret_lock, tr_error **ret_err);
/* Listen with `ex`'s gateway session on <inner>/gateway.sock, reachable by
 * `uid` alone.  0 with nothing done when there is no session. */
int tr__ctrd_gateway_listen(const char *inner, uid_t uid, tr_exec *ex, tr_error **ret_err);
