/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A shared library loaded on first use: dlopen() by soname, then every
 * symbol of a table, all or nothing.  For the libraries only some commands
 * need and whose dependency trees cost milliseconds at every process start
 * (libcurl: util/curl_lazy.h; libmicrohttpd: serve/mhd.h).  Header-only, so
 * that the CLI, which links only the public library, can use it.
 */
#ifndef TR_UTIL_LAZYLIB_H
#define TR_UTIL_LAZYLIB_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct tr__lazy_sym {
        void **slot; /* where the symbol's address goes */
        const char *name;
} tr__lazy_sym;

/* True when `soname` loaded and every symbol was found.  The library stays
 * loaded for the process's life (never dlclose()d: the dependency trees
 * these bring do not support unloading well). */
static inline bool tr__lazy_load(const char *soname, const tr__lazy_sym *syms, size_t n) {
        void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
        if (!h)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(*syms[i].slot = dlsym(h, syms[i].name)))
                        return false;
        return true;
}

#endif
