/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sessions on Runner 1 (issue 14): a session's VM keeps one interpreter
 * (the core's session runner) alive across executions, and the core talks
 * to it through three fds (session_io), as it does to a container's
 * pipes.  Here one thread per session VM serves the VM's channel for the
 * VM's whole life and bridges it to those fds (socketpairs):
 *
 *   the core's stdin                 -> STDIN frames (never EOF unless the
 *                                       core shuts its end)
 *   STDOUT / STDERR frames           -> the core's stdout / stderr, buffered
 *                                       (past OUT_CAP the channel is no
 *                                       longer read: the guest waits)
 *   signal()                         -> a SIGNAL frame; the agent kill()s
 *                                       the interpreter
 *   EXIT, QEMU's end, a guest fault  -> EOF on the core's stdout and stderr
 *                                       (once what was buffered is out): the
 *                                       interpreter is gone
 *
 * and the gateway relay of the execution in progress (session_begin binds
 * that execution's gateway session, session_end releases it).  One mutex
 * guards the VM between the thread and those calls; the thread drops it
 * only while it polls.  The frame checks are the frame loop's (vmloop.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/kata/vm.h"
#include "core/plan.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/proc.h"

/* Guest output buffered for the core before we stop reading the channel. */
#define OUT_CAP (1u * 1024 * 1024)
/* Host -> guest bytes queued before we stop reading the core's stdin. */
#define IN_HIGH (256u * 1024)

typedef struct tr__kata_vm_session {
        pthread_t thread;
        bool running;
        pthread_mutex_t lock;
        int wake[2];                     /* a call for the thread: look again */
        int core_in, core_out, core_err; /* the core's ends */
        int in, out, err;                /* ours */
        bool stop, ended, oom;
} sess;

static void wake(sess *S) {
        char c = 1;
        ssize_t w = write(S->wake[1], &c, 1);
        (void) w; /* full: a wake-up is pending anyway */
}

/* The interpreter is gone (or the VM is): no more input; EOF to the core
 * once the buffered output is out. */
static void end(tr__kata_vm *v, const tr_error *why) {
        sess *S = v->sess;
        if (S->ended)
                return;
        S->ended = true;
        if ((v->done && v->exit_kind == TR_VF_OOM) || tr__kata_jail_oom_killed(v->jail))
                S->oom = true;
        if (why)
                tr_exec_log(v->ex, TR_LOG_WARN, "kata: session VM ended", "error", tr_error_message(why), NULL);
}

/* Write what is buffered for the core; 0, or -1 when its end is gone. */
static int flush_to(int fd, tr__vf_buf *b) {
        while (b->len) {
                ssize_t w = send(fd, b->data, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -1;
                tr__vf_buf_consume(b, (size_t) w);
        }
        return 0;
}

static void serve_core_input(tr__kata_vm *v) {
        sess *S = v->sess;
        uint8_t buf[TR_VF_CHUNK];
        ssize_t n = read(S->in, buf, sizeof(buf));
        _cleanup_(tr_error_freep) tr_error *e = NULL;
        if (n > 0) {
                if (tr__kata_vm_queue_stdin(v, buf, (size_t) n, false, &e) < 0)
                        end(v, e);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                /* The core shut its end: the runner sees EOF and exits. */
                (void) tr__kata_vm_queue_stdin(v, NULL, 0, true, &e);
                tr__closep(&S->in);
        }
}

static void *serve(void *arg) {
        tr__kata_vm *v = arg;
        sess *S = v->sess;
        pthread_mutex_lock(&S->lock);
        while (!S->stop) {
                struct pollfd pf[7 + TR_KATA_MAX_STREAMS];
                bool full = v->sess_out.len > OUT_CAP || v->sess_err.len > OUT_CAP;
                bool live = !S->ended;
                pf[0] = (struct pollfd){ live ? v->chan : -1,
                                         (short) ((full ? 0 : POLLIN) | (v->outq.len ? POLLOUT : 0)), 0 };
                pf[1] = (struct pollfd){ v->con, POLLIN, 0 };
                pf[2] = (struct pollfd){ live && !v->qemu_exited ? v->pidfd : -1, POLLIN, 0 };
                pf[3] = (struct pollfd){ S->wake[0], POLLIN, 0 };
                pf[4] = (struct pollfd){ live && v->outq.len < IN_HIGH ? S->in : -1, POLLIN, 0 };
                pf[5] = (struct pollfd){ v->sess_out.len ? S->out : -1, POLLOUT, 0 };
                pf[6] = (struct pollfd){ v->sess_err.len ? S->err : -1, POLLOUT, 0 };
                for (int i = 0; i < TR_KATA_MAX_STREAMS; i++) {
                        short ev = (short) (POLLIN | (v->streams[i].in.len ? POLLOUT : 0));
                        pf[7 + i] = (struct pollfd){ live ? v->streams[i].fd : -1, ev, 0 };
                }
                pthread_mutex_unlock(&S->lock);
                int k = poll(pf, ARRAY_SIZE(pf), -1);
                pthread_mutex_lock(&S->lock);
                if (S->stop)
                        break;
                if (k < 0)
                        continue;
                if (pf[3].revents & POLLIN) {
                        char drain[64];
                        while (read(S->wake[0], drain, sizeof(drain)) > 0)
                                ;
                }
                if (pf[1].revents & (POLLIN | POLLHUP | POLLERR))
                        tr__kata_vm_console_read(v);
                _cleanup_(tr_error_freep) tr_error *e = NULL;
                if (pf[0].revents & POLLOUT) {
                        ssize_t w = send(v->chan, v->outq.data, v->outq.len, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (w > 0)
                                tr__vf_buf_consume(&v->outq, (size_t) w);
                }
                if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t got = tr__vf_reader_read_fd(&v->rd, v->chan);
                        if (tr__kata_vm_take_frames(v, TR_KATA_VM_RUN, &e) < 0 || v->done)
                                end(v, e);
                        else if (got == 0 || (got < 0 && got != -EAGAIN))
                                v->qemu_exited = true;
                }
                if (!S->ended && (pf[4].revents & (POLLIN | POLLHUP | POLLERR)))
                        serve_core_input(v);
                if (!S->ended && tr__kata_vm_pump_streams(v, pf + 7, &e) < 0)
                        end(v, e);
                if (!S->ended && (v->qemu_exited || (pf[2].revents & POLLIN)))
                        end(v, NULL);
                /* The core's end gone: nobody reads; drop what it missed. */
                if (S->out >= 0 && flush_to(S->out, &v->sess_out) < 0)
                        tr__vf_buf_done(&v->sess_out);
                if (S->err >= 0 && flush_to(S->err, &v->sess_err) < 0)
                        tr__vf_buf_done(&v->sess_err);
                if (S->ended && !v->sess_out.len && !v->sess_err.len) {
                        /* EOF: the core ends the session. */
                        tr__closep(&S->out);
                        tr__closep(&S->err);
                }
        }
        pthread_mutex_unlock(&S->lock);
        return NULL;
}

static int pair(int *ours, int *core) {
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return -errno;
        *ours = sp[0];
        *core = sp[1];
        /* Both non-blocking: the core polls its ends and reads them until
         * EAGAIN (containerd's pipes are the same). */
        tr__fd_set_nonblock(sp[0], true);
        tr__fd_set_nonblock(sp[1], true);
        return 0;
}

int tr__kata_vm_session_start(tr__kata_vm *v, tr_error **ret_err) {
        sess *S = calloc(1, sizeof(*S));
        if (!S)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.session", "out of memory");
        *S = (sess){
                .wake = { -1, -1 }, .core_in = -1, .core_out = -1, .core_err = -1, .in = -1, .out = -1, .err = -1
        };
        pthread_mutex_init(&S->lock, NULL);
        v->sess = S;
        if (pipe2(S->wake, O_CLOEXEC | O_NONBLOCK) < 0 || pair(&S->in, &S->core_in) < 0 ||
            pair(&S->out, &S->core_out) < 0 || pair(&S->err, &S->core_err) < 0)
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.session", "socketpair: %m");
        /* The core writes commands, we only read them, and the other way
         * round: each end says so, so that a close reads as EOF. */
        (void) shutdown(S->in, SHUT_WR);
        (void) shutdown(S->out, SHUT_RD);
        (void) shutdown(S->err, SHUT_RD);
        if (pthread_create(&S->thread, NULL, serve, v) != 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.session", "cannot start the session thread");
        S->running = true;
        return 0;
}

void tr__kata_vm_session_stop(tr__kata_vm *v) {
        sess *S = v ? v->sess : NULL;
        if (!S)
                return;
        if (S->running) {
                pthread_mutex_lock(&S->lock);
                S->stop = true;
                pthread_mutex_unlock(&S->lock);
                wake(S);
                pthread_join(S->thread, NULL);
        }
        int *fds[] = { &S->wake[0], &S->wake[1], &S->core_in, &S->core_out, &S->core_err, &S->in, &S->out, &S->err };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                tr__closep(fds[i]);
        pthread_mutex_destroy(&S->lock);
        free(S);
        v->sess = NULL;
}

int tr__kata_vm_session_io(tr__kata_vm *v, int *ret_in, int *ret_out, int *ret_err_fd) {
        sess *S = v->sess;
        if (!S)
                return -ENOTCONN;
        *ret_in = S->core_in;
        *ret_out = S->core_out;
        *ret_err_fd = S->core_err;
        return 0;
}

int tr__kata_vm_session_signal(tr__kata_vm *v, int sig, tr_error **ret_err) {
        sess *S = v->sess;
        if (!S || sig < 1 || sig > 64)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "vm.signal", "cannot deliver signal %d",
                                    sig);
        pthread_mutex_lock(&S->lock);
        int r = S->ended ? 0 : tr__kata_vm_queue_signal(v, sig);
        pthread_mutex_unlock(&S->lock);
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.signal", "out of memory");
        wake(S);
        return 0;
}

int tr__kata_vm_session_begin(tr__kata_vm *v, tr_exec *ex, tr_error **ret_err) {
        sess *S = v->sess;
        if (!S)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "vm.session", "not a session's VM");
        tr__kata_vm_report_applied(v, ex);
        pthread_mutex_lock(&S->lock);
        tr__kata_vm_end_gateway(v);
        v->gw = tr__exec_gateway(ex);
        pthread_mutex_unlock(&S->lock);
        return 0;
}

void tr__kata_vm_session_end(tr__kata_vm *v) {
        sess *S = v->sess;
        if (!S)
                return;
        pthread_mutex_lock(&S->lock);
        /* The execution's gateway connections end with it, on both sides
         * (the runner opens a new one for the next execution). */
        for (int i = 0; i < TR_KATA_MAX_STREAMS; i++)
                if (v->streams[i].fd >= 0) {
                        uint8_t id[4];
                        tr__vf_put_u32(id, v->streams[i].id);
                        (void) tr__vf_buf_frame(&v->outq, TR_VF_GW_CLOSE, id, 4, NULL, 0);
                }
        tr__kata_vm_end_gateway(v);
        pthread_mutex_unlock(&S->lock);
        wake(S);
}

bool tr__kata_vm_session_oom(tr__kata_vm *v) {
        sess *S = v->sess;
        if (!S)
                return false;
        pthread_mutex_lock(&S->lock);
        bool oom = S->oom || tr__kata_jail_oom_killed(v->jail);
        pthread_mutex_unlock(&S->lock);
        return oom;
}
