/* SPDX-License-Identifier: Apache-2.0 */
/* `toolruntime doctor`: one line per backend, usable here or what to do. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/macros.h"

static const char doctor_help[] =
        "Usage: toolruntime doctor [OPTIONS]\n"
        "\n"
        "Say, one line per backend, whether it is usable on this machine and, if\n"
        "not, exactly what to install or start.  Exit status 0 when the default\n"
        "profile's backend (containerd) is usable, 1 otherwise.\n"
        "\n"
        "      --socket PATH      containerd socket (default /run/containerd/containerd.sock)\n"
        "      --namespace NS     containerd namespace (default \"default\")\n"
        "      --image REF        sandbox image (default toolruntime-sandbox:latest)\n"
        "      --kernel PATH      guest kernel for the kata backend\n"
        "      --vm-image PATH    guest root image for the kata backend\n"
        "  -h, --help             show this help\n";

static void line(const char *backend, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void line(const char *backend, bool ok, const char *fmt, ...) {
        va_list ap;
        printf("%-12s %-4s ", backend, ok ? "ok" : "no");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
}

static bool doctor_unsafe_host(void) {
        _cleanup_free_ char *py = NULL, *sh = NULL;
        bool have_py = cli_find_executable("python3", &py) == 0, have_sh = cli_find_executable("/bin/sh", &sh) == 0;
        if (have_py && have_sh)
                line("unsafe_host", true, "python3 at %s, sh at %s (no isolation: the dev profile only)", py, sh);
        else
                line("unsafe_host", false, "%s missing: apt-get install %s", have_py ? "/bin/sh" : "python3",
                     have_py ? "dash" : "python3");
        return have_py && have_sh;
}

int cli_doctor(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "namespace", required_argument, NULL, 'n' },
                { "image", required_argument, NULL, 'i' },
                { "kernel", required_argument, NULL, 'k' },
                { "vm-image", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        cli_backend_opts bo = { 0 };
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 's': bo.socket = optarg; break;
                case 'n': bo.ctrd_namespace = optarg; break;
                case 'i': bo.image = optarg; break;
                case 'k': bo.kernel = optarg; break;
                case 'm': bo.vm_image = optarg; break;
                case 'h': fputs(doctor_help, stdout); return 0;
                default: return cli_usage_error("doctor", "invalid arguments");
                }
        }
        if (optind < argc)
                return cli_usage_error("doctor", "unexpected argument '%s'", argv[optind]);
        doctor_unsafe_host();
        bool ctrd = cli_doctor_containerd(&bo, line);
        cli_doctor_kata(&bo, line);
        return ctrd ? 0 : 1;
}
