#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Custom images (issue 13): `image build --tag NAME --apt python3-numpy`
# builds a sandbox image with numpy on the same base and rules; a second
# build of the same recipe (as flags, then as a recipe file) does no work;
# exec --image runs it on containerd and, converted once into a read-only
# ext4, on kata; image ls lists it, image rm removes it with its converted
# VM image and refuses an image toolruntime did not make; gc drops a
# converted VM image no image points at.  Slow the first time (mmdebstrap
# of the package set, about a minute); the build cache keeps it.
set -u
S=${TR_TEST_CONTAINERD_SOCKET:-}
TR=${TOOLRUNTIME_BIN:?}
# The checks look at containerd right after exec: it waits for the removal.
export TOOLRUNTIME_WAIT_CLEANUP=1
VM_DIR=${TR_TEST_VM_DIR:-/var/lib/toolruntime/vm}
CACHE=${TR_TEST_IMAGE_CACHE:-/var/lib/toolruntime/cache}
skip() { if [ "${CI:-}" = true ]; then echo "FAIL: $*"; exit 1; fi; echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "building images needs root"
[ -S "$S" ] || skip "TR_TEST_CONTAINERD_SOCKET not set"
command -v mmdebstrap >/dev/null || skip "mmdebstrap missing"
D=$(mktemp -d /tmp/tr-images-custom.XXXXXX)
NAME=tr-test-sci
cleanup() {
    ctr -a "$S" images rm "$NAME:latest" tr-test-foreign:latest >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT
fails=0
ok() { echo "ok - $1"; }
bad() { echo "not ok - $1: $2"; fails=$((fails + 1)); }
T() { "$TR" "$@" --socket "$S"; }
NUMPY='import numpy; __out = int(numpy.arange(5).sum())'

# Bad input is refused before any work.
out=$("$TR" image build --socket "$S" --tag x --apt 'python3;touch /tmp/p' 2>&1)
[ $? = 2 ] && grep -q "not a Debian package name" <<<"$out" && ok "a bad package name" || bad "bad package name" "$out"
out=$("$TR" image build --socket "$S" --apt python3-numpy 2>&1)
[ $? = 2 ] && grep -q "needs --tag" <<<"$out" && ok "--apt without --tag" || bad "--apt without --tag" "$out"
printf 'tag a\nfrom debian\n' > "$D/bad.recipe"
out=$("$TR" image build --socket "$S" --recipe "$D/bad.recipe" 2>&1)
[ $? = 2 ] && grep -q "unknown key 'from'" <<<"$out" && ok "a bad recipe" || bad "bad recipe" "$out"

t0=$(date +%s)
out=$(T image build --cache "$CACHE" --tag "$NAME" --apt python3-numpy 2>&1) || { echo "$out"; echo "FAIL: build"; exit 1; }
echo "# first build: $(($(date +%s) - t0)) s"
t0=$(date +%s%N)
out=$(T image build --cache "$CACHE" --tag "$NAME" --apt python3-numpy 2>&1)
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q "up to date: $NAME:latest" <<<"$out" && ! grep -q mmdebstrap <<<"$out" && ok "same recipe again: no work (${ms} ms)" ||
    bad "rebuild" "$out"
printf '# the numpy image\ntag %s\napt python3-numpy\n' "$NAME" > "$D/sci.recipe"
out=$(T image build --cache "$CACHE" --recipe "$D/sci.recipe" 2>&1)
grep -q "up to date: $NAME:latest" <<<"$out" && ok "the same recipe as a file: no work" || bad "recipe file" "$out"

out=$("$TR" exec --json --socket "$S" --image "$NAME" -c "$NUMPY" 2>&1)
jq -e '.value == 10' <<<"$out" >/dev/null && ok "numpy on containerd" || bad "numpy on containerd" "$out"
# The image's rules: not root, a read-only root, nothing setuid.
out=$("$TR" exec --json --socket "$S" --image "$NAME" -l sh -c \
    'id -u; touch /usr/x 2>/dev/null && echo writable; find / -xdev -perm /6000 -type f 2>/dev/null | wc -l' 2>&1)
[[ "$(jq -j .stdout <<<"$out" | tr '\n' ' ')" =~ ^[1-9][0-9]*\ 0\ $ ]] &&
    ok "not root, read-only root, no setuid file" || bad "image rules" "$out"

ls=$(T image ls --json)
jq -e --arg n "$NAME:latest" 'any(.[]; .name == $n and .source == "build")' <<<"$ls" >/dev/null &&
    ok "image ls lists it" || bad "image ls" "$ls"

VMC="$D/vm-images"
if command -v qemu-system-x86_64 >/dev/null && [ -f "$VM_DIR/vmlinuz" ]; then
    K=(--kernel "$VM_DIR/vmlinuz" --initrd "$VM_DIR/initrd.img")
    t0=$(date +%s%N)
    out=$("$TR" exec --json -b kata "${K[@]}" --socket "$S" --vm-image-cache "$VMC" --image "$NAME" -t 120 -c "$NUMPY" 2>"$D/err")
    first=$((($(date +%s%N) - t0) / 1000000))
    jq -e '.value == 10' <<<"$out" >/dev/null && ok "numpy on kata (with the conversion: ${first} ms)" ||
        bad "numpy on kata" "$out $(cat "$D/err")"
    n=$(find "$VMC" -name '*.ext4' | wc -l)
    t0=$(date +%s%N)
    out=$("$TR" exec --json -b kata "${K[@]}" --socket "$S" --vm-image-cache "$VMC" --image "$NAME" -t 120 -c "$NUMPY" 2>"$D/err")
    again=$((($(date +%s%N) - t0) / 1000000))
    jq -e '.value == 10' <<<"$out" >/dev/null && ! grep -q converting "$D/err" && [ "$n" = 1 ] &&
        ok "kata again: the cached image, no conversion (${again} ms)" || bad "kata cache" "$out"
    [ "$(ctr -a "$S" leases ls -q | wc -l)" = 0 ] && ok "the conversion left no lease" || bad "conversion lease" \
        "$(ctr -a "$S" leases ls)"
else
    [ "${CI:-}" = true ] && bad "kata" "no qemu or no VM images in $VM_DIR"
    echo "# kata part skipped: no qemu or no VM images in $VM_DIR"
    mkdir -p "$VMC"
fi

# gc: a converted image whose digest no image points at goes, ours stays.
orphan=$(printf '%064d' 0)
: > "$VMC/$orphan.ext4"
"$TR" gc --socket "$S" --vm-image-cache "$VMC" >/dev/null
[ ! -e "$VMC/$orphan.ext4" ] && ok "gc drops an unused converted VM image" || bad "gc orphan" "still there"
if [ -n "$(find "$VMC" -name '*.ext4' -print -quit)" ] || ! command -v qemu-system-x86_64 >/dev/null; then
    ok "gc keeps the image of a present container image"
else bad "gc" "removed the used VM image"; fi

# image rm: refuses what toolruntime did not make; removes ours, with the
# converted VM image.
ctr -a "$S" images tag --force toolruntime-sandbox:latest tr-test-foreign:latest >/dev/null
ctr -a "$S" images label tr-test-foreign:latest io.toolruntime.owner= >/dev/null
out=$(T image rm tr-test-foreign 2>&1)
[ $? != 0 ] && grep -q "not built or pulled by toolruntime" <<<"$out" && ctr -a "$S" images ls -q | grep -qx tr-test-foreign:latest &&
    ok "image rm leaves a foreign image alone" || bad "rm foreign" "$out"
out=$(T image rm --vm-image-cache "$VMC" "$NAME" 2>&1)
[ $? = 0 ] && ! ctr -a "$S" images ls -q | grep -qx "$NAME:latest" && [ -z "$(find "$VMC" -name '*.ext4' -print -quit)" ] &&
    ok "image rm removes it and its VM image" || bad "rm" "$out"
exit $((fails > 0))
