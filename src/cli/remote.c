/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `exec --server URL` and `session`: the CLI as a client of `toolruntime
 * serve`.  This file owns the HTTP calls (one helper, bodies streamed from
 * and to files for session cp).  An execution goes to POST /v1/execute (libcurl, the HTTP client the image
 * puller already uses); the answer is the object `exec --json` prints, and
 * this file prints it the way a local `exec` does — same streams, same
 * exit statuses — so scripts cannot tell the difference.
 */
#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "serve/wire.h"
#include "util/macros.h"
#include "util/curl_lazy.h"

typedef struct body {
        char *data;
        size_t len;
} body;

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
        body *b = ud;
        size_t k = size * n;
        /* The server caps output; this bounds a misbehaving one. */
        if (b->len + k > (size_t) 256 * 1024 * 1024)
                return 0;
        char *nd = realloc(b->data, b->len + k + 1);
        if (!nd)
                return 0;
        memcpy(nd + b->len, p, k);
        b->data = nd;
        b->len += k;
        b->data[b->len] = '\0';
        return k;
}

static json_t *request_json(const cli_remote_req *r) {
        json_t *o = json_object(), *lim = json_object(), *args = json_array();
        json_object_set_new(o, "code", json_stringn(r->code, r->code_len));
        if (r->language)
                json_object_set_new(o, "language", json_string(r->language));
        if (r->profile)
                json_object_set_new(o, "profile", json_string(r->profile));
        if (r->backend)
                json_object_set_new(o, "backend", json_string(r->backend));
        if (r->timeout_ms > 0)
                json_object_set_new(o, "timeout", json_real((double) r->timeout_ms / 1000.0));
        for (size_t i = 0; i < TR__WIRE_N_LIMITS; i++) {
                int64_t v = tr__wire_limit_get(&r->limits, i);
                if (v != TR_LIMIT_UNSET)
                        json_object_set_new(lim, tr__wire_limits[i].name, json_integer(v));
        }
        if (r->max_output > 0)
                json_object_set_new(lim, "max_output", json_integer(r->max_output));
        json_object_set_new(o, "limits", lim);
        for (size_t i = 0; i < r->n_args; i++)
                json_array_append_new(args, json_string(r->args[i]));
        if (r->n_args)
                json_object_set_new(o, "args", args);
        else
                json_decref(args);
        if (r->n_egress) {
                json_t *allow = json_array();
                for (size_t i = 0; i < r->n_egress; i++)
                        json_array_append_new(allow, json_string(r->egress[i]));
                json_object_set_new(o, "egress", json_pack("{s:o}", "allow", allow));
        }
        if (r->stdin_data) {
                json_t *in = json_stringn(r->stdin_data, r->stdin_len);
                if (!in) {
                        json_decref(o);
                        return NULL;
                }
                json_object_set_new(o, "stdin", in);
        }
        return o;
}

/* "unix:/path" → the socket, the URL http://localhost/PATH; else
 * SERVER/PATH. */
static void set_target(CURL *c, const char *server, const char *path, char *url, size_t urlsz) {
        if (strncmp(server, "unix:", 5) == 0) {
                curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, server + 5);
                snprintf(url, urlsz, "http://localhost%s", path);
                return;
        }
        size_t n = strlen(server);
        while (n > 0 && server[n - 1] == '/')
                n--;
        snprintf(url, urlsz, "%.*s%s", (int) n, server, path);
}

/* A response body: to `fd` when the status is 2xx and a sink was given,
 * else kept in memory (an error's JSON). */
typedef struct sink {
        CURL *c;
        int fd;
        bool failed;
        body b;
} sink;

static size_t on_sink(char *p, size_t size, size_t n, void *ud) {
        sink *k = ud;
        long status = 0;
        curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &status);
        if (k->fd < 0 || status < 200 || status > 299)
                return on_data(p, size, n, &k->b);
        size_t len = size * n;
        for (size_t off = 0; off < len;) {
                ssize_t w = write(k->fd, p + off, len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        k->failed = true;
                        return 0;
                }
                off += (size_t) w;
        }
        return len;
}

static size_t on_source(char *p, size_t size, size_t n, void *ud) {
        int fd = *(int *) ud;
        for (;;) {
                ssize_t r = read(fd, p, size * n);
                if (r < 0 && errno == EINTR)
                        continue;
                return r < 0 ? CURL_READFUNC_ABORT : (size_t) r;
        }
}

int cli_remote_call(const cli_remote_call_args *a, long *ret_status, char **ret_data, size_t *ret_len) {
        CURL *c = curl_easy_init();
        if (!c) {
                fputs(tr__curl_available() ? "toolruntime: out of memory\n"
                                           : "toolruntime: talking to a server needs libcurl (" TR_CURL_SONAME
                                             "): apt-get install libcurl4\n",
                      stderr);
                return CLI_EXIT_ERROR;
        }
        char url[4096], auth[1024] = "";
        set_target(c, a->server, a->path, url, sizeof(url));
        struct curl_slist *hdrs = NULL;
        if (a->body)
                hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        if (a->ndjson)
                hdrs = curl_slist_append(hdrs, "Accept: application/x-ndjson");
        const char *token = getenv("TOOLRUNTIME_TOKEN");
        if (token && *token) {
                snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
                hdrs = curl_slist_append(hdrs, auth);
        }
        sink k = { .c = c, .fd = a->out_fd };
        int in_fd = a->in_fd;
        char errbuf[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, a->method);
        if (a->body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, a->body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(a->body));
        } else if (in_fd >= 0) {
                /* Streamed from the file: never the whole of it in memory. */
                curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(c, CURLOPT_READFUNCTION, on_source);
                curl_easy_setopt(c, CURLOPT_READDATA, &in_fd);
                if (a->in_size >= 0)
                        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t) a->in_size);
        } else if (streq(a->method, "GET") || streq(a->method, "DELETE")) {
                curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, a->method);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sink);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        CURLcode cr = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(c);
        explicit_bzero(auth, sizeof(auth));
        if (cr != CURLE_OK && !(k.b.data && status >= 400)) {
                free(k.b.data);
                if (k.failed)
                        fprintf(stderr, "toolruntime: error: cannot write the download: %s\n", strerror(errno));
                else
                        fprintf(stderr, "toolruntime: error: runtime_unavailable: --server %s: %s [retryable]\n",
                                a->server, *errbuf ? errbuf : curl_easy_strerror(cr));
                return CLI_EXIT_ERROR;
        }
        *ret_status = status;
        *ret_data = k.b.data;
        *ret_len = k.b.len;
        return 0;
}

int cli_remote_print_error(json_t *e) {
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *op = json_string_value(json_object_get(e, "op"));
        const char *backend = json_string_value(json_object_get(e, "backend"));
        fprintf(stderr, "toolruntime: error: %s: ", code ? code : "error");
        cli_term_write(stderr, msg ? msg : "", msg ? strlen(msg) : 0);
        if ((backend && *backend) || (op && *op))
                fprintf(stderr, " (%s%s%s)", backend ? backend : "", backend && *backend && op && *op ? " " : "",
                        op ? op : "");
        if (json_is_true(json_object_get(e, "retryable")))
                fputs(" [retryable]", stderr);
        fputc('\n', stderr);
        return code && streq(code, "timeout") ? CLI_EXIT_TIMEOUT : CLI_EXIT_ERROR;
}

int cli_remote_print_result(const char *server, long status, const char *data, size_t len, bool json) {
        _cleanup_(json_decrefp) json_t *res = data ? json_loadb(data, len, 0, NULL) : NULL;
        if (!json_is_object(res)) {
                fprintf(stderr, "toolruntime: error: --server %s answered HTTP %ld without a JSON object\n", server,
                        status);
                return CLI_EXIT_ERROR;
        }
        /* A request the server refused (400, 401, 429, ...) carries an
         * error object like a local one (invalid_limits, ...): the same
         * statuses follow from it. */
        json_t *err = json_object_get(res, "error");
        if (json) {
                puts(data);
        } else {
                const char *out = json_string_value(json_object_get(res, "stdout"));
                const char *errs = json_string_value(json_object_get(res, "stderr"));
                if (out)
                        cli_term_write(stdout, out, json_string_length(json_object_get(res, "stdout")));
                fflush(stdout);
                if (errs)
                        cli_term_write(stderr, errs, json_string_length(json_object_get(res, "stderr")));
                json_t *tr = json_object_get(res, "truncated");
                if (json_is_true(json_object_get(tr, "stdout")) || json_is_true(json_object_get(tr, "stderr")))
                        fputs("toolruntime: output was truncated (see --max-output)\n", stderr);
                const char *sig = json_string_value(json_object_get(res, "signal"));
                if (sig && json_is_null(err))
                        fprintf(stderr, "toolruntime: the snippet was killed by %s\n", sig);
                if (json_is_object(err))
                        return cli_remote_print_error(err);
        }
        if (fflush(stdout) != 0)
                return CLI_EXIT_ERROR;
        if (json_is_object(err)) {
                const char *code = json_string_value(json_object_get(err, "code"));
                return code && streq(code, "timeout") ? CLI_EXIT_TIMEOUT : CLI_EXIT_ERROR;
        }
        json_t *ec = json_object_get(res, "exit_code");
        return json_is_integer(ec) ? (int) json_integer_value(ec) : CLI_EXIT_ERROR;
}

int cli_exec_remote(const cli_remote_req *r) {
        _cleanup_(json_decrefp) json_t *req = request_json(r);
        if (!req) {
                fputs("toolruntime: --stdin with --server must be UTF-8 text (JSON carries it as a string)\n", stderr);
                return CLI_EXIT_USAGE;
        }
        _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
        if (!text) {
                fputs("toolruntime: out of memory\n", stderr);
                return CLI_EXIT_ERROR;
        }
        cli_remote_call_args a = {
                .server = r->server,
                .method = "POST",
                .path = r->path ? r->path : "/v1/execute",
                .body = text,
                .in_fd = -1,
                .out_fd = -1,
        };
        long status = 0;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int rc = cli_remote_call(&a, &status, &data, &len);
        if (rc)
                return rc;
        return cli_remote_print_result(r->server, status, data, len, r->json);
}
