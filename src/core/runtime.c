/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runtime: validates a request, routes it to the backend registered for
 * its profile, applies the deny-unsafe_host policy and runs it through one
 * sandbox's lifecycle (sandbox.c).  It knows
 * backends only through tr_backend_ops.  Configuration happens before
 * executions start; during them the runtime is read-only, which is what makes
 * tr_runtime_execute safe from many threads without a lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/macros.h"
#include "util/timeutil.h"

struct tr_runtime {
        tr_backend *backends[TR__BACKEND_MAX];
        tr_backend_kind routes[TR__PROFILE_MAX];
        bool deny_unsafe[TR__PROFILE_MAX];
        tr_profile default_profile;
        tr_log_fn log;
        void *log_userdata;
};

TR_PUBLIC int tr_backend_new(const tr_backend_ops *ops, void *self, tr_backend **ret_backend, tr_error **ret_err) {
        bool lifecycle = ops && ops->prepare && ops->run && ops->destroy;
        if (!ops || !ops->kind || (!ops->execute && !lifecycle)) {
                if (ops && ops->free)
                        ops->free(self);
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "backend.new",
                                    "a backend needs kind and execute (or prepare, run and destroy)");
        }
        tr_backend *b = calloc(1, sizeof(*b));
        if (!b) {
                if (ops->free)
                        ops->free(self);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "backend.new", "out of memory");
        }
        b->ops = ops;
        b->self = self;
        *ret_backend = b;
        return 0;
}

TR_PUBLIC tr_backend_kind tr_backend_kind_of(const tr_backend *b) {
        return b ? b->ops->kind(b->self) : TR_BACKEND_NONE;
}

TR_PUBLIC void tr_backend_free(tr_backend *b) {
        if (!b)
                return;
        if (b->ops->free)
                b->ops->free(b->self);
        free(b);
}

TR_PUBLIC int tr_runtime_new(tr_runtime **ret_runtime, tr_error **ret_err) {
        tr_runtime *rt = calloc(1, sizeof(*rt));
        if (!rt)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "runtime.new", "out of memory");
        rt->routes[TR_PROFILE_DEV] = TR_BACKEND_UNSAFE_HOST;
        rt->routes[TR_PROFILE_STANDARD] = TR_BACKEND_CONTAINERD;
        rt->routes[TR_PROFILE_HARDENED] = TR_BACKEND_CONTAINERD;
        /* Safe by default: only dev may run code on the host. */
        rt->deny_unsafe[TR_PROFILE_STANDARD] = true;
        rt->deny_unsafe[TR_PROFILE_HARDENED] = true;
        rt->default_profile = TR_PROFILE_STANDARD;
        *ret_runtime = rt;
        return 0;
}

TR_PUBLIC void tr_runtime_free(tr_runtime *rt) {
        if (!rt)
                return;
        for (size_t i = 0; i < TR__BACKEND_MAX; i++)
                tr_backend_free(rt->backends[i]);
        free(rt);
}

TR_PUBLIC int tr_runtime_add_backend(tr_runtime *rt, tr_backend *b, tr_error **ret_err) {
        tr_backend_kind kind = tr_backend_kind_of(b);
        if (kind <= TR_BACKEND_NONE || kind >= TR__BACKEND_MAX) {
                tr_backend_free(b);
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "runtime.add_backend",
                                    "backend reports an invalid kind %d", (int) kind);
        }
        tr_backend_free(rt->backends[kind]);
        rt->backends[kind] = b;
        return 0;
}

TR_PUBLIC void tr_runtime_route(tr_runtime *rt, tr_profile p, tr_backend_kind kind) {
        if (p == TR_PROFILE_DEFAULT)
                p = rt->default_profile;
        if (p > TR_PROFILE_DEFAULT && p < TR__PROFILE_MAX && (unsigned) kind < TR__BACKEND_MAX)
                rt->routes[p] = kind;
}

TR_PUBLIC tr_backend_kind tr_runtime_route_of(const tr_runtime *rt, tr_profile p) {
        if (p == TR_PROFILE_DEFAULT)
                p = rt->default_profile;
        return (unsigned) p < TR__PROFILE_MAX ? rt->routes[p] : TR_BACKEND_NONE;
}

TR_PUBLIC void tr_runtime_set_default_profile(tr_runtime *rt, tr_profile p) {
        if (p > TR_PROFILE_DEFAULT && p < TR__PROFILE_MAX)
                rt->default_profile = p;
}

TR_PUBLIC void tr_runtime_deny_unsafe_host(tr_runtime *rt, tr_profile p, bool deny) {
        if (p > TR_PROFILE_DEFAULT && p < TR__PROFILE_MAX)
                rt->deny_unsafe[p] = deny;
}

TR_PUBLIC void tr_runtime_set_logger(tr_runtime *rt, tr_log_fn fn, void *userdata) {
        rt->log = fn;
        rt->log_userdata = userdata;
}

void tr__runtime_log(const tr_runtime *rt, tr_log_level level, const char *msg, const char *const *kv) {
        if (rt->log)
                rt->log(rt->log_userdata, level, msg, kv);
}

void tr__runtime_logger(const tr_runtime *rt, tr_log_fn *ret_fn, void **ret_userdata) {
        *ret_fn = rt->log;
        *ret_userdata = rt->log_userdata;
}

tr_profile tr__runtime_profile_of(const tr_runtime *rt, const tr_request *req) {
        return req->profile != TR_PROFILE_DEFAULT ? req->profile : rt->default_profile;
}

int tr__runtime_route_request(const tr_runtime *rt, const tr_request *req, tr_backend **ret_backend,
                              tr_error **ret_err) {
        tr_profile profile = tr__runtime_profile_of(rt, req);
        tr_backend_kind kind = rt->routes[profile];
        const char *pname = tr_profile_name(profile);
        if (kind == TR_BACKEND_NONE)
                return tr_error_set(ret_err, TR_E_RUNTIME_UNAVAILABLE, TR_BACKEND_NONE, "route",
                                    "no backend is routed for profile '%s'", pname);
        if (kind == TR_BACKEND_UNSAFE_HOST && rt->deny_unsafe[profile])
                return tr_error_set(ret_err, TR_E_BACKEND_DENIED, kind, "policy",
                                    "profile '%s' denies the unsafe_host backend: it runs code on the host without "
                                    "isolation (use -p dev for development, or a sandboxing backend)",
                                    pname);
        tr_backend *b = rt->backends[kind];
        if (!b)
                return tr_error_set(ret_err, TR_E_RUNTIME_UNAVAILABLE, kind, "route",
                                    "profile '%s' routes to the %s backend, which is not available in this runtime",
                                    pname, tr_backend_kind_name(kind));
        *ret_backend = b;
        return 0;
}

TR_PUBLIC int tr_runtime_execute(tr_runtime *rt, const tr_request *req, tr_cancel *cancel, tr_result **ret_result,
                                 tr_error **ret_err) {
        if (ret_result)
                *ret_result = NULL;
        int r = tr_request_validate(req, ret_err);
        if (r < 0)
                return r;
        /* One deadline from here over prepare and run, as a caller of
         * execute expects: the timeout covers the sandbox's creation. */
        int64_t start = tr__now_ns();
        tr_sandbox *sb = NULL;
        r = tr__sandbox_prepare(rt, req, cancel, start, 0, &sb, ret_err);
        if (r >= 0)
                r = tr__sandbox_run(sb, req, cancel, start, ret_result, ret_err);
        else if (sb)
                tr__sandbox_fail_result(sb, start, ret_result);
        tr_sandbox_free(sb);
        return r;
}
