/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The containerd backend with injected fakes (no daemon): what it hands the
 * ContainerRunner per profile, the error plumbing of the health checker,
 * the image resolver and the runner, OOM -> resource_limit, the reference's
 * "no client configured", spec validation, config validation, and the real
 * health checker against a missing socket.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/containerd/seams.h"
#include "toolruntime.h"
#include "util/config.h"
#include "util/handles.h"
#include "util/proc.h"

typedef struct fake_runner {
        int calls;
        tr_code fail;
        bool oom;
        int exit_code;
        /* copies of what the spec said */
        char id[64];
        char image[128];
        char runtime[64];
        char argv0[64];
        char network[16];
        bool read_only;
        bool privileged;
        char user[32];
        char seccomp[128];
        bool has_gateway_env;
        bool gateway_dir_ok;
        char stdin_copy[128];
        tr_containerd_resources res;
        tr_profile profile;
        bool owner_labels;
        char meta[64];
} fake_runner;

static int fake_run(void *self, const tr_containerd_spec *spec, tr_exec *ex, tr_containerd_run_result *ret,
                    tr_error **ret_err) {
        fake_runner *f = self;
        f->calls++;
        snprintf(f->id, sizeof f->id, "%s", spec->id);
        snprintf(f->image, sizeof f->image, "%s", spec->image);
        snprintf(f->runtime, sizeof f->runtime, "%s", spec->runtime);
        snprintf(f->argv0, sizeof f->argv0, "%s", spec->command[0]);
        snprintf(f->network, sizeof f->network, "%s", spec->security.network_mode);
        snprintf(f->user, sizeof f->user, "%s", spec->security.user);
        snprintf(f->seccomp, sizeof f->seccomp, "%s",
                 spec->security.seccomp_profile ? spec->security.seccomp_profile : "");
        f->read_only = spec->security.read_only_rootfs;
        f->privileged = spec->security.privileged;
        f->res = spec->resources;
        f->profile = spec->profile;
        for (const char *const *e = spec->env; e && *e; e++)
                if (strcmp(*e, "TOOLRUNTIME_GATEWAY=unix:/run/toolruntime/gateway.sock") == 0)
                        f->has_gateway_env = true;
        struct stat st;
        unsigned uid = 0, gid = 0;
        f->gateway_dir_ok = spec->gateway_dir && stat(spec->gateway_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
                            sscanf(spec->security.user, "%u:%u", &uid, &gid) == 2 && st.st_uid == uid &&
                            st.st_gid == gid && (st.st_mode & 07777) == 0700;
        snprintf(f->stdin_copy, sizeof f->stdin_copy, "%.*s", (int) spec->stdin_len, (const char *) spec->stdin_data);
        for (const char *const *l = spec->labels; l && l[0] && l[1]; l += 2)
                if (strcmp(l[0], "io.toolruntime.meta.job") == 0)
                        snprintf(f->meta, sizeof f->meta, "%s", l[1]);
        tr_exec_append_stdout(ex, "fake out\n", 9);
        if (f->fail != TR_OK)
                return tr_error_set(ret_err, f->fail, TR_BACKEND_CONTAINERD, "fake.run", "fake runner failed");
        *ret = (tr_containerd_run_result){ .exit_code = f->exit_code, .oom_killed = f->oom, .duration_us = 5 };
        return 0;
}

static const tr_containerd_runner_ops fake_runner_ops = { .run = fake_run };

typedef struct fake_check {
        int calls;
        tr_code fail;
} fake_check;

static int fake_health(void *self, tr_exec *ex, tr_error **ret_err) {
        fake_check *f = self;
        f->calls++;
        return f->fail ? tr_error_set(ret_err, f->fail, TR_BACKEND_CONTAINERD, "health", "fake health") : 0;
}

static int fake_resolve(void *self, const char *ref, tr_exec *ex, tr_error **ret_err) {
        fake_check *f = self;
        f->calls++;
        return f->fail ? tr_error_set(ret_err, f->fail, TR_BACKEND_CONTAINERD, "image.resolve", "no %s", ref) : 0;
}

static const tr_containerd_health_ops fake_health_ops = { .check = fake_health };
static const tr_containerd_image_resolver_ops fake_resolver_ops = { .resolve = fake_resolve };

static fake_runner runner;
static fake_check health, resolver;
static char state_dir[64];

static void setup(void) {
        memset(&runner, 0, sizeof runner);
        memset(&health, 0, sizeof health);
        memset(&resolver, 0, sizeof resolver);
        snprintf(state_dir, sizeof state_dir, "/tmp/tr-ctrd-unit-XXXXXX");
        cr_assert_not_null(mkdtemp(state_dir));
}

static void teardown(void) {
        /* Nothing of an execution may stay in the state dir. */
        cr_expect_eq(rmdir(state_dir), 0, "state dir not empty after the test");
        (void) tr__rm_rf(state_dir);
}

TestSuite(ctrd_backend, .init = setup, .fini = teardown, .timeout = 30);

/* The public config and the fakes the backend uses instead of containerd
 * (internal seams: backend/containerd/seams.h). */
typedef struct fake_setup {
        tr_containerd_config c;
        tr__containerd_seams seams;
} fake_setup;

static tr_runtime *make(fake_setup cfg) {
        tr_runtime *rt = NULL;
        tr_backend *b = NULL;
        tr_error *err = NULL;
        cfg.c.state_dir = state_dir;
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr__backend_containerd_new_seams(&cfg.c, &cfg.seams, &b, &err), 0, "%s", tr_error_message(err));
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        return rt;
}

static fake_setup fakes(void) {
        return (fake_setup){
                .c = { .size = sizeof(tr_containerd_config) },
                .seams = { .runner = &fake_runner_ops,
                           .runner_self = &runner,
                           .health = &fake_health_ops,
                           .health_self = &health,
                           .image_resolver = &fake_resolver_ops,
                           .image_resolver_self = &resolver },
        };
}

static int exec_profile(tr_runtime *rt, tr_profile p, const tr_limits *lim, tr_result **res, tr_error **err) {
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        _cleanup_(tr_gateway_freep) tr_gateway *gw = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_assert_eq(tr_gateway_new_empty(&gw, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, "print(42)", 9, NULL), 0);
        cr_assert_eq(tr_request_set_metadata(req, "job", "j-17", NULL), 0);
        tr_request_set_gateway(req, gw);
        tr_request_set_profile(req, p);
        if (lim)
                tr_request_set_limits(req, lim);
        return tr_runtime_execute(rt, req, NULL, res, err);
}

Test(ctrd_backend, standard_spec) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make(fakes());
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        tr_limits lim = { .memory_bytes = 1 << 26, .cpu_quota_ms = 50, .pids_max = 32, .disk_bytes = 1 << 23 };
        cr_assert_eq(exec_profile(rt, TR_PROFILE_STANDARD, &lim, &res, &err), 0, "%s", tr_error_message(err));
        cr_expect_eq(health.calls, 1);
        cr_expect_eq(resolver.calls, 1);
        cr_expect_eq(runner.calls, 1);
        cr_expect_str_eq(runner.image, TR_CONTAINERD_DEFAULT_IMAGE);
        cr_expect_str_eq(runner.runtime, TR_CONTAINERD_DEFAULT_RUNTIME);
        cr_expect_str_eq(runner.argv0, "python3");
        cr_expect_str_eq(runner.network, "none");
        /* The sandbox's own host uid from the default range, uid == gid,
         * and the lease is released once the run is over. */
        unsigned uid = 0, gid = 0;
        cr_assert_eq(sscanf(runner.user, "%u:%u", &uid, &gid), 2, "%s", runner.user);
        cr_expect_eq(uid, gid);
        cr_expect_geq(uid, TR_UID_RANGE_DEFAULT_FIRST);
        cr_expect_lt(uid, TR_UID_RANGE_DEFAULT_FIRST + TR_UID_RANGE_DEFAULT_COUNT);
        char lease[64];
        snprintf(lease, sizeof lease, "/run/toolruntime/uids/%u", uid);
        cr_expect_neq(access(lease, F_OK), 0, "the uid lease outlived the execution");
        char uid_text[16];
        snprintf(uid_text, sizeof uid_text, "%u", uid);
        cr_expect_str_eq(tr_result_backend_detail(res, "host_uid"), uid_text);
        cr_expect(runner.read_only);
        cr_expect_not(runner.privileged);
        cr_expect(runner.has_gateway_env);
        cr_expect(runner.gateway_dir_ok, "gateway dir must be private to the sandbox user");
        /* The runner reads this execution's value marker, the code's
         * length and the input files' count, then the code (and the
         * snippet's stdin, none here). */
        cr_expect(strncmp(runner.stdin_copy, "__TR_VALUE_", 11) == 0, "%s", runner.stdin_copy);
        const char *nl = strchr(runner.stdin_copy, '\n');
        cr_assert_not_null(nl);
        cr_expect_eq(nl - runner.stdin_copy, 46 + 4, "the marker, a space, the length 9, no files");
        cr_expect_eq(strncmp(nl - 4, " 9 0", 4), 0);
        cr_expect_str_eq(nl + 1, "print(42)");
        cr_expect_str_eq(runner.meta, "j-17");
        cr_expect_eq(runner.res.memory_bytes, 1 << 26);
        cr_expect_eq(runner.res.cpu_quota_us, 50000);
        cr_expect_eq(runner.res.pids_limit, 32);
        cr_expect_eq(runner.res.disk_bytes, 1 << 23);
        cr_expect_eq(strncmp(runner.id, "tr-", 3), 0);
        const tr_limits_enforced *le = tr_result_limits_enforced(res);
        cr_expect(le->timeout && le->memory && le->cpu && le->pids && le->disk);
        cr_expect_str_eq(tr_result_backend_detail(res, "container_id"), runner.id);
        cr_expect_str_eq(tr_result_backend_detail(res, "profile"), "standard");
        cr_expect_str_eq(tr_result_backend_detail(res, "image"), TR_CONTAINERD_DEFAULT_IMAGE);
        cr_expect_str_eq(tr_result_backend_detail(res, "namespace"), "default");
        size_t n;
        cr_expect_str_eq(tr_result_stdout(res, &n), "fake out\n");
}

Test(ctrd_backend, hardened_defaults_and_seccomp) {
        fake_setup cfg = fakes();
        cfg.c.seccomp_path = "/etc/toolruntime/seccomp.json";
        cfg.c.runtime = "io.containerd.runsc.v1";
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make(cfg);
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        cr_assert_eq(exec_profile(rt, TR_PROFILE_HARDENED, NULL, &res, NULL), 0);
        cr_expect_eq(runner.res.memory_bytes, 256LL * 1024 * 1024);
        cr_expect_eq(runner.res.pids_limit, 64);
        cr_expect_eq(runner.res.cpu_quota_us, 50000);
        cr_expect_eq(runner.res.disk_bytes, 16LL * 1024 * 1024);
        cr_expect_str_eq(runner.seccomp, "/etc/toolruntime/seccomp.json");
        cr_expect_str_eq(runner.runtime, "io.containerd.runsc.v1");
        const tr_limits_enforced *le = tr_result_limits_enforced(res);
        cr_expect(le->memory && le->pids && le->cpu && le->disk);
        cr_expect_str_eq(tr_result_backend_detail(res, "runtime"), "io.containerd.runsc.v1");
}

Test(ctrd_backend, dev_has_host_network_and_no_disk_claim) {
        tr_runtime *rt = make(fakes());
        tr_runtime_route(rt, TR_PROFILE_DEV, TR_BACKEND_CONTAINERD);
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        tr_limits lim = { .disk_bytes = 1 << 23 };
        cr_assert_eq(exec_profile(rt, TR_PROFILE_DEV, &lim, &res, NULL), 0);
        cr_expect_str_eq(runner.network, "host");
        cr_expect_not(runner.read_only);
        cr_expect_not(tr_result_limits_enforced(res)->disk, "dev's rootfs is writable: disk is not bounded");
        tr_runtime_free(rt);
}

Test(ctrd_backend, no_runner_is_client_not_configured) {
        fake_setup cfg = fakes();
        cfg.seams.runner = NULL;
        cfg.seams.flags = TR__CONTAINERD_NO_RUNNER;
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make(cfg);
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_expect_lt(exec_profile(rt, TR_PROFILE_STANDARD, NULL, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_CLIENT_NOT_CONFIGURED);
        cr_expect_eq(health.calls, 0);
}

Test(ctrd_backend, health_failure_stops_early) {
        health.fail = TR_E_DAEMON_UNAVAILABLE;
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make(fakes());
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_expect_lt(exec_profile(rt, TR_PROFILE_STANDARD, NULL, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_DAEMON_UNAVAILABLE);
        cr_expect(tr_error_retryable(err));
        cr_expect_eq(resolver.calls, 0);
        cr_expect_eq(runner.calls, 0);
}

Test(ctrd_backend, image_not_found) {
        resolver.fail = TR_E_IMAGE_NOT_FOUND;
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make(fakes());
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_expect_lt(exec_profile(rt, TR_PROFILE_STANDARD, NULL, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_IMAGE_NOT_FOUND);
        cr_expect_eq(runner.calls, 0);
}

Test(ctrd_backend, runner_errors_pass_through) {
        runner.fail = TR_E_TIMEOUT;
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make(fakes());
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_expect_lt(exec_profile(rt, TR_PROFILE_STANDARD, NULL, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_TIMEOUT);
        cr_assert_not_null(res, "partial results survive a failure");
        cr_expect_eq(tr_result_exit_code(res), -1);
        size_t n;
        cr_expect_str_eq(tr_result_stdout(res, &n), "fake out\n");
}

Test(ctrd_backend, oom_is_resource_limit) {
        runner.oom = true;
        runner.exit_code = 137;
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make(fakes());
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        tr_limits lim = { .memory_bytes = 1 << 26 };
        cr_expect_lt(exec_profile(rt, TR_PROFILE_STANDARD, &lim, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_RESOURCE_LIMIT);
}

Test(ctrd_backend, real_health_check_without_socket) {
        fake_setup cfg = fakes();
        cfg.seams.health = NULL;
        char sock[128];
        snprintf(sock, sizeof sock, "%s/nothing.sock", state_dir);
        cfg.c.socket_path = sock;
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make(cfg);
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_expect_lt(exec_profile(rt, TR_PROFILE_STANDARD, NULL, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_CONTAINERD_NOT_AVAILABLE);
        cr_expect(strstr(tr_error_message(err), sock) != NULL, "%s", tr_error_message(err));
        cr_expect_eq(runner.calls, 0);
}

Test(ctrd_backend, config_validation) {
        tr_backend *b = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        tr_containerd_config cfg = { .size = sizeof(tr_containerd_config), .socket_path = "relative.sock" };
        cr_expect_eq(tr_backend_containerd_new(&cfg, &b, &err), -EINVAL);
        cr_expect_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        tr_containerd_config cfg2 = { .size = sizeof(tr_containerd_config), .namespace_name = "" };
        cr_expect_lt(tr_backend_containerd_new(&cfg2, &b, NULL), 0);
        /* A uid range reaching system accounts or nobody is refused. */
        tr_containerd_config cfg4 = { .size = sizeof(tr_containerd_config),
                                      .state_dir = state_dir,
                                      .uid_range = { 500, 10 } };
        cr_expect_lt(tr_backend_containerd_new(&cfg4, &b, NULL), 0);
        tr_containerd_config cfg5 = { .size = sizeof(tr_containerd_config),
                                      .state_dir = state_dir,
                                      .uid_range = { 65000, 1000 } };
        _cleanup_(tr_error_freep) tr_error *e5 = NULL;
        cr_expect_lt(tr_backend_containerd_new(&cfg5, &b, &e5), 0);
        cr_expect(strstr(tr_error_message(e5), "uid_range") != NULL, "%s", tr_error_message(e5));
        tr_containerd_config cfg3 = { .size = sizeof(tr_containerd_config),
                                      .state_dir = state_dir,
                                      .uid_range = { 200000, 16 } };
        cr_expect_eq(tr_backend_containerd_new(&cfg3, &b, NULL), 0, "defaults are valid");
        cr_expect_eq(tr_backend_kind_of(b), TR_BACKEND_CONTAINERD);
        tr_backend_free(b);
        /* A caller built before teardown_at_free was appended passes the
         * older, smaller size: accepted, the new field defaulting to false. */
        tr_containerd_config old = { .state_dir = state_dir, .teardown_at_free = true };
        old.size = offsetof(tr_containerd_config, teardown_at_free);
        _cleanup_(tr_error_freep) tr_error *e6 = NULL;
        b = NULL;
        cr_expect_eq(tr_backend_containerd_new(&old, &b, &e6), 0, "the older size: %s", tr_error_message(e6));
        tr_backend_free(b);
        tr_containerd_config copy;
        cr_assert_eq(tr__containerd_config_copy(&old, &copy, NULL), 0);
        cr_expect(!copy.teardown_at_free, "a field past the caller's size is not read");
        old.size = offsetof(tr_containerd_config, teardown_at_free) - 1;
        b = NULL;
        cr_expect_lt(tr_backend_containerd_new(&old, &b, NULL), 0, "a size below the first layout");
}

Test(ctrd_backend, spec_validate) {
        const char *argv[] = { "python3", NULL };
        tr_containerd_spec s = { .id = "x", .image = "img", .command = argv, .profile = TR_PROFILE_STANDARD };
        /* The user: UID:GID, never root. */
        _cleanup_(tr_error_freep) tr_error *e0 = NULL;
        cr_expect_lt(tr_containerd_spec_validate(&s, &e0), 0, "no user");
        cr_expect_eq(tr_error_code(e0), TR_E_INVALID_REQUEST);
        s.security.user = "0:0";
        _cleanup_(tr_error_freep) tr_error *e00 = NULL;
        cr_expect_lt(tr_containerd_spec_validate(&s, &e00), 0, "root");
        cr_expect_eq(tr_error_code(e00), TR_E_SECURITY_VIOLATION);
        s.security.user = "1879048193:1879048193";
        cr_expect_eq(tr_containerd_spec_validate(&s, NULL), 0);
        _cleanup_(tr_error_freep) tr_error *e1 = NULL;
        s.security.privileged = true;
        cr_expect_lt(tr_containerd_spec_validate(&s, &e1), 0);
        cr_expect_eq(tr_error_code(e1), TR_E_SECURITY_VIOLATION);
        s.security.privileged = false;
        _cleanup_(tr_error_freep) tr_error *e2 = NULL;
        s.security.network_mode = "host";
        cr_expect_lt(tr_containerd_spec_validate(&s, &e2), 0);
        cr_expect_eq(tr_error_code(e2), TR_E_SECURITY_VIOLATION);
        s.profile = TR_PROFILE_DEV;
        cr_expect_eq(tr_containerd_spec_validate(&s, NULL), 0);
        _cleanup_(tr_error_freep) tr_error *e3 = NULL;
        s.resources.memory_bytes = -1;
        cr_expect_lt(tr_containerd_spec_validate(&s, &e3), 0);
        cr_expect_eq(tr_error_code(e3), TR_E_INVALID_LIMITS);
        s.resources.memory_bytes = 0;
        /* Above TR_LIMIT_MAX: refused (the spec is public; nothing may
         * overflow downstream). */
        int64_t *fields[] = { &s.resources.memory_bytes, &s.resources.cpu_quota_us, &s.resources.pids_limit,
                              &s.resources.disk_bytes };
        for (size_t i = 0; i < 4; i++) {
                _cleanup_(tr_error_freep) tr_error *e4 = NULL;
                *fields[i] = TR_LIMIT_MAX;
                cr_expect_eq(tr_containerd_spec_validate(&s, NULL), 0, "field %zu at the bound", i);
                *fields[i] = TR_LIMIT_MAX + 1;
                cr_expect_lt(tr_containerd_spec_validate(&s, &e4), 0, "field %zu above the bound", i);
                cr_expect_eq(tr_error_code(e4), TR_E_INVALID_LIMITS);
                *fields[i] = INT64_MAX;
                cr_expect_lt(tr_containerd_spec_validate(&s, NULL), 0);
                *fields[i] = 0;
        }
        s.image = "";
        cr_expect_lt(tr_containerd_spec_validate(&s, NULL), 0);
        s.image = "img";
        s.command = NULL;
        cr_expect_lt(tr_containerd_spec_validate(&s, NULL), 0);
}

Test(ctrd_backend, memory_below_the_minimum_is_invalid_limits_before_containerd) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = make(fakes());
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        tr_limits lim;
        tr_limits_init(&lim);
        lim.memory_bytes = TR_CONTAINERD_MIN_MEMORY - 1;
        cr_assert_lt(exec_profile(rt, TR_PROFILE_STANDARD, &lim, &res, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_INVALID_LIMITS);
        cr_expect(strstr(tr_error_message(err), "minimum of 8 MiB"), "%s", tr_error_message(err));
        cr_expect_eq(health.calls, 0);
        cr_expect_eq(runner.calls, 0);
        lim.memory_bytes = TR_CONTAINERD_MIN_MEMORY;
        tr_result_free(TAKE_PTR(res));
        cr_expect_eq(exec_profile(rt, TR_PROFILE_STANDARD, &lim, &res, NULL), 0);
}
