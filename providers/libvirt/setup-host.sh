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
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
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
# Capture first: `virsh … | grep -q` fails under pipefail when grep exits before virsh has written everything.
pool_info=$(virsh -q -c qemu:///system pool-info default)
case "$pool_info" in
  *State:*running*) ;;
  *) virsh -q -c qemu:///system pool-start default >/dev/null ;;
esac
virsh -q -c qemu:///system pool-autostart default >/dev/null 2>&1 || true
# KVM only where it is proven: /dev/kvm can exist and still fail stock kernels (nested set-ups that run only special
# guest kernels). Boot Debian's cloud kernel with no root file system under KVM: reaching the "VFS: Unable to mount
# root fs" panic proves the kernel ran. The verdict is cached per host kernel in $STATE_DIR/accelerator.
STATE_DIR=/var/lib/premiscale
CACHE_DIR=/var/cache/premiscale/kernel
$SUDO mkdir -p "$STATE_DIR" "$CACHE_DIR"
probe_key="$(uname -r) $( [ -e /dev/kvm ] && echo kvm-dev || echo no-kvm-dev )"
if [ "$(sed -n 2p "$STATE_DIR/accelerator" 2>/dev/null)" != "$probe_key" ]; then
  verdict=qemu
  why="no /dev/kvm"
  boot_log=""
  if [ -e /dev/kvm ]; then
    kernel=$(ls "$CACHE_DIR"/boot/vmlinuz-* 2>/dev/null | head -1 || true)
    if [ -z "$kernel" ]; then
      pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image/ {print $2; exit}')
      if [ -z "$pkg" ] && [ "${PREMISCALE_SKIP_APT:-0}" != 1 ]; then
        $SUDO apt-get update -qq
        pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image/ {print $2; exit}')
      fi
      if [ -n "$pkg" ] && (cd "$CACHE_DIR" && $SUDO apt-get download -qq "$pkg" 2>/dev/null); then
        deb=$(ls "$CACHE_DIR"/"$pkg"_*.deb | head -1)
        (cd "$CACHE_DIR" && dpkg-deb --fsys-tarfile "$deb" | $SUDO tar -x ./boot/) && $SUDO rm -f "$deb"
        kernel=$(ls "$CACHE_DIR"/boot/vmlinuz-* 2>/dev/null | head -1 || true)
      fi
    fi
    if [ -z "$kernel" ]; then
      why="/dev/kvm exists, but no test kernel could be had to prove it works"
    else
      boot_log=$(timeout 30 qemu-system-x86_64 -accel kvm -machine pc -m 256 -nographic -no-reboot -nodefaults \
        -monitor none -serial stdio -kernel "$kernel" -append "console=ttyS0 panic=-1 loglevel=3" 2>&1 || true)
    fi
    if [ -n "$kernel" ] && [[ "$boot_log" == *"Unable to mount root fs"* ]]; then
      verdict=kvm
      why="a stock Debian kernel booted under KVM"
    elif [ -n "$kernel" ]; then
      why="/dev/kvm exists, but a stock Debian kernel does not boot under it"
    fi
  fi
  printf '%s\n%s\n%s\n' "$verdict" "$probe_key" "$why" | $SUDO tee "$STATE_DIR/accelerator" >/dev/null
fi
verdict=$(sed -n 1p "$STATE_DIR/accelerator")
why=$(sed -n 3p "$STATE_DIR/accelerator")
if [ "$verdict" = kvm ]; then
  say "accelerator: kvm ($why)"
else
  say "accelerator: qemu: guests run under plain QEMU (TCG), which is much slower ($why); use accelerator: qemu for this host"
fi
say "libvirt ready ($(virsh -q -c qemu:///system version --daemon 2>/dev/null | tail -1 | sed 's/.*: //'))"
