/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The unsafe_host backend: runs the snippet as a child process on the host.
 * There is NO isolation — development only, denied by default for the
 * standard and hardened profiles.  What it does enforce:
 *
 *  - the timeout and cancellation, over the whole process tree: a
 *    supervisor process (a child subreaper) owns the snippet, so even
 *    descendants that leave the process group with setsid() are reparented
 *    to it and killed and reaped; nothing outlives an execution;
 *  - output caps (in the core);
 *  - RLIMIT_AS for memory, RLIMIT_NPROC for pids (only when not running as
 *    root: root ignores it, so then it is not reported), RLIMIT_FSIZE as a
 *    per-file guard for disk (not a disk quota, so never reported).
 *
 * After fork() the supervisor and the snippet's child run in a copy of a
 * possibly multithreaded process, so until execve() they use raw system
 * calls only: every string and array is prepared before fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/unsafe_host/internal.h"
#include "core/runner.h"
#include "core/plan.h"
#include "toolruntime.h"
#include "tr-config.h"
#include "util/config.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

#define UH_REAP_GRACE_NS (5 * TR_NSEC_PER_SEC)

/* Fixed fd numbers in the snippet's process. */
enum { CHILD_GATEWAY_FD = 3 };

typedef struct spawn_plan {
        const char *path;
        char *const *argv;
        char *const *envp;
        const char *cwd;
        struct rlimit as, nproc, fsize;
        bool set_as, set_nproc, set_fsize;
        int in_fd, out_fd, err_fd, gw_fd; /* the child's ends */
        int status_fd, ctl_fd;            /* the supervisor's ends */
        pid_t parent;
} spawn_plan;

static void raw_write_str(int fd, const char *s) {
        ssize_t w = write(fd, s, strlen(s));
        (void) w;
}

/* Move fd to `target`, keeping it open across the later close_range. */
static int move_fd(int fd, int target) {
        if (fd == target) {
                int fl = fcntl(fd, F_GETFD);
                return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
        }
        return dup2(fd, target) < 0 ? -1 : 0;
}

static _Noreturn void run_snippet(const spawn_plan *p) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* exec keeps ignored signals ignored; the snippet gets defaults. */
        signal(SIGPIPE, SIG_DFL);
        /* A process group of its own, so one kill reaches every descendant
         * that did not leave it. */
        setpgid(0, 0);
        /* Stdio first through high numbers, so no dup2 clobbers a source. */
        int in = fcntl(p->in_fd, F_DUPFD_CLOEXEC, 10), out = fcntl(p->out_fd, F_DUPFD_CLOEXEC, 10),
            err = fcntl(p->err_fd, F_DUPFD_CLOEXEC, 10), gw = fcntl(p->gw_fd, F_DUPFD_CLOEXEC, 10);
        if (in < 0 || out < 0 || err < 0 || gw < 0 || move_fd(in, 0) < 0 || move_fd(out, 1) < 0 ||
            move_fd(err, 2) < 0 || move_fd(gw, CHILD_GATEWAY_FD) < 0)
                _exit(127);
        /* Only stdio and the gateway: no other host fd leaks into the snippet. */
        syscall(SYS_close_range, CHILD_GATEWAY_FD + 1, ~0U, 0);
        if (chdir(p->cwd) < 0) {
                raw_write_str(2, "toolruntime: cannot enter the work directory\n");
                _exit(127);
        }
        if ((p->set_as && setrlimit(RLIMIT_AS, &p->as) < 0) ||
            (p->set_nproc && setrlimit(RLIMIT_NPROC, &p->nproc) < 0) ||
            (p->set_fsize && setrlimit(RLIMIT_FSIZE, &p->fsize) < 0)) {
                raw_write_str(2, "toolruntime: setrlimit failed\n");
                _exit(127);
        }
        struct rlimit nocore = { 0, 0 };
        setrlimit(RLIMIT_CORE, &nocore);
        execve(p->path, p->argv, p->envp);
        raw_write_str(2, "toolruntime: cannot execute the interpreter\n");
        _exit(127);
}

/* Kill every child of the supervisor (the snippet's process group and
 * anything reparented to us) and reap them all.  Raw syscalls only. */
static void kill_and_reap_all(pid_t pgid) {
        char path[64] = "/proc/self/task/";
        char num[16];
        pid_t self = getpid();
        int n = 0;
        for (pid_t v = self; v > 0; v /= 10)
                num[n++] = (char) ('0' + v % 10);
        size_t len = strlen(path);
        while (n > 0)
                path[len++] = num[--n];
        memcpy(path + len, "/children", sizeof("/children"));

        kill(-pgid, SIGKILL);
        for (;;) {
                /* Children listed now; reparented orphans show up here too. */
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                        char buf[4096];
                        ssize_t r = read(fd, buf, sizeof(buf) - 1);
                        close(fd);
                        pid_t pid = 0;
                        for (ssize_t i = 0; i < r; i++) {
                                if (buf[i] >= '0' && buf[i] <= '9') {
                                        pid = pid * 10 + (buf[i] - '0');
                                } else if (pid > 0) {
                                        kill(pid, SIGKILL);
                                        kill(-pid, SIGKILL);
                                        pid = 0;
                                }
                        }
                }
                kill(-pgid, SIGKILL);
                int st;
                pid_t w = waitpid(-1, &st, 0);
                if (w < 0 && errno == ECHILD)
                        return;
        }
}

static _Noreturn void supervise(const spawn_plan *p) {
        /* SIGCHLD and our death signal come through the signalfd below.
         * Blocked before the death signal is armed, so that it cannot kill
         * us by its default action. */
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigaddset(&chld, SIGTERM);
        sigprocmask(SIG_BLOCK, &chld, NULL);
        /* If the host process dies (even by SIGKILL), we get SIGTERM and
         * tear the snippet's whole tree down: a death signal that killed
         * us instead would leave the tree running, reparented to init.
         * (The host's death also closes ctl_fd's peer, which ends the loop
         * the same way.) */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != p->parent)
                _exit(1);
        /* Orphans of the snippet (double forks, setsid) come to us, not to
         * the host's init, so we can kill and reap them. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
                _exit(1);

        pid_t child = fork();
        if (child < 0)
                _exit(1);
        if (child == 0)
                run_snippet(p);
        setpgid(child, child);

        /* Keep only our two control fds.  Any other copy held here (the
         * parent's end of stdin, the output pipes) would keep the snippet
         * from seeing EOF and the host from seeing the tree end.  Numbers
         * are moved through high slots because the host may have had 0-2
         * closed, making the originals arbitrary. */
        int st_hi = fcntl(p->status_fd, F_DUPFD_CLOEXEC, 100), ctl_hi = fcntl(p->ctl_fd, F_DUPFD_CLOEXEC, 100);
        if (st_hi < 0 || ctl_hi < 0 || dup2(st_hi, 0) < 0 || dup2(ctl_hi, 1) < 0) {
                kill_and_reap_all(child);
                _exit(1);
        }
        syscall(SYS_close_range, 2, ~0U, 0);
        const int status_fd = 0, ctl_fd = 1;

        int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                kill_and_reap_all(child);
                _exit(1);
        }
        int status = -1;
        bool done = false;
        for (;;) {
                struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN }, { .fd = ctl_fd, .events = POLLIN } };
                if (poll(pfd, 2, -1) < 0 && errno != EINTR)
                        break;
                bool host_gone = false;
                if (pfd[0].revents) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof(si)) > 0)
                                host_gone |= si.ssi_signo == SIGTERM;
                        int st;
                        pid_t w;
                        while ((w = waitpid(-1, &st, WNOHANG)) > 0)
                                if (w == child) {
                                        status = st;
                                        done = true;
                                }
                        if (done || host_gone)
                                break;
                }
                /* The host asked us to stop (timeout, cancel) or went away. */
                if (pfd[1].revents)
                        break;
        }
        kill_and_reap_all(child);
        if (done) {
                ssize_t w = write(status_fd, &status, sizeof(status));
                (void) w;
        }
        _exit(0);
}

static int uh_spawn(const spawn_plan *plan, pid_t *ret_pid) {
        pid_t pid = fork();
        if (pid < 0)
                return tr__negerrno();
        if (pid == 0)
                supervise(plan);
        *ret_pid = pid;
        return 0;
}

static tr_backend_kind uh_kind(void *self) {
        return UH_KIND;
}

int tr__uh_fail(tr_error **ret_err, const char *op, int r, const char *what) {
        int e = tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, op, "%s: %s", what, strerror(-r));
        if (ret_err)
                tr_error_set_errno(*ret_err, r);
        return e;
}

static void uh_fds_close(uh_fds *f) {
        int *all = (int *) f;
        for (size_t i = 0; i < sizeof(*f) / sizeof(int); i++)
                if (all[i] >= 0) {
                        close(all[i]);
                        all[i] = -1;
                }
}

static void close_slot(int *fd) {
        if (*fd >= 0) {
                close(*fd);
                *fd = -1;
        }
}

static int build_env(const uh *b, const char *workdir, char ***ret_env) {
        _cleanup_strv_ char **env = NULL;
        for (const char *const *e = tr__runner_base_env(); *e; e++) {
                if (strncmp(*e, "HOME=", 5) == 0)
                        continue;
                /* The SDK directory also holds `trtool`, for sh snippets. */
                if (strncmp(*e, "PATH=", 5) == 0) {
                        if (tr__strv_pushf(&env, "PATH=%s:%s", b->sdk_path, *e + 5) < 0)
                                return -ENOMEM;
                        continue;
                }
                if (tr__strv_push(&env, *e) < 0)
                        return -ENOMEM;
        }
        if (tr__strv_pushf(&env, "HOME=%s", workdir) < 0 || tr__strv_pushf(&env, "TMPDIR=%s", workdir) < 0 ||
            tr__strv_pushf(&env, "PYTHONPATH=%s", b->sdk_path) < 0 ||
            tr__strv_pushf(&env, "%s=fd:%d", TR_GATEWAY_ENV, CHILD_GATEWAY_FD) < 0)
                return -ENOMEM;
        *ret_env = TAKE_PTR(env);
        return 0;
}

/* Pump code in and output out until the supervisor reports or the deadline /
 * cancel fires; returns 1 when the snippet exited (status in *ret_status). */
static int uh_loop(tr_exec *ex, uh_fds *f, const char *code, size_t code_len, pid_t sup, int *ret_status,
                   bool *ret_timed_out, bool *ret_cancelled) {
        size_t written = 0;
        int status = 0;
        bool got_status = false, killing = false;
        int64_t kill_deadline = 0;
        int cancel_fd = tr_exec_cancel_fd(ex);
        char buf[65536];

        if (code_len == 0)
                close_slot(&f->in[1]);
        while (f->out[0] >= 0 || f->err[0] >= 0 || f->status[0] >= 0) {
                struct pollfd pfd[5];
                int n = 0, i_in = -1, i_out = -1, i_err = -1, i_st = -1, i_cancel = -1;
                if (f->in[1] >= 0)
                        pfd[i_in = n++] = (struct pollfd){ .fd = f->in[1], .events = POLLOUT };
                if (f->out[0] >= 0)
                        pfd[i_out = n++] = (struct pollfd){ .fd = f->out[0], .events = POLLIN };
                if (f->err[0] >= 0)
                        pfd[i_err = n++] = (struct pollfd){ .fd = f->err[0], .events = POLLIN };
                if (f->status[0] >= 0)
                        pfd[i_st = n++] = (struct pollfd){ .fd = f->status[0], .events = POLLIN };
                if (cancel_fd >= 0 && !killing)
                        pfd[i_cancel = n++] = (struct pollfd){ .fd = cancel_fd, .events = POLLIN };
                int64_t until = killing ? kill_deadline : tr_exec_deadline_ns(ex);
                int pr = poll(pfd, (nfds_t) n, tr__poll_timeout_ms(until));
                if (pr < 0 && errno != EINTR)
                        return tr__negerrno();
                if (pr == 0 || (i_cancel >= 0 && pfd[i_cancel].revents)) {
                        if (killing) {
                                /* The supervisor did not finish in time: last resort. */
                                kill(sup, SIGKILL);
                                break;
                        }
                        if (pr == 0)
                                *ret_timed_out = true;
                        else
                                *ret_cancelled = true;
                        killing = true;
                        kill_deadline = tr__now_ns() + UH_REAP_GRACE_NS;
                        /* The supervisor sees EOF and kills the whole tree. */
                        close_slot(&f->ctl[1]);
                        close_slot(&f->in[1]);
                        continue;
                }
                if (i_in >= 0 && pfd[i_in].revents) {
                        ssize_t w = send(f->in[1], code + written, code_len - written, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (w > 0)
                                written += (size_t) w;
                        /* EPIPE: the snippet closed stdin early, which is its right. */
                        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == code_len)
                                close_slot(&f->in[1]);
                }
                int *streams[2] = { i_out >= 0 ? &f->out[0] : NULL, i_err >= 0 ? &f->err[0] : NULL };
                int idx[2] = { i_out, i_err };
                for (int s = 0; s < 2; s++) {
                        if (!streams[s] || !pfd[idx[s]].revents)
                                continue;
                        ssize_t r = read(*streams[s], buf, sizeof(buf));
                        if (r > 0) {
                                (s == 0 ? tr_exec_append_stdout : tr_exec_append_stderr)(ex, buf, (size_t) r);
                        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                                close_slot(streams[s]);
                        }
                }
                if (i_st >= 0 && pfd[i_st].revents) {
                        ssize_t r = read(f->status[0], &status, sizeof(status));
                        if (r == (ssize_t) sizeof(status))
                                got_status = true;
                        if (r >= 0 || (errno != EAGAIN && errno != EINTR))
                                close_slot(&f->status[0]);
                }
        }
        *ret_status = status;
        return got_status && !killing ? 1 : 0;
}

static void uh_destroy(void *self, void *sandbox, tr_exec *ex) {
        uh_sb *s = sandbox;
        if (!s)
                return;
        /* EOF on the control pipe: the supervisor kills and reaps the whole
         * tree, then exits. */
        close_slot(&s->f.ctl[1]);
        if (s->sup > 0) {
                int st;
                while (waitpid(s->sup, &st, 0) < 0 && errno == EINTR) {
                }
        }
        tr__uh_keeper_stop(s->keeper);
        uh_fds_close(&s->f);
        if (s->workdir[0])
                tr__rm_rf(s->workdir);
        free(s->interp);
        free(s);
}

static int uh_open_fds(uh_fds *f, tr_error **ret_err) {
        memset(f, 0xff, sizeof(*f));
        /* stdin is a socket so that writing to a snippet that exited early is
         * EPIPE for us (MSG_NOSIGNAL), never a SIGPIPE for the host. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->in) < 0 || pipe2(f->out, O_CLOEXEC) < 0 ||
            pipe2(f->err, O_CLOEXEC) < 0 || pipe2(f->status, O_CLOEXEC) < 0 || pipe2(f->ctl, O_CLOEXEC) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->gw) < 0)
                return tr__uh_fail(ret_err, "spawn", tr__negerrno(), "pipe");
        shutdown(f->in[1], SHUT_RD);
        return 0;
}

static void set_rlimits(spawn_plan *plan, const tr_limits *lim) {
        if (lim->memory_bytes > 0) {
                plan->set_as = true;
                plan->as = (struct rlimit){ (rlim_t) lim->memory_bytes, (rlim_t) lim->memory_bytes };
        }
        if (lim->pids_max > 0) {
                plan->set_nproc = true;
                plan->nproc = (struct rlimit){ (rlim_t) lim->pids_max, (rlim_t) lim->pids_max };
        }
        if (lim->disk_bytes > 0) {
                plan->set_fsize = true;
                plan->fsize = (struct rlimit){ (rlim_t) lim->disk_bytes, (rlim_t) lim->disk_bytes };
        }
}

/* Start the supervisor and the interpreter, which then waits for its code. */
int tr__uh_start(uh *b, uh_sb *s, tr_exec *ex, tr_error **ret_err) {
        _cleanup_strv_ char **argv = NULL, **env = NULL;
        int r = tr__runner_argv(ex, s->interp, s->interp, &argv, ret_err);
        if (r < 0)
                return r;
        snprintf(s->workdir, sizeof s->workdir, "%s", "/tmp/toolruntime-uh-XXXXXX");
        if (!mkdtemp(s->workdir)) {
                s->workdir[0] = '\0';
                return tr__uh_fail(ret_err, "workdir", tr__negerrno(), "mkdtemp");
        }
        if (build_env(b, s->workdir, &env) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, "env", "out of memory");
        if ((r = uh_open_fds(&s->f, ret_err)) < 0)
                return r;
        spawn_plan plan = {
                .path = s->interp,
                .argv = argv,
                .envp = env,
                .cwd = s->workdir,
                .in_fd = s->f.in[0],
                .out_fd = s->f.out[1],
                .err_fd = s->f.err[1],
                .gw_fd = s->f.gw[1],
                .status_fd = s->f.status[1],
                .ctl_fd = s->f.ctl[0],
                .parent = getpid(),
        };
        set_rlimits(&plan, tr_exec_limits(ex));
        r = uh_spawn(&plan, &s->sup);
        /* Our copies of the child's ends go, so EOF means the tree is gone. */
        close_slot(&s->f.in[0]);
        close_slot(&s->f.out[1]);
        close_slot(&s->f.err[1]);
        close_slot(&s->f.gw[1]);
        close_slot(&s->f.status[1]);
        close_slot(&s->f.ctl[0]);
        if (r < 0)
                return tr__uh_fail(ret_err, "spawn", r, "fork");
        /* Root bypasses RLIMIT_NPROC; claiming it would be a lie. */
        tr_exec_report_applied(ex, (plan.set_as ? TR_APPLIED_MEMORY : 0) |
                                           (plan.set_nproc && geteuid() != 0 ? TR_APPLIED_PIDS : 0));
        tr_exec_log(ex, TR_LOG_INFO, "unsafe_host: started", "interpreter", s->interp, NULL);
        return 0;
}

static int uh_prepare(void *self, tr_exec *ex, void **ret_sandbox, tr_error **ret_err) {
        uh *b = self;
        tr_result *res = tr_exec_result(ex);
        const char *lang = tr_request_effective_language(tr_exec_request(ex));
        tr_result_set_backend_kind(res, UH_KIND);
        tr_result_set_backend_detail(res, "profile", tr_profile_name(tr_exec_profile(ex)), NULL);
        tr_result_set_backend_detail(res, "isolation", "none", NULL);

        uh_sb *s = calloc(1, sizeof(*s));
        if (!s)
                return tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, "prepare", "out of memory");
        memset(&s->f, 0xff, sizeof(s->f));
        s->sup = -1;
        const char *want = streq(lang, "sh") ? b->sh : b->python;
        int r = tr__find_executable(want, &s->interp);
        if (r < 0)
                r = tr_error_set(ret_err, TR_E_RUNTIME_UNAVAILABLE, UH_KIND, "spawn",
                                 "interpreter '%s' for %s not found on PATH (install it, e.g. apt-get install %s)",
                                 want, lang, streq(lang, "sh") ? "dash" : "python3");
        /* A session outlives the thread that creates it: session.c. */
        if (r >= 0)
                r = tr_exec_session(ex) ? tr__uh_keeper_start(b, s, ex, ret_err) : tr__uh_start(b, s, ex, ret_err);
        if (r < 0) {
                uh_destroy(b, s, ex);
                return r;
        }
        *ret_sandbox = s;
        return 0;
}

static int uh_run(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err) {
        uh_sb *s = sandbox;
        tr_result *res = tr_exec_result(ex);
        _cleanup_free_ char *input = NULL;
        size_t input_len = 0;
        if (tr__runner_stdin(ex, &input, &input_len) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, "execute", "out of memory");
        /* The tools of this run: the core's session serves the snippet's end
         * of the gateway socket, which held anything sent before now. */
        int r = 0;
        tr__gw_session *gw = tr__exec_gateway(ex);
        if (gw)
                r = tr__gw_session_serve_fd(gw, TAKE_FD(s->f.gw[0]), ret_err);
        if (r < 0)
                goto out;

        int status = 0;
        bool timed_out = false, cancelled = false;
        r = uh_loop(ex, &s->f, input, input_len, s->sup, &status, &timed_out, &cancelled);
        close_slot(&s->f.ctl[1]);
        while (waitpid(s->sup, &(int){ 0 }, 0) < 0 && errno == EINTR) {
        }
        s->sup = -1;
        if (r < 0)
                r = tr__uh_fail(ret_err, "wait", r, "poll");
        else if (timed_out)
                r = tr_error_set(ret_err, TR_E_TIMEOUT, UH_KIND, "wait", "execution timed out after %lld ms",
                                 (long long) tr_request_effective_timeout_ms(tr_exec_request(ex)));
        else if (cancelled)
                r = tr_error_set(ret_err, TR_E_CANCELLED, UH_KIND, "wait", "execution cancelled by the caller");
        else if (r == 0)
                r = tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, "wait",
                                 "the process supervisor ended without reporting the snippet's status");
        else {
                if (WIFEXITED(status))
                        tr_result_set_exit_code(res, WEXITSTATUS(status));
                else if (WIFSIGNALED(status))
                        tr_result_set_signal(res, WTERMSIG(status));
                r = 0;
        }
out:
        return r;
}

static void uh_free(void *self) {
        uh *b = self;
        if (!b)
                return;
        free(b->python);
        free(b->sh);
        free(b->sdk_path);
        free(b);
}

static const tr_backend_ops uh_ops = {
        .kind = uh_kind,
        .free = uh_free,
        .prepare = uh_prepare,
        .run = uh_run,
        .destroy = uh_destroy,
        .session_io = tr__uh_session_io,
        .signal = tr__uh_signal,
        .session_begin = tr__uh_session_begin,
};

TR_PUBLIC int tr_backend_unsafe_host_new(const tr_unsafe_host_config *user_cfg, tr_backend **ret_backend,
                                         tr_error **ret_err) {
        tr_unsafe_host_config cfg_copy;
        int r_cfg = tr__unsafe_host_config_copy(user_cfg, &cfg_copy, ret_err);
        if (r_cfg < 0)
                return r_cfg;
        const tr_unsafe_host_config *cfg = &cfg_copy;
        uh *b = calloc(1, sizeof(*b));
        if (!b)
                return tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, "backend.new", "out of memory");
        b->python = strdup(cfg && cfg->python_path ? cfg->python_path : "python3");
        b->sh = strdup(cfg && cfg->sh_path ? cfg->sh_path : "/bin/sh");
        b->sdk_path = strdup(cfg && cfg->sdk_path ? cfg->sdk_path : TR_SDK_DIR);
        if (!b->python || !b->sh || !b->sdk_path) {
                uh_free(b);
                return tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, "backend.new", "out of memory");
        }
        return tr_backend_new(&uh_ops, b, ret_backend, ret_err);
}
