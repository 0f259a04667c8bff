#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Soak test of `toolruntime serve` (make soak; a shortened run in make check).

N mixed executions at concurrency C over HTTP keep-alive — successes,
errors, timeouts, out-of-memory kills, tool calls and clients that hang up —
against a serve over its own private containerd.  A third of the way in
containerd is restarted (its shims live on, as in a real restart); two
thirds in, serve is SIGKILLed and started again (its start-up gc must
collect what the killed one left).  Then:

  - no request hung (each has a deadline);
  - every answer is the expected outcome or an error object with a code and
    a retryable flag; a refused connection happens only while serve is down;
  - serve's RSS stayed bounded;
  - after a SIGTERM (which must exit 0), nothing is left: containers, tasks,
    leases and snapshots are as before the run, and no shim, mount or
    sandbox process of this daemon remains.

Needs root, containerd, runc and the image build (like the 'containerd'
suite).  Prints the figures the closing notes quote.
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

# kind -> (request body, check(result) -> bool)
KINDS = {
    "ok": ({"code": "__out = 1"}, lambda r: r.get("value") == 1 and r.get("exit_code") == 0),
    "error": ({"code": "1/0"}, lambda r: r.get("exit_code") == 1 and "ZeroDivisionError" in r.get("stderr", "")),
    "timeout": ({"code": "while True: pass", "timeout": 1},
                lambda r: (r.get("error") or {}).get("code") == "timeout"),
    "oom": ({"code": "x = bytearray(256 * 1024 * 1024)", "limits": {"memory": 64 * 1024 * 1024}},
            lambda r: r.get("signal") == "SIGKILL" or "MemoryError" in r.get("stderr", "")),
    "tool": ({"code": "from toolruntime.tools import demo\n__out = demo.add(a=1, b=2)"},
             lambda r: r.get("value") == 3 and [c["tool_id"] for c in r.get("tool_calls", [])] == ["demo:add"]),
    "disconnect": (None, None),
}
MIX = ["ok"] * 5 + ["error", "timeout", "oom", "tool", "disconnect"]


def ctr(sock, *args):
    p = subprocess.run(["ctr", "-a", sock, "-n", "default", *args], capture_output=True, text=True)
    return [l for l in p.stdout.splitlines() if l.strip()]


def state(sock, ctrd_dir):
    shims = subprocess.run(["pgrep", "-f", "containerd-shim.*-address " + sock], capture_output=True,
                           text=True).stdout.split()
    with open("/proc/mounts") as f:
        mounts = [l.split()[1] for l in f if ctrd_dir + "/state" in l.split()[1]]
    return {
        "containers": len(ctr(sock, "containers", "ls", "-q")),
        "tasks": len(ctr(sock, "tasks", "ls", "-q")),
        "leases": len(ctr(sock, "leases", "ls", "-q")),
        "snapshots": len(ctr(sock, "snapshots", "ls")),
        "shims": len(shims),
        "mounts": len(mounts),
    }


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Serve:
    def __init__(self, args, sock, log):
        self.cmd = [args.bin, "serve", "--listen", "127.0.0.1:%d" % args.port, "--socket", sock,
                    "--max-concurrency", str(args.concurrency), "--queue", "256", "--max-timeout", "30",
                    "--tools", os.path.join(REPO, "examples", "tools.json")]
        self.log = log
        self.proc = None

    def start(self):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(self.cmd, stderr=logf, stdout=logf)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port()), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        sys.exit("soak: serve did not start; log: " + open(self.log).read()[-2000:])

    def port(self):
        return int(self.cmd[3].rsplit(":", 1)[1])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("TOOLRUNTIME_BIN"))
    ap.add_argument("--executions", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-rss-mb", type=int, default=256)
    ap.add_argument("--no-ctrd-restart", action="store_true", help="skip the containerd restart")
    ap.add_argument("--no-serve-kill", action="store_true", help="skip the SIGKILL of serve")
    ap.add_argument("--keep", action="store_true", help="keep the daemon and logs when it fails (debugging)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not args.bin:
        print("soak: SKIP: needs root and TOOLRUNTIME_BIN")
        sys.exit(1 if os.environ.get("CI") == "true" else 77)
    args.port = free_port()

    work = tempfile.mkdtemp(prefix="tr-soak-")
    ctrd_dir = os.path.join(work, "ctrd")
    priv = os.path.join(REPO, "scripts", "containerd-private.sh")
    sock = subprocess.run([priv, "start", ctrd_dir], check=True, capture_output=True, text=True).stdout.strip()
    serve = None
    try:
        subprocess.run([args.bin, "image", "build", "--socket", sock], check=True, capture_output=True)
        base = state(sock, ctrd_dir)
        serve = Serve(args, sock, os.path.join(work, "serve.log"))
        serve.start()

        lock = threading.Lock()
        nxt = [0]
        outcomes = {}  # (kind, outcome) -> count
        latencies = {}  # kind -> [s]
        failures = []
        refused = []  # times of refused/reset connections
        down = [None, None]  # serve down window [killed_at, ready_at]
        rss = {"max_kb": 0, "samples": 0}
        stop = threading.Event()
        rnd = random.Random(42)
        plan = [rnd.choice(MIX) for _ in range(args.executions)]

        def record(kind, outcome, secs=None):
            with lock:
                outcomes[(kind, outcome)] = outcomes.get((kind, outcome), 0) + 1
                if secs is not None:
                    latencies.setdefault(kind, []).append(secs)

        def disconnect():
            # A client that sends its request and goes away: the service
            # must cancel the execution (its sandbox is removed).
            body = json.dumps({"code": "import time\ntime.sleep(20)", "timeout": 25}).encode()
            s = socket.create_connection(("127.0.0.1", serve.port()), timeout=5)
            s.sendall(b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            time.sleep(0.3)
            s.close()

        def worker():
            conn = None
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(plan):
                    break
                kind = plan[i]
                t0 = time.time()
                try:
                    if kind == "disconnect":
                        disconnect()
                        record(kind, "sent")
                        continue
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", serve.port(), timeout=90)
                    body, check = KINDS[kind]
                    conn.request("POST", "/v1/execute", json.dumps(body), {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    secs = time.time() - t0
                    r = json.loads(data)
                    err = r.get("error")
                    if resp.status == 200 and check(r):
                        record(kind, "expected", secs)
                    elif isinstance(err, dict) and isinstance(err.get("code"), str) and \
                            isinstance(err.get("retryable"), bool):
                        record(kind, "error:%s:%s" % (err["code"], "retryable" if err["retryable"] else "final"), secs)
                        if err["retryable"]:
                            time.sleep(0.5)  # a client's back-off
                    else:
                        failures.append("%s #%d: unclear answer (HTTP %d): %.300s" % (kind, i, resp.status, data))
                except socket.timeout:
                    failures.append("%s #%d: no answer within 90 s (hung)" % (kind, i))
                    conn = None
                except (ConnectionError, http.client.HTTPException, OSError) as e:
                    # Only while serve is down (killed, not yet restarted).
                    with lock:
                        refused.append((time.time(), "%s #%d: %s" % (kind, i, type(e).__name__)))
                    record(kind, "connection-failed")
                    if conn is not None:
                        conn.close()
                    conn = None
                    time.sleep(0.2)
            if conn is not None:
                conn.close()

        def sampler():
            while not stop.is_set():
                if serve.proc and serve.proc.poll() is None:
                    kb = rss_kb(serve.proc.pid)
                    rss["max_kb"] = max(rss["max_kb"], kb)
                    rss["samples"] += 1
                time.sleep(0.25)

        def chaos():
            # A third in: containerd restarts (shims stay).  Two thirds in:
            # serve is SIGKILLed and restarted.
            while nxt[0] < len(plan) // 3 and not stop.is_set():
                time.sleep(0.05)
            if not args.no_ctrd_restart:
                pid = int(open(os.path.join(ctrd_dir, "containerd.pid")).read())
                os.kill(pid, signal.SIGTERM)
                while os.path.exists("/proc/%d" % pid):
                    time.sleep(0.05)
                subprocess.run([priv, "start", ctrd_dir], check=True, capture_output=True)
                print("soak: containerd restarted at execution %d" % nxt[0], flush=True)
            while nxt[0] < 2 * len(plan) // 3 and not stop.is_set():
                time.sleep(0.05)
            if args.no_serve_kill:
                return
            down[0] = time.time()
            serve.proc.kill()
            serve.proc.wait()
            serve.start()
            down[1] = time.time()
            print("soak: serve SIGKILLed and restarted at execution %d (%.1f s down)" % (nxt[0], down[1] - down[0]),
                  flush=True)

        t_start = time.time()
        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        side = [threading.Thread(target=sampler), threading.Thread(target=chaos)]
        for t in threads + side:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t_start
        stop.set()
        for t in side:
            t.join()

        for t, what in refused:
            if down[0] is None or not (down[0] - 0.5 <= t <= down[1] + 2):
                failures.append("connection failed while serve was up: " + what)

        # SIGTERM drains and exits 0; then nothing may be left.
        serve.proc.send_signal(signal.SIGTERM)
        try:
            rc = serve.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.proc.kill()
            rc = "hung"
        if rc != 0:
            failures.append("serve exited %s on SIGTERM" % rc)
        # What the next start of serve does: the owner-aware gc.  What it
        # collects is what the killed instance and the restart left (reported;
        # serve also runs it every minute).
        gc = subprocess.run([args.bin, "gc", "--socket", sock], capture_output=True, text=True)
        gc_out = (gc.stdout + gc.stderr).strip()
        if gc.returncode != 0:
            failures.append("gc after the run failed: " + gc_out)
        after = state(sock, ctrd_dir)
        for _ in range(40):
            if after == base:
                break
            time.sleep(0.5)
            after = state(sock, ctrd_dir)
        if after != base:
            failures.append("left behind: %s (before the run: %s)" % (after, base))
            shims = subprocess.run(["pgrep", "-af", "containerd-shim.*-address " + sock], capture_output=True,
                                   text=True).stdout
            for line in shims.splitlines():
                pid = line.split()[0]
                kids = subprocess.run(["ps", "--ppid", pid, "-o", "pid,uid,etimes,args"], capture_output=True,
                                      text=True).stdout
                failures.append("shim left: %s; its children: %s" % (line, kids.strip().replace("\n", " | ")))
        # Every sandbox process lives under one of this daemon's shims (its
        # container's pid 1 is the shim's child): no shim, no process.
        if rss["max_kb"] > args.max_rss_mb * 1024:
            failures.append("serve RSS reached %d MiB (bound %d MiB)" % (rss["max_kb"] // 1024, args.max_rss_mb))

        total = sum(outcomes.values())
        print("soak: %d executions at concurrency %d in %.1f s (%.1f/s)" % (total, args.concurrency, wall,
                                                                          total / wall))
        for kind in KINDS:
            row = {o: n for (k, o), n in sorted(outcomes.items()) if k == kind}
            lat = sorted(latencies.get(kind, []))
            med = "p50 %.0f ms, p99 %.0f ms" % (lat[len(lat) // 2] * 1000, lat[min(len(lat) - 1,
                                                                                  int(len(lat) * 0.99))] * 1000) \
                if lat else ""
            print("  %-10s %s %s" % (kind, row, med))
        print("soak: serve max RSS %d MiB (%d samples); connection failures while serve was down: %d"
              % (rss["max_kb"] // 1024, rss["samples"], len(refused)))
        print("soak: gc after the run (as the next start does): %s" % (gc_out or "nothing to remove"))
        print("soak: state after: %s" % after)
        warnings = [l for l in open(serve.log, errors="replace") if "[warn]" in l or "[error]" in l]
        kinds = {}
        for w in warnings:
            key = re.sub(r"(id|container_id|what)=\S+", "", w.split("] ", 1)[-1]).strip()[:160]
            kinds[key] = kinds.get(key, 0) + 1
        print("soak: serve logged %d warnings" % len(warnings))
        for key, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:8]:
            print("  %4d x %s" % (n, key))
        for f in failures[:30]:
            print("FAIL: " + f)
        print("soak: %s" % ("FAILED (%d)" % len(failures) if failures else "passed"))
        return 1 if failures else 0
    except SystemExit:
        raise
    finally:
        if serve and serve.proc and serve.proc.poll() is None:
            serve.proc.kill()
        if args.keep:
            print("soak: kept %s" % work)
            return
        subprocess.run([priv, "stop", ctrd_dir], capture_output=True)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
