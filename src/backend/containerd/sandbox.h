/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real ContainerRunner: one sandbox per execution, in three steps kept
 * apart so that a pool of pre-created sandboxes can later take over the
 * first one without touching the others:
 *
 *   prepare  connect, resolve the image, take a lease, prepare a fresh
 *            writable snapshot, build the OCI spec, create the container;
 *   start    create the task with FIFO stdio and start it: the interpreter
 *            waits for the snippet (prepare + start need no code);
 *   run      feed the snippet to its stdin, pump stdout/stderr into the execution while waiting
 *            for the exit under the deadline and the cancel fd (kill on
 *            either), read the cgroup's OOM record;
 *   destroy  delete the task, the container, the snapshot and the lease,
 *            remove the private directory; best effort, never fails, always
 *            complete.  The real runner hands an exited sandbox to the
 *            backend's reaper thread for this, so the result returns
 *            without waiting for containerd's teardown.
 */
#pragma once

#include <pthread.h>

#include "backend/containerd/client.h"
#include "toolruntime.h"

/* The immutable connection parameters shared by every execution of one
 * backend (safe to read from any thread), plus a one-entry cache of the
 * last image resolution, behind its own lock. */
typedef struct tr__ctrd_sandbox tr__ctrd_sandbox;

/* How many idle connections a client keeps for reuse. */
#define TR_CTRD_IDLE_CONNS 8

typedef struct tr__ctrd_client {
        char *socket_path;
        char *ns;
        char *snapshotter;
        char *state_dir;
        tr_log_fn log; /* for the reaper, which has no execution to log to */
        void *log_userdata;
        /* How to pull a missing image (borrowed from the config); NULL: never. */
        const tr_image_pull_opts *pull;
        /* Connections not in use, reused by the next caller: one process
         * running one execution at a time talks to containerd over a single
         * connection; concurrent executions each hold one. */
        pthread_mutex_t conn_lock;
        tr__grpc_conn *idle[TR_CTRD_IDLE_CONNS];
        size_t n_idle;
        pthread_mutex_t cache_lock;
        char *cache_digest; /* manifest/index digest the image name pointed at */
        char *cache_chain_id;
        /* The reaper: finished sandboxes are torn down on its thread (see
         * sandbox.c); started on first use, drained and joined by _done. */
        pthread_mutex_t reaper_lock;
        pthread_cond_t reaper_cond;
        pthread_t reaper_thread;
        bool reaper_running;
        bool reaper_stop;
        tr__ctrd_sandbox *reaper_queue;
        size_t reaper_len;
        /* No reaper thread: the queue waits for _done (the config's
         * teardown_at_free). */
        bool reaper_at_free;
} tr__ctrd_client;

/* Beyond this many sandboxes waiting for teardown, executions tear down
 * their own (backpressure: teardown must keep up with executions). */
#define TR_CTRD_REAPER_MAX 16

/* NULL arguments select the defaults (TR_CONTAINERD_DEFAULT_*, and
 * tr__ctrd_default_state_dir()). */
int tr__ctrd_client_init(tr__ctrd_client *cl, const char *socket_path, const char *ns, const char *snapshotter,
                         const char *state_dir);
/* Where the reaper logs (it has no execution to log through).  Set before
 * the first execution. */
static inline void tr__ctrd_client_set_log(tr__ctrd_client *cl, tr_log_fn log, void *log_userdata) {
        cl->log = log;
        cl->log_userdata = log_userdata;
}
/* Drains and joins the reaper first: after it, nothing of any execution
 * is left in containerd. */
void tr__ctrd_client_done(tr__ctrd_client *cl);

/* A connection for the caller's exclusive use until it hands it back with
 * _release: an idle one that is still sound, or a new one (connecting under
 * `deadline_ns` and `cancel_fd`). */
int tr__ctrd_client_connect(tr__ctrd_client *cl, int64_t deadline_ns, int cancel_fd, tr__grpc_conn **ret,
                            tr_error **ret_err);
/* Hand `conn` back: kept for reuse when sound, closed otherwise.  NULL-safe. */
void tr__ctrd_client_release(tr__ctrd_client *cl, tr__grpc_conn *conn);

/* Resolve `ref` to its rootfs chain id, using the cache when the image
 * still points at the same manifest. */
int tr__ctrd_client_resolve(tr__ctrd_client *cl, const tr__ctrd_ctx *cx, const char *ref, char **ret_chain_id,
                            tr_error **ret_err);

int tr__ctrd_sandbox_prepare(tr__ctrd_client *cl, const tr_containerd_spec *spec, tr_exec *ex, tr__ctrd_sandbox **ret,
                             tr_error **ret_err);
/* Create the task with FIFO stdio and start it: the interpreter then
 * waits for the snippet on stdin.  Still no code needed. */
int tr__ctrd_sandbox_start(tr__ctrd_sandbox *sb, const tr_containerd_spec *spec, tr_exec *ex, tr_error **ret_err);
/* The task's init process on the host (after start; 0 before): what
 * /proc/<pid>/ns/net names the sandbox's network namespace by. */
uint32_t tr__ctrd_sandbox_pid(const tr__ctrd_sandbox *sb);
/* Feed spec->stdin_data, pump the output, wait for the exit. */
int tr__ctrd_sandbox_run(tr__ctrd_sandbox *sb, const tr_containerd_spec *spec, tr_exec *ex,
                         tr_containerd_run_result *ret, tr_error **ret_err);
/* Sessions: the started task's stdio (ours, valid until destroy; -EBADF
 * after a run took them), a signal to its init, which passes it on to the
 * runner, and whether its cgroup recorded an OOM kill. */
int tr__ctrd_sandbox_session_io(tr__ctrd_sandbox *sb, int *ret_in, int *ret_out, int *ret_err);
int tr__ctrd_sandbox_signal(tr__ctrd_sandbox *sb, int sig, tr_error **ret_err);
bool tr__ctrd_sandbox_oom(tr__ctrd_sandbox *sb);
/* Drain the reaper's queue and join it (tr__ctrd_client_done does). */
void tr__ctrd_reaper_stop(tr__ctrd_client *cl);
/* NULL-safe; `ex` only for logging (may be NULL). */
void tr__ctrd_sandbox_destroy(tr__ctrd_sandbox *sb, tr_exec *ex);
/* Destroy on the reaper thread when the task exited (the result need not
 * wait for the deletes), else inline.  With `lease` (the sandbox's uid, then
 * released by destroy once the task is deleted) a task still running
 * because its run ended at the done lines is killed here and also goes to
 * the reaper: that run does not wait for the deletes either. */
struct tr__uid_lease;
void tr__ctrd_sandbox_reap(tr__ctrd_client *cl, tr__ctrd_sandbox *sb, tr_exec *ex, struct tr__uid_lease *lease);

/* "tr-" + 32 random hex digits + NUL: container ids, and the names of the
 * per-execution directories gc matches to them. */
#define TR_CTRD_ID_SIZE (3 + 32 + 1)
int tr__ctrd_random_id(char out[TR_CTRD_ID_SIZE]);

/* The state directory used when the config leaves it NULL (created if
 * possible). */
const char *tr__ctrd_default_state_dir(void);

/* The runner ops over a tr__ctrd_client (self, not owned). */
extern const tr_containerd_runner_ops tr__ctrd_real_runner;

/* How long cleanup RPCs may take, whatever the execution's deadline. */
#define TR_CTRD_CLEANUP_NS (10LL * 1000000000LL)
/* How long a teardown whose connection broke waits for containerd to come
 * back (a daemon restart) before leaving the rest to gc. */
#define TR_CTRD_RESTART_WAIT_NS (30LL * 1000000000LL)
/* TR_CTRD_RESTART_WAIT_NS, which unit tests shorten (a daemon gone for
 * good is waited for as long as a restarting one: they look alike). */
extern int64_t tr__ctrd_restart_wait_ns;
/* After a kill, how long to wait for the task to report its exit. */
#define TR_CTRD_KILL_GRACE_NS (5LL * 1000000000LL)
/* After the exit, how long to drain output the shim still forwards. */
#define TR_CTRD_DRAIN_NS (2LL * 1000000000LL)
/* The sandbox's own deadline (see deadline_argv in sandbox.c): pid 1 is
 * this timeout(1), which kills the command this long after the execution's
 * deadline.  The image must provide it (coreutils; ours does). */
#define TR_CTRD_TIMEOUT_BIN         "/usr/bin/timeout"
#define TR_CTRD_BACKSTOP_MARGIN_SEC 10
/* Margin added to an execution's deadline for the expiry labels. */
#define TR_CTRD_EXPIRY_MARGIN_SEC 300

/* Per-execution directories under the state dir (<id>.io, <id>.gw): made
 * with mkdir (never reusing an entry) and held under a shared flock until
 * removed, so that gc -- which may run against another daemon or namespace
 * sharing the state dir, and cannot see those containers -- never removes
 * one an execution still uses.  Returns the lock's fd, or -errno. */
int tr__ctrd_exec_dir_create(const char *path);
/* gc's side: an fd holding the exclusive lock of `name` in `dirfd` when no
 * execution holds it, -1 otherwise.  Keep it until the directory is gone. */
int tr__ctrd_exec_dir_claim(int dirfd, const char *name);
