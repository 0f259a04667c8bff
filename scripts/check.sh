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
# The suites look at containerd right after `exec` exits: it waits for its
# sandbox's removal (security's t_cleanup_after_exit tests the detached
# default, its sanitizer reports included).
export TOOLRUNTIME_WAIT_CLEANUP=1

if [ -x scripts/containerd-private.sh ]; then
    scripts/containerd-private.sh start "$work/containerd"
    export TR_TEST_CONTAINERD_SOCKET=$work/containerd/containerd.sock
    export TR_TEST_CONTAINERD_DIR=$work/containerd
    "$TOOLRUNTIME_BIN" image build --socket "$TR_TEST_CONTAINERD_SOCKET"
fi
if [ -f images/vm/build.sh ]; then
    "$TOOLRUNTIME_BIN" image build --vm
fi
if [ -x tests/serve/setup.sh ]; then
    tests/serve/setup.sh
fi
if [ -x tests/integration/gateway/setup.sh ]; then
    tests/integration/gateway/setup.sh
fi
if [ -x tests/integration/mcp/setup.sh ]; then
    tests/integration/mcp/setup.sh
fi

set +e
meson test -C "$B" --print-errorlogs --num-processes 2 --timeout-multiplier 2
rc=$?
set -e
# The unit suite again under Valgrind, on a build without sanitizers (the two
# cannot be combined).  Its results go to the same summary.
VG=${B}-valgrind
if [ ! -d "$VG" ]; then
    meson setup "$VG" --buildtype=debug -Dwerror=true -Dtests=true >/dev/null
fi
ninja -C "$VG" >/dev/null
set +e
# Two unit tests cannot run under Valgrind 3.19, for Valgrind's reasons:
# kata-channel's runner uses pidfd_open (not implemented by Valgrind 3.19),
# and containerd-spec's probe children load seccomp filters that deny what
# Valgrind itself needs.  They run under the sanitizers above.
vg_tests=$(meson test -C "$VG" --list --suite unit 2>/dev/null | sed 's/.* \/ //' |
    grep -vxE 'kata-channel|containerd-spec')
# shellcheck disable=SC2086
meson test -C "$VG" --setup valgrind --print-errorlogs --num-processes 2 $vg_tests
vrc=$?
set -e
[ $rc -eq 0 ] && rc=$vrc
python3 - "$B/meson-logs/testlog.json" "$VG/meson-logs/testlog-valgrind.json" <<'PY'
import json, sys
p = f = s = 0
lines = [l for path in sys.argv[1:] for l in open(path)]
for line in lines:
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
