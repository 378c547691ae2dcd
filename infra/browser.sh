#!/usr/bin/env bash
# Installs the browser the inbox's test drives: Debian's chromium and chromium-driver, when
# either is missing. HERALD_CHROMIUM and HERALD_CHROMEDRIVER name other binaries (then
# nothing is installed).
set -euo pipefail

chromium="${HERALD_CHROMIUM:-/usr/bin/chromium}"
chromedriver="${HERALD_CHROMEDRIVER:-/usr/bin/chromedriver}"
say() { echo "browser: $*" >&2; }

present() { [[ -x "$chromium" && -x "$chromedriver" ]]; }

if present; then
    exit 0
fi
if [[ -n "${HERALD_CHROMIUM:-}${HERALD_CHROMEDRIVER:-}" ]]; then
    say "$chromium or $chromedriver is missing (HERALD_CHROMIUM / HERALD_CHROMEDRIVER)"
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "install Chromium and its chromedriver, then set HERALD_CHROMIUM and HERALD_CHROMEDRIVER"
    exit 1
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { say "apt-get needs root: run as root or install sudo"; exit 1; }
    sudo=(sudo)
fi

# Parallel callers wait for one install instead of racing for dpkg's lock.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/herald-browser.lock"
    flock 9
    present && exit 0
fi

started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
install() { "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
# A fresh machine's package lists may be missing or stale: read them again only then.
if ! install; then
    "${sudo[@]}" apt-get update -qq
    install
fi
say "installed chromium and chromium-driver in $((SECONDS - started))s"
