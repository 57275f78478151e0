#!/usr/bin/env bash
# Install Debian's headless Chromium for the browser tests when it is missing.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the browser tests (apt-get)…"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || echo "warning: could not install chromium; browser tests will be skipped" >&2
else
  echo "warning: chromium not found and cannot install it (not root); browser tests will be skipped" >&2
fi
exit 0
