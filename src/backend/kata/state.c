/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-VM state record, and tr_kata_gc.  QEMU dies with its caller
 * (PR_SET_PDEATHSIG, see qemu.c), but that signal is lost in corner cases
 * (a credential change clears it, and a launcher between the caller and
 * QEMU carries it only one level).  So each VM also leaves a record on the
 * host, <state>/vm/<id>.json, written right after QEMU is forked and
 * removed once it is reaped:
 *
 *   {"version":1, "owner":{"pid","start","boot_id","pidns"},
 *    "qemu":{"pid","start"}, "expires":<unix seconds>}
 *
 * (util/owner.h says why a pid needs its start time, boot id and pid
 * namespace).  `toolruntime gc` reads them: a record whose owner is dead,
 * or whose expiry (boot bound + timeout + a margin) passed, has its QEMU
 * killed -- only if the pid still is that QEMU (same start time) -- and is
 * removed.  Records of live owners are left alone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/kata/internal.h"
#include "util/macros.h"
#include "util/owner.h"
#include "util/proc.h"
#include "util/timeutil.h"

static void json_unrefp(json_t **j) {
        json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_unrefp)

static int ensure_dir(const char *dir) {
        /* The parent is the runtime's shared state dir (/run/toolruntime,
         * root's, 0700); ours is private too: the records name pids. */
        _cleanup_free_ char *parent = strdup(dir);
        if (!parent)
                return -ENOMEM;
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
                *slash = 0;
                if (mkdir(parent, 0700) < 0 && errno != EEXIST)
                        return -errno;
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int random_name(char out[33]) {
        uint8_t b[16];
        size_t got = 0;
        while (got < sizeof b) {
                ssize_t n = getrandom(b + got, sizeof b - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t) n;
        }
        for (size_t i = 0; i < sizeof b; i++)
                snprintf(out + 2 * i, 3, "%02x", b[i]);
        return 0;
}

int tr__kata_state_write(const char *dir, pid_t qemu_pid, int64_t expires, char **ret_path) {
        tr__owner self;
        uint64_t qstart;
        char name[33];
        int r;
        if ((r = tr__owner_self(&self)) < 0 || (r = tr__proc_start_time(qemu_pid, &qstart, NULL)) < 0 ||
            (r = random_name(name)) < 0 || (r = ensure_dir(dir)) < 0)
                return r;
        _cleanup_json_ json_t *o = json_pack(
                "{s:i, s:{s:I, s:I, s:s, s:I}, s:{s:I, s:I}, s:I}", "version", 1, "owner", "pid", (json_int_t) self.pid,
                "start", (json_int_t) self.start, "boot_id", self.boot_id, "pidns", (json_int_t) self.pidns, "qemu",
                "pid", (json_int_t) qemu_pid, "start", (json_int_t) qstart, "expires", (json_int_t) expires);
        _cleanup_free_ char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        _cleanup_free_ char *tmp = NULL, *path = NULL;
        if (!text || asprintf(&tmp, "%s/%s.tmp", dir, name) < 0 || asprintf(&path, "%s/%s.json", dir, name) < 0) {
                tmp = path = NULL;
                return -ENOMEM;
        }
        /* Written aside and renamed: gc never reads half a record. */
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        r = tr__write_all(fd, text, strlen(text));
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        *ret_path = TAKE_PTR(path);
        return 0;
}

void tr__kata_state_remove(char *path) {
        if (!path)
                return;
        (void) unlink(path);
        free(path);
}

typedef struct record {
        tr__owner owner;
        pid_t qemu_pid;
        uint64_t qemu_start;
        int64_t expires;
} record;

static int record_read(int dirfd, const char *name, record *ret) {
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        _cleanup_free_ char *text = NULL;
        size_t n;
        int r = tr__read_fd(fd, 4096, &text, &n);
        close(fd);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *o = json_loadb(text, n, 0, NULL);
        json_int_t opid = 0, ostart = 0, opidns = 0, qpid = 0, qstart = 0, exp = 0;
        const char *boot = NULL;
        if (!o || json_unpack(o, "{s:{s:I, s:I, s:s, s:I}, s:{s:I, s:I}, s:I}", "owner", "pid", &opid, "start", &ostart,
                              "boot_id", &boot, "pidns", &opidns, "qemu", "pid", &qpid, "start", &qstart, "expires",
                              &exp) < 0)
                return -EINVAL;
        if (opid <= 0 || opid > INT32_MAX || qpid <= 0 || qpid > INT32_MAX || ostart < 0 || qstart < 0 || opidns < 0 ||
            strlen(boot) >= sizeof ret->owner.boot_id)
                return -EINVAL;
        *ret = (record){ .owner = { .pid = (pid_t) opid, .start = (uint64_t) ostart, .pidns = (uint64_t) opidns },
                         .qemu_pid = (pid_t) qpid,
                         .qemu_start = (uint64_t) qstart,
                         .expires = exp };
        memcpy(ret->owner.boot_id, boot, strlen(boot) + 1);
        return 0;
}

/* Is `pid` still the process that started at `start`? */
static bool same_process(pid_t pid, uint64_t start) {
        uint64_t s;
        bool zombie = false;
        return tr__proc_start_time(pid, &s, &zombie) >= 0 && s == start && !zombie;
}

static void gc_log(tr_log_fn log, void *ud, tr_log_level level, const char *msg, const char *what, const char *id,
                   const char *why) {
        if (!log)
                return;
        const char *kv[] = { "what", what, "id", id, "why", why, NULL };
        log(ud, level, msg, kv);
}

TR_PUBLIC int tr_kata_gc(const char *state_dir, bool all, tr_log_fn log, void *log_userdata, unsigned *ret_removed,
                         tr_error **ret_err) {
        const char *dir = state_dir ? state_dir : TR_KATA_STATE_DIR;
        /* The QEMU jails live in one host-wide place (jail.c): they are
         * swept with the host's own records only, never with a caller's
         * private state directory (a test's), whose records they are not. */
        bool jails = !state_dir || streq(state_dir, TR_KATA_STATE_DIR);
        unsigned removed = 0;
        int64_t now = (int64_t) time(NULL);
        DIR *d = opendir(dir);
        if (!d) {
                if (errno == ENOENT) {
                        unsigned n = jails ? tr__kata_jail_gc(log, log_userdata) : 0;
                        if (ret_removed)
                                *ret_removed = n;
                        return 0;
                }
                int e = errno;
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "gc", "%s: %s", dir, strerror(e)), -e;
        }
        for (struct dirent *e; (e = readdir(d));) {
                size_t len = strlen(e->d_name);
                struct stat st;
                if (len > 4 && streq(e->d_name + len - 4, ".tmp")) {
                        /* A record being written is renamed within
                         * microseconds; one left by a writer that died. */
                        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mtime + 10 < now)
                                (void) unlinkat(dirfd(d), e->d_name, 0);
                        continue;
                }
                if (len <= 5 || !streq(e->d_name + len - 5, ".json"))
                        continue;
                record rec;
                const char *why = NULL;
                if (record_read(dirfd(d), e->d_name, &rec) < 0) {
                        /* Unreadable: not ours to judge, unless told so. */
                        if (!all)
                                continue;
                        why = "unreadable";
                } else if (all)
                        why = "all";
                else if (tr__owner_check(&rec.owner) == TR_OWNER_DEAD)
                        why = "owner_dead";
                else if (rec.expires <= now)
                        why = "expired";
                else
                        continue;
                if (!streq(why, "unreadable") && same_process(rec.qemu_pid, rec.qemu_start)) {
                        /* The VM with everything in it goes at once.  Its
                         * parent (the owner, or whoever inherited it) reaps
                         * it; wait a little for that, to report the truth. */
                        if (kill(rec.qemu_pid, SIGKILL) == 0) {
                                removed++;
                                gc_log(log, log_userdata, TR_LOG_INFO, "gc removed", "qemu", e->d_name, why);
                        }
                        for (int i = 0; i < 50 && same_process(rec.qemu_pid, rec.qemu_start); i++) {
                                struct timespec ts = { 0, 20 * 1000 * 1000 };
                                nanosleep(&ts, NULL);
                        }
                }
                if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
                        removed++;
                        gc_log(log, log_userdata, TR_LOG_INFO, "gc removed", "vm record", e->d_name, why);
                }
        }
        closedir(d);
        /* After the records: a QEMU killed above leaves its jail behind. */
        if (jails)
                removed += tr__kata_jail_gc(log, log_userdata);
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}
