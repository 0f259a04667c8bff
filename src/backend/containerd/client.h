/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Typed wrappers over containerd's gRPC services (version, images, content,
 * snapshots, containers, tasks, leases): one function per RPC the backend
 * uses, taking plain C values and hiding the protobuf-c messages.
 *
 * Every wrapper takes a tr__ctrd_ctx: the connection, the deadline of the
 * call, the cancel fd (-1 for cleanup, which must run to the end even after
 * a cancel) and the lease to attach (NULL: none).  Errors are those of
 * grpc.h, with the RPC's name as the error's operation ("task.create").
 *
 * Also usable by the kata backend's containerd runner (through this header
 * only, never the generated code).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/containerd/grpc.h"
#include "toolruntime.h"

/* The label every object the backend creates carries, so that gc finds
 * what a killed caller left behind. */
#define TR_CTRD_OWNER_LABEL "io.toolruntime.owner"
#define TR_CTRD_OWNER_VALUE "toolruntime"
/* RFC 3339 UTC time after which gc may remove the object. */
#define TR_CTRD_EXPIRES_LABEL "io.toolruntime.expires"
/* The owner of the execution (see util/owner.h): the caller's pid, its
 * start time, the boot id and the pid namespace's inode, so that gc
 * removes at once what a dead caller left, and never what a live one
 * holds. */
#define TR_CTRD_OWNER_PID_LABEL   "io.toolruntime.owner.pid"
#define TR_CTRD_OWNER_START_LABEL "io.toolruntime.owner.start"
#define TR_CTRD_OWNER_BOOT_LABEL  "io.toolruntime.owner.boot"
#define TR_CTRD_OWNER_PIDNS_LABEL "io.toolruntime.owner.pidns"
/* containerd's own lease expiry label (its GC removes the lease then). */
#define TR_CTRD_GC_EXPIRE_LABEL "containerd.io/gc.expire"
#define TR_CTRD_SPEC_TYPE_URL   "types.containerd.io/opencontainers/runtime-spec/1/Spec"

typedef struct tr__ctrd_ctx {
        tr__grpc_conn *conn;
        int64_t deadline_ns; /* CLOCK_MONOTONIC */
        int cancel_fd;       /* -1: not cancellable */
        const char *lease;   /* NULL: none */
} tr__ctrd_ctx;

/* A content descriptor (owned strings). */
typedef struct tr__ctrd_desc {
        char *media_type;
        char *digest;
        int64_t size;
} tr__ctrd_desc;
void tr__ctrd_desc_done(tr__ctrd_desc *d);

/* A mount as containerd returns it for a snapshot (owned). */
typedef struct tr__ctrd_mount {
        char *type;
        char *source;
        char **options; /* NULL-terminated */
} tr__ctrd_mount;

typedef struct tr__ctrd_mounts {
        tr__ctrd_mount *items;
        size_t n;
} tr__ctrd_mounts;
void tr__ctrd_mounts_done(tr__ctrd_mounts *m);

/* An object from a List call: its id and labels (owned, "k", "v", ...,
 * NULL), and for snapshots whether it is active (writable). */
typedef struct tr__ctrd_item {
        char *id;
        char **labels;
        bool active;
        /* Tasks: the task's status (containerd.v1.types.Status: 1 created,
         * 2 running, 3 stopped, 4 paused, 5 pausing). */
        int status;
} tr__ctrd_item;

typedef struct tr__ctrd_items {
        tr__ctrd_item *items;
        size_t n;
} tr__ctrd_items;
void tr__ctrd_items_done(tr__ctrd_items *l);
/* NULL when absent. */
const char *tr__ctrd_item_label(const tr__ctrd_item *it, const char *key);

/* Version.Version: the health check.  *ret_version may be NULL. */
int tr__ctrd_version(const tr__ctrd_ctx *cx, char **ret_version, tr_error **ret_err);

/* Images.Get: the image's target descriptor.  -ENOENT when absent. */
int tr__ctrd_image_get(const tr__ctrd_ctx *cx, const char *name, tr__ctrd_desc *ret_target, tr_error **ret_err);

/* Content.Read of a whole blob of at most `max` bytes (its size must be
 * known from its descriptor: `size`). */
int tr__ctrd_content_read(const tr__ctrd_ctx *cx, const char *digest, int64_t size, size_t max, char **ret_data,
                          size_t *ret_len, tr_error **ret_err);

/* Snapshots.Prepare: a new active snapshot `key` on top of `parent`. */
int tr__ctrd_snapshot_prepare(const tr__ctrd_ctx *cx, const char *snapshotter, const char *key, const char *parent,
                              const char *const *labels, tr__ctrd_mounts *ret_mounts, tr_error **ret_err);
int tr__ctrd_snapshot_mounts(const tr__ctrd_ctx *cx, const char *snapshotter, const char *key,
                             tr__ctrd_mounts *ret_mounts, tr_error **ret_err);
int tr__ctrd_snapshot_remove(const tr__ctrd_ctx *cx, const char *snapshotter, const char *key, tr_error **ret_err);
/* Snapshots.List with containerd filters (e.g. `labels."io.toolruntime.owner"==toolruntime`); NULL: all. */
int tr__ctrd_snapshot_list(const tr__ctrd_ctx *cx, const char *snapshotter, const char *filter, tr__ctrd_items *ret,
                           tr_error **ret_err);

/* Containers.Create with the OCI spec JSON as the Any spec. */
typedef struct tr__ctrd_container {
        const char *id;
        const char *image;
        const char *runtime;
        const char *spec_json;
        const char *snapshotter;
        const char *snapshot_key;
        const char *const *labels; /* "k", "v", ..., NULL */
} tr__ctrd_container;
int tr__ctrd_container_create(const tr__ctrd_ctx *cx, const tr__ctrd_container *ct, tr_error **ret_err);
int tr__ctrd_container_delete(const tr__ctrd_ctx *cx, const char *id, tr_error **ret_err);
int tr__ctrd_container_list(const tr__ctrd_ctx *cx, const char *filter, tr__ctrd_items *ret, tr_error **ret_err);

/* Tasks. */
int tr__ctrd_task_create(const tr__ctrd_ctx *cx, const char *id, const tr__ctrd_mounts *rootfs, const char *stdin_path,
                         const char *stdout_path, const char *stderr_path, uint32_t *ret_pid, tr_error **ret_err);
int tr__ctrd_task_start(const tr__ctrd_ctx *cx, const char *id, uint32_t *ret_pid, tr_error **ret_err);
/* Tasks.Wait, asynchronously: the call completes when the task exits. */
int tr__ctrd_task_wait_start(const tr__ctrd_ctx *cx, const char *id, tr__grpc_call **ret_call, tr_error **ret_err);
/* The exit status of a completed Wait call. */
int tr__ctrd_task_wait_result(const tr__grpc_call *call, uint32_t *ret_status, tr_error **ret_err);
int tr__ctrd_task_kill(const tr__ctrd_ctx *cx, const char *id, int signo, bool all, tr_error **ret_err);
/* Tasks.CloseIO(stdin): the shim keeps its own write end of the stdin FIFO
 * open (so a client may reconnect); only this makes the command see EOF. */
/* CloseIO(stdin): the task's stdin EOF.  Started without waiting for the
 * answer (tr__grpc_call_done / tr__grpc_call_result, as for Wait): the run
 * keeps pumping output meanwhile. */
int tr__ctrd_task_close_stdin_start(const tr__ctrd_ctx *cx, const char *id, tr__grpc_call **ret_call,
                                    tr_error **ret_err);
/* *ret_status may be NULL. */
int tr__ctrd_task_delete(const tr__ctrd_ctx *cx, const char *id, uint32_t *ret_status, tr_error **ret_err);
/* Tasks.List; items carry the container id and the status. */
int tr__ctrd_task_list(const tr__ctrd_ctx *cx, tr__ctrd_items *ret, tr_error **ret_err);

/* Leases. */
int tr__ctrd_lease_create(const tr__ctrd_ctx *cx, const char *id, const char *const *labels, tr_error **ret_err);
/* `sync`: wait for containerd's GC to release what the lease held. */
int tr__ctrd_lease_delete(const tr__ctrd_ctx *cx, const char *id, bool sync, tr_error **ret_err);
int tr__ctrd_lease_list(const tr__ctrd_ctx *cx, const char *filter, tr__ctrd_items *ret, tr_error **ret_err);

/* Format a wall-clock time `unix_sec` as RFC 3339 UTC ("2026-11-23T01:02:03Z"). */
void tr__ctrd_rfc3339(int64_t unix_sec, char out[32]);
/* Parse what tr__ctrd_rfc3339 (or containerd: fractional seconds, a zone
 * offset) writes; -EINVAL otherwise. */
int tr__ctrd_parse_rfc3339(const char *s, int64_t *ret_unix_sec);
