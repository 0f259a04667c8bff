/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kata backend: turns a request's shape into a tr_kata_sandbox_spec
 * (the seed's SandboxSpec) at prepare, validates it, resolves the image and
 * checks health when the caller gave those hooks; Runner 1 boots its VM
 * then (up to the interpreter waiting for its code); at run the code goes
 * to the runner: the caller's
 * tr_kata_sandbox_runner_ops (a test seam: internal.h), else the QEMU microVM runner (qemu.c), or
 * Kata through containerd (ctrd.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/containerd/runner.h"
#include "backend/kata/internal.h"
#include "core/plan.h"
#include "backend/kata/vm.h"
#include "core/runner.h"
#include "core/uidalloc.h"
#include "gateway/session.h"
#include "util/config.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/strv.h"

/* Where the guest agent puts the gateway socket in the snippet's world. */
#define GUEST_GATEWAY "unix:/run/toolruntime/gateway.sock"

static void kata_free_strings(tr__kata *k) {
        free(k->runtime_path);
        free(k->image);
        free(k->hypervisor);
        free(k->kernel_path);
        free(k->initrd_path);
        free(k->image_path);
        free(k->containerd_address);
        free(k->containerd_namespace);
        free(k->seccomp_path);
}

static void kata_free(void *self) {
        tr__kata *k = self;
        if (!k)
                return;
        if (k->runner_ops && k->runner_ops->free)
                k->runner_ops->free(k->runner_self);
        if (k->resolver_ops && k->resolver_ops->free)
                k->resolver_ops->free(k->resolver_self);
        if (k->health_ops && k->health_ops->free)
                k->health_ops->free(k->health_self);
        tr__ctrd_client_free(k->ctrd);
        kata_free_strings(k);
        pthread_mutex_destroy(&k->lock);
        free(k);
}

static int dup_or(const char *s, const char *def, char **ret) {
        const char *v = s && *s ? s : def;
        if (!v) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

/* Copy the config's strings and settings (not the ops: see callers). */
static int kata_init(tr__kata *k, const tr_kata_config *cfg, tr_error **ret_err) {
        static const tr_kata_config defaults = { 0 };
        if (!cfg)
                cfg = &defaults;
        k->kvm_probe = -1;
        k->runner = cfg->runner;
        k->accel = cfg->accel;
        k->boot_timeout_ms = cfg->boot_timeout_ms > 0 ? cfg->boot_timeout_ms : TR_KATA_DEFAULT_BOOT_TIMEOUT_MS;
        k->uid_range = cfg->uid_range;
        if (tr__uid_range_check(&cfg->uid_range, KATA_KIND, ret_err) < 0)
                return -EINVAL;
        if (cfg->runner != TR_KATA_RUNNER_QEMU && cfg->runner != TR_KATA_RUNNER_CONTAINERD)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "config", "unknown kata runner %d",
                                    (int) cfg->runner);
        if (cfg->accel < TR_KATA_ACCEL_AUTO || cfg->accel > TR_KATA_ACCEL_TCG)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "config", "unknown accelerator %d",
                                    (int) cfg->accel);
        const char *hv = cfg->hypervisor && *cfg->hypervisor ? cfg->hypervisor : TR_KATA_DEFAULT_HYPERVISOR;
        if (!streq(hv, "qemu") && !streq(hv, "cloud-hypervisor") && !streq(hv, "firecracker"))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "config",
                                    "unknown hypervisor '%s' (qemu, cloud-hypervisor, firecracker)", hv);
        if (dup_or(cfg->runtime_path, NULL, &k->runtime_path) < 0 ||
            dup_or(cfg->image, TR_KATA_DEFAULT_IMAGE, &k->image) < 0 || dup_or(hv, NULL, &k->hypervisor) < 0 ||
            dup_or(cfg->kernel_path, TR_KATA_DEFAULT_KERNEL, &k->kernel_path) < 0 ||
            dup_or(cfg->initrd_path, TR_KATA_DEFAULT_INITRD, &k->initrd_path) < 0 ||
            dup_or(cfg->image_path, TR_KATA_DEFAULT_IMAGE_PATH, &k->image_path) < 0 ||
            dup_or(cfg->containerd_address, NULL, &k->containerd_address) < 0 ||
            dup_or(cfg->containerd_namespace, NULL, &k->containerd_namespace) < 0 ||
            dup_or(cfg->seccomp_path, NULL, &k->seccomp_path) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "config", "out of memory");
        return 0;
}

/* cloud-hypervisor and firecracker need their binary and a working KVM
 * (neither has a TCG mode); this build boots only QEMU itself. */
static int check_other_hypervisor(const tr__kata *k, tr_error **ret_err) {
        const char *bin = k->runtime_path ? k->runtime_path : k->hypervisor;
        _cleanup_free_ char *path = NULL;
        bool have_bin = tr__find_executable(bin, &path) == 0;
        /* The full probe (a real kernel boot) when QEMU and the kernel are
         * at hand: the quick one can be fooled by a nested KVM. */
        _cleanup_free_ char *qemu = NULL;
        bool boot_probe = tr__find_executable("qemu-system-x86_64", &qemu) == 0 && access(k->kernel_path, R_OK) == 0;
        bool have_kvm = tr__kata_kvm_usable(boot_probe ? qemu : NULL, boot_probe ? k->kernel_path : NULL);
        if (!have_bin || !have_kvm)
                return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "hypervisor",
                                    "hypervisor %s needs %s%s%s", k->hypervisor,
                                    have_bin ? "" : "its binary (not found in PATH: ", have_bin ? "" : bin,
                                    have_kvm ? ")"
                                             : (have_bin ? "a usable /dev/kvm (absent or not running guests)"
                                                         : ") and a usable /dev/kvm (absent or not running "
                                                           "guests)"));
        return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "hypervisor",
                            "hypervisor %s (%s) is present, but this build boots only qemu directly; use "
                            "hypervisor qemu, or the containerd runner with Kata configured for %s",
                            k->hypervisor, path, k->hypervisor);
}

static tr_backend_kind kata_kind(void *self) {
        return KATA_KIND;
}

/* One sandbox of this backend from prepare to destroy: the spec and what
 * it points at, the host uid, the VM (Runner 1; the other runners get the
 * whole spec at run). */
typedef struct kata_sb {
        char **argv, **env, **labels;
        char *input; /* the run's stdin: marker line, code, the snippet's input */
        tr__uid_lease *lease;
        tr_kata_sandbox_spec spec;
        tr__kata_vm *vm;
} kata_sb;

static void kata_destroy(void *self, void *sandbox, tr_exec *ex) {
        kata_sb *s = sandbox;
        (void) self;
        (void) ex;
        if (!s)
                return;
        tr__kata_qemu_destroy(s->vm);
        /* After QEMU is reaped: nothing of ours runs as that uid any more. */
        tr__uid_lease_free(s->lease);
        tr__strv_free(s->argv);
        tr__strv_free(s->env);
        tr__strv_free(s->labels);
        free(s->input);
        free(s);
}

static bool is_qemu(const tr__kata *k) {
        return !k->runner_ops && k->runner == TR_KATA_RUNNER_QEMU;
}

static void set_details(const tr__kata *k, tr_result *res, tr_profile profile) {
        tr_result_set_backend_kind(res, KATA_KIND);
        const char *runner_name = k->runner_ops                            ? "custom"
                                  : k->runner == TR_KATA_RUNNER_CONTAINERD ? "containerd"
                                                                           : "qemu";
        (void) tr_result_set_backend_detail(res, "runner", runner_name, NULL);
        (void) tr_result_set_backend_detail(res, "hypervisor", k->hypervisor, NULL);
        (void) tr_result_set_backend_detail(res, "profile", tr_profile_name(profile), NULL);
        if (k->runner == TR_KATA_RUNNER_CONTAINERD && !k->runner_ops) {
                (void) tr_result_set_backend_detail(res, "image", k->image, NULL);
                (void) tr_result_set_backend_detail(res, "runtime", TR_KATA_RUNTIME_TYPE, NULL);
        } else {
                (void) tr_result_set_backend_detail(res, "kernel", k->kernel_path, NULL);
                (void) tr_result_set_backend_detail(res, "image_path", k->image_path, NULL);
        }
}

/* The spec of the shape (no code yet): argv, env, labels, limits. */
static int plan(tr__kata *k, kata_sb *s, tr_exec *ex, tr_error **ret_err) {
        const tr_request *req = tr_exec_request(ex);
        tr_profile profile = tr_exec_profile(ex);
        int r = tr__runner_argv(ex, "python3", "/bin/sh", &s->argv, ret_err);
        if (r < 0)
                return r;
        for (const char *const *e = tr__runner_base_env(); *e; e++)
                if (tr__strv_push(&s->env, *e) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "prepare", "out of memory");
        if (tr__strv_pushf(&s->env, "%s=%s", TR_GATEWAY_ENV, GUEST_GATEWAY) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "prepare", "out of memory");
        if (tr__plan_labels(ex, &s->labels) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "prepare", "out of memory");
        /* The effective limits (the profile's defaults applied by the core). */
        const tr_limits *lim = tr_exec_limits(ex);
        s->spec = (tr_kata_sandbox_spec){
                .image = k->image,
                .runtime = k->runtime_path,
                .hypervisor = k->hypervisor,
                .kernel_path = k->kernel_path,
                .initrd_path = k->initrd_path,
                .image_path = k->image_path,
                .argv = (const char *const *) s->argv,
                .working_dir = "/tmp",
                .env = (const char *const *) s->env,
                .resources = { .cpu_quota_ms = lim->cpu_quota_ms,
                               .memory_bytes = lim->memory_bytes,
                               .pids_max = lim->pids_max,
                               .disk_bytes = lim->disk_bytes },
                /* Requirement 1 and 4/5: never root, the image read-only,
                 * no network device, whatever the profile. */
                .security = { .user = "65534:65534",
                              .read_only_rootfs = true,
                              .network_mode = "none",
                              .seccomp_profile =
                                      tr__profile_isolation(profile)->custom_seccomp ? k->seccomp_path : NULL },
                .profile = profile,
                .timeout_ms = tr_request_effective_timeout_ms(req),
                .boot_timeout_ms = k->boot_timeout_ms,
                .accel = k->accel,
                .labels = (const char *const *) s->labels,
        };
        return tr_kata_sandbox_spec_validate(&s->spec, ret_err);
}

static int kata_prepare(void *self, tr_exec *ex, void **ret_sandbox, tr_error **ret_err) {
        tr__kata *k = self;
        tr_result *res = tr_exec_result(ex);
        set_details(k, res, tr_exec_profile(ex));
        if (is_qemu(k) && !streq(k->hypervisor, "qemu"))
                return check_other_hypervisor(k, ret_err);
        kata_sb *s = calloc(1, sizeof(*s));
        if (!s)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "prepare", "out of memory");
        int r = plan(k, s, ex, ret_err);
        if (r >= 0 && k->resolver_ops && k->resolver_ops->resolve)
                r = k->resolver_ops->resolve(k->resolver_self, s->spec.image, ret_err);
        if (r >= 0 && k->health_ops && k->health_ops->check)
                r = k->health_ops->check(k->health_self, NULL, ret_err);
        /* The VM's own host uid, held until destroy (after the runner has
         * reaped the hypervisor): no other sandbox (VM or container) shares
         * it, so a QEMU escape cannot reach another sandbox's
         * /proc/<pid>/root or counters.  Only as root (who else could
         * switch uid); the Kata shim (containerd runner) places its
         * hypervisor itself. */
        if (r >= 0 && geteuid() == 0 && (k->runner_ops || k->runner == TR_KATA_RUNNER_QEMU)) {
                r = tr__uid_lease_acquire(&k->uid_range, &s->lease, ret_err);
                if (r >= 0) {
                        s->spec.host_uid = tr__uid_lease_uid(s->lease);
                        char uid_text[16];
                        snprintf(uid_text, sizeof uid_text, "%u", (unsigned) s->spec.host_uid);
                        (void) tr_result_set_backend_detail(res, "host_uid", uid_text, NULL);
                }
        }
        /* Runner 1 boots now, up to the interpreter waiting for its code;
         * the others get the whole spec at run. */
        if (r >= 0 && is_qemu(k))
                r = tr__kata_qemu_prepare(k, &s->spec, ex, tr_exec_session(ex), &s->vm, ret_err);
        if (r < 0) {
                kata_destroy(k, s, ex);
                return r;
        }
        *ret_sandbox = s;
        return 0;
}

static int kata_run(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err) {
        tr__kata *k = self;
        kata_sb *s = sandbox;
        size_t input_len = 0;
        free(s->input);
        s->input = NULL;
        if (tr__runner_stdin(ex, &s->input, &input_len) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "execute", "out of memory");
        s->spec.code = s->input;
        s->spec.code_len = input_len;
        s->spec.timeout_ms = tr_request_effective_timeout_ms(tr_exec_request(ex));
        /* The built-in QEMU runner enforces the timeout on the host and
         * reports what the agent applied (vmloop.c,
         * tr__kata_vm_report_applied); the core decides limits_enforced. */
        if (is_qemu(k))
                return tr__kata_qemu_exec(s->vm, &s->spec, ex, ret_err);
        if (k->runner_ops)
                return k->runner_ops->run(k->runner_self, &s->spec, ex, ret_err);
        return tr__kata_ctrd_run(k, &s->spec, ex, ret_err);
}

/* ---- sessions (Runner 1 only: vmsession.c) ---- */

static int session_vm(void *sandbox, tr__kata_vm **ret, tr_error **ret_err) {
        kata_sb *s = sandbox;
        if (!s || !s->vm)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "session",
                                    "sessions on kata need its QEMU runner");
        *ret = s->vm;
        return 0;
}

static int kata_session_io(void *self, void *sandbox, int *ret_in, int *ret_out, int *ret_errfd, tr_error **ret_err) {
        (void) self;
        tr__kata_vm *v = NULL;
        int r = session_vm(sandbox, &v, ret_err);
        if (r < 0)
                return r;
        if (tr__kata_vm_session_io(v, ret_in, ret_out, ret_errfd) < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "session",
                                    "this VM was not prepared for a session");
        return 0;
}

static int kata_signal(void *self, void *sandbox, int sig, tr_error **ret_err) {
        (void) self;
        tr__kata_vm *v = NULL;
        int r = session_vm(sandbox, &v, ret_err);
        return r < 0 ? r : tr__kata_vm_session_signal(v, sig, ret_err);
}

static int kata_session_begin(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err) {
        (void) self;
        tr__kata_vm *v = NULL;
        int r = session_vm(sandbox, &v, ret_err);
        return r < 0 ? r : tr__kata_vm_session_begin(v, ex, ret_err);
}

static void kata_session_end(void *self, void *sandbox, tr_exec *ex) {
        (void) self;
        (void) ex;
        kata_sb *s = sandbox;
        if (s && s->vm)
                tr__kata_vm_session_end(s->vm);
}

static bool kata_session_oom(void *self, void *sandbox) {
        (void) self;
        kata_sb *s = sandbox;
        return s && s->vm && tr__kata_vm_session_oom(s->vm);
}

static const tr_backend_ops kata_ops = {
        .kind = kata_kind,
        .free = kata_free,
        .prepare = kata_prepare,
        .run = kata_run,
        .destroy = kata_destroy,
        .session_io = kata_session_io,
        .signal = kata_signal,
        .session_begin = kata_session_begin,
        .session_end = kata_session_end,
        .session_oom = kata_session_oom,
};

TR_PUBLIC int tr_backend_kata_new(const tr_kata_config *cfg, tr_backend **ret_backend, tr_error **ret_err) {
        return tr__backend_kata_new_seams(cfg, NULL, ret_backend, ret_err);
}

int tr__backend_kata_new_seams(const tr_kata_config *cfg, const tr__kata_seams *seams, tr_backend **ret_backend,
                               tr_error **ret_err) {
        static const tr__kata_seams no_seams = { 0 };
        const tr__kata_seams *sm = seams ? seams : &no_seams;
        tr_kata_config copy;
        int r = tr__kata_config_copy(cfg, &copy, ret_err);
        tr__kata *k = r < 0 ? NULL : calloc(1, sizeof(*k));
        if (!k) {
                /* Ownership of the hooks' selves passes to us even on
                 * failure: release them. */
                if (sm->runner_ops && sm->runner_ops->free)
                        sm->runner_ops->free(sm->runner_self);
                if (sm->resolver_ops && sm->resolver_ops->free)
                        sm->resolver_ops->free(sm->resolver_self);
                if (sm->health_ops && sm->health_ops->free)
                        sm->health_ops->free(sm->health_self);
                return r < 0 ? r : tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "new", "out of memory");
        }
        pthread_mutex_init(&k->lock, NULL);
        k->runner_ops = sm->runner_ops;
        k->runner_self = sm->runner_self;
        k->resolver_ops = sm->resolver_ops;
        k->resolver_self = sm->resolver_self;
        k->health_ops = sm->health_ops;
        k->health_self = sm->health_self;
        r = kata_init(k, &copy, ret_err);
        if (r < 0) {
                kata_free(k);
                return r;
        }
        if (k->runner_ops && !k->runner_ops->run) {
                kata_free(k);
                return tr_error_set(ret_err, TR_E_CLIENT_NOT_CONFIGURED, KATA_KIND, "new",
                                    "the sandbox runner has no run function");
        }
        return tr_backend_new(&kata_ops, k, ret_backend, ret_err);
}

TR_PUBLIC int tr_kata_check(const tr_kata_config *cfg, char **ret_detail, tr_error **ret_err) {
        tr_kata_config copy;
        int r = tr__kata_config_copy(cfg, &copy, ret_err);
        if (r < 0)
                return r;
        tr__kata k = { 0 };
        pthread_mutex_init(&k.lock, NULL);
        r = kata_init(&k, &copy, ret_err);
        if (r >= 0) {
                if (k.runner == TR_KATA_RUNNER_CONTAINERD)
                        r = tr__kata_ctrd_check(&k, ret_detail, ret_err);
                else if (!streq(k.hypervisor, "qemu"))
                        r = check_other_hypervisor(&k, ret_err);
                else
                        r = tr__kata_qemu_check(&k, ret_detail, ret_err);
        }
        kata_free_strings(&k);
        pthread_mutex_destroy(&k.lock);
        return r;
}
