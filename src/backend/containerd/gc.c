/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `toolruntime gc`: remove what a killed caller left in containerd.  Only
 * objects carrying our owner label are considered, and (unless `all`) only
 * those whose owner is dead -- the caller recorded in the owner labels
 * (pid, start time, boot id, pid namespace: util/owner.h) is gone -- or
 * whose expiry label has passed (the execution's deadline plus a margin:
 * the rule for objects whose owner this process cannot judge, e.g. one in
 * another pid namespace, and for a live owner that is stuck).  So an
 * execution still running in another process is never touched.  Order
 * matters: tasks before their containers, containers before the snapshots
 * they reference, snapshots before the leases that hold them, the
 * per-execution directories, and last the shims whose container is gone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend/containerd/client.h"
#include "backend/containerd/sandbox.h"
#include "core/uidalloc.h"
#include "util/config.h"
#include "util/macros.h"
#include "util/owner.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

#define OWNER_FILTER "labels.\"" TR_CTRD_OWNER_LABEL "\"==" TR_CTRD_OWNER_VALUE

typedef struct gc_state {
        const tr_containerd_config *cfg;
        tr__ctrd_ctx cx;
        bool all;
        int64_t now;
        unsigned removed;
        /* Ids of the containers collected because their owner is dead: their
         * directories go at once too. */
        char **dead_ids;
        int first_error;
        tr_error *err;
        const char *why; /* why the object being removed goes (for the log) */
        const char *state_dir;
} gc_state;

static void gc_log(gc_state *g, tr_log_level level, const char *msg, const char *what, const char *id,
                   const tr_error *err) {
        if (!g->cfg || !g->cfg->log)
                return;
        const char *kv[] = { "what",
                             what,
                             "id",
                             id,
                             "why",
                             g->why ? g->why : "unowned",
                             err ? "error" : NULL,
                             err ? tr_error_message(err) : NULL,
                             NULL };
        g->cfg->log(g->cfg->log_userdata, level, msg, kv);
}

static void gc_record(gc_state *g, int r, const char *what, const char *id, tr_error *err) {
        if (r >= 0) {
                g->removed++;
                gc_log(g, TR_LOG_INFO, "gc removed", what, id, NULL);
                return;
        }
        if (r == -ENOENT) {
                tr_error_free(err);
                return;
        }
        gc_log(g, TR_LOG_WARN, "gc could not remove", what, id, err);
        if (!err)
                tr_error_set(&err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "gc", "could not remove %s %s: %s", what, id,
                             strerror(-r));
        if (!g->err) {
                g->err = err;
                g->first_error = r;
        } else
                tr_error_free(err);
}

static bool owner_dead(const tr__ctrd_item *it) {
        tr__owner o;
        if (tr__owner_parse(tr__ctrd_item_label(it, TR_CTRD_OWNER_PID_LABEL),
                            tr__ctrd_item_label(it, TR_CTRD_OWNER_START_LABEL),
                            tr__ctrd_item_label(it, TR_CTRD_OWNER_BOOT_LABEL),
                            tr__ctrd_item_label(it, TR_CTRD_OWNER_PIDNS_LABEL), &o) < 0)
                return false;
        return tr__owner_check(&o) == TR_OWNER_DEAD;
}

static bool dir_entry_locked(const char *dir, const char *name) {
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return false;
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
}

/* Is the FIFO directory of the sandbox `object_id` belongs to ("tr-" + 32
 * hex digits, then nothing, "-lease" or "-rootfs") locked?  A live process
 * then still works on the sandbox, whatever its owner labels say: `exec`'s
 * detached teardown outlives the command whose pid the labels name, and
 * holds the lock (inherited) until everything is removed.  Looked for in
 * gc's state directory and in both defaults (a creator configured
 * otherwise, or not root, may have used another). */
static bool exec_dir_held(const gc_state *g, const char *object_id) {
        char name[3 + 32 + 3 + 1];
        if (strncmp(object_id, "tr-", 3) != 0 || strlen(object_id) < 3 + 32)
                return false;
        memcpy(name, object_id, 3 + 32);
        memcpy(name + 3 + 32, ".io", 4);
        const char *dirs[] = { g->state_dir, "/run/toolruntime", "/tmp" };
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
                if ((i == 0 || !streq(dirs[i], g->state_dir)) && dir_entry_locked(dirs[i], name))
                        return true;
        return false;
}

/* May gc remove this object of ours?  Sets g->why.  A dead owner's sandbox
 * is spared while a live process holds its lock (exec_dir_held); the
 * expiry applies whatever holds it. */
static bool collectable(gc_state *g, const tr__ctrd_item *it) {
        g->why = "all";
        if (g->all)
                return true;
        g->why = "owner_dead";
        if (owner_dead(it) && !exec_dir_held(g, it->id))
                return true;
        g->why = "expired";
        const char *exp = tr__ctrd_item_label(it, TR_CTRD_EXPIRES_LABEL);
        int64_t t;
        /* No or a malformed expiry on an object we own: it was not created
         * by this code's lifecycle; leave it to an explicit --all. */
        if (!exp || tr__ctrd_parse_rfc3339(exp, &t) < 0)
                return false;
        return t <= g->now;
}

static void fresh_deadline(gc_state *g) {
        g->cx.deadline_ns = tr__now_ns() + TR_CTRD_CLEANUP_NS;
}

static int gc_containers(gc_state *g, tr_error **ret_err) {
        tr__ctrd_items cs = { 0 }, tasks = { 0 };
        fresh_deadline(g);
        int r = tr__ctrd_container_list(&g->cx, OWNER_FILTER, &cs, ret_err);
        if (r < 0)
                return r;
        fresh_deadline(g);
        (void) tr__ctrd_task_list(&g->cx, &tasks, NULL);
        for (size_t i = 0; i < cs.n; i++) {
                if (!collectable(g, &cs.items[i]))
                        continue;
                const char *id = cs.items[i].id;
                /* Out of memory here only delays its directories by
                 * DIR_GRACE_SEC. */
                if (owner_dead(&cs.items[i]))
                        (void) tr__strv_push(&g->dead_ids, id);
                bool has_task = false;
                for (size_t j = 0; j < tasks.n; j++)
                        if (streq(tasks.items[j].id, id))
                                has_task = true;
                if (has_task) {
                        fresh_deadline(g);
                        (void) tr__ctrd_task_kill(&g->cx, id, SIGKILL, true, NULL);
                        /* Deleting a task that is still stopping fails; retry
                         * for a few seconds. */
                        int64_t until = tr__now_ns() + TR_CTRD_KILL_GRACE_NS;
                        tr_error *err = NULL;
                        for (;;) {
                                tr_error_free(TAKE_PTR(err));
                                fresh_deadline(g);
                                r = tr__ctrd_task_delete(&g->cx, id, NULL, &err);
                                if (r >= 0 || r == -ENOENT || tr__now_ns() >= until)
                                        break;
                                struct timespec ts = { 0, 100 * 1000 * 1000 };
                                nanosleep(&ts, NULL);
                        }
                        gc_record(g, r, "task", id, err);
                        /* A container deleted under a live task orphans the
                         * task: containerd can then neither kill nor delete
                         * it.  Leave both for the next gc. */
                        if (r < 0 && r != -ENOENT)
                                continue;
                }
                tr_error *err = NULL;
                fresh_deadline(g);
                r = tr__ctrd_container_delete(&g->cx, id, &err);
                gc_record(g, r, "container", id, err);
        }
        tr__ctrd_items_done(&cs);
        tr__ctrd_items_done(&tasks);
        return 0;
}

/* Is `key` the rootfs snapshot ("<id>-rootfs") of a container in `cs`? */
static bool rootfs_of(const tr__ctrd_items *cs, const char *key) {
        size_t n = strlen(key);
        if (n < 7 || !streq(key + n - 7, "-rootfs"))
                return false;
        for (size_t i = 0; i < cs->n; i++)
                if (strlen(cs->items[i].id) == n - 7 && strncmp(cs->items[i].id, key, n - 7) == 0)
                        return true;
        return false;
}

static int gc_snapshots(gc_state *g, const char *snapshotter, tr_error **ret_err) {
        tr__ctrd_items ss = { 0 }, cs = { 0 };
        fresh_deadline(g);
        int r = tr__ctrd_snapshot_list(&g->cx, snapshotter, OWNER_FILTER, &ss, ret_err);
        if (r < 0)
                return r;
        /* The containers gc could not remove (a task that would not die):
         * their rootfs is still mounted, so their snapshot stays too. */
        fresh_deadline(g);
        (void) tr__ctrd_container_list(&g->cx, OWNER_FILTER, &cs, NULL);
        for (size_t i = 0; i < ss.n; i++) {
                if (!ss.items[i].active || rootfs_of(&cs, ss.items[i].id) || !collectable(g, &ss.items[i]))
                        continue;
                tr_error *err = NULL;
                fresh_deadline(g);
                r = tr__ctrd_snapshot_remove(&g->cx, snapshotter, ss.items[i].id, &err);
                gc_record(g, r, "snapshot", ss.items[i].id, err);
        }
        tr__ctrd_items_done(&ss);
        tr__ctrd_items_done(&cs);
        return 0;
}

static int gc_leases(gc_state *g, tr_error **ret_err) {
        tr__ctrd_items ls = { 0 };
        fresh_deadline(g);
        int r = tr__ctrd_lease_list(&g->cx, OWNER_FILTER, &ls, ret_err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ls.n; i++) {
                if (!collectable(g, &ls.items[i]))
                        continue;
                tr_error *err = NULL;
                fresh_deadline(g);
                r = tr__ctrd_lease_delete(&g->cx, ls.items[i].id, false, &err);
                gc_record(g, r, "lease", ls.items[i].id, err);
        }
        tr__ctrd_items_done(&ls);
        return 0;
}

/* "tr-" + 32 hex digits + ".io" / ".gw": a per-execution directory. */
static bool exec_dir_name(const char *n, char id[3 + 32 + 1]) {
        if (strncmp(n, "tr-", 3) != 0 || strlen(n) != 3 + 32 + 3)
                return false;
        for (size_t i = 3; i < 3 + 32; i++)
                if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
                        return false;
        if (strcmp(n + 35, ".io") != 0 && strcmp(n + 35, ".gw") != 0)
                return false;
        memcpy(id, n, 35);
        id[35] = 0;
        return true;
}

/* An execution takes its directory's lock right after mkdir: a directory
 * younger than this may be one whose lock is not taken yet. */
#define DIR_GRACE_SEC 10

/* The FIFO and gateway directories of executions whose container is gone
 * and whose lock no one holds: at once for a container just collected from
 * a dead owner, else once they are a few seconds old (an execution holds
 * its directories' lock from their creation to their removal, so a free
 * lock means its owner is done or dead). */
static int gc_dirs(gc_state *g, const char *state_dir, tr_error **ret_err) {
        tr__ctrd_items cs = { 0 };
        fresh_deadline(g);
        int r = tr__ctrd_container_list(&g->cx, OWNER_FILTER, &cs, ret_err);
        if (r < 0)
                return r;
        DIR *d = opendir(state_dir);
        for (struct dirent *e; d && (e = readdir(d));) {
                char id[3 + 32 + 1];
                if (!exec_dir_name(e->d_name, id))
                        continue;
                bool live = false;
                for (size_t i = 0; i < cs.n && !live; i++)
                        live = streq(cs.items[i].id, id);
                struct stat st;
                if (live || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                bool dead = false;
                for (char **p = g->dead_ids; p && *p && !dead; p++)
                        dead = streq(*p, id);
                if (!g->all && !dead && st.st_mtime + DIR_GRACE_SEC > g->now)
                        continue;
                g->why = g->all ? "all" : dead ? "owner_dead" : "unlocked";
                /* Held by a running execution (maybe of another daemon or
                 * namespace, whose containers we did not list). */
                _cleanup_close_ int lock = tr__ctrd_exec_dir_claim(dirfd(d), e->d_name);
                if (lock < 0)
                        continue;
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", state_dir, e->d_name) < 0) {
                        path = NULL;
                        continue;
                }
                r = tr__rm_rf(path);
                gc_record(g, r, "directory", path, NULL);
        }
        if (d)
                closedir(d);
        tr__ctrd_items_done(&cs);
        return 0;
}

/* A shim whose container is gone: containerd starts the shim for a task
 * create and, when the client that asked dies or the daemon restarts
 * mid-create, may never tell it to exit; after a daemon restart, a task
 * containerd has not loaded yet answers NOT_FOUND to delete, and the
 * container goes while its task still runs (both seen in the soak test).
 * Only shims of this daemon (-address), this namespace and one of our ids
 * (tr- and 32 hex digits) whose container no longer exists are touched: no
 * live execution has a task without its container (the container is
 * created before the task and deleted after it).  What such a shim still
 * runs is killed with it; containerd then removes the shim's state itself
 * ("cleaning up dead shim"). */
static bool shim_arg(char *const *argv, size_t n, const char *flag, const char **ret) {
        for (size_t i = 0; i + 1 < n; i++)
                if (streq(argv[i], flag)) {
                        *ret = argv[i + 1];
                        return true;
                }
        return false;
}

/* The parent pid of `pid` from /proc/PID/stat (the field after the
 * parenthesised command, which may itself hold spaces or ')'). */
static pid_t parent_of(pid_t pid) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (fd < 0 || tr__read_fd(fd, 4096, &text, &len) < 0)
                return -1;
        const char *p = strrchr(text, ')');
        int ppid;
        char state;
        return p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 ? (pid_t) ppid : -1;
}

/* A pidfd for `pid` that is known to name a process with `ppid` as its
 * parent: the check runs after the pidfd is open, so a pid reused between
 * the scan and the kill can never be signalled (the pidfd would name the
 * process that held the pid when it was opened, and the check sees it). */
static int pidfd_of_child(pid_t pid, pid_t ppid) {
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0 && parent_of(pid) != ppid) {
                close(fd);
                return -1;
        }
        return fd;
}

static int pidfd_kill(int pidfd) {
        return syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH ? -errno : 0;
}

/* Kill what the shim still runs (each child is a container's init, its pid
 * namespace's: killing it ends every process in it), then the shim.  Both
 * through pidfds opened while the shim is held (see pidfd_of_child). */
static int kill_shim_tree(int shim_pidfd, pid_t pid) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int) pid, (int) pid);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && tr__read_fd(fd, 4096, &text, &len) >= 0)
                for (char *p = text, *end; p && *p; p = end) {
                        long child = strtol(p, &end, 10);
                        if (end == p)
                                break;
                        _cleanup_close_ int cfd = child > 1 ? pidfd_of_child((pid_t) child, pid) : -1;
                        if (cfd >= 0)
                                (void) pidfd_kill(cfd);
                }
        return pidfd_kill(shim_pidfd);
}

/* Is `cmd` (NUL-separated, `len` bytes) a shim of this daemon and
 * namespace for one of our ids?  Copies the id into `id`. */
static bool our_shim(char *cmd, size_t len, const char *socket, const char *ns, char id[3 + 32 + 1]) {
        char *argv[64];
        size_t n = 0;
        for (size_t i = 0; i < len && n < ARRAY_SIZE(argv); i += strlen(cmd + i) + 1)
                argv[n++] = cmd + i;
        if (n == 0)
                return false;
        const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        const char *a_ns, *a_id, *a_addr;
        if (strncmp(base, "containerd-shim", 15) != 0 || !shim_arg(argv, n, "-namespace", &a_ns) ||
            !shim_arg(argv, n, "-id", &a_id) || !shim_arg(argv, n, "-address", &a_addr) || !streq(a_ns, ns) ||
            !streq(a_addr, socket) || strlen(a_id) != 3 + 32 || strncmp(a_id, "tr-", 3) != 0 ||
            strspn(a_id + 3, "0123456789abcdef") != 32)
                return false;
        memcpy(id, a_id, 3 + 32 + 1);
        return true;
}

/* A pidfd for `pid` when it is (still, once the pidfd is open) one of our
 * shims; -1 otherwise.  Reading the command line after pidfd_open closes
 * the pid-reuse race: the pidfd names one process for good. */
static int open_shim(long pid, const char *socket, const char *ns, char id[3 + 32 + 1]) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        int pidfd = (int) syscall(SYS_pidfd_open, (pid_t) pid, 0);
        if (pidfd < 0)
                return -1;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *cmd = NULL;
        size_t len = 0;
        if (fd < 0 || tr__read_fd(fd, 8192, &cmd, &len) < 0 || !our_shim(cmd, len, socket, ns, id)) {
                close(pidfd);
                return -1;
        }
        return pidfd;
}

static int gc_shims(gc_state *g, const char *socket, const char *ns) {
        /* The shims first, the containers after: a shim seen here was
         * started for a container that existed before this scan, so a live
         * one is in the list that follows (the reverse order would race
         * with a sandbox being prepared right now). */
        typedef struct {
                pid_t pid;
                int pidfd;
                char id[3 + 32 + 1];
        } shim;
        shim found[256];
        size_t n_found = 0;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d)) && n_found < ARRAY_SIZE(found)) {
                char *end;
                long pid = strtol(e->d_name, &end, 10);
                if (*end || pid <= 1)
                        continue;
                int pidfd = open_shim(pid, socket, ns, found[n_found].id);
                if (pidfd < 0)
                        continue;
                found[n_found].pid = (pid_t) pid;
                found[n_found].pidfd = pidfd;
                n_found++;
        }
        if (d)
                closedir(d);
        if (n_found == 0)
                return 0;
        tr__ctrd_items cs = { 0 };
        fresh_deadline(g);
        /* Every container, ours or not: a shim is spared if its id exists. */
        bool listed = tr__ctrd_container_list(&g->cx, NULL, &cs, NULL) >= 0;
        for (size_t k = 0; k < n_found; k++) {
                bool exists = !listed;
                for (size_t i = 0; i < cs.n && !exists; i++)
                        exists = streq(cs.items[i].id, found[k].id);
                if (!exists) {
                        g->why = "its container is gone";
                        int r = kill_shim_tree(found[k].pidfd, found[k].pid);
                        gc_record(g, r, "shim", found[k].id, NULL);
                }
                close(found[k].pidfd);
        }
        tr__ctrd_items_done(&cs);
        return 0;
}

TR_PUBLIC int tr_containerd_gc_ex(const tr_containerd_config *user_cfg, bool all, unsigned *ret_removed,
                                  tr_error **ret_err) {
        tr_containerd_config cfg_copy;
        int r_cfg = tr__containerd_config_copy(user_cfg, &cfg_copy, ret_err);
        if (r_cfg < 0)
                return r_cfg;
        const tr_containerd_config *c = &cfg_copy;
        const char *socket = c->socket_path, *ns = c->namespace_name, *snap = c->snapshotter;
        const char *state = c->state_dir ? c->state_dir : tr__ctrd_default_state_dir();
        gc_state g = { .cfg = c, .all = all, .now = (int64_t) time(NULL), .state_dir = state };
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *conn = NULL;
        int r = tr__grpc_connect(socket, ns, tr__now_ns() + TR_CTRD_CLEANUP_NS, -1, &conn, ret_err);
        if (r < 0)
                return r;
        g.cx = (tr__ctrd_ctx){ .conn = conn, .cancel_fd = -1 };
        if ((r = gc_containers(&g, ret_err)) < 0 || (r = gc_snapshots(&g, snap, ret_err)) < 0 ||
            (r = gc_leases(&g, ret_err)) < 0 || (r = gc_dirs(&g, state, ret_err)) < 0 ||
            (r = gc_shims(&g, socket, ns)) < 0) {
                tr_error_free(g.err);
                tr__strv_free(g.dead_ids);
                return r;
        }
        /* The uid lease files of dead holders (a killed caller cannot unlink
         * its own; the slot itself was free the moment it died).  Not
         * counted: they hold nothing. */
        (void) tr__uid_lease_sweep(NULL);
        tr__strv_free(g.dead_ids);
        if (ret_removed)
                *ret_removed = g.removed;
        if (g.err) {
                tr_error_prefix(g.err, "gc removed %u objects, then failed", g.removed);
                if (ret_err)
                        *ret_err = g.err;
                else
                        tr_error_free(g.err);
                return g.first_error;
        }
        return 0;
}

TR_PUBLIC int tr_containerd_gc(const tr_containerd_config *cfg, unsigned *ret_removed, tr_error **ret_err) {
        return tr_containerd_gc_ex(cfg, false, ret_removed, ret_err);
}
