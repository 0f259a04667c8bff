#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A registry that misbehaves on one blob: an HTTP proxy on loopback in front
# of the real docker-registry that forwards every request unchanged, except
# a GET of the blob DIGEST, which it answers in MODE:
#   cut   the headers (with the full Content-Length) and half of the body,
#         then the connection closes: a registry that stops mid-blob
#   flip  the whole body with one byte changed: bytes that do not hash to
#         the digest they were asked for
# usage: faulty_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT DIGEST MODE
# Prints "ready" on stdout once it listens.
import http.client
import http.server
import sys

port, upstream, digest, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        body = None
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            body = self.rfile.read(n)
        up = http.client.HTTPConnection(upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "host"}
        headers["Host"] = upstream
        up.request(self.command, self.path, body=body, headers=headers)
        resp = up.getresponse()
        data = resp.read()
        up.close()
        target = self.command == "GET" and self.path.endswith("/blobs/" + digest) and resp.status == 200
        if target and mode == "flip":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        if target and mode == "cut":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward

    def log_message(self, fmt, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy)
print("ready", flush=True)
srv.serve_forever()
