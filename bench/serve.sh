#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `make bench` part: toolruntime serve (bench/serve.py), over the private
# containerd scripts/bench.sh started.
set -euo pipefail
exec python3 "$(dirname "$0")/serve.py" --bin "${TOOLRUNTIME_BIN:?}" --runs "${BENCH_RUNS:-21}"
