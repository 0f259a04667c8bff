/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Definitions private to src/core: the structs behind the opaque handles of
 * toolruntime.h.  The core knows no backend and no gateway source.
 */
#pragma once

#include <pthread.h>

#include "toolruntime.h"
#include "core/runner.h"
#include "egress/egress.h"
#include "util/buf.h"
#include "util/handles.h"

typedef struct tr__kv {
        char *key;
        char *value;
} tr__kv;

typedef struct tr__kvlist {
        tr__kv *items;
        size_t n;
} tr__kvlist;

int tr__kvlist_set(tr__kvlist *l, const char *key, const char *value);
const char *tr__kvlist_get(const tr__kvlist *l, const char *key);
void tr__kvlist_done(tr__kvlist *l);

struct tr_request {
        char *code;
        size_t code_len;
        char *stdin_data; /* the snippet's standard input; NULL: none */
        size_t stdin_len;
        char *language;
        int64_t timeout_ms;
        tr_limits limits;
        tr_profile profile;
        tr_gateway *gateway;
        size_t max_output;
        tr__kvlist metadata;
        char **args; /* NULL-terminated; NULL when none */
        size_t n_args;
        tr_output_fn output_fn;
        void *output_userdata;
        tr_tool_call_fn tool_call_fn;
        void *tool_call_userdata;
        /* Input files (tr_request_add_file): bound at run time. */
        struct tr__req_file *files;
        size_t n_files;
        size_t files_bytes;
        /* Internal: this shape prepares a session's sandbox (session.c sets
         * it on its own copy of the caller's shape; tr__runner_argv then
         * gives the session runner). */
        bool session;
        /* The egress allowlist as given (NULL-terminated; NULL: none) and
         * parsed, in the same order. */
        char **egress;
        tr__egress_target *egress_targets;
        size_t n_egress;
};

typedef struct tr__req_file {
        char *path;
        char *data;
        size_t len;
} tr__req_file;

/* The path rules of input files and session files (runner.h): relative, no
 * "..", no "." or empty component, no NUL, at most TR__PATH_MAX bytes. */
#define TR__PATH_MAX 1024
int tr__path_check(const char *path, size_t len, tr_error **ret_err);

typedef struct tr__tool_call_rec {
        tr_tool_call pub;
        char *tool_id;
        char *error_op;
        char *error_code;
} tr__tool_call_rec;

struct tr_result {
        char *value_json;
        char *out;
        size_t out_len;
        char *err;
        size_t err_len;
        bool out_truncated;
        bool err_truncated;
        int exit_code;
        int signal;           /* 0: the snippet was not killed by a signal */
        char signal_name[16]; /* "SIGSEGV", or "SIG<n>" for one without a name */
        int64_t duration_us;
        tr_backend_kind backend;
        tr__kvlist details;
        tr_limits_enforced enforced;
        tr__tool_call_rec *calls;
        size_t n_calls;
        /* The egress proxy's counts for this execution (has_egress: the
         * sandbox had an allowlist). */
        bool has_egress;
        uint64_t egress_allowed, egress_denied;
        char **egress_denied_targets; /* NULL-terminated or NULL */
        /* Tool-call records arrive from gateway server threads. */
        pthread_mutex_t lock;
};

struct tr_exec {
        const tr_request *req;
        tr_result *res;
        tr_cancel *cancel;
        /* Atomic: a backend may move it (tr_exec_set_deadline_ns) while
         * gateway threads read it. */
        _Atomic int64_t deadline_ns;
        tr_profile profile;
        /* The request's limits with the profile's defaults applied. */
        tr_limits limits;
        tr_log_fn log;
        void *log_userdata;
        /* Backends may pump stdout and stderr from different threads. */
        pthread_mutex_t lock;
        tr__cbuf out;
        tr__cbuf err;
        /* The value line's framing (runner.h): this execution's random
         * marker, how many bytes of "\n" + marker end stdout so far (held
         * back, not yet in `out`), and the value being captured. */
        char marker[TR_MARKER_SIZE];
        bool session; /* tr_exec_session */
        bool ahead;   /* prepared ahead of its code (a pool's, a session's) */
        size_t match;
        bool eager_newline; /* the held "\n" already went to the callback */
        bool in_value;
        bool have_value;
        tr__cbuf value;
        tr__cbuf line; /* the marker line being read: a value, or "#STATUS" */
        /* Its first bytes whatever the cap: a done line is told apart even
         * when max_output is smaller than it. */
        char line_head[5];
        size_t line_head_len;
        /* The runner's done lines (runner.h): "\n<marker>#STATUS\n" on
         * stdout, "\n<marker>#\n" on stderr; `ematch` counts the bytes of
         * the stderr one held back, like `match` for stdout.  When both are
         * in, done_fd (an eventfd) is readable and done_status holds the
         * snippet's exit status: every byte of output is in, a backend
         * need not wait for the process to exit. */
        size_t ematch;
        char edigits[3]; /* the status digits held after "\n<marker>#" */
        size_t edigits_len;
        bool eager_err_newline;
        bool done_out, done_err;
        int done_status;
        int done_fd;
        /* The sandbox's egress proxy (egress/egress.h), set by the backend
         * from prepare to destroy: each execution's result takes its counts. */
        tr__egress_proxy *egress;
        /* TR_APPLIED_* as the backend last reported (tr_exec_report_applied). */
        unsigned applied;
        /* This execution's gateway session (plan.h): opened by the core for
         * each run, the backend only attaches a transport to it. */
        struct tr__gw_session *gw;
};

struct tr_gateway {
        const tr_gateway_ops *ops;
        void *self;
};

struct tr_backend {
        const tr_backend_ops *ops;
        void *self;
};

/* Everything tr_request_validate checks but the code: what a sandbox
 * prepared before its code is known must satisfy. */
int tr__request_validate_shape(const tr_request *req, tr_error **ret_err);

/* Prepare the exec's output streams and draw its value marker; 0 or
 * -errno (getrandom failed). */
int tr__exec_init_output(tr_exec *ex, size_t cap);
/* Set the result's stdout/stderr and value from the exec's buffers.  A value
 * over the output cap or not JSON is an error (the streams are still set). */
int tr__exec_finish_output(tr_exec *ex, tr_error **ret_err);
void tr__exec_done_output(tr_exec *ex);

/* The result's limits_enforced from the effective limits and what the
 * backend reported it applied: decided here only (exec.c). */
void tr__exec_decide_enforced(tr_exec *ex);
/* Open this execution's gateway session (ex->gw) / close it, after which
 * every tool call it served is in the result (exec.c). */
int tr__exec_open_gateway(tr_exec *ex, tr_error **ret_err);
void tr__exec_close_gateway(tr_exec *ex);

/* The limits to enforce for `profile` (resolved, not TR_PROFILE_DEFAULT):
 * `asked` with the profile's defaults in its unset fields.  Fails with
 * invalid_limits when the profile refuses an asked value (profile.c). */
int tr__profile_effective_limits(tr_profile profile, const tr_limits *asked, tr_limits *ret, tr_error **ret_err);
/* May a sandbox of `profile` on backend `kind` have the request's egress
 * allowlist?  0 when it has none or it may; TR_E_INVALID_REQUEST naming
 * the profile or the backend otherwise (profile.c). */
int tr__profile_check_egress(tr_profile profile, tr_backend_kind kind, const tr_request *req, tr_error **ret_err);

/* The result object as JSON (result_json.c): tr_result_to_json's tree, for
 * front ends inside the library that embed it. */
typedef struct json_t json_t;
json_t *tr__result_json(const tr_result *res, const tr_error *err);
/* One element of its "tool_calls" array. */
json_t *tr__tool_call_json(const tr_tool_call *c);

/* ---- the runtime's routing and logging, for sandbox.c ------------------- */

/* The backend `req` routes to, with the deny-unsafe_host policy applied. */
int tr__runtime_route_request(const tr_runtime *rt, const tr_request *req, tr_backend **ret_backend,
                              tr_error **ret_err);
tr_profile tr__runtime_profile_of(const tr_runtime *rt, const tr_request *req);
void tr__runtime_log(const tr_runtime *rt, tr_log_level level, const char *msg, const char *const *kv);
void tr__runtime_logger(const tr_runtime *rt, tr_log_fn *ret_fn, void **ret_userdata);

/* ---- sandboxes (sandbox.c) ------------------------------------------------ */

/* Prepare a sandbox for `shape` with the clock started at `start`;
 * `extra_ms` is added to the prepare deadline (and so to the backend's
 * backstops): TR_SANDBOX_MAX_IDLE_MS for a pool, the TTL for a session.  On
 * a failure after the backend was reached, *ret_sandbox is still set (it
 * holds the partial result); free it. */
int tr__sandbox_prepare(tr_runtime *rt, const tr_request *shape, tr_cancel *cancel, int64_t start, int64_t extra_ms,
                        tr_sandbox **ret_sandbox, tr_error **ret_err);
/* Run `req` with its deadline counted from `start`. */
int tr__sandbox_run(tr_sandbox *sb, const tr_request *req, tr_cancel *cancel, int64_t start, tr_result **ret_result,
                    tr_error **ret_err);
/* After a failed prepare: hand out the partial result (backend details). */
void tr__sandbox_fail_result(tr_sandbox *sb, int64_t start, tr_result **ret_result);
/* Would tr_sandbox_run accept `req` in `sb` (its shape, not yet run)? */
bool tr__sandbox_fits(const tr_sandbox *sb, const tr_request *req);

/* ---- sessions on a prepared sandbox (sandbox.c; used by session.c) ------ */

/* The backend's session seam, or TR_E_INVALID_REQUEST when it has none. */
int tr__sandbox_session_io(tr_sandbox *sb, int *ret_in, int *ret_out, int *ret_err_fd, tr_error **ret_err);
int tr__sandbox_signal(tr_sandbox *sb, int sig, tr_error **ret_err);
bool tr__sandbox_oom(tr_sandbox *sb);
tr_backend_kind tr__sandbox_kind(const tr_sandbox *sb);
tr_profile tr__sandbox_profile(const tr_sandbox *sb);
const tr_limits *tr__sandbox_limits(const tr_sandbox *sb);
/* Start one execution of a session in `sb`: a fresh result (the prepare's
 * backend details copied in), fresh output streams and value marker, `req`,
 * `cancel` and `deadline_ns` bound, then the backend's session_begin.
 * tr__sandbox_session_end always follows (also when this failed). */
int tr__sandbox_session_begin(tr_sandbox *sb, const tr_request *req, tr_cancel *cancel, int64_t deadline_ns,
                              tr_error **ret_err);
tr_exec *tr__sandbox_exec(tr_sandbox *sb);
/* The backend's session_end, the output into the result, the result handed
 * out (*ret_result; may be NULL to drop it).  A value problem is an error
 * stored in *ret_verr. */
void tr__sandbox_session_end(tr_sandbox *sb, int64_t start, tr_result **ret_result, tr_error **ret_verr);
/* Session framing (exec.c): the "\n" just appended to `stream` began the
 * runner's end line: take it back out of the result (the output callback
 * already had it; see session.c). */
void tr__exec_retract_newline(tr_exec *ex, tr_stream stream);
