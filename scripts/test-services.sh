#!/usr/bin/env bash
# Install and start what the test suite talks to, when it is missing or down:
#   PostgreSQL on 127.0.0.1:5432 (trust auth, a `test` database), Debian's Chromium for the
#   browser tests of the web UI (/usr/bin/chromium, driven by Playwright: no browser download).
# Safe to run again: each step does nothing when its service is already there.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q chromium >/dev/null 2>&1 || {
        as_root apt-get update -q >/dev/null && as_root apt-get install -y -q chromium >/dev/null
    }
fi
