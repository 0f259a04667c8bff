/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The few system helpers the CLI needs for itself: string vectors, reading a
 * file descriptor, finding a program on PATH.  The CLI links only the
 * public library, whose own helpers are not exported, so it keeps these.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

size_t cli_strv_len(char *const *v) {
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

int cli_strv_push(char ***v, const char *s) {
        size_t n = cli_strv_len(*v);
        char *copy = strdup(s);
        char **grown = copy ? realloc(*v, (n + 2) * sizeof(*grown)) : NULL;
        if (!grown) {
                free(copy);
                return -ENOMEM;
        }
        grown[n] = copy;
        grown[n + 1] = NULL;
        *v = grown;
        return 0;
}

void cli_strv_free(char **v) {
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

int cli_read_fd(int fd, size_t max, char **ret_data, size_t *ret_len) {
        size_t len = 0, alloc = 0;
        char *buf = NULL;
        while (len < max) {
                if (len == alloc) {
                        /* Grow with the data: `max` is a cap, not a size. */
                        size_t want = alloc ? alloc * 2 : 4096;
                        if (want > max)
                                want = max;
                        char *n = realloc(buf, want + 1);
                        if (!n) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = n;
                        alloc = want;
                }
                ssize_t r = read(fd, buf + len, alloc - len);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        int e = errno;
                        free(buf);
                        return -e;
                }
                if (r == 0)
                        break;
                len += (size_t) r;
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[len] = '\0';
        *ret_data = buf;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int cli_find_executable(const char *name, char **ret_path) {
        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return -errno;
                *ret_path = strdup(name);
                return *ret_path ? 0 : -ENOMEM;
        }
        const char *path = getenv("PATH");
        if (!path || !*path)
                path = "/usr/local/bin:/usr/bin:/bin";
        for (const char *p = path; *p;) {
                const char *end = strchr(p, ':');
                size_t dl = end ? (size_t) (end - p) : strlen(p);
                char *full = NULL;
                if (dl > 0 && asprintf(&full, "%.*s/%s", (int) dl, p, name) < 0)
                        return -ENOMEM;
                struct stat st;
                if (full && stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
                        *ret_path = full;
                        return 0;
                }
                free(full);
                p += dl + (end ? 1 : 0);
        }
        return -ENOENT;
}
