/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-sandbox uid allocator: range checks, leases are exclusive between
 * threads and between processes, released slots come back, a uid some
 * process still runs as is never handed out, and a lease dies with its
 * holder.  Each test uses its own lease directory.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/uidalloc.h"

#define FIRST 0x7a000000u

static char base[64], dir[96];

static void setup(void) {
        snprintf(base, sizeof base, "/tmp/tr-uidalloc-XXXXXX");
        cr_assert_not_null(mkdtemp(base));
        snprintf(dir, sizeof dir, "%s/uids", base);
}

static void teardown(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
        (void) system(cmd);
}

TestSuite(uidalloc, .init = setup, .fini = teardown, .timeout = 60);

Test(uidalloc, range_checks) {
        tr_error *err = NULL;
        cr_assert_eq(tr__uid_range_check(NULL, TR_BACKEND_NONE, NULL), 0);
        cr_assert_eq(tr__uid_range_check(&(tr_uid_range){ 0, 0 }, TR_BACKEND_NONE, NULL), 0);
        cr_assert_eq(tr__uid_range_check(&(tr_uid_range){ 100000, 1000 }, TR_BACKEND_NONE, NULL), 0);
        cr_assert_lt(tr__uid_range_check(&(tr_uid_range){ 0, 10 }, TR_BACKEND_CONTAINERD, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        cr_assert_not_null(strstr(tr_error_message(err), "below 1000"));
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(tr__uid_range_check(&(tr_uid_range){ 60000, 6000 }, TR_BACKEND_NONE, &err), 0);
        cr_assert_not_null(strstr(tr_error_message(err), "65534"));
        tr_error_free(err);
        cr_assert_lt(tr__uid_range_check(&(tr_uid_range){ 0xffffff00u, 0x100 }, TR_BACKEND_NONE, NULL), 0);
        cr_assert_eq(tr__uid_range_check(&(tr_uid_range){ 0xffffff00u, 0xff }, TR_BACKEND_NONE, NULL), 0);
        /* An acquire with a bad range fails the same way, creating nothing. */
        tr__uid_lease *l = NULL;
        cr_assert_lt(tr__uid_lease_acquire_in(dir, &(tr_uid_range){ 5, 1 }, &l, NULL), 0);
        cr_assert_null(l);
        cr_assert_lt(access(dir, F_OK), 0);
}

Test(uidalloc, parse) {
        tr_uid_range r;
        cr_assert_eq(tr_uid_range_parse("1879048192-1879113727", &r, NULL), 0);
        cr_assert_eq(r.first, 1879048192u);
        cr_assert_eq(r.count, 65536u);
        cr_assert_eq(tr_uid_range_parse("100000-100000", &r, NULL), 0);
        cr_assert_eq(r.count, 1u);
        const char *bad[] = { NULL,
                              "",
                              "100000",
                              "100000-",
                              "-100000",
                              "100000-99999",
                              " 1000-2000",
                              "1000-2000 ",
                              "+1000-2000",
                              "0x1000-0x2000",
                              "1e4-2e4",
                              "1000--2000",
                              "0-10",
                              "60000-70000",
                              "4294967290-4294967295",
                              "99999999999-99999999999" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                tr_error *err = NULL;
                cr_assert_lt(tr_uid_range_parse(bad[i], &r, &err), 0, "%s", bad[i] ? bad[i] : "NULL");
                cr_assert_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
                tr_error_free(err);
        }
}

Test(uidalloc, default_range_and_release) {
        tr__uid_lease *a = NULL, *b = NULL;
        cr_assert_eq(tr__uid_lease_acquire_in(dir, NULL, &a, NULL), 0);
        cr_assert_eq(tr__uid_lease_acquire_in(dir, &(tr_uid_range){ 0, 0 }, &b, NULL), 0);
        uint32_t ua = tr__uid_lease_uid(a), ub = tr__uid_lease_uid(b);
        cr_assert_geq(ua, TR_UID_RANGE_DEFAULT_FIRST);
        cr_assert_lt(ua, TR_UID_RANGE_DEFAULT_FIRST + TR_UID_RANGE_DEFAULT_COUNT);
        cr_assert_neq(ua, ub);
        struct stat st;
        cr_assert_eq(stat(dir, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0700);
        char path[128];
        snprintf(path, sizeof path, "%s/%u", dir, ua);
        cr_assert_eq(access(path, F_OK), 0);
        tr__uid_lease_free(a);
        cr_assert_lt(access(path, F_OK), 0, "a released lease leaves no file");
        tr__uid_lease_free(b);
        tr__uid_lease_free(NULL);
}

Test(uidalloc, exhausted_range_is_retryable_and_frees) {
        tr_uid_range one = { FIRST, 1 };
        tr__uid_lease *a = NULL, *b = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr__uid_lease_acquire_in(dir, &one, &a, NULL), 0);
        cr_assert_eq(tr__uid_lease_uid(a), FIRST);
        cr_assert_lt(tr__uid_lease_acquire_in(dir, &one, &b, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_RUNTIME_UNAVAILABLE);
        cr_assert(tr_error_retryable(err));
        tr_error_free(err);
        tr__uid_lease_free(a);
        cr_assert_eq(tr__uid_lease_acquire_in(dir, &one, &b, NULL), 0);
        tr__uid_lease_free(b);
}

Test(uidalloc, refuses_a_directory_others_can_enter) {
        cr_assert_eq(mkdir(dir, 0755), 0);
        tr__uid_lease *a = NULL;
        tr_error *err = NULL;
        cr_assert_lt(tr__uid_lease_acquire_in(dir, NULL, &a, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_INTERNAL);
        cr_assert_not_null(strstr(tr_error_message(err), "0700"));
        tr_error_free(err);
}

/* ---- concurrency ---------------------------------------------------------- */

#define N 8

static pthread_barrier_t barrier;
static uint32_t got[N + 1];
static int rc[N + 1];

static void *grab(void *arg) {
        intptr_t i = (intptr_t) arg;
        tr__uid_lease *l = NULL;
        pthread_barrier_wait(&barrier); /* all acquire at once */
        rc[i] = tr__uid_lease_acquire_in(dir, &(tr_uid_range){ FIRST, N }, &l, NULL);
        got[i] = l ? tr__uid_lease_uid(l) : 0;
        pthread_barrier_wait(&barrier); /* hold until everyone has tried */
        tr__uid_lease_free(l);
        return NULL;
}

Test(uidalloc, threads_get_distinct_uids) {
        /* N+1 threads for N slots: N distinct uids, and exactly one refusal. */
        pthread_t t[N + 1];
        pthread_barrier_init(&barrier, NULL, N + 1);
        for (intptr_t i = 0; i <= N; i++)
                cr_assert_eq(pthread_create(&t[i], NULL, grab, (void *) i), 0);
        for (int i = 0; i <= N; i++)
                pthread_join(t[i], NULL);
        pthread_barrier_destroy(&barrier);
        int fails = 0;
        for (int i = 0; i <= N; i++) {
                if (rc[i] < 0) {
                        fails++;
                        continue;
                }
                cr_assert(got[i] >= FIRST && got[i] < FIRST + N);
                for (int j = 0; j < i; j++)
                        cr_assert(rc[j] < 0 || got[j] != got[i], "uid %u handed out twice", got[i]);
        }
        cr_assert_eq(fails, 1);
}

Test(uidalloc, processes_get_distinct_uids) {
        /* N forked acquirers over N slots, each holding its lease until the
         * parent has heard from all: every one gets a different uid. */
        int res[2], go[2];
        cr_assert_eq(pipe(res), 0);
        cr_assert_eq(pipe(go), 0);
        pid_t pids[N];
        for (int i = 0; i < N; i++) {
                pids[i] = fork();
                cr_assert_geq(pids[i], 0);
                if (pids[i] == 0) {
                        close(res[0]);
                        close(go[1]);
                        tr__uid_lease *l = NULL;
                        uint32_t u = 0;
                        if (tr__uid_lease_acquire_in(dir, &(tr_uid_range){ FIRST, N }, &l, NULL) == 0)
                                u = tr__uid_lease_uid(l);
                        if (write(res[1], &u, sizeof u) != sizeof u)
                                _exit(1);
                        char c;
                        (void) read(go[0], &c, 1); /* EOF when the parent lets go */
                        tr__uid_lease_free(l);
                        _exit(0);
                }
        }
        close(res[1]);
        close(go[0]);
        uint32_t seen[N];
        for (int i = 0; i < N; i++) {
                cr_assert_eq(read(res[0], &seen[i], sizeof seen[i]), (ssize_t) sizeof seen[i]);
                cr_assert(seen[i] >= FIRST && seen[i] < FIRST + N, "child %d got no uid", i);
                for (int j = 0; j < i; j++)
                        cr_assert_neq(seen[j], seen[i], "uid %u handed out twice", seen[i]);
        }
        close(go[1]);
        for (int i = 0; i < N; i++)
                waitpid(pids[i], NULL, 0);
        close(res[0]);
}

Test(uidalloc, a_dead_holder_frees_its_slot) {
        /* SIGKILL the holder: the kernel drops its flock, the slot is free. */
        tr_uid_range one = { FIRST + 100, 1 };
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
                tr__uid_lease *l = NULL;
                char c = tr__uid_lease_acquire_in(dir, &one, &l, NULL) == 0 ? 'y' : 'n';
                (void) write(p[1], &c, 1);
                pause();
                _exit(0);
        }
        char c = 0;
        cr_assert_eq(read(p[0], &c, 1), 1);
        cr_assert_eq(c, 'y');
        tr__uid_lease *l = NULL;
        cr_assert_lt(tr__uid_lease_acquire_in(dir, &one, &l, NULL), 0, "held by the live child");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_assert_eq(tr__uid_lease_acquire_in(dir, &one, &l, NULL), 0);
        cr_assert_eq(tr__uid_lease_uid(l), one.first);
        tr__uid_lease_free(l);
}

Test(uidalloc, sweep_removes_only_dead_holders_files) {
        /* A holder killed with SIGKILL cannot unlink its file: the sweep
         * does, and leaves a live lease alone. */
        tr__uid_lease *live = NULL;
        cr_assert_eq(tr__uid_lease_acquire_in(dir, &(tr_uid_range){ FIRST + 300, 1 }, &live, NULL), 0);
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
                tr__uid_lease *l = NULL;
                char c = tr__uid_lease_acquire_in(dir, &(tr_uid_range){ FIRST + 301, 1 }, &l, NULL) == 0 ? 'y' : 'n';
                (void) write(p[1], &c, 1);
                pause();
                _exit(0);
        }
        char c = 0;
        cr_assert_eq(read(p[0], &c, 1), 1);
        cr_assert_eq(c, 'y');
        cr_assert_eq(tr__uid_lease_sweep(dir), 0, "both holders are alive");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char path[128];
        snprintf(path, sizeof path, "%s/%u", dir, FIRST + 301);
        cr_assert_eq(access(path, F_OK), 0, "a killed holder leaves its file");
        cr_assert_eq(tr__uid_lease_sweep(dir), 1);
        cr_assert_neq(access(path, F_OK), 0);
        snprintf(path, sizeof path, "%s/%u", dir, FIRST + 300);
        cr_assert_eq(access(path, F_OK), 0, "the live lease is untouched");
        tr__uid_lease_free(live);
        cr_assert_eq(tr__uid_lease_sweep("/nonexistent/tr-uids"), 0);
}

Test(uidalloc, a_uid_still_running_is_skipped) {
        /* An orphan (a sandbox whose caller died) still runs as the uid: its
         * slot's lock is free, but the uid must not be handed out. */
        uint32_t uid = FIRST + 200;
        if (geteuid() != 0)
                uid = getuid(); /* we ourselves run as it */
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = -1;
        if (geteuid() == 0) {
                pid = fork();
                if (pid == 0) {
                        if (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
                                _exit(1);
                        (void) write(p[1], "y", 1);
                        pause();
                        _exit(0);
                }
                char c;
                cr_assert_eq(read(p[0], &c, 1), 1);
        }
        cr_assert(tr__uid_in_use(uid));
        tr__uid_lease *l = NULL;
        tr_error *err = NULL;
        cr_assert_lt(tr__uid_lease_acquire_in(dir, &(tr_uid_range){ uid, 1 }, &l, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_RUNTIME_UNAVAILABLE);
        tr_error_free(err);
        if (pid > 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                cr_assert_not(tr__uid_in_use(uid));
                cr_assert_eq(tr__uid_lease_acquire_in(dir, &(tr_uid_range){ uid, 1 }, &l, NULL), 0);
                tr__uid_lease_free(l);
        }
}
