/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry client (see registry.h).  Everything a registry sends is
 * untrusted: bodies are capped while they arrive, headers are read only for
 * the content type and the auth challenge, and tokens are sent back only to
 * the registry that asked for them (curl never forwards our Authorization
 * header across a redirect to another host).
 */
#include <errno.h>
#include <jansson.h>
#include <nettle/base64.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/containerd/registry.h"
#include "util/macros.h"
#include "util/timeutil.h"
#include "util/curl_lazy.h"

#define OP "image.pull"
/* A token response or an error body: a few KiB in practice. */
#define MAX_SMALL (1024 * 1024)

struct tr__reg {
        CURL *curl;
        const tr__reg_ref *ref;
        tr__reg_opts opts;
        bool plain_http;
        char *userpass; /* from config.json, or NULL */
        char *auth;     /* "Authorization: ..." once known */
};

void tr__reg_ref_done(tr__reg_ref *r) {
        free(r->domain);
        free(r->repo);
        free(r->tag);
        free(r->digest);
        free(r->name);
        *r = (tr__reg_ref){ 0 };
}

static int oom(tr_error **ret_err) {
        tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, OP, "out of memory");
        return -ENOMEM;
}

static bool path_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/';
}

int tr__reg_ref_parse(const char *s, tr__reg_ref *ret, tr_error **ret_err) {
        tr__reg_ref r = { 0 };
        _cleanup_free_ char *buf = strdup(s ? s : "");
        if (!buf)
                return oom(ret_err);
        char *at = strchr(buf, '@');
        if (at) {
                *at = '\0';
                r.digest = strdup(at + 1);
                if (!r.digest)
                        goto nomem;
        }
        /* A tag is after the last ':' that follows the last '/'. */
        char *slash = strrchr(buf, '/');
        char *colon = strrchr(slash ? slash : buf, ':');
        if (colon) {
                *colon = '\0';
                r.tag = strdup(colon + 1);
                if (!r.tag)
                        goto nomem;
        } else if (!r.digest && !(r.tag = strdup("latest")))
                goto nomem;
        const char *path = buf;
        char *first = strchr(buf, '/');
        if (first && (memchr(buf, '.', (size_t) (first - buf)) || memchr(buf, ':', (size_t) (first - buf)) ||
                      (first - buf == 9 && strncmp(buf, "localhost", 9) == 0))) {
                *first = '\0';
                r.domain = strdup(buf);
                path = first + 1;
        } else
                r.domain = strdup("docker.io");
        if (!r.domain)
                goto nomem;
        if (streq(r.domain, "docker.io") && !strchr(path, '/')) {
                if (asprintf(&r.repo, "library/%s", path) < 0)
                        r.repo = NULL;
        } else
                r.repo = strdup(path);
        if (!r.repo)
                goto nomem;
        bool ok = r.repo[0] && r.repo[0] != '/' && r.repo[strlen(r.repo) - 1] != '/' && !strstr(r.repo, "//") &&
                  !strstr(r.repo, "..") && r.domain[0];
        for (const char *p = r.repo; *p; p++)
                ok = ok && path_char_ok(*p);
        for (const char *p = r.tag; p && *p; p++)
                ok = ok && (path_char_ok(*p) || (*p >= 'A' && *p <= 'Z')) && *p != '/';
        if (r.tag && (!r.tag[0] || strlen(r.tag) > 128))
                ok = false;
        if (r.digest && (strncmp(r.digest, "sha256:", 7) != 0 || strlen(r.digest) != 71 ||
                         strspn(r.digest + 7, "0123456789abcdef") != 64))
                ok = false;
        for (const char *p = r.domain; *p; p++)
                ok = ok && (path_char_ok(*p) || *p == ':' || (*p >= 'A' && *p <= 'Z')) && *p != '/';
        if (!ok) {
                tr__reg_ref_done(&r);
                tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP,
                             "invalid image reference '%s' (expected [registry/]name[:tag][@sha256:...])", s);
                return -EINVAL;
        }
        int n;
        if (r.tag && r.digest)
                n = asprintf(&r.name, "%s/%s:%s@%s", r.domain, r.repo, r.tag, r.digest);
        else if (r.tag)
                n = asprintf(&r.name, "%s/%s:%s", r.domain, r.repo, r.tag);
        else
                n = asprintf(&r.name, "%s/%s@%s", r.domain, r.repo, r.digest);
        if (n < 0) {
                r.name = NULL;
                goto nomem;
        }
        *ret = r;
        return 0;
nomem:
        tr__reg_ref_done(&r);
        return oom(ret_err);
}

static char *b64_decode(const char *in) {
        size_t n = strlen(in);
        char *out = malloc(BASE64_DECODE_LENGTH(n) + 1);
        if (!out)
                return NULL;
        struct base64_decode_ctx ctx;
        size_t len = BASE64_DECODE_LENGTH(n);
        base64_decode_init(&ctx);
        if (!base64_decode_update(&ctx, &len, (uint8_t *) out, n, in) || !base64_decode_final(&ctx) ||
            memchr(out, '\0', len)) {
                free(out);
                return NULL;
        }
        out[len] = '\0';
        return out;
}

static char *b64_encode(const char *in) {
        size_t n = strlen(in);
        char *out = malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
        if (!out)
                return NULL;
        base64_encode_raw(out, n, (const uint8_t *) in);
        out[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
        return out;
}

int tr__reg_config_lookup(const char *json, size_t len, const char *domain, char **ret_userpass) {
        _cleanup_(json_decrefp) json_t *root = json_loadb(json, len, 0, NULL);
        json_t *auths = json_object_get(root, "auths");
        json_t *e = json_object_get(auths, domain);
        /* docker login stores Docker Hub under its v1 URL. */
        if (!e && streq(domain, "docker.io"))
                e = json_object_get(auths, "https://index.docker.io/v1/");
        if (!json_is_object(e))
                return -ENOENT;
        const char *a = json_string_value(json_object_get(e, "auth"));
        if (a && *a) {
                char *up = b64_decode(a);
                if (!up || !strchr(up, ':')) {
                        free(up);
                        return -EBADMSG;
                }
                *ret_userpass = up;
                return 0;
        }
        const char *u = json_string_value(json_object_get(e, "username"));
        const char *p = json_string_value(json_object_get(e, "password"));
        if (!u || !p)
                return -ENOENT;
        return asprintf(ret_userpass, "%s:%s", u, p) < 0 ? -ENOMEM : 0;
}

static int load_credentials(tr__reg *r, tr_error **ret_err) {
        _cleanup_free_ char *path = NULL;
        if (r->opts.config_path)
                path = strdup(r->opts.config_path);
        else if (getenv("DOCKER_CONFIG")) {
                if (asprintf(&path, "%s/config.json", getenv("DOCKER_CONFIG")) < 0)
                        path = NULL;
        } else if (getenv("HOME")) {
                if (asprintf(&path, "%s/.docker/config.json", getenv("HOME")) < 0)
                        path = NULL;
        } else
                return 0;
        if (!path)
                return oom(ret_err);
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *root = json_load_file(path, 0, &jerr);
        if (!root) {
                /* A missing default file means "no credentials"; a named one must exist. */
                if (!r->opts.config_path && access(path, F_OK) < 0)
                        return 0;
                tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP,
                             "cannot read registry config %s: %s", path, jerr.text);
                return -EINVAL;
        }
        _cleanup_free_ char *text = json_dumps(root, JSON_COMPACT);
        if (!text)
                return oom(ret_err);
        int k = tr__reg_config_lookup(text, strlen(text), r->ref->domain, &r->userpass);
        if (k == -EBADMSG) {
                tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP,
                             "registry config %s: malformed \"auth\" for %s", path, r->ref->domain);
                return k;
        }
        return k == -ENOMEM ? oom(ret_err) : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

int tr__reg_open(const tr__reg_ref *ref, const tr__reg_opts *opts, tr__reg **ret, tr_error **ret_err) {
        pthread_once(&curl_once, curl_init_once);
        tr__reg *r = calloc(1, sizeof *r);
        if (!r)
                return oom(ret_err);
        r->ref = ref;
        r->opts = *opts;
        for (const char *const *p = opts->insecure; p && *p; p++)
                if (streq(*p, ref->domain))
                        r->plain_http = true;
        r->curl = curl_easy_init();
        if (!r->curl) {
                tr__reg_free(r);
                if (!tr__curl_available())
                        return tr_error_set(ret_err, TR_E_RUNTIME_UNAVAILABLE, TR_BACKEND_CONTAINERD, OP,
                                            "pulling an image needs libcurl (" TR_CURL_SONAME
                                            "): apt-get install libcurl4"),
                               -ENOENT;
                return oom(ret_err);
        }
        int k = load_credentials(r, ret_err);
        if (k < 0) {
                tr__reg_free(r);
                return k;
        }
        *ret = r;
        return 0;
}

void tr__reg_free(tr__reg *r) {
        if (!r)
                return;
        if (r->curl)
                curl_easy_cleanup(r->curl);
        if (r->userpass)
                explicit_bzero(r->userpass, strlen(r->userpass));
        free(r->userpass);
        free(r->auth);
        free(r);
}

typedef struct xfer {
        tr__reg *reg;
        const char *what;
        char *data;
        size_t len, cap, max;
        bool too_big;
        char *content_type;
        char *challenge;
} xfer;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
        xfer *x = ud;
        size_t k = sz * n;
        if (x->len + k > x->max) {
                x->too_big = true;
                return 0; /* aborts the transfer */
        }
        if (x->len + k + 1 > x->cap) {
                size_t nc = x->cap ? x->cap : 65536;
                while (nc < x->len + k + 1)
                        nc *= 2;
                if (nc > x->max + 1)
                        nc = x->max + 1;
                char *d = realloc(x->data, nc);
                if (!d)
                        return 0;
                x->data = d;
                x->cap = nc;
        }
        memcpy(x->data + x->len, p, k);
        x->len += k;
        x->data[x->len] = '\0';
        return k;
}

static char *header_value(const char *line, size_t len, const char *name) {
        size_t nl = strlen(name);
        if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
                return NULL;
        const char *v = line + nl + 1;
        const char *end = line + len;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
        return strndup(v, (size_t) (end - v));
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
        xfer *x = ud;
        size_t k = sz * n;
        /* A new response (after a redirect) starts over. */
        if (k > 5 && strncmp(p, "HTTP/", 5) == 0) {
                free(x->content_type);
                free(x->challenge);
                x->content_type = x->challenge = NULL;
        }
        char *v;
        if ((v = header_value(p, k, "content-type"))) {
                free(x->content_type);
                x->content_type = v;
        } else if ((v = header_value(p, k, "www-authenticate"))) {
                free(x->challenge);
                x->challenge = v;
        }
        return k;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        xfer *x = ud;
        if (x->reg->opts.progress && x->what)
                x->reg->opts.progress(x->reg->opts.progress_userdata, x->what, (int64_t) dlnow, (int64_t) dltotal);
        return 0;
}

/* One GET of `url`; *ret_status is the HTTP status. */
static int get(tr__reg *r, const char *url, const char *accept, const char *auth, xfer *x, long *ret_status,
               tr_error **ret_err) {
        CURL *c = r->curl;
        curl_easy_reset(c);
        struct curl_slist *h = NULL;
        if (accept)
                h = curl_slist_append(h, accept);
        if (auth)
                h = curl_slist_append(h, auth);
        const char *proto = r->plain_http ? "http,https" : "https";
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, proto);
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, proto);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "toolruntime/" TR_VERSION_STRING);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
        /* A registry that stops sending mid-blob: give up after 30 s of < 1 byte/s. */
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
        if (r->opts.deadline_ns > 0) {
                int64_t ms = (r->opts.deadline_ns - tr__now_ns()) / 1000000;
                curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) (ms > 1 ? ms : 1));
        }
        CURLcode cc = curl_easy_perform(c);
        curl_slist_free_all(h);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_status);
        if (x->too_big) {
                tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, TR_BACKEND_CONTAINERD, OP,
                             "%s is larger than the limit of %zu bytes", url, x->max);
                return -EFBIG;
        }
        if (cc != CURLE_OK) {
                tr_error_set(ret_err, cc == CURLE_OPERATION_TIMEDOUT ? TR_E_TIMEOUT : TR_E_DAEMON_UNAVAILABLE,
                             TR_BACKEND_CONTAINERD, OP, "registry %s: %s (%s)", r->ref->domain, curl_easy_strerror(cc),
                             url);
                if (ret_err && *ret_err)
                        tr_error_set_retryable(*ret_err, true);
                return cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        }
        return 0;
}

/* The value of `key="..."` in a challenge (owned), or NULL. */
static char *challenge_param(const char *ch, const char *key) {
        size_t kl = strlen(key);
        for (const char *p = ch; (p = strcasestr(p, key)); p += kl) {
                if ((p != ch && p[-1] != ' ' && p[-1] != ',') || p[kl] != '=' || p[kl + 1] != '"')
                        continue;
                const char *v = p + kl + 2, *e = strchr(v, '"');
                return e ? strndup(v, (size_t) (e - v)) : NULL;
        }
        return NULL;
}

static void xfer_done(xfer *x) {
        free(x->data);
        free(x->content_type);
        free(x->challenge);
        *x = (xfer){ 0 };
}

static int denied(tr__reg *r, tr_error **ret_err) {
        tr_error_set(ret_err, TR_E_BACKEND_DENIED, TR_BACKEND_CONTAINERD, OP,
                     "registry %s refused the credentials%s (check --registry-config / ~/.docker/config.json)",
                     r->ref->domain, r->userpass ? "" : " (none configured)");
        return -EACCES;
}

/* Answer a 401's challenge: sets r->auth. */
static int authenticate(tr__reg *r, const char *challenge, tr_error **ret_err) {
        if (!challenge)
                return denied(r, ret_err);
        _cleanup_free_ char *basic = r->userpass ? b64_encode(r->userpass) : NULL;
        if (r->userpass && !basic)
                return oom(ret_err);
        if (strncasecmp(challenge, "Basic", 5) == 0) {
                if (!basic)
                        return denied(r, ret_err);
                free(r->auth);
                return asprintf(&r->auth, "Authorization: Basic %s", basic) < 0 ? (r->auth = NULL, oom(ret_err)) : 0;
        }
        if (strncasecmp(challenge, "Bearer", 6) != 0)
                return denied(r, ret_err);
        _cleanup_free_ char *realm = challenge_param(challenge, "realm");
        _cleanup_free_ char *service = challenge_param(challenge, "service");
        if (!realm || strncmp(realm, r->plain_http ? "http" : "https://", r->plain_http ? 4 : 8) != 0)
                return denied(r, ret_err);
        char *es = service ? curl_easy_escape(r->curl, service, 0) : NULL;
        _cleanup_free_ char *scope = NULL, *url = NULL;
        if (asprintf(&scope, "repository:%s:pull", r->ref->repo) < 0)
                scope = NULL;
        char *esc = scope ? curl_easy_escape(r->curl, scope, 0) : NULL;
        int n = asprintf(&url, "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?", es ? es : "",
                         esc ? esc : "");
        curl_free(es);
        curl_free(esc);
        if (n < 0 || !scope)
                return url = NULL, oom(ret_err);
        _cleanup_free_ char *hdr = NULL;
        if (basic && asprintf(&hdr, "Authorization: Basic %s", basic) < 0)
                return hdr = NULL, oom(ret_err);
        xfer x = { .reg = r, .max = MAX_SMALL };
        long status = 0;
        int k = get(r, url, NULL, hdr, &x, &status, ret_err);
        if (k < 0) {
                xfer_done(&x);
                return k;
        }
        if (status != 200) {
                xfer_done(&x);
                return denied(r, ret_err);
        }
        _cleanup_(json_decrefp) json_t *root = json_loadb(x.data ? x.data : "", x.len, 0, NULL);
        xfer_done(&x);
        const char *tok = json_string_value(json_object_get(root, "token"));
        if (!tok)
                tok = json_string_value(json_object_get(root, "access_token"));
        if (!tok || strpbrk(tok, "\r\n"))
                return denied(r, ret_err);
        free(r->auth);
        return asprintf(&r->auth, "Authorization: Bearer %s", tok) < 0 ? (r->auth = NULL, oom(ret_err)) : 0;
}

#define ACCEPT_MANIFESTS                                              \
        "Accept: application/vnd.oci.image.index.v1+json, "           \
        "application/vnd.docker.distribution.manifest.list.v2+json, " \
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

int tr__reg_get(tr__reg *r, const char *kind, const char *ref, size_t max, char **ret_data, size_t *ret_len,
                char **ret_media_type, tr_error **ret_err) {
        /* Docker Hub's API lives on another host than its name. */
        const char *host = streq(r->ref->domain, "docker.io") ? "registry-1.docker.io" : r->ref->domain;
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "%s://%s/v2/%s/%s/%s", r->plain_http ? "http" : "https", host, r->ref->repo, kind, ref) < 0)
                return url = NULL, oom(ret_err);
        bool manifest = streq(kind, "manifests");
        for (int attempt = 0;; attempt++) {
                xfer x = { .reg = r, .max = max, .what = manifest ? NULL : ref };
                long status = 0;
                int k = get(r, url, manifest ? ACCEPT_MANIFESTS : NULL, r->auth, &x, &status, ret_err);
                if (k < 0) {
                        xfer_done(&x);
                        return k;
                }
                if (status == 401 && attempt == 0) {
                        k = authenticate(r, x.challenge, ret_err);
                        xfer_done(&x);
                        if (k < 0)
                                return k;
                        continue;
                }
                if (status == 401 || status == 403) {
                        xfer_done(&x);
                        return denied(r, ret_err);
                }
                if (status == 404) {
                        xfer_done(&x);
                        tr_error_set(ret_err, TR_E_IMAGE_NOT_FOUND, TR_BACKEND_CONTAINERD, OP,
                                     "%s %s not found in %s/%s", manifest ? "manifest" : "blob", ref, r->ref->domain,
                                     r->ref->repo);
                        return -ENOENT;
                }
                if (status != 200) {
                        xfer_done(&x);
                        tr_error_set(ret_err, TR_E_DAEMON_UNAVAILABLE, TR_BACKEND_CONTAINERD, OP,
                                     "registry %s answered HTTP %ld for %s", r->ref->domain, status, url);
                        return -EIO;
                }
                *ret_data = x.data ? x.data : strdup("");
                *ret_len = x.len;
                x.data = NULL;
                if (ret_media_type) {
                        *ret_media_type = x.content_type;
                        x.content_type = NULL;
                }
                xfer_done(&x);
                return *ret_data ? 0 : oom(ret_err);
        }
}
