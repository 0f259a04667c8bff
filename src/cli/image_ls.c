/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `toolruntime image ls` and `image rm`: the images toolruntime built or
 * pulled (the library goes by the io.toolruntime.owner label, so other
 * tools' images in the same namespace are never touched).  rm also drops
 * the VM root image cached for that image digest (vm_image.c).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "toolruntime/containerd.h"
#include "util/handles.h"
#include "util/macros.h"

static const char ls_rm_help[] =
        "Usage: toolruntime image ls [--socket PATH] [--namespace NS] [--json]\n"
        "       toolruntime image rm [--socket PATH] [--namespace NS] [--vm-image-cache DIR] REF...\n"
        "\n"
        "ls lists the images toolruntime built or pulled (name, digest, source);\n"
        "rm removes them, with the content and snapshots only they held and their\n"
        "cached VM root images.  Images toolruntime did not make are left alone.\n";

int cli_image_ls_rm(int argc, char **argv) {
        static const struct option opts[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "socket", required_argument, NULL, 's' },
                { "vm-image-cache", required_argument, NULL, 'C' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        tr_containerd_config cfg = { .size = sizeof(tr_containerd_config) };
        const char *vm_cache = NULL;
        bool json = false;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'n': cfg.namespace_name = optarg; break;
                case 's': cfg.socket_path = optarg; break;
                case 'C': vm_cache = optarg; break;
                case 'j': json = true; break;
                case 'h': fputs(ls_rm_help, stdout); return 0;
                default: return cli_usage_error("image", "invalid arguments");
                }
        }
        /* argv[optind] is "ls" or "rm" (cli_image found it). */
        bool rm = streq(argv[optind], "rm");
        int first = optind + 1;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        if (!rm) {
                if (first < argc)
                        return cli_usage_error("image", "ls takes no argument ('%s')", argv[first]);
                tr_image_entry *v = NULL;
                size_t n = 0;
                if (tr_containerd_image_list(&cfg, &v, &n, &err) < 0) {
                        cli_print_error(err);
                        return CLI_EXIT_ERROR;
                }
                json_t *arr = json ? json_array() : NULL;
                if (!json)
                        printf("%-48s %-8s %s\n", "NAME", "SOURCE", "DIGEST");
                for (size_t i = 0; i < n; i++) {
                        if (arr)
                                json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "name", v[i].name, "source",
                                                                     v[i].source, "digest", v[i].digest));
                        else if (!json)
                                printf("%-48s %-8s %s\n", v[i].name, *v[i].source ? v[i].source : "-", v[i].digest);
                }
                tr_image_entries_free(v, n);
                if (json) {
                        if (!arr || json_dumpf(arr, stdout, JSON_COMPACT) < 0) {
                                json_decref(arr);
                                return CLI_EXIT_ERROR;
                        }
                        json_decref(arr);
                        fputc('\n', stdout);
                }
                return 0;
        }
        if (first >= argc)
                return cli_usage_error("image", "rm needs at least one REF");
        int status = 0;
        for (int i = first; i < argc; i++) {
                _cleanup_free_ char *digest = NULL;
                tr_error_free(TAKE_PTR(err));
                if (tr_containerd_image_remove(&cfg, argv[i], &digest, &err) < 0) {
                        cli_print_error(err);
                        status = CLI_EXIT_ERROR;
                        continue;
                }
                cli_vm_image_drop(vm_cache, digest);
                printf("removed %s\n", argv[i]);
        }
        return status;
}
