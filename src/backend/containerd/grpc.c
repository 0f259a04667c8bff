/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC over HTTP/2 on a unix socket, with libnghttp2 doing the HTTP/2.
 *
 * Why nghttp2 and not grpc's C core: the core is a large C++ runtime with
 * its own threads, polling engine and global init; all this backend needs
 * is unary calls and two server-streaming ones on a local socket, which is
 * a few hundred lines on top of an HTTP/2 framer, with every buffer under
 * our caps and every wait under our deadline and cancel fd.
 *
 * The session is driven by hand (nghttp2_session_mem_send/mem_recv) on a
 * non-blocking socket, so a single poll() can watch the connection next to
 * a task's output FIFOs and the caller's cancel fd.
 *
 * This file: the connection and nghttp2's callbacks; a call's life (start,
 * result, wait, unary) is grpc_call.c's (grpc_int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend/containerd/grpc.h"
#include "backend/containerd/grpc_int.h"
#include "util/macros.h"
#include "util/timeutil.h"

int tr__grpc_conn_err(tr_error **ret_err, tr_code code, int errnum, const char *op, const char *fmt,
                      const char *detail) {
        tr_error_set(ret_err, code, TR_BACKEND_CONTAINERD, op, fmt, detail);
        if (ret_err && *ret_err) {
                tr_error_set_errno(*ret_err, errnum);
                if (code == TR_E_DAEMON_UNAVAILABLE)
                        tr_error_set_retryable(*ret_err, true);
        }
        return -errnum;
}

void tr__grpc_percent_decode(const char *in, size_t len, char *out, size_t out_size) {
        size_t o = 0;
        for (size_t i = 0; i < len && o + 1 < out_size; i++) {
                char ch = in[i];
                if (ch == '%' && i + 2 < len) {
                        char hex[3] = { in[i + 1], in[i + 2], 0 };
                        char *end;
                        unsigned long v = strtoul(hex, &end, 16);
                        if (end == hex + 2) {
                                out[o++] = (char) v;
                                i += 2;
                                continue;
                        }
                }
                out[o++] = ch;
        }
        out[o] = 0;
}

void tr__grpc_frame_prefix(uint8_t out[5], uint32_t len) {
        out[0] = 0; /* not compressed: we never negotiate an encoding */
        out[1] = (uint8_t) (len >> 24);
        out[2] = (uint8_t) (len >> 16);
        out[3] = (uint8_t) (len >> 8);
        out[4] = (uint8_t) len;
}

void tr__grpc_timeout_header(int64_t ms, char *out, size_t out_size) {
        /* The value is at most 8 digits; pick the finest unit that fits. */
        if (ms < 1)
                ms = 1;
        if (ms <= 99999999)
                snprintf(out, out_size, "%" PRId64 "m", ms);
        else if (ms / 1000 <= 99999999)
                snprintf(out, out_size, "%" PRId64 "S", ms / 1000);
        else
                snprintf(out, out_size, "%" PRId64 "M", ms / 60000 > 99999999 ? 99999999 : ms / 60000);
}

/* ---- nghttp2 callbacks -------------------------------------------------- */

static tr__grpc_call *stream_call(nghttp2_session *s, int32_t stream_id) {
        return nghttp2_session_get_stream_user_data(s, stream_id);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
        if (frame->hd.type != NGHTTP2_HEADERS)
                return 0;
        tr__grpc_call *call = stream_call(s, frame->hd.stream_id);
        if (!call)
                return 0;
#define NAME_IS(lit) (namelen == sizeof(lit) - 1 && memcmp(name, lit, namelen) == 0)
        if (NAME_IS(":status")) {
                char buf[8] = { 0 };
                memcpy(buf, value, valuelen < sizeof buf - 1 ? valuelen : sizeof buf - 1);
                call->http_status = (int) strtol(buf, NULL, 10);
        } else if (NAME_IS("content-type")) {
                /* "application/grpc" optionally followed by "+proto" or ";..." */
                static const char ct[] = "application/grpc";
                call->content_type_ok =
                        valuelen >= sizeof ct - 1 && memcmp(value, ct, sizeof ct - 1) == 0 &&
                        (valuelen == sizeof ct - 1 || value[sizeof ct - 1] == '+' || value[sizeof ct - 1] == ';');
        } else if (NAME_IS("grpc-status")) {
                char buf[8] = { 0 };
                memcpy(buf, value, valuelen < sizeof buf - 1 ? valuelen : sizeof buf - 1);
                char *end;
                long v = strtol(buf, &end, 10);
                call->grpc_status = (end != buf && *end == 0 && v >= 0 && v <= 16) ? (int) v : TR_GRPC_UNKNOWN;
        } else if (NAME_IS("grpc-message")) {
                tr__grpc_percent_decode((const char *) value, valuelen, call->grpc_message, sizeof call->grpc_message);
        }
#undef NAME_IS
        return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
        tr__grpc_call *call = stream_call(s, stream_id);
        if (!call || call->local_errno)
                return 0;
        /* Cap the buffered, not-yet-framed bytes too: a peer announcing a
         * 16 MiB message may only send that much before we see a frame end. */
        if (call->rx_len + len > (size_t) TR_GRPC_MAX_MESSAGE + 5) {
                tr__grpc_call_fail(call, EMSGSIZE, "response exceeds the size cap");
                nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
                return 0;
        }
        if (call->rx_len + len > call->rx_alloc) {
                size_t na = call->rx_alloc ? call->rx_alloc : 4096;
                while (na < call->rx_len + len)
                        na *= 2;
                uint8_t *n = realloc(call->rx, na);
                if (!n) {
                        tr__grpc_call_fail(call, ENOMEM, "out of memory");
                        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
                        return 0;
                }
                call->rx = n;
                call->rx_alloc = na;
        }
        memcpy(call->rx + call->rx_len, data, len);
        call->rx_len += len;
        tr__grpc_call_parse(call);
        if (call->local_errno)
                nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
        return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *user_data) {
        tr__grpc_call *call = stream_call(s, stream_id);
        if (!call)
                return 0;
        if (error_code != NGHTTP2_NO_ERROR && call->grpc_status < 0) {
                char m[96];
                snprintf(m, sizeof m, "stream reset by containerd (%s)", nghttp2_http2_strerror(error_code));
                tr__grpc_call_fail(call, ECONNRESET, m);
        }
        if (!call->local_errno && call->rx_len > 0 && call->grpc_status == TR_GRPC_OK)
                tr__grpc_call_fail(call, EBADMSG, "truncated gRPC message at end of stream");
        call->done = true;
        return 0;
}

ssize_t tr__grpc_body_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
                           nghttp2_data_source *source, void *user_data) {
        tr__grpc_call *call = source->ptr;
        size_t left = call->tx_len - call->tx_off;
        size_t n = left < length ? left : length;
        memcpy(buf, call->tx + call->tx_off, n);
        call->tx_off += n;
        if (call->tx_off == call->tx_len) {
                *data_flags |= NGHTTP2_DATA_FLAG_EOF;
                /* The body is out: no need to keep it. */
                free(call->tx);
                call->tx = NULL;
                call->tx_len = call->tx_off = 0;
        }
        return (ssize_t) n;
}

/* ---- the connection ----------------------------------------------------- */

static void conn_break(tr__grpc_conn *c, int errnum, const char *message) {
        if (!c->broken) {
                c->broken = true;
                c->broken_errno = errnum;
                snprintf(c->broken_message, sizeof c->broken_message, "%s", message);
        }
        for (tr__grpc_call *call = c->calls; call; call = call->next)
                tr__grpc_call_fail(call, errnum, message);
}

int tr__grpc_conn_broken_err(tr__grpc_conn *c, tr_error **ret_err) {
        return tr__grpc_conn_err(ret_err, TR_E_DAEMON_UNAVAILABLE, c->broken_errno ? c->broken_errno : EPIPE, "grpc",
                                 "connection to containerd lost: %s", c->broken_message);
}

/* Move what nghttp2 wants to send into the socket, keeping what does not
 * fit in c->out. */
int tr__grpc_conn_flush(tr__grpc_conn *c) {
        for (;;) {
                while (c->out_len > 0) {
                        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN)
                                        return 0;
                                conn_break(c, errno, strerror(errno));
                                return -errno;
                        }
                        memmove(c->out, c->out + n, c->out_len - (size_t) n);
                        c->out_len -= (size_t) n;
                }
                const uint8_t *data;
                ssize_t n = nghttp2_session_mem_send(c->session, &data);
                if (n < 0) {
                        conn_break(c, EPROTO, nghttp2_strerror((int) n));
                        return -EPROTO;
                }
                if (n == 0)
                        return 0;
                if ((size_t) n > c->out_alloc) {
                        uint8_t *o = realloc(c->out, (size_t) n);
                        if (!o) {
                                conn_break(c, ENOMEM, "out of memory");
                                return -ENOMEM;
                        }
                        c->out = o;
                        c->out_alloc = (size_t) n;
                }
                memcpy(c->out, data, (size_t) n);
                c->out_len = (size_t) n;
        }
}

static int conn_read(tr__grpc_conn *c) {
        uint8_t buf[RX_CHUNK];
        for (;;) {
                ssize_t n = recv(c->fd, buf, sizeof buf, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        conn_break(c, errno, strerror(errno));
                        return -errno;
                }
                if (n == 0) {
                        conn_break(c, EPIPE, "containerd closed the connection");
                        return -EPIPE;
                }
                ssize_t r = nghttp2_session_mem_recv(c->session, buf, (size_t) n);
                if (r < 0) {
                        conn_break(c, EPROTO, nghttp2_strerror((int) r));
                        return -EPROTO;
                }
                if ((size_t) n < sizeof buf)
                        return 0;
        }
}

int tr__grpc_conn_poll(tr__grpc_conn *c, struct pollfd *extra, size_t n_extra, int timeout_ms, tr_error **ret_err) {
        if (c->broken)
                return tr__grpc_conn_broken_err(c, ret_err);
        if (tr__grpc_conn_flush(c) < 0)
                return tr__grpc_conn_broken_err(c, ret_err);
        struct pollfd pfd[9];
        if (n_extra > ARRAY_SIZE(pfd) - 1)
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, EINVAL, "grpc", "%s", "too many fds to poll");
        pfd[0] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
        if (c->out_len > 0)
                pfd[0].events |= POLLOUT;
        for (size_t i = 0; i < n_extra; i++) {
                pfd[i + 1] = extra[i];
                pfd[i + 1].revents = 0;
        }
        int r;
        do
                r = poll(pfd, n_extra + 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, errno, "grpc", "poll: %s", strerror(errno));
        for (size_t i = 0; i < n_extra; i++)
                extra[i].revents = pfd[i + 1].revents;
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (conn_read(c) < 0)
                        return tr__grpc_conn_broken_err(c, ret_err);
        }
        if (tr__grpc_conn_flush(c) < 0)
                return tr__grpc_conn_broken_err(c, ret_err);
        return 0;
}

bool tr__grpc_conn_reusable(tr__grpc_conn *c) {
        if (!c || c->broken || c->calls)
                return false;
        /* Whatever the daemon sent meanwhile (a PING, a GOAWAY, the EOF of a
         * restart) is read now, so a connection it closed is not reused. */
        if (tr__grpc_conn_poll(c, NULL, 0, 0, NULL) < 0)
                return false;
        return !c->broken && nghttp2_session_check_request_allowed(c->session);
}

void tr__grpc_conn_free(tr__grpc_conn *c) {
        if (!c)
                return;
        /* Calls outliving their connection fail instead of dangling. */
        while (c->calls) {
                tr__grpc_call *call = c->calls;
                tr__grpc_call_fail(call, EPIPE, "connection closed");
                tr__grpc_call_unlink(call);
        }
        if (c->session)
                nghttp2_session_del(c->session);
        if (c->fd >= 0)
                close(c->fd);
        free(c->out);
        free(c->ns);
        free(c);
}

bool tr__grpc_cancel_fired(int cancel_fd) {
        if (cancel_fd < 0)
                return false;
        struct pollfd p = { .fd = cancel_fd, .events = POLLIN };
        return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

int tr__grpc_connect(const char *socket_path, const char *ns, int64_t deadline_ns, int cancel_fd,
                     tr__grpc_conn **ret_conn, tr_error **ret_err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(socket_path) >= sizeof sa.sun_path)
                return tr__grpc_conn_err(ret_err, TR_E_CONTAINERD_NOT_AVAILABLE, ENAMETOOLONG, "connect",
                                         "containerd socket path is too long: %s", socket_path);
        memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, errno, "connect", "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int e = errno;
                if (e == EAGAIN || e == EINPROGRESS) {
                        /* A full listen backlog: wait for the daemon to accept, within the deadline. */
                        struct pollfd p[2] = { { .fd = fd, .events = POLLOUT }, { .fd = cancel_fd, .events = POLLIN } };
                        int r = poll(p, cancel_fd >= 0 ? 2 : 1, tr__poll_timeout_ms(deadline_ns));
                        if (r > 0 && (p[1].revents & POLLIN))
                                return tr__grpc_conn_err(ret_err, TR_E_CANCELLED, ECANCELED, "connect", "%s",
                                                         "cancelled while connecting to containerd");
                        int soerr = 0;
                        socklen_t sl = sizeof soerr;
                        if (r <= 0)
                                soerr = ETIMEDOUT;
                        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                                soerr = errno;
                        e = soerr;
                }
                if (e == ENOENT || e == ENOTDIR) {
                        /* Retryable: containerd removes its socket while it
                         * restarts, so a service sees this for a moment. */
                        int r = tr__grpc_conn_err(
                                ret_err, TR_E_CONTAINERD_NOT_AVAILABLE, e, "connect",
                                "containerd socket %s does not exist: install containerd (apt-get install "
                                "containerd runc) and start it (`containerd &`, or `make demo`), or point "
                                "--socket at a running instance",
                                socket_path);
                        if (ret_err && *ret_err)
                                tr_error_set_retryable(*ret_err, true);
                        return r;
                }
                if (e == EACCES || e == EPERM)
                        return tr__grpc_conn_err(
                                ret_err, TR_E_CONTAINERD_NOT_AVAILABLE, e, "connect",
                                "permission denied on containerd socket %s: run as root or as a member of "
                                "the socket's group",
                                socket_path);
                if (e == ENOTSOCK || e == EPROTOTYPE)
                        return tr__grpc_conn_err(ret_err, TR_E_CONTAINERD_NOT_AVAILABLE, e, "connect",
                                                 "%s is not a containerd socket", socket_path);
                if (e == ETIMEDOUT)
                        return tr__grpc_conn_err(ret_err, TR_E_DAEMON_UNAVAILABLE, e, "connect",
                                                 "containerd at %s did not accept the connection in time", socket_path);
                if (e == ECONNREFUSED)
                        return tr__grpc_conn_err(
                                ret_err, TR_E_DAEMON_UNAVAILABLE, e, "connect",
                                "containerd is not listening on %s (connection refused): is the daemon "
                                "running?",
                                socket_path);
                if (e != 0)
                        return tr__grpc_conn_err(ret_err, TR_E_DAEMON_UNAVAILABLE, e, "connect", "connect: %s",
                                                 strerror(e));
        }

        _cleanup_free_ tr__grpc_conn *c = calloc(1, sizeof *c);
        if (!c)
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, ENOMEM, "connect", "%s", "out of memory");
        c->fd = -1;
        c->ns = strdup(ns);
        if (!c->ns)
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, ENOMEM, "connect", "%s", "out of memory");

        nghttp2_session_callbacks *cbs;
        if (nghttp2_session_callbacks_new(&cbs) != 0) {
                free(c->ns);
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, ENOMEM, "connect", "%s", "out of memory");
        }
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        int r = nghttp2_session_client_new(&c->session, cbs, c);
        nghttp2_session_callbacks_del(cbs);
        if (r != 0) {
                free(c->ns);
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, ENOMEM, "connect", "nghttp2: %s", nghttp2_strerror(r));
        }
        c->fd = TAKE_FD(fd);
        nghttp2_settings_entry iv[] = {
                /* The daemon never pushes; refuse it rather than buffer it. */
                { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
                { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
                { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024 },
        };
        r = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
        if (r == 0)
                r = nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
        if (r != 0) {
                tr__grpc_conn_free(TAKE_PTR(c));
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, EPROTO, "connect", "nghttp2: %s", nghttp2_strerror(r));
        }
        /* The preface and SETTINGS go out with the first call; a dead peer
         * shows up there as a transport error within that call's deadline. */
        *ret_conn = TAKE_PTR(c);
        return 0;
}
