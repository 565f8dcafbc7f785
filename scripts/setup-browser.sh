#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver for the browser tests (tests/test_review_browser.py).
# A no-op when both are present. Needs root (or password-less sudo) otherwise; when it cannot install
# them it says so and the browser tests are skipped with that reason (the rest of the suite still runs).
set -uo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "setup-browser: chromium/chromedriver missing and not root: browser tests will be skipped" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; then
  echo "setup-browser: apt-get could not install chromium chromium-driver: browser tests will be skipped" >&2
fi
exit 0
