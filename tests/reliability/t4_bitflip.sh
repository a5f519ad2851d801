#!/bin/sh
# t4_bitflip.sh - RELIABILITY.md T4: single-bit flips at the store level,
# with BUILD_DIR/tests/bitflip (tests/crash/bitflip.c says what each trial
# flips and what must follow).
#
#   sh tests/reliability/t4_bitflip.sh [BUILD_DIR]      (default build)
#
# Each trial flips one bit of a golden store: in a record below the
# checkpoint, in one of the tail records above it, in a ConsumeQueue unit,
# in the index or in the checkpoint. `store check` must name the damaged
# file and offset, recovery must refuse loudly or start without losing any
# other message (rebuilding derived data), and reads must never deliver the
# flipped record. A trial counts as a cycle. The per-region figures and the
# table of record fields a BODYCRC-only store would not notice are printed.
#
# Environment:
#   T4_TRIALS  trials (default 80: the quick tier; make reliability: 10000)
#   T4_SEED    seed (default 1)
#   SPK_TEST_FASTDIR  where the stores are written (default /dev/shm when
#              writable, else TMPDIR)
#   KEEP=1     keep the work directory
set -u

build=${1:-build}
trials=${T4_TRIALS:-80}
seed=${T4_SEED:-1}
bin=$build/tests/bitflip

if [ ! -x "$bin" ]; then
    echo "t4: $bin not found (make $bin)" >&2
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
work=$(mktemp -d "$base/spk-t4-XXXXXX") || exit 2
log=$work/bitflip.log

t0=$(date +%s)
echo "t4: $trials trials, seed $seed, work $work"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$bin" "$work/run" --trials "$trials" --seed "$seed" \
    >"$log" 2>&1
rc=$?
secs=$(($(date +%s) - t0))
grep '^bitflip: ' "$log" | grep -v VIOLATION
grep 'VIOLATION' "$log" | head -n 20

line=$(grep '^bitflip: [0-9]* trials, [0-9]* violations$' "$log" | tail -n 1)
cycles=$(printf '%s\n' "$line" | sed -n 's/^bitflip: \([0-9]*\) trials.*/\1/p')
viol=$(printf '%s\n' "$line" | sed -n 's/.* \([0-9]*\) violations$/\1/p')
cycles=${cycles:-0}
viol=${viol:-0}
status=0
if grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' "$log"; then
    echo "t4: sanitizer report:" >&2
    grep -E -A 12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -n 40 >&2
    viol=$((viol + 1))
    status=1
fi
if [ -z "$line" ]; then
    echo "t4: the run did not finish (exit status $rc):" >&2
    tail -n 20 "$log" >&2
    viol=$((viol + 1))
    status=1
    [ $rc -eq 2 ] && status=2
elif [ $rc -ne 0 ] || [ "$viol" -ne 0 ]; then
    status=1
fi
if [ "${KEEP:-0}" = 1 ] || [ $status -ne 0 ]; then
    echo "t4: work directory kept in $work" >&2
else
    rm -rf "$work"
fi
echo "t4: T4 bit flips: $cycles cycles, $viol violations, $secs s"
exit $status
