#!/usr/bin/env bash
# Debian's Chromium for the HTML report's browser test (tests/test_html_report.py drives it with Playwright, which
# never downloads a browser of its own). Installs it where this machine can (root, apt-get); elsewhere it says why
# and succeeds, and the test skips with that reason (CI sets SNNLIB_REQUIRE_BROWSER=1: there, a skip is a failure).
set -uo pipefail
CHROMIUM=${SNNLIB_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "note: $CHROMIUM is missing and cannot be installed here (needs root and apt-get): the report's browser" \
        "test will be skipped; install Debian's chromium package to run it" >&2
    exit 0
fi
install() {
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends chromium >/dev/null
}
echo "installing Debian's chromium (for the report's browser test)" >&2
# the package lists may be missing on a fresh machine: update only when the plain install fails
install || { timeout 300 apt-get update -qq && install; } \
    || echo "note: apt-get could not install chromium: the report's browser test will be skipped" >&2
exit 0
