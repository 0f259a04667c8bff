/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runner 2: Kata Containers through containerd.  containerd starts the
 * container with the io.containerd.kata.v2 runtime, whose shim
 * (containerd-shim-kata-v2) boots a VM per sandbox.  Kata is not packaged
 * for Debian 12, so on these machines this runner answers
 * kata_not_available; where the shim exists, it runs the container image
 * through the containerd runner interface (src/backend/containerd/runner.h)
 * with the Kata runtime, on one client per kata backend.
 *
 * Not wired yet, and said so in the README: the Kata annotations
 * (tr_kata_annotations, unit-tested) need an annotations field in the
 * containerd spec to reach Kata, and this runner does not serve the tool
 * gateway (the containerd backend's execute does that around its runner).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/runner.h"
#include "backend/kata/internal.h"
#include "util/macros.h"
#include "util/proc.h"

static int find_shim(const tr__kata *k, char **ret_path, tr_error **ret_err) {
        const char *want = k->runtime_path ? k->runtime_path : TR_KATA_SHIM;
        if (tr__find_executable(want, ret_path) < 0)
                return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "kata.shim",
                                    "Kata Containers is not installed: containerd has no %s runtime (%s not "
                                    "found in PATH; Kata is not packaged for Debian 12) — use the qemu runner",
                                    TR_KATA_RUNTIME_TYPE, want);
        return 0;
}

int tr__kata_ctrd_check(tr__kata *k, char **ret_detail, tr_error **ret_err) {
        _cleanup_free_ char *shim = NULL;
        int r = find_shim(k, &shim, ret_err);
        if (r < 0)
                return r;
        if (ret_detail &&
            asprintf(ret_detail, "containerd runtime %s (%s), image %s", TR_KATA_RUNTIME_TYPE, shim, k->image) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "check", "out of memory");
        return 0;
}

int tr__kata_ctrd_run(void *self, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err) {
        tr__kata *k = self;
        _cleanup_free_ char *shim = NULL;
        int r = find_shim(k, &shim, ret_err);
        if (r < 0)
                return r;
        tr_containerd_spec cs = {
                .image = spec->image,
                .runtime = TR_KATA_RUNTIME_TYPE,
                .command = spec->argv,
                .working_dir = spec->working_dir,
                .env = spec->env,
                .resources = { .memory_bytes = spec->resources.memory_bytes,
                               .cpu_quota_us = spec->resources.cpu_quota_ms * 1000,
                               .pids_limit = spec->resources.pids_max,
                               .disk_bytes = spec->resources.disk_bytes },
                .security = { .user = spec->security.user,
                              .read_only_rootfs = spec->security.read_only_rootfs,
                              .network_mode = spec->security.network_mode,
                              .seccomp_profile = spec->security.seccomp_profile,
                              .privileged = spec->security.privileged },
                .timeout_ms = spec->timeout_ms,
                .labels = spec->labels,
                .profile = spec->profile,
                .stdin_data = spec->code,
                .stdin_len = spec->code_len,
        };
        /* One client per backend, made on first use: its connections and
         * image cache serve every execution. */
        pthread_mutex_lock(&k->lock);
        if (!k->ctrd)
                r = tr__ctrd_client_new(k->containerd_address ? k->containerd_address : TR_CONTAINERD_DEFAULT_SOCKET,
                                        k->containerd_namespace ? k->containerd_namespace
                                                                : TR_CONTAINERD_DEFAULT_NAMESPACE,
                                        TR_CONTAINERD_DEFAULT_SNAPSHOTTER, NULL, &k->ctrd);
        pthread_mutex_unlock(&k->lock);
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "kata.containerd", "out of memory");
        tr_containerd_run_result res = { 0 };
        r = tr__ctrd_client_run(k->ctrd, &cs, ex, &res, ret_err);
        if (r < 0)
                return r;
        tr_result_set_exit_code(tr_exec_result(ex), res.exit_code);
        if (res.oom_killed)
                return tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, KATA_KIND, "kata.run",
                                    "the snippet exceeded its memory limit");
        return 0;
}
