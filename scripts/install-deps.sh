#!/usr/bin/env bash
# Installs the Debian 12 packages gst-cnclip needs to build, test and run.
# Non-interactive and idempotent: packages already present are skipped.
set -euo pipefail

packages=(
  meson ninja-build pkg-config gcc
  libglib2.0-dev libjson-glib-dev libutf8proc-dev
  libopenblas-dev libdnnl-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
)
# Extra packages for the test suite (the encoded test videos, sanitizers, ...)
# are listed in scripts/test-packages.txt when a test needs them.
if [ -f "$(dirname "$0")/test-packages.txt" ] && [ "${CNCLIP_NO_TEST_PACKAGES:-}" = "" ]; then
  while read -r p; do
    case "$p" in ""|\#*) ;; *) packages+=("$p") ;; esac
  done < "$(dirname "$0")/test-packages.txt"
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
