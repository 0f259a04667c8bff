# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2016,SC2012 # the snippets expand in the sandbox; ls lists our own names
#
# QEMU's containment on the kata backend (src/backend/kata/jail.c): what a
# QEMU broken out of by its guest would find.  Each case looks at the real
# QEMU of a running execution from the host: its namespaces, its root, its
# cgroup, and its memory while the snippet churns the TCG translation cache.
#
# The numbers the caps are made of (README, "The kata backend"): guest RAM
# = memory limit + 192 MiB; QEMU's host memory cap = guest RAM + 256 MiB.
QEMU_GUEST_OVERHEAD_MIB=192
QEMU_HOST_OVERHEAD_MIB=256
QEMU_STATE_DIR=/run/toolruntime/qemu

# qemu_start PROFILE [exec options...]: start an execution in the background
# and wait (up to 90 s) until its QEMU runs.  Sets QPID (QEMU's host pid),
# QVM (its state directory's name) and QBG (the CLI's pid; its JSON goes to
# $WORK/qemu-out).
qemu_start() {
    local before d
    before=$(ls "$QEMU_STATE_DIR" 2>/dev/null | tr '\n' ' ')
    QPID="" QVM="" OUT='{}'
    local profile=$1
    shift
    local bargs
    mapfile -t bargs < <(backend_args)
    "$TOOLRUNTIME_BIN" exec -p "$profile" --json "${bargs[@]}" "$@" >"$WORK/qemu-out" 2>"$WORK/stderr" &
    QBG=$!
    for _ in $(seq 900); do
        for d in "$QEMU_STATE_DIR"/vm-*; do
            d=${d##*/}
            case " $before " in *" $d "*) continue ;; esac
            if [ -s "$QEMU_STATE_DIR/$d/pid" ]; then
                QVM=$d
                QPID=$(cat "$QEMU_STATE_DIR/$d/pid")
                return 0
            fi
        done
        kill -0 "$QBG" 2>/dev/null || break
        sleep 0.1
    done
    fail "no QEMU state directory appeared under $QEMU_STATE_DIR"
    return 1
}

# qemu_finish: wait for the CLI; OUT/RC as trx sets them.  Then nothing of
# the VM may be left: no state directory, no cgroup.
qemu_finish() {
    wait "$QBG"
    RC=$?
    OUT=$(cat "$WORK/qemu-out")
    printf '%s' "$OUT" | jq -e . >/dev/null 2>&1 || { fail "exec printed no JSON: $(head -c 300 "$WORK/stderr")"; OUT='{}'; }
    [ -n "$QVM" ] || return
    [ ! -e "$QEMU_STATE_DIR/$QVM" ] || fail "state directory $QEMU_STATE_DIR/$QVM left behind"
    local left
    left=$(ls -d /sys/fs/cgroup/*/toolruntime/qemu-"$QVM" /sys/fs/cgroup/toolruntime/qemu-"$QVM" 2>/dev/null)
    assert_eq "$left" "" "QEMU cgroups left behind"
}

# The directory of QEMU's cgroup for CONTROLLER (v1), or its v2 cgroup.
qemu_cgroup_dir() { # CONTROLLER
    local line
    line=$(grep -E "^[0-9]+:([^:]*,)?$1(,[^:]*)?:" "/proc/$QPID/cgroup")
    if [ -n "$line" ]; then
        echo "/sys/fs/cgroup/$1${line#*:*:}"
    else
        echo "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$QPID/cgroup")"
    fi
}

# Issue 9: QEMU's network, mount, pid and IPC namespaces are its own; it
# runs unprivileged, with no_new_privs and its seccomp filter.
t_qemu_namespaces() {
    qemu_start standard -t 60 -c 'import time; time.sleep(3); print("ran=1")' || return
    local ns
    for ns in net mnt pid ipc; do
        assert_ne "$(readlink "/proc/$QPID/ns/$ns")" "$(readlink /proc/self/ns/$ns)" "QEMU's $ns namespace"
    done
    assert_ne "$(awk '/^Uid:/ { print $2 }' "/proc/$QPID/status")" 0 "QEMU's uid"
    assert_eq "$(awk '/^CapEff:/ { print $2 }' "/proc/$QPID/status")" 0000000000000000 "QEMU's capabilities"
    assert_eq "$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$QPID/status")" 1 "QEMU's no_new_privs"
    # -sandbox on: seccomp in filter mode once QEMU has parsed it.
    local s=""
    for _ in $(seq 100); do
        s=$(awk '/^Seccomp:/ { print $2 }' "/proc/$QPID/status" 2>/dev/null)
        [ "$s" = 2 ] && break
        sleep 0.1
    done
    assert_eq "$s" 2 "QEMU's seccomp mode"
    local args
    args=$(tr '\0' ' ' <"/proc/$QPID/cmdline")
    assert_contains "$args" "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny" \
        "QEMU's -sandbox"
    # Its network namespace holds nothing but lo.
    if command -v nsenter >/dev/null && command -v ip >/dev/null; then
        assert_eq "$(nsenter --net="/proc/$QPID/ns/net" ip -o link | awk -F': ' '{ print $2 }' | tr '\n' ' ')" "lo " \
            "network interfaces in QEMU's namespace"
    fi
    qemu_finish
    assert_eq "$RC" 0 "exit status"
    assert_eq "$(kv ran)" 1 "the snippet ran"
}

# Issue 9: QEMU cannot open a host path outside its own root: its root (as
# the kernel resolves it for QEMU, through /proc/PID/root) holds the files
# it opens, read-only, and nothing else.
t_qemu_root_is_minimal() {
    qemu_start standard -t 60 -c 'import time; time.sleep(3); print("ran=1")' || return
    local r=/proc/$QPID/root
    local top
    top=$(ls -A "$r" 2>/dev/null | tr '\n' ' ')
    assert_eq "$top" "dev etc lib lib64 usr vm " "the top of QEMU's root"
    assert_eq "$(ls -A "$r/dev" | tr '\n' ' ')" "null " "QEMU's /dev"
    assert_eq "$(ls -A "$r/etc" | tr '\n' ' ')" "ld.so.cache " "QEMU's /etc"
    assert_eq "$(ls -A "$r/vm" | tr '\n' ' ')" "initrd.img vmlinuz " "QEMU's /vm (the image is an fd)"
    # '..' from its root stays there.
    assert_eq "$(ls -A "$r/../.." | tr '\n' ' ')" "$top" "QEMU's root/../.."
    local p
    for p in "$SECRET" /etc/passwd /etc/shadow /root /proc/1/environ /sys/fs/cgroup /dev/kvm /dev/vda /var/lib/toolruntime \
        "$VM_DIR/rootfs.ext4" /tmp /run; do
        [ -e "$r$p" ] && fail "host path $p is reachable from QEMU's root"
    done
    # Every mount it has is one of those, read-only, nosuid.
    local bad
    bad=$(awk '{ split($6, o, ","); if (o[1] != "ro" || $6 !~ /nosuid/) print $5 " " $6 }' "/proc/$QPID/mountinfo")
    assert_eq "$bad" "" "QEMU's mounts that are writable or allow setuid"
    bad=$(awk '$5 != "/" && $5 !~ "^/(usr|lib|lib64)/" && $5 != "/etc/ld.so.cache" && $5 != "/dev/null" && $5 !~ "^/vm/" { print $5 }' \
        "/proc/$QPID/mountinfo")
    assert_eq "$bad" "" "QEMU's mounts outside its files"
    # The image reaches it as open read-only fds only (QEMU moves the fd
    # of -add-fd elsewhere).
    local fd flags n=0
    for fd in /proc/"$QPID"/fd/*; do
        case "$(readlink "$fd")" in *.ext4*) ;; *) continue ;; esac
        n=$((n + 1))
        flags=$(awk '/^flags:/ { print $2 }' "/proc/$QPID/fdinfo/${fd##*/}")
        assert_eq "$((${flags: -1} & 3))" 0 "access mode of QEMU's image fd ${fd##*/} (flags $flags)"
    done
    assert_ge "$n" 1 "QEMU's open fds on the root image"
    qemu_finish
    assert_eq "$RC" 0 "exit status"
}

# Issue 9 / 15: QEMU runs in a host cgroup capping its memory at guest RAM +
# the documented overhead, its CPU at its vCPUs, its tasks; the cgroup is
# removed afterwards.  limits_enforced.memory holds on both levels.
t_qemu_cgroup_caps() {
    qemu_start standard -t 60 --memory 64M -c 'import time; time.sleep(2); print("ran=1")' || return
    local guest=$((64 + QEMU_GUEST_OVERHEAD_MIB)) mem cpu pids lim
    mem=$(qemu_cgroup_dir memory)
    note "QEMU's memory cgroup: $mem"
    assert_contains "$mem" "/toolruntime/qemu-$QVM" "QEMU's memory cgroup"
    if [ -f "$mem/memory.limit_in_bytes" ]; then
        lim=$(cat "$mem/memory.limit_in_bytes")
        assert_eq "$(cat "$mem/memory.memsw.limit_in_bytes" 2>/dev/null || echo "$lim")" "$lim" "memsw (no swap)"
        cpu=$(cat "$(qemu_cgroup_dir cpu)/cpu.cfs_quota_us")
        pids=$(cat "$(qemu_cgroup_dir pids)/pids.max")
    else
        lim=$(cat "$mem/memory.max")
        cpu=$(awk '{ print $1 }' "$mem/cpu.max")
        pids=$(cat "$mem/pids.max")
    fi
    assert_eq "$lim" $(((guest + QEMU_HOST_OVERHEAD_MIB) * 1024 * 1024)) "QEMU's memory cap (guest RAM + overhead)"
    assert_eq "$cpu" 150000 "QEMU's CPU cap (one vCPU + half a core for its I/O)"
    assert_eq "$pids" 128 "QEMU's task cap"
    qemu_finish
    assert_eq "$RC" 0 "exit status"
    assert_eq "$(j .limits_enforced.memory)" true "limits_enforced.memory"
}

# Issue 15 item 2: a snippet that keeps rewriting and running 8 MiB of
# machine code fills QEMU's translation cache (1 GiB by default: RSS 767
# MiB for a 256 MiB guest).  Bounded (-accel tcg,tb-size), QEMU stays within
# guest RAM + the overhead, without being killed by its cgroup.  Bounded:
# the snippet churns for 8 s; the host samples QEMU's RSS meanwhile.
t_qemu_translation_cache_churn() {
    qemu_start standard -t 90 --memory 64M -c '
import ctypes, mmap, time
size = 8 << 20
chunk = 1 << 20
m = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
base = ctypes.addressof(ctypes.c_char.from_buffer(m))
fns = [ctypes.CFUNCTYPE(ctypes.c_uint32)(base + i) for i in range(0, size, chunk)]
n = (chunk - 1) // 3
end = time.time() + 8
runs = 0
while time.time() < end:
    # mov eax,[rsp] / mov ecx,[rsp]: each guest load becomes an inline
    # softmmu TLB lookup, so the host code is many times the guest bytes;
    # rewriting a chunk invalidates what was translated from it.
    i = runs % len(fns)
    m.seek(i * chunk)
    m.write((b"\x8b\x04\x24" if (runs // len(fns)) % 2 else b"\x8b\x0c\x24") * n + b"\xc3")
    fns[i]()
    runs += 1
print("mib_run=" + str(runs))
' || return
    local max=0 rss
    while kill -0 "$QBG" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$QPID/status" 2>/dev/null)
        [ -n "$rss" ] && [ "$rss" -gt "$max" ] && max=$rss
        sleep 0.2
    done
    qemu_finish
    local guest=$((64 + QEMU_GUEST_OVERHEAD_MIB))
    note "QEMU's peak RSS: $((max / 1024)) MiB (guest RAM $guest MiB, code run: $(kv mib_run) MiB)"
    assert_eq "$RC" 0 "exit status (QEMU was not killed by its cgroup)"
    assert_ge "$(kv mib_run)" 8 "MiB of generated code run (the whole 8 MiB at least once)"
    assert_le "$max" $(((guest + QEMU_HOST_OVERHEAD_MIB) * 1024)) "QEMU's peak RSS (KiB)"
}

# A VM that fails to start (here: a "kernel" that is a directory, which
# QEMU cannot load inside its root) is vm_creation_failed and leaves
# nothing: no QEMU, no state directory, no cgroup.
t_qemu_failed_start_leaves_nothing() {
    local before after cg_before cg_after
    before=$(ls "$QEMU_STATE_DIR" 2>/dev/null)
    cg_before=$(ls -d /sys/fs/cgroup/*/toolruntime/qemu-* /sys/fs/cgroup/toolruntime/qemu-* 2>/dev/null)
    mkdir -p "$WORK/not-a-kernel"
    OUT=$("$TOOLRUNTIME_BIN" exec --json -b kata --kernel "$WORK/not-a-kernel" --initrd "$VM_DIR/initrd.img" \
        --vm-image "$VM_DIR/rootfs.ext4" -c 'print(1)' 2>"$WORK/stderr")
    RC=$?
    assert_eq "$(j .error.code)" vm_creation_failed "error code"
    assert_contains "$(j .error.message)" "could not load kernel" "error message (QEMU's own words)"
    after=$(ls "$QEMU_STATE_DIR" 2>/dev/null)
    cg_after=$(ls -d /sys/fs/cgroup/*/toolruntime/qemu-* /sys/fs/cgroup/toolruntime/qemu-* 2>/dev/null)
    assert_eq "$after" "$before" "QEMU state directories"
    assert_eq "$cg_after" "$cg_before" "QEMU cgroups"
}

# A caller killed with SIGKILL takes its QEMU with it (PR_SET_PDEATHSIG,
# set after QEMU's identity change, which clears it).  What it leaves, the
# state directory and the empty cgroups, is gc's; removed here by hand.
t_qemu_dies_with_its_caller() {
    qemu_start standard -t 60 -c 'import time; time.sleep(40)' || return
    sleep 1
    kill -9 "$QBG"
    wait "$QBG" 2>/dev/null
    local st=""
    for _ in $(seq 30); do
        st=$(awk '{ print $3 }' "/proc/$QPID/stat" 2>/dev/null)
        case "$st" in "" | Z) break ;; esac
        sleep 0.1
    done
    assert_one_of "${st:-gone}" "gone Z" "QEMU's state 3 s after its caller was killed"
    kill -9 "$QPID" 2>/dev/null
    rm -f "$QEMU_STATE_DIR/$QVM/pid"
    rmdir "$QEMU_STATE_DIR/$QVM/root" "$QEMU_STATE_DIR/$QVM" 2>/dev/null
    for _ in $(seq 20); do
        rmdir /sys/fs/cgroup/*/toolruntime/qemu-"$QVM" /sys/fs/cgroup/toolruntime/qemu-"$QVM" 2>/dev/null
        [ -z "$(ls -d /sys/fs/cgroup/*/toolruntime/qemu-"$QVM" /sys/fs/cgroup/toolruntime/qemu-"$QVM" 2>/dev/null)" ] && break
        sleep 0.1
    done
}

for c in t_qemu_namespaces t_qemu_root_is_minimal t_qemu_cgroup_caps t_qemu_translation_cache_churn \
    t_qemu_failed_start_leaves_nothing t_qemu_dies_with_its_caller; do
    register_case kata "$c"
done
