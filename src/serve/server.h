/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the HTTP server, shared by server.c (routing, authentication, the
 * daemon's life) and admission.c (execution slots and running an execution
 * under one): the server's state and one request's.  serve.h stays the
 * interface of the rest of the service.
 */
#pragma once

#include "serve/mhd.h"
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "serve/serve.h"

struct tr__server {
        const tr__serve_config *cfg;
        const tr__serve_backends *backends;
        tr__serve_metrics *metrics;
        tr__serve_sessions *sessions;
        struct MHD_Daemon *d;
        int listen_fd;
        char address[160];
        char *unix_path; /* removed on free */

        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned running, queued;
        bool draining;
};

/* One HTTP request's state (MHD's con_cls), from its first call to the
 * completion callback. */
typedef struct tr__server_req {
        char *body;
        size_t len, alloc;
        bool too_big;
        bool denied;              /* a response was queued before the body was read */
        unsigned owner;           /* the token's index in cfg->tokens */
        tr__serve_upload *upload; /* PUT of a session file: the body goes there */
} tr__server_req;

/* A route that runs an execution (api.c's /v1 and Piston's, a session's
 * execute). */
typedef void (*tr__serve_route)(const tr__serve_ctx *, const char *, size_t, tr__serve_reply *);

/* The execution slots for /mcp's tools/call executions (mcp_http.c's
 * admission hooks). */
bool tr__server_mcp_admit(void *userdata, const char **ret_why);
void tr__server_mcp_release(void *userdata);
/* Run `route` under an execution slot (waiting in the queue; `rep` says why
 * not when refused), cancelled if the client goes away. */
void tr__server_run_execution(tr__server *s, struct MHD_Connection *c, tr__serve_route route, const char *url,
                              tr__server_req *hr, tr__serve_reply *rep);
/* /v1/execute with Accept: application/x-ndjson: the execution runs on a
 * thread of its own, feeding events to the response as they come (the
 * connection's thread reads them out); the admission slot and the
 * disconnect watch stay with the execution. */
void tr__server_run_streaming(tr__server *s, struct MHD_Connection *c, tr__serve_route route, const char *url,
                              tr__server_req *hr, tr__serve_reply *rep);
