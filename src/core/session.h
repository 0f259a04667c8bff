/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sessions, inside the core: the tr_session handle (session.c: lifetime,
 * executions, expiry) and the wire to the session runner it drives
 * (session_wire.c: writing commands, reading the runner's marked answers;
 * session_files.c: uploads and downloads on that wire).  The protocol is
 * the session runner's (runner.c); backends only lend their pipes and
 * signals (tr_backend_ops.session_io / signal).
 */
#pragma once

#include <pthread.h>

#include "core/internal.h"

/* "\n" + the per-operation end marker that frames the runner's answers:
 * TR_SESSION_END_HEAD, 32 random hex digits, TR_SESSION_END_TAIL. */
#define TR_SESSION_END_HEAD "__TR_END_"
#define TR_SESSION_END_TAIL "__:"
#define TR_SESSION_END_SIZE (sizeof(TR_SESSION_END_HEAD) - 1 + 32 + sizeof(TR_SESSION_END_TAIL))
/* Stray output (a snippet's daemon thread printing between executions)
 * kept while a file operation looks for its answer: only the tail that may
 * hold a marker's start matters beyond this. */
#define TR_SESSION_RBUF_MAX (256 * 1024)

struct tr_session {
        tr_runtime *rt;
        /* One operation at a time (an execution, a transfer); held from
         * begin to end of a transfer. */
        pthread_mutex_t op;
        /* What tr_session_check / get_info read while an operation runs. */
        pthread_mutex_t state;
        tr_request *shape; /* our copy of the caller's shape, session = true */
        tr_sandbox *sb;    /* NULL once ended */
        int in_fd, out_fd, err_fd;
        bool in_blocking; /* stdin without O_NONBLOCK: PIPE_BUF writes */
        tr_profile profile;
        tr_backend_kind kind;
        int64_t disk_cap; /* the effective disk and memory limits (0: none) */
        int64_t mem_cap;
        int64_t created_rt_ns, last_used_rt_ns;
        int64_t ttl_ms, idle_ms;
        int64_t ttl_deadline_ns, last_used_ns; /* CLOCK_MONOTONIC */
        uint64_t executions;
        char *gone; /* why the session ended; NULL while alive */
        /* The current operation's end marker, without the "\n". */
        char end[TR_SESSION_END_SIZE];
        /* stdout bytes read but not yet consumed (file operations). */
        char *rbuf;
        size_t rlen;
};

/* ---- session.c ---------------------------------------------------------- */

/* Destroy the sandbox and record why (the first reason stays).  Idempotent. */
void tr__session_end(tr_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* TR_E_SESSION_GONE with the reason. */
int tr__session_gone_error(tr_session *s, const char *op, tr_error **ret_err);
/* Take the operation lock (waiting, bounded by `cancel`, may be NULL), then
 * refuse an ended session and end an expired one (TR_E_SESSION_GONE). */
int tr__session_lock(tr_session *s, tr_cancel *cancel, const char *op, tr_error **ret_err);
void tr__session_unlock(tr_session *s);
/* Mark the session used now (the idle clock restarts). */
void tr__session_touch(tr_session *s);

/* ---- session_wire.c ----------------------------------------------------- */

/* read() when poll says `fd` has data (or EOF); else -1 with EAGAIN. */
ssize_t tr__wire_read(int fd, void *buf, size_t n);
/* A fresh end marker for the next operation; -errno on failure. */
int tr__wire_new_marker(tr_session *s);
/* Write all of `data` to the runner's stdin before `deadline_ns`, reading
 * stdout into rbuf and discarding stderr meanwhile (so a runner blocked on
 * a full output pipe cannot deadlock us). */
int tr__wire_write(tr_session *s, const void *data, size_t len, int64_t deadline_ns, const char *op,
                   tr_error **ret_err);
/* The next answer line of the runner (after "\n" + marker; without its
 * "\n"), discarding stray output before it.  malloc()ed.  EOF: the session
 * ends, TR_E_SESSION_GONE. */
int tr__wire_reply(tr_session *s, int64_t deadline_ns, const char *op, char **ret_line, tr_error **ret_err);
/* Read up to `max` raw bytes (rbuf first); 0 bytes only at EOF (an error). */
int tr__wire_read_raw(tr_session *s, void *buf, size_t max, int64_t deadline_ns, const char *op, size_t *ret_len,
                      tr_error **ret_err);
/* An "err ERRNO TEXT" answer as a tr_error of `op`: ENOSPC/EDQUOT/EFBIG
 * are TR_E_RESOURCE_LIMIT, the rest TR_E_INVALID_REQUEST (errno kept). */
int tr__wire_answer_error(tr_session *s, const char *line, const char *op, const char *path, tr_error **ret_err);

/* One execution on the wire (session_wire.c): writes the command, streams
 * the output into the sandbox's exec until both end lines came, interrupts
 * at the deadline or on cancel.  See session.c for the outcome. */
typedef enum tr__wire_outcome {
        TR__WIRE_DONE,        /* the runner answered; *ret_status is the exit status */
        TR__WIRE_INTERRUPTED, /* interrupted (timeout / cancel) and answered within the grace */
        TR__WIRE_STUCK,       /* interrupted, no answer within the grace */
        TR__WIRE_DIED,        /* the interpreter's stdout ended */
        TR__WIRE_FAILED,      /* a host-side failure (*ret_err) */
} tr__wire_outcome;
tr__wire_outcome tr__wire_execute(tr_session *s, tr_exec *ex, const char *cmd, size_t cmd_len, bool *ret_cancelled,
                                  int *ret_status, tr_error **ret_err);
