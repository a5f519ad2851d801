#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# alions_basic.sh - 10,000 keyed, tagged messages through a standalone
# daemon to a consumer group of two ali-ons processes.
#
# Asserts: every acknowledged message is delivered, none twice (the group
# is stable before the first send), each queue in offset order, each queue
# owned by one process, both processes got a share, bodies intact, and
# the daemon exits cleanly on SIGTERM.
#
# Environment: COUNT (10000), QUEUES (8), plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init alions_basic

COUNT=${COUNT:-10000}
QUEUES=${QUEUES:-8}
TOPIC=BasicTopic
GROUP=CG_BASIC

start_standalone sd
create_topic "$sd_addr" "$TOPIC" "$QUEUES"
wait_route "$sd_ns" "$TOPIC" broker-a

# Fast rebalancing so the group settles before the first message.
export NAMESRV="$sd_ns" REBALANCE_MS=1000 ROUTE_POLL_MS=2000
for c in c1 c2; do
    TOPIC=$TOPIC GROUP=$GROUP OUT=$T_WORK/$c.jsonl STATUS=$T_WORK/$c.status MAX_MS=85000 \
        bg_client "$c" 90 consume.js
done

# Stable membership: the two processes own disjoint halves of the queues.
settled=0
i=0
while [ "$i" -lt 60 ]; do
    n1=$("$NODE" -e 'try{console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).queues.length)}catch(e){console.log(0)}' "$T_WORK/c1.status")
    n2=$("$NODE" -e 'try{console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).queues.length)}catch(e){console.log(0)}' "$T_WORK/c2.status")
    if [ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] && [ $((n1 + n2)) -eq "$QUEUES" ]; then
        settled=1
        break
    fi
    sleep 0.5
    i=$((i + 1))
done
if [ "$settled" -eq 1 ]; then
    pass "consumer group settled: $n1 + $n2 queues"
else
    die "consumer group did not settle (queues $n1 + $n2, want $QUEUES)"
fi
# One more rebalance round, so both agree on the membership.
sleep 2

if TOPIC=$TOPIC COUNT=$COUNT TAGS=TagA,TagB,TagC KEY_PREFIX=basic- BODY_SIZE=200 \
    OUT=$T_WORK/acks.jsonl MAX_MS=60000 run_client producer 70 produce.js; then
    pass "producer: $COUNT messages acknowledged"
else
    fail "producer did not get every message acknowledged"
fi

acked=$(wc -l <"$T_WORK/acks.jsonl")
if wait_keys "$T_WORK/c1.jsonl,$T_WORK/c2.jsonl" "$acked" 60; then
    pass "all $acked keys delivered"
fi
sleep 1 # late duplicates, if any, get recorded
stop_client c1 || fail "consumer c1 exited with an error"
stop_client c2 || fail "consumer c2 exited with an error"

check verify --acks "$T_WORK/acks.jsonl" --deliveries "$T_WORK/c1.jsonl,$T_WORK/c2.jsonl" \
    --expect "$COUNT" --no-dup --no-phantom --order --exclusive --body --min-per-process 1
daemon_stop sd
t_finish
