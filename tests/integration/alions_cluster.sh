#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# alions_cluster.sh - `sprocketd namesrv` and two `sprocketd broker`s
# (broker-a and broker-b, one cluster). The topic is created on both
# brokers with UPDATE_AND_CREATE_TOPIC (ali-ons has no TBW102 fallback),
# and the name server must then route it to both.
#
# Asserts: the route lists both brokers, the producer's sends are
# acknowledged by both, and a consumer group of two processes reads every
# message from both, once, in queue order; all three daemons exit cleanly.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init alions_cluster

COUNT=${COUNT:-4000}
TOPIC=ClusterTopic
GROUP=CG_CLUSTER

start_namesrv ns
start_broker ba "$ns_addr" broker-a
start_broker bb "$ns_addr" broker-b
create_topic "$ba_addr" "$TOPIC" 4
create_topic "$bb_addr" "$TOPIC" 4
wait_route "$ns_addr" "$TOPIC" broker-a,broker-b
pass "route of $TOPIC lists broker-a and broker-b"

export NAMESRV="$ns_addr" REBALANCE_MS=1000 ROUTE_POLL_MS=2000
for c in c1 c2; do
    TOPIC=$TOPIC GROUP=$GROUP OUT=$T_WORK/$c.jsonl STATUS=$T_WORK/$c.status MAX_MS=80000 \
        bg_client "$c" 85 consume.js
done
i=0
while [ "$i" -lt 60 ]; do
    n1=$("$NODE" -e 'try{console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).queues.length)}catch(e){console.log(0)}' "$T_WORK/c1.status")
    n2=$("$NODE" -e 'try{console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).queues.length)}catch(e){console.log(0)}' "$T_WORK/c2.status")
    [ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] && [ $((n1 + n2)) -eq 8 ] && break
    sleep 0.5
    i=$((i + 1))
done
if [ $((n1 + n2)) -eq 8 ]; then
    pass "consumer group settled over both brokers: $n1 + $n2 queues"
else
    die "consumer group did not settle (queues $n1 + $n2, want 8)"
fi
sleep 2

TOPIC=$TOPIC COUNT=$COUNT TAGS=TagA,TagB KEY_PREFIX=cl- OUT=$T_WORK/acks.jsonl MAX_MS=40000 \
    run_client producer 50 produce.js || fail "producer did not get every message acknowledged"
acked=$(wc -l <"$T_WORK/acks.jsonl")
wait_keys "$T_WORK/c1.jsonl,$T_WORK/c2.jsonl" "$acked" 40 && pass "all $acked keys delivered"
sleep 1
stop_client c1 || fail "consumer c1 exited with an error"
stop_client c2 || fail "consumer c2 exited with an error"

check verify --acks "$T_WORK/acks.jsonl" --deliveries "$T_WORK/c1.jsonl,$T_WORK/c2.jsonl" \
    --expect "$COUNT" --brokers broker-a,broker-b --no-dup --no-phantom --order --exclusive --body
daemon_stop ba
daemon_stop bb
daemon_stop ns
t_finish
