#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# shellcheck disable=SC2016 # the node scripts are single-quoted on purpose
# models_broadcast.sh - broadcasting with `sprocket consume --broadcast`
# against a standalone daemon: three members (b1, b2, b3) of one group,
# offsets kept under one --offset-dir, each member with its own
# --instance (its client id names its offsets file).
#
# Asserts: every member gets every one of the first FIRST messages once;
# b2 is stopped (SIGTERM) and SECOND more are sent, which b1 and b3 get;
# b2 restarted with the same --instance and --offset-dir (and --from
# first, which would replay everything if its offsets were lost) gets
# exactly the SECOND new ones; its offsets file exists.
#
# Environment: FIRST (40), SECOND (30), SPROCKET, plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init models_broadcast
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"
FIRST=${FIRST:-40}
SECOND=${SECOND:-30}
TOPIC=ModelBroadcast
GROUP=CG_MODEL_BCAST
OFFDIR=$T_WORK/offsets

start_standalone sd
create_topic "$sd_addr" "$TOPIC" 4
wait_route "$sd_ns" "$TOPIC" broker-a
NS=$sd_ns

# member NAME OUT: a broadcasting member in the background.
member() {
    : >"$T_WORK/$2.jsonl"
    "$SPROCKET" consume -n "$NS" -t "$TOPIC" -g "$GROUP" --broadcast --from first --json \
        --instance "$1" --offset-dir "$OFFDIR" --duration 100 \
        >"$T_WORK/$2.jsonl" 2>"$T_WORK/$2.err" &
    eval "$1_pid=$!"
    t_track $!
}

leave() {
    eval "lv_pid=\$$1_pid"
    kill -TERM "$lv_pid"
    wait "$lv_pid" || fail "member $1 exited with status $? on SIGTERM: $(tail -n 2 "$T_WORK/$1.err")"
}

# wait_lines N TIMEOUT_S FILE...: until every FILE has N lines.
wait_lines() {
    wl_n=$1
    wl_end=$(($(date +%s) + $2))
    shift 2
    for wl_f in "$@"; do
        while [ "$(wc -l <"$wl_f")" -lt "$wl_n" ]; do
            if [ "$(date +%s)" -ge "$wl_end" ]; then
                t_log "$(basename "$wl_f"): $(wc -l <"$wl_f") of $wl_n messages"
                return 1
            fi
            sleep 0.2
        done
    done
}

send() {
    seq 0 $(($2 - 1)) | sed "s/^/$1-/" |
        "$SPROCKET" produce -n "$NS" -t "$TOPIC" --json >>"$T_WORK/acks-$1.jsonl" 2>>"$T_WORK/produce.err" ||
        fail "produce of $2 messages exited with status $?: $(tail -n 2 "$T_WORK/produce.err")"
}

member b1 b1
member b2 b2
member b3 b3
sleep 1
send p1 "$FIRST"
wait_lines "$FIRST" 30 "$T_WORK/b1.jsonl" "$T_WORK/b2.jsonl" "$T_WORK/b3.jsonl"
sleep 1
leave b2
send p2 "$SECOND"
wait_lines $((FIRST + SECOND)) 30 "$T_WORK/b1.jsonl" "$T_WORK/b3.jsonl"
member b2 b2again
wait_lines "$SECOND" 30 "$T_WORK/b2again.jsonl"
sleep 2 # anything old it would replay arrives meanwhile
leave b1
leave b2
leave b3

if [ -f "$OFFDIR/127.0.0.1@b2/$GROUP/offsets.json" ]; then
    pass "b2 kept its offsets in $OFFDIR/127.0.0.1@b2/$GROUP/offsets.json"
else
    fail "no offsets file for b2 under $OFFDIR: $(find "$OFFDIR" -type f 2>/dev/null | tr '\n' ' ')"
fi

"$NODE" -e '
const { readJsonl } = require(process.argv[1] + "/lib/common");
const [work, first, second] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const out = [];
const v = (ok, what) => out.push((ok ? "PASS " : "FAIL ") + what);
const want = (p, n) => Array.from({ length: n }, (_, i) => `${p}-${i}`);
const acks = [...readJsonl(`${work}/acks-p1.jsonl`), ...readJsonl(`${work}/acks-p2.jsonl`)];
v(acks.length === first + second, `${acks.length} of ${first + second} sends acknowledged`);
const same = (name, exp) => {
    const got = readJsonl(`${work}/${name}.jsonl`);
    const b = got.map((r) => r.body).sort().join(",");
    const ok = b === exp.sort().join(",");
    v(ok, `${name}: exactly ${exp.length} messages, each once (got ${got.length}` +
        (ok ? ")" : `: ${got.map((r) => r.body).slice(0, 40)})`));
    return got;
};
same("b1", [...want("p1", first), ...want("p2", second)]);
same("b3", [...want("p1", first), ...want("p2", second)]);
same("b2", want("p1", first));
const again = same("b2again", want("p2", second));
v(again.every((r) => r.client === "127.0.0.1@b2"), "the restarted b2 has the same client id");
console.log(out.join("\n"));
' "$CLIENTS" "$T_WORK" "$FIRST" "$SECOND" >"$T_WORK/check.txt" 2>&1 ||
    fail "analysis failed: $(head -c 400 "$T_WORK/check.txt")"
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
