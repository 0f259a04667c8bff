# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The execution lifecycle as users see it on the isolating backends: output
# streams to the terminal while the snippet runs (issue 10).

t_output_streams_live() {
    local bargs lag out
    mapfile -t bargs < <(backend_args "$BACKEND")
    read -r lag out < <(python3 "$here/../cli/stream_lag.py" "$TOOLRUNTIME_BIN" exec -p standard "${bargs[@]}" \
        "${EXTRA_EXEC_ARGS[@]}" -c 'import time
for i in range(3): print(i, flush=True); time.sleep(1)' 2>"$WORK/stderr")
    [ "$out" = '"0\n1\n2\n"' ] || fail "stdout was $out (stderr: $(head -c 300 "$WORK/stderr"))"
    [ "${lag:--1}" -ge 1500 ] || fail "the first line came only $lag ms before the end"
}
register_case "containerd kata" t_output_streams_live

# One execution talks to containerd over one connection: the health check
# and the image resolution are the runner's own first calls, and teardown
# reuses the same connection (issue 10).
t_one_containerd_connection() {
    if ! command -v strace >/dev/null; then
        [ "${CI:-}" = true ] && { fail "strace is not installed (scripts/setup-deps.sh test)"; return; }
        echo "    (no strace: skipped)"
        return
    fi
    local bargs n
    mapfile -t bargs < <(backend_args containerd)
    # LeakSanitizer cannot run under ptrace (the ASan build of make check):
    # leaks are checked by every other case.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        strace -f -qq -e trace=connect -o "$WORK/strace" "$TOOLRUNTIME_BIN" exec -p standard "${bargs[@]}" \
        -c 'print(1)' >"$WORK/out" 2>"$WORK/stderr" || fail "exec failed: $(head -c 300 "$WORK/stderr")"
    [ "$(cat "$WORK/out")" = 1 ] || fail "stdout was '$(head -c 100 "$WORK/out")'"
    n=$(grep -c "connect(.*\"$TR_TEST_CONTAINERD_SOCKET\"" "$WORK/strace")
    [ "$n" = 1 ] || fail "$n connections to containerd, want 1: $(grep connect "$WORK/strace" | head -5)"
    # The default: the detached teardown goes on over the same connection.
    env -u TOOLRUNTIME_WAIT_CLEANUP ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        strace -f -qq -e trace=connect -o "$WORK/strace" "$TOOLRUNTIME_BIN" exec -p standard "${bargs[@]}" \
        -c 'print(1)' >"$WORK/out" 2>"$WORK/stderr" || fail "exec failed: $(head -c 300 "$WORK/stderr")"
    n=$(grep -c "connect(.*\"$TR_TEST_CONTAINERD_SOCKET\"" "$WORK/strace")
    [ "$n" = 1 ] || fail "$n connections to containerd with the detached teardown, want 1"
}
register_case containerd t_one_containerd_connection

# The exit status comes as soon as the result is out; a detached process of
# the same command removes the sandbox (issue 10: the teardown off the
# caller's path).  Checked: the command exits before that process, which is
# in a session of its own (strace); the teardown finishes even when the
# caller's whole process group is killed the moment the command exits; the
# caller's output is not held open; the detached process leaves no
# sanitizer report (ASan/UBSan builds); --wait-cleanup leaves nothing at the
# exit.  (The suite sets TOOLRUNTIME_WAIT_CLEANUP; these runs unset it.)
ctrd_has() { # ID: containers, tasks, leases, snapshots and state of one sandbox
    local s=$TR_TEST_CONTAINERD_SOCKET
    {
        ctr -a "$s" -n "$NS" containers ls -q | grep -x "$1"
        ctr -a "$s" -n "$NS" tasks ls -q | grep -x "$1"
        ctr -a "$s" -n "$NS" leases ls -q | grep -x "$1-lease"
        ctr -a "$s" -n "$NS" snapshots ls | awk -v k="$1-rootfs" '$1 == k'
        find /run/toolruntime /tmp -maxdepth 1 -name "$1.*" 2>/dev/null
    } | wc -l
}
# Processes of the binary in a session of their own: detached teardowns.
detached_count() {
    local bin p n=0
    bin=$(readlink -f "$TOOLRUNTIME_BIN")
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$bin" ] || continue
        awk -v pid="${p#/proc/}" '{ sub(/.*\) /, ""); exit !($4 == pid) }' "$p/stat" 2>/dev/null && n=$((n + 1))
    done
    echo "$n"
}
t_cleanup_after_exit() {
    local bargs id n t0 took
    mapfile -t bargs < <(backend_args containerd)
    # 1. The order of the exits, and the child's own session.
    if command -v strace >/dev/null; then
        env -u TOOLRUNTIME_WAIT_CLEANUP ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
            strace -f -q -e trace=setsid,exit_group,clone,clone3 -o "$WORK/strace.detach" "$TOOLRUNTIME_BIN" exec -p standard \
            "${bargs[@]}" -c 'print(1)' >"$WORK/out" 2>"$WORK/stderr" || fail "exec failed: $(head -c 300 "$WORK/stderr")"
        local child root l_root l_child
        child=$(awk '/setsid\(\) *= [0-9]/ { print $1; exit }' "$WORK/strace.detach")
        # The command itself: the process whose clone returned the child.
        root=$(awk -v c="$child" '/clone/ && $NF == c { print $1; exit }' "$WORK/strace.detach")
        # The line of each one's exit_group (threads leave with exit).
        l_root=$(awk -v p="$root" '$1 == p && /exit_group\(/ { print NR; exit }' "$WORK/strace.detach")
        l_child=$(awk -v p="$child" '$1 == p && /exit_group\(/ { print NR; exit }' "$WORK/strace.detach")
        [ -n "$child" ] && [ -n "$root" ] || fail "no detached process (no setsid): $(head -c 400 "$WORK/strace.detach")"
        [ -n "$l_root" ] && [ -n "$l_child" ] && [ "$l_root" -lt "$l_child" ] ||
            fail "exec did not exit before its teardown: $(head -c 600 "$WORK/strace.detach")"
    elif [ "${CI:-}" = true ]; then
        fail "strace is not installed (scripts/setup-deps.sh test)"
    fi
    # 2. In a process group of its own that is SIGKILLed as soon as exec
    # exits; sanitizer reports to files.
    local san=$WORK/san-detached
    t0=$(now_ms)
    OUT=$(env -u TOOLRUNTIME_WAIT_CLEANUP ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$san" \
        UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$san" \
        setsid sh -c '"$@" 2>/dev/null; kill -9 0' sh "$TOOLRUNTIME_BIN" exec -p standard --json "${bargs[@]}" \
        -c 'print(1)')
    took=$(( $(now_ms) - t0 ))
    id=$(j '.backend.details.container_id // empty')
    [ -n "$id" ] || { fail "no container id in '$(printf '%.300s' "$OUT")'"; return; }
    CASE_IDS+=("$id")
    [ "$(j .stdout)" = 1 ] || fail "stdout was $(j .stdout)"
    note "exec returned its output after $took ms"
    n=1
    for _ in $(seq 100); do
        n=$(ctrd_has "$id")
        [ "$n" = 0 ] && [ "$(detached_count)" = 0 ] && break
        sleep 0.1
    done
    assert_eq "$n" 0 "objects of the sandbox 10 s after exec exited and its process group was killed"
    assert_eq "$(detached_count)" 0 "detached teardowns still running after 10 s"
    assert_eq "$(cat "$san".* 2>/dev/null | head -c 2000)" "" "sanitizer reports of the detached teardown"
    # 3. --wait-cleanup: gone at the exit.
    OUT=$(env -u TOOLRUNTIME_WAIT_CLEANUP "$TOOLRUNTIME_BIN" exec -p standard --json --wait-cleanup "${bargs[@]}" \
        -c 'print(2)' 2>"$WORK/stderr")
    id=$(j '.backend.details.container_id // empty')
    [ -n "$id" ] || { fail "no container id in '$(printf '%.300s' "$OUT")'"; return; }
    CASE_IDS+=("$id")
    assert_eq "$(ctrd_has "$id")" 0 "objects of the sandbox when exec --wait-cleanup exited"
}
register_case containerd t_cleanup_after_exit

# A snippet that forges its runner's done lines (it can read the marker: it
# runs in the runner's interpreter) ends its own run early, with the status
# it forged, and that is all it gets: its task is killed at the teardown,
# nothing it started survives (run_case checks the host and the backend),
# and the result holds nothing it wrote after the forged lines.
t_forged_done_lines() {
    trx standard -c 'import __main__, os, subprocess, time
m = __main__._tr_mark[0]
subprocess.Popen(["sleep", "300"])
print("before", flush=True)
os.write(2, b"\n" + m + b"#\n")
os.write(1, b"\n" + m + b"#7\n")
time.sleep(0.5)
print("after", flush=True)
time.sleep(300)'
    assert_eq "$RC" 7 "CLI exit status (the forged one)"
    assert_eq "$(j .stdout)" "before" "stdout (nothing after the forged done lines)"
    assert_le "$WALL_MS" 60000 "time until exec returned (ms)"
}
register_case "containerd kata" t_forged_done_lines
