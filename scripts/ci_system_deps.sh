#!/usr/bin/env bash
# System packages the test suite uses beyond the Python venv.
#
# Today: Debian's chromium, which tests/test_report.py drives headless to check
# that the HTML search report really renders (the test skips itself when
# /usr/bin/chromium is absent). Installs only what is missing, and only as root
# on a Debian/Ubuntu system; otherwise it says what to install and exits 0, so a
# developer machine without root is never blocked.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  echo "ci_system_deps: nothing to install"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ci_system_deps: not root or no apt-get; skipping install of: ${missing[*]}" >&2
  echo "ci_system_deps: tests needing them will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# fonts-liberation: legible text in the report screenshot (a recommends we keep).
# A failed install must not fail CI by itself: the tests that need Chromium skip and say so.
if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}" fonts-liberation; }; then
  echo "ci_system_deps: install of ${missing[*]} failed; tests needing them will be skipped" >&2
fi
