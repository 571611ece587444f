#!/bin/bash
# Headless Chromium and its driver for the report tests
# (tests/test_report_browser.py): the page gage report writes is opened
# in a real browser. Idempotent, quiet; exits 0 when it cannot install
# (the browser tests then skip and say why).
command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0
[ "$(id -u)" = 0 ] || exit 0
command -v apt-get >/dev/null || exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
  || { apt-get update -qq >/dev/null 2>&1 \
       && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; }
exit 0
