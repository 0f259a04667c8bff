/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The context of one tool call (the public tr_call_ctx): the deadline the
 * call must not outlive and the fds that cancel it.
 *
 * Every tr_gateway_ops callback gets one, so a tool never outlives the
 * execution that called it: the session server (which knows the execution)
 * builds a context per call on its stack, and the registry's sources clamp
 * their own timeouts to its deadline and abort (killing a tool's process
 * group, abandoning an MCP request) as soon as a cancel fd becomes readable:
 * the session's stop pipe (written first thing when the session is freed)
 * or the execution's cancel token.  A NULL context (a direct library call)
 * has no deadline and nothing cancels it.
 */
#pragma once

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "toolruntime.h"

#define TR__CALL_MAX_CANCEL_FDS 2

struct tr_call_ctx {
        /* The execution the call serves, or NULL.  Its deadline is read anew
         * at every use: a backend may move it (a VM's boot). */
        const tr_exec *ex;
        /* Used when `ex` is NULL (tr_call_ctx_new); 0: none. */
        int64_t deadline_ns;
        int fds[TR__CALL_MAX_CANCEL_FDS];
        int n_fds;
};

/* A context for a call made for `ex` that is also cancelled by `stop_fd`
 * (-1: none) and by the execution's cancel token. */
void tr__call_ctx_init_exec(tr_call_ctx *ctx, const tr_exec *ex, int stop_fd);

/* Fill `p` (room for TR__CALL_MAX_CANCEL_FDS) with one POLLIN entry per
 * cancel fd of `ctx`; returns how many (0: none, or ctx NULL). */
int tr__call_ctx_pollfds(const tr_call_ctx *ctx, struct pollfd *p);

/* The earlier of `deadline_ns` and the call's deadline. */
static inline int64_t tr__call_ctx_clamp(const tr_call_ctx *ctx, int64_t deadline_ns) {
        int64_t d = tr_call_ctx_deadline_ns(ctx);
        return d > 0 && d < deadline_ns ? d : deadline_ns;
}
