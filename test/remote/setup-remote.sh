#!/usr/bin/env bash
# Installs what the remote-host tests (test/remote.libvirt.test.ts) need: Debian's OpenSSH server (the tests start
# their own sshd on 127.0.0.1 with a throwaway config and keys; the system's ssh service is never started or
# enabled), the OpenSSH client libvirt runs for qemu+ssh://, and GnuTLS's certtool for throwaway TLS certificates.
# The remote side of qemu+ssh:// is libvirt's own virt-ssh-helper (in libvirt-daemon). Idempotent; quiet when
# nothing is missing. Needs root (or sudo).
#
# Env:
#   PREMISCALE_SKIP_APT=1   do not run apt-get (fail if a package is missing)
set -euo pipefail

say() { printf 'setup-remote: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { say "run as root, or install sudo"; exit 1; }
  SUDO="sudo"
fi

PKGS=(openssh-server openssh-client gnutls-bin)
missing=()
for p in "${PKGS[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${PREMISCALE_SKIP_APT:-0}" = 1 ]; then say "missing ${missing[*]} (PREMISCALE_SKIP_APT=1)"; exit 1; fi
  # Keep openssh-server's init script from starting sshd on port 22: policy-rc.d exit 101 means "not allowed".
  # An existing policy-rc.d (containers ship one) is left alone.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Where systemd ignored policy-rc.d, the package enabled and started the system's sshd: undo that.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  fi
fi

# sshd refuses to start without its privilege separation directory, which its init script or tmpfiles.d makes.
[ -d /run/sshd ] || $SUDO install -d -m 755 /run/sshd

for bin in /usr/sbin/sshd ssh ssh-keygen certtool virt-ssh-helper; do
  command -v "$bin" >/dev/null || { say "$bin not found after installing ${PKGS[*]}"; exit 1; }
done
