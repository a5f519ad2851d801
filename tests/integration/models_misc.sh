#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# shellcheck disable=SC2016 # the node scripts are single-quoted on purpose
# models_misc.sh - `sprocket produce` / `sprocket consume` (libsprocket)
# against a standalone daemon with RocketMQ's delay levels (1 s, 5 s, ...):
#
#   delayed   --delay 1 and --delay 2: each message consumed not before its
#             bornTimestamp + 1 s / 5 s (listener start t0), nor more than
#             4 s later, under its own topic;
#   batch     --batch 16 over 40 bodies (16 + 16 + 8): each batch in one
#             queue with consecutive offsets, and every message consumed
#             once at the queue and offset the producer reported, with
#             body, tags, keys and properties intact;
#   tags      consumers of 'TagA || TagC' and of 'TagB' get exactly those;
#   property  consumers of color=red, and of color=red plus size=L, get
#             exactly the matching messages;
#   lite pull --lite --count 3, then --lite to the end: the first run gets
#             3, the second exactly the other 17 (offsets committed, none
#             lost or repeated), a third nothing; 5 new ones, a fourth
#             exactly those; push --count 3 then push to the end: none
#             lost (some of the first 3 may come again);
#   bad input missing -n or -t, bad --delay, bad --from, unknown options:
#             exit 2, nothing on stdout, and a message that says what is
#             expected; an unreachable name server: produce and consume
#             exit 1 (within 20 s) naming the name server.
#
# Environment: SPROCKET, plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init models_misc
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"

# verdicts FILE: PASS/FAIL lines written by a node check, counted here.
verdicts() {
    while IFS= read -r vl; do
        case $vl in
        PASS*) pass "${vl#PASS }" ;;
        FAIL*) fail "${vl#FAIL }" ;;
        *) fail "check output: $vl" ;;
        esac
    done <"$1"
}

# produce TOPIC OUT FIRST COUNT PREFIX ARGS...: bodies PREFIX-FIRST..,
# JSON acks in $T_WORK/OUT.jsonl.
produce() {
    pr_topic=$1
    pr_out=$2
    pr_first=$3
    pr_n=$4
    pr_prefix=$5
    shift 5
    seq "$pr_first" $((pr_first + pr_n - 1)) | sed "s/^/$pr_prefix-/" |
        "$SPROCKET" produce -n "$NS" -t "$pr_topic" --json "$@" \
            >>"$T_WORK/$pr_out.jsonl" 2>>"$T_WORK/$pr_out.err" ||
        fail "produce to $pr_topic ($pr_out) exited with status $?: $(tail -n 2 "$T_WORK/$pr_out.err")"
}

# consume NAME TOPIC GROUP ARGS...: a consumer to its end (--idle or
# --count given by the caller), JSON in $T_WORK/NAME.jsonl.
consume() {
    co_name=$1
    co_topic=$2
    co_group=$3
    shift 3
    timeout -k 5 60 "$SPROCKET" consume -n "$NS" -t "$co_topic" -g "$co_group" --from first \
        --json --duration 50 "$@" >"$T_WORK/$co_name.jsonl" 2>"$T_WORK/$co_name.err" ||
        fail "consume $co_name exited with status $?: $(tail -n 2 "$T_WORK/$co_name.err")"
}

start_standalone sd "--messageDelayLevel=1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
NS=$sd_ns
for t in MiscDelay MiscBatch MiscTags MiscProps MiscLite; do
    create_topic "$sd_addr" "$t" 4
done
wait_route "$NS" MiscLite broker-a

# ---------------------------------------------------------------- delayed
: >"$T_WORK/delay.jsonl"
"$SPROCKET" consume -n "$NS" -t MiscDelay -g CG_MISC_DELAY --from first --json --duration 60 \
    >"$T_WORK/delay.jsonl" 2>"$T_WORK/delay.err" &
delay_pid=$!
t_track $delay_pid
sleep 1
produce MiscDelay delay-acks 0 5 d1 --delay 1
produce MiscDelay delay-acks 0 5 d2 --delay 2
i=0
while [ "$(wc -l <"$T_WORK/delay.jsonl")" -lt 10 ] && [ $i -lt 200 ]; do
    sleep 0.1
    i=$((i + 1))
done
sleep 1
kill -TERM $delay_pid
wait $delay_pid || fail "the delayed-topic consumer exited with status $?"
"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const work = process.argv[2];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const acks = new Set(readJsonl(`${work}/delay-acks.jsonl`).map((r) => r.msgId));
const got = readJsonl(`${work}/delay.jsonl`);
v(acks.size === 10, `delayed: ${acks.size} of 10 sends acknowledged`);
const ids = got.map((r) => r.msgId).sort();
v(JSON.stringify(ids) === JSON.stringify([...acks].sort()), `delayed: each acknowledged message consumed once (${got.length} deliveries)`);
for (const [lvl, ms] of [[1, 1000], [2, 5000]]) {
    const rs = got.filter((r) => r.body.startsWith(`d${lvl}-`));
    const lat = rs.map((r) => Math.round(r.t0 / 1000 - r.bornTimestamp));
    const bad = rs.filter((r) => r.t0 / 1000 < r.bornTimestamp + ms || r.t0 / 1000 > r.bornTimestamp + ms + 4000 ||
        r.topic !== "MiscDelay");
    v(rs.length === 5 && !bad.length, `delay level ${lvl}: consumed ${lat.join(",")} ms after birth (want ${ms}..${ms + 4000}), under MiscDelay`);
}
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" >"$T_WORK/check-delay.txt" 2>&1 || fail "delay analysis: $(head -c 300 "$T_WORK/check-delay.txt")"
verdicts "$T_WORK/check-delay.txt"

# ---------------------------------------------------------------- batch
produce MiscBatch batch-acks 0 40 b --batch 16 --tags TagBatch -k "bk1 bk2" -p a=1 -p b=two
consume batch MiscBatch CG_MISC_BATCH --idle 3
"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const work = process.argv[2];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const acks = readJsonl(`${work}/batch-acks.jsonl`);
v(acks.length === 40, `batch: ${acks.length} of 40 messages acknowledged`);
const bad = [];
for (const [from, to] of [[0, 16], [16, 32], [32, 40]]) {
    const b = acks.slice(from, to);
    for (let i = 1; i < b.length; i++)
        if (b[i].queueId !== b[0].queueId || b[i].queueOffset !== b[0].queueOffset + i) bad.push(`#${from + i}`);
}
v(!bad.length, `batch: each batch (16, 16, 8) in one queue with consecutive offsets` + (bad.length ? `: ${bad.slice(0, 3)}` : ""));
const got = readJsonl(`${work}/batch.jsonl`);
const byId = new Map();
for (const r of got) byId.set(r.msgId, (byId.get(r.msgId) || []).concat([r]));
const wrong = [];
acks.forEach((a, i) => {
    const rs = byId.get(a.msgId) || [];
    const r = rs[0];
    if (rs.length !== 1) wrong.push(`b-${i} delivered ${rs.length} times`);
    else if (r.body !== `b-${i}` || r.queueId !== a.queueId || r.queueOffset !== a.queueOffset ||
        r.tags !== "TagBatch" || r.keys !== "bk1 bk2" || r.properties.a !== "1" || r.properties.b !== "two")
        wrong.push(JSON.stringify(r).slice(0, 200));
});
v(got.length === 40 && !wrong.length, `batch: all 40 consumed once, at the reported queue and offset, body, tags, keys and properties intact` +
    (wrong.length ? `: ${wrong.slice(0, 2).join(" ; ")}` : ` (${got.length} deliveries)`));
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" >"$T_WORK/check-batch.txt" 2>&1 || fail "batch analysis: $(head -c 300 "$T_WORK/check-batch.txt")"
verdicts "$T_WORK/check-batch.txt"

# ---------------------------------------------------------------- filters
produce MiscTags tags-acks 0 10 A --tags TagA
produce MiscTags tags-acks 0 10 B --tags TagB
produce MiscTags tags-acks 0 10 C --tags TagC
produce MiscProps props-acks 0 10 red -p color=red
produce MiscProps props-acks 0 10 blue -p color=blue
produce MiscProps props-acks 0 10 redL -p color=red -p size=L
produce MiscProps props-acks 0 10 plain
# The four consumers run side by side (subshells: their status is
# collected here, a failure inside one would not count).
consume tagAC MiscTags CG_MISC_TAG_AC --idle 3 -s 'TagA || TagC' >"$T_WORK/f1.out" &
f1=$!
consume tagB MiscTags CG_MISC_TAG_B --idle 3 -s TagB >"$T_WORK/f2.out" &
f2=$!
consume red MiscProps CG_MISC_RED --idle 3 -p color=red >"$T_WORK/f3.out" &
f3=$!
consume redL MiscProps CG_MISC_RED_L --idle 3 -p color=red -p size=L >"$T_WORK/f4.out" &
f4=$!
t_track "$f1 $f2 $f3 $f4"
wait $f1 $f2 $f3 $f4
for f in f1 f2 f3 f4; do
    if grep -q '^FAIL' "$T_WORK/$f.out"; then
        fail "$(sed -n 's/^FAIL [^:]*: //p' "$T_WORK/$f.out" | head -n 1)"
    fi
done
"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const work = process.argv[2];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const want = (...p) => p.flatMap((x) => Array.from({ length: 10 }, (_, i) => `${x}-${i}`)).sort().join(",");
for (const [name, expr, prefixes] of [["tagAC", "TagA || TagC", ["A", "C"]], ["tagB", "TagB", ["B"]],
    ["red", "color=red", ["red", "redL"]], ["redL", "color=red size=L", ["redL"]]]) {
    const got = readJsonl(`${work}/${name}.jsonl`).map((r) => r.body).sort().join(",");
    v(got === want(...prefixes), `filter ${expr}: exactly ${prefixes.join(" + ")} delivered` +
        (got === want(...prefixes) ? "" : ` (got ${got.slice(0, 300)})`));
}
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" >"$T_WORK/check-filter.txt" 2>&1 || fail "filter analysis: $(head -c 300 "$T_WORK/check-filter.txt")"
verdicts "$T_WORK/check-filter.txt"

# ---------------------------------------------------------------- lite pull, --count
produce MiscLite lite-acks 0 20 L
consume lite1 MiscLite CG_MISC_LITE --lite --count 3
consume lite2 MiscLite CG_MISC_LITE --lite --idle 3
consume lite3 MiscLite CG_MISC_LITE --lite --idle 3
produce MiscLite lite-acks 20 5 L
consume lite4 MiscLite CG_MISC_LITE --lite --idle 3
consume push1 MiscLite CG_MISC_PUSH --count 3
consume push2 MiscLite CG_MISC_PUSH --idle 3
"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const work = process.argv[2];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const b = (n) => readJsonl(`${work}/${n}.jsonl`).map((r) => r.body);
const range = (a, z) => Array.from({ length: z - a }, (_, i) => `L-${a + i}`);
const dupsIn = (xs) => xs.length - new Set(xs).size;
const [l1, l2, l3, l4, p1, p2] = ["lite1", "lite2", "lite3", "lite4", "push1", "push2"].map(b);
const rest = (first, all) => all.filter((x) => !first.includes(x)).sort().join(",");
v(l1.length === 3 && dupsIn(l1) === 0, `lite --count 3: ${l1.length} messages (${l1})`);
v(l2.slice().sort().join(",") === rest(l1, range(0, 20)),
    `lite, same group, to the end: exactly the other ${20 - l1.length} (got ${l2.length}: ${l2.slice().sort()})`);
v(l3.length === 0, `lite, same group again: nothing old (got ${l3.length})`);
v(l4.slice().sort().join(",") === range(20, 25).sort().join(","), `lite after 5 new sends: exactly those 5 (got ${l4})`);
v(p1.length === 3 && dupsIn(p1) === 0, `push --count 3: ${p1.length} messages`);
/* Concurrent listeners: messages held back at the count may sit below
 * printed ones in their queue, and the committed offset stops at the
 * oldest one not consumed, so some printed ones may come again. */
const again = p2.filter((x) => p1.includes(x));
v(p2.filter((x) => !p1.includes(x)).sort().join(",") === rest(p1, range(0, 25)) && dupsIn(p2) === 0,
    `push, same group, to the end: every one of the other ${25 - p1.length}, once (got ${p2.length}, ` +
    `${again.length} of the first run again)`);
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" >"$T_WORK/check-lite.txt" 2>&1 || fail "lite analysis: $(head -c 300 "$T_WORK/check-lite.txt")"
verdicts "$T_WORK/check-lite.txt"

# ---------------------------------------------------------------- bad input
# usage CMD EXPECTED_STDERR_RE ARGS...: exit 2, empty stdout, stderr matching.
usage() {
    u_cmd=$1
    u_re=$2
    shift 2
    echo body | timeout 10 "$SPROCKET" "$u_cmd" "$@" >"$T_WORK/usage.out" 2>"$T_WORK/usage.err"
    u_rc=$?
    if [ $u_rc -eq 2 ] && [ ! -s "$T_WORK/usage.out" ] && grep -Eq -- "$u_re" "$T_WORK/usage.err"; then
        pass "$u_cmd $*: exit 2, \"$(head -n 1 "$T_WORK/usage.err")\""
    else
        fail "$u_cmd $*: exit $u_rc, stdout [$(head -c 100 "$T_WORK/usage.out")], stderr [$(head -c 200 "$T_WORK/usage.err")] (want exit 2 and /$u_re/)"
    fi
}
usage produce '-n NAMESRV and -t TOPIC are required' -t MiscLite
usage produce '-n NAMESRV and -t TOPIC are required' -n "$NS"
usage consume '-n NAMESRV and -t TOPIC are required' -t MiscLite
usage consume '-n NAMESRV and -t TOPIC are required' -n "$NS"
for d in 0 19 x ''; do
    usage produce "--delay wants a number from 1 to 18" -n "$NS" -t MiscLite --delay "$d"
done
usage consume "--from is first, last or timestamp" -n "$NS" -t MiscLite --from nowhere
usage produce "unknown or incomplete option '--no-such'; see 'sprocket produce --help'" -n "$NS" -t MiscLite --no-such
usage consume "unknown or incomplete option '--no-such'; see 'sprocket consume --help'" -n "$NS" -t MiscLite --no-such

# An address nothing listens on: the error must name it, so the user
# knows which setting to fix.
dead=127.0.0.1:$(ports 1)
for cmd in produce consume; do
    if [ $cmd = produce ]; then
        echo body | timeout 20 "$SPROCKET" produce -n "$dead" -t MiscLite >"$T_WORK/dead.out" 2>"$T_WORK/dead.err"
    else
        timeout 20 "$SPROCKET" consume -n "$dead" -t MiscLite --idle 3 >"$T_WORK/dead.out" 2>"$T_WORK/dead.err"
    fi
    rc=$?
    if [ $rc -eq 1 ] && grep -q "$dead" "$T_WORK/dead.err"; then
        pass "$cmd -n $dead (nothing listening): exit 1, \"$(grep -m 1 "$dead" "$T_WORK/dead.err")\""
    else
        fail "$cmd -n $dead (nothing listening): exit $rc, stderr [$(tr '\n' '|' <"$T_WORK/dead.err" | head -c 300)] (want exit 1 and a message naming $dead)"
    fi
done

# A delivery-time (timer) message: this broker has no timer wheel, so it
# refuses the message instead of delivering it at once.
"$SPROCKET" produce -n "$NS" -t MiscLite -p "TIMER_DELIVER_MS=$(( $(date +%s) * 1000 + 60000 ))" \
    timed >"$T_WORK/timer.out" 2>"$T_WORK/timer.err"
rc=$?
if [ $rc -eq 1 ] && grep -q "code 13 delivery-time (timer) messages are not supported" "$T_WORK/timer.err"; then
    pass "timer message refused: $(grep -m 1 'code 13' "$T_WORK/timer.err")"
else
    fail "timer message: exit $rc, stderr [$(tr '\n' '|' <"$T_WORK/timer.err" | head -c 300)]"
fi

daemon_stop sd
# The clients' stderr: a sanitizer build reports there.
san=$(grep -El "$T_SAN_RE" "$T_WORK"/*.err 2>/dev/null | head -n 3)
[ -z "$san" ] || fail "sanitizer report in client output: $(echo "$san" | tr '\n' ' ')"
t_finish
