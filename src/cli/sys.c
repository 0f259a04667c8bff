/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The few system helpers the CLI needs for itself: string vectors, reading a
 * file descriptor, finding a program on PATH, exiting before the cleanup.  The CLI links only the
 * public library, whose own helpers are not exported, so it keeps these.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

static bool single_threaded(void) {
        DIR *d = opendir("/proc/self/task");
        if (!d)
                return false;
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n == 1;
}

void cli_exit_now_finish_later(int status) {
        /* fork() copies only the calling thread: with another one alive, its
         * locks and half-done work would be copied mid-use. */
        if (!single_threaded())
                return;
        fflush(stdout);
        fflush(stderr);
        int ready[2];
        if (pipe2(ready, O_CLOEXEC) < 0)
                return;
        pid_t pid = fork();
        if (pid < 0) {
                close(ready[0]);
                close(ready[1]);
                return;
        }
        if (pid > 0) {
                /* Exit once the child left our process group and let go of
                 * our standard streams (EOF), so that whoever kills that
                 * group after we exit cannot catch it, and a pipeline reading
                 * our output ends with us. */
                close(ready[1]);
                char c;
                while (read(ready[0], &c, 1) < 0 && errno == EINTR)
                        ;
                _exit(status);
        }
        /* The child.  Its own session: neither the terminal's hangup nor a
         * signal to the caller's process group (a shell's job control,
         * timeout(1)) stops a teardown half-way; SIGTERM still does, and gc
         * collects what it leaves.  Its standard streams on /dev/null: a
         * pipeline or $(toolruntime exec ...) ends with the caller, not
         * with the teardown, and nothing is written after the status. */
        close(ready[0]);
        (void) setsid();
        struct sigaction ign = { .sa_handler = SIG_IGN }, dfl = { .sa_handler = SIG_DFL };
        sigemptyset(&ign.sa_mask);
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGINT, &ign, NULL);
        sigaction(SIGHUP, &ign, NULL);
        sigaction(SIGPIPE, &ign, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                for (int i = 0; i <= 2; i++)
                        (void) dup2(fd, i);
                if (fd > 2)
                        close(fd);
        }
        /* Only now: the caller's streams are no longer held when it exits. */
        close(ready[1]);
}
