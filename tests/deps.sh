#!/usr/bin/env bash
# Installs what avatarq's build, tests and demo need on Debian 12, and only
# what is missing: the -dev libraries (through apt-get, as root), the servers
# the tests start for themselves (Redis, PostgreSQL), and the npm S3 test
# server. Safe to run again: it does nothing when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential pkg-config clang libclang-rt-14-dev
      libhiredis-dev libjansson-dev libinih-dev libpq-dev libsqlite3-dev
      libcurl4-openssl-dev libssl-dev libpng-dev libsystemd-dev check
      redis-server redis-tools redis-sentinel postgresql sqlite3 nodejs npm systemd strace openssl
      libmicrohttpd-dev chromium prometheus nginx-light fonts-dejavu-core
      libwebp-dev librsvg2-dev libharfbuzz-dev libfreetype-dev fonts-noto-core fonts-noto-cjk
      webp librsvg2-bin bc time python3 libdeflate-dev libxml2-utils)

missing=()
for p in "${PKGS[@]}"; do
    # nodejs/npm may come from elsewhere (a preinstalled node); accept the commands.
    case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
        echo "deps: missing packages and not root; run: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The S3 test server (signature-checking), pinned by tests/s3/package.json.
if [ -f tests/s3/package.json ] && [ ! -d tests/s3/node_modules/@20minutes/s3rver ]; then
    echo "deps: installing the S3 test server (npm)"
    (cd tests/s3 && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
# The emoji style's artwork (Twemoji SVGs), pinned by data/emoji/package-lock.json.
if [ -f data/emoji/package.json ] && [ ! -d data/emoji/node_modules/@twemoji/svg ]; then
    echo "deps: installing the emoji artwork (npm @twemoji/svg)"
    (cd data/emoji && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
exit 0
