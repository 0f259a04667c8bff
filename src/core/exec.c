/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One execution as a backend sees it (tr_exec): the request, the deadline,
 * the cancel token, the logger and the capped output streams.  Output caps
 * and the value protocol (runner.h) are handled here, once, for every
 * backend.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/internal.h"
#include "core/plan.h"
#include "util/strv.h"
#include "core/runner.h"
#include "util/macros.h"
#include "util/timeutil.h"

TR_PUBLIC const tr_request *tr_exec_request(const tr_exec *ex) {
        return ex->req;
}
TR_PUBLIC tr_result *tr_exec_result(tr_exec *ex) {
        return ex->res;
}
TR_PUBLIC int tr_exec_cancel_fd(const tr_exec *ex) {
        return tr_cancel_fd(ex->cancel);
}
TR_PUBLIC bool tr_exec_cancelled(const tr_exec *ex) {
        return tr_cancel_is_cancelled(ex->cancel);
}
TR_PUBLIC int64_t tr_exec_deadline_ns(const tr_exec *ex) {
        return atomic_load(&((tr_exec *) ex)->deadline_ns);
}
TR_PUBLIC void tr_exec_set_deadline_ns(tr_exec *ex, int64_t deadline_ns) {
        atomic_store(&ex->deadline_ns, deadline_ns);
}
TR_PUBLIC int64_t tr_exec_remaining_ms(const tr_exec *ex) {
        return (tr_exec_deadline_ns(ex) - tr__now_ns()) / TR_NSEC_PER_MSEC;
}
TR_PUBLIC bool tr_exec_session(const tr_exec *ex) {
        return ex && ex->session;
}
TR_PUBLIC tr_profile tr_exec_profile(const tr_exec *ex) {
        return ex->profile;
}
TR_PUBLIC const tr_limits *tr_exec_limits(const tr_exec *ex) {
        return &ex->limits;
}

TR_PUBLIC void tr_exec_record_tool_call(tr_exec *ex, const char *tool_id, int64_t duration_us, const char *error_op,
                                        const char *error_code) {
        tr_result *res = ex->res;
        if (!res)
                return;
        tr_backend_kind kind = tr_result_backend_kind(res);
        if (tr_result_add_tool_call(res, tool_id, kind, duration_us, error_op, error_code, NULL) < 0 ||
            !ex->req->tool_call_fn)
                return;
        tr_tool_call c = { .tool_id = tool_id ? tool_id : "",
                           .backend = kind,
                           .duration_us = duration_us,
                           .error_op = error_op,
                           .error_code = error_code };
        json_t *o = tr__tool_call_json(&c);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (text)
                ex->req->tool_call_fn(ex->req->tool_call_userdata, &c, text);
        free(text);
}

/* Keep s[0..n) of a stream and hand what the cap kept to the request's
 * output callback as it arrives, so that callers can stream: what the
 * callback sees is exactly what the result will hold. */
static void keep(tr_exec *ex, tr__cbuf *b, tr_stream stream, const char *s, size_t n) {
        size_t before = b->len;
        (void) tr__cbuf_append(b, s, n);
        if (ex->req->output_fn && b->len > before)
                ex->req->output_fn(ex->req->output_userdata, stream, b->data + before, b->len - before);
}

/* Emit s[0..n) to the current sink: the value while inside a value line,
 * stdout otherwise. */
static void sink(tr_exec *ex, const char *s, size_t n) {
        if (n == 0)
                return;
        if (ex->in_value) {
                for (size_t i = 0; i < n && ex->line_head_len < sizeof ex->line_head; i++)
                        ex->line_head[ex->line_head_len++] = s[i];
                (void) tr__cbuf_append(&ex->line, s, n);
        } else
                keep(ex, &ex->out, TR_STREAM_STDOUT, s, n);
}

/* Held bytes that did not become a marker are output after all. */
static void release_held(tr_exec *ex) {
        if (ex->eager_newline)
                (void) tr__cbuf_append(&ex->out, "\n", 1); /* the callback has it */
        else
                keep(ex, &ex->out, TR_STREAM_STDOUT, "\n", 1);
        ex->eager_newline = false;
        keep(ex, &ex->out, TR_STREAM_STDOUT, ex->marker, ex->match - 1);
        ex->match = 0;
}

/* A chunk that ends with "\n" may be followed by a marker, so the result
 * holds that newline back; the output callback gets it at once, or a
 * line-reading consumer would see every line one chunk late.  The runners
 * write "\n" and the marker in one write(), so a transport that splits the
 * two — the only case where the callback then sees one newline more than
 * the result holds — is rare and costs nothing but that newline. */
static void newline_eagerly(tr_exec *ex) {
        if (ex->req->output_fn && ex->out.len < ex->out.limit) {
                ex->req->output_fn(ex->req->output_userdata, TR_STREAM_STDOUT, "\n", 1);
                ex->eager_newline = true;
        }
}

static void begin_value(tr_exec *ex) {
        ex->match = 0;
        ex->in_value = true;
        size_t cap = ex->out.limit;
        tr__cbuf_done(&ex->line);
        tr__cbuf_init(&ex->line, cap);
        ex->line_head_len = 0;
}

static void check_done(tr_exec *ex) {
        if (ex->done_out && ex->done_err && ex->done_fd >= 0)
                (void) eventfd_write(ex->done_fd, 1);
}

/* "#STATUS" (1 to 3 digits, at most 255): the status of a done line; -1
 * for anything else. */
static int done_status(const char *d, size_t n) {
        if (n < 2 || n > 4 || d[0] != '#')
                return -1;
        int st = 0;
        for (size_t i = 1; i < n; i++) {
                if (d[i] < '0' || d[i] > '9')
                        return -1;
                st = st * 10 + (d[i] - '0');
        }
        return st <= 255 ? st : -1;
}

static void set_done_out(tr_exec *ex, int status) {
        if (ex->session || status < 0)
                return;
        ex->done_status = status;
        ex->done_out = true;
        check_done(ex);
}

/* A marker line ended: "#STATUS" is the runner's done line, and no line
 * starting with '#' is a value (no JSON text does; the stderr done line
 * lands here when the snippet sent stderr into stdout).  Anything else is
 * the value (the last one wins). */
static void end_line(tr_exec *ex) {
        ex->in_value = false;
        if (ex->line_head_len > 0 && ex->line_head[0] == '#') {
                if (ex->line.total == 1 && !ex->session) {
                        ex->done_err = true; /* stderr's, sent into stdout */
                        check_done(ex);
                } else if (ex->line.total <= sizeof ex->line_head)
                        set_done_out(ex, done_status(ex->line_head, (size_t) ex->line.total));
                return;
        }
        tr__cbuf tmp = ex->value;
        ex->value = ex->line;
        ex->line = tmp;
        ex->have_value = true;
}

/*
 * Take the value line "\n<marker><json>\n" out of the stream as it arrives,
 * whatever the chunking, so that it never reaches stdout and its size does
 * not depend on how much stdout was kept.  Output is copied in runs between
 * value lines; only a "\n" + marker prefix cut by the end of a chunk is held
 * back (ex->match counts its bytes) until the next chunk decides.  The
 * pattern holds a single '\n', at its start, so a mismatch only has to
 * release the held bytes and look at the current byte afresh.  The last
 * value line wins.
 */
static void scan_stdout(tr_exec *ex, const char *s, size_t n) {
        const char *m = ex->marker;
        size_t mlen = strlen(m);
        size_t start = 0, i = 0;
        while (i < n) {
                if (ex->in_value) {
                        const char *nl = memchr(s + i, '\n', n - i);
                        if (!nl) {
                                i = n;
                                break;
                        }
                        i = (size_t) (nl - s);
                        sink(ex, s + start, i - start);
                        end_line(ex);
                        start = ++i;
                        continue;
                }
                if (ex->match == 0) {
                        const char *nl = memchr(s + i, '\n', n - i);
                        if (!nl) {
                                i = n;
                                break;
                        }
                        size_t at = (size_t) (nl - s), avail = n - at - 1;
                        size_t cmp = avail < mlen ? avail : mlen;
                        if (memcmp(nl + 1, m, cmp) != 0) {
                                i = at + 1; /* plain output: the run goes on */
                                continue;
                        }
                        sink(ex, s + start, at - start);
                        if (cmp == mlen) {
                                begin_value(ex);
                                start = i = at + 1 + mlen;
                                continue;
                        }
                        ex->match = 1 + cmp; /* the chunk ends inside a possible marker */
                        if (cmp == 0)
                                newline_eagerly(ex);
                        start = i = n;
                        break;
                }
                /* Held from the previous chunk: "\n" + m[0 .. match - 1). */
                if (s[i] == m[ex->match - 1]) {
                        /* The newline the callback got frames a value after all. */
                        ex->eager_newline = false;
                        start = ++i;
                        if (++ex->match == mlen + 1)
                                begin_value(ex);
                        continue;
                }
                release_held(ex);
                start = i; /* look at s[i] again */
        }
        sink(ex, s + start, n - start);
}

TR_PUBLIC void tr_exec_append_stdout(tr_exec *ex, const void *data, size_t len) {
        pthread_mutex_lock(&ex->lock);
        scan_stdout(ex, data, len);
        pthread_mutex_unlock(&ex->lock);
}

/* Held stderr bytes that did not become a done line are output after all. */
static void release_held_err(tr_exec *ex) {
        if (ex->eager_err_newline)
                (void) tr__cbuf_append(&ex->err, "\n", 1); /* the callback has it */
        else
                keep(ex, &ex->err, TR_STREAM_STDERR, "\n", 1);
        ex->eager_err_newline = false;
        size_t mlen = strlen(ex->marker), held = ex->ematch - 1; /* after the "\n" */
        keep(ex, &ex->err, TR_STREAM_STDERR, ex->marker, held < mlen ? held : mlen);
        if (held > mlen)
                keep(ex, &ex->err, TR_STREAM_STDERR, "#", 1);
        keep(ex, &ex->err, TR_STREAM_STDERR, ex->edigits, ex->edigits_len);
        ex->ematch = 0;
        ex->edigits_len = 0;
}

/*
 * Take the runner's done lines out of stderr: its own "\n<marker>#\n", and
 * stdout's "\n<marker>#STATUS\n" when the snippet sent stdout into stderr
 * (which then also counts as stdout's), as scan_stdout does with the value
 * line: the same hold-back of a prefix cut by a chunk's end, the same eager
 * newline for the callback.  The prefix holds '\n' only at its start, so a
 * mismatch releases the held bytes and looks at the current byte afresh.
 * Sessions frame their output themselves (session_wire.c): there stderr
 * passes as it is.
 */
static void scan_stderr(tr_exec *ex, const char *s, size_t n) {
        if (ex->session) {
                keep(ex, &ex->err, TR_STREAM_STDERR, s, n);
                return;
        }
        const char *m = ex->marker;
        size_t mlen = strlen(m), plen = mlen + 2; /* "\n" m "#" */
        size_t start = 0, i = 0;
        while (i < n) {
                if (ex->ematch == 0) {
                        const char *nl = memchr(s + i, '\n', n - i);
                        if (!nl)
                                break;
                        size_t at = (size_t) (nl - s);
                        keep(ex, &ex->err, TR_STREAM_STDERR, s + start, at - start);
                        ex->ematch = 1;
                        start = i = at + 1;
                        if (i == n && ex->req->output_fn && ex->err.len < ex->err.limit) {
                                ex->req->output_fn(ex->req->output_userdata, TR_STREAM_STDERR, "\n", 1);
                                ex->eager_err_newline = true;
                        }
                        continue;
                }
                char c = s[i];
                if (ex->ematch < plen) {
                        if (c == (ex->ematch <= mlen ? m[ex->ematch - 1] : '#')) {
                                start = ++i;
                                ex->ematch++;
                                continue;
                        }
                } else if (c >= '0' && c <= '9' && ex->edigits_len < 3) {
                        ex->edigits[ex->edigits_len++] = c;
                        start = ++i;
                        continue;
                } else if (c == '\n') {
                        /* A whole done line: dropped. */
                        start = ++i;
                        if (ex->edigits_len == 0) {
                                ex->done_err = true;
                                check_done(ex);
                        } else {
                                char d[4] = { '#' };
                                memcpy(d + 1, ex->edigits, ex->edigits_len);
                                set_done_out(ex, done_status(d, ex->edigits_len + 1));
                        }
                        ex->ematch = 0;
                        ex->edigits_len = 0;
                        ex->eager_err_newline = false;
                        continue;
                }
                release_held_err(ex);
                start = i; /* look at s[i] again */
        }
        /* Past the loop with a prefix held, everything up to n is held. */
        if (ex->ematch == 0)
                keep(ex, &ex->err, TR_STREAM_STDERR, s + start, n - start);
}

TR_PUBLIC void tr_exec_append_stderr(tr_exec *ex, const void *data, size_t len) {
        pthread_mutex_lock(&ex->lock);
        scan_stderr(ex, data, len);
        pthread_mutex_unlock(&ex->lock);
}

int tr__exec_done_fd(const tr_exec *ex) {
        return ex ? ex->done_fd : -1;
}

bool tr__exec_done(tr_exec *ex, int *ret_status) {
        pthread_mutex_lock(&ex->lock);
        bool done = ex->done_out && ex->done_err;
        if (done && ret_status)
                *ret_status = ex->done_status;
        pthread_mutex_unlock(&ex->lock);
        return done;
}

TR_PUBLIC void tr_exec_log(const tr_exec *ex, tr_log_level level, const char *msg, ...) {
        if (!ex->log)
                return;
        const char *kv[33];
        size_t n = 0;
        va_list ap;
        va_start(ap, msg);
        for (const char *s; n < ARRAY_SIZE(kv) - 1 && (s = va_arg(ap, const char *));)
                kv[n++] = s;
        va_end(ap);
        /* An odd count would pair a key with the terminator; drop it. */
        n &= ~(size_t) 1;
        kv[n] = NULL;
        ex->log(ex->log_userdata, level, msg, kv);
}

int tr__exec_init_output(tr_exec *ex, size_t cap) {
        tr__cbuf_init(&ex->out, cap);
        tr__cbuf_init(&ex->err, cap);
        tr__cbuf_init(&ex->value, cap);
        tr__cbuf_init(&ex->line, cap);
        ex->ematch = ex->edigits_len = ex->line_head_len = 0;
        ex->eager_err_newline = ex->done_out = ex->done_err = false;
        ex->done_status = 0;
        ex->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (ex->done_fd < 0)
                return -errno;
        uint8_t rnd[TR_MARKER_RANDOM_BYTES];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd)) {
                int e = errno ?: EIO;
                close(ex->done_fd);
                ex->done_fd = -1;
                return -e;
        }
        static const char hex[] = "0123456789abcdef";
        char *p = stpcpy(ex->marker, TR_MARKER_HEAD);
        for (size_t i = 0; i < sizeof(rnd); i++) {
                *p++ = hex[rnd[i] >> 4];
                *p++ = hex[rnd[i] & 0xf];
        }
        memcpy(p, TR_MARKER_TAIL, sizeof(TR_MARKER_TAIL));
        return 0;
}

void tr__exec_done_output(tr_exec *ex) {
        tr__cbuf_done(&ex->out);
        tr__cbuf_done(&ex->err);
        tr__cbuf_done(&ex->value);
        tr__cbuf_done(&ex->line);
        if (ex->done_fd >= 0)
                close(ex->done_fd);
        ex->done_fd = -1;
}

/* The captured value as compact JSON, or an error saying why there is none. */
static int take_value(tr_exec *ex, char **ret_json, tr_error **ret_err) {
        *ret_json = NULL;
        if (!ex->have_value)
                return 0;
        tr_backend_kind kind = ex->res->backend;
        if (ex->value.truncated)
                return tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, kind, "value",
                                    "the snippet's value (%" PRIu64 " bytes of JSON) is larger than the output cap "
                                    "of %zu bytes (max_output); raise the cap or return less",
                                    ex->value.total, ex->value.limit);
        json_error_t jerr;
        json_t *v = json_loadb(ex->value.data ? ex->value.data : "", ex->value.len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                               &jerr);
        if (!v)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, kind, "value",
                                    "the snippet's value is not JSON: %s (column %d)", jerr.text, jerr.column);
        *ret_json = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(v);
        if (!*ret_json)
                return tr_error_set(ret_err, TR_E_INTERNAL, kind, "value", "out of memory");
        return 0;
}

void tr__exec_set_egress(tr_exec *ex, tr__egress_proxy *proxy) {
        ex->egress = proxy;
}

void tr__exec_logger(const tr_exec *ex, tr_log_fn *ret_fn, void **ret_userdata) {
        *ret_fn = ex->log;
        *ret_userdata = ex->log_userdata;
}

/* What the sandbox's proxy saw since the previous execution (the proxy
 * lives from prepare to destroy; a session's executions share it). */
static void take_egress(tr_exec *ex, tr_result *res) {
        if (!ex->egress)
                return;
        tr__egress_counts c;
        tr__egress_proxy_take_counts(ex->egress, &c);
        res->has_egress = true;
        res->egress_allowed += c.allowed;
        res->egress_denied += c.denied;
        for (size_t i = 0; i < c.n_denied_targets; i++) {
                size_t n = tr__strv_len(res->egress_denied_targets);
                if (n < TR__EGRESS_MAX_DENIED_TARGETS &&
                    tr__strv_push(&res->egress_denied_targets, c.denied_targets[i]) < 0)
                        break;
        }
        tr__egress_counts_done(&c);
}

int tr__exec_finish_output(tr_exec *ex, tr_error **ret_err) {
        tr_result *res = ex->res;
        take_egress(ex, res);
        pthread_mutex_lock(&ex->lock);
        /* Held bytes that never became a marker are output after all; a
         * value line cut by the end of the stream still counts. */
        if (ex->match > 0)
                release_held(ex);
        if (ex->in_value)
                end_line(ex);
        if (ex->ematch > 0)
                release_held_err(ex);
        char *value = NULL;
        int r = take_value(ex, &value, ret_err);
        free(res->value_json);
        res->value_json = value;
        free(res->out);
        free(res->err);
        res->out_truncated = ex->out.truncated;
        res->err_truncated = ex->err.truncated;
        res->out = tr__cbuf_steal(&ex->out, &res->out_len);
        res->err = tr__cbuf_steal(&ex->err, &res->err_len);
        pthread_mutex_unlock(&ex->lock);
        if (r >= 0 && (!res->out || !res->err))
                r = tr_error_set(ret_err, TR_E_INTERNAL, res->backend, "output", "out of memory");
        return r;
}

void tr__exec_retract_newline(tr_exec *ex, tr_stream stream) {
        pthread_mutex_lock(&ex->lock);
        if (stream == TR_STREAM_STDOUT) {
                /* A chunk's trailing "\n" is held back (scan_stdout), never
                 * yet in `out`: forget it. */
                if (ex->match == 1 && !ex->in_value) {
                        ex->match = 0;
                        ex->eager_newline = false;
                }
        } else if (!ex->err.truncated && ex->err.len > 0 && ex->err.data[ex->err.len - 1] == '\n') {
                ex->err.data[--ex->err.len] = '\0';
                ex->err.total--;
        }
        pthread_mutex_unlock(&ex->lock);
}
