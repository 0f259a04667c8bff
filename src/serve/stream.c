/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ndjson event stream of /v1/execute (Accept: application/x-ndjson):
 * the execution's output as it is produced, one JSON object per line —
 * {"type":"stdout","data":…}, {"type":"stderr","data":…} and
 * {"type":"tool_call",…} as each tool call ends, and last {"type":"result",
 * "result":{…}} (the object a plain request gets) or {"type":"error",
 * "status":N,"error":{…}} for a request refused before it ran.
 *
 * This module owns the buffer between the execution's thread (the
 * library's output callback, then the final events) and the response's
 * reader (libmicrohttpd's connection thread), and the reference count that
 * lets either side finish first.  server.c owns the thread and admission.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve.h"
#include "util/macros.h"

struct tr__ndjson {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        char *buf;
        size_t len, sent;
        bool done;        /* the last event is in the buffer */
        bool reader_gone; /* the response was destroyed (client gone, or done) */
        tr_cancel *cancel;
        unsigned refs;
};

tr__ndjson *tr__ndjson_new(tr_cancel *cancel) {
        tr__ndjson *st = calloc(1, sizeof(*st));
        if (!st)
                return NULL;
        pthread_mutex_init(&st->lock, NULL);
        pthread_cond_init(&st->cond, NULL);
        st->cancel = cancel;
        st->refs = 2; /* the execution and the response */
        return st;
}

static void put(tr__ndjson *st) {
        pthread_mutex_lock(&st->lock);
        bool last = --st->refs == 0;
        pthread_mutex_unlock(&st->lock);
        if (!last)
                return;
        tr_cancel_free(st->cancel);
        free(st->buf);
        pthread_mutex_destroy(&st->lock);
        pthread_cond_destroy(&st->cond);
        free(st);
}

/* One event line; `o` is consumed. */
static void emit(tr__ndjson *st, json_t *o) {
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(o);
        if (!line)
                return;
        size_t n = strlen(line);
        pthread_mutex_lock(&st->lock);
        /* Nobody reads any more: keep nothing. */
        if (!st->reader_gone) {
                char *nb = realloc(st->buf, st->len + n + 2);
                if (nb) {
                        st->buf = nb;
                        memcpy(st->buf + st->len, line, n);
                        st->buf[st->len + n] = '\n';
                        st->len += n + 1;
                }
        }
        pthread_cond_broadcast(&st->cond);
        pthread_mutex_unlock(&st->lock);
        free(line);
}

void tr__ndjson_output(void *userdata, tr_stream stream, const char *data, size_t len) {
        tr__ndjson *st = userdata;
        /* JSON strings are UTF-8; the library's output callback keeps a
         * character split across chunks whole, so only bytes that are not
         * UTF-8 at all become U+FFFD here. */
        _cleanup_free_ char *clean = NULL;
        size_t n = 0;
        if (tr_utf8_sanitize(data, len, &clean, &n, NULL) < 0)
                return;
        emit(st, json_pack("{s:s,s:s%}", "type", stream == TR_STREAM_STDERR ? "stderr" : "stdout", "data", clean, n));
}

void tr__ndjson_tool_call(void *userdata, const tr_tool_call *call, const char *json) {
        (void) call;
        json_t *ev = json_loads(json, 0, NULL);
        if (!json_is_object(ev)) {
                json_decref(ev);
                return;
        }
        /* "type" first, as in every other event. */
        json_t *o = json_pack("{s:s}", "type", "tool_call");
        if (o)
                json_object_update(o, ev);
        json_decref(ev);
        emit(userdata, o);
}

void tr__ndjson_finish(tr__ndjson *st, const tr__serve_reply *rep) {
        json_t *body = rep->body ? json_loads(rep->body, 0, NULL) : NULL;
        if (rep->status == 200 && json_is_object(body)) {
                emit(st, json_pack("{s:s,s:O}", "type", "result", "result", body));
        } else {
                json_t *err = json_object_get(body, "error");
                emit(st, json_pack("{s:s,s:i,s:O}", "type", "error", "status", (int) rep->status, "error",
                                   err ? err : json_null()));
        }
        json_decref(body);
        pthread_mutex_lock(&st->lock);
        st->done = true;
        pthread_cond_broadcast(&st->cond);
        pthread_mutex_unlock(&st->lock);
        put(st);
}

ssize_t tr__ndjson_read(void *cls, uint64_t pos, char *buf, size_t max) {
        (void) pos;
        tr__ndjson *st = cls;
        pthread_mutex_lock(&st->lock);
        while (st->sent == st->len && !st->done) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&st->cond, &st->lock, &ts);
        }
        ssize_t n = TR__STREAM_END;
        if (st->sent < st->len) {
                size_t k = st->len - st->sent < max ? st->len - st->sent : max;
                memcpy(buf, st->buf + st->sent, k);
                st->sent += k;
                n = (ssize_t) k;
        }
        pthread_mutex_unlock(&st->lock);
        return n;
}

void tr__ndjson_reader_done(void *cls) {
        tr__ndjson *st = cls;
        pthread_mutex_lock(&st->lock);
        bool running = !st->done;
        st->reader_gone = true;
        pthread_mutex_unlock(&st->lock);
        /* The client went away before the result: stop the execution. */
        if (running)
                tr_cancel_cancel(st->cancel);
        put(st);
}
