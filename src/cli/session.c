/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `toolruntime session create|exec|cp|ls|rm`: sessions on a running
 * `toolruntime serve`, over its HTTP API (remote.c makes the calls).  A
 * session lives in the service, not in this process, so every subcommand
 * names the server (--server or TOOLRUNTIME_SERVER) and, when it wants
 * one, a token (TOOLRUNTIME_TOKEN): the session belongs to that token.
 * `exec` prints like `exec`; `cp` streams files both ways.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "serve/wire.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/curl_lazy.h"

static const char session_help[] =
        "Usage: toolruntime session COMMAND [OPTIONS]\n"
        "\n"
        "Sessions on a running `toolruntime serve`: one sandbox and one Python\n"
        "interpreter kept alive across executions (variables, imports and files\n"
        "under /tmp persist) until deleted, idle too long, or past their TTL.\n"
        "\n"
        "  create [-p PROFILE] [-b BACKEND] [--ttl SECS] [--idle-timeout SECS]\n"
        "         [--memory SIZE] [--pids N] [--cpu-quota-ms N] [--disk SIZE]\n"
        "         [--egress-allow HOST:PORT]... [--json]\n"
        "                           start a session; prints its id (--json: the object);\n"
        "                           --egress-allow (repeatable) lets it reach HOST:PORT\n"
        "  exec ID [-t SECS] [--max-output SIZE] [--stdin FILE] [--json] (-c CODE | FILE | -)\n"
        "                           run Python in the session, printed as `exec` prints\n"
        "                           (same exit statuses)\n"
        "  cp LOCAL ID:PATH         upload a file (streamed; LOCAL - is stdin)\n"
        "  cp ID:PATH LOCAL         download a file (streamed; LOCAL - is stdout)\n"
        "                           PATH is relative to the session's /tmp\n"
        "  ls [--json]              the sessions of this token, with their expiry\n"
        "  rm ID...                 delete sessions (their sandboxes are destroyed)\n"
        "\n"
        "Every command takes --server URL (http(s)://HOST:PORT or unix:PATH; default\n"
        "the TOOLRUNTIME_SERVER variable); the bearer token is TOOLRUNTIME_TOKEN's.\n"
        "Another token's sessions are invisible (404).  Sessions end when the server\n"
        "restarts: their ids then answer 404.\n";

enum { O_SERVER = 0x100, O_TTL, O_IDLE, O_MEMORY, O_PIDS, O_CPU, O_DISK, O_JSON, O_MAX_OUTPUT, O_STDIN, O_EGRESS };

static const struct option opts[] = {
        { "server", required_argument, NULL, O_SERVER },
        { "profile", required_argument, NULL, 'p' },
        { "backend", required_argument, NULL, 'b' },
        { "ttl", required_argument, NULL, O_TTL },
        { "idle-timeout", required_argument, NULL, O_IDLE },
        { "memory", required_argument, NULL, O_MEMORY },
        { "pids", required_argument, NULL, O_PIDS },
        { "cpu-quota-ms", required_argument, NULL, O_CPU },
        { "disk", required_argument, NULL, O_DISK },
        { "json", no_argument, NULL, O_JSON },
        { "timeout", required_argument, NULL, 't' },
        { "max-output", required_argument, NULL, O_MAX_OUTPUT },
        { "stdin", required_argument, NULL, O_STDIN },
        { "egress-allow", required_argument, NULL, O_EGRESS },
        { "code", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
};

typedef struct sopts {
        const char *server, *profile, *backend, *code, *stdin_file;
        int64_t ttl_ms, idle_ms, timeout_ms, max_output;
        tr_limits limits;
        bool json;
        const char *egress[TR_MAX_EGRESS_ALLOW];
        size_t n_egress;
} sopts;

static bool is_id(const char *s, size_t n) {
        if (n != 32)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("0123456789abcdef", s[i]))
                        return false;
        return true;
}

/* A call whose answer is JSON: 2xx → *ret (may be NULL for 204), else the
 * error printed and an exit status. */
static int call_json(const sopts *o, const char *method, const char *path, const char *body, json_t **ret) {
        cli_remote_call_args a = {
                .server = o->server, .method = method, .path = path, .body = body, .in_fd = -1, .out_fd = -1
        };
        long status = 0;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int rc = cli_remote_call(&a, &status, &data, &len);
        if (rc)
                return rc;
        json_t *j = data && len ? json_loadb(data, len, 0, NULL) : NULL;
        if (status >= 200 && status <= 299) {
                *ret = j;
                return 0;
        }
        json_t *err = json_object_get(j, "error");
        if (json_is_object(err))
                rc = cli_remote_print_error(err);
        else {
                fprintf(stderr, "toolruntime: error: --server %s answered HTTP %ld\n", o->server, status);
                rc = CLI_EXIT_ERROR;
        }
        json_decref(j);
        return rc;
}

static int do_create(const sopts *o) {
        _cleanup_(json_decrefp) json_t *req = json_object(), *lim = json_object();
        if (o->profile)
                json_object_set_new(req, "profile", json_string(o->profile));
        if (o->backend)
                json_object_set_new(req, "backend", json_string(o->backend));
        if (o->ttl_ms)
                json_object_set_new(req, "ttl", json_real((double) o->ttl_ms / 1000.0));
        if (o->idle_ms)
                json_object_set_new(req, "idle_timeout", json_real((double) o->idle_ms / 1000.0));
        /* Only memory, pids, cpu and disk are set here (tr_limits_init
         * leaves the others unset, and unset limits are not sent). */
        for (size_t i = 0; i < TR__WIRE_N_LIMITS; i++) {
                int64_t v = tr__wire_limit_get(&o->limits, i);
                if (v != TR_LIMIT_UNSET)
                        json_object_set_new(lim, tr__wire_limits[i].name, json_integer(v));
        }
        if (json_object_size(lim))
                json_object_set(req, "limits", lim);
        if (o->n_egress) {
                json_t *allow = json_array();
                for (size_t i = 0; i < o->n_egress; i++)
                        json_array_append_new(allow, json_string(o->egress[i]));
                json_object_set_new(req, "egress", json_pack("{s:o}", "allow", allow));
        }
        _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
        _cleanup_(json_decrefp) json_t *res = NULL;
        int rc = call_json(o, "POST", "/v1/sessions", text ? text : "{}", &res);
        if (rc)
                return rc;
        const char *id = json_string_value(json_object_get(res, "id"));
        if (!id) {
                fputs("toolruntime: error: the server's answer has no session id\n", stderr);
                return CLI_EXIT_ERROR;
        }
        if (o->json) {
                _cleanup_free_ char *out = json_dumps(res, JSON_COMPACT);
                puts(out ? out : "{}");
        } else
                puts(id);
        return fflush(stdout) == 0 ? 0 : CLI_EXIT_ERROR;
}

static int do_exec(const sopts *o, const char *id, const char *file) {
        if (!is_id(id, strlen(id)))
                return cli_usage_error("session", "exec: '%s' is not a session id (32 hex digits)", id);
        _cleanup_free_ char *code_buf = NULL, *stdin_buf = NULL;
        size_t code_len = 0, stdin_len = 0;
        if (!o->code == !file)
                return cli_usage_error("session", "exec: give the code with -c CODE, or a FILE, or - for stdin");
        if (file) {
                int fd = streq(file, "-") ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
                int r = fd < 0 ? -errno : cli_read_fd(fd, 16 * 1024 * 1024, &code_buf, &code_len);
                if (fd > STDIN_FILENO)
                        close(fd);
                if (r < 0) {
                        fprintf(stderr, "toolruntime: %s: %s\n", file, strerror(-r));
                        return CLI_EXIT_USAGE;
                }
        }
        if (o->stdin_file) {
                int fd = streq(o->stdin_file, "-") ? STDIN_FILENO : open(o->stdin_file, O_RDONLY | O_CLOEXEC);
                int r = fd < 0 ? -errno : cli_read_fd(fd, TR_MAX_STDIN_BYTES, &stdin_buf, &stdin_len);
                if (fd > STDIN_FILENO)
                        close(fd);
                if (r < 0) {
                        fprintf(stderr, "toolruntime: --stdin %s: %s\n", o->stdin_file, strerror(-r));
                        return CLI_EXIT_USAGE;
                }
        }
        char path[80];
        snprintf(path, sizeof(path), "/v1/sessions/%s/execute", id);
        tr_limits none;
        tr_limits_init(&none);
        cli_remote_req rr = {
                .server = o->server,
                .code = o->code ? o->code : code_buf,
                .code_len = o->code ? strlen(o->code) : code_len,
                .timeout_ms = o->timeout_ms,
                .limits = none,
                .max_output = o->max_output,
                .stdin_data = stdin_buf,
                .stdin_len = stdin_len,
                .json = o->json,
                .path = path,
        };
        return cli_exec_remote(&rr);
}

/* "ID:PATH" → the id and the URL path of the file (each component
 * percent-encoded); false when `arg` is not of that form. */
static bool remote_file(const char *arg, char *id, char *url, size_t urlsz) {
        const char *colon = strchr(arg, ':');
        if (!colon || !is_id(arg, (size_t) (colon - arg)) || !colon[1])
                return false;
        memcpy(id, arg, 32);
        id[32] = '\0';
        int n = snprintf(url, urlsz, "/v1/sessions/%s/files", id);
        for (const char *p = colon + 1; *p && n > 0 && (size_t) n < urlsz;) {
                size_t len = strcspn(p, "/");
                char *e = curl_easy_escape(NULL, p, (int) len);
                n += snprintf(url + n, urlsz - (size_t) n, "/%s", e ? e : "");
                curl_free(e);
                p += len;
                if (*p == '/')
                        p++;
        }
        return n > 0 && (size_t) n < urlsz;
}

static int do_cp(const sopts *o, const char *src, const char *dst) {
        char id[33], url[4096];
        bool up = remote_file(dst, id, url, sizeof(url)), down = !up && remote_file(src, id, url, sizeof(url));
        if (up == down)
                return cli_usage_error("session", "cp: expected LOCAL ID:PATH or ID:PATH LOCAL");
        const char *local = up ? src : dst;
        bool std = streq(local, "-");
        int fd = std  ? (up ? STDIN_FILENO : STDOUT_FILENO)
                 : up ? open(local, O_RDONLY | O_CLOEXEC)
                      : open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
                fprintf(stderr, "toolruntime: %s: %s\n", local, strerror(errno));
                return CLI_EXIT_USAGE;
        }
        struct stat st;
        int64_t size = up && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t) st.st_size : -1;
        cli_remote_call_args a = { .server = o->server,
                                   .method = up ? "PUT" : "GET",
                                   .path = url,
                                   .in_fd = up ? fd : -1,
                                   .in_size = size,
                                   .out_fd = up ? -1 : fd };
        long status = 0;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int rc = cli_remote_call(&a, &status, &data, &len);
        if (!std && close(fd) < 0 && rc == 0) {
                fprintf(stderr, "toolruntime: %s: %s\n", local, strerror(errno));
                rc = CLI_EXIT_ERROR;
        }
        if (rc == 0 && (status < 200 || status > 299)) {
                _cleanup_(json_decrefp) json_t *j = data ? json_loadb(data, len, 0, NULL) : NULL;
                json_t *err = json_object_get(j, "error");
                if (json_is_object(err))
                        rc = cli_remote_print_error(err);
                else {
                        fprintf(stderr, "toolruntime: error: --server %s answered HTTP %ld\n", o->server, status);
                        rc = CLI_EXIT_ERROR;
                }
        }
        /* A failed download leaves no partial file behind. */
        if (rc && down && !std)
                unlink(local);
        return rc;
}

static int do_ls(const sopts *o) {
        _cleanup_(json_decrefp) json_t *res = NULL;
        int rc = call_json(o, "GET", "/v1/sessions", NULL, &res);
        if (rc)
                return rc;
        if (o->json) {
                _cleanup_free_ char *out = json_dumps(res, JSON_COMPACT);
                puts(out ? out : "{}");
                return fflush(stdout) == 0 ? 0 : CLI_EXIT_ERROR;
        }
        printf("%-32s  %-8s  %-10s  %5s  %s\n", "ID", "PROFILE", "BACKEND", "EXECS", "EXPIRES");
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(res, "sessions"), i, s) {
                printf("%-32s  %-8s  %-10s  %5lld  %s\n", json_string_value(json_object_get(s, "id")),
                       json_string_value(json_object_get(s, "profile")),
                       json_string_value(json_object_get(s, "backend")),
                       (long long) json_integer_value(json_object_get(s, "executions")),
                       json_string_value(json_object_get(s, "expires_at")));
        }
        return fflush(stdout) == 0 ? 0 : CLI_EXIT_ERROR;
}

static int do_rm(const sopts *o, char **ids, size_t n) {
        int rc = 0;
        for (size_t i = 0; i < n; i++) {
                if (!is_id(ids[i], strlen(ids[i]))) {
                        rc = cli_usage_error("session", "rm: '%s' is not a session id (32 hex digits)", ids[i]);
                        continue;
                }
                char path[80];
                snprintf(path, sizeof(path), "/v1/sessions/%s", ids[i]);
                json_t *res = NULL;
                int r = call_json(o, "DELETE", path, NULL, &res);
                json_decref(res);
                if (r)
                        rc = r;
        }
        return rc;
}

int cli_session(int argc, char **argv) {
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                fputs(session_help, argc < 2 ? stderr : stdout);
                return argc < 2 ? CLI_EXIT_USAGE : 0;
        }
        const char *cmd = argv[1];
        sopts o = { .server = getenv("TOOLRUNTIME_SERVER") };
        tr_limits_init(&o.limits);
        int c;
        optind = 0;
        while ((c = getopt_long(argc - 1, argv + 1, "p:b:t:c:h", opts, NULL)) != -1) {
                int64_t n = 0, *dst = NULL;
                enum { COUNT, SIZE, SECONDS } kind = COUNT;
                switch (c) {
                case 'h': fputs(session_help, stdout); return 0;
                case O_SERVER: o.server = optarg; continue;
                case 'p': o.profile = optarg; continue;
                case 'b': o.backend = optarg; continue;
                case 'c': o.code = optarg; continue;
                case O_STDIN: o.stdin_file = optarg; continue;
                case O_JSON: o.json = true; continue;
                case O_EGRESS:
                        if (o.n_egress == TR_MAX_EGRESS_ALLOW)
                                return cli_usage_error("session", "--egress-allow: at most %d entries",
                                                       TR_MAX_EGRESS_ALLOW);
                        o.egress[o.n_egress++] = optarg;
                        continue;
                case 't': dst = &o.timeout_ms, kind = SECONDS; break;
                case O_TTL: dst = &o.ttl_ms, kind = SECONDS; break;
                case O_IDLE: dst = &o.idle_ms, kind = SECONDS; break;
                case O_MEMORY: dst = &o.limits.memory_bytes, kind = SIZE; break;
                case O_DISK: dst = &o.limits.disk_bytes, kind = SIZE; break;
                case O_PIDS: dst = &o.limits.pids_max; break;
                case O_CPU: dst = &o.limits.cpu_quota_ms; break;
                case O_MAX_OUTPUT: dst = &o.max_output, kind = SIZE; break;
                default: return cli_usage_error("session", "invalid arguments");
                }
                _cleanup_(tr_error_freep) tr_error *perr = NULL;
                int r = kind == SECONDS ? tr_parse_seconds(optarg, &n, &perr)
                        : kind == SIZE  ? tr_parse_size(optarg, &n, &perr)
                                        : tr_parse_count(optarg, &n, &perr);
                if (r < 0)
                        return cli_usage_error("session", "'%s': %s", optarg, tr_error_message(perr));
                *dst = n;
        }
        char **rest = argv + 1 + optind;
        size_t n_rest = (size_t) (argc - 1 - optind);
        if (!o.server || !*o.server)
                return cli_usage_error("session", "no server: give --server URL or set TOOLRUNTIME_SERVER");
        if (streq(cmd, "create") && n_rest == 0)
                return do_create(&o);
        if (streq(cmd, "exec") && n_rest >= 1 && n_rest <= 2)
                return do_exec(&o, rest[0], n_rest == 2 ? rest[1] : NULL);
        if (streq(cmd, "cp") && n_rest == 2)
                return do_cp(&o, rest[0], rest[1]);
        if (streq(cmd, "ls") && n_rest == 0)
                return do_ls(&o);
        if (streq(cmd, "rm") && n_rest >= 1)
                return do_rm(&o, rest, n_rest);
        if (!streq(cmd, "create") && !streq(cmd, "exec") && !streq(cmd, "cp") && !streq(cmd, "ls") && !streq(cmd, "rm"))
                return cli_usage_error("session", "unknown command '%s' (create, exec, cp, ls, rm)", cmd);
        return cli_usage_error("session", "%s: wrong number of arguments", cmd);
}
