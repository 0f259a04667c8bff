/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-sandbox host uids (see uidalloc.h for what it owns).
 *
 * Why a uid per execution and not a user namespace: a per-execution
 * mapping needs a host range no other sandbox uses (this same allocation),
 * and with runc 1.1 (no idmapped mounts), cgroup v1 and overlay snapshots it
 * adds traps of its own: the image's files appear unmapped, every host path
 * handed in (the gateway directory) must belong to the mapped uid anyway,
 * and a user namespace opens namespaced-capability kernel surface the
 * profiles otherwise keep shut.  A plain unprivileged uid per sandbox needs
 * none of that: the read-only image stays root's (readable by anyone), /tmp
 * is a fresh tmpfs of mode 1777, and the kernel's ordinary uid checks keep
 * sandboxes apart (ptrace, /proc/<pid>/root, signals, the 0700 gateway
 * directory).
 *
 * A slot is free when (1) we can take the exclusive flock of its lock file
 * and (2) no process on the host runs as its uid.  (1) alone is not enough:
 * a sandbox can outlive the process that held the lock -- a SIGKILLed
 * caller leaves its container running until gc or its own deadline -- and
 * handing its uid to a new sandbox would put the two in one identity.  (2)
 * closes that: a uid still in use is skipped until its last process is gone.
 * The check runs while we hold the lock, so no other acquirer can take the
 * slot between the check and the sandbox's start.
 *
 * Lock files are removed on release (so the directory holds only live
 * leases).  The classic race -- B opens the file, A unlinks and unlocks it,
 * B locks the now nameless inode while C creates and locks a new one -- is
 * closed by checking, after the lock, that the name still points to the
 * inode we locked; if not, the slot is treated as taken.
 */
#include "core/uidalloc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/macros.h"

#define OP "uid"

struct tr__uid_lease {
        uint32_t uid;
        int fd;     /* holds the flock */
        char *path; /* the lock file, unlinked on release */
};

int tr__uid_range_check(const tr_uid_range *range, tr_backend_kind backend, tr_error **ret_err) {
        if (!range || range->count == 0)
                return 0;
        uint64_t last = (uint64_t) range->first + range->count - 1;
        if (range->first < 1000)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, backend, OP,
                                    "uid range %u-%llu includes system uids (below 1000)", range->first,
                                    (unsigned long long) last),
                       -EINVAL;
        if (last >= UINT32_MAX)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, backend, OP,
                                    "uid range %u-%llu reaches 4294967295, which is not a uid", range->first,
                                    (unsigned long long) last),
                       -EINVAL;
        if (range->first <= 65535 && last >= 65534)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, backend, OP,
                                    "uid range %u-%llu includes 65534 (nobody) or 65535", range->first,
                                    (unsigned long long) last),
                       -EINVAL;
        return 0;
}

TR_PUBLIC int tr_uid_range_parse(const char *text, tr_uid_range *ret_range, tr_error **ret_err) {
        uint64_t v[2] = { 0, 0 };
        const char *p = text;
        for (int i = 0; i < 2; i++) {
                /* Digits only: no sign, space, base prefix or exponent. */
                size_t n = p ? strspn(p, "0123456789") : 0;
                if (n == 0 || n > 10 || p[n] != (i == 0 ? '-' : '\0'))
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, OP,
                                            "uid range: expected FIRST-LAST (decimal uids), got '%s'",
                                            text ? text : ""),
                               -EINVAL;
                for (size_t k = 0; k < n; k++)
                        v[i] = v[i] * 10 + (uint64_t) (p[k] - '0');
                p += n + 1;
        }
        if (v[0] > v[1] || v[1] >= UINT32_MAX)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, OP,
                                    "uid range: expected FIRST-LAST with FIRST <= LAST < 4294967295, got '%s'", text),
                       -EINVAL;
        tr_uid_range r = { (uint32_t) v[0], (uint32_t) (v[1] - v[0] + 1) };
        int e = tr__uid_range_check(&r, TR_BACKEND_NONE, ret_err);
        if (e < 0)
                return e;
        *ret_range = r;
        return 0;
}

/* "Uid:" and "Gid:" of /proc/<pid>/status hold the real, effective, saved
 * and filesystem ids.  The sandbox's gid equals its uid, so a process
 * holding it as a group counts as well.  Only the thread-group leader's
 * line is read: a container's threads share its credentials (a thread of
 * some other program that changed its own with a raw setresuid would be
 * missed; nothing of ours does that). */
static bool status_has_id(const char *status, uint32_t id) {
        for (const char *key = "Uid:";; key = "Gid:") {
                const char *l = strstr(status, key);
                if (l) {
                        const char *p = l + 4;
                        for (int i = 0; i < 4; i++) {
                                char *end;
                                errno = 0;
                                unsigned long v = strtoul(p, &end, 10);
                                if (end == p || errno)
                                        break;
                                if (v == id)
                                        return true;
                                p = end;
                        }
                }
                if (key[0] == 'G')
                        return false;
        }
}

bool tr__uid_in_use(uint32_t uid) {
        DIR *d = opendir("/proc");
        if (!d)
                return true; /* cannot tell: do not hand it out */
        bool found = false;
        struct dirent *de;
        while (!found && (de = readdir(d))) {
                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                char path[sizeof de->d_name + 16];
                snprintf(path, sizeof path, "/proc/%s/status", de->d_name);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue; /* gone meanwhile */
                char buf[4096];
                ssize_t n = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (n <= 0)
                        continue;
                buf[n] = 0;
                found = status_has_id(buf, uid);
        }
        closedir(d);
        return found;
}

/* The lease directory: made root-only if absent; refused if it exists with
 * another owner or any group/other permission, since whoever can write it
 * could hold our slots or swap lock files. */
static int open_dir(const char *dir, tr_error **ret_err) {
        if (streq(dir, TR_UID_LEASE_DIR) && mkdir("/run/toolruntime", 0700) < 0 && errno != EEXIST)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, OP,
                                    "cannot create /run/toolruntime for sandbox uid leases: %m (a per-sandbox "
                                    "uid needs root)");
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, OP,
                                    "cannot create the uid lease directory %s: %m (a per-sandbox uid needs root)", dir);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, OP, "uid lease directory %s: %m", dir);
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
                close(fd);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, OP,
                                    "uid lease directory %s must be ours and mode 0700", dir);
        }
        return fd;
}

/* Try one slot: 1 and the lock fd in *ret_fd when it is ours, 0 when it is
 * taken or still in use, negative errno on failure. */
static int try_slot(int dfd, uint32_t uid, int *ret_fd) {
        char name[16];
        snprintf(name, sizeof name, "%u", uid);
        _cleanup_close_ int fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return tr__negerrno();
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? 0 : tr__negerrno();
        struct stat a, b;
        if (fstat(fd, &a) < 0)
                return tr__negerrno();
        if (fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
                return 0; /* released (unlinked) while we opened it: someone else's now */
        if (tr__uid_in_use(uid)) {
                /* An orphaned sandbox still runs as it: skip the slot, and
                 * drop the file we may have just created (we hold its lock,
                 * so this is the normal release). */
                (void) unlinkat(dfd, name, 0);
                return 0;
        }
        *ret_fd = TAKE_FD(fd);
        return 1;
}

int tr__uid_lease_acquire_in(const char *dir, const tr_uid_range *range, tr__uid_lease **ret_lease,
                             tr_error **ret_err) {
        tr_uid_range def = { TR_UID_RANGE_DEFAULT_FIRST, TR_UID_RANGE_DEFAULT_COUNT };
        if (!range || range->count == 0)
                range = &def;
        int r = tr__uid_range_check(range, TR_BACKEND_NONE, ret_err);
        if (r < 0)
                return r;
        _cleanup_close_ int dfd = open_dir(dir, ret_err);
        if (dfd < 0)
                return dfd;
        /* A random first slot: concurrent acquirers rarely contend for the
         * same file, and a uid is not reused at once after its release. */
        uint32_t start = 0;
        if (getrandom(&start, sizeof start, 0) != sizeof start)
                start = (uint32_t) getpid();
        for (uint32_t i = 0; i < range->count; i++) {
                uint32_t uid = range->first + (uint32_t) ((start + (uint64_t) i) % range->count);
                int fd = -1;
                r = try_slot(dfd, uid, &fd);
                if (r < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, OP, "uid lease %s/%u: %s", dir,
                                            uid, strerror(-r)),
                               r;
                if (r == 0)
                        continue;
                tr__uid_lease *l = calloc(1, sizeof *l);
                if (!l || asprintf(&l->path, "%s/%u", dir, uid) < 0) {
                        char name[16];
                        snprintf(name, sizeof name, "%u", uid);
                        (void) unlinkat(dfd, name, 0);
                        close(fd);
                        free(l);
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, OP, "out of memory");
                }
                l->uid = uid;
                l->fd = fd;
                *ret_lease = l;
                return 0;
        }
        r = tr_error_set(ret_err, TR_E_RUNTIME_UNAVAILABLE, TR_BACKEND_NONE, OP,
                         "no free sandbox uid in %u-%u: each is held by a live sandbox (or a process "
                         "still runs as it); retry later or widen --uid-range",
                         range->first, range->first + range->count - 1);
        if (ret_err && *ret_err)
                tr_error_set_retryable(*ret_err, true);
        return r;
}

int tr__uid_lease_acquire(const tr_uid_range *range, tr__uid_lease **ret_lease, tr_error **ret_err) {
        return tr__uid_lease_acquire_in(TR_UID_LEASE_DIR, range, ret_lease, ret_err);
}

int tr__uid_lease_sweep(const char *dir) {
        if (!dir)
                dir = TR_UID_LEASE_DIR;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOENT ? 0 : tr__negerrno();
        DIR *d = fdopendir(dfd);
        if (!d) {
                int r = tr__negerrno();
                close(dfd);
                return r;
        }
        int removed = 0;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_close_ int fd = openat(dfd, de->d_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                        continue; /* gone, or a live lease */
                /* Ours now: the same unlink-while-locked as a release, if
                 * the name still is the file we locked. */
                struct stat a, b;
                if (fstat(fd, &a) == 0 && fstatat(dfd, de->d_name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
                    a.st_dev == b.st_dev && a.st_ino == b.st_ino && unlinkat(dfd, de->d_name, 0) == 0)
                        removed++;
        }
        closedir(d);
        return removed;
}

uint32_t tr__uid_lease_uid(const tr__uid_lease *lease) {
        return lease->uid;
}

void tr__uid_lease_free(tr__uid_lease *lease) {
        if (!lease)
                return;
        /* Unlink while still holding the lock (see the top comment). */
        if (lease->path)
                (void) unlink(lease->path);
        if (lease->fd >= 0)
                close(lease->fd);
        free(lease->path);
        free(lease);
}
