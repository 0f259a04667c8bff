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
#include "util/proc.h"

static const char exec_help[] =
        "Usage: toolruntime exec [OPTIONS] (-c CODE | FILE | -)\n"
        "\n"
        "Run a snippet in a sandbox and report its output.\n"
        "\n"
        "  -c, --code CODE          the code to run (or give a FILE, or - for stdin)\n"
        "  -b, --backend NAME       unsafe_host, containerd or kata (default: the profile's route:\n"
        "                           dev -> unsafe_host, standard and hardened -> containerd)\n"
        "  -p, --profile NAME       dev, standard (default) or hardened\n"
        "  -l, --language LANG      python (default) or sh\n"
        "  -t, --timeout SECONDS    wall-clock limit, decimals allowed (default 30)\n"
        "      --memory SIZE        memory limit (bytes, or k/M/G suffix)\n"
        "      --cpu-quota-ms N     CPU milliseconds per 100 ms period\n"
        "      --pids N             maximum number of processes\n"
        "      --disk SIZE          size of the writable space (/tmp)\n"
        "      --max-tool-calls N   tool calls allowed (0: unlimited)\n"
        "      --max-chain-steps N  chain steps allowed (0: unlimited)\n"
        "      --max-output SIZE    cap per output stream (default 1M)\n"
        "      --json               print one JSON object describing the result\n"
        "      --raw                write the sandbox's output to a terminal as it is (default:\n"
        "                           control characters but newline and tab, and bytes that\n"
        "                           are not UTF-8, are shown as \\xNN when stdout or stderr\n"
        "                           is a terminal)\n"
        "  -v, --verbose            log what the runtime does on stderr\n"
        "\n"
        "containerd backend:\n"
        "      --image REF          sandbox image (default toolruntime-sandbox:latest)\n"
        "      --namespace NS       containerd namespace (default \"default\")\n"
        "      --socket PATH        containerd socket (default /run/containerd/containerd.sock)\n"
        "      --runtime NAME       io.containerd.runc.v2 (default), io.containerd.runsc.v1,\n"
        "                           io.containerd.kata.v2, aws.firecracker\n"
        "      --seccomp FILE       seccomp profile (Docker JSON) for the hardened profile\n"
        "\n"
        "kata backend:\n"
        "      --kernel PATH        guest kernel (default /var/lib/toolruntime/vm/vmlinuz)\n"
        "      --initrd PATH        initramfs holding the guest agent\n"
        "                           (default /var/lib/toolruntime/vm/initrd.img)\n"
        "      --vm-image PATH      guest root image (default /var/lib/toolruntime/vm/rootfs.ext4)\n"
        "      --hypervisor NAME    qemu (default), cloud-hypervisor, firecracker\n"
        "      --accel NAME         auto (default: KVM when /dev/kvm really runs a guest; the\n"
        "                           verdict is kept in /run/toolruntime/kvm-probe), kvm, tcg\n"
        "\n"
        "tool gateway:\n"
        "      --tools FILE         a tools manifest (JSON) the snippet may call\n"
        "      --mcp 'CMD ARGS'     an MCP server (stdio) whose tools the snippet may call;\n"
        "                           repeatable\n"
        "      --tool-env NAME      pass the variable NAME of this environment to the MCP\n"
        "                           servers (repeatable); tools and servers otherwise get only\n"
        "                           PATH, LANG and a private HOME (a manifest lists its own\n"
        "                           in \"env\"); their stderr is logged here, never given to\n"
        "                           the snippet\n"
        "\n"
        "A Python snippet that assigns the global __out returns it as the result's value;\n"
        "an sh snippet calls trvalue JSON.\n"
        "\n"
        "Exit status: the snippet's own exit status when it ran to completion; 124 when\n"
        "the timeout fired; 125 for a runtime or backend error; 2 for a usage error.\n";

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
        OPT_IMAGE,
        OPT_NAMESPACE,
        OPT_SOCKET,
        OPT_RUNTIME,
        OPT_SECCOMP,
        OPT_KERNEL,
        OPT_INITRD,
        OPT_VM_IMAGE,
        OPT_HYPERVISOR,
        OPT_ACCEL,
        OPT_TOOLS,
        OPT_MCP,
        OPT_TOOL_ENV,
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
        { "image", required_argument, NULL, OPT_IMAGE },
        { "namespace", required_argument, NULL, OPT_NAMESPACE },
        { "socket", required_argument, NULL, OPT_SOCKET },
        { "runtime", required_argument, NULL, OPT_RUNTIME },
        { "seccomp", required_argument, NULL, OPT_SECCOMP },
        { "kernel", required_argument, NULL, OPT_KERNEL },
        { "initrd", required_argument, NULL, OPT_INITRD },
        { "vm-image", required_argument, NULL, OPT_VM_IMAGE },
        { "hypervisor", required_argument, NULL, OPT_HYPERVISOR },
        { "accel", required_argument, NULL, OPT_ACCEL },
        { "tools", required_argument, NULL, OPT_TOOLS },
        { "mcp", required_argument, NULL, OPT_MCP },
        { "tool-env", required_argument, NULL, OPT_TOOL_ENV },
        { 0 },
};

/* A snippet larger than this is a mistake, not code. */
#define MAX_CODE (16 * 1024 * 1024)

/* JSON strings must be UTF-8; snippet output need not be.  Invalid bytes
 * become U+FFFD so the report stays parseable. */
static json_t *json_bytes(const char *s, size_t n) {
        json_t *j = json_stringn(s, n);
        if (j)
                return j;
        _cleanup_free_ char *out = malloc(n * 3 + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];
                size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
                bool ok = need > 0 && i + need <= n;
                for (size_t k = 1; ok && k < need; k++)
                        ok = ((unsigned char) s[i + k] >> 6) == 2;
                if (ok && need > 1) {
                        /* Reject overlongs, surrogates and > U+10FFFF, as jansson does. */
                        uint32_t cp = need == 2 ? (c & 0x1fu) : need == 3 ? (c & 0x0fu) : (c & 0x07u);
                        for (size_t k = 1; k < need; k++)
                                cp = (cp << 6) | ((unsigned char) s[i + k] & 0x3fu);
                        ok = !((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
                               (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff);
                }
                if (ok) {
                        memcpy(out + o, s + i, need);
                        o += need;
                        i += need;
                } else {
                        memcpy(out + o, "\xef\xbf\xbd", 3);
                        o += 3;
                        i++;
                }
        }
        return json_stringn(out, o);
}

static json_t *result_json(const tr_result *res, const tr_error *err) {
        json_t *o = json_object();
        size_t n = 0;
        const char *s;
        json_t *value = NULL;
        if (res && tr_result_value_json(res))
                value = json_loads(tr_result_value_json(res), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        json_object_set_new(o, "value", value ? value : json_null());
        s = res ? tr_result_stdout(res, &n) : "";
        json_object_set_new(o, "stdout", json_bytes(s, res ? n : 0));
        s = res ? tr_result_stderr(res, &n) : "";
        json_object_set_new(o, "stderr", json_bytes(s, res ? n : 0));
        int code = res ? tr_result_exit_code(res) : -1;
        json_object_set_new(o, "exit_code", code >= 0 ? json_integer(code) : json_null());
        json_object_set_new(o, "duration_ms", json_real(res ? (double) tr_result_duration_us(res) / 1000.0 : 0.0));

        json_t *backend = json_object(), *details = json_object();
        tr_backend_kind kind = res ? tr_result_backend_kind(res) : (err ? tr_error_backend(err) : TR_BACKEND_NONE);
        json_object_set_new(backend, "kind", json_string(tr_backend_kind_name(kind)));
        for (size_t i = 0; res && i < tr_result_backend_detail_count(res); i++) {
                const char *k, *v;
                tr_result_backend_detail_at(res, i, &k, &v);
                json_object_set_new(details, k, json_bytes(v, strlen(v)));
        }
        json_object_set_new(backend, "details", details);
        json_object_set_new(o, "backend", backend);

        static const tr_limits_enforced none = { 0 };
        const tr_limits_enforced *e = res ? tr_result_limits_enforced(res) : &none;
        json_t *le = json_object();
        json_object_set_new(le, "timeout", json_boolean(e->timeout));
        json_object_set_new(le, "tool_calls", json_boolean(e->tool_calls));
        json_object_set_new(le, "chain_steps", json_boolean(e->chain_steps));
        json_object_set_new(le, "memory", json_boolean(e->memory));
        json_object_set_new(le, "cpu", json_boolean(e->cpu));
        json_object_set_new(le, "pids", json_boolean(e->pids));
        json_object_set_new(le, "disk", json_boolean(e->disk));
        json_object_set_new(o, "limits_enforced", le);

        json_t *calls = json_array();
        for (size_t i = 0; res && i < tr_result_tool_call_count(res); i++) {
                const tr_tool_call *c = tr_result_tool_call_at(res, i);
                json_t *jc = json_object();
                json_object_set_new(jc, "tool_id", json_bytes(c->tool_id, strlen(c->tool_id)));
                json_object_set_new(jc, "backend_kind", json_string(tr_backend_kind_name(c->backend)));
                json_object_set_new(jc, "duration_ms", json_real((double) c->duration_us / 1000.0));
                json_object_set_new(jc, "error_op", c->error_op ? json_string(c->error_op) : json_null());
                json_object_set_new(jc, "error_code", c->error_code ? json_string(c->error_code) : json_null());
                json_array_append_new(calls, jc);
        }
        json_object_set_new(o, "tool_calls", calls);

        json_t *tr = json_object();
        json_object_set_new(tr, "stdout", json_boolean(res && tr_result_stdout_truncated(res)));
        json_object_set_new(tr, "stderr", json_boolean(res && tr_result_stderr_truncated(res)));
        json_object_set_new(o, "truncated", tr);

        if (err) {
                json_t *je = json_object();
                json_object_set_new(je, "code", json_string(tr_error_code_name(err)));
                const char *m = tr_error_message(err);
                json_object_set_new(je, "message", json_bytes(m, strlen(m)));
                json_object_set_new(je, "op", json_string(tr_error_op(err)));
                json_object_set_new(je, "backend", json_string(tr_backend_kind_name(tr_error_backend(err))));
                json_object_set_new(je, "retryable", json_boolean(tr_error_retryable(err)));
                json_object_set_new(o, "error", je);
        } else {
                json_object_set_new(o, "error", json_null());
        }
        return o;
}

/* SIGINT / SIGTERM cancel the execution (the library cleans up). */
static tr_cancel *signal_cancel;
static void on_signal(int sig) {
        (void) sig;
        tr_cancel_cancel(signal_cancel);
}

int cli_exec(int argc, char **argv) {
        const char *code = NULL, *backend = NULL, *profile = NULL, *language = NULL, *file = NULL;
        const char *tools = NULL;
        const char **mcp = NULL, **tool_env = NULL;
        size_t n_mcp = 0, n_tool_env = 0;
        bool json = false, verbose = false;
        int64_t timeout_ms = 0, max_output = 0;
        tr_limits limits = { 0 };
        cli_backend_opts bo = { 0 };
        int c;

        _cleanup_free_ const char **mcp_owner = NULL, **tool_env_owner = NULL;
        optind = 0;
        while ((c = getopt_long(argc, argv, "c:b:p:l:t:vh", exec_opts, NULL)) != -1) {
                int64_t *num = NULL;
                bool size = false;
                const char *what = NULL;
                switch (c) {
                case 'c': code = optarg; break;
                case 'b': backend = optarg; break;
                case 'p': profile = optarg; break;
                case 'l': language = optarg; break;
                case 't':
                        if (cli_parse_seconds(optarg, &timeout_ms) < 0)
                                return cli_usage_error("exec", "invalid timeout '%s': expected seconds, e.g. 1.5",
                                                       optarg);
                        break;
                case 'v': verbose = true; break;
                case 'h': fputs(exec_help, stdout); return 0;
                case OPT_MEMORY:
                        num = &limits.memory_bytes;
                        size = true;
                        what = "--memory";
                        break;
                case OPT_DISK:
                        num = &limits.disk_bytes;
                        size = true;
                        what = "--disk";
                        break;
                case OPT_MAX_OUTPUT:
                        num = &max_output;
                        size = true;
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
                case OPT_RAW: cli_term_raw = true; break;
                case OPT_IMAGE: bo.image = optarg; break;
                case OPT_NAMESPACE: bo.ctrd_namespace = optarg; break;
                case OPT_SOCKET: bo.socket = optarg; break;
                case OPT_RUNTIME: bo.runtime = optarg; break;
                case OPT_SECCOMP: bo.seccomp = optarg; break;
                case OPT_KERNEL: bo.kernel = optarg; break;
                case OPT_INITRD: bo.initrd = optarg; break;
                case OPT_VM_IMAGE: bo.vm_image = optarg; break;
                case OPT_HYPERVISOR: bo.hypervisor = optarg; break;
                case OPT_ACCEL:
                        if (streq(optarg, "auto"))
                                bo.accel = TR_KATA_ACCEL_AUTO;
                        else if (streq(optarg, "kvm"))
                                bo.accel = TR_KATA_ACCEL_KVM;
                        else if (streq(optarg, "tcg"))
                                bo.accel = TR_KATA_ACCEL_TCG;
                        else
                                return cli_usage_error("exec", "--accel: expected auto, kvm or tcg, got '%s'", optarg);
                        break;
                case OPT_TOOLS: tools = optarg; break;
                case OPT_MCP: {
                        const char **m = realloc(mcp_owner, (n_mcp + 1) * sizeof(*m));
                        if (!m)
                                return CLI_EXIT_ERROR;
                        mcp = mcp_owner = m;
                        mcp[n_mcp++] = optarg;
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
                        int r = size ? cli_parse_size(optarg, num) : cli_parse_int(optarg, num);
                        if (r < 0)
                                return cli_usage_error("exec", "invalid value '%s' for %s%s", optarg, what,
                                                       size ? ": expected bytes or a k/M/G suffix, e.g. 64M"
                                                            : ": expected an integer");
                }
        }
        if (optind < argc)
                file = argv[optind++];
        if (optind < argc)
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
        if (max_output < 0)
                return cli_usage_error("exec", "--max-output must not be negative");

        _cleanup_free_ char *file_code = NULL;
        size_t code_len = code ? strlen(code) : 0;
        if (file) {
                _cleanup_close_ int fd = streq(file, "-") ? dup(STDIN_FILENO) : open(file, O_RDONLY | O_CLOEXEC);
                int r = fd < 0 ? tr__negerrno() : tr__read_fd(fd, MAX_CODE + 1, &file_code, &code_len);
                if (r >= 0 && code_len > MAX_CODE)
                        r = -EFBIG;
                if (r < 0) {
                        fprintf(stderr, "toolruntime: cannot read '%s': %s\n", file, strerror(-r));
                        return CLI_EXIT_USAGE;
                }
                code = file_code;
        }

        tr_error *err = NULL;
        _cleanup_(tr_error_freep) tr_error *err_owner = NULL;
        _cleanup_(tr_runtime_freep) tr_runtime *rt = NULL;
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        _cleanup_(tr_gateway_freep) tr_gateway *gw = NULL;
        _cleanup_(tr_cancel_freep) tr_cancel *cancel = NULL;
        _cleanup_(tr_result_freep) tr_result *res = NULL;

        int r = cli_runtime_new(&bo, verbose ? cli_log : NULL, NULL, &rt, &err);
        if (r >= 0)
                r = cli_gateway_new_env(tools, mcp, n_mcp, tool_env, n_tool_env, verbose ? cli_log : cli_log_warnings,
                                        &gw, &err);
        if (r >= 0)
                r = tr_request_new(&req, &err);
        if (r >= 0)
                r = tr_request_set_code(req, code, code_len, &err);
        if (r >= 0)
                r = tr_request_set_language(req, language, &err);
        if (r >= 0)
                r = tr_cancel_new(&cancel, &err);
        if (r >= 0) {
                tr_request_set_timeout_ms(req, timeout_ms);
                tr_request_set_limits(req, &limits);
                tr_request_set_profile(req, prof);
                tr_request_set_gateway(req, gw);
                tr_request_set_max_output(req, (size_t) max_output);
                if (kind != TR_BACKEND_NONE)
                        tr_runtime_route(rt, prof == TR_PROFILE_DEFAULT ? TR_PROFILE_STANDARD : prof, kind);
                signal_cancel = cancel;
                struct sigaction sa = { .sa_handler = on_signal };
                sigaction(SIGINT, &sa, NULL);
                sigaction(SIGTERM, &sa, NULL);
                sigaction(SIGHUP, &sa, NULL);
                r = tr_runtime_execute(rt, req, cancel, &res, &err);
        }
        err_owner = err;

        if (json) {
                json_t *o = result_json(res, err);
                char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
                json_decref(o);
                if (!text)
                        return CLI_EXIT_ERROR;
                puts(text);
                free(text);
        } else if (res) {
                size_t n;
                const char *s = tr_result_stdout(res, &n);
                cli_term_write(stdout, s, n);
                fflush(stdout);
                s = tr_result_stderr(res, &n);
                cli_term_write(stderr, s, n);
                if (tr_result_stdout_truncated(res) || tr_result_stderr_truncated(res))
                        fputs("toolruntime: output was truncated (see --max-output)\n", stderr);
        }
        if (fflush(stdout) != 0)
                return CLI_EXIT_ERROR;
        if (r < 0) {
                if (!json)
                        cli_print_error(err);
                return tr_error_code(err) == TR_E_TIMEOUT ? CLI_EXIT_TIMEOUT : CLI_EXIT_ERROR;
        }
        return tr_result_exit_code(res) >= 0 ? tr_result_exit_code(res) : CLI_EXIT_ERROR;
}
