#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install the MCP reference server into tests/integration/gateway/node_modules
# (project-local, nothing global), for test-mcp-everything.c.
set -eu
cd "$(dirname "$0")"
if [ -x node_modules/.bin/mcp-server-everything ] || [ -d node_modules/@modelcontextprotocol/server-everything ]; then
        echo "already installed"
        exit 0
fi
[ -f package.json ] || printf '{ "private": true, "name": "toolruntime-gateway-tests" }\n' > package.json
npm install --no-audit --no-fund --loglevel=error @modelcontextprotocol/server-everything
