#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The CLI as a user runs it: exit statuses, JSON shape, bad input, the
# unsafe_host done-when list of the foundation issue.
set -eu
. "$(dirname "$0")/lib.sh"

t_out_value_json() {
    out=$($TR exec -p dev -b unsafe_host --json -c '__out = {"a": [1, 2]}')
    assert_eq "$(jget "$out" 'j["value"]')" '{"a": [1, 2]}'
    assert_eq "$(jget "$out" 'j["stdout"]')" ''
    assert_eq "$(jget "$out" 'j["error"]')" 'null'
    assert_eq "$(jget "$out" 'j["exit_code"]')" '0'
    assert_eq "$(jget "$out" 'sorted(j.keys())')" '["backend", "duration_ms", "error", "exit_code", "limits_enforced", "signal", "stderr", "stdout", "tool_calls", "truncated", "value"]'
    assert_eq "$(jget "$out" 'sorted(j["limits_enforced"].keys())')" '["chain_steps", "cpu", "disk", "memory", "pids", "timeout", "tool_calls"]'
    assert_eq "$(jget "$out" 'j["backend"]["kind"]')" 'unsafe_host'
}

t_out_value_edge_cases() {
    # Floats keep every digit; threads finish first; a replaced sys.stdout
    # does not lose the value; values the host cannot read are errors.
    out=$($TR exec -p dev --json -c 'import math; __out = [math.pi, 0.1 + 0.2]')
    assert_eq "$(jget "$out" 'j["value"]')" "[3.141592653589793, 0.30000000000000004]"
    out=$($TR exec -p dev --json -c 'import threading, time
threading.Thread(target=lambda: (time.sleep(0.2), print("done"))).start()
__out = 1')
    assert_eq "$(jget "$out" 'j["value"]')" 1
    assert_eq "$(jget "$out" 'j["stdout"]')" done
    out=$($TR exec -p dev --json -c 'import io, sys; sys.stdout = io.StringIO(); __out = 42')
    assert_eq "$(jget "$out" 'j["value"]')" 42
    out=$($TR exec -p dev --json -c '__out = 2**70' || true)
    assert_eq "$(jget "$out" '[j["value"], j["stdout"], j["exit_code"]]')" '[null, "", 1]'
    assert_contains "$(jget "$out" 'j["stderr"]')" "does not fit in 64 bits"
}

t_plain_output_and_exit_code() {
    set +e
    out=$($TR exec -p dev -c 'import sys; print("to out"); print("to err", file=sys.stderr); sys.exit(4)' 2>/tmp/tr-cli-err.$$)
    rc=$?
    set -e
    assert_eq "$rc" 4
    assert_eq "$out" 'to out'
    assert_contains "$(cat /tmp/tr-cli-err.$$)" 'to err'
    rm -f /tmp/tr-cli-err.$$
}

t_output_streams_live() {
    # Without --json the snippet's output reaches us as it is printed: the
    # first line about 2 s before the end of a 3 s run.
    read -r lag out < <(python3 "$(dirname "$0")/stream_lag.py" $TR exec -p dev -c 'import time
for i in range(3): print(i, flush=True); time.sleep(1)')
    assert_eq "$out" '"0\n1\n2\n"'
    [ "$lag" -ge 1500 ] || fail "the first line came only $lag ms before the end"
}

t_timeout_is_124_and_quick() {
    start=$(date +%s%N)
    set +e
    out=$($TR exec -p dev -t 1 --json -c 'while True: pass')
    rc=$?
    set -e
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    assert_eq "$rc" 124
    assert_eq "$(jget "$out" 'j["error"]["code"]')" timeout
    assert_eq "$(jget "$out" 'j["limits_enforced"]["timeout"]')" true
    [ "$ms" -lt 3000 ] || fail "took $ms ms"
}

t_decimal_timeout() {
    start=$(date +%s%N)
    set +e
    $TR exec -p dev -t 0.3 -c 'import time; time.sleep(5)' 2>/dev/null
    rc=$?
    set -e
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    assert_eq "$rc" 124
    [ "$ms" -lt 2000 ] || fail "took $ms ms"
}

t_sigterm_ignoring_children_leave_nothing() {
    set +e
    $TR exec -p dev -t 1 -c '
import os, signal, time
for i in range(4):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if i % 2: os.setsid()
        os.execvp("sleep", ["sleep", "777.123"])
time.sleep(60)' 2>/dev/null
    rc=$?
    set -e
    assert_eq "$rc" 124
    sleep 0.2
    left=$(pgrep -f 'sleep 777.123' | wc -l)
    assert_eq "$left" 0 "processes left behind"
}

t_output_flood_is_capped() {
    start=$(date +%s%N)
    out=$($TR exec -p dev --json -c '
import sys
line = "y" * 1023 + "\n"
for _ in range(100 * 1024): sys.stdout.write(line)')
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    assert_eq "$(jget "$out" 'j["truncated"]["stdout"]')" true
    assert_eq "$(jget "$out" 'len(j["stdout"])')" 1048576
    [ "$ms" -lt 15000 ] || fail "100 MB flood took $ms ms"
}

t_max_output_flag() {
    out=$($TR exec -p dev --json --max-output 10 -c 'print("0123456789abc")')
    assert_eq "$(jget "$out" 'j["stdout"]')" 0123456789
    assert_eq "$(jget "$out" 'j["truncated"]["stdout"]')" true
}

t_sh_language() {
    out=$($TR exec -p dev -l sh --json -c 'echo "$((6*7))"; trvalue "{\"n\":42}"')
    assert_eq "$(jget "$out" 'j["stdout"]')" 42
    assert_eq "$(jget "$out" 'j["value"]["n"]')" 42
}

t_file_and_stdin() {
    f=$(mktemp)
    echo '__out = 7' > "$f"
    assert_eq "$(jget "$($TR exec -p dev --json "$f")" 'j["value"]')" 7
    assert_eq "$(jget "$(echo '__out = 8' | $TR exec -p dev --json -)" 'j["value"]')" 8
    # --stdin: the snippet's input, read exactly (the code is not part of it)
    printf 'line1\nline2' > "$f"
    assert_eq "$($TR exec -p dev --stdin "$f" -c 'import sys; print(input(), sys.stdin.read())')" "line1 line2"
    assert_eq "$(printf 'x y' | $TR exec -p dev -l sh --stdin - -c 'read a b; echo "$b$a"')" "yx"
    assert_eq "$($TR exec -p dev -c 'import sys; print(repr(sys.stdin.read()))')" "''"
    local rc=0
    $TR exec -p dev --stdin - - </dev/null 2>/dev/null || rc=$?
    assert_eq "$rc" 2 "code and --stdin both from stdin"
    rc=0
    $TR exec -p dev --stdin /nonexistent -c 1 2>/dev/null || rc=$?
    assert_eq "$rc" 2 "a missing --stdin file"
    rm -f "$f"
}

t_unsafe_host_denied_for_standard() {
    set +e
    out=$($TR exec -b unsafe_host -p standard --json -c 'print(1)')
    rc=$?
    set -e
    assert_eq "$rc" 125
    assert_eq "$(jget "$out" 'j["error"]["code"]')" backend_denied
    set +e
    $TR exec -b unsafe_host -p hardened -c 'print(1)' 2>/tmp/tr-cli-err.$$
    rc=$?
    set -e
    assert_eq "$rc" 125
    assert_contains "$(cat /tmp/tr-cli-err.$$)" backend_denied
    rm -f /tmp/tr-cli-err.$$
}

expect_status() { # WANT CMD...: run, compare the status, keep stderr in $err
    want=$1
    shift
    set +e
    err=$("$@" 2>&1 >/dev/null)
    rc=$?
    set -e
    assert_eq "$rc" "$want" "status of: $*"
}

t_bad_input() {
    expect_status 125 $TR exec -p dev -c ''
    assert_contains "$err" missing_code
    expect_status 2 $TR exec -p dev --pids -1 -c 'print(1)'
    assert_contains "$err" "--pids: invalid value '-1': expected a whole number: digits only"
    expect_status 2 $TR exec -p dev --memory -64M -c 'print(1)'
    assert_contains "$err" "expected a size in bytes: digits with an optional k, M or G suffix"
    expect_status 2 $TR exec -b podman -c 'print(1)'
    assert_contains "$err" "unknown backend 'podman'"
    assert_contains "$err" "--help"
    expect_status 2 $TR exec -p paranoid -c 'print(1)'
    assert_contains "$err" "unknown profile"
    expect_status 2 $TR exec -p dev -l cobol -c 'print(1)'
    assert_contains "$err" "unknown language"
    expect_status 2 $TR exec -p dev /nonexistent/snippet.py
    assert_contains "$err" "cannot read '/nonexistent/snippet.py'"
    expect_status 2 $TR exec -p dev --memory 12Q -c 'print(1)'
    assert_contains "$err" "--memory: invalid value '12Q'"
    expect_status 2 $TR exec -p dev -t abc -c 'print(1)'
    assert_contains "$err" "--timeout: invalid value 'abc': expected decimal seconds"
    expect_status 2 $TR exec -p dev
    expect_status 2 $TR exec -p dev -c 'x' extra
    expect_status 2 $TR frobnicate
    expect_status 2 $TR
}

t_uid_range_option() {
    # FIRST-LAST in decimal, outside system accounts and nobody: anything
    # else is a usage error naming the form, before any sandbox exists.
    for bad in 100000 100000- -5 200-100 0-10 60000-70000 ' 100000-100010' 0x100000-0x100010 4294967290-4294967295; do
        expect_status 2 $TR exec --uid-range "$bad" -c 'print(1)'
        assert_contains "$err" "--uid-range"
    done
    assert_contains "$err" "FIRST-LAST"
    $TR exec -p dev --uid-range 1879048192-1879048200 -c 'pass' || fail "a valid --uid-range was refused"
    assert_contains "$($TR exec --help)" "--uid-range FIRST-LAST"
}

t_sizes_parse() {
    for s in 4096 64k 64K 16M 1G; do
        $TR exec -p dev --disk "$s" --max-output "$s" -c 'pass' >/dev/null || fail "size $s rejected"
    done
    # Strict forms (issue 9): no decimals, other units, signs, spaces, hex or
    # exponents, for sizes, counts and seconds alike; usage errors naming the form.
    for s in 1.5M 64MiB 2gb 0.0001k ' 64M' '64M ' +64M 0x10 1e3 64T ''; do
        expect_status 2 $TR exec -p dev --memory "$s" -c 'pass'
        assert_contains "$err" "digits with an optional k, M or G suffix"
    done
    for s in 0x10 1e3 ' 5' 5s -1 .5 1,5 ''; do
        expect_status 2 $TR exec -p dev -t "$s" -c 'pass'
        assert_contains "$err" "expected decimal seconds"
    done
    expect_status 2 $TR exec -p dev -t 0.0001 -c 'pass'
    assert_contains "$err" "rounds to 0 ms"
    for s in 1.0 0x10 ' 4' 4k; do
        expect_status 2 $TR exec -p dev --pids "$s" -c 'pass'
        assert_contains "$err" "digits only"
    done
    out=$($TR exec -p dev --json -t 1.5 -c 'pass')
    assert_eq "$(jget "$out" 'j["error"]')" null
    out=$($TR exec -p dev --json --memory 512M -c 'pass')
    assert_eq "$(jget "$out" 'j["limits_enforced"]["memory"]')" true
}

t_profile_limits() {
    # hardened refuses unlimited before any backend is reached (no daemon needed).
    for o in --memory --pids --cpu-quota-ms --disk; do
        expect_status 125 $TR exec -p hardened $o 0 -c 'pass'
        assert_contains "$err" "invalid_limits"
        assert_contains "$err" "profile 'hardened' refuses an unlimited"
    done
    # Below what runc can start with: invalid_limits naming the minimum, before
    # containerd is contacted (the socket does not exist).
    expect_status 125 $TR exec -b containerd --socket /nonexistent.sock --memory 4M -c 'pass'
    assert_contains "$err" "invalid_limits"
    assert_contains "$err" "minimum of 8 MiB"
    # dev has no resource defaults: nothing enforced without flags.
    out=$($TR exec -p dev --json -c 'pass')
    assert_eq "$(jget "$out" 'j["limits_enforced"]["memory"]')" false
    assert_contains "$($TR exec --help)" "standard 512M, hardened 256M"
}

t_terminal_gets_control_characters_escaped() {
    # A real pty: the CLI must see a terminal on stdout and stderr.
    pty=$(dirname "$0")/pty_run.py
    code='import sys
print("A\x1b]52;c;aGk=\x07B\x1b[2J\rC\tD\u009bE\u00e9")
sys.stdout.flush()
sys.stdout.buffer.write(b"F\xff\n")
print("G\x1b]0;title\x07", file=sys.stderr)'
    out=$(python3 "$pty" $TR exec -p dev -c "$code")
    # Escaped: ESC, BEL, CR, the UTF-8-encoded C1 CSI, an invalid byte;
    # kept: tab, newline, a printable non-ASCII letter.
    assert_eq "$out" "b'A\\\\x1b]52;c;aGk=\\\\x07B\\\\x1b[2J\\\\x0dC\\tD\\\\xc2\\\\x9bE\\xc3\\xa9\\r\\nF\\\\xff\\r\\nG\\\\x1b]0;title\\\\x07\\r\\n'"
    # An error message quoting the sandbox is escaped too.
    set +e
    out=$(python3 "$pty" $TR exec -p dev -l sh -c 'trvalue ""$(printf "\033[2J")')
    set -e
    assert_contains "$out" "invalid_request"
    assert_not_contains "$out" "\\x1b[2J" "raw ESC in the error"
    # --raw writes the bytes as they are; a pipe gets them as they are.
    out=$(python3 "$pty" $TR exec --raw -p dev -c 'print("\x1b[2J")')
    assert_eq "$out" "b'\\x1b[2J\\r\\n'"
    out=$($TR exec -p dev -c 'print("\x1b[2J", end="")' | od -An -c | tr -d ' ')
    assert_eq "$out" '033[2J'
}

t_help_version_man() {
    assert_contains "$($TR --help)" "exec"
    assert_contains "$($TR exec --help)" "--max-tool-calls"
    assert_contains "$($TR doctor --help)" "Usage: toolruntime doctor"
    assert_contains "$($TR image --help)" "Usage: toolruntime image build"
    assert_contains "$($TR gc --help)" "Usage: toolruntime gc"
    assert_contains "$($TR gc --help)" "start time, the boot id"
    assert_contains "$($TR exec --help)" "130, 143 or"
    assert_contains "$($TR exec --help)" "As with timeout(1)"
    assert_contains "$($TR help exec)" "Exit status"
    assert_contains "$($TR --version)" "toolruntime 0."
    man_page=$(dirname "$0")/../../man/toolruntime.1
    [ -s "$man_page" ] || fail "no man page"
    if command -v man >/dev/null; then
        MANWIDTH=80 man -l "$man_page" 2>/dev/null | grep -q "EXIT STATUS" || fail "man page does not render"
    fi
}

t_man_page_lists_every_option_of_every_help() {
    python3 "$(dirname "$0")/check_man.py" "$TR" "$(dirname "$0")/../../man/toolruntime.1" ||
        fail "the man page and --help disagree (above)"
}

t_install_holds_what_doctor_and_image_build_need() {
    # `make install` is `ninja install`: install this build into a scratch
    # root and run the installed binary's doctor and image build there.
    local build dest prefix root lib out path
    build=$(cd "$(dirname "$TR")/../.." && pwd)
    dest=$(mktemp -d /tmp/tr-cli-install.XXXXXX)
    meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null 2>"$dest.log" ||
        { cat "$dest.log" >&2; rm -rf "$dest" "$dest.log"; fail "meson install failed"; }
    rm -f "$dest.log"
    prefix=$(meson introspect "$build" --buildoptions |
        python3 -c 'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
    root=$dest$prefix
    for f in bin/toolruntime share/toolruntime/images/rootfs.sh share/toolruntime/images/sandbox/build.sh \
        share/toolruntime/images/vm/build.sh share/toolruntime/sdk/python/toolruntime/__init__.py \
        share/toolruntime/sdk/python/trtool libexec/toolruntime/toolruntime-agent \
        libexec/toolruntime/start-containerd.sh share/man/man1/toolruntime.1; do
        [ -e "$root/$f" ] || { rm -rf "$dest"; fail "make install does not install $f"; }
    done
    lib=$(dirname "$(find "$root" -name 'libtoolruntime.so*' | head -n1)")
    run() { LD_LIBRARY_PATH=$lib TOOLRUNTIME_IMAGES_DIR=$root/share/toolruntime/images "$root/bin/toolruntime" "$@"; }
    assert_contains "$(run image build --help)" "Usage: toolruntime image build"
    set +e
    out=$(run doctor --socket /nonexistent/containerd.sock)
    set -e
    # The script doctor names exists where it says (in this scratch root, or
    # installed for real on this machine).
    path=$(printf '%s' "$out" | grep -o '[^ ]*start-containerd\.sh' | head -n1)
    [ -n "$path" ] || { rm -rf "$dest"; fail "doctor names no start script: $out"; }
    [ -x "$dest$path" ] || [ -x "$path" ] || { rm -rf "$dest"; fail "doctor names $path, which is not installed"; }
    # The installed recipe runs from its installed place (it stops at the
    # missing socket, before any download).
    set +e
    out=$(run image build --socket /nonexistent/containerd.sock 2>&1)
    set -e
    assert_contains "$out" "no containerd socket at /nonexistent/containerd.sock"
    out=$(sh "$root/share/toolruntime/images/vm/build.sh" --help)
    assert_contains "$out" "usage: images/vm/build.sh"
    rm -rf "$dest"
}

t_doctor_reports_each_backend() {
    set +e
    out=$($TR doctor)
    set -e
    assert_contains "$out" unsafe_host
    assert_contains "$out" containerd
    assert_contains "$out" kata
}

t_signal_death_and_exit_124() {
    # A snippet killed by a signal: 128 + N and the signal's name; its own
    # exit 124 is told apart from the timeout in --json.
    set +e
    out=$($TR exec -p dev --json -c 'import os, signal; os.kill(os.getpid(), signal.SIGSEGV)')
    rc=$?
    $TR exec -p dev -c 'import os, signal; os.kill(os.getpid(), signal.SIGABRT)' 2>/tmp/tr-cli-sig.$$
    rc2=$?
    own=$($TR exec -p dev --json -c 'import sys; sys.exit(124)')
    rc3=$?
    tmo=$($TR exec -p dev --json -t 0.5 -c 'import time; time.sleep(10)')
    rc4=$?
    set -e
    assert_eq "$rc" 139
    assert_eq "$(jget "$out" '[j["exit_code"], j["signal"], j["error"]]')" '[139, "SIGSEGV", null]'
    assert_eq "$rc2" 134
    assert_contains "$(cat /tmp/tr-cli-sig.$$)" "killed by SIGABRT"
    rm -f /tmp/tr-cli-sig.$$
    assert_eq "$rc3" 124
    assert_eq "$(jget "$own" '[j["exit_code"], j["signal"], j["error"]]')" '[124, null, null]'
    assert_eq "$rc4" 124
    assert_eq "$(jget "$tmo" '[j["exit_code"], j["error"]["code"]]')" '[null, "timeout"]'
}

t_interrupt_exit_status() {
    # SIGINT / SIGTERM of the CLI: cancelled, cleaned up, 130 / 143.  (A
    # background job of a script starts with SIGINT ignored: the CLI must
    # install its own handler regardless.)
    local sig want
    for sig in INT:130 TERM:143 HUP:129; do
        want=${sig#*:}
        sig=${sig%%:*}
        $TR exec -p dev --json -c 'import time; time.sleep(30)' >/tmp/tr-cli-int.$$ &
        pid=$!
        # --json prints at the end only: give the snippet a moment to start.
        sleep 1
        kill -"$sig" "$pid"
        set +e
        wait "$pid"
        rc=$?
        set -e
        assert_eq "$rc" "$want"
        assert_eq "$(jget "$(cat /tmp/tr-cli-int.$$)" 'j["error"]["code"]')" cancelled
    done
    rm -f /tmp/tr-cli-int.$$
}

t_nothing_outlives_a_killed_caller() {
    # unsafe_host: a caller killed with SIGKILL takes the snippet's whole
    # tree with it (setsid escapees too), through its supervisor.
    local n=$((900000 + $$ % 99999)) i
    $TR exec -p dev -l sh -c "setsid sleep $n & sleep $n" >/dev/null &
    pid=$!
    for i in $(seq 50); do [ "$(pgrep -fc "^sleep $n\$")" -ge 2 ] && break; sleep 0.1; done
    assert_eq "$(pgrep -fc "^sleep $n\$")" 2
    kill -9 "$pid"
    set +e
    wait "$pid"
    set -e
    for i in $(seq 30); do [ "$(pgrep -fc "^sleep $n\$")" = 0 ] && break; sleep 0.1; done
    assert_eq "$(pgrep -fc "^sleep $n\$")" 0
}

t_standard_without_containerd_is_clear() {
    set +e
    out=$($TR exec --socket /nonexistent/containerd.sock --json -c 'print(1)')
    rc=$?
    set -e
    assert_eq "$rc" 125
    code=$(jget "$out" 'j["error"]["code"]')
    case $code in
    containerd_not_available | runtime_unavailable) ;;
    *) fail "unexpected error code $code" ;;
    esac
}

run_tests
