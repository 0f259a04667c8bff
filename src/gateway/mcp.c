/* SPDX-License-Identifier: Apache-2.0 */
/* The MCP stdio client (mcp.h): the conversation.  Requests and their
 * responses (with whatever the server interleaves), the initialize
 * handshake, restarts, the per-server lock, and the public calls.  The
 * line transport is mcp_transport.c, the message parsing mcp_parse.c. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/callctx.h"
#include "gateway/mcp.h"
#include "gateway/mcp_client.h"
#include "gateway/schema.h"
#include "gateway/spawn.h"
#include "util/macros.h"
#include "util/strv.h"
#include "util/timeutil.h"

/* Newest first: we offer the first, and accept any of them back. */
static const char *const protocol_versions[] = { "2025-06-18", "2025-03-26", "2024-11-05" };

/* Garbage lines tolerated while waiting for one response before the server
 * is declared broken. */
#define MAX_GARBAGE 64
/* Non-response messages tolerated while waiting for one response: a chatty
 * server may log, but not forever. */
#define MAX_INTERLEAVED 10000
#define MAX_RESTARTS    3

void tr__mcp_log(tr__mcp *m, tr_log_level level, const char *msg, const char *detail) {
        if (!m->log)
                return;
        const char *kv[] = { "server", m->argv[0], "detail", detail ? detail : "", NULL };
        m->log(m->log_ud, level, msg, kv);
}

static json_t *rpc(const char *method, json_t *params, json_int_t id) {
        json_t *msg = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", method);
        if (!msg)
                return NULL;
        if (id >= 0 && json_object_set_new(msg, "id", json_integer(id)) < 0) {
                json_decref(msg);
                return NULL;
        }
        if (params && json_object_set(msg, "params", params) < 0) {
                json_decref(msg);
                return NULL;
        }
        return msg;
}

/* Answer a request the server sent us.  We offer no client capabilities,
 * so everything but ping is "method not found" (JSON-RPC -32601). */
static void answer_server_request(tr__mcp *m, const tr__mcp_msg *rq, int64_t deadline, const tr_call_ctx *cc) {
        json_t *reply;
        if (streq(rq->method, "ping"))
                reply = json_pack("{s:s,s:O,s:{}}", "jsonrpc", "2.0", "id", rq->id_json, "result");
        else
                reply = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", rq->id_json, "error", "code", -32601,
                                  "message", "method not supported by this client");
        if (reply) {
                tr__mcp_send_msg(m, reply, deadline, cc, NULL);
                json_decref(reply);
        }
}

/* Process one incoming message while waiting for response `id`.  Returns 1
 * with *ret_msg (new ref) when it is that response, 0 to keep waiting. */
static int process_one(tr__mcp *m, json_t *j, json_int_t id, int64_t deadline, const tr_call_ctx *cc, json_t **ret_msg,
                       unsigned *garbage) {
        tr__mcp_msg msg;
        switch (tr__mcp_classify(j, &msg)) {
        case TR__MCP_RESPONSE:
        case TR__MCP_ERROR:
                if (msg.id_is_int && msg.id == id) {
                        *ret_msg = json_incref(j);
                        return 1;
                }
                /* A late answer to a request that timed out: drop it. */
                return 0;
        case TR__MCP_REQUEST: answer_server_request(m, &msg, deadline, cc); return 0;
        case TR__MCP_NOTIFICATION:
                /* list_changed is remembered for the registry, which lists
                 * the tools again; logs and progress need nothing.  Never
                 * an answer. */
                if (msg.method && streq(msg.method, "notifications/tools/list_changed"))
                        atomic_store(&m->list_changed, true);
                return 0;
        default: (*garbage)++; return 0;
        }
}

static int pass_error(tr_error *e, int r, tr_error **ret_err) {
        if (ret_err && !*ret_err)
                *ret_err = e;
        else
                tr_error_free(e);
        return r;
}

/* Give up on request `id` after `why` (TR_E_TIMEOUT, TR_E_CANCELLED, ...);
 * `sent`: the server got all of it.  A timeout of the server's own budget
 * (`kill_on_timeout`) means it hangs: kill it (the next call restarts it)
 * rather than let every later call queue behind it for its full budget.
 * A cancelled call, or one cut short by the calling execution's deadline,
 * says nothing about the server: tell it, so that it can stop working on
 * the request (best effort), and keep it; its late answer is dropped. */
static void abandon(tr__mcp *m, json_int_t id, tr_code why, bool sent, bool kill_on_timeout) {
        if (!m->alive || (why != TR_E_TIMEOUT && why != TR_E_CANCELLED))
                return;
        if (why == TR_E_TIMEOUT && kill_on_timeout) {
                tr__mcp_kill_server(m);
                tr__mcp_log(m, TR_LOG_WARN, "MCP server killed: it did not answer a request in time", NULL);
                return;
        }
        if (!sent)
                return;
        json_t *p = json_pack("{s:I,s:s}", "requestId", (json_int_t) id, "reason",
                              why == TR_E_TIMEOUT ? "timeout" : "cancelled");
        json_t *cn = p ? rpc("notifications/cancelled", p, -1) : NULL;
        if (cn)
                tr__mcp_send_msg(m, cn, tr__now_ns() + 100 * TR_NSEC_PER_MSEC, NULL, NULL);
        json_decref(cn);
        json_decref(p);
}

/* Send request `method` and wait for its response.  Called with m->lock.
 * `kill_on_timeout`: `deadline` is the server's own budget (not a calling
 * execution's), so missing it means the server hangs. */
static int request(tr__mcp *m, const tr_call_ctx *cc, const char *method, json_t *params, int64_t deadline,
                   bool kill_on_timeout, json_t **ret_result, tr_error **ret_err) {
        char op[64];
        snprintf(op, sizeof(op), "mcp.%s", method);
        json_int_t id = m->next_id++;
        json_t *msg = rpc(method, params, id);
        if (!msg)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        tr_error *err = NULL;
        int r = tr__mcp_send_msg(m, msg, deadline, cc, &err);
        json_decref(msg);
        if (r < 0) {
                abandon(m, id, err ? tr_error_code(err) : TR_E_INTERNAL, false, kill_on_timeout);
                return pass_error(err, r, ret_err);
        }

        unsigned garbage = 0, seen = 0;
        for (;;) {
                const char *line = NULL;
                size_t ll = 0;
                r = tr__mcp_read_line(m, deadline, cc, &line, &ll, &err);
                if (r < 0) {
                        abandon(m, id, err ? tr_error_code(err) : TR_E_INTERNAL, true, kill_on_timeout);
                        return pass_error(err, r, ret_err);
                }
                json_t *reply = NULL;
                int got = 0;
                /* Empty lines (a stray "\r\n") are not garbage worth counting. */
                if (ll > 0 && !(ll == 1 && line[0] == '\r')) {
                        json_t *j = json_loadb(line, ll, JSON_REJECT_DUPLICATES, NULL);
                        if (!j)
                                garbage++;
                        else if (json_is_array(j)) {
                                /* A JSON-RPC batch (2025-03-26 allows them). */
                                size_t i;
                                json_t *e;
                                json_array_foreach(j, i, e) {
                                        if (i >= 256 || got)
                                                break;
                                        got = process_one(m, e, id, deadline, cc, &reply, &garbage);
                                }
                        } else
                                got = process_one(m, j, id, deadline, cc, &reply, &garbage);
                        json_decref(j);
                }
                tr__mcp_consume_line(m, ll);
                if (got) {
                        tr__mcp_msg rm;
                        tr__mcp_classify(reply, &rm);
                        if (rm.kind == TR__MCP_ERROR) {
                                json_t *em = json_object_get(rm.error, "message");
                                _cleanup_free_ char *clean =
                                        tr__text_sanitize(json_is_string(em) ? json_string_value(em) : "unknown error",
                                                          TR__MCP_MAX_ERROR_TEXT);
                                json_t *ec = json_object_get(rm.error, "code");
                                /* -32602 is "invalid params". */
                                tr_code code =
                                        json_integer_value(ec) == -32602 ? TR_E_INVALID_ARGUMENTS : TR_E_TOOL_FAILED;
                                r = tr_error_set(ret_err, code, TR_BACKEND_NONE, op, "MCP error %lld: %s",
                                                 (long long) json_integer_value(ec), clean ? clean : "");
                                json_decref(reply);
                                return r;
                        }
                        *ret_result = json_incref(rm.result);
                        json_decref(reply);
                        return 0;
                }
                if (garbage > MAX_GARBAGE || ++seen > MAX_INTERLEAVED) {
                        tr__mcp_kill_server(m);
                        tr__mcp_log(m, TR_LOG_WARN, "MCP server killed: it writes garbage", NULL);
                        return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, op,
                                            "the MCP server writes too many invalid messages");
                }
        }
}

static int notify(tr__mcp *m, const tr_call_ctx *cc, const char *method, int64_t deadline, tr_error **ret_err) {
        json_t *msg = rpc(method, NULL, -1);
        if (!msg)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        int r = tr__mcp_send_msg(m, msg, deadline, cc, ret_err);
        json_decref(msg);
        return r;
}

/* Spawn and initialise, for the tool call `cc` (NULL: none).  Called with
 * m->lock (or before it is shared). */
static int connect_server(tr__mcp *m, const tr_call_ctx *cc, tr_error **ret_err) {
        int64_t deadline = tr__now_ns() + m->start_ms * TR_NSEC_PER_MSEC;
        tr__errlog_reset(&m->errlog);
        int r = tr__proc_spawn(m->argv, NULL, m->envp, true, &m->proc, ret_err);
        if (r < 0)
                return r;
        m->alive = true;
        m->start = m->scanned = m->len = 0;
        json_t *params = json_pack("{s:s,s:{},s:{s:s,s:s}}", "protocolVersion", protocol_versions[0], "capabilities",
                                   "clientInfo", "name", "toolruntime", "version", TR_VERSION_STRING);
        json_t *res = NULL;
        r = params ? request(m, cc, "initialize", params, deadline, true, &res, ret_err)
                   : tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        json_decref(params);
        if (r < 0) {
                tr__mcp_kill_server(m);
                return r;
        }
        json_t *pv = json_object_get(res, "protocolVersion");
        bool ok = false;
        for (size_t i = 0; json_is_string(pv) && i < ARRAY_SIZE(protocol_versions); i++)
                if (streq(json_string_value(pv), protocol_versions[i]))
                        ok = true;
        if (!ok) {
                /* The spec: a client that does not support the version the
                 * server answers with should disconnect. */
                r = tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "mcp.initialize",
                                 "the MCP server wants an unsupported protocol version");
                json_decref(res);
                tr__mcp_kill_server(m);
                return r;
        }
        free(m->protocol_version);
        m->protocol_version = strdup(json_string_value(pv));
        json_t *name = json_object_get(json_object_get(res, "serverInfo"), "name");
        if (json_is_string(name) && !m->server_name)
                m->server_name = tr__text_sanitize(json_string_value(name), 64);
        json_decref(res);
        r = notify(m, cc, "notifications/initialized", deadline, ret_err);
        if (r < 0) {
                tr__mcp_kill_server(m);
                return r;
        }
        return 0;
}

/* A timed lock: a call queued behind a hung one gives up at its deadline,
 * or as soon as its tool call is cancelled (checked every LOCK_SLICE_MS). */
#define LOCK_SLICE_MS 50
static int lock_until(tr__mcp *m, const tr_call_ctx *cc, int64_t deadline, tr_error **ret_err) {
        for (;;) {
                /* pthread_mutex_timedlock takes CLOCK_REALTIME; translate
                 * the monotonic deadline (pthread_mutex_clocklock would
                 * avoid that, but sanitizers do not know it, and a
                 * wall-clock jump only shifts one wait). */
                int64_t left = deadline - tr__now_ns();
                if (left > LOCK_SLICE_MS * TR_NSEC_PER_MSEC)
                        left = LOCK_SLICE_MS * TR_NSEC_PER_MSEC;
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                int64_t abs_ns = (int64_t) now.tv_sec * TR_NSEC_PER_SEC + now.tv_nsec + (left > 0 ? left : 0);
                struct timespec ts = { .tv_sec = abs_ns / TR_NSEC_PER_SEC, .tv_nsec = abs_ns % TR_NSEC_PER_SEC };
                int r = pthread_mutex_timedlock(&m->lock, &ts);
                if (r == 0)
                        return 0;
                if (r != ETIMEDOUT)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "locking: %s", strerror(r));
                if (tr_call_ctx_cancelled(cc))
                        return tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, "mcp",
                                            "the call was cancelled while the MCP server was busy with another");
                if (tr__now_ns() >= deadline)
                        return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_NONE, "mcp",
                                            "the MCP server is busy with another call");
        }
}

static int ensure_alive(tr__mcp *m, const tr_call_ctx *cc, tr_error **ret_err) {
        if (m->alive)
                return 0;
        if (m->restarts >= MAX_RESTARTS)
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "mcp",
                                    "the MCP server is gone (restarted %d times)", m->restarts);
        if (tr_call_ctx_cancelled(cc))
                return tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, "mcp",
                                    "the call was cancelled before the MCP server was restarted");
        m->restarts++;
        tr__proc_kill(&m->proc);
        tr__mcp_log(m, TR_LOG_WARN, "restarting MCP server", NULL);
        int r = connect_server(m, cc, ret_err);
        /* A start cut short by a cancelled call says nothing about the
         * server: it does not use up a restart. */
        if (r < 0 && tr_call_ctx_cancelled(cc))
                m->restarts--;
        return r;
}

int tr__mcp_start(const char *const *argv, char *const *envp, int64_t start_ms, int64_t call_ms, tr_log_fn log,
                  void *log_ud, tr__mcp **ret, tr_error **ret_err) {
        tr__mcp *m = calloc(1, sizeof(*m));
        if (!m)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        m->proc = (tr__proc) TR__PROC_INIT;
        m->start_ms = start_ms > 0 ? start_ms : 10000;
        m->call_ms = call_ms > 0 ? call_ms : 30000;
        m->log = log;
        m->log_ud = log_ud;
        m->next_id = 1;
        pthread_mutex_init(&m->lock, NULL);
        for (size_t i = 0; argv && argv[i]; i++)
                if (tr__strv_push(&m->argv, argv[i]) < 0) {
                        tr__mcp_free(m);
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
                }
        for (size_t i = 0; envp && envp[i]; i++)
                if (tr__strv_push(&m->envp, envp[i]) < 0) {
                        tr__mcp_free(m);
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
                }
        if (!m->argv) {
                tr__mcp_free(m);
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "mcp", "empty command");
        }
        m->errlog = (tr__errlog){ .log = log, .log_ud = log_ud, .key = "server", .who = m->argv[0] };
        int r = connect_server(m, NULL, ret_err);
        if (r < 0) {
                tr__mcp_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

const char *tr__mcp_server_name(const tr__mcp *m) {
        return m->server_name;
}

int tr__mcp_list_tools(tr__mcp *m, const tr_call_ctx *cc, json_t **ret_tools, tr_error **ret_err) {
        int64_t deadline = tr__now_ns() + m->start_ms * TR_NSEC_PER_MSEC;
        int r = lock_until(m, cc, deadline, ret_err);
        if (r < 0)
                return r;
        json_t *all = json_array();
        char *cursor = NULL;
        r = ensure_alive(m, cc, ret_err);
        for (int page = 0; r == 0; page++) {
                if (page >= TR_MCP_MAX_PAGES) {
                        tr__mcp_log(m, TR_LOG_WARN, "MCP tools/list: too many pages, ignoring the rest", NULL);
                        break;
                }
                json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : NULL;
                json_t *res = NULL;
                r = request(m, cc, "tools/list", params, deadline, true, &res, ret_err);
                json_decref(params);
                free(cursor);
                cursor = NULL;
                if (r < 0)
                        break;
                json_t *tools = json_object_get(res, "tools");
                if (!json_is_array(tools)) {
                        r = tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "mcp.tools/list",
                                         "the tools/list result has no \"tools\" array");
                        json_decref(res);
                        break;
                }
                size_t i;
                json_t *t;
                json_array_foreach(tools, i, t) {
                        if (json_array_size(all) >= TR_MCP_MAX_TOOLS)
                                break;
                        json_array_append(all, t);
                }
                json_t *next = json_object_get(res, "nextCursor");
                if (json_is_string(next) && json_string_length(next) > 0 && json_string_length(next) < 4096 &&
                    json_array_size(all) < TR_MCP_MAX_TOOLS)
                        cursor = strdup(json_string_value(next));
                json_decref(res);
                if (!cursor)
                        break;
        }
        free(cursor);
        pthread_mutex_unlock(&m->lock);
        if (r < 0) {
                json_decref(all);
                return r;
        }
        *ret_tools = all;
        return 0;
}

int tr__mcp_call_tool(tr__mcp *m, const tr_call_ctx *cc, const char *name, json_t *args, json_t **ret_result,
                      tr_error **ret_err) {
        int64_t own = tr__now_ns() + m->call_ms * TR_NSEC_PER_MSEC;
        int64_t deadline = tr__call_ctx_clamp(cc, own);
        int r = lock_until(m, cc, deadline, ret_err);
        if (r < 0)
                return r;
        /* The stderr log's budget is per call. */
        tr__errlog_reset(&m->errlog);
        r = ensure_alive(m, cc, ret_err);
        json_t *res = NULL;
        if (r == 0) {
                json_t *params = json_pack("{s:s,s:O}", "name", name, "arguments", args);
                /* Only a call that used up the server's own budget proves it
                 * hangs; the calling execution's deadline proves nothing. */
                r = params ? request(m, cc, "tools/call", params, deadline, deadline >= own, &res, ret_err)
                           : tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
                json_decref(params);
                /* It answered: it works, so later failures get their restarts
                 * again (MAX_RESTARTS bounds a crash loop, not a lifetime). */
                if (r == 0)
                        m->restarts = 0;
        }
        pthread_mutex_unlock(&m->lock);
        if (r < 0)
                return r;
        r = tr__mcp_convert_result(res, ret_result, ret_err);
        json_decref(res);
        return r;
}

bool tr__mcp_take_list_changed(tr__mcp *m) {
        return atomic_exchange(&m->list_changed, false);
}

void tr__mcp_free(tr__mcp *m) {
        if (!m)
                return;
        if (m->proc.pid > 0) {
                /* The stdio shutdown the spec describes: close its input,
                 * give it a moment to exit, then kill the group. */
                if (m->proc.in_fd >= 0) {
                        close(m->proc.in_fd);
                        m->proc.in_fd = -1;
                }
                if (m->proc.pidfd >= 0) {
                        struct pollfd p = { .fd = m->proc.pidfd, .events = POLLIN };
                        poll(&p, 1, 200);
                }
        }
        tr__mcp_drain_stderr(m);
        tr__proc_kill(&m->proc);
        pthread_mutex_destroy(&m->lock);
        tr__strv_free(m->argv);
        tr__strv_free(m->envp);
        free(m->server_name);
        free(m->protocol_version);
        free(m->buf);
        free(m);
}
