/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM channel codec (see frame.h).  libc only: the guest agent links this
 * file too.
 */
#include "util/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

void tr__vf_reader_init(tr__vf_reader *r, size_t max) {
        memset(r, 0, sizeof(*r));
        r->max = (max == 0 || max > TR_VF_MAX_PAYLOAD) ? TR_VF_MAX_PAYLOAD : max;
}

void tr__vf_reader_done(tr__vf_reader *r) {
        if (!r)
                return;
        free(r->buf);
        memset(r, 0, sizeof(*r));
}

size_t tr__vf_reader_pending(const tr__vf_reader *r) {
        return r->len - r->start;
}

int tr__vf_header(uint8_t hdr[TR_VF_HEADER], uint8_t type, size_t len) {
        if (type == 0 || type >= TR__VF_TYPE_MAX)
                return -EINVAL;
        if (len > TR_VF_MAX_PAYLOAD)
                return -EMSGSIZE;
        hdr[0] = TR_VF_MAGIC0;
        hdr[1] = TR_VF_MAGIC1;
        hdr[2] = type;
        hdr[3] = 0;
        tr__vf_put_u32(hdr + 4, (uint32_t) len);
        return 0;
}

int tr__vf_parse_header(const uint8_t hdr[TR_VF_HEADER], size_t max, uint8_t *ret_type, uint32_t *ret_len) {
        if (hdr[0] != TR_VF_MAGIC0 || hdr[1] != TR_VF_MAGIC1 || hdr[2] == 0 || hdr[2] >= TR__VF_TYPE_MAX || hdr[3] != 0)
                return -EBADMSG;
        uint32_t len = tr__vf_get_u32(hdr + 4);
        if (len > max)
                return -EMSGSIZE;
        *ret_type = hdr[2];
        *ret_len = len;
        return 0;
}

/* Make room for `want` more bytes, never growing past one maximal frame:
 * that is the whole memory a peer can make us spend. */
static int reserve(tr__vf_reader *r, size_t want, size_t *ret_avail) {
        size_t cap = TR_VF_HEADER + r->max;
        if (r->start > 0 && (r->start == r->len || r->alloc - r->len < want)) {
                memmove(r->buf, r->buf + r->start, r->len - r->start);
                r->len -= r->start;
                r->start = 0;
        }
        if (r->alloc - r->len < want && r->alloc < cap) {
                size_t n = r->alloc ? r->alloc : 4096;
                while (n - r->len < want && n < cap)
                        n *= 2;
                if (n > cap)
                        n = cap;
                uint8_t *p = realloc(r->buf, n);
                if (!p)
                        return -ENOMEM;
                r->buf = p;
                r->alloc = n;
        }
        *ret_avail = r->alloc - r->len;
        return 0;
}

ssize_t tr__vf_reader_read_fd(tr__vf_reader *r, int fd) {
        size_t avail;
        int k = reserve(r, 64 * 1024, &avail);
        if (k < 0)
                return k;
        if (avail == 0)
                return -ENOBUFS; /* a full frame is buffered: take it out first */
        for (;;) {
                ssize_t n = read(fd, r->buf + r->len, avail);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
                }
                r->len += (size_t) n;
                return n;
        }
}

ssize_t tr__vf_reader_feed(tr__vf_reader *r, const void *data, size_t n) {
        size_t avail;
        int k = reserve(r, n, &avail);
        if (k < 0)
                return k;
        size_t take = n < avail ? n : avail;
        if (take)
                memcpy(r->buf + r->len, data, take);
        r->len += take;
        return (ssize_t) take;
}

int tr__vf_reader_next(tr__vf_reader *r, tr__vf_frame *ret_frame) {
        size_t have = r->len - r->start;
        if (have < TR_VF_HEADER)
                return 0;
        uint8_t type;
        uint32_t len;
        int k = tr__vf_parse_header(r->buf + r->start, r->max, &type, &len);
        if (k < 0)
                return k;
        if (have - TR_VF_HEADER < len)
                return 0;
        ret_frame->type = type;
        ret_frame->payload = r->buf + r->start + TR_VF_HEADER;
        ret_frame->len = len;
        /* Consumed now, moved lazily by reserve(): the payload pointer stays
         * valid until the next read or feed. */
        r->start += TR_VF_HEADER + len;
        return 1;
}

int tr__vf_write(int fd, uint8_t type, const void *prefix, size_t prefix_len, const void *data, size_t len) {
        uint8_t hdr[TR_VF_HEADER];
        if (prefix_len > TR_VF_MAX_PAYLOAD || len > TR_VF_MAX_PAYLOAD - prefix_len)
                return -EMSGSIZE;
        int k = tr__vf_header(hdr, type, prefix_len + len);
        if (k < 0)
                return k;
        struct iovec iov[3] = {
                { hdr, sizeof(hdr) },
                { (void *) prefix, prefix_len },
                { (void *) data, len },
        };
        int i = 0;
        while (i < 3) {
                if (iov[i].iov_len == 0) {
                        i++;
                        continue;
                }
                ssize_t w = writev(fd, iov + i, 3 - i);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                size_t left = (size_t) w;
                while (i < 3 && left >= iov[i].iov_len) {
                        left -= iov[i].iov_len;
                        i++;
                }
                if (i < 3) {
                        iov[i].iov_base = (uint8_t *) iov[i].iov_base + left;
                        iov[i].iov_len -= left;
                }
        }
        return 0;
}

int tr__vf_buf_append(tr__vf_buf *b, const void *p, size_t n) {
        if (n == 0)
                return 0;
        if (b->alloc - b->len < n) {
                size_t need = b->len + n;
                if (need < b->len)
                        return -ENOMEM;
                size_t a = b->alloc ? b->alloc : 256;
                while (a < need)
                        a *= 2;
                uint8_t *d = realloc(b->data, a);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->alloc = a;
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
}

int tr__vf_buf_frame(tr__vf_buf *b, uint8_t type, const void *prefix, size_t prefix_len, const void *data, size_t len) {
        uint8_t hdr[TR_VF_HEADER];
        if (prefix_len > TR_VF_MAX_PAYLOAD || len > TR_VF_MAX_PAYLOAD - prefix_len)
                return -EMSGSIZE;
        int k = tr__vf_header(hdr, type, prefix_len + len);
        if (k < 0)
                return k;
        size_t old = b->len;
        if (tr__vf_buf_append(b, hdr, sizeof(hdr)) < 0 || tr__vf_buf_append(b, prefix, prefix_len) < 0 ||
            tr__vf_buf_append(b, data, len) < 0) {
                b->len = old;
                return -ENOMEM;
        }
        return 0;
}

void tr__vf_buf_consume(tr__vf_buf *b, size_t n) {
        if (n >= b->len) {
                b->len = 0;
                return;
        }
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
}

void tr__vf_buf_done(tr__vf_buf *b) {
        if (!b)
                return;
        free(b->data);
        memset(b, 0, sizeof(*b));
}

int tr__vf_tlv_add(tr__vf_buf *b, uint16_t tag, const void *v, size_t n) {
        if (n > TR_VF_MAX_PAYLOAD)
                return -EMSGSIZE;
        uint8_t h[6] = { (uint8_t) (tag >> 8), (uint8_t) tag };
        tr__vf_put_u32(h + 2, (uint32_t) n);
        size_t old = b->len;
        if (tr__vf_buf_append(b, h, sizeof(h)) < 0 || tr__vf_buf_append(b, v, n) < 0) {
                b->len = old;
                return -ENOMEM;
        }
        return 0;
}

int tr__vf_tlv_add_str(tr__vf_buf *b, uint16_t tag, const char *s) {
        return tr__vf_tlv_add(b, tag, s, strlen(s));
}

int tr__vf_tlv_add_u64(tr__vf_buf *b, uint16_t tag, uint64_t v) {
        uint8_t p[8];
        tr__vf_put_u32(p, (uint32_t) (v >> 32));
        tr__vf_put_u32(p + 4, (uint32_t) v);
        return tr__vf_tlv_add(b, tag, p, sizeof(p));
}

void tr__vf_tlv_iter_init(tr__vf_tlv_iter *it, const void *p, size_t n) {
        it->p = p;
        it->left = n;
}

int tr__vf_tlv_next(tr__vf_tlv_iter *it, uint16_t *ret_tag, const uint8_t **ret_value, size_t *ret_len) {
        if (it->left == 0)
                return 0;
        if (it->left < 6)
                return -EBADMSG;
        uint16_t tag = (uint16_t) ((it->p[0] << 8) | it->p[1]);
        uint32_t n = tr__vf_get_u32(it->p + 2);
        if (n > it->left - 6)
                return -EBADMSG;
        *ret_tag = tag;
        *ret_value = it->p + 6;
        *ret_len = n;
        it->p += 6 + (size_t) n;
        it->left -= 6 + (size_t) n;
        return 1;
}

int tr__vf_tlv_u64(const uint8_t *v, size_t n, uint64_t *ret) {
        if (n != 8)
                return -EBADMSG;
        *ret = ((uint64_t) tr__vf_get_u32(v) << 32) | tr__vf_get_u32(v + 4);
        return 0;
}
