/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers for the gateway: a fake backend that serves a session to an
 * in-process client, and a tiny synchronous protocol client. */
#pragma once

#include <jansson.h>

#include "toolruntime.h"

typedef void (*tgw_client_fn)(int fd, void *userdata);

/* Run `client` against a gateway session of an execution of a request with
 * `gw` and `limits` (may be NULL).  `unix_socket` chooses listen_unix over
 * a socketpair.  Returns the execution's result (caller frees). */
tr_result *tgw_run(tr_gateway *gw, const tr_limits *limits, bool unix_socket, tgw_client_fn client, void *userdata);

/* Send one raw frame / a message; read one reply (NULL on EOF or garbage). */
int tgw_send_raw(int fd, const void *data, size_t len);
int tgw_send(int fd, const char *type, json_int_t id, const char *payload_json);
json_t *tgw_recv(int fd);
/* send + recv; asserts the id matches. */
json_t *tgw_call(int fd, const char *type, const char *payload_json);

/* A test gateway: t:echo (returns its args), t:fail (tool_failed), t:big
 * (a result over the frame cap), t:slow (sleeps 200 ms). */
tr_gateway *tgw_test_gateway(void);
