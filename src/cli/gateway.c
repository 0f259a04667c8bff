/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway a CLI execution exposes to its snippet: the tools of a
 * manifest and of MCP servers, or none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/handles.h"
#include "util/macros.h"

TR_DEFINE_FREEP(tr_tool_registry, tr_tool_registry_free)

int cli_registry_new(const char *tools, const char **mcp, size_t n_mcp, const char **env, size_t n_env, tr_log_fn log,
                     void *log_ud, tr_tool_registry **ret_reg, tr_error **ret_err) {
        _cleanup_(tr_tool_registry_freep) tr_tool_registry *reg = NULL;
        int r = tr_tool_registry_new(&reg, ret_err);
        if (r < 0)
                return r;
        tr_tool_registry_set_logger(reg, log, log_ud);
        /* Before any server starts: MCP servers get these of our variables. */
        for (size_t i = 0; i < n_env; i++)
                if ((r = tr_tool_registry_pass_env(reg, env[i], ret_err)) < 0)
                        return r;
        if (tools && (r = tr_tool_registry_add_manifest(reg, tools, ret_err)) < 0)
                return r;
        for (size_t i = 0; i < n_mcp; i++) {
                /* "NS=COMMAND …" names the namespace; without it, the
                 * server's own name (serverInfo.name).  A command never
                 * starts with NAME= since it runs without a shell. */
                const char *cmd = mcp[i];
                size_t n = strspn(cmd, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.");
                _cleanup_free_ char *ns = n > 0 && cmd[n] == '=' ? strndup(cmd, n) : NULL;
                if (ns)
                        cmd += n + 1;
                if ((r = tr_tool_registry_add_mcp(reg, cmd, ns, ret_err)) < 0)
                        return r;
        }
        *ret_reg = TAKE_PTR(reg);
        return 0;
}

int cli_gateway_new(const char *tools, const char **mcp, size_t n_mcp, tr_log_fn log, void *log_ud, tr_gateway **ret_gw,
                    tr_error **ret_err) {
        return cli_gateway_new_env(tools, mcp, n_mcp, NULL, 0, log, log_ud, ret_gw, ret_err);
}

int cli_gateway_new_env(const char *tools, const char **mcp, size_t n_mcp, const char **env, size_t n_env,
                        tr_log_fn log, void *log_ud, tr_gateway **ret_gw, tr_error **ret_err) {
        if (!tools && n_mcp == 0)
                return tr_gateway_new_empty(ret_gw, ret_err);
        _cleanup_(tr_tool_registry_freep) tr_tool_registry *reg = NULL;
        int r = cli_registry_new(tools, mcp, n_mcp, env, n_env, log, log_ud, &reg, ret_err);
        if (r < 0)
                return r;
        /* The gateway keeps the registry alive; our reference goes. */
        return tr_tool_registry_gateway(reg, ret_gw, ret_err);
}
