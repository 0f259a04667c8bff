/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a jailed QEMU leaves when its caller is killed with SIGKILL (jail.c):
 * QEMU dies with the caller (PR_SET_PDEATHSIG, or gc's record pass in
 * state.c), but the per-VM directory /run/toolruntime/qemu/vm-XXXXXX
 * ({pid, root}) and the empty cgroups .../toolruntime/qemu-vm-XXXXXX stay,
 * because only the caller removes them.  tr_kata_gc calls this after its
 * record pass: a directory whose `pid` names no live QEMU any more (or,
 * without a `pid`, one older than a VM's set-up can take) is removed with
 * its cgroups.  A live QEMU's directory is never touched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/kata/internal.h"
#include "util/macros.h"
#include "util/proc.h"

/* A directory with no `pid` yet is a VM being set up (the file is written
 * right after the clone); this is far longer than that takes. */
#define SETUP_GRACE_S 120

/* Is `pid` a running QEMU?  Checked by its executable, so a pid reused by
 * another program reads as gone. */
static bool is_qemu(pid_t pid) {
        char path[64], exe[PATH_MAX];
        snprintf(path, sizeof(path), "/proc/%d/exe", (int) pid);
        ssize_t n = readlink(path, exe, sizeof(exe) - 1);
        if (n < 0)
                return false;
        exe[n] = '\0';
        return strstr(exe, "qemu-system-") != NULL;
}

static pid_t read_pid(int dirfd) {
        _cleanup_close_ int fd = openat(dirfd, "pid", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (fd < 0 || tr__read_fd(fd, 64, &text, &len) < 0)
                return -1;
        char *end;
        long v = strtol(text, &end, 10);
        return end != text && v > 1 ? (pid_t) v : -1;
}

static const char *const cg_parents[] = { "/sys/fs/cgroup/memory/toolruntime", "/sys/fs/cgroup/cpu/toolruntime",
                                          "/sys/fs/cgroup/pids/toolruntime", "/sys/fs/cgroup/toolruntime" };

/* A memory cgroup whose last task just died can refuse rmdir with EBUSY
 * for a moment (its charges are still being dropped): retry for a second,
 * as jail.c does. */
static bool rmdir_cgroup(const char *path) {
        for (int t = 0; t < 50; t++) {
                if (rmdir(path) == 0)
                        return true;
                if (errno != EBUSY)
                        return false;
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        return false;
}

/* The cgroups of VM `name` (v1: one per controller; v2: one). */
static void remove_cgroups(const char *name) {
        for (size_t i = 0; i < ARRAY_SIZE(cg_parents); i++) {
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/qemu-%s", cg_parents[i], name);
                (void) rmdir_cgroup(path);
        }
}

/* Cgroups whose jail directory is gone (a removal above that met EBUSY for
 * longer, or an older gc's): the directory is created before the cgroups
 * and removed after them, so one without the other is a leftover. */
static unsigned sweep_cgroups(void) {
        unsigned removed = 0;
        for (size_t i = 0; i < ARRAY_SIZE(cg_parents); i++) {
                DIR *d = opendir(cg_parents[i]);
                for (struct dirent *e; d && (e = readdir(d));) {
                        if (strncmp(e->d_name, "qemu-vm-", 8) != 0 || strlen(e->d_name) != 14)
                                continue;
                        char jail[PATH_MAX], path[PATH_MAX];
                        snprintf(jail, sizeof(jail), "%s/%s", TR_KATA_JAIL_DIR, e->d_name + 5);
                        if (access(jail, F_OK) == 0)
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", cg_parents[i], e->d_name);
                        removed += rmdir_cgroup(path);
                }
                if (d)
                        closedir(d);
        }
        return removed;
}

unsigned tr__kata_jail_gc(tr_log_fn log, void *log_userdata) {
        DIR *d = opendir(TR_KATA_JAIL_DIR);
        if (!d)
                return sweep_cgroups();
        unsigned removed = 0;
        time_t now = time(NULL);
        for (struct dirent *e; (e = readdir(d));) {
                if (strncmp(e->d_name, "vm-", 3) != 0 || strlen(e->d_name) != 9)
                        continue;
                _cleanup_close_ int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0)
                        continue;
                pid_t pid = read_pid(fd);
                if (pid > 0 ? is_qemu(pid) : st.st_mtime + SETUP_GRACE_S > now)
                        continue;
                (void) unlinkat(fd, "pid", 0);
                (void) unlinkat(fd, "root", AT_REMOVEDIR);
                if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0)
                        continue;
                remove_cgroups(e->d_name);
                removed++;
                if (log) {
                        const char *kv[] = { "what", "qemu jail", "id", e->d_name, "why", "qemu_gone", NULL };
                        log(log_userdata, TR_LOG_INFO, "gc removed", kv);
                }
        }
        closedir(d);
        return removed + sweep_cgroups();
}
