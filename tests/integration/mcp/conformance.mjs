// SPDX-License-Identifier: Apache-2.0
// The official MCP conformance suite against `toolruntime mcp`.
//
// The suite speaks only Streamable HTTP.  With MCP_URL (run.sh
// conformance-http) it talks to `toolruntime serve`'s /mcp directly.
// Without, it tests the stdio server `toolruntime mcp`: this bridge puts
// the SDK's Streamable HTTP server transport in front of one
// `toolruntime mcp` process per session and relays JSON-RPC messages
// unchanged in both directions.  The bridge adds no behaviour of its own:
// every answer the suite judges is the stdio server's.  Scenarios listed in
// conformance-expected.yaml are the ones we fail or do not support (the
// README says why); any other failure fails the test.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

const bin = process.env.TOOLRUNTIME_BIN;
const here = path.dirname(new URL(import.meta.url).pathname);
const sessions = new Map();

async function newSession() {
  const child = new StdioClientTransport({ command: bin, args: ["mcp", "-p", "dev"], stderr: "inherit" });
  const progressOwner = new Map(); // progressToken -> request id
  let lastRequest;
  const front = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (sid) => sessions.set(sid, front),
  });
  front.onmessage = (msg) => {
    if (msg.id !== undefined && msg.method) {
      lastRequest = msg.id;
      const tok = msg.params?._meta?.progressToken;
      if (tok !== undefined) progressOwner.set(tok, msg.id);
    }
    child.send(msg).catch(() => {});
  };
  front.onclose = () => {
    if (front.sessionId) sessions.delete(front.sessionId);
    child.close().catch(() => {});
  };
  child.onmessage = (msg) => {
    // Notifications go on the stream of the request they belong to.
    let related;
    if (msg.method === "notifications/progress") related = progressOwner.get(msg.params?.progressToken);
    else if (msg.method && msg.id === undefined) related = lastRequest;
    front.send(msg, related !== undefined ? { relatedRequestId: related } : undefined).catch(() => {});
  };
  await child.start();
  return front;
}

const server = http.createServer(async (req, res) => {
  try {
    const sid = req.headers["mcp-session-id"];
    let front = sid ? sessions.get(sid) : undefined;
    if (!front && req.method === "POST") front = await newSession();
    if (!front) {
      res.writeHead(404).end();
      return;
    }
    await front.handleRequest(req, res);
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e));
  }
});
// MCP_URL: `toolruntime serve`'s own /mcp endpoint, no bridge.  There the
// Host/Origin check is ours, so dns-rebinding-protection must pass and
// leaves the baseline.
const direct = process.env.MCP_URL;
if (!direct) await new Promise((r) => server.listen(0, "127.0.0.1", r));
const url = direct || `http://127.0.0.1:${server.address().port}/mcp`;
const out = mkdtempSync(path.join(tmpdir(), "mcp-conformance-"));
let expected = path.join(here, "conformance-expected.yaml");
if (direct) {
  const text = readFileSync(expected, "utf8").replace(/^ *- dns-rebinding-protection\n/m, "");
  expected = path.join(out, "expected-http.yaml");
  writeFileSync(expected, text);
}

const suite = path.join(here, "node_modules/@modelcontextprotocol/conformance/dist/index.js");
const args = [suite, "server", "--url", url, "--output-dir", out, "--expected-failures", expected];
// The suite runs in a child so that this process keeps serving.
const rc = await new Promise((resolve) => {
  const p = spawn(process.execPath, args, { stdio: "inherit" });
  p.on("exit", (code) => resolve(code ?? 1));
});
if (!direct) server.close();
for (const f of sessions.values()) await f.close().catch(() => {});
if (rc === 0) rmSync(out, { recursive: true, force: true });
else console.log(`conformance: exit ${rc}; results in ${out}`);
process.exit(rc);
