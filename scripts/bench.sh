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
# Where the CPU goes: this script, and so the private containerd, its shims,
# runc and the clients, run in a cpuacct cgroup of their own (v1; the
# sandboxes' own processes are in their containers' cgroups, outside it), so
# that bench.py can divide its usage by the executions it ran.
cg=/sys/fs/cgroup/cpuacct/toolruntime-bench-$$
if [ -w /sys/fs/cgroup/cpuacct ] && mkdir "$cg" 2>/dev/null && echo $$ > "$cg/cgroup.procs"; then
    export TR_BENCH_CPUACCT=$cg/cpuacct.usage
else
    cg=
fi
cleanup() {
    scripts/containerd-private.sh stop "$work/containerd" >/dev/null 2>&1 || true
    rm -rf "$work"
    if [ -n "$cg" ]; then
        echo $$ > /sys/fs/cgroup/cpuacct/cgroup.procs 2>/dev/null || true
        rmdir "$cg" 2>/dev/null || true
    fi
}
trap cleanup EXIT
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
