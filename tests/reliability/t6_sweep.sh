#!/bin/sh
# t6_sweep.sh - RELIABILITY.md T6: fail the Nth call of every I/O kind of
# the store's seam, once and for good, during open and recovery, appends
# (SYNC_FLUSH and ASYNC_FLUSH, mmap and pwrite), segment roll-over,
# ConsumeQueue rebuild, checkpoint and clean-up; after each run a clean
# reopen must show every acknowledged message (tests/crash/sweep.c says
# exactly what is checked).
#
#   sh tests/reliability/t6_sweep.sh [BUILD_DIR]      (default build)
#
# Environment:
#   T6_SCOPE   quick (default: EIO everywhere and ENOSPC on fallocate,
#              N <= T6_MAX_N, under 40 s with the ASan build) or
#              full (every errno each kind can return, N until no fault
#              is reached: the nightly sweep)
#   T6_MAX_N   the largest N tried (default 2 quick, 4000 full)
#   T6_OP      one operation only (names in sweep.c)
# Progress: one line per operation, kind, errno and mode. Last line:
#   t6: T6 fail-Nth sweep: <injected runs> cycles, <violations> violations, <s> s
# Exit 0 when everything passed, 1 on a violation or a sanitizer report, 2
# when the sweep binary is missing or cannot set up.
set -u
build=${1:-build}
scope=${T6_SCOPE:-quick}
sweep=$build/tests/sweep
label="T6 fail-Nth sweep"

if [ ! -x "$sweep" ]; then
    echo "t6: $sweep not found (make $sweep)" >&2
    echo "t6: $label: 0 cycles, 0 violations, 0 s"
    exit 2
fi
case $scope in
quick | full) ;;
*)
    echo "t6: T6_SCOPE must be quick or full" >&2
    exit 2
    ;;
esac

# The stores live on a memory file system when there is one (thousands of
# opens, each with several fsyncs), inside the work directory, so that the
# trap removes them even after a crash.
tmp=${TMPDIR:-/tmp}
[ -w /dev/shm ] && tmp=/dev/shm
work=$(mktemp -d "$tmp/spk-t6-XXXXXX") || exit 2
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

set -- --scope "$scope"
[ -n "${T6_MAX_N:-}" ] && set -- "$@" --max-n "$T6_MAX_N"
[ -n "${T6_OP:-}" ] && set -- "$@" --op "$T6_OP"
set -- "$@" --dir "$work"

t0=$(date +%s)
# Sanitizer reports go to the log too; halt_on_error keeps the first one.
# Progress (seeds, one line per operation, any violation) as it comes.
{
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$sweep" "$@" 2>&1
    echo $? >"$work/rc"
} | tee "$work/sweep.log" |
    awk '/^t6: (operation|VIOLATION|seeds)/ { print; fflush() }'
rc=$(cat "$work/rc" 2>/dev/null || echo 2)
secs=$(($(date +%s) - t0))

summary=$(grep '^sweep: ' "$work/sweep.log" | tail -n 1)
injected=$(printf '%s\n' "$summary" | sed -n 's/.* \([0-9]*\) injected.*/\1/p')
viol=$(printf '%s\n' "$summary" | sed -n 's/.* \([0-9]*\) violations.*/\1/p')
injected=${injected:-0}
viol=${viol:-0}

SAN_RE='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer'
status=0
if grep -Eq "$SAN_RE" "$work/sweep.log"; then
    echo "t6: sanitizer report:"
    grep -E -A 20 "$SAN_RE" "$work/sweep.log" | head -n 60
    viol=$((viol + 1))
    status=1
fi
if [ -z "$summary" ]; then
    echo "t6: the sweep ended without its summary (exit status $rc); last lines:"
    tail -n 30 "$work/sweep.log"
    [ "$status" -eq 0 ] && status=$([ "$rc" -eq 2 ] && echo 2 || echo 1)
    [ "$status" -eq 1 ] && [ "$viol" -eq 0 ] && viol=1
elif [ "$rc" -ne 0 ] || [ "$viol" -ne 0 ]; then
    grep -E '^t6: .*violations [1-9]' "$work/sweep.log"
    status=1
fi
echo "$summary"
echo "t6: $label: $injected cycles, $viol violations, $secs s"
exit "$status"
