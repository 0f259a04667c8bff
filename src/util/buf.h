/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A capped byte buffer (curl's dynbuf with its `toobig` limit): everything
 * untrusted code writes lands in one of these, so a flood costs the host at
 * most `limit` bytes plus a fixed tail window.  The tail window keeps the
 * last bytes of the stream past the cap, because the `__out` protocol puts
 * the value on the *last* line and a snippet that prints a lot must still be
 * able to return one.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of the stream's end kept after the cap was reached. */
#define TR_CBUF_TAIL (256 * 1024)

typedef struct tr__cbuf {
        char *data; /* head: the first `limit` bytes, NUL-terminated */
        size_t len;
        size_t alloc;
        size_t limit;
        bool truncated;
        char *tail;      /* ring of the last TR_CBUF_TAIL bytes past the cap */
        size_t tail_len; /* bytes valid in the ring (<= TR_CBUF_TAIL) */
        size_t tail_pos; /* next write position in the ring */
        uint64_t total;  /* every byte ever appended */
} tr__cbuf;

void tr__cbuf_init(tr__cbuf *b, size_t limit);
/* Append; bytes past the cap go to the tail ring.  Returns -ENOMEM only when
 * even the head could not grow (then the stream is marked truncated). */
int tr__cbuf_append(tr__cbuf *b, const void *p, size_t n);
/* The bytes past the cap, oldest first, as a new malloc()ed buffer. */
char *tr__cbuf_tail_linear(const tr__cbuf *b, size_t *ret_len);
/* Hand the head over (NUL-terminated; never NULL unless out of memory). */
char *tr__cbuf_steal(tr__cbuf *b, size_t *ret_len);
void tr__cbuf_done(tr__cbuf *b);
