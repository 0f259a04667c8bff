/* SPDX-License-Identifier: Apache-2.0 */
/* `toolruntime mcp`: the MCP server over stdio (src/mcp/). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "mcp/server.h"
#include "mcp/stdio.h"
#include "util/handles.h"
#include "util/macros.h"

TR_DEFINE_FREEP(tr_tool_registry, tr_tool_registry_free)

static const char mcp_help[] =
        "Usage: toolruntime mcp [OPTIONS]\n"
        "\n"
        "Serve the Model Context Protocol over stdio (newline-delimited JSON-RPC on\n"
        "stdin/stdout; logs on stderr with -v).  The server offers the tool `execute`:\n"
        "it runs a Python (or sh) program in a sandbox of the configured profile and\n"
        "backend, and the program can call every upstream tool (--tools, --mcp) as typed\n"
        "Python functions: from toolruntime.tools import NAMESPACE.  Next to it,\n"
        "session_create, session_execute and session_delete keep one sandbox and its\n"
        "Python interpreter alive across calls (at most 4 sessions; they end with the\n"
        "server).  Protocol revisions:\n"
        "2026-07-28 (stateless), 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05.\n"
        "\n"
        "  -b, --backend NAME       unsafe_host, containerd or kata (default: the profile's route)\n"
        "  -p, --profile NAME       dev, standard (default) or hardened\n"
        "  -t, --timeout SECONDS    default and maximum timeout of one execution (default 30)\n"
        "      --memory SIZE        memory limit (bytes, or k/M/G suffix)\n"
        "      --cpu-quota-ms N     CPU milliseconds per 100 ms period\n"
        "      --pids N             maximum number of processes\n"
        "      --disk SIZE          size of the writable space (/tmp)\n"
        "      --max-tool-calls N   tool calls per execution (0: unlimited)\n"
        "      --max-chain-steps N  chain steps per execution (0: unlimited)\n"
        "                           (each limit is the default and the maximum: a call may\n"
        "                           lower it, never raise it)\n"
        "      --max-output SIZE    cap per output stream (default 1M)\n"
        "      --max-code SIZE      largest program a call may send (default 1M)\n"
        "      --max-concurrent N   executions at once; more wait (default 2)\n"
        "      --expose-tools       also list every upstream tool as an MCP tool (NS.NAME),\n"
        "                           called directly on the host, outside any sandbox\n"
        "      --egress-allow HOST:PORT\n"
        "                           every execution may reach HOST:PORT through its\n"
        "                           sandbox's egress proxy (repeatable; as for `exec`;\n"
        "                           default: no network; containerd, standard profile)\n"
        "  -v, --verbose            log what the runtime does on stderr\n"
        "\n"
        "containerd backend: --image REF, --namespace NS, --socket PATH, --runtime NAME,\n"
        "  --seccomp FILE; kata backend: --kernel PATH, --initrd PATH, --vm-image PATH\n"
        "  or --image REF (a container image in containerd, its root converted once\n"
        "  per digest), --hypervisor NAME, --accel auto|kvm|tcg (as for `toolruntime exec`).\n"
        "\n"
        "tool gateway:\n"
        "      --tools FILE         a tools manifest (JSON)\n"
        "      --mcp '[NS=]CMD ARGS'  an upstream MCP server (stdio) under namespace NS\n"
        "                           (default: the server's name); repeatable\n"
        "\n"
        "Exit status: 0 when the client closed stdin (or on SIGINT/SIGTERM); 125 when the\n"
        "server could not start (a bad manifest, an MCP server that did not start); 2 for\n"
        "a usage error.\n";

enum {
        OPT_MEMORY = 0x100,
        OPT_CPU,
        OPT_PIDS,
        OPT_DISK,
        OPT_MAX_TOOL_CALLS,
        OPT_MAX_CHAIN_STEPS,
        OPT_MAX_OUTPUT,
        OPT_MAX_CODE,
        OPT_MAX_CONCURRENT,
        OPT_EXPOSE,
        OPT_TOOLS,
        OPT_MCP,
        OPT_EGRESS_ALLOW,
};

static const struct option mcp_opts[] = {
        { "backend", required_argument, NULL, 'b' },
        { "profile", required_argument, NULL, 'p' },
        { "timeout", required_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "memory", required_argument, NULL, OPT_MEMORY },
        { "cpu-quota-ms", required_argument, NULL, OPT_CPU },
        { "pids", required_argument, NULL, OPT_PIDS },
        { "disk", required_argument, NULL, OPT_DISK },
        { "max-tool-calls", required_argument, NULL, OPT_MAX_TOOL_CALLS },
        { "max-chain-steps", required_argument, NULL, OPT_MAX_CHAIN_STEPS },
        { "max-output", required_argument, NULL, OPT_MAX_OUTPUT },
        { "max-code", required_argument, NULL, OPT_MAX_CODE },
        { "max-concurrent", required_argument, NULL, OPT_MAX_CONCURRENT },
        { "expose-tools", no_argument, NULL, OPT_EXPOSE },
        { "tools", required_argument, NULL, OPT_TOOLS },
        { "mcp", required_argument, NULL, OPT_MCP },
        { "egress-allow", required_argument, NULL, OPT_EGRESS_ALLOW },
        CLI_BACKEND_LONG_OPTIONS,
        { 0 },
};

/* Programs larger than this are refused whatever --max-code says. */
#define MAX_CODE_LIMIT (16 * 1024 * 1024)

static int stop_pipe[2] = { -1, -1 };

static void on_signal(int sig) {
        int saved = errno;
        if (stop_pipe[1] >= 0)
                (void) !write(stop_pipe[1], "x", 1);
        errno = saved;
}

/* Log lines go to the client, and to stderr with -v.  The server is set
 * once it exists (the runtime and the gateway are built first). */
typedef struct log_sink {
        mcps_server *server;
        bool verbose;
} log_sink;

/* Upstream tools changed (an MCP server's list_changed): the client's
 * tool list (execute's description) changed too. */
static void sink_tools_changed(void *ud) {
        log_sink *l = ud;
        if (l->server)
                mcps_server_tools_changed(l->server);
}

static void sink_log(void *ud, tr_log_level level, const char *msg, const char *const *kv) {
        log_sink *l = ud;
        if (l->verbose)
                cli_log(NULL, level, msg, kv);
        if (l->server)
                mcps_server_log(l->server, level, msg, kv);
}

typedef struct mcp_args {
        cli_backend_opts bo;
        const char *backend, *profile, *tools;
        const char **mcp;
        size_t n_mcp;
        const char **egress;
        size_t n_egress;
        int64_t timeout_ms, max_output, max_code, max_concurrent;
        tr_limits limits;
        bool verbose, expose;
} mcp_args;

static int parse_num(int opt, const char *arg, mcp_args *a) {
        struct {
                int opt;
                int64_t *dst;
                bool size;
                const char *name;
        } nums[] = {
                { OPT_MEMORY, &a->limits.memory_bytes, true, "--memory" },
                { OPT_DISK, &a->limits.disk_bytes, true, "--disk" },
                { OPT_MAX_OUTPUT, &a->max_output, true, "--max-output" },
                { OPT_MAX_CODE, &a->max_code, true, "--max-code" },
                { OPT_CPU, &a->limits.cpu_quota_ms, false, "--cpu-quota-ms" },
                { OPT_PIDS, &a->limits.pids_max, false, "--pids" },
                { OPT_MAX_TOOL_CALLS, &a->limits.max_tool_calls, false, "--max-tool-calls" },
                { OPT_MAX_CHAIN_STEPS, &a->limits.max_chain_steps, false, "--max-chain-steps" },
                { OPT_MAX_CONCURRENT, &a->max_concurrent, false, "--max-concurrent" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
                if (nums[i].opt != opt)
                        continue;
                int r = nums[i].size ? tr_parse_size(arg, nums[i].dst, NULL) : tr_parse_count(arg, nums[i].dst, NULL);
                if (r < 0 || *nums[i].dst < 0)
                        return cli_usage_error("mcp", "invalid value '%s' for %s%s", arg, nums[i].name,
                                               nums[i].size ? ": expected bytes or a k/M/G suffix, e.g. 64M"
                                                            : ": expected a non-negative integer");
                return 0;
        }
        return cli_usage_error("mcp", "invalid arguments");
}

static int parse_args(int argc, char **argv, mcp_args *a) {
        int c;
        while ((c = getopt_long(argc, argv, "b:p:t:vh", mcp_opts, NULL)) != -1) {
                int br = cli_backend_option("mcp", &a->bo, c, optarg);
                if (br != 0) {
                        if (br != 1)
                                return br;
                        continue;
                }
                switch (c) {
                case 'b': a->backend = optarg; break;
                case 'p': a->profile = optarg; break;
                case 't':
                        if (tr_parse_seconds(optarg, &a->timeout_ms, NULL) < 0 || a->timeout_ms <= 0)
                                return cli_usage_error("mcp", "invalid timeout '%s': expected seconds, e.g. 2.5",
                                                       optarg);
                        break;
                case 'v': a->verbose = true; break;
                case 'h': fputs(mcp_help, stdout); return 1;
                case OPT_EXPOSE: a->expose = true; break;
                case OPT_TOOLS: a->tools = optarg; break;
                case OPT_MCP: {
                        const char **m = realloc(a->mcp, (a->n_mcp + 1) * sizeof(*m));
                        if (!m)
                                return CLI_EXIT_ERROR;
                        a->mcp = m;
                        a->mcp[a->n_mcp++] = optarg;
                        break;
                }
                case OPT_EGRESS_ALLOW: {
                        if (a->n_egress >= TR_MAX_EGRESS_ALLOW)
                                return cli_usage_error("mcp", "--egress-allow: at most %d entries",
                                                       TR_MAX_EGRESS_ALLOW);
                        const char **m = realloc(a->egress, (a->n_egress + 1) * sizeof(*m));
                        if (!m)
                                return CLI_EXIT_ERROR;
                        a->egress = m;
                        a->egress[a->n_egress++] = optarg;
                        break;
                }
                case '?': return cli_usage_error("mcp", "invalid arguments");
                default:
                        if (parse_num(c, optarg, a) != 0)
                                return CLI_EXIT_USAGE;
                }
        }
        if (optind < argc)
                return cli_usage_error("mcp", "unexpected argument '%s'", argv[optind]);
        if (a->max_code > MAX_CODE_LIMIT)
                return cli_usage_error("mcp", "--max-code is at most 16M");
        return 0;
}

static int serve(const mcp_args *a, tr_profile prof, tr_backend_kind kind) {
        log_sink sink = { .verbose = a->verbose };
        tr_error *err = NULL;
        _cleanup_(tr_error_freep) tr_error *err_owner = NULL;
        _cleanup_(tr_runtime_freep) tr_runtime *rt = NULL;
        _cleanup_(tr_gateway_freep) tr_gateway *gw = NULL;
        _cleanup_(tr_tool_registry_freep) tr_tool_registry *reg = NULL;
        int r = cli_runtime_new(&a->bo, sink_log, &sink, &rt, &err);
        if (r >= 0)
                r = cli_registry_new(a->tools, a->mcp, a->n_mcp, NULL, 0, sink_log, &sink, &reg, &err);
        if (r >= 0) {
                tr_tool_registry_set_change_callback(reg, sink_tools_changed, &sink);
                r = tr_tool_registry_gateway(reg, &gw, &err);
        }
        err_owner = err;
        if (r < 0) {
                cli_print_error(err);
                return CLI_EXIT_ERROR;
        }
        if (kind != TR_BACKEND_NONE)
                tr_runtime_route(rt, prof == TR_PROFILE_DEFAULT ? TR_PROFILE_STANDARD : prof, kind);

        mcps_config cfg = {
                .rt = rt,
                .gw = gw,
                .profile = prof == TR_PROFILE_DEFAULT ? TR_PROFILE_STANDARD : prof,
                .backend_name = kind != TR_BACKEND_NONE ? tr_backend_kind_name(kind) : "",
                .timeout_ms = a->timeout_ms,
                .limits = a->limits,
                .max_output = (size_t) a->max_output,
                .max_code = a->max_code > 0 ? (size_t) a->max_code : 1024 * 1024,
                .max_concurrent = a->max_concurrent > 0 ? (int) a->max_concurrent : 2,
                .expose_tools = a->expose,
                .egress = a->egress,
                .n_egress = a->n_egress,
        };
        int out_fd = STDOUT_FILENO;
        mcps_server *srv = NULL;
        if (mcps_server_new(&cfg, mcps_stdio_send, &out_fd, &srv, &err) < 0) {
                err_owner = err;
                cli_print_error(err);
                return CLI_EXIT_ERROR;
        }
        sink.server = srv;
        r = mcps_stdio_serve(srv, STDIN_FILENO, stop_pipe[0], 2 * cfg.max_code + 1024 * 1024);
        /* Cancels what still runs and waits for it: nothing outlives us. */
        sink.server = NULL;
        mcps_server_free(srv);
        if (r < 0) {
                fprintf(stderr, "toolruntime: mcp: reading stdin: %s\n", strerror(-r));
                return CLI_EXIT_ERROR;
        }
        return 0;
}

int cli_mcp(int argc, char **argv) {
        mcp_args a = { .max_concurrent = 2 };
        /* Unset limits take the profile's defaults (zero would mean unlimited). */
        tr_limits_init(&a.limits);
        int r = parse_args(argc, argv, &a);
        if (r != 0) {
                free(a.mcp);
                free(a.egress);
                return r == 1 ? 0 : r;
        }
        tr_backend_kind kind = TR_BACKEND_NONE;
        tr_profile prof = TR_PROFILE_DEFAULT;
        if (a.backend && tr_backend_kind_from_name(a.backend, &kind) < 0)
                r = cli_usage_error("mcp", "unknown backend '%s' (known: unsafe_host, containerd, kata)", a.backend);
        else if (a.profile && tr_profile_from_name(a.profile, &prof) < 0)
                r = cli_usage_error("mcp", "unknown profile '%s' (known: dev, standard, hardened)", a.profile);
        /* kata with --image: that image's root in the guest, converted
         * once per digest as for exec (an image missing from containerd is
         * an error here: mcp takes no registry options). */
        _cleanup_free_ char *vm_from_image = NULL;
        if (r == 0 && kind == TR_BACKEND_KATA && a.bo.image) {
                if (a.bo.vm_image)
                        r = cli_usage_error("mcp", "kata takes --image or --vm-image, not both");
                else if ((r = cli_vm_image_for(&a.bo, NULL, prof, &vm_from_image)) == 0)
                        a.bo.vm_image = vm_from_image;
        }
        /* A bad allowlist entry is a usage error now, not an error in every
         * call. */
        if (r == 0 && a.n_egress) {
                tr_request *probe = NULL;
                _cleanup_(tr_error_freep) tr_error *eerr = NULL;
                if (tr_request_new(&probe, &eerr) < 0 ||
                    tr_request_set_egress_allow(probe, a.egress, a.n_egress, &eerr) < 0)
                        r = cli_usage_error("mcp", "--egress-allow: %s",
                                            eerr ? tr_error_message(eerr) : "out of memory");
                tr_request_free(probe);
        }
        if (r == 0) {
                /* A client that goes away must not kill us mid-cleanup. */
                signal(SIGPIPE, SIG_IGN);
                if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                        free(a.mcp);
                        free(a.egress);
                        return CLI_EXIT_ERROR;
                }
                struct sigaction sa = { .sa_handler = on_signal };
                sigaction(SIGINT, &sa, NULL);
                sigaction(SIGTERM, &sa, NULL);
                sigaction(SIGHUP, &sa, NULL);
                r = serve(&a, prof, kind);
        }
        free(a.mcp);
        free(a.egress);
        return r;
}
