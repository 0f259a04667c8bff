/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `execute` tool: its definition (input and output schemas, and a
 * description that lists the upstream tools as Python signatures) and one
 * call: arguments checked against the server's maxima, a tr_request, the
 * runtime, and the result as structuredContent plus a text summary.
 *
 * Bad arguments are tool errors (isError, a text saying which argument and
 * why), as the spec asks, so that a model can correct itself; the JSON-RPC
 * errors are for requests that are not calls at all.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"
#include "util/handles.h"
#include "util/macros.h"

/* The tool list in the description is cut here: a model can still search. */
#define MAX_SIGNATURES (24 * 1024)

/* A JSON string from bytes that need not be UTF-8 (snippet output). */
static json_t *json_bytes(const char *s, size_t n) {
        json_t *j = json_stringn(s, n);
        if (j)
                return j;
        _cleanup_free_ char *clean = NULL;
        size_t len = 0;
        return tr_utf8_sanitize(s, n, &clean, &len, NULL) < 0 ? NULL : json_stringn(clean, len);
}

static const struct {
        const char *key;
        size_t off;
        const char *what;
} limit_keys[] = {
        { "max_tool_calls", offsetof(tr_limits, max_tool_calls), "tool calls per execution" },
        { "max_chain_steps", offsetof(tr_limits, max_chain_steps), "chain steps per execution" },
        { "memory_bytes", offsetof(tr_limits, memory_bytes), "memory in bytes" },
        { "cpu_quota_ms", offsetof(tr_limits, cpu_quota_ms), "CPU milliseconds per 100 ms" },
        { "pids_max", offsetof(tr_limits, pids_max), "processes" },
        { "disk_bytes", offsetof(tr_limits, disk_bytes), "writable disk (/tmp) in bytes" },
};

static int64_t *limit_at(tr_limits *l, size_t i) {
        return (int64_t *) (void *) ((char *) l + limit_keys[i].off);
}

static json_t *input_schema(mcps_server *s) {
        json_t *limits = json_object();
        for (size_t i = 0; i < ARRAY_SIZE(limit_keys); i++) {
                int64_t max = *limit_at(&s->cfg.limits, i);
                json_t *p = json_pack("{s:s, s:I, s:s}", "type", "integer", "minimum", (json_int_t) 1, "description",
                                      limit_keys[i].what);
                json_object_set_new(p, "maximum", json_integer(max > 0 ? max : TR_LIMIT_MAX));
                json_object_set_new(limits, limit_keys[i].key, p);
        }
        double tmax = (double) (s->cfg.timeout_ms > 0 ? s->cfg.timeout_ms : TR_DEFAULT_TIMEOUT_MS) / 1000.0;
        return json_pack("{s:s, s:{s:{s:s, s:s, s:I}, s:{s:s, s:[s,s], s:s}, s:{s:s, s:f, s:f, s:s}, "
                         "s:{s:s, s:o, s:b, s:s}}, s:[s], s:b}",
                         "type", "object", "properties", "code", "type", "string", "description",
                         "The program. Python: assign the global __out to return a JSON value.", "maxLength",
                         (json_int_t) s->cfg.max_code, "language", "type", "string", "enum", "python", "sh",
                         "description", "default: python", "timeout", "type", "number", "exclusiveMinimum", 0.0,
                         "maximum", tmax, "description", "wall-clock seconds (default and maximum: the server's)",
                         "limits", "type", "object", "properties", limits, "additionalProperties", 0, "description",
                         "lower the server's limits for this execution", "required", "code", "additionalProperties", 0);
}

static json_t *output_schema(void) {
        const char *text =
                "{\"type\":\"object\",\"properties\":{"
                "\"value\":{\"description\":\"the __out value (any JSON), null when none\"},"
                "\"stdout\":{\"type\":\"string\"},\"stderr\":{\"type\":\"string\"},"
                "\"exit_code\":{\"type\":[\"integer\",\"null\"]},"
                "\"duration_ms\":{\"type\":\"number\"},\"backend\":{\"type\":\"string\"},"
                "\"tool_calls\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
                "\"tool_id\":{\"type\":\"string\"},\"duration_ms\":{\"type\":\"number\"},"
                "\"error_code\":{\"type\":[\"string\",\"null\"]},\"error_op\":{\"type\":[\"string\",\"null\"]}},"
                "\"required\":[\"tool_id\",\"duration_ms\",\"error_code\"]}},"
                "\"limits\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}},"
                "\"limits_enforced\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}},"
                "\"egress\":{\"type\":\"object\",\"properties\":{\"allowed\":{\"type\":\"integer\"},"
                "\"denied\":{\"type\":\"integer\"},\"denied_targets\":{\"type\":\"array\",\"items\":"
                "{\"type\":\"string\"}}}},"
                "\"truncated\":{\"type\":\"object\",\"properties\":{\"stdout\":{\"type\":\"boolean\"},"
                "\"stderr\":{\"type\":\"boolean\"}}},"
                "\"error\":{\"type\":[\"object\",\"null\"],\"properties\":{\"code\":{\"type\":\"string\"},"
                "\"message\":{\"type\":\"string\"}}}},"
                "\"required\":[\"value\",\"stdout\",\"stderr\",\"exit_code\",\"tool_calls\",\"limits\","
                "\"limits_enforced\",\"error\"]}";
        return json_loads(text, 0, NULL);
}

static char *description(mcps_server *s) {
        _cleanup_free_ char *sigs = NULL;
        if (s->cfg.gw)
                (void) tr_gateway_python_bindings(s->cfg.gw, NULL, TR_BINDINGS_SIGNATURES, &sigs, NULL, NULL);
        if (sigs && strlen(sigs) > MAX_SIGNATURES) {
                size_t n = MAX_SIGNATURES;
                while (n > 0 && sigs[n - 1] != '\n')
                        n--;
                sigs[n] = 0;
        }
        char lim[512] = "";
        size_t n = 0;
        for (size_t i = 0; i < ARRAY_SIZE(limit_keys) && n < sizeof(lim); i++) {
                int64_t v = *limit_at(&s->cfg.limits, i);
                if (v > 0)
                        n += (size_t) snprintf(lim + n, sizeof(lim) - n, "%s%s=%lld", n ? ", " : "", limit_keys[i].key,
                                               (long long) v);
        }
        char *d = NULL;
        if (asprintf(&d,
                     "Run a Python (or sh) program in an isolated sandbox (profile %s%s%s) and return its result: "
                     "the global __out (any JSON value), stdout, stderr, exit code, and a record of every tool call.\n"
                     "Timeout %.3g s; limits: %s.\n"
                     "\nThe program can call these tools as typed Python functions (keyword arguments; wrong "
                     "types raise toolruntime.ToolError(\"invalid_arguments\") before the call):\n"
                     "```python\n%s%s```\n"
                     "Import a namespace with `from toolruntime.tools import NAMESPACE`. "
                     "toolruntime.tools.search_tools(query) and describe_tool(id, \"schema\") find and describe "
                     "tools; run_tool(id, args) calls one by id. Errors raise toolruntime.ToolError (.code, "
                     ".message).\n",
                     tr_profile_name(s->cfg.profile), *s->cfg.backend_name ? ", backend " : "", s->cfg.backend_name,
                     (double) (s->cfg.timeout_ms > 0 ? s->cfg.timeout_ms : TR_DEFAULT_TIMEOUT_MS) / 1000.0,
                     n ? lim : "none beyond the timeout", sigs && *sigs ? sigs : "# (no tools are configured)\n",
                     sigs && strlen(sigs) >= MAX_SIGNATURES - 256 ? "# ... more: use search_tools()\n" : "") < 0)
                return NULL;
        return d;
}

json_t *mcps_execute_tool(mcps_server *s) {
        _cleanup_free_ char *d = description(s);
        return json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:b, s:b, s:b}}", "name", "execute", "title",
                         "Run code in a sandbox", "description", d ? d : "Run code in a sandbox.", "inputSchema",
                         input_schema(s), "outputSchema", output_schema(), "annotations", "readOnlyHint", 0,
                         "destructiveHint", 0, "openWorldHint", 1);
}

/* Check the arguments and fill the request.  NULL, or a tool error. */
static json_t *build_request(mcps_call *c, json_t *args, tr_request *req, int64_t *ret_timeout_ms,
                             tr_limits *ret_limits) {
        mcps_server *s = c->s;
        const char *k;
        json_t *v;
        json_object_foreach(args, k, v) {
                if (!streq(k, "code") && !streq(k, "language") && !streq(k, "timeout") && !streq(k, "limits"))
                        return mcps_tool_error("invalid arguments: unknown argument \"%.64s\"", k);
        }
        json_t *code = json_object_get(args, "code");
        if (!json_is_string(code))
                return mcps_tool_error("invalid arguments: \"code\" must be a string");
        size_t len = json_string_length(code);
        if (len == 0)
                return mcps_tool_error("invalid arguments: \"code\" is empty");
        if (len > s->cfg.max_code)
                return mcps_tool_error("invalid arguments: \"code\" is %zu bytes, over the server's maximum of %zu",
                                       len, s->cfg.max_code);
        json_t *lang = json_object_get(args, "language");
        if (lang && (!json_is_string(lang) ||
                     (!streq(json_string_value(lang), "python") && !streq(json_string_value(lang), "sh"))))
                return mcps_tool_error("invalid arguments: \"language\" must be \"python\" or \"sh\"");
        int64_t tmax = s->cfg.timeout_ms > 0 ? s->cfg.timeout_ms : TR_DEFAULT_TIMEOUT_MS;
        int64_t timeout_ms = tmax;
        json_t *t = json_object_get(args, "timeout");
        if (t) {
                double sec = json_number_value(t);
                if (!json_is_number(t) || !(sec > 0) || !isfinite(sec))
                        return mcps_tool_error("invalid arguments: \"timeout\" must be a positive number of seconds");
                if (sec * 1000.0 > (double) tmax)
                        return mcps_tool_error("invalid arguments: \"timeout\" %.3g s is above the server's maximum "
                                               "of %.3g s",
                                               sec, (double) tmax / 1000.0);
                timeout_ms = (int64_t) ceil(sec * 1000.0);
        }
        tr_limits lim = s->cfg.limits;
        json_t *jl = json_object_get(args, "limits");
        if (jl && !json_is_object(jl))
                return mcps_tool_error("invalid arguments: \"limits\" must be an object");
        json_object_foreach(jl, k, v) {
                size_t i = 0;
                while (i < ARRAY_SIZE(limit_keys) && !streq(limit_keys[i].key, k))
                        i++;
                if (i == ARRAY_SIZE(limit_keys))
                        return mcps_tool_error("invalid arguments: unknown limit \"limits.%.64s\"", k);
                if (!json_is_integer(v) || json_integer_value(v) < 1)
                        return mcps_tool_error("invalid arguments: \"limits.%s\" must be an integer of at least 1", k);
                int64_t max = *limit_at(&s->cfg.limits, i), want = json_integer_value(v);
                if ((max > 0 && want > max) || want > TR_LIMIT_MAX)
                        return mcps_tool_error("invalid arguments: \"limits.%s\" %lld is above the server's maximum "
                                               "of %lld",
                                               k, (long long) want, (long long) (max > 0 ? max : TR_LIMIT_MAX));
                *limit_at(&lim, i) = want;
        }
        tr_error *err = NULL;
        if (tr_request_set_code(req, json_string_value(code), len, &err) < 0 ||
            tr_request_set_language(req, json_string_value(lang), &err) < 0 ||
            tr_request_set_egress_allow(req, s->cfg.egress, s->cfg.n_egress, &err) < 0) {
                json_t *r = mcps_tool_error("invalid arguments: %s", tr_error_message(err));
                tr_error_free(err);
                return r;
        }
        tr_request_set_timeout_ms(req, timeout_ms);
        tr_request_set_limits(req, &lim);
        tr_request_set_profile(req, s->cfg.profile);
        tr_request_set_gateway(req, s->cfg.gw);
        tr_request_set_max_output(req, s->cfg.max_output);
        *ret_timeout_ms = timeout_ms;
        *ret_limits = lim;
        return NULL;
}

static json_t *structured(const tr_result *res, const tr_error *err, const tr_limits *lim) {
        size_t n = 0;
        const char *so = res ? tr_result_stdout(res, &n) : "";
        json_t *jout = json_bytes(so, res ? n : 0);
        const char *se = res ? tr_result_stderr(res, &n) : "";
        json_t *jerr = json_bytes(se, res ? n : 0);
        json_t *value = res && tr_result_value_json(res)
                                ? json_loads(tr_result_value_json(res), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)
                                : NULL;
        int code = res ? tr_result_exit_code(res) : -1;
        tr_backend_kind kind = res ? tr_result_backend_kind(res) : (err ? tr_error_backend(err) : TR_BACKEND_NONE);
        json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:f, s:s}", "value", value ? value : json_null(), "stdout", jout,
                              "stderr", jerr, "exit_code", code >= 0 ? json_integer(code) : json_null(), "duration_ms",
                              res ? (double) tr_result_duration_us(res) / 1000.0 : 0.0, "backend",
                              tr_backend_kind_name(kind));
        json_t *calls = json_array();
        for (size_t i = 0; res && i < tr_result_tool_call_count(res); i++) {
                const tr_tool_call *c = tr_result_tool_call_at(res, i);
                json_array_append_new(calls, json_pack("{s:o, s:f, s:s?, s:s?}", "tool_id",
                                                       json_bytes(c->tool_id, strlen(c->tool_id)), "duration_ms",
                                                       (double) c->duration_us / 1000.0, "error_code", c->error_code,
                                                       "error_op", c->error_op));
        }
        json_object_set_new(o, "tool_calls", calls);
        json_t *jl = json_object();
        for (size_t i = 0; i < ARRAY_SIZE(limit_keys); i++) {
                int64_t v = *limit_at((tr_limits *) lim, i);
                if (v > 0)
                        json_object_set_new(jl, limit_keys[i].key, json_integer(v));
        }
        json_object_set_new(o, "limits", jl);
        static const tr_limits_enforced none = { 0 };
        const tr_limits_enforced *e = res ? tr_result_limits_enforced(res) : &none;
        json_object_set_new(o, "limits_enforced",
                            json_pack("{s:b, s:b, s:b, s:b, s:b, s:b, s:b}", "timeout", e->timeout, "tool_calls",
                                      e->tool_calls, "chain_steps", e->chain_steps, "memory", e->memory, "cpu", e->cpu,
                                      "pids", e->pids, "disk", e->disk));
        uint64_t allowed = 0, denied = 0;
        if (res && tr_result_egress(res, &allowed, &denied)) {
                json_t *targets = json_array();
                for (size_t i = 0; i < tr_result_egress_denied_target_count(res); i++)
                        json_array_append_new(targets, json_string(tr_result_egress_denied_target_at(res, i)));
                json_object_set_new(o, "egress",
                                    json_pack("{s:I, s:I, s:o}", "allowed", (json_int_t) allowed, "denied",
                                              (json_int_t) denied, "denied_targets", targets));
        }
        json_object_set_new(o, "truncated",
                            json_pack("{s:b, s:b}", "stdout", res && tr_result_stdout_truncated(res), "stderr",
                                      res && tr_result_stderr_truncated(res)));
        json_object_set_new(o, "error",
                            err ? json_pack("{s:s, s:o}", "code", tr_error_code_name(err), "message",
                                            json_bytes(tr_error_message(err), strlen(tr_error_message(err))))
                                : json_null());
        return o;
}

/* Output shown in the text block; all of it is in structuredContent.  Code
 * mode is about keeping tool results out of the model's context. */
#define SUMMARY_OUTPUT (16 * 1024)

static char *cut(json_t *str) {
        const char *s = json_string_value(str);
        size_t n = json_string_length(str);
        if (n <= SUMMARY_OUTPUT)
                return strdup(s ? s : "");
        size_t k = SUMMARY_OUTPUT;
        while (k > 0 && ((unsigned char) s[k] & 0xC0) == 0x80)
                k--;
        char *r = NULL;
        return asprintf(&r, "%.*s\n[... %zu more bytes in structuredContent]", (int) k, s, n - k) < 0 ? NULL : r;
}

/* The text block: a summary a human (or an old client) can read. */
static char *summary(json_t *st, const tr_error *err) {
        json_t *value = json_object_get(st, "value");
        _cleanup_free_ char *vtext = json_is_null(value) ? NULL : json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        json_t *ec = json_object_get(st, "exit_code");
        char head[512];
        if (err)
                snprintf(head, sizeof(head), "failed: %s: %s", tr_error_code_name(err), tr_error_message(err));
        else
                snprintf(head, sizeof(head), "exit code %lld", (long long) json_integer_value(ec));
        char *t = NULL;
        _cleanup_free_ char *out = cut(json_object_get(st, "stdout"));
        _cleanup_free_ char *errs = cut(json_object_get(st, "stderr"));
        if (!out || !errs)
                return NULL;
        if (asprintf(&t, "%s on %s in %.0f ms, %zu tool call(s)\n%s%s%s%s%s%s%s", head,
                     json_string_value(json_object_get(st, "backend")),
                     json_number_value(json_object_get(st, "duration_ms")),
                     json_array_size(json_object_get(st, "tool_calls")), vtext ? "value: " : "", vtext ? vtext : "",
                     vtext ? "\n" : "", *out ? "stdout:\n" : "", out, *errs ? "\nstderr:\n" : "", errs) < 0)
                return NULL;
        return t;
}

json_t *mcps_execute(mcps_call *c, json_t *args) {
        return mcps_execute_in(c, args, NULL);
}

json_t *mcps_execute_in(mcps_call *c, json_t *args, tr_session *session) {
        mcps_server *s = c->s;
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        if (tr_request_new(&req, NULL) < 0)
                return mcps_tool_error("out of memory");
        if (!args)
                return mcps_tool_error("invalid arguments: \"code\" is required");
        int64_t timeout_ms = 0;
        tr_limits lim = { 0 };
        json_t *bad = build_request(c, args, req, &timeout_ms, &lim);
        if (bad)
                return bad;
        c->timeout_ms = timeout_ms;

        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        int r = session ? tr_session_execute(session, req, c->cancel, &res, &err)
                        : tr_runtime_execute(s->cfg.rt, req, c->cancel, &res, &err);
        json_t *st = structured(res, r < 0 ? err : NULL, &lim);
        _cleanup_free_ char *text = st ? summary(st, r < 0 ? err : NULL) : NULL;
        if (!st || !text) {
                json_decref(st);
                return mcps_tool_error("out of memory");
        }
        /* A failed execution (the runtime failed, or the program exited
         * non-zero) is a tool error: the model should look at it. */
        bool failed = r < 0 || tr_result_exit_code(res) != 0;
        return json_pack("{s:[{s:s, s:s}], s:o, s:b}", "content", "type", "text", "text", text, "structuredContent", st,
                         "isError", failed);
}
