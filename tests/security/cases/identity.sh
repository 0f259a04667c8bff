# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2016 # the probes are single-quoted: they expand in the probing shell
#
# One identity per sandbox (issue 9, item 3).  Two live sandboxes run as
# different host uids, taken from the sandbox uid range and never 65534, and
# from the host a process running as one sandbox's uid can neither open the
# other's /proc/<pid>/root nor connect to its gateway socket.  On containerd
# the two are containers; on kata a VM runs next to a container when a
# containerd is at hand (TR_TEST_CONTAINERD_SOCKET), else next to a second VM.
#
# Each sandbox is a `toolruntime exec` in the background whose snippet sleeps;
# the case finds the host process that carries the sandbox's uid (the
# container's snippet, found by a unique sleep argument, or the QEMU the CLI
# started), probes, then kills that process, which ends the execution.

declare -A SB_CLI SB_BK SB_MARK SB_PID SB_UID

# descends_from PID ANCESTOR: whether ANCESTOR is PID's parent, grandparent...
descends_from() {
    local p=$1
    while [ -n "$p" ] && [ "$p" -gt 1 ]; do
        p=$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
        [ "$p" = "$2" ] && return 0
    done
    return 1
}

proc_uid() { awk '/^Uid:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

sb_start() { # NAME BACKEND
    local bargs
    mapfile -t bargs < <(backend_args "$2")
    SB_BK[$1]=$2
    SB_MARK[$1]="59.$RANDOM$RANDOM"
    "$TOOLRUNTIME_BIN" exec --json -t 120 "${bargs[@]}" -l sh -c "exec sleep ${SB_MARK[$1]}" \
        >"$WORK/sb-$1.json" 2>"$WORK/sb-$1.err" &
    SB_CLI[$1]=$!
}

# sb_find NAME: wait (up to 90 s: a VM boots slowly on a busy TCG host) for
# the host process of the sandbox, once it runs as its final uid.
sb_find() {
    local pid="" p uid
    SB_PID[$1]=""
    SB_UID[$1]=""
    for _ in $(seq 450); do
        if [ "${SB_BK[$1]}" = kata ]; then
            for p in $(pgrep -f '^[^ ]*qemu-system'); do
                descends_from "$p" "${SB_CLI[$1]}" && case "$(readlink "/proc/$p/exe")" in
                    */qemu-system-*) pid=$p ;;
                esac
            done
        else
            pid=$(pgrep -x -f "sleep ${SB_MARK[$1]}" | head -1)
        fi
        if [ -n "$pid" ]; then
            uid=$(proc_uid "$pid")
            # QEMU with KVM starts as root and drops with -runas.
            if [ -n "$uid" ] && [ "$uid" != 0 ]; then
                SB_PID[$1]=$pid
                SB_UID[$1]=$uid
                return 0
            fi
        fi
        kill -0 "${SB_CLI[$1]}" 2>/dev/null || break
        sleep 0.2
    done
    fail "sandbox $1 (${SB_BK[$1]}) never showed its host process: $(head -c 300 "$WORK/sb-$1.err")"
    return 1
}

# sb_stop NAME: kill its host process, wait for the CLI, and check what the
# result says about the uid.  Container ids go to CASE_IDS (leftover check).
sb_stop() {
    [ -n "${SB_PID[$1]}" ] && kill -KILL "${SB_PID[$1]}" 2>/dev/null
    wait "${SB_CLI[$1]}" 2>/dev/null
    local out id huid
    out=$(cat "$WORK/sb-$1.json")
    id=$(printf '%s' "$out" | jq -r '.backend.details.container_id // empty' 2>/dev/null)
    [ -n "$id" ] && CASE_IDS+=("$id")
    huid=$(printf '%s' "$out" | jq -r '.backend.details.host_uid // empty' 2>/dev/null)
    [ -n "${SB_UID[$1]}" ] && assert_eq "$huid" "${SB_UID[$1]}" "sandbox $1: host_uid in the result"
}

# as_uid UID CMD...: CMD as UID:UID with no groups and no capabilities, as
# an escapee of that sandbox (or anything else running as its uid) would be.
as_uid() {
    setpriv --reuid "$1" --regid "$1" --clear-groups --inh-caps=-all -- "${@:2}"
}

open_root() { # UID PID -> open | denied
    as_uid "$1" sh -c 'ls "/proc/$0/root/" >/dev/null 2>&1 && echo open || echo denied' "$2"
}

# The system's python3: one under root's home (pyenv) is out of the uid's reach.
HOST_PY=/usr/bin/python3
connect_gw() { # UID PID -> connected | refused:ERRNO
    as_uid "$1" "$HOST_PY" -c '
import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("/proc/%s/root/run/toolruntime/gateway.sock" % sys.argv[1]); print("connected")
except OSError as e:
    print("refused:" + errno.errorcode.get(e.errno, str(e.errno)))
' "$2"
}

two_identities() { # BACKEND_A BACKEND_B
    note "sandbox a: $1, sandbox b: $2"
    sb_start a "$1"
    sb_start b "$2"
    if sb_find a && sb_find b; then
        local n
        note "a: pid ${SB_PID[a]} uid ${SB_UID[a]}; b: pid ${SB_PID[b]} uid ${SB_UID[b]}"
        assert_ne "${SB_UID[a]}" "${SB_UID[b]}" "the two sandboxes' host uids"
        for n in a b; do
            assert_ne "${SB_UID[$n]}" 65534 "sandbox $n's host uid"
            { [ "${SB_UID[$n]}" -ge "$UID_FIRST" ] && [ "${SB_UID[$n]}" -le "$UID_LAST" ]; } \
                || fail "sandbox $n's host uid ${SB_UID[$n]} is outside $UID_FIRST-$UID_LAST"
        done
        local me other
        for me in a b; do
            other=$([ "$me" = a ] && echo b || echo a)
            assert_eq "$(open_root "${SB_UID[$me]}" "${SB_PID[$other]}")" denied \
                "as $me's uid, /proc/<$other's ${SB_BK[$other]} pid>/root"
            if [ "${SB_BK[$other]}" = containerd ]; then
                # The control: the socket is there and its own uid reaches
                # it, so the refusal below is the identity's doing.
                [ -S "/proc/${SB_PID[$other]}/root/run/toolruntime/gateway.sock" ] \
                    || fail "sandbox $other has no gateway socket to probe"
                assert_eq "$(connect_gw "${SB_UID[$other]}" "${SB_PID[$other]}")" connected \
                    "control: $other's own uid connects to its gateway socket"
                assert_eq "$(connect_gw "${SB_UID[$me]}" "${SB_PID[$other]}")" refused:EACCES \
                    "as $me's uid, $other's gateway socket"
                assert_eq "$(open_root "${SB_UID[$other]}" "${SB_PID[$other]}")" open \
                    "control: $other's own uid opens its /proc/<pid>/root"
            fi
        done
    fi
    sb_stop a
    sb_stop b
}

t_two_sandboxes_two_identities() {
    if [ "$BACKEND" = containerd ]; then
        two_identities containerd containerd
    elif [ "$HAVE_CONTAINERD" = 1 ]; then
        two_identities kata containerd
    else
        two_identities kata kata
    fi
}
register_case "containerd kata" t_two_sandboxes_two_identities
