/* SPDX-License-Identifier: Apache-2.0 */
/* The per-VM state record and tr_kata_gc, with stand-in processes for QEMU
 * and its owner (we are their subreaper, so we reap what gc kills). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/kata/internal.h"
#include "util/proc.h"

static char dir[64];

static void setup(void) {
        snprintf(dir, sizeof dir, "/tmp/tr-test-kata-state.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
}

static void teardown(void) {
        (void) tr__rm_rf(dir);
}

static int count_records(void) {
        int n = 0;
        DIR *d = opendir(dir);
        for (struct dirent *e; d && (e = readdir(d));)
                n += e->d_name[0] != '.';
        if (d)
                closedir(d);
        return n;
}

static pid_t fake_qemu(void) {
        pid_t pid = fork();
        if (pid == 0) {
                for (;;)
                        pause();
        }
        cr_assert_gt(pid, 0);
        return pid;
}

static bool killed(pid_t pid) {
        int st;
        return waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

TestSuite(state, .init = setup, .fini = teardown);

Test(state, live_owner_is_left_alone_and_remove_works) {
        pid_t q = fake_qemu();
        char *path = NULL;
        cr_assert_eq(tr__kata_state_write(dir, q, (int64_t) time(NULL) + 600, &path), 0);
        cr_assert_eq(count_records(), 1);
        unsigned removed = 99;
        cr_assert_eq(tr_kata_gc(dir, false, NULL, NULL, &removed, NULL), 0);
        cr_assert_eq(removed, 0);
        cr_assert_eq(count_records(), 1);
        cr_assert_eq(kill(q, 0), 0);
        tr__kata_state_remove(path);
        cr_assert_eq(count_records(), 0);
        kill(q, SIGKILL);
        cr_assert(killed(q));
}

Test(state, dead_owner_loses_its_qemu_at_once) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t owner = fork();
        if (owner == 0) {
                /* The owner forks its "QEMU", records it and dies without
                 * cleaning up, as a caller killed with SIGKILL does. */
                close(p[0]);
                pid_t q = fake_qemu();
                char *path = NULL;
                if (tr__kata_state_write(dir, q, (int64_t) time(NULL) + 600, &path) < 0)
                        _exit(1);
                (void) !write(p[1], &q, sizeof q);
                _exit(0);
        }
        close(p[1]);
        pid_t q = 0;
        cr_assert_eq(read(p[0], &q, sizeof q), (ssize_t) sizeof q);
        close(p[0]);
        int st;
        cr_assert_eq(waitpid(owner, &st, 0), owner);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        cr_assert_eq(count_records(), 1);
        unsigned removed = 0;
        cr_assert_eq(tr_kata_gc(dir, false, NULL, NULL, &removed, NULL), 0);
        cr_assert_eq(removed, 2); /* the QEMU and its record */
        cr_assert(killed(q));
        cr_assert_eq(count_records(), 0);
}

Test(state, expired_record_goes_even_with_a_live_owner) {
        pid_t q = fake_qemu();
        char *path = NULL;
        cr_assert_eq(tr__kata_state_write(dir, q, (int64_t) time(NULL) - 1, &path), 0);
        unsigned removed = 0;
        cr_assert_eq(tr_kata_gc(dir, false, NULL, NULL, &removed, NULL), 0);
        cr_assert_eq(removed, 2);
        cr_assert(killed(q));
        cr_assert_eq(count_records(), 0);
        free(path);
}

Test(state, a_reused_pid_is_not_killed) {
        /* The record's QEMU is gone and its pid now names another process
         * (here: ourselves, with a different start time in the record). */
        pid_t q = fake_qemu();
        char *path = NULL;
        cr_assert_eq(tr__kata_state_write(dir, q, (int64_t) time(NULL) - 1, &path), 0);
        kill(q, SIGKILL);
        cr_assert(killed(q));
        unsigned removed = 0;
        cr_assert_eq(tr_kata_gc(dir, false, NULL, NULL, &removed, NULL), 0);
        cr_assert_eq(removed, 1); /* the record only */
        cr_assert_eq(count_records(), 0);
        free(path);
}

Test(state, garbage_is_kept_unless_all) {
        char p[128];
        snprintf(p, sizeof p, "%s/x.json", dir);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        fputs("{\"owner\": 1}", f);
        fclose(f);
        unsigned removed = 0;
        cr_assert_eq(tr_kata_gc(dir, false, NULL, NULL, &removed, NULL), 0);
        cr_assert_eq(removed, 0);
        cr_assert_eq(count_records(), 1);
        cr_assert_eq(tr_kata_gc(dir, true, NULL, NULL, &removed, NULL), 0);
        cr_assert_eq(removed, 1);
        cr_assert_eq(count_records(), 0);
        /* No directory at all: nothing to do. */
        cr_assert_eq(tr_kata_gc("/nonexistent/tr-state", false, NULL, NULL, &removed, NULL), 0);
}
