/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A gRPC call's life on the client's connection (grpc_int.h): started
 * (headers and the length-prefixed message), its response messages parsed
 * under the caps, its status turned into a tr_error, waited for under the
 * deadline and cancel fd; and the unary call on top.
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

/* ---- calls ------------------------------------------------------------ */

void tr__grpc_call_fail(tr__grpc_call *call, int errnum, const char *message) {
        if (!call->done && !call->local_errno) {
                call->local_errno = errnum;
                snprintf(call->local_message, sizeof call->local_message, "%s", message);
        }
        call->done = true;
}

/* Split complete gRPC messages off the receive buffer. */
void tr__grpc_call_parse(tr__grpc_call *call) {
        size_t off = 0;
        while (!call->local_errno && call->rx_len - off >= 5) {
                const uint8_t *p = call->rx + off;
                uint32_t len = (uint32_t) p[1] << 24 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 8 | p[4];
                if (p[0] != 0) {
                        tr__grpc_call_fail(call, EBADMSG, "compressed gRPC message (no encoding was negotiated)");
                        break;
                }
                if (len > TR_GRPC_MAX_MESSAGE || call->total + len > TR_GRPC_MAX_CALL_BYTES) {
                        tr__grpc_call_fail(call, EMSGSIZE, "response exceeds the size cap");
                        break;
                }
                if (call->rx_len - off - 5 < len)
                        break;
                if (call->n_msgs >= MAX_CALL_MESSAGES) {
                        tr__grpc_call_fail(call, EMSGSIZE, "too many messages in one response");
                        break;
                }
                msg *nm = realloc(call->msgs, (call->n_msgs + 1) * sizeof *nm);
                uint8_t *copy = malloc(len ? len : 1);
                if (!nm || !copy) {
                        if (nm)
                                call->msgs = nm;
                        free(copy);
                        tr__grpc_call_fail(call, ENOMEM, "out of memory");
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

void tr__grpc_call_unlink(tr__grpc_call *call) {
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
        tr__grpc_call_unlink(call);
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
                        return tr__grpc_conn_err(ret_err, TR_E_TIMEOUT, ETIMEDOUT, op,
                                                 "containerd did not answer %s in time", call->path);
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, EINPROGRESS, op, "%s: call still in flight",
                                         call->path);
        }
        if (call->local_errno) {
                int e = call->local_errno;
                tr_code code = (e == EPIPE || e == ECONNRESET || e == ECONNABORTED) ? TR_E_DAEMON_UNAVAILABLE
                                                                                    : TR_E_CONTAINER_FAILED;
                if (e == ENOMEM)
                        code = TR_E_INTERNAL;
                return tr__grpc_conn_err(ret_err, code, e, op, "containerd: %s", call->local_message);
        }
        if (call->grpc_status < 0) {
                if (call->http_status != 200 && call->http_status != 0) {
                        char m[64];
                        snprintf(m, sizeof m, "unexpected HTTP status %d", call->http_status);
                        return tr__grpc_conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, op, "containerd: %s", m);
                }
                return tr__grpc_conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, op, "containerd: %s",
                                         "response without grpc-status");
        }
        if (call->grpc_status == TR_GRPC_OK) {
                if (call->http_status != 200 || !call->content_type_ok)
                        return tr__grpc_conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, op, "containerd: %s",
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

int tr__grpc_call_start(tr__grpc_conn *c, const char *path, const void *msgp, size_t len, const char *lease,
                        int64_t deadline_ns, tr__grpc_call **ret_call, tr_error **ret_err) {
        if (len > TR_GRPC_MAX_MESSAGE)
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, EMSGSIZE, path, "%s", "request exceeds the size cap");
        uint8_t *body = malloc(len + 5);
        if (!body)
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, ENOMEM, path, "%s", "out of memory");
        tr__grpc_frame_prefix(body, (uint32_t) len);
        if (len)
                memcpy(body + 5, msgp, len);
        return tr__grpc_call_start_body(c, path, body, len + 5, lease, deadline_ns, ret_call, ret_err);
}

int tr__grpc_call_start_body(tr__grpc_conn *c, const char *path, uint8_t *body, size_t len, const char *lease,
                             int64_t deadline_ns, tr__grpc_call **ret_call, tr_error **ret_err) {
        if (c->broken) {
                free(body);
                return tr__grpc_conn_broken_err(c, ret_err);
        }
        tr__grpc_call *call = calloc(1, sizeof *call);
        if (!call) {
                free(body);
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, ENOMEM, path, "%s", "out of memory");
        }
        call->grpc_status = -1;
        call->deadline_ns = deadline_ns;
        call->path = strdup(path);
        call->tx = body;
        call->tx_len = len;
        if (!call->path) {
                tr__grpc_call_free(call);
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, ENOMEM, path, "%s", "out of memory");
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
        nghttp2_data_provider prd = { .source.ptr = call, .read_callback = tr__grpc_body_read };
        int32_t id = nghttp2_submit_request(c->session, NULL, nva, nvlen, &prd, call);
        if (id < 0) {
                tr__grpc_call_free(call);
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, EPROTO, path, "nghttp2: %s", nghttp2_strerror(id));
        }
        call->stream_id = id;
        call->conn = c;
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        if (tr__grpc_conn_flush(c) < 0) {
                tr__grpc_call_free(call);
                return tr__grpc_conn_broken_err(c, ret_err);
        }
        *ret_call = call;
        return 0;
}

int tr__grpc_call_start_pb(tr__grpc_conn *c, const char *path, const ProtobufCMessage *req, const char *lease,
                           int64_t deadline_ns, tr__grpc_call **ret_call, tr_error **ret_err) {
        size_t len = protobuf_c_message_get_packed_size(req);
        if (len > TR_GRPC_MAX_MESSAGE)
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, EMSGSIZE, path, "%s", "request exceeds the size cap");
        _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
                return tr__grpc_conn_err(ret_err, TR_E_INTERNAL, ENOMEM, path, "%s", "out of memory");
        protobuf_c_message_pack(req, buf);
        return tr__grpc_call_start(c, path, buf, len, lease, deadline_ns, ret_call, ret_err);
}

int tr__grpc_call_wait(tr__grpc_conn *c, tr__grpc_call *call, int cancel_fd, tr_error **ret_err) {
        while (!call->done) {
                if (tr__grpc_cancel_fired(cancel_fd))
                        return tr__grpc_conn_err(ret_err, TR_E_CANCELLED, ECANCELED, call->path, "%s",
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
                return tr__grpc_conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, path, "containerd: %s",
                                         "expected exactly one response message");
        ProtobufCMessage *m = protobuf_c_message_unpack(resp_desc, NULL, call->msgs[0].len, call->msgs[0].data);
        if (!m)
                return tr__grpc_conn_err(ret_err, TR_E_CONTAINER_FAILED, EBADMSG, path, "containerd: %s",
                                         "malformed protobuf response");
        *ret_resp = m;
        return 0;
}
