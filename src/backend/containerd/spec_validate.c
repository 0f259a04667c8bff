/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tr_containerd_spec_validate: what a sandbox spec must satisfy before
 * anything is created from it -- never root, never privileged, the
 * profile's network, limits in range (toolruntime/containerd.h).
 */
#include <errno.h>
#include <string.h>

#include "backend/containerd/spec.h"
#include "core/plan.h"
#include "util/macros.h"

int tr__ctrd_check_min_memory(int64_t memory_bytes, tr_error **ret_err) {
        if (memory_bytes > 0 && memory_bytes < TR_CONTAINERD_MIN_MEMORY)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_CONTAINERD, "validate",
                                    "memory limit %lld bytes is below the containerd backend's minimum of %lld MiB "
                                    "(runc cannot start a container with less)",
                                    (long long) memory_bytes, TR_CONTAINERD_MIN_MEMORY >> 20),
                       -EINVAL;
        return 0;
}

TR_PUBLIC int tr_containerd_spec_validate(const tr_containerd_spec *spec, tr_error **ret_err) {
        if (!spec)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "validate", "no spec"),
                       -EINVAL;
        if (!spec->image || !spec->image[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "validate",
                                    "container spec has no image"),
                       -EINVAL;
        if (!spec->command || !spec->command[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "validate",
                                    "container spec has no command"),
                       -EINVAL;
        if (!spec->id || !spec->id[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "validate",
                                    "container spec has no id"),
                       -EINVAL;
        const tr_containerd_resources *rs = &spec->resources;
        if (rs->memory_bytes < 0 || rs->cpu_quota_us < 0 || rs->pids_limit < 0 || rs->disk_bytes < 0 ||
            spec->timeout_ms < 0)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_CONTAINERD, "validate",
                                    "negative resource limit or timeout"),
                       -EINVAL;
        /* The spec is public and its limits reach the OCI spec and the
         * expiry arithmetic unchecked: the core's bound applies here too. */
        if (tr__ctrd_check_min_memory(rs->memory_bytes, ret_err) < 0)
                return -EINVAL;
        if (rs->memory_bytes > TR_LIMIT_MAX || rs->cpu_quota_us > TR_LIMIT_MAX || rs->pids_limit > TR_LIMIT_MAX ||
            rs->disk_bytes > TR_LIMIT_MAX)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_CONTAINERD, "validate",
                                    "resource limit above %lld", (long long) TR_LIMIT_MAX),
                       -EINVAL;
        uint32_t uid, gid;
        if (tr__ctrd_parse_user(spec->security.user, &uid, &gid) < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "validate",
                                    "container user must be UID:GID"),
                       -EINVAL;
        if (uid == 0 || gid == 0)
                return tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, TR_BACKEND_CONTAINERD, "validate",
                                    "the sandbox must not run as root"),
                       -EPERM;
        if (spec->security.privileged)
                return tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, TR_BACKEND_CONTAINERD, "validate",
                                    "privileged containers are not allowed in a sandbox"),
                       -EPERM;
        const char *nm = spec->security.network_mode;
        if (nm && streq(nm, "host") && !tr__profile_isolation(spec->profile)->host_network)
                return tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, TR_BACKEND_CONTAINERD, "validate",
                                    "host networking is only allowed in the dev profile"),
                       -EPERM;
        if (nm && !streq(nm, "host") && !streq(nm, "none") && !streq(nm, "bridge"))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "validate",
                                    "unknown network mode %s", nm),
                       -EINVAL;
        if (nm && streq(nm, "bridge"))
                /* No CNI here: a bridge would silently be no network. */
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "validate",
                                    "network mode bridge is not supported by this backend"),
                       -EINVAL;
        return 0;
}
