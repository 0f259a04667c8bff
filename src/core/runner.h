/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a snippet is started, the same in every sandbox: an interpreter whose
 * argv is a small runner that reads, from stdin, one line holding this
 * execution's value marker, the code's length and the input files' count,
 * the input files (written under the working directory), then the snippet
 * (so code size is not bounded by ARG_MAX and neither appears in `ps` or in
 * the environment), and runs the code with the rest of stdin as its own.
 * The value comes back on stdout as "\n<marker><json>\n": Python's runner
 * writes `__out` so, an sh snippet calls the shell function `trvalue JSON`.
 * The core (exec.c) takes that line out of stdout wherever it appears.
 *
 * A session's sandbox (tr_exec_session; the request's `session` flag) runs
 * the session runner instead: one Python interpreter serving execute,
 * upload and download commands on stdin until EOF, each answered with a
 * line carrying that operation's random end marker on stdout (and, for an
 * execution, on stderr too), so the host (session_wire.c) knows where an
 * execution's output ends.  Its protocol is described at
 * python_session_runner in runner.c.
 *
 * The marker is 128 random bits drawn per execution, so output the snippet
 * merely prints (a file, a tool's answer, a web page) cannot contain it and
 * cannot forge the value.  It is not a secret from the snippet's own code:
 * the runner holds it in the interpreter's memory, and code that goes
 * looking can find it; but that code decides the value anyway.
 */
#pragma once

#include "toolruntime.h"

/* A NULL-terminated argv for the effective language of `ex`'s request (the
 * session runner for a session's shape: Python only; a one-shot Python
 * runner prepared ahead of its code warms itself up while it waits), with `python`
 * and `sh` as the interpreters' paths inside the sandbox (NULL: "python3",
 * "/bin/sh").  Free with tr__strv_free. */
int tr__runner_argv(const tr_exec *ex, const char *python, const char *sh, char ***ret_argv, tr_error **ret_err);

/* What a one-shot runner must read on stdin: the head line, the input
 * files, the code, the snippet's stdin.
 * malloc()ed; *ret_len is its length.  -ENOMEM on failure. */
int tr__runner_stdin(const tr_exec *ex, char **ret_data, size_t *ret_len);

/* The environment of every sandbox (NULL-terminated, static): PATH, LANG,
 * HOME=/tmp and Python's unbuffered / no-bytecode switches.  Unbuffered so
 * that output printed before a timeout or a kill is not lost in a buffer. */
const char *const *tr__runner_base_env(void);

/* The marker: TR_MARKER_HEAD, 32 hex digits, TR_MARKER_TAIL. */
#define TR_MARKER_HEAD         "__TR_VALUE_"
#define TR_MARKER_TAIL         "__:"
#define TR_MARKER_RANDOM_BYTES 16
#define TR_MARKER_SIZE         (sizeof(TR_MARKER_HEAD) - 1 + 2 * TR_MARKER_RANDOM_BYTES + sizeof(TR_MARKER_TAIL))
