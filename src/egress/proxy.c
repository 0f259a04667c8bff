/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One sandbox's proxy: an accept thread on the listening socket (which
 * lives in the sandbox's network namespace), one short-lived thread per
 * client connection (at most TR__EGRESS_MAX_CONNS at once), and the
 * counters an execution's result reports.
 *
 * A connection carries ONE request: "CONNECT host:port" (any TCP, HTTPS
 * included: the proxy never sees inside) or an absolute-form plain HTTP
 * request ("GET http://host[:port]/path"), whose request line is rewritten
 * to origin-form and whose connection is closed after the response
 * ("Connection: close"), so a second request on it can never reach another
 * host through the first one's upstream.  The target is checked against the
 * allowlist BEFORE anything is resolved: a denied name costs no DNS query.
 * A name whose addresses include the host's own (loopback and the like:
 * relay.c) is denied too.  Denied: 403, counted, logged (the first few per
 * target: a sandbox must not be able to flood the runtime's log).  Threads are detached but counted, and
 * freeing the proxy wakes them all (the stop pipe) and waits for the count
 * to reach zero, so nothing outlives the sandbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egress/egress.h"
#include "util/macros.h"
#include "util/timeutil.h"

/* A request head larger than this is refused (431). */
#define HEAD_MAX 8192
/* How long a client may take to send its request head, and the proxy to
 * connect upstream. */
#define HEAD_TIMEOUT_MS    10000
#define CONNECT_TIMEOUT_MS 10000
/* Detached connection threads need little: the relay buffers are on the heap. */
#define CONN_STACK (256 * 1024)
/* WARN lines about denials and failures: per target, and in all. */
#define LOG_PER_TARGET 5
#define LOG_TOTAL      100

struct tr__egress_proxy {
        int listen_fd;
        int stop[2]; /* written once by free: every thread polls stop[0] */
        pthread_t accept_thread;
        tr__egress_target *allow;
        size_t n_allow;
        tr_log_fn log;
        void *log_userdata;
        pthread_mutex_t lock;
        pthread_cond_t idle; /* signalled when `active` drops */
        unsigned active;     /* connection threads alive */
        tr__egress_counts counts;
        /* WARN lines logged, per target (log_quota). */
        struct {
                char *target;
                unsigned n;
        } logged[32];
        size_t n_logged;
        unsigned n_logged_total;
};

typedef struct conn {
        tr__egress_proxy *p;
        int fd;
} conn;

static void plog(tr__egress_proxy *p, tr_log_level level, const char *msg, const char *target, const char *why) {
        if (!p->log)
                return;
        const char *kv[] = { "target", target, why ? "reason" : NULL, why, NULL };
        p->log(p->log_userdata, level, msg, kv);
}

static void reply(int fd, int status, const char *reason, const char *body) {
        char msg[512];
        int n = snprintf(msg, sizeof msg,
                         "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: "
                         "close\r\n\r\n%s",
                         status, reason, strlen(body), body);
        if (n > 0)
                (void) send(fd, msg, (size_t) n < sizeof msg ? (size_t) n : sizeof msg - 1, MSG_NOSIGNAL);
}

static void count(tr__egress_proxy *p, bool allowed, const char *target) {
        pthread_mutex_lock(&p->lock);
        tr__egress_counts *c = &p->counts;
        if (allowed)
                c->allowed++;
        else {
                c->denied++;
                bool known = false;
                for (size_t i = 0; i < c->n_denied_targets; i++)
                        known = known || strcmp(c->denied_targets[i], target) == 0;
                if (!known && c->n_denied_targets < TR__EGRESS_MAX_DENIED_TARGETS) {
                        char *t = strdup(target);
                        if (t)
                                c->denied_targets[c->n_denied_targets++] = t;
                }
        }
        pthread_mutex_unlock(&p->lock);
}

/* May one more WARN about `target` be logged?  A sandbox can make denials
 * as fast as it can connect: the first LOG_PER_TARGET per target and
 * LOG_TOTAL in all are logged, the rest only counted (the result's
 * egress.denied stays exact). */
static bool log_quota(tr__egress_proxy *p, const char *target) {
        pthread_mutex_lock(&p->lock);
        bool ok = false;
        size_t i = 0;
        while (i < p->n_logged && strcmp(p->logged[i].target, target) != 0)
                i++;
        if (i == p->n_logged && i < ARRAY_SIZE(p->logged) && (p->logged[i].target = strdup(target)))
                p->n_logged++;
        if (p->n_logged_total < LOG_TOTAL && (i == ARRAY_SIZE(p->logged) || p->logged[i].n < LOG_PER_TARGET)) {
                ok = true;
                p->n_logged_total++;
                if (i < p->n_logged)
                        p->logged[i].n++;
        }
        pthread_mutex_unlock(&p->lock);
        return ok;
}

/* A denied connection: counted, logged (within the quota), 403. */
static void deny(tr__egress_proxy *p, int fd, const char *target, const char *log_why, const char *client_why) {
        count(p, false, target);
        if (log_quota(p, target))
                plog(p, TR_LOG_WARN, "egress denied", target, log_why);
        char body[TR__EGRESS_TARGET_MAX + 128];
        snprintf(body, sizeof body, "egress to %s is not allowed (%s)\n", target, client_why);
        reply(fd, 403, "Forbidden", body);
}

/* Read until the end of the head ("\r\n\r\n"); its length with the blank
 * line, 0 on timeout/EOF/stop, -1 when too large.  *ret_len: all bytes read
 * (a CONNECT client may send more right after). */
static ssize_t read_head(tr__egress_proxy *p, int fd, char *buf, size_t *ret_len) {
        size_t len = 0;
        int64_t deadline = tr__now_ns() + HEAD_TIMEOUT_MS * TR_NSEC_PER_MSEC;
        for (;;) {
                struct pollfd pf[2] = { { .fd = fd, .events = POLLIN }, { .fd = p->stop[0], .events = POLLIN } };
                int n = poll(pf, 2, tr__poll_timeout_ms(deadline));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || (pf[1].revents & POLLIN))
                        return 0;
                ssize_t r = recv(fd, buf + len, HEAD_MAX - len, 0);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (r <= 0)
                        return 0;
                len += (size_t) r;
                buf[len] = '\0';
                char *end = strstr(buf, "\r\n\r\n");
                *ret_len = len;
                if (end)
                        return end + 4 - buf;
                if (len == HEAD_MAX)
                        return -1;
        }
}

static void serve(tr__egress_proxy *p, int fd) {
        char *buf = malloc(HEAD_MAX + 1);
        if (!buf)
                return;
        size_t got = 0;
        tr__egress_request rq = { 0 };
        ssize_t hl = read_head(p, fd, buf, &got);
        const char *why = NULL;
        if (hl < 0) {
                reply(fd, 431, "Request Header Fields Too Large", "the request head is too large\n");
                goto out;
        }
        if (hl == 0)
                goto out;
        if (tr__egress_parse_request(buf, (size_t) hl, got, &rq, &why) < 0) {
                char body[256];
                snprintf(body, sizeof body, "bad proxy request: %s\n", why);
                reply(fd, 400, "Bad Request", body);
                goto out;
        }
        const tr__egress_target t = rq.target;
        char target[TR__EGRESS_TARGET_MAX];
        tr__egress_format(&t, target);
        if (!tr__egress_match(p->allow, p->n_allow, &t)) {
                deny(p, fd, target, "not in the allowlist", "not in this sandbox's allowlist");
                goto out;
        }
        int up = tr__egress_connect(&t, p->stop[0], tr__now_ns() + CONNECT_TIMEOUT_MS * TR_NSEC_PER_MSEC, &why);
        if (up == -EACCES) {
                /* Listed by name, but the name leads to the host itself (or
                 * the like): as denied as an unlisted target. */
                deny(p, fd, target, why, why);
                goto out;
        }
        count(p, true, target);
        plog(p, TR_LOG_INFO, "egress allowed", target, NULL);
        if (up < 0) {
                if (log_quota(p, target))
                        plog(p, TR_LOG_WARN, "egress connect failed", target, why);
                char body[TR__EGRESS_TARGET_MAX + 96];
                snprintf(body, sizeof body, "cannot reach %s: %s\n", target, why);
                reply(fd, 502, "Bad Gateway", body);
                goto out;
        }
        if (rq.is_connect) {
                static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
                if (send(fd, ok, sizeof ok - 1, MSG_NOSIGNAL) == (ssize_t) (sizeof ok - 1))
                        tr__egress_relay(fd, up, buf + hl, got - (size_t) hl, p->stop[0]);
        } else
                tr__egress_relay(fd, up, rq.head, rq.head_len, p->stop[0]);
        close(up);
out:
        tr__egress_request_done(&rq);
        free(buf);
}

static void *conn_main(void *arg) {
        conn *c = arg;
        tr__egress_proxy *p = c->p;
        serve(p, c->fd);
        close(c->fd);
        free(c);
        pthread_mutex_lock(&p->lock);
        p->active--;
        pthread_cond_broadcast(&p->idle);
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static void spawn(tr__egress_proxy *p, int fd) {
        pthread_mutex_lock(&p->lock);
        bool full = p->active >= TR__EGRESS_MAX_CONNS;
        if (!full)
                p->active++;
        pthread_mutex_unlock(&p->lock);
        if (full) {
                reply(fd, 503, "Service Unavailable", "too many connections through this sandbox's proxy\n");
                close(fd);
                return;
        }
        conn *c = malloc(sizeof *c);
        pthread_attr_t attr;
        pthread_t th;
        bool ok = false;
        if (c && pthread_attr_init(&attr) == 0) {
                *c = (conn){ p, fd };
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                pthread_attr_setstacksize(&attr, CONN_STACK);
                ok = pthread_create(&th, &attr, conn_main, c) == 0;
                pthread_attr_destroy(&attr);
        }
        if (ok)
                return;
        free(c);
        close(fd);
        pthread_mutex_lock(&p->lock);
        p->active--;
        pthread_cond_broadcast(&p->idle);
        pthread_mutex_unlock(&p->lock);
}

static void *accept_main(void *arg) {
        tr__egress_proxy *p = arg;
        for (;;) {
                struct pollfd pf[2] = { { .fd = p->listen_fd, .events = POLLIN },
                                        { .fd = p->stop[0], .events = POLLIN } };
                int n = poll(pf, 2, -1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || (pf[1].revents & POLLIN))
                        break;
                int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                        spawn(p, fd);
                else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                        /* Out of descriptors: back off instead of spinning. */
                        struct pollfd s = { .fd = p->stop[0], .events = POLLIN };
                        (void) poll(&s, 1, 100);
                }
        }
        return NULL;
}

int tr__egress_proxy_start(int listen_fd, const tr__egress_target *allow, size_t n, tr_log_fn log, void *log_userdata,
                           tr__egress_proxy **ret, tr_error **ret_err) {
        tr__egress_proxy *p = calloc(1, sizeof *p);
        if (!p || (n && !(p->allow = malloc(n * sizeof *allow)))) {
                free(p);
                close(listen_fd);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "egress", "out of memory");
        }
        p->listen_fd = listen_fd;
        if (n)
                memcpy(p->allow, allow, n * sizeof *allow);
        p->n_allow = n;
        p->log = log;
        p->log_userdata = log_userdata;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->idle, NULL);
        p->stop[0] = p->stop[1] = -1;
        int e = 0;
        if (pipe2(p->stop, O_CLOEXEC) < 0)
                e = errno;
        else if ((e = pthread_create(&p->accept_thread, NULL, accept_main, p)) != 0) {
                close(p->stop[0]);
                close(p->stop[1]);
        }
        if (e) {
                close(listen_fd);
                pthread_mutex_destroy(&p->lock);
                pthread_cond_destroy(&p->idle);
                free(p->allow);
                free(p);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "egress", "starting the proxy: %s",
                                    strerror(e));
        }
        *ret = p;
        return 0;
}

void tr__egress_counts_done(tr__egress_counts *c) {
        for (size_t i = 0; i < c->n_denied_targets; i++)
                free(c->denied_targets[i]);
        *c = (tr__egress_counts){ 0 };
}

void tr__egress_proxy_take_counts(tr__egress_proxy *p, tr__egress_counts *ret) {
        pthread_mutex_lock(&p->lock);
        *ret = p->counts;
        p->counts = (tr__egress_counts){ 0 };
        pthread_mutex_unlock(&p->lock);
}

void tr__egress_proxy_free(tr__egress_proxy *p) {
        if (!p)
                return;
        /* One byte, never read: stop[0] stays readable for every poll. */
        while (write(p->stop[1], "x", 1) < 0 && errno == EINTR)
                ;
        pthread_join(p->accept_thread, NULL);
        pthread_mutex_lock(&p->lock);
        while (p->active)
                pthread_cond_wait(&p->idle, &p->lock);
        pthread_mutex_unlock(&p->lock);
        close(p->listen_fd);
        close(p->stop[0]);
        close(p->stop[1]);
        tr__egress_counts_done(&p->counts);
        for (size_t i = 0; i < p->n_logged; i++)
                free(p->logged[i].target);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->idle);
        free(p->allow);
        free(p);
}
