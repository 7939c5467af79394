#!/bin/sh
# A Chromium for the browser tests: Debian's where apt-get works, else Playwright's own download.
set -e
if [ -x /usr/bin/chromium ] || [ -x /usr/bin/chromium-browser ]; then
    echo "browser tests will use $(/usr/bin/chromium --version 2>/dev/null || /usr/bin/chromium-browser --version)"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    echo "installed $(/usr/bin/chromium --version)"
else
    python -m playwright install chromium
fi
