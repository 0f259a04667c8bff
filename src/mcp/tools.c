/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP server's tools: tools/list (execute, the session tools, plus every
 * upstream tool with --expose-tools) and tools/call dispatch.  A passed-through tool runs on
 * the host through the gateway, like the upstream server would run it: no
 * sandbox is involved, and the per-execution limits do not apply (there is
 * no execution); it exists for clients that want a plain tool next to code
 * mode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"
#include "util/macros.h"

#define MAX_TOOL_NAME 128

/* An MCP tool name for an upstream id: [A-Za-z0-9_.-], "ns.name". */
static void exposed_name(const char *id, char *out, size_t size) {
        size_t n = 0;
        for (const char *p = id; *p && n + 1 < size && n < MAX_TOOL_NAME; p++) {
                char c = *p;
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                          c == '-' || c == '.';
                out[n++] = c == ':' ? '.' : ok ? c : '_';
        }
        out[n] = 0;
}

static json_t *upstream_tools(mcps_server *s) {
        _cleanup_free_ char *text = NULL;
        if (!s->cfg.gw || tr_gateway_list_tools(s->cfg.gw, NULL, NULL, &text, NULL) < 0)
                return json_array();
        json_t *a = json_loads(text, 0, NULL);
        return json_is_array(a) ? a : (json_decref(a), json_array());
}

json_t *mcps_tools_list(mcps_server *s) {
        json_t *list = json_array();
        json_array_append_new(list, mcps_execute_tool(s));
        json_t *st = mcps_session_tools();
        json_array_extend(list, st);
        json_decref(st);
        if (s->cfg.expose_tools) {
                json_t *ups = upstream_tools(s);
                size_t i;
                json_t *t;
                json_array_foreach(ups, i, t) {
                        const char *id = json_string_value(json_object_get(t, "id"));
                        if (!id)
                                continue;
                        char name[MAX_TOOL_NAME + 1];
                        exposed_name(id, name, sizeof(name));
                        json_t *o = json_pack("{s:s, s:O, s:O}", "name", name, "description",
                                              json_object_get(t, "description"), "inputSchema",
                                              json_object_get(t, "input_schema"));
                        if (o && json_object_get(t, "title"))
                                json_object_set(o, "title", json_object_get(t, "title"));
                        if (o && json_is_object(json_object_get(t, "output_schema")))
                                json_object_set(o, "outputSchema", json_object_get(t, "output_schema"));
                        json_array_append_new(list, o);
                }
                json_decref(ups);
        }
        return json_pack("{s:o}", "tools", list);
}

/* A passed-through call: the gateway's JSON result as MCP content. */
static json_t *pass_through(mcps_server *s, const char *id, json_t *args) {
        _cleanup_free_ char *args_text = json_dumps(args ? args : json_object(), JSON_COMPACT);
        _cleanup_free_ char *out = NULL;
        tr_error *err = NULL;
        if (tr_gateway_run_tool(s->cfg.gw, NULL, id, args_text, &out, &err) < 0) {
                json_t *r = mcps_tool_error("%s: %s", tr_error_code_name(err), tr_error_message(err));
                tr_error_free(err);
                return r;
        }
        json_t *v = json_loads(out, JSON_DECODE_ANY, NULL);
        json_t *r = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text",
                              json_is_string(v) ? json_string_value(v) : out);
        if (r && json_is_object(v))
                json_object_set(r, "structuredContent", v);
        json_decref(v);
        return r;
}

json_t *mcps_tools_call(mcps_call *c, int *ret_code, char **ret_msg) {
        mcps_server *s = c->s;
        const char *name = json_string_value(json_object_get(c->params, "name"));
        json_t *args = json_object_get(c->params, "arguments");
        if (args && !json_is_object(args)) {
                *ret_code = RPC_INVALID_PARAMS;
                *ret_msg = strdup("\"arguments\" must be an object");
                return NULL;
        }
        if (streq(name, "execute"))
                return mcps_execute(c, args);
        bool handled = false;
        json_t *sr = name ? mcps_session_call(c, name, args, &handled) : NULL;
        if (handled)
                return sr;
        if (s->cfg.expose_tools) {
                json_t *ups = upstream_tools(s);
                size_t i;
                json_t *t;
                json_array_foreach(ups, i, t) {
                        const char *id = json_string_value(json_object_get(t, "id"));
                        char en[MAX_TOOL_NAME + 1];
                        if (!id)
                                continue;
                        exposed_name(id, en, sizeof(en));
                        if (streq(en, name)) {
                                json_t *r = pass_through(s, id, args);
                                json_decref(ups);
                                return r;
                        }
                }
                json_decref(ups);
        }
        *ret_code = RPC_INVALID_PARAMS;
        if (asprintf(ret_msg, "unknown tool: %.200s", name) < 0)
                *ret_msg = NULL;
        return NULL;
}
