/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's one parser of untrusted input: the request head a sandbox's
 * client sends (at most 8 KiB, ending in a blank line).  Pure functions, so
 * that the fuzz target (tests/fuzz/fuzz-egress.c) drives exactly what the
 * proxy runs.  Only "CONNECT host:port" and absolute-form "http://" requests
 * are accepted; the target goes through the allowlist's own strict parser
 * (target.c), so anything the list could not name is refused here too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "egress/egress.h"
#include "util/macros.h"

/* An absolute-form "http://authority/path": the target and where the
 * origin-form path starts (NULL: "/"). */
static int parse_absolute(const char *uri, size_t len, tr__egress_target *t, const char **ret_path,
                          const char **ret_why) {
        if (len < 7 || strncasecmp(uri, "http://", 7) != 0) {
                *ret_why = len >= 8 && strncasecmp(uri, "https://", 8) == 0
                                   ? "use CONNECT for https:// (HTTPS_PROXY does)"
                                   : "the request target must be absolute-form http://HOST[:PORT]/PATH or CONNECT";
                return -1;
        }
        const char *a = uri + 7, *end = uri + len, *e = a;
        while (e < end && *e != '/' && *e != '?' && *e != '#')
                e++;
        *ret_path = e < end ? e : NULL;
        if (memchr(a, '@', (size_t) (e - a))) {
                *ret_why = "credentials in the URL are not supported";
                return -1;
        }
        /* host, [v6], host:port or [v6]:port */
        const char *colon = NULL;
        for (const char *c = a; c < e; c++)
                if (*c == ':')
                        colon = c;
        const char *rb = memchr(a, ']', (size_t) (e - a));
        if (colon && (!rb || colon > rb))
                return tr__egress_parse(a, (size_t) (e - a), t, ret_why);
        return tr__egress_parse_host(a, (size_t) (e - a), 80, t, ret_why);
}

/* Headers a proxy consumes or must replace: the hop-by-hop ones, and Host,
 * which is rewritten from the checked URL (RFC 9112 3.2.2): a client's own
 * Host would name another site behind a shared front end than the one the
 * allowlist let through (domain fronting). */
static bool drop_header(const char *line, size_t len) {
        static const char *const names[] = { "proxy-connection:", "proxy-authorization:", "connection:", "keep-alive:",
                                             "host:" };
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                size_t n = strlen(names[i]);
                if (len >= n && strncasecmp(line, names[i], n) == 0)
                        return true;
        }
        return false;
}

/* The header lines (from after the request line up to the blank line)
 * refused because two parsers read them differently, the smuggling
 * classics: an obsolete folded continuation line, whitespace between a
 * name and its ':', a line with no ':', and Transfer-Encoding together
 * with Content-Length (which one frames the body?). */
static int check_headers(const char *l, const char *head_end, const char **ret_why) {
        bool te = false, cl = false;
        while (l < head_end) {
                const char *eol = strstr(l, "\r\n");
                if (!eol || eol == l)
                        break;
                size_t ll = (size_t) (eol - l);
                const char *colon = memchr(l, ':', ll);
                if (l[0] == ' ' || l[0] == '\t') {
                        *ret_why = "a folded (continued) header line";
                        return -1;
                }
                if (!colon || colon == l) {
                        *ret_why = "a header line without a name and ':'";
                        return -1;
                }
                if (colon[-1] == ' ' || colon[-1] == '\t') {
                        *ret_why = "whitespace between a header name and ':'";
                        return -1;
                }
                te = te || ((size_t) (colon - l) == 17 && strncasecmp(l, "transfer-encoding", 17) == 0);
                cl = cl || ((size_t) (colon - l) == 14 && strncasecmp(l, "content-length", 14) == 0);
                l = eol + 2;
        }
        if (te && cl) {
                *ret_why = "both Transfer-Encoding and Content-Length";
                return -1;
        }
        return 0;
}

/* The request line in origin-form, "Host" from the checked target, the
 * headers minus the hop-by-hop ones and the client's Host,
 * "Connection: close", then whatever body bytes came with the head. */
static char *rewrite_head(const char *method, size_t mlen, const char *path, size_t plen, const char *version,
                          size_t vlen, const tr__egress_target *t, const char *headers, const char *head_end,
                          const char *extra, size_t extra_len, size_t *ret_len) {
        size_t cap = mlen + plen + vlen + TR__EGRESS_TARGET_MAX + (size_t) (head_end - headers) + extra_len + 64;
        char *out = malloc(cap);
        if (!out)
                return NULL;
        /* "http://host?q" has no path: origin-form needs its "/". */
        bool slash = !plen || path[0] != '/';
        size_t n = (size_t) snprintf(out, cap, "%.*s %s%.*s %.*s\r\n", (int) mlen, method, slash ? "/" : "", (int) plen,
                                     plen ? path : "", (int) vlen, version);
        /* The authority as the allowlist matched it; the port only when
         * it is not http's own. */
        char authority[TR__EGRESS_TARGET_MAX];
        tr__egress_format(t, authority);
        if (t->port == 80)
                *strrchr(authority, ':') = '\0';
        n += (size_t) snprintf(out + n, cap - n, "Host: %s\r\n", authority);
        for (const char *l = headers; l < head_end;) {
                const char *eol = strstr(l, "\r\n");
                if (!eol || eol == l)
                        break;
                size_t ll = (size_t) (eol - l);
                if (!drop_header(l, ll)) {
                        memcpy(out + n, l, ll + 2);
                        n += ll + 2;
                }
                l = eol + 2;
        }
        n += (size_t) snprintf(out + n, cap - n, "Connection: close\r\n\r\n");
        memcpy(out + n, extra, extra_len);
        out[n + extra_len] = '\0'; /* for a reader that wants a string */
        *ret_len = n + extra_len;
        return out;
}

int tr__egress_parse_request(const char *buf, size_t hl, size_t got, tr__egress_request *ret, const char **ret_why) {
        *ret = (tr__egress_request){ 0 };
        /* METHOD SP TARGET SP VERSION CRLF; the head holds no NUL (read
         * with strstr) and ends "\r\n\r\n". */
        const char *m = buf, *eol = strstr(buf, "\r\n");
        if (hl < 4 || !eol || (size_t) (eol - buf) + 4 > hl) {
                *ret_why = "not an HTTP/1 proxy request";
                return -1;
        }
        const char *sp1 = memchr(m, ' ', (size_t) (eol - m));
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t) (eol - sp1 - 1)) : NULL;
        if (!sp1 || !sp2 || sp1 == m || sp2 == sp1 + 1 || (size_t) (eol - sp2 - 1) < 7 ||
            strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
                *ret_why = "not an HTTP/1 proxy request";
                return -1;
        }
        /* A bare CR or LF is a line end to some servers and not to others:
         * refused, so that what the upstream parses is what was checked. */
        for (size_t i = 0; i < hl; i++)
                if ((buf[i] == '\r' && (i + 1 >= hl || buf[i + 1] != '\n')) ||
                    (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))) {
                        *ret_why = "a bare CR or LF in the request head";
                        return -1;
                }
        if (check_headers(eol + 2, buf + hl - 2, ret_why) < 0)
                return -1;
        const char *uri = sp1 + 1, *path = NULL;
        size_t ulen = (size_t) (sp2 - uri);
        ret->is_connect = (size_t) (sp1 - m) == 7 && strncmp(m, "CONNECT", 7) == 0;
        if (ret->is_connect)
                return tr__egress_parse(uri, ulen, &ret->target, ret_why);
        if (parse_absolute(uri, ulen, &ret->target, &path, ret_why) < 0)
                return -1;
        size_t plen = path ? (size_t) (sp2 - path) : 0;
        /* A fragment is the client's own business, never sent (RFC 9110
         * 4.2.5): cut at '#'. */
        const char *hash = plen ? memchr(path, '#', plen) : NULL;
        if (hash)
                plen = (size_t) (hash - path);
        ret->head = rewrite_head(m, (size_t) (sp1 - m), path, plen, sp2 + 1, (size_t) (eol - sp2 - 1), &ret->target,
                                 eol + 2, buf + hl - 2, buf + hl, got - hl, &ret->head_len);
        if (!ret->head) {
                *ret_why = "out of memory";
                return -1;
        }
        return 0;
}

void tr__egress_request_done(tr__egress_request *rq) {
        free(rq->head);
        *rq = (tr__egress_request){ 0 };
}
