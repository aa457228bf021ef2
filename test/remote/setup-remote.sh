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
# shellcheck source=../apt.sh
. "$(dirname "$0")/../apt.sh"

PKGS=(openssh-server openssh-client gnutls-bin)
# Never the system's sshd on port 22: the tests start their own.
apt_ensure setup-remote ssh.service ssh.socket -- "${PKGS[@]}"

# sshd refuses to start without its privilege separation directory, which its init script or tmpfiles.d makes.
[ -d /run/sshd ] || $SUDO install -d -m 755 /run/sshd

for bin in /usr/sbin/sshd ssh ssh-keygen certtool virt-ssh-helper; do
  command -v "$bin" >/dev/null || { say "$bin not found after installing ${PKGS[*]}"; exit 1; }
done
