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
 * listening socket is listen.c's; admission and running an execution under
 * it (plain or streamed) are admission.c's.
 */
#include <errno.h>
#include <jansson.h>
#include "serve/mhd.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/serve.h"
#include "serve/server.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/timeutil.h"
static void req_free(tr__server_req *r) {
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

static void mcp_route(tr__server *s, struct MHD_Connection *c, const char *method, tr__server_req *hr,
                      tr__serve_reply *rep) {
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
static void sessions_route(tr__server *s, struct MHD_Connection *c, const char *method, const char *url,
                           tr__server_req *hr, tr__serve_reply *rep) {
        tr__serve_ctx ctx = { .cfg = s->cfg,
                              .backends = s->backends,
                              .metrics = s->metrics,
                              .sessions = s->sessions,
                              .url = url,
                              .owner = hr->owner };
        const char *tail = strlen(url) > 13 + 32 ? url + 13 + 32 : "";
        bool post = streq(method, "POST"), get = streq(method, "GET");
        if (streq(url, "/v1/sessions") && post)
                tr__server_run_execution(s, c, tr__serve_session_create, url, hr, rep);
        else if (streq(url, "/v1/sessions") && get)
                tr__serve_session_list(&ctx, rep);
        else if (streq(url, "/v1/sessions"))
                tr__serve_reply_error(rep, 405, "method_not_allowed", "%s is not allowed on %s", method, url);
        else if (streq(tail, "/execute") && post && wants_ndjson(c))
                tr__server_run_streaming(s, c, tr__serve_session_execute, url, hr, rep);
        else if (streq(tail, "/execute") && post)
                tr__server_run_execution(s, c, tr__serve_session_execute, url, hr, rep);
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
        tr__server_req *hr = *con_cls;
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
                tr__server_run_streaming(s, c, tr__serve_v1_execute, url, hr, &rep);
        else if (streq(url, "/v1/execute") && post)
                tr__server_run_execution(s, c, tr__serve_v1_execute, url, hr, &rep);
        else if (streq(url, "/api/v2/execute") && post)
                tr__server_run_execution(s, c, tr__serve_piston_execute, url, hr, &rep);
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
        if (!tr__mhd_available()) {
                tr__server_free(s);
                return tr_error_set(ret_err, TR_E_RUNTIME_UNAVAILABLE, TR_BACKEND_NONE, "serve",
                                    "serve needs libmicrohttpd (" TR_MHD_SONAME "): apt-get install libmicrohttpd12"),
                       -ENOENT;
        }
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
                tr__serve_mcp_set_admission(backends->mcp, tr__server_mcp_admit, tr__server_mcp_release, s);
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
