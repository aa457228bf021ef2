#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need, then lint, typecheck and the whole suite,
# including the tests against this machine's real libvirtd. Run from anywhere; needs root or sudo for set-up.
set -euo pipefail
cd "$(dirname "$0")/.."

bash providers/libvirt/setup-host.sh
bash metrics/setup-stores.sh   # Prometheus, VictoriaMetrics, InfluxDB 1.x: started by the tests on 127.0.0.1
bash cli/tui/setup-tmux.sh     # the TUI's real-terminal test
bash test/remote/setup-remote.sh  # openssh-server, certtool: remote-host tests start their own sshd and TLS libvirtd
bash test/kubernetes/build-components.sh   # etcd, kube-apiserver, -controller-manager, -scheduler, KWOK: built once, cached by recipe
bash test/kubernetes/build-helm.sh         # Helm, for the chart's lint and render tests: built once, cached by recipe
bash test/npm-ci.sh
npm run --silent lint
npm run --silent typecheck
report=$(mktemp /tmp/premiscale-vitest.XXXXXX.json)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line, the same for every runner: "N passed, N failed".
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  // Where the time went: the ten slowest files (each file runs its tests one after another).
  const files = r.testResults.map((f) => ({ name: require("path").relative(process.cwd(), f.name), s: (f.endTime - f.startTime) / 1000 })).sort((a, b) => b.s - a.s);
  console.log("slowest files: " + files.slice(0, 10).map((f) => `${f.name} ${f.s.toFixed(0)} s`).join(", "));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" || true
exit "$status"
