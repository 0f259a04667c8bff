/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox's destroy against a fake containerd (an nghttp2 server
 * session in a thread, on a unix socket in a private directory) that drops
 * the connection: cleanup must reconnect once and still delete the task,
 * the container, the snapshot and the lease.
 *
 * The sandbox's private struct comes from sandbox_int.h (it is not in
 * sandbox.h); destroy is the library's own.
 */
#include "backend/containerd/sandbox_int.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/handles.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/timeutil.h"

/* ---- the fake server ------------------------------------------------------ */

typedef struct stream {
        char path[160];
        size_t body_off;
} stream;

#define LOG_MAX 64

typedef struct server {
        char dir[64];
        char path[96];
        int lfd;
        pthread_t thread;
        volatile int stop;
        pthread_mutex_t lock;
        /* every request path, in order, across connections */
        char log[LOG_MAX][160];
        size_t n_log;
        int n_conns;
        /* drop the connection (no answer) on the first request whose path
         * ends with this */
        char close_on[64];
        int close_now;
        stream *open[32];
} server;

static server srv;

/* One zero-length message (an empty protobuf: a valid response of every
 * RPC destroy makes), then grpc-status 0 in the trailers. */
static ssize_t body_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *u) {
        stream *st = src->ptr;
        size_t n = 5 - st->body_off < len ? 5 - st->body_off : len;
        memset(buf, 0, n);
        st->body_off += n;
        if (st->body_off == 5) {
                *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
                nghttp2_nv tr[] = { { (uint8_t *) "grpc-status", (uint8_t *) "0", 11, 1, 0 } };
                nghttp2_submit_trailer(s, id, tr, 1);
        }
        return (ssize_t) n;
}

#define NV(n, v) \
        { (uint8_t *) (n), (uint8_t *) (v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

static void respond(nghttp2_session *s, int32_t id, stream *st) {
        pthread_mutex_lock(&srv.lock);
        if (srv.n_log < LOG_MAX)
                snprintf(srv.log[srv.n_log++], sizeof srv.log[0], "%s", st->path);
        size_t pl = strlen(st->path), cl = strlen(srv.close_on);
        bool drop = cl > 0 && pl >= cl && !strcmp(st->path + pl - cl, srv.close_on);
        if (drop)
                srv.close_on[0] = 0;
        pthread_mutex_unlock(&srv.lock);
        if (drop || !strcmp(st->path, "/t.S/Close")) {
                srv.close_now = 1;
                return;
        }
        nghttp2_nv h[] = { NV(":status", "200"), NV("content-type", "application/grpc") };
        nghttp2_data_provider prd = { .source.ptr = st, .read_callback = body_cb };
        nghttp2_submit_response(s, id, h, 2, &prd);
}

static int on_begin(nghttp2_session *s, const nghttp2_frame *f, void *u) {
        if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
                stream *st = calloc(1, sizeof(stream));
                for (size_t i = 0; i < ARRAY_SIZE(srv.open); i++)
                        if (!srv.open[i]) {
                                srv.open[i] = st;
                                break;
                        }
                nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
        }
        return 0;
}

static int on_hdr(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl,
                  uint8_t fl, void *u) {
        stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (st && nl == 5 && !memcmp(n, ":path", 5))
                snprintf(st->path, sizeof st->path, "%.*s", (int) vl, (const char *) v);
        return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *u) {
        if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
                stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
                if (st)
                        respond(s, f->hd.stream_id, st);
        }
        return 0;
}

static void stream_free(stream *st) {
        for (size_t i = 0; st && i < ARRAY_SIZE(srv.open); i++)
                if (srv.open[i] == st)
                        srv.open[i] = NULL;
        free(st);
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t ec, void *u) {
        stream_free(nghttp2_session_get_stream_user_data(s, id));
        return 0;
}

static void *serve(void *p) {
        server *sv = p;
        for (;;) {
                struct pollfd a = { .fd = sv->lfd, .events = POLLIN };
                while (!sv->stop && poll(&a, 1, 50) <= 0) {
                }
                if (sv->stop)
                        return NULL;
                int fd = accept(sv->lfd, NULL, NULL);
                pthread_mutex_lock(&sv->lock);
                sv->n_conns++;
                pthread_mutex_unlock(&sv->lock);
                nghttp2_session_callbacks *cb;
                nghttp2_session_callbacks_new(&cb);
                nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin);
                nghttp2_session_callbacks_set_on_header_callback(cb, on_hdr);
                nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
                nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
                nghttp2_session *s;
                nghttp2_session_server_new(&s, cb, sv);
                nghttp2_session_callbacks_del(cb);
                nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
                while (!sv->stop && !sv->close_now) {
                        const uint8_t *out;
                        ssize_t n;
                        while ((n = nghttp2_session_mem_send(s, &out)) > 0)
                                (void) send(fd, out, (size_t) n, MSG_NOSIGNAL);
                        struct pollfd pf = { .fd = fd, .events = POLLIN };
                        if (poll(&pf, 1, 50) <= 0)
                                continue;
                        uint8_t buf[16384];
                        ssize_t r = read(fd, buf, sizeof buf);
                        if (r <= 0)
                                break;
                        nghttp2_session_mem_recv(s, buf, (size_t) r);
                }
                nghttp2_session_del(s);
                for (size_t i = 0; i < ARRAY_SIZE(sv->open); i++)
                        stream_free(sv->open[i]);
                close(fd);
                sv->close_now = 0;
        }
}

static void srv_start(void) {
        memset(&srv, 0, sizeof srv);
        pthread_mutex_init(&srv.lock, NULL);
        snprintf(srv.dir, sizeof srv.dir, "/tmp/tr-sandbox-test-XXXXXX");
        cr_assert_not_null(mkdtemp(srv.dir));
        snprintf(srv.path, sizeof srv.path, "%s/s.sock", srv.dir);
        srv.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", srv.path);
        cr_assert_eq(bind(srv.lfd, (struct sockaddr *) &sa, sizeof sa), 0);
        cr_assert_eq(listen(srv.lfd, 8), 0);
        pthread_create(&srv.thread, NULL, serve, &srv);
}

static void srv_stop(void) {
        srv.stop = 1;
        pthread_join(srv.thread, NULL);
        close(srv.lfd);
        (void) tr__rm_rf(srv.dir);
}

TestSuite(sandbox, .init = srv_start, .fini = srv_stop, .timeout = 60);

/* ---- helpers ------------------------------------------------------------ */

static int n_warnings;

static void count_log(void *u, tr_log_level level, const char *msg, const char *const *kv) {
        (void) u;
        (void) msg;
        (void) kv;
        if (level >= TR_LOG_WARN)
                n_warnings++;
}

/* A sandbox as the run left it: every object created, the task maybe
 * still running, on a connection of its own. */
static tr__ctrd_sandbox *sandbox_new(tr__ctrd_client *cl, bool task_exited) {
        tr__ctrd_sandbox *sb = calloc(1, sizeof *sb);
        cr_assert_not_null(sb);
        sb->cl = cl;
        sb->io_lock = -1;
        sb->id = strdup("tr-test");
        sb->lease_id = strdup("tr-test-lease");
        sb->snapshot_key = strdup("tr-test-rootfs");
        sb->lease_created = sb->snapshot_created = sb->container_created = sb->task_created = true;
        sb->task_exited = task_exited;
        tr_error *err = NULL;
        cr_assert_eq(tr__ctrd_client_connect(cl, tr__now_ns() + 5 * TR_NSEC_PER_SEC, -1, &sb->conn, &err), 0, "%s",
                     tr_error_message(err));
        return sb;
}

static void client_init(tr__ctrd_client *cl) {
        cr_assert_eq(tr__ctrd_client_init(cl, srv.path, "testns", "overlayfs", srv.dir), 0);
        n_warnings = 0;
        tr__ctrd_client_set_log(cl, count_log, NULL);
}

/* Index of the first logged path ending with `suffix` at or after `from`;
 * -1 if none. */
static int log_find(const char *suffix, int from) {
        pthread_mutex_lock(&srv.lock);
        int found = -1;
        for (size_t i = (size_t) from; i < srv.n_log && found < 0; i++) {
                size_t pl = strlen(srv.log[i]), sl = strlen(suffix);
                if (pl >= sl && !strcmp(srv.log[i] + pl - sl, suffix))
                        found = (int) i;
        }
        pthread_mutex_unlock(&srv.lock);
        return found;
}

static void expect_full_cleanup(bool with_kill) {
        int k = log_find("Tasks/Kill", 0);
        if (with_kill)
                cr_expect_geq(k, 0, "task killed");
        int t = log_find("Tasks/Delete", 0);
        int c = log_find("Containers/Delete", t < 0 ? 0 : t);
        int s = log_find("Snapshots/Remove", c < 0 ? 0 : c);
        int l = log_find("Leases/Delete", s < 0 ? 0 : s);
        cr_expect_geq(t, 0, "task deleted");
        cr_expect_geq(c, 0, "container deleted after the task");
        cr_expect_geq(s, 0, "snapshot removed after the container");
        cr_expect_geq(l, 0, "lease deleted after the snapshot");
        cr_expect_eq(n_warnings, 0, "no cleanup failure logged");
}

/* ---- tests ------------------------------------------------------------ */

Test(sandbox, destroy_reconnects_when_the_run_lost_its_connection) {
        tr__ctrd_client cl;
        client_init(&cl);
        tr__ctrd_sandbox *sb = sandbox_new(&cl, false);
        /* The run fails because containerd dropped the connection. */
        tr__ctrd_ctx cx = { .conn = sb->conn, .deadline_ns = tr__now_ns() + 5 * TR_NSEC_PER_SEC, .cancel_fd = -1 };
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_assert_eq(tr__grpc_call_start(cx.conn, "/t.S/Close", "", 0, NULL, cx.deadline_ns, &call, NULL), 0);
        cr_assert_lt(tr__grpc_call_wait(cx.conn, call, -1, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_DAEMON_UNAVAILABLE, "%s", tr_error_message(err));
        tr__grpc_call_free(TAKE_PTR(call));

        tr__ctrd_sandbox_destroy(sb, NULL);
        expect_full_cleanup(true);
        cr_expect_eq(srv.n_conns, 2, "one reconnect (%d connections)", srv.n_conns);
        tr__ctrd_client_done(&cl);
}

Test(sandbox, destroy_reconnects_when_the_connection_breaks_during_cleanup) {
        tr__ctrd_client cl;
        client_init(&cl);
        tr__ctrd_sandbox *sb = sandbox_new(&cl, true);
        pthread_mutex_lock(&srv.lock);
        snprintf(srv.close_on, sizeof srv.close_on, "Containers/Delete");
        pthread_mutex_unlock(&srv.lock);

        tr__ctrd_sandbox_destroy(sb, NULL);
        int first = log_find("Containers/Delete", 0);
        cr_expect_geq(first, 0);
        cr_expect_geq(log_find("Containers/Delete", first + 1), 0, "container delete retried after the reconnect");
        cr_expect_lt(log_find("Tasks/Kill", 0), 0, "no kill for an exited task");
        expect_full_cleanup(false);
        cr_expect_eq(srv.n_conns, 2, "one reconnect (%d connections)", srv.n_conns);
        tr__ctrd_client_done(&cl);
}

Test(sandbox, destroy_on_a_healthy_connection_does_not_reconnect) {
        tr__ctrd_client cl;
        client_init(&cl);
        tr__ctrd_sandbox *sb = sandbox_new(&cl, false);
        tr__ctrd_sandbox_destroy(sb, NULL);
        expect_full_cleanup(true);
        cr_expect_eq(srv.n_conns, 1);
        tr__ctrd_client_done(&cl);
}

Test(sandbox, destroy_gives_up_after_one_reconnect) {
        /* The daemon is gone for good: the reconnect fails, the failure is
         * logged, destroy still returns (and frees everything). */
        tr__ctrd_client cl;
        client_init(&cl);
        tr__ctrd_sandbox *sb = sandbox_new(&cl, true);
        tr__ctrd_ctx cx = { .conn = sb->conn, .deadline_ns = tr__now_ns() + 5 * TR_NSEC_PER_SEC, .cancel_fd = -1 };
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        cr_assert_eq(tr__grpc_call_start(cx.conn, "/t.S/Close", "", 0, NULL, cx.deadline_ns, &call, NULL), 0);
        cr_assert_lt(tr__grpc_call_wait(cx.conn, call, -1, NULL), 0);
        tr__grpc_call_free(TAKE_PTR(call));
        /* Nobody listens any more. */
        srv.stop = 1;
        pthread_join(srv.thread, NULL);
        close(srv.lfd);
        srv.lfd = -1;
        /* A restarting daemon is waited for (TR_CTRD_RESTART_WAIT_NS, 30 s);
         * here one that is gone: 0.5 s of retries, then give up. */
        tr__ctrd_restart_wait_ns = TR_NSEC_PER_SEC / 2;
        int64_t t0 = tr__now_ns();
        tr__ctrd_sandbox_destroy(sb, NULL);
        tr__ctrd_restart_wait_ns = TR_CTRD_RESTART_WAIT_NS;
        cr_expect_lt(tr__now_ns() - t0, 3 * TR_NSEC_PER_SEC, "no endless waiting on a dead daemon");
        cr_expect_geq(n_warnings, 1, "the failures are logged");
        tr__ctrd_client_done(&cl);
        /* srv_stop joins again: restart a thread that exits at once. */
        pthread_create(&srv.thread, NULL, serve, &srv);
}

/* gc must leave alone the directories of a live execution, whatever daemon
 * or namespace it runs on; a dead one's it may take. */
Test(sandbox, exec_dir_lock_keeps_gc_out_while_held) {
        char path[128];
        snprintf(path, sizeof(path), "%s/tr-0123456789abcdef0123456789abcdef.io", srv.dir);
        int lock = tr__ctrd_exec_dir_create(path);
        cr_assert_geq(lock, 0, "%s", strerror(-lock));
        cr_expect_eq(tr__ctrd_exec_dir_create(path), -EEXIST, "an existing entry is never reused");
        _cleanup_close_ int dfd = open(srv.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(dfd, 0);
        cr_expect_lt(tr__ctrd_exec_dir_claim(dfd, path + strlen(srv.dir) + 1), 0, "held: gc keeps out");
        close(lock);
        int claim = tr__ctrd_exec_dir_claim(dfd, path + strlen(srv.dir) + 1);
        cr_expect_geq(claim, 0, "released: gc may remove it");
        if (claim >= 0)
                close(claim);
        cr_expect_eq(rmdir(path), 0);
}
