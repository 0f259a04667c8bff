/* SPDX-License-Identifier: Apache-2.0 */
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if (type == FTW_DP)
                return rmdir(p) < 0 && errno != ENOENT ? -1 : 0;
        return unlink(p) < 0 && errno != ENOENT ? -1 : 0;
}

/* Pre-order: make every directory ours to read and empty before the
 * removal pass.  A snippet may chmod 000 what it made in its work
 * directory; that must not let it outlive the execution (root would not
 * care, any other caller would). */
static int open_up(const char *p, const struct stat *st, int type, struct FTW *ftw) {
        (void) ftw;
        if (type == FTW_D || type == FTW_DNR)
                (void) chmod(p, (st->st_mode & 07777) | S_IRWXU);
        return 0;
}

int tr__rm_rf(const char *path) {
        (void) nftw(path, open_up, 16, FTW_PHYS | FTW_MOUNT);
        if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
                return tr__negerrno();
        return 0;
}
