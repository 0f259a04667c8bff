/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real ContainerRunner's sandbox (sandbox.h), shared by its three
 * stages: sandbox.c (ids, labels, prepare), sandbox_run.c (start, run,
 * the session seam) and sandbox_destroy.c (teardown, the reaper, the runner
 * ops).  Private to src/backend/containerd.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backend/containerd/sandbox.h"
#include "core/uidalloc.h"

#define OUT_CHUNK 65536

struct tr__ctrd_sandbox {
        tr__ctrd_client *cl;
        tr__grpc_conn *conn;
        char *id;
        char *lease_id;
        char *snapshot_key;
        char *cgroups_path;
        char *io_dir;
        int io_lock;               /* see tr__ctrd_exec_dir_create */
        char *fifo[3];             /* stdin, stdout, stderr */
        int in_fd, out_fd, err_fd; /* our ends, open from start to destroy */
        uint32_t pid;              /* the task's init, on the host */
        tr__ctrd_mounts mounts;
        bool lease_created;
        bool snapshot_created;
        bool container_created;
        bool task_created;
        bool task_exited;
        bool task_killed;
        bool ended_at_done;            /* the run ended at the runner's done lines */
        tr__uid_lease *lease;          /* handed over by reap, released by destroy */
        struct tr__ctrd_sandbox *next; /* the reaper's queue */
        char expires[32];
        /* The caller, as labels (util/owner.h); empty when /proc could not
         * say, and gc then goes by the expiry alone. */
        char owner_pid[24], owner_start[24], owner_pidns[24];
        char owner_boot[40];
};

/* An OS error as the sandbox's error (errno, or EIO). */
int tr__ctrd_sb_sys_err(tr_error **ret_err, const char *op, const char *what, const char *path);
/* The context of a cleanup RPC: its own deadline, no cancel (see there). */
tr__ctrd_ctx tr__ctrd_sb_cleanup_ctx(const tr__ctrd_sandbox *sb);
/* One --verbose "span" line; returns its end (the next step's start). */
int64_t tr__ctrd_sb_span(const tr__ctrd_client *cl, tr_exec *ex, const char *step, int64_t t0);
/* Log a cleanup failure (to `ex`, else the client's logger); frees `err`. */
void tr__ctrd_sb_log_cleanup_error(const tr__ctrd_client *cl, tr_exec *ex, const char *what, const char *id,
                                   tr_error *err);
#define log_cleanup_error(ex, what, id, err) tr__ctrd_sb_log_cleanup_error(sb->cl, (ex), (what), (id), (err))
/* SIGKILL to every process of the task, once (sandbox_destroy.c). */
void tr__ctrd_sb_kill_task(tr__ctrd_sandbox *sb, tr_exec *ex, bool *reconnected);
/* Did `err` come from a lost connection (sandbox_destroy.c)? */
bool tr__ctrd_sb_conn_lost(const tr_error *err);
/* Replace a lost connection once per destroy; true: retry the RPC. */
bool tr__ctrd_sb_cleanup_reconnect(tr__ctrd_sandbox *sb, tr_exec *ex, const tr_error *err, bool *reconnected);
