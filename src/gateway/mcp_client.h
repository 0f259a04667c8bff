/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the MCP stdio client, shared by its three files and no one else
 * (mcp.h stays the interface): the client's state, and the transport
 * (mcp_transport.c) that the conversation (mcp.c) drives.
 */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/mcp.h"
#include "gateway/spawn.h"
#include "toolruntime.h"

/* The longest error text taken from a server (isError, an error response). */
#define TR__MCP_MAX_ERROR_TEXT 1024

struct tr__mcp {
        char **argv;
        char **envp;
        tr__errlog errlog;
        int64_t start_ms;
        int64_t call_ms;
        tr_log_fn log;
        void *log_ud;

        /* Serialises requests: one conversation at a time on the pipe. */
        pthread_mutex_t lock;
        tr__proc proc;
        bool alive;
        int restarts;
        json_int_t next_id;
        char *server_name;
        char *protocol_version;
        /* The server said notifications/tools/list_changed (seen while
         * waiting for a response: this client reads only then). */
        atomic_bool list_changed;

        /* Line buffer: unread data is buf[start, len); buf[start, scanned)
         * holds no newline. */
        char *buf;
        size_t start;
        size_t scanned;
        size_t len;
        size_t alloc;
};

/* Log `msg` with the server's name and `detail` (NULL: none). */
void tr__mcp_log(tr__mcp *m, tr_log_level level, const char *msg, const char *detail);

/* Log what the server wrote on stderr so far; its pipe must not fill up
 * (the server would block), so every wait on the server drains it. */
void tr__mcp_drain_stderr(tr__mcp *m);

/* Kill the server and forget its buffered output (the next call restarts
 * it). */
void tr__mcp_kill_server(tr__mcp *m);

/* Write one message and its newline before the deadline; also give up when
 * the tool call `cc` (NULL: none) is cancelled (callctx.h).
 * Half a message would corrupt the stream, so a write cut short kills the
 * server. */
int tr__mcp_send_msg(tr__mcp *m, json_t *msg, int64_t deadline, const tr_call_ctx *cc, tr_error **ret_err);

/* Read the next line (without its newline): *ret_line points into m->buf
 * and stays valid until tr__mcp_consume_line() or the next tr__mcp_read_line().  Gives up
 * at the deadline (TR_E_TIMEOUT) or when the tool call `cc` is
 * cancelled (TR_E_CANCELLED); the server stays alive in both cases. */
int tr__mcp_read_line(tr__mcp *m, int64_t deadline, const tr_call_ctx *cc, const char **ret_line, size_t *ret_len,
                      tr_error **ret_err);

void tr__mcp_consume_line(tr__mcp *m, size_t line_len);
