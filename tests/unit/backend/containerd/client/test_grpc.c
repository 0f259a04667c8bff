/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC client against a fake gRPC server (an nghttp2 server session in
 * a thread, on a unix socket in a private directory): request headers,
 * messages, trailers and trailers-only errors, percent-decoded messages,
 * the error mapping, the response size cap, deadlines, the cancel fd, a
 * peer that hangs up, and the connect errors.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend/containerd/grpc.h"
#include "util/handles.h"
#include "util/proc.h"
#include "util/timeutil.h"

/* ---- the fake server ------------------------------------------------------ */

typedef struct stream {
        char path[128];
        char ns[64];
        char te[32];
        char ctype[64];
        uint8_t body[64];
        bool zeros; /* the body is body_len zero bytes (empty messages) */
        size_t body_len;
        size_t body_off;
} stream;

typedef struct server {
        char dir[64];
        char path[96];
        int lfd;
        int fd;
        pthread_t thread;
        volatile int stop;
        /* what the last request carried, for the tests to look at */
        char last_path[128];
        char last_ns[64];
        char last_te[32];
        char last_ctype[64];
        size_t last_req_bytes;
        int close_now;
        /* streams still open when a session ends (nghttp2_session_del does
         * not call on_stream_close for them) */
        stream *open[32];
} server;

static server srv;

static ssize_t body_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *u) {
        stream *st = src->ptr;
        size_t n = st->body_len - st->body_off < len ? st->body_len - st->body_off : len;
        if (st->zeros)
                memset(buf, 0, n);
        else
                memcpy(buf, st->body + st->body_off, n);
        st->body_off += n;
        if (st->body_off == st->body_len) {
                *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
                nghttp2_nv tr[] = { { (uint8_t *) "grpc-status", (uint8_t *) "0", 11, 1, 0 } };
                nghttp2_submit_trailer(s, id, tr, 1);
        }
        return (ssize_t) n;
}

#define NV(n, v) \
        { (uint8_t *) (n), (uint8_t *) (v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

static void respond(nghttp2_session *s, int32_t id, stream *st) {
        server *sv = &srv;
        snprintf(sv->last_path, sizeof sv->last_path, "%s", st->path);
        snprintf(sv->last_ns, sizeof sv->last_ns, "%s", st->ns);
        snprintf(sv->last_te, sizeof sv->last_te, "%s", st->te);
        snprintf(sv->last_ctype, sizeof sv->last_ctype, "%s", st->ctype);
        const char *m = strrchr(st->path, '/');
        m = m ? m + 1 : "";
        if (!strcmp(m, "Hang"))
                return;
        if (!strcmp(m, "Close")) {
                sv->close_now = 1;
                return;
        }
        if (!strcmp(m, "NotFound") || !strcmp(m, "Unavailable") || !strcmp(m, "Exists")) {
                const char *code = !strcmp(m, "NotFound") ? "5" : !strcmp(m, "Exists") ? "6" : "14";
                nghttp2_nv h[] = { NV(":status", "200"), NV("content-type", "application/grpc"),
                                   NV("grpc-status", code), NV("grpc-message", "image%20%22x%22%3A%20not%20found") };
                nghttp2_submit_response(s, id, h, 4, NULL);
                return;
        }
        if (!strcmp(m, "Http500")) {
                nghttp2_nv h[] = { NV(":status", "500") };
                nghttp2_submit_response(s, id, h, 1, NULL);
                return;
        }
        /* Echo / Big / Empties: a body, then grpc-status 0 in the trailers. */
        if (!strcmp(m, "Empties")) {
                /* 5000 zero-length messages: 25000 bytes, nothing against
                 * the byte caps. */
                st->zeros = true;
                st->body_len = 5 * 5000;
        } else if (!strcmp(m, "Big")) {
                /* Announce a 32 MiB message: the client must refuse it from
                 * the prefix alone. */
                static const uint8_t big[] = { 0, 0x02, 0, 0, 0, 'x', 'y' };
                memcpy(st->body, big, sizeof big);
                st->body_len = sizeof big;
        } else {
                static const uint8_t two[] = { 0, 0, 0, 0, 3, 'o', 'n', 'e', 0, 0, 0, 0, 3, 't', 'w', 'o' };
                memcpy(st->body, two, sizeof two);
                st->body_len = sizeof two;
        }
        nghttp2_nv h[] = { NV(":status", "200"), NV("content-type", "application/grpc") };
        nghttp2_data_provider prd = { .source.ptr = st, .read_callback = body_cb };
        nghttp2_submit_response(s, id, h, 2, &prd);
}

static int on_begin(nghttp2_session *s, const nghttp2_frame *f, void *u) {
        if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
                stream *st = calloc(1, sizeof(stream));
                for (size_t i = 0; i < sizeof srv.open / sizeof srv.open[0]; i++)
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
        if (!st)
                return 0;
        char *dst = NULL;
        size_t cap = 0;
        if (nl == 5 && !memcmp(n, ":path", 5))
                dst = st->path, cap = sizeof st->path;
        else if (nl == 20 && !memcmp(n, "containerd-namespace", 20))
                dst = st->ns, cap = sizeof st->ns;
        else if (nl == 2 && !memcmp(n, "te", 2))
                dst = st->te, cap = sizeof st->te;
        else if (nl == 12 && !memcmp(n, "content-type", 12))
                dst = st->ctype, cap = sizeof st->ctype;
        if (dst)
                snprintf(dst, cap, "%.*s", (int) vl, (const char *) v);
        return 0;
}

static int on_data(nghttp2_session *s, uint8_t fl, int32_t id, const uint8_t *d, size_t len, void *u) {
        srv.last_req_bytes += len;
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
        for (size_t i = 0; st && i < sizeof srv.open / sizeof srv.open[0]; i++)
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
                sv->fd = accept(sv->lfd, NULL, NULL);
                nghttp2_session_callbacks *cb;
                nghttp2_session_callbacks_new(&cb);
                nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin);
                nghttp2_session_callbacks_set_on_header_callback(cb, on_hdr);
                nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
                nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
                nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
                nghttp2_session *s;
                nghttp2_session_server_new(&s, cb, sv);
                nghttp2_session_callbacks_del(cb);
                nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
                while (!sv->stop && !sv->close_now) {
                        const uint8_t *out;
                        ssize_t n;
                        /* MSG_NOSIGNAL: a client that hung up must not SIGPIPE the test. */
                        while ((n = nghttp2_session_mem_send(s, &out)) > 0)
                                (void) send(sv->fd, out, (size_t) n, MSG_NOSIGNAL);
                        struct pollfd pf = { .fd = sv->fd, .events = POLLIN };
                        if (poll(&pf, 1, 50) <= 0)
                                continue;
                        uint8_t buf[16384];
                        ssize_t r = read(sv->fd, buf, sizeof buf);
                        if (r <= 0)
                                break;
                        nghttp2_session_mem_recv(s, buf, (size_t) r);
                }
                nghttp2_session_del(s);
                for (size_t i = 0; i < sizeof sv->open / sizeof sv->open[0]; i++)
                        stream_free(sv->open[i]);
                close(sv->fd);
                sv->fd = -1;
                sv->close_now = 0;
        }
}

static void srv_start(void) {
        memset(&srv, 0, sizeof srv);
        snprintf(srv.dir, sizeof srv.dir, "/tmp/tr-grpc-test-XXXXXX");
        cr_assert_not_null(mkdtemp(srv.dir));
        snprintf(srv.path, sizeof srv.path, "%s/s.sock", srv.dir);
        srv.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", srv.path);
        cr_assert_eq(bind(srv.lfd, (struct sockaddr *) &sa, sizeof sa), 0);
        cr_assert_eq(listen(srv.lfd, 8), 0);
        srv.fd = -1;
        pthread_create(&srv.thread, NULL, serve, &srv);
}

static void srv_stop(void) {
        srv.stop = 1;
        pthread_join(srv.thread, NULL);
        close(srv.lfd);
        (void) tr__rm_rf(srv.dir);
}

TestSuite(grpc, .init = srv_start, .fini = srv_stop, .timeout = 30);

static tr__grpc_conn *conn_or_die(void) {
        tr__grpc_conn *c = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr__grpc_connect(srv.path, "testns", tr__now_ns() + 5 * TR_NSEC_PER_SEC, -1, &c, &err), 0, "%s",
                     tr_error_message(err));
        return c;
}

static int64_t in_ms(int ms) {
        return tr__now_ns() + ms * TR_NSEC_PER_MSEC;
}

Test(grpc, messages_headers_and_trailers) {
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Echo", "abc", 3, NULL, in_ms(5000), &call, &err), 0);
        cr_assert_eq(tr__grpc_call_wait(c, call, -1, &err), 0, "%s", tr_error_message(err));
        cr_assert_eq(tr__grpc_call_n_messages(call), 2);
        size_t len;
        const uint8_t *m = tr__grpc_call_message(call, 1, &len);
        cr_expect_eq(len, 3);
        cr_expect_eq(memcmp(m, "two", 3), 0);
        cr_expect_str_eq(srv.last_path, "/t.S/Echo");
        cr_expect_str_eq(srv.last_ns, "testns");
        cr_expect_str_eq(srv.last_te, "trailers");
        cr_expect_str_eq(srv.last_ctype, "application/grpc");
        cr_expect_eq(srv.last_req_bytes, 5 + 3, "request framed with the 5-byte prefix");
}

Test(grpc, trailers_only_error_is_mapped_and_decoded) {
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/NotFound", "", 0, NULL, in_ms(5000), &call, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, call, -1, &err), -ENOENT);
        cr_expect_eq(tr_error_code(err), TR_E_CONTAINER_FAILED);
        cr_expect_eq(tr_error_grpc_status(err), TR_GRPC_NOT_FOUND);
        cr_expect(strstr(tr_error_message(err), "image \"x\": not found") != NULL, "%s", tr_error_message(err));
        /* The connection stays usable after an error status. */
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *c2 = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Exists", "", 0, NULL, in_ms(5000), &c2, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, c2, -1, NULL), -EEXIST);
}

Test(grpc, unavailable_is_retryable) {
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Unavailable", "", 0, NULL, in_ms(5000), &call, NULL), 0);
        cr_expect_lt(tr__grpc_call_wait(c, call, -1, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_DAEMON_UNAVAILABLE);
        cr_expect(tr_error_retryable(err));
}

Test(grpc, http_error_status) {
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Http500", "", 0, NULL, in_ms(5000), &call, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, call, -1, &err), -EBADMSG);
        cr_expect_eq(tr_error_code(err), TR_E_CONTAINER_FAILED);
}

Test(grpc, oversized_message_is_refused) {
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Big", "", 0, NULL, in_ms(5000), &call, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, call, -1, &err), -EMSGSIZE);
        cr_expect_eq(tr__grpc_call_n_messages(call), 0);
}

Test(grpc, too_many_messages_are_refused) {
        /* Zero-length messages count nothing against the byte caps: the
         * number of messages per call is capped too. */
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Empties", "", 0, NULL, in_ms(5000), &call, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, call, -1, &err), -EMSGSIZE);
        cr_expect_eq(tr_error_code(err), TR_E_CONTAINER_FAILED);
        cr_expect(strstr(tr_error_message(err), "too many messages") != NULL, "%s", tr_error_message(err));
        cr_expect_leq(tr__grpc_call_n_messages(call), 4096);
        /* The connection stays usable. */
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *c2 = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Echo", "x", 1, NULL, in_ms(5000), &c2, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, c2, -1, NULL), 0);
}

Test(grpc, deadline) {
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        int64_t t0 = tr__now_ns();
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Hang", "", 0, NULL, in_ms(300), &call, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, call, -1, &err), -ETIMEDOUT);
        cr_expect_eq(tr_error_code(err), TR_E_TIMEOUT);
        int64_t ms = (tr__now_ns() - t0) / TR_NSEC_PER_MSEC;
        cr_expect(ms >= 290 && ms < 2000, "waited %lld ms", (long long) ms);
}

Test(grpc, cancel_fd) {
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        _cleanup_close_ int efd = eventfd(1, EFD_CLOEXEC); /* already signalled */
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Hang", "", 0, NULL, in_ms(5000), &call, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, call, efd, &err), -ECANCELED);
        cr_expect_eq(tr_error_code(err), TR_E_CANCELLED);
}

Test(grpc, peer_hangs_up) {
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *call = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Close", "", 0, NULL, in_ms(5000), &call, NULL), 0);
        cr_expect_lt(tr__grpc_call_wait(c, call, -1, &err), 0);
        cr_expect_eq(tr_error_code(err), TR_E_DAEMON_UNAVAILABLE, "%s", tr_error_message(err));
        cr_expect(tr_error_retryable(err));
}

Test(grpc, concurrent_calls_on_one_connection) {
        _cleanup_(tr__grpc_conn_freep) tr__grpc_conn *c = conn_or_die();
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *hang = NULL;
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *echo = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Hang", "", 0, NULL, in_ms(5000), &hang, NULL), 0);
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Echo", "x", 1, NULL, in_ms(5000), &echo, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, echo, -1, NULL), 0);
        cr_expect_not(tr__grpc_call_done(hang));
        /* Freeing a call in flight resets its stream; the connection lives on. */
        tr__grpc_call_free(TAKE_PTR(hang));
        _cleanup_(tr__grpc_call_freep) tr__grpc_call *again = NULL;
        cr_assert_eq(tr__grpc_call_start(c, "/t.S/Echo", "y", 1, NULL, in_ms(5000), &again, NULL), 0);
        cr_expect_eq(tr__grpc_call_wait(c, again, -1, NULL), 0);
}

Test(grpc, connect_missing_socket) {
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        tr__grpc_conn *c = NULL;
        char p[160];
        snprintf(p, sizeof p, "%s/none.sock", srv.dir);
        cr_expect_eq(tr__grpc_connect(p, "ns", in_ms(1000), -1, &c, &err), -ENOENT);
        cr_expect_eq(tr_error_code(err), TR_E_CONTAINERD_NOT_AVAILABLE);
        cr_expect(strstr(tr_error_message(err), "apt-get install containerd") != NULL, "%s", tr_error_message(err));
}

Test(grpc, connect_refused) {
        /* A socket file nobody listens on: a daemon that died. */
        char p[96];
        snprintf(p, sizeof p, "%s/dead.sock", srv.dir);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        close(fd);
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        tr__grpc_conn *c = NULL;
        cr_expect_eq(tr__grpc_connect(p, "ns", in_ms(1000), -1, &c, &err), -ECONNREFUSED);
        cr_expect_eq(tr_error_code(err), TR_E_DAEMON_UNAVAILABLE);
        cr_expect(tr_error_retryable(err));
}
