/* SPDX-License-Identifier: Apache-2.0 */
#include "util/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/macros.h"

void tr__cbuf_init(tr__cbuf *b, size_t limit) {
        *b = (tr__cbuf){ .limit = limit };
}

static void tail_push(tr__cbuf *b, const char *p, size_t n) {
        if (!b->tail) {
                b->tail = malloc(TR_CBUF_TAIL);
                if (!b->tail)
                        return; /* best effort: only the __out value of a flood is lost */
        }
        if (n >= TR_CBUF_TAIL) {
                memcpy(b->tail, p + n - TR_CBUF_TAIL, TR_CBUF_TAIL);
                b->tail_pos = 0;
                b->tail_len = TR_CBUF_TAIL;
                return;
        }
        size_t first = TR_CBUF_TAIL - b->tail_pos;
        if (first > n)
                first = n;
        memcpy(b->tail + b->tail_pos, p, first);
        memcpy(b->tail, p + first, n - first);
        b->tail_pos = (b->tail_pos + n) % TR_CBUF_TAIL;
        b->tail_len = b->tail_len + n > TR_CBUF_TAIL ? TR_CBUF_TAIL : b->tail_len + n;
}

int tr__cbuf_append(tr__cbuf *b, const void *p, size_t n) {
        const char *s = p;
        b->total += n;
        size_t room = b->limit > b->len ? b->limit - b->len : 0;
        size_t take = n < room ? n : room;
        if (take > 0) {
                if (b->len + take + 1 > b->alloc) {
                        size_t want = b->alloc ? b->alloc : 4096;
                        while (want < b->len + take + 1)
                                want *= 2;
                        if (want > b->limit + 1)
                                want = b->limit + 1;
                        char *d = realloc(b->data, want);
                        if (!d) {
                                b->truncated = true;
                                return -ENOMEM;
                        }
                        b->data = d;
                        b->alloc = want;
                }
                memcpy(b->data + b->len, s, take);
                b->len += take;
                b->data[b->len] = '\0';
        }
        if (take < n) {
                b->truncated = true;
                tail_push(b, s + take, n - take);
        }
        return 0;
}

char *tr__cbuf_tail_linear(const tr__cbuf *b, size_t *ret_len) {
        char *out = malloc(b->tail_len + 1);
        if (!out)
                return NULL;
        if (b->tail_len < TR_CBUF_TAIL) {
                memcpy(out, b->tail, b->tail_len);
        } else {
                size_t first = TR_CBUF_TAIL - b->tail_pos;
                memcpy(out, b->tail + b->tail_pos, first);
                memcpy(out + first, b->tail, b->tail_pos);
        }
        out[b->tail_len] = '\0';
        *ret_len = b->tail_len;
        return out;
}

char *tr__cbuf_steal(tr__cbuf *b, size_t *ret_len) {
        char *d = b->data ? TAKE_PTR(b->data) : strdup("");
        *ret_len = d ? b->len : 0;
        b->len = b->alloc = 0;
        return d;
}

void tr__cbuf_done(tr__cbuf *b) {
        free(b->data);
        free(b->tail);
        *b = (tr__cbuf){ 0 };
}
