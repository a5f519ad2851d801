#!/bin/sh
# run.sh - `make reliability`: the long tier of the reliability suite
# (RELIABILITY.md section 4), on the optimised build.
#
#   sh tests/reliability/run.sh [BUILD_DIR]
#
# Runs every tests/reliability/tN_*.sh with its long-tier settings (below;
# any of them can be overridden from the environment), then
#   T1s  tests/crash/kill9.sh: store-level kill -9 cycles (STORE_CYCLES,
#        default 1000), every acked message verified after each;
#   qcheck  tests/checker/run.sh: the checker on its own cases;
# and prints one table: test, cycles run, violations, seconds, status.
#
# Each tN script ends with one or more lines of the form
#   tN: <label>: <cycles> cycles, <violations> violations, <seconds> s
# which become the rows; a script that fails without one gets a row of its
# own. Exit status 0 when every test passed. Logs of failed tests are kept
# (their directory is printed).
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)

# Long-tier settings (RELIABILITY.md section 4, "nightly").
T1_CYCLES=${T1_CYCLES:-1000}          # broker kill -9 per flush mode
T2_CUTS=${T2_CUTS:-10000}             # store power cuts over the 4 modes
T3_STRIDE=${T3_STRIDE:-1}             # every byte of the last 3 records
T4_TRIALS=${T4_TRIALS:-10000}         # bit flips
T5_ROUNDS=${T5_ROUNDS:-8}             # disk-full rounds
T6_SCOPE=${T6_SCOPE:-full}            # every N, errno and mode
T8_CYCLES=${T8_CYCLES:-20} T8_BENCH_S=${T8_BENCH_S:-3}
T9_CYCLES=${T9_CYCLES:-10} T9_BENCH_S=${T9_BENCH_S:-2}
T10_CYCLES=${T10_CYCLES:-5}
T11_CONNS=${T11_CONNS:-10000} T11_CYCLES=${T11_CYCLES:-3}
T14_CYCLES=${T14_CYCLES:-200}         # broker kills (and 20x module kills)
export T1_CYCLES T2_CUTS T3_STRIDE T4_TRIALS T5_ROUNDS T6_SCOPE T8_CYCLES T8_BENCH_S \
    T9_CYCLES T9_BENCH_S T10_CYCLES T11_CONNS T11_CYCLES T14_CYCLES
store_cycles=${STORE_CYCLES:-1000}

logs=$(mktemp -d "${TMPDIR:-/tmp}/spk-rel-XXXXXX") || exit 2
table=""
fail=0

# row NAME CYCLES VIOLATIONS SECONDS STATUS
row() {
    table="$table$(printf '%-38s %8s %11s %9s  %s' "$1" "$2" "$3" "$4" "$5")
"
}

for script in "$here"/t[0-9]*_*.sh; do
    name=$(basename "$script" .sh)
    case $name in *_lib) continue ;; esac # sourced by the tests
    log=$logs/$name.log
    echo "=== $name"
    t0=$(date +%s)
    sh "$script" "$build" >"$log" 2>&1
    rc=$?
    secs=$(($(date +%s) - t0))
    status=ok
    [ $rc -eq 0 ] || { status="FAILED (exit $rc)"; fail=1; }
    rows=$(sed -n 's/^t[0-9][0-9a-z]*: \(.*\): \([0-9]*\) cycles, \([0-9]*\) violations, \([0-9]*\) s$/\1|\2|\3|\4/p' "$log")
    if [ -z "$rows" ]; then
        row "$name" "-" "-" "$secs" "$status"
    else
        while IFS='|' read -r label c v s; do
            row "$label" "$c" "$v" "$s" "$status"
        done <<EOF
$rows
EOF
    fi
    if [ $rc -ne 0 ]; then
        tail -n 30 "$log"
    fi
    tail -n 1 "$log"
done

echo "=== T1s store kill -9"
t0=$(date +%s)
CYCLES=$store_cycles sh "$here/../crash/kill9.sh" "$build" >"$logs/kill9.log" 2>&1
rc=$?
row "T1s store kill -9 (SYNC_FLUSH)" "$store_cycles" "$([ $rc -eq 0 ] && echo 0 || echo '>= 1')" \
    "$(($(date +%s) - t0))" "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
[ $rc -eq 0 ] || { fail=1; tail -n 20 "$logs/kill9.log"; }

echo "=== qcheck"
t0=$(date +%s)
sh "$here/../checker/run.sh" "$build" >"$logs/checker.log" 2>&1
rc=$?
row "qcheck on its own cases" "-" "-" "$(($(date +%s) - t0))" \
    "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
[ $rc -eq 0 ] || { fail=1; tail -n 20 "$logs/checker.log"; }

echo
printf '%-38s %8s %11s %9s  %s\n' "test" "cycles" "violations" "seconds" "status"
printf '%s' "$table"
if [ $fail -eq 0 ]; then
    rm -rf "$logs"
    echo "reliability: all passed"
else
    echo "reliability: FAILED (logs in $logs)"
fi
exit $fail
