#!/usr/bin/env bash
# Runs every benchmark; each prints its figures as ratios against a baseline measured in the same run.
# Needs libvirt (providers/libvirt/setup-host.sh) and `npm ci`. BENCH_NO_SYSTEM=1 skips qemu:///system.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/*.bench.ts; do
  echo
  echo "=== $b"
  npx tsx "$b"
done
