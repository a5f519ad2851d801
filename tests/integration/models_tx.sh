#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# shellcheck disable=SC2016 # the node scripts are single-quoted on purpose
# models_tx.sh - transactional messages through `sprocket produce --tx`
# (libsprocket's transactional producer) against a standalone daemon with
# short check timers (transactionCheckInterval=1000
# transactionTimeOut=1000 transactionCheckMax=3), with a `sprocket
# consume` member reading the topic all along. Each case has its own
# producer group, so that check-backs reach only the producer meant:
#
#   commit        --tx commit: all 5 consumed, once, with their tags, keys
#                 and user property;
#   rollback      --tx rollback: none ever consumed;
#   check-commit  --tx unknown --check commit --linger: the broker's
#                 check-back reaches the producer (it says so for each
#                 message) and the 5 are consumed once, not before
#                 transactionTimeOut after their birth;
#   orphan        --tx unknown --linger 0 (no producer left to ask): none
#                 ever consumed; after transactionCheckMax checks the
#                 broker gives up and files each under
#                 TRANS_CHECK_MAX_TIME_TOPIC.
#
# Environment: SPROCKET, plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init models_tx
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"
TOPIC=ModelTx
N=5

for k in transactionCheckInterval transactionTimeOut transactionCheckMax; do
    "$SPROCKETD" --help-config 2>&1 | grep -q "^$k " ||
        die "$SPROCKETD has no $k setting: the broker does not implement transactional messages"
done
start_standalone sd --transactionCheckInterval=1000 --transactionTimeOut=1000 --transactionCheckMax=3
create_topic "$sd_addr" "$TOPIC" 4
wait_route "$sd_ns" "$TOPIC" broker-a
NS=$sd_ns

"$SPROCKET" consume -n "$NS" -t "$TOPIC" -g CG_MODEL_TX --from first --json --instance tx \
    --duration 120 >"$T_WORK/consumer.jsonl" 2>"$T_WORK/consumer.err" &
cons_pid=$!
t_track $cons_pid
sleep 1

# txsend CASE ARGS...: N bodies CASE-0.. as transactions of producer group
# PG_TX_CASE, acks in CASE.jsonl, stderr in CASE.err.
txsend() {
    ts_case=$1
    shift
    seq 0 $((N - 1)) | sed "s/^/$ts_case-/" |
        "$SPROCKET" produce -n "$NS" -t "$TOPIC" -g "PG_TX_$ts_case" --tags "Tx$ts_case" \
            -k "key-$ts_case" -p "case=$ts_case" --json "$@" \
            >"$T_WORK/$ts_case.jsonl" 2>"$T_WORK/$ts_case.err"
}

t_sent=$(date +%s)
txsend commit --tx commit &
p1=$!
txsend rollback --tx rollback &
p2=$!
txsend checkcommit --tx unknown --check commit --linger 12 &
p3=$!
txsend orphan --tx unknown --linger 0 &
p4=$!
t_track "$p1 $p2 $p3 $p4"
for c in commit:$p1 rollback:$p2 checkcommit:$p3 orphan:$p4; do
    if wait "${c#*:}"; then
        pass "${c%%:*}: produce --tx exited 0"
    else
        fail "${c%%:*}: produce --tx exited with status $?: $(grep -v 'check-back' "$T_WORK/${c%%:*}.err" | head -c 300)"
    fi
done
for c in commit rollback checkcommit orphan; do
    n=$(grep -c '"msgId"' "$T_WORK/$c.jsonl")
    [ "$n" -eq $N ] || fail "$c: $n of $N half messages acknowledged"
done
answered=$(grep -c 'check-back for .* answered commit' "$T_WORK/checkcommit.err")
t_log "check-backs answered by the lingering producer: $answered"

# Every check of an orphan has run by now (timeout 1 s, 3 checks 1 s
# apart), and the consumer has had as long again to show anything.
while [ $(($(date +%s) - t_sent)) -lt 14 ]; do
    sleep 0.5
done
kill -TERM "$cons_pid"
wait "$cons_pid" || fail "the consumer exited with status $?"

# The orphans, given up on, are filed under TRANS_CHECK_MAX_TIME_TOPIC.
"$SPROCKET" consume -n "$NS" -t TRANS_CHECK_MAX_TIME_TOPIC -g CG_MODEL_TX_MAX --from first --json \
    --idle 5 --duration 30 >"$T_WORK/checkmax.jsonl" 2>"$T_WORK/checkmax.err" ||
    fail "consume of TRANS_CHECK_MAX_TIME_TOPIC exited with status $?: $(head -c 300 "$T_WORK/checkmax.err")"

"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const [work, n] = [process.argv[2], Number(process.argv[3])];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const got = readJsonl(`${work}/consumer.jsonl`);
const byCase = {};
for (const r of got) {
    const c = r.body.replace(/-[0-9]+$/, "");
    (byCase[c] = byCase[c] || []).push(r);
}
const bodies = (c) => (byCase[c] || []).map((r) => r.body).sort();
const want = (c) => Array.from({ length: n }, (_, i) => `${c}-${i}`).sort();
const eq = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const ackIds = (c) => new Set(readJsonl(`${work}/${c}.jsonl`).map((r) => r.msgId));

for (const c of ["commit", "checkcommit"]) {
    const rs = byCase[c] || [];
    v(eq(bodies(c), want(c)), `${c}: each of the ${n} consumed exactly once (got ${bodies(c).join(",") || "none"})`);
    const ids = ackIds(c);
    const bad = rs.filter((r) => !ids.has(r.msgId) || r.tags !== `Tx${c}` || r.keys !== `key-${c}` ||
        r.properties.case !== c || r.topic !== "ModelTx");
    v(rs.length && !bad.length, `${c}: ids, topic, tags, keys and property as sent` +
        (bad.length ? ` (${JSON.stringify(bad[0]).slice(0, 300)})` : ""));
}
const early = (byCase.checkcommit || []).filter((r) => r.t0 / 1000 < r.bornTimestamp + 1000);
v(!early.length, `checkcommit: none consumed before transactionTimeOut (1 s) after its birth` +
    (early.length ? `: ${early.map((r) => r.body + " +" + Math.round(r.t0 / 1000 - r.bornTimestamp) + "ms")}` : ""));
for (const c of ["rollback", "orphan"])
    v(!(byCase[c] || []).length, `${c}: never consumed (got ${bodies(c).join(",") || "none"})`);
const stray = Object.keys(byCase).filter((c) => !["commit", "checkcommit", "rollback", "orphan"].includes(c));
v(!stray.length, `nothing else consumed (${stray})`);

/* The check-backs the lingering producer answered, one per message at least. */
const err = require("fs").readFileSync(`${work}/checkcommit.err`, "utf8");
const checked = new Set([...err.matchAll(/check-back for (\S+) answered commit/g)].map((m) => m[1]));
const ids = ackIds("checkcommit");
v([...ids].every((id) => checked.has(id)), `checkcommit: the broker checked back each of its ${ids.size} transactions (${checked.size} ids answered)`);
const other = ["commit", "rollback", "orphan"].filter((c) => /check-back/.test(require("fs").readFileSync(`${work}/${c}.err`, "utf8")));
v(!other.length, `no check-back for the transactions ended at once (${other})`);

/* Orphans: given up on after transactionCheckMax. */
const maxed = readJsonl(`${work}/checkmax.jsonl`).map((r) => r.body);
v(eq([...new Set(maxed.filter((b) => b.startsWith("orphan-")))].sort(), want("orphan")),
    `orphan: all ${n} filed under TRANS_CHECK_MAX_TIME_TOPIC after transactionCheckMax checks (got ${maxed.sort().join(",") || "none"})`);
v(!maxed.some((b) => !b.startsWith("orphan-")), "TRANS_CHECK_MAX_TIME_TOPIC holds nothing but the orphans");
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" "$N" >"$T_WORK/check.txt" 2>&1 || fail "analysis failed: $(head -c 400 "$T_WORK/check.txt")"
while IFS= read -r l; do
    case $l in
    PASS*) pass "${l#PASS }" ;;
    FAIL*) fail "${l#FAIL }" ;;
    *) fail "$l" ;;
    esac
done <"$T_WORK/check.txt"

daemon_stop sd
# The clients' stderr: a sanitizer build reports there.
san=$(grep -El "$T_SAN_RE" "$T_WORK"/*.err 2>/dev/null | head -n 3)
[ -z "$san" ] || fail "sanitizer report in client output: $(echo "$san" | tr '\n' ' ')"
t_finish
