#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# shellcheck disable=SC2016 # the node scripts are single-quoted on purpose
# models_retry.sh - redelivery through the retry topic with `sprocket
# consume --reconsume N` (the listener answers "later" until a message
# comes with reconsumeTimes N), against a standalone daemon whose delay
# levels are all 1 s (lib.sh), so each retry comes back after a second.
#
# Two groups read the same COUNT messages, one with --reconsume 1 and one
# with --reconsume 2. Asserts, per group: each acknowledged message is
# printed exactly once, with reconsumeTimes 1 (2), the same msgId, its
# original topic (not %RETRY%<group>), body, tags, keys and user property,
# and not before bornTimestamp + 1 s per retry; nothing else is printed.
# (A message beyond maxReconsumeTimes going to %DLQ% is covered by
# alions_retry_dlq.sh: `sprocket consume` cannot set maxReconsumeTimes.)
#
# Environment: COUNT (10), SPROCKET, plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init models_retry
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"
COUNT=${COUNT:-10}
TOPIC=ModelRetry

start_standalone sd
create_topic "$sd_addr" "$TOPIC" 4
wait_route "$sd_ns" "$TOPIC" broker-a
NS=$sd_ns

seq 0 $((COUNT - 1)) | sed 's/^/r-/' |
    "$SPROCKET" produce -n "$NS" -t "$TOPIC" --tags TagR -k "rk" -p origin=models_retry --json \
        >"$T_WORK/acks.jsonl" 2>"$T_WORK/produce.err" ||
    fail "produce exited with status $?: $(tail -n 2 "$T_WORK/produce.err")"

for r in 1 2; do
    "$SPROCKET" consume -n "$NS" -t "$TOPIC" -g "CG_MODEL_RETRY_$r" --from first --json \
        --reconsume $r --count "$COUNT" --duration 40 >"$T_WORK/r$r.jsonl" 2>"$T_WORK/r$r.err" &
    eval "r${r}_pid=$!"
    t_track $!
done
for r in 1 2; do
    eval "rp=\$r${r}_pid"
    wait "$rp" || fail "consumer --reconsume $r exited with status $?: $(tail -n 2 "$T_WORK/r$r.err")"
done

"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const [work, count] = [process.argv[2], Number(process.argv[3])];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const acks = readJsonl(`${work}/acks.jsonl`);
v(acks.length === count, `${acks.length} of ${count} sends acknowledged`);
for (const r of [1, 2]) {
    const got = readJsonl(`${work}/r${r}.jsonl`);
    const ids = got.map((x) => x.msgId).sort();
    v(JSON.stringify(ids) === JSON.stringify(acks.map((a) => a.msgId).sort()),
        `--reconsume ${r}: each message printed once, under its own msgId (${got.length} printed)`);
    const bad = got.filter((x) => x.reconsumeTimes !== r || x.topic !== "ModelRetry" || !/^r-[0-9]+$/.test(x.body) ||
        x.tags !== "TagR" || x.keys !== "rk" || x.properties.origin !== "models_retry");
    v(got.length && !bad.length, `--reconsume ${r}: reconsumeTimes ${r}, topic ModelRetry, body, tags, keys and property intact` +
        (bad.length ? `: ${JSON.stringify(bad[0]).slice(0, 300)}` : ""));
    const early = got.filter((x) => x.t0 / 1000 < x.bornTimestamp + 1000 * r);
    v(got.length && !early.length, `--reconsume ${r}: redelivered no sooner than ${r} s after birth (` +
        got.map((x) => Math.round(x.t0 / 1000 - x.bornTimestamp)).join(",") + " ms)");
}
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" "$COUNT" >"$T_WORK/check.txt" 2>&1 || fail "analysis failed: $(head -c 400 "$T_WORK/check.txt")"
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
