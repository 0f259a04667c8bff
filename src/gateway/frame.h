/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's wire framing: every message is a 4-byte big-endian length
 * followed by that many bytes of UTF-8 JSON.  Plain C with no dependency
 * beyond libc, because the guest agent (guest/agent/) relays frames and may
 * share only this codec with the host library.
 *
 * The reader is incremental: feed it whatever read() returned, then take
 * complete frames out.  A length above the cap is reported as soon as the
 * header is in, so a hostile peer can never make us buffer more than
 * TR_FRAME_MAX + 4 bytes.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The largest payload a frame may carry, in both directions. */
#define TR_FRAME_MAX    (1024 * 1024)
#define TR_FRAME_HEADER 4

typedef struct tr__frame_reader {
        uint8_t *buf;
        size_t len;   /* bytes buffered */
        size_t start; /* bytes already handed out (consumed lazily) */
        size_t alloc;
        size_t max; /* payload cap; TR_FRAME_MAX unless set otherwise */
} tr__frame_reader;

void tr__frame_reader_init(tr__frame_reader *r, size_t max);
void tr__frame_reader_done(tr__frame_reader *r);

/* Space to read() into: at least `want` bytes (fewer only when the cap
 * allows no more).  Returns NULL on -ENOMEM.  After reading n bytes into it,
 * call tr__frame_reader_commit(r, n). */
uint8_t *tr__frame_reader_space(tr__frame_reader *r, size_t want, size_t *ret_avail);
void tr__frame_reader_commit(tr__frame_reader *r, size_t n);

/* Append a copy of up to `n` bytes; returns how many were taken (fewer than
 * `n` once a whole maximal frame is buffered: take frames out, then feed the
 * rest) or -ENOMEM. */
ssize_t tr__frame_reader_feed(tr__frame_reader *r, const void *data, size_t n);

/* Take the next complete frame: returns 1 and points *ret_payload (valid
 * until the next call on `r`) at its `*ret_len` bytes; 0 when more bytes are
 * needed; -EMSGSIZE when the announced length exceeds the cap (the stream
 * cannot be resynchronised after that: close it). */
int tr__frame_reader_next(tr__frame_reader *r, const uint8_t **ret_payload, size_t *ret_len);

/* Write the 4-byte header for a payload of `len` bytes. */
static inline void tr__frame_put_header(uint8_t hdr[TR_FRAME_HEADER], uint32_t len) {
        hdr[0] = (uint8_t) (len >> 24);
        hdr[1] = (uint8_t) (len >> 16);
        hdr[2] = (uint8_t) (len >> 8);
        hdr[3] = (uint8_t) len;
}

static inline uint32_t tr__frame_get_header(const uint8_t hdr[TR_FRAME_HEADER]) {
        return ((uint32_t) hdr[0] << 24) | ((uint32_t) hdr[1] << 16) | ((uint32_t) hdr[2] << 8) | (uint32_t) hdr[3];
}

/* A newly malloc()ed frame (header + payload) in *ret_frame, its total size
 * in *ret_len.  -EMSGSIZE when `len` exceeds TR_FRAME_MAX. */
int tr__frame_encode(const void *payload, size_t len, uint8_t **ret_frame, size_t *ret_len);
