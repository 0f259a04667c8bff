/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tool registry's internal model, shared by its parts:
 *
 *   registry.c          the registry and its tools (metadata checks, lookup,
 *                       environment), C callbacks, tags and examples;
 *   registry_manifest.c tools manifests;
 *   registry_mcp.c      MCP servers and their tool-list changes;
 *   registry_gateway.c  the tr_gateway_ops on top: search, describe,
 *                       examples, run and run_chain.
 *
 * Concurrency: tools are only ever added, never removed or moved, while the
 * registry lives (the array holds pointers), so a tool found under the read
 * lock stays valid after the lock is dropped; a tool runs without any lock
 * held.  Metadata that add_tag/add_example may change is read under the lock.
 * Documents returned to callers are built fresh from text per call: jansson
 * values are never serialised from two threads at once.
 */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/callctx.h"
#include "gateway/mcp.h"
#include "toolruntime.h"

#define MAX_MANIFEST       (4 * 1024 * 1024)
#define MAX_MANIFEST_TOOLS 1024
#define MAX_ARGV           64
#define MAX_ARG_LEN        4096
#define MAX_ENV_NAMES      64
#define DEFAULT_TIMEOUT_MS 30000
#define MAX_TIMEOUT_MS     (10 * 60 * 1000)
#define DEFAULT_MAX_OUTPUT (256 * 1024)
/* A result must fit in one gateway frame with its envelope. */
#define MAX_RESULT           (1024 * 1024 - 4096)
#define DEFAULT_SEARCH_LIMIT 10
#define MAX_SEARCH_LIMIT     100
#define SUMMARY_DESCRIPTION  200
/* Tool-list refreshes (list_changed) per MCP server: each retires the old
 * tools for good, so a server that changes its list forever is cut off. */
#define MAX_REFRESHES 64

/* SRC_BUILTIN is a manifest tool with "builtin": "echo" instead of a
 * command: it returns its arguments without starting a process, so that a
 * benchmark measures the gateway, not fork and exec. */
typedef enum src_kind { SRC_MANIFEST, SRC_MCP, SRC_CALLBACK, SRC_BUILTIN } src_kind;

typedef struct tool {
        char *id;
        char *ns;
        char *name;
        char *title;       /* may be NULL */
        char *description; /* sanitised */
        json_t *schema;    /* checked; read-only once added */
        char *schema_text;
        char *output_schema_text; /* may be NULL */
        char *annotations_text;   /* may be NULL */
        char **tags;              /* lower-case copies for search live in tags_lc */
        char **tags_lc;
        char *examples_text; /* a JSON array */
        size_t n_examples;
        src_kind kind;
        /* manifest */
        char **argv;
        char *cwd;
        char **env_names; /* the caller's variables it is given: spawn.h */
        int64_t timeout_ms;
        size_t max_output;
        /* mcp */
        tr__mcp *srv; /* owned by the registry */
        char *remote_name;
        /* callback */
        tr_tool_fn fn;
        void *userdata;
} tool;

struct tr_tool_registry {
        atomic_int refs;
        pthread_rwlock_t lock;
        tool **tools;
        size_t n;
        tr__mcp **servers;
        char **server_ns; /* each server's namespace */
        size_t n_servers;
        /* Tools an MCP server's list change replaced.  Kept until the end:
         * a call may still use one (calls hold no lock while they run).
         * Bounded by MAX_REFRESHES per server. */
        tool **retired;
        size_t n_retired;
        unsigned *refreshes;
        tr_tools_changed_fn on_change;
        void *on_change_ud;
        tr_log_fn log;
        void *log_ud;
        /* HOME of every tool and MCP server of this registry: a private
         * directory made when the first one starts (a registry without
         * processes leaves nothing behind, even when killed), removed with
         * the registry.  Under home_lock, not `lock`: tools start while
         * readers hold that. */
        pthread_mutex_t home_lock;
        char *home;
        char **mcp_env_names; /* tr_tool_registry_pass_env */
        int64_t mcp_start_ms;
        int64_t mcp_call_ms;
};

void tr__tool_free(tool *t);
void tr__tool_freep(tool **t);
/* Log through the registry's logger with up to two key/value pairs (k1 or
 * k2 NULL: fewer). */
void tr__reg_log(tr_tool_registry *reg, tr_log_level level, const char *msg, const char *k1, const char *v1,
                 const char *k2, const char *v2);
char *tr__lowercase(const char *s);
/* Compact JSON text of any value; NULL on -ENOMEM. */
char *tr__reg_dump(json_t *j);
/* Fill the metadata shared by every source from already-extracted fields.
 * Everything is validated and copied; fails TR_E_INVALID_REQUEST (op `op`)
 * saying what is wrong. */
int tr__tool_set_meta(tool *t, const char *ns, const char *name, const char *title, const char *description,
                      json_t *schema, json_t *output_schema, json_t *tags, json_t *examples, json_t *annotations,
                      const char *op, tr_error **ret_err);
/* A variable name a tool may get from the caller. */
bool tr__reg_env_name_ok(const char *n);
/* Drop a reference; the last one frees the registry and stops its servers. */
void tr__reg_unref(tr_tool_registry *reg);
/* The environment a tool or MCP server of `reg` starts with (spawn.h). */
int tr__reg_tool_envp(tr_tool_registry *reg, char *const *names, char ***ret_envp, const char *op, tr_error **ret_err);
/* The tool with `id`, under reg->lock (_locked) or taking it. */
tool *tr__reg_find_locked(const tr_tool_registry *reg, const char *id);
tool *tr__reg_find(tr_tool_registry *reg, const char *id);
bool tr__reg_ns_exists_locked(const tr_tool_registry *reg, const char *ns);
/* Add `n` tools at once (all or nothing: a duplicate id fails them all);
 * takes ownership of the tools on success. */
int tr__reg_add_all(tr_tool_registry *reg, tool **v, size_t n, const char *op, tr_error **ret_err);
/* Relist the tools of MCP servers that said list_changed (registry_mcp.c),
 * for the tool call `ctx` (may be NULL). */
void tr__reg_refresh_changed(tr_tool_registry *reg, const tr_call_ctx *ctx);
