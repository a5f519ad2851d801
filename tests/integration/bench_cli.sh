#!/bin/sh
# bench_cli.sh - the command line of `sprocket bench produce|consume`:
#   - --help exits 0 and names every common option; a bad option or value
#     exits 2 with a message on stderr;
#   - produce for 2 s (--duration, 2 threads) and consume for at most 2 s
#     (2 threads, an --inflight window, --size checked) against a
#     standalone daemon: each ends with a JSON line that parses, with
#     positive rates, no errors and ordered latency percentiles
#     (p50 <= p90 <= p99 <= p99.9 <= p99.99 <= max);
#   - the progress line goes to stderr only when that is a terminal: none
#     when it is a file, and one (run under script(1), when it can open a
#     pty) when it is.
# shellcheck disable=SC2154 # NAME_addr variables are set by the start_* helpers
. "$(dirname "$0")/lib.sh"
t_init bench_cli
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"

# check_json FILE KIND: the last line of FILE is the JSON of a clean
# `sprocket bench KIND` run; prints PASS or FAIL lines.
# shellcheck disable=SC2016 # ${...} in the script are JavaScript template literals
check_json() {
    "$NODE" -e '
const fs = require("fs");
const [file, kind] = process.argv.slice(1);
const lines = fs.readFileSync(file, "utf8").trim().split("\n");
const last = lines[lines.length - 1];
let j;
try {
    j = JSON.parse(last);
} catch (e) {
    console.log(`FAIL ${kind}: the last line is not JSON: ${last}`);
    process.exit(1);
}
const bad = [];
if (j.bench !== kind) bad.push(`bench=${j.bench}`);
for (const k of ["messages", "msgs_s", "mib_s"])
    if (!(typeof j[k] === "number" && j[k] > 0)) bad.push(`${k}=${j[k]}`);
if (j.errors !== 0) bad.push(`errors=${j.errors}`);
if (j.failed !== false) bad.push(`failed=${j.failed}`);
if (kind === "consume" && j.bad_size !== 0) bad.push(`bad_size=${j.bad_size}`);
const pct = ["p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us"];
for (const k of pct)
    if (!(typeof j[k] === "number" && j[k] > 0)) bad.push(`${k}=${j[k]}`);
for (let i = 1; i < pct.length; i++)
    if (j[pct[i - 1]] > j[pct[i]]) bad.push(`${pct[i - 1]} ${j[pct[i - 1]]} > ${pct[i]} ${j[pct[i]]}`);
if (bad.length) {
    console.log(`FAIL ${kind} JSON: ${bad.join(", ")}`);
    process.exit(1);
}
console.log(`PASS ${kind} JSON: ${j.messages} messages, ${j.msgs_s} msgs/s, ` +
    `p50/p90/p99/p99.9/p99.99/max ${pct.map((k) => j[k]).join("/")} us`);
' "$1" "$2"
}

# check_outcome NAME RC: the PASS/FAIL lines of check_json (status RC)
# counted by the harness; a failure without a FAIL line fails as well.
check_outcome() {
    if [ "$2" -ne 0 ] && ! grep -q '^FAIL' "$T_WORK/$1.check"; then
        fail "checking the $1 JSON failed (status $2): $(head -c 300 "$T_WORK/$1.check")"
    fi
    while IFS= read -r co_line; do
        case $co_line in
        PASS*) echo "PASS $T_NAME: ${co_line#PASS }" ;;
        FAIL*) fail "${co_line#FAIL }" ;;
        *) echo "[$T_NAME] $co_line" ;;
        esac
    done <"$T_WORK/$1.check"
}

# --- usage
for kind in produce consume; do
    if "$SPROCKET" bench $kind --help >"$T_WORK/help-$kind.out" 2>&1; then
        missing=""
        for opt in --threads --conns --inflight --size --batch --duration; do
            grep -q -- "$opt=" "$T_WORK/help-$kind.out" || missing="$missing $opt"
        done
        if [ -z "$missing" ]; then
            pass "bench $kind --help exits 0 and documents every common option"
        else
            fail "bench $kind --help does not document:$missing"
        fi
    else
        fail "bench $kind --help exited with status $?"
    fi
    for bad in --no-such-option=1 --threads=0 --duration=0 --inflight=x; do
        "$SPROCKET" bench $kind "$bad" >"$T_WORK/bad.out" 2>"$T_WORK/bad.err"
        rc=$?
        if [ $rc -eq 2 ] && grep -q "bad option '$bad'" "$T_WORK/bad.err"; then
            pass "bench $kind $bad: exit 2, \"$(head -n 1 "$T_WORK/bad.err")\""
        else
            fail "bench $kind $bad: exit $rc, stderr \"$(head -n 1 "$T_WORK/bad.err")\""
        fi
    done
done

# --- produce and consume against a daemon
start_standalone bc

# Under script(1) stderr is a pty: the progress line must appear there.
# Without a usable script(1) the run goes to files and the tty check is
# skipped.
tty_ok=0
if command -v script >/dev/null 2>&1 && script -qec true /dev/null >/dev/null 2>&1; then
    tty_ok=1
fi
produce_cmd="'$SPROCKET' bench produce --addr=$bc_addr --topic=BenchCli --create-topic \
--queues=4 --threads=2 --conns=4 --inflight=8 --size=512 --batch=1 --duration=2"
if [ $tty_ok -eq 1 ]; then
    script -qec "$produce_cmd >'$T_WORK/produce.out'" "$T_WORK/produce.tty" >/dev/null 2>&1
    rc=$?
else
    sh -c "$produce_cmd" >"$T_WORK/produce.out" 2>"$T_WORK/produce.err"
    rc=$?
fi
if [ $rc -eq 0 ]; then
    pass "bench produce --duration=2 exited 0"
else
    fail "bench produce exited with status $rc: $(tail -n 3 "$T_WORK/produce.out")"
fi
check_json "$T_WORK/produce.out" produce >"$T_WORK/produce.check" 2>&1
check_outcome produce $?
if [ $tty_ok -eq 1 ]; then
    # Each line starts with \r; at least the 1 s one must be there.
    if tr '\r' '\n' <"$T_WORK/produce.tty" | grep -Eq '^ +[0-9]+\.[0-9] s  [0-9,]+ msgs/s  total [0-9,]+  errors 0  p50 '; then
        pass "progress line on a terminal: $(tr '\r' '\n' <"$T_WORK/produce.tty" |
            grep -m 1 'msgs/s  total' | sed 's/^ *//')"
    else
        fail "no progress line on a terminal: $(tr '\r' '\n' <"$T_WORK/produce.tty" | head -n 3)"
    fi
else
    t_log "script(1) cannot open a pty here: progress line on a terminal not checked"
fi

"$SPROCKET" bench consume --addr="$bc_addr" --topic=BenchCli --queues=4 --threads=2 --conns=2 \
    --inflight=1 --size=512 --batch=1 --duration=2 >"$T_WORK/consume.out" 2>"$T_WORK/consume.err"
rc=$?
if [ $rc -eq 0 ]; then
    pass "bench consume --duration=2 exited 0"
else
    fail "bench consume exited with status $rc: $(tail -n 3 "$T_WORK/consume.out" "$T_WORK/consume.err")"
fi
check_json "$T_WORK/consume.out" consume >"$T_WORK/consume.check" 2>&1
check_outcome consume $?
if [ -s "$T_WORK/consume.err" ]; then
    fail "bench consume wrote to stderr (a file, not a terminal): $(head -c 200 "$T_WORK/consume.err")"
else
    pass "no progress line when stderr is not a terminal"
fi

# --- end to end: every message sent arrives, percentiles in order
"$SPROCKET" bench e2e --addr="$bc_addr" --topic=BenchE2E --create-topic --rate=2000 \
    --duration=1 >"$T_WORK/e2e.out" 2>"$T_WORK/e2e.err"
rc=$?
"$NODE" -e '
const fs = require("fs");
const lines = fs.readFileSync(process.argv[1], "utf8").trim().split("\n");
let j;
try { j = JSON.parse(lines[lines.length - 1]); } catch (e) { console.log("FAIL e2e: no JSON"); process.exit(1); }
const bad = [];
if (j.bench !== "e2e") bad.push("bench=" + j.bench);
if (!(j.sent >= 1500)) bad.push("sent=" + j.sent);
if (j.received !== j.sent) bad.push(`received ${j.received} of ${j.sent}`);
if (j.errors !== 0 || j.failed !== false) bad.push(`errors=${j.errors} failed=${j.failed}`);
const pct = ["p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us"];
for (let i = 0; i < pct.length; i++) {
    if (!(j[pct[i]] > 0)) bad.push(pct[i] + "=" + j[pct[i]]);
    if (i && j[pct[i - 1]] > j[pct[i]]) bad.push(pct[i - 1] + " > " + pct[i]);
}
console.log(bad.length ? "FAIL e2e: " + bad.join(", ")
    : `PASS e2e: ${j.received} of ${j.sent} received, p50 ${j.p50_us} us, p99 ${j.p99_us} us`);
process.exit(bad.length ? 1 : 0);
' "$T_WORK/e2e.out" >"$T_WORK/e2e.check" 2>&1
check_outcome e2e $?
[ $rc -eq 0 ] || fail "bench e2e exited with status $rc: $(tail -n 2 "$T_WORK/e2e.err")"
"$SPROCKET" bench e2e --rate=0 >/dev/null 2>"$T_WORK/e2e-bad.err"
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--rate wants a number" "$T_WORK/e2e-bad.err"; then
    pass "bench e2e --rate=0: exit 2, $(head -n 1 "$T_WORK/e2e-bad.err")"
else
    fail "bench e2e --rate=0: exit $rc, $(head -n 1 "$T_WORK/e2e-bad.err")"
fi

daemon_stop bc
t_finish
