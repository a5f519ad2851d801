#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# shellcheck disable=SC2016 # the node scripts are single-quoted on purpose
# models_cluster.sh - clustered consumption with `sprocket consume` (the
# libsprocket push consumer) against a standalone daemon, topic of 8
# queues, group of `sprocket consume --json` processes:
#
#   A. two members, stable: after the group settled (probe rounds show
#      the 8 queues split 4 + 4), COUNT_A messages are each delivered
#      exactly once, every queue to one member only, both members busy;
#   B. COUNT_B messages sent 20 ms apart while a third member joins and
#      then the first leaves (SIGTERM): every acknowledged message is
#      delivered at least once, and the queues were rebalanced: in the
#      settled part of each phase ({c1,c2}, {c1,c2,c3}, {c2,c3}) each
#      queue is consumed by one member, all 8 are covered, and each
#      member's set of queues differs from its set in the phase before.
#
# Environment: COUNT_A (400), COUNT_B (900), SPROCKET, plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init models_cluster
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"

COUNT_A=${COUNT_A:-400}
COUNT_B=${COUNT_B:-900}
TOPIC=ModelCluster
GROUP=CG_MODEL_CLUSTER

start_standalone sd
create_topic "$sd_addr" "$TOPIC" 8
wait_route "$sd_ns" "$TOPIC" broker-a
NS=$sd_ns

now_us() {
    date +%s%6N
}

# member NAME: a `sprocket consume` member of the group in the
# background; deliveries in $T_WORK/NAME.jsonl, pid in NAME_pid.
member() {
    "$SPROCKET" consume -n "$NS" -t "$TOPIC" -g "$GROUP" --from first --json \
        --instance "$1" --duration 130 >"$T_WORK/$1.jsonl" 2>"$T_WORK/$1.err" &
    eval "$1_pid=$!"
    t_track $!
}

# leave NAME: SIGTERM (the member commits, unregisters and exits 0).
leave() {
    eval "lv_pid=\$$1_pid"
    kill -TERM "$lv_pid"
    wait "$lv_pid" || fail "member $1 exited with status $? on SIGTERM: $(tail -n 2 "$T_WORK/$1.err")"
}

# send TAG FIRST COUNT [ARGS...]: bodies TAG-FIRST.. through `sprocket
# produce --json`, acknowledgements appended to $T_WORK/acks-TAG.jsonl.
send() {
    s_tag=$1
    s_first=$2
    s_n=$3
    shift 3
    seq "$s_first" $((s_first + s_n - 1)) | sed "s/^/$s_tag-/" |
        "$SPROCKET" produce -n "$NS" -t "$TOPIC" --tags "$s_tag" --json "$@" \
            >>"$T_WORK/acks-$s_tag.jsonl" 2>>"$T_WORK/produce.err"
}

# delivered TAG FILES: distinct msgIds of tag TAG in the comma-separated
# delivery files.
delivered() {
    "$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const ids = new Set();
for (const f of process.argv[3].split(","))
    for (const r of readJsonl(f)) if (r.tags === process.argv[2]) ids.add(r.msgId);
console.log(ids.size);' "$CLIENTS" "$1" "$2"
}

# wait_delivered TAG FILES N TIMEOUT_S
wait_delivered_n() {
    wd_end=$(($(date +%s) + $4))
    while :; do
        wd_n=$(delivered "$1" "$2")
        [ "$wd_n" -ge "$3" ] && return 0
        if [ "$(date +%s)" -ge "$wd_end" ]; then
            t_log "only $wd_n/$3 messages of tag $1 delivered after $4 s"
            return 1
        fi
        sleep 0.3
    done
}

# partition TAG FILES NMEMBERS: prints "ok SPLIT" when the deliveries of
# tag TAG show each of the 8 queues consumed by exactly one member and
# NMEMBERS members busy, else "no WHY".
partition() {
    "$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const [tag, files, n] = [process.argv[2], process.argv[3].split(","), Number(process.argv[4])];
const owners = new Map();
for (const f of files)
    for (const r of readJsonl(f)) {
        if (r.tags !== tag) continue;
        if (!owners.has(r.queueId)) owners.set(r.queueId, new Set());
        owners.get(r.queueId).add(r.client);
    }
const shared = [...owners].filter(([, s]) => s.size > 1).map(([q]) => q);
const members = new Set([...owners.values()].flatMap((s) => [...s]));
if (owners.size !== 8 || shared.length || members.size !== n)
    console.log(`no ${owners.size} queues, shared ${JSON.stringify(shared)}, ${members.size} members`);
else
    console.log("ok " + [...members].sort().map((m) => m + ":" +
        [...owners].filter(([, s]) => s.has(m)).map(([q]) => q).sort().join("")).join(" "));
' "$CLIENTS" "$1" "$2" "$3"
}

# settle NMEMBERS FILES: probe rounds (16 messages, 2 per queue) until two
# rounds in a row show the same clean split among NMEMBERS members.
settle() {
    st_prev=""
    st_i=0
    while [ $st_i -lt 15 ]; do
        st_i=$((st_i + 1))
        st_tag=Probe$PROBE
        PROBE=$((PROBE + 1))
        send "$st_tag" 0 16 || die "probe send failed: $(tail -n 3 "$T_WORK/produce.err")"
        wait_delivered_n "$st_tag" "$2" 16 15 || continue
        sleep 0.2
        st_res=$(partition "$st_tag" "$2" "$1")
        t_log "probe round $st_i: $st_res"
        case $st_res in
        ok*)
            if [ "$st_res" = "$st_prev" ]; then
                SPLIT=${st_res#ok }
                return 0
            fi
            st_prev=$st_res
            ;;
        *) st_prev="" ;;
        esac
        sleep 0.5
    done
    return 1
}
PROBE=0

# ---------------------------------------------------------------- A
member c1
member c2
settle 2 "$T_WORK/c1.jsonl,$T_WORK/c2.jsonl" || die "the group of two did not settle"
pass "group of two settled: $SPLIT"

send A 0 "$COUNT_A" || fail "produce of $COUNT_A messages failed: $(tail -n 3 "$T_WORK/produce.err")"
wait_delivered_n A "$T_WORK/c1.jsonl,$T_WORK/c2.jsonl" "$COUNT_A" 30
sleep 1 # duplicates, if any, arrive
"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const [acksF, files] = [process.argv[2], process.argv[3].split(",")];
const acked = new Set(readJsonl(acksF).map((r) => r.msgId));
const seen = new Map(), owners = new Map(), per = new Map(), bad = [];
for (const f of files)
    for (const r of readJsonl(f)) {
        if (r.tags !== "A") continue;
        seen.set(r.msgId, (seen.get(r.msgId) || 0) + 1);
        if (!owners.has(r.queueId)) owners.set(r.queueId, new Set());
        owners.get(r.queueId).add(r.client);
        per.set(r.client, (per.get(r.client) || 0) + 1);
        if (!/^A-[0-9]+$/.test(r.body)) bad.push(r.body);
    }
const missing = [...acked].filter((id) => !seen.has(id));
const dup = [...seen].filter(([, n]) => n > 1).map(([id, n]) => id + " x" + n);
const phantom = [...seen.keys()].filter((id) => !acked.has(id));
const shared = [...owners].filter(([, s]) => s.size > 1).map(([q, s]) => q + ":" + [...s]);
const out = [];
out.push((acked.size === Number(process.argv[4]) ? "PASS" : "FAIL") +
    ` ${acked.size} of ${process.argv[4]} sends acknowledged`);
out.push((missing.length ? "FAIL" : "PASS") + ` every acknowledged message delivered (${missing.length} missing: ${missing.slice(0, 3)})`);
out.push((dup.length ? "FAIL" : "PASS") + ` no message delivered twice in a stable group (${dup.length}: ${dup.slice(0, 3)})`);
out.push((phantom.length || bad.length ? "FAIL" : "PASS") + ` nothing delivered that was not sent (${phantom.length} unknown ids, ${bad.length} bad bodies)`);
out.push((shared.length ? "FAIL" : "PASS") + ` each queue consumed by one member (${shared.length} shared: ${shared.slice(0, 3)})`);
out.push((per.size === 2 ? "PASS" : "FAIL") + ` both members consumed: ${[...per].map(([c, n]) => c + " " + n).join(", ")}`);
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK/acks-A.jsonl" "$T_WORK/c1.jsonl,$T_WORK/c2.jsonl" "$COUNT_A" >"$T_WORK/check-a.txt" 2>&1 ||
    fail "analysis of part A failed: $(head -c 300 "$T_WORK/check-a.txt")"
while IFS= read -r l; do
    case $l in
    PASS*) pass "A: ${l#PASS }" ;;
    FAIL*) fail "A: ${l#FAIL }" ;;
    *) fail "A: $l" ;;
    esac
done <"$T_WORK/check-a.txt"

# ---------------------------------------------------------------- B
# 900 sends 20 ms apart (about 20 s): c3 joins at ~6 s, c1 leaves at ~12 s.
send B 0 "$COUNT_B" --interval-ms 20 &
prod_pid=$!
t_track $prod_pid
sleep 6
t_join=$(now_us)
member c3
sleep 6
t_leave0=$(now_us)
leave c1
t_leave1=$(now_us)
wait $prod_pid || fail "produce of $COUNT_B messages failed: $(tail -n 3 "$T_WORK/produce.err")"
t_end=$(now_us)
t_log "c3 joined at +$(((t_join - t_join) / 1000)) ms; c1 left between +$(((t_leave0 - t_join) / 1000)) and +$(((t_leave1 - t_join) / 1000)) ms; sends ended at +$(((t_end - t_join) / 1000)) ms"
files_b=$T_WORK/c1.jsonl,$T_WORK/c2.jsonl,$T_WORK/c3.jsonl
acked_b=$(wc -l <"$T_WORK/acks-B.jsonl")
wait_delivered_n B "$files_b" "$acked_b" 40
sleep 1
leave c2
leave c3

# Phases by the listener's start time t0, each without its first 2 s
# (the members learn of a change and hand queues over meanwhile).
"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const [acksF, files] = [process.argv[2], process.argv[3].split(",")];
const [tJoin, tLeave0, tLeave1, tEnd] = process.argv.slice(4, 8).map(Number);
const margin = 2e6;
const recs = files.flatMap((f) => readJsonl(f)).filter((r) => r.tags === "B");
const acked = new Set(readJsonl(acksF).map((r) => r.msgId));
const seen = new Map();
for (const r of recs) seen.set(r.msgId, (seen.get(r.msgId) || 0) + 1);
const missing = [...acked].filter((id) => !seen.has(id));
const dups = [...seen.values()].filter((n) => n > 1).length;
const out = [];
out.push((acked.size === Number(process.argv[8]) ? "PASS" : "FAIL") + ` ${acked.size} of ${process.argv[8]} sends acknowledged`);
out.push((missing.length ? "FAIL" : "PASS") +
    ` every acknowledged message delivered at least once across the changes (${missing.length} missing, ${dups} delivered more than once)`);
const phases = [
    ["c1+c2", 0, tJoin, 2],
    ["c1+c2+c3", tJoin + margin, tLeave0, 3],
    ["c2+c3", tLeave1 + margin, tEnd, 2],
];
const sets = [];
for (const [name, from, to, n] of phases) {
    const owners = new Map();
    for (const r of recs) {
        if (r.t0 < from || r.t0 >= to) continue;
        if (!owners.has(r.queueId)) owners.set(r.queueId, new Set());
        owners.get(r.queueId).add(r.client.replace(/.*@/, ""));
    }
    const shared = [...owners].filter(([, s]) => s.size > 1).map(([q, s]) => q + ":" + [...s].join("/"));
    const byMember = {};
    for (const [q, s] of owners) for (const m of s) (byMember[m] = byMember[m] || []).push(q);
    for (const m in byMember) byMember[m] = byMember[m].sort((a, b) => a - b).join(",");
    const desc = Object.keys(byMember).sort().map((m) => `${m}={${byMember[m]}}`).join(" ");
    const ok = owners.size === 8 && !shared.length && Object.keys(byMember).length === n;
    out.push((ok ? "PASS" : "FAIL") + ` phase ${name}: ${owners.size} queues, ${n} members expected, ${desc}` +
        (shared.length ? `, shared ${shared.join(" ")}` : ""));
    sets.push(byMember);
}
for (const [m, a, b] of [["c1", 0, 1], ["c2", 0, 1], ["c2", 1, 2], ["c3", 1, 2]]) {
    const x = sets[a][m], y = sets[b][m];
    out.push((x !== undefined && y !== undefined && x !== y ? "PASS" : "FAIL") +
        ` ${m} rebalanced from ${phases[a][0]} to ${phases[b][0]}: {${x}} -> {${y}}`);
}
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK/acks-B.jsonl" "$files_b" "$t_join" "$t_leave0" "$t_leave1" "$t_end" "$COUNT_B" \
    >"$T_WORK/check-b.txt" 2>&1 || fail "analysis of part B failed: $(head -c 300 "$T_WORK/check-b.txt")"
while IFS= read -r l; do
    case $l in
    PASS*) pass "B: ${l#PASS }" ;;
    FAIL*) fail "B: ${l#FAIL }" ;;
    *) fail "B: $l" ;;
    esac
done <"$T_WORK/check-b.txt"

daemon_stop sd
# The clients' stderr: a sanitizer build reports there.
san=$(grep -El "$T_SAN_RE" "$T_WORK"/*.err 2>/dev/null | head -n 3)
[ -z "$san" ] || fail "sanitizer report in client output: $(echo "$san" | tr '\n' ' ')"
t_finish
