#!/usr/bin/env bash
# Installs libvirt + QEMU from Debian packages and starts virtlogd and libvirtd when they are not running.
# Idempotent: safe to run again. Works without systemd (containers, CI). Needs root (or sudo).
#
# Env:
#   PREMISCALE_SKIP_APT=1   do not run apt-get (packages already installed)
set -euo pipefail

say() { printf 'setup-host: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { say "run as root, or install sudo"; exit 1; }
  SUDO="sudo"
fi

PKGS=(libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils genisoimage)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] && [ "${PREMISCALE_SKIP_APT:-0}" != 1 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Directories and user that the packaging normally creates through systemd-tmpfiles.
$SUDO mkdir -p /var/run/libvirt /var/log/libvirt/qemu /var/lib/libvirt/images
getent group kvm >/dev/null || $SUDO groupadd -r kvm
getent passwd libvirt-qemu >/dev/null || $SUDO useradd -r -g kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

# Without udev, /dev/kvm stays root-only and libvirt re-probes QEMU on nearly every call (start: ~10 s instead of 0.5 s).
if [ -e /dev/kvm ]; then
  $SUDO chgrp kvm /dev/kvm || true
  $SUDO chmod 660 /dev/kvm || true
fi

if ! pgrep -x virtlogd >/dev/null; then say "starting virtlogd"; $SUDO virtlogd -d; fi
if ! pgrep -x libvirtd >/dev/null; then say "starting libvirtd"; $SUDO libvirtd -d; fi

for _ in $(seq 1 50); do
  if virsh -q -c qemu:///system uri >/dev/null 2>&1; then break; fi
  sleep 0.2
done
virsh -q -c qemu:///system uri >/dev/null || { say "libvirtd did not answer on qemu:///system"; exit 1; }

# The default directory pool, which the examples use.
if ! virsh -q -c qemu:///system pool-info default >/dev/null 2>&1; then
  say "defining storage pool 'default' at /var/lib/libvirt/images"
  virsh -q -c qemu:///system pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
fi
virsh -q -c qemu:///system pool-info default | grep -q 'State:.*running' || virsh -q -c qemu:///system pool-start default >/dev/null
virsh -q -c qemu:///system pool-autostart default >/dev/null 2>&1 || true
say "libvirt ready ($(virsh -q -c qemu:///system version --daemon 2>/dev/null | tail -1 | sed 's/.*: //'))"
