/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `toolruntime serve`: options and the config file, the runtimes the
 * service offers, signals (SIGTERM/SIGINT drain, then exit), and collecting
 * what a previous instance left before the first request.  The HTTP side
 * is src/serve/.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "serve/serve.h"
#include "util/handles.h"
#include "util/macros.h"

static const char serve_help[] =
        "Usage: toolruntime serve [OPTIONS]\n"
        "\n"
        "Run the HTTP/1.1 JSON service: POST /v1/execute (the fields of `exec`, the\n"
        "result object of `exec --json`), sessions (POST/GET /v1/sessions, POST\n"
        "/v1/sessions/ID/execute, PUT/GET /v1/sessions/ID/files/PATH, GET/DELETE\n"
        "/v1/sessions/ID), Piston's POST /api/v2/execute and GET /api/v2/runtimes,\n"
        "GET /v1/health, GET /metrics (Prometheus), GET /v1/pools and\n"
        "PUT /v1/pools/PROFILE/BACKEND {\"size\": N} (resize a warm pool).\n"
        "\n"
        "      --listen ADDR         HOST:PORT or unix:PATH (default 127.0.0.1:8787)\n"
        "      --token-file FILE     require 'Authorization: Bearer <token>', one of the\n"
        "                            file's tokens (one a line; blank lines and lines\n"
        "                            starting with # are skipped); required on a\n"
        "                            non-loopback address.  A session belongs to the\n"
        "                            token that created it: other tokens get 404\n"
        "      --max-sessions N      sessions alive at once (default 64); beyond: 503\n"
        "      --max-sessions-per-token N\n"
        "                            sessions alive at once per token (default 16);\n"
        "                            beyond: 429\n"
        "      --max-concurrency N   executions at once (default 4)\n"
        "      --queue N             requests that may wait for a slot (default 64);\n"
        "                            beyond it: 429 with Retry-After\n"
        "      --pool PROFILE[/BACKEND]=N\n"
        "                            keep N sandboxes of that profile (standard or\n"
        "                            hardened) and backend (default: --backend)\n"
        "                            prepared, interpreter waiting (repeatable; N <= 64)\n"
        "      --config FILE         a JSON object of these options by long name\n"
        "                            (e.g. {\"listen\": \"unix:/run/tr.sock\", \"mcp\": [\"...\"]});\n"
        "                            options on the command line win\n"
        "  -b, --backend NAME        backend for requests that name none: containerd\n"
        "                            (default) or kata\n"
        "      --allow-dev           accept the dev profile (no isolation; off by default)\n"
        "      --idle-timeout SECS   close a connection silent this long (default 30)\n"
        "      --max-body SIZE       request body cap (default 17M)\n"
        "      --max-code SIZE       code cap (default 16M)\n"
        "      --max-timeout SECS    largest timeout a request may ask (default 300)\n"
        "      --max-memory SIZE, --max-pids N, --max-cpu-quota-ms N, --max-disk SIZE,\n"
        "      --max-tool-calls N, --max-chain-steps N, --max-output SIZE\n"
        "                            largest limits a request may ask, also applied\n"
        "                            where a request leaves a limit to a profile whose\n"
        "                            default is higher (default: no maxima)\n"
        "      --egress-allow-max HOST:PORT\n"
        "                            a target a request's \"egress\": {\"allow\": [...]} may\n"
        "                            list (repeatable; entries as for exec's\n"
        "                            --egress-allow); a request listing anything else is\n"
        "                            refused (403).  Without it, no request gets egress:\n"
        "                            the proxy connects from this host's network position\n"
        "  -v, --verbose             log what the runtime does on stderr\n"
        "\n"
        "Backend and gateway options as for `exec`: --image, --namespace, --socket,\n"
        "--runtime, --seccomp, --kernel, --initrd, --vm-image, --hypervisor, --accel,\n"
        "--uid-range, --tools FILE, --mcp 'CMD ARGS' (repeatable), --tool-env NAME\n"
        "(repeatable), and the pull options --no-pull, --insecure-registry HOST[:PORT],\n"
        "--registry-config FILE, --max-image-size SIZE.\n"
        "\n"
        "SIGTERM or SIGINT stop accepting, let running executions finish, end every\n"
        "session, and exit 0.  Sessions live in the serve process: after a restart\n"
        "their ids answer 404, and the gc run at start-up collects their sandboxes.\n";

enum {
        O_LISTEN = 0x100,
        O_TOKEN_FILE,
        O_MAX_CONC,
        O_QUEUE,
        O_POOL,
        O_CONFIG,
        O_ALLOW_DEV,
        O_IDLE,
        O_MAX_BODY,
        O_MAX_CODE,
        O_MAX_TIMEOUT,
        O_MAX_MEMORY,
        O_MAX_PIDS,
        O_MAX_CPU,
        O_MAX_DISK,
        O_MAX_TOOL_CALLS,
        O_MAX_CHAIN_STEPS,
        O_MAX_OUTPUT,
        O_TOOLS,
        O_MCP,
        O_TOOL_ENV,
        O_UID_RANGE,
        O_MAX_SESSIONS,
        O_MAX_SESSIONS_TOKEN,
        O_EGRESS_ALLOW_MAX,
};

static const struct option serve_opts[] = {
        { "listen", required_argument, NULL, O_LISTEN },
        { "token-file", required_argument, NULL, O_TOKEN_FILE },
        { "max-concurrency", required_argument, NULL, O_MAX_CONC },
        { "queue", required_argument, NULL, O_QUEUE },
        { "pool", required_argument, NULL, O_POOL },
        { "config", required_argument, NULL, O_CONFIG },
        { "backend", required_argument, NULL, 'b' },
        { "allow-dev", no_argument, NULL, O_ALLOW_DEV },
        { "idle-timeout", required_argument, NULL, O_IDLE },
        { "max-body", required_argument, NULL, O_MAX_BODY },
        { "max-code", required_argument, NULL, O_MAX_CODE },
        { "max-timeout", required_argument, NULL, O_MAX_TIMEOUT },
        { "max-memory", required_argument, NULL, O_MAX_MEMORY },
        { "max-pids", required_argument, NULL, O_MAX_PIDS },
        { "max-cpu-quota-ms", required_argument, NULL, O_MAX_CPU },
        { "max-disk", required_argument, NULL, O_MAX_DISK },
        { "max-tool-calls", required_argument, NULL, O_MAX_TOOL_CALLS },
        { "max-chain-steps", required_argument, NULL, O_MAX_CHAIN_STEPS },
        { "max-output", required_argument, NULL, O_MAX_OUTPUT },
        { "tools", required_argument, NULL, O_TOOLS },
        { "mcp", required_argument, NULL, O_MCP },
        { "tool-env", required_argument, NULL, O_TOOL_ENV },
        { "uid-range", required_argument, NULL, O_UID_RANGE },
        { "max-sessions", required_argument, NULL, O_MAX_SESSIONS },
        { "max-sessions-per-token", required_argument, NULL, O_MAX_SESSIONS_TOKEN },
        { "egress-allow-max", required_argument, NULL, O_EGRESS_ALLOW_MAX },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        CLI_BACKEND_LONG_OPTIONS,
        CLI_PULL_LONG_OPTIONS,
        { 0 },
};

typedef struct pool_spec {
        tr_profile profile;
        tr_backend_kind kind; /* NONE: the default backend */
        size_t size;
} pool_spec;

typedef struct serve_opts_t {
        tr__serve_config cfg;
        cli_backend_opts bo;
        cli_pull_args pull; /* a request's missing image is pulled as by exec */
        const char *token_file;
        const char *backend;
        const char *tools;
        char **mcp;      /* strv */
        char **tool_env; /* strv */
        pool_spec pools[8];
        size_t n_pools;
        bool verbose;
        char *owned[64]; /* strings from the config file, kept for bo/cfg */
        size_t n_owned;
} serve_opts_t;

/* Apply one option, from the command line or the config file (the same
 * parser for both).  Returns 0 or CLI_EXIT_USAGE after printing why. */
static int set_opt(serve_opts_t *o, int id, const char *name, const char *v) {
        int64_t n = 0;
        int64_t *lim = NULL;
        bool size = false, secs = false;
        switch (id) {
        case O_LISTEN: o->cfg.listen = v; return 0;
        case O_TOKEN_FILE: o->token_file = v; return 0;
        case O_CONFIG: return 0; /* read before the other options */
        case 'b': o->backend = v; return 0;
        case O_ALLOW_DEV: o->cfg.allow_dev = true; return 0;
        case 'v': o->verbose = true; return 0;
        case O_TOOLS: o->tools = v; return 0;
        case O_MCP: return cli_strv_push(&o->mcp, v) < 0 ? CLI_EXIT_ERROR : 0;
        case O_TOOL_ENV: return cli_strv_push(&o->tool_env, v) < 0 ? CLI_EXIT_ERROR : 0;
        case O_EGRESS_ALLOW_MAX: {
                /* Checked here, so a typo fails at start, not per request. */
                _cleanup_(tr_request_freep) tr_request *scratch = NULL;
                _cleanup_(tr_error_freep) tr_error *eerr = NULL;
                if (tr_request_new(&scratch, &eerr) < 0 || tr_request_set_egress_allow(scratch, &v, 1, &eerr) < 0)
                        return cli_usage_error("serve", "--egress-allow-max: %s", tr_error_message(eerr));
                return cli_strv_push(&o->cfg.egress_allow_max, v) < 0 ? CLI_EXIT_ERROR : 0;
        }
        case O_UID_RANGE: {
                _cleanup_(tr_error_freep) tr_error *uerr = NULL;
                if (tr_uid_range_parse(v, &o->bo.uid_range, &uerr) < 0)
                        return cli_usage_error("serve", "--uid-range: %s", tr_error_message(uerr));
                return 0;
        }
        case O_POOL: {
                char prof[16] = "", kind[16] = "";
                const char *eq = strchr(v, '=');
                const char *slash = eq ? memchr(v, '/', (size_t) (eq - v)) : NULL;
                size_t plen = eq ? (size_t) ((slash ? slash : eq) - v) : 0;
                size_t klen = slash ? (size_t) (eq - slash - 1) : 0;
                if (!eq || plen == 0 || plen >= sizeof(prof) || klen >= sizeof(kind) ||
                    tr_parse_count(eq + 1, &n, NULL) < 0 || n > TR__SERVE_POOL_MAX)
                        return cli_usage_error("serve", "--pool: expected PROFILE[/BACKEND]=N with N <= 64, got '%s'",
                                               v);
                memcpy(prof, v, plen);
                if (slash)
                        memcpy(kind, slash + 1, klen);
                tr_profile p;
                tr_backend_kind k = TR_BACKEND_NONE;
                if (tr_profile_from_name(prof, &p) < 0 || p == TR_PROFILE_DEV)
                        return cli_usage_error("serve", "--pool %s: the profile must be standard or hardened", v);
                if (slash &&
                    (tr_backend_kind_from_name(kind, &k) < 0 || (k != TR_BACKEND_CONTAINERD && k != TR_BACKEND_KATA)))
                        return cli_usage_error("serve", "--pool %s: the backend must be containerd or kata", v);
                for (size_t i = 0; i < o->n_pools; i++)
                        if (o->pools[i].profile == p && o->pools[i].kind == k) {
                                o->pools[i].size = (size_t) n; /* the last one wins */
                                return 0;
                        }
                if (o->n_pools == ARRAY_SIZE(o->pools))
                        return cli_usage_error("serve", "--pool: at most %zu pools", ARRAY_SIZE(o->pools));
                o->pools[o->n_pools++] = (pool_spec){ .profile = p, .kind = k, .size = (size_t) n };
                return 0;
        }
        case O_MAX_SESSIONS:
        case O_MAX_SESSIONS_TOKEN:
                if (tr_parse_count(v, &n, NULL) < 0 || n < 1 || n > 4096)
                        return cli_usage_error("serve", "--%s: expected an integer from 1 to 4096, got '%s'", name, v);
                *(id == O_MAX_SESSIONS ? &o->cfg.max_sessions : &o->cfg.max_sessions_per_token) = (unsigned) n;
                return 0;
        case O_MAX_CONC:
        case O_QUEUE:
                if (tr_parse_count(v, &n, NULL) < 0 || n < (id == O_MAX_CONC ? 1 : 0) || n > 4096)
                        return cli_usage_error("serve", "--%s: expected an integer from %d to 4096, got '%s'", name,
                                               id == O_MAX_CONC ? 1 : 0, v);
                *(id == O_MAX_CONC ? &o->cfg.max_concurrency : &o->cfg.queue) = (unsigned) n;
                return 0;
        case O_IDLE: secs = true; break;
        case O_MAX_TIMEOUT: secs = true; break;
        case O_MAX_BODY:
        case O_MAX_CODE:
        case O_MAX_OUTPUT: size = true; break;
        case O_MAX_MEMORY: lim = &o->cfg.max_limits.memory_bytes, size = true; break;
        case O_MAX_DISK: lim = &o->cfg.max_limits.disk_bytes, size = true; break;
        case O_MAX_PIDS: lim = &o->cfg.max_limits.pids_max; break;
        case O_MAX_CPU: lim = &o->cfg.max_limits.cpu_quota_ms; break;
        case O_MAX_TOOL_CALLS: lim = &o->cfg.max_limits.max_tool_calls; break;
        case O_MAX_CHAIN_STEPS: lim = &o->cfg.max_limits.max_chain_steps; break;
        default: {
                int pr = cli_pull_option("serve", &o->pull, id, v);
                if (pr == 0)
                        pr = cli_backend_option("serve", &o->bo, id, v);
                if (pr == 1)
                        return 0;
                return pr ? pr : cli_usage_error("serve", "invalid arguments");
        }
        }
        /* The library's parsers: the same forms as exec's options. */
        _cleanup_(tr_error_freep) tr_error *perr = NULL;
        int r = secs   ? tr_parse_seconds(v, &n, &perr)
                : size ? tr_parse_size(v, &n, &perr)
                       : tr_parse_count(v, &n, &perr);
        if (r < 0)
                return cli_usage_error("serve", "--%s: %s", name, tr_error_message(perr));
        if (lim)
                *lim = n;
        else if (id == O_IDLE)
                o->cfg.idle_timeout_s = (unsigned) (n < 1000 ? 1 : (n + 999) / 1000);
        else if (id == O_MAX_TIMEOUT)
                o->cfg.max_timeout_ms = n;
        else if (id == O_MAX_BODY)
                o->cfg.max_body = (size_t) n;
        else if (id == O_MAX_CODE)
                o->cfg.max_code = (size_t) n;
        else
                o->cfg.max_output = (size_t) n;
        return 0;
}

static const struct option *find_opt(const char *name) {
        for (const struct option *p = serve_opts; p->name; p++)
                if (streq(p->name, name))
                        return p;
        return NULL;
}

/* The config file: a JSON object whose keys are long option names; values
 * are strings, numbers, booleans (flags) or, for repeatable options,
 * arrays.  Unknown keys are an error, as on the command line. */
static int load_config(serve_opts_t *o, const char *path) {
        json_error_t jerr;
        json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!root || !json_is_object(root)) {
                fprintf(stderr, "toolruntime: --config %s: %s\n", path, root ? "expected a JSON object" : jerr.text);
                json_decref(root);
                return CLI_EXIT_USAGE;
        }
        const char *k;
        json_t *v;
        int r = 0;
        json_object_foreach(root, k, v) {
                const struct option *opt = find_opt(k);
                if (!opt || streq(k, "config") || streq(k, "help")) {
                        r = cli_usage_error("serve", "--config %s: unknown option '%s'", path, k);
                        break;
                }
                size_t n = json_is_array(v) ? json_array_size(v) : 1;
                for (size_t i = 0; i < n && r == 0; i++) {
                        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
                        char num[64];
                        const char *s = NULL;
                        if (json_is_string(e))
                                s = json_string_value(e);
                        else if (json_is_integer(e))
                                snprintf(num, sizeof(num), "%lld", (long long) json_integer_value(e)), s = num;
                        else if (json_is_real(e))
                                snprintf(num, sizeof(num), "%.3f", json_real_value(e)), s = num;
                        else if (json_is_true(e) && opt->has_arg == no_argument)
                                s = "";
                        else if (json_is_false(e) && opt->has_arg == no_argument)
                                continue;
                        if (!s) {
                                r = cli_usage_error("serve", "--config %s: bad value for '%s'", path, k);
                                break;
                        }
                        if (o->n_owned == ARRAY_SIZE(o->owned) || !(o->owned[o->n_owned] = strdup(s))) {
                                r = CLI_EXIT_ERROR;
                                break;
                        }
                        r = set_opt(o, opt->val, k, o->owned[o->n_owned++]);
                }
                if (r)
                        break;
        }
        json_decref(root);
        return r;
}

/* The tokens: one a line, blank lines and "#" comments skipped (several
 * clients, each with its own sessions).  A world-readable token file is
 * refused, as ssh refuses a readable key. */
#define MAX_TOKENS 256
static int read_tokens(const char *path, char ***ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = fd < 0 ? tr__negerrno() : fstat(fd, &st) < 0 ? tr__negerrno() : 0;
        if (r == 0 && (st.st_mode & 0004)) {
                fprintf(stderr, "toolruntime: --token-file %s is readable by everyone; chmod o-r it\n", path);
                return CLI_EXIT_USAGE;
        }
        if (r == 0)
                r = cli_read_fd(fd, 64 * 1024, &text, &len);
        if (r < 0) {
                fprintf(stderr, "toolruntime: --token-file %s: %s\n", path, strerror(-r));
                return CLI_EXIT_USAGE;
        }
        char **tokens = NULL;
        size_t n = 0, lineno = 0;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                lineno++;
                line[strcspn(line, "\r")] = '\0';
                if (!*line || *line == '#')
                        continue;
                if (strlen(line) < 16 || strpbrk(line, " \t") || n == MAX_TOKENS) {
                        fprintf(stderr, "toolruntime: --token-file %s: %s\n", path,
                                n == MAX_TOKENS ? "at most 256 tokens"
                                                : "each token must be at least 16 characters, without spaces");
                        explicit_bzero(text, len);
                        cli_strv_free(tokens);
                        return CLI_EXIT_USAGE;
                }
                if (cli_strv_push(&tokens, line) < 0) {
                        cli_strv_free(tokens);
                        return CLI_EXIT_ERROR;
                }
                n++;
        }
        explicit_bzero(text, len);
        if (n == 0) {
                fprintf(stderr, "toolruntime: --token-file %s holds no token\n", path);
                return CLI_EXIT_USAGE;
        }
        *ret = tokens;
        return 0;
}

/* Loopback or a unix socket: the only places a token may be omitted. */
static bool is_local(const char *listen) {
        if (strncmp(listen, "unix:", 5) == 0)
                return true;
        return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "localhost:", 10) == 0 ||
               strncmp(listen, "[::1]:", 6) == 0;
}

static void opts_done(serve_opts_t *o) {
        cli_strv_free(o->mcp);
        cli_strv_free(o->tool_env);
        cli_strv_free(o->cfg.egress_allow_max);
        for (size_t i = 0; i < o->n_owned; i++)
                free(o->owned[i]);
}

/* One runtime per backend a request may name, each routing standard and
 * hardened to that backend, so a request's choice never changes another's
 * route (tr_runtime_route is per runtime, not per request). */
static int make_runtimes(const serve_opts_t *o, tr__serve_backends *bk, tr_error **ret_err) {
        static const tr_backend_kind kinds[] = { TR_BACKEND_CONTAINERD, TR_BACKEND_KATA, TR_BACKEND_UNSAFE_HOST };
        for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
                tr_runtime *rt = NULL;
                int r = cli_runtime_new(&o->bo, o->verbose ? cli_log : cli_log_warnings, NULL, &rt, ret_err);
                if (r < 0)
                        return r;
                tr_runtime_route(rt, TR_PROFILE_STANDARD, kinds[i]);
                tr_runtime_route(rt, TR_PROFILE_HARDENED, kinds[i]);
                bk->by_kind[kinds[i]] = rt;
        }
        return 0;
}

/* The warm pools: each a shape of a request with no limits of its own, as
 * the API would run it (the server's maxima applied). */
static int make_pools(const serve_opts_t *o, tr__serve_backends *bk, tr_error **ret_err) {
        for (size_t i = 0; i < o->n_pools; i++) {
                const pool_spec *ps = &o->pools[i];
                tr_backend_kind kind = ps->kind != TR_BACKEND_NONE ? ps->kind : bk->default_kind;
                if (ps->size == 0)
                        continue;
                _cleanup_(tr_request_freep) tr_request *shape = NULL;
                tr_limits lim;
                tr_limits_init(&lim);
                int r = tr__serve_effective_limits(&o->cfg, ps->profile, &lim, ret_err);
                if (r >= 0)
                        r = tr_request_new(&shape, ret_err);
                if (r < 0)
                        return r;
                tr_request_set_profile(shape, ps->profile);
                tr_request_set_limits(shape, &lim);
                tr_request_set_gateway(shape, bk->gateway);
                tr_pool *pool = NULL;
                if ((r = tr_pool_new(bk->by_kind[kind], shape, ps->size, &pool, ret_err)) < 0)
                        return r;
                bk->pools[bk->n_pools].pool = pool;
                bk->pools[bk->n_pools].profile = ps->profile;
                bk->pools[bk->n_pools].kind = kind;
                snprintf(bk->pools[bk->n_pools].name, sizeof(bk->pools[0].name), "%s/%s", tr_profile_name(ps->profile),
                         tr_backend_kind_name(kind));
                bk->n_pools++;
        }
        return 0;
}

#define GC_INTERVAL_S 60

static void run_gc(const serve_opts_t *o, const char *when) {
        tr_containerd_config ccfg;
        cli_containerd_config(&o->bo, &ccfg);
        unsigned removed = 0;
        tr_error *gerr = NULL;
        if (tr_containerd_gc_ex(&ccfg, false, &removed, &gerr) < 0)
                fprintf(stderr, "toolruntime serve: warning: %s gc: %s\n", when, tr_error_message(gerr));
        else if (removed)
                fprintf(stderr, "toolruntime serve: %s gc removed %u objects\n", when, removed);
        tr_error_free(gerr);
}

int cli_serve(int argc, char **argv) {
        serve_opts_t o = {
                .cfg = {
                        .listen = "127.0.0.1:8787",
                        .max_concurrency = 4,
                        .queue = 64,
                        .idle_timeout_s = 30,
                        .max_body = 17 * 1024 * 1024,
                        .max_code = 16 * 1024 * 1024,
                        .max_timeout_ms = 300 * 1000,
                        .max_sessions = 64,
                        .max_sessions_per_token = 16,
                },
        };
        int c, rc = 0;
        /* The config file first, so the command line overrides it. */
        for (int i = 1; i < argc && rc == 0; i++) {
                if (strncmp(argv[i], "--config=", 9) == 0)
                        rc = load_config(&o, argv[i] + 9);
                else if (streq(argv[i], "--config") && i + 1 < argc)
                        rc = load_config(&o, argv[++i]);
        }
        optind = 0;
        while (rc == 0 && (c = getopt_long(argc, argv, "b:vh", serve_opts, NULL)) != -1) {
                if (c == 'h') {
                        fputs(serve_help, stdout);
                        opts_done(&o);
                        return 0;
                }
                const char *name = "?";
                for (const struct option *p = serve_opts; p->name; p++)
                        if (p->val == c)
                                name = p->name;
                rc = c == '?' ? cli_usage_error("serve", "invalid arguments") : set_opt(&o, c, name, optarg);
        }
        if (rc == 0 && optind < argc)
                rc = cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
        char **tokens = NULL;
        if (rc == 0 && o.token_file)
                rc = read_tokens(o.token_file, &tokens);
        if (rc == 0 && !tokens && !is_local(o.cfg.listen))
                rc = cli_usage_error("serve",
                                     "refusing to listen on %s without --token-file: anyone who can reach it "
                                     "could run code",
                                     o.cfg.listen);
        tr__serve_backends bk = { .default_kind = TR_BACKEND_CONTAINERD };
        if (rc == 0 && o.backend &&
            (tr_backend_kind_from_name(o.backend, &bk.default_kind) < 0 ||
             (bk.default_kind != TR_BACKEND_CONTAINERD && bk.default_kind != TR_BACKEND_KATA)))
                rc = cli_usage_error("serve", "--backend: expected containerd or kata, got '%s'", o.backend);
        if (rc) {
                cli_strv_free(tokens);
                opts_done(&o);
                return rc;
        }
        o.cfg.token = tokens ? tokens[0] : NULL;
        o.cfg.tokens = (const char *const *) tokens;
        o.cfg.n_tokens = cli_strv_len(tokens);

        /* Signals are taken by sigwait in this thread only: block them
         * before any thread exists so every thread inherits the mask. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        if (!o.pull.no_pull)
                o.bo.pull = &o.pull.opts;
        tr_error *err = NULL;
        tr__server *srv = NULL;
        int r = make_runtimes(&o, &bk, &err);
        if (r >= 0)
                r = cli_gateway_new_env(o.tools, (const char **) o.mcp, cli_strv_len(o.mcp), (const char **) o.tool_env,
                                        cli_strv_len(o.tool_env), o.verbose ? cli_log : cli_log_warnings, NULL,
                                        &bk.gateway, &err);
        if (r >= 0) {
                /* What a previous instance left (it was killed, or the
                 * machine went down mid-run) is collected before serving. */
                run_gc(&o, "start-up");
                r = tr__serve_mcp_new(&o.cfg, &bk, &bk.mcp, &err);
        }
        if (r >= 0)
                r = make_pools(&o, &bk, &err);
        if (r >= 0) {
                r = tr__server_start(&o.cfg, &bk, &srv, &err);
        }
        if (r >= 0) {
                fprintf(stderr, "toolruntime serve: listening on %s\n", tr__server_address(srv));
                /* The owner-aware gc again every GC_INTERVAL_S: what a killed
                 * predecessor's in-flight requests created after the
                 * start-up gc, and what outlived its deadline. */
                int sig = -1;
                while (sig < 0) {
                        struct timespec ts = { .tv_sec = GC_INTERVAL_S };
                        sig = sigtimedwait(&set, NULL, &ts);
                        if (sig < 0 && errno == EAGAIN)
                                run_gc(&o, "periodic");
                        else if (sig < 0 && errno != EINTR)
                                break;
                }
                fprintf(stderr, "toolruntime serve: %s: draining\n", sig > 0 ? strsignal(sig) : "sigtimedwait failed");
                /* Every execution ends by its own timeout; give them that
                 * and a margin for teardown. */
                unsigned left = tr__server_drain(srv, o.cfg.max_timeout_ms + 10000);
                if (left)
                        fprintf(stderr, "toolruntime serve: %u executions still running at exit\n", left);
        } else {
                cli_print_error(err);
                rc = CLI_EXIT_ERROR;
        }
        tr_error_free(err);
        tr__server_free(srv);
        tr__serve_mcp_free(bk.mcp);
        for (size_t i = 0; i < bk.n_pools; i++)
                tr_pool_free(bk.pools[i].pool);
        tr_gateway_free(bk.gateway);
        for (size_t i = 0; i < ARRAY_SIZE(bk.by_kind); i++)
                tr_runtime_free(bk.by_kind[i]);
        cli_strv_free(tokens);
        opts_done(&o);
        return rc;
}
