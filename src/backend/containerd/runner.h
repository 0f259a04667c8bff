/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one internal runner interface of the backends that run containers
 * through containerd (the containerd backend, and kata's containerd
 * runner): a client per backend instance (its connections, image cache and
 * reaper; client_state.c), and one call that runs a spec to completion in
 * a fresh sandbox.  Everything else (sandbox.h, client.h) is the containerd
 * backend's own.
 */
#pragma once

#include "toolruntime.h"
#include "toolruntime/containerd.h"

typedef struct tr__ctrd_client tr__ctrd_client;

/* NULL arguments select the defaults (as tr__ctrd_client_init). */
int tr__ctrd_client_new(const char *socket_path, const char *ns, const char *snapshotter, const char *state_dir,
                        tr__ctrd_client **ret);
/* Drains the reaper: nothing of any execution is left after it.  NULL-safe. */
void tr__ctrd_client_free(tr__ctrd_client *cl);
/* prepare + start + run in a fresh sandbox, destroyed (or handed to the
 * reaper) before returning. */
int tr__ctrd_client_run(tr__ctrd_client *cl, const tr_containerd_spec *spec, tr_exec *ex, tr_containerd_run_result *ret,
                        tr_error **ret_err);
