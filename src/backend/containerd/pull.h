/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pulling an image from a registry into containerd: what `ctr images pull`
 * does, in the library.  Owns the RPCs only pulling needs (Content.Write,
 * Content.Abort, Diff.Apply, Snapshots.Stat/Commit, Images.Create/Update).
 *
 * Everything is written under one lease that carries containerd's own
 * expiry label: while the pull runs nothing it wrote can be collected, and
 * when it fails (or the process dies) the lease goes -- at once, or when it
 * expires -- and containerd's GC removes every blob and snapshot that no
 * image references.  Only the last step, the image record, makes what was
 * pulled reachable; the gc.ref labels on the index, manifest and config tie
 * the blobs and the unpacked snapshot chain to it.
 */
#pragma once

#include "backend/containerd/client.h"
#include "toolruntime.h"

/* Pull `ref` (see tr_containerd_image_pull).  `cx->lease` must be NULL.
 * *ret_name (may be NULL) gets the name the image is stored under. */
int tr__ctrd_pull(const tr__ctrd_ctx *cx, const char *snapshotter, const char *ref, const tr_image_pull_opts *opts,
                  char **ret_name, tr_error **ret_err);

/* The image resolver found no `ref` (`not_found`, consumed): pull it
 * when the policy allows -- the hardened profile only pulls references
 * pinned by digest, whose content cannot change under the name -- and
 * move the execution's deadline by the time the pull took, so that the
 * snippet keeps its whole timeout.  Else fail with `not_found`. */
struct tr__ctrd_client;
int tr__ctrd_pull_on_demand(struct tr__ctrd_client *cl, tr__grpc_conn *conn, const char *ref, tr_exec *ex,
                            tr_error *not_found, tr_error **ret_err);

/* Is `ref` pinned by digest ("name@sha256:...")? */
bool tr__ctrd_ref_pinned(const char *ref);
