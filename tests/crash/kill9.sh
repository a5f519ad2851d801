#!/bin/sh
# kill9.sh - store-level kill -9 cycles (RELIABILITY.md T1).
#
#   sh tests/crash/kill9.sh BUILD_DIR        (CYCLES=25 by default)
#
# Each cycle starts `crashwriter write` on the same store directory (it
# recovers whatever the previous cycle left, then appends with synced
# puts and logs every acked message), SIGKILLs it after a random 50-500 ms,
# and runs `crashwriter verify`, which recovers the store and checks that
# every acked message is present exactly once, intact, where its ack said,
# and that no queue has a hole. The first violation stops the run.
set -u

build=${1:-build/san}
bin=$build/tests/crashwriter
cycles=${CYCLES:-25}

if [ ! -x "$bin" ]; then
    echo "kill9: $bin not found (build it with make test-bins)" >&2
    exit 2
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/spk-kill9-XXXXXX") || exit 2
keep=0
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ "$keep" -eq 0 ]; then
        rm -rf "$dir"
    else
        echo "kill9: store kept for inspection in $dir" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

store=$dir/store
acks=$dir/acks
: >"$acks"

# A sanitizer report in a writer's stderr fails the run even though the
# writer itself died by SIGKILL.
sanitizer_report() {
    grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1" >/dev/null 2>&1
}

fail() {
    echo "kill9: FAIL at cycle $i/$cycles: $1"
    keep=1
    exit 1
}

i=1
while [ "$i" -le "$cycles" ]; do
    # Odd cycles write through the mapping (msync), even ones with pwrite
    # (fdatasync): both SYNC_FLUSH write paths die mid-stream.
    wmode=false
    [ $((i % 2)) -eq 0 ] && wmode=true
    CRASH_WRITE_MODE=$wmode "$bin" write "$store" $((i * 1000000)) >>"$acks" 2>"$dir/writer.err" &
    pid=$!
    ms=$(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 451 + 50))
    sleep "$(printf '0.%03d' "$ms")"
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"
        rc=$?
        cat "$dir/writer.err"
        fail "the writer exited on its own (status $rc) before the kill"
    fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if sanitizer_report "$dir/writer.err"; then
        cat "$dir/writer.err"
        fail "sanitizer report from the writer"
    fi
    # The kill cannot split a write(2) to a regular file in practice, but
    # never let a partial last line run into the next cycle's first one.
    if [ -s "$acks" ] && [ "$(tail -c 1 "$acks" | od -An -tx1 | tr -d ' \n')" != "0a" ]; then
        sed -i '$d' "$acks"
    fi
    # Every other verification leaves the store as a crash would, so the
    # next writer starts from an abnormal recovery too.
    mode=close
    [ $((i % 2)) -eq 0 ] && mode=abandon
    if ! "$bin" verify "$store" "$acks" "$mode" >"$dir/verify.out" 2>&1; then
        cat "$dir/verify.out"
        fail "verification after a kill at ${ms} ms"
    fi
    if sanitizer_report "$dir/verify.out"; then
        cat "$dir/verify.out"
        fail "sanitizer report from the verifier"
    fi
    i=$((i + 1))
done

acked=$(wc -l <"$acks" | tr -d ' ')
echo "kill9: $cycles cycles passed, $acked acked messages verified after every kill ($(tail -n 1 "$dir/verify.out"))"
exit 0
