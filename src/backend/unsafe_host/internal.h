/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the unsafe_host backend: its handle, one sandbox (the
 * supervisor and the interpreter it runs), and the split between
 * unsafe_host.c (spawning, one-shot runs) and session.c (the session seam
 * and the keeper thread a session's supervisor is forked from).
 */
#pragma once

#include <sys/types.h>

#include "core/plan.h"
#include "toolruntime.h"

typedef struct uh {
        char *python;
        char *sh;
        char *sdk_path;
} uh;

#define UH_KIND TR_BACKEND_UNSAFE_HOST

typedef struct uh_fds {
        int in[2], out[2], err[2], status[2], ctl[2], gw[2];
} uh_fds;

struct uh_keeper;

/* One prepared snippet process: the supervisor is up and the interpreter
 * waits for the marker line and the code on stdin. */
typedef struct uh_sb {
        char workdir[32];
        uh_fds f;
        pid_t sup; /* -1 once reaped */
        char *interp;
        struct uh_keeper *keeper; /* a session's: the thread that forked it */
} uh_sb;

int tr__uh_fail(tr_error **ret_err, const char *op, int r, const char *what);
/* Start the supervisor and the interpreter (unsafe_host.c). */
int tr__uh_start(uh *b, uh_sb *s, tr_exec *ex, tr_error **ret_err);

/* session.c: tr__uh_start on a keeper thread that lives until
 * tr__uh_keeper_stop (NULL-safe), and the session callbacks. */
int tr__uh_keeper_start(uh *b, uh_sb *s, tr_exec *ex, tr_error **ret_err);
void tr__uh_keeper_stop(struct uh_keeper *k);
int tr__uh_session_io(void *self, void *sandbox, int *ret_in, int *ret_out, int *ret_errfd, tr_error **ret_err);
int tr__uh_signal(void *self, void *sandbox, int sig, tr_error **ret_err);
int tr__uh_session_begin(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err);
