/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seccomp policy of the standard and hardened profiles, for both
 * isolating backends: as the `linux.seccomp` object of an OCI runtime spec
 * (the built-in allowlists, and the conversion of a Docker-format profile
 * file into that form), and that object compiled into the BPF program the
 * kata guest agent installs.  Owns no state; the only I/O is reading the
 * profile file.
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

/* The native architecture, in libseccomp's and Go's spelling (Docker's
 * archMap and includes.arches use these).  It is the only one a filter
 * names: every other ABI (i386, x32, arm32) meets the bad-architecture
 * action, see seccomp.c. */
#if defined(__x86_64__)
#define TR__SECCOMP_NATIVE_ARCH    "SCMP_ARCH_X86_64"
#define TR__SECCOMP_NATIVE_GO_ARCH "amd64"
#elif defined(__aarch64__)
#define TR__SECCOMP_NATIVE_ARCH    "SCMP_ARCH_AARCH64"
#define TR__SECCOMP_NATIVE_GO_ARCH "arm64"
#else
#error "toolruntime's seccomp profile knows x86_64 and aarch64 only"
#endif

/* A profile file larger than this is refused: it is configuration, and a
 * real one (Docker's default) is about 20 KiB. */
#define TR_CTRD_SECCOMP_MAX_FILE (1024 * 1024)
/* Caps on the structure of a loaded profile, so a hostile or broken file
 * cannot make the spec (and the BPF program runc builds from it) huge. */
#define TR_CTRD_SECCOMP_MAX_RULES 4096
#define TR_CTRD_SECCOMP_MAX_NAMES 1024
#define TR_CTRD_SECCOMP_MAX_ARGS  6

/* The built-in filters.  `hardened` false gives containerd 2.x's default
 * for a container without capabilities (no io_uring, mount, unshare, setns,
 * keyctl, bpf, ..., no AF_VSOCK/AF_ALG socket); true gives the stricter
 * hardened allowlist (also no ptrace, process_vm_*, modify_ldt; sockets of
 * AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK/NETLINK_ROUTE only).  Both name
 * the native architecture alone and deny NETLINK_KOBJECT_UEVENT sockets.
 * *ret receives a new reference. */
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

/* Building blocks shared by the built-in filters and the Docker-profile
 * conversion (seccomp_docker.c): one OCI argument condition (a new
 * reference, NULL when out of memory), and the socket(2) rules (with
 * `pair`, the socketpair(2) rules) of standard or hardened appended to
 * `rules` (0 or -1 when out of memory). */
json_t *tr__ctrd_seccomp_arg_cond(unsigned index, uint64_t value, uint64_t value_two, const char *op);
int tr__ctrd_seccomp_socket_rules(json_t *rules, bool hardened, bool pair);

/* The policy of `profile`: hardened with `custom_path` set loads that
 * Docker-format file (with the native-ABI and socket rules layered on, see
 * seccomp.c), hardened and standard otherwise get their built-in filter,
 * dev none (*ret = NULL).  *ret receives a new reference. */
int tr__ctrd_seccomp_for_profile(tr_profile profile, const char *custom_path, json_t **ret, tr_error **ret_err);

/* A classic BPF instruction (struct sock_filter) and the kernel's cap on a
 * program (BPF_MAXINSNS). */
#define TR_SECCOMP_BPF_INSN      8
#define TR_SECCOMP_BPF_MAX_INSNS 4096

/* Compile a linux.seccomp object (borrowed) with libseccomp, as runc would,
 * into a BPF program for seccomp(SECCOMP_SET_MODE_FILTER): *ret_prog (free()
 * it) receives *ret_len bytes, a whole number of instructions.  A syscall
 * of an architecture the policy does not name kills the calling thread
 * (SIGSYS), as under runc.  Errors: TR_E_INVALID_REQUEST for a policy
 * libseccomp refuses or that exceeds the kernel's program size. */
int tr__seccomp_bpf_compile(const json_t *oci, uint8_t **ret_prog, size_t *ret_len, tr_error **ret_err);
