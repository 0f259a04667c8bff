/* SPDX-License-Identifier: Apache-2.0 */
/* Public API of the kata part of toolruntime.  Included by toolruntime.h;
 * do not include directly.
 *
 * The kata backend runs every execution in its own virtual machine, with its
 * own kernel: the strongest isolation toolruntime offers.  Two runners:
 *
 *   TR_KATA_RUNNER_QEMU (the default): a microVM booted by the library
 *     itself — qemu-system-x86_64 -M microvm, KVM when /dev/kvm really
 *     works, TCG otherwise — with the kernel at kernel_path, the guest agent
 *     in the initramfs at initrd_path and the read-only root image at
 *     image_path, talking over a virtio-serial port.  No network device for
 *     standard/hardened.  `toolruntime image build --vm` makes the files.
 *
 *   TR_KATA_RUNNER_CONTAINERD: Kata Containers through containerd's
 *     io.containerd.kata.v2 shim, with the container image `image` and the
 *     hypervisor/kernel/image choices passed as Kata's OCI annotations.
 *     Answers TR_E_KATA_NOT_AVAILABLE when the shim is not installed.
 *
 * Tests replace the runner, the image resolver and the health check with
 * fakes through the library's internal constructor (backend/kata/internal.h).
 */
#pragma once
#ifndef TOOLRUNTIME_H
#error "include <toolruntime.h> instead"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Where `toolruntime image build --vm` puts the VM's files. */
#define TR_KATA_DEFAULT_VM_DIR     "/var/lib/toolruntime/vm"
#define TR_KATA_DEFAULT_KERNEL     TR_KATA_DEFAULT_VM_DIR "/vmlinuz"
#define TR_KATA_DEFAULT_INITRD     TR_KATA_DEFAULT_VM_DIR "/initrd.img"
#define TR_KATA_DEFAULT_IMAGE_PATH TR_KATA_DEFAULT_VM_DIR "/rootfs.ext4"
#define TR_KATA_DEFAULT_IMAGE      "toolruntime-sandbox:latest"
#define TR_KATA_DEFAULT_HYPERVISOR "qemu"
/* A boot that has not reached the agent by then is vm_creation_failed. */
#define TR_KATA_DEFAULT_BOOT_TIMEOUT_MS 60000
/* Guest memory when the request sets no memory limit, and what is added to
 * a limit for the guest kernel and the agent (the limit itself is enforced
 * by a cgroup inside the guest). */
/* The smallest memory limit the backend takes (invalid_limits below): the
 * interpreter needs a few MiB to start, and the agent treats a snippet
 * within 12 MiB of its limit while the kernel reclaims as out of memory
 * (guest/agent/agent.c, the thrash watch). */
#define TR_KATA_MIN_MEMORY           (32LL * 1024 * 1024)
#define TR_KATA_DEFAULT_GUEST_MEMORY (512LL * 1024 * 1024)
#define TR_KATA_GUEST_OVERHEAD       (192LL * 1024 * 1024)

typedef enum tr_kata_runner_kind {
        TR_KATA_RUNNER_QEMU = 0,   /* default: the microVM runner */
        TR_KATA_RUNNER_CONTAINERD, /* Kata Containers through containerd */
} tr_kata_runner_kind;

typedef enum tr_kata_accel {
        TR_KATA_ACCEL_AUTO = 0, /* KVM when /dev/kvm runs a guest, else TCG */
        TR_KATA_ACCEL_KVM,
        TR_KATA_ACCEL_TCG,
} tr_kata_accel;

/* Resource requests of one sandbox; zero means unlimited. */
typedef struct tr_kata_resources {
        int64_t cpu_quota_ms; /* CPU ms per 100 ms: vCPUs = ceil(quota/100), cpu.max inside */
        int64_t memory_bytes;
        int64_t pids_max;
        int64_t disk_bytes; /* size of the private /tmp */
} tr_kata_resources;

typedef struct tr_kata_security {
        const char *user;            /* "65534:65534"; root is a security violation */
        bool read_only_rootfs;       /* must be true outside dev */
        const char *network_mode;    /* "none" (standard, hardened) or "user" (dev only) */
        const char *seccomp_profile; /* NULL: the built-in default for hardened */
        bool privileged;             /* always a security violation */
} tr_kata_security;

/* What to run (the seed's SandboxSpec).  Every pointer is borrowed from the
 * backend for the duration of one run. */
typedef struct tr_kata_sandbox_spec {
        const char *image;      /* container image (containerd runner) */
        const char *runtime;    /* RuntimePath: hypervisor binary or shim */
        const char *hypervisor; /* "qemu", "cloud-hypervisor", "firecracker" */
        const char *kernel_path;
        const char *initrd_path;
        const char *image_path;  /* guest root image */
        const char *const *argv; /* NULL-terminated; reads the code from stdin */
        const char *working_dir;
        const char *const *env; /* NULL-terminated KEY=VALUE */
        const void *code;       /* written to the command's stdin */
        size_t code_len;
        tr_kata_resources resources;
        tr_kata_security security;
        tr_profile profile; /* never TR_PROFILE_DEFAULT */
        int64_t timeout_ms; /* the snippet's run time */
        int64_t boot_timeout_ms;
        tr_kata_accel accel;
        const char *const *labels; /* NULL-terminated alternating key, value */
        /* The host uid (also the gid) the hypervisor runs as: the VM's own,
         * leased by the backend from tr_kata_config.uid_range for the VM's
         * life when the library runs as root; 0 when it does not (QEMU then
         * keeps the caller's uid).  Not the guest's user: inside, the
         * snippet stays `security.user`. */
        uint32_t host_uid;
} tr_kata_sandbox_spec;

/* Checks the seed's Validate rules: image or image_path, a command,
 * non-negative resources (invalid_limits / invalid_request) and the
 * security rules (security_violation: privileged, root user, writable root
 * or network outside dev). */
TR_PUBLIC int tr_kata_sandbox_spec_validate(const tr_kata_sandbox_spec *spec, tr_error **ret_err);

/*
 * A sandbox runner (the seed's SandboxRunner).
 *
 *   run:  run `spec` to completion: stream output through
 *         tr_exec_append_stdout/stderr(ex), set the exit code on
 *         tr_exec_result(ex), honour tr_exec_cancel_fd(ex) (TR_E_CANCELLED)
 *         and spec->timeout_ms (TR_E_TIMEOUT), leave nothing behind.  Must
 *         be safe for concurrent use and must not mutate `spec`.  A
 *         runner that serves the gateway itself does so for `ex`.
 *   free: release `self`; may be NULL.
 */
typedef struct tr_kata_sandbox_runner_ops {
        int (*run)(void *self, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err);
        void (*free)(void *self);
} tr_kata_sandbox_runner_ops;

/* Resolves (pulls) `image` before a run; may be NULL. */
typedef struct tr_kata_image_resolver_ops {
        int (*resolve)(void *self, const char *image, tr_error **ret_err);
        void (*free)(void *self);
} tr_kata_image_resolver_ops;

/* Verifies the runner can work at all (binaries, files, /dev/kvm).  On
 * success *ret_detail (may be NULL) receives a malloc()ed one-line summary. */
typedef struct tr_kata_health_checker_ops {
        int (*check)(void *self, char **ret_detail, tr_error **ret_err);
        void (*free)(void *self);
} tr_kata_health_checker_ops;

/* Configuration of the kata backend: a versioned struct, like
 * tr_containerd_config (see there why): `size` = sizeof(tr_kata_config),
 * zero/NULL fields select the defaults, new fields are appended only. */
typedef struct tr_kata_config {
        size_t size; /* sizeof(tr_kata_config) */
        /* The hypervisor binary for the QEMU runner (default
         * qemu-system-x86_64, or cloud-hypervisor / firecracker for those
         * hypervisors); the shim for the containerd runner (default
         * containerd-shim-kata-v2).  Looked up in PATH unless it has a '/'. */
        const char *runtime_path;
        const char *image;       /* default TR_KATA_DEFAULT_IMAGE */
        const char *hypervisor;  /* default "qemu" */
        const char *kernel_path; /* default TR_KATA_DEFAULT_KERNEL */
        const char *image_path;  /* default TR_KATA_DEFAULT_IMAGE_PATH */
        const char *initrd_path; /* default TR_KATA_DEFAULT_INITRD */
        tr_kata_runner_kind runner;
        tr_kata_accel accel;
        int64_t boot_timeout_ms; /* 0: TR_KATA_DEFAULT_BOOT_TIMEOUT_MS */
        /* The host uids the QEMU runner's VMs run as, one per live VM (see
         * tr_uid_range; zero: the default range), leased from the same pool
         * as the containerd backend's sandboxes. */
        tr_uid_range uid_range;
        /* containerd runner: the daemon and namespace (NULL: defaults). */
        const char *containerd_address;
        const char *containerd_namespace;
        /* A Docker-format seccomp profile for the hardened profile (an
         * absolute path; NULL: the built-in allowlist), as the containerd
         * backend's seccomp_path: compiled on the host, installed by the
         * guest agent, with the same native-ABI and socket layers. */
        const char *seccomp_path;
} tr_kata_config;

/* A kata backend.  `cfg` may be NULL (all defaults); its strings are copied.
 * Creation checks nothing on the machine: a missing kernel or hypervisor is
 * reported by each execution (kata_not_available) and by tr_kata_check. */
TR_PUBLIC int tr_backend_kata_new(const tr_kata_config *cfg, tr_backend **ret_backend, tr_error **ret_err);

/* The health check `toolruntime doctor` runs: is the configured runner able
 * to work here (hypervisor binary, /dev/kvm usability, kernel, initramfs and
 * root image present; for containerd the kata shim)?  Returns 0 and a
 * malloc()ed summary in *ret_detail (may be NULL) such as "qemu 7.2 tcg
 * (no usable /dev/kvm), kernel …, image …"; otherwise a negative value with
 * *ret_err saying what is missing (kata_not_available). */
TR_PUBLIC int tr_kata_check(const tr_kata_config *cfg, char **ret_detail, tr_error **ret_err);

/* `toolruntime gc` for the QEMU runner: every VM leaves a state record
 * (its QEMU's pid and start time, its caller's pid, start time, boot id and
 * pid namespace) in `state_dir` (NULL: /run/toolruntime/vm) while it runs.
 * Kills the QEMU of, and removes, each record whose caller is dead or
 * whose expiry (boot bound + timeout + 5 minutes) passed, or every record
 * when `all`; a VM whose caller lives is left alone.  `log` (may be NULL)
 * hears what is removed; *ret_removed (may be NULL) counts QEMUs killed
 * and records removed. */
TR_PUBLIC int tr_kata_gc(const char *state_dir, bool all, tr_log_fn log, void *log_userdata, unsigned *ret_removed,
                         tr_error **ret_err);

/* Kata's OCI annotations for the containerd runner, as a NULL-terminated
 * array of alternating malloc()ed keys and values (free with
 * tr_kata_strv_free).  Pure: exposed for tests and `toolruntime doctor`. */
TR_PUBLIC int tr_kata_annotations(const tr_kata_sandbox_spec *spec, char ***ret_kv, tr_error **ret_err);
TR_PUBLIC void tr_kata_strv_free(char **v);

#ifdef __cplusplus
}
#endif
