#!/bin/sh
# t3_tails.sh - RELIABILITY.md T3: torn and truncated tails, at the store
# level, with BUILD_DIR/tests/tails (tests/crash/tails.c says what each
# variant is and what recovery must make of it).
#
#   sh tests/reliability/t3_tails.sh [BUILD_DIR]      (default build)
#
# Every variant is one damaged copy of a golden store opened with
# store_open: cut, zeroed, 0xFF-filled or randomised from a byte inside the
# last three records (in one segment, and across a roll-over), a record
# header cut in half, a total size past the segment; plus the negative
# control, the same damage below the checkpoint, which must make the store
# refuse to start. A variant counts as a cycle; a wrong recovery, a wrong
# refusal, a crash or any sanitizer report is a violation.
#
# Environment:
#   T3_STRIDE  take every N-th byte offset; 1 = every byte, the exhaustive
#              long tier (make reliability). Default 200: the quick tier.
#   T3_EDGE    the first and last E bytes of every record are always taken
#              (default 2; the headers and the CRC property ends)
#   T3_SEED    seed of the random fills and of the stride's phase (default 1)
#   SPK_TEST_FASTDIR  where the stores are written (default /dev/shm when
#              writable, else TMPDIR): thousands of stores are opened, and
#              every fsync to a real disk costs milliseconds
#   KEEP=1     keep the work directory
set -u

build=${1:-build}
stride=${T3_STRIDE:-200}
edge=${T3_EDGE:-2}
seed=${T3_SEED:-1}
bin=$build/tests/tails

if [ ! -x "$bin" ]; then
    echo "t3: $bin not found (make $bin)" >&2
    exit 2
fi
base=${SPK_TEST_FASTDIR:-}
if [ -z "$base" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        base=/dev/shm
    else
        base=${TMPDIR:-/tmp}
    fi
fi
work=$(mktemp -d "$base/spk-t3-XXXXXX") || exit 2
log=$work/tails.log

t0=$(date +%s)
echo "t3: stride $stride, edge $edge, seed $seed, work $work"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$bin" "$work/run" --stride "$stride" --edge "$edge" \
    --seed "$seed" \
    >"$log" 2>&1
rc=$?
secs=$(($(date +%s) - t0))
grep '^tails: ' "$log" | grep -v VIOLATION
grep 'VIOLATION' "$log" | head -n 20

line=$(grep '^tails: [0-9]* variants' "$log" | tail -n 1)
cycles=$(printf '%s\n' "$line" | sed -n 's/^tails: \([0-9]*\) variants.*/\1/p')
viol=$(printf '%s\n' "$line" | sed -n 's/.* \([0-9]*\) violations.*/\1/p')
cycles=${cycles:-0}
viol=${viol:-0}
status=0
if grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' "$log"; then
    echo "t3: sanitizer report:" >&2
    grep -E -A 12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -n 40 >&2
    viol=$((viol + 1))
    status=1
fi
if [ -z "$line" ]; then
    echo "t3: the run did not finish (exit status $rc):" >&2
    tail -n 20 "$log" >&2
    viol=$((viol + 1))
    status=1
    [ $rc -eq 2 ] && status=2
elif [ $rc -ne 0 ] || [ "$viol" -ne 0 ]; then
    status=1
fi
if [ "${KEEP:-0}" = 1 ] || [ $status -ne 0 ]; then
    echo "t3: work directory kept in $work" >&2
else
    rm -rf "$work"
fi
echo "t3: T3 torn tails: $cycles cycles, $viol violations, $secs s"
exit $status
