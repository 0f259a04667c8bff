/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sessions against real processes on the unsafe_host backend (the session
 * core and runner without a daemon; containerd's own session tests are in
 * tests/integration/containerd/test_session.c): state across executions,
 * the output framing under awkward output, interrupts, the interpreter's
 * death, files and path refusals, tools per execution; and the request's
 * input-file and path rules.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "toolruntime.h"
#include "tr-config.h"
#include "util/handles.h"
#include "util/timeutil.h"

static tr_runtime *rt;
static tr_gateway *gw;

static int add_tool(void *ud, const char *args, char **ret, tr_error **ret_err) {
        *ret = strdup("{\"sum\": 3}");
        return 0;
}

static void setup(void) {
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        tr_backend *b = NULL;
        tr_unsafe_host_config cfg = { .size = sizeof(tr_unsafe_host_config), .sdk_path = TR_SOURCE_DIR "/sdk/python" };
        cr_assert_eq(tr_backend_unsafe_host_new(&cfg, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        tr_tool_registry *reg = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        cr_assert_eq(tr_tool_registry_add_callback(reg, "t:add", "Adds.", NULL, add_tool, NULL, NULL), 0);
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        tr_tool_registry_free(reg);
}

static void teardown(void) {
        tr_gateway_free(gw);
        tr_runtime_free(rt);
}

TestSuite(session, .init = setup, .fini = teardown, .timeout = 60);

static tr_session *new_session(int64_t idle_ms) {
        _cleanup_(tr_request_freep) tr_request *shape = NULL;
        cr_assert_eq(tr_request_new(&shape, NULL), 0);
        tr_request_set_profile(shape, TR_PROFILE_DEV);
        tr_request_set_gateway(shape, gw);
        tr_session_config cfg = { .size = sizeof cfg, .idle_timeout_ms = idle_ms };
        tr_session *s = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_session_new(rt, shape, &cfg, NULL, &s, &err), 0, "%s", tr_error_message(err));
        return s;
}

static int sx(tr_session *s, const char *code, int64_t timeout_ms, tr_result **res, tr_error **err) {
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, code, strlen(code), NULL), 0);
        tr_request_set_timeout_ms(req, timeout_ms ? timeout_ms : 10000);
        tr_request_set_gateway(req, gw);
        *res = NULL;
        *err = NULL;
        return tr_session_execute(s, req, NULL, res, err);
}

Test(session, state_and_framing) {
        tr_session *s = new_session(0);
        tr_result *res = NULL;
        tr_error *err = NULL;
        size_t n;
        cr_assert_eq(sx(s, "x = 41\nprint('no newline', end='')", 0, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(tr_result_stdout(res, &n), "no newline");
        cr_expect_null(tr_result_value_json(res));
        tr_result_free(res);
        cr_assert_eq(sx(s, "__out = x + 1\nprint()\nprint()", 0, &res, &err), 0);
        cr_expect_str_eq(tr_result_value_json(res), "42");
        cr_expect_str_eq(tr_result_stdout(res, &n), "\n\n");
        tr_result_free(res);
        /* Much output, newlines everywhere, a marker look-alike. */
        cr_assert_eq(sx(s,
                        "import sys\nfor i in range(20000): sys.stdout.write('\\n' * (i % 3) + '__TR_END_x' + str(i))\n"
                        "sys.stderr.write('e\\n' * 5000)",
                        0, &res, &err),
                     0);
        const char *o = tr_result_stdout(res, &n);
        cr_expect(strstr(o, "__TR_END_x19999") != NULL && o[n - 1] == '9', "stdout ends: %s", o + n - 20);
        tr_result_stderr(res, &n);
        cr_expect_eq(n, 10000);
        tr_result_free(res);
        /* A timeout interrupts; the state survives. */
        cr_expect_lt(sx(s, "while True: pass", 500, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_TIMEOUT);
        cr_expect_str_eq(tr_result_backend_detail(res, "session"), "alive");
        tr_result_free(res);
        tr_error_free(err);
        cr_assert_eq(sx(s, "__out = x", 0, &res, &err), 0);
        cr_expect_str_eq(tr_result_value_json(res), "41");
        tr_result_free(res);
        /* Tools, twice: each execution has its own gateway session. */
        for (int i = 0; i < 2; i++) {
                cr_assert_eq(sx(s, "from toolruntime import tools\n__out = tools.run_tool('t:add', {})", 0, &res, &err),
                             0);
                cr_expect_str_eq(tr_result_value_json(res), "{\"sum\":3}", "%s", tr_result_stderr(res, &n));
                cr_expect_eq(tr_result_tool_call_count(res), 1);
                tr_result_free(res);
        }
        /* The interpreter's death ends the session. */
        cr_expect_lt(sx(s, "import os\nos._exit(0)", 0, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_SESSION_GONE);
        cr_expect_str_eq(tr_result_backend_detail(res, "session"), "ended");
        tr_result_free(res);
        tr_error_free(err);
        err = NULL;
        cr_expect_lt(tr_session_check(s, &err), 0);
        cr_expect(strstr(tr_error_message(err), "exited") != NULL, "%s", tr_error_message(err));
        tr_error_free(err);
        tr_session_free(s);
}

typedef struct bg {
        tr_session *s;
        int r;
} bg;

static void *bg_exec(void *p) {
        bg *b = p;
        tr_result *res = NULL;
        tr_error *err = NULL;
        b->r = sx(b->s, "import time\ntime.sleep(1)\ny = 7", 0, &res, &err);
        tr_result_free(res);
        tr_error_free(err);
        return NULL;
}

/* One operation at a time: a second execution waits for the first; a
 * sweeper's check does not. */
Test(session, one_operation_at_a_time) {
        tr_session *s = new_session(0);
        bg b = { .s = s, .r = -1 };
        pthread_t t;
        pthread_create(&t, NULL, bg_exec, &b);
        usleep(300 * 1000);
        int64_t t0 = tr__now_ns();
        cr_expect_eq(tr_session_check(s, NULL), 0);
        cr_expect_lt(tr__now_ns() - t0, 100 * TR_NSEC_PER_MSEC, "check waited for the running execution");
        tr_result *res = NULL;
        tr_error *err = NULL;
        cr_assert_eq(sx(s, "__out = y", 0, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(tr_result_value_json(res), "7");
        tr_result_free(res);
        pthread_join(t, NULL);
        cr_expect_eq(b.r, 0);
        tr_session_free(s);
}

static void *create_in_thread(void *p) {
        *(tr_session **) p = new_session(0);
        return NULL;
}

/* A session outlives the thread that created it (an HTTP connection's). */
Test(session, outlives_its_creating_thread) {
        tr_session *s = NULL;
        pthread_t t;
        pthread_create(&t, NULL, create_in_thread, &s);
        pthread_join(t, NULL);
        cr_assert_not_null(s);
        usleep(200 * 1000);
        tr_result *res = NULL;
        tr_error *err = NULL;
        cr_assert_eq(sx(s, "__out = 5", 0, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(tr_result_value_json(res), "5");
        tr_result_free(res);
        tr_session_free(s);
}

Test(session, files) {
        tr_session *s = new_session(0);
        tr_session_upload *up = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_session_upload_begin(s, "d/x.bin", &up, &err), 0, "%s", tr_error_message(err));
        cr_assert_eq(tr_session_upload_write(up, "a\0b", 3, NULL), 0);
        cr_assert_eq(tr_session_upload_write(up, "\n", 1, NULL), 0);
        cr_assert_eq(tr_session_upload_end(up, &err), 0, "%s", tr_error_message(err));
        tr_result *res = NULL;
        cr_assert_eq(
                sx(s, "import os\n__out = list(open('d/x.bin','rb').read())\nos.symlink('/etc', 'l')", 0, &res, &err),
                0);
        cr_expect_str_eq(tr_result_value_json(res), "[97,0,98,10]");
        tr_result_free(res);
        tr_session_download *d = NULL;
        uint64_t size = 0;
        cr_assert_eq(tr_session_download_begin(s, "d/x.bin", &size, &d, &err), 0);
        cr_expect_eq(size, 4);
        char buf[8];
        size_t n = 0;
        cr_assert_eq(tr_session_download_read(d, buf, 2, &n, NULL), 0);
        cr_expect_eq(n, 2);
        tr_session_download_free(d); /* the rest is read off */
        const char *bad[] = { "l/passwd", "../x", "/etc/passwd", "a//b", "l", "d/" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                err = NULL;
                cr_expect_lt(tr_session_download_begin(s, bad[i], &size, &d, &err), 0, "%s", bad[i]);
                cr_expect_eq(tr_error_code(err), TR_E_INVALID_REQUEST, "%s: %s", bad[i], tr_error_message(err));
                tr_error_free(err);
                err = NULL;
                cr_expect_lt(tr_session_upload_begin(s, bad[i], &up, &err), 0, "%s", bad[i]);
                tr_error_free(err);
        }
        /* An aborted upload leaves nothing; the session goes on. */
        cr_assert_eq(tr_session_upload_begin(s, "gone", &up, NULL), 0);
        cr_assert_eq(tr_session_upload_write(up, "zz", 2, NULL), 0);
        tr_session_upload_abort(up);
        cr_assert_eq(sx(s, "import os\n__out = sorted(os.listdir('.'))", 0, &res, &err), 0);
        cr_expect_str_eq(tr_result_value_json(res), "[\"d\",\"l\"]");
        tr_result_free(res);
        tr_session_free(s);
}

Test(session, idle_expiry_and_refusals) {
        tr_session *s = new_session(300);
        usleep(400 * 1000);
        tr_error *err = NULL;
        cr_expect_lt(tr_session_check(s, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_SESSION_GONE);
        cr_expect(strstr(tr_error_message(err), "idle") != NULL, "%s", tr_error_message(err));
        tr_error_free(err);
        tr_session_info info;
        tr_session_get_info(s, &info);
        cr_expect(!info.alive);
        tr_session_free(s);
        _cleanup_(tr_request_freep) tr_request *shape = NULL;
        cr_assert_eq(tr_request_new(&shape, NULL), 0);
        tr_request_set_profile(shape, TR_PROFILE_DEV);
        tr_request_set_gateway(shape, gw);
        tr_session_config bad = { .size = 1 };
        err = NULL;
        cr_expect_lt(tr_session_new(rt, shape, &bad, NULL, &s, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        tr_error_free(err);
        cr_assert_eq(tr_request_add_file(shape, "f", "x", 1, NULL), 0);
        err = NULL;
        cr_expect_lt(tr_session_new(rt, shape, NULL, NULL, &s, &err), 0);
        tr_error_free(err);
}

Test(session, path_rules_and_request_files) {
        const char *good[] = { "a", "a/b.txt", ".hidden", "a/..b", "x..", "dir/sub/file" };
        const char *bad[] = { "", "/a", "../a", "a/../b", "a/./b", ".", "..", "a//b", "a/", "/" };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++)
                cr_expect_eq(tr__path_check(good[i], strlen(good[i]), NULL), 0, "%s", good[i]);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                cr_expect_lt(tr__path_check(bad[i], strlen(bad[i]), NULL), 0, "%s", bad[i]);
        cr_expect_lt(tr__path_check("a\0b", 3, NULL), 0);
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_expect_eq(tr_request_add_file(req, "a", "1", 1, NULL), 0);
        cr_expect_lt(tr_request_add_file(req, "a", "1", 1, NULL), 0); /* twice */
        char name[16];
        for (int i = 1; i < TR_MAX_REQUEST_FILES; i++) {
                snprintf(name, sizeof name, "f%d", i);
                cr_expect_eq(tr_request_add_file(req, name, "", 0, NULL), 0);
        }
        cr_expect_lt(tr_request_add_file(req, "one-too-many", "", 0, NULL), 0);
        cr_expect_eq(tr_request_file_count(req), TR_MAX_REQUEST_FILES);
        const void *data = NULL;
        size_t len = 0;
        cr_expect_str_eq(tr_request_file_at(req, 0, &data, &len), "a");
        cr_expect_eq(len, 1);
        cr_expect_null(tr_request_file_at(req, TR_MAX_REQUEST_FILES, NULL, NULL));
        /* One-shot: the files are there before the snippet runs. */
        _cleanup_(tr_request_freep) tr_request *r2 = NULL;
        cr_assert_eq(tr_request_new(&r2, NULL), 0);
        const char *code = "__out = open('in/a.txt').read()";
        cr_assert_eq(tr_request_set_code(r2, code, strlen(code), NULL), 0);
        tr_request_set_profile(r2, TR_PROFILE_DEV);
        tr_request_set_gateway(r2, gw);
        cr_assert_eq(tr_request_add_file(r2, "in/a.txt", "hello", 5, NULL), 0);
        tr_result *res = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_runtime_execute(rt, r2, NULL, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(tr_result_value_json(res), "\"hello\"");
        tr_result_free(res);
}
