/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-execution gateway session: serves the request's tr_gateway to the
 * sandboxed code over whatever stream a backend provides, speaking the
 * message protocol of docs/gateway-protocol.md, enforcing MaxToolCalls and
 * MaxChainSteps on the host and recording every call in the execution's
 * result.  Owns its server threads and every fd handed to it.
 *
 * The core opens one per execution (core/plan.c) and a backend attaches
 * the transport its sandbox reaches (core/plan.h: tr__exec_gateway):
 *
 *     tr__gw_session_new(ex, &s, &err);           the core, before run
 *     tr__gw_session_serve_fd(s, fd, &err);       socketpair end / relay fd
 *  or tr__gw_session_listen_unix(s, path, &err);  containerd: bind-mounted socket
 *     ... the backend runs the sandbox ...
 *     tr__gw_session_free(s);                     the core, after run
 */
#pragma once

#include "toolruntime.h"

typedef struct tr__gw_session tr__gw_session;

/* A session for one execution: uses tr_request_gateway() and the effective
 * limits, writes tool-call records into tr_exec_result(ex) (the core decides
 * limits_enforced).  `ex` must outlive the session. */
int tr__gw_session_new(tr_exec *ex, tr__gw_session **ret_session, tr_error **ret_err);

/* Serve one bidirectional stream until EOF or session end.  Takes ownership
 * of `fd` (also on failure).  May be called more than once. */
int tr__gw_session_serve_fd(tr__gw_session *s, int fd, tr_error **ret_err);

/* Listen on a new unix socket at `path` (its directory must already be
 * private to the caller) and serve every connection. */
int tr__gw_session_listen_unix(tr__gw_session *s, const char *path, tr_error **ret_err);

/* Stop every server thread, close every fd, unlink the socket.  NULL-safe. */
void tr__gw_session_free(tr__gw_session *s);

/* The environment variable that tells the in-sandbox SDK where the gateway
 * is: "fd:N" (an inherited stream) or "unix:/path". */
#define TR_GATEWAY_ENV "TOOLRUNTIME_GATEWAY"
