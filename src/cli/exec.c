/* SPDX-License-Identifier: Apache-2.0 */
/* `toolruntime exec`: run one snippet and report it, as text or as JSON. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/handles.h"
#include "util/macros.h"

static const char exec_help[] =
        "Usage: toolruntime exec [OPTIONS] (-c CODE | FILE | -)\n"
        "\n"
        "Run a snippet in a sandbox and report its output (printed as it is produced,\n"
        "unless --json).\n"
        "\n"
        "  -c, --code CODE          the code to run (or give a FILE, or - for stdin)\n"
        "  -- ARGS...               arguments for the snippet (sys.argv[1:], or \"$@\" in sh)\n"
        "  -b, --backend NAME       unsafe_host, containerd or kata (default: the profile's route:\n"
        "                           dev -> unsafe_host, standard and hardened -> containerd)\n"
        "  -p, --profile NAME       dev, standard (default) or hardened\n"
        "  -l, --language LANG      python (default) or sh\n"
        "  -t, --timeout SECONDS    wall-clock limit, e.g. 30 or 1.5 (default 30)\n"
        "      --memory SIZE        memory limit, no swap (standard 512M, hardened 256M)\n"
        "      --cpu-quota-ms N     CPU ms per 100 ms period (standard 100, hardened 50)\n"
        "      --pids N             maximum number of processes (standard 128, hardened 64)\n"
        "      --disk SIZE          size of the writable /tmp (standard 64M, hardened 16M)\n"
        "      --max-tool-calls N   tool calls allowed (0: unlimited, the default)\n"
        "      --max-chain-steps N  chain steps allowed (0: unlimited, the default)\n"
        "      --max-output SIZE    cap per output stream (default 1M)\n"
        "      --json               print one JSON object describing the result\n"
        "      --raw                write the sandbox's output to a terminal as it is (default:\n"
        "                           control characters but newline and tab, and bytes that\n"
        "                           are not UTF-8, are shown as \\xNN when stdout or stderr\n"
        "                           is a terminal)\n"
        "  -v, --verbose            log what the runtime does on stderr (and wait for the\n"
        "                           sandbox's removal, as --wait-cleanup, to log it)\n"
        "      --wait-cleanup       exit only once the sandbox is removed (default: on the\n"
        "                           containerd backend the exit status of a run that\n"
        "                           completed comes as soon as the result is printed, and a\n"
        "                           detached process of this command finishes removing the\n"
        "                           sandbox, about 40 ms); also TOOLRUNTIME_WAIT_CLEANUP=1\n"
        "      --egress-allow HOST:PORT\n"
        "                           let the snippet reach HOST:PORT through the sandbox's\n"
        "                           egress proxy (repeatable, at most 64; HOST a name, an\n"
        "                           IPv4 address or [IPv6]; exact matches, no wildcards).\n"
        "                           Default: no network.  containerd backend, standard\n"
        "                           profile only (hardened, dev, kata, unsafe_host refuse);\n"
        "                           HTTP_PROXY/HTTPS_PROXY/ALL_PROXY point at the proxy,\n"
        "                           and --json reports \"egress\": allowed/denied counts\n"
        "      --stdin FILE         the snippet's standard input (- : this command's); default:\n"
        "                           none (the snippet reads end of file)\n"
        "      --server URL         send the execution to a running `toolruntime serve`\n"
        "                           (http://HOST:PORT or unix:PATH; default: the\n"
        "                           TOOLRUNTIME_SERVER variable; a bearer token from\n"
        "                           TOOLRUNTIME_TOKEN); the server's backend options and\n"
        "                           tools apply, so those options are refused with it\n"
        "\n"
        "containerd backend:\n"
        "      --image REF          sandbox image (default toolruntime-sandbox:latest)\n"
        "      --namespace NS       containerd namespace (default \"default\")\n"
        "      --socket PATH        containerd socket (default /run/containerd/containerd.sock)\n"
        "      --runtime NAME       io.containerd.runc.v2 (default), io.containerd.runsc.v1,\n"
        "                           io.containerd.kata.v2, aws.firecracker\n"
        "      --no-pull            never pull a missing image (default: pull it, except\n"
        "                           under hardened, which pulls only NAME@sha256:... refs)\n"
        "      --insecure-registry HOST[:PORT]  plain HTTP for this registry (repeatable)\n"
        "      --registry-config FILE  credentials (default ~/.docker/config.json)\n"
        "      --max-image-size SIZE   cap on a pulled image (default 2G)\n"
        "\n"
        "containerd and kata backends:\n"
        "      --seccomp FILE       seccomp profile (Docker JSON) for the hardened profile; the\n"
        "                           native ABI only and hardened's socket rules stay on top\n"
        "\n"
        "kata backend:\n"
        "      --kernel PATH        guest kernel (default /var/lib/toolruntime/vm/vmlinuz)\n"
        "      --initrd PATH        initramfs holding the guest agent\n"
        "                           (default /var/lib/toolruntime/vm/initrd.img)\n"
        "      --vm-image PATH      guest root image (default /var/lib/toolruntime/vm/rootfs.ext4)\n"
        "      --image REF          with -b kata: run that container image's root filesystem\n"
        "                           (pulled when missing, as for containerd), converted once\n"
        "                           per image digest into a read-only ext4\n"
        "      --vm-image-cache DIR where those conversions are kept\n"
        "                           (default /var/lib/toolruntime/vm/images)\n"
        "      --hypervisor NAME    qemu (default), cloud-hypervisor, firecracker\n"
        "      --accel NAME         auto (default: KVM when /dev/kvm really runs a guest; the\n"
        "                           verdict is kept in /run/toolruntime/kvm-probe), kvm, tcg\n"
        "\n"
        "sandbox identity (containerd, kata):\n"
        "      --uid-range FIRST-LAST\n"
        "                           host uids the sandboxes run as, one per live sandbox, each\n"
        "                           also its gid (default 1879048192-1879113727, 0x70000000 up:\n"
        "                           no account or subordinate uid range uses them); leases are\n"
        "                           kept in /run/toolruntime/uids\n"
        "\n"
        "tool gateway:\n"
        "      --tools FILE         a tools manifest (JSON) the snippet may call\n"
        "      --mcp '[NS=]CMD ARGS'  an MCP server (stdio) whose tools the snippet may call,\n"
        "                           under namespace NS (default: the server's name); repeatable\n"
        "      --tool-env NAME      pass the variable NAME of this environment to the MCP\n"
        "                           servers (repeatable); tools and servers otherwise get only\n"
        "                           PATH, LANG and a private HOME (a manifest lists its own\n"
        "                           in \"env\"); their stderr is logged here, never given to\n"
        "                           the snippet\n"
        "\n"
        "SIZE is digits with an optional k, M or G suffix (1k = 1024 bytes); N is digits.\n"
        "An option left out takes the profile's default; 0 means unlimited, which the\n"
        "hardened profile refuses for memory, CPU, pids and disk.  The dev profile has\n"
        "no defaults beyond the timeout and the output cap.\n"
        "\n"
        "A Python snippet that assigns the global __out returns it as the result's value;\n"
        "an sh snippet calls trvalue JSON.\n"
        "\n"
        "Exit status: the snippet's own exit status when it ran to completion (128+N\n"
        "when signal N killed it; --json names it in \"signal\"); 124 when the timeout\n"
        "fired; 125 for a runtime or backend error; 2 for a usage error; 130, 143 or\n"
        "129 when SIGINT, SIGTERM or SIGHUP interrupted toolruntime (the execution is\n"
        "cancelled and its sandbox removed first).  As with timeout(1), a snippet that\n"
        "exits 124, 125 or 2 by itself gives the same status: --json tells them apart\n"
        "(a timeout has error.code \"timeout\" and exit_code null; the snippet's own\n"
        "124 has error null and exit_code 124).\n";

enum {
        OPT_MEMORY = 0x100,
        OPT_CPU,
        OPT_PIDS,
        OPT_DISK,
        OPT_MAX_TOOL_CALLS,
        OPT_MAX_CHAIN_STEPS,
        OPT_MAX_OUTPUT,
        OPT_JSON,
        OPT_RAW,
        OPT_UID_RANGE,
        OPT_TOOLS,
        OPT_MCP,
        OPT_TOOL_ENV,
        OPT_SERVER,
        OPT_VM_IMAGE_CACHE,
        OPT_STDIN,
        OPT_EGRESS_ALLOW,
        OPT_WAIT_CLEANUP,
};

static const struct option exec_opts[] = {
        { "code", required_argument, NULL, 'c' },
        { "backend", required_argument, NULL, 'b' },
        { "profile", required_argument, NULL, 'p' },
        { "language", required_argument, NULL, 'l' },
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
        { "json", no_argument, NULL, OPT_JSON },
        { "raw", no_argument, NULL, OPT_RAW },
        { "vm-image-cache", required_argument, NULL, OPT_VM_IMAGE_CACHE },
        { "uid-range", required_argument, NULL, OPT_UID_RANGE },
        { "tools", required_argument, NULL, OPT_TOOLS },
        { "mcp", required_argument, NULL, OPT_MCP },
        { "tool-env", required_argument, NULL, OPT_TOOL_ENV },
        { "server", required_argument, NULL, OPT_SERVER },
        { "stdin", required_argument, NULL, OPT_STDIN },
        { "egress-allow", required_argument, NULL, OPT_EGRESS_ALLOW },
        { "wait-cleanup", no_argument, NULL, OPT_WAIT_CLEANUP },
        CLI_BACKEND_LONG_OPTIONS,
        CLI_PULL_LONG_OPTIONS,
        { 0 },
};

/* A snippet larger than this is a mistake, not code. */
#define MAX_CODE (16 * 1024 * 1024)

/* SIGINT, SIGTERM and SIGHUP cancel the execution: tr_cancel_cancel is
 * async-signal-safe (an atomic store and a write to an eventfd); the
 * library then kills the sandbox and removes everything of it before
 * tr_runtime_execute returns, and we exit 128 + the signal, as a shell
 * reports a command that signal ended. */
static tr_cancel *volatile signal_cancel;
static volatile sig_atomic_t signal_caught;
static void on_signal(int sig) {
        if (!signal_caught)
                signal_caught = sig;
        tr_cancel *c = signal_cancel;
        if (c)
                tr_cancel_cancel(c);
}

/* The handlers stay installed until exit: they must not reach a freed
 * token. */
static void signal_cancel_freep(tr_cancel **c) {
        signal_cancel = NULL;
        tr_cancel_free(*c);
}

/* The request's output callback: the snippet's output, as produced, to our
 * own stdout and stderr (escaped on a terminal, as always).  Flushed at once
 * so that a line printed by the snippet shows before it ends. */
static void print_live(void *userdata, tr_stream stream, const char *data, size_t len) {
        cli_term_stream *live = userdata;
        cli_term_stream *st = &live[stream == TR_STREAM_STDERR ? 1 : 0];
        cli_term_stream_write(st, data, len);
        fflush(st->f);
}

static void catch_signals(tr_cancel *cancel) {
        signal_cancel = cancel;
        struct sigaction sa = { .sa_handler = on_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
}

int cli_exec(int argc, char **argv) {
        const char *code = NULL, *backend = NULL, *profile = NULL, *language = NULL, *file = NULL;
        const char *tools = NULL, *server = getenv("TOOLRUNTIME_SERVER"), *vm_image_cache = NULL;
        const char *stdin_file = NULL;
        const char **mcp = NULL, **tool_env = NULL, **egress = NULL;
        size_t n_mcp = 0, n_tool_env = 0, n_egress = 0;
        bool json = false, verbose = false;
        const char *wc = getenv("TOOLRUNTIME_WAIT_CLEANUP");
        bool wait_cleanup = wc && *wc && !streq(wc, "0");
        int64_t timeout_ms = 0, max_output = 0;
        /* Only the options given are set: the rest take the profile's
         * defaults (the core's, profile.c). */
        tr_limits limits;
        tr_limits_init(&limits);
        cli_backend_opts bo = { 0 };
        cli_pull_args pull = { 0 };
        int c;

        _cleanup_free_ const char **mcp_owner = NULL, **tool_env_owner = NULL, **egress_owner = NULL;
        /* Everything after the first "--" is the snippet's arguments. */
        int n_opts = argc, first_arg = argc;
        for (int i = 1; i < argc; i++)
                if (streq(argv[i], "--")) {
                        n_opts = i;
                        first_arg = i + 1;
                        break;
                }
        optind = 0;
        while ((c = getopt_long(n_opts, argv, "c:b:p:l:t:vh", exec_opts, NULL)) != -1) {
                int64_t *num = NULL;
                enum { COUNT, SIZE, SECONDS } kind = COUNT;
                const char *what = NULL;
                int pr = cli_pull_option("exec", &pull, c, optarg);
                if (pr == 0)
                        pr = cli_backend_option("exec", &bo, c, optarg);
                if (pr != 0) {
                        if (pr != 1)
                                return pr;
                        continue;
                }
                switch (c) {
                case 'c': code = optarg; break;
                case 'b': backend = optarg; break;
                case 'p': profile = optarg; break;
                case 'l': language = optarg; break;
                case 't':
                        num = &timeout_ms;
                        kind = SECONDS;
                        what = "--timeout";
                        break;
                case 'v': verbose = true; break;
                case OPT_WAIT_CLEANUP: wait_cleanup = true; break;
                case 'h': fputs(exec_help, stdout); return 0;
                case OPT_MEMORY:
                        num = &limits.memory_bytes;
                        kind = SIZE;
                        what = "--memory";
                        break;
                case OPT_DISK:
                        num = &limits.disk_bytes;
                        kind = SIZE;
                        what = "--disk";
                        break;
                case OPT_MAX_OUTPUT:
                        num = &max_output;
                        kind = SIZE;
                        what = "--max-output";
                        break;
                case OPT_CPU:
                        num = &limits.cpu_quota_ms;
                        what = "--cpu-quota-ms";
                        break;
                case OPT_PIDS:
                        num = &limits.pids_max;
                        what = "--pids";
                        break;
                case OPT_MAX_TOOL_CALLS:
                        num = &limits.max_tool_calls;
                        what = "--max-tool-calls";
                        break;
                case OPT_MAX_CHAIN_STEPS:
                        num = &limits.max_chain_steps;
                        what = "--max-chain-steps";
                        break;
                case OPT_JSON: json = true; break;
                case OPT_SERVER: server = optarg; break;
                case OPT_STDIN: stdin_file = optarg; break;
                case OPT_RAW: cli_term_raw = true; break;
                case OPT_VM_IMAGE_CACHE: vm_image_cache = optarg; break;
                case OPT_UID_RANGE: {
                        tr_error *uerr = NULL;
                        if (tr_uid_range_parse(optarg, &bo.uid_range, &uerr) < 0) {
                                int rc = cli_usage_error("exec", "--uid-range: %s", tr_error_message(uerr));
                                tr_error_free(uerr);
                                return rc;
                        }
                        break;
                }
                case OPT_TOOLS: tools = optarg; break;
                case OPT_MCP: {
                        const char **m = realloc(mcp_owner, (n_mcp + 1) * sizeof(*m));
                        if (!m)
                                return CLI_EXIT_ERROR;
                        mcp = mcp_owner = m;
                        mcp[n_mcp++] = optarg;
                        break;
                }
                case OPT_EGRESS_ALLOW: {
                        if (n_egress >= TR_MAX_EGRESS_ALLOW)
                                return cli_usage_error("exec", "--egress-allow: at most %d entries",
                                                       TR_MAX_EGRESS_ALLOW);
                        const char **m = realloc(egress_owner, (n_egress + 1) * sizeof(*m));
                        if (!m)
                                return CLI_EXIT_ERROR;
                        egress = egress_owner = m;
                        egress[n_egress++] = optarg;
                        break;
                }
                case OPT_TOOL_ENV: {
                        const char **m = realloc(tool_env_owner, (n_tool_env + 1) * sizeof(*m));
                        if (!m)
                                return CLI_EXIT_ERROR;
                        tool_env = tool_env_owner = m;
                        tool_env[n_tool_env++] = optarg;
                        break;
                }
                default: return cli_usage_error("exec", "invalid arguments");
                }
                if (num) {
                        /* The library's parsers: the CLI accepts exactly
                         * what tr_parse_* accept. */
                        _cleanup_(tr_error_freep) tr_error *perr = NULL;
                        int r = kind == SIZE      ? tr_parse_size(optarg, num, &perr)
                                : kind == SECONDS ? tr_parse_seconds(optarg, num, &perr)
                                                  : tr_parse_count(optarg, num, &perr);
                        if (r < 0)
                                return cli_usage_error("exec", "%s: %s", what, tr_error_message(perr));
                }
        }
        if (optind < n_opts)
                file = argv[optind++];
        if (optind < n_opts)
                return cli_usage_error("exec", "unexpected argument '%s'", argv[optind]);
        if (code && file)
                return cli_usage_error("exec", "give the code with -c or as a FILE, not both");
        if (!code && !file)
                return cli_usage_error("exec", "no code: give -c CODE, a FILE, or - to read stdin");

        tr_backend_kind kind = TR_BACKEND_NONE;
        if (backend && tr_backend_kind_from_name(backend, &kind) < 0)
                return cli_usage_error("exec",
                                       "unknown backend '%s' (known: unsafe_host, docker, containerd, kubernetes, "
                                       "gvisor, kata, firecracker, wasm, temporal, remote)",
                                       backend);
        tr_profile prof = TR_PROFILE_DEFAULT;
        if (profile && tr_profile_from_name(profile, &prof) < 0)
                return cli_usage_error("exec", "unknown profile '%s' (known: dev, standard, hardened)", profile);
        if (language && !streq(language, "python") && !streq(language, "sh"))
                return cli_usage_error("exec", "unknown language '%s' (known: python, sh)", language);

        _cleanup_free_ char *file_code = NULL;
        size_t code_len = code ? strlen(code) : 0;
        if (file) {
                _cleanup_close_ int fd = streq(file, "-") ? dup(STDIN_FILENO) : open(file, O_RDONLY | O_CLOEXEC);
                int r = fd < 0 ? tr__negerrno() : cli_read_fd(fd, MAX_CODE + 1, &file_code, &code_len);
                if (r >= 0 && code_len > MAX_CODE)
                        r = -EFBIG;
                if (r < 0) {
                        fprintf(stderr, "toolruntime: cannot read '%s': %s\n", file, strerror(-r));
                        return CLI_EXIT_USAGE;
                }
                code = file_code;
        }
        _cleanup_free_ char *stdin_data = NULL;
        size_t stdin_len = 0;
        if (stdin_file) {
                if (streq(stdin_file, "-") && file && streq(file, "-"))
                        return cli_usage_error("exec", "the code and --stdin cannot both come from standard input");
                _cleanup_close_ int fd =
                        streq(stdin_file, "-") ? dup(STDIN_FILENO) : open(stdin_file, O_RDONLY | O_CLOEXEC);
                int r = fd < 0 ? tr__negerrno() : cli_read_fd(fd, TR_MAX_STDIN_BYTES + 1, &stdin_data, &stdin_len);
                if (r >= 0 && stdin_len > TR_MAX_STDIN_BYTES)
                        r = -EFBIG;
                if (r < 0) {
                        fprintf(stderr, "toolruntime: --stdin %s: %s\n", stdin_file, strerror(-r));
                        return CLI_EXIT_USAGE;
                }
        }

        if (server && *server) {
                static const cli_backend_opts none = { 0 };
                if (tools || n_mcp || n_tool_env || memcmp(&bo, &none, sizeof(bo)) != 0 || pull.n_insecure ||
                    pull.no_pull || pull.opts.registry_config || pull.opts.max_bytes || vm_image_cache)
                        return cli_usage_error("exec", "--server: backend, image and tool options are the server's; "
                                                       "give only the execution's (code, language, profile, backend, "
                                                       "timeout, limits, arguments)");
                cli_remote_req rr = {
                        .server = server,
                        .code = code,
                        .code_len = code_len,
                        .language = language,
                        .profile = profile,
                        .backend = backend,
                        .timeout_ms = timeout_ms,
                        .limits = limits,
                        .max_output = max_output,
                        .args = argv + first_arg,
                        .n_args = first_arg < argc ? (size_t) (argc - first_arg) : 0,
                        .json = json,
                        .stdin_data = stdin_data,
                        .stdin_len = stdin_len,
                        .egress = egress,
                        .n_egress = n_egress,
                };
                return cli_exec_remote(&rr);
        }
        if (!pull.no_pull)
                bo.pull = &pull.opts;
        /* kata with --image: that image's root filesystem in the guest, as
         * a read-only block image converted once per digest (vm_image.c);
         * the guest agent and kernel stay ours. */
        _cleanup_free_ char *vm_from_image = NULL;
        if (kind == TR_BACKEND_KATA && bo.image) {
                if (bo.vm_image)
                        return cli_usage_error("exec", "kata takes --image or --vm-image, not both");
                int vr = cli_vm_image_for(&bo, vm_image_cache, prof, &vm_from_image);
                if (vr)
                        return vr;
                bo.vm_image = vm_from_image;
        }

        /* Without a reaper thread the runtime tears the sandbox down when it
         * is freed, which the process forked below does once the exit status
         * is out (cli_exit_now_finish_later).  --verbose waits, to log it. */
        bool finish_later = !wait_cleanup && !verbose;
        bo.teardown_at_free = finish_later;
        cli_term_stream live[2] = { { .f = stdout }, { .f = stderr } };
        tr_error *err = NULL;
        _cleanup_(tr_error_freep) tr_error *err_owner = NULL;
        /* Freed after the runtime: the signal handler uses it until then. */
        _cleanup_(signal_cancel_freep) tr_cancel *cancel = NULL;
        _cleanup_(tr_runtime_freep) tr_runtime *rt = NULL;
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        _cleanup_(tr_gateway_freep) tr_gateway *gw = NULL;
        _cleanup_(tr_result_freep) tr_result *res = NULL;

        /* The handlers go in first: from here on (MCP servers start with the
         * gateway) an interrupt must clean up, not kill us half-way. */
        int r = tr_cancel_new(&cancel, &err);
        if (r >= 0) {
                catch_signals(cancel);
                r = cli_runtime_new(&bo, verbose ? cli_log : NULL, NULL, &rt, &err);
        }
        if (r >= 0)
                r = cli_gateway_new_env(tools, mcp, n_mcp, tool_env, n_tool_env, verbose ? cli_log : cli_log_warnings,
                                        NULL, &gw, &err);
        if (r >= 0)
                r = tr_request_new(&req, &err);
        if (r >= 0)
                r = tr_request_set_code(req, code, code_len, &err);
        if (r >= 0 && stdin_data)
                r = tr_request_set_stdin(req, stdin_data, stdin_len, &err);
        if (r >= 0)
                r = tr_request_set_language(req, language, &err);
        if (r >= 0 && signal_caught)
                r = tr_error_set(&err, TR_E_CANCELLED, TR_BACKEND_NONE, "exec",
                                 "interrupted before the execution started");
        for (int i = first_arg; r >= 0 && i < argc; i++)
                r = tr_request_add_arg(req, argv[i], &err);
        if (r >= 0 && n_egress)
                r = tr_request_set_egress_allow(req, egress, n_egress, &err);
        if (r >= 0) {
                tr_request_set_timeout_ms(req, timeout_ms);
                tr_request_set_limits(req, &limits);
                tr_request_set_profile(req, prof);
                tr_request_set_gateway(req, gw);
                tr_request_set_max_output(req, (size_t) max_output);
                /* Without --json the output goes to the terminal as the
                 * snippet produces it. */
                if (!json)
                        tr_request_set_output_callback(req, print_live, live);
                if (kind != TR_BACKEND_NONE)
                        tr_runtime_route(rt, prof, kind);
                r = tr_runtime_execute(rt, req, cancel, &res, &err);
        }
        err_owner = err;

        if (json) {
                char *text = NULL;
                if (tr_result_to_json(res, err, &text, NULL) < 0)
                        return CLI_EXIT_ERROR;
                puts(text);
                free(text);
        } else if (res) {
                cli_term_stream_finish(&live[0]);
                fflush(stdout);
                cli_term_stream_finish(&live[1]);
                if (tr_result_stdout_truncated(res) || tr_result_stderr_truncated(res))
                        fputs("toolruntime: output was truncated (see --max-output)\n", stderr);
                if (r >= 0 && tr_result_signal_name(res))
                        fprintf(stderr, "toolruntime: the snippet was killed by %s\n", tr_result_signal_name(res));
                uint64_t allowed = 0, denied = 0;
                if (tr_result_egress(res, &allowed, &denied) && denied) {
                        fprintf(stderr,
                                "toolruntime: egress denied %llu connection(s) to targets not in the allowlist:",
                                (unsigned long long) denied);
                        for (size_t i = 0; i < tr_result_egress_denied_target_count(res); i++)
                                fprintf(stderr, " %s", tr_result_egress_denied_target_at(res, i));
                        fputc('\n', stderr);
                }
        }
        if (fflush(stdout) != 0)
                return CLI_EXIT_ERROR;
        int status;
        if (r < 0) {
                if (!json)
                        cli_print_error(err);
                /* Interrupted: the sandbox is gone before we exit (the
                 * runtime's free below, never in the background). */
                if (signal_caught && tr_error_code(err) == TR_E_CANCELLED)
                        status = 128 + signal_caught;
                else
                        status = tr_error_code(err) == TR_E_TIMEOUT ? CLI_EXIT_TIMEOUT : CLI_EXIT_ERROR;
        } else
                status = tr_result_exit_code(res) >= 0 ? tr_result_exit_code(res) : CLI_EXIT_ERROR;
        /* A containerd sandbox whose run completed waits in the runtime for
         * its teardown (task, container, snapshot, lease: ~40 ms, mostly
         * containerd's shim and runc exiting): the caller has its result
         * and gets its status now.  A timed-out, cancelled or failed run (or
         * one a signal came after) is removed before the exit, as the help
         * says.  The gateway's MCP servers are our children, so they stop
         * here, before the fork. */
        if (finish_later && r >= 0 && !signal_caught && tr_result_backend_kind(res) == TR_BACKEND_CONTAINERD) {
                tr_request_free(TAKE_PTR(req));
                tr_gateway_free(TAKE_PTR(gw));
                cli_exit_now_finish_later(status);
        }
        return status;
}
