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

static const char image_help[] =
        "Usage: toolruntime image build [OPTIONS]\n"
        "       toolruntime image pull [OPTIONS] REF   (see image pull --help)\n"
        "       toolruntime image ls [--socket PATH] [--namespace NS]\n"
        "       toolruntime image rm [--socket PATH] [--namespace NS] REF...\n"
        "\n"
        "Build the sandbox images.  Idempotent: a run with nothing to do is quick.\n"
        "\n"
        "Container image (default): Debian + python3 + the toolruntime SDK, user 65534,\n"
        "nothing setuid, imported into containerd.\n"
        "      --ref REF          image reference (default toolruntime-sandbox:latest)\n"
        "      --tag NAME         the same as --ref NAME (a custom image's name)\n"
        "      --apt PKG          a Debian package to add (repeatable; needs --tag): the\n"
        "                         same base and rules, cached by content (the same\n"
        "                         packages again do no work)\n"
        "      --recipe FILE      a recipe: lines \"tag NAME\" and \"apt PKG...\", # comments\n"
        "      --cache DIR        build cache (default /var/lib/toolruntime/cache)\n"
        "      --namespace NS     containerd namespace (default \"default\")\n"
        "      --socket PATH      containerd socket (default /run/containerd/containerd.sock)\n"
        "\n"
        "VM images (--vm): the guest kernel (Debian's cloud kernel) and the read-only\n"
        "root image with the guest agent, for the kata backend.\n"
        "      --vm               build the VM images instead of the container image\n"
        "      --out DIR          where the VM images go (default /var/lib/toolruntime/vm)\n"
        "\n"
        "ls lists the images toolruntime built or pulled (label io.toolruntime.owner);\n"
        "rm removes such images, the content and snapshots only they held, and their\n"
        "VM root images converted for the kata backend.  Both take --socket and\n"
        "--namespace.\n"
        "      --json             (ls) print one JSON array\n"
        "      --vm-image-cache DIR  (rm) the converted VM root images\n"
        "                         (default /var/lib/toolruntime/vm/images)\n"
        "\n"
        "  -h, --help             show this help\n";

#define MAX_APT 64

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

/* A Debian package name (policy 5.6.1): lowercase letters, digits, + - .,
 * at least two characters, starting alphanumeric.  Checked here because
 * the names travel to mmdebstrap as one comma-separated list. */
static bool apt_name_valid(const char *s) {
        size_t n = strlen(s);
        if (n < 2 || n > 128 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || strchr("+-.", s[i])))
                        return false;
        return true;
}

static int add_apt(char ***apt, const char *pkg) {
        if (!apt_name_valid(pkg))
                return cli_usage_error("image", "'%s' is not a Debian package name", pkg);
        if (cli_strv_len(*apt) >= MAX_APT)
                return cli_usage_error("image", "at most %d packages", MAX_APT);
        return cli_strv_push(apt, pkg) < 0 ? CLI_EXIT_ERROR : 0;
}

/* The recipe file: "tag NAME" once, "apt PKG..." lines, # comments. */
static int read_recipe(const char *path, char **ret_tag, char ***apt) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "toolruntime: image: cannot read the recipe %s: %s\n", path, strerror(errno));
                return CLI_EXIT_USAGE;
        }
        char line[4096];
        unsigned lineno = 0;
        while (fgets(line, sizeof line, f)) {
                lineno++;
                char *save = NULL, *key = strtok_r(line, " \t\r\n", &save);
                if (!key || key[0] == '#')
                        continue;
                if (streq(key, "tag")) {
                        char *v = strtok_r(NULL, " \t\r\n", &save);
                        if (!v || strtok_r(NULL, " \t\r\n", &save) || *ret_tag)
                                return cli_usage_error("image", "%s:%u: one \"tag NAME\" line, with one name", path,
                                                       lineno);
                        if (!(*ret_tag = strdup(v)))
                                return CLI_EXIT_ERROR;
                } else if (streq(key, "apt")) {
                        for (char *v; (v = strtok_r(NULL, " \t\r\n", &save));) {
                                int r = add_apt(apt, v);
                                if (r)
                                        return r;
                        }
                } else
                        return cli_usage_error("image", "%s:%u: unknown key '%s' (known: tag, apt)", path, lineno, key);
        }
        return 0;
}

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

int cli_run_wait(char *const *argv) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                perror("toolruntime: fork");
                return -1;
        }
        if (pid == 0) {
                execv(argv[0], argv);
                _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
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
                if (streq(argv[i], "ls") || streq(argv[i], "rm"))
                        return cli_image_ls_rm(argc, argv);
                break;
        }
        static const struct option opts[] = {
                { "ref", required_argument, NULL, 'r' },
                { "tag", required_argument, NULL, 'T' },
                { "apt", required_argument, NULL, 'A' },
                { "recipe", required_argument, NULL, 'R' },
                { "cache", required_argument, NULL, 'c' },
                { "namespace", required_argument, NULL, 'n' },
                { "socket", required_argument, NULL, 's' },
                { "vm", no_argument, NULL, 'V' },
                { "out", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *ref = NULL, *ns = NULL, *sock = NULL, *out = NULL, *recipe = NULL, *cache = NULL;
        _cleanup_(cli_strv_freep) char **apt = NULL;
        _cleanup_free_ char *recipe_tag = NULL;
        bool vm = false;
        int c, r;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'r':
                case 'T':
                        if (ref)
                                return cli_usage_error("image", "give one --ref or --tag");
                        ref = optarg;
                        break;
                case 'A':
                        if ((r = add_apt(&apt, optarg)))
                                return r;
                        break;
                case 'R': recipe = optarg; break;
                case 'c': cache = optarg; break;
                case 'n': ns = optarg; break;
                case 's': sock = optarg; break;
                case 'V': vm = true; break;
                case 'o': out = optarg; break;
                case 'h': fputs(image_help, stdout); return 0;
                default: return cli_usage_error("image", "invalid arguments");
                }
        }
        if (optind >= argc)
                return cli_usage_error("image", "no action given (known: build, pull, ls, rm)");
        if (!streq(argv[optind], "build"))
                return cli_usage_error("image", "unknown action '%s' (known: build, pull, ls, rm)", argv[optind]);
        if (optind + 1 < argc)
                return cli_usage_error("image", "unexpected argument '%s'", argv[optind + 1]);
        if (recipe && (r = read_recipe(recipe, &recipe_tag, &apt)))
                return r;
        if (!ref)
                ref = recipe_tag;
        if (vm && (ref || ns || sock || apt || cache))
                return cli_usage_error("image", "--ref, --tag, --apt, --recipe, --cache, --namespace and --socket are "
                                                "for the container image, not --vm");
        if (!vm && out)
                return cli_usage_error("image", "--out is for --vm");
        /* Extra packages under the default name would silently change
         * what every other user of toolruntime-sandbox runs. */
        if (apt && !ref)
                return cli_usage_error("image", "--apt needs --tag NAME (a custom image has its own name)");

        _cleanup_free_ char *script = NULL;
        if (asprintf(&script, "%s/%s", cli_images_dir(), vm ? "vm/build.sh" : "sandbox/build.sh") < 0)
                return CLI_EXIT_ERROR;
        if (access(script, R_OK) < 0) {
                fprintf(stderr, "toolruntime: image recipe %s is missing (set TOOLRUNTIME_IMAGES_DIR?)\n", script);
                return CLI_EXIT_ERROR;
        }
        _cleanup_(cli_strv_freep) char **args = NULL;
        r = cli_strv_push(&args, "/bin/sh") | cli_strv_push(&args, script);
        const struct {
                const char *flag, *val;
        } pass[] = {
                { "--ref", ref }, { "--namespace", ns }, { "--socket", sock }, { "--out", out }, { "--cache", cache }
        };
        for (size_t i = 0; i < ARRAY_SIZE(pass); i++)
                if (pass[i].val)
                        r |= cli_strv_push(&args, pass[i].flag) | cli_strv_push(&args, pass[i].val);
        for (char **a = apt; a && *a; a++)
                r |= cli_strv_push(&args, "--apt") | cli_strv_push(&args, *a);
        _cleanup_free_ char *agent = vm ? find_agent() : NULL;
        if (agent)
                r |= cli_strv_push(&args, "--agent") | cli_strv_push(&args, agent);
        if (r < 0)
                return CLI_EXIT_ERROR;
        if (cli_run_wait(args) == 0)
                return 0;
        fprintf(stderr, "toolruntime: image build failed\n");
        return CLI_EXIT_ERROR;
}
