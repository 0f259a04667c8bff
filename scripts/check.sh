#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# `make check`: build with AddressSanitizer + UndefinedBehaviorSanitizer and
# -Werror, start a PRIVATE containerd (own root, state and socket: a user's
# daemon is never touched), build the sandbox images into it, run every
# suite, stop what was started.  Prints "N passed, N failed" at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-check}
export CI=${CI:-}

if [ ! -d "$B" ]; then
    meson setup "$B" --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
        -Dwerror=true -Dtests=true -Dfuzz=true
fi
ninja -C "$B"
scripts/lint.sh

work=$(mktemp -d /tmp/toolruntime-check-XXXXXX)
cleanup() {
    if [ -x scripts/containerd-private.sh ]; then
        scripts/containerd-private.sh stop "$work/containerd" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Sanitizers: fail on the first report; leaks count.
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TOOLRUNTIME_BIN=$PWD/$B/src/cli/toolruntime

if [ -x scripts/containerd-private.sh ]; then
    scripts/containerd-private.sh start "$work/containerd"
    export TR_TEST_CONTAINERD_SOCKET=$work/containerd/containerd.sock
    export TR_TEST_CONTAINERD_DIR=$work/containerd
    "$TOOLRUNTIME_BIN" image build --socket "$TR_TEST_CONTAINERD_SOCKET"
fi
if [ -f images/vm/build.sh ]; then
    "$TOOLRUNTIME_BIN" image build --vm
fi
if [ -x tests/integration/gateway/setup.sh ]; then
    tests/integration/gateway/setup.sh
fi

set +e
meson test -C "$B" --print-errorlogs --num-processes 2 --timeout-multiplier 2
rc=$?
set -e
python3 - "$B/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(f"{p} passed, {f} failed, {s} skipped")
PY
exit $rc
