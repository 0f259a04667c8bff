/* SPDX-License-Identifier: Apache-2.0 */
/* The kata backend without a VM: spec validation, Kata's annotations and
 * Runner 2's OCI spec (pure functions), the QEMU command line, and the
 * backend's plumbing with injected fake runner / resolver / health check. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend/kata/internal.h"
#include "util/frame.h"
#include "toolruntime.h"
#include "util/handles.h"
#include "util/strv.h"

static const char *const argv_py[] = { "python3", "-c", "pass", NULL };

static tr_kata_sandbox_spec good_spec(void) {
        return (tr_kata_sandbox_spec){
                .image = "toolruntime-sandbox:latest",
                .hypervisor = "qemu",
                .kernel_path = "/k/vmlinuz",
                .initrd_path = "/k/initrd.img",
                .image_path = "/k/rootfs.ext4",
                .argv = argv_py,
                .security = { .user = "65534:65534", .read_only_rootfs = true, .network_mode = "none" },
                .profile = TR_PROFILE_STANDARD,
        };
}

static tr_code validate_code(const tr_kata_sandbox_spec *s) {
        tr_error *e = NULL;
        int r = tr_kata_sandbox_spec_validate(s, &e);
        tr_code c = r < 0 ? tr_error_code(e) : TR_OK;
        tr_error_free(e);
        return c;
}

Test(spec, validate) {
        tr_kata_sandbox_spec s = good_spec();
        cr_assert_eq(validate_code(&s), TR_OK);
        s.image = NULL;
        cr_assert_eq(validate_code(&s), TR_OK); /* image_path is enough */
        s.image_path = NULL;
        cr_assert_eq(validate_code(&s), TR_E_INVALID_REQUEST);
        s = good_spec();
        s.argv = NULL;
        cr_assert_eq(validate_code(&s), TR_E_INVALID_REQUEST);
        s = good_spec();
        s.resources.memory_bytes = -1;
        cr_assert_eq(validate_code(&s), TR_E_INVALID_LIMITS);
        s.resources.memory_bytes = TR_KATA_MIN_MEMORY - 1;
        cr_assert_eq(validate_code(&s), TR_E_INVALID_LIMITS, "below the minimum");
        s.resources.memory_bytes = TR_KATA_MIN_MEMORY;
        cr_assert_eq(validate_code(&s), TR_OK);
        s = good_spec();
        s.hypervisor = "xen";
        cr_assert_eq(validate_code(&s), TR_E_INVALID_REQUEST);
        const char *roots[] = { "root", "0", "0:0", "1000:0", "root:root" };
        for (size_t i = 0; i < 5; i++) {
                s = good_spec();
                s.security.user = roots[i];
                cr_assert_eq(validate_code(&s), TR_E_SECURITY_VIOLATION, "user %s", roots[i]);
        }
        s = good_spec();
        s.security.privileged = true;
        cr_assert_eq(validate_code(&s), TR_E_SECURITY_VIOLATION);
        s = good_spec();
        s.security.read_only_rootfs = false;
        cr_assert_eq(validate_code(&s), TR_E_SECURITY_VIOLATION);
        s.profile = TR_PROFILE_DEV;
        cr_assert_eq(validate_code(&s), TR_OK);
        s = good_spec();
        s.security.network_mode = "user";
        cr_assert_eq(validate_code(&s), TR_E_SECURITY_VIOLATION);
        s.profile = TR_PROFILE_DEV;
        cr_assert_eq(validate_code(&s), TR_OK);
        s.security.network_mode = "host";
        cr_assert_eq(validate_code(&s), TR_E_SECURITY_VIOLATION);
}

static const char *kv_get(char **kv, const char *key) {
        for (size_t i = 0; kv[i] && kv[i + 1]; i += 2)
                if (strcmp(kv[i], key) == 0)
                        return kv[i + 1];
        return NULL;
}

Test(annotations, kata_hypervisor_keys) {
        tr_kata_sandbox_spec s = good_spec();
        s.runtime = "/opt/kata/bin/qemu-system-x86_64";
        s.resources.memory_bytes = 256LL << 20;
        s.resources.cpu_quota_ms = 150;
        char **kv = NULL;
        cr_assert_eq(tr_kata_annotations(&s, &kv, NULL), 0);
        cr_assert_str_eq(kv_get(kv, "io.katacontainers.config.hypervisor.kernel"), "/k/vmlinuz");
        cr_assert_str_eq(kv_get(kv, "io.katacontainers.config.hypervisor.image"), "/k/rootfs.ext4");
        cr_assert_str_eq(kv_get(kv, "io.katacontainers.config.hypervisor.path"), "/opt/kata/bin/qemu-system-x86_64");
        cr_assert_str_eq(kv_get(kv, "io.katacontainers.config.hypervisor.default_memory"), "448");
        cr_assert_str_eq(kv_get(kv, "io.katacontainers.config.hypervisor.default_vcpus"), "2");
        cr_assert(strstr(kv_get(kv, "io.katacontainers.config_path"), "configuration-qemu.toml"));
        tr_kata_strv_free(kv);

        s = good_spec();
        s.hypervisor = "cloud-hypervisor";
        s.kernel_path = NULL;
        s.runtime = "cloud-hypervisor"; /* a bare name is not a path: no annotation */
        cr_assert_eq(tr_kata_annotations(&s, &kv, NULL), 0);
        cr_assert(strstr(kv_get(kv, "io.katacontainers.config_path"), "configuration-clh.toml"));
        cr_assert_null(kv_get(kv, "io.katacontainers.config.hypervisor.kernel"));
        cr_assert_null(kv_get(kv, "io.katacontainers.config.hypervisor.path"));
        cr_assert_null(kv_get(kv, "io.katacontainers.config.hypervisor.default_memory"));
        tr_kata_strv_free(kv);

        s.hypervisor = "firecracker";
        cr_assert_eq(tr_kata_annotations(&s, &kv, NULL), 0);
        cr_assert(strstr(kv_get(kv, "io.katacontainers.config_path"), "configuration-fc.toml"));
        tr_kata_strv_free(kv);
}

Test(annotations, runner2_oci_spec) {
        tr_kata_sandbox_spec s = good_spec();
        s.resources.memory_bytes = 64LL << 20;
        s.resources.pids_max = 32;
        char *json = NULL;
        tr_error *e = NULL;
        int r = tr__kata_ctrd_spec(&s, &json, &e);
        cr_assert_eq(r, 0, "%s", e ? tr_error_message(e) : "");
        json_t *root = json_loads(json, 0, NULL);
        cr_assert_not_null(root);
        json_t *ann = json_object_get(root, "annotations");
        cr_assert(json_is_object(ann));
        cr_assert_str_eq(json_string_value(json_object_get(ann, "io.katacontainers.config.hypervisor.kernel")),
                         "/k/vmlinuz");
        /* The base is the containerd backend's spec: process and limits. */
        json_t *args = json_object_get(json_object_get(root, "process"), "args");
        cr_assert_str_eq(json_string_value(json_array_get(args, 0)), "python3");
        json_decref(root);
        free(json);

        s.security.privileged = true;
        cr_assert_lt(tr__kata_ctrd_spec(&s, &json, NULL), 0);
}

Test(qemu, sizing) {
        cr_assert_eq(tr__kata_guest_mem_mib(0), 512);
        cr_assert_eq(tr__kata_guest_mem_mib(64LL << 20), 64 + 192);
        cr_assert_eq(tr__kata_guest_mem_mib(1), 193);
        cr_assert_eq(tr__kata_vcpus(0, 8), 1);
        cr_assert_eq(tr__kata_vcpus(50, 8), 1);
        cr_assert_eq(tr__kata_vcpus(101, 8), 2);
        cr_assert_eq(tr__kata_vcpus(1000, 2), 2);
}

static bool has_pair(char **a, const char *opt, const char *prefix) {
        for (size_t i = 0; a[i] && a[i + 1]; i++)
                if (strcmp(a[i], opt) == 0 && strncmp(a[i + 1], prefix, strlen(prefix)) == 0)
                        return true;
        return false;
}

static bool has(char **a, const char *s) {
        for (size_t i = 0; a[i]; i++)
                if (strcmp(a[i], s) == 0)
                        return true;
        return false;
}

Test(qemu, command_line_has_no_network_and_is_sandboxed) {
        tr_kata_sandbox_spec s = good_spec();
        s.resources.memory_bytes = 100LL << 20;
        char **a = NULL;
        cr_assert_eq(tr__kata_qemu_argv("/usr/bin/qemu-system-x86_64", &s, false, 3, -1, &a, NULL), 0);
        cr_assert(has(a, "-nodefaults"));
        cr_assert(has(a, "-no-user-config"));
        cr_assert(has_pair(a, "-accel", "tcg"));
        cr_assert(has_pair(a, "-M", "microvm"));
        cr_assert(has_pair(a, "-m", "292"));
        cr_assert(has_pair(a, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"));
        cr_assert(has_pair(a, "-accel", "tcg,tb-size=128,thread=single"));
        cr_assert(!has(a, "-runas"));
        cr_assert(has_pair(a, "-monitor", "none"));
        cr_assert(has_pair(a, "-drive", "if=none,id=root,file=/k/rootfs.ext4,format=raw,readonly=on"));
        cr_assert(has_pair(a, "-chardev", "socket,id=chan,fd=3"));
        cr_assert(has_pair(a, "-kernel", "/k/vmlinuz"));
        cr_assert(has_pair(a, "-initrd", "/k/initrd.img"));
        for (size_t i = 0; a[i]; i++) {
                cr_assert_null(strstr(a[i], "netdev"), "%s", a[i]);
                cr_assert_null(strstr(a[i], "virtio-net"), "%s", a[i]);
                cr_assert_neq(strcmp(a[i], "-net"), 0);
        }
        tr__strv_free(a);
        /* The image as an fd (jail.c): no path of it on the command line. */
        cr_assert_eq(tr__kata_qemu_argv("/usr/bin/qemu-system-x86_64", &s, false, 3, 4, &a, NULL), 0);
        cr_assert(has_pair(a, "-add-fd", "fd=4,set=1"));
        cr_assert(has_pair(a, "-drive", "if=none,id=root,file=/dev/fdset/1,format=raw,readonly=on"));
        for (size_t i = 0; a[i]; i++)
                cr_assert_null(strstr(a[i], "rootfs.ext4"), "%s", a[i]);
        tr__strv_free(a);
}

Test(qemu, host_memory_cap_is_guest_ram_plus_overhead) {
        cr_assert_eq(tr__kata_qemu_memory_cap(64LL << 20), (64LL + 192 + 256) << 20);
        cr_assert_eq(tr__kata_qemu_memory_cap(0), (512LL + 256) << 20);
}

/* The jail (jail.c) drops QEMU to the VM's own uid before exec, under KVM
 * too: QEMU is never asked to drop privileges itself. */
Test(qemu, kvm_needs_no_runas) {
        tr_kata_sandbox_spec s = good_spec();
        s.host_uid = 0x70000123;
        char **a = NULL;
        cr_assert_eq(tr__kata_qemu_argv("/usr/bin/qemu-system-x86_64", &s, true, 3, -1, &a, NULL), 0);
        cr_assert_not(has(a, "-runas"));
        tr__strv_free(a);
}

Test(backend, bad_uid_range_is_refused) {
        tr_kata_config cfg = { .size = sizeof(tr_kata_config), .uid_range = { 65530, 10 } };
        tr_backend *b = NULL;
        tr_error *e = NULL;
        cr_assert_lt(tr_backend_kata_new(&cfg, &b, &e), 0);
        cr_assert_eq(tr_error_code(e), TR_E_INVALID_REQUEST);
        cr_assert_not_null(strstr(tr_error_message(e), "65534"), "%s", tr_error_message(e));
        tr_error_free(e);
}

/* ---- the backend with fakes ---------------------------------------------- */

typedef struct fake {
        int runs, resolves, checks, frees;
        char argv0[64];
        int64_t memory;
        const char *user;
        bool ro;
        bool fail_health;
        uint32_t host_uid;
        bool lease_held;
} fake;

static int fake_run(void *self, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err) {
        fake *f = self;
        f->runs++;
        snprintf(f->argv0, sizeof(f->argv0), "%s", spec->argv[0]);
        f->memory = spec->resources.memory_bytes;
        f->user = spec->security.user;
        f->ro = spec->security.read_only_rootfs;
        f->host_uid = spec->host_uid;
        char lease[64];
        snprintf(lease, sizeof lease, "/run/toolruntime/uids/%u", (unsigned) spec->host_uid);
        f->lease_held = access(lease, F_OK) == 0;
        const char *o = "hi\n";
        tr_exec_append_stdout(ex, o, strlen(o));
        tr_result_set_exit_code(tr_exec_result(ex), 3);
        return 0;
}
static void fake_free(void *self) {
        ((fake *) self)->frees++;
}
static int fake_resolve(void *self, const char *image, tr_error **ret_err) {
        ((fake *) self)->resolves++;
        return 0;
}
static int fake_check(void *self, char **ret_detail, tr_error **ret_err) {
        fake *f = self;
        f->checks++;
        if (f->fail_health)
                return tr_error_set(ret_err, TR_E_DAEMON_UNAVAILABLE, TR_BACKEND_KATA, "health", "down");
        return 0;
}
static const tr_kata_sandbox_runner_ops fake_runner = { .run = fake_run, .free = fake_free };
static const tr_kata_image_resolver_ops fake_resolver = { .resolve = fake_resolve, .free = fake_free };
static const tr_kata_health_checker_ops fake_health = { .check = fake_check, .free = fake_free };

static int run_one(tr_backend *b, tr_result **ret_res, tr_error **ret_err) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = NULL;
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        tr_runtime_route(rt, TR_PROFILE_STANDARD, TR_BACKEND_KATA);
        _cleanup_(tr_gateway_freep) tr_gateway *gw = NULL;
        cr_assert_eq(tr_gateway_new_empty(&gw, NULL), 0);
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        tr_request_set_code(req, "print(1)", 8, NULL);
        tr_request_set_gateway(req, gw);
        tr_limits l = { .memory_bytes = 1 << 26 };
        tr_request_set_limits(req, &l);
        return tr_runtime_execute(rt, req, NULL, ret_res, ret_err);
}

Test(backend, fake_runner_gets_a_safe_spec) {
        fake f = { 0 };
        tr__kata_seams seams = { .runner_ops = &fake_runner,
                                 .runner_self = &f,
                                 .resolver_ops = &fake_resolver,
                                 .resolver_self = &f,
                                 .health_ops = &fake_health,
                                 .health_self = &f };
        tr_backend *b = NULL;
        cr_assert_eq(tr__backend_kata_new_seams(NULL, &seams, &b, NULL), 0);
        cr_assert_eq(tr_backend_kind_of(b), TR_BACKEND_KATA);
        tr_result *res = NULL;
        tr_error *e = NULL;
        int r = run_one(b, &res, &e);
        cr_assert_eq(r, 0, "%s", e ? tr_error_message(e) : "");
        cr_assert_eq(f.runs, 1);
        cr_assert_eq(f.resolves, 1);
        cr_assert_eq(f.checks, 1);
        cr_assert_str_eq(f.argv0, "python3");
        cr_assert_eq(f.memory, 1 << 26);
        cr_assert_str_eq(f.user, "65534:65534"); /* the guest's user */
        if (geteuid() == 0) {
                /* The VM's own host uid, leased for the run only. */
                cr_assert_geq(f.host_uid, TR_UID_RANGE_DEFAULT_FIRST);
                cr_assert_lt(f.host_uid, TR_UID_RANGE_DEFAULT_FIRST + TR_UID_RANGE_DEFAULT_COUNT);
                cr_assert(f.lease_held);
                char lease[64];
                snprintf(lease, sizeof lease, "/run/toolruntime/uids/%u", (unsigned) f.host_uid);
                cr_assert_neq(access(lease, F_OK), 0, "the lease outlived the run");
                char uid_text[16];
                snprintf(uid_text, sizeof uid_text, "%u", (unsigned) f.host_uid);
                cr_assert_str_eq(tr_result_backend_detail(res, "host_uid"), uid_text);
        } else {
                cr_assert_eq(f.host_uid, 0u); /* QEMU keeps the caller's uid */
        }
        cr_assert(f.ro);
        cr_assert_eq(tr_result_exit_code(res), 3);
        cr_assert_str_eq(tr_result_backend_detail(res, "runner"), "custom");
        tr_result_free(res);
        cr_assert_eq(f.frees, 3); /* the runtime freed the backend */
}

Test(backend, failing_health_check_stops_the_run) {
        fake f = { .fail_health = true };
        tr__kata_seams seams = {
                .runner_ops = &fake_runner, .runner_self = &f, .health_ops = &fake_health, .health_self = &f
        };
        tr_backend *b = NULL;
        cr_assert_eq(tr__backend_kata_new_seams(NULL, &seams, &b, NULL), 0);
        tr_result *res = NULL;
        tr_error *e = NULL;
        cr_assert_lt(run_one(b, &res, &e), 0);
        cr_assert_eq(tr_error_code(e), TR_E_DAEMON_UNAVAILABLE);
        cr_assert_eq(f.runs, 0);
        tr_error_free(e);
        tr_result_free(res);
}

static tr_code run_code_for(const tr_kata_config *cfg) {
        tr_backend *b = NULL;
        cr_assert_eq(tr_backend_kata_new(cfg, &b, NULL), 0);
        tr_result *res = NULL;
        tr_error *e = NULL;
        int r = run_one(b, &res, &e);
        tr_code c = r < 0 ? tr_error_code(e) : TR_OK;
        tr_error_free(e);
        tr_result_free(res);
        return c;
}

Test(backend, other_hypervisors_name_what_is_missing) {
        tr_kata_config cfg = { .size = sizeof(tr_kata_config),
                               .hypervisor = "firecracker",
                               .runtime_path = "/nonexistent/firecracker" };
        cr_assert_eq(run_code_for(&cfg), TR_E_KATA_NOT_AVAILABLE);
        tr_error *e = NULL;
        cr_assert_lt(tr_kata_check(&cfg, NULL, &e), 0);
        cr_assert_eq(tr_error_code(e), TR_E_KATA_NOT_AVAILABLE);
        cr_assert(strstr(tr_error_message(e), "/nonexistent/firecracker"), "%s", tr_error_message(e));
        tr_error_free(e);
}

Test(backend, containerd_runner_without_the_kata_shim) {
        tr_kata_config cfg = { .size = sizeof(tr_kata_config),
                               .runner = TR_KATA_RUNNER_CONTAINERD,
                               .runtime_path = "/nonexistent/containerd-shim-kata-v2" };
        cr_assert_eq(run_code_for(&cfg), TR_E_KATA_NOT_AVAILABLE);
        tr_error *e = NULL;
        cr_assert_lt(tr_kata_check(&cfg, NULL, &e), 0);
        cr_assert(strstr(tr_error_message(e), "io.containerd.kata.v2"), "%s", tr_error_message(e));
        tr_error_free(e);
}

Test(backend, missing_vm_files_are_kata_not_available) {
        tr_kata_config cfg = { .size = sizeof(tr_kata_config),
                               .kernel_path = "/nonexistent/vmlinuz",
                               .accel = TR_KATA_ACCEL_TCG };
        cr_assert_eq(run_code_for(&cfg), TR_E_KATA_NOT_AVAILABLE);
        tr_error *e = NULL;
        cr_assert_lt(tr_kata_check(&cfg, NULL, &e), 0);
        cr_assert(strstr(tr_error_message(e), "image build --vm"), "%s", tr_error_message(e));
        tr_error_free(e);
}

Test(backend, bad_config_is_rejected) {
        tr_kata_config cfg = { .size = sizeof(tr_kata_config), .hypervisor = "xen" };
        tr_backend *b = NULL;
        tr_error *e = NULL;
        cr_assert_lt(tr_backend_kata_new(&cfg, &b, &e), 0);
        cr_assert_eq(tr_error_code(e), TR_E_INVALID_REQUEST);
        tr_error_free(e);
}

/* The guest's seccomp program comes from the same policy as the
 * container's: none for dev, a compiled program for standard and hardened
 * (different ones), and a bad custom profile fails before any boot. */
Test(kata_seccomp, program_per_profile) {
        tr_kata_sandbox_spec spec = { .profile = TR_PROFILE_DEV };
        uint8_t *prog = (uint8_t *) "x";
        size_t len = 1;
        cr_assert_eq(tr__kata_seccomp_bpf(&spec, &prog, &len, NULL), 0);
        cr_assert_null(prog);
        cr_assert_eq(len, 0);

        uint8_t *std = NULL, *hard = NULL;
        size_t std_len = 0, hard_len = 0;
        spec.profile = TR_PROFILE_DEFAULT; /* standard */
        cr_assert_eq(tr__kata_seccomp_bpf(&spec, &std, &std_len, NULL), 0);
        spec.profile = TR_PROFILE_HARDENED;
        cr_assert_eq(tr__kata_seccomp_bpf(&spec, &hard, &hard_len, NULL), 0);
        cr_assert(std && hard && std_len > 0 && hard_len > 0);
        cr_assert_eq(std_len % 8, 0);
        cr_assert_eq(hard_len % 8, 0);
        cr_assert_leq(std_len / 8, TR_VF_SECCOMP_MAX_INSNS);
        cr_assert(std_len != hard_len || memcmp(std, hard, std_len) != 0);
        free(std);
        free(hard);

        spec.security.seccomp_profile = "/nonexistent/tr-profile.json";
        tr_error *err = NULL;
        cr_assert_lt(tr__kata_seccomp_bpf(&spec, &hard, &hard_len, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        tr_error_free(err);
        /* standard ignores a custom profile, as on containerd. */
        spec.profile = TR_PROFILE_STANDARD;
        cr_assert_eq(tr__kata_seccomp_bpf(&spec, &std, &std_len, NULL), 0);
        free(std);
}
