/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gateway/frame.h"
#include "gateway/session.h"
#include "helpers.h"

typedef struct fake {
        bool unix_socket;
        tgw_client_fn client;
        void *userdata;
} fake;

static tr_backend_kind fake_kind(void *self) {
        return TR_BACKEND_REMOTE;
}

static int fake_execute(void *self, tr_exec *ex, tr_error **ret_err) {
        fake *f = self;
        tr__gw_session *s = NULL;
        tr_result_set_backend_kind(tr_exec_result(ex), TR_BACKEND_REMOTE);
        int r = tr__gw_session_new(ex, &s, ret_err);
        if (r < 0)
                return r;
        int fd = -1;
        char dir[] = "/tmp/tgw-XXXXXX";
        char path[128] = "";
        if (f->unix_socket) {
                cr_assert_not_null(mkdtemp(dir));
                snprintf(path, sizeof(path), "%s/gw.sock", dir);
                r = tr__gw_session_listen_unix(s, path, ret_err);
                cr_assert_eq(r, 0);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                memcpy(sa.sun_path, path, strlen(path) + 1);
                cr_assert_eq(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        } else {
                int sp[2];
                cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
                r = tr__gw_session_serve_fd(s, sp[1], ret_err);
                cr_assert_eq(r, 0);
                fd = sp[0];
        }
        f->client(fd, f->userdata);
        close(fd);
        tr__gw_session_free(s);
        if (f->unix_socket) {
                cr_assert_eq(access(path, F_OK), -1, "the socket must be unlinked");
                rmdir(dir);
        }
        tr_result_set_exit_code(tr_exec_result(ex), 0);
        return 0;
}

static const tr_backend_ops fake_ops = {
        .kind = fake_kind,
        .execute = fake_execute,
};

tr_result *tgw_run(tr_gateway *gw, const tr_limits *limits, bool unix_socket, tgw_client_fn client, void *userdata) {
        return tgw_run_cancel(gw, limits, unix_socket, NULL, client, userdata);
}

tr_result *tgw_run_cancel(tr_gateway *gw, const tr_limits *limits, bool unix_socket, tr_cancel *cancel,
                          tgw_client_fn client, void *userdata) {
        fake f = { .unix_socket = unix_socket, .client = client, .userdata = userdata };
        tr_runtime *rt = NULL;
        tr_backend *b = NULL;
        tr_request *req = NULL;
        tr_result *res = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr_backend_new(&fake_ops, &f, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        tr_runtime_route(rt, TR_PROFILE_STANDARD, TR_BACKEND_REMOTE);
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, "x", 1, NULL), 0);
        tr_request_set_gateway(req, gw);
        tr_request_set_profile(req, TR_PROFILE_STANDARD);
        if (limits)
                tr_request_set_limits(req, limits);
        int r = tr_runtime_execute(rt, req, cancel, &res, &err);
        cr_assert_eq(r, 0, "execute: %s", err ? tr_error_message(err) : "?");
        tr_request_free(req);
        tr_runtime_free(rt);
        return res;
}

int tgw_send_raw(int fd, const void *data, size_t len) {
        const char *p = data;
        while (len) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int tgw_send(int fd, const char *type, json_int_t id, const char *payload_json) {
        char *msg = NULL;
        int n = asprintf(&msg, "{\"type\":\"%s\",\"id\":%lld,\"payload\":%s}", type, (long long) id,
                         payload_json ? payload_json : "{}");
        cr_assert(n > 0);
        uint8_t hdr[4];
        tr__frame_put_header(hdr, (uint32_t) n);
        int r = tgw_send_raw(fd, hdr, 4);
        if (r == 0)
                r = tgw_send_raw(fd, msg, (size_t) n);
        free(msg);
        return r;
}

static int read_exact(int fd, void *buf, size_t n) {
        char *p = buf;
        while (n) {
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                if (poll(&pf, 1, 10000) <= 0)
                        return -ETIMEDOUT;
                ssize_t k = read(fd, p, n);
                if (k == 0)
                        return -EPIPE;
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

json_t *tgw_recv(int fd) {
        uint8_t hdr[4];
        if (read_exact(fd, hdr, 4) < 0)
                return NULL;
        uint32_t len = tr__frame_get_header(hdr);
        cr_assert(len <= TR_FRAME_MAX);
        char *buf = malloc(len ? len : 1);
        if (read_exact(fd, buf, len) < 0) {
                free(buf);
                return NULL;
        }
        json_t *j = json_loadb(buf, len, 0, NULL);
        free(buf);
        return j;
}

json_t *tgw_call(int fd, const char *type, const char *payload_json) {
        static _Thread_local json_int_t next_id = 1;
        json_int_t id = next_id++;
        cr_assert_eq(tgw_send(fd, type, id, payload_json), 0);
        json_t *r = tgw_recv(fd);
        cr_assert_not_null(r, "no reply to %s", type);
        cr_assert_eq(json_integer_value(json_object_get(r, "id")), id);
        return r;
}

/* ---- the test gateway ---- */

static int dupj(const char *s, char **ret) {
        *ret = strdup(s);
        return 0;
}
static int t_search(void *self, const tr_call_ctx *ctx, const char *q, int limit, char **ret, tr_error **ret_err) {
        return dupj("[{\"id\":\"t:echo\"}]", ret);
}
static int t_ns(void *self, const tr_call_ctx *ctx, char **ret, tr_error **ret_err) {
        return dupj("[\"t\"]", ret);
}
static int t_describe(void *self, const tr_call_ctx *ctx, const char *id, tr_detail_level l, char **ret,
                      tr_error **ret_err) {
        if (strcmp(id, "t:echo") != 0)
                return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "describe_tool", "no %s", id);
        char *s = NULL;
        cr_assert(asprintf(&s, "{\"id\":\"t:echo\",\"detail\":\"%s\"}", tr_detail_level_name(l)) > 0);
        *ret = s;
        return 0;
}
static int t_examples(void *self, const tr_call_ctx *ctx, const char *id, int max, char **ret, tr_error **ret_err) {
        return dupj("[]", ret);
}
static int t_run(void *self, const tr_call_ctx *ctx, const char *id, const char *args, char **ret, tr_error **ret_err) {
        if (strcmp(id, "t:echo") == 0)
                return dupj(args, ret);
        if (strcmp(id, "t:fail") == 0)
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "exec", "it failed");
        if (strcmp(id, "t:slow") == 0) {
                usleep(200000);
                return dupj("1", ret);
        }
        if (strcmp(id, "t:big") == 0) {
                size_t n = 2 * 1024 * 1024;
                char *s = malloc(n + 3);
                s[0] = '"';
                memset(s + 1, 'a', n);
                s[n + 1] = '"';
                s[n + 2] = 0;
                *ret = s;
                return 0;
        }
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "run_tool", "no %s", id);
}
static int t_chain(void *self, const tr_call_ctx *ctx, const char *steps, char **ret, tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "run_chain", "not used by the session");
}
static const tr_gateway_ops t_ops = {
        .search_tools = t_search,
        .list_namespaces = t_ns,
        .describe_tool = t_describe,
        .list_tool_examples = t_examples,
        .run_tool = t_run,
        .run_chain = t_chain,
};

tr_gateway *tgw_test_gateway(void) {
        tr_gateway *g = NULL;
        cr_assert_eq(tr_gateway_new(&t_ops, NULL, &g, NULL), 0);
        return g;
}

/* ---- processes ---- */

static bool proc_gone(pid_t pid) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        FILE *f = fopen(path, "r");
        if (!f)
                return true;
        char buf[512];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        /* "pid (comm) S ...": killed and waiting for its reaper counts. */
        const char *rp = strrchr(buf, ')');
        return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

bool tgw_wait_gone(pid_t pid, int ms) {
        for (int i = 0; i <= ms / 10; i++) {
                if (proc_gone(pid))
                        return true;
                usleep(10000);
        }
        return false;
}

int tgw_read_pids(const char *path, pid_t *pids, int max, int wait_ms) {
        for (int i = 0; i <= wait_ms / 10; i++) {
                FILE *f = fopen(path, "r");
                if (f) {
                        int n = 0;
                        long v;
                        while (n < max && fscanf(f, "%ld", &v) == 1)
                                pids[n++] = (pid_t) v;
                        fclose(f);
                        if (n == max)
                                return n;
                }
                usleep(10000);
        }
        return 0;
}

double tgw_now_s(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}
