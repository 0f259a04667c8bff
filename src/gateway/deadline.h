/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The execution deadline of the tool call running on this thread.
 *
 * tr_gateway_ops has no deadline parameter, yet a tool must not outlive the
 * execution that called it: the session server (which knows the execution)
 * sets the deadline around each call, and the registry's sources clamp
 * their own timeouts to it.  Thread-local, so parallel executions on other
 * threads are unaffected; 0 means "none" (a direct library call).
 */
#pragma once

#include <stdint.h>

#include "util/timeutil.h"

int64_t tr__gw_call_deadline(void);
void tr__gw_set_call_deadline(int64_t deadline_ns);

/* The earlier of `deadline_ns` and this thread's call deadline. */
static inline int64_t tr__gw_clamp_deadline(int64_t deadline_ns) {
        int64_t d = tr__gw_call_deadline();
        return d > 0 && d < deadline_ns ? d : deadline_ns;
}
