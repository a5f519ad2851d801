#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# alions_retry_dlq.sh - a handler that always throws: ali-ons sends each
# message back (CONSUMER_SEND_MSG_BACK, delayLevel 0, maxReconsumeTimes 2),
# the broker redelivers it through %RETRY%<group> after delay level
# 3 + reconsumeTimes (1 s with the test's messageDelayLevel), and after
# the last attempt moves it to %DLQ%<group>, where a consumer of another
# group reads it.
#
# Asserts: every message delivered with reconsumeTimes 0, 1 and 2 (once
# each), never beyond, retries from %RETRY%CG_RETRY with the original
# topic restored (RETRY_TOPIC set by the broker), attempts at least 0.9 s
# apart, and every message in %DLQ%CG_RETRY once.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init alions_retry_dlq

COUNT=${COUNT:-20}
MAXRC=${MAX_RECONSUME:-2}
TOPIC=RetryTopic
GROUP=CG_RETRY
DLQ_TOPIC="%DLQ%$GROUP"

start_standalone sd
create_topic "$sd_addr" "$TOPIC" 4
wait_route "$sd_ns" "$TOPIC" broker-a
export NAMESRV="$sd_ns" REBALANCE_MS=1000 ROUTE_POLL_MS=1000

TOPIC=$TOPIC COUNT=$COUNT TAGS=TagR KEY_PREFIX=retry- OUT=$T_WORK/acks.jsonl MAX_MS=20000 \
    run_client producer 30 produce.js || fail "producer did not get every message acknowledged"

TOPIC=$TOPIC GROUP=$GROUP FAIL_MODE=always MAX_RECONSUME=$MAXRC OUT=$T_WORK/fail.jsonl \
    STATUS=$T_WORK/fail.status MAX_MS=80000 bg_client failing 85 consume.js

# The DLQ topic appears when the first message dies; the consumer keeps
# polling the route until then.
if TOPIC=$DLQ_TOPIC GROUP=CG_DLQ_READER EXPECT="$COUNT" LINGER_MS=1000 \
    OUT=$T_WORK/dlq.jsonl STATUS=$T_WORK/dlq.status MAX_MS=70000 run_client dlq 75 consume.js; then
    pass "all $COUNT messages read from %DLQ%$GROUP"
else
    fail "not every message reached %DLQ%$GROUP"
fi
sleep 1
stop_client failing || true

check retry --acks "$T_WORK/acks.jsonl" --fail "$T_WORK/fail.jsonl" --dlq "$T_WORK/dlq.jsonl" \
    --max-reconsume "$MAXRC" --min-gap-ms 900 --group "$GROUP" --topic "$TOPIC"
daemon_stop sd
t_finish
