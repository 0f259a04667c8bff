/* SPDX-License-Identifier: Apache-2.0 */
/* Public API of the gateway part of toolruntime.  Included by toolruntime.h;
 * do not include directly.
 *
 * A tr_tool_registry collects MCP-shaped tools (id "namespace:name", a
 * description, an input JSON Schema, tags, examples) from three sources —
 * tools manifests, MCP servers over stdio, C callbacks — and turns them into
 * a tr_gateway that requests can carry.  Everything a source says about a
 * tool is treated as untrusted: sizes are bounded, structure validated, and
 * arguments are checked against the tool's input schema before it runs.
 *
 * Thread safety: after it is built, a registry (and every gateway made from
 * it) may be used from several threads at once; adding sources while
 * executions run is allowed but serialised.
 */
#pragma once
#ifndef TOOLRUNTIME_H
#error "include <toolruntime.h> instead"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_tool_registry tr_tool_registry;

/* A tool implemented by the embedder.  `args_json` is a JSON object that
 * already passed the tool's input schema.  On success store a newly
 * malloc()ed JSON document (any JSON value) in *ret_json and return 0; on
 * failure return a negative value and set *ret_err (tr_error_set), ideally
 * with TR_E_TOOL_FAILED.  Called from gateway server threads, possibly
 * several at once: it must be thread-safe. */
typedef int (*tr_tool_fn)(void *userdata, const char *args_json, char **ret_json, tr_error **ret_err);

/* A new, empty registry.  Free with tr_tool_registry_free(). */
TR_PUBLIC int tr_tool_registry_new(tr_tool_registry **ret_reg, tr_error **ret_err);

/* Drop the caller's reference.  Gateways made by tr_tool_registry_gateway()
 * keep the registry (and its MCP server processes) alive until they are
 * freed too; the last reference stops the MCP servers.  NULL-safe. */
TR_PUBLIC void tr_tool_registry_free(tr_tool_registry *reg);

/* Log lines (a tool skipped because its metadata was invalid, an MCP server
 * that exited, ...) go to `fn`; without one they are dropped. */
TR_PUBLIC void tr_tool_registry_set_logger(tr_tool_registry *reg, tr_log_fn fn, void *userdata);

/* Tools and MCP servers get a minimal environment: PATH and LANG (the
 * caller's), HOME set to a private directory of this registry (removed
 * with it), and nothing else of the caller's, unless named: a manifest lists
 * the variables its tools get in "env"; MCP servers added afterwards get the
 * variables passed here (TR_E_INVALID_REQUEST for a name that is not
 * [A-Za-z_][A-Za-z0-9_]*, or PATH, LANG, HOME).  What a tool or server writes
 * on stderr goes to the logger (level WARN, "tool stderr"), never back into
 * the sandbox. */
TR_PUBLIC int tr_tool_registry_pass_env(tr_tool_registry *reg, const char *name, tr_error **ret_err);

/* Timeouts used by MCP servers added afterwards: for starting a server
 * (spawn, initialize, tools/list) and for one tools/call.  0 keeps the
 * defaults (10 s and 30 s). */
TR_PUBLIC void tr_tool_registry_set_mcp_timeouts(tr_tool_registry *reg, int64_t start_ms, int64_t call_ms);

/*
 * Add every tool of a tools manifest (docs/gateway-protocol.md, "Tools
 * manifest"): each tool runs a host command (argv, no shell) with its JSON
 * arguments on stdin and prints its JSON result on stdout, within its own
 * timeout and output cap.  Relative paths resolve against the manifest's
 * directory.  All or nothing: an invalid tool or a duplicate id fails the
 * whole manifest (TR_E_INVALID_REQUEST) and adds nothing.
 */
TR_PUBLIC int tr_tool_registry_add_manifest(tr_tool_registry *reg, const char *path, tr_error **ret_err);
/* The same from JSON text; `base_dir` (NULL: the current directory) is where
 * relative paths resolve. */
TR_PUBLIC int tr_tool_registry_add_manifest_json(tr_tool_registry *reg, const char *json, const char *base_dir,
                                                 tr_error **ret_err);

/*
 * Start an MCP server over stdio and add its tools under namespace `ns`
 * (NULL: derived from the server's name, made unique).  `command_line` is
 * split into words like a shell would (quotes, backslashes) but runs without
 * one.  The server lives as long as the registry; if it exits, or a call
 * outlives its call timeout, it is (killed and) restarted on the next call,
 * at most 3 times in a row: a successful call resets the count.  Tools whose metadata
 * is invalid are skipped and logged.  Fails with TR_E_TOOL_FAILED when the
 * server cannot be started or initialised, TR_E_PROTOCOL when it does not
 * speak MCP, TR_E_TIMEOUT when it does not answer in time.
 */
TR_PUBLIC int tr_tool_registry_add_mcp(tr_tool_registry *reg, const char *command_line, const char *ns,
                                       tr_error **ret_err);
/* The same with an argv (NULL-terminated). */
TR_PUBLIC int tr_tool_registry_add_mcp_argv(tr_tool_registry *reg, const char *const *argv, const char *ns,
                                            tr_error **ret_err);

/* Add a tool implemented by `fn`.  `id` is "namespace:name"; `schema_json`
 * is its input JSON Schema (NULL: any object).  `userdata` is borrowed and
 * must outlive the registry. */
TR_PUBLIC int tr_tool_registry_add_callback(tr_tool_registry *reg, const char *id, const char *description,
                                            const char *schema_json, tr_tool_fn fn, void *userdata, tr_error **ret_err);

/* Extra metadata for an existing tool (any source). */
TR_PUBLIC int tr_tool_registry_add_tag(tr_tool_registry *reg, const char *id, const char *tag, tr_error **ret_err);
/* `args_json` is a JSON object; `result_json` may be NULL. */
TR_PUBLIC int tr_tool_registry_add_example(tr_tool_registry *reg, const char *id, const char *description,
                                           const char *args_json, const char *result_json, tr_error **ret_err);

/* Called after the registry's tools changed: an MCP server sent
 * notifications/tools/list_changed and its tools were listed again.  The
 * registry notices that when it next talks to the server (a call, or a
 * tr_gateway_list_tools), and calls `fn` from that thread, without locks
 * held.  Tools the new list drops stay callable by calls already running. */
typedef void (*tr_tools_changed_fn)(void *userdata);
TR_PUBLIC void tr_tool_registry_set_change_callback(tr_tool_registry *reg, tr_tools_changed_fn fn, void *userdata);

/* How many tools the registry holds. */
TR_PUBLIC size_t tr_tool_registry_count(const tr_tool_registry *reg);

/* A gateway serving the registry (search, describe, examples, run, chain).
 * The gateway holds a reference to the registry: free them in any order.
 * Free the gateway with tr_gateway_free(). */
TR_PUBLIC int tr_tool_registry_gateway(tr_tool_registry *reg, tr_gateway **ret_gateway, tr_error **ret_err);

#ifdef __cplusplus
}
#endif
