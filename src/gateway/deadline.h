/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The context of the tool call running on this thread: the execution's
 * deadline and the fds that cancel the call.
 *
 * tr_gateway_ops has no deadline or cancel parameter, yet a tool must not
 * outlive the execution that called it: the session server (which knows the
 * execution) sets the context around each call, and the registry's sources
 * clamp their own timeouts to the deadline and abort (killing a tool's
 * process group, abandoning an MCP request) as soon as a cancel fd becomes
 * readable: the session's stop pipe (written first thing when the session
 * is freed) or the execution's cancel token.  Thread-local, so parallel
 * executions on other threads are unaffected; without a context (a direct
 * library call) there is no deadline and nothing cancels.
 */
#pragma once

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "toolruntime.h"
#include "util/timeutil.h"

#define TR__GW_MAX_CANCEL_FDS 2

/* Enter the context of a call made for `ex` (its deadline is read anew at
 * every use: a backend may move it) that is also cancelled by `stop_fd`
 * (-1: none) and by the execution's cancel token.  End it before returning
 * to code that is not a tool call. */
void tr__gw_call_begin(const tr_exec *ex, int stop_fd);
void tr__gw_call_end(void);

/* The execution deadline of this thread's call (CLOCK_MONOTONIC ns), or 0
 * for none. */
int64_t tr__gw_call_deadline(void);

/* Fill `p` (room for TR__GW_MAX_CANCEL_FDS) with one POLLIN entry per
 * cancel fd of this thread's call; returns how many (0: none). */
int tr__gw_cancel_pollfds(struct pollfd *p);

/* Whether this thread's call is cancelled (a cancel fd is readable). */
bool tr__gw_call_cancelled(void);

/* The earlier of `deadline_ns` and this thread's call deadline. */
static inline int64_t tr__gw_clamp_deadline(int64_t deadline_ns) {
        int64_t d = tr__gw_call_deadline();
        return d > 0 && d < deadline_ns ? d : deadline_ns;
}
