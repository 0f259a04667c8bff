/* SPDX-License-Identifier: Apache-2.0 */
/* `toolruntime tools`: what the configured tool sources offer, as compact
 * signatures or as the typed stubs (.pyi) of the in-sandbox bindings. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/handles.h"
#include "util/macros.h"

static const char tools_help[] =
        "Usage: toolruntime tools (list | stubs) [OPTIONS]\n"
        "\n"
        "  list                     one line per tool: its Python signature as a snippet calls\n"
        "                           it (module.function(args) -> result  # description)\n"
        "  stubs                    the typed stubs (.pyi) of toolruntime.tools.<module>, one\n"
        "                           '# file:' section per tool namespace, for type-checking\n"
        "                           snippets (mypy, pyright)\n"
        "\n"
        "      --tools FILE         a tools manifest (JSON)\n"
        "      --mcp '[NS=]CMD ARGS'  an MCP server (stdio) under namespace NS; repeatable\n"
        "      --module NAME        only this module (a namespace's sanitised name)\n"
        "  -v, --verbose            log what the gateway does on stderr\n";

enum { OPT_TOOLS = 0x100, OPT_MCP, OPT_MODULE };

static const struct option tools_opts[] = {
        { "tools", required_argument, NULL, OPT_TOOLS },
        { "mcp", required_argument, NULL, OPT_MCP },
        { "module", required_argument, NULL, OPT_MODULE },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
};

int cli_tools(int argc, char **argv) {
        const char *tools = NULL, *module = NULL;
        _cleanup_free_ const char **mcp = NULL;
        size_t n_mcp = 0;
        bool verbose = false;
        int c;
        while ((c = getopt_long(argc, argv, "vh", tools_opts, NULL)) != -1) {
                switch (c) {
                case 'h': fputs(tools_help, stdout); return 0;
                case 'v': verbose = true; break;
                case OPT_TOOLS: tools = optarg; break;
                case OPT_MODULE: module = optarg; break;
                case OPT_MCP: {
                        const char **m = realloc(mcp, (n_mcp + 1) * sizeof(*m));
                        if (!m)
                                return CLI_EXIT_ERROR;
                        mcp = m;
                        mcp[n_mcp++] = optarg;
                        break;
                }
                default: return cli_usage_error("tools", "invalid arguments");
                }
        }
        if (optind >= argc)
                return cli_usage_error("tools", "no action: give list or stubs");
        const char *action = argv[optind++];
        if (optind < argc)
                return cli_usage_error("tools", "unexpected argument '%s'", argv[optind]);
        tr_bindings_kind kind;
        if (streq(action, "list"))
                kind = TR_BINDINGS_SIGNATURES;
        else if (streq(action, "stubs"))
                kind = TR_BINDINGS_STUB;
        else
                return cli_usage_error("tools", "unknown action '%s' (known: list, stubs)", action);

        tr_error *err = NULL;
        _cleanup_(tr_error_freep) tr_error *err_owner = NULL;
        _cleanup_(tr_gateway_freep) tr_gateway *gw = NULL;
        _cleanup_free_ char *text = NULL;
        int r = cli_gateway_new(tools, mcp, n_mcp, verbose ? cli_log : NULL, NULL, &gw, &err);
        if (r >= 0)
                r = tr_gateway_python_bindings(gw, module, kind, &text, NULL, &err);
        err_owner = err;
        if (r < 0) {
                cli_print_error(err);
                return CLI_EXIT_ERROR;
        }
        fputs(text, stdout);
        return fflush(stdout) == 0 ? 0 : CLI_EXIT_ERROR;
}
