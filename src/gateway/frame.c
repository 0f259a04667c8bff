/* SPDX-License-Identifier: Apache-2.0 */
/* The length-prefixed frame codec (see frame.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/frame.h"

void tr__frame_reader_init(tr__frame_reader *r, size_t max) {
        *r = (tr__frame_reader){ .max = max ? max : TR_FRAME_MAX };
}

void tr__frame_reader_done(tr__frame_reader *r) {
        free(r->buf);
        *r = (tr__frame_reader){ 0 };
}

/* Drop the bytes of frames already handed out.  Done lazily, right before
 * more room is needed, so that a burst of small frames costs one memmove. */
static void compact(tr__frame_reader *r) {
        if (r->start == 0)
                return;
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
}

uint8_t *tr__frame_reader_space(tr__frame_reader *r, size_t want, size_t *ret_avail) {
        compact(r);
        /* Never hold more than one maximal frame: a peer can make us buffer
         * at most what one frame within the cap needs.  The caller drains
         * complete frames before asking for room, so reaching `hard` with no
         * complete frame is impossible. */
        size_t hard = r->max + TR_FRAME_HEADER;
        if (r->len >= hard) {
                *ret_avail = 0;
                return r->buf;
        }
        size_t need = want > hard - r->len ? hard : r->len + want;
        if (need > r->alloc) {
                size_t a = r->alloc ? r->alloc : 4096;
                while (a < need)
                        a *= 2;
                if (a > hard)
                        a = hard;
                uint8_t *nb = realloc(r->buf, a);
                if (!nb)
                        return NULL;
                r->buf = nb;
                r->alloc = a;
        }
        *ret_avail = r->alloc - r->len;
        return r->buf + r->len;
}

void tr__frame_reader_commit(tr__frame_reader *r, size_t n) {
        r->len += n;
}

ssize_t tr__frame_reader_feed(tr__frame_reader *r, const void *data, size_t n) {
        size_t avail = 0;
        uint8_t *p = tr__frame_reader_space(r, n, &avail);
        if (!p)
                return -ENOMEM;
        size_t k = n < avail ? n : avail;
        if (k)
                memcpy(p, data, k);
        tr__frame_reader_commit(r, k);
        return (ssize_t) k;
}

int tr__frame_reader_next(tr__frame_reader *r, const uint8_t **ret_payload, size_t *ret_len) {
        size_t have = r->len - r->start;
        if (have < TR_FRAME_HEADER)
                return 0;
        uint32_t len = tr__frame_get_header(r->buf + r->start);
        if (len > r->max)
                return -EMSGSIZE;
        if (have - TR_FRAME_HEADER < len)
                return 0;
        *ret_payload = r->buf + r->start + TR_FRAME_HEADER;
        *ret_len = len;
        r->start += TR_FRAME_HEADER + (size_t) len;
        if (r->start == r->len)
                r->start = r->len = 0;
        return 1;
}

int tr__frame_encode(const void *payload, size_t len, uint8_t **ret_frame, size_t *ret_len) {
        if (len > TR_FRAME_MAX)
                return -EMSGSIZE;
        uint8_t *f = malloc(TR_FRAME_HEADER + len);
        if (!f)
                return -ENOMEM;
        tr__frame_put_header(f, (uint32_t) len);
        if (len)
                memcpy(f + TR_FRAME_HEADER, payload, len);
        *ret_frame = f;
        *ret_len = TR_FRAME_HEADER + len;
        return 0;
}
