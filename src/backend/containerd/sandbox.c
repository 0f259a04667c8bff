/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real ContainerRunner (see sandbox.h).  Every object created in
 * containerd is recorded in the sandbox as soon as the RPC that creates it
 * returns, so that destroy removes exactly what exists, from every error
 * path; every object carries the owner label and an expiry label, and the
 * snapshot is held by a lease with containerd's own gc.expire, so that
 * `toolruntime gc` (and containerd's GC) collect what a killed caller left.
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
#include "backend/containerd/spec.h"
#include "core/plan.h"
#include "util/macros.h"
#include "util/owner.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

#define OUT_CHUNK 65536

struct tr__ctrd_sandbox {
        tr__ctrd_client *cl;
        tr__grpc_conn *conn;
        char *id;
        char *lease_id;
        char *snapshot_key;
        char *cgroups_path;
        char *io_dir;
        int io_lock;               /* see tr__ctrd_exec_dir_create */
        char *fifo[3];             /* stdin, stdout, stderr */
        int in_fd, out_fd, err_fd; /* our ends, open from start to destroy */
        uint32_t pid;              /* the task's init, on the host */
        tr__ctrd_mounts mounts;
        bool lease_created;
        bool snapshot_created;
        bool container_created;
        bool task_created;
        bool task_exited;
        struct tr__ctrd_sandbox *next; /* the reaper's queue */
        char expires[32];
        /* The caller, as labels (util/owner.h); empty when /proc could not
         * say, and gc then goes by the expiry alone. */
        char owner_pid[24], owner_start[24], owner_pidns[24];
        char owner_boot[40];
};

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

static int sys_err(tr_error **ret_err, const char *op, const char *what, const char *path) {
        int e = errno ? errno : EIO;
        tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, op, "%s %s: %s", what, path ? path : "",
                     strerror(e));
        if (ret_err && *ret_err)
                tr_error_set_errno(*ret_err, e);
        return -e;
}

static tr__ctrd_ctx cleanup_ctx(const tr__ctrd_sandbox *sb) {
        /* Cleanup runs to the end after a timeout or a cancel: its own
         * deadline, no cancel fd.  On sb->conn, which destroy replaces once
         * when it finds it lost (cleanup_reconnect). */
        return (tr__ctrd_ctx){ .conn = sb->conn, .deadline_ns = tr__now_ns() + TR_CTRD_CLEANUP_NS, .cancel_fd = -1 };
}

/* --verbose shows where the time of an execution goes: one "span" line per
 * step, with its milliseconds.  Returns the step's end, the next's start. */
static int64_t span(const tr__ctrd_client *cl, tr_exec *ex, const char *step, int64_t t0) {
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

static void log_cleanup_error_cl(const tr__ctrd_client *cl, tr_exec *ex, const char *what, const char *id,
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

#define log_cleanup_error(ex, what, id, err) log_cleanup_error_cl(sb->cl, (ex), (what), (id), (err))

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
        t = span(cl, ex, "connect", t);
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
        t = span(cl, ex, "image.resolve", t);
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
        t = span(cl, ex, "lease.create", t);
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
        t = span(cl, ex, "snapshot.prepare", t);
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
        span(cl, ex, "container.create", t);
        if (r < 0)
                goto fail;
        *ret = sb;
        return 0;
fail:
        tr__ctrd_sandbox_destroy(sb, ex);
        return r;
}

/* ---- run ------------------------------------------------------------ */

int tr__ctrd_exec_dir_create(const char *path) {
        if (mkdir(path, 0700) < 0)
                return -errno;
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || flock(fd, LOCK_SH) < 0) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                (void) rmdir(path);
                return -e;
        }
        return fd;
}

int tr__ctrd_exec_dir_claim(int dirfd, const char *name) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -1;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static int make_fifos(tr__ctrd_sandbox *sb, tr_error **ret_err) {
        static const char *const names[3] = { "stdin", "stdout", "stderr" };
        _cleanup_free_ char *tmpl = NULL;
        /* <state>/<id>.io, 0700: only root (the shim) and we can open the
         * FIFOs, nothing in the sandbox sees them.  The id is random, and
         * mkdir never follows or reuses an existing entry.  The name lets gc
         * match the directory to its container. */
        if (asprintf(&tmpl, "%s/%s.io", sb->cl->state_dir, sb->id) < 0)
                return tmpl = NULL,
                       tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "fifo", "out of memory");
        int lock = tr__ctrd_exec_dir_create(tmpl);
        if (lock < 0)
                return errno = -lock, sys_err(ret_err, "fifo", "mkdir", tmpl);
        sb->io_lock = lock;
        sb->io_dir = TAKE_PTR(tmpl);
        for (size_t i = 0; i < 3; i++) {
                if (asprintf(&sb->fifo[i], "%s/%s", sb->io_dir, names[i]) < 0) {
                        sb->fifo[i] = NULL;
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "fifo", "out of memory"),
                               -ENOMEM;
                }
                if (mkfifo(sb->fifo[i], 0600) < 0)
                        return sys_err(ret_err, "fifo", "mkfifo", sb->fifo[i]);
        }
        return 0;
}

/* Read what is available from an output FIFO; false at EOF. */
static bool pump(int fd, tr_exec *ex, bool is_stdout) {
        char buf[OUT_CHUNK];
        for (int rounds = 0; rounds < 16; rounds++) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR;
                if (n == 0)
                        return false;
                if (is_stdout)
                        tr_exec_append_stdout(ex, buf, (size_t) n);
                else
                        tr_exec_append_stderr(ex, buf, (size_t) n);
                if ((size_t) n < sizeof buf)
                        return true;
        }
        return true;
}

/* Did the cgroup record an OOM kill?  Read before the task is deleted,
 * which removes the cgroup.  cgroup v2 (memory.events) and v1
 * (memory.oom_control, kernel >= 4.13) both keep an oom_kill counter. */
static bool cgroup_oom_killed(const char *cgroups_path) {
        static const char *const fmts[] = {
                "/sys/fs/cgroup%s/memory.events",
                "/sys/fs/cgroup/memory%s/memory.oom_control",
        };
        for (size_t i = 0; i < ARRAY_SIZE(fmts); i++) {
                _cleanup_free_ char *path = NULL, *data = NULL;
                size_t len;
                if (asprintf(&path, fmts[i], cgroups_path) < 0) {
                        path = NULL;
                        continue;
                }
                if (tr__read_file(path, 4096, &data, &len) < 0)
                        continue;
                const char *p = strstr(data, "oom_kill ");
                if (p)
                        return strtoull(p + 9, NULL, 10) > 0;
        }
        return false;
}

/* Our end of the stdin FIFO is closed: tell the shim to close its own,
 * which is what makes the command see EOF.  A task that already exited
 * answers NOT_FOUND / FAILED_PRECONDITION, which is fine. */
/* The snippet's stdin EOF: the shim closes the task's stdin.  Started, not
 * waited for (close_stdin_check reads the answer when it came): the
 * snippet's output and the done lines keep flowing meanwhile. */
static int close_stdin_start(tr__ctrd_sandbox *sb, const tr__ctrd_ctx *cx, tr__grpc_call **ret_call,
                             tr_error **ret_err) {
        return tr__ctrd_task_close_stdin_start(cx, sb->id, ret_call, ret_err);
}

static int close_stdin_check(tr__grpc_call **call, tr_error **ret_err) {
        if (!*call || !tr__grpc_call_done(*call))
                return 0;
        tr_error *err = NULL;
        int r = tr__grpc_call_result(*call, &err);
        tr__grpc_call_free(TAKE_PTR(*call));
        /* Gone already (the task exited): nothing to close. */
        if (r == -ENOENT || r == -EBUSY)
                r = 0;
        if (r < 0 && ret_err)
                *ret_err = TAKE_PTR(err);
        tr_error_free(err);
        return r;
}

typedef enum stop_reason { STOP_NONE, STOP_TIMEOUT, STOP_CANCEL } stop_reason;

int tr__ctrd_sandbox_start(tr__ctrd_sandbox *sb, const tr_containerd_spec *spec, tr_exec *ex, tr_error **ret_err) {
        int cancel_fd = tr_exec_cancel_fd(ex);
        int64_t deadline = tr_exec_deadline_ns(ex);
        tr__ctrd_ctx cx = { .conn = sb->conn, .deadline_ns = deadline, .cancel_fd = cancel_fd };
        int r = make_fifos(sb, ret_err);
        if (r < 0)
                return r;
        /* Our ends are open before the shim opens its: the readers
         * non-blocking (so the shim's O_WRONLY open does not wait for us),
         * stdin read-write so opening it never blocks and the snippet stays
         * in the pipe until the shim reads it. */
        sb->out_fd = open(sb->fifo[1], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        sb->err_fd = open(sb->fifo[2], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        sb->in_fd = open(sb->fifo[0], O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (sb->out_fd < 0 || sb->err_fd < 0 || sb->in_fd < 0)
                return sys_err(ret_err, "fifo", "open", sb->io_dir);

        /* Task creation is not cut short by the deadline or a cancel: a
         * Create abandoned half-way can leave a task behind that containerd
         * finishes creating after our cleanup looked for it.  Both are
         * honoured right after it returns. */
        tr__ctrd_ctx ccx = cleanup_ctx(sb);
        if (ccx.deadline_ns < deadline)
                ccx.deadline_ns = deadline;
        int64_t t = tr__now_ns();
        r = tr__ctrd_task_create(&ccx, sb->id, &sb->mounts, sb->fifo[0], sb->fifo[1], sb->fifo[2], &sb->pid, ret_err);
        t = span(sb->cl, ex, "task.create", t);
        if (r < 0) {
                if (ret_err && *ret_err && tr_error_code(*ret_err) == TR_E_CONTAINER_FAILED) {
                        const char *m = tr_error_message(*ret_err);
                        if (strstr(m, "not found") || strstr(m, "no such file"))
                                tr_error_prefix(*ret_err,
                                                "runtime %s is not available (is its containerd shim installed on "
                                                "containerd's PATH?)",
                                                spec->runtime);
                        else
                                tr_error_prefix(*ret_err, "creating the task with runtime %s", spec->runtime);
                }
                /* A failed Create may still have left a task behind. */
                sb->task_created = true;
                return r;
        }
        sb->task_created = true;
        if (tr_exec_cancelled(ex))
                return tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_CONTAINERD, "task.create",
                                    "execution cancelled before the task started");
        if (tr__now_ns() >= deadline)
                return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_CONTAINERD, "task.create",
                                    "execution timed out before the task started (%" PRId64 " ms)", spec->timeout_ms);

        /* The interpreter starts now and waits for the snippet on stdin. */
        r = tr__ctrd_task_start(&cx, sb->id, NULL, ret_err);
        span(sb->cl, ex, "task.start", t);
        return r;
}

int tr__ctrd_sandbox_run(tr__ctrd_sandbox *sb, const tr_containerd_spec *spec, tr_exec *ex,
                         tr_containerd_run_result *ret, tr_error **ret_err) {
        int cancel_fd = tr_exec_cancel_fd(ex);
        int64_t deadline = tr_exec_deadline_ns(ex);
        tr__ctrd_ctx cx = { .conn = sb->conn, .deadline_ns = deadline, .cancel_fd = cancel_fd };
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *wait_call = NULL, *close_call = NULL;
        /* Ours from here: closing them is part of the run (stdin's EOF). */
        _cleanup_close_ int in_fd = TAKE_FD(sb->in_fd), out_fd = TAKE_FD(sb->out_fd), err_fd = TAKE_FD(sb->err_fd);
        /* The Wait call outlives the execution's deadline by the kill grace,
         * so that a kill at the deadline can still be observed.  Started
         * after the task (in start): Wait on a task that already exited
         * answers at once, so no exit is missed. */
        tr__ctrd_ctx wcx = cx;
        wcx.deadline_ns = deadline + TR_CTRD_KILL_GRACE_NS + TR_CTRD_CLEANUP_NS;
        int r = tr__ctrd_task_wait_start(&wcx, sb->id, &wait_call, ret_err);
        if (r < 0)
                return r;
        int64_t t0 = tr__now_ns();

        const uint8_t *in_data = spec->stdin_data;
        size_t in_left = spec->stdin_data ? spec->stdin_len : 0;
        if (in_left == 0) {
                tr__closep(&in_fd), in_fd = -1;
                r = close_stdin_start(sb, &cx, &close_call, ret_err);
                if (r < 0)
                        return r;
        }
        stop_reason stop = STOP_NONE;
        int64_t kill_deadline = 0, drain_deadline = 0;
        bool exited = false, done = false;
        uint32_t status = 0;
        int64_t t_exit = 0;
        int done_fd = tr__exec_done_fd(ex);

        for (;;) {
                /* The runner's done lines (plan.h): the output is all in and
                 * the status known; the interpreter is leaving by itself,
                 * and destroy kills what is left, so the exit's round trip
                 * through the shim and containerd is not waited for. */
                int st = 0;
                if (!exited && stop == STOP_NONE && tr__exec_done(ex, &st)) {
                        done = true;
                        status = (uint32_t) st;
                        t_exit = tr__now_ns();
                        break;
                }
                if (!exited && tr__grpc_call_done(wait_call)) {
                        exited = true;
                        t_exit = tr__now_ns();
                        drain_deadline = t_exit + TR_CTRD_DRAIN_NS;
                        r = tr__ctrd_task_wait_result(wait_call, &status, ret_err);
                        if (r < 0)
                                return r;
                }
                if (exited && (out_fd < 0 && err_fd < 0))
                        break;
                int64_t now = tr__now_ns();
                if (exited && now >= drain_deadline)
                        break;
                if (!exited && stop == STOP_NONE && now >= deadline)
                        stop = STOP_TIMEOUT;
                if (!exited && stop != STOP_NONE && kill_deadline == 0) {
                        /* SIGKILL to every process of the container; the Wait
                         * call then completes with the exit. */
                        tr__ctrd_ctx kcx = cleanup_ctx(sb);
                        tr_error *kerr = NULL;
                        if (tr__ctrd_task_kill(&kcx, sb->id, SIGKILL, true, &kerr) < 0)
                                log_cleanup_error(ex, "task.kill", sb->id, kerr);
                        kill_deadline = tr__now_ns() + TR_CTRD_KILL_GRACE_NS;
                        continue;
                }
                if (!exited && kill_deadline && now >= kill_deadline) {
                        tr_error_set(ret_err, TR_E_CONTAINER_FAILED, TR_BACKEND_CONTAINERD, "task.kill",
                                     "the task did not exit after SIGKILL");
                        return -ETIMEDOUT;
                }
                int64_t until = exited ? drain_deadline : (kill_deadline ? kill_deadline : deadline);

                struct pollfd pfd[5];
                size_t n = 0;
                int i_out = -1, i_err = -1, i_in = -1, i_cancel = -1;
                if (done_fd >= 0 && !exited && stop == STOP_NONE)
                        pfd[n++] = (struct pollfd){ .fd = done_fd, .events = POLLIN };
                if (out_fd >= 0)
                        i_out = (int) n, pfd[n++] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
                if (err_fd >= 0)
                        i_err = (int) n, pfd[n++] = (struct pollfd){ .fd = err_fd, .events = POLLIN };
                if (in_fd >= 0)
                        i_in = (int) n, pfd[n++] = (struct pollfd){ .fd = in_fd, .events = POLLOUT };
                if (cancel_fd >= 0 && stop == STOP_NONE)
                        i_cancel = (int) n, pfd[n++] = (struct pollfd){ .fd = cancel_fd, .events = POLLIN };
                r = tr__grpc_conn_poll(sb->conn, pfd, n, tr__poll_timeout_ms(until), ret_err);
                if (r < 0)
                        return r;
                if (i_out >= 0 && pfd[i_out].revents && !pump(out_fd, ex, true))
                        tr__closep(&out_fd), out_fd = -1;
                if (i_err >= 0 && pfd[i_err].revents && !pump(err_fd, ex, false))
                        tr__closep(&err_fd), err_fd = -1;
                if (i_in >= 0 && pfd[i_in].revents) {
                        ssize_t w = write(in_fd, in_data, in_left > 65536 ? 65536 : in_left);
                        if (w > 0) {
                                in_data += w;
                                in_left -= (size_t) w;
                        }
                        /* Done, or the reader is gone: closing is the EOF the
                         * runner waits for. */
                        if (in_left == 0 || (w < 0 && errno != EAGAIN && errno != EINTR)) {
                                tr__closep(&in_fd), in_fd = -1;
                                r = close_stdin_start(sb, &cx, &close_call, ret_err);
                                if (r < 0)
                                        return r;
                        }
                }
                if ((r = close_stdin_check(&close_call, ret_err)) < 0)
                        return r;
                if (i_cancel >= 0 && (pfd[i_cancel].revents & POLLIN))
                        stop = STOP_CANCEL;
        }

        /* Before the task is deleted: deleting it removes the cgroup. */
        span(sb->cl, ex, "run", t0);
        bool oom = cgroup_oom_killed(sb->cgroups_path);
        /* After an exit, every process of the container is gone (its pid
         * namespace died with its init): destroy needs no kill, only the
         * deletes.  After the done lines it kills what is left. */
        sb->task_exited = !done;

        if (stop == STOP_TIMEOUT)
                return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_CONTAINERD, "task.wait",
                                    "execution timed out after %" PRId64 " ms; the task was killed", spec->timeout_ms),
                       -ETIMEDOUT;
        if (stop == STOP_CANCEL)
                return tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_CONTAINERD, "task.wait",
                                    "execution cancelled; the task was killed"),
                       -ECANCELED;
        *ret = (tr_containerd_run_result){
                .exit_code = (int) status,
                .duration_us = (t_exit - t0) / 1000,
                .oom_killed = oom,
        };
        return 0;
}

/* ---- sessions ------------------------------------------------------------ */

int tr__ctrd_sandbox_session_io(tr__ctrd_sandbox *sb, int *ret_in, int *ret_out, int *ret_err) {
        if (sb->in_fd < 0 || sb->out_fd < 0 || sb->err_fd < 0)
                return -EBADF;
        *ret_in = sb->in_fd;
        *ret_out = sb->out_fd;
        *ret_err = sb->err_fd;
        return 0;
}

static bool conn_lost(const tr_error *err);
static bool cleanup_reconnect(tr__ctrd_sandbox *sb, tr_exec *ex, const tr_error *err, bool *reconnected);

int tr__ctrd_sandbox_signal(tr__ctrd_sandbox *sb, int sig, tr_error **ret_err) {
        /* To the task's init (all = false): timeout(1), which passes it to
         * the runner (deadline_argv's --foreground).  The connection idled
         * since the last call and may have been lost: reconnect once. */
        bool reconnected = false;
        tr_error *err = NULL;
        int r;
        do {
                tr_error_free(TAKE_PTR(err));
                tr__ctrd_ctx cx = cleanup_ctx(sb);
                r = tr__ctrd_task_kill(&cx, sb->id, sig, false, &err);
        } while (r < 0 && cleanup_reconnect(sb, NULL, err, &reconnected));
        if (r < 0 && ret_err)
                *ret_err = TAKE_PTR(err);
        tr_error_free(err);
        return r;
}

bool tr__ctrd_sandbox_oom(tr__ctrd_sandbox *sb) {
        return cgroup_oom_killed(sb->cgroups_path);
}

uint32_t tr__ctrd_sandbox_pid(const tr__ctrd_sandbox *sb) {
        return sb->pid;
}

/* ---- destroy ------------------------------------------------------------ */

/* Did `err` come from the connection rather than from the RPC: the socket
 * broke (EPIPE, reset), the HTTP/2 session failed (protocol error), or the
 * daemon answered UNAVAILABLE?  A fresh connection may then succeed. */
static bool conn_lost(const tr_error *err) {
        if (!err)
                return false;
        if (tr_error_code(err) == TR_E_DAEMON_UNAVAILABLE)
                return true;
        int e = tr_error_errno(err);
        return e == EPIPE || e == ECONNRESET || e == ECONNABORTED || e == ENOTCONN || e == EPROTO;
}

/* Cleanup must happen even when the run failed because its connection
 * broke: once per destroy, replace a lost connection with a fresh one (not
 * cancellable).  A daemon that is restarting has no socket for a moment,
 * so connecting is retried for up to TR_CTRD_RESTART_WAIT_NS; without
 * that, everything of a sandbox in flight during a containerd restart
 * (task, shim, container, snapshot, lease) stayed behind.  True when the
 * caller should retry the RPC that failed with `err`. */
int64_t tr__ctrd_restart_wait_ns = TR_CTRD_RESTART_WAIT_NS;

static bool cleanup_reconnect(tr__ctrd_sandbox *sb, tr_exec *ex, const tr_error *err, bool *reconnected) {
        if (*reconnected || !conn_lost(err))
                return false;
        *reconnected = true;
        int64_t give_up = tr__now_ns() + tr__ctrd_restart_wait_ns;
        for (int64_t pause_ms = 50;; pause_ms = pause_ms < 800 ? pause_ms * 2 : 1000) {
                tr__grpc_conn *c = NULL;
                tr_error *cerr = NULL;
                if (tr__ctrd_client_connect(sb->cl, tr__now_ns() + TR_CTRD_CLEANUP_NS, -1, &c, &cerr) >= 0) {
                        tr__grpc_conn_free(sb->conn);
                        sb->conn = c;
                        return true;
                }
                bool again = (tr_error_code(cerr) == TR_E_DAEMON_UNAVAILABLE ||
                              tr_error_code(cerr) == TR_E_CONTAINERD_NOT_AVAILABLE) &&
                             tr__now_ns() + pause_ms * 1000000LL < give_up;
                if (!again) {
                        log_cleanup_error(ex, "reconnect", sb->id, cerr);
                        return false;
                }
                tr_error_free(cerr);
                struct timespec ts = { .tv_sec = pause_ms / 1000, .tv_nsec = (pause_ms % 1000) * 1000000L };
                nanosleep(&ts, NULL);
        }
}

/* After an error the task may still run: kill, give it a moment to exit,
 * delete (retrying while it is stopping).  Deleting it removes its cgroup
 * and rootfs mounts before the container and snapshot go. */
static void teardown_task(tr__ctrd_sandbox *sb, tr_exec *ex, bool *reconnected) {
        tr_error *err = NULL;
        int r;
        tr__ctrd_ctx cx;
        if (!sb->task_exited) {
                do {
                        tr_error_free(TAKE_PTR(err));
                        cx = cleanup_ctx(sb);
                        r = tr__ctrd_task_kill(&cx, sb->id, SIGKILL, true, &err);
                } while (r < 0 && cleanup_reconnect(sb, ex, err, reconnected));
                tr_error_free(TAKE_PTR(err));
        }
        int64_t until = tr__now_ns() + TR_CTRD_KILL_GRACE_NS;
        long pause_ms = 2;
        for (;;) {
                tr_error_free(TAKE_PTR(err));
                cx = cleanup_ctx(sb);
                r = tr__ctrd_task_delete(&cx, sb->id, NULL, &err);
                if (r < 0 && cleanup_reconnect(sb, ex, err, reconnected))
                        continue;
                /* A connection lost again after the reconnect will not come
                 * back within the grace. */
                if (r >= 0 || r == -ENOENT || conn_lost(err) || tr__now_ns() >= until)
                        break;
                /* A killed task is usually gone within a few ms: look again
                 * soon, then less often. */
                struct timespec ts = { 0, pause_ms * 1000 * 1000 };
                nanosleep(&ts, NULL);
                pause_ms = pause_ms * 2 > 50 ? 50 : pause_ms * 2;
        }
        if (err && tr_error_errno(err) != ENOENT) {
                log_cleanup_error(ex, "task.delete", sb->id, TAKE_PTR(err));
                /* Deleting the container under a live task would orphan the
                 * task (containerd can then neither kill nor delete it), and
                 * its rootfs is still mounted: leave container and snapshot
                 * to gc, which retries once their expiry passed. */
                sb->container_created = false;
                sb->snapshot_created = false;
        }
        tr_error_free(err);
}

/* The objects a sandbox may hold besides its task, in teardown order (the
 * container before the snapshot it uses, the lease last): one loop removes
 * them all, each retried once on a fresh connection when the old one was
 * lost, NOT_FOUND meaning already gone. */
static int rm_container(tr__ctrd_sandbox *sb, const tr__ctrd_ctx *cx, tr_error **err) {
        return tr__ctrd_container_delete(cx, sb->id, err);
}
static int rm_snapshot(tr__ctrd_sandbox *sb, const tr__ctrd_ctx *cx, tr_error **err) {
        return tr__ctrd_snapshot_remove(cx, sb->cl->snapshotter, sb->snapshot_key, err);
}
static int rm_lease(tr__ctrd_sandbox *sb, const tr__ctrd_ctx *cx, tr_error **err) {
        return tr__ctrd_lease_delete(cx, sb->lease_id, false, err);
}

static const struct {
        const char *what;
        size_t created; /* offsetof the sandbox's "was created" flag */
        int (*rm)(tr__ctrd_sandbox *sb, const tr__ctrd_ctx *cx, tr_error **err);
} teardown[] = {
        { "container.delete", offsetof(tr__ctrd_sandbox, container_created), rm_container },
        { "snapshot.remove", offsetof(tr__ctrd_sandbox, snapshot_created), rm_snapshot },
        { "lease.delete", offsetof(tr__ctrd_sandbox, lease_created), rm_lease },
};

static void teardown_objects(tr__ctrd_sandbox *sb, tr_exec *ex, bool *reconnected) {
        for (size_t i = 0; i < ARRAY_SIZE(teardown); i++) {
                if (!*(bool *) ((char *) sb + teardown[i].created))
                        continue;
                tr_error *err = NULL;
                int r;
                do {
                        tr_error_free(TAKE_PTR(err));
                        tr__ctrd_ctx cx = cleanup_ctx(sb);
                        r = teardown[i].rm(sb, &cx, &err);
                } while (r < 0 && cleanup_reconnect(sb, ex, err, reconnected));
                if (r < 0 && tr_error_errno(err) != ENOENT)
                        log_cleanup_error(ex, teardown[i].what, sb->id, TAKE_PTR(err));
                tr_error_free(err);
        }
}

void tr__ctrd_sandbox_destroy(tr__ctrd_sandbox *sb, tr_exec *ex) {
        if (!sb)
                return;
        int64_t t0 = tr__now_ns();
        if (sb->conn) {
                bool reconnected = false;
                if (sb->task_created)
                        teardown_task(sb, ex, &reconnected);
                teardown_objects(sb, ex, &reconnected);
        }
        if (sb->io_dir)
                (void) tr__rm_rf(sb->io_dir);
        if (sb->io_lock >= 0)
                close(sb->io_lock);
        tr__closep(&sb->in_fd);
        tr__closep(&sb->out_fd);
        tr__closep(&sb->err_fd);
        span(sb->cl, ex, "destroy", t0);
        tr__ctrd_client_release(sb->cl, sb->conn);
        tr__ctrd_mounts_done(&sb->mounts);
        for (size_t i = 0; i < 3; i++)
                free(sb->fifo[i]);
        free(sb->io_dir);
        free(sb->id);
        free(sb->lease_id);
        free(sb->snapshot_key);
        free(sb->cgroups_path);
        free(sb);
}

/* ---- the runner ops ------------------------------------------------------------ */

/* ---- the reaper ------------------------------------------------------------ */

/* Deleting the task, container, snapshot and lease takes about as long as
 * starting the snippet (the shim exits, runc deletes, overlay unmounts), and
 * nothing of the result depends on it once the task has exited.  So a
 * finished sandbox goes to the backend's reaper thread, and the result goes
 * back to the caller right away.  The reaper is joined (its queue drained)
 * when the backend is freed, so nothing outlives the backend; a sandbox
 * whose task did not exit, or a full queue, is destroyed inline. */
static void *reaper_main(void *p) {
        tr__ctrd_client *cl = p;
        pthread_mutex_lock(&cl->reaper_lock);
        for (;;) {
                while (!cl->reaper_queue && !cl->reaper_stop)
                        pthread_cond_wait(&cl->reaper_cond, &cl->reaper_lock);
                tr__ctrd_sandbox *sb = cl->reaper_queue;
                if (!sb)
                        break; /* stopping, queue drained */
                cl->reaper_queue = sb->next;
                cl->reaper_len--;
                pthread_mutex_unlock(&cl->reaper_lock);
                tr__ctrd_sandbox_destroy(sb, NULL);
                pthread_mutex_lock(&cl->reaper_lock);
        }
        pthread_mutex_unlock(&cl->reaper_lock);
        return NULL;
}

void tr__ctrd_sandbox_reap(tr__ctrd_client *cl, tr__ctrd_sandbox *sb, tr_exec *ex) {
        bool queued = false;
        if (sb->task_exited) {
                pthread_mutex_lock(&cl->reaper_lock);
                if (!cl->reaper_running && !cl->reaper_stop &&
                    pthread_create(&cl->reaper_thread, NULL, reaper_main, cl) == 0)
                        cl->reaper_running = true;
                if (cl->reaper_running && !cl->reaper_stop && cl->reaper_len < TR_CTRD_REAPER_MAX) {
                        /* FIFO order is not needed; push front. */
                        sb->next = cl->reaper_queue;
                        cl->reaper_queue = sb;
                        cl->reaper_len++;
                        queued = true;
                        pthread_cond_signal(&cl->reaper_cond);
                }
                pthread_mutex_unlock(&cl->reaper_lock);
        }
        if (!queued)
                tr__ctrd_sandbox_destroy(sb, ex);
}

void tr__ctrd_reaper_stop(tr__ctrd_client *cl) {
        pthread_mutex_lock(&cl->reaper_lock);
        cl->reaper_stop = true;
        bool running = cl->reaper_running;
        pthread_cond_signal(&cl->reaper_cond);
        pthread_mutex_unlock(&cl->reaper_lock);
        if (running)
                pthread_join(cl->reaper_thread, NULL);
        cl->reaper_running = false;
}

static int real_run(void *self, const tr_containerd_spec *spec, tr_exec *ex, tr_containerd_run_result *ret,
                    tr_error **ret_err) {
        tr__ctrd_client *cl = self;
        tr__ctrd_sandbox *sb = NULL;
        int r = tr__ctrd_sandbox_prepare(cl, spec, ex, &sb, ret_err);
        if (r < 0)
                return r;
        r = tr__ctrd_sandbox_start(sb, spec, ex, ret_err);
        if (r >= 0)
                r = tr__ctrd_sandbox_run(sb, spec, ex, ret, ret_err);
        tr__ctrd_sandbox_reap(cl, sb, ex);
        return r;
}

const tr_containerd_runner_ops tr__ctrd_real_runner = {
        .run = real_run,
        .free = NULL,
};
