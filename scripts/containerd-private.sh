#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# A private containerd for the test suites, so that a user's daemon (and its
# /run/containerd/containerd.sock) is never touched: its own root, state,
# gRPC/ttrpc/debug sockets and config, the CRI plugin disabled (it would
# start CNI and a sandbox image pull we do not need).
#
# usage: scripts/containerd-private.sh start DIR   # prints the socket path
#        scripts/containerd-private.sh stop DIR
#
#   DIR/containerd.sock   the gRPC socket (TR_TEST_CONTAINERD_SOCKET)
#   DIR/containerd.pid    the daemon's pid
#   DIR/containerd.log    its log
#
# Note: containerd 1.6's runc shim keeps its ttrpc sockets under
# /run/containerd/s/<hash of our address> (a path compiled into the shim);
# the hash differs from the system daemon's, so nothing of it is shared.
set -eu
cmd=${1:?usage: $0 start|stop DIR}
dir=${2:?usage: $0 start|stop DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile="$dir/containerd.pid"
sock="$dir/containerd.sock"

running() {
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

case "$cmd" in
start)
    command -v containerd >/dev/null || { echo "containerd-private: containerd is missing: apt-get install containerd runc" >&2; exit 1; }
    if running && [ -S "$sock" ]; then
        echo "$sock"
        exit 0
    fi
    mkdir -p "$dir/root" "$dir/state" "$dir/opt"
    cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$dir/containerd-ttrpc.sock"

[debug]
  address = "$dir/containerd-debug.sock"
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
TOML
    rm -f "$sock"
    # setsid: the daemon must outlive this script and the test runner's
    # process group (a timeout killing the group must not take it down
    # mid-test, and we stop it explicitly).
    setsid containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    i=0
    while [ ! -S "$sock" ]; do
        i=$((i + 1))
        if [ $i -gt 150 ] || ! running; then
            echo "containerd-private: containerd did not come up; log:" >&2
            tail -20 "$dir/containerd.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$sock"
    ;;
stop)
    if running; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            i=$((i + 1)); sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Shims are separate processes that survive the daemon; stop ours (their
    # command line names our address) so that their mounts go too.
    for p in $(pgrep -f "containerd-shim.*-address $sock" 2>/dev/null || true); do
        kill -KILL "$p" 2>/dev/null || true
    done
    # Snapshot mounts left by killed tasks would make rm fail.
    grep " $dir/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$dir/root" "$dir/state" "$dir/opt" "$pidfile" "$sock" "$dir"/*.sock "$dir/config.toml"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
