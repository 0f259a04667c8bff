/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-execution gateway server (session.h).
 *
 * One thread per connection (an inherited socketpair end, a relay fd, or an
 * accepted unix connection) plus one listener thread per unix socket.  Every
 * thread polls its fd together with the read end of a "stop pipe"; freeing
 * the session writes one byte into the pipe, which stays readable forever, so
 * every thread wakes, and then joins them.  Nothing here trusts the peer:
 * frames are capped (frame.h), malformed messages get an error reply, writes
 * never block past the session's end, and the number of connections is
 * bounded.
 *
 * What a message does (the operations, the limits, the records) is
 * session_ops.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gateway/callctx.h"
#include "gateway/frame.h"
#include "gateway/protocol.h"
#include "gateway/session.h"
#include "gateway/session_int.h"
#include "util/macros.h"
#include "util/timeutil.h"

/* Concurrent connections per session: the SDK opens one per process, so a
 * snippet with a few subprocesses fits; a fork bomb of clients does not get a
 * thread each. */
#define MAX_CONNS 16
/* Read granularity; frames larger than this arrive over several reads. */
#define READ_CHUNK (64 * 1024)

typedef struct conn {
        tr__gw_session *s;
        int fd;
        bool is_socket;
        bool started;
        pthread_t thread;
        atomic_bool done;
        struct conn *next;
} conn;

/* ---- threads ------------------------------------------------------------ */

/* Server threads block every signal: the embedding program's handlers must
 * run on its own threads, and a peer that hangs up mid-write must give us
 * EPIPE, not a process-killing SIGPIPE. */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int r = pthread_create(t, NULL, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return -r;
}

/* Write all of `data`, waiting for room with poll() so that a peer that
 * never reads cannot keep this thread past the session's end. */
static int send_all(conn *c, const uint8_t *data, size_t len) {
        while (len > 0) {
                ssize_t n = c->is_socket ? send(c->fd, data, len, MSG_NOSIGNAL) : write(c->fd, data, len);
                if (n > 0) {
                        data += n;
                        len -= (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                        return -errno;
                struct pollfd p[2] = { { .fd = c->fd, .events = POLLOUT }, { .fd = c->s->stop_rd, .events = POLLIN } };
                int pr = poll(p, 2, -1);
                if (pr < 0 && errno != EINTR)
                        return -errno;
                if (p[1].revents)
                        return -ECANCELED;
                if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
                        return -EPIPE;
        }
        return 0;
}

static int send_frame(conn *c, uint8_t *frame, size_t len) {
        int r = send_all(c, frame, len);
        free(frame);
        return r;
}

static int send_error(conn *c, json_t *id, const char *code, const char *message) {
        uint8_t *f = NULL;
        size_t n = 0;
        int r = tr__gw_encode_error(id, code, message, &f, &n);
        if (r < 0)
                return r;
        return send_frame(c, f, n);
}

static int send_error_err(conn *c, json_t *id, const tr_error *err) {
        if (!err)
                return send_error(c, id, tr_code_name(TR_E_INTERNAL), "unknown failure");
        return send_error(c, id, tr_error_code_name(err), tr_error_message(err));
}

/* Handle one frame.  Returns < 0 when the connection must close. */
static int handle_frame(conn *c, const uint8_t *data, size_t len) {
        tr__gw_msg m = { 0 };
        json_t *bad_id = NULL;
        tr_error *err = NULL;
        int r = tr__gw_msg_decode(data, len, &m, &bad_id, &err);
        if (r < 0) {
                r = send_error_err(c, bad_id, err);
                json_decref(bad_id);
                tr_error_free(err);
                return r;
        }
        json_t *result = NULL;
        r = tr__gw_session_dispatch(c->s, &m, &result, &err);
        if (r < 0) {
                r = send_error_err(c, m.id, err);
                tr_error_free(err);
        } else {
                uint8_t *f = NULL;
                size_t n = 0;
                r = tr__gw_encode(TR__GW_RESPONSE, m.id, result, &f, &n);
                if (r == -EMSGSIZE)
                        r = send_error(c, m.id, tr_code_name(TR_E_TOOL_FAILED),
                                       "the reply exceeds the message size cap");
                else if (r == 0)
                        r = send_frame(c, f, n);
                json_decref(result);
        }
        tr__gw_msg_done(&m);
        return r;
}

static void *conn_main(void *arg) {
        conn *c = arg;
        tr__frame_reader rd;
        tr__frame_reader_init(&rd, TR_FRAME_MAX);

        for (;;) {
                struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = c->s->stop_rd, .events = POLLIN } };
                int pr = poll(p, 2, -1);
                if (pr < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents)
                        break;
                if (p[0].revents & POLLNVAL)
                        break;
                size_t avail = 0;
                uint8_t *space = tr__frame_reader_space(&rd, READ_CHUNK, &avail);
                if (!space || avail == 0)
                        break;
                ssize_t n = read(c->fd, space, avail);
                if (n == 0)
                        break;
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                                continue;
                        break;
                }
                tr__frame_reader_commit(&rd, (size_t) n);

                bool close_conn = false;
                for (;;) {
                        const uint8_t *payload = NULL;
                        size_t plen = 0;
                        int fr = tr__frame_reader_next(&rd, &payload, &plen);
                        if (fr == 0)
                                break;
                        if (fr < 0) {
                                /* After an oversized header the stream cannot
                                 * be resynchronised: say why, then hang up. */
                                send_error(c, NULL, tr_code_name(TR_E_PROTOCOL),
                                           "frame exceeds the 1 MiB message cap; closing the connection");
                                tr_exec_log(c->s->ex, TR_LOG_WARN, "gateway: oversized frame from the sandbox", NULL);
                                close_conn = true;
                                break;
                        }
                        if (handle_frame(c, payload, plen) < 0) {
                                close_conn = true;
                                break;
                        }
                }
                if (close_conn)
                        break;
        }
        tr__frame_reader_done(&rd);
        close(c->fd);
        c->fd = -1;
        atomic_store(&c->done, true);
        return NULL;
}

/* Join connections whose thread has finished.  Called with s->lock held. */
static void reap_locked(tr__gw_session *s) {
        conn **pp = &s->conns;
        while (*pp) {
                conn *c = *pp;
                if (atomic_load(&c->done)) {
                        pthread_join(c->thread, NULL);
                        *pp = c->next;
                        s->n_live--;
                        free(c);
                } else
                        pp = &c->next;
        }
}

static int add_conn(tr__gw_session *s, int fd, tr_error **ret_err) {
        _cleanup_close_ int cfd = fd;
        struct stat st;
        if (fstat(cfd, &st) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve", "bad fd: %m");
        /* Non-blocking so that reads and writes always come back to poll(),
         * which also watches the stop pipe. */
        int fl = fcntl(cfd, F_GETFL);
        if (fl < 0 || fcntl(cfd, F_SETFL, fl | O_NONBLOCK) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve", "fcntl: %m");
        (void) fcntl(cfd, F_SETFD, FD_CLOEXEC);

        pthread_mutex_lock(&s->lock);
        reap_locked(s);
        if (s->stopping || s->n_live >= MAX_CONNS) {
                bool stopping = s->stopping;
                pthread_mutex_unlock(&s->lock);
                return tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, TR_BACKEND_NONE, "gateway.serve",
                                    stopping ? "the session is stopping" : "too many gateway connections (max %d)",
                                    MAX_CONNS);
        }
        conn *c = calloc(1, sizeof(*c));
        if (!c) {
                pthread_mutex_unlock(&s->lock);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve", "out of memory");
        }
        c->s = s;
        c->fd = TAKE_FD(cfd);
        c->is_socket = S_ISSOCK(st.st_mode);
        atomic_init(&c->done, false);
        int r = start_thread(&c->thread, conn_main, c);
        if (r < 0) {
                pthread_mutex_unlock(&s->lock);
                close(c->fd);
                free(c);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve",
                                    "cannot start a server thread: %s", strerror(-r));
        }
        c->next = s->conns;
        s->conns = c;
        s->n_live++;
        pthread_mutex_unlock(&s->lock);
        return 0;
}

static void *listen_main(void *arg) {
        tr__gw_session *s = arg;
        for (;;) {
                struct pollfd p[2] = { { .fd = s->listen_fd, .events = POLLIN },
                                       { .fd = s->stop_rd, .events = POLLIN } };
                int pr = poll(p, 2, -1);
                if (pr < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents || (p[0].revents & POLLNVAL))
                        break;
                int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
                                continue;
                        /* EMFILE and friends: back off instead of spinning. */
                        poll(&p[1], 1, 100);
                        continue;
                }
                tr_error *err = NULL;
                if (add_conn(s, fd, &err) < 0) {
                        tr_exec_log(s->ex, TR_LOG_WARN, "gateway: connection refused", "reason", tr_error_message(err),
                                    NULL);
                        tr_error_free(err);
                }
        }
        return NULL;
}

/* ---- public (library-internal) API ---------------------------------------- */

int tr__gw_session_new(tr_exec *ex, tr__gw_session **ret_session, tr_error **ret_err) {
        if (!ex || !ret_session)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.session", "invalid argument");
        tr__gw_session *s = calloc(1, sizeof(*s));
        if (!s)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.session", "out of memory");
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
                int r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.session", "pipe2: %m");
                free(s);
                return r;
        }
        pthread_mutex_init(&s->lock, NULL);
        s->stop_rd = pfd[0];
        s->stop_wr = pfd[1];
        s->listen_fd = -1;
        s->ex = ex;
        const tr_request *req = tr_exec_request(ex);
        s->gw = req ? tr_request_gateway(req) : NULL;
        const tr_limits *lim = req ? tr_exec_limits(ex) : NULL;
        if (lim) {
                s->max_tool_calls = lim->max_tool_calls > 0 ? lim->max_tool_calls : 0;
                s->max_chain_steps = lim->max_chain_steps > 0 ? lim->max_chain_steps : 0;
        }
        *ret_session = s;
        return 0;
}

int tr__gw_session_serve_fd(tr__gw_session *s, int fd, tr_error **ret_err) {
        if (!s || fd < 0) {
                if (fd >= 0)
                        close(fd);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve", "invalid argument");
        }
        return add_conn(s, fd, ret_err);
}

int tr__gw_session_listen_unix(tr__gw_session *s, const char *path, tr_error **ret_err) {
        if (!s || !path)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen", "invalid argument");
        if (s->listening)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen",
                                    "the session already listens on %s", s->sock_path);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen",
                                    "socket path too long: %s", path);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen", "socket: %m");
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen", "bind %s: %m", path);
        _cleanup_free_ char *p = strdup(path);
        /* The sandbox user is not the host user: the socket itself is open
         * to everyone who can reach it, and reaching it is what the private
         * directory (and the bind mount of that directory alone) controls. */
        if (!p || chmod(path, 0666) < 0 || listen(fd, MAX_CONNS) < 0) {
                int r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen", "listen %s: %m", path);
                unlink(path);
                return r;
        }
        s->listen_fd = TAKE_FD(fd);
        int r = start_thread(&s->listen_thread, listen_main, s);
        if (r < 0) {
                close(s->listen_fd);
                s->listen_fd = -1;
                unlink(path);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen",
                                    "cannot start the listener thread: %s", strerror(-r));
        }
        s->sock_path = TAKE_PTR(p);
        s->listening = true;
        return 0;
}

void tr__gw_session_free(tr__gw_session *s) {
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_mutex_unlock(&s->lock);
        /* One byte makes the pipe readable for good: every poll() wakes. */
        ssize_t w;
        do
                w = write(s->stop_wr, "x", 1);
        while (w < 0 && errno == EINTR);
        if (s->listening)
                pthread_join(s->listen_thread, NULL);
        /* The listener is gone, so the list only shrinks now.  A thread in
         * the middle of a tool call sees the pipe there too: manifest tools
         * are killed and MCP requests abandoned at once (callctx.h); only
         * an embedder's callback runs to its end. */
        conn *c = s->conns;
        while (c) {
                conn *next = c->next;
                pthread_join(c->thread, NULL);
                free(c);
                c = next;
        }
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        if (s->sock_path)
                unlink(s->sock_path);
        free(s->sock_path);
        close(s->stop_rd);
        close(s->stop_wr);
        pthread_mutex_destroy(&s->lock);
        free(s);
}
