/* SPDX-License-Identifier: Apache-2.0 */
/* NULL-terminated string vectors (argv/envp) with owned elements. */
#pragma once

#include <stddef.h>

#include "util/macros.h"

/* Append a copy of `s`; returns -ENOMEM and leaves *v intact on failure. */
int tr__strv_push(char ***v, const char *s);
/* Append "KEY=VALUE". */
int tr__strv_pushf(char ***v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t tr__strv_len(char *const *v);
void tr__strv_free(char **v);
static inline void tr__strv_freep(char ***v) {
        tr__strv_free(*v);
}
#define _cleanup_strv_ _cleanup_(tr__strv_freep)
