/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QEMU's containment (Runner 1).  Under TCG, QEMU does not treat emulation
 * bugs as security bugs, so the process that emulates the guest is jailed
 * the way a container is:
 *
 *   - its own pid, mount, network (no interface but lo, down) and IPC
 *     namespaces (one clone(2));
 *   - a root of its own: a per-VM tmpfs, pivot_root'ed into, that holds
 *     read-only bind mounts of exactly what QEMU opens (its binary, the
 *     loader and the shared libraries it links, its firmware and module
 *     directories, the guest kernel and initramfs, /dev/null), and nothing
 *     else: no /proc, /sys, /dev (but null), /etc (but the loader's cache),
 *     /tmp.  The root image
 *     is not there at all: it is passed as an open read-only fd
 *     (-add-fd + /dev/fdset), as is the channel socket;
 *   - the host identity it runs as (one variable of the caller: the
 *     per-sandbox uid), no supplementary groups (but /dev/kvm's under KVM),
 *     no_new_privs, no capabilities;
 *   - a host cgroup (memory, cpu, pids) capping what the process can take:
 *     guest RAM + TR_KATA_QEMU_OVERHEAD of memory, no swap, its vCPUs' worth
 *     of CPU plus half a core for its main loop;
 *   - QEMU's own seccomp filter (-sandbox with every deny option) and a
 *     bounded TCG translation cache are on the command line (qemu.c).
 *
 * Everything it creates on the host is per VM and removed on every exit
 * path: the state directory /run/toolruntime/qemu/<name>/ (the file `pid`,
 * QEMU's host pid, for `gc`; the empty directory `root` the tmpfs is
 * mounted on inside QEMU's mount namespace only, so no host mount ever
 * exists) and the cgroups .../toolruntime/qemu-<name>.  A caller killed
 * with SIGKILL takes QEMU with it (PR_SET_PDEATHSIG); what is left then is
 * that directory and those empty cgroups, which gc removes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/kata/internal.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/strv.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

bool tr__kata_jail_root = true;

/* What the child does to build the root, prepared by the parent (the child
 * may not allocate: the caller can have threads). */
typedef enum { OP_MKDIR, OP_BIND_FILE, OP_BIND_DIR } op_kind;
typedef struct op {
        op_kind kind;
        char *src; /* host path (binds) */
        char *dst; /* absolute path under the root mount point */
        unsigned long ro_flags;
} op;

/* The cgroup controllers (v1 hierarchies; under v2 only [0] is used, the
 * unified directory). */
enum { CG_MEMORY, CG_CPU, CG_PIDS, CG_N };
static const char *const cg_ctrl[CG_N] = { "memory", "cpu", "pids" };

struct tr__kata_jail {
        char *dir;  /* /run/toolruntime/qemu/<name> */
        char *root; /* dir/root */
        char *pidfile;
        char *name;
        bool v2;
        char *cg[CG_N]; /* created cgroup directories (NULL: none) */
        int procs[CG_N];
        op *ops;
        size_t n_ops, cap_ops;
        int image_fd;
        char *kernel_in, *initrd_in; /* paths QEMU sees */
        gid_t kvm_gid;
        bool have_kvm_gid;
        bool pivot;
};

/* ---- host files ----------------------------------------------------------- */

static int push_op(tr__kata_jail *j, op_kind kind, const char *src, const char *dst, unsigned long ro_flags) {
        if (j->n_ops == j->cap_ops) {
                size_t n = j->cap_ops ? j->cap_ops * 2 : 64;
                op *o = realloc(j->ops, n * sizeof(*o));
                if (!o)
                        return -ENOMEM;
                j->ops = o;
                j->cap_ops = n;
        }
        op *o = &j->ops[j->n_ops];
        *o = (op){ .kind = kind, .ro_flags = ro_flags };
        if ((src && !(o->src = strdup(src))) || asprintf(&o->dst, "%s%s", j->root, dst) < 0) {
                free(o->src);
                return -ENOMEM;
        }
        j->n_ops++;
        return 0;
}

/* mkdir ops for every parent of `path` (an absolute path inside the root). */
static int push_parents(tr__kata_jail *j, const char *path) {
        char buf[PATH_MAX];
        size_t len = strlen(path);
        if (len >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, len + 1);
        for (char *p = buf + 1; (p = strchr(p, '/')); p++) {
                *p = 0;
                int r = push_op(j, OP_MKDIR, NULL, buf, 0);
                *p = '/';
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Bind the host file or directory `host` at `inside` (absolute, in the
 * root), read-only; `exec` for what QEMU maps executable. */
static int add_bind(tr__kata_jail *j, const char *host, const char *inside, bool exec) {
        char real[PATH_MAX];
        struct stat st;
        if (!realpath(host, real) || stat(real, &st) < 0)
                return -errno;
        int r = push_parents(j, inside);
        if (r < 0)
                return r;
        unsigned long fl = MS_RDONLY | MS_NOSUID | MS_NODEV | (exec ? 0 : MS_NOEXEC);
        return push_op(j, S_ISDIR(st.st_mode) ? OP_BIND_DIR : OP_BIND_FILE, real, inside, fl);
}

/* The loader and the shared libraries `qemu` links, as the loader itself
 * resolves them (LD_TRACE_LOADED_OBJECTS: what ldd does), bound at the
 * paths it reports, so the same resolution finds them inside the root. */
static int add_libraries(tr__kata_jail *j, const char *qemu, tr_error **ret_err) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "pipe: %m");
        pid_t pid = fork();
        if (pid == 0) {
                char *const argv[] = { (char *) qemu, NULL };
                char *const envp[] = { "LD_TRACE_LOADED_OBJECTS=1", NULL };
                if (dup2(p[1], 1) >= 0)
                        execve(qemu, argv, envp);
                _exit(127);
        }
        close(p[1]);
        _cleanup_free_ char *out = NULL;
        size_t len = 0;
        int rr = pid < 0 ? -errno : tr__read_fd(p[0], 256 * 1024, &out, &len);
        close(p[0]);
        int st = 0;
        while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (rr < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail",
                                    "cannot list the shared libraries of %s", qemu);
        size_t n = 0;
        for (char *line = out, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (strstr(line, "not found"))
                        return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "vm.jail",
                                            "%s misses a shared library: %s", qemu, line);
                char *arrow = strstr(line, "=> ");
                char *path = arrow ? arrow + 3 : line + strspn(line, " \t");
                char *end = strstr(path, " (");
                if (*path != '/' || !end)
                        continue; /* the vDSO */
                *end = 0;
                int r = add_bind(j, path, path, true);
                if (r < 0)
                        return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "%s: %s", path,
                                            strerror(-r));
                n++;
        }
        if (n == 0)
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "no loader found for %s",
                                    qemu);
        /* The loader's cache: the libraries' names only. */
        if (access("/etc/ld.so.cache", R_OK) == 0 && add_bind(j, "/etc/ld.so.cache", "/etc/ld.so.cache", false) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.jail", "out of memory");
        return 0;
}

static int plan_root(tr__kata_jail *j, const tr__kata_jail_cfg *c, tr_error **ret_err) {
        int r = add_libraries(j, c->qemu, ret_err);
        if (r < 0)
                return r;
        /* The binary at the path it was found at: QEMU derives its data and
         * module directories from it (/proc is not there to ask). */
        if (add_bind(j, c->qemu, c->qemu, true) < 0)
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "%s: %m", c->qemu);
        _cleanup_free_ char *bindir = strdup(c->qemu);
        if (!bindir)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.jail", "out of memory");
        *strrchr(bindir, '/') = 0;
        /* Firmware (bios-microvm.bin, linuxboot_dma.bin) and modules (the
         * TCG accelerator is one in Debian's build). */
        static const char *const rel[] = { "/../share/qemu", "/../lib/x86_64-linux-gnu/qemu", "/../lib/qemu",
                                           "/../lib64/qemu" };
        for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
                _cleanup_free_ char *host = NULL;
                char inside[PATH_MAX];
                if (asprintf(&host, "%s%s", bindir, rel[i]) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.jail", "out of memory");
                if (access(host, X_OK) < 0 || !realpath(host, inside))
                        continue;
                /* Inside at the same place the relative path names. */
                r = add_bind(j, host, inside, strstr(rel[i], "/lib") != NULL);
                if (r < 0)
                        return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "%s: %s", host,
                                            strerror(-r));
        }
        if (add_bind(j, c->kernel, j->kernel_in, false) < 0 || add_bind(j, c->initrd, j->initrd_in, false) < 0)
                return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "vm.jail",
                                    "cannot bind the guest kernel or initramfs: %m");
        /* /dev/null (a device: no nodev), for QEMU's OFD-lock probe, which
         * otherwise prints a warning into every console tail. */
        if (push_parents(j, "/dev/null") < 0 ||
            push_op(j, OP_BIND_FILE, "/dev/null", "/dev/null", MS_RDONLY | MS_NOSUID | MS_NOEXEC) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.jail", "out of memory");
        if (c->kvm) {
                /* /dev/kvm, writable (a device: no nodev), and its group
                 * as QEMU's only supplementary group. */
                struct stat st;
                if (stat("/dev/kvm", &st) < 0 || push_parents(j, "/dev/kvm") < 0 ||
                    push_op(j, OP_BIND_FILE, "/dev/kvm", "/dev/kvm", MS_NOSUID | MS_NOEXEC) < 0)
                        return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "vm.jail", "/dev/kvm: %m");
                j->kvm_gid = st.st_gid;
                j->have_kvm_gid = st.st_gid != 0;
        }
        return 0;
}

/* ---- cgroup ---------------------------------------------------------------- */

static int write_file(const char *dir, const char *file, const char *val) {
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", dir, file) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return tr__write_all(fd, val, strlen(val));
}

static int cg_fail(tr_error **ret_err, const char *what, const char *path, int r) {
        return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.cgroup",
                            "cannot %s the QEMU cgroup %s: %s", what, path ? path : "", strerror(-r));
}

/* Create the cgroup(s), set the caps, open cgroup.procs for the child. */
static int setup_cgroup(tr__kata_jail *j, const tr__kata_jail_cfg *c, tr_error **ret_err) {
        j->v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
        char v[64];
        for (int i = 0; i < (j->v2 ? 1 : CG_N); i++) {
                _cleanup_free_ char *parent = NULL;
                if (asprintf(&parent, j->v2 ? "/sys/fs/cgroup/toolruntime" : "/sys/fs/cgroup/%s/toolruntime",
                             cg_ctrl[i]) < 0 ||
                    asprintf(&j->cg[i], "%s/qemu-%s", parent, j->name) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.cgroup", "out of memory");
                if (j->v2) {
                        /* Untested here (this host has cgroup v1): the
                         * controllers must be enabled down to our leaf. */
                        (void) write_file("/sys/fs/cgroup", "cgroup.subtree_control", "+memory +cpu +pids");
                        if (mkdir(parent, 0755) < 0 && errno != EEXIST)
                                return cg_fail(ret_err, "create", parent, -errno);
                        (void) write_file(parent, "cgroup.subtree_control", "+memory +cpu +pids");
                } else if (mkdir(parent, 0755) < 0 && errno != EEXIST)
                        return cg_fail(ret_err, "create", parent, -errno);
                if (mkdir(j->cg[i], 0755) < 0) {
                        int e = -errno;
                        free(j->cg[i]);
                        j->cg[i] = NULL;
                        return cg_fail(ret_err, "create", parent, e);
                }
        }
        int r;
        snprintf(v, sizeof(v), "%" PRId64, c->memory_cap);
        if (j->v2) {
                const char *d = j->cg[0];
                char cpu[64];
                snprintf(cpu, sizeof(cpu), "%" PRId64 " 100000", c->cpu_quota_us);
                char pids[32];
                snprintf(pids, sizeof(pids), "%d", TR_KATA_QEMU_PIDS);
                if ((r = write_file(d, "memory.max", v)) < 0 || (r = write_file(d, "memory.swap.max", "0")) < 0 ||
                    (c->cpu_quota_us > 0 && (r = write_file(d, "cpu.max", cpu)) < 0) ||
                    (r = write_file(d, "pids.max", pids)) < 0)
                        return cg_fail(ret_err, "limit", d, r);
        } else {
                /* The memory cap first; memsw (memory + swap) equal to it
                 * when the kernel accounts swap: no swap at all. */
                if ((r = write_file(j->cg[CG_MEMORY], "memory.limit_in_bytes", v)) < 0)
                        return cg_fail(ret_err, "limit", j->cg[CG_MEMORY], r);
                r = write_file(j->cg[CG_MEMORY], "memory.memsw.limit_in_bytes", v);
                if (r < 0 && r != -ENOENT)
                        return cg_fail(ret_err, "limit", j->cg[CG_MEMORY], r);
                if (c->cpu_quota_us > 0) {
                        char q[32];
                        snprintf(q, sizeof(q), "%" PRId64, c->cpu_quota_us);
                        if ((r = write_file(j->cg[CG_CPU], "cpu.cfs_period_us", "100000")) < 0 ||
                            (r = write_file(j->cg[CG_CPU], "cpu.cfs_quota_us", q)) < 0)
                                return cg_fail(ret_err, "limit", j->cg[CG_CPU], r);
                }
                snprintf(v, sizeof(v), "%d", TR_KATA_QEMU_PIDS);
                if ((r = write_file(j->cg[CG_PIDS], "pids.max", v)) < 0)
                        return cg_fail(ret_err, "limit", j->cg[CG_PIDS], r);
        }
        for (int i = 0; i < CG_N; i++) {
                if (!j->cg[i])
                        continue;
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s/cgroup.procs", j->cg[i]) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.cgroup", "out of memory");
                j->procs[i] = open(p, O_WRONLY | O_CLOEXEC);
                if (j->procs[i] < 0)
                        return cg_fail(ret_err, "open", p, -errno);
        }
        return 0;
}

bool tr__kata_jail_oom_killed(const tr__kata_jail *j) {
        if (!j || !j->cg[CG_MEMORY])
                return false;
        _cleanup_free_ char *p = NULL, *data = NULL;
        if (asprintf(&p, "%s/%s", j->cg[CG_MEMORY], j->v2 ? "memory.events" : "memory.oom_control") < 0 ||
            tr__read_file(p, 4096, &data, NULL) < 0)
                return false;
        const char *k = strstr(data, "oom_kill ");
        return k && strtoll(k + 9, NULL, 10) > 0;
}

/* ---- life cycle ------------------------------------------------------------ */

void tr__kata_jail_free(tr__kata_jail *j) {
        if (!j)
                return;
        for (int i = 0; i < CG_N; i++) {
                if (j->procs[i] >= 0)
                        close(j->procs[i]);
                /* QEMU is reaped by now; a cgroup whose last task just
                 * exited can briefly stay busy. */
                for (int t = 0; j->cg[i] && t < 50 && rmdir(j->cg[i]) < 0 && errno == EBUSY; t++)
                        usleep(10000);
                free(j->cg[i]);
        }
        if (j->image_fd >= 0)
                close(j->image_fd);
        if (j->pidfile)
                unlink(j->pidfile);
        if (j->root)
                rmdir(j->root);
        if (j->dir)
                rmdir(j->dir);
        for (size_t i = 0; i < j->n_ops; i++) {
                free(j->ops[i].src);
                free(j->ops[i].dst);
        }
        free(j->ops);
        free(j->dir);
        free(j->root);
        free(j->pidfile);
        free(j->name);
        free(j->kernel_in);
        free(j->initrd_in);
        free(j);
}

int tr__kata_jail_new(const tr__kata_jail_cfg *c, tr__kata_jail **ret, tr_error **ret_err) {
        if (geteuid() != 0)
                return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "vm.jail",
                                    "QEMU runs only contained (namespaces, pivot_root, a host cgroup), which "
                                    "needs root");
        tr__kata_jail *j = calloc(1, sizeof(*j));
        if (!j)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.jail", "out of memory");
        j->image_fd = -1;
        for (int i = 0; i < CG_N; i++)
                j->procs[i] = -1;
        j->pivot = tr__kata_jail_root;
        int r = 0;
        if ((mkdir(TR_KATA_PROBE_CACHE_DIR, 0755) < 0 && errno != EEXIST) ||
            (mkdir(TR_KATA_JAIL_DIR, 0700) < 0 && errno != EEXIST)) {
                r = tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "%s: %m", TR_KATA_JAIL_DIR);
                goto fail;
        }
        char tmpl[] = TR_KATA_JAIL_DIR "/vm-XXXXXX";
        if (!mkdtemp(tmpl)) {
                r = tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "%s: %m", TR_KATA_JAIL_DIR);
                goto fail;
        }
        if (!(j->dir = strdup(tmpl)) || !(j->name = strdup(strrchr(tmpl, '/') + 1)) ||
            asprintf(&j->root, "%s/root", j->dir) < 0 || asprintf(&j->pidfile, "%s/pid", j->dir) < 0) {
                rmdir(tmpl);
                r = tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.jail", "out of memory");
                goto fail;
        }
        if (mkdir(j->root, 0700) < 0) {
                r = tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "%s: %m", j->root);
                goto fail;
        }
        j->image_fd = open(c->image, O_RDONLY | O_CLOEXEC);
        if (j->image_fd < 0) {
                r = tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "vm.jail",
                                 "cannot open the root image %s: %m", c->image);
                goto fail;
        }
        if (j->pivot) {
                if (!(j->kernel_in = strdup("/vm/vmlinuz")) || !(j->initrd_in = strdup("/vm/initrd.img"))) {
                        r = tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.jail", "out of memory");
                        goto fail;
                }
                r = plan_root(j, c, ret_err);
        } else if (!(j->kernel_in = strdup(c->kernel)) || !(j->initrd_in = strdup(c->initrd)))
                r = tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.jail", "out of memory");
        if (r >= 0)
                r = setup_cgroup(j, c, ret_err);
        if (r < 0)
                goto fail;
        *ret = j;
        return 0;
fail:
        tr__kata_jail_free(j);
        return r;
}

const char *tr__kata_jail_kernel(const tr__kata_jail *j) {
        return j->kernel_in;
}
const char *tr__kata_jail_initrd(const tr__kata_jail *j) {
        return j->initrd_in;
}
const char *tr__kata_jail_dir(const tr__kata_jail *j) {
        return j->dir;
}

/* ---- the child ------------------------------------------------------------- */

/* Steps the child reports when one fails (with errno) on the error pipe. */
static const char *const step_name[] = { "join the cgroup", "set up fds",        "make mounts private",
                                         "mount the root",  "build the root",    "seal the root",
                                         "pivot_root",      "drop the identity", "exec QEMU" };
enum { S_CGROUP, S_FDS, S_PRIVATE, S_TMPFS, S_BUILD, S_SEAL, S_PIVOT, S_IDENTITY, S_EXEC };

static _Noreturn void child_fail(int errp, int step) {
        int msg[2] = { step, errno };
        (void) !write(errp, msg, sizeof(msg));
        _exit(127);
}

static int build_root(const tr__kata_jail *j) {
        for (size_t i = 0; i < j->n_ops; i++) {
                const op *o = &j->ops[i];
                if (o->kind == OP_MKDIR) {
                        if (mkdir(o->dst, 0755) < 0 && errno != EEXIST)
                                return -1;
                        continue;
                }
                if (o->kind == OP_BIND_DIR) {
                        if (mkdir(o->dst, 0755) < 0 && errno != EEXIST)
                                return -1;
                } else {
                        int fd = open(o->dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
                        if (fd < 0)
                                return -1;
                        close(fd);
                }
                /* A bind mount takes its flags on a remount only. */
                if (mount(o->src, o->dst, NULL, MS_BIND, NULL) < 0 ||
                    mount(NULL, o->dst, NULL, MS_REMOUNT | MS_BIND | o->ro_flags, NULL) < 0)
                        return -1;
        }
        return 0;
}

/* Raw system calls only until execve: the caller may have threads, and
 * after a raw clone glibc's thread bookkeeping is the parent's (its setxid
 * broadcast would signal threads that do not exist here). */
static _Noreturn void child(const tr__kata_jail *j, const tr__kata_jail_cfg *c, char *const *argv, int chan, int con,
                            int errp, int alive) {
        /* Out of the way of QEMU's fds 0-4. */
        int herr = fcntl(errp, F_DUPFD_CLOEXEC, 10), halive = fcntl(alive, F_DUPFD_CLOEXEC, 10);
        if (herr < 0 || halive < 0)
                _exit(127);
        errp = herr;
        alive = halive;
        for (int i = 0; i < CG_N; i++)
                if (j->procs[i] >= 0 && write(j->procs[i], "0", 1) != 1)
                        child_fail(errp, S_CGROUP);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        /* Through high numbers first, so no dup2 clobbers a source and none
         * is a no-op that would leave FD_CLOEXEC set. */
        int hnull = null < 0 ? -1 : fcntl(null, F_DUPFD_CLOEXEC, 10);
        int hcon = fcntl(con, F_DUPFD_CLOEXEC, 10), hchan = fcntl(chan, F_DUPFD_CLOEXEC, 10);
        int himg = fcntl(j->image_fd, F_DUPFD_CLOEXEC, 10);
        if (hnull < 0 || hcon < 0 || hchan < 0 || himg < 0 || dup2(hnull, 0) < 0 || dup2(hcon, 1) < 0 ||
            dup2(hcon, 2) < 0 || dup2(hchan, TR_KATA_QEMU_CHAN_FD) < 0 || dup2(himg, TR_KATA_QEMU_IMAGE_FD) < 0)
                child_fail(errp, S_FDS);
        /* Everything else closes at exec (the error pipe must live until
         * then). */
        if (syscall(SYS_close_range, TR_KATA_QEMU_IMAGE_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                child_fail(errp, S_FDS);
        /* Nothing we mount may propagate to the host. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                child_fail(errp, S_PRIVATE);
        if (j->pivot) {
                if (mount("tmpfs", j->root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0)
                        child_fail(errp, S_TMPFS);
                if (build_root(j) < 0)
                        child_fail(errp, S_BUILD);
                /* QEMU writes nothing: the root is read-only too. */
                if (mount(NULL, j->root, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                        child_fail(errp, S_SEAL);
                /* pivot_root(".", "."), then detach the old root stacked
                 * under it: no path leads back to the host's tree. */
                if (chdir(j->root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
                    chdir("/") < 0)
                        child_fail(errp, S_PIVOT);
        }
        gid_t groups[1] = { j->kvm_gid };
        if (syscall(SYS_setgroups, j->have_kvm_gid ? 1 : 0, groups) < 0 ||
            syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0 || syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0)
                child_fail(errp, S_IDENTITY);
        /* QEMU must not outlive the thread that started it.  Set after the
         * identity change, which clears it.  The caller may have died
         * before: `alive` then reads EOF (its write end is the parent's). */
        struct pollfd pa = { alive, POLLIN, 0 };
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&pa, 1, 0) != 0)
                child_fail(errp, S_IDENTITY);
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* No environment: nothing of the caller's reaches QEMU. */
        char *const envp[] = { NULL };
        execve(argv[0], argv, envp);
        child_fail(errp, S_EXEC);
}

int tr__kata_jail_spawn(tr__kata_jail *j, const tr__kata_jail_cfg *c, char *const *argv, int chan, int con,
                        pid_t *ret_pid, tr_error **ret_err) {
        int ep[2], alive[2];
        if (pipe2(ep, O_CLOEXEC) < 0)
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "pipe: %m");
        if (pipe2(alive, O_CLOEXEC) < 0) {
                close(ep[0]);
                close(ep[1]);
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail", "pipe: %m");
        }
        /* Like fork, with the new namespaces: QEMU is pid 1 of its own pid
         * namespace; its network namespace has no device but a down lo. */
        pid_t pid = (pid_t) syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | SIGCHLD, NULL,
                                    NULL, NULL, NULL);
        if (pid == 0) {
                close(ep[0]);
                close(alive[1]);
                child(j, c, argv, chan, con, ep[1], alive[0]);
        }
        int clone_errno = errno;
        close(ep[1]);
        close(alive[0]);
        if (pid < 0) {
                close(ep[0]);
                close(alive[1]);
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail",
                                    "cannot create QEMU's namespaces: %s", strerror(clone_errno));
        }
        /* EOF: the exec happened.  Otherwise the step that failed. */
        int msg[2];
        ssize_t n;
        while ((n = read(ep[0], msg, sizeof(msg))) < 0 && errno == EINTR)
                ;
        close(ep[0]);
        /* Past the child's check: PR_SET_PDEATHSIG guards from here on. */
        close(alive[1]);
        if (n != 0) {
                int st;
                kill(pid, SIGKILL);
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                const char *what = n == sizeof(msg) && msg[0] >= 0 && msg[0] < (int) ARRAY_SIZE(step_name)
                                           ? step_name[msg[0]]
                                           : "start";
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.jail",
                                    "cannot contain QEMU: %s: %s", what, n == sizeof(msg) ? strerror(msg[1]) : "lost");
        }
        /* For gc: whose QEMU this directory is. */
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "%d\n", (int) pid);
        int fd = open(j->pidfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
                (void) tr__write_all(fd, buf, (size_t) len);
                close(fd);
        }
        *ret_pid = pid;
        return 0;
}
