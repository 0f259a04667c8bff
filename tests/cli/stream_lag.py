#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Run a command and say how long before its end the first line of its
stdout arrived: proof that output streams as it is produced.

usage: stream_lag.py CMD ARGS...  ->  prints "<lag_ms> <stdout as JSON>",
exits with the command's status."""
import json
import subprocess
import sys
import time

proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
first_at = None
out = b""
while True:
    chunk = proc.stdout.read1(65536)
    if not chunk:
        break
    if first_at is None:
        first_at = time.monotonic()
    out += chunk
rc = proc.wait()
end = time.monotonic()
lag = int((end - first_at) * 1000) if first_at is not None else -1
print(lag, json.dumps(out.decode("utf-8", "replace")))
sys.exit(rc)
