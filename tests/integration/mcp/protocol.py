#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`toolruntime mcp` on the wire, without an SDK: what no SDK sends.

Garbage, batches, wrong JSON-RPC, over-long lines, unknown methods and
revisions, the stateless 2026-07-28 revision (server/discover, _meta),
version negotiation for every stateful revision, and a clean exit at EOF.
Every bad message gets an answer (or, for a notification, none) and the
server keeps serving.  Usage: protocol.py TOOLRUNTIME_BIN
"""
import json
import os
import subprocess
import sys
import time

BIN = sys.argv[1]
failures = 0


def start(*extra):
    return subprocess.Popen([BIN, "mcp", "-p", "dev", "--max-code", "4k", *extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def send(p, obj):
    data = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
    if isinstance(data, str):
        data = data.encode()
    p.stdin.write(data + b"\n")
    p.stdin.flush()


def recv(p):
    line = p.stdout.readline()
    if not line:
        raise AssertionError("the server closed stdout")
    return json.loads(line)


def rpc(p, method, params=None, id_=1):
    msg = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        msg["params"] = params
    send(p, msg)
    while True:
        m = recv(p)
        if "id" in m:
            return m


def check(name, fn):
    global failures
    try:
        fn()
        print("ok - %s" % name)
    except Exception as e:  # noqa: BLE001 — report every failure, go on
        failures += 1
        print("not ok - %s: %r" % (name, e))


def t_negotiation():
    for want, got in (("2025-11-25", "2025-11-25"), ("2025-06-18", "2025-06-18"), ("2025-03-26", "2025-03-26"),
                      ("2024-11-05", "2024-11-05"), ("1999-01-01", "2025-11-25"), ("2026-07-28", "2025-11-25")):
        p = start()
        r = rpc(p, "initialize", {"protocolVersion": want, "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}})
        assert r["result"]["protocolVersion"] == got, (want, r)
        assert r["result"]["serverInfo"]["name"] == "toolruntime"
        p.stdin.close()
        assert p.wait(timeout=10) == 0


def t_stateless():
    p = start()
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    r = rpc(p, "server/discover", {"_meta": meta})
    assert "2026-07-28" in r["result"]["supportedVersions"], r
    assert r["result"]["resultType"] == "complete"
    r = rpc(p, "tools/list", {"_meta": meta}, 2)
    assert r["result"]["tools"][0]["name"] == "execute" and r["result"]["resultType"] == "complete", r
    r = rpc(p, "tools/call", {"_meta": meta, "name": "execute", "arguments": {"code": "__out = 1 + 1"}}, 3)
    assert r["result"]["structuredContent"]["value"] == 2, r
    r = rpc(p, "tools/list", {"_meta": {"io.modelcontextprotocol/protocolVersion": "2031-01-01"}}, 4)
    assert r["error"]["code"] == -32602 and "2026-07-28" in r["error"]["data"]["supported"], r
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def t_garbage():
    p = start()
    send(p, "this is not json")
    assert recv(p)["error"]["code"] == -32700
    send(p, "[1, 2]")
    assert recv(p)["error"]["code"] == -32600
    send(p, {"id": 1, "method": "ping"})  # no jsonrpc
    assert recv(p)["error"]["code"] == -32600
    send(p, {"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"})
    assert recv(p)["error"]["code"] == -32600
    send(p, {"jsonrpc": "2.0", "id": 5, "method": "ping", "params": [1]})
    assert recv(p)["error"]["code"] == -32600
    send(p, '{"jsonrpc": "2.0", "id": 6, "id": 7, "method": "ping"}')  # duplicate key
    assert recv(p)["error"]["code"] == -32700
    assert rpc(p, "no/such/method", {}, 8)["error"]["code"] == -32601
    assert rpc(p, "logging/setLevel", {"level": "loud"}, 9)["error"]["code"] == -32602
    assert rpc(p, "tools/call", {"arguments": {}}, 10)["error"]["code"] == -32602
    send(p, {"jsonrpc": "2.0", "method": "notifications/whatever"})  # no answer
    send(p, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 999}})
    send(p, {"jsonrpc": "2.0", "id": 77, "result": {}})  # a stray response: ignored
    # A line far over the cap (2 x 4k + 1 MiB) is one parse error, and the
    # next line is served.
    send(p, b"{" + b"x" * (3 * 1024 * 1024))
    assert recv(p)["error"]["code"] == -32700
    assert rpc(p, "ping", None, 11) == {"jsonrpc": "2.0", "id": 11, "result": {}}
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def t_flood():
    # 40 calls at once with one slot: 33 are taken (1 running, 32 waiting),
    # the rest answered at once; then EOF cancels them all and we exit.
    p = start("--max-concurrent", "1")
    for i in range(40):
        send(p, {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                 "params": {"name": "execute", "arguments": {"code": "import time\ntime.sleep(30)"}}})
    refused = [recv(p) for _ in range(7)]
    assert all("too many tool calls" in m["error"]["message"] for m in refused), refused
    assert rpc(p, "ping", None, "p") == {"jsonrpc": "2.0", "id": "p", "result": {}}
    t0 = time.monotonic()
    p.stdin.close()
    assert p.wait(timeout=30) == 0
    assert time.monotonic() - t0 < 20


def t_eof_cancels():
    # Closing stdin while a program runs cancels it and exits promptly.
    p = start()
    send(p, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "execute", "arguments": {"code": "import time\ntime.sleep(60)"}}})
    time.sleep(1)
    t0 = time.monotonic()
    p.stdin.close()
    assert p.wait(timeout=20) == 0
    assert time.monotonic() - t0 < 15


def t_list_changed():
    # An upstream's list_changed: the client hears tools/list_changed, the
    # description and the bindings have the new tool.
    srv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "changing_server.py")
    p = start("--mcp", "dyn=%s %s" % (sys.executable, srv))
    rpc(p, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})
    assert rpc(p, "logging/setLevel", {"level": "info"}, 9)["result"] == {}
    r = rpc(p, "tools/list", None, 2)
    assert "dyn.hello(" not in r["result"]["tools"][0]["description"]
    send(p, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "execute", "arguments": {
        "code": "from toolruntime.tools import dyn\n__out = dyn.add_tool(name='hello')"}}})
    seen = logged = False
    while True:
        m = recv(p)
        if m.get("method") == "notifications/tools/list_changed":
            seen = True
        if m.get("method") == "notifications/message":
            # The gateway's log line, at the level the client asked for.
            assert m["params"]["level"] == "info" and m["params"]["logger"] == "toolruntime", m
            logged = logged or m["params"]["data"]["message"] == "MCP tools changed"
        if m.get("id") == 3:
            assert m["result"]["structuredContent"]["value"] == "added hello", m
            break
    assert seen, "no notifications/tools/list_changed"
    assert logged, "no notifications/message for the change"
    r = rpc(p, "tools/list", None, 4)
    assert "dyn.hello(" in r["result"]["tools"][0]["description"], r
    r = rpc(p, "tools/call", {"name": "execute", "arguments": {
        "code": "from toolruntime.tools import dyn\n__out = dyn.hello()"}}, 5)
    assert r["result"]["structuredContent"]["value"] == "hello was added later", r
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def t_expose_tools():
    # --expose-tools: upstream tools listed and called directly, next to execute.
    srv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "changing_server.py")
    p = start("--expose-tools", "--mcp", "dyn=%s %s" % (sys.executable, srv))
    r = rpc(p, "tools/list", None, 1)
    names = [t["name"] for t in r["result"]["tools"]]
    assert names == ["execute", "session_create", "session_execute", "session_delete", "dyn.add_tool"], names
    assert r["result"]["tools"][4]["inputSchema"]["required"] == ["name"]
    r = rpc(p, "tools/call", {"name": "dyn.add_tool", "arguments": {"name": "x"}}, 2)
    assert r["result"]["content"][0]["text"] == "added x" and "isError" not in r["result"], r
    r = rpc(p, "tools/call", {"name": "dyn.add_tool", "arguments": {"name": 5}}, 3)
    assert r["result"]["isError"] is True and "invalid_arguments" in r["result"]["content"][0]["text"], r
    r = rpc(p, "tools/call", {"name": "dyn.nope", "arguments": {}}, 4)
    assert r["error"]["code"] == -32602, r
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def t_egress_refused_where_unenforceable():
    # The operator's allowlist reaches every execution's request; the dev
    # profile (unsafe_host: the host's own network) refuses it rather than
    # run unconfined.  (Egress that works: tests/security/cases/egress.sh.)
    p = start("--egress-allow", "example.com:443")
    r = rpc(p, "tools/call", {"name": "execute", "arguments": {"code": "__out = 1"}}, 1)
    st = r["result"]["structuredContent"]
    assert st["error"]["code"] == "invalid_request" and "cannot enforce" in st["error"]["message"], r
    assert "egress" not in st, st
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def t_hostile_schemas():
    # Names, descriptions, property keys and enum values written to break out
    # of the generated Python: the stub parses, the module imports, calls
    # work, and nothing of the schema ran.
    import ast
    import tempfile

    d = tempfile.mkdtemp(prefix="mcp-hostile-")
    marker = os.path.join(d, "pwned")
    run = '__import__("os").system("touch %s")' % marker
    evil = '"""\n' + run + '\n"""' + " ''' \\"
    tools = [
        {"name": "class", "description": evil,
         "input_schema": {"type": "object", "properties": {
             'x"): ' + run + ' #': {"type": "string", "description": evil},
             "def": {"enum": ['a"]; ' + run + ' #', "b\n"]},
             "nested": {"type": "object", "properties": {'k"ey': {"type": "array", "items": {
                 "type": "object", "properties": {"deep": {"type": "object", "properties": {
                     "deeper": {"type": "integer"}}}}}}}},
             "_tr": {"type": "integer"}, "1x": {"type": ["string", "null"]}},
             "required": ["def"]},
         "builtin": "echo"},
        {"name": "_call", "description": "x", "builtin": "echo"},
    ]
    manifest = os.path.join(d, "tools.json")
    with open(manifest, "w") as f:
        json.dump({"namespace": "evil-ns", "tools": tools}, f)
    out = subprocess.run([BIN, "tools", "stubs", "--tools", manifest], capture_output=True, text=True, check=True)
    ast.parse(out.stdout)
    assert "def class_(*" in out.stdout and "def tool_call(" in out.stdout, out.stdout
    code = "\n".join([
        "from toolruntime.tools import evil_ns as e",
        "r = e.class_(def_='b\\n', arg_1x=None, arg_tr=1)",
        "__out = [r, e.tool_call()]",
    ])
    r = subprocess.run([BIN, "exec", "-p", "dev", "--json", "--tools", manifest, "-c", code], capture_output=True,
                       text=True)
    res = json.loads(r.stdout)
    assert res["exit_code"] == 0, res
    assert res["value"][0] == {"def": "b\n", "1x": None, "_tr": 1}, res["value"]
    assert not os.path.exists(marker), "a schema ran code"


def t_usage():
    def status(*args):
        r = subprocess.run([BIN, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    rc, out = status("mcp", "--help")
    assert rc == 0 and "--expose-tools" in out and "--max-concurrent" in out and "--initrd" in out, out
    assert "mcp" in status("--help")[1] and "tools" in status("--help")[1]
    assert status("help", "mcp")[0] == 0
    assert status("mcp", "-p", "paranoid")[0] == 2
    assert status("mcp", "--bogus")[0] == 2
    assert status("mcp", "--max-code", "20M")[0] == 2
    assert status("mcp", "--max-tool-calls", "-3")[0] == 2
    assert status("mcp", "extra")[0] == 2
    rc, out = status("mcp", "--egress-allow", "*.example.com:443")
    assert rc == 2 and "wildcards" in out, out
    rc, out = status("mcp", "-p", "dev", "--tools", "/nonexistent/tools.json")
    assert rc == 125 and "tools.json" in out, out
    rc, out = status("tools", "--help")
    assert rc == 0 and "stubs" in out, out
    assert status("tools")[0] == 2
    assert status("tools", "frobnicate")[0] == 2
    rc, out = status("tools", "list")
    assert rc == 0 and out == "", out


check("command-line usage of mcp and tools", t_usage)
check("version negotiation for every stateful revision", t_negotiation)
check("the stateless revision 2026-07-28: server/discover, _meta, resultType", t_stateless)
check("malformed messages get JSON-RPC errors and the server keeps serving", t_garbage)
check("an upstream's tools/list_changed refreshes the bindings and tells the client", t_list_changed)
check("--expose-tools lists and calls upstream tools directly", t_expose_tools)
check("--egress-allow reaches the request; refused where it cannot be enforced", t_egress_refused_where_unenforceable)
check("hostile schemas generate inert, importable bindings", t_hostile_schemas)
check("a flood of calls is bounded and answered", t_flood)
check("EOF on stdin cancels running executions and exits 0", t_eof_cancels)
print("%d failure(s)" % failures if failures else "all passed")
sys.exit(1 if failures else 0)
