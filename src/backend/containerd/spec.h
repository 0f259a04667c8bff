/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OCI runtime spec generator for the containerd backend: turns one
 * execution's profile, limits and command into the config.json containerd
 * stores as the container's spec (an Any of type
 * types.containerd.io/opencontainers/runtime-spec/1/Spec).  Pure: no I/O
 * except reading the seccomp profile file it is pointed at.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "toolruntime.h"

typedef struct tr__ctrd_spec_input {
        tr_profile profile;       /* DEV, STANDARD or HARDENED (never DEFAULT) */
        const char *const *argv;  /* NULL-terminated */
        const char *const *env;   /* NULL-terminated KEY=VALUE, already allowlisted */
        const char *cwd;          /* default "/tmp" */
        const char *hostname;     /* default "sandbox" */
        const char *cgroups_path; /* e.g. "/toolruntime/<id>" */
        int64_t memory_bytes;     /* 0: unlimited; swap limited to the same */
        int64_t cpu_quota_us;     /* per 100000 us period; 0: unlimited */
        int64_t pids_max;         /* 0: unlimited */
        int64_t disk_bytes;       /* size of the tmpfs /tmp; 0: a safe default */
        const char *seccomp_path; /* Docker-format JSON; NULL: built-in for hardened */
        const char *gateway_dir;  /* host dir bind-mounted at /run/toolruntime; NULL: none */
        uint32_t uid, gid;        /* the process's user: the sandbox's own host uid; never 0 */
} tr__ctrd_spec_input;

/* Parse a spec's "UID:GID" user (decimal, both required).  -EINVAL when
 * malformed. */
int tr__ctrd_parse_user(const char *user, uint32_t *ret_uid, uint32_t *ret_gid);

/* Build the spec.  *ret_json is malloc()ed JSON text. */
int tr__ctrd_spec_build(const tr__ctrd_spec_input *in, char **ret_json, tr_error **ret_err);

/* The disk size used for /tmp when the request leaves DiskBytes at zero. */
#define TR_CTRD_DEFAULT_TMP_BYTES (64LL * 1024 * 1024)

/* A memory limit the backend cannot start with (under
 * TR_CONTAINERD_MIN_MEMORY; 0 is unlimited): invalid_limits, before anything
 * talks to containerd (spec_validate.c). */
int tr__ctrd_check_min_memory(int64_t memory_bytes, tr_error **ret_err);
