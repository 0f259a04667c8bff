/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic time in nanoseconds; deadlines everywhere are CLOCK_MONOTONIC. */
#pragma once

#include <stdint.h>
#include <time.h>

#define TR_NSEC_PER_MSEC 1000000LL
#define TR_NSEC_PER_SEC  1000000000LL

static inline int64_t tr__now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * TR_NSEC_PER_SEC + ts.tv_nsec;
}

/* Milliseconds until `deadline_ns`, clamped to [0, INT32_MAX] for poll(). */
static inline int tr__poll_timeout_ms(int64_t deadline_ns) {
        int64_t left = deadline_ns - tr__now_ns();
        if (left <= 0)
                return 0;
        int64_t ms = (left + TR_NSEC_PER_MSEC - 1) / TR_NSEC_PER_MSEC;
        return ms > INT32_MAX ? INT32_MAX : (int) ms;
}
