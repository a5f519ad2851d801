#!/bin/sh
# t2_powercut.sh - RELIABILITY.md T2: simulated power loss at the store level.
#
#   sh tests/reliability/t2_powercut.sh [BUILD_DIR]      (default build)
#
# Runs BUILD_DIR/tests/powercut (tests/crash/powercut.c) in the four
# combinations of flush mode (SYNC_FLUSH, ASYNC_FLUSH) and CommitLog write
# mode (mapping + msync, pwrite + fdatasync). Each cut: a writer process
# appends under the storeio power-cut journal, is SIGKILLed at a random
# moment, the store is rebuilt as a disk would hold it after a power cut
# (only what completed syncs covered is certain; every other page is
# persisted, lost, torn or garbage; names and sizes not covered by a sync
# may or may not have reached the disk), recovered and read back:
#   SYNC_FLUSH   no acknowledged message lost, moved or duplicated;
#   ASYNC_FLUSH  nothing below the last completed flush lost, losses only
#                a suffix of each queue;
#   both         the store opens, no corrupt record delivered, dense queue
#                offsets, no crash, no sanitizer report.
# A failing cut is kept under the work directory with its replay command.
#
# Environment:
#   T2_CUTS       cuts in total, split over the modes (else CYCLES, else 40:
#                 the quick tier, SYNC_FLUSH with pwrite only, see below)
#   T2_MODES      subset of "sync/mmap sync/pwrite async/mmap async/pwrite"
#   T2_WRITEBACK  random (default: each unsynced page independently) or
#                 ordered (unsynced pages of a file reach the disk in order)
#   T2_META       mixed (default), strict (POSIX) or ordered (ext4-like)
#   T2_SEED       base seed (default: time); printed for reproduction
#   T2_KILL_MS    time-based kills land 2..2+T2_KILL_MS ms after the fork
#   KEEP=1        keep the work directory even when the run passes
set -u

build=${1:-build}
cuts=${T2_CUTS:-${CYCLES:-40}}
# The quick tier (no count given) runs SYNC_FLUSH with pwrite only, the
# broker's default under SYNC_FLUSH (writeWithoutMmap=auto). With the
# mapped write mode some cuts still end with the store refusing to start
# (ASYNC_FLUSH about 3%, SYNC_FLUSH about 0.05%: damage above the
# checkpoint with valid records behind it that is neither unwritten-
# looking nor injected garbage; no message is lost or delivered damaged,
# but the broker would not start): an open bug, which the long tier (make
# reliability, all four modes) keeps reporting as violations until it is
# fixed. Replay a kept case with powercut -R.
if [ -z "${T2_CUTS:-}" ] && [ -z "${CYCLES:-}" ]; then
    modes=${T2_MODES:-sync/pwrite}
else
    modes=${T2_MODES:-sync/mmap sync/pwrite async/mmap async/pwrite}
fi
writeback=${T2_WRITEBACK:-random}
meta=${T2_META:-mixed}
seed=${T2_SEED:-$(date +%s)}
kill_ms=${T2_KILL_MS:-150}
keep=${KEEP:-0}
label="T2 store power cut"
powercut=$build/tests/powercut

if [ ! -x "$powercut" ]; then
    echo "t2: $powercut not found (make $powercut)" >&2
    echo "t2: $label: 0 cycles, 0 violations, 0 s"
    exit 2
fi

# tmpfs when there is one: the simulation decides what is durable, so the
# real syncs need not reach a disk.
base=${TMPDIR:-/tmp}
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    base=/dev/shm
fi
work=$(mktemp -d "$base/spk-t2-XXXXXX") || exit 2

nmodes=0
for m in $modes; do
    nmodes=$((nmodes + 1))
done
if [ "$nmodes" -eq 0 ]; then
    echo "t2: no modes" >&2
    exit 2
fi
per=$((cuts / nmodes))
extra=$((cuts % nmodes))

start=$(date +%s)
total=0
violations=0
failed=0
i=0
for m in $modes; do
    flush=${m%/*}
    write=${m#*/}
    n=$per
    if [ "$i" -lt "$extra" ]; then
        n=$((n + 1))
    fi
    s=$((seed + i))
    i=$((i + 1))
    log=$work/$flush-$write.log
    echo "t2: $flush/$write: $n cuts, seed $s, writeback $writeback, metadata $meta"
    "$powercut" -d "$work/$flush-$write" -n "$n" -s "$s" -f "$flush" -w "$write" \
        -b "$writeback" -m "$meta" -k "$kill_ms" >"$log" 2>&1
    rc=$?
    grep -E '^(VIOLATION|powercut: )' "$log" | grep -v 'powercut: writer: ' | sed 's/^/t2:   /'
    v=$(sed -n 's/^powercut: .*: [0-9]* cuts, \([0-9]*\) violations, .*/\1/p' "$log" | tail -n 1)
    if [ -z "$v" ]; then
        echo "t2: $flush/$write: no summary line (exit status $rc); see $log" >&2
        v=1
        failed=1
    elif [ "$rc" -ne 0 ] && [ "$v" -eq 0 ]; then
        echo "t2: $flush/$write: exit status $rc without violations; see $log" >&2
        failed=1
    fi
    if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$log"; then
        echo "t2: $flush/$write: sanitizer report in $log" >&2
        grep -E -m 5 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$log" >&2
        v=$((v + 1))
    fi
    total=$((total + n))
    violations=$((violations + v))
done
elapsed=$(($(date +%s) - start))

if [ "$violations" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$keep" = 1 ]; then
    echo "t2: work directory kept in $work (fail-N directories replay with: $powercut -d DIR -R DIR/fail-N)"
else
    rm -rf "$work"
fi
echo "t2: $label: $total cycles, $violations violations, $elapsed s"
if [ "$violations" -ne 0 ] || [ "$failed" -ne 0 ]; then
    exit 1
fi
exit 0
