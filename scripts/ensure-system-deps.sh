#!/usr/bin/env bash
# System packages the test suite needs: Debian's Chromium (browser tests) and fonts for rendering.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing system packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt (a second checkout installing at the same time, unattended upgrades) holds dpkg's lock: wait
# for it rather than fail.
wait_lock=(-o DPkg::Lock::Timeout=900)
$SUDO apt-get "${wait_lock[@]}" update -qq
$SUDO apt-get "${wait_lock[@]}" install -y -qq "${need[@]}" >/dev/null
