#!/usr/bin/env bash
# Install Debian's chromium for the browser tests (tests/ui), if missing. Playwright's Python
# package (a test extra) drives it through its executable_path; nothing downloads a browser build
# of its own (never `playwright install`). Idempotent; fast when already installed. Without root
# or apt it says so and returns 0: the browser tests then skip with that reason.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "install-chromium: no apt-get or not root; the browser tests (tests/ui) will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq chromium >/dev/null; then
  /usr/bin/chromium --version
else
  echo "install-chromium: apt-get could not install chromium; the browser tests (tests/ui) will be skipped" >&2
fi
