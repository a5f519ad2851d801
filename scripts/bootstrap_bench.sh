#!/bin/sh
# bootstrap_bench.sh - install the peer that `make bench` compares the
# broker against (PERF.md section 3): redis-server and redis-benchmark
# (Debian packages redis-server and redis-tools).
#
# Only tests/bench.sh calls it, because the peer is needed only to
# benchmark, never to build or test. Idempotent and quiet when both are
# present. Exit status 0 when both commands are available afterwards,
# 1 otherwise; the caller then skips the comparison instead of failing.
set -u

PKGS="redis-server redis-tools"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "bootstrap_bench: installing:$missing"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "bootstrap_bench: need root (or sudo) to install:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    if ! $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null; then
        echo "bootstrap_bench: apt-get install$missing failed" >&2
        exit 1
    fi
fi

# The Debian package starts a system redis on 6379; the benchmark runs its
# own servers on free ports and does not need it, but leaves it alone.
command -v redis-server >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1
