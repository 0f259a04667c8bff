#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `make bench`: a release build, a private containerd with the sandbox image,
# then bench/bench.py (every ratio is against a baseline of the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
B=build-bench
[ -d $B ] || meson setup $B --buildtype=release -Dtests=false >/dev/null
ninja -C $B >/dev/null
bin=$PWD/$B/src/cli/toolruntime
work=$(mktemp -d /tmp/toolruntime-bench-XXXXXX)
trap 'scripts/containerd-private.sh stop "$work/containerd" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
only=${BENCH_ONLY:-}
if [ -x scripts/containerd-private.sh ]; then
    scripts/containerd-private.sh start "$work/containerd" >/dev/null
    export TR_BENCH_CONTAINERD_SOCKET=$work/containerd/containerd.sock
    "$bin" image build --socket "$TR_BENCH_CONTAINERD_SOCKET" >/dev/null
fi
if [ -f images/vm/build.sh ]; then
    "$bin" image build --vm >/dev/null
fi
python3 bench/bench.py --bin "$bin" --runs "${BENCH_RUNS:-21}" ${only:+--only "$only"}
for extra in bench/kata.sh bench/serve.sh; do
    if [ -x "$extra" ] && { [ -z "$only" ] || [[ ",$only," == *",$(basename "$extra" .sh),"* ]]; }; then
        TOOLRUNTIME_BIN=$bin "$extra"
    fi
done
