/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The parts of the plan the core keeps for itself while a backend runs the
 * sandbox: the execution's gateway session (opened before the backend's run,
 * closed after it, so every tool call is recorded before the result is
 * handed out) and limits_enforced, decided here from the effective limits
 * and what the backend reported it applied.  See plan.h.
 */
#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include "core/plan.h"
#include "util/strv.h"

TR_PUBLIC void tr_exec_report_applied(tr_exec *ex, unsigned applied) {
        if (ex)
                ex->applied = applied;
}

void tr__exec_decide_enforced(tr_exec *ex) {
        if (!ex->res)
                return;
        const tr_limits *l = &ex->limits;
        unsigned a = ex->applied;
        ex->res->enforced = (tr_limits_enforced){
                /* Every backend's contract: stop everything at the deadline. */
                .timeout = true,
                /* Counted on the host by the gateway session the core opens
                 * for every run: a snippet has no other way to call a tool. */
                .tool_calls = l->max_tool_calls > 0,
                .chain_steps = l->max_chain_steps > 0,
                .memory = l->memory_bytes > 0 && (a & TR_APPLIED_MEMORY),
                .cpu = l->cpu_quota_ms > 0 && (a & TR_APPLIED_CPU),
                .pids = l->pids_max > 0 && (a & TR_APPLIED_PIDS),
                .disk = l->disk_bytes > 0 && (a & TR_APPLIED_DISK),
        };
}

int tr__exec_open_gateway(tr_exec *ex, tr_error **ret_err) {
        tr__exec_close_gateway(ex);
        return tr__gw_session_new(ex, &ex->gw, ret_err);
}

void tr__exec_close_gateway(tr_exec *ex) {
        tr__gw_session_free(ex->gw);
        ex->gw = NULL;
}

tr__gw_session *tr__exec_gateway(tr_exec *ex) {
        return ex ? ex->gw : NULL;
}

int tr__plan_labels(const tr_exec *ex, char ***ret_labels) {
        char **l = NULL;
        const tr_request *req = ex->req;
        int r = tr__strv_push(&l, "io.toolruntime.profile");
        if (r >= 0)
                r = tr__strv_push(&l, tr_profile_name(ex->profile));
        for (size_t i = 0; r >= 0 && req && i < tr_request_metadata_count(req); i++) {
                const char *k, *v;
                tr_request_metadata_at(req, i, &k, &v);
                if (strlen(k) > TR__LABEL_MAX || strlen(v) > TR__LABEL_MAX)
                        continue;
                r = tr__strv_pushf(&l, "io.toolruntime.meta.%s", k);
                if (r >= 0)
                        r = tr__strv_push(&l, v);
        }
        if (r < 0) {
                tr__strv_free(l);
                return -ENOMEM;
        }
        *ret_labels = l;
        return 0;
}
