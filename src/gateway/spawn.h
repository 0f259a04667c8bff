/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host processes for tools: manifest commands and MCP servers.  Spawned with
 * posix_spawn (safe in a threaded library, unlike fork) into their own
 * process group, with a clean signal mask (our server threads block every
 * signal, and a child must not inherit that), every other fd closed, and
 * pipes for stdin/stdout.  Killing means SIGKILL to the whole group before
 * reaping the leader, so the group id cannot be reused in between.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "toolruntime.h"

typedef struct tr__proc {
        pid_t pid;
        int pidfd;  /* readable once the child exits; -1 when unsupported */
        int in_fd;  /* our end of its stdin */
        int out_fd; /* our end of its stdout */
        int err_fd; /* our end of its stderr, or -1 (then /dev/null) */
} tr__proc;

#define TR__PROC_INIT \
        { .pid = -1, .pidfd = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1 }

/* A tool's stderr goes to the host's log, line by line, never back into the
 * sandbox: it may hold what the tool should not tell (paths, secrets in an
 * error) and is not the tool's answer.  Lines are cut at TR__ERRLOG_LINE
 * bytes; at most TR__ERRLOG_MAX bytes are logged until tr__errlog_reset (one
 * tool run, one MCP request), then a single "stderr truncated" line. */
#define TR__ERRLOG_LINE 1024
#define TR__ERRLOG_MAX  (64 * 1024)
typedef struct tr__errlog {
        tr_log_fn log; /* NULL: stderr is read and dropped */
        void *log_ud;
        const char *key; /* "tool" or "server" */
        const char *who;
        char line[TR__ERRLOG_LINE + 1];
        size_t len;
        size_t logged;
        bool capped;
} tr__errlog;

void tr__errlog_feed(tr__errlog *l, const char *p, size_t n);
/* Log a last partial line. */
void tr__errlog_flush(tr__errlog *l);
void tr__errlog_reset(tr__errlog *l);
/* Read `fd` (non-blocking) until EAGAIN into the log; true at EOF or error. */
bool tr__errlog_drain(tr__errlog *l, int fd);

/* The whole environment a tool or MCP server gets: PATH (the caller's, or a
 * default), LANG (the caller's, or C.UTF-8), HOME=`home` (a private
 * directory), and each variable named in `names` that the caller has set.
 * Nothing else of the caller's environment reaches a tool.  Free with
 * tr__strv_free. */
int tr__tool_env(const char *home, char *const *names, char ***ret_envp);

/* `envp` NULL: the caller's environment.  `cwd` NULL: unchanged.  argv[0]
 * is looked up in $PATH when it has no '/'.  Our fds are non-blocking. */
int tr__proc_spawn(char *const argv[], const char *cwd, char *const envp[], bool capture_stderr, tr__proc *ret,
                   tr_error **ret_err);

/* SIGKILL the process group, reap the leader, close every fd.  Idempotent. */
void tr__proc_kill(tr__proc *p);

/* write() that cannot raise SIGPIPE in the calling thread (EPIPE instead):
 * the library must not kill its embedder because a tool exited early. */
ssize_t tr__write_nosigpipe(int fd, const void *buf, size_t n);

/* Run a command to completion with environment `envp`: `input` on its
 * stdin, stdout collected up to `max_out` bytes, stderr into `errlog`.  Fails with
 * TR_E_TIMEOUT after `timeout_ms`, TR_E_CANCELLED as soon as a cancel fd of
 * the tool call `ctx` (may be NULL) fires (callctx.h), TR_E_TOOL_FAILED when the
 * output is over the cap, the exit status is not 0 or the command cannot
 * start.  Timeout and cancel kill the command's whole process group. */
int tr__proc_run(const tr_call_ctx *ctx, char *const argv[], const char *cwd, char *const envp[], tr__errlog *errlog,
                 const char *input, size_t in_len, int64_t timeout_ms, size_t max_out, char **ret_out, size_t *ret_len,
                 tr_error **ret_err);
