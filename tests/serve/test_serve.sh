#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# `toolruntime serve` driven by real clients over real sockets: curl, a
# Python stdlib http.client keep-alive client, and the npm `piston-client`
# package unchanged.  Executions run in the containerd sandbox (the private
# daemon of `make check`).  Needs root and TR_TEST_CONTAINERD_SOCKET (skips
# without it, fails under CI=true).
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${TOOLRUNTIME_BIN:?TOOLRUNTIME_BIN must name the toolruntime binary}"
TR=$TOOLRUNTIME_BIN

skip_or_fail() {
    if [ "${CI:-}" = true ]; then
        echo "serve: FAIL (CI=true): $*" >&2
        exit 1
    fi
    echo "serve: SKIP: $*" >&2
    exit 77
}
[ -n "${TR_TEST_CONTAINERD_SOCKET:-}" ] && [ -S "$TR_TEST_CONTAINERD_SOCKET" ] ||
    skip_or_fail "TR_TEST_CONTAINERD_SOCKET is not set (no containerd)"
for tool in curl python3 node ctr; do
    command -v "$tool" >/dev/null || skip_or_fail "$tool is not installed"
done
[ "$(id -u)" = 0 ] || skip_or_fail "needs root (containerd)"
[ -d "$here/node_modules/piston-client" ] || "$here/setup.sh" >/dev/null ||
    skip_or_fail "cannot install piston-client from npm"

NS=${TR_TEST_NAMESPACE:-default}
WORK=$(mktemp -d /tmp/tr-serve.XXXXXX)
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
j() { printf '%s' "$1" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(json.dumps(eval(sys.argv[1])) if not isinstance(eval(sys.argv[1]), str) else eval(sys.argv[1]))' "$2" 2>/dev/null; }

ctrd_state() {
    local c t l
    c=$(ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" containers ls -q | wc -l)
    t=$(ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" tasks ls -q | wc -l)
    l=$(ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" leases ls -q | wc -l)
    echo "containers=$c tasks=$t leases=$l"
}

# start_server NAME [serve options...]: start a server on a free loopback
# port (or the --listen given) and wait until it listens; sets URL and PID.
start_server() {
    local name=$1
    shift
    local listen=(--listen 127.0.0.1:0)
    case " $* " in *" --listen "*) listen=() ;; esac
    "$TR" serve "${listen[@]}" --socket "$TR_TEST_CONTAINERD_SOCKET" --namespace "$NS" "$@" \
        2>"$WORK/$name.log" &
    PID=$!
    SERVER_PIDS+=("$PID")
    local addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/^toolruntime serve: listening on //p' "$WORK/$name.log")
        [ -n "$addr" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    URL="http://$addr"
}

BASE_STATE=$(ctrd_state)
# The egress ceiling: what a request's egress.allow may list (t_execute_value,
# t_bad_requests, t_exec_server).
start_server main --max-concurrency 2 --queue 1 --max-memory 1G --tools "$here/../../examples/tools.json" \
    --egress-allow-max 127.0.0.1:1 --egress-allow-max Example.COM.:443
MAIN_URL=$URL
MAIN_PID=$PID

t_execute_value() {
    local out
    out=$(curl -sS "$MAIN_URL/v1/execute" -d '{"code":"__out = 6*7"}')
    assert_eq "$(j "$out" 'j["value"]')" 42 "value"
    assert_eq "$(j "$out" 'j["backend"]["kind"]')" containerd "backend"
    assert_eq "$(j "$out" 'j["error"]')" null "error"
    out=$(curl -sS "$MAIN_URL/v1/execute" -d '{"code":"import sys\nprint(sys.argv[1:])\nsys.exit(3)","args":["a","b c"],"timeout":10,"limits":{"memory":268435456,"pids":32}}')
    assert_eq "$(j "$out" 'j["stdout"]')" "['a', 'b c']" "args"
    assert_eq "$(j "$out" 'j["exit_code"]')" 3 "exit code"
    out=$(curl -sS "$MAIN_URL/v1/execute" -d '{"code":"import sys\n__out = [input(), sys.stdin.read()]","stdin":"first\nrest\u0000\u00e9"}')
    assert_eq "$(j "$out" 'j["value"]')" '["first", "rest\u0000\u00e9"]' "stdin"
    out=$(curl -sS "$MAIN_URL/v1/execute" -d '{"code":"cat; echo \"[$1]\"","language":"sh","stdin":"in\n","args":["x y"]}')
    assert_eq "$(j "$out" 'j["stdout"]')" "in
[x y]" "stdin and args in sh"
    out=$(curl -sS "$MAIN_URL/v1/execute" -d '{"code":"echo hi","language":"sh","profile":"hardened"}')
    assert_eq "$(j "$out" 'j["stdout"]')" "hi" "sh in hardened"
    # Unset limits take the profile's defaults, capped by the server's
    # maxima, and are enforced.
    out=$(curl -sS "$MAIN_URL/v1/execute" -d '{"code":"__out = open(\"/sys/fs/cgroup/memory/memory.limit_in_bytes\").read().strip()"}')
    assert_eq "$(j "$out" 'j["limits_enforced"]["memory"]')" true "memory enforced with no limits given"
    out=$(curl -sS "$MAIN_URL/v1/execute" -d '{"code":"while True: pass","timeout":1}')
    assert_eq "$(j "$out" 'j["error"]["code"]')" timeout "timeout"
    # An egress allowlist: the listed port is let through (nothing listens
    # there: 502), the other is denied (403), and the result counts both.
    out=$(curl -sS "$MAIN_URL/v1/execute" -d '{"code":"import urllib.request as u\nr = []\nfor p in (1, 2):\n    try: u.urlopen(\"http://127.0.0.1:%d/\" % p, timeout=10)\n    except Exception as e: r.append(e.code)\n__out = r","egress":{"allow":["127.0.0.1:1"]}}')
    assert_eq "$(j "$out" 'j["value"]')" "[502, 403]" "egress: listed port relayed, other denied"
    assert_eq "$(j "$out" 'j["egress"]')" '{"allowed": 1, "denied": 1, "denied_targets": ["127.0.0.1:2"]}' "egress counts"
}

t_bad_requests() {
    local body code
    while IFS='|' read -r body code want; do
        out=$(curl -sS -o "$WORK/body" -w '%{http_code}' "$MAIN_URL/v1/execute" -d "$body")
        assert_eq "$out" "$code" "status for $body"
        assert_contains "$(cat "$WORK/body")" "$want" "error for $body"
    done <<'EOF'
{"code":"1","bogus":1}|400|unknown field 'bogus'
{"limits":{"memory":1}}|400|'code' is required
not json|400|not JSON
{"code":"1","limits":{"memory":4294967296}}|400|over this server's maximum
{"code":"1","limits":{"gpu":1}}|400|unknown field 'limits.gpu'
{"code":"1","limits":{"memory":0}}|400|0 (unlimited) is over this server's maximum
{"code":"1","limits":{"pids":-5}}|400|must not be negative
{"code":"1","timeout":"x"}|400|'timeout' must be a number
{"code":"1","profile":"dev"}|403|--allow-dev
{"code":"1","backend":"nope"}|400|unknown backend
{"code":"1","stdin":5}|400|'stdin' must be a string
{"code":"1","egress":[]}|400|'egress' must be an object
{"code":"1","egress":{"deny":[]}}|400|unknown field 'egress.deny'
{"code":"1","egress":{"allow":"x:1"}}|400|'egress.allow' must be an array of strings
{"code":"1","egress":{"allow":["*.example.com:443"]}}|400|wildcards are not supported
{"code":"1","profile":"hardened","egress":{"allow":["example.com:443"]}}|400|profile 'hardened'
{"code":"1","egress":{"allow":["example.com:443","127.0.0.1:8787"]}}|403|entry '127.0.0.1:8787' is not among the targets allowed here
{"code":"1","egress":{"allow":["169.254.169.254:80"]}}|403|--egress-allow-max
{"code":1}|400|'code' is required
EOF
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$MAIN_URL/nope")" 404 "unknown route"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$MAIN_URL/v1/execute")" 405 "GET /v1/execute"
    # A body over the cap is refused without being kept.
    head -c 20000000 /dev/zero | tr '\0' 'x' > "$WORK/big"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$MAIN_URL/v1/execute" --data-binary @"$WORK/big")" 413 "oversized body"
}

t_piston_client() {
    local out
    out=$(cd "$here" && node --input-type=module -e '
import { piston } from "piston-client";
const client = piston({ server: process.argv[1] });
const runtimes = await client.runtimes();
const ok = await client.execute("python", "import sys\nprint(\"hi\", sys.argv[1:])");
const bad = await client.execute("python", "import sys\nprint(\"oops\", file=sys.stderr)\nsys.exit(2)");
const slow = await client.execute({ language: "python", files: [{ content: "while True: pass" }], runTimeout: 1000 });
const fed = await client.execute({ language: "python", files: [{ content: "print(input()[::-1])" }], stdin: "olleh" });
console.log(JSON.stringify({ runtimes, ok, bad, slow, fed }));
' "$MAIN_URL")
    assert_eq "$(j "$out" '[r["language"] for r in j["runtimes"]]')" '["python", "sh"]' "runtimes"
    assert_eq "$(j "$out" 'j["ok"]["run"]["stdout"]')" "hi ['1', '2', '3']" "execute stdout (the client sends args 1 2 3)"
    assert_eq "$(j "$out" 'j["ok"]["run"]["code"]')" 0 "execute code"
    assert_eq "$(j "$out" 'j["ok"]["language"]')" python "language"
    assert_eq "$(j "$out" 'j["bad"]["run"]["code"]')" 2 "failing code"
    assert_eq "$(j "$out" 'j["bad"]["run"]["stderr"]')" "oops" "stderr"
    assert_eq "$(j "$out" 'j["bad"]["run"]["output"]')" "oops" "output"
    assert_eq "$(j "$out" 'j["bad"]["run"]["status"]')" RE "status RE"
    assert_eq "$(j "$out" 'j["slow"]["run"]["status"]')" TO "status TO"
    assert_eq "$(j "$out" 'j["slow"]["run"]["signal"]')" SIGKILL "signal"
    assert_eq "$(j "$out" 'j["fed"]["run"]["stdout"]')" "hello" "stdin"
}

t_keepalive_http_client() {
    local out
    out=$(python3 - "$MAIN_URL" <<'EOF'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
values, socks = [], set()
for i in range(4):
    c.request("POST", "/v1/execute", body=json.dumps({"code": "__out = %d * 2" % i}),
              headers={"Content-Type": "application/json"})
    socks.add(id(c.sock))
    r = c.getresponse()
    values.append(json.loads(r.read())["value"])
print(json.dumps({"values": values, "connections": len(socks)}))
EOF
)
    assert_eq "$(j "$out" 'j["values"]')" "[0, 2, 4, 6]" "values over one connection"
    assert_eq "$(j "$out" 'j["connections"]')" 1 "one keep-alive connection"
}

t_admission_429() {
    # Two slots and a queue of one: three long executions fill them, the
    # fourth is refused at once with Retry-After.
    local i pids=()
    for i in 1 2 3; do
        curl -s -o /dev/null "$MAIN_URL/v1/execute" -d '{"code":"import time; time.sleep(4)"}' &
        pids+=($!)
    done
    sleep 1.5
    out=$(curl -s -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' "$MAIN_URL/v1/execute" -d '{"code":"1"}')
    assert_eq "$out" 429 "status when full"
    assert_contains "$(tr -d '\r' < "$WORK/headers")" "Retry-After: 1" "Retry-After"
    assert_contains "$(curl -s "$MAIN_URL/metrics")" "toolruntime_queue_depth 1" "queue depth metric"
    wait "${pids[@]}"
}

t_disconnect_cancels() {
    local t0 inflight=""
    t0=$(date +%s)
    curl -s -m 1 -o /dev/null "$MAIN_URL/v1/execute" -d '{"code":"import time; time.sleep(60)","timeout":120}'
    for _ in $(seq 50); do
        inflight=$(j "$(curl -s "$MAIN_URL/v1/health")" 'j["in_flight"]')
        [ "$inflight" = 0 ] && break
        sleep 0.2
    done
    assert_eq "$inflight" 0 "executions after the client hung up"
    [ $(( $(date +%s) - t0 )) -le 15 ] || fail "the cancelled execution took $(( $(date +%s) - t0 )) s to end"
}

t_token_and_unix_socket() {
    printf 'sixteen-chars-token-%s\n' "$RANDOM" > "$WORK/token"
    chmod 600 "$WORK/token"
    start_server tok --listen "unix:$WORK/tr.sock" --token-file "$WORK/token"
    local tok
    tok=$(head -1 "$WORK/token")
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$WORK/tr.sock" http://x/v1/execute -d '{"code":"1"}')" 401 "no token"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$WORK/tr.sock" -H "Authorization: Bearer ${tok}x" http://x/v1/execute -d '{"code":"1"}')" 401 "wrong token"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$WORK/tr.sock" http://x/v1/health)" 200 "health needs no token"
    out=$(curl -s --unix-socket "$WORK/tr.sock" -H "Authorization: Bearer $tok" http://x/v1/execute -d '{"code":"__out = 1"}')
    assert_eq "$(j "$out" 'j["value"]')" 1 "with the token"
    assert_eq "$(TOOLRUNTIME_TOKEN=$tok "$TR" exec --server "unix:$WORK/tr.sock" -c 'print(7)')" 7 "exec --server unix: with TOOLRUNTIME_TOKEN"
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null
    assert_eq "$?" 0 "exit status after SIGTERM"
    [ -e "$WORK/tr.sock" ] && fail "the unix socket is left behind"
    # Off loopback a token is required; a world-readable token is refused.
    "$TR" serve --listen 0.0.0.0:0 2>"$WORK/err"
    assert_eq "$?" 2 "non-loopback without a token"
    assert_contains "$(cat "$WORK/err")" "without --token-file" "message"
    chmod 644 "$WORK/token"
    "$TR" serve --token-file "$WORK/token" 2>"$WORK/err"
    assert_eq "$?" 2 "world-readable token file"
}

t_sigterm_drains() {
    start_server drain
    local url=$URL pid=$PID
    curl -s "$url/v1/execute" -d '{"code":"import time; time.sleep(2); __out = \"finished\""}' > "$WORK/drained" &
    local cpid=$!
    sleep 1
    kill -TERM "$pid"
    wait "$cpid"
    assert_eq "$(j "$(cat "$WORK/drained")" 'j["value"]')" finished "the in-flight execution completed"
    wait "$pid" 2>/dev/null
    assert_eq "$?" 0 "server exit status"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/health")" 000 "no longer listening"
}

t_config_file() {
    printf '{"listen": "127.0.0.1:0", "max-concurrency": 1, "queue": 0, "max-timeout": 5, "allow-dev": true}\n' > "$WORK/cfg.json"
    start_server cfg --config "$WORK/cfg.json"
    local out
    out=$(curl -s -o "$WORK/body" -w '%{http_code}' "$URL/v1/execute" -d '{"code":"1","timeout":6}')
    assert_eq "$out" 400 "timeout over the configured maximum"
    assert_eq "$(j "$(curl -s "$URL/v1/health")" 'j["max_concurrency"]')" 1 "max-concurrency from the file"
    # No --egress-allow-max: no request may have egress at all (a client
    # must not choose what the host connects to, e.g. this very API).
    out=$(curl -s -o "$WORK/body" -w '%{http_code}' "$URL/v1/execute" -d '{"code":"1","egress":{"allow":["127.0.0.1:1"]}}')
    assert_eq "$out" 403 "egress with no ceiling"
    assert_contains "$(cat "$WORK/body")" "start it with --egress-allow-max" "egress with no ceiling: the message"
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null
    # The ceiling from the file, an array as for any repeatable option.
    printf '{"listen": "127.0.0.1:0", "egress-allow-max": ["127.0.0.1:1", "[::1]:2"]}\n' > "$WORK/cfg2.json"
    start_server cfg2 --config "$WORK/cfg2.json"
    out=$(curl -s -o "$WORK/body" -w '%{http_code}' "$URL/v1/execute" -d '{"code":"1","egress":{"allow":["127.0.0.1:2"]}}')
    assert_eq "$out" 403 "egress outside the configured ceiling"
    out=$(curl -s "$URL/v1/execute" -d '{"code":"__out = 1","egress":{"allow":["[0::1]:2","127.0.0.1:1"]}}')
    assert_eq "$(j "$out" 'j["egress"]["allowed"]')" 0 "egress within the configured ceiling runs"
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null
    "$TR" serve --egress-allow-max '*.example.com:443' 2>"$WORK/err"
    assert_eq "$?" 2 "a bad --egress-allow-max entry"
    assert_contains "$(cat "$WORK/err")" "wildcards" "a bad --egress-allow-max entry: the message"
    printf '{"nope": 1}\n' > "$WORK/bad.json"
    "$TR" serve --config "$WORK/bad.json" 2>"$WORK/err"
    assert_eq "$?" 2 "unknown key in the config file"
}

t_metrics() {
    local m
    m=$(curl -s "$MAIN_URL/metrics")
    assert_contains "$m" 'toolruntime_executions_total{backend="containerd",profile="standard",outcome="ok"}' "executions counter"
    assert_contains "$m" 'outcome="timeout"' "timeout outcome"
    assert_contains "$m" "toolruntime_execution_duration_seconds_count" "histogram"
    assert_contains "$m" "toolruntime_in_flight 0" "in flight"
}

t_exec_server() {
    # The CLI as a client: the same output and exit statuses as a local exec.
    local out rc
    assert_eq "$(echo fed | "$TR" exec --server "$MAIN_URL" --stdin - -c 'print(input() * 2)')" fedfed "--stdin through --server"
    out=$("$TR" exec --server "$MAIN_URL" -c 'import sys; print("hi", sys.argv[1:]); sys.exit(3)' -- a 'b c' 2>&1)
    rc=$?
    assert_eq "$out" "hi ['a', 'b c']" "stdout through --server"
    assert_eq "$rc" 3 "exit status through --server"
    out=$(TOOLRUNTIME_SERVER=$MAIN_URL "$TR" exec --json -c '__out = 6*7')
    assert_eq "$(j "$out" 'j["value"]')" 42 "TOOLRUNTIME_SERVER and --json"
    TOOLRUNTIME_SERVER=$MAIN_URL "$TR" exec -t 1 -c 'while True: pass' 2>/dev/null
    assert_eq "$?" 124 "a timeout through --server"
    "$TR" exec --server "$MAIN_URL" --memory 1k -c 1 2>/dev/null
    assert_eq "$?" 125 "a refused limit through --server"
    "$TR" exec --server "$MAIN_URL" --image x -c 1 2>/dev/null
    assert_eq "$?" 2 "backend options with --server"
    out=$("$TR" exec --server "$MAIN_URL" --json --egress-allow 127.0.0.1:1 -c 'import urllib.request as u
try: u.urlopen("http://127.0.0.1:2/", timeout=10)
except Exception as e: __out = e.code')
    assert_eq "$(j "$out" '[j["value"], j["egress"]["denied_targets"]]')" '[403, ["127.0.0.1:2"]]' "--egress-allow through --server"
    out=$("$TR" exec --server http://127.0.0.1:1 -c 1 2>&1)
    assert_eq "$?" 125 "no server"
    assert_contains "$out" "[retryable]" "no server is retryable"
}

t_pool() {
    # Warm pools: filled before readiness, a plain request runs warm, one
    # with its own limits cold; a SIGTERM leaves nothing (checked at the end
    # of the suite with the rest).
    local bad
    for bad in dev=1 standard=65 standard/unsafe_host=1 =2 standard; do
        "$TR" serve --pool "$bad" --listen 127.0.0.1:0 2>/dev/null
        assert_eq "$?" 2 "--pool $bad is a usage error"
    done
    start_server pool --pool standard=2 --pool hardened/containerd=0
    local ready="" i out
    for i in $(seq 100); do
        ready=$(j "$(curl -s "$URL/v1/health")" 'j["ready"]')
        [ "$ready" = true ] && break
        sleep 0.1
    done
    assert_eq "$ready" true "ready once the pool is filled"
    assert_eq "$(j "$(curl -s "$URL/v1/health")" 'j["pools"]["standard/containerd"]["ready"]')" 2 "pool size in health"
    for i in 1 2; do
        out=$(curl -s "$URL/v1/execute" -d '{"code":"__out = 6*7"}')
        assert_eq "$(j "$out" 'j["value"]')" 42 "a warm execution"
        assert_eq "$(j "$out" 'j["backend"]["details"]["pool"]')" warm "pool detail"
    done
    out=$(curl -s "$URL/v1/execute" -d '{"code":"__out = 1","limits":{"memory":100000000}}')
    assert_eq "$(j "$out" 'j["backend"]["details"]["pool"]')" cold "own limits run cold"
    assert_contains "$(curl -s "$URL/metrics")" 'toolruntime_pool_executions_total{pool="standard/containerd",sandbox="warm"} 2' "pool metrics"
    # Resized at run time: grown, then emptied; bad sizes and names refused.
    assert_eq "$(j "$(curl -s "$URL/v1/pools")" 'sorted(j["pools"])')" '["standard/containerd"]' "GET /v1/pools"
    assert_eq "$(j "$(curl -s -X PUT "$URL/v1/pools/standard/containerd" -d '{"size":3}')" 'j["pool"]["size"]')" 3 "PUT size 3"
    for i in $(seq 100); do
        [ "$(j "$(curl -s "$URL/v1/pools/standard/containerd")" 'j["pool"]["ready"]')" = 3 ] && break
        sleep 0.1
    done
    assert_eq "$(j "$(curl -s "$URL/v1/pools/standard/containerd")" 'j["pool"]["ready"]')" 3 "grown to 3 ready"
    curl -s -o /dev/null -X PUT "$URL/v1/pools/standard/containerd" -d '{"size":0}'
    for i in $(seq 100); do
        [ "$(j "$(curl -s "$URL/v1/pools/standard/containerd")" 'j["pool"]["ready"]')" = 0 ] && break
        sleep 0.1
    done
    assert_eq "$(j "$(curl -s "$URL/v1/pools/standard/containerd")" 'j["pool"]["ready"]')" 0 "emptied"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$URL/v1/pools/standard/containerd" -d '{"size":65}')" 400 "size over the maximum"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$URL/v1/pools/standard/containerd" -d '{"size":1,"x":1}')" 400 "an unknown field"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$URL/v1/pools/dev/unsafe_host" -d '{"size":1}')" 404 "an unknown pool"
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null
    assert_eq "$?" 0 "SIGTERM with a pool"
}

t_ndjson_stream() {
    # Accept: application/x-ndjson: the first line arrives while the snippet
    # still runs, the result comes last, a refused request is an error event.
    local t0 first="" last
    t0=$(date +%s%N)
    curl -sN -H 'Accept: application/x-ndjson' "$MAIN_URL/v1/execute" \
        -d '{"code":"import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(1)\n__out = 7"}' |
        while IFS= read -r line; do
            echo "$(( ($(date +%s%N) - t0) / 1000000 )) $line"
        done > "$WORK/nd"
    first=$(head -1 "$WORK/nd")
    last=$(tail -1 "$WORK/nd")
    assert_contains "$first" '{"type":"stdout","data":"0' "the first event"
    local t_first=${first%% *} t_last=${last%% *}
    [ $((t_last - t_first)) -ge 1500 ] || fail "the first output came ${t_first} ms in, the result at ${t_last} ms: not streamed"
    assert_eq "$(j "${last#* }" 'j["type"]')" result "the last event"
    assert_eq "$(j "${last#* }" 'j["result"]["value"]')" 7 "the result event's value"
    # A tool call's event arrives as the call ends, not with the result.
    t0=$(date +%s%N)
    curl -sN -H 'Accept: application/x-ndjson' "$MAIN_URL/v1/execute" \
        -d '{"code":"from toolruntime.tools import demo\nimport time\nx = demo.add(a=1, b=2)\ntime.sleep(1.5)\n__out = x"}' |
        while IFS= read -r line; do
            echo "$(( ($(date +%s%N) - t0) / 1000000 )) $line"
        done > "$WORK/nd2"
    local call
    call=$(grep '"type":"tool_call"' "$WORK/nd2" | head -1)
    last=$(tail -1 "$WORK/nd2")
    assert_contains "$call" '"tool_id":"demo:add"' "the tool_call event"
    [ -n "$call" ] && [ $(( ${last%% *} - ${call%% *} )) -ge 1000 ] ||
        fail "the tool_call event came at ${call%% *} ms, the result at ${last%% *} ms: not live"
    assert_contains "${last#* }" '"tool_id":"demo:add"' "the result still lists the call"
    out=$(curl -s -H 'Accept: application/x-ndjson' "$MAIN_URL/v1/execute" -d '{"code":"1","limits":{"memory":0}}')
    assert_eq "$(j "$out" 'j["type"]')" error "a refused request"
    assert_eq "$(j "$out" 'j["status"]')" 400 "its status"
}

t_mcp_http() {
    # The MCP endpoint's HTTP rules (the MCP clients of tests/integration/mcp
    # drive the protocol itself): sessions, Origin, methods, bad bodies.
    local H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
    local init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
    curl -s -D "$WORK/mh" -o "$WORK/mb" "${H[@]}" "$MAIN_URL/mcp" -d "$init"
    local sid
    sid=$(tr -d '\r' < "$WORK/mh" | sed -n 's/^Mcp-Session-Id: //Ip')
    [ ${#sid} = 32 ] || fail "initialize gives a 128-bit session id, got '$sid'"
    # The client accepts both: the reply comes as a server-sent event.
    assert_eq "$(j "$(sed -n 's/^data: //p' "$WORK/mb")" 'j["result"]["serverInfo"]["name"]')" toolruntime "initialize"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp" \
        -d '{"jsonrpc":"2.0","method":"notifications/initialized"}')" 202 "a notification"
    out=$(curl -s "${H[@]}" -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp" \
        -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"execute","arguments":{"code":"__out = 6*7"}}}')
    assert_contains "$out" '"value":42' "execute over /mcp"
    # A manifest tool through the typed bindings (its schema forbids
    # additional properties: the bindings once refused every argument).
    out=$(curl -s -H 'Accept: application/json' -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp" \
        -d '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"execute","arguments":{"code":"from toolruntime.tools import demo\n__out = demo.add(a=1, b=2)"}}}')
    assert_contains "$out" '"tool_id":"demo:add"' "demo.add through the bindings"
    assert_contains "$out" '"exit_code":0' "demo.add through the bindings"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" -H "Mcp-Session-Id: nope" "$MAIN_URL/mcp" \
        -d '{"jsonrpc":"2.0","id":3,"method":"tools/list"}')" 404 "an unknown session"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" -H 'Origin: http://evil.example' "$MAIN_URL/mcp" \
        -d "$init")" 403 "a foreign Origin (DNS rebinding)"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" -H 'Origin: http://localhost:3000' "$MAIN_URL/mcp" \
        -d "$init")" 200 "a loopback Origin"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" "$MAIN_URL/mcp" -d '[1,2]')" 400 "a batch"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" "$MAIN_URL/mcp" -d 'nope')" 400 "not JSON"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$MAIN_URL/mcp")" 405 "GET (no server stream)"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" -H 'MCP-Protocol-Version: 1999-01-01' \
        -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp" -d '{"jsonrpc":"2.0","id":4,"method":"ping"}')" 400 "an unknown protocol version"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp")" 200 "DELETE"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp" \
        -d '{"jsonrpc":"2.0","id":5,"method":"ping"}')" 404 "the session after DELETE"
}

t_mcp_http_lifecycle() {
    # /mcp's executions share the service's slots (health counts them), a
    # second request with the id of one still waiting is refused, and
    # DELETE of a session in use ends its running execution at once.
    local H=(-H 'Content-Type: application/json' -H 'Accept: application/json')
    local init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
    curl -s -D "$WORK/lh" -o /dev/null "${H[@]}" "$MAIN_URL/mcp" -d "$init"
    local sid t0 inflight=""
    sid=$(tr -d '\r' < "$WORK/lh" | sed -n 's/^Mcp-Session-Id: //Ip')
    local sleepy='{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute","arguments":{"code":"import time; time.sleep(25)","timeout":28}}}'
    t0=$(date +%s)
    curl -s -m 40 -o "$WORK/lb" "${H[@]}" -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp" -d "$sleepy" &
    local bg=$!
    for _ in $(seq 50); do
        inflight=$(j "$(curl -s "$MAIN_URL/v1/health")" 'j["in_flight"]')
        [ "$inflight" = 1 ] && break
        sleep 0.2
    done
    assert_eq "$inflight" 1 "an /mcp execution in the service's in_flight"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp" \
        -d "$sleepy")" 400 "a second request with a waiting id"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp")" 200 \
        "DELETE of a session in use"
    wait "$bg"
    assert_contains "$(cat "$WORK/lb")" "cancelled" "the waiting request after DELETE"
    for _ in $(seq 50); do
        inflight=$(j "$(curl -s "$MAIN_URL/v1/health")" 'j["in_flight"]')
        [ "$inflight" = 0 ] && break
        sleep 0.2
    done
    assert_eq "$inflight" 0 "executions after DELETE"
    [ $(( $(date +%s) - t0 )) -le 12 ] || fail "DELETE took $(( $(date +%s) - t0 )) s to end the execution"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "${H[@]}" -H "Mcp-Session-Id: $sid" "$MAIN_URL/mcp" \
        -d '{"jsonrpc":"2.0","id":8,"method":"ping"}')" 404 "the session after DELETE"
}

for t in t_execute_value t_bad_requests t_piston_client t_keepalive_http_client t_admission_429 \
    t_disconnect_cancels t_token_and_unix_socket t_sigterm_drains t_config_file t_metrics t_mcp_http t_mcp_http_lifecycle t_exec_server t_pool t_ndjson_stream; do
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
echo "serve: $((RUN - FAILED > 0 ? RUN - FAILED : 0)) of $RUN cases passed"
[ "$FAILED" = 0 ]
