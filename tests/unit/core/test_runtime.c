/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime core against a fake backend: validation, routing, policy,
 * the value protocol, output caps and error plumbing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>

#include "core/internal.h"
#include "core/plan.h"
#include "toolruntime.h"
#include "util/handles.h"

typedef struct fake {
        tr_backend_kind kind;
        const char *out;
        const char *err;
        int exit_code;
        tr_code fail;
        int calls;
        size_t repeat;          /* write `out` this many times */
        tr_limits limits;       /* what the backend was told to enforce */
        const char *last;       /* then this */
        bool bytewise;          /* one byte per append */
        const char *err_marked; /* stderr, with "@M@" replaced, after `out` */
        bool done;              /* what tr__exec_done said at the end */
        int done_status;
} fake;

/* Write s, with each "@M@" replaced by the execution's value marker. */
static void put_to(tr_exec *ex, const char *s, bool bytewise, bool to_err) {
        void (*append)(tr_exec *, const void *, size_t) = to_err ? tr_exec_append_stderr : tr_exec_append_stdout;
        char buf[4096];
        size_t n = 0;
        for (const char *p = s; *p;) {
                if (strncmp(p, "@M@", 3) == 0) {
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s", ex->marker);
                        p += 3;
                } else if (n + 1 < sizeof(buf))
                        buf[n++] = *p++;
        }
        for (size_t i = 0; bytewise && i < n; i++)
                append(ex, buf + i, 1);
        if (!bytewise)
                append(ex, buf, n);
}

static void put(tr_exec *ex, const char *s, bool bytewise) {
        put_to(ex, s, bytewise, false);
}

static tr_backend_kind fake_kind(void *self) {
        return ((fake *) self)->kind;
}

static int fake_execute(void *self, tr_exec *ex, tr_error **ret_err) {
        fake *f = self;
        f->calls++;
        f->limits = *tr_exec_limits(ex);
        for (size_t i = 0; i < (f->repeat ? f->repeat : 1); i++)
                if (f->out)
                        put(ex, f->out, f->bytewise);
        if (f->last)
                put(ex, f->last, f->bytewise);
        if (f->err)
                tr_exec_append_stderr(ex, f->err, strlen(f->err));
        if (f->err_marked)
                put_to(ex, f->err_marked, f->bytewise, true);
        f->done = tr__exec_done(ex, &f->done_status);
        if (f->done) {
                eventfd_t v = 0;
                cr_assert_eq(eventfd_read(tr__exec_done_fd(ex), &v), 0, "the done fd is readable");
        }
        tr_result_set_exit_code(tr_exec_result(ex), f->exit_code);
        tr_result_set_backend_detail(tr_exec_result(ex), "profile", tr_profile_name(tr_exec_profile(ex)), NULL);
        if (f->fail != TR_OK)
                return tr_error_set(ret_err, f->fail, f->kind, "fake.run", "fake failure");
        return 0;
}

static const tr_backend_ops fake_ops = { .kind = fake_kind, .execute = fake_execute };

static tr_runtime *rt;
static tr_gateway *gw;
static tr_request *req;
static fake host, ctrd;

static void setup(void) {
        host = (fake){ .kind = TR_BACKEND_UNSAFE_HOST, .out = "hello\n" };
        ctrd = (fake){ .kind = TR_BACKEND_CONTAINERD, .out = "sandboxed\n" };
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        tr_backend *b = NULL;
        cr_assert_eq(tr_backend_new(&fake_ops, &host, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        cr_assert_eq(tr_backend_new(&fake_ops, &ctrd, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        cr_assert_eq(tr_gateway_new_empty(&gw, NULL), 0);
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, "print(1)", 8, NULL), 0);
        tr_request_set_gateway(req, gw);
}

static void teardown(void) {
        tr_request_free(req);
        tr_gateway_free(gw);
        tr_runtime_free(rt);
}

TestSuite(runtime, .init = setup, .fini = teardown);

static tr_code run(tr_result **ret_res) {
        tr_error *err = NULL;
        tr_result *res = NULL;
        int r = tr_runtime_execute(rt, req, NULL, &res, &err);
        tr_code code = r < 0 ? tr_error_code(err) : TR_OK;
        if (r < 0)
                cr_assert_neq(err, NULL);
        tr_error_free(err);
        if (ret_res)
                *ret_res = res;
        else
                tr_result_free(res);
        return code;
}

Test(runtime, default_profile_routes_to_containerd) {
        tr_result *res = NULL;
        cr_assert_eq(run(&res), TR_OK);
        cr_assert_eq(ctrd.calls, 1);
        cr_assert_eq(host.calls, 0);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "sandboxed\n");
        cr_assert_str_eq(tr_result_backend_detail(res, "profile"), "standard");
        cr_assert_eq(tr_result_backend_kind(res), TR_BACKEND_CONTAINERD);
        tr_result_free(res);
}

Test(runtime, dev_routes_to_unsafe_host) {
        tr_request_set_profile(req, TR_PROFILE_DEV);
        cr_assert_eq(run(NULL), TR_OK);
        cr_assert_eq(host.calls, 1);
}

Test(runtime, unsafe_host_denied_for_standard_and_hardened) {
        tr_runtime_route(rt, TR_PROFILE_STANDARD, TR_BACKEND_UNSAFE_HOST);
        tr_runtime_route(rt, TR_PROFILE_HARDENED, TR_BACKEND_UNSAFE_HOST);
        tr_request_set_profile(req, TR_PROFILE_STANDARD);
        cr_assert_eq(run(NULL), TR_E_BACKEND_DENIED);
        tr_request_set_profile(req, TR_PROFILE_HARDENED);
        cr_assert_eq(run(NULL), TR_E_BACKEND_DENIED);
        cr_assert_eq(host.calls, 0);
        tr_runtime_deny_unsafe_host(rt, TR_PROFILE_STANDARD, false);
        tr_request_set_profile(req, TR_PROFILE_STANDARD);
        cr_assert_eq(run(NULL), TR_OK);
        cr_assert_eq(host.calls, 1);
}

Test(runtime, missing_backend_is_runtime_unavailable) {
        tr_runtime_route(rt, TR_PROFILE_HARDENED, TR_BACKEND_KATA);
        tr_request_set_profile(req, TR_PROFILE_HARDENED);
        cr_assert_eq(run(NULL), TR_E_RUNTIME_UNAVAILABLE);
        tr_runtime_route(rt, TR_PROFILE_HARDENED, TR_BACKEND_NONE);
        cr_assert_eq(run(NULL), TR_E_RUNTIME_UNAVAILABLE);
}

Test(runtime, validation_happens_before_any_backend) {
        tr_request_set_code(req, "", 0, NULL);
        cr_assert_eq(run(NULL), TR_E_MISSING_CODE);
        tr_request_set_code(req, "  \n\t", 4, NULL);
        cr_assert_eq(run(NULL), TR_E_MISSING_CODE);
        tr_request_set_code(req, "x", 1, NULL);
        tr_request_set_gateway(req, NULL);
        cr_assert_eq(run(NULL), TR_E_MISSING_GATEWAY);
        tr_request_set_gateway(req, gw);
        tr_limits l = { .pids_max = -2 };
        tr_request_set_limits(req, &l);
        cr_assert_eq(run(NULL), TR_E_INVALID_LIMITS);
        l = (tr_limits){ .memory_bytes = -5 };
        tr_request_set_limits(req, &l);
        cr_assert_eq(run(NULL), TR_E_INVALID_LIMITS);
        l = (tr_limits){ .cpu_quota_ms = TR_LIMIT_MAX + 1 };
        tr_request_set_limits(req, &l);
        cr_assert_eq(run(NULL), TR_E_INVALID_LIMITS, "limits too large to scale safely");
        tr_request_set_limits(req, NULL);
        tr_request_set_timeout_ms(req, TR_TIMEOUT_MAX_MS + 1);
        cr_assert_eq(run(NULL), TR_E_INVALID_REQUEST);
        tr_request_set_timeout_ms(req, 0);
        tr_request_set_language(req, "cobol", NULL);
        cr_assert_eq(run(NULL), TR_E_INVALID_REQUEST);
        tr_request_set_language(req, "sh", NULL);
        tr_request_set_timeout_ms(req, -1);
        cr_assert_eq(run(NULL), TR_E_INVALID_REQUEST);
        cr_assert_eq(host.calls + ctrd.calls, 0);
}

Test(runtime, value_line_is_taken_out_of_stdout) {
        ctrd.out = "some output\n\n@M@{\"a\": [1, 2]}\n";
        tr_result *res = NULL;
        cr_assert_eq(run(&res), TR_OK);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "some output\n");
        cr_assert_str_eq(tr_result_value_json(res), "{\"a\":[1,2]}");
        tr_result_free(res);
}

Test(runtime, value_alone_leaves_empty_stdout) {
        ctrd.out = "\n@M@42\n";
        tr_result *res = NULL;
        cr_assert_eq(run(&res), TR_OK);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "");
        cr_assert_str_eq(tr_result_value_json(res), "42");
        tr_result_free(res);
}

Test(runtime, value_line_found_in_any_chunking_and_position) {
        ctrd.out = "a\n@M@[1]\nb\n\n@M@\"last wins\"\nc";
        ctrd.bytewise = true;
        tr_result *res = NULL;
        cr_assert_eq(run(&res), TR_OK);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "ab\nc");
        cr_assert_str_eq(tr_result_value_json(res), "\"last wins\"");
        tr_result_free(res);
}

Test(runtime, forged_value_lines_stay_output) {
        /* The old fixed marker, a guessed one, and a real prefix cut short
         * at the end of the stream: all plain output, no value. */
        ctrd.out = "\n__OUT__:1\n\n__TR_VALUE_00000000000000000000000000000000__:2\n\n__TR_VALUE_";
        ctrd.bytewise = true;
        tr_result *res = NULL;
        cr_assert_eq(run(&res), TR_OK);
        cr_assert_null(tr_result_value_json(res));
        cr_assert_str_eq(tr_result_stdout(res, NULL), ctrd.out);
        tr_result_free(res);
}

/* The runner's done lines (runner.h) leave both streams, in any chunking,
 * and tell the backend the status; the value line before them stays. */
Test(runtime, done_lines_are_taken_out_and_give_the_status) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
                ctrd.out = "out\n\n@M@{\"v\":1}\n\n@M@#7\n";
                ctrd.err_marked = "err\n\n@M@#\n";
                ctrd.bytewise = bytewise;
                tr_result *res = NULL;
                cr_assert_eq(run(&res), TR_OK);
                cr_expect_str_eq(tr_result_stdout(res, NULL), "out\n");
                cr_expect_str_eq(tr_result_stderr(res, NULL), "err\n");
                cr_expect_str_eq(tr_result_value_json(res), "{\"v\":1}");
                cr_expect(ctrd.done, "done (bytewise %d)", bytewise);
                cr_expect_eq(ctrd.done_status, 7);
                tr_result_free(res);
        }
}

/* Only both lines make a done; a half-written or malformed one is output. */
Test(runtime, partial_done_lines_are_not_done) {
        ctrd.out = "\n@M@#7\n";
        ctrd.err_marked = "e\n\n@M@\n\n@M@#x\n\n@M";
        ctrd.bytewise = true;
        tr_result *res = NULL;
        cr_assert_eq(run(&res), TR_OK);
        cr_expect(!ctrd.done);
        cr_expect_str_eq(tr_result_stdout(res, NULL), "");
        tr_result_free(res);
        ctrd.bytewise = false;
        ctrd.out = "\n@M@#300\n";
        ctrd.err_marked = "\n@M@#\n";
        cr_assert_eq(run(&res), TR_OK);
        cr_expect(!ctrd.done, "a status over 255 is no done line");
        tr_result_free(res);
}

/* A snippet that sends one stream into the other (sh's exec 2>&1 or
 * 1>&2) moves a done line with it: still no value, no marker in the
 * output, and still done. */
Test(runtime, done_lines_in_the_other_stream) {
        ctrd.out = "hi\n\n@M@#\n\n@M@#0\n";
        tr_result *res = NULL;
        cr_assert_eq(run(&res), TR_OK);
        cr_expect_str_eq(tr_result_stdout(res, NULL), "hi\n");
        cr_expect_null(tr_result_value_json(res));
        cr_expect(ctrd.done);
        tr_result_free(res);
        for (int bytewise = 0; bytewise < 2; bytewise++) {
                ctrd.out = "";
                ctrd.bytewise = bytewise;
                ctrd.err_marked = "e\n\n@M@#\n\n@M@#3\n";
                cr_assert_eq(run(&res), TR_OK);
                cr_expect_str_eq(tr_result_stderr(res, NULL), "e\n");
                cr_expect(ctrd.done, "bytewise %d", bytewise);
                cr_expect_eq(ctrd.done_status, 3);
                tr_result_free(res);
        }
}

/* A done line is told apart however small the output cap. */
Test(runtime, done_line_under_a_tiny_output_cap) {
        tr_request_set_max_output(req, 1);
        ctrd.out = "\n@M@#7\n";
        ctrd.err_marked = "\n@M@#\n";
        tr_result *res = NULL;
        cr_assert_eq(run(&res), TR_OK);
        cr_expect_null(tr_result_value_json(res));
        cr_expect(ctrd.done);
        cr_expect_eq(ctrd.done_status, 7);
        tr_result_free(res);
}

Test(runtime, value_that_is_not_json_is_an_error) {
        ctrd.out = "x\n@M@{not json\n";
        tr_result *res = NULL;
        tr_error *err = NULL;
        cr_assert_lt(tr_runtime_execute(rt, req, NULL, &res, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        cr_assert_str_eq(tr_error_op(err), "value");
        cr_assert_null(tr_result_value_json(res));
        cr_assert_str_eq(tr_result_stdout(res, NULL), "x");
        tr_error_free(err);
        tr_result_free(res);
}

Test(runtime, output_is_capped_and_value_survives_a_flood) {
        tr_request_set_max_output(req, 1000);
        ctrd.out = "0123456789012345678901234567890123456789\n";
        ctrd.repeat = 100000; /* 4 MB */
        ctrd.last = "\n@M@{\"n\":7}\n";
        tr_result *res = NULL;
        cr_assert_eq(run(&res), TR_OK);
        size_t n = 0;
        const char *o = tr_result_stdout(res, &n);
        cr_assert_eq(n, 1000);
        cr_assert_null(strstr(o, "__TR_VALUE_"));
        cr_assert(tr_result_stdout_truncated(res));
        cr_assert_not(tr_result_stderr_truncated(res));
        cr_assert_str_eq(tr_result_value_json(res), "{\"n\":7}");
        tr_result_free(res);
}

Test(runtime, value_over_the_cap_is_an_error_naming_it) {
        tr_request_set_max_output(req, 1000);
        static char big[2100];
        memcpy(big, "\n@M@\"", 5);
        memset(big + 5, 'v', 2000);
        memcpy(big + 2005, "\"\n", 3);
        ctrd.out = big;
        tr_result *res = NULL;
        tr_error *err = NULL;
        cr_assert_lt(tr_runtime_execute(rt, req, NULL, &res, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_RESOURCE_LIMIT);
        cr_assert_not_null(strstr(tr_error_message(err), "1000 bytes"), "%s", tr_error_message(err));
        cr_assert_null(tr_result_value_json(res));
        cr_assert_str_eq(tr_result_stdout(res, NULL), "");
        tr_error_free(err);
        tr_result_free(res);
}

Test(runtime, errors_keep_partial_output_and_carry_fields) {
        ctrd.fail = TR_E_DAEMON_UNAVAILABLE;
        ctrd.out = "partial";
        tr_error *err = NULL;
        tr_result *res = NULL;
        cr_assert_lt(tr_runtime_execute(rt, req, NULL, &res, &err), 0);
        cr_assert_not_null(res);
        cr_assert_str_eq(tr_result_stdout(res, NULL), "partial");
        cr_assert_eq(tr_error_code(err), TR_E_DAEMON_UNAVAILABLE);
        cr_assert_str_eq(tr_error_code_name(err), "daemon_unavailable");
        cr_assert_str_eq(tr_error_op(err), "fake.run");
        cr_assert_eq(tr_error_backend(err), TR_BACKEND_CONTAINERD);
        cr_assert(tr_error_retryable(err));
        tr_error_free(err);
        tr_result_free(res);
}

Test(runtime, second_backend_of_a_kind_replaces_the_first) {
        fake other = { .kind = TR_BACKEND_CONTAINERD, .out = "other\n" };
        tr_backend *b = NULL;
        cr_assert_eq(tr_backend_new(&fake_ops, &other, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        cr_assert_eq(run(NULL), TR_OK);
        cr_assert_eq(other.calls, 1);
        cr_assert_eq(ctrd.calls, 0);
}

#define MIB (1024LL * 1024)

Test(runtime, standard_defaults_fill_unset_limits_only) {
        /* Nothing set: the standard profile's table, on whatever backend. */
        cr_assert_eq(run(NULL), TR_OK);
        cr_expect_eq(ctrd.limits.memory_bytes, 512 * MIB);
        cr_expect_eq(ctrd.limits.pids_max, 128);
        cr_expect_eq(ctrd.limits.cpu_quota_ms, 100);
        cr_expect_eq(ctrd.limits.disk_bytes, 64 * MIB);
        cr_expect_eq(ctrd.limits.max_tool_calls, 0);
        cr_expect_eq(ctrd.limits.max_chain_steps, 0);
        /* Explicit values win, an explicit 0 stays unlimited, and the
         * request the caller holds is not touched. */
        tr_limits l;
        tr_limits_init(&l);
        l.memory_bytes = 0;
        l.pids_max = 7;
        tr_request_set_limits(req, &l);
        cr_assert_eq(run(NULL), TR_OK);
        cr_expect_eq(ctrd.limits.memory_bytes, 0);
        cr_expect_eq(ctrd.limits.pids_max, 7);
        cr_expect_eq(ctrd.limits.cpu_quota_ms, 100);
        cr_expect_eq(tr_request_limits(req)->cpu_quota_ms, TR_LIMIT_UNSET);
        cr_expect_eq(tr_request_limits(req)->memory_bytes, 0);
}

Test(runtime, hardened_defaults_and_refuses_unlimited) {
        tr_request_set_profile(req, TR_PROFILE_HARDENED);
        cr_assert_eq(run(NULL), TR_OK);
        cr_expect_eq(ctrd.limits.memory_bytes, 256 * MIB);
        cr_expect_eq(ctrd.limits.pids_max, 64);
        cr_expect_eq(ctrd.limits.cpu_quota_ms, 50);
        cr_expect_eq(ctrd.limits.disk_bytes, 16 * MIB);
        int calls = ctrd.calls;
        for (int i = 0; i < 4; i++) {
                tr_limits l;
                tr_limits_init(&l);
                int64_t *f[] = { &l.memory_bytes, &l.pids_max, &l.cpu_quota_ms, &l.disk_bytes };
                *f[i] = 0;
                tr_request_set_limits(req, &l);
                cr_expect_eq(run(NULL), TR_E_INVALID_LIMITS, "hardened must refuse an unlimited field %d", i);
        }
        cr_expect_eq(ctrd.calls, calls, "a refused request reaches no backend");
        /* Gateway limits are not resource limits: 0 stays allowed. */
        tr_limits l;
        tr_limits_init(&l);
        l.max_tool_calls = 0;
        tr_request_set_limits(req, &l);
        cr_expect_eq(run(NULL), TR_OK);
}

Test(runtime, dev_has_no_resource_defaults) {
        tr_request_set_profile(req, TR_PROFILE_DEV);
        cr_assert_eq(run(NULL), TR_OK);
        cr_expect_eq(host.limits.memory_bytes, 0);
        cr_expect_eq(host.limits.pids_max, 0);
        cr_expect_eq(host.limits.cpu_quota_ms, 0);
        cr_expect_eq(host.limits.disk_bytes, 0);
        tr_limits d;
        cr_expect_eq(tr_profile_default_limits(TR_PROFILE_DEV, &d), 0);
        cr_expect_eq(d.memory_bytes, 0);
        cr_expect_eq(tr_profile_default_limits(TR_PROFILE_DEFAULT, &d), -EINVAL);
        cr_expect_eq(tr_profile_default_limits(TR_PROFILE_STANDARD, &d), 0);
        cr_expect_eq(d.memory_bytes, 512 * MIB);
}

Test(runtime, default_profile_follows_the_runtime) {
        tr_runtime_set_default_profile(rt, TR_PROFILE_HARDENED);
        cr_assert_eq(run(NULL), TR_OK);
        cr_expect_eq(ctrd.limits.memory_bytes, 256 * MIB);
        /* Routing the default profile routes the runtime's default. */
        tr_runtime_route(rt, TR_PROFILE_DEFAULT, TR_BACKEND_UNSAFE_HOST);
        cr_expect_eq(tr_runtime_route_of(rt, TR_PROFILE_HARDENED), TR_BACKEND_UNSAFE_HOST);
}
