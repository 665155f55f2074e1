#!/bin/sh
# Install Debian's headless-capable Chromium, which the report render test drives (`--headless --screenshot`).
# Needs root (or sudo) and the Debian apt mirrors; CI runs it once before the slow tests.
set -eu
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
