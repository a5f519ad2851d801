#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# shellcheck disable=SC2016 # the node scripts are single-quoted on purpose
# models_order.sh - ordered messages: `sprocket produce --order-key` and
# two `sprocket consume --orderly` members (queue locks on the broker),
# against a standalone daemon, topic of 8 queues.
#
# Nine sharding keys (key-0..key-7 hash to the 8 different queues, key-8
# shares key-0's queue) get PER_KEY messages each, "KEY:SEQ" in the body,
# from nine concurrent producers. The members sleep SLEEP_MS in every
# callback, so that consumption is slow and overlap would show; member
# o2 is stopped (SIGTERM) while its queues still hold messages.
#
# Asserts: every send acknowledged and each key's sends in one queue with
# growing offsets; every message consumed, none twice (o2 commits before
# it unlocks, so o1 resumes exactly there); per key, in consumption
# order (listener start t0 across both members), no message before one
# that was sent before it; never two callbacks on one queue at once
# (the [t0, t1] intervals of a queue do not overlap, whichever member);
# o2 consumed before it left and o1 took its queues over afterwards.
#
# Environment: PER_KEY (60), SLEEP_MS (50), SPROCKET, plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init models_order
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"

PER_KEY=${PER_KEY:-60}
SLEEP_MS=${SLEEP_MS:-50}
KEYS="key-0 key-1 key-2 key-3 key-4 key-5 key-6 key-7 key-8"
NKEYS=9
TOTAL=$((PER_KEY * NKEYS))
TOPIC=ModelOrder
GROUP=CG_MODEL_ORDER

start_standalone sd
create_topic "$sd_addr" "$TOPIC" 8
wait_route "$sd_ns" "$TOPIC" broker-a
NS=$sd_ns

now_us() {
    date +%s%6N
}

member() {
    "$SPROCKET" consume -n "$NS" -t "$TOPIC" -g "$GROUP" --from first --json --orderly \
        --sleep-ms "$SLEEP_MS" --instance "$1" --duration 120 \
        >"$T_WORK/$1.jsonl" 2>"$T_WORK/$1.err" &
    eval "$1_pid=$!"
    t_track $!
}

# consumed FILES: messages consumed so far.
consumed() {
    cat "$@" 2>/dev/null | wc -l
}

member o1
member o2
# Both members are in the group and hold their locks before the first
# send: o1 gives o2's half up as soon as the broker tells it o2 joined.
sleep 3

t_send=$(now_us)
ppids=""
for k in $KEYS; do
    seq 0 $((PER_KEY - 1)) | sed "s/^/$k:/" |
        "$SPROCKET" produce -n "$NS" -t "$TOPIC" --order-key "$k" --tags Ord --json \
            >"$T_WORK/acks-$k.jsonl" 2>"$T_WORK/produce-$k.err" &
    ppids="$ppids $!"
    t_track $!
done
for p in $ppids; do
    wait "$p" || fail "a producer (pid $p) exited with status $?"
done

# Stop o2 mid-stream: about a third of the messages consumed.
i=0
while [ "$(consumed "$T_WORK/o1.jsonl" "$T_WORK/o2.jsonl")" -lt $((TOTAL / 3)) ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
n2=$(consumed "$T_WORK/o2.jsonl")
t_stop0=$(now_us)
kill -TERM "$o2_pid"
wait "$o2_pid" || fail "o2 exited with status $? on SIGTERM: $(tail -n 2 "$T_WORK/o2.err")"
t_stop1=$(now_us)
t_log "o2 stopped after $n2 messages ($(((t_stop1 - t_stop0) / 1000)) ms to leave)"

i=0
while [ "$(consumed "$T_WORK/o1.jsonl" "$T_WORK/o2.jsonl")" -lt "$TOTAL" ] && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
sleep 1 # redeliveries, if any, are recorded
kill -TERM "$o1_pid"
wait "$o1_pid" || fail "o1 exited with status $? on SIGTERM: $(tail -n 2 "$T_WORK/o1.err")"

"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const [work, keys, perKey] = [process.argv[2], process.argv[3].split(" "), Number(process.argv[4])];
const [tStop0, tStop1] = [Number(process.argv[5]), Number(process.argv[6])];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);

/* Sends: per key, one queue and growing offsets (lines are in send order). */
let acked = 0;
const keyQueue = {}, badSend = [];
for (const k of keys) {
    const acks = readJsonl(`${work}/acks-${k}.jsonl`);
    acked += acks.length;
    const qs = new Set(acks.map((a) => a.queueId));
    keyQueue[k] = acks.length ? acks[0].queueId : -1;
    for (let i = 1; i < acks.length; i++)
        if (acks[i].queueOffset <= acks[i - 1].queueOffset) badSend.push(`${k} #${i}`);
    if (qs.size !== 1) badSend.push(`${k} in queues ${[...qs]}`);
}
v(acked === keys.length * perKey, `${acked} of ${keys.length * perKey} sends acknowledged`);
v(!badSend.length, `each key sent to one queue with growing offsets (${JSON.stringify(keyQueue)})` +
    (badSend.length ? `: ${badSend.slice(0, 3)}` : ""));

/* Deliveries, in consumption order. */
const recs = ["o1", "o2"].flatMap((m) => readJsonl(`${work}/${m}.jsonl`).map((r) => ({ ...r, m })));
recs.sort((a, b) => a.t0 - b.t0 || a.t1 - b.t1);
const count = new Map();
const maxSeq = {}, orderBad = [], bodyBad = [];
for (const r of recs) {
    const mm = /^(key-[0-9]+):([0-9]+)$/.exec(r.body);
    if (!mm || r.queueId !== keyQueue[mm[1]]) {
        bodyBad.push(`${r.body} q${r.queueId}`);
        continue;
    }
    const [k, s] = [mm[1], Number(mm[2])];
    count.set(r.body, (count.get(r.body) || 0) + 1);
    const prev = k in maxSeq ? maxSeq[k] : -1;
    /* A message may come only once every message sent before it came. */
    if (s > prev + 1) orderBad.push(`${k}:${s} after ${k}:${prev} (${r.m})`);
    if (s > prev) maxSeq[k] = s;
}
let missing = 0;
for (const k of keys) for (let s = 0; s < perKey; s++) if (!count.has(`${k}:${s}`)) missing++;
const dups = [...count].filter(([, n]) => n > 1).map(([b, n]) => `${b} x${n}`);
v(!bodyBad.length, `every delivery is a sent "KEY:SEQ" from the queue of its key (${bodyBad.length} bad: ${bodyBad.slice(0, 3)})`);
v(missing === 0, `every message consumed (${missing} missing)`);
v(!dups.length, `none consumed twice across the hand-over (${dups.length}: ${dups.slice(0, 3)})`);
v(!orderBad.length, `per-key order kept in consumption order (${orderBad.length} out of order: ${orderBad.slice(0, 3)})`);

/* Never two callbacks on one queue at once. */
const byQ = new Map();
for (const r of recs) {
    if (!byQ.has(r.queueId)) byQ.set(r.queueId, []);
    byQ.get(r.queueId).push(r);
}
const overlap = [];
let pairs = 0;
for (const [q, rs] of byQ) {
    rs.sort((a, b) => a.t0 - b.t0);
    let end = null;
    for (const r of rs) {
        if (end && r.t0 < end.t1) overlap.push(`q${q} ${end.m}[${end.t0},${end.t1}] ${r.m}[${r.t0},${r.t1}]`);
        if (end && end.m !== r.m) pairs++;
        if (!end || r.t1 > end.t1) end = r;
    }
}
v(!overlap.length, `no two callbacks on one queue at once, ${recs.length} intervals (${overlap.length} overlaps: ${overlap.slice(0, 2)})`);

/* The stop happened mid-stream and o1 took o2 queues over. */
const o2 = recs.filter((r) => r.m === "o2");
const o2q = new Set(o2.map((r) => r.queueId));
const late = o2.filter((r) => r.t0 > tStop1);
const taken = [...o2q].filter((q) => recs.some((r) => r.m === "o1" && r.queueId === q && r.t0 > tStop0));
v(o2.length > 0 && late.length === 0, `o2 consumed ${o2.length} messages from queues ${[...o2q].sort()} and nothing after it left`);
v(taken.length > 0, `o1 took o2 queues over after the stop: ${taken.sort()}`);
v(recs.filter((r) => r.m === "o1" && r.t0 < tStop0).length > 0, "o1 consumed before the stop too");
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" "$KEYS" "$PER_KEY" "$t_stop0" "$t_stop1" >"$T_WORK/check.txt" 2>&1 ||
    fail "analysis failed: $(head -c 400 "$T_WORK/check.txt")"
while IFS= read -r l; do
    case $l in
    PASS*) pass "${l#PASS }" ;;
    FAIL*) fail "${l#FAIL }" ;;
    *) fail "$l" ;;
    esac
done <"$T_WORK/check.txt"
t_log "sends started at $t_send"

daemon_stop sd
# The clients' stderr: a sanitizer build reports there.
san=$(grep -El "$T_SAN_RE" "$T_WORK"/*.err 2>/dev/null | head -n 3)
[ -z "$san" ] || fail "sanitizer report in client output: $(echo "$san" | tr '\n' ' ')"
t_finish
