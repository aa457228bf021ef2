#!/usr/bin/env bash
# Installs the npm dependencies exactly as package-lock.json says (test/run.sh, examples/demo.sh). Extra arguments
# go to `npm ci`.
#
# Install scripts are explicit: package.json's `allowScripts` names the two dependencies whose scripts must run
# (better-sqlite3 builds its addon, esbuild checks its binary) and denies the one that need not (protobufjs only
# warns about version schemes), so npm does not warn about them today and still runs the two once it blocks
# unreviewed install scripts by default.
#
# better-sqlite3 is compiled from source (its prebuilt binaries are GitHub downloads), so node-gyp needs Node's
# headers. When the Node that runs here has them beside it (Debian's nodejs: /usr/include/node), node-gyp is pointed
# there through its own variable instead of downloading them: `nodedir` is not an npm setting (in .npmrc or as
# npm_config_nodedir npm 11 warns about it, and npm 12 refuses unknown settings).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(node -p 'require("node:path").resolve(process.execPath, "..", "..")')
if [ -z "${npm_package_config_node_gyp_nodedir:-}" ] && [ -f "$prefix/include/node/node.h" ]; then
  export npm_package_config_node_gyp_nodedir="$prefix"
fi
npm ci --no-audit --no-fund "$@"
