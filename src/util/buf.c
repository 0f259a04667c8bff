/* SPDX-License-Identifier: Apache-2.0 */
#include "util/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/macros.h"

void tr__cbuf_init(tr__cbuf *b, size_t limit) {
        *b = (tr__cbuf){ .limit = limit };
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
        if (take < n)
                b->truncated = true;
        return 0;
}

char *tr__cbuf_steal(tr__cbuf *b, size_t *ret_len) {
        char *d = b->data ? TAKE_PTR(b->data) : strdup("");
        *ret_len = d ? b->len : 0;
        b->len = b->alloc = 0;
        return d;
}

void tr__cbuf_done(tr__cbuf *b) {
        free(b->data);
        *b = (tr__cbuf){ 0 };
}
