#!/bin/sh
# bootstrap.sh - install what the build and the tests need on Debian 12.
#
# Idempotent and quiet when everything is present: it asks dpkg for each
# package and calls apt-get only for the missing ones, so `make` pays
# a few milliseconds when nothing is missing. Then the node clients of the
# integration tests (bootstrap_node.sh: nodejs, npm, ali-ons).
set -eu

# BOOTSTRAP_EXTRA adds packages (make bench: the Redis peer); BOOTSTRAP_NODE=0
# skips the node clients.
PKGS="gcc make libc6-dev zlib1g-dev libdeflate-dev libcjson-dev libcriterion-dev pkg-config ${BOOTSTRAP_EXTRA:-}"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "bootstrap: installing:$missing"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "bootstrap: need root (or sudo) to install:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q || true
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $missing
fi

if [ "${BOOTSTRAP_NODE:-1}" = 1 ]; then
    sh "$(dirname "$0")/bootstrap_node.sh"
fi
