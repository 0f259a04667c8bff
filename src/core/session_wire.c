/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host's end of the session runner's protocol (runner.c): commands
 * written to its stdin, answers found in its stdout after "\n" + the
 * operation's random end marker, an execution's output streamed into the
 * sandbox's exec up to the end lines.  All fds are the backend's (never
 * closed here) and may be non-blocking: every wait is a poll bounded by a
 * deadline.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/session.h"
#include "util/macros.h"
#include "util/timeutil.h"

#define CHUNK 65536
/* How often an unanswered interrupt is sent again (see tr__wire_execute):
 * a snippet that handles KeyboardInterrupt slowly may see a second one, as
 * from a second Ctrl-C. */
#define INTERRUPT_REPEAT_MS 200

/* The backend's fds may be blocking (tr_backend_ops.session_io): a read
 * happens only when poll says data is there, and a write to a blocking fd
 * is at most PIPE_BUF, which a writable pipe always takes whole.  Writes
 * never raise SIGPIPE in the caller's process (a socket: MSG_NOSIGNAL; a
 * pipe's backend keeps a reader, as containerd's read-write FIFO does). */
ssize_t tr__wire_read(int fd, void *buf, size_t n) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 0);
        if (r == 0) {
                errno = EAGAIN;
                return -1;
        }
        if (r < 0)
                return -1;
        return read(fd, buf, n);
}

static ssize_t wire_send(tr_session *s, const void *p, size_t n) {
        struct pollfd pf = { .fd = s->in_fd, .events = POLLOUT };
        int r = poll(&pf, 1, 0);
        if (r == 0) {
                errno = EAGAIN;
                return -1;
        }
        if (r < 0)
                return -1;
        if (s->in_blocking && n > PIPE_BUF)
                n = PIPE_BUF;
        ssize_t w = send(s->in_fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
                w = write(s->in_fd, p, n);
        return w;
}

int tr__wire_new_marker(tr_session *s) {
        uint8_t rnd[16];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd)
                return -errno ?: -EIO;
        static const char hex[] = "0123456789abcdef";
        char *p = stpcpy(s->end, TR_SESSION_END_HEAD);
        for (size_t i = 0; i < sizeof rnd; i++) {
                *p++ = hex[rnd[i] >> 4];
                *p++ = hex[rnd[i] & 0xf];
        }
        memcpy(p, TR_SESSION_END_TAIL, sizeof(TR_SESSION_END_TAIL));
        return 0;
}

static int wire_timeout(tr_session *s, const char *op, tr_error **ret_err) {
        /* The runner did not answer in time: the protocol is out of step. */
        tr__session_end(s, "the interpreter stopped answering (during %s)", op);
        return tr_error_set(ret_err, TR_E_SESSION_GONE, s->kind, op,
                            "the session's interpreter did not answer in time; the session ended");
}

static int wire_eof(tr_session *s, const char *op, tr_error **ret_err) {
        tr__session_end(s, "the interpreter exited");
        return tr__session_gone_error(s, op, ret_err);
}

/* Append what stdout has to rbuf, keeping only its tail when stray output
 * floods it.  1: read something, 0: nothing now, -EPIPE: EOF. */
static int rbuf_fill(tr_session *s) {
        char buf[CHUNK];
        ssize_t n = tr__wire_read(s->out_fd, buf, sizeof buf);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -EPIPE;
        if (n == 0)
                return -EPIPE;
        if (s->rlen + (size_t) n > TR_SESSION_RBUF_MAX) {
                size_t keep = TR_SESSION_END_SIZE + 64;
                if (s->rlen > keep) {
                        memmove(s->rbuf, s->rbuf + s->rlen - keep, keep);
                        s->rlen = keep;
                }
        }
        char *nb = realloc(s->rbuf, s->rlen + (size_t) n);
        if (!nb)
                return -ENOMEM;
        memcpy(nb + s->rlen, buf, (size_t) n);
        s->rbuf = nb;
        s->rlen += (size_t) n;
        return 1;
}

static void drain_stderr(tr_session *s) {
        char buf[CHUNK];
        while (tr__wire_read(s->err_fd, buf, sizeof buf) > 0)
                ;
}

/* Wait until stdout is readable (or, with `want_write`, stdin writable):
 * 1 ready, 0 timed out. */
static int wait_io(tr_session *s, bool want_write, int64_t deadline_ns) {
        for (;;) {
                struct pollfd p[3] = {
                        { .fd = s->out_fd, .events = POLLIN },
                        { .fd = s->err_fd, .events = POLLIN },
                        { .fd = want_write ? s->in_fd : -1, .events = POLLOUT },
                };
                int r = poll(p, 3, tr__poll_timeout_ms(deadline_ns));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return 0;
                if (p[1].revents)
                        drain_stderr(s);
                if (p[0].revents || p[2].revents)
                        return 1;
                if (tr__now_ns() >= deadline_ns)
                        return 0;
        }
}

int tr__wire_write(tr_session *s, const void *data, size_t len, int64_t deadline_ns, const char *op,
                   tr_error **ret_err) {
        const char *p = data;
        while (len > 0) {
                ssize_t w = wire_send(s, p, len);
                if (w > 0) {
                        p += w;
                        len -= (size_t) w;
                        continue;
                }
                if (w < 0 && errno != EAGAIN && errno != EINTR)
                        return wire_eof(s, op, ret_err);
                if (!wait_io(s, true, deadline_ns))
                        return wire_timeout(s, op, ret_err);
                if (rbuf_fill(s) == -EPIPE)
                        return wire_eof(s, op, ret_err);
        }
        return 0;
}

int tr__wire_reply(tr_session *s, int64_t deadline_ns, const char *op, char **ret_line, tr_error **ret_err) {
        size_t ml = strlen(s->end);
        for (;;) {
                /* "\n" + marker, then the line up to its "\n". */
                for (size_t i = 0; s->rlen > ml && i < s->rlen - ml; i++) {
                        if (s->rbuf[i] != '\n' || memcmp(s->rbuf + i + 1, s->end, ml) != 0)
                                continue;
                        size_t at = i + 1 + ml;
                        char *nl = memchr(s->rbuf + at, '\n', s->rlen - at);
                        if (!nl)
                                break;
                        size_t n = (size_t) (nl - (s->rbuf + at));
                        char *line = strndup(s->rbuf + at, n);
                        if (!line)
                                return tr_error_set(ret_err, TR_E_INTERNAL, s->kind, op, "out of memory");
                        size_t used = at + n + 1;
                        memmove(s->rbuf, s->rbuf + used, s->rlen - used);
                        s->rlen -= used;
                        *ret_line = line;
                        return 0;
                }
                int r = rbuf_fill(s);
                if (r == -EPIPE)
                        return wire_eof(s, op, ret_err);
                if (r == -ENOMEM)
                        return tr_error_set(ret_err, TR_E_INTERNAL, s->kind, op, "out of memory");
                if (r == 0 && !wait_io(s, false, deadline_ns))
                        return wire_timeout(s, op, ret_err);
        }
}

int tr__wire_read_raw(tr_session *s, void *buf, size_t max, int64_t deadline_ns, const char *op, size_t *ret_len,
                      tr_error **ret_err) {
        for (;;) {
                if (s->rlen > 0) {
                        size_t n = s->rlen < max ? s->rlen : max;
                        memcpy(buf, s->rbuf, n);
                        memmove(s->rbuf, s->rbuf + n, s->rlen - n);
                        s->rlen -= n;
                        *ret_len = n;
                        return 0;
                }
                ssize_t n = tr__wire_read(s->out_fd, buf, max);
                if (n > 0) {
                        *ret_len = (size_t) n;
                        return 0;
                }
                if (n == 0 || (errno != EAGAIN && errno != EINTR))
                        return wire_eof(s, op, ret_err);
                if (!wait_io(s, false, deadline_ns))
                        return wire_timeout(s, op, ret_err);
        }
}

int tr__wire_answer_error(tr_session *s, const char *line, const char *op, const char *path, tr_error **ret_err) {
        int e = 0, off = 0;
        if (strncmp(line, "err ", 4) != 0 || sscanf(line + 4, "%d %n", &e, &off) < 1)
                return tr_error_set(ret_err, TR_E_PROTOCOL, s->kind, op, "unexpected answer from the session runner");
        const char *text = line + 4 + off;
        tr_code code = (e == ENOSPC || e == EDQUOT || e == EFBIG) ? TR_E_RESOURCE_LIMIT : TR_E_INVALID_REQUEST;
        const char *why = e == ELOOP || e == ENOTDIR ? " (a path component is a symlink or not a directory: "
                                                       "links are never followed)"
                                                     : "";
        int r = tr_error_set(ret_err, code, s->kind, op, "%s: %s%s", path, text, why);
        if (ret_err && *ret_err && e > 0)
                tr_error_set_errno(*ret_err, e);
        return r;
}

/* ---- executions ------------------------------------------------------------ */

/* One output stream of an execution, split at "\n" + end marker: what
 * comes before goes to the exec (so caps, the value line and streaming work
 * as in one-shot runs), the end line itself does not.  A chunk that ends in
 * a possible marker start holds it back, except a lone "\n": that one goes
 * on at once (a line-reading consumer must not see each line a chunk late)
 * and is retracted from the result if it did begin the end line. */
typedef struct scan {
        tr_stream stream;
        size_t match; /* bytes of "\n" + marker held */
        bool passed_nl;
        bool found;
        bool done; /* stdout: the status line after the marker is complete */
        char status[24];
        size_t slen;
} scan;

static void emit(tr_exec *ex, scan *sc, const char *d, size_t n) {
        if (n == 0)
                return;
        if (sc->stream == TR_STREAM_STDOUT)
                tr_exec_append_stdout(ex, d, n);
        else
                tr_exec_append_stderr(ex, d, n);
}

static void found(tr_exec *ex, scan *sc) {
        sc->found = true;
        sc->match = 0;
        if (sc->passed_nl)
                tr__exec_retract_newline(ex, sc->stream);
        sc->passed_nl = false;
}

static void feed(tr_exec *ex, scan *sc, const char *m, const char *d, size_t n) {
        size_t ml = strlen(m), start = 0, i = 0;
        while (i < n && !sc->found) {
                if (sc->match == 0) {
                        const char *nl = memchr(d + i, '\n', n - i);
                        if (!nl) {
                                i = n;
                                break;
                        }
                        size_t at = (size_t) (nl - d), avail = n - at - 1;
                        size_t cmp = avail < ml ? avail : ml;
                        if (memcmp(nl + 1, m, cmp) != 0) {
                                i = at + 1;
                                continue;
                        }
                        emit(ex, sc, d + start, at - start);
                        if (cmp == ml) {
                                found(ex, sc);
                                start = i = at + 1 + ml;
                                break;
                        }
                        sc->match = 1 + cmp;
                        if (cmp == 0) {
                                emit(ex, sc, "\n", 1);
                                sc->passed_nl = true;
                        }
                        start = i = n;
                        break;
                }
                if (d[i] == m[sc->match - 1]) {
                        start = ++i;
                        if (++sc->match == ml + 1) {
                                found(ex, sc);
                                break;
                        }
                        continue;
                }
                if (!sc->passed_nl)
                        emit(ex, sc, "\n", 1);
                emit(ex, sc, m, sc->match - 1);
                sc->match = 0;
                sc->passed_nl = false;
                start = i;
        }
        if (!sc->found) {
                emit(ex, sc, d + start, n - start);
                return;
        }
        /* After the marker: stdout's status line, up to its "\n"; anything
         * later is stray output of a thread the snippet left running. */
        for (; i < n && !sc->done; i++) {
                if (d[i] == '\n')
                        sc->done = true;
                else if (sc->slen < sizeof sc->status - 1)
                        sc->status[sc->slen++] = d[i];
        }
        if (sc->stream == TR_STREAM_STDERR)
                sc->done = true;
}

/* Read what `fd` has into the scanner; false at EOF. */
static bool pump(tr_exec *ex, scan *sc, const char *m, int fd) {
        char buf[CHUNK];
        for (int rounds = 0; rounds < 16; rounds++) {
                ssize_t n = tr__wire_read(fd, buf, sizeof buf);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR;
                if (n == 0)
                        return false;
                if (!sc->done)
                        feed(ex, sc, m, buf, (size_t) n);
                if ((size_t) n < sizeof buf)
                        return true;
        }
        return true;
}

tr__wire_outcome tr__wire_execute(tr_session *s, tr_exec *ex, const char *cmd, size_t cmd_len, bool *ret_cancelled,
                                  int *ret_status, tr_error **ret_err) {
        scan out = { .stream = TR_STREAM_STDOUT }, err = { .stream = TR_STREAM_STDERR };
        const char *m = s->end;
        int cancel_fd = tr_exec_cancel_fd(ex);
        int64_t grace = 0, next_int = 0;
        /* Stray output read while a file operation waited belongs here. */
        if (s->rlen) {
                feed(ex, &out, m, s->rbuf, s->rlen);
                s->rlen = 0;
        }
        for (;;) {
                if (out.done && err.done)
                        break;
                int64_t now = tr__now_ns();
                if (!grace && (now >= tr_exec_deadline_ns(ex) || tr_exec_cancelled(ex))) {
                        *ret_cancelled = now < tr_exec_deadline_ns(ex);
                        grace = now + TR_SESSION_INTERRUPT_GRACE_MS * TR_NSEC_PER_MSEC;
                        next_int = now;
                }
                if (grace && now >= grace)
                        return TR__WIRE_STUCK;
                /* KeyboardInterrupt in the snippet; the runner answers.  The
                 * runner ignores SIGINT outside the snippet, so one that
                 * lands before the snippet starts (its command still being
                 * written or read) is lost: it is sent again until the
                 * runner answers or the grace ends. */
                if (grace && now >= next_int) {
                        tr_error *serr = NULL;
                        if (tr__sandbox_signal(s->sb, SIGINT, &serr) < 0)
                                tr_exec_log(ex, TR_LOG_WARN, "session interrupt failed", "error",
                                            tr_error_message(serr), NULL);
                        tr_error_free(serr);
                        next_int = now + INTERRUPT_REPEAT_MS * TR_NSEC_PER_MSEC;
                }
                struct pollfd p[4] = {
                        { .fd = out.done ? -1 : s->out_fd, .events = POLLIN },
                        { .fd = err.done ? -1 : s->err_fd, .events = POLLIN },
                        { .fd = cmd_len ? s->in_fd : -1, .events = POLLOUT },
                        { .fd = grace ? -1 : cancel_fd, .events = POLLIN },
                };
                int r = poll(
                        p, 4,
                        tr__poll_timeout_ms(grace ? (next_int < grace ? next_int : grace) : tr_exec_deadline_ns(ex)));
                if (r < 0 && errno != EINTR)
                        return tr_error_set(ret_err, TR_E_INTERNAL, s->kind, "session.execute", "poll: %s",
                                            strerror(errno)),
                               TR__WIRE_FAILED;
                if (r <= 0)
                        continue;
                if (p[2].revents) {
                        ssize_t w = wire_send(s, cmd, cmd_len > CHUNK ? CHUNK : cmd_len);
                        if (w > 0) {
                                cmd += w;
                                cmd_len -= (size_t) w;
                        } else if (w < 0 && errno != EAGAIN && errno != EINTR)
                                return TR__WIRE_DIED;
                }
                if (p[0].revents && !pump(ex, &out, m, s->out_fd)) {
                        /* What the dying interpreter wrote to stderr is the
                         * execution's (a fatal error's message). */
                        if (!err.done)
                                (void) pump(ex, &err, m, s->err_fd);
                        return TR__WIRE_DIED;
                }
                /* stderr's EOF comes with stdout's. */
                if (p[1].revents && !pump(ex, &err, m, s->err_fd))
                        err.done = true;
        }
        *ret_status = (int) strtol(out.status, NULL, 10);
        return grace ? TR__WIRE_INTERRUPTED : TR__WIRE_DONE;
}
