#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install the MCP clients and servers the 'mcp' suite drives into
# tests/integration/mcp/node_modules (project-local, nothing global): the
# official TypeScript SDK (a client), the inspector CLI, the reference
# server as an upstream, and the conformance suite.
set -eu
cd "$(dirname "$0")"
pkgs="@modelcontextprotocol/sdk @modelcontextprotocol/inspector-cli @modelcontextprotocol/server-everything @modelcontextprotocol/conformance"
missing=
for p in $pkgs; do
        [ -d "node_modules/$p" ] || missing="$missing $p"
done
if [ -z "$missing" ]; then
        echo "already installed"
        exit 0
fi
[ -f package.json ] || printf '{ "private": true, "name": "toolruntime-mcp-tests" }\n' > package.json
# shellcheck disable=SC2086
npm install --no-audit --no-fund --loglevel=error $missing
