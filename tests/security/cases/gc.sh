# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2016,SC2034 # snippets expand in the sandbox; OUT is read by lib.sh
#
# Nothing outlives its owner (issue 9 item 6), and a signal death reads the
# same everywhere (issue 15 item 4):
#   - a caller killed with SIGKILL mid-run: `toolruntime gc` right after
#     removes every object, process, mount and directory of that run (the
#     QEMU and its state record on kata), and leaves a live concurrent
#     execution alone, which then finishes normally;
#   - containerd: with no one left to collect it, the sandbox still stops on
#     its own shortly after its deadline (timeout(1) as its pid 1);
#   - SIGINT / SIGTERM of the CLI cancel, clean up, and exit 130 / 143;
#   - a segfault: exit_code 139 and signal SIGSEGV, on containerd and kata;
#     a snippet's own exit 124 is told apart from the timeout in --json.

GC_STATE_DIR=/run/toolruntime
GC_VM_DIR=/run/toolruntime/vm

# The toolruntime exec command line for the backend under test, in the array
# GC_EXEC (no --json: the caller adds what it needs).
gc_exec_cmd() {
    local bargs
    mapfile -t bargs < <(backend_args)
    GC_EXEC=("$TOOLRUNTIME_BIN" exec -p standard "${bargs[@]}" "${EXTRA_EXEC_ARGS[@]}")
}

# gc against the containerd under test (when there is one) and the VM records.
gc_run() {
    if [ "$HAVE_CONTAINERD" = 1 ]; then
        "$TOOLRUNTIME_BIN" gc -v --socket "$TR_TEST_CONTAINERD_SOCKET" --namespace "$NS" 2>"$WORK/gc.err"
    else
        "$TOOLRUNTIME_BIN" gc -v 2>"$WORK/gc.err"
    fi
}

ctr_ns() { ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" "$@" 2>/dev/null; }

# The container of the execution whose caller is PID (its owner label).
ctrd_id_of_owner() { # PID
    ctr_ns containers ls -q "labels.\"io.toolruntime.owner.pid\"==$1" | head -n1
}

# What containerd still holds of the execution whose caller was PID and whose
# container was ID: containers and leases labelled with that owner, and the
# snapshot of that container.
ctrd_objects_of_owner() { # PID ID
    local f="labels.\"io.toolruntime.owner.pid\"==$1"
    {
        ctr_ns containers ls -q "$f"
        ctr_ns leases ls -q "$f"
        ctr_ns snapshots ls | awk -v k="$2-rootfs" 'NR>1 && $1 == k'
    } | wc -l
}

# Wait until PID's sandbox runs: prints its container id (containerd) or its
# QEMU's pid (kata), or nothing after SECONDS.
wait_sandbox() { # PID SECONDS
    local i id rec
    for i in $(seq $(($2 * 5))); do
        if [ "$BACKEND" = kata ]; then
            for rec in "$GC_VM_DIR"/*.json; do
                [ -f "$rec" ] || continue
                if [ "$(jq -r .owner.pid "$rec" 2>/dev/null)" = "$1" ]; then
                    jq -r .qemu.pid "$rec"
                    return
                fi
            done
        else
            id=$(ctrd_id_of_owner "$1")
            if [ -n "$id" ] && ctr_ns tasks ls | awk -v id="$id" '$1 == id && $3 == "RUNNING" { f = 1 } END { exit !f }'; then
                echo "$id"
                return
            fi
        fi
        [ "$i" -gt 0 ] && sleep 0.2
    done
}

# A live process (not a zombie)?
alive() { # PID
    [ -r "/proc/$1/stat" ] && ! awk '{ sub(/.*\) /, ""); exit !($1 == "Z" || $1 == "X") }' "/proc/$1/stat"
}

vm_record_of_owner() { # PID
    local rec
    for rec in "$GC_VM_DIR"/*.json; do
        [ -f "$rec" ] || continue
        [ "$(jq -r .owner.pid "$rec" 2>/dev/null)" = "$1" ] && echo "$rec"
    done
}

t_gc_after_kill9() {
    gc_exec_cmd
    # The run to kill, and a live one gc must not touch.
    "${GC_EXEC[@]}" --json -t 600 -l sh -c 'echo started; sleep 300' >"$WORK/victim.json" 2>&1 &
    local victim=$!
    "${GC_EXEC[@]}" --json -t 120 -l sh -c 'sleep 8; echo survived' >"$WORK/live.json" 2>"$WORK/live.err" &
    local live=$!
    local boot=20
    [ "$BACKEND" = kata ] && boot=90
    local v_handle l_handle
    v_handle=$(wait_sandbox "$victim" "$boot")
    l_handle=$(wait_sandbox "$live" "$boot")
    if [ -z "$v_handle" ] || [ -z "$l_handle" ]; then
        fail "the sandboxes did not start (victim '$v_handle', live '$l_handle')"
        kill -9 "$victim" 2>/dev/null
        wait "$victim" "$live" 2>/dev/null
        gc_run >/dev/null
        return
    fi
    [ "$BACKEND" = containerd ] && CASE_IDS+=("$v_handle" "$l_handle")
    # The killed caller's QEMU jail (directory and cgroups), which only the
    # caller removes: gc must, once that QEMU is gone.
    local v_jail=""
    if [ "$BACKEND" = kata ]; then
        v_jail=$(grep -lx "$v_handle" /run/toolruntime/qemu/vm-*/pid 2>/dev/null | head -1)
        v_jail=${v_jail%/pid}
        assert_ne "$v_jail" "" "the killed caller's QEMU jail directory before the kill"
    fi
    sleep 1
    kill -9 "$victim"
    wait "$victim" 2>/dev/null
    local out
    out=$(gc_run)
    local rc=$?
    assert_eq "$rc" 0 "gc exit status ($(head -c 300 "$WORK/gc.err"))"
    note "$out"
    if [ "$BACKEND" = containerd ]; then
        local id=$v_handle
        assert_eq "$(ctrd_objects_of_owner "$victim" "$id")" 0 "containers, leases and snapshots of the killed caller"
        assert_eq "$(ctr_ns tasks ls -q | grep -cx "$id")" 0 "the killed caller's task"
        assert_eq "$(grep -c "$id" /proc/self/mountinfo)" 0 "mounts of the killed run"
        assert_eq "$(grep -l -F "$id" /proc/[0-9]*/cgroup 2>/dev/null | wc -l)" 0 "processes of the killed run"
        assert_eq "$(find "$GC_STATE_DIR" -maxdepth 1 -name "$id.*" | wc -l)" 0 "FIFO and gateway directories"
        assert_contains "$(cat "$WORK/gc.err")" "why=" "gc -v says why"
        # The live one is untouched by that gc.
        assert_eq "$(ctrd_id_of_owner "$live")" "$l_handle" "the live execution's container after gc"
    else
        assert_eq "$(alive "$v_handle" && echo alive || echo gone)" gone "the killed caller's QEMU ($v_handle)"
        assert_eq "$(vm_record_of_owner "$victim")" "" "the killed caller's VM state record"
        if [ -n "$v_jail" ]; then
            assert_eq "$([ -e "$v_jail" ] && echo present || echo gone)" gone "the killed caller's QEMU jail directory"
            assert_eq "$(ls -d /sys/fs/cgroup/*/toolruntime/"qemu-${v_jail##*/}" 2>/dev/null | wc -l)" 0 \
                "the killed caller's QEMU cgroups"
        fi
        assert_eq "$(alive "$l_handle" && echo alive || echo gone)" alive "the live execution's QEMU after gc"
        assert_ne "$(vm_record_of_owner "$live")" "" "the live execution's VM state record after gc"
    fi
    wait "$live"
    local lrc=$?
    OUT=$(cat "$WORK/live.json")
    assert_eq "$lrc" 0 "the live execution's exit status ($(head -c 300 "$WORK/live.err"))"
    assert_eq "$(j .stdout)" "survived" "the live execution's output"
    assert_eq "$(j .error)" null "the live execution's error"
    if [ "$BACKEND" = kata ]; then
        assert_eq "$(vm_record_of_owner "$live")" "" "the finished execution's VM state record"
    fi
}
register_case "containerd kata" t_gc_after_kill9

# Start a containerd run of `sleep 300` with timeout SECONDS whose caller
# the case will kill: sets VICTIM (the caller's pid) and VICTIM_ID (its
# container), or fails the case, cleans up and returns 1.
gc_victim() { # SECONDS
    gc_exec_cmd
    "${GC_EXEC[@]}" --json -t "$1" -l sh -c 'sleep 300' >/dev/null 2>&1 &
    VICTIM=$!
    VICTIM_ID=$(wait_sandbox "$VICTIM" 20)
    if [ -z "$VICTIM_ID" ]; then
        fail "the sandbox did not start"
        kill -9 "$VICTIM"
        wait "$VICTIM"
        gc_run >/dev/null
        return 1
    fi
    CASE_IDS+=("$VICTIM_ID")
}

# No one left to collect it: the sandbox stops by itself a little after its
# deadline (10 s margin); gc then removes the rest at once.
t_gc_deadline_without_owner() {
    gc_victim 1 || return
    local victim=$VICTIM id=$VICTIM_ID
    kill -9 "$victim"
    wait "$victim" 2>/dev/null
    local t0 status=RUNNING
    t0=$(now_ms)
    while [ "$status" = RUNNING ] && [ $(($(now_ms) - t0)) -lt 30000 ]; do
        sleep 0.5
        status=$(ctr_ns tasks ls | awk -v id="$id" '$1 == id { print $3 }')
    done
    local took=$(($(now_ms) - t0))
    note "stopped on its own after ${took} ms (status '$status')"
    assert_ne "$status" RUNNING "the orphaned sandbox's task 30 s after its deadline"
    assert_le "$took" 20000 "time for the orphaned sandbox to stop"
    gc_run >/dev/null
    assert_eq "$(ctrd_objects_of_owner "$victim" "$id")" 0 "objects of the killed caller after gc"
}
register_case containerd t_gc_deadline_without_owner

# A sandbox whose owner is dead but whose FIFO directory a live process
# still locks is being removed by that process (exec's detached teardown
# outlives the command the owner labels name): gc leaves it alone, and
# takes it once the lock is gone.  The lock holder here is a python3 that
# takes the same shared flock an execution takes.
t_gc_spares_a_held_sandbox() {
    gc_victim 120 || return
    local victim=$VICTIM id=$VICTIM_ID
    local dir
    dir=$(find "$GC_STATE_DIR" /tmp -maxdepth 1 -name "$id.io" 2>/dev/null | head -n1)
    [ -n "$dir" ] || { fail "no $id.io directory"; kill -9 "$victim"; wait "$victim"; gc_run >/dev/null; return; }
    rm -f "$WORK/held"
    python3 -c 'import fcntl, os, sys, time
fcntl.flock(os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY), fcntl.LOCK_SH)
open(sys.argv[2], "w").close()
time.sleep(120)' "$dir" "$WORK/held" &
    local holder=$!
    for _ in $(seq 100); do [ -e "$WORK/held" ] && break; sleep 0.1; done
    [ -e "$WORK/held" ] || fail "the lock holder did not take the lock within 10 s"
    kill -9 "$victim"
    wait "$victim" 2>/dev/null
    gc_run >/dev/null
    assert_eq "$(ctr_ns containers ls -q | grep -cx "$id")" 1 "the container while its directory is locked"
    assert_eq "$(ctr_ns leases ls -q | grep -cx "$id-lease")" 1 "the lease while its directory is locked"
    kill "$holder"
    wait "$holder" 2>/dev/null
    gc_run >/dev/null
    assert_eq "$(ctrd_objects_of_owner "$victim" "$id")" 0 "objects of the killed caller once the lock is gone"
    assert_eq "$(ctr_ns tasks ls -q | grep -cx "$id")" 0 "its task once the lock is gone"
}
register_case containerd t_gc_spares_a_held_sandbox

# Ctrl-C (and SIGTERM): cancelled, cleaned up before the CLI exits, exit
# status 128 + the signal.
gc_interrupt() { # SIGNAL EXPECTED_RC
    gc_exec_cmd
    "${GC_EXEC[@]}" --json -t 600 -l sh -c 'sleep 300' >"$WORK/int.json" 2>"$WORK/int.err" &
    local pid=$!
    local boot=20
    [ "$BACKEND" = kata ] && boot=90
    local h
    h=$(wait_sandbox "$pid" "$boot")
    [ -n "$h" ] || { fail "the sandbox did not start"; kill -9 "$pid"; wait "$pid"; gc_run >/dev/null; return; }
    [ "$BACKEND" = containerd ] && CASE_IDS+=("$h")
    kill "-$1" "$pid"
    wait "$pid"
    local rc=$?
    OUT=$(cat "$WORK/int.json")
    assert_eq "$rc" "$2" "exit status after SIG$1"
    assert_eq "$(j .error.code)" cancelled "error code after SIG$1"
    if [ "$BACKEND" = containerd ]; then
        assert_eq "$(ctrd_objects_of_owner "$pid" "$h")" 0 "objects left after SIG$1 (before any gc)"
        assert_eq "$(find "$GC_STATE_DIR" -maxdepth 1 -name "$h.*" | wc -l)" 0 "directories left after SIG$1"
    else
        assert_eq "$(alive "$h" && echo alive || echo gone)" gone "QEMU after SIG$1"
        assert_eq "$(vm_record_of_owner "$pid")" "" "VM state record after SIG$1"
    fi
}
t_gc_sigint() { gc_interrupt INT 130; }
t_gc_sigterm() { gc_interrupt TERM 143; }
register_case "containerd kata" t_gc_sigint
register_case containerd t_gc_sigterm

# A segfault reads the same on every backend: 128 + 11 and its name.
t_signal_death() {
    trx standard -c 'import ctypes; ctypes.string_at(0)'
    assert_eq "$RC" 139 "CLI exit status"
    assert_eq "$(j .exit_code)" 139 "exit_code"
    assert_eq "$(j .signal)" SIGSEGV "signal"
    assert_eq "$(j .error)" null "error"
    # A snippet's own exit 124 is not the timeout: --json tells them apart.
    trx standard -c 'import sys; sys.exit(124)'
    assert_eq "$RC" 124 "CLI exit status of a snippet exiting 124"
    assert_eq "$(j .exit_code)" 124 "exit_code of a snippet exiting 124"
    assert_eq "$(j .error)" null "error of a snippet exiting 124"
    assert_eq "$(j .signal)" null "signal of a snippet exiting 124"
    if [ "$BACKEND" = containerd ]; then
        trx standard -t 1 -c 'import time; time.sleep(30)'
        assert_eq "$RC" 124 "CLI exit status of a timeout"
        assert_eq "$(j .error.code)" timeout "error code of a timeout"
        assert_eq "$(j .exit_code)" null "exit_code of a timeout"
    fi
}
register_case "containerd kata" t_signal_death
