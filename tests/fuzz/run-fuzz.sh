#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Build the libFuzzer targets with clang (in build-fuzz/) and run each for a
# bounded time.  Usage: tests/fuzz/run-fuzz.sh [SECONDS_PER_TARGET]  (60)
# Exits non-zero on the first crash, leak or timeout (the reproducer is left
# in build-fuzz/tests/fuzz/artifacts/).
set -eu
secs=${1:-60}
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$top/build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" "$top" -Dfuzz=true -Dtests=true -Db_lundef=false >/dev/null
fi
targets=$(cd "$top/tests/fuzz/corpus" && ls)
for t in $targets; do
        ninja -C "$build" "tests/fuzz/$t" >/dev/null
done
mkdir -p "$build/tests/fuzz/artifacts"
for t in $targets; do
        work=$(mktemp -d)
        cp "$top/tests/fuzz/corpus/$t/"* "$work/" 2>/dev/null || true
        echo "== $t for ${secs}s"
        "$build/tests/fuzz/$t" "$work" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
                -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/tests/fuzz/artifacts/$t-" 2>&1 |
                grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' || true
        status=$(ls "$build/tests/fuzz/artifacts/" 2>/dev/null | grep -c "^$t-" || true)
        rm -rf "$work"
        if [ "$status" != 0 ]; then
                echo "$t: crash artifacts in $build/tests/fuzz/artifacts" >&2
                exit 1
        fi
done
echo "fuzzing: no crash"
