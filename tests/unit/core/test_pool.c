/* SPDX-License-Identifier: Apache-2.0 */
/* Warm pools against a fake lifecycle backend: filled ahead, a fitting
 * request runs warm and one that does not runs cold (the result says
 * which), every prepared sandbox destroyed exactly once, sizes and ages
 * changed at run time, prepare failures backed off with executions still
 * served cold. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "toolruntime.h"

typedef struct fake {
        atomic_int prepares, runs, destroys;
        atomic_bool fail_prepare;
} fake;

static int fake_token;

static tr_backend_kind fake_kind(void *self) {
        return TR_BACKEND_CONTAINERD;
}

static int fake_prepare(void *self, tr_exec *ex, void **ret_sandbox, tr_error **ret_err) {
        fake *f = self;
        if (atomic_load(&f->fail_prepare))
                return tr_error_set(ret_err, TR_E_DAEMON_UNAVAILABLE, TR_BACKEND_CONTAINERD, "fake.prepare", "down");
        atomic_fetch_add(&f->prepares, 1);
        *ret_sandbox = &fake_token;
        return 0;
}

static int fake_run(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err) {
        fake *f = self;
        atomic_fetch_add(&f->runs, 1);
        size_t n = 0;
        const char *code = tr_request_code(tr_exec_request(ex), &n);
        tr_exec_append_stdout(ex, code, n);
        tr_result_set_exit_code(tr_exec_result(ex), 0);
        return 0;
}

static void fake_destroy(void *self, void *sandbox, tr_exec *ex) {
        fake *f = self;
        atomic_fetch_add(&f->destroys, 1);
}

static const tr_backend_ops fake_ops = {
        .kind = fake_kind, .prepare = fake_prepare, .run = fake_run, .destroy = fake_destroy
};

static tr_runtime *rt;
static tr_gateway *gw;
static tr_request *shape, *req;
static fake f;

static void setup(void) {
        memset(&f, 0, sizeof(f));
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        tr_backend *b = NULL;
        cr_assert_eq(tr_backend_new(&fake_ops, &f, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        cr_assert_eq(tr_gateway_new_empty(&gw, NULL), 0);
        cr_assert_eq(tr_request_new(&shape, NULL), 0);
        tr_request_set_gateway(shape, gw);
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        tr_request_set_gateway(req, gw);
        cr_assert_eq(tr_request_set_code(req, "hi\n", 3, NULL), 0);
}

static void teardown(void) {
        tr_request_free(req);
        tr_request_free(shape);
        tr_gateway_free(gw);
        tr_runtime_free(rt);
}

TestSuite(pool, .init = setup, .fini = teardown, .timeout = 60);

/* Wait (up to 10 s) until the pool holds `ready` sandboxes. */
static bool wait_ready(tr_pool *p, size_t ready) {
        for (int i = 0; i < 1000; i++) {
                tr_pool_stats st;
                tr_pool_get_stats(p, &st);
                if (st.ready == ready && st.preparing == 0)
                        return true;
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        return false;
}

static const char *pool_of(const tr_result *res) {
        const char *v = tr_result_backend_detail(res, "pool");
        return v ? v : "(none)";
}

Test(pool, fills_ahead_runs_warm_and_destroys_each_once) {
        tr_pool *p = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_pool_new(rt, shape, 2, &p, &err), 0, "%s", err ? tr_error_message(err) : "");
        cr_assert(wait_ready(p, 2));
        tr_pool_stats st;
        tr_pool_get_stats(p, &st);
        cr_expect(st.filled_once);
        cr_expect_eq(atomic_load(&f.runs), 0, "nothing runs before a request");

        tr_result *res = NULL;
        cr_assert_eq(tr_pool_execute(p, req, NULL, &res, NULL), 0);
        cr_expect_str_eq(pool_of(res), "warm");
        size_t n = 0;
        cr_expect_str_eq(tr_result_stdout(res, &n), "hi\n");
        tr_result_free(res);
        /* Refilled: one used, one more prepared. */
        cr_assert(wait_ready(p, 2));
        cr_expect_eq(atomic_load(&f.prepares), 3);
        tr_pool_free(p);
        cr_expect_eq(atomic_load(&f.destroys), atomic_load(&f.prepares), "every sandbox destroyed once");
}

Test(pool, a_request_that_does_not_fit_runs_cold) {
        tr_pool *p = NULL;
        cr_assert_eq(tr_pool_new(rt, shape, 1, &p, NULL), 0);
        cr_assert(wait_ready(p, 1));
        cr_assert_eq(tr_request_set_language(req, "sh", NULL), 0);
        tr_result *res = NULL;
        cr_assert_eq(tr_pool_execute(p, req, NULL, &res, NULL), 0);
        cr_expect_str_eq(pool_of(res), "cold");
        tr_result_free(res);
        tr_limits lim;
        tr_limits_init(&lim);
        lim.memory_bytes = 100 * 1024 * 1024;
        cr_assert_eq(tr_request_set_language(req, "python", NULL), 0);
        tr_request_set_limits(req, &lim);
        cr_assert_eq(tr_pool_execute(p, req, NULL, &res, NULL), 0);
        cr_expect_str_eq(pool_of(res), "cold");
        tr_result_free(res);
        tr_pool_stats st;
        tr_pool_get_stats(p, &st);
        cr_expect_eq(st.cold, 2);
        cr_expect_eq(st.warm, 0);
        cr_expect_eq(st.ready, 1, "the prepared sandbox is still there");
        tr_pool_free(p);
        /* Cold executions prepare and destroy too. */
        cr_expect_eq(atomic_load(&f.prepares), 3);
        cr_expect_eq(atomic_load(&f.destroys), 3, "every sandbox destroyed once, cold ones too");
}

Test(pool, size_and_age_change_at_run_time) {
        tr_pool *p = NULL;
        cr_assert_eq(tr_pool_new(rt, shape, 3, &p, NULL), 0);
        cr_assert(wait_ready(p, 3));
        tr_pool_set_size(p, 1);
        cr_assert(wait_ready(p, 1), "shrunk");
        tr_pool_set_size(p, 2);
        cr_assert(wait_ready(p, 2), "grown");
        int before = atomic_load(&f.prepares);
        tr_pool_set_max_age_ms(p, 50);
        struct timespec ts = { 0, 400 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        cr_expect_gt(atomic_load(&f.prepares), before, "old sandboxes replaced");
        tr_pool_stats st;
        tr_pool_get_stats(p, &st);
        cr_expect_gt(st.expired, 0);
        tr_pool_free(p);
        cr_expect_eq(atomic_load(&f.destroys), atomic_load(&f.prepares));
}

Test(pool, prepare_failures_back_off_and_requests_run_cold) {
        atomic_store(&f.fail_prepare, true);
        tr_pool *p = NULL;
        cr_assert_eq(tr_pool_new(rt, shape, 2, &p, NULL), 0);
        struct timespec ts = { 0, 300 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        tr_pool_stats st;
        tr_pool_get_stats(p, &st);
        cr_expect_gt(st.prepare_failures, 0);
        cr_expect_lt(st.prepare_failures, 20, "backed off, not spinning: %llu",
                     (unsigned long long) st.prepare_failures);
        cr_expect_eq(st.ready, 0);
        cr_expect_not(st.filled_once);
        tr_result *res = NULL;
        atomic_store(&f.fail_prepare, false);
        /* The cold path prepares too (the fake backend's lifecycle). */
        cr_assert_eq(tr_pool_execute(p, req, NULL, &res, NULL), 0);
        cr_expect_str_eq(pool_of(res), "cold");
        tr_result_free(res);
        cr_assert(wait_ready(p, 2), "recovered once the backend works");
        tr_pool_free(p);
}

static int exec_only(void *self, tr_exec *ex, tr_error **ret_err) {
        tr_result_set_exit_code(tr_exec_result(ex), 0);
        return 0;
}

Test(pool, a_backend_without_prepare_gets_no_pool) {
        static const tr_backend_ops ops = { .kind = fake_kind, .execute = exec_only };
        tr_runtime *rt2 = NULL;
        cr_assert_eq(tr_runtime_new(&rt2, NULL), 0);
        tr_backend *b = NULL;
        cr_assert_eq(tr_backend_new(&ops, NULL, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt2, b, NULL), 0);
        tr_pool *p = NULL;
        tr_error *err = NULL;
        cr_expect_lt(tr_pool_new(rt2, shape, 1, &p, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        cr_expect_neq(strstr(tr_error_message(err), "prepare"), NULL);
        tr_error_free(err);
        tr_runtime_free(rt2);
}

Test(pool, bad_arguments) {
        tr_pool *p = NULL;
        tr_error *err = NULL;
        cr_expect_lt(tr_pool_new(NULL, shape, 1, &p, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        tr_error_free(err);
        err = NULL;
        tr_request *bare = NULL;
        cr_assert_eq(tr_request_new(&bare, NULL), 0);
        cr_expect_lt(tr_pool_new(rt, bare, 1, &p, &err), 0, "a shape without a gateway");
        tr_error_free(err);
        tr_request_free(bare);
        tr_pool_free(NULL);
}
