#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# alions_kill9.sh - kill -9 of a SYNC_FLUSH standalone daemon in the middle
# of a produce/consume stream, restart on the same directory and ports.
#
# The producer (ALLOW_FAIL=1: failed sends are retried until acknowledged)
# keeps going across the crash. Consumer c1 consumes until the crash and
# dies with the broker (kill -9 too, so only offsets the broker had
# committed survive); after the restart c2, same group, finishes.
#
# Asserts: the producer was acknowledged again after the restart; every
# acknowledged message is delivered (by c1 or c2); per-queue order per
# process; c2 resumed from the committed offsets: everything it
# re-delivered had been consumed by c1 within WINDOW_MS (13000: ali-ons
# commits every 5 s, the broker persists offsets every 5 s, plus slack)
# of the kill, nothing older, so it did not restart from 0.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init alions_kill9

COUNT=${COUNT:-12000}
RATE=${RATE:-400}
KILL_AFTER=${KILL_AFTER:-22}
WINDOW_MS=${WINDOW_MS:-13000}
TOPIC=CrashTopic
GROUP=CG_CRASH

start_standalone sd --flushDiskType=SYNC_FLUSH
create_topic "$sd_addr" "$TOPIC" 4
wait_route "$sd_ns" "$TOPIC" broker-a
export NAMESRV="$sd_ns" REBALANCE_MS=1000 ROUTE_POLL_MS=2000

TOPIC=$TOPIC GROUP=$GROUP OUT=$T_WORK/c1.jsonl STATUS=$T_WORK/c1.status MAX_MS=80000 \
    bg_client c1 85 consume.js
sleep 2
TOPIC=$TOPIC COUNT=$COUNT RATE=$RATE CONCURRENCY=16 ALLOW_FAIL=1 KEY_PREFIX=crash- \
    OUT=$T_WORK/acks.jsonl MAX_MS=75000 bg_client producer 80 produce.js

sleep "$KILL_AFTER"
kill_at=$(now_ms)
daemon_kill9 sd
kill9_client c1
t_log "killed the daemon and c1 at $kill_at after $(wc -l <"$T_WORK/acks.jsonl") acks"
sleep 1
start_standalone sd --flushDiskType=SYNC_FLUSH
pass "daemon restarted on the same store after kill -9"

if wait_client producer; then
    pass "producer finished across the crash"
else
    fail "producer failed"
fi
acked=$(wc -l <"$T_WORK/acks.jsonl")

TOPIC=$TOPIC GROUP=$GROUP OUT=$T_WORK/c2.jsonl STATUS=$T_WORK/c2.status MAX_MS=60000 \
    bg_client c2 65 consume.js
if wait_delivered "$T_WORK/acks.jsonl" "$T_WORK/c1.jsonl,$T_WORK/c2.jsonl" 50; then
    pass "every one of $acked acknowledged messages delivered"
fi
sleep 1
stop_client c2 || fail "consumer c2 exited with an error"

check verify --acks "$T_WORK/acks.jsonl" --deliveries "$T_WORK/c1.jsonl,$T_WORK/c2.jsonl" \
    --acked-after "$kill_at" --order --body
check resume --first "$T_WORK/c1.jsonl" --second "$T_WORK/c2.jsonl" --kill-at "$kill_at" --window "$WINDOW_MS"
daemon_stop sd
t_finish
