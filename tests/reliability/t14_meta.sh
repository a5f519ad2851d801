#!/bin/sh
# t14_meta.sh - RELIABILITY.md T14: metadata files under kill -9.
#
#   sh tests/reliability/t14_meta.sh [BUILD_DIR]      (default build)
#
# Two parts, both SIGKILLing a writer in the middle of rewriting
# consumerOffset.json, topics.json, subscriptionGroup.json (and, for the
# broker, delayOffset.json and the store checkpoint):
#
# 1. Module level: BUILD_DIR/tests/metacrash kill, T14_CYCLES x 20 kills of
#    a process that rewrites the three files in a tight loop (one save in
#    eight with an fsync, link, rename, unlink, directory sync or write
#    failing, through the storeio fault hooks). After each kill every file
#    must be complete (sealed, parses, loads from the main file) and hold
#    the last save reported complete, or the one after it.
# 2. Broker level: a standalone sprocketd with flushConsumerOffsetInterval
#    at its 100 ms minimum; in the background, consumers of three groups
#    commit offsets (short-lived ones, and one that lives through every
#    kill), producers refill the topic, updateTopic and
#    updateSubGroup rewrite topics.json and subscriptionGroup.json, and
#    delayed messages keep delayOffset.json changing. Then
#    T14_CYCLES times: sleep a random 0.2-1.2 s, copy consumerOffset.json
#    (a completed save: the file is only ever replaced by a rename),
#    SIGKILL the broker, and check:
#      - `metacrash verify` on the files left: each one non-empty, sealed,
#        parses and loads, checkpoint extension intact;
#      - every offset in the file is >= the copy's (the last completed
#        save the test knows of);
#      - after a restart, no file was loaded from its .bak (main files are
#        always whole after a kill), and for every queue of every group
#        consumerProgress shows committed offset <= the queue's max offset
#        and >= the copy's value.
# Any sanitizer report in any log fails the run.
#
# Environment:
#   T14_CYCLES        broker kills (default 3: the quick tier); part 1
#                     makes 20 times as many kills
#   T14_STORE_CYCLES  part 1 kills, overriding the above
#   KEEP=1            keep the work directory even when the run passes
#
# Last line: "t14: T14 metadata under kill -9: <cycles> cycles, <violations>
# violations, <seconds> s" (cycles counts broker kills plus module kills);
# exit 0 when everything passed, 1 on a violation, 2 on a setup error.
set -u
export LC_ALL=C

build=${1:-build}
cycles=${T14_CYCLES:-3}
store_cycles=${T14_STORE_CYCLES:-$((cycles * 20))}
label="T14 metadata under kill -9"
topic=T14Topic
groups="CG0 CG1 CGLive"

sprocketd=$build/sprocketd
sprocket=$build/sprocket
metacrash=$build/tests/metacrash
for b in "$sprocketd" "$sprocket" "$metacrash"; do
    if [ ! -x "$b" ]; then
        echo "t14: $b not found (make $b)" >&2
        echo "t14: $label: 0 cycles, 0 violations, 0 s"
        exit 2
    fi
done

# On a memory file system when there is one: a kill -9 tests the logic,
# not the disk (the page cache survives it), and fsyncs to a real disk
# would make every save, and so every cycle, take much longer.
work=$(mktemp -d /dev/shm/spk-t14-XXXXXX 2>/dev/null) ||
    work=$(mktemp -d "${TMPDIR:-/tmp}/spk-t14-XXXXXX") || exit 2
keep=${KEEP:-0}
broker_pid=""
churn_pid=""
live_pid=""
violations=0
done_cycles=0
t0=$(date +%s)

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    for p in $churn_pid $live_pid; do
        kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    if [ -n "$broker_pid" ]; then
        kill -KILL "$broker_pid" 2>/dev/null
        wait "$broker_pid" 2>/dev/null
    fi
    if [ "$keep" = 1 ]; then
        echo "t14: work directory kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rand() {
    echo $(($(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % $1))
}

SAN_RE='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer'

# finish STATUS: the contract's last line, then exit.
finish() {
    echo "t14: $label: $done_cycles cycles, $violations violations, $(($(date +%s) - t0)) s"
    exit "$1"
}

fail() {
    echo "t14: FAIL (cycle ${cycle:-0}): $*"
    violations=$((violations + 1))
    if [ -f "$work/broker.log" ]; then
        echo "---- last lines of $work/broker.log"
        tail -n 15 "$work/broker.log"
    fi
    keep=1
    finish 1
}

san_check() {
    for f in "$@"; do
        if [ -f "$f" ] && grep -Eq "$SAN_RE" "$f"; then
            grep -E -A 10 "$SAN_RE" "$f" | head -n 30
            fail "sanitizer report in $f"
        fi
    done
}

# ---------------------------------------------------------------- part 1
echo "t14: part 1: $store_cycles kills of the metadata writer"
mc_dir=$work/module
if "$metacrash" kill "$mc_dir" "$store_cycles" "$(rand 1000000000)" >"$work/metacrash.out" 2>"$work/metacrash.err"; then
    tail -n 1 "$work/metacrash.out"
else
    rc=$?
    tail -n 5 "$work/metacrash.out"
    san_check "$work/metacrash.err"
    [ "$rc" -eq 1 ] || { echo "t14: metacrash failed to run (status $rc)"; tail -n 5 "$work/metacrash.err"; keep=1; finish 2; }
    fail "metacrash found violations"
fi
san_check "$work/metacrash.err"
done_cycles=$store_cycles

# ---------------------------------------------------------------- part 2
store=$work/store
conf=$store/config

start_broker() {
    "$sprocketd" standalone --listenPort="$bport" --namesrvListenPort="$nport" \
        --namesrvAddr="$ns" --brokerIP1=127.0.0.1 --storePathRootDir="$store" \
        --mappedFileSizeCommitLog=1048576 --maxMessageSize=65536 \
        --mappedFileSizeConsumeQueue=2000 \
        --flushConsumerOffsetInterval=100 >>"$work/broker.log" 2>&1 &
    broker_pid=$!
    echo "$(date +%T) --- started pid $broker_pid" >>"$work/broker.log"
}

# wait_serving TIMEOUT_S [TOPIC]: until the broker answers and the name
# server routes TOPIC (if given) to it. 1 if it died or time ran out.
wait_serving() {
    ws_end=$(($(date +%s) + $1))
    ws_topic=${2:-}
    while :; do
        kill -0 "$broker_pid" 2>/dev/null || return 1
        if "$sprocket" brokerStatus -b "$baddr" --timeout 1000 >/dev/null 2>&1 &&
            { [ -z "$ws_topic" ] ||
                "$sprocket" topicRoute -n "$ns" -t "$ws_topic" --timeout 1000 >/dev/null 2>&1; }; then
            return 0
        fi
        [ "$(date +%s)" -ge "$ws_end" ] && return 1
        sleep 0.05
    done
}

# The background workload: offsets, topics and groups keep changing. Every
# command may fail while the broker is down; that is expected.
churn() {
    i=0
    while :; do
        i=$((i + 1))
        seq 1 40 | "$sprocket" produce -n "$ns" -t "$topic" --timeout 2000 >/dev/null 2>&1
        seq 1 5 | "$sprocket" produce -n "$ns" -t "$topic" --delay 1 --timeout 2000 >/dev/null 2>&1
        for g in CG0 CG1; do
            "$sprocket" consume -n "$ns" -t "$topic" -g "$g" --from first --count 15 \
                --idle 1 --duration 3 --quiet >>"$work/churn.log" 2>&1
        done
        "$sprocket" updateTopic -n "$ns" -b "$baddr" -t "T14Side$((i % 5))" \
            -r $((1 + i % 8)) -w $((1 + i % 8)) --timeout 2000 >/dev/null 2>>"$work/churn.log"
        "$sprocket" updateSubGroup -n "$ns" -b "$baddr" -g "G14Side$((i % 5))" \
            -r $((i % 16)) --timeout 2000 >/dev/null 2>>"$work/churn.log"
    done
}

# offsets VERIFY_OUT OUT: "topic@group:qid offset" lines, sorted, from
# the output of metacrash verify.
offsets() {
    awk '$1 == "offset" { print $2 ":" $3, $4 }' "$1" | sort -k1,1 >"$2"
}

tries=0
while :; do
    tries=$((tries + 1))
    nport=$((20000 + $(rand 40000)))
    bport=$((nport + 1))
    ns=127.0.0.1:$nport
    baddr=127.0.0.1:$bport
    start_broker
    wait_serving 30 && break
    kill -KILL "$broker_pid" 2>/dev/null
    wait "$broker_pid" 2>/dev/null
    broker_pid=""
    rm -rf "$store"
    [ "$tries" -ge 3 ] && { echo "t14: the broker did not start (3 tries)"; keep=1; finish 2; }
done
"$sprocket" updateTopic -n "$ns" -b "$baddr" -t "$topic" -r 4 -w 4 >"$work/topic.out" 2>&1 ||
    { echo "t14: updateTopic: $(cat "$work/topic.out")"; keep=1; finish 2; }
wait_serving 30 "$topic" || { echo "t14: no route for $topic"; keep=1; finish 2; }
seq 1 200 | "$sprocket" produce -n "$ns" -t "$topic" >/dev/null 2>&1
churn &
churn_pid=$!
# One consumer that lives through every kill: it commits from memory
# (every few seconds and at its end), reconnecting after each restart.
"$sprocket" consume -n "$ns" -t "$topic" -g CGLive --from first --duration 100000 \
    --quiet >>"$work/live.log" 2>&1 &
live_pid=$!

echo "t14: part 2: $cycles broker kills"
cycle=0
while [ "$cycle" -lt "$cycles" ]; do
    cycle=$((cycle + 1))
    ms=$((200 + $(rand 1001)))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
    kill -0 "$broker_pid" 2>/dev/null || fail "the broker died before the kill"
    cdir=$work/cycle$cycle
    mkdir -p "$cdir/snap" "$cdir/left"
    # A completed save: the file is replaced by rename, so a copy is whole.
    cp "$conf/consumerOffset.json" "$cdir/snap/" 2>/dev/null
    kill -KILL "$broker_pid"
    wait "$broker_pid" 2>/dev/null
    echo "$(date +%T) --- SIGKILL after ${ms} ms (cycle $cycle)" >>"$work/broker.log"
    san_check "$work/broker.log"
    # The files as the kill left them (copied: verify must not touch them).
    cp "$conf"/*.json "$cdir/left/" 2>/dev/null
    if ! "$metacrash" verify "$cdir/left" "$store" >"$cdir/verify.out" 2>>"$work/verify.err"; then
        cat "$cdir/verify.out"
        fail "the files left by the kill do not verify"
    fi
    : >"$cdir/snap.off"
    if [ -f "$cdir/snap/consumerOffset.json" ]; then
        "$metacrash" verify "$cdir/snap" >"$cdir/snap.out" 2>>"$work/verify.err" ||
            fail "the saved copy does not verify: $(cat "$cdir/snap.out")"
        offsets "$cdir/snap.out" "$cdir/snap.off"
    fi
    offsets "$cdir/verify.out" "$cdir/left.off"
    # Every offset of the last known completed save, at least as far now.
    bad=$(join -a 1 -e -2 -o 0,1.2,2.2 "$cdir/snap.off" "$cdir/left.off" |
        awk '$3 < $2 { print }')
    [ -z "$bad" ] || fail "offsets went back after the kill (queue, saved, left): $bad"
    start_broker
    wait_serving 60 "$topic" || fail "the broker did not serve again within 60 s"
    if grep -Eq ' config: .*(instead|damaged)' "$work/broker.log"; then
        grep -E ' config: .*(instead|damaged)' "$work/broker.log" | head -n 5
        fail "a metadata file was loaded from its .bak after a kill"
    fi
    for g in $groups; do
        "$sprocket" consumerProgress -n "$ns" -g "$g" --json >"$cdir/$g.json" 2>&1 || continue
        # queue brokerOffset consumerOffset, one line per queue
        awk -F: '
            /"topic"/ { gsub(/[" \t,]/, "", $2); t = $2 }
            /"queueId"/ { gsub(/[^0-9]/, "", $2); q = $2 }
            /"brokerOffset"/ { gsub(/[^0-9-]/, "", $2); b = $2 }
            /"consumerOffset"/ { gsub(/[^0-9-]/, "", $2); print t "@" g ":" q, b, $2 }
        ' g="$g" "$cdir/$g.json" | sort -k1,1 >"$cdir/$g.prog"
        bad=$(awk '$3 > $2 { print }' "$cdir/$g.prog")
        [ -z "$bad" ] || fail "$g: committed offset beyond the queue's max (queue, max, committed): $bad"
        bad=$(join -o 0,1.2,2.3 "$cdir/snap.off" "$cdir/$g.prog" | awk '$3 < $2 { print }')
        [ -z "$bad" ] || fail "$g: committed offset behind the last completed save (queue, saved, now): $bad"
    done
    nq=$(wc -l <"$cdir/left.off")
    echo "t14: cycle $cycle: killed after ${ms} ms; files whole, $nq committed offsets >= the last known save"
    done_cycles=$((done_cycles + 1))
    [ "$keep" = 1 ] || rm -rf "$cdir"
done

kill -TERM "$churn_pid" "$live_pid" 2>/dev/null
wait "$churn_pid" 2>/dev/null
wait "$live_pid" 2>/dev/null
churn_pid=""
live_pid=""
kill -TERM "$broker_pid"
wait "$broker_pid"
rc=$?
broker_pid=""
[ "$rc" -eq 0 ] || fail "the broker exited with status $rc on SIGTERM"
san_check "$work/broker.log" "$work/churn.log" "$work/live.log" "$work/verify.err"
mkdir -p "$work/final"
cp "$conf"/*.json "$work/final/"
"$metacrash" verify "$work/final" "$store" >"$work/final.out" 2>&1 ||
    { cat "$work/final.out"; fail "the files after a clean stop do not verify"; }
finish 0
