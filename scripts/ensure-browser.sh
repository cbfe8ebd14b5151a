#!/usr/bin/env bash
# The browser test drives Debian's headless Chromium through ChromeDriver: install both when missing.
set -euo pipefail
. "$(dirname "$0")/ensure-package.sh"

if have chromium chromedriver; then
  exit 0
fi
apt_install ensure-browser "Install Chromium and its ChromeDriver (Debian: chromium chromium-driver)." \
  --with-recommends chromium chromium-driver
have chromium chromedriver
