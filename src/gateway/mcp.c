/* SPDX-License-Identifier: Apache-2.0 */
/* The MCP stdio client (mcp.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/callctx.h"
#include "gateway/mcp.h"
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
#define MAX_ERROR_TEXT  1024

struct tr__mcp {
        char **argv;
        char **envp;
        tr__errlog errlog;
        int64_t start_ms;
        int64_t call_ms;
        tr_log_fn log;
        void *log_ud;

        /* Serialises requests: one conversation at a time on the pipe. */
        pthread_mutex_t lock;
        tr__proc proc;
        bool alive;
        int restarts;
        json_int_t next_id;
        char *server_name;
        char *protocol_version;
        /* The server said notifications/tools/list_changed (seen while
         * waiting for a response: this client reads only then). */
        atomic_bool list_changed;

        /* Line buffer: unread data is buf[start, len); buf[start, scanned)
         * holds no newline. */
        char *buf;
        size_t start;
        size_t scanned;
        size_t len;
        size_t alloc;
};

static void mlog(tr__mcp *m, tr_log_level level, const char *msg, const char *detail) {
        if (!m->log)
                return;
        const char *kv[] = { "server", m->argv[0], "detail", detail ? detail : "", NULL };
        m->log(m->log_ud, level, msg, kv);
}

/* ---- parsing ---------------------------------------------------------------- */

tr__mcp_kind tr__mcp_classify(json_t *msg, tr__mcp_msg *ret) {
        *ret = (tr__mcp_msg){ .kind = TR__MCP_INVALID };
        if (!json_is_object(msg))
                return TR__MCP_INVALID;
        json_t *ver = json_object_get(msg, "jsonrpc");
        /* Lenient about a missing "jsonrpc" (some servers omit it), strict
         * about a wrong one. */
        if (ver && !(json_is_string(ver) && streq(json_string_value(ver), "2.0")))
                return TR__MCP_INVALID;
        json_t *id = json_object_get(msg, "id");
        json_t *method = json_object_get(msg, "method");
        json_t *result = json_object_get(msg, "result");
        json_t *error = json_object_get(msg, "error");
        json_t *params = json_object_get(msg, "params");
        if (id && !json_is_integer(id) && !json_is_string(id) && !json_is_null(id))
                return TR__MCP_INVALID;
        ret->id_json = id;
        if (json_is_integer(id)) {
                ret->id_is_int = true;
                ret->id = json_integer_value(id);
        }
        if (method) {
                if (!json_is_string(method) || result || error)
                        return TR__MCP_INVALID;
                if (params && !json_is_object(params) && !json_is_array(params))
                        return TR__MCP_INVALID;
                ret->method = json_string_value(method);
                ret->params = params;
                ret->kind = (id && !json_is_null(id)) ? TR__MCP_REQUEST : TR__MCP_NOTIFICATION;
                return ret->kind;
        }
        if (!id)
                return TR__MCP_INVALID;
        if (result && !error) {
                ret->result = result;
                ret->kind = TR__MCP_RESPONSE;
                return ret->kind;
        }
        if (error && !result && json_is_object(error)) {
                ret->error = error;
                ret->kind = TR__MCP_ERROR;
                return ret->kind;
        }
        return TR__MCP_INVALID;
}

/* The text items of an MCP content array joined by newlines; NULL when some
 * item is not text.  Bounded by `max` bytes (then cut, UTF-8-safe). */
static char *content_text(json_t *content, size_t max) {
        if (!json_is_array(content))
                return NULL;
        size_t total = 0;
        size_t i;
        json_t *c;
        json_array_foreach(content, i, c) {
                json_t *type = json_object_get(c, "type");
                json_t *text = json_object_get(c, "text");
                if (!json_is_string(type) || !streq(json_string_value(type), "text") || !json_is_string(text))
                        return NULL;
                total += json_string_length(text) + 1;
        }
        char *s = malloc(total + 1);
        if (!s)
                return NULL;
        size_t o = 0;
        json_array_foreach(content, i, c) {
                json_t *text = json_object_get(c, "text");
                if (i > 0)
                        s[o++] = '\n';
                memcpy(s + o, json_string_value(text), json_string_length(text));
                o += json_string_length(text);
        }
        s[o] = 0;
        if (o > max) {
                size_t n = max;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
                s[n] = 0;
        }
        return s;
}

int tr__mcp_convert_result(json_t *result, json_t **ret, tr_error **ret_err) {
        if (!json_is_object(result))
                return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "mcp.tools/call",
                                    "the server returned a result that is not an object");
        json_t *content = json_object_get(result, "content");
        json_t *structured = json_object_get(result, "structuredContent");
        json_t *is_error = json_object_get(result, "isError");
        if (json_is_true(is_error)) {
                _cleanup_free_ char *t = content_text(content, MAX_ERROR_TEXT);
                /* jansson strings are valid UTF-8 but may hold control
                 * characters; the message is shown to people. */
                _cleanup_free_ char *clean = tr__text_sanitize(t ? t : "(no text)", MAX_ERROR_TEXT);
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "mcp.tools/call", "%s",
                                    clean ? clean : "the tool reported an error");
        }
        if (structured && !json_is_null(structured)) {
                *ret = json_incref(structured);
                return 0;
        }
        if (content && !json_is_array(content))
                return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "mcp.tools/call",
                                    "\"content\" is not an array");
        if (!content) {
                *ret = json_null();
                return 0;
        }
        _cleanup_free_ char *t = content_text(content, SIZE_MAX / 2);
        if (t) {
                json_t *s = json_string(t);
                if (!s)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp.tools/call", "out of memory");
                *ret = s;
                return 0;
        }
        *ret = json_incref(content);
        return 0;
}

int tr__split_command(const char *line, char ***ret_argv, tr_error **ret_err) {
        _cleanup_strv_ char **argv = NULL;
        size_t n = strlen(line ? line : "");
        _cleanup_free_ char *word = malloc(n + 1);
        if (!word)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        size_t w = 0;
        bool in_word = false;
        char quote = 0;
        for (size_t i = 0; i < n; i++) {
                char c = line[i];
                if (quote == '\'') {
                        if (c == '\'')
                                quote = 0;
                        else
                                word[w++] = c;
                        continue;
                }
                if (c == '\\') {
                        if (i + 1 >= n)
                                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "mcp",
                                                    "trailing backslash in the command line");
                        word[w++] = line[++i];
                        in_word = true;
                        continue;
                }
                if (quote == '"') {
                        if (c == '"')
                                quote = 0;
                        else
                                word[w++] = c;
                        continue;
                }
                if (c == '\'' || c == '"') {
                        quote = c;
                        in_word = true;
                        continue;
                }
                if (c == ' ' || c == '\t' || c == '\n') {
                        if (in_word) {
                                word[w] = 0;
                                if (tr__strv_push(&argv, word) < 0)
                                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp",
                                                            "out of memory");
                                w = 0;
                                in_word = false;
                        }
                        continue;
                }
                word[w++] = c;
                in_word = true;
        }
        if (quote)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "mcp",
                                    "unterminated quote in the command line");
        if (in_word) {
                word[w] = 0;
                if (tr__strv_push(&argv, word) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        }
        if (!argv || !argv[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "mcp", "empty command line");
        *ret_argv = TAKE_PTR(argv);
        return 0;
}

/* ---- transport ------------------------------------------------------------ */

/* Log what the server wrote on stderr so far; its pipe must not fill up
 * (the server would block), so every wait on the server drains it. */
static void drain_stderr(tr__mcp *m) {
        if (m->proc.err_fd >= 0 && tr__errlog_drain(&m->errlog, m->proc.err_fd)) {
                close(m->proc.err_fd);
                m->proc.err_fd = -1;
        }
}

/* The stderr entry of a poll set: a negative fd, which poll skips, once
 * stderr is closed. */
static struct pollfd stderr_pollfd(const tr__mcp *m) {
        return (struct pollfd){ .fd = m->proc.err_fd, .events = POLLIN };
}

static void kill_server(tr__mcp *m) {
        drain_stderr(m);
        tr__proc_kill(&m->proc);
        m->alive = false;
        m->start = m->scanned = m->len = 0;
}

static bool fired(const struct pollfd *p, int n) {
        for (int i = 0; i < n; i++)
                if (p[i].revents)
                        return true;
        return false;
}

/* Write one message and its newline before the deadline; also give up when
 * the tool call `cc` (NULL: none) is cancelled (callctx.h).
 * Half a message would corrupt the stream, so a write cut short kills the
 * server. */
static int send_msg(tr__mcp *m, json_t *msg, int64_t deadline, const tr_call_ctx *cc, tr_error **ret_err) {
        static const char op[] = "mcp.send";
        if (!m->alive)
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op, "the MCP server is gone");
        size_t n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
        _cleanup_free_ char *s = n ? malloc(n + 1) : NULL;
        if (!s || json_dumpb(msg, s, n, JSON_COMPACT) != n)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        /* Compact JSON escapes newlines inside strings, so the message is
         * one line as the stdio transport requires. */
        s[n++] = '\n';
        size_t off = 0;
        while (off < n) {
                ssize_t w = tr__write_nosigpipe(m->proc.in_fd, s + off, n - off);
                if (w > 0) {
                        off += (size_t) w;
                        continue;
                }
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno != EAGAIN) {
                        kill_server(m);
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op,
                                            "the MCP server closed its input: %m");
                }
                struct pollfd p[2 + TR__CALL_MAX_CANCEL_FDS] = { { .fd = m->proc.in_fd, .events = POLLOUT } };
                int nc = tr__call_ctx_pollfds(cc, p + 1);
                p[1 + nc] = stderr_pollfd(m);
                int tmo = tr__poll_timeout_ms(deadline);
                int pr = tmo == 0 ? 0 : poll(p, (nfds_t) (2 + nc), tmo);
                if (pr < 0)
                        continue; /* EINTR */
                if (pr > 0 && p[1 + nc].revents) {
                        drain_stderr(m);
                        if (!p[0].revents && !fired(p + 1, nc))
                                continue;
                }
                if (pr > 0 && fired(p + 1, nc)) {
                        if (off > 0)
                                kill_server(m);
                        return tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, op,
                                            "the call was cancelled: the calling execution is ending");
                }
                if (pr == 0) {
                        if (off > 0)
                                kill_server(m);
                        return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_NONE, op,
                                            "the MCP server does not read its input");
                }
        }
        return 0;
}

/* Read the next line (without its newline): *ret_line points into m->buf
 * and stays valid until consume_line() or the next read_line().  Gives up
 * at the deadline (TR_E_TIMEOUT) or when the tool call `cc` is
 * cancelled (TR_E_CANCELLED); the server stays alive in both cases. */
static int read_line(tr__mcp *m, int64_t deadline, const tr_call_ctx *cc, const char **ret_line, size_t *ret_len,
                     tr_error **ret_err) {
        static const char op[] = "mcp.read";
        for (;;) {
                /* Bytes before m->scanned hold no newline: look at the new
                 * ones only, so a long line costs linear time, not
                 * quadratic. */
                char *nl = m->len > m->scanned ? memchr(m->buf + m->scanned, '\n', m->len - m->scanned) : NULL;
                if (nl) {
                        *ret_line = m->buf + m->start;
                        *ret_len = (size_t) (nl - (m->buf + m->start));
                        return 0;
                }
                m->scanned = m->len;
                if (m->len - m->start >= TR_MCP_MAX_LINE) {
                        kill_server(m);
                        return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, op,
                                            "the MCP server sent a line over %d bytes", TR_MCP_MAX_LINE);
                }
                if (!m->alive) /* killed while answering a request of its own */
                        return tr_call_ctx_cancelled(cc)
                                       ? tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, op,
                                                      "the call was cancelled: the calling execution is ending")
                                       : tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op,
                                                      "the MCP server is gone");
                /* Move the partial line to the front (at most once per read). */
                if (m->start > 0) {
                        memmove(m->buf, m->buf + m->start, m->len - m->start);
                        m->len -= m->start;
                        m->scanned -= m->start;
                        m->start = 0;
                }
                if (m->alloc - m->len < 4096) {
                        size_t na = m->alloc ? m->alloc * 2 : 16384;
                        if (na > TR_MCP_MAX_LINE + 1)
                                na = TR_MCP_MAX_LINE + 1;
                        char *nb = realloc(m->buf, na);
                        if (!nb)
                                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
                        m->buf = nb;
                        m->alloc = na;
                }
                ssize_t k = read(m->proc.out_fd, m->buf + m->len, m->alloc - m->len);
                if (k > 0) {
                        m->len += (size_t) k;
                        continue;
                }
                if (k == 0) {
                        kill_server(m);
                        mlog(m, TR_LOG_WARN, "MCP server exited", NULL);
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op, "the MCP server exited");
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN) {
                        kill_server(m);
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op,
                                            "reading from the MCP server: %m");
                }
                struct pollfd p[2 + TR__CALL_MAX_CANCEL_FDS] = { { .fd = m->proc.out_fd, .events = POLLIN } };
                int nc = tr__call_ctx_pollfds(cc, p + 1);
                p[1 + nc] = stderr_pollfd(m);
                int tmo = tr__poll_timeout_ms(deadline);
                int pr = tmo == 0 ? 0 : poll(p, (nfds_t) (2 + nc), tmo);
                if (pr > 0 && p[1 + nc].revents) {
                        drain_stderr(m);
                        if (!p[0].revents && !fired(p + 1, nc))
                                continue;
                }
                if (pr > 0 && fired(p + 1, nc))
                        return tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, op,
                                            "the call was cancelled: the calling execution is ending");
                if (pr == 0)
                        return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_NONE, op,
                                            "the MCP server did not answer in time");
        }
}

static void consume_line(tr__mcp *m, size_t line_len) {
        m->start += line_len + 1;
        if (m->start >= m->len)
                m->start = m->len = 0;
        m->scanned = m->start;
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
                send_msg(m, reply, deadline, cc, NULL);
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
                kill_server(m);
                mlog(m, TR_LOG_WARN, "MCP server killed: it did not answer a request in time", NULL);
                return;
        }
        if (!sent)
                return;
        json_t *p = json_pack("{s:I,s:s}", "requestId", (json_int_t) id, "reason",
                              why == TR_E_TIMEOUT ? "timeout" : "cancelled");
        json_t *cn = p ? rpc("notifications/cancelled", p, -1) : NULL;
        if (cn)
                send_msg(m, cn, tr__now_ns() + 100 * TR_NSEC_PER_MSEC, NULL, NULL);
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
        int r = send_msg(m, msg, deadline, cc, &err);
        json_decref(msg);
        if (r < 0) {
                abandon(m, id, err ? tr_error_code(err) : TR_E_INTERNAL, false, kill_on_timeout);
                return pass_error(err, r, ret_err);
        }

        unsigned garbage = 0, seen = 0;
        for (;;) {
                const char *line = NULL;
                size_t ll = 0;
                r = read_line(m, deadline, cc, &line, &ll, &err);
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
                consume_line(m, ll);
                if (got) {
                        tr__mcp_msg rm;
                        tr__mcp_classify(reply, &rm);
                        if (rm.kind == TR__MCP_ERROR) {
                                json_t *em = json_object_get(rm.error, "message");
                                _cleanup_free_ char *clean = tr__text_sanitize(
                                        json_is_string(em) ? json_string_value(em) : "unknown error", MAX_ERROR_TEXT);
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
                        kill_server(m);
                        mlog(m, TR_LOG_WARN, "MCP server killed: it writes garbage", NULL);
                        return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, op,
                                            "the MCP server writes too many invalid messages");
                }
        }
}

static int notify(tr__mcp *m, const tr_call_ctx *cc, const char *method, int64_t deadline, tr_error **ret_err) {
        json_t *msg = rpc(method, NULL, -1);
        if (!msg)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        int r = send_msg(m, msg, deadline, cc, ret_err);
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
                kill_server(m);
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
                kill_server(m);
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
                kill_server(m);
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
        mlog(m, TR_LOG_WARN, "restarting MCP server", NULL);
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
                        mlog(m, TR_LOG_WARN, "MCP tools/list: too many pages, ignoring the rest", NULL);
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
        drain_stderr(m);
        tr__proc_kill(&m->proc);
        pthread_mutex_destroy(&m->lock);
        tr__strv_free(m->argv);
        tr__strv_free(m->envp);
        free(m->server_name);
        free(m->protocol_version);
        free(m->buf);
        free(m);
}
