/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The containerd backend: the tr_backend_ops table and the sandbox lifecycle
 *
 *   prepare  health check -> image resolution -> uid, gateway directory,
 *            spec -> container created, task started, interpreter waiting
 *   run      gateway session -> the snippet on stdin -> exit, OOM, signal
 *   destroy  the reaper (sandbox.c) -> gateway directory -> uid
 *
 * with the runner, the image resolver and the health checker behind their
 * own ops tables (public, so that tests inject fakes; the real ones talk to
 * containerd).  The backend handle is immutable after construction, so
 * executions run in parallel without a lock (the real runner's image cache
 * has its own).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/containerd/client.h"
#include "backend/containerd/gateway.h"
#include "backend/containerd/image.h"
#include "backend/containerd/pull.h"
#include "backend/containerd/sandbox.h"
#include "backend/containerd/seams.h"
#include "backend/containerd/spec.h"
#include "core/plan.h"
#include "core/runner.h"
#include "core/uidalloc.h"
#include "egress/egress.h"
#include "util/config.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

/* The health check gets at most this long, whatever the execution's
 * deadline: a daemon that does not answer a Version call in 5 s is not
 * going to run a sandbox. */
#define HEALTH_TIMEOUT_NS (5LL * 1000000000LL)
typedef struct ctrd_backend {
        tr__ctrd_client client;
        char *image_ref;
        char *runtime;
        char *seccomp_path;
        unsigned flags;
        const tr_containerd_runner_ops *runner;
        void *runner_self;
        const tr_containerd_image_resolver_ops *resolver;
        void *resolver_self;
        const tr_containerd_health_ops *health;
        void *health_self;
        tr_uid_range uid_range; /* the sandboxes' host uids (zero: the default) */
} ctrd_backend;

/* ---- the real health checker and image resolver ------------------------------ */

static int real_health_check(void *self, tr_exec *ex, tr_error **ret_err) {
        tr__ctrd_client *cl = self;
        int64_t deadline = tr__now_ns() + HEALTH_TIMEOUT_NS;
        if (deadline > tr_exec_deadline_ns(ex))
                deadline = tr_exec_deadline_ns(ex);
        tr__grpc_conn *conn = NULL;
        int r = tr__ctrd_client_connect(cl, deadline, tr_exec_cancel_fd(ex), &conn, ret_err);
        if (r < 0)
                return r;
        tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = deadline, .cancel_fd = tr_exec_cancel_fd(ex) };
        tr_error *err = NULL;
        r = tr__ctrd_version(&cx, NULL, &err);
        tr__ctrd_client_release(cl, conn);
        if (r < 0 && tr_error_code(err) == TR_E_TIMEOUT && deadline == tr_exec_deadline_ns(ex)) {
                /* The execution's own deadline ran out, not the daemon's patience. */
                tr_error_free(err);
                return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_CONTAINERD, "health",
                                    "execution timed out while checking containerd");
        }
        if (r < 0 && tr_error_code(err) == TR_E_TIMEOUT) {
                tr_error_free(err);
                tr_error_set(ret_err, TR_E_DAEMON_UNAVAILABLE, TR_BACKEND_CONTAINERD, "health",
                             "containerd at %s did not answer a version request in time", cl->socket_path);
                if (ret_err && *ret_err)
                        tr_error_set_retryable(*ret_err, true);
                return -ETIMEDOUT;
        }
        if (r < 0) {
                if (ret_err)
                        *ret_err = err;
                else
                        tr_error_free(err);
        }
        return r;
}

static const tr_containerd_health_ops real_health = { .check = real_health_check };

static int real_resolve(void *self, const char *ref, tr_exec *ex, tr_error **ret_err) {
        tr__ctrd_client *cl = self;
        tr__grpc_conn *conn = NULL;
        int r = tr__ctrd_client_connect(cl, tr_exec_deadline_ns(ex), tr_exec_cancel_fd(ex), &conn, ret_err);
        if (r < 0)
                return r;
        tr__ctrd_ctx cx = { .conn = conn, .deadline_ns = tr_exec_deadline_ns(ex), .cancel_fd = tr_exec_cancel_fd(ex) };
        _cleanup_free_ char *chain = NULL;
        tr_error *err = NULL;
        r = tr__ctrd_client_resolve(cl, &cx, ref, &chain, &err);
        if (r < 0 && tr_error_code(err) == TR_E_IMAGE_NOT_FOUND && cl->pull)
                r = tr__ctrd_pull_on_demand(cl, conn, ref, ex, TAKE_PTR(err), ret_err);
        tr__ctrd_client_release(cl, conn);
        if (r < 0 && ret_err && err)
                *ret_err = err;
        else
                tr_error_free(err);
        return r;
}

static const tr_containerd_image_resolver_ops real_resolver = { .resolve = real_resolve };

/* ---- the backend ------------------------------------------------------------ */

static tr_backend_kind ctrd_kind(void *self) {
        return TR_BACKEND_CONTAINERD;
}

static void ctrd_free(void *self) {
        ctrd_backend *b = self;
        if (!b)
                return;
        if (b->runner && b->runner != &tr__ctrd_real_runner && b->runner->free)
                b->runner->free(b->runner_self);
        if (b->resolver && b->resolver != &real_resolver && b->resolver->free)
                b->resolver->free(b->resolver_self);
        if (b->health && b->health != &real_health && b->health->free)
                b->health->free(b->health_self);
        tr__ctrd_client_done(&b->client);
        free(b->image_ref);
        free(b->runtime);
        free(b->seccomp_path);
        free(b);
}

/* One sandbox of this backend, from prepare to destroy: what the spec
 * points at, the host uid, the gateway directory and the real runner's
 * containerd objects. */
typedef struct ctrd_sb {
        char id[TR_CTRD_ID_SIZE];
        char user[32];
        tr__uid_lease *lease;
        char **argv, **env, **labels;
        char *gw_outer, *gw_inner;
        int gw_lock;
        tr_containerd_spec spec;
        tr__ctrd_sandbox *sb;    /* the real runner's; NULL with an injected runner */
        tr__egress_proxy *proxy; /* with an egress allowlist, from start to destroy */
} ctrd_sb;

static int oom_err(tr_error **ret_err, const char *op) {
        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, op, "out of memory"), -ENOMEM;
}

static void ctrd_destroy(void *self, void *sandbox, tr_exec *ex) {
        ctrd_backend *b = self;
        ctrd_sb *s = sandbox;
        if (!s)
                return;
        /* The proxy first: its connections end before the sandbox does. */
        if (s->proxy) {
                if (ex)
                        tr__exec_set_egress(ex, NULL);
                tr__egress_proxy_free(s->proxy);
        }
        /* The uid goes with the sandbox: released once its task is deleted,
         * so no process runs as it any more (here or on the reaper). */
        if (s->sb)
                tr__ctrd_sandbox_reap(&b->client, s->sb, ex, TAKE_PTR(s->lease));
        if (s->gw_outer)
                (void) tr__rm_rf(s->gw_outer);
        /* After the directory it guards is gone (gc's side of the lock). */
        tr__closep(&s->gw_lock);
        tr__uid_lease_free(s->lease);
        tr__strv_free(s->argv);
        tr__strv_free(s->env);
        tr__strv_free(s->labels);
        free(s->gw_outer);
        free(s->gw_inner);
        free(s);
}

/* Checks that need neither the daemon nor the code. */
static int ctrd_check_plan(const ctrd_backend *b, const tr_limits *lim, tr_error **ret_err) {
        /* Before anything talks to containerd: a limit the backend cannot
         * start with is the caller's error, not the daemon's. */
        if (tr__ctrd_check_min_memory(lim->memory_bytes, ret_err) < 0)
                return -EINVAL;
        if (b->flags & TR__CONTAINERD_NO_RUNNER)
                return tr_error_set(ret_err, TR_E_CLIENT_NOT_CONFIGURED, TR_BACKEND_CONTAINERD, "execute",
                                    "containerd client not configured: no container runner"),
                       -ENOTCONN;
        return 0;
}

static void set_details(const ctrd_backend *b, ctrd_sb *s, tr_result *res, tr_profile profile) {
        (void) tr_result_set_backend_detail(res, "image", b->image_ref, NULL);
        (void) tr_result_set_backend_detail(res, "namespace", b->client.ns, NULL);
        (void) tr_result_set_backend_detail(res, "runtime", b->runtime, NULL);
        (void) tr_result_set_backend_detail(res, "profile", tr_profile_name(profile), NULL);
        (void) tr_result_set_backend_detail(res, "container_id", s->id, NULL);
        (void) tr_result_set_backend_detail(res, "snapshotter", b->client.snapshotter, NULL);
}

/* The environment, and the gateway directory the spec mounts (the session
 * listens in it at run time: tools are bound then). */
static int plan_env_and_gateway(const ctrd_backend *b, ctrd_sb *s, const tr_request *req, uid_t uid,
                                tr_error **ret_err) {
        for (const char *const *e = tr__runner_base_env(); e && *e; e++)
                if (tr__strv_push(&s->env, *e) < 0)
                        return oom_err(ret_err, "prepare");
        /* With an allowlist, every HTTP client library the snippet may use
         * finds the proxy the backend puts on the sandbox's own 127.0.0.1
         * (egress_start); the environment is fixed at container create, so
         * the port is a constant.  NO_PROXY is empty: nothing bypasses it
         * (and nothing could: there is no route). */
        if (tr_request_egress_allow_count(req)) {
                /* The proxy listens in the network namespace of the task's
                 * host process: runc's container lives there, but a runtime
                 * with a network stack of its own (gVisor's netstack, a
                 * Kata VM) would never see it.  Refused rather than left
                 * unreachable. */
                if (!strstr(b->runtime, ".runc."))
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "egress",
                                            "an egress allowlist needs the runc runtime (io.containerd.runc.v2): "
                                            "runtime %s has a network stack of its own that the egress proxy "
                                            "cannot be reached from",
                                            b->runtime);
                static const char *const names[] = { "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                                     "http_proxy", "https_proxy", "all_proxy" };
                for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                        if (tr__strv_pushf(&s->env, "%s=http://127.0.0.1:%d", names[i], TR_EGRESS_PROXY_PORT) < 0)
                                return oom_err(ret_err, "prepare");
                if (tr__strv_push(&s->env, "NO_PROXY=") < 0 || tr__strv_push(&s->env, "no_proxy=") < 0)
                        return oom_err(ret_err, "prepare");
        }
        if (!tr_request_gateway(req))
                return 0;
        int r = tr__ctrd_gateway_dir_make(b->client.state_dir, s->id, uid, &s->gw_outer, &s->gw_inner, &s->gw_lock,
                                          ret_err);
        if (r < 0)
                return r;
        if (tr__strv_pushf(&s->env, "%s=%s", TR_GATEWAY_ENV, TR__CTRD_GATEWAY_ENV_VALUE) < 0)
                return oom_err(ret_err, "prepare");
        return 0;
}

static int ctrd_plan(ctrd_backend *b, ctrd_sb *s, tr_exec *ex, tr_error **ret_err) {
        const tr_request *req = tr_exec_request(ex);
        tr_profile profile = tr_exec_profile(ex);
        /* The effective limits and the isolation are the core's (profile.c):
         * this builds what they say, with no policy of its own. */
        const tr_limits lim = *tr_exec_limits(ex);
        const tr__isolation *iso = tr__profile_isolation(profile);
        int r;
        if ((r = tr__runner_argv(ex, "python3", "/bin/sh", &s->argv, ret_err)) < 0)
                return r;
        /* The sandbox's own host uid (and gid), held until destroy. */
        if ((r = tr__uid_lease_acquire(&b->uid_range, &s->lease, ret_err)) < 0)
                return r;
        uid_t uid = tr__uid_lease_uid(s->lease);
        snprintf(s->user, sizeof s->user, "%u:%u", (unsigned) uid, (unsigned) uid);
        char uid_text[16];
        snprintf(uid_text, sizeof uid_text, "%u", (unsigned) uid);
        (void) tr_result_set_backend_detail(tr_exec_result(ex), "host_uid", uid_text, NULL);
        if ((r = plan_env_and_gateway(b, s, req, uid, ret_err)) < 0)
                return r;
        if (tr__plan_labels(ex, &s->labels) < 0)
                return oom_err(ret_err, "prepare");
        s->spec = (tr_containerd_spec){
                .id = s->id,
                .image = b->image_ref,
                .runtime = b->runtime,
                .command = (const char *const *) s->argv,
                .working_dir = "/tmp",
                .env = (const char *const *) s->env,
                .resources = {
                        .memory_bytes = lim.memory_bytes,
                        .cpu_quota_us = lim.cpu_quota_ms * 1000,
                        .pids_limit = lim.pids_max,
                        .disk_bytes = lim.disk_bytes,
                },
                .security = {
                        .user = s->user,
                        .read_only_rootfs = iso->read_only_rootfs,
                        .network_mode = iso->host_network ? "host" : "none",
                        .seccomp_profile = iso->custom_seccomp ? b->seccomp_path : NULL,
                        .privileged = false,
                },
                .timeout_ms = tr_request_effective_timeout_ms(req),
                .labels = (const char *const *) s->labels,
                .profile = profile,
                .gateway_dir = s->gw_inner,
        };
        return tr_containerd_spec_validate(&s->spec, ret_err);
}

/* The sandbox's egress proxy, when its request has an allowlist: listening
 * on 127.0.0.1:TR_EGRESS_PROXY_PORT inside the task's network namespace,
 * before any code is sent (prepare: pooled sandboxes and sessions have it
 * from the start; it lives until destroy).  The snippet cannot have taken
 * the port first: it has not been sent yet. */
static int egress_start(ctrd_sb *s, tr_exec *ex, tr_error **ret_err) {
        const tr_request *req = tr_exec_request(ex);
        size_t n = tr_request_egress_allow_count(req);
        if (!n)
                return 0;
        tr__egress_target allow[TR_MAX_EGRESS_ALLOW];
        for (size_t i = 0; i < n; i++) {
                const char *e = tr_request_egress_allow_at(req, i);
                if (tr__egress_parse(e, strlen(e), &allow[i], NULL) < 0)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "egress",
                                            "invalid egress allowlist entry '%s'", e);
        }
        int64_t t = tr__now_ns();
        int fd = -1;
        int r = tr__egress_listen_netns((pid_t) tr__ctrd_sandbox_pid(s->sb), TR_EGRESS_PROXY_PORT, &fd, ret_err);
        if (r < 0)
                return r;
        tr_log_fn log = NULL;
        void *log_userdata = NULL;
        tr__exec_logger(ex, &log, &log_userdata);
        if ((r = tr__egress_proxy_start(fd, allow, n, log, log_userdata, &s->proxy, ret_err)) < 0)
                return r;
        tr__exec_set_egress(ex, s->proxy);
        char ms[24];
        snprintf(ms, sizeof ms, "%.1f", (double) (tr__now_ns() - t) / 1e6);
        tr_exec_log(ex, TR_LOG_INFO, "span", "step", "egress.proxy", "ms", ms, NULL);
        return 0;
}

static int ctrd_prepare(void *self, tr_exec *ex, void **ret_sandbox, tr_error **ret_err) {
        ctrd_backend *b = self;
        tr_result *res = tr_exec_result(ex);
        tr_result_set_backend_kind(res, TR_BACKEND_CONTAINERD);
        int r = ctrd_check_plan(b, tr_exec_limits(ex), ret_err);
        if (r < 0)
                return r;
        ctrd_sb *s = calloc(1, sizeof *s);
        if (!s)
                return oom_err(ret_err, "prepare");
        s->gw_lock = -1;
        if ((r = tr__ctrd_random_id(s->id)) < 0) {
                free(s);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "prepare", "getrandom: %s",
                                    strerror(-r)),
                       r;
        }
        set_details(b, s, res, tr_exec_profile(ex));
        /* With the real runner, its own first calls are the health check and
         * the image resolution (pulling when allowed): no extra round trips
         * on the hot path.  Injected checkers and resolvers still run. */
        bool real = b->runner == &tr__ctrd_real_runner;
        if (b->health && !(real && b->health == &real_health) &&
            (r = b->health->check(b->health_self, ex, ret_err)) < 0)
                goto fail;
        if (b->resolver && !(real && b->resolver == &real_resolver) &&
            (r = b->resolver->resolve(b->resolver_self, b->image_ref, ex, ret_err)) < 0)
                goto fail;
        if ((r = ctrd_plan(b, s, ex, ret_err)) < 0)
                goto fail;
        /* The real runner brings the container up and starts its
         * interpreter now; an injected one gets the whole spec at run. */
        if (b->runner == &tr__ctrd_real_runner) {
                r = tr__ctrd_sandbox_prepare(&b->client, &s->spec, ex, &s->sb, ret_err);
                if (r >= 0)
                        r = tr__ctrd_sandbox_start(s->sb, &s->spec, ex, ret_err);
                if (r >= 0)
                        r = egress_start(s, ex, ret_err);
                if (r < 0)
                        goto fail;
        }
        *ret_sandbox = s;
        return 0;
fail:
        ctrd_destroy(b, s, ex);
        return r;
}

/* What the sandbox holds the snippet to: the task's cgroup carries the
 * memory, CPU and pids limits; the disk limit holds only where /tmp's
 * size-capped tmpfs is the one writable place (a read-only root). */
static void report_applied(tr_exec *ex) {
        unsigned a = TR_APPLIED_MEMORY | TR_APPLIED_CPU | TR_APPLIED_PIDS;
        if (tr__profile_isolation(tr_exec_profile(ex))->read_only_rootfs)
                a |= TR_APPLIED_DISK;
        tr_exec_report_applied(ex, a);
}

static int ctrd_run(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err) {
        ctrd_backend *b = self;
        ctrd_sb *s = sandbox;
        tr_result *res = tr_exec_result(ex);
        const tr_limits lim = *tr_exec_limits(ex);
        _cleanup_free_ char *input = NULL;
        size_t input_len = 0;
        /* Reported first, so that a failure from here on keeps it. */
        report_applied(ex);
        int r = tr__ctrd_gateway_listen(s->gw_inner, tr__uid_lease_uid(s->lease), ex, ret_err);
        if (r < 0)
                goto out;
        if (tr__runner_stdin(ex, &input, &input_len) < 0) {
                r = oom_err(ret_err, "execute");
                goto out;
        }
        s->spec.stdin_data = input;
        s->spec.stdin_len = input_len;
        s->spec.timeout_ms = tr_request_effective_timeout_ms(tr_exec_request(ex));

        tr_containerd_run_result rr = { .exit_code = -1 };
        if (s->sb)
                r = tr__ctrd_sandbox_run(s->sb, &s->spec, ex, &rr, ret_err);
        else
                r = b->runner->run(b->runner_self, &s->spec, ex, &rr, ret_err);
        s->spec.stdin_data = NULL;
        if (r < 0) {
                tr_result_set_exit_code(res, -1);
                goto out;
        }
        /* The shim reports a pid 1 killed by signal N as 128 + N (and
         * timeout(1), our pid 1, passes its command's death on the same
         * way): read it back as that signal, as a shell does. */
        if (rr.exit_code > 128 && rr.exit_code <= 128 + 64)
                tr_result_set_signal(res, rr.exit_code - 128);
        else
                tr_result_set_exit_code(res, rr.exit_code);
        if (rr.oom_killed)
                r = tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, TR_BACKEND_CONTAINERD, "task.wait",
                                 "the snippet exceeded its memory limit (%" PRId64 " bytes) and was killed",
                                 lim.memory_bytes);
out:
        return r < 0 ? r : 0;
}

/* ---- sessions (tr_backend_ops' session seam) ------------------------------ */

static int ctrd_session_io(void *self, void *sandbox, int *ret_in, int *ret_out, int *ret_errfd, tr_error **ret_err) {
        ctrd_sb *s = sandbox;
        if (!s->sb || tr__ctrd_sandbox_session_io(s->sb, ret_in, ret_out, ret_errfd) < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "session.new",
                                    "this containerd sandbox cannot hold a session (an injected runner, or it ran "
                                    "already)");
        return 0;
}

static int ctrd_signal(void *self, void *sandbox, int sig, tr_error **ret_err) {
        ctrd_sb *s = sandbox;
        if (!s->sb)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "task.kill",
                                    "no task to signal");
        return tr__ctrd_sandbox_signal(s->sb, sig, ret_err);
}

/* Tools are bound per execution: the core's gateway session for this
 * execution listens on the socket path the spec mounted (the core closes
 * it when the execution ends). */
static int ctrd_session_begin(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err) {
        ctrd_sb *s = sandbox;
        report_applied(ex);
        return tr__ctrd_gateway_listen(s->gw_inner, tr__uid_lease_uid(s->lease), ex, ret_err);
}

static bool ctrd_session_oom(void *self, void *sandbox) {
        ctrd_sb *s = sandbox;
        return s->sb && tr__ctrd_sandbox_oom(s->sb);
}

static const tr_backend_ops ctrd_ops = {
        .kind = ctrd_kind,
        .free = ctrd_free,
        .prepare = ctrd_prepare,
        .run = ctrd_run,
        .destroy = ctrd_destroy,
        .session_io = ctrd_session_io,
        .signal = ctrd_signal,
        .session_begin = ctrd_session_begin,
        .session_oom = ctrd_session_oom,
};

static bool dir_writable(const char *p) {
        struct stat st;
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode) && access(p, W_OK | X_OK) == 0;
}

const char *tr__ctrd_default_state_dir(void) {
        /* /run/toolruntime when we may use it (a tmpfs, root's), else /tmp. */
        if ((mkdir("/run/toolruntime", 0700) == 0 || errno == EEXIST) && dir_writable("/run/toolruntime"))
                return "/run/toolruntime";
        return "/tmp";
}

static void free_injected(const tr__containerd_seams *sm) {
        if (sm->runner && sm->runner->free)
                sm->runner->free(sm->runner_self);
        if (sm->image_resolver && sm->image_resolver->free)
                sm->image_resolver->free(sm->image_resolver_self);
        if (sm->health && sm->health->free)
                sm->health->free(sm->health_self);
}

static bool is_abs(const char *p) {
        return p && p[0] == '/';
}

TR_PUBLIC int tr_backend_containerd_new(const tr_containerd_config *cfg, tr_backend **ret_backend, tr_error **ret_err) {
        return tr__backend_containerd_new_seams(cfg, NULL, ret_backend, ret_err);
}

int tr__backend_containerd_new_seams(const tr_containerd_config *cfg, const tr__containerd_seams *seams,
                                     tr_backend **ret_backend, tr_error **ret_err) {
        static const tr__containerd_seams no_seams = { 0 };
        const tr__containerd_seams *sm = seams ? seams : &no_seams;
        tr_containerd_config copy;
        int r = tr__containerd_config_copy(cfg, &copy, ret_err);
        if (r < 0) {
                free_injected(sm);
                return r;
        }
        const tr_containerd_config *c = &copy;
        const char *socket = c->socket_path, *ns = c->namespace_name, *snap = c->snapshotter;
        const char *state = c->state_dir ? c->state_dir : tr__ctrd_default_state_dir();
        const char *why = NULL;
        if (!is_abs(socket))
                why = "socket_path must be absolute";
        else if (!ns[0] || strchr(ns, '/'))
                why = "namespace must be a non-empty name";
        else if (c->runtime && !c->runtime[0])
                why = "runtime must not be empty";
        else if (c->image_ref && !c->image_ref[0])
                why = "image_ref must not be empty";
        else if (c->seccomp_path && !is_abs(c->seccomp_path))
                why = "seccomp_path must be absolute";
        else if (!is_abs(state))
                why = "state_dir must be absolute";
        else if (tr__uid_range_check(&c->uid_range, TR_BACKEND_CONTAINERD, NULL) < 0)
                why = "uid_range must lie within 1000-4294967294 and leave out 65534 and 65535";
        if (why) {
                free_injected(sm);
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, "backend.new",
                                    "invalid containerd config: %s", why),
                       -EINVAL;
        }

        ctrd_backend *b = calloc(1, sizeof *b);
        if (!b || tr__ctrd_client_init(&b->client, socket, ns, snap, state) < 0) {
                free(b);
                free_injected(sm);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "backend.new", "out of memory"),
                       -ENOMEM;
        }
        tr__ctrd_client_set_log(&b->client, c->log, c->log_userdata);
        b->client.pull = c->pull;
        b->client.reaper_at_free = c->teardown_at_free;
        b->image_ref = strdup(c->image_ref ? c->image_ref : TR_CONTAINERD_DEFAULT_IMAGE);
        b->runtime = strdup(c->runtime ? c->runtime : TR_CONTAINERD_DEFAULT_RUNTIME);
        b->seccomp_path = c->seccomp_path ? strdup(c->seccomp_path) : NULL;
        b->flags = sm->flags;
        b->uid_range = c->uid_range;
        if (sm->runner) {
                b->runner = sm->runner;
                b->runner_self = sm->runner_self;
        } else {
                b->runner = &tr__ctrd_real_runner;
                b->runner_self = &b->client;
        }
        if (sm->image_resolver) {
                b->resolver = sm->image_resolver;
                b->resolver_self = sm->image_resolver_self;
        } else if (!(sm->flags & TR__CONTAINERD_NO_IMAGE_RESOLVER)) {
                b->resolver = &real_resolver;
                b->resolver_self = &b->client;
        }
        if (sm->health) {
                b->health = sm->health;
                b->health_self = sm->health_self;
        } else if (!(sm->flags & TR__CONTAINERD_NO_HEALTH_CHECK)) {
                b->health = &real_health;
                b->health_self = &b->client;
        }
        if (!b->image_ref || !b->runtime || (c->seccomp_path && !b->seccomp_path)) {
                ctrd_free(b);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, "backend.new", "out of memory"),
                       -ENOMEM;
        }
        return tr_backend_new(&ctrd_ops, b, ret_backend, ret_err);
}
