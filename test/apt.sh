# Sourced by the test set-up scripts (test/remote/setup-remote.sh, metrics/setup-stores.sh): one way of installing
# the Debian packages they need. Sets SUDO; `apt_ensure WHO SERVICE… -- PACKAGE…` installs the packages that are
# missing, keeps their init scripts from starting services while it does, and stops and disables SERVICEs that a
# systemd without policy-rc.d support started anyway (the tests start their own servers, on free ports).
# PREMISCALE_SKIP_APT=1: do not run apt-get (fail if a package is missing).

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { printf 'run as root, or install sudo\n' >&2; exit 1; }
  SUDO="sudo"
fi

apt_ensure() {
  local who=$1
  shift
  local services=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do services+=("$1"); shift; done
  shift
  local missing=() p status
  for p in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  if [ "${PREMISCALE_SKIP_APT:-0}" = 1 ]; then printf '%s: missing %s (PREMISCALE_SKIP_APT=1)\n' "$who" "${missing[*]}" >&2; exit 1; fi
  # policy-rc.d exit 101 means "not allowed": the packages' init scripts start nothing. An existing one (containers
  # ship one) is left alone.
  local policy=/usr/sbin/policy-rc.d made=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    made=1
    # Removed again even when apt-get fails and `set -e` ends the script.
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  printf '%s: installing %s\n' "$who" "${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$made" = 1 ]; then $SUDO rm -f "$policy"; trap - EXIT; fi
  if [ "${#services[@]}" -gt 0 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now "${services[@]}" >/dev/null 2>&1 || true
  fi
}
