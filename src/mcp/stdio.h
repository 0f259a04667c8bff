/* SPDX-License-Identifier: Apache-2.0 */
/* The stdio transport of the MCP server: newline-delimited JSON-RPC
 * messages on two file descriptors (the spec's stdio transport). */
#pragma once

#include <stddef.h>

#include "mcp/server.h"

/* An mcps_send_fn writing one message and a newline to the fd pointed to by
 * `userdata` (an int *).  A client that went away (EPIPE) is ignored: the
 * read side sees EOF. */
void mcps_stdio_send(void *userdata, const char *json, size_t len);

/* Read messages from `in_fd` until EOF or until `stop_fd` becomes readable
 * (a signal's self-pipe; -1: none), handing each to the server.  A line
 * longer than `max_line` bytes is dropped with a parse error.  Returns 0 at
 * EOF or stop, a negative errno on a read error. */
int mcps_stdio_serve(mcps_server *s, int in_fd, int stop_fd, size_t max_line);
