#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Sessions over HTTP and the CLI against a real `toolruntime serve` on a
# real containerd: state across executions, files in and out (byte-exact,
# streamed), path escapes refused, idle expiry, token isolation, caps, a
# service killed -9 and restarted, and one-shot input files (/v1/execute
# "files", Piston files[]).  Clients: curl and `toolruntime session`.
# Needs root and TR_TEST_CONTAINERD_SOCKET (skips without it, fails under
# CI=true).  TR_TEST_ONLY=NAME runs the cases whose name contains NAME.
set -u
: "${TOOLRUNTIME_BIN:?TOOLRUNTIME_BIN must name the toolruntime binary}"
TR=$TOOLRUNTIME_BIN

skip_or_fail() {
    if [ "${CI:-}" = true ]; then
        echo "serve-sessions: FAIL (CI=true): $*" >&2
        exit 1
    fi
    echo "serve-sessions: SKIP: $*" >&2
    exit 77
}
[ -n "${TR_TEST_CONTAINERD_SOCKET:-}" ] && [ -S "$TR_TEST_CONTAINERD_SOCKET" ] ||
    skip_or_fail "TR_TEST_CONTAINERD_SOCKET is not set (no containerd)"
for tool in curl python3 ctr sha256sum; do
    command -v "$tool" >/dev/null || skip_or_fail "$tool is not installed"
done
[ "$(id -u)" = 0 ] || skip_or_fail "needs root (containerd)"

NS=${TR_TEST_NAMESPACE:-default}
WORK=$(mktemp -d /tmp/tr-sessions.XXXXXX)
SERVER_PIDS=()
cleanup() {
    local p
    for p in "${SERVER_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

FAILED=0
RUN=0
fail() {
    echo "    FAIL: $*"
    CASE_FAILED=1
}
assert_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }
assert_contains() { case "$1" in *"$2"*) ;; *) fail "$3: expected to contain '$2', got: $(printf '%.300s' "$1")" ;; esac; }
j() { printf '%s' "$1" | python3 -c 'import json,sys; j=json.load(sys.stdin); v=eval(sys.argv[1]); print(v if isinstance(v, str) else json.dumps(v))' "$2" 2>/dev/null; }

ctrd_containers() { ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" containers ls -q | sort; }
ctrd_state() {
    echo "containers=$(ctrd_containers | wc -l) tasks=$(ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" tasks ls -q | wc -l)"
}

# start_server NAME [serve options...]: a server on a free loopback port;
# sets URL and PID.
start_server() {
    local name=$1
    shift
    "$TR" serve --listen 127.0.0.1:0 --socket "$TR_TEST_CONTAINERD_SOCKET" --namespace "$NS" "$@" \
        2>>"$WORK/$name.log" &
    PID=$!
    SERVER_PIDS+=("$PID")
    local addr=""
    for _ in $(seq 200); do
        addr=$(sed -n 's/^toolruntime serve: listening on //p' "$WORK/$name.log" 2>/dev/null | tail -1)
        [ -n "$addr" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    URL="http://$addr"
}

# Three tokens: A and B for isolation, C for the global cap.
# (A comment and a blank line in the file are skipped.)
{
    echo "# the test's clients"
    for t in A B C; do echo "token-$t-$RANDOM$RANDOM-sixteen"; done
    echo
} > "$WORK/tokens"
chmod 600 "$WORK/tokens"
TA=$(sed -n 2p "$WORK/tokens")
TB=$(sed -n 3p "$WORK/tokens")
TC=$(sed -n 4p "$WORK/tokens")
BASE_STATE=$(ctrd_state)
start_server main --token-file "$WORK/tokens" --max-sessions 3 --max-sessions-per-token 2 \
    --egress-allow-max 127.0.0.1:1
MAIN_URL=$URL
MAIN_PID=$PID

# api TOKEN METHOD PATH [curl args...]: body in $WORK/body, status printed.
api() {
    local tok=$1 method=$2 path=$3
    shift 3
    curl -sS --path-as-is -o "$WORK/body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $tok" \
        "$MAIN_URL$path" "$@"
}
body() { cat "$WORK/body"; }
create() { # create TOKEN [JSON]: the id
    api "$1" POST /v1/sessions -d "${2:-{\}}" >/dev/null
    j "$(body)" 'j["id"]'
}
execute() { # execute TOKEN ID CODE: the result object
    api "$1" POST "/v1/sessions/$2/execute" --data-binary "$(python3 -c 'import json,sys; print(json.dumps({"code": sys.argv[1]}))' "$3")" >/dev/null
    body
}

t_state_http() {
    local id out
    id=$(create "$TA")
    assert_eq "${#id}" 32 "a 128-bit id"
    out=$(execute "$TA" "$id" 'x = 41')
    assert_eq "$(j "$out" 'j["error"]')" null "x = 41"
    out=$(execute "$TA" "$id" '__out = x + 1')
    assert_eq "$(j "$out" 'j["value"]')" 42 "x + 1 in the next execution"
    assert_eq "$(j "$out" 'j["backend"]["details"]["session"]')" alive "the session detail"
    # An execution that times out interrupts the snippet; the session lives on.
    api "$TA" POST "/v1/sessions/$id/execute" -d '{"code":"while True: pass","timeout":1}' >/dev/null
    assert_eq "$(j "$(body)" 'j["error"]["code"]')" timeout "a timed-out execution"
    out=$(execute "$TA" "$id" '__out = x')
    assert_eq "$(j "$out" 'j["value"]')" 41 "state after the timeout"
    # A thread an interrupted execution left running is not the next
    # execution's to wait for.
    api "$TA" POST "/v1/sessions/$id/execute" \
        -d '{"code":"import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()","timeout":1}' >/dev/null
    assert_eq "$(j "$(body)" 'j["error"]["code"]')" timeout "an execution waiting for its thread"
    api "$TA" POST "/v1/sessions/$id/execute" -d '{"code":"__out = x","timeout":5}' >/dev/null
    assert_eq "$(j "$(body)" 'j["value"]')" 41 "the next execution does not wait for that thread"
    # ndjson streaming, as /v1/execute.
    out=$(curl -sS -H 'Accept: application/x-ndjson' -H "Authorization: Bearer $TA" \
        "$MAIN_URL/v1/sessions/$id/execute" -d '{"code":"print(x)\n__out = 1"}')
    assert_contains "$out" '{"type":"stdout","data":"41' "streamed output"
    assert_eq "$(j "$(printf '%s\n' "$out" | tail -1)" 'j["result"]["stdout"]')" 41 "the streamed result"
    assert_eq "$(j "$(curl -sS "$MAIN_URL/v1/health")" 'j["sessions"]')" 1 "/v1/health counts sessions"
    assert_contains "$(curl -sS -H "Authorization: Bearer $TA" "$MAIN_URL/metrics")" "toolruntime_sessions 1" "the metric"
    assert_eq "$(api "$TA" GET "/v1/sessions/$id")" 200 "GET one session"
    assert_eq "$(j "$(body)" 'j["executions"]')" 7 "its executions"
    assert_eq "$(api "$TA" DELETE "/v1/sessions/$id")" 204 "DELETE"
    assert_eq "$(api "$TA" POST "/v1/sessions/$id/execute" -d '{"code":"1"}')" 404 "execute after DELETE"
    assert_contains "$(body)" '"code":"session_gone"' "a deleted session's error"
}

t_state_cli() {
    local id out rc
    export TOOLRUNTIME_SERVER=$MAIN_URL TOOLRUNTIME_TOKEN=$TA
    id=$("$TR" session create --idle-timeout 60)
    assert_eq "${#id}" 32 "session create prints the id"
    "$TR" session exec "$id" -c 'x = 41'
    assert_eq "$("$TR" session exec "$id" -c 'print(x + 1)')" 42 "session exec prints like exec"
    printf '__out = x + 1\n' > "$WORK/code.py"
    out=$("$TR" session exec "$id" --json "$WORK/code.py")
    assert_eq "$(j "$out" 'j["value"]')" 42 "session exec FILE --json"
    "$TR" session exec "$id" -c 'import sys; sys.exit(3)'
    assert_eq "$?" 3 "the snippet's exit status"
    assert_contains "$("$TR" session ls)" "$id" "session ls"
    "$TR" session rm "$id"
    assert_eq "$?" 0 "session rm"
    "$TR" session exec "$id" -c '1' 2>"$WORK/err"
    rc=$?
    [ "$rc" -ne 0 ] || fail "exec after rm succeeded"
    assert_contains "$(cat "$WORK/err")" "session_gone" "exec after rm"
    unset TOOLRUNTIME_SERVER TOOLRUNTIME_TOKEN
}

t_state_kata() {
    # The same session contract in a VM (the kata backend's QEMU runner),
    # over HTTP and through the CLI.  Needs the VM images (make check builds
    # them; outside CI without them the case says so and passes nothing).
    if [ ! -f "${TR_VM_DIR:-/var/lib/toolruntime/vm}/vmlinuz" ]; then
        [ "${CI:-}" = true ] && fail "no VM images in ${TR_VM_DIR:-/var/lib/toolruntime/vm}"
        echo "    (no VM images: kata not checked)"
        return
    fi
    local id out
    id=$(create "$TA" '{"backend":"kata","idle_timeout":120}')
    assert_eq "${#id}" 32 "a kata session's id ($(body))"
    out=$(execute "$TA" "$id" 'x = 41')
    assert_eq "$(j "$out" 'j["backend"]["kind"]')" kata "the backend"
    out=$(execute "$TA" "$id" '__out = x + 1')
    assert_eq "$(j "$out" 'j["value"]')" 42 "x + 1 in the next execution, in a VM"
    export TOOLRUNTIME_SERVER=$MAIN_URL TOOLRUNTIME_TOKEN=$TA
    assert_eq "$("$TR" session exec "$id" -c 'print(x + 1)')" 42 "the CLI on the kata session"
    unset TOOLRUNTIME_SERVER TOOLRUNTIME_TOKEN
    assert_eq "$(api "$TA" DELETE "/v1/sessions/$id")" 204 "DELETE"
    local left=1
    for _ in $(seq 50); do
        left=$(for p in /run/toolruntime/qemu/vm-*/pid; do [ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null && echo x; done | wc -l)
        [ "$left" = 0 ] && break
        sleep 0.2
    done
    assert_eq "$left" 0 "QEMUs left after DELETE"
}

t_files() {
    local id out
    id=$(create "$TA")
    head -c 300000 /dev/urandom > "$WORK/in.bin"
    assert_eq "$(api "$TA" PUT "/v1/sessions/$id/files/in/data.bin" --data-binary @"$WORK/in.bin")" 201 "PUT"
    out=$(execute "$TA" "$id" 'import hashlib
__out = hashlib.sha256(open("in/data.bin", "rb").read()).hexdigest()')
    assert_eq "$(j "$out" 'j["value"]')" "$(sha256sum < "$WORK/in.bin" | cut -d' ' -f1)" "the snippet reads the upload"
    out=$(execute "$TA" "$id" 'import hashlib, os
b = bytes(range(256)) * 2000 + os.urandom(1000)
open("out.bin", "wb").write(b)
__out = hashlib.sha256(b).hexdigest()')
    assert_eq "$(api "$TA" GET "/v1/sessions/$id/files/out.bin")" 200 "GET"
    assert_eq "$(sha256sum < "$WORK/body" | cut -d' ' -f1)" "$(j "$out" 'j["value"]')" "the download is byte-exact"
    assert_eq "$(api "$TA" GET "/v1/sessions/$id/files/no/such.bin")" 404 "GET of a file that is not there"
    # A client that goes away early from a large download: the session ends
    # at once rather than being held while the rest is read off the wire.
    local big
    big=$(create "$TA")
    execute "$TA" "$big" 'open("sparse", "wb").truncate(400 << 20)' >/dev/null
    curl -sS -H "Authorization: Bearer $TA" "$MAIN_URL/v1/sessions/$big/files/sparse" 2>/dev/null | head -c 1000 >/dev/null
    local st=""
    for _ in $(seq 50); do
        st=$(api "$TA" GET "/v1/sessions/$big")
        [ "$st" = 404 ] && break
        sleep 0.2
    done
    assert_eq "$st" 404 "a session whose large download was abandoned"
    assert_contains "$(body)" "abandoned" "why it ended"
    # The CLI both ways.
    export TOOLRUNTIME_SERVER=$MAIN_URL TOOLRUNTIME_TOKEN=$TA
    "$TR" session cp "$WORK/in.bin" "$id:cli/copy.bin" || fail "session cp up"
    "$TR" session cp "$id:cli/copy.bin" "$WORK/back.bin" || fail "session cp down"
    cmp -s "$WORK/in.bin" "$WORK/back.bin" || fail "session cp round trip differs"
    unset TOOLRUNTIME_SERVER TOOLRUNTIME_TOKEN
    # Over the disk cap: refused before the body is read.
    local small
    small=$(create "$TA" '{"limits":{"disk":1048576}}')
    head -c 2000000 /dev/zero > "$WORK/big"
    assert_eq "$(api "$TA" PUT "/v1/sessions/$small/files/big" --data-binary @"$WORK/big")" 413 "over the disk cap"
    api "$TA" DELETE "/v1/sessions/$small" >/dev/null
    api "$TA" DELETE "/v1/sessions/$id" >/dev/null
}

t_path_escapes() {
    local id p
    id=$(create "$TA")
    execute "$TA" "$id" 'import os
os.symlink("/etc/passwd", "link")
os.symlink("/", "root")' >/dev/null
    assert_contains "$(api "$TA" GET "/v1/sessions/$id/files/link"; body)" "links are never followed" "a planted symlink"
    for p in ../../etc/passwd %2e%2e/%2e%2e/etc/passwd %2e%2e%2fetc%2fpasswd /etc/passwd a//b ./x link root/etc/passwd \
        root/etc; do
        code=$(api "$TA" GET "/v1/sessions/$id/files/$p")
        case "$code" in 4??) ;; *) fail "GET $p: $code $(body | head -c 200)" ;; esac
        [ "$p" = link ] && continue
        code=$(api "$TA" PUT "/v1/sessions/$id/files/$p" --data-binary 'owned')
        case "$code" in 4??) ;; *) fail "PUT $p: $code" ;; esac
    done
    # %00 is never decoded: the name is the literal "a%00b", not "a".
    assert_eq "$(api "$TA" PUT "/v1/sessions/$id/files/a%00b" --data-binary 'nul')" 201 "PUT a%00b"
    # A PUT onto the planted link is refused too: the link stays, what it
    # points to is untouched.
    code=$(api "$TA" PUT "/v1/sessions/$id/files/link" --data-binary 'owned')
    case "$code" in 4??) ;; *) fail "PUT over a link: $code" ;; esac
    grep -q owned /etc/passwd && fail "the host's /etc/passwd was written"
    out=$(execute "$TA" "$id" 'import os
__out = [os.path.islink("link"), open("/etc/passwd").read().startswith("root:"), os.listdir(".")]')
    assert_eq "$(j "$out" 'j["value"][:2]')" '[true, true]' "the link kept, its target untouched"
    assert_contains "$(j "$out" 'j["value"][2]')" '"a%00b"' "the literal name"
    api "$TA" DELETE "/v1/sessions/$id" >/dev/null
}

t_killed_by_oom() {
    local id out
    id=$(create "$TA" '{"limits":{"memory":67108864}}')
    out=$(execute "$TA" "$id" 'x = bytearray(300 * 1024 * 1024)')
    assert_eq "$(j "$out" 'j["backend"]["details"]["session"]')" ended "the result says the session ended"
    assert_eq "$(j "$out" 'j["error"]["code"]')" resource_limit "the execution's error"
    assert_eq "$(api "$TA" POST "/v1/sessions/$id/execute" -d '{"code":"1"}')" 404 "the id afterwards"
    assert_contains "$(body)" "out of memory" "the message says why"
}

t_egress() {
    # The allowlist is the session's: the listed port is relayed (nothing
    # listens there: 502), another is denied (403), in every execution.
    local id out code='import urllib.request as u
r = []
for p in (1, 2):
    try: u.urlopen("http://127.0.0.1:%d/" % p, timeout=10)
    except Exception as e: r.append(getattr(e, "code", "no network"))
__out = r'
    export TOOLRUNTIME_SERVER=$MAIN_URL TOOLRUNTIME_TOKEN=$TA
    id=$("$TR" session create --egress-allow 127.0.0.1:1)
    unset TOOLRUNTIME_SERVER TOOLRUNTIME_TOKEN
    for n in 1 2; do
        out=$(execute "$TA" "$id" "$code")
        assert_eq "$(j "$out" 'j["value"]')" "[502, 403]" "execution $n: listed port relayed, other denied"
    done
    assert_eq "$(api "$TA" POST "/v1/sessions/$id/execute" -d '{"code":"1","egress":{"allow":["127.0.0.1:2"]}}')" 400 \
        "egress on an execution"
    api "$TA" DELETE "/v1/sessions/$id" >/dev/null
    # A session's allowlist is held to the operator's ceiling too
    # (--egress-allow-max): nothing is created for a refused one.
    assert_eq "$(api "$TA" POST /v1/sessions -d '{"egress":{"allow":["127.0.0.1:1","127.0.0.1:2"]}}')" 403 \
        "a session's egress outside --egress-allow-max"
    assert_contains "$(body)" "'127.0.0.1:2' is not among the targets allowed here" "the message names the entry"
    # Without an allowlist: no network at all.
    id=$(create "$TA")
    out=$(execute "$TA" "$id" "$code")
    assert_eq "$(j "$out" 'j["value"]')" '["no network", "no network"]' "a session without an allowlist"
    api "$TA" DELETE "/v1/sessions/$id" >/dev/null
}

t_idle_and_ttl_expiry() {
    local id ttl before
    before=$(ctrd_containers)
    id=$(create "$TA" '{"idle_timeout":2}')
    ttl=$(create "$TA" '{"ttl":3,"idle_timeout":60}')
    [ "$(ctrd_containers | wc -l)" -ge "$(($(printf '%s' "$before" | grep -c .) + 2))" ] ||
        fail "no containers for the sessions"
    # The TTL one is used all along: only its TTL ends it.
    for _ in 1 2 3 4; do
        sleep 1
        execute "$TA" "$ttl" '1' >/dev/null
    done
    sleep 0.5
    assert_eq "$(api "$TA" POST "/v1/sessions/$id/execute" -d '{"code":"1"}')" 404 "an idle session"
    assert_contains "$(body)" "has ended: it was idle" "the message"
    assert_eq "$(api "$TA" POST "/v1/sessions/$ttl/execute" -d '{"code":"1"}')" 404 "a session past its TTL"
    assert_contains "$(body)" "ttl of 3000 ms passed" "the TTL message"
    assert_eq "$(ctrd_containers)" "$before" "containerd after the idle expiry"
    api "$TA" GET /v1/sessions >/dev/null
    case "$(body)" in *"$id"*) fail "an expired session is listed" ;; esac
}

t_token_isolation() {
    local id
    id=$(create "$TA")
    assert_eq "$(api "$TB" POST "/v1/sessions/$id/execute" -d '{"code":"1"}')" 404 "B executes A's session"
    assert_contains "$(body)" '"code":"not_found"' "as an unknown id"
    assert_eq "$(api "$TB" GET "/v1/sessions/$id/files/x")" 404 "B reads A's file"
    assert_eq "$(api "$TB" PUT "/v1/sessions/$id/files/x" --data-binary x)" 404 "B writes A's file"
    assert_eq "$(api "$TB" DELETE "/v1/sessions/$id")" 404 "B deletes A's session"
    api "$TB" GET /v1/sessions >/dev/null
    case "$(body)" in *"$id"*) fail "B lists A's session" ;; esac
    api "$TA" GET /v1/sessions >/dev/null
    assert_contains "$(body)" "$id" "A lists its session"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$MAIN_URL/v1/sessions")" 401 "no token"
    assert_eq "$(api "# the test's clients" GET /v1/sessions)" 401 "a comment line is no token"
    # A token shorter than 16 characters is refused at start.
    printf 'short\n' > "$WORK/short"
    chmod 600 "$WORK/short"
    "$TR" serve --token-file "$WORK/short" 2>"$WORK/err"
    assert_eq "$?" 2 "a short token"
    assert_contains "$(cat "$WORK/err")" "at least 16 characters" "its message"
    assert_eq "$(api "$TA" DELETE "/v1/sessions/$id")" 204 "A deletes its session"
    assert_eq "$(api "$TA" GET /v1/sessions/0123456789abcdef0123456789abcdef/files/x)" 404 "an unknown id"
}

t_caps() {
    local a1 a2 b1
    a1=$(create "$TA")
    a2=$(create "$TA")
    assert_eq "$(api "$TA" POST /v1/sessions -d '{}')" 429 "over the per-token cap"
    assert_contains "$(body)" too_many_sessions "its code"
    b1=$(create "$TB")
    assert_eq "$(api "$TC" POST /v1/sessions -d '{}')" 503 "over the server's cap"
    for s in "$a1:$TA" "$a2:$TA" "$b1:$TB"; do api "${s#*:}" DELETE "/v1/sessions/${s%%:*}" >/dev/null; done
    [ -n "$(create "$TC")" ] || fail "a session after the others were deleted"
    api "$TC" GET /v1/sessions >/dev/null
    api "$TC" DELETE "/v1/sessions/$(j "$(body)" 'j["sessions"][0]["id"]')" >/dev/null
}

t_delete_running() {
    # DELETE stops the execution that runs in the session (it does not run
    # to its timeout), and that execution's client gets its result.
    local id t0 bg
    id=$(create "$TA")
    t0=$(date +%s)
    curl -sS -o "$WORK/running.json" -H "Authorization: Bearer $TA" "$MAIN_URL/v1/sessions/$id/execute" \
        -d '{"code":"import time\ntime.sleep(40)","timeout":60}' &
    bg=$!
    sleep 2
    assert_eq "$(api "$TA" DELETE "/v1/sessions/$id")" 204 "DELETE while an execution runs"
    wait "$bg"
    assert_eq "$(j "$(cat "$WORK/running.json")" 'j["error"]["code"]')" cancelled "the running execution"
    [ $(( $(date +%s) - t0 )) -le 15 ] || fail "the execution ended $(( $(date +%s) - t0 )) s in, not at DELETE"
    assert_eq "$(api "$TA" GET "/v1/sessions/$id")" 404 "the session after DELETE"
}

t_waiting_behind_the_end() {
    # An execution that waits for the session while the one ahead of it ends
    # the session (its interpreter exits) is told the session is gone (404
    # session_gone), as any later request is, not "cancelled".
    local id bg
    id=$(create "$TA")
    curl -sS -o "$WORK/ender.json" -H "Authorization: Bearer $TA" "$MAIN_URL/v1/sessions/$id/execute" \
        -d '{"code":"import os, time\ntime.sleep(2)\nos._exit(0)","timeout":30}' &
    bg=$!
    sleep 0.7
    assert_eq "$(api "$TA" POST "/v1/sessions/$id/execute" -d '{"code":"__out = 1"}')" 404 "the execution that waited"
    assert_eq "$(j "$(body)" 'j["error"]["code"]')" session_gone "its error code"
    wait "$bg"
    assert_eq "$(j "$(cat "$WORK/ender.json")" 'j["backend"]["details"]["session"]')" ended "the execution that ended it"
    assert_eq "$(api "$TA" GET "/v1/sessions/$id")" 404 "the session afterwards"
    # The same for one waiting behind a running execution when DELETE ends
    # the session: the running one gets its result (cancelled), the waiting
    # one the 404.
    id=$(create "$TA")
    curl -sS -o "$WORK/running.json" -H "Authorization: Bearer $TA" "$MAIN_URL/v1/sessions/$id/execute" \
        -d '{"code":"import time\ntime.sleep(40)","timeout":60}' &
    bg=$!
    sleep 1
    curl -sS -o "$WORK/waiting.json" -w '%{http_code}' -H "Authorization: Bearer $TA" \
        "$MAIN_URL/v1/sessions/$id/execute" -d '{"code":"__out = 2"}' >"$WORK/waiting.status" &
    local bg2=$!
    sleep 1
    assert_eq "$(api "$TA" DELETE "/v1/sessions/$id")" 204 "DELETE with one running, one waiting"
    wait "$bg" "$bg2"
    assert_eq "$(j "$(cat "$WORK/running.json")" 'j["error"]["code"]')" cancelled "the running execution"
    assert_eq "$(cat "$WORK/waiting.status")" 404 "the waiting execution after DELETE"
    assert_eq "$(j "$(cat "$WORK/waiting.json")" 'j["error"]["code"]')" session_gone "its error code"
}

t_bad_create() {
    assert_eq "$(api "$TA" POST /v1/sessions -d '{"ttl":-1}')" 400 "a negative ttl"
    assert_eq "$(api "$TA" POST /v1/sessions -d '{"ttl":999999}')" 400 "a ttl over 24 h"
    assert_eq "$(api "$TA" POST /v1/sessions -d '{"code":"1"}')" 400 "code at create"
    assert_eq "$(api "$TA" POST /v1/sessions -d '{"language":"sh"}')" 400 "sh sessions"
    assert_eq "$(api "$TA" POST /v1/sessions -d '{"bogus":1}')" 400 "an unknown field"
}

t_dev_profile() {
    # unsafe_host (--allow-dev): each curl is its own connection, so each
    # request its own server thread; the session outlives them.
    local id url pid
    start_server dev --allow-dev
    url=$URL pid=$PID
    id=$(curl -sS "$url/v1/sessions" -d '{"profile":"dev"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    curl -sS "$url/v1/sessions/$id/execute" -d '{"code":"x = 41"}' >/dev/null
    sleep 0.5
    out=$(curl -sS "$url/v1/sessions/$id/execute" -d '{"code":"__out = x + 1"}')
    assert_eq "$(j "$out" 'j["value"]')" 42 "a dev session across connections"
    assert_eq "$(j "$out" 'j["backend"]["kind"]')" unsafe_host "its backend"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    assert_eq "$?" 0 "exit status after SIGTERM with a session alive"
}

t_restart() {
    local id url pid
    start_server restart
    url=$URL pid=$PID
    id=$(curl -sS "$url/v1/sessions" -d '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    curl -sS "$url/v1/sessions/$id/execute" -d '{"code":"x = 1"}' >/dev/null
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    # The killed service's session sandbox is still there...
    [ "$(ctrd_state)" != "$BASE_STATE" ] || fail "no sandbox left by the killed service (nothing to collect?)"
    start_server restarted
    # ...and the new one's start-up gc collected it before listening.
    assert_eq "$(curl -sS -o "$WORK/body" -w '%{http_code}' "$URL/v1/sessions/$id/execute" -d '{"code":"1"}')" 404 \
        "the old id after a restart"
    assert_contains "$(body)" "restarts" "the message says why"
    assert_contains "$(cat "$WORK/restarted.log")" "start-up gc removed" "the new service's start-up gc"
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null
    assert_eq "$(ctrd_state)" "$BASE_STATE" "containerd after the restart's gc"
}

t_oneshot_files() {
    local out
    out=$(curl -sS -H "Authorization: Bearer $TA" "$MAIN_URL/v1/execute" \
        -d '{"code":"__out = [open(\"a.txt\").read(), list(open(\"d/b.bin\",\"rb\").read())]","files":[{"path":"a.txt","content":"hello"},{"path":"d/b.bin","content":"AAH/","encoding":"base64"}]}')
    assert_eq "$(j "$out" 'j["value"]')" '["hello", [0, 1, 255]]' "/v1/execute files"
    assert_eq "$(curl -sS -o "$WORK/body" -w '%{http_code}' -H "Authorization: Bearer $TA" "$MAIN_URL/v1/execute" \
        -d '{"code":"1","files":[{"path":"../x","content":"x"}]}')" 400 "/v1/execute files with .."
    out=$(curl -sS -H "Authorization: Bearer $TA" "$MAIN_URL/api/v2/execute" \
        -d '{"language":"python","version":"*","files":[{"name":"main.py","content":"import helper\nprint(helper.f())"},{"name":"helper.py","content":"def f(): return 42"}]}')
    assert_eq "$(j "$out" 'j["run"]["stdout"]')" 42 "Piston files[] beside the program"
    assert_eq "$(curl -sS -o "$WORK/body" -w '%{http_code}' -H "Authorization: Bearer $TA" "$MAIN_URL/api/v2/execute" \
        -d '{"language":"python","files":[{"content":"1"},{"name":"/etc/x","content":"x"}]}')" 400 "Piston: an absolute name"
    assert_contains "$(body)" '"message":' "Piston's error shape"
}

for t in t_state_http t_state_cli t_state_kata t_files t_path_escapes t_killed_by_oom t_egress t_idle_and_ttl_expiry t_token_isolation t_caps t_delete_running t_waiting_behind_the_end t_bad_create \
    t_oneshot_files t_dev_profile t_restart; do
    case "$t" in *"${TR_TEST_ONLY:-}"*) ;; *) continue ;; esac
    CASE_FAILED=0
    RUN=$((RUN + 1))
    echo "--- ${t#t_}"
    "$t"
    if [ "$CASE_FAILED" = 0 ]; then echo "ok   ${t#t_}"; else echo "FAIL ${t#t_}"; FAILED=$((FAILED + 1)); fi
done

kill -TERM "$MAIN_PID"
wait "$MAIN_PID" 2>/dev/null || { echo "FAIL: the main server exited $?"; FAILED=$((FAILED + 1)); }
state=$(ctrd_state)
[ "$state" = "$BASE_STATE" ] || { echo "FAIL: containerd after the suite: $state (before: $BASE_STATE)"; FAILED=$((FAILED + 1)); }
echo
echo "serve-sessions: $((RUN - FAILED > 0 ? RUN - FAILED : 0)) of $RUN cases passed"
[ "$FAILED" = 0 ]
