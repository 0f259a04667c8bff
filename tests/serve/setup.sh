#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install the npm `piston-client` package into tests/serve/node_modules
# (project-local, nothing global), for test_serve.sh: a real Piston client,
# used unchanged against `toolruntime serve`.
set -eu
cd "$(dirname "$0")"
[ -d node_modules/piston-client ] && { echo "already installed"; exit 0; }
[ -f package.json ] || printf '{ "private": true, "name": "toolruntime-serve-tests" }\n' > package.json
npm install --no-audit --no-fund --loglevel=error piston-client
