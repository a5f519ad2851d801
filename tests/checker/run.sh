#!/bin/sh
# run.sh - tests of the queue-history checker (the `checker` suite of
# tests/run.sh).
#
#   sh tests/checker/run.sh BUILD_DIR
#
# Runs BUILD_DIR/tests/qcheck on
#   - every hand-written history in tests/checker/cases/*.jsonl;
#   - the histories of gen.js: a long valid history from a simulated
#     correct queue, mutated copies that each break one property, and
#     damaged copies that must not crash the checker.
# Each history starts with a line "# expect: ITEM..." where ITEM is
#   exit=N | exit=any   qcheck's exit status (any: 0, 1 or 2, no crash)
#   CHECK=N | CHECK>=N  the count of CHECK in results.json
#   loose               checks not named may be non-zero (by default every
#                       check not named must be 0)
# and the file passes when all of them hold. Prints one line per history
# and a final "N passed, N failed".
#
# Environment: SEED for gen.js (default 1).
set -u

build=${1:?usage: sh tests/checker/run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
qcheck=$build/tests/qcheck
seed=${SEED:-1}

if [ ! -x "$qcheck" ]; then
    echo "checker: $qcheck is missing"
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/spk-qcheck-XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

pass=0
fail=0

# Compares every results.json kept in $tmp/res (NAME.json, with its
# expectation items in NAME.expect) with its expectation, in one node run:
# prints "FAIL NAME: ..." for each mismatch and the number of mismatches.
compare_counts() {
    node -e '
        const fs = require("fs");
        const dir = process.argv[1];
        let nbad = 0;
        for (const f of fs.readdirSync(dir).filter((n) => n.endsWith(".json")).sort()) {
            const name = f.slice(0, -5);
            const r = JSON.parse(fs.readFileSync(dir + "/" + f, "utf8"));
            const items = fs.readFileSync(dir + "/" + name + ".expect", "utf8").split(/\s+/).filter(Boolean);
            const want = {};
            let loose = false;
            const bad = [];
            for (const it of items) {
                if (it === "loose") { loose = true; continue; }
                const m = /^([A-Za-z0-9-]+)(>=|=)(\d+|any)$/.exec(it);
                if (!m) { bad.push("bad expect item " + it); continue; }
                if (m[1] !== "exit") want[m[1]] = [m[2], +m[3]];
            }
            for (const k of Object.keys(want))
                if (!(k in r.counts)) bad.push("no such check " + k);
            for (const [k, n] of Object.entries(r.counts)) {
                const w = want[k] || (loose ? null : ["=", 0]);
                if (w && !(w[0] === "=" ? n === w[1] : n >= w[1]))
                    bad.push(k + "=" + n + " (want " + w[0] + w[1] + ")");
            }
            const nonzero = Object.entries(r.counts)
                .filter(([k, n]) => n && k !== "retry-duplicate").length;
            if (r.valid !== (nonzero === 0))
                bad.push("valid=" + r.valid + " disagrees with the counts");
            if (bad.length) {
                console.log("FAIL " + name + ": " + bad.join(", "));
                nbad++;
            }
        }
        console.log(nbad);
    ' "$tmp/res"
}

# Runs qcheck on history <1> and checks it against its "# expect:" line.
check_case() {
    f=$1
    name=$(basename "$f" .jsonl)
    expect=$(sed -n '1s/^# expect: *//p' "$f")
    if [ -z "$expect" ]; then
        echo "FAIL $name: no '# expect:' first line"
        fail=$((fail + 1))
        return
    fi
    want_exit=$(printf '%s\n' "$expect" | tr ' ' '\n' | sed -n 's/^exit=//p')
    rm -f "$tmp/results.json"
    "$qcheck" -o "$tmp/results.json" "$f" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    ok=1
    case $want_exit in
    any) [ "$rc" -le 2 ] || ok=0 ;;
    *) [ "$rc" = "$want_exit" ] || ok=0 ;;
    esac
    if [ "$ok" = 1 ] && [ "$rc" -le 1 ] && [ "$want_exit" != any ]; then
        # The counts are compared for all histories at once, at the end.
        cp "$tmp/results.json" "$tmp/res/$name.json"
        printf '%s\n' "$expect" >"$tmp/res/$name.expect"
        cp "$tmp/err" "$tmp/res/$name.err"
    fi
    if [ "$ok" = 1 ]; then
        echo "ok   $name (exit $rc)"
        pass=$((pass + 1))
    else
        echo "FAIL $name: exit $rc, expected $expect"
        sed 's/^/    /' "$tmp/err"
        fail=$((fail + 1))
    fi
    # A sanitizer report goes to stderr; keep it visible to tests/run.sh.
    grep -q 'Sanitizer\|runtime error:' "$tmp/err" && cat "$tmp/err"
}

mkdir -p "$tmp/res"
for f in "$here"/cases/*.jsonl; do
    check_case "$f"
done

mkdir -p "$tmp/gen"
if node "$here/gen.js" "$seed" "$tmp/gen"; then
    # The generated histories are large, and unwinding the full stack of
    # every cJSON node allocation (fast_unwind_on_malloc=0, set by
    # tests/run.sh) triples their time. Leaks are still detected with
    # the fast unwinder; the small hand-written cases above, which cover
    # the error paths, keep the full traces.
    saved_asan=${ASAN_OPTIONS-}
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=1
    export ASAN_OPTIONS
    for f in "$tmp"/gen/*.jsonl; do
        check_case "$f"
    done
    ASAN_OPTIONS=$saved_asan
else
    echo "FAIL gen.js (seed $seed)"
    fail=$((fail + 1))
fi

# A history whose exit status was right but whose counts were not turns
# from a pass into a failure.
compare_counts >"$tmp/cmp"
nbad=$(tail -n 1 "$tmp/cmp")
case $nbad in
'' | *[!0-9]*)
    cat "$tmp/cmp"
    echo "FAIL comparing the counts"
    fail=$((fail + 1))
    ;;
*)
    sed '$d' "$tmp/cmp"
    sed -n 's/^FAIL \([^:]*\):.*/\1/p' "$tmp/cmp" | while IFS= read -r n; do
        sed 's/^/    /' "$tmp/res/$n.err"
    done
    pass=$((pass - nbad))
    fail=$((fail + nbad))
    ;;
esac

# Usage errors and --help.
"$qcheck" --help >/dev/null 2>&1 && r1=0 || r1=$?
"$qcheck" -o "$tmp/x.json" "$tmp/no-such-file" >/dev/null 2>&1 && r2=0 || r2=$?
"$qcheck" --bogus >/dev/null 2>&1 && r3=0 || r3=$?
printf '' | "$qcheck" -o - >/dev/null 2>&1 && r4=0 || r4=$?
if [ "$r1" = 0 ] && [ "$r2" = 2 ] && [ "$r3" = 2 ] && [ "$r4" = 0 ]; then
    echo "ok   usage"
    pass=$((pass + 1))
else
    echo "FAIL usage: --help $r1, missing file $r2, bad option $r3, empty stdin $r4"
    fail=$((fail + 1))
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
