/* SPDX-License-Identifier: Apache-2.0 */
/* Public API of the containerd part of toolruntime.  Included by toolruntime.h;
 * do not include directly. */
#pragma once
#ifndef TOOLRUNTIME_H
#error "include <toolruntime.h> instead"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define TR_CONTAINERD_DEFAULT_IMAGE       "toolruntime-sandbox:latest"
#define TR_CONTAINERD_DEFAULT_NAMESPACE   "default"
#define TR_CONTAINERD_DEFAULT_SOCKET      "/run/containerd/containerd.sock"
#define TR_CONTAINERD_DEFAULT_RUNTIME     "io.containerd.runc.v2"
#define TR_CONTAINERD_DEFAULT_SNAPSHOTTER "overlayfs"
/* The smallest memory limit the backend takes (invalid_limits below): runc's
 * own init runs inside the container's cgroup and fails to start it under
 * about 3.5 MiB (measured with runc 1.1); 8 MiB leaves it room. */
#define TR_CONTAINERD_MIN_MEMORY (8LL * 1024 * 1024)

/* Resource limits of one container (the reference's ResourceSpec).  Zero
 * means unlimited; negative is invalid. */
typedef struct tr_containerd_resources {
        int64_t memory_bytes; /* memory, swap included */
        int64_t cpu_quota_us; /* CPU microseconds per 100 ms period */
        int64_t pids_limit;
        int64_t disk_bytes; /* size of the writable tmpfs (/tmp) */
} tr_containerd_resources;

/* Security settings (the reference's SecuritySpec). */
typedef struct tr_containerd_security {
        /* "UID:GID": the sandbox's own host uid, leased per execution from
         * the backend's uid_range (uid == gid); root is a security violation */
        const char *user;
        bool read_only_rootfs;
        const char *network_mode;    /* "none", or "host" (dev profile only) */
        const char *seccomp_profile; /* path of a Docker-format profile; NULL: the runtime's/built-in */
        bool privileged;             /* must be false */
} tr_containerd_security;

/*
 * What to run in a container and how (the reference's ContainerSpec), as
 * the backend hands it to a tr_containerd_runner_ops.  Everything is
 * borrowed for the duration of the run call.
 */
typedef struct tr_containerd_spec {
        const char *id;             /* unique container id for this execution */
        const char *image;          /* image reference (required) */
        const char *runtime;        /* e.g. "io.containerd.runc.v2" */
        const char *const *command; /* NULL-terminated argv (required) */
        const char *working_dir;    /* NULL: "/tmp" */
        const char *const *env;     /* NULL-terminated KEY=VALUE */
        tr_containerd_resources resources;
        tr_containerd_security security;
        int64_t timeout_ms;
        const char *const *labels; /* "key", "value", ..., NULL */
        tr_profile profile;        /* DEV, STANDARD or HARDENED */
        /* Bytes written to the command's stdin, which is then closed (the
         * snippet: the runner command reads it from there). */
        const void *stdin_data;
        size_t stdin_len;
        /* Host directory bind-mounted at /run/toolruntime (holds the gateway
         * socket); NULL: none. */
        const char *gateway_dir;
} tr_containerd_spec;

/* The reference's ContainerSpec.Validate: image and command required,
 * resources non-negative, not privileged, host network only in dev.
 * TR_E_INVALID_REQUEST / TR_E_INVALID_LIMITS / TR_E_SECURITY_VIOLATION. */
TR_PUBLIC int tr_containerd_spec_validate(const tr_containerd_spec *spec, tr_error **ret_err);

/* What a run produced besides its output (the reference's ContainerResult;
 * stdout and stderr stream into the execution instead). */
typedef struct tr_containerd_run_result {
        int exit_code;       /* the command's exit status (128+N when killed by signal N) */
        int64_t duration_us; /* from task start to exit */
        bool oom_killed;     /* the cgroup recorded an OOM kill */
} tr_containerd_run_result;

/*
 * Runs a container for a spec (the reference's ContainerRunner).
 *
 *   run:  create everything the spec needs, run the command to completion,
 *         stream its stdout/stderr with tr_exec_append_stdout/stderr(ex),
 *         and remove everything again, in every case.  Honour
 *         tr_exec_cancel_fd(ex) (fail TR_E_CANCELLED) and
 *         tr_exec_deadline_ns(ex) (kill, fail TR_E_TIMEOUT).  Fills
 *         *ret_result on success.  Must be safe for concurrent use and must
 *         not modify the spec.
 *   free: release self.  May be NULL.
 */
typedef struct tr_containerd_runner_ops {
        int (*run)(void *self, const tr_containerd_spec *spec, tr_exec *ex, tr_containerd_run_result *ret_result,
                   tr_error **ret_err);
        void (*free)(void *self);
} tr_containerd_runner_ops;

/* Resolves (makes sure containerd has) an image before execution (the
 * reference's ImageResolver).  Fails TR_E_IMAGE_NOT_FOUND when it is missing.
 * Safe for concurrent use. */
typedef struct tr_containerd_image_resolver_ops {
        int (*resolve)(void *self, const char *image_ref, tr_exec *ex, tr_error **ret_err);
        void (*free)(void *self);
} tr_containerd_image_resolver_ops;

/* Verifies containerd is reachable (the reference's HealthChecker).  Fails
 * TR_E_CONTAINERD_NOT_AVAILABLE or TR_E_DAEMON_UNAVAILABLE.  Safe for
 * concurrent use. */
typedef struct tr_containerd_health_ops {
        int (*check)(void *self, tr_exec *ex, tr_error **ret_err);
        void (*free)(void *self);
} tr_containerd_health_ops;

/*
 * Configuration of the containerd backend (the reference's Config): a
 * versioned struct.  Zero it, set `size` to sizeof(tr_containerd_config),
 * then set what differs from the defaults (zero/NULL selects the default):
 *
 *     tr_containerd_config cfg = { .size = sizeof(cfg), .socket_path = p };
 *
 * Why a size field rather than an opaque handle with setters: designated
 * initialisers keep callers short and readable, and `size` tells the library
 * which fields the caller knows.  New fields are only ever appended; a
 * library reads the fields the caller's size covers and takes the defaults
 * for the rest, so a program built against an older header keeps working.
 * A size of 0 (the struct was not versioned) or larger than this library
 * knows is TR_E_INVALID_REQUEST.  Strings are copied; the struct is not kept.
 */
typedef struct tr_containerd_config {
        size_t size;                /* sizeof(tr_containerd_config) */
        const char *image_ref;      /* NULL: TR_CONTAINERD_DEFAULT_IMAGE */
        const char *namespace_name; /* NULL: TR_CONTAINERD_DEFAULT_NAMESPACE */
        const char *socket_path;    /* NULL: TR_CONTAINERD_DEFAULT_SOCKET */
        /* NULL: TR_CONTAINERD_DEFAULT_RUNTIME; also io.containerd.runsc.v1,
         * io.containerd.kata.v2, aws.firecracker, ... (passed to containerd) */
        const char *runtime;
        const char *seccomp_path; /* Docker-format profile for hardened; NULL: built-in */
        const char *snapshotter;  /* NULL: TR_CONTAINERD_DEFAULT_SNAPSHOTTER */
        /* Where per-execution private directories (FIFOs, gateway socket)
         * are made; NULL: "/run/toolruntime" when writable, else "/tmp". */
        const char *state_dir;
        /* The host uids the sandboxes run as, one per live sandbox (see
         * tr_uid_range); zero: the default range.  Leases are kept in
         * /run/toolruntime/uids, shared with every other toolruntime process
         * and the kata backend, so two callers with the same range never
         * share a uid. */
        tr_uid_range uid_range;
        /* Log lines outside an execution (gc); executions log through the
         * runtime's logger.  May be NULL. */
        tr_log_fn log;
        void *log_userdata;
        /* Pull an image that is missing from containerd before running it
         * (NULL: never pull; the execution fails TR_E_IMAGE_NOT_FOUND).  The
         * hardened profile pulls only references pinned by digest. */
        const struct tr_image_pull_opts *pull;
        /* Where a finished sandbox is torn down.  false (the default): on
         * the backend's own thread, so that the result returns before the
         * teardown.  true: when the backend is freed, on the caller's
         * thread, and no thread is started for it.  For one-shot callers
         * only: one that forks to finish the teardown after it reported its
         * result (the CLI does) sets it, since a fork copies only the
         * calling thread.  A long-lived caller would keep up to 16 finished
         * sandboxes (their uids, shims and mounts) until the free. */
        bool teardown_at_free;
} tr_containerd_config;

/* Default cap on what one image may weigh (its blobs, compressed). */
#define TR_IMAGE_PULL_DEFAULT_MAX_BYTES (2LL * 1024 * 1024 * 1024)

/* How to reach registries.  Zero it, then set what differs. */
typedef struct tr_image_pull_opts {
        /* Docker-format config.json with "auths"; NULL: $DOCKER_CONFIG/config.json,
         * else ~/.docker/config.json (absent: anonymous). */
        const char *registry_config;
        /* Registries ("host:port") spoken to over plain HTTP; all others HTTPS. */
        const char *const *insecure_registries;
        int64_t max_bytes;  /* 0: TR_IMAGE_PULL_DEFAULT_MAX_BYTES */
        int64_t timeout_ms; /* whole pull; 0: 30 minutes */
        /* Called while blobs download (what: the blob's digest). May be NULL. */
        void (*progress)(void *userdata, const char *what, int64_t now, int64_t total);
        void *progress_userdata;
} tr_image_pull_opts;

/* Pull `ref` ("[registry/]name[:tag][@sha256:...]") into containerd:
 * verified blobs, unpacked layers, the image record (labelled
 * io.toolruntime.owner).  *ret_name (may be NULL; free()) gets the stored
 * name.  Nothing is left behind on failure. */
TR_PUBLIC int tr_containerd_image_pull(const tr_containerd_config *cfg, const char *ref, const tr_image_pull_opts *opts,
                                       char **ret_name, tr_error **ret_err);

/* The pull policy, decided here only: may a missing `ref` be pulled on
 * demand under `profile`?  Always, except under hardened, which pulls only
 * references pinned by digest (NAME@sha256:...), whose content cannot
 * change under the name. */
TR_PUBLIC bool tr_image_pull_allowed(tr_profile profile, const char *ref);

/* One of toolruntime's images (labelled io.toolruntime.owner). */
typedef struct tr_image_entry {
        char *name;
        char *digest; /* what the name points at (an index or a manifest) */
        char *source; /* "pull", "build" or "" */
} tr_image_entry;
/* The images toolruntime pulled or built, in the config's namespace. */
TR_PUBLIC int tr_containerd_image_list(const tr_containerd_config *cfg, tr_image_entry **ret, size_t *ret_n,
                                       tr_error **ret_err);
TR_PUBLIC void tr_image_entries_free(tr_image_entry *v, size_t n);
/* The image `ref` names in containerd, spelled as exec takes it ("sci" is
 * sci:latest, a short name may be docker.io/library/...): the stored name
 * and the digest it points at (free() both).  TR_E_IMAGE_NOT_FOUND when
 * absent; nothing is pulled. */
TR_PUBLIC int tr_containerd_image_lookup(const tr_containerd_config *cfg, const char *ref, char **ret_name,
                                         char **ret_digest, tr_error **ret_err);
/* Remove one of toolruntime's images (`ref` spelled as exec takes it) and,
 * synchronously, the content and snapshots only it held.  An image without
 * the owner label is refused (TR_E_IMAGE_NOT_FOUND).  *ret_digest (may be
 * NULL; free()) gets the digest the name pointed at. */
TR_PUBLIC int tr_containerd_image_remove(const tr_containerd_config *cfg, const char *ref, char **ret_digest,
                                         tr_error **ret_err);

/* The containerd backend.  `cfg` may be NULL (all defaults).  Does not
 * contact containerd: errors about the daemon come from each execution.
 * Fails TR_E_INVALID_REQUEST on a malformed config. */
TR_PUBLIC int tr_backend_containerd_new(const tr_containerd_config *cfg, tr_backend **ret_backend, tr_error **ret_err);

/* What `toolruntime doctor` runs: connect to the socket, ask the daemon
 * its version and resolve the sandbox image, with a 5 s deadline.  Returns 0
 * and a malloc()ed one-line summary in *ret_detail (may be NULL), or the
 * error an execution would get: containerd_not_available (no socket),
 * daemon_unavailable (no answer), image_not_found (run `toolruntime image
 * build`), container_failed. */
TR_PUBLIC int tr_containerd_check(const tr_containerd_config *cfg, char **ret_detail, tr_error **ret_err);

/* Remove what killed callers left behind in cfg's namespace: tasks,
 * containers, active snapshots and leases labelled io.toolruntime.owner
 * whose owner -- the calling process recorded in the labels
 * io.toolruntime.owner.{pid,start,boot,pidns} -- is dead (at once), or
 * whose expiry (the execution's deadline plus a margin) has passed, and
 * the FIFO and gateway directories no live execution holds (by their lock).
 * Executions whose caller lives are never touched.  An owner in another
 * pid namespace cannot be checked: only the expiry applies.  *ret_removed
 * (may be NULL) receives how many objects were removed. */
TR_PUBLIC int tr_containerd_gc(const tr_containerd_config *cfg, unsigned *ret_removed, tr_error **ret_err);

/* Like tr_containerd_gc, but removes every object labelled as ours whatever
 * its owner and expiry when `all` is true (for tests and `toolruntime gc --all`, when
 * no execution can be running). */
TR_PUBLIC int tr_containerd_gc_ex(const tr_containerd_config *cfg, bool all, unsigned *ret_removed, tr_error **ret_err);

#ifdef __cplusplus
}
#endif
