#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Build the Debian + python3 root filesystem that both sandboxes use (the
# container image and the VM root image), into DIR.  Idempotent: an existing
# DIR/.toolruntime-rootfs-ok stamp whose recipe hash matches skips the build.
#
# usage: images/rootfs.sh DIR
#   TR_ROOTFS_INCLUDE="pkg1,pkg2"  extra Debian packages (part of the recipe hash)
#   TR_ROOTFS_SUITE=bookworm       Debian suite
set -eu
dir=${1:?usage: images/rootfs.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
suite=${TR_ROOTFS_SUITE:-bookworm}
extra=${TR_ROOTFS_INCLUDE:-}
# The recipe is this script, its knobs and the SDK it installs; a change
# rebuilds.  The sort makes the hash independent of the glob's order.
recipe=$( { cat "$0"; echo "$suite $extra";
            find "$here/../sdk/python/toolruntime" "$here/../sdk/python/trtool" -type f \
                 \( -name '*.py' -o -name trtool \) -print0 2>/dev/null \
                 | LC_ALL=C sort -z | xargs -0 -r cat; } \
          | sha256sum | cut -c1-16)
# The container and VM image builds share this rootfs: one build at a
# time, and a waiting one then finds it up to date.
mkdir -p "$(dirname "$dir")"
exec 8>"$dir.lock"
flock 8
if [ -f "$dir/.toolruntime-rootfs-ok" ] && [ "$(cat "$dir/.toolruntime-rootfs-ok")" = "$recipe" ]; then
    echo "rootfs: up to date ($dir)"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "rootfs: mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 1; }
rm -rf "$dir.tmp"
echo "rootfs: building Debian $suite + python3 with mmdebstrap (about a minute)..."
# python3 (not python3-minimal): the __out protocol needs json and the SDK
# needs socket/struct.  --variant=essential leaves apt out: nothing inside a
# sandbox installs packages, and apt + its libraries are a tenth of the image.
# Docs, man pages and locales are dropped because nothing in the sandbox reads
# them.  The merged-usr hook makes the /bin -> usr/bin symlinks itself: left
# to mmdebstrap, bookworm gets the usrmerge package, which pulls in all of
# perl (45 MB) for a one-time conversion.
# shellcheck disable=SC2016 # "$1" in the hook is expanded by mmdebstrap
mmdebstrap --variant=essential --quiet \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="python3${extra:+,$extra}" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/bug/*' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
    "$suite" "$dir.tmp" > "$dir.log" 2>&1 \
    || { tail -n 40 "$dir.log" >&2; echo "rootfs: mmdebstrap failed (full log: $dir.log)" >&2; exit 1; }
rm -f "$dir.log"
# The SDK: `import toolruntime` works for every snippet.
pydir="$dir.tmp/usr/lib/python3/dist-packages/toolruntime"
mkdir -p "$pydir"
if [ -d "$here/../sdk/python/toolruntime" ]; then
    cp "$here"/../sdk/python/toolruntime/*.py "$pydir"/ 2>/dev/null || true
fi
# Byte-compile the SDK now: the sandbox root is read-only, so python could
# never cache it and would recompile it on every execution.
if ls "$pydir"/*.py >/dev/null 2>&1; then
    chroot "$dir.tmp" python3 -m compileall -q /usr/lib/python3/dist-packages/toolruntime
fi
if [ -f "$here/../sdk/python/trtool" ]; then
    install -m 0755 "$here/../sdk/python/trtool" "$dir.tmp/usr/local/bin/trtool"
fi
# mmdebstrap copies the build host's hostname and resolver into the tree;
# neither may travel into a sandbox.  The spec sets the hostname anyway.
echo sandbox > "$dir.tmp/etc/hostname"
printf '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$dir.tmp/etc/hosts"
: > "$dir.tmp/etc/resolv.conf"
# Setuid/setgid bits are a privilege path nobody in a sandbox needs: the
# specs also set no_new_privileges, this is the second, independent layer.
find "$dir.tmp" -xdev -type f -perm /6000 -exec chmod ug-s {} +
# Mount points the sandboxes fill with their own tmpfs / sockets.
mkdir -p "$dir.tmp/run/toolruntime" "$dir.tmp/tmp"
chmod 1777 "$dir.tmp/tmp"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$recipe" > "$dir/.toolruntime-rootfs-ok"
echo "rootfs: done ($(du -sh "$dir" | cut -f1))"
