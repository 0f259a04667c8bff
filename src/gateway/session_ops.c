/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What each gateway message does in a session (session_int.h): list_tools,
 * run_tool, run_chain and the rest of docs/gateway-protocol.md, answered
 * from the request's tr_gateway.
 *
 * Limits are enforced here, on the host, per execution: every run_tool and
 * every step of a run_chain is one tool call; every step of a run_chain is
 * also one chain step.  run_chain is executed step by step through
 * tr_gateway_run_tool (with the chain semantics of protocol.h) rather than
 * through the gateway's own run_chain, so that each step is counted, checked
 * against the limits and recorded with its own duration and outcome.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/callctx.h"
#include "gateway/frame.h"
#include "gateway/protocol.h"
#include "gateway/session_int.h"
#include "util/macros.h"
#include "util/timeutil.h"

/* Results larger than this cannot fit in a reply frame with its envelope. */
#define MAX_RESULT (TR_FRAME_MAX - 4096)
/* Tool-call records kept per execution.  Every call is recorded up to this
 * many; past it (a snippet hammering the gateway, possibly with calls the
 * limits refuse) records stop, so that the host's memory stays bounded. */
#define MAX_RECORDS 10000

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

int tr__gw_session_dispatch(tr__gw_session *s, const tr__gw_msg *m, json_t **ret, tr_error **ret_err) {
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
