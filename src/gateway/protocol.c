/* SPDX-License-Identifier: Apache-2.0 */
/* Gateway message decoding/encoding and chain-step semantics (protocol.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/frame.h"
#include "gateway/protocol.h"
#include "util/macros.h"

static const char *const type_names[TR__GW_MSG_TYPE_MAX] = {
        [TR__GW_SEARCH_TOOLS] = "search_tools",   [TR__GW_LIST_NAMESPACES] = "list_namespaces",
        [TR__GW_DESCRIBE_TOOL] = "describe_tool", [TR__GW_LIST_TOOL_EXAMPLES] = "list_tool_examples",
        [TR__GW_RUN_TOOL] = "run_tool",           [TR__GW_RUN_CHAIN] = "run_chain",
        [TR__GW_RESPONSE] = "response",           [TR__GW_ERROR] = "error",
        [TR__GW_GET_BINDINGS] = "get_bindings",
};

const char *tr__gw_msg_type_name(tr__gw_msg_type t) {
        return (unsigned) t < TR__GW_MSG_TYPE_MAX ? type_names[t] : "unknown";
}

void tr__gw_msg_done(tr__gw_msg *m) {
        if (!m)
                return;
        json_decref(m->id);
        json_decref(m->payload);
        m->id = m->payload = NULL;
}

static bool id_usable(json_t *id) {
        if (json_is_integer(id))
                return true;
        return json_is_string(id) && json_string_length(id) <= TR_GW_MAX_ID_LEN;
}

int tr__gw_msg_decode(const void *data, size_t len, tr__gw_msg *ret_msg, json_t **ret_bad_id, tr_error **ret_err) {
        json_error_t jerr;
        *ret_bad_id = NULL;
        /* jansson rejects invalid UTF-8 and (without JSON_ALLOW_NUL) NUL
         * bytes in strings, so every string we hand on is clean text. */
        json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "decode", "malformed message: %s",
                                    jerr.text);
        if (!json_is_object(root)) {
                json_decref(root);
                return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "decode",
                                    "a message must be a JSON object");
        }
        json_t *id = json_object_get(root, "id");
        json_t *type = json_object_get(root, "type");
        json_t *payload = json_object_get(root, "payload");
        int r;
        if (!id_usable(id)) {
                r = tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "decode",
                                 "\"id\" must be an integer or a string of at most %d bytes", TR_GW_MAX_ID_LEN);
                goto fail;
        }
        if (!json_is_string(type)) {
                r = tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "decode", "\"type\" must be a string");
                goto fail;
        }
        int t = -1;
        for (int i = 0; i < TR__GW_MSG_TYPE_MAX; i++)
                if (streq(type_names[i], json_string_value(type)))
                        t = i;
        if (t < 0) {
                r = tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "decode", "unknown message type");
                goto fail;
        }
        if (payload && !json_is_object(payload) && !json_is_null(payload)) {
                r = tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "decode",
                                 "\"payload\" must be a JSON object");
                goto fail;
        }
        *ret_msg = (tr__gw_msg){
                .type = (tr__gw_msg_type) t,
                .id = json_incref(id),
                .payload = json_is_object(payload) ? json_incref(payload) : json_object(),
        };
        json_decref(root);
        if (!ret_msg->payload) {
                json_decref(ret_msg->id);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "decode", "out of memory");
        }
        return 0;
fail:
        if (id_usable(id))
                *ret_bad_id = json_incref(id);
        json_decref(root);
        return r;
}

int tr__gw_encode(tr__gw_msg_type type, json_t *id, json_t *payload, uint8_t **ret_frame, size_t *ret_len) {
        json_t *msg = json_object();
        if (!msg)
                return -ENOMEM;
        /* json_object_set (not _new) borrows: the caller keeps its refs. */
        if (json_object_set_new(msg, "type", json_string(tr__gw_msg_type_name(type))) < 0 ||
            json_object_set_new(msg, "id", id ? json_incref(id) : json_null()) < 0 ||
            json_object_set(msg, "payload", payload ? payload : json_null()) < 0) {
                json_decref(msg);
                return -ENOMEM;
        }
        /* Measure first so that the frame is built in one allocation. */
        size_t n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
        if (n == 0) {
                json_decref(msg);
                return -ENOMEM;
        }
        if (n > TR_FRAME_MAX) {
                json_decref(msg);
                return -EMSGSIZE;
        }
        uint8_t *f = malloc(TR_FRAME_HEADER + n);
        if (!f) {
                json_decref(msg);
                return -ENOMEM;
        }
        size_t w = json_dumpb(msg, (char *) f + TR_FRAME_HEADER, n, JSON_COMPACT);
        json_decref(msg);
        if (w != n) {
                free(f);
                return -EIO;
        }
        tr__frame_put_header(f, (uint32_t) n);
        *ret_frame = f;
        *ret_len = TR_FRAME_HEADER + n;
        return 0;
}

int tr__gw_encode_error(json_t *id, const char *code_name, const char *message, uint8_t **ret_frame, size_t *ret_len) {
        /* Messages come from tools and may be long or odd: bound them and
         * let jansson refuse invalid UTF-8 (then a generic text is used). */
        char buf[2048];
        size_t ml = message ? strlen(message) : 0;
        if (ml >= sizeof(buf)) {
                ml = sizeof(buf) - 4;
                /* Do not cut a UTF-8 sequence in half. */
                while (ml > 0 && ((unsigned char) message[ml] & 0xC0) == 0x80)
                        ml--;
        }
        memcpy(buf, message ? message : "", ml);
        if (message && ml < strlen(message)) {
                memcpy(buf + ml, "...", 3);
                ml += 3;
        }
        buf[ml] = 0;
        json_t *p = json_object();
        json_t *m = json_string(buf);
        if (!m)
                m = json_string("(error message was not valid UTF-8)");
        if (!p || json_object_set_new(p, "code", json_string(code_name ? code_name : "internal")) < 0 ||
            json_object_set_new(p, "message", m) < 0) {
                json_decref(p);
                return -ENOMEM;
        }
        int r = tr__gw_encode(TR__GW_ERROR, id, p, ret_frame, ret_len);
        json_decref(p);
        return r;
}

bool tr__gw_tool_id_valid(const char *id) {
        size_t n = 0, colons = 0;
        if (!id || !*id)
                return false;
        for (const char *c = id; *c; c++, n++) {
                unsigned char ch = (unsigned char) *c;
                if (n >= TR_GW_MAX_TOOL_ID_LEN)
                        return false;
                if (ch == ':')
                        colons++;
                else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                           ch == '_' || ch == '-' || ch == '.' || ch == '/'))
                        return false;
        }
        return colons == 1 && id[0] != ':' && id[n - 1] != ':';
}

int tr__gw_chain_parse(json_t *steps, tr__gw_chain_step **ret_steps, size_t *ret_n, tr_error **ret_err) {
        if (!json_is_array(steps))
                return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                    "\"steps\" must be an array");
        size_t n = json_array_size(steps);
        if (n == 0 || n > TR_GW_MAX_CHAIN_LEN)
                return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                    "a chain has 1 to %d steps, not %zu", TR_GW_MAX_CHAIN_LEN, n);
        _cleanup_free_ tr__gw_chain_step *v = calloc(n, sizeof(*v));
        if (!v)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "run_chain", "out of memory");
        for (size_t i = 0; i < n; i++) {
                json_t *st = json_array_get(steps, i);
                if (!json_is_object(st))
                        return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                            "step %zu is not an object", i);
                json_t *tid = json_object_get(st, "tool_id");
                json_t *args = json_object_get(st, "args");
                json_t *usep = json_object_get(st, "use_previous");
                json_t *an = json_object_get(st, "arg_name");
                if (!json_is_string(tid))
                        return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                            "step %zu: \"tool_id\" must be a string", i);
                if (args && !json_is_object(args) && !json_is_null(args))
                        return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                            "step %zu: \"args\" must be an object", i);
                if (usep && !json_is_boolean(usep) && !json_is_null(usep))
                        return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                            "step %zu: \"use_previous\" must be a boolean", i);
                if (an && !json_is_null(an) &&
                    (!json_is_string(an) || json_string_length(an) == 0 || json_string_length(an) > 128))
                        return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                            "step %zu: \"arg_name\" must be a non-empty string", i);
                v[i] = (tr__gw_chain_step){
                        .tool_id = json_string_value(tid),
                        .args = json_is_object(args) ? args : NULL,
                        .use_previous = json_is_true(usep),
                        .arg_name = json_is_string(an) ? json_string_value(an) : TR_GW_DEFAULT_ARG_NAME,
                };
                if (i == 0 && v[i].use_previous)
                        return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                            "the first step has no previous result to use");
        }
        *ret_steps = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

json_t *tr__gw_chain_step_args(const tr__gw_chain_step *step, json_t *prev) {
        json_t *a = step->args ? json_copy(step->args) : json_object();
        if (!a)
                return NULL;
        if (step->use_previous && prev && json_object_set(a, step->arg_name, prev) < 0) {
                json_decref(a);
                return NULL;
        }
        return a;
}
