/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress layer without a sandbox: allowlist parsing and matching, the
 * request API and the profile policy, and the proxy itself on a listening
 * socket in this process's own namespace (a real upstream server on
 * 127.0.0.1, real clients): CONNECT and absolute-form HTTP relayed, an
 * unlisted target denied with 403 and counted, and after freeing the proxy
 * not one thread or descriptor left.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/internal.h"
#include "egress/egress.h"

static tr__egress_target parse_ok(const char *s) {
        tr__egress_target t;
        const char *why = NULL;
        cr_assert_eq(tr__egress_parse(s, strlen(s), &t, &why), 0, "%s: %s", s, why ? why : "");
        return t;
}

Test(egress, parse_valid) {
        char buf[TR__EGRESS_TARGET_MAX];
        static const struct {
                const char *in, *canon;
        } ok[] = {
                { "example.com:443", "example.com:443" }, { "API.Example.COM:8080", "api.example.com:8080" },
                { "example.com.:80", "example.com:80" },  { "127.0.0.1:1", "127.0.0.1:1" },
                { "[::1]:65535", "[::1]:65535" },         { "[0:0::1]:80", "[::1]:80" },
                { "localhost:3000", "localhost:3000" },   { "my_host-1.internal:5432", "my_host-1.internal:5432" },
        };
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
                tr__egress_target t = parse_ok(ok[i].in);
                tr__egress_format(&t, buf);
                cr_assert_str_eq(buf, ok[i].canon);
        }
}

Test(egress, parse_invalid) {
        static const char *const bad[] = {
                "",
                "example.com",
                "example.com:",
                "example.com:0",
                "example.com:65536",
                "example.com:+80",
                "example.com:8o",
                ":80",
                "*.example.com:443",
                "::1:80",
                "[::1:80",
                "[zz]:80",
                "127.1:80",
                "0x7f000001:80",
                "1.2.3.4.5:80",
                "a b:80",
                "user@host:80",
                "-bad.example:80",
                "bad-.example:80",
                "a..b:80",
                "host\n:80",
                "host:80 ",
                "example.com:123456",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                tr__egress_target t;
                const char *why = NULL;
                cr_assert_lt(tr__egress_parse(bad[i], strlen(bad[i]), &t, &why), 0, "'%s' was accepted", bad[i]);
                cr_assert_not_null(why);
        }
        char longname[400];
        memset(longname, 'a', sizeof longname);
        strcpy(longname + 300, ".com:80");
        tr__egress_target t;
        cr_assert_lt(tr__egress_parse(longname, strlen(longname), &t, NULL), 0);
}

Test(egress, match_exact) {
        tr__egress_target allow[] = { parse_ok("Example.com:443"), parse_ok("[::1]:80"), parse_ok("10.0.0.1:22") };
        tr__egress_target t = parse_ok("example.COM:443");
        cr_assert(tr__egress_match(allow, 3, &t));
        t = parse_ok("example.com:80");
        cr_assert_not(tr__egress_match(allow, 3, &t));
        t = parse_ok("www.example.com:443");
        cr_assert_not(tr__egress_match(allow, 3, &t));
        t = parse_ok("[0::1]:80");
        cr_assert(tr__egress_match(allow, 3, &t));
        t = parse_ok("10.0.0.1:22");
        cr_assert(tr__egress_match(allow, 3, &t));
        cr_assert_not(tr__egress_match(allow, 0, &t));
}

Test(egress, request_api) {
        tr_request *req = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_assert_eq(tr_request_egress_allow_count(req), 0);
        const char *list[] = { "example.com:443", "127.0.0.1:8080" };
        cr_assert_eq(tr_request_set_egress_allow(req, list, 2, &err), 0);
        cr_assert_eq(tr_request_egress_allow_count(req), 2);
        cr_assert_str_eq(tr_request_egress_allow_at(req, 1), "127.0.0.1:8080");
        cr_assert_null(tr_request_egress_allow_at(req, 2));
        /* A bad entry leaves the list as it was. */
        const char *bad[] = { "ok.example:1", "*.example.com:443" };
        cr_assert_lt(tr_request_set_egress_allow(req, bad, 2, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        cr_assert(strstr(tr_error_message(err), "wildcards") != NULL, "%s", tr_error_message(err));
        tr_error_free(err);
        err = NULL;
        cr_assert_eq(tr_request_egress_allow_count(req), 2);
        const char *many[TR_MAX_EGRESS_ALLOW + 1];
        for (size_t i = 0; i <= TR_MAX_EGRESS_ALLOW; i++)
                many[i] = "example.com:443";
        cr_assert_lt(tr_request_set_egress_allow(req, many, TR_MAX_EGRESS_ALLOW + 1, &err), 0);
        tr_error_free(err);
        err = NULL;
        /* Profile and backend policy, decided once. */
        cr_assert_eq(tr__profile_check_egress(TR_PROFILE_STANDARD, TR_BACKEND_CONTAINERD, req, NULL), 0);
        cr_assert_lt(tr__profile_check_egress(TR_PROFILE_HARDENED, TR_BACKEND_CONTAINERD, req, &err), 0);
        cr_assert(strstr(tr_error_message(err), "hardened") != NULL);
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(tr__profile_check_egress(TR_PROFILE_STANDARD, TR_BACKEND_KATA, req, NULL), 0);
        cr_assert_lt(tr__profile_check_egress(TR_PROFILE_DEV, TR_BACKEND_UNSAFE_HOST, req, NULL), 0);
        cr_assert_lt(tr__profile_check_egress(TR_PROFILE_DEV, TR_BACKEND_CONTAINERD, req, NULL), 0);
        /* A front end's ceiling (serve's --egress-allow-max), compared in
         * canonical form. */
        const char *ceiling[] = { "EXAMPLE.com.:443", "[0::1]:1", "127.0.0.1:8080" };
        cr_assert_eq(tr_request_egress_allow_within(req, ceiling, 3, NULL), 0);
        cr_assert_lt(tr_request_egress_allow_within(req, ceiling, 2, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_BACKEND_DENIED);
        cr_assert(strstr(tr_error_message(err), "'127.0.0.1:8080'") != NULL, "%s", tr_error_message(err));
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(tr_request_egress_allow_within(req, NULL, 0, NULL), 0, "an empty ceiling admits nothing");
        const char *bad_ceiling[] = { "*.example.com:443" };
        cr_assert_lt(tr_request_egress_allow_within(req, bad_ceiling, 1, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
        tr_error_free(err);
        err = NULL;
        /* NULL, 0 clears it: no allowlist passes everywhere. */
        cr_assert_eq(tr_request_set_egress_allow(req, NULL, 0, NULL), 0);
        cr_assert_eq(tr_request_egress_allow_count(req), 0);
        cr_assert_eq(tr_request_egress_allow_within(req, NULL, 0, NULL), 0);
        cr_assert_eq(tr__profile_check_egress(TR_PROFILE_HARDENED, TR_BACKEND_KATA, req, NULL), 0);
        tr_request_free(req);
}

/* ---- the proxy, for real, in this process's namespace ------------------ */

static int listen_local(uint16_t *ret_port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
        cr_assert_eq(listen(fd, 16), 0);
        socklen_t len = sizeof a;
        getsockname(fd, (struct sockaddr *) &a, &len);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

/* The upstream: answers each connection with what its first line was
 * ("GOT <line>"), then echoes whatever else comes. */
static void *upstream_main(void *arg) {
        int lfd = (int) (intptr_t) arg;
        for (;;) {
                int c = accept(lfd, NULL, NULL);
                if (c < 0)
                        return NULL;
                char buf[4096];
                ssize_t n = recv(c, buf, sizeof buf - 1, 0);
                if (n > 0) {
                        buf[n] = '\0';
                        char *eol = strstr(buf, "\r\n");
                        if (eol && strncmp(buf, "GET ", 4) == 0) {
                                /* and every Host header it got, in order */
                                char hosts[512] = "";
                                for (char *h = strstr(buf, "\r\nHost: "); h; h = strstr(h + 2, "\r\nHost: ")) {
                                        size_t hl = strcspn(h + 8, "\r\n");
                                        size_t used = strlen(hosts);
                                        snprintf(hosts + used, sizeof hosts - used, "[%.*s]", (int) hl, h + 8);
                                }
                                char out[4800];
                                int m = snprintf(out, sizeof out, "HTTP/1.0 200 OK\r\n\r\nGOT %.*s|%s|host=%s",
                                                 (int) (eol - buf), buf,
                                                 strstr(buf, "Connection: close") ? "close" : "keep", hosts);
                                send(c, out, (size_t) m, MSG_NOSIGNAL);
                        } else {
                                do
                                        send(c, buf, (size_t) n, MSG_NOSIGNAL);
                                while ((n = recv(c, buf, sizeof buf, 0)) > 0);
                        }
                }
                close(c);
        }
}

static int dial(uint16_t port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(connect(fd, (struct sockaddr *) &a, sizeof a), 0);
        struct timeval tv = { .tv_sec = 10 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        return fd;
}

/* Send `req`, read until EOF (or `until` is seen). */
static void exchange(uint16_t port, const char *req, const char *until, char *out, size_t outsz) {
        int fd = dial(port);
        send(fd, req, strlen(req), MSG_NOSIGNAL);
        size_t len = 0;
        ssize_t n;
        while (len < outsz - 1 && (n = recv(fd, out + len, outsz - 1 - len, 0)) > 0) {
                len += (size_t) n;
                out[len] = '\0';
                if (until && strstr(out, until))
                        break;
        }
        out[len] = '\0';
        close(fd);
}

static size_t count_dir(const char *path) {
        DIR *d = opendir(path);
        size_t n = 0;
        while (d && readdir(d))
                n++;
        if (d)
                closedir(d);
        return n;
}

Test(egress, proxy_relays_denies_and_leaves_nothing) {
        uint16_t up_port, proxy_port;
        int up_fd = listen_local(&up_port);
        pthread_t up_th;
        pthread_create(&up_th, NULL, upstream_main, (void *) (intptr_t) up_fd);
        size_t fds0 = count_dir("/proc/self/fd"), threads0 = count_dir("/proc/self/task");

        char allowed[64];
        snprintf(allowed, sizeof allowed, "127.0.0.1:%u", (unsigned) up_port);
        tr__egress_target allow[1] = { parse_ok(allowed) };
        int lfd = listen_local(&proxy_port);
        tr__egress_proxy *p = NULL;
        cr_assert_eq(tr__egress_proxy_start(lfd, allow, 1, NULL, NULL, &p, NULL), 0);

        char req[512], out[8192];
        /* Absolute-form HTTP: origin-form upstream, Connection: close. */
        snprintf(req, sizeof req,
                 "GET http://127.0.0.1:%u/a/b?c=d HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n"
                 "Connection: keep-alive\r\n\r\n",
                 (unsigned) up_port);
        exchange(proxy_port, req, NULL, out, sizeof out);
        cr_assert(strstr(out, "GOT GET /a/b?c=d HTTP/1.1|close") != NULL, "%s", out);
        /* The client's Host (any number of them) is replaced by the URL's
         * authority, the one the allowlist checked: no domain fronting; a
         * request without one gets one; a fragment is not sent. */
        snprintf(req, sizeof req,
                 "GET http://127.0.0.1:%u/f#frag HTTP/1.1\r\nHost: evil.example\r\nX: y\r\nhOsT: other\r\n\r\n",
                 (unsigned) up_port);
        exchange(proxy_port, req, NULL, out, sizeof out);
        char want[128];
        snprintf(want, sizeof want, "GOT GET /f HTTP/1.1|close|host=[127.0.0.1:%u]", (unsigned) up_port);
        cr_assert(strstr(out, want) != NULL, "%s", out);
        snprintf(req, sizeof req, "GET http://127.0.0.1:%u HTTP/1.0\r\n\r\n", (unsigned) up_port);
        exchange(proxy_port, req, NULL, out, sizeof out);
        snprintf(want, sizeof want, "GOT GET / HTTP/1.0|close|host=[127.0.0.1:%u]", (unsigned) up_port);
        cr_assert(strstr(out, want) != NULL, "%s", out);
        /* CONNECT: 200, then raw bytes both ways. */
        snprintf(req, sizeof req, "CONNECT 127.0.0.1:%u HTTP/1.1\r\nHost: x\r\n\r\nhello-tunnel", (unsigned) up_port);
        exchange(proxy_port, req, "hello-tunnel", out, sizeof out);
        cr_assert(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%s", out);
        cr_assert(strstr(out, "\r\n\r\nhello-tunnel") != NULL, "%s", out);
        /* Denied: another port, a name (no DNS: .invalid never resolves,
         * and a lookup would answer 502, not 403), https absolute-form. */
        snprintf(req, sizeof req, "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", (unsigned) proxy_port);
        exchange(proxy_port, req, NULL, out, sizeof out);
        cr_assert(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
        exchange(proxy_port, "GET http://nowhere.invalid/ HTTP/1.1\r\n\r\n", NULL, out, sizeof out);
        cr_assert(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
        exchange(proxy_port, "GET http://nowhere.invalid/ HTTP/1.1\r\n\r\n", NULL, out, sizeof out);
        exchange(proxy_port, "GET /plain HTTP/1.1\r\n\r\n", NULL, out, sizeof out);
        cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);
        exchange(proxy_port, "CONNECT *.example.com:443 HTTP/1.1\r\n\r\n", NULL, out, sizeof out);
        cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);

        tr__egress_counts c;
        tr__egress_proxy_take_counts(p, &c);
        cr_assert_eq(c.allowed, 4);
        cr_assert_eq(c.denied, 3);
        cr_assert_eq(c.n_denied_targets, 2, "distinct targets: %zu", c.n_denied_targets);
        cr_assert_str_eq(c.denied_targets[1], "nowhere.invalid:80");
        tr__egress_counts_done(&c);
        tr__egress_proxy_take_counts(p, &c);
        cr_assert_eq(c.allowed + c.denied, 0, "counts restart after a take");

        /* A client that never finishes its head is cut off by free, at once. */
        int idle = dial(proxy_port);
        send(idle, "CONNECT ", 8, MSG_NOSIGNAL);
        usleep(100 * 1000);
        tr__egress_proxy_free(p);
        char b;
        cr_assert_eq(recv(idle, &b, 1, 0), 0, "the idle client's connection was closed");
        close(idle);

        /* Detached threads may still be unwinding for a moment. */
        for (int i = 0; i < 100 && count_dir("/proc/self/task") != threads0; i++)
                usleep(10 * 1000);
        cr_assert_eq(count_dir("/proc/self/task"), threads0, "threads left behind");
        cr_assert_eq(count_dir("/proc/self/fd"), fds0, "descriptors left behind");
        shutdown(up_fd, SHUT_RDWR);
        close(up_fd);
        pthread_join(up_th, NULL);
}

/* At most TR__EGRESS_MAX_CONNS clients at once: the next one is answered
 * 503 at once; freeing the proxy ends every waiting one. */
Test(egress, connection_cap_then_free_ends_all) {
        uint16_t proxy_port;
        tr__egress_target allow[1] = { parse_ok("127.0.0.1:9") };
        int lfd = listen_local(&proxy_port);
        tr__egress_proxy *p = NULL;
        cr_assert_eq(tr__egress_proxy_start(lfd, allow, 1, NULL, NULL, &p, NULL), 0);
        int fds[TR__EGRESS_MAX_CONNS];
        for (size_t i = 0; i < TR__EGRESS_MAX_CONNS; i++) {
                fds[i] = dial(proxy_port);
                send(fds[i], "CONNECT ", 8, MSG_NOSIGNAL); /* and never the rest */
        }
        /* The accept thread counts each as it spawns its thread. */
        usleep(300 * 1000);
        char out[512];
        exchange(proxy_port, "CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n", NULL, out, sizeof out);
        cr_assert(strncmp(out, "HTTP/1.1 503 ", 13) == 0, "%s", out);
        tr__egress_proxy_free(p);
        for (size_t i = 0; i < TR__EGRESS_MAX_CONNS; i++) {
                char b;
                cr_assert_eq(recv(fds[i], &b, 1, 0), 0, "client %zu still connected", i);
                close(fds[i]);
        }
}

/* The request parser on its own (the fuzz target's invariants, by example). */
static int parse_req(const char *s, tr__egress_request *rq, const char **why) {
        const char *end = strstr(s, "\r\n\r\n");
        cr_assert_not_null(end);
        return tr__egress_parse_request(s, (size_t) (end + 4 - s), strlen(s), rq, why);
}

Test(egress, request_parser) {
        tr__egress_request rq;
        const char *why = NULL;
        cr_assert_eq(parse_req("GET http://Example.com?q=1 HTTP/1.1\r\nKeep-Alive: 5\r\n\r\nxy", &rq, &why), 0);
        cr_assert_str_eq(rq.target.host, "example.com");
        cr_assert_eq(rq.target.port, 80);
        cr_assert_eq(rq.head_len, strlen(rq.head));
        cr_assert_str_eq(rq.head, "GET /?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\nxy");
        tr__egress_request_done(&rq);
        cr_assert_eq(
                parse_req("POST http://[::1]:8080/p?a#b HTTP/1.1\r\nHOST: x\r\nContent-Length: 0\r\n\r\n", &rq, &why),
                0, "%s", why);
        cr_assert_str_eq(rq.head,
                         "POST /p?a HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        tr__egress_request_done(&rq);
        cr_assert_eq(parse_req("GET http://a.example.#x HTTP/1.1\r\n\r\n", &rq, &why), 0, "%s", why);
        cr_assert_str_eq(rq.head, "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n");
        tr__egress_request_done(&rq);
        cr_assert_eq(parse_req("CONNECT [::1]:443 HTTP/1.1\r\n\r\n", &rq, &why), 0);
        cr_assert(rq.is_connect);
        cr_assert_null(rq.head);
        tr__egress_request_done(&rq);
        static const char *const bad[] = {
                "GET http://a.example/ HTTP/1.1\r\nX: 1\nConnection: keep-alive\r\n\r\n", /* bare LF */
                "GET http://a.example/ HTTP/1.1\r\nX: 1\rY\r\n\r\n",                      /* bare CR */
                "GET https://a.example/ HTTP/1.1\r\n\r\n",
                "GET /relative HTTP/1.1\r\n\r\n",
                "CONNECT a.example HTTP/1.1\r\n\r\n",
                "CONNECT a.example:443 SPDY/3\r\n\r\n",
                "CONNECT  a.example:443 HTTP/1.1\r\n\r\n",
                "GET http://u:p@a.example/ HTTP/1.1\r\n\r\n",
                /* what two parsers could read two ways */
                "GET http://a.example/ HTTP/1.1\r\nX: 1\r\n Host: b.example\r\n\r\n",
                "GET http://a.example/ HTTP/1.1\r\nX: 1\r\n\tmore\r\n\r\n",
                "GET http://a.example/ HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
                "GET http://a.example/ HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n",
                "POST http://a.example/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                "POST http://a.example/ HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
                "GET http://a.example/ HTTP/1.1\r\nno colon here\r\n\r\n",
                "GET http://a.example/ HTTP/1.1\r\n: empty name\r\n\r\n",
                "CONNECT a.example:443 HTTP/1.1\r\n folded: 1\r\n\r\n",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                why = NULL;
                cr_assert_lt(parse_req(bad[i], &rq, &why), 0, "accepted: %s", bad[i]);
                cr_assert_not_null(why);
                tr__egress_request_done(&rq);
        }
}

/* A name in the allowlist must not lead to the host itself: "localhost"
 * resolves to loopback and is denied (403, counted as denied), while the
 * literal 127.0.0.1 entry for the same port, an operator's deliberate
 * choice, works.  The upstream really listens: a 403 is the check, not a
 * refused connection. */
Test(egress, name_resolving_to_loopback_is_denied) {
        uint16_t up_port, proxy_port;
        int up_fd = listen_local(&up_port);
        pthread_t up_th;
        pthread_create(&up_th, NULL, upstream_main, (void *) (intptr_t) up_fd);
        char e1[64], e2[64];
        snprintf(e1, sizeof e1, "localhost:%u", (unsigned) up_port);
        snprintf(e2, sizeof e2, "127.0.0.1:%u", (unsigned) up_port);
        tr__egress_target allow[2] = { parse_ok(e1), parse_ok(e2) };
        int lfd = listen_local(&proxy_port);
        tr__egress_proxy *p = NULL;
        cr_assert_eq(tr__egress_proxy_start(lfd, allow, 2, NULL, NULL, &p, NULL), 0);
        char req[256], out[4096];
        snprintf(req, sizeof req, "CONNECT localhost:%u HTTP/1.1\r\n\r\n", (unsigned) up_port);
        exchange(proxy_port, req, NULL, out, sizeof out);
        cr_assert(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
        cr_assert(strstr(out, "loopback") != NULL, "%s", out);
        snprintf(req, sizeof req, "GET http://LOCALHOST.:%u/x HTTP/1.1\r\n\r\n", (unsigned) up_port);
        exchange(proxy_port, req, NULL, out, sizeof out);
        cr_assert(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
        snprintf(req, sizeof req, "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\nping", (unsigned) up_port);
        exchange(proxy_port, req, "ping", out, sizeof out);
        cr_assert(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%s", out);
        tr__egress_counts c;
        tr__egress_proxy_take_counts(p, &c);
        cr_assert_eq(c.allowed, 1);
        cr_assert_eq(c.denied, 2);
        cr_assert_eq(c.n_denied_targets, 1);
        snprintf(e1, sizeof e1, "localhost:%u", (unsigned) up_port);
        cr_assert_str_eq(c.denied_targets[0], e1);
        tr__egress_counts_done(&c);
        tr__egress_proxy_free(p);
        shutdown(up_fd, SHUT_RDWR);
        close(up_fd);
        pthread_join(up_th, NULL);
}

static const char *forbidden4(const char *a) {
        struct sockaddr_in s = { .sin_family = AF_INET };
        cr_assert_eq(inet_pton(AF_INET, a, &s.sin_addr), 1);
        return tr__egress_addr_forbidden((struct sockaddr *) &s);
}

static const char *forbidden6(const char *a) {
        struct sockaddr_in6 s = { .sin6_family = AF_INET6 };
        cr_assert_eq(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
        return tr__egress_addr_forbidden((struct sockaddr *) &s);
}

Test(egress, forbidden_addresses) {
        static const char *const no4[] = { "127.0.0.1",       "127.255.0.9", "0.0.0.0",         "0.1.2.3",
                                           "169.254.169.254", "224.0.0.1",   "239.255.255.250", "255.255.255.255" };
        for (size_t i = 0; i < sizeof no4 / sizeof no4[0]; i++)
                cr_assert_not_null(forbidden4(no4[i]), "%s allowed", no4[i]);
        static const char *const yes4[] = { "10.0.0.1", "172.16.0.1", "192.168.1.1", "93.184.216.34", "128.0.0.1" };
        for (size_t i = 0; i < sizeof yes4 / sizeof yes4[0]; i++)
                cr_assert_null(forbidden4(yes4[i]), "%s refused", yes4[i]);
        static const char *const no6[] = {
                "::1",        "::", "fe80::1", "febf::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
                "::127.0.0.1"
        };
        for (size_t i = 0; i < sizeof no6 / sizeof no6[0]; i++)
                cr_assert_not_null(forbidden6(no6[i]), "%s allowed", no6[i]);
        static const char *const yes6[] = { "2001:db8::1", "fd00::1", "::ffff:10.0.0.1", "fec0::1" };
        for (size_t i = 0; i < sizeof yes6 / sizeof yes6[0]; i++)
                cr_assert_null(forbidden6(yes6[i]), "%s refused", yes6[i]);
}

/* The proxy's socket is made in the namespace of the pid containerd
 * reported; if that task exited and its pid went to a host process, the
 * proxy would listen in the host's own namespace.  Refused: a pid in this
 * process's namespace (this process itself), and a pid that is gone. */
Test(egress, listen_netns_refuses_host_namespace_and_dead_pid) {
        int fd = -1;
        tr_error *err = NULL;
        cr_assert_lt(tr__egress_listen_netns(getpid(), 0, &fd, &err), 0);
        cr_assert_eq(fd, -1);
        cr_assert(strstr(tr_error_message(err), "host's own network namespace") != NULL, "%s", tr_error_message(err));
        tr_error_free(err);
        err = NULL;
        pid_t child = fork();
        if (child == 0)
                _exit(0);
        cr_assert_gt(child, 0);
        cr_assert_eq(waitpid(child, NULL, 0), child);
        cr_assert_lt(tr__egress_listen_netns(child, 0, &fd, &err), 0);
        cr_assert_eq(fd, -1);
        tr_error_free(err);
}

/* Denials are all counted but not all logged: a snippet looping on a denied
 * target must not flood the runtime's log (5 WARNs per target, 100 in
 * all). */
static void count_warns(void *userdata, tr_log_level level, const char *msg, const char *const *kv) {
        (void) msg;
        (void) kv;
        if (level == TR_LOG_WARN)
                __atomic_add_fetch((unsigned *) userdata, 1, __ATOMIC_SEQ_CST);
}

Test(egress, denial_log_is_rate_limited) {
        uint16_t proxy_port;
        tr__egress_target allow[1] = { parse_ok("127.0.0.1:9") };
        int lfd = listen_local(&proxy_port);
        tr__egress_proxy *p = NULL;
        unsigned warns = 0;
        cr_assert_eq(tr__egress_proxy_start(lfd, allow, 1, count_warns, &warns, &p, NULL), 0);
        char req[128], out[512];
        for (int i = 0; i < 20; i++) {
                exchange(proxy_port, "CONNECT denied.example:443 HTTP/1.1\r\n\r\n", NULL, out, sizeof out);
                cr_assert(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
        }
        cr_assert_eq(__atomic_load_n(&warns, __ATOMIC_SEQ_CST), 5, "WARNs for one target: %u", warns);
        for (int i = 0; i < 120; i++) {
                snprintf(req, sizeof req, "CONNECT denied.example:%d HTTP/1.1\r\n\r\n", 1000 + i);
                exchange(proxy_port, req, NULL, out, sizeof out);
                cr_assert(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
        }
        cr_assert_eq(__atomic_load_n(&warns, __ATOMIC_SEQ_CST), 100, "WARNs in all: %u", warns);
        tr__egress_counts c;
        tr__egress_proxy_take_counts(p, &c);
        cr_assert_eq(c.denied, 140, "every denial counted");
        tr__egress_counts_done(&c);
        tr__egress_proxy_free(p);
}
