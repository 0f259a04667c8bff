/* SPDX-License-Identifier: Apache-2.0 */
/* MCP servers as a tool source: start, list, namespace, and the tool-list
 * changes a server announces.  See registry.h. */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/registry.h"
#include "gateway/mcp.h"
#include "gateway/protocol.h"
#include "gateway/schema.h"
#include "gateway/spawn.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

/* ---- MCP servers ----------------------------------------------------------- */

/* A namespace from the server's name: lower-case [a-z0-9_-], made unique. */
static char *derive_ns_locked(tr_tool_registry *reg, const char *server_name) {
        char base[48];
        size_t o = 0;
        for (const char *p = server_name ? server_name : ""; *p && o < sizeof(base) - 1; p++) {
                unsigned char c = (unsigned char) tolower((unsigned char) *p);
                if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')
                        base[o++] = (char) c;
                else if (o > 0 && base[o - 1] != '-')
                        base[o++] = '-';
        }
        while (o > 0 && base[o - 1] == '-')
                o--;
        base[o] = 0;
        if (!o)
                snprintf(base, sizeof(base), "mcp");
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", base);
        for (int i = 2; tr__reg_ns_exists_locked(reg, buf) && i < 1000; i++)
                snprintf(buf, sizeof(buf), "%s-%d", base, i);
        return strdup(buf);
}

/* A tool of MCP server `srv` from its tools/list entry `jt`; fails
 * TR_E_INVALID_REQUEST (op "mcp") saying why the tool is unusable. */
static int mcp_tool(json_t *jt, const char *ns, tr__mcp *srv, tool **ret, tr_error **ret_err) {
        static const char op[] = "mcp";
        if (!json_is_object(jt))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "a tool is not an object");
        json_t *name = json_object_get(jt, "name");
        json_t *desc = json_object_get(jt, "description");
        json_t *title = json_object_get(jt, "title");
        if (!json_is_string(name) || strchr(json_string_value(name), ':'))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "a tool has no valid \"name\"");
        if ((desc && !json_is_string(desc) && !json_is_null(desc)) ||
            (title && !json_is_string(title) && !json_is_null(title)))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "tool %.64s: \"description\"/\"title\" must be strings", json_string_value(name));
        _cleanup_(tr__tool_freep) tool *t = calloc(1, sizeof(*t));
        if (!t)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        t->kind = SRC_MCP;
        int r = tr__tool_set_meta(t, ns, json_string_value(name), json_string_value(title), json_string_value(desc),
                                  json_object_get(jt, "inputSchema"), json_object_get(jt, "outputSchema"), NULL, NULL,
                                  json_object_get(jt, "annotations"), op, ret_err);
        if (r < 0) {
                if (ret_err)
                        tr_error_prefix(*ret_err, "tool %.64s", json_string_value(name));
                return r;
        }
        t->srv = srv;
        t->remote_name = strdup(json_string_value(name));
        t->timeout_ms = 0;
        if (!t->remote_name)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        *ret = TAKE_PTR(t);
        return 0;
}

TR_PUBLIC int tr_tool_registry_add_mcp_argv(tr_tool_registry *reg, const char *const *argv, const char *ns,
                                            tr_error **ret_err) {
        static const char op[] = "mcp";
        if (!reg || !argv || !argv[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "empty MCP command");
        if (ns && (!tr__tool_name_valid(ns, TR_TOOL_MAX_NAME) || strchr(ns, '/')))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "invalid namespace \"%s\"", ns);
        pthread_rwlock_rdlock(&reg->lock);
        int64_t start_ms = reg->mcp_start_ms, call_ms = reg->mcp_call_ms;
        tr_log_fn log = reg->log;
        void *log_ud = reg->log_ud;
        _cleanup_strv_ char **envp = NULL;
        int r = tr__reg_tool_envp(reg, reg->mcp_env_names, &envp, op, ret_err);
        pthread_rwlock_unlock(&reg->lock);
        if (r < 0)
                return r;

        tr__mcp *srv = NULL;
        r = tr__mcp_start(argv, envp, start_ms, call_ms, log, log_ud, &srv, ret_err);
        if (r < 0)
                return r;
        json_t *list = NULL;
        r = tr__mcp_list_tools(srv, NULL, &list, ret_err);
        if (r < 0) {
                tr__mcp_free(srv);
                return r;
        }
        /* Namespace choice and insertion under one write lock, so that two
         * servers added at once cannot pick the same derived namespace. */
        pthread_rwlock_wrlock(&reg->lock);
        _cleanup_free_ char *name = ns ? strdup(ns) : derive_ns_locked(reg, tr__mcp_server_name(srv));
        tr__mcp **ns_srv = realloc(reg->servers, (reg->n_servers + 1) * sizeof(*ns_srv));
        if (ns_srv)
                reg->servers = ns_srv;
        char **ns_names = ns_srv ? realloc(reg->server_ns, (reg->n_servers + 1) * sizeof(*ns_names)) : NULL;
        if (ns_names)
                reg->server_ns = ns_names;
        unsigned *ns_ref = ns_names ? realloc(reg->refreshes, (reg->n_servers + 1) * sizeof(*ns_ref)) : NULL;
        if (ns_ref)
                reg->refreshes = ns_ref;
        char *ns_copy = ns_ref && name ? strdup(name) : NULL;
        tool **nt = ns_copy ? realloc(reg->tools, (reg->n + json_array_size(list) + 1) * sizeof(*nt)) : NULL;
        if (nt)
                reg->tools = nt;
        if (!name || !ns_srv || !nt) {
                free(ns_copy);
                pthread_rwlock_unlock(&reg->lock);
                json_decref(list);
                tr__mcp_free(srv);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        }
        if (ns && tr__reg_ns_exists_locked(reg, ns)) {
                free(ns_copy);
                pthread_rwlock_unlock(&reg->lock);
                json_decref(list);
                tr__mcp_free(srv);
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "namespace \"%s\" is already in use", ns);
        }
        size_t added = 0, skipped = 0;
        size_t i;
        json_t *jt;
        json_array_foreach(list, i, jt) {
                tool *t = NULL;
                _cleanup_(tr_error_freep) tr_error *err = NULL;
                r = mcp_tool(jt, name, srv, &t, &err);
                if (r == 0 && tr__reg_find_locked(reg, t->id)) {
                        r = tr_error_set(&err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "duplicate tool %.200s",
                                         t->id);
                        tr__tool_free(t);
                }
                if (r < 0) {
                        skipped++;
                        /* The registry's own lock is held: log through the
                         * captured callback. */
                        if (log) {
                                const char *kv[] = { "namespace", name, "reason",
                                                     err ? tr_error_message(err) : "out of memory", NULL };
                                log(log_ud, TR_LOG_WARN, "MCP tool skipped", kv);
                        }
                        continue;
                }
                reg->tools[reg->n++] = t;
                added++;
        }
        reg->servers[reg->n_servers] = srv;
        reg->server_ns[reg->n_servers] = ns_copy;
        reg->refreshes[reg->n_servers++] = 0;
        pthread_rwlock_unlock(&reg->lock);
        json_decref(list);
        char counts[64];
        snprintf(counts, sizeof(counts), "%zu added, %zu skipped", added, skipped);
        tr__reg_log(reg, TR_LOG_INFO, "MCP server ready", "namespace", name, "tools", counts);
        return 0;
}

/* Swap in server i's new tool list (write lock held).  The old tools are
 * retired, not freed: a call may still be using one. */
static bool swap_tools_locked(tr_tool_registry *reg, size_t i, json_t *list) {
        tr__mcp *srv = reg->servers[i];
        size_t n_old = 0;
        for (size_t k = 0; k < reg->n; k++)
                n_old += reg->tools[k]->srv == srv;
        tool **ret = realloc(reg->retired, (reg->n_retired + n_old + 1) * sizeof(*ret));
        if (ret)
                reg->retired = ret;
        tool **nt = ret ? realloc(reg->tools, (reg->n + json_array_size(list) + 1) * sizeof(*nt)) : NULL;
        if (!nt)
                return false;
        reg->tools = nt;
        size_t o = 0;
        for (size_t k = 0; k < reg->n; k++) {
                if (reg->tools[k]->srv == srv)
                        reg->retired[reg->n_retired++] = reg->tools[k];
                else
                        reg->tools[o++] = reg->tools[k];
        }
        reg->n = o;
        size_t j;
        json_t *jt;
        json_array_foreach(list, j, jt) {
                tool *t = NULL;
                /* Tools that became invalid are dropped, as at the start. */
                if (mcp_tool(jt, reg->server_ns[i], srv, &t, NULL) < 0)
                        continue;
                if (tr__reg_find_locked(reg, t->id)) {
                        tr__tool_free(t);
                        continue;
                }
                reg->tools[reg->n++] = t;
        }
        reg->refreshes[i]++;
        return true;
}

/* List the tools of every MCP server that said list_changed again, and swap
 * them in; then tell whoever asked (tr_tool_registry_set_change_callback).
 * The flag is seen only while this client talks to the server, so a change
 * shows up after the next call or list, not the moment it happens. */
void tr__reg_refresh_changed(tr_tool_registry *reg, const tr_call_ctx *ctx) {
        bool changed = false;
        for (size_t i = 0;; i++) {
                pthread_rwlock_rdlock(&reg->lock);
                bool more = i < reg->n_servers;
                tr__mcp *srv = more ? reg->servers[i] : NULL;
                unsigned count = more ? reg->refreshes[i] : 0;
                pthread_rwlock_unlock(&reg->lock);
                if (!more)
                        break;
                if (!tr__mcp_take_list_changed(srv))
                        continue;
                if (count >= MAX_REFRESHES) {
                        tr__reg_log(reg, TR_LOG_WARN, "MCP server changes its tools too often: keeping the list it had",
                                    "server", tr__mcp_server_name(srv) ? tr__mcp_server_name(srv) : "", NULL, NULL);
                        continue;
                }
                json_t *list = NULL;
                if (tr__mcp_list_tools(srv, ctx, &list, NULL) < 0) {
                        tr__reg_log(reg, TR_LOG_WARN, "MCP tools/list after list_changed failed: keeping the old list",
                                    "server", tr__mcp_server_name(srv) ? tr__mcp_server_name(srv) : "", NULL, NULL);
                        continue;
                }
                pthread_rwlock_wrlock(&reg->lock);
                changed = swap_tools_locked(reg, i, list) || changed;
                pthread_rwlock_unlock(&reg->lock);
                json_decref(list);
        }
        if (!changed)
                return;
        pthread_rwlock_rdlock(&reg->lock);
        tr_tools_changed_fn fn = reg->on_change;
        void *ud = reg->on_change_ud;
        pthread_rwlock_unlock(&reg->lock);
        tr__reg_log(reg, TR_LOG_INFO, "MCP tools changed", NULL, NULL, NULL, NULL);
        if (fn)
                fn(ud);
}

TR_PUBLIC void tr_tool_registry_set_change_callback(tr_tool_registry *reg, tr_tools_changed_fn fn, void *userdata) {
        if (!reg)
                return;
        pthread_rwlock_wrlock(&reg->lock);
        reg->on_change = fn;
        reg->on_change_ud = userdata;
        pthread_rwlock_unlock(&reg->lock);
}

TR_PUBLIC int tr_tool_registry_add_mcp(tr_tool_registry *reg, const char *command_line, const char *ns,
                                       tr_error **ret_err) {
        _cleanup_strv_ char **argv = NULL;
        int r = tr__split_command(command_line, &argv, ret_err);
        if (r < 0)
                return r;
        return tr_tool_registry_add_mcp_argv(reg, (const char *const *) argv, ns, ret_err);
}
