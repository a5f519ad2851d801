#!/bin/sh
# run.sh - `make reliability`: the long tier of the reliability suite
# (RELIABILITY.md section 4), on the optimised build.
#
#   sh tests/reliability/run.sh [BUILD_DIR]
#
# Runs, and prints one table of test, cycles, violations and time:
#   T1     t1_kill9.sh: a real broker SIGKILLed under load, T1_CYCLES
#          (default 1000) kills per flush mode, histories checked by qcheck;
#   T1s    tests/crash/kill9.sh: store-level kill -9 cycles (STORE_CYCLES,
#          default 1000), every acked message verified after each;
#   qcheck tests/checker/run.sh: the checker on its own cases.
# Exit status 0 when every test passed.
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
t1_cycles=${T1_CYCLES:-1000}
store_cycles=${STORE_CYCLES:-1000}
logs=$(mktemp -d "${TMPDIR:-/tmp}/spk-rel-XXXXXX") || exit 2
table=""
fail=0

# row NAME CYCLES VIOLATIONS SECONDS STATUS
row() {
    table="$table$(printf '%-34s %8s %11s %9s  %s' "$1" "$2" "$3" "$4" "$5")
"
}

t0=$(date +%s)
T1_CYCLES=$t1_cycles sh "$here/t1_kill9.sh" "$build" >"$logs/t1.log" 2>&1
rc=$?
for mode in SYNC_FLUSH ASYNC_FLUSH; do
    line=$(grep "^t1: $mode: " "$logs/t1.log" | tail -n 1)
    kills=$(printf '%s\n' "$line" | sed -n 's/.*: \([0-9]*\) kills.*/\1/p')
    viol=$(printf '%s\n' "$line" | sed -n 's/.* \([0-9]*\) violations.*/\1/p')
    secs=$(printf '%s\n' "$line" | sed -n 's/.* \([0-9]*\) s$/\1/p')
    row "T1 broker kill -9 ($mode)" "${kills:--}" "${viol:--}" "${secs:--}" \
        "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
done
[ $rc -eq 0 ] || { fail=1; tail -n 30 "$logs/t1.log"; }

t0=$(date +%s)
CYCLES=$store_cycles sh "$here/../crash/kill9.sh" "$build" >"$logs/kill9.log" 2>&1
rc=$?
row "T1s store kill -9 (SYNC_FLUSH)" "$store_cycles" "$([ $rc -eq 0 ] && echo 0 || echo '>= 1')" \
    "$(($(date +%s) - t0))" "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
[ $rc -eq 0 ] || { fail=1; tail -n 20 "$logs/kill9.log"; }

t0=$(date +%s)
sh "$here/../checker/run.sh" "$build" >"$logs/checker.log" 2>&1
rc=$?
row "qcheck on its own cases" "-" "-" "$(($(date +%s) - t0))" \
    "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
[ $rc -eq 0 ] || { fail=1; tail -n 20 "$logs/checker.log"; }

echo
printf '%-34s %8s %11s %9s  %s\n' "test" "cycles" "violations" "seconds" "status"
printf '%s' "$table"
if [ $fail -eq 0 ]; then
    rm -rf "$logs"
    echo "reliability: all passed"
else
    echo "reliability: FAILED (logs in $logs)"
fi
exit $fail
