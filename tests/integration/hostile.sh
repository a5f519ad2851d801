#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# hostile.sh - hostile input on the broker port (tests/clients/rawproto.js):
# malformed frames, oversized length words, unknown request codes, half
# frames, a client that pipelines pulls and never reads, a burst of
# connections, while a well-behaved client keeps sending
# SEND_MESSAGE_V2 and must keep getting replies. Then the daemon must
# still be alive, serve ali-ons normally, and exit cleanly.
#
# Environment: SCENARIOS, PULLS, HOLD_MS, MAX_RSS_MB (see rawproto.js).
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init hostile

TOPIC=HostileTopic
start_standalone sd
create_topic "$sd_addr" "$TOPIC" 4
wait_route "$sd_ns" "$TOPIC" broker-a
export NAMESRV="$sd_ns" REBALANCE_MS=1000 ROUTE_POLL_MS=2000

# Messages for the slow reader's pulls to return.
TOPIC=$TOPIC COUNT=2000 BODY_SIZE=1000 KEY_PREFIX=pre- OUT=$T_WORK/pre.jsonl MAX_MS=30000 \
    run_client preload 40 produce.js || fail "preload producer failed"

BROKER=$sd_addr TOPIC=$TOPIC DAEMON_PID=$(daemon_pid sd) \
    timeout -k 5 80 "$NODE" "$CLIENTS/rawproto.js" >"$T_WORK/rawproto.out" 2>&1
raw_rc=$?
while IFS= read -r line; do
    case $line in
    PASS*) echo "PASS $T_NAME: ${line#PASS }" ;;
    FAIL*) fail "${line#FAIL }" ;;
    *) echo "[$T_NAME] $line" ;;
    esac
done <"$T_WORK/rawproto.out"
[ "$raw_rc" -eq 0 ] || grep -q '^FAIL' "$T_WORK/rawproto.out" || fail "rawproto.js exited with status $raw_rc"

daemon_alive sd || die "daemon died under hostile input"
pass "daemon alive after hostile input"

# Normal service afterwards.
create_topic "$sd_addr" AfterTopic 4
wait_route "$sd_ns" AfterTopic broker-a
TOPIC=AfterTopic COUNT=500 TAGS=TagA,TagB KEY_PREFIX=after- OUT=$T_WORK/acks.jsonl MAX_MS=20000 \
    run_client producer 30 produce.js || fail "producer failed after hostile input"
TOPIC=AfterTopic GROUP=CG_AFTER EXPECT=500 LINGER_MS=500 OUT=$T_WORK/c1.jsonl MAX_MS=30000 \
    run_client consumer 40 consume.js || fail "consumer failed after hostile input"
check verify --acks "$T_WORK/acks.jsonl" --deliveries "$T_WORK/c1.jsonl" --expect 500 --no-dup --order --body
daemon_stop sd
t_finish
