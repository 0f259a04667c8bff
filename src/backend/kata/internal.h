/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Definitions shared by the files of the kata backend (src/backend/kata/):
 *
 *   kata.c     the backend handle, config defaults, request -> spec, doctor
 *   qemu.c     Runner 1: the QEMU microVM and the host side of the VM channel
 *   kvm.c      is /dev/kvm really usable (a guest instruction runs)?
 *   spec.c     spec validation, Kata annotations, Runner 2's OCI spec
 *   ctrd.c     Runner 2: Kata through containerd (shim presence, execution)
 *   state.c    the per-VM state record (owner, QEMU pid) and tr_kata_gc
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "toolruntime.h"

#define KATA_KIND TR_BACKEND_KATA

/* The kata backend's handle.  Immutable after creation except the KVM probe
 * cache, which a mutex guards: executions run in parallel. */
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

/* Runner 1.  `self` is the tr__kata. */
int tr__kata_qemu_run(void *self, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err);
int tr__kata_qemu_check(tr__kata *k, char **ret_detail, tr_error **ret_err);
/* The QEMU command line for `spec` (pure; tests check it).  `chan_fd` is the
 * fd number of the channel socket inside QEMU; `kvm` picks the accelerator
 * (and, when we are root, -runas spec->host_uid (nobody when 0), since QEMU
 * then starts as root to open /dev/kvm). */
int tr__kata_qemu_argv(const char *qemu, const tr_kata_sandbox_spec *spec, bool kvm, int chan_fd, char ***ret_argv,
                       tr_error **ret_err);
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
