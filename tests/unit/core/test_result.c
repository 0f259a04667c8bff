/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <signal.h>

#include "toolruntime.h"

Test(result, signal_death) {
        tr_result *r = NULL;
        cr_assert_eq(tr_result_new(&r, NULL), 0);
        cr_assert_eq(tr_result_signal(r), 0);
        cr_assert_null(tr_result_signal_name(r));
        tr_result_set_signal(r, SIGSEGV);
        cr_assert_eq(tr_result_exit_code(r), 139);
        cr_assert_eq(tr_result_signal(r), SIGSEGV);
        cr_assert_str_eq(tr_result_signal_name(r), "SIGSEGV");
        tr_result_set_signal(r, SIGKILL);
        cr_assert_str_eq(tr_result_signal_name(r), "SIGKILL");
        cr_assert_eq(tr_result_exit_code(r), 137);
        /* Out of range: ignored. */
        tr_result_set_signal(r, 0);
        tr_result_set_signal(r, 65);
        tr_result_set_signal(r, -11);
        cr_assert_eq(tr_result_signal(r), SIGKILL);
        /* A real-time signal has a number, not a name. */
        tr_result_set_signal(r, 40);
        cr_assert_eq(tr_result_exit_code(r), 168);
        cr_assert_str_eq(tr_result_signal_name(r), "SIG40");
        /* An exit status replaces the signal. */
        tr_result_set_exit_code(r, 124);
        cr_assert_eq(tr_result_signal(r), 0);
        cr_assert_null(tr_result_signal_name(r));
        tr_result_free(r);
}
