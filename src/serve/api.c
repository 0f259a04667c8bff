/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service's request and response shapes: /v1/execute (the fields of
 * `toolruntime exec`, the result object of `exec --json`) and Piston's v2
 * API (/api/v2/execute, /api/v2/runtimes, in piston.c), so Piston clients
 * work unchanged.  Both end in one execute path (tr__serve_run()), which checks the
 * server's maxima, picks the runtime of the backend asked for and records
 * metrics.  Input is untrusted: unknown fields, wrong types and values over
 * the server's maxima are 400s naming the field, never a crash.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "serve/wire.h"
#include "util/handles.h"
#include "util/macros.h"

void tr__serve_reply_error(tr__serve_reply *ret, unsigned status, const char *code, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
        ret->status = status;
        ret->content_type = "application/json";
        ret->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
}

typedef tr__serve_job job;

int tr__serve_effective_limits(const tr__serve_config *cfg, tr_profile prof, tr_limits *limits, tr_error **ret_err) {
        /* A server maximum caps what a request asks, and also what it leaves
         * to the profile: an unset limit whose profile default is above the
         * maximum (or unlimited) runs at the maximum. */
        tr_limits defaults;
        tr_profile_default_limits(prof, &defaults);
        for (size_t i = 0; i < TR__WIRE_N_LIMITS; i++) {
                int64_t max = tr__wire_limit_get(&cfg->max_limits, i);
                int64_t *v = tr__wire_limit_at(limits, i);
                int64_t d = tr__wire_limit_get(&defaults, i);
                if (max <= 0)
                        continue;
                if (*v == TR_LIMIT_UNSET) {
                        if (d == 0 || d > max)
                                *v = max;
                } else if (*v == 0) {
                        return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "validate",
                                            "limits.%s 0 (unlimited) is over this server's maximum of %lld",
                                            tr__wire_limits[i].name, (long long) max);
                } else if (*v > max) {
                        return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "validate",
                                            "limits.%s %lld is over this server's maximum of %lld",
                                            tr__wire_limits[i].name, (long long) *v, (long long) max);
                }
        }
        return 0;
}

unsigned tr__serve_error_status(const tr_error *e) {
        if (!e)
                return 0;
        switch (tr_error_code(e)) {
        case TR_E_INVALID_LIMITS:
        case TR_E_INVALID_REQUEST:
        case TR_E_MISSING_CODE: return 400;
        case TR_E_BACKEND_DENIED: return 403;
        default: return 0;
        }
}

/* What every execution's request binds, whichever route made it (here and
 * sessions.c): the server's caps on code, timeout and output checked, then
 * the code, language, stdin, timeout, output cap, the shared gateway and
 * the streaming callbacks. */
int tr__serve_request_new(const tr__serve_ctx *ctx, const job *jb, tr_request **ret_req, tr_error **ret_err) {
        const tr__serve_config *cfg = ctx->cfg;
        if (jb->code_len > cfg->max_code)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "code is %zu bytes; this server takes at most %zu", jb->code_len, cfg->max_code);
        if (cfg->max_timeout_ms > 0 && jb->timeout_ms > cfg->max_timeout_ms)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "validate",
                                    "timeout %.3f s is over this server's maximum of %.3f s",
                                    (double) jb->timeout_ms / 1000.0, (double) cfg->max_timeout_ms / 1000.0);
        if (cfg->max_output > 0 && (uint64_t) jb->max_output > cfg->max_output)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "validate",
                                    "limits.max_output %lld is over this server's maximum of %zu",
                                    (long long) jb->max_output, cfg->max_output);
        if (jb->max_output < 0)
                return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "validate",
                                    "limits.max_output must not be negative");
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        int r = tr_request_new(&req, ret_err);
        if (r >= 0)
                r = tr_request_set_code(req, jb->code, jb->code_len, ret_err);
        if (r >= 0)
                r = tr_request_set_language(req, jb->language, ret_err);
        if (r >= 0 && jb->stdin_data)
                r = tr_request_set_stdin(req, jb->stdin_data, jb->stdin_len, ret_err);
        if (r < 0)
                return r;
        tr_request_set_timeout_ms(req, jb->timeout_ms);
        tr_request_set_gateway(req, ctx->backends->gateway);
        tr_request_set_max_output(req, (size_t) jb->max_output);
        if (ctx->output)
                tr_request_set_output_callback(req, ctx->output, ctx->output_userdata);
        if (ctx->tool_call)
                tr_request_set_tool_call_callback(req, ctx->tool_call, ctx->output_userdata);
        *ret_req = TAKE_PTR(req);
        return 0;
}

/* Check a job against the server's maxima and build its request.  On a
 * request error (bad value, over a maximum, backend not offered) fills
 * *err_status and *ret_err and returns -1. */
int tr__serve_build_request(const tr__serve_ctx *ctx, const job *jb, tr_request **ret_req, tr_runtime **ret_rt,
                            tr_error **ret_err, unsigned *err_status) {
        const tr__serve_config *cfg = ctx->cfg;
        *err_status = 400;
        tr_profile prof = TR_PROFILE_STANDARD;
        if (jb->profile && tr_profile_from_name(jb->profile, &prof) < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "unknown profile '%s' (known: dev, standard, hardened)", jb->profile);
        if (prof == TR_PROFILE_DEV && !cfg->allow_dev) {
                *err_status = 403;
                return tr_error_set(ret_err, TR_E_BACKEND_DENIED, TR_BACKEND_NONE, "policy",
                                    "this server does not run the dev profile (no isolation); start it with "
                                    "--allow-dev to allow it");
        }
        tr_limits asked = jb->limits, *limits = &asked;
        int r = tr__serve_effective_limits(cfg, prof, limits, ret_err);
        if (r < 0)
                return r;
        tr_backend_kind kind = prof == TR_PROFILE_DEV ? TR_BACKEND_UNSAFE_HOST : ctx->backends->default_kind;
        if (jb->backend && tr_backend_kind_from_name(jb->backend, &kind) < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate", "unknown backend '%s'",
                                    jb->backend);
        tr_runtime *rt = (unsigned) kind < TR__BACKEND_MAX ? ctx->backends->by_kind[kind] : NULL;
        if (!rt) {
                *err_status = 400;
                return tr_error_set(ret_err, TR_E_RUNTIME_UNAVAILABLE, kind, "route",
                                    "this server does not offer the %s backend", tr_backend_kind_name(kind));
        }

        _cleanup_(tr_request_freep) tr_request *req = NULL;
        r = tr__serve_request_new(ctx, jb, &req, ret_err);
        size_t i;
        json_t *a;
        json_array_foreach(jb->args, i, a) {
                if (r >= 0)
                        r = tr_request_add_arg(req, json_string_value(a), ret_err);
        }
        for (size_t f = 0; r >= 0 && f < json_array_size(jb->files); f++)
                r = tr__serve_add_input_file(req, json_array_get(jb->files, f), f, ret_err);
        if (r >= 0)
                r = tr__serve_request_set_egress(cfg, req, jb->egress_allow, ret_err);
        if (r < 0) {
                if (ret_err && *ret_err && tr_error_code(*ret_err) == TR_E_BACKEND_DENIED)
                        *err_status = 403; /* over the operator's egress ceiling */
                return r;
        }
        tr_request_set_limits(req, limits);
        tr_request_set_profile(req, prof);

        *ret_req = TAKE_PTR(req);
        *ret_rt = rt;
        *err_status = 0;
        return 0;
}

/* Check a job against the server's maxima and run it.  On a request error
 * (bad value, over a maximum, backend not offered) fills *err_status and
 * *ret_err and returns -1 without running anything. */
int tr__serve_run(const tr__serve_ctx *ctx, const job *jb, tr_result **ret_res, tr_error **ret_err,
                  unsigned *err_status) {
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        tr_runtime *rt = NULL;
        int r = tr__serve_build_request(ctx, jb, &req, &rt, ret_err, err_status);
        if (r < 0)
                return r;
        tr_profile prof = tr_request_profile(req);
        tr_backend_kind kind = tr_runtime_route_of(rt, prof);
        /* From here on an error is the execution's, reported in the result. */
        *err_status = 0;
        tr_pool *pool = NULL;
        for (size_t k = 0; k < ctx->backends->n_pools; k++)
                if (ctx->backends->pools[k].profile == prof && ctx->backends->pools[k].kind == kind)
                        pool = ctx->backends->pools[k].pool;
        r = pool ? tr_pool_execute(pool, req, ctx->cancel, ret_res, ret_err)
                 : tr_runtime_execute(rt, req, ctx->cancel, ret_res, ret_err);
        const tr_error *e = r < 0 && ret_err ? *ret_err : NULL;
        const tr_result *res = *ret_res;
        *err_status = tr__serve_error_status(e);
        const char *outcome = e ? tr_error_code_name(e) : res && tr_result_exit_code(res) == 0 ? "ok" : "exit_nonzero";
        tr__serve_metrics_execution(ctx->metrics, tr_backend_kind_name(kind), tr_profile_name(prof), outcome,
                                    res ? (double) tr_result_duration_us(res) / 1e6 : 0.0,
                                    res ? tr_result_tool_call_count(res) : 0);
        return r;
}

/* Read an int64 field; false (and a message) when present but not one. */
bool tr__serve_get_int(json_t *o, const char *key, int64_t *ret, char *msg, size_t msgsz) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v))
                return true;
        if (!json_is_integer(v)) {
                snprintf(msg, msgsz, "'%s' must be an integer", key);
                return false;
        }
        *ret = json_integer_value(v);
        return true;
}

/* A limit in /v1/execute: a non-negative integer (0 is unlimited, as on
 * the command line); absent or null leaves the profile's default. */
static bool get_limit(json_t *o, const char *key, int64_t *ret, char *msg, size_t msgsz) {
        int64_t v = TR_LIMIT_UNSET;
        if (!tr__serve_get_int(o, key, &v, msg, msgsz))
                return false;
        if (json_object_get(o, key) && !json_is_null(json_object_get(o, key)) && v < 0) {
                snprintf(msg, msgsz, "'limits.%s' must not be negative", key);
                return false;
        }
        *ret = v;
        return true;
}

bool tr__serve_get_str(json_t *o, const char *key, const char **ret, char *msg, size_t msgsz) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v))
                return true;
        if (!json_is_string(v)) {
                snprintf(msg, msgsz, "'%s' must be a string", key);
                return false;
        }
        *ret = json_string_value(v);
        return true;
}

bool tr__serve_only_keys(json_t *o, const char *const *allowed, const char *where, char *msg, size_t msgsz) {
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
                bool ok = false;
                for (size_t i = 0; allowed[i] && !ok; i++)
                        ok = streq(k, allowed[i]);
                if (!ok) {
                        snprintf(msg, msgsz, "unknown field '%s%.100s'", where, k);
                        return false;
                }
        }
        return true;
}

bool tr__serve_string_array(json_t *v, const char *key, char *msg, size_t msgsz) {
        size_t i;
        json_t *a;
        if (!v || json_is_null(v))
                return true;
        bool ok = json_is_array(v);
        json_array_foreach(v, i, a) ok = ok && json_is_string(a);
        if (!ok)
                snprintf(msg, msgsz, "'%s' must be an array of strings", key);
        return ok;
}

bool tr__serve_parse_egress(json_t *o, json_t **ret_allow, char *msg, size_t msgsz) {
        static const char *const keys[] = { "allow", NULL };
        json_t *e = o ? json_object_get(o, "egress") : NULL;
        *ret_allow = NULL;
        if (!e || json_is_null(e))
                return true;
        if (!json_is_object(e)) {
                snprintf(msg, msgsz, "'egress' must be an object: {\"allow\": [\"HOST:PORT\", ...]}");
                return false;
        }
        json_t *allow = json_object_get(e, "allow");
        if (!tr__serve_only_keys(e, keys, "egress.", msg, msgsz) ||
            !tr__serve_string_array(allow, "egress.allow", msg, msgsz))
                return false;
        if (json_array_size(allow) > TR_MAX_EGRESS_ALLOW) {
                snprintf(msg, msgsz, "'egress.allow' has %zu entries; at most %d", json_array_size(allow),
                         TR_MAX_EGRESS_ALLOW);
                return false;
        }
        *ret_allow = allow && json_array_size(allow) ? allow : NULL;
        return true;
}

int tr__serve_request_set_egress(const tr__serve_config *cfg, tr_request *req, json_t *allow, tr_error **ret_err) {
        size_t n = json_array_size(allow);
        if (!n)
                return 0;
        /* No ceiling, no egress: a client of the service must not pick
         * what the host connects to. */
        if (!cfg->egress_allow_max)
                return tr_error_set(ret_err, TR_E_BACKEND_DENIED, TR_BACKEND_NONE, "policy",
                                    "this server allows no egress: start it with --egress-allow-max HOST:PORT "
                                    "(repeatable) to set which targets a request's egress.allow may list");
        const char *v[TR_MAX_EGRESS_ALLOW];
        if (n > TR_MAX_EGRESS_ALLOW)
                n = TR_MAX_EGRESS_ALLOW + 1; /* the library's own message */
        for (size_t i = 0; i < n && i < TR_MAX_EGRESS_ALLOW; i++)
                v[i] = json_string_value(json_array_get(allow, i));
        int r = tr_request_set_egress_allow(req, v, n, ret_err);
        size_t n_max = 0;
        while (cfg->egress_allow_max[n_max])
                n_max++;
        /* The library's message names the first entry outside. */
        if (r >= 0)
                r = tr_request_egress_allow_within(req, (const char *const *) cfg->egress_allow_max, n_max, ret_err);
        return r;
}

json_t *tr__serve_parse_body(const char *body, size_t len, char *msg, size_t msgsz) {
        json_error_t jerr;
        json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (!o)
                snprintf(msg, msgsz, "the body is not JSON: %s", jerr.text);
        else if (!json_is_object(o)) {
                snprintf(msg, msgsz, "the body must be a JSON object");
                json_decref(o);
                o = NULL;
        }
        return o;
}

bool tr__serve_v1_parse(const char *body, size_t len, const char *const *extra, bool need_code, job *jb,
                        json_t **ret_obj, char *msg, size_t msgsz) {
        static const char *const top[] = { "code", "language", "timeout", "profile", "backend", "limits",
                                           "args", "stdin",    "files",   "egress",  NULL };
        const char *lims[TR__WIRE_N_LIMITS + 2];
        for (size_t i = 0; i < TR__WIRE_N_LIMITS; i++)
                lims[i] = tr__wire_limits[i].name;
        lims[TR__WIRE_N_LIMITS] = "max_output";
        lims[TR__WIRE_N_LIMITS + 1] = NULL;
        json_t *o = *ret_obj = tr__serve_parse_body(body, len, msg, msgsz);
        *jb = (job){ 0 };
        tr_limits_init(&jb->limits);
        json_t *limits = o ? json_object_get(o, "limits") : NULL, *code = o ? json_object_get(o, "code") : NULL;
        json_t *timeout = o ? json_object_get(o, "timeout") : NULL, *stdin_v = o ? json_object_get(o, "stdin") : NULL;
        /* The caller's own keys are its to check; the rest must be ours. */
        const char *k;
        json_t *v;
        bool ok = o != NULL;
        json_object_foreach(o, k, v) {
                bool known = false;
                for (size_t i = 0; top[i] && !known; i++)
                        known = streq(k, top[i]);
                for (size_t i = 0; extra && extra[i] && !known; i++)
                        known = streq(k, extra[i]);
                if (ok && !known) {
                        snprintf(msg, msgsz, "unknown field '%.100s'", k);
                        ok = false;
                }
        }
        ok = ok && tr__serve_get_str(o, "language", &jb->language, msg, msgsz) &&
             tr__serve_get_str(o, "profile", &jb->profile, msg, msgsz) &&
             tr__serve_get_str(o, "backend", &jb->backend, msg, msgsz);
        if (ok && code && !json_is_null(code) && !json_is_string(code)) {
                snprintf(msg, msgsz, "'code' is required and must be a string");
                ok = false;
        }
        if (ok && need_code && !json_is_string(code)) {
                snprintf(msg, msgsz, "'code' is required and must be a string");
                ok = false;
        }
        if (ok && timeout && !json_is_null(timeout)) {
                double t = json_number_value(timeout);
                if (!json_is_number(timeout) || t < 0 || t > (double) TR_TIMEOUT_MAX_MS / 1000.0) {
                        snprintf(msg, msgsz, "'timeout' must be a number of seconds between 0 and %lld",
                                 (long long) (TR_TIMEOUT_MAX_MS / 1000));
                        ok = false;
                } else if ((jb->timeout_ms = (int64_t) (t * 1000.0 + 0.5)) == 0 && t > 0) {
                        snprintf(msg, msgsz, "'timeout' %g rounds to 0 ms", t);
                        ok = false;
                }
        }
        if (ok && limits && !json_is_null(limits)) {
                ok = json_is_object(limits) && tr__serve_only_keys(limits, lims, "limits.", msg, msgsz);
                if (!json_is_object(limits))
                        snprintf(msg, msgsz, "'limits' must be an object");
                for (size_t i = 0; ok && i < TR__WIRE_N_LIMITS; i++)
                        ok = get_limit(limits, tr__wire_limits[i].name, tr__wire_limit_at(&jb->limits, i), msg, msgsz);
                ok = ok && tr__serve_get_int(limits, "max_output", &jb->max_output, msg, msgsz);
        }
        jb->args = o ? json_object_get(o, "args") : NULL;
        ok = ok && tr__serve_string_array(jb->args, "args", msg, msgsz);
        jb->files = o ? json_object_get(o, "files") : NULL;
        if (json_is_null(jb->files))
                jb->files = NULL;
        if (ok && jb->files && !json_is_array(jb->files)) {
                snprintf(msg, msgsz, "'files' must be an array of {\"path\", \"content\", \"encoding\"}");
                ok = false;
        }
        ok = ok && tr__serve_parse_egress(o, &jb->egress_allow, msg, msgsz);
        if (ok && stdin_v && !json_is_null(stdin_v)) {
                if (!json_is_string(stdin_v)) {
                        snprintf(msg, msgsz, "'stdin' must be a string");
                        ok = false;
                } else {
                        jb->stdin_data = json_string_value(stdin_v);
                        jb->stdin_len = json_string_length(stdin_v);
                }
        }
        if (ok && json_is_string(code)) {
                jb->code = json_string_value(code);
                jb->code_len = json_string_length(code);
        }
        return ok;
}

void tr__serve_v1_execute(const tr__serve_ctx *ctx, const char *body, size_t len, tr__serve_reply *ret) {
        char msg[256] = "";
        _cleanup_(json_decrefp) json_t *o = NULL;
        job jb;
        if (!tr__serve_v1_parse(body, len, NULL, true, &jb, &o, msg, sizeof(msg))) {
                tr__serve_reply_error(ret, 400, "invalid_request", "%s", msg);
                return;
        }

        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        unsigned status = 0;
        tr__serve_run(ctx, &jb, &res, &err, &status);
        if (status) {
                tr__serve_reply_error(ret, status, tr_error_code_name(err), "%s", tr_error_message(err));
                return;
        }
        ret->status = 200;
        ret->content_type = "application/json";
        if (tr_result_to_json(res, err, &ret->body, NULL) < 0)
                tr__serve_reply_error(ret, 500, "internal", "out of memory");
}
