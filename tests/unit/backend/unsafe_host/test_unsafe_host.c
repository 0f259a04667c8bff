/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The unsafe_host backend against real processes: languages, __out, exit
 * codes, the timeout and cancellation over whole process trees (including
 * descendants that setsid() away), output floods, rlimits, parallel use.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "toolruntime.h"
#include "tr-config.h"
#include "util/handles.h"

static tr_runtime *rt;
static tr_gateway *gw;

static void setup(void) {
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        tr_backend *b = NULL;
        tr_unsafe_host_config cfg = { .size = sizeof(tr_unsafe_host_config), .sdk_path = TR_SOURCE_DIR "/sdk/python" };
        cr_assert_eq(tr_backend_unsafe_host_new(&cfg, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        cr_assert_eq(tr_gateway_new_empty(&gw, NULL), 0);
}

static void teardown(void) {
        tr_gateway_free(gw);
        tr_runtime_free(rt);
}

TestSuite(unsafe_host, .init = setup, .fini = teardown, .timeout = 60);

typedef struct run_opts {
        const char *lang;
        int64_t timeout_ms;
        tr_limits limits;
        size_t max_output;
        tr_cancel *cancel;
} run_opts;

static int run(const char *code, const run_opts *o, tr_result **ret_res, tr_error **ret_err) {
        tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        tr_request_set_code(req, code, strlen(code), NULL);
        tr_request_set_gateway(req, gw);
        tr_request_set_profile(req, TR_PROFILE_DEV);
        if (o) {
                tr_request_set_language(req, o->lang, NULL);
                tr_request_set_timeout_ms(req, o->timeout_ms);
                tr_request_set_limits(req, &o->limits);
                tr_request_set_max_output(req, o->max_output);
        }
        int r = tr_runtime_execute(rt, req, o ? o->cancel : NULL, ret_res, ret_err);
        tr_request_free(req);
        return r;
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Processes whose environment carries `marker`: what a test's snippets left. */
static int count_marked(const char *marker) {
        int n = 0;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
                char path[300], buf[8192];
                if (e->d_name[0] < '0' || e->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
                FILE *f = fopen(path, "r");
                if (!f)
                        continue;
                size_t len = fread(buf, 1, sizeof(buf) - 1, f);
                fclose(f);
                for (size_t i = 0; i < len; i++)
                        if (buf[i] == '\0')
                                buf[i] = ' ';
                buf[len] = '\0';
                if (strstr(buf, marker))
                        n++;
        }
        if (d)
                closedir(d);
        return n;
}

Test(unsafe_host, python_print_and_out) {
        tr_result *res = NULL;
        cr_assert_eq(run("print('hi')\n__out = {'a': [1, 2]}", NULL, &res, NULL), 0);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "hi\n");
        cr_assert_str_eq(tr_result_value_json(res), "{\"a\":[1,2]}");
        cr_assert_eq(tr_result_exit_code(res), 0);
        cr_assert(tr_result_limits_enforced(res)->timeout);
        cr_assert_not(tr_result_limits_enforced(res)->memory);
        tr_result_free(res);
}

Test(unsafe_host, python_exit_codes_and_tracebacks) {
        tr_result *res = NULL;
        cr_assert_eq(run("import sys\nsys.exit(3)", NULL, &res, NULL), 0);
        cr_assert_eq(tr_result_exit_code(res), 3);
        tr_result_free(res);
        cr_assert_eq(run("raise ValueError('boom')", NULL, &res, NULL), 0);
        cr_assert_eq(tr_result_exit_code(res), 1);
        cr_assert(strstr(tr_result_stderr(res, NULL), "ValueError: boom"));
        cr_assert_null(strstr(tr_result_stderr(res, NULL), "_tr_main"));
        tr_result_free(res);
        cr_assert_eq(run("def f(:\n", NULL, &res, NULL), 0);
        cr_assert_eq(tr_result_exit_code(res), 1);
        cr_assert(strstr(tr_result_stderr(res, NULL), "SyntaxError"));
        tr_result_free(res);
}

Test(unsafe_host, non_serialisable_out_is_a_readable_error) {
        tr_result *res = NULL;
        cr_assert_eq(run("__out = object()", NULL, &res, NULL), 0);
        cr_assert_eq(tr_result_exit_code(res), 1);
        cr_assert_null(tr_result_value_json(res));
        cr_assert(strstr(tr_result_stderr(res, NULL), "__out is not JSON-serialisable"));
        tr_result_free(res);
}

Test(unsafe_host, stdin_is_empty_and_code_can_be_large) {
        tr_result *res = NULL;
        /* 1 MiB of code: larger than one argv string may be. */
        size_t n = 1 << 20;
        char *code = malloc(n + 64);
        memset(code, '#', n);
        strcpy(code + n, "\nimport sys\n__out = len(sys.stdin.read())");
        cr_assert_eq(run(code, NULL, &res, NULL), 0);
        free(code);
        cr_assert_str_eq(tr_result_value_json(res), "0");
        tr_result_free(res);
}

Test(unsafe_host, sh_snippets_and_their_out_line) {
        tr_result *res = NULL;
        run_opts o = { .lang = "sh" };
        cr_assert_eq(run("echo one; echo '__OUT__:[0]'; trvalue '[1,' '\"two\"\n  ]'", &o, &res, NULL), 0);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "one\n__OUT__:[0]\n");
        cr_assert_str_eq(tr_result_value_json(res), "[1,\"two\"]");
        tr_result_free(res);
        cr_assert_eq(run("printf 'a\\n\\n\\n'; exit 7\n\n", &o, &res, NULL), 0);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "a\n\n\n");
        cr_assert_eq(tr_result_exit_code(res), 7);
        tr_result_free(res);
}

Test(unsafe_host, timeout_kills_the_whole_tree) {
        tr_result *res = NULL;
        tr_error *err = NULL;
        run_opts o = { .timeout_ms = 1000 };
        int64_t t0 = now_ms();
        cr_assert_lt(run("import os, time, signal\n"
                         "print('started', flush=True)\n"
                         "for i in range(3):\n"
                         "    if os.fork() == 0:\n"
                         "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                         "        if i == 0: os.setsid()\n"
                         "        os.execvp('sleep', ['sleep', '1000.4242'])\n"
                         "while True: pass\n",
                         &o, &res, &err),
                     0);
        int64_t took = now_ms() - t0;
        cr_assert_eq(tr_error_code(err), TR_E_TIMEOUT);
        cr_assert_lt(took, 3000, "took %lld ms", (long long) took);
        cr_assert_geq(took, 950);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "started\n", "partial output is kept");
        cr_assert_eq(tr_result_exit_code(res), -1);
        cr_assert_eq(count_marked("1000.4242"), 0, "no process may outlive the execution");
        tr_error_free(err);
        tr_result_free(res);
}

Test(unsafe_host, background_children_do_not_outlive_a_normal_exit) {
        tr_result *res = NULL;
        run_opts o = { .lang = "sh" };
        cr_assert_eq(run("(trap '' TERM; exec sleep 1000.4343) & setsid sleep 1000.4343 & echo ok", &o, &res, NULL), 0);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "ok\n");
        cr_assert_eq(count_marked("1000.4343"), 0);
        tr_result_free(res);
}

typedef struct canceller {
        tr_cancel *c;
        int delay_ms;
} canceller;

static void *cancel_later(void *p) {
        canceller *c = p;
        usleep((useconds_t) c->delay_ms * 1000);
        tr_cancel_cancel(c->c);
        return NULL;
}

Test(unsafe_host, cancel_from_another_thread) {
        tr_cancel *cancel = NULL;
        cr_assert_eq(tr_cancel_new(&cancel, NULL), 0);
        canceller c = { cancel, 300 };
        pthread_t t;
        pthread_create(&t, NULL, cancel_later, &c);
        tr_result *res = NULL;
        tr_error *err = NULL;
        run_opts o = { .cancel = cancel, .timeout_ms = 20000 };
        int64_t t0 = now_ms();
        cr_assert_lt(run("import time\ntime.sleep(1000.4444)", &o, &res, &err), 0);
        pthread_join(t, NULL);
        cr_assert_eq(tr_error_code(err), TR_E_CANCELLED);
        cr_assert_lt(now_ms() - t0, 3000);
        cr_assert_eq(count_marked("1000.4444"), 0);
        tr_error_free(err);
        tr_result_free(res);
        tr_cancel_free(cancel);
}

Test(unsafe_host, output_flood_is_capped_quickly) {
        tr_result *res = NULL;
        run_opts o = { .max_output = 1 << 20 };
        int64_t t0 = now_ms();
        cr_assert_eq(run("import sys\n"
                         "chunk = 'x' * 65535 + '\\n'\n"
                         "for _ in range(1600): sys.stdout.write(chunk)\n"
                         "__out = 'done'",
                         &o, &res, NULL),
                     0);
        size_t n;
        tr_result_stdout(res, &n);
        cr_assert_eq(n, 1 << 20);
        cr_assert(tr_result_stdout_truncated(res));
        cr_assert_str_eq(tr_result_value_json(res), "\"done\"", "the value survives a flood");
        cr_assert_lt(now_ms() - t0, 10000);
        tr_result_free(res);
}

Test(unsafe_host, memory_rlimit_is_set_and_reported) {
        tr_result *res = NULL;
        run_opts o = { .limits = { .memory_bytes = 256LL << 20 } };
        cr_assert_eq(run("try:\n    x = bytearray(1 << 30)\n    __out = 'allocated'\nexcept MemoryError:\n"
                         "    __out = 'denied'",
                         &o, &res, NULL),
                     0);
        cr_assert_str_eq(tr_result_value_json(res), "\"denied\"");
        cr_assert(tr_result_limits_enforced(res)->memory);
        cr_assert_not(tr_result_limits_enforced(res)->disk, "RLIMIT_FSIZE is no disk quota");
        cr_assert_not(tr_result_limits_enforced(res)->cpu);
        tr_result_free(res);
}

Test(unsafe_host, only_stdio_and_the_gateway_are_inherited) {
        tr_result *res = NULL;
        cr_assert_eq(run("import os\n__out = sorted(int(f) for f in os.listdir('/proc/self/fd'))", NULL, &res, NULL),
                     0);
        /* 0-2, the gateway (3) and the directory fd listdir itself opened. */
        cr_assert_str_eq(tr_result_value_json(res), "[0,1,2,3,4]");
        tr_result_free(res);
}

Test(unsafe_host, environment_is_minimal) {
        setenv("TR_TEST_CANARY", "leak", 1);
        tr_result *res = NULL;
        cr_assert_eq(run("import os\n__out = [os.environ.get('TR_TEST_CANARY'), os.environ.get('TOOLRUNTIME_GATEWAY')]",
                         NULL, &res, NULL),
                     0);
        cr_assert_str_eq(tr_result_value_json(res), "[null,\"fd:3\"]");
        tr_result_free(res);
}

typedef struct par {
        int i;
        int ok;
} par;

static void *par_run(void *p) {
        par *x = p;
        char code[128], want[64];
        snprintf(code, sizeof(code), "import time\nprint('thread %d')\ntime.sleep(0.2)\n__out = %d", x->i, x->i);
        snprintf(want, sizeof(want), "thread %d\n", x->i);
        tr_result *res = NULL;
        if (run(code, NULL, &res, NULL) == 0 && strcmp(tr_result_stdout(res, NULL), want) == 0) {
                char v[16];
                snprintf(v, sizeof(v), "%d", x->i);
                x->ok = strcmp(tr_result_value_json(res), v) == 0;
        }
        tr_result_free(res);
        return NULL;
}

Test(unsafe_host, parallel_executions_from_threads) {
        pthread_t t[8];
        par p[8];
        for (int i = 0; i < 8; i++) {
                p[i] = (par){ .i = i };
                pthread_create(&t[i], NULL, par_run, &p[i]);
        }
        for (int i = 0; i < 8; i++) {
                pthread_join(t[i], NULL);
                cr_assert(p[i].ok, "execution %d", i);
        }
}

Test(unsafe_host, missing_interpreter_is_a_clear_error) {
        tr_runtime *rt2 = NULL;
        cr_assert_eq(tr_runtime_new(&rt2, NULL), 0);
        tr_backend *b = NULL;
        tr_unsafe_host_config cfg = { .size = sizeof(tr_unsafe_host_config), .python_path = "/nonexistent/python3" };
        cr_assert_eq(tr_backend_unsafe_host_new(&cfg, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt2, b, NULL), 0);
        tr_request *req = NULL;
        tr_request_new(&req, NULL);
        tr_request_set_code(req, "print(1)", 8, NULL);
        tr_request_set_gateway(req, gw);
        tr_request_set_profile(req, TR_PROFILE_DEV);
        tr_error *err = NULL;
        tr_result *res = NULL;
        cr_assert_lt(tr_runtime_execute(rt2, req, NULL, &res, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_RUNTIME_UNAVAILABLE);
        cr_assert(strstr(tr_error_message(err), "/nonexistent/python3"));
        tr_error_free(err);
        tr_result_free(res);
        tr_request_free(req);
        tr_runtime_free(rt2);
}

/* The backend configs are versioned by their size field: an unversioned
 * (zeroed) struct or one from a newer header is refused with a clear error,
 * on every backend, before anything is created; NULL is all defaults. */
Test(unsafe_host, config_size_is_checked) {
        tr_backend *b = NULL;
        tr_error *e = NULL;
        tr_unsafe_host_config zero = { 0 };
        cr_assert_lt(tr_backend_unsafe_host_new(&zero, &b, &e), 0);
        cr_assert_eq(tr_error_code(e), TR_E_INVALID_REQUEST);
        cr_assert_not_null(strstr(tr_error_message(e), "sizeof"), "%s", tr_error_message(e));
        tr_error_free(e);
        e = NULL;
        struct {
                tr_unsafe_host_config c;
                char newer_field[8];
        } big = { .c = { .size = sizeof(big) } };
        cr_assert_lt(tr_backend_unsafe_host_new(&big.c, &b, &e), 0);
        cr_assert_eq(tr_error_code(e), TR_E_INVALID_REQUEST);
        tr_error_free(e);
        e = NULL;
        tr_containerd_config cz = { 0 };
        cr_assert_lt(tr_backend_containerd_new(&cz, &b, &e), 0);
        cr_assert_eq(tr_error_code(e), TR_E_INVALID_REQUEST);
        tr_error_free(e);
        e = NULL;
        tr_kata_config kz = { 0 };
        cr_assert_lt(tr_backend_kata_new(&kz, &b, &e), 0);
        cr_assert_eq(tr_error_code(e), TR_E_INVALID_REQUEST);
        tr_error_free(e);
        cr_assert_null(b);
        tr_unsafe_host_config ok = { .size = sizeof(ok) };
        cr_assert_eq(tr_backend_unsafe_host_new(&ok, &b, NULL), 0);
        tr_backend_free(b);
        b = NULL;
        cr_assert_eq(tr_backend_unsafe_host_new(NULL, &b, NULL), 0);
        tr_backend_free(b);
}
