#!/bin/sh
# bootstrap_bench.sh - install the peer that `make bench` compares the
# broker against (PERF.md section 3): redis-server and redis-benchmark
# (Debian packages redis-server and redis-tools), through bootstrap.sh.
#
# Only tests/bench.sh calls it, because the peer is needed only to
# benchmark, never to build or test. Exit status 0 when both commands are
# available afterwards, 1 otherwise; the caller then skips the comparison
# instead of failing. (The Debian package starts a system redis on 6379;
# the benchmark runs its own servers on free ports and leaves it alone.)
set -u

BOOTSTRAP_EXTRA="redis-server redis-tools" BOOTSTRAP_NODE=0 \
    sh "$(dirname "$0")/bootstrap.sh" >/dev/null 2>&1 || exit 1
command -v redis-server >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1
