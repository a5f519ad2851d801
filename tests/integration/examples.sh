#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns are set by lib.sh (eval)
# examples.sh - every program in examples/ against a standalone daemon,
# each producer checked through a consumer example:
#   - producer (sync, async, oneway) -> push_consumer: the 11 bodies, each
#     once; lite_pull_consumer: the same 11 (poll), the first one again
#     within 3 s of a seek, and a second run of its group gets nothing
#     (commit);
#   - batch_producer 16 -> push_consumer: all 16 in one queue with the
#     consecutive offsets the producer printed, keys and tags intact;
#   - ordered_producer 3 keys x 10 -> each key in one queue with growing
#     offsets; orderly_consumer: all 30, each key's seq 0..9 in order;
#   - delay_producer level 2 (5 s) -> push_consumer gets it >= 5 s after
#     its birth;
#   - two broadcast_consumer members -> each gets all 5 messages;
#   - transaction_producer -> its check-back came; a consumer gets
#     "tx commit" and "tx unknown" (committed by the check), never
#     "tx rollback".
#
# Environment: EXAMPLES (directory of the binaries, default the examples/
# next to $SPROCKETD), plus lib.sh's.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init examples
EXAMPLES=${EXAMPLES:-$(dirname "$SPROCKETD")/examples}
for e in producer batch_producer ordered_producer transaction_producer delay_producer \
    push_consumer orderly_consumer broadcast_consumer lite_pull_consumer; do
    [ -x "$EXAMPLES/$e" ] || die "$EXAMPLES/$e not built (make $EXAMPLES/$e)"
done

# ex NAME TIMEOUT_S PROGRAM ARGS...: runs an example, output in
# $T_WORK/NAME.out (stderr in NAME.err); returns its status.
ex() {
    ex_name=$1
    ex_to=$2
    shift 2
    ex_prog=$1
    shift
    timeout -k 5 "$ex_to" "$EXAMPLES/$ex_prog" "$@" >"$T_WORK/$ex_name.out" 2>"$T_WORK/$ex_name.err"
}

# bodies FILE PREFIX: the bodies of FILE's lines starting with PREFIX
# (the text after the last ": "), sorted.
bodies() {
    grep "^$2" "$1" | sed 's/.*: //' | sort
}

# same_lines NAME GOT WANT: passes when the two texts are equal.
same_lines() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1: got [$(echo "$2" | tr '\n' '|')] want [$(echo "$3" | tr '\n' '|')]"
    fi
}

# Real delay levels (level 2 is 5 s) and quick transaction check-backs;
# an older daemon without transactions still runs the other examples.
tx_ok=1
if ! "$SPROCKETD" --help-config 2>&1 | grep -q '^transactionCheckInterval '; then
    tx_ok=0
fi
if [ $tx_ok -eq 1 ]; then
    start_standalone sd "--messageDelayLevel=1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h" \
        --transactionCheckInterval=1000 --transactionTimeOut=1000 --transactionCheckMax=5
else
    start_standalone sd "--messageDelayLevel=1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
fi
NS=$sd_ns
for t in ExPlain ExBatch ExOrder ExDelay ExBcast ExTx; do
    create_topic "$sd_addr" "$t" 4
done
wait_route "$NS" ExTx broker-a

# ---- producer -> push_consumer, lite_pull_consumer
if ex producer 30 producer "$NS" ExPlain 5; then
    pass "producer: 5 sync, 5 async and 1 oneway sends"
else
    fail "producer exited with status $?: $(head -c 300 "$T_WORK/producer.err")"
fi
want=$(for i in 0 1 2 3 4; do echo "hello $i"; echo "async $i"; done; echo oneway)
want=$(echo "$want" | sort)
ex push 30 push_consumer "$NS" ExPlain ex_push 11 20 || fail "push_consumer exited with status $?"
same_lines "push_consumer got every body of producer once" "$(bodies "$T_WORK/push.out" received)" "$want"

ex lite 60 lite_pull_consumer "$NS" ExPlain ex_lite 11 20 || fail "lite_pull_consumer exited with status $?"
same_lines "lite_pull_consumer polled every body once" "$(bodies "$T_WORK/lite.out" polled)" "$want"
# "The next poll returns <q>'s messages from <offset>": the re-read must
# not wait for the long-polling pull that was in flight (15 s).
ms=$(sed -n 's/^first message read again \([0-9]*\) ms after the seek$/\1/p' "$T_WORK/lite.out")
if [ -n "$ms" ] && [ "$ms" -lt 3000 ]; then
    pass "lite_pull_consumer: seek re-read the first message after $ms ms"
else
    fail "lite_pull_consumer: re-read after the seek took [${ms:-forever}] ms (want < 3000): $(grep -E '^(seek|first)' "$T_WORK/lite.out" | tr '\n' '|')"
fi
ex lite2 30 lite_pull_consumer "$NS" ExPlain ex_lite 1 4
n=$(grep -c '^polled' "$T_WORK/lite2.out")
if [ "$n" -eq 0 ]; then
    pass "lite_pull_consumer: a second run of the group polls nothing (offsets committed)"
else
    fail "lite_pull_consumer: a second run of the group polled $n old message(s)"
fi

# ---- batch_producer -> push_consumer
ex batch 30 batch_producer "$NS" ExBatch 16 || fail "batch_producer exited with status $?: $(head -c 300 "$T_WORK/batch.err")"
line=$(grep '^batch of 16 stored in queue' "$T_WORK/batch.out")
bq=$(echo "$line" | sed -n 's/.* queue \([^ ,]*\), offsets \([0-9]*\)\.\.\([0-9]*\)$/\1/p')
b0=$(echo "$line" | sed -n 's/.* offsets \([0-9]*\)\.\.\([0-9]*\)$/\1/p')
b1=$(echo "$line" | sed -n 's/.* offsets \([0-9]*\)\.\.\([0-9]*\)$/\2/p')
if [ -n "$b0" ] && [ -n "$b1" ] && [ $((b1 - b0)) -eq 15 ]; then
    pass "batch_producer: 16 messages in $bq, offsets $b0..$b1"
else
    fail "batch_producer printed no valid batch line: [$line]"
    bq=none b0=0
fi
ex batchc 30 push_consumer "$NS" ExBatch ex_batch 16 20 || fail "push_consumer (batch) exited with status $?"
# Each delivery must be "batch message I" with key batch-I, the tag of
# I's parity, and offset b0 + I in the batch's queue.
bad=$(awk -v q="$bq" -v b0="$b0" '
/^received / {
    n++
    body = $0; sub(/.*: /, "", body)
    split(body, w, " "); i = w[3]
    want = sprintf("queue %s offset %d tags=%s keys=batch-%d ", q, b0 + i, (i % 2) ? "TagOdd" : "TagEven", i)
    if (index($0, want) == 0 || seen[i]++) { print "bad: " $0; exit }
}
END { if (n != 16) print "deliveries " n }' "$T_WORK/batchc.out")
if [ -z "$bad" ]; then
    pass "push_consumer got the batch: 16 messages, keys, tags and consecutive offsets intact"
else
    fail "batch delivery: $bad"
fi

# ---- ordered_producer -> orderly_consumer
ex order 30 ordered_producer "$NS" ExOrder 3 10 || fail "ordered_producer exited with status $?: $(head -c 300 "$T_WORK/order.err")"
bad=$(awk '
/ -> queue / {
    n++; k = $1; q = $6; off = $8
    if ((k in queue) && queue[k] != q) { print "key " k " in " queue[k] " and " q; exit }
    if ((k in last) && off <= last[k]) { print "key " k " offset " off " after " last[k]; exit }
    queue[k] = q; last[k] = off
}
END { if (n != 30) print "sends " n }' "$T_WORK/order.out")
if [ -z "$bad" ]; then
    pass "ordered_producer: each key's 10 messages in one queue, offsets growing"
else
    fail "ordered_producer: $bad"
fi
ex orderc 40 orderly_consumer "$NS" ExOrder ex_orderly 30 30 || fail "orderly_consumer exited with status $? ($(tail -n 1 "$T_WORK/orderc.out"))"
bad=$(awk '
/^queue [0-9]+ offset/ {
    body = $0; sub(/.*: /, "", body)
    split(body, w, " "); k = w[1]; s = w[3]
    n++
    if (s != next_seq[k] + 0) { print k " seq " s " where " next_seq[k] + 0 " was due"; exit }
    next_seq[k] = s + 1
}
END { if (n != 30) print "deliveries " n }' "$T_WORK/orderc.out")
if [ -z "$bad" ]; then
    pass "orderly_consumer: 30 messages, each key's seq 0..9 in order"
else
    fail "orderly_consumer: $bad"
fi

# ---- delay_producer -> push_consumer
ex delay 30 delay_producer "$NS" ExDelay 2 || fail "delay_producer exited with status $?: $(head -c 300 "$T_WORK/delay.err")"
ex delayc 30 push_consumer "$NS" ExDelay ex_delay 1 20 || fail "push_consumer (delay) exited with status $?"
after=$(sed -n 's/^received .* after=\([0-9-]*\)ms: delayed by level 2$/\1/p' "$T_WORK/delayc.out")
if [ -n "$after" ] && [ "$after" -ge 5000 ]; then
    pass "delay level 2: delivered $after ms after its birth (>= 5000)"
else
    fail "delay level 2: delivered after [${after:-never}] ms, want >= 5000"
fi

# ---- broadcast_consumer x2 <- producer
bdir=$T_WORK/bcast-offsets
"$EXAMPLES/broadcast_consumer" "$NS" ExBcast b1 "$bdir" 5 40 >"$T_WORK/b1.out" 2>"$T_WORK/b1.err" &
b1_pid=$!
t_track $b1_pid
"$EXAMPLES/broadcast_consumer" "$NS" ExBcast b2 "$bdir" 5 40 >"$T_WORK/b2.out" 2>"$T_WORK/b2.err" &
b2_pid=$!
t_track $b2_pid
ex bprod 30 producer "$NS" ExBcast 2 || fail "producer (broadcast) exited with status $?"
bwant=$(printf 'async 0\nasync 1\nhello 0\nhello 1\noneway')
for b in b1 b2; do
    eval "bp=\$${b}_pid"
    wait "$bp" || fail "broadcast_consumer $b exited with status $?"
    same_lines "broadcast_consumer $b got all 5 messages" "$(bodies "$T_WORK/$b.out" "$b received")" "$bwant"
done
if [ -f "$bdir/127.0.0.1@b1/example_broadcast_consumer/offsets.json" ]; then
    pass "broadcast_consumer b1 kept its offsets in its own file"
else
    fail "no offsets file under $bdir for b1: $(find "$bdir" -type f | tr '\n' ' ')"
fi

# ---- transaction_producer -> push_consumer
if [ $tx_ok -eq 0 ]; then
    fail "transaction_producer not run: $SPROCKETD has no transactionCheckInterval setting (no transactional messages)"
else
    if ex tx 60 transaction_producer "$NS" ExTx 30; then
        pass "transaction_producer: 3 half messages, and the check-back came"
    else
        fail "transaction_producer exited with status $?: $(head -c 300 "$T_WORK/tx.err")"
    fi
    grep -q '^check-back for .*("tx unknown"): commit' "$T_WORK/tx.out" ||
        fail "no check-back for \"tx unknown\" in the producer's output"
    # Count 3 with a short limit: the consumer must time out with 2.
    ex txc 30 push_consumer "$NS" ExTx ex_tx 3 8
    same_lines "consumer of the transactional topic got commit and unknown (check: commit), never rollback" \
        "$(bodies "$T_WORK/txc.out" received)" "$(printf 'tx commit\ntx unknown')"
fi

daemon_stop sd
# The clients' stderr: a sanitizer build reports there.
san=$(grep -El "$T_SAN_RE" "$T_WORK"/*.err 2>/dev/null | head -n 3)
[ -z "$san" ] || fail "sanitizer report in client output: $(echo "$san" | tr '\n' ' ')"
t_finish
