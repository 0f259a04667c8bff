/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP server's protocol layer (server.h): JSON-RPC 2.0 framing rules,
 * the lifecycle of every revision we speak, request dispatch, the worker
 * threads of tools/call, cancellation, progress and logging.
 *
 * Revisions: 2026-07-28 is stateless (no initialize: each request names its
 * revision in params._meta, and server/discover says what we support); the
 * older ones negotiate once with initialize, and we answer with the
 * client's revision when we know it, else our newest stateful one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"
#include "util/macros.h"
#include "util/timeutil.h"

const char *const mcps_versions[] = { "2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", NULL };
#define STATELESS_VERSION "2026-07-28"
#define LATEST_STATEFUL   "2025-11-25"
#define META_VERSION      "io.modelcontextprotocol/protocolVersion"
/* tools/call requests that may wait for a slot beyond --max-concurrent. */
#define MAX_WAITING 32

/* syslog order, as MCP's logging levels. */
static const char *const log_levels[] = { "debug", "info",     "notice", "warning",
                                          "error", "critical", "alert",  "emergency" };

static bool version_known(const char *v) {
        for (size_t i = 0; v && mcps_versions[i]; i++)
                if (streq(v, mcps_versions[i]))
                        return true;
        return false;
}

void mcps_send_locked(mcps_server *s, json_t *msg) {
        if (!msg)
                return;
        json_object_set_new(msg, "jsonrpc", json_string("2.0"));
        char *text = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(12));
        json_decref(msg);
        if (text)
                s->send(s->send_ud, text, strlen(text));
        free(text);
}

void mcps_send(mcps_server *s, json_t *msg) {
        pthread_mutex_lock(&s->lock);
        mcps_send_locked(s, msg);
        pthread_mutex_unlock(&s->lock);
}

static json_t *rpc_error(json_t *id, int code, const char *msg, json_t *data) {
        json_t *e = json_pack("{s:i, s:s}", "code", code, "message", msg);
        if (data)
                json_object_set_new(e, "data", data);
        return json_pack("{s:O?, s:o}", "id", id ? id : json_null(), "error", e);
}

static json_t *rpc_result(json_t *id, json_t *result, bool stateless) {
        if (!result)
                return rpc_error(id, RPC_INTERNAL_ERROR, "out of memory", NULL);
        /* 2026-07-28 results say whether they are complete (vs. asking for
         * input); ours always are. */
        if (stateless)
                json_object_set_new(result, "resultType", json_string("complete"));
        return json_pack("{s:O, s:o}", "id", id, "result", result);
}

json_t *mcps_tool_error(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *text = NULL;
        int n = vasprintf(&text, fmt, ap);
        va_end(ap);
        json_t *r = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", n >= 0 ? text : "error",
                              "isError", 1);
        free(n >= 0 ? text : NULL);
        return r;
}

void mcps_server_log(void *server, tr_log_level level, const char *msg, const char *const *kv) {
        mcps_server *s = server;
        int lv = level == TR_LOG_ERROR ? 4 : level == TR_LOG_WARN ? 3 : 1;
        json_t *data = json_pack("{s:s}", "message", msg ? msg : "");
        for (size_t i = 0; data && kv && kv[i] && kv[i + 1]; i += 2)
                json_object_set_new(data, kv[i], json_string(kv[i + 1]));
        pthread_mutex_lock(&s->lock);
        if (lv >= s->log_level && !s->stopping)
                mcps_send_locked(s, json_pack("{s:s, s:{s:s, s:s, s:o}}", "method", "notifications/message", "params",
                                              "level", log_levels[lv], "logger", "toolruntime", "data", data));
        else
                json_decref(data);
        pthread_mutex_unlock(&s->lock);
}

void mcps_server_tools_changed(mcps_server *s) {
        mcps_send(s, json_pack("{s:s}", "method", "notifications/tools/list_changed"));
}

static json_t *capabilities(void) {
        return json_pack("{s:{s:b}, s:{}}", "tools", "listChanged", 1, "logging");
}

static json_t *server_info(void) {
        return json_pack("{s:s, s:s, s:s}", "name", "toolruntime", "title", "toolruntime code mode", "version",
                         tr_version());
}

static const char instructions[] =
        "Call `execute` with a Python program: it runs in an isolated sandbox and can call every tool listed in "
        "execute's description as typed Python functions (from toolruntime.tools import NAMESPACE). Assign the "
        "global __out to return a JSON value; print() output comes back as stdout.";

static json_t *on_initialize(mcps_server *s, json_t *params) {
        const char *want = json_string_value(json_object_get(params, "protocolVersion"));
        /* The client's revision when we speak it (and it is a stateful
         * one: 2026-07-28 has no initialize), else our newest stateful. */
        const char *v = want && version_known(want) && !streq(want, STATELESS_VERSION) ? want : LATEST_STATEFUL;
        pthread_mutex_lock(&s->lock);
        snprintf(s->version, sizeof(s->version), "%s", v);
        pthread_mutex_unlock(&s->lock);
        return json_pack("{s:s, s:o, s:o, s:s}", "protocolVersion", v, "capabilities", capabilities(), "serverInfo",
                         server_info(), "instructions", instructions);
}

static json_t *on_discover(void) {
        json_t *vs = json_array();
        for (size_t i = 0; mcps_versions[i]; i++)
                json_array_append_new(vs, json_string(mcps_versions[i]));
        return json_pack("{s:o, s:o, s:o, s:s}", "supportedVersions", vs, "capabilities", capabilities(), "serverInfo",
                         server_info(), "instructions", instructions);
}

static json_t *on_set_level(mcps_server *s, json_t *params, int *ret_code) {
        const char *lv = json_string_value(json_object_get(params, "level"));
        for (int i = 0; lv && i < (int) ARRAY_SIZE(log_levels); i++)
                if (streq(lv, log_levels[i])) {
                        pthread_mutex_lock(&s->lock);
                        s->log_level = i;
                        pthread_mutex_unlock(&s->lock);
                        return json_object();
                }
        *ret_code = RPC_INVALID_PARAMS;
        return NULL;
}

static void on_cancelled(mcps_server *s, json_t *params) {
        json_t *rid = json_object_get(params, "requestId");
        pthread_mutex_lock(&s->lock);
        for (mcps_call *c = s->calls; c && rid; c = c->next)
                if (json_equal(c->id, rid) && !atomic_load(&c->done))
                        tr_cancel_cancel(c->cancel);
        pthread_mutex_unlock(&s->lock);
}

/* ---- tools/call workers ------------------------------------------------ */

static void call_free(mcps_call *c) {
        if (!c)
                return;
        json_decref(c->id);
        json_decref(c->progress_token);
        json_decref(c->params);
        tr_cancel_free(c->cancel);
        free(c);
}

static void *call_main(void *arg) {
        mcps_call *c = arg;
        mcps_server *s = c->s;
        /* The service's slot first (it may queue), then this server's. */
        const char *refused = NULL;
        bool admitted = false;
        if (s->cfg.admit && !tr_cancel_is_cancelled(c->cancel)) {
                admitted = s->cfg.admit(s->cfg.admit_userdata, &refused);
                if (!admitted && !refused)
                        refused = "the service refused the execution";
        }
        /* Wait for a slot: at most max_concurrent snippets run at once. */
        pthread_mutex_lock(&s->lock);
        while (s->running >= s->cfg.max_concurrent && !s->stopping)
                pthread_cond_wait(&s->cond, &s->lock);
        s->running++;
        c->start_ns = tr__now_ns();
        pthread_mutex_unlock(&s->lock);

        int code = 0;
        _cleanup_free_ char *msg = NULL;
        /* Cancelled while it waited for a slot (or we are stopping): no
         * sandbox is started for nothing. */
        json_t *result = tr_cancel_is_cancelled(c->cancel) || refused ? NULL : mcps_tools_call(c, &code, &msg);
        if (admitted)
                s->cfg.release(s->cfg.admit_userdata);
        if (refused && !msg)
                msg = strdup(refused);
        json_t *reply;
        if (tr_cancel_is_cancelled(c->cancel))
                /* A cancelled request gets no response (the spec's rule). */
                reply = NULL, json_decref(result);
        else if (result)
                reply = rpc_result(c->id, result, c->stateless);
        else
                reply = rpc_error(c->id, code ? code : RPC_INTERNAL_ERROR, msg ? msg : "internal error", NULL);

        pthread_mutex_lock(&s->lock);
        mcps_send_locked(s, reply);
        s->running--;
        atomic_store(&c->done, true);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

/* Join and free the finished workers (lock held). */
static void reap_locked(mcps_server *s) {
        for (mcps_call **p = &s->calls; *p;) {
                mcps_call *c = *p;
                if (!atomic_load(&c->done)) {
                        p = &c->next;
                        continue;
                }
                *p = c->next;
                pthread_join(c->thread, NULL);
                call_free(c);
        }
}

static void start_call(mcps_server *s, json_t *id, json_t *params, bool stateless) {
        mcps_call *c = calloc(1, sizeof(*c));
        if (!c || tr_cancel_new(&c->cancel, NULL) < 0) {
                free(c);
                mcps_send(s, rpc_error(id, RPC_INTERNAL_ERROR, "out of memory", NULL));
                return;
        }
        c->s = s;
        c->id = json_incref(id);
        c->params = json_incref(params);
        c->stateless = stateless;
        json_t *tok = json_object_get(json_object_get(params, "_meta"), "progressToken");
        if (json_is_string(tok) || json_is_integer(tok))
                c->progress_token = json_incref(tok);
        pthread_mutex_lock(&s->lock);
        reap_locked(s);
        bool dup = false;
        int live = 0;
        for (mcps_call *o = s->calls; o; o = o->next) {
                dup = dup || (json_equal(o->id, id) && !atomic_load(&o->done));
                live += !atomic_load(&o->done);
        }
        /* Waiting calls cost a thread each: a client that floods us gets
         * an error instead of thousands of them. */
        bool full = live >= s->cfg.max_concurrent + MAX_WAITING;
        if (dup || full || pthread_create(&c->thread, NULL, call_main, c) != 0) {
                pthread_mutex_unlock(&s->lock);
                const char *why = dup    ? "a request with this id is still running"
                                  : full ? "too many tool calls in flight; retry later"
                                         : "cannot start a worker";
                mcps_send(s, rpc_error(id, dup ? RPC_INVALID_REQUEST : RPC_INTERNAL_ERROR, why, NULL));
                call_free(c);
                return;
        }
        c->next = s->calls;
        s->calls = c;
        pthread_mutex_unlock(&s->lock);
}

/* Progress for the calls that asked for it, once a second: how much of the
 * timeout has passed.  Clients use it to keep waiting (and show it). */
static void *ticker_main(void *arg) {
        mcps_server *s = arg;
        pthread_mutex_lock(&s->lock);
        while (!s->stopping) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&s->cond, &s->lock, &ts);
                int64_t now = tr__now_ns();
                for (mcps_call *c = s->calls; c && !s->stopping; c = c->next) {
                        if (!c->progress_token || atomic_load(&c->done) || !c->start_ns ||
                            now - c->start_ns < 900000000LL)
                                continue;
                        double el = (double) (now - c->start_ns) / 1e9;
                        char m[64];
                        snprintf(m, sizeof(m), "running for %.0f s", el);
                        json_t *p = json_pack("{s:O, s:f, s:s}", "progressToken", c->progress_token, "progress", el,
                                              "message", m);
                        if (p && c->timeout_ms > 0)
                                json_object_set_new(p, "total", json_real((double) c->timeout_ms / 1000.0));
                        mcps_send_locked(s, json_pack("{s:s, s:o}", "method", "notifications/progress", "params", p));
                }
                if (s->stopping)
                        break;
                /* Expired sessions end (outside the send lock: a sandbox
                 * takes a while to destroy). */
                pthread_mutex_unlock(&s->lock);
                mcps_sessions_sweep(s);
                pthread_mutex_lock(&s->lock);
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

/* ---- dispatch ---------------------------------------------------------- */

/* The revision a request speaks: its _meta's (stateless), or the one
 * initialize negotiated.  NULL (with an error sent) when unsupported. */
static const char *request_version(mcps_server *s, json_t *id, json_t *params, bool *ret_stateless) {
        json_t *mv = json_object_get(json_object_get(params, "_meta"), META_VERSION);
        *ret_stateless = false;
        if (!mv)
                return "";
        const char *v = json_string_value(mv);
        if (!version_known(v)) {
                json_t *vs = json_array();
                for (size_t i = 0; mcps_versions[i]; i++)
                        json_array_append_new(vs, json_string(mcps_versions[i]));
                mcps_send(s, rpc_error(id, RPC_INVALID_PARAMS, "unsupported protocol version",
                                       json_pack("{s:o, s:O}", "supported", vs, "requested", mv)));
                return NULL;
        }
        *ret_stateless = streq(v, STATELESS_VERSION);
        return v;
}

static void handle_request(mcps_server *s, const char *method, json_t *id, json_t *params) {
        bool stateless = false;
        if (!request_version(s, id, params, &stateless))
                return;
        json_t *res = NULL;
        int code = 0;
        if (streq(method, "initialize"))
                res = on_initialize(s, params);
        else if (streq(method, "server/discover"))
                res = on_discover();
        else if (streq(method, "ping"))
                res = json_object();
        else if (streq(method, "tools/list"))
                res = mcps_tools_list(s);
        else if (streq(method, "logging/setLevel"))
                res = on_set_level(s, params, &code);
        else if (streq(method, "tools/call")) {
                if (!json_is_string(json_object_get(params, "name"))) {
                        mcps_send(s, rpc_error(id, RPC_INVALID_PARAMS, "tools/call needs a string \"name\"", NULL));
                        return;
                }
                start_call(s, id, params, stateless);
                return;
        } else
                code = RPC_METHOD_NOT_FOUND;
        if (code)
                mcps_send(s, rpc_error(id, code, code == RPC_METHOD_NOT_FOUND ? "method not found" : "invalid params",
                                       json_pack("{s:s}", "method", method)));
        else
                mcps_send(s, rpc_result(id, res, stateless));
}

void mcps_server_handle(mcps_server *s, const char *data, size_t len) {
        json_error_t jerr;
        json_t *m = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!m) {
                mcps_send(s, rpc_error(NULL, RPC_PARSE_ERROR, "parse error", json_string(jerr.text)));
                return;
        }
        json_t *id = json_object_get(m, "id");
        json_t *method = json_object_get(m, "method");
        json_t *params = json_object_get(m, "params");
        bool id_ok = json_is_string(id) || json_is_integer(id);
        if (json_is_array(m))
                /* Batches were in 2025-03-26 only; no SDK sends them. */
                mcps_send(s, rpc_error(NULL, RPC_INVALID_REQUEST, "JSON-RPC batches are not supported", NULL));
        else if (!json_is_object(m) || !json_is_string(json_object_get(m, "jsonrpc")) ||
                 !streq(json_string_value(json_object_get(m, "jsonrpc")), "2.0"))
                mcps_send(s, rpc_error(id_ok ? id : NULL, RPC_INVALID_REQUEST, "not a JSON-RPC 2.0 message", NULL));
        else if (!method) {
                /* A response: we send the client no requests, so none is
                 * expected; ignore it. */
        } else if (!json_is_string(method) || (params && !json_is_object(params)) || (id && !id_ok)) {
                if (id)
                        mcps_send(s, rpc_error(id_ok ? id : NULL, RPC_INVALID_REQUEST, "invalid request", NULL));
        } else if (!id) {
                if (streq(json_string_value(method), "notifications/cancelled"))
                        on_cancelled(s, params);
                /* notifications/initialized and the rest need nothing. */
        } else {
                json_t *p = params ? json_incref(params) : json_object();
                handle_request(s, json_string_value(method), id, p);
                json_decref(p);
        }
        json_decref(m);
}

int mcps_server_new(const mcps_config *cfg, mcps_send_fn send, void *userdata, mcps_server **ret_server,
                    tr_error **ret_err) {
        mcps_server *s = calloc(1, sizeof(*s));
        if (!s)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        s->cfg = *cfg;
        if (s->cfg.max_concurrent <= 0)
                s->cfg.max_concurrent = 2;
        s->send = send;
        s->send_ud = userdata;
        s->log_level = 3; /* warning, until the client says otherwise */
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        pthread_mutex_init(&s->sess_lock, NULL);
        if (pthread_create(&s->ticker, NULL, ticker_main, s) != 0) {
                mcps_server_free(s);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "cannot start a thread");
        }
        s->ticker_started = true;
        *ret_server = s;
        return 0;
}

void mcps_server_cancel_all(mcps_server *s) {
        pthread_mutex_lock(&s->lock);
        for (mcps_call *c = s->calls; c; c = c->next)
                tr_cancel_cancel(c->cancel);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

void mcps_server_free(mcps_server *s) {
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        for (mcps_call *c = s->calls; c; c = c->next)
                tr_cancel_cancel(c->cancel);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (s->ticker_started)
                pthread_join(s->ticker, NULL);
        for (mcps_call *c = s->calls, *n; c; c = n) {
                n = c->next;
                pthread_join(c->thread, NULL);
                call_free(c);
        }
        mcps_sessions_free(s);
        pthread_mutex_destroy(&s->sess_lock);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
}
