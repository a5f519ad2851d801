#!/bin/sh
# tsan.sh - the store's threads under ThreadSanitizer.
#
#   sh tests/tsan.sh TSAN_BUILD_DIR
#
# Criterion's runner does not start under TSan here, so the threads are
# exercised through real programs built with SAN=thread: the store
# benchmark at a small size (ASYNC and SYNC writers, the flush, dispatch,
# allocation and clean threads, reads, segment roll-overs, recovery), and
# the crash writer in both SYNC_FLUSH write modes followed by its verifier,
# and sprocketd (loop, scheduler and store threads) under produce and
# consume load in both flush modes, stopped with SIGTERM, with the client
# library's threads (sprocket produce and consume) against it.
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

# A free port pair: the kernel picks, we release and reuse (retried below).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + $$ % 20000))
}

# client_load NAMESRV_PORT: libsprocket's threads (connection readers,
# scheduler, callback pool, async sends, rebalance between two members,
# orderly locks, lite polls) through `sprocket produce` and `consume`.
client_load() {
    ns=127.0.0.1:$1
    seq 1 3000 | sed 's/^/tsan-/' >"$dir/lines"
    "$build/sprocket" produce -n "$ns" -t TsanLib --async <"$dir/lines" >/dev/null \
        2>"$dir/cl-produce.log"
    r1=$?
    "$build/sprocket" produce -n "$ns" -t TsanLib --batch 10 --tags T <"$dir/lines" >/dev/null \
        2>>"$dir/cl-produce.log"
    r2=$?
    "$build/sprocket" consume -n "$ns" -t TsanLib -g TsanG --from first --idle 4 --quiet \
        2>"$dir/cl-c1.log" &
    c1=$!
    sleep 1
    "$build/sprocket" consume -n "$ns" -t TsanLib -g TsanG --from first --idle 4 --quiet \
        2>"$dir/cl-c2.log"
    wait "$c1"
    "$build/sprocket" consume -n "$ns" -t TsanLib -g TsanO --from first --idle 3 --quiet \
        --orderly 2>"$dir/cl-o.log"
    "$build/sprocket" consume -n "$ns" -t TsanLib -g TsanL --from first --idle 3 --quiet \
        --lite 2>"$dir/cl-l.log"
    for f in cl-produce cl-c1 cl-c2 cl-o cl-l; do
        report "$dir/$f.log" "client ($f)"
    done
    got=$(cat "$dir/cl-c1.log" "$dir/cl-c2.log" | sed -n 's/^sprocket consume: \([0-9]*\) messages$/\1/p' |
        awk '{ s += $1 } END { print s + 0 }')
    o=$(sed -n 's/^sprocket consume: \([0-9]*\) messages$/\1/p' "$dir/cl-o.log")
    l=$(sed -n 's/^sprocket consume: \([0-9]*\) messages$/\1/p' "$dir/cl-l.log")
    if [ $r1 -ne 0 ] || [ $r2 -ne 0 ] || [ "$got" -lt 6000 ] || [ "${o:-0}" -ne 6000 ] ||
        [ "${l:-0}" -ne 6000 ]; then
        tail -n 3 "$dir"/cl-*.log
        echo "tsan: client load: produce $r1/$r2, group consumed $got, orderly ${o:-none}, lite ${l:-none} of 6000"
        return 1
    fi
    return 0
}

for flush in ASYNC_FLUSH SYNC_FLUSH; do
    bp=$(free_port)
    np=$(free_port)
    log=$dir/sprocketd-$flush.log
    "$build/sprocketd" standalone --storePathRootDir="$dir/sd-$flush" --listenPort="$bp" \
        --namesrvListenPort="$np" --flushDiskType="$flush" \
        --mappedFileSizeCommitLog=8388608 --registerNameServerPeriod=1000 >"$log" 2>&1 &
    pid=$!
    i=0
    while ! grep -q 'ready:' "$log" && kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    "$build/sprocket" bench produce --addr="127.0.0.1:$bp" --topic=TsanTopic --create-topic \
        --queues=4 --conns=4 --inflight=8 --size=512 --messages=20000 >"$dir/produce-$flush.log" 2>&1
    prc=$?
    "$build/sprocket" bench produce --addr="127.0.0.1:$bp" --topic=TsanTopic --queues=4 \
        --conns=2 --inflight=4 --size=512 --batch=8 --messages=4000 >>"$dir/produce-$flush.log" 2>&1
    "$build/sprocket" bench consume --addr="127.0.0.1:$bp" --topic=TsanTopic --queues=4 \
        --batch=32 >"$dir/consume-$flush.log" 2>&1
    crc=$?
    if [ "$flush" = ASYNC_FLUSH ]; then
        client_load "$np" || fail=1
    fi
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    src=$?
    report "$log" "sprocketd ($flush)"
    report "$dir/produce-$flush.log" "bench produce ($flush)"
    if [ $prc -ne 0 ] || [ $crc -ne 0 ] || [ $src -ne 0 ]; then
        tail -n 5 "$log" "$dir/produce-$flush.log" "$dir/consume-$flush.log"
        echo "tsan: sprocketd run ($flush): produce $prc, consume $crc, daemon exit $src"
        fail=1
    fi
done

if [ $fail -eq 0 ]; then
    echo "tsan: bench store, 2 crash-writer runs, sprocketd in both flush modes, client library: no ThreadSanitizer report"
    exit 0
fi
exit 1
