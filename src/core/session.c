/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sessions (toolruntime.h): one prepared sandbox whose process is the
 * session runner (runner.c), kept for many executions.  This file owns the
 * handle's lifetime: creation from a shape, the one-operation-at-a-time
 * lock, expiry (TTL, idle, a dead interpreter), executions and what their
 * results say about the session.  The wire protocol is session_wire.c's,
 * file transfers session_files.c's.
 *
 * The TTL is also the sandbox's own backstop: the session's sandbox is
 * prepared with its deadline that far out, so the backend's in-sandbox
 * deadline (containerd: timeout(1) as pid 1) and its expiry labels (gc)
 * end a session whose process died without freeing it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/session.h"
#include "util/macros.h"
#include "util/strv.h"
#include "util/timeutil.h"

static int64_t realtime_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * TR_NSEC_PER_SEC + ts.tv_nsec;
}

/* Our own copy of the shape: what the sandbox was prepared for, with the
 * session flag that makes tr__runner_argv give the session runner. */
static int copy_shape(const tr_request *in, tr_request **ret, tr_error **ret_err) {
        tr_request *r = NULL;
        int e = tr_request_new(&r, ret_err);
        if (e < 0)
                return e;
        if (in->language && (e = tr_request_set_language(r, in->language, ret_err)) < 0)
                goto fail;
        for (size_t i = 0; i < tr_request_metadata_count(in); i++) {
                const char *k, *v;
                tr_request_metadata_at(in, i, &k, &v);
                if ((e = tr_request_set_metadata(r, k, v, ret_err)) < 0)
                        goto fail;
        }
        r->timeout_ms = in->timeout_ms;
        r->limits = in->limits;
        r->profile = in->profile;
        r->gateway = in->gateway;
        r->max_output = in->max_output;
        /* The egress allowlist is the sandbox's (its proxy lives from
         * prepare to destroy): part of the shape. */
        if (in->n_egress &&
            (e = tr_request_set_egress_allow(r, (const char *const *) in->egress, in->n_egress, ret_err)) < 0)
                goto fail;
        r->session = true;
        *ret = r;
        return 0;
fail:
        tr_request_free(r);
        return e;
}

static int check_config(const tr_session_config *cfg, int64_t *ttl, int64_t *idle, tr_error **ret_err) {
        *ttl = TR_SESSION_DEFAULT_TTL_MS;
        *idle = TR_SESSION_DEFAULT_IDLE_MS;
        if (!cfg)
                return 0;
        if (cfg->size < sizeof(tr_session_config))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "session.new",
                                    "tr_session_config.size must be sizeof(tr_session_config)");
        if (cfg->ttl_ms < 0 || cfg->ttl_ms > TR_SESSION_MAX_TTL_MS)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "session.new",
                                    "session ttl %" PRId64 " ms is out of range (1 ms .. %d ms; 0: the default)",
                                    cfg->ttl_ms, TR_SESSION_MAX_TTL_MS);
        if (cfg->idle_timeout_ms < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "session.new",
                                    "session idle timeout %" PRId64 " ms is negative (0: the default)",
                                    cfg->idle_timeout_ms);
        if (cfg->ttl_ms)
                *ttl = cfg->ttl_ms;
        if (cfg->idle_timeout_ms)
                *idle = cfg->idle_timeout_ms;
        if (*idle > *ttl)
                *idle = *ttl;
        return 0;
}

TR_PUBLIC int tr_session_new(tr_runtime *rt, const tr_request *shape, const tr_session_config *cfg, tr_cancel *cancel,
                             tr_session **ret_session, tr_error **ret_err) {
        if (!rt || !shape || !ret_session)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "session.new", "invalid argument");
        int64_t ttl, idle;
        int r = check_config(cfg, &ttl, &idle, ret_err);
        if (r < 0 || (r = tr__request_validate_shape(shape, ret_err)) < 0)
                return r;
        if (!streq(tr_request_effective_language(shape), "python"))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "session.new",
                                    "sessions run Python only, not '%s'", tr_request_effective_language(shape));
        if (shape->n_args || shape->n_files)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "session.new",
                                    "a session's shape takes no arguments or input files (upload files instead)");
        tr_session *s = calloc(1, sizeof *s);
        if (!s)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "session.new", "out of memory");
        s->rt = rt;
        s->in_fd = s->out_fd = s->err_fd = -1;
        pthread_mutex_init(&s->op, NULL);
        pthread_mutex_init(&s->state, NULL);
        s->ttl_ms = ttl;
        s->idle_ms = idle;
        if ((r = copy_shape(shape, &s->shape, ret_err)) < 0)
                goto fail;
        int64_t start = tr__now_ns();
        if ((r = tr__sandbox_prepare(rt, s->shape, cancel, start, ttl, &s->sb, ret_err)) < 0)
                goto fail;
        s->kind = tr__sandbox_kind(s->sb);
        s->profile = tr__sandbox_profile(s->sb);
        s->disk_cap = tr__sandbox_limits(s->sb)->disk_bytes;
        s->mem_cap = tr__sandbox_limits(s->sb)->memory_bytes;
        if ((r = tr__sandbox_session_io(s->sb, &s->in_fd, &s->out_fd, &s->err_fd, ret_err)) < 0)
                goto fail;
        int fl = fcntl(s->in_fd, F_GETFL);
        s->in_blocking = fl >= 0 && !(fl & O_NONBLOCK);
        /* Nothing reads the shape or the creation's cancel token after
         * prepare: each execution binds its own. */
        tr__sandbox_exec(s->sb)->req = NULL;
        tr__sandbox_exec(s->sb)->cancel = NULL;
        s->created_rt_ns = s->last_used_rt_ns = realtime_ns();
        s->last_used_ns = tr__now_ns();
        s->ttl_deadline_ns = start + ttl * TR_NSEC_PER_MSEC;
        *ret_session = s;
        return 0;
fail:
        tr_session_free(s);
        return r;
}

void tr__session_end(tr_session *s, const char *fmt, ...) {
        pthread_mutex_lock(&s->state);
        if (!s->gone) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(&s->gone, fmt, ap) < 0)
                        s->gone = NULL;
                va_end(ap);
                if (!s->gone)
                        s->gone = strdup("the session ended");
        }
        tr_sandbox *sb = TAKE_PTR(s->sb);
        s->in_fd = s->out_fd = s->err_fd = -1;
        pthread_mutex_unlock(&s->state);
        /* The backend's fds die with the sandbox. */
        tr_sandbox_free(sb);
        free(TAKE_PTR(s->rbuf));
        s->rlen = 0;
}

int tr__session_gone_error(tr_session *s, const char *op, tr_error **ret_err) {
        pthread_mutex_lock(&s->state);
        int r = tr_error_set(ret_err, TR_E_SESSION_GONE, s->kind, op, "the session has ended: %s",
                             s->gone ? s->gone : "unknown reason");
        pthread_mutex_unlock(&s->state);
        return r;
}

/* End the session when its TTL or idle time passed, or its interpreter is
 * gone; with the operation lock held.  0 alive, else TR_E_SESSION_GONE. */
static int check_locked(tr_session *s, const char *op, tr_error **ret_err) {
        if (s->gone)
                return tr__session_gone_error(s, op, ret_err);
        int64_t now = tr__now_ns();
        if (now >= s->ttl_deadline_ns)
                tr__session_end(s, "its ttl of %" PRId64 " ms passed", s->ttl_ms);
        else if (now - s->last_used_ns >= s->idle_ms * TR_NSEC_PER_MSEC)
                tr__session_end(s, "it was idle for %" PRId64 " ms", s->idle_ms);
        else {
                /* A runner that died between operations: its stdout ended.
                 * Stray output is kept for the next operation. */
                char c[4096];
                /* Bounded: a thread the snippet left printing must not keep
                 * a sweeper here. */
                for (int rounds = 0; rounds < 64; rounds++) {
                        ssize_t n = tr__wire_read(s->out_fd, c, sizeof c);
                        if (n > 0 && s->rlen < TR_SESSION_RBUF_MAX) {
                                char *nb = realloc(s->rbuf, s->rlen + (size_t) n);
                                if (nb) {
                                        memcpy(nb + s->rlen, c, (size_t) n);
                                        s->rbuf = nb;
                                        s->rlen += (size_t) n;
                                }
                        }
                        if (n > 0)
                                continue;
                        if (n == 0) {
                                bool oom = tr__sandbox_oom(s->sb);
                                tr__session_end(s, "%s",
                                                oom ? "its interpreter was killed: out of memory"
                                                    : "its interpreter exited");
                        }
                        break;
                }
        }
        return s->gone ? tr__session_gone_error(s, op, ret_err) : 0;
}

int tr__session_lock(tr_session *s, tr_cancel *cancel, const char *op, tr_error **ret_err) {
        while (pthread_mutex_trylock(&s->op) != 0) {
                if (tr_cancel_is_cancelled(cancel))
                        return tr_error_set(ret_err, TR_E_CANCELLED, s->kind, op,
                                            "cancelled while waiting for the session's running operation");
                /* Never past the TTL (a caller without a cancel token, e.g.
                 * a file transfer, would otherwise wait for as long as a
                 * slow peer holds the session). */
                if (tr__now_ns() >= s->ttl_deadline_ns)
                        return tr_error_set(ret_err, TR_E_TIMEOUT, s->kind, op,
                                            "the session stayed busy until its ttl passed");
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        int r = check_locked(s, op, ret_err);
        if (r < 0)
                pthread_mutex_unlock(&s->op);
        return r;
}

void tr__session_unlock(tr_session *s) {
        pthread_mutex_unlock(&s->op);
}

void tr__session_touch(tr_session *s) {
        pthread_mutex_lock(&s->state);
        s->last_used_ns = tr__now_ns();
        s->last_used_rt_ns = realtime_ns();
        pthread_mutex_unlock(&s->state);
}

TR_PUBLIC int tr_session_check(tr_session *s, tr_error **ret_err) {
        if (!s)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "session.check", "no session");
        /* A running operation bounds itself (its deadline is capped by the
         * TTL): the sweeper does not wait for it. */
        if (pthread_mutex_trylock(&s->op) != 0) {
                pthread_mutex_lock(&s->state);
                bool gone = s->gone != NULL;
                pthread_mutex_unlock(&s->state);
                return gone ? tr__session_gone_error(s, "session.check", ret_err) : 0;
        }
        int r = check_locked(s, "session.check", ret_err);
        pthread_mutex_unlock(&s->op);
        return r;
}

TR_PUBLIC void tr_session_get_info(tr_session *s, tr_session_info *ret_info) {
        if (!ret_info)
                return;
        *ret_info = (tr_session_info){ 0 };
        if (!s)
                return;
        pthread_mutex_lock(&s->state);
        int64_t mono = tr__now_ns(), rt = realtime_ns();
        ret_info->created_ns = s->created_rt_ns;
        ret_info->last_used_ns = s->last_used_rt_ns;
        ret_info->ttl_deadline_ns = rt + (s->ttl_deadline_ns - mono);
        int64_t idle_dl = s->last_used_ns + s->idle_ms * TR_NSEC_PER_MSEC;
        if (idle_dl > s->ttl_deadline_ns)
                idle_dl = s->ttl_deadline_ns;
        ret_info->idle_deadline_ns = rt + (idle_dl - mono);
        ret_info->executions = s->executions;
        ret_info->alive = !s->gone && mono < s->ttl_deadline_ns && mono < idle_dl;
        ret_info->profile = s->profile;
        ret_info->backend = s->kind;
        pthread_mutex_unlock(&s->state);
}

TR_PUBLIC void tr_session_free(tr_session *s) {
        if (!s)
                return;
        tr_sandbox_free(s->sb);
        tr_request_free(s->shape);
        free(s->gone);
        free(s->rbuf);
        pthread_mutex_destroy(&s->op);
        pthread_mutex_destroy(&s->state);
        free(s);
}

/* ---- executions ------------------------------------------------------------ */

static bool same_egress(const tr_request *a, const tr_request *b) {
        if (a->n_egress != b->n_egress)
                return false;
        for (size_t i = 0; i < a->n_egress; i++)
                if (!streq(a->egress[i], b->egress[i]))
                        return false;
        return true;
}

/* `req` may leave the shape's fields unset, or repeat them. */
static int check_fits(tr_session *s, const tr_request *req, tr_error **ret_err) {
        const char *why = NULL;
        tr_limits lim;
        if (req->profile != TR_PROFILE_DEFAULT && req->profile != s->profile)
                why = "its profile differs from the session's";
        else if (req->language && !streq(req->language, "python"))
                why = "sessions run Python only";
        else if (req->n_args || req->n_files)
                why = "it has arguments or input files (upload files to the session instead)";
        else if (req->n_egress && !same_egress(req, s->shape))
                why = "its egress allowlist differs from the session's (set at creation)";
        else if (tr__profile_effective_limits(s->profile, &req->limits, &lim, NULL) < 0)
                why = "its limits are invalid for the session's profile";
        const int64_t *asked = &req->limits.max_tool_calls, *eff = &lim.max_tool_calls,
                      *have = &tr__sandbox_limits(s->sb)->max_tool_calls;
        for (size_t i = 0; !why && i < sizeof(tr_limits) / sizeof(int64_t); i++)
                if (asked[i] != TR_LIMIT_UNSET && eff[i] != have[i])
                        why = "its limits differ from the session's (set at creation)";
        if (why)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, s->kind, "session.execute",
                                    "the request does not fit the session: %s", why);
        return 0;
}

static char *exec_command(tr_session *s, const tr_request *req, tr_exec *ex, size_t *ret_len) {
        size_t code_len = 0, in_len = 0;
        const char *code = tr_request_code(req, &code_len);
        const char *in = tr_request_stdin(req, &in_len);
        char *head = NULL;
        int hl = asprintf(&head, "x %s %s %zu %zu\n", ex->marker, s->end, code_len, in_len);
        if (hl < 0)
                return NULL;
        char *cmd = malloc((size_t) hl + code_len + in_len + 1);
        if (cmd) {
                char *p = mempcpy(cmd, head, (size_t) hl);
                p = mempcpy(p, code, code_len);
                if (in_len)
                        p = mempcpy(p, in, in_len);
                *ret_len = (size_t) (p - cmd);
        }
        free(head);
        return cmd;
}

/* What the execution's outcome means for the session and the result. */
static int conclude(tr_session *s, tr__wire_outcome o, bool cancelled, bool ttl_capped, const tr_request *req,
                    tr_error **ret_err) {
        switch (o) {
        case TR__WIRE_DONE: return 0;
        case TR__WIRE_INTERRUPTED:
                if (ttl_capped && !cancelled) {
                        tr__session_end(s, "its ttl of %" PRId64 " ms passed", s->ttl_ms);
                        return tr_error_set(ret_err, TR_E_TIMEOUT, s->kind, "session.execute",
                                            "the session's ttl passed during the execution; the snippet was "
                                            "interrupted and the session ended");
                }
                if (cancelled)
                        return tr_error_set(ret_err, TR_E_CANCELLED, s->kind, "session.execute",
                                            "execution cancelled; the snippet was interrupted (KeyboardInterrupt) "
                                            "and the session lives on");
                return tr_error_set(ret_err, TR_E_TIMEOUT, s->kind, "session.execute",
                                    "execution timed out after %" PRId64
                                    " ms; the snippet was interrupted (KeyboardInterrupt) and the session lives on",
                                    tr_request_effective_timeout_ms(req));
        case TR__WIRE_STUCK:
                tr__session_end(s, "an interrupted snippet did not stop within %d ms", TR_SESSION_INTERRUPT_GRACE_MS);
                return tr_error_set(ret_err, cancelled ? TR_E_CANCELLED : TR_E_TIMEOUT, s->kind, "session.execute",
                                    "execution %s; the snippet did not stop within %d ms of its interrupt, so "
                                    "the session's sandbox was destroyed",
                                    cancelled ? "cancelled" : "timed out", TR_SESSION_INTERRUPT_GRACE_MS);
        case TR__WIRE_DIED: {
                bool oom = tr__sandbox_oom(s->sb);
                tr__session_end(s, "%s", oom ? "its interpreter was killed: out of memory" : "its interpreter exited");
                if (oom)
                        return tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, s->kind, "session.execute",
                                            "the snippet exceeded the session's memory limit (%" PRId64
                                            " bytes); the interpreter was killed and the session ended",
                                            s->mem_cap);
                return tr_error_set(ret_err, TR_E_SESSION_GONE, s->kind, "session.execute",
                                    "the interpreter exited during the execution; the session ended");
        }
        case TR__WIRE_FAILED:
        default: tr__session_end(s, "a host-side failure during an execution"); return -EIO;
        }
}

TR_PUBLIC int tr_session_execute(tr_session *s, const tr_request *req, tr_cancel *cancel, tr_result **ret_result,
                                 tr_error **ret_err) {
        if (ret_result)
                *ret_result = NULL;
        if (!s)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "session.execute", "no session");
        /* Before the first goto: a cleanup variable must never be jumped over. */
        _cleanup_free_ char *cmd = NULL;
        int r = tr_request_validate(req, ret_err);
        if (r < 0 || (r = tr__session_lock(s, cancel, "session.execute", ret_err)) < 0)
                return r;
        if ((r = check_fits(s, req, ret_err)) < 0)
                goto out;
        int64_t start = tr__now_ns();
        int64_t deadline = start + tr_request_effective_timeout_ms(req) * TR_NSEC_PER_MSEC;
        bool ttl_capped = deadline > s->ttl_deadline_ns;
        if (ttl_capped)
                deadline = s->ttl_deadline_ns;
        tr_error *err = NULL;
        r = tr__sandbox_session_begin(s->sb, req, cancel, deadline, &err);
        tr_exec *ex = tr__sandbox_exec(s->sb);
        size_t cmd_len = 0;
        if (r >= 0 && ((r = tr__wire_new_marker(s)) < 0 || !(cmd = exec_command(s, req, ex, &cmd_len))))
                r = tr_error_set(&err, TR_E_INTERNAL, s->kind, "session.execute", "out of memory or no randomness");
        tr__wire_outcome o = TR__WIRE_FAILED;
        bool cancelled = false;
        int status = -1;
        if (r >= 0) {
                o = tr__wire_execute(s, ex, cmd, cmd_len, &cancelled, &status, &err);
                if (o == TR__WIRE_DONE || o == TR__WIRE_INTERRUPTED)
                        tr_result_set_exit_code(ex->res, status);
                else
                        tr_result_set_exit_code(ex->res, -1);
        }
        /* The output first, while the sandbox (and the backend's gateway
         * session, which points at the exec) still exists. */
        tr_result *res = NULL;
        tr_error *verr = NULL;
        tr__sandbox_session_end(s->sb, start, &res, &verr);
        if (r >= 0)
                r = conclude(s, o, cancelled, ttl_capped, req, &err);
        if (r < 0 && !err)
                tr_error_set(&err, TR_E_INTERNAL, s->kind, "session.execute", "the execution failed");
        if (r >= 0 && verr) {
                r = -EINVAL;
                err = TAKE_PTR(verr);
        }
        tr_error_free(verr);
        pthread_mutex_lock(&s->state);
        s->executions++;
        bool alive = !s->gone;
        pthread_mutex_unlock(&s->state);
        if (res)
                (void) tr_result_set_backend_detail(res, "session", alive ? "alive" : "ended", NULL);
        tr__session_touch(s);
        if (ret_result)
                *ret_result = res;
        else
                tr_result_free(res);
        if (r < 0) {
                if (ret_err && !*ret_err)
                        *ret_err = TAKE_PTR(err);
        }
        tr_error_free(err);
out:
        tr__session_unlock(s);
        return r;
}
