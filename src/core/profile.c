/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The profile table: the one place that says what each profile's limits
 * are when a request leaves them unset, and which limits a profile refuses
 * to leave unbounded.  The runtime turns the request's limits into the
 * effective ones here, once per execution, and hands those to the backend
 * (tr_exec_limits); no backend, and not the CLI, has defaults of its own.
 *
 * The numbers are the same on every backend because a limit that depends on
 * where the snippet happens to run is not a limit a caller can plan with.
 */
#include <errno.h>

#include "core/internal.h"
#include "core/plan.h"
#include "util/macros.h"

#define MIB (1024LL * 1024)

typedef struct profile_policy {
        /* Applied to every field the request leaves at TR_LIMIT_UNSET; 0 is
         * no default (unlimited). */
        tr_limits defaults;
        /* An explicit 0 (unlimited) for memory, CPU, pids or disk is refused:
         * the profile promises that all four hold. */
        bool bounded;
        /* How its sandboxes are built, on every isolating backend (plan.h). */
        tr__isolation isolation;
} profile_policy;

static const profile_policy policies[TR__PROFILE_MAX] = {
        /* dev runs on the host (unsafe_host) for development: it promises no
         * isolation, so it adds no limits beyond the timeout and output
         * caps every request has. */
        [TR_PROFILE_DEV] = { .defaults = { 0 }, .isolation = { .host_network = true } },
        /* standard: one fork bomb or allocation loop must not take the host
         * down.  512 MiB of memory (swap counts against it), 128 processes,
         * one CPU (100 ms per 100 ms period), 64 MiB of /tmp. */
        [TR_PROFILE_STANDARD] = { .defaults = { .cpu_quota_ms = 100,
                                                .memory_bytes = 512 * MIB,
                                                .pids_max = 128,
                                                .disk_bytes = 64 * MIB },
                                  .isolation = { .read_only_rootfs = true } },
        /* hardened: half of standard, and never unbounded. */
        [TR_PROFILE_HARDENED] = { .defaults = { .cpu_quota_ms = 50,
                                                .memory_bytes = 256 * MIB,
                                                .pids_max = 64,
                                                .disk_bytes = 16 * MIB },
                                  .bounded = true,
                                  /* What runs is exactly the image asked
                                   * for, under a syscall allowlist. */
                                  .isolation = { .read_only_rootfs = true,
                                                 .custom_seccomp = true,
                                                 .pinned_images = true } },
};

const tr__isolation *tr__profile_isolation(tr_profile p) {
        /* A spec built outside a runtime (the public containerd and kata
         * spec functions) may leave the profile at DEFAULT: standard, as
         * they always read it; anything unknown gets the strictest. */
        if (p == TR_PROFILE_DEFAULT)
                p = TR_PROFILE_STANDARD;
        else if (p < TR_PROFILE_DEFAULT || p >= TR__PROFILE_MAX)
                p = TR_PROFILE_HARDENED;
        return &policies[p].isolation;
}

TR_PUBLIC void tr_limits_init(tr_limits *l) {
        *l = (tr_limits){
                .max_tool_calls = TR_LIMIT_UNSET,
                .max_chain_steps = TR_LIMIT_UNSET,
                .cpu_quota_ms = TR_LIMIT_UNSET,
                .memory_bytes = TR_LIMIT_UNSET,
                .pids_max = TR_LIMIT_UNSET,
                .disk_bytes = TR_LIMIT_UNSET,
        };
}

TR_PUBLIC int tr_profile_default_limits(tr_profile p, tr_limits *ret_limits) {
        if (p <= TR_PROFILE_DEFAULT || p >= TR__PROFILE_MAX)
                return -EINVAL;
        *ret_limits = policies[p].defaults;
        return 0;
}

int tr__profile_effective_limits(tr_profile p, const tr_limits *asked, tr_limits *ret, tr_error **ret_err) {
        if (p <= TR_PROFILE_DEFAULT || p >= TR__PROFILE_MAX)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "profile", "unknown profile %d",
                                    (int) p);
        const profile_policy *pol = &policies[p];
        const struct {
                const char *name;
                int64_t v;
                int64_t def;
                int64_t *out;
                bool resource; /* one of the four a bounded profile must keep */
        } f[] = {
                { "max_tool_calls", asked->max_tool_calls, pol->defaults.max_tool_calls, &ret->max_tool_calls, false },
                { "max_chain_steps", asked->max_chain_steps, pol->defaults.max_chain_steps, &ret->max_chain_steps,
                  false },
                { "cpu_quota_ms", asked->cpu_quota_ms, pol->defaults.cpu_quota_ms, &ret->cpu_quota_ms, true },
                { "memory_bytes", asked->memory_bytes, pol->defaults.memory_bytes, &ret->memory_bytes, true },
                { "pids_max", asked->pids_max, pol->defaults.pids_max, &ret->pids_max, true },
                { "disk_bytes", asked->disk_bytes, pol->defaults.disk_bytes, &ret->disk_bytes, true },
        };
        for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
                if (f[i].v == 0 && f[i].resource && pol->bounded) {
                        bool bytes = f[i].out == &ret->memory_bytes || f[i].out == &ret->disk_bytes;
                        return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "profile",
                                            "profile '%s' refuses an unlimited %s (0): give a limit, or leave it "
                                            "unset for the profile's %lld%s",
                                            tr_profile_name(p), f[i].name,
                                            (long long) (bytes ? f[i].def / MIB : f[i].def), bytes ? " MiB" : "");
                }
                *f[i].out = f[i].v == TR_LIMIT_UNSET ? f[i].def : f[i].v;
        }
        return 0;
}

/* Egress: the hardened profile promises no network at all, so it refuses
 * an allowlist rather than quietly opening one; standard and dev take one.
 * Only a backend that can put a proxy in front of the sandbox enforces it:
 * containerd (a network namespace of the sandbox's own, the proxy's socket
 * made inside it) outside dev, which shares the host's network and so has
 * nothing to enforce with, like unsafe_host; kata's VM has no network
 * device at all.  Refusing is the only honest answer there: an allowlist
 * that is silently ignored or silently widened is worse than none. */
int tr__profile_check_egress(tr_profile p, tr_backend_kind kind, const tr_request *req, tr_error **ret_err) {
        if (tr_request_egress_allow_count(req) == 0)
                return 0;
        if (p == TR_PROFILE_HARDENED)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, kind, "egress",
                                    "profile '%s' forbids all network egress: it refuses an egress allowlist "
                                    "(use the standard profile)",
                                    tr_profile_name(p));
        const char *why = NULL;
        if (kind == TR_BACKEND_KATA)
                why = "its microVM has no network device to send the traffic through a proxy";
        else if (kind == TR_BACKEND_UNSAFE_HOST)
                why = "the snippet runs on the host's own network: there is nothing to enforce the list with";
        else if (kind != TR_BACKEND_CONTAINERD)
                why = "only the containerd backend enforces one";
        else if (p == TR_PROFILE_DEV)
                why = "profile 'dev' shares the host's network there: there is nothing to enforce the list with "
                      "(use the standard profile)";
        if (why)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, kind, "egress",
                                    "the %s backend cannot enforce an egress allowlist: %s", tr_backend_kind_name(kind),
                                    why);
        return 0;
}
