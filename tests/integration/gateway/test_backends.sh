#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The gateway's done-when, on every backend that exists: a snippet searches,
# describes and runs a manifest tool and an MCP tool, chains two tools, and
# the third call under --max-tool-calls 2 fails with a catchable tool_limit;
# the result lists every call.  containerd needs TR_TEST_CONTAINERD_SOCKET,
# kata the VM images; outside CI a missing one skips, under CI=true it fails.
set -eu
. "$(dirname "$0")/../../cli/lib.sh"
root=$(cd "$(dirname "$0")/../../.." && pwd)
tools=$root/examples/tools.json
mcp="python3 $root/examples/mcp_server.py"

scenario='
from toolruntime import tools, ToolError
found = [t["id"] for t in tools.search_tools("weather", limit=5)]
assert "example-server:weather" in found, found
assert "example-server" in tools.list_namespaces()
d = tools.describe_tool("demo:add", detail="schema")
assert d["input_schema"]["required"] == ["a", "b"], d
out = {"add": tools.run_tool("demo:add", {"a": 2, "b": 3}),
       "weather": tools.run_tool("example-server:weather", {"city": "Oslo"})}
try:
    tools.run_tool("demo:add", {"a": 1, "b": 1})
    out["third"] = "allowed"
except ToolError as e:
    out["third"] = e.code
__out = out
'
chain='
from toolruntime import tools
__out = tools.run_chain([{"tool_id": "example-server:weather", "args": {"city": "Oslo"}},
                         {"tool_id": "demo:echo", "use_previous": True, "arg_name": "forecast"}])
'

backend_args() { # BACKEND -> the exec flags, or return 77 when it cannot run here
    case $1 in
    unsafe_host) echo "-p dev -b unsafe_host" ;;
    containerd)
        if [ -z "${TR_TEST_CONTAINERD_SOCKET:-}" ] || [ ! -S "$TR_TEST_CONTAINERD_SOCKET" ]; then
            [ "${CI:-}" = true ] && { echo "no containerd socket under CI" >&2; return 1; }
            return 77
        fi
        echo "-b containerd --socket $TR_TEST_CONTAINERD_SOCKET" ;;
    kata)
        if ! $TR doctor 2>/dev/null | grep -q '^kata *ok'; then
            [ "${CI:-}" = true ] && { echo "kata not usable under CI" >&2; return 1; }
            return 77
        fi
        echo "-b kata -t 120" ;;
    esac
}

check_backend() {
    set +e
    args=$(backend_args "$1")
    rc=$?
    set -e
    [ $rc = 77 ] && skip "$1 is not available here"
    [ $rc = 0 ] || fail "$1 is required under CI"
    # shellcheck disable=SC2086
    out=$($TR exec $args --json --tools "$tools" --mcp "$mcp" --max-tool-calls 2 -c "$scenario")
    assert_eq "$(jget "$out" 'j["error"]')" null "error: $(jget "$out" 'j["error"]') stderr: $(jget "$out" 'j["stderr"]')"
    assert_eq "$(jget "$out" 'j["value"]["add"]')" 5
    assert_eq "$(jget "$out" 'j["value"]["third"]')" tool_limit
    assert_eq "$(jget "$out" '[c["tool_id"] for c in j["tool_calls"]]')" '["demo:add", "example-server:weather", "demo:add"]'
    assert_eq "$(jget "$out" '[c["error_code"] for c in j["tool_calls"]]')" '[null, null, "tool_limit"]'
    assert_eq "$(jget "$out" 'j["tool_calls"][0]["backend_kind"]')" "$1"
    assert_eq "$(jget "$out" 'j["limits_enforced"]["tool_calls"]')" true
    # shellcheck disable=SC2086
    out=$($TR exec $args --json --tools "$tools" --mcp "$mcp" --max-chain-steps 2 -c "$chain")
    assert_eq "$(jget "$out" 'j["error"]')" null
    assert_contains "$(jget "$out" 'j["value"]')" Oslo
    assert_eq "$(jget "$out" 'len(j["tool_calls"])')" 2
    assert_eq "$(jget "$out" 'j["limits_enforced"]["chain_steps"]')" true
    # sh snippets reach the same gateway through trtool.
    # shellcheck disable=SC2086
    out=$($TR exec $args -l sh --json --tools "$tools" -c 'trtool run demo:add "{\"a\": 40, \"b\": 2}"')
    assert_contains "$(jget "$out" 'j["stdout"]')" 42
}

t_unsafe_host() { check_backend unsafe_host; }
t_containerd() { check_backend containerd; }
t_kata() { check_backend kata; }

run_tests
