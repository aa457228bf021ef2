#!/usr/bin/env bash
# Installs the metrics servers the metrics/ tests start on loopback: Prometheus (+ promtool), VictoriaMetrics and
# InfluxDB 1.x, from Debian packages. Idempotent: safe to run again. Never starts their system services (the tests
# start their own, on a free port, with a temporary data directory). Needs root (or sudo).
#
# Env:
#   PREMISCALE_SKIP_APT=1   do not run apt-get (fail if a package is missing)
set -euo pipefail

say() { printf 'setup-stores: %s\n' "$*" >&2; }
# shellcheck source=../test/apt.sh
. "$(dirname "$0")/../test/apt.sh"

PKGS=(prometheus victoria-metrics influxdb)
apt_ensure setup-stores prometheus victoria-metrics influxdb -- "${PKGS[@]}"

for bin in prometheus promtool victoria-metrics influxd; do
  command -v "$bin" >/dev/null || { say "$bin not found after installing ${PKGS[*]}"; exit 1; }
done
say "metrics stores ready (prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}'), victoria-metrics, influxd $(influxd version 2>&1 | awk '{print $2}'))"
