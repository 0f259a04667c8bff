/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libcurl, loaded on first use.  Include this instead of <curl/curl.h>; the
 * calls keep curl's names.
 *
 * Why not link it: libcurl's dependency tree (OpenSSL, GnuTLS, Kerberos,
 * LDAP, libssh2, librtmp, ...) costs about 6 ms at every process start
 * (measured on the 2-core machine: a program linking only libcurl starts in
 * 7.2 ms, one linking nothing in 0.9 ms), and only image pulls and the
 * CLI's HTTP client use it: loaded with dlopen() then, it stays off every
 * execution's start-up.  Header-only (its state is static per translation
 * unit; the library is loaded once by the dynamic linker whatever the
 * count), so that the CLI, which links only the public library, uses the
 * same code.
 *
 * When libcurl cannot be loaded (the libcurl4 package is missing), every
 * call fails as curl's own do on error (curl_easy_init() NULL, the others
 * CURLE_FAILED_INIT or NULL, the void ones nothing), which callers already
 * handle; tr__curl_available() says which it was.
 */
#ifndef TR_UTIL_CURL_LAZY_H
#define TR_UTIL_CURL_LAZY_H

/* curl.h's type-checking macros would wrap the names redefined below. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>

#include "util/lazylib.h"

#define TR_CURL_SONAME "libcurl.so.4"

struct tr__curl_api {
        CURLcode (*global_init)(long);
        CURL *(*easy_init)(void);
        CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
        CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
        CURLcode (*easy_perform)(CURL *);
        void (*easy_cleanup)(CURL *);
        void (*easy_reset)(CURL *);
        const char *(*easy_strerror)(CURLcode);
        char *(*easy_escape)(CURL *, const char *, int);
        void (*free)(void *);
        struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
        void (*slist_free_all)(struct curl_slist *);
};

static struct tr__curl_api tr__curl_fn;
static bool tr__curl_loaded;
static pthread_once_t tr__curl_once = PTHREAD_ONCE_INIT;

static inline void tr__curl_load(void) {
        const tr__lazy_sym syms[] = {
                { (void **) &tr__curl_fn.global_init, "curl_global_init" },
                { (void **) &tr__curl_fn.easy_init, "curl_easy_init" },
                { (void **) &tr__curl_fn.easy_setopt, "curl_easy_setopt" },
                { (void **) &tr__curl_fn.easy_getinfo, "curl_easy_getinfo" },
                { (void **) &tr__curl_fn.easy_perform, "curl_easy_perform" },
                { (void **) &tr__curl_fn.easy_cleanup, "curl_easy_cleanup" },
                { (void **) &tr__curl_fn.easy_reset, "curl_easy_reset" },
                { (void **) &tr__curl_fn.easy_strerror, "curl_easy_strerror" },
                { (void **) &tr__curl_fn.easy_escape, "curl_easy_escape" },
                { (void **) &tr__curl_fn.free, "curl_free" },
                { (void **) &tr__curl_fn.slist_append, "curl_slist_append" },
                { (void **) &tr__curl_fn.slist_free_all, "curl_slist_free_all" },
        };
        tr__curl_loaded = tr__lazy_load(TR_CURL_SONAME, syms, sizeof(syms) / sizeof(syms[0]));
}

/* Loads libcurl the first time (thread-safe); false when it cannot be. */
static inline bool tr__curl_available(void) {
        (void) pthread_once(&tr__curl_once, tr__curl_load);
        return tr__curl_loaded;
}

/* Every call goes through tr__curl_available() (after the first, an
 * atomic load): the state is per translation unit, and a unit's first call
 * need not be curl_easy_init(). */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define TR__CURL(fn, fail, ...)    (tr__curl_available() ? tr__curl_fn.fn(__VA_ARGS__) : (fail))
#define curl_global_init(f)        TR__CURL(global_init, CURLE_FAILED_INIT, f)
#define curl_easy_init()           (tr__curl_available() ? tr__curl_fn.easy_init() : NULL)
#define curl_easy_escape(c, s, n)  TR__CURL(easy_escape, NULL, c, s, n)
#define curl_slist_append(l, s)    TR__CURL(slist_append, NULL, l, s)
#define curl_easy_setopt(c, o, v)  TR__CURL(easy_setopt, CURLE_FAILED_INIT, c, o, v)
#define curl_easy_getinfo(c, i, v) TR__CURL(easy_getinfo, CURLE_FAILED_INIT, c, i, v)
#define curl_easy_perform(c)       TR__CURL(easy_perform, CURLE_FAILED_INIT, c)
#define curl_easy_cleanup(c)       TR__CURL(easy_cleanup, (void) 0, c)
#define curl_easy_reset(c)         TR__CURL(easy_reset, (void) 0, c)
#define curl_easy_strerror(e)      TR__CURL(easy_strerror, "libcurl is not loaded", e)
/* NULL-safe, as curl's own are. */
#define curl_free(p)           ((p) && tr__curl_available() ? tr__curl_fn.free(p) : (void) 0)
#define curl_slist_free_all(l) ((l) && tr__curl_available() ? tr__curl_fn.slist_free_all(l) : (void) 0)

#endif
