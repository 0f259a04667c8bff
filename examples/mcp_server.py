#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A tiny MCP server over stdio (standard library only), for examples and tests.

Tools: weather (a canned forecast for a city) and word_count.  It lists one
tool per page (to exercise nextCursor) and sends a log notification before
every response (to exercise clients that must skip notifications).
"""
import json
import sys

TOOLS = [
    {
        "name": "weather",
        "title": "Weather forecast",
        "description": "Get a (canned) weather forecast for a city.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "city name"},
                "units": {"type": "string", "enum": ["metric", "imperial"]},
            },
            "required": ["city"],
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
    {
        "name": "word_count",
        "description": "Count the words of a text.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
]


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def log(text):
    send({"jsonrpc": "2.0", "method": "notifications/message",
          "params": {"level": "info", "logger": "example", "data": text}})


def call(name, args):
    if name == "weather":
        temp = 21 if args.get("units", "metric") == "metric" else 70
        return {"content": [{"type": "text", "text": json.dumps({"city": args["city"], "temp": temp, "sky": "clear"})}],
                "structuredContent": {"city": args["city"], "temp": temp, "sky": "clear"}}
    if name == "word_count":
        return {"content": [{"type": "text", "text": str(len(args.get("text", "").split()))}]}
    return {"content": [{"type": "text", "text": "unknown tool " + name}], "isError": True}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        method, mid = msg.get("method"), msg.get("id")
        if mid is None:
            continue  # a notification: nothing to answer
        log("handling " + str(method))
        if method == "initialize":
            wanted = msg.get("params", {}).get("protocolVersion")
            version = wanted if wanted in ("2025-06-18", "2025-03-26", "2024-11-05") else "2025-06-18"
            result = {"protocolVersion": version, "capabilities": {"tools": {}, "logging": {}},
                      "serverInfo": {"name": "example-server", "version": "1.0"}}
        elif method == "tools/list":
            cursor = int(msg.get("params", {}).get("cursor", "0") or 0)
            result = {"tools": TOOLS[cursor:cursor + 1]}
            if cursor + 1 < len(TOOLS):
                result["nextCursor"] = str(cursor + 1)
        elif method == "tools/call":
            p = msg.get("params", {})
            result = call(p.get("name"), p.get("arguments") or {})
        elif method == "ping":
            result = {}
        else:
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "method not found"}})
            continue
        send({"jsonrpc": "2.0", "id": mid, "result": result})


if __name__ == "__main__":
    main()
