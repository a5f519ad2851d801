#!/bin/sh
# bootstrap_node.sh - install what the integration tests' node clients
# need: nodejs and npm from Debian (only when `node` is missing), then the
# npm packages of tests/clients (ali-ons, pinned by package-lock.json).
#
# Idempotent and quick when everything is present: npm runs only when
# node_modules is missing or older than package.json/package-lock.json.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
clients=$root/tests/clients

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap_node: installing nodejs and npm"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "bootstrap_node: need root (or sudo) to install nodejs and npm" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q || true
    $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi

# node_modules/.package-lock.json is written by every npm install/ci, so
# it is newer than the manifests exactly when the install is current.
stamp=$clients/node_modules/.package-lock.json
stale=0
if [ ! -d "$clients/node_modules/ali-ons" ] || [ ! -f "$stamp" ]; then
    stale=1
else
    for f in "$clients/package.json" "$clients/package-lock.json"; do
        if [ -f "$f" ] && [ -n "$(find "$f" -newer "$stamp")" ]; then
            stale=1
        fi
    done
fi

if [ "$stale" -eq 1 ]; then
    echo "bootstrap_node: npm packages in tests/clients"
    cd "$clients"
    if [ -f package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    else
        npm install --no-audit --no-fund --loglevel=error
    fi
fi
