/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a snippet is started, the same in every sandbox: an interpreter whose
 * argv is a small runner that reads the snippet from stdin (so code size is
 * not bounded by ARG_MAX and never appears in `ps`), points stdin at
 * /dev/null, runs the code and, for Python, reports `__out` as the last
 * stdout line "\n__OUT__:<json>\n".
 */
#pragma once

#include "toolruntime.h"

/* A NULL-terminated argv for the request's effective language, with `python`
 * and `sh` as the interpreters' paths inside the sandbox (NULL: "python3",
 * "/bin/sh").  Free with tr__strv_free. */
int tr__runner_argv(const tr_request *req, const char *python, const char *sh, char ***ret_argv, tr_error **ret_err);

/* The environment of every sandbox (NULL-terminated, static): PATH, LANG,
 * HOME=/tmp and Python's unbuffered / no-bytecode switches.  Unbuffered so
 * that output printed before a timeout or a kill is not lost in a buffer. */
const char *const *tr__runner_base_env(void);

#define TR_OUT_PREFIX "__OUT__:"
