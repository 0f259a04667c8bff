#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The in-sandbox SDK (sdk/python/toolruntime) against a scripted fake host:
framing, request shapes, error mapping, bad replies, and trtool's exit codes.
Run: python3 tests/unit/gateway/test_sdk.py (meson: suite 'unit')."""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.join(HERE, "..", "..", "..", "sdk", "python")
sys.path.insert(0, SDK)
import toolruntime  # noqa: E402
from toolruntime import Gateway, ToolError  # noqa: E402


def read_frame(sock):
    hdr = b""
    while len(hdr) < 4:
        b = sock.recv(4 - len(hdr))
        if not b:
            return None
        hdr += b
    (n,) = struct.unpack(">I", hdr)
    body = b""
    while len(body) < n:
        body += sock.recv(n - len(body))
    return json.loads(body)


def write_frame(sock, obj, raw=None):
    body = raw if raw is not None else json.dumps(obj).encode()
    sock.sendall(struct.pack(">I", len(body)) + body)


class FakeHost(threading.Thread):
    """Answers each request with handler(msg) -> reply dict (or raw bytes)."""

    def __init__(self, sock, handler):
        super().__init__(daemon=True)
        self.sock, self.handler, self.seen = sock, handler, []

    def run(self):
        while True:
            m = read_frame(self.sock)
            if m is None:
                return
            self.seen.append(m)
            r = self.handler(m)
            if isinstance(r, bytes):
                write_frame(self.sock, None, raw=r)
            else:
                write_frame(self.sock, r)


def pair(handler):
    a, b = socket.socketpair()
    host = FakeHost(b, handler)
    host.start()
    return Gateway("fd:%d" % a.fileno()), a, host


class SDKTest(unittest.TestCase):
    def test_requests_and_responses(self):
        def h(m):
            return {"type": "response", "id": m["id"], "payload": {"echo": m["type"], "p": m["payload"]}}
        gw, keep, host = pair(h)
        self.assertEqual(gw.search_tools("w", limit=2)["p"], {"query": "w", "limit": 2})
        self.assertEqual(gw.describe_tool("a:b")["p"], {"id": "a:b", "detail": "schema"})
        self.assertEqual(gw.list_tool_examples("a:b", 3)["p"], {"id": "a:b", "max": 3})
        self.assertEqual(gw.run_tool("a:b", {"x": 1}, y=2)["p"], {"id": "a:b", "args": {"x": 1, "y": 2}})
        steps = gw.run_chain([("a:b", {"x": 1}), ("c:d", {}, "input")])["p"]["steps"]
        self.assertEqual(steps[1], {"tool_id": "c:d", "args": {}, "use_previous": True, "arg_name": "input"})
        self.assertEqual(gw.list_namespaces()["echo"], "list_namespaces")
        keep.close()

    def test_errors(self):
        def h(m):
            return {"type": "error", "id": m["id"], "payload": {"code": "tool_limit", "message": "no more"}}
        gw, keep, host = pair(h)
        with self.assertRaises(ToolError) as cm:
            gw.run_tool("a:b", {})
        self.assertEqual(cm.exception.code, "tool_limit")
        self.assertEqual(cm.exception.message, "no more")
        keep.close()

    def test_bad_replies(self):
        replies = iter([
            lambda m: {"type": "response", "id": m["id"] + 1, "payload": 1},
            lambda m: b"not json",
            lambda m: {"type": "run_tool", "id": m["id"], "payload": 1},
        ])
        gw, keep, host = pair(lambda m: next(replies)(m))
        for _ in range(3):
            with self.assertRaises(ToolError) as cm:
                gw.list_namespaces()
            self.assertEqual(cm.exception.code, "protocol_error")
        keep.close()

    def test_oversized_request_refused_locally(self):
        gw, keep, host = pair(lambda m: {"type": "response", "id": m["id"], "payload": None})
        with self.assertRaises(ToolError) as cm:
            gw.run_tool("a:b", {"x": "y" * (2 << 20)})
        self.assertEqual(cm.exception.code, "invalid_arguments")
        self.assertEqual(host.seen, [])
        keep.close()

    def test_typed_bindings_import_hook(self):
        # toolruntime.tools.<module> comes from get_bindings; the generated
        # functions check arguments before anything leaves the sandbox.
        source = "\n".join([
            "import toolruntime as _tr",
            "from toolruntime import _UNSET",
            "def add(*, a: int, b: int = _UNSET):",
            "    return _tr._call(_SPEC_0, {'a': a, 'b': b})",
            "_SPEC_0 = _tr._Spec('demo:add', 'add', "
            "'{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
            "\"b\":{\"enum\":[1,2]}},\"required\":[\"a\"]}')",
        ])

        def h(m):
            if m["type"] == "get_bindings":
                if m["payload"]["module"] != "demo":
                    return {"type": "error", "id": m["id"],
                            "payload": {"code": "tool_not_found", "message": "no such module"}}
                return {"type": "response", "id": m["id"],
                        "payload": {"module": "demo", "namespace": "demo", "source": source}}
            return {"type": "response", "id": m["id"], "payload": m["payload"]}
        gw, keep, host = pair(h)
        from toolruntime import _bindings
        saved = sys.modules["toolruntime.tools"]
        try:
            tools = _bindings.install(gw)
            from toolruntime.tools import demo
            self.assertEqual(demo.add(a=1), {"id": "demo:add", "args": {"a": 1}})
            self.assertEqual(demo.add(a=1, b=2)["args"], {"a": 1, "b": 2})
            seen = len(host.seen)
            for bad in ({"a": "1"}, {"a": True}, {"a": 1, "b": 3}):
                with self.assertRaises(ToolError) as cm:
                    demo.add(**bad)
                self.assertEqual(cm.exception.code, "invalid_arguments")
            self.assertEqual(len(host.seen), seen, "a refused call reached the host")
            self.assertEqual(tools.run_tool("x:y", {})["id"], "x:y")  # the gateway operations stay
            with self.assertRaises(ToolError) as cm:
                import toolruntime.tools.missing  # noqa: F401
            self.assertEqual(cm.exception.code, "tool_not_found")
            self.assertFalse(hasattr(tools, "missing_too"))
        finally:
            sys.modules["toolruntime.tools"] = saved
            for k in [k for k in sys.modules if k.startswith("toolruntime.tools.")]:
                del sys.modules[k]
            keep.close()

    def test_no_gateway(self):
        old = os.environ.pop("TOOLRUNTIME_GATEWAY", None)
        try:
            with self.assertRaises(ToolError) as cm:
                Gateway().list_namespaces()
            self.assertEqual(cm.exception.code, "no_gateway")
        finally:
            if old is not None:
                os.environ["TOOLRUNTIME_GATEWAY"] = old

    def test_closed_connection(self):
        a, b = socket.socketpair()
        b.close()
        with self.assertRaises(ToolError) as cm:
            Gateway("fd:%d" % a.fileno()).list_namespaces()
        self.assertEqual(cm.exception.code, "protocol_error")
        a.close()

    def test_trtool(self):
        def h(m):
            if m["payload"].get("id") == "bad:tool":
                return {"type": "error", "id": m["id"], "payload": {"code": "tool_not_found", "message": "nope"}}
            return {"type": "response", "id": m["id"], "payload": m["payload"].get("args")}
        a, b = socket.socketpair()
        FakeHost(b, h).start()
        env = dict(os.environ, TOOLRUNTIME_GATEWAY="fd:%d" % a.fileno())
        trtool = os.path.join(SDK, "trtool")
        p = subprocess.run([sys.executable, trtool, "run", "x:y", '{"a":1}'], env=env, pass_fds=[a.fileno()],
                           capture_output=True, text=True)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, '{"a": 1}'))
        p = subprocess.run([sys.executable, trtool, "run", "bad:tool"], env=env, pass_fds=[a.fileno()],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith("tool_not_found"), p.stderr)
        p = subprocess.run([sys.executable, trtool, "frobnicate"], env=env, pass_fds=[a.fileno()],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        a.close()


if __name__ == "__main__":
    unittest.main()
