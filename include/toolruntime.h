/* SPDX-License-Identifier: Apache-2.0 */
/*
 * toolruntime — run untrusted code in real isolation, with hard limits, and
 * let it call host-side tools through a narrow gateway.
 *
 * This header is the whole public API.  Conventions:
 *
 *  - Every name is prefixed tr_ / TR_.  Handles are opaque and come in
 *    _new/_free pairs; every _free accepts NULL.
 *  - Functions that can fail return 0 or a negative errno-style value and,
 *    when `ret_err` is not NULL, store a newly allocated tr_error there that
 *    the caller frees with tr_error_free().
 *  - A `const char *` argument is borrowed: the library copies what it keeps.
 *    A `ret_x` out-parameter receives ownership and is written only on
 *    success, unless the comment of the function says otherwise.
 *  - The library never prints, exits or aborts on bad input: log lines go to
 *    the caller's tr_log_fn.
 *  - Handles may be used from several threads only where a comment says so
 *    (tr_runtime_execute and tr_cancel_cancel are thread-safe).
 */
#ifndef TOOLRUNTIME_H
#define TOOLRUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TR_BUILDING_LIBRARY)
#define TR_PUBLIC __attribute__((visibility("default")))
#else
#define TR_PUBLIC
#endif

#define TR_VERSION_MAJOR  0
#define TR_VERSION_MINOR  1
#define TR_VERSION_PATCH  0
#define TR_VERSION_STRING "0.1.0"

/* The timeout used when a request leaves it at zero (the reference's 30 s). */
#define TR_DEFAULT_TIMEOUT_MS 30000
/* The per-stream output cap used when a request leaves it at zero. */
#define TR_DEFAULT_MAX_OUTPUT (1024 * 1024)
/* The largest value any limit may take (2^50: a petabyte, or 35 years of
 * CPU milliseconds) and the largest timeout (about 11.5 days). */
#define TR_LIMIT_MAX      (1LL << 50)
#define TR_TIMEOUT_MAX_MS 1000000000LL
/* Bounds on a snippet's arguments (tr_request_add_arg): they travel in the
 * interpreter's argv, which the kernel bounds too. */
#define TR_MAX_ARGS      256
#define TR_MAX_ARG_BYTES 4096

TR_PUBLIC const char *tr_version(void);

/* ------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------- */

/* Stable codes.  tr_code_name() gives the stable string used in JSON and in
 * messages ("timeout", "backend_denied", ...). */
typedef enum tr_code {
        TR_OK = 0,
        /* runtime */
        TR_E_RUNTIME_UNAVAILABLE,
        TR_E_BACKEND_DENIED,
        TR_E_SANDBOX_VIOLATION,
        TR_E_TIMEOUT,
        TR_E_RESOURCE_LIMIT,
        TR_E_MISSING_GATEWAY,
        TR_E_MISSING_CODE,
        TR_E_INVALID_LIMITS,
        TR_E_INVALID_REQUEST,
        /* containerd backend */
        TR_E_CONTAINERD_NOT_AVAILABLE,
        TR_E_IMAGE_NOT_FOUND,
        TR_E_CONTAINER_FAILED,
        TR_E_CLIENT_NOT_CONFIGURED,
        TR_E_DAEMON_UNAVAILABLE,
        TR_E_SECURITY_VIOLATION,
        /* kata backend */
        TR_E_KATA_NOT_AVAILABLE,
        TR_E_VM_CREATION_FAILED,
        TR_E_VM_EXECUTION_FAILED,
        /* cancelled by the caller through a tr_cancel */
        TR_E_CANCELLED,
        /* the tool gateway (tool errors, limits on tool calls / chain steps) */
        TR_E_TOOL_NOT_FOUND,
        TR_E_TOOL_FAILED,
        TR_E_TOOL_LIMIT,
        TR_E_INVALID_ARGUMENTS,
        TR_E_PROTOCOL,
        /* the library itself: out of memory, a system call failed */
        TR_E_INTERNAL,
        /* a session that ended (ttl, idle, its interpreter died, freed) */
        TR_E_SESSION_GONE,
        TR__CODE_MAX
} tr_code;

/* The stable string for a code; "unknown" for an out-of-range value. */
TR_PUBLIC const char *tr_code_name(tr_code code);
/* A short human sentence for a code (libuv's uv_strerror). */
TR_PUBLIC const char *tr_strerror(tr_code code);
/* Parse a stable string back; returns -EINVAL if unknown. */
TR_PUBLIC int tr_code_from_name(const char *name, tr_code *ret_code);

typedef enum tr_backend_kind {
        TR_BACKEND_NONE = 0,
        TR_BACKEND_UNSAFE_HOST,
        TR_BACKEND_DOCKER,
        TR_BACKEND_CONTAINERD,
        TR_BACKEND_KUBERNETES,
        TR_BACKEND_GVISOR,
        TR_BACKEND_KATA,
        TR_BACKEND_FIRECRACKER,
        TR_BACKEND_WASM,
        TR_BACKEND_TEMPORAL,
        TR_BACKEND_REMOTE,
        TR__BACKEND_MAX
} tr_backend_kind;

/* "unsafe_host", "containerd", ...; "" for TR_BACKEND_NONE. */
TR_PUBLIC const char *tr_backend_kind_name(tr_backend_kind kind);
TR_PUBLIC int tr_backend_kind_from_name(const char *name, tr_backend_kind *ret_kind);

typedef struct tr_error tr_error;

/* Accessors.  Strings are owned by the error and live as long as it. */
TR_PUBLIC tr_code tr_error_code(const tr_error *err);
TR_PUBLIC const char *tr_error_code_name(const tr_error *err);
TR_PUBLIC const char *tr_error_message(const tr_error *err);
/* The operation that failed, e.g. "validate", "task.create", "boot". */
TR_PUBLIC const char *tr_error_op(const tr_error *err);
TR_PUBLIC tr_backend_kind tr_error_backend(const tr_error *err);
TR_PUBLIC bool tr_error_retryable(const tr_error *err);
/* The underlying errno (positive) or 0. */
TR_PUBLIC int tr_error_errno(const tr_error *err);
/* The underlying gRPC status code, or -1 when none. */
TR_PUBLIC int tr_error_grpc_status(const tr_error *err);
TR_PUBLIC void tr_error_free(tr_error *err);

/* For backend and gateway authors: create an error.  `op` may be NULL.
 * Returns -EIO-style negative value suitable for returning directly; does
 * nothing but return when ret_err is NULL. */
TR_PUBLIC int tr_error_set(tr_error **ret_err, tr_code code, tr_backend_kind backend, const char *op, const char *fmt,
                           ...) __attribute__((format(printf, 5, 6)));
/* Mark an error retryable / attach errno after creation. */
TR_PUBLIC void tr_error_set_retryable(tr_error *err, bool retryable);
TR_PUBLIC void tr_error_set_errno(tr_error *err, int errnum);
TR_PUBLIC void tr_error_set_grpc_status(tr_error *err, int status);
/* Prefix context to the message ("while X: <old message>"), keeping code. */
TR_PUBLIC void tr_error_prefix(tr_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------
 * Profiles, limits
 * ---------------------------------------------------------------------- */

typedef enum tr_profile {
        TR_PROFILE_DEFAULT = 0, /* the runtime's default profile */
        TR_PROFILE_DEV,
        TR_PROFILE_STANDARD,
        TR_PROFILE_HARDENED,
        TR__PROFILE_MAX
} tr_profile;

TR_PUBLIC const char *tr_profile_name(tr_profile profile);
TR_PUBLIC int tr_profile_from_name(const char *name, tr_profile *ret_profile);

/*
 * Resource and gateway limits.  Each field is one of
 *
 *   TR_LIMIT_UNSET (-1): take the profile's default (see the table in the
 *                        README and toolruntime(1); tr_profile_default_limits);
 *   0:                   unlimited, except where the profile refuses it
 *                        (hardened refuses an unlimited memory, CPU, pids or
 *                        disk: invalid_limits);
 *   1..TR_LIMIT_MAX:     that limit.
 *
 * Any other value makes the request invalid (invalid_limits).  A request
 * starts with every field unset; tr_limits_init() gives a struct in that
 * state, to set only the fields the caller means (a zero-initialised struct
 * asks for "unlimited" in every field).  Plain value type.
 */
#define TR_LIMIT_UNSET (-1)
typedef struct tr_limits {
        int64_t max_tool_calls;
        int64_t max_chain_steps;
        int64_t cpu_quota_ms; /* CPU milliseconds per 100 ms period */
        int64_t memory_bytes;
        int64_t pids_max;
        int64_t disk_bytes;
} tr_limits;

/* Every field TR_LIMIT_UNSET. */
TR_PUBLIC void tr_limits_init(tr_limits *limits);
/* The limits `profile` applies to unset fields (0: none).  -EINVAL for
 * TR_PROFILE_DEFAULT (a runtime's choice) or an unknown profile. */
TR_PUBLIC int tr_profile_default_limits(tr_profile profile, tr_limits *ret_limits);

/*
 * The string forms of limits, as the CLI takes them.  Strict: nothing but
 * what is described, no sign, space, hex, exponent or other unit.  Errors
 * are invalid_limits with a message naming the accepted form.
 *
 *   tr_parse_size:    digits with an optional k, M or G suffix (powers of
 *                     1024): "4096", "64k", "512M", "2G".
 *   tr_parse_count:   digits: "64".
 *   tr_parse_seconds: digits with an optional '.' fraction, to milliseconds
 *                     (rounded to the nearest): "30", "1.5", "0.25".  A
 *                     non-zero value that rounds to 0 ms is an error.
 */
TR_PUBLIC int tr_parse_size(const char *s, int64_t *ret_bytes, tr_error **ret_err);
TR_PUBLIC int tr_parse_count(const char *s, int64_t *ret, tr_error **ret_err);
TR_PUBLIC int tr_parse_seconds(const char *s, int64_t *ret_ms, tr_error **ret_err);

/* Which limits a backend really enforced for one execution. */
typedef struct tr_limits_enforced {
        bool timeout;
        bool tool_calls;
        bool chain_steps;
        bool memory;
        bool cpu;
        bool pids;
        bool disk;
} tr_limits_enforced;

/*
 * The host uids given to sandboxes, one per live sandbox (containers and
 * VMs alike), each also used as the sandbox's gid: uids first ..
 * first+count-1.  A zero count selects the default range,
 * TR_UID_RANGE_DEFAULT_FIRST + TR_UID_RANGE_DEFAULT_COUNT: 0x70000000 up,
 * above the subordinate uid ranges useradd hands out (100000-600100000), the
 * systemd container range (0x00080000-0x6FFFFFFF) and every account, and
 * below 2^31 and systemd's foreign range (0x7FFE0000).  A range may not
 * contain uids below 1000 (system accounts), 65534/65535 (nobody, 16-bit -1)
 * or 4294967295.
 */
typedef struct tr_uid_range {
        uint32_t first;
        uint32_t count;
} tr_uid_range;

#define TR_UID_RANGE_DEFAULT_FIRST 0x70000000u
#define TR_UID_RANGE_DEFAULT_COUNT 65536u

/* Parse "FIRST-LAST" (decimal, inclusive) into *ret_range and check it as
 * above; TR_E_INVALID_REQUEST naming the accepted form otherwise. */
TR_PUBLIC int tr_uid_range_parse(const char *text, tr_uid_range *ret_range, tr_error **ret_err);

/* A copy of `n` bytes `s` (snippet output need not be text) as valid UTF-8:
 * each invalid sequence becomes U+FFFD, as the JSON reports show it.
 * *ret_text is malloc()ed and NUL-terminated (the bytes may hold NULs:
 * *ret_len, may be NULL, is the length). */
TR_PUBLIC int tr_utf8_sanitize(const char *s, size_t n, char **ret_text, size_t *ret_len, tr_error **ret_err);

/* ------------------------------------------------------------------------
 * Logging
 * ---------------------------------------------------------------------- */

typedef enum tr_log_level { TR_LOG_INFO, TR_LOG_WARN, TR_LOG_ERROR } tr_log_level;

/* `kv` is a NULL-terminated array of alternating keys and values.  The
 * callback must be safe to call from several threads; logging is best
 * effort and never fails an execution. */
typedef void (*tr_log_fn)(void *userdata, tr_log_level level, const char *msg, const char *const *kv);

/* ------------------------------------------------------------------------
 * Cancellation
 * ---------------------------------------------------------------------- */

typedef struct tr_cancel tr_cancel;

TR_PUBLIC int tr_cancel_new(tr_cancel **ret_cancel, tr_error **ret_err);
/* Thread-safe and async-signal-safe: wakes every execution using it. */
TR_PUBLIC void tr_cancel_cancel(tr_cancel *cancel);
TR_PUBLIC bool tr_cancel_is_cancelled(const tr_cancel *cancel);
/* A file descriptor that becomes readable once cancelled, for poll loops.
 * Owned by the tr_cancel; do not close or read it. */
TR_PUBLIC int tr_cancel_fd(const tr_cancel *cancel);
TR_PUBLIC void tr_cancel_free(tr_cancel *cancel);

/* ------------------------------------------------------------------------
 * The tool gateway
 * ---------------------------------------------------------------------- */

typedef enum tr_detail_level {
        TR_DETAIL_SUMMARY = 0,
        TR_DETAIL_SCHEMA,
        TR_DETAIL_FULL,
} tr_detail_level;

TR_PUBLIC const char *tr_detail_level_name(tr_detail_level level);
TR_PUBLIC int tr_detail_level_from_name(const char *name, tr_detail_level *ret_level);

/*
 * The context of one tool call: the deadline it must not outlive and the
 * file descriptors that cancel it.  Every tr_gateway_ops callback gets one
 * (NULL: no deadline, nothing cancels; a direct library call).  A gateway
 * implementation that waits on anything (a process, a socket) stops at
 * tr_call_ctx_deadline_ns (TR_E_TIMEOUT) and as soon as a cancel fd becomes
 * readable (TR_E_CANCELLED).  The runtime makes one per call from the
 * execution (its deadline, its cancel token, the end of the execution); it
 * is valid for the duration of the callback only.  Opaque, so that it can
 * carry more later without breaking implementations.
 */
typedef struct tr_call_ctx tr_call_ctx;

/* A context for direct calls (tr_gateway_run_tool, ...): `deadline_ns` is
 * absolute CLOCK_MONOTONIC nanoseconds (0: none), `cancel` (may be NULL;
 * borrowed, must outlive the context) cancels the call. */
TR_PUBLIC int tr_call_ctx_new(int64_t deadline_ns, const tr_cancel *cancel, tr_call_ctx **ret_ctx, tr_error **ret_err);
TR_PUBLIC void tr_call_ctx_free(tr_call_ctx *ctx);
/* The call's absolute deadline on CLOCK_MONOTONIC, or 0 for none (also for
 * a NULL ctx). */
TR_PUBLIC int64_t tr_call_ctx_deadline_ns(const tr_call_ctx *ctx);
/* Store up to `max` cancel fds (owned by the context's creator: poll them
 * for POLLIN, never read or close them) in `fds`; returns how many (at most
 * TR_CALL_MAX_CANCEL_FDS; 0 for a NULL ctx). */
#define TR_CALL_MAX_CANCEL_FDS 2
TR_PUBLIC size_t tr_call_ctx_cancel_fds(const tr_call_ctx *ctx, int *fds, size_t max);
/* Whether a cancel fd is readable now. */
TR_PUBLIC bool tr_call_ctx_cancelled(const tr_call_ctx *ctx);

/*
 * The six operations sandboxed code may call on the host.  Everything that
 * crosses this table is JSON text: the gateway returns a newly malloc()ed
 * NUL-terminated JSON document in *ret_json (freed by the caller with free())
 * or fails with a tr_error.  Implementations must be safe for concurrent
 * use; the runtime enforces call and chain-step limits around them, so they
 * need not.  `ctx` is the call's context (see tr_call_ctx; may be NULL).
 *
 *   search_tools:       JSON array of tool summaries, at most `limit` (0: the
 *                       gateway's default).
 *   list_namespaces:    JSON array of strings.
 *   describe_tool:      JSON object for tool `id` at `level` of detail.
 *   list_tool_examples: JSON array of at most `max` examples (0: all).
 *   run_tool:           `args_json` is a JSON object; the result is any JSON.
 *   run_chain:          `steps_json` is a JSON array of {"tool_id", "args",
 *                       "use_previous" (bool), "arg_name" (where the
 *                       previous result goes)}; the result is the last
 *                       step's result.
 */
typedef struct tr_gateway_ops {
        int (*search_tools)(void *self, const tr_call_ctx *ctx, const char *query, int limit, char **ret_json,
                            tr_error **ret_err);
        int (*list_namespaces)(void *self, const tr_call_ctx *ctx, char **ret_json, tr_error **ret_err);
        int (*describe_tool)(void *self, const tr_call_ctx *ctx, const char *id, tr_detail_level level, char **ret_json,
                             tr_error **ret_err);
        int (*list_tool_examples)(void *self, const tr_call_ctx *ctx, const char *id, int max, char **ret_json,
                                  tr_error **ret_err);
        int (*run_tool)(void *self, const tr_call_ctx *ctx, const char *id, const char *args_json, char **ret_json,
                        tr_error **ret_err);
        int (*run_chain)(void *self, const tr_call_ctx *ctx, const char *steps_json, char **ret_json,
                         tr_error **ret_err);
        /* Releases `self`.  May be NULL. */
        void (*free)(void *self);
        /* Optional (NULL: the gateway falls back to search_tools and
         * describe_tool, at most 100 tools).  A JSON array of the
         * descriptions at TR_DETAIL_SCHEMA of every tool in namespace `ns`
         * (NULL: of every tool), in id order.  Host-side only: the sandbox
         * reaches it through the bindings, never directly. */
        int (*list_tools)(void *self, const tr_call_ctx *ctx, const char *ns, char **ret_json, tr_error **ret_err);
} tr_gateway_ops;

typedef struct tr_gateway tr_gateway;

/* Wrap an implementation.  `ops` must outlive the gateway; `self` is owned
 * and released by ops->free in tr_gateway_free. */
TR_PUBLIC int tr_gateway_new(const tr_gateway_ops *ops, void *self, tr_gateway **ret_gateway, tr_error **ret_err);
/* A gateway with no tools: searches return [], runs fail tool_not_found. */
TR_PUBLIC int tr_gateway_new_empty(tr_gateway **ret_gateway, tr_error **ret_err);
TR_PUBLIC void tr_gateway_free(tr_gateway *gateway);

/* Direct calls through the table (what the per-execution server does).
 * `ctx` may be NULL (no deadline, no cancel). */
TR_PUBLIC int tr_gateway_search_tools(tr_gateway *gw, const tr_call_ctx *ctx, const char *query, int limit,
                                      char **ret_json, tr_error **ret_err);
TR_PUBLIC int tr_gateway_list_namespaces(tr_gateway *gw, const tr_call_ctx *ctx, char **ret_json, tr_error **ret_err);
TR_PUBLIC int tr_gateway_describe_tool(tr_gateway *gw, const tr_call_ctx *ctx, const char *id, tr_detail_level level,
                                       char **ret_json, tr_error **ret_err);
TR_PUBLIC int tr_gateway_list_tool_examples(tr_gateway *gw, const tr_call_ctx *ctx, const char *id, int max,
                                            char **ret_json, tr_error **ret_err);
TR_PUBLIC int tr_gateway_run_tool(tr_gateway *gw, const tr_call_ctx *ctx, const char *id, const char *args_json,
                                  char **ret_json, tr_error **ret_err);
TR_PUBLIC int tr_gateway_run_chain(tr_gateway *gw, const tr_call_ctx *ctx, const char *steps_json, char **ret_json,
                                   tr_error **ret_err);
/* See tr_gateway_ops.list_tools; `ns` may be NULL. */
TR_PUBLIC int tr_gateway_list_tools(tr_gateway *gw, const tr_call_ctx *ctx, const char *ns, char **ret_json,
                                    tr_error **ret_err);

/*
 * Typed Python bindings generated from the tools' schemas (host side; the
 * schemas are untrusted: every name becomes a sanitised identifier and every
 * text a quoted literal, so nothing a tool says can become code).
 *
 *   TR_BINDINGS_MODULE:     the source of the module the sandbox imports as
 *                           toolruntime.tools.<module>: one keyword-only
 *                           function per tool, validating its arguments in
 *                           the sandbox before calling through the gateway.
 *   TR_BINDINGS_STUB:       the same as a .pyi stub (types and docstrings).
 *   TR_BINDINGS_SIGNATURES: one compact line per tool, "module.fn(a: int,
 *                           b: int = ...) -> T  # first line of description".
 *
 * `module` is a module name as the sandbox imports it (each namespace's
 * sanitised name) or NULL for every namespace (STUB and SIGNATURES only).
 * Fails with TR_E_TOOL_NOT_FOUND when no namespace has that module name.
 * *ret_text is malloc()ed; *ret_namespace (may be NULL) receives the
 * namespace's real name when `module` was given.
 */
typedef enum tr_bindings_kind {
        TR_BINDINGS_MODULE = 0,
        TR_BINDINGS_STUB,
        TR_BINDINGS_SIGNATURES,
} tr_bindings_kind;

TR_PUBLIC int tr_gateway_python_bindings(tr_gateway *gw, const char *module, tr_bindings_kind kind, char **ret_text,
                                         char **ret_namespace, tr_error **ret_err);

/* ------------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------- */

typedef struct tr_request tr_request;

TR_PUBLIC int tr_request_new(tr_request **ret_request, tr_error **ret_err);
TR_PUBLIC void tr_request_free(tr_request *req);

/* The code to run (copied; may contain NUL bytes, hence the length). */
TR_PUBLIC int tr_request_set_code(tr_request *req, const char *code, size_t len, tr_error **ret_err);
/* The snippet's standard input (bytes; NULL: none, the snippet reads EOF).
 * At most TR_MAX_STDIN_BYTES.  Like the code, bound at run time. */
#define TR_MAX_STDIN_BYTES (16 * 1024 * 1024)
TR_PUBLIC int tr_request_set_stdin(tr_request *req, const char *data, size_t len, tr_error **ret_err);
/* A file written into the snippet's working directory (/tmp in a sandbox)
 * before it runs: Piston's `files[]` beyond the first.  `path` is relative,
 * with no "..", no empty component, no NUL (the session file rules below);
 * symlinks are never followed.  At most TR_MAX_REQUEST_FILES files and
 * TR_MAX_STDIN_BYTES of data in all (code, stdin and files share the
 * runner's standard input); TR_E_INVALID_REQUEST otherwise.  Bound at run
 * time, like the code.  Sessions refuse them (use tr_session_upload_*). */
#define TR_MAX_REQUEST_FILES 64
TR_PUBLIC int tr_request_add_file(tr_request *req, const char *path, const void *data, size_t len, tr_error **ret_err);
TR_PUBLIC size_t tr_request_file_count(const tr_request *req);
/* NULL when i is out of range; the path and data are owned by the request. */
TR_PUBLIC const char *tr_request_file_at(const tr_request *req, size_t i, const void **ret_data, size_t *ret_len);
TR_PUBLIC const char *tr_request_stdin(const tr_request *req, size_t *ret_len);
/* "python" or "sh"; NULL or "" selects the backend's default (python). */
TR_PUBLIC int tr_request_set_language(tr_request *req, const char *language, tr_error **ret_err);
/* 0 selects TR_DEFAULT_TIMEOUT_MS. */
TR_PUBLIC void tr_request_set_timeout_ms(tr_request *req, int64_t timeout_ms);
/* Replaces all six limits (see tr_limits for TR_LIMIT_UNSET and 0); NULL
 * unsets them all. */
TR_PUBLIC void tr_request_set_limits(tr_request *req, const tr_limits *limits);
TR_PUBLIC void tr_request_set_profile(tr_request *req, tr_profile profile);
/* Borrowed: the gateway must outlive every execution of the request. */
TR_PUBLIC void tr_request_set_gateway(tr_request *req, tr_gateway *gateway);
/* Per-stream cap on captured stdout and stderr, and on the value's JSON
 * text (a larger value fails the execution with TR_E_RESOURCE_LIMIT); 0
 * selects TR_DEFAULT_MAX_OUTPUT. */
TR_PUBLIC void tr_request_set_max_output(tr_request *req, size_t bytes);
/* Append one argument the snippet sees: `sys.argv[1:]` in Python, "$@" in
 * sh (copied).  At most TR_MAX_ARGS arguments of TR_MAX_ARG_BYTES each. */
TR_PUBLIC int tr_request_add_arg(tr_request *req, const char *arg, tr_error **ret_err);
TR_PUBLIC size_t tr_request_arg_count(const tr_request *req);
/* NULL when i is out of range; owned by the request. */
TR_PUBLIC const char *tr_request_arg_at(const tr_request *req, size_t i);
/* Egress allowlist: "HOST:PORT" entries, HOST a DNS name, an IPv4 literal
 * or a bracketed IPv6 literal ("[::1]:443"), PORT 1-65535; exact matches
 * only (no wildcards), host names compared without case.  At most
 * TR_MAX_EGRESS_ALLOW entries of at most TR_MAX_EGRESS_ENTRY_BYTES each.
 * NULL/0: no network (the default).  Part of the shape (bound at prepare).
 * Enforced on the host by a proxy that the sandbox reaches at
 * http://127.0.0.1:TR_EGRESS_PROXY_PORT inside its own network namespace
 * (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY in its environment): HTTP CONNECT and
 * plain HTTP, DNS resolved by the proxy after the check.  The hardened
 * profile refuses any allowlist; only the containerd backend enforces one
 * (kata's VM has no network device, unsafe_host has nothing to enforce it
 * with): elsewhere TR_E_INVALID_REQUEST.  Replaces the list; copied. */
#define TR_MAX_EGRESS_ALLOW       64
#define TR_MAX_EGRESS_ENTRY_BYTES 262
#define TR_EGRESS_PROXY_PORT      3128
TR_PUBLIC int tr_request_set_egress_allow(tr_request *req, const char *const *host_ports, size_t n, tr_error **ret_err);
TR_PUBLIC size_t tr_request_egress_allow_count(const tr_request *req);
/* The entry as the caller gave it; NULL when i is out of range. */
TR_PUBLIC const char *tr_request_egress_allow_at(const tr_request *req, size_t i);
/* A front end's ceiling (serve's --egress-allow-max): 0 when every entry of
 * the request's allowlist is also one of `ceiling`'s `n` entries (same
 * syntax, compared in canonical form: case, a trailing dot, IPv6 spelling
 * do not matter); an empty allowlist always is.  Otherwise
 * TR_E_BACKEND_DENIED naming the first entry outside it, or
 * TR_E_INVALID_REQUEST for a malformed ceiling entry. */
TR_PUBLIC int tr_request_egress_allow_within(const tr_request *req, const char *const *ceiling, size_t n,
                                             tr_error **ret_err);
/* Which stream a piece of output belongs to. */
typedef enum tr_stream {
        TR_STREAM_STDOUT = 1,
        TR_STREAM_STDERR = 2,
} tr_stream;
/* Receives the snippet's output as it is produced: the bytes the result
 * will hold (within max_output, the value line taken out; in the rare case
 * of a transport splitting the value line's framing, one newline more), in
 * order per stream.  Called from a library thread, never two calls at once for one
 * execution; it must not block for long (the sandbox's output waits) and
 * must not free the request. */
typedef void (*tr_output_fn)(void *userdata, tr_stream stream, const char *data, size_t len);
/* Stream output to `fn` during executions of this request (NULL: none).
 * The result still holds all of it. */
TR_PUBLIC void tr_request_set_output_callback(tr_request *req, tr_output_fn fn, void *userdata);
/* Receives each tool call as it ends, with the record the result will list
 * and that record as JSON (an element of the result object's "tool_calls"
 * array).  Called from a library thread (the gateway's), in the order the
 * calls end, never two calls at once for one execution, possibly at the
 * same time as the output callback; it must not block for long. */
typedef struct tr_tool_call tr_tool_call;
typedef void (*tr_tool_call_fn)(void *userdata, const tr_tool_call *call, const char *json);
TR_PUBLIC void tr_request_set_tool_call_callback(tr_request *req, tr_tool_call_fn fn, void *userdata);
/* Free-form metadata, passed to backends (e.g. as container labels). */
TR_PUBLIC int tr_request_set_metadata(tr_request *req, const char *key, const char *value, tr_error **ret_err);

TR_PUBLIC const char *tr_request_code(const tr_request *req, size_t *ret_len);
/* The language as set; "" when unset. */
TR_PUBLIC const char *tr_request_language(const tr_request *req);
/* The language a backend should run: "python" when unset. */
TR_PUBLIC const char *tr_request_effective_language(const tr_request *req);
TR_PUBLIC int64_t tr_request_timeout_ms(const tr_request *req);
/* The timeout a backend must enforce: the request's, or the default. */
TR_PUBLIC int64_t tr_request_effective_timeout_ms(const tr_request *req);
/* The limits as the caller set them (TR_LIMIT_UNSET where it did not);
 * backends read tr_exec_limits() instead. */
TR_PUBLIC const tr_limits *tr_request_limits(const tr_request *req);
TR_PUBLIC tr_profile tr_request_profile(const tr_request *req);
TR_PUBLIC tr_gateway *tr_request_gateway(const tr_request *req);
TR_PUBLIC size_t tr_request_max_output(const tr_request *req);
TR_PUBLIC size_t tr_request_metadata_count(const tr_request *req);
TR_PUBLIC void tr_request_metadata_at(const tr_request *req, size_t i, const char **ret_key, const char **ret_value);

/* ------------------------------------------------------------------------
 * Results
 * ---------------------------------------------------------------------- */

typedef struct tr_result tr_result;

struct tr_tool_call {
        const char *tool_id;
        tr_backend_kind backend;
        int64_t duration_us;
        const char *error_op;   /* NULL when the call succeeded */
        const char *error_code; /* NULL when the call succeeded */
};

TR_PUBLIC int tr_result_new(tr_result **ret_result, tr_error **ret_err);
TR_PUBLIC void tr_result_free(tr_result *res);

/* The snippet's value (Python's `__out`, sh's `trvalue JSON`) as compact
 * JSON text, or NULL when it set none.  It travels on stdout behind a marker
 * drawn at random per execution, so printed output cannot forge it, and it
 * is never part of tr_result_stdout.  A value that is not JSON fails the
 * execution with TR_E_INVALID_REQUEST (op "value"). */
TR_PUBLIC const char *tr_result_value_json(const tr_result *res);
TR_PUBLIC const char *tr_result_stdout(const tr_result *res, size_t *ret_len);
TR_PUBLIC const char *tr_result_stderr(const tr_result *res, size_t *ret_len);
TR_PUBLIC bool tr_result_stdout_truncated(const tr_result *res);
TR_PUBLIC bool tr_result_stderr_truncated(const tr_result *res);
/* The snippet's exit status; -1 when it did not end by itself (timeout,
 * cancel, runtime error).  A snippet killed by a signal reads 128 + the
 * signal's number, on every backend, as a shell reports it. */
TR_PUBLIC int tr_result_exit_code(const tr_result *res);
/* The signal that killed the snippet (then exit_code is 128 + it), or 0.
 * On containerd the runtime reports a signal death as the exit status
 * 128 + N, so there a snippet that itself exits with 129..192 reads as
 * killed by signal N-128 too. */
TR_PUBLIC int tr_result_signal(const tr_result *res);
/* Its name ("SIGSEGV"), or NULL when no signal killed the snippet. */
TR_PUBLIC const char *tr_result_signal_name(const tr_result *res);
TR_PUBLIC int64_t tr_result_duration_us(const tr_result *res);
TR_PUBLIC tr_backend_kind tr_result_backend_kind(const tr_result *res);
TR_PUBLIC size_t tr_result_backend_detail_count(const tr_result *res);
TR_PUBLIC void tr_result_backend_detail_at(const tr_result *res, size_t i, const char **ret_key,
                                           const char **ret_value);
/* NULL when the key is absent. */
TR_PUBLIC const char *tr_result_backend_detail(const tr_result *res, const char *key);
TR_PUBLIC const tr_limits_enforced *tr_result_limits_enforced(const tr_result *res);
TR_PUBLIC size_t tr_result_tool_call_count(const tr_result *res);
/* The record stays owned by the result. */
TR_PUBLIC const tr_tool_call *tr_result_tool_call_at(const tr_result *res, size_t i);
/* Egress through the sandbox's proxy during this execution: false when the
 * sandbox had no allowlist (no network).  Connections allowed and denied
 * (exact counts), and the first TR_MAX_EGRESS_DENIED_TARGETS distinct
 * denied "host:port" targets (owned by the result). */
#define TR_MAX_EGRESS_DENIED_TARGETS 16
TR_PUBLIC bool tr_result_egress(const tr_result *res, uint64_t *ret_allowed, uint64_t *ret_denied);
TR_PUBLIC size_t tr_result_egress_denied_target_count(const tr_result *res);
TR_PUBLIC const char *tr_result_egress_denied_target_at(const tr_result *res, size_t i);

/* The result as one JSON object (compact, ASCII): value, stdout, stderr,
 * exit_code, duration_ms, backend {kind, details}, limits_enforced,
 * tool_calls, truncated {stdout, stderr}, error (null or {code, message, op,
 * backend, retryable}) — the shape `toolruntime exec --json` prints and the
 * HTTP service returns.  Either argument may be NULL.  *ret_json is the
 * caller's to free(). */
TR_PUBLIC int tr_result_to_json(const tr_result *res, const tr_error *err, char **ret_json, tr_error **ret_err);

/* Setters, for backend authors.  Output appended beyond the request's cap is
 * dropped and marks the stream truncated. */
TR_PUBLIC void tr_result_set_exit_code(tr_result *res, int exit_code);
/* The snippet was killed by signal `sig` (1..64): sets the signal and the
 * exit status 128 + sig.  Other values are ignored. */
TR_PUBLIC void tr_result_set_signal(tr_result *res, int sig);
TR_PUBLIC void tr_result_set_backend_kind(tr_result *res, tr_backend_kind kind);
TR_PUBLIC int tr_result_set_backend_detail(tr_result *res, const char *key, const char *value, tr_error **ret_err);
TR_PUBLIC int tr_result_add_tool_call(tr_result *res, const char *tool_id, tr_backend_kind backend, int64_t duration_us,
                                      const char *error_op, const char *error_code, tr_error **ret_err);

/* ------------------------------------------------------------------------
 * Backends
 * ---------------------------------------------------------------------- */

/* What a backend gets besides the request: the cancel token (may be NULL),
 * the absolute deadline on CLOCK_MONOTONIC, the logger and the result to fill.
 * Output goes through tr_exec_append_stdout/stderr so that caps and the
 * `__out` protocol are handled once, in the core. */
typedef struct tr_exec tr_exec;

TR_PUBLIC const tr_request *tr_exec_request(const tr_exec *ex);
TR_PUBLIC tr_result *tr_exec_result(tr_exec *ex);
/* -1 when there is no cancel token. */
TR_PUBLIC int tr_exec_cancel_fd(const tr_exec *ex);
TR_PUBLIC bool tr_exec_cancelled(const tr_exec *ex);
/* Absolute deadline, CLOCK_MONOTONIC nanoseconds. */
TR_PUBLIC int64_t tr_exec_deadline_ns(const tr_exec *ex);
/* Move the deadline, for a backend whose sandbox start is not the
 * snippet's (a VM counts the timeout from the snippet's start, after the
 * boot).  Thread-safe: the gateway reads the deadline from its threads. */
TR_PUBLIC void tr_exec_set_deadline_ns(tr_exec *ex, int64_t deadline_ns);
/* Milliseconds left before the deadline (<= 0 once passed). */
TR_PUBLIC int64_t tr_exec_remaining_ms(const tr_exec *ex);
/* The profile in force: never TR_PROFILE_DEFAULT (the runtime resolved it). */
TR_PUBLIC tr_profile tr_exec_profile(const tr_exec *ex);
/* The limits to enforce: the request's, with the profile's defaults in
 * every unset field.  No field is TR_LIMIT_UNSET; 0 is unlimited.  Backends
 * enforce these and report what they applied (tr_exec_report_applied). */
TR_PUBLIC const tr_limits *tr_exec_limits(const tr_exec *ex);
/* Record a tool call that ended (what a gateway does): added to the result
 * and handed to the request's tool call callback.  Errors adding it (out
 * of memory) are dropped: a record never fails the call it describes. */
TR_PUBLIC void tr_exec_record_tool_call(tr_exec *ex, const char *tool_id, int64_t duration_us, const char *error_op,
                                        const char *error_code);
TR_PUBLIC void tr_exec_append_stdout(tr_exec *ex, const void *data, size_t len);
TR_PUBLIC void tr_exec_append_stderr(tr_exec *ex, const void *data, size_t len);
/* What the backend applied to the sandbox of `ex`, reported by prepare,
 * run or session_begin (the last report counts): a bitwise OR of
 * TR_APPLIED_*, each meaning "when the limit is set, this sandbox holds the
 * snippet to it".  The core alone turns this into the result's
 * limits_enforced: a limit is enforced when it is set and applied; the
 * timeout always (the deadline is every backend's contract); tool calls and
 * chain steps when set, since the core's gateway session counts them. */
#define TR_APPLIED_MEMORY (1u << 0)
#define TR_APPLIED_CPU    (1u << 1)
#define TR_APPLIED_PIDS   (1u << 2)
#define TR_APPLIED_DISK   (1u << 3)
TR_PUBLIC void tr_exec_report_applied(tr_exec *ex, unsigned applied);
/* Log through the runtime's logger; `kv` pairs end with NULL. */
TR_PUBLIC void tr_exec_log(const tr_exec *ex, tr_log_level level, const char *msg, ...) __attribute__((sentinel));
/* True when `ex` prepares a session's sandbox (tr_session_new): its process
 * must be the session runner that tr__runner_argv gives for this exec (a
 * persistent interpreter reading commands on stdin), its backstop deadline
 * is the session's TTL, and the core drives it through session_io and
 * signal (tr_backend_ops) instead of `run`. */
TR_PUBLIC bool tr_exec_session(const tr_exec *ex);

/*
 * A backend.  Contract of each callback:
 *
 *   kind:    the kind this backend implements; constant.
 *   execute: run the request described by `ex` to completion, honouring the
 *            cancel token and the deadline (on expiry: stop everything the
 *            execution started and fail with TR_E_TIMEOUT; on cancel:
 *            TR_E_CANCELLED).  Fills the result through the tr_exec
 *            accessors, including on failure (partial output is kept).  Must
 *            be safe to call from several threads at once and must leave
 *            nothing behind (processes, containers, files) in every case.
 *            Never mutate the request: the profile and the effective
 *            limits are tr_exec_profile() and tr_exec_limits().
 *   free:    release `self`.  May be NULL.
 *
 * A backend that can create its sandbox before the code is known (so that
 * a pool can keep sandboxes warm) implements the lifecycle instead of, or
 * besides, execute; the runtime then uses it for every execution:
 *
 *   prepare: everything that does not need the code: the sandbox up and its
 *            interpreter started, waiting for the code.  tr_exec_request()
 *            is the shape (no code yet); the deadline bounds the prepare.
 *            Stores the backend's sandbox in *ret_sandbox.  On failure it
 *            leaves nothing behind.
 *   run:     run tr_exec_request(ex) — now with its code — in `sandbox`,
 *            once, under the deadline and cancel token of `ex` (both may
 *            differ from prepare's), filling the result as execute does.
 *   destroy: tear `sandbox` down, whatever state it is in (prepared, run,
 *            failed half-way); never fails.  `ex` is for logging.
 */
typedef struct tr_backend_ops {
        tr_backend_kind (*kind)(void *self);
        int (*execute)(void *self, tr_exec *ex, tr_error **ret_err);
        void (*free)(void *self);
        int (*prepare)(void *self, tr_exec *ex, void **ret_sandbox, tr_error **ret_err);
        int (*run)(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err);
        void (*destroy)(void *self, void *sandbox, tr_exec *ex);
        /*
         * Sessions (optional; NULL session_io or signal: the backend has no
         * sessions, and tr_session_new fails TR_E_INVALID_REQUEST saying so).
         * `sandbox` was prepared from an exec whose tr_exec_session(ex) is
         * true: its process is the session runner, waiting on stdin.  The
         * session protocol itself is the core's (runner.h); a backend only
         * hands over the pipes and delivers signals.
         *
         *   session_io:    the runner's stdin (write end) and stdout/stderr
         *                  (read ends), owned by the sandbox (valid until
         *                  destroy; the caller neither closes them nor
         *                  changes their flags; they may be non-blocking).
         *                  EOF on stdout means the interpreter is gone.
         *   signal:        deliver `sig` to the interpreter process (SIGINT
         *                  interrupts the running snippet; SIGKILL ends it).
         *   session_begin: optional; called before each execution with
         *                  that execution's exec (request with its gateway,
         *                  deadline, cancel, result): bind what is per
         *                  execution (the transport of the core's gateway
         *                  session) and, if it changed, report what is
         *                  applied (tr_exec_report_applied).
         *   session_end:   optional; after each execution (also a failed
         *                  one): release what session_begin bound.
         *   session_oom:   optional; true when the sandbox's memory limit
         *                  killed a process (read when the interpreter died,
         *                  before destroy), to say why the session ended.
         */
        int (*session_io)(void *self, void *sandbox, int *ret_in, int *ret_out, int *ret_errfd, tr_error **ret_err);
        int (*signal)(void *self, void *sandbox, int sig, tr_error **ret_err);
        int (*session_begin)(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err);
        void (*session_end)(void *self, void *sandbox, tr_exec *ex);
        bool (*session_oom)(void *self, void *sandbox);
} tr_backend_ops;

typedef struct tr_backend tr_backend;

/* `ops` must outlive the backend; `self` is released by ops->free. */
TR_PUBLIC int tr_backend_new(const tr_backend_ops *ops, void *self, tr_backend **ret_backend, tr_error **ret_err);
TR_PUBLIC tr_backend_kind tr_backend_kind_of(const tr_backend *backend);
TR_PUBLIC void tr_backend_free(tr_backend *backend);

/* The unsafe_host backend: the snippet runs as a child process of the
 * caller, on the host, with no isolation.  Development only.  Enforces the
 * timeout, cancellation (the whole process tree), output caps, and, when
 * the limits ask for them, RLIMIT_AS (memory) and RLIMIT_NPROC (pids).
 * RLIMIT_NPROC counts every process of the caller's uid, not only the
 * snippet's, so it is at least as strict as asked (a busy uid may leave the
 * snippet none), and root ignores it: limits_enforced.pids is set only when
 * not running as root.  RLIMIT_FSIZE caps each file at DiskBytes, which is
 * no disk quota, so limits_enforced.disk stays false; cpu is not enforced. */
/* A versioned struct, like tr_containerd_config (see there why): `size` =
 * sizeof(tr_unsafe_host_config), NULL fields select the defaults. */
typedef struct tr_unsafe_host_config {
        size_t size;             /* sizeof(tr_unsafe_host_config) */
        const char *python_path; /* default: "python3" from PATH */
        const char *sh_path;     /* default: "/bin/sh" */
        /* A directory put on the child's PYTHONPATH so that `import
         * toolruntime` works; NULL: the installed SDK location. */
        const char *sdk_path;
} tr_unsafe_host_config;

TR_PUBLIC int tr_backend_unsafe_host_new(const tr_unsafe_host_config *cfg, tr_backend **ret_backend,
                                         tr_error **ret_err);

/* ------------------------------------------------------------------------
 * The runtime
 * ---------------------------------------------------------------------- */

typedef struct tr_runtime tr_runtime;

/* An empty runtime: no backends, no routes, default profile standard, and
 * unsafe_host denied for standard and hardened. */
TR_PUBLIC int tr_runtime_new(tr_runtime **ret_runtime, tr_error **ret_err);
TR_PUBLIC void tr_runtime_free(tr_runtime *rt);

/* Register a backend; the runtime takes ownership (also on failure).  One
 * backend per kind: a second one of the same kind replaces the first. */
TR_PUBLIC int tr_runtime_add_backend(tr_runtime *rt, tr_backend *backend, tr_error **ret_err);
/* Route a profile to a backend kind.  The default table is dev ->
 * unsafe_host, standard and hardened -> containerd. */
TR_PUBLIC void tr_runtime_route(tr_runtime *rt, tr_profile profile, tr_backend_kind kind);
/* TR_PROFILE_DEFAULT in tr_runtime_route / tr_runtime_route_of means the
 * runtime's default profile at the time of the call. */
TR_PUBLIC tr_backend_kind tr_runtime_route_of(const tr_runtime *rt, tr_profile profile);
TR_PUBLIC void tr_runtime_set_default_profile(tr_runtime *rt, tr_profile profile);
TR_PUBLIC void tr_runtime_deny_unsafe_host(tr_runtime *rt, tr_profile profile, bool deny);
TR_PUBLIC void tr_runtime_set_logger(tr_runtime *rt, tr_log_fn fn, void *userdata);

/*
 * Validate `req`, pick the backend for its profile, apply the policy and
 * execute.  Thread-safe: several threads may execute on one runtime at once.
 * `cancel` may be NULL.
 *
 * Unlike the usual ret_ rule, *ret_result is written whenever a backend was
 * reached, on failure too, so that partial output and the limits actually
 * enforced survive a timeout or an error; it is NULL when validation or
 * routing failed.  Returns 0 when the snippet ran to completion (whatever its
 * exit status), a negative value with *ret_err set otherwise.
 */
TR_PUBLIC int tr_runtime_execute(tr_runtime *rt, const tr_request *req, tr_cancel *cancel, tr_result **ret_result,
                                 tr_error **ret_err);

/*
 * The lifecycle behind tr_runtime_execute, for callers that create sandboxes
 * before the code is known (a warm pool):
 *
 *   tr_runtime_prepare  creates a sandbox for requests shaped like `shape`
 *                       (which needs no code): routed and checked like an
 *                       execution, then brought up as far as the backend can
 *                       go without the code (a container with its
 *                       interpreter started and waiting, on containerd).
 *   tr_sandbox_run      runs `req` in it — once: a sandbox runs one snippet,
 *                       ever.  `req` must have the shape's profile,
 *                       language, limits and arguments; its code, timeout
 *                       (counted from this call), output cap and callback,
 *                       and its gateway — the tools — are bound now, at run
 *                       time.  *ret_result is written as by
 *                       tr_runtime_execute.
 *   tr_sandbox_free     destroys the sandbox, whatever its state.
 *
 * A prepared sandbox must be run within TR_SANDBOX_MAX_IDLE_MS: its own
 * backstop kills it after that (and tr_sandbox_run then fails with
 * TR_E_TIMEOUT).  Sandboxes are independent: different threads may prepare,
 * run and free different sandboxes at once; one sandbox is used by one
 * thread at a time.  The runtime must outlive its sandboxes.
 */
#define TR_SANDBOX_MAX_IDLE_MS (10 * 60 * 1000)
typedef struct tr_sandbox tr_sandbox;
TR_PUBLIC int tr_runtime_prepare(tr_runtime *rt, const tr_request *shape, tr_cancel *cancel, tr_sandbox **ret_sandbox,
                                 tr_error **ret_err);
TR_PUBLIC int tr_sandbox_run(tr_sandbox *sb, const tr_request *req, tr_cancel *cancel, tr_result **ret_result,
                             tr_error **ret_err);
TR_PUBLIC void tr_sandbox_free(tr_sandbox *sb);

/*
 * Warm pools on that lifecycle: `size` sandboxes of one shape prepared
 * ahead, refilled in the background (two threads, backing off while the
 * backend fails), idle ones replaced after a maximum age (5 minutes by
 * default).  Each sandbox runs one execution and is then destroyed in the
 * background; it is never reused.  The sandbox that replaces it is
 * prepared once that execution has ended, so that preparing (a VM's boot)
 * never competes with the execution for the CPU.
 *
 *   tr_pool_new      refuses a shape routed to a backend without the
 *                    lifecycle (a custom backend with execute only;
 *                    containerd and kata have it);
 *                    copies `shape` (profile, language, limits, arguments,
 *                    egress allowlist, timeout, output cap, gateway; no
 *                    code) and starts
 *                    filling; the shape's gateway must outlive the pool.
 *   tr_pool_execute  runs `req` in a ready sandbox when one is there and the
 *                    request fits the shape (same profile, language,
 *                    effective limits, arguments and egress allowlist; its code, timeout,
 *                    output callback and tools are its own), else cold
 *                    through tr_runtime_execute.  The result's backend
 *                    detail "pool" says which: "warm" or "cold".
 *   tr_pool_set_size, tr_pool_set_max_age_ms  change them at run time.
 *   tr_pool_get_stats  what a service reports (readiness, metrics).
 *   tr_pool_free     stops refilling and destroys every sandbox it holds.
 *
 * Thread-safe; the runtime must outlive the pool.
 */
typedef struct tr_pool tr_pool;
typedef struct tr_pool_stats {
        size_t size, ready, preparing;
        bool filled_once;    /* ready reached size at least once (readiness) */
        uint64_t warm, cold; /* executions */
        uint64_t prepared, prepare_failures, expired;
} tr_pool_stats;
TR_PUBLIC int tr_pool_new(tr_runtime *rt, const tr_request *shape, size_t size, tr_pool **ret_pool, tr_error **ret_err);
TR_PUBLIC int tr_pool_execute(tr_pool *pool, const tr_request *req, tr_cancel *cancel, tr_result **ret_result,
                              tr_error **ret_err);
TR_PUBLIC void tr_pool_set_size(tr_pool *pool, size_t size);
TR_PUBLIC void tr_pool_set_max_age_ms(tr_pool *pool, int64_t ms);
TR_PUBLIC void tr_pool_get_stats(tr_pool *pool, tr_pool_stats *ret_stats);
TR_PUBLIC void tr_pool_free(tr_pool *pool);

/* ---- sessions ----
 * A session: one sandbox kept alive across executions, with ONE interpreter
 * whose state persists (Python globals and imports; files under its working
 * directory /tmp, the sandbox's writable, DiskBytes-capped space).
 * Created from a shape request (profile, backend route, limits, language
 * python, gateway); the session's memory/pids/disk limits hold for its
 * whole life, each execution has its own timeout, output caps, stdin,
 * callback and gateway (tools).  Sessions run Python only (sh:
 * TR_E_INVALID_REQUEST), on backends with the session seam (containerd,
 * kata's QEMU runner, unsafe_host; TR_E_INVALID_REQUEST on the others).
 *
 * An execution that times out or is cancelled interrupts the snippet
 * (KeyboardInterrupt via SIGINT) and the session lives on when the
 * interpreter answers within a grace period (TR_SESSION_INTERRUPT_GRACE_MS);
 * otherwise the sandbox is destroyed and the result's backend detail
 * "session" is "ended" (else "alive").  Later calls on an ended session fail
 * with TR_E_SESSION_GONE whose message says why (ttl, idle, interpreter
 * died, killed by OOM...).  A session lives in the process that created it:
 * when that process ends, its sandbox dies at the TTL backstop and
 * `toolruntime gc` collects what is left.
 * One operation at a time per session: a second caller waits (bounded by its
 * own cancel token).  Thread-safe otherwise; the runtime must outlive it.
 */
#define TR_SESSION_DEFAULT_TTL_MS     (60 * 60 * 1000)      /* 1 h */
#define TR_SESSION_MAX_TTL_MS         (24 * 60 * 60 * 1000) /* 24 h */
#define TR_SESSION_DEFAULT_IDLE_MS    (10 * 60 * 1000)      /* 10 min */
#define TR_SESSION_INTERRUPT_GRACE_MS 2000
typedef struct tr_session tr_session;
typedef struct tr_session_config {
        size_t size;             /* sizeof(tr_session_config) */
        int64_t ttl_ms;          /* 0: default; > MAX: TR_E_INVALID_REQUEST */
        int64_t idle_timeout_ms; /* 0: default; capped by ttl */
} tr_session_config;
typedef struct tr_session_info {
        int64_t created_ns, last_used_ns;          /* CLOCK_REALTIME ns */
        int64_t ttl_deadline_ns, idle_deadline_ns; /* CLOCK_REALTIME ns */
        uint64_t executions;
        bool alive;
        tr_profile profile;
        tr_backend_kind backend;
} tr_session_info;
/* `cfg` may be NULL (the defaults); `cancel` (may be NULL) bounds the
 * creation only.  The shape needs no code; its timeout bounds the creation. */
TR_PUBLIC int tr_session_new(tr_runtime *rt, const tr_request *shape, const tr_session_config *cfg, tr_cancel *cancel,
                             tr_session **ret_session, tr_error **ret_err);
/* Same *ret_result contract as tr_runtime_execute.  `req`'s profile,
 * language and limits must be unset or equal to the shape's; it may not
 * carry files (tr_request_add_file) or arguments.  Its timeout counts from
 * the call and is cut short by the session's TTL (the session then ends).
 * The result's backend details are the sandbox's plus "session": "alive"
 * or "ended". */
TR_PUBLIC int tr_session_execute(tr_session *s, const tr_request *req, tr_cancel *cancel, tr_result **ret_result,
                                 tr_error **ret_err);
/* 0 when alive; else tears the sandbox down (idempotent) and fails with
 * TR_E_SESSION_GONE saying why.  What a service's sweeper calls; while an
 * operation runs it answers at once from what it knows (alive unless the
 * TTL passed, which the running operation then notices). */
TR_PUBLIC int tr_session_check(tr_session *s, tr_error **ret_err);
TR_PUBLIC void tr_session_get_info(tr_session *s, tr_session_info *ret_info);
TR_PUBLIC void tr_session_free(tr_session *s); /* destroys the sandbox; NULL-safe */

/* Files, streamed.  `path` is relative to the session's working directory:
 * no "..", no absolute path, no empty component, no NUL; symlinks are never
 * followed (each component opened O_NOFOLLOW inside the sandbox), so a link
 * the snippet planted cannot redirect a read or a write.  Refused paths fail
 * TR_E_INVALID_REQUEST (op "file").  Size is capped by the session's disk
 * limit (TR_E_RESOURCE_LIMIT).  While a transfer is open the session is
 * busy: other operations wait, and tr_session_free must not be called.
 * Transfers share the interpreter's stdout: a thread an earlier snippet
 * left running that prints during a download corrupts it (daemon threads
 * keep running between executions; non-daemon ones are joined). */
typedef struct tr_session_upload tr_session_upload;
TR_PUBLIC int tr_session_upload_begin(tr_session *s, const char *path, tr_session_upload **ret_up, tr_error **ret_err);
TR_PUBLIC int tr_session_upload_write(tr_session_upload *up, const void *data, size_t len, tr_error **ret_err);
/* Commits the file (written to a temporary name, renamed at the end) and
 * frees `up`, also on failure. */
TR_PUBLIC int tr_session_upload_end(tr_session_upload *up, tr_error **ret_err);
TR_PUBLIC void tr_session_upload_abort(tr_session_upload *up); /* frees; nothing left; NULL-safe */
typedef struct tr_session_download tr_session_download;
TR_PUBLIC int tr_session_download_begin(tr_session *s, const char *path, uint64_t *ret_size,
                                        tr_session_download **ret_down, tr_error **ret_err);
/* *ret_len == 0: the end. */
TR_PUBLIC int tr_session_download_read(tr_session_download *down, void *buf, size_t max, size_t *ret_len,
                                       tr_error **ret_err);
TR_PUBLIC void tr_session_download_free(tr_session_download *down); /* NULL-safe */

/* Validation alone (what tr_runtime_execute does first). */
TR_PUBLIC int tr_request_validate(const tr_request *req, tr_error **ret_err);

#ifdef __cplusplus
}
#endif

/* The backends' and the gateway's own public parts. */
#include "toolruntime/containerd.h"
#include "toolruntime/kata.h"
#include "toolruntime/gateway.h"

#endif
