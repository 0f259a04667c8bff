/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seccomp filters for the containerd backend's hardened profile, as the
 * `linux.seccomp` object of an OCI runtime spec: the built-in allowlist, and
 * the conversion of a Docker-format profile file into that form.  Owns no
 * state; the only I/O is reading the profile file.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "toolruntime.h"

/* Cleanup for a json_t reference, shared by the spec builder. */
static inline void tr__ctrd_json_unrefp(json_t **p) {
        json_decref(*p);
}
#define _cleanup_json_ __attribute__((cleanup(tr__ctrd_json_unrefp)))

/* A profile file larger than this is refused: it is configuration, and a
 * real one (Docker's default) is about 20 KiB. */
#define TR_CTRD_SECCOMP_MAX_FILE (1024 * 1024)
/* Caps on the structure of a loaded profile, so a hostile or broken file
 * cannot make the spec (and the BPF program runc builds from it) huge. */
#define TR_CTRD_SECCOMP_MAX_RULES 4096
#define TR_CTRD_SECCOMP_MAX_NAMES 1024
#define TR_CTRD_SECCOMP_MAX_ARGS  6

/* The built-in filters.  `hardened` false gives containerd's own default
 * for a container without capabilities (what every Docker container gets:
 * no mount, unshare, setns, keyctl, bpf, ...); true gives the stricter
 * hardened allowlist (also no ptrace, io_uring, modify_ldt).  *ret receives
 * a new reference. */
int tr__ctrd_seccomp_builtin(bool hardened, json_t **ret, tr_error **ret_err);

/* Read the Docker-format profile at `path` (absolute, a regular file of at
 * most TR_CTRD_SECCOMP_MAX_FILE bytes) and convert it.  *ret receives a new
 * reference.  Errors: TR_E_INVALID_REQUEST for a bad path, an unreadable
 * file or a malformed profile; TR_E_SECURITY_VIOLATION for a profile that
 * does not deny by default. */
int tr__ctrd_seccomp_load(const char *path, json_t **ret, tr_error **ret_err);

/* The conversion alone, from parsed JSON (borrowed).  `kernel_release` is
 * the uname release used for `includes.minKernel` (NULL: the running
 * kernel's).  Exposed for the unit tests and the fuzzer. */
int tr__ctrd_seccomp_from_docker(const json_t *docker, const char *kernel_release, json_t **ret, tr_error **ret_err);
