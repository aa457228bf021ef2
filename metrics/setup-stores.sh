#!/usr/bin/env bash
# Installs the metrics servers the metrics/ tests start on loopback: Prometheus (+ promtool), VictoriaMetrics and
# InfluxDB 1.x, from Debian packages. Idempotent: safe to run again. Never starts their system services (the tests
# start their own, on a free port, with a temporary data directory). Needs root (or sudo).
#
# Env:
#   PREMISCALE_SKIP_APT=1   do not run apt-get (fail if a package is missing)
set -euo pipefail

say() { printf 'setup-stores: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { say "run as root, or install sudo"; exit 1; }
  SUDO="sudo"
fi

PKGS=(prometheus victoria-metrics influxdb)
missing=()
for p in "${PKGS[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${PREMISCALE_SKIP_APT:-0}" = 1 ]; then say "missing ${missing[*]} (PREMISCALE_SKIP_APT=1)"; exit 1; fi
  # Keep the packages' init scripts from starting the services: policy-rc.d exit 101 means "not allowed".
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
fi

# A system without policy-rc.d support (systemd without invoke-rc.d policy) may still have started them: stop them.
for svc in prometheus victoria-metrics influxdb; do
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done

for bin in prometheus promtool victoria-metrics influxd; do
  command -v "$bin" >/dev/null || { say "$bin not found after installing ${PKGS[*]}"; exit 1; }
done
say "metrics stores ready (prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}'), victoria-metrics, influxd $(influxd version 2>&1 | awk '{print $2}'))"
