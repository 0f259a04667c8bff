#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Install what building, running and testing toolruntime needs, from
# Debian's archive only.  Idempotent: packages already present are skipped
# quickly by apt.  Usage: scripts/setup-deps.sh [build|run|test|bench]...
set -eu
want_build=0 want_run=0 want_test=0 want_bench=0
[ $# -eq 0 ] && set -- build run test
for a in "$@"; do
    case $a in
    build) want_build=1 ;;
    run) want_run=1 ;;
    test) want_test=1; want_build=1; want_run=1 ;;
    bench) want_bench=1 ;;
    *) echo "usage: $0 [build|run|test|bench]..." >&2; exit 2 ;;
    esac
done
pkgs=""
[ $want_build = 1 ] && pkgs="$pkgs build-essential meson ninja-build pkg-config libjansson-dev libnghttp2-dev \
    libprotobuf-c-dev protobuf-c-compiler golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev \
    libseccomp-dev nettle-dev libprotobuf-dev libmicrohttpd-dev libcurl4-openssl-dev"
# The libraries the binaries link, and libcurl4 (image pulls, exec --server)
# and libmicrohttpd12 (serve), which the commands that use them dlopen().
[ $want_run = 1 ] && pkgs="$pkgs python3 libseccomp2 containerd runc mmdebstrap umoci qemu-system-x86 qemu-utils e2fsprogs \
    cpio busybox-static ca-certificates libjansson4 libprotobuf-c1 libnghttp2-14 libnettle8 libcurl4 libmicrohttpd12"
[ $want_test = 1 ] && pkgs="$pkgs libcriterion-dev valgrind clang libclang-rt-14-dev jq iproute2 procps \
    util-linux clang-format curl docker-registry apache2-utils python3-yaml systemd strace"
# make bench splits the CPU of an execution by process with perf.
[ $want_bench = 1 ] && pkgs="$pkgs linux-perf"
# The MCP reference server comes from npm.  Machines that already carry a
# Node.js + npm of their own keep it: Debian's npm would conflict with it.
if [ $want_test = 1 ] && ! command -v npm >/dev/null 2>&1; then
    pkgs="$pkgs nodejs npm"
fi
if [ "$(id -u)" != 0 ]; then
    echo "setup-deps: run as root (it installs Debian packages)" >&2
    exit 1
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "setup-deps: everything is installed"
    exit 0
fi
echo "setup-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "setup-deps: done"
