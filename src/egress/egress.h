/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Egress: the one way out of a sandbox that has an allowlist.  This layer
 * owns the allowlist's entries ("HOST:PORT": parsing, canonical form,
 * matching) and the proxy that enforces them, one per sandbox: a listening
 * socket made inside the sandbox's network namespace (netns.c), threads on
 * the host that read one HTTP CONNECT or absolute-form HTTP request per
 * client connection (parsed by request.c), check "host:port" against the
 * list, resolve the name on the host, connect and relay bytes both ways
 * (proxy.c, relay.c).  The
 * sandbox itself has no route anywhere: the proxy is the only door, and it
 * opens only on the names the caller listed.
 *
 * Why hand-written: no Debian C library provides an embeddable CONNECT
 * proxy (squid, tinyproxy and the like are daemons with their own config,
 * and a daemon per sandbox listening inside its namespace is what this is;
 * libcurl and libmicrohttpd are a client and a server, not a relay).  The
 * protocol part is small: one request line and its headers, then bytes.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "toolruntime.h"

/* "HOST:PORT", HOST at most 253 bytes, or "[v6]:PORT" (46 + 2). */
#define TR__EGRESS_HOST_MAX   254
#define TR__EGRESS_TARGET_MAX (TR__EGRESS_HOST_MAX + 2 + 1 + 5 + 1)
/* How many distinct denied targets a result lists (the count is exact). */
#define TR__EGRESS_MAX_DENIED_TARGETS TR_MAX_EGRESS_DENIED_TARGETS
/* Concurrent client connections per sandbox; more are answered 503. */
#define TR__EGRESS_MAX_CONNS 32

typedef struct tr__egress_target {
        /* Canonical: a lower-cased DNS name, or an address as inet_ntop
         * writes it (no brackets). */
        char host[TR__EGRESS_HOST_MAX];
        uint16_t port;
        bool is_ip;
} tr__egress_target;

/* Parse "HOST:PORT" strictly (see tr_request_set_egress_allow).  On error
 * *ret_why says what is wrong (static text). */
int tr__egress_parse(const char *s, size_t len, tr__egress_target *ret, const char **ret_why);
/* Parse a host and a port given apart (an absolute-form URL's authority
 * with its default port): same rules; `host` may be bracketed. */
int tr__egress_parse_host(const char *host, size_t len, uint16_t port, tr__egress_target *ret, const char **ret_why);
/* "host:port" or "[v6]:port". */
void tr__egress_format(const tr__egress_target *t, char out[TR__EGRESS_TARGET_MAX]);
bool tr__egress_match(const tr__egress_target *allow, size_t n, const tr__egress_target *t);

/* What a proxy saw since the last take: connections allowed and denied,
 * and the first distinct denied targets ("host:port", malloc()ed). */
typedef struct tr__egress_counts {
        uint64_t allowed, denied;
        char *denied_targets[TR__EGRESS_MAX_DENIED_TARGETS];
        size_t n_denied_targets;
} tr__egress_counts;
void tr__egress_counts_done(tr__egress_counts *c);

typedef struct tr__egress_proxy tr__egress_proxy;

/* Serve `listen_fd` (a listening TCP socket; owned from here, also on
 * failure) with the allowlist `allow` (copied).  `log` may be NULL. */
int tr__egress_proxy_start(int listen_fd, const tr__egress_target *allow, size_t n, tr_log_fn log, void *log_userdata,
                           tr__egress_proxy **ret, tr_error **ret_err);
/* Move the counts out (the proxy's restart at zero). */
void tr__egress_proxy_take_counts(tr__egress_proxy *p, tr__egress_counts *ret);
/* Stop accepting, end every connection, join every thread, close every
 * fd.  NULL-safe. */
void tr__egress_proxy_free(tr__egress_proxy *p);

/* A listening socket on 127.0.0.1:`port` inside the network namespace of
 * process `pid` (with its loopback device up).  Needs CAP_SYS_ADMIN (setns)
 * over that namespace, as the runtime has.  Refuses (ESRCH) a pid that is
 * gone or exits meanwhile, and a namespace that is this process's own. */
int tr__egress_listen_netns(pid_t pid, uint16_t port, int *ret_fd, tr_error **ret_err);

/* The core's side (core/exec.c): attach a sandbox's proxy to its
 * execution, so that each execution's result gets the counts since the
 * previous one (NULL detaches; the backend does before freeing it). */
void tr__exec_set_egress(tr_exec *ex, tr__egress_proxy *proxy);
/* The runtime's logger, which outlives the sandbox (the proxy's threads
 * log denials through it). */
void tr__exec_logger(const tr_exec *ex, tr_log_fn *ret_fn, void **ret_userdata);

/* ---- inside the layer ---- */

/* One client request (request.c): its target, and for plain HTTP the head
 * to send upstream (origin-form request line, hop-by-hop headers dropped,
 * "Connection: close", then the body bytes that came with the head). */
typedef struct tr__egress_request {
        tr__egress_target target;
        bool is_connect;
        char *head; /* NULL for CONNECT */
        size_t head_len;
} tr__egress_request;
/* `buf` holds `got` bytes, NUL-terminated, the head being its first `hl`
 * (through "\r\n\r\n", no NUL inside).  -1 with *ret_why on a request the
 * proxy refuses (400). */
int tr__egress_parse_request(const char *buf, size_t hl, size_t got, tr__egress_request *ret, const char **ret_why);
void tr__egress_request_done(tr__egress_request *rq);

/* Resolve `t` on the host and connect to its first address that answers,
 * before `deadline_ns` (CLOCK_MONOTONIC) or `stop_fd` turning readable.
 * The fd (blocking mode unspecified, CLOEXEC) or -errno; *ret_why names
 * the failure for the client's 502, or, with -EACCES, why the name was
 * refused: it resolved to an address only a literal entry may reach
 * (tr__egress_addr_forbidden) - a denial, 403. */
struct sockaddr;
/* NULL when a name's address may be connected to; else why not (loopback,
 * unspecified, link-local, multicast, broadcast, also v4-mapped). */
const char *tr__egress_addr_forbidden(const struct sockaddr *sa);
int tr__egress_connect(const tr__egress_target *t, int stop_fd, int64_t deadline_ns, const char **ret_why);
/* Relay bytes between `client` and `upstream` until both directions end,
 * `stop_fd` turns readable or nothing moves for TR__EGRESS_IDLE_MS; first
 * sends `head` (head_len bytes) to upstream.  Closes neither fd. */
#define TR__EGRESS_IDLE_MS (5 * 60 * 1000)
void tr__egress_relay(int client, int upstream, const char *head, size_t head_len, int stop_fd);
