#!/usr/bin/env bash
# Installs tmux for cli/tui/apply.tmux.test.ts (the apply view checked in a real terminal). Debian; root or sudo.
set -euo pipefail
command -v tmux >/dev/null && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq tmux >/dev/null
