/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `toolruntime image build`: builds the sandbox images from the recipes in
 * images/.  Image building is a setup step, not an execution, so it runs the
 * recipe scripts (mmdebstrap, umoci, containerd's own import) rather than
 * the library's client.
 */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "tr-config.h"
#include "util/macros.h"
#include "util/strv.h"

static const char image_help[] =
        "Usage: toolruntime image build [OPTIONS]\n"
        "       toolruntime image pull [OPTIONS] REF   (see image pull --help)\n"
        "\n"
        "Build the sandbox images.  Idempotent: a run with nothing to do is quick.\n"
        "\n"
        "Container image (default): Debian + python3 + the toolruntime SDK, user 65534,\n"
        "imported into containerd.\n"
        "      --ref REF          image reference (default toolruntime-sandbox:latest)\n"
        "      --namespace NS     containerd namespace (default \"default\")\n"
        "      --socket PATH      containerd socket (default /run/containerd/containerd.sock)\n"
        "\n"
        "VM images (--vm): the guest kernel (Debian's cloud kernel) and the read-only\n"
        "root image with the guest agent, for the kata backend.\n"
        "      --vm               build the VM images instead of the container image\n"
        "      --out DIR          where the VM images go (default /var/lib/toolruntime/vm)\n"
        "\n"
        "  -h, --help             show this help\n";

/* The guest agent that goes into the VM images: the one built next to this
 * binary when it runs from a build tree, else the installed one.  The agent
 * must match the host library's channel codec, so never guess further. */
static char *find_agent(void) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                self[n] = '\0';
                char *slash = strrchr(self, '/');
                if (slash) {
                        *slash = '\0';
                        char *built = NULL;
                        if (asprintf(&built, "%s/../../guest/agent/toolruntime-agent", self) >= 0) {
                                if (access(built, X_OK) == 0)
                                        return built;
                                free(built);
                        }
                }
        }
        if (access(TR_LIBEXEC_DIR "/toolruntime-agent", X_OK) == 0)
                return strdup(TR_LIBEXEC_DIR "/toolruntime-agent");
        return NULL;
}

int cli_image(int argc, char **argv) {
        /* The first word that is not an option (nor an option's value) names
         * the action; each action parses the whole argv with its own flags. */
        for (int i = 1; i < argc; i++) {
                bool after_value_opt = i > 1 && argv[i - 1][0] == '-' && !strchr(argv[i - 1], '=') &&
                                       !streq(argv[i - 1], "--vm") && !streq(argv[i - 1], "--no-pull");
                if (argv[i][0] == '-' || after_value_opt)
                        continue;
                if (streq(argv[i], "pull"))
                        return cli_image_pull(argc, argv);
                break;
        }
        static const struct option opts[] = {
                { "ref", required_argument, NULL, 'r' },
                { "namespace", required_argument, NULL, 'n' },
                { "socket", required_argument, NULL, 's' },
                { "vm", no_argument, NULL, 'V' },
                { "out", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *ref = NULL, *ns = NULL, *sock = NULL, *out = NULL;
        bool vm = false;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'r': ref = optarg; break;
                case 'n': ns = optarg; break;
                case 's': sock = optarg; break;
                case 'V': vm = true; break;
                case 'o': out = optarg; break;
                case 'h': fputs(image_help, stdout); return 0;
                default: return cli_usage_error("image", "invalid arguments");
                }
        }
        if (optind >= argc)
                return cli_usage_error("image", "no action given (known: build, pull)");
        if (!streq(argv[optind], "build"))
                return cli_usage_error("image", "unknown action '%s' (known: build, pull)", argv[optind]);
        if (optind + 1 < argc)
                return cli_usage_error("image", "unexpected argument '%s'", argv[optind + 1]);
        if (vm && (ref || ns || sock))
                return cli_usage_error("image",
                                       "--ref, --namespace and --socket are for the container image, not --vm");
        if (!vm && out)
                return cli_usage_error("image", "--out is for --vm");

        _cleanup_free_ char *script = NULL;
        if (asprintf(&script, "%s/%s", cli_images_dir(), vm ? "vm/build.sh" : "sandbox/build.sh") < 0)
                return CLI_EXIT_ERROR;
        if (access(script, R_OK) < 0) {
                fprintf(stderr, "toolruntime: image recipe %s is missing (set TOOLRUNTIME_IMAGES_DIR?)\n", script);
                return CLI_EXIT_ERROR;
        }
        _cleanup_strv_ char **args = NULL;
        int r = tr__strv_push(&args, "/bin/sh") | tr__strv_push(&args, script);
        const struct {
                const char *flag, *val;
        } pass[] = { { "--ref", ref }, { "--namespace", ns }, { "--socket", sock }, { "--out", out } };
        for (size_t i = 0; i < ARRAY_SIZE(pass); i++)
                if (pass[i].val)
                        r |= tr__strv_push(&args, pass[i].flag) | tr__strv_push(&args, pass[i].val);
        _cleanup_free_ char *agent = vm ? find_agent() : NULL;
        if (agent)
                r |= tr__strv_push(&args, "--agent") | tr__strv_push(&args, agent);
        if (r < 0)
                return CLI_EXIT_ERROR;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                perror("toolruntime: fork");
                return CLI_EXIT_ERROR;
        }
        if (pid == 0) {
                execv(args[0], args);
                _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return CLI_EXIT_ERROR;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return 0;
        fprintf(stderr, "toolruntime: image build failed\n");
        return CLI_EXIT_ERROR;
}
