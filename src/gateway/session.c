/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-execution gateway server (session.h).
 *
 * One thread per connection (an inherited socketpair end, a relay fd, or an
 * accepted unix connection) plus one listener thread per unix socket.  Every
 * thread polls its fd together with the read end of a "stop pipe"; freeing
 * the session writes one byte into the pipe, which stays readable forever, so
 * every thread wakes, and then joins them.  Nothing here trusts the peer:
 * frames are capped (frame.h), malformed messages get an error reply, writes
 * never block past the session's end, and the number of connections is
 * bounded.
 *
 * Limits are enforced here, on the host, per execution: every run_tool and
 * every step of a run_chain is one tool call; every step of a run_chain is
 * also one chain step.  run_chain is executed step by step through
 * tr_gateway_run_tool (with the chain semantics of protocol.h) rather than
 * through the gateway's own run_chain, so that each step is counted, checked
 * against the limits and recorded with its own duration and outcome.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gateway/callctx.h"
#include "gateway/frame.h"
#include "gateway/protocol.h"
#include "gateway/session.h"
#include "util/macros.h"
#include "util/timeutil.h"

/* Concurrent connections per session: the SDK opens one per process, so a
 * snippet with a few subprocesses fits; a fork bomb of clients does not get a
 * thread each. */
#define MAX_CONNS 16
/* Read granularity; frames larger than this arrive over several reads. */
#define READ_CHUNK (64 * 1024)
/* Results larger than this cannot fit in a reply frame with its envelope. */
#define MAX_RESULT (TR_FRAME_MAX - 4096)
/* Tool-call records kept per execution.  Every call is recorded up to this
 * many; past it (a snippet hammering the gateway, possibly with calls the
 * limits refuse) records stop, so that the host's memory stays bounded. */
#define MAX_RECORDS 10000

typedef struct conn {
        tr__gw_session *s;
        int fd;
        bool is_socket;
        bool started;
        pthread_t thread;
        atomic_bool done;
        struct conn *next;
} conn;

struct tr__gw_session {
        tr_exec *ex;
        tr_gateway *gw;
        int64_t max_tool_calls;  /* 0: unlimited */
        int64_t max_chain_steps; /* 0: unlimited */

        /* Guards the counters, the connection list and the writes into the
         * execution's result, which several server threads share. */
        pthread_mutex_t lock;
        int64_t tool_calls;
        int64_t chain_steps;
        size_t n_records;
        conn *conns;
        size_t n_live;

        int stop_rd;
        int stop_wr;
        bool stopping;

        int listen_fd;
        bool listening;
        pthread_t listen_thread;
        char *sock_path;
};

/* ---- threads ------------------------------------------------------------ */

/* Server threads block every signal: the embedding program's handlers must
 * run on its own threads, and a peer that hangs up mid-write must give us
 * EPIPE, not a process-killing SIGPIPE. */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int r = pthread_create(t, NULL, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return -r;
}

/* Write all of `data`, waiting for room with poll() so that a peer that
 * never reads cannot keep this thread past the session's end. */
static int send_all(conn *c, const uint8_t *data, size_t len) {
        while (len > 0) {
                ssize_t n = c->is_socket ? send(c->fd, data, len, MSG_NOSIGNAL) : write(c->fd, data, len);
                if (n > 0) {
                        data += n;
                        len -= (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                        return -errno;
                struct pollfd p[2] = { { .fd = c->fd, .events = POLLOUT }, { .fd = c->s->stop_rd, .events = POLLIN } };
                int pr = poll(p, 2, -1);
                if (pr < 0 && errno != EINTR)
                        return -errno;
                if (p[1].revents)
                        return -ECANCELED;
                if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
                        return -EPIPE;
        }
        return 0;
}

static int send_frame(conn *c, uint8_t *frame, size_t len) {
        int r = send_all(c, frame, len);
        free(frame);
        return r;
}

static int send_error(conn *c, json_t *id, const char *code, const char *message) {
        uint8_t *f = NULL;
        size_t n = 0;
        int r = tr__gw_encode_error(id, code, message, &f, &n);
        if (r < 0)
                return r;
        return send_frame(c, f, n);
}

static int send_error_err(conn *c, json_t *id, const tr_error *err) {
        if (!err)
                return send_error(c, id, tr_code_name(TR_E_INTERNAL), "unknown failure");
        return send_error(c, id, tr_error_code_name(err), tr_error_message(err));
}

/* ---- records and limits -------------------------------------------------- */

static void record_call(tr__gw_session *s, const char *tool_id, int64_t dur_us, const char *op, const char *code) {
        /* A record must never fail the call it describes: errors adding it
         * (out of memory) are dropped. */
        pthread_mutex_lock(&s->lock);
        bool keep = s->n_records < MAX_RECORDS;
        if (keep) {
                s->n_records++;
                /* Under the lock: the request's callback sees one call at
                 * a time, in the order they are recorded. */
                tr_exec_record_tool_call(s->ex, tool_id, dur_us, op, code);
        }
        bool first_dropped = !keep && s->n_records++ == MAX_RECORDS;
        pthread_mutex_unlock(&s->lock);
        if (first_dropped)
                tr_exec_log(s->ex, TR_LOG_WARN, "gateway: too many tool calls, later ones are not recorded", NULL);
}

/* Reserve `n` tool calls, of which `steps` are chain steps.  Fails (without
 * reserving anything) when either limit would be passed. */
static int reserve(tr__gw_session *s, int64_t n, int64_t steps, tr_error **ret_err) {
        int r = 0;
        pthread_mutex_lock(&s->lock);
        if (s->max_tool_calls > 0 && s->tool_calls + n > s->max_tool_calls)
                r = tr_error_set(ret_err, TR_E_TOOL_LIMIT, TR_BACKEND_NONE, "limits",
                                 "tool call limit reached: %lld of %lld used, %lld more requested",
                                 (long long) s->tool_calls, (long long) s->max_tool_calls, (long long) n);
        else if (steps > 0 && s->max_chain_steps > 0 && s->chain_steps + steps > s->max_chain_steps)
                r = tr_error_set(ret_err, TR_E_TOOL_LIMIT, TR_BACKEND_NONE, "limits",
                                 "chain step limit reached: %lld of %lld used, %lld more requested",
                                 (long long) s->chain_steps, (long long) s->max_chain_steps, (long long) steps);
        else {
                s->tool_calls += n;
                s->chain_steps += steps;
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

static void unreserve(tr__gw_session *s, int64_t n, int64_t steps) {
        pthread_mutex_lock(&s->lock);
        s->tool_calls -= n;
        s->chain_steps -= steps;
        pthread_mutex_unlock(&s->lock);
}

/* ---- operations ------------------------------------------------------------ */

/* Parse what a gateway returned.  Gateways are host code, but embedders' and
 * MCP-derived results still get checked: a reply must be valid JSON within
 * the frame cap. */
static int parse_result(char *text, const char *op, json_t **ret, tr_error **ret_err) {
        if (!text)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "the gateway returned no result");
        if (strlen(text) > MAX_RESULT)
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op,
                                    "the result exceeds the %d-byte message cap", MAX_RESULT);
        json_error_t jerr;
        json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
        if (!j)
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op,
                                    "the gateway returned invalid JSON: %s", jerr.text);
        *ret = j;
        return 0;
}

static const char *str_arg(json_t *payload, const char *key, const char *dflt, bool *ok) {
        json_t *v = json_object_get(payload, key);
        if (!v || json_is_null(v))
                return dflt;
        if (!json_is_string(v)) {
                *ok = false;
                return NULL;
        }
        return json_string_value(v);
}

static int int_arg(json_t *payload, const char *key, int dflt, int max, bool *ok) {
        json_t *v = json_object_get(payload, key);
        if (!v || json_is_null(v))
                return dflt;
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
                *ok = false;
                return 0;
        }
        json_int_t i = json_integer_value(v);
        return i > max ? max : (int) i;
}

/* One tool invocation, counted and recorded by the caller's policy. */
static int invoke_tool(tr__gw_session *s, const char *id, json_t *args, json_t **ret, tr_error **ret_err) {
        _cleanup_free_ char *args_text = json_dumps(args, JSON_COMPACT);
        if (!args_text)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "run_tool", "out of memory");
        _cleanup_free_ char *out = NULL;
        /* Tools stop at the execution's deadline and are abandoned (their
         * processes killed) once the session stops or the execution is
         * cancelled, so that ending the session never waits on a tool
         * (callctx.h). */
        tr_call_ctx cc;
        tr__call_ctx_init_exec(&cc, s->ex, s->stop_rd);
        int r = tr_call_ctx_cancelled(&cc) ? tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, "run_tool",
                                                          "the execution is ending; %s not started", id)
                                           : tr_gateway_run_tool(s->gw, &cc, id, args_text, &out, ret_err);
        if (r < 0) {
                if (ret_err && !*ret_err)
                        tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "run_tool", "tool %s failed", id);
                return r;
        }
        return parse_result(out, "run_tool", ret, ret_err);
}

static const char *err_op(const tr_error *e, const char *dflt) {
        const char *op = e ? tr_error_op(e) : NULL;
        return op && *op ? op : dflt;
}

static const char *err_code(const tr_error *e) {
        return e ? tr_error_code_name(e) : tr_code_name(TR_E_INTERNAL);
}

static int op_run_tool(tr__gw_session *s, json_t *payload, json_t **ret, tr_error **ret_err) {
        json_t *idj = json_object_get(payload, "id");
        json_t *args = json_object_get(payload, "args");
        if (!json_is_string(idj) || json_string_length(idj) == 0 || json_string_length(idj) > TR_GW_MAX_TOOL_ID_LEN)
                return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_tool",
                                    "\"id\" must be a tool id of at most %d bytes", TR_GW_MAX_TOOL_ID_LEN);
        if (args && !json_is_object(args) && !json_is_null(args))
                return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_tool",
                                    "\"args\" must be a JSON object");
        const char *id = json_string_value(idj);
        tr_error *err = NULL;
        int r = reserve(s, 1, 0, &err);
        if (r < 0) {
                record_call(s, id, 0, "run_tool", err_code(err));
                *ret_err = err;
                return r;
        }
        json_t *empty = json_is_object(args) ? NULL : json_object();
        int64_t t0 = tr__now_ns();
        r = invoke_tool(s, id, empty ? empty : args, ret, &err);
        int64_t dur = (tr__now_ns() - t0) / 1000;
        json_decref(empty);
        if (r < 0) {
                record_call(s, id, dur, err_op(err, "run_tool"), err_code(err));
                *ret_err = err;
                return r;
        }
        record_call(s, id, dur, NULL, NULL);
        return 0;
}

static int op_run_chain(tr__gw_session *s, json_t *payload, json_t **ret, tr_error **ret_err) {
        _cleanup_free_ tr__gw_chain_step *steps = NULL;
        size_t n = 0;
        int r = tr__gw_chain_parse(json_object_get(payload, "steps"), &steps, &n, ret_err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (strlen(steps[i].tool_id) > TR_GW_MAX_TOOL_ID_LEN)
                        return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                            "step %zu: tool id too long", i);
        /* Reserve the whole chain up front: a chain that cannot finish
         * within the limits does not start, instead of stopping half-way
         * with side effects done. */
        tr_error *err = NULL;
        r = reserve(s, (int64_t) n, (int64_t) n, &err);
        if (r < 0) {
                record_call(s, steps[0].tool_id, 0, "run_chain", err_code(err));
                *ret_err = err;
                return r;
        }
        json_t *prev = NULL;
        for (size_t i = 0; i < n; i++) {
                json_t *args = tr__gw_chain_step_args(&steps[i], prev);
                if (!args) {
                        r = tr_error_set(&err, TR_E_INTERNAL, TR_BACKEND_NONE, "run_chain", "out of memory");
                        json_decref(prev);
                        unreserve(s, (int64_t) (n - i), (int64_t) (n - i));
                        *ret_err = err;
                        return r;
                }
                json_t *res = NULL;
                int64_t t0 = tr__now_ns();
                r = invoke_tool(s, steps[i].tool_id, args, &res, &err);
                int64_t dur = (tr__now_ns() - t0) / 1000;
                json_decref(args);
                if (r < 0) {
                        record_call(s, steps[i].tool_id, dur, err_op(err, "run_chain"), err_code(err));
                        if (err)
                                tr_error_prefix(err, "chain step %zu (%s)", i, steps[i].tool_id);
                        json_decref(prev);
                        /* Steps that never ran give their budget back. */
                        unreserve(s, (int64_t) (n - i - 1), (int64_t) (n - i - 1));
                        *ret_err = err;
                        return r;
                }
                record_call(s, steps[i].tool_id, dur, NULL, NULL);
                json_decref(prev);
                prev = res;
        }
        *ret = prev;
        return 0;
}

static int empty_array(json_t **ret, tr_error **ret_err) {
        *ret = json_array();
        return *ret ? 0 : tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway", "out of memory");
}

static int dispatch(tr__gw_session *s, const tr__gw_msg *m, json_t **ret, tr_error **ret_err) {
        bool ok = true;
        _cleanup_free_ char *out = NULL;
        int r;
        const char *op = tr__gw_msg_type_name(m->type);
        tr_call_ctx cc;
        tr__call_ctx_init_exec(&cc, s->ex, s->stop_rd);

        if (!s->gw && (m->type == TR__GW_RUN_TOOL || m->type == TR__GW_RUN_CHAIN))
                return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, op, "no tool gateway configured");

        switch (m->type) {
        case TR__GW_SEARCH_TOOLS: {
                const char *q = str_arg(m->payload, "query", "", &ok);
                int limit = int_arg(m->payload, "limit", 0, 1000, &ok);
                if (!ok)
                        goto bad_args;
                if (!s->gw)
                        return empty_array(ret, ret_err);
                r = tr_gateway_search_tools(s->gw, &cc, q, limit, &out, ret_err);
                break;
        }
        case TR__GW_LIST_NAMESPACES:
                if (!s->gw)
                        return empty_array(ret, ret_err);
                r = tr_gateway_list_namespaces(s->gw, &cc, &out, ret_err);
                break;
        case TR__GW_DESCRIBE_TOOL: {
                const char *id = str_arg(m->payload, "id", NULL, &ok);
                const char *detail = str_arg(m->payload, "detail", "summary", &ok);
                tr_detail_level level = TR_DETAIL_SUMMARY;
                if (!ok || !id || tr_detail_level_from_name(detail, &level) < 0)
                        goto bad_args;
                if (!s->gw)
                        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, op, "no such tool");
                r = tr_gateway_describe_tool(s->gw, &cc, id, level, &out, ret_err);
                break;
        }
        case TR__GW_LIST_TOOL_EXAMPLES: {
                const char *id = str_arg(m->payload, "id", NULL, &ok);
                int max = int_arg(m->payload, "max", 0, 1000, &ok);
                if (!ok || !id)
                        goto bad_args;
                if (!s->gw)
                        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, op, "no such tool");
                r = tr_gateway_list_tool_examples(s->gw, &cc, id, max, &out, ret_err);
                break;
        }
        case TR__GW_RUN_TOOL: return op_run_tool(s, m->payload, ret, ret_err);
        case TR__GW_RUN_CHAIN: return op_run_chain(s, m->payload, ret, ret_err);
        case TR__GW_GET_BINDINGS: {
                /* Not a tool call: generating source costs the host a
                 * bounded amount (bindings.c caps it) and runs nothing. */
                const char *mod = str_arg(m->payload, "module", NULL, &ok);
                if (!ok || !mod)
                        goto bad_args;
                if (!s->gw)
                        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, op,
                                            "no tool gateway configured");
                _cleanup_free_ char *ns = NULL;
                r = tr_gateway_python_bindings(s->gw, mod, TR_BINDINGS_MODULE, &out, &ns, ret_err);
                if (r < 0)
                        return r;
                json_t *o = json_pack("{s:s, s:s, s:s}", "module", mod, "namespace", ns, "source", out);
                if (!o)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
                *ret = o;
                return 0;
        }
        default:
                /* The host never asked anything, so a reply from the sandbox
                 * is out of order. */
                return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "dispatch",
                                    "unexpected message type \"%s\" from the sandbox", op);
        }
        if (r < 0) {
                if (ret_err && !*ret_err)
                        tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "the gateway failed");
                return r;
        }
        return parse_result(out, op, ret, ret_err);

bad_args:
        return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, op,
                            "invalid payload for %s (see docs/gateway-protocol.md)", op);
}

/* Handle one frame.  Returns < 0 when the connection must close. */
static int handle_frame(conn *c, const uint8_t *data, size_t len) {
        tr__gw_msg m = { 0 };
        json_t *bad_id = NULL;
        tr_error *err = NULL;
        int r = tr__gw_msg_decode(data, len, &m, &bad_id, &err);
        if (r < 0) {
                r = send_error_err(c, bad_id, err);
                json_decref(bad_id);
                tr_error_free(err);
                return r;
        }
        json_t *result = NULL;
        r = dispatch(c->s, &m, &result, &err);
        if (r < 0) {
                r = send_error_err(c, m.id, err);
                tr_error_free(err);
        } else {
                uint8_t *f = NULL;
                size_t n = 0;
                r = tr__gw_encode(TR__GW_RESPONSE, m.id, result, &f, &n);
                if (r == -EMSGSIZE)
                        r = send_error(c, m.id, tr_code_name(TR_E_TOOL_FAILED),
                                       "the reply exceeds the message size cap");
                else if (r == 0)
                        r = send_frame(c, f, n);
                json_decref(result);
        }
        tr__gw_msg_done(&m);
        return r;
}

static void *conn_main(void *arg) {
        conn *c = arg;
        tr__frame_reader rd;
        tr__frame_reader_init(&rd, TR_FRAME_MAX);

        for (;;) {
                struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = c->s->stop_rd, .events = POLLIN } };
                int pr = poll(p, 2, -1);
                if (pr < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents)
                        break;
                if (p[0].revents & POLLNVAL)
                        break;
                size_t avail = 0;
                uint8_t *space = tr__frame_reader_space(&rd, READ_CHUNK, &avail);
                if (!space || avail == 0)
                        break;
                ssize_t n = read(c->fd, space, avail);
                if (n == 0)
                        break;
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                                continue;
                        break;
                }
                tr__frame_reader_commit(&rd, (size_t) n);

                bool close_conn = false;
                for (;;) {
                        const uint8_t *payload = NULL;
                        size_t plen = 0;
                        int fr = tr__frame_reader_next(&rd, &payload, &plen);
                        if (fr == 0)
                                break;
                        if (fr < 0) {
                                /* After an oversized header the stream cannot
                                 * be resynchronised: say why, then hang up. */
                                send_error(c, NULL, tr_code_name(TR_E_PROTOCOL),
                                           "frame exceeds the 1 MiB message cap; closing the connection");
                                tr_exec_log(c->s->ex, TR_LOG_WARN, "gateway: oversized frame from the sandbox", NULL);
                                close_conn = true;
                                break;
                        }
                        if (handle_frame(c, payload, plen) < 0) {
                                close_conn = true;
                                break;
                        }
                }
                if (close_conn)
                        break;
        }
        tr__frame_reader_done(&rd);
        close(c->fd);
        c->fd = -1;
        atomic_store(&c->done, true);
        return NULL;
}

/* Join connections whose thread has finished.  Called with s->lock held. */
static void reap_locked(tr__gw_session *s) {
        conn **pp = &s->conns;
        while (*pp) {
                conn *c = *pp;
                if (atomic_load(&c->done)) {
                        pthread_join(c->thread, NULL);
                        *pp = c->next;
                        s->n_live--;
                        free(c);
                } else
                        pp = &c->next;
        }
}

static int add_conn(tr__gw_session *s, int fd, tr_error **ret_err) {
        _cleanup_close_ int cfd = fd;
        struct stat st;
        if (fstat(cfd, &st) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve", "bad fd: %m");
        /* Non-blocking so that reads and writes always come back to poll(),
         * which also watches the stop pipe. */
        int fl = fcntl(cfd, F_GETFL);
        if (fl < 0 || fcntl(cfd, F_SETFL, fl | O_NONBLOCK) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve", "fcntl: %m");
        (void) fcntl(cfd, F_SETFD, FD_CLOEXEC);

        pthread_mutex_lock(&s->lock);
        reap_locked(s);
        if (s->stopping || s->n_live >= MAX_CONNS) {
                bool stopping = s->stopping;
                pthread_mutex_unlock(&s->lock);
                return tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, TR_BACKEND_NONE, "gateway.serve",
                                    stopping ? "the session is stopping" : "too many gateway connections (max %d)",
                                    MAX_CONNS);
        }
        conn *c = calloc(1, sizeof(*c));
        if (!c) {
                pthread_mutex_unlock(&s->lock);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve", "out of memory");
        }
        c->s = s;
        c->fd = TAKE_FD(cfd);
        c->is_socket = S_ISSOCK(st.st_mode);
        atomic_init(&c->done, false);
        int r = start_thread(&c->thread, conn_main, c);
        if (r < 0) {
                pthread_mutex_unlock(&s->lock);
                close(c->fd);
                free(c);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve",
                                    "cannot start a server thread: %s", strerror(-r));
        }
        c->next = s->conns;
        s->conns = c;
        s->n_live++;
        pthread_mutex_unlock(&s->lock);
        return 0;
}

static void *listen_main(void *arg) {
        tr__gw_session *s = arg;
        for (;;) {
                struct pollfd p[2] = { { .fd = s->listen_fd, .events = POLLIN },
                                       { .fd = s->stop_rd, .events = POLLIN } };
                int pr = poll(p, 2, -1);
                if (pr < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents || (p[0].revents & POLLNVAL))
                        break;
                int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
                                continue;
                        /* EMFILE and friends: back off instead of spinning. */
                        poll(&p[1], 1, 100);
                        continue;
                }
                tr_error *err = NULL;
                if (add_conn(s, fd, &err) < 0) {
                        tr_exec_log(s->ex, TR_LOG_WARN, "gateway: connection refused", "reason", tr_error_message(err),
                                    NULL);
                        tr_error_free(err);
                }
        }
        return NULL;
}

/* ---- public (library-internal) API ---------------------------------------- */

int tr__gw_session_new(tr_exec *ex, tr__gw_session **ret_session, tr_error **ret_err) {
        if (!ex || !ret_session)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.session", "invalid argument");
        tr__gw_session *s = calloc(1, sizeof(*s));
        if (!s)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.session", "out of memory");
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
                int r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.session", "pipe2: %m");
                free(s);
                return r;
        }
        pthread_mutex_init(&s->lock, NULL);
        s->stop_rd = pfd[0];
        s->stop_wr = pfd[1];
        s->listen_fd = -1;
        s->ex = ex;
        const tr_request *req = tr_exec_request(ex);
        s->gw = req ? tr_request_gateway(req) : NULL;
        const tr_limits *lim = req ? tr_exec_limits(ex) : NULL;
        if (lim) {
                s->max_tool_calls = lim->max_tool_calls > 0 ? lim->max_tool_calls : 0;
                s->max_chain_steps = lim->max_chain_steps > 0 ? lim->max_chain_steps : 0;
        }
        *ret_session = s;
        return 0;
}

int tr__gw_session_serve_fd(tr__gw_session *s, int fd, tr_error **ret_err) {
        if (!s || fd < 0) {
                if (fd >= 0)
                        close(fd);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.serve", "invalid argument");
        }
        return add_conn(s, fd, ret_err);
}

int tr__gw_session_listen_unix(tr__gw_session *s, const char *path, tr_error **ret_err) {
        if (!s || !path)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen", "invalid argument");
        if (s->listening)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen",
                                    "the session already listens on %s", s->sock_path);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen",
                                    "socket path too long: %s", path);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen", "socket: %m");
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen", "bind %s: %m", path);
        _cleanup_free_ char *p = strdup(path);
        /* The sandbox user is not the host user: the socket itself is open
         * to everyone who can reach it, and reaching it is what the private
         * directory (and the bind mount of that directory alone) controls. */
        if (!p || chmod(path, 0666) < 0 || listen(fd, MAX_CONNS) < 0) {
                int r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen", "listen %s: %m", path);
                unlink(path);
                return r;
        }
        s->listen_fd = TAKE_FD(fd);
        int r = start_thread(&s->listen_thread, listen_main, s);
        if (r < 0) {
                close(s->listen_fd);
                s->listen_fd = -1;
                unlink(path);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.listen",
                                    "cannot start the listener thread: %s", strerror(-r));
        }
        s->sock_path = TAKE_PTR(p);
        s->listening = true;
        return 0;
}

void tr__gw_session_free(tr__gw_session *s) {
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_mutex_unlock(&s->lock);
        /* One byte makes the pipe readable for good: every poll() wakes. */
        ssize_t w;
        do
                w = write(s->stop_wr, "x", 1);
        while (w < 0 && errno == EINTR);
        if (s->listening)
                pthread_join(s->listen_thread, NULL);
        /* The listener is gone, so the list only shrinks now.  A thread in
         * the middle of a tool call sees the pipe there too: manifest tools
         * are killed and MCP requests abandoned at once (callctx.h); only
         * an embedder's callback runs to its end. */
        conn *c = s->conns;
        while (c) {
                conn *next = c->next;
                pthread_join(c->thread, NULL);
                free(c);
                c = next;
        }
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        if (s->sock_path)
                unlink(s->sock_path);
        free(s->sock_path);
        close(s->stop_rd);
        close(s->stop_wr);
        pthread_mutex_destroy(&s->lock);
        free(s);
}
