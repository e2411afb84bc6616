#!/usr/bin/env bash
# Debian's chromium, for the report test in headless Chromium (make test-all). Without root, sudo or a package
# mirror this fails with its reason, and that test skips saying why.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
echo "installing Debian's chromium (for the report test)"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
