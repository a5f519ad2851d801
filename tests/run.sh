#!/bin/sh
# run.sh - the test runner behind `make test`.
#
#   sh tests/run.sh BUILD_DIR
#
# Runs, from a build made with SAN=address,undefined:
#   unit    BUILD_DIR/tests/unit, the Criterion runner (every test forked,
#           with a timeout), two jobs at a time;
#   crash   tests/crash/kill9.sh (kill -9 cycles on a store);
#   fuzz    tests/fuzz/replay.sh: every committed fuzz corpus replayed;
#   tools   tests/tools/store_tools.sh (`sprocket store check` and `dump`);
#   checker tests/checker/run.sh: the queue-history checker qcheck on its
#           hand-written and generated histories;
#   integration  tests/integration/run.sh: real sprocketd processes (the
#           sanitizer build) driven by the ali-ons clients; a sanitizer
#           report in a daemon's log fails its test;
#   tsan    tests/tsan.sh on the SAN=thread build in TSAN_BUILD (default
#           build/tsan): the store's threads under ThreadSanitizer.
#   reliability  the quick tier of every tests/reliability/tN_*.sh (the
#           long tier is `make reliability`): T1 a real broker SIGKILLed under
#           load RELIABILITY_CYCLES times (default 3) per flush mode, then
#           drained and checked; power cuts, torn tails, bit flips, disk
#           full, fault sweeps, hostile clients, metadata under crash.
# A suite fails when its command fails OR when its output holds a
# sanitizer report: a leak found at a test process's exit, for example,
# does not change Criterion's verdict, so the output is checked here.
# Prints one summary line per suite and a final "N passed, N failed".
#
# Environment: JOBS (default 2), CYCLES (kill -9 cycles, default 25),
# RELIABILITY_CYCLES (broker kill -9 cycles per flush mode, default 3),
# SUITES (default "unit crash"), CRITERION_ARGS (extra runner options,
# e.g. --filter='store/*'), KEEP_LOGS=1 to keep the logs directory.
set -u

build=${1:?usage: sh tests/run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
jobs=${JOBS:-2}
suites=${SUITES:-unit fuzz crash tools checker integration tsan reliability}

# abort_on_error makes a report kill the process (a crash Criterion sees);
# leaks are checked at every process exit; UBSan stops at the first report.
# Full unwinding on malloc, so a leak through libc (strdup, asprintf) still
# shows the project frame that made it. The suppressions cover only the
# Criterion runner's own leak (see the file).
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:fast_unwind_on_malloc=0}
LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS

logs=$(mktemp -d "${TMPDIR:-/tmp}/spk-tests-XXXXXX") || exit 2
if [ "${KEEP_LOGS:-0}" = 1 ]; then
    trap 'echo "run.sh: logs kept in $logs"' EXIT
else
    trap 'rm -rf "$logs"' EXIT
fi
trap 'exit 130' INT TERM

total_pass=0
total_fail=0
summary=""

add_summary() {
    summary="$summary$1
"
}

# Prints the sanitizer reports in <log> that concern the project. A leak
# report whose every stack frame lies outside the project (a library's
# internals, like the Criterion runner leak in lsan.supp) is noted and
# ignored; everything else counts.
sanitizer_reports() {
    awk '
        function flush() {
            if (inrep) {
                if (kind != "leak" || ours) { print block; found = 1 }
                else { ignored++ }
            }
            inrep = 0; block = ""; ours = 0
        }
        /ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer|ERROR: [A-Za-z]*Sanitizer/ {
            flush()
            inrep = 1
            kind = ($0 ~ /LeakSanitizer/) ? "leak" : "other"
        }
        inrep {
            block = block $0 "\n"
            if ($0 ~ /(^|[ \/])(src|tests|tools)\/[A-Za-z0-9_\/]*\.[ch]:/) ours = 1
            if ($0 ~ /^SUMMARY: /) flush()
        }
        END {
            flush()
            if (ignored > 0)
                printf "run.sh: ignored %d leak report(s) with no project frame (runner internals)\n", ignored > "/dev/stderr"
            exit found ? 0 : 1
        }
    ' "$1"
}

run_unit() {
    bin=$build/tests/unit
    log=$logs/unit.log
    tap=$logs/unit.tap
    if [ ! -x "$bin" ]; then
        echo "run.sh: $bin is missing" >&2
        add_summary "unit:  FAILED (no runner binary)"
        total_fail=$((total_fail + 1))
        return
    fi
    echo "=== unit tests: $bin --jobs $jobs"
    # shellcheck disable=SC2086 # CRITERION_ARGS is a list of options
    "$bin" --jobs "$jobs" --tap="$tap" ${CRITERION_ARGS:-} >"$log" 2>&1
    rc=$?
    cat "$log"

    # Per-test verdicts from the TAP stream: "ok - suite::name", with
    # "# SKIP" for skipped tests, "not ok - suite::name" for failures.
    counts=$(awk '
        /^ok - / || /^not ok - / {
            ok = ($1 == "ok")
            name = ok ? $3 : $4
            split(name, p, "::")
            s = p[1]
            if (!(s in seen)) { seen[s] = 1; order[++n] = s }
            if ($0 ~ /# SKIP/) skip[s]++
            else if (ok) pass[s]++
            else fail[s]++
        }
        END {
            for (i = 1; i <= n; i++) {
                s = order[i]
                printf "  unit/%-16s %4d passed, %3d failed, %3d skipped\n", s, pass[s], fail[s], skip[s]
                tp += pass[s]; tf += fail[s]; ts += skip[s]
            }
            printf "TOTAL %d %d %d\n", tp, tf, ts
        }
    ' "$tap")
    per_suite=$(printf '%s\n' "$counts" | grep -v '^TOTAL')
    # shellcheck disable=SC2046 # split "TOTAL pass fail skip" into words
    set -- $(printf '%s\n' "$counts" | grep '^TOTAL')
    upass=${2:-0}
    ufail=${3:-0}
    uskip=${4:-0}
    if [ "$rc" -ne 0 ] && [ "$ufail" -eq 0 ]; then
        # The runner failed without a failing test (crashed, or did not
        # start): count it as one failure.
        ufail=1
    fi
    status=ok
    [ "$rc" -ne 0 ] && status="FAILED (runner exit $rc)"
    if sanitizer_reports "$log" >"$logs/unit.san"; then
        echo "run.sh: sanitizer report(s) in the unit tests:"
        cat "$logs/unit.san"
        status="FAILED (sanitizer report)"
        [ "$ufail" -eq 0 ] && ufail=1
    fi
    add_summary "$per_suite"
    add_summary "unit:  $status: $upass passed, $ufail failed, $uskip skipped"
    total_pass=$((total_pass + upass))
    total_fail=$((total_fail + ufail))
}

# Runs one shell suite <name> <script>: its exit status and the absence of
# sanitizer reports decide.
run_script() {
    name=$1
    log=$logs/$name.log
    echo "=== $name tests: $2"
    sh "$here/${2%% *}" "$build" >"$log" 2>&1
    rc=$?
    cat "$log"
    status=ok
    [ "$rc" -ne 0 ] && status="FAILED (exit $rc)"
    if sanitizer_reports "$log" >"$logs/$name.san"; then
        echo "run.sh: sanitizer report(s) in the $name tests:"
        cat "$logs/$name.san"
        status="FAILED (sanitizer report)"
        rc=1
    fi
    if [ "$rc" -eq 0 ]; then
        total_pass=$((total_pass + 1))
        add_summary "$name: $status: 1 passed, 0 failed"
    else
        total_fail=$((total_fail + 1))
        add_summary "$name: $status: 0 passed, 1 failed"
    fi
}

run_integration() {
    log=$logs/integration.log
    echo "=== integration tests: tests/integration/run.sh (SPROCKETD=$build/sprocketd)"
    SKIP_FAILS=1 SPROCKETD=$(cd "$build" && pwd)/sprocketd sh "$here/integration/run.sh" >"$log" 2>&1
    rc=$?
    cat "$log"
    # shellcheck disable=SC2046 # "N passed, N failed"
    set -- $(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    ipass=${1:-0}
    ifail=${3:-0}
    status=ok
    if [ "$rc" -ne 0 ]; then
        status="FAILED (exit $rc)"
        [ "$ifail" -eq 0 ] && ifail=1
    fi
    if sanitizer_reports "$log" >"$logs/integration.san"; then
        cat "$logs/integration.san"
        status="FAILED (sanitizer report)"
        [ "$ifail" -eq 0 ] && ifail=1
    fi
    add_summary "integration: $status: $ipass passed, $ifail failed"
    total_pass=$((total_pass + ipass))
    total_fail=$((total_fail + ifail))
}

for s in $suites; do
    case $s in
    integration) run_integration ;;
    unit) run_unit ;;
    crash) run_script crash "crash/kill9.sh (CYCLES=${CYCLES:-25})" ;;
    fuzz) run_script fuzz fuzz/replay.sh ;;
    tools) run_script tools tools/store_tools.sh ;;
    checker) run_script checker checker/run.sh ;;
    # The quick tier of every reliability test (their own defaults; T1's
    # cycle count from RELIABILITY_CYCLES, as CYCLES belongs to the crash
    # suite), one summary line each.
    reliability) T1_CYCLES=${RELIABILITY_CYCLES:-3}; export T1_CYCLES
                 for t in "$here"/reliability/t[0-9]*_*.sh; do
                     t=$(basename "$t" .sh)
                     case $t in *_lib) continue ;; esac # sourced helpers
                     run_script "reliability-$t" "reliability/$t.sh"
                 done ;;
    tsan) build_saved=$build; build=${TSAN_BUILD:-build/tsan}
          run_script tsan tsan.sh; build=$build_saved ;;
    *)
        echo "run.sh: unknown suite '$s'" >&2
        total_fail=$((total_fail + 1))
        ;;
    esac
done

echo
echo "=== summary"
printf '%s' "$summary"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
