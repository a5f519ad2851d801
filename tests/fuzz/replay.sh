#!/bin/sh
# replay.sh - replays every committed fuzz corpus through its target
# (BUILD_DIR/tests/replay_<target>, built with the sanitizers).
set -u
build=${1:?usage: sh tests/fuzz/replay.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
fail=0
n=0
for dir in "$here"/corpus/*/; do
    t=$(basename "$dir")
    bin=$build/tests/replay_$t
    if [ ! -x "$bin" ]; then
        echo "replay: $bin is missing"
        fail=1
        continue
    fi
    "$bin" "$dir" || { echo "replay: $t FAILED"; fail=1; }
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "replay: no corpus"; exit 1; }
exit $fail
