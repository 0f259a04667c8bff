#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Start the system containerd in the background when its socket is absent
# (machines without systemd, e.g. containers and CI), and wait for it.
# Usage: scripts/start-containerd.sh [SOCKET]
set -eu
sock=${1:-/run/containerd/containerd.sock}
if [ -S "$sock" ] && ctr -a "$sock" version >/dev/null 2>&1; then
    echo "containerd: already running ($sock)"
    exit 0
fi
command -v containerd >/dev/null || { echo "containerd: not installed: apt-get install containerd runc" >&2; exit 1; }
mkdir -p /var/log/toolruntime
echo "containerd: starting (log: /var/log/toolruntime/containerd.log)"
nohup containerd --address "$sock" >/var/log/toolruntime/containerd.log 2>&1 </dev/null &
i=0
while [ $i -lt 100 ]; do
    if [ -S "$sock" ] && ctr -a "$sock" version >/dev/null 2>&1; then
        echo "containerd: ready"
        exit 0
    fi
    i=$((i + 1))
    sleep 0.1
done
echo "containerd: did not come up within 10 s; see /var/log/toolruntime/containerd.log" >&2
exit 1
