/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: what a sandbox's client sends the egress proxy (the
 * request head, request.c) and the allowlist entries a caller gives
 * (target.c).  Invariants: an accepted target's canonical form parses back
 * to itself and matches itself; a rewritten plain-HTTP head is one request
 * line in origin-form, ends its headers with exactly one
 * "Connection: close", has no hop-by-hop header of the client's left and no
 * bare CR or LF (which some servers would read as a line end), has exactly
 * one Host header, right after the request line, naming the checked target,
 * no fragment, no folded or colon-less header line, and never both
 * Transfer-Encoding and Content-Length.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "egress/egress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_target(const tr__egress_target *t) {
        char canon[TR__EGRESS_TARGET_MAX];
        tr__egress_format(t, canon);
        tr__egress_target again;
        if (tr__egress_parse(canon, strlen(canon), &again, NULL) < 0 || strcmp(again.host, t->host) != 0 ||
            again.port != t->port || !tr__egress_match(t, 1, &again) || t->port == 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 16384)
                return 0;
        char *buf = malloc(size + 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        tr__egress_target t;
        if (tr__egress_parse(buf, size, &t, NULL) == 0)
                check_target(&t);
        /* As the proxy reads it: the head up to the first blank line. */
        const char *end = strstr(buf, "\r\n\r\n");
        tr__egress_request rq;
        const char *why = NULL;
        if (end && tr__egress_parse_request(buf, (size_t) (end + 4 - buf), size, &rq, &why) == 0) {
                check_target(&rq.target);
                if (!rq.is_connect) {
                        const char *h = rq.head, *eol = memmem(h, rq.head_len, "\r\n", 2);
                        const char *sp = memchr(h, ' ', rq.head_len);
                        /* origin-form: "METHOD /..." */
                        if (!eol || !sp || sp > eol || sp[1] != '/')
                                abort();
                        const char *close = memmem(h, rq.head_len, "\r\nConnection: close\r\n\r\n", 23);
                        const char *blank = memmem(h, rq.head_len, "\r\n\r\n", 4);
                        if (!close || blank != close + 19 || memchr(sp + 1, '#', strcspn(sp + 1, " ")))
                                abort();
                        char host[TR__EGRESS_TARGET_MAX + 16], canon[TR__EGRESS_TARGET_MAX];
                        tr__egress_format(&rq.target, canon);
                        if (rq.target.port == 80)
                                *strrchr(canon, ':') = '\0';
                        size_t hlen = (size_t) snprintf(host, sizeof host, "Host: %s\r\n", canon);
                        if ((size_t) (blank + 2 - (eol + 2)) < hlen || memcmp(eol + 2, host, hlen) != 0)
                                abort();
                        bool te = false, cl = false;
                        for (const char *l = eol + 2; l < blank + 2;) {
                                const char *e = memmem(l, (size_t) (blank + 2 - l), "\r\n", 2);
                                if (!e)
                                        abort();
                                if (strncasecmp(l, "proxy-connection:", 17) == 0 ||
                                    strncasecmp(l, "proxy-authorization:", 20) == 0 ||
                                    strncasecmp(l, "keep-alive:", 11) == 0 ||
                                    (strncasecmp(l, "connection:", 11) == 0 && l != close + 2) ||
                                    memchr(l, '\n', (size_t) (e - l)) || memchr(l, '\r', (size_t) (e - l)) ||
                                    (strncasecmp(l, "host:", 5) == 0 && l != eol + 2) || *l == ' ' || *l == '\t' ||
                                    !memchr(l, ':', (size_t) (e - l)))
                                        abort();
                                te = te || strncasecmp(l, "transfer-encoding:", 18) == 0;
                                cl = cl || strncasecmp(l, "content-length:", 15) == 0;
                                l = e + 2;
                        }
                        if (te && cl)
                                abort();
                }
                tr__egress_request_done(&rq);
        } else if (end && !why)
                abort();
        free(buf);
        return 0;
}
