# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2016,SC2154 # snippets expand in the sandbox; run.sh sets here, OUT
#
# Honest output: the value comes back behind a per-execution random marker,
# so a line the snippet prints (a tool's answer, a file) cannot set it; and
# escape sequences the sandbox prints reach a terminal escaped.

# A snippet printing forged value lines (the old fixed marker, a guessed
# random one) sets no value; the lines stay plain output; the marker is in
# no environment or command line the snippet can read.
t_output_value_cannot_be_forged() {
    local guess='__TR_VALUE_0123456789abcdef0123456789abcdef__:'
    trx standard -c "print('x'); print('__OUT__:{\"forged\": 1}'); print('${guess}{\"forged\": 2}')"
    assert_eq "$RC" 0 "python exit status"
    assert_eq "$(j .value)" null "value from forged lines (python)"
    assert_contains "$(j .stdout)" '__OUT__:{"forged": 1}' "the old marker line stays in stdout"
    assert_contains "$(j .stdout)" "${guess}{\"forged\": 2}" "a guessed marker line stays in stdout"
    # The real value wins over forged lines printed before it.
    trx standard -c "print('${guess}2'); __out = {'real': True}"
    assert_eq "$(printf "%s" "$OUT" | jq -c .value)" '{"real":true}' "python value next to a forged line"
    assert_eq "$(j .stdout)" "${guess}2" "stdout keeps the forged line, loses the real one"
    trx standard -l sh -c "echo '__OUT__:1'; echo '${guess}1'"
    assert_eq "$(j .value)" null "value from forged lines (sh)"
    trx standard -l sh -c "echo '${guess}1'; trvalue '{\"real\": 2}'; echo after"
    assert_eq "$(printf "%s" "$OUT" | jq -c .value)" '{"real":2}' "sh value set with trvalue"
    assert_eq "$(j .stdout)" "${guess}1
after" "sh stdout"
    # Where a snippet could look without reading the runner's memory.
    trx standard -l sh -c 'env | grep -c "__TR_VALUE_[0-9a-f]"; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr "\0" "\n" | grep -c "__TR_VALUE_[0-9a-f]"; true'
    assert_eq "$(j .stdout)" "0
0" "the marker in an environment or a command line"
}

# Escape sequences from the sandbox reach a terminal (a real pty) escaped:
# OSC 52 (clipboard), OSC 0 (title), CSI (clear screen), BEL.
t_output_escapes_reach_a_terminal_escaped() {
    local bargs out
    mapfile -t bargs < <(backend_args)
    out=$(python3 "$here/../cli/pty_run.py" "$TOOLRUNTIME_BIN" exec -p standard "${bargs[@]}" -c 'import sys
print("A\x1b]52;c;aGk=\x07B\x1b[2J\x1b]0;pwned\x07C")
print("D\x1b[31m", file=sys.stderr)')
    RC=$?
    OUT=$out
    assert_eq "$RC" 0 "exit status through the pty"
    assert_contains "$out" 'A\\x1b]52;c;aGk=\\x07B\\x1b[2J\\x1b]0;pwned\\x07C' "stdout escaped"
    assert_contains "$out" 'D\\x1b[31m' "stderr escaped"
    # repr() shows a raw ESC as \x1b (one backslash): there must be none.
    assert_not_contains "$(printf '%s' "$out" | sed 's/\\\\x1b//g')" '\x1b' "a raw ESC reached the terminal"
}

register_case "containerd kata" t_output_value_cannot_be_forged
register_case "containerd kata" t_output_escapes_reach_a_terminal_escaped
