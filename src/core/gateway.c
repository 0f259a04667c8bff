/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tool-gateway vtable wrapper and the empty gateway.  Real gateways
 * (manifests, MCP servers, callbacks) live in src/gateway/ and reach the
 * core only through tr_gateway_ops.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/macros.h"

TR_PUBLIC int tr_gateway_new(const tr_gateway_ops *ops, void *self, tr_gateway **ret_gateway, tr_error **ret_err) {
        if (!ops || !ops->search_tools || !ops->list_namespaces || !ops->describe_tool || !ops->list_tool_examples ||
            !ops->run_tool || !ops->run_chain) {
                if (ops && ops->free)
                        ops->free(self);
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "gateway.new",
                                    "a gateway must implement all six operations");
        }
        tr_gateway *g = calloc(1, sizeof(*g));
        if (!g) {
                if (ops->free)
                        ops->free(self);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway.new", "out of memory");
        }
        g->ops = ops;
        g->self = self;
        *ret_gateway = g;
        return 0;
}

TR_PUBLIC void tr_gateway_free(tr_gateway *g) {
        if (!g)
                return;
        if (g->ops->free)
                g->ops->free(g->self);
        free(g);
}

static int dup_json(const char *s, char **ret_json, tr_error **ret_err) {
        char *d = strdup(s);
        if (!d)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "gateway", "out of memory");
        *ret_json = d;
        return 0;
}

static int empty_search(void *self, const tr_call_ctx *ctx, const char *q, int limit, char **ret_json,
                        tr_error **ret_err) {
        return dup_json("[]", ret_json, ret_err);
}
static int empty_namespaces(void *self, const tr_call_ctx *ctx, char **ret_json, tr_error **ret_err) {
        return dup_json("[]", ret_json, ret_err);
}
static int empty_describe(void *self, const tr_call_ctx *ctx, const char *id, tr_detail_level level, char **ret_json,
                          tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "describe_tool",
                            "no tool '%s': this gateway has no tools", id ? id : "");
}
static int empty_examples(void *self, const tr_call_ctx *ctx, const char *id, int max, char **ret_json,
                          tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "list_tool_examples",
                            "no tool '%s': this gateway has no tools", id ? id : "");
}
static int empty_run(void *self, const tr_call_ctx *ctx, const char *id, const char *args, char **ret_json,
                     tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "run_tool",
                            "no tool '%s': this gateway has no tools", id ? id : "");
}
static int empty_chain(void *self, const tr_call_ctx *ctx, const char *steps, char **ret_json, tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "run_chain", "this gateway has no tools");
}

static const tr_gateway_ops empty_ops = {
        .search_tools = empty_search,
        .list_namespaces = empty_namespaces,
        .describe_tool = empty_describe,
        .list_tool_examples = empty_examples,
        .run_tool = empty_run,
        .run_chain = empty_chain,
};

TR_PUBLIC int tr_gateway_new_empty(tr_gateway **ret_gateway, tr_error **ret_err) {
        return tr_gateway_new(&empty_ops, NULL, ret_gateway, ret_err);
}

TR_PUBLIC int tr_gateway_search_tools(tr_gateway *g, const tr_call_ctx *ctx, const char *query, int limit,
                                      char **ret_json, tr_error **ret_err) {
        return g->ops->search_tools(g->self, ctx, query ? query : "", limit, ret_json, ret_err);
}
TR_PUBLIC int tr_gateway_list_namespaces(tr_gateway *g, const tr_call_ctx *ctx, char **ret_json, tr_error **ret_err) {
        return g->ops->list_namespaces(g->self, ctx, ret_json, ret_err);
}
TR_PUBLIC int tr_gateway_describe_tool(tr_gateway *g, const tr_call_ctx *ctx, const char *id, tr_detail_level level,
                                       char **ret_json, tr_error **ret_err) {
        return g->ops->describe_tool(g->self, ctx, id, level, ret_json, ret_err);
}
TR_PUBLIC int tr_gateway_list_tool_examples(tr_gateway *g, const tr_call_ctx *ctx, const char *id, int max,
                                            char **ret_json, tr_error **ret_err) {
        return g->ops->list_tool_examples(g->self, ctx, id, max, ret_json, ret_err);
}
TR_PUBLIC int tr_gateway_run_tool(tr_gateway *g, const tr_call_ctx *ctx, const char *id, const char *args_json,
                                  char **ret_json, tr_error **ret_err) {
        return g->ops->run_tool(g->self, ctx, id, args_json ? args_json : "{}", ret_json, ret_err);
}
TR_PUBLIC int tr_gateway_run_chain(tr_gateway *g, const tr_call_ctx *ctx, const char *steps_json, char **ret_json,
                                   tr_error **ret_err) {
        return g->ops->run_chain(g->self, ctx, steps_json ? steps_json : "[]", ret_json, ret_err);
}

/* A gateway without list_tools: the first 100 tools a search for nothing
 * finds, each described at the schema level.  Good enough for the small
 * embedder gateways that lack the operation. */
static int list_tools_fallback(tr_gateway *g, const tr_call_ctx *ctx, const char *ns, char **ret_json,
                               tr_error **ret_err) {
        _cleanup_free_ char *hits_text = NULL;
        int r = g->ops->search_tools(g->self, ctx, "", 100, &hits_text, ret_err);
        if (r < 0)
                return r;
        json_t *hits = json_loads(hits_text, 0, NULL);
        json_t *out = json_array();
        size_t i;
        json_t *h;
        json_array_foreach(hits, i, h) {
                const char *id = json_string_value(json_object_get(h, "id"));
                const char *hns = json_string_value(json_object_get(h, "namespace"));
                if (!id || (ns && (!hns || !streq(ns, hns))))
                        continue;
                _cleanup_free_ char *d = NULL;
                if (g->ops->describe_tool(g->self, ctx, id, TR_DETAIL_SCHEMA, &d, NULL) < 0)
                        continue;
                json_t *jd = json_loads(d, 0, NULL);
                if (jd)
                        json_array_append_new(out, jd);
        }
        json_decref(hits);
        char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;
        json_decref(out);
        if (!s)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "list_tools", "out of memory");
        *ret_json = s;
        return 0;
}

TR_PUBLIC int tr_gateway_list_tools(tr_gateway *g, const tr_call_ctx *ctx, const char *ns, char **ret_json,
                                    tr_error **ret_err) {
        if (!g || !ret_json)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "list_tools", "invalid argument");
        if (g->ops->list_tools)
                return g->ops->list_tools(g->self, ctx, ns, ret_json, ret_err);
        return list_tools_fallback(g, ctx, ns, ret_json, ret_err);
}
