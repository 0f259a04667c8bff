/* SPDX-License-Identifier: Apache-2.0 */
/* Spawning and supervising tool processes (spawn.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gateway/callctx.h"
#include "gateway/spawn.h"
#include "util/macros.h"
#include "util/strv.h"
#include "util/timeutil.h"

extern char **environ;

void tr__errlog_reset(tr__errlog *l) {
        l->len = 0;
        l->logged = 0;
        l->capped = false;
}

static void errlog_emit(tr__errlog *l) {
        if (l->logged >= TR__ERRLOG_MAX) {
                if (!l->capped && l->log) {
                        const char *kv[] = { l->key, l->who, NULL };
                        l->log(l->log_ud, TR_LOG_WARN, "stderr truncated", kv);
                }
                l->capped = true;
        } else if (l->log) {
                l->line[l->len] = '\0';
                const char *kv[] = { l->key, l->who, "stderr", l->line, NULL };
                l->log(l->log_ud, TR_LOG_WARN, "tool stderr", kv);
        }
        l->logged += l->len + 1;
        l->len = 0;
}

void tr__errlog_feed(tr__errlog *l, const char *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '\n') {
                        errlog_emit(l);
                        continue;
                }
                /* A NUL would cut the line short in the log: show it. */
                if (l->len < TR__ERRLOG_LINE)
                        l->line[l->len++] = p[i] ? p[i] : '?';
                if (l->len == TR__ERRLOG_LINE)
                        errlog_emit(l);
        }
}

void tr__errlog_flush(tr__errlog *l) {
        if (l->len > 0)
                errlog_emit(l);
}

bool tr__errlog_drain(tr__errlog *l, int fd) {
        for (;;) {
                char buf[4096];
                ssize_t k = read(fd, buf, sizeof(buf));
                if (k > 0) {
                        tr__errlog_feed(l, buf, (size_t) k);
                        continue;
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        return false;
                tr__errlog_flush(l);
                return true;
        }
}

int tr__tool_env(const char *home, char *const *names, char ***ret_envp) {
        _cleanup_strv_ char **env = NULL;
        const char *path = getenv("PATH"), *lang = getenv("LANG");
        if (tr__strv_pushf(&env, "PATH=%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin") < 0 ||
            tr__strv_pushf(&env, "LANG=%s", lang && *lang ? lang : "C.UTF-8") < 0 ||
            tr__strv_pushf(&env, "HOME=%s", home) < 0)
                return -ENOMEM;
        for (size_t i = 0; names && names[i]; i++) {
                const char *v = getenv(names[i]);
                if (v && tr__strv_pushf(&env, "%s=%s", names[i], v) < 0)
                        return -ENOMEM;
        }
        *ret_envp = TAKE_PTR(env);
        return 0;
}

static int pidfd_open_compat(pid_t pid) {
#ifdef SYS_pidfd_open
        return (int) syscall(SYS_pidfd_open, pid, 0);
#else
        errno = ENOSYS;
        return -1;
#endif
}

static void close_fd(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

int tr__proc_spawn(char *const argv[], const char *cwd, char *const envp[], bool capture_stderr, tr__proc *ret,
                   tr_error **ret_err) {
        int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        int r = 0;
        bool fa_init = false, attr_init = false;

        if (!argv || !argv[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "spawn", "empty command");
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || (capture_stderr && pipe2(err, O_CLOEXEC) < 0)) {
                r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "spawn", "pipe2: %m");
                goto out;
        }
        if ((r = -posix_spawn_file_actions_init(&fa)) < 0)
                goto spawn_fail;
        fa_init = true;
        /* dup2 onto 0/1/2 clears O_CLOEXEC on the copies only. */
        if ((r = -posix_spawn_file_actions_adddup2(&fa, in[0], 0)) < 0 ||
            (r = -posix_spawn_file_actions_adddup2(&fa, out[1], 1)) < 0)
                goto spawn_fail;
        if (capture_stderr)
                r = -posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        else
                r = -posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        if (r < 0)
                goto spawn_fail;
        /* Fds of the embedding program without O_CLOEXEC must not leak
         * into tools. */
        if ((r = -posix_spawn_file_actions_addclosefrom_np(&fa, 3)) < 0)
                goto spawn_fail;
        if (cwd && (r = -posix_spawn_file_actions_addchdir_np(&fa, cwd)) < 0)
                goto spawn_fail;

        if ((r = -posix_spawnattr_init(&attr)) < 0)
                goto spawn_fail;
        attr_init = true;
        sigset_t none, deflt;
        sigemptyset(&none);
        sigemptyset(&deflt);
        int defsigs[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2 };
        for (size_t i = 0; i < ARRAY_SIZE(defsigs); i++)
                sigaddset(&deflt, defsigs[i]);
        /* Own process group: a timeout kills the tool and whatever it
         * started.  Clean signal state: server threads block everything. */
        if ((r = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                          POSIX_SPAWN_SETSIGDEF)) < 0 ||
            (r = -posix_spawnattr_setpgroup(&attr, 0)) < 0 || (r = -posix_spawnattr_setsigmask(&attr, &none)) < 0 ||
            (r = -posix_spawnattr_setsigdefault(&attr, &deflt)) < 0)
                goto spawn_fail;

        pid_t pid;
        r = -posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp ? envp : environ);
        if (r < 0) {
                r = tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "spawn", "cannot run %s: %s", argv[0],
                                 strerror(-r));
                goto out;
        }
        *ret = (tr__proc) TR__PROC_INIT;
        ret->pid = pid;
        ret->pidfd = pidfd_open_compat(pid);
        if (ret->pidfd >= 0)
                (void) fcntl(ret->pidfd, F_SETFD, FD_CLOEXEC);
        ret->in_fd = TAKE_FD(in[1]);
        ret->out_fd = TAKE_FD(out[0]);
        ret->err_fd = TAKE_FD(err[0]);
        fcntl(ret->in_fd, F_SETFL, O_NONBLOCK);
        fcntl(ret->out_fd, F_SETFL, O_NONBLOCK);
        if (ret->err_fd >= 0)
                fcntl(ret->err_fd, F_SETFL, O_NONBLOCK);
        r = 0;
        goto out;

spawn_fail:
        r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "spawn", "posix_spawn setup: %s", strerror(-r));
out:
        if (fa_init)
                posix_spawn_file_actions_destroy(&fa);
        if (attr_init)
                posix_spawnattr_destroy(&attr);
        for (int i = 0; i < 2; i++) {
                close_fd(&in[i]);
                close_fd(&out[i]);
                close_fd(&err[i]);
        }
        return r;
}

void tr__proc_kill(tr__proc *p) {
        if (p->pid > 0) {
                /* The leader is unreaped (at worst a zombie), so its pid is
                 * still the group id and cannot have been recycled. */
                kill(-p->pid, SIGKILL);
                kill(p->pid, SIGKILL);
                while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                p->pid = -1;
        }
        close_fd(&p->pidfd);
        close_fd(&p->in_fd);
        close_fd(&p->out_fd);
        close_fd(&p->err_fd);
}

ssize_t tr__write_nosigpipe(int fd, const void *buf, size_t n) {
        /* Block SIGPIPE for this thread around the write; if the write
         * raised one, consume it before unblocking (curl's sigpipe trick). */
        sigset_t pipe_set, old;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        bool was_pending = sigismember(&pending, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        ssize_t w = write(fd, buf, n);
        int saved = errno;
        if (w < 0 && saved == EPIPE && !was_pending) {
                struct timespec zero = { 0, 0 };
                while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                        ;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = saved;
        return w;
}

/* The leader's wait status, or -1 when it cannot be had (an embedder that
 * ignores SIGCHLD or reaps every child itself): a status we did not see
 * must not pass for success. */
static int reap_status(tr__proc *p) {
        int st = 0;
        pid_t w;
        /* Clean up anything the tool left behind, then reap it. */
        kill(-p->pid, SIGKILL);
        while ((w = waitpid(p->pid, &st, 0)) < 0 && errno == EINTR)
                ;
        p->pid = -1;
        return w < 0 ? -1 : st;
}

int tr__proc_run(const tr_call_ctx *ctx, char *const argv[], const char *cwd, char *const envp[], tr__errlog *errlog,
                 const char *input, size_t in_len, int64_t timeout_ms, size_t max_out, char **ret_out, size_t *ret_len,
                 tr_error **ret_err) {
        tr__proc p = TR__PROC_INIT;
        tr__errlog_reset(errlog);
        int r = tr__proc_spawn(argv, cwd, envp, true, &p, ret_err);
        if (r < 0)
                return r;
        int64_t deadline = tr__now_ns() + timeout_ms * TR_NSEC_PER_MSEC;
        size_t alloc = 4096, len = 0, in_off = 0;
        _cleanup_free_ char *out = malloc(alloc);
        bool out_eof = false, err_eof = false, exited = false, over = false, timed_out = false, cancelled = false;
        if (!out) {
                tr__proc_kill(&p);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "run", "out of memory");
        }
        if (in_len == 0)
                close_fd(&p.in_fd);

        /* Until the leader exits (pidfd), or without a pidfd until both
         * pipes reach EOF; the output cap, the deadline and the calling
         * call's cancel fds (callctx.h) end it early. */
        while (!over && !exited && !(out_eof && err_eof && p.pidfd < 0)) {
                struct pollfd pf[4 + TR__CALL_MAX_CANCEL_FDS];
                int n = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1, i_cancel = -1, n_cancel = 0;
                if (p.in_fd >= 0) {
                        pf[n] = (struct pollfd){ .fd = p.in_fd, .events = POLLOUT };
                        i_in = n++;
                }
                if (!out_eof) {
                        pf[n] = (struct pollfd){ .fd = p.out_fd, .events = POLLIN };
                        i_out = n++;
                }
                if (!err_eof) {
                        pf[n] = (struct pollfd){ .fd = p.err_fd, .events = POLLIN };
                        i_err = n++;
                }
                if (p.pidfd >= 0) {
                        pf[n] = (struct pollfd){ .fd = p.pidfd, .events = POLLIN };
                        i_pid = n++;
                }
                n_cancel = tr__call_ctx_pollfds(ctx, pf + n);
                if (n_cancel > 0) {
                        i_cancel = n;
                        n += n_cancel;
                }
                int tmo = tr__poll_timeout_ms(deadline);
                if (tmo == 0) {
                        timed_out = true;
                        break;
                }
                int pr = poll(pf, (nfds_t) n, tmo);
                if (pr < 0 && errno != EINTR)
                        break;
                if (pr <= 0)
                        continue;
                for (int i = 0; i < n_cancel; i++)
                        if (pf[i_cancel + i].revents)
                                cancelled = true;
                if (cancelled)
                        break;
                if (i_in >= 0 && pf[i_in].revents) {
                        ssize_t w = tr__write_nosigpipe(p.in_fd, input + in_off, in_len - in_off);
                        if (w > 0)
                                in_off += (size_t) w;
                        /* EPIPE: the tool does not want (all of) its input;
                         * that is its business, its exit status tells. */
                        if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len)
                                close_fd(&p.in_fd);
                }
                if (i_pid >= 0 && pf[i_pid].revents)
                        exited = true;
                /* Drain until EAGAIN: after the leader exits, a grandchild
                 * may keep the pipes open, so EOF cannot be waited for. */
                if (i_out >= 0 && (pf[i_out].revents || exited)) {
                        for (;;) {
                                /* One byte stays free for the final NUL. */
                                if (len + 1 >= alloc) {
                                        size_t na = alloc * 2 > max_out + 2 ? max_out + 2 : alloc * 2;
                                        if (na <= alloc) {
                                                over = true;
                                                break;
                                        }
                                        char *nb = realloc(out, na);
                                        if (!nb) {
                                                over = true;
                                                break;
                                        }
                                        out = nb;
                                        alloc = na;
                                }
                                ssize_t k = read(p.out_fd, out + len, alloc - len - 1);
                                if (k == 0) {
                                        out_eof = true;
                                        break;
                                }
                                if (k < 0)
                                        break;
                                len += (size_t) k;
                                if (len > max_out) {
                                        over = true;
                                        break;
                                }
                        }
                }
                if (i_err >= 0 && (pf[i_err].revents || exited))
                        err_eof = tr__errlog_drain(errlog, p.err_fd);
        }
        if (!err_eof)
                (void) tr__errlog_drain(errlog, p.err_fd);
        tr__errlog_flush(errlog);
        if (timed_out || over || cancelled) {
                tr__proc_kill(&p);
                /* An execution that ends because its deadline passed also
                 * stops its session (a cancel fd): that is the deadline,
                 * whichever of the two this loop saw first. */
                int64_t call_deadline = tr_call_ctx_deadline_ns(ctx);
                if (cancelled && call_deadline > 0 && tr__now_ns() >= call_deadline)
                        return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_NONE, "run",
                                            "%s: killed at the calling execution's deadline", argv[0]);
                if (cancelled)
                        return tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, "run",
                                            "%s: killed, the calling execution is ending", argv[0]);
                if (over)
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "run",
                                            "%s: output exceeds the cap of %zu bytes", argv[0], max_out);
                return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_NONE, "run", "%s: timed out after %lld ms",
                                    argv[0], (long long) timeout_ms);
        }
        int st = reap_status(&p);
        tr__proc_kill(&p);
        if (st == -1)
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "run",
                                    "%s: its exit status was collected by someone else (SIGCHLD ignored?)", argv[0]);
        /* Its stderr is in the host's log, not in this message: the
         * message goes back into the sandbox. */
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                if (WIFSIGNALED(st))
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "run",
                                            "%s: killed by signal %d (its stderr is in the host's log)", argv[0],
                                            WTERMSIG(st));
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "run",
                                    "%s: exit status %d (its stderr is in the host's log)", argv[0], WEXITSTATUS(st));
        }
        out[len] = 0;
        *ret_out = TAKE_PTR(out);
        *ret_len = len;
        return 0;
}
