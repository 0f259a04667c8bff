/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one error type: code + message + failing operation + backend +
 * retryable + errno / gRPC status (crun's libcrun_error_t).  Also the stable
 * names of codes, backend kinds, profiles and detail levels.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/macros.h"

struct tr_error {
        tr_code code;
        char *message;
        char *op;
        tr_backend_kind backend;
        bool retryable;
        int errnum;
        int grpc_status;
};

static const struct {
        const char *name;
        const char *text;
        int errnum;
        bool retryable;
} codes[TR__CODE_MAX] = {
        [TR_OK] = { "ok", "success", 0, false },
        [TR_E_RUNTIME_UNAVAILABLE] = { "runtime_unavailable", "no backend available for the profile", ENOSYS, false },
        [TR_E_BACKEND_DENIED] = { "backend_denied", "backend denied by the profile's policy", EPERM, false },
        [TR_E_SANDBOX_VIOLATION] = { "sandbox_violation", "sandbox policy violation", EPERM, false },
        [TR_E_TIMEOUT] = { "timeout", "execution timed out", ETIMEDOUT, false },
        [TR_E_RESOURCE_LIMIT] = { "resource_limit", "resource limit exceeded", ENOMEM, false },
        [TR_E_MISSING_GATEWAY] = { "missing_gateway", "a tool gateway is required", EINVAL, false },
        [TR_E_MISSING_CODE] = { "missing_code", "code is required", EINVAL, false },
        [TR_E_INVALID_LIMITS] = { "invalid_limits", "limits must not be negative", EINVAL, false },
        [TR_E_INVALID_REQUEST] = { "invalid_request", "invalid request", EINVAL, false },
        [TR_E_CONTAINERD_NOT_AVAILABLE] = { "containerd_not_available", "containerd not available", ENOENT, false },
        [TR_E_IMAGE_NOT_FOUND] = { "image_not_found", "image not found", ENOENT, false },
        [TR_E_CONTAINER_FAILED] = { "container_failed", "container execution failed", EIO, false },
        [TR_E_CLIENT_NOT_CONFIGURED] = { "client_not_configured", "runner not configured", ENOSYS, false },
        [TR_E_DAEMON_UNAVAILABLE] = { "daemon_unavailable", "daemon unavailable", ECONNREFUSED, true },
        [TR_E_SECURITY_VIOLATION] = { "security_violation", "security policy violation", EPERM, false },
        [TR_E_KATA_NOT_AVAILABLE] = { "kata_not_available", "kata containers not available", ENOENT, false },
        [TR_E_VM_CREATION_FAILED] = { "vm_creation_failed", "vm creation failed", EIO, true },
        [TR_E_VM_EXECUTION_FAILED] = { "vm_execution_failed", "vm execution failed", EIO, false },
        [TR_E_CANCELLED] = { "cancelled", "execution cancelled", ECANCELED, false },
        [TR_E_TOOL_NOT_FOUND] = { "tool_not_found", "tool not found", ENOENT, false },
        [TR_E_TOOL_FAILED] = { "tool_failed", "tool failed", EIO, false },
        [TR_E_TOOL_LIMIT] = { "tool_limit", "tool call or chain step limit reached", EDQUOT, false },
        [TR_E_INVALID_ARGUMENTS] = { "invalid_arguments", "invalid tool arguments", EINVAL, false },
        [TR_E_PROTOCOL] = { "protocol_error", "gateway protocol error", EPROTO, false },
        [TR_E_INTERNAL] = { "internal", "internal error", EIO, false },
        [TR_E_SESSION_GONE] = { "session_gone", "the session has ended", ESRCH, false },
};

TR_PUBLIC const char *tr_code_name(tr_code code) {
        if ((unsigned) code >= TR__CODE_MAX)
                return "unknown";
        return codes[code].name;
}

TR_PUBLIC const char *tr_strerror(tr_code code) {
        if ((unsigned) code >= TR__CODE_MAX)
                return "unknown error";
        return codes[code].text;
}

TR_PUBLIC int tr_code_from_name(const char *name, tr_code *ret_code) {
        for (unsigned i = 0; name && i < TR__CODE_MAX; i++)
                if (streq(codes[i].name, name)) {
                        *ret_code = (tr_code) i;
                        return 0;
                }
        return -EINVAL;
}

TR_PUBLIC tr_code tr_error_code(const tr_error *e) {
        return e ? e->code : TR_OK;
}
TR_PUBLIC const char *tr_error_code_name(const tr_error *e) {
        return tr_code_name(tr_error_code(e));
}
TR_PUBLIC const char *tr_error_message(const tr_error *e) {
        return e && e->message ? e->message : "";
}
TR_PUBLIC const char *tr_error_op(const tr_error *e) {
        return e && e->op ? e->op : "";
}
TR_PUBLIC tr_backend_kind tr_error_backend(const tr_error *e) {
        return e ? e->backend : TR_BACKEND_NONE;
}
TR_PUBLIC bool tr_error_retryable(const tr_error *e) {
        return e && e->retryable;
}
TR_PUBLIC int tr_error_errno(const tr_error *e) {
        return e ? e->errnum : 0;
}
TR_PUBLIC int tr_error_grpc_status(const tr_error *e) {
        return e ? e->grpc_status : -1;
}

TR_PUBLIC void tr_error_free(tr_error *e) {
        if (!e)
                return;
        free(e->message);
        free(e->op);
        free(e);
}

TR_PUBLIC int tr_error_set(tr_error **ret_err, tr_code code, tr_backend_kind backend, const char *op, const char *fmt,
                           ...) {
        if ((unsigned) code >= TR__CODE_MAX || code == TR_OK)
                code = TR_E_INTERNAL;
        int r = -codes[code].errnum;
        /* The first error is the root cause; later ones would only hide it. */
        if (!ret_err || *ret_err)
                return r;
        tr_error *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->code = code;
        e->backend = backend;
        e->retryable = codes[code].retryable;
        e->grpc_status = -1;
        if (op)
                e->op = strdup(op);
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&e->message, fmt, ap) < 0)
                e->message = NULL;
        va_end(ap);
        *ret_err = e;
        return r;
}

TR_PUBLIC void tr_error_set_retryable(tr_error *e, bool retryable) {
        if (e)
                e->retryable = retryable;
}
TR_PUBLIC void tr_error_set_errno(tr_error *e, int errnum) {
        if (e)
                e->errnum = errnum < 0 ? -errnum : errnum;
}
TR_PUBLIC void tr_error_set_grpc_status(tr_error *e, int status) {
        if (e)
                e->grpc_status = status;
}

TR_PUBLIC void tr_error_prefix(tr_error *e, const char *fmt, ...) {
        if (!e)
                return;
        char *pre = NULL, *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&pre, fmt, ap);
        va_end(ap);
        if (r < 0)
                return;
        if (asprintf(&msg, "%s: %s", pre, e->message ? e->message : "") >= 0) {
                free(e->message);
                e->message = msg;
        }
        free(pre);
}

static const char *const kind_names[TR__BACKEND_MAX] = {
        [TR_BACKEND_NONE] = "",
        [TR_BACKEND_UNSAFE_HOST] = "unsafe_host",
        [TR_BACKEND_DOCKER] = "docker",
        [TR_BACKEND_CONTAINERD] = "containerd",
        [TR_BACKEND_KUBERNETES] = "kubernetes",
        [TR_BACKEND_GVISOR] = "gvisor",
        [TR_BACKEND_KATA] = "kata",
        [TR_BACKEND_FIRECRACKER] = "firecracker",
        [TR_BACKEND_WASM] = "wasm",
        [TR_BACKEND_TEMPORAL] = "temporal",
        [TR_BACKEND_REMOTE] = "remote",
};

TR_PUBLIC const char *tr_backend_kind_name(tr_backend_kind kind) {
        if ((unsigned) kind >= TR__BACKEND_MAX)
                return "";
        return kind_names[kind];
}

TR_PUBLIC int tr_backend_kind_from_name(const char *name, tr_backend_kind *ret_kind) {
        for (unsigned i = 1; name && i < TR__BACKEND_MAX; i++)
                if (streq(kind_names[i], name)) {
                        *ret_kind = (tr_backend_kind) i;
                        return 0;
                }
        return -EINVAL;
}

static const char *const profile_names[TR__PROFILE_MAX] = {
        [TR_PROFILE_DEFAULT] = "",
        [TR_PROFILE_DEV] = "dev",
        [TR_PROFILE_STANDARD] = "standard",
        [TR_PROFILE_HARDENED] = "hardened",
};

TR_PUBLIC const char *tr_profile_name(tr_profile p) {
        if ((unsigned) p >= TR__PROFILE_MAX)
                return "";
        return profile_names[p];
}

TR_PUBLIC int tr_profile_from_name(const char *name, tr_profile *ret_profile) {
        for (unsigned i = 1; name && i < TR__PROFILE_MAX; i++)
                if (streq(profile_names[i], name)) {
                        *ret_profile = (tr_profile) i;
                        return 0;
                }
        return -EINVAL;
}

static const char *const detail_names[] = {
        [TR_DETAIL_SUMMARY] = "summary",
        [TR_DETAIL_SCHEMA] = "schema",
        [TR_DETAIL_FULL] = "full",
};

TR_PUBLIC const char *tr_detail_level_name(tr_detail_level level) {
        if ((unsigned) level >= ARRAY_SIZE(detail_names))
                return "summary";
        return detail_names[level];
}

TR_PUBLIC int tr_detail_level_from_name(const char *name, tr_detail_level *ret_level) {
        for (unsigned i = 0; name && i < ARRAY_SIZE(detail_names); i++)
                if (streq(detail_names[i], name)) {
                        *ret_level = (tr_detail_level) i;
                        return 0;
                }
        return -EINVAL;
}

TR_PUBLIC const char *tr_version(void) {
        return TR_VERSION_STRING;
}
