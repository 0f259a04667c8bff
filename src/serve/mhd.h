/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libmicrohttpd, loaded when `serve` starts.  Include this instead of
 * <microhttpd.h>; the calls keep MHD's names.
 *
 * Why not link it: the service lives in the CLI binary, and libmicrohttpd
 * brings GnuTLS and its dependencies, whose loading and constructors cost
 * about 2 ms at the start of every command (measured on the 2-core machine:
 * a program linking only libmicrohttpd starts in 3.1 ms, one linking
 * nothing in 0.9 ms), a one-shot `exec` included.  Every call checks that
 * the library is loaded (after the first, an atomic load: the state is per
 * translation unit) and fails as MHD's own do when it cannot be (NULL, MHD_NO,
 * MHD_INVALID_SOCKET, nothing); tr__mhd_available() says which it was.
 */
#ifndef TR_SERVE_MHD_H
#define TR_SERVE_MHD_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>

#include "util/lazylib.h"

#define TR_MHD_SONAME "libmicrohttpd.so.12"

struct tr__mhd_api {
        struct MHD_Daemon *(*start_daemon)(unsigned int, uint16_t, MHD_AcceptPolicyCallback, void *,
                                           MHD_AccessHandlerCallback, void *, ...);
        void (*stop_daemon)(struct MHD_Daemon *);
        MHD_socket (*quiesce_daemon)(struct MHD_Daemon *);
        const char *(*lookup_connection_value)(struct MHD_Connection *, enum MHD_ValueKind, const char *);
        enum MHD_Result (*add_response_header)(struct MHD_Response *, const char *, const char *);
        const union MHD_ConnectionInfo *(*get_connection_info)(struct MHD_Connection *, enum MHD_ConnectionInfoType,
                                                               ...);
        enum MHD_Result (*queue_response)(struct MHD_Connection *, unsigned int, struct MHD_Response *);
        void (*destroy_response)(struct MHD_Response *);
        struct MHD_Response *(*create_response_from_callback)(uint64_t, size_t, MHD_ContentReaderCallback, void *,
                                                              MHD_ContentReaderFreeCallback);
        struct MHD_Response *(*create_response_from_buffer)(size_t, void *, enum MHD_ResponseMemoryMode);
};

static struct tr__mhd_api tr__mhd_fn;
static bool tr__mhd_loaded;
static pthread_once_t tr__mhd_once = PTHREAD_ONCE_INIT;

static inline void tr__mhd_load(void) {
        const tr__lazy_sym syms[] = {
                { (void **) &tr__mhd_fn.start_daemon, "MHD_start_daemon" },
                { (void **) &tr__mhd_fn.stop_daemon, "MHD_stop_daemon" },
                { (void **) &tr__mhd_fn.quiesce_daemon, "MHD_quiesce_daemon" },
                { (void **) &tr__mhd_fn.lookup_connection_value, "MHD_lookup_connection_value" },
                { (void **) &tr__mhd_fn.add_response_header, "MHD_add_response_header" },
                { (void **) &tr__mhd_fn.get_connection_info, "MHD_get_connection_info" },
                { (void **) &tr__mhd_fn.queue_response, "MHD_queue_response" },
                { (void **) &tr__mhd_fn.destroy_response, "MHD_destroy_response" },
                { (void **) &tr__mhd_fn.create_response_from_callback, "MHD_create_response_from_callback" },
                { (void **) &tr__mhd_fn.create_response_from_buffer, "MHD_create_response_from_buffer" },
        };
        tr__mhd_loaded = tr__lazy_load(TR_MHD_SONAME, syms, sizeof(syms) / sizeof(syms[0]));
}

/* Loads libmicrohttpd the first time (thread-safe); false when it cannot be. */
static inline bool tr__mhd_available(void) {
        (void) pthread_once(&tr__mhd_once, tr__mhd_load);
        return tr__mhd_loaded;
}

#define TR__MHD(fn, fail, ...)                 (tr__mhd_available() ? tr__mhd_fn.fn(__VA_ARGS__) : (fail))
#define MHD_start_daemon(...)                  TR__MHD(start_daemon, NULL, __VA_ARGS__)
#define MHD_stop_daemon(d)                     TR__MHD(stop_daemon, (void) 0, d)
#define MHD_quiesce_daemon(d)                  TR__MHD(quiesce_daemon, MHD_INVALID_SOCKET, d)
#define MHD_lookup_connection_value(c, k, n)   TR__MHD(lookup_connection_value, NULL, c, k, n)
#define MHD_add_response_header(r, h, v)       TR__MHD(add_response_header, MHD_NO, r, h, v)
#define MHD_get_connection_info(...)           TR__MHD(get_connection_info, NULL, __VA_ARGS__)
#define MHD_queue_response(c, s, r)            TR__MHD(queue_response, MHD_NO, c, s, r)
#define MHD_destroy_response(r)                TR__MHD(destroy_response, (void) 0, r)
#define MHD_create_response_from_callback(...) TR__MHD(create_response_from_callback, NULL, __VA_ARGS__)
#define MHD_create_response_from_buffer(...)   TR__MHD(create_response_from_buffer, NULL, __VA_ARGS__)

#endif
