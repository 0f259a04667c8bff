# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Egress allowlists (issue 14, item 3): a sandbox with an allowlist reaches
# exactly the listed HOST:PORTs, through the host-side proxy on its own
# 127.0.0.1:3128, and nothing else: not another port of the same host, not
# a name that is not listed (denied before any DNS lookup), not its host's
# addresses directly, not with raw or packet sockets, not over UDP.  Every
# denial is counted in the result's "egress".  Without an allowlist nothing
# changes (no proxy, no proxy variables).  The hardened profile, the dev
# profile (host network) and the kata backend refuse an allowlist.
#
# The host side: two HTTP servers (A is listed, B is not; B records any
# request that reaches it) and a TCP echo server (listed, reached with a raw
# CONNECT), all on the host's 127.0.0.1 at free ports.  A name that resolves
# to the host itself is refused (t_egress_host_itself).

EGRESS_PID=""

egress_servers_start() {
    rm -f "$WORK/egress-ports" "$WORK/egress-b-hits"
    : >"$WORK/egress-b-hits"
    python3 - "$WORK/egress-ports" "$WORK/egress-b-hits" <<'PYEOF' &
import http.server, socket, socketserver, sys, threading
ports_file, b_hits = sys.argv[1], sys.argv[2]
class A(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("EGRESS-A-OK path=%s" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        # Every Host the request carried (t_egress_host_itself).
        self.send_header("X-Got-Host", "|".join(self.headers.get_all("Host") or []))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
class B(A):
    def do_GET(self):
        with open(b_hits, "a") as f:
            f.write(self.path + "\n")
        A.do_GET(self)
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(4096)
            if not d:
                return
            self.request.sendall(d)
servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), A),
           http.server.ThreadingHTTPServer(("127.0.0.1", 0), B),
           socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)]
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
with open(ports_file + ".tmp", "w") as f:
    f.write(" ".join(str(s.server_address[1]) for s in servers))
import os
os.rename(ports_file + ".tmp", ports_file)
threading.Event().wait()
PYEOF
    EGRESS_PID=$!
    for _ in $(seq 50); do [ -s "$WORK/egress-ports" ] && break; sleep 0.1; done
    read -r PORT_A PORT_B PORT_E <"$WORK/egress-ports"
}

egress_servers_stop() {
    [ -n "$EGRESS_PID" ] && kill "$EGRESS_PID" 2>/dev/null && wait "$EGRESS_PID" 2>/dev/null
    EGRESS_PID=""
}

# A host address that is not loopback (to try reaching the host directly).
host_ip() {
    hostname -I 2>/dev/null | tr ' ' '\n' | grep -v '^127\.' | grep -v ':' | head -1
}

egress_snippet() {
    cat <<'PYEOF'
import errno, os, socket, sys, urllib.request, urllib.error
a, b, e, host_ip = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def err(x):
    return type(x).__name__ + ("" if not getattr(x, "errno", None) else ":" + errno.errorcode.get(x.errno, "?"))
print("proxy_env=" + os.environ.get("HTTP_PROXY", "") + "," + os.environ.get("HTTPS_PROXY", "") + "," + os.environ.get("ALL_PROXY", "") + "," + repr(os.environ.get("NO_PROXY")))
try:
    print("fetch_a=" + urllib.request.urlopen("http://127.0.0.1:%s/hello?x=1" % a, timeout=10).read().decode())
except Exception as x:
    print("fetch_a=" + err(x) + " " + str(x))
try:
    urllib.request.urlopen("http://127.0.0.1:%s/secret" % b, timeout=10).read()
    print("fetch_b=REACHED")
except urllib.error.HTTPError as x:
    print("fetch_b=%d" % x.code)
except Exception as x:
    print("fetch_b=" + err(x))
try:
    urllib.request.urlopen("https://example.com/", timeout=10).read()
    print("fetch_name=REACHED")
except Exception as x:
    print("fetch_name=" + ("403" if "403" in str(x) else err(x) + " " + str(x)))
# CONNECT by hand to the echo server: any TCP goes through a tunnel.
try:
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(("CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n" % (e, e)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        if not d:
            break
        head += d
    s.sendall(b"ping-through-tunnel")
    got = b""
    while len(got) < 19:
        d = s.recv(100)
        if not d:
            break
        got += d
    print("connect_status=" + head.split(b"\r\n")[0].decode())
    print("connect_echo=" + got.decode())
    s.close()
except Exception as x:
    print("connect_status=" + err(x))
def direct(host, port):
    try:
        c = socket.create_connection((host, int(port)), timeout=5)
        c.close()
        return "CONNECTED"
    except Exception as x:
        return err(x)
print("direct_a=" + direct("127.0.0.1", a))
print("direct_host=" + (direct(host_ip, a) if host_ip else "none"))
for name, fam, typ, proto in [("raw", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                              ("packet", socket.AF_PACKET, socket.SOCK_RAW, 0)]:
    try:
        socket.socket(fam, typ, proto).close()
        print(name + "=OPENED")
    except Exception as x:
        print(name + "=" + err(x))
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("8.8.8.8", 53))
    print("udp=SENT")
except Exception as x:
    print("udp=" + err(x))
# The proxy's port cannot be taken over (it listens before the code arrives,
# without SO_REUSEPORT).
try:
    h = socket.socket()
    h.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    h.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    h.bind(("127.0.0.1", 3128))
    h.listen(1)
    print("hijack=BOUND")
except Exception as x:
    print("hijack=" + err(x))
try:
    socket.getaddrinfo("example.com", 443)
    print("dns=RESOLVED")
except Exception as x:
    print("dns=" + type(x).__name__)
PYEOF
}

t_egress_allowlist() {
    egress_servers_start
    local hip
    hip=$(host_ip)
    trx standard --egress-allow "127.0.0.1:$PORT_A" --egress-allow "127.0.0.1:$PORT_E" -c "$(egress_snippet)" \
        -- "$PORT_A" "$PORT_B" "$PORT_E" "${hip:-}"
    assert_eq "$RC" 0 "exit status"
    assert_eq "$(kv proxy_env)" "http://127.0.0.1:3128,http://127.0.0.1:3128,http://127.0.0.1:3128,''" "proxy variables"
    assert_eq "$(kv fetch_a)" "EGRESS-A-OK path=/hello?x=1" "fetching from the listed server A"
    assert_eq "$(kv fetch_b)" 403 "fetching from the unlisted port B"
    assert_eq "$(wc -l <"$WORK/egress-b-hits")" 0 "requests that reached server B"
    assert_eq "$(kv fetch_name)" 403 "https to an unlisted name"
    assert_eq "$(kv connect_status)" "HTTP/1.1 200 Connection established" "CONNECT to the listed echo server"
    assert_eq "$(kv connect_echo)" "ping-through-tunnel" "bytes through the CONNECT tunnel"
    assert_eq "$(kv direct_a)" "ConnectionRefusedError:ECONNREFUSED" "direct connect to 127.0.0.1:A (the sandbox's own loopback)"
    if [ -n "$hip" ]; then
        assert_eq "$(kv direct_host)" "OSError:ENETUNREACH" "direct connect to the host's $hip"
    else
        note "no non-loopback host address: direct connect to the host not tried"
    fi
    assert_eq "$(kv raw)" "PermissionError:EPERM" "raw socket"
    assert_eq "$(kv packet)" "PermissionError:EPERM" "packet socket"
    assert_eq "$(kv udp)" "OSError:ENETUNREACH" "UDP datagram out"
    assert_eq "$(kv dns)" gaierror "DNS from inside the sandbox"
    assert_eq "$(kv hijack)" "OSError:EADDRINUSE" "binding the proxy's port from inside"
    assert_eq "$(j .egress.allowed)" 2 "egress.allowed (A and the echo server)"
    assert_eq "$(j .egress.denied)" 2 "egress.denied (B and example.com)"
    assert_eq "$(j '.egress.denied_targets | sort | join(",")')" "127.0.0.1:$PORT_B,example.com:443" "egress.denied_targets"
    egress_servers_stop
}

t_egress_none() {
    trx standard -c '
import os, socket
print("proxy_env=" + ",".join(k for k in os.environ if "proxy" in k.lower()))
try:
    socket.create_connection(("127.0.0.1", 3128), timeout=5)
    print("proxy_port=CONNECTED")
except Exception as x:
    print("proxy_port=" + type(x).__name__)
'
    assert_eq "$RC" 0 "exit status"
    assert_eq "$(kv proxy_env)" "" "proxy variables without an allowlist"
    assert_eq "$(kv proxy_port)" ConnectionRefusedError "127.0.0.1:3128 without an allowlist"
    assert_eq "$(j .egress)" null "no egress object without an allowlist"
}

t_egress_refused() {
    local before
    before=$(backend_state)
    trx hardened --egress-allow example.com:443 -c 'print(1)'
    assert_eq "$RC" 125 "hardened: exit status"
    assert_eq "$(j .error.code)" invalid_request "hardened: error code"
    assert_contains "$(j .error.message)" "profile 'hardened'" "hardened: error message"
    local bad
    for bad in '*.example.com:443' 'example.com' 'example.com:0' 'example.com:65536' '::1:80' '127.1:80' 'a b:80'; do
        trx standard --egress-allow "$bad" -c 'print(1)'
        assert_eq "$RC" 125 "'$bad': exit status"
        assert_eq "$(j .error.code)" invalid_request "'$bad': error code"
    done
    trx dev --egress-allow example.com:443 -c 'print(1)'
    assert_eq "$(j .error.code)" invalid_request "dev on containerd: error code"
    assert_contains "$(j .error.message)" "host's network" "dev on containerd: error message"
    trx standard --runtime io.containerd.runsc.v1 --egress-allow example.com:443 -c 'print(1)'
    assert_eq "$(j .error.code)" invalid_request "gVisor runtime: error code"
    assert_contains "$(j .error.message)" "needs the runc runtime" "gVisor runtime: error message"
    # kata refuses before any VM boots (the refusal is the core's, after routing).
    OUT=$("$TOOLRUNTIME_BIN" exec --json -b kata --egress-allow example.com:443 -c 'print(1)' 2>"$WORK/stderr")
    assert_eq "$(j .error.code)" invalid_request "kata: error code"
    assert_contains "$(j .error.message)" "no network device" "kata: error message"
    assert_eq "$(backend_state)" "$before" "nothing created by refused requests"
}

# The MCP server's operator-set allowlist (toolruntime mcp --egress-allow):
# each execute call's sandbox gets it, and structuredContent counts.
t_egress_mcp() {
    egress_servers_start
    OUT=$(python3 - "$TOOLRUNTIME_BIN" "$TR_TEST_CONTAINERD_SOCKET" "$NS" "$IMAGE" "$PORT_A" "$PORT_B" <<'PYEOF'
import json, subprocess, sys
tr, sock, ns, image, a, b = sys.argv[1:]
p = subprocess.Popen([tr, "mcp", "-b", "containerd", "--socket", sock, "--namespace", ns, "--image", image,
                      "--egress-allow", "127.0.0.1:" + a], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, text=True)
code = ("import urllib.request as u\nr = [u.urlopen('http://127.0.0.1:%s/mcp').read().decode()]\n"
        "try: u.urlopen('http://127.0.0.1:%s/')\nexcept Exception as e: r.append(e.code)\n__out = r" % (a, b))
for m in [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
           "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
          {"jsonrpc": "2.0", "method": "notifications/initialized"},
          {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "execute", "arguments": {"code": code}}}]:
    p.stdin.write(json.dumps(m) + "\n")
    p.stdin.flush()
while True:
    m = json.loads(p.stdout.readline())
    if m.get("id") == 2:
        break
p.stdin.close()
p.wait(timeout=30)
print(json.dumps(m["result"]["structuredContent"]))
PYEOF
)
    assert_eq "$(j '.value | tostring')" '["EGRESS-A-OK path=/mcp",403]' "mcp: value"
    assert_eq "$(j '[.egress.allowed, .egress.denied] | tostring')" '[1,1]' "mcp: egress counts"
    egress_servers_stop
}

# A name in the allowlist that leads back to the host itself: "localhost"
# resolves, on the host where the proxy runs, to the host's own loopback
# (where serve's API listens without a token).  The proxy refuses it (403,
# counted as denied, server B never reached), while the literal entry
# 127.0.0.1:PORT_A, an operator's deliberate choice, works.  And a plain
# HTTP request's Host header is the URL's authority, whatever the client
# sent (no domain fronting), one added when the client sent none.
t_egress_host_itself() {
    egress_servers_start
    trx standard --egress-allow "localhost:$PORT_B" --egress-allow "127.0.0.1:$PORT_A" -c '
import socket, sys, urllib.request
a, b = sys.argv[1], sys.argv[2]
def raw(req):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(req.encode())
    got = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    s.close()
    return got.decode(errors="replace")
print("connect_localhost=" + raw("CONNECT localhost:%s HTTP/1.1\r\n\r\n" % b).split("\r\n")[0])
print("get_localhost=" + raw("GET http://LocalHost.:%s/x HTTP/1.1\r\nHost: localhost:%s\r\n\r\n" % (b, b)).split("\r\n")[0])
r = raw("GET http://127.0.0.1:%s/y#frag HTTP/1.1\r\nHost: evil.example\r\nhost: other.example\r\n\r\n" % a)
print("fronted=" + r.split("\r\n")[0] + " host=" + [l for l in r.split("\r\n") if l.startswith("X-Got-Host:")][0][12:] + " " + r.split("\r\n\r\n", 1)[1])
r = raw("GET http://127.0.0.1:%s/z HTTP/1.0\r\n\r\n" % a)
print("nohost=" + [l for l in r.split("\r\n") if l.startswith("X-Got-Host:")][0][12:])
print("folded=" + raw("GET http://127.0.0.1:%s/ HTTP/1.1\r\nX: 1\r\n Host: evil\r\n\r\n" % a).split("\r\n")[0])
print("te_cl=" + raw("POST http://127.0.0.1:%s/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % a).split("\r\n")[0])
' -- "$PORT_A" "$PORT_B"
    assert_eq "$RC" 0 "exit status"
    assert_eq "$(kv connect_localhost)" "HTTP/1.1 403 Forbidden" "CONNECT to a listed name that resolves to loopback"
    assert_eq "$(kv get_localhost)" "HTTP/1.1 403 Forbidden" "GET to a listed name that resolves to loopback"
    assert_eq "$(wc -l <"$WORK/egress-b-hits")" 0 "requests that reached server B"
    assert_eq "$(kv fronted)" "HTTP/1.0 200 OK host=127.0.0.1:$PORT_A EGRESS-A-OK path=/y" "Host is the URL's, fragment not sent"
    assert_eq "$(kv nohost)" "127.0.0.1:$PORT_A" "Host added when the client sent none"
    assert_eq "$(kv folded)" "HTTP/1.1 400 Bad Request" "a folded header line"
    assert_eq "$(kv te_cl)" "HTTP/1.1 400 Bad Request" "Transfer-Encoding with Content-Length"
    assert_eq "$(j .egress.allowed)" 2 "egress.allowed (the two requests to A)"
    assert_eq "$(j .egress.denied)" 2 "egress.denied (localhost twice)"
    assert_eq "$(j '.egress.denied_targets | join(",")')" "localhost:$PORT_B" "egress.denied_targets"
    egress_servers_stop
}

register_case containerd t_egress_allowlist
register_case containerd t_egress_host_itself
register_case containerd t_egress_mcp
register_case containerd t_egress_none
register_case containerd t_egress_refused
