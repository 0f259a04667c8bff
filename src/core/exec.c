/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One execution as a backend sees it (tr_exec): the request, the deadline,
 * the cancel token, the logger and the capped output streams.  Output caps
 * and the `__out` protocol are handled here, once, for every backend.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
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
TR_PUBLIC tr_profile tr_exec_profile(const tr_exec *ex) {
        return ex->profile;
}
TR_PUBLIC const tr_limits *tr_exec_limits(const tr_exec *ex) {
        return &ex->limits;
}

TR_PUBLIC void tr_exec_append_stdout(tr_exec *ex, const void *data, size_t len) {
        pthread_mutex_lock(&ex->lock);
        (void) tr__cbuf_append(&ex->out, data, len);
        pthread_mutex_unlock(&ex->lock);
}

TR_PUBLIC void tr_exec_append_stderr(tr_exec *ex, const void *data, size_t len) {
        pthread_mutex_lock(&ex->lock);
        (void) tr__cbuf_append(&ex->err, data, len);
        pthread_mutex_unlock(&ex->lock);
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

/* Locate the last line of s[0..n): *ret_start is its first byte, *ret_end
 * one past its last (a final '\n' excluded). */
static void last_line(const char *s, size_t n, size_t *ret_start, size_t *ret_end) {
        size_t end = n;
        if (end > 0 && s[end - 1] == '\n')
                end--;
        size_t start = end;
        while (start > 0 && s[start - 1] != '\n')
                start--;
        *ret_start = start;
        *ret_end = end;
}

/* Parse "__OUT__:<json>" into a compact JSON text; NULL if it is not one. */
static char *parse_value_line(const char *line, size_t len) {
        size_t plen = strlen(TR_OUT_PREFIX);
        if (len < plen || memcmp(line, TR_OUT_PREFIX, plen) != 0)
                return NULL;
        json_error_t jerr;
        json_t *v = json_loadb(line + plen, len - plen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!v)
                return NULL;
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(v);
        return text;
}

int tr__exec_finish_output(tr_exec *ex, const char *language) {
        tr_result *res = ex->res;
        pthread_mutex_lock(&ex->lock);
        bool python = language && streq(language, "python");
        char *value = NULL;
        if (!ex->out.truncated) {
                size_t start, end;
                last_line(ex->out.data ? ex->out.data : "", ex->out.len, &start, &end);
                if (ex->out.data && (value = parse_value_line(ex->out.data + start, end - start))) {
                        /* The Python runner put a newline before the marker. */
                        if (python && start > 0 && ex->out.data[start - 1] == '\n')
                                start--;
                        ex->out.len = start;
                        ex->out.data[start] = '\0';
                }
        } else {
                size_t tlen = 0;
                _cleanup_free_ char *tail = tr__cbuf_tail_linear(&ex->out, &tlen);
                if (tail) {
                        size_t start, end;
                        last_line(tail, tlen, &start, &end);
                        bool complete = ex->out.total - ex->out.limit == tlen;
                        /* The line must be whole: begun inside the tail, or
                         * the tail is everything after the head. */
                        if (start > 0 || complete)
                                value = parse_value_line(tail + start, end - start);
                }
        }
        free(res->value_json);
        res->value_json = value;
        free(res->out);
        free(res->err);
        res->out_truncated = ex->out.truncated;
        res->err_truncated = ex->err.truncated;
        res->out = tr__cbuf_steal(&ex->out, &res->out_len);
        res->err = tr__cbuf_steal(&ex->err, &res->err_len);
        pthread_mutex_unlock(&ex->lock);
        return res->out && res->err ? 0 : -ENOMEM;
}
