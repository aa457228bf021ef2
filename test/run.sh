#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need, then lint, typecheck and the whole suite,
# including the tests against this machine's real libvirtd. Run from anywhere; needs root or sudo for set-up.
set -euo pipefail
cd "$(dirname "$0")/.."

bash providers/libvirt/setup-host.sh
npm ci --no-audit --no-fund --loglevel=error
npm run --silent lint
npm run --silent typecheck
npx vitest run "$@"
