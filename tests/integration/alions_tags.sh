#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns, NAME_pid are set by lib.sh (eval)
# alions_tags.sh - tag filtering: TagA, TagB and TagC round robin; a
# consumer subscribed with 'TagA||TagC' gets exactly those.
#
# Asserts: every TagA/TagC message delivered once, no TagB delivered, and
# no TagB message even reached the client in a PULL reply (the broker
# filters; ali-ons would hide a broker that does not), queue order.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init alions_tags

COUNT=${COUNT:-3000}
TOPIC=TagTopic

start_standalone sd
create_topic "$sd_addr" "$TOPIC" 4
wait_route "$sd_ns" "$TOPIC" broker-a
export NAMESRV="$sd_ns" REBALANCE_MS=1000 ROUTE_POLL_MS=2000

TOPIC=$TOPIC COUNT=$COUNT TAGS=TagA,TagB,TagC KEY_PREFIX=tag- OUT=$T_WORK/acks.jsonl MAX_MS=40000 \
    run_client producer 50 produce.js || fail "producer did not get every message acknowledged"

want=$("$NODE" -e '
let n=0;for(const l of require("fs").readFileSync(process.argv[1],"utf8").split("\n"))
{if(!l)continue;const r=JSON.parse(l);if(r.status==="SEND_OK"&&r.tag!=="TagB")n++}console.log(n)' "$T_WORK/acks.jsonl")

# Two seconds of lingering after the last expected key: a TagB delivery
# or a duplicate would show up.
if TOPIC=$TOPIC GROUP=CG_TAGS SUB='TagA||TagC' EXPECT="$want" LINGER_MS=2000 \
    OUT=$T_WORK/c1.jsonl STATUS=$T_WORK/c1.status MAX_MS=50000 run_client consumer 60 consume.js; then
    pass "consumer got $want TagA/TagC messages"
else
    fail "consumer did not get the $want TagA/TagC messages"
fi

check verify --acks "$T_WORK/acks.jsonl" --deliveries "$T_WORK/c1.jsonl" --tags TagA,TagC \
    --status "$T_WORK/c1.status" --no-dup --order --body

# A second group subscribed to TagB only sees only TagB.
wantb=$((COUNT - want))
if TOPIC=$TOPIC GROUP=CG_TAGS_B SUB='TagB' EXPECT="$wantb" LINGER_MS=1000 \
    OUT=$T_WORK/c2.jsonl STATUS=$T_WORK/c2.status MAX_MS=40000 run_client consumerB 50 consume.js; then
    pass "second group got $wantb TagB messages"
else
    fail "second group did not get the $wantb TagB messages"
fi
check verify --acks "$T_WORK/acks.jsonl" --deliveries "$T_WORK/c2.jsonl" --tags TagB \
    --status "$T_WORK/c2.status" --no-dup --order
daemon_stop sd
t_finish
