/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC client's private state (grpc.h), shared by the connection and
 * its nghttp2 callbacks (grpc.c) and the calls (grpc_call.c).  Private to
 * src/backend/containerd.
 */
#pragma once

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/containerd/grpc.h"

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

void tr__grpc_call_fail(tr__grpc_call *call, int errnum, const char *message);
void tr__grpc_call_parse(tr__grpc_call *call);
void tr__grpc_call_unlink(tr__grpc_call *call);
bool tr__grpc_cancel_fired(int cancel_fd);
int tr__grpc_conn_broken_err(tr__grpc_conn *c, tr_error **ret_err);
int tr__grpc_conn_err(tr_error **ret_err, tr_code code, int errnum, const char *op, const char *fmt,
                      const char *detail);
int tr__grpc_conn_flush(tr__grpc_conn *c);
/* nghttp2's data source for a request body (grpc.c). */
ssize_t tr__grpc_body_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
                           nghttp2_data_source *source, void *user_data);
