#!/bin/sh
# tsan.sh - the store's threads under ThreadSanitizer.
#
#   sh tests/tsan.sh TSAN_BUILD_DIR
#
# Criterion's runner does not start under TSan here, so the threads are
# exercised through real programs built with SAN=thread: the store
# benchmark at a small size (ASYNC and SYNC writers, the flush, dispatch,
# allocation and clean threads, reads, segment roll-overs, recovery), and
# the crash writer in both SYNC_FLUSH write modes followed by its verifier.
# Any ThreadSanitizer report fails the suite.
set -u

build=${1:?usage: sh tests/tsan.sh TSAN_BUILD_DIR}
dir=$(mktemp -d "${TMPDIR:-/tmp}/spk-tsan-XXXXXX") || exit 2
trap 'rm -rf "$dir"' EXIT
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
fail=0

report() {
    if grep -q "WARNING: ThreadSanitizer" "$1"; then
        echo "tsan: ThreadSanitizer report in $2:"
        sed -n '/WARNING: ThreadSanitizer/,/^SUMMARY/p' "$1" | head -60
        fail=1
    fi
}

"$build/sprocket" bench store --dir="$dir/bench" --messages=60000 --segment=16777216 \
    --recovery=33554432 --inflight=64 >"$dir/bench.log" 2>&1
rc=$?
report "$dir/bench.log" "bench store"
if [ $rc -ne 0 ]; then
    tail -n 5 "$dir/bench.log"
    echo "tsan: bench store exited $rc"
    fail=1
fi

for mode in false true; do
    store=$dir/crash-$mode
    CRASH_WRITE_MODE=$mode "$build/tests/crashwriter" write "$store" 1 >"$dir/acks-$mode" \
        2>"$dir/writer-$mode.log" &
    pid=$!
    sleep 2
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    report "$dir/writer-$mode.log" "crash writer (writeWithoutMmap=$mode)"
    if ! "$build/tests/crashwriter" verify "$store" "$dir/acks-$mode" close \
        >"$dir/verify-$mode.log" 2>&1; then
        tail -n 5 "$dir/verify-$mode.log"
        echo "tsan: verification failed (writeWithoutMmap=$mode)"
        fail=1
    fi
    report "$dir/verify-$mode.log" "verifier (writeWithoutMmap=$mode)"
done

if [ $fail -eq 0 ]; then
    echo "tsan: bench store and 2 crash-writer runs: no ThreadSanitizer report"
    exit 0
fi
exit 1
