/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real ContainerRunner's run (sandbox_int.h): the task's stdio FIFOs,
 * its start, feeding the snippet on stdin and pumping its output until the
 * done lines, its exit, the deadline or a cancel; and the session seam
 * (the pipes, signals, OOM).
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
                return errno = -lock, tr__ctrd_sb_sys_err(ret_err, "fifo", "mkdir", tmpl);
        sb->io_lock = lock;
        sb->io_dir = TAKE_PTR(tmpl);
        for (size_t i = 0; i < 3; i++) {
                if (asprintf(&sb->fifo[i], "%s/%s", sb->io_dir, names[i]) < 0) {
                        sb->fifo[i] = NULL;
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "fifo", "out of memory"),
                               -ENOMEM;
                }
                if (mkfifo(sb->fifo[i], 0600) < 0)
                        return tr__ctrd_sb_sys_err(ret_err, "fifo", "mkfifo", sb->fifo[i]);
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

/* Our end of the stdin FIFO is closed: the CloseIO started in the run
 * (tr__ctrd_task_close_stdin_start) tells the shim to close its own, which
 * is what makes the command see EOF.  Its answer is read here once it came,
 * so the output and the done lines keep flowing meanwhile; a task that
 * already exited answers NOT_FOUND / FAILED_PRECONDITION, which is fine. */
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
                return tr__ctrd_sb_sys_err(ret_err, "fifo", "open", sb->io_dir);

        /* Task creation is not cut short by the deadline or a cancel: a
         * Create abandoned half-way can leave a task behind that containerd
         * finishes creating after our cleanup looked for it.  Both are
         * honoured right after it returns. */
        tr__ctrd_ctx ccx = tr__ctrd_sb_cleanup_ctx(sb);
        if (ccx.deadline_ns < deadline)
                ccx.deadline_ns = deadline;
        int64_t t = tr__now_ns();
        r = tr__ctrd_task_create(&ccx, sb->id, &sb->mounts, sb->fifo[0], sb->fifo[1], sb->fifo[2], &sb->pid, ret_err);
        t = tr__ctrd_sb_span(sb->cl, ex, "task.create", t);
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
        tr__ctrd_sb_span(sb->cl, ex, "task.start", t);
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
                r = tr__ctrd_task_close_stdin_start(&cx, sb->id, &close_call, ret_err);
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
                        tr__ctrd_ctx kcx = tr__ctrd_sb_cleanup_ctx(sb);
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
                                r = tr__ctrd_task_close_stdin_start(&cx, sb->id, &close_call, ret_err);
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
        tr__ctrd_sb_span(sb->cl, ex, "run", t0);
        bool oom = cgroup_oom_killed(sb->cgroups_path);
        /* After an exit, every process of the container is gone (its pid
         * namespace died with its init): destroy needs no kill, only the
         * deletes.  After the done lines it kills what is left. */
        sb->task_exited = !done;
        sb->ended_at_done = done;

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

int tr__ctrd_sandbox_signal(tr__ctrd_sandbox *sb, int sig, tr_error **ret_err) {
        /* To the task's init (all = false): timeout(1), which passes it to
         * the runner (deadline_argv's --foreground).  The connection idled
         * since the last call and may have been lost: reconnect once. */
        bool reconnected = false;
        tr_error *err = NULL;
        int r;
        do {
                tr_error_free(TAKE_PTR(err));
                tr__ctrd_ctx cx = tr__ctrd_sb_cleanup_ctx(sb);
                r = tr__ctrd_task_kill(&cx, sb->id, sig, false, &err);
        } while (r < 0 && tr__ctrd_sb_cleanup_reconnect(sb, NULL, err, &reconnected));
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
