/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sessions (tr_session_*) on the kata backend: one real microVM (TCG on
 * these machines) whose interpreter lives across executions.  In one
 * session: state persists (`x = 41`, then `__out = x + 1` is 42), stdin
 * and stderr per execution, a tool call through the gateway relay, a file
 * uploaded then read by the snippet and one it writes downloaded
 * byte-exact, a timeout interrupts the snippet and the session lives on
 * (x still there), and an interpreter killed ends the session
 * (TR_E_SESSION_GONE); afterwards no QEMU is left.  Same VM files and
 * skip rules as test_vm.c.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "toolruntime.h"
#include "util/handles.h"

static const char *env_or(const char *name, const char *def) {
        const char *v = getenv(name);
        return v && *v ? v : def;
}

static tr_kata_config vm_config(void) {
        tr_kata_config cfg = {
                .size = sizeof(tr_kata_config),
                .kernel_path = env_or("TR_VM_KERNEL", TR_KATA_DEFAULT_KERNEL),
                .initrd_path = env_or("TR_VM_INITRD", TR_KATA_DEFAULT_INITRD),
                .image_path = env_or("TR_VM_IMAGE", TR_KATA_DEFAULT_IMAGE_PATH),
        };
        return cfg;
}

static void need_vm(void) {
        tr_kata_config cfg = vm_config();
        tr_error *e = NULL;
        if (tr_kata_check(&cfg, NULL, &e) < 0) {
                const char *ci = getenv("CI");
                if (ci && strcmp(ci, "true") == 0)
                        cr_assert_fail("kata VM not available under CI: %s", tr_error_message(e));
                tr_error_free(e);
                cr_skip_test("kata VM files or QEMU missing");
        }
}

/* No child of ours may survive the session (QEMU is our only child). */
static int count_children(void) {
        DIR *d = opendir("/proc");
        int n = 0;
        struct dirent *de;
        char path[300], buf[512];
        while (d && (de = readdir(d))) {
                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                int fd = open(path, O_RDONLY);
                if (fd < 0)
                        continue;
                ssize_t k = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (k <= 0)
                        continue;
                buf[k] = 0;
                char *p = strrchr(buf, ')');
                int ppid = 0;
                char state;
                if (p && sscanf(p + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid())
                        n++;
        }
        if (d)
                closedir(d);
        return n;
}

/* A gateway with one namespace, so a relayed call sees real data. */
static int gw_list_namespaces(void *self, const tr_call_ctx *ctx, char **ret_json, tr_error **ret_err) {
        *ret_json = strdup("[\"sessiontest\"]");
        return *ret_json ? 0 : -ENOMEM;
}
static int gw_none(void *self, const tr_call_ctx *ctx, const char *a, char **ret_json, tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "tool", "no tool");
}
static int gw_search(void *self, const tr_call_ctx *ctx, const char *q, int limit, char **ret_json,
                     tr_error **ret_err) {
        *ret_json = strdup("[]");
        return *ret_json ? 0 : -ENOMEM;
}
static int gw_describe(void *self, const tr_call_ctx *ctx, const char *id, tr_detail_level l, char **ret_json,
                       tr_error **ret_err) {
        return gw_none(self, ctx, id, ret_json, ret_err);
}
static int gw_examples(void *self, const tr_call_ctx *ctx, const char *id, int max, char **ret_json,
                       tr_error **ret_err) {
        return gw_none(self, ctx, id, ret_json, ret_err);
}
static int gw_run(void *self, const tr_call_ctx *ctx, const char *id, const char *args, char **ret_json,
                  tr_error **ret_err) {
        return gw_none(self, ctx, id, ret_json, ret_err);
}
static const tr_gateway_ops gw_ops = {
        .search_tools = gw_search,
        .list_namespaces = gw_list_namespaces,
        .describe_tool = gw_describe,
        .list_tool_examples = gw_examples,
        .run_tool = gw_run,
        .run_chain = gw_none,
};

static tr_gateway *gw;

static int sx(tr_session *s, const char *code, const char *in, int64_t timeout_ms, tr_result **res, tr_error **err) {
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, code, strlen(code), NULL), 0);
        if (in)
                cr_assert_eq(tr_request_set_stdin(req, in, strlen(in), NULL), 0);
        tr_request_set_timeout_ms(req, timeout_ms ? timeout_ms : 60000);
        tr_request_set_gateway(req, gw);
        *res = NULL;
        *err = NULL;
        return tr_session_execute(s, req, NULL, res, err);
}

static const char *ok(tr_session *s, const char *code) {
        static char v[512];
        tr_result *res = NULL;
        tr_error *err = NULL;
        int r = sx(s, code, NULL, 0, &res, &err);
        size_t n;
        cr_assert_eq(r, 0, "%s: %s: %s (stderr %s)", code, tr_error_code_name(err), tr_error_message(err),
                     res ? tr_result_stderr(res, &n) : "");
        cr_expect_str_eq(tr_result_backend_detail(res, "session"), "alive");
        snprintf(v, sizeof v, "%s", tr_result_value_json(res) ? tr_result_value_json(res) : "(none)");
        tr_result_free(res);
        return v;
}

Test(kata_session, state_interrupt_files_and_death, .timeout = 600) {
        need_vm();
        tr_kata_config cfg = vm_config();
        tr_backend *b = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_backend_kata_new(&cfg, &b, &err), 0, "%s", err ? tr_error_message(err) : "");
        _cleanup_(tr_runtime_freep) tr_runtime *rt = NULL;
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        tr_runtime_route(rt, TR_PROFILE_STANDARD, TR_BACKEND_KATA);
        cr_assert_eq(tr_gateway_new(&gw_ops, NULL, &gw, NULL), 0);
        _cleanup_(tr_request_freep) tr_request *shape = NULL;
        cr_assert_eq(tr_request_new(&shape, NULL), 0);
        tr_request_set_gateway(shape, gw);
        tr_request_set_timeout_ms(shape, 120000);
        tr_session *s = NULL;
        cr_assert_eq(tr_session_new(rt, shape, NULL, NULL, &s, &err), 0, "%s: %s", tr_error_code_name(err),
                     tr_error_message(err));

        cr_expect_str_eq(ok(s, "x = 41"), "(none)");
        cr_expect_str_eq(ok(s, "__out = x + 1"), "42");

        /* stdin and stderr are the execution's. */
        tr_result *res = NULL;
        cr_assert_eq(sx(s, "import sys\nprint(input(), end='')\nprint('e', file=sys.stderr, end='')\n", "hi\n", 0, &res,
                        &err),
                     0, "%s", tr_error_message(err));
        size_t n;
        cr_expect_str_eq(tr_result_stdout(res, &n), "hi");
        cr_expect_str_eq(tr_result_stderr(res, &n), "e");
        cr_expect_str_eq(tr_result_backend_detail(res, "runner"), "qemu");
        cr_expect(tr_result_limits_enforced(res)->memory, "the session's memory limit holds");
        tr_result_free(res);

        /* A tool call through the relay, bound to this execution. */
        cr_expect_str_eq(ok(s, "import socket, json, os\n"
                               "c = socket.socket(socket.AF_UNIX)\n"
                               "c.connect(os.environ['TOOLRUNTIME_GATEWAY'][5:])\n"
                               "m = json.dumps({'type': 'list_namespaces', 'id': '1', 'payload': {}}).encode()\n"
                               "c.sendall(len(m).to_bytes(4, 'big') + m)\n"
                               "h = c.recv(4, socket.MSG_WAITALL)\n"
                               "r = json.loads(c.recv(int.from_bytes(h, 'big'), socket.MSG_WAITALL))\n"
                               "c.close()\n"
                               "__out = r['payload']"),
                         "[\"sessiontest\"]");

        /* Files in and out, byte-exact (binary included). */
        static const char blob[] = "bin\x00\xff\x01 data";
        tr_session_upload *up = NULL;
        cr_assert_eq(tr_session_upload_begin(s, "in.bin", &up, &err), 0, "%s", tr_error_message(err));
        cr_assert_eq(tr_session_upload_write(up, blob, sizeof blob - 1, &err), 0, "%s", tr_error_message(err));
        cr_assert_eq(tr_session_upload_end(up, &err), 0, "%s", tr_error_message(err));
        cr_expect_str_eq(ok(s, "d = open('in.bin', 'rb').read()\n"
                               "open('out.bin', 'wb').write(d[::-1])\n"
                               "__out = len(d)"),
                         "11");
        tr_session_download *down = NULL;
        uint64_t size = 0;
        cr_assert_eq(tr_session_download_begin(s, "out.bin", &size, &down, &err), 0, "%s", tr_error_message(err));
        cr_expect_eq(size, sizeof blob - 1);
        char got[64];
        size_t len = 0, k = 0;
        do {
                cr_assert_eq(tr_session_download_read(down, got + len, sizeof got - len, &k, &err), 0, "%s",
                             tr_error_message(err));
                len += k;
        } while (k > 0 && len < sizeof got);
        tr_session_download_free(down);
        cr_expect_eq(len, sizeof blob - 1);
        for (size_t i = 0; i < len && i < sizeof blob - 1; i++)
                cr_expect_eq(got[i], blob[sizeof blob - 2 - i], "byte %zu", i);

        /* A timeout interrupts the snippet; the session and x live on. */
        int r = sx(s, "while True:\n    pass\n", NULL, 3000, &res, &err);
        cr_expect_lt(r, 0);
        cr_expect_eq(tr_error_code(err), TR_E_TIMEOUT, "got %s", tr_error_code_name(err));
        cr_expect_str_eq(tr_result_backend_detail(res, "session"), "alive");
        tr_error_free(err);
        tr_result_free(res);
        cr_expect_str_eq(ok(s, "__out = x"), "41");

        /* A killed interpreter ends the session. */
        r = sx(s, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", NULL, 0, &res, &err);
        cr_expect_lt(r, 0);
        if (res)
                cr_expect_str_eq(tr_result_backend_detail(res, "session"), "ended");
        tr_error_free(err);
        tr_result_free(res);
        err = NULL;
        cr_expect_lt(tr_session_check(s, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_SESSION_GONE, "%s", err ? tr_error_message(err) : "");
        cr_log_info("ended: %s", err ? tr_error_message(err) : "");
        tr_error_free(err);
        tr_session_free(s);
        cr_expect_eq(count_children(), 0, "QEMU must be reaped");
        tr_gateway_free(gw);
}
