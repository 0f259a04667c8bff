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
}
register_case containerd t_one_containerd_connection
