/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `toolruntime serve`: the HTTP/1.1 JSON service (libmicrohttpd).  A front
 * end like `exec`: it turns a wire request into a tr_request and a result
 * back, through the public API only.  This module owns the listener,
 * authentication, size caps, admission (concurrency + a bounded queue),
 * draining, the routes (server.c; admission and running an execution:
 * admission.c), the request/response mapping for /v1/execute (api.c; input
 * files: input_files.c) and Piston's /api/v2 (piston.c),
 * sessions over HTTP (sessions.c, their files: sessions_files.c), the
 * listening socket (listen.c), the disconnect watch (watch.c) and the
 * Prometheus metrics (metrics.c).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "toolruntime.h"

typedef struct tr__serve_config {
        const char *listen; /* "HOST:PORT" or "unix:PATH" */
        const char *token;  /* NULL: no authentication (loopback / unix only); else tokens[0] */
        /* Every accepted token (--token-file: one a line).  A session
         * belongs to the token that created it: its index here. */
        const char *const *tokens;
        size_t n_tokens;
        unsigned max_sessions;           /* sessions alive at once, all tokens */
        unsigned max_sessions_per_token; /* ... and per token */
        unsigned max_concurrency;
        unsigned queue;          /* requests that may wait for a slot */
        unsigned idle_timeout_s; /* a connection silent this long is closed */
        size_t max_body;         /* request body cap, bytes */
        size_t max_code;         /* code cap, bytes */
        bool allow_dev;          /* may a request ask for the dev profile (no isolation)? */
        /* Server-side maxima a request may not exceed (0: no maximum). */
        int64_t max_timeout_ms;
        tr_limits max_limits;
        size_t max_output;
        /* --egress-allow-max: the targets a request's egress allowlist may
         * name (NULL-terminated; NULL: none, and a request with one is
         * refused).  The proxy connects from the host's network position,
         * so which targets that opens is the operator's call, not a
         * client's. */
        char **egress_allow_max;
} tr__serve_config;

/* What an execution runs on: one runtime per backend, so a request can
 * name its backend without changing routes another request uses. */
typedef struct tr__serve_backends {
        tr_runtime *by_kind[TR__BACKEND_MAX]; /* NULL: not offered */
        tr_backend_kind default_kind;         /* for standard/hardened when the request names none */
        tr_gateway *gateway;                  /* shared by every execution (thread-safe) */
        struct tr__serve_mcp *mcp;            /* the /mcp endpoint; NULL: not mounted */
        /* Warm pools (--pool PROFILE[/BACKEND]=N), looked up by profile and
         * backend; a request with no pool of its class runs cold. */
        struct {
                tr_profile profile;
                tr_backend_kind kind;
                tr_pool *pool;
                char name[48]; /* "standard/containerd" */
        } pools[8];
        size_t n_pools;
} tr__serve_backends;

/* The limits an execution of `profile` runs with on this server: the
 * request's, where it leaves one unset the profile's default lowered to the
 * server's maximum; a request above a maximum (or unlimited under one) is
 * invalid_limits.  Also the shape of the warm pools (api.c). */
int tr__serve_effective_limits(const tr__serve_config *cfg, tr_profile profile, tr_limits *limits, tr_error **ret_err);

/* The request body's "egress": {"allow": ["HOST:PORT", ...]} (api.c), for
 * /v1/execute and POST /v1/sessions alike: checks its shape (an object with
 * only "allow", an array of at most TR_MAX_EGRESS_ALLOW strings) and sets
 * *ret_allow to the array (borrowed from `o`; NULL when absent or empty).
 * False with `msg` set on a malformed field.  Then
 * tr__serve_request_set_egress puts it on the request (the library
 * validates each entry: TR_E_INVALID_REQUEST, a 400) and checks it against
 * the operator's ceiling, cfg->egress_allow_max (TR_E_BACKEND_DENIED, a
 * 403).  Every path that gives a request or a session an allowlist goes
 * through it: that is what makes the ceiling hold. */
typedef struct json_t json_t;
bool tr__serve_parse_egress(json_t *o, json_t **ret_allow, char *msg, size_t msgsz);
int tr__serve_request_set_egress(const tr__serve_config *cfg, tr_request *req, json_t *allow, tr_error **ret_err);

/* ---- metrics (metrics.c) ------------------------------------------------ */
typedef struct tr__serve_metrics tr__serve_metrics;
int tr__serve_metrics_new(tr__serve_metrics **ret);
void tr__serve_metrics_free(tr__serve_metrics *m);
void tr__serve_metrics_execution(tr__serve_metrics *m, const char *backend, const char *profile, const char *outcome,
                                 double seconds, size_t tool_calls);
void tr__serve_metrics_http(tr__serve_metrics *m, unsigned status);
/* The Prometheus text exposition; malloc'd. */
char *tr__serve_metrics_text(tr__serve_metrics *m, unsigned in_flight, unsigned queued, unsigned sessions,
                             const tr__serve_backends *bk);

/* ---- the API mapping (api.c) -------------------------------------------- */
typedef struct tr__serve_reply {
        unsigned status;
        char *body; /* malloc'd JSON or text */
        const char *content_type;
        unsigned retry_after; /* seconds; 0: none */
        char session_id[33];  /* Mcp-Session-Id to send; "" none */
        /* A streamed body instead of `body` (server-sent events): read
         * returns bytes put in buf, or TR__STREAM_END; it may block (each
         * connection has its own thread).  free runs once, when the
         * response is done or the client is gone. */
        ssize_t (*stream_read)(void *cls, uint64_t pos, char *buf, size_t max);
        void (*stream_free)(void *cls);
        void *stream_cls;
        bool stream_sized; /* stream_size is the body's length (else chunked) */
        uint64_t stream_size;
} tr__serve_reply;
#define TR__STREAM_END (-1)

typedef struct tr__serve_ctx {
        const tr__serve_config *cfg;
        const tr__serve_backends *backends;
        tr__serve_metrics *metrics;
        tr_cancel *cancel;                   /* cancelled when the client goes away */
        tr_output_fn output;                 /* the execution's output as it comes; NULL: none */
        tr_tool_call_fn tool_call;           /* each tool call as it ends; NULL: none */
        void *output_userdata;               /* for both */
        struct tr__serve_sessions *sessions; /* the session routes' table */
        const char *url;                     /* the request's path (session routes) */
        unsigned owner;                      /* the caller's token (index in cfg->tokens) */
} tr__serve_ctx;

/* What one execution (or a session's shape) asks, whichever API asked:
 * borrowed from the parsed JSON body. */
typedef struct tr__serve_job {
        const char *code;
        size_t code_len;
        const char *language; /* NULL: python */
        const char *profile;  /* NULL: standard */
        const char *backend;  /* NULL: the server's default */
        int64_t timeout_ms;   /* 0: the default */
        tr_limits limits;
        int64_t max_output;
        json_t *args;           /* array of strings, borrowed; may be NULL */
        const char *stdin_data; /* borrowed; NULL: none */
        size_t stdin_len;
        json_t *files;        /* /v1's "files" (array of {path, content, encoding}); may be NULL */
        json_t *egress_allow; /* "egress": {"allow": [...]}'s array, borrowed; may be NULL */
} tr__serve_job;

/* /v1/execute's body into `jb` (borrowing from *ret_obj, which the caller
 * frees).  `extra`: further top-level keys the caller reads itself
 * (NULL-terminated; may be NULL); `need_code`: "code" is required.  False
 * with a message for a 400. */
bool tr__serve_v1_parse(const char *body, size_t len, const char *const *extra, bool need_code, tr__serve_job *jb,
                        json_t **ret_obj, char *msg, size_t msgsz);
/* The request a job asks for, checked against the server's maxima, and
 * the runtime of its backend.  On a refusal fills *err_status (400/403)
 * and *ret_err. */
int tr__serve_build_request(const tr__serve_ctx *ctx, const tr__serve_job *jb, tr_request **ret_req,
                            tr_runtime **ret_rt, tr_error **ret_err, unsigned *err_status);
/* What every execution's request binds, whichever route (api.c, and a
 * session's executions): the caps on code, timeout and output checked, the
 * code, language, stdin, timeout, output cap, gateway and callbacks set. */
int tr__serve_request_new(const tr__serve_ctx *ctx, const tr__serve_job *jb, tr_request **ret_req, tr_error **ret_err);
/* One element of /v1's "files" (the i-th, for messages) onto `req`
 * (input_files.c). */
int tr__serve_add_input_file(tr_request *req, json_t *f, size_t i, tr_error **ret_err);
/* The HTTP status of an execution's error that is the request's fault (0:
 * it is the execution's, reported in a 200 result). */
unsigned tr__serve_error_status(const tr_error *e);

void tr__serve_v1_execute(const tr__serve_ctx *ctx, const char *body, size_t len, tr__serve_reply *ret);
void tr__serve_piston_execute(const tr__serve_ctx *ctx, const char *body, size_t len, tr__serve_reply *ret);
void tr__serve_piston_runtimes(const tr__serve_ctx *ctx, tr__serve_reply *ret);
/* {"error": {"code", "message"}} with an HTTP status. */
void tr__serve_reply_error(tr__serve_reply *ret, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Shared by api.c's /v1 and piston.c's /api/v2 (api.c).  Check a job
 * against the server's maxima and run it; on a request error fills
 * *err_status and *ret_err and returns -1 without running anything. */
int tr__serve_run(const tr__serve_ctx *ctx, const tr__serve_job *jb, tr_result **ret_res, tr_error **ret_err,
                  unsigned *err_status);
/* A JSON body that must be an object; NULL with `msg` set otherwise. */
json_t *tr__serve_parse_body(const char *body, size_t len, char *msg, size_t msgsz);
/* Field readers: true when `key` is absent, null or of the right type (then
 * *ret is set); false with `msg` set otherwise. */
bool tr__serve_get_int(json_t *o, const char *key, int64_t *ret, char *msg, size_t msgsz);
bool tr__serve_get_str(json_t *o, const char *key, const char **ret, char *msg, size_t msgsz);
/* False with `msg` set when `o` has a key not in `allowed` (NULL-terminated;
 * `where` prefixes the name in the message). */
bool tr__serve_only_keys(json_t *o, const char *const *allowed, const char *where, char *msg, size_t msgsz);
/* False with `msg` set when `v` is present but not an array of strings. */
bool tr__serve_string_array(json_t *v, const char *key, char *msg, size_t msgsz);

/* ---- MCP's Streamable HTTP transport at /mcp (mcp_http.c) --------------- */
typedef struct tr__serve_mcp tr__serve_mcp;
/* The MCP server `toolruntime mcp` runs, configured from the service's:
 * its default backend and gateway, the standard profile, the service's
 * maxima as the MCP server's maxima. */
/* Executions started through /mcp take the service's slots too (server.c
 * sets this before serving): admission, the queue, and drain. */
void tr__serve_mcp_set_admission(struct tr__serve_mcp *m, bool (*admit)(void *, const char **), void (*release)(void *),
                                 void *userdata);
int tr__serve_mcp_new(const tr__serve_config *cfg, const tr__serve_backends *bk, tr__serve_mcp **ret,
                      tr_error **ret_err);
/* Ends every session, cancelling what they run. */
void tr__serve_mcp_free(tr__serve_mcp *m);
/* What of the HTTP request the transport looks at (header values may be
 * NULL). */
typedef struct tr__serve_mcp_http {
        const char *method;
        const char *session;          /* Mcp-Session-Id */
        const char *accept;           /* Accept */
        const char *protocol_version; /* MCP-Protocol-Version */
} tr__serve_mcp_http;
void tr__serve_mcp_handle(tr__serve_mcp *m, const tr__serve_mcp_http *h, const char *body, size_t len,
                          tr__serve_reply *rep);

/* ---- /v1/pools (pools.c) ------------------------------------------------ */
/* The largest pool --pool or PUT /v1/pools accepts. */
#define TR__SERVE_POOL_MAX 64
/* GET /v1/pools, GET and PUT /v1/pools/NAME. */
void tr__serve_pools_route(const tr__serve_backends *bk, const char *method, const char *url, const char *body,
                           size_t len, tr__serve_reply *rep);

/* ---- the ndjson event stream of /v1/execute (stream.c) ------------------- */
typedef struct tr__ndjson tr__ndjson;
/* Takes `cancel` (cancelled when the reader goes before the end). */
tr__ndjson *tr__ndjson_new(tr_cancel *cancel);
/* A tr_output_fn: stdout/stderr events. */
void tr__ndjson_output(void *userdata, tr_stream stream, const char *data, size_t len);
/* A tr_tool_call_fn: {"type":"tool_call",…} as the call ends. */
void tr__ndjson_tool_call(void *userdata, const tr_tool_call *call, const char *json);
/* The execution side: the final events from the reply a plain request
 * would get; lets go of the execution's reference. */
void tr__ndjson_finish(tr__ndjson *st, const tr__serve_reply *rep);
/* The response side (tr__serve_reply's stream_read / stream_free). */
ssize_t tr__ndjson_read(void *cls, uint64_t pos, char *buf, size_t max);
void tr__ndjson_reader_done(void *cls);

/* ---- sessions over HTTP (sessions.c, sessions_files.c) -------------------- */
typedef struct tr__serve_sessions tr__serve_sessions;
/* The table of live sessions and its sweeper thread (expiry). */
int tr__serve_sessions_new(const tr__serve_config *cfg, tr__serve_sessions **ret, tr_error **ret_err);
/* Ends every session (destroying its sandbox). */
void tr__serve_sessions_free(tr__serve_sessions *t);
unsigned tr__serve_sessions_count(tr__serve_sessions *t);
/* POST /v1/sessions, POST /v1/sessions/{id}/execute (exec_route's shape;
 * ctx->url is the path). */
void tr__serve_session_create(const tr__serve_ctx *ctx, const char *body, size_t len, tr__serve_reply *ret);
void tr__serve_session_execute(const tr__serve_ctx *ctx, const char *body, size_t len, tr__serve_reply *ret);
/* GET /v1/sessions, GET and DELETE /v1/sessions/{id}. */
void tr__serve_session_list(const tr__serve_ctx *ctx, tr__serve_reply *ret);
void tr__serve_session_show(const tr__serve_ctx *ctx, tr__serve_reply *ret);
void tr__serve_session_delete(const tr__serve_ctx *ctx, tr__serve_reply *ret);

/* A session by the id in `url` ("/v1/sessions/ID[/...]"), referenced, when
 * `owner` owns it; else NULL and `ret` holds the 404 (or 400) to send. */
typedef struct tr__serve_session tr__serve_session;
tr__serve_session *tr__serve_session_get(tr__serve_sessions *t, const char *url, unsigned owner, tr__serve_reply *ret);
void tr__serve_session_put(tr__serve_session *e);
tr_session *tr__serve_session_lib(tr__serve_session *e);
/* The session's disk cap in bytes (0: none): larger uploads get 413 early. */
int64_t tr__serve_session_disk(tr__serve_session *e);
/* Fill `ret` from a library error about a session (404 for a gone one). */
void tr__serve_session_error(tr__serve_session *e, const tr_error *err, tr__serve_reply *ret);

/* PUT /v1/sessions/{id}/files/{path}: begun when the headers are in
 * (`content_length` < 0: none given), fed each chunk, ended when the body
 * is; an error stops the writing, the rest of the body is read and
 * dropped, and `end` answers it.  abort: the client went away. */
typedef struct tr__serve_upload tr__serve_upload;
tr__serve_upload *tr__serve_upload_begin(tr__serve_sessions *t, const char *url, unsigned owner, int64_t content_length,
                                         tr__serve_reply *ret);
void tr__serve_upload_write(tr__serve_upload *u, const char *data, size_t len);
void tr__serve_upload_end(tr__serve_upload *u, tr__serve_reply *ret);
void tr__serve_upload_abort(tr__serve_upload *u);
/* GET /v1/sessions/{id}/files/{path}: a sized streamed response. */
void tr__serve_download(tr__serve_sessions *t, const char *url, unsigned owner, tr__serve_reply *ret);

/* ---- the listening socket (listen.c) ------------------------------------ */
typedef struct tr__serve_listener {
        int fd;
        char address[160]; /* "127.0.0.1:8787", "unix:/run/tr.sock" */
        char *unix_path;   /* malloc'd; the socket to remove at the end; NULL: TCP */
} tr__serve_listener;
/* Listen on "HOST:PORT" or "unix:PATH": the fd, or -1 with *ret_err. */
int tr__serve_listen(const char *spec, tr__serve_listener *ret, tr_error **ret_err);
/* libmicrohttpd's unescape callback: %XX decoded except %00 (a NUL would
 * cut a path short; it stays the three characters it was). */
struct MHD_Connection;
size_t tr__serve_unescape(void *cls, struct MHD_Connection *c, char *uri);

/* ---- the disconnect watch (watch.c) -------------------------------------- */
typedef struct tr__serve_watch {
        int conn_fd;
        int stop_fd; /* eventfd: the execution ended */
        tr_cancel *cancel;
        pthread_t thread;
        bool started;
} tr__serve_watch;
/* Watch `conn_fd` (-1: nothing to watch) until stop; a hang-up cancels
 * `cancel`. */
void tr__serve_watch_start(tr__serve_watch *w, int conn_fd, tr_cancel *cancel);
void tr__serve_watch_stop(tr__serve_watch *w);

/* ---- the server (server.c) ---------------------------------------------- */
typedef struct tr__server tr__server;
int tr__server_start(const tr__serve_config *cfg, const tr__serve_backends *backends, tr__server **ret,
                     tr_error **ret_err);
/* Stop accepting, let in-flight and queued executions finish (at most
 * drain_ms), then stop.  Returns the number still running when it gave up. */
unsigned tr__server_drain(tr__server *s, int64_t drain_ms);
void tr__server_free(tr__server *s);
/* The address it listens on, for "listening on" messages ("127.0.0.1:8787"). */
const char *tr__server_address(const tr__server *s);
