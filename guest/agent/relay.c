/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stages 5 and 6 of the guest agent, PID 1's side of the run: the one poll
 * loop that relays the snippet's stdin, stdout and stderr and the gateway
 * connections (a unix socket at /run/toolruntime/gateway.sock) as frames,
 * sends STARTED once (with a live stdin, when the interpreter is ready for
 * the code), reaps every orphan, and reports the exit status (OOM kills
 * distinctly).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

static int gw_listen(agent *a) {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s < 0)
                return -errno;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strncpy(sa.sun_path, GW_SOCK, sizeof(sa.sun_path) - 1);
        if (bind(s, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(s, 8) < 0) {
                int e = -errno;
                close(s);
                return e;
        }
        /* The snippet's uid must be able to connect; the directory is
         * root-owned so it cannot replace the socket. */
        chmod(GW_SOCK, 0666);
        a->listen_fd = s;
        return 0;
}

static gw_conn *conn_by_id(agent *a, uint32_t id) {
        for (int i = 0; i < MAX_GW_CONNS; i++)
                if (a->conns[i].fd >= 0 && a->conns[i].id == id)
                        return &a->conns[i];
        return NULL;
}

static void conn_close(agent *a, gw_conn *c, int tell_host) {
        if (tell_host) {
                uint8_t idb[4];
                tr__vf_put_u32(idb, c->id);
                (void) tr__vf_write(a->port, TR_VF_GW_CLOSE, idb, 4, NULL, 0);
        }
        close(c->fd);
        c->fd = -1;
}

static void write_blocking(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                struct pollfd pf = { fd, POLLOUT, 0 };
                                poll(&pf, 1, 1000);
                                continue;
                        }
                        return;
                }
                p += w;
                n -= (size_t) w;
        }
}

/* A frame from the host during the run: gateway traffic, and with a live
 * stdin the snippet's input and signals. */
static void host_frame(agent *a, const request *req, const tr__vf_frame *fr) {
        if (req->stdin_live && fr->type == TR_VF_STDIN) {
                /* The code has come: the idle backstop is over. */
                a->idle_end = 0;
                if (fr->len == 0)
                        a->in_eof = 1;
                else if (!a->in_eof && tr__vf_buf_append(&a->inq, fr->payload, fr->len) < 0)
                        tr__agent_fail(a, "out of memory");
                return;
        }
        if (req->stdin_live && fr->type == TR_VF_SIGNAL) {
                /* The interpreter alone (SIGINT: a KeyboardInterrupt), not
                 * its process group: the session runner decides. */
                if (fr->len == 4 && a->snippet > 0) {
                        uint32_t sig = tr__vf_get_u32(fr->payload);
                        if (sig >= 1 && sig <= 64)
                                (void) kill(a->snippet, (int) sig);
                }
                return;
        }
        if ((fr->type != TR_VF_GW_DATA && fr->type != TR_VF_GW_CLOSE) || fr->len < 4)
                return;
        gw_conn *c = conn_by_id(a, tr__vf_get_u32(fr->payload));
        if (!c)
                return;
        if (fr->type == TR_VF_GW_CLOSE)
                conn_close(a, c, 0);
        else
                write_blocking(c->fd, fr->payload + 4, fr->len - 4);
}

/* STARTED, once: what is in force (the host reports limits_enforced from
 * it).  Before any other frame of the snippet's. */
static void send_started(agent *a) {
        if (a->started_sent)
                return;
        a->started_sent = 1;
        tr__vf_buf st = { 0 };
        (void) tr__vf_tlv_add_u64(&st, TR_VT_LIMITS_APPLIED, a->applied);
        (void) tr__vf_write(a->port, TR_VF_STARTED, NULL, 0, st.data, st.len);
        tr__vf_buf_done(&st);
        tr__agent_mark(a, "snippet started");
}

/* With a live stdin, STARTED means "ready for the code": the interpreter
 * has started up (seconds of Python imports under TCG) and blocks reading
 * its stdin pipe (inode `ino`; on fd 0 or a copy of it, as the session
 * runner keeps it), so that a prepared VM's run only runs the code.  Seen
 * from /proc/PID/syscall: read (0) on that fd. */
static int waits_on_stdin(pid_t pid, unsigned long ino) {
        char path[64], buf[128];
        snprintf(path, sizeof(path), "/proc/%d/syscall", (int) pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        unsigned long nr, rfd;
        if (sscanf(buf, "%lu 0x%lx ", &nr, &rfd) != 2 || nr != 0 || rfd > 1024)
                return 0;
        char want[64], link[64];
        snprintf(path, sizeof(path), "/proc/%d/fd/%lu", (int) pid, rfd);
        snprintf(want, sizeof(want), "pipe:[%lu]", ino);
        ssize_t k = readlink(path, link, sizeof(link) - 1);
        if (k <= 0)
                return 0;
        link[k] = 0;
        return strcmp(link, want) == 0;
}

/* How often, and how long at most, the agent looks for that. */
#define READY_POLL_MS 10
#define READY_MAX_MS  120000

/* Relay everything until the snippet and its output are done. */
void tr__agent_run(agent *a, const request *req, tr__vf_reader *rd) {
        child_pipes cp;
        if (gw_listen(a) < 0)
                tr__agent_log("gateway socket: %m");
        pid_t pid = tr__agent_spawn(a, req, &cp);
        a->snippet = pid;
        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        int64_t ready_end = tr__agent_now_ms() + READY_MAX_MS;
        struct stat pst;
        unsigned long stdin_ino = fstat(cp.in, &pst) == 0 ? (unsigned long) pst.st_ino : 0;
        if (!req->stdin_live)
                send_started(a);

        /* The snippet's input: the request's code, or (live) what STDIN
         * frames bring until an empty one. */
        if (!req->stdin_live) {
                if (req->code_len && tr__vf_buf_append(&a->inq, req->code, req->code_len) < 0)
                        tr__agent_fail(a, "out of memory");
                a->in_eof = 1;
        } else if (req->idle_ms) {
                a->idle_end = tr__agent_now_ms() + (int64_t) req->idle_ms;
        }
        int status = 0, exited = 0;
        int64_t drain_end = 0;
        uint8_t buf[TR_VF_CHUNK];
        /* Frames the request's read already took in (none today: the host
         * waits for STARTED before sending any). */
        {
                tr__vf_frame fr;
                while (tr__vf_reader_next(rd, &fr) > 0)
                        host_frame(a, req, &fr);
        }
        for (;;) {
                struct pollfd pf[6 + MAX_GW_CONNS];
                int n = 0;
                int i_port = n;
                pf[n++] = (struct pollfd){ a->port, POLLIN, 0 };
                int i_out = n;
                pf[n++] = (struct pollfd){ cp.out, POLLIN, 0 };
                int i_err = n;
                pf[n++] = (struct pollfd){ cp.err, POLLIN, 0 };
                int i_in = n;
                if (cp.in >= 0 && a->inq.len == 0 && a->in_eof) {
                        close(cp.in);
                        cp.in = -1;
                }
                pf[n++] = (struct pollfd){ a->inq.len ? cp.in : -1, POLLOUT, 0 };
                /* The snippet's end wakes us (the reap is below). */
                pf[n++] = (struct pollfd){ exited ? -1 : pidfd, POLLIN, 0 };
                int i_lis = n;
                pf[n++] = (struct pollfd){ a->listen_fd, POLLIN, 0 };
                int i_conn = n;
                for (int i = 0; i < MAX_GW_CONNS; i++)
                        pf[n++] = (struct pollfd){ a->conns[i].fd, POLLIN, 0 };

                if (exited && cp.out < 0 && cp.err < 0)
                        break;
                int timeout = exited ? -1 : tr__agent_thrash_check(a);
                if (!a->started_sent) {
                        if (!exited && waits_on_stdin(pid, stdin_ino))
                                send_started(a);
                        else if (tr__agent_now_ms() >= ready_end)
                                send_started(a); /* a runner that never reads: the host's deadline decides */
                        else if (timeout < 0 || timeout > READY_POLL_MS)
                                timeout = READY_POLL_MS;
                }
                if (a->idle_end) {
                        int64_t left = a->idle_end - tr__agent_now_ms();
                        if (left <= 0) {
                                /* Nobody came for this prepared VM: end it
                                 * rather than idle forever. */
                                if (a->cg_ok)
                                        (void) tr__agent_write_file(CGSNIP "/cgroup.kill", "1");
                                tr__agent_fail(a, "no code within %llu ms: powering off",
                                               (unsigned long long) req->idle_ms);
                        }
                        if (timeout < 0 || left < timeout)
                                timeout = (int) left;
                }
                if (exited) {
                        int64_t left = drain_end - tr__agent_now_ms();
                        if (left <= 0)
                                break;
                        timeout = (int) left;
                }
                int k = poll(pf, (nfds_t) n, timeout);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        tr__agent_fail(a, "poll: %s", strerror(errno));
                }
                if (pf[i_port].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t r = tr__vf_reader_read_fd(rd, a->port);
                        if (r > 0) {
                                tr__vf_frame fr;
                                int m;
                                while ((m = tr__vf_reader_next(rd, &fr)) > 0)
                                        host_frame(a, req, &fr);
                                if (m < 0)
                                        tr__agent_fail(a, "malformed frame from the host");
                        } else if (r == 0) {
                                /* The host went away: nobody to report to. */
                                tr__agent_poweroff();
                        }
                }
                struct {
                        int *fd;
                        int idx;
                        uint8_t type;
                } outs[2] = { { &cp.out, i_out, TR_VF_STDOUT }, { &cp.err, i_err, TR_VF_STDERR } };
                for (int j = 0; j < 2; j++) {
                        if (*outs[j].fd < 0 || !(pf[outs[j].idx].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        ssize_t r = read(*outs[j].fd, buf, sizeof(buf));
                        if (r > 0) {
                                send_started(a);
                                (void) tr__vf_write(a->port, outs[j].type, NULL, 0, buf, (size_t) r);
                        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                                close(*outs[j].fd);
                                *outs[j].fd = -1;
                        }
                }
                if (cp.in >= 0 && a->inq.len && (pf[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
                        ssize_t w = write(cp.in, a->inq.data, a->inq.len);
                        if (w > 0)
                                tr__vf_buf_consume(&a->inq, (size_t) w);
                        else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                                /* The snippet closed its stdin: the rest
                                 * has no reader. */
                                close(cp.in);
                                cp.in = -1;
                                tr__vf_buf_done(&a->inq);
                                a->in_eof = 1;
                        }
                }
                if (a->listen_fd >= 0 && (pf[i_lis].revents & POLLIN)) {
                        int c = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        if (c >= 0) {
                                gw_conn *slot = NULL;
                                for (int i = 0; i < MAX_GW_CONNS; i++)
                                        if (a->conns[i].fd < 0) {
                                                slot = &a->conns[i];
                                                break;
                                        }
                                if (!slot) {
                                        close(c); /* too many at once: refuse */
                                } else {
                                        slot->fd = c;
                                        slot->id = ++a->next_id;
                                        uint8_t idb[4];
                                        tr__vf_put_u32(idb, slot->id);
                                        send_started(a);
                                        (void) tr__vf_write(a->port, TR_VF_GW_OPEN, idb, 4, NULL, 0);
                                }
                        }
                }
                for (int i = 0; i < MAX_GW_CONNS; i++) {
                        gw_conn *c = &a->conns[i];
                        if (c->fd < 0 || !(pf[i_conn + i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        ssize_t r = read(c->fd, buf, sizeof(buf));
                        if (r > 0) {
                                uint8_t idb[4];
                                tr__vf_put_u32(idb, c->id);
                                (void) tr__vf_write(a->port, TR_VF_GW_DATA, idb, 4, buf, (size_t) r);
                        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                                conn_close(a, c, 1);
                        }
                }
                /* PID 1 reaps every orphan, and the snippet among them (the
                 * pidfd only wakes us): a separate orphan reap could take
                 * the snippet, exited since the poll, without its status,
                 * and left the loop waiting for an exit already gone (the
                 * host then saw a timeout). */
                int st;
                pid_t w;
                while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
                        if (w != pid || exited)
                                continue;
                        status = st;
                        exited = 1;
                        /* Whatever the snippet left running (a background
                         * process, a fork bomb) dies now, so its pipes reach
                         * EOF. */
                        if (a->cg_ok)
                                (void) tr__agent_write_file(CGSNIP "/cgroup.kill", "1");
                        drain_end = tr__agent_now_ms() + DRAIN_MS;
                }
        }

        tr__vf_buf ex = { 0 };
        if (tr__agent_oom_killed(a)) {
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_KIND, TR_VF_OOM);
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_CODE, WIFSIGNALED(status) ? (uint64_t) WTERMSIG(status) : 0);
        } else if (WIFSIGNALED(status)) {
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_KIND, TR_VF_SIGNALED);
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_CODE, (uint64_t) WTERMSIG(status));
        } else {
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_KIND, TR_VF_EXITED);
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_CODE, (uint64_t) WEXITSTATUS(status));
        }
        send_started(a);
        (void) tr__vf_write(a->port, TR_VF_EXIT, NULL, 0, ex.data, ex.len);
        tr__vf_buf_done(&ex);
}
