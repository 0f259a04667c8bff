/* SPDX-License-Identifier: Apache-2.0 */
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/macros.h"

int tr__find_executable(const char *name, char **ret_path) {
        if (!name || !*name)
                return -EINVAL;
        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return tr__negerrno();
                char *d = strdup(name);
                if (!d)
                        return -ENOMEM;
                *ret_path = d;
                return 0;
        }
        const char *path = getenv("PATH");
        if (!path || !*path)
                path = "/usr/local/bin:/usr/bin:/bin";
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        char *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *full = NULL;
                if (asprintf(&full, "%s/%s", dir, name) < 0)
                        return -ENOMEM;
                struct stat st;
                if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
                        *ret_path = TAKE_PTR(full);
                        return 0;
                }
        }
        return -ENOENT;
}

int tr__fd_set_nonblock(int fd, bool on) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0)
                return tr__negerrno();
        fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
        if (fcntl(fd, F_SETFL, fl) < 0)
                return tr__negerrno();
        return 0;
}

int tr__write_all(int fd, const void *p, size_t n) {
        const char *s = p;
        while (n > 0) {
                ssize_t w = write(fd, s, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return tr__negerrno();
                }
                s += w;
                n -= (size_t) w;
        }
        return 0;
}

int tr__read_fd(int fd, size_t max, char **ret_data, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, alloc = 0;
        while (len < max) {
                /* Grow as data comes: `max` is a cap (often generous), not a size. */
                if (len == alloc) {
                        size_t want = alloc ? alloc * 2 : 4096;
                        if (want > max)
                                want = max;
                        char *n = realloc(buf, want + 1);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                        alloc = want;
                }
                ssize_t r = read(fd, buf + len, alloc - len);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return tr__negerrno();
                }
                if (r == 0)
                        break;
                len += (size_t) r;
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[len] = '\0';
        *ret_data = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int tr__read_file(const char *path, size_t max, char **ret_data, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return tr__negerrno();
        return tr__read_fd(fd, max, ret_data, ret_len);
}

/*
 * tr__rm_rf walks with directory file descriptors, never with paths: each
 * directory is opened relative to its parent's fd with O_NOFOLLOW |
 * O_DIRECTORY, and entries are removed with unlinkat relative to it.  A
 * directory swapped for a symlink mid-walk is then either unlinked as the
 * symlink it now is or refused by the open; the walk never leaves the tree.
 * It does not cross into another filesystem (a mount point is left, and
 * reported), and it holds one fd per level, so a tree deeper than the fds
 * the process may open is reported, not followed further.
 */

/* Reopen a directory we could not read (a snippet may chmod 000 what it
 * made; that must not let it outlive the execution: root would not care,
 * any other caller would).  O_PATH needs no permission on the directory;
 * chmod and the reopen go through /proc/self/fd, i.e. to that very inode. */
static int open_locked_dir(int parent, const char *name) {
        _cleanup_close_ int pfd = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (pfd < 0)
                return -1;
        struct stat st;
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
        if (fstat(pfd, &st) < 0 || chmod(proc, (st.st_mode & 07777) | S_IRWXU) < 0)
                return -1;
        return open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int rm_at(int parent, const char *name, dev_t dev);

/* Remove everything in the directory `name` of `parent`, then it. */
static int rm_dir_at(int parent, const char *name, dev_t dev) {
        int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == EACCES)
                fd = open_locked_dir(parent, name);
        if (fd < 0)
                return errno == ENOENT ? 0 : tr__negerrno();
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = tr__negerrno();
                close(fd);
                return r;
        }
        if (st.st_dev != dev) {
                close(fd);
                return -EXDEV;
        }
        /* Entries of a directory we cannot write cannot be removed. */
        if ((st.st_mode & S_IRWXU) != S_IRWXU)
                (void) fchmod(fd, (st.st_mode & 07777) | S_IRWXU);
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = tr__negerrno();
                close(fd);
                return r;
        }
        int r = 0;
        /* Removing entries while reading may skip some: read again until a
         * pass finds nothing left to remove or nothing it can. */
        for (bool removed = true; removed;) {
                removed = false;
                rewinddir(d);
                struct dirent *e;
                while ((e = readdir(d))) {
                        if (streq(e->d_name, ".") || streq(e->d_name, ".."))
                                continue;
                        int q = rm_at(dirfd(d), e->d_name, dev);
                        if (q < 0)
                                r = r < 0 ? r : q;
                        else
                                removed = true;
                }
        }
        closedir(d);
        if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return r < 0 ? r : tr__negerrno();
        return r;
}

static int rm_at(int parent, const char *name, dev_t dev) {
        /* Anything but a directory (a symlink included) goes by unlinkat
         * itself; a directory answers EISDIR. */
        if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR)
                return tr__negerrno();
        return rm_dir_at(parent, name, dev);
}

int tr__rm_rf(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        size_t n = strlen(copy);
        while (n > 1 && copy[n - 1] == '/')
                copy[--n] = '\0';
        char *slash = strrchr(copy, '/');
        const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
        const char *base = slash ? slash + 1 : copy;
        if (slash && slash != copy)
                *slash = '\0';
        if (!*base || streq(base, ".") || streq(base, ".."))
                return -EINVAL;
        _cleanup_close_ int pfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return errno == ENOENT ? 0 : tr__negerrno();
        struct stat st;
        if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : tr__negerrno();
        return rm_at(pfd, base, st.st_dev);
}
