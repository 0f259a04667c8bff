/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The containerd backend against a real containerd (a private instance:
 * run.sh starts one unless TR_TEST_CONTAINERD_SOCKET names a daemon).
 * After every test, containerd's container, active-snapshot and lease lists
 * for the namespace must be empty and the backend's state directory must
 * hold nothing: cleanup is checked, not assumed.
 *
 * Environment:
 *   TR_TEST_CONTAINERD_SOCKET  the daemon; unset or absent: skip, or fail
 *                              under CI=true
 *   TR_TEST_NAMESPACE          namespace (default "default")
 *   TR_TEST_IMAGE              image (default toolruntime-sandbox:latest)
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/containerd/client.h"
#include "toolruntime.h"
#include "util/handles.h"
#include "util/proc.h"
#include "util/timeutil.h"

static const char *sock;
static const char *ns;
static const char *image;
static char state_dir[64];
static tr_gateway *gw;
static bool ready; /* setup found a daemon: teardown checks it */

static void need_containerd(void) {
        sock = getenv("TR_TEST_CONTAINERD_SOCKET");
        ns = getenv("TR_TEST_NAMESPACE");
        if (!ns || !*ns)
                ns = "default";
        image = getenv("TR_TEST_IMAGE");
        if (!image || !*image)
                image = TR_CONTAINERD_DEFAULT_IMAGE;
        struct stat st;
        bool ok = sock && *sock && stat(sock, &st) == 0 && S_ISSOCK(st.st_mode);
        if (!ok) {
                const char *ci = getenv("CI");
                if (ci && strcmp(ci, "true") == 0)
                        cr_assert_fail("CI=true and no containerd at TR_TEST_CONTAINERD_SOCKET=%s",
                                       sock ? sock : "(unset)");
                cr_skip_test("no containerd (set TR_TEST_CONTAINERD_SOCKET)");
        }
}

static void setup(void) {
        ready = false;
        need_containerd();
        snprintf(state_dir, sizeof state_dir, "/tmp/tr-ctrd-it-XXXXXX");
        cr_assert_not_null(mkdtemp(state_dir));
        cr_assert_eq(tr_gateway_new_empty(&gw, NULL), 0);
        ready = true;
}

static size_t count_active(const tr__ctrd_items *l) {
        size_t n = 0;
        for (size_t i = 0; i < l->n; i++)
                n += l->items[i].active;
        return n;
}

/* containerd and the state dir are clean. */
static void teardown(void) {
        if (!ready)
                return;
        tr__grpc_conn *conn = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr__grpc_connect(sock, ns, tr__now_ns() + 10 * TR_NSEC_PER_SEC, -1, &conn, &err), 0, "%s",
                     tr_error_message(err));
        tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = tr__now_ns() + 10 * TR_NSEC_PER_SEC, .cancel_fd = -1 };
        tr__ctrd_items cs = { 0 }, ss = { 0 }, ls = { 0 }, ts = { 0 };
        cr_assert_eq(tr__ctrd_container_list(&cx, NULL, &cs, NULL), 0);
        cr_assert_eq(tr__ctrd_snapshot_list(&cx, TR_CONTAINERD_DEFAULT_SNAPSHOTTER, NULL, &ss, NULL), 0);
        cr_assert_eq(tr__ctrd_lease_list(&cx, NULL, &ls, NULL), 0);
        cr_assert_eq(tr__ctrd_task_list(&cx, &ts, NULL), 0);
        size_t nc = cs.n, na = count_active(&ss), nl = ls.n, nt = ts.n;
        tr__ctrd_items_done(&cs);
        tr__ctrd_items_done(&ss);
        tr__ctrd_items_done(&ls);
        tr__ctrd_items_done(&ts);
        tr__grpc_conn_free(conn);
        cr_expect_eq(nt, 0, "%zu tasks left behind", nt);
        cr_expect_eq(nc, 0, "%zu containers left behind", nc);
        cr_expect_eq(na, 0, "%zu active snapshots left behind", na);
        cr_expect_eq(nl, 0, "%zu leases left behind", nl);
        DIR *d = opendir(state_dir);
        size_t left = 0;
        for (struct dirent *e; d && (e = readdir(d));)
                if (e->d_name[0] != '.')
                        left++;
        if (d)
                closedir(d);
        cr_expect_eq(left, 0, "%zu entries left in the state dir", left);
        (void) tr__rm_rf(state_dir);
        tr_gateway_free(gw);
        gw = NULL;
}

TestSuite(containerd, .init = setup, .fini = teardown, .timeout = 180);

typedef struct run_opts {
        const char *code;
        const char *language;
        tr_profile profile;
        int64_t timeout_ms;
        tr_limits limits;
        size_t max_output;
        const char *image_ref;
        const char *runtime;
        tr_cancel *cancel;
} run_opts;

static tr_runtime *make_runtime(const run_opts *o) {
        tr_runtime *rt = NULL;
        tr_backend *b = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        tr_containerd_config cfg = {
                .size = sizeof(tr_containerd_config),
                .socket_path = sock,
                .namespace_name = ns,
                .image_ref = o && o->image_ref ? o->image_ref : image,
                .runtime = o ? o->runtime : NULL,
                .state_dir = state_dir,
        };
        cr_assert_eq(tr_backend_containerd_new(&cfg, &b, &err), 0, "%s", tr_error_message(err));
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        return rt;
}

static int run_on(tr_runtime *rt, const run_opts *o, tr_result **ret_res, tr_error **ret_err) {
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, o->code, strlen(o->code), NULL), 0);
        if (o->language)
                cr_assert_eq(tr_request_set_language(req, o->language, NULL), 0);
        tr_request_set_profile(req, o->profile ? o->profile : TR_PROFILE_STANDARD);
        tr_request_set_timeout_ms(req, o->timeout_ms ? o->timeout_ms : 20000);
        /* A limit the case leaves at 0 is unset here: the profile's default. */
        tr_limits lim = o->limits;
        int64_t *f[] = { &lim.max_tool_calls, &lim.max_chain_steps, &lim.cpu_quota_ms,
                         &lim.memory_bytes,   &lim.pids_max,        &lim.disk_bytes };
        for (size_t i = 0; i < sizeof(f) / sizeof(*f); i++)
                if (*f[i] == 0)
                        *f[i] = TR_LIMIT_UNSET;
        tr_request_set_limits(req, &lim);
        if (o->max_output)
                tr_request_set_max_output(req, o->max_output);
        tr_request_set_gateway(req, gw);
        return tr_runtime_execute(rt, req, o->cancel, ret_res, ret_err);
}

static int run(const run_opts *o, tr_result **ret_res, tr_error **ret_err) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make_runtime(o);
        return run_on(rt, o, ret_res, ret_err);
}

static const char *out_of(const tr_result *res) {
        size_t n;
        return tr_result_stdout(res, &n);
}

/* The host uid the sandbox ran as (leased per execution): in the default
 * range, never 65534.  Formats `fmt` with it (every %s gets the uid). */
static const char *with_uid(const tr_result *res, const char *fmt) {
        static char buf[256];
        const char *u = tr_result_backend_detail(res, "host_uid");
        cr_assert_not_null(u, "no host_uid in the result");
        unsigned long v = strtoul(u, NULL, 10);
        cr_assert(v >= TR_UID_RANGE_DEFAULT_FIRST && v < TR_UID_RANGE_DEFAULT_FIRST + TR_UID_RANGE_DEFAULT_COUNT,
                  "host uid %s is outside the default range", u);
        snprintf(buf, sizeof buf, fmt, u, u, u);
        return buf;
}

Test(containerd, print_and_out) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "print('hello')\n__out = {'sum': 1 + 2}\n" };
        int r = run(&o, &res, &err);
        cr_assert_eq(r, 0, "%s: %s", tr_error_code_name(err), tr_error_message(err));
        cr_expect_str_eq(out_of(res), "hello\n");
        cr_expect_str_eq(tr_result_value_json(res), "{\"sum\":3}");
        cr_expect_eq(tr_result_exit_code(res), 0);
        cr_expect_eq(tr_result_backend_kind(res), TR_BACKEND_CONTAINERD);
        cr_expect_str_eq(tr_result_backend_detail(res, "namespace"), ns);
        cr_expect_str_eq(tr_result_backend_detail(res, "runtime"), TR_CONTAINERD_DEFAULT_RUNTIME);
        cr_expect_str_eq(tr_result_backend_detail(res, "profile"), "standard");
        cr_expect_not_null(tr_result_backend_detail(res, "container_id"));
        cr_expect(tr_result_limits_enforced(res)->timeout);
}

Test(containerd, exit_code_and_stderr) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "import sys\nsys.stderr.write('oops\\n')\nsys.exit(3)\n" };
        cr_assert_eq(run(&o, &res, &err), 0, "%s", tr_error_message(err));
        size_t n;
        cr_expect_str_eq(tr_result_stderr(res, &n), "oops\n");
        cr_expect_eq(tr_result_exit_code(res), 3);
}

Test(containerd, sh_language) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "echo \"hi $(id -u)\"\n", .language = "sh" };
        cr_assert_eq(run(&o, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(out_of(res), with_uid(res, "hi %s\n"));
}

Test(containerd, runs_as_its_own_uid_on_readonly_root) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "import os\n"
                               "print(os.getuid(), os.getgid())\n"
                               "try:\n"
                               "    open('/x', 'w')\n"
                               "    print('root writable')\n"
                               "except OSError as e:\n"
                               "    print('denied', e.errno)\n"
                               "open('/tmp/ok', 'w').write('fine')\n"
                               "print(open('/tmp/ok').read())\n" };
        cr_assert_eq(run(&o, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(out_of(res), with_uid(res, "%s %s\ndenied 30\nfine\n"));
}

Test(containerd, large_code_via_stdin) {
        /* Bigger than a pipe buffer: the snippet must be streamed, not
         * dropped into the FIFO in one go. */
        size_t pad = 300 * 1024;
        char *code = malloc(pad + 64);
        cr_assert_not_null(code);
        memset(code, '#', pad);
        code[0] = '#';
        code[pad - 1] = '\n';
        strcpy(code + pad, "print(len(open('/dev/null').read()) + 42)\n");
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = code };
        int r = run(&o, &res, &err);
        free(code);
        cr_assert_eq(r, 0, "%s", tr_error_message(err));
        cr_expect_str_eq(out_of(res), "42\n");
}

Test(containerd, timeout_kills_and_keeps_partial_output) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "print('started', flush=True)\nwhile True:\n    pass\n", .timeout_ms = 1500 };
        int64_t t0 = tr__now_ns();
        int r = run(&o, &res, &err);
        int64_t ms = (tr__now_ns() - t0) / TR_NSEC_PER_MSEC;
        cr_assert_lt(r, 0);
        cr_expect_eq(tr_error_code(err), TR_E_TIMEOUT, "%s", tr_error_message(err));
        cr_assert_not_null(res);
        cr_expect_str_eq(out_of(res), "started\n");
        cr_expect_eq(tr_result_exit_code(res), -1);
        cr_expect_lt(ms, 1500 + 8000, "timeout took %lld ms", (long long) ms);
}

static void *cancel_later(void *p) {
        struct timespec ts = { 1, 0 };
        nanosleep(&ts, NULL);
        tr_cancel_cancel(p);
        return NULL;
}

Test(containerd, cancel) {
        _cleanup_(tr_cancel_freep) tr_cancel *c = NULL;
        cr_assert_eq(tr_cancel_new(&c, NULL), 0);
        pthread_t t;
        pthread_create(&t, NULL, cancel_later, c);
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "import time\ntime.sleep(60)\n", .cancel = c };
        int r = run(&o, &res, &err);
        pthread_join(t, NULL);
        cr_assert_lt(r, 0);
        cr_expect_eq(tr_error_code(err), TR_E_CANCELLED, "%s: %s", tr_error_code_name(err), tr_error_message(err));
}

Test(containerd, output_flood_is_capped) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "import sys\nfor i in range(200000):\n    sys.stdout.write('x' * 99 + '\\n')\n"
                               "__out = 'done'\n",
                       .max_output = 65536 };
        cr_assert_eq(run(&o, &res, &err), 0, "%s", tr_error_message(err));
        size_t n;
        tr_result_stdout(res, &n);
        cr_expect_leq(n, 65536);
        cr_expect(tr_result_stdout_truncated(res));
        cr_expect_str_eq(tr_result_value_json(res), "\"done\"");
}

Test(containerd, memory_limit_is_resource_limit) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "b = []\nwhile True:\n    b.append(bytearray(16 * 1024 * 1024))\n",
                       .limits = { .memory_bytes = 64 * 1024 * 1024 } };
        int r = run(&o, &res, &err);
        cr_assert_lt(r, 0);
        cr_expect_eq(tr_error_code(err), TR_E_RESOURCE_LIMIT, "%s: %s", tr_error_code_name(err), tr_error_message(err));
        cr_expect(tr_result_limits_enforced(res)->memory);
}

Test(containerd, pids_limit) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "import os\nn = 0\ntry:\n    for i in range(100):\n        if os.fork() == 0:\n"
                               "            import time; time.sleep(5); os._exit(0)\n        n += 1\n"
                               "except OSError:\n    pass\nprint(n < 32)\n",
                       .limits = { .pids_max = 16 } };
        cr_assert_eq(run(&o, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(out_of(res), "True\n");
        cr_expect(tr_result_limits_enforced(res)->pids);
}

Test(containerd, missing_image) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "print(1)", .image_ref = "toolruntime-no-such-image:0" };
        cr_assert_lt(run(&o, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_IMAGE_NOT_FOUND);
        cr_expect(strstr(tr_error_message(err), "toolruntime image build") != NULL, "%s", tr_error_message(err));
}

Test(containerd, unknown_runtime_is_named) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "print(1)", .runtime = "io.containerd.nosuch.v1" };
        cr_assert_lt(run(&o, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_CONTAINER_FAILED, "%s", tr_error_code_name(err));
        cr_expect(strstr(tr_error_message(err), "io.containerd.nosuch.v1") != NULL, "%s", tr_error_message(err));
        cr_expect_geq(tr_error_grpc_status(err), 0);
}

typedef struct par {
        tr_runtime *rt;
        int i;
        int r;
        char out[256];
        char expect[256];
} par;

static void *par_run(void *p) {
        par *a = p;
        char code[256];
        snprintf(code, sizeof code, "import time\ntime.sleep(0.2)\nprint('worker-%d ' * 3)\n__out = %d\n", a->i, a->i);
        snprintf(a->expect, sizeof a->expect, "worker-%d worker-%d worker-%d \n", a->i, a->i, a->i);
        tr_result *res = NULL;
        tr_error *err = NULL;
        run_opts o = { .code = code };
        a->r = run_on(a->rt, &o, &res, &err);
        if (res) {
                size_t n;
                snprintf(a->out, sizeof a->out, "%s|%s", tr_result_stdout(res, &n),
                         tr_result_value_json(res) ? tr_result_value_json(res) : "null");
        } else if (err)
                snprintf(a->out, sizeof a->out, "error %s", tr_error_message(err));
        tr_result_free(res);
        tr_error_free(err);
        return NULL;
}

Test(containerd, eight_in_parallel) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make_runtime(NULL);
        par a[8];
        pthread_t t[8];
        for (int i = 0; i < 8; i++) {
                a[i] = (par){ .rt = rt, .i = i };
                pthread_create(&t[i], NULL, par_run, &a[i]);
        }
        for (int i = 0; i < 8; i++)
                pthread_join(t[i], NULL);
        for (int i = 0; i < 8; i++) {
                char want[300];
                snprintf(want, sizeof want, "%s|%d", a[i].expect, i);
                cr_expect_eq(a[i].r, 0, "worker %d: %s", i, a[i].out);
                cr_expect_str_eq(a[i].out, want);
        }
}

Test(containerd, gc_removes_expired_leftovers_only) {
        /* A killed caller's leftovers, simulated: a lease whose expiry has
         * passed, and one still live (another process's execution). */
        tr__grpc_conn *conn = NULL;
        cr_assert_eq(tr__grpc_connect(sock, ns, tr__now_ns() + 10 * TR_NSEC_PER_SEC, -1, &conn, NULL), 0);
        tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = tr__now_ns() + 10 * TR_NSEC_PER_SEC, .cancel_fd = -1 };
        char past[32], future[32];
        tr__ctrd_rfc3339((int64_t) time(NULL) - 60, past);
        tr__ctrd_rfc3339((int64_t) time(NULL) + 3600, future);
        const char *old_labels[] = { TR_CTRD_OWNER_LABEL, TR_CTRD_OWNER_VALUE, TR_CTRD_EXPIRES_LABEL, past, NULL };
        const char *live_labels[] = { TR_CTRD_OWNER_LABEL, TR_CTRD_OWNER_VALUE, TR_CTRD_EXPIRES_LABEL, future, NULL };
        cr_assert_eq(tr__ctrd_lease_create(&cx, "tr-test-old-lease", old_labels, NULL), 0);
        cr_assert_eq(tr__ctrd_lease_create(&cx, "tr-test-live-lease", live_labels, NULL), 0);
        tr_containerd_config cfg = {
                .size = sizeof(tr_containerd_config), .socket_path = sock, .namespace_name = ns, .state_dir = state_dir
        };
        unsigned removed = 0;
        tr_error *err = NULL;
        cr_expect_eq(tr_containerd_gc(&cfg, &removed, &err), 0, "%s", tr_error_message(err));
        cr_expect_eq(removed, 1);
        tr__ctrd_items ls = { 0 };
        cr_assert_eq(tr__ctrd_lease_list(&cx, NULL, &ls, NULL), 0);
        cr_expect_eq(ls.n, 1);
        if (ls.n == 1)
                cr_expect_str_eq(ls.items[0].id, "tr-test-live-lease");
        tr__ctrd_items_done(&ls);
        cr_expect_eq(tr_containerd_gc_ex(&cfg, true, &removed, NULL), 0);
        cr_expect_eq(removed, 1);
        tr__grpc_conn_free(conn);
}

Test(containerd, gateway_socket_reachable_as_nobody) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "import os, socket\n"
                               "s = socket.socket(socket.AF_UNIX)\n"
                               "s.connect(os.environ['TOOLRUNTIME_GATEWAY'][len('unix:'):])\n"
                               "print('connected', sorted(os.listdir('/run/toolruntime')))\n" };
        cr_assert_eq(run(&o, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(out_of(res), "connected ['gateway.sock']\n");
}

Test(containerd, nothing_survives_into_the_next_execution) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make_runtime(NULL);
        tr_result *res = NULL;
        run_opts w = { .code = "open('/tmp/marker', 'w').write('x')\nprint('written')\n" };
        cr_assert_eq(run_on(rt, &w, &res, NULL), 0);
        tr_result_free(res);
        res = NULL;
        run_opts r = { .code = "import os\nprint(os.path.exists('/tmp/marker'))\n" };
        cr_assert_eq(run_on(rt, &r, &res, NULL), 0);
        cr_expect_str_eq(out_of(res), "False\n");
        tr_result_free(res);
}

static size_t count_tasks(void) {
        tr__grpc_conn *conn = NULL;
        if (tr__grpc_connect(sock, ns, tr__now_ns() + 5 * TR_NSEC_PER_SEC, -1, &conn, NULL) < 0)
                return 0;
        tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = tr__now_ns() + 5 * TR_NSEC_PER_SEC, .cancel_fd = -1 };
        tr__ctrd_items ts = { 0 };
        size_t n = 0;
        if (tr__ctrd_task_list(&cx, &ts, NULL) == 0)
                for (size_t i = 0; i < ts.n; i++)
                        n += ts.items[i].status == 2; /* running */
        tr__ctrd_items_done(&ts);
        tr__grpc_conn_free(conn);
        return n;
}

static pid_t fork_runner(const char *code, int64_t timeout_ms) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                tr_runtime *rt = make_runtime(NULL);
                run_opts o = { .code = code, .timeout_ms = timeout_ms };
                tr_result *res = NULL;
                int r = run_on(rt, &o, &res, NULL);
                bool ok = r >= 0 && tr_result_exit_code(res) == 0;
                tr_result_free(res);
                tr_runtime_free(rt);
                _exit(ok ? 0 : 1);
        }
        return pid;
}

Test(containerd, gc_collects_a_killed_callers_sandbox_at_once) {
        /* A caller SIGKILLed mid-execution leaves its task running, its
         * container, snapshot, lease and directories: gc must remove all of
         * them at once (its owner is dead), and leave alone the execution
         * of a live caller running next to it. */
        pid_t victim = fork_runner("import time\ntime.sleep(100)\n", 110000);
        pid_t live = fork_runner("import time\ntime.sleep(4)\n", 60000);
        int64_t until = tr__now_ns() + 30 * TR_NSEC_PER_SEC;
        while (count_tasks() < 2 && tr__now_ns() < until) {
                struct timespec ts = { 0, 100 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        cr_assert_eq(count_tasks(), 2, "the children's tasks never started");
        kill(victim, SIGKILL);
        waitpid(victim, NULL, 0);
        tr_containerd_config cfg = {
                .size = sizeof(tr_containerd_config), .socket_path = sock, .namespace_name = ns, .state_dir = state_dir
        };
        unsigned removed = 0;
        tr_error *err = NULL;
        cr_expect_eq(tr_containerd_gc(&cfg, &removed, &err), 0, "%s", tr_error_message(err));
        /* task, container, snapshot, lease, the .io and .gw directories */
        cr_expect_eq(removed, 6);
        cr_expect_eq(count_tasks(), 1, "the live caller's task must survive gc");
        int st = 0;
        cr_expect_eq(waitpid(live, &st, 0), live);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the live caller's execution must finish normally");
        tr_error_free(err);
}

Test(containerd, hardened_profile_defaults_and_no_unshare) {
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        run_opts o = { .code = "import ctypes, os\n"
                               "libc = ctypes.CDLL(None, use_errno=True)\n"
                               "r = libc.unshare(0x00020000)\n" /* CLONE_NEWNS */
                               "print('unshare', r, ctypes.get_errno() != 0)\n"
                               "print('uid', os.getuid())\n",
                       .profile = TR_PROFILE_HARDENED };
        cr_assert_eq(run(&o, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(out_of(res), with_uid(res, "unshare -1 True\nuid %s\n"));
        const tr_limits_enforced *le = tr_result_limits_enforced(res);
        cr_expect(le->memory && le->pids && le->cpu && le->disk, "hardened defaults are enforced");
        cr_expect_str_eq(tr_result_backend_detail(res, "profile"), "hardened");
}

Test(containerd, dev_profile_has_writable_root) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make_runtime(NULL);
        tr_runtime_route(rt, TR_PROFILE_DEV, TR_BACKEND_CONTAINERD);
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        /* The root mount's options, as the sandbox sees them. */
        static const char code[] = "import os\n"
                                   "for l in open('/proc/self/mountinfo'):\n"
                                   "    f = l.split()\n"
                                   "    if f[4] == '/':\n"
                                   "        print(f[5].split(',')[0], os.getuid())\n";
        run_opts o = { .code = code, .profile = TR_PROFILE_DEV };
        cr_assert_eq(run_on(rt, &o, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(out_of(res), with_uid(res, "rw %s\n"));
        cr_expect_str_eq(tr_result_backend_detail(res, "profile"), "dev");
        tr_result_free(TAKE_PTR(res));
        run_opts s2 = { .code = code, .profile = TR_PROFILE_STANDARD };
        cr_assert_eq(run_on(rt, &s2, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(out_of(res), with_uid(res, "ro %s\n"));
}

/* The lifecycle a warm pool stands on: the sandbox is prepared before its
 * code exists (container up, interpreter waiting), the code and the tools
 * come at run time, and a sandbox freed unused leaves nothing (teardown). */
static void shape_request(tr_request **ret) {
        cr_assert_eq(tr_request_new(ret, NULL), 0);
        tr_request_set_profile(*ret, TR_PROFILE_STANDARD);
        tr_request_set_gateway(*ret, gw);
}

Test(containerd, prepared_ahead_then_run_with_its_code) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make_runtime(NULL);
        _cleanup_(tr_request_freep) tr_request *shape = NULL, *req = NULL;
        _cleanup_(tr_gateway_freep) tr_gateway *run_gw = NULL;
        shape_request(&shape);
        tr_sandbox *sb = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_runtime_prepare(rt, shape, NULL, &sb, &err), 0, "%s", err ? tr_error_message(err) : "");
        tr_request_free(TAKE_PTR(shape)); /* the sandbox keeps nothing of it */
        shape_request(&req);
        cr_assert_eq(tr_gateway_new_empty(&run_gw, NULL), 0);
        tr_request_set_gateway(req, run_gw);
        const char *code = "print('warm'); __out = 6 * 7";
        cr_assert_eq(tr_request_set_code(req, code, strlen(code), NULL), 0);
        int64_t t0 = tr__now_ns();
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        cr_assert_eq(tr_sandbox_run(sb, req, NULL, &res, &err), 0, "%s", err ? tr_error_message(err) : "");
        cr_log_info("run in a prepared sandbox: %.1f ms", (double) (tr__now_ns() - t0) / 1e6);
        cr_expect_str_eq(out_of(res), "warm\n");
        cr_expect_str_eq(tr_result_value_json(res), "42");
        cr_expect(tr_result_limits_enforced(res)->memory);
        tr_sandbox_free(sb);
}

Test(containerd, prepared_sandbox_freed_unused_leaves_nothing) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make_runtime(NULL);
        _cleanup_(tr_request_freep) tr_request *shape = NULL;
        shape_request(&shape);
        tr_sandbox *sb = NULL;
        cr_assert_eq(tr_runtime_prepare(rt, shape, NULL, &sb, NULL), 0);
        tr_sandbox_free(sb);
}

/* Egress through a warm pool: the allowlist is the pool's shape, each pooled
 * sandbox has its own proxy from prepare on, each execution's result counts
 * its own connections, and once pool and runtime are freed no proxy thread
 * or descriptor is left in this process. */
static size_t count_entries(const char *path) {
        DIR *d = opendir(path);
        size_t n = 0;
        while (d && readdir(d))
                n++;
        if (d)
                closedir(d);
        return n;
}

Test(containerd, egress_through_a_warm_pool) {
        size_t threads0 = count_entries("/proc/self/task"), fds0 = count_entries("/proc/self/fd");
        tr_runtime *rt = make_runtime(NULL);
        _cleanup_(tr_request_freep) tr_request *shape = NULL, *req = NULL;
        const char *allow[] = { "127.0.0.1:9" };
        shape_request(&shape);
        cr_assert_eq(tr_request_set_egress_allow(shape, allow, 1, NULL), 0);
        tr_pool *pool = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_pool_new(rt, shape, 1, &pool, &err), 0, "%s", err ? tr_error_message(err) : "");
        shape_request(&req);
        cr_assert_eq(tr_request_set_egress_allow(req, allow, 1, NULL), 0);
        /* Nothing listens on the host's port 9: allowed, then 502; port 10
         * is not listed: 403. */
        const char *code = "import urllib.request as u\nr = []\nfor p in (9, 10):\n"
                           "    try: u.urlopen('http://127.0.0.1:%d/' % p, timeout=10)\n"
                           "    except Exception as e: r.append(e.code)\n__out = r";
        cr_assert_eq(tr_request_set_code(req, code, strlen(code), NULL), 0);
        for (int i = 0; i < 3; i++) {
                tr_pool_stats st;
                for (int w = 0; w < 200; w++) {
                        tr_pool_get_stats(pool, &st);
                        if (st.ready)
                                break;
                        usleep(50 * 1000);
                }
                tr_result *res = NULL;
                cr_assert_eq(tr_pool_execute(pool, req, NULL, &res, &err), 0, "%s", err ? tr_error_message(err) : "");
                cr_expect_str_eq(tr_result_value_json(res), "[502,403]");
                cr_expect_str_eq(tr_result_backend_detail(res, "pool"), "warm");
                uint64_t allowed = 0, denied = 0;
                cr_expect(tr_result_egress(res, &allowed, &denied));
                cr_expect_eq(allowed, 1, "allowed %llu in execution %d", (unsigned long long) allowed, i);
                cr_expect_eq(denied, 1, "denied %llu in execution %d", (unsigned long long) denied, i);
                cr_expect_eq(tr_result_egress_denied_target_count(res), 1);
                cr_expect_str_eq(tr_result_egress_denied_target_at(res, 0), "127.0.0.1:10");
                tr_result_free(res);
        }
        /* Another list does not fit the pool's sandboxes: it runs cold, with
         * its own list. */
        const char *other[] = { "127.0.0.1:10" };
        cr_assert_eq(tr_request_set_egress_allow(req, other, 1, NULL), 0);
        tr_result *res = NULL;
        cr_assert_eq(tr_pool_execute(pool, req, NULL, &res, &err), 0, "%s", err ? tr_error_message(err) : "");
        cr_expect_str_eq(tr_result_backend_detail(res, "pool"), "cold");
        cr_expect_str_eq(tr_result_value_json(res), "[403,502]");
        tr_result_free(res);
        tr_pool_free(pool);
        tr_runtime_free(rt);
        for (int i = 0; i < 100 && count_entries("/proc/self/task") != threads0; i++)
                usleep(20 * 1000);
        cr_expect_eq(count_entries("/proc/self/task"), threads0, "threads left behind");
        cr_expect_eq(count_entries("/proc/self/fd"), fds0, "descriptors left behind");
}
