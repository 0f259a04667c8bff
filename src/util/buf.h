/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A capped byte buffer (curl's dynbuf with its `toobig` limit): everything
 * untrusted code writes lands in one of these, so a flood costs the host at
 * most `limit` bytes; `total` counts what was dropped too.  (The value line
 * of a snippet is taken out of stdout before it reaches one: core/exec.c.)
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tr__cbuf {
        char *data; /* head: the first `limit` bytes, NUL-terminated */
        size_t len;
        size_t alloc;
        size_t limit;
        bool truncated;
        uint64_t total; /* every byte ever appended */
} tr__cbuf;

void tr__cbuf_init(tr__cbuf *b, size_t limit);
/* Append; bytes past the cap are counted and dropped.  Returns -ENOMEM only
 * when the head could not grow (then the stream is marked truncated). */
int tr__cbuf_append(tr__cbuf *b, const void *p, size_t n);
/* Hand the head over (NUL-terminated; never NULL unless out of memory). */
char *tr__cbuf_steal(tr__cbuf *b, size_t *ret_len);
void tr__cbuf_done(tr__cbuf *b);
