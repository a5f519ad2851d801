#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# shellcheck disable=SC2016 # the node scripts are single-quoted on purpose
# models_failover.sh - libsprocket's send retry on another broker: a name
# server and two brokers (broker-a, broker-b), the topic on both. While
# `sprocket produce --interval-ms 10` sends COUNT messages, broker-b is
# killed with SIGKILL.
#
# Asserts: the producer exits 0 with every message acknowledged; both
# brokers acknowledged sends before the kill, and after it only
# broker-a did; broker-b restarted on its store, a `sprocket consume`
# group then gets every acknowledged message (those broker-b stored
# before it died included).
#
# Environment: COUNT (500), SPROCKET, plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init models_failover
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"
COUNT=${COUNT:-500}
TOPIC=ModelFailover

start_namesrv ns
start_broker ba "$ns_addr" broker-a
start_broker bb "$ns_addr" broker-b
create_topic "$ba_addr" "$TOPIC" 4
create_topic "$bb_addr" "$TOPIC" 4
wait_route "$ns_addr" "$TOPIC" broker-a,broker-b

# stdbuf: the acknowledgements are followed as they come (stdout to a
# file is block-buffered). Its preloaded library comes before the ASan
# runtime of a sanitizer build, which ASan accepts when told so.
: >"$T_WORK/acks.jsonl"
seq 0 $((COUNT - 1)) | sed 's/^/f-/' |
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 stdbuf -oL "$SPROCKET" produce -n "$ns_addr" -t "$TOPIC" --interval-ms 10 --json \
        >"$T_WORK/acks.jsonl" 2>"$T_WORK/produce.err" &
prod_pid=$!
t_track $prod_pid
# Kill broker-b once about a fifth of the messages went out.
i=0
while [ "$(wc -l <"$T_WORK/acks.jsonl")" -lt $((COUNT / 5)) ] && [ $i -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
done
at_kill=$(wc -l <"$T_WORK/acks.jsonl")
daemon_kill9 bb
t_log "broker-b killed after $at_kill acknowledgements"
if wait $prod_pid; then
    pass "produce exited 0 although broker-b was killed mid-stream"
else
    fail "produce exited with status $?: $(grep -v '^$' "$T_WORK/produce.err" | tail -n 3 | tr '\n' '|')"
fi

# broker-b back on its store (new port; it registers again).
start_broker bb "$ns_addr" broker-b
wait_route "$ns_addr" "$TOPIC" broker-a,broker-b

"$SPROCKET" consume -n "$ns_addr" -t "$TOPIC" -g CG_MODEL_FAILOVER --from first --json \
    --duration 60 >"$T_WORK/consumed.jsonl" 2>"$T_WORK/consume.err" &
cons_pid=$!
t_track $cons_pid
acked=$(wc -l <"$T_WORK/acks.jsonl")
i=0
while [ "$(wc -l <"$T_WORK/consumed.jsonl")" -lt "$acked" ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
sleep 1
kill -TERM $cons_pid
wait $cons_pid || fail "the consumer exited with status $?"

"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const [work, count, atKill] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const acks = readJsonl(`${work}/acks.jsonl`);
v(acks.length === count && new Set(acks.map((a) => a.msgId)).size === count,
    `${acks.length} of ${count} sends acknowledged, each with its own msgId`);
/* Sends are one at a time: at most the one in flight at the kill is
 * acknowledged between counting and killing. */
const before = acks.slice(0, atKill), after = acks.slice(atKill + 1);
const cnt = (rs, b) => rs.filter((a) => a.broker === b).length;
v(cnt(before, "broker-a") > 0 && cnt(before, "broker-b") > 0,
    `before the kill both brokers acknowledged (broker-a ${cnt(before, "broker-a")}, broker-b ${cnt(before, "broker-b")})`);
v(after.length > 0 && cnt(after, "broker-b") === 0,
    `after the kill only broker-a acknowledged (${cnt(after, "broker-a")} of ${after.length})`);
const got = new Map();
for (const r of readJsonl(`${work}/consumed.jsonl`)) got.set(r.msgId, r);
const missing = acks.filter((a) => !got.has(a.msgId));
v(!missing.length, `every acknowledged message consumed afterwards (${missing.length} missing` +
    (missing.length ? `, e.g. ${missing.slice(0, 3).map((a) => a.broker + ":" + a.queueId + ":" + a.queueOffset)})` : ")"));
const wrong = acks.filter((a) => got.has(a.msgId) && got.get(a.msgId).broker !== a.broker);
v(!wrong.length, `each consumed from the broker that acknowledged it (${wrong.length} elsewhere)`);
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" "$COUNT" "$at_kill" >"$T_WORK/check.txt" 2>&1 ||
    fail "analysis failed: $(head -c 400 "$T_WORK/check.txt")"
while IFS= read -r l; do
    case $l in
    PASS*) pass "${l#PASS }" ;;
    FAIL*) fail "${l#FAIL }" ;;
    *) fail "$l" ;;
    esac
done <"$T_WORK/check.txt"

daemon_stop ba
daemon_stop bb
daemon_stop ns
# The clients' stderr: a sanitizer build reports there.
san=$(grep -El "$T_SAN_RE" "$T_WORK"/*.err 2>/dev/null | head -n 3)
[ -z "$san" ] || fail "sanitizer report in client output: $(echo "$san" | tr '\n' ' ')"
t_finish
