/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox lifecycle against a fake lifecycle backend: prepare without
 * code, one run with it, destroy exactly once whatever happened; and the
 * output callback seeing output as it is appended. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/internal.h"
#include "toolruntime.h"
#include "util/buf.h"
#include "util/handles.h"

typedef struct fake {
        int prepares, runs, destroys;
        bool saw_code_at_prepare;
        tr_code fail_prepare;
        void *token; /* what prepare handed out; run and destroy must get it */
        bool token_ok;
} fake;

static int fake_token;

static tr_backend_kind fake_kind(void *self) {
        return TR_BACKEND_CONTAINERD;
}

static int fake_prepare(void *self, tr_exec *ex, void **ret_sandbox, tr_error **ret_err) {
        fake *f = self;
        f->prepares++;
        size_t n = 0;
        f->saw_code_at_prepare = tr_request_code(tr_exec_request(ex), &n) != NULL && n > 0;
        if (f->fail_prepare != TR_OK)
                return tr_error_set(ret_err, f->fail_prepare, TR_BACKEND_CONTAINERD, "fake.prepare", "no");
        *ret_sandbox = &fake_token;
        return 0;
}

static int fake_run(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err) {
        fake *f = self;
        f->runs++;
        f->token_ok = sandbox == &fake_token;
        size_t n = 0;
        const char *code = tr_request_code(tr_exec_request(ex), &n);
        tr_exec_append_stdout(ex, code, n);
        tr_exec_append_stderr(ex, "e", 1);
        tr_result_set_exit_code(tr_exec_result(ex), 0);
        return 0;
}

static void fake_destroy(void *self, void *sandbox, tr_exec *ex) {
        fake *f = self;
        f->destroys++;
        f->token_ok = f->token_ok && sandbox == &fake_token;
}

static const tr_backend_ops fake_ops = {
        .kind = fake_kind, .prepare = fake_prepare, .run = fake_run, .destroy = fake_destroy
};

static tr_runtime *rt;
static tr_gateway *gw;
static tr_request *req;
static fake f;

static void setup(void) {
        f = (fake){ 0 };
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        tr_backend *b = NULL;
        cr_assert_eq(tr_backend_new(&fake_ops, &f, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        cr_assert_eq(tr_gateway_new_empty(&gw, NULL), 0);
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        tr_request_set_gateway(req, gw);
}

static void teardown(void) {
        tr_request_free(req);
        tr_gateway_free(gw);
        tr_runtime_free(rt);
}

TestSuite(sandbox, .init = setup, .fini = teardown, .timeout = 30);

Test(sandbox, execute_is_prepare_run_destroy_once_each) {
        cr_assert_eq(tr_request_set_code(req, "hi\n", 3, NULL), 0);
        tr_result *res = NULL;
        cr_assert_eq(tr_runtime_execute(rt, req, NULL, &res, NULL), 0);
        cr_expect_eq(f.prepares, 1);
        cr_expect_eq(f.runs, 1);
        cr_expect_eq(f.destroys, 1);
        cr_expect(f.token_ok);
        size_t n = 0;
        cr_expect_str_eq(tr_result_stdout(res, &n), "hi\n");
        tr_result_free(res);
}

Test(sandbox, prepared_ahead_without_code_then_run_once) {
        tr_sandbox *sb = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_runtime_prepare(rt, req, NULL, &sb, &err), 0, "%s", err ? tr_error_message(err) : "");
        cr_expect_eq(f.prepares, 1);
        cr_expect_not(f.saw_code_at_prepare);
        cr_expect_eq(f.runs, 0);

        cr_assert_eq(tr_request_set_code(req, "x\n", 2, NULL), 0);
        tr_result *res = NULL;
        cr_assert_eq(tr_sandbox_run(sb, req, NULL, &res, NULL), 0);
        size_t n = 0;
        cr_expect_str_eq(tr_result_stdout(res, &n), "x\n");
        tr_result_free(res);
        /* One execution per sandbox, ever. */
        cr_expect_lt(tr_sandbox_run(sb, req, NULL, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        tr_error_free(err);
        cr_expect_eq(f.runs, 1);
        cr_expect_eq(f.destroys, 0);
        tr_sandbox_free(sb);
        cr_expect_eq(f.destroys, 1);
        cr_expect(f.token_ok);
}

Test(sandbox, run_request_must_fit_the_shape) {
        tr_sandbox *sb = NULL;
        cr_assert_eq(tr_runtime_prepare(rt, req, NULL, &sb, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, "x", 1, NULL), 0);
        cr_assert_eq(tr_request_set_language(req, "sh", NULL), 0);
        tr_error *err = NULL;
        tr_result *res = NULL;
        cr_expect_lt(tr_sandbox_run(sb, req, NULL, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        cr_expect_neq(strstr(tr_error_message(err), "language"), NULL);
        tr_error_free(err);
        cr_expect_eq(f.runs, 0);
        /* A refused request does not use the sandbox up. */
        cr_assert_eq(tr_request_set_language(req, "python", NULL), 0);
        cr_expect_eq(tr_sandbox_run(sb, req, NULL, &res, NULL), 0);
        tr_result_free(res);
        tr_sandbox_free(sb);
        cr_expect_eq(f.destroys, 1);
}

Test(sandbox, failed_prepare_destroys_nothing_and_reports) {
        f.fail_prepare = TR_E_DAEMON_UNAVAILABLE;
        tr_sandbox *sb = NULL;
        tr_error *err = NULL;
        cr_expect_lt(tr_runtime_prepare(rt, req, NULL, &sb, &err), 0);
        cr_expect_eq(sb, NULL);
        cr_expect_eq(tr_error_code(err), TR_E_DAEMON_UNAVAILABLE);
        tr_error_free(err);
        err = NULL;
        cr_assert_eq(tr_request_set_code(req, "x", 1, NULL), 0);
        tr_result *res = NULL;
        cr_expect_lt(tr_runtime_execute(rt, req, NULL, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_DAEMON_UNAVAILABLE);
        cr_expect_neq(res, NULL, "the partial result survives a failed prepare");
        tr_error_free(err);
        tr_result_free(res);
        cr_expect_eq(f.destroys, 0);
        cr_expect_eq(f.runs, 0);
}

typedef struct seen {
        tr__cbuf out, err;
        int calls;
} seen;

static void on_output(void *userdata, tr_stream stream, const char *data, size_t len) {
        seen *s = userdata;
        s->calls++;
        tr__cbuf_append(stream == TR_STREAM_STDERR ? &s->err : &s->out, data, len);
}

Test(sandbox, output_callback_sees_what_the_result_holds_as_it_comes) {
        seen s;
        tr__cbuf_init(&s.out, 1 << 20);
        tr__cbuf_init(&s.err, 1 << 20);
        s.calls = 0;
        tr_request_set_output_callback(req, on_output, &s);
        cr_assert_eq(tr_request_set_code(req, "line 1\nline 2\n", 14, NULL), 0);
        tr_result *res = NULL;
        cr_assert_eq(tr_runtime_execute(rt, req, NULL, &res, NULL), 0);
        size_t n = 0;
        const char *out = tr_result_stdout(res, &n);
        cr_expect_eq(s.out.len, n);
        cr_expect_eq(memcmp(s.out.data, out, n), 0);
        cr_expect_str_eq(s.err.data, "e");
        cr_expect_geq(s.calls, 2);
        tr_result_free(res);
        tr__cbuf_done(&s.out);
        tr__cbuf_done(&s.err);
}

/* The egress allowlist is part of the shape: a sandbox (a pooled one
 * above all) prepared for one list never runs a request with another, and
 * the hardened profile refuses a list before any backend is reached. */
Test(sandbox, egress_allowlist_is_part_of_the_shape) {
        const char *list[] = { "Example.com:443", "127.0.0.1:8080" };
        cr_assert_eq(tr_request_set_egress_allow(req, list, 2, NULL), 0);
        tr_sandbox *sb = NULL;
        cr_assert_eq(tr_runtime_prepare(rt, req, NULL, &sb, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, "x", 1, NULL), 0);
        /* The same list in canonical form fits; another list does not. */
        const char *same[] = { "example.COM:443", "127.0.0.1:8080" };
        cr_assert_eq(tr_request_set_egress_allow(req, same, 2, NULL), 0);
        cr_expect(tr__sandbox_fits(sb, req));
        cr_assert_eq(tr_request_set_egress_allow(req, list, 1, NULL), 0);
        cr_expect_not(tr__sandbox_fits(sb, req));
        cr_assert_eq(tr_request_set_egress_allow(req, NULL, 0, NULL), 0);
        cr_expect_not(tr__sandbox_fits(sb, req));
        tr_error *err = NULL;
        tr_result *res = NULL;
        cr_expect_lt(tr_sandbox_run(sb, req, NULL, &res, &err), 0);
        cr_expect_neq(strstr(tr_error_message(err), "egress"), NULL, "%s", tr_error_message(err));
        tr_error_free(err);
        err = NULL;
        tr_sandbox_free(sb);
        /* hardened: refused before prepare. */
        cr_assert_eq(tr_request_set_egress_allow(req, list, 1, NULL), 0);
        tr_request_set_profile(req, TR_PROFILE_HARDENED);
        int prepares = f.prepares;
        cr_expect_lt(tr_runtime_execute(rt, req, NULL, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        cr_expect_eq(f.prepares, prepares);
        tr_error_free(err);
        tr_result_free(res);
}
