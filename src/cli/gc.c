/* SPDX-License-Identifier: Apache-2.0 */
/* `toolruntime gc`: collect what killed callers left behind in containerd. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "util/handles.h"

static const char gc_help[] = "Usage: toolruntime gc [OPTIONS]\n"
                              "\n"
                              "Remove the tasks, containers, snapshots and leases labelled\n"
                              "io.toolruntime.owner that a killed caller left behind, and its FIFO and\n"
                              "gateway directories under /run/toolruntime.  Only objects whose execution\n"
                              "deadline has passed are removed, so executions still running in other\n"
                              "processes are never touched; --all removes every one of ours (a directory\n"
                              "a live execution holds is always kept).\n"
                              "\n"
                              "      --socket PATH      containerd socket (default /run/containerd/containerd.sock)\n"
                              "      --namespace NS     containerd namespace (default \"default\")\n"
                              "      --all              also remove objects whose deadline has not passed\n"
                              "  -v, --verbose          say what is removed\n"
                              "  -h, --help             show this help\n";

int cli_gc(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' }, { "namespace", required_argument, NULL, 'n' },
                { "all", no_argument, NULL, 'a' },          { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },         { 0 },
        };
        tr_containerd_config cfg = { 0 };
        bool all = false;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
                switch (c) {
                case 's': cfg.socket_path = optarg; break;
                case 'n': cfg.namespace_name = optarg; break;
                case 'a': all = true; break;
                case 'v': cfg.log = cli_log; break;
                case 'h': fputs(gc_help, stdout); return 0;
                default: return cli_usage_error("gc", "invalid arguments");
                }
        }
        if (optind < argc)
                return cli_usage_error("gc", "unexpected argument '%s'", argv[optind]);
        unsigned removed = 0;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        if (tr_containerd_gc_ex(&cfg, all, &removed, &err) < 0) {
                cli_print_error(err);
                return CLI_EXIT_ERROR;
        }
        printf("gc: removed %u object%s\n", removed, removed == 1 ? "" : "s");
        return 0;
}
