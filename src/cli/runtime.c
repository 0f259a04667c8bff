/* SPDX-License-Identifier: Apache-2.0 */
/* The CLI's runtime: every backend this build has, configured from flags. */
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "tr-config.h"
#include "util/handles.h"
#include "util/macros.h"

static const char *sdk_dir(const cli_backend_opts *o) {
        if (o->sdk_path)
                return o->sdk_path;
        const char *env = getenv("TOOLRUNTIME_SDK_DIR");
        if (env && *env)
                return env;
        if (access(TR_SDK_DIR "/toolruntime/__init__.py", R_OK) == 0)
                return TR_SDK_DIR;
        /* Running from the build tree, before `make install`. */
        return TR_SOURCE_DIR "/sdk/python";
}

void cli_containerd_config(const cli_backend_opts *o, tr_containerd_config *cfg) {
        *cfg = (tr_containerd_config){
                .size = sizeof(tr_containerd_config),
                .image_ref = o->image,
                .namespace_name = o->ctrd_namespace,
                .socket_path = o->socket,
                .runtime = o->runtime,
                .seccomp_path = o->seccomp,
                .uid_range = o->uid_range,
                .pull = o->pull,
                .teardown_at_free = o->teardown_at_free,
        };
}

void cli_kata_config(const cli_backend_opts *o, tr_kata_config *cfg) {
        *cfg = (tr_kata_config){
                .size = sizeof(tr_kata_config),
                .image = o->image,
                .hypervisor = o->hypervisor,
                .kernel_path = o->kernel,
                .initrd_path = o->initrd,
                .image_path = o->vm_image,
                .accel = o->accel,
                .containerd_address = o->socket,
                .containerd_namespace = o->ctrd_namespace,
                .seccomp_path = o->seccomp,
                .uid_range = o->uid_range,
        };
}

int cli_runtime_new(const cli_backend_opts *o, tr_log_fn log, void *log_ud, tr_runtime **ret_rt, tr_error **ret_err) {
        _cleanup_(tr_runtime_freep) tr_runtime *rt = NULL;
        int r = tr_runtime_new(&rt, ret_err);
        if (r < 0)
                return r;
        tr_runtime_set_logger(rt, log, log_ud);

        tr_backend *b = NULL;
        tr_unsafe_host_config uh = { .size = sizeof(tr_unsafe_host_config), .sdk_path = sdk_dir(o) };
        if ((r = tr_backend_unsafe_host_new(&uh, &b, ret_err)) < 0 || (r = tr_runtime_add_backend(rt, b, ret_err)) < 0)
                return r;

        tr_containerd_config ctrd;
        cli_containerd_config(o, &ctrd);
        /* The reaper's lines (teardown spans, cleanup failures) have no
         * execution to log through: they go to the runtime's logger too. */
        ctrd.log = log;
        ctrd.log_userdata = log_ud;
        if ((r = tr_backend_containerd_new(&ctrd, &b, ret_err)) < 0 || (r = tr_runtime_add_backend(rt, b, ret_err)) < 0)
                return r;

        tr_kata_config kata;
        cli_kata_config(o, &kata);
        if ((r = tr_backend_kata_new(&kata, &b, ret_err)) < 0 || (r = tr_runtime_add_backend(rt, b, ret_err)) < 0)
                return r;
        *ret_rt = TAKE_PTR(rt);
        return 0;
}

int cli_backend_option(const char *cmd, cli_backend_opts *bo, int c, const char *arg) {
        switch (c) {
        case CLI_OPT_IMAGE: bo->image = arg; return 1;
        case CLI_OPT_NAMESPACE: bo->ctrd_namespace = arg; return 1;
        case CLI_OPT_SOCKET: bo->socket = arg; return 1;
        case CLI_OPT_RUNTIME: bo->runtime = arg; return 1;
        case CLI_OPT_SECCOMP: bo->seccomp = arg; return 1;
        case CLI_OPT_KERNEL: bo->kernel = arg; return 1;
        case CLI_OPT_INITRD: bo->initrd = arg; return 1;
        case CLI_OPT_VM_IMAGE: bo->vm_image = arg; return 1;
        case CLI_OPT_HYPERVISOR: bo->hypervisor = arg; return 1;
        case CLI_OPT_ACCEL:
                if (streq(arg, "auto"))
                        bo->accel = TR_KATA_ACCEL_AUTO;
                else if (streq(arg, "kvm"))
                        bo->accel = TR_KATA_ACCEL_KVM;
                else if (streq(arg, "tcg"))
                        bo->accel = TR_KATA_ACCEL_TCG;
                else
                        return cli_usage_error(cmd, "--accel: expected auto, kvm or tcg, got '%s'", arg);
                return 1;
        default: return 0;
        }
}
