#!/usr/bin/env bash
# The demo (README): on this machine's own libvirt, premiscale creates small real VMs, shows the plan, applies it,
# then a changed config scales the group down again. Sets up libvirt and the project first; safe to re-run.
#
#   bash examples/demo.sh            # run it
#   DEMO_DIR=/some/dir bash examples/demo.sh   # keep the demo's config and git state there (default: a temp dir)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Setting up libvirt and QEMU (Debian packages) and building premiscale"
bash providers/libvirt/setup-host.sh
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
premiscale() { node "$repo/dist/cli/main.js" "$@"; }

# The demo's VMs boot from an empty copy-on-write base image: real QEMU guests that start and run (with no OS
# to boot they sit in firmware), enough to watch premiscale create, track and remove them.
if ! virsh -q -c qemu:///system vol-info --pool default premiscale-blank.qcow2 >/dev/null 2>&1; then
  step "Creating the demo base image premiscale-blank.qcow2 in pool 'default'"
  virsh -q -c qemu:///system vol-create-as default premiscale-blank.qcow2 64M --format qcow2
fi

dir="${DEMO_DIR:-$(mktemp -d /tmp/premiscale-demo.XXXXXX)}"
mkdir -p "$dir"
# setup-host.sh proved (or disproved) KVM on this machine; use what works.
accel=$(sed -n 1p /var/lib/premiscale/accelerator 2>/dev/null || echo qemu)
sed -e 's/desired: 2/desired: 3/' -e "s/accelerator: qemu/accelerator: $accel/" examples/basic.yaml > "$dir/premiscale.yaml"
cd "$dir"
echo "Demo directory: $dir (config premiscale.yaml, state in ./premiscale-state, a git repository)"

step "premiscale validate"
premiscale validate

step "premiscale plan  (group web wants 3 VMs)"
premiscale plan --out scale-out.plan

step "premiscale apply scale-out.plan"
premiscale apply scale-out.plan

step "The VMs on this machine's libvirt"
virsh -c qemu:///system list --all

step "premiscale state list"
premiscale state list

step "premiscale plan  (nothing changed, so nothing to do)"
premiscale plan

step "Changing the config: desired 3 -> 1, then premiscale apply"
sed -i 's/desired: 3/desired: 1/' premiscale.yaml
# The blank guests have no OS to answer an ACPI shutdown, so give them 2 s before they are powered off.
premiscale apply --auto-approve --shutdown-timeout 2s

step "Scaling to zero so the demo leaves no VM behind"
sed -i 's/desired: 1/desired: 0/' premiscale.yaml
premiscale apply --auto-approve --shutdown-timeout 2s

step "The state history: one git commit per apply"
git -C premiscale-state log --format='%h %s'
echo
echo "Done. Try it yourself: cd $dir && node $repo/dist/cli/main.js plan"
