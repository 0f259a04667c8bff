/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP server: JSON-RPC 2.0 messages in, messages out, independent of
 * the transport.  A transport (stdio.c today; an HTTP endpoint later) hands
 * every complete incoming message to mcps_server_handle() and gets every
 * outgoing one (responses, notifications) through the send callback, which
 * the server calls with its own lock held, so that messages never
 * interleave.  tools/call runs on a worker thread per call, so that the
 * transport keeps reading (pings, notifications/cancelled) while snippets
 * run.
 *
 * A front end: it speaks only the public API (toolruntime.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "toolruntime.h"

typedef struct mcps_server mcps_server;

typedef struct mcps_config {
        tr_runtime *rt; /* borrowed */
        tr_gateway *gw; /* borrowed; NULL: no upstream tools */
        tr_profile profile;
        const char *backend_name; /* for the description ("" when routed by profile) */
        /* Defaults and maxima at once: a call may ask for less, never more.
         * 0 in a limit means unlimited (a call may then ask for any). */
        int64_t timeout_ms;
        tr_limits limits;
        size_t max_output;
        size_t max_code;    /* bytes of code per call */
        int max_concurrent; /* executions at once; more wait their turn */
        bool expose_tools;  /* each upstream tool as an MCP tool too */
        /* The operator's egress allowlist for every execution (borrowed;
         * n_egress 0: no network).  Not a call argument: the model does not
         * choose where its sandbox may connect. */
        const char *const *egress;
        size_t n_egress;
        /* Optional admission around each tools/call execution, for a
         * service whose executions share slots with other front ends:
         * `admit` may block (it runs on the call's worker); false refuses
         * the call with *ret_why.  NULL: none. */
        bool (*admit)(void *userdata, const char **ret_why);
        void (*release)(void *userdata);
        void *admit_userdata;
} mcps_config;

/* One outgoing message (compact JSON, no newline). */
typedef void (*mcps_send_fn)(void *userdata, const char *json, size_t len);

int mcps_server_new(const mcps_config *cfg, mcps_send_fn send, void *userdata, mcps_server **ret_server,
                    tr_error **ret_err);
/* One incoming message.  Malformed input gets a JSON-RPC error. */
void mcps_server_handle(mcps_server *s, const char *data, size_t len);
/* A log line for the client (notifications/message at the level the client
 * asked for with logging/setLevel).  Thread-safe; matches tr_log_fn. */
void mcps_server_log(void *server, tr_log_level level, const char *msg, const char *const *kv);
/* The upstream tools changed: tell the client (notifications/tools/list_changed). */
void mcps_server_tools_changed(mcps_server *s);
/* Cancel every running execution (they get no reply, as cancelled
 * requests); the server stays usable. */
void mcps_server_cancel_all(mcps_server *s);
/* Cancel every running execution, wait for the workers, free. */
void mcps_server_free(mcps_server *s);

/* The protocol revisions this server speaks, newest first. */
extern const char *const mcps_versions[];
