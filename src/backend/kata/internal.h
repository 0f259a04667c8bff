/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Definitions shared by the files of the kata backend (src/backend/kata/):
 *
 *   kata.c     the backend handle, config defaults, request -> spec, doctor
 *   qemu.c     Runner 1: the QEMU microVM, its boot and lifecycle
 *   vmloop.c   Runner 1: the host side of the VM channel (the frame loop)
 *   kvm.c      is /dev/kvm really usable (a guest instruction runs)?
 *   jail.c     Runner 1: QEMU's containment (namespaces, pivot_root, cgroup)
 *   spec.c     spec validation, Kata annotations, Runner 2's OCI spec
 *   ctrd.c     Runner 2: Kata through containerd (shim presence, execution)
 *   state.c    the per-VM state record (owner, QEMU pid) and tr_kata_gc
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "toolruntime.h"
#include "util/macros.h"

#define KATA_KIND TR_BACKEND_KATA

/* The kata backend's handle.  Immutable after creation except the KVM probe
 * cache, which a mutex guards: executions run in parallel. */
/* Test seams: replacements for the runner, the image resolver and the health
 * check (tests inject fakes; NULL: the real ones).  Each `self` is owned by
 * the backend from the constructor on (also on failure) and released with
 * its ops->free. */
typedef struct tr__kata_seams {
        const tr_kata_sandbox_runner_ops *runner_ops;
        void *runner_self;
        const tr_kata_image_resolver_ops *resolver_ops;
        void *resolver_self;
        const tr_kata_health_checker_ops *health_ops;
        void *health_self;
} tr__kata_seams;

/* tr_backend_kata_new with `seams` (NULL: none). */
int tr__backend_kata_new_seams(const tr_kata_config *cfg, const tr__kata_seams *seams, tr_backend **ret_backend,
                               tr_error **ret_err);

typedef struct tr__kata {
        char *runtime_path; /* NULL: the hypervisor's default binary */
        char *image;
        char *hypervisor;
        char *kernel_path;
        char *initrd_path;
        char *image_path;
        char *containerd_address;
        char *containerd_namespace;
        char *seccomp_path; /* hardened's custom profile, NULL: built-in */
        tr_kata_runner_kind runner;
        tr_kata_accel accel;
        int64_t boot_timeout_ms;
        tr_uid_range uid_range;
        const tr_kata_sandbox_runner_ops *runner_ops;
        void *runner_self;
        const tr_kata_image_resolver_ops *resolver_ops;
        void *resolver_self;
        const tr_kata_health_checker_ops *health_ops;
        void *health_self;
        pthread_mutex_t lock;
        /* Runner 2's containerd client, made on first use (under lock). */
        struct tr__ctrd_client *ctrd;
        int kvm_probe; /* -1 unknown, 0 unusable, 1 usable */
} tr__kata;

/* Where the KVM probe's verdict is kept across processes (see kvm.c). */
#define TR_KATA_PROBE_CACHE_DIR "/run/toolruntime"
#define TR_KATA_PROBE_CACHE     TR_KATA_PROBE_CACHE_DIR "/kvm-probe"
#define TR_KATA_PROBE_KEY_MAX   8192

/* 1 when /dev/kvm can run a guest, 0 when not (absent, no permission, or a
 * KVM that creates VMs but never runs them, as under some nested setups).
 * Bounded: each probe step runs in a child killed at its deadline.  With
 * `qemu` and `kernel` NULL only the quick instruction probe runs. */
int tr__kata_kvm_usable(const char *qemu, const char *kernel);

/* The accelerator to use for `want` (AUTO probes, once per backend, with
 * the QEMU binary `qemu` and the backend's kernel). */
tr_kata_accel tr__kata_pick_accel(tr__kata *k, const char *qemu, tr_kata_accel want);
/* A KVM boot timed out: probe again next time (also in other processes). */
void tr__kata_kvm_forget(tr__kata *k);

/* ---- jail.c: QEMU's containment ---- */

/* The host identity QEMU runs as until the per-sandbox uid allocator
 * lands (one place: tr__kata_qemu_run passes it on). */
#define TR_KATA_QEMU_UID 65534
/* Fixed fd numbers inside QEMU: the channel socket and the root image. */
#define TR_KATA_QEMU_CHAN_FD  3
#define TR_KATA_QEMU_IMAGE_FD 4
/* The TCG translation cache, MiB (-accel tcg,tb-size=): QEMU's default is
 * 1 GiB, which a snippet rewriting its code fills; measured: this size
 * does not slow the boot (README). */
#define TR_KATA_TB_SIZE_MIB 128
/* QEMU's host memory cap = guest RAM + this: the translation cache, QEMU's
 * own heap, libraries and thread stacks, the page cache its reads charge
 * (measured, see README). */
#define TR_KATA_QEMU_OVERHEAD (256LL * 1024 * 1024)
/* QEMU's threads (main loop, RCU, vCPUs, up to 64 block workers). */
#define TR_KATA_QEMU_PIDS 128
/* Per-VM state directories (each holds `pid`, QEMU's host pid, and the
 * empty mount point `root`). */
#define TR_KATA_JAIL_DIR TR_KATA_PROBE_CACHE_DIR "/qemu"

typedef struct tr__kata_jail_cfg {
        const char *qemu; /* absolute path of the binary */
        const char *kernel, *initrd, *image;
        uid_t uid;
        gid_t gid;
        bool kvm;
        int64_t memory_cap;   /* bytes */
        int64_t cpu_quota_us; /* per 100 ms; 0: no CPU cap */
} tr__kata_jail_cfg;
typedef struct tr__kata_jail tr__kata_jail;

/* Test seam (unit tests only, not reachable from the API): false skips the
 * pivot_root, for a fake hypervisor script that needs the host's /bin/sh.
 * The namespaces, the cgroup and the identity still apply. */
extern bool tr__kata_jail_root;

/* Create the per-VM state directory and cgroup and plan the root; nothing
 * is left behind on failure (vm_creation_failed / kata_not_available). */
int tr__kata_jail_new(const tr__kata_jail_cfg *c, tr__kata_jail **ret, tr_error **ret_err);
/* Start `argv` (argv[0] the binary) contained, with the channel at fd 3,
 * the console on 1 and 2, the image at fd 4; returns once QEMU is exec'ed
 * (or with the step that failed). */
int tr__kata_jail_spawn(tr__kata_jail *j, const tr__kata_jail_cfg *c, char *const *argv, int chan, int con,
                        pid_t *ret_pid, tr_error **ret_err);
/* Paths of the kernel and initramfs as QEMU sees them. */
const char *tr__kata_jail_kernel(const tr__kata_jail *j);
const char *tr__kata_jail_initrd(const tr__kata_jail *j);
const char *tr__kata_jail_dir(const tr__kata_jail *j);
/* Did the host cgroup's OOM killer kill QEMU? */
bool tr__kata_jail_oom_killed(const tr__kata_jail *j);
/* Remove the cgroup and the state directory; QEMU must be reaped. */
void tr__kata_jail_free(tr__kata_jail *j);
/* Remove the jail directories and cgroups of QEMUs that are gone (their
 * caller was killed before it could); returns how many (jail_gc.c). */
unsigned tr__kata_jail_gc(tr_log_fn log, void *log_userdata);
TR_DEFINE_FREEP(tr__kata_jail, tr__kata_jail_free)

/* Runner 1 (qemu.c).  One VM from prepare to destroy (vm.h). */
typedef struct tr__kata_vm tr__kata_vm;
/* How long a prepared VM waits for its code before its agent powers it
 * off: the core's own bound on an unused sandbox plus a margin, so that a
 * VM whose caller forgot it (or is stuck) does not run forever. */
#define TR_KATA_IDLE_BACKSTOP_MS ((int64_t) TR_SANDBOX_MAX_IDLE_MS + 60 * 1000)
/* Boot the VM of `spec` (which must stay valid until destroy) up to the
 * agent's STARTED: its interpreter waits for the code.  Nothing is left on
 * failure.  `session`: a session's VM (vmsession.c), never run, its
 * interpreter served through session_io until destroy. */
int tr__kata_qemu_prepare(tr__kata *k, const tr_kata_sandbox_spec *spec, tr_exec *ex, bool session,
                          tr__kata_vm **ret_vm, tr_error **ret_err);
/* Run spec->code in the VM, once, under ex's cancel and spec->timeout_ms
 * from now; fills the result. */
int tr__kata_qemu_exec(tr__kata_vm *v, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err);
/* SIGKILL and reap QEMU, remove its directory, cgroup and record; NULL-safe. */
void tr__kata_qemu_destroy(tr__kata_vm *v);
/* prepare + exec + destroy.  `self` is the tr__kata. */
int tr__kata_qemu_run(void *self, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err);
int tr__kata_qemu_check(tr__kata *k, char **ret_detail, tr_error **ret_err);
/* The QEMU command line for `spec` (pure; tests check it).  `chan_fd` is the
 * fd number of the channel socket inside QEMU, `image_fd` that of the root
 * image (-1: spec->image_path is opened by path); `kvm` picks the
 * accelerator.  The kernel and initramfs are spec's paths. */
int tr__kata_qemu_argv(const char *qemu, const tr_kata_sandbox_spec *spec, bool kvm, int chan_fd, int image_fd,
                       char ***ret_argv, tr_error **ret_err);
/* QEMU's host memory cap for a memory limit (0: unlimited). */
int64_t tr__kata_qemu_memory_cap(int64_t memory_bytes);
/* Guest RAM in MiB for a memory limit (0: unlimited). */
int64_t tr__kata_guest_mem_mib(int64_t memory_bytes);
/* vCPUs for a CPU quota (0: unlimited), at most `ncpu`. */
int tr__kata_vcpus(int64_t cpu_quota_ms, int ncpu);

/* Runner 2.  `self` is the tr__kata. */
int tr__kata_ctrd_run(void *self, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err);
int tr__kata_ctrd_check(tr__kata *k, char **ret_detail, tr_error **ret_err);
/* The OCI spec (JSON) Runner 2 gives containerd: the containerd backend's
 * spec with Kata's annotations added. */
int tr__kata_ctrd_spec(const tr_kata_sandbox_spec *spec, char **ret_json, tr_error **ret_err);
/* The seccomp program the guest agent installs on the snippet of `spec`:
 * the same policy the containerd backend gives runc (profile, custom
 * --seccomp file), compiled to BPF.  *ret_prog (free() it) is NULL with
 * *ret_len 0 for the dev profile. */
int tr__kata_seccomp_bpf(const tr_kata_sandbox_spec *spec, uint8_t **ret_prog, size_t *ret_len, tr_error **ret_err);

/* Per-VM state records (state.c): where they are kept. */
#define TR_KATA_STATE_DIR "/run/toolruntime/vm"
/* Margin past a VM's boot bound + timeout after which gc kills it even
 * when its owner still lives (a stuck caller). */
#define TR_KATA_EXPIRY_MARGIN_SEC 300
/* Record QEMU `qemu_pid`, forked by the calling process, with the caller
 * as its owner and `expires` (unix seconds) in `dir`; *ret_path is the
 * record's path (malloc()ed), for tr__kata_state_remove.  -errno. */
int tr__kata_state_write(const char *dir, pid_t qemu_pid, int64_t expires, char **ret_path);
/* Remove the record (once QEMU is reaped) and free the path; NULL-safe. */
void tr__kata_state_remove(char *path);

/* The shim binary that provides io.containerd.kata.v2. */
#define TR_KATA_SHIM         "containerd-shim-kata-v2"
#define TR_KATA_RUNTIME_TYPE "io.containerd.kata.v2"
