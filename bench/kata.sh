#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# The kata backend's cost over the physical floor: a full execution round
# trip (boot the microVM, agent, python3 runs `__out = 1 + 1`, result back,
# VM gone) against a bare QEMU boot of the same kernel, same machine type
# and accelerator, to a trivial static /init that powers off at once.
# Prints both medians and their ratio (goal: <= 1.25), and the same
# execution run warm in a pool's VM (booted ahead, interpreter waiting;
# goal: <= 50 ms).
#
# usage: bench/kata.sh [--build DIR] [--runs N] [--vm-dir DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
# scripts/bench.sh passes the CLI it built: its build directory is ours.
if [ -n "${TOOLRUNTIME_BIN:-}" ]; then
    build=$(cd "$(dirname "$TOOLRUNTIME_BIN")/../.." && pwd)
else
    build=$src/build
fi
runs=5
vmdir=/var/lib/toolruntime/vm
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --vm-dir) vmdir=$2; shift 2 ;;
        *) echo "usage: bench/kata.sh [--build DIR] [--runs N] [--vm-dir DIR]" >&2; exit 2 ;;
    esac
done
for f in vmlinuz initrd.img rootfs.ext4; do
    [ -f "$vmdir/$f" ] || { echo "kata bench: $vmdir/$f missing (toolruntime image build --vm)" >&2; exit 1; }
done
[ -f "$build/libtoolruntime.so" ] || [ -f "$build/src/libtoolruntime.so" ] ||
    { echo "kata bench: no libtoolruntime.so in $build (meson setup $build && ninja -C $build)" >&2; exit 1; }
lib=$(dirname "$(find "$build" -maxdepth 2 -name libtoolruntime.so | head -n1)")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# The floor: a static /init that only powers off.
cat > "$tmp/init.c" <<'C'
#include <sys/reboot.h>
#include <unistd.h>
int main(void) { reboot(RB_POWER_OFF); for (;;) pause(); }
C
cc -static -O2 -o "$tmp/init" "$tmp/init.c"
mkdir "$tmp/ir"
cp "$tmp/init" "$tmp/ir/init"
(cd "$tmp/ir" && echo init | cpio -o -H newc --quiet | gzip -1 > "$tmp/bare.img")
cc -std=gnu17 -O2 -I"$src/include" -o "$tmp/kata-exec" "$here/kata-exec.c" -L"$lib" -ltoolruntime \
    -Wl,-rpath,"$lib"

# The same accelerator the backend picks (its probe is in the first,
# untimed execution): read it back from a run's details.
accel=tcg
if [ -w /dev/kvm ] && timeout 5 qemu-system-x86_64 -M microvm -accel kvm -cpu host -m 128 -nodefaults \
        -no-user-config -display none -monitor none -no-reboot -kernel "$vmdir/vmlinuz" \
        -append "panic=-1 quiet" </dev/null >/dev/null 2>&1; then
    accel=kvm
fi
cpu=max; [ "$accel" = kvm ] && cpu=host

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "kata bench: $runs runs each, accel $accel"
: > "$tmp/bare.ms"
i=0
while [ $i -lt "$runs" ]; do
    t0=$(date +%s%N)
    timeout 120 qemu-system-x86_64 -M microvm -accel $accel -cpu $cpu -m 512 -smp 1 \
        -nodefaults -no-user-config -display none -monitor none -no-reboot \
        -kernel "$vmdir/vmlinuz" -initrd "$tmp/bare.img" \
        -append "console=ttyS0 quiet loglevel=3 panic=-1 tsc_early_khz=2000000 pci=off rdinit=/init" \
        </dev/null >/dev/null 2>&1
    echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$tmp/bare.ms"
    i=$((i + 1))
done
export TR_VM_KERNEL="$vmdir/vmlinuz" TR_VM_INITRD="$vmdir/initrd.img" TR_VM_IMAGE="$vmdir/rootfs.ext4"
"$tmp/kata-exec" "$runs" > "$tmp/exec.out"
cut -d' ' -f1 "$tmp/exec.out" > "$tmp/exec.ms"
"$tmp/kata-exec" "$runs" "__out = 1 + 1" pool > "$tmp/pool.out"
cut -d' ' -f1 "$tmp/pool.out" > "$tmp/pool.ms"
pool_ms=$(median < "$tmp/pool.ms")

bare=$(median < "$tmp/bare.ms")
exec_ms=$(median < "$tmp/exec.ms")
echo "bare boot to /init + poweroff (ms):  $(tr '\n' ' ' < "$tmp/bare.ms")-> median $bare"
echo "kata exec round trip (ms):           $(tr '\n' ' ' < "$tmp/exec.ms")-> median $exec_ms"
echo "agent reached, boot_ms per exec:     $(cut -d' ' -f2 "$tmp/exec.out" | tr '\n' ' ')"
awk -v e="$exec_ms" -v b="$bare" 'BEGIN { printf "ratio exec/bare: %.2fx (goal <= 1.25x)\n", e / b }'
echo "kata exec in a warm pool's VM (ms):  $(tr '\n' ' ' < "$tmp/pool.ms")-> median $pool_ms (goal <= 50 ms)"
