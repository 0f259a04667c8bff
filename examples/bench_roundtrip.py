# SPDX-License-Identifier: Apache-2.0
# The round trip of one run_tool call to a no-op tool, measured inside the
# sandbox: run with `toolruntime exec --tools examples/tools.json [-b BACKEND]
# examples/bench_roundtrip.py`.  __out: median and p99 in microseconds.
import time

from toolruntime import tools

N = 1000
for _ in range(50):  # warm up: connection, caches
    tools.run_tool("demo:noop", {})
ts = []
t0 = time.perf_counter()
for _ in range(N):
    t = time.perf_counter()
    tools.run_tool("demo:noop", {})
    ts.append(time.perf_counter() - t)
total = time.perf_counter() - t0
ts.sort()
__out = {"tool": "demo:noop", "calls": N, "median_us": round(ts[N // 2] * 1e6, 1), "p99_us": round(ts[int(N * 0.99)] * 1e6, 1),
         # The mean over the whole loop stays meaningful where the clock is
         # too coarse to time one call (a TCG guest ticks in milliseconds).
         "mean_us": round(total / N * 1e6, 1)}
print("run_tool round trip: median %.0f us, p99 %.0f us" % (__out["median_us"], __out["p99_us"]))
