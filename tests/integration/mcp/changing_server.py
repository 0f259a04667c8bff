#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A tiny MCP server (stdio) whose tool list changes: add_tool(name) adds a
tool `name` (returning "NAME was added later") and sends
notifications/tools/list_changed before its answer, as a server whose tools
depend on state would."""
import json
import sys

tools = [{"name": "add_tool", "description": "Add a tool.",
          "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}]


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    mid, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
    if mid is None:
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": params.get("protocolVersion"),
                                                       "capabilities": {"tools": {"listChanged": True}},
                                                       "serverInfo": {"name": "changing", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": tools}})
    elif method == "tools/call":
        name = params.get("name")
        if name == "add_tool":
            new = params["arguments"]["name"]
            tools.append({"name": new, "description": "Added later.", "inputSchema": {"type": "object"}})
            send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
            text = "added " + new
        else:
            text = "%s was added later" % name
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no"}})
