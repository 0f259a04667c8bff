/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real ContainerRunner's teardown (sandbox_int.h): every object the
 * sandbox recorded, removed in order (task, container, snapshot, lease)
 * from every state and across one lost connection; the reaper thread that
 * does it off the caller's path; and the runner ops that tie prepare, run
 * and destroy together.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/containerd/image.h"
#include "backend/containerd/pull.h"
#include "backend/containerd/sandbox.h"
#include "backend/containerd/sandbox_int.h"
#include "backend/containerd/spec.h"
#include "core/plan.h"
#include "util/macros.h"
#include "util/owner.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

/* ---- destroy ------------------------------------------------------------ */

/* Did `err` come from the connection rather than from the RPC: the socket
 * broke (EPIPE, reset), the HTTP/2 session failed (protocol error), or the
 * daemon answered UNAVAILABLE?  A fresh connection may then succeed. */
bool tr__ctrd_sb_conn_lost(const tr_error *err) {
        if (!err)
                return false;
        if (tr_error_code(err) == TR_E_DAEMON_UNAVAILABLE)
                return true;
        int e = tr_error_errno(err);
        return e == EPIPE || e == ECONNRESET || e == ECONNABORTED || e == ENOTCONN || e == EPROTO;
}

/* Cleanup must happen even when the run failed because its connection
 * broke: once per destroy, replace a lost connection with a fresh one (not
 * cancellable).  A daemon that is restarting has no socket for a moment,
 * so connecting is retried for up to TR_CTRD_RESTART_WAIT_NS; without
 * that, everything of a sandbox in flight during a containerd restart
 * (task, shim, container, snapshot, lease) stayed behind.  True when the
 * caller should retry the RPC that failed with `err`. */
int64_t tr__ctrd_restart_wait_ns = TR_CTRD_RESTART_WAIT_NS;

bool tr__ctrd_sb_cleanup_reconnect(tr__ctrd_sandbox *sb, tr_exec *ex, const tr_error *err, bool *reconnected) {
        if (*reconnected || !tr__ctrd_sb_conn_lost(err))
                return false;
        *reconnected = true;
        int64_t give_up = tr__now_ns() + tr__ctrd_restart_wait_ns;
        for (int64_t pause_ms = 50;; pause_ms = pause_ms < 800 ? pause_ms * 2 : 1000) {
                tr__grpc_conn *c = NULL;
                tr_error *cerr = NULL;
                if (tr__ctrd_client_connect(sb->cl, tr__now_ns() + TR_CTRD_CLEANUP_NS, -1, &c, &cerr) >= 0) {
                        tr__grpc_conn_free(sb->conn);
                        sb->conn = c;
                        return true;
                }
                bool again = (tr_error_code(cerr) == TR_E_DAEMON_UNAVAILABLE ||
                              tr_error_code(cerr) == TR_E_CONTAINERD_NOT_AVAILABLE) &&
                             tr__now_ns() + pause_ms * 1000000LL < give_up;
                if (!again) {
                        log_cleanup_error(ex, "reconnect", sb->id, cerr);
                        return false;
                }
                tr_error_free(cerr);
                struct timespec ts = { .tv_sec = pause_ms / 1000, .tv_nsec = (pause_ms % 1000) * 1000000L };
                nanosleep(&ts, NULL);
        }
}

/* How long a task whose run ended at the runner's done lines gets to exit
 * by itself before it is killed (teardown_task). */
#define DONE_EXIT_GRACE_NS (200LL * 1000 * 1000)

/* SIGKILL to every process of the task, once. */
void tr__ctrd_sb_kill_task(tr__ctrd_sandbox *sb, tr_exec *ex, bool *reconnected) {
        if (sb->task_killed)
                return;
        tr_error *err = NULL;
        int r;
        do {
                tr_error_free(TAKE_PTR(err));
                tr__ctrd_ctx cx = tr__ctrd_sb_cleanup_ctx(sb);
                r = tr__ctrd_task_kill(&cx, sb->id, SIGKILL, true, &err);
        } while (r < 0 && tr__ctrd_sb_cleanup_reconnect(sb, ex, err, reconnected));
        tr_error_free(err);
        sb->task_killed = true;
}

/* After an error the task may still run: kill, give it a moment to exit,
 * delete (retrying while it is stopping).  Deleting it removes its cgroup
 * and rootfs mounts before the container and snapshot go. */
static void teardown_task(tr__ctrd_sandbox *sb, tr_exec *ex, bool *reconnected) {
        tr_error *err = NULL;
        int r;
        tr__ctrd_ctx cx;
        /* After its done lines the runner leaves by itself (os._exit, then
         * timeout(1), the task's init, and the pid namespace with it): it
         * gets DONE_EXIT_GRACE to, which spares a `runc kill` (a Go process,
         * CPU every pooled sandbox would pay).  A task still running then
         * (a snippet that wrote a done line and went on) is killed. */
        bool awaiting_exit = !sb->task_exited && sb->ended_at_done && !sb->task_killed;
        if (!sb->task_exited && !awaiting_exit)
                tr__ctrd_sb_kill_task(sb, ex, reconnected);
        int64_t now = tr__now_ns();
        int64_t exit_by = now + DONE_EXIT_GRACE_NS, until = now + TR_CTRD_KILL_GRACE_NS;
        long pause_ms = 2;
        for (;;) {
                tr_error_free(TAKE_PTR(err));
                cx = tr__ctrd_sb_cleanup_ctx(sb);
                r = tr__ctrd_task_delete(&cx, sb->id, NULL, &err);
                if (r < 0 && tr__ctrd_sb_cleanup_reconnect(sb, ex, err, reconnected))
                        continue;
                /* A connection lost again after the reconnect will not come
                 * back within the grace. */
                if (r >= 0 || r == -ENOENT || tr__ctrd_sb_conn_lost(err))
                        break;
                if (awaiting_exit && tr__now_ns() >= exit_by) {
                        awaiting_exit = false;
                        tr__ctrd_sb_kill_task(sb, ex, reconnected);
                        until = tr__now_ns() + TR_CTRD_KILL_GRACE_NS;
                        pause_ms = 2;
                        continue;
                }
                if (!awaiting_exit && tr__now_ns() >= until)
                        break;
                /* A killed task is usually gone within a few ms: look again
                 * soon, then less often. */
                struct timespec ts = { 0, pause_ms * 1000 * 1000 };
                nanosleep(&ts, NULL);
                pause_ms = pause_ms * 2 > 50 ? 50 : pause_ms * 2;
        }
        if (err && tr_error_errno(err) != ENOENT) {
                log_cleanup_error(ex, "task.delete", sb->id, TAKE_PTR(err));
                /* Deleting the container under a live task would orphan the
                 * task (containerd can then neither kill nor delete it), and
                 * its rootfs is still mounted: leave container and snapshot
                 * to gc, which retries once their expiry passed. */
                sb->container_created = false;
                sb->snapshot_created = false;
        }
        tr_error_free(err);
}

/* The objects a sandbox may hold besides its task, in teardown order (the
 * container before the snapshot it uses, the lease last): one loop removes
 * them all, each retried once on a fresh connection when the old one was
 * lost, NOT_FOUND meaning already gone. */
static int rm_container(tr__ctrd_sandbox *sb, const tr__ctrd_ctx *cx, tr_error **err) {
        return tr__ctrd_container_delete(cx, sb->id, err);
}
static int rm_snapshot(tr__ctrd_sandbox *sb, const tr__ctrd_ctx *cx, tr_error **err) {
        return tr__ctrd_snapshot_remove(cx, sb->cl->snapshotter, sb->snapshot_key, err);
}
static int rm_lease(tr__ctrd_sandbox *sb, const tr__ctrd_ctx *cx, tr_error **err) {
        return tr__ctrd_lease_delete(cx, sb->lease_id, false, err);
}

static const struct {
        const char *what;
        size_t created; /* offsetof the sandbox's "was created" flag */
        int (*rm)(tr__ctrd_sandbox *sb, const tr__ctrd_ctx *cx, tr_error **err);
} teardown[] = {
        { "container.delete", offsetof(tr__ctrd_sandbox, container_created), rm_container },
        { "snapshot.remove", offsetof(tr__ctrd_sandbox, snapshot_created), rm_snapshot },
        { "lease.delete", offsetof(tr__ctrd_sandbox, lease_created), rm_lease },
};

static void teardown_objects(tr__ctrd_sandbox *sb, tr_exec *ex, bool *reconnected) {
        int64_t t = tr__now_ns();
        for (size_t i = 0; i < ARRAY_SIZE(teardown); i++) {
                if (!*(bool *) ((char *) sb + teardown[i].created))
                        continue;
                tr_error *err = NULL;
                int r;
                do {
                        tr_error_free(TAKE_PTR(err));
                        tr__ctrd_ctx cx = tr__ctrd_sb_cleanup_ctx(sb);
                        r = teardown[i].rm(sb, &cx, &err);
                } while (r < 0 && tr__ctrd_sb_cleanup_reconnect(sb, ex, err, reconnected));
                if (r < 0 && tr_error_errno(err) != ENOENT)
                        log_cleanup_error(ex, teardown[i].what, sb->id, TAKE_PTR(err));
                tr_error_free(err);
                t = tr__ctrd_sb_span(sb->cl, ex, teardown[i].what, t);
        }
}

void tr__ctrd_sandbox_destroy(tr__ctrd_sandbox *sb, tr_exec *ex) {
        if (!sb)
                return;
        int64_t t0 = tr__now_ns();
        if (sb->conn) {
                bool reconnected = false;
                if (sb->task_created) {
                        teardown_task(sb, ex, &reconnected);
                        (void) tr__ctrd_sb_span(sb->cl, ex, "task.delete", t0);
                }
                teardown_objects(sb, ex, &reconnected);
        }
        if (sb->io_dir)
                (void) tr__rm_rf(sb->io_dir);
        if (sb->io_lock >= 0)
                close(sb->io_lock);
        tr__closep(&sb->in_fd);
        tr__closep(&sb->out_fd);
        tr__closep(&sb->err_fd);
        tr__ctrd_sb_span(sb->cl, ex, "destroy", t0);
        /* The task is deleted (or left to gc after every retry): the uid
         * handed over by tr__ctrd_sandbox_reap goes back. */
        tr__uid_lease_free(sb->lease);
        tr__ctrd_client_release(sb->cl, sb->conn);
        tr__ctrd_mounts_done(&sb->mounts);
        for (size_t i = 0; i < 3; i++)
                free(sb->fifo[i]);
        free(sb->io_dir);
        free(sb->id);
        free(sb->lease_id);
        free(sb->snapshot_key);
        free(sb->cgroups_path);
        free(sb);
}

/* ---- the runner ops ------------------------------------------------------------ */

/* ---- the reaper ------------------------------------------------------------ */

/* Deleting the task, container, snapshot and lease takes about as long as
 * starting the snippet (the shim exits, runc deletes, overlay unmounts), and
 * nothing of the result depends on it once the task has exited.  So a
 * finished sandbox goes to the backend's reaper thread, and the result goes
 * back to the caller right away.  The reaper is joined (its queue drained)
 * when the backend is freed, so nothing outlives the backend; a sandbox
 * whose task did not exit, or a full queue, is destroyed inline. */
static void *reaper_main(void *p) {
        tr__ctrd_client *cl = p;
        pthread_mutex_lock(&cl->reaper_lock);
        for (;;) {
                while (!cl->reaper_queue && !cl->reaper_stop)
                        pthread_cond_wait(&cl->reaper_cond, &cl->reaper_lock);
                tr__ctrd_sandbox *sb = cl->reaper_queue;
                if (!sb)
                        break; /* stopping, queue drained */
                cl->reaper_queue = sb->next;
                cl->reaper_len--;
                pthread_mutex_unlock(&cl->reaper_lock);
                tr__ctrd_sandbox_destroy(sb, NULL);
                pthread_mutex_lock(&cl->reaper_lock);
        }
        pthread_mutex_unlock(&cl->reaper_lock);
        return NULL;
}

void tr__ctrd_sandbox_reap(tr__ctrd_client *cl, tr__ctrd_sandbox *sb, tr_exec *ex, tr__uid_lease *lease) {
        bool queued = false;
        sb->lease = lease;
        /* A task still running because its run ended at the done lines is
         * leaving by itself: the reaper lets it (teardown_task: killed after
         * DONE_EXIT_GRACE_NS if not), deletes it and only then releases the
         * uid (no process runs as it any more).  Other live tasks (a
         * session's, a failed run's) are torn down inline. */
        bool early = !sb->task_exited && sb->task_created && sb->ended_at_done && lease;
        if (sb->task_exited || early) {
                pthread_mutex_lock(&cl->reaper_lock);
                if (!cl->reaper_running && !cl->reaper_stop && !cl->reaper_at_free &&
                    pthread_create(&cl->reaper_thread, NULL, reaper_main, cl) == 0)
                        cl->reaper_running = true;
                if ((cl->reaper_running || cl->reaper_at_free) && !cl->reaper_stop &&
                    cl->reaper_len < TR_CTRD_REAPER_MAX) {
                        /* FIFO order is not needed; push front. */
                        sb->next = cl->reaper_queue;
                        cl->reaper_queue = sb;
                        cl->reaper_len++;
                        queued = true;
                        pthread_cond_signal(&cl->reaper_cond);
                }
                pthread_mutex_unlock(&cl->reaper_lock);
        }
        if (!queued)
                tr__ctrd_sandbox_destroy(sb, ex);
}

void tr__ctrd_reaper_stop(tr__ctrd_client *cl) {
        pthread_mutex_lock(&cl->reaper_lock);
        cl->reaper_stop = true;
        bool running = cl->reaper_running;
        pthread_cond_signal(&cl->reaper_cond);
        pthread_mutex_unlock(&cl->reaper_lock);
        if (running)
                pthread_join(cl->reaper_thread, NULL);
        cl->reaper_running = false;
        /* Without a thread (reaper_at_free) the queue is drained here. */
        for (tr__ctrd_sandbox *sb; (sb = cl->reaper_queue);) {
                cl->reaper_queue = sb->next;
                cl->reaper_len--;
                tr__ctrd_sandbox_destroy(sb, NULL);
        }
}

static int real_run(void *self, const tr_containerd_spec *spec, tr_exec *ex, tr_containerd_run_result *ret,
                    tr_error **ret_err) {
        tr__ctrd_client *cl = self;
        tr__ctrd_sandbox *sb = NULL;
        int r = tr__ctrd_sandbox_prepare(cl, spec, ex, &sb, ret_err);
        if (r < 0)
                return r;
        r = tr__ctrd_sandbox_start(sb, spec, ex, ret_err);
        if (r >= 0)
                r = tr__ctrd_sandbox_run(sb, spec, ex, ret, ret_err);
        tr__ctrd_sandbox_reap(cl, sb, ex, NULL);
        return r;
}

const tr_containerd_runner_ops tr__ctrd_real_runner = {
        .run = real_run,
        .free = NULL,
};
