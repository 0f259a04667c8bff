/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers for the gateway: a fake backend that serves a session to an
 * in-process client, and a tiny synchronous protocol client. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "toolruntime.h"

typedef void (*tgw_client_fn)(int fd, void *userdata);

/* Run `client` against a gateway session of an execution of a request with
 * `gw` and `limits` (may be NULL).  `unix_socket` chooses listen_unix over
 * a socketpair.  Returns the execution's result (caller frees). */
tr_result *tgw_run(tr_gateway *gw, const tr_limits *limits, bool unix_socket, tgw_client_fn client, void *userdata);
/* The same with a cancel token (may be NULL) for the execution. */
tr_result *tgw_run_cancel(tr_gateway *gw, const tr_limits *limits, bool unix_socket, tr_cancel *cancel,
                          tgw_client_fn client, void *userdata);

/* Send one raw frame / a message; read one reply (NULL on EOF or garbage). */
int tgw_send_raw(int fd, const void *data, size_t len);
int tgw_send(int fd, const char *type, json_int_t id, const char *payload_json);
json_t *tgw_recv(int fd);
/* send + recv; asserts the id matches. */
json_t *tgw_call(int fd, const char *type, const char *payload_json);

/* A test gateway: t:echo (returns its args), t:fail (tool_failed), t:big
 * (a result over the frame cap), t:slow (sleeps 200 ms). */
tr_gateway *tgw_test_gateway(void);

/* Whether process `pid` is gone (or a zombie) within `ms`. */
bool tgw_wait_gone(pid_t pid, int ms);
/* Read `max` pids (whitespace-separated) from `path`, waiting up to
 * `wait_ms` for the file to hold them all; returns how many (0 or max). */
int tgw_read_pids(const char *path, pid_t *pids, int max, int wait_ms);
/* CLOCK_MONOTONIC in seconds. */
double tgw_now_s(void);
