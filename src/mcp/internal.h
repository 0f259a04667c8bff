/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the MCP server's files: the server state (server.c owns
 * the protocol and the workers, execute.c the `execute` tool, tools.c the
 * tool list and pass-through calls). */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "mcp/server.h"

/* JSON-RPC / MCP error codes. */
#define RPC_PARSE_ERROR      (-32700)
#define RPC_INVALID_REQUEST  (-32600)
#define RPC_METHOD_NOT_FOUND (-32601)
#define RPC_INVALID_PARAMS   (-32602)
#define RPC_INTERNAL_ERROR   (-32603)

/* One tools/call in flight. */
typedef struct mcps_call {
        mcps_server *s;
        json_t *id;             /* the request id (owned) */
        json_t *progress_token; /* NULL when the client asked for no progress */
        json_t *params;         /* owned */
        bool stateless;         /* answer with resultType (2026-07-28) */
        tr_cancel *cancel;
        int64_t start_ns;
        int64_t timeout_ms; /* for progress: the execution's timeout, 0 if none */
        pthread_t thread;
        atomic_bool done;
        struct mcps_call *next;
} mcps_call;

struct mcps_server {
        mcps_config cfg;
        mcps_send_fn send;
        void *send_ud;

        /* Guards everything below and every send, so that messages never
         * interleave on the transport. */
        pthread_mutex_t lock;
        pthread_cond_t cond; /* a worker finished; the ticker's clock */
        char version[16];    /* negotiated by initialize; "" before */
        int log_level;       /* the least severe level the client wants (syslog order, 0 = debug) */
        mcps_call *calls;
        int running;
        bool stopping;
        pthread_t ticker;
        bool ticker_started;

        /* The session tools' sessions (sessions.c), under their own lock:
         * their calls are slow and must not hold up sends. */
        pthread_mutex_t sess_lock;
        struct mcps_session *sessions;
};

/* Send a message (the caller holds no lock). */
void mcps_send(mcps_server *s, json_t *msg);
void mcps_send_locked(mcps_server *s, json_t *msg);
/* A tool result carrying an error text (isError), new reference. */
json_t *mcps_tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* tools.c: the list for tools/list (new reference) and pass-through calls. */
json_t *mcps_tools_list(mcps_server *s);
/* Run one call (worker thread); returns the result object (new ref), or
 * NULL with ret_code and ret_msg set for a JSON-RPC error. */
json_t *mcps_tools_call(mcps_call *c, int *ret_code, char **ret_msg);

/* execute.c */
json_t *mcps_execute_tool(mcps_server *s);
json_t *mcps_execute(mcps_call *c, json_t *args);
/* The same in a session (NULL: a fresh sandbox, as execute). */
json_t *mcps_execute_in(mcps_call *c, json_t *args, tr_session *session);

/* sessions.c: session_create, session_execute, session_delete. */
typedef struct mcps_session mcps_session;
/* The three tools' definitions (a new array). */
json_t *mcps_session_tools(void);
/* A call to one of them (*ret_handled false: not a session tool). */
json_t *mcps_session_call(mcps_call *c, const char *name, json_t *args, bool *ret_handled);
/* End the expired sessions (the ticker, once a second). */
void mcps_sessions_sweep(mcps_server *s);
/* End them all (the server is going away; no call runs). */
void mcps_sessions_free(mcps_server *s);
