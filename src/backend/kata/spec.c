/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox spec: validation (the seed's SandboxSpec/ResourceSpec/
 * SecuritySpec Validate), Kata's OCI annotations and Runner 2's OCI spec.
 * Pure functions: no I/O.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/seccomp.h"
#include "backend/containerd/spec.h"
#include "backend/kata/internal.h"
#include "core/plan.h"
#include "util/macros.h"
#include "util/strv.h"

static bool is_root_user(const char *user) {
        if (!user || !*user)
                return false;
        /* "root", "0", "0:0", "root:x", "1000:0" (gid 0 is root's group). */
        const char *colon = strchr(user, ':');
        size_t ulen = colon ? (size_t) (colon - user) : strlen(user);
        if ((ulen == 4 && strncmp(user, "root", 4) == 0) || (ulen == 1 && user[0] == '0'))
                return true;
        if (colon && (streq(colon + 1, "0") || streq(colon + 1, "root")))
                return true;
        return false;
}

TR_PUBLIC int tr_kata_sandbox_spec_validate(const tr_kata_sandbox_spec *spec, tr_error **ret_err) {
        if (!spec)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "validate", "no spec");
        if ((!spec->image || !*spec->image) && (!spec->image_path || !*spec->image_path))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "validate",
                                    "the sandbox needs an image or an image path");
        if (!spec->argv || !spec->argv[0] || !*spec->argv[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "validate",
                                    "the sandbox needs a command");
        const tr_kata_resources *r = &spec->resources;
        if (r->cpu_quota_ms < 0 || r->memory_bytes < 0 || r->pids_max < 0 || r->disk_bytes < 0)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, KATA_KIND, "validate",
                                    "resource limits must not be negative");
        if (r->memory_bytes > 0 && r->memory_bytes < TR_KATA_MIN_MEMORY)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, KATA_KIND, "validate",
                                    "memory limit %lld bytes is below the kata backend's minimum of %lld MiB "
                                    "(the interpreter and the agent's OOM watch need that much)",
                                    (long long) r->memory_bytes, TR_KATA_MIN_MEMORY >> 20);
        if (spec->timeout_ms < 0 || spec->boot_timeout_ms < 0)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, KATA_KIND, "validate",
                                    "timeouts must not be negative");
        if (spec->hypervisor && *spec->hypervisor && !streq(spec->hypervisor, "qemu") &&
            !streq(spec->hypervisor, "cloud-hypervisor") && !streq(spec->hypervisor, "firecracker"))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "validate",
                                    "unknown hypervisor '%s' (qemu, cloud-hypervisor, firecracker)", spec->hypervisor);
        const tr_kata_security *s = &spec->security;
        /* The profile's isolation (profile.c): a writable root or a network
         * only where the profile allows one (dev). */
        const tr__isolation *iso = tr__profile_isolation(spec->profile);
        if (s->privileged)
                return tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, KATA_KIND, "validate",
                                    "privileged sandboxes are never allowed");
        if (is_root_user(s->user))
                return tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, KATA_KIND, "validate",
                                    "the sandbox must not run as root (user '%s')", s->user);
        if (iso->read_only_rootfs && !s->read_only_rootfs)
                return tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, KATA_KIND, "validate",
                                    "the root filesystem must be read-only outside the dev profile");
        const char *net = s->network_mode && *s->network_mode ? s->network_mode : "none";
        if (!streq(net, "none") && !(iso->host_network && streq(net, "user")))
                return tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, KATA_KIND, "validate",
                                    "network mode '%s' is not allowed for this profile", net);
        return 0;
}

TR_PUBLIC void tr_kata_strv_free(char **v) {
        tr__strv_free(v);
}

/* Kata's configuration file per hypervisor (its packaging's layout). */
static const char *kata_config_file(const char *hv) {
        if (streq(hv, "cloud-hypervisor"))
                return "/opt/kata/share/defaults/kata-containers/configuration-clh.toml";
        if (streq(hv, "firecracker"))
                return "/opt/kata/share/defaults/kata-containers/configuration-fc.toml";
        return "/opt/kata/share/defaults/kata-containers/configuration-qemu.toml";
}

#define KATA_HV "io.katacontainers.config.hypervisor."

/*
 * Kata reads per-sandbox overrides from OCI annotations, and honours only
 * those its configuration lists in `enable_annotations` (a site's Kata
 * config must allow "kernel", "image", "path", "default_memory",
 * "default_vcpus" for these to take effect; otherwise Kata's defaults win,
 * which is safe).
 */
TR_PUBLIC int tr_kata_annotations(const tr_kata_sandbox_spec *spec, char ***ret_kv, tr_error **ret_err) {
        _cleanup_strv_ char **kv = NULL;
        int r = 0;
        const char *hv = spec->hypervisor && *spec->hypervisor ? spec->hypervisor : TR_KATA_DEFAULT_HYPERVISOR;
#define KV(k, ...)                                            \
        do {                                                  \
                if (r >= 0)                                   \
                        r = tr__strv_push(&kv, (k));          \
                if (r >= 0)                                   \
                        r = tr__strv_pushf(&kv, __VA_ARGS__); \
        } while (0)
        KV("io.katacontainers.config_path", "%s", kata_config_file(hv));
        if (spec->runtime && *spec->runtime && strchr(spec->runtime, '/'))
                KV(KATA_HV "path", "%s", spec->runtime);
        if (spec->kernel_path && *spec->kernel_path)
                KV(KATA_HV "kernel", "%s", spec->kernel_path);
        if (spec->image_path && *spec->image_path)
                KV(KATA_HV "image", "%s", spec->image_path);
        if (spec->resources.memory_bytes > 0)
                KV(KATA_HV "default_memory", "%" PRId64, tr__kata_guest_mem_mib(spec->resources.memory_bytes));
        if (spec->resources.cpu_quota_ms > 0)
                KV(KATA_HV "default_vcpus", "%d", tr__kata_vcpus(spec->resources.cpu_quota_ms, 1 << 10));
        /* No host filesystem sharing beyond the container's own rootfs. */
        KV("io.katacontainers.config.runtime.disable_guest_seccomp", "%s", "false");
        KV(KATA_HV "enable_iommu", "%s", "false");
#undef KV
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "annotations", "out of memory");
        *ret_kv = TAKE_PTR(kv);
        return 0;
}

static void json_decref_p(json_t **j) {
        if (*j)
                json_decref(*j);
}

int tr__kata_ctrd_spec(const tr_kata_sandbox_spec *spec, char **ret_json, tr_error **ret_err) {
        int r = tr_kata_sandbox_spec_validate(spec, ret_err);
        if (r < 0)
                return r;
        /* The guest's user (the Kata agent applies it inside the VM, so the
         * host uid pool plays no part): numeric UID:GID, else nobody. */
        uint32_t uid = 65534, gid = 65534;
        if (tr__ctrd_parse_user(spec->security.user, &uid, &gid) < 0)
                uid = gid = 65534;
        tr__ctrd_spec_input in = {
                .uid = uid,
                .gid = gid,
                .profile = spec->profile == TR_PROFILE_DEFAULT ? TR_PROFILE_STANDARD : spec->profile,
                .argv = spec->argv,
                .env = spec->env,
                .cwd = spec->working_dir,
                .memory_bytes = spec->resources.memory_bytes,
                .cpu_quota_us = spec->resources.cpu_quota_ms * 1000,
                .pids_max = spec->resources.pids_max,
                .disk_bytes = spec->resources.disk_bytes,
                .seccomp_path = spec->security.seccomp_profile,
        };
        _cleanup_free_ char *base = NULL;
        r = tr__ctrd_spec_build(&in, &base, ret_err);
        if (r < 0)
                return r;
        json_error_t jerr;
        _cleanup_(json_decref_p) json_t *root = json_loads(base, 0, &jerr);
        if (!root || !json_is_object(root))
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "spec", "the OCI spec is not a JSON object");
        _cleanup_strv_ char **kv = NULL;
        r = tr_kata_annotations(spec, &kv, ret_err);
        if (r < 0)
                return r;
        json_t *ann = json_object_get(root, "annotations");
        if (!ann) {
                ann = json_object();
                if (!ann || json_object_set_new(root, "annotations", ann) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "spec", "out of memory");
        }
        for (size_t i = 0; kv[i] && kv[i + 1]; i += 2)
                if (json_object_set_new(ann, kv[i], json_string(kv[i + 1])) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "spec", "out of memory");
        char *out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        if (!out)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "spec", "out of memory");
        *ret_json = out;
        return 0;
}

int tr__kata_seccomp_bpf(const tr_kata_sandbox_spec *spec, uint8_t **ret_prog, size_t *ret_len, tr_error **ret_err) {
        tr_profile profile = spec->profile == TR_PROFILE_DEFAULT ? TR_PROFILE_STANDARD : spec->profile;
        _cleanup_(json_decref_p) json_t *policy = NULL;
        int r = tr__ctrd_seccomp_for_profile(
                profile, profile == TR_PROFILE_HARDENED ? spec->security.seccomp_profile : NULL, &policy, ret_err);
        if (r < 0)
                return r;
        if (!policy) {
                *ret_prog = NULL;
                *ret_len = 0;
                return 0;
        }
        return tr__seccomp_bpf_compile(policy, ret_prog, ret_len, ret_err);
}
