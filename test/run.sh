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
# dist/ once, for both lanes (test/global-setup.ts builds it when a project runs on its own).
npx tsc -p tsconfig.build.json
export PREMISCALE_TEST_PREBUILT=1
summary='
  const fs = require("fs"), path = require("path");
  const reports = process.argv.slice(1).filter((f) => fs.existsSync(f) && fs.statSync(f).size > 0).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  const sum = (k) => reports.reduce((n, r) => n + r[k], 0);
  const skipped = sum("numPendingTests") + sum("numTodoTests");
  // Where the time went: the ten slowest files (each file runs its tests one after another).
  const files = reports.flatMap((r) => r.testResults).map((f) => ({ name: path.relative(process.cwd(), f.name), s: (f.endTime - f.startTime) / 1000 })).sort((a, b) => b.s - a.s);
  console.log("slowest files: " + files.slice(0, 10).map((f) => `${f.name} ${f.s.toFixed(0)} s`).join(", "));
  if (reports.length > 1) {
    const wall = (r) => (Math.max(...r.testResults.map((f) => f.endTime)) - Math.min(...r.testResults.map((f) => f.startTime))) / 1000;
    console.log("lanes (first test to last): " + reports.map((r, i) => `${["VMs", "unit/fast/kubernetes"][i]} ${wall(r).toFixed(0)} s`).join(", "));
  }
  console.log(`tests: ${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed` + (skipped ? `, ${skipped} skipped` : ""));
'
if [ "$#" -gt 0 ]; then
  # Arguments (files, --project, -t …) go to one vitest run.
  report=$(mktemp /tmp/premiscale-vitest.XXXXXX.json)
  trap 'rm -f "$report"' EXIT
  status=0
  npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
  node -e "$summary" "$report" || true
  exit "$status"
fi

# The whole suite in two lanes at once, about one core each. The VM lane (libvirt, kubernetes-vms) runs one file at
# a time, since VMs share the host's vCPU budget; the other lane (unit, fast, kubernetes) never boots a VM. Its
# output is printed after the VM lane's (its log is named here, for a run that hangs).
vms_report=$(mktemp /tmp/premiscale-vitest-vms.XXXXXX.json)
other_report=$(mktemp /tmp/premiscale-vitest-other.XXXXXX.json)
other_log=$(mktemp /tmp/premiscale-vitest-other.XXXXXX.log)
other_pid=
# setsid: its own process group, so an interrupted run stops the whole lane (vitest and its workers).
trap '[ -n "$other_pid" ] && kill -- "-$other_pid" 2>/dev/null; rm -f "$vms_report" "$other_report" "$other_log"' EXIT
echo "test lanes: VMs (libvirt, kubernetes-vms) here; unit, fast and kubernetes beside it, logged to $other_log"
PREMISCALE_TEST_LANE=other setsid npx vitest run --project unit --project fast --project kubernetes \
  --reporter=default --reporter=json --outputFile.json="$other_report" > "$other_log" 2>&1 &
other_pid=$!
vms_status=0
PREMISCALE_TEST_LANE=vms npx vitest run --project libvirt --project kubernetes-vms \
  --reporter=default --reporter=json --outputFile.json="$vms_report" || vms_status=$?
other_status=0
wait "$other_pid" || other_status=$?
other_pid=
echo "--- unit, fast, kubernetes (exit $other_status) ---"
cat "$other_log"
# One plain closing line, the same for every runner: "N passed, N failed".
node -e "$summary" "$vms_report" "$other_report" || true
[ "$vms_status" -eq 0 ] && [ "$other_status" -eq 0 ]
