/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP server's admission: how many executions run at once (a slot
 * each, max_concurrency of them) and how many may wait (a bounded queue;
 * beyond it a 429 with Retry-After, while draining a 503), the same slots
 * for /mcp's tools/call executions, and running one route's execution
 * under a slot, either to the end (its reply is the response) or streamed
 * as NDJSON from a thread of its own; both with the disconnect watch that
 * cancels an execution whose client went away.
 */
#include <jansson.h>
#include "serve/mhd.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "serve/server.h"
#include "util/handles.h"
#include "util/macros.h"

/* ---- admission ---------------------------------------------------------- */

typedef enum { ADMIT_OK, ADMIT_FULL, ADMIT_DRAINING } admit_result;

static admit_result admit(tr__server *s) {
        pthread_mutex_lock(&s->lock);
        admit_result r = ADMIT_OK;
        if (s->draining)
                r = ADMIT_DRAINING;
        else if (s->running < s->cfg->max_concurrency)
                s->running++;
        else if (s->queued >= s->cfg->queue)
                r = ADMIT_FULL;
        else {
                s->queued++;
                while (s->running >= s->cfg->max_concurrency)
                        pthread_cond_wait(&s->cond, &s->lock);
                s->queued--;
                s->running++;
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

static void release(tr__server *s) {
        pthread_mutex_lock(&s->lock);
        s->running--;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

/* The same slots for /mcp's tools/call executions (mcp_http.c). */
bool tr__server_mcp_admit(void *userdata, const char **ret_why) {
        tr__server *s = userdata;
        switch (admit(s)) {
        case ADMIT_OK: return true;
        case ADMIT_DRAINING: *ret_why = "the server is shutting down"; return false;
        case ADMIT_FULL: *ret_why = "too many executions are running and waiting; retry later"; return false;
        }
        return false;
}

void tr__server_mcp_release(void *userdata) {
        release(userdata);
}

/* A client that goes away cancels its execution (watch.c). */
static void watch_start(tr__serve_watch *w, struct MHD_Connection *c, tr_cancel *cancel) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        tr__serve_watch_start(w, ci ? ci->connect_fd : -1, cancel);
}

/* Take an execution slot (waiting in the queue), or fill `rep` with why
 * not: 503 while draining, 429 when the queue is full. */
static bool admit_or_refuse(tr__server *s, tr__serve_reply *rep) {
        switch (admit(s)) {
        case ADMIT_DRAINING:
                tr__serve_reply_error(rep, 503, "unavailable", "the server is shutting down");
                rep->retry_after = 1;
                return false;
        case ADMIT_FULL:
                tr__serve_reply_error(rep, 429, "too_many_requests",
                                      "%u executions are running and %u waiting; retry later", s->cfg->max_concurrency,
                                      s->cfg->queue);
                rep->retry_after = 1;
                return false;
        case ADMIT_OK: break;
        }
        return true;
}

void tr__server_run_execution(tr__server *s, struct MHD_Connection *c, tr__serve_route route, const char *url,
                              tr__server_req *hr, tr__serve_reply *rep) {
        if (!admit_or_refuse(s, rep))
                return;
        _cleanup_(tr_cancel_freep) tr_cancel *cancel = NULL;
        if (tr_cancel_new(&cancel, NULL) < 0) {
                release(s);
                tr__serve_reply_error(rep, 500, "internal", "out of memory");
                return;
        }
        tr__serve_watch w;
        watch_start(&w, c, cancel);
        tr__serve_ctx ctx = { .cfg = s->cfg,
                              .backends = s->backends,
                              .metrics = s->metrics,
                              .cancel = cancel,
                              .sessions = s->sessions,
                              .url = url,
                              .owner = hr->owner };
        route(&ctx, hr->body ? hr->body : "", hr->len, rep);
        tr__serve_watch_stop(&w);
        release(s);
}

/* /v1/execute with Accept: application/x-ndjson: the execution runs on a
 * thread of its own, feeding events to the response as they come (the
 * connection's thread reads them out); the admission slot and the
 * disconnect watch stay with the execution. */
typedef struct stream_job {
        tr__server *s;
        tr__serve_route route;
        char *url;
        unsigned owner;
        char *body;
        size_t len;
        int conn_fd;
        tr__ndjson *st;
        tr_cancel *cancel; /* owned by st */
} stream_job;

static void *stream_main(void *arg) {
        stream_job *j = arg;
        tr__serve_watch w;
        tr__serve_watch_start(&w, j->conn_fd, j->cancel);
        tr__serve_ctx ctx = { .cfg = j->s->cfg,
                              .backends = j->s->backends,
                              .metrics = j->s->metrics,
                              .cancel = j->cancel,
                              .output = tr__ndjson_output,
                              .tool_call = tr__ndjson_tool_call,
                              .output_userdata = j->st,
                              .sessions = j->s->sessions,
                              .url = j->url,
                              .owner = j->owner };
        tr__serve_reply rep = { 0 };
        j->route(&ctx, j->body ? j->body : "", j->len, &rep);
        tr__serve_watch_stop(&w);
        tr__ndjson_finish(j->st, &rep);
        free(rep.body);
        tr__server *s = j->s;
        free(j->body);
        free(j->url);
        free(j);
        /* Last: the server may be freed once nothing runs. */
        release(s);
        return NULL;
}

void tr__server_run_streaming(tr__server *s, struct MHD_Connection *c, tr__serve_route route, const char *url,
                              tr__server_req *hr, tr__serve_reply *rep) {
        if (!admit_or_refuse(s, rep))
                return;
        tr_cancel *cancel = NULL;
        stream_job *j = calloc(1, sizeof(*j));
        char *url_copy = strdup(url);
        tr__ndjson *st = NULL;
        if (!j || !url_copy || tr_cancel_new(&cancel, NULL) < 0 || !(st = tr__ndjson_new(cancel))) {
                free(j);
                free(url_copy);
                tr_cancel_free(cancel);
                release(s);
                tr__serve_reply_error(rep, 500, "internal", "out of memory");
                return;
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        *j = (stream_job){ .s = s,
                           .route = route,
                           .url = url_copy,
                           .owner = hr->owner,
                           .body = TAKE_PTR(hr->body),
                           .len = hr->len,
                           .conn_fd = ci ? ci->connect_fd : -1,
                           .st = st,
                           .cancel = cancel };
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, stream_main, j) != 0) {
                pthread_attr_destroy(&attr);
                free(j->body);
                free(j->url);
                free(j);
                tr__ndjson_reader_done(st); /* cancels nothing: not started */
                tr__serve_reply rp = { .status = 500 };
                tr__ndjson_finish(st, &rp);
                release(s);
                tr__serve_reply_error(rep, 500, "internal", "cannot start a thread");
                return;
        }
        pthread_attr_destroy(&attr);
        rep->status = 200;
        rep->content_type = "application/x-ndjson";
        rep->stream_read = tr__ndjson_read;
        rep->stream_free = tr__ndjson_reader_done;
        rep->stream_cls = st;
}
