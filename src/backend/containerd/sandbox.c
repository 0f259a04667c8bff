/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real ContainerRunner (see sandbox.h).  Every object created in
 * containerd is recorded in the sandbox as soon as the RPC that creates it
 * returns, so that destroy removes exactly what exists, from every error
 * path; every object carries the owner label and an expiry label, and the
 * snapshot is held by a lease with containerd's own gc.expire, so that
 * `toolruntime gc` (and containerd's GC) collect what a killed caller left.
 *
 * This file: ids, labels and prepare; the run is sandbox_run.c's, the
 * teardown and the reaper sandbox_destroy.c's (sandbox_int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/containerd/image.h"
#include "backend/containerd/pull.h"
#include "backend/containerd/sandbox.h"
#include "backend/containerd/sandbox_int.h"
#include "backend/containerd/spec.h"
#include "core/plan.h"
#include "util/macros.h"
#include "util/owner.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

/* ---- ids ------------------------------------------------------------ */

int tr__ctrd_random_id(char out[TR_CTRD_ID_SIZE]) {
        uint8_t r[16];
        size_t got = 0;
        while (got < sizeof r) {
                ssize_t n = getrandom(r + got, sizeof r - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t) n;
        }
        memcpy(out, "tr-", 3);
        for (size_t i = 0; i < sizeof r; i++)
                snprintf(out + 3 + 2 * i, 3, "%02x", r[i]);
        return 0;
}

/* ---- helpers ------------------------------------------------------------ */

int tr__ctrd_sb_sys_err(tr_error **ret_err, const char *op, const char *what, const char *path) {
        int e = errno ? errno : EIO;
        tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, op, "%s %s: %s", what, path ? path : "",
                     strerror(e));
        if (ret_err && *ret_err)
                tr_error_set_errno(*ret_err, e);
        return -e;
}

tr__ctrd_ctx tr__ctrd_sb_cleanup_ctx(const tr__ctrd_sandbox *sb) {
        /* Cleanup runs to the end after a timeout or a cancel: its own
         * deadline, no cancel fd.  On sb->conn, which destroy replaces once
         * when it finds it lost (cleanup_reconnect). */
        return (tr__ctrd_ctx){ .conn = sb->conn, .deadline_ns = tr__now_ns() + TR_CTRD_CLEANUP_NS, .cancel_fd = -1 };
}

/* --verbose shows where the time of an execution goes: one "span" line per
 * step, with its milliseconds.  Returns the step's end, the next's start. */
int64_t tr__ctrd_sb_span(const tr__ctrd_client *cl, tr_exec *ex, const char *step, int64_t t0) {
        int64_t now = tr__now_ns();
        char ms[24];
        snprintf(ms, sizeof ms, "%.1f", (double) (now - t0) / 1e6);
        if (ex)
                tr_exec_log(ex, TR_LOG_INFO, "span", "step", step, "ms", ms, NULL);
        else if (cl && cl->log) {
                const char *kv[] = { "step", step, "ms", ms, NULL };
                cl->log(cl->log_userdata, TR_LOG_INFO, "span", kv);
        }
        return now;
}

void tr__ctrd_sb_log_cleanup_error(const tr__ctrd_client *cl, tr_exec *ex, const char *what, const char *id,
                                   tr_error *err) {
        if (ex && err)
                tr_exec_log(ex, TR_LOG_WARN, "containerd cleanup failed", "what", what, "id", id, "error",
                            tr_error_message(err), NULL);
        else if (cl && cl->log && err) {
                const char *kv[] = { "what", what, "id", id, "error", tr_error_message(err), NULL };
                cl->log(cl->log_userdata, TR_LOG_WARN, "containerd cleanup failed", kv);
        }
        tr_error_free(err);
}

static int push_label(char ***v, const char *k, const char *val) {
        if (tr__strv_push(v, k) < 0 || tr__strv_push(v, val) < 0)
                return -ENOMEM;
        return 0;
}

/* The labels every object gets, then the spec's own. */
static int make_labels(const tr__ctrd_sandbox *sb, const tr_containerd_spec *spec, bool with_spec, char ***ret) {
        _cleanup_strv_ char **v = NULL;
        if (push_label(&v, TR_CTRD_OWNER_LABEL, TR_CTRD_OWNER_VALUE) < 0 ||
            push_label(&v, TR_CTRD_EXPIRES_LABEL, sb->expires) < 0)
                return -ENOMEM;
        if (sb->owner_pid[0] && (push_label(&v, TR_CTRD_OWNER_PID_LABEL, sb->owner_pid) < 0 ||
                                 push_label(&v, TR_CTRD_OWNER_START_LABEL, sb->owner_start) < 0 ||
                                 push_label(&v, TR_CTRD_OWNER_BOOT_LABEL, sb->owner_boot) < 0 ||
                                 push_label(&v, TR_CTRD_OWNER_PIDNS_LABEL, sb->owner_pidns) < 0))
                return -ENOMEM;
        for (const char *const *p = with_spec ? spec->labels : NULL; p && p[0] && p[1]; p += 2)
                if (push_label(&v, p[0], p[1]) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(v);
        return 0;
}

/* ---- prepare ------------------------------------------------------------ */

/* The sandbox ends on its own even when no one is left to kill it (a
 * caller killed with SIGKILL, before `toolruntime gc` runs): its pid 1 is
 * coreutils' timeout(1), which SIGKILLs the command a margin after the
 * execution's deadline and then exits, and the kernel kills whatever else
 * is left in the container's pid namespace when its init exits.  The margin
 * lets the host's own timeout (which reports `timeout`) always fire first.
 * It is a backstop for the absent caller: the host still enforces the
 * deadline, and gc still removes the objects.  timeout(1) passes the
 * command's exit status through, and reports a signal death as 128+N, as
 * runc does for a pid 1 that dies by a signal. */
/* A session's runner is interrupted with SIGINT (tr_backend_ops.signal),
 * which the Kill RPC delivers to pid 1: timeout(1) has a handler for it and
 * passes it on.  --foreground makes it pass it to the command alone, every
 * time: without it timeout(1) also signals its whole process group and then
 * ignores that signal for good, so a second interrupt would be lost.  The
 * backstop still works (timeout(1) SIGKILLs the command and exits; the
 * kernel kills the rest of the pid namespace with its init). */
static int deadline_argv(const char *const *command, int64_t left_s, bool session, char ***ret) {
        _cleanup_strv_ char **v = NULL;
        if (tr__strv_push(&v, TR_CTRD_TIMEOUT_BIN) < 0 || (session && tr__strv_push(&v, "--foreground") < 0) ||
            tr__strv_push(&v, "-s") < 0 || tr__strv_push(&v, "KILL") < 0 || tr__strv_push(&v, "--") < 0 ||
            tr__strv_pushf(&v, "%" PRId64 "s", (left_s > 0 ? left_s : 0) + 1 + TR_CTRD_BACKSTOP_MARGIN_SEC) < 0)
                return -ENOMEM;
        for (const char *const *c = command; c && *c; c++)
                if (tr__strv_push(&v, *c) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(v);
        return 0;
}

int tr__ctrd_sandbox_prepare(tr__ctrd_client *cl, const tr_containerd_spec *spec, tr_exec *ex, tr__ctrd_sandbox **ret,
                             tr_error **ret_err) {
        tr__ctrd_sandbox *sb = calloc(1, sizeof *sb);
        if (!sb)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "prepare", "out of memory"), -ENOMEM;
        sb->cl = cl;
        sb->io_lock = -1;
        sb->in_fd = sb->out_fd = sb->err_fd = -1;
        int r = -ENOMEM;
        /* Declared before the first goto: cleanup attributes must never see
         * an uninitialised variable. */
        _cleanup_free_ char *chain_id = NULL, *spec_json = NULL;
        _cleanup_strv_ char **lease_labels = NULL, **labels = NULL, **snap_labels = NULL, **argv = NULL;
        int64_t left_s = 0;
        /* A caller that brings no id (the kata runner) gets a fresh one. */
        char idbuf[TR_CTRD_ID_SIZE];
        const char *id = spec->id;
        if (!id || !id[0]) {
                if ((r = tr__ctrd_random_id(idbuf)) < 0) {
                        tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "prepare", "getrandom: %s",
                                     strerror(-r));
                        goto fail;
                }
                id = idbuf;
        }
        if (!(sb->id = strdup(id)) || asprintf(&sb->lease_id, "%s-lease", id) < 0 ||
            asprintf(&sb->snapshot_key, "%s-rootfs", id) < 0 ||
            asprintf(&sb->cgroups_path, "/toolruntime/%s", id) < 0) {
                tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "prepare", "out of memory");
                goto fail;
        }
        /* The expiry: the execution's deadline plus a margin, in wall-clock
         * time since containerd and gc compare it with their clocks. */
        left_s = (tr_exec_deadline_ns(ex) - tr__now_ns()) / TR_NSEC_PER_SEC;
        tr__ctrd_rfc3339((int64_t) time(NULL) + (left_s > 0 ? left_s : 0) + TR_CTRD_EXPIRY_MARGIN_SEC, sb->expires);
        tr__owner self;
        if (tr__owner_self(&self) >= 0) {
                snprintf(sb->owner_pid, sizeof sb->owner_pid, "%d", (int) self.pid);
                snprintf(sb->owner_start, sizeof sb->owner_start, "%" PRIu64, self.start);
                snprintf(sb->owner_pidns, sizeof sb->owner_pidns, "%" PRIu64, self.pidns);
                snprintf(sb->owner_boot, sizeof sb->owner_boot, "%s", self.boot_id);
        }

        int cancel_fd = tr_exec_cancel_fd(ex);
        int64_t t = tr__now_ns();
        r = tr__ctrd_client_connect(cl, tr_exec_deadline_ns(ex), cancel_fd, &sb->conn, ret_err);
        t = tr__ctrd_sb_span(cl, ex, "connect", t);
        if (r < 0)
                goto fail;
        tr__ctrd_ctx cx = { .conn = sb->conn, .deadline_ns = tr_exec_deadline_ns(ex), .cancel_fd = cancel_fd };

        /* The one resolution of this execution (cached by manifest digest
         * in the client); a missing image is pulled here when allowed. */
        tr_error *rerr = NULL;
        r = tr__ctrd_client_resolve(cl, &cx, spec->image, &chain_id, &rerr);
        if (r < 0 && tr_error_code(rerr) == TR_E_IMAGE_NOT_FOUND && cl->pull) {
                r = tr__ctrd_pull_on_demand(cl, sb->conn, spec->image, ex, TAKE_PTR(rerr), ret_err);
                cx.deadline_ns = tr_exec_deadline_ns(ex); /* the pull's time is not the snippet's */
                if (r >= 0)
                        r = tr__ctrd_client_resolve(cl, &cx, spec->image, &chain_id, ret_err);
        }
        t = tr__ctrd_sb_span(cl, ex, "image.resolve", t);
        if (rerr && ret_err)
                *ret_err = TAKE_PTR(rerr);
        tr_error_free(rerr);
        if (r < 0)
                goto fail;

        if (make_labels(sb, spec, false, &lease_labels) < 0 ||
            push_label(&lease_labels, TR_CTRD_GC_EXPIRE_LABEL, sb->expires) < 0 ||
            make_labels(sb, spec, true, &labels) < 0) {
                r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "prepare", "out of memory");
                goto fail;
        }
        /* Each object is marked before its create call: a call cut short by
         * the deadline or a cancel may still have created it, and removal
         * tolerates NOT_FOUND. */
        sb->lease_created = true;
        r = tr__ctrd_lease_create(&cx, sb->lease_id, (const char *const *) lease_labels, ret_err);
        t = tr__ctrd_sb_span(cl, ex, "lease.create", t);
        if (r < 0)
                goto fail;

        tr__ctrd_ctx lcx = cx;
        lcx.lease = sb->lease_id;
        if (make_labels(sb, spec, false, &snap_labels) < 0) {
                r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "prepare", "out of memory");
                goto fail;
        }
        sb->snapshot_created = true;
        r = tr__ctrd_snapshot_prepare(&lcx, cl->snapshotter, sb->snapshot_key, chain_id,
                                      (const char *const *) snap_labels, &sb->mounts, ret_err);
        t = tr__ctrd_sb_span(cl, ex, "snapshot.prepare", t);
        if (r == -ENOENT && ret_err && *ret_err)
                /* The image is known but not unpacked for this snapshotter. */
                tr_error_prefix(*ret_err,
                                "image %s has no unpacked rootfs for snapshotter %s (re-import it with "
                                "`toolruntime image build`)",
                                spec->image, cl->snapshotter);
        if (r < 0)
                goto fail;

        uint32_t uid = 0, gid = 0;
        if (tr__ctrd_parse_user(spec->security.user, &uid, &gid) < 0) {
                r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "prepare",
                                 "the container user must be UID:GID, got '%s'",
                                 spec->security.user ? spec->security.user : "(none)");
                goto fail;
        }
        if ((r = deadline_argv(spec->command, left_s, tr_exec_session(ex), &argv)) < 0) {
                tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "prepare", "out of memory");
                goto fail;
        }
        tr__ctrd_spec_input in = {
                .uid = uid,
                .gid = gid,
                .profile = spec->profile,
                .argv = (const char *const *) argv,
                .env = spec->env,
                .cwd = spec->working_dir,
                .hostname = "sandbox",
                .cgroups_path = sb->cgroups_path,
                .memory_bytes = spec->resources.memory_bytes,
                .cpu_quota_us = spec->resources.cpu_quota_us,
                .pids_max = spec->resources.pids_limit,
                .disk_bytes = spec->resources.disk_bytes,
                .seccomp_path = spec->security.seccomp_profile,
                .gateway_dir = spec->gateway_dir,
        };
        r = tr__ctrd_spec_build(&in, &spec_json, ret_err);
        if (r < 0)
                goto fail;
        tr__ctrd_container ct = {
                .id = sb->id,
                .image = spec->image,
                .runtime = spec->runtime,
                .spec_json = spec_json,
                .snapshotter = cl->snapshotter,
                .snapshot_key = sb->snapshot_key,
                .labels = (const char *const *) labels,
        };
        sb->container_created = true;
        r = tr__ctrd_container_create(&lcx, &ct, ret_err);
        tr__ctrd_sb_span(cl, ex, "container.create", t);
        if (r < 0)
                goto fail;
        *ret = sb;
        return 0;
fail:
        tr__ctrd_sandbox_destroy(sb, ex);
        return r;
}
