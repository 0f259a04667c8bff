/* SPDX-License-Identifier: Apache-2.0 */
/* `toolruntime`: dispatch to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/macros.h"

static const char main_help[] = "Usage: toolruntime [--version] [--help] COMMAND [ARGS]\n"
                                "\n"
                                "Run untrusted code (Python, sh) in real isolation, with hard limits,\n"
                                "and let it call host tools through a narrow gateway.\n"
                                "\n"
                                "Commands:\n"
                                "  exec     run a snippet in a sandbox\n"
                                "  doctor   say which backends are usable here, and what to install if not\n"
                                "  image    build the sandbox images (container image, VM kernel + root image)\n"
                                "  gc       remove what killed callers left (containers, VMs)\n"
                                "  mcp      serve MCP over stdio: an `execute` tool running code that calls tools\n"
                                "  tools    list the configured tools, print their typed Python stubs\n"
                                "  serve    run the HTTP service (/v1/execute, sessions, Piston's /api/v2, /metrics)\n"
                                "  session  sessions on a serve: create, exec, cp, ls, rm\n"
                                "  help     show help for a command\n"
                                "\n"
                                "Run 'toolruntime COMMAND --help' for a command's options.\n";

static const struct {
        const char *name;
        int (*fn)(int, char **);
} commands[] = {
        { "exec", cli_exec }, { "doctor", cli_doctor }, { "image", cli_image }, { "gc", cli_gc },
        { "mcp", cli_mcp },   { "tools", cli_tools },   { "serve", cli_serve }, { "session", cli_session },
};

int main(int argc, char **argv) {
        if (argc < 2)
                return cli_usage_error(NULL, "no command given");
        const char *cmd = argv[1];
        if (streq(cmd, "--version") || streq(cmd, "-V")) {
                printf("toolruntime %s\n", tr_version());
                return 0;
        }
        if (streq(cmd, "--help") || streq(cmd, "-h")) {
                fputs(main_help, stdout);
                return 0;
        }
        if (streq(cmd, "help")) {
                if (argc < 3 || streq(argv[2], "help") || streq(argv[2], "--help") || streq(argv[2], "-h")) {
                        fputs(main_help, stdout);
                        return 0;
                }
                for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                        if (streq(argv[2], commands[i].name)) {
                                char *hargv[] = { argv[2], (char *) "--help", NULL };
                                return commands[i].fn(2, hargv);
                        }
                return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
        }
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                if (streq(cmd, commands[i].name))
                        return commands[i].fn(argc - 1, argv + 1);
        return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
