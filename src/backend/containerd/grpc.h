/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal gRPC client over HTTP/2 (libnghttp2) on a unix socket: what the
 * containerd backend needs to talk to containerd, and nothing else (no TLS,
 * no compression, no name resolution, no retries).
 *
 * A connection belongs to one thread at a time; the backend opens one per
 * execution, so executions on different threads never share one and need no
 * lock.  Within a connection several calls may be in flight at once (the
 * task runner keeps a Tasks.Wait open while it pumps the task's output and,
 * on a timeout, sends Tasks.Kill on a second stream).
 *
 * Everything the daemon sends is capped: one response message at
 * TR_GRPC_MAX_MESSAGE bytes, one call's messages together at
 * TR_GRPC_MAX_CALL_BYTES, grpc-message at TR_GRPC_MAX_STATUS_MESSAGE.
 *
 * Errors (tr_error code / return value):
 *   socket missing, not a socket, permission denied
 *                        TR_E_CONTAINERD_NOT_AVAILABLE, -ENOENT/-EACCES/...
 *   refused, connection lost, gRPC UNAVAILABLE
 *                        TR_E_DAEMON_UNAVAILABLE (retryable), -ECONNREFUSED/-EPIPE/-EAGAIN
 *   the deadline passed  TR_E_TIMEOUT, -ETIMEDOUT (also gRPC DEADLINE_EXCEEDED,
 *                        which answers the grpc-timeout we send)
 *   the cancel fd fired  TR_E_CANCELLED, -ECANCELED
 *   a gRPC status != OK  TR_E_CONTAINER_FAILED with containerd's message and
 *                        tr_error_grpc_status(); the return value says which:
 *                        NOT_FOUND -ENOENT, ALREADY_EXISTS -EEXIST,
 *                        FAILED_PRECONDITION -EBUSY, INVALID_ARGUMENT -EINVAL,
 *                        others -EREMOTEIO
 *   a malformed or oversized response
 *                        TR_E_CONTAINER_FAILED, -EBADMSG / -EMSGSIZE
 */
#pragma once

#include <poll.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "toolruntime.h"

#define TR_GRPC_MAX_MESSAGE        (16 * 1024 * 1024)
#define TR_GRPC_MAX_CALL_BYTES     (32 * 1024 * 1024)
#define TR_GRPC_MAX_STATUS_MESSAGE 4096

/* gRPC status codes used by callers. */
enum {
        TR_GRPC_OK = 0,
        TR_GRPC_CANCELLED = 1,
        TR_GRPC_UNKNOWN = 2,
        TR_GRPC_INVALID_ARGUMENT = 3,
        TR_GRPC_DEADLINE_EXCEEDED = 4,
        TR_GRPC_NOT_FOUND = 5,
        TR_GRPC_ALREADY_EXISTS = 6,
        TR_GRPC_FAILED_PRECONDITION = 9,
        TR_GRPC_UNIMPLEMENTED = 12,
        TR_GRPC_UNAVAILABLE = 14,
};

typedef struct tr__grpc_conn tr__grpc_conn;
typedef struct tr__grpc_call tr__grpc_call;

/* Connect to `socket_path` and start an HTTP/2 session whose every request
 * carries `containerd-namespace: ns`.  Gives up at `deadline_ns`
 * (CLOCK_MONOTONIC) or when `cancel_fd` (-1: none) becomes readable. */
int tr__grpc_connect(const char *socket_path, const char *ns, int64_t deadline_ns, int cancel_fd,
                     tr__grpc_conn **ret_conn, tr_error **ret_err);
/* Free every call of the connection first.  NULL-safe. */
void tr__grpc_conn_free(tr__grpc_conn *c);
/* May another caller use `c`: not broken, no call in flight, not told to
 * go away by the daemon?  Reads what arrived meanwhile. */
bool tr__grpc_conn_reusable(tr__grpc_conn *c);
static inline void tr__grpc_conn_freep(tr__grpc_conn **c) {
        tr__grpc_conn_free(*c);
}

/* Start a call of `path` ("/containerd.services.tasks.v1.Tasks/Wait") with a
 * packed request `msg`.  `lease` (NULL: none) is sent as containerd-lease;
 * `deadline_ns` bounds the call (also sent as grpc-timeout, so containerd
 * stops working on it too). */
int tr__grpc_call_start(tr__grpc_conn *c, const char *path, const void *msg, size_t len, const char *lease,
                        int64_t deadline_ns, tr__grpc_call **ret_call, tr_error **ret_err);
/* A client-streaming call whose every request message is known up front
 * (Content.Write of a whole blob): `body` is the concatenation of framed
 * messages (tr__grpc_frame_prefix + message), malloc'd, owned by the call
 * from here on (also on failure).  The server answers them in turn. */
int tr__grpc_call_start_body(tr__grpc_conn *c, const char *path, uint8_t *body, size_t len, const char *lease,
                             int64_t deadline_ns, tr__grpc_call **ret_call, tr_error **ret_err);
/* Like tr__grpc_call_start with a protobuf-c message to pack. */
int tr__grpc_call_start_pb(tr__grpc_conn *c, const char *path, const ProtobufCMessage *req, const char *lease,
                           int64_t deadline_ns, tr__grpc_call **ret_call, tr_error **ret_err);

/* Drive the connection once: poll its socket together with `extra` (whose
 * revents are filled) for at most `timeout_ms` (-1: no bound) and process
 * what arrived.  Returns 0 or a transport error (then every call of the
 * connection is done and failed). */
int tr__grpc_conn_poll(tr__grpc_conn *c, struct pollfd *extra, size_t n_extra, int timeout_ms, tr_error **ret_err);

bool tr__grpc_call_done(const tr__grpc_call *call);
/* Once done: 0 when the call succeeded, or its error (see the table above).
 * A call not done by its deadline fails with TR_E_TIMEOUT when checked after
 * the deadline. */
int tr__grpc_call_result(const tr__grpc_call *call, tr_error **ret_err);
/* The response messages received so far (borrowed, valid until free). */
size_t tr__grpc_call_n_messages(const tr__grpc_call *call);
const uint8_t *tr__grpc_call_message(const tr__grpc_call *call, size_t i, size_t *ret_len);
/* Frees the call; a call still in flight is reset (RST_STREAM CANCEL).
 * NULL-safe. */
void tr__grpc_call_free(tr__grpc_call *call);
static inline void tr__grpc_call_freep(tr__grpc_call **c) {
        tr__grpc_call_free(*c);
}

/* Drive the connection until `call` is done, its deadline passes or
 * `cancel_fd` (-1: none) becomes readable; then return its result. */
int tr__grpc_call_wait(tr__grpc_conn *c, tr__grpc_call *call, int cancel_fd, tr_error **ret_err);

/* A unary call: pack `req`, wait, unpack exactly one response message of
 * `resp_desc` into *ret_resp (NULL allowed when the response is ignored,
 * e.g. google.protobuf.Empty).  Free the response with
 * protobuf_c_message_free_unpacked(resp, NULL). */
int tr__grpc_unary(tr__grpc_conn *c, const char *path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, const char *lease, int64_t deadline_ns, int cancel_fd,
                   ProtobufCMessage **ret_resp, tr_error **ret_err);

/* Percent-decode a grpc-message value (exposed for the unit tests).  Always
 * NUL-terminates `out` of `out_size` > 0 bytes; truncates. */
void tr__grpc_percent_decode(const char *in, size_t len, char *out, size_t out_size);
/* The 5-byte gRPC message prefix (exposed for the unit tests). */
void tr__grpc_frame_prefix(uint8_t out[5], uint32_t len);
/* The grpc-timeout header value for `ms` milliseconds ("123m", "45S", ...). */
void tr__grpc_timeout_header(int64_t ms, char *out, size_t out_size);
