# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2034 # WALL_MS etc. are read by run.sh
#
# A tiny test harness for the security suite: named cases, assertions that
# say what they expected, and a runner that drives the toolruntime CLI the
# way a user does.  Sourced by run.sh.

TESTS_RUN=0
TESTS_FAILED=0
FAILED_NAMES=()
CASE=""
CASE_FAILED=0
CASE_IDS=()

note() { printf '    %s\n' "$*"; }

fail() {
    CASE_FAILED=1
    printf '    FAIL: %s\n' "$*"
}

assert_eq() { # actual expected what
    [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

assert_ne() { # actual unexpected what
    [ "$1" != "$2" ] || fail "$3: must not be '$2'"
}

assert_one_of() { # actual "choice1 choice2 ..." what
    case " $2 " in *" $1 "*) [ -n "$1" ] && return ;; esac
    fail "$3: expected one of '$2', got '$1'"
}

assert_contains() { # haystack needle what
    case "$1" in *"$2"*) ;; *) fail "$3: expected to contain '$2', got: $(printf '%.300s' "$1")" ;; esac
}

assert_not_contains() { # haystack needle what
    case "$1" in *"$2"*) fail "$3: must not contain '$2'" ;; esac
}

assert_le() { # actual max what
    [ "$1" -le "$2" ] 2>/dev/null || fail "$3: expected <= $2, got '$1'"
}

assert_ge() { # actual min what
    [ "$1" -ge "$2" ] 2>/dev/null || fail "$3: expected >= $2, got '$1'"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

CASES=()

# register_case "BACKENDS" FUNCTION: run FUNCTION when the backend under test
# ($BACKEND) is one of BACKENDS ("containerd", "kata" or "containerd kata").
register_case() {
    case " $1 " in *" $BACKEND "*) CASES+=("$2") ;; esac
}

# backend_args [BACKEND]: the exec options that select a backend and point it
# at the test's containerd or VM images.
backend_args() {
    case "${1:-$BACKEND}" in
        kata)
            if [ -n "${TR_TEST_KATA_IMAGE:-}" ]; then
                # A container image's root in the guest (exec -b kata --image).
                printf '%s\n' -b kata --kernel "$VM_DIR/vmlinuz" --initrd "$VM_DIR/initrd.img" \
                    --socket "$TR_TEST_CONTAINERD_SOCKET" --namespace "$NS" --image "$TR_TEST_KATA_IMAGE" \
                    --vm-image-cache "${TR_TEST_VM_IMAGE_CACHE:-/var/lib/toolruntime/vm/images}"
            else
                printf '%s\n' -b kata --kernel "$VM_DIR/vmlinuz" --initrd "$VM_DIR/initrd.img" \
                    --vm-image "$VM_DIR/rootfs.ext4"
            fi
            ;;
        *) printf '%s\n' -b containerd --socket "$TR_TEST_CONTAINERD_SOCKET" --namespace "$NS" --image "$IMAGE" ;;
    esac
}

# trx PROFILE [exec options...]: run `toolruntime exec --json` on the backend
# under test.  Sets OUT (the JSON), RC (exit status), WALL_MS, and RUN_MS:
# WALL_MS without the VM's boot on kata (backend.details.boot_ms: seconds of
# TCG that vary with the machine's load and are not the snippet's time; the
# request's timeout counts from the end of it), WALL_MS elsewhere.  TRX_BACKEND
# overrides the backend for one call (a kata case starting a container).
trx() {
    local profile=$1
    shift
    local t0 bargs
    mapfile -t bargs < <(backend_args "${TRX_BACKEND:-$BACKEND}")
    t0=$(now_ms)
    OUT=$("$TOOLRUNTIME_BIN" exec -p "$profile" --json "${bargs[@]}" \
        "${EXTRA_EXEC_ARGS[@]}" "$@" 2>"$WORK/stderr")
    RC=$?
    WALL_MS=$(( $(now_ms) - t0 ))
    local id
    id=$(printf '%s' "$OUT" | jq -r '.backend.details.container_id // empty' 2>/dev/null)
    [ -n "$id" ] && CASE_IDS+=("$id")
    if ! printf '%s' "$OUT" | jq -e . >/dev/null 2>&1; then
        fail "exec printed no JSON (exit $RC): $(printf '%.300s' "$OUT") stderr: $(head -c 300 "$WORK/stderr")"
        OUT='{}'
    fi
    local boot
    boot=$(printf '%s' "$OUT" | jq -r '.backend.details.boot_ms // 0' 2>/dev/null)
    RUN_MS=$(( WALL_MS - ${boot:-0} ))
}

# j FILTER: a field of the last result (jq -r).
j() { printf '%s' "$OUT" | jq -r "$1"; }

# The snippet's stdout, one "key=value" per line, as printed by the
# snippets below; kv KEY gives the value.
kv() { j .stdout | awk -v k="$1=" 'index($0, k) == 1 { print substr($0, length(k) + 1); exit }'; }

# What the backend under test holds for executions.  Everything it creates
# must be gone after each case: containerd's objects, or QEMU processes.
backend_state() {
    if [ "$BACKEND" = kata ]; then
        echo "qemu=$(qemu_count)"
    else
        ctrd_state
    fi
}

qemu_count() {
    local n=0 p
    for p in /proc/[0-9]*; do
        case "$(readlink "$p/exe" 2>/dev/null)" in */qemu-system-*) n=$((n + 1)) ;; esac
    done
    echo "$n"
}

ctrd_state() {
    local c t l s
    c=$(ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" containers ls -q 2>/dev/null | wc -l)
    t=$(ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" tasks ls -q 2>/dev/null | wc -l)
    l=$(ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" leases ls -q 2>/dev/null | wc -l)
    s=$(ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" snapshots ls 2>/dev/null | awk 'NR>1 && $3=="Active"' | wc -l)
    echo "containers=$c tasks=$t leases=$l active_snapshots=$s"
}

# Host processes still in the cgroup of one of this case's containers: a
# sandbox that leaves one behind has escaped its cleanup.  (Matching by
# container id, not by uid, keeps other users of the host out of it.)
leftover_procs() {
    [ ${#CASE_IDS[@]} -gt 0 ] || { echo 0; return; }
    local args=() id
    for id in "${CASE_IDS[@]}"; do args+=(-e "$id"); done
    grep -l -F "${args[@]}" /proc/[0-9]*/cgroup 2>/dev/null | wc -l
}

# Each sandbox runs as its own host uid, leased from this range (the
# library's default, TR_UID_RANGE_DEFAULT_*) and never 65534.
UID_FIRST=1879048192
UID_LAST=1879113727

# check_sandbox_uid: assert the last result ran as a leased host uid and
# set SBX_UID to the uid its snippet saw: a container's snippet is that host
# uid itself (backend.details.host_uid); a VM's snippet is the guest's
# 65534 (the host uid is QEMU's).
check_sandbox_uid() {
    local u
    u=$(j '.backend.details.host_uid // empty')
    if ! [[ "$u" =~ ^[0-9]+$ ]] || [ "$u" -lt "$UID_FIRST" ] || [ "$u" -gt "$UID_LAST" ]; then
        fail "host_uid '$u' is not in the sandbox uid range $UID_FIRST-$UID_LAST"
    fi
    if [ "$(j .backend.kind)" = kata ]; then SBX_UID=65534; else SBX_UID=$u; fi
}

run_case() { # name function
    CASE=$1
    CASE_FAILED=0
    CASE_IDS=()
    TESTS_RUN=$((TESTS_RUN + 1))
    printf '%s\n' "--- $CASE"
    "$2"
    # Cleanup is part of every case: nothing may be left in containerd and
    # no sandbox process may survive on the host.
    local after
    # A killed QEMU may take a moment to be reaped by its parent.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        after=$(backend_state)
        [ "$after" = "$BASELINE_STATE" ] && break
        sleep 0.2
    done
    assert_eq "$after" "$BASELINE_STATE" "$BACKEND state after the case"
    local procs=-1
    # The task is deleted before exec returns (TOOLRUNTIME_WAIT_CLEANUP), but
    # the kernel may still be reaping the last processes of a killed cgroup.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        procs=$(leftover_procs)
        [ "$procs" = 0 ] && break
        sleep 0.2
    done
    assert_eq "$procs" 0 "sandbox processes left on the host"
    if [ "$CASE_FAILED" = 0 ]; then
        printf 'ok   %s\n' "$CASE"
    else
        printf 'FAIL %s\n' "$CASE"
        printf '    last result: %.600s\n' "$OUT"
        TESTS_FAILED=$((TESTS_FAILED + 1))
        FAILED_NAMES+=("$CASE")
    fi
}
