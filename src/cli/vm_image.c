/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kata backend's root image for `exec -b kata --image REF`: the
 * container image (pulled first when missing and the policy allows it)
 * converted once per image digest into a read-only ext4 by
 * images/vm/from-image.sh, cached as DIR/<hex>.ext4.  Also the removal of
 * cached images: with their container image (image rm), and by gc when no
 * image toolruntime built or pulled points at their digest any more.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "toolruntime/containerd.h"
#include "util/handles.h"
#include "util/macros.h"

static const char *cache_dir(const char *dir) {
        return dir ? dir : CLI_VM_IMAGE_CACHE;
}

/* Run argv, its stdout's last line into *ret_line (stderr passes through). */
static int run_capture(char *const *argv, char **ret_line) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                return -1;
        }
        if (pid == 0) {
                if (dup2(p[1], 1) < 0)
                        _exit(127);
                execv(argv[0], argv);
                _exit(127);
        }
        close(p[1]);
        char buf[4096];
        size_t len = 0;
        for (;;) {
                ssize_t n = read(p[0], buf + len, sizeof buf - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
                if (len == sizeof buf - 1) { /* keep the tail */
                        memmove(buf, buf + len / 2, len - len / 2);
                        len -= len / 2;
                }
        }
        close(p[0]);
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        buf[len] = '\0';
        while (len && buf[len - 1] == '\n')
                buf[--len] = '\0';
        char *nl = strrchr(buf, '\n');
        if (!(*ret_line = strdup(nl ? nl + 1 : buf)))
                return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int cli_vm_image_for(const cli_backend_opts *bo, const char *dir, tr_profile profile, char **ret_path) {
        tr_containerd_config cfg;
        cli_containerd_config(bo, &cfg);
        _cleanup_free_ char *name = NULL, *digest = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        int r = tr_containerd_image_lookup(&cfg, bo->image, &name, &digest, &err);
        if (r < 0 && tr_error_code(err) == TR_E_IMAGE_NOT_FOUND && bo->pull) {
                /* The containerd backend's policy, from the same place. */
                if (!tr_image_pull_allowed(profile, bo->image)) {
                        tr_error_prefix(err, "the hardened profile pulls only images pinned by digest "
                                             "(NAME@sha256:...)");
                        cli_print_error(err);
                        return CLI_EXIT_ERROR;
                }
                tr_error_free(TAKE_PTR(err));
                r = tr_containerd_image_pull(&cfg, bo->image, bo->pull, NULL, &err);
                if (r >= 0)
                        r = tr_containerd_image_lookup(&cfg, bo->image, &name, &digest, &err);
        }
        if (r < 0) {
                cli_print_error(err);
                return CLI_EXIT_ERROR;
        }
        _cleanup_free_ char *script = NULL;
        if (asprintf(&script, "%s/vm/from-image.sh", cli_images_dir()) < 0)
                return CLI_EXIT_ERROR;
        char *argv[] = {
                "/bin/sh",     script,
                "--socket",    (char *) (cfg.socket_path ? cfg.socket_path : TR_CONTAINERD_DEFAULT_SOCKET),
                "--namespace", (char *) (cfg.namespace_name ? cfg.namespace_name : TR_CONTAINERD_DEFAULT_NAMESPACE),
                "--out",       (char *) cache_dir(dir),
                "--name",      name,
                "--digest",    digest,
                NULL
        };
        _cleanup_free_ char *line = NULL;
        r = run_capture(argv, &line);
        if (r != 0 || !line || line[0] != '/') {
                fprintf(stderr, "toolruntime: converting %s into a VM root image failed\n", bo->image);
                return CLI_EXIT_ERROR;
        }
        *ret_path = TAKE_PTR(line);
        return 0;
}

static bool hex_ext4(const char *n) {
        size_t len = strlen(n);
        if (len != 64 + 5 || !streq(n + 64, ".ext4"))
                return false;
        return strspn(n, "0123456789abcdef") == 64;
}

void cli_vm_image_drop(const char *dir, const char *digest) {
        if (!digest || strncmp(digest, "sha256:", 7) != 0)
                return;
        _cleanup_free_ char *p = NULL, *lock = NULL;
        if (asprintf(&p, "%s/%s.ext4", cache_dir(dir), digest + 7) < 0)
                return;
        if (asprintf(&lock, "%s/.%s.lock", cache_dir(dir), digest + 7) < 0) {
                lock = NULL;
                return;
        }
        (void) unlink(p);
        (void) unlink(lock);
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

int cli_vm_image_gc(const tr_containerd_config *cfg, const char *dir, bool verbose, unsigned *ret_removed) {
        *ret_removed = 0;
        _cleanup_(closedirp) DIR *d = opendir(cache_dir(dir));
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        tr_image_entry *v = NULL;
        size_t n = 0;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        /* Without the list nothing can be called unused: keep everything. */
        if (tr_containerd_image_list(cfg, &v, &n, &err) < 0)
                return -EAGAIN;
        for (struct dirent *e; (e = readdir(d));) {
                if (!hex_ext4(e->d_name))
                        continue;
                bool used = false;
                for (size_t i = 0; i < n && !used; i++)
                        used = strlen(v[i].digest) == 7 + 64 && strncmp(v[i].digest + 7, e->d_name, 64) == 0;
                if (used)
                        continue;
                char lock[80];
                snprintf(lock, sizeof lock, ".%.64s.lock", e->d_name);
                (void) unlinkat(dirfd(d), lock, 0);
                if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
                        (*ret_removed)++;
                        if (verbose)
                                fprintf(stderr, "gc: removed the unused VM root image %s/%s\n", cache_dir(dir),
                                        e->d_name);
                }
        }
        tr_image_entries_free(v, n);
        return 0;
}
