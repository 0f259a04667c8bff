#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Run the containerd integration suite.  With TR_TEST_CONTAINERD_SOCKET set,
# against that daemon; otherwise (as root, with containerd installed) against
# a private instance started here and stopped after, so that a user's daemon
# is never touched.  The sandbox image is built into it with
# images/sandbox/build.sh when missing (or imported from TR_TEST_IMAGE_TAR, an
# image archive, when that is set: cheaper in CI).
#
# usage: run.sh TEST-BINARY [criterion args...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
bin=${1:?usage: run.sh TEST-BINARY}
shift

skip_or_fail() {
    if [ "${CI:-}" = true ]; then
        echo "containerd suite: FAIL (CI=true): $*" >&2
        exit 1
    fi
    echo "containerd suite: SKIP: $*" >&2
    exit 77
}

export TR_TEST_NAMESPACE=${TR_TEST_NAMESPACE:-default}
export TR_TEST_IMAGE=${TR_TEST_IMAGE:-toolruntime-sandbox:latest}
private=""
if [ -z "${TR_TEST_CONTAINERD_SOCKET:-}" ]; then
    [ "$(id -u)" = 0 ] || skip_or_fail "a private containerd needs root"
    command -v containerd >/dev/null && command -v runc >/dev/null \
        || skip_or_fail "containerd/runc not installed (apt-get install containerd runc)"
    private=$(mktemp -d /var/tmp/tr-ctrd-private.XXXXXX)
    trap '"$top/scripts/containerd-private.sh" stop "$private" >/dev/null 2>&1; rm -rf "$private"' EXIT
    TR_TEST_CONTAINERD_SOCKET=$("$top/scripts/containerd-private.sh" start "$private") \
        || { echo "containerd suite: could not start a private containerd" >&2; exit 1; }
    export TR_TEST_CONTAINERD_SOCKET
fi
[ -S "$TR_TEST_CONTAINERD_SOCKET" ] || skip_or_fail "no containerd socket at $TR_TEST_CONTAINERD_SOCKET"

if ! ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$TR_TEST_NAMESPACE" images ls -q | grep -qx "$TR_TEST_IMAGE"; then
    echo "containerd suite: importing $TR_TEST_IMAGE into $TR_TEST_CONTAINERD_SOCKET ($TR_TEST_NAMESPACE)"
    if [ -n "${TR_TEST_IMAGE_TAR:-}" ]; then
        ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$TR_TEST_NAMESPACE" images import "$TR_TEST_IMAGE_TAR" >&2 \
            || { echo "containerd suite: importing $TR_TEST_IMAGE_TAR failed" >&2; exit 1; }
    else
        "$top/images/sandbox/build.sh" --ref "$TR_TEST_IMAGE" --namespace "$TR_TEST_NAMESPACE" \
        --socket "$TR_TEST_CONTAINERD_SOCKET" >&2 \
        || { echo "containerd suite: image build failed" >&2; exit 1; }
    fi
fi

# Not exec: the EXIT trap must stop the private daemon after the tests.
rc=0
"$bin" "$@" || rc=$?
exit $rc
