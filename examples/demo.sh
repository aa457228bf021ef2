#!/usr/bin/env bash
# The demo (README): on this machine's own libvirt, premiscale creates tiny real VMs, waits for each to boot and
# check in, shows them, then a changed config scales the group down and to zero. Sets up libvirt, the project and
# the guest first (all from Debian packages and npm); safe to re-run. Takes about a minute once set up.
#
#   bash examples/demo.sh                      # run it
#   DEMO_DIR=/some/dir bash examples/demo.sh   # keep the demo's config and git state there (default: a temp dir)
#   DEMO_PORT=8975 bash examples/demo.sh       # where apply serves check-ins (default: 8970, or the next free port)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Setting up libvirt and QEMU (Debian packages) and building premiscale"
bash providers/libvirt/setup-host.sh
# npm ci replaces node_modules: only when it is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  bash test/npm-ci.sh
fi
npm run --silent build
premiscale() { node "$repo/dist/cli/main.js" "$@"; }

# The guest: Debian's cloud kernel and a busybox initramfs that reads the cloud-init seed premiscale makes and
# phones home like cloud-init's phone_home, ~4 s after start even under plain QEMU. Built from Debian packages into
# /var/cache/premiscale/guests (cached), plus the empty base image premiscale-blank.qcow2 in pool 'default'.
step "Building (or reusing) the busybox guest: test/guests/install-guest.sh busybox"
eval "$(bash test/guests/install-guest.sh busybox)"
echo "Guest: $GUEST_KERNEL + $GUEST_INITRD (the config names them through the symlink /var/cache/premiscale/guests/busybox)"

dir="${DEMO_DIR:-$(mktemp -d /tmp/premiscale-demo.XXXXXX)}"
mkdir -p "$dir"
# setup-host.sh proved (or disproved) KVM on this machine; use what works.
accel=$(sed -n 1p /var/lib/premiscale/accelerator 2>/dev/null || echo qemu)
# The check-in port: apply listens there on 127.0.0.1 while it runs (guests reach it as 10.0.2.2).
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${DEMO_PORT:-8970}
if [ -z "${DEMO_PORT:-}" ]; then
  while listening "$port" && [ "$port" -lt 8999 ]; do port=$((port + 1)); done
fi
sed -e "s/accelerator: qemu /accelerator: $accel /" -e "s/127.0.0.1:8970/127.0.0.1:$port/" examples/busybox.yaml >"$dir/premiscale.yaml"
cd "$dir"
echo "Demo directory: $dir (config premiscale.yaml, state in ./premiscale-state, a git repository)"

step "premiscale validate --check-hosts"
premiscale validate --check-hosts

step "premiscale plan  (group tiny wants 3 VMs)"
premiscale plan --out scale-out.plan

step "premiscale apply scale-out.plan  (creates them, then waits until each has booted and checked in)"
premiscale apply scale-out.plan

step "The VMs on this machine's libvirt"
virsh -c qemu:///system list --all

step "premiscale state list"
premiscale state list

step "Their check-ins (premiscale-state/.premiscale/check-ins/, not in git)"
node -e '
const fs = require("fs"), path = require("path");
const d = "premiscale-state/.premiscale/check-ins";
for (const f of fs.readdirSync(d)) {
  const c = JSON.parse(fs.readFileSync(path.join(d, f), "utf8"));
  console.log(`  ${c.hostname}  ${c.instanceId}  checked in ${c.receivedAt}  (${c.userAgent})`);
}'

step "premiscale plan  (nothing changed, so nothing to do)"
premiscale plan

step "Changing the config: desired 3 -> 1, then premiscale apply  (ACPI shutdown: the guest powers itself off)"
sed -i 's/desired: 3/desired: 1/' premiscale.yaml
premiscale apply --auto-approve --shutdown-timeout 20s

step "Scaling to zero so the demo leaves no VM behind"
sed -i 's/desired: 1/desired: 0/' premiscale.yaml
premiscale apply --auto-approve --shutdown-timeout 20s

step "The state history: one git commit per apply"
git -C premiscale-state log --format='%h %s'
echo
echo "Done. Try it yourself: cd $dir && node $repo/dist/cli/main.js plan"
