/* SPDX-License-Identifier: Apache-2.0 */
/* The MCP client's stdio transport: one JSON message per line on the
 * server's stdin and stdout, each wait bounded by a deadline and by the tool
 * call's cancellation, stderr drained into the log all along, and a server
 * that breaks the stream (a line cut short, one too long, a closed pipe)
 * killed. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/callctx.h"
#include "gateway/mcp.h"
#include "gateway/mcp_client.h"
#include "gateway/spawn.h"
#include "util/macros.h"
#include "util/timeutil.h"

/* ---- transport ------------------------------------------------------------ */

/* Log what the server wrote on stderr so far; its pipe must not fill up
 * (the server would block), so every wait on the server drains it. */
void tr__mcp_drain_stderr(tr__mcp *m) {
        if (m->proc.err_fd >= 0 && tr__errlog_drain(&m->errlog, m->proc.err_fd)) {
                close(m->proc.err_fd);
                m->proc.err_fd = -1;
        }
}

/* The stderr entry of a poll set: a negative fd, which poll skips, once
 * stderr is closed. */
static struct pollfd stderr_pollfd(const tr__mcp *m) {
        return (struct pollfd){ .fd = m->proc.err_fd, .events = POLLIN };
}

void tr__mcp_kill_server(tr__mcp *m) {
        tr__mcp_drain_stderr(m);
        tr__proc_kill(&m->proc);
        m->alive = false;
        m->start = m->scanned = m->len = 0;
}

static bool fired(const struct pollfd *p, int n) {
        for (int i = 0; i < n; i++)
                if (p[i].revents)
                        return true;
        return false;
}

/* Write one message and its newline before the deadline; also give up when
 * the tool call `cc` (NULL: none) is cancelled (callctx.h).
 * Half a message would corrupt the stream, so a write cut short kills the
 * server. */
int tr__mcp_send_msg(tr__mcp *m, json_t *msg, int64_t deadline, const tr_call_ctx *cc, tr_error **ret_err) {
        static const char op[] = "mcp.send";
        if (!m->alive)
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op, "the MCP server is gone");
        size_t n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
        _cleanup_free_ char *s = n ? malloc(n + 1) : NULL;
        if (!s || json_dumpb(msg, s, n, JSON_COMPACT) != n)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        /* Compact JSON escapes newlines inside strings, so the message is
         * one line as the stdio transport requires. */
        s[n++] = '\n';
        size_t off = 0;
        while (off < n) {
                ssize_t w = tr__write_nosigpipe(m->proc.in_fd, s + off, n - off);
                if (w > 0) {
                        off += (size_t) w;
                        continue;
                }
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno != EAGAIN) {
                        tr__mcp_kill_server(m);
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op,
                                            "the MCP server closed its input: %m");
                }
                struct pollfd p[2 + TR__CALL_MAX_CANCEL_FDS] = { { .fd = m->proc.in_fd, .events = POLLOUT } };
                int nc = tr__call_ctx_pollfds(cc, p + 1);
                p[1 + nc] = stderr_pollfd(m);
                int tmo = tr__poll_timeout_ms(deadline);
                int pr = tmo == 0 ? 0 : poll(p, (nfds_t) (2 + nc), tmo);
                if (pr < 0)
                        continue; /* EINTR */
                if (pr > 0 && p[1 + nc].revents) {
                        tr__mcp_drain_stderr(m);
                        if (!p[0].revents && !fired(p + 1, nc))
                                continue;
                }
                if (pr > 0 && fired(p + 1, nc)) {
                        if (off > 0)
                                tr__mcp_kill_server(m);
                        return tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, op,
                                            "the call was cancelled: the calling execution is ending");
                }
                if (pr == 0) {
                        if (off > 0)
                                tr__mcp_kill_server(m);
                        return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_NONE, op,
                                            "the MCP server does not read its input");
                }
        }
        return 0;
}

/* Read the next line (without its newline): *ret_line points into m->buf
 * and stays valid until tr__mcp_consume_line() or the next tr__mcp_read_line().  Gives up
 * at the deadline (TR_E_TIMEOUT) or when the tool call `cc` is
 * cancelled (TR_E_CANCELLED); the server stays alive in both cases. */
int tr__mcp_read_line(tr__mcp *m, int64_t deadline, const tr_call_ctx *cc, const char **ret_line, size_t *ret_len,
                      tr_error **ret_err) {
        static const char op[] = "mcp.read";
        for (;;) {
                /* Bytes before m->scanned hold no newline: look at the new
                 * ones only, so a long line costs linear time, not
                 * quadratic. */
                char *nl = m->len > m->scanned ? memchr(m->buf + m->scanned, '\n', m->len - m->scanned) : NULL;
                if (nl) {
                        *ret_line = m->buf + m->start;
                        *ret_len = (size_t) (nl - (m->buf + m->start));
                        return 0;
                }
                m->scanned = m->len;
                if (m->len - m->start >= TR_MCP_MAX_LINE) {
                        tr__mcp_kill_server(m);
                        return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, op,
                                            "the MCP server sent a line over %d bytes", TR_MCP_MAX_LINE);
                }
                if (!m->alive) /* killed while answering a request of its own */
                        return tr_call_ctx_cancelled(cc)
                                       ? tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, op,
                                                      "the call was cancelled: the calling execution is ending")
                                       : tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op,
                                                      "the MCP server is gone");
                /* Move the partial line to the front (at most once per read). */
                if (m->start > 0) {
                        memmove(m->buf, m->buf + m->start, m->len - m->start);
                        m->len -= m->start;
                        m->scanned -= m->start;
                        m->start = 0;
                }
                if (m->alloc - m->len < 4096) {
                        size_t na = m->alloc ? m->alloc * 2 : 16384;
                        if (na > TR_MCP_MAX_LINE + 1)
                                na = TR_MCP_MAX_LINE + 1;
                        char *nb = realloc(m->buf, na);
                        if (!nb)
                                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
                        m->buf = nb;
                        m->alloc = na;
                }
                ssize_t k = read(m->proc.out_fd, m->buf + m->len, m->alloc - m->len);
                if (k > 0) {
                        m->len += (size_t) k;
                        continue;
                }
                if (k == 0) {
                        tr__mcp_kill_server(m);
                        tr__mcp_log(m, TR_LOG_WARN, "MCP server exited", NULL);
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op, "the MCP server exited");
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN) {
                        tr__mcp_kill_server(m);
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op,
                                            "reading from the MCP server: %m");
                }
                struct pollfd p[2 + TR__CALL_MAX_CANCEL_FDS] = { { .fd = m->proc.out_fd, .events = POLLIN } };
                int nc = tr__call_ctx_pollfds(cc, p + 1);
                p[1 + nc] = stderr_pollfd(m);
                int tmo = tr__poll_timeout_ms(deadline);
                int pr = tmo == 0 ? 0 : poll(p, (nfds_t) (2 + nc), tmo);
                if (pr > 0 && p[1 + nc].revents) {
                        tr__mcp_drain_stderr(m);
                        if (!p[0].revents && !fired(p + 1, nc))
                                continue;
                }
                if (pr > 0 && fired(p + 1, nc))
                        return tr_error_set(ret_err, TR_E_CANCELLED, TR_BACKEND_NONE, op,
                                            "the call was cancelled: the calling execution is ending");
                if (pr == 0)
                        return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_NONE, op,
                                            "the MCP server did not answer in time");
        }
}

void tr__mcp_consume_line(tr__mcp *m, size_t line_len) {
        m->start += line_len + 1;
        if (m->start >= m->len)
                m->start = m->len = 0;
        m->scanned = m->start;
}
