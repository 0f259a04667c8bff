/* SPDX-License-Identifier: Apache-2.0 */
/* `toolruntime gc`: collect what killed callers left behind. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "util/handles.h"

static const char gc_help[] = "Usage: toolruntime gc [OPTIONS]\n"
                              "\n"
                              "Remove what killed callers left behind: in containerd, the tasks, containers,\n"
                              "snapshots and leases labelled io.toolruntime.owner, and their FIFO and gateway\n"
                              "directories under /run/toolruntime; for the kata backend, the QEMU processes,\n"
                              "their state records under /run/toolruntime/vm, and the jail directories\n"
                              "(/run/toolruntime/qemu) and cgroups of QEMUs that are gone.\n"
                              "\n"
                              "Every sandbox records its owner: the calling process's pid, that process's\n"
                              "start time, the boot id and the pid namespace.  gc removes at once what\n"
                              "belongs to an owner that is gone (no such pid, or another process under it,\n"
                              "or another boot), and whatever is past its expiry (its deadline plus 5\n"
                              "minutes); what a live owner holds is never touched, so executions running\n"
                              "in other processes are safe.  An owner in another pid namespace cannot be\n"
                              "checked from here: only the expiry applies to its sandboxes.  --all removes\n"
                              "every one of ours (a directory a live execution holds is always kept).\n"
                              "\n"
                              "      --socket PATH      containerd socket (default /run/containerd/containerd.sock;\n"
                              "                         without --socket, a missing containerd is skipped)\n"
                              "      --namespace NS     containerd namespace (default \"default\")\n"
                              "      --vm-image-cache DIR  converted VM root images (default\n"
                              "                         /var/lib/toolruntime/vm/images)\n"
                              "      --all              also remove what live owners hold (only when no execution\n"
                              "                         can be running)\n"
                              "  -v, --verbose          say what is removed, and why\n"
                              "  -h, --help             show this help\n"
                              "\n"
                              "Exit status: 0 when everything found was removed; 125 when something could\n"
                              "not be (it is left for the next gc).\n";

int cli_gc(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "namespace", required_argument, NULL, 'n' },
                { "all", no_argument, NULL, 'a' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "vm-image-cache", required_argument, NULL, 'C' },
                { 0 },
        };
        tr_containerd_config cfg = { .size = sizeof(tr_containerd_config) };
        bool all = false;
        const char *vm_cache = NULL;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
                switch (c) {
                case 's': cfg.socket_path = optarg; break;
                case 'n': cfg.namespace_name = optarg; break;
                case 'a': all = true; break;
                case 'C': vm_cache = optarg; break;
                case 'v': cfg.log = cli_log; break;
                case 'h': fputs(gc_help, stdout); return 0;
                default: return cli_usage_error("gc", "invalid arguments");
                }
        }
        if (optind < argc)
                return cli_usage_error("gc", "unexpected argument '%s'", argv[optind]);
        unsigned removed = 0, vm_removed = 0;
        int status = 0;
        _cleanup_(tr_error_freep) tr_error *err = NULL, *vm_err = NULL;
        /* The VMs first: they need no daemon. */
        if (tr_kata_gc(NULL, all, cfg.log, NULL, &vm_removed, &vm_err) < 0) {
                cli_print_error(vm_err);
                status = CLI_EXIT_ERROR;
        }
        if (tr_containerd_gc_ex(&cfg, all, &removed, &err) < 0) {
                /* No containerd here (and none asked for): nothing of it
                 * to collect. */
                bool absent = !cfg.socket_path && tr_error_code(err) == TR_E_CONTAINERD_NOT_AVAILABLE;
                if (!absent) {
                        cli_print_error(err);
                        status = CLI_EXIT_ERROR;
                }
        }
        removed += vm_removed;
        /* Converted VM root images: only with containerd's image list (a
         * daemon that does not answer leaves them all in place). */
        unsigned img_removed = 0;
        if (cli_vm_image_gc(&cfg, vm_cache, cfg.log != NULL, &img_removed) < 0 && cfg.socket_path) {
                fprintf(stderr, "toolruntime: gc: cannot list containerd's images: converted VM root images kept\n");
                status = CLI_EXIT_ERROR;
        }
        removed += img_removed;
        printf("gc: removed %u object%s\n", removed, removed == 1 ? "" : "s");
        return status;
}
