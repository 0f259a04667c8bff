#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Convert a container image that is in containerd into a read-only ext4
# root image for the kata backend's QEMU runner, once per image digest:
#
#   DIR/<hex of DIGEST>.ext4
#
# The image's root filesystem is mounted read-only through containerd
# (`ctr images mount`: a view snapshot of its unpacked layers), copied to a
# staging tree where the sandbox rules are applied -- no setuid/setgid bit,
# the mount points the guest agent fills (/tmp /dev /proc /run) present --
# and made into ext4 by mke2fs -d (no loop device).  The guest agent and
# kernel stay toolruntime's: only the root the snippet is chrooted into
# changes.  A block image rather than a filesystem shared into the guest
# (virtio-fs, 9p): no host daemon serving files to a guest, the same
# read-only virtio-blk path as the default image, and nothing of the host's
# snapshot store visible to the VM.
#
# usage: images/vm/from-image.sh --socket PATH --namespace NS --out DIR
#                                --name NAME --digest DIGEST
# Prints the image's path on the last line of stdout.  Concurrent runs for
# the same digest wait for each other (flock) and convert once.
set -eu
sock=/run/containerd/containerd.sock ns=default out="" name="" digest=""
while [ $# -gt 0 ]; do
    case "$1" in
        --socket) sock=$2; shift 2 ;;
        --namespace) ns=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --digest) digest=$2; shift 2 ;;
        *) echo "vm-image: unknown argument: $1" >&2; exit 2 ;;
    esac
done
die() { echo "vm-image: error: $*" >&2; exit 1; }
{ [ -n "$out" ] && [ -n "$name" ]; } || die "--out and --name are required"
hex=${digest#sha256:}
printf '%s' "$hex" | grep -Eqx '[0-9a-f]{64}' || die "not a sha256 digest: $digest"
for t in ctr mke2fs flock; do command -v "$t" >/dev/null || die "$t is missing (apt-get install containerd e2fsprogs util-linux)"; done
[ "$(id -u)" = 0 ] || die "converting an image needs root (mounting its snapshot, keeping file owners)"
mkdir -p "$out"
img="$out/$hex.ext4"
exec 9>"$out/.$hex.lock"
flock 9
if [ -s "$img" ]; then
    echo "$img"
    exit 0
fi
work=$(mktemp -d "$out/.convert-$hex.XXXXXX")
mnt="$work/mnt" tree="$work/tree"
mkdir -p "$mnt" "$tree"
# ctr names the view snapshot and its lease after the target path.
cleanup() {
    if mountpoint -q "$mnt" 2>/dev/null; then
        ctr -a "$sock" -n "$ns" images unmount --rm "$mnt" >/dev/null 2>&1 || umount "$mnt" 2>/dev/null || true
    fi
    rm -rf "$work" "$img.tmp"
}
trap cleanup EXIT INT TERM
echo "vm-image: converting $name ($digest) into a VM root image..." >&2
ctr -a "$sock" -n "$ns" images mount "$name" "$mnt" >/dev/null || die "cannot mount $name from containerd"
cp -a "$mnt/." "$tree/"
ctr -a "$sock" -n "$ns" images unmount --rm "$mnt" >/dev/null || die "cannot unmount $name"
# The rules of toolruntime's own images: no privilege path in the root
# (the guest also mounts it nosuid and sets no_new_privs: a second layer).
find "$tree" -xdev -type f -perm /6000 -exec chmod ug-s {} +
# Mount points: the root is read-only in the guest, so the agent cannot
# make them there.
for d in tmp dev proc run; do
    [ -L "$tree/$d" ] && rm -f "$tree/$d"
    mkdir -p "$tree/$d"
done
chmod 1777 "$tree/tmp"
kb=$(du -sk "$tree" | cut -f1)
# Room for ext4's own metadata only: the image is never written.
size=$(( kb + kb / 5 + 16384 ))
mke2fs -q -F -t ext4 -O ^has_journal -m 0 -L trroot -d "$tree" "$img.tmp" "${size}K" || die "mke2fs failed"
chmod 0644 "$img.tmp"
mv "$img.tmp" "$img"
echo "vm-image: done: $img ($(du -h --apparent-size "$img" | cut -f1))" >&2
echo "$img"
