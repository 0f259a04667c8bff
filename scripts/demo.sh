#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `make demo` after install: start containerd if needed, build the sandbox
# image, and run a sample snippet in the default (standard) sandbox.
set -eu
cd "$(dirname "$0")/.."
scripts/start-containerd.sh
toolruntime image build
echo
echo "== toolruntime exec (profile standard: containerd, no network, read-only root, user nobody)"
toolruntime exec -t 20 --memory 128M --pids 32 -c '
import getpass, os, platform, socket
print("hello from the sandbox")
print("user:", getpass.getuser(), "uid:", os.getuid())
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1)
    print("network: reachable")
except OSError as e:
    print("network: unreachable (%s)" % e.strerror)
try:
    open("/escape", "w")
except OSError as e:
    print("write to /:", e.strerror)
__out = {"python": platform.python_version(), "sum": sum(range(10))}'
echo
echo "== the same, as JSON"
toolruntime exec --json -c '__out = {"answer": 6 * 7}'
