#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# pty_run.py CMD ARGS...: run CMD with stdin, stdout and stderr on a real
# pseudo-terminal (what a user's terminal would receive) and print the bytes
# the terminal got as a Python bytes literal; exit with CMD's status.
import os
import pty
import sys

pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
data = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:  # EIO: the child closed its side
        break
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
print(repr(data))
sys.exit(os.waitstatus_to_exitcode(status))
