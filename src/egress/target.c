/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allowlist entries: "HOST:PORT" parsed strictly into one canonical form,
 * so that matching is a plain comparison.  Strict because the proxy hands
 * the host to getaddrinfo, which reads more than it should ("127.1",
 * "0x7f000001" are addresses to it): a name whose last label starts with a
 * digit must be a dotted-quad IPv4 address, IPv6 must be bracketed, and no
 * wildcard, userinfo, space or control byte gets through.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "egress/egress.h"

static int bad(const char **ret_why, const char *why) {
        if (ret_why)
                *ret_why = why;
        return -1;
}

/* ASCII only, whatever the locale: ctype's isalnum/tolower follow
 * LC_CTYPE, and a host name byte must mean the same to every caller. */
static bool ascii_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool ascii_alpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

static bool name_char(char c) {
        return ascii_alpha(c) || ascii_digit(c) || c == '-' || c == '_';
}

/* A DNS name: labels of 1-63 letters, digits, '-' or '_', not starting or
 * ending with '-', at most 253 bytes; one trailing dot is dropped. */
static int parse_name(const char *h, size_t len, tr__egress_target *ret, const char **ret_why) {
        if (len && h[len - 1] == '.')
                len--;
        if (len == 0)
                return bad(ret_why, "the host is empty");
        if (len > 253)
                return bad(ret_why, "the host name is longer than 253 bytes");
        size_t label = 0, last_start = 0;
        for (size_t i = 0; i <= len; i++) {
                if (i == len || h[i] == '.') {
                        if (label == 0)
                                return bad(ret_why, "the host name has an empty label");
                        if (label > 63)
                                return bad(ret_why, "a label of the host name is longer than 63 bytes");
                        if (h[i - 1] == '-' || h[i - label] == '-')
                                return bad(ret_why, "a label of the host name starts or ends with '-'");
                        last_start = i - label;
                        label = 0;
                        continue;
                }
                if (h[i] == '*')
                        return bad(ret_why, "wildcards are not supported: list each host");
                if (!name_char(h[i]))
                        return bad(ret_why, "the host has a character a host name cannot have");
                label++;
        }
        if (ascii_digit(h[last_start]))
                return bad(ret_why, "the host is neither a host name nor a dotted-quad IPv4 address");
        for (size_t i = 0; i < len; i++)
                ret->host[i] = ascii_lower(h[i]);
        ret->host[len] = '\0';
        ret->is_ip = false;
        return 0;
}

int tr__egress_parse_host(const char *h, size_t len, uint16_t port, tr__egress_target *ret, const char **ret_why) {
        char tmp[TR__EGRESS_HOST_MAX];
        if (port == 0)
                return bad(ret_why, "the port must be 1-65535");
        ret->port = port;
        if (len && h[0] == '[') {
                if (len < 3 || h[len - 1] != ']' || len - 2 >= sizeof tmp)
                        return bad(ret_why, "an IPv6 address must be written [address]");
                memcpy(tmp, h + 1, len - 2);
                tmp[len - 2] = '\0';
                struct in6_addr a6;
                if (inet_pton(AF_INET6, tmp, &a6) != 1)
                        return bad(ret_why, "the bracketed host is not an IPv6 address");
                inet_ntop(AF_INET6, &a6, ret->host, sizeof ret->host);
                ret->is_ip = true;
                return 0;
        }
        if (memchr(h, ':', len))
                return bad(ret_why, "an IPv6 address must be written in brackets: [address]:port");
        if (len >= sizeof tmp)
                return bad(ret_why, "the host name is longer than 253 bytes");
        memcpy(tmp, h, len);
        tmp[len] = '\0';
        struct in_addr a4;
        if (inet_pton(AF_INET, tmp, &a4) == 1) {
                inet_ntop(AF_INET, &a4, ret->host, sizeof ret->host);
                ret->is_ip = true;
                return 0;
        }
        return parse_name(h, len, ret, ret_why);
}

int tr__egress_parse(const char *s, size_t len, tr__egress_target *ret, const char **ret_why) {
        if (!s || len == 0)
                return bad(ret_why, "the entry is empty");
        if (len > TR_MAX_EGRESS_ENTRY_BYTES)
                return bad(ret_why, "the entry is too long");
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++)
                if (s[i] == ':')
                        colon = s + i;
        if (!colon)
                return bad(ret_why, "the entry has no port (HOST:PORT)");
        const char *p = colon + 1;
        size_t plen = len - (size_t) (p - s);
        if (plen == 0 || plen > 5)
                return bad(ret_why, "the port must be 1-65535");
        unsigned port = 0;
        for (size_t i = 0; i < plen; i++) {
                if (!ascii_digit(p[i]))
                        return bad(ret_why, "the port must be 1-65535");
                port = port * 10 + (unsigned) (p[i] - '0');
        }
        if (port == 0 || port > 65535)
                return bad(ret_why, "the port must be 1-65535");
        return tr__egress_parse_host(s, (size_t) (colon - s), (uint16_t) port, ret, ret_why);
}

void tr__egress_format(const tr__egress_target *t, char out[TR__EGRESS_TARGET_MAX]) {
        bool v6 = t->is_ip && strchr(t->host, ':');
        snprintf(out, TR__EGRESS_TARGET_MAX, v6 ? "[%s]:%u" : "%s:%u", t->host, (unsigned) t->port);
}

bool tr__egress_match(const tr__egress_target *allow, size_t n, const tr__egress_target *t) {
        for (size_t i = 0; i < n; i++)
                if (allow[i].port == t->port && strcmp(allow[i].host, t->host) == 0)
                        return true;
        return false;
}
