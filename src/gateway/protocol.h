/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway message protocol on top of the frame codec: each frame carries
 * one JSON object {"type", "id", "payload"} (docs/gateway-protocol.md).  This
 * file decodes what the sandbox sends (untrusted) and encodes the host's
 * replies; it also holds the run_chain step semantics shared by the session
 * server and the tool registry, so that a chain means the same thing however
 * it is run.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "toolruntime.h"

typedef enum tr__gw_msg_type {
        TR__GW_SEARCH_TOOLS,
        TR__GW_LIST_NAMESPACES,
        TR__GW_DESCRIBE_TOOL,
        TR__GW_LIST_TOOL_EXAMPLES,
        TR__GW_RUN_TOOL,
        TR__GW_RUN_CHAIN,
        TR__GW_RESPONSE,
        TR__GW_ERROR,
        /* The typed bindings of one namespace (bindings.c), which the SDK's
         * import hook turns into toolruntime.tools.<module>. */
        TR__GW_GET_BINDINGS,
        TR__GW_MSG_TYPE_MAX
} tr__gw_msg_type;

/* Ids longer than this are refused: the id is echoed back verbatim. */
#define TR_GW_MAX_ID_LEN 128
/* Tool ids: "namespace:name", bounded so records and logs stay small. */
#define TR_GW_MAX_TOOL_ID_LEN 256
/* A chain longer than this is refused whatever the limits say. */
#define TR_GW_MAX_CHAIN_LEN 64
/* Where the previous step's result goes when a step names no arg_name. */
#define TR_GW_DEFAULT_ARG_NAME "previous"

const char *tr__gw_msg_type_name(tr__gw_msg_type t);

typedef struct tr__gw_msg {
        tr__gw_msg_type type;
        json_t *id;      /* a string or an integer; owned reference */
        json_t *payload; /* always an object; owned reference */
} tr__gw_msg;

void tr__gw_msg_done(tr__gw_msg *m);

/*
 * Decode one frame's payload.  On success fills *ret_msg (release with
 * tr__gw_msg_done).  On failure returns a negative value with *ret_err set
 * (code TR_E_PROTOCOL) and, when the frame was a JSON object with a usable
 * id, a new reference to that id in *ret_bad_id (else NULL) so that the
 * error reply can still be matched to its request.
 */
int tr__gw_msg_decode(const void *data, size_t len, tr__gw_msg *ret_msg, json_t **ret_bad_id, tr_error **ret_err);

/* Encode {"type": type, "id": id (NULL: null), "payload": payload} into a
 * frame.  `payload` is borrowed.  -EMSGSIZE when over TR_FRAME_MAX. */
int tr__gw_encode(tr__gw_msg_type type, json_t *id, json_t *payload, uint8_t **ret_frame, size_t *ret_len);
/* Encode an error reply {"code": code_name, "message": message}. */
int tr__gw_encode_error(json_t *id, const char *code_name, const char *message, uint8_t **ret_frame, size_t *ret_len);

/* One step of a run_chain, pointing into the parsed steps array. */
typedef struct tr__gw_chain_step {
        const char *tool_id;
        json_t *args; /* borrowed; an object, possibly empty */
        bool use_previous;
        const char *arg_name; /* where the previous result goes */
} tr__gw_chain_step;

/* Validate a steps array (1..TR_GW_MAX_CHAIN_LEN objects with a string
 * "tool_id", optional object "args", bool "use_previous", string
 * "arg_name"; the first step cannot use a previous result).  *ret_steps
 * (free()) borrows from `steps`, which must outlive it. */
int tr__gw_chain_parse(json_t *steps, tr__gw_chain_step **ret_steps, size_t *ret_n, tr_error **ret_err);

/* The arguments of `step`: a copy of its args with the previous result
 * (borrowed, may be NULL for the first step) under arg_name.  New ref. */
json_t *tr__gw_chain_step_args(const tr__gw_chain_step *step, json_t *prev);

/* Is `id` a well-formed tool id (printable ASCII-ish, bounded, one ':')?  The
 * registry and the session both refuse anything else before looking up. */
bool tr__gw_tool_id_valid(const char *id);
