#!/bin/sh
# bench.sh - the store benchmark at full size (`make bench`).
#
#   sh tests/bench.sh BUILD_DIR [extra `sprocket bench store` options]
#
# Runs BUILD_DIR/sprocket bench store in ./data/bench with the sizes the
# targets in PERF.md are stated for: 1 KiB messages, one async writer,
# 4 sync writers x 256 in flight (1024), a 1 GiB recovery tail. Extra
# arguments are passed on (later options win), e.g. --messages=4000000 or
# --writeWithoutMmap=true. The last line of output is the JSON summary.
# The data directory is removed afterwards, whatever the outcome.
set -u

if [ $# -lt 1 ]; then
    echo "usage: sh tests/bench.sh BUILD_DIR [options]" >&2
    exit 2
fi
build=$1
shift
bin=$build/sprocket
if [ ! -x "$bin" ]; then
    echo "bench.sh: $bin not found; build it first (make BUILD=$build)" >&2
    exit 2
fi

dir=./data/bench
cleanup() {
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" bench store --dir="$dir" --messages=2000000 --size=1024 \
    --async-threads=1 --sync-threads=4 --inflight=256 \
    --segment=1073741824 --recovery=1073741824 "$@"
