/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `toolruntime image pull REF`, and the registry options it shares with
 * `exec` (which pulls a missing image on demand).  The pull itself is the
 * library's (tr_containerd_image_pull); this file parses flags and draws
 * the progress line on a terminal.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/handles.h"
#include "util/macros.h"

int cli_pull_option(const char *cmd, cli_pull_args *a, int c, const char *arg) {
        switch (c) {
        case CLI_OPT_INSECURE_REGISTRY:
                if (a->n_insecure >= CLI_MAX_INSECURE)
                        return cli_usage_error(cmd, "--insecure-registry: at most %d", CLI_MAX_INSECURE);
                a->insecure[a->n_insecure++] = arg;
                a->opts.insecure_registries = a->insecure;
                return 1;
        case CLI_OPT_REGISTRY_CONFIG: a->opts.registry_config = arg; return 1;
        case CLI_OPT_MAX_IMAGE_SIZE: {
                /* The library's strict parser, as for every other size. */
                _cleanup_(tr_error_freep) tr_error *perr = NULL;
                if (tr_parse_size(arg, &a->opts.max_bytes, &perr) < 0)
                        return cli_usage_error(cmd, "--max-image-size: %s", tr_error_message(perr));
                if (a->opts.max_bytes <= 0)
                        return cli_usage_error(cmd, "--max-image-size: must be more than 0");
                return 1;
        }
        case CLI_OPT_NO_PULL: a->no_pull = true; return 1;
        default: return 0;
        }
}

static void progress(void *ud, const char *what, int64_t now, int64_t total) {
        /* One line, rewritten in place: digest prefix and bytes so far. */
        fprintf(stderr, "\r%.19s  %6.1f / %6.1f MiB", what, (double) now / 1048576.0, (double) total / 1048576.0);
        fflush(stderr);
}

static const char pull_help[] =
        "Usage: toolruntime image pull [OPTIONS] REF\n"
        "\n"
        "Pull REF ([registry/]name[:tag][@sha256:...]) from its registry into containerd:\n"
        "every blob verified against its digest, layers unpacked into the snapshotter,\n"
        "the image labelled io.toolruntime.owner.  A failed pull leaves nothing behind.\n"
        "\n"
        "      --namespace NS     containerd namespace (default \"default\")\n"
        "      --socket PATH      containerd socket (default /run/containerd/containerd.sock)\n"
        "      --insecure-registry HOST[:PORT]  speak plain HTTP to this registry (repeatable;\n"
        "                         every other registry is HTTPS only)\n"
        "      --registry-config FILE  Docker config.json with credentials (default\n"
        "                         $DOCKER_CONFIG/config.json, else ~/.docker/config.json)\n"
        "      --max-image-size SIZE  refuse an image heavier than this (default 2G)\n"
        "  -h, --help             show this help\n";

int cli_image_pull(int argc, char **argv) {
        static const struct option opts[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                CLI_PULL_LONG_OPTIONS,
                { 0 },
        };
        tr_containerd_config cfg = { .size = sizeof(tr_containerd_config) };
        cli_pull_args a = { 0 };
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                int pr = cli_pull_option("image", &a, c, optarg);
                if (pr == 1)
                        continue;
                if (pr != 0)
                        return pr;
                switch (c) {
                case 'n': cfg.namespace_name = optarg; break;
                case 's': cfg.socket_path = optarg; break;
                case 'h': fputs(pull_help, stdout); return 0;
                default: return cli_usage_error("image", "invalid arguments");
                }
        }
        /* argv[optind] is "pull". */
        if (optind + 2 != argc)
                return cli_usage_error("image", "image pull takes exactly one REF");
        const char *ref = argv[optind + 1];
        if (isatty(STDERR_FILENO))
                a.opts.progress = progress;
        _cleanup_free_ char *name = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        int r = tr_containerd_image_pull(&cfg, ref, &a.opts, &name, &err);
        if (a.opts.progress)
                fputs("\r\033[K", stderr);
        if (r < 0) {
                cli_print_error(err);
                return CLI_EXIT_ERROR;
        }
        printf("%s\n", name);
        return 0;
}
