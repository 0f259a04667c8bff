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
#include "util/macros.h"
#include "util/timeutil.h"

#define RX_CHUNK 65536
/* Flow-control windows we advertise: big enough that a 16 MiB response
 * does not stall on WINDOW_UPDATE round trips. */
#define STREAM_WINDOW (16 * 1024 * 1024)
#define CONN_WINDOW   (64 * 1024 * 1024)
/* Response messages one call may receive: zero-length messages count
 * nothing against the byte caps, yet each costs an entry (the backend's
 * calls get one message each; a stream of them is a misbehaving peer). */
#define MAX_CALL_MESSAGES 4096

typedef struct msg {
        uint8_t *data;
        size_t len;
} msg;

struct tr__grpc_call {
        tr__grpc_conn *conn;        /* NULL once the connection is gone */
        struct tr__grpc_call *next; /* the connection's list of live calls */
        struct tr__grpc_call *prev;
        int32_t stream_id;
        char *path;
        int64_t deadline_ns;
        /* request body: prefix + message */
        uint8_t *tx;
        size_t tx_len;
        size_t tx_off;
        /* response */
        uint8_t *rx;
        size_t rx_len;
        size_t rx_alloc;
        msg *msgs;
        size_t n_msgs;
        size_t total;
        int http_status;
        bool content_type_ok;
        int grpc_status; /* -1 until seen */
        char grpc_message[TR_GRPC_MAX_STATUS_MESSAGE];
        bool done;
        /* A local failure (cap exceeded, malformed frame, reset, transport):
         * reported instead of the gRPC status. */
        int local_errno;
        char local_message[256];
};

struct tr__grpc_conn {
        int fd;
        char *ns;
        nghttp2_session *session;
        uint8_t *out; /* bytes nghttp2 produced that the socket did not take yet */
        size_t out_len;
        size_t out_alloc;
        tr__grpc_call *calls;
        bool broken;
        int broken_errno;
        char broken_message[256];
};

static int conn_err(tr_error **ret_err, tr_code code, int errnum, const char *op, const char *fmt, const char *detail) {
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

/* ---- calls ------------------------------------------------------------ */

static void call_fail(tr__grpc_call *call, int errnum, const char *message) {
        if (!call->done && !call->local_errno) {
                call->local_errno = errnum;
                snprintf(call->local_message, sizeof call->local_message, "%s", message);
        }
        call->done = true;
}

/* Split complete gRPC messages off the receive buffer. */
static void call_parse(tr__grpc_call *call) {
        size_t off = 0;
        while (!call->local_errno && call->rx_len - off >= 5) {
                const uint8_t *p = call->rx + off;
                uint32_t len = (uint32_t) p[1] << 24 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 8 | p[4];
                if (p[0] != 0) {
                        call_fail(call, EBADMSG, "compressed gRPC message (no encoding was negotiated)");
                        break;
                }
                if (len > TR_GRPC_MAX_MESSAGE || call->total + len > TR_GRPC_MAX_CALL_BYTES) {
                        call_fail(call, EMSGSIZE, "response exceeds the size cap");
                        break;
                }
                if (call->rx_len - off - 5 < len)
                        break;
                if (call->n_msgs >= MAX_CALL_MESSAGES) {
                        call_fail(call, EMSGSIZE, "too many messages in one response");
                        break;
                }
                msg *nm = realloc(call->msgs, (call->n_msgs + 1) * sizeof *nm);
                uint8_t *copy = malloc(len ? len : 1);
                if (!nm || !copy) {
                        if (nm)
                                call->msgs = nm;
                        free(copy);
                        call_fail(call, ENOMEM, "out of memory");
                        break;
                }
                call->msgs = nm;
                memcpy(copy, p + 5, len);
                call->msgs[call->n_msgs++] = (msg){ copy, len };
                call->total += len;
                off += 5 + (size_t) len;
        }
        if (off > 0) {
                memmove(call->rx, call->rx + off, call->rx_len - off);
                call->rx_len -= off;
        }
}

static void call_unlink(tr__grpc_call *call) {
        tr__grpc_conn *c = call->conn;
        if (!c)
                return;
        if (call->prev)
                call->prev->next = call->next;
        else
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        call->next = call->prev = NULL;
        call->conn = NULL;
}

void tr__grpc_call_free(tr__grpc_call *call) {
        if (!call)
                return;
        tr__grpc_conn *c = call->conn;
        if (c && call->stream_id > 0) {
                /* Detach first: callbacks for this stream must not touch freed memory. */
                nghttp2_session_set_stream_user_data(c->session, call->stream_id, NULL);
                if (!call->done) {
                        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
                        /* Best effort: the reset goes out with the next poll, or never if the
                         * connection is freed first, which closes the stream anyway. */
                }
        }
        call_unlink(call);
        for (size_t i = 0; i < call->n_msgs; i++)
                free(call->msgs[i].data);
        free(call->msgs);
        free(call->rx);
        free(call->tx);
        free(call->path);
        free(call);
}

bool tr__grpc_call_done(const tr__grpc_call *call) {
        return call->done;
}

size_t tr__grpc_call_n_messages(const tr__grpc_call *call) {
        return call->n_msgs;
}

const uint8_t *tr__grpc_call_message(const tr__grpc_call *call, size_t i, size_t *ret_len) {
        if (i >= call->n_msgs)
                return NULL;
        *ret_len = call->msgs[i].len;
        return call->msgs[i].data;
}

static int grpc_status_errno(int status) {
        switch (status) {
        case TR_GRPC_NOT_FOUND: return ENOENT;
        case TR_GRPC_ALREADY_EXISTS: return EEXIST;
        case TR_GRPC_FAILED_PRECONDITION: return EBUSY;
        case TR_GRPC_INVALID_ARGUMENT: return EINVAL;
        case TR_GRPC_DEADLINE_EXCEEDED: return ETIMEDOUT;
        case TR_GRPC_UNAVAILABLE: return EAGAIN;
        case TR_GRPC_UNIMPLEMENTED: return EOPNOTSUPP;
        default: return EREMOTEIO;
        }
}

int tr__grpc_call_result(const tr__grpc_call *call, tr_error **ret_err) {
        const char *op = call->path;
        if (!call->done) {
                if (tr__now_ns() >= call->deadline_ns)
                        return conn_err(ret_err, TR_E_TIMEOUT, ETIMEDOUT, op, "containerd did not answer %s in time",
                                        call->path);
                return conn_err(ret_err, TR_E_INTERNAL, EINPROGRESS, op, "%s: call still in flight", call->path);
        }
        if (call->local_errno) {
                int e = call->local_errno;
                tr_code code = (e == EPIPE || e == ECONNRESET || e == ECONNABORTED) ? TR_E_DAEMON_UNAVAILABLE
                                                                                    : TR_E_CONTAINER_FAILED;
                if (e == ENOMEM)
                        code = TR_E_INTERNAL;
                return conn_err(ret_err, code, e, op, "containerd: %s", call->local_message);
        }
        if (call->grpc_status < 0) {
                if (call->http_status != 200 && call->http_status != 0) {
                        char m[64];
                        snprintf(m, sizeof m, "unexpected HTTP status %d", call->http_status);
                        return conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, op, "containerd: %s", m);
                }
                return conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, op, "containerd: %s",
                                "response without grpc-status");
        }
        if (call->grpc_status == TR_GRPC_OK) {
                if (call->http_status != 200 || !call->content_type_ok)
                        return conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, op, "containerd: %s",
                                        "response is not gRPC (status or content-type)");
                return 0;
        }
        int e = grpc_status_errno(call->grpc_status);
        /* DEADLINE_EXCEEDED answers the grpc-timeout we sent: our deadline.
         * Errors from the shim reach us as UNKNOWN "context deadline
         * exceeded" instead; at our deadline, that is the same thing. */
        bool deadline_hit = call->grpc_status == TR_GRPC_DEADLINE_EXCEEDED ||
                            (tr__now_ns() >= call->deadline_ns - 100 * TR_NSEC_PER_MSEC &&
                             strstr(call->grpc_message, "deadline exceeded"));
        tr_code code = deadline_hit                               ? TR_E_TIMEOUT
                       : call->grpc_status == TR_GRPC_UNAVAILABLE ? TR_E_DAEMON_UNAVAILABLE
                                                                  : TR_E_CONTAINER_FAILED;
        if (deadline_hit)
                e = ETIMEDOUT;
        tr_error_set(ret_err, code, TR_BACKEND_CONTAINERD, op, "containerd: %s",
                     call->grpc_message[0] ? call->grpc_message : "error without a message");
        if (ret_err && *ret_err) {
                tr_error_set_grpc_status(*ret_err, call->grpc_status);
                tr_error_set_errno(*ret_err, e);
                if (code == TR_E_DAEMON_UNAVAILABLE)
                        tr_error_set_retryable(*ret_err, true);
        }
        return -e;
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
                call_fail(call, EMSGSIZE, "response exceeds the size cap");
                nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
                return 0;
        }
        if (call->rx_len + len > call->rx_alloc) {
                size_t na = call->rx_alloc ? call->rx_alloc : 4096;
                while (na < call->rx_len + len)
                        na *= 2;
                uint8_t *n = realloc(call->rx, na);
                if (!n) {
                        call_fail(call, ENOMEM, "out of memory");
                        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
                        return 0;
                }
                call->rx = n;
                call->rx_alloc = na;
        }
        memcpy(call->rx + call->rx_len, data, len);
        call->rx_len += len;
        call_parse(call);
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
                call_fail(call, ECONNRESET, m);
        }
        if (!call->local_errno && call->rx_len > 0 && call->grpc_status == TR_GRPC_OK)
                call_fail(call, EBADMSG, "truncated gRPC message at end of stream");
        call->done = true;
        return 0;
}

static ssize_t body_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
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
                call_fail(call, errnum, message);
}

static int conn_broken_err(tr__grpc_conn *c, tr_error **ret_err) {
        return conn_err(ret_err, TR_E_DAEMON_UNAVAILABLE, c->broken_errno ? c->broken_errno : EPIPE, "grpc",
                        "connection to containerd lost: %s", c->broken_message);
}

/* Move what nghttp2 wants to send into the socket, keeping what does not
 * fit in c->out. */
static int conn_flush(tr__grpc_conn *c) {
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
                return conn_broken_err(c, ret_err);
        if (conn_flush(c) < 0)
                return conn_broken_err(c, ret_err);
        struct pollfd pfd[9];
        if (n_extra > ARRAY_SIZE(pfd) - 1)
                return conn_err(ret_err, TR_E_INTERNAL, EINVAL, "grpc", "%s", "too many fds to poll");
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
                return conn_err(ret_err, TR_E_INTERNAL, errno, "grpc", "poll: %s", strerror(errno));
        for (size_t i = 0; i < n_extra; i++)
                extra[i].revents = pfd[i + 1].revents;
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (conn_read(c) < 0)
                        return conn_broken_err(c, ret_err);
        }
        if (conn_flush(c) < 0)
                return conn_broken_err(c, ret_err);
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
                call_fail(call, EPIPE, "connection closed");
                call_unlink(call);
        }
        if (c->session)
                nghttp2_session_del(c->session);
        if (c->fd >= 0)
                close(c->fd);
        free(c->out);
        free(c->ns);
        free(c);
}

static bool cancel_fired(int cancel_fd) {
        if (cancel_fd < 0)
                return false;
        struct pollfd p = { .fd = cancel_fd, .events = POLLIN };
        return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

int tr__grpc_connect(const char *socket_path, const char *ns, int64_t deadline_ns, int cancel_fd,
                     tr__grpc_conn **ret_conn, tr_error **ret_err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(socket_path) >= sizeof sa.sun_path)
                return conn_err(ret_err, TR_E_CONTAINERD_NOT_AVAILABLE, ENAMETOOLONG, "connect",
                                "containerd socket path is too long: %s", socket_path);
        memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return conn_err(ret_err, TR_E_INTERNAL, errno, "connect", "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int e = errno;
                if (e == EAGAIN || e == EINPROGRESS) {
                        /* A full listen backlog: wait for the daemon to accept, within the deadline. */
                        struct pollfd p[2] = { { .fd = fd, .events = POLLOUT }, { .fd = cancel_fd, .events = POLLIN } };
                        int r = poll(p, cancel_fd >= 0 ? 2 : 1, tr__poll_timeout_ms(deadline_ns));
                        if (r > 0 && (p[1].revents & POLLIN))
                                return conn_err(ret_err, TR_E_CANCELLED, ECANCELED, "connect", "%s",
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
                        int r = conn_err(ret_err, TR_E_CONTAINERD_NOT_AVAILABLE, e, "connect",
                                         "containerd socket %s does not exist: install containerd (apt-get install "
                                         "containerd runc) and start it (`containerd &`, or `make demo`), or point "
                                         "--socket at a running instance",
                                         socket_path);
                        if (ret_err && *ret_err)
                                tr_error_set_retryable(*ret_err, true);
                        return r;
                }
                if (e == EACCES || e == EPERM)
                        return conn_err(ret_err, TR_E_CONTAINERD_NOT_AVAILABLE, e, "connect",
                                        "permission denied on containerd socket %s: run as root or as a member of "
                                        "the socket's group",
                                        socket_path);
                if (e == ENOTSOCK || e == EPROTOTYPE)
                        return conn_err(ret_err, TR_E_CONTAINERD_NOT_AVAILABLE, e, "connect",
                                        "%s is not a containerd socket", socket_path);
                if (e == ETIMEDOUT)
                        return conn_err(ret_err, TR_E_DAEMON_UNAVAILABLE, e, "connect",
                                        "containerd at %s did not accept the connection in time", socket_path);
                if (e == ECONNREFUSED)
                        return conn_err(ret_err, TR_E_DAEMON_UNAVAILABLE, e, "connect",
                                        "containerd is not listening on %s (connection refused): is the daemon "
                                        "running?",
                                        socket_path);
                if (e != 0)
                        return conn_err(ret_err, TR_E_DAEMON_UNAVAILABLE, e, "connect", "connect: %s", strerror(e));
        }

        _cleanup_free_ tr__grpc_conn *c = calloc(1, sizeof *c);
        if (!c)
                return conn_err(ret_err, TR_E_INTERNAL, ENOMEM, "connect", "%s", "out of memory");
        c->fd = -1;
        c->ns = strdup(ns);
        if (!c->ns)
                return conn_err(ret_err, TR_E_INTERNAL, ENOMEM, "connect", "%s", "out of memory");

        nghttp2_session_callbacks *cbs;
        if (nghttp2_session_callbacks_new(&cbs) != 0) {
                free(c->ns);
                return conn_err(ret_err, TR_E_INTERNAL, ENOMEM, "connect", "%s", "out of memory");
        }
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        int r = nghttp2_session_client_new(&c->session, cbs, c);
        nghttp2_session_callbacks_del(cbs);
        if (r != 0) {
                free(c->ns);
                return conn_err(ret_err, TR_E_INTERNAL, ENOMEM, "connect", "nghttp2: %s", nghttp2_strerror(r));
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
                return conn_err(ret_err, TR_E_INTERNAL, EPROTO, "connect", "nghttp2: %s", nghttp2_strerror(r));
        }
        /* The preface and SETTINGS go out with the first call; a dead peer
         * shows up there as a transport error within that call's deadline. */
        *ret_conn = TAKE_PTR(c);
        return 0;
}

int tr__grpc_call_start(tr__grpc_conn *c, const char *path, const void *msgp, size_t len, const char *lease,
                        int64_t deadline_ns, tr__grpc_call **ret_call, tr_error **ret_err) {
        if (len > TR_GRPC_MAX_MESSAGE)
                return conn_err(ret_err, TR_E_INTERNAL, EMSGSIZE, path, "%s", "request exceeds the size cap");
        uint8_t *body = malloc(len + 5);
        if (!body)
                return conn_err(ret_err, TR_E_INTERNAL, ENOMEM, path, "%s", "out of memory");
        tr__grpc_frame_prefix(body, (uint32_t) len);
        if (len)
                memcpy(body + 5, msgp, len);
        return tr__grpc_call_start_body(c, path, body, len + 5, lease, deadline_ns, ret_call, ret_err);
}

int tr__grpc_call_start_body(tr__grpc_conn *c, const char *path, uint8_t *body, size_t len, const char *lease,
                             int64_t deadline_ns, tr__grpc_call **ret_call, tr_error **ret_err) {
        if (c->broken) {
                free(body);
                return conn_broken_err(c, ret_err);
        }
        tr__grpc_call *call = calloc(1, sizeof *call);
        if (!call) {
                free(body);
                return conn_err(ret_err, TR_E_INTERNAL, ENOMEM, path, "%s", "out of memory");
        }
        call->grpc_status = -1;
        call->deadline_ns = deadline_ns;
        call->path = strdup(path);
        call->tx = body;
        call->tx_len = len;
        if (!call->path) {
                tr__grpc_call_free(call);
                return conn_err(ret_err, TR_E_INTERNAL, ENOMEM, path, "%s", "out of memory");
        }

        char timeout[32];
        tr__grpc_timeout_header((deadline_ns - tr__now_ns()) / TR_NSEC_PER_MSEC, timeout, sizeof timeout);
#define NV(n, v) { (uint8_t *) (n), (uint8_t *) (v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }
        nghttp2_nv nva[] = {
                NV(":method", "POST"),
                NV(":scheme", "http"),
                NV(":path", path),
                /* grpc-go's own unix dialer sends "localhost"; containerd ignores it. */
                NV(":authority", "localhost"),
                NV("content-type", "application/grpc"),
                NV("te", "trailers"),
                NV("user-agent", "toolruntime/" TR_VERSION_STRING),
                NV("grpc-timeout", timeout),
                NV("containerd-namespace", c->ns),
                NV("containerd-lease", lease ? lease : ""),
        };
#undef NV
        size_t nvlen = ARRAY_SIZE(nva) - (lease ? 0 : 1);
        nghttp2_data_provider prd = { .source.ptr = call, .read_callback = body_read };
        int32_t id = nghttp2_submit_request(c->session, NULL, nva, nvlen, &prd, call);
        if (id < 0) {
                tr__grpc_call_free(call);
                return conn_err(ret_err, TR_E_INTERNAL, EPROTO, path, "nghttp2: %s", nghttp2_strerror(id));
        }
        call->stream_id = id;
        call->conn = c;
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        if (conn_flush(c) < 0) {
                tr__grpc_call_free(call);
                return conn_broken_err(c, ret_err);
        }
        *ret_call = call;
        return 0;
}

int tr__grpc_call_start_pb(tr__grpc_conn *c, const char *path, const ProtobufCMessage *req, const char *lease,
                           int64_t deadline_ns, tr__grpc_call **ret_call, tr_error **ret_err) {
        size_t len = protobuf_c_message_get_packed_size(req);
        if (len > TR_GRPC_MAX_MESSAGE)
                return conn_err(ret_err, TR_E_INTERNAL, EMSGSIZE, path, "%s", "request exceeds the size cap");
        _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
                return conn_err(ret_err, TR_E_INTERNAL, ENOMEM, path, "%s", "out of memory");
        protobuf_c_message_pack(req, buf);
        return tr__grpc_call_start(c, path, buf, len, lease, deadline_ns, ret_call, ret_err);
}

int tr__grpc_call_wait(tr__grpc_conn *c, tr__grpc_call *call, int cancel_fd, tr_error **ret_err) {
        while (!call->done) {
                if (cancel_fired(cancel_fd))
                        return conn_err(ret_err, TR_E_CANCELLED, ECANCELED, call->path, "%s",
                                        "cancelled while waiting for containerd");
                int t = tr__poll_timeout_ms(call->deadline_ns);
                if (t == 0)
                        return tr__grpc_call_result(call, ret_err);
                struct pollfd extra = { .fd = cancel_fd, .events = POLLIN };
                int r = tr__grpc_conn_poll(c, &extra, cancel_fd >= 0 ? 1 : 0, t, ret_err);
                if (r < 0)
                        return r;
        }
        return tr__grpc_call_result(call, ret_err);
}

int tr__grpc_unary(tr__grpc_conn *c, const char *path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, const char *lease, int64_t deadline_ns, int cancel_fd,
                   ProtobufCMessage **ret_resp, tr_error **ret_err) {
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        int r = tr__grpc_call_start_pb(c, path, req, lease, deadline_ns, &call, ret_err);
        if (r < 0)
                return r;
        r = tr__grpc_call_wait(c, call, cancel_fd, ret_err);
        if (r < 0)
                return r;
        if (!ret_resp)
                return 0;
        if (call->n_msgs != 1)
                return conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, path, "containerd: %s",
                                "expected exactly one response message");
        ProtobufCMessage *m = protobuf_c_message_unpack(resp_desc, NULL, call->msgs[0].len, call->msgs[0].data);
        if (!m)
                return conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, path, "containerd: %s",
                                "malformed protobuf response");
        *ret_resp = m;
        return 0;
}
