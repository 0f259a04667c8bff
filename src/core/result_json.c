/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The result object every front end prints or sends: `exec --json`, the
 * HTTP service's /v1/execute and the MCP server's structured content are
 * one shape, built here once.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/json.h"
#include "util/macros.h"

json_t *tr__tool_call_json(const tr_tool_call *c) {
        json_t *jc = json_object();
        json_object_set_new(jc, "tool_id", tr__json_bytes(c->tool_id, strlen(c->tool_id)));
        json_object_set_new(jc, "backend_kind", json_string(tr_backend_kind_name(c->backend)));
        json_object_set_new(jc, "duration_ms", json_real((double) c->duration_us / 1000.0));
        json_object_set_new(jc, "error_op", c->error_op ? json_string(c->error_op) : json_null());
        json_object_set_new(jc, "error_code", c->error_code ? json_string(c->error_code) : json_null());
        return jc;
}

json_t *tr__result_json(const tr_result *res, const tr_error *err) {
        json_t *o = json_object();
        size_t n = 0;
        const char *s;
        json_t *value = NULL;
        if (res && tr_result_value_json(res))
                value = json_loads(tr_result_value_json(res), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        json_object_set_new(o, "value", value ? value : json_null());
        s = res ? tr_result_stdout(res, &n) : "";
        json_object_set_new(o, "stdout", tr__json_bytes(s, res ? n : 0));
        s = res ? tr_result_stderr(res, &n) : "";
        json_object_set_new(o, "stderr", tr__json_bytes(s, res ? n : 0));
        int code = res ? tr_result_exit_code(res) : -1;
        json_object_set_new(o, "exit_code", code >= 0 ? json_integer(code) : json_null());
        const char *sig = res ? tr_result_signal_name(res) : NULL;
        json_object_set_new(o, "signal", sig ? json_string(sig) : json_null());
        json_object_set_new(o, "duration_ms", json_real(res ? (double) tr_result_duration_us(res) / 1000.0 : 0.0));

        json_t *backend = json_object(), *details = json_object();
        tr_backend_kind kind = res ? tr_result_backend_kind(res) : (err ? tr_error_backend(err) : TR_BACKEND_NONE);
        json_object_set_new(backend, "kind", json_string(tr_backend_kind_name(kind)));
        for (size_t i = 0; res && i < tr_result_backend_detail_count(res); i++) {
                const char *k, *v;
                tr_result_backend_detail_at(res, i, &k, &v);
                json_object_set_new(details, k, tr__json_bytes(v, strlen(v)));
        }
        json_object_set_new(backend, "details", details);
        json_object_set_new(o, "backend", backend);

        static const tr_limits_enforced none = { 0 };
        const tr_limits_enforced *e = res ? tr_result_limits_enforced(res) : &none;
        json_t *le = json_object();
        json_object_set_new(le, "timeout", json_boolean(e->timeout));
        json_object_set_new(le, "tool_calls", json_boolean(e->tool_calls));
        json_object_set_new(le, "chain_steps", json_boolean(e->chain_steps));
        json_object_set_new(le, "memory", json_boolean(e->memory));
        json_object_set_new(le, "cpu", json_boolean(e->cpu));
        json_object_set_new(le, "pids", json_boolean(e->pids));
        json_object_set_new(le, "disk", json_boolean(e->disk));
        json_object_set_new(o, "limits_enforced", le);

        json_t *calls = json_array();
        for (size_t i = 0; res && i < tr_result_tool_call_count(res); i++) {
                json_array_append_new(calls, tr__tool_call_json(tr_result_tool_call_at(res, i)));
        }
        json_object_set_new(o, "tool_calls", calls);

        /* Only for a sandbox with an allowlist: without one there is no
         * network, and nothing to count. */
        uint64_t allowed = 0, denied = 0;
        if (res && tr_result_egress(res, &allowed, &denied)) {
                json_t *eg = json_object(), *targets = json_array();
                json_object_set_new(eg, "allowed", json_integer((json_int_t) allowed));
                json_object_set_new(eg, "denied", json_integer((json_int_t) denied));
                for (size_t i = 0; i < tr_result_egress_denied_target_count(res); i++)
                        json_array_append_new(targets, json_string(tr_result_egress_denied_target_at(res, i)));
                json_object_set_new(eg, "denied_targets", targets);
                json_object_set_new(o, "egress", eg);
        }

        json_t *tr = json_object();
        json_object_set_new(tr, "stdout", json_boolean(res && tr_result_stdout_truncated(res)));
        json_object_set_new(tr, "stderr", json_boolean(res && tr_result_stderr_truncated(res)));
        json_object_set_new(o, "truncated", tr);

        if (err) {
                json_t *je = json_object();
                json_object_set_new(je, "code", json_string(tr_error_code_name(err)));
                const char *m = tr_error_message(err);
                json_object_set_new(je, "message", tr__json_bytes(m, strlen(m)));
                json_object_set_new(je, "op", json_string(tr_error_op(err)));
                json_object_set_new(je, "backend", json_string(tr_backend_kind_name(tr_error_backend(err))));
                json_object_set_new(je, "retryable", json_boolean(tr_error_retryable(err)));
                json_object_set_new(o, "error", je);
        } else {
                json_object_set_new(o, "error", json_null());
        }
        return o;
}

TR_PUBLIC int tr_result_to_json(const tr_result *res, const tr_error *err, char **ret_json, tr_error **ret_err) {
        json_t *o = tr__result_json(res, err);
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(o);
        if (!text)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "result.to_json", "out of memory");
        *ret_json = text;
        return 0;
}
