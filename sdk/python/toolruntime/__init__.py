# SPDX-License-Identifier: Apache-2.0
"""Call the host's tool gateway from sandboxed code (standard library only).

    from toolruntime import tools, ToolError

    hits = tools.search_tools("weather", limit=5)
    info = tools.describe_tool(hits[0]["id"], detail="schema")
    try:
        result = tools.run_tool("demo:add", {"a": 1, "b": 2})
    except ToolError as e:
        print(e.code, e.message)      # e.g. "tool_limit", "invalid_arguments"

    # Typed bindings generated from the tools' schemas, one module per
    # namespace: keyword arguments, checked in the sandbox before the call.
    from toolruntime.tools import demo
    demo.add(a=1, b=2)

The gateway is found through the TOOLRUNTIME_GATEWAY environment variable:
"fd:N" (an inherited stream) or "unix:/path" (a unix socket).  Each message
is a 4-byte big-endian length followed by a UTF-8 JSON object
{"type", "id", "payload"}; see docs/gateway-protocol.md.
"""

import json
import os
import socket
import struct
import threading

__all__ = ["Gateway", "ToolError", "tools", "MAX_FRAME"]

MAX_FRAME = 1024 * 1024
ENV = "TOOLRUNTIME_GATEWAY"


class ToolError(Exception):
    """A gateway error.  `code` is a stable string: tool_not_found,
    tool_failed, tool_limit, invalid_arguments, protocol_error, timeout,
    internal, or no_gateway when no gateway is reachable."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


class _Stream:
    """A byte stream over a file descriptor (socket or not)."""

    def __init__(self, fd, owner=None):
        self.fd = fd
        self._owner = owner  # keeps a socket object alive

    def send(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def recv_exact(self, n):
        chunks = []
        while n > 0:
            b = os.read(self.fd, min(n, 65536))
            if not b:
                raise ToolError("protocol_error", "the gateway closed the connection")
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def close(self):
        if self._owner is not None:
            self._owner.close()


class Gateway:
    """A connection to the gateway, opened on first use.  Thread-safe: calls
    from several threads take turns."""

    def __init__(self, address=None):
        self._address = address
        self._stream = None
        self._pid = None
        self._lock = threading.Lock()
        self._next_id = 1

    def _connect(self):
        pid = os.getpid()
        if self._stream is not None and self._pid == pid:
            return self._stream
        addr = self._address or os.environ.get(ENV, "")
        if self._stream is not None and addr.startswith("fd:"):
            # A forked child shares the parent's stream: replies would be
            # read by whichever process gets there first.
            raise ToolError("no_gateway", "the gateway fd belongs to the parent process; "
                            "call tools from the process that first used it")
        if addr.startswith("fd:"):
            try:
                fd = int(addr[3:])
            except ValueError:
                raise ToolError("no_gateway", "bad %s value %r" % (ENV, addr))
            self._stream = _Stream(fd)
        elif addr.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(addr[5:])
            except OSError as e:
                s.close()
                raise ToolError("no_gateway", "cannot connect to %s: %s" % (addr[5:], e))
            self._stream = _Stream(s.fileno(), s)
        else:
            raise ToolError("no_gateway", "%s is not set: this code does not run under toolruntime" % ENV)
        self._pid = pid
        return self._stream

    def call(self, type_, payload):
        """Send one request and return its response payload."""
        with self._lock:
            stream = self._connect()
            mid = self._next_id
            self._next_id += 1
            body = json.dumps({"type": type_, "id": mid, "payload": payload},
                              separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if len(body) > MAX_FRAME:
                raise ToolError("invalid_arguments", "request of %d bytes exceeds the 1 MiB message cap" % len(body))
            try:
                stream.send(struct.pack(">I", len(body)) + body)
                (n,) = struct.unpack(">I", stream.recv_exact(4))
                if n > MAX_FRAME:
                    raise ToolError("protocol_error", "reply exceeds the message cap")
                msg = json.loads(stream.recv_exact(n).decode("utf-8"))
            except OSError as e:
                raise ToolError("protocol_error", "gateway I/O failed: %s" % e)
            except ValueError as e:
                raise ToolError("protocol_error", "malformed reply: %s" % e)
            if msg.get("id") != mid:
                raise ToolError("protocol_error", "reply id %r does not match request %r" % (msg.get("id"), mid))
            if msg.get("type") == "error":
                p = msg.get("payload") or {}
                raise ToolError(p.get("code", "internal"), p.get("message", ""))
            if msg.get("type") != "response":
                raise ToolError("protocol_error", "unexpected reply type %r" % msg.get("type"))
            return msg.get("payload")

    # The six operations.

    def search_tools(self, query="", limit=5):
        """Tool summaries matching `query`, best first."""
        return self.call("search_tools", {"query": query, "limit": int(limit)})

    def list_namespaces(self):
        return self.call("list_namespaces", {})

    def describe_tool(self, id, detail="schema"):
        """detail: "summary", "schema" or "full"."""
        return self.call("describe_tool", {"id": id, "detail": detail})

    def list_tool_examples(self, id, max=3):
        return self.call("list_tool_examples", {"id": id, "max": int(max)})

    def run_tool(self, id, args=None, **kwargs):
        """Run tool `id` with a dict of arguments (or keyword arguments)."""
        a = dict(args or {})
        a.update(kwargs)
        return self.call("run_tool", {"id": id, "args": a})

    def run_chain(self, steps):
        """Run steps in order; returns the last step's result.  A step is a
        dict {"tool_id", "args", "use_previous", "arg_name"} or a tuple
        (tool_id, args) / (tool_id, args, arg_name) — the tuple forms with an
        arg_name (and every step after the first given as a 3-tuple) take
        the previous result under that argument name."""
        out = []
        for i, s in enumerate(steps):
            if isinstance(s, dict):
                out.append(s)
            elif isinstance(s, (tuple, list)) and len(s) in (2, 3):
                step = {"tool_id": s[0], "args": s[1] or {}}
                if len(s) == 3 and i > 0:
                    step["use_previous"] = True
                    step["arg_name"] = s[2]
                out.append(step)
            else:
                raise ToolError("invalid_arguments", "step %d is neither a dict nor a (tool_id, args) tuple" % i)
        return self.call("run_chain", {"steps": out})

    def close(self):
        with self._lock:
            if self._stream is not None:
                self._stream.close()
            self._stream = None


# `tools` is also the package of the typed bindings:
# `from toolruntime.tools import everything; everything.get_sum(a=1, b=2)`.
from toolruntime import _bindings  # noqa: E402

_UNSET = _bindings._UNSET
_Spec = _bindings._Spec
_call = _bindings._call
tools = _bindings.install(Gateway())
