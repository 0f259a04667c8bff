/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"

Test(cbuf, caps_head_and_counts_the_rest) {
        tr__cbuf b;
        tr__cbuf_init(&b, 10);
        cr_assert_eq(tr__cbuf_append(&b, "0123456789abcdef", 16), 0);
        cr_assert(b.truncated);
        cr_assert_eq(b.len, 10);
        cr_assert_eq(tr__cbuf_append(&b, "Z", 1), 0);
        cr_assert_eq(b.total, 17);
        size_t len;
        char *head = tr__cbuf_steal(&b, &len);
        cr_assert_str_eq(head, "0123456789");
        cr_assert_eq(len, 10);
        free(head);
        tr__cbuf_done(&b);
}

Test(cbuf, empty_steal_is_empty_string) {
        tr__cbuf b;
        tr__cbuf_init(&b, 10);
        size_t len = 99;
        char *s = tr__cbuf_steal(&b, &len);
        cr_assert_str_eq(s, "");
        cr_assert_eq(len, 0);
        free(s);
        tr__cbuf_done(&b);
}

#include <sys/stat.h>
#include <unistd.h>

#include "util/proc.h"

Test(proc, rm_rf_removes_trees_made_unreadable) {
        char dir[] = "/tmp/tr-test-rmrf-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char sub[128], file[160];
        snprintf(sub, sizeof(sub), "%s/locked", dir);
        snprintf(file, sizeof(file), "%s/f", sub);
        cr_assert_eq(mkdir(sub, 0700), 0);
        FILE *f = fopen(file, "w");
        cr_assert_not_null(f);
        fclose(f);
        cr_assert_eq(chmod(sub, 0), 0);
        cr_assert_eq(tr__rm_rf(dir), 0);
        cr_assert_neq(access(dir, F_OK), 0);
        cr_assert_eq(tr__rm_rf("/tmp/tr-test-rmrf-does-not-exist"), 0);
}

#include <pthread.h>
#include <stdatomic.h>

static void touch(const char *dir, const char *name) {
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f, "%s", p);
        fclose(f);
}

Test(proc, rm_rf_removes_a_planted_symlink_not_its_target) {
        char dir[] = "/tmp/tr-test-rmrf-XXXXXX", victim[] = "/tmp/tr-test-victim-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        cr_assert_not_null(mkdtemp(victim));
        touch(victim, "precious");
        char p[256];
        /* Where a directory was, a symlink to the victim. */
        snprintf(p, sizeof(p), "%s/sub", dir);
        cr_assert_eq(mkdir(p, 0700), 0);
        touch(p, "f");
        cr_assert_eq(tr__rm_rf(p), 0);
        cr_assert_eq(symlink(victim, p), 0);
        cr_assert_eq(tr__rm_rf(dir), 0);
        cr_assert_neq(access(dir, F_OK), 0);
        snprintf(p, sizeof(p), "%s/precious", victim);
        cr_assert_eq(access(p, F_OK), 0, "the symlink's target was emptied");
        /* A symlink given as the path itself is removed, not followed. */
        char link[] = "/tmp/tr-test-rmrf-link-XXXXXX";
        cr_assert_not_null(mkdtemp(link));
        cr_assert_eq(rmdir(link), 0);
        cr_assert_eq(symlink(victim, link), 0);
        cr_assert_eq(tr__rm_rf(link), 0);
        cr_assert_eq(access(p, F_OK), 0);
        cr_assert_eq(tr__rm_rf(victim), 0);
}

/* Swap a directory for a symlink to the victim, again and again, while
 * tr__rm_rf walks the tree: whatever the timing, it never reaches the
 * victim (a path-based walk, nftw, does now and then). */
static atomic_bool swapping;
static char race_dir[64], race_victim[64];

static void *swapper(void *arg) {
        (void) arg;
        char sub[128], moved[128];
        snprintf(sub, sizeof(sub), "%s/d/sub", race_dir);
        snprintf(moved, sizeof(moved), "%s/moved", race_dir);
        while (atomic_load(&swapping)) {
                if (rename(sub, moved) == 0) {
                        (void) symlink(race_victim, sub);
                        (void) unlink(sub);
                        (void) rename(moved, sub);
                }
        }
        return NULL;
}

Test(proc, rm_rf_never_follows_a_directory_swapped_mid_walk) {
        snprintf(race_victim, sizeof(race_victim), "/tmp/tr-test-victim-XXXXXX");
        cr_assert_not_null(mkdtemp(race_victim));
        for (int i = 0; i < 200; i++) {
                char name[16];
                snprintf(name, sizeof(name), "v%d", i);
                touch(race_victim, name);
        }
        for (int round = 0; round < 10; round++) {
                snprintf(race_dir, sizeof(race_dir), "/tmp/tr-test-rmrf-XXXXXX");
                cr_assert_not_null(mkdtemp(race_dir));
                char p[160];
                snprintf(p, sizeof(p), "%s/d", race_dir);
                cr_assert_eq(mkdir(p, 0700), 0);
                snprintf(p, sizeof(p), "%s/d/sub", race_dir);
                cr_assert_eq(mkdir(p, 0700), 0);
                for (int i = 0; i < 200; i++) {
                        char name[16];
                        snprintf(name, sizeof(name), "f%d", i);
                        touch(p, name);
                }
                atomic_store(&swapping, true);
                pthread_t t;
                cr_assert_eq(pthread_create(&t, NULL, swapper, NULL), 0);
                (void) tr__rm_rf(race_dir);
                atomic_store(&swapping, false);
                pthread_join(t, NULL);
                (void) tr__rm_rf(race_dir);
                cr_assert_neq(access(race_dir, F_OK), 0);
                for (int i = 0; i < 200; i++) {
                        char v[128];
                        snprintf(v, sizeof(v), "%s/v%d", race_victim, i);
                        cr_assert_eq(access(v, F_OK), 0, "round %d: %s was removed", round, v);
                }
        }
        cr_assert_eq(tr__rm_rf(race_victim), 0);
}

#include <sys/wait.h>

/* As root, permissions never stop the walk; the locked-tree path matters to
 * callers that are not root: run it as 65534 on a tree that uid made and
 * locked (mode 000 and 0500 directories). */
Test(proc, rm_rf_removes_locked_trees_as_an_unprivileged_owner) {
        char dir[] = "/tmp/tr-test-rmrf-user-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (geteuid() == 0 && (chown(dir, 65534, 65534) < 0 || setgid(65534) < 0 || setuid(65534) < 0))
                        _exit(10);
                char p[256];
                snprintf(p, sizeof(p), "%s/a", dir);
                if (mkdir(p, 0700) < 0)
                        _exit(11);
                snprintf(p, sizeof(p), "%s/a/b", dir);
                if (mkdir(p, 0700) < 0)
                        _exit(12);
                touch(p, "f");
                snprintf(p, sizeof(p), "%s/a/b/c", dir);
                if (mkdir(p, 0700) < 0)
                        _exit(13);
                touch(p, "g");
                if (chmod(p, 0) < 0)
                        _exit(14);
                snprintf(p, sizeof(p), "%s/a/b", dir);
                if (chmod(p, 0500) < 0)
                        _exit(15);
                snprintf(p, sizeof(p), "%s/a", dir);
                if (chmod(p, 0) < 0)
                        _exit(16);
                if (tr__rm_rf(dir) < 0)
                        _exit(17);
                _exit(access(dir, F_OK) == 0 ? 18 : 0);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (code != 0)
                (void) tr__rm_rf(dir);
        cr_assert_eq(code, 0, "child step %d failed", code);
}
