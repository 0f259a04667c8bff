/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The /v1 API's names for the fields of tr_limits ("limits": {"memory", ...}),
 * in one table: the server reads them (api.c) and the CLI's HTTP clients
 * write them (cli/remote.c for exec --server, cli/session.c), so a name can
 * never differ between the two ends.  "max_output" is not a tr_limits
 * field; each end handles it beside the table.
 */
#pragma once

#include <stddef.h>

#include "toolruntime.h"

typedef struct tr__wire_limit {
        const char *name;
        size_t off; /* of the int64_t field in tr_limits */
} tr__wire_limit;

static const tr__wire_limit tr__wire_limits[] = {
        { "memory", offsetof(tr_limits, memory_bytes) },
        { "pids", offsetof(tr_limits, pids_max) },
        { "cpu_quota_ms", offsetof(tr_limits, cpu_quota_ms) },
        { "disk", offsetof(tr_limits, disk_bytes) },
        { "max_tool_calls", offsetof(tr_limits, max_tool_calls) },
        { "max_chain_steps", offsetof(tr_limits, max_chain_steps) },
};
#define TR__WIRE_N_LIMITS (sizeof(tr__wire_limits) / sizeof(tr__wire_limits[0]))

static inline int64_t *tr__wire_limit_at(tr_limits *l, size_t i) {
        return (int64_t *) (void *) ((char *) l + tr__wire_limits[i].off);
}

static inline int64_t tr__wire_limit_get(const tr_limits *l, size_t i) {
        return *(const int64_t *) (const void *) ((const char *) l + tr__wire_limits[i].off);
}
