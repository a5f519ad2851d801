#!/bin/sh
# t1_kill9.sh - RELIABILITY.md T1: kill -9 of a real broker under load.
#
#   sh tests/reliability/t1_kill9.sh [BUILD_DIR]      (default build)
#
# For each flush mode: a standalone sprocketd with small CommitLog,
# ConsumeQueue and index files (so that roll-overs happen during the
# test), a topic of 8 queues, and `driver send` (4 producers) writing the
# history in the background. Then CYCLES times: sleep a random 0.2-3 s,
# SIGKILL the broker, restart it on the same store and ports, and wait
# until it serves the topic again. Every second kill is aimed instead: it
# comes within ~10 ms of a new CommitLog segment or ConsumeQueue file
# appearing (segment preparation, a queue switching files), or after the
# random time if none appears. The driver keeps sending throughout and
# records the failed and indeterminate sends.
#
# At the last kill of each store, a copy of the killed store is recovered
# twice by BUILD_DIR/tests/recover_twice, which must find the two results
# byte-identical (recovery is idempotent).
#
# Every EPOCH cycles (and after the last one) the epoch is checked and a
# fresh store begins, so that nothing grows with CYCLES:
#   1. the driver is stopped and `driver drain` reads every queue from 0;
#   2. BUILD_DIR/tests/qcheck checks the history;
#   3. the broker is stopped with SIGTERM (it must exit 0), and
#      `sprocket store check` verifies the stopped store.
# Any sanitizer report in a daemon or driver log, a broker that does not
# come back, or a failed check fails the run; the work directory is kept.
#
# Environment:
#   T1_CYCLES  kills per mode (else CYCLES, else 5)
#   MODES      flush modes (default "SYNC_FLUSH ASYNC_FLUSH")
#   EPOCH      kills per store before it is checked and replaced (default 25)
#   PRODUCERS  driver producers (default 4)
#   RATE       messages/s per producer, 0 = as fast as possible (default 100)
#   MIN_SIZE, MAX_SIZE   body sizes (default 16 and 65536 bytes)
#   BIG_PERMILLE         bodies of 1 MiB..BIG_MAX per thousand (default 10)
#   SEGMENT_SIZE         CommitLog segment size (default 4 MiB)
#   KEEP=1     keep the work directory even when the run passes
set -u

build=${1:-build}
cycles=${T1_CYCLES:-${CYCLES:-5}}
modes=${MODES:-SYNC_FLUSH ASYNC_FLUSH}
epoch=${EPOCH:-25}
producers=${PRODUCERS:-4}
rate=${RATE:-100}
min_size=${MIN_SIZE:-16}
max_size=${MAX_SIZE:-65536}
big_permille=${BIG_PERMILLE:-10}
seg_size=${SEGMENT_SIZE:-4194304}
# The largest body must fit a segment with room to spare (sprocketd wants
# maxMessageSize + 64 KiB per segment).
max_msg=$((seg_size * 3 / 4))
big_max=$((max_msg - 4096))
topic=T1Topic
# Small index files: they fill up and roll over during the test. `store
# check` must be told the same sizes.
index_args="--maxHashSlotNum=1000 --maxIndexNum=4000"

sprocketd=$build/sprocketd
sprocket=$build/sprocket
driver=$build/tests/driver
qcheck=$build/tests/qcheck
recover_twice=$build/tests/recover_twice

for b in "$sprocketd" "$sprocket" "$driver" "$qcheck" "$recover_twice"; do
    if [ ! -x "$b" ]; then
        echo "t1: $b not found (make $b)" >&2
        exit 2
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/spk-t1-XXXXXX") || exit 2
keep=${KEEP:-0}
broker_pid=""
driver_pid=""

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    for p in $driver_pid $broker_pid; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "$keep" = 1 ]; then
        echo "t1: work directory kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() {
    date +%s%3N
}

# rand N: a random integer in [0, N).
rand() {
    echo $(($(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % $1))
}

SAN_RE='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer'

fail() {
    echo "t1: FAIL [$mode, cycle $cycle/$cycles]: $*"
    if [ -n "${edir:-}" ] && [ -f "$edir/broker.log" ]; then
        echo "---- last lines of $edir/broker.log"
        tail -n 20 "$edir/broker.log"
    fi
    keep=1
    exit 1
}

# file_count: CommitLog segments plus ConsumeQueue files of the store.
file_count() {
    find "$store/commitlog" "$store/consumequeue" -type f 2>/dev/null | wc -l
}

# start_broker: sprocketd on $store and the ports of this epoch, in the
# background, output appended to $edir/broker.log.
start_broker() {
    # shellcheck disable=SC2086 # index_args is a list of words
    "$sprocketd" standalone --listenPort="$bport" --namesrvListenPort="$nport" \
        --namesrvAddr="$ns" --brokerIP1=127.0.0.1 --storePathRootDir="$store" \
        --flushDiskType="$mode" --mappedFileSizeCommitLog="$seg_size" \
        --maxMessageSize="$max_msg" --mappedFileSizeConsumeQueue=20000 \
        --flushIntervalConsumeQueue=200 $index_args \
        >>"$edir/broker.log" 2>&1 &
    broker_pid=$!
    echo "$(date +%T) --- started pid $broker_pid" >>"$edir/broker.log"
}

# wait_serving TIMEOUT_S [TOPIC]: until the broker answers and the name
# server routes TOPIC (if given) to it: a restarted standalone registers
# again after its recovery. Returns 1 if the broker died or the time ran
# out.
wait_serving() {
    ws_end=$(($(date +%s) + $1))
    ws_topic=${2:-}
    while :; do
        if ! kill -0 "$broker_pid" 2>/dev/null; then
            return 1
        fi
        if "$sprocket" brokerStatus -b "$baddr" --timeout 1000 >/dev/null 2>&1 &&
            { [ -z "$ws_topic" ] ||
                "$sprocket" topicRoute -n "$ns" -t "$ws_topic" --timeout 1000 >/dev/null 2>&1; }; then
            return 0
        fi
        [ "$(date +%s)" -ge "$ws_end" ] && return 1
        sleep 0.05
    done
}

# begin_epoch: fresh store and ports, broker up, topic created, driver
# sending.
begin_epoch() {
    epoch_no=$((epoch_no + 1))
    edir=$work/$mode/epoch$epoch_no
    store=$edir/store
    mkdir -p "$edir"
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
        [ "$tries" -ge 10 ] && fail "the broker did not start (10 tries on random ports)"
        rm -rf "$store"
    done
    # Re-created after a restart? Only if the topic config was lost, which
    # the restarts must not do: the driver would then auto-create 4 queues.
    "$sprocket" updateTopic -n "$ns" -b "$baddr" -t "$topic" -r 8 -w 8 \
        >"$edir/topic.out" 2>&1 || fail "updateTopic: $(cat "$edir/topic.out")"
    # The route must list the new queues before the producers ask for it.
    i=0
    until "$sprocket" topicRoute -n "$ns" -t "$topic" 2>/dev/null | grep -q '"writeQueueNums":[[:space:]]*8'; do
        i=$((i + 1))
        [ "$i" -ge 100 ] && fail "no route with 8 queues for $topic"
        sleep 0.1
    done
    hist=$edir/history.jsonl
    : >"$hist"
    "$driver" send -n "$ns" -t "$topic" --producers "$producers" --duration 1000000 \
        --min-size "$min_size" --max-size "$max_size" --big-permille "$big_permille" \
        --big-max "$big_max" --rate "$rate" --seed "$(rand 1000000000)" \
        --history "$hist" >"$edir/driver.log" 2>&1 &
    driver_pid=$!
    epoch_cycles=0
}

# end_epoch: stop the driver, drain, check the history and the store.
end_epoch() {
    kill -TERM "$driver_pid" 2>/dev/null
    wait "$driver_pid"
    rc=$?
    driver_pid=""
    [ "$rc" -eq 0 ] || fail "driver send exited with status $rc: $(tail -n 3 "$edir/driver.log")"
    "$driver" drain -n "$ns" -t "$topic" --history "$hist" --process drain \
        --idle 3 --max-time 300 >>"$edir/driver.log" 2>&1 ||
        fail "driver drain failed: $(tail -n 3 "$edir/driver.log")"
    if grep -Eq "$SAN_RE" "$edir/driver.log"; then
        grep -E -A 5 "$SAN_RE" "$edir/driver.log" | head -n 20
        fail "sanitizer report from the driver"
    fi
    # The drain stops after a quiet spell; make sure it reached the end of
    # every queue the broker reports.
    "$sprocket" topicStatus -n "$ns" -t "$topic" --json >"$edir/status.json" 2>&1 ||
        fail "topicStatus: $(cat "$edir/status.json")"
    awk -F: '
        /"brokerName"/ { gsub(/[" \t,]/, "", $2); b = $2 }
        /"queueId"/ { gsub(/[^0-9]/, "", $2); q = $2 }
        /"maxOffset"/ { gsub(/[^0-9]/, "", $2); if ($2 + 0 > 0) print b ":" q, $2 }
    ' "$edir/status.json" | sort >"$edir/status.max"
    sed -n 's/^driver: drain: \([^ ]*\): [0-9]* messages, next offset \([0-9]*\)$/\1 \2/p' \
        "$edir/driver.log" | sort >"$edir/drain.max"
    if ! cmp -s "$edir/status.max" "$edir/drain.max"; then
        echo "queue, broker's max offset / drain's next offset:"
        join -a 1 -a 2 -e none -o 0,1.2,2.2 "$edir/status.max" "$edir/drain.max"
        fail "the drain did not read every queue to its end"
    fi
    sent_ok=$(grep -c '"type":"ok","f":"send"' "$hist")
    sent_fail=$(grep -c '"type":"fail","f":"send"' "$hist")
    sent_info=$(grep -c '"type":"info","f":"send"' "$hist")
    polled=$(sed -n 's/^driver: drain: \([0-9]*\) messages from.*/\1/p' "$edir/driver.log" | tail -n 1)
    acked_total=$((acked_total + sent_ok))
    if [ -x "$qcheck" ]; then
        if "$qcheck" "$hist" -o "$edir/results.json" >"$edir/qcheck.out" 2>&1; then
            echo "t1: $mode epoch $epoch_no: qcheck: $(tail -n 1 "$edir/qcheck.out")"
        else
            violations=$((violations + 1))
            cat "$edir/qcheck.out"
            fail "qcheck found violations (history $hist, results $edir/results.json)"
        fi
    else
        qcheck_skipped=1
    fi
    kill -TERM "$broker_pid"
    wait "$broker_pid"
    rc=$?
    broker_pid=""
    [ "$rc" -eq 0 ] || fail "the broker exited with status $rc on SIGTERM"
    if grep -Eq "$SAN_RE" "$edir/broker.log"; then
        grep -E -A 10 "$SAN_RE" "$edir/broker.log" | head -n 40
        fail "sanitizer report from the broker"
    fi
    # shellcheck disable=SC2086 # index_args is a list of words
    if ! "$sprocket" store check "$store" $index_args >"$edir/storecheck.out" 2>&1; then
        tail -n 20 "$edir/storecheck.out"
        violations=$((violations + 1))
        fail "sprocket store check found problems (store $store)"
    fi
    errs=$(grep -Ec '^[0-9]+:[A-Za-z-] [0-9-]+ [0-9:.]+ E ' "$edir/broker.log")
    echo "t1: $mode epoch $epoch_no: $epoch_cycles kills, sends $sent_ok ok / $sent_fail fail / $sent_info info, $polled polled, $errs broker error line(s), store check ok"
    if [ "$keep" != 1 ]; then
        rm -rf "$edir"
    fi
}

report=""
summary=""
overall=$(date +%s)
for mode in $modes; do
    case $mode in
    SYNC_FLUSH | ASYNC_FLUSH) ;;
    *)
        echo "t1: unknown flush mode $mode" >&2
        exit 2
        ;;
    esac
    mkdir -p "$work/$mode"
    t0=$(date +%s)
    epoch_no=0
    acked_total=0
    violations=0
    qcheck_skipped=0
    recover_max=0
    recover_sum=0
    twice_checks=0
    hot_kills=0
    cycle=0
    begin_epoch
    while [ "$cycle" -lt "$cycles" ]; do
        cycle=$((cycle + 1))
        ms=$((200 + $(rand 2801)))
        how=random
        if [ $((cycle % 2)) -eq 0 ]; then
            # Aimed: 0.2 s of load, then the kill as soon as a CommitLog
            # segment or a ConsumeQueue file appears (the next segment
            # being prepared, a queue switching files), within ~10 ms.
            sleep 0.2
            hot_files=$(file_count)
            hot_end=$(($(now_ms) + ms))
            while [ "$(file_count)" = "$hot_files" ] && [ "$(now_ms)" -lt "$hot_end" ]; do
                sleep 0.01
            done
            [ "$(file_count)" != "$hot_files" ] && how=aimed && hot_kills=$((hot_kills + 1))
        else
            sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        fi
        kill -0 "$driver_pid" 2>/dev/null || fail "the driver died: $(tail -n 3 "$edir/driver.log")"
        kill -0 "$broker_pid" 2>/dev/null || fail "the broker died before the kill"
        kill -KILL "$broker_pid"
        wait "$broker_pid" 2>/dev/null
        echo "$(date +%T) --- SIGKILL ($how) after ${ms} ms (cycle $cycle)" >>"$edir/broker.log"
        if grep -Eq "$SAN_RE" "$edir/broker.log"; then
            grep -E -A 10 "$SAN_RE" "$edir/broker.log" | head -n 40
            fail "sanitizer report from the broker"
        fi
        # The last kill of each store: recovering twice must give a
        # byte-identical store (on a copy; the broker restarts on the
        # original).
        if [ "$((epoch_cycles + 1))" -ge "$epoch" ] || [ "$cycle" -ge "$cycles" ]; then
            rm -rf "$edir/twice"
            cp -a "$store" "$edir/twice" || fail "copying the store for the second recovery"
            # shellcheck disable=SC2086 # index_args is a list of words
            if ! "$recover_twice" "$edir/twice" --flushDiskType="$mode" \
                --mappedFileSizeCommitLog="$seg_size" --maxMessageSize="$max_msg" \
                --mappedFileSizeConsumeQueue=20000 $index_args >"$edir/twice.out" 2>&1; then
                cat "$edir/twice.out"
                violations=$((violations + 1))
                fail "recovering the store twice did not give identical files (copy in $edir/twice)"
            fi
            rm -rf "$edir/twice"
            twice_checks=$((twice_checks + 1))
        fi
        r0=$(now_ms)
        start_broker
        wait_serving 60 "$topic" || fail "the broker did not serve again within 60 s after a kill at ${ms} ms"
        r=$(($(now_ms) - r0))
        recover_sum=$((recover_sum + r))
        [ "$r" -gt "$recover_max" ] && recover_max=$r
        epoch_cycles=$((epoch_cycles + 1))
        if [ "$epoch_cycles" -ge "$epoch" ] && [ "$cycle" -lt "$cycles" ]; then
            end_epoch
            begin_epoch
        fi
    done
    end_epoch
    secs=$(($(date +%s) - t0))
    line="t1: $mode: $cycles kills in $epoch_no store(s), $acked_total acked sends, $violations violations, restart to serving avg $((recover_sum / (cycles > 0 ? cycles : 1))) ms max $recover_max ms, $hot_kills kills aimed at a new file, $twice_checks second recoveries byte-identical, ${secs} s"
    if [ "$qcheck_skipped" = 1 ]; then
        line="$line (history NOT checked: $qcheck not built yet)"
    fi
    echo "$line"
    report="$report$line
"
    summary="${summary}t1: T1 broker kill -9 ($mode): $cycles cycles, $violations violations, $secs s
"
done

echo
printf '%s' "$report"
echo "t1: all modes passed in $(($(date +%s) - overall)) s"
printf '%s' "$summary"
exit 0
