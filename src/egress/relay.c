/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's network side, on the host: resolving and connecting to an
 * allowed target, then moving bytes between the sandbox's client and it.
 * One poll loop per connection with one bounded buffer per direction; a
 * direction whose reader stops reading stops its writer (no unbounded
 * buffering), and half-closes are passed on so request/response protocols
 * that end with a shutdown keep working.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egress/egress.h"
#include "util/macros.h"
#include "util/timeutil.h"

#define RELAY_BUF 16384

/* One non-blocking connect, waited for under the deadline and the stop fd. */
static int connect_one(const struct addrinfo *ai, int stop_fd, int64_t deadline_ns) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
                return -errno;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                return fd;
        if (errno != EINPROGRESS) {
                int e = errno;
                close(fd);
                return -e;
        }
        for (;;) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLOUT }, { .fd = stop_fd, .events = POLLIN } };
                int n = poll(p, 2, tr__poll_timeout_ms(deadline_ns));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || (p[1].revents & POLLIN)) {
                        close(fd);
                        return n < 0 ? -errno : -ETIMEDOUT;
                }
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err) {
                        close(fd);
                        return -err;
                }
                return fd;
        }
}

/* Addresses the proxy never connects to on a name's behalf: from the
 * host's network position they are the host itself (loopback, 0.0.0.0 and
 * :: reach local listeners, such as serve's API that needs no token on
 * loopback), the cloud metadata service and other link-local peers, or not
 * one peer at all (multicast, broadcast).  A name in the allowlist must not
 * become a way to them: only an entry that IS such a literal (an operator's
 * deliberate "127.0.0.1:8080") reaches one.  Private ranges (RFC 1918, ULA)
 * stay reachable: internal APIs are what an allowlist is for.  NULL when
 * `sa` may be connected to, else why not. */
static const char *v4_forbidden(uint32_t a) {
        if ((a >> 24) == 127)
                return "a loopback address";
        if ((a >> 24) == 0)
                return "an unspecified (\"this host\") address";
        if ((a >> 16) == 0xa9fe)
                return "a link-local address (169.254/16: cloud metadata)";
        if ((a >> 28) == 0xe)
                return "a multicast address";
        if (a == 0xffffffffu)
                return "the broadcast address";
        return NULL;
}

const char *tr__egress_addr_forbidden(const struct sockaddr *sa) {
        if (sa->sa_family == AF_INET)
                return v4_forbidden(ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr));
        if (sa->sa_family != AF_INET6)
                return "not an IP address";
        const uint8_t *b = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        static const uint8_t zero[12] = { 0 }, mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        /* ::ffff:a.b.c.d is the IPv4 host a.b.c.d to a dual-stack socket;
         * ::a.b.c.d (deprecated) covers :: and ::1 too (0.0.0.0/8). */
        if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0)
                return v4_forbidden((uint32_t) b[12] << 24 | (uint32_t) b[13] << 16 | (uint32_t) b[14] << 8 | b[15]);
        if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
                return "a link-local address (fe80::/10)";
        if (b[0] == 0xff)
                return "a multicast address";
        return NULL;
}

int tr__egress_connect(const tr__egress_target *t, int stop_fd, int64_t deadline_ns, const char **ret_why) {
        char port[8], name[TR__EGRESS_HOST_MAX + 1];
        snprintf(port, sizeof port, "%u", (unsigned) t->port);
        /* A dotted name is looked up as fully qualified (the trailing dot):
         * the host's search domains must not turn "api.example.com" into
         * "api.example.com.corp.internal".  A single-label name ("db") is
         * left to the resolver as the host's own programs see it. */
        snprintf(name, sizeof name, "%s%s", t->host, !t->is_ip && strchr(t->host, '.') ? "." : "");
        /* The name was checked against the list before this: only now is
         * it resolved, by the host's resolver (the sandbox has none). */
        struct addrinfo hints = { .ai_family = AF_UNSPEC,
                                  .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_NUMERICSERV | (t->is_ip ? AI_NUMERICHOST : 0) };
        struct addrinfo *res = NULL;
        int g = getaddrinfo(name, port, &hints, &res);
        if (g != 0) {
                *ret_why = "the host name does not resolve";
                return -EHOSTUNREACH;
        }
        /* Every address is checked before any is tried: a name with one
         * forbidden address among good ones is refused whole (a resolver
         * answering so is not to be trusted with the next try either).  The
         * sockaddrs checked are the ones connected to: no second lookup. */
        for (const struct addrinfo *ai = res; ai && !t->is_ip; ai = ai->ai_next) {
                const char *why = tr__egress_addr_forbidden(ai->ai_addr);
                if (why) {
                        freeaddrinfo(res);
                        *ret_why = why;
                        return -EACCES;
                }
        }
        int fd = -ECONNREFUSED;
        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                fd = connect_one(ai, stop_fd, deadline_ns);
                if (fd >= 0 || fd == -ETIMEDOUT)
                        break;
        }
        freeaddrinfo(res);
        /* -EACCES means the policy above, nothing else: a socket-level
         * EACCES (an LSM, a firewall) is a plain failure, a 502. */
        if (fd == -EACCES)
                fd = -EPERM;
        if (fd < 0)
                *ret_why = fd == -ETIMEDOUT ? "connecting timed out" : "the connection was refused or failed";
        return fd;
}

typedef struct half {
        int from, to;
        char buf[RELAY_BUF];
        size_t off, len;
        bool eof;  /* `from` ended (or failed) */
        bool shut; /* `to` was shut for writing after the EOF */
        bool dead; /* `to` failed: drop what is left */
} half;

static bool half_done(const half *h) {
        return h->shut || h->dead;
}

/* Read into an empty buffer, write out what is buffered; true when
 * something moved. */
static bool half_step(half *h, short rev_from, short rev_to) {
        bool moved = false;
        if (!h->eof && h->len == 0 && (rev_from & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t n = recv(h->from, h->buf, sizeof h->buf, 0);
                if (n > 0) {
                        h->off = 0;
                        h->len = (size_t) n;
                        moved = true;
                } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                        h->eof = true;
                        moved = true;
                }
        }
        if (h->len && !h->dead && (rev_to & (POLLOUT | POLLERR | POLLHUP))) {
                ssize_t n = send(h->to, h->buf + h->off, h->len, MSG_NOSIGNAL);
                if (n > 0) {
                        h->off += (size_t) n;
                        h->len -= (size_t) n;
                        moved = true;
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        h->dead = true;
                        moved = true;
                }
        }
        if (h->eof && h->len == 0 && !half_done(h)) {
                (void) shutdown(h->to, SHUT_WR);
                h->shut = true;
                moved = true;
        }
        return moved;
}

static void set_nonblock(int fd) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                (void) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Write all of `data` (the rewritten request head) before relaying. */
static bool send_all(int fd, const char *data, size_t len, int stop_fd, int64_t deadline_ns) {
        while (len) {
                ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
                if (n > 0) {
                        data += n;
                        len -= (size_t) n;
                        continue;
                }
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        return false;
                struct pollfd p[2] = { { .fd = fd, .events = POLLOUT }, { .fd = stop_fd, .events = POLLIN } };
                int r = poll(p, 2, tr__poll_timeout_ms(deadline_ns));
                if (r == 0 || (r > 0 && (p[1].revents & POLLIN)))
                        return false;
        }
        return true;
}

void tr__egress_relay(int client, int upstream, const char *head, size_t head_len, int stop_fd) {
        set_nonblock(client);
        set_nonblock(upstream);
        if (head_len &&
            !send_all(upstream, head, head_len, stop_fd, tr__now_ns() + TR__EGRESS_IDLE_MS * TR_NSEC_PER_MSEC))
                return;
        /* Two halves on the heap: 32 KiB is too much for a small stack. */
        half *up = calloc(2, sizeof *up);
        if (!up)
                return;
        half *down = up + 1;
        *up = (half){ .from = client, .to = upstream };
        *down = (half){ .from = upstream, .to = client };
        int64_t idle_until = tr__now_ns() + TR__EGRESS_IDLE_MS * TR_NSEC_PER_MSEC;
        while (!(half_done(up) && half_done(down))) {
                /* A direction whose writer failed ends the other too: the
                 * peer is gone. */
                if (up->dead || down->dead)
                        break;
                struct pollfd p[3] = { { .fd = client }, { .fd = upstream }, { .fd = stop_fd, .events = POLLIN } };
                if (!up->eof && up->len == 0)
                        p[0].events |= POLLIN;
                if (down->len)
                        p[0].events |= POLLOUT;
                if (!down->eof && down->len == 0)
                        p[1].events |= POLLIN;
                if (up->len)
                        p[1].events |= POLLOUT;
                /* A side nothing is waited on is left out: its POLLHUP
                 * would otherwise wake the loop over and over. */
                for (size_t i = 0; i < 2; i++)
                        if (!p[i].events)
                                p[i].fd = -1;
                int n = poll(p, 3, tr__poll_timeout_ms(idle_until));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || (p[2].revents & POLLIN))
                        break;
                bool moved = half_step(up, p[0].revents, p[1].revents);
                moved = half_step(down, p[1].revents, p[0].revents) || moved;
                if (moved)
                        idle_until = tr__now_ns() + TR__EGRESS_IDLE_MS * TR_NSEC_PER_MSEC;
        }
        free(up);
}
