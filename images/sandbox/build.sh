#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Build the containerd sandbox image (Debian + python3, user nobody) and
# import it into containerd.
#
# usage: images/sandbox/build.sh [--ref REF] [--namespace NS] [--socket PATH]
#                                [--cache DIR] [--apt PKG]... [--force]
#
#   --ref        image name           (default toolruntime-sandbox:latest)
#   --namespace  containerd namespace (default default)
#   --socket     containerd socket    (default /run/containerd/containerd.sock)
#   --cache      build cache          (default /var/lib/toolruntime/cache)
#   --apt        an extra Debian package (repeatable): a custom image on the
#                same base and rules, with its own root filesystem in the cache
#   --force      rebuild the image even when containerd has this recipe
#
# Idempotent and cheap to re-run: the image carries the hash of its recipe
# (this script + the rootfs recipe) as the containerd label
# io.toolruntime.recipe; when REF already has it, nothing is done.  When
# only containerd lost the image (a fresh daemon), the cached OCI layout is
# imported again without rebuilding.
set -eu

ref=toolruntime-sandbox:latest
ns=default
sock=/run/containerd/containerd.sock
cache=/var/lib/toolruntime/cache
force=0
apt=""
usage() { sed -n '3,/^[^#]/s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --ref) ref=${2:?--ref needs a value}; shift 2 ;;
        --ref=*) ref=${1#*=}; shift ;;
        --namespace) ns=${2:?--namespace needs a value}; shift 2 ;;
        --namespace=*) ns=${1#*=}; shift ;;
        --socket) sock=${2:?--socket needs a value}; shift 2 ;;
        --socket=*) sock=${1#*=}; shift ;;
        --cache) cache=${2:?--cache needs a value}; shift 2 ;;
        --cache=*) cache=${1#*=}; shift ;;
        --apt) apt="$apt ${2:?--apt needs a value}"; shift 2 ;;
        --apt=*) apt="$apt ${1#*=}"; shift ;;
        --force) force=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; usage ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
start=$(date +%s)
say() { echo "image: $*"; }
die() { echo "image: error: $*" >&2; exit 1; }

# REF = NAME[:TAG]; a digest reference cannot be built.
case "$ref" in *@*) die "--ref must be a name[:tag], not a digest: $ref" ;; esac
name=${ref%:*}; tag=${ref##*:}
case "$ref" in *:*) case "$tag" in */*) name=$ref; tag=latest ;; esac ;; *) name=$ref; tag=latest ;; esac
[ "$ref" = "$name:$tag" ] || ref="$name:$tag"

# The extra packages, sorted and deduplicated: the same set in any order is
# the same recipe.  The names go to mmdebstrap as one comma list, so only
# Debian package names pass (the CLI checks them too).
# (Split on blanks on purpose, with globbing off.)
set -f
# shellcheck disable=SC2086
apt=$(printf '%s\n' $apt | LC_ALL=C sort -u | tr '\n' ' ' | sed 's/^ *//; s/ *$//')
for p in $apt; do
    printf '%s' "$p" | grep -Eqx '[a-z0-9][a-z0-9+.-]+' || die "not a Debian package name: $p"
done
set +f

# mmdebstrap, chroot and root-owned image files need real root.
[ "$(id -u)" = 0 ] || die "building the image needs root (mmdebstrap, chroot, file ownership)"
for tool in umoci ctr flock; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install umoci containerd util-linux)"
done
[ -S "$sock" ] || die "no containerd socket at $sock: start containerd (systemctl start containerd, or the start-containerd.sh toolruntime installs; toolruntime doctor names it) or pass --socket"
ctr_() { ctr -a "$sock" -n "$ns" "$@"; }
ctr_ version >/dev/null 2>&1 || die "containerd at $sock is not answering (ctr version failed)"

mkdir -p "$cache"
# One build at a time per cache: two concurrent runs would race on the
# staging directories and on the import.
exec 9>"$cache/.sandbox-build.lock"
flock 9

# ---- 1. the root filesystem (shared with the VM image) -----------------
say "[1/4] root filesystem${apt:+ (+ $apt)}"
# The plain tree is shared with the VM image; a tree with extra packages
# is its own, named by its package list.
rootfs="$cache/rootfs"
sep=-
prefix=sandbox
if [ -n "$apt" ]; then
    rootfs="$cache/rootfs-apt-$(printf '%s' "$apt" | sha256sum | cut -c1-16)"
fi
if [ "$ref" != toolruntime-sandbox:latest ]; then
    prefix="img-$(printf '%s' "$ref" | tr -c 'a-zA-Z0-9._-' '_')"
    sep=@
fi
TR_ROOTFS_INCLUDE=$(printf '%s' "$apt" | tr ' ' ',') "$here/../rootfs.sh" "$rootfs"
rootfs_hash=$(cat "$rootfs/.toolruntime-rootfs-ok")
recipe=$(sha256sum < "$0" | cut -c1-16)
recipe="$rootfs_hash-$recipe"
# The built OCI layout, kept per image name and recipe, always tagged
# "latest"; an import under another tag retags a throwaway copy.
layout="$cache/$prefix$sep$recipe.oci"

have=$(ctr_ images ls -q "name==$ref,labels.\"io.toolruntime.recipe\"==$recipe" 2>/dev/null || true)
if [ "$force" = 0 ] && [ "$have" = "$ref" ]; then
    say "up to date: $ref (recipe $recipe) in namespace $ns"
    say "size: $(ctr_ images ls "name==$ref" | awk 'NR==2 {print $4, $5}') compressed"
    exit 0
fi

# ---- 2. the trimmed image root, as an OCI layout -----------------------
if [ "$force" = 1 ] || [ ! -s "$layout/index.json" ]; then
    say "[2/4] trimming the root filesystem for the container"
    work="$cache/sandbox-build"
    rm -rf "$work"
    mkdir -p "$work"
    trap 'rm -rf "$work"' EXIT
    # Hard links: no copy of the data, and deleting a link leaves the
    # cached rootfs whole.  Nothing below modifies a file in place.
    cp -al "$rootfs" "$work/root"
    r="$work/root"
    rm -f "$r/.toolruntime-rootfs-ok"
    # Nothing in a sandbox reads these, or could use them as nobody:
    # package management (dpkg, debconf, perl for their scripts),
    # iconv charsets (python has its own codecs), and admin tools' data.
    rm -rf "$r/var/lib/dpkg/info" "$r/var/cache/debconf" "$r/var/lib/apt" "$r/var/cache/apt" \
           "$r/var/log"/* "$r/usr/lib/x86_64-linux-gnu/gconv" \
           "$r/usr/lib/x86_64-linux-gnu/perl-base" "$r/usr/share/perl5" "$r/usr/bin/perl" "$r/usr/bin/perl5"* \
           "$r/usr/share/bash-completion" "$r/usr/share/zsh" "$r/usr/share/menu" "$r/usr/share/pixmaps" \
           "$r/usr/share/applications" "$r/usr/share/lintian" "$r/usr/share/doc-base" "$r/usr/share/info" \
           "$r/usr/share/man" "$r/usr/share/doc" "$r/usr/share/locale" "$r/etc/cron.daily" "$r/etc/logrotate.d"
    # Device nodes (mmdebstrap makes a few) do not belong in an image: the
    # spec mounts a fresh /dev, and the device cgroup decides what opens.
    find "$r/dev" -mindepth 1 -delete
    # Writable by nobody only where the spec mounts a tmpfs: /tmp (and
    # /dev/shm, which the spec mounts over the image's /dev).  Any other
    # world-writable directory (/var/tmp, /run/lock) would be a place to
    # write in the dev profile's writable root.
    find "$r" -xdev -type d -perm -0002 ! -path "$r/tmp" -exec chmod o-w {} +
    if [ -n "$(find "$r" -xdev \( -type f -o -type d \) -perm -0002 ! -path "$r/tmp" | head -n 1)" ]; then
        die "world-writable paths remain in the image root"
    fi
    mkdir -p "$r/run/toolruntime" "$r/tmp"
    chmod 1777 "$r/tmp"
    chmod 0755 "$r/run/toolruntime"
    say "       image root: $(du -sh "$r" | cut -f1) uncompressed"

    say "[3/4] OCI layout (umoci)"
    new="$work/layout"
    umoci init --layout "$new"
    umoci new --image "$new:latest"
    # One layer holding the whole root: a sandbox image has no base to
    # share, and one layer is one snapshot to prepare per execution.
    umoci insert --image "$new:latest" "$r" /
    umoci config --image "$new:latest" \
        --config.user 65534:65534 \
        --config.workingdir /tmp \
        --clear=config.env --config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --config.env LANG=C.UTF-8 \
        --clear=config.cmd --config.cmd python3 \
        --config.label "io.toolruntime.recipe=$recipe" \
        --author toolruntime \
        --manifest.annotation "io.toolruntime.recipe=$recipe" \
        --history.comment "toolruntime sandbox, recipe $recipe"
    umoci gc --layout "$new"
    # Layouts of other recipes are dropped so the cache holds one per name.
    rm -rf "$cache/$prefix$sep"*.oci
    mv "$new" "$layout"
    rm -rf "$work"
    trap - EXIT
else
    say "[2/4] cached OCI layout for recipe $recipe"
    say "[3/4] (skipped)"
fi

# ---- 3. import ---------------------------------------------------------
say "[4/4] importing into containerd ($sock, namespace $ns)"
imp="$cache/sandbox-import"
rm -rf "$imp"
trap 'rm -rf "$imp"' EXIT
# Blobs are hard links; index.json is a real copy, because umoci tag
# rewrites it and the cached layout must keep "latest".
cp -al "$layout" "$imp"
rm "$imp/index.json"
cp "$layout/index.json" "$imp/index.json"
if [ "$tag" != latest ]; then
    umoci tag --image "$imp:latest" "$tag"
    umoci rm --image "$imp:latest"
fi
# An OCI archive is the layout, tarred; --base-name names the image REF
# (the archive only holds the tag).  The import unpacks it into the
# default snapshotter, so the first execution does not pay for that.
tar -C "$imp" -cf - . | ctr_ images import --base-name "$name" - | sed 's/^/image:   /'
rm -rf "$imp"
trap - EXIT
ctr_ images ls -q "name==$ref" | grep -qx "$ref" || die "import did not create $ref"
# The owner label is what `toolruntime image ls` and `image rm` go by.
ctr_ images label "$ref" "io.toolruntime.recipe=$recipe" io.toolruntime.owner=toolruntime \
    io.toolruntime.source=build >/dev/null

size=$(ctr_ images ls "name==$ref" | awk 'NR==2 {print $4, $5}')
say "done: $ref in namespace $ns, $size compressed ($(du -sh "$layout" | cut -f1) cached layout), $(( $(date +%s) - start ))s"
