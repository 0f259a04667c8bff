/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One sandbox's lifecycle, the same for every backend: the plan (profile,
 * effective limits, deadline, output streams) is made here, once; the
 * backend brings the sandbox up (prepare), runs the code in it (run) and
 * tears it down (destroy).  Around each run the core opens the execution's
 * gateway session and afterwards decides limits_enforced (plan.c).  A backend that only has `execute` gets a
 * prepare that does nothing and a run that executes.  tr_runtime_execute is
 * prepare + run + free on one deadline; a pool prepares ahead of time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/macros.h"
#include "util/strv.h"
#include "util/timeutil.h"

struct tr_sandbox {
        tr_runtime *rt;
        tr_backend *b; /* the runtime's */
        tr_backend_kind kind;
        /* The shape a run request must have. */
        char *language;
        char **args;
        tr__egress_target *egress; /* canonical, as the shape's */
        size_t n_egress;
        /* The execution; heap-allocated with the sandbox so that a backend
         * may keep pointing at it from prepare to destroy. */
        tr_exec ex;
        tr_result *res; /* made by prepare, handed out by run */
        void *backend_sandbox;
        int64_t prepared_ns;
        bool output_ready;
        bool ran;
};

static bool is_lifecycle(const tr_backend *b) {
        return b->ops->prepare && b->ops->run && b->ops->destroy;
}

static void log_plan(const tr_sandbox *sb, const char *msg) {
        char mem[24], pids[24], cpu[24], disk[24];
        const tr_limits *l = &sb->ex.limits;
        snprintf(mem, sizeof(mem), "%lld", (long long) l->memory_bytes);
        snprintf(pids, sizeof(pids), "%lld", (long long) l->pids_max);
        snprintf(cpu, sizeof(cpu), "%lld", (long long) l->cpu_quota_ms);
        snprintf(disk, sizeof(disk), "%lld", (long long) l->disk_bytes);
        const char *kv[] = { "backend",
                             tr_backend_kind_name(sb->kind),
                             "profile",
                             tr_profile_name(sb->ex.profile),
                             "language",
                             sb->language,
                             "memory",
                             mem,
                             "pids",
                             pids,
                             "cpu_quota_ms",
                             cpu,
                             "disk",
                             disk,
                             NULL };
        tr__runtime_log(sb->rt, TR_LOG_INFO, msg, kv);
}

/* The lifecycle's own spans for --verbose (backends log their steps'). */
static void log_span(const tr_sandbox *sb, const char *step, int64_t t0) {
        char ms[24];
        snprintf(ms, sizeof ms, "%.1f", (double) (tr__now_ns() - t0) / 1e6);
        const char *kv[] = { "step", step, "ms", ms, NULL };
        tr__runtime_log(sb->rt, TR_LOG_INFO, "span", kv);
}

static void log_failure(const tr_sandbox *sb, const tr_error *err) {
        const char *kv[] = {
                "backend", tr_backend_kind_name(sb->kind), "code", tr_error_code_name(err), "op", tr_error_op(err), NULL
        };
        tr__runtime_log(sb->rt, TR_LOG_WARN, tr_error_message(err), kv);
}

/* A backend that failed without saying why still yields an error. */
static int backend_failed(tr_sandbox *sb, int r, const char *op, tr_error **ret_err) {
        if (ret_err && !*ret_err)
                tr_error_set(ret_err, TR_E_INTERNAL, sb->kind, op, "backend failed without an error (%s)",
                             strerror(-r));
        if (ret_err && *ret_err)
                log_failure(sb, *ret_err);
        return r;
}

static int sandbox_new(tr_runtime *rt, const tr_request *shape, tr_backend *b, tr_sandbox **ret, tr_error **ret_err) {
        tr_sandbox *sb = calloc(1, sizeof(*sb));
        if (!sb)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "prepare", "out of memory");
        sb->rt = rt;
        sb->b = b;
        sb->kind = tr_backend_kind_of(b);
        pthread_mutex_init(&sb->ex.lock, NULL);
        *ret = sb;
        sb->language = strdup(tr_request_effective_language(shape));
        int r = sb->language ? 0 : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < tr_request_arg_count(shape); i++)
                r = tr__strv_push(&sb->args, tr_request_arg_at(shape, i));
        if (r >= 0 && shape->n_egress) {
                sb->egress = malloc(shape->n_egress * sizeof *sb->egress);
                if (sb->egress) {
                        memcpy(sb->egress, shape->egress_targets, shape->n_egress * sizeof *sb->egress);
                        sb->n_egress = shape->n_egress;
                } else
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = tr_result_new(&sb->res, NULL);
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, sb->kind, "prepare", "out of memory");
        sb->res->backend = sb->kind;
        return 0;
}

int tr__sandbox_prepare(tr_runtime *rt, const tr_request *shape, tr_cancel *cancel, int64_t start, int64_t extra_ms,
                        tr_sandbox **ret_sandbox, tr_error **ret_err) {
        *ret_sandbox = NULL;
        tr_backend *b = NULL;
        int r = tr__runtime_route_request(rt, shape, &b, ret_err);
        if (r < 0)
                return r;
        /* The profile's defaults and refusals, decided once for every
         * backend (profile.c); the request itself stays as the caller set it. */
        tr_profile profile = tr__runtime_profile_of(rt, shape);
        tr_limits limits;
        if ((r = tr__profile_effective_limits(profile, &shape->limits, &limits, ret_err)) < 0)
                return r;
        if ((r = tr__profile_check_egress(profile, tr_backend_kind_of(b), shape, ret_err)) < 0)
                return r;
        tr_sandbox *sb = NULL;
        if ((r = sandbox_new(rt, shape, b, &sb, ret_err)) < 0) {
                tr_sandbox_free(sb);
                return r;
        }
        tr_exec *ex = &sb->ex;
        ex->req = shape;
        ex->res = sb->res;
        ex->cancel = cancel;
        ex->profile = profile;
        ex->limits = limits;
        tr__runtime_logger(rt, &ex->log, &ex->log_userdata);
        if ((r = tr__exec_init_output(ex, tr_request_max_output(shape))) < 0) {
                tr_error_set(ret_err, TR_E_INTERNAL, sb->kind, "output", "setting up the output streams: %s",
                             strerror(-r));
                tr_sandbox_free(sb);
                return r;
        }
        sb->output_ready = true;
        ex->session = shape->session;
        ex->ahead = extra_ms > 0;
        ex->deadline_ns = start + (tr_request_effective_timeout_ms(shape) + extra_ms) * TR_NSEC_PER_MSEC;
        *ret_sandbox = sb;
        if (!is_lifecycle(b))
                return 0;
        log_plan(sb, "prepare");
        int64_t t0 = tr__now_ns();
        r = b->ops->prepare(b->self, ex, &sb->backend_sandbox, ret_err);
        sb->prepared_ns = tr__now_ns();
        log_span(sb, "prepare", t0);
        if (r < 0)
                return backend_failed(sb, r, "prepare", ret_err);
        return 0;
}

void tr__sandbox_fail_result(tr_sandbox *sb, int64_t start, tr_result **ret_result) {
        if (!sb->res)
                return;
        sb->res->duration_us = (tr__now_ns() - start) / 1000;
        if (sb->output_ready)
                (void) tr__exec_finish_output(&sb->ex, NULL);
        sb->ex.res = NULL;
        if (ret_result)
                *ret_result = TAKE_PTR(sb->res);
}

/* The same allowlist, entry for entry in canonical form: a pooled sandbox
 * whose proxy admits other hosts must never serve the request. */
static bool same_egress(const tr_sandbox *sb, const tr_request *req) {
        if (req->n_egress != sb->n_egress)
                return false;
        for (size_t i = 0; i < sb->n_egress; i++)
                if (req->egress_targets[i].port != sb->egress[i].port ||
                    !streq(req->egress_targets[i].host, sb->egress[i].host))
                        return false;
        return true;
}

/* Does `req` fit the sandbox prepared for its shape? */
static int check_fits(const tr_sandbox *sb, const tr_request *req, tr_error **ret_err) {
        const char *why = NULL;
        tr_limits limits;
        if (tr__runtime_profile_of(sb->rt, req) != sb->ex.profile)
                why = "profile";
        else if (!streq(tr_request_effective_language(req), sb->language))
                why = "language";
        else if (tr__profile_effective_limits(sb->ex.profile, &req->limits, &limits, NULL) < 0 ||
                 memcmp(&limits, &sb->ex.limits, sizeof(limits)) != 0)
                why = "limits";
        else if (tr_request_arg_count(req) != tr__strv_len(sb->args))
                why = "arguments";
        else if (!same_egress(sb, req))
                why = "egress allowlist";
        for (size_t i = 0; !why && i < tr_request_arg_count(req); i++)
                if (!streq(tr_request_arg_at(req, i), sb->args[i]))
                        why = "arguments";
        if (why)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, sb->kind, "sandbox.run",
                                    "the request's %s differ(s) from what the sandbox was prepared for", why);
        return 0;
}

bool tr__sandbox_fits(const tr_sandbox *sb, const tr_request *req) {
        return !sb->ran && sb->res && check_fits(sb, req, NULL) >= 0;
}

int tr__sandbox_run(tr_sandbox *sb, const tr_request *req, tr_cancel *cancel, int64_t start, tr_result **ret_result,
                    tr_error **ret_err) {
        if (sb->ran || !sb->res)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, sb->kind, "sandbox.run",
                                    "a sandbox runs one snippet: this one already ran (or failed to prepare)");
        int r = check_fits(sb, req, ret_err);
        if (r < 0)
                return r;
        sb->ran = true;
        tr_exec *ex = &sb->ex;
        /* What is bound at run time: the code, the gateway (the tools), the
         * timeout, the output cap and callback, the cancel token. */
        ex->req = req;
        ex->cancel = cancel;
        ex->out.limit = ex->err.limit = ex->value.limit = ex->line.limit = tr_request_max_output(req);
        tr_exec_set_deadline_ns(ex, start + tr_request_effective_timeout_ms(req) * TR_NSEC_PER_MSEC);
        log_plan(sb, "execute");

        tr_error *err = NULL;
        const tr_backend_ops *ops = sb->b->ops;
        if (is_lifecycle(sb->b) && tr__now_ns() - sb->prepared_ns > TR_SANDBOX_MAX_IDLE_MS * TR_NSEC_PER_MSEC)
                r = tr_error_set(&err, TR_E_TIMEOUT, sb->kind, "sandbox.run",
                                 "the sandbox waited longer than %d ms for its code and was stopped",
                                 TR_SANDBOX_MAX_IDLE_MS);
        else if ((r = tr__exec_open_gateway(ex, &err)) < 0)
                ;
        else if (!is_lifecycle(sb->b))
                r = ops->execute(sb->b->self, ex, &err);
        else
                r = ops->run(sb->b->self, sb->backend_sandbox, ex, &err);
        /* After the backend's run the sandbox's end of every gateway stream
         * is gone: closing joins the server threads, so every tool call is
         * in the result before it is handed out. */
        tr__exec_close_gateway(ex);
        tr__exec_decide_enforced(ex);
        log_span(sb, "execute", start);
        if (r < 0)
                backend_failed(sb, r, "execute", &err);
        sb->res->duration_us = (tr__now_ns() - start) / 1000;
        /* The backend's error (a timeout, say) says more than a value
         * problem it may have caused. */
        tr_error *verr = NULL;
        if (tr__exec_finish_output(ex, &verr) < 0 && r >= 0) {
                r = -EINVAL;
                err = TAKE_PTR(verr);
                log_failure(sb, err);
        }
        tr_error_free(verr);
        if (r < 0) {
                if (ret_err && !*ret_err)
                        *ret_err = err;
                else
                        tr_error_free(err);
        }
        /* The result and the request are the caller's from here: destroy
         * gets the exec for logging only. */
        ex->res = NULL;
        ex->req = NULL;
        if (ret_result)
                *ret_result = TAKE_PTR(sb->res);
        return r;
}

TR_PUBLIC int tr_runtime_prepare(tr_runtime *rt, const tr_request *shape, tr_cancel *cancel, tr_sandbox **ret_sandbox,
                                 tr_error **ret_err) {
        if (!rt || !ret_sandbox)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "prepare", "invalid argument");
        int r = tr__request_validate_shape(shape, ret_err);
        if (r < 0)
                return r;
        tr_sandbox *sb = NULL;
        r = tr__sandbox_prepare(rt, shape, cancel, tr__now_ns(), TR_SANDBOX_MAX_IDLE_MS, &sb, ret_err);
        if (r < 0) {
                tr_sandbox_free(sb);
                return r;
        }
        /* The shape is the caller's: nothing may read it after this. */
        sb->ex.req = NULL;
        *ret_sandbox = sb;
        return 0;
}

TR_PUBLIC int tr_sandbox_run(tr_sandbox *sb, const tr_request *req, tr_cancel *cancel, tr_result **ret_result,
                             tr_error **ret_err) {
        if (ret_result)
                *ret_result = NULL;
        if (!sb)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "sandbox.run", "no sandbox");
        int r = tr_request_validate(req, ret_err);
        if (r < 0)
                return r;
        return tr__sandbox_run(sb, req, cancel, tr__now_ns(), ret_result, ret_err);
}

TR_PUBLIC void tr_sandbox_free(tr_sandbox *sb) {
        if (!sb)
                return;
        if (sb->backend_sandbox)
                sb->b->ops->destroy(sb->b->self, sb->backend_sandbox, &sb->ex);
        tr__exec_close_gateway(&sb->ex);
        if (sb->output_ready)
                tr__exec_done_output(&sb->ex);
        pthread_mutex_destroy(&sb->ex.lock);
        tr_result_free(sb->res);
        free(sb->language);
        tr__strv_free(sb->args);
        free(sb->egress);
        free(sb);
}

/* ---- sessions ------------------------------------------------------------ */

/* A session drives the sandbox's interpreter itself (session.c): the
 * backend hands over its pipes and delivers signals; each execution gets a
 * fresh exec state on the sandbox's one tr_exec, which the backend may keep
 * pointing at from prepare to destroy. */

int tr__sandbox_session_io(tr_sandbox *sb, int *ret_in, int *ret_out, int *ret_err_fd, tr_error **ret_err) {
        const tr_backend_ops *ops = sb->b->ops;
        if (!ops->session_io || !ops->signal || !sb->backend_sandbox)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, sb->kind, "session.new",
                                    "the %s backend has no sessions", tr_backend_kind_name(sb->kind));
        return ops->session_io(sb->b->self, sb->backend_sandbox, ret_in, ret_out, ret_err_fd, ret_err);
}

int tr__sandbox_signal(tr_sandbox *sb, int sig, tr_error **ret_err) {
        return sb->b->ops->signal(sb->b->self, sb->backend_sandbox, sig, ret_err);
}

bool tr__sandbox_oom(tr_sandbox *sb) {
        const tr_backend_ops *ops = sb->b->ops;
        return ops->session_oom && sb->backend_sandbox && ops->session_oom(sb->b->self, sb->backend_sandbox);
}

tr_backend_kind tr__sandbox_kind(const tr_sandbox *sb) {
        return sb->kind;
}

tr_profile tr__sandbox_profile(const tr_sandbox *sb) {
        return sb->ex.profile;
}

const tr_limits *tr__sandbox_limits(const tr_sandbox *sb) {
        return &sb->ex.limits;
}

tr_exec *tr__sandbox_exec(tr_sandbox *sb) {
        return &sb->ex;
}

int tr__sandbox_session_begin(tr_sandbox *sb, const tr_request *req, tr_cancel *cancel, int64_t deadline_ns,
                              tr_error **ret_err) {
        tr_exec *ex = &sb->ex;
        tr_result *res = NULL;
        if (tr_result_new(&res, NULL) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, sb->kind, "session.execute", "out of memory");
        res->backend = sb->kind;
        /* What prepare reported (image, container id, host uid...) holds for
         * every execution of the sandbox. */
        for (size_t i = 0; sb->res && i < sb->res->details.n; i++)
                (void) tr_result_set_backend_detail(res, sb->res->details.items[i].key, sb->res->details.items[i].value,
                                                    NULL);
        pthread_mutex_lock(&ex->lock);
        if (sb->output_ready)
                tr__exec_done_output(ex);
        sb->output_ready = false;
        ex->match = 0;
        ex->eager_newline = ex->in_value = ex->have_value = false;
        pthread_mutex_unlock(&ex->lock);
        ex->res = res;
        ex->req = req;
        ex->cancel = cancel;
        tr_exec_set_deadline_ns(ex, deadline_ns);
        int r = tr__exec_init_output(ex, tr_request_max_output(req));
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, sb->kind, "output", "setting up the output streams: %s",
                                    strerror(-r));
        sb->output_ready = true;
        log_plan(sb, "execute");
        if ((r = tr__exec_open_gateway(ex, ret_err)) < 0)
                return r;
        const tr_backend_ops *ops = sb->b->ops;
        r = ops->session_begin ? ops->session_begin(sb->b->self, sb->backend_sandbox, ex, ret_err) : 0;
        tr__exec_decide_enforced(ex);
        if (r < 0)
                return backend_failed(sb, r, "session.begin", ret_err);
        return 0;
}

void tr__sandbox_session_end(tr_sandbox *sb, int64_t start, tr_result **ret_result, tr_error **ret_verr) {
        tr_exec *ex = &sb->ex;
        const tr_backend_ops *ops = sb->b->ops;
        if (ops->session_end && sb->backend_sandbox)
                ops->session_end(sb->b->self, sb->backend_sandbox, ex);
        tr__exec_close_gateway(ex);
        tr_result *res = ex->res;
        if (res) {
                res->duration_us = (tr__now_ns() - start) / 1000;
                if (sb->output_ready)
                        (void) tr__exec_finish_output(ex, ret_verr);
        }
        ex->res = NULL;
        ex->req = NULL;
        ex->cancel = NULL;
        if (ret_result)
                *ret_result = res;
        else
                tr_result_free(res);
}
