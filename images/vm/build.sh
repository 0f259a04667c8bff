#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Build what the kata backend's QEMU runner boots, into OUT
# (default /var/lib/toolruntime/vm):
#
#   vmlinuz      the kernel of Debian's linux-image-cloud-amd64, extracted
#                from the package (no boot loader: QEMU loads it directly)
#   initrd.img   a tiny initramfs: the static guest agent as /init plus the
#                virtio modules (the cloud kernel builds virtio-mmio,
#                virtio-blk and virtio-console as modules, so something must
#                load them before the root image can be reached)
#   rootfs.ext4  the read-only root image: the shared Debian + python3 tree
#                of images/rootfs.sh, as ext4 made by mke2fs -d (no root
#                privileges, no loop device)
#
# Idempotent: each part has a stamp and is rebuilt only when its inputs
# change (--force rebuilds all).  `toolruntime image build --vm` runs this.
#
# usage: images/vm/build.sh [--out DIR] [--rootfs DIR] [--agent PATH] [--force]
# (TR_AGENT / TR_ROOTFS_DIR in the environment do what --agent / --rootfs do)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=/var/lib/toolruntime/vm
# The same tree (and cache) as the container image's build
# (images/sandbox/build.sh), so one rootfs.sh run serves both.
rootfs=${TR_ROOTFS_DIR:-/var/lib/toolruntime/cache/rootfs}
agent=${TR_AGENT:-}
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --out=*) out=${1#--out=}; shift ;;
        --rootfs) rootfs=$2; shift 2 ;;
        --rootfs=*) rootfs=${1#--rootfs=}; shift ;;
        --agent) agent=$2; shift 2 ;;
        --agent=*) agent=${1#--agent=}; shift ;;
        --force) force=1; shift ;;
        -h|--help) sed -n '3,20p' "$0"; exit 0 ;;
        *) echo "vm: unknown argument: $1" >&2; exit 2 ;;
    esac
done

say() { echo "vm: $*"; }
die() { echo "vm: error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing: apt-get install $2"; }

need apt-get apt
need dpkg-deb dpkg
need cpio cpio
need gzip gzip
need mke2fs e2fsprogs

mkdir -p "$out"
cache="$out/.cache"
mkdir -p "$cache"

# --- the agent -------------------------------------------------------------
# Prefer a built one (the CLI passes --agent); else an installed or built
# copy next to this tree; else compile it here (gcc -static, libc6-dev).
# The CLI that runs us (TOOLRUNTIME_BIN, as `make check` sets it) names its
# build directory; otherwise the newest agent of any build directory here.
if [ -z "$agent" ] && [ -n "${TOOLRUNTIME_BIN:-}" ]; then
    c=$(dirname "$TOOLRUNTIME_BIN")/../../guest/agent/toolruntime-agent
    [ -x "$c" ] && agent=$c
fi
if [ -z "$agent" ]; then
    # shellcheck disable=SC2012
    agent=$(ls -t "$src"/build*/guest/agent/toolruntime-agent 2>/dev/null | head -n1 || true)
fi
if [ -z "$agent" ]; then
    for c in /usr/local/libexec/toolruntime/toolruntime-agent /usr/libexec/toolruntime/toolruntime-agent; do
        if [ -x "$c" ]; then agent=$c; break; fi
    done
fi
if [ -z "$agent" ]; then
    need cc gcc
    say "compiling the guest agent (static)"
    cc -std=gnu17 -O2 -static -D_GNU_SOURCE -I"$src/src" -o "$cache/toolruntime-agent" \
        "$src"/guest/agent/*.c "$src/src/util/frame.c"
    agent="$cache/toolruntime-agent"
fi
[ -x "$agent" ] || die "agent $agent is not executable"
if command -v file >/dev/null 2>&1 && ! file "$agent" | grep -q 'statically linked'; then
    die "the agent $agent is not statically linked"
fi
say "agent: $agent"

# --- the kernel ------------------------------------------------------------
kdir="$cache/kernel"
if [ "$force" = 1 ] || [ ! -f "$kdir/.ok" ]; then
    need apt-cache apt
    rm -rf "$kdir" "$kdir.tmp"
    mkdir -p "$kdir.tmp"
    say "downloading linux-image-cloud-amd64 (apt-get download)"
    # The meta package names the current ABI's image package.
    (cd "$kdir.tmp" && apt-get download -q linux-image-cloud-amd64 >/dev/null 2>&1) ||
        die "apt-get download linux-image-cloud-amd64 failed (run apt-get update?)"
    pkg=$(dpkg-deb -f "$kdir.tmp"/linux-image-cloud-amd64_*.deb Depends | tr ',' '\n' |
          sed -n 's/^ *\(linux-image-[0-9][^ ]*-cloud-amd64\).*/\1/p' | head -n1)
    [ -n "$pkg" ] || die "cannot tell which kernel package linux-image-cloud-amd64 depends on"
    say "downloading $pkg"
    (cd "$kdir.tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
    dpkg-deb -x "$kdir.tmp/${pkg}"_*.deb "$kdir.tmp/x"
    mv "$kdir.tmp" "$kdir"
    echo "$pkg" > "$kdir/.ok"
fi
pkg=$(cat "$kdir/.ok")
vmlinuz=$(ls "$kdir"/x/boot/vmlinuz-* | head -n1)
[ -f "$vmlinuz" ] || die "no vmlinuz in $pkg"
kver=${vmlinuz##*/vmlinuz-}
if ! cmp -s "$vmlinuz" "$out/vmlinuz" 2>/dev/null; then
    cp "$vmlinuz" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
fi
cp "$kdir/x/boot/config-$kver" "$out/kernel.config"
say "kernel: $kver"

# --- the initramfs: agent + the virtio modules the kernel does not build in --
moddir="$kdir/x/lib/modules/$kver/kernel"
config="$out/kernel.config"
ird="$cache/initrd"
rm -rf "$ird"
mkdir -p "$ird/modules" "$ird/dev" "$ird/proc" "$ird/sys" "$ird/root"
cp "$agent" "$ird/init"
chmod 0755 "$ird/init"
: > "$ird/modules/order"
# Add a module after its dependencies (read from the .ko's modinfo section,
# since kmod's modinfo may not be installed).
add_mod() {
    grep -qx "$1.ko" "$ird/modules/order" && return 0
    f=$(find "$moddir" -name "$1.ko" | head -n1)
    [ -n "$f" ] || die "module $1 not found in $pkg"
    for d in $(grep -a -o 'depends=[a-z0-9_,-]*' "$f" | head -n1 | sed 's/depends=//; s/,/ /g'); do
        add_mod "$d"
    done
    # (sh has no locals: the recursion above reused $f)
    f=$(find "$moddir" -name "$1.ko" | head -n1)
    cp "$f" "$ird/modules/"
    echo "$1.ko" >> "$ird/modules/order"
}
for opt in VIRTIO VIRTIO_RING VIRTIO_MMIO VIRTIO_BLK VIRTIO_CONSOLE; do
    m=$(echo "$opt" | tr 'A-Z' 'a-z')
    case "$opt" in VIRTIO_RING) continue ;; esac
    if grep -q "^CONFIG_$opt=m" "$config"; then
        add_mod "$m"
    elif ! grep -q "^CONFIG_$opt=y" "$config"; then
        die "the kernel has neither built in nor as a module: CONFIG_$opt"
    fi
done
grep -q '^CONFIG_EXT4_FS=y' "$config" || die "the kernel must have ext4 built in"
say "initramfs modules: $(tr '\n' ' ' < "$ird/modules/order")"
(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 -n > "$out/initrd.img.tmp")
mv "$out/initrd.img.tmp" "$out/initrd.img"

# --- the root image ----------------------------------------------------------
say "root filesystem tree: $rootfs"
mkdir -p "$(dirname "$rootfs")"
# The container image's build holds this lock around its own rootfs.sh run;
# taking it too keeps two builds from racing on the same tree.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$(dirname "$rootfs")/.sandbox-build.lock"
    flock 9
fi
sh "$src/images/rootfs.sh" "$rootfs"
stamp=$(cat "$rootfs/.toolruntime-rootfs-ok")
if [ "$force" = 1 ] || [ ! -f "$out/rootfs.ext4" ] || [ "$(cat "$out/.rootfs-ok" 2>/dev/null)" != "$stamp" ]; then
    kb=$(du -sk "$rootfs" | cut -f1)
    # Room for ext4's own metadata, not for writes: the image is mounted
    # read-only and the snippet writes only to its tmpfs /tmp.
    size=$(( kb + kb / 5 + 16384 ))
    say "making rootfs.ext4 (${size}K) with mke2fs -d"
    rm -f "$out/rootfs.ext4.tmp"
    # No journal (never written), no reserved blocks, a fixed UUID-less label.
    mke2fs -q -F -t ext4 -O ^has_journal -m 0 -L trroot -d "$rootfs" "$out/rootfs.ext4.tmp" "${size}K"
    chmod 0644 "$out/rootfs.ext4.tmp"
    mv "$out/rootfs.ext4.tmp" "$out/rootfs.ext4"
    echo "$stamp" > "$out/.rootfs-ok"
else
    say "rootfs.ext4 up to date"
fi
chmod 0644 "$out/vmlinuz" "$out/initrd.img" "$out/rootfs.ext4"

say "done: $out"
for f in vmlinuz initrd.img rootfs.ext4; do
    printf 'vm:   %-12s %s\n' "$f" "$(du -h --apparent-size "$out/$f" | cut -f1)"
done
