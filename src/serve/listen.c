/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service's listening socket (TCP, or a unix socket only owner and
 * group may reach) and how request paths are decoded (%XX, but never %00).
 * Split from server.c, which owns what happens on the connections.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include "serve/mhd.h"
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "serve/serve.h"
#include "util/macros.h"

/* The path's %XX escapes decoded, except %00: a NUL would cut the path
 * short, so it stays the three characters it was (a session file's path
 * with a '%' in it is then just refused or taken literally). */
size_t tr__serve_unescape(void *cls, struct MHD_Connection *c, char *uri) {
        (void) cls;
        (void) c;
        char *w = uri;
        for (const char *r = uri; *r; r++) {
                unsigned v;
                if (r[0] == '%' && isxdigit((unsigned char) r[1]) && isxdigit((unsigned char) r[2]) &&
                    sscanf(r + 1, "%2x", &v) == 1 && v != 0) {
                        *w++ = (char) v;
                        r += 2;
                } else
                        *w++ = *r;
        }
        *w = '\0';
        return (size_t) (w - uri);
}

static int listen_unix(tr__serve_listener *s, const char *path, tr_error **ret_err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "listen",
                                    "unix socket path too long: %s", path);
        memcpy(sa.sun_path, path, strlen(path));
        /* A stale socket of a previous instance is replaced; any other
         * file at that path is left alone and the start fails. */
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                unlink(path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "listen", "cannot listen on unix:%s: %s",
                                    path, strerror(e));
        }
        /* The service runs code for whoever can connect: owner and group only. */
        chmod(path, 0660);
        s->unix_path = strdup(path);
        snprintf(s->address, sizeof(s->address), "unix:%s", path);
        return fd;
}

static int listen_tcp(tr__serve_listener *s, const char *spec, tr_error **ret_err) {
        char host[128];
        const char *colon = strrchr(spec, ':');
        size_t hl = colon ? (size_t) (colon - spec) : 0;
        if (!colon || hl == 0 || hl >= sizeof(host) || !colon[1])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "listen",
                                    "--listen '%s': expected HOST:PORT or unix:PATH", spec);
        memcpy(host, spec, hl);
        host[hl] = '\0';
        if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
                memmove(host, host + 1, hl - 2);
                host[hl - 2] = '\0';
        }
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
        int gr = getaddrinfo(host, colon + 1, &hints, &ai);
        if (gr != 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "listen", "--listen '%s': %s", spec,
                                    gai_strerror(gr));
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        if (fd >= 0)
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                freeaddrinfo(ai);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "listen", "cannot listen on %s: %s", spec,
                                    strerror(e));
        }
        freeaddrinfo(ai);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char ip[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (getsockname(fd, (struct sockaddr *) &ss, &sl) == 0) {
                if (ss.ss_family == AF_INET) {
                        struct sockaddr_in *a = (struct sockaddr_in *) &ss;
                        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
                        port = ntohs(a->sin_port);
                } else if (ss.ss_family == AF_INET6) {
                        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;
                        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
                        port = ntohs(a->sin6_port);
                }
        }
        snprintf(s->address, sizeof(s->address), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
        return fd;
}

int tr__serve_listen(const char *spec, tr__serve_listener *ret, tr_error **ret_err) {
        *ret = (tr__serve_listener){ .fd = -1 };
        ret->fd = strncmp(spec, "unix:", 5) == 0 ? listen_unix(ret, spec + 5, ret_err) : listen_tcp(ret, spec, ret_err);
        return ret->fd;
}
