/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Model Context Protocol client over stdio (JSON-RPC 2.0, one message per
 * line): initialize with protocol-version negotiation,
 * notifications/initialized, tools/list with pagination, tools/call.  The
 * server is untrusted and may be buggy: notifications, log messages,
 * progress and requests of its own may arrive between responses; it may
 * exit, hang or write garbage.  Every wait has a deadline, every line a size
 * cap, and a server that misbehaves too much is killed (and restarted on the
 * next call, a few times at most).  One request at a time per server: calls
 * from several threads queue on a mutex, with their deadline.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "toolruntime.h"

/* The longest line accepted from a server (a tools/list page can be big). */
#define TR_MCP_MAX_LINE (4 * 1024 * 1024)
/* Pages and tools accepted from one server's tools/list. */
#define TR_MCP_MAX_PAGES 64
#define TR_MCP_MAX_TOOLS 1024

typedef struct tr__mcp tr__mcp;

/* Start the server with environment `envp` (tr__tool_env; copied); its
 * stderr goes to `log` (spawn.h, tr__errlog). */
int tr__mcp_start(const char *const *argv, char *const *envp, int64_t start_ms, int64_t call_ms, tr_log_fn log,
                  void *log_ud, tr__mcp **ret, tr_error **ret_err);
/* The name from serverInfo (sanitised), or NULL. */
const char *tr__mcp_server_name(const tr__mcp *m);
/* Every tool object of every page (raw: the caller validates), cancelled
 * with the tool call `cc` (may be NULL).  New ref. */
int tr__mcp_list_tools(tr__mcp *m, const tr_call_ctx *cc, json_t **ret_tools, tr_error **ret_err);
/* Call tool `name` with `args` (borrowed) for the tool call `cc` (its
 * deadline clamps the server's own call timeout; its cancel fds abandon the
 * request; NULL: neither); *ret_result gets the converted result
 * (tr__mcp_convert_result).  Thread-safe. */
int tr__mcp_call_tool(tr__mcp *m, const tr_call_ctx *cc, const char *name, json_t *args, json_t **ret_result,
                      tr_error **ret_err);
/* Whether the server sent notifications/tools/list_changed since the last
 * call (which clears it).  Thread-safe. */
bool tr__mcp_take_list_changed(tr__mcp *m);
void tr__mcp_free(tr__mcp *m);

/* ---- parsing, exposed for tests and the fuzzer ---- */

typedef enum tr__mcp_kind {
        TR__MCP_INVALID,
        TR__MCP_RESPONSE,     /* id + result */
        TR__MCP_ERROR,        /* id + error */
        TR__MCP_REQUEST,      /* id + method */
        TR__MCP_NOTIFICATION, /* method, no id */
} tr__mcp_kind;

typedef struct tr__mcp_msg {
        tr__mcp_kind kind;
        bool id_is_int;
        json_int_t id;
        json_t *id_json;    /* borrowed from the message */
        const char *method; /* borrowed */
        json_t *result;     /* borrowed */
        json_t *error;      /* borrowed */
        json_t *params;     /* borrowed */
} tr__mcp_msg;

/* Classify one JSON-RPC message object (borrowed). */
tr__mcp_kind tr__mcp_classify(json_t *msg, tr__mcp_msg *ret);

/* Turn a tools/call result into the gateway's result: structuredContent if
 * present, else the text of the content if it is all text, else the content
 * array.  isError becomes TR_E_TOOL_FAILED carrying the text. */
int tr__mcp_convert_result(json_t *result, json_t **ret, tr_error **ret_err);

/* Split a command line into words: whitespace separates, '...' and "..."
 * quote, backslash escapes (outside single quotes).  No expansion.
 * *ret_argv is NULL-terminated (free with tr__strv_free). */
int tr__split_command(const char *line, char ***ret_argv, tr_error **ret_err);
