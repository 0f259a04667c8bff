/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MCP's Streamable HTTP transport at /mcp (serve.h): the MCP server of
 * src/mcp (the one `toolruntime mcp` runs over stdio) behind POST, with the
 * service's authentication and size caps in front (server.c).
 *
 * The MCP server is message-oriented: a message goes in, replies and
 * notifications come out through a callback, tools/call on a worker
 * thread.  HTTP is request-oriented, so this module owns the mapping:
 *
 *   - a session per `initialize` (an `Mcp-Session-Id` of 128 random bits),
 *     holding one MCP server; requests of the stateless revision
 *     (2026-07-28, no initialize) get a server of their own for one request;
 *   - a POSTed request waits here (the connection has its own thread in
 *     libmicrohttpd's thread-per-connection mode) until the reply with its
 *     id comes out of the server; notifications the server sends meanwhile
 *     (progress, logging) go to the waiting requests and are delivered as
 *     server-sent events before the reply when the client accepts
 *     text/event-stream, else dropped (the reply is plain JSON);
 *   - notifications and client responses are accepted with 202;
 *   - DELETE ends a session at once: it leaves the table (its id answers
 *     404), its running executions are cancelled and their waiting
 *     requests answered; it is freed when the last request lets go;
 *     GET is 405: we offer no standalone server-to-client stream.
 *
 * Sessions are bounded (MAX_SESSIONS; the least recently used idle one
 * makes room) and expire after SESSION_IDLE_MS unused.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mcp/server.h"
#include "serve/serve.h"
#include "util/macros.h"
#include "util/timeutil.h"

#define MAX_SESSIONS    64
#define SESSION_IDLE_MS (30 * 60 * 1000)
/* Notifications kept for one waiting request; more are dropped. */
#define MAX_NOTES 256

static int64_t now_ms(void) {
        return tr__now_ns() / 1000000;
}

/* A POSTed request waiting for its reply.  Shared by the handler (or the
 * streaming response) and the session's send callback; freed by whichever
 * lets go last (refs, under the session's lock). */
typedef struct waiter {
        json_t *id;
        json_t *progress_token; /* its params._meta.progressToken, or NULL */
        bool sse;               /* notifications go out as events */
        bool done;              /* the reply came, or the request was cancelled */
        bool cancelled;
        int64_t deadline_ms; /* a bound against a server that never answers */
        char *out;           /* events (or the JSON reply) not yet sent */
        size_t out_len, out_sent;
        size_t notes;
        unsigned refs;
        struct session *se;
        struct waiter *next;
} waiter;

typedef struct session {
        char id[33];
        mcps_server *srv;
        pthread_mutex_t lock; /* waiters */
        pthread_cond_t cond;
        waiter *waiters;
        unsigned refs; /* requests using it; guarded by the table's lock */
        bool deleted;  /* out of the table (DELETE): the last put frees it */
        int64_t last_used_ms;
        struct session *next;
} session;

struct tr__serve_mcp {
        mcps_config cfg;
        pthread_mutex_t lock; /* the table */
        session *sessions;
        unsigned n;
};

static void append(waiter *w, const char *text, size_t len, bool event) {
        size_t need = w->out_len + len + (event ? 32 : 1);
        char *n = realloc(w->out, need);
        if (!n)
                return;
        w->out = n;
        if (event)
                w->out_len += (size_t) snprintf(w->out + w->out_len, need - w->out_len,
                                                "event: message\ndata: %.*s\n\n", (int) len, text);
        else {
                memcpy(w->out + w->out_len, text, len);
                w->out_len += len;
                w->out[w->out_len] = '\0';
        }
}

/* The server's send callback: a reply goes to the request waiting for it;
 * a progress notification to the request whose token it carries; other
 * notifications (logging, list_changed) to every streaming request. */
static void session_send(void *userdata, const char *text, size_t len) {
        session *se = userdata;
        json_t *msg = json_loadb(text, len, 0, NULL);
        if (!msg)
                return;
        json_t *id = json_object_get(msg, "id");
        bool reply = id && (json_object_get(msg, "result") || json_object_get(msg, "error"));
        json_t *tok = json_object_get(json_object_get(msg, "params"), "progressToken");
        pthread_mutex_lock(&se->lock);
        for (waiter *w = se->waiters; w; w = w->next) {
                if (w->done)
                        continue;
                if (reply) {
                        if (json_equal(w->id, id)) {
                                append(w, text, len, w->sse);
                                w->done = true;
                                break;
                        }
                } else if (w->sse && w->notes < MAX_NOTES &&
                           (!tok || (w->progress_token && json_equal(w->progress_token, tok)))) {
                        append(w, text, len, true);
                        w->notes++;
                }
        }
        pthread_cond_broadcast(&se->cond);
        pthread_mutex_unlock(&se->lock);
        json_decref(msg);
}

/* notifications/cancelled: the server sends no reply for a cancelled
 * request, so its waiter ends here. */
static void cancel_waiter(session *se, json_t *request_id) {
        pthread_mutex_lock(&se->lock);
        for (waiter *w = se->waiters; w; w = w->next)
                if (!w->done && json_equal(w->id, request_id)) {
                        w->done = w->cancelled = true;
                        break;
                }
        pthread_cond_broadcast(&se->cond);
        pthread_mutex_unlock(&se->lock);
}

static void session_free(session *se) {
        if (!se)
                return;
        /* Cancels what still runs and waits for the workers. */
        mcps_server_free(se->srv);
        pthread_mutex_destroy(&se->lock);
        pthread_cond_destroy(&se->cond);
        free(se);
}

static int session_new(tr__serve_mcp *m, session **ret, tr_error **ret_err) {
        session *se = calloc(1, sizeof(*se));
        if (!se)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp.session", "out of memory");
        pthread_mutex_init(&se->lock, NULL);
        pthread_cond_init(&se->cond, NULL);
        unsigned char rnd[16];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd)) {
                session_free(se);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp.session", "getrandom failed");
        }
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(se->id + 2 * i, 3, "%02x", rnd[i]);
        if (mcps_server_new(&m->cfg, session_send, se, &se->srv, ret_err) < 0) {
                session_free(se);
                return -1;
        }
        se->last_used_ms = now_ms();
        *ret = se;
        return 0;
}

/* Make room for one more session: drop expired ones, then, if still full,
 * the least recently used idle one.  Called with the table locked; returns
 * what to free after unlocking (freeing waits for executions). */
static session *evict_locked(tr__serve_mcp *m) {
        session *out = NULL, **pp = &m->sessions;
        int64_t now = now_ms();
        while (*pp) {
                session *se = *pp;
                if (se->refs == 0 && now - se->last_used_ms > SESSION_IDLE_MS) {
                        *pp = se->next;
                        se->next = out;
                        out = se;
                        m->n--;
                } else {
                        pp = &se->next;
                }
        }
        if (m->n < MAX_SESSIONS)
                return out;
        session **oldest = NULL;
        for (pp = &m->sessions; *pp; pp = &(*pp)->next)
                if ((*pp)->refs == 0 && (!oldest || (*pp)->last_used_ms < (*oldest)->last_used_ms))
                        oldest = pp;
        if (oldest) {
                session *se = *oldest;
                *oldest = se->next;
                se->next = out;
                out = se;
                m->n--;
        }
        return out;
}

static void free_list(session *se) {
        while (se) {
                session *next = se->next;
                session_free(se);
                se = next;
        }
}

/* Find a session by id and take a reference. */
static session *session_get(tr__serve_mcp *m, const char *id) {
        pthread_mutex_lock(&m->lock);
        session *se = m->sessions;
        while (se && !streq(se->id, id))
                se = se->next;
        if (se) {
                se->refs++;
                se->last_used_ms = now_ms();
        }
        pthread_mutex_unlock(&m->lock);
        return se;
}

static void session_put(tr__serve_mcp *m, session *se) {
        pthread_mutex_lock(&m->lock);
        bool gone = --se->refs == 0 && se->deleted;
        se->last_used_ms = now_ms();
        pthread_mutex_unlock(&m->lock);
        if (gone)
                session_free(se);
}

/* DELETE of a session still in use: cancel what it runs and end every
 * waiting request now (a cancelled request gets no reply from the
 * server, so nothing else would wake them). */
static void session_end_requests(session *se) {
        mcps_server_cancel_all(se->srv);
        pthread_mutex_lock(&se->lock);
        for (waiter *w = se->waiters; w; w = w->next)
                if (!w->done)
                        w->done = w->cancelled = true;
        pthread_cond_broadcast(&se->cond);
        pthread_mutex_unlock(&se->lock);
}

void tr__serve_mcp_set_admission(tr__serve_mcp *m, bool (*admit)(void *, const char **), void (*release)(void *),
                                 void *userdata) {
        m->cfg.admit = admit;
        m->cfg.release = release;
        m->cfg.admit_userdata = userdata;
}

int tr__serve_mcp_new(const tr__serve_config *cfg, const tr__serve_backends *bk, tr__serve_mcp **ret,
                      tr_error **ret_err) {
        tr__serve_mcp *m = calloc(1, sizeof(*m));
        if (!m)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        pthread_mutex_init(&m->lock, NULL);
        /* The MCP server's limits are its defaults and maxima at once; the
         * service's maxima are only maxima (0: none), so a limit without a
         * maximum is left to the profile. */
        tr_limits lim = cfg->max_limits;
        int64_t *f[] = { &lim.memory_bytes, &lim.pids_max,       &lim.cpu_quota_ms,
                         &lim.disk_bytes,   &lim.max_tool_calls, &lim.max_chain_steps };
        for (size_t i = 0; i < ARRAY_SIZE(f); i++)
                if (*f[i] <= 0)
                        *f[i] = TR_LIMIT_UNSET;
        int64_t timeout = TR_DEFAULT_TIMEOUT_MS;
        if (cfg->max_timeout_ms > 0 && cfg->max_timeout_ms < timeout)
                timeout = cfg->max_timeout_ms;
        m->cfg = (mcps_config){
                .rt = bk->by_kind[bk->default_kind],
                .gw = bk->gateway,
                .profile = TR_PROFILE_STANDARD,
                .backend_name = tr_backend_kind_name(bk->default_kind),
                .timeout_ms = timeout,
                .limits = lim,
                .max_output = cfg->max_output,
                .max_code = cfg->max_code < 16 * 1024 * 1024 ? cfg->max_code : 16 * 1024 * 1024,
                .max_concurrent = (int) cfg->max_concurrency,
        };
        *ret = m;
        return 0;
}

void tr__serve_mcp_free(tr__serve_mcp *m) {
        if (!m)
                return;
        free_list(m->sessions);
        pthread_mutex_destroy(&m->lock);
        free(m);
}

static void rpc_reply(tr__serve_reply *rep, unsigned status, int code, const char *msg) {
        json_t *o = json_pack("{s:s,s:n,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", "error", "code", code, "message", msg);
        rep->status = status;
        rep->content_type = "application/json";
        rep->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
}

/* Let go of a session a request used: a one-request (stateless) one
 * ends here. */
static void session_release(tr__serve_mcp *m, session *se, bool ephemeral) {
        if (ephemeral)
                session_free(se);
        else
                session_put(m, se);
}

/* Drop one reference to a waiter; the last one unlinks and frees it, and
 * lets go of its session. */
static void waiter_put(tr__serve_mcp *m, waiter *w, bool ephemeral) {
        session *se = w->se;
        pthread_mutex_lock(&se->lock);
        bool last = --w->refs == 0;
        if (last)
                for (waiter **pp = &se->waiters; *pp; pp = &(*pp)->next)
                        if (*pp == w) {
                                *pp = w->next;
                                break;
                        }
        pthread_mutex_unlock(&se->lock);
        if (!last)
                return;
        json_decref(w->id);
        json_decref(w->progress_token);
        free(w->out);
        free(w);
        session_release(m, se, ephemeral);
}

/* The streaming response of one request (text/event-stream): events as the
 * server produces them, ending after the reply.  libmicrohttpd runs each
 * connection on its own thread, so blocking here holds no one else up. */
typedef struct stream {
        tr__serve_mcp *m;
        waiter *w;
        bool ephemeral;
} stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
        (void) pos;
        stream *st = cls;
        waiter *w = st->w;
        session *se = w->se;
        pthread_mutex_lock(&se->lock);
        while (w->out_sent == w->out_len && !w->done) {
                if (now_ms() >= w->deadline_ms) {
                        /* The same bound as the JSON path: end the stream
                         * with an error event rather than hold it forever. */
                        static const char late[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,"
                                                   "\"message\":\"the MCP server did not answer in time\"}}";
                        append(w, late, sizeof(late) - 1, true);
                        w->done = true;
                        break;
                }
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&se->cond, &se->lock, &ts);
        }
        ssize_t n = TR__STREAM_END;
        if (w->out_sent < w->out_len) {
                size_t k = w->out_len - w->out_sent < max ? w->out_len - w->out_sent : max;
                memcpy(buf, w->out + w->out_sent, k);
                w->out_sent += k;
                n = (ssize_t) k;
        }
        pthread_mutex_unlock(&se->lock);
        return n;
}

static void stream_free(void *cls) {
        stream *st = cls;
        /* The client may be gone before the reply: then nobody waits for
         * the execution, and cancelling it is the server's business when
         * the session ends. */
        waiter_put(st->m, st->w, st->ephemeral);
        free(st);
}

/* Hand a request to the session's server; answer with its reply (JSON) or
 * a stream of events ending with it (SSE).  Takes over the session
 * reference. */
static void call(tr__serve_mcp *m, session *se, bool ephemeral, json_t *msg, const char *body, size_t len, bool sse,
                 tr__serve_reply *rep) {
        waiter *w = calloc(1, sizeof(*w));
        stream *st = sse ? calloc(1, sizeof(*st)) : NULL;
        if (!w || (sse && !st)) {
                free(w);
                free(st);
                session_release(m, se, ephemeral);
                rpc_reply(rep, 500, -32603, "out of memory");
                return;
        }
        w->id = json_incref(json_object_get(msg, "id"));
        w->progress_token =
                json_incref(json_object_get(json_object_get(json_object_get(msg, "params"), "_meta"), "progressToken"));
        w->sse = sse;
        w->se = se;
        w->refs = 1;
        /* The server answers every request that is not cancelled:
         * tools/call within its timeout plus teardown; the bound only
         * guards against a bug. */
        w->deadline_ms = now_ms() + m->cfg.timeout_ms + 120 * 1000;
        pthread_mutex_lock(&se->lock);
        /* Replies are routed by id: a second request with the id of one
         * still waiting could take the other's reply. */
        bool dup = false;
        for (waiter *o = se->waiters; o && !dup; o = o->next)
                dup = !o->done && json_equal(o->id, w->id);
        if (!dup) {
                w->next = se->waiters;
                se->waiters = w;
        }
        pthread_mutex_unlock(&se->lock);
        if (dup) {
                json_decref(w->id);
                json_decref(w->progress_token);
                free(w);
                free(st);
                session_release(m, se, ephemeral);
                rpc_reply(rep, 400, -32600, "a request with this id is still waiting for its reply");
                return;
        }

        mcps_server_handle(se->srv, body, len);

        rep->status = 200;
        if (sse) {
                *st = (stream){ .m = m, .w = w, .ephemeral = ephemeral };
                rep->content_type = "text/event-stream";
                rep->stream_read = stream_read;
                rep->stream_free = stream_free;
                rep->stream_cls = st;
                return;
        }
        pthread_mutex_lock(&se->lock);
        while (!w->done && now_ms() < w->deadline_ms) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&se->cond, &se->lock, &ts);
        }
        char *out = w->cancelled ? NULL : w->out;
        if (out)
                w->out = NULL;
        pthread_mutex_unlock(&se->lock);
        if (out) {
                rep->content_type = "application/json";
                rep->body = out;
        } else {
                rpc_reply(rep, w->cancelled ? 200 : 504, w->cancelled ? -32800 : -32603,
                          w->cancelled ? "request cancelled" : "the MCP server did not answer in time");
        }
        waiter_put(m, w, ephemeral);
}

static bool accepts(const char *accept, const char *type) {
        return accept && strstr(accept, type);
}

void tr__serve_mcp_handle(tr__serve_mcp *m, const tr__serve_mcp_http *h, const char *body, size_t len,
                          tr__serve_reply *rep) {
        if (streq(h->method, "DELETE")) {
                session *se = NULL;
                pthread_mutex_lock(&m->lock);
                for (session **pp = &m->sessions; h->session && *pp; pp = &(*pp)->next)
                        if (streq((*pp)->id, h->session)) {
                                se = *pp;
                                *pp = se->next;
                                m->n--;
                                /* Held here while its requests are ended;
                                 * the last reference frees it. */
                                se->deleted = true;
                                se->refs++;
                                break;
                        }
                pthread_mutex_unlock(&m->lock);
                if (!se) {
                        rpc_reply(rep, 404, -32001, "unknown or expired session");
                        return;
                }
                session_end_requests(se);
                session_put(m, se);
                rep->status = 200;
                rep->content_type = "application/json";
                rep->body = strdup("{}");
                return;
        }
        if (!streq(h->method, "POST")) {
                rpc_reply(rep, 405, -32000, "only POST and DELETE: this server offers no server-to-client stream");
                return;
        }
        if (h->protocol_version) {
                bool known = false;
                for (size_t i = 0; mcps_versions[i]; i++)
                        known = known || streq(h->protocol_version, mcps_versions[i]);
                if (!known) {
                        rpc_reply(rep, 400, -32600, "unsupported MCP-Protocol-Version");
                        return;
                }
        }
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *msg = json_loadb(body, len, 0, &jerr);
        if (!msg) {
                rpc_reply(rep, 400, -32700, "parse error: the body is not JSON");
                return;
        }
        if (!json_is_object(msg)) {
                rpc_reply(rep, 400, -32600, "one JSON-RPC message per request (batches are not supported)");
                return;
        }
        json_t *method = json_object_get(msg, "method"), *id = json_object_get(msg, "id");
        bool is_init = json_is_string(method) && streq(json_string_value(method), "initialize");
        bool is_request = json_is_string(method) && id && !json_is_null(id);

        session *se = NULL;
        bool ephemeral = false;
        if (is_init || (!h->session && is_request)) {
                /* A new session, or (no session named: the stateless
                 * revision) a server for this one request. */
                tr_error *err = NULL;
                if (session_new(m, &se, &err) < 0) {
                        rpc_reply(rep, 500, -32603, tr_error_message(err));
                        tr_error_free(err);
                        return;
                }
                ephemeral = !is_init;
                if (is_init) {
                        pthread_mutex_lock(&m->lock);
                        session *gone = evict_locked(m);
                        bool full = m->n >= MAX_SESSIONS;
                        if (!full) {
                                se->next = m->sessions;
                                m->sessions = se;
                                m->n++;
                                se->refs = 1;
                        }
                        pthread_mutex_unlock(&m->lock);
                        free_list(gone);
                        if (full) {
                                session_free(se);
                                rpc_reply(rep, 503, -32000, "too many MCP sessions; end one with DELETE");
                                rep->retry_after = 5;
                                return;
                        }
                }
        } else if (h->session) {
                se = session_get(m, h->session);
                if (!se) {
                        rpc_reply(rep, 404, -32001, "unknown or expired session: initialize again");
                        return;
                }
        } else {
                /* A notification or a response without a session: nothing
                 * stateless needs it. */
                rep->status = 202;
                rep->content_type = "application/json";
                rep->body = strdup("");
                return;
        }

        if (is_init)
                snprintf(rep->session_id, sizeof(rep->session_id), "%s", se->id);
        if (is_request) {
                call(m, se, ephemeral, msg, body, len, accepts(h->accept, "text/event-stream"), rep);
                return;
        }
        mcps_server_handle(se->srv, body, len);
        if (json_is_string(method) && streq(json_string_value(method), "notifications/cancelled"))
                cancel_waiter(se, json_object_get(json_object_get(msg, "params"), "requestId"));
        rep->status = 202;
        rep->content_type = "application/json";
        rep->body = strdup("");
        session_release(m, se, ephemeral);
}
