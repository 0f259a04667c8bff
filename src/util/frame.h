/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM channel codec: the framing spoken over the virtio-serial port
 * between the host (src/backend/kata/) and the guest agent (guest/agent/).
 * It is the only piece of host code the agent links, so it depends on libc
 * alone and reports errors as negative errno values, never through tr_error.
 *
 * A frame is an 8-byte header followed by the payload:
 *
 *     'T' 'V'  type:u8  flags:u8 (0)  length:u32 big-endian  payload
 *
 * The reader is incremental and bounded: it never buffers more than one
 * maximal frame, and it rejects a bad magic, an unknown type, non-zero flags
 * or an over-long length as soon as the header is in, because the host must
 * never trust what a guest sends (a malformed stream ends the execution, it
 * never crashes or stalls the host).
 *
 * Structured payloads (the request, the exit status) are TLV lists:
 *
 *     tag:u16 big-endian  length:u32 big-endian  value
 *
 * with integers as 8-byte big-endian values and strings without their NUL.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TR_VF_HEADER 8
#define TR_VF_MAGIC0 'T'
#define TR_VF_MAGIC1 'V'
/* The largest payload either side accepts.  The request (which carries the
 * code) is the only big frame; output and gateway data come in chunks of at
 * most TR_VF_CHUNK. */
#define TR_VF_MAX_PAYLOAD (16u * 1024 * 1024)
#define TR_VF_CHUNK       (32u * 1024)

/* The agent's name for the channel: QEMU's virtserialport name=. */
#define TR_VF_PORT_NAME "org.toolruntime.0"

typedef enum tr__vf_type {
        TR_VF_HELLO = 1, /* guest -> host: agent up, payload = version text */
        TR_VF_REQUEST,   /* host -> guest: TLV list (TR_VT_*) */
        TR_VF_STARTED,   /* guest -> host: the snippet's process exists */
        TR_VF_STDOUT,    /* guest -> host: raw bytes */
        TR_VF_STDERR,    /* guest -> host: raw bytes */
        TR_VF_EXIT,      /* guest -> host: TLV list (TR_VT_EXIT_*) */
        TR_VF_ERROR,     /* guest -> host: agent setup failed, payload = text */
        TR_VF_GW_OPEN,   /* guest -> host: u32 stream id (a new gateway connection) */
        TR_VF_GW_DATA,   /* both: u32 stream id + bytes */
        TR_VF_GW_CLOSE,  /* both: u32 stream id */
        /* With TR_VT_STDIN_LIVE: */
        TR_VF_STDIN,  /* host -> guest: bytes for the snippet's stdin; empty: EOF */
        TR_VF_SIGNAL, /* host -> guest: u32 signal number for the snippet's process */
        TR__VF_TYPE_MAX
} tr__vf_type;

/* TLV tags of a TR_VF_REQUEST. */
enum {
        TR_VT_ARG = 1,      /* repeated: argv[i] */
        TR_VT_ENV,          /* repeated: KEY=VALUE */
        TR_VT_CODE,         /* the snippet, written to the process's stdin */
        TR_VT_MEMORY,       /* u64 bytes, 0: unlimited */
        TR_VT_PIDS,         /* u64, 0: unlimited */
        TR_VT_DISK,         /* u64 bytes of the /tmp tmpfs */
        TR_VT_CPU_QUOTA_MS, /* u64 ms per 100 ms, 0: unlimited */
        TR_VT_NETWORK,      /* u64 0/1: bring up the network (dev only) */
        TR_VT_UID,          /* u64 */
        TR_VT_GID,          /* u64 */
        TR_VT_SECCOMP_BPF,  /* the snippet's seccomp program: struct sock_filter[],
                               at most TR_VF_SECCOMP_MAX_INSNS (absent: none) */
        /* u64 1: the snippet starts at once, before its code is known (a
         * prepared sandbox); its stdin is fed by TR_VF_STDIN frames, not
         * TR_VT_CODE, and STARTED means its interpreter is up and blocks
         * reading that stdin (or produced output, or ended). */
        TR_VT_STDIN_LIVE,
        /* u64 ms, with TR_VT_STDIN_LIVE: no TR_VF_STDIN frame within this
         * time after the snippet's start and the agent powers the VM off (the backstop
         * for a prepared VM its caller forgot). 0: none. */
        TR_VT_IDLE_MS,
};

/* The kernel's cap on a classic BPF program (BPF_MAXINSNS), which the agent
 * also enforces on what it receives. */
#define TR_VF_SECCOMP_MAX_INSNS 4096

/* TLV tags of a TR_VF_EXIT. */
enum {
        TR_VT_EXIT_KIND = 1, /* u64, tr__vf_exit_kind */
        TR_VT_EXIT_CODE,     /* u64: exit status or signal number */
};

/* TLV tags of a TR_VF_STARTED (an empty payload: an agent that reports
 * nothing, whose limits the host cannot vouch for beyond its request). */
enum {
        TR_VT_LIMITS_APPLIED = 1, /* u64: TR_VL_* bits of the limits in force */
};

/* Bits of TR_VT_LIMITS_APPLIED. */
enum {
        TR_VL_MEMORY = 1u << 0, /* memory.max */
        TR_VL_PIDS = 1u << 1,   /* pids.max (+ RLIMIT_NPROC) */
        TR_VL_CPU = 1u << 2,    /* cpu.max */
        TR_VL_DISK = 1u << 3,   /* the /tmp tmpfs size */
        /* The seccomp program of the request is installed on the snippet
         * (an agent that does not set it never ran the request's filter). */
        TR_VL_SECCOMP = 1u << 4,
        /* TR_VT_STDIN_LIVE understood: the snippet's stdin is live (an
         * older agent would have run it with empty input). */
        TR_VL_STDIN_LIVE = 1u << 5,
};

typedef enum tr__vf_exit_kind {
        TR_VF_EXITED = 1, /* code = exit status */
        TR_VF_SIGNALED,   /* code = signal number */
        TR_VF_OOM,        /* the memory limit killed it */
} tr__vf_exit_kind;

/* ---- frames ---------------------------------------------------------- */

typedef struct tr__vf_reader {
        uint8_t *buf;
        size_t start; /* first unconsumed byte */
        size_t len;   /* end of buffered bytes */
        size_t alloc;
        size_t max; /* payload cap for this direction */
} tr__vf_reader;

typedef struct tr__vf_frame {
        uint8_t type;
        const uint8_t *payload; /* valid until the next call on the reader */
        size_t len;
} tr__vf_frame;

/* `max` is the payload cap (<= TR_VF_MAX_PAYLOAD; 0 selects it). */
void tr__vf_reader_init(tr__vf_reader *r, size_t max);
void tr__vf_reader_done(tr__vf_reader *r);

/* Read once from `fd` into the reader: >0 bytes read, 0 on EOF, -EAGAIN when
 * nothing is there (non-blocking fd), other -errno on failure. */
ssize_t tr__vf_reader_read_fd(tr__vf_reader *r, int fd);
/* Append bytes (tests, fuzzers); returns how many were taken or -ENOMEM.
 * Takes fewer than `n` only when a whole maximal frame is buffered. */
ssize_t tr__vf_reader_feed(tr__vf_reader *r, const void *data, size_t n);
/* 1 and *ret_frame when a complete frame is buffered; 0 when more bytes are
 * needed; -EBADMSG for a malformed header, -EMSGSIZE for an over-long one
 * (the stream cannot be resynchronised after either: close it). */
int tr__vf_reader_next(tr__vf_reader *r, tr__vf_frame *ret_frame);
/* Bytes buffered but not yet handed out (a stream that ends with some is
 * truncated). */
size_t tr__vf_reader_pending(const tr__vf_reader *r);

/* Write the header for `type` and `len` into `hdr`; -EMSGSIZE / -EINVAL. */
int tr__vf_header(uint8_t hdr[TR_VF_HEADER], uint8_t type, size_t len);
/* Parse a header: 0, -EBADMSG or -EMSGSIZE (against `max`). */
int tr__vf_parse_header(const uint8_t hdr[TR_VF_HEADER], size_t max, uint8_t *ret_type, uint32_t *ret_len);
/* Blocking write of a whole frame, retrying on EINTR (the agent's side).
 * `prefix` (may be NULL) goes before `data`: used for the stream id of
 * gateway frames. */
int tr__vf_write(int fd, uint8_t type, const void *prefix, size_t prefix_len, const void *data, size_t len);

/* ---- a growing byte buffer (frame and TLV building, output queues) ---- */

typedef struct tr__vf_buf {
        uint8_t *data;
        size_t len;
        size_t alloc;
} tr__vf_buf;

int tr__vf_buf_append(tr__vf_buf *b, const void *p, size_t n);
/* Append a whole frame (header + optional prefix + data). */
int tr__vf_buf_frame(tr__vf_buf *b, uint8_t type, const void *prefix, size_t prefix_len, const void *data, size_t len);
/* Drop the first n bytes. */
void tr__vf_buf_consume(tr__vf_buf *b, size_t n);
void tr__vf_buf_done(tr__vf_buf *b);

/* ---- TLV ------------------------------------------------------------- */

int tr__vf_tlv_add(tr__vf_buf *b, uint16_t tag, const void *v, size_t n);
int tr__vf_tlv_add_str(tr__vf_buf *b, uint16_t tag, const char *s);
int tr__vf_tlv_add_u64(tr__vf_buf *b, uint16_t tag, uint64_t v);

typedef struct tr__vf_tlv_iter {
        const uint8_t *p;
        size_t left;
} tr__vf_tlv_iter;

void tr__vf_tlv_iter_init(tr__vf_tlv_iter *it, const void *p, size_t n);
/* 1 with the next item, 0 at the end, -EBADMSG when an item overruns. */
int tr__vf_tlv_next(tr__vf_tlv_iter *it, uint16_t *ret_tag, const uint8_t **ret_value, size_t *ret_len);
/* Decode an 8-byte integer value; -EBADMSG for any other size. */
int tr__vf_tlv_u64(const uint8_t *v, size_t n, uint64_t *ret);

/* Big-endian helpers. */
static inline void tr__vf_put_u32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static inline uint32_t tr__vf_get_u32(const uint8_t *p) {
        return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}
