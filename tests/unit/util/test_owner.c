/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/owner.h"

Test(owner, self_is_alive) {
        tr__owner o;
        cr_assert_eq(tr__owner_self(&o), 0);
        cr_assert_eq(o.pid, getpid());
        cr_assert_gt(o.start, 0);
        cr_assert_eq(strlen(o.boot_id), 36);
        cr_assert_neq(o.pidns, 0);
        cr_assert_eq(tr__owner_check(&o), TR_OWNER_ALIVE);
}

Test(owner, another_start_time_or_boot_is_dead) {
        tr__owner o;
        cr_assert_eq(tr__owner_self(&o), 0);
        tr__owner reused = o;
        reused.start++; /* the same pid, another process */
        cr_assert_eq(tr__owner_check(&reused), TR_OWNER_DEAD);
        tr__owner rebooted = o;
        rebooted.boot_id[0] = rebooted.boot_id[0] == '0' ? '1' : '0';
        cr_assert_eq(tr__owner_check(&rebooted), TR_OWNER_DEAD);
        tr__owner elsewhere = o;
        elsewhere.pidns++; /* another pid namespace: cannot tell */
        cr_assert_eq(tr__owner_check(&elsewhere), TR_OWNER_UNKNOWN);
}

Test(owner, exited_process_is_dead_even_as_a_zombie) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
                char c;
                close(p[1]);
                (void) !read(p[0], &c, 1);
                _exit(0);
        }
        close(p[0]);
        tr__owner o;
        cr_assert_eq(tr__owner_self(&o), 0);
        o.pid = pid;
        bool zombie = true;
        cr_assert_eq(tr__proc_start_time(pid, &o.start, &zombie), 0);
        cr_assert(!zombie);
        cr_assert_eq(tr__owner_check(&o), TR_OWNER_ALIVE);
        close(p[1]); /* it exits; not reaped yet */
        for (int i = 0; i < 200 && !zombie; i++) {
                uint64_t s;
                cr_assert_eq(tr__proc_start_time(pid, &s, &zombie), 0);
                usleep(10000);
        }
        cr_assert(zombie);
        cr_assert_eq(tr__owner_check(&o), TR_OWNER_DEAD);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert_eq(tr__owner_check(&o), TR_OWNER_DEAD);
        uint64_t s;
        cr_assert_eq(tr__proc_start_time(pid, &s, NULL), -ENOENT);
}

Test(owner, parse) {
        tr__owner o;
        cr_assert_eq(tr__owner_parse("123", "456", "b-o-o-t", "789", &o), 0);
        cr_assert_eq(o.pid, 123);
        cr_assert_eq(o.start, 456);
        cr_assert_str_eq(o.boot_id, "b-o-o-t");
        cr_assert_eq(o.pidns, 789);
        cr_assert_lt(tr__owner_parse(NULL, "456", "b", "789", &o), 0);
        cr_assert_lt(tr__owner_parse("0", "456", "b", "789", &o), 0);
        cr_assert_lt(tr__owner_parse("-1", "456", "b", "789", &o), 0);
        cr_assert_lt(tr__owner_parse("12x", "456", "b", "789", &o), 0);
        cr_assert_lt(tr__owner_parse(" 12", "456", "b", "789", &o), 0);
        cr_assert_lt(tr__owner_parse("99999999999", "456", "b", "789", &o), 0);
        cr_assert_lt(tr__owner_parse("12", "456", "", "789", &o), 0);
        cr_assert_lt(tr__owner_parse("12", "456", "b", "", &o), 0);
        char longid[64];
        memset(longid, 'a', sizeof longid - 1);
        longid[sizeof longid - 1] = 0;
        cr_assert_lt(tr__owner_parse("12", "456", longid, "789", &o), 0);
}
