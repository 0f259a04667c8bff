/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP server: libmicrohttpd (Debian's libmicrohttpd 0.9.75, a
 * maintained HTTP/1.1 server library with per-connection timeouts, header
 * memory caps and keep-alive) in thread-per-connection mode.  An execution
 * blocks for as long as the snippet runs, so a thread per connection is
 * the simple correct model; the number of connections is capped
 * (concurrency + queue + a margin), and admission decides how many
 * executions run at once.
 *
 * This file owns: bearer-token authentication (which token: a session's
 * owner), the body cap, admission (a slot, a bounded wait queue, 429 +
 * Retry-After beyond it), cancelling an execution whose client went away,
 * draining on shutdown, and routing to api.c, pools.c and sessions.c (a
 * session file's upload is fed to it chunk by chunk, never buffered).  The
 * listening socket is listen.c's.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/serve.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/timeutil.h"

struct tr__server {
        const tr__serve_config *cfg;
        const tr__serve_backends *backends;
        tr__serve_metrics *metrics;
        tr__serve_sessions *sessions;
        struct MHD_Daemon *d;
        int listen_fd;
        char address[160];
        char *unix_path; /* removed on free */

        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned running, queued;
        bool draining;
};

/* One HTTP request's state (MHD's con_cls), from its first call to the
 * completion callback. */
typedef struct http_req {
        char *body;
        size_t len, alloc;
        bool too_big;
        bool denied;              /* a response was queued before the body was read */
        unsigned owner;           /* the token's index in cfg->tokens */
        tr__serve_upload *upload; /* PUT of a session file: the body goes there */
} http_req;

static void req_free(http_req *r) {
        if (r) {
                tr__serve_upload_abort(r->upload);
                free(r->body);
                free(r);
        }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
        (void) cls;
        (void) c;
        (void) toe;
        req_free(*con_cls);
        *con_cls = NULL;
}

static enum MHD_Result send_reply(tr__server *s, struct MHD_Connection *c, tr__serve_reply *rep) {
        struct MHD_Response *resp = NULL;
        if (rep->stream_read) {
                /* TR__STREAM_END is MHD_CONTENT_READER_END_OF_STREAM. */
                _Static_assert(TR__STREAM_END == MHD_CONTENT_READER_END_OF_STREAM, "stream end marker");
                resp = MHD_create_response_from_callback(rep->stream_sized ? rep->stream_size : MHD_SIZE_UNKNOWN,
                                                         64 * 1024, rep->stream_read, rep->stream_cls,
                                                         rep->stream_free);
                if (!resp) {
                        rep->stream_free(rep->stream_cls);
                        return MHD_NO;
                }
        } else {
                if (!rep->body) {
                        rep->status = 500;
                        rep->body = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
                        rep->content_type = "application/json";
                        if (!rep->body)
                                return MHD_NO;
                }
                resp = MHD_create_response_from_buffer(strlen(rep->body), rep->body, MHD_RESPMEM_MUST_FREE);
                if (!resp) {
                        free(rep->body);
                        return MHD_NO;
                }
                rep->body = NULL;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
        if (rep->retry_after) {
                char ra[16];
                snprintf(ra, sizeof(ra), "%u", rep->retry_after);
                MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
        }
        if (rep->status == 401)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        if (rep->session_id[0])
                MHD_add_response_header(resp, "Mcp-Session-Id", rep->session_id);
        enum MHD_Result r = MHD_queue_response(c, rep->status, resp);
        MHD_destroy_response(resp);
        tr__serve_metrics_http(s->metrics, rep->status);
        return r;
}

/* Constant-time comparison: the time taken does not depend on where the
 * first differing byte is (the length of the configured token still shows,
 * which is not secret). */
static bool token_eq(const char *want, const char *got) {
        size_t wl = strlen(want), gl = strlen(got);
        unsigned char diff = wl != gl;
        for (size_t i = 0; i < wl; i++)
                diff |= (unsigned char) want[i] ^ (unsigned char) (i < gl ? got[i] : 0);
        return diff == 0;
}

/* The index of the token the Authorization header carries, or -1.  Every
 * token is compared, whichever matches. */
static int token_index(const tr__serve_config *cfg, const char *header) {
        static const char prefix[] = "Bearer ";
        if (!header || strncmp(header, prefix, sizeof(prefix) - 1) != 0)
                return -1;
        int found = -1;
        for (size_t i = 0; i < cfg->n_tokens; i++)
                if (token_eq(cfg->tokens[i], header + sizeof(prefix) - 1) && found < 0)
                        found = (int) i;
        return found;
}

/* ---- admission ---------------------------------------------------------- */

typedef enum { ADMIT_OK, ADMIT_FULL, ADMIT_DRAINING } admit_result;

static admit_result admit(tr__server *s) {
        pthread_mutex_lock(&s->lock);
        admit_result r = ADMIT_OK;
        if (s->draining)
                r = ADMIT_DRAINING;
        else if (s->running < s->cfg->max_concurrency)
                s->running++;
        else if (s->queued >= s->cfg->queue)
                r = ADMIT_FULL;
        else {
                s->queued++;
                while (s->running >= s->cfg->max_concurrency)
                        pthread_cond_wait(&s->cond, &s->lock);
                s->queued--;
                s->running++;
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

static void release(tr__server *s) {
        pthread_mutex_lock(&s->lock);
        s->running--;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

/* The same slots for /mcp's tools/call executions (mcp_http.c). */
static bool mcp_admit(void *userdata, const char **ret_why) {
        tr__server *s = userdata;
        switch (admit(s)) {
        case ADMIT_OK: return true;
        case ADMIT_DRAINING: *ret_why = "the server is shutting down"; return false;
        case ADMIT_FULL: *ret_why = "too many executions are running and waiting; retry later"; return false;
        }
        return false;
}

static void mcp_release(void *userdata) {
        release(userdata);
}

/* A client that goes away cancels its execution (watch.c). */
static void watch_start(tr__serve_watch *w, struct MHD_Connection *c, tr_cancel *cancel) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        tr__serve_watch_start(w, ci ? ci->connect_fd : -1, cancel);
}

/* ---- routes -------------------------------------------------------------- */

static void health(tr__server *s, tr__serve_reply *rep) {
        pthread_mutex_lock(&s->lock);
        unsigned running = s->running, queued = s->queued;
        bool draining = s->draining;
        pthread_mutex_unlock(&s->lock);
        /* Ready: not draining, and every pool filled once since start (a
         * pool emptied by load later does not take the node out). */
        bool ready = !draining;
        json_t *pools = json_object();
        for (size_t i = 0; i < s->backends->n_pools; i++) {
                tr_pool_stats st;
                tr_pool_get_stats(s->backends->pools[i].pool, &st);
                ready = ready && st.filled_once;
                json_object_set_new(pools, s->backends->pools[i].name,
                                    json_pack("{s:I,s:I,s:I,s:b,s:I,s:I}", "size", (json_int_t) st.size, "ready",
                                              (json_int_t) st.ready, "preparing", (json_int_t) st.preparing, "filled",
                                              st.filled_once, "warm", (json_int_t) st.warm, "cold",
                                              (json_int_t) st.cold));
        }
        json_t *o = json_pack("{s:s,s:b,s:i,s:i,s:i,s:o,s:i}", "status", draining ? "draining" : "ok", "ready", ready,
                              "in_flight", running, "queued", queued, "max_concurrency", s->cfg->max_concurrency,
                              "pools", pools, "sessions", (int) tr__serve_sessions_count(s->sessions));
        rep->status = draining ? 503 : 200;
        rep->content_type = "application/json";
        rep->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
}

typedef void (*exec_route)(const tr__serve_ctx *, const char *, size_t, tr__serve_reply *);

/* Take an execution slot (waiting in the queue), or fill `rep` with why
 * not: 503 while draining, 429 when the queue is full. */
static bool admit_or_refuse(tr__server *s, tr__serve_reply *rep) {
        switch (admit(s)) {
        case ADMIT_DRAINING:
                tr__serve_reply_error(rep, 503, "unavailable", "the server is shutting down");
                rep->retry_after = 1;
                return false;
        case ADMIT_FULL:
                tr__serve_reply_error(rep, 429, "too_many_requests",
                                      "%u executions are running and %u waiting; retry later", s->cfg->max_concurrency,
                                      s->cfg->queue);
                rep->retry_after = 1;
                return false;
        case ADMIT_OK: break;
        }
        return true;
}

static void run_execution(tr__server *s, struct MHD_Connection *c, exec_route route, const char *url, http_req *hr,
                          tr__serve_reply *rep) {
        if (!admit_or_refuse(s, rep))
                return;
        _cleanup_(tr_cancel_freep) tr_cancel *cancel = NULL;
        if (tr_cancel_new(&cancel, NULL) < 0) {
                release(s);
                tr__serve_reply_error(rep, 500, "internal", "out of memory");
                return;
        }
        tr__serve_watch w;
        watch_start(&w, c, cancel);
        tr__serve_ctx ctx = { .cfg = s->cfg,
                              .backends = s->backends,
                              .metrics = s->metrics,
                              .cancel = cancel,
                              .sessions = s->sessions,
                              .url = url,
                              .owner = hr->owner };
        route(&ctx, hr->body ? hr->body : "", hr->len, rep);
        tr__serve_watch_stop(&w);
        release(s);
}

/* A browser page must not reach a loopback service through DNS rebinding
 * (MCP's transport rules): without a token, an Origin other than a
 * loopback one is refused.  Clients that are not browsers send none. */
static bool origin_ok(const tr__server *s, const char *origin) {
        if (!origin || s->cfg->token)
                return true;
        static const char *const local[] = { "http://localhost",  "https://localhost", "http://127.0.0.1",
                                             "https://127.0.0.1", "http://[::1]",      "https://[::1]" };
        for (size_t i = 0; i < ARRAY_SIZE(local); i++) {
                size_t n = strlen(local[i]);
                if (strncmp(origin, local[i], n) == 0 && (origin[n] == '\0' || origin[n] == ':' || origin[n] == '/'))
                        return true;
        }
        return false;
}

static void mcp_route(tr__server *s, struct MHD_Connection *c, const char *method, http_req *hr, tr__serve_reply *rep) {
        if (!origin_ok(s, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"))) {
                tr__serve_reply_error(rep, 403, "forbidden", "requests from this Origin are not accepted");
                return;
        }
        tr__serve_mcp_http h = {
                .method = method,
                .session = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Mcp-Session-Id"),
                .accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
                .protocol_version = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MCP-Protocol-Version"),
        };
        tr__serve_mcp_handle(s->backends->mcp, &h, hr->body ? hr->body : "", hr->len, rep);
}

/* /v1/execute with Accept: application/x-ndjson: the execution runs on a
 * thread of its own, feeding events to the response as they come (the
 * connection's thread reads them out); the admission slot and the
 * disconnect watch stay with the execution. */
typedef struct stream_job {
        tr__server *s;
        exec_route route;
        char *url;
        unsigned owner;
        char *body;
        size_t len;
        int conn_fd;
        tr__ndjson *st;
        tr_cancel *cancel; /* owned by st */
} stream_job;

static void *stream_main(void *arg) {
        stream_job *j = arg;
        tr__serve_watch w;
        tr__serve_watch_start(&w, j->conn_fd, j->cancel);
        tr__serve_ctx ctx = { .cfg = j->s->cfg,
                              .backends = j->s->backends,
                              .metrics = j->s->metrics,
                              .cancel = j->cancel,
                              .output = tr__ndjson_output,
                              .tool_call = tr__ndjson_tool_call,
                              .output_userdata = j->st,
                              .sessions = j->s->sessions,
                              .url = j->url,
                              .owner = j->owner };
        tr__serve_reply rep = { 0 };
        j->route(&ctx, j->body ? j->body : "", j->len, &rep);
        tr__serve_watch_stop(&w);
        tr__ndjson_finish(j->st, &rep);
        free(rep.body);
        tr__server *s = j->s;
        free(j->body);
        free(j->url);
        free(j);
        /* Last: the server may be freed once nothing runs. */
        release(s);
        return NULL;
}

static void run_streaming(tr__server *s, struct MHD_Connection *c, exec_route route, const char *url, http_req *hr,
                          tr__serve_reply *rep) {
        if (!admit_or_refuse(s, rep))
                return;
        tr_cancel *cancel = NULL;
        stream_job *j = calloc(1, sizeof(*j));
        char *url_copy = strdup(url);
        tr__ndjson *st = NULL;
        if (!j || !url_copy || tr_cancel_new(&cancel, NULL) < 0 || !(st = tr__ndjson_new(cancel))) {
                free(j);
                free(url_copy);
                tr_cancel_free(cancel);
                release(s);
                tr__serve_reply_error(rep, 500, "internal", "out of memory");
                return;
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        *j = (stream_job){ .s = s,
                           .route = route,
                           .url = url_copy,
                           .owner = hr->owner,
                           .body = TAKE_PTR(hr->body),
                           .len = hr->len,
                           .conn_fd = ci ? ci->connect_fd : -1,
                           .st = st,
                           .cancel = cancel };
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, stream_main, j) != 0) {
                pthread_attr_destroy(&attr);
                free(j->body);
                free(j->url);
                free(j);
                tr__ndjson_reader_done(st); /* cancels nothing: not started */
                tr__serve_reply rp = { .status = 500 };
                tr__ndjson_finish(st, &rp);
                release(s);
                tr__serve_reply_error(rep, 500, "internal", "cannot start a thread");
                return;
        }
        pthread_attr_destroy(&attr);
        rep->status = 200;
        rep->content_type = "application/x-ndjson";
        rep->stream_read = tr__ndjson_read;
        rep->stream_free = tr__ndjson_reader_done;
        rep->stream_cls = st;
}

static bool wants_ndjson(struct MHD_Connection *c) {
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
        return a && strstr(a, "application/x-ndjson");
}

/* ---- sessions ------------------------------------------------------------ */

static tr__serve_upload *start_upload(tr__server *s, struct MHD_Connection *c, const char *url, unsigned owner,
                                      tr__serve_reply *rep) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t len = -1;
        if (cl) {
                char *end = NULL;
                unsigned long long v = strtoull(cl, &end, 10);
                len = end && *end == '\0' && v < INT64_MAX ? (int64_t) v : INT64_MAX;
        }
        pthread_mutex_lock(&s->lock);
        bool draining = s->draining;
        pthread_mutex_unlock(&s->lock);
        if (draining) {
                tr__serve_reply_error(rep, 503, "unavailable", "the server is shutting down");
                return NULL;
        }
        return tr__serve_upload_begin(s->sessions, url, owner, len, rep);
}

/* /v1/sessions[/ID[/execute|/files/PATH]]. */
static void sessions_route(tr__server *s, struct MHD_Connection *c, const char *method, const char *url, http_req *hr,
                           tr__serve_reply *rep) {
        tr__serve_ctx ctx = { .cfg = s->cfg,
                              .backends = s->backends,
                              .metrics = s->metrics,
                              .sessions = s->sessions,
                              .url = url,
                              .owner = hr->owner };
        const char *tail = strlen(url) > 13 + 32 ? url + 13 + 32 : "";
        bool post = streq(method, "POST"), get = streq(method, "GET");
        if (streq(url, "/v1/sessions") && post)
                run_execution(s, c, tr__serve_session_create, url, hr, rep);
        else if (streq(url, "/v1/sessions") && get)
                tr__serve_session_list(&ctx, rep);
        else if (streq(url, "/v1/sessions"))
                tr__serve_reply_error(rep, 405, "method_not_allowed", "%s is not allowed on %s", method, url);
        else if (streq(tail, "/execute") && post && wants_ndjson(c))
                run_streaming(s, c, tr__serve_session_execute, url, hr, rep);
        else if (streq(tail, "/execute") && post)
                run_execution(s, c, tr__serve_session_execute, url, hr, rep);
        else if (strncmp(tail, "/files/", 7) == 0 && get)
                tr__serve_download(s->sessions, url, hr->owner, rep);
        else if (!*tail && get)
                tr__serve_session_show(&ctx, rep);
        else if (!*tail && streq(method, "DELETE"))
                tr__serve_session_delete(&ctx, rep);
        else
                tr__serve_reply_error(rep, 404, "not_found", "no route %s %s", method, url);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
        (void) version;
        tr__server *s = cls;
        http_req *hr = *con_cls;
        tr__serve_reply rep = { 0 };
        if (!hr) {
                hr = calloc(1, sizeof(*hr));
                if (!hr)
                        return MHD_NO;
                *con_cls = hr;
                /* Authenticate before reading any body.  /v1/health stays
                 * open for load balancers; it tells nothing about code. */
                int tok = s->cfg->n_tokens
                                  ? token_index(s->cfg, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                                                    MHD_HTTP_HEADER_AUTHORIZATION))
                                  : 0;
                if (tok < 0 && !streq(url, "/v1/health")) {
                        hr->denied = true;
                        tr__serve_reply_error(&rep, 401, "unauthorized", "a valid bearer token is required");
                        return send_reply(s, c, &rep);
                }
                hr->owner = tok < 0 ? 0 : (unsigned) tok;
                /* A session file's body streams into the session. */
                if (streq(method, "PUT") && strncmp(url, "/v1/sessions/", 13) == 0 &&
                    !(hr->upload = start_upload(s, c, url, hr->owner, &rep))) {
                        hr->denied = true;
                        return send_reply(s, c, &rep);
                }
                return MHD_YES;
        }
        if (hr->denied) {
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (*upload_data_size && hr->upload) {
                tr__serve_upload_write(hr->upload, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (*upload_data_size) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (hr->too_big || hr->len + n > s->cfg->max_body) {
                        hr->too_big = true;
                        return MHD_YES;
                }
                if (hr->len + n + 1 > hr->alloc) {
                        size_t na = hr->alloc * 2 > hr->len + n + 1 ? hr->alloc * 2 : hr->len + n + 1;
                        char *b = realloc(hr->body, na);
                        if (!b)
                                return MHD_NO;
                        hr->body = b;
                        hr->alloc = na;
                }
                memcpy(hr->body + hr->len, upload_data, n);
                hr->len += n;
                hr->body[hr->len] = '\0';
                return MHD_YES;
        }

        bool post = streq(method, "POST"), get = streq(method, "GET");
        if (hr->too_big)
                tr__serve_reply_error(&rep, 413, "too_large", "the request body is over this server's cap of %zu bytes",
                                      s->cfg->max_body);
        else if (hr->upload)
                tr__serve_upload_end(TAKE_PTR(hr->upload), &rep);
        else if (strncmp(url, "/v1/sessions", 12) == 0 && (url[12] == '\0' || url[12] == '/'))
                sessions_route(s, c, method, url, hr, &rep);
        else if (streq(url, "/v1/execute") && post && wants_ndjson(c))
                run_streaming(s, c, tr__serve_v1_execute, url, hr, &rep);
        else if (streq(url, "/v1/execute") && post)
                run_execution(s, c, tr__serve_v1_execute, url, hr, &rep);
        else if (streq(url, "/api/v2/execute") && post)
                run_execution(s, c, tr__serve_piston_execute, url, hr, &rep);
        else if (streq(url, "/api/v2/runtimes") && get)
                tr__serve_piston_runtimes(NULL, &rep);
        else if (streq(url, "/v1/health") && get)
                health(s, &rep);
        else if (streq(url, "/v1/pools") || strncmp(url, "/v1/pools/", 10) == 0)
                tr__serve_pools_route(s->backends, method, url, hr->body ? hr->body : "", hr->len, &rep);
        else if (streq(url, "/mcp") && s->backends->mcp)
                mcp_route(s, c, method, hr, &rep);
        else if (streq(url, "/metrics") && get) {
                pthread_mutex_lock(&s->lock);
                unsigned running = s->running, queued = s->queued;
                pthread_mutex_unlock(&s->lock);
                rep.status = 200;
                rep.content_type = "text/plain; version=0.0.4";
                rep.body = tr__serve_metrics_text(s->metrics, running, queued, tr__serve_sessions_count(s->sessions),
                                                  s->backends);
        } else if (streq(url, "/v1/execute") || streq(url, "/api/v2/execute") || streq(url, "/api/v2/runtimes") ||
                   streq(url, "/v1/health") || streq(url, "/metrics"))
                tr__serve_reply_error(&rep, 405, "method_not_allowed", "%s is not allowed on %s", method, url);
        else
                tr__serve_reply_error(&rep, 404, "not_found", "no route %s", url);
        return send_reply(s, c, &rep);
}

int tr__server_start(const tr__serve_config *cfg, const tr__serve_backends *backends, tr__server **ret,
                     tr_error **ret_err) {
        tr__server *s = calloc(1, sizeof(*s));
        if (!s || tr__serve_metrics_new(&s->metrics) < 0) {
                free(s);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "serve", "out of memory");
        }
        s->cfg = cfg;
        s->backends = backends;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->listen_fd = -1;
        if (tr__serve_sessions_new(cfg, &s->sessions, ret_err) < 0) {
                tr__server_free(s);
                return -ENOMEM;
        }
        tr__serve_listener l;
        s->listen_fd = tr__serve_listen(cfg->listen, &l, ret_err);
        s->unix_path = l.unix_path;
        memcpy(s->address, l.address, sizeof(s->address));
        if (s->listen_fd < 0) {
                tr__server_free(s);
                return -EINVAL;
        }
        /* Connections beyond what admission can run or queue get a TCP-level
         * refusal from MHD rather than a thread each. */
        unsigned conn_limit = cfg->max_concurrency + cfg->queue + 16;
        s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC, 0, NULL,
                                NULL, handler, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_CONNECTION_TIMEOUT,
                                cfg->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 64 * 1024, MHD_OPTION_NOTIFY_COMPLETED,
                                on_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK, tr__serve_unescape, NULL,
                                MHD_OPTION_END);
        if (!s->d) {
                tr__server_free(s);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "serve",
                                    "libmicrohttpd could not start on %s", cfg->listen);
        }
        if (backends->mcp)
                tr__serve_mcp_set_admission(backends->mcp, mcp_admit, mcp_release, s);
        *ret = s;
        return 0;
}

const char *tr__server_address(const tr__server *s) {
        return s->address;
}

unsigned tr__server_drain(tr__server *s, int64_t drain_ms) {
        pthread_mutex_lock(&s->lock);
        s->draining = true;
        pthread_mutex_unlock(&s->lock);
        /* Stop accepting: the listening socket is closed, connections already
         * open finish their requests (new ones on them get 503). */
        if (s->d) {
                MHD_socket lfd = MHD_quiesce_daemon(s->d);
                if (lfd != MHD_INVALID_SOCKET)
                        close(lfd);
                s->listen_fd = -1;
        }
        int64_t end = tr__now_ns() + drain_ms * TR_NSEC_PER_MSEC;
        pthread_mutex_lock(&s->lock);
        while ((s->running || s->queued) && tr__now_ns() < end) {
                pthread_mutex_unlock(&s->lock);
                usleep(20 * 1000);
                pthread_mutex_lock(&s->lock);
        }
        unsigned left = s->running + s->queued;
        pthread_mutex_unlock(&s->lock);
        return left;
}

void tr__server_free(tr__server *s) {
        if (!s)
                return;
        if (s->d)
                MHD_stop_daemon(s->d);
        /* No request runs any more: every session ends, its sandbox
         * destroyed. */
        tr__serve_sessions_free(s->sessions);
        if (s->listen_fd >= 0 && !s->d)
                close(s->listen_fd);
        if (s->unix_path) {
                unlink(s->unix_path);
                free(s->unix_path);
        }
        tr__serve_metrics_free(s->metrics);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
}
