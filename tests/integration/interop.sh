#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# shellcheck disable=SC2016 # the node scripts are single-quoted on purpose
# interop.sh - libsprocket and ali-ons 3.12.0 read each other's messages,
# through a standalone daemon:
#
#   ali-ons -> sprocket  produce.js sends 30 messages with two keys, tags
#                        TagX/TagY and user properties color=red size=L,
#                        and 10 with 6000-byte bodies (ali-ons deflates
#                        them) and color=green; `sprocket consume` gets
#                        each exactly once with the same body, keys, tags
#                        and user properties, under the offset id ali-ons
#                        reported;
#   sprocket -> ali-ons  `sprocket produce` sends 22 bodies (one UTF-8,
#                        one of 6000 bytes, which libsprocket compresses)
#                        with keys "sk-1 sk-2", tag TagS and properties
#                        color=blue, note="hello world", and 5 more with
#                        other ones; consume.js (FULL=1) gets each exactly
#                        once with the same body, keys, tag, properties
#                        and UNIQ_KEY.
#
# Environment: SPROCKET, plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init interop
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"

start_standalone sd
create_topic "$sd_addr" IopA 4
create_topic "$sd_addr" IopB 4
wait_route "$sd_ns" IopB broker-a
NS=$sd_ns

verdicts() {
    while IFS= read -r vl; do
        case $vl in
        PASS*) pass "${vl#PASS }" ;;
        FAIL*) fail "${vl#FAIL }" ;;
        *) fail "check output: $vl" ;;
        esac
    done <"$1"
}

# ---------------------------------------------------------------- ali-ons -> sprocket
export NAMESRV="$NS"
TOPIC=IopA COUNT=30 TAGS=TagX,TagY KEY_PREFIX=ia- EXTRA_KEY=shared PROPS=color=red,size=L \
    OUT=$T_WORK/acks-a1.jsonl MAX_MS=30000 run_client produce-a1 40 produce.js ||
    fail "produce.js (30 messages) failed"
TOPIC=IopA COUNT=10 START=30 TAGS=TagZ KEY_PREFIX=ia- BODY_SIZE=6000 PROPS=color=green \
    OUT=$T_WORK/acks-a2.jsonl MAX_MS=30000 run_client produce-a2 40 produce.js ||
    fail "produce.js (10 large messages) failed"
timeout -k 5 60 "$SPROCKET" consume -n "$NS" -t IopA -g CG_IOP_A --from first --json --idle 4 \
    --duration 40 >"$T_WORK/spk-a.jsonl" 2>"$T_WORK/spk-a.err" ||
    fail "sprocket consume exited with status $?: $(tail -n 2 "$T_WORK/spk-a.err")"
"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const work = process.argv[2];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const a1 = readJsonl(`${work}/acks-a1.jsonl`), a2 = readJsonl(`${work}/acks-a2.jsonl`);
v(a1.length === 30 && a2.length === 10, `ali-ons acknowledged ${a1.length} + ${a2.length} of 30 + 10`);
const got = readJsonl(`${work}/spk-a.jsonl`);
const byOff = new Map();
for (const r of got) byOff.set(r.offsetMsgId, (byOff.get(r.offsetMsgId) || []).concat([r]));
const bad = [];
const user = (p) => Object.fromEntries(Object.entries(p).filter(([k]) => ["color", "size"].includes(k)));
for (const [acks, keys, props, size] of [[a1, (a) => `${a.key} shared`, { color: "red", size: "L" }, 0],
    [a2, (a) => a.key, { color: "green" }, 6000]]) {
    for (const a of acks) {
        const rs = byOff.get(a.msgId) || [];
        if (rs.length !== 1) {
            bad.push(`${a.key}: delivered ${rs.length} times`);
            continue;
        }
        const r = rs[0];
        let b = null;
        try { b = JSON.parse(r.body); } catch (e) { /* reported below */ }
        const why = [];
        if (!b || b.i !== a.i || b.key !== a.key) why.push(`body ${r.body.slice(0, 60)}`);
        if (size && Buffer.byteLength(r.body) !== size) why.push(`body of ${Buffer.byteLength(r.body)} bytes`);
        if (r.keys !== keys(a)) why.push(`keys ${r.keys}`);
        if (r.tags !== a.tag) why.push(`tags ${r.tags}`);
        if (JSON.stringify(user(r.properties)) !== JSON.stringify(props)) why.push(`properties ${JSON.stringify(r.properties)}`);
        if (r.topic !== "IopA" || r.queueId !== a.queueId || r.queueOffset !== a.queueOffset) why.push(`at ${r.topic}:${r.queueId}:${r.queueOffset}`);
        if (why.length) bad.push(`${a.key}: ${why.join(", ")}`);
    }
}
v(!bad.length, `sprocket consume got each ali-ons message once with its body, keys, tags and properties` +
    (bad.length ? ` (${bad.length} bad: ${bad.slice(0, 3).join("; ")})` : ""));
v(got.length === 40, `and nothing else (${got.length} delivered)`);
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" >"$T_WORK/check-a.txt" 2>&1 || fail "analysis (ali-ons -> sprocket): $(head -c 300 "$T_WORK/check-a.txt")"
verdicts "$T_WORK/check-a.txt"

# ---------------------------------------------------------------- sprocket -> ali-ons
{
    i=0
    while [ $i -lt 20 ]; do
        echo "s-$i hello"
        i=$((i + 1))
    done
    echo "s-20 ünïcødé ✓"
    printf 's-21 %06000d\n' 0
} >"$T_WORK/bodies-b1.txt"
printf 't-%d\n' 0 1 2 3 4 >"$T_WORK/bodies-b2.txt"
"$SPROCKET" produce -n "$NS" -t IopB --tags TagS -k "sk-1 sk-2" -p color=blue -p "note=hello world" \
    --json <"$T_WORK/bodies-b1.txt" >"$T_WORK/acks-b1.jsonl" 2>"$T_WORK/produce-b1.err" ||
    fail "sprocket produce exited with status $?: $(tail -n 2 "$T_WORK/produce-b1.err")"
"$SPROCKET" produce -n "$NS" -t IopB --tags TagT -k sk-3 -p color=black --json \
    <"$T_WORK/bodies-b2.txt" >"$T_WORK/acks-b2.jsonl" 2>"$T_WORK/produce-b2.err" ||
    fail "sprocket produce exited with status $?: $(tail -n 2 "$T_WORK/produce-b2.err")"
: >"$T_WORK/ali-b.jsonl"
TOPIC=IopB GROUP=CG_IOP_B FULL=1 OUT=$T_WORK/ali-b.jsonl MAX_MS=60000 bg_client alib 60 consume.js
i=0
while [ "$(wc -l <"$T_WORK/ali-b.jsonl")" -lt 27 ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
sleep 2 # duplicates, if any
stop_client alib || fail "consume.js exited with an error"
"$NODE" -e '
const fs = require("fs");
const { readJsonl } = require(process.argv[1] + "/lib/common");
const work = process.argv[2];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const sent = [];
for (const [n, tag, keys, props] of [["b1", "TagS", "sk-1 sk-2", { color: "blue", note: "hello world" }],
    ["b2", "TagT", "sk-3", { color: "black" }]]) {
    const acks = readJsonl(`${work}/acks-${n}.jsonl`);
    const bodies = fs.readFileSync(`${work}/bodies-${n}.txt`, "utf8").split("\n").filter(Boolean);
    v(acks.length === bodies.length, `sprocket produce acknowledged ${acks.length} of ${bodies.length} (${n})`);
    acks.forEach((a, i) => sent.push({ ...a, body: bodies[i], tag, keys, props }));
}
const got = readJsonl(`${work}/ali-b.jsonl`);
const byOff = new Map();
for (const r of got) byOff.set(r.msgId, (byOff.get(r.msgId) || []).concat([r]));
const bad = [];
for (const s of sent) {
    const rs = byOff.get(s.offsetMsgId) || [];
    if (rs.length !== 1) {
        bad.push(`${s.body.slice(0, 10)}: delivered ${rs.length} times`);
        continue;
    }
    const r = rs[0];
    const why = [];
    if (r.body !== s.body) why.push(`body ${JSON.stringify(r.body).slice(0, 40)} (${r.len} bytes)`);
    if (r.key !== s.keys) why.push(`keys ${r.key}`);
    if (r.tag !== s.tag) why.push(`tag ${r.tag}`);
    for (const [k, val] of Object.entries(s.props)) if (r.props[k] !== val) why.push(`property ${k}=${r.props[k]}`);
    if (r.props.UNIQ_KEY !== s.msgId) why.push(`UNIQ_KEY ${r.props.UNIQ_KEY}`);
    if (r.topic !== "IopB" || r.queueId !== s.queueId || Number(r.queueOffset) !== s.queueOffset) why.push(`at ${r.topic}:${r.queueId}:${r.queueOffset}`);
    if (why.length) bad.push(`${s.body.slice(0, 10)}: ${why.join(", ")}`);
}
v(sent.length === 27 && !bad.length, `ali-ons got each sprocket message once with its body (UTF-8, 6000 bytes compressed), keys, tag, properties and UNIQ_KEY` +
    (bad.length ? ` (${bad.length} bad: ${bad.slice(0, 3).join("; ")})` : ""));
v(got.length === 27, `and nothing else (${got.length} delivered)`);
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" >"$T_WORK/check-b.txt" 2>&1 || fail "analysis (sprocket -> ali-ons): $(head -c 300 "$T_WORK/check-b.txt")"
verdicts "$T_WORK/check-b.txt"

daemon_stop sd
# The clients' stderr: a sanitizer build reports there.
san=$(grep -El "$T_SAN_RE" "$T_WORK"/*.err 2>/dev/null | head -n 3)
[ -z "$san" ] || fail "sanitizer report in client output: $(echo "$san" | tr '\n' ' ')"
t_finish
