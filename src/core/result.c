/* SPDX-License-Identifier: Apache-2.0 */
/* Execution results: captured output, the `__out` value, exit status,
 * backend details, enforced limits and tool-call records. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/macros.h"
#include "util/strv.h"

TR_PUBLIC int tr_result_new(tr_result **ret_result, tr_error **ret_err) {
        tr_result *r = calloc(1, sizeof(*r));
        if (!r)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "result.new", "out of memory");
        r->exit_code = -1;
        pthread_mutex_init(&r->lock, NULL);
        *ret_result = r;
        return 0;
}

TR_PUBLIC void tr_result_free(tr_result *r) {
        if (!r)
                return;
        free(r->value_json);
        free(r->out);
        free(r->err);
        tr__kvlist_done(&r->details);
        for (size_t i = 0; i < r->n_calls; i++) {
                free(r->calls[i].tool_id);
                free(r->calls[i].error_op);
                free(r->calls[i].error_code);
        }
        free(r->calls);
        tr__strv_free(r->egress_denied_targets);
        pthread_mutex_destroy(&r->lock);
        free(r);
}

TR_PUBLIC const char *tr_result_value_json(const tr_result *r) {
        return r->value_json;
}
TR_PUBLIC const char *tr_result_stdout(const tr_result *r, size_t *ret_len) {
        if (ret_len)
                *ret_len = r->out_len;
        return r->out ? r->out : "";
}
TR_PUBLIC const char *tr_result_stderr(const tr_result *r, size_t *ret_len) {
        if (ret_len)
                *ret_len = r->err_len;
        return r->err ? r->err : "";
}
TR_PUBLIC bool tr_result_stdout_truncated(const tr_result *r) {
        return r->out_truncated;
}
TR_PUBLIC bool tr_result_stderr_truncated(const tr_result *r) {
        return r->err_truncated;
}
TR_PUBLIC int tr_result_exit_code(const tr_result *r) {
        return r->exit_code;
}
TR_PUBLIC int tr_result_signal(const tr_result *r) {
        return r->signal;
}
TR_PUBLIC const char *tr_result_signal_name(const tr_result *r) {
        return r->signal ? r->signal_name : NULL;
}
TR_PUBLIC int64_t tr_result_duration_us(const tr_result *r) {
        return r->duration_us;
}
TR_PUBLIC tr_backend_kind tr_result_backend_kind(const tr_result *r) {
        return r->backend;
}
TR_PUBLIC size_t tr_result_backend_detail_count(const tr_result *r) {
        return r->details.n;
}
TR_PUBLIC void tr_result_backend_detail_at(const tr_result *r, size_t i, const char **ret_key, const char **ret_value) {
        if (i >= r->details.n) {
                *ret_key = *ret_value = NULL;
                return;
        }
        *ret_key = r->details.items[i].key;
        *ret_value = r->details.items[i].value;
}
TR_PUBLIC const char *tr_result_backend_detail(const tr_result *r, const char *key) {
        return tr__kvlist_get(&r->details, key);
}
TR_PUBLIC const tr_limits_enforced *tr_result_limits_enforced(const tr_result *r) {
        return &r->enforced;
}
TR_PUBLIC size_t tr_result_tool_call_count(const tr_result *r) {
        return r->n_calls;
}
TR_PUBLIC const tr_tool_call *tr_result_tool_call_at(const tr_result *r, size_t i) {
        return i < r->n_calls ? &r->calls[i].pub : NULL;
}

TR_PUBLIC bool tr_result_egress(const tr_result *r, uint64_t *ret_allowed, uint64_t *ret_denied) {
        if (ret_allowed)
                *ret_allowed = r->egress_allowed;
        if (ret_denied)
                *ret_denied = r->egress_denied;
        return r->has_egress;
}
TR_PUBLIC size_t tr_result_egress_denied_target_count(const tr_result *r) {
        return tr__strv_len(r->egress_denied_targets);
}
TR_PUBLIC const char *tr_result_egress_denied_target_at(const tr_result *r, size_t i) {
        return i < tr__strv_len(r->egress_denied_targets) ? r->egress_denied_targets[i] : NULL;
}

TR_PUBLIC void tr_result_set_exit_code(tr_result *r, int code) {
        r->exit_code = code;
        r->signal = 0;
}

/* 64: SIGRTMAX on Linux, the largest number a wait status can carry. */
#define MAX_SIGNAL 64

TR_PUBLIC void tr_result_set_signal(tr_result *r, int sig) {
        if (sig < 1 || sig > MAX_SIGNAL)
                return;
        r->exit_code = 128 + sig;
        r->signal = sig;
        /* sigabbrev_np: the name without "SIG", NULL for the real-time
         * signals, whose numbers are what identifies them. */
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev)
                snprintf(r->signal_name, sizeof r->signal_name, "SIG%s", abbrev);
        else
                snprintf(r->signal_name, sizeof r->signal_name, "SIG%d", sig);
}
TR_PUBLIC void tr_result_set_backend_kind(tr_result *r, tr_backend_kind kind) {
        r->backend = kind;
}

TR_PUBLIC int tr_result_set_backend_detail(tr_result *r, const char *key, const char *value, tr_error **ret_err) {
        if (!key || !value)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "result.set_detail",
                                    "detail needs a key and a value");
        if (tr__kvlist_set(&r->details, key, value) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "result.set_detail", "out of memory");
        return 0;
}

TR_PUBLIC int tr_result_add_tool_call(tr_result *r, const char *tool_id, tr_backend_kind backend, int64_t duration_us,
                                      const char *error_op, const char *error_code, tr_error **ret_err) {
        tr__tool_call_rec rec = { 0 };
        rec.tool_id = strdup(tool_id ? tool_id : "");
        rec.error_op = error_op ? strdup(error_op) : NULL;
        rec.error_code = error_code ? strdup(error_code) : NULL;
        if (!rec.tool_id || (error_op && !rec.error_op) || (error_code && !rec.error_code))
                goto oom;
        rec.pub = (tr_tool_call){ .tool_id = rec.tool_id,
                                  .backend = backend,
                                  .duration_us = duration_us,
                                  .error_op = rec.error_op,
                                  .error_code = rec.error_code };
        pthread_mutex_lock(&r->lock);
        tr__tool_call_rec *calls = realloc(r->calls, (r->n_calls + 1) * sizeof(*calls));
        if (calls) {
                r->calls = calls;
                r->calls[r->n_calls++] = rec;
        }
        pthread_mutex_unlock(&r->lock);
        if (calls)
                return 0;
oom:
        free(rec.tool_id);
        free(rec.error_op);
        free(rec.error_code);
        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "result.add_tool_call", "out of memory");
}
