#!/usr/bin/env bash
# Debian packages the integration tests start for real: PostgreSQL (Dagster storage),
# qbittorrent-nox (two real clients transferring a torrent on loopback) and Chromium (the web UI test, driven by Playwright with executable_path=/usr/bin/chromium;
# `playwright install` cannot download browsers on a closed network).
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/qbittorrent-nox ] || need+=(qbittorrent-nox)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then
  echo "System packages present: chromium, qbittorrent-nox, postgresql"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages: ${need[*]}. Install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${need[*]} (a few minutes the first time)"
export DEBIAN_FRONTEND=noninteractive
echo "  apt-get update..."
apt-get update -qq
echo "  apt-get install ${need[*]}..."
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "Installed ${need[*]}"
