/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway session's state, shared by its transport (session.c: threads,
 * connections, the listener) and its operations (session_ops.c: what each
 * message does, the limits, the records).  Private to src/gateway.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "gateway/protocol.h"
#include "gateway/session.h"

struct tr__gw_session {
        tr_exec *ex;
        tr_gateway *gw;
        int64_t max_tool_calls;  /* 0: unlimited */
        int64_t max_chain_steps; /* 0: unlimited */

        /* Guards the counters, the connection list and the writes into the
         * execution's result, which several server threads share. */
        pthread_mutex_t lock;
        int64_t tool_calls;
        int64_t chain_steps;
        size_t n_records;
        struct conn *conns; /* session.c's */
        size_t n_live;

        int stop_rd;
        int stop_wr;
        bool stopping;

        int listen_fd;
        bool listening;
        pthread_t listen_thread;
        char *sock_path;
};

/* Answer one decoded message: 0 with *ret the reply's payload, or a
 * negative value with *ret_err (the tool's or the protocol's error). */
int tr__gw_session_dispatch(tr__gw_session *s, const tr__gw_msg *m, json_t **ret, tr_error **ret_err);
